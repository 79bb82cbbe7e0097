/** Shape and data-movement ONNX ops; on constants they fold (Silero's shape arithmetic never reaches the program). */
import type { Tensor } from "../../mil/build.js"
import type { Converter, NodeCtx } from "../context.js"
import {
  type AxisSlice, type Const, constant, foldConcat, foldElementwise, foldGather, foldSlice, foldTranspose, ints,
  normaliseSlice, size, type Value
} from "../values.js"

const reshapeValue = (c: NodeCtx, x: Value, shape: ReadonlyArray<number>): Value => {
  if (size(shape) !== size(x.shape)) c.fail(`cannot reshape [${x.shape.join(", ")}] to [${shape.join(", ")}]`)
  if (x.tag === "const") return { ...x, shape: [...shape] }
  if (shape.length === x.shape.length && shape.every((d, i) => d === x.shape[i])) return x
  return c.dyn(c.b.reshape(x.t, shape, c.name()), x.kind)
}

/** Resolves ONNX Reshape's 0 (copy, unless allowzero) and −1 (infer). */
const targetShape = (c: NodeCtx, from: ReadonlyArray<number>, spec: ReadonlyArray<number>, allowZero: boolean): Array<number> => {
  const out = spec.map((d, i) => (d === 0 && !allowZero ? (from[i] ?? c.fail(`shape entry ${i} copies a missing dim`)) : d))
  const unknown = out.filter((d) => d === -1).length
  if (unknown > 1 || out.some((d) => d < -1)) c.fail(`bad target shape [${spec.join(", ")}]`)
  if (unknown === 1) {
    const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
    const total = size(from)
    if (known === 0 || total % known !== 0) c.fail(`cannot reshape [${from.join(", ")}] to [${spec.join(", ")}]`)
    out[out.indexOf(-1)] = total / known
  }
  return out
}

const axesOf = (c: NodeCtx, inputIndex: number): Array<number> | undefined =>
  c.opset >= 13 ? (c.opt(inputIndex) === undefined ? undefined : c.intsIn(inputIndex, "axes")) : c.intList("axes")

const squeeze: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const axes = axesOf(c, 1)?.map((a) => c.axis(a, r))
  const drop = new Set(axes ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])))
  for (const a of drop) if (x.shape[a] !== 1) c.fail(`cannot squeeze axis ${a} of size ${x.shape[a]}`)
  return [reshapeValue(c, x, x.shape.filter((_, i) => !drop.has(i)))]
}

const unsqueeze: Converter = (c) => {
  const x = c.in(0)
  const axes = axesOf(c, 1)
  if (axes === undefined) return c.fail("axes are missing")
  const r = x.shape.length + axes.length
  const set = new Set(axes.map((a) => c.axis(a, r)))
  if (set.size !== axes.length) c.fail(`repeated axes [${axes.join(", ")}]`)
  const out: Array<number> = []
  let k = 0
  for (let i = 0; i < r; i++) out.push(set.has(i) ? 1 : x.shape[k++]!)
  return [reshapeValue(c, x, out)]
}

const transpose = (c: NodeCtx, x: Value, perm: ReadonlyArray<number>): Value => {
  if (x.tag === "const") return foldTranspose(x, perm)
  if (perm.every((p, i) => p === i)) return x
  return c.dyn(c.b.transpose(x.t, perm, c.name()), x.kind)
}

const concat = (c: NodeCtx, xs: ReadonlyArray<Value>, axis: number): Value => {
  const r = xs[0]!.shape.length
  for (const x of xs) {
    if (x.shape.length !== r || x.shape.some((d, i) => i !== axis && d !== xs[0]!.shape[i])) {
      c.fail(`inputs [${xs.map((v) => v.shape.join("×")).join("], [")}] do not concatenate on axis ${axis}`)
    }
  }
  const parts = xs.filter((x) => x.shape[axis] !== 0)
  if (parts.length === 0) return xs[0]!
  if (parts.every((x) => x.tag === "const")) return foldConcat(parts as Array<Const>, axis)
  if (parts.length === 1) return parts[0]!
  const kind = parts[0]!.kind
  return c.dyn(c.b.concat(parts.map((x) => c.tensor(x)), { axis, ...c.name() }), kind)
}

