/** `compileRequest` reads the program and the weights beside it as regular files of bounded size. */
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { MAX_PROGRAM_BYTES } from "../../src/cli/files.js"
import { compileRequest } from "../../src/cli/run.js"
import { writeBlobFile } from "../../src/mil/blob.js"

const dir = mkdtempSync(join(tmpdir(), "cli-compile-request-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const program = `program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
    tensor<fp16, [1, 4, 1, 1]> s = const()[name = string("s"), val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
    tensor<fp16, [1, 4, 1, 32]> y = mul(x = x, y = s)[name = string("y")];
  } -> (y);
}
`

describe("compileRequest", () => {
  it.effect("a package's model.mil over the program size limit is refused by name, not read", () =>
    Effect.gen(function*() {
      const pkg = join(dir, "big.mlmodelc")
      mkdirSync(pkg)
      // Sparse: no disk is used, but a plain read would load it all.
      writeFileSync(join(pkg, "model.mil"), "")
      truncateSync(join(pkg, "model.mil"), MAX_PROGRAM_BYTES + 1)
      const e = yield* Effect.flip(compileRequest(pkg, Option.none()))
      expect(e._tag).toBe("InvalidArgumentError")
      expect(e.message).toContain(join(pkg, "model.mil"))
      expect(e.message).toContain("at most 256 MiB")
    }))

  it.effect("reads the weight file found beside a .mil, and skips a FIFO in its place without waiting on it", () =>
    Effect.gen(function*() {
      const prog = join(dir, "prog")
      mkdirSync(join(prog, "weights"), { recursive: true })
      writeFileSync(join(prog, "m.mil"), program)
      const blob = writeBlobFile([{ dtype: "fp16", data: [1, 2, 3, 4] }])
      if (!("bytes" in blob)) throw blob
      writeFileSync(join(prog, "weights", "weight.bin"), blob.bytes)
      const req = yield* compileRequest(join(prog, "m.mil"), Option.none())
      expect(req.options._tag === "mil" && req.options.weights.map((w) => [w.path, w.bytes.length]))
        .toEqual([["@model_path/weights/weight.bin", blob.bytes.length]])
      rmSync(join(prog, "weights", "weight.bin"))
      execFileSync("mkfifo", [join(prog, "weights", "weight.bin")])
      const without = yield* compileRequest(join(prog, "m.mil"), Option.none())
      expect(without.options._tag === "mil" && without.options.weights).toEqual([])
    }))
})
