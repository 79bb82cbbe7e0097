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

/** Rounds for printing. */
export const round = (x: number, digits = 3): number => Number(x.toFixed(digits))
