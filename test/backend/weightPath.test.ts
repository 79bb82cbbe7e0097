/** resolveInside and the BLOBFILE scanner: weight paths resolve inside their model's root after realpath. */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import {
  blobFilePaths, checkBlobFilePaths, resolveInside, WEIGHT_PATH_OUTSIDE_MODEL, writeFileNoFollow
} from "../../src/backend/weightPath.js"
import { CompileError } from "../../src/schema/errors.js"

const dirs: Array<string> = []
const tempDir = () => {
  const d = realpathSync(mkdtempSync(join(tmpdir(), "weight-path-")))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A model folder `<base>/model` with weights/w.bin, and a secret file `<base>/secret/secret.bin` beside it. */
const layout = () => {
  const base = tempDir()
  const root = join(base, "model")
  mkdirSync(join(root, "weights"), { recursive: true })
  writeFileSync(join(root, "weights", "w.bin"), "weights")
  mkdirSync(join(base, "secret"))
  writeFileSync(join(base, "secret", "secret.bin"), "TOP-SECRET")
  return { base, root }
}

const refusal = (r: string | CompileError, path: string) => {
  expect(r).toBeInstanceOf(CompileError)
  const e = r as CompileError
  expect(e.diagnostics[0]!.code).toBe(WEIGHT_PATH_OUTSIDE_MODEL)
  expect(e.message).toContain(JSON.stringify(path))
  expect(e.message).not.toContain("TOP-SECRET")
  return e
}

describe("resolveInside", () => {
  it("resolves a path inside the root to its real absolute path", () => {
    const { root } = layout()
    expect(resolveInside(root, "@model_path/weights/w.bin")).toBe(join(root, "weights", "w.bin"))
    expect(resolveInside(root, "weights/w.bin")).toBe(join(root, "weights", "w.bin"))
  })

  it("resolves a file that does not exist yet to where it would be created", () => {
    const { root } = layout()
    expect(resolveInside(root, "@model_path/new/dir/w.bin")).toBe(join(root, "new", "dir", "w.bin"))
  })

  it("refuses '..' escapes without touching the target", () => {
    const { root } = layout()
    refusal(resolveInside(root, "@model_path/../secret/secret.bin"), "@model_path/../secret/secret.bin")
    refusal(resolveInside(root, "@model_path/weights/../../secret/secret.bin"), "@model_path/weights/../../secret/secret.bin")
  })

  it("refuses absolute paths and NUL", () => {
    const { root, base } = layout()
    refusal(resolveInside(root, join(base, "secret", "secret.bin")), join(base, "secret", "secret.bin"))
    refusal(resolveInside(root, "@model_path/weights/w.bin\0"), "@model_path/weights/w.bin\0")
  })

  it("refuses a file that is a symbolic link to outside the root", () => {
    const { root, base } = layout()
    symlinkSync(join(base, "secret", "secret.bin"), join(root, "weights", "link.bin"))
    const e = refusal(resolveInside(root, "@model_path/weights/link.bin"), "@model_path/weights/link.bin")
    expect(e.message).toContain("symbolic link")
  })

  it("refuses a folder that is a symbolic link to outside the root", () => {
    const { root, base } = layout()
    symlinkSync(join(base, "secret"), join(root, "leak"))
    refusal(resolveInside(root, "@model_path/leak/secret.bin"), "@model_path/leak/secret.bin")
    // Also for a file that is not there yet: writing it would land outside.
    refusal(resolveInside(root, "@model_path/leak/new.bin"), "@model_path/leak/new.bin")
  })

  it("refuses a dangling symbolic link (it would be followed once its target appears)", () => {
    const { root, base } = layout()
    symlinkSync(join(base, "secret", "later.bin"), join(root, "weights", "later.bin"))
    refusal(resolveInside(root, "@model_path/weights/later.bin"), "@model_path/weights/later.bin")
  })

  it("allows symbolic links that stay inside the root", () => {
    const { root } = layout()
    symlinkSync(join(root, "weights", "w.bin"), join(root, "alias.bin"))
    symlinkSync("weights", join(root, "w2"))
    expect(resolveInside(root, "@model_path/alias.bin")).toBe(join(root, "weights", "w.bin"))
    expect(resolveInside(root, "@model_path/w2/w.bin")).toBe(join(root, "weights", "w.bin"))
  })

  it("resolves against the real root when the root itself is a link", () => {
    const { root, base } = layout()
    symlinkSync(root, join(base, "model-link"))
    expect(resolveInside(join(base, "model-link"), "@model_path/weights/w.bin")).toBe(join(root, "weights", "w.bin"))
  })

  it("names the site in the error", () => {
    const { root } = layout()
    const e = refusal(resolveInside(root, "../x", { op: "compile", model: "m", file: "m.mil", line: 3, col: 7 }), "../x")
    expect(e.model).toBe("m")
    expect(e.diagnostics[0]).toMatchObject({ file: "m.mil", line: 3, col: 7 })
  })
})

describe("blobFilePaths / checkBlobFilePaths", () => {
  const text = (path: string) => `program(1.3)
{
  func main<ios18>() {
    tensor<fp16, [1]> w = const()[name = string("w"), val = tensor<fp16, [1]>(BLOBFILE(path = string("${path}"), offset = uint64(64)))];
  } -> (w);
}`

  it("finds every BLOBFILE path with its position", () => {
    const found = blobFilePaths(text("@model_path/weights/w.bin") + "\n" + text("@model_path/b.bin"))
    expect(found.map((b) => b.path)).toEqual(["@model_path/weights/w.bin", "@model_path/b.bin"])
    expect(found[0]).toMatchObject({ line: 4 })
    expect(checkBlobFilePaths(text("@model_path/weights/w.bin"))).toBeUndefined()
  })

  it("ignores strings outside BLOBFILE", () => {
    expect(blobFilePaths(`tensor<string, []> s = const()[name = string("../x"), val = string("/etc/passwd")];`)).toEqual([])
  })

  it("refuses escapes, absolute paths and escaped characters", () => {
    for (const path of ["@model_path/../../x", "/etc/passwd", "@model_path/\\x2e\\x2e/x", "@model_path/w\\0"]) {
      const e = checkBlobFilePaths(text(path), { model: "m" })
      expect(e, path).toBeInstanceOf(CompileError)
      expect(e!.diagnostics[0]!.code).toBe(WEIGHT_PATH_OUTSIDE_MODEL)
      expect(e!.diagnostics[0]!.line).toBe(4)
    }
  })
})

describe("writeFileNoFollow", () => {
  it("refuses to write through a symbolic link planted at the file", () => {
    const { root, base } = layout()
    symlinkSync(join(base, "secret", "secret.bin"), join(root, "weights", "planted.bin"))
    expect(() => writeFileNoFollow(join(root, "weights", "planted.bin"), new Uint8Array([1, 2, 3]))).toThrow()
    expect(readFileSync(join(base, "secret", "secret.bin"), "utf8")).toBe("TOP-SECRET")
    writeFileNoFollow(join(root, "weights", "plain.bin"), new Uint8Array([1, 2, 3]))
    expect(realpathSync(join(root, "weights", "plain.bin"))).toBe(join(root, "weights", "plain.bin"))
  })
})
