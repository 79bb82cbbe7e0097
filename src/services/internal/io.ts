/**
 * Typed, checked I/O over one request's surfaces, shared by Model and pooled requests. Every argument is checked
 * before a byte is touched; a released owner answers ClosedError. @internal
 */
import * as Effect from "effect/Effect"
import type { ClosedError, InvalidArgumentError } from "../../schema/errors.js"
import type { TensorLayout } from "../../schema/TensorLayout.js"
import type { BackendRequest } from "../Backend.js"
import { readF32, readFp16, writeF32, writeFp16 } from "./codec.js"
import { checkIndex, closed, describe, invalid, isClosed, type Lifetime } from "./errors.js"
import { nameTable, type TensorRef } from "./names.js"

export type { TensorRef }

/** Zero-copy views of a request's surfaces; valid only while the owner is open (and, with `access`, under it). */
export interface SurfaceViews {
  readonly inputs: ReadonlyArray<Uint8Array>
  readonly outputs: ReadonlyArray<Uint8Array>
  /** The backend's locked access to these surfaces ({@link BackendRequest.access}); absent: no lock needed. */
  readonly access?: BackendRequest["access"]
}

type IoError = InvalidArgumentError | ClosedError

/**
 * Typed access to the input and output surfaces of one request, each tensor addressed by a `Ref`: its binding index
 * (`TensorIOOf<number>`, the internal form) or, in {@link TensorIO}, its index or its name.
 */
export interface TensorIOOf<Ref> {
  /** Input layouts in binding order, as the compiled model reports them. */
  readonly inputs: ReadonlyArray<TensorLayout>
  /** Output layouts in binding order. */
  readonly outputs: ReadonlyArray<TensorLayout>
  readonly inputCount: number
  readonly outputCount: number
  /** Copies a raw surface image (stride padding included); `bytes.length` must equal the layout's `allocSize`. */
  readonly writeInput: (index: Ref, bytes: Uint8Array) => Effect.Effect<void, IoError>
  /** A copy of the raw output surface image (`allocSize` bytes). */
  readonly readOutput: (index: Ref) => Effect.Effect<Uint8Array, IoError>
  /** Copies the raw output image into `dst` (exactly `allocSize` bytes); no allocation. */
  readonly readOutputInto: (index: Ref, dst: Uint8Array) => Effect.Effect<void, IoError>
  /** Writes C×H×W floats in NCHW order, converting to the surface's element type and honouring strides. */
  readonly writeInputF32: (index: Ref, data: Float32Array) => Effect.Effect<void, IoError>
  /** Writes whole channels starting at `channelStart`; `data.length` must be a multiple of H×W. */
  readonly writeInputF32Channels: (index: Ref, channelStart: number, data: Float32Array) => Effect.Effect<void, IoError>
  /** Writes C×H×W fp16 bit patterns into an fp16 surface. */
  readonly writeInputFP16: (index: Ref, bits: Uint16Array) => Effect.Effect<void, IoError>
  /** Writes whole fp16 channels starting at `channelStart`. */
  readonly writeInputFP16Channels: (index: Ref, channelStart: number, bits: Uint16Array) => Effect.Effect<void, IoError>
  /** Reads the output as a new Float32Array of C×H×W elements. */
  readonly readOutputF32: (index: Ref) => Effect.Effect<Float32Array, IoError>
  /** Reads the output into `dst` (exactly C×H×W elements); no allocation. */
  readonly readOutputF32Into: (index: Ref, dst: Float32Array) => Effect.Effect<void, IoError>
  /** Reads `channelCount` channels starting at `channelStart` into a new Float32Array. */
  readonly readOutputF32Channels: (index: Ref, channelStart: number, channelCount: number) => Effect.Effect<Float32Array, IoError>
  /** Reads an fp16 output as a new Uint16Array of bit patterns. */
  readonly readOutputFP16: (index: Ref) => Effect.Effect<Uint16Array, IoError>
  /** Reads an fp16 output into `dst`; no allocation. */
  readonly readOutputFP16Into: (index: Ref, dst: Uint16Array) => Effect.Effect<void, IoError>
  /** Reads fp16 channels `[channelStart, channelStart + channelCount)` into a new Uint16Array. */
  readonly readOutputFP16Channels: (index: Ref, channelStart: number, channelCount: number) => Effect.Effect<Uint16Array, IoError>
  /** The zero-copy surface views (valid until the owner closes; prefer the checked methods). */
  readonly surfaces: Effect.Effect<SurfaceViews, ClosedError>
}

