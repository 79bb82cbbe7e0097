/**
 * Bundles the `ane` command into one module, dist/cli/main.js (run by bin/ane.js). Start-up then reads and compiles
 * one file instead of several hundred modules of effect and this library (Node 20 caches no compiled code between
 * runs, so every byte counts), and whatever the command alone needs stays a build-time dependency. koffi stays
 * external (it loads a native addon).
 */
import { build } from "esbuild"
import { mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const outDir = process.argv[2] ?? join(root, "dist")
mkdirSync(join(outDir, "cli"), { recursive: true })

await build({
  entryPoints: [join(root, "src", "cli", "main.ts")],
  outfile: join(outDir, "cli", "main.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["koffi"],
  // Fewer bytes to parse at every start; the command prints messages, never stack traces.
  minify: true,
  legalComments: "eof",
  // Bundled CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __aneRequire } from \"node:module\"; const require = __aneRequire(import.meta.url);" },
  logLevel: "warning"
})
