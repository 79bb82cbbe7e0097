/** Quantisation, compile-time weight decompression and state ops (errata §4.5–4.8, rows 17–18). */
import type { OpContext } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { formatShape, formatType, tensor } from "./types.js"

const F: ReadonlySet<string> = new Set(["fp16", "fp32"])

const scaleCheck = (ctx: OpContext, dataName: string) => {
  const data = ctx.tensor(dataName)
  const axisV = ctx.int("axis")
  for (const p of ["scale", "zero_point"]) {
    const t = ctx.tensor(p, { required: p === "scale" })
    if (!t || !data || t.type.shape === null || data.type.shape === null) continue
    if (t.type.shape.length === 0) continue
    if (t.type.shape.length !== 1) {
      ctx.error(t.arg.pos, `\`${p}\` expected a scalar or a vector, found ${formatShape(t.type.shape)}`,
        TypeCodes.shapeMismatch)
      continue
    }
    if (typeof axisV !== "number") continue
    const rank = data.type.shape.length
    const a = axisV < 0 ? axisV + rank : axisV
    const d = data.type.shape[a]
    if (d !== null && t.type.shape[0] !== null && t.type.shape[0] !== d && t.type.shape[0] !== 1) {
      ctx.error(t.arg.pos, `\`${p}\` expected length ${d} (${dataName}'s axis ${axisV}), found ` +
        `${formatShape(t.type.shape)}`, TypeCodes.shapeMismatch)
    }
  }
  return data
}

