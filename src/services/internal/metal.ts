/**
 * The MetalDevice over the Backend's GPU side: lifetimes, argument checks and branded handles. Every object is a
 * scoped resource; a buffer is usable only while its device, its own scope and the model or surface it was made
 * over are all open. @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { ClosedError, type EvalError, InvalidArgumentError, MetalError, NoMetalError } from "../../schema/errors.js"
import type {
  Backend, BackendComputePipeline, BackendDispatch, BackendMetal, BackendMetalBuffer, BackendMetalEvent,
  BackendSharedEvent
} from "../Backend.js"
import type {
  ComputePipeline, DispatchOptions, Kernel, MetalBuffer, MetalDevice, MetalSharedEvent, MetalSharedEventPair, RawHandle
} from "../Metal.js"
import type { Model } from "../Model.js"
import type { SharedEvent } from "../SharedEvent.js"
import type { Surface } from "../Surface.js"
import { closed, describe, invalid, isClosed, lifetime, type Lifetime } from "./errors.js"
import { ModelTypeId } from "./model.js"
import { checkU64, makeSharedEvent, SharedEventTypeId, SurfaceTypeId } from "./sharedEvent.js"

/** Key of the backend objects behind the Metal values. @internal */
export const MetalTypeId: unique symbol = Symbol.for("effect-ane/Metal")

/** What the Pipeline needs from a device. @internal */
export interface DeviceInternals {
  readonly backend: Backend["Type"]
  readonly metal: BackendMetal
  readonly life: Lifetime
}

/** Largest `params` block: Metal's `setBytes:length:atIndex:` limit. */
export const MAX_PARAM_BYTES = 4096
/** Largest grid extent per dimension (a u32). */
const MAX_GRID = 2 ** 32 - 1

/** Whether a value made by a device is still usable: every lifetime it hangs on is open. @internal */
export type Alive = () => boolean

interface Owned<A> {
  readonly device: DeviceInternals
  readonly backend: A
  readonly alive: Alive
  readonly resource: string
}

const owned = new WeakMap<object, Owned<unknown>>()
const ownedBy = <A>(value: unknown, device: DeviceInternals): Owned<A> | undefined => {
  const o = typeof value === "object" && value !== null ? owned.get(value) : undefined
  return o !== undefined && o.device === device ? (o as Owned<A>) : undefined
}

const raw = <K extends string>(h: bigint) => h as RawHandle<K>

const isInt = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n)

/** The three grid dimensions of `g`, or undefined when it is not 1–3 positive u32 integers. */
const dims = (g: unknown): readonly [number, number, number] | undefined => {
  const list = typeof g === "number" ? [g] : Array.isArray(g) ? g : undefined
  if (list === undefined || list.length < 1 || list.length > 3) return undefined
  if (!list.every((x) => isInt(x) && x >= 1 && x <= MAX_GRID)) return undefined
  return [list[0] as number, (list[1] ?? 1) as number, (list[2] ?? 1) as number]
}

/** A scope-bound value with the lifetimes it depends on; registered so the device can recognise it. */
const register = <V extends object, A>(value: V, device: DeviceInternals, backend: A, alive: Alive, resource: string): V => {
  owned.set(value, { device, backend, alive, resource })
  return value
}

