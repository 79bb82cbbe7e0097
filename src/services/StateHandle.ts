/**
 * Position bookkeeping for a model's KV state (programs using read_state / coreml_update_state): the engine owns
 * the buffer, this tracks how much of it is used. Out-of-range moves fail; nothing is clamped silently.
 */
import * as Effect from "effect/Effect"
import type { ClosedError, InvalidArgumentError } from "../schema/errors.js"
import { closed, describe, invalid, isClosed } from "./internal/errors.js"
import { ModelTypeId } from "./internal/model.js"
import type { Model } from "./Model.js"

/** The sequence position of one model's state; valid while the model is open. */
export interface StateHandle {
  readonly model: Model
  /** Capacity in positions. */
  readonly maxSeq: number
  readonly position: Effect.Effect<number, ClosedError>
  /** `maxSeq − position`. */
  readonly remaining: Effect.Effect<number, ClosedError>
  /** Moves forward by `n ≥ 0` positions and returns the new position; fails (unchanged) past `maxSeq`. */
  readonly advance: (n: number) => Effect.Effect<number, InvalidArgumentError | ClosedError>
  /** Back to position 0 (the engine clears its state on the next evaluation cycle). */
  readonly reset: Effect.Effect<void, ClosedError>
}

/** A handle at position 0 for a state of `maxSeq` positions (a positive integer). */
export const make = (model: Model, maxSeq: number): Effect.Effect<StateHandle, InvalidArgumentError | ClosedError> =>
  Effect.suspend((): Effect.Effect<StateHandle, InvalidArgumentError | ClosedError> => {
    const life = model[ModelTypeId].life
    const resource = `model ${model.id}`
    if (isClosed(life)) return closed("StateHandle.make", resource)
    if (typeof maxSeq !== "number" || !Number.isSafeInteger(maxSeq) || maxSeq < 1) {
      return Effect.fail(invalid("StateHandle.make", "maxSeq", "a positive integer", describe(maxSeq)))
    }
    let position = 0
    const read = <A>(op: string, f: () => A) =>
      Effect.suspend(() => isClosed(life) ? closed(op, resource) : Effect.succeed(f()))
    const handle: StateHandle = {
      model,
      maxSeq,
      position: read("StateHandle.position", () => position),
      remaining: read("StateHandle.remaining", () => maxSeq - position),
      advance: (n) =>
        Effect.suspend((): Effect.Effect<number, InvalidArgumentError | ClosedError> => {
          if (isClosed(life)) return closed("StateHandle.advance", resource)
          if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
            return Effect.fail(invalid("StateHandle.advance", "n", "a non-negative integer", describe(n)))
          }
          if (position + n > maxSeq) {
            return Effect.fail(invalid("StateHandle.advance", "n", `at most ${maxSeq - position} (position ${position} of ${maxSeq})`,
              String(n), "reset the state or use a larger maxSeq"))
          }
          position += n
          return Effect.succeed(position)
        }),
      reset: read("StateHandle.reset", () => {
        position = 0
      })
    }
    return Effect.succeed(handle)
  })
