/** The generator configurations the golden, grid and numeric tests share. */
import { Generators as G, type Generated } from "../../src/mil/generators/index.js"

/** One golden case per generator: a small size whose text is stored in test/mil/golden/<name>.mil. */
export const goldenCases: ReadonlyArray<readonly [string, () => Generated]> = [
  ["linear", () => G.linear({ inDim: 3, outDim: 2, seq: 4, weights: [1, 2, 3, 0.5, -1, 0], bias: [0.25, -2] })],
  ["linear-fp32", () => G.linear({ inDim: 4, outDim: 8, seq: 1, io: "fp32" })],
  ["matmul", () => G.matmul({ m: 4, k: 4, n: 4, batch: 2 })],
  ["matmul-const", () => G.matmul({ m: 2, k: 4, n: 8, weights: true })],
  ["dynamic-matmul", () => G.dynamicMatmul({ inDim: 4, outDim: 2, batch: 3 })],
  ["ffn-relu2", () => G.ffn({ dim: 4, hidden: 8, seq: 2, activation: "relu2" })],
  ["swiglu", () => G.swiglu({ dim: 4, hidden: 8, seq: 2 })],
  ["rmsnorm", () => G.rmsNorm({ dim: 4, seq: 2, gain: [1, 2, 3, 4] })],
  ["layernorm", () => G.layerNorm({ dim: 4, seq: 2 })],
  ["softmax", () => G.softmax({ channels: 4, seq: 2 })],
  ["attention", () => G.attention({ dim: 8, heads: 2, seq: 4 })],
  ["attention-proj", () => G.attention({ dim: 4, heads: 2, seq: 2, projections: true })],
  ["sdpa", () => G.sdpa({ heads: 2, headDim: 4, seq: 4 })],
  ["rope", () => G.rope({ heads: 1, headDim: 4, seq: 2 })],
  ["read-state", () => G.readState({ name: "k_cache", shape: [1, 4, 1, 8] })],
  ["update-state", () => G.updateState({ name: "k_cache", shape: [1, 4, 1, 8] })],
  ["conv2d", () => G.conv2d({ inChannels: 2, outChannels: 3, height: 5, width: 5, kernel: [3, 3], stride: [2, 2], padding: "same", bias: [0, 1, 2] })],
  ["binary-add", () => G.binary({ op: "add", shape: [1, 4, 1, 8] })],
  ["binary-scale", () => G.binary({ op: "mul", shape: [1, 4, 1, 8], scalar: 0.5 })],
  ["unary-silu", () => G.unary({ op: "silu", shape: [1, 4, 1, 8] })]
]
