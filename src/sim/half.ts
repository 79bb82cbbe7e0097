/**
 * fp16 storage emulation for the simulator: rounding float32 values to binary16 (round to nearest even, overflow to
 * ±Inf, optional flush of subnormals) and the strided surface codecs. Kept local so the interpreter's hot loops stay
 * allocation-free; results agree with `toFp16Bits`/`fromFp16Bits` of src/mil/blob.ts.
 */

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** binary16 bits of `x` (round to nearest even; NaN stays NaN; overflow → Inf; subnormals kept unless `ftz`). */
export const f16Bits = (x: number, ftz = false): number => {
  f32[0] = x
  const bits = u32[0]!
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const man = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (man !== 0 ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    if (ftz || e < -10) return sign
    // Subnormal: shift the implicit-one mantissa, round to nearest even.
    const m = man | 0x800000
    const shift = 14 - e
    let h = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rem > half || (rem === half && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (man >>> 13)
  const rem = man & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++
  return sign | h // a carry into the exponent is correct, including the overflow to Inf
}

/** Float value of binary16 bits. */
export const f16Value = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const man = h & 0x3ff
  if (exp === 0) return sign * man * 2 ** -24
  if (exp === 31) return man === 0 ? sign * Infinity : NaN
  return sign * (1 + man / 1024) * 2 ** (exp - 15)
}

/** Decode table: binary16 bits → float32 (64 Ki entries, built once). */
export const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536)
  for (let i = 0; i < 65536; i++) t[i] = f16Value(i)
  return t
})()

/** The nearest binary16 value of `x` as a number (`ftz`: subnormal results become signed zero, as the engine does). */
export const roundF16 = (x: number, ftz = false): number => F16_TABLE[f16Bits(x, ftz)]!

/**
 * Rounds `a[0..n)` in place to fp16 with the engine's rules (ties to even, |x| ≥ 65520 → ±Inf, |x| < 2^-14 → ±0),
 * the same results as `roundArrayToFp16` of ./numerics.ts. `bits` is a Uint32Array view of `a` made once by the
 * caller, so repeated calls allocate nothing.
 */
export const roundArrayF16 = (bits: Uint32Array, n = bits.length): void => {
  for (let i = 0; i < n; i++) {
    const v = bits[i]!
    const m = v & 0x7fffffff
    if (m >= 0x38800000) {
      if (m < 0x477ff000) bits[i] = ((v + 0xfff + ((v >>> 13) & 1)) & 0xffffe000) >>> 0
      else if (m <= 0x7f800000) bits[i] = (v & 0x80000000) | 0x7f800000
    } else bits[i] = v & 0x80000000
  }
}
