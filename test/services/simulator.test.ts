/** The services on the CPU simulator: numerics, injected faults, resource safety under interruption, events, layers, metrics. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigError, ConfigProvider, Effect, Exit, Fiber, Layer, Logger, Metric, Option, Schema, Scope, Stream } from "effect"
import * as Ane from "../../src/services/Ane.js"
import * as Metrics from "../../src/services/Metrics.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import * as SharedEvent from "../../src/services/SharedEvent.js"
import type { SimulatorOptions } from "../../src/sim/SimBackend.js"
import { double, pattern } from "./programs.js"

const C = 64
const W = 512
const N = C * W

const liveAfter = <A, E>(program: Effect.Effect<A, E, Ane.Ane | Scope.Scope>, options: SimulatorOptions = {}) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const exit = yield* Effect.exit(Effect.scoped(program))
    return { exit, live: yield* ane.liveHandles }
  }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off", ...options })))

/** A program touching every resource kind: model, pool, stream, surface, events. */
const everything = (fail: "none" | "typed" | "defect") =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const model = yield* ane.compile(double())
    yield* model.writeInputF32(0, pattern(N))
    yield* model.eval
    const pool = yield* RequestPool.make(model, 3)
    const r = yield* pool.acquire
    yield* r.writeInputF32(0, pattern(N, 1))
    yield* r.evalAsync
    yield* ane.createSurface(1024)
    const ev = yield* SharedEvent.make
    yield* model.evalWithSignalEvent(ev, 1n)
    yield* Stream.range(0, 5).pipe(
      Stream.map((i) => [pattern(N, i)]),
      RequestPool.evalStream(model, { depth: 2 }),
      Stream.runDrain
    )
    if (fail === "typed") yield* model.writeInputF32(0, new Float32Array(1))
    if (fail === "defect") yield* Effect.die("boom")
  })

describe("Ane on the simulator", () => {
  it.scoped("doubles a tensor through fp16 surfaces", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      expect((yield* ane.info).backend).toBe("simulator")
      const model = yield* ane.compile(double())
      expect(model.inputs[0]!.channels).toBe(C)
      const x = pattern(N)
      yield* model.writeInputF32(0, x)
      yield* model.eval
      const y = yield* model.readOutputF32(0)
      expect(y[1]).toBe(2 * x[1]!)
      expect(y[N - 1]).toBe(2 * x[N - 1]!)
      yield* model.writeInputF32(0, pattern(N, 3))
      yield* model.evalAsync
      expect((yield* model.readOutputF32(0))[5]).toBe(2 * pattern(N, 3)[5]!)
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  for (const [stage, tag] of [["compile", "CompileError"], ["load", "ModelLoadError"], ["map", "MapError"]] as const) {
    it.effect(`surfaces an injected ${stage} failure as ${tag} with op, domain and code`, () =>
      Effect.gen(function*() {
        const { exit, live } = yield* liveAfter(
          Effect.flatMap(Ane.Ane, (ane) => ane.compile(double())),
          { faults: [{ stage, nth: 1, code: 42, domain: "test.domain" }] }
        )
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Exit.isFailure(exit) ? Option.getOrThrow(Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable(c._tag === "Fail" ? c.error : undefined)))) : undefined
        expect(error).toMatchObject({ _tag: tag, op: stage, domain: "test.domain", code: 42 })
        expect(live).toBe(0)
      }))
  }

  it.effect("surfaces an injected eval failure as EvalError, and the model keeps working", () =>
    Effect.gen(function*() {
      const { exit, live } = yield* liveAfter(
        Effect.gen(function*() {
          const model = yield* (yield* Ane.Ane).compile(double())
          const first = yield* Effect.flip(model.eval)
          yield* model.eval
          return first
        }),
        { faults: [{ stage: "eval", nth: 1, code: 29 }] }
      )
      expect(Exit.isSuccess(exit) && exit.value).toMatchObject({ _tag: "EvalError", op: "eval", code: 29 })
      expect(live).toBe(0)
    }))

  it.effect("a map failure while building a pool releases what the pool had mapped", () =>
    Effect.gen(function*() {
      const { exit, live } = yield* liveAfter(
        Effect.gen(function*() {
          const model = yield* (yield* Ane.Ane).compile(double())
          return yield* Effect.flip(RequestPool.make(model, 4))
        }),
        { faults: [{ stage: "map", nth: 3, code: 7 }] }
      )
      expect(Exit.isSuccess(exit) && exit.value).toMatchObject({ _tag: "MapError", code: 7 })
      expect(live).toBe(0)
    }))

  for (const fail of ["none", "typed", "defect"] as const) {
    it.effect(`releases every handle after a program ending with ${fail === "none" ? "success" : fail === "typed" ? "a typed failure" : "a defect"}`, () =>
      Effect.gen(function*() {
        const { exit, live } = yield* liveAfter(everything(fail))
        expect(Exit.isSuccess(exit)).toBe(fail === "none")
        expect(live).toBe(0)
      }))
  }

  it.live.prop(
    "releases every handle when interrupted at any point",
    // The program finishes after ~60 scheduler yields here, so 0..70 covers every stage from compile to stream end.
    [Schema.Int.pipe(Schema.between(0, 70))],
    ([steps]) =>
      Effect.gen(function*() {
        const ane = yield* Ane.Ane
        const fiber = yield* Effect.fork(Effect.scoped(everything("none")))
        for (let i = 0; i < steps; i++) yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        expect(yield* ane.liveHandles).toBe(0)
      }).pipe(Effect.provide(Ane.layerSimulator({ latency: { fixedUs: 20 } }))),
    { fastCheck: { numRuns: 40 } }
  )
})

