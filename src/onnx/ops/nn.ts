/** Neural-network ONNX ops: convolutions, pooling, normalisation, matrix products, reductions, softmax. */
import type { Tensor } from "../../mil/build.js"
import type { Converter, NodeCtx } from "../context.js"
import { type Const, constant, foldTranspose, size, type Value } from "../values.js"
import { reshapeValue } from "./shape.js"

const spatialAttrs = (c: NodeCtx, spatial: number, kernel: ReadonlyArray<number>) => {
  const strides = c.intList("strides") ?? new Array<number>(spatial).fill(1)
  const dilations = c.intList("dilations") ?? new Array<number>(spatial).fill(1)
  const pads = c.intList("pads") ?? new Array<number>(2 * spatial).fill(0)
  const autoPad = c.str("auto_pad", "NOTSET")
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial || kernel.length !== spatial) {
    c.fail(`strides, dilations, pads or kernel do not match ${spatial} spatial dims`)
  }
  if ([...strides, ...dilations, ...kernel].some((v) => !Number.isInteger(v) || v < 1) || pads.some((p) => p < 0)) {
    c.fail("strides, dilations and kernel must be ≥ 1 and pads ≥ 0")
  }
  const padType = autoPad === "SAME_UPPER" ? "same" : autoPad === "SAME_LOWER" ? "same_lower" : autoPad === "VALID" ? "valid" : "custom"
  // ONNX orders pads [b1, b2, …, e1, e2, …]; MIL interleaves [b1, e1, b2, e2, …].
  const milPad = Array.from({ length: spatial }, (_, i) => [pads[i]!, pads[i + spatial]!]).flat()
  return { strides, dilations, padType, pad: padType === "custom" ? milPad : new Array<number>(2 * spatial).fill(0) } as const
}

const windowOut = (d: number, k: number, s: number, dil: number, p0: number, p1: number, ceil: boolean): number => {
  const eff = (k - 1) * dil + 1
  const v = (d + p0 + p1 - eff) / s
  return (ceil ? Math.ceil(v) : Math.floor(v)) + 1
}

const conv: Converter = (c) => {
  const x = c.in(0), w = c.in(1), bias = c.opt(2)
  if (x.shape.length < 3) c.fail(`input rank ${x.shape.length}: Conv needs [N, C, spatial…]`)
  const spatial = x.shape.length - 2
  const kernel = c.intList("kernel_shape") ?? w.shape.slice(2)
  const groups = c.int("group", 1)
  if (w.shape.length !== x.shape.length || groups < 1 || x.shape[1]! !== w.shape[1]! * groups || w.shape[0]! % groups !== 0) {
    c.fail(`weight [${w.shape.join(", ")}] does not fit input [${x.shape.join(", ")}] with ${groups} group(s)`)
  }
  const a = spatialAttrs(c, spatial, kernel)
  if (bias !== undefined && size(bias.shape) !== w.shape[0]) c.fail(`bias has ${size(bias.shape)} values for ${w.shape[0]} channels`)
  for (let i = 0; i < spatial; i++) {
    if (a.padType === "custom" && windowOut(x.shape[i + 2]!, kernel[i]!, a.strides[i]!, a.dilations[i]!, a.pad[2 * i]!, a.pad[2 * i + 1]!, false) < 1) {
      c.fail("the kernel is larger than the padded input")
    }
  }
  const t = c.b.conv(c.tensor(x), c.tensor(w), {
    ...c.name(), strides: a.strides, dilations: a.dilations, pad: a.pad, padType: a.padType, groups
  })
  if (bias === undefined) return [c.dyn(t, "float")]
  // The bias as a separate add over [C, 1, …]: the form the engine's compiler is known to take (rule conv-bias).
  const bv = bias.tag === "const" ? { ...bias, shape: [size(bias.shape), ...new Array<number>(spatial).fill(1)] } : bias
  return [c.dyn(c.b.add(t, c.tensor(bv), c.name()), "float")]
}

