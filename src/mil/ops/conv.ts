/** Convolution and pooling ops: window output sizes with pads, strides, dilations, groups (spec §9, errata rows 1–4, §4.3). */
import type { OpContext, TensorArg } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { formatShape, tensor } from "./types.js"
import type { ResolvedDim } from "./types.js"


const F: ReadonlySet<string> = new Set(["fp16", "fp32"])

/** Reads a per-spatial-dim int vector (strides, dilations, kernel sizes), defaulting to 1s. */
const perDim = (ctx: OpContext, name: string, n: number, fallback: number | null): ReadonlyArray<number | null> | null => {
  const v = ctx.ints(name)
  if (v === undefined) return fallback === null ? null : new Array<number>(n).fill(fallback)
  if (v === null) return new Array<number | null>(n).fill(null)
  if (v.length === 1 && n > 1) return new Array<number | null>(n).fill(v[0])
  if (v.length !== n) {
    ctx.error(ctx.arg(name)!.pos, `\`${name}\` expected ${n} values (one per spatial dim), found ${v.length}`,
      TypeCodes.shapeMismatch)
    return null
  }
  return v
}

/** Output spatial sizes of a conv or pool window (errata row 2/3: `pad` only counts with `custom`). */
export const windowOutput = (
  ctx: OpContext,
  spatial: ReadonlyArray<ResolvedDim>,
  kernel: ReadonlyArray<number | null>,
  options: { readonly dilationsArg: boolean; readonly ceilMode: boolean }
): ReadonlyArray<ResolvedDim> | null => {
  const n = spatial.length
  const strides = perDim(ctx, "strides", n, 1)
  const dil = options.dilationsArg ? perDim(ctx, "dilations", n, 1) : new Array<number>(n).fill(1)
  if (!strides || !dil) return null
  const padType = ctx.string("pad_type", "valid", ["valid", "same", "custom", "same_lower"])
  if (padType === "same_lower" && ctx.opset <= 15) {
    ctx.error(ctx.arg("pad_type")!.pos, `pad_type "same_lower" expected opset ios16 or later, found ios15`)
  }
  let pads: ReadonlyArray<number | null> = new Array<number>(2 * n).fill(0)
  if (padType === "custom") {
    const p = ctx.ints("pad")
    if (p === null) pads = new Array<null>(2 * n).fill(null)
    else if (p !== undefined) {
      if (p.length !== 2 * n) {
        ctx.error(ctx.arg("pad")!.pos, `pad expected ${2 * n} values (before/after per spatial dim), found ` +
          `${p.length}`, TypeCodes.shapeMismatch)
        return null
      }
      pads = p
    }
  }
  const out: Array<ResolvedDim> = []
  for (let i = 0; i < n; i++) {
    const d = spatial[i]
    const k = kernel[i]
    const s = strides[i]
    const dl = dil[i]
    if (d === null || k === null || s === null || dl === null || padType === null) {
      out.push(padType === "same" || padType === "same_lower" ? (d === null || s === null ? null : Math.ceil(d / s))
        : null)
      continue
    }
    if (padType === "same" || padType === "same_lower") {
      out.push(Math.ceil(d / s))
      continue
    }
    const before = pads[2 * i]
    const after = pads[2 * i + 1]
    if (before === null || after === null) {
      out.push(null)
      continue
    }
    const eff = (k - 1) * dl + 1
    const num = d + before + after - eff
    let o = options.ceilMode ? Math.floor((num + s - 1) / s) + 1 : Math.floor(num / s) + 1
    if (options.ceilMode && before + after > 0 && (o - 1) * s >= d + (before + after) / 2) o -= 1
    if (o <= 0) {
      ctx.error(ctx.arg("x")!.pos, `spatial dim ${i} of size ${d} with kernel ${k}, dilation ${dl}, stride ${s} and ` +
        `pads ${before}/${after} expected a positive output size, found ${o}`, TypeCodes.shapeMismatch)
      return null
    }
    out.push(o)
  }
  return out
}

const spatialInput = (ctx: OpContext, x: TensorArg): ReadonlyArray<ResolvedDim> | null => {
  const s = x.type.shape
  if (s === null) return null
  if (s.length < 3 || s.length > 5) {
    ctx.error(x.arg.pos, `x expected rank 3 to 5 [n, C, *spatial], found ${formatShape(s)}`, TypeCodes.shapeMismatch)
    return null
  }
  return s
}

