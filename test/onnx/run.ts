/** Runs an imported model on the simulator: inputs and outputs addressed by their ONNX names through the metadata. */
import { Effect } from "effect"
import * as Ane from "../../src/services/Ane.js"
import type { Imported } from "../../src/onnx/Onnx.js"

/** A compiled imported model that maps ONNX names to binding indices. */
export const compileImported = (imported: Imported) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const model = yield* ane.compile(imported.compileOptions)
    const inIndex = (name: string) => imported.metadata.inputs.find((s) => s.onnxName === name)!.index
    const outIndex = (name: string) => imported.metadata.outputs.find((s) => s.onnxName === name)!.index
    return {
      model,
      run: (inputs: Readonly<Record<string, Float32Array>>, outputs: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          for (const [k, v] of Object.entries(inputs)) yield* model.writeInputF32(inIndex(k), v)
          yield* model.eval
          const res: Record<string, Float32Array> = {}
          for (const o of outputs) res[o] = yield* model.readOutputF32(outIndex(o))
          return res
        })
    }
  })

/** Simulator layers for the two numerics, without ANE rule enforcement (the rule report is tested on its own). */
export const simulator = (numerics: "exact" | "ane") => Ane.layerSimulator({ numerics, rules: "off", latency: "off" })

/** Largest absolute difference. */
export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return Number.isNaN(m) ? Infinity : m
}
