/** Shape arithmetic shared by the kernels: sizes, row-major strides, axis normalisation, numpy broadcasting. */
import * as Either from "effect/Either"
import { InvalidArgumentError } from "../../schema/errors.js"

/** A tensor shape: dims, outermost first (row-major). */
export type Shape = ReadonlyArray<number>

/** Number of elements of a shape (1 for a scalar). */
export const sizeOf = (shape: Shape): number => {
  let n = 1
  for (const d of shape) n *= d
  return n
}

/** Row-major element strides of a shape. */
export const stridesOf = (shape: Shape): Array<number> => {
  const s = new Array<number>(shape.length)
  let acc = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc
    acc *= shape[i]!
  }
  return s
}

/** The typed error every kernel plan returns for bad arguments. */
export const invalid = (op: string, argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError(
    hint === undefined ? { op, argument, expected, actual } : { op, argument, expected, actual, hint }
  )

/** Short text of a shape for error messages. */
export const showShape = (shape: Shape): string => `[${shape.join(", ")}]`

/** Checks a shape has non-negative integer dims. */
export const checkShape = (op: string, argument: string, shape: Shape): InvalidArgumentError | undefined => {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) return invalid(op, argument, "non-negative integer dims", showShape(shape))
  }
  return undefined
}

/** Normalises an axis in [−rank, rank−1] to [0, rank−1]. */
export const normAxis = (
  op: string, argument: string, axis: number, rank: number
): Either.Either<number, InvalidArgumentError> =>
  Number.isInteger(axis) && axis >= -rank && axis < rank
    ? Either.right(axis < 0 ? axis + rank : axis)
    : Either.left(invalid(op, argument, `an axis in [${-rank}, ${rank - 1}]`, String(axis)))

/** Normalises a list of distinct axes, sorted ascending. */
export const normAxes = (
  op: string, argument: string, axes: ReadonlyArray<number>, rank: number
): Either.Either<Array<number>, InvalidArgumentError> => {
  const out: Array<number> = []
  for (const a of axes) {
    const r = normAxis(op, argument, a, rank)
    if (Either.isLeft(r)) return Either.left(r.left)
    if (out.includes(r.right)) return Either.left(invalid(op, argument, "distinct axes", `[${axes.join(", ")}]`))
    out.push(r.right)
  }
  return Either.right(out.sort((x, y) => x - y))
}

/** numpy broadcast of two shapes (aligned at the last dim; a dim of 1 stretches). */
export const broadcastShapes = (
  op: string, a: Shape, b: Shape
): Either.Either<Array<number>, InvalidArgumentError> => {
  const r = Math.max(a.length, b.length)
  const out = new Array<number>(r)
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1
    const db = b[b.length - r + i] ?? 1
    if (da !== db && da !== 1 && db !== 1) {
      return Either.left(invalid(op, "shapes", "broadcast-compatible shapes", `${showShape(a)} and ${showShape(b)}`))
    }
    out[i] = da === 1 ? db : da
  }
  return Either.right(out)
}

/** Strides of `shape` read as if broadcast to rank-`rank` shape `out`: 0 where the dim is stretched. */
export const broadcastStrides = (shape: Shape, out: Shape): Array<number> => {
  const s = stridesOf(shape)
  const r = out.length
  const res = new Array<number>(r).fill(0)
  for (let i = 0; i < shape.length; i++) {
    const j = r - shape.length + i
    res[j] = shape[i] === 1 && out[j] !== 1 ? 0 : s[i]!
  }
  return res
}

/** Any array a kernel reads or writes element-wise. */
export type NumArray = Float32Array | Int32Array | Float64Array | Uint8Array | Int8Array | Uint16Array | Int16Array
