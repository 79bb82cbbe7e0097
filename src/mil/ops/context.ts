/** What an op's type rule sees: its resolved arguments, helpers to read constant arguments, and a reporter. */
import type { Operation, Pos } from "../ast.js"
import type { KnownValue, TensorType, ValueType } from "./types.js"
import { formatType, knownData } from "./types.js"

/** Diagnostic codes of the type checker (kind "type"). */
export const TypeCodes = {
  undefinedName: "T001",
  duplicateDefinition: "T002",
  unknownArgument: "T003",
  missingArgument: "T004",
  wrongDtype: "T005",
  shapeMismatch: "T006",
  badBroadcast: "T007",
  functionOutput: "T008",
  unknownOp: "T009",
  wrongArgumentKind: "T010",
  outputCount: "T011",
  invalidValue: "T012",
  badDimension: "T013"
} as const

/** One resolved argument of an op. */
export interface ArgInfo {
  readonly name: string
  /** null when it could not be resolved (already reported). */
  readonly type: ValueType | null
  /** The compile-time value, when known. */
  readonly known: KnownValue | null
  /** True for inline literals and outputs of `const` ops (not `constexpr_*`: errata row 6). */
  readonly isConst: boolean
  /** The op that produced a referenced value, `"input"` for function inputs, `"literal"` for inline values. */
  readonly producer: string
  /** The referenced name, when the argument is a reference. */
  readonly ref: string | null
  readonly pos: Pos
  /** Elements of a tuple argument such as `values = (a, b)`. */
  readonly items: ReadonlyArray<ArgInfo> | null
}

/** A sink for diagnostics. */
export interface Reporter {
  readonly error: (code: string, pos: Pos, message: string) => void
  readonly warn: (code: string, pos: Pos, message: string) => void
}

/** A tensor argument with its tensor type. */
export interface TensorArg {
  readonly arg: ArgInfo
  readonly type: TensorType
}

const dtypeList = (s: ReadonlySet<string>): string => [...s].join(", ")

/** The view an op rule gets of one operation. */
export class OpContext {
  constructor(
    readonly op: Operation,
    readonly opset: number,
    private readonly args: ReadonlyMap<string, ArgInfo>,
    readonly report: Reporter
  ) {}

  /** The argument, or undefined when absent. */
  arg(name: string): ArgInfo | undefined {
    return this.args.get(name)
  }

  has(name: string): boolean {
    return this.args.has(name)
  }

  error(pos: Pos, message: string, code: string = TypeCodes.invalidValue): void {
    this.report.error(code, pos, `${this.op.op}: ${message}`)
  }

  /** Reports a missing required argument. */
  missing(name: string, what: string): void {
    this.report.error(TypeCodes.missingArgument, this.op.pos,
      `${this.op.op}: missing required argument \`${name}\`: expected ${what}, found none`)
  }

  /**
   * A tensor argument. Reports a missing required one, a non-tensor, or a dtype outside `dtypes`.
   * Returns undefined when absent or unusable.
   */
  tensor(name: string, options: { readonly required?: boolean; readonly dtypes?: ReadonlySet<string> } = {}):
    TensorArg | undefined {
    const arg = this.args.get(name)
    if (arg === undefined) {
      if (options.required !== false) {
        this.missing(name, options.dtypes ? `a tensor of ${dtypeList(options.dtypes)}` : "a tensor")
      }
      return undefined
    }
    if (arg.type === null) return undefined
    if (arg.type.kind !== "tensor") {
      this.report.error(TypeCodes.wrongArgumentKind, arg.pos,
        `${this.op.op}: argument \`${name}\` expected a tensor, found ${formatType(arg.type)}`)
      return undefined
    }
    if (options.dtypes && !options.dtypes.has(arg.type.dtype)) {
      this.report.error(TypeCodes.wrongDtype, arg.pos,
        `${this.op.op}: argument \`${name}\` expected dtype ${dtypeList(options.dtypes)}, found ${arg.type.dtype}`)
      return undefined
    }
    return { arg, type: arg.type }
  }

