/** ANE rules about individual ops: rejected and disputed ops, epsilon, integer data, run-time gathers and weights. */
import type { NamedValue, Operation } from "../ast.js"
import { intDtypes } from "../ops/types.js"
import type { AneRule, Finding, OpSite, RuleContext } from "./context.js"
import { chips, inputsOf } from "./context.js"

const perOp = (ctx: RuleContext, f: (site: OpSite) => Finding | ReadonlyArray<Finding> | null):
  ReadonlyArray<Finding> => ctx.ops().flatMap((s) => f(s) ?? [])

const arg = (op: Operation, name: string): NamedValue | undefined => inputsOf(op).find((a) => a.name === name)

/** Ops the compiler rejects (ironmill's measured ❌ list), with their replacements. */
const rejected: Readonly<Record<string, string>> = {
  neg: "use mul(x, -1)",
  mod: "compute x - floor_div(x, y)·y with sub/mul/floor_div",
  sin: "precompute on the host or approximate with a polynomial of mul/add",
  cos: "precompute on the host or approximate with a polynomial of mul/add",
  tan: "precompute on the host or approximate with mul/add/real_div",
  asin: "precompute on the host",
  acos: "precompute on the host",
  sinh: "use (exp(x) - exp(-x)) · 0.5",
  cosh: "use (exp(x) + exp(-x)) · 0.5",
  reduce_prod: "use exp(reduce_sum(log(x))) for positive x",
  batch_norm: "fold mean/variance/gamma/beta into one mul and one add (or into the preceding conv's weights)",
  logical_and: "use mul on 0/1 fp16 masks, or select",
  logical_or: "use maximum on 0/1 fp16 masks, or select",
  logical_xor: "use not_equal on the masks, or select",
  where: "use select(cond, a, b)",
  avg_pool: "use a depthwise conv with constant 1/k² weights, or reduce_mean over reshaped windows",
  max_pool: "use reduce_max over reshaped windows (e.g. reshape + reduce_max for non-overlapping pools)",
  scatter: "build the result with select/concat, or run the scatter on the host",
  scatter_nd: "run the scatter on the host",
  scatter_along_axis: "build the result with select, or run the scatter on the host"
}

/** Ops whose support the sources dispute, with the safe replacement. */
const disputed: Readonly<Record<string, { readonly why: string; readonly hint: string }>> = {
  concat: {
    why: "Orion reports `ANECCompile() FAILED` on the in-memory path; ironmill and Apple-compiled models use it",
    hint: "write separate outputs, or keep `axis` and `interleave` as named consts (ironmill's working form)"
  },
  gelu: {
    why: "Orion reports no gelu op on its path; maderix and ANEForge list it",
    hint: "decompose: 0.5·x·(1 + tanh(0.7978846·(x + 0.044715·x³))) with mul/add/tanh"
  },
  tile: {
    why: "skyfallsin reports that a program with tile poisons the engine for later programs in the process",
    hint: "replace with concat of copies, or broadcast in the consuming elementwise op"
  },
  reduce_mean: {
    why: "Espresso/hollance report it absent in raw MIL text; ironmill evaluated it",
    hint: "use reduce_sum then mul by 1/N"
  },
  rsqrt: {
    why: "Orion and rustane report compile failures; ironmill evaluated it with an explicit epsilon",
    hint: "use pow(x, -0.5) (add epsilon first if x can be 0)"
  },
  lstm: {
    why: "hollance lists RNN layers among those that push Core ML off the engine",
    hint: "unroll the recurrence into matmul/conv + sigmoid/tanh ops per step"
  },
  gru: {
    why: "hollance lists RNN layers among those that push Core ML off the engine",
    hint: "unroll the recurrence into matmul/conv + sigmoid/tanh ops per step"
  },
  rnn: {
    why: "hollance lists RNN layers among those that push Core ML off the engine",
    hint: "unroll the recurrence into matmul/conv + tanh ops per step"
  }
}

const arithmetic = new Set(["add", "sub", "mul", "real_div", "floor_div", "mod", "pow", "maximum", "minimum"])

