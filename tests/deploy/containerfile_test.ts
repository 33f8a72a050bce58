/**
 * The Containerfile, checked by reading it: `deno compile` downloads its runtime base binary,
 * and these machines have neither that download nor a container engine, so the image is never
 * built here. What can be held here is held: the compile permission flags equal those of
 * `deno task start` (which is what every other test runs), every Web Worker module is
 * `--include`d (deno compile does not follow `new Worker(url)`), the build stage uses the Deno version
 * CI tests with, the final stage is distroless, non-root and shell-free, and its ports, user and
 * copied sources agree with the Kubernetes manifests and the module graph of `main.ts`.
 *
 * Every check is a function of the Containerfile's text; the last test breaks a copy once per
 * check and asserts that the check notices.
 *
 * @example
 * ```sh
 * deno test --allow-all tests/deploy/containerfile_test.ts
 * ```
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";

const ROOT = new URL("../../", import.meta.url);
/** The image recipe under test. */
const CONTAINERFILE = new URL("Containerfile", ROOT);
/** Where the runtime image comes from: glibc and libgcc, no shell. */
const RUNTIME_IMAGE = "gcr.io/distroless/cc-debian12";
/** The distroless tag whose default user is not root. */
const RUNTIME_TAG = "nonroot";
/** The uid (and gid) of distroless's `nonroot` user. */
const NONROOT_UID = 65532;
/** Where the compiled binary lives in both stages, and the entrypoint. */
const BINARY_PATH = "/redis-hive";
/** Name of the hive container in k8s/deployment.yaml. */
const HIVE_CONTAINER = "redis-hive";
/** Flags of `deno compile` that shape the build, not the program's runtime behaviour. */
const COMPILE_ONLY_FLAGS_WITH_VALUE = [
  "--output",
  "-o",
  "--target",
  "--icon",
  "--include",
  "--exclude",
];
/** Flags of `deno compile` without a value that shape the build only. */
const COMPILE_ONLY_FLAGS = ["--frozen", "--no-terminal"];
/**
 * The Web Worker modules the hive starts (`new Worker(url)`), relative to the project root:
 * deno compile embeds only the module graph of the entry, so each must be `--include`d. A test
 * below holds this list equal to the workers found in main.ts's module graph.
 */
const WORKER_MODULES = ["lib/proxy/epoll/epoll_worker.ts"];

/** One instruction of a Containerfile: keyword (upper case) and the rest of the line. */
interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** A build stage: its FROM reference, its `AS` name, and its instructions after FROM. */
interface Stage {
  image: string;
  name: string | null;
  instructions: Instruction[];
}

/**
 * Parses a Containerfile into stages: comments dropped, `\` continuations joined, each
 * instruction's keyword upper-cased. Fails on an instruction before the first FROM.
 */
function parseContainerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = "";
  let pendingLine = 0;
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const trimmed = raw.trim();
    if (pending === "" && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (pending !== "" && trimmed.startsWith("#")) continue; // comments inside a continuation
    if (pending === "") pendingLine = index + 1;
    if (trimmed.endsWith("\\")) {
      pending += trimmed.slice(0, -1).trimEnd() + " ";
      continue;
    }
    const full = (pending + trimmed).trim();
    pending = "";
    const match = /^(\S+)\s*(.*)$/.exec(full);
    assert.ok(match !== null);
    const keyword = match[1]!.toUpperCase();
    const args = match[2]!.trim();
    if (keyword === "FROM") {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(from !== null, `Containerfile line ${pendingLine}: cannot read FROM ${args}`);
      stages.push({ image: from[1]!, name: from[2] ?? null, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage !== undefined, `Containerfile line ${pendingLine}: ${keyword} before any FROM`);
    stage.instructions.push({ keyword, args, line: pendingLine });
  }
  assert.equal(pending, "", "the Containerfile ends inside a line continuation");
  return stages;
}

/** The arguments of an exec-form (JSON array) instruction, or null for the shell form. */
function execForm(instruction: Instruction): string[] | null {
  if (!instruction.args.startsWith("[")) return null;
  const value: unknown = JSON.parse(instruction.args);
  assert.ok(
    Array.isArray(value) && value.every((v) => typeof v === "string"),
    `line ${instruction.line}: ${instruction.keyword} is not an array of strings`,
  );
  return value;
}

/** The stages, asserting there are exactly two: `build` and the runtime stage. */
function stagesOf(text: string): { build: Stage; runtime: Stage } {
  const stages = parseContainerfile(text);
  assert.equal(stages.length, 2, "two stages: build and runtime");
  const [build, runtime] = stages as [Stage, Stage];
  assert.equal(build.name, "build", "the first stage is named build");
  return { build, runtime };
}

/** The arguments of the build stage's `deno compile` RUN (exec form). */
function compileCommand(text: string): string[] {
  const { build } = stagesOf(text);
  const compiles = build.instructions
    .filter((i) => i.keyword === "RUN")
    .filter((i) => (execForm(i) ?? i.args.split(/\s+/)).slice(0, 2).join(" ") === "deno compile");
  assert.equal(compiles.length, 1, "one `deno compile` RUN in the build stage");
  const argv = execForm(compiles[0]!);
  assert.ok(
    argv !== null,
    "deno compile runs in exec form (no shell between the file and this test)",
  );
  return argv.slice(2);
}

/** Splits `deno compile` arguments into runtime flags, compile-only options and the entry. */
function splitCompileArgs(
  args: string[],
): { flags: string[]; output: string | null; includes: string[]; entry: string } {
  const flags: string[] = [];
  const includes: string[] = [];
  let output: string | null = null;
  const rest = [...args];
  const entry = rest.pop();
  assert.ok(
    entry !== undefined && !entry.startsWith("-"),
    "deno compile ends with the entry module",
  );
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const [name, inline] = arg.split(/=(.*)/s) as [string, string | undefined];
    if (COMPILE_ONLY_FLAGS_WITH_VALUE.includes(name)) {
      const value = inline ?? rest[++i];
      assert.ok(value !== undefined, `${name} needs a value`);
      if (name === "--output" || name === "-o") output = value;
      if (name === "--include") includes.push(value);
    } else if (!COMPILE_ONLY_FLAGS.includes(name)) {
      flags.push(arg);
    }
  }
  return { flags, output, includes, entry };
}

/** `deno task start` from deno.json, split into the `deno run` flags and the entry module. */
function startTask(): { flags: string[]; entry: string } {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const start: unknown = config?.tasks?.start;
  assert.ok(typeof start === "string", "deno.json has a start task");
  assert.ok(!/["'$`\\&|;<>]/.test(start), `start task is a plain command line: ${start}`);
  const words = start.trim().split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"], "the start task is `deno run ...`");
  const entry = words.at(-1);
  assert.ok(
    entry !== undefined && !entry.startsWith("-"),
    "the start task ends with the entry module",
  );
  return { flags: words.slice(2, -1), entry };
}

/** DENO_VERSION from .ci/run: the Deno every test runs on. */
function ciDenoVersion(): string {
  const match = /^DENO_VERSION=(\S+)$/m.exec(Deno.readTextFileSync(new URL(".ci/run", ROOT)));
  assert.ok(match !== null, ".ci/run sets DENO_VERSION");
  return match[1]!;
}

/** The hive container of k8s/deployment.yaml. */
function hiveContainer() {
  const deployment = parse(Deno.readTextFileSync(new URL("k8s/deployment.yaml", ROOT)), {
    version: "1.1",
  }) as IDeployment;
  const hive = deployment.spec?.template.spec?.containers.find((c) => c.name === HIVE_CONTAINER);
  assert.ok(hive !== undefined, `k8s/deployment.yaml has a ${HIVE_CONTAINER} container`);
  return { hive, pod: deployment.spec?.template.spec };
}

/** The local modules of main.ts's module graph, as paths relative to the project root. */
async function localModulesOfMain(): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `deno info main.ts failed: ${stderr}`);
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  const root = ROOT.href;
  const local = info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
  for (const specifier of local) {
    assert.ok(specifier.startsWith(root), `main.ts imports ${specifier}, outside the project`);
  }
  return local.map((s) => s.slice(root.length));
}

// ---------------------------------------------------------------------------------------------
// The checks. Each throws an AssertionError naming what is wrong.

/** The compile flags (minus build-only ones) and entry equal `deno task start`'s. */
function checkCompileFlags(text: string): void {
  const compile = splitCompileArgs(compileCommand(text));
  const start = startTask();
  assert.deepEqual(
    [...compile.flags].sort(),
    [...start.flags].sort(),
    "deno compile's runtime flags differ from `deno task start`",
  );
  assert.equal(
    compile.entry,
    start.entry,
    "deno compile and `deno task start` run the same module",
  );
  assert.equal(compile.output, BINARY_PATH, `deno compile writes ${BINARY_PATH}`);
}

