/**
 * Weight paths of untrusted models: every path a model names resolves inside its root (`@model_path`: the package,
 * the compiler's temp folder, a loose `.mil`'s folder) after normalising and `realpath`, or it is a typed
 * `CompileError` with code `weight-path-outside-model` that names the path and never quotes the target's bytes.
 */
import { closeSync, constants, lstatSync, openSync, realpathSync, writeSync } from "node:fs"
import { basename, dirname, join, resolve, sep } from "node:path"
import { Tok, Lexer } from "../mil/lexer.js"
import { MODEL_PATH_PREFIX, WEIGHT_PATH_OUTSIDE_MODEL, weightPathSyntaxProblem } from "../schema/CompileOptions.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { CompileError } from "../schema/errors.js"

export { MODEL_PATH_PREFIX, WEIGHT_PATH_OUTSIDE_MODEL }

/** Where a weight path was met, for the error: the operation, the model, and the BLOBFILE's position if known. */
export interface WeightPathSite {
  readonly op?: string
  readonly model?: string
  readonly file?: string
  readonly line?: number
  readonly col?: number
}

/** Why `path` cannot name a file inside its model (syntax only: see {@link resolveInside} for links), or undefined. */
export const checkWeightPathSyntax = (path: string): string | undefined => weightPathSyntaxProblem(path)

/** The path below the model's root: `@model_path/` stripped. Check its syntax first. */
export const relativeWeightPath = (path: string): string =>
  path.startsWith(MODEL_PATH_PREFIX) ? path.slice(MODEL_PATH_PREFIX.length) : path

/** The diagnostic for a weight path that leaves its model; the path is quoted (escaped), the target never read. */
export const outsideModelDiagnostic = (path: string, reason: string, site: WeightPathSite = {}): Diagnostic =>
  new Diagnostic({
    kind: "syntax",
    severity: "error",
    code: WEIGHT_PATH_OUTSIDE_MODEL,
    message: `weight path ${JSON.stringify(path)} is outside the model: ${reason}`,
    line: site.line ?? 1,
    col: site.col ?? 1,
    ...(site.file !== undefined ? { file: site.file } : {}),
    hint: "weight files must live inside the model's folder: name them @model_path/weights/<file>.bin, without '..', " +
      "absolute paths or links that leave the folder"
  })

/** A `CompileError` carrying one or more {@link outsideModelDiagnostic}s. */
export const outsideModel = (diagnostics: ReadonlyArray<Diagnostic>, site: WeightPathSite = {}): CompileError =>
  new CompileError({
    op: site.op ?? "compile",
    ...(site.model !== undefined ? { model: site.model } : {}),
    diagnostics: [...diagnostics]
  })

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

/**
 * `p` with every symbolic link resolved: the real path of its longest existing prefix plus the parts that do not
 * exist yet. Undefined when a link dangles (it would be followed once its target appears) or cannot be resolved.
 */
const realpathExisting = (p: string): string | undefined => {
  try {
    return realpathSync(p)
  } catch (cause) {
    const code = errorCode(cause)
    if (code !== "ENOENT" && code !== "ENOTDIR") return undefined
  }
  try {
    lstatSync(p)
    return undefined // p exists but realpath failed: a dangling link
  } catch {
    // p does not exist: resolve its parent
  }
  const parent = dirname(p)
  if (parent === p) return p
  const real = realpathExisting(parent)
  return real === undefined ? undefined : join(real, basename(p))
}

const isInside = (root: string, p: string): boolean => p.startsWith(root.endsWith(sep) ? root : root + sep)

/**
 * The absolute path `path` names below `root`, with every symbolic link resolved; it stays strictly inside
 * `realpath(root)`, or the result is a `CompileError` (code `weight-path-outside-model`). A target that does not
 * exist yet resolves to where it would be created; whether it exists, and is a regular file, is the caller's check.
 */
export const resolveInside = (root: string, path: string, site: WeightPathSite = {}): string | CompileError => {
  const refuse = (reason: string) => outsideModel([outsideModelDiagnostic(path, reason, site)], site)
  const problem = checkWeightPathSyntax(path)
  if (problem !== undefined) return refuse(problem)
  let realRoot: string
  try {
    realRoot = realpathSync(root)
  } catch {
    return refuse("the model's folder cannot be resolved")
  }
  const target = realpathExisting(resolve(realRoot, relativeWeightPath(path)))
  if (target === undefined) return refuse("it goes through a symbolic link that cannot be resolved")
  if (!isInside(realRoot, target)) return refuse("a symbolic link leads outside the model's folder")
  return target
}

/** A BLOBFILE path as written in MIL text: its decoded value, the characters between the quotes, and its position. */
export interface BlobFilePath {
  readonly path: string
  readonly raw: string
  readonly line: number
  readonly col: number
}

/**
 * Every string inside a `BLOBFILE(...)` of `text`, found by the lexer alone (no parse, so it also sees the paths of
 * text the parser would reject, and costs one linear scan).
 */
export const blobFilePaths = (text: string): ReadonlyArray<BlobFilePath> => {
  const out: Array<BlobFilePath> = []
  const lx = new Lexer(text)
  while (lx.k() !== Tok.EOF) {
    if (!lx.isWord("BLOBFILE")) {
      lx.next()
      continue
    }
    lx.next()
    if (lx.k() !== Tok.LParen) continue
    let depth = 0
    do {
      const k = lx.k()
      if (k === Tok.LParen) depth++
      else if (k === Tok.RParen) depth--
      else if (k === Tok.String) out.push({ path: lx.str, raw: lx.slice().slice(1, -1), line: lx.tokLine, col: lx.tokCol })
      lx.next()
    } while (depth > 0 && lx.k() !== Tok.EOF)
  }
  return out
}

/**
 * The `CompileError` for every BLOBFILE path of `text` that cannot name a file inside its model, or undefined. The
 * characters as written are checked too, in case another reader decodes escapes differently.
 */
export const checkBlobFilePaths = (text: string, site: WeightPathSite = {}): CompileError | undefined => {
  const diagnostics: Array<Diagnostic> = []
  for (const b of blobFilePaths(text)) {
    const problem = checkWeightPathSyntax(b.path) ?? checkWeightPathSyntax(b.raw)
    if (problem !== undefined) diagnostics.push(outsideModelDiagnostic(b.path, problem, { ...site, line: b.line, col: b.col }))
  }
  return diagnostics.length === 0 ? undefined : outsideModel(diagnostics, site)
}

/**
 * Writes `bytes` to `path` without following a symbolic link at the last component (`O_NOFOLLOW`), so a link planted
 * where a file is expected fails the write instead of redirecting it. Throws on failure, as `writeFileSync` does.
 */
export const writeFileNoFollow = (path: string, bytes: Uint8Array, mode = 0o644): void => {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (constants.O_NOFOLLOW ?? 0), mode)
  try {
    let done = 0
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done)
  } finally {
    closeSync(fd)
  }
}
