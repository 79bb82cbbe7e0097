/**
 * Softmax over the channels (axis 1, default) or the tokens (axis −1) of `[1, channels, 1, seq]`
 * (GenSoftmaxVocab). Supported sizes: channels 1..65536, seq 1..16384.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, needThat } from "./common.js"

/** Sizes {@link softmax} accepts. */
export const SOFTMAX_LIMITS = { channels: 65536, seq: 16384 } as const

/** Options of {@link softmax}. */
export interface SoftmaxOptions extends CommonOptions {
  readonly channels: number
  readonly seq: number
  /** 1 (channels, default) or −1 (tokens). */
  readonly axis?: 1 | -1
}

/** Input `x: [1, channels, 1, seq]` → `y` of the same shape. */
export const softmax = (o: SoftmaxOptions): Generated => {
  const op = "Generators.softmax"
  const channels = needInt(op, "channels", o.channels, 1, SOFTMAX_LIMITS.channels)
  const seq = needInt(op, "seq", o.seq, 1, SOFTMAX_LIMITS.seq)
  const axis = o.axis ?? 1
  needThat(op, "axis", axis === 1 || axis === -1, "1 or -1", String(axis))
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", [1, channels, 1, seq])
    return { y: b.softmax(x, { axis, name: "sm" }) }
  })
}
