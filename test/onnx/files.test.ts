/**
 * Reading ONNX files: only regular files are read (a FIFO, device or directory is a typed error, with no wait), and
 * external data stays inside the model's folder, `..` and symbolic links included.
 */
import { create, fromBinary } from "@bufbuild/protobuf"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ModelProtoSchema, type TensorProto, TensorProtoSchema } from "onnx-buf"
import * as Onnx from "../../src/onnx/Onnx.js"
import { readRegularFileSync } from "../../src/onnx/read.js"
import { ImportError } from "../../src/schema/errors.js"
import { modelBytes } from "./graph.js"
import { compileImported, simulator } from "./run.js"

const weights = Float32Array.of(0.5, -1, 2, 4, 0.25, 3, -2, 1)

/** y = x · w with `w` an external-data initializer at `location` (offset 8: the first two floats are padding). */
const externalModel = (location: string): Uint8Array => {
  const w: TensorProto = create(TensorProtoSchema, {
    name: "w", dims: [6n], dataType: 1, dataLocation: 1,
    externalData: [{ key: "location", value: location }, { key: "offset", value: "8" }, { key: "length", value: "24" }]
  })
  const bytes = modelBytes({
    inputs: [{ name: "x", shape: [1, 6] }], outputs: [{ name: "y" }],
    nodes: [{ op: "Mul", inputs: ["x", "w"], outputs: ["y"] }], initializers: [w]
  })
  // The external-data fields survive serialisation (else the test would read inline data).
  expect(fromBinary(ModelProtoSchema, bytes).graph!.initializer[0]!.dataLocation).toBe(1)
  return bytes
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "onnx-files-"))

const importError = (file: string) =>
  Effect.flip(Onnx.importFile(file)).pipe(Effect.map((e) => {
    expect(e).toBeInstanceOf(ImportError)
    return e
  }))

describe("ONNX external data", () => {
  it.scoped("reads the declared range of a file beside the model", () =>
    Effect.gen(function*() {
      const dir = tmp()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.mkdirSync(path.join(dir, "data"))
      fs.writeFileSync(path.join(dir, "data", "w.bin"), weights)
      fs.writeFileSync(path.join(dir, "model.onnx"), externalModel("data/w.bin"))
      const imported = yield* Onnx.importFile(path.join(dir, "model.onnx"))
      const { run } = yield* compileImported(imported)
      const x = Float32Array.of(1, 1, 1, 1, 1, 1)
      expect((yield* run({ x }, ["y"]))["y"]).toEqual(weights.subarray(2))
    }).pipe(Effect.provide(simulator("exact"))))

  it.scoped("follows a symbolic link that stays inside the folder", () =>
    Effect.gen(function*() {
      const dir = tmp()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(dir, "real.bin"), weights)
      fs.symlinkSync("real.bin", path.join(dir, "link.bin"))
      fs.writeFileSync(path.join(dir, "model.onnx"), externalModel("link.bin"))
      const imported = yield* Onnx.importFile(path.join(dir, "model.onnx"))
      expect(imported.metadata.inputs[0]!.onnxName).toBe("x")
    }))

  it.scoped("refuses `..`, absolute paths and links that leave the folder, naming the location", () =>
    Effect.gen(function*() {
      const outside = tmp()
      const dir = path.join(outside, "model")
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(outside, { recursive: true, force: true })))
      fs.mkdirSync(dir)
      fs.writeFileSync(path.join(outside, "secret.bin"), weights)
      fs.symlinkSync(path.join(outside, "secret.bin"), path.join(dir, "escape.bin"))
      fs.symlinkSync(outside, path.join(dir, "up"))
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["../secret.bin", "'..'"],
        ["data/../../secret.bin", "'..'"],
        [path.join(outside, "secret.bin"), "absolute"],
        ["escape.bin", "symbolic link"],
        ["up/secret.bin", "symbolic link"]
      ]
      for (const [location, why] of cases) {
        fs.writeFileSync(path.join(dir, "model.onnx"), externalModel(location))
        const e = yield* importError(path.join(dir, "model.onnx"))
        expect(e.message).toContain(`external data location ${JSON.stringify(location)} is outside the model's folder`)
        expect(e.message).toContain(why)
      }
    }))

  it.scoped("refuses a missing file, a directory, a FIFO and a range past the end, without waiting", () =>
    Effect.gen(function*() {
      const dir = tmp()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.mkdirSync(path.join(dir, "folder"))
      execFileSync("mkfifo", [path.join(dir, "pipe")])
      fs.writeFileSync(path.join(dir, "short.bin"), weights.subarray(0, 4))
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["missing.bin", "does not exist"],
        ["folder", "a directory"],
        ["pipe", "a FIFO"],
        ["short.bin", "outside the file (16 bytes)"]
      ]
      for (const [location, why] of cases) {
        fs.writeFileSync(path.join(dir, "model.onnx"), externalModel(location))
        const e = yield* importError(path.join(dir, "model.onnx"))
        expect(e.message).toContain(`external data file ${JSON.stringify(location)} cannot be read`)
        expect(e.message).toContain(why)
      }
    }))
})

