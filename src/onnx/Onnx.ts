/**
 * `Onnx`: import an ONNX model as a MIL program plus one weight blob, for direct compile (`compileOptions`) or as a
 * package folder (`model.mil`, `weights/weight.bin`, `metadata.json`), with a rule report that names, for every ANE
 * rule finding, the ONNX node it came from.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { parse } from "../mil/parser.js"
import { type Chip, validate } from "../mil/validate.js"
import { CompileOptions, type MilCompileOptions } from "../schema/CompileOptions.js"
import type { Diagnostic } from "../schema/Diagnostic.js"
import { resolveInside, writeFileNoFollow } from "../backend/weightPath.js"
import { CompileError, ImportError } from "../schema/errors.js"
import { convert, type ConvertOptions, type ImportMetadata, type IoSpec } from "./convert.js"
import { supportedOnnxOps } from "./ops/index.js"
import { decodeModel, externalReader, failer, MAX_READ_BYTES, readRegularFileSync } from "./read.js"

export type { ConvertOptions as ImportOptions, ImportMetadata, IoSpec }
export { supportedOnnxOps }

/** An imported model: what `CompileOptions.mil` takes, plus where every MIL op came from. */
export interface Imported {
  /** The MIL program text. */
  readonly text: string
  /** Its one weight file (`@model_path/weights/weight.bin`), absent when the model has no large constants. */
  readonly weights: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  readonly metadata: ImportMetadata
  /** MIL op (result) name → ONNX node name. */
  readonly nodeOrigins: Readonly<Record<string, string>>
  /** Ready for `ane.compile`. */
  readonly compileOptions: MilCompileOptions
}

/** One ANE rule finding, traced to its ONNX node. */
export interface RuleFinding {
  readonly diagnostic: Diagnostic
  /** The MIL op at the finding's line, when there is one. */
  readonly milOp?: string
  /** The ONNX node that op came from. */
  readonly onnxNode?: string
}

/** Largest ONNX file read (protobuf's own 2 GiB limit). */
export const MAX_MODEL_BYTES = MAX_READ_BYTES

const importWith = (bytes: Uint8Array, file: string, options: ConvertOptions, external: ReturnType<typeof externalReader> | undefined) => {
  const fail = failer(file)
  const model = decodeModel(bytes, fail)
  if (model instanceof ImportError) return model
  const converted = convert(model, file, fail, external, options)
  if (converted instanceof ImportError) return converted
  const { built, metadata, nodeOrigins } = converted
  return {
    text: built.text,
    weights: built.weights,
    metadata,
    nodeOrigins,
    compileOptions: CompileOptions.mil({ text: built.text, weights: built.weights })
  } satisfies Imported
}

/** Imports ONNX bytes held in memory (external data is refused: there is no folder to read it from). */
export const importBytes = (bytes: Uint8Array, options: ConvertOptions = {}): Effect.Effect<Imported, ImportError> =>
  Effect.suspend(() => {
    const r = importWith(bytes, "<memory>", options, undefined)
    return r instanceof ImportError ? Effect.fail(r) : Effect.succeed(r)
  })

/**
 * Imports an ONNX file. External-data tensors are read from files inside the model's folder only. Symbolic input
 * dims need `shapes`; inputs that select a branch (Silero's `sr`) can be fixed with `inputValues`.
 */
export const importFile = Effect.fn("Onnx.importFile")(function*(file: string, options: ConvertOptions = {}) {
  const fail = failer(file)
  if (typeof file !== "string" || file.length === 0 || file.includes("\0")) {
    return yield* Effect.fail(fail("the model path must be a non-empty string without NUL characters"))
  }
  const bytes = readRegularFileSync(file, MAX_MODEL_BYTES)
  if (typeof bytes === "string") return yield* Effect.fail(fail(`cannot read the file: ${bytes}`))
  const external = externalReader(file)
  const r = importWith(bytes, file, options, external)
  return r instanceof ImportError ? yield* Effect.fail(r) : r
})

/**
 * The name a compiled imported model gives the ONNX input or output `onnxName` (its MIL name, which `Model`'s
 * named I/O takes): the ONNX name itself when it is a valid MIL identifier, else its sanitised form. Undefined when
 * the model has no such program input or output (an input fixed with `inputValues` has left the program). A name
 * that is both an input and an output resolves to the input unless `side` says otherwise.
 */
export const milName = (metadata: ImportMetadata, onnxName: string, side?: "input" | "output"): string | undefined => {
  const find = (list: ReadonlyArray<IoSpec>) => list.find((s) => s.onnxName === onnxName)?.milName
  return side === "output" ? find(metadata.outputs) : side === "input" ? find(metadata.inputs) : find(metadata.inputs) ?? find(metadata.outputs)
}

/** The ANE rule findings of an imported program (for `chip`, or every chip's strictest limits), each traced to its ONNX node. */
export const ruleReport = (imported: Imported, options: { readonly chip?: Chip } = {}): ReadonlyArray<RuleFinding> => {
  const parsed = parse(imported.text)
  if (parsed.program === null) return parsed.diagnostics.map((diagnostic) => ({ diagnostic }))
  const lines = imported.text.split("\n")
  return validate(parsed.program, options.chip !== undefined ? { chip: options.chip } : {}).map((diagnostic) => {
    const m = /^\s*[^=]*?\s([A-Za-z_][A-Za-z0-9_]*)(?:,[^=]*)?\s=/.exec(lines[diagnostic.line - 1] ?? "")
    const milOp = m?.[1]
    const onnxNode = milOp !== undefined ? imported.nodeOrigins[milOp] ?? originOfOutput(imported, milOp) : undefined
    return { diagnostic, ...(milOp !== undefined ? { milOp } : {}), ...(onnxNode !== undefined ? { onnxNode } : {}) }
  })
}

const originOfOutput = (imported: Imported, milName: string): string | undefined =>
  imported.metadata.outputs.find((o) => o.milName === milName)?.onnxName

/** One line per finding: `severity code at MIL op (ONNX node): message`. */
export const formatRuleReport = (findings: ReadonlyArray<RuleFinding>): string =>
  findings.map((f) =>
    `${f.diagnostic.severity} ${f.diagnostic.code} line ${f.diagnostic.line}` +
    (f.milOp ? ` ${f.milOp}` : "") + (f.onnxNode ? ` (ONNX node "${f.onnxNode}")` : "") + `: ${f.diagnostic.message}`
  ).join("\n")

/** Writes a package folder: `model.mil`, `weights/weight.bin`, `metadata.json` (created if missing). */
export const writePackage = Effect.fn("Onnx.writePackage")(function*(imported: Imported, dir: string) {
  yield* Effect.try({
    try: () => {
      fs.mkdirSync(path.join(dir, "weights"), { recursive: true })
      // No file is written through a symbolic link planted where it should be, and no weight path leaves the folder.
      writeFileNoFollow(path.join(dir, "model.mil"), new TextEncoder().encode(imported.text))
      for (const w of imported.weights) {
        const target = resolveInside(dir, w.path, { op: "Onnx.writePackage" })
        if (target instanceof CompileError) throw new Error(target.diagnostics[0]?.message ?? `weight path ${w.path} leaves the package`)
        writeFileNoFollow(target, w.bytes)
      }
      writeFileNoFollow(path.join(dir, "metadata.json"), new TextEncoder().encode(JSON.stringify(imported.metadata, null, 2) + "\n"))
    },
    catch: (cause) =>
      new ImportError({
        op: "Onnx.writePackage", file: imported.metadata.source,
        reason: `cannot write the package to ${dir} (${cause instanceof Error ? cause.message : String(cause)})`, cause
      })
  })
})
