/**
 * KV-cache state access (iOS18 states). `readState`: y = read_state(input = cache). `updateState`: write_state(data
 * = value, input = cache) then y = read_state(input = cache). Go's generators passed the state by name as a string
 * (`read_state(name = …)`, `coreml_update_state(state = string(…))`); coremltools wants a state-typed function input
 * and serialises the update as write_state + read_state (spec §7.4, errata row 17). Supported shapes: rank 1..5,
 * last dim ≤ 16384, others ≤ 65536; dtype fp16.
 */
import { buildSync } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, MAX_CHANNELS, MAX_SPATIAL, needInt, needThat } from "./common.js"

/** Options of the state generators. */
export interface StateOptions extends CommonOptions {
  /** Name of the state input (e.g. `k_cache`). */
  readonly name: string
  readonly shape: ReadonlyArray<number>
}

const checked = (op: string, o: StateOptions) => {
  needThat(op, "name", /^[A-Za-z_][A-Za-z0-9_]*$/.test(o.name) && o.name !== "value" && o.name !== "y",
    "a MIL identifier other than `value` and `y`", JSON.stringify(o.name))
  needThat(op, "shape", o.shape.length >= 1 && o.shape.length <= 5, "rank 1..5", `rank ${o.shape.length}`)
  o.shape.forEach((d, i) => needInt(op, `shape[${i}]`, d, 1, i === o.shape.length - 1 ? MAX_SPATIAL : MAX_CHANNELS))
}

/** Input `<name>: state<tensor<fp16, shape>>` → `y` = its contents. */
export const readState = (o: StateOptions): Generated => {
  const op = "Generators.readState"
  checked(op, o)
  // States exist from iOS18.
  return buildSync(buildOptions(op, o, "ios18"), (b) => ({ y: b.readState(b.state(o.name, "fp16", o.shape), { name: "read" }) }))
}

/** Inputs `<name>: state<…>` and `value: tensor<fp16, shape>` → writes value into the state; `y` = the new contents. */
export const updateState = (o: StateOptions): Generated => {
  const op = "Generators.updateState"
  checked(op, o)
  return buildSync(buildOptions(op, o, "ios18"), (b) => {
    const s = b.state(o.name, "fp16", o.shape)
    const value = b.input("value", "fp16", o.shape)
    // Apple's serialiser writes coreml_update_state as write_state (no result) + read_state (errata row 17).
    b.writeState(s, value, { name: "write" })
    return { y: b.readState(s, { name: "read" }) }
  })
}
