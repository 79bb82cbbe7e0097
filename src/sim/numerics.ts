/**
 * fp16 numerics of the simulated ANE: rounding of values to the engine's half-precision grid and the documented
 * "cliffs" the engine shows (spec/ane-field-facts.md §4.3).
 *
 * Modelled here:
 * - Compute is fp16 (hollance `docs/16-bit.md`): every op output is rounded to fp16, round-to-nearest-even.
 * - Overflow: |x| ≥ 65520 (the midpoint between fp16 max 65504 and 2^16, ties to even go up) becomes ±Inf.
 * - Denormals are flushed (M3 Ultra notes in §4.3; Go's float32ToFP16 in spec/mil-format.md does the same):
 *   any |x| < 2^-14 (the smallest fp16 normal) becomes a zero of the same sign. The test is made on the value
 *   before rounding, so 2^-14·(1 − 2^-12) flushes to zero rather than rounding up to 2^-14.
 * - NaN stays NaN (the engine's NaN handling is undocumented beyond "not propagated by nan_to_num").
 * - Matmul overflow cliff: matmul/linear/conv outputs flip to ±Inf at |y| ≥ 32752 = fp16_max/2 on every chip
 *   (ANEForge `bench/results/ROOFLINES.md`): see {@link applyMatmulCliff}.
 * - `round` is half-away-from-zero on the engine (ANEForge PR #116): the `round` unary kernel does that.
 * Not modelled: per-product fp16 rounding inside accumulations (one third-party report on M3 Ultra), the
 * pre-A16 width-offset slice clamp at |x| > 4094, and `round`'s errors for |x| ≥ 1024 (no rule is documented).
 */

import { kernelInPlace, kernelOffset, roundKernelAt } from "./kernels/gemm.js"

/** How the simulator rounds: `"ane"` rounds op outputs to fp16 with the engine's cliffs, `"exact"` keeps fp32. */
export type Numerics = "ane" | "exact"

/** Largest finite fp16 value. */
export const FP16_MAX = 65504
/** Smallest positive normal fp16 value (2^-14); anything smaller in magnitude is flushed to ±0. */
export const FP16_MIN_NORMAL = 6.103515625e-5
/** Magnitude from which matmul-class outputs flip to ±Inf on the engine (fp16_max / 2). */
export const MATMUL_CLIFF = 32752

const f64 = new Float64Array(1)
const f64Hi = new Uint32Array(f64.buffer, 4, 1)

/**
 * Rounds a number to the nearest fp16 value (ties to even), flushing subnormals to signed zero and overflowing to
 * ±Inf, and returns it as a number. Exact for any float64 input (no double rounding through fp32).
 */
export const roundToFp16 = (x: number): number => {
  if (x !== x) return NaN
  const a = Math.abs(x)
  if (a >= 65520) return x > 0 ? Infinity : -Infinity
  if (a < FP16_MIN_NORMAL) return x > 0 || Object.is(x, 0) ? 0 : -0
  // Adding 2^(e+42) makes the float64 ulp equal to the fp16 ulp 2^(e-10) of a's binade; the FPU rounds to even.
  f64[0] = a
  const e = ((f64Hi[0]! >>> 20) & 0x7ff) - 1023
  const m = 2 ** (e + 42)
  const r = (a + m) - m
  return x > 0 ? r : -r
}

/**
 * Rounds the first `n` (default all) float32 bit patterns in `u` to fp16 in place, with the same rules as
 * {@link roundToFp16}. Callers on a hot path keep one Uint32Array view so repeated calls allocate nothing.
 */
export const roundBitsToFp16 = (u: Uint32Array, n: number = u.length): void => {
  for (let i = 0; i < n; i++) {
    const v = u[i]!
    const m = v & 0x7fffffff
    if (m >= 0x38800000) {
      if (m < 0x477ff000) {
        // Round the low 13 mantissa bits away, to nearest even; a carry moves into the exponent correctly.
        u[i] = ((v + 0xfff + ((v >>> 13) & 1)) & 0xffffe000) >>> 0
      } else if (m <= 0x7f800000) {
        u[i] = (v & 0x80000000) | 0x7f800000
      }
    } else {
      u[i] = v & 0x80000000
    }
  }
}

// Below this many elements the JS loop costs less than reaching the WebAssembly kernel.
const KERNEL_MIN = 64

/**
 * Rounds the first `n` (default all) elements of `a` to fp16 in place (see {@link roundBitsToFp16}): on the
 * WebAssembly SIMD kernel (fp16round.wat, the same bits) where it runs, else in JS.
 */
export const roundArrayToFp16 = (a: Float32Array, n: number = a.length): void => {
  if (n >= KERNEL_MIN && kernelInPlace("round_fp16", a, n)) return
  roundBitsToFp16(new Uint32Array(a.buffer, a.byteOffset, a.length), n)
}

/**
 * A function that rounds all of `a` to fp16 in place (see {@link roundArrayToFp16}), made once so that calling it
 * allocates nothing: an evaluation runs it for every fp16 op output.
 */
export const fp16Rounder = (a: Float32Array): (() => void) => {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const n = a.length
  // Where `a` lies never changes: looked up once, not per evaluation.
  const off = n < KERNEL_MIN ? -1 : kernelOffset(a)
  return () => {
    if (off < 0 || !roundKernelAt("round_fp16", off, n)) roundBitsToFp16(bits, n)
  }
}

/**
 * The matmul overflow cliff: sets every element of `a` (first `n`) with |y| ≥ 32752 to ±Inf, as the engine does
 * for matmul, linear and conv outputs (spec/ane-field-facts.md §4.3). Apply before {@link roundArrayToFp16}.
 */
export const applyMatmulCliff = (a: Float32Array, n: number = a.length): void => {
  if (n >= KERNEL_MIN && kernelInPlace("cliff", a, n)) return
  for (let i = 0; i < n; i++) {
    const v = a[i]!
    if (v >= MATMUL_CLIFF) a[i] = Infinity
    else if (v <= -MATMUL_CLIFF) a[i] = -Infinity
  }
}
