/** Shape, indexing and reduction ops (spec §9, errata rows 10–14 and §4.2). */
import type { OpContext, TensorArg } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { formatShape, normAxis, numel, scalar, tensor } from "./types.js"
import type { ResolvedDim, ValueType } from "./types.js"

const ANY: ReadonlySet<string> = new Set([
  "fp16", "fp32", "int32", "bool", "int8", "uint8", "int16", "uint16"
])
const FI: ReadonlySet<string> = new Set(["fp16", "fp32", "int32"])
const INDEX: ReadonlySet<string> = new Set(["int32", "int16", "uint16", "int8", "uint8"])

const rankOf = (t: TensorArg | undefined): number | null => (t && t.type.shape !== null ? t.type.shape.length : null)

/** Normalises a constant axis of argument `name`, reporting an out-of-range one. */
const axisArg = (ctx: OpContext, name: string, rank: number | null, fallback?: number): number | null => {
  const a = ctx.int(name)
  const v = a === undefined ? fallback : a
  if (v === undefined) {
    ctx.missing(name, "an int32 const")
    return null
  }
  if (v === null || rank === null) return null
  const n = normAxis(v, rank)
  if (n === null) {
    ctx.error(ctx.arg(name)?.pos ?? ctx.op.pos, `\`${name}\` expected in [${-rank}, ${rank - 1}] for rank ${rank}, ` +
      `found ${v}`)
  }
  return n
}

const reduction = (dtypes: ReadonlySet<string>): OpRule => ({
  args: ["x", "axes", "keep_dims"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes })
    const keep = ctx.bool("keep_dims", false)
    const axes = ctx.ints("axes", { mustBeConst: true })
    if (!x || x.type.shape === null) return null
    const rank = x.type.shape.length
    if (axes === null || keep === null) return [tensor(x.type.dtype, null)]
    const set = new Set<number>()
    for (const a of axes ?? x.type.shape.map((_, i) => i)) {
      if (a === null) return [tensor(x.type.dtype, null)]
      const n = normAxis(a, rank)
      if (n === null) {
        ctx.error(ctx.arg("axes")!.pos, `axes expected in [${-rank}, ${rank - 1}] for rank ${rank}, found ${a}`)
        return null
      }
      set.add(n)
    }
    const shape = keep ? x.type.shape.map((d, i) => (set.has(i) ? 1 : d)) : x.type.shape.filter((_, i) => !set.has(i))
    return [tensor(x.type.dtype, shape)]
  }
})

const argReduction: OpRule = {
  args: ["x", "axis", "keep_dims", "output_dtype"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: ctx.opset >= 17 ? ANY : FI })
    const keep = ctx.bool("keep_dims", false)
    const out = ctx.string("output_dtype", "int32", ["int32", "uint16"])
    if (!x || x.type.shape === null) return null
    const axis = axisArg(ctx, "axis", x.type.shape.length, -1)
    if (axis === null || keep === null || out === null) return [tensor(out ?? "int32", null)]
    const shape = keep ? x.type.shape.map((d, i) => (i === axis ? 1 : d)) : x.type.shape.filter((_, i) => i !== axis)
    return [tensor(out, shape)]
  }
}

/** Output length of one numpy slice with clamping; null when unknown. */
const sliceLength = (
  dim: ResolvedDim,
  begin: number | null,
  end: number | null,
  stride: number,
  beginMask: boolean,
  endMask: boolean
): ResolvedDim => {
  if (dim === null) {
    // Without the dim only fully explicit non-negative bounds give a length.
    if (beginMask || endMask || begin === null || end === null || begin < 0 || end < 0) return null
    return Math.max(0, Math.ceil((end - begin) / stride))
  }
  let b: number
  let e: number
  if (stride > 0) {
    if (beginMask) b = 0
    else {
      if (begin === null) return null
      b = begin < 0 ? begin + dim : begin
      b = Math.min(Math.max(b, 0), dim)
    }
    if (endMask) e = dim
    else {
      if (end === null) return null
      e = end < 0 ? end + dim : end
      e = Math.min(Math.max(e, 0), dim)
    }
  } else {
    if (beginMask) b = dim - 1
    else {
      if (begin === null) return null
      b = begin < 0 ? begin + dim : begin
      b = Math.min(Math.max(b, -1), dim - 1)
    }
    if (endMask) e = -1
    else {
      if (end === null) return null
      e = end < 0 ? end + dim : end
      e = Math.min(Math.max(e, -1), dim - 1)
    }
  }
  return Math.max(0, Math.ceil((e - b) / stride))
}

