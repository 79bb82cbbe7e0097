/**
 * Indexing kernels: concat/split (incl. interleave), gather (with batch_dims), gather_along_axis, topk, range_1d
 * and one_hot. Elements move without arithmetic, so any typed array works.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { checkShape, invalid, normAxis, type NumArray, type Shape, showShape, sizeOf } from "./shape.js"

/** A checked concat or split along one axis: outer × (dim_i · inner) blocks. */
export interface ConcatPlan {
  readonly outShape: ReadonlyArray<number>
  readonly outer: number
  readonly inner: number
  /** Axis sizes of the pieces and their start along the axis. */
  readonly dims: ReadonlyArray<number>
  readonly starts: ReadonlyArray<number>
  readonly total: number
  /** MIL concat interleave: element k of piece i goes to position k·count + i along the axis. */
  readonly interleave: boolean
}

/**
 * Plans concat of pieces with equal shapes except along `axis`; with `interleave` all pieces must have the same
 * shape and their elements alternate along the axis (spec/mil-format-errata.md, concat).
 */
export const planConcat = (
  shapes: ReadonlyArray<Shape>, axis: number, interleave = false
): Either.Either<ConcatPlan, InvalidArgumentError> => {
  if (shapes.length === 0) return Either.left(invalid("concat", "values", "at least one tensor", "none"))
  const s0 = shapes[0]!
  const a = normAxis("concat", "axis", axis, s0.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  const ax = a.right
  for (const s of shapes) {
    if (s.length !== s0.length || s.some((d, i) => i !== ax && d !== s0[i])) {
      return Either.left(invalid("concat", "values", `shapes equal to ${showShape(s0)} except along axis ${ax}`,
        showShape(s)))
    }
  }
  const dims = shapes.map((s) => s[ax]!)
  if (interleave && dims.some((d) => d !== dims[0])) {
    return Either.left(invalid("concat", "values", "identical shapes when interleave is set",
      shapes.map(showShape).join(", ")))
  }
  const starts: Array<number> = []
  let total = 0
  for (const d of dims) { starts.push(total); total += d }
  const outShape = [...s0]
  outShape[ax] = total
  let outer = 1, inner = 1
  for (let d = 0; d < ax; d++) outer *= s0[d]!
  for (let d = ax + 1; d < s0.length; d++) inner *= s0[d]!
  return Either.right({ outShape, outer, inner, dims, starts, total, interleave })
}

/** Runs concat: pieces in order along the axis (or interleaved, per the plan) into out. */
export const concat = (plan: ConcatPlan, values: ReadonlyArray<NumArray>, out: NumArray): void => {
  const { outer, inner, total } = plan
  if (plan.interleave) {
    const n = values.length, dim = plan.dims[0] ?? 0
    for (let v = 0; v < n; v++) {
      const x = values[v]!
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < dim; k++) {
          const src = (o * dim + k) * inner, dst = (o * total + k * n + v) * inner
          for (let i = 0; i < inner; i++) out[dst + i] = x[src + i]!
        }
      }
    }
    return
  }
  for (let v = 0; v < values.length; v++) {
    const x = values[v]!
    const blk = plan.dims[v]! * inner
    const start = plan.starts[v]! * inner
    for (let o = 0; o < outer; o++) {
      const src = o * blk, dst = o * total * inner + start
      for (let i = 0; i < blk; i++) out[dst + i] = x[src + i]!
    }
  }
}

