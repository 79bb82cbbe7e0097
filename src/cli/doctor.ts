/**
 * `ane doctor`: the command a user runs once on a new machine and pastes into a bug report. It probes the engine,
 * compiles a tiny program through both compile paths, compares the reported layouts and the outputs of sync, async
 * and streamed evaluation with the simulator's, round-trips a shared event, and checks that every handle is released.
 * Where there is no engine it says so and runs the same steps on the simulator.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { release, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Command, Options } from "./args.js"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Generators } from "../mil/generators/index.js"
import type { Generated } from "../mil/generators/index.js"
import { CompileOptions } from "../schema/CompileOptions.js"
import type { CompileStats } from "../schema/CompileStats.js"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { isAneError, type NoAneError } from "../schema/errors.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import * as Ane from "../services/Ane.js"
import type { Model } from "../services/Model.js"
import * as RequestPool from "../services/RequestPool.js"
import { CommandExit, ExitCode, reported } from "./failure.js"

/** The steps, in the order they run. */
export const STEPS = [
  "probe", "compile-mil", "compile-package", "layouts", "eval-sync", "eval-async", "eval-stream", "shared-event", "cleanup"
] as const

/** One step's name. */
export type StepName = typeof STEPS[number]

/** Why a step failed: the typed error's tag and message, and the native error's domain, code and description. */
export interface StepError {
  readonly tag: string
  readonly message: string
  readonly op?: string
  readonly domain?: string
  readonly code?: number
  /** The native error's description as the backend decoded it (for the engine: `<selector> failed: <NSError text>`). */
  readonly description?: string
  /** MIL diagnostics of a failed compile, formatted. */
  readonly diagnostics?: ReadonlyArray<string>
}

/** The outcome of one step; "skip" when a step it needs failed. */
export interface StepResult {
  readonly name: StepName
  readonly status: "pass" | "fail" | "skip"
  readonly detail: string
  readonly error?: StepError
}

/** Whether an engine answered: "present" (the target is hardware), "absent" (NoAneError), "not-used" (simulator or stub asked for). */
export interface EngineStatus {
  readonly status: "present" | "absent" | "not-used"
  readonly reason?: string
}

/** Everything `ane doctor` found, as printed with `--json`. */
export interface DoctorReport {
  readonly ok: boolean
  /** The backend the steps ran on ("none" when no client could be built). */
  readonly backend: string
  readonly engine: EngineStatus
  /** The machine, Node, and this library's version. */
  readonly platform: {
    readonly os: string
    readonly release: string
    readonly arch: string
    readonly node: string
    readonly effectAne: string
  }
  /** The probe's DeviceInfo and ClientInfo, JSON-ready (u64 fields as decimal strings). */
  readonly device?: Readonly<Record<string, unknown>>
  readonly client?: Readonly<Record<string, unknown>>
  readonly steps: ReadonlyArray<StepResult>
}

/** What {@link diagnose} runs on. */
export interface DoctorOptions {
  /** The client under test (`Ane.layer` for the engine). */
  readonly target: Layer.Layer<Ane.Ane, NoAneError>
  /** The client the steps run on when `target` fails with NoAneError (absent: the probe step fails). */
  readonly fallback?: Layer.Layer<Ane.Ane>
  /** The client whose layouts and outputs are the reference (default: the simulator, no latency model). */
  readonly reference?: Layer.Layer<Ane.Ane>
  /** Longest a step may take (default 60 s). */
  readonly stepTimeout?: Duration.DurationInput
  /** Folder the package is written under (default: the OS temp folder). */
  readonly tempDir?: string
}

/** Agreement with the simulator: fp16 has 11 significant bits, and the engine may round partial sums differently. */
export const TOLERANCE = { absolute: 1e-2, relative: 1e-2 } as const

/** Evaluations of the stream step, and how many are in flight at once. */
const STREAM_INPUTS = 8
const STREAM_DEPTH = 4

let program: Generated | undefined

/**
 * The program every step uses: a 64→64 linear layer with bias over 512 tokens. Its weights live in a BLOBFILE (the
 * form the engine compiles) and each surface holds 64 KiB, above the engine's reported ~48 KiB minimum.
 */
export const doctorProgram = (): Generated =>
  (program ??= Generators.linear({ inDim: 64, outDim: 64, seq: 512, bias: Array.from({ length: 64 }, (_, i) => (i - 32) / 64) }))

/** This library's version, from its package.json (two folders up from both src/cli and dist/cli). */
const libraryVersion = (): string => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown }
    return typeof pkg.version === "string" ? pkg.version : "unknown"
  } catch {
    return "unknown"
  }
}