/** Opens the GPU device of `backend`. @internal */
export const open = (backend: Backend["Type"]): Effect.Effect<MetalDevice, NoMetalError, Scope.Scope> =>
  Effect.gen(function*() {
    if (backend.openMetal === undefined) {
      return yield* Effect.fail(new NoMetalError({
        op: "Metal.open", reason: `the ${backend.kind} backend has no GPU side`
      }))
    }
    const metal = yield* backend.openMetal
    const life = lifetime()
    yield* Effect.addFinalizer(() => Effect.sync(() => { life.closed = true }))
    const device: DeviceInternals = { backend, metal, life }
    const deviceOpen = () => !life.closed
    const resourceName = `Metal device ${metal.name}`

    /** Runs `make` in a child lifetime of the device that closes with the caller's scope. */
    const scoped = <A>(make: (own: Lifetime) => Effect.Effect<A, MetalError, Scope.Scope>) =>
      Effect.gen(function*() {
        const own = lifetime(life)
        yield* Effect.addFinalizer(() => Effect.sync(() => { own.closed = true }))
        return yield* make(own)
      })

    const twin = (event: SharedEvent, op: string) =>
      Effect.suspend((): Effect.Effect<MetalSharedEvent, MetalError | ClosedError | InvalidArgumentError, Scope.Scope> => {
        if (!deviceOpen()) return closed(op, resourceName)
        const inner = (event as Partial<SharedEvent> | undefined)?.[SharedEventTypeId]
        if (inner === undefined) return Effect.fail(invalid(op, "event", "a SharedEvent", describe(event)))
        if (inner.isClosed()) return closed(op, `shared event ${event.port}`)
        if (event.port === 0) return Effect.fail(new MetalError({ op, resource: "shared event", hint: "shared event has no port" }))
        return scoped((own) =>
          Effect.map(metal.sharedEvent(inner.event), (e) => {
            const alive = () => !isClosed(own) && !inner.isClosed()
            const value: MetalSharedEvent = { port: e.port, raw: raw<"MTLSharedEvent">(e.handle), aneEvent: event }
            return register(value, device, e, alive, `Metal shared event ${e.port}`)
          }))
      })

    const buffer = (
      op: string,
      bytes: Uint8Array,
      parentOpen: () => boolean,
      resource: string
    ): Effect.Effect<MetalBuffer, MetalError, Scope.Scope> =>
      scoped((own) =>
        Effect.map(metal.buffer(bytes), (b) => {
          const alive = () => !isClosed(own) && parentOpen()
          const value: MetalBuffer = {
            length: b.bytes.length,
            raw: raw<"MTLBuffer">(b.handle),
            bytes: Effect.suspend(() => alive() ? Effect.succeed(b.bytes) : closed(`${op}.bytes`, resource))
          }
          return register(value, device, b, alive, resource)
        }))

    const modelBuffer = (side: "input" | "output") => (model: Model, index: number) =>
      Effect.suspend((): Effect.Effect<MetalBuffer, MetalError | ClosedError | InvalidArgumentError, Scope.Scope> => {
        const op = side === "input" ? "Metal.inputBuffer" : "Metal.outputBuffer"
        if (!deviceOpen()) return closed(op, resourceName)
        const inner = (model as Partial<Model> | undefined)?.[ModelTypeId]
        if (inner === undefined) return Effect.fail(invalid(op, "model", "a Model", describe(model)))
        if (isClosed(inner.life)) return closed(op, `model ${model.id}`)
        const views = side === "input" ? inner.backend.request.inputs : inner.backend.request.outputs
        if (!isInt(index) || index < 0 || index >= views.length) {
          return Effect.fail(invalid(op, "index", `an ${side} index in [0, ${views.length})`, describe(index)))
        }
        return buffer(op, views[index]!, () => !isClosed(inner.life), `Metal buffer over ${side} ${index} of model ${model.id}`)
      })

    const result: MetalDevice = {
      [MetalTypeId]: device,
      name: metal.name,
      raw: raw<"MTLDevice">(metal.handle),
      sharedEvent: (event) => twin(event, "Metal.sharedEvent"),
      newSharedEvent: Effect.gen(function*() {
        if (!deviceOpen()) return yield* closed("Metal.newSharedEvent", resourceName)
        // The IOSurfaceSharedEvent first: it owns the Mach port the Metal twin is made from (§9.4).
        const ane = yield* makeSharedEvent(backend)
        const metalEvent = yield* twin(ane, "Metal.newSharedEvent").pipe(
          Effect.catchTag("InvalidArgumentError", (e) => Effect.die(e))
        )
        return { ane, metal: metalEvent } satisfies MetalSharedEventPair
      }),
      inputBuffer: modelBuffer("input"),
      outputBuffer: modelBuffer("output"),
      surfaceBuffer: (surface) =>
        Effect.suspend((): Effect.Effect<MetalBuffer, MetalError | ClosedError | InvalidArgumentError, Scope.Scope> => {
          const op = "Metal.surfaceBuffer"
          if (!deviceOpen()) return closed(op, resourceName)
          const inner = (surface as Partial<Surface> | undefined)?.[SurfaceTypeId]
          if (inner === undefined) return Effect.fail(invalid(op, "surface", "a Surface", describe(surface)))
          if (inner.isClosed()) return closed(op, `surface ${surface.id}`)
          return buffer(op, inner.surface.bytes, () => !inner.isClosed(), `Metal buffer over surface ${surface.id}`)
        }),
      compile: (kernel) =>
        Effect.suspend((): Effect.Effect<ComputePipeline, MetalError | ClosedError | InvalidArgumentError, Scope.Scope> => {
          const op = "Metal.compile"
          if (!deviceOpen()) return closed(op, resourceName)
          const problem = kernelProblem(op, kernel)
          if (problem !== undefined) return Effect.fail(problem)
          const k: Kernel = kernel
          return scoped((own) =>
            Effect.map(metal.compile({
              name: k.name, ...(k.msl !== undefined ? { msl: k.msl } : {}), ...(k.simulate !== undefined ? { simulate: k.simulate } : {})
            }), (p) => {
              const value: ComputePipeline = {
                name: p.name, maxThreadsPerThreadgroup: p.maxThreadsPerThreadgroup, raw: raw<"MTLComputePipelineState">(p.handle)
              }
              return register(value, device, p, () => !isClosed(own), `kernel ${p.name}`)
            }))
        }),
      dispatch: (pipeline, options) =>
        Effect.suspend((): Effect.Effect<void, MetalError | ClosedError | InvalidArgumentError> => {
          const op = "Metal.dispatch"
          if (!deviceOpen()) return closed(op, resourceName)
          const d = checkDispatch(op, device, pipeline, options)
          return "_tag" in d ? Effect.fail(d) : metal.dispatch(d)
        })
    }
    return result
  })

