/**
 * Worker threads for large GEMMs: each instantiates the GEMM modules over the same shared kernel memory and runs a
 * range of C's rows, woken through a shared control block (Atomics), so a product is split without copying.
 * Workers start on the first product large enough to pay for them, never keep the process alive (unref'd), and
 * stop when the last simulator holding them lets go ({@link retainGemmWorkers}).
 */
import { availableParallelism, cpus } from "node:os"
import { Worker } from "node:worker_threads"
import type { DriverExports, GemmModules } from "./gemm.js"

/** One product for {@link runSplit}: sizes in elements, pointers and strides in bytes of the kernel memory. */
export interface GemmJob {
  readonly M: number
  readonly N: number
  readonly K: number
  readonly a: number
  readonly lda: number
  readonly bp: number
  readonly c: number
  readonly ldc: number
  readonly accumulate: number
}

/** Multiply-adds below which a product stays on the calling thread: waking a worker costs tens of microseconds. */
export const SPLIT_MIN_WORK = 1 << 21

// Control block: SLOT int32 per worker.
const SLOT = 16
const SEQ = 0, READY = 1, DONE = 2, CMD = 3, ARGS = 4, FUSED = 14, ERR = 15
const MAX_WORKERS = 63

// The worker's whole program: plain JavaScript, so it runs the same from source, from dist and under test runners.
const workerSource = `
const { workerData } = require("node:worker_threads")
const { driver, tiles, fmaTiles, memory, control, slot, tile } = workerData
const env = { memory }
const make = (t) => new WebAssembly.Instance(driver, { env, kern: new WebAssembly.Instance(t, { env }).exports }).exports
const plain = make(tiles)
const fused = fmaTiles ? make(fmaTiles) : plain
const ctl = new Int32Array(control)
const base = slot * ${SLOT}
let seen = 0
Atomics.store(ctl, base + ${READY}, 1)
for (;;) {
  Atomics.wait(ctl, base + ${SEQ}, seen)
  const seq = Atomics.load(ctl, base + ${SEQ})
  if (seq === seen) continue
  seen = seq
  if (ctl[base + ${CMD}] === 1) break
  const a = base + ${ARGS}
  let err = 0
  try {
    (ctl[base + ${FUSED}] === 1 ? fused : plain).gemm_packed(
      ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8],
      ctl[a + 9], tile)
  } catch (e) {
    err = 1
  }
  ctl[base + ${ERR}] = err
  Atomics.store(ctl, base + ${DONE}, seq)
  Atomics.notify(ctl, base + ${DONE})
}
`

interface Slot {
  readonly worker: Worker
  readonly base: number
}

const defaultThreads = (): number => {
  try {
    return typeof availableParallelism === "function" ? availableParallelism() : cpus().length
  } catch {
    return 1
  }
}

let threads = Math.max(1, Math.min(MAX_WORKERS + 1, defaultThreads()))
let control: Int32Array | undefined
let slots: Array<Slot> = []
let holders = 0

/** Threads a large product is split across, the calling one included. */
export const gemmThreads = (): number => threads

/** Sets the threads a large product is split across (1: no workers); running workers beyond it are stopped. */
export const setGemmThreads = (n: number): number => {
  threads = Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_WORKERS + 1) : threads
  if (slots.length > threads - 1) terminateGemmWorkers()
  return threads
}

/** Worker threads running now (for tests and benchmarks). */
export const runningGemmWorkers = (): number => slots.length

/** Worker threads that have started and take work. */
export const readyGemmWorkers = (): number => {
  const ctl = control
  return ctl === undefined ? 0 : slots.filter((s) => Atomics.load(ctl, s.base + READY) === 1).length
}

let splits = 0
/** Products split across threads so far (for tests and benchmarks). */
export const splitProducts = (): number => splits

/** Stops every worker thread; later products start new ones (with a fresh control block) if needed. */
export const terminateGemmWorkers = (): void => {
  const ctl = control
  if (ctl !== undefined) {
    for (const s of slots) {
      Atomics.store(ctl, s.base + CMD, 1)
      Atomics.add(ctl, s.base + SEQ, 1)
      Atomics.notify(ctl, s.base + SEQ)
      void s.worker.terminate()
    }
  }
  slots = []
  control = undefined
}

