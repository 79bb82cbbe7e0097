/** Real-time tasks through the services: evaluation, metrics, the task's and the model's lifetimes, foreign values. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import * as Metrics from "../../src/services/Metrics.js"
import type { Model } from "../../src/services/Model.js"
import { makeFake } from "./fakeBackend.js"
import { double, pattern } from "./programs.js"

describe("real-time tasks", () => {
  it.scoped("evaluate models on the simulator, counted as evaluations, until the task's scope closes", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double(8, 64))
      const evals = Metrics.evalsTotal.pipe(Metric.tagged("model", model.id))
      const before = (yield* Metric.value(evals)).count
      const live0 = yield* ane.liveHandles
      const scope = yield* Scope.make()
      const task = yield* ane.beginRealTimeTask.pipe(Scope.extend(scope))
      expect(yield* ane.liveHandles).toBe(live0 + 1)
      yield* model.writeInputF32(0, pattern(8 * 64))
      yield* task.eval(model)
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(pattern(8 * 64), (v) => 2 * v))
      expect((yield* Metric.value(evals)).count - before).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* ane.liveHandles).toBe(live0)
      expect(yield* Effect.flip(task.eval(model))).toMatchObject({ _tag: "ClosedError", op: "RealTimeTask.eval" })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  it.scoped("refuse a closed model and anything that is not a Model", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const task = yield* ane.beginRealTimeTask
      const scope = yield* Scope.make()
      const model = yield* ane.compile(double(8, 64)).pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(task.eval(model))).toMatchObject({ _tag: "ClosedError", op: "RealTimeTask.eval" })
      expect(yield* Effect.flip(task.eval({ id: "not a model" } as unknown as Model))).toMatchObject({
        _tag: "InvalidArgumentError", argument: "model"
      })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  it.scoped("a task of one client refuses a model of another", () =>
    Effect.gen(function*() {
      const other = yield* Effect.flatMap(Ane.Ane, (a) => a.compile(double(8, 64))).pipe(
        Effect.provide(Ane.layerSimulator({ latency: "off" }))
      )
      const task = yield* Effect.flatMap(Ane.Ane, (a) => a.beginRealTimeTask).pipe(
        Effect.provide(Ane.layerSimulator({ latency: "off" }))
      )
      expect(yield* Effect.flip(task.eval(other))).toMatchObject({ _tag: "EvalError", op: "RealTimeTask.eval" })
    }))

  it.scoped("go through the backend's real-time path, not its plain eval", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(CompileOptions.mil({ text: "program(1.3) { func main() {} }" }))
      const task = yield* ane.beginRealTimeTask
      yield* task.eval(model)
      yield* task.eval(model)
      expect(fake.stats.realTimeEvals).toBe(2)
      expect(fake.stats.evals).toBe(2)
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })
})
