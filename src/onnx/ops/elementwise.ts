/** Elementwise ONNX ops: arithmetic, comparisons, logic, unary math, activations, Cast, Where, Clip. */
import type { Tensor } from "../../mil/build.js"
import type { Converter, NodeCtx } from "../context.js"
import { ELEMENT_TYPES } from "../read.js"
import { broadcastShapes, type Const, foldElementwise, type Kind, size, type Value } from "../values.js"

/** A const operand that is one element and does not raise the rank becomes a MIL scalar (what the ANE prefers). */
const operand = (c: NodeCtx, v: Value, other: Value): Tensor => {
  if (v.tag === "const" && size(v.shape) === 1 && v.shape.length <= other.shape.length) {
    return c.b.scalar(v.data[0]!, c.milDtype(v.kind))
  }
  return c.tensor(v)
}

const outShape = (c: NodeCtx, vs: ReadonlyArray<Value>): Array<number> => {
  let s: Array<number> | undefined = [...vs[0]!.shape]
  for (const v of vs.slice(1)) s = s && broadcastShapes(s, v.shape)
  if (s === undefined) c.fail(`input shapes ${vs.map((v) => `[${v.shape.join(", ")}]`).join(" and ")} do not broadcast`)
  return s
}

const fold = (c: NodeCtx, vs: ReadonlyArray<Const>, kind: Kind, f: (...v: Array<number>) => number): Const => {
  const r = foldElementwise(vs, kind, f)
  if (r === undefined) return c.fail(`input shapes ${vs.map((v) => `[${v.shape.join(", ")}]`).join(" and ")} do not broadcast`)
  return r
}

/** A binary op: folded on constants, else the MIL op (int division uses floor_div). */
const binary = (milOp: string | ((k: Kind) => string), f: (a: number, b: number) => number, result?: Kind): Converter =>
  (c) => {
    const a = c.in(0), b = c.in(1)
    if (a.kind !== b.kind) c.fail(`operand kinds differ (${a.kind} and ${b.kind})`)
    const kind = result ?? a.kind
    const g = kind === "int" && result === undefined ? (x: number, y: number) => Math.trunc(f(x, y)) : f
    if (a.tag === "const" && b.tag === "const") return [fold(c, [a, b], kind, g)]
    const shape = outShape(c, [a, b])
    const op = typeof milOp === "string" ? milOp : milOp(a.kind)
    const t = c.b.op(op, { x: operand(c, a, b), y: operand(c, b, a) }, { dtype: c.milDtype(kind), shape }, c.name())
    if (op === "add" && a.tag === "dyn" && b.tag === "dyn" && a.squareOf && b.squareOf &&
      a.shape.join() === b.shape.join()) {
      return [{ ...c.dyn(t, kind), sumOfSquares: [a.squareOf, b.squareOf] }]
    }
    return [c.dyn(t, kind)]
  }

const unary = (milOp: string, f: (x: number) => number, params?: (c: NodeCtx) => Record<string, Tensor>): Converter => (c) => {
  const x = c.in(0)
  if (x.tag === "const") return [fold(c, [x], x.kind === "bool" ? "bool" : x.kind, f)]
  const t = c.b.op(milOp, { x: x.t, ...(params ? params(c) : {}) }, { dtype: c.milDtype(x.kind), shape: x.shape }, c.name())
  return [c.dyn(t, x.kind)]
}

const erf = (x: number): number => {
  // Abramowitz–Stegun 7.1.26 is too coarse for folding; use the series / continued fraction split.
  const t = Math.abs(x)
  if (t < 2.5) {
    let sum = 0, term = t, n = 0
    while (Math.abs(term) > 1e-17 * Math.abs(sum) || n === 0) {
      sum += term / (2 * n + 1)
      n++
      term *= -t * t / n
      if (n > 200) break
    }
    return Math.sign(x) * 2 / Math.sqrt(Math.PI) * sum
  }
  let f = 0
  for (let k = 60; k >= 1; k--) f = k / 2 / (t + f)
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f))
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

/** Converts between kinds on constants. */
export const castConst = (v: Const, kind: Kind): Const =>
  kind === v.kind ? v : {
    tag: "const", kind, shape: v.shape,
    data: kind === "float" ? Float32Array.from(v.data) : Float64Array.from(v.data, (x) => (kind === "bool" ? (x !== 0 ? 1 : 0) : Math.trunc(x)))
  }

