/**
 * ONNX LSTM `clip`: ONNX bounds the gate pre-activations, MIL lstm's `clip` bounds the cell state after its update
 * (spec/mil-format-errata.md §4.4). The import refuses it, typed and naming the node; a plain TypeScript reference of
 * the ONNX definition shows the two functions differ, so passing the value through would be wrong.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Onnx from "../../src/onnx/Onnx.js"
import { reorderGates } from "../../src/onnx/ops/rnn.js"
import { lstm as lstmKernel, planLstm } from "../../src/sim/kernels/lstm.js"
import { floatTensor, modelBytes, type ModelSpec, randoms } from "./graph.js"

const S = 4, Bn = 1, I = 3, H = 4
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

/** ONNX LSTM, forward, default activations, gates i, o, f, c; `clip` bounds every gate's pre-activation. */
const onnxLstmRef = (x: Float32Array, W: Float32Array, R: Float32Array, B: Float32Array, clip: number | undefined) => {
  const cl = (v: number) => (clip === undefined ? v : Math.min(Math.max(v, -clip), clip))
  const h = new Float32Array(Bn * H), c = new Float32Array(Bn * H)
  for (let t = 0; t < S; t++) {
    const hPrev = h.slice()
    for (let b = 0; b < Bn; b++) {
      for (let j = 0; j < H; j++) {
        const pre = (g: number) => {
          let s = B[g * H + j]! + B[4 * H + g * H + j]!
          for (let k = 0; k < I; k++) s += x[(t * Bn + b) * I + k]! * W[(g * H + j) * I + k]!
          for (let k = 0; k < H; k++) s += hPrev[b * H + k]! * R[(g * H + j) * H + k]!
          return cl(s)
        }
        const cn = sigmoid(pre(2)) * c[b * H + j]! + sigmoid(pre(0)) * Math.tanh(pre(3))
        c[b * H + j] = cn
        h[b * H + j] = sigmoid(pre(1)) * Math.tanh(cn)
      }
    }
  }
  return { h, c }
}

const x = randoms(S * Bn * I, 71, 2)
const W = randoms(4 * H * I, 72, 1.5), R = randoms(4 * H * H, 73, 1.5), B = randoms(8 * H, 74, 1)
const clip = 0.5

const spec = (withClip: boolean): ModelSpec => ({
  inputs: [{ name: "x", shape: [S, Bn, I] }],
  outputs: [{ name: "Y" }, { name: "Y_h" }, { name: "Y_c" }],
  nodes: [{
    name: "enc/lstm_1", op: "LSTM", inputs: ["x", "W", "R", "B"], outputs: ["Y", "Y_h", "Y_c"],
    attrs: { hidden_size: H, ...(withClip ? { clip: { float: clip } } : {}) }
  }],
  initializers: [floatTensor("W", [1, 4 * H, I], W), floatTensor("R", [1, 4 * H, H], R), floatTensor("B", [1, 8 * H], B)]
})

describe("ONNX LSTM clip", () => {
  it.effect("is refused with an ImportError naming the node and the attribute", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Onnx.importBytes(modelBytes(spec(true))))
      expect(error._tag).toBe("ImportError")
      expect(error.node).toBe("enc/lstm_1")
      expect(error.opType).toBe("LSTM")
      expect(error.reason).toContain("clip = 0.5")
      expect(error.message).toContain("cell state")
    }))

  it.effect("an LSTM without clip still imports", () =>
    Effect.gen(function*() {
      const imported = yield* Onnx.importBytes(modelBytes(spec(false)))
      expect(imported.text).toContain("lstm(")
      expect(imported.text).not.toMatch(/clip\s*=/)
    }))

  it("differs from MIL lstm's cell clip on the same weights, so it cannot be passed through", () => {
    const onnx = onnxLstmRef(x, W, R, B, clip)
    const unclipped = onnxLstmRef(x, W, R, B, undefined)
    // MIL lstm with the same weights (gates i, f, o, z; one summed bias) and the same clip value.
    const bias = new Float32Array(4 * H)
    for (let k = 0; k < 4 * H; k++) bias[k] = B[k]! + B[4 * H + k]!
    const plan = Either.getOrThrow(planLstm([S, Bn, I], H, { clip }))
    const out = new Float32Array(Bn * H), hOut = new Float32Array(Bn * H), cOut = new Float32Array(Bn * H)
    lstmKernel(plan, x, new Float32Array(Bn * H), new Float32Array(Bn * H), {
      weightIh: reorderGates(W, H, I), weightHh: reorderGates(R, H, H), bias: reorderGates(bias, H, 1)
    }, undefined, out, hOut, cOut)
    const diff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))
    // The weights are large enough that the ONNX clip changes the result, and the MIL clip computes something else.
    expect(diff(onnx.h, unclipped.h)).toBeGreaterThan(0.05)
    expect(diff(hOut, onnx.h)).toBeGreaterThan(0.05)
    expect(Math.max(...cOut.map(Math.abs))).toBeLessThanOrEqual(clip)
  })
})
