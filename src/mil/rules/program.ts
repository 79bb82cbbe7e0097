/** ANE rules about the whole program: dimension caps, weight files, build info, program version. */
import type { Literal, Program, Value } from "../ast.js"
import { dtypeBits, formatType, numel, resolveType } from "../ops/types.js"
import type { AneRule, Chip, Finding, RuleContext } from "./context.js"
import { chips } from "./context.js"

/** Width/height/contraction cap: 16,384 through A15 (M1, M2), 65,536 from A16 (M3 on); unknown → smaller. */
const spatialCap = (chip: Chip | undefined): number => (chip === "m3" || chip === "m4" || chip === "m5" ? 65536 : 16384)

const blobs = (program: Program): ReadonlyArray<Extract<Value, { kind: "blob" }>> => {
  const out: Array<Extract<Value, { kind: "blob" }>> = []
  const visit = (v: Value) => {
    if (v.kind === "blob") out.push(v)
    else if (v.kind === "tuple") v.items.forEach(visit)
  }
  const walk = (ops: Program["functions"][number]["body"]["operations"]) => {
    for (const op of ops) {
      for (const a of [...op.args, ...op.attributes]) visit(a.value)
      for (const b of op.blocks) walk(b.operations)
    }
  }
  for (const fn of program.functions) walk(fn.body.operations)
  return out
}

const blobBytes = (b: Extract<Value, { kind: "blob" }>): number => {
  const t = resolveType(b.type)
  if (t.kind !== "tensor") return 0
  return Math.ceil(((numel(t.shape) ?? 0) * dtypeBits(t.dtype)) / 8)
}

const hasCoremlcVersion = (program: Program): boolean => {
  const info = program.attributes.find((a) => a.name === "buildInfo")
  if (!info || info.value.kind !== "typed") return false
  const keys = (l: Literal): boolean =>
    l.kind === "dict"
      ? l.entries.some(([k]) => k.kind === "string" && k.value === "coremlc-version")
      : l.kind === "list" && l.items.some(keys)
  return keys(info.value.literal)
}

/** Activations: op outputs other than constants, and function inputs. */
const activations = (ctx: RuleContext) => {
  const out: Array<{ name: string; type: ReturnType<typeof resolveType>; pos: Finding["pos"] }> = []
  for (const fn of ctx.program.functions) {
    const types = ctx.types(fn)
    for (const i of fn.inputs) out.push({ name: i.name, type: types?.types.get(i.name) ?? resolveType(i.type), pos: i.pos })
    for (const { op, fn: f } of ctx.ops()) {
      if (f !== fn || op.op === "const" || op.op.startsWith("constexpr_")) continue
      for (const o of op.outputs) {
        out.push({ name: o.name, type: types?.types.get(o.name) ?? resolveType(o.type), pos: o.pos })
      }
    }
  }
  return out
}

