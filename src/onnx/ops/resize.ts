/**
 * ONNX Resize (and Upsample) on the last two axes. Integer nearest scales become upsample_nearest_neighbor; every
 * other case (linear, fractional, other coordinate modes) is exact as two matrix products with constant
 * interpolation matrices, which the engine runs as ordinary matmuls.
 */
import type { Converter, NodeCtx } from "../context.js"
import { constant, size, type Value } from "../values.js"

/** Source coordinate of output index `i` along an axis of `inSize` → `outSize` (scale `s`). */
const sourceCoord = (mode: string, i: number, inSize: number, outSize: number, s: number): number => {
  switch (mode) {
    case "asymmetric": return i / s
    case "align_corners": return outSize === 1 ? 0 : (i * (inSize - 1)) / (outSize - 1)
    case "pytorch_half_pixel": return outSize > 1 ? (i + 0.5) / s - 0.5 : 0
    case "tf_half_pixel_for_nn": return (i + 0.5) / s
    default: return (i + 0.5) / s - 0.5
  }
}

const nearestIndex = (mode: string, x: number): number => {
  switch (mode) {
    case "floor": return Math.floor(x)
    case "ceil": return Math.ceil(x)
    case "round_prefer_ceil": return Math.round(x)
    default: return x % 1 === 0.5 || x % 1 === -0.5 ? Math.floor(x) : Math.round(x)
  }
}

/** Interpolation matrix [outSize, inSize] of one axis. */
export const interpolationMatrix = (
  kind: "nearest" | "linear", coord: string, nearest: string, inSize: number, outSize: number, scale: number
): Float32Array => {
  const m = new Float32Array(outSize * inSize)
  for (let i = 0; i < outSize; i++) {
    const x = sourceCoord(coord, i, inSize, outSize, scale)
    if (kind === "nearest") {
      const j = Math.min(Math.max(nearestIndex(nearest, x), 0), inSize - 1)
      m[i * inSize + j] = 1
    } else {
      const xc = Math.min(Math.max(x, 0), inSize - 1)
      const j0 = Math.floor(xc), j1 = Math.min(j0 + 1, inSize - 1), f = xc - j0
      m[i * inSize + j0] += 1 - f
      m[i * inSize + j1] += f
    }
  }
  return m
}

const resize: Converter = (c) => {
  const x = c.in(0)
  const r = x.shape.length
  const modeName = c.str("mode", "nearest")
  if (modeName !== "nearest" && modeName !== "linear") return c.fail(`Resize mode "${modeName}" is not supported (nearest and linear are)`)
  const coord = c.opType === "Upsample" ? "asymmetric" : c.str("coordinate_transformation_mode", "half_pixel")
  if (coord === "tf_crop_and_resize") c.fail("tf_crop_and_resize is not supported")
  const nearest = c.opType === "Upsample" ? "floor" : c.str("nearest_mode", "round_prefer_floor")
  const scalesIn = c.opType === "Upsample" ? (c.opt(1) ?? undefined) : c.opset >= 11 ? c.opt(2) : c.opt(1)
  const sizesIn = c.opType === "Resize" && c.opset >= 11 ? c.opt(3) : undefined
  if (c.opType === "Resize" && c.has("axes")) c.fail("the axes attribute is not supported")
  let scales: Array<number>, sizes: Array<number>
  if (sizesIn !== undefined && size(sizesIn.shape) > 0) {
    if (sizesIn.tag !== "const") return c.fail("sizes must be a constant")
    sizes = Array.from(sizesIn.data)
    scales = sizes.map((s, i) => s / x.shape[i]!)
  } else if (scalesIn !== undefined && size(scalesIn.shape) > 0) {
    if (scalesIn.tag !== "const") return c.fail("scales must be a constant")
    scales = Array.from(scalesIn.data)
    sizes = scales.map((s, i) => Math.floor(x.shape[i]! * s))
  } else {
    return c.fail("neither scales nor sizes is given")
  }
  if (sizes.length !== r || sizes.some((s) => !Number.isInteger(s) || s < 1)) c.fail(`bad output size [${sizes.join(", ")}]`)
  if (r < 3 || sizes.slice(0, r - 2).some((s, i) => s !== x.shape[i])) c.fail("only the last two axes can be resized")
  const H = x.shape[r - 2]!, W = x.shape[r - 1]!, OH = sizes[r - 2]!, OW = sizes[r - 1]!
  const mh = interpolationMatrix(modeName, coord, nearest, H, OH, scales[r - 2]!)
  const mw = interpolationMatrix(modeName, coord, nearest, W, OW, scales[r - 1]!)
  const isFloorMap = (m: Float32Array, n: number, o: number) =>
    o % n === 0 && Array.from({ length: o }, (_, i) => m[i * n + Math.floor(i / (o / n))] === 1).every(Boolean)
  if (modeName === "nearest" && isFloorMap(mh, H, OH) && isFloorMap(mw, W, OW)) {
    const t = c.b.op("upsample_nearest_neighbor", {
      scale_factor_height: c.b.scalar(OH / H, "int32"), scale_factor_width: c.b.scalar(OW / W, "int32"), x: c.tensor(x)
    }, { dtype: c.dtype, shape: sizes }, c.name())
    return [c.dyn(t, "float")]
  }
  const mwT = new Float32Array(W * OW)
  for (let i = 0; i < OW; i++) for (let j = 0; j < W; j++) mwT[j * OW + i] = mw[i * W + j]!
  let y: Value = x
  if (OW !== W || modeName === "linear" || !isIdentity(mw, W)) {
    y = c.dyn(c.b.matmul(c.tensor(y), c.tensor(constant("float", [W, OW], mwT)), c.name()), "float")
  }
  if (OH !== H || !isIdentity(mh, H)) {
    y = c.dyn(c.b.matmul(c.tensor(constant("float", [OH, H], mh)), c.tensor(y), c.name()), "float")
  }
  return [y]
}

const isIdentity = (m: Float32Array, n: number): boolean => m.length === n * n && m.every((v, k) => v === (k % (n + 1) === 0 ? 1 : 0))

/** Resize converters by ONNX op type. */
export const resizeOps: Readonly<Record<string, Converter>> = { Resize: resize, Upsample: resize }
export type { NodeCtx }
