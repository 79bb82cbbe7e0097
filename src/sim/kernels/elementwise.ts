/**
 * Elementwise kernels: binary ops and select with numpy broadcasting over a plan computed once per shape set, and
 * unary math. Results are written into typed arrays, so storing into a Float32Array rounds each result to fp32
 * once (exact fp32 arithmetic for + − × ÷); comparisons and logical ops write 0/1.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { broadcastShapes, broadcastStrides, checkShape, type NumArray, type Shape, sizeOf } from "./shape.js"

/** A checked broadcast of 2 or 3 operand shapes: output shape and per-operand strides (0 on stretched dims). */
export interface BroadcastPlan {
  readonly outShape: ReadonlyArray<number>
  readonly size: number
  /** Per operand, strides over outShape. */
  readonly strides: ReadonlyArray<ReadonlyArray<number>>
  /** Odometer scratch, one slot per dim. */
  readonly counter: Int32Array
  /**
   * Per operand, its step over the output as one flat run (1: same layout, 0: one value broadcast), when every
   * operand has one; the op then runs as a single loop instead of one call per innermost row.
   */
  readonly flat?: ReadonlyArray<0 | 1>
}

// 1 when `strides` walk the output contiguously, 0 when they never move, else undefined.
const flatStep = (strides: ReadonlyArray<number>, shape: ReadonlyArray<number>): 0 | 1 | undefined => {
  let contiguous = true, still = true, expect = 1
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue
    if (strides[d] !== expect) contiguous = false
    if (strides[d] !== 0) still = false
    expect *= shape[d]!
  }
  return contiguous ? 1 : still ? 0 : undefined
}

/** Plans numpy broadcasting of operand shapes (two for binary ops, three for select). */
export const planBroadcast = (
  op: string, shapes: ReadonlyArray<Shape>
): Either.Either<BroadcastPlan, InvalidArgumentError> => {
  let out: Array<number> = []
  for (let i = 0; i < shapes.length; i++) {
    const bad = checkShape(op, `operand ${i}`, shapes[i]!)
    if (bad) return Either.left(bad)
    const r = broadcastShapes(op, out, shapes[i]!)
    if (Either.isLeft(r)) return Either.left(r.left)
    out = r.right
  }
  const strides = shapes.map((s) => broadcastStrides(s, out))
  const steps = strides.map((st) => flatStep(st, out))
  return Either.right({
    outShape: out, size: sizeOf(out), strides, counter: new Int32Array(Math.max(out.length, 1)),
    ...(steps.every((x) => x !== undefined) ? { flat: steps as Array<0 | 1> } : {})
  })
}

/** Binary ops with numpy broadcasting (MIL names). */
export type BinaryOp =
  | "add" | "sub" | "mul" | "real_div" | "pow" | "maximum" | "minimum" | "floor_div" | "mod"
  | "equal" | "not_equal" | "less" | "less_equal" | "greater" | "greater_equal"
  | "logical_and" | "logical_or" | "logical_xor"

type Inner = (
  a: NumArray, ia: number, sa: number, b: NumArray, ib: number, sb: number, o: NumArray, io: number, n: number
) => void

const floorMod = (x: number, y: number): number => {
  const r = x % y
  return r !== 0 && (r < 0) !== (y < 0) ? r + y : r
}

const inner: Record<BinaryOp, Inner> = {
  add: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! + b[ib]! },
  sub: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! - b[ib]! },
  mul: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! * b[ib]! },
  real_div: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! / b[ib]! },
  pow: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = Math.pow(a[ia]!, b[ib]!) },
  maximum: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = Math.max(a[ia]!, b[ib]!) },
  minimum: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = Math.min(a[ia]!, b[ib]!) },
  floor_div: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = Math.floor(a[ia]! / b[ib]!) },
  mod: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = floorMod(a[ia]!, b[ib]!) },
  equal: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! === b[ib]! ? 1 : 0 },
  not_equal: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! !== b[ib]! ? 1 : 0 },
  less: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! < b[ib]! ? 1 : 0 },
  less_equal: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! <= b[ib]! ? 1 : 0 },
  greater: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! > b[ib]! ? 1 : 0 },
  greater_equal: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! >= b[ib]! ? 1 : 0 },
  logical_and: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! !== 0 && b[ib]! !== 0 ? 1 : 0 },
  logical_or: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = a[ia]! !== 0 || b[ib]! !== 0 ? 1 : 0 },
  logical_xor: (a, ia, sa, b, ib, sb, o, io, n) => { for (let i = 0; i < n; i++, ia += sa, ib += sb) o[io + i] = (a[ia]! !== 0) !== (b[ib]! !== 0) ? 1 : 0 }
}

