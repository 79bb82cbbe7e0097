/**
 * Per-op checks: each op runs as a one-node model on the simulator (exact numerics) against a reference written
 * here in plain TypeScript, or against the importer's own constant folding of the same node (an independent path:
 * folding never reaches MIL).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Onnx from "../../src/onnx/Onnx.js"
import { floatTensor, intTensor, modelBytes, type NodeSpec, randoms } from "./graph.js"
import { compileImported, maxAbsDiff, simulator } from "./run.js"

interface Case {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly nodes: ReadonlyArray<NodeSpec>
  readonly init?: Parameters<typeof modelBytes>[0]["initializers"]
  readonly ref?: (x: Float32Array) => Float32Array
  readonly positive?: boolean
  readonly opset?: number
}

const one = (op: string, attrs: NodeSpec["attrs"] = {}, extra: ReadonlyArray<string> = []): ReadonlyArray<NodeSpec> =>
  [{ op, inputs: ["x", ...extra], outputs: ["y"], attrs }]

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

const cases: ReadonlyArray<Case> = [
  { name: "Relu", shape: [2, 8], nodes: one("Relu"), ref: (x) => x.map((v) => Math.max(v, 0)) },
  { name: "Sigmoid", shape: [2, 8], nodes: one("Sigmoid"), ref: (x) => x.map(sigmoid) },
  { name: "Tanh", shape: [2, 8], nodes: one("Tanh"), ref: (x) => x.map(Math.tanh) },
  { name: "Sqrt", shape: [2, 8], nodes: one("Sqrt"), positive: true, ref: (x) => x.map(Math.sqrt) },
  { name: "Exp", shape: [2, 8], nodes: one("Exp"), ref: (x) => x.map(Math.exp) },
  { name: "Log", shape: [2, 8], nodes: one("Log"), positive: true, ref: (x) => x.map(Math.log) },
  { name: "Neg", shape: [2, 8], nodes: one("Neg"), ref: (x) => x.map((v) => -v) },
  { name: "Abs", shape: [2, 8], nodes: one("Abs"), ref: (x) => x.map(Math.abs) },
  { name: "Erf", shape: [2, 8], nodes: one("Erf") },
  { name: "LeakyRelu", shape: [2, 8], nodes: one("LeakyRelu", { alpha: { float: 0.2 } }), ref: (x) => x.map((v) => (v < 0 ? 0.2 * v : v)) },
  { name: "HardSigmoid", shape: [2, 8], nodes: one("HardSigmoid"), ref: (x) => x.map((v) => Math.min(Math.max(0.2 * v + 0.5, 0), 1)) },
  { name: "HardSwish", shape: [2, 8], nodes: one("HardSwish"), ref: (x) => x.map((v) => v * Math.min(Math.max(v / 6 + 0.5, 0), 1)) },
  { name: "Gelu", shape: [2, 8], nodes: one("Gelu"), opset: 20 },
  { name: "Clip", shape: [2, 8], nodes: one("Clip", {}, ["lo", "hi"]), init: [floatTensor("lo", [], [-0.3]), floatTensor("hi", [], [0.4])], ref: (x) => x.map((v) => Math.min(Math.max(v, -0.3), 0.4)) },
  { name: "Add", shape: [2, 8], nodes: one("Add", {}, ["c"]), init: [floatTensor("c", [8], randoms(8, 3))] },
  { name: "Sub", shape: [2, 8], nodes: one("Sub", {}, ["c"]), init: [floatTensor("c", [1, 8], randoms(8, 4))] },
  { name: "Mul", shape: [2, 8], nodes: one("Mul", {}, ["c"]), init: [floatTensor("c", [2, 1], randoms(2, 5))] },
  { name: "Div", shape: [2, 8], nodes: one("Div", {}, ["c"]), init: [floatTensor("c", [], [1.7])] },
  { name: "Pow", shape: [2, 8], nodes: one("Pow", {}, ["c"]), init: [floatTensor("c", [], [2])], ref: (x) => x.map((v) => v * v) },
  { name: "Min", shape: [2, 8], nodes: one("Min", {}, ["c"]), init: [floatTensor("c", [8], randoms(8, 6))] },
  { name: "Max", shape: [2, 8], nodes: one("Max", {}, ["c"]), init: [floatTensor("c", [8], randoms(8, 7))] },
  { name: "Where", shape: [2, 8], nodes: [{ op: "Greater", inputs: ["x", "z"], outputs: ["m"] }, { op: "Where", inputs: ["m", "x", "z"], outputs: ["y"] }], init: [floatTensor("z", [], [0])], ref: (x) => x.map((v) => Math.max(v, 0)) },
  { name: "Transpose", shape: [2, 3, 4], nodes: one("Transpose", { perm: [2, 0, 1] }) },
  { name: "Reshape", shape: [2, 3, 4], nodes: one("Reshape", {}, ["s"]), init: [intTensor("s", [2], [4, -1])] },
  { name: "Squeeze/Unsqueeze", shape: [2, 1, 4], nodes: [{ op: "Squeeze", inputs: ["x", "a"], outputs: ["s"] }, { op: "Unsqueeze", inputs: ["s", "b"], outputs: ["y"] }], init: [intTensor("a", [1], [1]), intTensor("b", [1], [0])] },
  { name: "Flatten", shape: [2, 3, 4], nodes: one("Flatten", { axis: 2 }) },
  { name: "Slice", shape: [4, 6], nodes: one("Slice", {}, ["st", "en", "ax", "sp"]), init: [intTensor("st", [2], [1, -1]), intTensor("en", [2], [3, 0]), intTensor("ax", [2], [0, 1]), intTensor("sp", [2], [1, -2])] },
  { name: "Concat", shape: [2, 3], nodes: one("Concat", { axis: 1 }, ["c"]), init: [floatTensor("c", [2, 2], randoms(4, 8))] },
  { name: "Split", shape: [2, 6], nodes: [{ op: "Split", inputs: ["x", "sz"], outputs: ["a", "b"], attrs: { axis: 1 } }, { op: "Sub", inputs: ["a", "b"], outputs: ["y"] }], init: [intTensor("sz", [2], [3, 3])] },
  { name: "Gather", shape: [4, 3], nodes: one("Gather", { axis: 0 }, ["i"]), init: [intTensor("i", [3], [3, 0, -1])] },
  { name: "Expand", shape: [1, 3], nodes: one("Expand", {}, ["s"]), init: [intTensor("s", [3], [2, 4, 3])] },
  { name: "Tile", shape: [2, 3], nodes: one("Tile", {}, ["r"]), init: [intTensor("r", [2], [2, 2])] },
  { name: "Pad reflect", shape: [1, 2, 6], nodes: one("Pad", { mode: "reflect" }, ["p"]), init: [intTensor("p", [6], [0, 0, 2, 0, 0, 3])] },
  { name: "Pad constant", shape: [1, 2, 4], nodes: one("Pad", {}, ["p", "v"]), init: [intTensor("p", [6], [0, 1, 1, 0, 0, 2]), floatTensor("v", [], [0.5])] },
  { name: "ReduceMean", shape: [2, 3, 4], nodes: one("ReduceMean", { axes: [1, 2], keepdims: 0 }), opset: 17 },
  { name: "ReduceSum", shape: [2, 3, 4], nodes: one("ReduceSum", {}, ["a"]), init: [intTensor("a", [1], [-1])] },
  { name: "Cast", shape: [2, 4], nodes: [{ op: "Cast", inputs: ["x"], outputs: ["y"], attrs: { to: 10 } }] }
]

const runBoth = (c: Case) =>
  Effect.gen(function*() {
    const n = c.shape.reduce((a, b) => a * b, 1)
    const x = randoms(n, 11, 2).map((v) => (c.positive ? Math.abs(v) + 0.1 : v))
    const bytes = modelBytes({ opset: c.opset ?? 18, inputs: [{ name: "x", shape: c.shape }], outputs: [{ name: "y" }], nodes: c.nodes, initializers: c.init ?? [] })
    const imported = yield* Onnx.importBytes(bytes)
    const { run } = yield* compileImported(imported)
    const y = (yield* run({ x }, ["y"]))["y"]!
    // The same node with x fixed: the importer folds it on the CPU, into the program's one constant output.
    const folded = yield* Onnx.importBytes(bytes, { inputValues: { x: Array.from(x) } })
    return { x, y, folded }
  })

describe("ONNX op converters", () => {
  for (const c of cases) {
    it.effect(`${c.name} runs as the reference computes`, () =>
      Effect.gen(function*() {
        const { x, y, folded } = yield* runBoth(c)
        if (c.ref !== undefined) expect(maxAbsDiff(y, c.ref(x))).toBeLessThan(5e-3)
        // Folded: the program returns a constant; run it to read the folded values back.
        const { run } = yield* compileImported(folded)
        const f = (yield* run({}, ["y"]))["y"]!
        expect(f.length).toBe(y.length)
        expect(maxAbsDiff(y, f)).toBeLessThan(5e-3)
      }).pipe(Effect.scoped, Effect.provide(simulator("exact"))), 20_000)
  }
})