/** Checks a kernel description; undefined when fine. */
const kernelProblem = (op: string, kernel: unknown): InvalidArgumentError | undefined => {
  const k = kernel as Partial<Kernel> | undefined
  if (typeof k !== "object" || k === null) return invalid(op, "kernel", "a Kernel (Metal.kernel({ name, msl?, simulate? }))", describe(kernel))
  if (typeof k.name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k.name)) {
    return invalid(op, "kernel.name", "the kernel function's name (an identifier)", describe(k.name))
  }
  if (k.msl !== undefined && (typeof k.msl !== "string" || k.msl.length === 0)) {
    return invalid(op, "kernel.msl", "Metal Shading Language source text", describe(k.msl))
  }
  if (k.simulate !== undefined && typeof k.simulate !== "function") {
    return invalid(op, "kernel.simulate", "a function over the buffers' bytes", describe(k.simulate))
  }
  if (k.msl === undefined && k.simulate === undefined) {
    return invalid(op, "kernel", "`msl` source, a `simulate` function, or both", "neither")
  }
  return undefined
}

/** An object a device made, still alive; or the error saying why not. @internal */
export const ownedAlive = <A>(
  op: string,
  argument: string,
  expected: string,
  value: unknown,
  device: DeviceInternals
): A | InvalidArgumentError | ClosedError => {
  const o = ownedBy<A>(value, device)
  if (o === undefined) return invalid(op, argument, expected, describe(value))
  if (!o.alive()) return new ClosedError({ op, resource: o.resource })
  return o.backend
}

/** Checks every argument of a dispatch and resolves the backend objects; the port's dispatch, or the error. @internal */
export const checkDispatch = (
  op: string,
  device: DeviceInternals,
  pipeline: ComputePipeline,
  options: DispatchOptions
): BackendDispatch | InvalidArgumentError | ClosedError => {
  const p = ownedAlive<BackendComputePipeline>(op, "pipeline", "a kernel compiled by this device", pipeline, device)
  if ("_tag" in p) return p
  const o = options as Partial<DispatchOptions> | undefined
  if (typeof o !== "object" || o === null) return invalid(op, "options", "DispatchOptions", describe(options))
  if (!Array.isArray(o.buffers)) return invalid(op, "buffers", "an array of MetalBuffers of this device", describe(o.buffers))
  const buffers: Array<BackendMetalBuffer> = []
  for (let i = 0; i < o.buffers.length; i++) {
    const b = ownedAlive<BackendMetalBuffer>(op, `buffers[${i}]`, "a MetalBuffer of this device", o.buffers[i], device)
    if ("_tag" in b) return b
    buffers.push(b)
  }
  const grid = dims(o.grid)
  if (grid === undefined) return invalid(op, "grid", "1 to 3 positive integer extents (threads per dimension)", describe(o.grid))
  const max = p.maxThreadsPerThreadgroup
  const group = o.threadsPerThreadgroup === undefined ? [Math.min(max, grid[0]), 1, 1] as const : dims(o.threadsPerThreadgroup)
  if (group === undefined || group[0] * group[1] * group[2] > max) {
    return invalid(op, "threadsPerThreadgroup", `1 to 3 positive extents whose product is at most ${max}`,
      describe(o.threadsPerThreadgroup))
  }
  if (o.params !== undefined && (!(o.params instanceof Uint8Array) || o.params.length > MAX_PARAM_BYTES)) {
    return invalid(op, "params", `a Uint8Array of at most ${MAX_PARAM_BYTES} bytes`, describe(o.params))
  }
  const side = (name: "wait" | "signal") => {
    const s = o[name]
    if (s === undefined) return undefined
    if (typeof s !== "object" || s === null) return invalid(op, name, "{ event, value }", describe(s))
    const e = ownedAlive<BackendMetalEvent>(op, `${name}.event`, "a MetalSharedEvent of this device", s.event, device)
    if ("_tag" in e) return e
    const bad = checkU64(op, `${name}.value`, s.value)
    return bad ?? { event: e, value: s.value }
  }
  const wait = side("wait")
  if (wait !== undefined && "_tag" in wait) return wait
  const signal = side("signal")
  if (signal !== undefined && "_tag" in signal) return signal
  return {
    pipeline: p, buffers, grid, threadsPerThreadgroup: group,
    ...(o.params !== undefined ? { params: o.params } : {}),
    ...(wait !== undefined ? { wait } : {}),
    ...(signal !== undefined ? { signal } : {})
  }
}

/** A buffer over one view for the Pipeline's own requests (not exposed). @internal */
export const internalBuffer = (device: DeviceInternals, bytes: Uint8Array) => device.metal.buffer(bytes)

/** A shared event and its twin for the Pipeline's own slots (not exposed). @internal */
export const internalEventPair = (
  device: DeviceInternals
): Effect.Effect<{ readonly ane: BackendSharedEvent; readonly metal: BackendMetalEvent }, EvalError | MetalError, Scope.Scope> =>
  Effect.gen(function*() {
    const ane = yield* device.backend.createSharedEvent
    const metal = yield* device.metal.sharedEvent(ane)
    return { ane, metal }
  })