/** Runs a binary op over a two-operand broadcast plan: out[p] = op(a[p], b[p]). */
export const binary = (op: BinaryOp, plan: BroadcastPlan, a: NumArray, b: NumArray, out: NumArray): void => {
  const f = inner[op]
  const shape = plan.outShape
  const r = shape.length
  if (plan.size === 0) return
  if (r === 0) {
    f(a, 0, 0, b, 0, 0, out, 0, 1)
    return
  }
  const flat = plan.flat
  if (flat !== undefined) {
    f(a, 0, flat[0]!, b, 0, flat[1]!, out, 0, plan.size)
    return
  }
  const sA = plan.strides[0]!, sB = plan.strides[1]!
  const L = shape[r - 1]!
  const la = sA[r - 1]!, lb = sB[r - 1]!
  const rows = plan.size / L
  const cnt = plan.counter
  cnt.fill(0)
  let ia = 0, ib = 0
  for (let row = 0; row < rows; row++) {
    f(a, ia, la, b, ib, lb, out, row * L, L)
    // Odometer over the outer dims, keeping operand offsets incremental.
    for (let d = r - 2; d >= 0; d--) {
      if (++cnt[d]! < shape[d]!) {
        ia += sA[d]!
        ib += sB[d]!
        break
      }
      cnt[d] = 0
      ia -= sA[d]! * (shape[d]! - 1)
      ib -= sB[d]! * (shape[d]! - 1)
    }
  }
}

/** select over a three-operand broadcast plan: out[p] = cond[p] ≠ 0 ? a[p] : b[p]. */
export const select = (plan: BroadcastPlan, cond: NumArray, a: NumArray, b: NumArray, out: NumArray): void => {
  const shape = plan.outShape
  const r = shape.length
  const sC = plan.strides[0]!, sA = plan.strides[1]!, sB = plan.strides[2]!
  const cnt = plan.counter
  cnt.fill(0)
  let ic = 0, ia = 0, ib = 0
  for (let p = 0; p < plan.size; p++) {
    out[p] = cond[ic]! !== 0 ? a[ia]! : b[ib]!
    for (let d = r - 1; d >= 0; d--) {
      if (++cnt[d]! < shape[d]!) {
        ic += sC[d]!
        ia += sA[d]!
        ib += sB[d]!
        break
      }
      cnt[d] = 0
      ic -= sC[d]! * (shape[d]! - 1)
      ia -= sA[d]! * (shape[d]! - 1)
      ib -= sB[d]! * (shape[d]! - 1)
    }
  }
}

/** Unary ops (MIL names; `gelu_tanh`/`gelu_sigmoid` are gelu's approximation modes). */
export type UnaryOp =
  | "exp" | "exp2" | "log" | "sqrt" | "rsqrt" | "inverse" | "abs" | "floor" | "ceil" | "round" | "round_half_even"
  | "sign" | "sin" | "cos" | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh" | "atanh"
  | "sigmoid" | "hard_sigmoid" | "relu" | "relu6" | "leaky_relu" | "elu" | "silu" | "gelu" | "gelu_tanh"
  | "gelu_sigmoid" | "softplus" | "softsign" | "erf" | "clip" | "square" | "threshold" | "scaled_tanh" | "linear"
  | "logical_not" | "identity"

