/** The Sentinel endpoint's RESP codec: requests in any chunking, the limits, replies in RESP2/3. */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeReply,
  reply,
  replyText,
  RequestParser,
  RespProtocolError,
  splitInline,
} from "../../lib/sentinel/resp.ts";

const enc = new TextEncoder();

function multibulk(args: readonly string[]): Uint8Array {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${enc.encode(a).length}\r\n${a}\r\n`;
  return enc.encode(s);
}

function parseAll(p: RequestParser): string[][] {
  const out: string[][] = [];
  for (let c = p.next(); c !== null; c = p.next()) out.push(c);
  return out;
}

Deno.test("resp: multibulk and inline requests, whole or byte by byte", () => {
  const bytes = enc.encode(
    "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n" +
      "PING\r\n\r\nsubscribe \"+switch-master\" 'x y'\n",
  );
  const whole = new RequestParser();
  whole.push(bytes);
  const expected = [
    ["SENTINEL", "get-master-addr-by-name", "mymaster"],
    ["PING"],
    ["subscribe", "+switch-master", "x y"],
  ];
  assert.deepEqual(parseAll(whole), expected);
  const bytewise = new RequestParser();
  const got: string[][] = [];
  for (const b of bytes) {
    bytewise.push(new Uint8Array([b]));
    got.push(...parseAll(bytewise));
  }
  assert.deepEqual(got, expected);
  assert.equal(bytewise.buffered, 0);
});

Deno.test("resp: any commands in any chunking parse back to themselves (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 6 }), {
        minLength: 1,
        maxLength: 5,
      }),
      fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 20 }),
      (commands, cuts) => {
        const all = commands.map(multibulk);
        const bytes = new Uint8Array(all.reduce((n, b) => n + b.length, 0));
        let at = 0;
        for (const b of all) {
          bytes.set(b, at);
          at += b.length;
        }
        const p = new RequestParser();
        const got: string[][] = [];
        let pos = 0;
        let i = 0;
        while (pos < bytes.length) {
          const n = cuts[i++ % cuts.length]!;
          p.push(bytes.subarray(pos, pos + n));
          pos += n;
          got.push(...parseAll(p));
        }
        assert.deepEqual(got, commands);
      },
    ),
  );
});

Deno.test("resp: limits and malformed framing are protocol errors", () => {
  const limits = { maxArgs: 3, maxCommandBytes: 64 };
  const cases: [string, RegExp][] = [
    ["*4\r\n", /more than 3 arguments/],
    ["*1\r\n$65\r\n", /argument over 64 bytes/],
    ["*2\r\n$30\r\n" + "a".repeat(30) + "\r\n$30\r\n", /command over 64 bytes/],
    ["*1\r\n+PING\r\n", /expected '\$'/],
    ["*x\r\n", /invalid multibulk length/],
    ["*1\r\n$4\r\nPINGxx", /not terminated by CRLF/],
    ["PING " + "a".repeat(70), /line over 64 bytes|command over 64 bytes/],
    ['PING "open\r\n', /unbalanced quotes/],
  ];
  for (const [input, error] of cases) {
    const p = new RequestParser(limits);
    p.push(enc.encode(input));
    assert.throws(
      () => p.next(),
      (e: unknown) => e instanceof RespProtocolError && error.test(e.message),
      input,
    );
  }
  // A partial command under the limits waits for more.
  const p = new RequestParser(limits);
  p.push(enc.encode("*2\r\n$4\r\nPING\r\n$2\r\nh"));
  assert.equal(p.next(), null);
  p.push(enc.encode("i\r\n"));
  assert.deepEqual(p.next(), ["PING", "hi"]);
});

Deno.test("resp: replies in RESP2 and RESP3", () => {
  const m = reply.stringMap([["ip", "10.0.0.1"], ["port", "6379"]]);
  assert.equal(replyText(m, 2), "*4\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n$4\r\nport\r\n$4\r\n6379\r\n");
  assert.equal(replyText(m, 3), "%2\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n$4\r\nport\r\n$4\r\n6379\r\n");
  const push = reply.push([reply.bulk("message"), reply.bulk("c"), reply.bulk("m")]);
  assert.equal(replyText(push, 2), "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
  assert.equal(replyText(push, 3), ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
  assert.equal(replyText(reply.nullBulk(), 2), "$-1\r\n");
  assert.equal(replyText(reply.nullArray(), 2), "*-1\r\n");
  assert.equal(replyText(reply.nullBulk(), 3), "_\r\n");
  assert.equal(replyText(reply.verbatim("# S\r\n"), 2), "$5\r\n# S\r\n\r\n");
  assert.equal(replyText(reply.verbatim("# S\r\n"), 3), "=9\r\ntxt:# S\r\n\r\n");
  assert.equal(replyText(reply.error("ERR a\r\nb"), 2), "-ERR a  b\r\n");
  assert.equal(replyText(reply.integer(-3), 3), ":-3\r\n");
  assert.equal(replyText(reply.bulk("é"), 2), "$2\r\né\r\n", "lengths count bytes");
  assert.deepEqual(encodeReply(reply.simple("OK"), 2), enc.encode("+OK\r\n"));
});

Deno.test("resp: inline splitting as redis does", () => {
  assert.deepEqual(splitInline('  a  "b c" \'d\'  "e\\n"'), ["a", "b c", "d", "e\n"]);
  assert.deepEqual(splitInline(""), []);
  assert.throws(() => splitInline('"a"b'), RespProtocolError);
});
