/**
 * A small seeded pseudo-random generator (mulberry32) so that every simulator run replays
 * exactly from its seed.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const rng = new Rng(42);
 * console.log(rng.int(1, 6), rng.chance(0.5));
 * ```
 */
export class Rng {
  #state: number;

  /** Creates a generator from a 32-bit seed. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    if (max < min) throw new Error(`Rng.int: empty range [${min}, ${max}]`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("Rng.pick: empty array");
    return items[this.int(0, items.length - 1)]!;
  }

  /** A random subset (each element kept with probability `p`), order preserved. */
  subset<T>(items: readonly T[], p: number): T[] {
    return items.filter(() => this.chance(p));
  }

  /** A hex string of `bytes` random bytes. */
  hex(bytes: number): string {
    let s = "";
    for (let i = 0; i < bytes; i++) s += this.int(0, 255).toString(16).padStart(2, "0");
    return s;
  }
}
