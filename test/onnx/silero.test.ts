/** Acceptance: Silero VAD v6 imported from ONNX matches onnxruntime's probabilities over a 4 s stream. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Onnx from "../../src/onnx/Onnx.js"
import { readNpy } from "./npy.js"
import { compileImported, maxAbsDiff, simulator } from "./run.js"
import { SILERO, sileroAudio } from "./silero-stream.js"

const fixture = path.join(import.meta.dirname, "fixtures", "silero_vad_v6.onnx")
const golden = readNpy(fs.readFileSync(path.join(import.meta.dirname, "fixtures", "silero_vad_v6.probs.npy"))).data
const options = { shapes: { input: [1, SILERO.context + SILERO.chunk], state: [2, 1, 128] }, inputValues: { sr: [16000] } }

const stream = (numerics: "exact" | "ane") =>
  Effect.gen(function*() {
    const imported = yield* Onnx.importFile(fixture, options)
    const { run } = yield* compileImported(imported)
    const audio = sileroAudio()
    const frame = new Float32Array(SILERO.context + SILERO.chunk)
    let state: Float32Array = new Float32Array(2 * 128)
    const probs = new Float32Array(SILERO.chunks)
    for (let i = 0; i < SILERO.chunks; i++) {
      frame.copyWithin(0, SILERO.chunk)
      frame.set(audio.subarray(i * SILERO.chunk, (i + 1) * SILERO.chunk), SILERO.context)
      const out = yield* run({ input: frame, state }, ["output", "stateN"])
      probs[i] = out["output"]![0]!
      state = out["stateN"]!
    }
    return probs
  }).pipe(Effect.scoped, Effect.provide(simulator(numerics)))

describe("Silero VAD v6 from ONNX", () => {
  it("the goldens cover both silence and speech", () => {
    expect(Math.min(...golden)).toBeLessThan(0.1)
    expect(Math.max(...golden)).toBeGreaterThan(0.9)
  })

  it.effect("matches onnxruntime within 0.005 in exact numerics", () =>
    Effect.gen(function*() {
      const probs = yield* stream("exact")
      expect(maxAbsDiff(probs, golden)).toBeLessThan(0.005)
    }), 60_000)

  it.effect("matches onnxruntime within 0.03 in ane numerics", () =>
    Effect.gen(function*() {
      const probs = yield* stream("ane")
      expect(maxAbsDiff(probs, golden)).toBeLessThan(0.03)
    }), 60_000)

  it.effect("without the sample rate fixed, the If on sr is reported with the node", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Onnx.importFile(fixture, { shapes: options.shapes }))
      expect(error._tag).toBe("ImportError")
      expect(error.opType).toBe("If")
      expect(error.message).toContain("condition must be known at import")
    }))

  it.effect("a symbolic dim without a shape names the input and the axis", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Onnx.importFile(fixture, { inputValues: { sr: [16000] }, shapes: { input: [1, 576] } }))
      expect(error.message).toContain(`input "state" has a symbolic dimension`)
      expect(error.message).toContain("axis 1")
      expect(error.hint).toContain("--shape state=")
    }))
})
