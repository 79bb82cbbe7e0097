/** The §3 "Open" client acquisition order of the hardware backend, its ownership and its errors, over the fake. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import { type AttributeTensor, checkAfterEach, type ClientStepName, fakeLayer, loadFake } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const tensor = (Name: string): AttributeTensor => ({
  Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name
})

/** Fake defaults before and after each test; attributes so a package compiles (the fake copies inputs to outputs). */
const setup = Effect.acquireRelease(
  Effect.sync(() => {
    fake.resetTelemetry()
    fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
    fake.reset()
  }),
  () =>
    Effect.sync(() => {
      fake.resetTelemetry()
      fake.setAttributes(undefined)
      fake.reset()
    })
)

const packageDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-client-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Every message sent to `_ANEClient` (class or instance) since the last reset, in order. */
const clientLog = () => fake.log().filter((l) => l.startsWith("+_ANEClient ") || l.startsWith("-_ANEClient "))

const RESPONDS = "+_ANEClient respondsToSelector:"
const IRESPONDS = "-_ANEClient respondsToSelector:"
/** A class message sent after its respondsToSelector: guard. */
const guarded = (selector: string) => [RESPONDS, `+_ANEClient ${selector}`]
const INIT = ["-_ANEClient respondsToSelector:", "-_ANEClient initWithRestrictedAccessAllowed:"]
/** What clientInfo sends to the client it found (no virtual client: -virtualClient answers nil). */
const PROBE = [IRESPONDS, "-_ANEClient virtualClient"]

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

/** A backend over the fake whose layer scope the test closes itself. */
const openBackend = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const backend = Context.get(yield* Scope.extend(Layer.build(fakeLayer(fake)), scope), Backend)
  return { backend, close: Scope.close(scope, Exit.void) }
})

const steps = (answers: Partial<Record<ClientStepName, "absent" | "nil" | "object">>) => {
  for (const [step, answer] of Object.entries(answers)) fake.clientStep(step as ClientStepName, answer)
}

