/** Matmul/linear, normalisation, recurrent and attention ops (spec §9, errata rows 5–6, 11, 15–16, §4.4). */
import { TypeCodes } from "./context.js"
import { recurrentActivations } from "./elementwise.js"
import type { OpRule } from "./rule.js"
import { broadcast, formatShape, normAxis, tensor } from "./types.js"
import type { ResolvedDim } from "./types.js"


const F: ReadonlySet<string> = new Set(["fp16", "fp32"])
const FI: ReadonlySet<string> = new Set(["fp16", "fp32", "int32"])

const matmul: OpRule = {
  args: ["x", "y", "transpose_x", "transpose_y"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: FI })
    const y = ctx.tensor("y", { dtypes: FI })
    const tx = ctx.bool("transpose_x", false)
    const ty = ctx.bool("transpose_y", false)
    if (!x || !y) return null
    // iOS17+: dtypes may differ when exactly one side is a `const` output; the result takes the other (errata row 6).
    let dtype = x.type.dtype
    if (x.type.dtype !== y.type.dtype) {
      if (ctx.opset >= 17 && x.arg.isConst !== y.arg.isConst) dtype = x.arg.isConst ? y.type.dtype : x.type.dtype
      else ctx.sameDtype(x, y)
    }
    let xs = x.type.shape
    let ys = y.type.shape
    if (xs === null || ys === null || tx === null || ty === null) return [tensor(dtype, null)]
    if (xs.length === 0 || ys.length === 0) {
      ctx.error((xs.length === 0 ? x : y).arg.pos, `operands expected rank ≥ 1, found a scalar`,
        TypeCodes.shapeMismatch)
      return null
    }
    if (xs.length === 1 && tx) {
      ctx.error(ctx.arg("transpose_x")!.pos, "transpose_x expected false for a rank-1 x (errata row 5), found true")
      return null
    }
    if (ys.length === 1 && ty) {
      ctx.error(ctx.arg("transpose_y")!.pos, "transpose_y expected false for a rank-1 y (errata row 5), found true")
      return null
    }
    const xr1 = xs.length === 1
    const yr1 = ys.length === 1
    if (xr1) xs = [1, xs[0]]
    if (yr1) ys = [ys[0], 1]
    const swap = (s: ReadonlyArray<ResolvedDim>) => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]]
    if (tx) xs = swap(xs)
    if (ty) ys = swap(ys)
    const m = xs[xs.length - 2]
    const kx = xs[xs.length - 1]
    const ky = ys[ys.length - 2]
    const n = ys[ys.length - 1]
    if (kx !== null && ky !== null && kx !== ky) {
      ctx.error(y.arg.pos, `inner dimensions expected equal: x ${formatShape(x.type.shape)}${tx ? "ᵀ" : ""} has K = ` +
        `${kx}, y ${formatShape(y.type.shape)}${ty ? "ᵀ" : ""} has K = ${ky}`, TypeCodes.shapeMismatch)
      return null
    }
    const batch = broadcast(xs.slice(0, -2), ys.slice(0, -2))
    if (!batch.ok) {
      ctx.error(y.arg.pos, `batch dims of x ${formatShape(x.type.shape)} and y ${formatShape(y.type.shape)} expected ` +
        `broadcastable, found ${batch.a} and ${batch.b}`, TypeCodes.badBroadcast)
      return null
    }
    const out = [...(batch.shape ?? []), ...(xr1 ? [] : [m]), ...(yr1 ? [] : [n])]
    return [tensor(dtype, out)]
  }
}

const linear: OpRule = {
  args: ["x", "weight", "bias"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: FI })
    const w = ctx.tensor("weight", { dtypes: FI })
    const b = ctx.tensor("bias", { required: false, dtypes: FI })
    if (ctx.opset < 17) ctx.sameDtype(x, w)
    if (!x || !w) return null
    const xs = x.type.shape
    const ws = w.type.shape
    if (xs === null || ws === null) return [tensor(x.type.dtype, null)]
    // coremltools documents rank 1–3, but Apple-compiled programs apply linear to rank-4 inputs too.
    if (xs.length < 1) {
      ctx.error(x.arg.pos, `x expected rank ≥ 1, found a scalar`, TypeCodes.shapeMismatch)
      return null
    }
    if (ws.length !== 2) {
      ctx.error(w.arg.pos, `weight expected rank 2 [D_out, D_in], found ${formatShape(ws)}`, TypeCodes.shapeMismatch)
      return null
    }
    const din = xs[xs.length - 1]
    if (din !== null && ws[1] !== null && din !== ws[1]) {
      ctx.error(w.arg.pos, `weight expected D_in = ${din} (x's last dim) at axis 1, found ${formatShape(ws)}`,
        TypeCodes.shapeMismatch)
      return null
    }
    if (b && b.type.shape !== null && (b.type.shape.length !== 1 ||
      (b.type.shape[0] !== null && ws[0] !== null && b.type.shape[0] !== ws[0]))) {
      ctx.error(b.arg.pos, `bias expected shape [${ws[0] ?? "D_out"}], found ${formatShape(b.type.shape)}`,
        TypeCodes.shapeMismatch)
    }
    return [tensor(x.type.dtype, [...xs.slice(0, -1), ws[0]])]
  }
}

