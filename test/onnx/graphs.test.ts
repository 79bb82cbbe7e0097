/** Generated graphs (conv net, transformer encoder block, Resize net) against onnxruntime goldens. */
// Weights are stored in fp16 even under exact numerics, so "exact" tolerances are fp16-weight tolerances.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Onnx from "../../src/onnx/Onnx.js"
import { readNpy } from "./npy.js"
import { compileImported, maxAbsDiff, simulator } from "./run.js"

const dir = path.join(import.meta.dirname, "fixtures")
const cases = [
  { name: "convnet", input: "image", output: "probs", tol: { exact: 1e-3, ane: 0.01 } },
  { name: "encoder", input: "tokens", output: "encoded", tol: { exact: 1e-3, ane: 0.05 } },
  { name: "resize", input: "features", output: "upsampled", tol: { exact: 1e-3, ane: 0.005 } }
] as const

describe("generated ONNX graphs", () => {
  for (const c of cases) {
    for (const numerics of ["exact", "ane"] as const) {
      it.effect(`${c.name} matches onnxruntime in ${numerics} numerics`, () =>
        Effect.gen(function*() {
          const imported = yield* Onnx.importFile(path.join(dir, `${c.name}.onnx`))
          const x = readNpy(fs.readFileSync(path.join(dir, `${c.name}.input.npy`)))
          const golden = readNpy(fs.readFileSync(path.join(dir, `${c.name}.golden.npy`)))
          const { run } = yield* compileImported(imported)
          const out = (yield* run({ [c.input]: x.data }, [c.output]))[c.output]!
          expect(imported.metadata.outputs[0]!.shape).toEqual(golden.shape)
          expect(maxAbsDiff(out, golden.data)).toBeLessThan(c.tol[numerics])
        }).pipe(Effect.scoped, Effect.provide(simulator(numerics))), 30_000)
    }
  }
})
