/** Scalar fp16 conversions: exhaustive round trips, ties to even from first principles, the spec's vectors. */
import { describe, expect, it } from "@effect/vitest"
import {
  f32BitsToFp16,
  float32ToFp16,
  float32ToFp16Truncate,
  fp16ToF32Bits,
  fp16ToFloat32
} from "../../src/fp16/index.js"

const isNaNHalf = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0
/** Value of a normal fp16 (biased exponent e in 1..30, mantissa m) straight from the IEEE definition. */
const normal = (e: number, m: number) => 2 ** (e - 15) * (1 + m / 1024)
const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!

describe("fp16ToFloat32 / float32ToFp16", () => {
  it("round-trips all 65 536 bit patterns; NaNs stay NaN", () => {
    let mismatches = 0
    let nanSeen = 0
    for (let h = 0; h < 65536; h++) {
      const back = float32ToFp16(fp16ToFloat32(h))
      if (isNaNHalf(h)) {
        nanSeen++
        if (!isNaNHalf(back) || !Number.isNaN(fp16ToFloat32(h))) mismatches++
      } else if (back !== h) mismatches++
    }
    expect(nanSeen).toBe(2 * 1023)
    expect(mismatches).toBe(0)
  })

  it("decodes every pattern to the value its fields define", () => {
    const wrong: Array<number> = []
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1
      const e = (h >>> 10) & 31
      const m = h & 1023
      const v = fp16ToFloat32(h)
      const ok = e === 31 ? (m === 0 ? v === s * Infinity : Number.isNaN(v))
        : e === 0 ? Object.is(v, s * m * 2 ** -24)
        : v === s * normal(e, m)
      if (!ok) wrong.push(h)
    }
    expect(wrong).toEqual([])
  })

  it("fp16ToF32Bits agrees with the float value and keeps NaN payloads", () => {
    const wrong: Array<number> = []
    for (let h = 0; h < 65536; h++) {
      const want = isNaNHalf(h) ? ((h & 0x8000) << 16 | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0 : bitsOf(fp16ToFloat32(h))
      if (fp16ToF32Bits(h) !== want) wrong.push(h)
    }
    expect(wrong).toEqual([])
  })

  it("decodes the spec's vectors (native-protocol.md §8.4)", () => {
    expect(fp16ToFloat32(0x0001)).toBe(5.960464477539063e-8)
    expect(fp16ToFloat32(0x03ff)).toBe(6.097555160522461e-5)
    expect(fp16ToFloat32(0x0400)).toBe(6.103515625e-5)
    expect(fp16ToFloat32(0x3555)).toBe(0.333251953125)
    expect(fp16ToFloat32(0x7bff)).toBe(65504)
    expect(fp16ToFloat32(0x7c00)).toBe(Infinity)
    expect(fp16ToFloat32(0xfc00)).toBe(-Infinity)
    expect(fp16ToFloat32(0x7e00)).toBeNaN()
    expect(Object.is(fp16ToFloat32(0x8000), -0)).toBe(true)
  })

  it("encodes the spec's round-to-nearest-even vectors (native-protocol.md §8.4)", () => {
    const table: ReadonlyArray<readonly [number, number]> = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-1, 0xbc00], [0.5, 0x3800], [65504, 0x7bff], [65519, 0x7bff],
      [65520, 0x7c00], [65536, 0x7c00], [1e-5, 0x00a8], [2 ** -24, 0x0001], [2 ** -14, 0x0400], [0.1, 0x2e66],
      [0.7, 0x399a], [3.14, 0x4248], [2.72, 0x4171], [2051, 0x6802], [Infinity, 0x7c00], [NaN, 0x7e00], [42, 0x5140]
    ]
    for (const [x, h] of table) expect([x, float32ToFp16(x)]).toEqual([x, h])
  })

  it("rounds every exact midpoint between normal neighbours to the even one", () => {
    // Midpoint of (e, m) and its successor: exactly representable in float32 (12 significant bits).
    let checked = 0
    const wrong: Array<number> = []
    for (let e = 1; e <= 30; e++) {
      for (let m = 0; m < 1024; m++) {
        const lo = normal(e, m)
        const hi = m === 1023 ? 2 ** (e - 14) : normal(e, m + 1)
        const mid = (lo + hi) / 2
        const loBits = (e << 10) | m
        const even = (m & 1) === 0 ? loBits : loBits + 1
        if (float32ToFp16(mid) !== even || float32ToFp16(-mid) !== (even | 0x8000)) wrong.push(loBits)
        checked++
      }
    }
    expect(checked).toBe(30 * 1024)
    expect(wrong).toEqual([])
  })

  it("rounds just off a midpoint to the nearer neighbour", () => {
    const tie = 1 + 2 ** -11 // between 0x3C00 and 0x3C01
    expect(float32ToFp16(tie)).toBe(0x3c00)
    expect(float32ToFp16(tie + 2 ** -23)).toBe(0x3c01)
    expect(float32ToFp16(1 + 3 * 2 ** -11)).toBe(0x3c02) // between 0x3C01 (odd) and 0x3C02
    expect(float32ToFp16(1 + 3 * 2 ** -11 - 2 ** -23)).toBe(0x3c01)
  })

  it("rounds subnormal midpoints to even and keeps subnormal results", () => {
    expect(float32ToFp16(2 ** -25)).toBe(0x0000) // between 0 and the smallest subnormal
    expect(float32ToFp16(2 ** -25 * (1 + 2 ** -20))).toBe(0x0001)
    expect(float32ToFp16(3 * 2 ** -25)).toBe(0x0002)
    expect(float32ToFp16(5 * 2 ** -25)).toBe(0x0002)
    expect(float32ToFp16(-3 * 2 ** -25)).toBe(0x8002)
    expect(float32ToFp16(1023 * 2 ** -24)).toBe(0x03ff)
    expect(float32ToFp16(1023.5 * 2 ** -24)).toBe(0x0400) // tie between 0x03FF (odd) and 0x0400
    expect(float32ToFp16(2 ** -30)).toBe(0x0000)
    expect(float32ToFp16(1e-45)).toBe(0x0000) // a float32 subnormal
    expect(float32ToFp16(-1e-45)).toBe(0x8000)
  })

  it("overflows to Inf from the midpoint past 65504", () => {
    expect(float32ToFp16(65519.99609375)).toBe(0x7bff) // largest float32 below 65520
    expect(float32ToFp16(65520)).toBe(0x7c00)
    expect(float32ToFp16(-65520)).toBe(0xfc00)
    expect(float32ToFp16(1e10)).toBe(0x7c00)
    expect(float32ToFp16(3.4e38)).toBe(0x7c00)
    expect(float32ToFp16(-Infinity)).toBe(0xfc00)
  })

  it("keeps NaN a quiet NaN with its sign, whatever the payload", () => {
    for (const bits of [0x7fc00000, 0x7f800001, 0x7fbfffff, 0xffc00000, 0xff800001]) {
      const h = f32BitsToFp16(bits)
      expect(isNaNHalf(h)).toBe(true)
      expect(h & 0x7fff).toBe(0x7e00)
      expect(h & 0x8000).toBe(bits >= 0x80000000 ? 0x8000 : 0)
    }
  })

  it("rounds a double to float32 first (as a Float32Array store would)", () => {
    // 1 + 2^-11 + 2^-30 is above the 0x3C00/0x3C01 midpoint, but its float32 is the midpoint itself.
    expect(float32ToFp16(1 + 2 ** -11 + 2 ** -30)).toBe(0x3c00)
  })
})