/** Plans split of x along axis into pieces of the given sizes (summing to the dim). */
export const planSplit = (
  xShape: Shape, axis: number, sizes: ReadonlyArray<number>
): Either.Either<ConcatPlan, InvalidArgumentError> => {
  const a = normAxis("split", "axis", axis, xShape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  const dim = xShape[a.right]!
  if (sizes.some((s) => !Number.isInteger(s) || s < 0) || sizes.reduce((p, q) => p + q, 0) !== dim) {
    return Either.left(invalid("split", "split_sizes", `non-negative sizes summing to ${dim}`, `[${sizes.join(", ")}]`))
  }
  return planConcat(sizes.map((s) => xShape.map((d, i) => (i === a.right ? s : d))), a.right)
}

/** Runs split: piece i of x along the axis into outs[i]. */
export const split = (plan: ConcatPlan, x: NumArray, outs: ReadonlyArray<NumArray>): void => {
  const { outer, inner, total } = plan
  for (let v = 0; v < outs.length; v++) {
    const y = outs[v]!
    const blk = plan.dims[v]! * inner
    const start = plan.starts[v]! * inner
    for (let o = 0; o < outer; o++) {
      const src = o * total * inner + start, dst = o * blk
      for (let i = 0; i < blk; i++) y[dst + i] = x[src + i]!
    }
  }
}

/** A checked gather: x split into batch × outer × dim × inner, `count` indices per batch. */
export interface GatherPlan {
  readonly outShape: ReadonlyArray<number>
  readonly batch: number
  readonly outer: number
  readonly dim: number
  readonly inner: number
  readonly count: number
}

/**
 * Plans gather: out shape = x.shape[:axis] + indices.shape[batchDims:] + x.shape[axis+1:]; the first batchDims dims
 * of x and indices must match, and each batch uses its own indices.
 */
export const planGather = (
  xShape: Shape, indicesShape: Shape, axis: number, batchDims = 0
): Either.Either<GatherPlan, InvalidArgumentError> => {
  const bad = checkShape("gather", "x", xShape) ?? checkShape("gather", "indices", indicesShape)
  if (bad) return Either.left(bad)
  const a = normAxis("gather", "axis", axis, xShape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  const ax = a.right
  if (!Number.isInteger(batchDims) || batchDims < 0 || batchDims > ax || batchDims > indicesShape.length ||
    xShape.slice(0, batchDims).some((d, i) => d !== indicesShape[i])) {
    return Either.left(invalid("gather", "batch_dims", `≤ axis ${ax} with x and indices agreeing on those dims`,
      `${batchDims} for x ${showShape(xShape)}, indices ${showShape(indicesShape)}`))
  }
  let batch = 1, outer = 1, inner = 1
  for (let d = 0; d < batchDims; d++) batch *= xShape[d]!
  for (let d = batchDims; d < ax; d++) outer *= xShape[d]!
  for (let d = ax + 1; d < xShape.length; d++) inner *= xShape[d]!
  return Either.right({
    outShape: [...xShape.slice(0, ax), ...indicesShape.slice(batchDims), ...xShape.slice(ax + 1)],
    batch, outer, dim: xShape[ax]!, inner, count: sizeOf(indicesShape.slice(batchDims))
  })
}

/** Runs gather; a negative index counts from the end, one still out of range yields `fill` (default 0). */
export const gather = (plan: GatherPlan, x: NumArray, indices: Int32Array, out: NumArray, fill = 0): void => {
  const { batch, outer, dim, inner, count } = plan
  let q = 0
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      const xo = (b * outer + o) * dim
      for (let k = 0; k < count; k++) {
        let j = indices[b * count + k]!
        if (j < 0) j += dim
        if (j < 0 || j >= dim) { out.fill(fill, q, q + inner); q += inner; continue }
        const src = (xo + j) * inner
        for (let i = 0; i < inner; i++) out[q++] = x[src + i]!
      }
    }
  }
}

/** A checked gather_along_axis: x and indices split at the axis (equal outer and inner). */
export interface AlongAxisPlan {
  readonly outShape: ReadonlyArray<number>
  readonly outer: number
  readonly dim: number
  readonly idxDim: number
  readonly inner: number
}

/** Plans gather_along_axis (numpy take_along_axis): indices has x's rank and dims except along the axis. */
export const planGatherAlongAxis = (
  xShape: Shape, indicesShape: Shape, axis: number
): Either.Either<AlongAxisPlan, InvalidArgumentError> => {
  const a = normAxis("gather_along_axis", "axis", axis, xShape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  const ax = a.right
  if (indicesShape.length !== xShape.length || indicesShape.some((d, i) => i !== ax && d !== xShape[i])) {
    return Either.left(invalid("gather_along_axis", "indices", `x's shape ${showShape(xShape)} except along axis ${ax}`,
      showShape(indicesShape)))
  }
  let outer = 1, inner = 1
  for (let d = 0; d < ax; d++) outer *= xShape[d]!
  for (let d = ax + 1; d < xShape.length; d++) inner *= xShape[d]!
  return Either.right({ outShape: [...indicesShape], outer, dim: xShape[ax]!, idxDim: indicesShape[ax]!, inner })
}

/** Runs gather_along_axis; index rules as in {@link gather}. */
export const gatherAlongAxis = (
  plan: AlongAxisPlan, x: NumArray, indices: Int32Array, out: NumArray, fill = 0
): void => {
  const { outer, dim, idxDim, inner } = plan
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < idxDim; k++) {
      for (let i = 0; i < inner; i++) {
        const q = (o * idxDim + k) * inner + i
        let j = indices[q]!
        if (j < 0) j += dim
        out[q] = j >= 0 && j < dim ? x[(o * dim + j) * inner + i]! : fill
      }
    }
  }
}