describe("shared events on the simulator", () => {
  it.scoped("signals after, waits before, and both", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double())
      const a = yield* SharedEvent.make
      const b = yield* ane.createSharedEvent
      yield* model.evalWithSignalEvent(a, 5n)
      expect(yield* a.signaledValue).toBe(5n)
      yield* b.signal(2n)
      yield* model.evalWithWaitEvent(b, 2n, { disableIoFencesUseSharedEvents: true })
      yield* model.evalBidirectional(b, 2n, a, 6n)
      expect(yield* a.signaledValue).toBe(6n)
      expect(yield* a.wait(6n, "10 millis")).toBe(true)
      expect(yield* a.wait(7n, "5 millis")).toBe(false)
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  it.scoped("rejects bad values and closed or foreign events", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double())
      const ev = yield* SharedEvent.make
      expect(yield* Effect.flip(ev.signal(-1n))).toMatchObject({ _tag: "InvalidArgumentError", argument: "value" })
      expect(yield* Effect.flip(model.evalWithSignalEvent(ev, 1n << 64n))).toMatchObject({ argument: "signal value" })
      expect(yield* Effect.flip(ev.wait(1n, Infinity))).toMatchObject({ argument: "timeout" })
      const foreign = { port: 1 } as unknown as SharedEvent.SharedEvent
      expect(yield* Effect.flip(model.evalWithWaitEvent(foreign, 1n))).toMatchObject({ argument: "wait event" })
      const scope = yield* Scope.make()
      const gone = yield* Scope.extend(SharedEvent.make, scope)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(gone.signal(1n))).toMatchObject({ _tag: "ClosedError", op: "SharedEvent.signal" })
      expect(yield* Effect.flip(model.evalWithSignalEvent(gone, 1n))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
})

describe("layers", () => {
  it.effect("layerAuto falls back to the simulator on this machine and says so", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => {
        logs.push(Array.isArray(message) ? message.join(" ") : String(message))
      }))
      const info = yield* Effect.flatMap(Ane.Ane, (a) => a.info).pipe(
        Effect.provide(Ane.layerAuto({ latency: "off" }).pipe(Layer.provide(logger)))
      )
      expect(info.backend).toBe(process.platform === "darwin" ? info.backend : "simulator")
      expect(logs.some((l) => l.includes(`using the ${info.backend} backend`))).toBe(true)
      if (process.platform !== "darwin") expect(logs.some((l) => l.includes("no ANE hardware"))).toBe(true)
    }))

  it.effect("layer (hardware) fails with NoAneError naming the platform off macOS", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.flatMap(Ane.Ane, (a) => a.info).pipe(Effect.provide(Ane.layer)))
      expect(error._tag).toBe("NoAneError")
      expect(error.reason).toContain(process.platform)
    }).pipe(Effect.when(() => process.platform !== "darwin")))

  const withEnv = (env: Record<string, string>) =>
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.scoped("layerConfig builds the simulator with the configured budget", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      expect((yield* ane.info).backend).toBe("simulator")
      expect(ane.compileLimit).toBe(1)
      yield* ane.compile(double())
      expect((yield* Effect.flip(ane.compile(double())))._tag).toBe("CompileBudgetExhaustedError")
    }).pipe(
      Effect.provide(Ane.layerConfig()),
      withEnv({ ANE_BACKEND: "simulator", ANE_COMPILE_BUDGET: "1", ANE_LATENCY: "off", ANE_NUMERICS: "exact" })
    ))

  it.effect("layerConfig rejects an unknown backend with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.flatMap(Ane.Ane, (a) => a.info).pipe(Effect.provide(Ane.layerConfig())))
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(String(error)).toContain("ANE_BACKEND")
    }).pipe(withEnv({ ANE_BACKEND: "gpu" })))

  it.effect("layerConfig rejects a malformed latency", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.flatMap(Ane.Ane, (a) => a.info).pipe(Effect.provide(Ane.layerConfig())))
      expect(String(error)).toContain("ANE_LATENCY")
    }).pipe(withEnv({ ANE_BACKEND: "simulator", ANE_LATENCY: "fast" })))
})

describe("metrics", () => {
  it.scoped("counts compiles and evals per model and returns in-flight to zero", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double(64, 768))
      const tagged = <T, I, O>(m: Metric.Metric<T, I, O>) => m.pipe(Metric.tagged("model", model.id))
      const evals0 = (yield* Metric.value(tagged(Metrics.evalsTotal))).count
      const compiles = (yield* Metric.value(tagged(Metrics.compilesTotal))).count
      expect(compiles).toBeGreaterThanOrEqual(1)
      for (let i = 0; i < 3; i++) yield* model.eval
      yield* model.evalAsync
      // Stream.range is inclusive: 4 elements.
      yield* Stream.range(1, 4).pipe(
        Stream.map(() => [new Float32Array(64 * 768)]),
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runDrain
      )
      expect((yield* Metric.value(tagged(Metrics.evalsTotal))).count - evals0).toBe(8)
      expect((yield* Metric.value(tagged(Metrics.evalDuration))).count).toBeGreaterThanOrEqual(8)
      expect((yield* Metric.value(tagged(Metrics.inflight))).value).toBe(0)
      // Failed evals are not counted as completed.
      yield* Effect.flip(model.writeInputF32(0, new Float32Array(2)))
      expect((yield* Metric.value(tagged(Metrics.evalsTotal))).count - evals0).toBe(8)
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
})

describe("compiling into a scope that is already closed", () => {
  it.effect("fails with a typed MapError on the simulator and leaks nothing", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(ane.compile(double(4, 32)).pipe(Scope.extend(scope)))
      expect(error).toMatchObject({ _tag: "MapError", op: "map" })
      expect(error.message).toContain("already closed")
      expect(yield* ane.liveHandles).toBe(0)
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
})
