/** The static-weight linear executor: argument checks, the content-keyed kernel cache, the eval path. @internal */
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { linear as generateLinear } from "../../mil/generators/linear.js"
import { CompileOptions, DEFAULT_QOS } from "../../schema/CompileOptions.js"
import { ClosedError, CompileError, InvalidArgumentError } from "../../schema/errors.js"
import { Ane } from "../Ane.js"
import type {
  BoundLinear,
  LinearCallStats,
  LinearError,
  LinearExecutor,
  LinearOptions,
  LinearSizes,
  LinearStats
} from "../Linear.js"
import type { Model } from "../Model.js"
import { describe, invalid } from "./errors.js"

const RESOURCE = "linear executor"

/** One compiled program with its own scratch buffers; `lock` serialises write→eval→read on its one request. */
interface Kernel {
  readonly model: Model
  readonly lock: Effect.Semaphore
  readonly batch: number
  readonly inDim: number
  readonly outDim: number
  /** x transposed to channel-first [inDim, batch]. */
  readonly input: Float32Array
  /** The program's output, channel-first [outDim, batch]. */
  readonly output: Float32Array
}

/** A cached kernel in the form a cache hit returns, so a hit allocates nothing. */
interface Cached {
  readonly kernel: Kernel
  readonly compiled: boolean
}

// FNV-1a-64 in four 16-bit limbs: every intermediate stays a small integer (hashing a 64 MiB matrix through BigInt
// would take seconds). The prime is 2^40 + 0x1b3, so a multiply is h·0x1b3 plus h shifted up by 40 bits.
const hex4 = (n: number) => n.toString(16).padStart(4, "0")

/** @internal */
export const weightHash = (w: Float32Array): string => {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length)
  // Offset basis 0xcbf29ce484222325.
  let h0 = 0x2325
  let h1 = 0x8422
  let h2 = 0x9ce4
  let h3 = 0xcbf2
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!
    for (let s = 0; s < 32; s += 8) {
      h0 ^= (u >>> s) & 0xff
      const t0 = h0 * 0x1b3
      const t1 = h1 * 0x1b3 + (t0 >>> 16)
      const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16)
      const t3 = h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16)
      h0 = t0 & 0xffff
      h1 = t1 & 0xffff
      h2 = t2 & 0xffff
      h3 = t3 & 0xffff
    }
  }
  // Unpadded, as the spec's keys are: drop leading zeros but keep one digit.
  return (hex4(h3) + hex4(h2) + hex4(h1) + hex4(h0)).replace(/^0+(?=.)/, "")
}

/** @internal */
export const cacheKey = (w: Float32Array, sizes: LinearSizes): string =>
  `${sizes.batch}:${sizes.inDim}:${sizes.outDim}:${weightHash(w)}`

/** @internal */
export const checkDim = (op: string, name: keyof LinearSizes, sizes: LinearSizes): InvalidArgumentError | undefined => {
  const v: unknown = sizes[name]
  return typeof v === "number" && Number.isInteger(v) && v > 0
    ? undefined
    : invalid(op, `sizes.${name}`, "a positive integer", describe(v))
}

/** @internal */
export const checkArray = (op: string, argument: string, value: unknown, length: number, what: string) => {
  if (!(value instanceof Float32Array)) return invalid(op, argument, `a Float32Array of ${length} floats (${what})`, describe(value))
  return value.length === length ? undefined : invalid(op, argument, `length ${length} (${what})`, `length ${value.length}`)
}

/** The first thing wrong with a call's arguments, in the order of spec/mil-format.md §4.1. */
const checkCall = (
  op: string,
  sizes: LinearSizes,
  x: Float32Array | undefined,
  w: Float32Array,
  dst: Float32Array | undefined
): InvalidArgumentError | undefined => {
  if (typeof sizes !== "object" || sizes === null) {
    return invalid(op, "sizes", "{ batch, inDim, outDim } of positive integers", describe(sizes))
  }
  const shape = checkDim(op, "batch", sizes) ?? checkDim(op, "inDim", sizes) ?? checkDim(op, "outDim", sizes)
  if (shape !== undefined) return shape
  const { batch, inDim, outDim } = sizes
  return (x === undefined ? undefined : checkArray(op, "x", x, batch * inDim, `batch ${batch} × inDim ${inDim}`)) ??
    checkArray(op, "w", w, outDim * inDim, `outDim ${outDim} × inDim ${inDim}`) ??
    (dst === undefined ? undefined : checkArray(op, "dst", dst, batch * outDim, `batch ${batch} × outDim ${outDim}`))
}

