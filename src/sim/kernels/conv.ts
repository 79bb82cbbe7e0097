/**
 * N-d convolution (1–3 spatial dims, channels-first) and transposed convolution, lowered to the fp32 GEMM:
 * a 1×1 stride-1 unpadded conv is a plain matmul; anything else goes through an im2col (col2im for the transpose)
 * scratch buffer that the plan allocates once.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { gemm, gemmPacked, packB, type PackedB } from "./gemm.js"
import { checkShape, invalid, type Shape, showShape, sizeOf } from "./shape.js"

/** Geometry options of conv and conv_transpose; per spatial dim, defaults 1 / 1 / 0 and 1 group. */
export interface ConvOptions {
  readonly strides?: ReadonlyArray<number>
  readonly dilations?: ReadonlyArray<number>
  /** Explicit pads in MIL order: [before₀, after₀, before₁, after₁, …]. */
  readonly pads?: ReadonlyArray<number>
  readonly groups?: number
}

/** A checked conv (or conv_transpose) with its output shape and preallocated scratch. */
export interface ConvPlan {
  readonly outShape: ReadonlyArray<number>
  readonly batch: number
  readonly cin: number
  readonly cout: number
  readonly groups: number
  /** Spatial geometry padded to 3 dims (leading unit dims): input, output, kernel, stride, dilation, pad-before. */
  readonly inSp: ReadonlyArray<number>
  readonly outSp: ReadonlyArray<number>
  readonly kSp: ReadonlyArray<number>
  readonly stride: ReadonlyArray<number>
  readonly dilation: ReadonlyArray<number>
  readonly padBefore: ReadonlyArray<number>
  /** True when the conv is a plain matmul (1×1 kernel, stride 1, no padding). */
  readonly pointwise: boolean
  readonly scratch: Float32Array
}

const to3 = (v: ReadonlyArray<number>, fill: number) => [...new Array<number>(3 - v.length).fill(fill), ...v]

interface Geometry {
  readonly r: number
  readonly strides: Array<number>
  readonly dilations: Array<number>
  readonly before: Array<number>
  readonly after: Array<number>
  readonly groups: number
}

const geometry = (op: string, r: number, o: ConvOptions): Either.Either<Geometry, InvalidArgumentError> => {
  const strides = [...(o.strides ?? new Array<number>(r).fill(1))]
  const dilations = [...(o.dilations ?? new Array<number>(r).fill(1))]
  const pads = o.pads ?? new Array<number>(2 * r).fill(0)
  const groups = o.groups ?? 1
  if (strides.length !== r || strides.some((s) => !Number.isInteger(s) || s < 1)) {
    return Either.left(invalid(op, "strides", `${r} positive integers`, `[${strides.join(", ")}]`))
  }
  if (dilations.length !== r || dilations.some((s) => !Number.isInteger(s) || s < 1)) {
    return Either.left(invalid(op, "dilations", `${r} positive integers`, `[${dilations.join(", ")}]`))
  }
  if (pads.length !== 2 * r || pads.some((s) => !Number.isInteger(s) || s < 0)) {
    return Either.left(invalid(op, "pads", `${2 * r} non-negative integers`, `[${pads.join(", ")}]`))
  }
  if (!Number.isInteger(groups) || groups < 1) return Either.left(invalid(op, "groups", "a positive integer", String(groups)))
  const before = pads.filter((_, i) => i % 2 === 0)
  const after = pads.filter((_, i) => i % 2 === 1)
  return Either.right({ r, strides, dilations, before, after, groups })
}

/**
 * Plans `conv(x, weight)`: x [n, C_in, *D] (1–3 spatial dims), weight [C_out, C_in/groups, *K]. Output spatial
 * dim = floor((D + before + after − (K−1)·dilation − 1)/stride) + 1; padding reads as zero.
 */
