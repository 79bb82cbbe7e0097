/**
 * The `ane` command as one Effect from argv to an exit status: parsing, the subcommands, usage errors, help text
 * without colour where colour is unwanted, and a last guard that turns any defect into one line.
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { command as bench } from "./bench.js"
import { command as check } from "./check.js"
import { command as doctor } from "./doctor.js"
import { CommandExit, ExitCode, exitCodeHelp } from "./failure.js"
import { command as importOnnx } from "./import.js"
import { command as inspect } from "./inspect.js"
import { command as probe } from "./probe.js"
import { command as run } from "./run.js"

/** Widest help line. */
export const HELP_COLUMNS = 100

const ane = Command.make("ane").pipe(
  Command.withDescription("Compile, check, inspect and run MIL programs on the Apple Neural Engine or its CPU simulator, " +
    "and import ONNX models as MIL"),
  Command.withSubcommands([probe, check, run, bench, inspect, doctor, importOnnx])
)

const cli = Command.run(ane, {
  name: "ane",
  version: "0.1.0",
  footer: HelpDoc.blocks([HelpDoc.h1("EXIT STATUS"), ...exitCodeHelp.map((line) => HelpDoc.p(line))])
})

// Colour and cursor escapes (CSI sequences).
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g

/** Text without ANSI escapes. */
export const stripAnsi = (s: string): string => s.replace(ANSI, "")

/** One line broken at spaces to `width` columns; continuation lines are indented by `more`. */
const wrapLine = (line: string, width: number, more: string): Array<string> => {
  if (stripAnsi(line).length <= width) return [line]
  const indent = /^\s*/.exec(line)![0]
  const out: Array<string> = []
  let current = ""
  for (const word of line.trimStart().split(/ +/)) {
    const candidate = current === "" ? (out.length === 0 ? indent : more) + word : `${current} ${word}`
    if (stripAnsi(candidate).length > width && current.trim() !== "") {
      out.push(current)
      current = more + word
    } else current = candidate
  }
  out.push(current)
  return out
}

/**
 * Help text fitted to `width` columns: long lines wrap at spaces, and a row of the commands table (`- usage  text`,
 * padded to the widest usage) becomes the usage, then its description indented below it.
 */
export const wrapLines = (text: string, width: number): string =>
  text.split("\n").flatMap((raw) => {
    const line = raw.trimEnd()
    const indent = /^\s*/.exec(line)![0]
    const row = /^(\s*- \S.*?\S)\s{2,}(\S.*)$/.exec(line)
    if (row !== null && stripAnsi(line).length > width) {
      return [...wrapLine(row[1]!, width, `${indent}    `), ...wrapLine(`${indent}    ${row[2]!}`, width, `${indent}    `)]
    }
    return wrapLine(line, width, indent + (line.trimStart().startsWith("$ ") ? "    " : ""))
  }).join("\n")

/** Options of {@link runCli}: whether to colour, and nothing else yet. */
export interface RunCliOptions {
  /** ANSI colour in help and messages (default: stdout is a TTY and `NO_COLOR` is unset or empty). */
  readonly color?: boolean
}

/** Colour only on a terminal, and not when `NO_COLOR` is set to anything but the empty string (no-color.org). */
export const colorWanted = (isTTY: boolean, env: Readonly<Record<string, string | undefined>>): boolean =>
  isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === "")

const defaultColor = (): boolean => colorWanted(process.stdout.isTTY === true, process.env)

/**
 * Runs `ane` on `argv` (`[node, script, ...args]`) and succeeds with the exit status; never fails. Output goes
 * through the current `Console`, so a test can capture it.
 */
export const runCli = (
  argv: ReadonlyArray<string>,
  options: RunCliOptions = {}
): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Effect.gen(function*() {
    const base = yield* Effect.console
    const color = options.color ?? defaultColor()
    // Help is printed for --help, and for a bare `ane`.
    const help = argv.length <= 2 || argv.slice(2).some((a) => a === "--help" || a === "-h")
    const fix = (stream: "out" | "err") => (a: unknown) => {
      if (typeof a !== "string") return a
      const plain = color ? a : stripAnsi(a)
      // @effect/cli ends its messages with a blank line; one message is one line.
      return stream === "err" ? plain.trimEnd() : help ? wrapLines(plain, HELP_COLUMNS) : plain
    }
    const console: Console.Console = {
      ...base,
      log: (...args: ReadonlyArray<unknown>) => base.log(...args.map(fix("out"))),
      error: (...args: ReadonlyArray<unknown>) => base.error(...args.map(fix("err")))
    }
    const json = argv.includes("--json")
    return yield* cli(argv).pipe(
      Effect.as(ExitCode.ok as number),
      Effect.catchAll((e): Effect.Effect<number> => {
        if (e instanceof CommandExit) return Effect.succeed(e.code)
        if (ValidationError.isValidationError(e)) {
          // @effect/cli has printed the message; with --json, stdout still gets its one object.
          if (!json) return Effect.succeed(ExitCode.usage)
          const doc = (e as { readonly error?: HelpDoc.HelpDoc }).error
          const text = doc !== undefined ? stripAnsi(HelpDoc.toAnsiText(doc)).trim() : e._tag
          return Effect.as(Console.log(JSON.stringify({ ok: false, error: text, errorTag: e._tag, exitCode: ExitCode.usage })),
            ExitCode.usage)
        }
        return Effect.as(Console.error(`ane: internal error: ${String(e).split("\n")[0]}`), ExitCode.internal)
      }),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.succeed(ExitCode.interrupted)
          : Effect.as(
            Console.error(`ane: internal error: ${String(Cause.squash(cause)).split("\n")[0]}`),
            ExitCode.internal as number
          )
      ),
      Effect.withConsole(console)
    )
  })
