/**
 * The simulator sizes nothing from a declared shape before checking it against `maxTensorBytes`, and holds only the
 * intermediates still to be read: a dead value's buffer is reused by a later one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { parse } from "../../src/mil/parser.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import { plan, type Plan } from "../../src/sim/interpreter.js"
import * as Sim from "../../src/sim/SimBackend.js"
import { program } from "./helpers.js"

const withSim = (options: Sim.SimulatorOptions = {}) =>
  <A, E>(eff: Effect.Effect<A, E, Backend | Scope.Scope>) =>
    eff.pipe(Effect.provide(Sim.layer({ latency: "off", ...options })), Effect.scoped)

const compileExit = (text: string, options: Sim.SimulatorOptions) =>
  withSim(options)(Effect.exit(Effect.flatMap(Backend, (be) => be.compile(CompileOptions.mil({ text })))))

/** The typed failure of a compile that must fail. */
const failure = (exit: Exit.Exit<unknown, unknown>): { _tag: string; [k: string]: unknown } => {
  if (Exit.isSuccess(exit)) throw new Error("expected the compile to fail")
  const c = exit.cause
  if (c._tag !== "Fail") throw new Error(`expected a typed failure, found ${c._tag}: ${String(c)}`)
  return c.error as { _tag: string }
}

const codes = (e: { [k: string]: unknown }) => ((e.diagnostics ?? []) as ReadonlyArray<{ code: string }>).map((d) => d.code)

