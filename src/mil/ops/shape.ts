/** Shape ops: reshape, transpose, expand/squeeze, concat/stack/split, tile, pad, depth/space (spec §9, errata rows 12–14, §4.2). */
import type { TensorArg } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { formatShape, normAxis, numel, tensor } from "./types.js"
import type { ResolvedDim, ValueType } from "./types.js"
import { ANY, axisArg, INDEX, lengthCheck } from "./axes.js"

/** The shape a 1-D shape argument describes: known length, values maybe unknown. */
const vectorLength = (arg: TensorArg | undefined): number | null => {
  const n = arg && arg.type.shape !== null && arg.type.shape.length === 1 ? arg.type.shape[0] : null
  // The length becomes a rank: past MAX_RANK it is no real shape, and must not size an array.
  return n !== null && n !== undefined && n <= MAX_RANK ? n : null
}

/** Highest rank a shape vector may describe before the checker treats the rank as unknown. */
const MAX_RANK = 64

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

/** Shape op rules by name. */
export const shapeRules: Readonly<Record<string, OpRule>> = {
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
      if (n < 1) {
        ctx.error(ctx.arg("num_splits")!.pos, `num_splits expected ≥ 1, found ${n}`)
        return null
      }
      // The count sizes the result list: compare it with the outputs declared before building anything.
      const declared = ctx.op.outputs.length
      if (n !== declared) {
        ctx.report.error(TypeCodes.outputCount, ctx.op.pos,
          `split: expected ${n} output${n === 1 ? "" : "s"}, found ${declared} declared`)
        return null
      }
      if (dim !== null && dim % n !== 0) {
        ctx.error(ctx.arg("num_splits")!.pos, `x's axis ${axis} (size ${dim}) expected divisible by num_splits ${n}`,
          TypeCodes.shapeMismatch)
        return null
      }
      return new Array<ValueType>(n).fill(piece(dim === null ? null : dim / n))
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
  depth_to_space: depthSpace(true),
  upsample_nearest_neighbor: {
    args: ["x", "scale_factor_height", "scale_factor_width"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: new Set(["fp16", "fp32"]) })
      const scale = (name: string): number | null => {
        const v = ctx.values(name)
        if (v === undefined) return 1
        if (v === null || v.length !== 1 || typeof v[0] !== "number") return null
        if (!(v[0] > 0)) {
          ctx.error(ctx.arg(name)!.pos, `\`${name}\` expected > 0, found ${v[0]}`)
          return Number.NaN
        }
        return v[0]
      }
      const sh = scale("scale_factor_height"), sw = scale("scale_factor_width")
      if (!x || x.type.shape === null) return null
      if (x.type.shape.length < 3) {
        ctx.error(x.arg.pos, `x expected rank ≥ 3 [*, H, W], found ${formatShape(x.type.shape)}`, TypeCodes.shapeMismatch)
        return null
      }
      if (Number.isNaN(sh) || Number.isNaN(sw)) return null
      const r = x.type.shape.length
      const grow = (d: ResolvedDim, f: number | null) => (d === null || f === null ? null : Math.floor(d * f))
      return [tensor(x.type.dtype, [...x.type.shape.slice(0, r - 2), grow(x.type.shape[r - 2]!, sh), grow(x.type.shape[r - 1]!, sw)])]
    }
  },
  space_to_depth: depthSpace(false),
}
