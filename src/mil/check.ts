/**
 * The MIL type and shape checker: resolves every value's type, infers each op's output types from its arguments
 * (rules in ./ops/), and reports positioned `kind: "type"` diagnostics comparing what was expected with what was found.
 */
import { Diagnostic } from "../schema/Diagnostic.js"
import type { Block, MilFunction, NamedValue, Operation, Pos, Program, TypeExpr, Value } from "./ast.js"
import type { ArgInfo, Reporter } from "./ops/index.js"
import { decodeConst, formatShape, formatType, knownOfConst, numel, OpContext, opRules, refine, resolveType, tensor,
  TypeCodes, typesCompatible } from "./ops/index.js"
import type { ConstValue, KnownValue, ValueType } from "./ops/index.js"

export type { ConstValue, ResolvedDim, TensorType, ValueType } from "./ops/index.js"
export { formatType, isScalar, TypeCodes } from "./ops/index.js"

/** The types and constants of one function. */
export interface FunctionTypes {
  /** Every named value (inputs, op outputs, block parameters): the declared type refined by inference. */
  readonly types: ReadonlyMap<string, ValueType>
  /** The decoded value of every `const` op, by output name. */
  readonly consts: ReadonlyMap<string, ConstValue>
}

/** What {@link check} returns. */
export interface CheckResult {
  readonly diagnostics: ReadonlyArray<Diagnostic>
  readonly functions: ReadonlyMap<string, FunctionTypes>
}

/** Options of {@link check}: `file` is copied into every diagnostic. */
export interface CheckOptions {
  readonly file?: string
}

/** The opset number of a function (`ios17` → 17, `CoreML7` → 17); 18 when absent or unrecognised. */
export const opsetNumber = (opset: string | null): number => {
  if (opset === null) return 18
  const ios = /^ios(\d+)$/i.exec(opset)
  if (ios) return Number(ios[1])
  const cm = /^CoreML(\d+)$/i.exec(opset)
  if (cm) return Number(cm[1]) + 10
  return 18
}

interface Entry {
  readonly type: ValueType
  readonly known: KnownValue | null
  readonly producer: string
  readonly isConst: boolean
}

/** A lexical scope: block scopes see their parents' names. */
class Scope {
  private readonly own = new Map<string, Entry>()
  constructor(private readonly parent: Scope | null) {}
  get(name: string): Entry | undefined {
    return this.own.get(name) ?? this.parent?.get(name)
  }
  set(name: string, e: Entry): void {
    this.own.set(name, e)
  }
}


class Checker {
  readonly diagnostics: Array<Diagnostic> = []
  private readonly warnedOps = new Set<string>()
  readonly reporter: Reporter

  constructor(private readonly file: string | undefined) {
    this.reporter = {
      error: (code, pos, message) => this.push("error", code, pos, message),
      warn: (code, pos, message) => this.push("warning", code, pos, message)
    }
  }

  push(severity: "error" | "warning", code: string, pos: Pos, message: string): void {
    this.diagnostics.push(new Diagnostic({
      kind: "type",
      severity,
      code,
      message,
      line: pos.line,
      col: pos.col,
      ...(this.file !== undefined ? { file: this.file } : {})
    }))
  }

  /**
   * Reports a written tensor type with a zero dimension (the engine has no empty tensors) or more elements than an
   * exact integer can count. Counted in BigInt, so nothing is rounded or allocated however large the shape.
   */
  checkDims(t: TypeExpr): void {
    switch (t.kind) {
      case "tensor": {
        if (t.shape === null) return
        let n = 1n
        let known = true
        for (let i = 0; i < t.shape.length; i++) {
          const d = t.shape[i]
          if (typeof d !== "number") {
            known = false
            continue
          }
          if (d === 0) {
            this.reporter.error(TypeCodes.badDimension, t.pos,
              `${formatType(resolveType(t))}: dimension ${i} expected a size of at least 1, found 0 ` +
                `(empty tensors are not supported)`)
            return
          }
          n *= BigInt(d)
        }
        if (known && n > MAX_ELEMENTS) {
          this.reporter.error(TypeCodes.badDimension, t.pos,
            `${formatType(resolveType(t))}: expected at most ${Number.MAX_SAFE_INTEGER} elements, found ${n}`)
        }
        return
      }
      case "list": return this.checkDims(t.elem)
      case "tuple": return t.elems.forEach((e) => this.checkDims(e))
      case "dict": return this.checkDims(t.value)
      case "state": return this.checkDims(t.inner)
      case "scalar": return
    }
  }

