/**
 * The CLI explains itself: file names in diagnostics, a way out of a rules refusal, blob checks in `check`, one JSON
 * object on failure for every command, the same exit statuses everywhere, readable help, honest inputs and progress.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { colorWanted, HELP_COLUMNS } from "../../src/cli/app.js"
import { wrap } from "../../src/cli/args.js"
import { ExitCode, RULES_HINT } from "../../src/cli/failure.js"
import { inProcess, spawned, STACK } from "./harness.js"

const dir = mkdtempSync(join(tmpdir(), "ane-explain-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const program = (inputs: string, body: string, outputs = "y") =>
  `program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n  func main<ios18>(${inputs}) {\n${body}\n  } -> (${outputs});\n}\n`

const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

// Two inputs of different allocation sizes: ANE004 refuses it, the simulator can still run it.
const refused = write("refused.mil", program("tensor<fp16, [1, 4, 1, 32]> a, tensor<fp16, [1, 8, 1, 32]> b",
  "    tensor<fp16, [1, 4, 1, 32]> y = relu(x = a)[name = string(\"y\")];"))
// Line 5, column 36: an undefined name.
const broken = write("syntax.mil", program("tensor<fp16, [1, 4, 1, 32]> x",
  "    tensor<fp16, [1, 4, 1, 32]> y = relu(x = nope)[name = string(\"y\")];"))
const linear = "examples/linear.mil"

describe("diagnostics name the program's file", () => {
  it("run: a rules refusal lists file:line:col and says in one line how to run anyway", async () => {
    const r = await inProcess(["run", refused, "--backend", "simulator", "--output", join(dir, "o")])
    expect(r.code).toBe(ExitCode.failed)
    expect(r.stderr).toMatch(new RegExp(`refused\\.mil:\\d+:\\d+: error ANE004`))
    expect(r.stderr).not.toContain("<mil>")
    expect(r.stderr.split("\n")).toContain(RULES_HINT)
    expect(RULES_HINT).toContain("--rules warn")
    expect(r.stderr).not.toMatch(STACK)
    const warned = await inProcess(["run", refused, "--backend", "simulator", "--rules", "warn", "--output", join(dir, "o")])
    expect(warned.code).toBe(ExitCode.ok)
    expect(warned.stderr).toMatch(/refused\.mil:\d+:\d+: warning ANE004/)
    const bench = await inProcess(["bench", refused, "--backend", "simulator", "--rules", "warn", "--iterations", "2"])
    expect(bench.code).toBe(ExitCode.ok)
    expect(bench.stderr).toMatch(/refused\.mil:\d+:\d+: warning ANE004/)
  })

  it("run and bench: a type error keeps the file name, and bench does not double its prefix", async () => {
    const run = await inProcess(["run", broken, "--backend", "simulator"])
    expect(run.code).toBe(ExitCode.failed)
    expect(run.stderr).toContain(`${broken}:5:`)
    expect(run.stderr).not.toContain("<mil>")
    expect(run.stderr).not.toContain(RULES_HINT)
    const bench = await inProcess(["bench", broken, "--backend", "simulator"])
    expect(bench.code).toBe(ExitCode.failed)
    expect(bench.stderr).toContain(`${broken}:5:`)
    expect(bench.stderr).toMatch(/^ane bench: compile of /)
    const missing = await inProcess(["bench", join(dir, "none.mil")])
    expect(missing.stderr).toMatch(/^ane bench: invalid program/)
    expect(missing.stderr).not.toContain("ane run")
  })
})

describe("ane check runs the blob checks", () => {
  it("a package with an intact weight file passes; truncated or missing fails with exit 1", async () => {
    const pkg = join(dir, "gated.mlmodelc")
    cpSync("examples/gated_conv.mlmodelc", pkg, { recursive: true })
    expect((await inProcess(["check", pkg])).code).toBe(ExitCode.ok)
    const weights = join(pkg, "weights", "weight.bin")
    const bytes = readFileSync(weights)
    writeFileSync(weights, bytes.subarray(0, bytes.length - 100))
    const truncated = await inProcess(["check", pkg, "--json"])
    expect(truncated.code).toBe(ExitCode.failed)
    const out = JSON.parse(truncated.stdout) as { ok: boolean; diagnostics: Array<{ code: string }> }
    expect(out.ok).toBe(false)
    expect(out.diagnostics.map((d) => d.code)).toContain("blob-mismatch")
    rmSync(weights)
    const missing = await inProcess(["check", pkg])
    expect(missing.code).toBe(ExitCode.failed)
    expect(missing.stdout).toContain("blob-missing-file")
    expect(missing.stdout).toContain(weights)
  })

  it("a loose .mil without its weights fails; with --weights it passes", async () => {
    const mil = join(dir, "alone.mil")
    cpSync(linear, mil)
    const r = await inProcess(["check", mil])
    expect(r.code).toBe(ExitCode.failed)
    expect(r.stdout).toMatch(/alone\.mil:\d+:\d+: error blob-missing-file/)
    const ok = await inProcess(["check", mil, "--weights", "examples/linear/weights/weight.bin"])
    expect(ok.stdout).toContain("0 error(s)")
    expect(ok.code).toBe(ExitCode.ok)
  })
})

describe("ane check: weight paths that leave the model", () => {
  const outside = (path: string) => program("tensor<fp16, [1, 4, 1, 32]> x",
    `    tensor<fp16, [1, 4, 1, 1]> s = const()[name = string("s"), val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = string("${path}"), offset = uint64(64)))];
    tensor<fp16, [1, 4, 1, 32]> y = mul(x = x, y = s)[name = string("y")];`)

  it("a loose .mil and a package naming @model_path/../…: a positioned finding, exit 1", async () => {
    const mil = write("escape.mil", outside("@model_path/../secret.bin"))
    const pkg = join(dir, "escape.mlmodelc")
    cpSync("examples/gated_conv.mlmodelc", pkg, { recursive: true })
    writeFileSync(join(pkg, "model.mil"), outside("@model_path/../secret.bin"))
    for (const target of [mil, pkg]) {
      const r = await inProcess(["check", target, "--json"])
      expect(r.code, r.stdout + r.stderr).toBe(ExitCode.failed)
      const out = JSON.parse(r.stdout) as { ok: boolean; diagnostics: Array<{ code: string; line: number }> }
      expect(out.ok).toBe(false)
      expect(out.diagnostics.find((d) => d.code === "weight-path-outside-model")).toMatchObject({ line: 5 })
    }
  })
})

describe("--json on failure: one JSON object on stdout, the exit status of the table", () => {
  const cases: ReadonlyArray<[string, ReadonlyArray<string>, number]> = [
    ["run, a compile error", ["run", broken, "--backend", "simulator"], ExitCode.failed],
    ["run, a missing input file", ["run", linear, "--backend", "simulator", "--input", "x=/no/such.npy"], ExitCode.usage],
    ["bench, no hardware", ["bench", linear, "--backend", "hardware"], ExitCode.unavailable],
    ["bench, a compile error", ["bench", broken, "--backend", "simulator"], ExitCode.failed],
    ["check, a missing file", ["check", join(dir, "none.mil")], ExitCode.usage],
    ["check, a type error", ["check", broken], ExitCode.failed],
    ["inspect, a missing file", ["inspect", join(dir, "none.mil")], ExitCode.usage],
    ["probe, no hardware", ["probe", "--backend", "hardware"], ExitCode.unavailable],
    ["a usage error", ["run", linear, "--seed", "many"], ExitCode.usage]
  ]
  for (const [name, args, code] of cases) {
    it(name, async () => {
      const r = await inProcess([...args, "--json"])
      expect(r.code, r.stderr).toBe(code)
      expect(r.stdout.trimEnd().split("\n")).toHaveLength(1)
      const out = JSON.parse(r.stdout) as { ok: boolean; exitCode?: number }
      expect(out.ok).toBe(false)
      if (out.exitCode !== undefined) expect(out.exitCode).toBe(code)
      expect(r.stdout + r.stderr).not.toMatch(STACK)
    })
  }
})

describe("ane run inputs", () => {
  it("bare --input random fills every input and the output says which inputs were random", async () => {
    const text = await inProcess(["run", linear, "--backend", "simulator", "--input", "random", "--seed", "7",
      "--output", join(dir, "r1")])
    expect(text.code, text.stderr).toBe(ExitCode.ok)
    expect(text.stdout).toContain("x [1, 64, 1, 384] ← random values in [-1, 1) (seed 7)")
    const json = await inProcess(["run", linear, "--backend", "simulator", "--json", "--output", join(dir, "r2")])
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, randomInputs: ["x"], seed: 0 })
  })

  it("an input named twice and --depth without --mode stream are refused with one line", async () => {
    const twice = await inProcess(["run", linear, "--backend", "simulator", "--input", "x=random", "--input", "x=a.npy"])
    expect(twice.code).toBe(ExitCode.usage)
    expect(twice.stderr.trimEnd()).toBe("ane run: invalid --input: expected each input named once, got x twice (random and a.npy)")
    const depth = await inProcess(["bench", linear, "--backend", "simulator", "--depth", "3"])
    expect(depth.code).toBe(ExitCode.usage)
    expect(depth.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(depth.stderr).toContain("--mode stream")
  })

  it("the modelled engine time includes the chip's dispatch floor", async () => {
    const r = await inProcess(["run", linear, "--backend", "simulator", "--output", join(dir, "r3")])
    const us = Number(/engine ([0-9.]+) µs, modelled/.exec(r.stdout)?.[1])
    // m4: 95 µs floor, plus ~3.1 MFLOP over 10.93 TFLOP/s.
    expect(us).toBeGreaterThan(95)
    expect(us).toBeLessThan(100)
  })
})

describe("help and progress", () => {
  it("help without colour has no ANSI escapes, fits 100 columns, shows defaults and the exit statuses", async () => {
    for (const args of [[], ["--help"], ["run", "--help"], ["bench", "--help"], ["check", "--help"]]) {
      const r = await inProcess(args, { color: false })
      expect(r.code).toBe(ExitCode.ok)
      expect(r.stdout).not.toContain("\u001b[")
      for (const line of r.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(HELP_COLUMNS)
      expect(r.stdout).toContain("EXIT STATUS")
      expect(r.stdout).toContain("2: bad arguments")
    }
    const run = await inProcess(["run", "--help"], { color: false })
    expect(run.stdout).toContain("(default: auto)")
    expect(run.stdout).toContain("(default: error)")
    expect(run.stdout).toContain("(default: ane-run-output)")
    const colored = await inProcess(["--help"], { color: true })
    expect(colored.stdout).toContain("\u001b[")
  })

  it("colour only on a TTY without NO_COLOR", () => {
    expect(colorWanted(true, {})).toBe(true)
    expect(colorWanted(true, { NO_COLOR: "" })).toBe(true)
    expect(colorWanted(true, { NO_COLOR: "1" })).toBe(false)
    expect(colorWanted(false, {})).toBe(false)
  })

  it("help through a pipe with NO_COLOR: plain text end to end", async () => {
    const r = await spawned(["run", "--help"], 50_000, { ...process.env, NO_COLOR: "1" })
    expect(r.code).toBe(ExitCode.ok)
    expect(r.stdout).toContain("USAGE")
    expect(r.stdout).not.toContain("\u001b[")
  })

  it("wrapping keeps words whole and indents continuation lines", () => {
    const w = wrap("word ".repeat(30).trim(), 40, "  ", "  ").join("\n")
    expect(w.split("\n").every((l) => l.length <= 40 && l.startsWith("  word"))).toBe(true)
    expect(w.replace(/\s+/g, " ").trim()).toBe("word ".repeat(30).trim())
  })

  it("run shows what it is doing on a TTY's status line, then clears it; nothing with --json or off a TTY", async () => {
    const args = ["run", linear, "--backend", "simulator", "--output", join(dir, "p1")]
    const tty = await inProcess(args, { tty: true })
    expect(tty.code).toBe(ExitCode.ok)
    expect(tty.stderr).toContain("\r\u001b[Kane run: compiling…")
    expect(tty.stderr).toContain("\r\u001b[Kane run: evaluating…")
    expect(tty.stderr.trimEnd().endsWith("\r\u001b[K")).toBe(true)
    expect((await inProcess([...args, "--json"], { tty: true })).stderr).toBe("")
    expect((await inProcess(args, { tty: false })).stderr).toBe("")
  })

  it("bench draws a progress bar on a TTY's stderr only, never with --json", async () => {
    const args = ["bench", linear, "--backend", "simulator", "--iterations", "30", "--warmup", "0"]
    const tty = await inProcess(args, { tty: true })
    expect(tty.code).toBe(ExitCode.ok)
    expect(tty.stderr).toMatch(/\r\u001b\[Kane bench \[#+ *\] 30\/30/)
    expect(tty.stdout).not.toContain("\r")
    const json = await inProcess([...args, "--json"], { tty: true })
    expect(json.stderr).toBe("")
    const pipe = await inProcess(args, { tty: false })
    expect(pipe.stderr).not.toContain("\r")
    const stream = await inProcess([...args, "--mode", "stream"], { tty: true })
    expect(stream.code).toBe(ExitCode.ok)
    expect(stream.stderr).toContain("\r\u001b[Kane bench: 30 evals, depth 4…")
  })
})
