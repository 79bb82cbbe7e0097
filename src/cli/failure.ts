/**
 * How every `ane` command ends: one exit status table, one way to print a failure (a short message on stderr, or one
 * JSON object on stdout with `--json`), and no stack trace, whatever went wrong.
 */
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { type Diagnostic, formatDiagnostic } from "../schema/Diagnostic.js"
import { isAneError } from "../schema/errors.js"

/** Exit statuses, the same for every command (listed in `ane --help`). */
export const ExitCode = {
  /** Done; `check` found no errors. */
  ok: 0,
  /** The program has errors, or failed to compile or evaluate. */
  failed: 1,
  /** Bad arguments, or a file that cannot be used (missing, not a regular file, too large, not writable). */
  usage: 2,
  /** The requested backend is not available (`--backend hardware` without an ANE). */
  unavailable: 3,
  /** A defect in `ane` itself. */
  internal: 70,
  /** Stopped by SIGINT or SIGTERM. */
  interrupted: 130
} as const

/** The exit status table as help text lines. */
export const exitCodeHelp: ReadonlyArray<string> = [
  `${ExitCode.ok}: success (check: no errors)`,
  `${ExitCode.failed}: the program has errors, or failed to compile or evaluate`,
  `${ExitCode.usage}: bad arguments, or a file that cannot be used (missing, not a regular file, too large, not writable)`,
  `${ExitCode.unavailable}: the requested backend is not available (try --backend simulator or auto)`,
  `${ExitCode.internal}: a defect in ane itself (please report it)`,
  `${ExitCode.interrupted}: interrupted (SIGINT or SIGTERM)`
]

/** A command that already said what went wrong and ends with `code`. */
export class CommandExit extends Data.TaggedError("CommandExit")<{ readonly code: number }> {}

/** Ops of the command's own argument and file checks: their failures are usage errors. */
const usageOps = /^(ane |npy\.)/

/** The exit status a failure maps to. */
export const exitCodeOf = (e: unknown): number => {
  if (e instanceof CommandExit) return e.code
  if (!isAneError(e)) return ExitCode.internal
  if (e._tag === "NoAneError") return ExitCode.unavailable
  if (e._tag === "InvalidArgumentError" && usageOps.test(e.op)) return ExitCode.usage
  return ExitCode.failed
}

/** What the message is about: the program's file name replaces the simulator's `<mil>` and hash ids. */
export interface FailureContext {
  /** Path of the program as the user gave it (diagnostics of in-memory MIL get it as their file). */
  readonly file?: string
  /** The `--rules` setting, so a rules refusal can say how to run anyway. */
  readonly rules?: "error" | "warn" | "off"
}

/** A diagnostic with the program's file where it had none. */
export const withFile = (d: Diagnostic, file: string | undefined): Diagnostic =>
  d.file === undefined && file !== undefined ? { ...d, file } as Diagnostic : d

/** One line saying how to run a program the ANE rules refuse. */
export const RULES_HINT = "hint: these are ANE rule findings; --rules warn (or off) runs it anyway on the simulator, " +
  "which computes what the program says, though the engine itself would likely refuse to compile it"

/** The message of a failure, as the CLI prints it. */
export const describe = (e: unknown, context: FailureContext = {}): string => {
  if (!isAneError(e)) {
    const first = e instanceof Error ? e.message.split("\n")[0]! : String(e)
    return `internal error: ${first}`
  }
  switch (e._tag) {
    case "NoAneError":
      return `no ANE hardware available: ${e.reason}; use --backend simulator (the CPU simulator) or --backend auto ` +
        "(the engine when present, else the simulator)"
    case "CompileError": {
      const errors = e.diagnostics.filter((d) => d.severity === "error").map((d) => withFile(d, context.file))
      const what = context.file ?? e.model ?? "the program"
      const native = e.domain !== undefined || e.code !== undefined ? ` (${e.domain ?? "native"} ${e.code ?? "?"})` : ""
      const head = `compile of ${what} failed${native}` + (e.hint ? `: ${e.hint}` : "")
      if (errors.length === 0) return head
      const shown = errors.slice(0, 5).map((d) => `  ${formatDiagnostic(d)}`)
      const more = errors.length > 5 ? [`  … ${errors.length - 5} more (ane check ${context.file ?? "<program>"} lists them)`] : []
      const rulesOnly = errors.every((d) => d.kind === "ane") && (context.rules ?? "error") === "error"
      return [`${head}: ${errors.length} error(s)`, ...shown, ...more, ...(rulesOnly ? [RULES_HINT] : [])].join("\n")
    }
    default:
      return e.message
  }
}

/** `command: message`, unless the message already names the command. */
export const withPrefix = (command: string, message: string): string =>
  message.startsWith(`${command}:`) ? message : `${command}: ${message}`

/**
 * Runs a command's work: a failure or a defect prints one message (stderr) or one JSON object (stdout, `--json`) and
 * ends as a {@link CommandExit} with the status of the table. Interruption passes through.
 */
export const reported = (command: string, json: boolean, context: FailureContext = {}) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, CommandExit, R> =>
  self.pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
      const failure = Cause.failureOption(cause)
      const error: unknown = failure._tag === "Some" ? failure.value : Cause.squash(cause)
      if (error instanceof CommandExit) return Effect.fail(error)
      const code = failure._tag === "Some" ? exitCodeOf(error) : ExitCode.internal
      const message = describe(failure._tag === "Some" ? error : new Error(String(Cause.squash(cause))), context)
      const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Defect"
      const diagnostics = isAneError(error) && error._tag === "CompileError"
        ? error.diagnostics.map((d) => formatDiagnostic(withFile(d, context.file)))
        : []
      const print = json
        ? Console.log(JSON.stringify({ ok: false, command, error: message, errorTag: tag, exitCode: code, diagnostics }))
        : Console.error(withPrefix(`ane ${command}`, message))
      return Effect.zipRight(print, Effect.fail(new CommandExit({ code })))
    })
  )
