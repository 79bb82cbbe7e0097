/**
 * Real-time tasks of the shared `_ANEClient` (spec/native-protocol.md §14.5, errata D6): `beginRealTimeTask` when
 * the scope opens, `endRealTimeTask` when it closes, and real-time evaluation of this backend's models meanwhile.
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError } from "../schema/errors.js"
import type { BackendModel, BackendRealTimeTask } from "../services/Backend.js"
import { thrownError } from "./errors.js"
import { NO_CLIENT_HINT } from "./client.js"
import { evalRealTime, type NativeEnv, REAL_TIME_EVAL } from "./model.js"
import { type Id, nil } from "./objc.js"

const BEGIN = "beginRealTimeTask"
const END = "endRealTimeTask"
const OP = "beginRealTimeTask"
const TASK = "real-time task"

let nextTask = 1

/**
 * Begins a real-time task on the client `client()` finds (nil: none could be had), retained while the task is
 * active; the task ends (and the retain is given back) when the scope closes. Every failure is an EvalError with op `beginRealTimeTask`; a NO from `endRealTimeTask` is only logged.
 */
export const beginRealTimeTask = (env: NativeEnv, client: () => Id) =>
  Effect.acquireRelease(
    Effect.suspend((): Effect.Effect<{ readonly client: Id; readonly name: string; active: boolean }, EvalError> => {
      const rt = env.rt
      let found: Id = nil
      let answer: "begun" | "refused" | { readonly missing: string }
      try {
        answer = rt.autoreleasePool(() => {
          found = client()
          if (found === nil) return { missing: "" }
          // An unanswered selector would raise an Objective-C exception and end the process: ask first.
          const missing = [BEGIN, END, REAL_TIME_EVAL].find((s) => !rt.responds(found, s))
          if (missing !== undefined) return { missing }
          return rt.bool(found, BEGIN) ? "begun" : "refused"
        })
      } catch (cause) {
        return Effect.fail(thrownError("eval", OP, TASK, "beginning a real-time task", cause))
      }
      if (typeof answer === "object") {
        return Effect.fail(new EvalError({
          op: OP,
          model: TASK,
          hint: answer.missing === ""
            ? NO_CLIENT_HINT
            : `this _ANEClient does not answer ${answer.missing}, so real-time tasks are not available`
        }))
      }
      if (answer === "refused") {
        return Effect.fail(new EvalError({ op: OP, model: TASK, hint: `-[_ANEClient ${BEGIN}] returned NO` }))
      }
      env.live++
      // Held for the task's life: an owned client may be released by the backend's scope before this one closes.
      rt.autoreleasePool(() => rt.retain(found))
      return Effect.succeed({ client: found, name: `${TASK} ${nextTask++}`, active: true })
    }),
    (task) =>
      Effect.suspend(() => {
        // Inactive first: nothing is sent to the client for this task after this point, whatever end answers.
        task.active = false
        env.live--
        const ended = Effect.try(() =>
          env.rt.autoreleasePool(() => {
            try {
              return env.rt.bool(task.client, END)
            } finally {
              env.rt.release(task.client)
            }
          })
        )
        return ended.pipe(
          Effect.flatMap((ok) => (ok ? Effect.void : Effect.logWarning(`-[_ANEClient ${END}] returned NO for ${task.name}`))),
          Effect.catchAll((error) => Effect.logWarning(`-[_ANEClient ${END}] failed for ${task.name}: ${String(error.error)}`))
        )
      })
  ).pipe(
    Effect.map((task): BackendRealTimeTask => ({
      eval: (model: BackendModel) =>
        Effect.suspend(() =>
          task.active
            ? evalRealTime(env, model, task.client, "RealTimeTask.eval")
            : Effect.fail(new ClosedError({ op: "RealTimeTask.eval", resource: task.name }))
        )
    }))
  )
