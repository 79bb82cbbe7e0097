/** Property: random well-formed programs survive print → parse unchanged (ignoring positions) in both styles. */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import {
  type Binding, type Block, type Dim, equalIgnoringPositions, type Literal, type MilFunction, type NamedValue, noPos,
  type Operation, type Program, type TypeExpr, type Value
} from "../../src/mil/ast.js"
import { parse } from "../../src/mil/parser.js"
import { print } from "../../src/mil/printer.js"

const pos = noPos
const ident = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,7}$/)
const dtype = fc.constantFrom("fp16", "fp32", "int32", "int8", "uint8", "bool", "string", "uint64", "uint1")

const dim: fc.Arbitrary<Dim> = fc.oneof(
  fc.nat({ max: 2 ** 31 }),
  fc.constant("?" as const),
  ident.map((symbol) => ({ symbol }))
)

const typeAt = (depth: number): fc.Arbitrary<TypeExpr> => {
  const leaf: fc.Arbitrary<TypeExpr> = fc.oneof(
    dtype.map((d): TypeExpr => ({ kind: "scalar", dtype: d, pos })),
    fc.record({ d: dtype, shape: fc.option(fc.array(dim, { maxLength: 5 }), { nil: null }) })
      .map(({ d, shape }): TypeExpr => ({ kind: "tensor", dtype: d, shape, pos }))
  )
  if (depth <= 0) return leaf
  const sub = typeAt(depth - 1)
  return fc.oneof(
    { arbitrary: leaf, weight: 3 },
    fc.record({ elem: sub, length: fc.option(dim, { nil: null }) })
      .map(({ elem, length }): TypeExpr => ({ kind: "list", elem, length, pos })),
    fc.array(sub, { maxLength: 3 }).map((elems): TypeExpr => ({ kind: "tuple", elems, pos })),
    fc.record({ key: sub, value: sub }).map(({ key, value }): TypeExpr => ({ kind: "dict", key, value, pos })),
    sub.map((inner): TypeExpr => ({ kind: "state", inner, pos }))
  )
}

/** Number literals with their source text and an independently computed value. */
const numberLit: fc.Arbitrary<Literal> = fc.oneof(
  fc.integer().map((n): Literal => ({ kind: "number", text: String(n), value: n, pos })),
  fc.double().map((x): Literal => ({ kind: "number", text: String(x), value: x, pos })),
  fc.record({
    neg: fc.boolean(),
    m: fc.integer({ min: 0, max: 2 ** 40 }),
    e: fc.integer({ min: -60, max: 60 }),
    split: fc.boolean()
  }).map(({ neg, m, e, split }): Literal => {
    const hex = m.toString(16)
    const sign = neg ? "-" : ""
    const exp = `p${e >= 0 ? "+" : ""}${e}`
    if (split && hex.length > 1) {
      const text = `${sign}0x${hex[0]}.${hex.slice(1)}${exp}`
      return { kind: "number", text, value: (neg ? -1 : 1) * m * 2 ** (e - 4 * (hex.length - 1)), pos }
    }
    return { kind: "number", text: `${sign}0x${hex}${exp}`, value: (neg ? -1 : 1) * m * 2 ** e, pos }
  }),
  fc.constantFrom(
    { kind: "number", text: "inf", value: Infinity, pos } as const,
    { kind: "number", text: "-inf", value: -Infinity, pos } as const,
    { kind: "number", text: "nan", value: NaN, pos } as const,
    { kind: "number", text: "1e-6", value: 1e-6, pos } as const
  )
)

const literalAt = (depth: number): fc.Arbitrary<Literal> => {
  const leaf: fc.Arbitrary<Literal> = fc.oneof(
    numberLit,
    fc.fullUnicodeString({ maxLength: 12 }).map((value): Literal => ({ kind: "string", value, pos })),
    fc.boolean().map((value): Literal => ({ kind: "bool", value, pos }))
  )
  if (depth <= 0) return leaf
  const sub = literalAt(depth - 1)
  return fc.oneof(
    { arbitrary: leaf, weight: 3 },
    fc.record({ items: fc.array(sub, { maxLength: 4 }), tuple: fc.boolean() })
      .map(({ items, tuple }): Literal => (tuple ? { kind: "list", items, tuple: true, pos } : { kind: "list", items, pos })),
    fc.array(fc.tuple(sub, sub), { maxLength: 3 }).map((entries): Literal => ({ kind: "dict", entries, pos }))
  )
}

