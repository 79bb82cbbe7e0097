/**
 * The MIL syntax tree. Every node keeps its source position; structural equality ignores positions
 * (see `equalIgnoringPositions`). Numbers keep their source text so hex floats and large integers print back exactly.
 */

/** 1-based line and column, 0-based character offset into the source text. */
export interface Pos {
  readonly line: number
  readonly col: number
  readonly offset: number
}

/** A dimension: a fixed size, `?` (unknown), or a symbolic name such as `is0`. */
export type Dim = number | "?" | { readonly symbol: string }

/** A MIL type as written in the text. */
export type TypeExpr =
  | { readonly kind: "tensor"; readonly dtype: string; readonly shape: ReadonlyArray<Dim> | null; readonly pos: Pos }
  | { readonly kind: "scalar"; readonly dtype: string; readonly pos: Pos }
  | { readonly kind: "list"; readonly elem: TypeExpr; readonly length: Dim | null; readonly pos: Pos }
  | { readonly kind: "tuple"; readonly elems: ReadonlyArray<TypeExpr>; readonly pos: Pos }
  | { readonly kind: "dict"; readonly key: TypeExpr; readonly value: TypeExpr; readonly pos: Pos }
  | { readonly kind: "state"; readonly inner: TypeExpr; readonly pos: Pos }

/** A literal inside `type(...)`: numbers, strings, bools, nested `[...]` lists, `{...}` dict entries. */
export type Literal =
  | { readonly kind: "number"; readonly text: string; readonly value: number; readonly pos: Pos }
  | { readonly kind: "string"; readonly value: string; readonly pos: Pos }
  | { readonly kind: "bool"; readonly value: boolean; readonly pos: Pos }
  | {
    readonly kind: "list"
    readonly items: ReadonlyArray<Literal>
    /** Set (to true) only for a parenthesised tuple literal `("a", {...})`, as in function attribute blocks. */
    readonly tuple?: true
    readonly pos: Pos
  }
  | { readonly kind: "dict"; readonly entries: ReadonlyArray<readonly [Literal, Literal]>; readonly pos: Pos }

/** An argument or attribute value. */
export type Value =
  /** `tensor<int32, [2]>([1, 2])`, `string("x")`, `bool(false)`, `fp16(0x1p+0)` */
  | { readonly kind: "typed"; readonly type: TypeExpr; readonly literal: Literal; readonly pos: Pos }
  /** `tensor<fp16, [64, 64]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))` */
  | {
    readonly kind: "blob"
    readonly type: TypeExpr
    /** The type written on the path argument (`string` or `tensor<string, []>`), kept for exact printing. */
    readonly pathType: TypeExpr
    readonly path: string
    readonly offsetType: TypeExpr
    readonly offset: bigint
    readonly pos: Pos
  }
  /** A reference to a named value (function input or an earlier op output). */
  | { readonly kind: "ref"; readonly name: string; readonly pos: Pos }
  /** A tuple argument `(a, b, c)`, e.g. `concat(values = (a, b))`. */
  | { readonly kind: "tuple"; readonly items: ReadonlyArray<Value>; readonly pos: Pos }

/** `name = value` inside `op(...)` or inside `[...]`. */
export interface NamedValue {
  readonly name: string
  readonly value: Value
  readonly pos: Pos
}

/** A typed name: a function or block input, or an op output. */
export interface Binding {
  readonly name: string
  readonly type: TypeExpr
  readonly pos: Pos
}

/** A nested block (`cond`, `while_loop`): optional inputs, operations, the names it returns. */
export interface Block {
  readonly params: ReadonlyArray<Binding>
  readonly operations: ReadonlyArray<Operation>
  readonly outputs: ReadonlyArray<string>
  readonly pos: Pos
}

/** `outputs = op(args)[attributes] {blocks}` */
export interface Operation {
  readonly outputs: ReadonlyArray<Binding>
  readonly op: string
  readonly args: ReadonlyArray<NamedValue>
  readonly attributes: ReadonlyArray<NamedValue>
  readonly blocks: ReadonlyArray<Block>
  readonly pos: Pos
}

/** `func name<opset>(inputs) { operations } -> (outputs);` */
export interface MilFunction {
  readonly name: string
  /** `ios15`…`ios18`, `CoreML8`, …; null when the function has no `<opset>`. */
  readonly opset: string | null
  readonly inputs: ReadonlyArray<Binding>
  readonly attributes: ReadonlyArray<NamedValue>
  readonly body: Block
  readonly pos: Pos
}

/** A whole program: `program(version)` + optional `[attributes]` + functions. */
export interface Program {
  /** The version text as written: `1.0`, `1.3`, `1`. */
  readonly version: string
  readonly attributes: ReadonlyArray<NamedValue>
  readonly functions: ReadonlyArray<MilFunction>
  readonly pos: Pos
}

/** The position used for synthesised nodes (builder output). */
export const noPos: Pos = { line: 0, col: 0, offset: 0 }

/** Deep structural equality that ignores every `pos` field. */
export const equalIgnoringPositions = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== typeof b) return false
  if (typeof a === "number") return Number.isNaN(a) && Number.isNaN(b as number)
  if (typeof a !== "object" || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!equalIgnoringPositions(a[i], b[i])) return false
    return true
  }
  const ka = Object.keys(a).filter((k) => k !== "pos")
  const kb = Object.keys(b as object).filter((k) => k !== "pos")
  if (ka.length !== kb.length) return false
  for (const k of ka) {
    if (!equalIgnoringPositions((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false
  }
  return true
}
