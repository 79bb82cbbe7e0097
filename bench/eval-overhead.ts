/**
 * Host overhead of `model.eval` through the Ane service over a raw Backend request eval, on a zero-work stub:
 * N evals in one Effect loop each way, medians of repeated runs. Also what the request lock costs (the service eval
 * against the same metered eval without the lock), a `use` around one eval, and per-eval spans (wall clock).
 */
import { Effect, Exit, Layer, Scope } from "effect"
import * as Ane from "../src/services/Ane.js"
import { Backend, layerNoop } from "../src/services/Backend.js"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import { ModelTypeId } from "../src/services/internal/model.js"
import { medianNs, round } from "./harness.js"

const N = 20_000

export default async function evalOverhead(): Promise<Record<string, number>> {
  const scope = Effect.runSync(Scope.make())
  const layer = Layer.merge(layerNoop(), Ane.layerNoop())
  const traced = Ane.layerNoop({}, { traceEvals: true })
  const setup = Effect.gen(function*() {
    const backend = yield* Backend
    const ane = yield* Ane.Ane
    const options = CompileOptions.mil({ text: "program(1.3) {}" })
    const raw = yield* backend.compile(options)
    const model = yield* ane.compile(options)
    const tracedModel = yield* Effect.flatMap(Ane.Ane, (a) => a.compile(options)).pipe(Effect.provide(traced))
    return { raw, model, tracedModel }
  })
  const { model, raw, tracedModel } = Effect.runSync(Effect.provide(setup, layer).pipe(Scope.extend(scope)))
  const loop = (e: Effect.Effect<void, unknown>) =>
    Effect.gen(function*() {
      for (let i = 0; i < N; i++) yield* e
    })
  const inner = model[ModelTypeId]
  const unlockedEval = inner.instrument(inner.backend.request, `model ${model.id}`, "Model", inner.life).eval
  const rawLoop = loop(raw.request.eval)
  const serviceLoop = loop(model.eval)
  const unlockedLoop = loop(unlockedEval)
  const useLoop = loop(model.use((m) => m.eval))
  const tracedLoop = loop(tracedModel.eval)
  // Interleaved runs, so a busy neighbour slows both sides of each pair alike; medians of the pairs. The loops are
  // timed by this process's CPU time, not the wall clock: on a shared host, time spent descheduled is not ours.
  const timeNs = (e: Effect.Effect<void, unknown>) => {
    const t0 = process.cpuUsage()
    Effect.runSync(e)
    const t = process.cpuUsage(t0)
    return (t.user + t.system) * 1000 / N
  }
  for (let i = 0; i < 5; i++) { timeNs(rawLoop); timeNs(serviceLoop); timeNs(unlockedLoop); timeNs(useLoop); timeNs(tracedLoop) }
  const raws: Array<number> = [], services: Array<number> = [], diffs: Array<number> = []
  const lockDiffs: Array<number> = [], useDiffs: Array<number> = []
  for (let r = 0; r < 31; r++) {
    const a = timeNs(rawLoop)
    const b = timeNs(serviceLoop)
    const c = timeNs(unlockedLoop)
    const d = timeNs(useLoop)
    raws.push(a)
    services.push(b)
    diffs.push(b - a)
    lockDiffs.push(b - c)
    useDiffs.push(d - b)
  }
  const median = (xs: Array<number>) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  const rawNs = median(raws)
  const serviceNs = median(services)
  const tracedNs = medianNs(() => Effect.runSync(tracedLoop), 7) / N
  Effect.runSync(Scope.close(scope, Exit.void))
  return {
    raw_eval_us: round(rawNs / 1000),
    service_eval_us: round(serviceNs / 1000),
    overhead_us: round(median(diffs) / 1000),
    lock_us: round(median(lockDiffs) / 1000),
    use_overhead_us: round(median(useDiffs) / 1000),
    traced_overhead_us: round((tracedNs - rawNs) / 1000),
    evals_per_run: N
  }
}
