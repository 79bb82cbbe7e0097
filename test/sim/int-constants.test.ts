/**
 * The simulator holds every tensor as float32: integer constants are exact within ±2^24 (and wherever float32 is
 * exact), and one it would change is refused with SIM-INT-PRECISION instead of being computed with another value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { writeBlobFile } from "../../src/mil/blob.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import * as Sim from "../../src/sim/SimBackend.js"
import { program } from "./helpers.js"

const withSim = <A, E>(eff: Effect.Effect<A, E, Backend | Scope.Scope>) =>
  eff.pipe(Effect.provide(Sim.layer({ latency: "off", rules: "off" })), Effect.scoped)

/** int32 constant `k` (literal or BLOBFILE) cast to an fp32 output. */
const castProgram = (kValue: string) => program("tensor<fp16, [1, 2]> x",
  `    tensor<int32, [2]> k = const()[name = string("k"), val = ${kValue}];
    tensor<fp32, [2]> y = cast(x = k, dtype = string("fp32"))[name = string("y")];`, "y")

const run = (text: string, weights?: Uint8Array) => withSim(Effect.gen(function*() {
  const m = yield* (yield* Backend).compile(CompileOptions.mil({ text, ...(weights ? { weights } : {}) }))
  yield* m.request.eval
  const out = m.request.outputs[0]!
  return Array.from(new Float32Array(out.buffer, out.byteOffset, 2))
}))

const diagnostics = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a typed compile failure")
  const e = exit.cause.error as { _tag: string; diagnostics?: ReadonlyArray<{ code: string; message: string; line: number }> }
  expect(e._tag).toBe("CompileError")
  return e.diagnostics ?? []
}

const int32Blob = (values: ReadonlyArray<number>) => {
  const blob = writeBlobFile([{ dtype: "int32", data: values }])
  if (!("bytes" in blob)) throw blob
  return blob.bytes
}
const blobRef = "tensor<int32, [2]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))"

describe("int32 constants on the simulator", () => {
  it.effect("within ±2^24, and larger values float32 holds exactly, are kept as written", () =>
    Effect.gen(function*() {
      expect(yield* run(castProgram("tensor<int32, [2]>([16777216, -16777216])"))).toEqual([16777216, -16777216])
      expect(yield* run(castProgram("tensor<int32, [2]>([1073741824, -2147483648])"))).toEqual([1073741824, -2147483648])
      expect(yield* run(castProgram(blobRef), int32Blob([-16777215, 33554432]))).toEqual([-16777215, 33554432])
    }))

  it.effect("int32(2147483647) is refused with SIM-INT-PRECISION, naming the value and what it would become", () =>
    Effect.gen(function*() {
      const d = diagnostics(yield* Effect.exit(run(castProgram("tensor<int32, [2]>([1, 2147483647])"))))
      expect(d[0]!.code).toBe("SIM-INT-PRECISION")
      expect(d[0]!.line).toBe(5)
      expect(d[0]!.message).toContain("2147483647 (element 1)")
      expect(d[0]!.message).toContain("2147483648")
    }))

  it.effect("2^24 + 1 is refused, in a literal and in a weight blob", () =>
    Effect.gen(function*() {
      const lit = diagnostics(yield* Effect.exit(run(castProgram("tensor<int32, [2]>([16777217, 0])"))))
      expect(lit.map((x) => x.code)).toEqual(["SIM-INT-PRECISION"])
      const blob = diagnostics(yield* Effect.exit(run(castProgram(blobRef), int32Blob([0, -16777217]))))
      expect(blob.map((x) => x.code)).toEqual(["SIM-INT-PRECISION"])
      expect(blob[0]!.message).toContain("-16777217")
    }))
})
