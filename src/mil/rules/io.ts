/** ANE rules about a function's inputs and outputs: fixed shapes, dtypes, sizes, binding order. */
import type { MilFunction, Pos } from "../ast.js"
import type { TensorType } from "../ops/types.js"
import { formatType } from "../ops/types.js"
import type { AneRule, Finding, RuleContext } from "./context.js"
import { allocationBytes, chips } from "./context.js"

interface IoValue {
  readonly name: string
  readonly type: TensorType | null
  readonly pos: Pos
  readonly role: "input" | "output"
}

const io = (ctx: RuleContext, fn: MilFunction): ReadonlyArray<IoValue> => {
  const types = ctx.types(fn)
  const t = (name: string) => {
    const v = types?.types.get(name)
    return v !== undefined && v.kind === "tensor" ? v : null
  }
  return [
    ...fn.inputs.map((b) => ({ name: b.name, type: t(b.name), pos: b.pos, role: "input" as const })),
    ...fn.body.outputs.map((name) => {
      const p = ctx.producer(name, fn)?.outputs.find((o) => o.name === name)
      return { name, type: t(name), pos: p?.pos ?? fn.body.pos, role: "output" as const }
    })
  ]
}

const perIo = (ctx: RuleContext, f: (v: IoValue, fn: MilFunction) => Finding | null): ReadonlyArray<Finding> =>
  ctx.program.functions.flatMap((fn) => io(ctx, fn).flatMap((v) => f(v, fn) ?? []))

const uniform = (role: "input" | "output") => (ctx: RuleContext): ReadonlyArray<Finding> => {
  const out: Array<Finding> = []
  for (const fn of ctx.program.functions) {
    const vs = io(ctx, fn).filter((v) => v.role === role && v.type !== null)
    const sized = vs.map((v) => ({ v, bytes: allocationBytes(v.type!) })).filter((x) => x.bytes !== null)
    if (sized.length < 2) continue
    const sizes = new Set(sized.map((x) => x.bytes))
    if (sizes.size > 1) {
      const list = sized.map((x) => `${x.v.name}: ${x.bytes}`).join(", ")
      out.push({
        pos: sized[0].v.pos,
        message: `${role} surfaces of \`${fn.name}\` differ in allocation size (${list} bytes): expected every ` +
          `${role} surface to have the same size`
      })
    }
  }
  return out
}

