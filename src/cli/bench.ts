/**
 * `ane bench <file.mil | dir.mlmodelc>`: compiles a program through the Ane service and times its evaluations —
 * synchronous, asynchronous, or pipelined through RequestPool.evalStream — with percentiles and throughput.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, type Option, Stream } from "effect"
import { analyze } from "../mil/analyze.js"
import { inspect } from "../mil/inspect.js"
import { InvalidArgumentError, isAneError } from "../schema/errors.js"
import * as Ane from "../services/Ane.js"
import * as RequestPool from "../services/RequestPool.js"
import type { SimulatorOptions } from "../sim/SimBackend.js"
import { compileRequest, seededRandom } from "./run.js"
import { withPrefix } from "./source.js"

/** Parsed options of `ane bench`. */
export interface BenchOptions {
  readonly program: string
  readonly weights: Option.Option<string>
  readonly iterations: number
  readonly warmup: number
  readonly mode: "sync" | "async" | "stream"
  readonly depth: number
  readonly backend: "auto" | "hardware" | "simulator"
  readonly numerics: "ane" | "exact"
  readonly rules: "error" | "warn" | "off"
  readonly latency: "model" | "off"
  readonly json: boolean
}

const invalid = (argument: string, expected: string, actual: string) =>
  new InvalidArgumentError({ op: "ane bench", argument, expected, actual })

/** The p-th percentile (0..1) of sorted samples, nearest rank. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
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
    if (!Number.isInteger(o.iterations) || o.iterations < 1) {
      return yield* Effect.fail(invalid("--iterations", "a positive integer", String(o.iterations)))
    }
    if (!Number.isInteger(o.warmup) || o.warmup < 0) {
      return yield* Effect.fail(invalid("--warmup", "a non-negative integer", String(o.warmup)))
    }
    if (!Number.isInteger(o.depth) || o.depth < 1 || o.depth > RequestPool.MAX_DEPTH) {
      return yield* Effect.fail(invalid("--depth", `an integer in 1..${RequestPool.MAX_DEPTH}`, String(o.depth)))
    }
    const req = yield* compileRequest(o.program, o.weights)
    return yield* Effect.scoped(Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const info = yield* ane.info
      const { model, stats } = yield* ane.compileWithStats(req.options)
      const rnd = seededRandom(1)
      const inputs = model.inputs.map((l) => Float32Array.from({ length: l.logicalElements }, rnd))
      for (let i = 0; i < inputs.length; i++) yield* model.writeInputF32(i, inputs[i]!)
      const evalOnce = o.mode === "sync" ? model.eval : model.evalAsync
      const samples: Array<number> = []
      let totalMs: number
      if (o.mode === "stream") {
        const run = (n: number) =>
          Stream.runDrain(
            Stream.fromIterable(Array.from({ length: n }, () => inputs)).pipe(RequestPool.evalStream(model, { depth: o.depth }))
          )
        if (o.warmup > 0) yield* run(o.warmup)
        const t0 = performance.now()
        yield* run(o.iterations)
        totalMs = performance.now() - t0
        samples.push(totalMs / o.iterations)
      } else {
        for (let i = 0; i < o.warmup; i++) yield* evalOnce
        const t0 = performance.now()
        for (let i = 0; i < o.iterations; i++) {
          const s = performance.now()
          yield* evalOnce
          samples.push(performance.now() - s)
        }
        totalMs = performance.now() - t0
      }
      samples.sort((a, b) => a - b)
      // One more evaluation with the engine's statistics: its own execution time, next to the wall-clock figures.
      const engine = yield* model.evalWithStats
      const perEvalUs = (totalMs * 1000) / o.iterations
      const flops = flopsOf(req.text)
      const result = {
        program: o.program,
        backend: info.backend,
        model: model.id,
        mode: o.mode,
        ...(o.mode === "stream" ? { depth: o.depth } : {}),
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
        ...(engine.source === "unavailable" ? {} : { engine_us: round(engine.hwExecutionNs / 1000, 3), engine_time: engine.source }),
        flops_per_eval: flops,
        gflops: flops > 0 ? round(flops / perEvalUs / 1e3, 3) : null
      }
      if (o.json) {
        yield* Console.log(JSON.stringify(result))
      } else {
        yield* Console.log(`${result.model} on the ${result.backend} backend, ${o.mode}` +
          (o.mode === "stream" ? ` depth ${o.depth}` : "") + `, ${o.iterations} evals after ${o.warmup} warm-up`)
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
  iterations: Options.integer("iterations").pipe(Options.withDefault(200), Options.withDescription("timed evaluations")),
  warmup: Options.integer("warmup").pipe(Options.withDefault(10), Options.withDescription("untimed evaluations first")),
  mode: Options.choice("mode", ["sync", "async", "stream"] as const).pipe(
    Options.withDefault("sync" as const),
    Options.withDescription("eval, evalAsync, or RequestPool.evalStream with --depth requests in flight")
  ),
  depth: Options.integer("depth").pipe(Options.withDefault(4), Options.withDescription("requests in flight (stream mode)")),
  backend: Options.choice("backend", ["auto", "hardware", "simulator"] as const).pipe(Options.withDefault("auto" as const)),
  numerics: Options.choice("numerics", ["ane", "exact"] as const).pipe(Options.withDefault("ane" as const)),
  rules: Options.choice("rules", ["error", "warn", "off"] as const).pipe(Options.withDefault("error" as const)),
  latency: Options.choice("latency", ["model", "off"] as const).pipe(
    Options.withDefault("model" as const),
    Options.withDescription("simulator only: apply the chip's latency model to async and stream evals, or not")
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print one JSON object"))
}

/** The `bench` subcommand. Typed failures print their message and exit with status 1 (no stack trace). */
export const command = Command.make("bench", args, (o) =>
  benchCommand(o).pipe(
    Effect.asVoid,
    Effect.catchAll((e) =>
      Effect.zipRight(
        Console.error(withPrefix("ane bench", isAneError(e) ? e.message : String(e))),
        Effect.sync(() => {
          process.exitCode = 1
        })
      )
    )
  )
).pipe(Command.withDescription("Time the evaluations of a program (sync, async or pipelined) on the engine or the simulator"))

