/**
 * `ane bench <file.mil | dir.mlmodelc>`: compiles a program through the Ane service and times its evaluations —
 * synchronous, asynchronous, or pipelined through RequestPool.evalStream — with percentiles and throughput.
 */
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { analyze } from "../mil/analyze.js"
import { inspect } from "../mil/inspect.js"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import * as Ane from "../services/Ane.js"
import * as RequestPool from "../services/RequestPool.js"
import type { SimulatorOptions } from "../sim/SimBackend.js"
import { reported } from "./failure.js"
import * as CommonOptions from "./options.js"
import { counter, whileRunning } from "./progress.js"
import { seededRandom } from "./random.js"
import { loadProgram } from "./run.js"
import { engineTime } from "./timing.js"

/** Parsed options of `ane bench`. */
export interface BenchOptions {
  readonly program: string
  readonly weights: Option.Option<string>
  readonly iterations: number
  readonly warmup: number
  readonly mode: "sync" | "async" | "stream"
  /** Requests in flight in stream mode (default {@link DEFAULT_DEPTH}); refused with the other modes. */
  readonly depth?: number | undefined
  readonly backend: "auto" | "hardware" | "simulator"
  readonly numerics: "ane" | "exact"
  readonly rules: "error" | "warn" | "off"
  readonly latency: "model" | "off"
  readonly json: boolean
}

/** Requests in flight of stream mode when `--depth` is not given. */
export const DEFAULT_DEPTH = 4

const invalid = (argument: string, expected: string, actual: string) =>
  new InvalidArgumentError({ op: "ane bench", argument, expected, actual })

/** Most timed or warm-up evaluations one bench runs (its samples are kept in memory). */
export const MAX_ITERATIONS = 10_000_000

/** The event loop gets a turn this often (ms) during a loop of evaluations. */
const BREATH_MS = 50

/** Stream mode feeds inputs in chunks of this many, and lets the event loop run between chunks. */
const STREAM_CHUNK = 64

/** Resumes after one turn of the event loop (timers, signals and I/O callbacks run). */
const macrotask = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The p-th percentile (0..1) of sorted samples, nearest rank. */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

const layerFor = (o: BenchOptions) => {
  const sim: SimulatorOptions = { numerics: o.numerics, rules: o.rules, ...(o.latency === "off" ? { latency: "off" } : {}) }
  return o.backend === "hardware" ? Ane.layer : o.backend === "simulator" ? Ane.layerSimulator(sim) : Ane.layerAuto(sim)
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits))

/** Estimated FLOPs of one evaluation of the program's main function (0 when unknown). */
const flopsOf = (text: string): number => {
  const a = analyze(text, { rules: "off" })
  return a.program ? inspect(a.program, a.check ?? undefined).flops.total : 0
}

