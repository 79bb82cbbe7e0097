import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import { kernelMemoryInUse } from "../../src/sim/kernels/gemm.js"
import { gemm, setFma, setKernelBackend } from "../../src/sim/kernels/index.js"
import { KERNEL_BUFFER_MIN_BYTES } from "../../src/sim/interpreter.js"
import { packSurface, unpackSurface } from "../../src/sim/layout.js"
import * as Sim from "../../src/sim/SimBackend.js"
import { program, randoms, views } from "./helpers.js"

// A simulated model keeps its large run-time tensors in the GEMM kernels' memory, so its contractions read and
// write them in place; the memory goes back when the model is released.
const n = 160
const mm = program(
  `tensor<fp32, [${n}, ${n}]> a, tensor<fp32, [${n}, ${n}]> b`,
  `    tensor<fp32, [${n}, ${n}]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string("y")];
    tensor<fp32, [${n}, ${n}]> z = matmul(x = y, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string("z")];`,
  "z"
)

const reference = (a: Float32Array, b: Float32Array): Float32Array => {
  const y = new Float32Array(n * n), z = new Float32Array(n * n)
  setKernelBackend("js")
  try {
    gemm(n, n, n, a, 0, n, false, b, 0, n, false, y, 0, n, false)
    gemm(n, n, n, y, 0, n, false, b, 0, n, false, z, 0, n, false)
  } finally {
    setKernelBackend("auto")
  }
  return z
}

describe("simulator tensors in the kernel memory", () => {
  it("the model's large tensors take kernel memory for its lifetime, and its products match the reference", () => {
    expect(4 * n * n).toBeGreaterThanOrEqual(KERNEL_BUFFER_MIN_BYTES)
    setFma(false)
    const a = randoms(n * n, 1), b = randoms(n * n, 2)
    // The products' own scratch (kept between calls) is taken before counting.
    gemm(n, n, n, a, 0, n, false, b, 0, n, false, new Float32Array(n * n), 0, n, false)
    const before = kernelMemoryInUse()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const be = yield* Backend
      const m = yield* Scope.extend(be.compile(CompileOptions.mil({ text: mm })), scope)
      // a, b, y and z: four tensors of n² floats.
      expect(kernelMemoryInUse() - before).toBeGreaterThanOrEqual(4 * 4 * n * n)
      m.inputs.forEach((l, i) => packSurface(l, l.name === "a" ? a : b, views(m.request.inputs[i]!)))
      yield* m.request.eval
      const z = new Float32Array(n * n)
      unpackSurface(m.outputs[0]!, views(m.request.outputs[0]!), z)
      expect(Array.from(z)).toEqual(Array.from(reference(a, b)))
      yield* Scope.close(scope, Exit.void)
      expect(kernelMemoryInUse()).toBe(before)
      const closed = yield* Effect.flip(m.request.eval)
      expect(closed._tag).toBe("ClosedError")
    }).pipe(
      Effect.provide(Sim.layer({ latency: "off", numerics: "exact" })),
      Effect.scoped,
      Effect.ensuring(Effect.sync(() => setFma(true))),
      Effect.runPromise
    )
  })

  it("a compile that fails after planning gives the memory back", () => {
    const before = kernelMemoryInUse()
    return Effect.gen(function*() {
      const be = yield* Backend
      const e = yield* Effect.flip(be.compile(CompileOptions.mil({ text: mm })))
      expect(e._tag).toBe("ModelLoadError")
      expect(kernelMemoryInUse()).toBe(before)
    }).pipe(
      Effect.provide(Sim.layer({ latency: "off", numerics: "exact", faults: [{ stage: "load", nth: 1 }] })),
      Effect.scoped,
      Effect.runPromise
    )
  })
})