describe("_ANEClient acquisition (§3 Open step 2)", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly answers: Partial<Record<ClientStepName, "absent" | "nil" | "object">>
    readonly sent: ReadonlyArray<string>
    readonly owned: "init" | "new" | undefined
  }> = [
    { name: "sharedPrivateConnection first", answers: { sharedPrivateConnection: "object" }, sent: guarded("sharedPrivateConnection"), owned: undefined },
    {
      name: "sharedConnection when sharedPrivateConnection is nil",
      answers: { sharedPrivateConnection: "nil" },
      sent: [...guarded("sharedPrivateConnection"), ...guarded("sharedConnection")],
      owned: undefined
    },
    {
      name: "alloc + initWithRestrictedAccessAllowed: when both shared connections are nil",
      answers: { sharedPrivateConnection: "nil", sharedConnection: "nil" },
      sent: [...guarded("sharedPrivateConnection"), ...guarded("sharedConnection"), ...guarded("alloc"), ...INIT],
      owned: "init"
    },
    {
      name: "new when alloc answers nil",
      answers: { sharedPrivateConnection: "nil", sharedConnection: "nil", alloc: "nil" },
      sent: [...guarded("sharedPrivateConnection"), ...guarded("sharedConnection"), ...guarded("alloc"), ...guarded("new")],
      owned: "new"
    },
    {
      name: "new when initWithRestrictedAccessAllowed: answers nil",
      answers: { sharedConnection: "nil", "initWithRestrictedAccessAllowed:": "nil" },
      // sharedPrivateConnection unanswered: asked, never sent.
      sent: [RESPONDS, ...guarded("sharedConnection"), ...guarded("alloc"), ...INIT, ...guarded("new")],
      owned: "new"
    },
    {
      name: "new when the class answers neither shared connection nor alloc",
      answers: { sharedConnection: "absent", alloc: "absent" },
      sent: [RESPONDS, RESPONDS, RESPONDS, ...guarded("new")],
      owned: "new"
    }
  ]

  for (const c of cases) {
    it.scopedLive(`takes ${c.name}, once per backend`, () =>
      Effect.gen(function*() {
        yield* setup
        steps(c.answers)
        const before = fake.live()
        const { backend, close } = yield* openBackend
        fake.reset()
        yield* backend.clientInfo
        expect(clientLog()).toEqual([...c.sent, ...PROBE])
        // Found once: the second read goes straight to the client.
        fake.reset()
        yield* backend.clientInfo
        expect(clientLog()).toEqual(PROBE)
        for (const origin of ["init", "new"] as const) expect(fake.clientStat("alive", origin)).toBe(origin === c.owned ? 1 : 0)
        // The backend's own client is not a live handle of the user's.
        expect(yield* backend.liveHandles).toBe(0)
        fake.reset()
        yield* close
        const released = clientLog()
        expect(released).toEqual(c.owned !== undefined ? ["-_ANEClient release"] : [])
        expect(fake.clientStat("alive", "init") + fake.clientStat("alive", "new")).toBe(0)
        expect([fake.zombies(), fake.rejected(), fake.mismatches()]).toEqual([0, 0, 0])
        expect(fake.live()).toBe(before)
      }))
  }

  it.scopedLive("an owned client is released once, after a real-time task and a package model that used it", () =>
    Effect.gen(function*() {
      yield* setup
      const path = yield* packageDir
      steps({ sharedConnection: "nil" })
      const before = fake.live()
      const { backend, close } = yield* openBackend
      fake.reset()
      // §5 step 6: sharedConnection is nil, so the package model takes the backend's client (and retains it).
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.package({ path }))
        yield* model.request.eval
        expect(clientLog().slice(0, 9)).toEqual([...guarded("sharedConnection"), RESPONDS, ...guarded("sharedConnection"), ...guarded("alloc"), ...INIT])
        expect(clientLog()).toContain("-_ANEClient compileModel:options:qos:error:")
        expect(clientLog().filter((l) => l.endsWith(" new"))).toEqual([])
      }))
      const taskScope = yield* Scope.make()
      yield* Scope.extend(backend.beginRealTimeTask, taskScope)
      expect(yield* backend.liveHandles).toBe(1)
      // The layer's scope closes first: the task still holds the client, so it stays alive for endRealTimeTask.
      yield* close
      expect(fake.clientStat("alive", "init")).toBe(1)
      yield* Scope.close(taskScope, Exit.void)
      expect(fake.realTimeActive()).toBe(0)
      expect(fake.clientStat("alive", "init")).toBe(0)
      // Retains (model, task) balanced by their releases, plus exactly one release of the backend's +1.
      expect(fake.clientStat("retain", "init")).toBe(2)
      expect(fake.clientStat("release", "init")).toBe(3)
      expect([fake.zombies(), fake.rejected(), fake.mismatches()]).toEqual([0, 0, 0])
      expect(fake.live()).toBe(before)
    }))

  it.scopedLive("shared connections are never released by the backend", () =>
    Effect.gen(function*() {
      yield* setup
      for (const [answers, origin] of [[{ sharedPrivateConnection: "object" }, "private"], [{}, "shared"]] as const) {
        fake.resetTelemetry()
        steps(answers)
        fake.reset()
        const { backend, close } = yield* openBackend
        yield* backend.clientInfo
        yield* Effect.scoped(backend.beginRealTimeTask)
        yield* close
        expect(fake.clientStat("retain", origin)).toBe(1)
        expect(fake.clientStat("release", origin)).toBe(1)
        expect(fake.rejected()).toBe(0)
      }
    }))

  it.scopedLive("initWithRestrictedAccessAllowed: answering nil leaks nothing; an alloc'd client without it is released", () =>
    Effect.gen(function*() {
      yield* setup
      steps({ sharedConnection: "nil", "initWithRestrictedAccessAllowed:": "nil", new: "nil" })
      const before = fake.live()
      const { backend, close } = yield* openBackend
      fake.reset()
      yield* failure(backend.clientInfo)
      // The failed init consumed the alloc'd object; a release from us would be an over-release (a zombie message).
      expect(clientLog().filter((l) => / (alloc|initWithRestrictedAccessAllowed:|release)$/.test(l))).toEqual([
        "+_ANEClient alloc", "-_ANEClient initWithRestrictedAccessAllowed:"
      ])
      expect([fake.clientStat("alive", "init"), fake.clientStat("release", "init"), fake.zombies()]).toEqual([0, 0, 0])
      expect(fake.live()).toBe(before)
      yield* close
      fake.resetTelemetry()
      steps({ sharedConnection: "nil", "initWithRestrictedAccessAllowed:": "absent" })
      const second = yield* openBackend
      fake.reset()
      yield* second.backend.clientInfo
      expect(clientLog().slice(3, 9)).toEqual([...guarded("alloc"), IRESPONDS, "-_ANEClient release", ...guarded("new")])
      expect(fake.clientStat("release", "init")).toBe(1)
      yield* second.close
      expect([fake.clientStat("alive", "init"), fake.clientStat("alive", "new"), fake.zombies(), fake.rejected()]).toEqual([0, 0, 0, 0])
      expect(fake.live()).toBe(before)
    }))

  it.scopedLive("the fake refuses initWithRestrictedAccessAllowed: NO, and ours always sends YES", () =>
    Effect.gen(function*() {
      yield* setup
      const rt = fake.rt
      const cls = rt.cls("_ANEClient")
      const before = fake.live()
      const client = rt.autoreleasePool(() => rt.id(rt.id(cls, "alloc"), "initWithRestrictedAccessAllowed:", "id(bool)", false))
      expect(client).toBe(0n)
      expect(fake.rejected()).toBe(1)
      expect(fake.lastRejection()).toContain("with NO")
      expect(fake.live()).toBe(before)
      fake.reset()
      steps({ sharedConnection: "nil" })
      const { backend, close } = yield* openBackend
      yield* backend.clientInfo
      expect(fake.clientStat("alive", "init")).toBe(1)
      yield* close
      expect(fake.rejected()).toBe(0)
    }))

  it.scopedLive("all four nil: clientInfo, beginRealTimeTask and the package path fail typed, naming the attempts", () =>
    Effect.gen(function*() {
      yield* setup
      const path = yield* packageDir
      steps({ sharedPrivateConnection: "nil", sharedConnection: "nil", alloc: "nil", new: "nil" })
      const before = fake.live()
      const { backend, close } = yield* openBackend
      fake.reset()
      const info = yield* failure(backend.clientInfo)
      expect(info._tag).toBe("NoAneError")
      const attempts = ["sharedPrivateConnection", "sharedConnection", "alloc", "initWithRestrictedAccessAllowed:", "new"]
      for (const a of attempts) expect(info.reason).toContain(a)
      expect(clientLog()).toEqual([
        ...guarded("sharedPrivateConnection"), ...guarded("sharedConnection"), ...guarded("alloc"), ...guarded("new")
      ])
      // Nothing was found, so the next use tries again.
      fake.reset()
      const task = yield* failure(Effect.scoped(backend.beginRealTimeTask))
      expect(task).toMatchObject({ _tag: "EvalError", op: "beginRealTimeTask" })
      for (const a of attempts) expect(task.hint).toContain(a)
      expect(clientLog()).toHaveLength(8)
      const compile = yield* failure(Effect.scoped(backend.compile(CompileOptions.package({ path }))))
      expect(compile._tag).toBe("CompileError")
      for (const a of attempts) expect(compile.message).toContain(a)
      expect(yield* backend.liveHandles).toBe(0)
      yield* close
      expect([fake.rejected(), fake.mismatches(), fake.zombies()]).toEqual([0, 0, 0])
      expect(fake.live()).toBe(before)
    }))
})
