/** CompileOptions refuses weight paths that could leave the model before anything is compiled or written. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  CompileOptions, InvalidArgumentError, WEIGHT_PATH_OUTSIDE_MODEL, WeightFile, weightPathSyntaxProblem
} from "../../src/schema/index.js"

const text = "program(1.3) { func main<ios18>() { } -> () }"
const bytes = new Uint8Array(64)

const refused = (path: string, fragment: string) =>
  Effect.gen(function*() {
    const e = yield* Effect.flip(CompileOptions.validate(CompileOptions.mil({ text, weights: [{ path, bytes }] })))
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect(e.argument).toBe("weights[0].path")
    expect(e.message).toContain(JSON.stringify(path))
    expect(e.message).toContain(fragment)
    expect(e.hint).toContain(WEIGHT_PATH_OUTSIDE_MODEL)
  })

describe("CompileOptions.mil weight paths", () => {
  it.effect("refuses a '..' segment after @model_path/", () => refused("@model_path/../../somewhere/x", "'..' segment"))
  it.effect("refuses a '..' segment in the middle", () => refused("@model_path/weights/../../x.bin", "'..' segment"))
  it.effect("refuses a bare '..'", () => refused("..", "'..' segment"))
  it.effect("refuses an absolute path", () => refused("/etc/passwd", "absolute path"))
  it.effect("refuses an absolute path behind @model_path/", () => refused("@model_path//etc/passwd", "absolute path"))
  it.effect("refuses a drive-letter path", () => refused("C:/Windows/x.bin", "absolute path"))
  it.effect("refuses a NUL character", () => refused("@model_path/weights/w.bin\0.txt", "NUL"))
  it.effect("refuses a backslash", () => refused("@model_path/..\\..\\x.bin", "backslash"))
  it.effect("refuses an empty segment", () => refused("@model_path/weights//w.bin", "empty segment"))
  it.effect("refuses @model_path/ with no file", () => refused("@model_path/", "names no file"))

  it.effect("accepts paths inside the model", () =>
    Effect.gen(function*() {
      for (const path of ["@model_path/weights/weight.bin", "weights/w.bin", "@model_path/./w.bin", "@model_path/a..b/c..bin"]) {
        const o = CompileOptions.mil({ text, weights: [{ path, bytes }] })
        expect(yield* CompileOptions.validate(o)).toBe(o)
      }
    }))

  it("escapes control characters when it names the path", () => {
    const problem = compileProblemMessage("@model_path/\u001b[2J/../x")
    expect(problem).not.toContain("\u001b")
    expect(problem).toContain("\\u001b")
  })

  it("the WeightFile schema refuses the same paths when decoding", () => {
    const decode = Schema.decodeUnknownEither(WeightFile)
    expect(decode({ path: "@model_path/../x.bin", bytes }))
      .toMatchObject({ _tag: "Left" })
    expect(decode({ path: "@model_path/weights/w.bin", bytes })).toMatchObject({ _tag: "Right" })
    expect(Schema.decodeUnknownEither(CompileOptions.schema)({ _tag: "mil", text, weights: [{ path: "/etc/passwd", bytes }] }))
      .toMatchObject({ _tag: "Left" })
  })

  it("weightPathSyntaxProblem is undefined exactly for paths that stay inside", () => {
    expect(weightPathSyntaxProblem("@model_path/weights/w.bin")).toBeUndefined()
    expect(weightPathSyntaxProblem("@model_pathx/../y")).toContain("'..'")
    expect(weightPathSyntaxProblem("")).toContain("empty")
  })
})

const compileProblemMessage = (path: string): string => {
  const exit = Effect.runSyncExit(Effect.flip(CompileOptions.validate(CompileOptions.mil({ text, weights: [{ path, bytes }] }))))
  if (exit._tag !== "Success") throw new Error("expected a typed failure")
  return exit.value.message
}
