/**
 * Data-movement kernels that are one strided or per-dim-mapped copy: transpose, slice_by_index, pad, tile,
 * depth_to_space/space_to_depth/pixel_shuffle. They move elements only (no arithmetic), so any typed array works;
 * each has a plan step that checks shapes and precomputes the index geometry once.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { invalid, type NumArray, type Shape, showShape, sizeOf, stridesOf } from "./shape.js"

/** A copy of a strided view of the source into a contiguous row-major output. */
export interface StridedPlan {
  readonly outShape: ReadonlyArray<number>
  /** Shape iterated (may have more dims than outShape, e.g. for depth_to_space or squeezed slices). */
  readonly iterShape: ReadonlyArray<number>
  readonly srcOffset: number
  readonly srcStrides: ReadonlyArray<number>
  readonly counter: Int32Array
}

const strided = (
  outShape: ReadonlyArray<number>, iterShape: ReadonlyArray<number>, srcOffset: number,
  srcStrides: ReadonlyArray<number>
): StridedPlan => ({ outShape, iterShape, srcOffset, srcStrides, counter: new Int32Array(Math.max(iterShape.length, 1)) })

/** Runs a strided plan (transpose, slice, depth_to_space, …): out is written contiguously, x read strided. */
export const stridedCopy = (plan: StridedPlan, x: NumArray, out: NumArray): void => {
  const shape = plan.iterShape
  const r = shape.length
  const n = sizeOf(shape)
  if (n === 0) return
  if (r === 0) {
    out[0] = x[plan.srcOffset]!
    return
  }
  const s = plan.srcStrides
  const L = shape[r - 1]!, ls = s[r - 1]!
  const cnt = plan.counter
  cnt.fill(0)
  let src = plan.srcOffset
  for (let q = 0; q < n; q += L) {
    for (let i = 0, p = src; i < L; i++, p += ls) out[q + i] = x[p]!
    for (let d = r - 2; d >= 0; d--) {
      if (++cnt[d]! < shape[d]!) { src += s[d]!; break }
      cnt[d] = 0
      src -= s[d]! * (shape[d]! - 1)
    }
  }
}

/**
 * The inverse of {@link stridedCopy}: `update`, read contiguously, is written into the strided view of `out` (slice
 * updates). Kept as its own loop, not a callback, so an evaluation allocates nothing.
 */
export const stridedScatter = (plan: StridedPlan, update: NumArray, out: NumArray): void => {
  const shape = plan.iterShape
  const r = shape.length
  const n = sizeOf(shape)
  if (n === 0) return
  if (r === 0) {
    out[plan.srcOffset] = update[0]!
    return
  }
  const s = plan.srcStrides
  const L = shape[r - 1]!, ls = s[r - 1]!
  const cnt = plan.counter
  cnt.fill(0)
  let dst = plan.srcOffset
  for (let q = 0; q < n; q += L) {
    for (let i = 0, p = dst; i < L; i++, p += ls) out[p] = update[q + i]!
    for (let d = r - 2; d >= 0; d--) {
      if (++cnt[d]! < shape[d]!) { dst += s[d]!; break }
      cnt[d] = 0
      dst -= s[d]! * (shape[d]! - 1)
    }
  }
}

/** Plans transpose: out dim i is x dim perm[i] (perm a permutation of 0..rank−1, negatives allowed). */
export const planTranspose = (
  xShape: Shape, perm: ReadonlyArray<number>
): Either.Either<StridedPlan, InvalidArgumentError> => {
  const r = xShape.length
  const p = perm.map((a) => (a < 0 ? a + r : a))
  const ok = p.length === r && p.every((a, i) => Number.isInteger(a) && a >= 0 && a < r && p.indexOf(a) === i)
  if (!ok) return Either.left(invalid("transpose", "perm", `a permutation of 0..${r - 1}`, `[${perm.join(", ")}]`))
  const s = stridesOf(xShape)
  const outShape = p.map((a) => xShape[a]!)
  return Either.right(strided(outShape, outShape, 0, p.map((a) => s[a]!)))
}

/** slice_by_index arguments: per-axis begin/end/stride (stride default 1) and optional masks. */
export interface SliceOptions {
  readonly begin: ReadonlyArray<number>
  readonly end: ReadonlyArray<number>
  readonly stride?: ReadonlyArray<number>
  readonly beginMask?: ReadonlyArray<boolean>
  readonly endMask?: ReadonlyArray<boolean>
  readonly squeezeMask?: ReadonlyArray<boolean>
}

/**
 * Plans slice_by_index with numpy semantics: negative indices add the dim, bounds clamp, negative strides walk
 * backwards, masks pick the natural start/end, squeeze_mask takes the element at begin and drops the axis.
 */