const onlyY = (y: Float32Array) => y
const onlyStats = (_: Float32Array, stats: LinearCallStats) => stats
const both = (y: Float32Array, stats: LinearCallStats) => ({ y, stats })

/**
 * What both linear executors keep: kernels under a child scope of the caller's, a cache, counters, and a closed flag
 * set when the caller's scope closes (added after the child scope, so it is set before any kernel unloads). @internal
 */
export const executorState = <V>(resource: string) =>
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    const kernelsScope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    const cache = new Map<string, V>()
    const state = { closed: false, compiles: 0, cacheHits: 0 }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        state.closed = true
        cache.clear()
      })
    )
    const closedError = (op: string) => new ClosedError({ op, resource })
    const stats = Effect.sync((): LinearStats => ({ compiles: state.compiles, cacheHits: state.cacheHits, kernels: cache.size }))
    return { kernelsScope, cache, state, closedError, stats }
  })

/** @internal */
export const make = (options: LinearOptions = {}): Effect.Effect<LinearExecutor, never, Ane | Scope.Scope> =>
  Effect.gen(function*() {
    const ane = yield* Ane
    const qos = options.qos === undefined || options.qos === 0 ? DEFAULT_QOS : options.qos
    const { kernelsScope, cache, state, closedError, stats } = yield* executorState<Cached>(RESOURCE)

    const generate = (op: string, w: Float32Array, sizes: LinearSizes) =>
      Effect.suspend(() => {
        try {
          // fp32 I/O with fp16 compute inside, as the executor's callers hold float32 data.
          return Effect.succeed(generateLinear({ inDim: sizes.inDim, outDim: sizes.outDim, seq: sizes.batch, weights: w, io: "fp32" }))
        } catch (e) {
          return e instanceof InvalidArgumentError || e instanceof CompileError
            ? Effect.fail(e)
            : Effect.die(e)
        }
      }).pipe(Effect.withSpan(`${op}.generate`))

    /** Compiles outside any lock; the first to finish caches its kernel, a loser unloads its own at once. */
    const compileKernel = (op: string, key: string, w: Float32Array, sizes: LinearSizes) =>
      Effect.gen(function*() {
        const program = yield* generate(op, w, sizes)
        const compileOptions = CompileOptions.mil({ text: program.text, weights: program.weights, qos, perfStatsMask: 1 })
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            if (state.closed) return yield* closedError(op)
            // A scope of its own, not a child of kernelsScope: closing the executor mid-compile must not pull the
            // scope out from under the compile; the finished kernel is tied to the executor below instead.
            const scope = yield* Scope.make(ExecutionStrategy.sequential)
            const exit = yield* Effect.exit(restore(Scope.extend(ane.compile(compileOptions), scope)))
            if (Exit.isFailure(exit)) {
              yield* Scope.close(scope, exit)
              return yield* Effect.failCause(exit.cause)
            }
            // Runs the close at once if the executor closed while compiling.
            yield* Scope.addFinalizer(kernelsScope, Scope.close(scope, Exit.void))
            const { batch, inDim, outDim } = sizes
            const kernel: Kernel = {
              model: exit.value,
              lock: Effect.unsafeMakeSemaphore(1),
              batch,
              inDim,
              outDim,
              input: new Float32Array(inDim * batch),
              output: new Float32Array(outDim * batch)
            }
            // Check and insert in one synchronous step, so no other fiber runs in between.
            return yield* Effect.suspend((): Effect.Effect<Cached, ClosedError> => {
              if (state.closed) return Effect.zipRight(Scope.close(scope, Exit.void), Effect.fail(closedError(op)))
              const existing = cache.get(key)
              if (existing !== undefined) {
                state.cacheHits++
                return Effect.as(Scope.close(scope, Exit.void), existing)
              }
              cache.set(key, { kernel, compiled: false })
              state.compiles++
              return Effect.succeed({ kernel, compiled: true })
            })
          })
        )
      }).pipe(Effect.withSpan("Linear.compile", { attributes: { "ane.linear.key": key } }))

    const kernelFor = (op: string, w: Float32Array, sizes: LinearSizes) =>
      Effect.suspend(() => {
        const key = cacheKey(w, sizes)
        const hit = cache.get(key)
        if (hit !== undefined) {
          state.cacheHits++
          return Effect.succeed(hit)
        }
        return compileKernel(op, key, w, sizes)
      })

    /** Transpose in, write input 0, evaluate with stats, read output 0, transpose back; one caller at a time. */
    const run = <A>(
      op: string,
      k: Kernel,
      x: Float32Array,
      dst: Float32Array,
      compiled: boolean,
      done: (y: Float32Array, stats: LinearCallStats) => A
    ) =>
      k.lock.withPermits(1)(
        Effect.suspend(() => {
          if (state.closed) return Effect.fail(closedError(op))
          const { batch, inDim, input } = k
          for (let t = 0; t < batch; t++) {
            const row = t * inDim
            for (let i = 0; i < inDim; i++) input[i * batch + t] = x[row + i]!
          }
          return k.model.writeInputF32(0, input).pipe(
            Effect.zipRight(k.model.evalWithStats),
            Effect.tap(() => k.model.readOutputF32Into(0, k.output)),
            Effect.map((stats): A => {
              const { outDim, output } = k
              for (let o = 0; o < outDim; o++) {
                const col = o * batch
                for (let t = 0; t < batch; t++) dst[t * outDim + o] = output[col + t]!
              }
              return done(dst, { compiled, hwExecutionNs: stats.hwExecutionNs, source: stats.source })
            })
          )
        })
      )

    /** Checks, then runs on the cached or new kernel; the result array is made only after the checks pass. */
    const call = <A>(
      op: string,
      dst: Float32Array | undefined,
      x: Float32Array,
      w: Float32Array,
      sizes: LinearSizes,
      done: (y: Float32Array, stats: LinearCallStats) => A
    ): Effect.Effect<A, LinearError> =>
      Effect.suspend(() => {
        if (state.closed) return Effect.fail(closedError(op))
        const problem = checkCall(op, sizes, x, w, dst)
        if (problem !== undefined) return Effect.fail(problem)
        const y = dst ?? new Float32Array(sizes.batch * sizes.outDim)
        return Effect.flatMap(kernelFor(op, w, sizes), ({ compiled, kernel }) => run(op, kernel, x, y, compiled, done))
      })

    const executor: LinearExecutor = {
      linear: (x, w, sizes) => call("Linear.linear", undefined, x, w, sizes, onlyY),
      linearWithStats: (x, w, sizes) => call("Linear.linearWithStats", undefined, x, w, sizes, both),
      linearInto: (dst, x, w, sizes) => call("Linear.linearInto", dst, x, w, sizes, onlyStats),
      prepare: (w, sizes) =>
        Effect.suspend(() => {
          const op = "Linear.prepare"
          if (state.closed) return Effect.fail(closedError(op))
          const problem = checkCall(op, sizes, undefined, w, undefined)
          return problem !== undefined ? Effect.fail(problem) : Effect.asVoid(kernelFor(op, w, sizes))
        }),
      bind: (w, sizes) =>
        Effect.suspend(() => {
          const op = "Linear.bind"
          if (state.closed) return Effect.fail(closedError(op))
          const problem = checkCall(op, sizes, undefined, w, undefined)
          if (problem !== undefined) return Effect.fail(problem)
          const bound = { batch: sizes.batch, inDim: sizes.inDim, outDim: sizes.outDim }
          return Effect.map(kernelFor(op, w, sizes), ({ kernel }): BoundLinear => {
            const checked = (bop: string, dst: Float32Array | undefined, x: Float32Array) =>
              checkArray(bop, "x", x, bound.batch * bound.inDim, `batch ${bound.batch} × inDim ${bound.inDim}`) ??
                (dst === undefined ? undefined
                  : checkArray(bop, "dst", dst, bound.batch * bound.outDim, `batch ${bound.batch} × outDim ${bound.outDim}`))
            return {
              sizes: bound,
              linear: (x) =>
                Effect.suspend(() => {
                  const bad = checked("BoundLinear.linear", undefined, x)
                  if (bad !== undefined) return Effect.fail(bad)
                  return run("BoundLinear.linear", kernel, x, new Float32Array(bound.batch * bound.outDim), false, onlyY)
                }),
              linearInto: (dst, x) =>
                Effect.suspend(() => {
                  const bad = checked("BoundLinear.linearInto", dst, x)
                  return bad !== undefined ? Effect.fail(bad) : run("BoundLinear.linearInto", kernel, x, dst, false, onlyStats)
                })
            }
          })
        }),
      stats
    }
    return executor
  })
