/** Runs the `ane` command in-process (through `runCli`, output captured) or as a child process with a time limit. */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect } from "effect"
import { runCli } from "../../src/cli/app.js"
import { ProgressOutput } from "../../src/cli/progress.js"

/** The repository root (the CLI's working directory in these tests). */
export const root = fileURLToPath(new URL("../..", import.meta.url))

/** What one run of the command produced. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Options of {@link inProcess}: a pretend TTY for progress output. */
export interface InProcessOptions {
  readonly tty?: boolean
  readonly color?: boolean
}

/** `ane ...args` through the CLI's Effect entry, stdout/stderr/progress captured. */
export const inProcess = (args: ReadonlyArray<string>, options: InProcessOptions = {}): Promise<CliResult> =>
  Effect.gen(function*() {
    const out: Array<string> = [], err: Array<string> = []
    const base = yield* Effect.console
    const text = (xs: ReadonlyArray<unknown>) => xs.map(String).join(" ")
    const console: Console.Console = {
      ...base,
      log: (...xs: ReadonlyArray<unknown>) => Effect.sync(() => void out.push(text(xs))),
      error: (...xs: ReadonlyArray<unknown>) => Effect.sync(() => void err.push(text(xs)))
    }
    const t0 = performance.now()
    const code = yield* runCli(["node", "ane", ...args], { color: options.color ?? false }).pipe(
      Effect.withConsole(console),
      Effect.provideService(ProgressOutput, {
        isTTY: options.tty ?? false,
        write: (s) => void err.push(s)
      })
    )
    const lines = (xs: Array<string>) => xs.map((s) => `${s}\n`).join("")
    return { code, stdout: lines(out), stderr: lines(err), ms: performance.now() - t0 }
  }).pipe(Effect.runPromise)

/** `node bin/ane.js ...args` as a child process, killed after `limitMs` (then `code` is null). */
export const spawned = (args: ReadonlyArray<string>, limitMs = 30_000, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<CliResult>((done) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [join(root, "bin", "ane.js"), ...args], { cwd: root, env })
    let stdout = "", stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    const timer = setTimeout(() => child.kill("SIGKILL"), limitMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr, ms: performance.now() - t0 })
    })
  })

/** A stack frame line, or the runtime's default error report. */
export const STACK = /\n\s+at |ERROR \(#\d+\)|^\s+at /m
