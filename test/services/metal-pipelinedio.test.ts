/** PipelinedIO and prepareChain: package models only, every index checked, backends called with checked values. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import { type BackendChainLink, layerNoop, stubModel } from "../../src/services/Backend.js"
import * as PipelinedIO from "../../src/services/PipelinedIO.js"
import { double } from "./programs.js"

const pkg = CompileOptions.package({ path: "examples/gated_conv.mlmodelc" })

/** A stub whose package models record what reaches the backend. */
const recording = () => {
  const calls: Array<unknown> = []
  const layer = Ane.layerBackend().pipe(Layer.provide(layerNoop({
    compile: (o) => Effect.succeed({
      ...stubModel(o),
      pipelinedIO: {
        notifyInputsReady: (p) => Effect.sync(() => { calls.push(["ready", p]) }),
        enqueueOutputSet: (p, s, v, open) => Effect.sync(() => { calls.push(["enqueue", p, s, v, open]) })
      },
      prepareChain: (links: ReadonlyArray<BackendChainLink>) => Effect.sync(() => { calls.push(["chain", links]) })
    })
  })), Layer.orDie)
  return { calls, layer }
}

describe("PipelinedIO", () => {
  it.scoped("refuses an in-memory MIL model with SharedEventRequiresPackageError naming pipelined I/O", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(double(1, 32))
      const error = yield* Effect.flip(PipelinedIO.make(model))
      expect(error).toMatchObject({ _tag: "SharedEventRequiresPackageError", op: "PipelinedIO.make", feature: "pipelined I/O" })
      expect(error.message).toContain("pipelined I/O requires a package (.mlmodelc) model")
      const chain = yield* Effect.flip(PipelinedIO.prepareChain(model, []))
      expect(chain).toMatchObject({ _tag: "SharedEventRequiresPackageError", feature: "chaining" })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  it.scoped("passes checked calls and the open-loop flag through to the backend", () => {
    const { calls, layer } = recording()
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(CompileOptions.package({ path: "/m.mlmodelc" }))
      const io = yield* PipelinedIO.make(model)
      yield* io.notifyInputsReady()
      yield* io.enqueueOutputSet(0, 1, 5n)
      expect(yield* io.openLoop).toBe(false)
      yield* io.setOpenLoop(true)
      yield* io.enqueueOutputSet(0, 2, 6n)
      yield* PipelinedIO.prepareChain(model, [{ loopbackInputIndex: 0, loopbackOutputIndex: 0, enqueueDelay: 3n }])
      yield* PipelinedIO.prepareChain(model, [])
      expect(calls).toEqual([
        ["ready", 0],
        ["enqueue", 0, 1, 5n, false],
        ["enqueue", 0, 2, 6n, true],
        ["chain", [{ procedureIndex: 0, loopbackInputIndex: 0, loopbackOutputIndex: 0, enqueueDelay: 3n }]]
      ])
    }).pipe(Effect.provide(layer))
  })

  it.scoped("checks every argument before the backend sees it", () => {
    const { calls, layer } = recording()
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(CompileOptions.package({ path: "/m.mlmodelc" }))
      const io = yield* PipelinedIO.make(model)
      expect(yield* Effect.flip(io.notifyInputsReady(-1))).toMatchObject({ _tag: "InvalidArgumentError", argument: "procedure" })
      expect(yield* Effect.flip(io.enqueueOutputSet(0, 1.5, 1n))).toMatchObject({ argument: "setIndex" })
      expect(yield* Effect.flip(io.enqueueOutputSet(0, 0, -1n))).toMatchObject({ argument: "signalValue" })
      expect(yield* Effect.flip(io.enqueueOutputSet(2 ** 32, 0, 1n))).toMatchObject({ argument: "procedure" })
      expect(yield* Effect.flip(io.setOpenLoop("yes" as never))).toMatchObject({ argument: "openLoop" })
      const chain = (links: unknown) => Effect.flip(PipelinedIO.prepareChain(model, links as ReadonlyArray<PipelinedIO.ChainLink>))
      expect(yield* chain("x")).toMatchObject({ argument: "links" })
      expect(yield* chain([null])).toMatchObject({ argument: "links[0]" })
      expect(yield* chain([{ loopbackInputIndex: 1, loopbackOutputIndex: 0 }])).toMatchObject({
        argument: "links[0].loopbackInputIndex", expected: "an input index in [0, 1)"
      })
      expect(yield* chain([{ loopbackInputIndex: 0, loopbackOutputIndex: 0 }, { loopbackInputIndex: 0, loopbackOutputIndex: 3 }]))
        .toMatchObject({ argument: "links[1].loopbackOutputIndex" })
      expect(yield* chain([{ loopbackInputIndex: 0, loopbackOutputIndex: 0, enqueueDelay: 1 }])).toMatchObject({
        argument: "links[0].enqueueDelay"
      })
      expect(yield* Effect.flip(PipelinedIO.make({} as never))).toMatchObject({ argument: "model" })
      expect(calls).toEqual([])
    }).pipe(Effect.provide(layer))
  })

  it.scoped("answers ClosedError once the model's scope has closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const model = yield* Scope.extend((yield* Ane.Ane).compile(pkg), scope)
      const io = yield* PipelinedIO.make(model)
      yield* io.notifyInputsReady(0)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(io.notifyInputsReady(0))).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(io.enqueueOutputSet(0, 0, 1n))).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(PipelinedIO.make(model))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

  it.scoped("on the simulator, accepts procedure 0 and refuses others with an EvalError naming the count", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(pkg)
      const io = yield* PipelinedIO.make(model)
      yield* io.notifyInputsReady(0)
      yield* io.enqueueOutputSet(0, 0, 1n)
      yield* PipelinedIO.prepareChain(model, [{ loopbackInputIndex: 0, loopbackOutputIndex: 0 }])
      const error = yield* Effect.flip(io.notifyInputsReady(1))
      expect(error).toMatchObject({ _tag: "EvalError", op: "PipelinedIO.notifyInputsReady" })
      expect(error.message).toContain("the model has 1 procedure")
      expect(yield* Effect.flip(PipelinedIO.prepareChain(model, [{ procedureIndex: 2, loopbackInputIndex: 0, loopbackOutputIndex: 0 }])))
        .toMatchObject({ _tag: "EvalError" })
    }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
})
