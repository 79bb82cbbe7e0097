/**
 * `ane doctor`: every step passes on the simulator and on the hardware backend over the fake runtime; a failing
 * step reports its native error (domain, code, description) and makes the exit status non-zero.
 */
import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { diagnose, doctorProgram, type DoctorReport, exitCodeOfReport, formatReport, STEPS } from "../../src/cli/doctor.js"
import { ExitCode } from "../../src/cli/failure.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { CompileError, NoAneError } from "../../src/schema/errors.js"
import * as Ane from "../../src/services/Ane.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { attributeOf, checkAfterEach, fakeLayer, loadFake } from "../native/fake.js"
import { inProcess, spawned } from "./harness.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const packageVersion = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version

const fake = loadFake()
checkAfterEach(fake)

const simulator = () => Ane.layerSimulator({ latency: "off" })

const statuses = (report: DoctorReport) => Object.fromEntries(report.steps.map((s) => [s.name, s.status]))
const stepOf = (report: DoctorReport, name: string) => report.steps.find((s) => s.name === name)!
const allPass = Object.fromEntries(STEPS.map((s) => [s, "pass"]))

/**
 * Makes the fake behave like the engine for the doctor's program: the simulator compiles it, its layouts become
 * the fake's model attributes (optionally altered), and every fake evaluation runs the simulator on the surfaces.
 */
const fakeEngine = (
  alter: (a: ReturnType<typeof attributeOf>) => ReturnType<typeof attributeOf> = (a) => a,
  corrupt: (output: Uint8Array) => void = () => {}
) =>
  Effect.gen(function*() {
    const sim = yield* SimBackend.make({ latency: "off" })
    const program = doctorProgram()
    const m = yield* sim.compile(CompileOptions.mil({ text: program.text, weights: program.weights }))
    fake.setAttributes({ inputs: m.inputs.map(attributeOf).map(alter), outputs: m.outputs.map(attributeOf) })
    fake.setEval((_hex, inputs, outputs) => {
      m.inputs.forEach((l, i) => m.request.inputs[i]!.set(new Uint8Array(koffi.view(inputs[i]!, l.allocSize))))
      if (Exit.isFailure(Effect.runSyncExit(m.request.eval))) return 1
      m.outputs.forEach((l, i) => {
        const out = new Uint8Array(koffi.view(outputs[i]!, l.allocSize))
        out.set(m.request.outputs[i]!)
        corrupt(out)
      })
      return 0
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      fake.setEval(undefined)
      fake.setAttributes(undefined)
      fake.reset()
    }))
  })

const hardwareOnFake = () => Ane.layerBackend().pipe(Layer.provide(fakeLayer(fake)))

