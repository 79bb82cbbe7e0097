/** The dynamic linear executor: one DynamicMatmul per shape, weights supplied per call. @internal */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { Ane } from "../Ane.js"
import * as DynamicMatmul from "../DynamicMatmul.js"
import type {
  DynamicLinearCallStats,
  DynamicLinearError,
  DynamicLinearExecutor,
  DynamicLinearOptions,
  LinearSizes
} from "../Linear.js"
import { describe, invalid } from "./errors.js"
import { checkArray, checkDim, executorState } from "./linear.js"

const RESOURCE = "dynamic linear executor"

/** One shape's executor, with the scratch a PyTorch-layout weight is transposed into, and a lock over both. */
interface Entry {
  readonly mm: DynamicMatmul.DynamicMatmul
  readonly wIO: Float32Array
  readonly lock: Effect.Semaphore
}

const checkSizes = (op: string, sizes: LinearSizes) =>
  typeof sizes !== "object" || sizes === null
    ? invalid(op, "sizes", "{ batch, inDim, outDim } of positive integers", describe(sizes))
    : checkDim(op, "batch", sizes) ?? checkDim(op, "inDim", sizes) ?? checkDim(op, "outDim", sizes)

/** A result array for valid sizes; an empty one otherwise (the call then fails on the sizes). */
const resultFor = (sizes: LinearSizes) =>
  checkSizes("", sizes) === undefined ? new Float32Array(sizes.batch * sizes.outDim) : new Float32Array(0)