  checkFunction(fn: MilFunction): FunctionTypes {
    const types = new Map<string, ValueType>()
    const consts = new Map<string, ConstValue>()
    const scope = new Scope(null)
    const opset = opsetNumber(fn.opset)
    for (const input of fn.inputs) {
      this.checkDims(input.type)
      const t = resolveType(input.type)
      this.define(scope, types, input.name, input.pos, { type: t, known: null, producer: "input", isConst: false })
    }
    this.checkBlock(fn.body, scope, types, consts, opset, `function \`${fn.name}\``)
    if (fn.body.outputs.length === 0) {
      this.reporter.error(TypeCodes.functionOutput, fn.body.pos,
        `function \`${fn.name}\` expected at least one output in \`-> (…)\`, found none`)
    }
    return { types, consts }
  }

  private define(scope: Scope, types: Map<string, ValueType>, name: string, pos: Pos, e: Entry): void {
    if (scope.get(name) !== undefined) {
      this.reporter.error(TypeCodes.duplicateDefinition, pos,
        `duplicate definition of \`${name}\`: expected each name to be defined once, found a second definition`)
    }
    scope.set(name, e)
    types.set(name, e.type)
  }

  private checkBlock(
    block: Block,
    scope: Scope,
    types: Map<string, ValueType>,
    consts: Map<string, ConstValue>,
    opset: number,
    owner: string
  ): void {
    for (const op of block.operations) this.checkOp(op, scope, types, consts, opset)
    for (const out of block.outputs) {
      if (scope.get(out) === undefined) {
        this.reporter.error(TypeCodes.functionOutput, block.pos,
          `${owner} returns \`${out}\`: expected a defined value, found no input or op output of that name`)
      }
    }
  }

  private resolveValue(v: Value, name: string, scope: Scope): ArgInfo {
    switch (v.kind) {
      case "ref": {
        const e = scope.get(v.name)
        if (e === undefined) {
          this.reporter.error(TypeCodes.undefinedName, v.pos,
            `undefined name \`${v.name}\`: expected a function input or an earlier op output`)
          return { name, type: null, known: null, isConst: false, producer: "undefined", ref: v.name, pos: v.pos,
            items: null }
        }
        return { name, type: e.type, known: e.known, isConst: e.isConst, producer: e.producer, ref: v.name, pos: v.pos,
          items: null }
      }
      case "typed":
      case "blob": {
        this.checkDims(v.type)
        const c = decodeConst(v)
        return { name, type: resolveType(v.type), known: c ? knownOfConst(c) : null, isConst: true,
          producer: "literal", ref: null, pos: v.pos, items: null }
      }
      case "tuple": {
        const items = v.items.map((it) => this.resolveValue(it, name, scope))
        const ok = items.every((i) => i.type !== null)
        return {
          name,
          type: ok ? { kind: "tuple", elems: items.map((i) => i.type!) } : null,
          known: null,
          isConst: items.every((i) => i.isConst),
          producer: "tuple",
          ref: null,
          pos: v.pos,
          items
        }
      }
    }
  }

