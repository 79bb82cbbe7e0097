/**
 * The generator catalogue: golden text for one size each, parse + check + ANE-validate with zero errors over the
 * documented size grid, typed errors for bad sizes, weights that read back, and numbers from the simulator against a
 * float64 reference.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { analyze } from "../../src/mil/analyze.js"
import { decodeBlob, readBlobAt } from "../../src/mil/blob.js"
import { float32ToFp16, fp16ToFloat32 } from "../../src/fp16/scalar.js"
import { type Generated, Generators as G, GeneratorsEffect, ropeTables } from "../../src/mil/generators/index.js"
import { plan } from "../../src/sim/interpreter.js"
import { formatDiagnostic } from "../../src/schema/Diagnostic.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"
import { goldenCases } from "./generators-cases.js"

const golden = path.join(import.meta.dirname, "golden")
const fp16 = (x: number) => fp16ToFloat32(float32ToFp16(x))

const errorsOf = (g: Generated) =>
  analyze(g.text, { file: "generated" }).diagnostics.filter((d) => d.severity === "error").map(formatDiagnostic)

describe("golden text (one size per generator, reviewed against spec/mil-format.md §1–§2)", () => {
  for (const [name, make] of goldenCases) {
    it(`${name} matches golden/${name}.mil`, () => {
      const g = make()
      expect(g.text).toBe(fs.readFileSync(path.join(golden, `${name}.mil`), "utf8"))
      expect(errorsOf(g)).toEqual([])
    })
  }
})

/** Per generator: a small grid of the sizes it documents as supported (kept to a few seconds in total). */
const grids: ReadonlyArray<readonly [string, ReadonlyArray<() => Generated>]> = [
  ["linear", [1, 64, 512].flatMap((d) => [1, 32, 256].map((s) => () => G.linear({ inDim: d, outDim: 2 * d, seq: s })))],
  ["linear fp32 + bias", [() => G.linear({ inDim: 16, outDim: 16, seq: 32, io: "fp32", bias: new Float32Array(16) })]],
  ["matmul", [[1, 8, 1], [2, 64, 1], [4, 128, 2]].map(([b, m]) => () => G.matmul({ batch: b!, m: m!, k: m!, n: m! }))
    .concat([() => G.matmul({ m: 32, k: 64, n: 128, weights: true })])],
  ["dynamicMatmul", [[4, 2, 1], [64, 64, 32], [256, 512, 64]].map(([i, o, b]) => () => G.dynamicMatmul({ inDim: i!, outDim: o!, batch: b! }))],
  ["ffn", (["relu", "relu2", "silu"] as const).flatMap((a) => [() => G.ffn({ dim: 64, hidden: 256, seq: 32, activation: a })])],
  ["swiglu", [[4, 8, 1], [64, 172, 32], [256, 1024, 64]].map(([d, h, s]) => () => G.swiglu({ dim: d!, hidden: h!, seq: s! }))],
  ["rmsNorm", [[1, 1], [64, 32], [768, 128]].map(([d, s]) => () => G.rmsNorm({ dim: d!, seq: s!, gain: new Float32Array(d!).fill(1) }))
    .concat([() => G.rmsNorm({ dim: 256, seq: 64, overflowSafe: true })])],
  ["layerNorm", [[4, 2], [64, 32], [768, 128]].map(([d, s]) => () => G.layerNorm({ dim: d!, seq: s! }))],
  ["softmax", [[4, 1, 1], [1000, 32, 1], [64, 64, -1], [65536, 1, 1], [4, 16384, -1]].map(([c, s, a]) => () => G.softmax({ channels: c!, seq: s!, axis: a as 1 | -1 }))],
  ["attention", [[8, 1, 4], [64, 4, 32], [256, 8, 128]].map(([d, h, s]) => () => G.attention({ dim: d!, heads: h!, seq: s! }))
    .concat([() => G.attention({ dim: 64, heads: 2, seq: 16, projections: true, causal: false })])],
  ["sdpa", [[1, 16, 4], [4, 64, 32]].map(([h, d, s]) => () => G.sdpa({ heads: h!, headDim: d!, seq: s! }))],
  ["rope", [[1, 2, 1], [4, 64, 32], [8, 128, 128]].map(([h, d, s]) => () => G.rope({ heads: h!, headDim: d!, seq: s!, position: 7 }))],
  ["readState / updateState", [[1, 4, 1, 8], [1, 64, 1, 512]].flatMap((shape) => [
    () => G.readState({ name: "k_cache", shape }),
    () => G.updateState({ name: "v_cache", shape })
  ])],
  ["conv2d", [
    () => G.conv2d({ inChannels: 3, outChannels: 8, height: 32, width: 32, kernel: [3, 3], padding: "same" }),
    () => G.conv2d({ inChannels: 16, outChannels: 16, height: 8, width: 64, kernel: [1, 3], stride: [1, 2], groups: 4 }),
    () => G.conv2d({ inChannels: 8, outChannels: 4, height: 1, width: 256, kernel: [1, 5], padding: "valid", bias: new Float32Array(4) })
  ]],
  ["binary / unary", [
    ...(["add", "sub", "mul", "real_div", "maximum", "minimum"] as const).map((op) => () => G.binary({ op, shape: [1, 64, 1, 32] })),
    () => G.binary({ op: "pow", shape: [1, 8, 1, 32], scalar: 2 }),
    ...(["relu", "sigmoid", "tanh", "exp", "sqrt", "abs", "square", "silu"] as const).map((op) => () => G.unary({ op, shape: [1, 16, 1, 64] }))
  ]]
]