/**
 * Typed access to the input and output surfaces of one request. Every method takes an input or output by binding
 * index or by name (the layout's `name`, or its `symbol` when no layout has that name); an unknown or shared name
 * is an InvalidArgumentError listing the known names.
 */
export interface TensorIO extends TensorIOOf<TensorRef> {
  /** The binding index of the input called `name`; fails naming it and listing the known names when none is. */
  readonly inputIndex: (name: string) => Effect.Effect<number, InvalidArgumentError>
  /** The binding index of the output called `name`; fails naming it and listing the known names when none is. */
  readonly outputIndex: (name: string) => Effect.Effect<number, InvalidArgumentError>
}

type Side = "input" | "output"

const isInt = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n)

/** Checks a typed array argument; undefined when fine. @internal */
export const checkArray = (
  op: string,
  argument: string,
  value: unknown,
  ctor: Float32ArrayConstructor | Uint16ArrayConstructor | Uint8ArrayConstructor,
  length: number,
  what: string
): InvalidArgumentError | undefined => {
  if (!(value instanceof ctor)) return invalid(op, argument, `a ${ctor.name} of ${length} ${what}`, describe(value))
  if (value.length !== length) {
    return invalid(op, argument, `length ${length} (${what})`, `length ${value.length}`)
  }
  return undefined
}

const shape = (l: TensorLayout) => `${l.channels} channels × ${l.height} × ${l.width}`

/** Checks a whole-tensor f32 transfer: index, type and C×H×W length. @internal */
export const checkF32 = (
  op: string,
  side: Side,
  layouts: ReadonlyArray<TensorLayout>,
  index: number,
  data: unknown,
  argument = "data"
): InvalidArgumentError | undefined =>
  checkIndex(op, side, index, layouts.length) ??
    checkArray(op, argument, data, Float32Array, layouts[index]!.logicalElements, shape(layouts[index]!))

const checkFp16Layout = (op: string, side: Side, l: TensorLayout, index: number) =>
  l.elemSize === 2
    ? undefined
    : invalid(op, `${side} ${index}`, "an fp16 tensor (elemSize 2)", `an fp32 tensor (elemSize ${l.elemSize})`,
      "use the F32 methods for fp32 surfaces")

const checkFP16 = (op: string, side: Side, layouts: ReadonlyArray<TensorLayout>, index: number, data: unknown) =>
  checkIndex(op, side, index, layouts.length) ?? checkFp16Layout(op, side, layouts[index]!, index) ??
    checkArray(op, "bits", data, Uint16Array, layouts[index]!.logicalElements, shape(layouts[index]!))

/** Checks a channel range; returns the channel count or an error. @internal */
const checkChannels = (
  op: string,
  l: TensorLayout,
  channelStart: unknown,
  channelCount: unknown
): InvalidArgumentError | undefined => {
  if (!isInt(channelStart) || channelStart < 0 || channelStart >= l.channels) {
    return invalid(op, "channelStart", `an integer in [0, ${l.channels})`, describe(channelStart))
  }
  if (!isInt(channelCount) || channelCount < 1 || channelStart + channelCount > l.channels) {
    return invalid(op, "channelCount", `an integer in [1, ${l.channels - channelStart}] (channels ${channelStart}.. of ${l.channels})`,
      describe(channelCount))
  }
  return undefined
}

