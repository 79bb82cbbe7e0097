/** The simulator reads a package's weights only from inside the package, after realpath (docs/security.md). */
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Scope } from "effect"
import { CompileOptions, WEIGHT_PATH_OUTSIDE_MODEL } from "../../src/schema/CompileOptions.js"
import type { CompileError } from "../../src/schema/errors.js"
import { packSurface, unpackSurface } from "../../src/sim/layout.js"
import * as Sim from "../../src/sim/SimBackend.js"
import { blob, SECRET_VALUES, scaleBy } from "../weight-path-fixtures.js"
import { views } from "./helpers.js"

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** `<base>/secret/secret.bin` (a blob of SECRET_VALUES) and a package `<base>/pkg/m.mlmodelc` naming `path`. */
const setup = (path: string) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "sim-weight-paths-")))
  dirs.push(base)
  mkdirSync(join(base, "secret"))
  writeFileSync(join(base, "secret", "secret.bin"), blob(SECRET_VALUES))
  const pkg = join(base, "pkg", "m.mlmodelc")
  mkdirSync(join(pkg, "weights"), { recursive: true })
  writeFileSync(join(pkg, "model.mil"), scaleBy(path))
  return { base, pkg }
}

const compile = (options: CompileOptions) =>
  Effect.gen(function*() {
    const backend = yield* Sim.make({ latency: "off", rules: "off" })
    const scope = yield* Scope.make()
    const exit = yield* Effect.exit(backend.compile(options).pipe(Scope.extend(scope)))
    yield* Scope.close(scope, exit)
    return exit
  }).pipe(Effect.scoped)

const refused = (options: CompileOptions, path: string) =>
  Effect.gen(function*() {
    const exit = yield* compile(options)
    expect(exit._tag, "the compile must fail").toBe("Failure")
    if (exit._tag !== "Failure" || exit.cause._tag !== "Fail") throw new Error("expected a typed failure")
    const e = exit.cause.error as CompileError
    expect(e._tag).toBe("CompileError")
    expect(e.diagnostics.map((d) => d.code)).toContain(WEIGHT_PATH_OUTSIDE_MODEL)
    expect(e.message).toContain(JSON.stringify(path))
    for (const v of SECRET_VALUES) expect(e.message).not.toContain(String(v))
  })

/** Runs the package on ones and returns the four per-channel scales it applied. */
const scales = (pkg: string) =>
  Effect.gen(function*() {
    const backend = yield* Sim.make({ latency: "off", rules: "off" })
    const m = yield* backend.compile(CompileOptions.package({ path: pkg }))
    packSurface(m.inputs[0]!, new Float32Array(128).fill(1), views(m.request.inputs[0]!))
    yield* m.request.eval
    const y = new Float32Array(128)
    unpackSurface(m.outputs[0]!, views(m.request.outputs[0]!), y)
    return [y[0], y[32], y[64], y[96]]
  }).pipe(Effect.scoped)

describe("SimBackend package weight paths", () => {
  it.effect("refuses a BLOBFILE path with '..' that reaches a blob outside the package", () => {
    const path = "@model_path/../../secret/secret.bin"
    return refused(CompileOptions.package({ path: setup(path).pkg }), path)
  })

  it.effect("refuses an absolute BLOBFILE path", () => {
    const dummy = setup("x")
    const path = join(dummy.base, "secret", "secret.bin")
    writeFileSync(join(dummy.pkg, "model.mil"), scaleBy(path))
    return refused(CompileOptions.package({ path: dummy.pkg }), path)
  })

  it.effect("refuses a NUL in a BLOBFILE path", () => {
    const { pkg } = setup("@model_path/weights/w.bin\\0")
    return refused(CompileOptions.package({ path: pkg }), "@model_path/weights/w.bin\0")
  })

  it.effect("refuses a weight file that is a symbolic link to outside the package", () => {
    const path = "@model_path/weights/w.bin"
    const { base, pkg } = setup(path)
    symlinkSync(join(base, "secret", "secret.bin"), join(pkg, "weights", "w.bin"))
    return refused(CompileOptions.package({ path: pkg }), path)
  })

  it.effect("refuses a weights folder that is a symbolic link to outside the package", () => {
    const path = "@model_path/weights/secret.bin"
    const { base, pkg } = setup(path)
    rmSync(join(pkg, "weights"), { recursive: true })
    symlinkSync(join(base, "secret"), join(pkg, "weights"))
    return refused(CompileOptions.package({ path: pkg }), path)
  })

  it.effect("follows a symbolic link that stays inside the package", () =>
    Effect.gen(function*() {
      const { pkg } = setup("@model_path/weights/w.bin")
      mkdirSync(join(pkg, "store"))
      writeFileSync(join(pkg, "store", "real.bin"), blob([2, 3, 4, 5]))
      symlinkSync(join(pkg, "store", "real.bin"), join(pkg, "weights", "w.bin"))
      expect(yield* scales(pkg)).toEqual([2, 3, 4, 5])
    }))

  it.effect("reaches the package through a link to the package itself", () =>
    Effect.gen(function*() {
      const { base, pkg } = setup("@model_path/weights/w.bin")
      writeFileSync(join(pkg, "weights", "w.bin"), blob([2, 3, 4, 5]))
      symlinkSync(pkg, join(base, "alias.mlmodelc"))
      expect(yield* scales(join(base, "alias.mlmodelc"))).toEqual([2, 3, 4, 5])
    }))

  it.effect("does not read a FIFO named as a weight file (only regular files are read)", () =>
    Effect.gen(function*() {
      const { pkg } = setup("@model_path/weights/w.bin")
      const made = spawnSync("mkfifo", [join(pkg, "weights", "w.bin")])
      expect(made.status).toBe(0)
      const exit = yield* compile(CompileOptions.package({ path: pkg }))
      expect(exit._tag).toBe("Failure")
      if (exit._tag === "Failure" && exit.cause._tag === "Fail") {
        expect((exit.cause.error as CompileError).diagnostics.map((d) => d.code)).toContain("SIM-BLOB-MISSING")
      }
    }))
})

describe("SimBackend in-memory weight paths", () => {
  it.effect("refuses a BLOBFILE path with '..' in the text", () => {
    const path = "@model_path/../../secret/secret.bin"
    return refused(CompileOptions.mil({ text: scaleBy(path) }), path)
  })

  it.effect("refuses a weight file named with '..' before compiling", () =>
    Effect.gen(function*() {
      const path = "@model_path/../w.bin"
      const exit = yield* compile(CompileOptions.mil({ text: scaleBy(path), weights: [{ path, bytes: blob([1, 1, 1, 1]) }] }))
      expect(exit._tag).toBe("Failure")
      if (exit._tag === "Failure" && exit.cause._tag === "Fail") expect(exit.cause.error._tag).toBe("InvalidArgumentError")
    }))
})
