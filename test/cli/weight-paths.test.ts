/** `ane run` on a loose .mil reads weights only from inside the .mil's folder, after realpath (docs/security.md). */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { compileRequest } from "../../src/cli/run.js"
import { WEIGHT_PATH_OUTSIDE_MODEL } from "../../src/schema/CompileOptions.js"
import { blob, SECRET_VALUES, scaleBy } from "../weight-path-fixtures.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** `<base>/secret/secret.bin` (a blob of SECRET_VALUES) and `<base>/prog/m.mil` naming `path`. */
const setup = (path: string) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "cli-weight-paths-")))
  dirs.push(base)
  mkdirSync(join(base, "secret"))
  writeFileSync(join(base, "secret", "secret.bin"), blob(SECRET_VALUES))
  mkdirSync(join(base, "prog", "weights"), { recursive: true })
  writeFileSync(join(base, "prog", "m.mil"), scaleBy(path))
  return { base, prog: join(base, "prog"), mil: join(base, "prog", "m.mil") }
}

const refused = (mil: string, path: string) =>
  Effect.gen(function*() {
    const e = yield* Effect.flip(compileRequest(mil, Option.none()))
    if (e._tag !== "CompileError") throw new Error(`expected a CompileError, got ${e.message}`)
    expect(e.diagnostics.map((d) => d.code)).toContain(WEIGHT_PATH_OUTSIDE_MODEL)
    expect(e.message).toContain(JSON.stringify(path))
    for (const v of SECRET_VALUES) expect(e.message).not.toContain(String(v))
  })

describe("ane run: weight files beside a loose .mil", () => {
  it.effect("refuses a BLOBFILE path that leaves the .mil's folder with '..'", () => {
    const path = "@model_path/../secret/secret.bin"
    return refused(setup(path).mil, path)
  })

  it.effect("places the diagnostic at the BLOBFILE that names the path", () =>
    Effect.gen(function*() {
      const { base, prog, mil } = setup("@model_path/weights/w.bin")
      symlinkSync(join(base, "secret", "secret.bin"), join(prog, "weights", "w.bin"))
      const e = yield* Effect.flip(compileRequest(mil, Option.none()))
      if (e._tag !== "CompileError") throw new Error(`expected a CompileError, got ${e.message}`)
      expect(e.diagnostics[0]).toMatchObject({ file: mil, line: 5 })
    }))

  it.effect("refuses a weight file that is a symbolic link to outside the folder", () => {
    const { base, prog, mil } = setup("@model_path/weights/w.bin")
    symlinkSync(join(base, "secret", "secret.bin"), join(prog, "weights", "w.bin"))
    return refused(mil, "@model_path/weights/w.bin")
  })

  it.effect("refuses a <name>/ folder beside the .mil that links outside", () => {
    const { base, prog, mil } = setup("@model_path/secret.bin")
    symlinkSync(join(base, "secret"), join(prog, "m"))
    return refused(mil, "m/secret.bin")
  })

  it.effect("reads a weight file through a symbolic link that stays inside the folder", () =>
    Effect.gen(function*() {
      const { prog, mil } = setup("@model_path/weights/w.bin")
      mkdirSync(join(prog, "store"))
      writeFileSync(join(prog, "store", "real.bin"), blob([2, 3, 4, 5]))
      symlinkSync(join(prog, "store", "real.bin"), join(prog, "weights", "w.bin"))
      const req = yield* compileRequest(mil, Option.none())
      if (req.options._tag !== "mil") throw new Error("expected in-memory options")
      expect(req.options.weights.map((w) => w.path)).toEqual(["@model_path/weights/w.bin"])
      expect(req.options.weights[0]!.bytes).toEqual(blob([2, 3, 4, 5]))
    }))

  it("the command refuses it naming the path, without the secret or a stack trace, and exits 1", async () => {
    const path = "@model_path/../secret/secret.bin"
    const { mil, base } = setup(path)
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [join(root, "bin", "ane.js"), "run", mil, "--backend", "simulator", "--output", join(base, "out")],
        { cwd: root })
      let stdout = "", stderr = ""
      child.stdout.on("data", (d) => (stdout += String(d)))
      child.stderr.on("data", (d) => (stderr += String(d)))
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
      child.on("close", (status) => {
        clearTimeout(timer)
        done({ status, stdout, stderr })
      })
    })
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(WEIGHT_PATH_OUTSIDE_MODEL)
    expect(r.stderr).toContain(JSON.stringify(path))
    expect(r.stderr).not.toMatch(/\n\s+at /)
    for (const v of SECRET_VALUES) expect(r.stderr + r.stdout).not.toContain(String(v))
  })
})
