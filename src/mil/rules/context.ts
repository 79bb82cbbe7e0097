/** What an ANE rule sees: the program, the checker's types, the chip, and helpers over both. */
import type { MilFunction, NamedValue, Operation, Pos, Program, Value } from "../ast.js"
import type { CheckResult, FunctionTypes } from "../check.js"
import type { ConstValue, TensorType, ValueType } from "../ops/types.js"
import { decodeConst, dtypeBits, resolveType } from "../ops/types.js"
import type { Severity } from "../../schema/Diagnostic.js"

/** Apple-silicon chip families the rules distinguish. */
export type Chip = "m1" | "m2" | "m3" | "m4" | "m5"

/** Every chip family, oldest first. */
export const chips: ReadonlyArray<Chip> = ["m1", "m2", "m3", "m4", "m5"]

/** One finding of a rule, before it becomes a Diagnostic. */
export interface Finding {
  readonly pos: Pos
  readonly message: string
  /** Overrides the rule's generic hint when the fix depends on the finding. */
  readonly hint?: string
}

/** One ANE rule. */
export interface AneRule {
  /** Stable id: `ANE001`… */
  readonly id: string
  /** Short kebab-case name. */
  readonly name: string
  readonly severity: Severity
  /** Chip families it applies to. */
  readonly chips: ReadonlyArray<Chip>
  /** The public source, as a section of the shared specs. */
  readonly source: string
  /** One line: what the engine requires. */
  readonly summary: string
  /** How to fix a finding. */
  readonly hint: string
  /** Details, including how disagreeing sources were resolved. */
  readonly doc: string
  /** Runs the rule; `chip` is undefined when the caller named none (then the strictest reading applies). */
  readonly check: (ctx: RuleContext) => ReadonlyArray<Finding>
}

/** An op with the function it sits in and that function's types. */
export interface OpSite {
  readonly op: Operation
  readonly fn: MilFunction
  readonly types: FunctionTypes | undefined
}

/** Inputs of an op, arguments and (iOS16 constexpr) attributes alike, without `name`. */
export const inputsOf = (op: Operation): ReadonlyArray<NamedValue> => [
  ...op.args,
  ...op.attributes.filter((a) => a.name !== "name")
]

/** The read-only view rules work on. */
export class RuleContext {
  constructor(
    readonly program: Program,
    readonly checked: CheckResult,
    readonly chip: Chip | undefined
  ) {}

  private opsCache: ReadonlyArray<OpSite> | null = null
  private readonly producers = new Map<MilFunction, ReadonlyMap<string, Operation>>()

  /** Every op of every function, nested blocks included, in source order. */
  ops(): ReadonlyArray<OpSite> {
    if (this.opsCache !== null) return this.opsCache
    const out: Array<OpSite> = []
    const walk = (ops: ReadonlyArray<Operation>, fn: MilFunction, types: FunctionTypes | undefined) => {
      for (const op of ops) {
        out.push({ op, fn, types })
        for (const b of op.blocks) walk(b.operations, fn, types)
      }
    }
    for (const fn of this.program.functions) walk(fn.body.operations, fn, this.checked.functions.get(fn.name))
    this.opsCache = out
    return out
  }

  /** The types of a function. */
  types(fn: MilFunction): FunctionTypes | undefined {
    return this.checked.functions.get(fn.name)
  }

  /** The resolved type of an argument value (references looked up, literals read). */
  typeOf(value: Value, fn: MilFunction): ValueType | null {
    if (value.kind === "ref") return this.types(fn)?.types.get(value.name) ?? null
    if (value.kind === "tuple") return null
    return resolveType(value.type)
  }

  /** A tensor type or null. */
  tensorOf(value: Value, fn: MilFunction): TensorType | null {
    const t = this.typeOf(value, fn)
    return t !== null && t.kind === "tensor" ? t : null
  }

  /** The constant behind a value: an inline literal, a BLOBFILE, or a reference to a `const` op. */
  constOf(value: Value, fn: MilFunction): ConstValue | null {
    if (value.kind === "ref") return this.types(fn)?.consts.get(value.name) ?? null
    return decodeConst(value)
  }

  /** The op that defines a name in a function, if any. */
  producer(name: string, fn: MilFunction): Operation | undefined {
    let index = this.producers.get(fn)
    if (index === undefined) {
      const m = new Map<string, Operation>()
      for (const site of this.ops()) {
        if (site.fn !== fn) continue
        for (const o of site.op.outputs) if (!m.has(o.name)) m.set(o.name, site.op)
      }
      this.producers.set(fn, m)
      index = m
    }
    return index.get(name)
  }

  /** True when a value is known at compile time: a literal, a `const` or `constexpr_*` output. */
  isCompileTime(value: Value, fn: MilFunction): boolean {
    if (value.kind === "typed" || value.kind === "blob") return true
    if (value.kind === "tuple") return value.items.every((v) => this.isCompileTime(v, fn))
    const p = this.producer(value.name, fn)
    return p !== undefined && (p.op === "const" || p.op.startsWith("constexpr_"))
  }
}

/** A single numeric value of a constant, if it has exactly one. */
export const scalarValue = (c: ConstValue | null): number | null => {
  if (c === null) return null
  if (c.kind === "splat") return typeof c.value === "number" ? c.value : null
  return c.kind === "inline" && c.data.length >= 1 && typeof c.data[0] === "number" &&
    c.data.every((v) => v === c.data[0])
    ? c.data[0]
    : null
}

/** Bytes per element the engine's surfaces use for a dtype. */
export const elementBytes = (dtype: string): number => Math.max(1, Math.ceil(dtypeBits(dtype) / 8))

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m

/**
 * The IOSurface allocation of an I/O tensor: shapes map to NCHW from the right (W last), every row padded to 64
 * bytes (spec/mil-format.md §7.2: AllocSize = C·PlaneStride, RowStride = roundup64(W·elem)); null when unknown.
 */
export const allocationBytes = (t: TensorType): number | null => {
  if (t.shape === null || t.shape.some((d) => d === null)) return null
  const s = t.shape as ReadonlyArray<number>
  const w = s.length >= 1 ? s[s.length - 1] : 1
  const h = s.length >= 2 ? s[s.length - 2] : 1
  const rest = s.slice(0, Math.max(0, s.length - 2)).reduce((a, b) => a * b, 1)
  return rest * h * roundUp(w * elementBytes(t.dtype), 64)
}
