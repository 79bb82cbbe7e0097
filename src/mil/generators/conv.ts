/**
 * 2-D convolution forward on `[1, inChannels, height, width]` with const weights [out][in/groups][kh][kw] and an
 * optional bias. Supported sizes: channels 1..16384 (divisible by groups), height·width ≥ 1 with width ≤ 16384,
 * kernel 1..13 per axis (larger pooling-like kernels are reported to fall off the ANE), stride 1..2, dilation 1.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, needThat, weightsOr } from "./common.js"

const WEIGHTS = "@model_path/weights/weight.bin"

/** Sizes {@link conv2d} accepts. */
export const CONV_LIMITS = { channels: 16384, width: 16384, height: 16384, kernel: 13, stride: 2 } as const

/** Options of {@link conv2d}. */
export interface Conv2dOptions extends CommonOptions {
  readonly inChannels: number
  readonly outChannels: number
  readonly height: number
  readonly width: number
  /** [kh, kw]; default [1, 1]. */
  readonly kernel?: readonly [number, number]
  /** [sh, sw]; default [1, 1]. */
  readonly stride?: readonly [number, number]
  /** `valid` (default) or `same` (output ceil(size/stride)). */
  readonly padding?: "valid" | "same"
  readonly groups?: number
  /** Row-major [out][in/groups][kh][kw]; deterministic init when omitted. */
  readonly weights?: ArrayLike<number>
  /** [out]; none when omitted. */
  readonly bias?: ArrayLike<number>
}

/** Input `x: [1, inChannels, height, width]` → `y: [1, outChannels, H', W']`. */
export const conv2d = (o: Conv2dOptions): Generated => {
  const op = "Generators.conv2d"
  const cin = needInt(op, "inChannels", o.inChannels, 1, CONV_LIMITS.channels)
  const cout = needInt(op, "outChannels", o.outChannels, 1, CONV_LIMITS.channels)
  const h = needInt(op, "height", o.height, 1, CONV_LIMITS.height)
  const w = needInt(op, "width", o.width, 1, CONV_LIMITS.width)
  const [kh, kw] = o.kernel ?? [1, 1]
  needInt(op, "kernel[0]", kh, 1, CONV_LIMITS.kernel)
  needInt(op, "kernel[1]", kw, 1, CONV_LIMITS.kernel)
  const [sh, sw] = o.stride ?? [1, 1]
  needInt(op, "stride[0]", sh, 1, CONV_LIMITS.stride)
  needInt(op, "stride[1]", sw, 1, CONV_LIMITS.stride)
  const groups = needInt(op, "groups", o.groups ?? 1, 1)
  needThat(op, "groups", cin % groups === 0 && cout % groups === 0, `a divisor of ${cin} and ${cout}`, String(groups))
  const padding = o.padding ?? "valid"
  if (padding === "valid") {
    needThat(op, "kernel", kh <= h && kw <= w, `at most [${h}, ${w}] with valid padding`, `[${kh}, ${kw}]`)
  }
  const n = cout * (cin / groups) * kh * kw
  const weights = weightsOr(op, "weights", o.weights, n, (cin / groups) * kh * kw, 61)
  const bias = o.bias === undefined ? undefined : weightsOr(op, "bias", o.bias, cout, 1, 62)
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, cin, h, w])
    const W = b.const(weights, [cout, cin / groups, kh, kw], { name: "W", file: WEIGHTS })
    let y = b.conv(x, W, { strides: [sh, sw], padType: padding, groups, name: "conv_out" })
    if (bias !== undefined) y = b.add(y, b.const(bias, [1, cout, 1, 1], { name: "B", file: WEIGHTS }), { name: "biased" })
    return { y }
  })
}