/** Every Web Worker module is embedded: `--include` names each of {@link WORKER_MODULES}. */
function checkWorkersIncluded(text: string): void {
  const { includes } = splitCompileArgs(compileCommand(text));
  for (const worker of WORKER_MODULES) {
    assert.ok(
      includes.includes(worker),
      `deno compile lacks --include ${worker} (a worker is not embedded otherwise)`,
    );
  }
}

/** The lock file is copied and both install and compile refuse to change it. */
function checkFrozenLock(text: string): void {
  const { build } = stagesOf(text);
  const copied = build.instructions
    .filter((i) => i.keyword === "COPY")
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  assert.ok(copied.includes("deno.lock"), "the build copies deno.lock");
  assert.ok(copied.includes("deno.json"), "the build copies deno.json");
  const denoRuns = build.instructions
    .filter((i) => i.keyword === "RUN")
    .map((i) => execForm(i) ?? i.args.split(/\s+/))
    .filter((argv) => argv[0] === "deno");
  assert.ok(denoRuns.some((argv) => argv[1] === "install"), "the build runs deno install");
  for (const argv of denoRuns) {
    assert.ok(argv.includes("--frozen"), `${argv.slice(0, 2).join(" ")} runs with --frozen`);
  }
}

/** The build stage is denoland/deno at the exact version CI tests with. */
function checkBuildImage(text: string): void {
  const { build } = stagesOf(text);
  const match = /^denoland\/deno:(\d+\.\d+\.\d+)$/.exec(build.image);
  assert.ok(match !== null, `the build stage ${build.image} is not denoland/deno:<exact version>`);
  assert.ok(match[1]!.startsWith("2."), "a Deno 2.x build image");
  assert.equal(match[1], ciDenoVersion(), "the build image's Deno is the one .ci/run tests with");
}

/** The runtime stage: distroless nonroot, numeric non-root USER, no RUN, no shell. */
function checkRuntimeStage(text: string): void {
  const { runtime } = stagesOf(text);
  const [repository, rest] = runtime.image.split(":") as [string, string | undefined];
  assert.equal(repository, RUNTIME_IMAGE, `the runtime stage is ${RUNTIME_IMAGE}`);
  assert.ok(
    rest === RUNTIME_TAG || rest?.startsWith(`${RUNTIME_TAG}@sha256:`),
    `the runtime image tag is ${RUNTIME_TAG} (distroless's shell-less non-root variant), not ${rest}`,
  );
  for (const instruction of runtime.instructions) {
    assert.ok(
      !["RUN", "SHELL"].includes(instruction.keyword),
      `line ${instruction.line}: ${instruction.keyword} in the runtime stage (it has no shell)`,
    );
    if (instruction.keyword === "CMD" || instruction.keyword === "ENTRYPOINT") {
      assert.ok(
        execForm(instruction) !== null,
        `line ${instruction.line}: ${instruction.keyword} in shell form needs a shell`,
      );
    }
  }
  const users = runtime.instructions.filter((i) => i.keyword === "USER");
  assert.equal(users.length, 1, "one USER in the runtime stage");
  assert.equal(users[0]!.args, `${NONROOT_UID}:${NONROOT_UID}`, "USER is nonroot, by number");
}

/** The entrypoint is the compiled binary, copied from the build stage. */
function checkEntrypoint(text: string): void {
  const { runtime } = stagesOf(text);
  const entrypoints = runtime.instructions.filter((i) => i.keyword === "ENTRYPOINT");
  assert.equal(entrypoints.length, 1, "one ENTRYPOINT");
  assert.deepEqual(execForm(entrypoints[0]!), [BINARY_PATH], `ENTRYPOINT ["${BINARY_PATH}"]`);
  const copies = runtime.instructions.filter((i) => i.keyword === "COPY");
  assert.deepEqual(
    copies.map((i) => i.args),
    [`--from=build ${BINARY_PATH} ${BINARY_PATH}`],
    "the runtime stage copies only the binary from the build stage",
  );
}

/** EXPOSE lists exactly the hive container's ports, same protocols. */
function checkExposedPorts(text: string): void {
  const { runtime } = stagesOf(text);
  const exposed = runtime.instructions
    .filter((i) => i.keyword === "EXPOSE")
    .flatMap((i) => i.args.split(/\s+/))
    .map((p) => (p.includes("/") ? p : `${p}/tcp`).toLowerCase())
    .sort();
  const { hive } = hiveContainer();
  const declared = (hive.ports ?? [])
    .map((p) => `${p.containerPort}/${(p.protocol ?? "TCP").toLowerCase()}`)
    .sort();
  assert.deepEqual(exposed, declared, "EXPOSE = the hive container's ports in k8s/deployment.yaml");
}

