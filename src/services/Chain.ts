/**
 * Chaining models through their surfaces: copies a range of one request's output into another's input byte for byte,
 * with no float conversion (spec/native-protocol.md §14.8 CopyOutputRangeToInput), so a pipeline of programs keeps its
 * activations in the engine's own format between steps.
 */
import * as Effect from "effect/Effect"
import type { ClosedError, InvalidArgumentError } from "../schema/errors.js"
import type { TensorIO } from "./internal/io.js"
import { describe, invalid } from "./internal/errors.js"
import { lockedAll, type RequestLock } from "./internal/lock.js"
import { lockOf } from "./internal/request.js"

/** Which elements to copy: `channels` channels of `width` elements, from an output of `src` to an input of `dst`. */
export interface OutputRange {
  readonly srcOutput: number
  readonly srcChannel: number
  /** First element within each source row (default 0). */
  readonly srcOffset?: number
  readonly dstInput: number
  readonly dstChannel: number
  /** First element within each destination row (default 0). */
  readonly dstOffset?: number
  /** Channels to copy; 0 copies nothing. */
  readonly channels: number
  /** Elements per channel; absent or -1: whole rows (both offsets 0 and both widths equal). */
  readonly width?: number
}

const isInt = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n)

/**
 * Copies `range` from `src`'s output into `dst`'s input (models or pooled requests, the same one allowed). Both
 * tensors must have height 1 and the same element size; every index and extent is checked before a byte moves.
 */
export const copyOutputToInput = (
  src: TensorIO,
  dst: TensorIO,
  range: OutputRange
): Effect.Effect<void, InvalidArgumentError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, InvalidArgumentError | ClosedError> => {
    const op = "Chain.copyOutputToInput"
    const bad = (argument: string, expected: string, actual: unknown) => Effect.fail(invalid(op, argument, expected, describe(actual)))
    const r = range as Partial<OutputRange> | undefined
    if (typeof r !== "object" || r === null) return bad("range", "an OutputRange", range)
    if (!isInt(r.srcOutput) || r.srcOutput < 0 || r.srcOutput >= src.outputCount) {
      return bad("srcOutput", `an output index in [0, ${src.outputCount})`, r.srcOutput)
    }
    if (!isInt(r.dstInput) || r.dstInput < 0 || r.dstInput >= dst.inputCount) {
      return bad("dstInput", `an input index in [0, ${dst.inputCount})`, r.dstInput)
    }
    const from = src.outputs[r.srcOutput]!
    const to = dst.inputs[r.dstInput]!
    if (from.height !== 1 || to.height !== 1) {
      return bad("range", "tensors of height 1 on both sides", `heights ${from.height} and ${to.height}`)
    }
    if (from.elemSize !== to.elemSize) {
      return bad("range", "the same element size on both sides", `${from.elemSize} and ${to.elemSize} bytes`)
    }
    if (!isInt(r.channels) || r.channels < 0) return bad("channels", "a non-negative integer", r.channels)
    const srcOffset = r.srcOffset ?? 0
    const dstOffset = r.dstOffset ?? 0
    const fullRows = r.width === undefined || r.width === -1
    let width: number
    if (fullRows) {
      if (srcOffset !== 0 || dstOffset !== 0) return bad("width", "an explicit width when an offset is set", r.width)
      if (from.width !== to.width) return bad("width", `an explicit width (rows differ: ${from.width} and ${to.width})`, r.width)
      width = from.width
    } else {
      if (!isInt(r.width) || r.width < 0) return bad("width", "a non-negative integer, or -1 for whole rows", r.width)
      width = r.width
    }
    if (!isInt(r.srcChannel) || r.srcChannel < 0 || r.srcChannel + r.channels > from.channels) {
      return bad("srcChannel", `a channel with ${r.channels} channels after it inside [0, ${from.channels})`, r.srcChannel)
    }
    if (!isInt(r.dstChannel) || r.dstChannel < 0 || r.dstChannel + r.channels > to.channels) {
      return bad("dstChannel", `a channel with ${r.channels} channels after it inside [0, ${to.channels})`, r.dstChannel)
    }
    if (!isInt(srcOffset) || srcOffset < 0 || srcOffset + width > from.width) {
      return bad("srcOffset", `an offset with ${width} elements after it inside a row of ${from.width}`, srcOffset)
    }
    if (!isInt(dstOffset) || dstOffset < 0 || dstOffset + width > to.width) {
      return bad("dstOffset", `an offset with ${width} elements after it inside a row of ${to.width}`, dstOffset)
    }
    if (r.channels === 0 || width === 0) return Effect.void
    const { srcOutput, dstInput, srcChannel, dstChannel, channels } = r as OutputRange
    // Both requests held (in a fixed order) so no fiber writes the source or reads the destination mid-copy.
    const locks = [lockOf(src), lockOf(dst)].filter((l): l is RequestLock => l !== undefined)
    return lockedAll(locks, Effect.flatMap(src.surfaces, (s) =>
      Effect.map(dst.surfaces, (d) => {
        const e = from.elemSize
        const copy = (out: Uint8Array, into: Uint8Array) => {
          for (let c = 0; c < channels; c++) {
            const a = (srcChannel + c) * from.planeStride + srcOffset * e
            into.set(out.subarray(a, a + width * e), (dstChannel + c) * to.planeStride + dstOffset * e)
          }
        }
        // Under the backend's surface locks where it has them: the source read-only, the destination for writing.
        const read = <A>(f: (out: Uint8Array) => A): A =>
          s.access === undefined ? f(s.outputs[srcOutput]!) : s.access("output", srcOutput, "read", f)
        const write = <A>(f: (into: Uint8Array) => A): A =>
          d.access === undefined ? f(d.inputs[dstInput]!) : d.access("input", dstInput, "write", f)
        read((out) => write((into) => copy(out, into)))
      })))
  }).pipe(Effect.withSpan("Chain.copyOutputToInput"))
