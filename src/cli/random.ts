/** mulberry32: a small, fast, seedable PRNG; `unit` gives floats in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Deterministic uniform values in [-1, 1) (mulberry32). */
export const seededRandom = (seed: number): (() => number) => {
  const unit = mulberry32(seed)
  return () => unit() * 2 - 1
}