const lengthCheck = (ctx: OpContext, name: string, values: ReadonlyArray<unknown>, rank: number): boolean => {
  if (values.length === rank) return true
  ctx.error(ctx.arg(name)!.pos, `\`${name}\` expected ${rank} values (the rank of x), found ${values.length}`,
    TypeCodes.shapeMismatch)
  return false
}

/** The shape a 1-D shape argument describes: known length, values maybe unknown. */
const vectorLength = (arg: TensorArg | undefined): number | null =>
  arg && arg.type.shape !== null && arg.type.shape.length === 1 ? arg.type.shape[0] : null

const gatherLike = (ctx: OpContext, alongAxis: boolean): ReadonlyArray<ValueType | null> | null => {
  const xd = ctx.opset >= 17 ? ANY : FI
  const x = ctx.tensor("x", { dtypes: xd })
  const idx = ctx.tensor("indices", { dtypes: ctx.opset >= 16 ? INDEX : new Set(["int32"]) })
  ctx.bool("validate_indices", false)
  if (!x || !idx || x.type.shape === null || idx.type.shape === null) return x ? [tensor(x.type.dtype, null)] : null
  const axis = axisArg(ctx, "axis", x.type.shape.length, 0)
  if (axis === null) return [tensor(x.type.dtype, null)]
  if (alongAxis) {
    if (idx.type.shape.length !== x.type.shape.length) {
      ctx.error(idx.arg.pos, `indices expected rank ${x.type.shape.length} (the rank of x), found rank ` +
        `${idx.type.shape.length}`, TypeCodes.shapeMismatch)
      return null
    }
    for (let i = 0; i < x.type.shape.length; i++) {
      const a = x.type.shape[i]
      const b = idx.type.shape[i]
      if (i !== axis && a !== null && b !== null && a !== b) {
        ctx.error(idx.arg.pos, `indices expected size ${a} at axis ${i} (as x), found ${b}`, TypeCodes.shapeMismatch)
        return null
      }
    }
    return [tensor(x.type.dtype, idx.type.shape)]
  }
  const bd = ctx.int("batch_dims") ?? 0
  return [tensor(x.type.dtype, [
    ...x.type.shape.slice(0, axis),
    ...idx.type.shape.slice(bd),
    ...x.type.shape.slice(axis + 1)
  ])]
}

const depthSpace = (depthToSpace: boolean): OpRule => ({
  args: ["x", "block_size"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: new Set(["fp16", "fp32"]) })
    const bs = ctx.int("block_size", { mustBeConst: true })
    if (bs === undefined) ctx.missing("block_size", "an int32 const")
    if (!x || x.type.shape === null) return null
    if (x.type.shape.length !== 4) {
      ctx.error(x.arg.pos, `x expected rank 4 [n, C, H, W], found ${formatShape(x.type.shape)}`,
        TypeCodes.shapeMismatch)
      return null
    }
    if (typeof bs !== "number") return [tensor(x.type.dtype, [x.type.shape[0], null, null, null])]
    const [n, c, h, w] = x.type.shape
    if (depthToSpace) {
      if (c !== null && c % (bs * bs) !== 0) {
        ctx.error(x.arg.pos, `channels expected divisible by block_size² = ${bs * bs}, found ${c}`,
          TypeCodes.shapeMismatch)
        return null
      }
      const mul = (d: ResolvedDim) => (d === null ? null : d * bs)
      return [tensor(x.type.dtype, [n, c === null ? null : c / (bs * bs), mul(h), mul(w)])]
    }
    const div = (d: ResolvedDim) => (d === null ? null : d / bs)
    if ((h !== null && h % bs !== 0) || (w !== null && w % bs !== 0)) {
      ctx.error(x.arg.pos, `H and W expected divisible by block_size ${bs}, found ${h} and ${w}`,
        TypeCodes.shapeMismatch)
      return null
    }
    return [tensor(x.type.dtype, [n, c === null ? null : c * bs * bs, div(h), div(w)])]
  }
})

