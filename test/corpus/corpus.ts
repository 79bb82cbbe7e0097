/**
 * Where the conformance tests find MIL programs: this folder (programs copied from public projects, see NOTICE.md),
 * or the folder named by `MIL_CORPUS` for a larger set. Paths are relative to the corpus root, in walk order.
 */
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))

/** The corpus root: `MIL_CORPUS` when set, else `test/corpus`. */
export const corpusDir: string = process.env.MIL_CORPUS ? resolve(process.env.MIL_CORPUS) : here

/** Whether the tests walk the corpus kept in the repository (snapshots and counts are reviewed against it). */
export const isBundledCorpus: boolean = corpusDir === here

/** Whether the full sweeps run (`npm run test:full`, or `FULL=1`); `npm test` runs a sample of the heavy ones. */
export const full: boolean = process.env.FULL === "1"

if (!existsSync(corpusDir) || !statSync(corpusDir).isDirectory()) {
  throw new Error(`MIL_CORPUS=${process.env.MIL_CORPUS}: not a directory (unset it to use test/corpus)`)
}

// Sorted at every level, so the order (and the findings snapshot) does not depend on the file system.
const walk = (dir: string, keep: (path: string) => boolean): Array<string> =>
  readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? walk(p, keep) : keep(p) ? [p] : []
  })

/** Every `.mil` file of the corpus, relative to `corpusDir`. */
export const milFiles = (): Array<string> =>
  walk(corpusDir, (p) => p.endsWith(".mil")).map((p) => relative(corpusDir, p))

/** Every `weights/weight.bin` of the corpus, relative to `corpusDir`. */
export const weightFiles = (): Array<string> =>
  walk(corpusDir, (p) => p.endsWith(join("weights", "weight.bin"))).map((p) => relative(corpusDir, p))

/** The absolute path of a corpus file given relative to `corpusDir`. */
export const corpusPath = (rel: string): string => join(corpusDir, rel)
