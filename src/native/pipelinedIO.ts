/**
 * Pipelined I/O and chaining of package models (spec/native-protocol.md §10.3–10.4) behind the port's
 * `pipelinedIO` and `prepareChain`, sent to the model's client, each class and selector asked for with
 * `respondsToSelector:` first. The chaining request is built as the spec describes the Go code (arrays of
 * `_ANEIOSurfaceObject` as inputs and output sets), which the errata think likely wrong (`_ANEBuffer` /
 * `_ANEIOSurfaceOutputSets`): UNCERTAIN, and verified against the fake runtime only.
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError } from "../schema/errors.js"
import type { BackendChainLink, BackendModel } from "../services/Backend.js"
import { native, type NativeEnv, Stop } from "./env.js"
import { nativeError } from "./errors.js"
import { type Id, nil, type Objc } from "./objc.js"
import type { Compiled } from "./requests.js"
import type { RequestState } from "./state.js"

const READY_CLASS = "_ANEInputBuffersReady"
const READY = "inputBuffersWithProcedureIndex:inputBufferInfoIndex:inputFreeValue:executionDelay:"
const BUFFERS_READY = "buffersReadyWithModel:inputBuffers:options:qos:error:"
const ENQUEUE_CLASS = "_ANEOutputSetEnqueue"
const ENQUEUE_INIT = "initOutputSetWithProcedureIndex:setIndex:signalValue:signalNotRequired:isOpenLoop:"
const ENQUEUE = "enqueueSetsWithModel:outputSet:options:qos:error:"
const CHAIN_CLASS = "_ANEChainingRequest"
const CHAIN = "chainingRequestWithInputs:outputSets:lbInputSymbolId:lbOutputSymbolId:procedureIndex:signalEvents:" +
  "transactionHandle:fwEnqueueDelay:memoryPoolId:"
const PREPARE = "prepareChainingWithModel:options:chainingReq:qos:error:"

/** The pipelined-I/O members of a package model compiled by `env` (in-memory models are refused above the port). */
export const nativePipelining = (
  env: NativeEnv,
  c: Compiled,
  r0: RequestState
): Pick<BackendModel, "pipelinedIO" | "prepareChain"> => {
  const rt = env.rt
  const { state } = c
  const refuse = (op: string, hint: string) => new Stop(new EvalError({ op, model: c.id, hint }))
  /** Runs `f` with the model's client and `_ANEModel`, once the model is checked open and a package. */
  const withClient = (op: string, what: string, f: (client: Id, model: Id) => void): Effect.Effect<void, EvalError | ClosedError> =>
    Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
      if (state.closed || r0.closed) return Effect.fail(new ClosedError({ op, resource: `model ${c.id}` }))
      return native<void, EvalError, "eval">(env, "eval", op, c.id, what, () => {
        if (state.kind !== "package") throw refuse(op, "pipelined I/O requires package models")
        if (state.client === nil) throw refuse(op, "the model has no _ANEClient")
        f(state.client, state.model)
      })
    })
  const answered = (op: string, receiver: Id, selector: string, who: string) => {
    if (receiver === nil || !rt.responds(receiver, selector)) throw refuse(op, `${who} does not answer ${selector}`)
  }
  const call = (op: string, client: Id, selector: string, args: ReadonlyArray<unknown>) => {
    answered(op, client, selector, "_ANEClient")
    const result = rt.sendError(client, selector, "bool(id,id,id,uint32,err)", ...args, state.qos)
    if (!result.ok) throw new Stop(nativeError("eval", op, c.id, selector, result.error))
  }
  return {
    pipelinedIO: {
      notifyInputsReady: (procedure) =>
        withClient("PipelinedIO.notifyInputsReady", "telling the engine the inputs are ready", (client, model) => {
          const op = "PipelinedIO.notifyInputsReady"
          const cls = rt.cls(READY_CLASS)
          answered(op, cls, READY, READY_CLASS)
          const buffers = rt.id(cls, READY, "id(uint32,id,id,uint64)", procedure, nil, nil, 0n)
          if (buffers === nil) throw refuse(op, `${READY_CLASS} ${READY} returned nil`)
          call(op, client, BUFFERS_READY, [model, buffers, nil])
        }),
      enqueueOutputSet: (procedure, setIndex, signalValue, openLoop) =>
        withClient("PipelinedIO.enqueueOutputSet", "enqueueing an output set", (client, model) => {
          const op = "PipelinedIO.enqueueOutputSet"
          const cls = rt.cls(ENQUEUE_CLASS)
          answered(op, cls, "alloc", ENQUEUE_CLASS)
          const made = rt.id(cls, "alloc")
          const set = made === nil ? nil : rt.id(made, ENQUEUE_INIT, "id(uint32,uint32,uint64,bool,bool)", procedure, setIndex, signalValue, false, openLoop)
          if (set === nil) throw refuse(op, `${ENQUEUE_CLASS} ${ENQUEUE_INIT} returned nil`)
          try {
            call(op, client, ENQUEUE, [model, set, nil])
          } finally {
            rt.release(set)
          }
        })
    },
    prepareChain: (links) =>
      Effect.forEach(links, (link) =>
        withClient("PipelinedIO.prepareChain", "preparing a chain", (client, model) => prepareOne(rt, link, client, model, r0)),
        { discard: true })
  }

  function prepareOne(rt: Objc, link: BackendChainLink, client: Id, model: Id, r: RequestState): void {
    const op = "PipelinedIO.prepareChain"
    const cls = rt.cls(CHAIN_CLASS)
    answered(op, cls, CHAIN, CHAIN_CLASS)
    const owned: Array<Id> = []
    const array = (items: ReadonlyArray<Id>) => {
      const a = rt.mutableArray()
      owned.push(a)
      for (const item of items) rt.addObject(a, item)
      return a
    }
    try {
      const wrap = (surfaces: ReadonlyArray<Id>) =>
        array(surfaces.map((s) => rt.id(rt.cls("_ANEIOSurfaceObject"), "objectWithIOSurface:", "id(ptr)", s)))
      const request = rt.id(cls, CHAIN, "id(id,id,id,id,id,id,id,id,id)",
        wrap(r.inputSurfaces), wrap(r.outputSurfaces),
        array([rt.numberInt(link.loopbackInputIndex)]), array([rt.numberInt(link.loopbackOutputIndex)]),
        rt.numberInt(link.procedureIndex), nil, rt.numberU64(1n), rt.numberU64(link.enqueueDelay), rt.numberInt(0))
      if (request === nil) throw refuse(op, `${CHAIN_CLASS} ${CHAIN} returned nil`)
      const options = rt.mutableDictionary()
      owned.push(options)
      call(op, client, PREPARE, [model, options, request])
    } finally {
      for (const o of owned) rt.release(o)
    }
  }
}
