/**
 * Asynchronous evaluations and shared-event waits run on the library's own threads, not on libuv's pool of 4: more
 * than 4 evaluations are inside the engine at once, Node's fs and crypto keep working meanwhile, a thread has stack
 * enough for the framework's deep paths, and interrupts leave nothing stuck. Tested over the fake runtime.
 */
import { spawn } from "node:child_process"
import { readFile } from "node:fs/promises"
import { pbkdf2 } from "node:crypto"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend, type BackendRequest } from "../../src/services/Backend.js"
import { doubleText, pattern } from "../services/programs.js"
import { type AttributeTensor, checkAfterEach, expectClean, fakeLayer, loadFake, readOutput, writeInput } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const tensor = (name: string): AttributeTensor => ({
  Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name
})

/**
 * A model the fake evaluates by copying input to output (no JS callback, so evaluations never wait for the JS
 * thread), and evaluations released from any hold when the test ends.
 */
const copyModel = Effect.gen(function*() {
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      fake.setEval(undefined)
      fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
      fake.reset()
    }),
    () =>
      Effect.sync(() => {
        fake.setEvalStack(0)
        fake.setAttributes(undefined)
      })
  )
  const backend = yield* Backend
  const model = yield* backend.compile(CompileOptions.mil({ text: doubleText(4, 32) }))
  // Runs before the model's release (finalizers run in reverse), which waits for held evaluations to end.
  yield* Effect.addFinalizer(() => Effect.sync(() => fake.holdEvals(false)))
  return model
})

/** Polls until `ready()` (at most ~5 s), then checks it. */
const until = (ready: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !ready(); i++) yield* Effect.sleep("5 millis")
    expect(ready(), what).toBe(true)
  })

const requests = (n: number) =>
  Effect.gen(function*() {
    const model = yield* copyModel
    const list: Array<BackendRequest> = [model.request]
    for (let i = 1; i < n; i++) list.push(yield* model.mapRequest)
    return { model, list }
  })

