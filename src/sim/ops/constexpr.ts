/** Weight decompression (constexpr_*) and activation quantization ops (mil-format-errata.md §4.5–§4.7). */
import type { OpImpl, Val } from "./types.js"
import { OpError } from "./types.js"
import { expectShape, normAxis, sizeOf } from "./util.js"
import { type AxisSplit, dequantize as kDequantize, quantize as kQuantize } from "../kernels/index.js"

/** Per-element parameter lookup: scalar, or a vector along `axis` of `shape`. */
const alongAxis = (p: Val | undefined, shape: ReadonlyArray<number>, axis: number | undefined, dflt: number) => {
  if (p === undefined) return () => dflt
  const n = sizeOf(p.shape)
  if (n === 1) {
    const v = p.data[0]!
    return () => v
  }
  if (axis === undefined) throw new OpError(`a vector ${p.name} needs an axis`)
  if (n !== shape[axis]) throw new OpError(`${p.name} has ${n} entries, axis ${axis} has ${shape[axis]}`)
  const inner = sizeOf(shape.slice(axis + 1))
  const d = p.data
  return (i: number) => d[Math.floor(i / inner) % n]!
}

const affineDequantize: OpImpl = (ctx) => {
  const q = ctx.val("quantized_data")
  const axis = normAxis(ctx.num("axis", 0), q.shape.length)
  const scale = alongAxis(ctx.val("scale"), q.shape, axis, 1)
  const zp = alongAxis(ctx.opt("zero_point"), q.shape, axis, 0)
  const out = ctx.alloc(0)
  expectShape("constexpr_affine_dequantize", out.shape, q.shape)
  return () => {
    const a = q.data, o = out.data
    for (let i = 0; i < o.length; i++) o[i] = scale(i) * (a[i]! - zp(i))
  }
}

/** Unpacks LSB-first `bits`-wide unsigned fields from bytes held as float values. */
const unpack = (bytes: Float32Array, bits: number, count: number): Uint32Array => {
  const out = new Uint32Array(count)
  const mask = (1 << bits) - 1
  for (let i = 0; i < count; i++) {
    const bit = i * bits
    const byte = bit >>> 3
    const word = (bytes[byte] ?? 0) | ((bytes[byte + 1] ?? 0) << 8)
    out[i] = (word >>> (bit & 7)) & mask
  }
  return out
}

const lutToDense: OpImpl = (ctx) => {
  const indices = ctx.val("indices")
  const lut = ctx.val("lut")
  const out = ctx.alloc(0)
  if (ctx.has("shape")) {
    // iOS16: packed uint8 indices, rank-1 lut, explicit shape.
    const shape = ctx.ints("shape")
    expectShape("constexpr_lut_to_dense", out.shape, shape)
    const L = sizeOf(lut.shape)
    const bits = Math.log2(L)
    if (!Number.isInteger(bits)) throw new OpError(`constexpr_lut_to_dense: lut size ${L} is not a power of two`)
    const n = sizeOf(shape)
    if (sizeOf(indices.shape) !== Math.ceil((n * bits) / 8)) {
      throw new OpError(`constexpr_lut_to_dense: ${sizeOf(indices.shape)} index bytes, expected ${Math.ceil((n * bits) / 8)}`)
    }
    return () => {
      const idx = unpack(indices.data, bits, n)
      for (let i = 0; i < n; i++) out.data[i] = lut.data[idx[i]!]!
    }
  }
  // iOS18: one index per element, per-group palettes lut [G_0…G_{K-1}, 2^nbits, V].
  const K = indices.shape.length
  const V = lut.shape[lut.shape.length - 1]!
  const P = lut.shape[lut.shape.length - 2]!
  const groups = lut.shape.slice(0, K)
  const vectorAxis = V > 1 ? normAxis(ctx.num("vector_axis"), K) : -1
  const outShape = indices.shape.map((d, i) => (i === vectorAxis ? d * V : d))
  expectShape("constexpr_lut_to_dense", out.shape, outShape)
  const blocks = indices.shape.map((d, i) => d / groups[i]!)
  return () => {
    const id = indices.data, o = out.data
    const idx = new Array<number>(K).fill(0)
    const n = sizeOf(indices.shape)
    const outStrides = outShape.map((_, i) => sizeOf(outShape.slice(i + 1)))
    for (let f = 0; f < n; f++) {
      let g = 0
      for (let i = 0; i < K; i++) g = g * groups[i]! + Math.floor(idx[i]! / blocks[i]!)
      const base = (g * P + id[f]!) * V
      for (let v = 0; v < V; v++) {
        let off = 0
        for (let i = 0; i < K; i++) off += (i === vectorAxis ? idx[i]! * V + v : idx[i]!) * outStrides[i]!
        o[off] = lut.data[base + v]!
      }
      for (let d = K - 1; d >= 0; d--) {
        idx[d]!++
        if (idx[d]! < indices.shape[d]!) break
        idx[d] = 0
      }
    }
  }
}

