// Writes the generated ONNX test graphs (a small conv net, a transformer encoder block with attention, a Resize
// net) and their inputs under test/onnx/fixtures/, using the protobuf library through test/onnx/graph.ts.
// Run: node --import tsx scripts/onnx-fixtures.mjs   (then scripts/onnx-goldens.mjs for the expected outputs)
import * as fs from "node:fs"
import * as path from "node:path"
import { floatTensor, intTensor, modelBytes, randoms } from "../test/onnx/graph.ts"
import { writeNpy } from "../test/onnx/npy.ts"

const out = path.resolve(import.meta.dirname, "../test/onnx/fixtures")
fs.mkdirSync(out, { recursive: true })
let seed = 1
const w = (name, dims, scale = 0.3) => floatTensor(name, dims, randoms(dims.reduce((a, b) => a * b, 1), seed++, scale))

const convNet = () => modelBytes({
  opset: 17,
  inputs: [{ name: "image", shape: [1, 3, 16, 16] }],
  outputs: [{ name: "probs", shape: [1, 10] }],
  initializers: [
    w("c1.w", [8, 3, 3, 3]), w("c1.b", [8], 0.1),
    w("bn.scale", [8], 0.2), w("bn.bias", [8], 0.1), w("bn.mean", [8], 0.1),
    floatTensor("bn.var", [8], randoms(8, 99, 0.2).map((v) => 1 + v)),
    w("c2.w", [16, 8, 3, 3], 0.2), w("c2.b", [16], 0.1),
    w("fc.w", [10, 16], 0.5), w("fc.b", [10], 0.1)
  ],
  nodes: [
    { op: "Conv", inputs: ["image", "c1.w", "c1.b"], outputs: ["c1"], attrs: { pads: [1, 1, 1, 1], kernel_shape: [3, 3] } },
    { op: "BatchNormalization", inputs: ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], outputs: ["bn"], attrs: { epsilon: { float: 1e-5 } } },
    { op: "Relu", inputs: ["bn"], outputs: ["r1"] },
    { op: "MaxPool", inputs: ["r1"], outputs: ["p1"], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
    { op: "Conv", inputs: ["p1", "c2.w", "c2.b"], outputs: ["c2"], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
    { op: "HardSwish", inputs: ["c2"], outputs: ["h2"] },
    { op: "AveragePool", inputs: ["h2"], outputs: ["p2"], attrs: { kernel_shape: [2, 2], strides: [1, 1] } },
    { op: "GlobalAveragePool", inputs: ["p2"], outputs: ["g"] },
    { op: "Flatten", inputs: ["g"], outputs: ["f"] },
    { op: "Gemm", inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"], attrs: { transB: 1 } },
    { op: "Softmax", inputs: ["logits"], outputs: ["probs"], attrs: { axis: -1 } }
  ]
})

const encoder = () => {
  const S = 16, D = 32, Hn = 4, Hd = 8, F = 64
  return modelBytes({
    opset: 17,
    inputs: [{ name: "tokens", shape: [1, S, D] }],
    outputs: [{ name: "encoded", shape: [1, S, D] }],
    initializers: [
      w("ln1.g", [D], 0.2), w("ln1.b", [D], 0.1), w("wq", [D, D], 0.3), w("bq", [D], 0.1), w("wk", [D, D], 0.3),
      w("bk", [D], 0.1), w("wv", [D, D], 0.3), w("bv", [D], 0.1), w("wo", [D, D], 0.3), w("bo", [D], 0.1),
      w("ln2.g", [D], 0.2), w("ln2.b", [D], 0.1), w("w1", [D, F], 0.3), w("b1", [F], 0.1), w("w2", [F, D], 0.3),
      w("b2", [D], 0.1),
      intTensor("heads", [4], [1, S, Hn, Hd]), intTensor("merge", [3], [1, S, D]),
      floatTensor("scale", [], [Math.sqrt(Hd)]), floatTensor("half", [], [0.5]), floatTensor("one", [], [1]),
      floatTensor("sqrt2", [], [Math.SQRT2])
    ],
    nodes: [
      { op: "LayerNormalization", inputs: ["tokens", "ln1.g", "ln1.b"], outputs: ["n1"], attrs: { axis: -1, epsilon: { float: 1e-5 } } },
      ...["q", "k", "v"].flatMap((p) => [
        { op: "MatMul", inputs: ["n1", `w${p}`], outputs: [`${p}m`] },
        { op: "Add", inputs: [`${p}m`, `b${p}`], outputs: [`${p}a`] },
        { op: "Reshape", inputs: [`${p}a`, "heads"], outputs: [`${p}r`] },
        { op: "Transpose", inputs: [`${p}r`], outputs: [`${p}h`], attrs: { perm: p === "k" ? [0, 2, 3, 1] : [0, 2, 1, 3] } }
      ]),
      { op: "MatMul", inputs: ["qh", "kh"], outputs: ["scores"] },
      { op: "Div", inputs: ["scores", "scale"], outputs: ["scaled"] },
      { op: "Softmax", inputs: ["scaled"], outputs: ["attn"], attrs: { axis: -1 } },
      { op: "MatMul", inputs: ["attn", "vh"], outputs: ["ctx"] },
      { op: "Transpose", inputs: ["ctx"], outputs: ["ctxT"], attrs: { perm: [0, 2, 1, 3] } },
      { op: "Reshape", inputs: ["ctxT", "merge"], outputs: ["ctxM"] },
      { op: "MatMul", inputs: ["ctxM", "wo"], outputs: ["om"] },
      { op: "Add", inputs: ["om", "bo"], outputs: ["oa"] },
      { op: "Add", inputs: ["tokens", "oa"], outputs: ["res1"] },
      { op: "LayerNormalization", inputs: ["res1", "ln2.g", "ln2.b"], outputs: ["n2"], attrs: { axis: -1 } },
      { op: "MatMul", inputs: ["n2", "w1"], outputs: ["f1m"] },
      { op: "Add", inputs: ["f1m", "b1"], outputs: ["f1"] },
      // GELU written out with Erf, as exporters before opset 20 do.
      { op: "Div", inputs: ["f1", "sqrt2"], outputs: ["g1"] },
      { op: "Erf", inputs: ["g1"], outputs: ["g2"] },
      { op: "Add", inputs: ["g2", "one"], outputs: ["g3"] },
      { op: "Mul", inputs: ["f1", "g3"], outputs: ["g4"] },
      { op: "Mul", inputs: ["g4", "half"], outputs: ["gelu"] },
      { op: "MatMul", inputs: ["gelu", "w2"], outputs: ["f2m"] },
      { op: "Add", inputs: ["f2m", "b2"], outputs: ["f2"] },
      { op: "Add", inputs: ["res1", "f2"], outputs: ["encoded"] }
    ]
  })
}

const resizeNet = () => modelBytes({
  opset: 17,
  inputs: [{ name: "features", shape: [1, 4, 8, 8] }],
  outputs: [{ name: "upsampled", shape: [1, 4, 48, 48] }],
  initializers: [
    w("c.w", [4, 4, 3, 3], 0.3), w("c.b", [4], 0.1),
    floatTensor("x2", [4], [1, 1, 2, 2]), intTensor("to24", [4], [1, 4, 24, 24])
  ],
  nodes: [
    { op: "Conv", inputs: ["features", "c.w", "c.b"], outputs: ["c"], attrs: { pads: [1, 1, 1, 1] } },
    { op: "Resize", inputs: ["c", "", "x2"], outputs: ["lin"], attrs: { mode: "linear" } },
    { op: "LeakyRelu", inputs: ["lin"], outputs: ["act"], attrs: { alpha: { float: 0.1 } } },
    { op: "Resize", inputs: ["act", "", "", "to24"], outputs: ["near"], attrs: { mode: "nearest" } },
    { op: "Resize", inputs: ["near", "", "x2"], outputs: ["up"], attrs: { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" } },
    { op: "Sigmoid", inputs: ["up"], outputs: ["upsampled"] }
  ]
})

const write = (name, bytes, inputName, shape) => {
  fs.writeFileSync(path.join(out, `${name}.onnx`), bytes)
  const n = shape.reduce((a, b) => a * b, 1)
  fs.writeFileSync(path.join(out, `${name}.input.npy`), writeNpy(shape, randoms(n, 1000 + name.length, 1)))
  console.log(`${name}.onnx (${bytes.length} bytes), input ${inputName} [${shape.join(", ")}]`)
}
write("convnet", convNet(), "image", [1, 3, 16, 16])
write("encoder", encoder(), "tokens", [1, 16, 32])
write("resize", resizeNet(), "features", [1, 4, 8, 8])