/** A strided slice of a program value: slice_by_size for unit steps, slice_by_index otherwise. */
export const sliceValue = (c: NodeCtx, x: Value, slices: ReadonlyArray<AxisSlice>): Value => {
  if (x.tag === "const") return foldSlice(x, slices)
  if (slices.some((s) => s.count === 0)) c.fail("a slice with no elements cannot be computed by the program")
  if (slices.every((s, i) => s.step === 1 && s.start === 0 && s.count === x.shape[i])) return x
  const shape = slices.map((s) => s.count)
  if (slices.every((s) => s.step === 1)) {
    return c.dyn(c.b.sliceBySize(x.t, slices.map((s) => s.start), shape, c.name()), x.kind)
  }
  const end = slices.map((s) => s.start + s.count * s.step)
  const t = c.b.op("slice_by_index", {
    begin: c.b.ints(slices.map((s) => s.start)),
    end: c.b.ints(end.map((e) => Math.max(e, 0))),
    end_mask: c.b.const(end.map((e) => (e < 0 ? 1 : 0)), [end.length], { dtype: "bool" }),
    stride: c.b.ints(slices.map((s) => s.step)),
    x: x.t
  }, { dtype: x.t.dtype, shape }, c.name())
  return c.dyn(t, x.kind)
}

const slice: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const legacy = c.opset < 10
  const starts = legacy ? c.intList("starts") ?? [] : c.intsIn(1, "starts")
  const ends = legacy ? c.intList("ends") ?? [] : c.intsIn(2, "ends")
  const axes = (legacy ? c.intList("axes") : c.opt(3) && c.intsIn(3, "axes")) ?? starts.map((_, i) => i)
  const steps = (legacy ? undefined : c.opt(4) && c.intsIn(4, "steps")) ?? starts.map(() => 1)
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    c.fail("starts, ends, axes and steps differ in length")
  }
  const slices: Array<AxisSlice> = x.shape.map((d) => ({ start: 0, step: 1, count: d }))
  starts.forEach((s, i) => {
    const a = c.axis(axes[i]!, r)
    if (steps[i] === 0) c.fail("a slice step is 0")
    slices[a] = normaliseSlice(x.shape[a]!, s, ends[i]!, steps[i]!)
  })
  return [sliceValue(c, x, slices)]
}

const gather: Converter = (c) => {
  const x = c.in(0), idx = c.in(1)
  const axis = c.axis(c.int("axis", 0), x.shape.length)
  const d = x.shape[axis]!
  if (idx.tag === "const") {
    const norm = Array.from(idx.data, (i) => (i < 0 ? i + d : i))
    if (norm.some((i) => !Number.isInteger(i) || i < 0 || i >= d)) c.fail(`an index is outside [${-d}, ${d - 1}]`)
    if (x.tag === "const") return [foldGather(x, norm, idx.shape, axis)]
    const outShape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)]
    // A run of consecutive indices is a slice (cheaper on the engine than gather).
    if (norm.length > 0 && norm.every((v, k) => v === norm[0]! + k)) {
      const slices = x.shape.map((n, k) => (k === axis ? { start: norm[0]!, step: 1, count: norm.length } : { start: 0, step: 1, count: n }))
      return [reshapeValue(c, sliceValue(c, x, slices), outShape)]
    }
    const t = c.b.op("gather", { axis: c.b.scalar(axis, "int32"), indices: c.tensor(ints(norm, idx.shape)), x: x.t },
      { dtype: x.t.dtype, shape: outShape }, c.name())
    return [c.dyn(t, x.kind)]
  }
  const outShape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)]
  const t = c.b.op("gather", { axis: c.b.scalar(axis, "int32"), indices: idx.t, x: c.tensor(x) },
    { dtype: c.milDtype(x.kind), shape: outShape }, c.name())
  return [c.dyn(t, x.kind)]
}

