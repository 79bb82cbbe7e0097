/** `ane import` and `.onnx` paths in `ane run`: in-process through `runCli`, and one spawned end to end. */
import { afterAll, describe, expect, it } from "vitest"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { readNpy, writeNpy } from "../../src/cli/npy.js"
import { floatTensor, modelBytes } from "../onnx/graph.js"
import { inProcess, root, spawned, STACK } from "./harness.js"

const fixtures = join(root, "test", "onnx", "fixtures")
const silero = join(fixtures, "silero_vad_v6.onnx")
const sileroFlags = ["--shape", "input=1,576", "--shape", "state=2,1,128", "--input-value", "sr=16000"]
const dir = mkdtempSync(join(tmpdir(), "ane-import-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("ane import", () => {
  it("writes the Silero package and reports each rule finding with the ONNX node it came from", async () => {
    const out = join(dir, "silero.pkg")
    const r = await inProcess(["import", silero, "--out", out, ...sileroFlags])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    for (const f of ["model.mil", "weights/weight.bin", "metadata.json"]) expect(existsSync(join(out, f))).toBe(true)
    const metadata = JSON.parse(readFileSync(join(out, "metadata.json"), "utf8"))
    expect(metadata.fixedInputs).toEqual({ sr: [16000] })
    expect(r.stdout).toContain("inputs:  input [1, 576] fp16, state [2, 1, 128] fp16; fixed: sr = 16000")
    // The STFT conv's kernel of 256 is the finding that matters on hardware: it names its ONNX node.
    const conv = r.stdout.split("\n").find((l) => l.includes("ANE029"))
    expect(conv).toMatch(/^ {2}error ANE029 line \d+ \S+ \(ONNX node "[^"]*\/stft\/Conv"\): conv kernel width 256/)
    expect(r.stdout).toMatch(/ANE rule report \(the strictest limits of every chip\): [1-9]\d* error\(s\)/)
  })

  it("--json gives the package files, the I/O and every finding with its ONNX node", async () => {
    const out = join(dir, "silero-json.pkg")
    const r = await inProcess(["import", silero, "--out", out, ...sileroFlags, "--fp32", "--chip", "m4", "--json"])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report).toMatchObject({ ok: true, precision: "fp32", chip: "m4", fixedInputs: { sr: [16000] } })
    expect(report.outputs.map((o: { onnxName: string }) => o.onnxName)).toEqual(["output", "stateN"])
    const conv = report.findings.find((f: { code: string }) => f.code === "ANE029")
    expect(conv).toMatchObject({ severity: "error" })
    expect(conv.onnxNode).toMatch(/\/stft\/Conv$/)
    expect(report.errors).toBe(report.findings.filter((f: { severity: string }) => f.severity === "error").length)
    expect(readFileSync(join(out, "model.mil"), "utf8")).toContain("fp32")
  })

  it("a symbolic dim without --shape: one line naming the input and the axis, exit 2, nothing written", async () => {
    const out = join(dir, "no-shape.pkg")
    const r = await inProcess(["import", silero, "--out", out, "--input-value", "sr=16000"])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toContain("ane import: invalid --shape: expected a fixed shape for input \"input\"")
    expect(r.stderr).toContain("axis 0")
    expect(r.stderr).toContain("--shape input=")
    expect(existsSync(out)).toBe(false)
  })

  it("a malformed .onnx: one line, no stack, exit 1", async () => {
    const bad = join(dir, "bad.onnx")
    writeFileSync(bad, readFileSync(silero).subarray(0, 1000))
    const r = await inProcess(["import", bad, "--out", join(dir, "bad.pkg")])
    expect(r.code).toBe(1)
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(/^ane import: import of .*bad\.onnx failed/)
    expect(r.stderr).not.toMatch(STACK)
    expect(existsSync(join(dir, "bad.pkg"))).toBe(false)
  })

  it("a missing model or a directory is a usage error naming the path", async () => {
    const missing = await inProcess(["import", join(dir, "nope.onnx"), "--out", join(dir, "nope.pkg")])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain("nope.onnx (not found)")
    const folder = await inProcess(["import", dir, "--out", join(dir, "nope.pkg")])
    expect(folder.code).toBe(2)
    expect(folder.stderr).toContain("(a directory)")
  })

  it("--shape or --input-value naming no input of the model is refused, listing the inputs", async () => {
    const r = await inProcess(["import", silero, "--out", join(dir, "typo.pkg"), ...sileroFlags, "--shape", "inptu=1,576"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("expected one of the model's inputs (input, state, sr), got inptu")
    const bad = await inProcess(["import", silero, "--out", join(dir, "typo.pkg"), "--shape", "input=1,x"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("invalid --shape input")
    expect(existsSync(join(dir, "typo.pkg"))).toBe(false)
  })

  it("--out is checked before the import: a file in its way, or a non-empty folder without --force", async () => {
    const file = join(dir, "a-file")
    writeFileSync(file, "x")
    const blocked = await inProcess(["import", join(dir, "nope.onnx"), "--out", join(file, "pkg")])
    // The --out problem is reported, not the missing model: the folder is checked first.
    expect(blocked.code).toBe(2)
    expect(blocked.stderr).toContain("invalid --out")
    const full = join(dir, "full")
    mkdirSync(full)
    writeFileSync(join(full, "keep.txt"), "mine")
    const refused = await inProcess(["import", silero, "--out", full, ...sileroFlags])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain("holds 1 entries")
    expect(refused.stderr).toContain("--force")
    expect(existsSync(join(full, "model.mil"))).toBe(false)
    const forced = await inProcess(["import", silero, "--out", full, ...sileroFlags, "--force"])
    expect(forced.code).toBe(0)
    expect(existsSync(join(full, "model.mil"))).toBe(true)
    expect(readFileSync(join(full, "keep.txt"), "utf8")).toBe("mine")
  })

  it("--force writes through no symbolic link planted in the package", async () => {
    const pkg = join(dir, "linked")
    mkdirSync(pkg)
    const victim = join(dir, "victim.txt")
    writeFileSync(victim, "untouched")
    symlinkSync(victim, join(pkg, "model.mil"))
    const r = await inProcess(["import", silero, "--out", pkg, ...sileroFlags, "--force"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("model.mil (a symbolic link)")
    expect(readFileSync(victim, "utf8")).toBe("untouched")
  })
})

const npy = (file: string) => {
  const a = readNpy(new Uint8Array(readFileSync(file)))
  if (!("data" in a)) throw a
  return a
}

describe("ane run on ONNX", () => {
  it("runs an .onnx directly: the conv net on its fixture input matches the onnxruntime golden", async () => {
    const out = join(dir, "convnet-out")
    const r = await inProcess(["run", join(fixtures, "convnet.onnx"), "--backend", "simulator", "--numerics", "exact",
      "--rules", "off", "--input", `image=${join(fixtures, "convnet.input.npy")}`, "--output", out])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const got = npy(join(out, "probs.npy")).data
    const golden = npy(join(fixtures, "convnet.golden.npy")).data
    expect(got.length).toBe(golden.length)
    // fp16 weights: the tolerance of test/onnx/graphs.test.ts in exact numerics.
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - golden[i]!)).toBeLessThan(1e-3)
  })

  it("--input and --shape take ONNX names that are not MIL names (input.1 → input_1)", async () => {
    const model = join(dir, "dotted.onnx")
    writeFileSync(model, modelBytes({
      inputs: [{ name: "input.1", shape: ["batch", 8] }],
      outputs: [{ name: "out:0" }],
      nodes: [{ op: "Mul", inputs: ["input.1", "w"], outputs: ["out:0"] }],
      initializers: [floatTensor("w", [8], [1, 2, 3, 4, 5, 6, 7, 8])]
    }))
    const x = join(dir, "dotted-x.npy")
    writeFileSync(x, writeNpy(Float32Array.of(1, 1, 1, 1, -1, -1, -1, -1), [1, 8], "<f4"))
    const out = join(dir, "dotted-out")
    const r = await inProcess(["run", model, "--shape", "input.1=1,8", "--input", `input.1=${x}`, "--backend", "simulator",
      "--rules", "off", "--output", out, "--json"])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).inputs).toEqual([{ name: "input_1", source: x }])
    expect([...npy(join(out, "out_0.npy")).data]).toEqual([1, 2, 3, 4, -5, -6, -7, -8])
    const unnamed = await inProcess(["run", model, "--backend", "simulator", "--output", out])
    expect(unnamed.code).toBe(2)
    expect(unnamed.stderr).toMatch(/^ane run: invalid --shape: expected a fixed shape for input "input\.1", got none \(its axis 0 is the symbolic dimension "batch"\)/)
  })

  it("rule errors of an .onnx run name the ONNX node, exit 1", async () => {
    const r = await inProcess(["run", silero, ...sileroFlags, "--backend", "simulator", "--output", join(dir, "refused")])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("silero_vad_v6.onnx (imported MIL):")
    expect(r.stderr).toMatch(/error ANE029: conv kernel width 256.*\(ONNX node "[^"]*\/stft\/Conv"\)/)
    expect(r.stderr).not.toMatch(STACK)
  })

  it("import options on a MIL program, or --weights with an .onnx, are refused rather than ignored", async () => {
    const mil = await inProcess(["run", "examples/linear.mil", "--shape", "x=1,64,1,384", "--backend", "simulator"])
    expect(mil.code).toBe(2)
    expect(mil.stderr).toContain("--shape applies to ONNX imports only")
    const weights = await inProcess(["run", silero, "--weights", silero, "--backend", "simulator"])
    expect(weights.code).toBe(2)
    expect(weights.stderr).toContain("invalid --weights")
  })

  it("runs the imported Silero package (spawned end to end)", async () => {
    const out = join(dir, "run.pkg")
    const imported = await inProcess(["import", silero, "--out", out, ...sileroFlags])
    expect(imported.code).toBe(0)
    const r = await spawned(["run", out, "--backend", "simulator", "--rules", "warn", "--output", join(dir, "run-out"), "--json"],
      60_000)
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary.outputs.map((o: { name: string; shape: Array<number> }) => [o.name, o.shape]))
      .toEqual([["output", [1, 1]], ["stateN", [2, 1, 128]]])
    expect(summary.outputs[0].min).toBeGreaterThanOrEqual(0)
    expect(summary.outputs[0].max).toBeLessThanOrEqual(1)
  })
})
