/** Shape arithmetic shared by the simulator's ops. */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { sizeOf, stridesOf } from "../kernels/shape.js"
import { type OpCtx, OpError } from "./types.js"

export { sizeOf, stridesOf }

/** The value of a kernel plan; a rejected plan becomes an OpError carrying the kernel's message. */
export const planned = <A>(plan: Either.Either<A, InvalidArgumentError>): A => {
  if (Either.isLeft(plan)) throw new OpError(plan.left.message)
  return plan.right
}

/** Normalises a possibly negative axis against `rank`. */
export const normAxis = (axis: number, rank: number, what = "axis"): number => {
  const a = axis < 0 ? axis + rank : axis
  if (!(a >= 0 && a < rank)) throw new OpError(`${what} ${axis} is out of range for rank ${rank}`)
  return a
}

/** numpy broadcast of two shapes. */
export const broadcastShapes = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Array<number> => {
  const r = Math.max(a.length, b.length)
  const out = new Array<number>(r)
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1
    const db = b[b.length - r + i] ?? 1
    if (da !== db && da !== 1 && db !== 1) {
      throw new OpError(`shapes [${a.join(", ")}] and [${b.join(", ")}] do not broadcast`)
    }
    out[i] = da === 1 ? db : da
  }
  return out
}

/**
 * Index map from every element of `out` to the element of `src` it reads under numpy broadcasting,
 * or null when `src` has the same shape (identity map).
 */
export const broadcastIndex = (src: ReadonlyArray<number>, out: ReadonlyArray<number>): Int32Array | null => {
  if (src.length === out.length && src.every((d, i) => d === out[i])) return null
  const r = out.length
  const padded = new Array<number>(r).fill(1)
  for (let i = 0; i < src.length; i++) padded[r - src.length + i] = src[i]!
  for (let i = 0; i < r; i++) {
    if (padded[i] !== out[i] && padded[i] !== 1) {
      throw new OpError(`shape [${src.join(", ")}] does not broadcast to [${out.join(", ")}]`)
    }
  }
  const ss = stridesOf(padded).map((s, i) => (padded[i] === 1 ? 0 : s))
  const n = sizeOf(out)
  const map = new Int32Array(n)
  const idx = new Array<number>(r).fill(0)
  let off = 0
  for (let k = 0; k < n; k++) {
    map[k] = off
    for (let d = r - 1; d >= 0; d--) {
      idx[d]!++
      off += ss[d]!
      if (idx[d]! < out[d]!) break
      off -= ss[d]! * out[d]!
      idx[d] = 0
    }
  }
  return map
}

/** Checks that a declared output shape equals the computed one. */
export const expectShape = (what: string, declared: ReadonlyArray<number>, computed: ReadonlyArray<number>): void => {
  if (declared.length !== computed.length || declared.some((d, i) => d !== computed[i])) {
    throw new OpError(
      `${what}: declared shape [${declared.join(", ")}] but the op produces [${computed.join(", ")}]`,
      "SIM-SHAPE"
    )
  }
}

/** Dtypes holding integers (values are truncated toward zero when produced). */
export const isIntDtype = (dtype: string): boolean => /^u?int\d+$/.test(dtype)

/** Inclusive range of an integer dtype. */
export const intRange = (dtype: string): readonly [number, number] => {
  const m = /^(u?)int(\d+)$/.exec(dtype)
  if (!m) return [-Infinity, Infinity]
  const bits = Number(m[2])
  return m[1] === "u" ? [0, 2 ** bits - 1] : [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1]
}

/**
 * Refuses, typed, a kernel's working buffer of `elements` float32s above the plan's per-tensor limit: an im2col
 * buffer can be many times its input, so it is checked before the kernel plan allocates it.
 */
export const checkWorkingBuffer = (ctx: OpCtx, elements: number, what: string): void => {
  if (!Number.isSafeInteger(elements) || elements < 0 || 4 * elements > ctx.maxTensorBytes) {
    throw new OpError(`${what}: a working buffer of ${elements} float32s is above the limit of ${ctx.maxTensorBytes} ` +
      `bytes per tensor (SimulatorOptions.maxTensorBytes)`, "SIM-TENSOR-TOO-LARGE")
  }
}
