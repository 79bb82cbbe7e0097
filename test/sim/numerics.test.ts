import { describe, expect, it } from "vitest"
import { roundBitsToFp16, roundToFp16 } from "../../src/sim/numerics.js"
import { program, randoms, runMil } from "./helpers.js"

describe("simulator numerics: ane vs exact", () => {
  const absorb = program(
    "tensor<fp16, [1, 1, 1, 32]> x",
    `    tensor<fp16, []> big = const()[name = string("big"), val = tensor<fp16, []>(2048)];
    tensor<fp16, [1, 1, 1, 32]> s = add(x = x, y = big)[name = string("s")];
    tensor<fp16, [1, 1, 1, 32]> y = sub(x = s, y = big)[name = string("y")];
    tensor<fp16, [1, 1, 1, 32]> sq = mul(x = x, y = x)[name = string("sq")];
    tensor<fp16, []> tiny = const()[name = string("tiny"), val = tensor<fp16, []>(0x1p-10)];
    tensor<fp16, [1, 1, 1, 32]> t = mul(x = x, y = tiny)[name = string("t")];`,
    "y, sq, t"
  )

  it("fp16 storage between ops absorbs small addends, overflows to Inf and flushes subnormals; exact does not", async () => {
    const x = new Float32Array(32).fill(0.5)
    x[1] = 300 // 300² = 90000 > fp16 max
    x[2] = 0.01 // 0.01 / 1024 is below the smallest fp16 normal
    const ane = await runMil(absorb, { x })
    const exact = await runMil(absorb, { x }, { numerics: "exact" })
    // 2048.5 is not an fp16 value (spacing 2 at 2048): rounds to 2048, so (x + 2048) − 2048 = 0.
    expect(ane.y![0]).toBe(0)
    expect(exact.y![0]).toBe(0.5)
    expect(ane.sq![1]).toBe(Infinity)
    // exact keeps float32 internally; the fp16 output surface then saturates at the I/O conversion.
    expect(exact.sq![0]).toBe(0.25)
    expect(ane.t![2]).toBe(0)
    expect(exact.t![2]).not.toBe(0)
  })

  it("matmul results past the 32752 cliff come back as Inf in ane numerics only", async () => {
    const text = program(
      "tensor<fp16, [1, 1, 2, 2]> a, tensor<fp16, [1, 1, 2, 2]> b",
      `    tensor<fp16, [1, 1, 2, 2]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string("y")];`,
      "y"
    )
    const a = [128, 128, 1, 1], b = [128, 1, 129, 1]
    const ane = await runMil(text, { a, b })
    const exact = await runMil(text, { a, b }, { numerics: "exact" })
    // Row 0: 128·128 + 128·129 = 32896 ≥ 32752 → Inf; 128 + 128 = 256 stays.
    expect(Array.from(ane.y!)).toEqual([Infinity, 256, 257, 2])
    expect(Array.from(exact.y!)).toEqual([32896, 256, 257, 2])
  })

  it("round is half away from zero on the engine, half to even in exact numerics", async () => {
    const text = program(
      "tensor<fp32, [1, 4]> x",
      `    tensor<fp32, [1, 4]> y = round(x = x)[name = string("y")];`,
      "y"
    )
    const x = [0.5, 1.5, 2.5, -2.5]
    expect(Array.from((await runMil(text, { x })).y!)).toEqual([1, 2, 3, -3])
    expect(Array.from((await runMil(text, { x }, { numerics: "exact" })).y!)).toEqual([0, 2, 2, -2])
  })

  it("bit-level array rounding agrees with roundToFp16 and rounds ties to even", () => {
    const v = randoms(4096, 7).map((x, i) => x * 2 ** ((i % 40) - 20))
    const extra = [65504, 65519, 65520, -70000, 6.1e-5, 6.2e-5, 0, -0, NaN, Infinity, 2048.5, 1 + 2 ** -11]
    const a = Float32Array.from([...v, ...extra])
    const expected = Array.from(a, (x) => roundToFp16(x))
    roundBitsToFp16(new Uint32Array(a.buffer))
    expect(Array.from(a)).toEqual(expected)
    expect(roundToFp16(1 + 2 ** -11)).toBe(1) // tie → even
    expect(roundToFp16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9)
  })
})