const layerNorm: OpRule = {
  args: ["x", "axes", "gamma", "beta", "epsilon"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: F })
    const g = ctx.tensor("gamma", { required: false, dtypes: F })
    const b = ctx.tensor("beta", { required: false, dtypes: F })
    const e = ctx.tensor("epsilon", { required: false, dtypes: F })
    if (ctx.opset < 17) {
      ctx.sameDtype(x, g)
      ctx.sameDtype(x, b)
      ctx.sameDtype(x, e)
    } else {
      // iOS17: gamma, beta and epsilon may use the other float dtype, but one dtype among them (errata row 11: U).
      ctx.sameDtype(g, b)
      ctx.sameDtype(g ?? b, e)
    }
    if (!x || x.type.shape === null) return x ? [x.type] : null
    const rank = x.type.shape.length
    const axes = ctx.ints("axes", { mustBeConst: true })
    if (axes) {
      const norm: Array<number> = []
      for (const a of axes) {
        const n = a === null ? null : normAxis(a, rank)
        if (n === null) {
          ctx.error(ctx.arg("axes")!.pos, `axes expected in [${-rank}, ${rank - 1}], found ${a}`)
          return null
        }
        norm.push(n)
      }
      norm.sort((p, q) => p - q)
      const expected = norm.map((i) => x.type.shape![i])
      for (const p of [g, b]) {
        if (!p || p.type.shape === null) continue
        const s = p.type.shape
        if (s.length !== expected.length || s.some((d, i) => d !== null && expected[i] !== null && d !== expected[i])) {
          ctx.error(p.arg.pos, `\`${p.arg.name}\` expected shape ${formatShape(expected)} (x's normalised axes), ` +
            `found ${formatShape(s)}`, TypeCodes.shapeMismatch)
        }
      }
    }
    return [x.type]
  }
}

const channelNorm = (params: ReadonlyArray<string>): OpRule => ({
  args: ["x", ...params, "epsilon"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: F })
    for (const p of params) {
      const t = ctx.tensor(p, { required: p === "mean" || p === "variance", dtypes: F })
      if (x && t && x.type.shape !== null && t.type.shape !== null && x.type.shape.length >= 2) {
        const c = x.type.shape[1]
        if (t.type.shape.length !== 1 || (c !== null && t.type.shape[0] !== null && t.type.shape[0] !== c)) {
          ctx.error(t.arg.pos, `\`${p}\` expected shape [${c ?? "C"}] (x's channels), found ${formatShape(t.type.shape)}`,
            TypeCodes.shapeMismatch)
        }
      }
    }
    return x ? [x.type] : null
  }
})

