/** An imported model answers to its ONNX names: kept where valid MIL identifiers, mapped by the metadata otherwise. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ioMilNames } from "../../src/onnx/convert.js"
import * as Onnx from "../../src/onnx/Onnx.js"
import * as Ane from "../../src/services/Ane.js"
import { floatTensor, modelBytes } from "./graph.js"
import { simulator } from "./run.js"

describe("ONNX input and output names", () => {
  it("keeps valid MIL identifiers, sanitises the rest, and never gives two tensors one name", () => {
    const n = ioMilNames(["audio_input", "input.1", "input_1", "_x", "3d"], ["prob", "out:0", "audio_input", "input.1"])
    expect(n.inputs).toEqual(["audio_input", "input_1_1", "input_1", "_x", "v3d"])
    expect(n.outputs).toEqual(["prob", "out_0", "audio_input_1", "input_1_2"])
    expect(new Set([...n.inputs, ...n.outputs]).size).toBe(9)
  })

  // audio_input and _x are valid MIL names and stay; "input.1" is not; the graph also returns an input unchanged
  // under its own name, which the program must rename (an input and an output cannot share a MIL name).
  const bytes = modelBytes({
    inputs: [{ name: "audio_input", shape: [1, 8] }, { name: "input.1", shape: [1, 8] }, { name: "_x", shape: [1, 8] }],
    outputs: [{ name: "prob" }, { name: "out:0" }, { name: "audio_input" }],
    nodes: [
      { op: "Add", inputs: ["audio_input", "input.1"], outputs: ["s"] },
      { op: "Mul", inputs: ["s", "w"], outputs: ["prob"] },
      { op: "Sub", inputs: ["_x", "input.1"], outputs: ["out:0"] }
    ],
    initializers: [floatTensor("w", [8], [1, 2, 3, 4, 5, 6, 7, 8])]
  })
  const a = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8)
  const b = Float32Array.of(8, 7, 6, 5, 4, 3, 2, 1)
  const x = Float32Array.of(0, 0, 0, 0, 1, 1, 1, 1)

  it.scoped("an imported model runs by its ONNX names on the simulator", () =>
    Effect.gen(function*() {
      const imported = yield* Onnx.importBytes(bytes)
      const m = imported.metadata
      expect(m.inputs.map((s) => [s.onnxName, s.milName])).toEqual([["audio_input", "audio_input"], ["input.1", "input_1"], ["_x", "_x"]])
      expect(m.outputs.map((s) => [s.onnxName, s.milName])).toEqual([["prob", "prob"], ["out:0", "out_0"], ["audio_input", "audio_input_1"]])
      expect(Onnx.milName(m, "input.1")).toBe("input_1")
      expect(Onnx.milName(m, "audio_input")).toBe("audio_input")
      expect(Onnx.milName(m, "audio_input", "output")).toBe("audio_input_1")
      expect(Onnx.milName(m, "missing")).toBeUndefined()

      const model = yield* (yield* Ane.Ane).compile(imported.compileOptions)
      expect(model.inputs.map((l) => l.name).sort()).toEqual(["_x", "audio_input", "input_1"])
      expect(yield* model.inputIndex("audio_input")).toBe(m.inputs[0]!.index)
      const out = yield* model.run({ audio_input: a, [Onnx.milName(m, "input.1")!]: b, _x: x })
      expect(out["prob"]).toEqual(Float32Array.of(9, 18, 27, 36, 45, 54, 63, 72))
      expect(out["out_0"]).toEqual(x.map((v, i) => v - b[i]!))
      expect(out["audio_input_1"]).toEqual(a)
      // Index-based access through the metadata agrees on the simulator.
      expect(yield* model.readOutputF32(m.outputs[0]!.index)).toEqual(out["prob"])
    }).pipe(Effect.provide(simulator("exact"))))

  it.effect("metadata.json maps every ONNX name to the name the model answers to", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "onnx-names-"))
      try {
        yield* Onnx.writePackage(yield* Onnx.importBytes(bytes), dir)
        const meta = JSON.parse(fs.readFileSync(path.join(dir, "metadata.json"), "utf8")) as Onnx.ImportMetadata
        expect(meta.inputs.map((s) => `${s.onnxName}→${s.milName}`)).toEqual(["audio_input→audio_input", "input.1→input_1", "_x→_x"])
        expect(meta.outputs.map((s) => `${s.onnxName}→${s.milName}`)).toEqual(["prob→prob", "out:0→out_0", "audio_input→audio_input_1"])
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))
})
