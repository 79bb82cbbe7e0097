/**
 * Values flowing through an ONNX graph during import: constants (folded on the CPU, never emitted until an op
 * needs them as a MIL tensor) and program tensors. The reference kernels here fold constant subgraphs.
 */
import type { Tensor } from "../mil/build.js"

/** The element kinds the importer distinguishes: every float type computes in the program's float dtype. */
export type Kind = "float" | "int" | "bool"

/** A value known at import time. */
export interface Const {
  readonly tag: "const"
  readonly kind: Kind
  readonly shape: ReadonlyArray<number>
  /** Row-major; Float32Array for floats, Float64Array for ints and bools. */
  readonly data: Float32Array | Float64Array
}

/** A value computed by the program. */
export interface Dyn {
  readonly tag: "dyn"
  readonly kind: Kind
  readonly shape: ReadonlyArray<number>
  readonly t: Tensor
  /** Set on x² (Pow 2): the x it squares, for the fp16-safe magnitude rewrite. */
  readonly squareOf?: Tensor
  /** Set on a² + b²: the a and b, for the fp16-safe magnitude rewrite. */
  readonly sumOfSquares?: readonly [Tensor, Tensor]
}

/** Either. */
export type Value = Const | Dyn

/** Element count of a shape. */
export const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** A constant of `kind` (data converted to the kind's array type). */
export const constant = (kind: Kind, shape: ReadonlyArray<number>, data: ArrayLike<number>): Const => ({
  tag: "const",
  kind,
  shape: [...shape],
  data: kind === "float" ? Float32Array.from(data) : Float64Array.from(data)
})

/** A scalar-or-vector integer constant. */
export const ints = (values: ReadonlyArray<number>, shape: ReadonlyArray<number> = [values.length]): Const =>
  constant("int", shape, values)

/** Row-major strides. */
export const strides = (shape: ReadonlyArray<number>): Array<number> => {
  const s = new Array<number>(shape.length).fill(1)
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!
  return s
}

/** numpy broadcast of two shapes, or undefined when they do not broadcast. */
export const broadcastShapes = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Array<number> | undefined => {
  const r = Math.max(a.length, b.length)
  const out: Array<number> = []
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1
    const y = b[b.length - r + i] ?? 1
    if (x !== y && x !== 1 && y !== 1) return undefined
    out.push(x === 1 ? y : x)
  }
  return out
}

/** Index map from an output position of `out` to a flat index of an input of shape `s` broadcast to it. */
const broadcastIndex = (s: ReadonlyArray<number>, out: ReadonlyArray<number>): ((i: number) => number) => {
  const r = out.length
  const os = strides(out)
  const is = strides(s)
  const off = r - s.length
  if (s.length === r && s.every((d, i) => d === out[i])) return (i) => i
  return (i) => {
    let idx = 0
    let rem = i
    for (let k = 0; k < r; k++) {
      const c = Math.floor(rem / os[k]!)
      rem -= c * os[k]!
      const d = k - off
      if (d >= 0 && s[d] !== 1) idx += c * is[d]!
    }
    return idx
  }
}

/** Elementwise n-ary fold with numpy broadcasting; undefined when the shapes do not broadcast. */
export const foldElementwise = (
  inputs: ReadonlyArray<Const>, kind: Kind, f: (...v: Array<number>) => number
): Const | undefined => {
  let shape: Array<number> | undefined = [...inputs[0]!.shape]
  for (const x of inputs.slice(1)) shape = shape && broadcastShapes(shape, x.shape)
  if (shape === undefined) return undefined
  const n = size(shape)
  const maps = inputs.map((x) => broadcastIndex(x.shape, shape))
  const out = kind === "float" ? new Float32Array(n) : new Float64Array(n)
  const args = new Array<number>(inputs.length)
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < inputs.length; k++) args[k] = inputs[k]!.data[maps[k]!(i)]!
    out[i] = f(...args)
  }
  return { tag: "const", kind, shape, data: out }
}

