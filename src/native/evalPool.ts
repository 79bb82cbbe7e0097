/**
 * The library's own threads for blocking native work (asynchronous evaluations, shared-event waits): a small pool
 * of Node `worker_threads`, each loading koffi and the frameworks itself. Never libuv's pool: koffi's `.async` runs
 * there (4 threads shared with fs, dns and crypto, a 128 KiB stack, no autorelease pool), so a few waits could
 * starve Node and every NSError made there leaked. Object ids cross threads as numbers; nothing else is shared.
 */
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import * as Effect from "effect/Effect"
import type { NSErrorInfo, ObjcPaths, Signature } from "./objc.js"

/** One message for a worker to send: receiver and arguments as plain values (ids are bigints). */
export interface PoolCall {
  readonly receiver: bigint
  readonly selector: string
  /** The cast, written as in objc.ts; an `err` last argument is supplied by the worker, not passed here. */
  readonly signature: Signature
  readonly args: ReadonlyArray<bigint | number | boolean | null>
}

/** What a list of `…error:` calls came to: the first YES, or the last NO with its NSError (read before the pop). */
export type CallsOutcome =
  | { readonly ok: true; readonly selector: string }
  | { readonly ok: false; readonly selector: string; readonly error: NSErrorInfo | undefined }
  | { readonly ok: false; readonly selector: string; readonly thrown: string }

/** Options of {@link makeEvalPool}. */
export interface EvalPoolOptions {
  readonly paths: ObjcPaths
  /** Threads at most (default {@link DEFAULT_EVAL_THREADS}). */
  readonly threads?: number
  /** Longest single blocking wait a thread makes before it checks back (default {@link WAIT_SLICE_MS}). */
  readonly waitSliceMs?: number
}

/** Enough threads for a depth-8 pipeline. */
export const DEFAULT_EVAL_THREADS = 8

/** Waits block in slices this long, so an interrupt or a shutdown is honoured within a few milliseconds. */
export const WAIT_SLICE_MS = 5

/**
 * Each worker thread's stack. The framework's evaluate path, its XPC call and the building of a localized NSError
 * run deeper than koffi's 128 KiB async stack allows; Node sizes a worker's native thread stack from this limit.
 */
export const WORKER_STACK_MB = 4

/** The pool: work is queued and handed to idle threads in order. */
export interface EvalPool {
  /** Sends `calls` in order on a pool thread until one answers YES; never fails (the outcome says). */
  readonly run: (calls: ReadonlyArray<PoolCall>) => Effect.Effect<CallsOutcome>
  /**
   * Sends the calls like {@link run}, and calls `done` exactly once when the thread is through (or at once when
   * `cancel` runs before a thread took the job). `cancel` answers whether the job was withdrawn unstarted.
   */
  readonly submit: (calls: ReadonlyArray<PoolCall>, done: (outcome: CallsOutcome | undefined) => void) => { readonly cancel: () => boolean }
  /**
   * `-waitUntilSignaledValue:timeoutMS:` on `event` in slices of at most `waitSliceMs`, each on a pool thread,
   * until `value` is reached (true) or `timeoutMs` passes (false). Interrupting it stops after the current slice.
   * `settled` runs once when no slice uses `event` any more (after the result, or after an interrupt's last slice).
   */
  readonly wait: (event: bigint, value: bigint, timeoutMs: number, settled?: () => void) => Effect.Effect<boolean>
  /** Threads started, jobs running now, the most that ever ran at once. */
  readonly stats: () => { readonly threads: number; readonly running: number; readonly runningMax: number }
  /** Waits for running jobs (bounded), drops queued ones and ends every thread. Idempotent, never fails. */
  readonly close: Effect.Effect<void>
}

