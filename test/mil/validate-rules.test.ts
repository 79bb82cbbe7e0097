/** Every ANE rule: a program that triggers it and a close one that does not. */
import { describe, expect, it } from "@effect/vitest"
import { analyze } from "../../src/mil/analyze.js"
import { check } from "../../src/mil/check.js"
import { rules, validate } from "../../src/mil/validate.js"
import type { Chip } from "../../src/mil/validate.js"
import { milProgram, parseOk } from "./milText.js"

const X = "tensor<fp16, [1, 64, 1, 512]> x"
const T = "tensor<fp16, [1, 64, 1, 512]>"
const blob = (type: string, offset = 64) =>
  `${type}(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(${offset})))`

interface Case {
  readonly id: string
  readonly trigger: string
  readonly clean: string
  readonly chip?: Chip
  readonly cleanChip?: Chip
}

const prog = (inputs: string, body: string, outputs = "y", opset = "ios18") => milProgram(inputs, body, outputs, opset)

const conv = (w: string, extra = "") => prog(X, `
  tensor<fp16, ${w}> W = const()[name = string("W"), val = ${blob(`tensor<fp16, ${w}>`)}];
  tensor<fp16, [1, ?, 1, ?]> y = conv(pad_type = string("valid"), weight = W, x = x${extra});`)

