/** The command line: how options and arguments are read, one-line usage errors, and help for every command. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { HELP_COLUMNS } from "../../src/cli/app.js"
import { Args, Command, Options, parse, UsageError } from "../../src/cli/args.js"
import { ExitCode } from "../../src/cli/failure.js"
import { inProcess } from "./harness.js"

const seen: Array<unknown> = []
const demo = Command.make("demo", {
  program: Args.text({ name: "program" }).pipe(Args.withDescription("a file")),
  mode: Options.choice("mode", ["fast", "slow"] as const).pipe(Options.withDefault("fast" as const)),
  count: Options.integer("count").pipe(Options.optional),
  tag: Options.text("tag").pipe(Options.repeated),
  json: Options.boolean("json")
}, (values) => Effect.sync(() => void seen.push(values)))
const root = Command.make("tool").pipe(Command.withSubcommands([demo]))

const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    seen.length = 0
    const parsed = yield* parse(root, args)
    if (parsed._tag !== "Run") return parsed._tag
    yield* parsed.run
    return seen[0]
  })

describe("parse", () => {
  it.effect("reads options before and after the argument, --name=value, defaults, None and repeated values in order", () =>
    Effect.gen(function*() {
      expect(yield* run(["demo", "--tag", "a", "p.mil", "--tag=b", "--json"])).toEqual({
        program: "p.mil", mode: "fast", count: Option.none(), tag: ["a", "b"], json: true
      })
      expect(yield* run(["demo", "p.mil", "--mode", "slow", "--count", "-3"])).toEqual({
        program: "p.mil", mode: "slow", count: Option.some(-3), tag: [], json: false
      })
      expect(yield* run([])).toBe("Help")
      expect(yield* run(["demo", "--help"])).toBe("Help")
      expect(yield* run(["--version"])).toBe("Version")
    }))

  it.effect.each([
    [["demo", "p", "--mode", "medium"], "--mode: expected one of fast, slow, got \"medium\""],
    [["demo", "p", "--count", "many"], "--count: expected an integer, got \"many\""],
    [["demo", "p", "--count", "1.5"], "--count: expected an integer, got \"1.5\""],
    [["demo", "p", "--count", "1", "--count", "2"], "--count is given 2 times"],
    [["demo", "p", "--colour"], "Unknown option '--colour'"],
    [["demo", "p", "--tag"], "--tag"],
    [["demo"], "missing <program>"],
    [["demo", "p", "q"], "unexpected argument \"q\""],
    [["demos", "p"], "unknown command \"demos\"; expected one of demo"]
  ] as const)("refuses %j: %s", ([args, message]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(run(args))
      expect(error).toBeInstanceOf(UsageError)
      expect((error as UsageError).message).toContain(message)
      expect((error as UsageError).message).not.toContain("\n")
    }))
})

describe("ane's command line", () => {
  it("a usage error is one line on stderr naming the command, exit 2; with --json one object on stdout", async () => {
    const text = await inProcess(["run", "examples/linear.mil", "--backend", "nowhere"])
    expect(text.code).toBe(ExitCode.usage)
    expect(text.stdout).toBe("")
    expect(text.stderr.trimEnd().split("\n")).toEqual([
      "ane run: --backend: expected one of auto, hardware, simulator, got \"nowhere\" (ane run --help lists the arguments)"
    ])
    const json = await inProcess(["probe", "--frequency", "2", "--json"])
    expect(json.code).toBe(ExitCode.usage)
    expect(json.stderr).toBe("")
    expect(JSON.parse(json.stdout)).toEqual({
      ok: false, command: "probe", error: "Unknown option '--frequency'", errorTag: "UsageError", exitCode: ExitCode.usage
    })
  })

  it("every command has help: its options with their defaults, within 100 columns, bold headings only in colour", async () => {
    const top = await inProcess(["--help"], { color: false })
    const names = [...top.stdout.split("COMMANDS\n")[1]!.matchAll(/^ {2}(\w+) /gm)].map((m) => m[1]!)
    expect(names).toEqual(["probe", "check", "run", "bench", "inspect", "doctor", "import"])
    for (const name of names) {
      const r = await inProcess([name, "--help"], { color: false })
      expect(r.code).toBe(ExitCode.ok)
      expect(r.stdout).toContain(`$ ane ${name}`)
      expect(r.stdout).toContain("--json")
      expect(r.stdout).toContain("EXIT STATUS")
      expect(r.stdout).not.toContain("\u001b[")
      for (const line of r.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(HELP_COLUMNS)
    }
    const bench = await inProcess(["bench", "--help"], { color: false })
    expect(bench.stdout).toMatch(/--iterations <integer> +timed evaluations \(default: 200\)/)
    expect(bench.stdout).toMatch(/--mode sync\|async\|stream +eval, evalAsync/)
    const colored = await inProcess(["run", "--help"], { color: true })
    expect(colored.stdout).toContain("\u001b[1mOPTIONS\u001b[0m")
  })

  it("--version prints the version", async () => {
    const r = await inProcess(["--version"])
    expect(r.code).toBe(ExitCode.ok)
    expect(r.stdout.trim()).toBe("ane 0.1.0")
  })
})