describe("maxTensorBytes", () => {
  it.effect("I/O of [65536, 65536, 64, 64] fails the compile, typed, instead of an Invalid typed array length", () =>
    Effect.gen(function*() {
      const text = program("tensor<fp16, [65536, 65536, 64, 64]> x",
        "    tensor<fp16, [65536, 65536, 64, 64]> y = relu(x = x)[name = string(\"y\")];", "y")
      for (const rules of ["error", "warn", "off"] as const) {
        const e = failure(yield* compileExit(text, { rules }))
        expect(e._tag).toBe("CompileError")
        expect(codes(e)).toContain("SIM-TENSOR-TOO-LARGE")
      }
    }))

  it.effect("a tensor over the limit is refused where it is declared, with the limit named", () =>
    Effect.gen(function*() {
      const text = program("tensor<fp16, [1, 4, 1, 64]> x",
        "    tensor<fp16, [1, 4, 1, 64]> c = const()[name = string(\"c\"), val = tensor<fp16, [1, 4, 1, 64]>(0x1p0)];\n" +
          "    tensor<fp16, [1, 4, 1, 64]> y = add(x = x, y = c)[name = string(\"y\")];", "y")
      const ok = yield* compileExit(text, { rules: "off", maxTensorBytes: 1024 })
      expect(Exit.isSuccess(ok)).toBe(true)
      const e = failure(yield* compileExit(text, { rules: "off", maxTensorBytes: 1023 }))
      const d = (e.diagnostics as ReadonlyArray<{ code: string; line: number; message: string; hint?: string }>)[0]!
      expect(d.code).toBe("SIM-TENSOR-TOO-LARGE")
      expect(d.line).toBe(4)
      expect(d.message).toContain("1024 bytes")
      expect(d.message).toContain("1023")
      expect(d.hint).toContain("maxTensorBytes")
    }))

  it.effect("a splat const of 2^32 elements is refused before it is filled", () =>
    Effect.gen(function*() {
      const text = program("tensor<fp16, [1, 4]> x",
        "    tensor<fp16, [1, 65536, 1, 65536]> c = const()[name = string(\"c\"), val = tensor<fp16, [1, 65536, 1, 65536]>(0x1p0)];\n" +
          "    tensor<fp16, [1, 65536, 1, 65536]> z = identity(x = c)[name = string(\"z\")];\n" +
          "    tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];", "y")
      const e = failure(yield* compileExit(text, { rules: "off" }))
      const d = (e.diagnostics as ReadonlyArray<{ code: string; line: number }>)[0]!
      expect([d.code, d.line]).toEqual(["SIM-TENSOR-TOO-LARGE", 5])
    }))

  it("a const nothing reads takes no buffer (the 394-byte program's 256 MiB splat)", () => {
    const text = program("tensor<fp16, [1, 4]> x",
      "    tensor<fp16, [1, 1024, 1, 65536]> c = const()[name = string(\"c\"), val = tensor<fp16, [1, 1024, 1, 65536]>(0x1p0)];\n" +
        "    tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];", "y")
    const p = planOf(text)
    expect(p.bufferBytes).toBe(2 * 4 * 4)
    // Its weight file is still checked.
    const blob = program("tensor<fp16, [1, 4]> x",
      "    tensor<fp16, [4]> w = const()[name = string(\"w\"), val = tensor<fp16, [4]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];\n" +
        "    tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];", "y")
    const r = plan(parse(blob).program!, { numerics: "ane", weight: () => undefined })
    expect("run" in r ? [] : r.map((d) => d.code)).toEqual(["SIM-BLOB-MISSING"])
  })

  it.effect("an I/O surface over the limit (rows padded to 64 bytes) is an UnsupportedLayoutError", () =>
    Effect.gen(function*() {
      // 64 fp16 rows of one element: 256 bytes of simulator buffer, but a 4096-byte surface.
      const text = program("tensor<fp16, [1, 1, 64, 1]> x",
        "    tensor<fp16, [1, 1, 64, 1]> y = relu(x = x)[name = string(\"y\")];", "y")
      const e = failure(yield* compileExit(text, { rules: "off", maxTensorBytes: 1024 }))
      expect(e._tag).toBe("UnsupportedLayoutError")
      expect(String(e.reason)).toContain("4096 bytes")
    }))

  it.effect("createSurface refuses more bytes than the limit", () =>
    withSim({ maxTensorBytes: 4096 })(Effect.gen(function*() {
      const be = yield* Backend
      const ok = yield* Effect.exit(be.createSurface(4096))
      expect(Exit.isSuccess(ok)).toBe(true)
      const e = failure(yield* Effect.exit(be.createSurface(4097)))
      expect(e._tag).toBe("InvalidArgumentError")
      expect(String(e.expected)).toContain("4096")
    })))

  it.effect("a kernel's working buffer (conv's im2col, 9× its input here) is held to the limit too", () =>
    Effect.gen(function*() {
      const text = program("tensor<fp32, [1, 8, 16, 16]> x",
        "    tensor<fp32, [8, 8, 3, 3]> w = const()[name = string(\"w\"), val = tensor<fp32, [8, 8, 3, 3]>(0.5)];\n" +
          "    tensor<fp32, [1, 8, 16, 16]> y = conv(x = x, weight = w, pad_type = string(\"same\"))[name = string(\"y\")];", "y")
      expect(Exit.isSuccess(yield* compileExit(text, { rules: "off", maxTensorBytes: 80_000 }))).toBe(true)
      const e = failure(yield* compileExit(text, { rules: "off", maxTensorBytes: 16_384 }))
      const d = (e.diagnostics as ReadonlyArray<{ code: string; message: string }>)[0]!
      expect(d.code).toBe("SIM-TENSOR-TOO-LARGE")
      expect(d.message).toContain("working buffer of 18432 float32s")
    }))

  it.effect("an invalid limit falls back to the default", () =>
    Effect.gen(function*() {
      const text = program("tensor<fp16, [1, 4]> x", "    tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];", "y")
      for (const maxTensorBytes of [0, -1, Number.NaN, 1.5]) {
        expect(Exit.isSuccess(yield* compileExit(text, { rules: "off", maxTensorBytes }))).toBe(true)
      }
    }))
})

const chain = (n: number, shape: string): string => {
  const lines: Array<string> = []
  let prev = "x"
  for (let i = 0; i < n; i++) {
    const op = i % 2 === 0 ? "relu" : "sigmoid"
    lines.push(`    tensor<fp16, ${shape}> v${i} = ${op}(x = ${prev})[name = string("v${i}")];`)
    prev = `v${i}`
  }
  return program(`tensor<fp16, ${shape}> x`, lines.join("\n"), prev)
}

