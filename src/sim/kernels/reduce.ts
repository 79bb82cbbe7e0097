/**
 * Reductions over arbitrary axes and the normalisations built on them (softmax, layer/batch/instance/l2/rms norm).
 * Every sum runs in fp32 (one rounding per addition, in index order), as the engine accumulates.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { checkShape, invalid, normAxes, normAxis, type NumArray, type Shape, showShape, stridesOf } from "./shape.js"

const fround = Math.fround

/**
 * A checked reduction: for each output element the input offset of its first element (`keptOffsets`) and, shared
 * by all, the offsets of the reduced elements relative to it (`reducedOffsets`, row-major over the reduced axes in
 * increasing axis order, the order of layer_norm's gamma).
 */
export interface ReducePlan {
  readonly outShape: ReadonlyArray<number>
  readonly axes: ReadonlyArray<number>
  readonly keptOffsets: Int32Array
  readonly reducedOffsets: Int32Array
}

const offsets = (shape: ReadonlyArray<number>, strides: ReadonlyArray<number>): Int32Array => {
  let n = 1
  for (const d of shape) n *= d
  const out = new Int32Array(n)
  const r = shape.length
  for (let i = 0; i < n; i++) {
    let rem = i, off = 0
    for (let d = r - 1; d >= 0; d--) {
      const idx = rem % shape[d]!
      rem = (rem - idx) / shape[d]!
      off += idx * strides[d]!
    }
    out[i] = off
  }
  return out
}

/**
 * Plans a reduction of x over `axes` (negative allowed; `undefined` = all axes), keeping reduced dims as 1 when
 * `keepDims`. A reduced dim of size 0 is allowed (sum 0, prod 1, max −Inf, min +Inf, mean NaN).
 */
export const planReduce = (
  xShape: Shape, axes: ReadonlyArray<number> | undefined, keepDims = false
): Either.Either<ReducePlan, InvalidArgumentError> => {
  const bad = checkShape("reduce", "x", xShape)
  if (bad) return Either.left(bad)
  const r = xShape.length
  const ax = normAxes("reduce", "axes", axes ?? xShape.map((_, i) => i), r)
  if (Either.isLeft(ax)) return Either.left(ax.left)
  const strides = stridesOf(xShape)
  const keptDims: Array<number> = [], keptStrides: Array<number> = []
  const redDims: Array<number> = [], redStrides: Array<number> = []
  const outShape: Array<number> = []
  for (let d = 0; d < r; d++) {
    if (ax.right.includes(d)) {
      redDims.push(xShape[d]!)
      redStrides.push(strides[d]!)
      if (keepDims) outShape.push(1)
    } else {
      keptDims.push(xShape[d]!)
      keptStrides.push(strides[d]!)
      outShape.push(xShape[d]!)
    }
  }
  return Either.right({
    outShape, axes: ax.right,
    keptOffsets: offsets(keptDims, keptStrides), reducedOffsets: offsets(redDims, redStrides)
  })
}

/** Reductions (MIL `reduce_*` names without the prefix). */
export type ReduceOp =
  | "sum" | "mean" | "max" | "min" | "prod" | "l1_norm" | "l2_norm" | "sum_square" | "log_sum" | "log_sum_exp"

/** Runs a planned reduction into out (one element per plan.keptOffsets entry). */
export const reduce = (op: ReduceOp, plan: ReducePlan, x: NumArray, out: NumArray): void => {
  const ko = plan.keptOffsets, ro = plan.reducedOffsets
  const R = ro.length
  for (let o = 0; o < ko.length; o++) {
    const base = ko[o]!
    let acc: number
    switch (op) {
      case "sum": case "mean": case "log_sum":
        acc = 0
        for (let r = 0; r < R; r++) acc = fround(acc + x[base + ro[r]!]!)
        if (op === "mean") acc = acc / R
        else if (op === "log_sum") acc = Math.log(acc)
        break
      case "max":
        acc = -Infinity
        for (let r = 0; r < R; r++) { const v = x[base + ro[r]!]!; if (v > acc || v !== v) acc = v }
        break
      case "min":
        acc = Infinity
        for (let r = 0; r < R; r++) { const v = x[base + ro[r]!]!; if (v < acc || v !== v) acc = v }
        break
      case "prod":
        acc = 1
        for (let r = 0; r < R; r++) acc = fround(acc * x[base + ro[r]!]!)
        break
      case "l1_norm":
        acc = 0
        for (let r = 0; r < R; r++) acc = fround(acc + Math.abs(x[base + ro[r]!]!))
        break
      case "l2_norm": case "sum_square":
        acc = 0
        for (let r = 0; r < R; r++) { const v = x[base + ro[r]!]!; acc = fround(acc + fround(v * v)) }
        if (op === "l2_norm") acc = Math.sqrt(acc)
        break
      case "log_sum_exp": {
        // Shifted by the max so large inputs do not overflow.
        let m = -Infinity
        for (let r = 0; r < R; r++) m = Math.max(m, x[base + ro[r]!]!)
        acc = 0
        if (m === Infinity || m === -Infinity) { out[o] = m; continue }
        for (let r = 0; r < R; r++) acc = fround(acc + fround(Math.exp(x[base + ro[r]!]! - m)))
        acc = m + Math.log(acc)
        break
      }
    }
    out[o] = acc
  }
}

