/** Builders for the typed errors the services raise, so messages stay uniform. @internal */
import * as Effect from "effect/Effect"
import { ClosedError, InvalidArgumentError } from "../../schema/errors.js"

/** @internal */
export const invalid = (op: string, argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError(hint === undefined ? { op, argument, expected, actual } : { op, argument, expected, actual, hint })

/** @internal */
export const closed = (op: string, resource: string) => Effect.fail(new ClosedError({ op, resource }))

/** Whether something has been released; a child is closed when its parent is. @internal */
export interface Lifetime {
  closed: boolean
  readonly parent: Lifetime | undefined
}

/** @internal */
export const lifetime = (parent?: Lifetime): Lifetime => ({ closed: false, parent })

/** @internal */
export const isClosed = (l: Lifetime): boolean => l.closed || (l.parent !== undefined && isClosed(l.parent))

/** Describes a JS value briefly for an error's `actual` field. @internal */
export const describe = (u: unknown): string => {
  if (u === null) return "null"
  if (u === undefined) return "undefined"
  if (typeof u === "number" || typeof u === "bigint" || typeof u === "boolean") return String(u)
  if (typeof u === "string") return JSON.stringify(u.length > 40 ? u.slice(0, 40) + "…" : u)
  if (ArrayBuffer.isView(u)) return `${u.constructor.name}(${"length" in u ? String(u.length) : u.byteLength})`
  if (Array.isArray(u)) return `Array(${u.length})`
  return typeof u
}

/** An integer index check in `[0, count)`. @internal */
export const checkIndex = (op: string, what: string, i: unknown, count: number): InvalidArgumentError | undefined =>
  typeof i === "number" && Number.isInteger(i) && i >= 0 && i < count
    ? undefined
    : invalid(op, what, count === 0 ? `no index (the model has no ${what}s)` : `an integer ${what} index in [0, ${count})`, describe(i))
