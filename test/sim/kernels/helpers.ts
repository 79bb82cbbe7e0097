/** Shared test helpers for the kernel suites: seeded data, float64 index helpers and error-bound assertions. */
import { Either } from "effect"
import { expect } from "vitest"

/** fp32 unit roundoff (2^-24). */
export const U = 2 ** -24

/** Deterministic uniform data in [lo, hi), exactly representable in fp32. */
export const rand = (n: number, seed: number, lo = -1, hi = 1): Float32Array => {
  const a = new Float32Array(n)
  let s = (seed * 2654435761) >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = lo + (hi - lo) * (s / 2 ** 32)
  }
  return a
}

/** Unwraps a plan, failing the test with the typed error's message. */
export const ok = <A, E>(e: Either.Either<A, E>): A => {
  if (Either.isLeft(e)) throw new Error(`unexpected failure: ${String((e.left as { message?: string }).message ?? e.left)}`)
  return e.right
}

/** Unwraps the error of a plan that must fail. */
export const fails = <A, E>(e: Either.Either<A, E>): E => {
  if (Either.isRight(e)) throw new Error("expected a failure, got a plan")
  return e.left
}

/**
 * Checks got[i] against a float64 reference with a per-element bound: |got − ref| ≤ bound[i]. For a sum of K
 * terms accumulated in fp32 (one rounding per product and per addition) the bound is (K + 2)·u·Σ|termᵢ|
 * (the classic γ_K bound plus the final store), see `sumBound`.
 */
export const expectWithin = (
  got: ArrayLike<number>, ref: ArrayLike<number>, bound: ArrayLike<number> | number, what = "value"
): void => {
  expect(got.length).toBe(ref.length)
  for (let i = 0; i < ref.length; i++) {
    const b = typeof bound === "number" ? bound : bound[i]!
    const g = got[i]!, r = ref[i]!
    if (Object.is(g, r)) continue
    if (!(Math.abs(g - r) <= b)) {
      throw new Error(`${what}[${i}]: got ${g}, reference ${r}, allowed error ${b}`)
    }
  }
}

/** Error bound of an fp32 sequential sum of `k` rounded terms whose magnitudes sum to `absSum`. */
export const sumBound = (k: number, absSum: number): number => (k + 2) * U * absSum + 1e-37

/** Relative bound for a single fp32 rounding of a float64 value (plus an absolute floor for tiny values). */
export const oneRounding = (ref: ArrayLike<number>, floor = 1e-37): Array<number> =>
  Array.from(ref, (r) => U * Math.abs(r) * 1.0000001 + floor)