const milOptions = () => CompileOptions.mil({ text: doctorProgram().text, weights: doctorProgram().weights })

/** Deterministic input number `k`: smooth values in [-0.5, 0.5]. */
const inputOf = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k) * 0.5)

/** A check of the doctor's own that failed (not an error of the library). */
class CheckFailed extends Data.TaggedError("CheckFailed")<{ readonly message: string }> {}

const check = (ok: boolean, message: () => string) => ok ? Effect.void : Effect.fail(new CheckFailed({ message: message() }))

/** The step error of whatever a step failed with. */
export const stepErrorOf = (e: unknown): StepError => {
  if (isAneError(e)) {
    const fields = e as { readonly op?: string; readonly domain?: string; readonly code?: number; readonly hint?: string }
    const diagnostics = e._tag === "CompileError" ? e.diagnostics.map(formatDiagnostic) : []
    return {
      tag: e._tag,
      message: e.message,
      ...(fields.op !== undefined ? { op: fields.op } : {}),
      ...(fields.domain !== undefined ? { domain: fields.domain } : {}),
      ...(fields.code !== undefined ? { code: fields.code } : {}),
      ...(fields.hint !== undefined ? { description: fields.hint } : {}),
      ...(diagnostics.length > 0 ? { diagnostics } : {})
    }
  }
  if (e instanceof CheckFailed) return { tag: "CheckFailed", message: e.message }
  return { tag: "Defect", message: e instanceof Error ? e.message.split("\n")[0]! : String(e) }
}

/** Largest difference of `actual` from `expected`, or a CheckFailed naming the first element out of tolerance. */
const compare = (what: string, actual: Float32Array, expected: Float32Array) =>
  Effect.suspend(() => {
    if (actual.length !== expected.length) {
      return Effect.fail(new CheckFailed({ message: `${what}: ${actual.length} values, the simulator's has ${expected.length}` }))
    }
    let worst = 0
    for (let i = 0; i < actual.length; i++) {
      const d = Math.abs(actual[i]! - expected[i]!)
      if (!(d <= TOLERANCE.absolute + TOLERANCE.relative * Math.abs(expected[i]!))) {
        return Effect.fail(new CheckFailed({
          message: `${what}: element ${i} is ${actual[i]}, the simulator's is ${expected[i]} (tolerance ` +
            `${TOLERANCE.absolute} + ${TOLERANCE.relative}·|expected|)`
        }))
      }
      worst = Math.max(worst, d)
    }
    return Effect.succeed(worst)
  })

const LAYOUT_FIELDS = ["channels", "height", "width", "elemSize", "rowStride", "planeStride"] as const

const describeLayout = (l: TensorLayout) => LAYOUT_FIELDS.map((f) => `${f} ${l[f]}`).join(", ")

/** Differences of `model`'s layouts from the reference's, one line each. */
const layoutDifferences = (what: string, model: Model, reference: Model): Array<string> => {
  const out: Array<string> = []
  for (const side of ["inputs", "outputs"] as const) {
    const [mine, theirs] = [model[side], reference[side]]
    if (mine.length !== theirs.length) out.push(`${what} ${side}: ${mine.length}, the simulator reports ${theirs.length}`)
    mine.forEach((l, i) => {
      const r = theirs[i]
      if (r !== undefined && LAYOUT_FIELDS.some((f) => l[f] !== r[f])) {
        out.push(`${what} ${side}[${i}]: ${describeLayout(l)}; the simulator reports ${describeLayout(r)}`)
      }
    })
  }
  return out
}

const ms = (stats: CompileStats) => stats.available ? ` in ${(stats.totalNs / 1e6).toFixed(1)} ms` : ""

const jsonReady = (o: object): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]))

/** Writes the program as a package folder (`model.mil`, weights) in a fresh temp folder, removed with the scope. */
const tempPackage = (parent: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const root = mkdtempSync(join(parent, "effect-ane-doctor-"))
        const dir = join(root, "doctor.mlmodelc")
        mkdirSync(dir)
        writeFileSync(join(dir, "model.mil"), doctorProgram().text)
        for (const w of doctorProgram().weights) {
          const file = join(dir, w.path.replace(/^@model_path\//, ""))
          mkdirSync(dirname(file), { recursive: true })
          writeFileSync(file, w.bytes)
        }
        return { root, dir }
      },
      catch: (cause) => new CheckFailed({ message: `cannot write the package under ${parent}: ${String(cause)}` })
    }),
    ({ root }) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
  ).pipe(Effect.map(({ dir }) => dir))

