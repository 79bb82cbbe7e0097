/**
 * Robustness: 5 000 random mutations of corpus files (50 000 in `npm run test:full`) never throw, and every
 * diagnostic points inside the text.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { equalIgnoringPositions } from "../../src/mil/ast.js"
import { parse } from "../../src/mil/parser.js"
import { print } from "../../src/mil/printer.js"
import { corpusPath, full, milFiles } from "../corpus/corpus.js"

/** Small deterministic PRNG (mulberry32) so a failure can be replayed from its index. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const alphabet = "(){}[]<>,;=-?*\"\\ \n\t.0123456789xpe+abcz_@é"

/** Token-ish spans: runs of identifier characters, or single other characters. */
const spans = (s: string): Array<[number, number]> => {
  const out: Array<[number, number]> = []
  const re = /[A-Za-z0-9_.]+|\S/g
  for (let m = re.exec(s); m !== null; m = re.exec(s)) out.push([m.index, m.index + m[0].length])
  return out
}

const mutate = (s: string, r: () => number): string => {
  const n = s.length
  const at = () => Math.floor(r() * (n + 1))
  const ch = () => alphabet[Math.floor(r() * alphabet.length)]!
  const pick = (k: number) => Math.floor(r() * k)
  switch (pick(8)) {
    case 0: { // delete a char
      const i = at()
      return s.slice(0, i) + s.slice(i + 1)
    }
    case 1: { // insert a char
      const i = at()
      return s.slice(0, i) + ch() + s.slice(i)
    }
    case 2: { // duplicate a range
      const i = at()
      const j = Math.min(n, i + pick(40))
      return s.slice(0, j) + s.slice(i, j) + s.slice(j)
    }
    case 3: { // swap adjacent chars
      const i = Math.min(at(), n - 2)
      return i < 0 ? s : s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2)
    }
    case 4: { // delete a token
      const t = spans(s)
      if (t.length === 0) return s
      const [a, b] = t[pick(t.length)]!
      return s.slice(0, a) + s.slice(b)
    }
    case 5: { // swap two tokens
      const t = spans(s)
      if (t.length < 2) return s
      let [x, y] = [t[pick(t.length)]!, t[pick(t.length)]!]
      if (x[0] > y[0]) [x, y] = [y, x]
      if (x[1] > y[0]) return s
      return s.slice(0, x[0]) + s.slice(y[0], y[1]) + s.slice(x[1], y[0]) + s.slice(x[0], x[1]) + s.slice(y[1])
    }
    case 6: // truncate
      return s.slice(0, at())
    default: { // several small edits at once
      let t = s
      for (let k = 0; k < 3; k++) {
        const i = Math.floor(r() * (t.length + 1))
        t = t.slice(0, i) + ch() + t.slice(i + 1)
      }
      return t
    }
  }
}

/** Throws (failing the test) when the result is inconsistent or a diagnostic points outside the text. */
const check = (text: string, label: string): "ok" | "error" => {
  let result: ReturnType<typeof parse>
  try {
    result = parse(text)
  } catch (e) {
    throw new Error(`${label}: parse threw ${String(e)}`)
  }
  const lines = text.split("\n")
  if (result.program !== null) {
    if (result.diagnostics.length !== 0) throw new Error(`${label}: program together with diagnostics`)
    const again = parse(print(result.program)).program
    if (!equalIgnoringPositions(again, result.program)) throw new Error(`${label}: mutated program did not round-trip`)
    return "ok"
  }
  if (result.diagnostics.length === 0) throw new Error(`${label}: no program and no diagnostics`)
  for (const d of result.diagnostics) {
    const line = lines[d.line - 1]
    if (line === undefined || d.col < 1 || d.col > line.length + 1) {
      throw new Error(`${label}: diagnostic at ${d.line}:${d.col} outside the text (${lines.length} lines): ${d.message}`)
    }
    if (d.kind !== "syntax" || d.message.length === 0) throw new Error(`${label}: malformed diagnostic`)
  }
  return "error"
}

describe("mutation robustness", () => {
  const files = milFiles().map((f) => readFileSync(corpusPath(f), "utf8"))
  const small = files.filter((t) => t.length <= 8_000)
  const medium = files.filter((t) => t.length > 8_000 && t.length <= 40_000)
  // Batches of 1 000, one test each, so no test holds its worker for long; each batch has its own seed.
  const batches = full ? 50 : 5

  it("finds small and medium corpus files to mutate", () => {
    expect(small.length).toBeGreaterThan(10)
    expect(medium.length).toBeGreaterThan(0)
  })

  for (let batch = 0; batch < batches; batch++) {
    it(`batch ${batch}: 1 000 mutated corpus files give a program or in-range diagnostics, never an exception`, () => {
      const r = rng(20261127 + batch)
      const counts = { ok: 0, error: 0 }
      for (let i = 0; i < 1_000; i++) {
        const pool = i % 20 === 0 ? medium : small
        const src = pool[Math.floor(r() * pool.length)]!
        let text = mutate(src, r)
        if (i % 5 === 0) text = mutate(text, r)
        counts[check(text, `batch ${batch} mutation #${i}`)]++
      }
      // Both outcomes occur: whitespace-only edits still parse, most edits do not.
      expect(counts.ok).toBeGreaterThan(10)
      expect(counts.error).toBeGreaterThan(500)
    })
  }

  it("random garbage and every truncation of a small file are handled", () => {
    const r = rng(7)
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(r() * 200)
      let s = ""
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(r() * alphabet.length)]
      check(s, `garbage #${i}`)
    }
    const src = small[0]!
    for (let i = 0; i <= src.length; i++) check(src.slice(0, i), `truncation at ${i}`)
  })
})