const lstm: OpRule = {
  args: [
    "x", "initial_h", "initial_c", "weight_ih", "weight_hh", "bias", "peephole", "weight_ih_back", "weight_hh_back",
    "bias_back", "peephole_back", "direction", "output_sequence", "recurrent_activation", "cell_activation",
    "activation", "clip"
  ],
  infer: (ctx) => {
    // iOS15/16 accept fp32 only (errata §4.4).
    const dt: ReadonlySet<string> = ctx.opset >= 17 ? F : new Set(["fp32"])
    const x = ctx.tensor("x", { dtypes: dt })
    const h0 = ctx.tensor("initial_h", { dtypes: dt })
    const c0 = ctx.tensor("initial_c", { dtypes: dt })
    const wih = ctx.tensor("weight_ih", { dtypes: dt })
    const whh = ctx.tensor("weight_hh", { dtypes: dt })
    for (const p of ["bias", "peephole", "weight_ih_back", "weight_hh_back", "bias_back", "peephole_back", "clip"]) {
      ctx.sameDtype(x, ctx.tensor(p, { required: false, dtypes: dt }))
    }
    for (const t of [h0, c0, wih, whh]) ctx.sameDtype(x, t)
    const dir = ctx.string("direction", "forward", ["forward", "reverse", "bidirectional"])
    const seq = ctx.bool("output_sequence", false)
    for (const a of ["recurrent_activation", "cell_activation", "activation"]) {
      ctx.string(a, null, recurrentActivations)
    }
    if (dir === "bidirectional") {
      if (!ctx.has("weight_ih_back")) ctx.missing("weight_ih_back", "the backward input weights (bidirectional)")
      if (!ctx.has("weight_hh_back")) ctx.missing("weight_hh_back", "the backward recurrent weights (bidirectional)")
    }
    if (!x || x.type.shape === null) return null
    const xs = x.type.shape
    if (xs.length !== 3) {
      ctx.error(x.arg.pos, `x expected rank 3 [seq, batch, input], found ${formatShape(xs)}`, TypeCodes.shapeMismatch)
      return null
    }
    const hidden = whh && whh.type.shape !== null && whh.type.shape.length === 2 ? whh.type.shape[1] : null
    const d = dir === "bidirectional" ? 2 : 1
    const width = hidden === null || dir === null ? null : d * hidden
    if (wih && wih.type.shape !== null && hidden !== null) {
      const ws = wih.type.shape
      if (ws.length !== 2 || (ws[0] !== null && ws[0] !== 4 * hidden) || (ws[1] !== null && xs[2] !== null &&
        ws[1] !== xs[2])) {
        ctx.error(wih.arg.pos, `weight_ih expected shape [${4 * hidden}, ${xs[2] ?? "I"}], found ${formatShape(ws)}`,
          TypeCodes.shapeMismatch)
      }
    }
    for (const s of [h0, c0]) {
      if (!s || s.type.shape === null) continue
      const ss = s.type.shape
      if (ss.length !== 2 || (ss[1] !== null && width !== null && ss[1] !== width) ||
        (ss[0] !== null && xs[1] !== null && ss[0] !== xs[1])) {
        ctx.error(s.arg.pos, `\`${s.arg.name}\` expected shape [${xs[1] ?? "b"}, ${width ?? "D·H"}], found ` +
          `${formatShape(ss)}`, TypeCodes.shapeMismatch)
      }
    }
    const state = tensor(x.type.dtype, [xs[1], width])
    const first = tensor(x.type.dtype, [seq === null ? null : seq ? xs[0] : 1, xs[1], width])
    return [first, state, state]
  }
}

const sdpa: OpRule = {
  args: ["query", "key", "value", "attn_mask"],
  infer: (ctx) => {
    const q = ctx.tensor("query", { dtypes: F })
    const k = ctx.tensor("key", { dtypes: F })
    const v = ctx.tensor("value", { dtypes: F })
    ctx.tensor("attn_mask", { required: false, dtypes: new Set(["bool", "fp16", "fp32"]) })
    ctx.sameDtype(q, k)
    ctx.sameDtype(q, v)
    if (!q || !k || !v) return null
    const qs = q.type.shape
    const ks = k.type.shape
    const vs = v.type.shape
    if (qs === null || ks === null || vs === null) return [tensor(q.type.dtype, null)]
    for (const t of [q, k, v]) {
      if (t.type.shape!.length < 3 || t.type.shape!.length !== qs.length) {
        ctx.error(t.arg.pos, `query, key and value expected the same rank ≥ 3, found ${formatShape(t.type.shape)}`,
          TypeCodes.shapeMismatch)
        return null
      }
    }
    const r = qs.length
    const eq = (a: ResolvedDim, b: ResolvedDim) => a === null || b === null || a === b
    if (!eq(qs[r - 1], ks[r - 1])) {
      ctx.error(k.arg.pos, `key expected embedding size ${qs[r - 1]} (query's last dim), found ${ks[r - 1]}`,
        TypeCodes.shapeMismatch)
      return null
    }
    if (!eq(ks[r - 2], vs[r - 2])) {
      ctx.error(v.arg.pos, `value expected sequence length ${ks[r - 2]} (key's), found ${vs[r - 2]}`,
        TypeCodes.shapeMismatch)
      return null
    }
    return [tensor(q.type.dtype, [...qs.slice(0, -1), vs[r - 1]])]
  }
}

/** Network op rules by name. */
export const nnRules: Readonly<Record<string, OpRule>> = {
  matmul,
  linear,
  layer_norm: layerNorm,
  batch_norm: channelNorm(["mean", "variance", "gamma", "beta"]),
  instance_norm: channelNorm(["gamma", "beta"]),
  lstm,
  scaled_dot_product_attention: sdpa
}
