/**
 * Feed-forward blocks as 1×1 convolutions on `[1, dim, 1, seq]`: `ffn` = W2·act(W1·x) and `swiglu` =
 * W2·(silu(W1·x) ⊙ W3·x) (spec §2.4 GenFFNForward / GenFFNForwardReLU2). Supported sizes: dim 1..8192,
 * hidden 1..16384 (a single FFN kernel above ~4096 hidden has been reported to fail; split it), seq 1..16384; all
 * weights together should stay under 24 MiB (validator warning ANE033).
 */
import { buildSync, type Builder, type Tensor } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, weightsOr } from "./common.js"

const WEIGHTS = "@model_path/weights/weight.bin"

/** Sizes the FFN generators accept. */
export const FFN_LIMITS = { dim: 8192, hidden: 16384, seq: 16384 } as const

/** Options shared by {@link ffn} and {@link swiglu}. */
export interface FfnSizes extends CommonOptions {
  readonly dim: number
  readonly hidden: number
  readonly seq: number
  /** [hidden][dim]. */
  readonly w1?: ArrayLike<number>
  /** [dim][hidden]. */
  readonly w2?: ArrayLike<number>
}

/** Options of {@link ffn}. */
export interface FfnOptions extends FfnSizes {
  /** `relu` (default), `relu2` (relu(h)², as GenFFNForwardReLU2) or `silu`. */
  readonly activation?: "relu" | "relu2" | "silu"
}

/** Options of {@link swiglu}. */
export interface SwigluOptions extends FfnSizes {
  /** [hidden][dim], the gate's linear branch. */
  readonly w3?: ArrayLike<number>
}

const sizes = (op: string, o: FfnSizes) => ({
  dim: needInt(op, "dim", o.dim, 1, FFN_LIMITS.dim),
  hidden: needInt(op, "hidden", o.hidden, 1, FFN_LIMITS.hidden),
  seq: needInt(op, "seq", o.seq, 1, FFN_LIMITS.seq)
})

// silu written as x·sigmoid(x), the form the Go generators compile on the ANE.
const silu = (b: Builder, h: Tensor, name: string) => b.mul(h, b.sigmoid(h, { name: `${name}_sig` }), { name })

/** Input `x: [1, dim, 1, seq]` → `y: [1, dim, 1, seq]`. */
export const ffn = (o: FfnOptions): Generated => {
  const op = "Generators.ffn"
  const { dim, hidden, seq } = sizes(op, o)
  const w1 = weightsOr(op, "w1", o.w1, hidden * dim, dim, 11)
  const w2 = weightsOr(op, "w2", o.w2, dim * hidden, hidden, 12)
  const activation = o.activation ?? "relu"
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, dim, 1, seq])
    const W1 = b.const(w1, [hidden, dim, 1, 1], { name: "W1", file: WEIGHTS })
    const W2 = b.const(w2, [dim, hidden, 1, 1], { name: "W2", file: WEIGHTS })
    const h1 = b.conv(x, W1, { name: "h1" })
    let g: Tensor
    if (activation === "silu") g = silu(b, h1, "gate")
    else {
      const r1 = b.relu(h1, { name: "r1" })
      g = activation === "relu2" ? b.mul(r1, r1, { name: "gate" }) : r1
    }
    return { y: b.conv(g, W2, { name: "down" }) }
  })
}

/** Input `x: [1, dim, 1, seq]` → `y: [1, dim, 1, seq]` (the LLaMA MLP). */
export const swiglu = (o: SwigluOptions): Generated => {
  const op = "Generators.swiglu"
  const { dim, hidden, seq } = sizes(op, o)
  const w1 = weightsOr(op, "w1", o.w1, hidden * dim, dim, 21)
  const w3 = weightsOr(op, "w3", o.w3, hidden * dim, dim, 23)
  const w2 = weightsOr(op, "w2", o.w2, dim * hidden, hidden, 22)
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, dim, 1, seq])
    const W1 = b.const(w1, [hidden, dim, 1, 1], { name: "W1", file: WEIGHTS })
    const W3 = b.const(w3, [hidden, dim, 1, 1], { name: "W3", file: WEIGHTS })
    const W2 = b.const(w2, [dim, hidden, 1, 1], { name: "W2", file: WEIGHTS })
    const h1 = b.conv(x, W1, { name: "h1" })
    const h3 = b.conv(x, W3, { name: "h3" })
    const gate = b.mul(silu(b, h1, "silu"), h3, { name: "gate" })
    return { y: b.conv(gate, W2, { name: "down" }) }
  })
}
