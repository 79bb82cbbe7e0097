/** `ane inspect <file.mil | dir.mlmodelc> [--json]`: functions, I/O, op histogram, weights, estimated FLOPs. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { formatInspectReport, inspect } from "../mil/inspect.js"
import { parse } from "../mil/parser.js"
import { loadMil } from "./source.js"

/** The `inspect` subcommand. */
export const command = Command.make(
  "inspect",
  {
    path: Args.text({ name: "path" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object instead of text"))
  },
  ({ json, path }) =>
    loadMil("ane inspect", path).pipe(
      Effect.flatMap(({ file, text }) => {
        const parsed = parse(text, { file })
        if (parsed.program === null) {
          process.exitCode = 1
          return json
            ? Console.log(JSON.stringify({ ok: false, diagnostics: parsed.diagnostics.map((d) => ({ ...d })) }))
            : Console.error(parsed.diagnostics.map(formatDiagnostic).join("\n"))
        }
        const report = inspect(parsed.program)
        return Console.log(json ? JSON.stringify({ ok: true, file, ...report }) : `${file}\n${formatInspectReport(report)}`)
      }),
      Effect.catchAll((e) => {
        process.exitCode = 2
        return json
          ? Console.log(JSON.stringify({ ok: false, error: e.message }))
          : Console.error(e.message)
      })
    )
).pipe(Command.withDescription("Summarise a MIL program: I/O, ops, weights and estimated FLOPs"))