const convTranspose: Converter = (c) => {
  const x = c.in(0), w = c.in(1), bias = c.opt(2)
  if (x.shape.length < 3 || w.shape.length !== x.shape.length) c.fail("ConvTranspose needs [N, C, spatial…] input and weight")
  const spatial = x.shape.length - 2
  const groups = c.int("group", 1)
  const kernel = c.intList("kernel_shape") ?? w.shape.slice(2)
  const a = spatialAttrs(c, spatial, kernel)
  if (a.padType !== "custom" || c.has("output_shape")) c.fail("only explicit pads are supported for ConvTranspose")
  const outPad = c.intList("output_padding") ?? new Array<number>(spatial).fill(0)
  if (x.shape[1] !== w.shape[0]) c.fail(`weight [${w.shape.join(", ")}] does not fit input channels ${x.shape[1]}`)
  const out = [x.shape[0]!, w.shape[1]! * groups, ...Array.from({ length: spatial }, (_, i) =>
    a.strides[i]! * (x.shape[i + 2]! - 1) + outPad[i]! + (kernel[i]! - 1) * a.dilations[i]! + 1 - a.pad[2 * i]! - a.pad[2 * i + 1]!)]
  if (outPad.some((p) => p !== 0)) c.fail("output_padding is not supported")
  const args: Record<string, Tensor> = {
    dilations: c.b.ints(a.dilations), groups: c.b.scalar(groups, "int32"), pad: c.b.ints(a.pad),
    pad_type: c.b.scalar("custom", "string"), strides: c.b.ints(a.strides), weight: c.tensor(w), x: c.tensor(x)
  }
  if (bias !== undefined) args["bias"] = c.tensor(bias)
  return [c.dyn(c.b.op("conv_transpose", args, { dtype: c.dtype, shape: out }, c.name()), "float")]
}

const pool = (kind: "max" | "avg"): Converter => (c) => {
  const x = c.in(0)
  if (x.shape.length < 3) c.fail("pooling needs [N, C, spatial…]")
  const spatial = x.shape.length - 2
  const kernel = c.intList("kernel_shape")
  if (kernel === undefined) return c.fail("kernel_shape is missing")
  const a = spatialAttrs(c, spatial, kernel)
  if (a.dilations.some((d) => d !== 1)) c.fail("dilated pooling is not supported")
  const ceil = c.int("ceil_mode", 0) === 1
  if (ceil && a.padType !== "custom") c.fail("ceil_mode with auto_pad is not supported")
  const out = [x.shape[0]!, x.shape[1]!, ...Array.from({ length: spatial }, (_, i) => {
    const d = x.shape[i + 2]!
    if (a.padType === "same" || a.padType === "same_lower") return Math.ceil(d / a.strides[i]!)
    if (a.padType === "valid") return windowOut(d, kernel[i]!, a.strides[i]!, 1, 0, 0, false)
    return windowOut(d, kernel[i]!, a.strides[i]!, 1, a.pad[2 * i]!, a.pad[2 * i + 1]!, ceil)
  })]
  const args: Record<string, Tensor> = {
    ceil_mode: c.b.scalar(ceil, "bool"), kernel_sizes: c.b.ints(kernel), pad: c.b.ints(a.pad),
    pad_type: c.b.scalar(a.padType, "string"), strides: c.b.ints(a.strides), x: c.tensor(x)
  }
  if (kind === "avg") args["exclude_padding_from_average"] = c.b.scalar(c.int("count_include_pad", 0) === 0, "bool")
  return [c.dyn(c.b.op(kind === "max" ? "max_pool" : "avg_pool", args, { dtype: c.dtype, shape: out }, c.name()), "float")]
}