/**
 * argmax/argmin along one axis of x into out (Int32Array, x's shape without the axis, or with it as 1); the first
 * index wins a tie, and a NaN wins over any number.
 */
export const argReduce = (
  op: "argmax" | "argmin", plan: ReducePlan, x: NumArray, out: Int32Array | Float32Array
): void => {
  const ko = plan.keptOffsets, ro = plan.reducedOffsets
  const max = op === "argmax"
  for (let o = 0; o < ko.length; o++) {
    const base = ko[o]!
    let best = 0, bv = x[base + ro[0]!]!
    for (let r = 1; r < ro.length && bv === bv; r++) {
      const v = x[base + ro[r]!]!
      if (v !== v || (max ? v > bv : v < bv)) { best = r; bv = v }
    }
    out[o] = best
  }
}

/** Plans an argmax/argmin over one axis (a reduce plan over that single axis). */
export const planArgReduce = (
  xShape: Shape, axis: number, keepDims = false
): Either.Either<ReducePlan, InvalidArgumentError> => {
  const a = normAxis("reduce_argmax", "axis", axis, xShape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  if (xShape[a.right] === 0) {
    return Either.left(invalid("reduce_argmax", "x", "a non-empty reduced axis", showShape(xShape)))
  }
  return planReduce(xShape, [a.right], keepDims)
}

/** Outer × axis × inner split of a shape at one axis (for softmax and other single-axis ops). */
export interface AxisSplit {
  readonly outer: number
  readonly dim: number
  readonly inner: number
}

/** Splits a shape at a (possibly negative) axis. */
export const splitAtAxis = (
  op: string, shape: Shape, axis: number
): Either.Either<AxisSplit, InvalidArgumentError> => {
  const a = normAxis(op, "axis", axis, shape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  let outer = 1, inner = 1
  for (let d = 0; d < a.right; d++) outer *= shape[d]!
  for (let d = a.right + 1; d < shape.length; d++) inner *= shape[d]!
  return Either.right({ outer, dim: shape[a.right]!, inner })
}

/** Numerically stable softmax along the split axis: exp(x − max) / Σ exp(x − max), sums in fp32. */
export const softmax = (split: AxisSplit, x: Float32Array, out: Float32Array): void => {
  const { outer, dim, inner } = split
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * dim * inner + i
      let m = -Infinity
      for (let k = 0; k < dim; k++) m = Math.max(m, x[base + k * inner]!)
      let s = 0
      for (let k = 0; k < dim; k++) {
        const e = fround(Math.exp(x[base + k * inner]! - m))
        out[base + k * inner] = e
        s = fround(s + e)
      }
      for (let k = 0; k < dim; k++) out[base + k * inner] = out[base + k * inner]! / s
    }
  }
}

/**
 * layer_norm over a reduce plan's axes: (x − mean)/√(var + ε)·γ + β with the biased variance; gamma and beta (if
 * given) are indexed like plan.reducedOffsets (x's dims at the axes, in increasing axis order).
 */
