/** Inputs and outputs by name on Model, BoundRequest and PooledRequest: simulator, stub and a hardware-like fake. */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Stream } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"
import * as Ane from "../../src/services/Ane.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { makeFake } from "./fakeBackend.js"

// Declared state-first: the engine binds (and the simulator reports) inputs and outputs sorted by name, so
// audio_input is input 0 and state input 1; next_state is output 0 and prob output 1.
const C = 4, W = 32
const text = `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, ${C}, 1, ${W}]> state, tensor<fp16, [1, ${C}, 1, ${W}]> audio_input) {
        tensor<fp16, [1, ${C}, 1, ${W}]> prob = add(x = audio_input, y = state)[name = string("prob")];
        tensor<fp16, [1, ${C}, 1, ${W}]> next_state = sub(x = audio_input, y = state)[name = string("next_state")];
    } -> (prob, next_state);
}
`
const program = CompileOptions.mil({ text })
const n = C * W
const audio = Float32Array.from({ length: n }, (_, i) => (i % 17) - 8)
const state = Float32Array.from({ length: n }, (_, i) => (i % 5) * 0.5)
const sum = audio.map((v, i) => v + state[i]!)
const diff = audio.map((v, i) => v - state[i]!)

const compile = Effect.flatMap(Ane.Ane, (ane) => ane.compile(program))

const invalidOf = (u: unknown): InvalidArgumentError => {
  expect(u).toBeInstanceOf(InvalidArgumentError)
  return u as InvalidArgumentError
}

