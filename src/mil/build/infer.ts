/**
 * Output shapes of the ops the builder offers, so it can declare each result's type in the text. A shape this
 * cannot produce is reported as a problem string; the checker remains the authority on the finished program.
 */

/** A fully known tensor type. */
export interface Shaped {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
}

/** The inferred output, or why there is none. */
export type Inferred = Shaped | { readonly problem: string }

const fmt = (s: ReadonlyArray<number>) => `[${s.join(", ")}]`

/** numpy broadcasting of two shapes. */
export const broadcast = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): ReadonlyArray<number> | string => {
  const n = Math.max(a.length, b.length)
  const out: Array<number> = []
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1
    const y = b[b.length - n + i] ?? 1
    if (x !== y && x !== 1 && y !== 1) return `shapes ${fmt(a)} and ${fmt(b)} do not broadcast (axis ${i}: ${x} vs ${y})`
    out.push(x === 1 ? y : x)
  }
  return out
}

/** Elementwise binary op: same dtype, broadcast shapes. */
export const binary = (x: Shaped, y: Shaped): Inferred => {
  if (x.dtype !== y.dtype) return { problem: `x is ${x.dtype} but y is ${y.dtype}; insert a cast` }
  const s = broadcast(x.shape, y.shape)
  return typeof s === "string" ? { problem: s } : { dtype: x.dtype, shape: s }
}

const normAxis = (axis: number, rank: number): number | null =>
  Number.isInteger(axis) && axis >= -rank && axis < rank ? (axis < 0 ? axis + rank : axis) : null

/** reduce_* over `axes`. */
export const reduce = (x: Shaped, axes: ReadonlyArray<number>, keepDims: boolean): Inferred => {
  const norm = axes.map((a) => normAxis(a, x.shape.length))
  if (norm.some((a) => a === null)) return { problem: `axes ${fmt(axes)} out of range for rank ${x.shape.length}` }
  const set = new Set(norm as Array<number>)
  const shape = keepDims ? x.shape.map((d, i) => (set.has(i) ? 1 : d)) : x.shape.filter((_, i) => !set.has(i))
  return { dtype: x.dtype, shape }
}

/** conv with 1–3 spatial dims. */
export const conv = (
  x: Shaped,
  w: Shaped,
  o: {
    readonly strides: ReadonlyArray<number>
    readonly dilations: ReadonlyArray<number>
    readonly pad: ReadonlyArray<number>
    readonly padType: string
    readonly groups: number
  }
): Inferred => {
  const rank = x.shape.length
  const sp = rank - 2
  if (sp < 1 || sp > 3) return { problem: `x must have rank 3..5, found ${fmt(x.shape)}` }
  if (w.shape.length !== rank) return { problem: `weight rank ${w.shape.length} differs from x rank ${rank}` }
  const cin = x.shape[1]!
  if (cin % o.groups !== 0 || w.shape[1] !== cin / o.groups) {
    return { problem: `weight ${fmt(w.shape)} expects ${w.shape[1]! * o.groups} input channels, x has ${cin}` }
  }
  const out: Array<number> = [x.shape[0]!, w.shape[0]!]
  for (let i = 0; i < sp; i++) {
    const d = x.shape[2 + i]!
    const k = w.shape[2 + i]!
    const s = o.strides[i] ?? 1
    const dil = o.dilations[i] ?? 1
    const keff = (k - 1) * dil + 1
    let size: number
    if (o.padType === "same" || o.padType === "same_lower") size = Math.ceil(d / s)
    else {
      const pads = o.padType === "custom" ? (o.pad[2 * i] ?? 0) + (o.pad[2 * i + 1] ?? 0) : 0
      size = Math.floor((d + pads - keff) / s) + 1
    }
    if (size <= 0) return { problem: `spatial dim ${i} has invalid output size ${size}` }
    out.push(size)
  }
  return { dtype: x.dtype, shape: out }
}

/** matmul with optional transposes and batch broadcasting (rank ≥ 2 operands). */
export const matmul = (x: Shaped, y: Shaped, tx: boolean, ty: boolean): Inferred => {
  if (x.dtype !== y.dtype) return { problem: `x is ${x.dtype} but y is ${y.dtype}` }
  if (x.shape.length < 2 || y.shape.length < 2) return { problem: "matmul operands must have rank ≥ 2 here" }
  const xs = [...x.shape]
  const ys = [...y.shape]
  if (tx) xs.push(...xs.splice(-2).reverse())
  if (ty) ys.push(...ys.splice(-2).reverse())
  const [m, k1] = xs.slice(-2) as [number, number]
  const [k2, n] = ys.slice(-2) as [number, number]
  if (k1 !== k2) return { problem: `inner dims differ: ${fmt(xs)} × ${fmt(ys)}` }
  const b = broadcast(xs.slice(0, -2), ys.slice(0, -2))
  if (typeof b === "string") return { problem: `batch dims: ${b}` }
  return { dtype: x.dtype, shape: [...b, m, n] }
}

