/** Evaluation statistics, model diagnostics and client info through the services, the simulator and the stub. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { EvalStats } from "../../src/schema/Telemetry.js"
import * as Ane from "../../src/services/Ane.js"
import { layerNoop } from "../../src/services/Backend.js"
import * as Metrics from "../../src/services/Metrics.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import * as SharedEvent from "../../src/services/SharedEvent.js"
import { chipProfiles, executionNs } from "../../src/sim/latency.js"
import { makeFake } from "./fakeBackend.js"
import { double, pattern } from "./programs.js"

const program = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })

describe("telemetry over a backend", () => {
  it.scoped("evalWithStats evaluates, returns the backend's stats and counts as an eval", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(program)
      const evals = Metrics.evalsTotal.pipe(Metric.tagged("model", model.id))
      const before = (yield* Metric.value(evals)).count
      yield* model.writeInputF32(0, pattern(30))
      const first = yield* model.evalWithStats
      const second = yield* model.evalWithStats
      expect([first.source, first.hwExecutionNs, second.hwExecutionNs]).toEqual(["hardware", 1001, 1002])
      expect(second.perfCounters.map((c) => [c.index, c.name, c.value])).toEqual([[0, "fake", 2n]])
      expect((yield* Metric.value(evals)).count - before).toBe(2)
      // The evaluation really ran: the fake copies inputs to outputs.
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(pattern(30)))
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })

  it.scoped("pooled requests report their own stats and fail after the pool closes", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(program)
      const scope = yield* Scope.make()
      const pool = yield* RequestPool.make(model, 2).pipe(Scope.extend(scope))
      const request = yield* pool.acquire.pipe(Scope.extend(scope))
      yield* request.writeInputF32(0, pattern(30, 3))
      const stats = yield* request.evalWithStats
      expect([stats.source, stats.hwExecutionNs]).toEqual(["hardware", 1001])
      expect(Array.from(yield* request.readOutputF32(0))).toEqual(Array.from(pattern(30, 3)))
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(request.evalWithStats)).toMatchObject({
        _tag: "ClosedError", op: "PooledRequest.evalWithStats"
      })
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })

  it.scopedLive("passes diagnostics and client info through, and fails both model calls after close", () => {
    const fake = makeFake({ asyncDelayMs: 30 })
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      expect(yield* ane.clientInfo).toMatchObject({ numAnes: 1, numCores: 16, architecture: "fake" })
      const scope = yield* Scope.make()
      const model = yield* ane.compile(program).pipe(Scope.extend(scope))
      const pending = yield* Effect.fork(model.evalAsync)
      yield* Effect.sleep(5)
      expect(yield* model.diagnostics).toMatchObject({ programClass: "FakeModel", asyncRequestsInFlight: 1 })
      yield* Fiber.join(pending)
      expect((yield* model.diagnostics).asyncRequestsInFlight).toBe(0)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(model.evalWithStats)).toMatchObject({ _tag: "ClosedError", op: "Model.evalWithStats" })
      expect(yield* Effect.flip(model.diagnostics)).toMatchObject({ _tag: "ClosedError", op: "Model.diagnostics" })
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })

  it.scoped("a failed evaluation is the same typed EvalError as eval's and returns no stats", () => {
    const fake = makeFake({ faults: [{ stage: "eval", nth: 1, code: 0x1d, domain: "test.domain" }] })
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(program)
      const error = yield* Effect.flip(model.evalWithStats)
      expect(error).toMatchObject({ _tag: "EvalError", code: 0x1d, domain: "test.domain" })
      expect((yield* model.evalWithStats).hwExecutionNs).toBe(1001)
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })

  it.scoped("the stub reports nothing it cannot know", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(program)
      expect(yield* model.evalWithStats).toBe(EvalStats.unavailable)
      expect(Object.values(yield* model.diagnostics).filter((v) => v !== undefined)).toEqual([])
      expect(Object.values(yield* ane.clientInfo).filter((v) => v !== undefined)).toEqual([])
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(layerNoop())))))
})

describe("telemetry on the simulator", () => {
  const channels = 64, width = 512
  // double() multiplies by two: one fp16 mul per element.
  const flops = channels * width

  it.scoped("reports the modelled execution time of the chip and computes the outputs", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(double(channels, width))
      const x = pattern(channels * width)
      yield* model.writeInputF32(0, x)
      const stats = yield* model.evalWithStats
      expect(stats.source).toBe("modelled")
      expect(stats.hwExecutionNs).toBe(executionNs("m3", {}, flops))
      expect(stats.hwExecutionNs).toBe(Math.round(flops / (chipProfiles.m3.tflops * 1000)))
      expect(stats.perfCounters).toEqual([])
      const y = yield* model.readOutputF32(0)
      expect(Array.from(y.subarray(0, 5))).toEqual(Array.from(x.subarray(0, 5), (v) => v * 2))
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off", chip: "m3" }))))

  it.scoped("uses a fixed latency when one is set", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(double(channels, width))
      expect((yield* model.evalWithStats).hwExecutionNs).toBe(250_000)
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: { fixedUs: 250 } }))))

  it.scopedLive("counts asynchronous evaluations in flight and reports the chip to clientInfo", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const info = yield* ane.info
      expect(yield* ane.clientInfo).toMatchObject({
        numAnes: info.numAnes, numCores: info.numCores, architecture: chipProfiles.m1.architecture
      })
      const model = yield* ane.compile(double(channels, width))
      // Three requests of the model: evaluations of one request are serialised, so each fiber takes its own.
      const requests = yield* RequestPool.make(model, 3)
      const pool = yield* Effect.forEach([0, 1, 2], () => Effect.fork(Effect.scoped(Effect.flatMap(requests.acquire, (r) => r.evalAsync))))
      // Poll rather than sleep a fixed time: on a loaded host the third fiber may start late.
      let inFlight = 0
      for (let i = 0; i < 5_000 && inFlight !== 3; i++) {
        inFlight = (yield* model.diagnostics).asyncRequestsInFlight ?? 0
        if (inFlight !== 3) yield* Effect.sleep(1)
      }
      expect(inFlight).toBe(3)
      expect(yield* model.diagnostics).toMatchObject({ programClass: "SimulatorModel" })
      yield* Fiber.joinAll(pool)
      expect((yield* model.diagnostics).asyncRequestsInFlight).toBe(0)
    }).pipe(Effect.provide(Ane.layerSimulator({ chip: "m1", latency: { fixedUs: 1_000_000 } }))))

  it.scoped("bundles stats and diagnostics, times signalled evaluations, and snapshots the client", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double(channels, width))
      const stats = yield* model.evalWithStats
      const t = yield* model.telemetry(stats)
      expect(t.stats).toBe(stats)
      expect(t.diagnostics.programClass).toBe("SimulatorModel")
      expect(t.timing.available).toBe(false)
      expect(String(t)).toBe(`EvalTelemetry{hw=${stats.hwExecutionNs}ns counters=0 Diagnostics{class=SimulatorModel inflight=0}}`)
      const event = yield* SharedEvent.make
      const timing = yield* model.evalWithSignalTiming(event, 5n)
      expect(yield* event.signaledValue).toBe(5n)
      expect(timing.totalNs).toBeGreaterThan(0)
      expect(timing.enqueueNs).toBe(timing.totalNs)
      const withSignal = yield* model.telemetryWithSignal(event, 6n)
      expect([withSignal.stats.available, withSignal.timing.available, withSignal.diagnostics.available]).toEqual([false, true, true])
      const snapshot = yield* ane.snapshot
      expect(snapshot.device).toEqual(yield* ane.info)
      expect(snapshot.client).toEqual(yield* ane.clientInfo)
      expect(snapshot.cache.available).toBe(false)
      expect(snapshot.reportMetrics()).toMatchObject({ "ane-cores": 16, "ane-client-cores": 16 })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
})
