/** Chain.copyOutputToInput: byte copies of output ranges into inputs, checked before a byte moves. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import * as Chain from "../../src/services/Chain.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { double, doubleText, pattern } from "./programs.js"

const sim = Effect.provide(Ane.layerSimulator({ latency: "off" }))
/** Values exact in fp16 whose doubles are too. */
const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 97) - 48)

describe("Chain.copyOutputToInput", () => {
  it.scoped("feeds one model's output into another's input without conversion", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const a = yield* ane.compile(double(8, 64))
      const b = yield* ane.compile(double(8, 64))
      yield* a.writeInputF32(0, ramp(8 * 64))
      yield* a.eval
      yield* Chain.copyOutputToInput(a, b, { srcOutput: 0, srcChannel: 0, dstInput: 0, dstChannel: 0, channels: 8 })
      yield* b.eval
      expect(Array.from(yield* b.readOutputF32(0))).toEqual(Array.from(ramp(8 * 64), (v) => 4 * v))
      // The raw bytes moved as they were.
      const out = (yield* a.surfaces).outputs[0]!
      const into = (yield* b.surfaces).inputs[0]!
      expect(Buffer.compare(Buffer.from(out), Buffer.from(into))).toBe(0)
    }).pipe(sim))

  it.scoped("copies a sub-range of channels and elements and leaves everything else alone", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const a = yield* ane.compile(double(6, 40))
      const b = yield* ane.compile(CompileOptions.mil({ text: doubleText(10, 48) }))
      yield* a.writeInputF32(0, ramp(6 * 40))
      yield* a.eval
      const before = pattern(10 * 48, 3)
      yield* b.writeInputF32(0, before)
      yield* Chain.copyOutputToInput(a, b, {
        srcOutput: 0, srcChannel: 2, srcOffset: 5, dstInput: 0, dstChannel: 7, dstOffset: 30, channels: 3, width: 12
      })
      const y = yield* a.readOutputF32(0)
      const after = yield* b.surfaces.pipe(Effect.flatMap(() => b.eval), Effect.zipRight(b.readOutputF32(0)))
      for (let c = 0; c < 10; c++) {
        for (let w = 0; w < 48; w++) {
          const inside = c >= 7 && c < 10 && w >= 30 && w < 42
          const input = inside ? y[(c - 7 + 2) * 40 + (w - 30 + 5)]! : before[c * 48 + w]!
          expect(after[c * 48 + w]).toBe(2 * input)
        }
      }
    }).pipe(sim))

  it.scoped("works between pooled requests and copies nothing for zero channels", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double(4, 32))
      const pool = yield* RequestPool.make(model, 2)
      const r0 = yield* pool.acquire
      const r1 = yield* pool.acquire
      yield* r0.writeInputF32(0, ramp(4 * 32))
      yield* r0.eval
      yield* r1.writeInputF32(0, new Float32Array(4 * 32).fill(1))
      yield* Chain.copyOutputToInput(r0, r1, { srcOutput: 0, srcChannel: 0, dstInput: 0, dstChannel: 0, channels: 0 })
      yield* r1.eval
      expect(Array.from(new Set(yield* r1.readOutputF32(0)))).toEqual([2])
      yield* Chain.copyOutputToInput(r0, r1, { srcOutput: 0, srcChannel: 1, dstInput: 0, dstChannel: 3, channels: 1, width: -1 })
      yield* r1.eval
      expect(Array.from((yield* r1.readOutputF32(0)).subarray(96))).toEqual(Array.from(ramp(4 * 32).subarray(32, 64), (v) => 4 * v))
    }).pipe(sim))

  it.scoped("names every bad index and extent, and answers ClosedError after close", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const a = yield* ane.compile(double(4, 32))
      const scope = yield* Scope.make()
      const b = yield* ane.compile(CompileOptions.mil({ text: doubleText(4, 16) })).pipe(Scope.extend(scope))
      const base = { srcOutput: 0, srcChannel: 0, dstInput: 0, dstChannel: 0, channels: 1, width: 8 }
      const cases: ReadonlyArray<readonly [Partial<Chain.OutputRange>, string]> = [
        [{ srcOutput: 1 }, "srcOutput"], [{ dstInput: -1 }, "dstInput"], [{ channels: -1 }, "channels"],
        [{ width: -1 }, "width"], [{ width: 2.5 }, "width"], [{ srcChannel: 4 }, "srcChannel"],
        [{ dstChannel: 3, channels: 2 }, "dstChannel"], [{ srcOffset: 25 }, "srcOffset"], [{ dstOffset: 9 }, "dstOffset"],
        [{ width: -1, srcOffset: 1 }, "width"]
      ]
      for (const [patch, argument] of cases) {
        const error = yield* Effect.flip(Chain.copyOutputToInput(a, b, { ...base, ...patch } as Chain.OutputRange))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", argument })
      }
      // fp32 elements, and a [1, 4, 2, 16] tensor: element sizes and heights must match and be 1.
      const f32 = yield* ane.compile(CompileOptions.mil({ text: doubleText(4, 16).replaceAll("fp16", "fp32") }))
      const tall = yield* ane.compile(CompileOptions.mil({ text: doubleText(4, 16).replaceAll(", 1, 16]", ", 2, 16]") }))
      for (const other of [f32, tall]) {
        const error = yield* Effect.flip(Chain.copyOutputToInput(a, other, base))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", argument: "range" })
      }
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(Chain.copyOutputToInput(a, b, base))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(sim))
})
