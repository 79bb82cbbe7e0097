/** The byte layout of one ANE I/O tensor as the compiled model reports it, and the stride math around it. */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidArgumentError } from "./errors.js"

/** The engine's row alignment: every row of an IOSurface starts on a 64-byte boundary (spec/native-protocol.md §6.3). */
export const ROW_ALIGNMENT = 64

/** Minimum row stride for `width` elements of `elemSize` bytes: rounded up to 64 bytes; 0 for width 0. */
export const rowStrideFor = (width: number, elemSize: number): number =>
  width <= 0 ? 0 : Math.ceil((width * elemSize) / ROW_ALIGNMENT) * ROW_ALIGNMENT

/**
 * One input or output: `channels` planes of `height` rows of `width` elements. Element (c, h, w) sits at byte
 * `c * planeStride + h * rowStride + w * elemSize`; logical order is channel-major (NCHW with N = 1).
 */
export class TensorLayout extends Schema.Class<TensorLayout>("TensorLayout")({
  name: Schema.optionalWith(Schema.String, { default: () => "" }),
  symbol: Schema.optionalWith(Schema.String, { default: () => "" }),
  channels: Schema.Int,
  width: Schema.Int,
  height: Schema.Int,
  elemSize: Schema.Literal(2, 4),
  rowStride: Schema.Int,
  planeStride: Schema.Int
}) {
  /** Bytes the surface must hold: `channels × planeStride`. */
  get allocSize(): number {
    return this.channels * this.planeStride
  }
  /** Bytes of real data, padding excluded. */
  get logicalBytes(): number {
    return this.channels * this.width * this.height * this.elemSize
  }
  /** Number of elements, padding excluded. */
  get logicalElements(): number {
    return this.channels * this.width * this.height
  }
  /** Elements in one channel plane. */
  get planeElements(): number {
    return this.width * this.height
  }
  /** `"fp16"` or `"fp32"` storage. */
  get dtype(): "fp16" | "fp32" {
    return this.elemSize === 2 ? "fp16" : "fp32"
  }
  /** Same as {@link rowStrideFor}, exposed on the class for discoverability. */
  static rowStrideFor = rowStrideFor

  /** The packed layout the engine would report for `[1, channels, height, width]` with the given element size. */
  static packed(
    dims: { readonly channels: number; readonly height: number; readonly width: number; readonly elemSize: 2 | 4 },
    names: { readonly name?: string; readonly symbol?: string } = {}
  ): TensorLayout {
    const rowStride = rowStrideFor(dims.width, dims.elemSize)
    return TensorLayout.make({
      name: names.name ?? "",
      symbol: names.symbol ?? "",
      channels: dims.channels,
      width: dims.width,
      height: dims.height,
      elemSize: dims.elemSize,
      rowStride,
      planeStride: rowStride * dims.height
    })
  }
}

/**
 * Why a reported layout cannot be used safely, or undefined when it is fine
 * (the checks and their order follow spec/native-protocol.md §6.4).
 */
export const layoutProblem = (l: {
  readonly channels: number
  readonly width: number
  readonly height: number
  readonly elemSize: number
  readonly rowStride: number
  readonly planeStride: number
}): string | undefined => {
  if (!(l.channels > 0 && l.width > 0 && l.height > 0)) {
    return `invalid dimensions: C=${l.channels} H=${l.height} W=${l.width}`
  }
  if (l.elemSize !== 2 && l.elemSize !== 4) return `unsupported element size ${l.elemSize} (expected 2 or 4)`
  if (!Number.isInteger(l.rowStride) || l.rowStride % ROW_ALIGNMENT !== 0) {
    return `RowStride ${l.rowStride} is not 64-byte aligned`
  }
  const min = rowStrideFor(l.width, l.elemSize)
  if (l.rowStride < min) return `RowStride ${l.rowStride} < minimum ${min} for width ${l.width} × ${l.elemSize} bytes`
  if (!Number.isInteger(l.planeStride) || l.planeStride < l.height * l.rowStride) {
    return `PlaneStride ${l.planeStride} < Height*RowStride ${l.height * l.rowStride}`
  }
  return undefined
}

/** The numeric fields of a layout, as a caller might hand-build them (untrusted). */
export interface TensorLayoutFields {
  readonly name?: string
  readonly symbol?: string
  readonly channels: number
  readonly width: number
  readonly height: number
  readonly elemSize: number
  readonly rowStride: number
  readonly planeStride: number
}

const show = (x: number): string => (Number.isNaN(x) ? "NaN" : String(x))

/**
 * The first field of a hand-built layout that is unusable, as a typed error naming the field, what it must be and
 * what was given; undefined when the layout is safe to address (same rules as {@link layoutProblem}, plus integer
 * and finiteness checks on every field).
 */
export const tensorLayoutInvalid = (
  l: TensorLayoutFields,
  op = "TensorLayout.validated"
): InvalidArgumentError | undefined => {
  const bad = (argument: string, expected: string, actual: number) =>
    new InvalidArgumentError({ op, argument, expected, actual: show(actual) })
  for (const field of ["channels", "height", "width"] as const) {
    const v = l[field]
    if (!Number.isSafeInteger(v) || v <= 0) return bad(field, "a positive integer", v)
  }
  if (l.elemSize !== 2 && l.elemSize !== 4) return bad("elemSize", "2 (fp16) or 4 (fp32)", l.elemSize)
  const min = rowStrideFor(l.width, l.elemSize)
  if (!Number.isSafeInteger(l.rowStride) || l.rowStride % ROW_ALIGNMENT !== 0 || l.rowStride < min) {
    return bad("rowStride", `a multiple of ${ROW_ALIGNMENT} bytes, at least ${min} (width ${l.width} × ${l.elemSize} bytes)`,
      l.rowStride)
  }
  if (!Number.isSafeInteger(l.planeStride) || l.planeStride < l.height * l.rowStride) {
    return bad("planeStride", `an integer number of bytes, at least ${l.height * l.rowStride} (height × rowStride)`,
      l.planeStride)
  }
  return undefined
}

/** Builds a {@link TensorLayout} from untrusted numbers, failing with an InvalidArgumentError naming the bad field. */
export const makeTensorLayout = (
  l: TensorLayoutFields,
  op = "TensorLayout.validated"
): Effect.Effect<TensorLayout, InvalidArgumentError> => {
  const problem = tensorLayoutInvalid(l, op)
  if (problem !== undefined) return Effect.fail(problem)
  return Effect.succeed(
    TensorLayout.make({
      name: l.name ?? "",
      symbol: l.symbol ?? "",
      channels: l.channels,
      width: l.width,
      height: l.height,
      elemSize: l.elemSize as 2 | 4,
      rowStride: l.rowStride,
      planeStride: l.planeStride
    })
  )
}
