/**
 * The simulator's timing model: a per-eval dispatch floor that overlaps between requests in flight (it is host and
 * driver time), plus the program's FLOPs over the chip's throughput, which queues on the one engine. Waiting is
 * deadline-based on a shared poller, so it neither blocks the event loop nor rounds up to timer granularity.
 */
import { Effect } from "effect"
import type { Chip } from "./layout.js"

/** Per-chip figures (spec/ane-field-facts.md §4.1 measured fp16 throughput, §4.2 dispatch floors). */
export interface ChipProfile {
  /** Per-eval dispatch floor, µs. */
  readonly dispatchUs: number
  /** Sustained fp16 throughput, TFLOP/s. */
  readonly tflops: number
  /** `_ANEDeviceInfo aneArchitectureType`-style name. */
  readonly architecture: string
  readonly product: string
}

/**
 * m1: ANEForge cost-model floor 220 µs and fit 3.25 TFLOP/s. m2: M2 Pro GEMM 3.4 TFLOP/s; floor interpolated (160).
 * m3: M3 Pro sp64 9.98 TFLOP/s; floor interpolated (120). m4: ~95 µs dispatch (maderix, rustane, Orion), M4 Max sp64
 * 10.93 TFLOP/s. m5: ANEForge cost model, 110 µs floor and 8.9 TFLOP/s.
 */
export const chipProfiles: Readonly<Record<Chip, ChipProfile>> = {
  m1: { dispatchUs: 220, tflops: 3.25, architecture: "h13", product: "simulated M1" },
  m2: { dispatchUs: 160, tflops: 3.4, architecture: "h14", product: "simulated M2" },
  m3: { dispatchUs: 120, tflops: 9.98, architecture: "h15", product: "simulated M3" },
  m4: { dispatchUs: 95, tflops: 10.93, architecture: "h16", product: "simulated M4" },
  m5: { dispatchUs: 110, tflops: 8.9, architecture: "h17", product: "simulated M5" }
}

/** Latency model options: dispatch floor and throughput default to the chip's; `fixedUs` replaces the whole model. */
export interface LatencyOptions {
  /** Per-eval dispatch floor in µs (overlaps between requests in flight). */
  readonly dispatchUs?: number
  /** When set, every eval takes exactly this long (no dispatch/FLOPs split, no queueing). */
  readonly fixedUs?: number
  /** Chip whose figures to use (default: the simulator's chip). */
  readonly chip?: Chip
  /** Throughput override, TFLOP/s. */
  readonly tflops?: number
}

/** Milliseconds on the monotonic clock. */
export const nowMs = (): number => performance.now()

/** One engine's queue: computes each eval's completion deadline. */
export class EngineClock {
  private freeAt = 0
  constructor(private readonly dispatchMs: number, private readonly msPerFlop: number, private readonly fixedMs?: number) {}
  /** Deadline (ms) of an eval of `flops` submitted at `start`. */
  deadline(start: number, flops: number): number {
    if (this.fixedMs !== undefined) return start + this.fixedMs
    const computeStart = Math.max(start + this.dispatchMs, this.freeAt)
    const done = computeStart + flops * this.msPerFlop
    this.freeAt = done
    return done
  }
  static make(chip: Chip, options: LatencyOptions): EngineClock {
    const p = chipProfiles[options.chip ?? chip]
    const tflops = options.tflops ?? p.tflops
    return new EngineClock((options.dispatchUs ?? p.dispatchUs) / 1000, 1 / (tflops * 1e9), options.fixedUs === undefined ? undefined : options.fixedUs / 1000)
  }
}

interface Waiter {
  readonly at: number
  readonly resume: () => void
}

const waiters: Array<Waiter> = []
/** The pending wake-up: a timer (far deadlines) or an immediate (the last stretch), and the time it targets. */
let timer: ReturnType<typeof setTimeout> | undefined
let immediate: ReturnType<typeof setImmediate> | undefined
let target = Infinity

const cancel = (): void => {
  if (timer !== undefined) clearTimeout(timer)
  if (immediate !== undefined) clearImmediate(immediate)
  timer = undefined
  immediate = undefined
  target = Infinity
}

const tick = (): void => {
  timer = undefined
  immediate = undefined
  target = Infinity
  const now = nowMs()
  let w = 0
  const due: Array<Waiter> = []
  for (let i = 0; i < waiters.length; i++) {
    const x = waiters[i]!
    if (x.at <= now) due.push(x)
    else waiters[w++] = x
  }
  waiters.length = w
  for (const x of due) x.resume()
  schedule()
}

const schedule = (): void => {
  if (waiters.length === 0) return cancel()
  let min = Infinity
  for (const x of waiters) if (x.at < min) min = x.at
  if (immediate !== undefined || min >= target) return
  cancel()
  target = min
  const remaining = min - nowMs()
  // Far deadlines sleep on a timer (coarse, ~1 ms); the last stretch polls once per event-loop turn.
  if (remaining > 3) timer = setTimeout(tick, Math.floor(remaining - 2))
  else immediate = setImmediate(tick)
}

/** Completes at `deadline` (ms, {@link nowMs} clock) without blocking the event loop; interruptible. */
export const waitUntil = (deadline: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (nowMs() >= deadline) return Effect.void
    return Effect.async<void>((resume) => {
      const w: Waiter = { at: deadline, resume: () => resume(Effect.void) }
      waiters.push(w)
      schedule()
      return Effect.sync(() => {
        const i = waiters.indexOf(w)
        if (i >= 0) waiters.splice(i, 1)
        if (waiters.length === 0) cancel()
      })
    })
  })
