/** Resolved MIL value types, compile-time values and the shape arithmetic every op rule shares. */
import type { Dim, Literal, TypeExpr, Value } from "../ast.js"

/** A tensor dimension after resolution: a known size, or `null` when unknown (`?` or a symbol). */
export type ResolvedDim = number | null

/**
 * A resolved type. Scalars are rank-0 tensors (`int32` ≡ `tensor<int32, []>`), strings and bools are the dtypes
 * `string` / `bool`; `shape: null` means the rank itself is unknown.
 */
export type ValueType =
  | { readonly kind: "tensor"; readonly dtype: string; readonly shape: ReadonlyArray<ResolvedDim> | null }
  | { readonly kind: "list"; readonly elem: ValueType; readonly length: ResolvedDim }
  | { readonly kind: "tuple"; readonly elems: ReadonlyArray<ValueType> }
  | { readonly kind: "dict"; readonly key: ValueType; readonly value: ValueType }
  | { readonly kind: "state"; readonly inner: ValueType }

/** A tensor type (the common case). */
export type TensorType = Extract<ValueType, { kind: "tensor" }>

/** The decoded value of a `const` op: the literal data inline, or where it lives in a weight file. */
export type ConstValue =
  | {
    readonly kind: "inline"
    readonly dtype: string
    readonly shape: ReadonlyArray<number>
    /** Row-major elements: numbers for numeric dtypes, booleans for bool, strings for string. */
    readonly data: ReadonlyArray<number | boolean | string>
  }
  | {
    /** One value written for a whole tensor (`tensor<fp16, [1, 64]>(0x1p0)`): kept as the value, never expanded. */
    readonly kind: "splat"
    readonly dtype: string
    readonly shape: ReadonlyArray<number>
    readonly value: number | boolean | string
  }
  | {
    readonly kind: "blob"
    readonly dtype: string
    readonly shape: ReadonlyArray<number>
    readonly path: string
    /** Byte offset of the blob's metadata record in the weight file. */
    readonly offset: bigint
  }

/** Builds a tensor type. */
export const tensor = (dtype: string, shape: ReadonlyArray<ResolvedDim> | null): TensorType => ({
  kind: "tensor",
  dtype,
  shape
})

/** Builds a rank-0 (scalar) type. */
export const scalar = (dtype: string): TensorType => tensor(dtype, [])

/** True for rank-0 tensors. */
export const isScalar = (t: ValueType): boolean => t.kind === "tensor" && t.shape !== null && t.shape.length === 0

/** Float dtypes the compute ops accept. */
export const floatDtypes: ReadonlySet<string> = new Set(["fp16", "fp32"])

/** Integer dtypes, including the sub-byte storage types. */
export const intDtypes: ReadonlySet<string> = new Set([
  "int4", "int8", "int16", "int32", "int64", "uint1", "uint2", "uint3", "uint4", "uint6", "uint8", "uint16", "uint32",
  "uint64"
])

/** Bits per element of a dtype (string → 0). */
export const dtypeBits = (dtype: string): number => {
  switch (dtype) {
    case "bool":
    case "uint1":
      return dtype === "bool" ? 8 : 1
    case "uint2":
      return 2
    case "uint3":
      return 3
    case "int4":
    case "uint4":
      return 4
    case "uint6":
      return 6
    case "int8":
    case "uint8":
    case "fp8e4m3fn":
    case "fp8e5m2":
      return 8
    case "fp16":
    case "bf16":
    case "int16":
    case "uint16":
      return 16
    case "fp32":
    case "int32":
    case "uint32":
      return 32
    case "fp64":
    case "int64":
    case "uint64":
      return 64
    default:
      return 0
  }
}

/** Resolves a written dimension. */
export const resolveDim = (d: Dim): ResolvedDim => (typeof d === "number" ? d : null)