const reduction = (milOp: string, f: (acc: number, v: number) => number, init: number, finish?: (acc: number, n: number) => number): Converter =>
  (c) => {
    const x = c.in(0)
    const r = x.shape.length
    const fromInput = c.opset >= 18 || (milOp === "reduce_sum" && c.opset >= 13)
    let axes = fromInput ? (c.opt(1) ? c.intsIn(1, "axes") : undefined) : c.intList("axes")
    if (axes === undefined || axes.length === 0) {
      if (c.int("noop_with_empty_axes", 0) === 1) return [x]
      axes = x.shape.map((_, i) => i)
    }
    const norm = axes.map((a) => c.axis(a, r))
    const keep = c.int("keepdims", 1) === 1
    const outShape = x.shape.map((d, i) => (norm.includes(i) ? 1 : d))
    const final = keep ? outShape : x.shape.filter((_, i) => !norm.includes(i))
    if (x.tag === "const") {
      const n = size(outShape)
      const acc = new Float64Array(n).fill(init)
      const os = outShape.map((_, i) => size(outShape.slice(i + 1)))
      const is = x.shape.map((_, i) => size(x.shape.slice(i + 1)))
      for (let i = 0; i < x.data.length; i++) {
        let o = 0
        for (let k = 0; k < r; k++) if (!norm.includes(k)) o += (Math.floor(i / is[k]!) % x.shape[k]!) * os[k]!
        acc[o] = f(acc[o]!, x.data[i]!)
      }
      const count = size(norm.map((a) => x.shape[a]!))
      return [constant(x.kind, final, finish ? Array.from(acc, (v) => finish(v, count)) : acc)]
    }
    return [c.dyn(c.b.op(milOp, {
      axes: c.b.ints(norm), keep_dims: c.b.scalar(keep, "bool"), x: x.t
    }, { dtype: x.t.dtype, shape: final }, c.name()), x.kind)]
  }

const globalPool = (milOp: string): Converter => (c) => {
  const x = c.in(0)
  if (x.shape.length < 3) c.fail("global pooling needs [N, C, spatial…]")
  const axes = x.shape.slice(2).map((_, i) => i + 2)
  return [c.dyn(c.b.op(milOp, { axes: c.b.ints(axes), keep_dims: c.b.scalar(true, "bool"), x: c.tensor(x) },
    { dtype: c.dtype, shape: x.shape.map((d, i) => (i < 2 ? d : 1)) }, c.name()), "float")]
}

/** Per-channel [C, 1, …] view of a vector for an input of rank r. */
const perChannel = (v: Const, r: number): Const => ({ ...v, shape: [size(v.shape), ...new Array<number>(r - 2).fill(1)] })

/**
 * A Conv's constant weight [C_out, C_in/g, k…] and bias with the BatchNormalization that follows it folded in:
 * W' = W·s per output channel, b' = b·s + t, with s = γ/√(σ²+ε) and t = β − μ·s. Undefined when the shapes do not
 * line up (the two ops are then converted as they are, and their own checks report the problem).
 */
export const foldBatchNormIntoConv = (
  w: Const,
  b: Const | undefined,
  bn: { readonly scale: Const; readonly bias: Const; readonly mean: Const; readonly variance: Const; readonly epsilon: number }
): { readonly w: Const; readonly b: Const } | undefined => {
  const C = w.shape[0]
  if (C === undefined || w.kind !== "float" || w.shape.length < 3) return undefined
  if ([bn.scale, bn.bias, bn.mean, bn.variance].some((v) => v.kind !== "float" || size(v.shape) !== C)) return undefined
  if (b !== undefined && (b.kind !== "float" || size(b.shape) !== C)) return undefined
  const per = size(w.shape) / C
  const wd = new Float32Array(w.data.length), bd = new Float32Array(C)
  for (let o = 0; o < C; o++) {
    const s = bn.scale.data[o]! / Math.sqrt(bn.variance.data[o]! + bn.epsilon)
    for (let k = o * per; k < (o + 1) * per; k++) wd[k] = w.data[k]! * s
    bd[o] = (b === undefined ? 0 : b.data[o]!) * s + bn.bias.data[o]! - bn.mean.data[o]! * s
  }
  return { w: constant("float", w.shape, wd), b: constant("float", [C], bd) }
}