/** Rules on individual ops. */
export const opRulesAne: ReadonlyArray<AneRule> = [
  {
    id: "ANE009",
    name: "rejected-op",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1 (ironmill op-support matrix, rejected list)",
    summary: "The ANE compiler rejects this op",
    hint: "replace the op with the supported composition named in the message",
    doc: "Measured by ironmill on M3 Pro: neg, mod, trigonometric and hyperbolic ops, reduce_prod, batch_norm, the " +
      "logical binaries, where, avg_pool, max_pool and scatter ops fail to compile.",
    check: (ctx) =>
      perOp(ctx, ({ op }) => {
        const fix = rejected[op.op]
        return fix === undefined ? null : {
          pos: op.pos,
          message: `op \`${op.op}\` is rejected by the ANE compiler: expected a supported op`,
          hint: fix
        }
      })
  },
  {
    id: "ANE010",
    name: "disputed-op",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §3, §6 and Disagreements; spec/ane-field-facts.md §4.5",
    summary: "Sources disagree whether the engine runs this op correctly",
    hint: "prefer the replacement named in the hint",
    doc: "concat, gelu, tile, reduce_mean, rsqrt and the recurrent ops work on some paths and fail or misbehave on " +
      "others. Conservative reading: flag them, as warnings since at least one source runs them.",
    check: (ctx) =>
      perOp(ctx, ({ op }) => {
        const d = disputed[op.op]
        return d === undefined ? null : {
          pos: op.pos,
          message: `op \`${op.op}\` may fail on the engine (${d.why}): expected an op every source accepts`,
          hint: d.hint
        }
      })
  },
  {
    id: "ANE011",
    name: "explicit-epsilon",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1 (ironmill: rsqrt*, log*, inverse*)",
    summary: "rsqrt, log and inverse need an explicit epsilon argument",
    hint: "add `epsilon = <const>` (e.g. 1e-4 in fp16)",
    doc: "ironmill: without an explicit epsilon the compiler rejects these ops.",
    check: (ctx) =>
      perOp(ctx, ({ op }) =>
        ["rsqrt", "log", "inverse"].includes(op.op) && arg(op, "epsilon") === undefined
          ? { pos: op.pos, message: `op \`${op.op}\` has no \`epsilon\` argument: expected an explicit epsilon` }
          : null)
  },
  {
    id: "ANE012",
    name: "int32-cast",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1 (ironmill: cast fp16↔int32 rejected)",
    summary: "Casting to or from int32 is rejected",
    hint: "cast through int16 (or keep the values in fp16)",
    doc: "ironmill measured cast fp16↔int32 as rejected, while int8/int16/uint8 casts work.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "cast") return null
        const d = arg(op, "dtype")
        const x = arg(op, "x")
        const target = d ? ctx.constOf(d.value, fn) : null
        const to = target?.kind === "inline" ? target.data[0] : target?.kind === "splat" ? target.value : null
        const from = x ? ctx.tensorOf(x.value, fn)?.dtype : undefined
        if (to === "int32" || from === "int32") {
          return { pos: op.pos, message: `cast ${from ?? "?"} → ${String(to ?? "?")}: expected no int32 on either side` }
        }
        return null
      })
  },
  {
    id: "ANE013",
    name: "int4-data",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1–§2 (ironmill: every INT4/UINT4 path rejected)",
    summary: "int4/uint4 tensors are rejected",
    hint: "store weights as int8 (constexpr_affine_dequantize) or as a palette with uint8 indices",
    doc: "ironmill measured every INT4/UINT4 path (and int4 inputs) as rejected.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        const found: Array<Finding> = []
        for (const a of inputsOf(op)) {
          const t = ctx.tensorOf(a.value, fn)
          if (t && (t.dtype === "int4" || t.dtype === "uint4")) {
            found.push({ pos: a.pos, message: `\`${op.op}\` argument \`${a.name}\` has dtype ${t.dtype}: expected ` +
              `int8/uint8 or wider` })
          }
        }
        return found
      })
  },
  {
    id: "ANE014",
    name: "integer-arithmetic",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1 (ironmill: integer arithmetic rejected, int8 storage only)",
    summary: "Arithmetic on integer tensors is rejected; the engine computes in fp16",
    hint: "cast the operands to fp16 first (exact for integers up to 2048)",
    doc: "ironmill: add/mul on int8 are rejected; integers can only be stored. Applied to every integer dtype.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (!arithmetic.has(op.op)) return null
        const x = arg(op, "x")
        const t = x ? ctx.tensorOf(x.value, fn) : null
        return t && intDtypes.has(t.dtype)
          ? { pos: op.pos, message: `\`${op.op}\` on ${t.dtype} operands: expected fp16 (or fp32) operands` }
          : null
      })
  },
  {
    id: "ANE015",
    name: "runtime-gather",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1–§2 (ironmill: gather with runtime indices rejected)",
    summary: "gather needs compile-time indices",
    hint: "for an embedding lookup use a one-hot matmul, or gather on the host",
    doc: "ironmill: the only single op of 25 that failed to compile was gather with runtime indices; a static " +
      "constexpr_lut_to_dense works.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "gather" && op.op !== "gather_along_axis") return null
        const i = arg(op, "indices")
        return i && !ctx.isCompileTime(i.value, fn)
          ? { pos: i.pos, message: `\`${op.op}\` indices are computed at run time: expected constant indices` }
          : null
      })
  },
  {
    id: "ANE016",
    name: "runtime-conv-weight",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §4.5; spec/ane-constraints.md §4 (skyfallsin) and Disagreements",
    summary: "conv with a run-time weight compiles but the weight may be ignored",
    hint: "use matmul for run-time weights (the Go dynamic-matmul pattern), or make the weight a const",
    doc: "skyfallsin: conv with a runtime weight input compiles but the weight data is ignored, silently. The Go " +
      "runtime ships a dynamic-weight conv generator, so this is a warning.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "conv" && op.op !== "conv_transpose") return null
        const w = arg(op, "weight")
        return w && !ctx.isCompileTime(w.value, fn)
          ? { pos: w.pos, message: `\`${op.op}\` weight is computed at run time: expected a const weight` }
          : null
      })
  },
  {
    id: "ANE017",
    name: "conv-bias",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §4.5 (Orion: conv takes no bias=)",
    summary: "conv's bias argument is not accepted on the in-memory path",
    hint: "drop `bias` and add it with a separate `add` after the conv",
    doc: "Orion reports conv with `bias=` failing; Apple-compiled models use it through Core ML. Warning.",
    check: (ctx) =>
      perOp(ctx, ({ op }) => {
        const b = op.op === "conv" ? arg(op, "bias") : undefined
        return b ? { pos: b.pos, message: "conv has a `bias` argument: expected the bias as a separate add" } : null
      })
  }
]
