/**
 * The simulator's timing model: a per-eval dispatch floor that overlaps between requests in flight (it is host and
 * driver time), plus the program's FLOPs over the chip's throughput, which queues on the one engine. Waiting is
 * deadline-based on a shared poller, so it neither blocks the event loop nor rounds up to timer granularity.
 */
import * as Effect from "effect/Effect"
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

/**
 * The modelled engine time of one eval of `flops` (ns): `fixedUs` when set, else FLOPs over the throughput. The
 * dispatch floor is host and driver time, so it is not part of it.
 */
export const executionNs = (chip: Chip, options: LatencyOptions, flops: number): number => {
  if (options.fixedUs !== undefined) return Math.round(options.fixedUs * 1000)
  const tflops = options.tflops ?? chipProfiles[options.chip ?? chip].tflops
  return Math.round(flops / (tflops * 1000))
}

interface Waiter {
  readonly at: number
  readonly resume: () => void
}

/**
 * One poller for every pending wait: waiters sorted by deadline, one wake-up armed for the earliest. Far deadlines
 * sleep on a timer (~1 ms granularity, so it is armed early); the last stretch checks once per event-loop turn, so
 * other work keeps running; a deadline only a few µs off is spun out, which saves a whole turn of lateness.
 */
const waiters: Array<Waiter> = []
let timer: ReturnType<typeof setTimeout> | undefined
let immediate: ReturnType<typeof setImmediate> | undefined
/** Deadline the armed timer is for (Infinity when none). */
let timerAt = Infinity
/** Remaining time (ms) above which a timer sleeps instead of per-turn checks; timers fire up to ~1 ms late. */
const TIMER_ABOVE_MS = 3
/** A timer is armed this much before its deadline. */
const TIMER_EARLY_MS = 2
/** Deadlines this close (ms) are spun out synchronously instead of costing another event-loop turn. */
const SPIN_MS = 0.012

const cancelTimer = (): void => {
  if (timer !== undefined) clearTimeout(timer)
  timer = undefined
  timerAt = Infinity
}

const tick = (): void => {
  timer = undefined
  timerAt = Infinity
  immediate = undefined
  if (waiters.length === 0) return
  let now = nowMs()
  const first = waiters[0]!.at
  if (first > now && first - now <= SPIN_MS) while ((now = nowMs()) < first);
  let due = 0
  while (due < waiters.length && waiters[due]!.at <= now) due++
  if (due > 0) {
    const ready = waiters.splice(0, due)
    for (let i = 0; i < ready.length; i++) ready[i]!.resume()
  }
  schedule()
}

const schedule = (): void => {
  if (waiters.length === 0) return cancelTimer()
  if (immediate !== undefined) return
  const first = waiters[0]!.at
  const remaining = first - nowMs()
  if (remaining > TIMER_ABOVE_MS) {
    if (timerAt <= first) return
    cancelTimer()
    timerAt = first
    timer = setTimeout(tick, Math.floor(remaining - TIMER_EARLY_MS))
    return
  }
  cancelTimer()
  immediate = setImmediate(tick)
}

const insert = (w: Waiter): void => {
  // Deadlines mostly arrive in increasing order: scan from the back.
  let i = waiters.length
  while (i > 0 && waiters[i - 1]!.at > w.at) i--
  if (i === waiters.length) waiters.push(w)
  else waiters.splice(i, 0, w)
}

/** Completes at `deadline` (ms, {@link nowMs} clock) without blocking the event loop; interruptible. */
export const waitUntil = (deadline: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (nowMs() >= deadline) return resume(Effect.void)
    const w: Waiter = { at: deadline, resume: () => resume(Effect.void) }
    insert(w)
    schedule()
    return Effect.sync(() => {
      const i = waiters.indexOf(w)
      if (i >= 0) waiters.splice(i, 1)
      if (waiters.length === 0) {
        cancelTimer()
        if (immediate !== undefined) clearImmediate(immediate)
        immediate = undefined
      }
    })
  })

/** Runs `work`, then waits out the deadline `clock` gives an eval of `flops` submitted when `work` started. */
export const withDeadline = <E>(
  work: Effect.Effect<void, E>,
  clock: EngineClock,
  flops: number
): Effect.Effect<void, E> =>
  Effect.suspend(() => {
    const start = nowMs()
    return Effect.flatMap(work, () => waitUntil(clock.deadline(start, flops)))
  })
