/**
 * ONNX LSTM → MIL lstm. ONNX stacks gates i, o, f, c; MIL expects i, f, o, z (spec/mil-format-errata.md §4.4), takes
 * one summed bias, peepholes i, f, o, and states [batch, D·H] instead of [D, batch, H].
 */
import type { Tensor } from "../../mil/build.js"
import type { Converter } from "../context.js"
import { type Const, constant, size, type Value } from "../values.js"
import { reshapeValue, transposeValue } from "./shape.js"

/** Reorders the 4 gate blocks of rows (each `rows`·`cols`) from ONNX i, o, f, c to MIL i, f, o, c. */
export const reorderGates = (data: ArrayLike<number>, rows: number, cols: number): Float32Array => {
  const out = new Float32Array(4 * rows * cols)
  const order = [0, 2, 1, 3]
  const block = rows * cols
  for (let g = 0; g < 4; g++) {
    const src = order[g]! * block
    for (let k = 0; k < block; k++) out[g * block + k] = data[src + k]!
  }
  return out
}

const activations: Readonly<Record<string, string>> = {
  Sigmoid: "sigmoid", Tanh: "tanh", Relu: "relu", HardSigmoid: "hard_sigmoid", ScaledTanh: "scaled_tanh"
}

const lstm: Converter = (c) => {
  const x = c.in(0)
  const W = c.constIn(1, "W"), R = c.constIn(2, "R")
  const B = c.opt(3), seqLens = c.opt(4), h0 = c.opt(5), c0 = c.opt(6), P = c.opt(7)
  if (c.int("layout", 0) !== 0) c.fail("only layout 0 ([seq, batch, …]) is supported")
  if (c.int("input_forget", 0) !== 0) c.fail("input_forget is not supported")
  const direction = c.str("direction", "forward")
  if (direction !== "forward" && direction !== "reverse" && direction !== "bidirectional") c.fail(`unknown direction "${direction}"`)
  const D = direction === "bidirectional" ? 2 : 1
  if (x.shape.length !== 3) c.fail(`X must be [seq, batch, input], found [${x.shape.join(", ")}]`)
  const [S, Bn, I] = x.shape as [number, number, number]
  const H = c.int("hidden_size", R.shape[2] ?? 0)
  if (W.shape.join() !== [D, 4 * H, I].join() || R.shape.join() !== [D, 4 * H, H].join()) {
    c.fail(`W [${W.shape.join(", ")}] / R [${R.shape.join(", ")}] do not match D=${D}, H=${H}, input ${I}`)
  }
  if (seqLens !== undefined && (seqLens.tag !== "const" || Array.from(seqLens.data).some((v) => v !== S))) {
    c.fail("sequence_lens must be a constant equal to the sequence length")
  }
  const acts = c.strList("activations")?.map((a) => activations[a] ?? c.fail(`activation ${a} is not supported`))
  if (acts !== undefined && acts.length !== 3 * D) c.fail(`activations must list ${3 * D} functions`)
  if (c.has("activation_alpha") || c.has("activation_beta")) c.fail("activation_alpha/beta are not supported")
  // ONNX clips the gate pre-activations; MIL lstm's `clip` clamps the cell state after its update
  // (spec/mil-format-errata.md §4.4), so passing it through would compute a different function.
  if (c.has("clip")) {
    c.fail(`clip = ${c.float("clip", 0)} is not supported: ONNX bounds the gate pre-activations, MIL lstm's clip bounds the cell state`,
      "export the LSTM without clip")
  }
  if (B !== undefined && (B.tag !== "const" || B.shape.join() !== [D, 8 * H].join())) c.fail("B must be a constant [D, 8H]")
  if (P !== undefined && (P.tag !== "const" || P.shape.join() !== [D, 3 * H].join())) c.fail("P must be a constant [D, 3H]")

  const dirArgs = (d: number): Record<string, Tensor> => {
    const w = reorderGates(W.data.subarray(d * 4 * H * I, (d + 1) * 4 * H * I), H, I)
    const r = reorderGates(R.data.subarray(d * 4 * H * H, (d + 1) * 4 * H * H), H, H)
    const args: Record<string, Tensor> = {
      weight_hh: c.tensor(constant("float", [4 * H, H], r)),
      weight_ih: c.tensor(constant("float", [4 * H, I], w))
    }
    if (B?.tag === "const") {
      const sum = new Float32Array(4 * H)
      for (let k = 0; k < 4 * H; k++) sum[k] = B.data[d * 8 * H + k]! + B.data[d * 8 * H + 4 * H + k]!
      args["bias"] = c.tensor(constant("float", [4 * H], reorderGates(sum, H, 1)))
    }
    if (P?.tag === "const") {
      const p = P.data.subarray(d * 3 * H, (d + 1) * 3 * H)
      const reordered = new Float32Array(3 * H)
      // ONNX peepholes i, o, f → MIL i, f, o.
      for (let k = 0; k < H; k++) {
        reordered[k] = p[k]!
        reordered[H + k] = p[2 * H + k]!
        reordered[2 * H + k] = p[H + k]!
      }
      args["peephole"] = c.tensor(constant("float", [3 * H], reordered))
    }
    return args
  }
  // [D, batch, H] → [batch, D·H].
  const state = (v: Value | undefined, what: string): Tensor => {
    if (v === undefined) return c.tensor(constant("float", [Bn, D * H], new Float32Array(Bn * D * H)))
    if (v.shape.join() !== [D, Bn, H].join()) c.fail(`${what} must be [${D}, ${Bn}, ${H}], found [${v.shape.join(", ")}]`)
    const t = D === 1 ? v : transposeValue(c, v, [1, 0, 2])
    return c.tensor(reshapeValue(c, t, [Bn, D * H]))
  }
  const fwd = dirArgs(0)
  const args: Record<string, Tensor> = {
    ...fwd,
    direction: c.b.scalar(direction, "string"),
    initial_c: state(c0, "initial_c"),
    initial_h: state(h0, "initial_h"),
    output_sequence: c.b.scalar(true, "bool"),
    x: c.tensor(x)
  }
  if (D === 2) for (const [k, v] of Object.entries(dirArgs(1))) args[`${k}_back`] = v
  if (acts !== undefined) {
    args["recurrent_activation"] = c.b.scalar(acts[0]!, "string")
    args["cell_activation"] = c.b.scalar(acts[1]!, "string")
    args["activation"] = c.b.scalar(acts[2]!, "string")
  }
  const names = [c.name().name!, c.name().name!, c.name().name!]
  const [seq, hN, cN] = c.b.opMulti("lstm", args, [
    { dtype: c.dtype, shape: [S, Bn, D * H] }, { dtype: c.dtype, shape: [Bn, D * H] }, { dtype: c.dtype, shape: [Bn, D * H] }
  ], { names })
  // MIL [S, batch, D·H] → ONNX Y [S, D, batch, H]; states [batch, D·H] → [D, batch, H].
  const y: Value = D === 1
    ? reshapeValue(c, c.dyn(seq!, "float"), [S, 1, Bn, H])
    : transposeValue(c, reshapeValue(c, c.dyn(seq!, "float"), [S, Bn, 2, H]), [0, 2, 1, 3])
  const st = (t: Tensor): Value => D === 1
    ? reshapeValue(c, c.dyn(t, "float"), [1, Bn, H])
    : transposeValue(c, reshapeValue(c, c.dyn(t, "float"), [Bn, 2, H]), [1, 0, 2])
  return [y, st(hN!), st(cN!)]
}

/** Recurrent converters by ONNX op type. */
export const rnnOps: Readonly<Record<string, Converter>> = { LSTM: lstm }
export type { Const }
void size
