/** Helpers shared by the shape and indexing rules: dtype sets, axis arguments, length checks. */
import type { OpContext, TensorArg } from "./context.js"
import { TypeCodes } from "./context.js"
import { normAxis } from "./types.js"

/** Data dtypes of the shape ops (iOS17 widths included). */
export const ANY: ReadonlySet<string> = new Set([
  "fp16", "fp32", "int32", "bool", "int8", "uint8", "int16", "uint16"
])
/** fp16, fp32, int32. */
export const FI: ReadonlySet<string> = new Set(["fp16", "fp32", "int32"])
/** Index dtypes. */
export const INDEX: ReadonlySet<string> = new Set(["int32", "int16", "uint16", "int8", "uint8"])

/** The rank of a tensor argument, when known. */
export const rankOf = (t: TensorArg | undefined): number | null => (t && t.type.shape !== null ? t.type.shape.length : null)

/** Normalises a constant axis of argument `name`, reporting an out-of-range one. */
export const axisArg = (ctx: OpContext, name: string, rank: number | null, fallback?: number): number | null => {
  const a = ctx.int(name)
  const v = a === undefined ? fallback : a
  if (v === undefined) {
    ctx.missing(name, "an int32 const")
    return null
  }
  if (v === null || rank === null) return null
  const n = normAxis(v, rank)
  if (n === null) {
    ctx.error(ctx.arg(name)?.pos ?? ctx.op.pos, `\`${name}\` expected in [${-rank}, ${rank - 1}] for rank ${rank}, ` +
      `found ${v}`)
  }
  return n
}

/** Reports a vector argument whose length is not the rank of x. */
export const lengthCheck = (ctx: OpContext, name: string, values: ReadonlyArray<unknown>, rank: number): boolean => {
  if (values.length === rank) return true
  ctx.error(ctx.arg(name)!.pos, `\`${name}\` expected ${rank} values (the rank of x), found ${values.length}`,
    TypeCodes.shapeMismatch)
  return false
}