/** The whole command as an Effect (exported for tests). */
export const benchCommand = (o: BenchOptions) =>
  Effect.gen(function*() {
    if (!Number.isInteger(o.iterations) || o.iterations < 1 || o.iterations > MAX_ITERATIONS) {
      return yield* Effect.fail(invalid("--iterations", `an integer in 1..${MAX_ITERATIONS}`, String(o.iterations)))
    }
    if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > MAX_ITERATIONS) {
      return yield* Effect.fail(invalid("--warmup", `an integer in 0..${MAX_ITERATIONS}`, String(o.warmup)))
    }
    if (o.depth !== undefined && o.mode !== "stream") {
      return yield* Effect.fail(invalid("--depth", "--mode stream (only pipelined evaluation has requests in flight)",
        `--mode ${o.mode}`))
    }
    const depth = o.depth ?? DEFAULT_DEPTH
    if (!Number.isInteger(depth) || depth < 1 || depth > RequestPool.MAX_DEPTH) {
      return yield* Effect.fail(invalid("--depth", `an integer in 1..${RequestPool.MAX_DEPTH}`, String(depth)))
    }
    const req = yield* loadProgram("ane bench", o.program, o.weights)
    return yield* Effect.scoped(Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const info = yield* ane.info
      const { model, stats } = yield* ane.compileWithStats(req.options)
      if (!o.json && o.rules === "warn") {
        // The findings --rules warn let through, as `ane run` prints them (the simulator models an M4).
        const file = req.options._tag === "mil" ? o.program : undefined
        for (const d of analyze(req.text, { ...(file !== undefined ? { file } : {}), chip: "m4", rules: "warn" }).diagnostics) {
          if (d.severity === "warning" && d.kind === "ane") yield* Console.error(formatDiagnostic(d))
        }
      }
      const rnd = seededRandom(1)
      const inputs = model.inputs.map((l) => Float32Array.from({ length: l.logicalElements }, rnd))
      for (let i = 0; i < inputs.length; i++) yield* model.writeInputF32(i, inputs[i]!)
      const evalOnce = o.mode === "sync" ? model.eval : model.evalAsync
      const samples = new Float64Array(o.mode === "stream" ? 1 : o.iterations)
      let totalMs: number
      let breath = performance.now()
      let paused = 0
      // Effect yields to microtasks only, for millions of ops: a loop of synchronous evals would keep signals
      // (SIGINT, SIGTERM) and timers waiting, so it gives the event loop a turn every BREATH_MS, off the clock.
      const breathe = Effect.suspend(() => {
        const now = performance.now()
        if (now - breath < BREATH_MS) return Effect.void
        return Effect.map(macrotask, () => {
          breath = performance.now()
          paused += breath - now
        })
      })
      if (o.mode === "stream") {
        const run = (n: number) =>
          Stream.runDrain(Stream.repeatValue(inputs).pipe(
            Stream.take(n),
            Stream.rechunk(STREAM_CHUNK),
            Stream.mapChunksEffect((chunk) => Effect.as(breathe, chunk)),
            RequestPool.evalStream(model, { depth })
          ))
        if (o.warmup > 0) yield* run(o.warmup)
        paused = 0
        const t0 = performance.now()
        yield* run(o.iterations).pipe(whileRunning(`ane bench: ${o.iterations} evals, depth ${depth}`, !o.json))
        totalMs = performance.now() - t0 - paused
        samples[0] = totalMs / o.iterations
      } else {
        for (let i = 0; i < o.warmup; i++) {
          yield* evalOnce
          yield* breathe
        }
        const bar = yield* counter("ane bench", o.iterations, !o.json)
        paused = 0
        const t0 = performance.now()
        for (let i = 0; i < o.iterations; i++) {
          const s = performance.now()
          yield* evalOnce
          samples[i] = performance.now() - s
          bar.tick(i + 1)
          yield* breathe
        }
        totalMs = performance.now() - t0 - paused
        bar.clear()
      }
      samples.sort()
      // One more evaluation with the engine's statistics: its own execution time, next to the wall-clock figures.
      const engine = engineTime(yield* model.evalWithStats, info.architecture)
      const perEvalUs = (totalMs * 1000) / o.iterations
      const flops = flopsOf(req.text)
      const result = {
        program: o.program,
        backend: info.backend,
        model: model.id,
        mode: o.mode,
        ...(o.mode === "stream" ? { depth } : {}),
        iterations: o.iterations,
        compile_ms: round(stats.totalNs / 1e6, 3),
        eval_us_mean: round(perEvalUs),
        ...(o.mode === "stream" ? {} : {
          eval_us_p10: round(percentile(samples, 0.1) * 1000),
          eval_us_p50: round(percentile(samples, 0.5) * 1000),
          eval_us_p90: round(percentile(samples, 0.9) * 1000),
          eval_us_p99: round(percentile(samples, 0.99) * 1000)
        }),
        evals_per_s: round(1e6 / perEvalUs, 1),
        // The engine's time for one call: measured on hardware, the latency model's (dispatch floor included) otherwise.
        ...(engine === undefined ? {} : { engine_us: round(engine.ns / 1000, 3), engine_time: engine.source }),
        flops_per_eval: flops,
        gflops: flops > 0 ? round(flops / perEvalUs / 1e3, 3) : null
      }
      if (o.json) {
        yield* Console.log(JSON.stringify({ ok: true, ...result }))
      } else {
        yield* Console.log(`${req.options._tag === "mil" ? o.program : result.model} on the ${result.backend} backend, ${o.mode}` +
          (o.mode === "stream" ? ` depth ${depth}` : "") + `, ${o.iterations} evals after ${o.warmup} warm-up`)
        for (const [k, v] of Object.entries(result)) {
          if (k !== "program" && k !== "model" && k !== "backend" && k !== "mode") yield* Console.log(`  ${k.padEnd(16)} ${v}`)
        }
      }
      return result
    }).pipe(Effect.provide(layerFor(o))))
  })

const args = {
  program: Args.text({ name: "program" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
  weights: Options.text("weights").pipe(
    Options.withDescription("weight file for the program's BLOBFILE references (default: found beside the .mil)"),
    Options.optional
  ),
  iterations: Options.integer("iterations").pipe(Options.withDefault(200), Options.withDescription("timed evaluations (default: 200)")),
  warmup: Options.integer("warmup").pipe(Options.withDefault(10), Options.withDescription("untimed evaluations first (default: 10)")),
  mode: Options.choice("mode", ["sync", "async", "stream"] as const).pipe(
    Options.withDefault("sync" as const),
    Options.withDescription("eval, evalAsync, or RequestPool.evalStream with --depth requests in flight (default: sync)")
  ),
  depth: Options.integer("depth").pipe(
    Options.withDescription(`requests in flight, with --mode stream only (default: ${DEFAULT_DEPTH})`),
    Options.optional
  ),
  backend: CommonOptions.backend,
  numerics: CommonOptions.numerics,
  rules: CommonOptions.rules,
  latency: Options.choice("latency", ["model", "off"] as const).pipe(
    Options.withDefault("model" as const),
    Options.withDescription("simulator only: apply the chip's latency model to async and stream evals, or not (default: model)")
  ),
  json: CommonOptions.json
}

/** The `bench` subcommand: typed failures and defects print one message and set the exit status of the table. */
export const command = Command.make("bench", args, (o) =>
  benchCommand({ ...o, depth: Option.getOrUndefined(o.depth) }).pipe(
    Effect.asVoid,
    reported("bench", o.json, { file: o.program, rules: o.rules })
  )
).pipe(Command.withDescription("Time the evaluations of a program (sync, async or pipelined) on the engine or the simulator"))
