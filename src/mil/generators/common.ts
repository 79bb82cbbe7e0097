/** Shared pieces of the generators: argument checks, deterministic default weights, the causal mask. */
import type { Built, BuildOptions, Opset } from "../build.js"
import { InvalidArgumentError } from "../../schema/errors.js"

/** What every generator returns: MIL text, weight files (ready for `CompileOptions.mil`), the syntax tree and the
 * names, dtypes and shapes of the function's inputs and outputs. */
export type Generated = Built

/** Options every generator accepts. */
export interface CommonOptions {
  /** Printer layout; default `compact` (the Go generators' style C). */
  readonly style?: BuildOptions["style"]
  /** Function opset; default `ios18`. M1 Pro/Max reportedly want `program(1.0)` with ios16/ios17. */
  readonly opset?: Opset
  /** `program(<version>)`; default `1.3`. */
  readonly version?: string
}

/** The build options a generator passes on (`minOpset` for ops that need a newer one). */
export const buildOptions = (op: string, o: CommonOptions, minOpset: Opset = "ios15"): BuildOptions => {
  const order: ReadonlyArray<Opset> = ["ios15", "ios16", "ios17", "ios18"]
  const opset = o.opset ?? "ios18"
  needThat(op, "opset", order.indexOf(opset) >= order.indexOf(minOpset), `${minOpset} or later`, String(opset))
  return { style: o.style ?? "compact", opset, ...(o.version !== undefined ? { version: o.version } : {}) }
}

/** Fails (throws the typed error) unless `value` is an integer in [min, max]. */
export const needInt = (op: string, name: string, value: number, min = 1, max = Number.MAX_SAFE_INTEGER): number => {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError({
      op,
      argument: name,
      expected: max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in ${min}..${max}`,
      actual: String(value)
    })
  }
  return value
}

/** Fails unless `cond`; `expected`/`actual` describe the rule. */
export const needThat = (op: string, name: string, cond: boolean, expected: string, actual: string): void => {
  if (!cond) throw new InvalidArgumentError({ op, argument: name, expected, actual })
}

/**
 * The caller's weights (length checked), or a deterministic pseudo-random init of `n` values scaled by 1/√fanIn
 * (xorshift32 seeded by `seed`), so a generator can be compiled and timed without real weights.
 */
export const weightsOr = (
  op: string,
  name: string,
  given: ArrayLike<number> | undefined,
  n: number,
  fanIn: number,
  seed: number
): ArrayLike<number> => {
  if (given !== undefined) {
    needThat(op, name, given.length === n, `${n} values`, `${given.length} values`)
    for (let i = 0; i < given.length; i++) {
      if (!Number.isFinite(given[i]!)) needThat(op, `${name}[${i}]`, false, "a finite number", String(given[i]))
    }
    return given
  }
  const out = new Float32Array(n)
  let s = (seed * 2654435761) >>> 0 || 1
  const scale = 1 / Math.sqrt(fanIn)
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    out[i] = ((s / 4294967296) * 2 - 1) * scale
  }
  return out
}

/** fp16's most negative finite value: the additive mask for "never attend" (−∞ would turn a fully masked row into NaN). */
export const MASK_NEG = -65504

/** Row-major [seq, seq] additive causal mask: 0 where key ≤ query, {@link MASK_NEG} above the diagonal. */
export const causalMask = (seq: number): Float32Array => {
  const m = new Float32Array(seq * seq)
  for (let t = 0; t < seq; t++) for (let u = t + 1; u < seq; u++) m[t * seq + u] = MASK_NEG
  return m
}

/** Largest channel count the generators accept (channel axis limit, spec §7.3). */
export const MAX_CHANNELS = 65536
/** Largest spatial (innermost) extent the generators accept (16384 through A15, spec §7.3). */
export const MAX_SPATIAL = 16384