/**
 * Parameters of the unary ops that take them: `epsilon` (log 1e-45, rsqrt 1e-12, inverse 1e-4: MIL defaults),
 * `alpha`/`beta` (clip bounds; hard_sigmoid α·x+β with defaults 0.2, 0.5; leaky_relu/elu α default 0.01/1;
 * threshold α; scaled_tanh α·tanh(β·x); linear α·x+β).
 */
export interface UnaryParams {
  readonly epsilon?: number
  readonly alpha?: number
  readonly beta?: number
}

/** erf to about 1e-15 relative: Maclaurin series below |x| = 2.5, erfc's continued fraction above. */
export const erf = (x: number): number => {
  const a = Math.abs(x)
  if (a !== a) return NaN
  if (a > 6) return x > 0 ? 1 : -1
  if (a < 2.5) {
    // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n!(2n+1))
    const x2 = a * a
    let term = a, sum = a
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n
      const t = term / (2 * n + 1)
      sum += t
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break
    }
    const r = sum * 1.1283791670955126
    return x < 0 ? -r : r
  }
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
  let f = a
  for (let n = 60; n >= 1; n--) f = a + (n / 2) / f
  const r = 1 - Math.exp(-a * a) / (1.7724538509055159 * f)
  return x < 0 ? -r : r
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

// Half to even, keeping the sign of a negative value that rounds to zero.
const roundHalfEven = (v: number): number => {
  const f = Math.floor(v)
  const d = v - f
  const r = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f
  return r === 0 && v < 0 ? -0 : r
}
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI)
// Per-element functions of the ops without parameters, each called from a loop of its own.
const exp2 = (v: number): number => Math.pow(2, v)
const roundHalfAway = (v: number): number => Math.sign(v) * Math.floor(Math.abs(v) + 0.5)
const signOf = (v: number): number => (v > 0 ? 1 : v < 0 ? -1 : 0)
const relu = (v: number): number => (v > 0 || v !== v ? v : 0)
const relu6 = (v: number): number => Math.min(Math.max(v, 0), 6)
const silu = (v: number): number => v * sigmoid(v)
const gelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2))
const geluTanh = (v: number): number => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
const geluSigmoid = (v: number): number => v * sigmoid(1.702 * v)
const softplus = (v: number): number => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)))
const softsign = (v: number): number => v / (1 + Math.abs(v))
const square = (v: number): number => v * v
const logicalNot = (v: number): number => (v === 0 ? 1 : 0)