/** The manifest runs the hive as the image's user. */
function checkUserMatchesManifest(text: string): void {
  const { runtime } = stagesOf(text);
  const user = runtime.instructions.find((i) => i.keyword === "USER")?.args ?? "";
  const { hive, pod } = hiveContainer();
  const uid = hive.securityContext?.runAsUser ?? pod?.securityContext?.runAsUser;
  assert.equal(String(uid), user.split(":")[0], "k8s runAsUser = the image's USER");
}

/** All the text checks, by name. */
const CHECKS: Record<string, (text: string) => void> = {
  checkCompileFlags,
  checkWorkersIncluded,
  checkFrozenLock,
  checkBuildImage,
  checkRuntimeStage,
  checkEntrypoint,
  checkExposedPorts,
  checkUserMatchesManifest,
};

// ---------------------------------------------------------------------------------------------
// The tests.

const text = Deno.readTextFileSync(CONTAINERFILE);

Deno.test("Containerfile compile flags equal deno task start flags (compile itself cannot run here)", () => {
  checkCompileFlags(text);
});

Deno.test("Containerfile: deno compile --includes every Web Worker module", () => {
  checkWorkersIncluded(text);
});

Deno.test("Containerfile: WORKER_MODULES lists every worker started in main.ts's module graph", async () => {
  // A module that calls `new Worker(` names its worker by `new URL("./x.ts", import.meta.url)`.
  const workers = new Set<string>();
  for (const module of await localModulesOfMain()) {
    const source = await Deno.readTextFile(new URL(module, ROOT));
    if (!source.includes("new Worker(")) continue;
    const urls = source.matchAll(
      /new URL\(\s*"(\.{1,2}\/[^"]+\.ts)"\s*,\s*import\.meta\.url\s*\)/g,
    );
    const found = [...urls].map((m) => new URL(m[1]!, new URL(module, ROOT)).href);
    assert.ok(found.length > 0, `${module} starts a Worker from a URL this test cannot read`);
    for (const href of found) workers.add(href.slice(ROOT.href.length));
  }
  assert.deepEqual([...workers].sort(), [...WORKER_MODULES].sort());
});

Deno.test("Containerfile: deno.lock copied, install and compile --frozen", () => {
  checkFrozenLock(text);
});

Deno.test("Containerfile: build stage is denoland/deno pinned to .ci/run's DENO_VERSION", () => {
  checkBuildImage(text);
});

Deno.test("Containerfile: final stage is distroless nonroot, numeric USER, no RUN, no shell", () => {
  checkRuntimeStage(text);
});

Deno.test("Containerfile: ENTRYPOINT is the compiled binary in exec form", () => {
  checkEntrypoint(text);
});

Deno.test("Containerfile: EXPOSE equals the hive container's ports in k8s/", () => {
  checkExposedPorts(text);
});

Deno.test("Containerfile: USER equals the hive's runAsUser in k8s/", () => {
  checkUserMatchesManifest(text);
});

Deno.test("Containerfile: the build copies every local module of main.ts's graph", async () => {
  const { build } = stagesOf(text);
  const sources = build.instructions
    .filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from"))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  const modules = await localModulesOfMain();
  assert.ok(modules.includes("main.ts"), "deno info lists main.ts itself");
  for (const module of modules) {
    assert.ok(
      sources.some((source) =>
        source.endsWith("/") ? module.startsWith(source) : module === source
      ),
      `main.ts needs ${module}, which the build stage does not COPY (${sources.join(" ")})`,
    );
  }
});

/** One way to break the Containerfile, and the check that must notice. */
interface Breakage {
  check: keyof typeof CHECKS;
  what: string;
  from: string | RegExp;
  to: string;
}