/**
 * Runs every step on the client `options.target` builds (or on `options.fallback` where it has no engine) and
 * reports each as pass, fail (with the error) or skip. Never fails: a step's failure, defect or timeout is its result.
 */
export const diagnose = (options: DoctorOptions): Effect.Effect<DoctorReport> =>
  Effect.scoped(Effect.gen(function*() {
    const steps: Array<StepResult> = []
    const timeout = Duration.decode(options.stepTimeout ?? "60 seconds")
    const skip = (name: StepName, why: string) => Effect.sync(() => void steps.push({ name, status: "skip", detail: why }))
    const step = <A, E, R>(name: StepName, body: Effect.Effect<readonly [A, string], E, R>): Effect.Effect<Option.Option<A>, never, R> =>
      body.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new CheckFailed({ message: `timed out after ${Duration.format(timeout)}` })
        }),
        Effect.exit,
        Effect.map((exit) => {
          if (Exit.isSuccess(exit)) {
            steps.push({ name, status: "pass", detail: exit.value[1] })
            return Option.some(exit.value[0])
          }
          const failure = Cause.failureOption(exit.cause)
          const error = stepErrorOf(Option.isSome(failure) ? failure.value : Cause.squash(exit.cause))
          steps.push({ name, status: "fail", detail: error.message.split("\n")[0]!, error })
          return Option.none()
        })
      )
    const platform = { os: process.platform, release: release(), arch: process.arch, node: process.version, effectAne: libraryVersion() }

    // The client: the target, or the fallback when the target has no engine.
    const built = yield* Effect.either(Layer.build(Layer.fresh(options.target)))
    let engine: EngineStatus | undefined
    let context: Context.Context<Ane.Ane>
    if (built._tag === "Right") {
      context = built.right
    } else if (options.fallback !== undefined) {
      engine = { status: "absent", reason: built.left.reason }
      context = yield* Layer.build(Layer.fresh(options.fallback))
    } else {
      yield* step("probe", Effect.fail(built.left))
      for (const name of STEPS.slice(1)) yield* skip(name, "no client")
      return { ok: false, backend: "none", engine: { status: "absent", reason: built.left.reason }, platform, steps }
    }
    const ane = Context.get(context, Ane.Ane)
    const info = yield* ane.info
    engine ??= info.backend === "hardware" ? { status: "present" } : { status: "not-used" }

    const client = yield* step("probe", Effect.map(ane.clientInfo, (c) => {
      const budget = `compile budget ${ane.compileLimit}`
      return [c, `${info.backend} ${info.architecture || "?"} (${info.product || "?"}), ${info.numCores} cores, ${budget}`] as const
    }))

    // The reference: the same program on the simulator. Its failure would be a defect of ane itself.
    const referenceContext = yield* Layer.build(Layer.fresh(options.reference ?? Ane.layerSimulator({ latency: "off" })))
    const reference = yield* Effect.orDie(Context.get(referenceContext, Ane.Ane).compile(milOptions()))
    const expected = (inputs: ReadonlyArray<Float32Array>) => Effect.orDie(reference.run(inputs, { mode: "sync" }))
    const input0 = [inputOf(reference.inputs[0]!.logicalElements, 0)]

    const compilesBefore = yield* ane.compileCount
    let compiled = 0
    yield* Effect.scoped(Effect.gen(function*() {
      const mil = yield* step("compile-mil", Effect.map(ane.compileWithStats(milOptions()), ({ model, stats }) => {
        compiled++
        return [model, `${model.id}${ms(stats)}`] as const
      }))
      const pkg = yield* step("compile-package", Effect.gen(function*() {
        const dir = yield* tempPackage(options.tempDir ?? tmpdir())
        const { model, stats } = yield* ane.compileWithStats(CompileOptions.package({ path: dir }))
        compiled++
        return [model, `${dir}${ms(stats)}`] as const
      }))
      const models: Array<readonly [string, Model]> = [
        ...Option.toArray(Option.map(mil, (m) => ["in-memory", m] as const)),
        ...Option.toArray(Option.map(pkg, (m) => ["package", m] as const))
      ]
      if (models.length === 0) {
        for (const name of STEPS.slice(3, -1)) yield* skip(name, "no program compiled")
        return
      }

      yield* step("layouts", Effect.gen(function*() {
        const differences = models.flatMap(([what, m]) => layoutDifferences(what, m, reference))
        yield* check(differences.length === 0, () => differences.join("; "))
        const l = models[0]![1]
        return [undefined, `${models.map(([w]) => w).join(" and ")}: ${l.inputs.length} input(s), ${l.outputs.length} ` +
          `output(s), as the simulator reports (input 0: ${describeLayout(l.inputs[0]!)})`] as const
      }))

      const want = yield* expected(input0)
      yield* step("eval-sync", Effect.gen(function*() {
        let worst = 0
        for (const [what, m] of models) {
          const got = yield* m.run(input0, { mode: "sync" })
          for (let o = 0; o < got.length; o++) worst = Math.max(worst, yield* compare(`${what} output ${o}`, got[o]!, want[o]!))
        }
        return [undefined, `${models.map(([w]) => w).join(" and ")}: max |Δ| ${worst.toExponential(2)}`] as const
      }))

      // The in-memory model when it compiled: the path most programs take.
      const [firstName, first] = models[0]!
      yield* step("eval-async", Effect.gen(function*() {
        const x = [inputOf(input0[0]!.length, 1)]
        const got = yield* first.run(x, { mode: "async" })
        const ref = yield* expected(x)
        let worst = 0
        for (let o = 0; o < got.length; o++) worst = Math.max(worst, yield* compare(`output ${o}`, got[o]!, ref[o]!))
        const threads = first.capabilities.asyncEval ? "off the JS thread" : "on the JS thread"
        return [undefined, `${firstName}, ${threads}: max |Δ| ${worst.toExponential(2)}`] as const
      }))

      yield* step("eval-stream", Effect.gen(function*() {
        const xs = Array.from({ length: STREAM_INPUTS }, (_, k) => [inputOf(input0[0]!.length, k + 2)])
        const ys = Array.from(yield* Stream.runCollect(
          Stream.fromIterable(xs).pipe(RequestPool.evalStream(first, { depth: STREAM_DEPTH }))
        ))
        yield* check(ys.length === xs.length, () => `${ys.length} results for ${xs.length} inputs`)
        let worst = 0
        for (let k = 0; k < xs.length; k++) {
          const ref = yield* expected(xs[k]!)
          for (let o = 0; o < ref.length; o++) {
            worst = Math.max(worst, yield* compare(`evaluation ${k} output ${o}`, ys[k]![o]!, ref[o]!))
          }
        }
        return [undefined, `${firstName}, ${STREAM_INPUTS} evaluations at depth ${STREAM_DEPTH}, in order: ` +
          `max |Δ| ${worst.toExponential(2)}`] as const
      }))

      yield* step("shared-event", sharedEventRoundTrip(ane, models, expected))
    }))

    const usedCompiles = compiled
    yield* step("cleanup", Effect.gen(function*() {
      const live = yield* ane.liveHandles
      const count = (yield* ane.compileCount) - compilesBefore
      yield* check(live === 0, () => `${live} native handle(s) still alive after every scope closed`)
      yield* check(count === usedCompiles, () => `compile count went up by ${count}, expected ${usedCompiles}`)
      const left = yield* ane.remainingBudget
      return [undefined, `live handles 0, compile count +${count} (${left} of ${ane.compileLimit} left)`] as const
    }))

    return {
      ok: steps.every((s) => s.status !== "fail"),
      backend: info.backend,
      engine,
      platform,
      device: jsonReady(info),
      ...Option.match(client, { onNone: () => ({}), onSome: (c) => ({ client: jsonReady(c) }) }),
      steps
    }
  }))