/** Applies a unary op to the first n elements of x (default all) into out (may be x itself). */
export const unary = (op: UnaryOp, x: NumArray, out: NumArray, n: number = x.length, p: UnaryParams = {}): void => {
  // One loop per op, so each loop calls one known function and V8 inlines it.
  switch (op) {
    case "exp": for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); return
    case "exp2": for (let i = 0; i < n; i++) out[i] = exp2(x[i]!); return
    case "log": {
      const e = p.epsilon ?? 1e-45
      for (let i = 0; i < n; i++) out[i] = Math.log(x[i]! + e)
      return
    }
    case "sqrt": for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); return
    case "rsqrt": {
      const e = p.epsilon ?? 1e-12
      for (let i = 0; i < n; i++) out[i] = 1 / Math.sqrt(x[i]! + e)
      return
    }
    case "inverse": {
      const e = p.epsilon ?? 1e-4
      for (let i = 0; i < n; i++) out[i] = 1 / (x[i]! + e)
      return
    }
    case "abs": for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]!); return
    case "floor": for (let i = 0; i < n; i++) out[i] = Math.floor(x[i]!); return
    case "ceil": for (let i = 0; i < n; i++) out[i] = Math.ceil(x[i]!); return
    // The engine rounds half away from zero (spec/ane-field-facts.md §4.3).
    case "round": for (let i = 0; i < n; i++) out[i] = roundHalfAway(x[i]!); return
    case "round_half_even": for (let i = 0; i < n; i++) out[i] = roundHalfEven(x[i]!); return
    case "sign": for (let i = 0; i < n; i++) out[i] = signOf(x[i]!); return
    case "sin": for (let i = 0; i < n; i++) out[i] = Math.sin(x[i]!); return
    case "cos": for (let i = 0; i < n; i++) out[i] = Math.cos(x[i]!); return
    case "tan": for (let i = 0; i < n; i++) out[i] = Math.tan(x[i]!); return
    case "asin": for (let i = 0; i < n; i++) out[i] = Math.asin(x[i]!); return
    case "acos": for (let i = 0; i < n; i++) out[i] = Math.acos(x[i]!); return
    case "atan": for (let i = 0; i < n; i++) out[i] = Math.atan(x[i]!); return
    case "sinh": for (let i = 0; i < n; i++) out[i] = Math.sinh(x[i]!); return
    case "cosh": for (let i = 0; i < n; i++) out[i] = Math.cosh(x[i]!); return
    case "tanh": for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!); return
    case "asinh": for (let i = 0; i < n; i++) out[i] = Math.asinh(x[i]!); return
    case "acosh": for (let i = 0; i < n; i++) out[i] = Math.acosh(x[i]!); return
    case "atanh": for (let i = 0; i < n; i++) out[i] = Math.atanh(x[i]!); return
    case "sigmoid": for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]!); return
    case "hard_sigmoid": {
      const a = p.alpha ?? 0.2, b = p.beta ?? 0.5
      for (let i = 0; i < n; i++) out[i] = Math.min(Math.max(a * x[i]! + b, 0), 1)
      return
    }
    // NaN passes through, as np.maximum(x, 0) keeps it (and clip, sigmoid and add do here).
    case "relu": for (let i = 0; i < n; i++) out[i] = relu(x[i]!); return
    case "relu6": for (let i = 0; i < n; i++) out[i] = relu6(x[i]!); return
    case "leaky_relu": {
      const a = p.alpha ?? 0.01
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        out[i] = (v >= 0 ? v : a * v)
      }
      return
    }
    case "elu": {
      const a = p.alpha ?? 1
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        out[i] = (v > 0 ? v : a * (Math.exp(v) - 1))
      }
      return
    }
    case "silu": for (let i = 0; i < n; i++) out[i] = silu(x[i]!); return
    case "gelu": for (let i = 0; i < n; i++) out[i] = gelu(x[i]!); return
    case "gelu_tanh": for (let i = 0; i < n; i++) out[i] = geluTanh(x[i]!); return
    case "gelu_sigmoid": for (let i = 0; i < n; i++) out[i] = geluSigmoid(x[i]!); return
    // log(1 + e^x) without overflow for large x.
    case "softplus": for (let i = 0; i < n; i++) out[i] = softplus(x[i]!); return
    case "softsign": for (let i = 0; i < n; i++) out[i] = softsign(x[i]!); return
    case "erf": for (let i = 0; i < n; i++) out[i] = erf(x[i]!); return
    case "clip": {
      const lo = p.alpha ?? -Infinity, hi = p.beta ?? Infinity
      for (let i = 0; i < n; i++) out[i] = Math.min(Math.max(x[i]!, lo), hi)
      return
    }
    case "square": for (let i = 0; i < n; i++) out[i] = square(x[i]!); return
    case "threshold": {
      const a = p.alpha ?? 0
      for (let i = 0; i < n; i++) out[i] = Math.max(x[i]!, a)
      return
    }
    case "scaled_tanh": {
      const a = p.alpha ?? 1, b = p.beta ?? 1
      for (let i = 0; i < n; i++) out[i] = a * Math.tanh(b * x[i]!)
      return
    }
    case "linear": {
      const a = p.alpha ?? 1, b = p.beta ?? 0
      for (let i = 0; i < n; i++) out[i] = a * x[i]! + b
      return
    }
    case "logical_not": for (let i = 0; i < n; i++) out[i] = logicalNot(x[i]!); return
    case "identity": for (let i = 0; i < n; i++) out[i] = x[i]!; return
  }
}
