/** Every MIL generator's program runs on the simulator with finite outputs; linear matches its float64 formula. */
import { describe, expect, it } from "vitest"
import { Generators } from "../../src/mil/generators/index.js"
import { randoms, runMil } from "./helpers.js"

type Gen = { readonly text: string; readonly weights: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }> }

const cases: ReadonlyArray<readonly [string, () => Gen]> = [
  ["linear", () => Generators.linear({ inDim: 16, outDim: 8, seq: 32 })],
  ["matmul", () => Generators.matmul({ m: 16, k: 16, n: 16 })],
  ["dynamicMatmul", () => Generators.dynamicMatmul({ inDim: 16, outDim: 8, batch: 4 })],
  ["ffn", () => Generators.ffn({ dim: 16, hidden: 32, seq: 8 })],
  ["swiglu", () => Generators.swiglu({ dim: 16, hidden: 32, seq: 8 })],
  ["rmsNorm", () => Generators.rmsNorm({ dim: 16, seq: 8 })],
  ["layerNorm", () => Generators.layerNorm({ dim: 16, seq: 8 })],
  ["softmax", () => Generators.softmax({ channels: 16, seq: 8 })],
  ["attention", () => Generators.attention({ dim: 16, heads: 2, seq: 8 })],
  ["sdpa", () => Generators.sdpa({ heads: 2, headDim: 8, seq: 8 })],
  ["rope", () => Generators.rope({ heads: 2, headDim: 8, seq: 8 })],
  ["readState", () => Generators.readState({ name: "cache", shape: [1, 8, 1, 32] })],
  ["updateState", () => Generators.updateState({ name: "cache", shape: [1, 8, 1, 32] })],
  ["conv2d", () => Generators.conv2d({ inChannels: 4, outChannels: 8, height: 8, width: 8 })],
  ["binary", () => Generators.binary({ op: "add", shape: [1, 8, 1, 32] })],
  ["unary", () => Generators.unary({ op: "relu", shape: [1, 8, 1, 32] })]
]

/** Input names and element counts, read from the function signature (state inputs excluded). */
const inputsOf = (text: string): Record<string, Float32Array> => {
  const sig = /func main<[^>]*>\(([^)]*)\)/.exec(text)?.[1] ?? ""
  const out: Record<string, Float32Array> = {}
  let seed = 1
  for (const m of sig.matchAll(/tensor<\w+, \[([0-9, ]*)\]>\s+(\w+)/g)) {
    const before = sig.slice(0, m.index)
    if (/state<\s*$/.test(before)) continue
    const n = m[1]!.split(",").filter((s) => s.trim()).reduce((a, d) => a * Number(d), 1)
    out[m[2]!] = randoms(n, seed++)
  }
  return out
}

describe("generators on the simulator", () => {
  for (const [name, make] of cases) {
    it(`${name} runs with finite outputs`, async () => {
      const g = make()
      const outs = await runMil(g.text, inputsOf(g.text), {}, g.weights)
      expect(Object.keys(outs).length).toBeGreaterThan(0)
      for (const [k, v] of Object.entries(outs)) expect(v.every(Number.isFinite), k).toBe(true)
    })
  }

  it("linear computes W·x (+ b) per token in the [1, C, 1, S] layout", async () => {
    const inDim = 8, outDim = 4, seq = 32
    const w = Array.from(randoms(outDim * inDim, 5), (v) => v / 4)
    const bias = [0.5, -0.25, 0, 1]
    const g = Generators.linear({ inDim, outDim, seq, weights: w, bias })
    const xs = inputsOf(g.text)
    const [xName] = Object.keys(xs)
    const x = xs[xName!]!
    const outs = await runMil(g.text, xs, { numerics: "exact" }, g.weights)
    const y = Object.values(outs)[0]!
    const ref: Array<number> = []
    for (let o = 0; o < outDim; o++) for (let s = 0; s < seq; s++) {
      let acc = bias[o]!
      for (let i = 0; i < inDim; i++) acc += w[o * inDim + i]! * x[i * seq + s]!
      ref.push(acc)
    }
    // Weights are stored as fp16 by the generator, so compare at fp16 weight precision.
    expect(Math.max(...ref.map((r, i) => Math.abs(r - y[i]!)))).toBeLessThan(2e-2)
  })
})
