/** Scoped wrappers of backend surfaces and shared events. @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ClosedError, EvalError, InvalidArgumentError, MapError } from "../../schema/errors.js"
import type { Backend } from "../Backend.js"
import type { SharedEvent } from "../SharedEvent.js"
import type { Surface } from "../Surface.js"
import { closed, describe, invalid, lifetime } from "./errors.js"

/** Key of a SharedEvent's backend object. @internal */
export const SharedEventTypeId: unique symbol = Symbol.for("effect-ane/SharedEvent")
/** Key of a Surface's backend surface and lifetime. @internal */
export const SurfaceTypeId: unique symbol = Symbol.for("effect-ane/Surface")

const U64_MAX = (1n << 64n) - 1n

/** @internal */
export const checkU64 = (op: string, argument: string, v: unknown): InvalidArgumentError | undefined =>
  typeof v === "bigint" && v >= 0n && v <= U64_MAX ? undefined : invalid(op, argument, "a bigint in [0, 2^64)", describe(v))

/** Largest surface accepted (2 GiB): beyond this the engine cannot address it. @internal */
export const MAX_SURFACE_BYTES = 2 ** 31

/** @internal */
export const makeSharedEvent = (backend: Backend["Type"]): Effect.Effect<SharedEvent, EvalError, Scope.Scope> =>
  Effect.gen(function*() {
    const event = yield* backend.createSharedEvent
    const life = lifetime()
    yield* Effect.addFinalizer(() => Effect.sync(() => { life.closed = true }))
    const resource = `shared event ${event.port}`
    const result: SharedEvent = {
      [SharedEventTypeId]: { event, isClosed: () => life.closed },
      port: event.port,
      signaledValue: Effect.suspend(() => life.closed ? closed("SharedEvent.signaledValue", resource) : event.signaledValue),
      signal: (value) =>
        Effect.suspend((): Effect.Effect<void, ClosedError | InvalidArgumentError> => {
          if (life.closed) return closed("SharedEvent.signal", resource)
          const p = checkU64("SharedEvent.signal", "value", value)
          return p ? Effect.fail(p) : event.signal(value)
        }),
      wait: (value, timeout) =>
        Effect.suspend((): Effect.Effect<boolean, ClosedError | InvalidArgumentError> => {
          if (life.closed) return closed("SharedEvent.wait", resource)
          const p = checkU64("SharedEvent.wait", "value", value)
          if (p) return Effect.fail(p)
          const d = Duration.decodeUnknown(timeout)
          if (d._tag === "None" || !Duration.isFinite(d.value)) {
            return Effect.fail(invalid("SharedEvent.wait", "timeout", "a finite duration", describe(timeout)))
          }
          return event.wait(value, Math.floor(Duration.toMillis(d.value)))
        })
    }
    return result
  })

/** @internal */
export const makeSurface = (
  backend: Backend["Type"],
  bytes: number
): Effect.Effect<Surface, InvalidArgumentError | MapError, Scope.Scope> =>
  Effect.gen(function*() {
    if (typeof bytes !== "number" || !Number.isInteger(bytes) || bytes < 1 || bytes > MAX_SURFACE_BYTES) {
      return yield* Effect.fail(invalid("Ane.createSurface", "bytes", `an integer in [1, ${MAX_SURFACE_BYTES}]`, describe(bytes)))
    }
    const s = yield* backend.createSurface(bytes)
    const life = lifetime()
    yield* Effect.addFinalizer(() => Effect.sync(() => { life.closed = true }))
    const resource = `surface ${s.id}`
    const size = s.bytes.length
    const range = (op: string, offset: unknown, length: unknown) => {
      if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0 || offset > size) {
        return invalid(op, "offset", `an integer in [0, ${size}]`, describe(offset))
      }
      if (typeof length !== "number" || !Number.isInteger(length) || length < 0 || offset + length > size) {
        return invalid(op, "length", `an integer in [0, ${size - offset}] (surface of ${size} bytes, offset ${offset})`,
          describe(length))
      }
      return undefined
    }
    const surface: Surface = {
      [SurfaceTypeId]: { surface: s, isClosed: () => life.closed },
      id: s.id,
      size,
      bytes: Effect.suspend(() => life.closed ? closed("Surface.bytes", resource) : Effect.succeed(s.bytes)),
      write: (data, offset = 0) =>
        Effect.suspend((): Effect.Effect<void, ClosedError | InvalidArgumentError> => {
          if (life.closed) return closed("Surface.write", resource)
          if (!(data instanceof Uint8Array)) return Effect.fail(invalid("Surface.write", "data", "a Uint8Array", describe(data)))
          const p = range("Surface.write", offset, data.length)
          if (p) return Effect.fail(p)
          // Under the backend's surface lock where it has one (IOSurfaceLock on hardware).
          if (s.access === undefined) s.bytes.set(data, offset)
          else s.access("write", (bytes) => bytes.set(data, offset))
          return Effect.void
        }),
      read: (offset = 0, length) =>
        Effect.suspend((): Effect.Effect<Uint8Array, ClosedError | InvalidArgumentError> => {
          if (life.closed) return closed("Surface.read", resource)
          const len = length ?? (typeof offset === "number" ? size - offset : 0)
          const p = range("Surface.read", offset, len)
          if (p) return Effect.fail(p)
          return Effect.succeed(s.access === undefined ? s.bytes.slice(offset, offset + len) : s.access("read", (bytes) => bytes.slice(offset, offset + len)))
        })
    }
    return surface
  })