export const planConv = (
  xShape: Shape, wShape: Shape, options: ConvOptions = {}
): Either.Either<ConvPlan, InvalidArgumentError> => {
  const bad = checkShape("conv", "x", xShape) ?? checkShape("conv", "weight", wShape)
  if (bad) return Either.left(bad)
  const r = xShape.length - 2
  if (r < 1 || r > 3) return Either.left(invalid("conv", "x", "rank 3 to 5 ([n, C, *spatial])", showShape(xShape)))
  if (wShape.length !== xShape.length) {
    return Either.left(invalid("conv", "weight", `rank ${xShape.length} like x`, showShape(wShape)))
  }
  const g = geometry("conv", r, options)
  if (Either.isLeft(g)) return Either.left(g.left)
  const { strides, dilations, before, after, groups } = g.right
  const cin = xShape[1]!
  const cout = wShape[0]!
  if (cin % groups !== 0 || cout % groups !== 0 || wShape[1]! * groups !== cin) {
    return Either.left(invalid("conv", "weight",
      `[C_out divisible by groups=${groups}, C_in/groups=${cin / groups}, …]`, showShape(wShape)))
  }
  const inSp = xShape.slice(2)
  const kSp = wShape.slice(2)
  const outSp: Array<number> = []
  for (let d = 0; d < r; d++) {
    const span = inSp[d]! + before[d]! + after[d]! - (kSp[d]! - 1) * dilations[d]! - 1
    if (span < 0 || kSp[d]! < 1) {
      return Either.left(invalid("conv", "weight", `a kernel that fits the padded input ${showShape(xShape)}`,
        showShape(wShape)))
    }
    outSp.push(Math.floor(span / strides[d]!) + 1)
  }
  const pointwise = kSp.every((k) => k === 1) && strides.every((s) => s === 1) &&
    before.every((p) => p === 0) && after.every((p) => p === 0)
  const scratch = new Float32Array(pointwise ? 0 : (cin / groups) * sizeOf(kSp) * sizeOf(outSp))
  return Either.right({
    outShape: [xShape[0]!, cout, ...outSp], batch: xShape[0]!, cin, cout, groups,
    inSp: to3(inSp, 1), outSp: to3(outSp, 1), kSp: to3(kSp, 1), stride: to3(strides, 1),
    dilation: to3(dilations, 1), padBefore: to3(before, 0), pointwise, scratch
  })
}

/** Output positions below which a conv with a packed weight runs transposed (positions as rows of the GEMM). */
export const PACKED_CONV_MAX_POSITIONS = 64

/**
 * A constant conv weight packed once per group (as the GEMM's B, transposed), or undefined where that does not pay:
 * with many output positions the weight is the GEMM's A, re-copied per call at a cost of 1/positions of the work.
 * With few positions (a streaming model's frames) the positions become the GEMM's rows instead, so no tile is
 * wasted on columns that do not exist.
 */
export const packConvWeight = (plan: ConvPlan, w: Float32Array): ReadonlyArray<PackedB> | undefined => {
  const P = plan.outSp[0]! * plan.outSp[1]! * plan.outSp[2]!
  if (P >= PACKED_CONV_MAX_POSITIONS) return undefined
  const coutG = plan.cout / plan.groups
  const kRows = (plan.cin / plan.groups) * plan.kSp[0]! * plan.kSp[1]! * plan.kSp[2]!
  const packed: Array<PackedB> = []
  for (let g = 0; g < plan.groups; g++) packed.push(packB(kRows, coutG, w, g * coutG * kRows, kRows, true))
  return packed
}

/**
 * Runs a planned conv: out [n, C_out, *D_out] = conv(x, w) + bias (bias [C_out] optional), fp32 accumulation;
 * `packed` (from {@link packConvWeight} for this `w`) is used instead of `w` when given.
 */
export const conv = (
  plan: ConvPlan, x: Float32Array, w: Float32Array, bias: Float32Array | undefined, out: Float32Array,
  packed?: ReadonlyArray<PackedB>
): void => {
  const { batch, cin, cout, groups } = plan
  const cinG = cin / groups
  const coutG = cout / groups
  const P = plan.outSp[0]! * plan.outSp[1]! * plan.outSp[2]!
  const Pin = plan.inSp[0]! * plan.inSp[1]! * plan.inSp[2]!
  const kProd = plan.kSp[0]! * plan.kSp[1]! * plan.kSp[2]!
  const kRows = cinG * kProd
  for (let n = 0; n < batch; n++) {
    for (let g = 0; g < groups; g++) {
      const oOff = (n * cout + g * coutG) * P
      if (bias !== undefined && packed === undefined) {
        for (let co = 0; co < coutG; co++) out.fill(bias[g * coutG + co]!, oOff + co * P, oOff + (co + 1) * P)
      }
      const xOff = (n * cin + g * cinG) * Pin
      // Transposed: outᵀ[P, coutG] = colᵀ · wᵀ (+ bias rows), written back transposed into out's rows.
      if (packed !== undefined) {
        const rows = bias?.subarray(g * coutG, (g + 1) * coutG)
        if (plan.pointwise) gemmPacked(P, x, xOff, Pin, true, packed[g]!, out, oOff, P, true, false, rows)
        else {
          im2colT(plan, x, xOff, cinG, plan.scratch)
          gemmPacked(P, plan.scratch, 0, kRows, false, packed[g]!, out, oOff, P, true, false, rows)
        }
      } else if (plan.pointwise) {
        gemm(coutG, P, cinG, w, g * coutG * cinG, cinG, false, x, xOff, Pin, false, out, oOff, P, bias !== undefined)
      } else {
        im2col(plan, x, xOff, cinG, plan.scratch)
        gemm(coutG, P, kRows, w, g * coutG * kRows, kRows, false, plan.scratch, 0, P, false, out, oOff, P,
          bias !== undefined)
      }
    }
  }
}

