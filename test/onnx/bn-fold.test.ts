/**
 * BatchNormalization after a Conv is folded into the Conv's weights and bias when nothing else reads the Conv's
 * output; the folded program computes what the unfolded one does (and, for the conv net fixture, what onnxruntime
 * does: test/onnx/graphs.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import * as Onnx from "../../src/onnx/Onnx.js"
import { floatTensor, modelBytes, type ModelSpec, type NodeSpec, randoms } from "./graph.js"
import { compileImported, maxAbsDiff, simulator } from "./run.js"

const C = 4, O = 6
const bnInit = [
  floatTensor("g", [O], randoms(O, 61, 1.5)), floatTensor("beta", [O], randoms(O, 62)),
  floatTensor("mu", [O], randoms(O, 63, 0.5)), floatTensor("var", [O], randoms(O, 64).map((v) => Math.abs(v) + 0.2))
]
const conv = (bias: boolean): NodeSpec =>
  ({ op: "Conv", inputs: ["x", "w", ...(bias ? ["b"] : [])], outputs: ["c"], attrs: { pads: [1, 1, 1, 1] }, name: "conv" })
const bn: NodeSpec = { op: "BatchNormalization", inputs: ["c", "g", "beta", "mu", "var"], outputs: ["y"], attrs: { epsilon: { float: 1e-3 } }, name: "bn" }
const init = (bias: boolean) => [
  floatTensor("w", [O, C, 3, 3], randoms(O * C * 9, 65, 0.4)), ...(bias ? [floatTensor("b", [O], randoms(O, 66))] : []), ...bnInit
]
const x = randoms(C * 5 * 7, 67)

/** The program's op names (`= op(`), in order. */
const opsOf = (text: string) =>
  text.split("\n").map((line) => /=\s*([a-z_][a-z0-9_]*)\(/.exec(line)?.[1]).filter((op) => op !== undefined && op !== "const")

/** y (and any extra outputs) of `spec` on the simulator, with the program's ops. */
const run = (spec: ModelSpec) =>
  Effect.gen(function*() {
    const imported = yield* Onnx.importBytes(modelBytes(spec))
    const { run } = yield* compileImported(imported)
    const out = yield* run({ x }, spec.outputs.map((o) => o.name))
    return { ops: opsOf(imported.text), y: out["y"]!, imported }
  })

/** BatchNormalization computed here on the CPU from the unfolded program's conv output. */
const normalise = (c: Float32Array, plane: number) => {
  const [g, beta, mu, v] = bnInit.map((t) => new Float32Array(t.rawData.slice().buffer))
  return c.map((val, i) => {
    const o = Math.floor(i / plane) % O
    return (val - mu![o]!) * g![o]! / Math.sqrt(v![o]! + 1e-3) + beta![o]!
  })
}

describe("BatchNormalization folded into Conv", () => {
  for (const bias of [true, false]) {
    it.effect(`Conv${bias ? " with" : " without"} bias then BN becomes one conv and one add, with the same result`, () =>
      Effect.gen(function*() {
        const folded = yield* run({
          inputs: [{ name: "x", shape: [1, C, 5, 7] }], outputs: [{ name: "y" }], nodes: [conv(bias), bn], initializers: init(bias)
        })
        expect(folded.ops).toEqual(["conv", "add"])
        // The same graph with the conv's output also returned: nothing is folded, BN is a mul and an add.
        const plain = yield* run({
          inputs: [{ name: "x", shape: [1, C, 5, 7] }], outputs: [{ name: "y" }, { name: "c" }], nodes: [conv(bias), bn], initializers: init(bias)
        })
        expect(plain.ops.filter((o) => o === "mul")).toHaveLength(1)
        expect(maxAbsDiff(folded.y, plain.y)).toBeLessThan(2e-3)
        // And both agree with the normalisation applied on the CPU to the conv's own output.
        const { run: runPlain } = yield* compileImported(plain.imported)
        const c = (yield* runPlain({ x }, ["c"]))["c"]!
        expect(maxAbsDiff(folded.y, normalise(c, 35))).toBeLessThan(2e-3)
      }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))
  }

  it.effect("is not folded when another node reads the conv's output, or the weights are not constant", () =>
    Effect.gen(function*() {
      const shared = yield* run({
        inputs: [{ name: "x", shape: [1, C, 5, 7] }], outputs: [{ name: "y" }, { name: "z" }],
        nodes: [conv(true), bn, { op: "Relu", inputs: ["c"], outputs: ["z"] }], initializers: init(true)
      })
      expect(shared.ops).toContain("mul")
      const dynamicW = yield* Onnx.importBytes(modelBytes({
        inputs: [{ name: "x", shape: [1, C, 5, 7] }, { name: "w", shape: [O, C, 3, 3] }], outputs: [{ name: "y" }],
        nodes: [{ ...conv(false) }, bn], initializers: bnInit
      }))
      expect(opsOf(dynamicW.text)).toContain("mul")
    }).pipe(Effect.scoped, Effect.provide(simulator("exact"))))

  it.effect("the conv net fixture's Conv → BatchNormalization is folded", () =>
    Effect.gen(function*() {
      const imported = yield* Onnx.importFile(path.join(import.meta.dirname, "fixtures", "convnet.onnx"))
      // Conv (+ bias add) straight into Relu: no per-channel mul/add pair left between them.
      expect(opsOf(imported.text).slice(0, 3)).toEqual(["conv", "add", "relu"])
      expect(Object.values(imported.nodeOrigins).some((n) => n.startsWith("BatchNormalization"))).toBe(false)
    }))
})
