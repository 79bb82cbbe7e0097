/** State ops (iOS18): state-typed function inputs persist across evaluations of one model. */
import type { OpImpl } from "./types.js"
import { OpError } from "./types.js"
import { expectShape } from "./util.js"

const readState: OpImpl = (ctx) => {
  const s = ctx.val("input")
  const out = ctx.alloc(0)
  expectShape("read_state", out.shape, s.shape)
  return () => out.data.set(s.data)
}

const writeState: OpImpl = (ctx) => {
  const s = ctx.val("input")
  const d = ctx.val("data")
  if (d.data.length !== s.data.length) throw new OpError(`write_state: data has ${d.data.length} elements, state ${s.data.length}`)
  return () => s.data.set(d.data)
}

const updateState: OpImpl = (ctx) => {
  const s = ctx.val("state")
  const v = ctx.val("value")
  if (v.data.length !== s.data.length) throw new OpError(`coreml_update_state: value has ${v.data.length} elements, state ${s.data.length}`)
  const out = ctx.nOut > 0 ? ctx.alloc(0) : undefined
  return () => {
    s.data.set(v.data)
    out?.data.set(v.data)
  }
}

/** State ops by MIL name. */
export const stateOps: Record<string, OpImpl> = {
  read_state: readState,
  write_state: writeState,
  coreml_update_state: updateState
}

/** Ops whose effect is not captured by their outputs: never folded at compile time. */
export const statefulOps: ReadonlySet<string> = new Set(Object.keys(stateOps))