export const planSlice = (xShape: Shape, o: SliceOptions): Either.Either<StridedPlan, InvalidArgumentError> => {
  const r = xShape.length
  const stride = o.stride ?? new Array<number>(r).fill(1)
  if (o.begin.length !== r || o.end.length !== r || stride.length !== r) {
    return Either.left(invalid("slice_by_index", "begin/end/stride", `${r} entries each`,
      `${o.begin.length}/${o.end.length}/${stride.length}`))
  }
  const xs = stridesOf(xShape)
  const iter: Array<number> = [], srcStrides: Array<number> = [], outShape: Array<number> = []
  let off = 0
  for (let d = 0; d < r; d++) {
    const dim = xShape[d]!
    const st = stride[d]!
    if (!Number.isInteger(st) || st === 0) {
      return Either.left(invalid("slice_by_index", "stride", "non-zero integers", `[${stride.join(", ")}]`))
    }
    const norm = (v: number) => (v < 0 ? v + dim : v)
    if (o.squeezeMask?.[d] === true) {
      const b = norm(o.begin[d]!)
      if (b < 0 || b >= dim) {
        return Either.left(invalid("slice_by_index", "begin", `an index inside dim ${d} (size ${dim}) for squeeze_mask`,
          String(o.begin[d])))
      }
      off += b * xs[d]!
      iter.push(1)
      srcStrides.push(0)
      continue
    }
    let b: number, e: number
    if (st > 0) {
      b = o.beginMask?.[d] === true ? 0 : Math.min(Math.max(norm(o.begin[d]!), 0), dim)
      e = o.endMask?.[d] === true ? dim : Math.min(Math.max(norm(o.end[d]!), 0), dim)
    } else {
      b = o.beginMask?.[d] === true ? dim - 1 : Math.min(Math.max(norm(o.begin[d]!), -1), dim - 1)
      e = o.endMask?.[d] === true ? -1 : Math.min(Math.max(norm(o.end[d]!), -1), dim - 1)
    }
    const len = Math.max(0, Math.ceil((e - b) / st))
    if (len > 0) off += b * xs[d]!
    iter.push(len)
    srcStrides.push(st * xs[d]!)
    outShape.push(len)
  }
  return Either.right(strided(outShape, iter, off, srcStrides))
}

/** Plans depth_to_space (DCR): out[n, c, h·bs + i, w·bs + j] = x[n, (i·bs + j)·C/bs² + c, h, w]. */
export const planDepthToSpace = (
  xShape: Shape, blockSize: number
): Either.Either<StridedPlan, InvalidArgumentError> => {
  const bs = blockSize
  if (xShape.length !== 4 || !Number.isInteger(bs) || bs < 1 || xShape[1]! % (bs * bs) !== 0) {
    return Either.left(invalid("depth_to_space", "x", `[n, C, H, W] with C divisible by ${bs}²`, showShape(xShape)))
  }
  const [N, C, H, W] = xShape as [number, number, number, number]
  const c = C / (bs * bs)
  // Iterate out as [n, c, h, i, w, j].
  return Either.right(strided([N, c, H * bs, W * bs], [N, c, H, bs, W, bs], 0,
    [C * H * W, H * W, W, bs * c * H * W, 1, c * H * W]))
}

/** Plans pixel_shuffle (CRD): out[n, c, h·bs + i, w·bs + j] = x[n, c·bs² + i·bs + j, h, w]. */
export const planPixelShuffle = (
  xShape: Shape, blockSize: number
): Either.Either<StridedPlan, InvalidArgumentError> => {
  const bs = blockSize
  if (xShape.length !== 4 || !Number.isInteger(bs) || bs < 1 || xShape[1]! % (bs * bs) !== 0) {
    return Either.left(invalid("pixel_shuffle", "x", `[n, C, H, W] with C divisible by ${bs}²`, showShape(xShape)))
  }
  const [N, C, H, W] = xShape as [number, number, number, number]
  const c = C / (bs * bs)
  return Either.right(strided([N, c, H * bs, W * bs], [N, c, H, bs, W, bs], 0,
    [C * H * W, bs * bs * H * W, W, bs * H * W, 1, H * W]))
}

/** Plans space_to_depth, the inverse of depth_to_space: out[n, (i·bs + j)·C + c, h, w] = x[n, c, h·bs + i, w·bs + j]. */
export const planSpaceToDepth = (
  xShape: Shape, blockSize: number
): Either.Either<StridedPlan, InvalidArgumentError> => {
  const bs = blockSize
  if (xShape.length !== 4 || !Number.isInteger(bs) || bs < 1 || xShape[2]! % bs !== 0 || xShape[3]! % bs !== 0) {
    return Either.left(invalid("space_to_depth", "x", `[n, C, H, W] with H and W divisible by ${bs}`, showShape(xShape)))
  }
  const [N, C, H, W] = xShape as [number, number, number, number]
  const h = H / bs, w = W / bs
  // Iterate out as [n, i, j, c, h, w].
  return Either.right(strided([N, C * bs * bs, h, w], [N, bs, bs, C, h, w], 0,
    [C * H * W, W, 1, H * W, bs * W, bs]))
}

