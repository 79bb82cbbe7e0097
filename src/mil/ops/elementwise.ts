/** Elementwise unary, binary, comparison, logical and activation ops (spec §9, errata §4.1). */
import type { Pos } from "../ast.js"
import type { OpContext } from "./context.js"
import { TypeCodes } from "./context.js"
import type { OpRule } from "./rule.js"
import { broadcast, floatDtypes, formatShape, tensor } from "./types.js"
import type { ResolvedDim } from "./types.js"

const F: ReadonlySet<string> = floatDtypes
const FI: ReadonlySet<string> = new Set(["fp16", "fp32", "int32"])
const B: ReadonlySet<string> = new Set(["bool"])

/** `x` plus optional scalar parameters, output = x's type. */
const unary = (dtypes: ReadonlySet<string>, params: ReadonlyArray<string> = []): OpRule => ({
  args: ["x", ...params],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes })
    for (const p of params) {
      const a = ctx.tensor(p, { required: false })
      if (x && a && a.type.dtype !== x.type.dtype && ctx.opset < 17) ctx.sameDtype(x, a)
    }
    return x ? [x.type] : null
  }
})

/** An argument with a (possibly unknown) shape. */
interface Shaped {
  readonly arg: { readonly name: string; readonly pos: Pos }
  readonly type: { readonly shape: ReadonlyArray<ResolvedDim> | null }
}

/** Broadcasts two tensor arguments, reporting a conflict at the second one. */
export const broadcastArgs = (ctx: OpContext, a: Shaped, b: Shaped): ReadonlyArray<ResolvedDim> | null | undefined => {
  const r = broadcast(a.type.shape, b.type.shape)
  if (r.ok) return r.shape
  ctx.error(b.arg.pos,
    `cannot broadcast \`${a.arg.name}\` ${formatShape(a.type.shape)} with \`${b.arg.name}\` ` +
      `${formatShape(b.type.shape)}: expected equal sizes or 1 at result axis ${r.axis}, found ${r.a} and ${r.b}`,
    TypeCodes.badBroadcast)
  return undefined
}

/** `x op y` with numpy broadcasting; both share a dtype; the result is `out` or x's dtype. */
const binary = (dtypes: ReadonlySet<string>, out?: string): OpRule => ({
  args: ["x", "y"],
  infer: (ctx) => {
    const x = ctx.tensor("x", { dtypes })
    const y = ctx.tensor("y", { dtypes })
    if (!x || !y) return null
    ctx.sameDtype(x, y)
    const shape = broadcastArgs(ctx, x, y)
    if (shape === undefined) return null
    return [tensor(out ?? x.type.dtype, shape)]
  }
})