describe("named I/O on the simulator", () => {
  const layer = Ane.layerSimulator({ latency: "off" })

  it.scoped("inputIndex and outputIndex give the binding index of each name", () =>
    Effect.gen(function*() {
      const model = yield* compile
      expect(model.inputs.map((l) => l.name)).toEqual(["audio_input", "state"])
      expect(yield* model.inputIndex("audio_input")).toBe(0)
      expect(yield* model.inputIndex("state")).toBe(1)
      expect(yield* model.outputIndex("next_state")).toBe(0)
      expect(yield* model.outputIndex("prob")).toBe(1)
    }).pipe(Effect.provide(layer)))

  it.scoped("an unknown name fails naming it and listing the known names", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const e = invalidOf(yield* Effect.flip(model.inputIndex("audio")))
      expect(e.op).toBe("Model.inputIndex")
      expect(e.message).toContain(`"audio"`)
      expect(e.message).toContain(`"audio_input", "state"`)
      const o = invalidOf(yield* Effect.flip(model.outputIndex("probability")))
      expect(o.message).toContain(`"next_state", "prob"`)
      // An input name is not an output name.
      const wrongSide = invalidOf(yield* Effect.flip(model.readOutputF32("state")))
      expect(wrongSide.op).toBe("Model.readOutputF32")
      expect(wrongSide.message).toContain(`"state"`)
      const w = invalidOf(yield* Effect.flip(model.writeInputF32("prob", audio)))
      expect(w.message).toContain(`"prob"`)
      expect(w.message).toContain(`"audio_input", "state"`)
    }).pipe(Effect.provide(layer)))

  it.scoped("writes and reads by name land where the index says", () =>
    Effect.gen(function*() {
      const model = yield* compile
      yield* model.writeInputF32("state", state)
      yield* model.writeInputF32("audio_input", audio)
      yield* model.eval
      expect(yield* model.readOutputF32("prob")).toEqual(sum)
      expect(yield* model.readOutputF32("next_state")).toEqual(diff)
      expect(yield* model.readOutputF32(1)).toEqual(sum)
      const into = new Float32Array(n)
      yield* model.readOutputF32Into("next_state", into)
      expect(into).toEqual(diff)
      // Channel-wise and fp16 forms take names too.
      expect(yield* model.readOutputF32Channels("prob", 1, 2)).toEqual(sum.subarray(W, 3 * W))
      yield* model.writeInputF32Channels("state", 3, new Float32Array(W))
      yield* model.eval
      expect((yield* model.readOutputF32("prob")).subarray(3 * W)).toEqual(audio.subarray(3 * W))
      const bits = yield* model.readOutputFP16("prob")
      expect(bits).toEqual(yield* model.readOutputFP16(1))
      const raw = yield* model.readOutput("prob")
      expect(raw.length).toBe(model.outputs[1]!.allocSize)
      yield* model.writeInput("audio_input", new Uint8Array(model.inputs[0]!.allocSize))
      yield* model.writeInputFP16Channels("state", 0, new Uint16Array(C * W))
      yield* model.eval
      expect(yield* model.readOutputF32("prob")).toEqual(new Float32Array(n))
    }).pipe(Effect.provide(layer)))

  it.scoped("run with a record by name returns the outputs keyed by name", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const out = yield* model.run({ state, audio_input: audio })
      expect(Object.keys(out).sort()).toEqual(["next_state", "prob"])
      expect(out["prob"]).toEqual(sum)
      expect(out["next_state"]).toEqual(diff)
      // The array form is unchanged: binding order in and out.
      const list = yield* model.run([audio, state], { mode: "sync" })
      expect(list).toEqual([diff, sum])
    }).pipe(Effect.provide(layer)))

  it.scoped("run refuses a record with an unknown, missing or misshapen entry before writing anything", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const unknown = invalidOf(yield* Effect.flip(model.run({ state, audio_input: audio, sr: audio })))
      expect(unknown.op).toBe("Model.run")
      expect(unknown.message).toContain(`"sr"`)
      expect(unknown.message).toContain(`"audio_input", "state"`)
      const missing = invalidOf(yield* Effect.flip(model.run({ audio_input: audio })))
      expect(missing.message).toContain(`"state"`)
      const short = invalidOf(yield* Effect.flip(model.run({ audio_input: audio, state: new Float32Array(3) })))
      expect(short.argument).toBe("inputs.state")
      expect(short.message).toContain(`expected length ${n}`)
      // Nothing was written: the model's own input surfaces still hold zeros.
      expect(yield* model.run([new Float32Array(n), new Float32Array(n)])).toEqual([new Float32Array(n), new Float32Array(n)])
    }).pipe(Effect.provide(layer)))

  it.scoped("bound and pooled requests take names too", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* compile
      const surfaces = yield* Effect.forEach([...model.inputs, ...model.outputs], (l) => ane.createSurface(l.allocSize))
      const bound = yield* model.bindRequest({ inputs: surfaces.slice(0, 2), outputs: surfaces.slice(2) })
      expect(yield* bound.inputIndex("state")).toBe(1)
      const out = yield* bound.run({ audio_input: audio, state })
      expect(out["prob"]).toEqual(sum)
      yield* bound.writeInputF32("audio_input", state)
      yield* bound.eval
      expect(yield* bound.readOutputF32("next_state")).toEqual(new Float32Array(n))
      expect(invalidOf(yield* Effect.flip(bound.readOutputF32("nope"))).op).toBe("BoundRequest.readOutputF32")

      const pool = yield* RequestPool.make(model, 2)
      const request = yield* pool.acquire
      expect(yield* request.outputIndex("prob")).toBe(1)
      yield* request.writeInputF32("audio_input", audio)
      yield* request.writeInputF32("state", state)
      yield* request.evalAsync
      expect(yield* request.readOutputF32("next_state")).toEqual(diff)
      const e = invalidOf(yield* Effect.flip(request.run({ audio_input: audio })))
      expect(e.op).toBe("PooledRequest.run")
    }).pipe(Effect.provide(layer)))

  it.effect("after the scope closes a name, known or not, answers ClosedError", () =>
    Effect.gen(function*() {
      const model = yield* Effect.scoped(compile)
      expect((yield* Effect.flip(model.readOutputF32("prob")))._tag).toBe("ClosedError")
      expect((yield* Effect.flip(model.writeInputF32("nope", audio)))._tag).toBe("ClosedError")
      expect((yield* Effect.flip(model.run({ audio_input: audio, state })))._tag).toBe("ClosedError")
      // Names are fixed at compile time: looking one up needs no open model.
      expect(yield* model.inputIndex("state")).toBe(1)
    }).pipe(Effect.provide(layer)))

  it.scoped("a name that is not a string, or an index out of range, is still an InvalidArgumentError", () =>
    Effect.gen(function*() {
      const model = yield* compile
      expect(invalidOf(yield* Effect.flip(model.inputIndex(3 as unknown as string))).argument).toBe("name")
      expect(invalidOf(yield* Effect.flip(model.readOutputF32(2))).message).toContain("[0, 2)")
      expect(invalidOf(yield* Effect.flip(model.run(audio as unknown as ReadonlyArray<Float32Array>))).argument).toBe("inputs")
    }).pipe(Effect.provide(layer)))
})

describe("named I/O on Ane.layerStub", () => {
  const stub: Ane.StubModel = {
    inputs: [{ name: "a", shape: [2, 1, 3], dtype: "fp32" }, { name: "b", shape: [2, 1, 3], dtype: "fp32" }],
    outputs: [{ name: "total", shape: [2, 1, 3], dtype: "fp32" }, { shape: [1], dtype: "fp32" }],
    eval: ([a, b]) => [a!.map((v, i) => v + b![i]!), Float32Array.of(a![0]!)]
  }
  const layer = Ane.layerStub({ models: { "*": stub } })
  const a = Float32Array.of(1, 2, 3, 4, 5, 6)
  const b = Float32Array.of(10, 20, 30, 40, 50, 60)

  it.scoped("the declared names address inputs and outputs; an unnamed output is keyed by its index", () =>
    Effect.gen(function*() {
      const model = yield* compile
      expect(yield* model.inputIndex("b")).toBe(1)
      const out = yield* model.run({ b, a })
      expect(out).toEqual({ total: Float32Array.of(11, 22, 33, 44, 55, 66), "1": Float32Array.of(1) })
      yield* model.writeInputF32("a", b)
      yield* model.writeInputF32("b", a)
      yield* model.eval
      expect(yield* model.readOutputF32("total")).toEqual(Float32Array.of(11, 22, 33, 44, 55, 66))
      const e = invalidOf(yield* Effect.flip(model.outputIndex("first")))
      expect(e.message).toContain(`"total", #1 (unnamed)`)
    }).pipe(Effect.provide(layer)))

  it.scoped("a name two tensors share is ambiguous: the error says to use the index", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const e = invalidOf(yield* Effect.flip(model.inputIndex("x")))
      expect(e.message).toContain("several inputs share")
      expect(e.hint).toContain("index")
      expect(yield* model.run([a, a])).toEqual([Float32Array.of(2, 4, 6, 8, 10, 12)])
    }).pipe(Effect.provide(Ane.layerStub({
      models: {
        "*": {
          inputs: [{ name: "x", shape: [6], dtype: "fp32" }, { name: "x", shape: [6], dtype: "fp32" }],
          outputs: [{ name: "y", shape: [6], dtype: "fp32" }],
          eval: ([p, q]) => [p!.map((v, i) => v + q![i]!)]
        }
      }
    }))))
})