const sparseToDense: OpImpl = (ctx) => {
  const nz = ctx.val("nonzero_data")
  const mask = ctx.val("mask")
  const out = ctx.alloc(0)
  const n = out.data.length
  const bits = ctx.has("shape")
    ? (expectShape("constexpr_sparse_to_dense", out.shape, ctx.ints("shape")), null)
    : (expectShape("constexpr_sparse_to_dense", out.shape, mask.shape), mask.data)
  return () => {
    const m = bits ?? unpack(mask.data, 1, n)
    let j = 0
    for (let i = 0; i < n; i++) {
      if (m[i]) {
        if (j >= nz.data.length) throw new OpError("constexpr_sparse_to_dense: mask has more ones than nonzero_data values")
        out.data[i] = nz.data[j++]!
      } else out.data[i] = 0
    }
    if (j !== nz.data.length) throw new OpError(`constexpr_sparse_to_dense: ${nz.data.length} values but ${j} mask bits set`)
  }
}

const blockwiseShiftScale: OpImpl = (ctx) => {
  const data = ctx.val("data")
  const scale = ctx.val("scale")
  const offset = ctx.opt("offset")
  const out = ctx.alloc(0)
  expectShape("constexpr_blockwise_shift_scale", out.shape, data.shape)
  const r = data.shape.length
  if (scale.shape.length !== r) throw new OpError("constexpr_blockwise_shift_scale: scale must have data's rank")
  const block = data.shape.map((d, i) => d / scale.shape[i]!)
  return () => {
    const idx = new Array<number>(r).fill(0)
    for (let f = 0; f < data.data.length; f++) {
      let s = 0
      for (let i = 0; i < r; i++) s = s * scale.shape[i]! + Math.floor(idx[i]! / block[i]!)
      out.data[f] = scale.data[s]! * (data.data[f]! - (offset ? offset.data[s]! : 0))
      for (let d = r - 1; d >= 0; d--) {
        idx[d]!++
        if (idx[d]! < data.shape[d]!) break
        idx[d] = 0
      }
    }
  }
}

const constexprCast: OpImpl = (ctx) => {
  const src = ctx.val("source_val")
  const out = ctx.alloc(0)
  expectShape("constexpr_cast", out.shape, src.shape)
  return () => out.data.set(src.data)
}

/** The kernels' scalar-or-per-axis layout of x for a parameter checked by alongAxis. */
const paramSplit = (p: Val | undefined, shape: ReadonlyArray<number>, axis: number | undefined): AxisSplit => {
  if (p === undefined || sizeOf(p.shape) === 1 || axis === undefined) return { outer: 1, dim: 1, inner: sizeOf(shape) }
  return { outer: sizeOf(shape.slice(0, axis)), dim: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) }
}

/**
 * Parameters of quantize/dequantize: a scalar with a per-axis other is expanded once to the axis so both
 * share the kernels' layout.
 */
const quantParams = (x: Val, scale: Val, zp: Val | undefined, axis: number | undefined) => {
  alongAxis(scale, x.shape, axis, 1)
  alongAxis(zp, x.shape, axis, 0)
  const sS = paramSplit(scale, x.shape, axis), sZ = paramSplit(zp, x.shape, axis)
  const split = sS.dim >= sZ.dim ? sS : sZ
  const widen = (p: Val) => (sizeOf(p.shape) === split.dim ? null : new Float32Array(split.dim))
  const sBuf = widen(scale), zBuf = zp === undefined ? null : widen(zp)
  return {
    split,
    scale: (): Float32Array => (sBuf === null ? scale.data : sBuf.fill(scale.data[0]!)),
    zp: (): Float32Array | undefined => (zp === undefined ? undefined : zBuf === null ? zp.data : zBuf.fill(zp.data[0]!))
  }
}

const quantize: OpImpl = (ctx) => {
  const x = ctx.val("input")
  const axis = ctx.has("axis") ? normAxis(ctx.num("axis"), x.shape.length) : undefined
  const out = ctx.alloc(0)
  const q = quantParams(x, ctx.val("scale"), ctx.opt("zero_point"), axis)
  expectShape("quantize", out.shape, x.shape)
  // The front end admits int8 and uint8 only (mil-format-errata.md, quantize).
  const dtype = ctx.str("output_dtype")
  if (dtype !== "int8" && dtype !== "uint8") throw new OpError(`quantize: unsupported output_dtype "${dtype}"`, "SIM-DTYPE")
  const o = out.data
  return () => kQuantize(x.data, q.split, q.scale(), q.zp(), dtype, o)
}

const dequantize: OpImpl = (ctx) => {
  const x = ctx.val("input")
  const axis = ctx.has("axis") ? normAxis(ctx.num("axis"), x.shape.length) : undefined
  const out = ctx.alloc(0)
  const q = quantParams(x, ctx.val("scale"), ctx.opt("zero_point"), axis)
  expectShape("dequantize", out.shape, x.shape)
  const o = out.data
  return () => kDequantize(x.data, q.split, q.scale(), q.zp(), o)
}

/** Decompression and quantization ops by MIL name. */
export const constexprOps: Record<string, OpImpl> = {
  constexpr_affine_dequantize: affineDequantize,
  constexpr_lut_to_dense: lutToDense,
  constexpr_sparse_to_dense: sparseToDense,
  constexpr_blockwise_shift_scale: blockwiseShiftScale,
  constexpr_cast: constexprCast,
  quantize,
  dequantize
}
