/** `ane run` end to end: spawns `node bin/ane.js run …` asynchronously (a few spawns, each a couple of seconds). */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { decodeBlob, readBlobAt } from "../../src/mil/blob.js"
import { readNpy, writeNpy } from "../../src/cli/npy.js"
import { roundToFp16 } from "../../src/sim/numerics.js"
import { spawned } from "./harness.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const ane = async (...args: Array<string>) => {
  const r = await spawned(["run", ...args], 60_000)
  return { status: r.code, stdout: r.stdout, stderr: r.stderr }
}

describe("ane run", () => {
  it("runs examples/linear.mil with an .npy input and writes outputs that match a float64 reference", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ane-run-"))
    const C = 64, S = 384
    const x = new Float32Array(C * S).map((_, i) => roundToFp16(Math.sin(i * 0.37) * 0.8))
    writeFileSync(join(dir, "x.npy"), writeNpy(x, [1, C, 1, S], "<f2"))
    const r = await ane("examples/linear.mil", "--input", `x=${join(dir, "x.npy")}`, "--output", dir, "--json", "--backend", "simulator")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const summary = JSON.parse(r.stdout) as {
      backend: string
      outputs: Array<{ name: string; shape: Array<number>; file: string; min: number; max: number; mean: number }>
      timings: { compileMs: number; evalMs: number; engineMs: number; engineTime: string }
    }
    expect(summary.backend).toBe("simulator")
    // The default chip's 95 µs dispatch floor, plus 64×384 outputs of a 64-wide linear (2 FLOPs per MAC) plus bias
    // and relu over its 10.93 TFLOP/s.
    expect(summary.timings.engineTime).toBe("modelled")
    expect(summary.timings.engineMs).toBeGreaterThan(0.095 + (2 * C * C * S) / 10.93e9)
    expect(summary.timings.engineMs).toBeLessThan(0.095 + (4 * C * C * S) / 10.93e9)
    expect(summary.outputs.map((o) => [o.name, o.shape])).toEqual([["y", [1, C, 1, S]]])
    const y = readNpy(new Uint8Array(readFileSync(summary.outputs[0]!.file)))
    if (!("data" in y)) throw y
    expect(y.dtype).toBe("<f2")
    // Reference: relu(W·x + 1/16) in float64 from the example's own weight file.
    const wb = readBlobAt(new Uint8Array(readFileSync(join(root, "examples/linear/weights/weight.bin"))), 64)
    if (!("record" in wb)) throw wb
    const w = decodeBlob(wb) as Float32Array
    let worst = 0, sum = 0
    for (let o = 0; o < C; o++) {
      for (let s = 0; s < S; s++) {
        let acc = 1 / 16
        for (let i = 0; i < C; i++) acc += w[o * C + i]! * x[i * S + s]!
        const ref = Math.max(0, acc)
        sum += y.data[o * S + s]!
        worst = Math.max(worst, Math.abs(y.data[o * S + s]! - ref) / Math.max(1, Math.abs(ref)))
      }
    }
    expect(worst).toBeLessThan(4e-3) // a few fp16 ulps
    expect(summary.outputs[0]!.mean).toBeCloseTo(sum / (C * S), 4)
    expect(summary.timings.evalMs).toBeGreaterThan(0)
  })

  it("runs a .mlmodelc with random inputs and says which backend auto chose", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ane-run-"))
    const r = await ane("examples/gated_conv.mlmodelc", "--output", dir)
    expect(r.status).toBe(0)
    expect(r.stderr).toContain("using the simulator backend")
    expect(r.stdout).toMatch(/gated \[1, 32, 1, 768\] fp16 +min -?[0-9.]+ +max [0-9.]+ +mean/)
  })

  it("--backend hardware fails with the NoAneError message, status 3, a CLI hint and no stack trace", async () => {
    const r = await ane("examples/linear.mil", "--backend", "hardware")
    expect(r.status).toBe(3)
    expect(r.stderr).toContain("no ANE hardware available")
    expect(r.stderr).toContain("--backend simulator")
    expect(r.stderr).not.toContain("Ane.layerSimulator")
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})