  private checkOp(op: Operation, scope: Scope, types: Map<string, ValueType>, consts: Map<string, ConstValue>,
    opset: number): void {
    if (op.op === "const") return this.checkConst(op, scope, types, consts)
    // iOS16-registered constexpr ops carry their parameters as attributes (errata row 18): treat them as arguments.
    const all: Array<NamedValue> = [...op.args, ...op.attributes.filter((a) => a.name !== "name")]
    const args = new Map<string, ArgInfo>()
    for (const a of all) {
      if (args.has(a.name)) {
        this.reporter.error(TypeCodes.duplicateDefinition, a.pos,
          `${op.op}: argument \`${a.name}\` given twice: expected it once`)
        continue
      }
      args.set(a.name, this.resolveValue(a.value, a.name, scope))
    }
    const rule = opRules[op.op]
    let inferred: ReadonlyArray<ValueType | null> | null = null
    if (rule === undefined) {
      if (!this.warnedOps.has(op.op)) {
        this.warnedOps.add(op.op)
        this.reporter.warn(TypeCodes.unknownOp, op.pos,
          `unknown op \`${op.op}\`: expected an op the checker knows; its outputs keep their declared types`)
      }
    } else {
      const known = new Set(rule.args)
      for (const a of all) {
        if (!known.has(a.name)) {
          this.reporter.error(TypeCodes.unknownArgument, a.pos,
            `${op.op}: unexpected argument \`${a.name}\`: expected one of ${rule.args.join(", ")}`)
        }
      }
      try {
        inferred = rule.infer(new OpContext(op, opset, args, this.reporter))
      } catch (e) {
        // A rule must never take the whole check down: report and keep the declared types.
        this.reporter.error(TypeCodes.invalidValue, op.pos,
          `${op.op}: expected the op's arguments to be checkable, found an internal checker failure (${String(e)})`)
      }
    }
    for (const block of op.blocks) {
      const inner = new Scope(scope)
      for (const p of block.params) {
        this.checkDims(p.type)
        this.define(inner, types, p.name, p.pos, { type: resolveType(p.type), known: null, producer: "block",
          isConst: false })
      }
      this.checkBlock(block, inner, types, consts, opset, `a block of \`${op.op}\``)
    }
    if (inferred !== null && inferred.length !== op.outputs.length) {
      this.reporter.error(TypeCodes.outputCount, op.pos,
        `${op.op}: expected ${inferred.length} output${inferred.length === 1 ? "" : "s"}, found ` +
          `${op.outputs.length} declared`)
    }
    op.outputs.forEach((out, i) => {
      this.checkDims(out.type)
      const declared = resolveType(out.type)
      let inf = inferred !== null && inferred.length === op.outputs.length ? inferred[i] : null
      const bad = inf ? inexactDim(inf) : undefined
      if (inf && bad !== undefined) {
        // 1e30 × 3 is no size: say so, and keep the dim unknown rather than carry it into later types.
        this.reporter.error(TypeCodes.badDimension, op.pos,
          `${op.op}: output \`${out.name}\` expected exact integer sizes ≥ 0, found dimension ${bad.axis} inferred as ` +
            `${bad.value}`)
        inf = withoutInexactDims(inf)
      }
      let type = declared
      if (inf) {
        if (!typesCompatible(declared, inf)) this.mismatch(op, out.name, out.pos, declared, inf)
        else type = refine(declared, inf)
      }
      this.define(scope, types, out.name, out.pos, {
        type,
        known: this.fold(op, args, type),
        producer: op.op,
        isConst: false
      })
    })
  }

  /** Folds the few ops whose values the shape rules need downstream (`shape`, `identity`). */
  private fold(op: Operation, args: ReadonlyMap<string, ArgInfo>, type: ValueType): KnownValue | null {
    const x = args.get("x")
    if (op.op === "identity" && x) return x.known
    if (op.op === "shape" && x?.type?.kind === "tensor" && x.type.shape !== null && type.kind === "tensor") {
      return { dtype: "int32", shape: [x.type.shape.length], data: x.type.shape }
    }
    return null
  }

  private mismatch(op: Operation, name: string, pos: Pos, declared: ValueType, inferred: ValueType): void {
    if (declared.kind === "tensor" && inferred.kind === "tensor" && declared.dtype !== inferred.dtype) {
      this.reporter.error(TypeCodes.wrongDtype, pos,
        `${op.op}: output \`${name}\` expected dtype ${inferred.dtype} (inferred ${formatType(inferred)}), found ` +
          `${formatType(declared)} declared`)
      return
    }
    if (declared.kind === "tensor" && inferred.kind === "tensor") {
      this.reporter.error(TypeCodes.shapeMismatch, pos,
        `${op.op}: output \`${name}\` expected shape ${formatShape(inferred.shape)} (inferred), found ` +
          `${formatShape(declared.shape)} declared`)
      return
    }
    this.reporter.error(TypeCodes.shapeMismatch, pos,
      `${op.op}: output \`${name}\` expected ${formatType(inferred)} (inferred), found ${formatType(declared)} declared`)
  }

