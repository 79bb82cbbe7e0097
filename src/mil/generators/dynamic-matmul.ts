/**
 * Dynamic matmul: activations and weights packed into ONE input `[1, inDim, 1, batch + outDim]` (channel d holds
 * x[·, d] in columns [0, batch) and weight row w[d, ·] in [batch, batch + outDim)), sliced apart inside the program,
 * so weights change without recompiling (spec §2.3, §5.1). Supported sizes: inDim 1..4096, outDim 1..4096,
 * batch 1..4096 with batch + outDim ≤ 16384 (the spatial limit).
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, MAX_SPATIAL, needInt, needThat } from "./common.js"
import { InvalidArgumentError } from "../../schema/errors.js"

/** Options of {@link dynamicMatmul}. */
export interface DynamicMatmulOptions extends CommonOptions {
  readonly inDim: number
  readonly outDim: number
  readonly batch: number
  /** I/O dtype; default `fp32` with casts (as the Go executor), `fp16` drops the casts. */
  readonly io?: "fp16" | "fp32"
}

/** Sizes {@link dynamicMatmul} accepts. */
export const DYNAMIC_MATMUL_LIMITS = { inDim: 4096, outDim: 4096, batch: 4096, width: MAX_SPATIAL } as const

/** Input `x: [1, inDim, 1, batch + outDim]` → `y: [1, outDim, 1, batch]` with y[o, t] = Σ_d x[t, d]·w[d, o]. */
export const dynamicMatmul = (o: DynamicMatmulOptions): Generated => {
  const op = "Generators.dynamicMatmul"
  const inDim = needInt(op, "inDim", o.inDim, 1, DYNAMIC_MATMUL_LIMITS.inDim)
  const outDim = needInt(op, "outDim", o.outDim, 1, DYNAMIC_MATMUL_LIMITS.outDim)
  const batch = needInt(op, "batch", o.batch, 1, DYNAMIC_MATMUL_LIMITS.batch)
  needThat(op, "batch + outDim", batch + outDim <= MAX_SPATIAL, `at most ${MAX_SPATIAL}`, String(batch + outDim))
  const io = o.io ?? "fp32"
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", io, [1, inDim, 1, batch + outDim])
    const xh = io === "fp32" ? b.cast(x, "fp16", { name: "xh" }) : x
    const act = b.sliceBySize(xh, [0, 0, 0, 0], [1, inDim, 1, batch], { name: "act" })
    const wt = b.sliceBySize(xh, [0, 0, 0, batch], [1, inDim, 1, outDim], { name: "wt" })
    const act2 = b.reshape(act, [1, 1, inDim, batch], { name: "act2" })
    const act3 = b.transpose(act2, [0, 1, 3, 2], { name: "act3" })
    const W = b.reshape(wt, [1, 1, inDim, outDim], { name: "W" })
    const yh = b.matmul(act3, W, { name: "mm" })
    const yt = b.transpose(yh, [0, 1, 3, 2], { name: "yt" })
    const yr = b.reshape(yt, [1, outDim, 1, batch], { name: "yr" })
    return { y: io === "fp32" ? b.cast(yr, "fp32") : yr }
  })
}

/**
 * Packs x (row-major [batch, inDim]) and w (row-major [inDim, outDim], "IO layout") into the channel-first input of
 * {@link dynamicMatmul}: element (d, col) at d·(batch + outDim) + col.
 */
export const packDynamicMatmulInput = (
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  sizes: { readonly inDim: number; readonly outDim: number; readonly batch: number }
): Float32Array => {
  const { inDim, outDim, batch } = sizes
  if (x.length !== batch * inDim) {
    throw new InvalidArgumentError({ op: "packDynamicMatmulInput", argument: "x", expected: `${batch * inDim} values`, actual: `${x.length} values` })
  }
  if (w.length !== inDim * outDim) {
    throw new InvalidArgumentError({ op: "packDynamicMatmulInput", argument: "w", expected: `${inDim * outDim} values`, actual: `${w.length} values` })
  }
  const width = batch + outDim
  const out = new Float32Array(inDim * width)
  for (let d = 0; d < inDim; d++) {
    for (let t = 0; t < batch; t++) out[d * width + t] = x[t * inDim + d]!
    for (let j = 0; j < outDim; j++) out[d * width + batch + j] = w[d * outDim + j]!
  }
  return out
}
