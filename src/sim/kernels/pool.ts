/** Max and average pooling over 1–3 spatial dims of channels-first data (x [n, C, *D]). */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { checkShape, invalid, type Shape, showShape } from "./shape.js"

/** Pooling geometry: kernel sizes per spatial dim; strides default 1, pads [before₀, after₀, …] default 0. */
export interface PoolOptions {
  readonly kernel: ReadonlyArray<number>
  readonly strides?: ReadonlyArray<number>
  readonly pads?: ReadonlyArray<number>
  /** Round the output size up (MIL ceil_mode; the last window must start inside input + pad-before). */
  readonly ceilMode?: boolean
  /** avg only: divide by the count of real (unpadded) elements in the window instead of the kernel size. */
  readonly excludePaddingFromAverage?: boolean
}

/** A checked pooling: output shape and geometry padded to 3 spatial dims. */
export interface PoolPlan {
  readonly outShape: ReadonlyArray<number>
  readonly planes: number
  readonly inSp: ReadonlyArray<number>
  readonly outSp: ReadonlyArray<number>
  readonly kSp: ReadonlyArray<number>
  readonly stride: ReadonlyArray<number>
  readonly padBefore: ReadonlyArray<number>
  readonly padAfter: ReadonlyArray<number>
  readonly excludePadding: boolean
}

const to3 = (v: ReadonlyArray<number>, fill: number) => [...new Array<number>(3 - v.length).fill(fill), ...v]

/**
 * Plans max/avg pooling. Output per dim: floor((D + pads − k)/s) + 1, or with ceilMode
 * floor((D + pads − k + s − 1)/s) + 1, minus 1 when that last window would start past D + pad-before.
 */
export const planPool = (xShape: Shape, options: PoolOptions): Either.Either<PoolPlan, InvalidArgumentError> => {
  const bad = checkShape("pool", "x", xShape)
  if (bad) return Either.left(bad)
  const r = xShape.length - 2
  if (r < 1 || r > 3) return Either.left(invalid("pool", "x", "rank 3 to 5 ([n, C, *spatial])", showShape(xShape)))
  const k = options.kernel
  const s = options.strides ?? new Array<number>(r).fill(1)
  const pads = options.pads ?? new Array<number>(2 * r).fill(0)
  if (k.length !== r || k.some((v) => !Number.isInteger(v) || v < 1)) {
    return Either.left(invalid("pool", "kernel", `${r} positive integers`, `[${k.join(", ")}]`))
  }
  if (s.length !== r || s.some((v) => !Number.isInteger(v) || v < 1)) {
    return Either.left(invalid("pool", "strides", `${r} positive integers`, `[${s.join(", ")}]`))
  }
  if (pads.length !== 2 * r || pads.some((v) => !Number.isInteger(v) || v < 0)) {
    return Either.left(invalid("pool", "pads", `${2 * r} non-negative integers`, `[${pads.join(", ")}]`))
  }
  const outSp: Array<number> = []
  for (let d = 0; d < r; d++) {
    const D = xShape[2 + d]!
    const pb = pads[2 * d]!
    const total = pb + pads[2 * d + 1]!
    const span = D + total - k[d]!
    if (span < 0) return Either.left(invalid("pool", "kernel", `windows that fit ${showShape(xShape)} plus pads`, `[${k.join(", ")}]`))
    let o = Math.floor((options.ceilMode ? span + s[d]! - 1 : span) / s[d]!) + 1
    if (options.ceilMode && (o - 1) * s[d]! >= D + pb) o--
    outSp.push(o)
  }
  return Either.right({
    outShape: [xShape[0]!, xShape[1]!, ...outSp], planes: xShape[0]! * xShape[1]!,
    inSp: to3(xShape.slice(2), 1), outSp: to3(outSp, 1), kSp: to3(k, 1), stride: to3(s, 1),
    padBefore: to3(pads.filter((_, i) => i % 2 === 0), 0),
    padAfter: to3(pads.filter((_, i) => i % 2 === 1), 0), excludePadding: options.excludePaddingFromAverage ?? false
  })
}

const run = (plan: PoolPlan, x: Float32Array, out: Float32Array, max: boolean): void => {
  const [ID, IH, IW] = plan.inSp as [number, number, number]
  const [OD, OH, OW] = plan.outSp as [number, number, number]
  const [KD, KH, KW] = plan.kSp as [number, number, number]
  const [SD, SH, SW] = plan.stride as [number, number, number]
  const [PD, PH, PW] = plan.padBefore as [number, number, number]
  const [AD, AH, AW] = plan.padAfter as [number, number, number]
  const inPlane = ID * IH * IW
  let q = 0
  for (let pl = 0; pl < plan.planes; pl++) {
    const base = pl * inPlane
    for (let od = 0; od < OD; od++) {
      const d0 = od * SD - PD
      const da = Math.max(d0, 0), db = Math.min(d0 + KD, ID)
      for (let oh = 0; oh < OH; oh++) {
        const h0 = oh * SH - PH
        const ha = Math.max(h0, 0), hb = Math.min(h0 + KH, IH)
        for (let ow = 0; ow < OW; ow++) {
          const w0 = ow * SW - PW
          const wa = Math.max(w0, 0), wb = Math.min(w0 + KW, IW)
          // Padded positions never win a max and add zero to a sum (spec/mil-format-errata.md §4.3).
          let acc = max ? -Infinity : 0
          for (let d = da; d < db; d++) {
            for (let h = ha; h < hb; h++) {
              const row = base + (d * IH + h) * IW
              if (max) for (let w = wa; w < wb; w++) acc = Math.max(acc, x[row + w]!)
              else for (let w = wa; w < wb; w++) acc = Math.fround(acc + x[row + w]!)
            }
          }
          if (!max) {
            // Counting padding: the window clipped to the padded extent [−before, D + after), since a ceil_mode
            // window may run past the padding and those positions never count.
            const n = plan.excludePadding
              ? (db - da) * (hb - ha) * (wb - wa)
              : (Math.min(d0 + KD, ID + AD) - d0) * (Math.min(h0 + KH, IH + AH) - h0) * (Math.min(w0 + KW, IW + AW) - w0)
            acc = n > 0 ? Math.fround(acc / n) : 0
          }
          out[q++] = acc
        }
      }
    }
  }
}

/** Max pooling into out (size of plan.outShape). */
export const maxPool = (plan: PoolPlan, x: Float32Array, out: Float32Array): void => run(plan, x, out, true)

/** Average pooling into out (size of plan.outShape); sums in fp32. */
export const avgPool = (plan: PoolPlan, x: Float32Array, out: Float32Array): void => run(plan, x, out, false)
