/**
 * Linear layer `y = x·Wᵀ + b` as a 1×1 convolution on the ANE's `[1, C, 1, S]` layout (tokens on the contiguous
 * axis; spec/mil-format.md §7.1). Supported sizes: inDim, outDim in 1..16384, seq in 1..16384; above 24 MiB of
 * weights (inDim·outDim > 12.5 M) the program exceeds the engine's SRAM (validator warning ANE033): split the layer.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, weightsOr } from "./common.js"

/** Options of {@link linear}. */
export interface LinearOptions extends CommonOptions {
  readonly inDim: number
  readonly outDim: number
  /** Tokens (the spatial width S). */
  readonly seq: number
  /** Row-major [outDim][inDim] (PyTorch `nn.Linear.weight` layout); deterministic init when omitted. */
  readonly weights?: ArrayLike<number>
  /** [outDim]; no bias when omitted. */
  readonly bias?: ArrayLike<number>
  /** I/O dtype: `fp16` (default) or `fp32` with casts around the fp16 compute (the Go GenConv form). */
  readonly io?: "fp16" | "fp32"
}

/** Sizes {@link linear} accepts. */
export const LINEAR_LIMITS = { inDim: 16384, outDim: 16384, seq: 16384 } as const

/** Input `x: [1, inDim, 1, seq]` → output `y: [1, outDim, 1, seq]`. */
export const linear = (o: LinearOptions): Generated => {
  const op = "Generators.linear"
  const inDim = needInt(op, "inDim", o.inDim, 1, LINEAR_LIMITS.inDim)
  const outDim = needInt(op, "outDim", o.outDim, 1, LINEAR_LIMITS.outDim)
  const seq = needInt(op, "seq", o.seq, 1, LINEAR_LIMITS.seq)
  const w = weightsOr(op, "weights", o.weights, outDim * inDim, inDim, 1)
  const bias = o.bias === undefined ? undefined : weightsOr(op, "bias", o.bias, outDim, 1, 2)
  const io = o.io ?? "fp16"
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", io, [1, inDim, 1, seq])
    const x16 = io === "fp32" ? b.cast(x, "fp16", { name: "x16" }) : x
    // Weights always go to the blob, however small: BLOBFILE consts are the form the ANE compiles.
    const W = b.const(w, [outDim, inDim, 1, 1], { name: "W", file: "@model_path/weights/weight.bin" })
    let y = b.conv(x16, W, { name: "proj" })
    if (bias !== undefined) {
      // Rank-4 bias: a rank-1 [outDim] would broadcast against the spatial axis (spec §1.9 note a).
      const B = b.const(bias, [1, outDim, 1, 1], { name: "B", file: "@model_path/weights/weight.bin" })
      y = b.add(y, B, { name: "biased" })
    }
    return { y: io === "fp32" ? b.cast(y, "fp32") : y }
  })
}
