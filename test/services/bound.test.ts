/** Model.bindRequest: requests over standalone surfaces, shared between models with no copy. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Ane from "../../src/services/Ane.js"
import { double, pattern } from "./programs.js"

const sim = Effect.provide(Ane.layerSimulator({ latency: "off" }))

describe("Model.bindRequest", () => {
  it.scoped("chains two models through one shared surface, with no copy", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const [c, w] = [8, 64]
      const a = yield* ane.compile(double(c, w))
      const b = yield* ane.compile(double(c, w))
      const size = a.inputs[0]!.allocSize
      const [s1, s2, s3] = yield* Effect.all([ane.createSurface(size), ane.createSurface(size), ane.createSurface(size)])
      const ra = yield* a.bindRequest({ inputs: [s1], outputs: [s2] })
      const rb = yield* b.bindRequest({ inputs: [s2], outputs: [s3] })
      const x = pattern(c * w)
      yield* ra.writeInputF32(0, x)
      yield* ra.eval
      yield* rb.eval
      expect(Array.from(yield* rb.readOutputF32(0))).toEqual(Array.from(x, (v) => 4 * v))
      // The middle surface holds A's output, and B read it from there.
      expect(Buffer.compare(Buffer.from(yield* s2.read()), Buffer.from(yield* ra.readOutput(0)))).toBe(0)
      // The models' own requests were not involved.
      expect(Array.from(new Set(yield* a.readOutputF32(0)))).toEqual([0])
    }).pipe(sim))

  it.scoped("binds large surfaces, which convert in place", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const m = yield* ane.compile(double(64, 2048))
      const size = m.inputs[0]!.allocSize
      expect(size).toBeGreaterThanOrEqual(256 * 1024)
      const r = yield* m.bindRequest({ inputs: [yield* ane.createSurface(size)], outputs: [yield* ane.createSurface(size + 64)] })
      const x = pattern(64 * 2048, 5)
      yield* r.writeInputF32(0, x)
      const stats = yield* r.evalWithStats
      expect(stats.source).toBe("modelled")
      expect(Array.from(yield* r.readOutputF32(0))).toEqual(Array.from(x, (v) => 2 * v))
    }).pipe(sim))

  it.scoped("checks the surfaces before mapping anything", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const m = yield* ane.compile(double(8, 64))
      const size = m.inputs[0]!.allocSize
      const ok = yield* ane.createSurface(size)
      const small = yield* ane.createSurface(size - 1)
      const live = yield* ane.liveHandles
      const cases = [
        [{ inputs: [], outputs: [ok] }, "inputs"],
        [{ inputs: [ok, ok], outputs: [ok] }, "inputs"],
        [{ inputs: [ok], outputs: [new Uint8Array(size)] }, "outputs[0]"],
        [{ inputs: [ok], outputs: [small] }, "outputs[0]"],
        [undefined, "inputs"]
      ] as const
      for (const [surfaces, argument] of cases) {
        const error = yield* Effect.flip(m.bindRequest(surfaces as never))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", op: "Model.bindRequest", argument })
      }
      expect(yield* ane.liveHandles).toBe(live)
      // A surface from another client is refused by the backend.
      const foreign = yield* Effect.flatMap(Ane.Ane, (other) => other.createSurface(size)).pipe(
        Effect.provide(Ane.layerSimulator({ latency: "off" }))
      )
      expect(yield* Effect.flip(m.bindRequest({ inputs: [foreign], outputs: [ok] }))).toMatchObject({ _tag: "MapError" })
    }).pipe(sim))

  it.scoped("closes with its scope, its model or any of its surfaces, and releases what it mapped", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const live0 = yield* ane.liveHandles
      const modelScope = yield* Scope.make()
      const m = yield* ane.compile(double(8, 64)).pipe(Scope.extend(modelScope))
      const size = m.inputs[0]!.allocSize
      const surfaceScope = yield* Scope.make()
      const sIn = yield* ane.createSurface(size).pipe(Scope.extend(surfaceScope))
      const sOut = yield* ane.createSurface(size)
      const requestScope = yield* Scope.make()
      const r = yield* m.bindRequest({ inputs: [sIn], outputs: [sOut] }).pipe(Scope.extend(requestScope))
      yield* r.eval
      yield* Scope.close(surfaceScope, Exit.void)
      expect(yield* Effect.flip(r.eval)).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(m.bindRequest({ inputs: [sIn], outputs: [sOut] }))).toMatchObject({ _tag: "ClosedError" })
      yield* Scope.close(requestScope, Exit.void)
      const r2Scope = yield* Scope.make()
      const sIn2 = yield* ane.createSurface(size)
      const r2 = yield* m.bindRequest({ inputs: [sIn2], outputs: [sOut] }).pipe(Scope.extend(r2Scope))
      yield* Scope.close(modelScope, Exit.void)
      expect(yield* Effect.flip(r2.writeInputF32(0, pattern(512)))).toMatchObject({ _tag: "ClosedError" })
      yield* Scope.close(r2Scope, Exit.void)
      // Only the two surfaces still held by this test's scope are left.
      expect(yield* ane.liveHandles).toBe(live0 + 2)
    }).pipe(sim))
})