const cast: Converter = (c) => {
  const x = c.in(0)
  const to = ELEMENT_TYPES[c.int("to", 1)]
  if (to === undefined) c.fail(`Cast to element type ${c.int("to", 1)} is not supported`)
  if (x.tag === "const") return [castConst(x, to.kind)]
  if (to.kind === x.kind) return [x]
  const t = c.b.cast(x.t, c.milDtype(to.kind), c.name())
  return [c.dyn(t, to.kind)]
}

const clip: Converter = (c) => {
  const x = c.in(0)
  const bound = (i: number, attr: string, fallback: number): number => {
    const v = c.opt(i)
    if (v !== undefined) {
      if (v.tag !== "const") return c.fail(`the ${attr} bound must be a constant`)
      return v.data[0]!
    }
    return c.float(attr, fallback)
  }
  const lo = c.opset >= 11 ? bound(1, "min", -Infinity) : c.float("min", -Infinity)
  const hi = c.opset >= 11 ? bound(2, "max", Infinity) : c.float("max", Infinity)
  if (x.tag === "const") return [fold(c, [x], x.kind, (v) => Math.min(Math.max(v, lo), hi))]
  const big = c.dtype === "fp16" ? 65504 : 3.4e38
  const alpha = c.b.scalar(Math.max(lo, -big), c.dtype), beta = c.b.scalar(Math.min(hi, big), c.dtype)
  if (lo === 0 && hi === Infinity) return [c.dyn(c.b.relu(x.t, c.name()), x.kind)]
  return [c.dyn(c.b.op("clip", { alpha, beta, x: x.t }, { dtype: c.dtype, shape: x.shape }, c.name()), x.kind)]
}

const where: Converter = (c) => {
  const cond = c.in(0), a = c.in(1), b = c.in(2)
  if (cond.tag === "const" && a.tag === "const" && b.tag === "const") {
    return [fold(c, [cond, a, b], a.kind, (k, x, y) => (k !== 0 ? x : y))]
  }
  const shape = outShape(c, [cond, a, b])
  // A constant condition of any size is stored as int32 and cast: weight blobs hold no booleans.
  const ct = cond.tag === "const"
    ? c.b.cast(c.tensor(castConst(cond, "int")), "bool", c.name())
    : cond.kind === "bool" ? cond.t : c.b.cast(cond.t, "bool", c.name())
  const t = c.b.op("select", { a: c.tensor(a), b: c.tensor(b), cond: ct }, { dtype: c.milDtype(a.kind), shape }, c.name())
  return [c.dyn(t, a.kind)]
}

const variadic = (milOp: string, f: (a: number, b: number) => number): Converter => (c) => {
  const ins = c.inputs.filter((v): v is Value => v !== undefined)
  if (ins.length === 0) c.fail("needs at least one input")
  let acc = ins[0]!
  for (const v of ins.slice(1)) {
    if (acc.tag === "const" && v.tag === "const") acc = fold(c, [acc, v], acc.kind, f)
    else {
      const shape = outShape(c, [acc, v])
      acc = c.dyn(c.b.op(milOp, { x: operand(c, acc, v), y: operand(c, v, acc) }, { dtype: c.milDtype(acc.kind), shape }, c.name()), acc.kind)
    }
  }
  return [acc]
}

const pow: Converter = (c) => {
  const x = c.in(0), y = c.in(1)
  if (x.tag === "const" && y.tag === "const") return [fold(c, [x, y], x.kind, (a, b) => a ** b)]
  if (x.tag === "dyn" && y.tag === "const" && size(y.shape) === 1 && y.shape.length <= x.shape.length) {
    const e = y.data[0]!
    if (e === 1) return [x]
    if (e === 2) return [{ ...c.dyn(c.b.square(x.t, c.name()), x.kind), squareOf: x.t }]
    if (e === 0.5) return [c.dyn(c.b.sqrt(x.t, c.name()), x.kind)]
  }
  const shape = outShape(c, [x, y])
  return [c.dyn(c.b.op("pow", { x: operand(c, x, y), y: operand(c, y, x) }, { dtype: c.dtype, shape }, c.name()), "float")]
}

/**
 * √(a² + b²) in fp16 without squaring small values: the engine flushes results below 2⁻¹⁴ to zero, so a² of any
 * |a| < 2⁻⁷ vanishes (an STFT's quiet bins). Computed as m·√(1 + (n/m)²), m = max(|a|, |b|), n = min(|a|, |b|).
 */