/** @internal */
export const makeDynamic = (
  options: DynamicLinearOptions = {}
): Effect.Effect<DynamicLinearExecutor, never, Ane | Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<Ane>()
    const { kernelsScope, cache, state, closedError, stats } = yield* executorState<Entry>(RESOURCE)
    const pending = new Map<string, Deferred.Deferred<Entry, DynamicLinearError>>()

    /** The shape's executor: cached, being compiled by another caller (awaited), or compiled now. */
    const entryFor = (op: string, sizes: LinearSizes) =>
      Effect.gen(function*() {
        const key = `${sizes.batch}:${sizes.inDim}:${sizes.outDim}`
        const done = yield* Deferred.make<Entry, DynamicLinearError>()
        // From here to `pending.set` nothing yields, so two callers cannot both decide to compile.
        if (state.closed) return yield* closedError(op)
        const hit = cache.get(key)
        if (hit !== undefined) {
          state.cacheHits++
          return { entry: hit, compiled: false }
        }
        const inFlight = pending.get(key)
        if (inFlight !== undefined) {
          state.cacheHits++
          return { entry: yield* Deferred.await(inFlight), compiled: false }
        }
        pending.set(key, done)
        const entry = yield* DynamicMatmul.make({
          ...sizes,
          ...(options.qos === undefined ? {} : { qos: options.qos }),
          ...(options.tileOut === undefined ? {} : { tileOut: options.tileOut })
        }).pipe(
          Scope.extend(kernelsScope),
          Effect.provide(context),
          Effect.map((mm): Entry => ({ mm, wIO: new Float32Array(sizes.inDim * sizes.outDim), lock: Effect.unsafeMakeSemaphore(1) })),
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              pending.delete(key)
              if (Exit.isSuccess(exit) && !state.closed) {
                cache.set(key, exit.value)
                state.compiles++
              }
              return Deferred.done(done, exit)
            })
          ),
          Effect.withSpan("Linear.compileDynamic", { attributes: { "ane.linear.key": key } })
        )
        return { entry, compiled: true }
      })

    const statsOf = (compiled: boolean, s: DynamicMatmul.CallStats): DynamicLinearCallStats =>
      ({ compiled, executionNs: s.executionNs, wallClockTiles: s.wallClockTiles })

    /** Checks sizes and arrays, then runs `body` on the shape's executor under its lock. */
    const call = <A>(
      op: string,
      sizes: LinearSizes,
      arrays: ReadonlyArray<readonly [string, Float32Array | undefined, number, string]>,
      body: (entry: Entry, compiled: boolean) => Effect.Effect<A, DynamicLinearError>
    ): Effect.Effect<A, DynamicLinearError> =>
      Effect.suspend(() => {
        if (state.closed) return Effect.fail(closedError(op))
        const problem = checkSizes(op, sizes) ??
          arrays.reduce<ReturnType<typeof checkArray>>((p, [name, value, n, what]) =>
            p ?? checkArray(op, name, value, n, what), undefined)
        if (problem !== undefined) return Effect.fail(problem)
        return Effect.flatMap(entryFor(op, sizes), ({ compiled, entry }) =>
          entry.lock.withPermits(1)(Effect.suspend(() => state.closed ? Effect.fail(closedError(op)) : body(entry, compiled))))
      })

    const xArg = (x: Float32Array, s: LinearSizes) => ["x", x, s.batch * s.inDim, `batch ${s.batch} × inDim ${s.inDim}`] as const
    const wArg = (w: Float32Array, s: LinearSizes) => ["w", w, s.outDim * s.inDim, `outDim ${s.outDim} × inDim ${s.inDim}`] as const
    const wIOArg = (w: Float32Array, s: LinearSizes) => ["wIO", w, s.inDim * s.outDim, `inDim ${s.inDim} × outDim ${s.outDim}`] as const
    const dstArg = (d: Float32Array, s: LinearSizes) => ["dst", d, s.batch * s.outDim, `batch ${s.batch} × outDim ${s.outDim}`] as const

    /** w [outDim, inDim] → the entry's scratch in IO layout [inDim, outDim], then y = x·wIO. */
    const transposedInto = (entry: Entry, compiled: boolean, dst: Float32Array, x: Float32Array, w: Float32Array, s: LinearSizes) =>
      Effect.suspend(() => {
        const { inDim, outDim } = s
        for (let o = 0; o < outDim; o++) for (let i = 0; i < inDim; i++) entry.wIO[i * outDim + o] = w[o * inDim + i]!
        return Effect.map(entry.mm.evalInto(dst, x, entry.wIO), (st) => statsOf(compiled, st))
      })

    const executor: DynamicLinearExecutor = {
      linear: (x, w, sizes) =>
        Effect.suspend(() => {
          const y = resultFor(sizes)
          return Effect.as(executor.linearInto(y, x, w, sizes), y)
        }),
      linearWithStats: (x, w, sizes) =>
        Effect.suspend(() => {
          const y = resultFor(sizes)
          return Effect.map(executor.linearInto(y, x, w, sizes), (stats) => ({ y, stats }))
        }),
      linearInto: (dst, x, w, sizes) =>
        call("Linear.dynamic.linearInto", sizes, [xArg(x, sizes), wArg(w, sizes), dstArg(dst, sizes)],
          (entry, compiled) => transposedInto(entry, compiled, dst, x, w, sizes)),
      linearIOInto: (dst, x, wIO, sizes) =>
        call("Linear.dynamic.linearIOInto", sizes, [xArg(x, sizes), wIOArg(wIO, sizes), dstArg(dst, sizes)],
          (entry, compiled) => Effect.map(entry.mm.evalInto(dst, x, wIO), (st) => statsOf(compiled, st))),
      primeWeightsIO: (wIO, sizes) =>
        call("Linear.dynamic.primeWeightsIO", sizes, [wIOArg(wIO, sizes)], (entry) => entry.mm.primeWeights(wIO)),
      updateWeightsIORows: (wIO, rows, sizes) =>
        call("Linear.dynamic.updateWeightsIORows", sizes, [wIOArg(wIO, sizes)],
          (entry) => entry.mm.updateWeightRows(wIO, rows)),
      linearOneHotIOInto: (dst, xs, sizes) =>
        call("Linear.dynamic.linearOneHotIOInto", sizes, [],
          (entry, compiled) => Effect.map(entry.mm.evalOneHotInto(dst, xs), (st) => statsOf(compiled, st))),
      prepare: (sizes) => call("Linear.dynamic.prepare", sizes, [], () => Effect.void),
      stats
    }
    return executor
  })