/** Resolves a written type expression. */
export const resolveType = (t: TypeExpr): ValueType => {
  switch (t.kind) {
    case "tensor":
      return tensor(t.dtype, t.shape === null ? null : t.shape.map(resolveDim))
    case "scalar":
      return scalar(t.dtype)
    case "list":
      return { kind: "list", elem: resolveType(t.elem), length: t.length === null ? null : resolveDim(t.length) }
    case "tuple":
      return { kind: "tuple", elems: t.elems.map(resolveType) }
    case "dict":
      return { kind: "dict", key: resolveType(t.key), value: resolveType(t.value) }
    case "state":
      return { kind: "state", inner: resolveType(t.inner) }
  }
}

/** `[1, ?, 4]` */
export const formatShape = (shape: ReadonlyArray<ResolvedDim> | null): string =>
  shape === null ? "[*]" : `[${shape.map((d) => (d === null ? "?" : String(d))).join(", ")}]`

/** MIL-like text of a type: `tensor<fp16, [1, 4]>`, `int32`, `tuple<…>`. */
export const formatType = (t: ValueType): string => {
  switch (t.kind) {
    case "tensor":
      return t.shape !== null && t.shape.length === 0 ? t.dtype : `tensor<${t.dtype}, ${formatShape(t.shape)}>`
    case "list":
      return `list<${formatType(t.elem)}, ${t.length === null ? "?" : t.length}>`
    case "tuple":
      return `tuple<${t.elems.map(formatType).join(", ")}>`
    case "dict":
      return `dict<${formatType(t.key)}, ${formatType(t.value)}>`
    case "state":
      return `state<${formatType(t.inner)}>`
  }
}

/** Product of the dims, or null when any is unknown or the product is not an exact (safe) integer. */
export const numel = (shape: ReadonlyArray<ResolvedDim> | null): number | null => {
  if (shape === null) return null
  let n = 1
  for (const d of shape) {
    if (d === null) return null
    n *= d
  }
  return Number.isSafeInteger(n) ? n : null
}

/** Exact product of known dims in BigInt (for limits: no rounding however large); null when any is unknown. */
export const elementCount = (shape: ReadonlyArray<ResolvedDim> | null): bigint | null => {
  if (shape === null) return null
  let n = 1n
  for (const d of shape) {
    if (d === null || !Number.isSafeInteger(d)) return null
    n *= BigInt(d)
  }
  return n
}

/** Normalises an axis against a rank; null when out of range. */
export const normAxis = (axis: number, rank: number): number | null => {
  const a = axis < 0 ? axis + rank : axis
  return a >= 0 && a < rank ? a : null
}

/** Result of a numpy broadcast: the shape, or the first axis (from the left of the result) that conflicts. */
export type BroadcastResult =
  | { readonly ok: true; readonly shape: ReadonlyArray<ResolvedDim> | null }
  | { readonly ok: false; readonly axis: number; readonly a: number; readonly b: number }

/** numpy broadcasting; unknown dims broadcast with anything (a known size > 1 wins). */
export const broadcast = (
  a: ReadonlyArray<ResolvedDim> | null,
  b: ReadonlyArray<ResolvedDim> | null
): BroadcastResult => {
  if (a === null || b === null) return { ok: true, shape: null }
  const rank = Math.max(a.length, b.length)
  const out: Array<ResolvedDim> = []
  for (let i = 0; i < rank; i++) {
    const da = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)] : 1
    const db = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)] : 1
    if (da === 1) out.push(db)
    else if (db === 1) out.push(da)
    else if (da === null) out.push(db)
    else if (db === null) out.push(da)
    else if (da === db) out.push(da)
    else return { ok: false, axis: i, a: da, b: db }
  }
  return { ok: true, shape: out }
}

