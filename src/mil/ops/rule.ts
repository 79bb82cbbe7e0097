/** The shape of a per-op type rule. */
import type { OpContext } from "./context.js"
import type { ValueType } from "./types.js"

/** One op's signature and output inference. */
export interface OpRule {
  /** Every argument name the op accepts (required and optional). */
  readonly args: ReadonlyArray<string>
  /**
   * The inferred output types, one per declared output (null entries: unknown); null when nothing can be
   * inferred. Problems with the arguments are reported through the context.
   */
  readonly infer: (ctx: OpContext) => ReadonlyArray<ValueType | null> | null
}
