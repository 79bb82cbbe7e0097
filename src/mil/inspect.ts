/** A structural summary of a MIL program: functions and their I/O, op histogram, weights, estimated FLOPs. */
import type { MilFunction, Operation, Program, Value } from "./ast.js"
import { check } from "./check.js"
import type { CheckResult, FunctionTypes } from "./check.js"
import type { TensorType, ValueType } from "./ops/types.js"
import { dtypeBits, formatType, numel, resolveType } from "./ops/types.js"

/** A function input or output. */
export interface IoSummary {
  readonly name: string
  /** MIL-style type text, e.g. `tensor<fp16, [1, 64, 1, 256]>`. */
  readonly type: string
  readonly dtype: string | null
  /** null entries are unknown dims; null when the rank is unknown or the value is not a tensor. */
  readonly shape: ReadonlyArray<number | null> | null
}

/** One weight referenced through BLOBFILE. */
export interface WeightSummary {
  /** The value (op output) the weight defines. */
  readonly name: string
  readonly function: string
  readonly path: string
  /** Byte offset of the blob's metadata record. */
  readonly offset: number
  readonly dtype: string
  readonly shape: ReadonlyArray<number | null>
  /** Size of the data: elements × bits / 8, rounded up. */
  readonly bytes: number
}

/** Estimated floating-point operations (a multiply-add counts 2). */
export interface FlopSummary {
  readonly total: number
  /** By op name, for the ops with a FLOP model (conv, conv_transpose, matmul, linear, lstm, attention). */
  readonly byOp: Readonly<Record<string, number>>
  /** Ops with a FLOP model whose shapes were not fully known (not counted in `total`). */
  readonly unknown: number
}

/** One function's summary. */
export interface FunctionSummary {
  readonly name: string
  readonly opset: string | null
  readonly inputs: ReadonlyArray<IoSummary>
  readonly outputs: ReadonlyArray<IoSummary>
  readonly opCount: number
  /** Op name → count, most frequent first. */
  readonly histogram: ReadonlyArray<{ readonly op: string; readonly count: number }>
  readonly flops: FlopSummary
}

/** What {@link inspect} returns. */
export interface InspectReport {
  readonly version: string
  readonly functions: ReadonlyArray<FunctionSummary>
  /** Program-wide op histogram, most frequent first. */
  readonly histogram: ReadonlyArray<{ readonly op: string; readonly count: number }>
  readonly weights: ReadonlyArray<WeightSummary>
  readonly weightBytes: number
  readonly flops: FlopSummary
}

const ioOf = (name: string, t: ValueType | undefined): IoSummary => ({
  name,
  type: t ? formatType(t) : "?",
  dtype: t && t.kind === "tensor" ? t.dtype : null,
  shape: t && t.kind === "tensor" ? t.shape : null
})

const histogramOf = (counts: ReadonlyMap<string, number>) =>
  [...counts].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op))

const walk = (ops: ReadonlyArray<Operation>, f: (op: Operation) => void): void => {
  for (const op of ops) {
    f(op)
    for (const b of op.blocks) walk(b.operations, f)
  }
}

const argOf = (op: Operation, name: string): Value | undefined =>
  [...op.args, ...op.attributes].find((a) => a.name === name)?.value

const tensorOf = (v: Value | undefined, types: FunctionTypes | undefined): TensorType | null => {
  if (v === undefined) return null
  const t = v.kind === "ref" ? types?.types.get(v.name) : v.kind === "tuple" ? undefined : resolveType(v.type)
  return t !== undefined && t.kind === "tensor" ? t : null
}

const boolOf = (v: Value | undefined, types: FunctionTypes | undefined): boolean | null => {
  if (v === undefined) return false
  if (v.kind === "typed") return v.literal.kind === "bool" ? v.literal.value : null
  if (v.kind !== "ref") return null
  const c = types?.consts.get(v.name)
  const first = c === undefined ? undefined : c.kind === "inline" ? c.data[0] : c.kind === "splat" ? c.value : undefined
  return typeof first === "boolean" ? first : null
}

const prod = (xs: ReadonlyArray<number | null>): number | null => numel(xs)

