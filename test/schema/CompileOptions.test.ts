/** CompileOptions: constructors, defaults, and one typed failure per kind of bad option. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  CompileOptions,
  compileOptionsProblem,
  DEFAULT_QOS,
  InvalidArgumentError,
  MilCompileOptions,
  PackageCompileOptions
} from "../../src/schema/index.js"

const text = "program(1.3) { func main<ios18>() { } -> () }"

const rejects = (options: CompileOptions, argument: string, ...fragments: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const e = yield* Effect.flip(CompileOptions.validate(options))
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect(e.argument).toBe(argument)
    expect(e.op).toBe("Ane.compile")
    for (const f of fragments) expect(e.message).toContain(f)
  })

describe("CompileOptions constructors", () => {
  it("gives a single bare weight blob the conventional in-memory path", () => {
    const bytes = new Uint8Array([1, 2, 3])
    const o = CompileOptions.mil({ text, weights: bytes })
    expect(o).toBeInstanceOf(MilCompileOptions)
    expect(o.weights).toHaveLength(1)
    expect(o.weights[0]!.path).toBe("@model_path/weights/weight.bin")
    expect(o.weights[0]!.bytes).toBe(bytes)
  })

  it("keeps named weight files in order and fills defaults (QoS 21 = 0x15, no perf counters)", () => {
    const o = CompileOptions.mil({
      text,
      weights: [{ path: "@model_path/weights/a.bin", bytes: new Uint8Array(1) }, { path: "@model_path/weights/b.bin", bytes: new Uint8Array(2) }]
    })
    expect(o.weights.map((w) => w.path)).toEqual(["@model_path/weights/a.bin", "@model_path/weights/b.bin"])
    expect(o.qos).toBe(0x15)
    expect(DEFAULT_QOS).toBe(0x15)
    expect(o.perfStatsMask).toBe(0)
    expect(CompileOptions.mil({ text }).weights).toEqual([])
  })

  it("builds package options with the default model key", () => {
    const o = CompileOptions.package({ path: "/tmp/m.mlmodelc" })
    expect(o).toBeInstanceOf(PackageCompileOptions)
    expect(o._tag).toBe("package")
    expect(o.modelKey).toBe("s")
    expect(CompileOptions.package({ path: "/x", modelKey: "k", qos: 33 }).qos).toBe(33)
  })
})

describe("CompileOptions.validate", () => {
  it.effect("accepts well-formed options unchanged", () =>
    Effect.gen(function* () {
      const o = CompileOptions.mil({ text, weights: new Uint8Array(4), qos: 33, perfStatsMask: 15 })
      expect(yield* CompileOptions.validate(o)).toBe(o)
      const p = CompileOptions.package({ path: "/m.mlmodelc", qos: 0 })
      expect(yield* CompileOptions.validate(p)).toBe(p)
    }))

  it.effect("rejects duplicate weight paths", () =>
    rejects(
      CompileOptions.mil({ text, weights: [{ path: "@model_path/w.bin", bytes: new Uint8Array(1) }, { path: "@model_path/w.bin", bytes: new Uint8Array(1) }] }),
      "weights[1].path", "not used by another weight file", "duplicate \"@model_path/w.bin\""
    ))

  it.effect("rejects an empty weight path", () =>
    rejects(CompileOptions.mil({ text, weights: [{ path: "", bytes: new Uint8Array(1) }] }), "weights[0].path",
      "a non-empty path", "an empty path"))

  it.effect("rejects a QoS above the highest class", () =>
    rejects(CompileOptions.mil({ text, qos: 34 }), "qos", "an integer in 0..33", "got 34"))

  it.effect("rejects a negative QoS", () => rejects(CompileOptions.mil({ text, qos: -1 }), "qos", "got -1"))

  it.effect("rejects a fractional QoS", () => rejects(CompileOptions.mil({ text, qos: 21.5 }), "qos", "got 21.5"))

  it.effect("rejects a perf-stats mask above 15", () =>
    rejects(CompileOptions.mil({ text, perfStatsMask: 16 }), "perfStatsMask", "an integer in 0..15", "got 16"))

  it.effect("rejects a fractional perf-stats mask", () =>
    rejects(CompileOptions.mil({ text, perfStatsMask: 0.5 }), "perfStatsMask", "got 0.5"))

  it.effect("rejects empty MIL text", () => rejects(CompileOptions.mil({ text: "  \n" }), "text", "MIL program text"))

  it.effect("rejects an empty package path", () =>
    rejects(CompileOptions.package({ path: "" }), "path", ".mlmodelc directory path"))

  it.effect("rejects an empty model key", () =>
    rejects(CompileOptions.package({ path: "/m", modelKey: "" }), "modelKey", "a non-empty key"))

  it("reports the problem synchronously too, with the caller's op name", () => {
    const e = compileOptionsProblem(CompileOptions.mil({ text, qos: 99 }), "Ane.compileMil")
    expect(e?.op).toBe("Ane.compileMil")
    expect(e?.message).toBe("Ane.compileMil: invalid qos: expected an integer in 0..33 (Darwin QoS class; 21 is the default), got 99")
  })
})
