/**
 * `ane inspect <file.mil | dir.mlmodelc | model.onnx> [--json]`: functions, I/O, op histogram, weights, estimated FLOPs.
 * An ONNX model is imported in memory first, and its inputs and outputs are listed under their ONNX names too.
 */
import { Args, Command } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { formatInspectReport, inspect } from "../mil/inspect.js"
import { parse } from "../mil/parser.js"
import type * as Onnx from "../onnx/Onnx.js"
import { CommandExit, ExitCode, reported } from "./failure.js"
import { type ImportFlags, importModel, importOptions, isOnnxPath } from "./import.js"
import * as CommonOptions from "./options.js"
import { loadMil } from "./source.js"

const ioJson = (io: Onnx.IoSpec) => ({ name: io.onnxName, milName: io.milName, dtype: io.dtype, shape: io.shape })

const ioText = (io: Onnx.IoSpec) =>
  `${io.onnxName} [${io.shape.join(", ")}] ${io.dtype}` + (io.milName !== io.onnxName ? ` (MIL ${io.milName})` : "")

/** An `.onnx` model: imported, then the imported program summarised, with the model's I/O under their ONNX names. */
const inspectOnnx = (path: string, flags: ImportFlags, json: boolean) =>
  Effect.gen(function*() {
    const imported = yield* importModel("ane inspect", path, flags)
    const parsed = parse(imported.text, { file: `${path} (imported MIL)` })
    // The importer's own output: a parse failure is a defect of the importer, not of the model.
    if (parsed.program === null) return yield* Effect.die(new Error(parsed.diagnostics.map(formatDiagnostic).join("; ")))
    const report = inspect(parsed.program)
    const { metadata } = imported
    if (json) {
      return yield* Console.log(JSON.stringify({
        ok: true, file: path, precision: metadata.precision, inputs: metadata.inputs.map(ioJson),
        outputs: metadata.outputs.map(ioJson), fixedInputs: metadata.fixedInputs, ...report
      }))
    }
    const fixed = Object.entries(metadata.fixedInputs).map(([k, v]) => `${k} = ${v.join(", ")}`)
    yield* Console.log([
      `${path} (imported, ${metadata.precision})`,
      `  inputs:  ${metadata.inputs.map(ioText).join(", ")}` + (fixed.length > 0 ? `; fixed: ${fixed.join(", ")}` : ""),
      `  outputs: ${metadata.outputs.map(ioText).join(", ")}`,
      formatInspectReport(report)
    ].join("\n"))
  })

/** The `inspect` subcommand. */
export const command = Command.make(
  "inspect",
  {
    path: Args.text({ name: "path" }).pipe(
      Args.withDescription("a .mil file, a .mlmodelc directory, or an .onnx model (imported in memory first)")
    ),
    json: CommonOptions.json,
    ...importOptions
  },
  ({ json, path, ...flags }) =>
    Effect.gen(function*() {
      if (isOnnxPath(path)) return yield* inspectOnnx(path, flags, json)
      // Import options are refused on a MIL program or package rather than ignored.
      const given = flags.shape.length > 0 ? "--shape" : flags.inputValue.length > 0 ? "--input-value" : flags.fp32 ? "--fp32" : undefined
      if (given !== undefined) {
        return yield* Effect.fail(new InvalidArgumentError({
          op: "ane inspect", argument: given, expected: "an .onnx program", actual: path, hint: `${given} applies to ONNX imports only`
        }))
      }
      const { file, text } = yield* loadMil("ane inspect", path)
      const parsed = parse(text, { file })
      if (parsed.program === null) {
        yield* json
          ? Console.log(JSON.stringify({ ok: false, diagnostics: parsed.diagnostics.map((d) => ({ ...d })) }))
          : Console.error(parsed.diagnostics.map(formatDiagnostic).join("\n"))
        return yield* Effect.fail(new CommandExit({ code: ExitCode.failed }))
      }
      const report = inspect(parsed.program)
      yield* Console.log(json ? JSON.stringify({ ok: true, file, ...report }) : `${file}\n${formatInspectReport(report)}`)
    }).pipe(reported("inspect", json, { file: path }))
).pipe(Command.withDescription("Summarise a MIL program (or an .onnx model, imported first): I/O, ops, weights and estimated FLOPs"))
