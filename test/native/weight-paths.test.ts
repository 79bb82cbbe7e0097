/**
 * The hardware backend writes a model's files only inside its temp folder `<tmp>/<hex>`, and refuses weight paths
 * (in the options or in the text's BLOBFILEs) that would leave it. Tested over the fake runtime.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { blob as blobOf, scaleBy } from "../weight-path-fixtures.js"
import { CompileOptions, WEIGHT_PATH_OUTSIDE_MODEL } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { attributeOf, checkAfterEach, fakeLayer, loadFake } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** `<base>/tmp` as the backend's temp folder, and `<base>/outside` holding a file that must stay untouched. */
const setup = () => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "native-weight-paths-")))
  dirs.push(base)
  mkdirSync(join(base, "tmp"))
  mkdirSync(join(base, "outside"))
  writeFileSync(join(base, "outside", "keep.txt"), "KEEP")
  return { base, tmp: join(base, "tmp"), outside: join(base, "outside") }
}

/** The files below `dir`, relative, sorted. */
const listing = (dir: string): Array<string> =>
  (readdirSync(dir, { recursive: true }) as Array<string>).sort()

const blob = blobOf([2, 3, 4, 5])

/** The fake's model identifier for `text`: FNV-1a 64 of its bytes, as test/native-fake computes it. */
const hexOf = (text: string): string => {
  let h = 1469598103934665603n
  for (const byte of new TextEncoder().encode(text)) h = ((h ^ BigInt(byte)) * 1099511628211n) & 0xffffffffffffffffn
  return h.toString(16).padStart(16, "0")
}

const compileExit = (options: CompileOptions, tmp?: string) =>
  Effect.gen(function*() {
    const backend = yield* Backend
    return yield* Effect.exit(Effect.scoped(backend.compile(options)))
  }).pipe(Effect.provide(fakeLayer(fake, tmp === undefined ? {} : { tempDir: () => tmp })))

const failureOf = (exit: Exit.Exit<unknown, unknown>) => {
  if (!Exit.isFailure(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a typed failure, got ${String(exit)}`)
  return exit.cause.error as { readonly _tag: string; readonly message: string; readonly diagnostics?: ReadonlyArray<{ code: string }> }
}

const weightsAt = (path: string) => CompileOptions.mil({ text: scaleBy("@model_path/weights/w.bin"), weights: [{ path, bytes: blob }] })

describe("NativeBackend weight paths", () => {
  it.effect("refuses a weight file named @model_path/../../x before writing anything", () =>
    Effect.gen(function*() {
      const { base, tmp } = setup()
      const e = failureOf(yield* compileExit(weightsAt("@model_path/../../x"), tmp))
      expect(e._tag).toBe("InvalidArgumentError")
      expect(e.message).toContain("'..' segment")
      expect(existsSync(join(base, "x"))).toBe(false)
      expect(listing(base)).toEqual(["outside", "outside/keep.txt", "tmp"])
    }))

  it.effect("refuses a BLOBFILE path @model_path/../../x in the text: the native compiler would read outside", () =>
    Effect.gen(function*() {
      const { base, tmp } = setup()
      const path = "@model_path/../../x"
      const options = CompileOptions.mil({ text: scaleBy(path), weights: [{ path: "@model_path/weights/w.bin", bytes: blob }] })
      const e = failureOf(yield* compileExit(options, tmp))
      expect(e._tag).toBe("CompileError")
      expect(e.diagnostics!.map((d) => d.code)).toEqual([WEIGHT_PATH_OUTSIDE_MODEL])
      expect(e.message).toContain(JSON.stringify(path))
      expect(listing(base)).toEqual(["outside", "outside/keep.txt", "tmp"])
    }))

  it.effect("refuses to write through a weights folder planted as a link to outside the temp folder", () =>
    Effect.gen(function*() {
      const { base, tmp, outside } = setup()
      const options = weightsAt("@model_path/weights/w.bin")
      mkdirSync(join(tmp, hexOf(options.text)))
      symlinkSync(outside, join(tmp, hexOf(options.text), "weights"))
      const e = failureOf(yield* compileExit(options, tmp))
      expect(e._tag).toBe("CompileError")
      expect(e.diagnostics!.map((d) => d.code)).toEqual([WEIGHT_PATH_OUTSIDE_MODEL])
      expect(listing(outside)).toEqual(["keep.txt"])
      expect(readFileSync(join(outside, "keep.txt"), "utf8")).toBe("KEEP")
      expect(existsSync(join(base, "w.bin"))).toBe(false)
    }))

  it.effect("refuses to write through a weight file planted as a link to a file outside", () =>
    Effect.gen(function*() {
      const { tmp, outside } = setup()
      const options = weightsAt("@model_path/weights/w.bin")
      mkdirSync(join(tmp, hexOf(options.text), "weights"), { recursive: true })
      symlinkSync(join(outside, "keep.txt"), join(tmp, hexOf(options.text), "weights", "w.bin"))
      const e = failureOf(yield* compileExit(options, tmp))
      expect(e._tag).toBe("CompileError")
      expect(readFileSync(join(outside, "keep.txt"), "utf8")).toBe("KEEP")
    }))

  it.effect("refuses to write model.mil through a link planted in its place", () =>
    Effect.gen(function*() {
      const { tmp, outside } = setup()
      const options = weightsAt("@model_path/weights/w.bin")
      mkdirSync(join(tmp, hexOf(options.text)))
      symlinkSync(join(outside, "keep.txt"), join(tmp, hexOf(options.text), "model.mil"))
      const e = failureOf(yield* compileExit(options, tmp))
      expect(e._tag).toBe("CompileError")
      expect(readFileSync(join(outside, "keep.txt"), "utf8")).toBe("KEEP")
    }))

  it.effect("compiles weights named inside the model, nested folders included", () =>
    Effect.gen(function*() {
      const text = scaleBy("@model_path/weights/w.bin")
      const sim = yield* SimBackend.make({ latency: "off", rules: "off" })
      const simModel = yield* sim.compile(CompileOptions.mil({ text, weights: [{ path: "@model_path/weights/w.bin", bytes: blob }] }))
      fake.setAttributes({ inputs: simModel.inputs.map(attributeOf), outputs: simModel.outputs.map(attributeOf) })
      yield* Effect.addFinalizer(() => Effect.sync(() => fake.setAttributes(undefined)))
      const options = CompileOptions.mil({
        text,
        weights: [{ path: "@model_path/weights/w.bin", bytes: blob }, { path: "@model_path/extra/./deep/e.bin", bytes: blob }]
      })
      const exit = yield* Effect.exit(Effect.scoped(Effect.flatMap(Backend, (b) => b.compile(options)))
        .pipe(Effect.provide(fakeLayer(fake))))
      expect(Exit.isSuccess(exit), String(exit)).toBe(true)
    }).pipe(Effect.scoped))
})