const checkChannelData = (
  op: string,
  l: TensorLayout,
  channelStart: unknown,
  data: Float32Array | Uint16Array,
  argument: string
): InvalidArgumentError | undefined => {
  const plane = l.planeElements
  if (data.length === 0 || data.length % plane !== 0) {
    return invalid(op, `${argument}.length`, `a positive multiple of ${plane} (H×W = ${l.height}×${l.width} per channel)`,
      String(data.length))
  }
  return checkChannels(op, l, channelStart, data.length / plane)
}

/** Runs `f` over input `index` of `request` under the backend's write lock, when it has one. @internal */
export const withInput = <A>(request: BackendRequest, index: number, f: (bytes: Uint8Array) => A): A =>
  request.access === undefined ? f(request.inputs[index]!) : request.access("input", index, "write", f)

/** Runs `f` over output `index` of `request` under the backend's read-only lock, when it has one. @internal */
export const withOutput = <A>(request: BackendRequest, index: number, f: (bytes: Uint8Array) => A): A =>
  request.access === undefined ? f(request.outputs[index]!) : request.access("output", index, "read", f)

/** Builds the checked I/O of one request, inputs and outputs by index or name. `life` closes with the owner. @internal */
export const makeTensorIO = (
  resource: string,
  opPrefix: string,
  life: Lifetime,
  request: BackendRequest,
  inputs: ReadonlyArray<TensorLayout>,
  outputs: ReadonlyArray<TensorLayout>
): TensorIO => {
  const io = makeIndexedIO(resource, opPrefix, life, request, inputs, outputs)
  const ins = nameTable("input", inputs)
  const outs = nameTable("output", outputs)
  // A name resolves before the call, so the indexed method checks and runs exactly as with an index.
  const named = <Args extends ReadonlyArray<unknown>, A>(
    table: typeof ins,
    name: string,
    f: (index: number, ...args: Args) => Effect.Effect<A, IoError>
  ) => {
    const op = `${opPrefix}.${name}`
    return (ref: TensorRef, ...args: Args): Effect.Effect<A, IoError> => {
      if (typeof ref !== "string") return f(ref, ...args)
      const i = table.index(op, ref)
      // A closed owner answers ClosedError before any argument is judged, names included.
      return typeof i === "number" ? f(i, ...args) : isClosed(life) ? closed(op, resource) : Effect.fail(i)
    }
  }
  const index = (table: typeof ins, name: string) => {
    const op = `${opPrefix}.${name}`
    return (n: string): Effect.Effect<number, InvalidArgumentError> =>
      Effect.suspend(() => {
        const i = typeof n === "string" ? table.index(op, n) : invalid(op, "name", "a string", describe(n))
        return typeof i === "number" ? Effect.succeed(i) : Effect.fail(i)
      })
  }
  return {
    ...io,
    inputIndex: index(ins, "inputIndex"),
    outputIndex: index(outs, "outputIndex"),
    writeInput: named(ins, "writeInput", io.writeInput),
    readOutput: named(outs, "readOutput", io.readOutput),
    readOutputInto: named(outs, "readOutputInto", io.readOutputInto),
    writeInputF32: named(ins, "writeInputF32", io.writeInputF32),
    writeInputF32Channels: named(ins, "writeInputF32Channels", io.writeInputF32Channels),
    writeInputFP16: named(ins, "writeInputFP16", io.writeInputFP16),
    writeInputFP16Channels: named(ins, "writeInputFP16Channels", io.writeInputFP16Channels),
    readOutputF32: named(outs, "readOutputF32", io.readOutputF32),
    readOutputF32Into: named(outs, "readOutputF32Into", io.readOutputF32Into),
    readOutputF32Channels: named(outs, "readOutputF32Channels", io.readOutputF32Channels),
    readOutputFP16: named(outs, "readOutputFP16", io.readOutputFP16),
    readOutputFP16Into: named(outs, "readOutputFP16Into", io.readOutputFP16Into),
    readOutputFP16Channels: named(outs, "readOutputFP16Channels", io.readOutputFP16Channels)
  }
}