/** FLOPs of one op, undefined when it has no FLOP model, null when its shapes are not known. */
export const opFlops = (op: Operation, types: FunctionTypes | undefined): number | null | undefined => {
  const out = op.outputs[0] ? types?.types.get(op.outputs[0].name) : undefined
  const outT = out && out.kind === "tensor" ? out : null
  switch (op.op) {
    case "conv": {
      const w = tensorOf(argOf(op, "weight"), types)
      if (!w || !outT || w.shape === null || outT.shape === null) return null
      // Every output element takes C_in/groups · ∏K multiply-adds: weight.shape[1:] is exactly that.
      const perOut = prod(w.shape.slice(1))
      const outs = prod(outT.shape)
      return perOut === null || outs === null ? null : 2 * perOut * outs
    }
    case "conv_transpose": {
      const x = tensorOf(argOf(op, "x"), types)
      const w = tensorOf(argOf(op, "weight"), types)
      if (!x || !w || x.shape === null || w.shape === null) return null
      const ins = prod(x.shape)
      const perIn = prod(w.shape.slice(1))
      return ins === null || perIn === null ? null : 2 * ins * perIn
    }
    case "matmul": {
      const x = tensorOf(argOf(op, "x"), types)
      if (!x || !outT || x.shape === null || outT.shape === null || x.shape.length === 0) return null
      const transposed = boolOf(argOf(op, "transpose_x"), types)
      // K is x's last dim, or its second-to-last when transpose_x is set .
      const k = x.shape.length === 1 ? x.shape[0] : transposed === true ? x.shape[x.shape.length - 2]
        : transposed === false ? x.shape[x.shape.length - 1] : null
      const outs = prod(outT.shape)
      return k === null || outs === null ? null : 2 * k * outs
    }
    case "linear": {
      const x = tensorOf(argOf(op, "x"), types)
      if (!x || !outT || x.shape === null || outT.shape === null || x.shape.length === 0) return null
      const k = x.shape[x.shape.length - 1]
      const outs = prod(outT.shape)
      return k === null || outs === null ? null : 2 * k * outs
    }
    case "scaled_dot_product_attention": {
      const q = tensorOf(argOf(op, "query"), types)
      const k = tensorOf(argOf(op, "key"), types)
      const v = tensorOf(argOf(op, "value"), types)
      if (!q || !k || !v || q.shape === null || k.shape === null || v.shape === null || q.shape.length < 2) return null
      const qn = prod(q.shape)
      const s = k.shape[k.shape.length - 2]
      const ev = v.shape[v.shape.length - 1]
      const e = q.shape[q.shape.length - 1]
      if (qn === null || s === null || ev === null || e === null || e === 0) return null
      return 2 * qn * s + 2 * (qn / e) * s * ev
    }
    case "lstm": {
      const x = tensorOf(argOf(op, "x"), types)
      const whh = tensorOf(argOf(op, "weight_hh"), types)
      const wih = tensorOf(argOf(op, "weight_ih"), types)
      if (!x || !whh || !wih || x.shape === null || whh.shape === null || wih.shape === null) return null
      const steps = x.shape.length === 3 ? prod(x.shape.slice(0, 2)) : null
      const per = prod(wih.shape) !== null && prod(whh.shape) !== null ? prod(wih.shape)! + prod(whh.shape)! : null
      return steps === null || per === null ? null : 2 * steps * per
    }
    default:
      return undefined
  }
}

const flopsOf = (ops: ReadonlyArray<Operation>, types: FunctionTypes | undefined) => {
  const byOp = new Map<string, number>()
  let total = 0
  let unknown = 0
  walk(ops, (op) => {
    const f = opFlops(op, types)
    if (f === undefined) return
    if (f === null) unknown++
    else {
      total += f
      byOp.set(op.op, (byOp.get(op.op) ?? 0) + f)
    }
  })
  return { total, byOp, unknown }
}