describe("ONNX model files", () => {
  it.scoped("a FIFO, a directory or a missing path is an ImportError, never a wait or a crash", () =>
    Effect.gen(function*() {
      const dir = tmp()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      execFileSync("mkfifo", [path.join(dir, "model.onnx")])
      expect((yield* importError(path.join(dir, "model.onnx"))).message).toContain("a FIFO")
      expect((yield* importError(dir)).message).toContain("a directory")
      expect((yield* importError(path.join(dir, "none.onnx"))).message).toContain("does not exist")
      expect((yield* importError("")).message).toContain("non-empty")
    }))

  it.effect("writePackage does not write through a symbolic link planted in the package folder", () =>
    Effect.gen(function*() {
      const outside = tmp()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(outside, { recursive: true, force: true })))
      const dir = path.join(outside, "pkg")
      fs.mkdirSync(dir)
      fs.writeFileSync(path.join(outside, "victim.txt"), "keep")
      fs.symlinkSync(path.join(outside, "victim.txt"), path.join(dir, "metadata.json"))
      const imported = yield* Onnx.importBytes(modelBytes({
        inputs: [{ name: "x", shape: [1, 4] }], outputs: [{ name: "y" }], nodes: [{ op: "Relu", inputs: ["x"], outputs: ["y"] }]
      }))
      const e = yield* Effect.flip(Onnx.writePackage(imported, dir))
      expect(e).toBeInstanceOf(ImportError)
      expect(e.message).toContain(`cannot write the package to ${dir}`)
      expect(fs.readFileSync(path.join(outside, "victim.txt"), "utf8")).toBe("keep")
      // Without the link, the package is written.
      fs.unlinkSync(path.join(dir, "metadata.json"))
      yield* Onnx.writePackage(imported, dir)
      expect(fs.readFileSync(path.join(dir, "model.mil"), "utf8")).toBe(imported.text)
    }).pipe(Effect.scoped))

  it("readRegularFileSync caps what it reads and checks the range", () => {
    const dir = tmp()
    try {
      const f = path.join(dir, "f.bin")
      fs.writeFileSync(f, new Uint8Array(100).fill(7))
      expect(readRegularFileSync(f, 100)).toEqual(new Uint8Array(100).fill(7))
      expect(readRegularFileSync(f, 99)).toContain("exceed the limit of 99 bytes")
      expect(readRegularFileSync(f, 100, { offset: 90, length: 10 })).toEqual(new Uint8Array(10).fill(7))
      expect(readRegularFileSync(f, 100, { offset: 90, length: 11 })).toContain("outside the file (100 bytes)")
      expect(readRegularFileSync(f, 100, { offset: 101, length: undefined })).toContain("outside the file")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
