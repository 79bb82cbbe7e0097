/**
 * `ane run <file.mil | dir.mlmodelc | model.onnx>`: compiles a program (an ONNX model is imported in memory first) on
 * the engine or its simulator, writes its inputs (`.npy` files or seeded random values), evaluates once, writes every
 * output as `.npy` and prints a summary.
 */
import { stat } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { checkBlobFilePaths, relativeWeightPath, resolveInside } from "../backend/weightPath.js"
import type { Program, TypeExpr } from "../mil/ast.js"
import { blobReferences } from "../mil/blob.js"
import { parse } from "../mil/parser.js"
import * as Onnx from "../onnx/Onnx.js"
import * as NativeBackend from "../native/NativeBackend.js"
import { CompileOptions } from "../schema/CompileOptions.js"
import { type Diagnostic, formatDiagnostic } from "../schema/Diagnostic.js"
import { CompileError, InvalidArgumentError } from "../schema/errors.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import { Backend } from "../services/Backend.js"
import { packSurface, type SurfaceViews, unpackSurface } from "../sim/layout.js"
import * as SimBackend from "../sim/SimBackend.js"
import { reported, withFile } from "./failure.js"
import * as CommonOptions from "./options.js"
import {
  checkOutputFiles, checkProgramPath, checkWeightPath, createOutputDir, MAX_PROGRAM_BYTES, MAX_WEIGHT_BYTES, outputFileName,
  planOutputDir, readRegularFile, reasonOf, removeCreatedDirs, writeOutputFile
} from "./files.js"
import { type ImportFlags, importModel, importOptions, isOnnxPath, traceDiagnostic } from "./import.js"
import { maxNpyBytes, readNpy, sameShape, writeNpy } from "./npy.js"
import { seededRandom } from "./random.js"
import { whileRunning } from "./progress.js"
import { checkPackageWeights } from "./weights.js"
import { engineTime, formatEngineTime } from "./timing.js"

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
  /** `.onnx` programs: `name=1,576` shapes for symbolic dims (see `ane import`). */
  readonly shape?: ImportFlags["shape"]
  /** `.onnx` programs: inputs fixed to values at import. */
  readonly inputValue?: ImportFlags["inputValue"]
  /** `.onnx` programs: import in fp32. */
  readonly fp32?: boolean
}

/** Default directory for the output `.npy` files. */
export const DEFAULT_OUTPUT_DIR = "ane-run-output"

const invalid = (argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError({ op: "ane run", argument, expected, actual, ...(hint !== undefined ? { hint } : {}) })

/** The same complaint, made by `op`. */
const withOp = (e: InvalidArgumentError, op: string): InvalidArgumentError =>
  new InvalidArgumentError({
    op, argument: e.argument, expected: e.expected, actual: e.actual, ...(e.hint !== undefined ? { hint: e.hint } : {})
  })


/** The `--input` options, read: files by input name; every other input gets seeded random values. */
export interface InputSpecs {
  readonly files: ReadonlyMap<string, string>
  readonly random: ReadonlySet<string>
}

/**
 * Reads `--input` values: `name=file.npy`, `name=random`, or a bare `random` (every input not given a file). An input
 * named twice is refused, so a typo cannot silently override an earlier value.
 */
export const parseInputSpecs = (specs: ReadonlyArray<string>): InputSpecs | InvalidArgumentError => {
  const files = new Map<string, string>()
  const random = new Set<string>()
  for (const spec of specs) {
    if (spec === "random") continue
    const eq = spec.indexOf("=")
    if (eq <= 0) return invalid("--input", "name=file.npy, name=random or random", spec === "" ? "an empty value" : spec)
    const name = spec.slice(0, eq)
    const value = spec.slice(eq + 1)
    if (value === "") return invalid(`--input ${name}`, "a .npy file or random after the =", "nothing")
    if (files.has(name) || random.has(name)) {
      return invalid("--input", "each input named once", `${name} twice (${files.get(name) ?? "random"} and ${value})`)
    }
    if (value === "random") random.add(name)
    else files.set(name, value)
  }
  return { files, random }
}

const shapeOf = (t: TypeExpr | undefined): Array<number> | undefined => {
  if (t === undefined) return undefined
  if (t.kind === "scalar") return []
  if (t.kind === "state") return shapeOf(t.inner)
  if (t.kind !== "tensor" || t.shape === null || t.shape.some((d) => typeof d !== "number")) return undefined
  return t.shape as Array<number>
}

/** Declared MIL shapes of the main function's inputs and outputs, by name, and its output names in order. */
const declaredShapes = (program: Program | null): { shapes: Map<string, Array<number>>; outputs: Array<string> } => {
  const shapes = new Map<string, Array<number>>()
  const fn = program?.functions.find((f) => f.name === "main") ?? program?.functions[0]
  if (fn === undefined) return { shapes, outputs: [] }
  for (const b of fn.inputs) {
    const s = shapeOf(b.type)
    if (s) shapes.set(b.name, s)
  }
  for (const op of fn.body.operations) {
    for (const b of op.outputs) {
      if (!fn.body.outputs.includes(b.name)) continue
      const s = shapeOf(b.type)
      if (s) shapes.set(b.name, s)
    }
  }
  return { shapes, outputs: [...fn.body.outputs] }
}

const views = (bytes: Uint8Array): SurfaceViews => ({
  bytes,
  u16: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1),
  f32: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2)
})

