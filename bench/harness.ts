/** Timing helpers shared by the benchmarks: medians of repeated runs, never a pass/fail threshold. */

/** Median wall time in nanoseconds of `fn` over `runs` runs of `inner` iterations each (after a warm-up). */
export const medianNs = (fn: () => void, runs = 15, inner = 1): number => {
  for (let i = 0; i < Math.max(3, inner); i++) fn()
  const samples: Array<number> = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < inner; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / inner)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)]!
}

/** Same as {@link medianNs} for async work. */
export const medianNsAsync = async (fn: () => Promise<void>, runs = 15, inner = 1): Promise<number> => {
  for (let i = 0; i < Math.max(3, inner); i++) await fn()
  const samples: Array<number> = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < inner; i++) await fn()
    samples.push(Number(process.hrtime.bigint() - t0) / inner)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)]!
}

const median = (xs: Array<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/**
 * Times `base` and each of `fns` in turn, `rounds` times over (each the median of `runs` consecutive runs, so caches
 * are as warm as in a tight loop), takes each ratio to `base` within its round and reports the median over rounds.
 * On a shared host a slow spell then slows both sides of a ratio instead of skewing it.
 */
export const roundRatios = <K extends string>(
  base: () => void,
  fns: Record<K, () => void>,
  rounds = 15,
  runs = 7
): { readonly baseNs: number; readonly ns: Record<K, number>; readonly ratio: Record<K, number> } => {
  const keys = Object.keys(fns) as Array<K>
  const baseTimes: Array<number> = []
  const times = new Map<K, Array<number>>(keys.map((k) => [k, []]))
  const ratios = new Map<K, Array<number>>(keys.map((k) => [k, []]))
  for (let r = 0; r < rounds; r++) {
    const b = medianNs(base, runs)
    baseTimes.push(b)
    for (const k of keys) {
      const t = medianNs(fns[k], runs)
      times.get(k)!.push(t)
      ratios.get(k)!.push(t / b)
    }
  }
  const pick = (m: Map<K, Array<number>>) => Object.fromEntries(keys.map((k) => [k, median(m.get(k)!)])) as Record<K, number>
  return { baseNs: median(baseTimes), ns: pick(times), ratio: pick(ratios) }
}

/** Rounds for printing. */
export const round = (x: number, digits = 3): number => Number(x.toFixed(digits))

/** Deterministic values in [-0.5, 0.5) (an LCG): the same inputs in every run and every bench. */
export const random = (n: number, seed: number): Float32Array => {
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 2 ** 32 - 0.5
  }
  return a
}
