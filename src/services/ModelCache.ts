/**
 * Compiled models shared by content: compiling the same program (text, weights and options) again reuses the
 * loaded model and spends no compile budget. Entries are reference-counted and unloaded after an idle period.
 */
import { createHash } from "node:crypto"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import type { CompileOptions } from "../schema/CompileOptions.js"
import { CompileOptions as CompileOptionsApi } from "../schema/CompileOptions.js"
import type { CompileFailure } from "../schema/errors.js"
import { Ane } from "./Ane.js"
import type { Model } from "./Model.js"

/** What the cache offers. */
export interface ModelCacheService {
  /** The loaded model for these options, compiling only on a miss; held until the scope closes. */
  readonly get: (options: CompileOptions) => Effect.Effect<Model, CompileFailure, Scope.Scope>
  /** Unloads an entry as soon as nobody holds it. */
  readonly invalidate: (options: CompileOptions) => Effect.Effect<void>
  /** Entries currently loaded (held or idle). */
  readonly size: Effect.Effect<number>
}

/** The model cache service. */
export class ModelCache extends Context.Tag("effect-ane/ModelCache")<ModelCache, ModelCacheService>() {}

/** Cache options. */
export interface ModelCacheOptions {
  /** How long an unused model stays loaded (default 60 seconds). */
  readonly idleTimeToLive?: Duration.DurationInput
}

const field = (h: ReturnType<typeof createHash>, s: string | Uint8Array) => {
  const bytes = typeof s === "string" ? Buffer.from(s, "utf8") : s
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(bytes.length))
  h.update(len).update(bytes)
}

/** SHA-256 of everything that determines a compiled program (length-prefixed, so fields cannot run together). */
export const contentKey = (options: CompileOptions): string => {
  const h = createHash("sha256")
  field(h, options._tag)
  field(h, `${options.qos}:${options.perfStatsMask}`)
  if (options._tag === "package") {
    field(h, options.path)
    field(h, options.modelKey)
  } else {
    field(h, options.text)
    for (const w of options.weights) {
      field(h, w.path)
      field(h, w.bytes)
    }
  }
  return h.digest("hex")
}

/** Builds a cache over the Ane client in context; entries are unloaded when the scope closes. */
export const make = (
  options: ModelCacheOptions = {}
): Effect.Effect<ModelCacheService, never, Ane | Scope.Scope> =>
  Effect.gen(function*() {
    const ane = yield* Ane
    const wanted = new Map<string, CompileOptions>()
    const map = yield* RcMap.make({
      lookup: (key: string) =>
        Effect.suspend(() => {
          const o = wanted.get(key)
          wanted.delete(key)
          return o === undefined ? Effect.dieMessage(`ModelCache: no options recorded for ${key}`) : ane.compile(o)
        }),
      idleTimeToLive: options.idleTimeToLive ?? Duration.seconds(60)
    })
    const service: ModelCacheService = {
      get: (o) =>
        Effect.gen(function*() {
          // Validate before hashing so bad options fail the same way as Ane.compile.
          yield* CompileOptionsApi.validate(o, "ModelCache.get")
          const key = contentKey(o)
          wanted.set(key, o)
          return yield* Effect.ensuring(RcMap.get(map, key), Effect.sync(() => wanted.delete(key)))
        }).pipe(Effect.withSpan("ModelCache.get")),
      invalidate: (o) => RcMap.invalidate(map, contentKey(o)),
      size: Effect.map(RcMap.keys(map), (keys) => keys.length)
    }
    return service
  })

/** The cache as a layer over an Ane layer. */
export const layer = (options: ModelCacheOptions = {}): Layer.Layer<ModelCache, never, Ane> =>
  Layer.scoped(ModelCache, make(options))
