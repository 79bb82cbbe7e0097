/**
 * Asynchronous evaluation on the hardware backend's own threads, over the fake runtime (test/native-fake) with a
 * model that takes 5 ms inside the engine per evaluation: throughput at pipeline depth 8 over depth 1, and the most
 * evaluations the engine saw at once. libuv's pool (koffi's `.async`) would cap both at 4.
 */
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as NativeBackend from "../src/native/NativeBackend.js"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import { Backend, type BackendRequest } from "../src/services/Backend.js"
import { loadFake } from "../test/native-fake/controls.js"
import { round } from "./harness.js"

const EVAL_US = 5_000
const DEPTH = 8
/** Evaluations per run at each depth. */
const N = 160

const text = `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
        tensor<fp16, [1, 4, 1, 32]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
`

export default async function nativeAsync(): Promise<Record<string, number>> {
  const fake = loadFake()
  const tensor = (name: string) => ({ Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name })
  fake.setEval(undefined)
  fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
  const scope = Effect.runSync(Scope.make())
  // The backend lives in `scope` (its eval threads close with it), not only for the setup effect.
  const context = await Effect.runPromise(
    Layer.buildWithScope(NativeBackend.layerWith({ paths: fake.paths, loadRetryMs: 1, evalThreads: DEPTH }), scope)
  )
  const requests = await Effect.runPromise(
    Effect.gen(function*() {
      const backend = yield* Backend
      const model = yield* backend.compile(CompileOptions.mil({ text }))
      const list: Array<BackendRequest> = [model.request]
      for (let i = 1; i < DEPTH; i++) list.push(yield* model.mapRequest)
      return list
    }).pipe(Effect.provide(context), Scope.extend(scope))
  )
  fake.setEval(undefined)
  fake.setEvalDelay(EVAL_US)
  // Each of `depth` fibers evaluates its own request N / depth times, one after another.
  const run = (depth: number) =>
    Effect.gen(function*() {
      const t0 = process.hrtime.bigint()
      const fibers = yield* Effect.forEach(requests.slice(0, depth), (r) =>
        Effect.fork(Effect.repeatN(r.evalAsync, N / depth - 1)))
      yield* Fiber.joinAll(fibers)
      return Number(process.hrtime.bigint() - t0) / 1e9
    })
  // Warm-up: starts every thread.
  await Effect.runPromise(run(DEPTH))
  const depth1 = await Effect.runPromise(run(1))
  fake.reset()
  const depth8 = await Effect.runPromise(run(DEPTH))
  const inFlightMax = fake.inFlightMax()
  fake.setEvalDelay(0)
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fake.setAttributes(undefined)
  return {
    eval_ms: EVAL_US / 1000,
    evals_per_run: N,
    evals_per_s_depth1: round(N / depth1, 1),
    evals_per_s_depth8: round(N / depth8, 1),
    speedup_depth8: round(depth1 / depth8, 2),
    in_flight_max: inFlightMax
  }
}
