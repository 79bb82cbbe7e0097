/**
 * `ane run <file.mil | dir.mlmodelc>`: compiles a program on the engine or its simulator, writes its inputs
 * (`.npy` files or seeded random values), evaluates once, writes every output as `.npy` and prints a summary.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Either, Layer, Option } from "effect"
import { checkBlobFilePaths, relativeWeightPath, resolveInside } from "../backend/weightPath.js"
import type { Program, TypeExpr } from "../mil/ast.js"
import { blobReferences } from "../mil/blob.js"
import { parse } from "../mil/parser.js"
import * as NativeBackend from "../native/NativeBackend.js"
import { CompileOptions } from "../schema/CompileOptions.js"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { CompileError, InvalidArgumentError, isAneError } from "../schema/errors.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import { Backend } from "../services/Backend.js"
import { packSurface, type SurfaceViews, unpackSurface } from "../sim/layout.js"
import * as SimBackend from "../sim/SimBackend.js"
import { readNpy, writeNpy } from "./npy.js"
import { withPrefix } from "./source.js"

/** Parsed command-line options of `ane run`. */
export interface RunOptions {
  readonly program: string
  readonly weights: Option.Option<string>
  readonly input: ReadonlyArray<string>
  readonly output: Option.Option<string>
  readonly backend: "auto" | "hardware" | "simulator"
  readonly numerics: "ane" | "exact"
  readonly rules: "error" | "warn" | "off"
  readonly json: boolean
  readonly seed: number
}

/** Default directory for the output `.npy` files. */
export const DEFAULT_OUTPUT_DIR = "ane-run-output"

const invalid = (argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError({ op: "ane run", argument, expected, actual, ...(hint !== undefined ? { hint } : {}) })

/** Deterministic uniform values in [-1, 1) (mulberry32). */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1
  }
}

const shapeOf = (t: TypeExpr | undefined): Array<number> | undefined => {
  if (t === undefined) return undefined
  if (t.kind === "scalar") return []
  if (t.kind === "state") return shapeOf(t.inner)
  if (t.kind !== "tensor" || t.shape === null || t.shape.some((d) => typeof d !== "number")) return undefined
  return t.shape as Array<number>
}

/** Declared MIL shapes of the main function's inputs and outputs, by name. */
const declaredShapes = (program: Program | null): Map<string, Array<number>> => {
  const m = new Map<string, Array<number>>()
  const fn = program?.functions.find((f) => f.name === "main") ?? program?.functions[0]
  if (fn === undefined) return m
  for (const b of fn.inputs) {
    const s = shapeOf(b.type)
    if (s) m.set(b.name, s)
  }
  for (const op of fn.body.operations) {
    for (const b of op.outputs) {
      if (!fn.body.outputs.includes(b.name)) continue
      const s = shapeOf(b.type)
      if (s) m.set(b.name, s)
    }
  }
  return m
}

const views = (bytes: Uint8Array): SurfaceViews => ({
  bytes,
  u16: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1),
  f32: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2)
})

/** The compile request for a path, with the weight files found beside a `.mil` file. */
export const compileRequest = (path: string, weights: Option.Option<string>) =>
  Effect.suspend((): Effect.Effect<{ options: CompileOptions; text: string }, InvalidArgumentError | CompileError> => {
    if (!existsSync(path)) return Effect.fail(invalid("program", "a .mil file or a .mlmodelc directory", `${path} (not found)`))
    if (statSync(path).isDirectory()) {
      const mil = join(path, "model.mil")
      const text = existsSync(mil) ? readFileSync(mil, "utf8") : ""
      return Effect.succeed({ options: CompileOptions.package({ path }) as CompileOptions, text })
    }
    const text = readFileSync(path, "utf8")
    // Weights come only from inside the .mil's folder, after realpath (docs/security.md).
    const site = { op: "ane run", model: path, file: path }
    const outside = checkBlobFilePaths(text, site)
    if (outside !== undefined) return Effect.fail(outside)
    const program = parse(text, { file: path }).program
    // Each weight path once, with the position of its first BLOBFILE.
    const refs = new Map<string, { readonly line: number; readonly col: number }>()
    for (const b of program ? blobReferences(program) : []) if (!refs.has(b.path)) refs.set(b.path, { line: b.pos.line, col: b.pos.col })
    const paths = [...refs.keys()]
    const files: Array<{ path: string; bytes: Uint8Array }> = []
    if (Option.isSome(weights)) {
      if (!existsSync(weights.value)) return Effect.fail(invalid("--weights", "an existing weight file", `${weights.value} (not found)`))
      const target = paths.length === 1 ? paths[0]! : "@model_path/weights/weight.bin"
      files.push({ path: target, bytes: new Uint8Array(readFileSync(weights.value)) })
    } else {
      // Look beside the file: <dir>/<name>/<rel> then <dir>/<rel>, where rel strips "@model_path/".
      const dir = dirname(path)
      const stem = basename(path).replace(/\.mil$/, "")
      for (const p of paths) {
        const candidates = stem === "" || stem === "." || stem === ".." ? [p] : [`${stem}/${relativeWeightPath(p)}`, p]
        let found: string | undefined
        for (const c of candidates) {
          const full = resolveInside(dir, c, { ...site, ...refs.get(p) })
          if (full instanceof CompileError) return Effect.fail(full)
          if (existsSync(full) && statSync(full).isFile()) {
            found = full
            break
          }
        }
        if (found !== undefined) files.push({ path: p, bytes: new Uint8Array(readFileSync(found)) })
      }
    }
    return Effect.succeed({ options: CompileOptions.mil({ text, weights: files }) as CompileOptions, text })
  })