/**
 * CPU signal and wait, then the engine signals after an evaluation, then the engine waits for the CPU before
 * evaluating and signals back. Uses a package model where the backend refuses shared events on in-memory ones.
 */
const sharedEventRoundTrip = (
  ane: Ane.AneService,
  models: ReadonlyArray<readonly [string, Model]>,
  expected: (inputs: ReadonlyArray<Float32Array>) => Effect.Effect<ReadonlyArray<Float32Array>>
) =>
  Effect.gen(function*() {
    const event = yield* ane.createSharedEvent
    yield* event.signal(1n)
    yield* check(yield* event.wait(1n, "1 second"), () => "a CPU signal of 1 was not seen by a CPU wait")
    const usable = models.find(([, m]) => m.capabilities.sharedEvents === "all" || (m.capabilities.sharedEvents === "package-only" && m.kind === "package"))
    if (usable === undefined) {
      const none = models.every(([, m]) => m.capabilities.sharedEvents === "none")
      yield* check(none, () => "the backend evaluates with shared events only for packages, and the package did not compile")
      return [undefined, "CPU signal and wait (this backend has no shared-event evaluation)"] as const
    }
    const [what, model] = usable
    const x = [inputOf(model.inputs[0]!.logicalElements, 20)]
    const ref = yield* expected(x)
    const outputs = (label: string) =>
      Effect.gen(function*() {
        for (let o = 0; o < ref.length; o++) yield* compare(`${label} output ${o}`, yield* model.readOutputF32(o), ref[o]!)
      })
    yield* model.writeInputF32(0, x[0]!)
    yield* model.evalWithSignalEvent(event, 2n)
    yield* check(yield* event.wait(2n, "5 seconds"), () => "the engine did not signal 2 within 5 s of an evaluation")
    yield* outputs("signalled evaluation")
    // The engine waits for 3 from the CPU, evaluates, and signals 4.
    const pending = yield* Effect.fork(model.evalBidirectional(event, 3n, event, 4n))
    yield* event.signal(3n)
    yield* check(yield* event.wait(4n, "5 seconds"), () => "the engine did not signal 4 within 5 s of the CPU's 3")
    yield* pending.await.pipe(Effect.flatMap((exit) => exit))
    yield* outputs("waiting evaluation")
    return [undefined, `${what}: CPU signal/wait, engine signal after eval, CPU→engine→CPU (event port ${event.port})`] as const
  })

