/** Conformance: every corpus `.mil` type-checks with no errors, and its ANE findings match the reviewed snapshot. */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync, statSync } from "node:fs"
import { check, TypeCodes } from "../../src/mil/check.js"
import { parse } from "../../src/mil/parser.js"
import { validate } from "../../src/mil/validate.js"
import { corpusPath, isBundledCorpus, milFiles } from "../corpus/corpus.js"

const files = milFiles()
const findings: Record<string, Array<string>> = {}

describe("corpus type-check", () => {
  it("finds the corpus", () => {
    // test/corpus holds 56 programs (see its NOTICE.md); MIL_CORPUS may name a larger set.
    expect(files.length).toBeGreaterThanOrEqual(56)
  })
  describe.each(files.map((f) => [f]))("%s", (rel) => {
    it("checks with zero errors, knows every op, and types every output", () => {
      const parsed = parse(readFileSync(corpusPath(rel), "utf8"), { file: rel })
      expect(parsed.diagnostics).toEqual([])
      const program = parsed.program!
      const result = check(program, { file: rel })
      expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([])
      expect(result.diagnostics.filter((d) => d.code === TypeCodes.unknownOp)).toEqual([])
      for (const fn of program.functions) {
        const types = result.functions.get(fn.name)!
        for (const out of fn.body.outputs) expect(types.types.has(out)).toBe(true)
      }
      findings[rel] = validate(program, { checked: result }).map((d) =>
        `${d.line}:${d.col} ${d.severity} ${d.code} ${d.message}`)
    })
  })
  it("notices a changed output dim for every op type of the corpus (inference really runs)", () => {
    // For each op type, its first occurrence in the smallest file that has it: grow the declared last dim by 1.
    const bySize = [...files].sort((a, b) => statSync(corpusPath(a)).size - statSync(corpusPath(b)).size)
    const done = new Set<string>()
    let tried = 0
    for (const rel of bySize) {
      const text = readFileSync(corpusPath(rel), "utf8")
      const lines = text.split("\n")
      for (const op of parse(text).program!.functions[0].body.operations) {
        const out = op.outputs[0]
        if (op.op === "const" || done.has(op.op) || out === undefined) continue
        const seg = lines[out.pos.line - 1].slice(out.pos.col - 1)
        const m = /^tensor<(\w+),\s*\[([^\]]*\d)\]>/.exec(seg)
        if (!m) continue
        const dims = m[2].split(",").map((d) => d.trim())
        dims[dims.length - 1] = String(Number(dims[dims.length - 1]) + 1)
        const mutated = [...lines]
        mutated[out.pos.line - 1] = lines[out.pos.line - 1].slice(0, out.pos.col - 1) +
          `tensor<${m[1]}, [${dims.join(", ")}]>` + seg.slice(m[0].length)
        const r = check(parse(mutated.join("\n")).program!)
        expect(r.diagnostics.filter((d) => d.severity === "error" && d.line === out.pos.line).length,
          `${op.op} in ${rel}`).toBeGreaterThan(0)
        done.add(op.op)
        tried++
      }
    }
    expect(tried).toBeGreaterThanOrEqual(40)
  })
  it("ANE findings match the reviewed snapshot", async () => {
    const ordered = Object.fromEntries(files.map((f) => [f, findings[f] ?? []]))
    if (isBundledCorpus) {
      // One entry per file, in walk order; new corpus files add entries to review.
      await expect(JSON.stringify(ordered, null, 1) + "\n").toMatchFileSnapshot("check-corpus.findings.json")
      return
    }
    // A larger MIL_CORPUS: the files the snapshot knows keep their reviewed findings.
    const reviewed: Record<string, Array<string>> = JSON.parse(
      readFileSync(new URL("check-corpus.findings.json", import.meta.url), "utf8"))
    const known = files.filter((f) => f in reviewed)
    expect(Object.fromEntries(known.map((f) => [f, ordered[f]]))).toEqual(
      Object.fromEntries(known.map((f) => [f, reviewed[f]])))
  })
})
