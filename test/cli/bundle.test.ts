/**
 * The published `ane` is one bundled module (scripts/bundle-cli.mjs, run by `npm run build`): it must run with no
 * package but koffi beside it, so a library user installs none of the command's own dependencies.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { builtinModules } from "node:module"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { root } from "./harness.js"

const out = join(root, "tmp", "test-bundle-cli")

const node = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, NO_COLOR: "1" } })
    let stdout = "", stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })

/** Module names the bundle loads at run time: static and dynamic imports and require calls. */
const loadedNames = (code: string): Array<string> => {
  const names = new Set<string>()
  const name = String.raw`"((?:@[\w.-]+\/)?\w[\w.:-]*(?:\/[\w.-]+)*)"`
  for (const re of [String.raw`\bfrom\s*${name}`, String.raw`\bimport\s*\(\s*${name}\s*\)`, String.raw`\brequire\s*\(\s*${name}\s*\)`, String.raw`\bimport\s*${name}`]) {
    for (const m of code.matchAll(new RegExp(re, "g"))) names.add(m[1]!)
  }
  return [...names]
}

const builtins = new Set(builtinModules)
const allowed = (name: string) => name === "koffi" || name.startsWith("node:") || builtins.has(name)

describe("bundled ane", () => {
  it("finds the module names a bundle loads, so the check below can fail", () => {
    expect(loadedNames(`import{a}from"@effect/cli";const b=require("node:fs");import("yaml")`).filter((n) => !allowed(n)))
      .toEqual(["@effect/cli", "yaml"])
  })

  it("loads only koffi and Node's own modules, and answers probe, run and --help", { timeout: 120_000 }, async () => {
    rmSync(out, { recursive: true, force: true })
    mkdirSync(out, { recursive: true })
    const built = await node([join(root, "scripts", "bundle-cli.mjs"), out])
    expect(built.stderr).toBe("")
    expect(built.code).toBe(0)
    const main = join(out, "cli", "main.js")
    expect(loadedNames(readFileSync(main, "utf8")).filter((n) => !allowed(n))).toEqual([])

    const probe = await node([main, "probe", "--backend", "simulator", "--json"])
    expect(probe.code).toBe(0)
    expect(JSON.parse(probe.stdout)).toMatchObject({ ok: true, backend: "simulator" })

    const run = await node([main, "run", "examples/linear.mil", "--backend", "simulator", "--json"])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, backend: "simulator" })

    const help = await node([main, "run", "--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("--backend")
    expect(help.stdout).not.toMatch(/\u001b\[/)

    const usage = await node([main, "probe", "--backend", "nope", "--json"])
    expect(usage.code).toBe(2)
    expect(JSON.parse(usage.stdout)).toMatchObject({ ok: false, exitCode: 2 })
    rmSync(out, { recursive: true, force: true })
  })
})
