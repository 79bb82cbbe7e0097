/** Reductions, softmax and normalisations (float64 accumulation, i.e. at least the engine's fp32 accumulators). */
import type { OpCtx, OpImpl } from "./types.js"
import { OpError } from "./types.js"
import { expectShape, normAxis, sizeOf, stridesOf } from "./util.js"

/** Offsets of every output's first element, and the relative offsets of the elements reduced into it. */
const reductionPlan = (shape: ReadonlyArray<number>, axes: ReadonlyArray<number>) => {
  const r = shape.length
  const st = stridesOf(shape)
  const isRed = shape.map((_, d) => axes.includes(d))
  const keptDims = shape.filter((_, d) => !isRed[d])
  const redDims = shape.filter((_, d) => isRed[d])
  const keptStrides = st.filter((_, d) => !isRed[d])
  const redStrides = st.filter((_, d) => isRed[d])
  const offsets = (dims: ReadonlyArray<number>, strides: ReadonlyArray<number>): Int32Array => {
    const n = sizeOf(dims)
    const m = new Int32Array(n)
    const idx = new Array<number>(dims.length).fill(0)
    let off = 0
    for (let k = 0; k < n; k++) {
      m[k] = off
      for (let d = dims.length - 1; d >= 0; d--) {
        idx[d]!++
        off += strides[d]!
        if (idx[d]! < dims[d]!) break
        off -= strides[d]! * dims[d]!
        idx[d] = 0
      }
    }
    return m
  }
  void r
  return { base: offsets(keptDims, keptStrides), rel: offsets(redDims, redStrides), keptDims }
}

const reduceAxes = (ctx: OpCtx, rank: number): Array<number> =>
  ctx.has("axes") ? [...new Set(ctx.ints("axes").map((a) => normAxis(a, rank)))] : Array.from({ length: rank }, (_, i) => i)

type Fold = { init: number; step: (acc: number, v: number) => number; finish: (acc: number, n: number) => number }

const reducer = (fold: Fold): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const r = x.shape.length
  const axes = reduceAxes(ctx, r)
  const keep = ctx.bool("keep_dims", false)
  const out = ctx.alloc(0)
  const shape = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i))
  expectShape(ctx.op.op, out.shape, shape)
  const { base, rel } = reductionPlan(x.shape, axes)
  const o = out.data
  const m = rel.length
  const { init, step, finish } = fold
  return () => {
    const a = x.data
    for (let k = 0; k < base.length; k++) {
      const b = base[k]!
      let acc = init
      for (let j = 0; j < m; j++) acc = step(acc, a[b + rel[j]!]!)
      o[k] = finish(acc, m)
    }
  }
}

const id = (acc: number) => acc

const argReducer = (pickMax: boolean): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const axis = normAxis(ctx.num("axis", -1), x.shape.length)
  const keep = ctx.bool("keep_dims", false)
  const out = ctx.alloc(0)
  const shape = keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis)
  expectShape(ctx.op.op, out.shape, shape)
  const { base, rel } = reductionPlan(x.shape, [axis])
  const o = out.data
  return () => {
    const a = x.data
    for (let k = 0; k < base.length; k++) {
      const b = base[k]!
      let best = 0
      let bv = a[b]!
      for (let j = 1; j < rel.length; j++) {
        const v = a[b + rel[j]!]!
        if (pickMax ? v > bv : v < bv) {
          bv = v
          best = j
        }
      }
      o[k] = best
    }
  }
}

const softmax: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const axis = normAxis(ctx.num("axis", -1), x.shape.length)
  const out = ctx.alloc(0)
  expectShape("softmax", out.shape, x.shape)
  const { base, rel } = reductionPlan(x.shape, [axis])
  const o = out.data
  return () => {
    const a = x.data
    for (let k = 0; k < base.length; k++) {
      const b = base[k]!
      let mx = -Infinity
      for (let j = 0; j < rel.length; j++) mx = Math.max(mx, a[b + rel[j]!]!)
      let s = 0
      for (let j = 0; j < rel.length; j++) {
        const e = Math.exp(a[b + rel[j]!]! - mx)
        o[b + rel[j]!] = e
        s += e
      }
      for (let j = 0; j < rel.length; j++) o[b + rel[j]!] = o[b + rel[j]!]! / s
    }
  }
}