/** Picks the backend layer; `auto` says why it chose the simulator. */
const chooseBackend = (o: RunOptions) => {
  const sim = SimBackend.layer({ numerics: o.numerics, rules: o.rules, latency: "off" })
  switch (o.backend) {
    case "simulator": return Effect.succeed({ layer: sim, name: "simulator", reason: "requested" })
    case "hardware": return Effect.succeed({ layer: NativeBackend.layer, name: "hardware", reason: "requested" })
    case "auto":
      return Effect.scoped(Layer.build(NativeBackend.layer)).pipe(
        Effect.either,
        Effect.map((r) => Either.isRight(r)
          ? { layer: NativeBackend.layer, name: "hardware", reason: "ANE hardware found" }
          : { layer: sim, name: "simulator", reason: `no ANE hardware (${r.left.reason})` })
      )
  }
}

interface OutputSummary {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly dtype: "fp16" | "fp32"
  readonly file: string
  readonly min: number
  readonly max: number
  readonly mean: number
}

const stats = (a: Float32Array) => {
  let min = Infinity, max = -Infinity, sum = 0
  for (const v of a) {
    if (v < min) min = v
    if (v > max) max = v
    sum += v
  }
  return { min, max, mean: a.length > 0 ? sum / a.length : NaN }
}

const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)).toString() : String(x))

