/**
 * One request as the public API sees it (a model's own, a bound or a pooled one): checked I/O and metered evals,
 * each single call holding the request's lock, plus `run` and `use` for whole sequences. @internal
 */
import * as Effect from "effect/Effect"
import { type ClosedError, type EvalError, InvalidArgumentError } from "../../schema/errors.js"
import type { TensorLayout } from "../../schema/TensorLayout.js"
import type { BackendRequest } from "../Backend.js"
import type { Exclusive, NamedTensors, RunError, RunOptions } from "../Model.js"
import { readF32, writeF32 } from "./codec.js"
import { closed, describe, invalid, isClosed, type Lifetime } from "./errors.js"
import { checkF32, makeTensorIO, type TensorIO } from "./io.js"
import { locked, lockedUse, RequestLock } from "./lock.js"
import type { Instrumented } from "./model.js"
import { nameTable, type NameTable } from "./names.js"

const locks = new WeakMap<object, RequestLock>()

/** The lock of a public request object (Model, BoundRequest, PooledRequest); undefined for anything else. @internal */
export const lockOf = (io: unknown): RequestLock | undefined =>
  typeof io === "object" && io !== null ? locks.get(io) : undefined

/** Registers `self` as guarded by `lock` (for {@link lockOf}) and returns it. @internal */
export const register = <A extends object>(self: A, lock: RequestLock): A => {
  locks.set(self, lock)
  return self
}

/** Each TensorIO method of `io` taking `lock` around its call; the raw `surfaces` views stay unlocked. @internal */
export const lockTensorIO = (io: TensorIO, lock: RequestLock): TensorIO => ({
  inputs: io.inputs,
  outputs: io.outputs,
  inputCount: io.inputCount,
  outputCount: io.outputCount,
  inputIndex: io.inputIndex,
  outputIndex: io.outputIndex,
  writeInput: (i, bytes) => locked(lock, io.writeInput(i, bytes)),
  readOutput: (i) => locked(lock, io.readOutput(i)),
  readOutputInto: (i, dst) => locked(lock, io.readOutputInto(i, dst)),
  writeInputF32: (i, data) => locked(lock, io.writeInputF32(i, data)),
  writeInputF32Channels: (i, c, data) => locked(lock, io.writeInputF32Channels(i, c, data)),
  writeInputFP16: (i, bits) => locked(lock, io.writeInputFP16(i, bits)),
  writeInputFP16Channels: (i, c, bits) => locked(lock, io.writeInputFP16Channels(i, c, bits)),
  readOutputF32: (i) => locked(lock, io.readOutputF32(i)),
  readOutputF32Into: (i, dst) => locked(lock, io.readOutputF32Into(i, dst)),
  readOutputF32Channels: (i, c, n) => locked(lock, io.readOutputF32Channels(i, c, n)),
  readOutputFP16: (i) => locked(lock, io.readOutputFP16(i)),
  readOutputFP16Into: (i, dst) => locked(lock, io.readOutputFP16Into(i, dst)),
  readOutputFP16Channels: (i, c, n) => locked(lock, io.readOutputFP16Channels(i, c, n)),
  surfaces: io.surfaces
})

/** A record of inputs by name as an array in binding order, or the error naming the unknown or missing input. @internal */
export const fromRecord = (
  op: string,
  names: NameTable,
  count: number,
  given: NamedTensors
): ReadonlyArray<Float32Array> | InvalidArgumentError => {
  const list = new Array<Float32Array>(count)
  const seen = new Array<string | undefined>(count)
  for (const key of Object.keys(given)) {
    const i = names.index(op, key)
    if (typeof i !== "number") return i
    if (seen[i] !== undefined) {
      return invalid(op, `inputs.${key}`, `one entry per input`, `a second entry for input ${i} (also given as ${JSON.stringify(seen[i])})`)
    }
    seen[i] = key
    list[i] = given[key]!
  }
  const missing = seen.findIndex((k) => k === undefined)
  if (missing >= 0) {
    return invalid(op, "inputs", `an entry for every input`, `none for input ${missing} (${JSON.stringify(names.keys[missing])})`)
  }
  return list
}

/** @internal */
export const isRecord = (u: unknown): u is NamedTensors =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !ArrayBuffer.isView(u)