/** Program-wide rules. */
export const programRules: ReadonlyArray<AneRule> = [
  {
    id: "ANE030",
    name: "spatial-dim-cap",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §4.4 (ANEForge, ane-guide); spec/mil-format.md §7.3",
    summary: "Width and height (the last two dims) are capped: 16,384 on M1/M2, 65,536 from M3",
    hint: "tile the long axis into chunks under the cap",
    doc: "ANEForge: W/H/contraction ≤ 16,384 up to A15, 65,536 from A16; M1/M2 belong to the A14/A15 generation. " +
      "An unnamed chip gets the lower cap.",
    check: (ctx) => {
      const cap = spatialCap(ctx.chip)
      return activations(ctx).flatMap((v) => {
        if (v.type.kind !== "tensor" || v.type.shape === null) return []
        const s = v.type.shape
        const big = s.slice(-2).find((d) => d !== null && d > cap)
        return big === undefined ? [] : [{
          pos: v.pos,
          message: `\`${v.name}\` ${formatType(v.type)} has a width/height of ${big}: expected ≤ ${cap} on ` +
            `${ctx.chip ?? "every chip"}`
        }]
      })
    }
  },
  {
    id: "ANE031",
    name: "dim-cap",
    severity: "error",
    chips,
    source: "spec/ane-field-facts.md §3.11 and §4.4 (maderix PR #26 \"65536 max dim\"; ANEForge channels ≤ 65,536)",
    summary: "No tensor dim may exceed 65,536",
    hint: "split the tensor (e.g. chunk a large LM head) into pieces of ≤ 65,536",
    doc: "Channels are capped at 65,536 on every chip; a 151,936-wide head had to be chunked.",
    check: (ctx) =>
      activations(ctx).flatMap((v) => {
        if (v.type.kind !== "tensor" || v.type.shape === null) return []
        const big = v.type.shape.find((d) => d !== null && d > 65536)
        return big === undefined ? [] : [{
          pos: v.pos,
          message: `\`${v.name}\` ${formatType(v.type)} has a dim of ${big}: expected ≤ 65536`
        }]
      })
  },
  {
    id: "ANE032",
    name: "blobfile-count",
    severity: "warning",
    chips,
    source: "spec/ane-field-facts.md §4.5 (Orion, secondary)",
    summary: "A program may hold at most 16 BLOBFILE tensors",
    hint: "pack several weights into one tensor and slice it, or split the program",
    doc: "A later Orion revision reportedly caps a program at 16 BLOBFILE tensors; secondary source: warning.",
    check: (ctx) => {
      const bs = blobs(ctx.program)
      return bs.length > 16
        ? [{ pos: bs[16].pos, message: `the program references ${bs.length} BLOBFILE tensors: expected at most 16` }]
        : []
    }
  },
  {
    id: "ANE033",
    name: "weight-budget",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §5 (maderix: SRAM ~24–32 MB); spec/ane-field-facts.md §4.4",
    summary: "Programs whose weights exceed ~24 MiB are rejected or spill",
    hint: "split the program into several smaller ones, or quantise the weights",
    doc: "SRAM is ~24–32 MB (M4 Max); the lower figure is used.",
    check: (ctx) => {
      const bs = blobs(ctx.program)
      const total = bs.reduce((a, b) => a + blobBytes(b), 0)
      return total > 24 * 1024 * 1024
        ? [{ pos: ctx.program.pos, message: `weights total ${total} bytes: expected at most ${24 * 1024 * 1024}` }]
        : []
    }
  },
  {
    id: "ANE034",
    name: "build-info",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §4 (skyfallsin field guide)",
    summary: "The in-memory MIL parser wants a buildInfo attribute with `coremlc-version`",
    hint: "add [buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}})] after program(…)",
    doc: "skyfallsin: without buildInfo/coremlc-version the MIL parser fails; \"3505.4.1\" worked on macOS 13–15.",
    check: (ctx) =>
      hasCoremlcVersion(ctx.program)
        ? []
        : [{ pos: ctx.program.pos, message: "no buildInfo entry \"coremlc-version\": expected one" }]
  },
  {
    id: "ANE035",
    name: "program-version-m1",
    severity: "warning",
    chips: ["m1"],
    source: "spec/ane-field-facts.md §3.1 (maderix ANE_BENCHMARK_REPORT: M1 Pro/Max reject program(1.3))",
    summary: "M1 Pro/Max reject program(1.3) text",
    hint: "emit program(1.0) with an ios16/ios17 opset for M1-family machines",
    doc: "Reported for M1 Pro/Max only; applied to the m1 family as a warning.",
    check: (ctx) =>
      ctx.program.version === "1.3" && (ctx.chip === undefined || ctx.chip === "m1")
        ? [{ pos: ctx.program.pos, message: "program(1.3) on M1: expected program(1.0)" }]
        : []
  },
  {
    id: "ANE036",
    name: "fp32-compute",
    severity: "warning",
    chips,
    source: "spec/ane-constraints.md §5 (maderix ANE_INTERNALS; mil_gen.h); spec/ane-field-facts.md §4.3",
    summary: "The engine computes in fp16; fp32 ops are cast or fall back to the GPU",
    hint: "cast to fp16 right after the inputs and compute in fp16",
    doc: "maderix: the engine computes in fp16 only; a public mil_gen.h says fp32 falls back to the GPU on M1–M4. " +
      "ANEForge allows fp32 only as an intermediate around casts. Warning, one per op computing in fp32.",
    check: (ctx) =>
      ctx.ops().flatMap(({ op, types }) => {
        if (op.op === "const" || op.op === "cast" || op.op.startsWith("constexpr_")) return []
        const out = op.outputs[0]
        const t = out ? types?.types.get(out.name) : undefined
        return t !== undefined && t.kind === "tensor" && t.dtype === "fp32"
          ? [{ pos: op.pos, message: `\`${op.op}\` computes \`${out!.name}\` in fp32: expected fp16 compute` }]
          : []
      })
  }
]