export const layerNorm = (
  plan: ReducePlan, x: Float32Array, gamma: Float32Array | undefined, beta: Float32Array | undefined,
  epsilon: number, out: Float32Array
): void => {
  const ko = plan.keptOffsets, ro = plan.reducedOffsets
  const R = ro.length
  for (let o = 0; o < ko.length; o++) {
    const base = ko[o]!
    let s = 0
    for (let r = 0; r < R; r++) s = fround(s + x[base + ro[r]!]!)
    const mean = fround(s / R)
    let v = 0
    for (let r = 0; r < R; r++) { const d = fround(x[base + ro[r]!]! - mean); v = fround(v + fround(d * d)) }
    const inv = fround(1 / Math.sqrt(fround(v / R) + epsilon))
    for (let r = 0; r < R; r++) {
      const i = base + ro[r]!
      let y = fround(fround(x[i]! - mean) * inv)
      if (gamma !== undefined) y = fround(y * gamma[r]!)
      if (beta !== undefined) y = y + beta[r]!
      out[i] = y
    }
  }
}

/** RMS norm over a reduce plan's axes: x/√(mean(x²) + ε)·γ (gamma indexed like layerNorm's). */
export const rmsNorm = (
  plan: ReducePlan, x: Float32Array, gamma: Float32Array | undefined, epsilon: number, out: Float32Array
): void => {
  const ko = plan.keptOffsets, ro = plan.reducedOffsets
  const R = ro.length
  for (let o = 0; o < ko.length; o++) {
    const base = ko[o]!
    let s = 0
    for (let r = 0; r < R; r++) { const v = x[base + ro[r]!]!; s = fround(s + fround(v * v)) }
    const inv = fround(1 / Math.sqrt(fround(s / R) + epsilon))
    for (let r = 0; r < R; r++) {
      const i = base + ro[r]!
      const y = fround(x[i]! * inv)
      out[i] = gamma !== undefined ? y * gamma[r]! : y
    }
  }
}

/** l2_norm over a reduce plan's axes: x / √max(Σx², ε) (MIL l2_norm, whose ε default is 1e-6). */
export const l2Norm = (plan: ReducePlan, x: Float32Array, epsilon: number, out: Float32Array): void => {
  const ko = plan.keptOffsets, ro = plan.reducedOffsets
  for (let o = 0; o < ko.length; o++) {
    const base = ko[o]!
    let s = 0
    for (let r = 0; r < ro.length; r++) { const v = x[base + ro[r]!]!; s = fround(s + fround(v * v)) }
    const d = Math.sqrt(Math.max(s, epsilon))
    for (let r = 0; r < ro.length; r++) out[base + ro[r]!] = x[base + ro[r]!]! / d
  }
}

/**
 * batch_norm on x [n, C, *spatial] (`spatial` = product of the trailing dims): per channel
 * (x − mean)/√(var + ε)·γ + β, with γ and β optional.
 */
export const batchNorm = (
  x: Float32Array, n: number, C: number, spatial: number, mean: Float32Array, variance: Float32Array,
  gamma: Float32Array | undefined, beta: Float32Array | undefined, epsilon: number, out: Float32Array
): void => {
  for (let c = 0; c < C; c++) {
    const inv = fround(1 / Math.sqrt(variance[c]! + epsilon))
    const scale = gamma !== undefined ? fround(inv * gamma[c]!) : inv
    const shift = beta !== undefined ? beta[c]! : 0
    const m = mean[c]!
    for (let b = 0; b < n; b++) {
      const off = (b * C + c) * spatial
      for (let i = off; i < off + spatial; i++) out[i] = fround(fround(x[i]! - m) * scale) + shift
    }
  }
}

/**
 * instance_norm on x [n, C, *spatial]: each (n, c) plane normalised by its own mean and biased variance, then
 * ·γ[c] + β[c] (both optional).
 */
export const instanceNorm = (
  x: Float32Array, n: number, C: number, spatial: number, gamma: Float32Array | undefined,
  beta: Float32Array | undefined, epsilon: number, out: Float32Array
): void => {
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < C; c++) {
      const off = (b * C + c) * spatial
      let s = 0
      for (let i = off; i < off + spatial; i++) s = fround(s + x[i]!)
      const mean = fround(s / spatial)
      let v = 0
      for (let i = off; i < off + spatial; i++) { const d = fround(x[i]! - mean); v = fround(v + fround(d * d)) }
      const inv = fround(1 / Math.sqrt(fround(v / spatial) + epsilon))
      const scale = gamma !== undefined ? fround(inv * gamma[c]!) : inv
      const shift = beta !== undefined ? beta[c]! : 0
      for (let i = off; i < off + spatial; i++) out[i] = fround(fround(x[i]! - mean) * scale) + shift
    }
  }
}