/** A copy where each output coordinate maps to a source coordinate per dim (−1 = the constant). */
export interface MappedPlan {
  readonly outShape: ReadonlyArray<number>
  readonly maps: ReadonlyArray<Int32Array>
  readonly srcStrides: ReadonlyArray<number>
  readonly counter: Int32Array
}

/** Runs a mapped plan (pad, tile): out[p] = x[Σ map_d(p_d)·stride_d], or `constant` where any map is −1. */
export const mappedCopy = (plan: MappedPlan, x: NumArray, out: NumArray, constant = 0): void => {
  const shape = plan.outShape
  const r = shape.length
  const n = sizeOf(shape)
  if (n === 0) return
  if (r === 0) { out[0] = x[0]!; return }
  const maps = plan.maps, s = plan.srcStrides
  const L = shape[r - 1]!, last = maps[r - 1]!, ls = s[r - 1]!
  const cnt = plan.counter
  cnt.fill(0)
  for (let q = 0; q < n; q += L) {
    let base = 0, outside = false
    for (let d = 0; d < r - 1; d++) {
      const m = maps[d]![cnt[d]!]!
      if (m < 0) { outside = true; break }
      base += m * s[d]!
    }
    if (outside) out.fill(constant, q, q + L)
    else for (let i = 0; i < L; i++) { const m = last[i]!; out[q + i] = m < 0 ? constant : x[base + m * ls]! }
    for (let d = r - 2; d >= 0; d--) {
      if (++cnt[d]! < shape[d]!) break
      cnt[d] = 0
    }
  }
}

/** Pad modes of MIL pad. */
export type PadMode = "constant" | "reflect" | "replicate"

/**
 * Plans pad: `pads` = [before, after] pairs for the last pads.length/2 dims. reflect mirrors without repeating the
 * edge (≤ dim−1 per side), replicate repeats the edge (≤ dim per side; the constant is then unused).
 */
export const planPad = (
  xShape: Shape, pads: ReadonlyArray<number>, mode: PadMode
): Either.Either<MappedPlan, InvalidArgumentError> => {
  const r = xShape.length
  if (pads.length % 2 !== 0 || pads.length > 2 * r || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    return Either.left(invalid("pad", "pad", `up to ${r} [before, after] pairs of non-negative integers`,
      `[${pads.join(", ")}]`))
  }
  const first = r - pads.length / 2
  const maps: Array<Int32Array> = []
  const outShape: Array<number> = []
  for (let d = 0; d < r; d++) {
    const dim = xShape[d]!
    const b = d >= first ? pads[2 * (d - first)]! : 0
    const a = d >= first ? pads[2 * (d - first) + 1]! : 0
    if (mode === "reflect" && (b > dim - 1 || a > dim - 1)) {
      return Either.left(invalid("pad", "pad", `at most ${dim - 1} per side of dim ${d} in reflect mode`, `${b}, ${a}`))
    }
    if (mode === "replicate" && (b + a > 0) && (dim === 0 || b > dim || a > dim)) {
      return Either.left(invalid("pad", "pad", `at most ${dim} per side of dim ${d} in replicate mode`, `${b}, ${a}`))
    }
    const len = dim + b + a
    const m = new Int32Array(len)
    for (let i = 0; i < len; i++) {
      let j = i - b
      if (j < 0 || j >= dim) {
        if (mode === "constant") j = -1
        else if (mode === "replicate") j = j < 0 ? 0 : dim - 1
        else j = j < 0 ? -j : 2 * (dim - 1) - j
      }
      m[i] = j
    }
    maps.push(m)
    outShape.push(len)
  }
  return Either.right({ outShape, maps, srcStrides: stridesOf(xShape), counter: new Int32Array(Math.max(r, 1)) })
}

/** Plans tile: out dim d = x dim d · reps[d]; out[p] = x[p mod shape]. */
export const planTile = (
  xShape: Shape, reps: ReadonlyArray<number>
): Either.Either<MappedPlan, InvalidArgumentError> => {
  const r = xShape.length
  if (reps.length !== r || reps.some((v) => !Number.isInteger(v) || v < 0)) {
    return Either.left(invalid("tile", "reps", `${r} non-negative integers`, `[${reps.join(", ")}]`))
  }
  const outShape = xShape.map((d, i) => d * reps[i]!)
  const maps = outShape.map((len, i) => Int32Array.from({ length: len }, (_, j) => j % xShape[i]!))
  return Either.right({ outShape, maps, srcStrides: stridesOf(xShape), counter: new Int32Array(Math.max(r, 1)) })
}
