/**
 * Inputs and outputs by name: the names come from the layouts the backend reports (the engine's `Name` and
 * `Symbol` of each LiveInputList/LiveOutputList entry; the simulator's MIL names; a stub's declared names). @internal
 */
import type { InvalidArgumentError } from "../../schema/errors.js"
import type { TensorLayout } from "../../schema/TensorLayout.js"
import { checkIndex, describe, invalid } from "./errors.js"

/** An input or output by binding index or by name. */
export type TensorRef = number | string

/** Resolves names of one side (inputs or outputs) to binding indices. @internal */
export interface NameTable {
  /** The index `name` names, or the error naming it and listing the known names. */
  readonly index: (op: string, name: string) => number | InvalidArgumentError
  /** The index a ref names (an index is range-checked), or the error. */
  readonly resolve: (op: string, ref: unknown) => number | InvalidArgumentError
  /** The key of each index in a record: its name when that name resolves to it alone, else its index as a string. */
  readonly keys: ReadonlyArray<string>
}

const AMBIGUOUS = -2

/**
 * Builds the table of `layouts`. A name matches a layout's `name`; when no layout has that name, its `symbol`
 * (the engine may report the two differently). A name two layouts share is ambiguous: use the index.
 */
export const nameTable = (side: "input" | "output", layouts: ReadonlyArray<TensorLayout>): NameTable => {
  const byName = new Map<string, number>()
  const bySymbol = new Map<string, number>()
  const add = (map: Map<string, number>, key: string, i: number) => {
    if (key === "") return
    map.set(key, map.has(key) ? AMBIGUOUS : i)
  }
  layouts.forEach((l, i) => {
    add(byName, l.name, i)
    add(bySymbol, l.symbol, i)
  })
  const lookup = (name: string): number | undefined => byName.get(name) ?? bySymbol.get(name)
  const known = (): string => {
    const named = layouts.map((l, i) => (l.name !== "" ? JSON.stringify(l.name) : l.symbol !== "" ? JSON.stringify(l.symbol) : `#${i} (unnamed)`))
    return named.length === 0 ? `no ${side}s` : named.join(", ")
  }
  const index = (op: string, name: string): number | InvalidArgumentError => {
    const i = lookup(name)
    if (i === undefined) {
      return invalid(op, side, `the name of one of the ${layouts.length} ${side}s (${known()})`, describe(name),
        "names are the ones the compiled model reports in its layouts (`.name`)")
    }
    if (i === AMBIGUOUS) {
      return invalid(op, side, `a name that one ${side} alone has`, `${describe(name)}, which several ${side}s share`,
        "address it by index")
    }
    return i
  }
  const keys = layouts.map((l, i) => {
    for (const k of [l.name, l.symbol]) if (k !== "" && lookup(k) === i) return k
    return String(i)
  })
  return {
    index,
    resolve: (op, ref) => {
      if (typeof ref === "string") return index(op, ref)
      const p = checkIndex(op, side, ref, layouts.length)
      return p === undefined ? (ref as number) : p
    },
    keys
  }
}