const conv: OpRule = {
  args: ["x", "weight", "bias", "strides", "pad_type", "pad", "dilations", "groups"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: F })
    const w = ctx.tensor("weight", { dtypes: F })
    const b = ctx.tensor("bias", { required: false, dtypes: F })
    if (ctx.opset < 17) {
      ctx.sameDtype(x, w)
      ctx.sameDtype(x, b)
    }
    const groups = ctx.int("groups") ?? 1
    if (!x) return null
    const xs = spatialInput(ctx, x)
    if (!xs) return [tensor(x.type.dtype, null)]
    const n = xs.length - 2
    const cin = xs[1]
    let cout: ResolvedDim = null
    let kernel: ReadonlyArray<number | null> = new Array<null>(n).fill(null)
    if (w && w.type.shape !== null) {
      const ws = w.type.shape
      if (ws.length !== xs.length) {
        ctx.error(w.arg.pos, `weight expected rank ${xs.length} [C_out, C_in/groups, *K], found ${formatShape(ws)}`,
          TypeCodes.shapeMismatch)
        return null
      }
      cout = ws[0]
      kernel = ws.slice(2)
      if (groups !== null && cin !== null && cin % groups !== 0) {
        ctx.error(ctx.arg("groups")!.pos, `C_in ${cin} expected divisible by groups ${groups}`,
          TypeCodes.shapeMismatch)
        return null
      }
      if (groups !== null && cin !== null && ws[1] !== null && ws[1] !== cin / groups) {
        ctx.error(w.arg.pos, `weight expected ${cin / groups} input channels (C_in ${cin} / groups ${groups}) at ` +
          `axis 1, found ${formatShape(ws)}`, TypeCodes.shapeMismatch)
        return null
      }
      if (!w.arg.isConst && w.arg.producer !== "const" && !w.arg.producer.startsWith("constexpr_")) {
        const dil = ctx.ints("dilations")
        if (dil && dil.some((d) => d !== null && d > 1)) {
          ctx.error(ctx.arg("dilations")!.pos, `dilations expected all 1 with a run-time weight (errata row 1), ` +
            `found [${dil.join(", ")}]`)
        }
      }
    }
    if (b && b.type.shape !== null) {
      const bs = b.type.shape
      if (bs.length !== 1 || (cout !== null && bs[0] !== null && bs[0] !== cout)) {
        ctx.error(b.arg.pos, `bias expected shape [${cout ?? "C_out"}], found ${formatShape(bs)}`,
          TypeCodes.shapeMismatch)
      }
    }
    const spatial = windowOutput(ctx, xs.slice(2), kernel, { dilationsArg: true, ceilMode: false })
    if (!spatial) return null
    return [tensor(x.type.dtype, [xs[0], cout, ...spatial])]
  }
}

const convTranspose: OpRule = {
  args: ["x", "weight", "bias", "pad", "output_shape", "pad_type", "strides", "dilations", "groups"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: F })
    const w = ctx.tensor("weight", { dtypes: F })
    ctx.tensor("bias", { required: false, dtypes: F })
    const groups = ctx.int("groups") ?? 1
    if (!x) return null
    const xs = spatialInput(ctx, x)
    if (!xs) return [tensor(x.type.dtype, null)]
    const explicit = ctx.ints("output_shape")
    if (explicit) return [tensor(x.type.dtype, explicit)]
    const n = xs.length - 2
    if (!w || w.type.shape === null) return [tensor(x.type.dtype, null)]
    // Weight layout [C_in, C_out/groups, *K].
    const ws = w.type.shape
    const cout = ws[1] === null || groups === null ? null : ws[1] * groups
    const strides = perDim(ctx, "strides", n, 1)
    const dil = perDim(ctx, "dilations", n, 1)
    const padType = ctx.string("pad_type", "valid", ["valid", "same", "custom", "same_lower"])
    const p = padType === "custom" ? ctx.ints("pad") : undefined
    const out: Array<ResolvedDim> = []
    for (let i = 0; i < n; i++) {
      const d = xs[2 + i]
      const k = ws[2 + i]
      const s = strides?.[i] ?? null
      const dl = dil?.[i] ?? null
      if (d === null || k === null || s === null || dl === null) {
        out.push(null)
        continue
      }
      if (padType === "same" || padType === "same_lower") {
        out.push(d * s)
        continue
      }
      const before = p ? p[2 * i] : 0
      const after = p ? p[2 * i + 1] : 0
      out.push(before === null || after === null ? null : (d - 1) * s + (k - 1) * dl + 1 - before - after)
    }
    return [tensor(x.type.dtype, [xs[0], cout, ...out])]
  }
}

const pool = (avg: boolean): OpRule => ({
  args: avg
    ? ["x", "kernel_sizes", "strides", "pad_type", "pad", "exclude_padding_from_average", "ceil_mode"]
    : ["x", "kernel_sizes", "strides", "pad_type", "pad", "ceil_mode"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes: F })
    if (!ctx.has("pad_type")) ctx.missing("pad_type", `a string const ("valid", "same", "custom")`)
    if (!ctx.has("kernel_sizes")) ctx.missing("kernel_sizes", "an int32 const vector")
    const ceil = ctx.bool("ceil_mode", false)
    if (!x) return null
    const xs = spatialInput(ctx, x)
    if (!xs) return [tensor(x.type.dtype, null)]
    const kernel = perDim(ctx, "kernel_sizes", xs.length - 2, null)
    if (!kernel) return [tensor(x.type.dtype, null)]
    const spatial = windowOutput(ctx, xs.slice(2), kernel, { dilationsArg: false, ceilMode: ceil === true })
    if (!spatial) return null
    return [tensor(x.type.dtype, [xs[0], xs[1], ...spatial])]
  }
})

/** Convolution and pooling rules by name. */
export const convRules: Readonly<Record<string, OpRule>> = {
  conv,
  conv_transpose: convTranspose,
  max_pool: pool(false),
  avg_pool: pool(true),
  l2_pool: pool(false)
}
