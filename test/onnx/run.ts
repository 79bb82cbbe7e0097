/** Runs an imported model on the simulator: inputs and outputs addressed by their ONNX names through the metadata. */
import { Effect } from "effect"
import * as Ane from "../../src/services/Ane.js"
import * as Onnx from "../../src/onnx/Onnx.js"
import type { Imported } from "../../src/onnx/Onnx.js"

/** A compiled imported model run by ONNX names: each maps to the name the model answers to (named I/O). */
export const compileImported = (imported: Imported) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const model = yield* ane.compile(imported.compileOptions)
    return {
      model,
      run: (inputs: Readonly<Record<string, Float32Array>>, outputs: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const named: Record<string, Float32Array> = {}
          for (const [k, v] of Object.entries(inputs)) named[Onnx.milName(imported.metadata, k, "input")!] = v
          const out = yield* model.run(named, { mode: "sync" })
          const res: Record<string, Float32Array> = {}
          for (const o of outputs) res[o] = out[Onnx.milName(imported.metadata, o, "output")!]!
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
