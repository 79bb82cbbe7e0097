import { describe, expect, it } from "@effect/vitest"
import { applyMatmulCliff, FP16_MAX, FP16_MIN_NORMAL, roundArrayToFp16, roundToFp16 } from "../../../src/sim/numerics.js"
import { rand } from "./helpers.js"

// Independent decoder of fp16 bit patterns (the spec's definition, no shortcuts).
const decode = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return sign * m * 2 ** -24
  if (e === 31) return m ? NaN : sign * Infinity
  return sign * (1 + m / 1024) * 2 ** (e - 15)
}

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!

describe("roundToFp16", () => {
  it("keeps every normal fp16 value and flushes every subnormal one to a signed zero (exhaustive)", () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = decode(h)
      const e = (h >> 10) & 0x1f
      const r = roundToFp16(v)
      if (Number.isNaN(v)) expect(Number.isNaN(r)).toBe(true)
      else if (e === 0) expect(Object.is(r, h & 0x8000 ? -0 : 0)).toBe(true)
      else if (r !== v) throw new Error(`0x${h.toString(16)}: ${v} became ${r}`)
    }
  })

  it("rounds each midpoint between neighbouring normals to the even one, and off-midpoints to the nearest", () => {
    for (let h = 0x0400; h < 0x7bff; h++) {
      const lo = decode(h), hi = decode(h + 1)
      const mid = (lo + hi) / 2
      const even = (h & 1) === 0 ? lo : hi
      const delta = (hi - lo) * 2 ** -8
      if (roundToFp16(mid) !== even || roundToFp16(-mid) !== -even) throw new Error(`tie at 0x${h.toString(16)}`)
      if (roundToFp16(mid - delta) !== lo || roundToFp16(mid + delta) !== hi) throw new Error(`near 0x${h.toString(16)}`)
    }
  })

  it("rounds 1 + 2^-11 (a tie) down to 1 and 1 + 3·2^-11 up to 1 + 2^-9", () => {
    expect(roundToFp16(1 + 2 ** -11)).toBe(1)
    expect(roundToFp16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9)
    expect(roundToFp16(0.1)).toBe(decode(0x2e66))
  })

  it("overflows from 65520 (the tie above fp16 max) to ±Inf and keeps values just below it finite", () => {
    expect(roundToFp16(65519.99)).toBe(FP16_MAX)
    expect(roundToFp16(65520)).toBe(Infinity)
    expect(roundToFp16(-65520)).toBe(-Infinity)
    expect(roundToFp16(1e9)).toBe(Infinity)
    expect(roundToFp16(-Infinity)).toBe(-Infinity)
    expect(Number.isNaN(roundToFp16(NaN))).toBe(true)
  })

  it("flushes magnitudes below 2^-14 to a zero of the input's sign, even just under it", () => {
    expect(roundToFp16(FP16_MIN_NORMAL)).toBe(FP16_MIN_NORMAL)
    expect(Object.is(roundToFp16(FP16_MIN_NORMAL * (1 - 2 ** -12)), 0)).toBe(true)
    expect(Object.is(roundToFp16(-1e-6), -0)).toBe(true)
    expect(Object.is(roundToFp16(-0), -0)).toBe(true)
    expect(Object.is(roundToFp16(3e-8), 0)).toBe(true)
  })
})

describe("roundArrayToFp16", () => {
  it("agrees with the scalar rounding on every fp16 value, midpoint and a million random fp32 bit patterns", () => {
    const vals: Array<number> = []
    for (let h = 0; h < 0x7c00; h++) {
      vals.push(decode(h), -decode(h), (decode(h) + decode(h + 1)) / 2)
    }
    let s = 12345
    for (let i = 0; i < 1_000_000; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      vals.push(f32(s))
    }
    const a = Float32Array.from(vals)
    const src = Float32Array.from(a)
    roundArrayToFp16(a)
    for (let i = 0; i < a.length; i++) {
      const want = roundToFp16(src[i]!)
      if (!Object.is(a[i], want) && !(Number.isNaN(want) && Number.isNaN(a[i]!))) {
        throw new Error(`${src[i]}: array gave ${a[i]}, scalar ${want}`)
      }
    }
  })

  it("rounds only the first n elements when n is given", () => {
    const a = Float32Array.from([0.1, 0.1, 0.1])
    roundArrayToFp16(a, 2)
    expect(a[0]).toBe(decode(0x2e66))
    expect(a[1]).toBe(decode(0x2e66))
    expect(a[2]).toBe(Math.fround(0.1))
  })

  it("maps out-of-range fp32 to ±Inf and keeps NaN", () => {
    const a = Float32Array.from([70000, -70000, Infinity, NaN, 65504, -65519])
    roundArrayToFp16(a)
    expect(Array.from(a.subarray(0, 3))).toEqual([Infinity, -Infinity, Infinity])
    expect(Number.isNaN(a[3]!)).toBe(true)
    expect(a[4]).toBe(65504)
    expect(a[5]).toBe(-65504)
  })

  it("is idempotent on random data", () => {
    const a = rand(4096, 7, -70000, 70000)
    roundArrayToFp16(a)
    const b = Float32Array.from(a)
    roundArrayToFp16(b)
    expect(Array.from(b)).toEqual(Array.from(a))
  })
})

describe("applyMatmulCliff", () => {
  it("turns |y| ≥ 32752 into ±Inf and leaves smaller values alone", () => {
    const a = Float32Array.from([32751.5, 32752, -32752, -32751, 0])
    applyMatmulCliff(a)
    expect(Array.from(a)).toEqual([32751.5, Infinity, -Infinity, -32751, 0])
  })
})
