/**
 * Weight-file errors never quote bytes of a file that is not a weight blob: a BLOBFILE may name any file, and its
 * message must not become a way to read it (docs/security.md). Fields of a file that is a blob may be quoted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Scope } from "effect"
import { readBlobAt, readBlobFile, writeBlobFile } from "../../src/mil/blob.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"
import * as Sim from "../../src/sim/SimBackend.js"

const encoder = new TextEncoder()
/** A text file: bytes 4..7 are "SECR" of "TOP-SECRET-…". */
const secretText = encoder.encode("TOP-SECRET-" + "k3y=0123456789abcdef;".repeat(8))

/** Every way the four bytes at `at` could be printed: u32 either endianness, decimal and hex, and as text. */
const spellings = (bytes: Uint8Array, at: number): Array<string> => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: Array<string> = [new TextDecoder().decode(bytes.subarray(at, at + 4))]
  for (const little of [true, false]) {
    const v = dv.getUint32(at, little)
    out.push(String(v), v.toString(16), v.toString(16).toUpperCase())
  }
  return out
}

const message = (r: unknown): string => {
  expect(r).toBeInstanceOf(InvalidArgumentError)
  const e = r as InvalidArgumentError
  return [e.message, e.argument, e.expected, e.actual, e.hint ?? ""].join("\n")
}

describe("weight-file messages", () => {
  it("a file that is not a blob: says so, without quoting its bytes 4..7", () => {
    for (const text of [message(readBlobFile(secretText)), message(readBlobAt(secretText, 64))]) {
      expect(text).toContain("not a MIL weight blob")
      for (const s of spellings(secretText, 4)) expect(text).not.toContain(s)
      expect(text).not.toContain("SECRET")
    }
  })

  it("a BLOBFILE offset at no metadata record: says so, without quoting the bytes there", () => {
    const b = new Uint8Array(192)
    b.set(secretText.subarray(0, 128), 64)
    new DataView(b.buffer).setUint32(4, 2, true) // a valid header, then arbitrary bytes
    const text = message(readBlobAt(b, 64))
    expect(text).toContain("no blob metadata record")
    for (const s of spellings(b, 64)) expect(text).not.toContain(s)
  })

  it("a blob's own header fields are still reported (they are what the format defines)", () => {
    const ok = writeBlobFile([{ dtype: "fp16", data: [1, 2, 3, 4] }])
    if (!("bytes" in ok)) throw ok
    const b = ok.bytes.slice()
    b[68] = 99
    expect(message(readBlobAt(b, 64))).toContain("99")
  })

  it.effect("the simulator's compile error for a non-blob weight file quotes none of its bytes", () =>
    Effect.gen(function*() {
      const text = `program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
    tensor<fp16, [1, 4, 1, 1]> s = const()[name = string("s"), val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
    tensor<fp16, [1, 4, 1, 32]> y = mul(x = x, y = s)[name = string("y")];
  } -> (y);
}
`
      const backend = yield* Sim.make({ latency: "off", rules: "off" })
      const scope = yield* Scope.make()
      const e = yield* Effect.flip(backend.compile(CompileOptions.mil({
        text, weights: [{ path: "@model_path/weights/w.bin", bytes: secretText }]
      })).pipe(Scope.extend(scope)))
      expect(e._tag).toBe("CompileError")
      expect(e.message).toContain("not a MIL weight blob")
      for (const s of spellings(secretText, 4)) expect(e.message).not.toContain(s)
    }).pipe(Effect.scoped))
})