const split: Converter = (c) => {
  const x = c.in(0)
  const axis = c.axis(c.int("axis", 0), x.shape.length)
  const d = x.shape[axis]!
  const given = c.opset >= 13 ? (c.opt(1) ? c.intsIn(1, "split") : undefined) : c.intList("split")
  const n = c.node.output.length
  let sizes: Array<number>
  if (given !== undefined) sizes = given
  else {
    const parts = c.opset >= 18 && c.has("num_outputs") ? c.int("num_outputs", n) : n
    const chunk = Math.ceil(d / parts)
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)))
  }
  if (sizes.reduce((a, b) => a + b, 0) !== d || sizes.some((s) => s < 0)) c.fail(`split sizes [${sizes.join(", ")}] do not sum to ${d}`)
  let at = 0
  return sizes.map((s) => {
    const slices = x.shape.map((n2, k) => (k === axis ? { start: at, step: 1, count: s } : { start: 0, step: 1, count: n2 }))
    at += s
    return sliceValue(c, x, slices)
  })
}

const expand: Converter = (c) => {
  const x = c.in(0)
  const target = c.intsIn(1, "shape")
  const r = Math.max(x.shape.length, target.length)
  const xs = [...new Array<number>(r - x.shape.length).fill(1), ...x.shape]
  const ts = [...new Array<number>(r - target.length).fill(1), ...target]
  const out = xs.map((d, i) => (d === 1 ? ts[i]! : d))
  if (xs.some((d, i) => d !== 1 && ts[i] !== 1 && ts[i] !== d)) c.fail(`[${x.shape.join(", ")}] does not expand to [${target.join(", ")}]`)
  if (x.tag === "const") {
    const zeros = constant(x.kind, out, new Float64Array(size(out)))
    return [foldElementwise([x, zeros], x.kind, (a) => a)!]
  }
  const shaped = reshapeValue(c, x, xs)
  const reps = out.map((d, i) => d / xs[i]!)
  if (reps.every((k) => k === 1)) return [shaped]
  return [c.dyn(c.b.tile(c.tensor(shaped), reps, c.name()), x.kind)]
}

const pad: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const raw = c.opset >= 11 ? c.intsIn(1, "pads") : c.intList("pads") ?? c.intList("paddings") ?? []
  const axes = c.opset >= 18 && c.opt(3) ? c.intsIn(3, "axes").map((a) => c.axis(a, r)) : x.shape.map((_, i) => i)
  if (raw.length !== 2 * axes.length) c.fail(`pads has ${raw.length} entries for ${axes.length} axes`)
  const before = new Array<number>(r).fill(0), after = new Array<number>(r).fill(0)
  axes.forEach((a, i) => {
    before[a] = raw[i]!
    after[a] = raw[i + axes.length]!
  })
  if ([...before, ...after].some((p) => p < 0)) c.fail("negative pads (cropping) are not supported")
  const modeName = c.str("mode", "constant")
  const mode = modeName === "edge" ? "replicate" : modeName
  if (mode !== "constant" && mode !== "reflect" && mode !== "replicate") c.fail(`pad mode "${modeName}" is not supported`)
  const cv = c.opset >= 11 ? c.opt(2) : undefined
  if (cv !== undefined && cv.tag !== "const") return c.fail("constant_value must be a constant")
  const value = cv?.data[0] ?? c.float("value", 0)
  const first = before.findIndex((p, i) => p !== 0 || after[i] !== 0)
  if (first < 0) return [x]
  const flat: Array<number> = []
  for (let i = first; i < r; i++) flat.push(before[i]!, after[i]!)
  const xt = c.tensor(x)
  const out = x.shape.map((d, i) => d + before[i]! + after[i]!)
  const t = c.b.op("pad", {
    constant_val: c.b.scalar(value, xt.dtype),
    mode: c.b.scalar(mode, "string"),
    pad: c.b.ints(flat),
    x: xt
  }, { dtype: xt.dtype, shape: out }, c.name())
  return [c.dyn(t, x.kind)]
}

