/**
 * Rotary position embedding on `[1, heads·headDim, 1, seq]` with interleaved pairs (channels 2i, 2i+1 of each head
 * rotate together, the layout of the Go RoPE tables, spec §2.4): y = x ⊙ cos + rot(x) ⊙ sin, where rot maps
 * (a, b) → (−b, a) as a grouped 1×1 conv (groups = dim/2) and cos/sin are const tables. Supported sizes: heads
 * 1..64, headDim even in 2..256, seq 1..4096, position ≥ 0.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, needThat } from "./common.js"

const WEIGHTS = "@model_path/weights/weight.bin"

/** Sizes {@link rope} accepts. */
export const ROPE_LIMITS = { heads: 64, headDim: 256, seq: 4096 } as const

/** Options of {@link rope}. */
export interface RopeOptions extends CommonOptions {
  readonly heads: number
  readonly headDim: number
  readonly seq: number
  /** Default 10000 (100000 "nanochat", 500000 Llama 3). */
  readonly theta?: number
  /** Position of the first token (decode steps); default 0. */
  readonly position?: number
}

/** cos and sin tables, row-major [heads·headDim][seq]: angle (position + s) / θ^(2i/headDim) for pair i. */
export const ropeTables = (o: { heads: number; headDim: number; seq: number; theta?: number; position?: number }) => {
  const { heads, headDim, seq } = o
  const theta = o.theta ?? 10000
  const position = o.position ?? 0
  const dim = heads * headDim
  const cos = new Float32Array(dim * seq)
  const sin = new Float32Array(dim * seq)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      const inv = 1 / Math.pow(theta, (2 * i) / headDim)
      for (let s = 0; s < seq; s++) {
        const a = (position + s) * inv
        for (const c of [h * headDim + 2 * i, h * headDim + 2 * i + 1]) {
          cos[c * seq + s] = Math.cos(a)
          sin[c * seq + s] = Math.sin(a)
        }
      }
    }
  }
  return { cos, sin }
}

/** Input `x: [1, heads·headDim, 1, seq]` → `y` of the same shape. */
export const rope = (o: RopeOptions): Generated => {
  const op = "Generators.rope"
  const heads = needInt(op, "heads", o.heads, 1, ROPE_LIMITS.heads)
  const headDim = needInt(op, "headDim", o.headDim, 2, ROPE_LIMITS.headDim)
  needThat(op, "headDim", headDim % 2 === 0, "an even number", String(headDim))
  const seq = needInt(op, "seq", o.seq, 1, ROPE_LIMITS.seq)
  const position = needInt(op, "position", o.position ?? 0, 0)
  const theta = o.theta ?? 10000
  needThat(op, "theta", Number.isFinite(theta) && theta > 1, "a number > 1", String(theta))
  const dim = heads * headDim
  const { cos, sin } = ropeTables({ heads, headDim, seq, theta, position })
  // Per pair g: out[2g] = −x[2g+1], out[2g+1] = x[2g]; weight [dim, 2, 1, 1] for groups = dim/2.
  const rot = new Float32Array(dim * 2)
  for (let g = 0; g < dim / 2; g++) {
    rot[(2 * g) * 2 + 1] = -1
    rot[(2 * g + 1) * 2] = 1
  }
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, dim, 1, seq])
    const R = b.const(rot, [dim, 2, 1, 1], { name: "rot", file: WEIGHTS })
    const C = b.const(cos, [1, dim, 1, seq], { name: "cos_t", file: WEIGHTS })
    const S = b.const(sin, [1, dim, 1, seq], { name: "sin_t", file: WEIGHTS })
    const xr = b.conv(x, R, { groups: dim / 2, name: "x_rot" })
    const a = b.mul(x, C, { name: "x_cos" })
    const s = b.mul(xr, S, { name: "x_sin" })
    return { y: b.add(a, s, { name: "rotated" }) }
  })
}