/** The checked I/O of one request by binding index. */
const makeIndexedIO = (
  resource: string,
  opPrefix: string,
  life: Lifetime,
  request: BackendRequest,
  inputs: ReadonlyArray<TensorLayout>,
  outputs: ReadonlyArray<TensorLayout>
): TensorIOOf<number> => {
  const inViews = request.inputs
  const outViews = request.outputs
  // Every copy runs under the backend's CPU lock of that surface when it has one (IOSurfaceLock on hardware).
  const into = <A>(index: number, f: (bytes: Uint8Array) => A): A => withInput(request, index, f)
  const from = <A>(index: number, f: (bytes: Uint8Array) => A): A => withOutput(request, index, f)
  const guard = <A>(op: string, problem: () => InvalidArgumentError | undefined, run: () => A) =>
    Effect.suspend((): Effect.Effect<A, IoError> => {
      if (isClosed(life)) return closed(op, resource)
      const p = problem()
      return p === undefined ? Effect.succeed(run()) : Effect.fail(p)
    })
  const op = (name: string) => `${opPrefix}.${name}`
  const OP = {
    writeInput: op("writeInput"),
    readOutput: op("readOutput"),
    readOutputInto: op("readOutputInto"),
    writeInputF32: op("writeInputF32"),
    writeInputF32Channels: op("writeInputF32Channels"),
    writeInputFP16: op("writeInputFP16"),
    writeInputFP16Channels: op("writeInputFP16Channels"),
    readOutputF32: op("readOutputF32"),
    readOutputF32Into: op("readOutputF32Into"),
    readOutputF32Channels: op("readOutputF32Channels"),
    readOutputFP16: op("readOutputFP16"),
    readOutputFP16Into: op("readOutputFP16Into"),
    readOutputFP16Channels: op("readOutputFP16Channels"),
    surfaces: op("surfaces")
  }
  const raw = (o: string, side: Side, layouts: ReadonlyArray<TensorLayout>, index: number, bytes: unknown) =>
    checkIndex(o, side, index, layouts.length) ??
      checkArray(o, "bytes", bytes, Uint8Array, layouts[index]!.allocSize, "bytes: the layout's allocSize, padding included")
  return {
    inputs,
    outputs,
    inputCount: inputs.length,
    outputCount: outputs.length,
    writeInput: (index, bytes) =>
      guard(OP.writeInput, () => raw(OP.writeInput, "input", inputs, index, bytes), () => {
        into(index, (view) => view.set(bytes))
      }),
    readOutput: (index) =>
      guard(OP.readOutput, () => checkIndex(OP.readOutput, "output", index, outputs.length), () =>
        from(index, (view) => view.slice(0, outputs[index]!.allocSize))),
    readOutputInto: (index, dst) =>
      guard(OP.readOutputInto, () => raw(OP.readOutputInto, "output", outputs, index, dst), () => {
        from(index, (view) => dst.set(view.subarray(0, outputs[index]!.allocSize)))
      }),
    writeInputF32: (index, data) =>
      guard(OP.writeInputF32, () => checkF32(OP.writeInputF32, "input", inputs, index, data), () => {
        into(index, (view) => writeF32(data, view, inputs[index]!))
      }),
    writeInputF32Channels: (index, channelStart, data) =>
      guard(
        OP.writeInputF32Channels,
        () =>
          checkIndex(OP.writeInputF32Channels, "input", index, inputs.length) ??
            (data instanceof Float32Array
              ? checkChannelData(OP.writeInputF32Channels, inputs[index]!, channelStart, data, "data")
              : invalid(OP.writeInputF32Channels, "data", "a Float32Array", describe(data))),
        () => {
          const l = inputs[index]!
          into(index, (view) => writeF32(data, view, l, channelStart, data.length / l.planeElements))
        }
      ),
    writeInputFP16: (index, bits) =>
      guard(OP.writeInputFP16, () => checkFP16(OP.writeInputFP16, "input", inputs, index, bits), () => {
        into(index, (view) => writeFp16(bits, view, inputs[index]!, 0, inputs[index]!.channels))
      }),
    writeInputFP16Channels: (index, channelStart, bits) =>
      guard(
        OP.writeInputFP16Channels,
        () =>
          checkIndex(OP.writeInputFP16Channels, "input", index, inputs.length) ??
            checkFp16Layout(OP.writeInputFP16Channels, "input", inputs[index]!, index) ??
            (bits instanceof Uint16Array
              ? checkChannelData(OP.writeInputFP16Channels, inputs[index]!, channelStart, bits, "bits")
              : invalid(OP.writeInputFP16Channels, "bits", "a Uint16Array", describe(bits))),
        () => {
          const l = inputs[index]!
          into(index, (view) => writeFp16(bits, view, l, channelStart, bits.length / l.planeElements))
        }
      ),
    readOutputF32: (index) =>
      guard(OP.readOutputF32, () => checkIndex(OP.readOutputF32, "output", index, outputs.length), () => {
        const l = outputs[index]!
        const dst = new Float32Array(l.logicalElements)
        from(index, (view) => readF32(view, l, dst))
        return dst
      }),
    readOutputF32Into: (index, dst) =>
      guard(OP.readOutputF32Into, () => checkF32(OP.readOutputF32Into, "output", outputs, index, dst, "dst"), () => {
        from(index, (view) => readF32(view, outputs[index]!, dst))
      }),
    readOutputF32Channels: (index, channelStart, channelCount) =>
      guard(
        OP.readOutputF32Channels,
        () =>
          checkIndex(OP.readOutputF32Channels, "output", index, outputs.length) ??
            checkChannels(OP.readOutputF32Channels, outputs[index]!, channelStart, channelCount),
        () => {
          const l = outputs[index]!
          const dst = new Float32Array(channelCount * l.planeElements)
          from(index, (view) => readF32(view, l, dst, channelStart, channelCount))
          return dst
        }
      ),
    readOutputFP16: (index) =>
      guard(
        OP.readOutputFP16,
        () =>
          checkIndex(OP.readOutputFP16, "output", index, outputs.length) ??
            checkFp16Layout(OP.readOutputFP16, "output", outputs[index]!, index),
        () => {
          const l = outputs[index]!
          const dst = new Uint16Array(l.logicalElements)
          from(index, (view) => readFp16(view, l, dst, 0, l.channels))
          return dst
        }
      ),
    readOutputFP16Into: (index, dst) =>
      guard(
        OP.readOutputFP16Into,
        () =>
          checkIndex(OP.readOutputFP16Into, "output", index, outputs.length) ??
            checkFp16Layout(OP.readOutputFP16Into, "output", outputs[index]!, index) ??
            checkArray(OP.readOutputFP16Into, "dst", dst, Uint16Array, outputs[index]!.logicalElements, shape(outputs[index]!)),
        () => {
          const l = outputs[index]!
          from(index, (view) => readFp16(view, l, dst, 0, l.channels))
        }
      ),
    readOutputFP16Channels: (index, channelStart, channelCount) =>
      guard(
        OP.readOutputFP16Channels,
        () =>
          checkIndex(OP.readOutputFP16Channels, "output", index, outputs.length) ??
            checkFp16Layout(OP.readOutputFP16Channels, "output", outputs[index]!, index) ??
            checkChannels(OP.readOutputFP16Channels, outputs[index]!, channelStart, channelCount),
        () => {
          const l = outputs[index]!
          const dst = new Uint16Array(channelCount * l.planeElements)
          from(index, (view) => readFp16(view, l, dst, channelStart, channelCount))
          return dst
        }
      ),
    surfaces: Effect.suspend(() =>
      isClosed(life)
        ? closed(OP.surfaces, resource)
        : Effect.succeed(request.access === undefined
          ? { inputs: inViews, outputs: outViews }
          : { inputs: inViews, outputs: outViews, access: request.access })
    )
  }
}
