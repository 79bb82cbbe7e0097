/**
 * Normalisations over the channel axis of `[1, dim, 1, seq]`. `rmsNorm`: the Go RMS prelude (spec §2.1), with the
 * gain as `[1, dim, 1, 1]`. `layerNorm`: the `layer_norm` op over axis 1 with const gamma/beta of shape [dim].
 * Supported sizes: dim 1..16384, seq 1..16384. fp16 limit: Σx² over the channels must stay below 65504.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, needThat, weightsOr } from "./common.js"

const WEIGHTS = "@model_path/weights/weight.bin"

/** Sizes the normalisation generators accept. */
export const NORM_LIMITS = { dim: 16384, seq: 16384 } as const

/** Options of {@link rmsNorm}. */
export interface RmsNormOptions extends CommonOptions {
  readonly dim: number
  readonly seq: number
  /** Per-channel gain [dim]; no gain multiply when omitted. */
  readonly gain?: ArrayLike<number>
  /** Default 1e-5 (an fp16 subnormal, ≈1.0014e-5, as in the Go prelude). */
  readonly eps?: number
  /**
   * Divide by max_c |x| before squaring, so inputs up to fp16's range work (x² overflows fp16 above 256). eps then
   * applies to the rescaled values, i.e. it is eps·max|x|² in input units (the Go GenRMSNorm scheme). Default false.
   */
  readonly overflowSafe?: boolean
}

/** The checked sizes and epsilon (default 1e-5) shared by the norm generators. */
const normSizes = (op: string, o: { readonly dim: number; readonly seq: number; readonly eps?: number }) => {
  const dim = needInt(op, "dim", o.dim, 1, NORM_LIMITS.dim)
  const seq = needInt(op, "seq", o.seq, 1, NORM_LIMITS.seq)
  const eps = o.eps ?? 1e-5
  needThat(op, "eps", Number.isFinite(eps) && eps > 0, "a positive number", String(eps))
  return { dim, seq, eps }
}

/** Input `x: [1, dim, 1, seq]` → `y[c, s] = x[c, s] · (mean_c x² + eps)^(−1/2) · gain[c]`. */
export const rmsNorm = (o: RmsNormOptions): Generated => {
  const op = "Generators.rmsNorm"
  const { dim, seq, eps } = normSizes(op, o)
  const gain = o.gain === undefined ? undefined : weightsOr(op, "gain", o.gain, dim, 1, 31)
  return buildSync(buildOptions(op, o), (b) => {
    const input = b.input("x", "fp16", [1, dim, 1, seq])
    let x = input
    if (o.overflowSafe === true) {
      const mx = b.reduceMax(b.abs(input, { name: "ax" }), { axes: [1], keepDims: true, name: "mx" })
      // Floor at fp16's smallest normal so an all-zero column divides by 2^-14, not 0 (Go used 1e-6, a subnormal).
      const peak = b.maximum(mx, b.scalar(2 ** -14, "fp16", { name: "floor" }), { name: "peak" })
      x = b.realDiv(input, peak, { name: "xs" })
    }
    const sq = b.mul(x, x, { name: "sq" })
    const ss = b.reduceSum(sq, { axes: [1], keepDims: true, name: "ss" })
    // 1/dim as an exact fp16 constant: the Go generators print it with %f, which turns 1/768 into 0.001302.
    const ss2 = b.mul(ss, b.scalar(1 / dim, "fp16", { name: "invd" }), { name: "ss2" })
    const ss3 = b.add(ss2, b.scalar(eps, "fp16", { name: "eps" }), { name: "ss3" })
    const rrms = b.pow(ss3, b.scalar(-0.5, "fp16", { name: "nhalf" }), { name: "rrms" })
    // With overflowSafe, x is input/peak and rrms carries 1/peak's inverse, so the output is in input units.
    const xr = b.mul(x, rrms, { name: "xr" })
    if (gain === undefined) return { y: xr }
    // The gain is [1, dim, 1, 1]: Go's GenRMSNorm used rank-1 [dim], which numpy-broadcasts against the last
    // (spatial) axis and is ill-typed unless dim = seq (spec §7.4), one reason it never compiled.
    const g = b.const(gain, [1, dim, 1, 1], { name: "gain", file: WEIGHTS })
    return { y: b.mul(xr, g, { name: "scaled" }) }
  })
}

/** Options of {@link layerNorm}. */
export interface LayerNormOptions extends CommonOptions {
  readonly dim: number
  readonly seq: number
  /** [dim]; ones when omitted. */
  readonly gamma?: ArrayLike<number>
  /** [dim]; zeros when omitted. */
  readonly beta?: ArrayLike<number>
  /** Default 1e-5, written as fp16 like gamma/beta (the ANE wants matching dtypes: spec §7.3). */
  readonly eps?: number
}

/** Input `x: [1, dim, 1, seq]` → `y = (x − mean_c)/√(var_c + eps)·gamma + beta`. */
export const layerNorm = (o: LayerNormOptions): Generated => {
  const op = "Generators.layerNorm"
  const { dim, seq, eps } = normSizes(op, o)
  const gamma = o.gamma === undefined ? new Float32Array(dim).fill(1) : weightsOr(op, "gamma", o.gamma, dim, 1, 41)
  const beta = o.beta === undefined ? new Float32Array(dim) : weightsOr(op, "beta", o.beta, dim, 1, 42)
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, dim, 1, seq])
    const g = b.const(gamma, [dim], { name: "gamma" })
    const be = b.const(beta, [dim], { name: "beta" })
    return { y: b.layerNorm(x, { axes: [1], gamma: g, beta: be, epsilon: eps, name: "ln" }) }
  })
}