describe("the M1 form: program(1.0) with ios17 validates for chip m1 with no findings of any severity about the version", () => {
  const m1: ReadonlyArray<readonly [string, () => Generated]> = [
    ["linear", () => G.linear({ inDim: 64, outDim: 64, seq: 32, opset: "ios17", version: "1.0" })],
    ["swiglu", () => G.swiglu({ dim: 64, hidden: 128, seq: 32, opset: "ios17", version: "1.0" })],
    ["attention", () => G.attention({ dim: 64, heads: 4, seq: 32, opset: "ios16", version: "1.0" })],
    ["rmsNorm", () => G.rmsNorm({ dim: 64, seq: 32, opset: "ios16", version: "1.0" })]
  ]
  for (const [name, make] of m1) {
    it(name, () => {
      const g = make()
      expect(g.text.startsWith("program(1.0)\n")).toBe(true)
      const ds = analyze(g.text, { chip: "m1" }).diagnostics
      expect(ds.filter((d) => d.severity === "error").map(formatDiagnostic)).toEqual([])
      expect(ds.filter((d) => d.code === "ANE035")).toEqual([])
    })
  }

  it("sdpa and states need ios18", () => {
    expect(() => G.sdpa({ heads: 1, headDim: 4, seq: 4, opset: "ios17" })).toThrow(InvalidArgumentError)
    expect(() => G.readState({ name: "s", shape: [1, 4], opset: "ios16" })).toThrow(/opset/)
  })
})

describe("parse + check + ANE-validate with zero errors over each documented size grid", () => {
  for (const [name, cases] of grids) {
    it(`${name}: ${cases.length} sizes`, () => {
      for (const make of cases) {
        const g = make()
        expect(errorsOf(g), g.inputs.map((i) => `${i.name}[${i.shape}]`).join(" ")).toEqual([])
      }
    })
  }
})

