/** ANE rules on op forms and limits: attention, const parameters, concat/layer_norm forms, axis and kernel caps. */
import type { NamedValue, Operation } from "../ast.js"
import { formatShape } from "../ops/types.js"
import type { AneRule, Chip, Finding, OpSite, RuleContext } from "./context.js"
import { chips, inputsOf, scalarValue } from "./context.js"

const perOp = (ctx: RuleContext, f: (site: OpSite) => Finding | ReadonlyArray<Finding> | null):
  ReadonlyArray<Finding> => ctx.ops().flatMap((s) => f(s) ?? [])

const arg = (op: Operation, name: string): NamedValue | undefined => inputsOf(op).find((a) => a.name === name)

/** Largest conv kernel width per chip (ANEForge: 13 on M1, 15 on M5; unknown chips get the smaller). */
const kernelWidthCap = (chip: Chip | undefined): number => (chip === "m5" ? 15 : 13)

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0

/** Rules on op argument forms and size limits. */
export const formRules: ReadonlyArray<AneRule> = [
  {
    id: "ANE018",
    name: "sdpa-mask-ignored",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §3 #6; spec/ane-field-facts.md §4.5 (maderix, Orion)",
    summary: "scaled_dot_product_attention ignores attn_mask on the in-memory path",
    hint: "compute matmul(q, kᵀ)·scale + mask, softmax, matmul(·, v) explicitly",
    doc: "maderix and Orion report the mask ignored (attention comes out unmasked, no error); maderix's own test " +
      "passes a mask, so sources disagree: warning.",
    check: (ctx) =>
      perOp(ctx, ({ op }) => {
        const m = op.op === "scaled_dot_product_attention" ? arg(op, "attn_mask") : undefined
        return m ? { pos: m.pos, message: "attn_mask may be ignored: expected an explicit masked attention" } : null
      })
  },
  {
    id: "ANE019",
    name: "sdpa-opset",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §5 (maderix: SDPA needs iOS 18+); spec/mil-format.md §9",
    summary: "scaled_dot_product_attention needs opset ios18",
    hint: "declare the function `<ios18>` or write the attention with matmul/softmax",
    doc: "The op exists from the iOS18 opset; older targets do not know it.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "scaled_dot_product_attention") return null
        const m = fn.opset ? /^ios(\d+)$/i.exec(fn.opset) : null
        return m && Number(m[1]) < 18
          ? { pos: op.pos, message: `scaled_dot_product_attention in a <${fn.opset}> function: expected <ios18>` }
          : null
      })
  },
  {
    id: "ANE020",
    name: "const-op-parameters",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §4.5 (Orion: matmul flags as named consts); spec/ane-constraints.md §1",
    summary: "Op parameters the engine needs as named scalar consts",
    hint: "define the parameter with a `const` op and pass its name",
    doc: "Orion requires matmul's transpose flags as named consts; ironmill's passing forms use scalar const " +
      "pow exponents, clip bounds and softmax axes. Other forms are untested: warning.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        const found: Array<Finding> = []
        const named = (name: string, required: boolean) => {
          const a = arg(op, name)
          if (a === undefined) {
            if (required) found.push({ pos: op.pos, message: `\`${op.op}\` has no \`${name}\`: expected a named const` })
            return
          }
          if (a.value.kind !== "ref") {
            found.push({ pos: a.pos, message: `\`${op.op}\` \`${name}\` is an inline literal: expected a named const` })
          }
        }
        const scalarConst = (name: string) => {
          const a = arg(op, name)
          if (a === undefined) return
          const t = ctx.tensorOf(a.value, fn)
          if (!ctx.isCompileTime(a.value, fn) || (t !== null && t.shape !== null && t.shape.length > 0 &&
            !(t.shape.length === 1 && t.shape[0] === 1))) {
            found.push({ pos: a.pos, message: `\`${op.op}\` \`${name}\` is ${ctx.isCompileTime(a.value, fn)
              ? `a tensor ${formatShape(t?.shape ?? null)}` : "computed at run time"}: expected a scalar const` })
          }
        }
        if (op.op === "matmul") {
          named("transpose_x", true)
          named("transpose_y", true)
        }
        if (op.op === "pow") scalarConst("y")
        if (op.op === "clip") {
          scalarConst("alpha")
          scalarConst("beta")
        }
        if (op.op === "softmax") scalarConst("axis")
        return found
      })
  },
  {
    id: "ANE021",
    name: "concat-form",
    severity: "error",
    chips,
    source: "spec/mil-format.md §7.3 (maderix ANE_INTERNALS); spec/ane-constraints.md §1 and §5",
    summary: "concat needs an `interleave` argument and an int32 scalar const `axis`",
    hint: "pass `axis = <int32 const>` and `interleave = <bool const false>`",
    doc: "maderix: concat requires the interleave parameter and an int32 scalar axis (not a tensor).",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "concat") return null
        const found: Array<Finding> = []
        if (arg(op, "interleave") === undefined) {
          found.push({ pos: op.pos, message: "concat has no `interleave` argument: expected one" })
        }
        const a = arg(op, "axis")
        const t = a ? ctx.tensorOf(a.value, fn) : null
        if (a && (!ctx.isCompileTime(a.value, fn) || (t !== null && (t.dtype !== "int32" || t.shape === null ||
          t.shape.length !== 0)))) {
          found.push({ pos: a.pos, message: `concat axis is ${t ? `${t.dtype} ${formatShape(t.shape)}` : "not a const"}` +
            ": expected an int32 scalar const" })
        }
        return found
      })
  },
  {
    id: "ANE022",
    name: "layer-norm-param-dtype",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §5 (maderix ANE_INTERNALS)",
    summary: "layer_norm's gamma, beta and epsilon must have x's dtype (not iOS17's mixed-precision form)",
    hint: "declare gamma, beta and epsilon with x's dtype (e.g. all fp16)",
    doc: "maderix: the compiler's type checker needs exact matches here. MIL typing (iOS17) lets gamma, beta and " +
      "epsilon share another float dtype than x; a mismatch among the three is a type error (T005), not this rule.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "layer_norm") return null
        const x = arg(op, "x")
        const xt = x ? ctx.tensorOf(x.value, fn) : null
        if (!xt) return null
        const params = ["gamma", "beta", "epsilon"].flatMap((name) => {
          const a = arg(op, name)
          const t = a ? ctx.tensorOf(a.value, fn) : null
          return a && t ? [{ a, name, dtype: t.dtype }] : []
        })
        // Parameters that disagree among themselves are the checker's type error, reported once, there.
        const first = params[0]
        if (first === undefined || params.some((p) => p.dtype !== first.dtype) || first.dtype === xt.dtype) return null
        return {
          pos: first.a.pos,
          message: `layer_norm ${params.map((p) => p.name).join(", ")} ${params.length === 1 ? "is" : "are"} ` +
            `${first.dtype}, x is ${xt.dtype}: expected x's dtype`
        }
      })
  },
  {
    id: "ANE023",
    name: "control-flow",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §4.4 (static graphs only)",
    summary: "The engine runs static graphs: no cond or while_loop",
    hint: "unroll loops and evaluate both branches with select, or split the program",
    doc: "ANEForge, maderix and whisper.cpp discussions: no control flow on the engine.",
    check: (ctx) =>
      perOp(ctx, ({ op }) =>
        op.blocks.length > 0 || op.op === "cond" || op.op === "while_loop"
          ? { pos: op.pos, message: `op \`${op.op}\` is control flow: expected a static graph` }
          : null)
  },
  {
    id: "ANE024",
    name: "argmax-axis-size",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §4.4 (ane-guide, measured on M1)",
    summary: "reduce_argmax/argmin reduce an axis of at most 2048",
    hint: "reduce in chunks of ≤ 2048 and combine the partial results",
    doc: "Measured on M1; no later chip is reported, so the conservative cap applies to all.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "reduce_argmax" && op.op !== "reduce_argmin") return null
        const x = arg(op, "x")
        const t = x ? ctx.tensorOf(x.value, fn) : null
        const a = arg(op, "axis")
        const axis = a ? scalarValue(ctx.constOf(a.value, fn)) : -1
        if (!t || t.shape === null || axis === null) return null
        const n = axis < 0 ? axis + t.shape.length : axis
        const d = t.shape[n]
        return d !== null && d !== undefined && d > 2048
          ? { pos: op.pos, message: `\`${op.op}\` over an axis of ${d}: expected at most 2048` }
          : null
      })
  },
  {
    id: "ANE025",
    name: "softmax-size",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §3.6 (Espresso, hollance/neural-engine#44)",
    summary: "softmax over a non-power-of-2 axis is reported to fail",
    hint: "pad the axis to a power of 2 with a large negative value before the softmax",
    doc: "Reported by Espresso; not confirmed by a second source: warning.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "softmax") return null
        const x = arg(op, "x")
        const t = x ? ctx.tensorOf(x.value, fn) : null
        const a = arg(op, "axis")
        const axis = a ? scalarValue(ctx.constOf(a.value, fn)) : -1
        if (!t || t.shape === null || axis === null) return null
        const d = t.shape[axis < 0 ? axis + t.shape.length : axis]
        return d !== null && d !== undefined && !isPow2(d)
          ? { pos: op.pos, message: `softmax over an axis of ${d}: expected a power of 2` }
          : null
      })
  },
  {
    id: "ANE026",
    name: "slice-of-input",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §3.6 (Espresso, hollance/neural-engine#44)",
    summary: "slice_by_index directly on a function input is reported to fail",
    hint: "slice with slice_by_size, or pass the pieces as separate inputs",
    doc: "Reported by Espresso; single source: warning.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "slice_by_index") return null
        const x = arg(op, "x")
        return x && x.value.kind === "ref" && fn.inputs.some((i) => i.name === (x.value as { name: string }).name)
          ? { pos: x.pos, message: "slice_by_index of a function input: expected slicing of an intermediate value" }
          : null
      })
  },
  {
    id: "ANE027",
    name: "small-epsilon",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §5 (mil_gen.h: eps ≥ 1e-4 for fp16); spec/mil-format-errata.md row 8",
    summary: "An epsilon below 1e-4 underflows in the engine's fp16 arithmetic",
    hint: "use epsilon ≥ 1e-4 (fp16's smallest normal is 6.1e-5)",
    doc: "The engine computes in fp16: 1e-5 becomes a subnormal and 1e-8 or less becomes 0.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        const e = arg(op, "epsilon")
        const v = e ? scalarValue(ctx.constOf(e.value, fn)) : null
        return e && v !== null && v < 1e-4
          ? { pos: e.pos, message: `\`${op.op}\` epsilon ${v}: expected ≥ 1e-4 in fp16` }
          : null
      })
  },
  {
    id: "ANE028",
    name: "conv-channels",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §4.4 (Orion: 32K-channel convolutions rejected)",
    summary: "Convolutions with 32,768 or more channels are rejected",
    hint: "split the conv along output channels (groups of ≤ 16,384) and concatenate",
    doc: "Orion reports convs with 32K channels rejected, below the 65,536 channel cap; the lower figure wins.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "conv") return null
        const w = arg(op, "weight")
        const t = w ? ctx.tensorOf(w.value, fn) : null
        if (!t || t.shape === null || t.shape.length < 2) return null
        const big = [t.shape[0], t.shape[1]].find((d) => d !== null && d >= 32768)
        return big !== undefined
          ? { pos: op.pos, message: `conv weight ${formatShape(t.shape)} has ${big} channels: expected fewer than 32768` }
          : null
      })
  },
  {
    id: "ANE029",
    name: "conv-kernel-width",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §4.4 (ANEForge: kernel width ≤ 13 on M1, ≤ 15 on M5)",
    summary: "conv kernel width is capped: 13 (M1–M4), 15 (M5)",
    hint: "split a wide kernel into several narrower convs and add their outputs",
    doc: "ANEForge gives 13 for M1 and 15 for M5; M2–M4 are not reported, so they get the smaller cap, as does an " +
      "unnamed chip.",
    check: (ctx) =>
      perOp(ctx, ({ op, fn }) => {
        if (op.op !== "conv") return null
        const w = arg(op, "weight")
        const t = w ? ctx.tensorOf(w.value, fn) : null
        if (!t || t.shape === null || t.shape.length < 3) return null
        const k = t.shape[t.shape.length - 1]
        const cap = kernelWidthCap(ctx.chip)
        return k !== null && k > cap
          ? { pos: op.pos, message: `conv kernel width ${k}: expected ≤ ${cap} on ${ctx.chip ?? "every chip"}` }
          : null
      })
  }
]