/** Shape and reduction op rules by name. */
export const shapeRules: Readonly<Record<string, OpRule>> = {
  reduce_sum: reduction(FI),
  reduce_mean: reduction(FI),
  reduce_max: reduction(FI),
  reduce_min: reduction(FI),
  reduce_prod: reduction(FI),
  reduce_l1_norm: reduction(FI),
  reduce_l2_norm: reduction(FI),
  reduce_log_sum: reduction(FI),
  reduce_log_sum_exp: reduction(FI),
  reduce_sum_square: reduction(FI),
  reduce_argmax: argReduction,
  reduce_argmin: argReduction,
  reshape: {
    args: ["x", "shape"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const shapeArg = ctx.tensor("shape", { dtypes: INDEX })
      const target = ctx.ints("shape")
      if (!x) return null
      if (target === null || target === undefined) {
        const len = vectorLength(shapeArg)
        return [tensor(x.type.dtype, len === null ? null : new Array<ResolvedDim>(len).fill(null))]
      }
      const src = x.type.shape
      const out: Array<ResolvedDim> = []
      let minus = -1
      for (let i = 0; i < target.length; i++) {
        const t = target[i]
        if (t === -1) {
          if (minus >= 0) {
            ctx.error(shapeArg!.arg.pos, `shape expected at most one -1, found two (at ${minus} and ${i})`)
            return null
          }
          minus = i
          out.push(null)
        } else if (t === 0) {
          if (src === null) out.push(null)
          else if (ctx.opset <= 16) out.push(i < src.length ? src[i] : null)
          else {
            const j = i - (target.length - src.length)
            out.push(j >= 0 && j < src.length ? src[j] : 1)
          }
        } else if (t !== null && t < -1) {
          ctx.error(shapeArg!.arg.pos, `shape expected sizes ≥ -1, found ${t}`)
          return null
        } else out.push(t)
      }
      const total = numel(src)
      if (minus >= 0) {
        const rest = numel(out.filter((_, i) => i !== minus))
        if (total !== null && rest !== null && rest !== 0) {
          if (total % rest !== 0) {
            ctx.error(shapeArg!.arg.pos, `cannot reshape ${formatShape(src)} (${total} elements) to ` +
              `${formatShape(out)}: ${total} is not divisible by ${rest}`, TypeCodes.shapeMismatch)
            return null
          }
          out[minus] = total / rest
        }
      } else {
        const n = numel(out)
        if (total !== null && n !== null && total !== n) {
          ctx.error(shapeArg!.arg.pos, `cannot reshape ${formatShape(src)} (${total} elements) to ` +
            `${formatShape(out)} (${n} elements)`, TypeCodes.shapeMismatch)
          return null
        }
      }
      return [tensor(x.type.dtype, out)]
    }
  },
  transpose: {
    args: ["x", "perm"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const perm = ctx.ints("perm", { mustBeConst: true })
      if (perm === undefined) ctx.missing("perm", "an int32 const vector")
      if (!x || x.type.shape === null) return x ? [x.type] : null
      const rank = x.type.shape.length
      if (!perm) return [tensor(x.type.dtype, new Array<ResolvedDim>(rank).fill(null))]
      if (!lengthCheck(ctx, "perm", perm, rank)) return null
      const seen = new Set<number>()
      const out: Array<ResolvedDim> = []
      for (const p of perm) {
        const n = p === null ? null : normAxis(p, rank)
        if (n === null || seen.has(n)) {
          ctx.error(ctx.arg("perm")!.pos, `perm expected a permutation of 0..${rank - 1}, found [${perm.join(", ")}]`)
          return null
        }
        seen.add(n)
        out.push(x.type.shape[n])
      }
      return [tensor(x.type.dtype, out)]
    }
  },
  expand_dims: {
    args: ["x", "axes"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const axes = ctx.ints("axes", { mustBeConst: true })
      if (axes === undefined) ctx.missing("axes", "an int32 const vector")
      if (!x || x.type.shape === null || !axes) return x ? [tensor(x.type.dtype, null)] : null
      const r = x.type.shape.length + axes.length
      const norm: Array<number> = []
      for (const a of axes) {
        const n = a === null ? null : normAxis(a, r)
        if (n === null) {
          ctx.error(ctx.arg("axes")!.pos, `axes expected in [${-r}, ${r - 1}] for output rank ${r}, found ${a}`)
          return null
        }
        norm.push(n)
      }
      norm.sort((a, b) => a - b)
      const out: Array<ResolvedDim> = [...x.type.shape]
      for (const a of norm) out.splice(a, 0, 1)
      return [tensor(x.type.dtype, out)]
    }
  },
  squeeze: {
    args: ["x", "axes"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const axes = ctx.ints("axes", { mustBeConst: true })
      if (!x || x.type.shape === null) return x ? [tensor(x.type.dtype, null)] : null
      const shape = x.type.shape
      if (axes === null) return [tensor(x.type.dtype, null)]
      if (axes === undefined) {
        if (shape.some((d) => d === null)) return [tensor(x.type.dtype, null)]
        return [tensor(x.type.dtype, shape.filter((d) => d !== 1))]
      }
      const drop = new Set<number>()
      for (const a of axes) {
        const n = a === null ? null : normAxis(a, shape.length)
        if (n === null) {
          ctx.error(ctx.arg("axes")!.pos, `axes expected in [${-shape.length}, ${shape.length - 1}], found ${a}`)
          return null
        }
        // A listed axis whose size is not 1 is kept (errata §4.2).
        if (shape[n] === 1 || shape[n] === null) drop.add(n)
      }
      return [tensor(x.type.dtype, shape.filter((_, i) => !drop.has(i)))]
    }
  },
  concat: {
    args: ["values", "axis", "interleave"],
    infer: (ctx) => {
      const values = ctx.arg("values")
      if (values === undefined) {
        ctx.missing("values", "a tuple of tensors")
        return null
      }
      ctx.bool("interleave", false)
      const items = values.items ?? [values]
      const ts: Array<TensorArg> = []
      for (const it of items) {
        if (it.type === null) return null
        if (it.type.kind !== "tensor") {
          ctx.error(it.pos, `values expected tensors, found ${it.type.kind}`, TypeCodes.wrongArgumentKind)
          return null
        }
        ts.push({ arg: it, type: it.type })
      }
      if (ts.length === 0) {
        ctx.error(values.pos, "values expected at least one tensor, found none", TypeCodes.missingArgument)
        return null
      }
      const first = ts[0]
      for (const t of ts.slice(1)) ctx.sameDtype(first, t)
      const shapes = ts.map((t) => t.type.shape)
      if (shapes.some((s) => s === null)) return [tensor(first.type.dtype, null)]
      const rank = shapes[0]!.length
      for (const t of ts) {
        if (t.type.shape!.length !== rank) {
          ctx.error(t.arg.pos, `values expected rank ${rank} (as the first value), found ` +
            `${formatShape(t.type.shape)}`, TypeCodes.shapeMismatch)
          return null
        }
      }
      const axis = axisArg(ctx, "axis", rank)
      if (axis === null) return [tensor(first.type.dtype, null)]
      const out: Array<ResolvedDim> = [...shapes[0]!]
      let sum: number | null = 0
      for (const t of ts) {
        const s = t.type.shape!
        for (let i = 0; i < rank; i++) {
          if (i === axis) continue
          if (out[i] === null) out[i] = s[i]
          else if (s[i] !== null && s[i] !== out[i]) {
            ctx.error(t.arg.pos, `values expected size ${out[i]} at axis ${i} (all but the concat axis ${axis} ` +
              `must match), found ${formatShape(s)}`, TypeCodes.shapeMismatch)
            return null
          }
        }
        sum = sum === null || s[axis] === null ? null : sum + s[axis]!
      }
      out[axis] = sum
      return [tensor(first.type.dtype, out)]
    }
  },
  stack: {
    args: ["values", "axis"],
    infer: (ctx) => {
      const values = ctx.arg("values")
      if (values === undefined) {
        ctx.missing("values", "a tuple of tensors")
        return null
      }
      const items = values.items ?? [values]
      const first = items[0]
      if (!first || first.type === null || first.type.kind !== "tensor") return null
      let shape = first.type.shape
      for (const it of items.slice(1)) {
        if (it.type === null || it.type.kind !== "tensor") return null
        if (it.type.dtype !== first.type.dtype) {
          ctx.error(it.pos, `values expected dtype ${first.type.dtype}, found ${it.type.dtype}`, TypeCodes.wrongDtype)
        }
        const s = it.type.shape
        if (shape === null || s === null) continue
        if (s.length !== shape.length || s.some((d, i) => d !== null && shape![i] !== null && d !== shape![i])) {
          ctx.error(it.pos, `values expected identical shapes ${formatShape(shape)}, found ${formatShape(s)}`,
            TypeCodes.shapeMismatch)
          return null
        }
        shape = shape.map((d, i) => d ?? s[i])
      }
      if (shape === null) return [tensor(first.type.dtype, null)]
      const axis = axisArg(ctx, "axis", shape.length + 1)
      if (axis === null) return [tensor(first.type.dtype, null)]
      const out = [...shape]
      out.splice(axis, 0, items.length)
      return [tensor(first.type.dtype, out)]
    }
  },
  split: {
    args: ["x", "num_splits", "split_sizes", "axis"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const n = ctx.int("num_splits", { mustBeConst: true })
      const sizes = ctx.ints("split_sizes", { mustBeConst: true })
      if (n === undefined && sizes === undefined) {
        ctx.missing("num_splits", "num_splits or split_sizes")
        return null
      }
      if (!x || x.type.shape === null) return null
      const axis = axisArg(ctx, "axis", x.type.shape.length)
      if (axis === null) return null
      const dim = x.type.shape[axis]
      const piece = (d: ResolvedDim) => tensor(x.type.dtype, x.type.shape!.map((v, i) => (i === axis ? d : v)))
      if (sizes) {
        const total = sizes.reduce<number | null>((a, b) => (a === null || b === null ? null : a + b), 0)
        if (dim !== null && total !== null && total !== dim) {
          ctx.error(ctx.arg("split_sizes")!.pos, `split_sizes expected to sum to ${dim} (x's axis ${axis}), ` +
            `found ${total}`, TypeCodes.shapeMismatch)
          return null
        }
        return sizes.map(piece)
      }
      if (typeof n !== "number") return null
      if (dim !== null && dim % n !== 0) {
        ctx.error(ctx.arg("num_splits")!.pos, `x's axis ${axis} (size ${dim}) expected divisible by num_splits ${n}`,
          TypeCodes.shapeMismatch)
        return null
      }
      return new Array<ValueType>(n).fill(piece(dim === null ? null : dim / n))
    }
  },
  slice_by_index: {
    args: ["x", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      ctx.tensor("begin", { dtypes: INDEX })
      ctx.tensor("end", { dtypes: INDEX })
      if (!x || x.type.shape === null) return x ? [tensor(x.type.dtype, null)] : null
      const shape = x.type.shape
      const rank = shape.length
      const begin = ctx.ints("begin")
      const end = ctx.ints("end")
      const stride = ctx.ints("stride")
      const bm = ctx.bools("begin_mask")
      const em = ctx.bools("end_mask")
      const sm = ctx.bools("squeeze_mask")
      for (const [name, v] of [["begin", begin], ["end", end], ["stride", stride], ["begin_mask", bm],
        ["end_mask", em], ["squeeze_mask", sm]] as const) {
        if (v && !lengthCheck(ctx, name, v, rank)) return null
      }
      if (sm === null) return [tensor(x.type.dtype, null)]
      const out: Array<ResolvedDim> = []
      for (let i = 0; i < rank; i++) {
        if (sm && sm[i]) continue
        const s = stride ? stride[i] : 1
        if (s === 0) {
          ctx.error(ctx.arg("stride")!.pos, `stride expected non-zero entries, found 0 at axis ${i}`)
          return null
        }
        if (s === null || !begin || !end) {
          out.push(null)
          continue
        }
        out.push(sliceLength(shape[i], begin[i], end[i], s, bm?.[i] === true, em?.[i] === true))
      }
      return [tensor(x.type.dtype, out)]
    }
  },
  slice_by_size: {
    args: ["x", "begin", "size"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      ctx.tensor("begin", { dtypes: INDEX })
      ctx.tensor("size", { dtypes: INDEX })
      if (!x || x.type.shape === null) return x ? [tensor(x.type.dtype, null)] : null
      const shape = x.type.shape
      const begin = ctx.ints("begin")
      const size = ctx.ints("size")
      if (begin && !lengthCheck(ctx, "begin", begin, shape.length)) return null
      if (!size) return [tensor(x.type.dtype, new Array<ResolvedDim>(shape.length).fill(null))]
      if (!lengthCheck(ctx, "size", size, shape.length)) return null
      const out: Array<ResolvedDim> = []
      for (let i = 0; i < shape.length; i++) {
        const s = size[i]
        const d = shape[i]
        const b0 = begin ? begin[i] : null
        const b = b0 !== null && b0 < 0 && d !== null ? b0 + d : b0
        if (s === -1) {
          out.push(d === null || b === null ? null : d - b)
          continue
        }
        if (s !== null && b !== null && d !== null && (b < 0 || b + s > d)) {
          ctx.error(ctx.arg("size")!.pos, `slice [${b}, ${b + s}) expected inside axis ${i} of size ${d}`,
            TypeCodes.shapeMismatch)
          return null
        }
        out.push(s)
      }
      return [tensor(x.type.dtype, out)]
    }
  },
  tile: {
    args: ["x", "reps"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const reps = ctx.ints("reps")
      if (!x || x.type.shape === null) return null
      if (!reps) return [tensor(x.type.dtype, new Array<ResolvedDim>(x.type.shape.length).fill(null))]
      if (!lengthCheck(ctx, "reps", reps, x.type.shape.length)) return null
      return [tensor(x.type.dtype, x.type.shape.map((d, i) => {
        const r = reps[i]
        return d === null || r === null ? null : d * r
      }))]
    }
  },
  pad: {
    args: ["x", "pad", "mode", "constant_val"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: new Set(["fp16", "fp32"]) })
      const p = ctx.ints("pad")
      if (!ctx.has("pad")) ctx.missing("pad", "an int32 vector of 2·N pad sizes")
      const mode = ctx.string("mode", "constant", ["constant", "reflect", "replicate"])
      const cv = ctx.tensor("constant_val", { required: false })
      ctx.sameDtype(x, cv)
      if (!x || x.type.shape === null) return null
      const shape = x.type.shape
      if (!p) return [tensor(x.type.dtype, new Array<ResolvedDim>(shape.length).fill(null))]
      if (p.length % 2 !== 0 || p.length / 2 > shape.length) {
        ctx.error(ctx.arg("pad")!.pos, `pad expected an even number of entries ≤ ${2 * shape.length}, found ` +
          `${p.length}`, TypeCodes.shapeMismatch)
        return null
      }
      const n = p.length / 2
      const out = [...shape]
      for (let k = 0; k < n; k++) {
        const axis = shape.length - n + k
        const before = p[2 * k]
        const after = p[2 * k + 1]
        const d = shape[axis]
        if ((before !== null && before < 0) || (after !== null && after < 0)) {
          ctx.error(ctx.arg("pad")!.pos, `pad expected entries ≥ 0, found [${p.join(", ")}]`)
          return null
        }
        if (mode === "reflect" && d !== null && ((before ?? 0) > d - 1 || (after ?? 0) > d - 1)) {
          ctx.error(ctx.arg("pad")!.pos, `reflect pad expected at most ${d - 1} per side on axis ${axis}, found ` +
            `${before} and ${after}`)
          return null
        }
        out[axis] = d === null || before === null || after === null ? null : d + before + after
      }
      return [tensor(x.type.dtype, out)]
    }
  },
  gather: { args: ["x", "indices", "axis", "batch_dims", "validate_indices"], infer: (ctx) => gatherLike(ctx, false) },
  gather_along_axis: { args: ["x", "indices", "axis", "validate_indices"], infer: (ctx) => gatherLike(ctx, true) },
  shape: {
    args: ["x"],
    infer: (ctx) => {
      const x = ctx.tensor("x")
      return x ? [tensor("int32", [rankOf(x)])] : null
    }
  },
  range_1d: {
    args: ["end", "start", "step"],
    infer: (ctx) => {
      const e = ctx.tensor("end", { dtypes: FI })
      const s = ctx.tensor("start", { dtypes: FI })
      const st = ctx.tensor("step", { dtypes: FI })
      ctx.sameDtype(e, s)
      ctx.sameDtype(e, st)
      if (!e) return null
      const ev = ctx.values("end")
      const sv = ctx.values("start")
      const tv = ctx.values("step")
      const num = (v: typeof ev) => (v && v.length === 1 && typeof v[0] === "number" ? v[0] : null)
      const [a, b, c] = [num(sv), num(ev), num(tv)]
      if (c === 0) {
        ctx.error(ctx.arg("step")!.pos, "step expected non-zero, found 0")
        return null
      }
      const len = a !== null && b !== null && c !== null ? Math.max(0, Math.ceil((b - a) / c)) : null
      return [tensor(e.type.dtype, [len])]
    }
  },
  fill: {
    args: ["shape", "value"],
    infer: (ctx) => {
      const shape = ctx.ints("shape")
      const v = ctx.tensor("value", { required: false })
      return [tensor(v?.type.dtype ?? "fp32", shape ? shape : null)]
    }
  },
  depth_to_space: depthSpace(true),
  space_to_depth: depthSpace(false),
  topk: {
    args: ["x", "k", "axis", "ascending", "sort", "return_indices", "output_indices_dtype"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ctx.opset >= 17 ? ANY : FI })
      const k = ctx.int("k") ?? null
      ctx.bool("ascending", false)
      ctx.bool("sort", true)
      const ret = ctx.bool("return_indices", true)
      const idt = ctx.string("output_indices_dtype", "int32", ["int32", "uint16"])
      if (!x || x.type.shape === null) return null
      const axis = axisArg(ctx, "axis", x.type.shape.length, -1)
      if (axis === null) return null
      const d = x.type.shape[axis]
      if (k !== null && d !== null && k > d) {
        ctx.error(ctx.arg("k")!.pos, `k expected ≤ ${d} (x's axis ${axis}), found ${k}`, TypeCodes.shapeMismatch)
        return null
      }
      const kk = k === -1 ? d : k
      const shape = x.type.shape.map((v, i) => (i === axis ? kk : v))
      const values = tensor(x.type.dtype, shape)
      if (ret === false) return [values]
      return [values, tensor(idt ?? "int32", shape)]
    }
  }
}

/** Re-exported scalar builder for sibling modules. */
export const scalarType = scalar
