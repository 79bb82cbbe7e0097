/** `ane run` helpers in-process: the .npy codec, seeded inputs, and typed failures of the command. */
import { Effect, Either, Option } from "effect"
import { describe, expect, it } from "vitest"
import { readNpy, writeNpy } from "../../src/cli/npy.js"
import { seededRandom } from "../../src/cli/random.js"
import { runCommand } from "../../src/cli/run.js"

describe("npy", () => {
  it("round-trips fp16 and fp32 with numpy's v1.0 header layout", () => {
    const data = Float32Array.from([0, 1.5, -2.25, 65504, 1e-3])
    for (const dtype of ["<f2", "<f4"] as const) {
      const bytes = writeNpy(data, [5], dtype)
      expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])
      const headerLen = bytes[8]! | (bytes[9]! << 8)
      expect((10 + headerLen) % 64).toBe(0)
      const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen))
      expect(header).toContain(`'descr': '${dtype}'`)
      expect(header).toContain("'shape': (5,)")
      expect(header.endsWith("\n")).toBe(true)
      const back = readNpy(bytes)
      if (!("data" in back)) throw back
      expect(back.shape).toEqual([5])
      if (dtype === "<f4") expect(Array.from(back.data)).toEqual(Array.from(data))
      else expect(back.data[4]).toBeCloseTo(1e-3, 6)
    }
  })

  it("reads other numpy dtypes and rejects Fortran order and bad magic", () => {
    const header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }"
    const pad = 64 - ((10 + header.length + 1) % 64)
    const h = header + " ".repeat(pad) + "\n"
    const bytes = new Uint8Array(10 + h.length + 16)
    bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8])
    for (let i = 0; i < h.length; i++) bytes[10 + i] = h.charCodeAt(i)
    new DataView(bytes.buffer).setInt32(10 + h.length + 4, -7, true)
    const a = readNpy(bytes)
    if (!("data" in a)) throw a
    expect(Array.from(a.data)).toEqual([0, -7, 0, 0])
    const f = new Uint8Array(bytes)
    const fo = "True "
    const at = h.indexOf("False")
    for (let i = 0; i < fo.length; i++) f[10 + at + i] = fo.charCodeAt(i)
    expect((readNpy(f) as { _tag?: string })._tag).toBe("InvalidArgumentError")
    expect((readNpy(new Uint8Array(16)) as { _tag?: string })._tag).toBe("InvalidArgumentError")
  })

  it("seeded inputs are deterministic and in [-1, 1)", () => {
    const a = seededRandom(3), b = seededRandom(3), c = seededRandom(4)
    const xs = Array.from({ length: 100 }, a)
    expect(xs).toEqual(Array.from({ length: 100 }, b))
    expect(xs).not.toEqual(Array.from({ length: 100 }, c))
    expect(xs.every((v) => v >= -1 && v < 1)).toBe(true)
  })
})

describe("ane run failures", () => {
  const base = {
    weights: Option.none<string>(), input: [] as Array<string>, output: Option.none<string>(),
    backend: "simulator" as const, numerics: "ane" as const, rules: "error" as const, json: true, seed: 0
  }
  it("an unknown input name is an InvalidArgumentError listing the inputs", async () => {
    const r = await Effect.runPromise(Effect.either(runCommand({ ...base, program: "examples/linear.mil", input: ["nope=random"] })))
    expect(Either.isLeft(r) && r.left._tag).toBe("InvalidArgumentError")
    expect(Either.isLeft(r) && r.left.message).toContain("one of x")
  })
  it("a missing program file is an InvalidArgumentError", async () => {
    const r = await Effect.runPromise(Effect.either(runCommand({ ...base, program: "examples/none.mil" })))
    expect(Either.isLeft(r) && r.left._tag).toBe("InvalidArgumentError")
  })
})
