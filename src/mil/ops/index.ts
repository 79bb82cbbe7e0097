/** The table of op type rules the checker consults, keyed by op name. */
import { convRules } from "./conv.js"
import { elementwiseRules } from "./elementwise.js"
import { indexingRules } from "./indexing.js"
import { nnRules } from "./nn.js"
import { quantRules } from "./quant.js"
import type { OpRule } from "./rule.js"
import { shapeRules } from "./shape.js"

export type { OpRule } from "./rule.js"
export * from "./types.js"
export { OpContext, TypeCodes } from "./context.js"
export type { ArgInfo, Reporter, TensorArg } from "./context.js"

/** Every op the checker knows, with its accepted arguments and output inference. */
export const opRules: Readonly<Record<string, OpRule>> = {
  ...elementwiseRules,
  ...shapeRules,
  ...indexingRules,
  ...convRules,
  ...nnRules,
  ...quantRules
}
