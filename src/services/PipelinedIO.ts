/**
 * Pipelined I/O and firmware chaining for package models (spec/native-protocol.md §10.3–10.4): telling the engine
 * a procedure's inputs are ready, enqueueing output sets, and preparing a chain of loopback links. In-memory MIL
 * models are refused with SharedEventRequiresPackageError, as the engine's daemon refuses them.
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError, type InvalidArgumentError, SharedEventRequiresPackageError } from "../schema/errors.js"
import type { BackendChainLink, BackendModel } from "./Backend.js"
import { closed, describe, invalid, isClosed } from "./internal/errors.js"
import { ModelTypeId } from "./internal/model.js"
import { checkU64 } from "./internal/sharedEvent.js"
import type { Model } from "./Model.js"

/** Pipelined I/O of one package model; valid while the model is. */
export interface PipelinedIO {
  /** Tells the engine the inputs of `procedure` (default 0) are ready (`buffersReadyWithModel:…`). */
  readonly notifyInputsReady: (procedure?: number) => Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError>
  /** Enqueues output set `setIndex` of `procedure`, to be signalled with `signalValue` (`enqueueSetsWithModel:…`). */
  readonly enqueueOutputSet: (
    procedure: number,
    setIndex: number,
    signalValue: bigint
  ) => Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError>
  /** Whether output sets are enqueued open-loop (`isOpenLoop:`); false at first. */
  readonly openLoop: Effect.Effect<boolean>
  /** Sets the open-loop flag of later {@link PipelinedIO.enqueueOutputSet} calls. */
  readonly setOpenLoop: (openLoop: boolean) => Effect.Effect<void, InvalidArgumentError>
}

/** One link of a firmware chain: which input is fed back from which output, for which procedure. */
export interface ChainLink {
  /** Default 0. */
  readonly procedureIndex?: number
  readonly loopbackInputIndex: number
  readonly loopbackOutputIndex: number
  /** Firmware enqueue delay (default 0n). */
  readonly enqueueDelay?: bigint
}

const U32_MAX = 2 ** 32 - 1
const isU32 = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= U32_MAX

const packageModel = (
  op: string,
  feature: string,
  model: Model
): BackendModel | InvalidArgumentError | ClosedError | SharedEventRequiresPackageError => {
  const inner = (model as Partial<Model> | undefined)?.[ModelTypeId]
  if (inner === undefined) return invalid(op, "model", "a Model", describe(model))
  if (isClosed(inner.life)) return new ClosedError({ op, resource: `model ${model.id}` })
  if (inner.backend.kind !== "package") return new SharedEventRequiresPackageError({ op, model: model.id, feature })
  return inner.backend
}

const unsupported = (op: string, bm: BackendModel, what: string) =>
  new EvalError({ op, model: bm.id, hint: `this backend has no ${what}` })

/** Pipelined I/O of a package model; SharedEventRequiresPackageError for an in-memory MIL model. */
export const make = (
  model: Model
): Effect.Effect<PipelinedIO, SharedEventRequiresPackageError | ClosedError | InvalidArgumentError> =>
  Effect.suspend(() => {
    const bm = packageModel("PipelinedIO.make", "pipelined I/O", model)
    if ("_tag" in bm) return Effect.fail(bm)
    const life = model[ModelTypeId].life
    const resource = `model ${model.id}`
    let openLoop = false
    const io: PipelinedIO = {
      notifyInputsReady: (procedure = 0) =>
        Effect.suspend((): Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError> => {
          const op = "PipelinedIO.notifyInputsReady"
          if (isClosed(life)) return closed(op, resource)
          if (!isU32(procedure)) return Effect.fail(invalid(op, "procedure", "a u32 procedure index", describe(procedure)))
          if (bm.pipelinedIO === undefined) return Effect.fail(unsupported(op, bm, "pipelined I/O"))
          return bm.pipelinedIO.notifyInputsReady(procedure)
        }),
      enqueueOutputSet: (procedure, setIndex, signalValue) =>
        Effect.suspend((): Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError> => {
          const op = "PipelinedIO.enqueueOutputSet"
          if (isClosed(life)) return closed(op, resource)
          if (!isU32(procedure)) return Effect.fail(invalid(op, "procedure", "a u32 procedure index", describe(procedure)))
          if (!isU32(setIndex)) return Effect.fail(invalid(op, "setIndex", "a u32 output-set index", describe(setIndex)))
          const p = checkU64(op, "signalValue", signalValue)
          if (p) return Effect.fail(p)
          if (bm.pipelinedIO === undefined) return Effect.fail(unsupported(op, bm, "pipelined I/O"))
          return bm.pipelinedIO.enqueueOutputSet(procedure, setIndex, signalValue, openLoop)
        }),
      openLoop: Effect.sync(() => openLoop),
      setOpenLoop: (value) =>
        typeof value === "boolean"
          ? Effect.sync(() => { openLoop = value })
          : Effect.fail(invalid("PipelinedIO.setOpenLoop", "openLoop", "a boolean", describe(value)))
    }
    return Effect.succeed(io)
  })

/**
 * Prepares firmware chaining of a package model (`prepareChainingWithModel:…`), every index checked against the
 * model's bindings first; an empty list does nothing. SharedEventRequiresPackageError for an in-memory MIL model.
 */
export const prepareChain = (
  model: Model,
  links: ReadonlyArray<ChainLink>
): Effect.Effect<void, SharedEventRequiresPackageError | EvalError | ClosedError | InvalidArgumentError> =>
  Effect.suspend((): Effect.Effect<void, SharedEventRequiresPackageError | EvalError | ClosedError | InvalidArgumentError> => {
    const op = "PipelinedIO.prepareChain"
    const bm = packageModel(op, "chaining", model)
    if ("_tag" in bm) return Effect.fail(bm)
    if (!Array.isArray(links)) return Effect.fail(invalid(op, "links", "an array of ChainLinks", describe(links)))
    const checked: Array<BackendChainLink> = []
    for (let i = 0; i < links.length; i++) {
      const l = links[i] as Partial<ChainLink> | undefined
      const at = `links[${i}]`
      if (typeof l !== "object" || l === null) return Effect.fail(invalid(op, at, "a ChainLink", describe(l)))
      const proc = l.procedureIndex ?? 0
      if (!isU32(proc)) return Effect.fail(invalid(op, `${at}.procedureIndex`, "a u32 procedure index", describe(proc)))
      const inIdx = l.loopbackInputIndex
      if (!isU32(inIdx) || inIdx >= bm.inputs.length) {
        return Effect.fail(invalid(op, `${at}.loopbackInputIndex`, `an input index in [0, ${bm.inputs.length})`, describe(inIdx)))
      }
      const outIdx = l.loopbackOutputIndex
      if (!isU32(outIdx) || outIdx >= bm.outputs.length) {
        return Effect.fail(invalid(op, `${at}.loopbackOutputIndex`, `an output index in [0, ${bm.outputs.length})`, describe(outIdx)))
      }
      const delay = l.enqueueDelay ?? 0n
      const p = checkU64(op, `${at}.enqueueDelay`, delay)
      if (p) return Effect.fail(p)
      checked.push({ procedureIndex: proc, loopbackInputIndex: inIdx, loopbackOutputIndex: outIdx, enqueueDelay: delay })
    }
    if (checked.length === 0) return Effect.void
    if (bm.prepareChain === undefined) return Effect.fail(unsupported(op, bm, "chaining"))
    return bm.prepareChain(checked)
  })