const cases: ReadonlyArray<Case> = [
  {
    id: "ANE001",
    trigger: prog("tensor<fp16, [1, 64, 1, ?]> x", "tensor<fp16, [1, 64, 1, ?]> y = relu(x = x);"),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE002",
    trigger: prog("tensor<int32, [1, 64, 1, 512]> x", `${T} y = cast(dtype = string("fp16"), x = x);`),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE003",
    trigger: prog("tensor<fp32, [1, 64, 1, 512]> x", `${T} y = cast(dtype = string("fp16"), x = x);`),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE004",
    trigger: prog(`${X}, tensor<fp16, [1, 32, 1, 512]> z`, `${T} y = relu(x = x);`),
    clean: prog(`${X}, ${T} z`, `${T} y = add(x = x, y = z);`)
  },
  {
    id: "ANE005",
    trigger: prog(X, `${T} y = relu(x = x);
      tensor<fp16, [1, 64, 1, 1]> z = reduce_sum(axes = tensor<int32, [1]>([3]), keep_dims = bool(true), x = x);`, "y, z"),
    clean: prog(X, `${T} y = relu(x = x);
      ${T} z = sigmoid(x = x);`, "y, z")
  },
  {
    id: "ANE006",
    trigger: prog("tensor<fp16, [1, 4, 1, 32]> x", "tensor<fp16, [1, 4, 1, 32]> y = relu(x = x);"),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE007",
    trigger: prog("tensor<fp16, [1, 512, 1, 100]> x", "tensor<fp16, [1, 512, 1, 100]> y = relu(x = x);"),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE008",
    trigger: prog(`${T} b, ${T} a`, `${T} y = add(x = a, y = b);`),
    clean: prog(`${T} a, ${T} b`, `${T} y = add(x = a, y = b);`)
  },
  {
    id: "ANE009",
    trigger: prog(X, `${T} y = neg(x = x);`),
    clean: prog(X, `fp16 m = const()[name = string("m"), val = fp16(-1.0)];
      ${T} y = mul(x = x, y = m);`)
  },
  {
    id: "ANE010",
    trigger: prog(X, `${T} y = gelu(x = x);`),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE011",
    trigger: prog(X, `${T} y = log(x = x);`),
    clean: prog(X, `fp16 e = const()[name = string("e"), val = fp16(0.001)];
      ${T} y = log(epsilon = e, x = x);`)
  },
  {
    id: "ANE012",
    trigger: prog(X, `tensor<int32, [1, 64, 1, 512]> y = cast(dtype = string("int32"), x = x);`),
    clean: prog(X, `tensor<int16, [1, 64, 1, 512]> y = cast(dtype = string("int16"), x = x);`)
  },
  {
    id: "ANE013",
    trigger: prog(X, `tensor<fp16, [64, 64, 1, 1]> W = constexpr_blockwise_shift_scale(data = ${blob("tensor<int4, [64, 64, 1, 1]>")}, scale = ${blob("tensor<fp16, [64, 1, 1, 1]>", 4224)});
      tensor<fp16, [1, 64, 1, 512]> y = conv(pad_type = string("valid"), weight = W, x = x);`),
    clean: prog(X, `tensor<fp16, [64, 64, 1, 1]> W = constexpr_blockwise_shift_scale(data = ${blob("tensor<int8, [64, 64, 1, 1]>")}, scale = ${blob("tensor<fp16, [64, 1, 1, 1]>", 4224)});
      tensor<fp16, [1, 64, 1, 512]> y = conv(pad_type = string("valid"), weight = W, x = x);`)
  },
  {
    id: "ANE014",
    trigger: prog(X, `tensor<int32, [4]> c = const()[name = string("c"), val = tensor<int32, [4]>([1, 2, 3, 4])];
      tensor<int32, [4]> s = add(x = c, y = c);
      ${T} y = relu(x = x);`),
    clean: prog(X, `${T} y = add(x = x, y = x);`)
  },
  {
    id: "ANE015",
    trigger: prog(`${X}, tensor<int32, [4]> i`, `tensor<fp16, [4, 64, 1, 512]> y = gather(axis = int32(0), indices = i, x = x);`),
    clean: prog(X, `tensor<int32, [4]> i = const()[name = string("i"), val = tensor<int32, [4]>([0, 0, 0, 0])];
      tensor<fp16, [4, 64, 1, 512]> y = gather(axis = int32(0), indices = i, x = x);`)
  },
  {
    id: "ANE016",
    trigger: prog(`${X}, tensor<fp16, [64, 64, 1, 1]> w`, `${T} y = conv(pad_type = string("valid"), weight = w, x = x);`),
    clean: conv("[64, 64, 1, 1]")
  },
  {
    id: "ANE017",
    trigger: conv("[64, 64, 1, 1]", `, bias = ${blob("tensor<fp16, [64]>", 8384)}`),
    clean: conv("[64, 64, 1, 1]")
  },
  {
    id: "ANE018",
    trigger: prog("tensor<fp16, [1, 4, 64, 32]> q, tensor<fp16, [1, 1, 64, 64]> m",
      "tensor<fp16, [1, 4, 64, 32]> y = scaled_dot_product_attention(attn_mask = m, key = q, query = q, value = q);"),
    clean: prog("tensor<fp16, [1, 4, 64, 32]> q",
      "tensor<fp16, [1, 4, 64, 32]> y = scaled_dot_product_attention(key = q, query = q, value = q);")
  },
  {
    id: "ANE019",
    trigger: prog("tensor<fp16, [1, 4, 64, 32]> q",
      "tensor<fp16, [1, 4, 64, 32]> y = scaled_dot_product_attention(key = q, query = q, value = q);", "y", "ios17"),
    clean: prog("tensor<fp16, [1, 4, 64, 32]> q",
      "tensor<fp16, [1, 4, 64, 32]> y = scaled_dot_product_attention(key = q, query = q, value = q);")
  },
  {
    id: "ANE020",
    trigger: prog("tensor<fp16, [1, 1, 64, 64]> x",
      "tensor<fp16, [1, 1, 64, 64]> y = matmul(transpose_x = bool(false), transpose_y = bool(true), x = x, y = x);"),
    clean: prog("tensor<fp16, [1, 1, 64, 64]> x", `bool f = const()[name = string("f"), val = bool(false)];
      bool t = const()[name = string("t"), val = bool(true)];
      tensor<fp16, [1, 1, 64, 64]> y = matmul(transpose_x = f, transpose_y = t, x = x, y = x);`)
  },
  {
    id: "ANE021",
    trigger: prog(X, "tensor<fp16, [1, 128, 1, 512]> y = concat(axis = int32(1), values = (x, x));"),
    clean: prog(X, `int32 ax = const()[name = string("ax"), val = int32(1)];
      bool il = const()[name = string("il"), val = bool(false)];
      tensor<fp16, [1, 128, 1, 512]> y = concat(axis = ax, interleave = il, values = (x, x));`)
  },
  {
    id: "ANE022",
    trigger: prog(X, `tensor<fp32, [64]> g = const()[name = string("g"), val = ${blob("tensor<fp32, [64]>")}];
      fp32 e = const()[name = string("e"), val = fp32(0.001)];
      ${T} y = layer_norm(axes = tensor<int32, [1]>([1]), epsilon = e, gamma = g, x = x);`),
    clean: prog(X, `tensor<fp16, [64]> g = const()[name = string("g"), val = ${blob("tensor<fp16, [64]>")}];
      fp16 e = const()[name = string("e"), val = fp16(0.001)];
      ${T} y = layer_norm(axes = tensor<int32, [1]>([1]), epsilon = e, gamma = g, x = x);`)
  },
  {
    id: "ANE023",
    trigger: prog(`${X}, tensor<bool, [1, 64, 1, 512]> p`, `${T} y = cond(pred = p, x = x);`),
    clean: prog(`${X}, tensor<bool, [1, 64, 1, 512]> p`, `${T} y = select(a = x, b = x, cond = p);`)
  },
  {
    id: "ANE024",
    trigger: prog("tensor<fp16, [1, 16, 1, 4096]> x",
      "tensor<int32, [1, 16, 1]> y = reduce_argmax(axis = int32(-1), keep_dims = bool(false), x = x);"),
    clean: prog("tensor<fp16, [1, 16, 1, 2048]> x",
      "tensor<int32, [1, 16, 1]> y = reduce_argmax(axis = int32(-1), keep_dims = bool(false), x = x);")
  },
  {
    id: "ANE025",
    trigger: prog("tensor<fp16, [1, 64, 1, 1000]> x", `int32 a = const()[name = string("a"), val = int32(-1)];
      tensor<fp16, [1, 64, 1, 1000]> y = softmax(axis = a, x = x);`),
    clean: prog(X, `int32 a = const()[name = string("a"), val = int32(-1)];
      ${T} y = softmax(axis = a, x = x);`)
  },
  {
    id: "ANE026",
    trigger: prog(X, "tensor<fp16, [1, 64, 1, 256]> y = slice_by_index(begin = tensor<int32, [4]>([0, 0, 0, 0]), end = tensor<int32, [4]>([1, 64, 1, 256]), x = x);"),
    clean: prog(X, "tensor<fp16, [1, 64, 1, 256]> y = slice_by_size(begin = tensor<int32, [4]>([0, 0, 0, 0]), size = tensor<int32, [4]>([1, 64, 1, 256]), x = x);")
  },
  {
    id: "ANE027",
    trigger: prog(X, `fp16 e = const()[name = string("e"), val = fp16(0.00001)];
      ${T} y = log(epsilon = e, x = x);`),
    clean: prog(X, `fp16 e = const()[name = string("e"), val = fp16(0.0001)];
      ${T} y = log(epsilon = e, x = x);`)
  },
  { id: "ANE028", trigger: conv("[32768, 64, 1, 1]"), clean: conv("[256, 64, 1, 1]") },
  { id: "ANE029", trigger: conv("[64, 64, 1, 14]"), clean: conv("[64, 64, 1, 3]") },
  {
    id: "ANE030",
    trigger: prog("tensor<fp16, [1, 4, 1, 20000]> x", "tensor<fp16, [1, 4, 1, 20000]> y = relu(x = x);"),
    clean: prog("tensor<fp16, [1, 4, 1, 16384]> x", "tensor<fp16, [1, 4, 1, 16384]> y = relu(x = x);")
  },
  {
    id: "ANE031",
    trigger: prog("tensor<fp16, [1, 70000, 1, 32]> x", "tensor<fp16, [1, 70000, 1, 32]> y = relu(x = x);"),
    clean: prog("tensor<fp16, [1, 65536, 1, 32]> x", "tensor<fp16, [1, 65536, 1, 32]> y = relu(x = x);")
  },
  {
    id: "ANE032",
    trigger: prog(X, [...Array(17).keys()].map((i) =>
      `tensor<fp16, [64]> c${i} = const()[name = string("c${i}"), val = ${blob("tensor<fp16, [64]>", 64 + 192 * i)}];`)
      .join("\n") + `\n${T} y = relu(x = x);`),
    clean: prog(X, [...Array(16).keys()].map((i) =>
      `tensor<fp16, [64]> c${i} = const()[name = string("c${i}"), val = ${blob("tensor<fp16, [64]>", 64 + 192 * i)}];`)
      .join("\n") + `\n${T} y = relu(x = x);`)
  },
  {
    id: "ANE033",
    trigger: prog(X, `tensor<fp16, [4096, 4096]> w = const()[name = string("w"), val = ${blob("tensor<fp16, [4096, 4096]>")}];
      ${T} y = relu(x = x);`),
    clean: prog(X, `tensor<fp16, [1024, 1024]> w = const()[name = string("w"), val = ${blob("tensor<fp16, [1024, 1024]>")}];
      ${T} y = relu(x = x);`)
  },
  {
    id: "ANE034",
    trigger: prog(X, `${T} y = relu(x = x);`).replace(/\[buildInfo[^\n]*\n/, ""),
    clean: prog(X, `${T} y = relu(x = x);`)
  },
  {
    id: "ANE035",
    chip: "m1",
    trigger: prog(X, `${T} y = relu(x = x);`),
    clean: prog(X, `${T} y = relu(x = x);`).replace("program(1.3)", "program(1.0)")
  },
  {
    id: "ANE036",
    trigger: prog("tensor<fp32, [1, 64, 1, 512]> x", `tensor<fp32, [1, 64, 1, 512]> r = relu(x = x);
      ${T} y = cast(dtype = string("fp16"), x = r);`),
    clean: prog("tensor<fp32, [1, 64, 1, 512]> x", `${T} h = cast(dtype = string("fp16"), x = x);
      ${T} y = relu(x = h);`)
  }
]

const codes = (text: string, chip?: Chip) =>
  validate(parseOk(text), chip !== undefined ? { chip } : {}).map((d) => d.code)

describe("ANE rules", () => {
  it("every rule has a case", () => {
    expect(cases.map((c) => c.id)).toEqual(rules.map((r) => r.id))
  })
  describe.each(cases.map((c) => [c.id, c] as const))("%s", (id, c) => {
    const rule = rules.find((r) => r.id === id)!
    it("uses well-typed programs", () => {
      for (const text of [c.trigger, c.clean]) {
        expect(check(parseOk(text)).diagnostics.filter((d) => d.severity === "error").map((d) => d.message)).toEqual([])
      }
    })
    it(`fires on a program that breaks it (${rule.name})`, () => {
      const found = validate(parseOk(c.trigger), c.chip !== undefined ? { chip: c.chip } : {})
        .filter((d) => d.code === id)
      expect(found.length).toBeGreaterThan(0)
      for (const d of found) {
        expect(d.kind).toBe("ane")
        expect(d.severity).toBe(rule.severity)
        expect(d.message).toContain("expected")
        expect(d.hint?.trim().length ?? 0).toBeGreaterThan(0)
        expect(d.line).toBeGreaterThan(0)
      }
    })
    it(`stays quiet on a close program that keeps it`, () => {
      expect(codes(c.clean, c.cleanChip ?? c.chip)).not.toContain(id)
    })
  })
})

describe("chip families", () => {
  const wide = prog("tensor<fp16, [1, 4, 1, 20000]> x", "tensor<fp16, [1, 4, 1, 20000]> y = relu(x = x);")
  it("the 16,384 width cap applies to M1/M2 and an unnamed chip, not from M3 on", () => {
    expect(codes(wide, "m1")).toContain("ANE030")
    expect(codes(wide, "m2")).toContain("ANE030")
    expect(codes(wide)).toContain("ANE030")
    expect(codes(wide, "m3")).not.toContain("ANE030")
    expect(codes(wide, "m5")).not.toContain("ANE030")
  })
  it("a 14-wide conv kernel is over the cap except on M5 (15)", () => {
    const k14 = conv("[64, 64, 1, 14]")
    expect(codes(k14, "m4")).toContain("ANE029")
    expect(codes(k14, "m5")).not.toContain("ANE029")
    expect(codes(conv("[64, 64, 1, 16]"), "m5")).toContain("ANE029")
  })
  it("the program(1.3) rule only runs for M1", () => {
    const p13 = prog(X, `${T} y = relu(x = x);`)
    expect(codes(p13, "m1")).toContain("ANE035")
    expect(codes(p13, "m2")).not.toContain("ANE035")
  })
})

describe("rule table", () => {
  it("has unique sequential ids and documents every rule", () => {
    rules.forEach((r, i) => {
      expect(r.id).toBe(`ANE${String(i + 1).padStart(3, "0")}`)
      expect(r.source).toMatch(/^spec\/ane-(constraints|field-facts)\.md|^spec\/mil-format/)
      expect(r.hint.length).toBeGreaterThan(10)
      expect(r.doc.length).toBeGreaterThan(20)
      expect(r.chips.length).toBeGreaterThan(0)
    })
    expect(new Set(rules.map((r) => r.name)).size).toBe(rules.length)
  })
})

describe("analyze", () => {
  const bad = prog(X, `${T} y = neg(x = x);`)
  it("reports ANE errors as errors by default", () => {
    const r = analyze(bad)
    expect(r.diagnostics.filter((d) => d.code === "ANE009").map((d) => d.severity)).toEqual(["error"])
    expect(r.program).not.toBeNull()
    expect(r.check?.functions.get("main")?.types.get("y")).toEqual({ kind: "tensor", dtype: "fp16", shape: [1, 64, 1, 512] })
  })
  it("rules: warn downgrades ANE errors to warnings but keeps type errors", () => {
    const r = analyze(bad.replace("y = neg(x = x)", "y = neg(x = nothere)"), { rules: "warn" })
    expect(r.diagnostics.filter((d) => d.kind === "ane" && d.severity === "error")).toEqual([])
    expect(r.diagnostics.filter((d) => d.code === "ANE009").map((d) => d.severity)).toEqual(["warning"])
    expect(r.diagnostics.filter((d) => d.kind === "type" && d.severity === "error").length).toBe(1)
  })
  it("rules: off skips validation", () => {
    expect(analyze(bad, { rules: "off" }).diagnostics.filter((d) => d.kind === "ane")).toEqual([])
  })
  it("a syntax error gives no program and no check", () => {
    const r = analyze("program(1.3) { func main<ios18>(", { file: "bad.mil" })
    expect(r.program).toBeNull()
    expect(r.check).toBeNull()
    expect(r.diagnostics[0].kind).toBe("syntax")
    expect(r.diagnostics[0].file).toBe("bad.mil")
  })
  it("copies the file into every diagnostic", () => {
    const r = analyze(bad, { file: "f.mil", chip: "m4" })
    expect(r.diagnostics.length).toBeGreaterThan(0)
    for (const d of r.diagnostics) expect(d.file).toBe("f.mil")
  })
})
