/** Activation quantize/dequantize (iOS18 MIL): affine int8/uint8 with a scalar or per-axis scale and zero point. */
import type { NumArray } from "./shape.js"
import type { AxisSplit } from "./reduce.js"

/** Integer range of a quantized dtype. */
export const quantRange = (dtype: "int8" | "uint8"): readonly [number, number] =>
  dtype === "int8" ? [-128, 127] : [0, 255]

const roundHalfEven = (v: number): number => {
  const f = Math.floor(v)
  const d = v - f
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f
}

/**
 * quantize: out = clamp(round_half_even(x / scale) + zero_point, dtype range). `split` is the per-axis split
 * from splitAtAxis (scale and zeroPoint of length split.dim), or `{ outer: 1, dim: 1, inner: n }` for scalars.
 */
export const quantize = (
  x: NumArray, split: AxisSplit, scale: Float32Array, zeroPoint: NumArray | undefined, dtype: "int8" | "uint8",
  out: NumArray
): void => {
  const [lo, hi] = quantRange(dtype)
  const { outer, dim, inner } = split
  let q = 0
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < dim; c++) {
      const s = scale[c]!, z = zeroPoint !== undefined ? zeroPoint[c]! : 0
      for (let i = 0; i < inner; i++, q++) out[q] = Math.min(Math.max(roundHalfEven(x[q]! / s) + z, lo), hi)
    }
  }
}

/** dequantize: out = scale·(x − zero_point), with the same scalar/per-axis convention as {@link quantize}. */
export const dequantize = (
  x: NumArray, split: AxisSplit, scale: Float32Array, zeroPoint: NumArray | undefined, out: Float32Array
): void => {
  const { outer, dim, inner } = split
  let q = 0
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < dim; c++) {
      const s = scale[c]!, z = zeroPoint !== undefined ? zeroPoint[c]! : 0
      for (let i = 0; i < inner; i++, q++) out[q] = s * (x[q]! - z)
    }
  }
}
