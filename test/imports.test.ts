/**
 * Sources import effect's modules one by one (`effect/Effect`, `effect/Schema`, …): the `effect` barrel loads every
 * module of the package, about a third more start-up time for a program that imports this library.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  )

/** `file:line` of each import or re-export of a whole package in `text`. */
const barrelImports = (text: string, file: string, packages: ReadonlyArray<string>): Array<string> =>
  text.split("\n").flatMap((line, i) =>
    packages.some((p) => new RegExp(String.raw`\bfrom\s+["']${p}["']|\bimport\s*\(\s*["']${p}["']\s*\)`).test(line))
      ? [`${file}:${i + 1}`]
      : []
  )

describe("imports", () => {
  it("finds an import of a whole package, so the check below can fail", () => {
    expect(barrelImports(`import { Effect } from "effect"\nimport * as Layer from "effect/Layer"`, "x.ts", ["effect"]))
      .toEqual(["x.ts:1"])
  })

  it("src/ imports effect by module, never the whole package", () => {
    const found = sources(join(root, "src")).flatMap((f) =>
      barrelImports(readFileSync(f, "utf8"), relative(root, f), ["effect"])
    )
    expect(found).toEqual([])
  })
})
