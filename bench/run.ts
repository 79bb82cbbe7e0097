/**
 * Benchmark runner: `npm run bench -- <name> [--json]`. Each bench/<name>.ts default-exports an async function
 * returning a flat record of figures (ratios against a baseline measured in the same process).
 */
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && f !== "harness.ts")
  .map((f) => f.slice(0, -3))

const args = process.argv.slice(2)
const json = args.includes("--json")
// Options followed by a value (a path or a count), which is not a benchmark name.
const valued = new Set(["--onnx", "--ort-dir", "--threads"])
const names = args.filter((a, i) => !a.startsWith("--") && !valued.has(args[i - 1] ?? ""))
if (names.length === 0) {
  console.error(`usage: npm run bench -- <${available.join("|")}> [--json]`)
  process.exit(2)
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(", ")}`)
    process.exit(2)
  }
  const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
    default: (args: ReadonlyArray<string>) => Promise<Record<string, unknown>>
  }
  const result = await mod.default(args)
  if (json) console.log(JSON.stringify({ bench: name, ...result }))
  else {
    console.log(`# ${name}`)
    for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(28)} ${v}`)
  }
}