describe("bad sizes are typed errors naming the argument", () => {
  const bad: ReadonlyArray<readonly [string, () => unknown, string]> = [
    ["linear inDim 0", () => G.linear({ inDim: 0, outDim: 4, seq: 1 }), "inDim"],
    ["linear too wide", () => G.linear({ inDim: 4, outDim: 4, seq: 20000 }), "seq"],
    ["linear wrong weight count", () => G.linear({ inDim: 2, outDim: 2, seq: 1, weights: [1, 2, 3] }), "weights"],
    ["linear non-finite weight", () => G.linear({ inDim: 1, outDim: 1, seq: 1, weights: [NaN] }), "weights[0]"],
    ["matmul unequal input surfaces", () => G.matmul({ m: 2, k: 4, n: 8 }), "m, k, n"],
    ["dynamicMatmul too wide", () => G.dynamicMatmul({ inDim: 4, outDim: 4096, batch: 16000 }), "batch"],
    ["ffn fractional hidden", () => G.ffn({ dim: 4, hidden: 2.5, seq: 1 }), "hidden"],
    ["swiglu missing w3 length", () => G.swiglu({ dim: 2, hidden: 2, seq: 1, w3: [1] }), "w3"],
    ["rmsNorm eps 0", () => G.rmsNorm({ dim: 4, seq: 1, eps: 0 }), "eps"],
    ["layerNorm gamma length", () => G.layerNorm({ dim: 4, seq: 1, gamma: [1] }), "gamma"],
    ["softmax axis 2", () => G.softmax({ channels: 4, seq: 1, axis: 2 as 1 }), "axis"],
    ["attention heads not dividing dim", () => G.attention({ dim: 10, heads: 3, seq: 4 }), "heads"],
    ["rope odd headDim", () => G.rope({ heads: 1, headDim: 3, seq: 2 }), "headDim"],
    ["rope negative position", () => G.rope({ heads: 1, headDim: 4, seq: 2, position: -1 }), "position"],
    ["state bad name", () => G.readState({ name: "1x", shape: [1, 2] }), "name"],
    ["state rank 0", () => G.updateState({ name: "s", shape: [] }), "shape"],
    ["conv2d groups", () => G.conv2d({ inChannels: 3, outChannels: 4, height: 4, width: 4, groups: 2 }), "groups"],
    ["conv2d kernel larger than input", () => G.conv2d({ inChannels: 1, outChannels: 1, height: 2, width: 2, kernel: [3, 3] }), "kernel"],
    ["binary unknown op", () => G.binary({ op: "mod" as "add", shape: [1, 2] }), "op"],
    ["unary rank 6", () => G.unary({ op: "relu", shape: [1, 1, 1, 1, 1, 1] }), "shape"]
  ]
  for (const [name, f, argument] of bad) {
    it(name, () => {
      let caught: unknown
      try {
        f()
      } catch (e) {
        caught = e
      }
      expect(caught).toBeInstanceOf(InvalidArgumentError)
      expect((caught as InvalidArgumentError).argument).toBe(argument)
    })
  }

  it.effect("the Effect variants fail in the error channel", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(GeneratorsEffect.attention({ dim: 10, heads: 3, seq: 4 }))
      expect(e._tag).toBe("InvalidArgumentError")
      const ok = yield* GeneratorsEffect.softmax({ channels: 4, seq: 2 })
      expect(ok.outputs[0]!.shape).toEqual([1, 4, 1, 2])
    }))
})

describe("layout helpers", () => {
  it("toChannelFirst / fromChannelFirst: [1..6] as 2 tokens × 3 features ↔ [1,4,2,5,3,6]", () => {
    expect([...G.toChannelFirst([1, 2, 3, 4, 5, 6], 2, 3)]).toEqual([1, 4, 2, 5, 3, 6])
    expect([...G.fromChannelFirst([1, 4, 2, 5, 3, 6], 2, 3)]).toEqual([1, 2, 3, 4, 5, 6])
  })

  it("rejects a length that is not seq × dim", () => {
    expect(() => G.toChannelFirst([1, 2, 3], 2, 2)).toThrow(InvalidArgumentError)
    expect(() => G.fromChannelFirst([1], 0, 1)).toThrow(/seq, dim/)
    expect(() => G.packDynamicMatmulInput([1], [1, 2], { inDim: 1, outDim: 1, batch: 1 })).toThrow(/expected 1 values/)
  })
})