// colT[p, (ci·K + k)] = x[ci, p·s − pad + k·dil] or 0 outside the input: im2col transposed, for the packed path.
const im2colT = (plan: ConvPlan, x: Float32Array, xOff: number, cinG: number, colT: Float32Array): void => {
  const [ID, IH, IW] = plan.inSp as [number, number, number]
  const [OD, OH, OW] = plan.outSp as [number, number, number]
  const [KD, KH, KW] = plan.kSp as [number, number, number]
  const [SD, SH, SW] = plan.stride as [number, number, number]
  const [DD, DH, DW] = plan.dilation as [number, number, number]
  const [PD, PH, PW] = plan.padBefore as [number, number, number]
  let q = 0
  for (let od = 0; od < OD; od++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        for (let ci = 0; ci < cinG; ci++) {
          const xc = xOff + ci * ID * IH * IW
          for (let kd = 0; kd < KD; kd++) {
            const id = od * SD - PD + kd * DD
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * SH - PH + kh * DH
              if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
                colT.fill(0, q, q + KW)
                q += KW
                continue
              }
              const row = xc + (id * IH + ih) * IW
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * SW - PW + kw * DW
                colT[q++] = iw >= 0 && iw < IW ? x[row + iw]! : 0
              }
            }
          }
        }
      }
    }
  }
}

// col[(ci·K + k), p] = x[ci, p·s − pad + k·dil] or 0 outside the input.
const im2col = (plan: ConvPlan, x: Float32Array, xOff: number, cinG: number, col: Float32Array): void => {
  const [ID, IH, IW] = plan.inSp as [number, number, number]
  const [OD, OH, OW] = plan.outSp as [number, number, number]
  const [KD, KH, KW] = plan.kSp as [number, number, number]
  const [SD, SH, SW] = plan.stride as [number, number, number]
  const [DD, DH, DW] = plan.dilation as [number, number, number]
  const [PD, PH, PW] = plan.padBefore as [number, number, number]
  let q = 0
  for (let ci = 0; ci < cinG; ci++) {
    const xc = xOff + ci * ID * IH * IW
    for (let kd = 0; kd < KD; kd++) {
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++) {
          for (let od = 0; od < OD; od++) {
            const id = od * SD - PD + kd * DD
            for (let oh = 0; oh < OH; oh++) {
              const ih = oh * SH - PH + kh * DH
              if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
                col.fill(0, q, q + OW)
                q += OW
                continue
              }
              const row = xc + (id * IH + ih) * IW
              for (let ow = 0; ow < OW; ow++) {
                const iw = ow * SW - PW + kw * DW
                col[q++] = iw >= 0 && iw < IW ? x[row + iw]! : 0
              }
            }
          }
        }
      }
    }
  }
}

/** Options of conv_transpose: the conv geometry plus an optional explicit output spatial shape. */
export interface ConvTransposeOptions extends ConvOptions {
  /** Output spatial dims; defaults to (D−1)·stride + (K−1)·dilation + 1 − before − after. */
  readonly outputSpatial?: ReadonlyArray<number>
}

/**
 * Plans `conv_transpose(x, weight)`: x [n, C_in, *D], weight [C_in, C_out/groups, *K] (Core ML's layout);
 * the adjoint of conv with the same geometry (pads crop the full output).
 */
