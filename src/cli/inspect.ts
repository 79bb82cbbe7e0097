/** `ane inspect <file.mil | dir.mlmodelc> [--json]`: functions, I/O, op histogram, weights, estimated FLOPs. */
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { formatInspectReport, inspect } from "../mil/inspect.js"
import { parse } from "../mil/parser.js"
import { CommandExit, ExitCode, reported } from "./failure.js"
import { loadMil } from "./source.js"

/** The `inspect` subcommand. */
export const command = Command.make(
  "inspect",
  {
    path: Args.text({ name: "path" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object instead of text (default: off)"))
  },
  ({ json, path }) =>
    Effect.gen(function*() {
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
).pipe(Command.withDescription("Summarise a MIL program: I/O, ops, weights and estimated FLOPs"))