describe("named I/O over engine-reported names", () => {
  // The engine reports a Name and a Symbol per tensor; they need not agree. A name matches `name` first, then `symbol`.
  const layout = (name: string, symbol: string) =>
    TensorLayout.packed({ channels: 2, height: 1, width: 4, elemSize: 4 }, { name, symbol })
  const fake = makeFake({
    inputs: [layout("input_1_ane", "input_1"), layout("mask", "mask")],
    outputs: [layout("logits_ane", "logits"), layout("mask_out", "mask_out")]
  })
  const layer = Ane.layerBackend().pipe(Layer.provide(fake.layer))

  it.scoped("a tensor is found by its Name or, failing that, its Symbol", () =>
    Effect.gen(function*() {
      const model = yield* compile
      expect(yield* model.inputIndex("input_1_ane")).toBe(0)
      expect(yield* model.inputIndex("input_1")).toBe(0)
      expect(yield* model.inputIndex("mask")).toBe(1)
      expect(yield* model.outputIndex("logits")).toBe(0)
      const x = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8)
      // The fake copies input k to output k.
      const out = yield* model.run({ input_1: x, mask: new Float32Array(8) })
      expect(out).toEqual({ logits_ane: x, mask_out: new Float32Array(8) })
      const e = invalidOf(yield* Effect.flip(model.inputIndex("input_2")))
      expect(e.message).toContain(`"input_1_ane", "mask"`)
    }).pipe(Effect.provide(layer)))
})

describe("RequestPool.evalStreamNamed", () => {
  const layer = Ane.layerSimulator({ latency: "off" })
  const scaled = (k: number) => ({ audio_input: audio.map((v) => v * k), state })

  it.scoped("takes and gives records by name, in order, whatever order the keys come in", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const elements = [1, 2, 3, 4, 5, 6, 7].map((k) => k % 2 === 0 ? scaled(k) : { state, audio_input: audio.map((v) => v * k) })
      const out = Chunk.toReadonlyArray(yield* Stream.runCollect(
        Stream.fromIterable(elements).pipe(RequestPool.evalStreamNamed(model, { depth: 3 }))
      ))
      expect(out.length).toBe(7)
      out.forEach((rec, i) => {
        const k = i + 1
        expect(Object.keys(rec).sort()).toEqual(["next_state", "prob"])
        expect(rec["prob"]).toEqual(audio.map((v, j) => v * k + state[j]!))
        expect(rec["next_state"]).toEqual(audio.map((v, j) => v * k - state[j]!))
      })
      // The same as evalStream over arrays in binding order.
      const arrays = Chunk.toReadonlyArray(yield* Stream.runCollect(
        Stream.fromIterable(elements.map((e) => [e.audio_input, e.state])).pipe(RequestPool.evalStream(model, { depth: 3 }))
      ))
      expect(arrays.map((ys) => ({ next_state: ys[0], prob: ys[1] }))).toEqual(out)
    }).pipe(Effect.provide(layer)))

  it.scoped("an unknown or missing input, or an element that is not a record, fails the stream naming it", () =>
    Effect.gen(function*() {
      const model = yield* compile
      const run = (elements: ReadonlyArray<unknown>) => Effect.flip(Stream.runCollect(
        Stream.fromIterable(elements as ReadonlyArray<Record<string, Float32Array>>).pipe(
          RequestPool.evalStreamNamed(model, { depth: 2 })
        )
      ))
      const unknown = invalidOf(yield* run([scaled(1), { audio_input: audio, stat: state }]))
      expect(unknown.op).toBe("RequestPool.evalStreamNamed")
      expect(unknown.message).toContain(`"stat"`)
      expect(unknown.message).toContain(`"audio_input", "state"`)
      const missing = invalidOf(yield* run([{ audio_input: audio }]))
      expect(missing.message).toContain(`"state"`)
      const notRecord = invalidOf(yield* run([[audio, state]]))
      expect(notRecord.message).toContain("record")
      const short = invalidOf(yield* run([{ audio_input: audio.subarray(1), state }]))
      expect(short.op).toBe("RequestPool.evalStreamNamed")
      expect(short.message).toContain("element.audio_input")
    }).pipe(Effect.provide(layer)))
})
