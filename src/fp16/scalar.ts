/** Scalar IEEE binary16 conversions: round-to-nearest-even (the engine's bulk I/O rule) and the truncating variant. */

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/**
 * binary16 bits of the float32 whose bits are `u`: round to nearest, ties to even; results below 2^-14 become
 * subnormals; |x| ≥ 65520 becomes ±Inf; NaN becomes sign|0x7E00 (quiet). Same rule as the engine's NEON FCVTN.
 */
export const f32BitsToFp16 = (u: number): number => {
  const sign = (u >>> 16) & 0x8000
  const a = u & 0x7fffffff
  if (a >= 0x38800000) {
    // 0x47800000 is 65536: everything from there up (and Inf/NaN) saturates.
    if (a >= 0x47800000) return sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00)
    // Rebias the exponent by -112 and round on bit 13: + 0xFFF, + the kept LSB breaks ties to even.
    return sign | ((a - 0x37fff001 + ((a >>> 13) & 1)) >>> 13)
  }
  // At or below 2^-25 (half the smallest subnormal; the tie goes to the even value 0).
  if (a <= 0x33000000) return sign
  // Subnormal result: shift the mantissa (with its implicit one) to the 2^-24 grid, rounding to nearest even.
  const e = a >>> 23
  const m = (a & 0x7fffff) | 0x800000
  const shift = 126 - e
  let h = m >>> shift
  const rem = m & ((1 << shift) - 1)
  const half = 1 << (shift - 1)
  if (rem > half || (rem === half && (h & 1) === 1)) h++
  return sign | h
}

/**
 * binary16 bits of `x`, round-to-nearest-even. `x` is first rounded to float32 (as storing it in a Float32Array
 * would), so the result is what the engine's f32→fp16 conversion gives for that float32.
 */
export const float32ToFp16 = (x: number): number => {
  f32[0] = x
  return f32BitsToFp16(u32[0]!)
}

/**
 * binary16 bits of `x` by truncation, bit-compatible with the reference scalar helper (spec/native-protocol.md §8.4
 * rule 2, also used for IOSurfaceTensor, §14.9). Differences from {@link float32ToFp16}:
 * - mantissa bits below the 10 kept are dropped (rounds toward zero: 0.7 → 0x3999, not 0x399A);
 * - every result below 2^-14 is flushed to signed zero (no subnormals: 1e-5 → 0x0000, 2^-24 → 0x0000);
 * - only exponents past the fp16 range become ±Inf, so 65520..65535.99 stay 0x7BFF (RNE gives Inf);
 * - NaN becomes ±Inf (0x7C00 | sign), not a NaN.
 * Use it only to reproduce that helper's bytes; the engine's bulk I/O rounds to nearest even.
 */
export const float32ToFp16Truncate = (x: number): number => {
  f32[0] = x
  const u = u32[0]!
  const sign = (u >>> 16) & 0x8000
  const e = ((u >>> 23) & 0xff) - 127 + 15
  if (e <= 0) return sign
  if (e >= 31) return sign | 0x7c00
  return sign | (e << 10) | ((u & 0x7fffff) >>> 13)
}

/** float32 bits (unsigned) of the binary16 value `h`: exact; NaN payloads are kept, shifted left 13. */
export const fp16ToF32Bits = (h: number): number => {
  const sign = (h & 0x8000) << 16
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0
  if (m === 0) return sign >>> 0
  // Subnormal: normalise so the leading one becomes the implicit bit.
  let exp = 113
  let mm = m
  while ((mm & 0x400) === 0) {
    mm <<= 1
    exp--
  }
  return (sign | (exp << 23) | ((mm & 0x3ff) << 13)) >>> 0
}

/** The value of the binary16 bits `h` (exact: every fp16 value is a float32 and a double). */
export const fp16ToFloat32 = (h: number): number => {
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  const v = e === 0 ? m * 2 ** -24 : e === 0x1f ? (m === 0 ? Infinity : NaN) : 2 ** (e - 15) * (1 + m / 1024)
  return (h & 0x8000) !== 0 ? -v : v
}