/** `stat` of a path, or undefined where there is nothing (or nothing we may look at). */
const statOrNone = (path: string) => Effect.promise(() => stat(path).catch(() => undefined))

/**
 * The compile request for a path, with the weight files found beside a `.mil` file. Every file is read as a regular
 * file of bounded size (never a FIFO or device), and weights only from inside the program's folder.
 */
export const compileRequest = (path: string, weights: Option.Option<string>) =>
  Effect.gen(function*() {
    const program = { op: "ane run", argument: "program", expected: "a .mil file or a .mlmodelc directory", maxBytes: MAX_PROGRAM_BYTES }
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
    const s = yield* statOrNone(path)
    if (s === undefined) return yield* Effect.fail(invalid("program", program.expected, `${path} (not found)`))
    if (s.isDirectory()) {
      const mil = join(path, "model.mil")
      const text = (yield* statOrNone(mil)) === undefined ? "" : decode(yield* readRegularFile(mil, program))
      return { options: CompileOptions.package({ path }) as CompileOptions, text }
    }
    const text = decode(yield* readRegularFile(path, program))
    // Weights come only from inside the .mil's folder, after realpath (docs/security.md).
    const site = { op: "ane run", model: path, file: path }
    const outside = checkBlobFilePaths(text, site)
    if (outside !== undefined) return yield* Effect.fail(outside)
    const parsed = parse(text, { file: path }).program
    // Each weight path once, with the position of its first BLOBFILE.
    const refs = new Map<string, { readonly line: number; readonly col: number }>()
    for (const b of parsed ? blobReferences(parsed) : []) if (!refs.has(b.path)) refs.set(b.path, { line: b.pos.line, col: b.pos.col })
    const paths = [...refs.keys()]
    const files: Array<{ path: string; bytes: Uint8Array }> = []
    if (Option.isSome(weights)) {
      const target = paths.length === 1 ? paths[0]! : "@model_path/weights/weight.bin"
      const bytes = yield* readRegularFile(weights.value, {
        op: "ane run", argument: "--weights", expected: "a regular weight file", maxBytes: MAX_WEIGHT_BYTES
      })
      files.push({ path: target, bytes })
      return { options: CompileOptions.mil({ text, weights: files }) as CompileOptions, text }
    }
    // Look beside the file: <dir>/<name>/<rel> then <dir>/<rel>, where rel strips "@model_path/".
    const dir = dirname(path)
    const stem = basename(path).replace(/\.mil$/, "")
    const unreadable = (actual: string) =>
      invalid("program", "a program whose weight files can be read", `${path} (a weight file beside it: ${actual})`)
    for (const p of paths) {
      const candidates = stem === "" || stem === "." || stem === ".." ? [p] : [`${stem}/${relativeWeightPath(p)}`, p]
      for (const c of candidates) {
        const full = resolveInside(dir, c, { ...site, ...refs.get(p) })
        if (full instanceof CompileError) return yield* Effect.fail(full)
        const found = yield* statOrNone(full)
        if (found === undefined || !found.isFile()) continue
        if (found.size > MAX_WEIGHT_BYTES) return yield* Effect.fail(unreadable(`${full}: a file over 2 GiB`))
        const bytes = yield* readRegularFile(full, {
          op: "ane run", argument: "program", expected: "a regular weight file", maxBytes: MAX_WEIGHT_BYTES
        }).pipe(Effect.mapError((e) => unreadable(e.actual)))
        files.push({ path: p, bytes })
        break
      }
    }
    return { options: CompileOptions.mil({ text, weights: files }) as CompileOptions, text }
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

/**
 * Checks the program and weight paths (regular files of a readable size), then builds the compile request. Reading
 * a file found beside the program can still fail (a race, a file over 2 GiB): that becomes a typed failure too.
 */
export const loadProgram = (op: string, program: string, weights: Option.Option<string>) =>
  Effect.gen(function*() {
    const kind = yield* checkProgramPath(op, program)
    if (Option.isSome(weights)) yield* checkWeightPath(op, weights.value)
    const req = yield* compileRequest(program, weights).pipe(
      Effect.catchAllDefect((d) =>
        Effect.fail(new InvalidArgumentError({
          op, argument: "program", expected: "a program whose weight files can be read",
          actual: `${program} (a weight file beside it: ${reasonOf(d)})`
        }))),
      Effect.mapError((e) => (e._tag === "InvalidArgumentError" && e.op === "ane run" ? withOp(e, op) : e))
    )
    // The backend reads a package's weights itself: a FIFO or an oversized file is refused by name first.
    if (kind === "package") yield* checkPackageWeights(op, program, req.text)
    return req
  })

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

/** Reads one `--input` file and checks it against the input's declared shape (leading 1s aside). */
const readInput = (layout: TensorLayout, declared: ReadonlyArray<number> | undefined, path: string) =>
  Effect.gen(function*() {
    const argument = `--input ${layout.name}`
    const bytes = yield* readRegularFile(path, {
      op: "ane run", argument, expected: "a regular .npy file", maxBytes: maxNpyBytes(layout.logicalElements)
    })
    const arr = readNpy(bytes, path)
    if (arr instanceof InvalidArgumentError) return yield* Effect.fail(withOp(arr, "ane run"))
    const shapeText = `(${arr.shape.join(", ")})`
    if (declared !== undefined ? !sameShape(arr.shape, declared) : arr.data.length !== layout.logicalElements) {
      const want = declared !== undefined ? `shape [${declared.join(", ")}] (leading 1s may be dropped or added)`
        : `${layout.logicalElements} elements`
      return yield* Effect.fail(invalid(argument, want, `${path} with shape ${shapeText}`))
    }
    return arr.data
  })

/** Input specs with ONNX input names replaced by the MIL names the imported program gives them. */
const milInputNames = (specs: InputSpecs, imported: Onnx.Imported | undefined): InputSpecs => {
  if (imported === undefined) return specs
  const rename = (name: string) => Onnx.milName(imported.metadata, name, "input") ?? name
  return {
    files: new Map([...specs.files].map(([name, file]) => [rename(name), file])),
    random: new Set([...specs.random].map(rename))
  }
}

/** An `.onnx` program imported in memory; import options on anything else are refused rather than ignored. */
const importIfOnnx = (o: RunOptions) =>
  Effect.gen(function*() {
    const flags = { shape: o.shape ?? [], inputValue: o.inputValue ?? [], fp32: o.fp32 ?? false }
    if (!isOnnxPath(o.program)) {
      const given = flags.shape.length > 0 ? "--shape" : flags.inputValue.length > 0 ? "--input-value" : flags.fp32 ? "--fp32" : undefined
      if (given !== undefined) return yield* Effect.fail(invalid(given, "an .onnx program", o.program, `${given} applies to ONNX imports only`))
      return undefined
    }
    if (Option.isSome(o.weights)) {
      return yield* Effect.fail(invalid("--weights", "no weight file with an .onnx program (its weights come from the import)", o.weights.value))
    }
    return yield* importModel("ane run", o.program, flags)
  })

/** The whole command as an Effect (exported for tests): fails with typed errors, prints nothing on failure. */
export const runCommand = (o: RunOptions) =>
  Effect.gen(function*() {
    const parsed = parseInputSpecs(o.input)
    if (parsed instanceof InvalidArgumentError) return yield* Effect.fail(parsed)
    const dir = Option.getOrElse(o.output, () => DEFAULT_OUTPUT_DIR)
    const plan = yield* planOutputDir("ane run", dir)
    const imported = yield* importIfOnnx(o)
    const specs = milInputNames(parsed, imported)
    const req = imported !== undefined
      ? { options: imported.compileOptions as CompileOptions, text: imported.text }
      : yield* loadProgram("ane run", o.program, o.weights)
    // Diagnostics of an imported program name the ONNX node of their op.
    const located = (d: Diagnostic) => (imported !== undefined ? traceDiagnostic(imported, o.program, d) : withFile(d, o.program))
    const declared = declaredShapes(parse(req.text).program)
    // Output files are checked before any work, so a bad name or path does not cost a compile and an eval.
    yield* checkOutputFiles("ane run", dir, declared.outputs)
    const chosen = yield* chooseBackend(o)
    if (!o.json && o.backend === "auto") yield* Console.error(`ane run: using the ${chosen.name} backend (${chosen.reason})`)
    yield* createOutputDir("ane run", plan)
    return yield* Effect.scoped(Effect.gen(function*() {
      const backend = yield* Backend
      const info = yield* backend.probe
      const t0 = performance.now()
      const model = yield* backend.compile(req.options).pipe(
        whileRunning("ane run: compiling", !o.json),
        Effect.mapError((e) => e._tag === "CompileError" && imported !== undefined
          ? new CompileError({
            op: e.op, diagnostics: e.diagnostics.map(located),
            ...(e.model !== undefined ? { model: e.model } : {}), ...(e.domain !== undefined ? { domain: e.domain } : {}),
            ...(e.code !== undefined ? { code: e.code } : {}), ...(e.hint !== undefined ? { hint: e.hint } : {}),
            ...(e.cause !== undefined ? { cause: e.cause } : {})
          })
          : e)
      )
      const compileMs = performance.now() - t0
      const diagnostics = ("diagnostics" in model ? (model as SimBackend.SimModel).diagnostics : []).map(located)
      if (!o.json) for (const d of diagnostics) yield* Console.error(formatDiagnostic(d))
      for (const name of [...specs.files.keys(), ...specs.random]) {
        if (!model.inputs.some((l) => l.name === name)) {
          return yield* Effect.fail(invalid("--input", `one of ${model.inputs.map((l) => l.name).join(", ")}`, name))
        }
      }
      yield* checkOutputFiles("ane run", dir, model.outputs.map((l) => l.name))
      const rnd = seededRandom(o.seed)
      const inputs: Array<{ name: string; source: string }> = []
      for (let i = 0; i < model.inputs.length; i++) {
        const layout: TensorLayout = model.inputs[i]!
        const file = specs.files.get(layout.name)
        let data: Float32Array
        if (file === undefined) {
          data = new Float32Array(layout.logicalElements)
          for (let k = 0; k < data.length; k++) data[k] = rnd()
        } else data = yield* readInput(layout, declared.shapes.get(layout.name), file)
        packSurface(layout, data, views(model.request.inputs[i]!))
        inputs.push({ name: layout.name, source: file ?? "random" })
      }
      const t1 = performance.now()
      const evalStats = yield* model.request.evalWithStats.pipe(whileRunning("ane run: evaluating", !o.json))
      const evalMs = performance.now() - t1
      const outputs: Array<OutputSummary> = []
      for (let i = 0; i < model.outputs.length; i++) {
        const layout = model.outputs[i]!
        const data = new Float32Array(layout.logicalElements)
        unpackSurface(layout, views(model.request.outputs[i]!), data)
        const shape = declared.shapes.get(layout.name) ?? [layout.channels, layout.height, layout.width]
        const file = join(dir, outputFileName(layout.name))
        yield* writeOutputFile("ane run", file, writeNpy(data, shape, layout.elemSize === 2 ? "<f2" : "<f4"))
        outputs.push({ name: layout.name, shape, dtype: layout.dtype, file, ...stats(data) })
      }
      const engine = engineTime(evalStats, info.architecture)
      const timings = {
        compileMs: Number(compileMs.toFixed(3)),
        evalMs: Number(evalMs.toFixed(3)),
        // The engine's time for the call: measured on hardware, the latency model's (dispatch floor included) otherwise.
        ...(engine === undefined ? {} : { engineMs: Number((engine.ns / 1e6).toFixed(6)), engineTime: engine.source })
      }
      const random = inputs.filter((x) => x.source === "random").map((x) => x.name)
      if (o.json) {
        yield* Console.log(JSON.stringify({
          ok: true,
          program: o.program,
          backend: chosen.name,
          backendReason: chosen.reason,
          model: model.id,
          inputs,
          randomInputs: random,
          seed: o.seed,
          outputs,
          timings,
          diagnostics: diagnostics.map(formatDiagnostic)
        }))
      } else {
        const name = req.options._tag === "mil" ? o.program : model.id
        yield* Console.log(`${name} on the ${chosen.name} backend: compile ${fmt(timings.compileMs)} ms, ` +
          `eval ${fmt(timings.evalMs)} ms` + (engine === undefined ? "" : ` (${formatEngineTime(engine)})`))
        for (const x of inputs) {
          const layout = model.inputs.find((l) => l.name === x.name)!
          const shape = declared.shapes.get(x.name) ?? [layout.channels, layout.height, layout.width]
          yield* Console.log(`  ${x.name} [${shape.join(", ")}] ← ` +
            (x.source === "random" ? `random values in [-1, 1) (seed ${o.seed})` : x.source))
        }
        for (const out of outputs) {
          yield* Console.log(`  ${out.name} [${out.shape.join(", ")}] ${out.dtype}  min ${fmt(out.min)}  max ${fmt(out.max)}  ` +
            `mean ${fmt(out.mean)}  → ${out.file}`)
        }
      }
    }).pipe(Effect.provide(chosen.layer), Effect.onError(() => removeCreatedDirs(plan))))
  })

const args = {
  program: Args.text({ name: "program" }).pipe(
    Args.withDescription("a .mil file, a .mlmodelc directory, or an .onnx model (imported in memory first)")
  ),
  weights: Options.text("weights").pipe(
    Options.withDescription("weight file for the program's BLOBFILE references (default: found beside the .mil)"),
    Options.optional
  ),
  input: Options.text("input").pipe(
    Options.withDescription("name=file.npy, name=random, or random for every input not given a file (repeatable; " +
      "default: random values for every input, listed in the output)"),
    Options.repeated
  ),
  output: Options.text("output").pipe(
    Options.withDescription(`directory for the output .npy files (default: ${DEFAULT_OUTPUT_DIR})`),
    Options.optional
  ),
  backend: CommonOptions.backend,
  numerics: CommonOptions.numerics,
  rules: CommonOptions.rules,
  json: CommonOptions.json,
  seed: Options.integer("seed").pipe(Options.withDescription("seed of the random inputs (default: 0)"), Options.withDefault(0)),
  ...importOptions
}

/** The `run` subcommand: typed failures and defects print one message and set the exit status of the table. */
export const command = Command.make("run", args, (o) =>
  runCommand(o).pipe(reported("run", o.json, { file: o.program, rules: o.rules }))
).pipe(Command.withDescription("Compile and evaluate a MIL program (or .mlmodelc, or .onnx) once, writing outputs as .npy"))
