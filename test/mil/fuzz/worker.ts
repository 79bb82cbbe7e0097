/**
 * Runs generated programs `start … start + count - 1` (see programs.ts) through analyze (parse, check, ANE rules),
 * inspect, and a simulator compile + eval, and prints one JSON summary line. Every result must be typed: a value,
 * diagnostics, or a typed failure. Anything thrown, or a defect, is counted and reported; the exit code is 1 then.
 *
 * Usage: node --max-old-space-size=512 --import tsx test/mil/fuzz/worker.ts <start> <count>
 */
import { Cause, Effect, Exit, ManagedRuntime } from "effect"
import { analyze } from "../../../src/mil/analyze.js"
import { inspect } from "../../../src/mil/inspect.js"
import { CompileOptions } from "../../../src/schema/CompileOptions.js"
import { Backend } from "../../../src/services/Backend.js"
import * as Sim from "../../../src/sim/SimBackend.js"
import { fuzzProgram } from "./programs.js"

/** What the parent reads from stdout. */
export interface FuzzSummary {
  readonly count: number
  readonly parsed: number
  readonly compiled: number
  readonly typed: number
  readonly thrown: number
  readonly failures: ReadonlyArray<{ readonly index: number; readonly stage: string; readonly error: string }>
}

const start = Number(process.argv[2] ?? 0)
const count = Number(process.argv[3] ?? 100)

// Tensors above 16 MiB are refused (typed) well before the 512 MB heap is at risk.
const runtime = ManagedRuntime.make(Sim.layer({
  latency: "off", rules: "warn", compileBudget: Number.MAX_SAFE_INTEGER, maxTensorBytes: 16 * 2 ** 20, threads: 1
}))

const compileAndEval = (text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const be = yield* Backend
    const m = yield* be.compile(CompileOptions.mil({ text }))
    yield* m.request.eval
  }))

const main = async (): Promise<FuzzSummary> => {
  let parsed = 0, compiled = 0, typed = 0, thrown = 0
  const failures: Array<{ index: number; stage: string; error: string }> = []
  const record = (index: number, stage: string, e: unknown) => {
    thrown++
    if (failures.length < 20) failures.push({ index, stage, error: e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e) })
  }
  for (let i = start; i < start + count; i++) {
    const { text } = fuzzProgram(i)
    let stage = "analyze"
    try {
      const a = analyze(text, { rules: "error" })
      if (a.program !== null) {
        parsed++
        stage = "inspect"
        inspect(a.program, a.check ?? undefined)
      }
    } catch (e) {
      record(i, stage, e)
      continue
    }
    const exit = await runtime.runPromiseExit(compileAndEval(text))
    if (Exit.isSuccess(exit)) compiled++
    else {
      const failure = Cause.failureOption(exit.cause)
      const tagged = failure._tag === "Some" && typeof (failure.value as { _tag?: unknown })._tag === "string"
      if (tagged && !Cause.isDie(exit.cause)) typed++
      else record(i, "simulator", Cause.pretty(exit.cause))
    }
  }
  await runtime.dispose()
  return { count, parsed, compiled, typed, thrown, failures }
}

main().then(
  (summary) => {
    process.stdout.write(JSON.stringify(summary) + "\n")
    process.exitCode = summary.thrown === 0 ? 0 : 1
  },
  (e) => {
    process.stderr.write(`fuzz worker failed: ${String(e)}\n`)
    process.exitCode = 2
  }
)