describe("weights and signatures", () => {
  it("stores the given weights, rounded to fp16, at the BLOBFILE offsets the text names", () => {
    const w = Array.from({ length: 24 }, (_, i) => (i - 12) / 7)
    const g = G.linear({ inDim: 6, outDim: 4, seq: 8, weights: w, bias: [0.1, 0.2, 0.3, 0.4] })
    expect(g.weights.map((f) => f.path)).toEqual(["@model_path/weights/weight.bin"])
    const offsets = [...g.text.matchAll(/offset=uint64\((\d+)\)/g)].map((m) => Number(m[1]))
    expect(offsets).toEqual([64, 192])
    const wd = readBlobAt(g.weights[0]!.bytes, offsets[0]!, { dtype: "fp16", elements: 24 })
    if (wd instanceof InvalidArgumentError) throw wd
    expect([...decodeBlob(wd)]).toEqual(w.map(fp16))
    const bd = readBlobAt(g.weights[0]!.bytes, offsets[1]!, { dtype: "fp16", elements: 4 })
    if (bd instanceof InvalidArgumentError) throw bd
    expect([...decodeBlob(bd)]).toEqual([0.1, 0.2, 0.3, 0.4].map(fp16))
    expect(g.inputs).toEqual([{ name: "x", dtype: "fp16", shape: [1, 6, 1, 8] }])
    expect(g.outputs).toEqual([{ name: "y", dtype: "fp16", shape: [1, 4, 1, 8] }])
  })

  it("writes the causal mask as −65504 above the diagonal and 0 elsewhere", () => {
    const g = G.attention({ dim: 4, heads: 1, seq: 3 })
    expect(g.text).toContain('mask = const()[name=string("mask"), val=tensor<fp16, [1,1,3,3]>(BLOBFILE(')
    const m = readBlobAt(g.weights[0]!.bytes, 64, { dtype: "fp16", elements: 9 })
    if (m instanceof InvalidArgumentError) throw m
    expect([...decodeBlob(m)]).toEqual([0, -65504, -65504, 0, 0, -65504, 0, 0, 0])
  })

  it("is deterministic: same options, same text and bytes", () => {
    const a = G.swiglu({ dim: 8, hidden: 16, seq: 4 })
    const b = G.swiglu({ dim: 8, hidden: 16, seq: 4 })
    expect(a.text).toBe(b.text)
    expect(a.weights[0]!.bytes).toEqual(b.weights[0]!.bytes)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Numerics: the simulator ("ane" numerics: fp16 storage between ops) against a float64 reference.

const lcg = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296 * 2 - 1
  }
}
const randoms = (n: number, seed: number, scale = 1) => {
  const r = lcg(seed)
  return Float64Array.from({ length: n }, () => r() * scale)
}

/** Runs `g` on the simulator with inputs by name; returns the outputs in order. */
const simulate = (g: Generated, inputs: Readonly<Record<string, ArrayLike<number>>>): Array<Float32Array> => {
  const p = plan(g.program, {
    numerics: "ane",
    weight: (file) => g.weights.find((w) => w.path === file)?.bytes
  })
  if (!("run" in p)) throw new Error(p.map(formatDiagnostic).join("\n"))
  for (const v of p.inputs) {
    const data = inputs[v.name]
    if (data === undefined) throw new Error(`no data for input ${v.name}`)
    v.data.set(Array.from(data))
  }
  p.run()
  return p.outputs.map((o) => Float32Array.from(o.data))
}

const expectClose = (actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number) => {
  expect(actual.length).toBe(expected.length)
  let worst = 0
  let at = -1
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - rtol * Math.abs(expected[i]!)
    if (!(err <= worst)) {
      worst = err
      at = i
    }
  }
  expect(worst <= atol, `element ${at}: ${actual[at]} vs ${expected[at]} (atol ${atol}, rtol ${rtol})`).toBe(true)
}

/** y[o, s] = Σ_i W[o, i]·x[i, s] on channel-first [C, S] data. */
const conv1x1 = (w: ArrayLike<number>, x: ArrayLike<number>, out: number, inn: number, seq: number) => {
  const y = new Float64Array(out * seq)
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) for (let s = 0; s < seq; s++) y[o * seq + s] += w[o * inn + i]! * x[i * seq + s]!
  return y
}