// Plain JavaScript, run with `eval: true` so it needs no loader for TypeScript; it mirrors objc.ts's casts.
const WORKER_SOURCE = String.raw`
"use strict"
const { parentPort, workerData } = require("node:worker_threads")
const koffi = require(workerData.koffi)
const paths = workerData.paths
const load = (path) => koffi.load(path, { global: true })
const objc = load(paths.objc)
load(paths.foundation)
load(paths.coreFoundation)
load(paths.ioSurface)
load(paths.ane)
const TYPES = { void: "void", id: "void *", SEL: "void *", ptr: "void *", err: "void *", str: "const char *", bool: "bool",
  int8: "int8_t", int32: "int32_t", uint32: "uint32_t", int64: "int64_t", uint64: "uint64_t" }
const selFn = objc.func("sel_registerName", "void *", ["const char *"])
const push = objc.func("objc_autoreleasePoolPush", "void *", [])
const pop = objc.func("objc_autoreleasePoolPop", "void", ["void *"])
const sels = new Map()
const casts = new Map()
const sel = (name) => {
  let s = sels.get(name)
  if (s === undefined) { s = selFn(name); sels.set(name, s) }
  return s
}
const cast = (signature) => {
  let fn = casts.get(signature)
  if (fn === undefined) {
    const m = /^(\w+)\(([\w,]*)\)$/.exec(signature)
    if (m === null || !(m[1] in TYPES)) throw new TypeError("bad message signature " + signature)
    const args = m[2] === "" ? [] : m[2].split(",")
    for (const a of args) if (!(a in TYPES)) throw new TypeError("bad C type " + a + " in " + signature)
    fn = objc.func("objc_msgSend", TYPES[m[1]], ["void *", "void *", ...args.map((a) => TYPES[a])])
    casts.set(signature, fn)
  }
  return fn
}
const send = (receiver, selector, signature, args) => cast(signature)(receiver, sel(selector), ...args)
const isNil = (p) => p === null || p === undefined || p === 0n || p === 0
const text = (o) => {
  if (isNil(o)) return ""
  const s = send(o, "UTF8String", "str()", [])
  return typeof s === "string" ? s : ""
}
const nsError = (e) => ({
  domain: text(send(e, "domain", "id()", [])),
  code: Number(send(e, "code", "int64()", [])),
  description: text(send(e, "localizedDescription", "id()", []))
})
const runCalls = (calls) => {
  let last
  for (const call of calls) {
    const slot = new BigUint64Array(1)
    // One pool per message: the NSError is read before its pool pops.
    const pool = push()
    try {
      const ok = Boolean(send(call.receiver, call.selector, call.signature, [...call.args, slot]))
      if (ok) return { ok: true, selector: call.selector }
      last = { ok: false, selector: call.selector, error: slot[0] !== 0n ? nsError(slot[0]) : undefined }
    } finally {
      pop(pool)
    }
  }
  return last
}
const runWait = (job) => {
  const pool = push()
  try {
    return { reached: Boolean(send(job.event, "waitUntilSignaledValue:timeoutMS:", "bool(uint64,uint64)", [job.value, job.sliceMs])) }
  } finally {
    pop(pool)
  }
}
parentPort.on("message", (job) => {
  let result
  try {
    result = job.kind === "wait" ? runWait(job) : runCalls(job.calls)
  } catch (cause) {
    result = { thrown: cause instanceof Error ? cause.message : String(cause) }
  }
  parentPort.postMessage({ id: job.id, result })
})
parentPort.postMessage({ ready: true })
`

type Job =
  | { readonly kind: "calls"; readonly calls: ReadonlyArray<PoolCall> }
  | { readonly kind: "wait"; readonly event: bigint; readonly value: bigint; readonly sliceMs: number }

type JobResult = { readonly ok: boolean; readonly selector?: string; readonly error?: NSErrorInfo } | { readonly reached: boolean } | {
  readonly thrown: string
}

interface Pending {
  readonly id: number
  readonly job: Job
  readonly done: (result: JobResult | undefined) => void
}

interface Thread {
  readonly worker: Worker
  current: Pending | undefined
}

const koffiPath = (): string => createRequire(import.meta.url).resolve("koffi")

