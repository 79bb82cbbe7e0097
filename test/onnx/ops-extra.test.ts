/**
 * Op checks that need more than one float input or a reference of their own: ConvTranspose, Gather with indices
 * computed in the program, GlobalMaxPool, reverse and bidirectional LSTM, and imports at fp32 precision. Each runs on
 * the simulator (exact numerics) against a plain TypeScript reference of the ONNX definition.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Onnx from "../../src/onnx/Onnx.js"
import { ImportError } from "../../src/schema/errors.js"
import { floatTensor, modelBytes, type ModelSpec, randoms } from "./graph.js"
import { compileImported, maxAbsDiff, simulator } from "./run.js"

const runModel = (spec: ModelSpec, inputs: Readonly<Record<string, Float32Array>>, outputs: ReadonlyArray<string>,
  options: Onnx.ImportOptions = {}) =>
  Effect.gen(function*() {
    const imported = yield* Onnx.importBytes(modelBytes(spec), options)
    const { run } = yield* compileImported(imported)
    return { imported, out: yield* run(inputs, outputs) }
  })

/** ONNX ConvTranspose, 2-D: W is [C_in, C_out / group, kH, kW]. */
const convTransposeRef = (
  x: Float32Array, xs: readonly [number, number, number, number], w: Float32Array, ws: readonly [number, number, number, number],
  bias: Float32Array | undefined, o: { strides: readonly [number, number]; pads: readonly [number, number, number, number]; dilations: readonly [number, number]; group: number }
) => {
  const [N, Ci, H, W] = xs
  const [, Cog, kH, kW] = ws
  const Co = Cog * o.group, Cig = Ci / o.group
  const OH = o.strides[0] * (H - 1) + (kH - 1) * o.dilations[0] + 1 - o.pads[0] - o.pads[2]
  const OW = o.strides[1] * (W - 1) + (kW - 1) * o.dilations[1] + 1 - o.pads[1] - o.pads[3]
  const y = new Float32Array(N * Co * OH * OW)
  for (let n = 0; n < N; n++) {
    for (let ci = 0; ci < Ci; ci++) {
      const g = Math.floor(ci / Cig)
      for (let ih = 0; ih < H; ih++) {
        for (let iw = 0; iw < W; iw++) {
          const v = x[((n * Ci + ci) * H + ih) * W + iw]!
          for (let oc = 0; oc < Cog; oc++) {
            for (let kh = 0; kh < kH; kh++) {
              const oh = ih * o.strides[0] - o.pads[0] + kh * o.dilations[0]
              if (oh < 0 || oh >= OH) continue
              for (let kw = 0; kw < kW; kw++) {
                const ow = iw * o.strides[1] - o.pads[1] + kw * o.dilations[1]
                if (ow < 0 || ow >= OW) continue
                y[((n * Co + g * Cog + oc) * OH + oh) * OW + ow]! += v * w[((ci * Cog + oc) * kH + kh) * kW + kw]!
              }
            }
          }
        }
      }
    }
  }
  if (bias !== undefined) for (let i = 0; i < y.length; i++) y[i]! += bias[Math.floor(i / (OH * OW)) % Co]!
  return { y, shape: [N, Co, OH, OW] }
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

/**
 * ONNX LSTM (layout 0, default activations): W [D, 4H, I], R [D, 4H, H] with gates i, o, f, c; B [D, 8H]; P [D, 3H]
 * (i, o, f). Returns Y [S, D, B, H], Y_h and Y_c [D, B, H].
 */
const lstmRef = (
  x: Float32Array, S: number, Bn: number, I: number, H: number, direction: "forward" | "reverse" | "bidirectional",
  W: Float32Array, R: Float32Array, B: Float32Array, P: Float32Array | undefined, h0: Float32Array, c0: Float32Array
) => {
  const D = direction === "bidirectional" ? 2 : 1
  const Y = new Float32Array(S * D * Bn * H), Yh = new Float32Array(D * Bn * H), Yc = new Float32Array(D * Bn * H)
  for (let d = 0; d < D; d++) {
    const backwards = direction === "reverse" || d === 1
    const h = h0.slice(d * Bn * H, (d + 1) * Bn * H), c = c0.slice(d * Bn * H, (d + 1) * Bn * H)
    for (let step = 0; step < S; step++) {
      const t = backwards ? S - 1 - step : step
      const hPrev = h.slice()
      for (let b = 0; b < Bn; b++) {
        for (let j = 0; j < H; j++) {
          // gate g ∈ {0: i, 1: o, 2: f, 3: c}
          const pre = (g: number) => {
            const row = d * 4 * H + g * H + j
            let s = B[d * 8 * H + g * H + j]! + B[d * 8 * H + 4 * H + g * H + j]!
            for (let k = 0; k < I; k++) s += x[(t * Bn + b) * I + k]! * W[row * I + k]!
            for (let k = 0; k < H; k++) s += hPrev[b * H + k]! * R[row * H + k]!
            return s
          }
          const cp = c[b * H + j]!
          const peep = (k: number) => (P === undefined ? 0 : P[d * 3 * H + k * H + j]!)
          const gi = sigmoid(pre(0) + peep(0) * cp)
          const gf = sigmoid(pre(2) + peep(2) * cp)
          const gc = Math.tanh(pre(3))
          const cn = gf * cp + gi * gc
          const go = sigmoid(pre(1) + peep(1) * cn)
          c[b * H + j] = cn
          h[b * H + j] = go * Math.tanh(cn)
        }
      }
      Y.set(h, ((t * D + d) * Bn) * H)
    }
    Yh.set(h, d * Bn * H)
    Yc.set(c, d * Bn * H)
  }
  return { Y, Yh, Yc }
}

describe("ONNX ConvTranspose", () => {
  const xs = [1, 4, 3, 5] as const
  const x = randoms(60, 21)
  for (const o of [
    { label: "stride 2, pads, bias", strides: [2, 2], pads: [1, 0, 1, 1], dilations: [1, 1], group: 1, ws: [4, 3, 3, 3], bias: true },
    { label: "2 groups, dilation 2, no bias", strides: [1, 2], pads: [0, 1, 0, 0], dilations: [2, 1], group: 2, ws: [4, 2, 2, 3], bias: false }
  ] as const) {
    it.effect(`${o.label} matches the reference`, () =>
      Effect.gen(function*() {
        const w = randoms(o.ws.reduce((a, b) => a * b, 1), 22)
        const bias = o.bias ? randoms(o.ws[1] * o.group, 23) : undefined
        const ref = convTransposeRef(x, xs, w, o.ws, bias, o)
        const { out, imported } = yield* runModel({
          inputs: [{ name: "x", shape: xs }], outputs: [{ name: "y" }],
          nodes: [{
            op: "ConvTranspose", inputs: ["x", "w", ...(bias ? ["b"] : [])], outputs: ["y"],
            attrs: { strides: o.strides, pads: o.pads, dilations: o.dilations, group: o.group }
          }],
          initializers: [floatTensor("w", o.ws, w), ...(bias ? [floatTensor("b", [bias.length], bias)] : [])]
        }, { x }, ["y"])
        expect(imported.metadata.outputs[0]!.shape).toEqual(ref.shape)
        expect(maxAbsDiff(out["y"]!, ref.y)).toBeLessThan(1e-2)
      }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))
  }

  it.effect("output_padding and output_shape are typed errors naming the node", () =>
    Effect.gen(function*() {
      for (const attrs of [{ output_padding: [1, 1], strides: [2, 2] }, { output_shape: [7, 11] }]) {
        const e = yield* Effect.flip(Onnx.importBytes(modelBytes({
          inputs: [{ name: "x", shape: xs }], outputs: [{ name: "y" }],
          nodes: [{ op: "ConvTranspose", inputs: ["x", "w"], outputs: ["y"], attrs, name: "up" }],
          initializers: [floatTensor("w", [4, 3, 3, 3], randoms(108, 1))]
        })))
        expect(e).toBeInstanceOf(ImportError)
        expect(e.node).toBe("up")
        expect(e.opType).toBe("ConvTranspose")
      }
    }))
})

describe("ONNX Gather with indices computed in the program", () => {
  it.effect("looks rows of a constant table up by indices cast from an input, negative ones included", () =>
    Effect.gen(function*() {
      const table = randoms(20, 31)
      const idx = Float32Array.of(3, 0, -1, 2)
      const { out } = yield* runModel({
        inputs: [{ name: "i", shape: [4] }], outputs: [{ name: "y" }],
        nodes: [
          { op: "Cast", inputs: ["i"], outputs: ["k"], attrs: { to: 7 } },
          { op: "Gather", inputs: ["table", "k"], outputs: ["y"], attrs: { axis: 0 } }
        ],
        initializers: [floatTensor("table", [5, 4], table)]
      }, { i: idx }, ["y"])
      const ref = Float32Array.from([3, 0, 4, 2].flatMap((r) => Array.from(table.subarray(4 * r, 4 * r + 4))))
      expect(maxAbsDiff(out["y"]!, ref)).toBeLessThan(1e-3)
    }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))

  it.effect("gathers columns of a program tensor along axis 1", () =>
    Effect.gen(function*() {
      const x = randoms(12, 32)
      const { out } = yield* runModel({
        inputs: [{ name: "x", shape: [3, 4] }, { name: "i", shape: [2, 2] }], outputs: [{ name: "y" }],
        nodes: [
          { op: "Cast", inputs: ["i"], outputs: ["k"], attrs: { to: 7 } },
          { op: "Gather", inputs: ["x", "k"], outputs: ["y"], attrs: { axis: 1 } }
        ]
      }, { x, i: Float32Array.of(1, 3, -4, 2) }, ["y"])
      const cols = [1, 3, 0, 2]
      const ref = Float32Array.from({ length: 12 }, (_, n) => x[Math.floor(n / 4) * 4 + cols[n % 4]!]!)
      expect(maxAbsDiff(out["y"]!, ref)).toBeLessThan(1e-3)
    }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))
})

describe("ONNX GlobalMaxPool", () => {
  it.effect("takes the maximum over every spatial position per channel", () =>
    Effect.gen(function*() {
      const x = randoms(2 * 3 * 4 * 5, 41, 3)
      const { out, imported } = yield* runModel({
        inputs: [{ name: "x", shape: [2, 3, 4, 5] }], outputs: [{ name: "y" }],
        nodes: [{ op: "GlobalMaxPool", inputs: ["x"], outputs: ["y"] }]
      }, { x }, ["y"])
      const ref = Float32Array.from({ length: 6 }, (_, p) => Math.max(...x.subarray(p * 20, p * 20 + 20)))
      expect(imported.metadata.outputs[0]!.shape).toEqual([2, 3, 1, 1])
      expect(maxAbsDiff(out["y"]!, ref)).toBeLessThan(5e-3)
    }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))
})

describe("ONNX LSTM directions", () => {
  const S = 4, Bn = 2, I = 3, H = 5
  const x = randoms(S * Bn * I, 51)
  for (const direction of ["reverse", "bidirectional"] as const) {
    const D = direction === "bidirectional" ? 2 : 1
    for (const peepholes of [false, true]) {
      it.effect(`${direction}${peepholes ? " with peepholes" : ""}: Y, Y_h and Y_c match the reference`, () =>
        Effect.gen(function*() {
          const W = randoms(D * 4 * H * I, 52, 0.6), R = randoms(D * 4 * H * H, 53, 0.6), B = randoms(D * 8 * H, 54, 0.3)
          const P = peepholes ? randoms(D * 3 * H, 55, 0.5) : undefined
          const h0 = randoms(D * Bn * H, 56, 0.5), c0 = randoms(D * Bn * H, 57, 0.5)
          const ref = lstmRef(x, S, Bn, I, H, direction, W, R, B, P, h0, c0)
          const { out } = yield* runModel({
            inputs: [{ name: "x", shape: [S, Bn, I] }, { name: "h0", shape: [D, Bn, H] }, { name: "c0", shape: [D, Bn, H] }],
            outputs: [{ name: "Y" }, { name: "Y_h" }, { name: "Y_c" }],
            nodes: [{
              op: "LSTM", inputs: ["x", "W", "R", "B", "", "h0", "c0", ...(P ? ["P"] : [])], outputs: ["Y", "Y_h", "Y_c"],
              attrs: { hidden_size: H, direction }
            }],
            initializers: [
              floatTensor("W", [D, 4 * H, I], W), floatTensor("R", [D, 4 * H, H], R), floatTensor("B", [D, 8 * H], B),
              ...(P ? [floatTensor("P", [D, 3 * H], P)] : [])
            ]
          }, { x, h0, c0 }, ["Y", "Y_h", "Y_c"])
          expect(maxAbsDiff(out["Y"]!, ref.Y)).toBeLessThan(5e-3)
          expect(maxAbsDiff(out["Y_h"]!, ref.Yh)).toBeLessThan(5e-3)
          expect(maxAbsDiff(out["Y_c"]!, ref.Yc)).toBeLessThan(5e-3)
        }).pipe(Effect.scoped, Effect.provide(simulator("exact"))), 20_000)
    }
  }
})

describe("ONNX import at fp32 precision", () => {
  // Weights fp16 cannot hold exactly (thirds, sevenths): fp32 keeps them, fp16 rounds them by up to 2⁻¹¹ relative.
  const K = 16, N = 8
  const w = Float32Array.from({ length: K * N }, (_, i) => ((i % 7) + 1) / 3 + i / 7000)
  const x = Float32Array.from({ length: 2 * K }, (_, i) => ((i % 5) - 2) / 7 + 1)
  const ref = new Float32Array(2 * N)
  for (let m = 0; m < 2; m++) for (let n = 0; n < N; n++) {
    let s = 0
    for (let k = 0; k < K; k++) s += x[m * K + k]! * w[k * N + n]!
    ref[m * N + n] = s
  }
  const spec: ModelSpec = {
    inputs: [{ name: "x", shape: [2, K] }], outputs: [{ name: "y" }],
    nodes: [{ op: "MatMul", inputs: ["x", "w"], outputs: ["y"] }],
    initializers: [floatTensor("w", [K, N], w)]
  }

  it.effect("keeps fp32 types, weights and I/O, and computes to fp32 accuracy", () =>
    Effect.gen(function*() {
      const { out, imported } = yield* runModel(spec, { x }, ["y"], { precision: "fp32" })
      expect(imported.metadata.precision).toBe("fp32")
      expect(imported.metadata.inputs[0]!.dtype).toBe("fp32")
      expect(imported.metadata.outputs[0]!.dtype).toBe("fp32")
      expect(imported.text).not.toMatch(/fp16/)
      // One fp32 weight blob: the 128 weights take 4 bytes each (plus the blob's headers).
      expect(imported.weights[0]!.bytes.length).toBeGreaterThanOrEqual(4 * K * N)
      expect(maxAbsDiff(out["y"]!, ref)).toBeLessThan(1e-4)
      const fp16 = yield* runModel(spec, { x }, ["y"])
      expect(fp16.imported.text).toMatch(/fp16/)
      expect(maxAbsDiff(fp16.out["y"]!, ref)).toBeGreaterThan(1e-3)
    }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))
})