const constantOp: Converter = (c) => {
  const t = c.tensorAttr("value")
  if (t !== undefined) return [t]
  if (c.has("value_float")) return [constant("float", [], [c.float("value_float", 0)])]
  if (c.has("value_floats")) { const f = c.floatList("value_floats")!; return [constant("float", [f.length], f)] }
  if (c.has("value_int")) return [constant("int", [], [c.int("value_int", 0)])]
  if (c.has("value_ints")) { const v = c.intList("value_ints")!; return [constant("int", [v.length], v)] }
  return c.fail("only value, value_float(s) and value_int(s) constants are supported")
}

const MAX_FOLD = 1 << 26

const constantOfShape: Converter = (c) => {
  const shape = c.intsIn(0, "shape")
  if (shape.some((d) => !Number.isInteger(d) || d < 0) || size(shape) > MAX_FOLD) c.fail(`bad shape [${shape.join(", ")}]`)
  const v = c.tensorAttr("value") ?? constant("float", [1], [0])
  const out = constant(v.kind, shape, new Float64Array(size(shape)))
  out.data.fill(v.data[0] ?? 0)
  return [out]
}

const range: Converter = (c) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => c.constIn(i, ["start", "limit", "delta"][i]!))
  const s = start!.data[0]!, l = limit!.data[0]!, d = delta!.data[0]!
  const n = Math.max(Math.ceil((l - s) / d), 0)
  if (!Number.isFinite(n) || n > MAX_FOLD) c.fail(`Range(${s}, ${l}, ${d}) is not a finite, reasonable length`)
  return [constant(start!.kind, [n], Array.from({ length: n }, (_, i) => s + i * d))]
}

const shapeOp: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + r : a, 0), r)
  const start = clampAxis(c.int("start", 0)), end = clampAxis(c.int("end", r))
  return [ints(x.shape.slice(start, Math.max(start, end)))]
}

const flatten: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const a = c.int("axis", 1)
  const axis = a < 0 ? a + r : a
  if (axis < 0 || axis > r) c.fail(`axis ${a} is out of range for rank ${r}`)
  return [reshapeValue(c, x, [size(x.shape.slice(0, axis)), size(x.shape.slice(axis))])]
}

const tile: Converter = (c) => {
  const x = c.in(0)
  const reps = c.intsIn(1, "repeats")
  if (reps.length !== x.shape.length || reps.some((k) => !Number.isInteger(k) || k < 1)) c.fail(`bad repeats [${reps.join(", ")}]`)
  if (x.tag === "const") {
    let v: Const = x
    for (let a = 0; a < reps.length; a++) v = foldConcat(new Array<Const>(reps[a]!).fill(v), a)
    return [v]
  }
  return [c.dyn(c.b.tile(x.t, reps, c.name()), x.kind)]
}

/** Shape converters by ONNX op type. */
export const shapeOps: Readonly<Record<string, Converter>> = {
  Reshape: (c) => {
    const x = c.in(0)
    return [reshapeValue(c, x, targetShape(c, x.shape, c.intsIn(1, "shape"), c.int("allowzero", 0) === 1))]
  },
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Flatten: flatten,
  Transpose: (c) => {
    const x = c.in(0)
    const perm = c.intList("perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i)
    if (perm.length !== x.shape.length || new Set(perm).size !== perm.length || perm.some((p) => p < 0 || p >= perm.length)) {
      c.fail(`perm [${perm.join(", ")}] is not a permutation of rank ${x.shape.length}`)
    }
    return [transpose(c, x, perm)]
  },
  Concat: (c) => {
    const xs = c.inputs.filter((v): v is Value => v !== undefined)
    if (xs.length === 0) c.fail("no inputs")
    return [concat(c, xs, c.axis(c.int("axis", 0), xs[0]!.shape.length))]
  },
  Split: split,
  Slice: slice,
  Gather: gather,
  Expand: expand,
  Tile: tile,
  Pad: pad,
  Constant: constantOp,
  ConstantOfShape: constantOfShape,
  Range: range,
  Shape: shapeOp,
  Size: (c) => [ints([size(c.in(0).shape)], [])]
}

/** Reshape of a value (exported for the nn converters). */
export { reshapeValue, transpose as transposeValue }
export type { Tensor }