/** Starts no thread until work arrives; threads stay until {@link EvalPool.close}. */
export const makeEvalPool = (options: EvalPoolOptions): EvalPool => {
  const size = Math.max(1, Math.trunc(options.threads ?? DEFAULT_EVAL_THREADS))
  const sliceMs = Math.max(1, Math.trunc(options.waitSliceMs ?? WAIT_SLICE_MS))
  const threads: Array<Thread> = []
  const queue: Array<Pending> = []
  let nextId = 1
  let running = 0
  let runningMax = 0
  let closed = false
  const idleWaiters: Array<() => void> = []

  const settleIdle = () => {
    if (running === 0) for (const w of idleWaiters.splice(0)) w()
  }

  const finish = (thread: Thread, result: JobResult | undefined) => {
    const job = thread.current
    thread.current = undefined
    running--
    // An idle thread must not keep Node alive; a busy one must (see `assign`).
    thread.worker.unref()
    pump()
    settleIdle()
    job?.done(result)
  }

  const spawn = (): Thread => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The source is CommonJS: the parent's flags (`--input-type=module`, loaders) must not change how it runs.
      execArgv: [],
      workerData: { koffi: koffiPath(), paths: { ...options.paths } },
      resourceLimits: { stackSizeMb: WORKER_STACK_MB },
      stdout: false,
      stderr: false
    })
    const thread: Thread = { worker, current: undefined }
    worker.on("message", (message: { readonly id?: number; readonly result?: JobResult }) => {
      if (message.id !== undefined && thread.current?.id === message.id) finish(thread, message.result)
    })
    const lost = (cause: unknown) => {
      const index = threads.indexOf(thread)
      if (index >= 0) threads.splice(index, 1)
      if (thread.current !== undefined) finish(thread, { thrown: `eval thread ended: ${cause instanceof Error ? cause.message : String(cause)}` })
    }
    worker.on("error", lost)
    worker.on("exit", (code) => lost(`exit code ${code}`))
    worker.unref()
    threads.push(thread)
    return thread
  }

  const assign = (thread: Thread, pending: Pending) => {
    thread.current = pending
    running++
    if (running > runningMax) runningMax = running
    thread.worker.ref()
    thread.worker.postMessage({ id: pending.id, ...pending.job })
  }

  const pump = () => {
    while (queue.length > 0 && !closed) {
      let thread = threads.find((t) => t.current === undefined)
      if (thread === undefined) {
        if (threads.length >= size) return
        thread = spawn()
      }
      assign(thread, queue.shift()!)
    }
  }

  const enqueue = (job: Job, done: (result: JobResult | undefined) => void) => {
    const pending: Pending = { id: nextId++, job, done }
    if (closed) {
      done({ thrown: "the eval thread pool is closed" })
      return { cancel: () => false }
    }
    queue.push(pending)
    pump()
    return {
      cancel: () => {
        const index = queue.indexOf(pending)
        if (index < 0) return false
        queue.splice(index, 1)
        done(undefined)
        return true
      }
    }
  }

  const outcome = (calls: ReadonlyArray<PoolCall>, result: JobResult | undefined): CallsOutcome => {
    const selector = calls[calls.length - 1]?.selector ?? ""
    if (result === undefined) return { ok: false, selector, thrown: "withdrawn before it started" }
    if ("thrown" in result) return { ok: false, selector, thrown: result.thrown }
    if ("reached" in result) return { ok: false, selector, thrown: "unexpected answer" }
    return result.ok
      ? { ok: true, selector: result.selector ?? selector }
      : { ok: false, selector: result.selector ?? selector, error: result.error }
  }

  const submit: EvalPool["submit"] = (calls, done) => enqueue({ kind: "calls", calls }, (r) => done(r === undefined ? undefined : outcome(calls, r)))

  const run: EvalPool["run"] = (calls) =>
    Effect.async<CallsOutcome>((resume) => {
      const { cancel } = submit(calls, (o) => resume(Effect.succeed(o ?? outcome(calls, undefined))))
      return Effect.sync(() => void cancel())
    })

  const wait: EvalPool["wait"] = (event, value, timeoutMs, settled = () => undefined) =>
    Effect.async<boolean>((resume) => {
      const deadline = Date.now() + Math.max(0, timeoutMs)
      let stopped = false
      let current: { readonly cancel: () => boolean } | undefined
      const end = (reached: boolean) => {
        settled()
        resume(Effect.succeed(reached))
      }
      const slice = () => {
        const left = deadline - Date.now()
        current = enqueue({ kind: "wait", event, value, sliceMs: Math.max(0, Math.min(sliceMs, left)) }, (r) => {
          current = undefined
          if (stopped) return settled()
          if (r !== undefined && "reached" in r && r.reached) return end(true)
          if (r === undefined || "thrown" in r || Date.now() >= deadline) return end(false)
          // Back of the queue between slices: a wait never holds a thread while evaluations queue behind it.
          slice()
        })
      }
      slice()
      return Effect.sync(() => {
        stopped = true
        // A withdrawn slice calls back at once (stopped is set); a running one calls back when it ends.
        if (current === undefined) settled()
        else current.cancel()
      })
    })

  const close: EvalPool["close"] = Effect.suspend(() => {
    if (closed) return Effect.void
    closed = true
    for (const p of queue.splice(0)) p.done({ thrown: "the eval thread pool closed before the job started" })
    const drained = Effect.async<void>((resume) => {
      if (running === 0) return resume(Effect.void)
      idleWaiters.push(() => resume(Effect.void))
    })
    return drained.pipe(
      Effect.timeoutOption("2 seconds"),
      Effect.zipRight(Effect.promise(() => Promise.all(threads.splice(0).map((t) => t.worker.terminate().catch(() => 0))))),
      Effect.asVoid
    )
  })

  return {
    run,
    submit,
    wait,
    stats: () => ({ threads: threads.length, running, runningMax }),
    close
  }
}
