/** Elementwise ops: binary arithmetic and comparisons with numpy broadcasting, unary math, activations, cast. */
import type { OpCtx, OpImpl, Run, Val } from "./types.js"
import { OpError } from "./types.js"
import { broadcastIndex, broadcastShapes, expectShape, intRange, isIntDtype, planned, sizeOf } from "./util.js"
import { float32ToFp16, fp16ToFloat32 } from "../../fp16/scalar.js"
import {
  binary as kBinary, type BinaryOp, erf, planBroadcast, select as kSelect, unary as kUnary, type UnaryOp,
  type UnaryParams
} from "../kernels/index.js"

export { erf }

type Bin = (a: number, b: number) => number

/** A binary op run by the shared broadcasting kernel, planned once. */
const kernelBinary = (name: BinaryOp): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const y = ctx.val("y")
  const shape = broadcastShapes(x.shape, y.shape)
  const out = ctx.alloc(0)
  expectShape(ctx.op.op, out.shape, shape)
  const plan = planned(planBroadcast(ctx.op.op, [x.shape, y.shape]))
  const o = out.data
  return () => kBinary(name, plan, x.data, y.data, o)
}

/** Private loop for the ops whose NaN, signed-zero or infinite-divisor rules differ from the kernel's. */
const binary = (f: Bin): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const y = ctx.val("y")
  const shape = broadcastShapes(x.shape, y.shape)
  const out = ctx.alloc(0)
  expectShape(ctx.op.op, out.shape, shape)
  const mx = broadcastIndex(x.shape, shape)
  const my = broadcastIndex(y.shape, shape)
  const n = sizeOf(shape)
  const o = out.data
  if (mx === null && my === null) {
    return () => {
      const a = x.data, b = y.data
      for (let i = 0; i < n; i++) o[i] = f(a[i]!, b[i]!)
    }
  }
  if (mx === null && y.data.length === 1) {
    return () => {
      const a = x.data, b = y.data[0]!
      for (let i = 0; i < n; i++) o[i] = f(a[i]!, b)
    }
  }
  const ix = mx ?? identity(n)
  const iy = my ?? identity(n)
  return () => {
    const a = x.data, b = y.data
    for (let i = 0; i < n; i++) o[i] = f(a[ix[i]!]!, b[iy[i]!]!)
  }
}

const identity = (n: number): Int32Array => {
  const m = new Int32Array(n)
  for (let i = 0; i < n; i++) m[i] = i
  return m
}

const pyMod: Bin = (a, b) => a - b * Math.floor(a / b)

/** Binary ops by MIL name. */
export const binaryOps: Record<string, OpImpl> = {
  add: kernelBinary("add"),
  sub: kernelBinary("sub"),
  mul: kernelBinary("mul"),
  real_div: kernelBinary("real_div"),
  pow: kernelBinary("pow"),
  // A NaN operand yields the other one and −0 is kept (the kernel uses Math.max/min).
  maximum: binary((a, b) => (a >= b || Number.isNaN(b) ? a : b)),
  minimum: binary((a, b) => (a <= b || Number.isNaN(b) ? a : b)),
  floor_div: kernelBinary("floor_div"),
  // a − b·⌊a/b⌋ (NaN for an infinite divisor; the kernel's fmod-based form gives a).
  mod: binary(pyMod),
  equal: kernelBinary("equal"),
  not_equal: kernelBinary("not_equal"),
  greater: kernelBinary("greater"),
  greater_equal: kernelBinary("greater_equal"),
  less: kernelBinary("less"),
  less_equal: kernelBinary("less_equal"),
  logical_and: kernelBinary("logical_and"),
  logical_or: kernelBinary("logical_or"),
  logical_xor: kernelBinary("logical_xor")
}

type Un = (v: number) => number

const unaryWith = (make: (ctx: OpCtx, x: Val) => Un): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const out = ctx.alloc(0)
  expectShape(ctx.op.op, out.shape, x.shape)
  const f = make(ctx, x)
  const n = sizeOf(x.shape)
  const o = out.data
  return () => {
    const a = x.data
    for (let i = 0; i < n; i++) o[i] = f(a[i]!)
  }
}
const unary = (f: Un): OpImpl => unaryWith(() => f)

/** A unary op run by the shared kernel; `params` reads its attributes once at plan time. */
const kernelUnaryWith = (
  pick: (ctx: OpCtx, x: Val) => readonly [UnaryOp, UnaryParams]
): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const out = ctx.alloc(0)
  expectShape(ctx.op.op, out.shape, x.shape)
  const [name, params] = pick(ctx, x)
  const n = sizeOf(x.shape)
  const o = out.data
  return () => kUnary(name, x.data, o, n, params)
}
const kernelUnary = (name: UnaryOp): OpImpl => kernelUnaryWith(() => [name, {}])

/** An epsilon default created in x's dtype (fp16 rounding applies), as the MIL builder does. */
const epsilon = (ctx: OpCtx, x: Val, dflt: number): number => {
  const e = ctx.num("epsilon", dflt)
  // A constant keeps fp16 subnormals (1e-5 is one): only computed values are flushed.
  if (x.dtype === "fp16" && !ctx.exact) return fp16ToFloat32(float32ToFp16(e))
  return Math.fround(e)
}

/** The kernel op of a gelu mode. */
const gelu = (mode: string): UnaryOp => {
  switch (mode) {
    case "EXACT": return "gelu"
    case "TANH_APPROXIMATION": return "gelu_tanh"
    case "SIGMOID_APPROXIMATION": return "gelu_sigmoid"
    default: throw new OpError(`gelu: unknown mode "${mode}" (EXACT, TANH_APPROXIMATION or SIGMOID_APPROXIMATION)`)
  }
}