const planOf = (text: string): Plan => {
  const p = parse(text).program
  if (p === null) throw new Error("does not parse")
  const r = plan(p, { numerics: "ane", weight: () => undefined })
  if (!("run" in r)) throw new Error(r.map((d) => d.message).join("; "))
  return r
}

describe("counts in the planner", () => {
  it("split's num_splits must equal the outputs declared before it sizes anything", () => {
    for (const n of ["-2", "0", "3", "65536"]) {
      const text = program("tensor<fp16, [1, 4]> x",
        `    tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(x = x, num_splits = int32(${n}), axis = int32(1))[name = string("s")];`, "a")
      const r = plan(parse(text).program!, { numerics: "ane", weight: () => undefined })
      expect("run" in r).toBe(false)
      expect((r as ReadonlyArray<{ message: string }>)[0]!.message).toContain(`num_splits ${n} for 2 declared output(s)`)
    }
  })
})

describe("intermediate buffers", () => {
  it("a 10 000-op chain holds a few buffers, not one per intermediate", () => {
    const p = planOf(chain(10_000, "[1, 64]"))
    expect(p.stepCount).toBe(10_000)
    // The input, the output and at most two in flight: each 64 float32s.
    expect(p.bufferCount).toBeLessThanOrEqual(4)
    expect(p.bufferBytes).toBeLessThanOrEqual(4 * 64 * 4)
  })

  it("reusing buffers does not change results, over repeated evaluations", () => {
    // A value read by two later ops, padding that leaves elements untouched, and outputs read after the run.
    const text = program("tensor<fp32, [1, 12]> x", [
      "    tensor<fp32, [1, 12]> h = mul(x = x, y = x)[name = string(\"h\")];",
      "    tensor<fp32, [1, 8]> g = slice_by_size(x = h, begin = tensor<int32, [2]>([0, 2]), size = tensor<int32, [2]>([1, 8]))[name = string(\"g\")];",
      "    tensor<fp32, [1, 8]> a = relu(x = g)[name = string(\"a\")];",
      "    tensor<fp32, [1, 8]> b = sigmoid(x = a)[name = string(\"b\")];",
      "    tensor<fp32, [1, 8]> c = mul(x = a, y = b)[name = string(\"c\")];",
      // p takes h's buffer, which h's step fills on every run: the padding must still read 0.
      "    tensor<fp32, [1, 12]> p = pad(x = c, pad = tensor<int32, [4]>([0, 0, 2, 2]), mode = string(\"constant\"), constant_val = fp32(0))[name = string(\"p\")];",
      "    tensor<fp32, [1, 12]> q = add(x = p, y = p)[name = string(\"q\")];",
      "    tensor<fp32, [1, 12]> r = relu(x = q)[name = string(\"r\")];"
    ].join("\n"), "r, b")
    const parsed = parse(text).program!
    const p = plan(parsed, { numerics: "exact", weight: () => undefined })
    if (!("run" in p)) throw new Error(p.map((d) => d.message).join("; "))
    const sig = (v: number) => 1 / (1 + Math.exp(-v))
    for (const scale of [1, -3, 0.25]) {
      const x = [7, 9, -2, -1, -0.5, 0, 0.5, 1, 2, 3, 5, 6].map((v) => v * scale)
      p.inputs[0]!.data.set(x)
      p.run()
      const a = x.slice(2, 10).map((v) => Math.max(v * v, 0))
      const b = a.map(sig)
      const r = [0, 0, ...a.map((v, i) => 2 * v * b[i]!), 0, 0]
      const [outR, outB] = p.outputs
      r.forEach((v, i) => expect(outR!.data[i]).toBeCloseTo(v, 5))
      b.forEach((v, i) => expect(outB!.data[i]).toBeCloseTo(v, 5))
    }
  })
})
