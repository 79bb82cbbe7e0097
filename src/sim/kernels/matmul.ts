/** matmul with numpy batch broadcasting and transpose flags, and linear (x·Wᵀ + b), over the fp32 GEMM. */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { gemm, gemmPacked, packB, type PackedB } from "./gemm.js"
import { broadcastShapes, checkShape, invalid, type Shape, showShape, sizeOf, stridesOf } from "./shape.js"

/** A checked matmul: output shape and per-batch operand offsets, computed once per shape pair. */
export interface MatmulPlan {
  readonly outShape: ReadonlyArray<number>
  readonly M: number
  readonly N: number
  readonly K: number
  readonly transposeX: boolean
  readonly transposeY: boolean
  /** Per output batch: element offset of its x matrix and of its y matrix. */
  readonly xOffsets: Int32Array
  readonly yOffsets: Int32Array
}

/**
 * Plans `matmul(x, y)` as MIL defines it: the last two dims multiply (after the transpose flags), leading dims
 * broadcast numpy-style; a rank-1 x is a row [1,K] and a rank-1 y a column [K,1], whose unit dim is then dropped.
 */
export const planMatmul = (
  xShape: Shape, yShape: Shape, transposeX = false, transposeY = false
): Either.Either<MatmulPlan, InvalidArgumentError> => {
  const bad = checkShape("matmul", "x", xShape) ?? checkShape("matmul", "y", yShape)
  if (bad) return Either.left(bad)
  if (xShape.length === 0 || yShape.length === 0) {
    return Either.left(invalid("matmul", "rank", "x and y of rank ≥ 1", `${showShape(xShape)} and ${showShape(yShape)}`))
  }
  const xs = xShape.length === 1 ? [1, xShape[0]!] : [...xShape]
  const ys = yShape.length === 1 ? [yShape[0]!, 1] : [...yShape]
  const tx = xShape.length > 1 && transposeX
  const ty = yShape.length > 1 && transposeY
  const M = xs[xs.length - (tx ? 1 : 2)]!
  const K = xs[xs.length - (tx ? 2 : 1)]!
  const K2 = ys[ys.length - (ty ? 1 : 2)]!
  const N = ys[ys.length - (ty ? 2 : 1)]!
  if (K !== K2) {
    return Either.left(invalid("matmul", "shapes", "equal contraction dims",
      `x ${showShape(xShape)} (K=${K}) and y ${showShape(yShape)} (K=${K2})`))
  }
  const xb = xs.slice(0, -2)
  const yb = ys.slice(0, -2)
  const bshape = broadcastShapes("matmul", xb, yb)
  if (Either.isLeft(bshape)) return Either.left(bshape.left)
  const batch = bshape.right
  const nb = sizeOf(batch)
  const xOffsets = new Int32Array(nb)
  const yOffsets = new Int32Array(nb)
  const xbs = stridesOf(xb).map((s) => s * M * K)
  const ybs = stridesOf(yb).map((s) => s * K * N)
  const r = batch.length
  for (let i = 0; i < nb; i++) {
    let rem = i, xo = 0, yo = 0
    for (let d = r - 1; d >= 0; d--) {
      const dim = batch[d]!
      const idx = rem % dim
      rem = (rem - idx) / dim
      const dx = d - (r - xb.length)
      const dy = d - (r - yb.length)
      if (dx >= 0 && xb[dx] !== 1) xo += idx * xbs[dx]!
      if (dy >= 0 && yb[dy] !== 1) yo += idx * ybs[dy]!
    }
    xOffsets[i] = xo
    yOffsets[i] = yo
  }
  const outShape = [...batch]
  if (xShape.length > 1) outShape.push(M)
  if (yShape.length > 1) outShape.push(N)
  return Either.right({ outShape, M, N, K, transposeX: tx, transposeY: ty, xOffsets, yOffsets })
}

/** A constant y packed once per batch matrix it has, for {@link matmul}. */
export const packMatmulY = (plan: MatmulPlan, y: Float32Array): ReadonlyArray<PackedB> => {
  const { N, K, transposeY: ty } = plan
  const byOffset = new Map<number, PackedB>()
  return Array.from(plan.yOffsets, (off) => {
    let p = byOffset.get(off)
    if (p === undefined) {
      p = packB(K, N, y, off, ty ? K : N, ty)
      byOffset.set(off, p)
    }
    return p
  })
}

/**
 * Runs a planned matmul: `out` (size of plan.outShape) = x·y, accumulated in fp32; `packedY` (from
 * {@link packMatmulY} for this `y`) is used instead of `y` when given.
 */
export const matmul = (
  plan: MatmulPlan, x: Float32Array, y: Float32Array, out: Float32Array, packedY?: ReadonlyArray<PackedB>
): void => {
  const { M, N, K, transposeX: tx, transposeY: ty } = plan
  const lda = tx ? M : K
  const ldb = ty ? K : N
  for (let i = 0; i < plan.xOffsets.length; i++) {
    if (packedY !== undefined) gemmPacked(M, x, plan.xOffsets[i]!, lda, tx, packedY[i]!, out, i * M * N, N, false, false)
    else gemm(M, N, K, x, plan.xOffsets[i]!, lda, tx, y, plan.yOffsets[i]!, ldb, ty, out, i * M * N, N, false)
  }
}

/** A constant linear weight [N, K] packed once, for {@link linear}. */
export const packLinearWeight = (w: Float32Array, K: number, N: number): PackedB => packB(K, N, w, 0, K, true)

/**
 * linear: `out[r, n] = Σ_k x[r, k]·w[n, k] + bias[n]` for `rows` rows of x ([rows, K], the leading dims of x
 * flattened), weight [N, K], optional bias [N]; out is [rows, N]. `packed` (from {@link packLinearWeight} for this
 * `w`) is used instead of `w` when given.
 */
export const linear = (
  x: Float32Array, rows: number, K: number, w: Float32Array, N: number,
  bias: Float32Array | undefined, out: Float32Array, packed?: PackedB
): void => {
  if (bias !== undefined) {
    for (let r = 0; r < rows; r++) out.set(bias.subarray(0, N), r * N)
  }
  if (packed !== undefined) gemmPacked(rows, x, 0, K, false, packed, out, 0, N, false, bias !== undefined)
  else gemm(rows, N, K, x, 0, K, false, w, 0, K, true, out, 0, N, bias !== undefined)
}