describe("eval threads of the library's own", () => {
  it.scopedLive("eight evaluations are inside the engine at once (libuv's pool would allow four)", () =>
    Effect.gen(function*() {
      const { list, model } = yield* requests(8)
      list.forEach((r, i) => writeInput(r, 0, model.inputs[0]!, pattern(128, i)))
      fake.holdEvals(true)
      const fibers = yield* Effect.forEach(list, (r) => Effect.fork(r.evalAsync))
      yield* until(() => fake.inFlight() === 8, "8 evaluations in flight")
      fake.holdEvals(false)
      yield* Fiber.joinAll(fibers)
      expect(fake.inFlightMax()).toBe(8)
      // Each request got its own input back (the fake copies input to output).
      list.forEach((r, i) => expect(Array.from(readOutput(r, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, i))))
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("while 8 evaluations and 4 shared-event waits are pending, fs and crypto still complete", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const { list } = yield* requests(8)
      const events = yield* Effect.forEach([1, 2, 3, 4], () => backend.createSharedEvent)
      fake.holdEvals(true)
      const evals = yield* Effect.forEach(list, (r) => Effect.fork(r.evalAsync))
      const waits = yield* Effect.forEach(events, (e) => Effect.fork(e.wait(1n, 60_000)))
      yield* until(() => fake.inFlight() === 8, "8 evaluations in flight")
      // Liveness, not speed: with libuv's 4 threads all held, these would never finish before the holds end.
      const outcome = yield* Effect.promise(() =>
        Promise.race([
          Promise.all([
            readFile(fileURLToPath(import.meta.url)),
            new Promise<Buffer>((resolve, reject) => pbkdf2("secret", "salt", 1000, 32, "sha256", (e, k) => (e ? reject(e) : resolve(k))))
          ]).then(() => "completed"),
          new Promise<string>((resolve) => setTimeout(() => resolve("starved"), 10_000))
        ])
      )
      expect(outcome).toBe("completed")
      expect(waits.every((w) => w.unsafePoll() === null)).toBe(true)
      fake.holdEvals(false)
      yield* Fiber.joinAll(evals)
      for (const e of events) yield* e.signal(1n)
      expect(yield* Fiber.joinAll(waits)).toEqual([true, true, true, true])
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("an eval thread has stack for the framework's deep evaluate path (koffi's async stack is 128 KiB)", () =>
    Effect.gen(function*() {
      const model = yield* copyModel
      fake.setEvalStack(1 << 20)
      yield* model.request.evalAsync
      yield* model.request.eval
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("a wait never holds a thread an evaluation needs: one thread serves both", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const model = yield* copyModel
      const event = yield* backend.createSharedEvent
      const wait = yield* Effect.fork(event.wait(5n, 60_000))
      yield* until(() => fake.log().includes("-IOSurfaceSharedEvent waitUntilSignaledValue:timeoutMS:"), "the wait started")
      yield* model.request.evalAsync
      expect(wait.unsafePoll()).toBeNull()
      yield* event.signal(5n)
      expect(yield* Fiber.join(wait)).toBe(true)
    }).pipe(Effect.provide(fakeLayer(fake, { evalThreads: 1 }))))

  it.scopedLive("interrupting a queued evaluation withdraws it; the request stays usable and closes cleanly", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* copyModel
        const EVAL = "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:"
        fake.holdEvals(true)
        const first = yield* Effect.fork(model.request.evalAsync)
        yield* until(() => fake.inFlight() === 1, "the first evaluation in flight")
        const queued = yield* Effect.fork(model.request.evalAsync)
        yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(queued)
        fake.holdEvals(false)
        yield* Fiber.join(first)
        expect(fake.log().filter((l) => l === EVAL)).toHaveLength(1)
        yield* model.request.evalAsync
        expect(fake.log().filter((l) => l === EVAL)).toHaveLength(2)
      }))
      yield* expectClean(fake)
      expect(NativeBackend.nativeStats(backend)?.evalThreads.running).toBe(0)
    }).pipe(Effect.provide(fakeLayer(fake, { evalThreads: 1 }))))

  it.scopedLive("interrupting a wait stops it after its current slice and gives the event back", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const event = yield* backend.createSharedEvent
        fake.reset()
        const wait = yield* Effect.fork(event.wait(99n, 60_000))
        yield* until(() => fake.log().includes("-IOSurfaceSharedEvent waitUntilSignaledValue:timeoutMS:"), "the wait started")
        yield* Fiber.interrupt(wait)
        yield* until(() => NativeBackend.nativeStats(backend)?.evalThreads.running === 0, "no thread still waiting")
        // The wait's own reference went back once its last slice ended.
        expect(fake.log().filter((l) => l === "-IOSurfaceSharedEvent release")).toHaveLength(1)
      }))
      expect(fake.live()).toBe(before)
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.live("a pending evaluation keeps Node alive until it ends, with nothing else holding the event loop", () =>
    Effect.gen(function*() {
      const here = (path: string) => JSON.stringify(new URL(path, import.meta.url).pathname)
      // The child compiles over the fake, starts one evalAsync of 300 ms and returns: only the eval thread's ref
      // keeps the process up until the evaluation reports. It runs as an ES module (`--input-type=module`), which
      // the eval threads' own CommonJS source must not inherit.
      const script = [
        `import { Effect, Layer } from "effect"`,
        `import * as NativeBackend from ${here("../../src/native/NativeBackend.ts")}`,
        `import { CompileOptions } from ${here("../../src/schema/CompileOptions.ts")}`,
        `import { Backend } from ${here("../../src/services/Backend.ts")}`,
        `import { loadFake } from ${here("../native-fake/controls.ts")}`,
        `const fake = loadFake()`,
        `const t = (name) => ({ Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name })`,
        `fake.setAttributes({ inputs: [t("x")], outputs: [t("y")] })`,
        `const program = Effect.gen(function*() {`,
        `  const backend = yield* Backend`,
        `  const model = yield* backend.compile(CompileOptions.mil({ text: ${JSON.stringify(doubleText(4, 32))} }))`,
        `  fake.setEvalDelay(300000)`,
        `  yield* model.request.evalAsync`,
        `  console.log("evaluated")`,
        `}).pipe(Effect.scoped, Effect.provide(NativeBackend.layerWith({ paths: fake.paths, loadRetryMs: 1 })))`,
        `Effect.runPromise(program).catch((e) => console.log("failed", String(e)))`,
        `process.on("exit", (c) => console.log("exit", c))`
      ].join("\n")
      const { code, stdout, stderr } = yield* Effect.promise(() =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: "pipe" })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (d) => (stdout += String(d)))
          child.stderr.on("data", (d) => (stderr += String(d)))
          child.on("close", (code) => resolve({ code, stdout, stderr }))
        })
      )
      expect({ stderr, stdout }).toEqual({ stderr: "", stdout: "evaluated\nexit 0\n" })
      expect(code).toBe(0)
    }))
})
