/** Mil.build: valid programs print, parse and check; invalid ones fail with the checker's CompileError. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { build, buildSync, type Built } from "../../src/mil/build.js"
import { decodeBlob, readBlobAt, readBlobFile } from "../../src/mil/blob.js"
import { check } from "../../src/mil/check.js"
import { parse } from "../../src/mil/parser.js"
import { CompileError, InvalidArgumentError } from "../../src/schema/errors.js"

const linearBody = (weights: ArrayLike<number>) => (b: Parameters<Parameters<typeof buildSync>[1]>[0]) => {
  const x = b.input("x", "fp16", [1, 4, 1, 8])
  const w = b.const(weights, [4, 4, 1, 1])
  return { y: b.conv(x, w) }
}

const eye4 = Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0.5))

const thrown = (f: () => unknown): CompileError => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(CompileError)
    return e as CompileError
  }
  throw new Error("expected a CompileError")
}

const reparse = (r: Built) => {
  const parsed = parse(r.text)
  expect(parsed.diagnostics).toEqual([])
  return check(parsed.program!)
}

describe("Mil.build: valid programs", () => {
  it.effect("builds a 1×1 conv with its weight in a blob, checked with no diagnostics", () =>
    Effect.gen(function* () {
      const r = yield* build({ opset: "ios18" }, linearBody(eye4))
      expect(reparse(r).diagnostics).toEqual([])
      expect(r.text.startsWith("program(1.3)\n[buildInfo = dict<string, string>(")).toBe(true)
      expect(r.text).toContain("func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {")
      expect(r.text).toContain(
        'tensor<fp16, [4,4,1,1]> const_0 = const()[name=string("const_0"), val=tensor<fp16, [4,4,1,1]>(BLOBFILE(path=string("@model_path/weights/weight.bin"), offset=uint64(64)))];'
      )
      expect(r.text).toContain("tensor<fp16, [1,4,1,8]> y = conv(dilations=c_ints_1_1,groups=c_int32_1,pad=c_ints_0_0_0_0,pad_type=c_valid,strides=c_ints_1_1,weight=const_0,x=x)[name=string(\"y\")];")
      expect(r.text.endsWith("    } -> (y);\n}\n")).toBe(true)
      expect(r.inputs).toEqual([{ name: "x", dtype: "fp16", shape: [1, 4, 1, 8] }])
      expect(r.outputs).toEqual([{ name: "y", dtype: "fp16", shape: [1, 4, 1, 8] }])
      expect(r.weights.map((w) => w.path)).toEqual(["@model_path/weights/weight.bin"])
      const data = readBlobAt(r.weights[0]!.bytes, 64, { dtype: "fp16", elements: 16 })
      if (data instanceof InvalidArgumentError) throw data
      expect([...decodeBlob(data)]).toEqual(eye4)
    }))

  it("names values deterministically: same body, same text; repeated ops count up", () => {
    const body = (b: Parameters<Parameters<typeof buildSync>[1]>[0]) => {
      const x = b.input("x", "fp16", [1, 2, 1, 4])
      const a = b.relu(x)
      const c = b.relu(a)
      return { y: b.add(a, c) }
    }
    const r1 = buildSync({}, body)
    const r2 = buildSync({}, body)
    expect(r1.text).toBe(r2.text)
    expect(r1.text).toContain("relu_0 = relu(x=x)")
    expect(r1.text).toContain("relu_1 = relu(x=relu_0)")
    expect(r1.text).toContain("y = add(x=relu_0,y=relu_1)")
  })

  it("shares one const per parameter value (two convs use the same strides const)", () => {
    const r = buildSync({}, (b) => {
      const x = b.input("x", "fp16", [1, 4, 1, 8])
      const w = b.const(eye4, [4, 4, 1, 1], { name: "w" })
      return { y: b.conv(b.conv(x, w), w) }
    })
    expect(r.text.match(/c_ints_1_1 = const/g)?.length).toBe(1)
    expect(r.text.match(/= conv\(/g)?.length).toBe(2)
    expect(reparse(r).diagnostics).toEqual([])
  })

  it("keeps constants below the threshold inline and moves larger ones to the blob", () => {
    const r = buildSync({ weightThreshold: 4 }, (b) => {
      const x = b.input("x", "fp16", [1, 3, 1, 2])
      const small = b.const([1, 2, 3], [1, 3, 1, 1], { name: "small" })
      const big = b.const([1, 2, 3, 4, 5, 6], [1, 3, 1, 2], { name: "big" })
      return { y: b.add(b.mul(x, small), big) }
    })
    expect(r.text).toContain("val=tensor<fp16, [1,3,1,1]>([1.0,2.0,3.0])")
    expect(r.text).toContain('big = const()[name=string("big"), val=tensor<fp16, [1,3,1,2]>(BLOBFILE(')
    const file = readBlobFile(r.weights[0]!.bytes)
    if (file instanceof InvalidArgumentError) throw file
    expect(file.records.map((x) => [x.offset, x.elements])).toEqual([[64, 6]])
    expect(reparse(r).diagnostics).toEqual([])
  })

  it("writes constants naming a file into that file, each at its own metadata offset", () => {
    const r = buildSync({}, (b) => {
      const x = b.input("x", "fp16", [1, 2, 1, 1])
      const a = b.const([1, 2], [1, 2, 1, 1], { name: "a", file: "@model_path/weights/a.bin" })
      const c = b.const([3, 4], [1, 2, 1, 1], { name: "c", file: "@model_path/weights/a.bin" })
      const d = b.const([5, 6], [1, 2, 1, 1], { name: "d", file: "@model_path/weights/d.bin" })
      return { y: b.add(b.add(b.add(x, a), c), d) }
    })
    expect(r.weights.map((w) => [w.path, w.bytes.length])).toEqual([
      ["@model_path/weights/a.bin", 260],
      ["@model_path/weights/d.bin", 132]
    ])
    expect(r.text).toContain('path=string("@model_path/weights/a.bin"), offset=uint64(192)')
    expect(r.text).toContain('path=string("@model_path/weights/d.bin"), offset=uint64(64)')
  })

  it("prints iOS17 scalars as rank-0 tensors and the apple style with spaces", () => {
    const r = buildSync({ opset: "ios17", style: "apple" }, (b) => {
      const x = b.input("x", "fp16", [1, 4, 1, 2])
      return { y: b.softmax(x, { axis: 1 }) }
    })
    expect(r.text).toContain("func main<ios17>(")
    expect(r.text).toContain('tensor<int32, []> c_int32_1 = const()[name = tensor<string, []>("c_int32_1"), val = tensor<int32, []>(1)];')
    expect(r.text).toContain("y = softmax(axis = c_int32_1, x = x)")
    expect(reparse(r).diagnostics).toEqual([])
  })

  it("returns a bare tensor as the output `y` and infers shapes through reshape/transpose/matmul/concat", () => {
    const r = buildSync({}, (b) => {
      const x = b.input("x", "fp16", [1, 8, 1, 4])
      const h = b.transpose(b.reshape(x, [1, 2, 4, 4]), [0, 1, 3, 2])
      const s = b.matmul(h, h, { transposeY: true })
      const c = b.concat([s, s], { axis: 1 })
      return b.reduceSum(b.sliceBySize(c, [0, 0, 0, 0], [1, 3, 4, -1]), { axes: [-1] })
    })
    expect(r.outputs).toEqual([{ name: "y", dtype: "fp16", shape: [1, 3, 4, 1] }])
    expect(reparse(r).diagnostics).toEqual([])
  })
})

describe("Mil.build: less common ops and values", () => {
  it("writes ±inf and NaN with the parser's spellings and keeps fp16 constants exact", () => {
    const r = buildSync({}, (b) => {
      const x = b.input("x", "fp16", [1, 3])
      const c = b.const([-Infinity, 1 / 768, 65504], [1, 3], { name: "c" })
      return { y: b.maximum(b.add(x, c), -Infinity) }
    })
    expect(r.text).toContain("val=tensor<fp16, [1,3]>([-inf,0.001302,65504.0])")
    expect(r.text).toContain("val=fp16(-inf)")
    const program = parse(r.text).program!
    const cOp = program.functions[0]!.body.operations.find((o) => o.outputs[0]?.name === "c")!
    const val = cOp.attributes.find((a) => a.name === "val")!.value
    if (val.kind !== "typed" || val.literal.kind !== "list") throw new Error("expected an inline list")
    // 0.001302 reads back as the fp16 nearest 1/768 (0x1555), not a different one.
    expect(val.literal.items.map((i) => (i.kind === "number" ? i.value : NaN))[1]).toBeCloseTo(0.001302, 6)
  })

  it("offers cast, rsqrt (explicit epsilon), layer_norm, tile and a generic op escape hatch", () => {
    const r = buildSync({}, (b) => {
      const x = b.input("x", "fp32", [1, 4, 1, 2])
      const h = b.cast(x, "fp16")
      const g = b.const([1, 1, 1, 1], [4], { name: "g" })
      const n = b.layerNorm(h, { axes: [1], gamma: g, epsilon: 1e-3 })
      const t = b.tile(b.rsqrt(b.abs(n), { epsilon: 1e-3 }), [1, 1, 1, 2])
      return { y: b.op("sigmoid", { x: t }, { dtype: "fp16", shape: [1, 4, 1, 4] }) }
    })
    expect(r.text).toContain("cast(dtype=c_fp16,x=x)")
    expect(r.text).toContain("rsqrt(epsilon=c_fp16_0_001,x=abs_0)")
    expect(r.outputs[0]!.shape).toEqual([1, 4, 1, 4])
    expect(reparse(r).diagnostics).toEqual([])
  })

  it("a generic op whose declared output is wrong fails with the checker's diagnostic", () => {
    const e = thrown(() =>
      buildSync({}, (b) => ({ y: b.op("relu", { x: b.input("x", "fp16", [1, 4]) }, { dtype: "fp16", shape: [1, 5] }) }))
    )
    expect(e.diagnostics[0]!.kind).toBe("type")
    expect(e.diagnostics[0]!.line).toBe(5)
  })

  it("writes a state with write_state (no result) and reads it back", () => {
    const r = buildSync({}, (b) => {
      const s = b.state("cache", "fp16", [1, 2, 1, 4])
      b.writeState(s, b.input("v", "fp16", [1, 2, 1, 4]), { name: "store" })
      return { y: b.readState(s) }
    })
    expect(r.text).toContain('        write_state(data=v,input=cache)[name=string("store")];\n')
    expect(reparse(r).diagnostics).toEqual([])
    const wrong = thrown(() =>
      buildSync({}, (b) => {
        const s = b.state("cache", "fp16", [1, 4])
        b.writeState(s, b.input("v", "fp32", [1, 4]))
        return { y: b.readState(s) }
      })
    )
    expect(wrong.diagnostics[0]!.message).toContain("data expected dtype fp16")
  })

  it("reads and updates a state input", () => {
    const r = buildSync({}, (b) => {
      const s = b.state("cache", "fp16", [1, 2, 1, 4])
      const v = b.input("v", "fp16", [1, 2, 1, 4])
      const u = b.updateState(s, v)
      return { y: b.add(b.readState(s), u) }
    })
    expect(r.text).toContain("func main<ios18>(state<tensor<fp16, [1, 2, 1, 4]>> cache, tensor<fp16, [1, 2, 1, 4]> v)")
    expect(r.inputs[0]).toEqual({ name: "cache", dtype: "fp16", shape: [1, 2, 1, 4], state: true })
    expect(reparse(r).diagnostics).toEqual([])
  })
})

describe("Mil.build: invalid programs fail with the checker's diagnostics", () => {
  it("a conv whose weight has the wrong input channels: T006 positioned on the conv line", () => {
    const e = thrown(() =>
      buildSync({}, (b) => {
        const x = b.input("x", "fp16", [1, 3, 1, 4])
        return { y: b.conv(x, b.const(new Array(8).fill(1), [2, 4, 1, 1], { name: "w" })) }
      })
    )
    expect(e._tag).toBe("CompileError")
    const d = e.diagnostics[0]!
    expect(d.code).toBe("T006")
    expect(d.kind).toBe("type")
    expect(d.message).toContain("input channels")
    const text = String(e.cause)
    expect(text.split("\n")[d.line - 1]).toContain("= conv(")
  })

  it("mixed dtypes: T005 from the checker", () => {
    const e = thrown(() =>
      buildSync({}, (b) => ({ y: b.add(b.input("x", "fp16", [1, 2]), b.input("z", "fp32", [1, 2])) }))
    )
    expect(e.diagnostics.map((d) => d.code)).toEqual(["T005"])
    expect(e.message).toContain("expected dtype fp16")
  })

  it("a shape that does not broadcast", () => {
    const e = thrown(() =>
      buildSync({}, (b) => ({ y: b.mul(b.input("x", "fp16", [1, 4, 1, 3]), b.input("z", "fp16", [1, 2, 1, 3])) }))
    )
    expect(e.diagnostics[0]!.severity).toBe("error")
    expect(e.diagnostics[0]!.line).toBeGreaterThan(0)
  })

  it("builder-level mistakes: a reused name, a const of the wrong length, returning an input", () => {
    const reused = thrown(() =>
      buildSync({}, (b) => {
        const x = b.input("x", "fp16", [1, 2])
        return { y: b.relu(b.relu(x, { name: "r" }), { name: "r" }) }
      })
    )
    expect(reused.diagnostics[0]!.code).toBe("B001")
    expect(reused.diagnostics[0]!.message).toContain('"r" is already used')
    const short = thrown(() => buildSync({}, (b) => ({ y: b.add(b.input("x", "fp16", [1, 2]), b.const([1], [1, 2])) })))
    expect(short.message).toContain("1 values for shape [1, 2]")
    const passthrough = thrown(() => buildSync({}, (b) => ({ out: b.input("x", "fp16", [1, 2]) })))
    expect(passthrough.message).toContain("returns the input x unchanged")
  })

  it.effect("build fails in the error channel with the CompileError", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(build({}, (b) => ({ y: b.reshape(b.input("x", "fp16", [1, 6]), [4, 4]) })))
      expect(e._tag).toBe("CompileError")
      expect(e.diagnostics.length).toBeGreaterThan(0)
    }))
})