  /** Reports when `b` does not have `a`'s dtype (inputs sharing a type domain: errata row 7). */
  sameDtype(a: TensorArg | undefined, b: TensorArg | undefined): boolean {
    if (a === undefined || b === undefined) return true
    if (a.type.dtype === b.type.dtype) return true
    this.report.error(TypeCodes.wrongDtype, b.arg.pos,
      `${this.op.op}: argument \`${b.arg.name}\` expected dtype ${a.type.dtype} (the dtype of \`${a.arg.name}\`), ` +
        `found ${b.type.dtype}`)
    return false
  }

  /** A constant argument's values; `undefined` when absent, `null` when present but not known at compile time. */
  values(name: string, options: { readonly mustBeConst?: boolean } = {}):
    ReadonlyArray<number | boolean | string | null> | null | undefined {
    const arg = this.args.get(name)
    if (arg === undefined) return undefined
    const data = arg.known === null ? null : knownData(arg.known)
    if (data === null) {
      // A splat too large to expand is still a constant: unknown here, but no complaint.
      if (arg.known !== null && arg.known.splat !== undefined) return null
      if (options.mustBeConst === true && !arg.isConst && arg.producer !== "const" && arg.type !== null) {
        this.report.error(TypeCodes.wrongArgumentKind, arg.pos,
          `${this.op.op}: argument \`${name}\` expected a compile-time constant, found a value computed at run time` +
            (arg.ref ? ` (\`${arg.ref}\`)` : ""))
      }
      return null
    }
    return data
  }

  /** A constant integer vector (or scalar promoted to one element); unknown entries are null. */
  ints(name: string, options: { readonly mustBeConst?: boolean } = {}):
    ReadonlyArray<number | null> | null | undefined {
    const v = this.values(name, options)
    if (v === undefined || v === null) return v
    // Only exact integers count: 2^64 or 1e300 would be sizes no double holds exactly.
    return v.map((x) => (typeof x === "number" && Number.isSafeInteger(x) ? x : null))
  }

  /** A constant integer scalar; undefined when absent, null when unknown. */
  int(name: string, options: { readonly mustBeConst?: boolean } = {}): number | null | undefined {
    const v = this.ints(name, options)
    if (v === undefined || v === null) return v
    if (v.length !== 1) {
      const arg = this.args.get(name)!
      this.error(arg.pos, `argument \`${name}\` expected a scalar, found ${v.length} values`,
        TypeCodes.wrongArgumentKind)
      return null
    }
    return v[0]
  }

  /** A constant bool scalar, or the default when absent; null when unknown. */
  bool(name: string, fallback: boolean): boolean | null {
    const v = this.values(name)
    if (v === undefined) return fallback
    if (v === null || v.length !== 1) return null
    const x = v[0]
    if (typeof x === "boolean") return x
    const arg = this.args.get(name)!
    this.error(arg.pos, `argument \`${name}\` expected a bool, found ${String(x)}`, TypeCodes.wrongDtype)
    return null
  }

  /** A constant bool vector; undefined when absent. */
  bools(name: string): ReadonlyArray<boolean | null> | null | undefined {
    const v = this.values(name)
    if (v === undefined || v === null) return v
    return v.map((x) => (typeof x === "boolean" ? x : null))
  }

  /** A constant string, the default when absent, null when unknown. Reports a value outside `allowed`. */
  string(name: string, fallback: string | null, allowed?: ReadonlyArray<string>): string | null {
    const v = this.values(name)
    if (v === undefined) return fallback
    if (v === null || v.length !== 1) return null
    const x = v[0]
    const arg = this.args.get(name)!
    if (typeof x !== "string") {
      this.error(arg.pos, `argument \`${name}\` expected a string, found ${String(x)}`, TypeCodes.wrongDtype)
      return null
    }
    if (allowed && !allowed.includes(x)) {
      this.error(arg.pos, `argument \`${name}\` expected one of ${allowed.map((a) => `"${a}"`).join(", ")}, ` +
        `found "${x}"`)
      return null
    }
    return x
  }
}
