/**
 * The weight files of a `.mlmodelc` package as the CLI sees them: each BLOBFILE path resolved under the package's
 * folder (after realpath, so a link cannot lead out), checked to be a regular file of a readable size.
 */
import { realpath, stat } from "node:fs/promises"
import { isAbsolute, relative, resolve } from "node:path"
import * as Effect from "effect/Effect"
import type { Program } from "../mil/ast.js"
import { blobReferences } from "../mil/blob.js"
import { parse } from "../mil/parser.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { kindOf, MAX_WEIGHT_BYTES, readRegularFile } from "./files.js"

type BlobRef = ReturnType<typeof blobReferences>[number]

/** Where one BLOBFILE path of a package leads: a file under the package (`real` when it exists), or outside it. */
interface Target {
  readonly ref: BlobRef
  readonly full: string
  readonly real: string | undefined
  readonly outside: boolean
}

const inside = (p: string, base: string) => {
  const r = relative(base, p)
  return r !== "" && !r.startsWith("..") && !isAbsolute(r)
}

/** Each distinct BLOBFILE path of `program`, resolved under the package folder `root`. */
const targets = (root: string, program: Program): Effect.Effect<ReadonlyArray<Target>> =>
  Effect.promise(async () => {
    const realRoot = await realpath(root).catch(() => resolve(root))
    const seen = new Set<string>()
    const out: Array<Target> = []
    for (const ref of blobReferences(program)) {
      if (seen.has(ref.path)) continue
      seen.add(ref.path)
      const rel = ref.path.startsWith("@model_path/") ? ref.path.slice("@model_path/".length) : ref.path
      const full = resolve(root, rel)
      const real = await realpath(full).catch(() => undefined)
      const outside = isAbsolute(rel) || rel.includes("\0") || !inside(full, resolve(root)) ||
        (real !== undefined && !inside(real, realRoot))
      out.push({ ref, full, real, outside })
    }
    return out
  })

/**
 * The weight files of a package's BLOBFILEs, read from under its folder: a path that leaves the folder (`..`, an
 * absolute path, a symlink out) is a diagnostic, not a read; a missing file is left for the blob checks to report.
 */
export const packageWeights = (op: string, root: string, program: Program, file: string) =>
  Effect.gen(function*() {
    const files: Array<{ readonly path: string; readonly bytes: Uint8Array }> = []
    const problems: Array<Diagnostic> = []
    for (const t of yield* targets(root, program)) {
      if (t.outside) {
        problems.push(new Diagnostic({
          kind: "type", severity: "error", code: "weight-path-outside-model", line: t.ref.pos.line, col: t.ref.pos.col, file,
          message: `weight path "${t.ref.path}" leaves the package ${root}`,
          hint: "a BLOBFILE path names a file inside the package, such as @model_path/weights/weight.bin"
        }))
        continue
      }
      if (t.real === undefined) continue
      const bytes = yield* readRegularFile(t.full, {
        op, argument: `weight file of ${t.ref.path}`, expected: "a regular weight file", maxBytes: MAX_WEIGHT_BYTES
      })
      files.push({ path: t.ref.path, bytes })
    }
    return { files, problems }
  })

/**
 * Checks, without reading them, that a package's weight files are regular files of at most {@link MAX_WEIGHT_BYTES},
 * so a FIFO or an oversized file is refused by name before the compile (paths outside are the compile's to refuse).
 */
export const checkPackageWeights = (op: string, root: string, text: string): Effect.Effect<void, InvalidArgumentError> =>
  Effect.gen(function*() {
    const program = parse(text).program
    if (program === null) return
    for (const t of yield* targets(root, program)) {
      if (t.outside || t.real === undefined) continue
      const s = yield* Effect.promise(() => stat(t.full).catch(() => undefined))
      const problem = s === undefined ? undefined
        : !s.isFile() ? kindOf(s)
        : s.size > MAX_WEIGHT_BYTES ? `${Math.round(s.size / 2 ** 20)} MiB; at most ${MAX_WEIGHT_BYTES / 2 ** 20} MiB is supported`
        : undefined
      if (problem !== undefined) {
        return yield* Effect.fail(new InvalidArgumentError({
          op, argument: `weight file of ${t.ref.path}`, expected: "a regular weight file", actual: `${t.full} (${problem})`
        }))
      }
    }
  })