const weightsOf = (fn: MilFunction): ReadonlyArray<WeightSummary> => {
  const out: Array<WeightSummary> = []
  walk(fn.body.operations, (op) => {
    for (const a of [...op.args, ...op.attributes]) {
      if (a.value.kind !== "blob") continue
      const t = resolveType(a.value.type)
      const shape = t.kind === "tensor" && t.shape !== null ? t.shape : []
      const n = numel(shape)
      const dtype = t.kind === "tensor" ? t.dtype : "?"
      out.push({
        name: op.outputs[0]?.name ?? op.op,
        function: fn.name,
        path: a.value.path,
        offset: Number(a.value.offset),
        dtype,
        shape,
        bytes: n === null ? 0 : Math.ceil((n * dtypeBits(dtype)) / 8)
      })
    }
  })
  return out
}

/** Summarises a program; pass the checker's result when you have it (it is computed otherwise). */
export const inspect = (program: Program, checked?: CheckResult): InspectReport => {
  const result = checked ?? check(program)
  const all = new Map<string, number>()
  const byOpTotal = new Map<string, number>()
  let flopTotal = 0
  let flopUnknown = 0
  const weights: Array<WeightSummary> = []
  const functions = program.functions.map((fn): FunctionSummary => {
    const types = result.functions.get(fn.name)
    const counts = new Map<string, number>()
    let opCount = 0
    walk(fn.body.operations, (op) => {
      opCount++
      counts.set(op.op, (counts.get(op.op) ?? 0) + 1)
      all.set(op.op, (all.get(op.op) ?? 0) + 1)
    })
    const f = flopsOf(fn.body.operations, types)
    flopTotal += f.total
    flopUnknown += f.unknown
    for (const [k, v] of f.byOp) byOpTotal.set(k, (byOpTotal.get(k) ?? 0) + v)
    weights.push(...weightsOf(fn))
    return {
      name: fn.name,
      opset: fn.opset,
      inputs: fn.inputs.map((i) => ioOf(i.name, types?.types.get(i.name) ?? resolveType(i.type))),
      outputs: fn.body.outputs.map((o) => ioOf(o, types?.types.get(o))),
      opCount,
      histogram: histogramOf(counts),
      flops: { total: f.total, byOp: Object.fromEntries(f.byOp), unknown: f.unknown }
    }
  })
  return {
    version: program.version,
    functions,
    histogram: histogramOf(all),
    weights,
    weightBytes: weights.reduce((a, w) => a + w.bytes, 0),
    flops: { total: flopTotal, byOp: Object.fromEntries(byOpTotal), unknown: flopUnknown }
  }
}

/** `1.57 MFLOPs`, `96 FLOPs`. */
const flopText = (n: number): string => {
  const units: ReadonlyArray<readonly [number, string]> = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]]
  for (const [scale, prefix] of units) if (n >= scale) return `${(n / scale).toFixed(2)} ${prefix}FLOPs`
  return `${n} FLOPs`
}

/** The report as readable text (what `ane inspect` prints without `--json`). */
export const formatInspectReport = (r: InspectReport): string => {
  const lines: Array<string> = [`program(${r.version})`]
  for (const fn of r.functions) {
    lines.push("", `func ${fn.name}${fn.opset ? `<${fn.opset}>` : ""}: ${fn.opCount} ops, ${flopText(fn.flops.total)}` +
      (fn.flops.unknown > 0 ? ` (+${fn.flops.unknown} ops of unknown size)` : ""))
    for (const i of fn.inputs) lines.push(`  in  ${i.name}: ${i.type}`)
    for (const o of fn.outputs) lines.push(`  out ${o.name}: ${o.type}`)
    lines.push(`  ops: ${fn.histogram.map((h) => `${h.op} ×${h.count}`).join(", ")}`)
  }
  lines.push("", `weights: ${r.weights.length} blob(s), ${r.weightBytes} bytes`)
  for (const w of r.weights) {
    lines.push(`  ${w.name}: ${w.dtype} [${w.shape.map((d) => d ?? "?").join(", ")}] ${w.bytes} bytes at ` +
      `${w.path} +${w.offset}`)
  }
  const by = Object.entries(r.flops.byOp).map(([k, v]) => `${k} ${flopText(v)}`).join(", ")
  lines.push("", `estimated: ${flopText(r.flops.total)}${by ? ` (${by})` : ""}`)
  return lines.join("\n")
}
