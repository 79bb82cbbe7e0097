/**
 * Start-up cost of the built `ane` command, in CPU seconds of the whole process (user + system, all threads):
 * `ane probe`, `ane run examples/linear.mil` and, as the baseline, `node -e 0`. Targets: probe ≤ 4×, run ≤ 6× the
 * baseline. The CLI is built as `npm run build` builds it, into a private folder (`tmp/bench-startup/`, with a copy of
 * `bin/ane.js` beside it), so a `dist/` in the working copy is neither needed nor overwritten; `--no-build` reuses the
 * last build.
 *
 * Each child is started with `--import` of a small module that writes `process.resourceUsage()` to a file when the
 * process exits, so the figure is the child's own accounting, not a wall clock; the baseline gets the same module.
 */
import { spawn } from "node:child_process"
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { round } from "./harness.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const work = join(root, "tmp", "bench-startup")

interface Outcome {
  readonly code: number | null
  readonly cpuS: number
  readonly wallS: number
  readonly stderr: string
}

const run = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stderr: string }> =>
  new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += String(d)))
    child.on("error", fail)
    child.on("close", (code) => done({ code, stderr }))
  })

const build = async (): Promise<void> => {
  rmSync(join(work, "dist"), { recursive: true, force: true })
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
  // The steps of `npm run build`, into the private folder.
  for (const step of [[tsc, "-p", "tsconfig.build.json", "--outDir", join(work, "dist")], [join(root, "scripts", "bundle-cli.mjs"), join(work, "dist")]]) {
    const { code, stderr } = await run(process.execPath, step)
    if (code !== 0) throw new Error(`build step ${step[0]} failed (${code}): ${stderr.slice(0, 2000)}`)
  }
  mkdirSync(join(work, "bin"), { recursive: true })
  copyFileSync(join(root, "bin", "ane.js"), join(work, "bin", "ane.js"))
}

const probeModule = (): string => {
  const file = join(work, "rusage.mjs")
  writeFileSync(file, [
    `import { writeFileSync } from "node:fs"`,
    `process.on("exit", () => {`,
    `  const u = process.resourceUsage()`,
    `  writeFileSync(process.env.ANE_BENCH_RUSAGE, JSON.stringify({ user: u.userCPUTime, system: u.systemCPUTime }))`,
    `})`,
    ``
  ].join("\n"))
  return pathToFileURL(file).href
}

const measure = async (preload: string, args: ReadonlyArray<string>): Promise<Outcome> => {
  const out = join(work, "rusage.json")
  rmSync(out, { force: true })
  const t0 = process.hrtime.bigint()
  const { code, stderr } = await run(process.execPath, ["--import", preload, ...args], { ...process.env, ANE_BENCH_RUSAGE: out, NO_COLOR: "1" })
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9
  const usage = JSON.parse(readFileSync(out, "utf8")) as { user: number; system: number }
  return { code, cpuS: (usage.user + usage.system) / 1e6, wallS, stderr }
}

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export default async (args: ReadonlyArray<string>): Promise<Record<string, unknown>> => {
  mkdirSync(work, { recursive: true })
  if (!args.includes("--no-build")) await build()
  const preload = probeModule()
  const ane = join(work, "bin", "ane.js")
  const cases = {
    node: ["-e", "0"],
    probe: [ane, "probe"],
    run: [ane, "run", "examples/linear.mil"]
  } as const
  const rounds = 7
  const cpu = { node: [] as Array<number>, probe: [] as Array<number>, run: [] as Array<number> }
  const wall = { node: [] as Array<number>, probe: [] as Array<number>, run: [] as Array<number> }
  const ratios = { probe: [] as Array<number>, run: [] as Array<number> }
  // Interleaved rounds: a busy spell on a shared host slows the baseline and the commands alike.
  for (let r = 0; r < rounds; r++) {
    const got: Partial<Record<keyof typeof cases, Outcome>> = {}
    for (const name of Object.keys(cases) as Array<keyof typeof cases>) {
      const o = await measure(preload, cases[name])
      if (o.code !== 0) throw new Error(`${name} exited with ${o.code}: ${o.stderr.slice(0, 500)}`)
      got[name] = o
      cpu[name].push(o.cpuS)
      wall[name].push(o.wallS)
    }
    ratios.probe.push(got.probe!.cpuS / got.node!.cpuS)
    ratios.run.push(got.run!.cpuS / got.node!.cpuS)
  }
  return {
    node_cpu_s: round(median(cpu.node)),
    probe_cpu_s: round(median(cpu.probe)),
    run_cpu_s: round(median(cpu.run)),
    probe_vs_node: round(median(ratios.probe), 2),
    run_vs_node: round(median(ratios.run), 2),
    probe_target: 4,
    run_target: 6,
    node_wall_s: round(median(wall.node)),
    probe_wall_s: round(median(wall.probe)),
    run_wall_s: round(median(wall.run)),
    rounds
  }
}