/** Quantisation and constexpr rules by name. */
export const quantRules: Readonly<Record<string, OpRule>> = {
  quantize: {
    args: ["input", "zero_point", "scale", "axis", "output_dtype"],
    infer: (ctx) => {
      const x = ctx.tensor("input", { dtypes: F })
      scaleCheck(ctx, "input")
      if (!ctx.has("output_dtype")) ctx.missing("output_dtype", `"int8" or "uint8"`)
      const d = ctx.string("output_dtype", null, ["int8", "uint8"])
      return x ? [d === null ? null : tensor(d, x.type.shape)] : null
    }
  },
  dequantize: {
    args: ["input", "zero_point", "scale", "axis"],
    infer: (ctx) => {
      const x = ctx.tensor("input", { dtypes: new Set(["int8", "uint8"]) })
      const s = ctx.tensor("scale", { dtypes: F })
      scaleCheck(ctx, "input")
      return x && s ? [tensor(s.type.dtype, x.type.shape)] : null
    }
  },
  constexpr_affine_dequantize: {
    args: ["quantized_data", "zero_point", "scale", "axis"],
    infer: (ctx) => {
      const q = ctx.tensor("quantized_data", { dtypes: new Set(["int8", "uint8"]) })
      const s = ctx.tensor("scale", { dtypes: F })
      if (!ctx.has("axis")) ctx.missing("axis", "an int32 scalar")
      scaleCheck(ctx, "quantized_data")
      return q && s ? [tensor(s.type.dtype, q.type.shape)] : null
    }
  },
  constexpr_lut_to_dense: {
    args: ["indices", "lut", "shape", "vector_axis"],
    infer: (ctx) => {
      const idx = ctx.tensor("indices")
      const lut = ctx.tensor("lut", { dtypes: new Set(["int8", "uint8", "fp16", "fp32"]) })
      if (!lut || !idx) return null
      if (ctx.has("shape")) {
        // iOS16 form: uint8 packed indices, rank-1 LUT of 2^nbits entries, explicit output shape.
        const shape = ctx.ints("shape")
        const n = lut.type.shape && lut.type.shape.length === 1 ? lut.type.shape[0] : null
        if (n !== null && ![2, 4, 16, 64, 256].includes(n)) {
          ctx.error(lut.arg.pos, `lut expected 2, 4, 16, 64 or 256 entries, found ${n}`, TypeCodes.shapeMismatch)
        }
        if (shape && n !== null && idx.type.shape !== null && idx.type.shape.length === 1 &&
          idx.type.shape[0] !== null && shape.every((d) => d !== null)) {
          const bits = Math.log2(n)
          const count = (shape as ReadonlyArray<number>).reduce((a, b) => a * b, 1)
          const want = Math.ceil((bits * count) / 8)
          if (idx.type.shape[0] !== want) {
            ctx.error(idx.arg.pos, `indices expected ${want} bytes (${bits}-bit indices for ${count} elements), ` +
              `found ${idx.type.shape[0]}`, TypeCodes.shapeMismatch)
          }
        }
        return [tensor(lut.type.dtype, shape ?? null)]
      }
      // iOS18 form: indices carry the output shape; vector_axis multiplies one axis by the LUT vector size.
      if (idx.type.shape === null || lut.type.shape === null) return [tensor(lut.type.dtype, null)]
      const v = lut.type.shape[lut.type.shape.length - 1]
      const va = ctx.int("vector_axis")
      if (typeof va !== "number" || v === 1) return [tensor(lut.type.dtype, idx.type.shape)]
      const rank = idx.type.shape.length
      const a = va < 0 ? va + rank : va
      return [tensor(lut.type.dtype, idx.type.shape.map((d, i) => (i === a && d !== null && v !== null ? d * v : d)))]
    }
  },
  constexpr_sparse_to_dense: {
    args: ["nonzero_data", "mask", "shape"],
    infer: (ctx) => {
      const nz = ctx.tensor("nonzero_data")
      const mask = ctx.tensor("mask")
      if (!nz || !mask) return null
      if (ctx.has("shape")) {
        const shape = ctx.ints("shape")
        if (shape && mask.type.shape !== null && mask.type.shape.length === 1 && mask.type.shape[0] !== null &&
          shape.every((d) => d !== null)) {
          const count = (shape as ReadonlyArray<number>).reduce((a, b) => a * b, 1)
          if (mask.type.shape[0] !== Math.ceil(count / 8)) {
            ctx.error(mask.arg.pos, `mask expected ${Math.ceil(count / 8)} bytes (one bit per element of ` +
              `${formatShape(shape)}), found ${mask.type.shape[0]}`, TypeCodes.shapeMismatch)
          }
        }
        return [tensor(nz.type.dtype, shape ?? null)]
      }
      return [tensor(nz.type.dtype, mask.type.shape)]
    }
  },
  constexpr_cast: {
    args: ["source_val", "output_dtype"],
    infer: (ctx) => {
      const s = ctx.tensor("source_val", { dtypes: new Set(["fp16"]) })
      ctx.string("output_dtype", null, ["fp32"])
      return s ? [tensor("fp32", s.type.shape)] : null
    }
  },
  constexpr_blockwise_shift_scale: {
    args: ["data", "scale", "offset"],
    infer: (ctx) => {
      const d = ctx.tensor("data")
      const s = ctx.tensor("scale", { dtypes: F })
      if (!d || !s) return null
      if (d.type.shape !== null && s.type.shape !== null) {
        const ds = d.type.shape
        const ss = s.type.shape
        if (ss.length !== ds.length || ss.some((v, i) => v !== null && ds[i] !== null && v !== 0 && ds[i]! % v !== 0)) {
          ctx.error(s.arg.pos, `scale expected rank ${ds.length} with sizes dividing ${formatShape(ds)}, found ` +
            `${formatShape(ss)}`, TypeCodes.shapeMismatch)
        }
      }
      return [tensor(s.type.dtype, d.type.shape)]
    }
  },
  read_state: {
    args: ["input", "name"],
    infer: (ctx) => {
      const a = ctx.arg("input")
      if (a === undefined) {
        // The `read_state(name = "...")` spelling names a state with no declared type here.
        if (!ctx.has("name")) ctx.missing("input", "a state variable")
        return null
      }
      if (a.type === null) return null
      if (a.type.kind !== "state") {
        ctx.error(a.pos, `input expected a state variable, found ${formatType(a.type)}`, TypeCodes.wrongArgumentKind)
        return null
      }
      return [a.type.inner]
    }
  },
  write_state: {
    args: ["input", "data"],
    infer: (ctx) => {
      const a = ctx.arg("input")
      const d = ctx.tensor("data")
      if (a === undefined) ctx.missing("input", "a state variable")
      if (a && a.type && a.type.kind === "state" && d && a.type.inner.kind === "tensor" &&
        a.type.inner.dtype !== d.type.dtype) {
        ctx.error(d.arg.pos, `data expected dtype ${a.type.inner.dtype} (the state's), found ${d.type.dtype}`,
          TypeCodes.wrongDtype)
      }
      return []
    }
  },
  coreml_update_state: {
    args: ["state", "value"],
    infer: (ctx) => {
      const s = ctx.arg("state")
      const v = ctx.tensor("value")
      if (s === undefined) ctx.missing("state", "a state variable")
      return v ? [v.type] : null
    }
  }
}