const magnitude = (c: NodeCtx, a: Tensor, b: Tensor): Value => {
  const aa = c.b.abs(a, c.name()), ab = c.b.abs(b, c.name())
  const m = c.b.maximum(aa, ab, c.name()), n = c.b.minimum(aa, ab, c.name())
  const r = c.b.realDiv(n, c.b.add(m, 1e-4, c.name()), c.name())
  const s = c.b.sqrt(c.b.add(c.b.square(r, c.name()), 1, c.name()), c.name())
  return c.dyn(c.b.mul(m, s, c.name()), "float")
}

const hardSwish: Converter = (c) => {
  const x = c.in(0)
  if (x.tag === "const") return [fold(c, [x], "float", (v) => v * Math.min(Math.max(v / 6 + 0.5, 0), 1))]
  const h = c.b.op("sigmoid_hard", { alpha: c.b.scalar(1 / 6, c.dtype), beta: c.b.scalar(0.5, c.dtype), x: x.t },
    { dtype: c.dtype, shape: x.shape }, c.name())
  return [c.dyn(c.b.mul(x.t, h, c.name()), "float")]
}

const gelu: Converter = (c) => {
  const approx = c.str("approximate", "none")
  const exact = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2))
  const tanhApprox = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
  return unary("gelu", approx === "tanh" ? tanhApprox : exact,
    (cc) => ({ mode: cc.b.scalar(approx === "tanh" ? "TANH_APPROXIMATION" : "EXACT", "string") }))(c)
}

/** Elementwise converters by ONNX op type. */
export const elementwiseOps: Readonly<Record<string, Converter>> = {
  Add: binary("add", (a, b) => a + b),
  Sub: binary("sub", (a, b) => a - b),
  Mul: binary("mul", (a, b) => a * b),
  Div: binary((k) => (k === "int" ? "floor_div" : "real_div"), (a, b) => a / b),
  Pow: pow,
  Equal: binary("equal", (a, b) => (a === b ? 1 : 0), "bool"),
  Less: binary("less", (a, b) => (a < b ? 1 : 0), "bool"),
  LessOrEqual: binary("less_equal", (a, b) => (a <= b ? 1 : 0), "bool"),
  Greater: binary("greater", (a, b) => (a > b ? 1 : 0), "bool"),
  GreaterOrEqual: binary("greater_equal", (a, b) => (a >= b ? 1 : 0), "bool"),
  And: binary("logical_and", (a, b) => (a && b ? 1 : 0), "bool"),
  Or: binary("logical_or", (a, b) => (a || b ? 1 : 0), "bool"),
  Xor: binary("logical_xor", (a, b) => ((a !== 0) !== (b !== 0) ? 1 : 0), "bool"),
  Not: unary("logical_not", (v) => (v ? 0 : 1)),
  Min: variadic("minimum", Math.min),
  Max: variadic("maximum", Math.max),
  Relu: unary("relu", (v) => Math.max(v, 0)),
  Sigmoid: unary("sigmoid", sigmoid),
  Tanh: unary("tanh", Math.tanh),
  Sqrt: (c) => {
    const x = c.in(0)
    if (x.tag === "dyn" && x.sumOfSquares !== undefined && c.dtype === "fp16") return [magnitude(c, ...x.sumOfSquares)]
    return unary("sqrt", Math.sqrt)(c)
  },
  Exp: unary("exp", Math.exp),
  Log: unary("log", Math.log),
  Neg: unary("neg", (v) => -v),
  Abs: unary("abs", Math.abs),
  Erf: unary("erf", erf),
  Floor: unary("floor", Math.floor),
  Ceil: unary("ceil", Math.ceil),
  Reciprocal: unary("inverse", (v) => 1 / v, (c) => ({ epsilon: c.b.scalar(0, c.dtype) })),
  Softplus: unary("softplus", (v) => Math.log1p(Math.exp(v))),
  LeakyRelu: (c) => unary("leaky_relu", (v) => (v >= 0 ? v : c.float("alpha", 0.01) * v),
    (cc) => ({ alpha: cc.b.scalar(cc.float("alpha", 0.01), cc.dtype) }))(c),
  HardSigmoid: (c) => {
    const alpha = c.float("alpha", 0.2), beta = c.float("beta", 0.5)
    return unary("sigmoid_hard", (v) => Math.min(Math.max(alpha * v + beta, 0), 1),
      (cc) => ({ alpha: cc.b.scalar(alpha, cc.dtype), beta: cc.b.scalar(beta, cc.dtype) }))(c)
  },
  HardSwish: hardSwish,
  Gelu: gelu,
  Clip: clip,
  Cast: cast,
  Where: where,
  Identity: (c) => [c.in(0)],
  Dropout: (c) => [c.in(0)]
}

/** Exact erf, for folding and for tests. */
export { erf }