describe("numerics against a float64 reference (simulator, fp16 between ops)", () => {
  it("linear: |err| ≤ 1e-2 + 1e-2·|y| (fp16 weights and activations, 16-term sums)", () => {
    const [inDim, outDim, seq] = [16, 8, 32]
    const w = randoms(inDim * outDim, 1, 0.25)
    const bias = randoms(outDim, 2)
    const x = randoms(inDim * seq, 3)
    const g = G.linear({ inDim, outDim, seq, weights: w, bias })
    const ref = conv1x1(w, x, outDim, inDim, seq).map((v, i) => v + bias[Math.floor(i / seq)]!)
    expectClose(simulate(g, { x })[0]!, ref, 1e-2, 1e-2)
  })

  it("linear fp32 I/O: same tolerance", () => {
    const w = randoms(64, 4, 0.25)
    const x = randoms(8 * 4, 5)
    const g = G.linear({ inDim: 8, outDim: 8, seq: 4, weights: w, io: "fp32" })
    expectClose(simulate(g, { x })[0]!, conv1x1(w, x, 8, 8, 4), 1e-2, 1e-2)
  })

  it("matmul (two inputs and const weights): |err| ≤ 2e-2 + 1e-2·|y|", () => {
    const [b, m] = [2, 8]
    const a = randoms(b * m * m, 6)
    const bb = randoms(b * m * m, 7)
    const ref = new Float64Array(b * m * m)
    for (let t = 0; t < b; t++) for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) for (let k = 0; k < m; k++) {
      ref[t * m * m + i * m + j] += a[t * m * m + i * m + k]! * bb[t * m * m + k * m + j]!
    }
    expectClose(simulate(G.matmul({ batch: b, m, k: m, n: m }), { a, b: bb })[0]!, ref, 2e-2, 1e-2)
    expectClose(simulate(G.matmul({ batch: b, m, k: m, n: m, weights: bb }), { a })[0]!, ref, 2e-2, 1e-2)
  })

  it("dynamicMatmul with packDynamicMatmulInput: y[o, t] = Σ_d x[t, d]·w[d, o], |err| ≤ 2e-2 + 1e-2·|y|", () => {
    const [inDim, outDim, batch] = [8, 5, 3]
    const x = randoms(batch * inDim, 8)
    const w = randoms(inDim * outDim, 9)
    const packed = G.packDynamicMatmulInput(x, w, { inDim, outDim, batch })
    const ref = new Float64Array(outDim * batch)
    for (let o = 0; o < outDim; o++) for (let t = 0; t < batch; t++) for (let d = 0; d < inDim; d++) ref[o * batch + t] += x[t * inDim + d]! * w[d * outDim + o]!
    expectClose(simulate(G.dynamicMatmul({ inDim, outDim, batch }), { x: packed })[0]!, ref, 2e-2, 1e-2)
  })

  it("ffn (relu², silu) and swiglu: |err| ≤ 2e-2 + 2e-2·|y|", () => {
    const [dim, hidden, seq] = [8, 16, 4]
    const x = randoms(dim * seq, 10)
    const w1 = randoms(hidden * dim, 11, 0.4)
    const w3 = randoms(hidden * dim, 13, 0.4)
    const w2 = randoms(dim * hidden, 12, 0.3)
    const h1 = conv1x1(w1, x, hidden, dim, seq)
    const h3 = conv1x1(w3, x, hidden, dim, seq)
    const silu = (v: number) => v / (1 + Math.exp(-v))
    const relu2 = h1.map((v) => Math.max(v, 0) ** 2)
    expectClose(simulate(G.ffn({ dim, hidden, seq, w1, w2, activation: "relu2" }), { x })[0]!, conv1x1(w2, relu2, dim, hidden, seq), 2e-2, 2e-2)
    expectClose(simulate(G.ffn({ dim, hidden, seq, w1, w2, activation: "silu" }), { x })[0]!, conv1x1(w2, h1.map(silu), dim, hidden, seq), 2e-2, 2e-2)
    const gate = h1.map((v, i) => silu(v) * h3[i]!)
    expectClose(simulate(G.swiglu({ dim, hidden, seq, w1, w2, w3 }), { x })[0]!, conv1x1(w2, gate, dim, hidden, seq), 2e-2, 2e-2)
  })

  it("rmsNorm: |err| ≤ 1e-2 + 1e-2·|y|", () => {
    const [dim, seq] = [16, 8]
    const x = randoms(dim * seq, 14, 2)
    const gain = randoms(dim, 15)
    const ref = new Float64Array(dim * seq)
    for (let s = 0; s < seq; s++) {
      let ms = 0
      for (let c = 0; c < dim; c++) ms += x[c * seq + s]! ** 2 / dim
      const r = 1 / Math.sqrt(ms + 1e-5)
      for (let c = 0; c < dim; c++) ref[c * seq + s] = x[c * seq + s]! * r * gain[c]!
    }
    expectClose(simulate(G.rmsNorm({ dim, seq, gain }), { x })[0]!, ref, 1e-2, 1e-2)
  })

  it("rmsNorm overflowSafe: inputs near 1000 (x² overflows fp16) stay within 1e-2 + 1e-2·|y|; the plain form does not", () => {
    const [dim, seq] = [8, 4]
    const x = randoms(dim * seq, 33, 1000)
    const ref = new Float64Array(dim * seq)
    for (let s = 0; s < seq; s++) {
      let ms = 0
      let peak = 0
      for (let c = 0; c < dim; c++) {
        ms += x[c * seq + s]! ** 2 / dim
        peak = Math.max(peak, Math.abs(x[c * seq + s]!))
      }
      // eps applies to the rescaled values: eps·peak² in input units.
      const r = 1 / Math.sqrt(ms + 1e-5 * peak * peak)
      for (let c = 0; c < dim; c++) ref[c * seq + s] = x[c * seq + s]! * r
    }
    expectClose(simulate(G.rmsNorm({ dim, seq, overflowSafe: true }), { x })[0]!, ref, 1e-2, 1e-2)
    const plain = simulate(G.rmsNorm({ dim, seq }), { x })[0]!
    expect(plain.some((v, i) => !(Math.abs(v - ref[i]!) <= 0.1))).toBe(true)
  })

  it("layerNorm: |err| ≤ 1e-2 + 1e-2·|y|", () => {
    const [dim, seq] = [16, 4]
    const x = randoms(dim * seq, 16, 2)
    const gamma = randoms(dim, 17)
    const beta = randoms(dim, 18)
    const ref = new Float64Array(dim * seq)
    for (let s = 0; s < seq; s++) {
      let mean = 0
      for (let c = 0; c < dim; c++) mean += x[c * seq + s]! / dim
      let v = 0
      for (let c = 0; c < dim; c++) v += (x[c * seq + s]! - mean) ** 2 / dim
      for (let c = 0; c < dim; c++) ref[c * seq + s] = (x[c * seq + s]! - mean) / Math.sqrt(v + 1e-5) * gamma[c]! + beta[c]!
    }
    expectClose(simulate(G.layerNorm({ dim, seq, gamma, beta }), { x })[0]!, ref, 1e-2, 1e-2)
  })

  it("softmax over channels and over tokens: |err| ≤ 2e-3", () => {
    const [c, s] = [6, 5]
    const x = randoms(c * s, 19, 4)
    const ch = new Float64Array(c * s)
    const tok = new Float64Array(c * s)
    for (let j = 0; j < s; j++) {
      const m = Math.max(...Array.from({ length: c }, (_, i) => x[i * s + j]!))
      const z = Array.from({ length: c }, (_, i) => Math.exp(x[i * s + j]! - m)).reduce((a, b) => a + b)
      for (let i = 0; i < c; i++) ch[i * s + j] = Math.exp(x[i * s + j]! - m) / z
    }
    for (let i = 0; i < c; i++) {
      const row = Array.from({ length: s }, (_, j) => x[i * s + j]!)
      const m = Math.max(...row)
      const z = row.map((v) => Math.exp(v - m)).reduce((a, b) => a + b)
      for (let j = 0; j < s; j++) tok[i * s + j] = Math.exp(row[j]! - m) / z
    }
    expectClose(simulate(G.softmax({ channels: c, seq: s }), { x })[0]!, ch, 2e-3, 0)
    expectClose(simulate(G.softmax({ channels: c, seq: s, axis: -1 }), { x })[0]!, tok, 2e-3, 0)
  })

  /** Causal multi-head attention on channel-first [D, S] q/k/v, channel c = head·hd + d. */
  const attentionRef = (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dim: number, heads: number, seq: number, causal: boolean) => {
    const hd = dim / heads
    const y = new Float64Array(dim * seq)
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < seq; t++) {
        const scores = Array.from({ length: seq }, (_, u) => {
          if (causal && u > t) return -Infinity
          let dot = 0
          for (let d = 0; d < hd; d++) dot += q[(h * hd + d) * seq + t]! * k[(h * hd + d) * seq + u]!
          return dot / Math.sqrt(hd)
        })
        const m = Math.max(...scores)
        const e = scores.map((s) => Math.exp(s - m))
        const z = e.reduce((a, b) => a + b)
        for (let d = 0; d < hd; d++) {
          let acc = 0
          for (let u = 0; u < seq; u++) acc += (e[u]! / z) * v[(h * hd + d) * seq + u]!
          y[(h * hd + d) * seq + t] = acc
        }
      }
    }
    return y
  }

  it("attention (causal, decomposed): |err| ≤ 1e-2 + 1e-2·|y|", () => {
    const [dim, heads, seq] = [8, 2, 6]
    const q = randoms(dim * seq, 20)
    const k = randoms(dim * seq, 21)
    const v = randoms(dim * seq, 22)
    const out = simulate(G.attention({ dim, heads, seq }), { q, k, v })[0]!
    expectClose(out, attentionRef(q, k, v, dim, heads, seq, true), 1e-2, 1e-2)
    const full = simulate(G.attention({ dim, heads, seq, causal: false }), { q, k, v })[0]!
    expectClose(full, attentionRef(q, k, v, dim, heads, seq, false), 1e-2, 1e-2)
  })

  it("attention with projections: y = Wo·attn(Wq·x, Wk·x, Wv·x), |err| ≤ 2e-2 + 2e-2·|y|", () => {
    const [dim, heads, seq] = [8, 2, 4]
    const x = randoms(dim * seq, 34)
    const [wq, wk, wv, wo] = [35, 36, 37, 38].map((seed) => randoms(dim * dim, seed, 0.4))
    const attn = attentionRef(conv1x1(wq!, x, dim, dim, seq), conv1x1(wk!, x, dim, dim, seq), conv1x1(wv!, x, dim, dim, seq), dim, heads, seq, true)
    const g = G.attention({ dim, heads, seq, projections: { wq: wq!, wk: wk!, wv: wv!, wo: wo! } })
    expectClose(simulate(g, { x })[0]!, conv1x1(wo!, attn, dim, dim, seq), 2e-2, 2e-2)
  })

  it("sdpa (iOS18 op with the causal attn_mask): |err| ≤ 1e-2 + 1e-2·|y|", () => {
    const [heads, hd, seq] = [2, 4, 5]
    const dim = heads * hd
    // The op takes [1, h, S, hd]; the reference works on channel-first [h·hd, S], so transpose per head.
    const q = randoms(dim * seq, 30)
    const k = randoms(dim * seq, 31)
    const v = randoms(dim * seq, 32)
    const toHeads = (a: ArrayLike<number>) => {
      const out = new Float64Array(dim * seq)
      for (let h = 0; h < heads; h++) for (let d = 0; d < hd; d++) for (let s = 0; s < seq; s++) out[(h * seq + s) * hd + d] = a[(h * hd + d) * seq + s]!
      return out
    }
    const out = simulate(G.sdpa({ heads, headDim: hd, seq }), { query: toHeads(q), key: toHeads(k), value: toHeads(v) })[0]!
    expectClose(out, toHeads(attentionRef(q, k, v, dim, heads, seq, true)), 1e-2, 1e-2)
  })

  it("rope: |err| ≤ 5e-3 + 5e-3·|y| against the rotation of each interleaved pair", () => {
    const [heads, headDim, seq, position] = [2, 8, 5, 3]
    const dim = heads * headDim
    const x = randoms(dim * seq, 23)
    const ref = new Float64Array(dim * seq)
    for (let h = 0; h < heads; h++) for (let i = 0; i < headDim / 2; i++) for (let s = 0; s < seq; s++) {
      const a = (position + s) / Math.pow(10000, (2 * i) / headDim)
      const c0 = (h * headDim + 2 * i) * seq + s
      const c1 = (h * headDim + 2 * i + 1) * seq + s
      ref[c0] = x[c0]! * Math.cos(a) - x[c1]! * Math.sin(a)
      ref[c1] = x[c1]! * Math.cos(a) + x[c0]! * Math.sin(a)
    }
    expectClose(simulate(G.rope({ heads, headDim, seq, position }), { x })[0]!, ref, 5e-3, 5e-3)
    const t = ropeTables({ heads: 1, headDim: 2, seq: 2, position: 1 })
    expect([t.cos[0], t.sin[1]]).toEqual([Math.fround(Math.cos(1)), Math.fround(Math.sin(2))])
  })

  it("conv2d (3×3, same, stride 2, bias): |err| ≤ 2e-2 + 1e-2·|y|", () => {
    const [cin, cout, h, w] = [2, 3, 5, 6]
    const weights = randoms(cout * cin * 9, 24, 0.3)
    const bias = randoms(cout, 25)
    const x = randoms(cin * h * w, 26)
    const [oh, ow] = [3, 3]
    // same with stride 2: total pad = max(0, 2·ceil(n/2) − n + 3 − 2); the smaller half goes before (errata row 2).
    const padBefore = (n: number) => Math.floor(Math.max(0, 2 * Math.ceil(n / 2) - n + 1) / 2)
    const [ph, pw] = [padBefore(h), padBefore(w)]
    const ref = new Float64Array(cout * oh * ow)
    for (let o = 0; o < cout; o++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let acc = bias[o]!
      for (let c = 0; c < cin; c++) for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) {
        const yy = 2 * i - ph + a
        const xx = 2 * j - pw + b
        if (yy >= 0 && yy < h && xx >= 0 && xx < w) acc += weights[((o * cin + c) * 3 + a) * 3 + b]! * x[(c * h + yy) * w + xx]!
      }
      ref[(o * oh + i) * ow + j] = acc
    }
    const g = G.conv2d({ inChannels: cin, outChannels: cout, height: h, width: w, kernel: [3, 3], stride: [2, 2], padding: "same", weights, bias })
    expect(g.outputs[0]!.shape).toEqual([1, cout, oh, ow])
    expectClose(simulate(g, { x })[0]!, ref, 2e-2, 1e-2)
  })

  it("binary and unary ops: |err| ≤ 2e-3 + 2e-3·|y|", () => {
    const shape = [1, 4, 1, 8]
    const x = randoms(32, 27)
    const y = randoms(32, 28).map((v) => v + 2)
    const bin: ReadonlyArray<readonly ["add" | "sub" | "mul" | "real_div" | "maximum" | "minimum", (a: number, b: number) => number]> = [
      ["add", (a, b) => a + b], ["sub", (a, b) => a - b], ["mul", (a, b) => a * b], ["real_div", (a, b) => a / b],
      ["maximum", Math.max], ["minimum", Math.min]
    ]
    for (const [op, f] of bin) expectClose(simulate(G.binary({ op, shape }), { x, y })[0]!, x.map((a, i) => f(a, y[i]!)), 2e-3, 2e-3)
    expectClose(simulate(G.binary({ op: "mul", shape, scalar: 0.5 }), { x })[0]!, x.map((a) => a / 2), 2e-3, 2e-3)
    const un: ReadonlyArray<readonly ["relu" | "sigmoid" | "tanh" | "exp" | "abs" | "square" | "silu", (a: number) => number]> = [
      ["relu", (a) => Math.max(a, 0)], ["sigmoid", (a) => 1 / (1 + Math.exp(-a))], ["tanh", Math.tanh], ["exp", Math.exp],
      ["abs", Math.abs], ["square", (a) => a * a], ["silu", (a) => a / (1 + Math.exp(-a))]
    ]
    for (const [op, f] of un) expectClose(simulate(G.unary({ op, shape }), { x })[0]!, x.map(f), 2e-3, 2e-3)
    expectClose(simulate(G.unary({ op: "sqrt", shape }), { x: y })[0]!, y.map(Math.sqrt), 2e-3, 2e-3)
  })

  it("state: readState returns the (reset, zero) state; updateState (write_state + read_state) returns the value written", () => {
    const shape = [1, 2, 1, 4]
    expectClose(simulate(G.readState({ name: "k_cache", shape }), {})[0]!, new Float64Array(8), 0, 0)
    const value = randoms(8, 29).map(fp16)
    expectClose(simulate(G.updateState({ name: "k_cache", shape }), { value })[0]!, value, 0, 0)
  })
})
