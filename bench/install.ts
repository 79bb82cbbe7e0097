/**
 * What a library user installs: packs this package (its own `prepack` build, run in a staging copy so the working
 * copy's `dist/` is left alone), installs the tarball with `effect` into an empty folder from the npm registry, and
 * compares the size of `node_modules` with that of `effect` installed alone. Target: install_mb ≤ 1.3 × effect_only_mb.
 * `*_mb` is space on disk (allocated blocks, what `du` reports; MB = 1e6 bytes); `*_files_mb` the sum of file sizes,
 * which does not depend on the file system's block size.
 */
import { spawn } from "node:child_process"
import { cpSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { round } from "./harness.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const work = join(root, "tmp", "bench-install")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

const run = (args: ReadonlyArray<string>, cwd: string): Promise<string> =>
  new Promise((done, fail) => {
    const child = spawn(npm, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_fund: "false", npm_config_audit: "false" } })
    let out = "", err = ""
    child.stdout.on("data", (d) => (out += String(d)))
    child.stderr.on("data", (d) => (err += String(d)))
    child.on("error", fail)
    child.on("close", (code) => code === 0 ? done(out) : fail(new Error(`npm ${args.join(" ")} (in ${cwd}) exited ${code}: ${err.slice(-2000)}`)))
  })

interface Size {
  /** Allocated on disk, directories included. */
  disk: number
  /** Sum of the regular files' sizes. */
  files: number
}

/** Size of everything under `dir` (symbolic links are not followed). */
const sizeUnder = (dir: string): Size => {
  const total: Size = { disk: lstatSync(dir).blocks * 512, files: 0 }
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) {
      const inner = sizeUnder(p)
      total.disk += inner.disk
      total.files += inner.files
    } else {
      const st = lstatSync(p)
      total.disk += st.blocks * 512
      if (entry.isFile()) total.files += st.size
    }
  }
  return total
}

const bytesUnder = (dir: string): number => sizeUnder(dir).disk

/** Sizes of the top-level packages in `node_modules` (scoped ones by their full name), largest first. */
const packages = (modules: string): Array<[string, number]> => {
  const out: Array<[string, number]> = []
  for (const entry of readdirSync(modules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue
    const p = join(modules, entry.name)
    if (entry.name.startsWith("@")) {
      for (const inner of readdirSync(p, { withFileTypes: true })) {
        if (inner.isDirectory()) out.push([`${entry.name}/${inner.name}`, bytesUnder(join(p, inner.name))])
      }
    } else out.push([entry.name, bytesUnder(p)])
  }
  return out.sort((a, b) => b[1] - a[1])
}

const freshApp = (name: string): string => {
  const dir = join(work, name)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `bench-${name}`, private: true, type: "module" }))
  return dir
}

export default async (): Promise<Record<string, unknown>> => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    files: ReadonlyArray<string>
    devDependencies: Record<string, string>
  }
  // A staging copy of what `npm pack` reads, with the repository's node_modules for the build tools.
  const stage = join(work, "stage")
  rmSync(stage, { recursive: true, force: true })
  mkdirSync(stage, { recursive: true })
  const copied = ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "scripts", "src", ...pkg.files]
  for (const f of copied) {
    try {
      cpSync(join(root, f), join(stage, f), { recursive: true, filter: (src) => !src.startsWith(join(root, "dist")) })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
    }
  }
  symlinkSync(join(root, "node_modules"), join(stage, "node_modules"), "dir")
  const packed = JSON.parse(await run(["pack", "--json", "--pack-destination", work], stage)) as Array<{ filename: string; size: number; unpackedSize: number }>
  const tarball = join(work, packed[0]!.filename)

  const effect = `effect@${pkg.devDependencies.effect ?? "latest"}`
  const both = freshApp("with-package")
  await run(["install", "--no-package-lock", tarball, effect], both)
  const alone = freshApp("effect-only")
  await run(["install", "--no-package-lock", effect], alone)

  const install = sizeUnder(join(both, "node_modules"))
  const effectOnly = sizeUnder(join(alone, "node_modules"))
  const biggest = packages(join(both, "node_modules")).slice(0, 8)
  return {
    install_mb: round(install.disk / 1e6, 1),
    effect_only_mb: round(effectOnly.disk / 1e6, 1),
    install_vs_effect: round(install.disk / effectOnly.disk, 2),
    target: 1.3,
    install_files_mb: round(install.files / 1e6, 1),
    effect_only_files_mb: round(effectOnly.files / 1e6, 1),
    install_vs_effect_files: round(install.files / effectOnly.files, 2),
    tarball_kb: round(packed[0]!.size / 1e3, 0),
    unpacked_kb: round(packed[0]!.unpackedSize / 1e3, 0),
    packages: packages(join(both, "node_modules")).length,
    largest: biggest.map(([name, bytes]) => `${name} ${round(bytes / 1e6, 1)}`).join(", ")
  }
}
