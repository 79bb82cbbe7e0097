/**
 * Batched matrix product `y = a·b` on `[1, batch, rows, cols]` tensors, with `b` either a second input or const
 * weights baked into a blob. Supported sizes: batch 1..64, m, k, n in 1..4096 (the largest dynamic extent reported to
 * work: spec §7.3). With two inputs the engine wants equal input surface sizes (validator rule ANE004), i.e.
 * m·⌈2k/64⌉ = k·⌈2n/64⌉ (e.g. m = k = n); other sizes are refused, pass `weights` or pad instead.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, needInt, needThat, weightsOr } from "./common.js"

/** Options of {@link matmul}. */
export interface MatmulOptions extends CommonOptions {
  readonly m: number
  readonly k: number
  readonly n: number
  /** Independent products (dim 1); default 1. */
  readonly batch?: number
  /** Const right operand, row-major [batch][k][n]; `true` uses the deterministic init. Absent: input `b`. */
  readonly weights?: ArrayLike<number> | true
}

/** Sizes {@link matmul} accepts. */
export const MATMUL_LIMITS = { batch: 64, m: 4096, k: 4096, n: 4096 } as const

const rowBytes = (width: number) => Math.ceil((2 * width) / 64) * 64

/** Input `a: [1, batch, m, k]` (and `b: [1, batch, k, n]` unless `weights`) → `y: [1, batch, m, n]`. */
export const matmul = (o: MatmulOptions): Generated => {
  const op = "Generators.matmul"
  const batch = needInt(op, "batch", o.batch ?? 1, 1, MATMUL_LIMITS.batch)
  const m = needInt(op, "m", o.m, 1, MATMUL_LIMITS.m)
  const k = needInt(op, "k", o.k, 1, MATMUL_LIMITS.k)
  const n = needInt(op, "n", o.n, 1, MATMUL_LIMITS.n)
  const weights = o.weights === undefined
    ? undefined
    : weightsOr(op, "weights", o.weights === true ? undefined : o.weights, batch * k * n, k, 71)
  if (weights === undefined) {
    needThat(op, "m, k, n", m * rowBytes(k) === k * rowBytes(n),
      "equal surface sizes for a and b (m·⌈2k/64⌉ = k·⌈2n/64⌉, e.g. m = k = n)", `a: ${m * rowBytes(k)} bytes per batch, b: ${k * rowBytes(n)}`)
  }
  return buildSync(buildOptions(op, o), (b) => {
    const a = b.input("a", "fp16", [1, batch, m, k])
    const right = weights === undefined
      ? b.input("b", "fp16", [1, batch, k, n])
      : b.const(weights, [1, batch, k, n], { name: "B", file: "@model_path/weights/weight.bin" })
    return { y: b.matmul(a, right, { name: "mm" }) }
  })
}