const BREAKAGES: Breakage[] = [
  { check: "checkCompileFlags", what: "a dropped permission", from: '"--allow-net", ', to: "" },
  {
    check: "checkCompileFlags",
    what: "a dropped --allow-ffi",
    from: '"--allow-ffi", ',
    to: "",
  },
  {
    check: "checkWorkersIncluded",
    what: "a dropped --include of the epoll worker",
    from: '"--include", "lib/proxy/epoll/epoll_worker.ts", ',
    to: "",
  },
  {
    check: "checkWorkersIncluded",
    what: "an --include of another module than the worker",
    from: '"--include", "lib/proxy/epoll/epoll_worker.ts"',
    to: '"--include", "lib/proxy/epoll/epoll_proxy.ts"',
  },
  {
    check: "checkCompileFlags",
    what: "an extra permission",
    from: '"--allow-sys", ',
    to: '"--allow-sys", "--allow-run", ',
  },
  {
    check: "checkCompileFlags",
    what: "another entry module",
    from: '"main.ts"]',
    to: '"lib/hive/hive.ts"]',
  },
  {
    check: "checkCompileFlags",
    what: "another output path",
    from: '"--output", "/redis-hive"',
    to: '"--output", "/hive"',
  },
  {
    check: "checkFrozenLock",
    what: "an unfrozen install",
    from: '"install", "--frozen"',
    to: '"install"',
  },
  {
    check: "checkFrozenLock",
    what: "no lock file copied",
    from: "COPY deno.json deno.lock ./",
    to: "COPY deno.json ./",
  },
  {
    check: "checkBuildImage",
    what: "a floating deno tag",
    from: /denoland\/deno:\S+/,
    to: "denoland/deno:latest",
  },
  {
    check: "checkBuildImage",
    what: "a Deno other than CI's",
    from: /denoland\/deno:\S+/,
    to: "denoland/deno:2.0.0",
  },
  {
    check: "checkBuildImage",
    what: "a third stage",
    from: "FROM gcr.io",
    to: "FROM debian:12 AS extra\nFROM gcr.io",
  },
  {
    check: "checkRuntimeStage",
    what: "the debug (busybox) image",
    from: "cc-debian12:nonroot",
    to: "cc-debian12:debug-nonroot",
  },
  {
    check: "checkRuntimeStage",
    what: "a RUN in the final stage",
    from: "USER 65532",
    to: 'RUN ["/redis-hive", "--help"]\nUSER 65532',
  },
  {
    check: "checkRuntimeStage",
    what: "USER by name",
    from: "USER 65532:65532",
    to: "USER nonroot",
  },
  { check: "checkRuntimeStage", what: "USER root", from: "USER 65532:65532", to: "USER 0" },
  {
    check: "checkEntrypoint",
    what: "a shell-form ENTRYPOINT",
    from: 'ENTRYPOINT ["/redis-hive"]',
    to: "ENTRYPOINT /redis-hive",
  },
  {
    check: "checkEntrypoint",
    what: "the sources copied into the final stage",
    from: "COPY --from=build",
    to: "COPY lib/ /lib/\nCOPY --from=build",
  },
  { check: "checkExposedPorts", what: "a missing UDP port", from: "7379/udp ", to: "" },
  {
    check: "checkExposedPorts",
    what: "the election port as TCP",
    from: "7379/udp",
    to: "7379/tcp",
  },
  {
    check: "checkUserMatchesManifest",
    what: "a uid the manifest does not run as",
    from: "USER 65532:65532",
    to: "USER 1000:1000",
  },
];

Deno.test("Containerfile: every check rejects a Containerfile broken the way it guards against", async (t) => {
  const covered = new Set(BREAKAGES.map((b) => b.check));
  assert.deepEqual(
    Object.keys(CHECKS).filter((name) => !covered.has(name)),
    [],
    "every check has a breakage",
  );
  for (const breakage of BREAKAGES) {
    await t.step(`${breakage.check} rejects ${breakage.what}`, () => {
      const broken = text.replace(breakage.from, breakage.to);
      assert.notEqual(broken, text, `the breakage "${breakage.what}" found nothing to break`);
      const check = CHECKS[breakage.check]!;
      assert.throws(() => check(broken), `${breakage.check} accepted ${breakage.what}`);
      check(text); // the original still passes: the breakage, not the check, made it throw
    });
  }
});

Deno.test("Containerfile parser: continuations, comments, lower-case keywords, FROM ... AS", () => {
  const stages = parseContainerfile(
    [
      "# a comment",
      "from base:1 as one",
      "run a \\",
      "  # inside",
      "  b",
      "FROM --platform=linux/amd64 two:2",
      "EXPOSE 1",
    ].join("\n"),
  );
  assert.deepEqual(stages, [
    { image: "base:1", name: "one", instructions: [{ keyword: "RUN", args: "a b", line: 3 }] },
    { image: "two:2", name: null, instructions: [{ keyword: "EXPOSE", args: "1", line: 7 }] },
  ]);
  assert.throws(() => parseContainerfile("RUN x\nFROM y"), /RUN before any FROM/);
  assert.throws(() => parseContainerfile("FROM y\nRUN a \\"), /continuation/);
});
