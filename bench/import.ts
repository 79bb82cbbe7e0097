/**
 * ONNX import speed: Silero VAD v6 (the committed fixture) and a generated ~50 MB transformer encoder (4 layers,
 * d=512, FFN 2048, fp32 weights), in MB of weights per second (target ≥ 50 MB/s) and milliseconds per import.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Onnx from "../src/onnx/Onnx.js"
import { floatTensor, intTensor, modelBytes, type NodeSpec, randoms } from "../test/onnx/graph.js"

const transformer = (layers: number, S: number, D: number, F: number, heads: number): Uint8Array => {
  const Hd = D / heads
  const inits = [intTensor("heads", [4], [1, S, heads, Hd]), intTensor("merge", [3], [1, S, D]), floatTensor("scale", [], [Math.sqrt(Hd)])]
  const nodes: Array<NodeSpec> = []
  let x = "tokens"
  let seed = 1
  for (let l = 0; l < layers; l++) {
    const p = (s: string) => `l${l}.${s}`
    const w = (name: string, dims: ReadonlyArray<number>) => inits.push(floatTensor(p(name), dims, randoms(dims.reduce((a, b) => a * b, 1), seed++, 0.05)))
    for (const n of ["wq", "wk", "wv", "wo"]) w(n, [D, D])
    w("w1", [D, F]); w("w2", [F, D]); w("g1", [D]); w("g2", [D])
    nodes.push({ op: "LayerNormalization", inputs: [x, p("g1")], outputs: [p("n1")], attrs: { axis: -1 } })
    for (const h of ["q", "k", "v"]) {
      nodes.push({ op: "MatMul", inputs: [p("n1"), p(`w${h}`)], outputs: [p(`${h}m`)] })
      nodes.push({ op: "Reshape", inputs: [p(`${h}m`), "heads"], outputs: [p(`${h}r`)] })
      nodes.push({ op: "Transpose", inputs: [p(`${h}r`)], outputs: [p(`${h}h`)], attrs: { perm: h === "k" ? [0, 2, 3, 1] : [0, 2, 1, 3] } })
    }
    nodes.push(
      { op: "MatMul", inputs: [p("qh"), p("kh")], outputs: [p("s")] },
      { op: "Div", inputs: [p("s"), "scale"], outputs: [p("ss")] },
      { op: "Softmax", inputs: [p("ss")], outputs: [p("a")], attrs: { axis: -1 } },
      { op: "MatMul", inputs: [p("a"), p("vh")], outputs: [p("c")] },
      { op: "Transpose", inputs: [p("c")], outputs: [p("ct")], attrs: { perm: [0, 2, 1, 3] } },
      { op: "Reshape", inputs: [p("ct"), "merge"], outputs: [p("cm")] },
      { op: "MatMul", inputs: [p("cm"), p("wo")], outputs: [p("o")] },
      { op: "Add", inputs: [x, p("o")], outputs: [p("r1")] },
      { op: "LayerNormalization", inputs: [p("r1"), p("g2")], outputs: [p("n2")], attrs: { axis: -1 } },
      { op: "MatMul", inputs: [p("n2"), p("w1")], outputs: [p("f1")] },
      { op: "Relu", inputs: [p("f1")], outputs: [p("f1r")] },
      { op: "MatMul", inputs: [p("f1r"), p("w2")], outputs: [p("f2")] },
      { op: "Add", inputs: [p("r1"), p("f2")], outputs: [l === layers - 1 ? "encoded" : p("out")] }
    )
    x = p("out")
  }
  return modelBytes({ opset: 17, inputs: [{ name: "tokens", shape: [1, S, D] }], outputs: [{ name: "encoded" }], nodes, initializers: inits })
}

const time = async (file: string, options: Onnx.ImportOptions, runs: number) => {
  await Effect.runPromise(Onnx.importFile(file, options))
  const t0 = performance.now()
  for (let i = 0; i < runs; i++) await Effect.runPromise(Onnx.importFile(file, options))
  return (performance.now() - t0) / runs
}

export default async function(): Promise<Record<string, unknown>> {
  const silero = path.join(import.meta.dirname, "../test/onnx/fixtures/silero_vad_v6.onnx")
  const sileroMs = await time(silero, { shapes: { input: [1, 576], state: [2, 1, 128] }, inputValues: { sr: [16000] } }, 5)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ane-import-bench-"))
  try {
    const file = path.join(dir, "transformer.onnx")
    const bytes = transformer(4, 64, 512, 2048, 8)
    fs.writeFileSync(file, bytes)
    const ms = await time(file, {}, 2)
    const mb = bytes.length / 1e6
    return {
      sileroImportMs: Number(sileroMs.toFixed(1)),
      sileroMBps: Number((fs.statSync(silero).size / 1e6 / (sileroMs / 1000)).toFixed(1)),
      transformerMB: Number(mb.toFixed(1)),
      transformerImportMs: Number(ms.toFixed(0)),
      transformerMBps: Number((mb / (ms / 1000)).toFixed(1)),
      targetMBps: 50
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