/** Permutes dims. */
export const foldTranspose = (x: Const, perm: ReadonlyArray<number>): Const => {
  const shape = perm.map((p) => x.shape[p]!)
  if (perm.length === 2 && perm[0] === 1) {
    // Weight matrices (MatMul → linear): a plain double loop, no index arithmetic per element.
    const [R, C] = x.shape as [number, number]
    const out = x.kind === "float" ? new Float32Array(R * C) : new Float64Array(R * C)
    const d = x.data
    // Blocked, so reads and writes both stay in cache.
    for (let r0 = 0; r0 < R; r0 += 32) {
      for (let c0 = 0; c0 < C; c0 += 32) {
        const r1 = Math.min(r0 + 32, R), c1 = Math.min(c0 + 32, C)
        for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * R + r] = d[r * C + c]!
      }
    }
    return { tag: "const", kind: x.kind, shape, data: out }
  }
  const is = strides(x.shape)
  return remap(x, shape, (k, c) => c * is[perm[k]!]!)
}

/** A constant of `shape` whose element at coordinates (c₀, c₁, …) is x's at offset Σ `offset(k, cₖ)`. */
const remap = (x: Const, shape: ReadonlyArray<number>, offset: (k: number, c: number) => number): Const => {
  const n = size(shape)
  const out = x.kind === "float" ? new Float32Array(n) : new Float64Array(n)
  const os = strides(shape)
  for (let i = 0; i < n; i++) {
    let rem = i
    let src = 0
    for (let k = 0; k < shape.length; k++) {
      const c = Math.floor(rem / os[k]!)
      rem -= c * os[k]!
      src += offset(k, c)
    }
    out[i] = x.data[src]!
  }
  return { tag: "const", kind: x.kind, shape, data: out }
}

/** Per-axis normalised slice: start, step and count. */
export interface AxisSlice {
  readonly start: number
  readonly step: number
  readonly count: number
}

/** ONNX Slice semantics for one axis of length `d` (clamping, negative indices and steps). */
export const normaliseSlice = (d: number, start: number, end: number, step: number): AxisSlice => {
  let s = start < 0 ? start + d : start
  let e = end < 0 ? end + d : end
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d)
    e = Math.min(Math.max(e, 0), d)
    return { start: s, step, count: Math.max(0, Math.ceil((e - s) / step)) }
  }
  s = Math.min(Math.max(s, -1), d - 1)
  e = Math.min(Math.max(e, -1), d - 1)
  return { start: s, step, count: Math.max(0, Math.ceil((e - s) / step)) }
}

/** Gathers along each axis with the given slices. */
export const foldSlice = (x: Const, slices: ReadonlyArray<AxisSlice>): Const => {
  const is = strides(x.shape)
  return remap(x, slices.map((s) => s.count), (k, c) => (slices[k]!.start + c * slices[k]!.step) * is[k]!)
}

/** Concatenation along `axis` (normalised). */
export const foldConcat = (xs: ReadonlyArray<Const>, axis: number): Const => {
  const first = xs[0]!
  const shape = [...first.shape]
  shape[axis] = xs.reduce((a, x) => a + x.shape[axis]!, 0)
  const outer = size(shape.slice(0, axis))
  const kind = xs.some((x) => x.kind === "float") ? "float" : first.kind
  const out = kind === "float" ? new Float32Array(size(shape)) : new Float64Array(size(shape))
  let at = 0
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const chunk = size(x.shape.slice(axis))
      out.set(x.data.subarray(o * chunk, (o + 1) * chunk), at)
      at += chunk
    }
  }
  return { tag: "const", kind, shape, data: out }
}

/** ONNX Gather along `axis` with (normalised, in-range) integer indices of shape `ishape`. */
export const foldGather = (x: Const, indices: ArrayLike<number>, ishape: ReadonlyArray<number>, axis: number): Const => {
  const shape = [...x.shape.slice(0, axis), ...ishape, ...x.shape.slice(axis + 1)]
  const outer = size(x.shape.slice(0, axis))
  const inner = size(x.shape.slice(axis + 1))
  const d = x.shape[axis]!
  const out = x.kind === "float" ? new Float32Array(size(shape)) : new Float64Array(size(shape))
  let at = 0
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indices.length; j++) {
      const base = (o * d + indices[j]!) * inner
      out.set(x.data.subarray(base, base + inner), at)
      at += inner
    }
  }
  return { tag: "const", kind: x.kind, shape, data: out }
}