const batchNorm: Converter = (c) => {
  const x = c.in(0)
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => c.constIn(i, ["scale", "B", "mean", "var"][i - 1]))
  const eps = c.float("epsilon", 1e-5)
  const C = x.shape[1]
  if (x.shape.length < 2 || [scale, bias, mean, variance].some((v) => size(v!.shape) !== C)) c.fail("scale, B, mean and var must have C values")
  // Folded into one per-channel scale and shift: y = x·s + t, s = γ/√(σ²+ε), t = β − μ·s.
  const s = new Float32Array(C!), t = new Float32Array(C!)
  for (let i = 0; i < C!; i++) {
    s[i] = scale!.data[i]! / Math.sqrt(variance!.data[i]! + eps)
    t[i] = bias!.data[i]! - mean!.data[i]! * s[i]!
  }
  const r = x.shape.length
  const sv = perChannel(constant("float", [C!], s), r), tv = perChannel(constant("float", [C!], t), r)
  const shaped = r === 2 ? { ...sv, shape: [C!] } : sv
  const shapedT = r === 2 ? { ...tv, shape: [C!] } : tv
  const xt = c.tensor(x)
  const y = c.b.add(c.b.mul(xt, c.tensor(shaped), c.name()), c.tensor(shapedT), c.name())
  return [c.dyn(y, "float")]
}

const transposed2d = (v: Const): Const => foldTranspose(v, [1, 0])

const scaled = (v: Const, k: number): Const => (k === 1 ? v : { ...v, data: Float32Array.from(v.data, (x) => x * k) })

const gemm: Converter = (c) => {
  const a = c.in(0), b = c.in(1), cc = c.opt(2)
  const alpha = c.float("alpha", 1), beta = c.float("beta", 1)
  const ta = c.int("transA", 0) === 1, tb = c.int("transB", 0) === 1
  if (a.shape.length !== 2 || b.shape.length !== 2) c.fail("Gemm needs rank-2 A and B")
  const M = ta ? a.shape[1]! : a.shape[0]!, K = ta ? a.shape[0]! : a.shape[1]!
  const N = tb ? b.shape[0]! : b.shape[1]!
  if ((tb ? b.shape[1] : b.shape[0]) !== K) c.fail(`A [${a.shape.join(", ")}] and B [${b.shape.join(", ")}] do not multiply`)
  let y: Tensor
  let biasDone = false
  if (b.tag === "const" && !ta) {
    const weight = scaled(tb ? b : transposed2d(b), alpha)
    const bias = cc?.tag === "const" && size(cc.shape) === N && (cc.shape.length <= 1 || cc.shape[0] === 1)
      ? scaled({ ...cc, shape: [N] }, beta) : undefined
    if (bias === undefined && cc?.tag === "const" && size(cc.shape) === 1) {
      const v = constant("float", [N], new Float32Array(N).fill(cc.data[0]! * beta))
      y = c.b.op("linear", { bias: c.tensor(v), weight: c.tensor(weight), x: c.tensor(a) }, { dtype: c.dtype, shape: [M, N] }, c.name())
    } else {
      y = c.b.op("linear", { ...(bias ? { bias: c.tensor(bias) } : {}), weight: c.tensor(weight), x: c.tensor(a) },
        { dtype: c.dtype, shape: [M, N] }, c.name())
    }
    biasDone = bias !== undefined || (cc?.tag === "const" && size(cc.shape) === 1)
  } else {
    y = c.b.matmul(c.tensor(a), c.tensor(b), { transposeX: ta, transposeY: tb, ...c.name() })
    if (alpha !== 1) y = c.b.mul(y, alpha, c.name())
  }
  if (cc !== undefined && !biasDone) {
    const ct = cc.tag === "const" ? c.tensor(scaled(cc, beta)) : beta === 1 ? cc.t : c.b.mul(cc.t, beta, c.name())
    y = c.b.add(y, ct, c.name())
  }
  return [c.dyn(y, "float")]
}