/**
 * The lock-free body of `run`: checks everything first, then writes, evaluates and reads. Inputs by binding order
 * (an array: outputs come back as an array) or by name (a record: outputs come back keyed by name). @internal
 */
export const runBody = (
  op: string,
  resource: string,
  life: Lifetime,
  request: BackendRequest,
  inputs: ReadonlyArray<TensorLayout>,
  outputs: ReadonlyArray<TensorLayout>,
  evals: Instrumented,
  given: ReadonlyArray<Float32Array> | NamedTensors,
  options: RunOptions | undefined,
  names: { readonly inputs: NameTable; readonly outputs: NameTable } = {
    inputs: nameTable("input", inputs),
    outputs: nameTable("output", outputs)
  }
): Effect.Effect<ReadonlyArray<Float32Array> | NamedTensors, RunError> =>
  Effect.suspend((): Effect.Effect<ReadonlyArray<Float32Array> | NamedTensors, RunError> => {
    if (isClosed(life)) return closed(op, resource)
    const byName = isRecord(given)
    const list = byName ? fromRecord(op, names.inputs, inputs.length, given) : given
    if (list instanceof InvalidArgumentError) return Effect.fail(list)
    if (!Array.isArray(list) || list.length !== inputs.length) {
      return Effect.fail(invalid(op, "inputs", `an array of ${inputs.length} Float32Arrays (one per input) or a record of them by input name`,
        describe(given)))
    }
    const mode = (options as RunOptions | undefined)?.mode ?? "async"
    if (mode !== "async" && mode !== "sync") {
      return Effect.fail(invalid(op, "options.mode", `"sync" or "async"`, describe(mode)))
    }
    for (let i = 0; i < inputs.length; i++) {
      const p = checkF32(op, "input", inputs, i, list[i], byName ? `inputs.${names.inputs.keys[i]}` : `inputs[${i}]`)
      if (p) return Effect.fail(p)
    }
    // Copies run under the backend's CPU lock of each surface when it has one (IOSurfaceLock on hardware).
    const access = request.access
    for (let i = 0; i < inputs.length; i++) {
      if (access === undefined) writeF32(list[i]!, request.inputs[i]!, inputs[i]!)
      else access("input", i, "write", (view) => writeF32(list[i]!, view, inputs[i]!))
    }
    return Effect.map(mode === "async" ? evals.evalAsync : evals.eval, () => {
      const ys = outputs.map((l, i) => {
        const dst = new Float32Array(l.logicalElements)
        if (access === undefined) readF32(request.outputs[i]!, l, dst)
        else access("output", i, "read", (view) => readF32(view, l, dst))
        return dst
      })
      return byName ? Object.fromEntries(ys.map((y, i) => [names.outputs.keys[i]!, y])) : ys
    })
  })

/** The public members of one request: locked I/O, locked evals, `run` and `use` (given the object `use` hands out). */
export interface LockedRequest extends TensorIO {
  readonly lock: RequestLock
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  readonly evalWithStats: Instrumented["evalWithStats"]
  readonly run: Exclusive<unknown>["run"]
  readonly use: <Self>(self: () => Self) => Exclusive<Self>["use"]
}

/** Builds the locked members of one request. @internal */
export const makeLockedRequest = (
  resource: string,
  opPrefix: string,
  life: Lifetime,
  request: BackendRequest,
  inputs: ReadonlyArray<TensorLayout>,
  outputs: ReadonlyArray<TensorLayout>,
  evals: Instrumented
): LockedRequest => {
  const lock = new RequestLock()
  const io = lockTensorIO(makeTensorIO(resource, opPrefix, life, request, inputs, outputs), lock)
  const runOp = `${opPrefix}.run`
  const names = { inputs: nameTable("input", inputs), outputs: nameTable("output", outputs) }
  return {
    ...io,
    lock,
    // Built once: a call allocates nothing on the uncontended path.
    eval: locked(lock, evals.eval),
    evalAsync: locked(lock, evals.evalAsync),
    evalWithStats: locked(lock, evals.evalWithStats),
    run: ((given: ReadonlyArray<Float32Array> | NamedTensors, options?: RunOptions) =>
      locked(lock, runBody(runOp, resource, life, request, inputs, outputs, evals, given, options, names))) as LockedRequest["run"],
    use: (self) => (f) => lockedUse(lock, () => f(self()))
  }
}
