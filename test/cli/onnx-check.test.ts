/** `ane check` and `ane inspect` on `.onnx` models: imported in memory first, in-process through `runCli`. */
import { afterAll, describe, expect, it } from "vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inProcess, root, STACK } from "./harness.js"

const fixtures = join(root, "test", "onnx", "fixtures")
const convnet = join(fixtures, "convnet.onnx")
const silero = join(fixtures, "silero_vad_v6.onnx")
const encoder = join(root, "examples", "encoder.onnx")
const dir = mkdtempSync(join(tmpdir(), "ane-onnx-check-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("ane check on an .onnx model", () => {
  it("reports the pool rule errors with their ONNX nodes, attributed to the imported MIL, exit 1", async () => {
    const r = await inProcess(["check", convnet])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe("")
    expect(r.stdout).toMatch(/convnet\.onnx \(imported MIL\):\d+:\d+: error ANE009: op `max_pool` .*\(ONNX node "MaxPool_3"\)/)
    expect(r.stdout).toMatch(/convnet\.onnx \(imported MIL\):\d+:\d+: error ANE009: op `avg_pool` .*\(ONNX node "AveragePool_6"\)/)
    expect(r.stdout).toMatch(/convnet\.onnx \(imported MIL\): 2 error\(s\)/)
  })

  it("--json: one object whose errors carry their ONNX node", async () => {
    const r = await inProcess(["check", convnet, "--json"])
    expect(r.code).toBe(1)
    const out = JSON.parse(r.stdout)
    expect(out.ok).toBe(false)
    const errors = out.diagnostics.filter((d: { severity: string }) => d.severity === "error")
    expect(errors.map((d: { code: string; onnxNode: string }) => [d.code, d.onnxNode]))
      .toEqual([["ANE009", "MaxPool_3"], ["ANE009", "AveragePool_6"]])
  })

  it("the shipped encoder passes: exit 0, no errors", async () => {
    const r = await inProcess(["check", encoder])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/encoder\.onnx \(imported MIL\): 0 error\(s\)/)
    const json = await inProcess(["check", encoder, "--json"])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout).ok).toBe(true)
  })

  it("a symbolic dim without --shape: one line naming the input, exit 2", async () => {
    const r = await inProcess(["check", silero, "--input-value", "sr=16000"])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toContain("ane check: invalid --shape: expected a fixed shape for input \"input\"")
  })

  it("with --shape and --input-value the Silero model imports and its conv kernel error names the ONNX node", async () => {
    const r = await inProcess(["check", silero, "--shape", "input=1,576", "--shape", "state=2,1,128", "--input-value", "sr=16000", "--json"])
    expect(r.code).toBe(1)
    const conv = JSON.parse(r.stdout).diagnostics.find((d: { code: string }) => d.code === "ANE029")
    expect(conv.onnxNode).toMatch(/\/stft\/Conv$/)
  })

  it("a malformed .onnx: one line, no stack, exit 1", async () => {
    const bad = join(dir, "bad.onnx")
    writeFileSync(bad, readFileSync(silero).subarray(0, 1000))
    const r = await inProcess(["check", bad])
    expect(r.code).toBe(1)
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(/^ane check: import of .*bad\.onnx failed/)
    expect(r.stderr).not.toMatch(STACK)
  })

  it("import options on a MIL program, or --weights with an .onnx, are refused rather than ignored", async () => {
    const mil = await inProcess(["check", "examples/linear.mil", "--fp32"])
    expect(mil.code).toBe(2)
    expect(mil.stderr).toContain("--fp32 applies to ONNX imports only")
    const weights = await inProcess(["check", encoder, "--weights", encoder])
    expect(weights.code).toBe(2)
    expect(weights.stderr).toContain("invalid --weights")
  })
})

describe("ane inspect on an .onnx model", () => {
  it("--json lists the model's I/O under their ONNX names, ops, weights and FLOPs", async () => {
    const r = await inProcess(["inspect", encoder, "--json"])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.inputs).toEqual([{ name: "tokens", milName: "tokens", dtype: "fp16", shape: [1, 16, 32] }])
    expect(out.outputs.map((o: { name: string }) => o.name)).toEqual(["encoded"])
    expect(out.histogram.find((h: { op: string }) => h.op === "linear").count).toBeGreaterThan(0)
    expect(out.weights.length).toBeGreaterThan(0)
    expect(out.flops.total).toBeGreaterThan(0)
  })

  it("text output names the inputs and the imported program's ops", async () => {
    const r = await inProcess(["inspect", encoder])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("inputs:  tokens [1, 16, 32] fp16")
    expect(r.stdout).toContain("ops: ")
  })

  it("a symbolic dim without --shape: one line, exit 2; a malformed file: one line, exit 1", async () => {
    const symbolic = await inProcess(["inspect", silero])
    expect(symbolic.code).toBe(2)
    expect(symbolic.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(symbolic.stderr).toContain("ane inspect: invalid --shape")
    const bad = join(dir, "bad-inspect.onnx")
    writeFileSync(bad, readFileSync(convnet).subarray(0, 200))
    const malformed = await inProcess(["inspect", bad])
    expect(malformed.code).toBe(1)
    expect(malformed.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(malformed.stderr).not.toMatch(STACK)
  })
})
