/**
 * Multi-head attention on `[1, dim, 1, seq]` (channel c = head·headDim + d). `attention` decomposes it into
 * reshape/transpose/matmul/softmax with an additive causal mask const, the form the Go SDPA generators compile
 * (spec §2.1; the ANE reportedly ignores SDPA's attn_mask: ane-constraints.md §3 #6). `sdpa` emits the iOS18
 * `scaled_dot_product_attention` op. Supported sizes: heads 1..64 dividing dim, dim 1..4096, seq 1..4096.
 */
import { buildSync, type Builder, type Tensor } from "../build.js"
import { buildOptions, causalMask, type CommonOptions, type Generated, needInt, needThat, weightsOr } from "./common.js"

const WEIGHTS = "@model_path/weights/weight.bin"

/** Sizes the attention generators accept. */
export const ATTENTION_LIMITS = { heads: 64, dim: 4096, seq: 4096 } as const

/** Options of {@link attention}. */
export interface AttentionOptions extends CommonOptions {
  readonly dim: number
  readonly heads: number
  readonly seq: number
  /** Default true: token t attends to keys ≤ t. */
  readonly causal?: boolean
  /**
   * With projections ([dim][dim] each, [out][in]) the single input is `x` and the output is Wo·attn(Wq·x, Wk·x,
   * Wv·x); without, the inputs are `k`, `q`, `v` (declared alphabetically). `true` uses the deterministic init.
   */
  readonly projections?: true | {
    readonly wq?: ArrayLike<number>
    readonly wk?: ArrayLike<number>
    readonly wv?: ArrayLike<number>
    readonly wo?: ArrayLike<number>
  }
}

const checkSizes = (op: string, o: { readonly dim: number; readonly heads: number; readonly seq: number }) => {
  const dim = needInt(op, "dim", o.dim, 1, ATTENTION_LIMITS.dim)
  const heads = needInt(op, "heads", o.heads, 1, ATTENTION_LIMITS.heads)
  const seq = needInt(op, "seq", o.seq, 1, ATTENTION_LIMITS.seq)
  // Go silently truncated headDim when heads did not divide dim (spec §2.5).
  needThat(op, "heads", dim % heads === 0, `a divisor of dim ${dim}`, String(heads))
  return { dim, heads, seq, hd: dim / heads }
}

const core = (b: Builder, qf: Tensor, kf: Tensor, vf: Tensor, s: { dim: number; heads: number; seq: number; hd: number }, causal: boolean) => {
  const { dim, heads, seq, hd } = s
  const split = (t: Tensor, n: string) =>
    b.transpose(b.reshape(t, [1, heads, hd, seq], { name: `${n}4` }), [0, 1, 3, 2], { name: `${n}h` })
  const q = split(qf, "q")
  const k = split(kf, "k")
  const v = split(vf, "v")
  const sc1 = b.matmul(q, k, { transposeY: true, name: "scores" })
  // 1/√headDim as an exact fp16 constant (the Go generators printed it with %f, losing digits).
  let sc = b.mul(sc1, b.scalar(1 / Math.sqrt(hd), "fp16", { name: "scale" }), { name: "scaled" })
  if (causal) sc = b.add(sc, b.const(causalMask(seq), [1, 1, seq, seq], { name: "mask", file: WEIGHTS }), { name: "masked" })
  const aw = b.softmax(sc, { axis: -1, name: "probs" })
  const a4 = b.matmul(aw, v, { name: "ctx" })
  const at = b.transpose(a4, [0, 1, 3, 2], { name: "ctx_t" })
  return b.reshape(at, [1, dim, 1, seq], { name: "attn" })
}

/** Inputs `k`, `q`, `v` (or `x` with projections), each `[1, dim, 1, seq]` → `y: [1, dim, 1, seq]`. */
export const attention = (o: AttentionOptions): Generated => {
  const op = "Generators.attention"
  const s = checkSizes(op, o)
  const causal = o.causal ?? true
  const p = o.projections === true ? {} : o.projections
  const ws = p === undefined ? undefined : (["wq", "wk", "wv", "wo"] as const).map((n, i) =>
    weightsOr(op, `projections.${n}`, p[n], s.dim * s.dim, s.dim, 51 + i))
  return buildSync(buildOptions(op, o), (b) => {
    if (ws === undefined) {
      // Declared in alphabetical order (k, q, v): the engine binds inputs alphabetically (ane-constraints.md §3 #13).
      const k = b.input("k", "fp16", [1, s.dim, 1, s.seq])
      const q = b.input("q", "fp16", [1, s.dim, 1, s.seq])
      const v = b.input("v", "fp16", [1, s.dim, 1, s.seq])
      return { y: core(b, q, k, v, s, causal) }
    }
    const x = b.input("x", "fp16", [1, s.dim, 1, s.seq])
    const [Wq, Wk, Wv, Wo] = ws.map((w, i) => b.const(w, [s.dim, s.dim, 1, 1], { name: ["Wq", "Wk", "Wv", "Wo"][i]!, file: WEIGHTS }))
    const qf = b.conv(x, Wq!, { name: "qf" })
    const kf = b.conv(x, Wk!, { name: "kf" })
    const vf = b.conv(x, Wv!, { name: "vf" })
    return { y: b.conv(core(b, qf, kf, vf, s, causal), Wo!, { name: "out_proj" }) }
  })
}

/** Options of {@link sdpa}. */
export interface SdpaOptions extends CommonOptions {
  readonly heads: number
  readonly headDim: number
  readonly seq: number
  /** Default true: adds a const additive causal `attn_mask` [1, 1, seq, seq]. */
  readonly causal?: boolean
}

/**
 * Inputs `key`, `query`, `value: [1, heads, seq, headDim]` → `y` of the same shape, via iOS18
 * `scaled_dot_product_attention(query, key, value[, attn_mask])`.
 */
export const sdpa = (o: SdpaOptions): Generated => {
  const op = "Generators.sdpa"
  const heads = needInt(op, "heads", o.heads, 1, ATTENTION_LIMITS.heads)
  const headDim = needInt(op, "headDim", o.headDim, 1, ATTENTION_LIMITS.dim)
  const seq = needInt(op, "seq", o.seq, 1, ATTENTION_LIMITS.seq)
  return buildSync(buildOptions(op, o, "ios18"), (b) => {
    const shape = [1, heads, seq, headDim]
    // Alphabetical declaration order (key, query, value), as the engine binds inputs.
    const k = b.input("key", "fp16", shape)
    const q = b.input("query", "fp16", shape)
    const v = b.input("value", "fp16", shape)
    // Argument names are query/key/value (+ attn_mask) and there is no `scale`: the op is fixed at 1/√E. Go's
    // GenSDPA passed `scale`, which coremltools' iOS18 definition does not have (spec §7.4).
    const mask = (o.causal ?? true) ? b.const(causalMask(seq), [1, 1, seq, seq], { name: "mask", file: WEIGHTS }) : undefined
    return { y: b.sdpa(q, k, v, mask === undefined ? { name: "attn" } : { mask, name: "attn" }) }
  })
}