/** A checked topk with its sort scratch. */
export interface TopkPlan {
  readonly outShape: ReadonlyArray<number>
  readonly outer: number
  readonly dim: number
  readonly inner: number
  readonly k: number
  readonly ascending: boolean
  readonly order: Int32Array
  readonly values: Float64Array
}

/** Plans topk along an axis (k ≤ dim; k = −1 means all). */
export const planTopk = (
  xShape: Shape, k: number, axis = -1, ascending = false
): Either.Either<TopkPlan, InvalidArgumentError> => {
  const a = normAxis("topk", "axis", axis, xShape.length)
  if (Either.isLeft(a)) return Either.left(a.left)
  const ax = a.right
  const dim = xShape[ax]!
  const kk = k === -1 ? dim : k
  if (!Number.isInteger(kk) || kk < 0 || kk > dim) {
    return Either.left(invalid("topk", "k", `an integer in [0, ${dim}] (or −1)`, String(k)))
  }
  let outer = 1, inner = 1
  for (let d = 0; d < ax; d++) outer *= xShape[d]!
  for (let d = ax + 1; d < xShape.length; d++) inner *= xShape[d]!
  const outShape = [...xShape]
  outShape[ax] = kk
  return Either.right({
    outShape, outer, dim, inner, k: kk, ascending, order: new Int32Array(dim), values: new Float64Array(dim)
  })
}

/**
 * Runs topk: the k largest (smallest when ascending) values along the axis, in order, with their indices; equal
 * values keep index order, and NaN counts as the largest value.
 */
export const topk = (plan: TopkPlan, x: NumArray, values: NumArray, indices: Int32Array | NumArray): void => {
  const { outer, dim, inner, k, ascending, order, values: v } = plan
  const sign = ascending ? 1 : -1
  const cmp = (p: number, q: number): number => {
    const a = v[p]!, b = v[q]!
    if (a !== b) {
      if (a !== a) return -sign
      if (b !== b) return sign
      return a < b ? -sign : sign
    }
    return p - q
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * dim * inner + i
      for (let j = 0; j < dim; j++) { order[j] = j; v[j] = x[base + j * inner]! }
      order.sort(cmp)
      const ob = o * k * inner + i
      for (let j = 0; j < k; j++) {
        values[ob + j * inner] = v[order[j]!]!
        indices[ob + j * inner] = order[j]!
      }
    }
  }
}

/** Number of elements of range_1d(start, end, step): ceil((end − start)/step), at least 0; step must be ≠ 0. */
export const rangeLength = (start: number, end: number, step: number): Either.Either<number, InvalidArgumentError> =>
  step === 0 || !Number.isFinite(step)
    ? Either.left(invalid("range_1d", "step", "a finite non-zero number", String(step)))
    : Either.right(Math.max(0, Math.ceil((end - start) / step)))

/** range_1d: out[i] = start + i·step for i < out.length (size it with {@link rangeLength}). */
export const range1d = (start: number, step: number, out: NumArray): void => {
  for (let i = 0; i < out.length; i++) out[i] = start + i * step
}

/**
 * one_hot: indices of shape [outer…, inner…] split at `axis` of the output; out has `depth` inserted there:
 * out[o, d, i] = indices[o, i] = d ? on : off (a negative index counts from the end).
 */
export const oneHot = (
  indices: Int32Array, outer: number, inner: number, depth: number, on: number, off: number, out: NumArray
): void => {
  out.fill(off, 0, outer * depth * inner)
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let j = indices[o * inner + i]!
      if (j < 0) j += depth
      if (j >= 0 && j < depth) out[(o * depth + j) * inner + i] = on
    }
  }
}
