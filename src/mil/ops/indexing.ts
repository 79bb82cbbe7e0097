/** Reductions, slices, gathers, topk, shape and range ops (spec §9, errata rows 10 and 13, §4.2). */
import type { OpContext, TensorArg } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { normAxis, tensor } from "./types.js"
import type { ResolvedDim, ValueType } from "./types.js"
import { ANY, axisArg, FI, INDEX, lengthCheck, rankOf } from "./axes.js"

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

/**
 * The shape slice_by_index reads from `x` (also slice_update's window): undefined after an error, null dims where
 * unknown, null for an unknown rank.
 */
const sliceWindow = (ctx: OpContext, x: TensorArg): Array<ResolvedDim> | null | undefined => {
  ctx.tensor("begin", { dtypes: INDEX })
  ctx.tensor("end", { dtypes: INDEX })
  if (x.type.shape === null) return null
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
    if (v && !lengthCheck(ctx, name, v, rank)) return undefined
  }
  // A squeeze mask that is not constant leaves the rank unknown.
  if (sm === null) return null
  const out: Array<ResolvedDim> = []
  for (let i = 0; i < rank; i++) {
    if (sm && sm[i]) continue
    const s = stride ? stride[i] : 1
    if (s === 0) {
      ctx.error(ctx.arg("stride")!.pos, `stride expected non-zero entries, found 0 at axis ${i}`)
      return undefined
    }
    if (s === null || !begin || !end) {
      out.push(null)
      continue
    }
    out.push(sliceLength(shape[i], begin[i], end[i], s, bm?.[i] === true, em?.[i] === true))
  }
  return out
}

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

/** Reduction and indexing op rules by name. */
export const indexingRules: Readonly<Record<string, OpRule>> = {
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
  cumsum: {
    args: ["x", "axis", "exclusive", "reverse"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: FI })
      axisArg(ctx, "axis", rankOf(x), 0)
      ctx.bool("exclusive", false)
      ctx.bool("reverse", false)
      return x ? [x.type] : null
    }
  },
  slice_by_index: {
    args: ["x", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      if (!x) return null
      const window = sliceWindow(ctx, x)
      return window === undefined ? null : [tensor(x.type.dtype, window)]
    }
  },
  slice_update: {
    args: ["x", "update", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: ANY })
      const update = ctx.tensor("update", { dtypes: ANY })
      if (!x) return null
      const window = sliceWindow(ctx, x)
      if (update && !ctx.sameDtype(x, update)) return null
      if (update && window && update.type.shape !== null && window.every((d) => d !== null)) {
        const got = update.type.shape
        if (got.length !== window.length || got.some((d, i) => d !== null && d !== window[i])) {
          ctx.error(update.arg.pos, `update expected shape [${window.join(", ")}] (the slice), found [${got.join(", ")}]`)
          return null
        }
      }
      return [x.type]
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
      const n = a !== null && b !== null && c !== null ? Math.max(0, Math.ceil((b - a) / c)) : null
      // 1e300 / 1e-300 is no length: only an exact integer counts as a known size.
      const len = n !== null && Number.isSafeInteger(n) ? n : null
      return [tensor(e.type.dtype, [len])]
    }
  },
  one_hot: {
    args: ["indices", "one_hot_vector_size", "axis", "on_value", "off_value"],
    infer: (ctx) => {
      const indices = ctx.tensor("indices", { dtypes: INDEX })
      const size = ctx.int("one_hot_vector_size")
      if (size === undefined) ctx.missing("one_hot_vector_size", "an int32")
      else if (typeof size === "number" && size < 1) {
        ctx.error(ctx.arg("one_hot_vector_size")!.pos, `one_hot_vector_size expected ≥ 1, found ${size}`)
        return null
      }
      const on = ctx.tensor("on_value", { dtypes: FI, required: false })
      const off = ctx.tensor("off_value", { dtypes: FI, required: false })
      if (on && off && !ctx.sameDtype(on, off)) return null
      // The values' dtype; literal defaults (1 and 0) are int32.
      const dtype = on?.type.dtype ?? off?.type.dtype ?? "int32"
      const rank = rankOf(indices)
      if (!indices || rank === null) return [tensor(dtype, null)]
      // The new axis may go anywhere in the output, so the axis ranges over rank + 1 positions.
      const axis = axisArg(ctx, "axis", rank + 1, -1)
      if (axis === null) return null
      const shape = [...indices.type.shape!]
      shape.splice(axis, 0, typeof size === "number" ? size : null)
      return [tensor(dtype, shape)]
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
