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
  /** Int32 per row of C: a finished chunk [i0, i1) stores i1 at i0, so the caller copies C out as rows finish. */
  readonly flags: number
}

/** B to pack before a product's rows (gemm.wat's pack_b arguments): its threads pack it in parallel. */
export interface PackJob {
  readonly b: number
  readonly sk: number
  readonly sn: number
  readonly K: number
  readonly N: number
  readonly dst: number
}

// Packing is split into units of one 512-row block of k by PACK_COLS columns, each a pack_b call of its own that
// writes exactly the floats the whole call would.
const PACK_COLS = 64
const KC = 512

/** Multiply-adds below which a product stays on the calling thread: waking a worker costs tens of microseconds. */
export const SPLIT_MIN_WORK = 1 << 21

// Control block (int32): the job's sequence number, rows done, stop flag, error flag, pack units done (plus one
// once the caller has copied A in), its arguments, then one ready flag per worker. The claim words (int64, their
// own buffer) hold the sequence number of the job their rows (word 0) or pack units (word 1) belong to (high half)
// and the next unclaimed one (low half), so a worker that wakes late for a finished job can never take work of
// the next one with arguments it read before.
const SEQ = 0, DONE = 1, STOP = 2, ERR = 3, PREP = 4, ARGS = 5, READY = 32
const MAX_WORKERS = 63
/** How long a worker (or the caller waiting for the last rows) spins before it sleeps on a futex. */
const SPIN_MS = 0.2

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
let i32 = new Int32Array(memory.buffer)
Atomics.store(ctl, ${READY} + slot, 1)
for (;;) {
  // Products often come back to back (the ops of one evaluation): spin a little before sleeping, since waking
  // from a wait costs tens of microseconds.
  const until = performance.now() + ${SPIN_MS}
  for (let n = 0; Atomics.load(ctl, ${SEQ}) === seen; n++) {
    if ((n & 255) === 255 && performance.now() > until) {
      Atomics.wait(ctl, ${SEQ}, seen)
      break
    }
  }
  const seq = Atomics.load(ctl, ${SEQ})
  if (seq === seen) continue
  seen = seq
  if (Atomics.load(ctl, ${STOP}) === 1) break
  const a = ${ARGS}
  const M = ctl[a], N = ctl[a + 1], K = ctl[a + 2], A = ctl[a + 3], lda = ctl[a + 4], bp = ctl[a + 5]
  const C = ctl[a + 6], ldc = ctl[a + 7], acc = ctl[a + 8], ex = ctl[a + 9] === 1 ? fused : plain, parts = ctl[a + 10]
  const units = ctl[a + 11], pb = ctl[a + 12], sk = ctl[a + 13], sn = ctl[a + 14], pdst = ctl[a + 15]
  const flags = ctl[a + 16] >>> 2
  if (i32.length * 4 !== memory.buffer.byteLength) i32 = new Int32Array(memory.buffer)
  const tag = BigInt(seq >>> 0) << 32n
  const groups = Math.ceil(N / ${PACK_COLS}), n8 = (N + 7) & ~7
  for (;;) {
    const cur = Atomics.load(claim, 1)
    if ((cur & ~0xffffffffn) !== tag) break
    const u = Number(cur & 0xffffffffn)
    if (u >= units) break
    if (Atomics.compareExchange(claim, 1, cur, cur + 1n) !== cur) continue
    const k0 = Math.floor(u / groups) * ${KC}, j0 = (u % groups) * ${PACK_COLS}, kc = Math.min(${KC}, K - k0)
    try {
      plain.pack_b(pb + k0 * sk + j0 * sn, sk, sn, kc, Math.min(${PACK_COLS}, N - j0), pdst + (k0 * n8 + j0 * kc) * 4)
    } catch (e) {
      Atomics.store(ctl, ${ERR}, 1)
    }
    Atomics.add(ctl, ${PREP}, 1)
  }
  // Rows start once B is packed and the caller has copied A in (or the job is over: its tag is gone).
  while (Atomics.load(ctl, ${PREP}) < units + 1 && (Atomics.load(claim, 0) & ~0xffffffffn) === tag) {}
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
    Atomics.store(i32, flags + i0, i1)
    Atomics.add(ctl, ${DONE}, i1 - i0)
    Atomics.notify(ctl, ${DONE})
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
    claim = new BigInt64Array(new SharedArrayBuffer(16))
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

const packUnit = (ex: DriverExports, p: PackJob, u: number): void => {
  const groups = Math.ceil(p.N / PACK_COLS), n8 = (p.N + 7) & ~7
  const k0 = Math.floor(u / groups) * KC, j0 = (u % groups) * PACK_COLS, kc = Math.min(KC, p.K - k0)
  ex.pack_b(p.b + k0 * p.sk + j0 * p.sn, p.sk, p.sn, kc, Math.min(PACK_COLS, p.N - j0), p.dst + (k0 * n8 + j0 * kc) * 4)
}

/**
 * Runs `job` with `ex` (gemm.wat over the shared memory), split by chunks of rows across the caller and the ready
 * workers when it is large enough; returns when every row is done. `prepare` (copying A in) runs on the caller
 * first, while the workers wake and pack `pack` (if given) in parallel; rows start once both are done.
 * `modules` gives what a new worker instantiates.
 */
export const runSplit = (
  ex: DriverExports, fused: boolean, job: GemmJob, modules: () => GemmModules | undefined,
  tileOf: (slot: number) => number, prepare: () => void, finish: (i0: number, i1: number) => void, pack?: PackJob
): void => {
  const { M, N, K, a, lda, bp, c, ldc, accumulate } = job
  const alone = () => {
    prepare()
    if (pack !== undefined) ex.pack_b(pack.b, pack.sk, pack.sn, pack.K, pack.N, pack.dst)
    ex.gemm_packed(0, M, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    finish(0, M)
  }
  if (threads <= 1 || M < 8 || M * N * K < SPLIT_MIN_WORK) return alone()
  if (workers.length < threads - 1) {
    const m = modules()
    if (m !== undefined) spawn(m, tileOf)
  }
  const ctl = control, cl = claim, mem = modules()?.memory
  if (ctl === undefined || cl === undefined || mem === undefined || readyGemmWorkers() === 0) return alone()
  splits++
  // Each claim takes 1/parts of the rows left, in whole 6-row tiles: at most about an eighth of a thread's share,
  // so a slow thread holds up little, and chunks shrink towards the end so the threads finish together.
  const parts = threads * 8
  const units = pack === undefined ? 0 : Math.ceil(pack.K / KC) * Math.ceil(pack.N / PACK_COLS)
  const seq = (Atomics.load(ctl, SEQ) + 1) | 0
  const tag = BigInt(seq >>> 0) << 32n
  const p = ARGS
  ctl[p] = M; ctl[p + 1] = N; ctl[p + 2] = K; ctl[p + 3] = a; ctl[p + 4] = lda; ctl[p + 5] = bp
  ctl[p + 6] = c; ctl[p + 7] = ldc; ctl[p + 8] = accumulate; ctl[p + 9] = fused ? 1 : 0; ctl[p + 10] = parts
  ctl[p + 11] = units; ctl[p + 12] = pack?.b ?? 0; ctl[p + 13] = pack?.sk ?? 0; ctl[p + 14] = pack?.sn ?? 0
  ctl[p + 15] = pack?.dst ?? 0; ctl[p + 16] = job.flags
  const i32 = new Int32Array(mem.buffer)
  const flags = job.flags >>> 2
  i32.fill(0, flags, flags + M)
  Atomics.store(ctl, ERR, 0)
  Atomics.store(ctl, DONE, 0)
  Atomics.store(ctl, PREP, 0)
  Atomics.store(cl, 1, tag)
  Atomics.store(cl, 0, tag)
  Atomics.store(ctl, SEQ, seq)
  Atomics.notify(ctl, SEQ)
  // The protocol runs to its end even if copying A in fails, so no worker is left on this job's rows.
  let failure: unknown = undefined
  try {
    prepare()
  } catch (e) {
    failure = e ?? new Error("gemm: copying the operands in failed")
  }
  Atomics.add(ctl, PREP, 1)
  if (pack !== undefined) {
    for (;;) {
      const cur = Atomics.load(cl, 1)
      const u = Number(cur & 0xffffffffn)
      if (u >= units) break
      if (Atomics.compareExchange(cl, 1, cur, cur + 1n) !== cur) continue
      try {
        packUnit(ex, pack, u)
      } catch (e) {
        failure ??= e ?? new Error("gemm: packing B failed")
      }
      Atomics.add(ctl, PREP, 1)
    }
    while (Atomics.load(ctl, PREP) < units + 1) { /* the last units are being packed by workers */ }
  }
  // C goes out in row order as chunks finish: between the caller's own chunks, then while it waits for the last.
  let out = 0
  const drain = () => {
    for (let end = Atomics.load(i32, flags + out); out < M && end > out; end = Atomics.load(i32, flags + out)) {
      finish(out, end)
      out = end
    }
  }
  for (;;) {
    const cur = Atomics.load(cl, 0)
    const i0 = Number(cur & 0xffffffffn)
    if (i0 >= M) break
    const i1 = Math.min(M, i0 + Math.max(6, Math.ceil((M - i0) / parts / 6) * 6))
    if (Atomics.compareExchange(cl, 0, cur, tag | BigInt(i1)) !== cur) continue
    ex.gemm_packed(i0, i1, N, K, a, lda, bp, c, ldc, accumulate, tileOf(0))
    Atomics.store(i32, flags + i0, i1)
    Atomics.add(ctl, DONE, i1 - i0)
    drain()
  }
  // The last rows are at most a chunk away: spin for them a while rather than pay a futex wake-up.
  const until = performance.now() + SPIN_MS
  for (let n = 0; ; n++) {
    const done = Atomics.load(ctl, DONE)
    drain()
    if (out >= M) break
    if ((n & 255) === 255 && performance.now() > until) Atomics.wait(ctl, DONE, done, 1000)
  }
  if (failure !== undefined) throw failure
  if (Atomics.load(ctl, ERR) !== 0) throw new Error("gemm: a worker thread failed its part of the product")
}