  private checkConst(op: Operation, scope: Scope, types: Map<string, ValueType>,
    consts: Map<string, ConstValue>): void {
    for (const a of op.args) {
      this.reporter.error(TypeCodes.unknownArgument, a.pos,
        `const: unexpected argument \`${a.name}\`: expected no arguments (the value goes in the \`val\` attribute)`)
    }
    const val = op.attributes.find((a) => a.name === "val")
    if (op.outputs.length !== 1) {
      this.reporter.error(TypeCodes.outputCount, op.pos, `const: expected 1 output, found ${op.outputs.length}`)
    }
    const out = op.outputs[0]
    if (out === undefined) return
    this.checkDims(out.type)
    const declared = resolveType(out.type)
    if (val === undefined) {
      this.reporter.error(TypeCodes.missingArgument, op.pos,
        `const: missing required attribute \`val\` (expected the constant's value)`)
      this.define(scope, types, out.name, out.pos, { type: declared, known: null, producer: "const", isConst: true })
      return
    }
    let valueType: ValueType | null = null
    if (val.value.kind === "typed" || val.value.kind === "blob") {
      this.checkDims(val.value.type)
      valueType = resolveType(val.value.type)
    }
    else if (val.value.kind === "ref") {
      this.reporter.error(TypeCodes.wrongArgumentKind, val.value.pos,
        `const: \`val\` expected a literal value, found a reference to \`${val.value.name}\``)
    }
    const c = decodeConst(val.value)
    if (c !== null) {
      consts.set(out.name, c)
      const n = numel(c.shape)
      if (c.kind === "inline" && n !== null && c.data.length !== n && declared.kind === "tensor") {
        this.reporter.error(TypeCodes.shapeMismatch, val.value.pos,
          `const: value of type ${formatType(tensor(c.dtype, c.shape))} expected ${n} element${n === 1 ? "" : "s"}, ` +
            `found ${c.data.length}`)
      }
    }
    if (valueType !== null && !typesCompatible(declared, valueType)) {
      this.mismatch(op, out.name, out.pos, declared, valueType)
    }
    const entry: Entry = { type: declared, known: c ? knownOfConst(c) : null, producer: "const", isConst: true }
    const previous = scope.get(out.name)
    if (previous !== undefined && previous.producer === "const" && sameConst(previous, entry)) {
      // Some generators repeat an identical const; harmless, so only a warning.
      this.reporter.warn(TypeCodes.duplicateDefinition, out.pos,
        `const \`${out.name}\` is defined again with the same type and value: expected one definition`)
      scope.set(out.name, entry)
      return
    }
    this.define(scope, types, out.name, out.pos, entry)
  }
}

const sameConst = (a: Entry, b: Entry): boolean => {
  if (!typesCompatible(a.type, b.type) || !typesCompatible(b.type, a.type) || a.known === null || b.known === null) {
    return false
  }
  if (a.known.splat !== undefined || b.known.splat !== undefined) return a.known.splat === b.known.splat
  return a.known.data !== null && b.known.data !== null && a.known.data.length === b.known.data.length &&
    a.known.data.every((v, i) => v === b.known!.data![i])
}

/** The first dim of a tensor type that is not an exact integer ≥ 0 (an inferred 3e30 or Infinity). */
const inexactDim = (t: ValueType): { readonly axis: number; readonly value: number } | undefined => {
  if (t.kind !== "tensor" || t.shape === null) return undefined
  const axis = t.shape.findIndex((d) => d !== null && !(Number.isSafeInteger(d) && d >= 0))
  return axis < 0 ? undefined : { axis, value: t.shape[axis]! }
}

/** `t` with every inexact dim made unknown. */
const withoutInexactDims = (t: ValueType): ValueType =>
  t.kind === "tensor" && t.shape !== null
    ? tensor(t.dtype, t.shape.map((d) => (d !== null && Number.isSafeInteger(d) && d >= 0 ? d : null)))
    : t

/** The largest exact element count a double holds; anything above cannot be sized, let alone allocated. */
const MAX_ELEMENTS = BigInt(Number.MAX_SAFE_INTEGER)

/** Type-checks a parsed program: every value's type, every op's arguments and outputs, every function's outputs. */
export const check = (program: Program, options: CheckOptions = {}): CheckResult => {
  const checker = new Checker(options.file)
  const functions = new Map<string, FunctionTypes>()
  for (const fn of program.functions) {
    if (functions.has(fn.name)) {
      checker.reporter.error(TypeCodes.duplicateDefinition, fn.pos,
        `duplicate function \`${fn.name}\`: expected each function name once, found a second definition`)
      continue
    }
    functions.set(fn.name, checker.checkFunction(fn))
  }
  checker.diagnostics.sort((a, b) => a.line - b.line || a.col - b.col)
  return { diagnostics: checker.diagnostics, functions }
}