/** Unary ops by MIL name. */
export const unaryOps: Record<string, OpImpl> = {
  abs: kernelUnary("abs"),
  sqrt: kernelUnary("sqrt"),
  square: kernelUnary("square"),
  exp: kernelUnary("exp"),
  exp2: kernelUnary("exp2"),
  tanh: kernelUnary("tanh"),
  sigmoid: kernelUnary("sigmoid"),
  relu: kernelUnary("relu"),
  // Private loops below keep −0 (relu6, clip, threshold, elu) and softplus's own large-input cut-off.
  relu6: unary((v) => (v < 0 ? 0 : v > 6 ? 6 : v)),
  silu: kernelUnary("silu"),
  erf: kernelUnary("erf"),
  floor: kernelUnary("floor"),
  ceil: kernelUnary("ceil"),
  sign: kernelUnary("sign"),
  sin: kernelUnary("sin"),
  cos: kernelUnary("cos"),
  tan: kernelUnary("tan"),
  asin: kernelUnary("asin"),
  acos: kernelUnary("acos"),
  atan: kernelUnary("atan"),
  sinh: kernelUnary("sinh"),
  cosh: kernelUnary("cosh"),
  atanh: kernelUnary("atanh"),
  softplus: unary((v) => (v > 20 ? v : Math.log1p(Math.exp(v)))),
  softsign: kernelUnary("softsign"),
  logical_not: kernelUnary("logical_not"),
  // The engine rounds half away from zero; numerics "exact" folds like numpy (half to even).
  round: kernelUnaryWith((ctx) => [ctx.exact ? "round_half_even" : "round", {}]),
  rsqrt: kernelUnaryWith((ctx, x) => ["rsqrt", { epsilon: epsilon(ctx, x, 1e-12) }]),
  inverse: kernelUnaryWith((ctx, x) => ["inverse", { epsilon: epsilon(ctx, x, 1e-4) }]),
  log: kernelUnaryWith((ctx, x) => ["log", { epsilon: epsilon(ctx, x, 1e-45) }]),
  gelu: kernelUnaryWith((ctx) => [gelu(ctx.str("mode", "EXACT")), {}]),
  clip: unaryWith((ctx) => {
    const lo = ctx.num("alpha"), hi = ctx.num("beta")
    return (v) => (v < lo ? lo : v > hi ? hi : v)
  }),
  leaky_relu: kernelUnaryWith((ctx) => ["leaky_relu", { alpha: ctx.num("alpha", 0.01) }]),
  elu: unaryWith((ctx) => {
    const a = ctx.num("alpha", 1)
    return (v) => (v >= 0 ? v : a * (Math.exp(v) - 1))
  }),
  thresholded_relu: unaryWith((ctx) => {
    const a = ctx.num("alpha", 1)
    return (v) => (v >= a ? v : 0)
  }),
  threshold: unaryWith((ctx) => {
    const a = ctx.num("alpha")
    return (v) => (v < a ? a : v)
  }),
  scaled_tanh: kernelUnaryWith((ctx) => ["scaled_tanh", { alpha: ctx.num("alpha", 1), beta: ctx.num("beta", 1) }]),
  sigmoid_hard: kernelUnaryWith((ctx) => ["hard_sigmoid", { alpha: ctx.num("alpha", 0.2), beta: ctx.num("beta", 0.5) }]),
  linear_activation: kernelUnaryWith((ctx) => ["linear", { alpha: ctx.num("alpha"), beta: ctx.num("beta", 0) }]),
  softplus_parametric: unaryWith(() => {
    throw new OpError("softplus_parametric is not supported by the simulator", "SIM-UNSUPPORTED-OP")
  }),
  identity: (ctx) => {
    ctx.alias(0, ctx.val("x"))
    return undefined
  }
}

/** cast(x, dtype): float → int truncates toward zero and saturates; → bool tests non-zero. */
export const cast: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const to = ctx.str("dtype")
  const out = ctx.alloc(0)
  expectShape("cast", out.shape, x.shape)
  if (out.dtype !== to) throw new OpError(`cast: dtype "${to}" but the output is declared ${out.dtype}`, "SIM-DTYPE")
  const n = sizeOf(x.shape)
  const o = out.data
  if (to === "bool") {
    return () => {
      const a = x.data
      for (let i = 0; i < n; i++) o[i] = a[i] !== 0 ? 1 : 0
    }
  }
  if (isIntDtype(to)) {
    const [lo, hi] = intRange(to)
    return () => {
      const a = x.data
      for (let i = 0; i < n; i++) {
        const v = Math.trunc(a[i]!) + 0
        o[i] = Number.isNaN(v) ? 0 : v < lo ? lo : v > hi ? hi : v
      }
    }
  }
  if (to !== "fp16" && to !== "fp32" && to !== "fp64") throw new OpError(`cast: unsupported dtype "${to}"`, "SIM-DTYPE")
  return () => o.set(x.data.subarray(0, n))
}

/** select(cond, a, b) with all three broadcast to the output. */
export const select: OpImpl = (ctx) => {
  const c = ctx.val("cond"), a = ctx.val("a"), b = ctx.val("b")
  const shape = broadcastShapes(broadcastShapes(a.shape, b.shape), c.shape)
  const out = ctx.alloc(0)
  expectShape("select", out.shape, shape)
  const plan = planned(planBroadcast("select", [c.shape, a.shape, b.shape]))
  const o = out.data
  const run: Run = () => kSelect(plan, c.data, a.data, b.data, o)
  return run
}