/** Whether two types agree where both are known (unknown dims and ranks match anything). */
export const typesCompatible = (declared: ValueType, inferred: ValueType): boolean => {
  if (declared.kind !== inferred.kind) return false
  switch (declared.kind) {
    case "tensor": {
      const i = inferred as TensorType
      if (declared.dtype !== i.dtype) return false
      if (declared.shape === null || i.shape === null) return true
      if (declared.shape.length !== i.shape.length) return false
      return declared.shape.every((d, k) => d === null || i.shape![k] === null || d === i.shape![k])
    }
    case "list": {
      const i = inferred as Extract<ValueType, { kind: "list" }>
      return typesCompatible(declared.elem, i.elem)
    }
    case "tuple": {
      const i = inferred as Extract<ValueType, { kind: "tuple" }>
      return declared.elems.length === i.elems.length && declared.elems.every((e, k) => typesCompatible(e, i.elems[k]))
    }
    case "dict": {
      const i = inferred as Extract<ValueType, { kind: "dict" }>
      return typesCompatible(declared.key, i.key) && typesCompatible(declared.value, i.value)
    }
    case "state": {
      const i = inferred as Extract<ValueType, { kind: "state" }>
      return typesCompatible(declared.inner, i.inner)
    }
  }
}

/** Merges a declared type with an inferred one: declared wins, inferred fills unknown dims. */
export const refine = (declared: ValueType, inferred: ValueType): ValueType => {
  if (declared.kind !== "tensor" || inferred.kind !== "tensor") return declared
  if (declared.shape === null) return inferred.shape === null ? declared : tensor(declared.dtype, inferred.shape)
  if (inferred.shape === null || inferred.shape.length !== declared.shape.length) return declared
  return tensor(declared.dtype, declared.shape.map((d, k) => (d === null ? inferred.shape![k] : d)))
}

/**
 * A compile-time value known to the checker; `null` elements are unknown (partially folded values). A splat has
 * `data: null` and its one value in `splat`, so a large splat costs one number, not one per element.
 */
export interface KnownValue {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly data: ReadonlyArray<number | boolean | string | null> | null
  readonly splat?: number | boolean | string
}

/** Largest splat {@link knownData} expands for the op rules (shape vectors, axes, pads: a few entries at most). */
export const MAX_EXPANDED_SPLAT = 64

/** The elements of a known value for an op rule: a splat expanded only when small; null when not available. */
export const knownData = (k: KnownValue): ReadonlyArray<number | boolean | string | null> | null => {
  if (k.data !== null) return k.data
  if (k.splat === undefined) return null
  const n = numel(k.shape)
  return n !== null && n <= MAX_EXPANDED_SPLAT ? new Array<number | boolean | string>(n).fill(k.splat) : null
}

const flattenLiteral = (l: Literal, out: Array<number | boolean | string>): void => {
  switch (l.kind) {
    case "number":
      out.push(l.value)
      return
    case "string":
    case "bool":
      out.push(l.value)
      return
    case "list":
      for (const item of l.items) flattenLiteral(item, out)
      return
    case "dict":
      return
  }
}

/** Decodes an inline or BLOBFILE value into a ConstValue (dicts and tuples are not constants here). */
export const decodeConst = (v: Value): ConstValue | null => {
  if (v.kind === "blob") {
    const t = resolveType(v.type)
    if (t.kind !== "tensor" || t.shape === null || t.shape.some((d) => d === null)) return null
    return { kind: "blob", dtype: t.dtype, shape: t.shape as ReadonlyArray<number>, path: v.path, offset: v.offset }
  }
  if (v.kind !== "typed") return null
  const t = resolveType(v.type)
  if (t.kind !== "tensor" || t.shape === null || t.shape.some((d) => d === null)) return null
  const data: Array<number | boolean | string> = []
  flattenLiteral(v.literal, data)
  const shape = t.shape as ReadonlyArray<number>
  // A one-element literal (`tensor<int32, [4]>(-1)`) fills the tensor: kept as a splat, never expanded here.
  const n = numel(shape)
  if (data.length === 1 && (n === null || n > 1)) return { kind: "splat", dtype: t.dtype, shape, value: data[0]! }
  return { kind: "inline", dtype: t.dtype, shape, data }
}

/** The KnownValue of a ConstValue (blob contents are not read). */
export const knownOfConst = (c: ConstValue): KnownValue => {
  switch (c.kind) {
    case "inline": return { dtype: c.dtype, shape: c.shape, data: c.data }
    case "splat": return { dtype: c.dtype, shape: c.shape, data: null, splat: c.value }
    case "blob": return { dtype: c.dtype, shape: c.shape, data: null }
  }
}