const STATUS = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const

/** The report as text: the machine, the engine, then one line per step with each failure's native error below it. */
export const formatReport = (report: DoctorReport): string => {
  const p = report.platform
  const lines = [`ane doctor: effect-ane ${p.effectAne}, ${p.os} ${p.release} ${p.arch}, node ${p.node}`]
  if (report.engine.status === "absent") {
    lines.push(`no ANE hardware: ${report.engine.reason ?? "unknown reason"}` +
      (report.backend === "none" ? "" : `; the steps ran on the ${report.backend}`))
  } else lines.push(`backend: ${report.backend}`)
  for (const s of report.steps) {
    lines.push(`${STATUS[s.status]}  ${s.name.padEnd(16)} ${s.detail}`)
    if (s.error === undefined) continue
    const native = s.error.domain !== undefined || s.error.code !== undefined
      ? ` (${s.error.domain ?? "native"} ${s.error.code ?? "?"})` : ""
    lines.push(`      ${s.error.tag}${native}${s.error.op !== undefined ? ` in ${s.error.op}` : ""}`)
    if (s.error.description !== undefined) lines.push(`      ${s.error.description}`)
    for (const d of s.error.diagnostics ?? []) lines.push(`      ${d}`)
  }
  const count = (status: StepResult["status"]) => report.steps.filter((s) => s.status === status).length
  lines.push(`${count("pass")} passed, ${count("fail")} failed, ${count("skip")} skipped`)
  return lines.join("\n")
}

/** The exit status of a report: ok, failed, or unavailable when no client could be built at all. */
export const exitCodeOfReport = (report: DoctorReport): number =>
  report.ok ? ExitCode.ok : report.backend === "none" ? ExitCode.unavailable : ExitCode.failed

const backend = Options.choice("backend", ["auto", "hardware", "simulator"]).pipe(
  Options.withDefault("auto" as const),
  Options.withDescription("auto: the engine when present, else the simulator (and it says so); hardware: the engine " +
    "or fail (default: auto)")
)
const json = Options.boolean("json").pipe(
  Options.withDescription("print one JSON object: pass/fail per step, native errors with domain, code, description (default: off)")
)

/** The `doctor` subcommand. */
export const command = Command.make("doctor", { backend, json }, ({ backend, json }) =>
  Effect.gen(function*() {
    const report = yield* diagnose(
      backend === "simulator"
        ? { target: Ane.layerSimulator() }
        : { target: Ane.layer, ...(backend === "auto" ? { fallback: Ane.layerSimulator() } : {}) }
    )
    const code = exitCodeOfReport(report)
    const failed = report.steps.filter((s) => s.status === "fail").map((s) => s.name)
    yield* json
      ? Console.log(JSON.stringify({
        ...report,
        command: "doctor",
        exitCode: code,
        ...(failed.length > 0 ? { error: `${failed.length} step(s) failed: ${failed.join(", ")}` } : {})
      }))
      : Console.log(formatReport(report))
    if (code !== ExitCode.ok) return yield* Effect.fail(new CommandExit({ code }))
  }).pipe(reported("doctor", json))
).pipe(Command.withDescription(
  "Check this machine's engine end to end (compile both ways, layouts, sync/async/stream evals against the " +
    "simulator, shared events, cleanup) and print a report for bug reports"
))
