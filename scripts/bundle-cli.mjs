/**
 * Bundles the `ane` command into one module, dist/cli/main.js (run by bin/ane.js). Start-up then reads and compiles
 * one file instead of about a thousand modules of effect and @effect/cli, and the command's own dependencies are
 * build-time only: a library user installs none of them. koffi stays external (it loads a native addon).
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
