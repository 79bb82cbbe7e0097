/**
 * The `ane` command as one Effect from argv to an exit status: parsing, the subcommands, usage errors, help text
 * without colour where colour is unwanted, and a last guard that turns any defect into one line.
 */
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { Command, helpText, parse, UsageError } from "./args.js"
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

/** The version `ane --version` prints. */
const VERSION = "0.1.0"

const footer = { title: "EXIT STATUS", lines: exitCodeHelp }

// Colour and cursor escapes (CSI sequences).
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g

/** Text without ANSI escapes. */
export const stripAnsi = (s: string): string => s.replace(ANSI, "")

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
): Effect.Effect<number> =>
  Effect.gen(function*() {
    const base = yield* Effect.console
    const color = options.color ?? defaultColor()
    const plain = (a: unknown) => typeof a === "string" && !color ? stripAnsi(a) : a
    const console: Console.Console = {
      ...base,
      log: (...args: ReadonlyArray<unknown>) => base.log(...args.map(plain)),
      error: (...args: ReadonlyArray<unknown>) => base.error(...args.map(plain))
    }
    const json = argv.includes("--json")
    const program = Effect.gen(function*() {
      const parsed = yield* parse(ane, argv.slice(2))
      switch (parsed._tag) {
        case "Help":
          return yield* Console.log(helpText("ane", ane, parsed.command, footer, { color, width: HELP_COLUMNS }))
        case "Version":
          return yield* Console.log(`ane ${VERSION}`)
        case "Run":
          return yield* parsed.run
      }
    })
    return yield* program.pipe(
      Effect.as(ExitCode.ok as number),
      Effect.catchAll((e): Effect.Effect<number> => {
        if (e instanceof CommandExit) return Effect.succeed(e.code)
        if (e instanceof UsageError) {
          const where = e.command === undefined ? "ane" : `ane ${e.command}`
          const hint = `${where} --help lists the arguments`
          return Effect.as(
            json
              ? Console.log(JSON.stringify({
                ok: false,
                ...(e.command !== undefined ? { command: e.command } : {}),
                error: e.message,
                errorTag: e._tag,
                exitCode: ExitCode.usage
              }))
              : Console.error(`${where}: ${e.message} (${hint})`),
            ExitCode.usage
          )
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