describe("float32ToFp16Truncate", () => {
  it("matches the spec's truncation column (native-protocol.md §8.4)", () => {
    const table: ReadonlyArray<readonly [number, number]> = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-1, 0xbc00], [0.5, 0x3800], [65504, 0x7bff], [65519, 0x7bff],
      [65520, 0x7bff], [65536, 0x7c00], [1e-5, 0x0000], [2 ** -24, 0x0000], [2 ** -14, 0x0400], [0.1, 0x2e66],
      [0.7, 0x3999], [3.14, 0x4247], [2.72, 0x4170], [2051, 0x6801], [Infinity, 0x7c00], [NaN, 0x7c00], [42, 0x5140]
    ]
    for (const [x, h] of table) expect([x, float32ToFp16Truncate(x)]).toEqual([x, h])
  })

  it("drops mantissa bits (toward zero), flushes subnormal results, turns NaN into signed Inf", () => {
    expect(float32ToFp16Truncate(1 + 1023.99 * 2 ** -10)).toBe(0x3fff)
    expect(float32ToFp16Truncate(-(1 + 1023.99 * 2 ** -10))).toBe(0xbfff)
    expect(float32ToFp16Truncate(-1e-5)).toBe(0x8000)
    expect(float32ToFp16Truncate(2 ** -14 * 0.999)).toBe(0x0000)
    expect(float32ToFp16Truncate(65535)).toBe(0x7bff)
    expect(float32ToFp16Truncate(-NaN)).toBe(0x7c00) // JS NaN is positive
    const negNaN = new Float32Array(new Uint32Array([0xffc00000]).buffer)[0]!
    expect(float32ToFp16Truncate(negNaN)).toBe(0xfc00)
  })

  it("agrees with round-to-nearest-even on every exactly representable value", () => {
    const wrong: Array<number> = []
    for (let h = 0; h < 0x7c00; h++) {
      if ((h >>> 10) === 0 && h !== 0) continue // subnormals are flushed by the truncating rule
      const x = fp16ToFloat32(h)
      if (float32ToFp16Truncate(x) !== h || float32ToFp16Truncate(-x) !== (h | 0x8000)) wrong.push(h)
    }
    expect(wrong).toEqual([])
  })
})