/** The whole command as an Effect (exported for tests). */
export const runCommand = (o: RunOptions) =>
  Effect.gen(function*() {
    const req = yield* compileRequest(o.program, o.weights)
    const chosen = yield* chooseBackend(o)
    if (!o.json && o.backend === "auto") yield* Console.error(`ane run: using the ${chosen.name} backend (${chosen.reason})`)
    const shapes = declaredShapes(parse(req.text).program)
    return yield* Effect.scoped(Effect.gen(function*() {
      const backend = yield* Backend
      const t0 = performance.now()
      const model = yield* backend.compile(req.options)
      const compileMs = performance.now() - t0
      const diagnostics = "diagnostics" in model ? (model as SimBackend.SimModel).diagnostics : []
      if (!o.json) for (const d of diagnostics) yield* Console.error(formatDiagnostic(d))
      const given = new Map<string, string>()
      for (const spec of o.input) {
        const eq = spec.indexOf("=")
        if (eq <= 0) return yield* Effect.fail(invalid("--input", "name=file.npy or name=random", spec))
        given.set(spec.slice(0, eq), spec.slice(eq + 1))
      }
      for (const name of given.keys()) {
        if (!model.inputs.some((l) => l.name === name)) {
          return yield* Effect.fail(invalid("--input", `one of ${model.inputs.map((l) => l.name).join(", ")}`, name))
        }
      }
      const rnd = seededRandom(o.seed)
      const inputs: Array<{ name: string; source: string }> = []
      for (let i = 0; i < model.inputs.length; i++) {
        const layout: TensorLayout = model.inputs[i]!
        const src = given.get(layout.name) ?? "random"
        const data = new Float32Array(layout.logicalElements)
        if (src === "random") for (let k = 0; k < data.length; k++) data[k] = rnd()
        else {
          if (!existsSync(src)) return yield* Effect.fail(invalid(`--input ${layout.name}`, "an existing .npy file", src))
          const arr = readNpy(new Uint8Array(readFileSync(src)), src)
          if (arr instanceof InvalidArgumentError) return yield* Effect.fail(arr)
          if (arr.data.length !== data.length) {
            return yield* Effect.fail(invalid(`--input ${layout.name}`, `${data.length} elements`,
              `${arr.data.length} (shape [${arr.shape.join(", ")}])`))
          }
          data.set(arr.data)
        }
        packSurface(layout, data, views(model.request.inputs[i]!))
        inputs.push({ name: layout.name, source: src })
      }
      const t1 = performance.now()
      const evalStats = yield* model.request.evalWithStats
      const evalMs = performance.now() - t1
      const dir = Option.getOrElse(o.output, () => DEFAULT_OUTPUT_DIR)
      mkdirSync(dir, { recursive: true })
      const outputs: Array<OutputSummary> = []
      for (let i = 0; i < model.outputs.length; i++) {
        const layout = model.outputs[i]!
        const data = new Float32Array(layout.logicalElements)
        unpackSurface(layout, views(model.request.outputs[i]!), data)
        const shape = shapes.get(layout.name) ?? [layout.channels, layout.height, layout.width]
        const file = join(dir, `${layout.name.replace(/[^A-Za-z0-9_.-]/g, "_")}.npy`)
        writeFileSync(file, writeNpy(data, shape, layout.elemSize === 2 ? "<f2" : "<f4"))
        outputs.push({ name: layout.name, shape, dtype: layout.dtype, file, ...stats(data) })
      }
      const timings = {
        compileMs: Number(compileMs.toFixed(3)),
        evalMs: Number(evalMs.toFixed(3)),
        // The engine's own execution time: measured on hardware, the latency model's on the simulator.
        ...(evalStats.source === "unavailable"
          ? {}
          : { engineMs: Number((evalStats.hwExecutionNs / 1e6).toFixed(6)), engineTime: evalStats.source })
      }
      if (o.json) {
        yield* Console.log(JSON.stringify({
          program: o.program,
          backend: chosen.name,
          backendReason: chosen.reason,
          model: model.id,
          inputs,
          outputs,
          timings,
          diagnostics: diagnostics.map(formatDiagnostic)
        }))
      } else {
        const ms = timings.engineMs
        const engine = ms === undefined ? ""
          : ` (engine ${ms < 1 ? `${fmt(ms * 1000)} µs` : `${fmt(ms)} ms`}, ${timings.engineTime})`
        yield* Console.log(`${model.id} on the ${chosen.name} backend: compile ${fmt(timings.compileMs)} ms, ` +
          `eval ${fmt(timings.evalMs)} ms${engine}`)
        for (const out of outputs) {
          yield* Console.log(`  ${out.name} [${out.shape.join(", ")}] ${out.dtype}  min ${fmt(out.min)}  max ${fmt(out.max)}  ` +
            `mean ${fmt(out.mean)}  → ${out.file}`)
        }
      }
    }).pipe(Effect.provide(chosen.layer)))
  })

const args = {
  program: Args.text({ name: "program" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
  weights: Options.text("weights").pipe(
    Options.withDescription("weight file for the program's BLOBFILE references (default: found beside the .mil)"),
    Options.optional
  ),
  input: Options.text("input").pipe(Options.withDescription("name=file.npy or name=random (repeatable)"), Options.repeated),
  output: Options.text("output").pipe(Options.withDescription(`directory for the output .npy files (default ${DEFAULT_OUTPUT_DIR})`), Options.optional),
  backend: Options.choice("backend", ["auto", "hardware", "simulator"] as const).pipe(Options.withDefault("auto" as const)),
  numerics: Options.choice("numerics", ["ane", "exact"] as const).pipe(Options.withDefault("ane" as const)),
  rules: Options.choice("rules", ["error", "warn", "off"] as const).pipe(Options.withDefault("error" as const)),
  json: Options.boolean("json").pipe(Options.withDescription("print one JSON object")),
  seed: Options.integer("seed").pipe(Options.withDescription("seed of the random inputs"), Options.withDefault(0))
}

/** The `run` subcommand. Typed failures print their message and exit with status 1 (no stack trace). */
export const command = Command.make("run", args, (o) =>
  runCommand(o).pipe(
    Effect.catchAll((e) =>
      Effect.zipRight(
        Console.error(withPrefix("ane run", isAneError(e) ? e.message : String(e))),
        Effect.sync(() => {
          process.exitCode = 1
        })
      )
    )
  )).pipe(Command.withDescription("Compile and evaluate a MIL program (or .mlmodelc) once, writing outputs as .npy"))