/** Elementwise op rules by name. */
export const elementwiseRules: Readonly<Record<string, OpRule>> = {
  abs: unary(FI),
  square: unary(FI),
  sign: unary(FI),
  sqrt: unary(F),
  exp: unary(F),
  exp2: unary(F),
  tanh: unary(F),
  sigmoid: unary(F),
  relu: unary(F),
  relu6: unary(F),
  silu: unary(F),
  softsign: unary(F),
  softplus: unary(F),
  erf: unary(F),
  floor: unary(F),
  ceil: unary(F),
  round: unary(F),
  sin: unary(F),
  cos: unary(F),
  tan: unary(F),
  asin: unary(F),
  acos: unary(F),
  atan: unary(F),
  sinh: unary(F),
  cosh: unary(F),
  atanh: unary(F),
  neg: unary(FI),
  log: unary(F, ["epsilon"]),
  rsqrt: unary(F, ["epsilon"]),
  inverse: unary(F, ["epsilon"]),
  leaky_relu: unary(F, ["alpha"]),
  elu: unary(F, ["alpha"]),
  threshold: unary(F, ["alpha"]),
  sigmoid_hard: unary(F, ["alpha", "beta"]),
  scaled_tanh: unary(F, ["alpha", "beta"]),
  linear_activation: unary(F, ["alpha", "beta"]),
  softplus_parametric: unary(F, ["alpha", "beta"]),
  prelu: unary(F, ["alpha"]),
  clip: {
    args: ["x", "alpha", "beta"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: F })
      const a = ctx.tensor("alpha")
      const b = ctx.tensor("beta")
      ctx.sameDtype(x, a)
      ctx.sameDtype(x, b)
      const av = ctx.values("alpha")
      const bv = ctx.values("beta")
      if (ctx.opset >= 17 && av && bv && av.length === 1 && bv.length === 1 && typeof av[0] === "number" &&
        typeof bv[0] === "number" && !(av[0] < bv[0])) {
        ctx.error(ctx.arg("beta")!.pos, `expected alpha < beta, found alpha = ${av[0]} and beta = ${bv[0]}`)
      }
      return x ? [x.type] : null
    }
  },
  gelu: {
    args: ["x", "mode"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: F })
      ctx.string("mode", "EXACT", ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
      return x ? [x.type] : null
    }
  },
  softmax: {
    args: ["x", "axis"],
    infer: (ctx) => {
      const x = ctx.tensor("x", { dtypes: F })
      const axis = ctx.int("axis")
      if (x && typeof axis === "number" && x.type.shape !== null) {
        const r = x.type.shape.length
        if (axis < -r || axis >= r) {
          ctx.error(ctx.arg("axis")!.pos, `axis expected in [${-r}, ${r - 1}] for rank ${r}, found ${axis}`)
        }
      }
      return x ? [x.type] : null
    }
  },
  logical_not: unary(B),
  identity: {
    args: ["x"],
    infer: (ctx) => {
      const x = ctx.arg("x")
      if (x === undefined) {
        ctx.missing("x", "a value")
        return null
      }
      return x.type ? [x.type] : null
    }
  },
  cast: {
    args: ["x", "dtype"],
    infer: (ctx) => {
      const allowed = ctx.opset >= 17
        ? ["int32", "fp16", "fp32", "bool", "int8", "uint8", "int16", "uint16"]
        : ["int32", "fp16", "fp32", "bool"]
      const x = ctx.tensor("x", { dtypes: new Set(allowed) })
      if (!ctx.has("dtype")) ctx.missing("dtype", "a string const")
      const d = ctx.string("dtype", null, allowed)
      if (!x) return null
      return [d === null ? null : tensor(d, x.type.shape)]
    }
  },
  add: binary(FI),
  sub: binary(FI),
  mul: binary(FI),
  real_div: binary(FI),
  pow: binary(FI),
  maximum: binary(FI),
  minimum: binary(FI),
  floor_div: binary(FI),
  mod: binary(FI),
  equal: binary(new Set(["fp16", "fp32", "int32", "bool"]), "bool"),
  not_equal: binary(new Set(["fp16", "fp32", "int32", "bool"]), "bool"),
  greater: binary(FI, "bool"),
  greater_equal: binary(FI, "bool"),
  less: binary(FI, "bool"),
  less_equal: binary(FI, "bool"),
  logical_and: binary(B, "bool"),
  logical_or: binary(B, "bool"),
  logical_xor: binary(B, "bool"),
  select: {
    args: ["cond", "a", "b"],
    infer: (ctx) => {
      const c = ctx.tensor("cond", { dtypes: B })
      const a = ctx.tensor("a", { dtypes: new Set(["fp16", "fp32", "int32", "bool"]) })
      const b = ctx.tensor("b", { dtypes: new Set(["fp16", "fp32", "int32", "bool"]) })
      if (!a || !b) return null
      ctx.sameDtype(a, b)
      const ab = broadcastArgs(ctx, a, b)
      if (ab === undefined) return null
      if (!c) return [tensor(a.type.dtype, ab)]
      const all = broadcastArgs(ctx, { arg: a.arg, type: { shape: ab } }, c)
      return all === undefined ? null : [tensor(a.type.dtype, all)]
    }
  }
}

/** The activation names recurrent ops accept (errata §4.4). */
export const recurrentActivations: ReadonlyArray<string> = [
  "tanh", "scaled_tanh", "sigmoid", "hard_sigmoid", "relu", "linear"
]