/** Rules on function inputs and outputs. */
export const ioRules: ReadonlyArray<AneRule> = [
  {
    id: "ANE001",
    name: "fixed-shapes",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §5; spec/ane-field-facts.md §4.4 (static graphs only)",
    summary: "Every input and output dimension must be known when compiling",
    hint: "give every dim a fixed size; pad or bucket variable lengths and compile one program per bucket",
    doc: "The engine compiles fixed shapes only; a `?` or symbolic dim in a function's inputs or outputs cannot be " +
      "laid out on a surface. Core ML runs such models elsewhere (CPU/GPU).",
    check: (ctx) =>
      perIo(ctx, (v) =>
        v.type !== null && (v.type.shape === null || v.type.shape.some((d) => d === null))
          ? { pos: v.pos, message: `${v.role} \`${v.name}\` has type ${formatType(v.type)}: expected every dim fixed` }
          : null)
  },
  {
    id: "ANE002",
    name: "io-dtype",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §1–§2 (ironmill); spec/ane-field-facts.md §4.3 (ANEForge)",
    summary: "Function inputs and outputs must be fp16 (or fp32 cast inside the program)",
    hint: "pass fp16 (or fp32 and `cast` inside); convert integer and bool data on the host",
    doc: "ironmill measured int8/int4 I/O as rejected and allows fp16, fp32 and bool inputs; ANEForge says int32 has " +
      "no path and bool is compute-only. Conservative reading: only fp16 and fp32 pass.",
    check: (ctx) =>
      perIo(ctx, (v) =>
        v.type !== null && v.type.dtype !== "fp16" && v.type.dtype !== "fp32"
          ? { pos: v.pos, message: `${v.role} \`${v.name}\` has dtype ${v.type.dtype}: expected fp16 or fp32` }
          : null)
  },
  {
    id: "ANE003",
    name: "io-fp32",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §4.3; spec/mil-format.md §7.2–7.3",
    summary: "fp16 I/O is the safe choice; fp32 surfaces work on some paths only",
    hint: "declare the input/output fp16 and convert on the host (≈37% faster per maderix)",
    doc: "The Go runtime, rustane and Orion pass fp32 surfaces with a `cast` inside; maderix PR #40 reports fp32 I/O " +
      "producing zeros and skyfallsin says all I/O must be fp16. Sources disagree, so this is a warning.",
    check: (ctx) =>
      perIo(ctx, (v) =>
        v.type !== null && v.type.dtype === "fp32"
          ? { pos: v.pos, message: `${v.role} \`${v.name}\` is fp32: expected fp16 for portable I/O` }
          : null)
  },
  {
    id: "ANE004",
    name: "uniform-input-size",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §3 #12 (Orion); spec/ane-field-facts.md §3.6",
    summary: "All input surfaces of a program must have the same allocation size",
    hint: "pad the smaller inputs to the largest one's shape, or pack inputs into one tensor and slice inside",
    doc: "Orion reports eval status 0x1d when input surfaces differ in allocation size (C·H·roundup64(W·elem)).",
    check: uniform("input")
  },
  {
    id: "ANE005",
    name: "uniform-output-size",
    severity: "error",
    chips,
    source: "spec/ane-constraints.md §3 #2 (Orion); spec/ane-field-facts.md §3.6",
    summary: "All output surfaces of a program must have the same allocation size",
    hint: "pad the smaller outputs, or concatenate outputs into one tensor and split on the host",
    doc: "Orion reports eval status 0x1d when output surfaces differ in allocation size.",
    check: uniform("output")
  },
  {
    id: "ANE006",
    name: "min-surface-size",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §3 #4 (Orion); spec/ane-field-facts.md §4.4",
    summary: "I/O surfaces below ~49,152 bytes may fail at eval",
    hint: "grow the tensor (e.g. pad the spatial width) so the surface reaches 49,152 bytes",
    doc: "Orion reports eval status 0x1d for surfaces under ~49 KB; the Go runtime's tests run [1,4,1,1] programs, " +
      "so sources disagree and this stays a warning.",
    check: (ctx) =>
      perIo(ctx, (v) => {
        const b = v.type ? allocationBytes(v.type) : null
        return b !== null && b < 49152
          ? { pos: v.pos, message: `${v.role} \`${v.name}\` needs a ${b}-byte surface: expected at least 49152 bytes` }
          : null
      })
  },
  {
    id: "ANE007",
    name: "io-width",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §3.6 and §4.4 (rustane, skyfallsin); spec/mil-format.md §7.1",
    summary: "The innermost I/O dim should be ≥ 32 and a multiple of 16",
    hint: "lay data out as [1, C, 1, S] with the sequence on the last axis, padded to a multiple of 16 (≥ 32)",
    doc: "skyfallsin requires W ≥ 32 for runtime tensors, rustane a multiple of 16; the Go tests run width 1. " +
      "Conservative reading of both, as a warning. A narrow last axis also wastes the 64-byte row padding.",
    check: (ctx) =>
      perIo(ctx, (v) => {
        const s = v.type?.shape
        if (!s || s.length === 0) return null
        const w = s[s.length - 1]
        return w !== null && (w < 32 || w % 16 !== 0)
          ? { pos: v.pos, message: `${v.role} \`${v.name}\` has innermost dim ${w}: expected ≥ 32 and a multiple of 16` }
          : null
      })
  },
  {
    id: "ANE008",
    name: "io-binding-order",
    severity: "info",
    chips,
    source: "spec/ane-constraints.md §3 #3 and #13 (Orion)",
    summary: "Inputs and outputs are bound in alphabetical order of their names, not declaration order",
    hint: "rename the values so declaration order is alphabetical, or bind surfaces by name",
    doc: "Orion observed swapped inputs/outputs (no error) when names were not in alphabetical order.",
    check: (ctx) => {
      const out: Array<Finding> = []
      for (const fn of ctx.program.functions) {
        for (const role of ["input", "output"] as const) {
          const names = role === "input" ? fn.inputs.map((i) => i.name) : fn.body.outputs
          const sorted = [...names].sort()
          if (names.some((n, i) => n !== sorted[i])) {
            const pos = role === "input" ? fn.inputs[0].pos : fn.body.pos
            out.push({ pos, message: `${role}s of \`${fn.name}\` are declared as (${names.join(", ")}) but bind as ` +
              `(${sorted.join(", ")}): expected alphabetical declaration order` })
          }
        }
      }
      return out
    }
  }
]
