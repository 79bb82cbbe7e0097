/** Elementwise ops: binary arithmetic and comparisons with numpy broadcasting, unary math, activations, cast. */
import type { OpCtx, OpImpl, Run, Val } from "./types.js"
import { OpError } from "./types.js"
import { broadcastIndex, broadcastShapes, expectShape, intRange, isIntDtype, sizeOf } from "./util.js"
import { float32ToFp16, fp16ToFloat32 } from "../../fp16/scalar.js"

type Bin = (a: number, b: number) => number

const binary = (f: Bin, _resultBool = false): OpImpl => (ctx) => {
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

const floorDiv: Bin = (a, b) => Math.floor(a / b)
const pyMod: Bin = (a, b) => a - b * Math.floor(a / b)

/** Binary ops by MIL name. */
export const binaryOps: Record<string, OpImpl> = {
  add: binary((a, b) => a + b),
  sub: binary((a, b) => a - b),
  mul: binary((a, b) => a * b),
  real_div: binary((a, b) => a / b),
  pow: binary((a, b) => Math.pow(a, b)),
  maximum: binary((a, b) => (a >= b || Number.isNaN(b) ? a : b)),
  minimum: binary((a, b) => (a <= b || Number.isNaN(b) ? a : b)),
  floor_div: binary(floorDiv),
  mod: binary(pyMod),
  equal: binary((a, b) => (a === b ? 1 : 0), true),
  not_equal: binary((a, b) => (a !== b ? 1 : 0), true),
  greater: binary((a, b) => (a > b ? 1 : 0), true),
  greater_equal: binary((a, b) => (a >= b ? 1 : 0), true),
  less: binary((a, b) => (a < b ? 1 : 0), true),
  less_equal: binary((a, b) => (a <= b ? 1 : 0), true),
  logical_and: binary((a, b) => (a !== 0 && b !== 0 ? 1 : 0), true),
  logical_or: binary((a, b) => (a !== 0 || b !== 0 ? 1 : 0), true),
  logical_xor: binary((a, b) => ((a !== 0) !== (b !== 0) ? 1 : 0), true)
}

/** erf in float64: Maclaurin series below 2.5 (no cancellation trouble there), erfc continued fraction above. */
export const erf = (x: number): number => {
  const ax = Math.abs(x)
  if (ax < 2.5) {
    const x2 = x * x
    let term = x, sum = x
    for (let k = 1; k < 80; k++) {
      term *= -x2 / k
      const add = term / (2 * k + 1)
      sum += add
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break
    }
    return (2 / Math.sqrt(Math.PI)) * sum
  }
  if (ax > 6) return Math.sign(x)
  let f = 0
  for (let k = 80; k >= 1; k--) f = (k / 2) / (ax + f)
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f)
  return Math.sign(x) * (1 - erfc)
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v))

/** Half away from zero: the engine's `round` (and wrong-looking only past 1024 where fp16 has no fraction bits). */
const roundHalfAway = (v: number): number => Math.sign(v) * Math.round(Math.abs(v))
/** Half to even: numpy's round, what the MIL reference folds with. */
export const roundHalfEven = (v: number): number => {
  const r = Math.round(v)
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
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

/** An epsilon default created in x's dtype (fp16 rounding applies), as the MIL builder does. */
const epsilon = (ctx: OpCtx, x: Val, dflt: number): number => {
  const e = ctx.num("epsilon", dflt)
  // A constant keeps fp16 subnormals (1e-5 is one): only computed values are flushed.
  if (x.dtype === "fp16" && !ctx.exact) return fp16ToFloat32(float32ToFp16(e))
  return Math.fround(e)
}

const gelu = (mode: string): Un => {
  switch (mode) {
    case "EXACT": return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))
    case "TANH_APPROXIMATION": {
      const c = Math.sqrt(2 / Math.PI)
      return (v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)))
    }
    case "SIGMOID_APPROXIMATION": return (v) => v * sigmoid(1.702 * v)
    default: throw new OpError(`gelu: unknown mode "${mode}" (EXACT, TANH_APPROXIMATION or SIGMOID_APPROXIMATION)`)
  }
}

/** Unary ops by MIL name. */
export const unaryOps: Record<string, OpImpl> = {
  abs: unary(Math.abs),
  sqrt: unary(Math.sqrt),
  square: unary((v) => v * v),
  exp: unary(Math.exp),
  exp2: unary((v) => Math.pow(2, v)),
  tanh: unary(Math.tanh),
  sigmoid: unary(sigmoid),
  relu: unary((v) => (v > 0 ? v : 0)),
  relu6: unary((v) => (v < 0 ? 0 : v > 6 ? 6 : v)),
  silu: unary((v) => v * sigmoid(v)),
  erf: unary(erf),
  floor: unary(Math.floor),
  ceil: unary(Math.ceil),
  sign: unary((v) => (v > 0 ? 1 : v < 0 ? -1 : 0)),
  sin: unary(Math.sin),
  cos: unary(Math.cos),
  tan: unary(Math.tan),
  asin: unary(Math.asin),
  acos: unary(Math.acos),
  atan: unary(Math.atan),
  sinh: unary(Math.sinh),
  cosh: unary(Math.cosh),
  atanh: unary(Math.atanh),
  softplus: unary((v) => (v > 20 ? v : Math.log1p(Math.exp(v)))),
  softsign: unary((v) => v / (1 + Math.abs(v))),
  logical_not: unary((v) => (v === 0 ? 1 : 0)),
  round: unaryWith((ctx) => (ctx.exact ? roundHalfEven : roundHalfAway)),
  rsqrt: unaryWith((ctx, x) => {
    const e = epsilon(ctx, x, 1e-12)
    return (v) => 1 / Math.sqrt(v + e)
  }),
  inverse: unaryWith((ctx, x) => {
    const e = epsilon(ctx, x, 1e-4)
    return (v) => 1 / (v + e)
  }),
  log: unaryWith((ctx, x) => {
    const e = epsilon(ctx, x, 1e-45)
    return (v) => Math.log(v + e)
  }),
  gelu: unaryWith((ctx) => gelu(ctx.str("mode", "EXACT"))),
  clip: unaryWith((ctx) => {
    const lo = ctx.num("alpha"), hi = ctx.num("beta")
    return (v) => (v < lo ? lo : v > hi ? hi : v)
  }),
  leaky_relu: unaryWith((ctx) => {
    const a = ctx.num("alpha", 0.01)
    return (v) => (v >= 0 ? v : a * v)
  }),
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
  scaled_tanh: unaryWith((ctx) => {
    const a = ctx.num("alpha", 1), b = ctx.num("beta", 1)
    return (v) => a * Math.tanh(b * v)
  }),
  sigmoid_hard: unaryWith((ctx) => {
    const a = ctx.num("alpha", 0.2), b = ctx.num("beta", 0.5)
    return (v) => Math.min(1, Math.max(0, a * v + b))
  }),
  linear_activation: unaryWith((ctx) => {
    const a = ctx.num("alpha"), b = ctx.num("beta", 0)
    return (v) => a * v + b
  }),
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
  const n = sizeOf(shape)
  const ic = broadcastIndex(c.shape, shape) ?? identity(n)
  const ia = broadcastIndex(a.shape, shape) ?? identity(n)
  const ib = broadcastIndex(b.shape, shape) ?? identity(n)
  const o = out.data
  const run: Run = () => {
    const cd = c.data, ad = a.data, bd = b.data
    for (let i = 0; i < n; i++) o[i] = cd[ic[i]!] !== 0 ? ad[ia[i]!]! : bd[ib[i]!]!
  }
  return run
}
