/**
 * Worker threads for large GEMMs: each instantiates the GEMM modules over the same shared kernel memory, and every
 * thread of a product (the caller included) claims chunks of C's rows from a shared counter until none are left, so
 * a product is split without copying and a thread the OS does not run right now simply takes fewer chunks.
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

// Control block (int32): the job's sequence number, rows done, stop flag, error flag, its arguments, then one
// ready flag per worker. The claim word (int64, its own buffer) holds the sequence number of the job its rows
// belong to (high half) and the next unclaimed row (low half), so a worker that wakes late for a finished job can
// never take rows of the next one with arguments it read before.
const SEQ = 0, DONE = 1, STOP = 2, ERR = 3, ARGS = 4, READY = 16
const MAX_WORKERS = 63

// The worker's whole program: plain JavaScript, so it runs the same from source, from dist and under test runners.
const workerSource = `
const { workerData } = require("node:worker_threads")
const { driver, tiles, fmaTiles, memory, control, claim: claimBuffer, slot, tile } = workerData
const env = { memory }
const make = (t) => new WebAssembly.Instance(driver, { env, kern: new WebAssembly.Instance(t, { env }).exports }).exports
const plain = make(tiles)
const fused = fmaTiles ? make(fmaTiles) : plain
const ctl = new Int32Array(control)
const claim = new BigInt64Array(claimBuffer)
let seen = 0
Atomics.store(ctl, ${READY} + slot, 1)
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen)
  const seq = Atomics.load(ctl, ${SEQ})
  if (seq === seen) continue
  seen = seq
  if (Atomics.load(ctl, ${STOP}) === 1) break
  const a = ${ARGS}
  const M = ctl[a], N = ctl[a + 1], K = ctl[a + 2], A = ctl[a + 3], lda = ctl[a + 4], bp = ctl[a + 5]
  const C = ctl[a + 6], ldc = ctl[a + 7], acc = ctl[a + 8], ex = ctl[a + 9] === 1 ? fused : plain, parts = ctl[a + 10]
  const tag = BigInt(seq >>> 0) << 32n
  for (;;) {
    const cur = Atomics.load(claim, 0)
    if ((cur & ~0xffffffffn) !== tag) break
    const i0 = Number(cur & 0xffffffffn)
    if (i0 >= M) break
    const i1 = Math.min(M, i0 + Math.max(6, Math.ceil((M - i0) / parts / 6) * 6))
    if (Atomics.compareExchange(claim, 0, cur, tag | BigInt(i1)) !== cur) continue
    try {
      ex.gemm_packed(i0, i1, N, K, A, lda, bp, C, ldc, acc, tile)
    } catch (e) {
      Atomics.store(ctl, ${ERR}, 1)
    }
    if (Atomics.add(ctl, ${DONE}, i1 - i0) + (i1 - i0) === M) Atomics.notify(ctl, ${DONE})
  }
}
`

const defaultThreads = (): number => {
  try {
    return typeof availableParallelism === "function" ? availableParallelism() : cpus().length
  } catch {
    return 1
  }
}

let threads = Math.max(1, Math.min(MAX_WORKERS + 1, defaultThreads()))
let control: Int32Array | undefined
let claim: BigInt64Array | undefined
let workers: Array<Worker> = []
let holders = 0
let splits = 0

/** Threads a large product is split across, the calling one included. */
export const gemmThreads = (): number => threads

/** Sets the threads a large product is split across (1: no workers); running workers beyond it are stopped. */
export const setGemmThreads = (n: number): number => {
  threads = Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_WORKERS + 1) : threads
  if (workers.length > threads - 1) terminateGemmWorkers()
  return threads
}

/** Worker threads running now (for tests and benchmarks). */
export const runningGemmWorkers = (): number => workers.length

/** Worker threads that have started and take work. */
export const readyGemmWorkers = (): number => {
  const ctl = control
  if (ctl === undefined) return 0
  let n = 0
  for (let w = 0; w < workers.length; w++) n += Atomics.load(ctl, READY + w)
  return n
}

/** Products split across threads so far (for tests and benchmarks). */
export const splitProducts = (): number => splits

/** Stops every worker thread; later products start new ones (with a fresh control block) if needed. */
export const terminateGemmWorkers = (): void => {
  const ctl = control
  if (ctl !== undefined && workers.length > 0) {
    Atomics.store(ctl, STOP, 1)
    Atomics.add(ctl, SEQ, 1)
    Atomics.notify(ctl, SEQ)
    for (const w of workers) void w.terminate()
  }
  workers = []
  control = undefined
  claim = undefined
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
  if (control === undefined || claim === undefined) {
    control = new Int32Array(new SharedArrayBuffer((READY + MAX_WORKERS) * 4))
    claim = new BigInt64Array(new SharedArrayBuffer(8))
  }
  while (workers.length < threads - 1) {
    const slot = workers.length
    let worker: Worker
    try {
      worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          driver: modules.driver, tiles: modules.tiles, fmaTiles: modules.fmaTiles, memory: modules.memory,
          control: control.buffer, claim: claim.buffer, slot, tile: tileOf(slot + 1)
        }
      })
    } catch {
      return // no threads here: products stay on the calling thread
    }
    worker.unref()
    // A worker that fails to start never reports ready and so is never woken for work.
    worker.on("error", () => {})
    workers.push(worker)
  }
}

/**
 * Runs `job` with `ex` (gemm.wat over the shared memory), split by chunks of rows across the caller and the ready
 * workers when it is large enough; returns when every row is done. `modules` gives what a new worker instantiates.
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
  if (workers.length < threads - 1) {
    const m = modules()
    if (m !== undefined) spawn(m, tileOf)
  }
  const ctl = control, cl = claim
  if (ctl === undefined || cl === undefined || readyGemmWorkers() === 0) {
    ex.gemm_packed(0, M, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    return
  }
  splits++
  // Each claim takes 1/parts of the rows left, in whole 6-row tiles: at most about an eighth of a thread's share,
  // so a slow thread holds up little, and chunks shrink towards the end so the threads finish together.
  const parts = threads * 8
  const seq = (Atomics.load(ctl, SEQ) + 1) | 0
  const tag = BigInt(seq >>> 0) << 32n
  const p = ARGS
  ctl[p] = M; ctl[p + 1] = N; ctl[p + 2] = K; ctl[p + 3] = a; ctl[p + 4] = lda; ctl[p + 5] = bp
  ctl[p + 6] = c; ctl[p + 7] = ldc; ctl[p + 8] = accumulate; ctl[p + 9] = fused ? 1 : 0; ctl[p + 10] = parts
  Atomics.store(ctl, ERR, 0)
  Atomics.store(ctl, DONE, 0)
  Atomics.store(cl, 0, tag)
  Atomics.store(ctl, SEQ, seq)
  Atomics.notify(ctl, SEQ)
  for (;;) {
    const cur = Atomics.load(cl, 0)
    const i0 = Number(cur & 0xffffffffn)
    if (i0 >= M) break
    const i1 = Math.min(M, i0 + Math.max(6, Math.ceil((M - i0) / parts / 6) * 6))
    if (Atomics.compareExchange(cl, 0, cur, tag | BigInt(i1)) !== cur) continue
    ex.gemm_packed(i0, i1, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    Atomics.add(ctl, DONE, i1 - i0)
  }
  for (;;) {
    const done = Atomics.load(ctl, DONE)
    if (done === M) break
    Atomics.wait(ctl, DONE, done, 1000)
  }
  if (Atomics.load(ctl, ERR) !== 0) throw new Error("gemm: a worker thread failed its part of the product")
}
