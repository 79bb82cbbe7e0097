/**
 * Pipelined I/O and chaining (spec/native-protocol.md §10.3–10.4) on the simulator. It runs one procedure per model
 * and has no firmware queue to drive, so it checks what the engine would (an open model, the procedure index, the
 * loopback indices) and accepts.
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError } from "../schema/errors.js"
import type { BackendModel } from "../services/Backend.js"

/** The pipelined-I/O and chaining members of a simulated model. @internal */
export const simPipelining = (
  id: string,
  state: { readonly closed: boolean },
  inputCount: number,
  outputCount: number
): Pick<BackendModel, "pipelinedIO" | "prepareChain"> => {
  const check = (op: string, procedure: number): Effect.Effect<void, EvalError | ClosedError> =>
    state.closed
      ? Effect.fail(new ClosedError({ op, resource: `model ${id}` }))
      : procedure !== 0
      ? Effect.fail(new EvalError({ op, model: id, hint: `procedure ${procedure}: the model has 1 procedure (index 0)` }))
      : Effect.void
  return {
    pipelinedIO: {
      notifyInputsReady: (procedure) => check("PipelinedIO.notifyInputsReady", procedure),
      enqueueOutputSet: (procedure) => check("PipelinedIO.enqueueOutputSet", procedure)
    },
    prepareChain: (links) =>
      Effect.forEach(links, (l, i) =>
        Effect.zipRight(
          check("PipelinedIO.prepareChain", l.procedureIndex),
          l.loopbackInputIndex < inputCount && l.loopbackOutputIndex < outputCount
            ? Effect.void
            : Effect.fail(new EvalError({
              op: "PipelinedIO.prepareChain", model: id,
              hint: `link ${i}: loopback input ${l.loopbackInputIndex} of ${inputCount} inputs, ` +
                `output ${l.loopbackOutputIndex} of ${outputCount} outputs`
            }))
        ), { discard: true })
  }
}
