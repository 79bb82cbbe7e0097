/** Every `weights/weight.bin` of the corpus reads back consistently with the BLOBFILE references of its `model.mil`. */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { blobReferences, checkProgramBlobs, decodeBlob, readBlobAt, readBlobFile, writeBlobFile } from "../../src/mil/blob.js"
import { parse } from "../../src/mil/parser.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"
import { corpusDir, corpusPath, weightFiles as corpusWeightFiles } from "../corpus/corpus.js"

const weightFiles = corpusWeightFiles().map(corpusPath)

describe("corpus weight files", () => {
  it("finds the corpus weight files", () => {
    expect(weightFiles.length).toBeGreaterThanOrEqual(16)
  })

  it("reports a missing weight file and a mismatching record as positioned diagnostics", () => {
    const file = weightFiles[0]!
    const text = fs.readFileSync(path.join(path.dirname(file), "..", "model.mil"), "utf8")
    const { program } = parse(text)
    const missing = checkProgramBlobs(program!, [])
    expect(missing.length).toBe(blobReferences(program!).length)
    expect(missing[0]!.code).toBe("blob-missing-file")
    expect(missing[0]!.line).toBeGreaterThan(0)
    const bytes = new Uint8Array(fs.readFileSync(file))
    const first = blobReferences(program!)[0]!
    bytes[Number(first.offset)] = 0 // break one sentinel
    const broken = checkProgramBlobs(program!, [{ path: first.path, bytes }], "model.mil")
    expect(broken.length).toBeGreaterThanOrEqual(1)
    expect(broken[0]!.code).toBe("blob-mismatch")
    expect(broken[0]!.message).toContain(`offset ${first.offset}`)
    expect(broken[0]!.file).toBe("model.mil")
  })

  for (const file of weightFiles) {
    const rel = path.relative(corpusDir, file)
    it(`${rel} matches its model.mil`, () => {
      const bytes = new Uint8Array(fs.readFileSync(file))
      const text = fs.readFileSync(path.join(path.dirname(file), "..", "model.mil"), "utf8")
      const parsed = readBlobFile(bytes)
      if (parsed instanceof InvalidArgumentError) throw new Error(parsed.message)
      const { program, diagnostics } = parse(text, { file: rel })
      expect(diagnostics).toEqual([])
      const refs = blobReferences(program!)
      // A textual count guards the walk over the syntax tree (no reference may be missed).
      expect(refs.length).toBe(text.split("BLOBFILE(").length - 1)
      expect(checkProgramBlobs(program!, [{ path: "@model_path/weights/weight.bin", bytes }], rel)).toEqual([])
      const referenced = new Set<number>()
      for (const ref of refs) {
        expect(ref.path).toBe("@model_path/weights/weight.bin")
        const t = ref.type
        if (t.kind !== "tensor" || t.shape === null) throw new Error(`${rel}: BLOBFILE of non-tensor type`)
        const elements = t.shape.reduce<number>((n, d) => n * (typeof d === "number" ? d : NaN), 1)
        const data = readBlobAt(bytes, ref.offset, { dtype: t.dtype, elements })
        if (data instanceof InvalidArgumentError) throw new Error(`${rel} offset ${ref.offset}: ${data.message}`)
        expect(decodeBlob(data).length).toBe(elements)
        referenced.add(Number(ref.offset))
      }
      // Every record is referenced, and the records tile the file with no tail padding.
      expect(new Set(parsed.records.map((r) => r.offset))).toEqual(referenced)
      const last = parsed.records[parsed.records.length - 1]!
      expect(last.dataOffset + last.sizeBytes).toBe(bytes.length)
      // Rewriting the same blobs with our writer reproduces Apple's file byte for byte.
      const again = writeBlobFile(parsed.records.map((r) => ({
        dtype: r.dtype,
        bytes: bytes.subarray(r.dataOffset, r.dataOffset + r.sizeBytes),
        elements: r.elements
      })))
      if (again instanceof InvalidArgumentError) throw new Error(again.message)
      expect(again.offsets).toEqual(parsed.records.map((r) => r.offset))
      expect(Buffer.compare(Buffer.from(again.bytes), Buffer.from(bytes))).toBe(0)
    })
  }
})
