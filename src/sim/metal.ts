/**
 * The simulator's GPU: the Metal side of the Backend port on the CPU. Its shared-event twins are the simulator's own
 * events (one u64, so a value signalled on either side is seen on both), its buffers are the simulator's surface
 * views (no copy), and a kernel is a TypeScript function over those bytes: the documented stand-in for a Metal
 * Shading Language kernel, which the simulator cannot run. Dispatches run one at a time, in the order they become
 * ready, each taking `dispatchUs` of modelled GPU time.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { MetalError } from "../schema/errors.js"
import type {
  BackendComputePipeline, BackendDispatch, BackendKernel, BackendMetal, BackendMetalBuffer, BackendMetalEvent,
  BackendSharedEvent
} from "../services/Backend.js"
import { nowMs, waitUntil } from "./latency.js"

/** Options of the simulated GPU. */
export interface SimGpuOptions {
  /** Modelled GPU time of one dispatch, µs (default 0: a dispatch completes as soon as its kernel has run). */
  readonly dispatchUs?: number
}

/** How the simulated GPU reports the handles it holds to its backend's count. @internal */
export interface HandleCounter {
  readonly add: (n: number) => void
}

/** The largest threadgroup the simulated GPU reports (what Apple GPUs report for a simple kernel). */
export const SIM_MAX_THREADS_PER_THREADGROUP = 1024

const mslHint = "the simulator cannot run Metal Shading Language; give the kernel a `simulate` function (a " +
  "TypeScript stand-in over the buffers' bytes), or run on a Mac"

/** Opens a simulated GPU device; it and every object made from it count as handles until their scope closes. */
export const openSimMetal = (
  options: SimGpuOptions,
  handles: HandleCounter
): Effect.Effect<BackendMetal, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dispatchMs = Math.max(0, options.dispatchUs ?? 0) / 1000
    let freeAt = 0
    const twins = new WeakMap<BackendMetalEvent, BackendSharedEvent>()
    const kernels = new WeakMap<BackendComputePipeline, NonNullable<BackendKernel["simulate"]>>()
    const counted = <A>(make: () => A): Effect.Effect<A, never, Scope.Scope> =>
      Effect.acquireRelease(Effect.sync(() => {
        handles.add(1)
        return make()
      }), () => Effect.sync(() => handles.add(-1)))
    yield* counted(() => undefined)

    const fail = (op: string, resource: string, hint: string) => Effect.fail(new MetalError({ op, resource, hint }))

    const eventOf = (op: string, e: BackendMetalEvent): BackendSharedEvent | MetalError =>
      twins.get(e) ?? new MetalError({ op, resource: `event ${e.port}`, hint: "not a shared event of this device" })

    const dispatch = (d: BackendDispatch): Effect.Effect<void, MetalError> =>
      Effect.gen(function*() {
        const op = "Metal.dispatch"
        const run = kernels.get(d.pipeline)
        if (run === undefined) return yield* fail(op, `kernel ${d.pipeline.name}`, "not a kernel of this device")
        if (d.wait !== undefined) {
          const event = eventOf(op, d.wait.event)
          if (event instanceof MetalError) return yield* event
          const reached = yield* event.wait(d.wait.value, Infinity).pipe(Effect.orElseSucceed(() => false))
          if (!reached) {
            return yield* fail(op, `kernel ${d.pipeline.name}`, `wait event ${event.port} closed before reaching ${d.wait.value}`)
          }
        }
        // One queue: a dispatch starts when the GPU is free, runs, and completes `dispatchMs` later.
        const start = Math.max(nowMs(), freeAt)
        freeAt = start + dispatchMs
        const end = freeAt
        if (dispatchMs > 0) yield* waitUntil(start)
        try {
          run({ buffers: d.buffers.map((b) => b.bytes), grid: d.grid, params: d.params })
        } catch (e) {
          return yield* Effect.fail(new MetalError({
            op, resource: `kernel ${d.pipeline.name}`, hint: `the kernel threw: ${e instanceof Error ? e.message : String(e)}`,
            cause: e
          }))
        }
        if (dispatchMs > 0) yield* waitUntil(end)
        if (d.signal !== undefined) {
          const event = eventOf(op, d.signal.event)
          if (event instanceof MetalError) return yield* event
          yield* event.signal(d.signal.value).pipe(Effect.catchTag("ClosedError", () =>
            fail(op, `kernel ${d.pipeline.name}`, `signal event ${event.port} is closed`)))
        }
      })

    const device: BackendMetal = {
      name: "simulated GPU",
      handle: 0n,
      sharedEvent: (event) =>
        counted(() => {
          const twin: BackendMetalEvent = { port: event.port, handle: 0n }
          twins.set(twin, event)
          return twin
        }),
      buffer: (bytes) => counted((): BackendMetalBuffer => ({ bytes, handle: 0n })),
      compile: (kernel) => {
        const simulate = kernel.simulate
        if (simulate === undefined) return fail("Metal.compile", `kernel ${kernel.name}`, mslHint)
        return counted(() => {
          const pipeline: BackendComputePipeline = {
            name: kernel.name, maxThreadsPerThreadgroup: SIM_MAX_THREADS_PER_THREADGROUP, handle: 0n
          }
          kernels.set(pipeline, simulate)
          return pipeline
        })
      },
      dispatch
    }
    return device
  })