const mm = (c: NodeCtx, a: Value, b: Value): Value => {
  const K = a.shape[a.shape.length - 1]!
  if (b.shape[b.shape.length - 2] !== K) c.fail(`[${a.shape.join(", ")}] and [${b.shape.join(", ")}] do not multiply`)
  if (b.tag === "const" && b.shape.length === 2) {
    const y = c.b.op("linear", { weight: c.tensor(transposed2d(b)), x: c.tensor(a) },
      { dtype: c.dtype, shape: [...a.shape.slice(0, -1), b.shape[1]!] }, c.name())
    return c.dyn(y, "float")
  }
  return c.dyn(c.b.matmul(c.tensor(a), c.tensor(b), c.name()), "float")
}

const matmul: Converter = (c) => {
  const a = c.in(0), b = c.in(1)
  if (a.shape.length < 1 || b.shape.length < 1) c.fail("MatMul needs tensors of rank ≥ 1")
  // numpy semantics for vectors: a gets a leading 1, b a trailing 1, both removed from the result.
  const a2 = a.shape.length === 1 ? reshapeValue(c, a, [1, a.shape[0]!]) : a
  const b2 = b.shape.length === 1 ? reshapeValue(c, b, [b.shape[0]!, 1]) : b
  const y = mm(c, a2, b2)
  const r = y.shape.length
  const s = y.shape.filter((_, i) => !((a.shape.length === 1 && i === r - 2) || (b.shape.length === 1 && i === r - 1)))
  return [s.length === r ? y : reshapeValue(c, y, s)]
}

const softmax: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const axis = c.axis(c.int("axis", c.opset >= 13 ? -1 : 1), r)
  // Before opset 13 Softmax flattens from `axis`; that equals the per-axis form only on the last axis.
  if (c.opset < 13 && axis !== r - 1) c.fail("Softmax before opset 13 is supported on the last axis only")
  return [c.dyn(c.b.softmax(c.tensor(x), { axis, ...c.name() }), "float")]
}

const layerNorm: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const axis = c.axis(c.int("axis", -1), r)
  const normShape = x.shape.slice(axis)
  const asNorm = (v: Value | undefined, what: string): Tensor | undefined => {
    if (v === undefined) return undefined
    if (v.tag !== "const") c.fail(`${what} must be a constant`)
    if (size(v.shape) !== size(normShape)) c.fail(`${what} has ${size(v.shape)} values for the normalised shape [${normShape.join(", ")}]`)
    return c.tensor({ ...v, shape: normShape })
  }
  const gamma = asNorm(c.opt(1), "Scale"), beta = asNorm(c.opt(2), "B")
  const y = c.b.layerNorm(c.tensor(x), {
    ...c.name(), axes: normShape.map((_, i) => axis + i), epsilon: c.float("epsilon", 1e-5),
    ...(gamma ? { gamma } : {}), ...(beta ? { beta } : {})
  })
  return [c.dyn(y, "float")]
}

/** Neural-network converters by ONNX op type. */
export const nnOps: Readonly<Record<string, Converter>> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool("max"),
  AveragePool: pool("avg"),
  GlobalAveragePool: globalPool("reduce_mean"),
  GlobalMaxPool: globalPool("reduce_max"),
  BatchNormalization: batchNorm,
  Gemm: gemm,
  MatMul: matmul,
  Softmax: softmax,
  LayerNormalization: layerNorm,
  ReduceMean: reduction("reduce_mean", (a, v) => a + v, 0, (a, n) => a / n),
  ReduceSum: reduction("reduce_sum", (a, v) => a + v, 0),
  ReduceMax: reduction("reduce_max", Math.max, -Infinity),
  ReduceMin: reduction("reduce_min", Math.min, Infinity),
  ReduceProd: reduction("reduce_prod", (a, v) => a * v, 1)
}