/**
 * Takes a hold on the worker pool (optionally setting its thread count); the returned function lets go, and the
 * last one to let go stops the workers. Simulator instances hold it for their lifetime.
 */
export const retainGemmWorkers = (n?: number): (() => void) => {
  if (n !== undefined) setGemmThreads(n)
  holders++
  let held = true
  return () => {
    if (!held) return
    held = false
    holders--
    if (holders === 0) terminateGemmWorkers()
  }
}

const spawn = (modules: GemmModules, tileOf: (slot: number) => number): void => {
  if (control === undefined) {
    control = new Int32Array(new SharedArrayBuffer(SLOT * 4 * MAX_WORKERS))
  }
  while (slots.length < threads - 1) {
    const slot = slots.length
    const base = slot * SLOT
    let worker: Worker
    try {
      worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          driver: modules.driver, tiles: modules.tiles, fmaTiles: modules.fmaTiles, memory: modules.memory,
          control: control.buffer, slot, tile: tileOf(slot + 1)
        }
      })
    } catch {
      return // no threads here: products stay on the calling thread
    }
    worker.unref()
    // A worker that fails to start never reports ready and so is never given work.
    worker.on("error", () => {})
    slots.push({ worker, base })
  }
}

/**
 * Runs `job` with `ex` (gemm.wat over the shared memory), split by rows across the ready workers when it is large
 * enough; returns when every part is done. `modules` gives what a new worker instantiates.
 */
export const runSplit = (
  ex: DriverExports, fused: boolean, job: GemmJob, modules: () => GemmModules | undefined,
  tileOf: (slot: number) => number
): void => {
  const { M, N, K, a, lda, bp, c, ldc, accumulate } = job
  if (threads <= 1 || M < 8 || M * N * K < SPLIT_MIN_WORK) {
    ex.gemm_packed(0, M, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    return
  }
  if (slots.length < threads - 1) {
    const m = modules()
    if (m !== undefined) spawn(m, tileOf)
  }
  const ctl = control
  const ready = ctl === undefined ? [] : slots.filter((s) => Atomics.load(ctl, s.base + READY) === 1)
  if (ctl === undefined || ready.length === 0) {
    ex.gemm_packed(0, M, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    return
  }
  // Whole 4-row tiles per part; the caller takes the last part.
  const parts = ready.length + 1
  const chunk = Math.ceil(M / parts / 4) * 4
  const started: Array<readonly [Slot, number]> = []
  for (let w = 0; w < ready.length; w++) {
    const i0 = w * chunk
    const i1 = Math.min(M, i0 + chunk)
    if (i0 >= i1) break
    const s = ready[w]!
    const p = s.base + ARGS
    ctl[p] = i0; ctl[p + 1] = i1; ctl[p + 2] = N; ctl[p + 3] = K; ctl[p + 4] = a; ctl[p + 5] = lda
    ctl[p + 6] = bp; ctl[p + 7] = c; ctl[p + 8] = ldc; ctl[p + 9] = accumulate
    ctl[s.base + FUSED] = fused ? 1 : 0
    ctl[s.base + CMD] = 0
    const seq = (Atomics.load(ctl, s.base + SEQ) + 1) | 0
    Atomics.store(ctl, s.base + SEQ, seq)
    Atomics.notify(ctl, s.base + SEQ)
    started.push([s, seq])
  }
  splits++
  const mine = started.length * chunk
  if (mine < M) ex.gemm_packed(mine, M, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
  let failed = false
  for (const [s, seq] of started) {
    for (;;) {
      const done = Atomics.load(ctl, s.base + DONE)
      if (done === seq) break
      Atomics.wait(ctl, s.base + DONE, done, 1000)
    }
    if (ctl[s.base + ERR] !== 0) failed = true
  }
  if (failed) throw new Error("gemm: a worker thread failed its part of the product")
}
