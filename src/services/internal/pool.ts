/** RequestPool implementation: a queue of idle mapped requests. @internal */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { BackendRequest } from "../Backend.js"
import type { Model } from "../Model.js"
import type { PooledRequest, RequestPool } from "../RequestPool.js"
import { closed, describe, invalid, isClosed, lifetime, type Lifetime } from "./errors.js"
import { makeLockedRequest, register } from "./request.js"
import { type Instrumented, ModelTypeId } from "./model.js"

/** @internal */
export const MAX_DEPTH = 127

const CLOSED = Symbol.for("effect-ane/RequestPool/closed")

/** @internal */
export const checkDepth = (op: string, argument: string, n: unknown) =>
  typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_DEPTH
    ? undefined
    : invalid(op, argument, `an integer in [1, ${MAX_DEPTH}] (the engine's queue limit)`, describe(n))

/** One mapped request with its lifetime and metered evals. @internal */
export interface Slot {
  readonly index: number
  readonly request: BackendRequest
  readonly life: Lifetime
  readonly evals: Instrumented
}

/** Maps `n` fresh requests of `model` in the current scope. @internal */
export const mapSlots = (op: string, model: Model, n: number, parent: Lifetime, label: string) =>
  Effect.gen(function*() {
    const inner = model[ModelTypeId]
    const slots: Array<Slot> = []
    for (let i = 0; i < n; i++) {
      const request = yield* inner.backend.mapRequest
      const resource = `${label} request ${i} of model ${model.id}`
      const life = lifetime(parent)
      slots.push({ index: i, request, life, evals: inner.instrument(request, resource, op, life) })
    }
    return slots
  })

/** @internal */
export const make = (model: Model, size: number) =>
  Effect.gen(function*() {
    const p = checkDepth("RequestPool.make", "size", size)
    if (p) return yield* Effect.fail(p)
    if (isClosed(model[ModelTypeId].life)) return yield* closed("RequestPool.make", `model ${model.id}`)
    const life = lifetime(model[ModelTypeId].life)
    const slots = yield* mapSlots("PooledRequest", model, size, life, "pool")
    const idle = yield* Queue.unbounded<PooledRequest | typeof CLOSED>()
    const resource = `request pool of model ${model.id}`
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        life.closed = true
        // Wake every caller still waiting in acquire: each takes a CLOSED marker and fails with ClosedError.
        const size = yield* Queue.size(idle)
        if (size < 0) yield* Queue.offerAll(idle, Array.from({ length: -size }, () => CLOSED))
      })
    )
    for (const s of slots) {
      const { lock, use, ...members } = makeLockedRequest(`pool request ${s.index} of model ${model.id}`, "PooledRequest",
        s.life, s.request, model.inputs, model.outputs, s.evals)
      // A borrower holds the request alone, but fibers it shares the request with are serialised like a model's.
      const pooled: PooledRequest = { ...members, index: s.index, use: use(() => pooled) }
      yield* Queue.offer(idle, register(pooled, lock))
    }
    const pool: RequestPool = {
      size,
      // Waiting is interruptible; once a request is taken, its return is registered before anything can interrupt.
      acquire: Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          if (isClosed(life)) return closed("RequestPool.acquire", resource)
          return Effect.flatMap(restore(Queue.take(idle)), (r) =>
            r === CLOSED
              ? closed("RequestPool.acquire", resource)
              : Effect.as(Effect.addFinalizer(() => isClosed(life) ? Effect.void : Queue.offer(idle, r)), r))
        })
      ),
      available: Effect.suspend(() => isClosed(life) ? Effect.succeed(0) : Effect.map(Queue.size(idle), (n) => Math.max(0, n)))
    }
    return pool
  }) satisfies Effect.Effect<RequestPool, unknown, Scope.Scope>
