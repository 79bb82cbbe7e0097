/** `ane check` / `ane inspect` end to end: spawned through bin/ane.js, checking stdout JSON and exit codes. */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { corpusPath } from "../corpus/corpus.js"
import { milProgram } from "../mil/milText.js"

const bin = fileURLToPath(new URL("../../bin/ane.js", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "ane-check-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs the CLI in a child process without blocking this worker's event loop while it runs. */
const run = (...args: Array<string>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { timeout: 60_000 })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => stdout += d)
    child.stderr.setEncoding("utf8").on("data", (d: string) => stderr += d)
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("ane check", () => {
  it("--json on a program with a type error: one JSON object, exit 1, positioned diagnostic", async () => {
    const file = join(dir, "bad.mil")
    writeFileSync(file, milProgram("tensor<fp16, [1, 64, 1, 512]> x", "tensor<fp16, [1, 64, 1, 512]> y = relu(x = nope);"))
    const r = await run("check", file, "--json", "--chip", "m4")
    expect(r.code).toBe(1)
    const out = JSON.parse(r.stdout)
    expect(out.ok).toBe(false)
    const d = out.diagnostics.find((x: { code: string }) => x.code === "T001")
    const col = 9 + "tensor<fp16, [1, 64, 1, 512]> y = relu(x = ".length
    expect(d).toMatchObject({ kind: "type", severity: "error", line: 5, col })
    expect(Object.keys(d).slice(0, 6)).toEqual(["kind", "severity", "code", "message", "line", "col"])
  })
  it("human output of a clean .mlmodelc directory: exit 0, compiler-style lines with source and caret", async () => {
    const r = await run("check", corpusPath("apple__coremltools/coremltools/modelrunner/ModelRunner/add_model.mlmodelc"))
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/add_model\.mlmodelc\/model\.mil:\d+:\d+: warning ANE\d{3}: /)
    expect(r.stdout).toMatch(/\n {2}\d+ \| .*\n {2} *\| *\^/)
    expect(r.stdout).toContain("= hint: ")
    expect(r.stdout).toContain("0 error(s)")
  })
  it("an unreadable path: exit 2, a one-line message, no stack trace", async () => {
    const r = await run("check", join(dir, "missing.mil"))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("missing.mil")
    expect(r.stderr).not.toMatch(/\bat .*\(.*:\d+:\d+\)/)
    expect(r.stdout).toBe("")
  })
})

describe("ane inspect", () => {
  it("--json reports I/O, ops, weights and FLOPs", async () => {
    const r = await run("inspect", corpusPath("christopherkarani__Espresso/Tests/MILGeneratorTests/Fixtures/conv.mil"), "--json")
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.functions[0].inputs[0]).toEqual({ name: "x", type: "tensor<fp32, [1, 4, 1, 2]>", dtype: "fp32",
      shape: [1, 4, 1, 2] })
    expect(out.weights.map((w: { shape: unknown; bytes: number }) => [w.shape, w.bytes])).toEqual([[[6, 4, 1, 1], 48]])
    // 1×1 conv, 4 → 6 channels over 2 positions: 2·4·6·2.
    expect(out.flops.total).toBe(96)
  })
})
