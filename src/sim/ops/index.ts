/** Registry of every op the simulator executes, by MIL op name. */
import { constexprOps } from "./constexpr.js"
import { binaryOps, cast, select, unaryOps } from "./elementwise.js"
import { extraOps } from "./extra.js"
import { nnOps } from "./nn.js"
import { reduceOps } from "./reduce.js"
import { shapeOps } from "./shape.js"
import { stateOps } from "./state.js"
import type { OpImpl } from "./types.js"

export { statefulOps } from "./state.js"
export type { OpCtx, OpImpl, OutType, Run, Val } from "./types.js"
export { OpError } from "./types.js"

/** Every supported op (`const` is handled by the planner itself). */
export const ops: Readonly<Record<string, OpImpl>> = {
  ...binaryOps,
  ...unaryOps,
  cast,
  select,
  ...shapeOps,
  ...reduceOps,
  ...nnOps,
  ...constexprOps,
  ...stateOps,
  ...extraOps
}

/** Names of the supported ops, sorted (for docs and error hints). */
export const supportedOps: ReadonlyArray<string> = ["const", ...Object.keys(ops)].sort()