/** reshape with at most one -1. */
export const reshape = (x: Shaped, shape: ReadonlyArray<number>): Inferred => {
  const total = x.shape.reduce((a, b) => a * b, 1)
  const known = shape.map((d, i) => (d === 0 ? x.shape[i] ?? 1 : d))
  const free = known.filter((d) => d === -1).length
  if (free > 1) return { problem: "reshape allows only one -1" }
  const prod = known.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
  const out = known.map((d) => (d === -1 ? total / prod : d))
  if (out.some((d) => !Number.isInteger(d) || d < 0) || out.reduce((a, b) => a * b, 1) !== total) {
    return { problem: `cannot reshape ${fmt(x.shape)} (${total} elements) to ${fmt(shape)}` }
  }
  return { dtype: x.dtype, shape: out }
}

/** transpose by `perm`. */
export const transpose = (x: Shaped, perm: ReadonlyArray<number>): Inferred => {
  const r = x.shape.length
  const norm = perm.map((p) => normAxis(p, r))
  if (perm.length !== r || norm.some((p) => p === null) || new Set(norm).size !== r) {
    return { problem: `perm ${fmt(perm)} is not a permutation of rank ${r}` }
  }
  return { dtype: x.dtype, shape: (norm as Array<number>).map((p) => x.shape[p]!) }
}

/** slice_by_size (size −1 = to the end). */
export const sliceBySize = (x: Shaped, begin: ReadonlyArray<number>, size: ReadonlyArray<number>): Inferred => {
  const r = x.shape.length
  if (begin.length !== r || size.length !== r) return { problem: `begin/size must have ${r} entries` }
  const out: Array<number> = []
  for (let i = 0; i < r; i++) {
    const d = x.shape[i]!
    const b = begin[i]! < 0 ? begin[i]! + d : begin[i]!
    const s = size[i] === -1 ? d - b : size[i]!
    if (b < 0 || s < 0 || b + s > d) return { problem: `slice [${b}, ${b + s}) is outside axis ${i} of size ${d}` }
    out.push(s)
  }
  return { dtype: x.dtype, shape: out }
}

/** concat along `axis` (interleave requires equal shapes; the result is the same). */
export const concat = (values: ReadonlyArray<Shaped>, axis: number): Inferred => {
  if (values.length === 0) return { problem: "concat needs at least one value" }
  const first = values[0]!
  const r = first.shape.length
  const a = normAxis(axis, r)
  if (a === null) return { problem: `axis ${axis} out of range for rank ${r}` }
  let total = 0
  for (const v of values) {
    if (v.dtype !== first.dtype) return { problem: `values mix ${first.dtype} and ${v.dtype}` }
    if (v.shape.length !== r || v.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      return { problem: `shapes ${fmt(first.shape)} and ${fmt(v.shape)} differ off axis ${a}` }
    }
    total += v.shape[a]!
  }
  return { dtype: first.dtype, shape: first.shape.map((d, i) => (i === a ? total : d)) }
}

/** tile by `reps`. */
export const tile = (x: Shaped, reps: ReadonlyArray<number>): Inferred =>
  reps.length !== x.shape.length || reps.some((r) => !Number.isInteger(r) || r <= 0)
    ? { problem: `reps ${fmt(reps)} must be ${x.shape.length} positive integers` }
    : { dtype: x.dtype, shape: x.shape.map((d, i) => d * reps[i]!) }

/** scaled_dot_product_attention: q [..., L, E], k [..., S, E], v [..., S, EV] → [..., L, EV]. */
export const sdpa = (q: Shaped, k: Shaped, v: Shaped): Inferred => {
  const r = q.shape.length
  if (r < 3 || k.shape.length !== r || v.shape.length !== r) return { problem: "query, key and value need the same rank ≥ 3" }
  if (q.shape.slice(0, -2).some((d, i) => d !== k.shape[i] || d !== v.shape[i])) {
    return { problem: "query, key and value need identical batch dims" }
  }
  if (q.shape[r - 1] !== k.shape[r - 1]) return { problem: "query and key embedding sizes differ" }
  if (k.shape[r - 2] !== v.shape[r - 2]) return { problem: "key and value sequence lengths differ" }
  return { dtype: q.dtype, shape: [...q.shape.slice(0, -1), v.shape[r - 1]!] }
}