const valueAt = (depth: number): fc.Arbitrary<Value> => {
  const leaf: fc.Arbitrary<Value> = fc.oneof(
    ident.map((name): Value => ({ kind: "ref", name, pos })),
    fc.record({ type: typeAt(1), literal: literalAt(2) }).map(({ type, literal }): Value => ({ kind: "typed", type, literal, pos })),
    fc.record({
      type: typeAt(1),
      pathType: typeAt(0),
      path: fc.fullUnicodeString({ maxLength: 20 }),
      offsetType: typeAt(0),
      offset: fc.bigUintN(64)
    }).map((b): Value => ({ kind: "blob", ...b, pos }))
  )
  if (depth <= 0) return leaf
  return fc.oneof(
    { arbitrary: leaf, weight: 3 },
    fc.array(valueAt(depth - 1), { maxLength: 3 }).map((items): Value => ({ kind: "tuple", items, pos }))
  )
}

const named = (depth: number): fc.Arbitrary<Array<NamedValue>> =>
  fc.array(fc.record({ name: ident, value: valueAt(depth) }).map((n): NamedValue => ({ ...n, pos })), { maxLength: 4 })

const binding: fc.Arbitrary<Binding> = fc.record({ name: ident, type: typeAt(2) }).map((b): Binding => ({ ...b, pos }))

const blockAt = (depth: number): fc.Arbitrary<Block> =>
  fc.record({
    params: fc.array(binding, { maxLength: 2 }),
    operations: fc.array(operationAt(depth), { maxLength: 3 }),
    outputs: fc.array(ident, { maxLength: 3 })
  }).map((b): Block => ({ ...b, pos }))

const operationAt = (depth: number): fc.Arbitrary<Operation> =>
  fc.record({
    outputs: fc.array(binding, { minLength: 1, maxLength: 3 }),
    op: ident,
    args: named(2),
    attributes: named(1),
    blocks: depth > 0 ? fc.array(blockAt(depth - 1), { maxLength: 2 }) : fc.constant([])
  }).map((o): Operation => ({ ...o, pos }))

const func: fc.Arbitrary<MilFunction> = fc.record({
  name: ident,
  opset: fc.option(fc.constantFrom("ios15", "ios16", "ios17", "ios18", "CoreML8"), { nil: null }),
  inputs: fc.array(binding, { maxLength: 3 }),
  attributes: named(1),
  body: fc.record({ operations: fc.array(operationAt(1), { maxLength: 5 }), outputs: fc.array(ident, { maxLength: 3 }) })
    .map(({ operations, outputs }): Block => ({ params: [], operations, outputs, pos }))
}).map((f): MilFunction => ({ ...f, pos }))

const program: fc.Arbitrary<Program> = fc.record({
  version: fc.constantFrom("1.0", "1.3", "1"),
  attributes: named(1),
  functions: fc.array(func, { maxLength: 3 })
}).map((p): Program => ({ ...p, pos }))

describe("print → parse round trip", () => {
  it.prop("random programs round-trip in both styles", [program], ([p]) => {
    for (const style of ["apple", "compact"] as const) {
      const text = print(p, { style })
      const r = parse(text)
      expect(r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([])
      expect(equalIgnoringPositions(r.program, p)).toBe(true)
    }
  }, { fastCheck: { numRuns: 300 } })

  it("detects a difference (the comparison is not vacuous)", () => {
    const p = fc.sample(program.filter((x) => x.functions.length > 0), { numRuns: 1, seed: 7 })[0]!
    const changed: Program = { ...p, functions: [{ ...p.functions[0]!, name: p.functions[0]!.name + "x" }] }
    expect(equalIgnoringPositions(parse(print(changed)).program, p)).toBe(false)
  })
})
