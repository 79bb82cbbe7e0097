/** Typed errors: messages say what happened and what to do, isAneError recognises exactly ours, catchTag works. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  type AneError,
  AneErrorSchema,
  ClosedError,
  CompileBudgetExhaustedError,
  CompileError,
  Diagnostic,
  EvalError,
  InvalidArgumentError,
  isAneError,
  MapError,
  ModelLoadError,
  NoAneError,
  SharedEventRequiresPackageError,
  UnsupportedLayoutError,
  UnsupportedSelectorError,
  VirtualClientUnavailableError
} from "../../src/schema/index.js"

const diag = (line: number, severity: "error" | "warning" = "error") =>
  Diagnostic.make({ kind: "type", severity, code: "E_SHAPE", message: `bad shape ${line}`, line, col: 3 })

/** Each error with the fragments its message must contain. */
const cases: ReadonlyArray<readonly [AneError, ReadonlyArray<string>]> = [
  [new NoAneError({ op: "Ane.layer", reason: "not macOS" }), ["no ANE hardware available: not macOS", "Ane.layerSimulator"]],
  [new NoAneError({ op: "Ane.layer", reason: "no device", hint: "run on Apple Silicon" }), ["no device. run on Apple Silicon"]],
  [new CompileError({ op: "Ane.compile", model: "mil:ab12", diagnostics: [diag(4), diag(5, "warning")] }),
    ["compile of mil:ab12 failed: 1 error(s)", "<mil>:4:3: error E_SHAPE: bad shape 4"]],
  [new CompileError({ op: "Ane.compile", diagnostics: [], domain: "com.apple.appleneuralengine", code: 7 }),
    ["compile failed (com.apple.appleneuralengine 7)"]],
  [new CompileBudgetExhaustedError({ op: "Ane.compile", used: 119, limit: 119 }),
    ["119 of 119 compiles", "ModelCache", "new client"]],
  [new ModelLoadError({ op: "Ane.compile", model: "pkg:/m", domain: "ANE", code: 3, hint: "retry after unload" }),
    ["loading pkg:/m failed (ANE 3): retry after unload"]],
  [new MapError({ op: "RequestPool.acquire", model: "mil:1" }), ["mapping the surfaces of mil:1 failed"]],
  [new EvalError({ op: "Model.eval", model: "mil:1", code: 5 }), ["evaluation of mil:1 failed (native 5)"]],
  [new UnsupportedLayoutError({ op: "Ane.compile", tensor: "input[0]", reason: "RowStride 96 is not 64-byte aligned" }),
    ["unsupported tensor layout: input[0]: RowStride 96 is not 64-byte aligned"]],
  [new UnsupportedSelectorError({ op: "Ane.info", className: "_ANEDeviceInfo", selector: "isVirtualMachine", hint: "older macOS" }),
    ["_ANEDeviceInfo does not respond to isVirtualMachine: older macOS"]],
  [new VirtualClientUnavailableError({ op: "Ane.layer" }), ["virtual ANE client unavailable"]],
  [new SharedEventRequiresPackageError({ op: "Model.evalWithSharedEvents", model: "mil:2" }),
    ["require a package (.mlmodelc) model", "mil:2", "CompileOptions.package"]],
  [new InvalidArgumentError({ op: "Model.writeInputF32", argument: "input[0] length", expected: "4096 elements", actual: "3", hint: "check C×H×W" }),
    ["Model.writeInputF32: invalid input[0] length: expected 4096 elements, got 3 (check C×H×W)"]],
  [new ClosedError({ op: "Model.eval", resource: "model mil:3" }), ["Model.eval: model mil:3 is closed", "inside the scope"]]
]

describe("typed errors", () => {
  it("covers every tag of the AneError union", () => {
    expect(new Set(cases.map(([e]) => e._tag)).size).toBe(12)
  })

  it.each(cases.map(([e, fragments]) => ({ tag: e._tag, e, fragments })))("$tag says what went wrong", ({ e, fragments }) => {
    for (const f of fragments) expect(e.message).toContain(f)
    expect(e).toBeInstanceOf(Error)
    expect(isAneError(e)).toBe(true)
  })

  it("truncates long diagnostic lists", () => {
    const e = new CompileError({ op: "Ane.compile", diagnostics: Array.from({ length: 8 }, (_, i) => diag(i + 1)) })
    expect(e.message).toContain("8 error(s)")
    expect(e.message).toContain("… 3 more")
    expect(e.message).not.toContain("bad shape 6")
  })

  it("isAneError rejects look-alikes", () => {
    expect(isAneError(new Error("x"))).toBe(false)
    expect(isAneError({ _tag: "EvalError", message: "fake" })).toBe(false)
    expect(isAneError(Object.assign(new Error("x"), { _tag: "SomethingElse" }))).toBe(false)
    expect(isAneError(null)).toBe(false)
    expect(isAneError("EvalError")).toBe(false)
  })

  it.effect("catchTag handles exactly the named error", () =>
    Effect.gen(function* () {
      const fail = (e: InvalidArgumentError | EvalError) => Effect.fail(e)
      const handled = yield* fail(new InvalidArgumentError({ op: "o", argument: "a", expected: "e", actual: "x" })).pipe(
        Effect.catchTag("InvalidArgumentError", (e) => Effect.succeed(`handled ${e.argument}`)),
        Effect.catchTag("EvalError", () => Effect.succeed("wrong handler"))
      )
      expect(handled).toBe("handled a")
      const other = yield* Effect.flip(
        fail(new EvalError({ op: "Model.eval", model: "m" })).pipe(
          Effect.catchTag("InvalidArgumentError", () => Effect.succeed("wrong handler"))
        )
      )
      expect(other._tag).toBe("EvalError")
    }))

  it("round-trips through the union schema", () => {
    const e = new InvalidArgumentError({ op: "o", argument: "qos", expected: "0..33", actual: "99" })
    const encoded = Schema.encodeSync(AneErrorSchema)(e)
    const decoded = Schema.decodeUnknownSync(AneErrorSchema)(JSON.parse(JSON.stringify(encoded)))
    expect(decoded._tag).toBe("InvalidArgumentError")
    expect(decoded.message).toBe(e.message)
  })
})