/** Running sums along one axis (float64 accumulation); `exclusive` leaves each element out, `reverse` runs backwards. */
const cumsum: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const axis = normAxis(ctx.num("axis", 0), x.shape.length)
  const exclusive = ctx.bool("exclusive", false)
  const reverse = ctx.bool("reverse", false)
  const out = ctx.alloc(0)
  expectShape("cumsum", out.shape, x.shape)
  const { base, rel } = reductionPlan(x.shape, [axis])
  const order = reverse ? Array.from(rel).reverse() : Array.from(rel)
  const o = out.data
  return () => {
    const a = x.data
    for (let k = 0; k < base.length; k++) {
      const b = base[k]!
      let s = 0
      for (let j = 0; j < order.length; j++) {
        const at = b + order[j]!
        const v = a[at]!
        if (exclusive) {
          o[at] = s
          s += v
        } else {
          s += v
          o[at] = s
        }
      }
    }
  }
}

const layerNorm: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const r = x.shape.length
  const axes = reduceAxes(ctx, r).sort((p, q) => p - q)
  const gamma = ctx.opt("gamma"), beta = ctx.opt("beta")
  const eps = ctx.num("epsilon", 1e-5)
  const out = ctx.alloc(0)
  expectShape("layer_norm", out.shape, x.shape)
  const normShape = axes.map((a) => x.shape[a]!)
  const nn = sizeOf(normShape)
  for (const [label, v] of [["gamma", gamma], ["beta", beta]] as const) {
    if (v !== undefined && sizeOf(v.shape) !== nn) {
      throw new OpError(`layer_norm: ${label} has ${sizeOf(v.shape)} elements, the normalised axes hold ${nn}`)
    }
  }
  const { base, rel } = reductionPlan(x.shape, axes)
  const o = out.data
  return () => {
    const a = x.data
    const g = gamma?.data, bt = beta?.data
    for (let k = 0; k < base.length; k++) {
      const b = base[k]!
      let s = 0
      for (let j = 0; j < nn; j++) s += a[b + rel[j]!]!
      const mean = s / nn
      let v = 0
      for (let j = 0; j < nn; j++) {
        const d = a[b + rel[j]!]! - mean
        v += d * d
      }
      const inv = 1 / Math.sqrt(v / nn + eps)
      for (let j = 0; j < nn; j++) {
        const at = b + rel[j]!
        o[at] = (a[at]! - mean) * inv * (g ? g[j]! : 1) + (bt ? bt[j]! : 0)
      }
    }
  }
}

const batchNorm: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const mean = ctx.val("mean"), variance = ctx.val("variance")
  const gamma = ctx.opt("gamma"), beta = ctx.opt("beta")
  const eps = ctx.num("epsilon", 1e-5)
  const out = ctx.alloc(0)
  expectShape("batch_norm", out.shape, x.shape)
  const C = x.shape[1]!
  const inner = sizeOf(x.shape.slice(2))
  const outer = x.shape[0]!
  const o = out.data
  return () => {
    const a = x.data
    for (let n = 0; n < outer; n++) {
      for (let c = 0; c < C; c++) {
        const sc = (gamma ? gamma.data[c]! : 1) / Math.sqrt(variance.data[c]! + eps)
        const sh = (beta ? beta.data[c]! : 0) - mean.data[c]! * sc
        const off = (n * C + c) * inner
        for (let i = 0; i < inner; i++) o[off + i] = a[off + i]! * sc + sh
      }
    }
  }
}

/** Reduction and normalisation ops by MIL name. */
export const reduceOps: Record<string, OpImpl> = {
  reduce_sum: reducer({ init: 0, step: (a, v) => a + v, finish: id }),
  reduce_mean: reducer({ init: 0, step: (a, v) => a + v, finish: (a, n) => a / n }),
  reduce_max: reducer({ init: -Infinity, step: (a, v) => (v > a ? v : a), finish: id }),
  reduce_min: reducer({ init: Infinity, step: (a, v) => (v < a ? v : a), finish: id }),
  reduce_prod: reducer({ init: 1, step: (a, v) => a * v, finish: id }),
  reduce_l1_norm: reducer({ init: 0, step: (a, v) => a + Math.abs(v), finish: id }),
  reduce_l2_norm: reducer({ init: 0, step: (a, v) => a + v * v, finish: Math.sqrt }),
  reduce_sum_square: reducer({ init: 0, step: (a, v) => a + v * v, finish: id }),
  reduce_log_sum: reducer({ init: 0, step: (a, v) => a + v, finish: Math.log }),
  reduce_log_sum_exp: reducer({ init: 0, step: (a, v) => a + Math.exp(v), finish: Math.log }),
  reduce_argmax: argReducer(true),
  reduce_argmin: argReducer(false),
  softmax,
  cumsum,
  layer_norm: layerNorm,
  batch_norm: batchNorm
}