export const planConvTranspose = (
  xShape: Shape, wShape: Shape, options: ConvTransposeOptions = {}
): Either.Either<ConvPlan, InvalidArgumentError> => {
  const bad = checkShape("conv_transpose", "x", xShape) ?? checkShape("conv_transpose", "weight", wShape)
  if (bad) return Either.left(bad)
  const r = xShape.length - 2
  if (r < 1 || r > 3) {
    return Either.left(invalid("conv_transpose", "x", "rank 3 to 5 ([n, C, *spatial])", showShape(xShape)))
  }
  if (wShape.length !== xShape.length) {
    return Either.left(invalid("conv_transpose", "weight", `rank ${xShape.length} like x`, showShape(wShape)))
  }
  const g = geometry("conv_transpose", r, options)
  if (Either.isLeft(g)) return Either.left(g.left)
  const { strides, dilations, before, after, groups } = g.right
  const cin = xShape[1]!
  if (wShape[0] !== cin || cin % groups !== 0) {
    return Either.left(invalid("conv_transpose", "weight", `[C_in=${cin} (divisible by groups=${groups}), …]`,
      showShape(wShape)))
  }
  const cout = wShape[1]! * groups
  const inSp = xShape.slice(2)
  const kSp = wShape.slice(2)
  const outSp = options.outputSpatial !== undefined ? [...options.outputSpatial] :
    inSp.map((d, i) => (d - 1) * strides[i]! + (kSp[i]! - 1) * dilations[i]! + 1 - before[i]! - after[i]!)
  if (outSp.length !== r || outSp.some((d) => !Number.isInteger(d) || d < 0)) {
    return Either.left(invalid("conv_transpose", "outputSpatial", `${r} non-negative dims`, `[${outSp.join(", ")}]`))
  }
  const Pin = sizeOf(inSp)
  const scratch = new Float32Array((cout / groups) * sizeOf(kSp) * Pin)
  return Either.right({
    outShape: [xShape[0]!, cout, ...outSp], batch: xShape[0]!, cin, cout, groups,
    inSp: to3(inSp, 1), outSp: to3(outSp, 1), kSp: to3(kSp, 1), stride: to3(strides, 1),
    dilation: to3(dilations, 1), padBefore: to3(before, 0), pointwise: false, scratch
  })
}

/** Runs a planned conv_transpose into out [n, C_out, *D_out], adding bias [C_out] if given. */
export const convTranspose = (
  plan: ConvPlan, x: Float32Array, w: Float32Array, bias: Float32Array | undefined, out: Float32Array
): void => {
  const { batch, cin, cout, groups } = plan
  const cinG = cin / groups
  const coutG = cout / groups
  const [ID, IH, IW] = plan.inSp as [number, number, number]
  const [OD, OH, OW] = plan.outSp as [number, number, number]
  const [KD, KH, KW] = plan.kSp as [number, number, number]
  const [SD, SH, SW] = plan.stride as [number, number, number]
  const [DD, DH, DW] = plan.dilation as [number, number, number]
  const [PD, PH, PW] = plan.padBefore as [number, number, number]
  const Pin = ID * IH * IW
  const P = OD * OH * OW
  const kProd = KD * KH * KW
  const col = plan.scratch
  for (let n = 0; n < batch; n++) {
    for (let g = 0; g < groups; g++) {
      // col[(co·K + k), p_in] = Σ_ci w[ci, co, k]·x[ci, p_in], then scatter-added (col2im) into the output.
      gemm(coutG * kProd, Pin, cinG, w, g * cinG * coutG * kProd, coutG * kProd, true,
        x, (n * cin + g * cinG) * Pin, Pin, false, col, 0, Pin, false)
      for (let co = 0; co < coutG; co++) {
        const oc = (n * cout + g * coutG + co) * P
        out.fill(bias !== undefined ? bias[g * coutG + co]! : 0, oc, oc + P)
        let q = co * kProd * Pin
        for (let kd = 0; kd < KD; kd++) {
          for (let kh = 0; kh < KH; kh++) {
            for (let kw = 0; kw < KW; kw++) {
              for (let id = 0; id < ID; id++) {
                const od = id * SD - PD + kd * DD
                for (let ih = 0; ih < IH; ih++) {
                  const oh = ih * SH - PH + kh * DH
                  if (od < 0 || od >= OD || oh < 0 || oh >= OH) {
                    q += IW
                    continue
                  }
                  const row = oc + (od * OH + oh) * OW
                  for (let iw = 0; iw < IW; iw++) {
                    const ow = iw * SW - PW + kw * DW
                    if (ow >= 0 && ow < OW) out[row + ow] = Math.fround(out[row + ow]! + col[q]!)
                    q++
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