describe("diagnose", () => {
  it.scopedLive("passes every step on the simulator, in order, with no engine involved", () =>
    Effect.gen(function*() {
      const report = yield* diagnose({ target: simulator() })
      expect(report.steps.map((s) => s.name)).toEqual([...STEPS])
      expect(statuses(report)).toEqual(allPass)
      expect([report.ok, report.backend, report.engine.status]).toEqual([true, "simulator", "not-used"])
      expect(stepOf(report, "cleanup").detail).toContain("compile count +2")
      expect(exitCodeOfReport(report)).toBe(ExitCode.ok)
      expect(JSON.parse(JSON.stringify(report))).toEqual(report)
      expect(report.platform).toMatchObject({ os: process.platform, node: process.version, effectAne: packageVersion })
    }))

  it.scopedLive("says there is no engine and runs the same steps on the fallback", () =>
    Effect.gen(function*() {
      const target = Layer.fail(new NoAneError({ op: "test", reason: "no engine in this test" }))
      const report = yield* diagnose({ target, fallback: simulator() })
      expect(report.engine).toEqual({ status: "absent", reason: "no engine in this test" })
      expect(statuses(report)).toEqual(allPass)
      expect(formatReport(report)).toContain("no ANE hardware: no engine in this test; the steps ran on the simulator")
    }))

  it.scopedLive("without a fallback, a missing engine fails the probe, skips the rest and exits unavailable", () =>
    Effect.gen(function*() {
      const target = Layer.fail(new NoAneError({ op: "test", reason: "no engine in this test" }))
      const report = yield* diagnose({ target })
      expect(stepOf(report, "probe")).toMatchObject({ status: "fail", error: { tag: "NoAneError" } })
      expect(report.steps.slice(1).every((s) => s.status === "skip")).toBe(true)
      expect([report.ok, report.backend]).toEqual([false, "none"])
      expect(exitCodeOfReport(report)).toBe(ExitCode.unavailable)
    }))

  it.scopedLive("passes every step on the hardware backend over the fake runtime, releasing every handle", () =>
    Effect.gen(function*() {
      yield* fakeEngine()
      const report = yield* diagnose({ target: hardwareOnFake() })
      expect(report.steps.filter((s) => s.status !== "pass")).toEqual([])
      expect([report.backend, report.engine.status]).toEqual(["hardware", "present"])
      expect(report.device).toMatchObject({ product: "FakeMac", backend: "hardware" })
      // The engine signals only after evaluating a package (the hardware rule), so that is the model used.
      expect(stepOf(report, "shared-event").detail).toMatch(/^package:/)
      expect(stepOf(report, "eval-async").detail).toContain("off the JS thread")
      expect(fake.sharedEventEvals()).toBeGreaterThanOrEqual(2)
      expect(fake.rejected()).toBe(0)
      expect(fake.mismatches()).toBe(0)
    }))

  it.scopedLive("on the fake, a layout the engine reports differently fails the layouts step and names the field", () =>
    Effect.gen(function*() {
      yield* fakeEngine((a) => ({ ...a, RowStride: a.RowStride * 2, PlaneStride: a.PlaneStride * 2 }))
      const report = yield* diagnose({ target: hardwareOnFake() })
      const layouts = stepOf(report, "layouts")
      expect(layouts.status).toBe("fail")
      expect(layouts.error?.tag).toBe("CheckFailed")
      expect(layouts.detail).toContain("in-memory inputs[0]: channels 64, height 1, width 512, elemSize 2, rowStride 2048")
      expect(layouts.detail).toContain("the simulator reports channels 64, height 1, width 512, elemSize 2, rowStride 1024")
      expect(report.ok).toBe(false)
      expect(exitCodeOfReport(report)).toBe(ExitCode.failed)
      // Handles are still released.
      expect(stepOf(report, "cleanup").status).toBe("pass")
    }))

  it.scopedLive("on the fake, an engine output off by more than fp16 error fails every evaluation step", () =>
    Effect.gen(function*() {
      // fp16 0x4400 is 4.0: element 5 of every output becomes 4, far from what the layer computes.
      yield* fakeEngine(undefined, (out) => void out.set([0x00, 0x44], 10))
      const report = yield* diagnose({ target: hardwareOnFake() })
      expect(["layouts", "eval-sync", "eval-async", "eval-stream", "shared-event", "cleanup"].map((n) => stepOf(report, n).status))
        .toEqual(["pass", "fail", "fail", "fail", "fail", "pass"])
      expect(stepOf(report, "eval-sync").detail).toMatch(/^in-memory output 0: element 5 is 4, the simulator's is -?\d/)
      expect(stepOf(report, "eval-sync").error?.tag).toBe("CheckFailed")
    }))

  it.scopedLive("a compile failing with a native error reports its domain, code and description and skips what needs it", () =>
    Effect.gen(function*() {
      const failing = new CompileError({
        op: "Ane.compile",
        model: "mil:0",
        domain: "com.apple.appleneuralengine",
        code: 11,
        hint: "compileWithQoS:options:error: failed: the program could not be compiled",
        diagnostics: []
      })
      const report = yield* diagnose({ target: Ane.layerNoop({ compile: () => Effect.fail(failing) }) })
      for (const name of ["compile-mil", "compile-package"]) {
        expect(stepOf(report, name)).toMatchObject({
          status: "fail",
          error: {
            tag: "CompileError",
            op: "Ane.compile",
            domain: "com.apple.appleneuralengine",
            code: 11,
            description: "compileWithQoS:options:error: failed: the program could not be compiled"
          }
        })
      }
      expect(["layouts", "eval-sync", "eval-async", "eval-stream", "shared-event"].map((n) => stepOf(report, n).status))
        .toEqual(["skip", "skip", "skip", "skip", "skip"])
      expect(stepOf(report, "cleanup").status).toBe("pass")
      expect(exitCodeOfReport(report)).toBe(ExitCode.failed)
      const json = JSON.parse(JSON.stringify(report)) as DoctorReport
      expect(json.steps.find((s) => s.name === "compile-mil")?.error?.domain).toBe("com.apple.appleneuralengine")
      const text = formatReport(report)
      expect(text).toContain("FAIL  compile-mil")
      expect(text).toContain("CompileError (com.apple.appleneuralengine 11) in Ane.compile")
      expect(text).toContain("2 passed, 2 failed, 5 skipped")
    }))

  it.scopedLive("an evaluation failing on the engine fails the sync step with the native code; the rest still run", () =>
    Effect.gen(function*() {
      const report = yield* diagnose({ target: Ane.layerSimulator({ latency: "off", faults: [{ stage: "eval", nth: 1 }] }) })
      expect(stepOf(report, "eval-sync")).toMatchObject({
        status: "fail",
        error: { tag: "EvalError", domain: SimBackend.SIM_ERROR_DOMAIN, code: SimBackend.DEFAULT_FAULT_CODES.eval }
      })
      expect(["eval-async", "eval-stream", "shared-event", "cleanup"].map((n) => stepOf(report, n).status))
        .toEqual(["pass", "pass", "pass", "pass"])
      expect(report.ok).toBe(false)
    }))

  it.scopedLive("a step that outlives its time limit fails as timed out", () =>
    Effect.gen(function*() {
      const report = yield* diagnose({
        target: Ane.layerNoop({ compile: () => Effect.never }),
        stepTimeout: "50 millis"
      })
      expect(stepOf(report, "compile-mil")).toMatchObject({ status: "fail", detail: "timed out after 50ms" })
      expect(stepOf(report, "cleanup").status).toBe("pass")
    }))
})

describe("ane doctor", () => {
  it("with --backend hardware and no engine, prints one JSON object and exits unavailable", async () => {
    const r = await inProcess(["doctor", "--backend", "hardware", "--json"])
    const out = JSON.parse(r.stdout) as DoctorReport & { exitCode: number; error: string }
    expect(out.exitCode).toBe(r.code)
    // On a Mac the engine is there: the object is the same, its steps decide the status.
    if (process.platform === "darwin") return
    expect(r.code).toBe(ExitCode.unavailable)
    expect(out).toMatchObject({ ok: false, backend: "none", exitCode: ExitCode.unavailable, engine: { status: "absent" } })
    expect(out.error).toBe("1 step(s) failed: probe")
  })

  it("spawned with --json on a machine without an engine: one JSON object, every step passing, exit 0", async () => {
    const r = await spawned(["doctor", "--json"], 60_000)
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as DoctorReport & { exitCode: number }
    expect(out.steps.map((s) => [s.name, s.status])).toEqual(STEPS.map((s) => [s, "pass"]))
    expect(out.exitCode).toBe(0)
    if (process.platform !== "darwin") expect(out).toMatchObject({ backend: "simulator", engine: { status: "absent" } })
  })

  it("prints a readable summary with one line per step", async () => {
    const r = await inProcess(["doctor", "--backend", "simulator"])
    expect(r.code).toBe(0)
    for (const s of STEPS) expect(r.stdout).toMatch(new RegExp(`^PASS  ${s} `, "m"))
    expect(r.stdout).toMatch(/^9 passed, 0 failed, 0 skipped$/m)
  })
})
