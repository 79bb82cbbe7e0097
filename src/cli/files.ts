/**
 * File access of the `ane` command: only regular files are read, reads are bounded by what the format needs and never
 * block the event loop (a FIFO or a device is refused, not waited on), and output directories are checked before any
 * work starts and created one level at a time.
 */
import { constants, Stats } from "node:fs"
import { access, lstat, mkdir, open, rmdir, stat, writeFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import * as Effect from "effect/Effect"
import { InvalidArgumentError } from "../schema/errors.js"

/** Largest MIL text read (V8 strings stop near 512 MiB; real programs are far smaller). */
export const MAX_PROGRAM_BYTES = 256 * 1024 * 1024
/** Largest weight file read: what one Node read and one surface upload can hold. */
export const MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024
/** Longest file name most file systems accept (bytes). */
export const MAX_FILE_NAME_BYTES = 255

/** What a path names, in words, for messages. */
export const kindOf = (s: Stats): string =>
  s.isFile() ? "a regular file"
  : s.isDirectory() ? "a directory"
  : s.isFIFO() ? "a FIFO"
  : s.isCharacterDevice() ? "a character device"
  : s.isBlockDevice() ? "a block device"
  : s.isSocket() ? "a socket"
  : "not a regular file"

/** A system error as a short reason (no stack, no errno numbers). */
export const reasonOf = (e: unknown): string => {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : ""
  switch (code) {
    case "ENOENT": return "not found"
    case "EACCES":
    case "EPERM": return "permission denied"
    case "ENOTDIR": return "a component of the path is not a directory"
    case "EISDIR": return "is a directory"
    case "ELOOP": return "a symbolic link where none may be, or too many links"
    case "ENAMETOOLONG": return "name too long"
    case "EROFS": return "read-only file system"
    case "ENOSPC": return "no space left on the device"
    case "EDQUOT": return "disk quota exceeded"
    case "EEXIST": return "already exists"
    case "EINVAL": return "not a valid path here"
    case "ERR_FS_FILE_TOO_LARGE": return "a file over 2 GiB"
    default: return e instanceof Error && code ? `${code}` : e instanceof Error ? e.message.split("\n")[0]! : String(e)
  }
}

const kindOrLink = (s: Stats): string => (s.isSymbolicLink() ? "a symbolic link" : kindOf(s))

const mib = (n: number) => `${(n / (1024 * 1024)).toFixed(n < 1024 * 1024 ? 3 : 0)} MiB`

/** How a file is read: who asks (`op`, `argument`), what it should be, and at most how many bytes. */
export interface ReadSpec {
  readonly op: string
  readonly argument: string
  readonly expected: string
  readonly maxBytes: number
}

/**
 * Reads a regular file of at most `spec.maxBytes`. The file is opened non-blocking and checked on its descriptor,
 * so a FIFO or device swapped in after a `stat` is refused too, and nothing waits for a writer.
 */
export const readRegularFile = (path: string, spec: ReadSpec): Effect.Effect<Uint8Array, InvalidArgumentError> => {
  const fail = (actual: string) =>
    new InvalidArgumentError({ op: spec.op, argument: spec.argument, expected: spec.expected, actual: `${path} (${actual})` })
  if (path.length === 0) {
    return Effect.fail(new InvalidArgumentError({
      op: spec.op, argument: spec.argument, expected: spec.expected, actual: "an empty path"
    }))
  }
  return Effect.tryPromise({
    try: async () => {
      const before = await stat(path).catch((e: unknown) => fail(reasonOf(e)))
      if (before instanceof InvalidArgumentError) return before
      if (!before.isFile()) return fail(kindOf(before))
      const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((e: unknown) => fail(reasonOf(e)))
      if (fh instanceof InvalidArgumentError) return fh
      try {
        const info = await fh.stat()
        if (!info.isFile()) return fail(kindOf(info))
        if (info.size > spec.maxBytes) return fail(`${mib(info.size)}; at most ${mib(spec.maxBytes)} is read`)
        const out = new Uint8Array(info.size)
        let at = 0
        while (at < out.length) {
          const { bytesRead } = await fh.read(out, at, out.length - at, at)
          if (bytesRead === 0) break
          at += bytesRead
        }
        return at === out.length ? out : out.subarray(0, at)
      } finally {
        await fh.close().catch(() => undefined)
      }
    },
    catch: (e) => fail(reasonOf(e))
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r))))
}

/** What a program path names: a `.mil` file, or a `.mlmodelc` directory whose `model.mil` is a regular file. */
export const checkProgramPath = (op: string, path: string): Effect.Effect<"file" | "package", InvalidArgumentError> => {
  const expected = "a .mil file or a .mlmodelc directory holding model.mil"
  const fail = (actual: string) => new InvalidArgumentError({ op, argument: "program", expected, actual })
  if (path.length === 0) return Effect.fail(fail("an empty path"))
  return Effect.tryPromise({
    try: async () => {
      const s = await stat(path).catch((e: unknown) => fail(`${path} (${reasonOf(e)})`))
      if (s instanceof InvalidArgumentError) return s
      if (s.isDirectory()) {
        const mil = join(path, "model.mil")
        const m = await stat(mil).catch((e: unknown) => fail(`${mil} (${reasonOf(e)})`))
        if (m instanceof InvalidArgumentError) return m
        if (!m.isFile()) return fail(`${mil} (${kindOf(m)})`)
        if (m.size > MAX_PROGRAM_BYTES) return fail(`${mil} (${mib(m.size)}; at most ${mib(MAX_PROGRAM_BYTES)} is read)`)
        return "package" as const
      }
      if (!s.isFile()) return fail(`${path} (${kindOf(s)})`)
      if (s.size > MAX_PROGRAM_BYTES) return fail(`${path} (${mib(s.size)}; at most ${mib(MAX_PROGRAM_BYTES)} is read)`)
      return "file" as const
    },
    catch: (e) => fail(`${path} (${reasonOf(e)})`)
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r))))
}

/** Checks a `--weights` file: a regular file no larger than {@link MAX_WEIGHT_BYTES}. */
export const checkWeightPath = (op: string, path: string): Effect.Effect<void, InvalidArgumentError> => {
  const fail = (actual: string) =>
    new InvalidArgumentError({ op, argument: "--weights", expected: "a regular weight file", actual })
  if (path.length === 0) return Effect.fail(fail("an empty path"))
  return Effect.tryPromise({
    try: async () => {
      const s = await stat(path).catch((e: unknown) => fail(`${path} (${reasonOf(e)})`))
      if (s instanceof InvalidArgumentError) return s
      if (!s.isFile()) return fail(`${path} (${kindOf(s)})`)
      if (s.size > MAX_WEIGHT_BYTES) return fail(`${path} (${mib(s.size)}; at most ${mib(MAX_WEIGHT_BYTES)} is supported)`)
      return undefined
    },
    catch: (e) => fail(`${path} (${reasonOf(e)})`)
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.void)))
}

/** An output directory that was checked: where it is and which of its ancestors must still be created. */
export interface OutputPlan {
  readonly dir: string
  /** Directories to create, outermost first (empty when `dir` exists). */
  readonly missing: ReadonlyArray<string>
}

/**
 * Checks `--output` before any work: an existing directory we may write into, or a path whose nearest existing
 * ancestor is such a directory. Nothing is created here.
 */
export const planOutputDir = (op: string, dir: string): Effect.Effect<OutputPlan, InvalidArgumentError> => {
  const fail = (actual: string) =>
    new InvalidArgumentError({ op, argument: "--output", expected: "a directory that exists or can be created", actual })
  if (dir.length === 0) return Effect.fail(fail("an empty path"))
  if (dir.includes("\0")) return Effect.fail(fail("a path containing a NUL byte"))
  return Effect.tryPromise({
    try: async () => {
      const missing: Array<string> = []
      let at = resolve(dir)
      for (;;) {
        const s: Stats | { code?: string } = await stat(at).catch((e: unknown) => (e ?? {}) as { code?: string })
        if (!(s instanceof Stats)) {
          if (s.code !== "ENOENT") return fail(`${dir} (${missing.length === 0 ? "" : `${at}: `}${reasonOf(s)})`)
          missing.unshift(at)
          const up = dirname(at)
          if (up === at) return fail(`${dir} (no existing ancestor)`)
          at = up
          continue
        }
        if (!s.isDirectory()) {
          return fail(missing.length === 0 ? `${dir} (${kindOf(s)})` : `${dir} (${at} is ${kindOf(s)}, not a directory)`)
        }
        const writable = await access(at, constants.W_OK | constants.X_OK).then(() => true, () => false)
        if (!writable) return fail(`${dir} (${at} is not writable)`)
        return { dir, missing }
      }
    },
    catch: (e) => fail(`${dir} (${reasonOf(e)})`)
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r))))
}

/** Creates the directories a plan lists, one level at a time (no recursive mkdir: it can spin on /proc). */
export const createOutputDir = (op: string, plan: OutputPlan): Effect.Effect<void, InvalidArgumentError> =>
  Effect.tryPromise({
    try: async () => {
      for (const d of plan.missing) {
        const r = await mkdir(d).then(() => undefined, (e: unknown) => e)
        if (r !== undefined && (r as { code?: string }).code !== "EEXIST") throw Object.assign(r as Error, { at: d })
        const s = await stat(d)
        if (!s.isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR", at: d })
      }
    },
    catch: (e) =>
      new InvalidArgumentError({
        op, argument: "--output", expected: "a directory that exists or can be created",
        actual: `${plan.dir} (creating ${(e as { at?: string }).at ?? plan.dir}: ${reasonOf(e)})`
      })
  })

/** Removes the directories a plan created, innermost first, where they are still empty (after a failed run). */
export const removeCreatedDirs = (plan: OutputPlan): Effect.Effect<void> =>
  Effect.promise(async () => {
    for (const d of [...plan.missing].reverse()) await rmdir(d).catch(() => undefined)
  })

/** The file name an output tensor is written to: its name with unsafe characters replaced, plus `.npy`. */
export const outputFileName = (name: string): string => `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}.npy`

/**
 * Checks the files the outputs will be written to, before any work: names that fit the file system, no two outputs
 * in one file, and nothing but a regular file already in their place.
 */
export const checkOutputFiles = (
  op: string,
  dir: string,
  names: ReadonlyArray<string>
): Effect.Effect<void, InvalidArgumentError> => {
  const fail = (argument: string, expected: string, actual: string) =>
    new InvalidArgumentError({ op, argument, expected, actual })
  return Effect.tryPromise({
    try: async () => {
      const seen = new Map<string, string>()
      for (const name of names) {
        const file = outputFileName(name)
        if (Buffer.byteLength(file) > MAX_FILE_NAME_BYTES) {
          return fail(`output ${name.length > 40 ? `${name.slice(0, 40)}…` : name}`,
            `a file name of at most ${MAX_FILE_NAME_BYTES} bytes`, `${Buffer.byteLength(file)} bytes (${file.slice(0, 40)}…)`)
        }
        const other = seen.get(file)
        if (other !== undefined) return fail(`output ${name}`, "a file of its own", `${file}, also written for ${other}`)
        seen.set(file, name)
        // lstat: an existing symbolic link is refused, so an output never lands where a link points.
        const s = await lstat(join(dir, file)).catch(() => undefined)
        if (s !== undefined && !s.isFile()) {
          return fail("--output", "a directory whose output files can be written", `${join(dir, file)} (${kindOrLink(s)})`)
        }
      }
      return undefined
    },
    catch: (e) => fail("--output", "a directory whose output files can be written", `${dir} (${reasonOf(e)})`)
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.void)))
}

/** Writes one output file; a failure names the file and the reason. */
export const writeOutputFile = (op: string, file: string, bytes: Uint8Array): Effect.Effect<void, InvalidArgumentError> =>
  Effect.tryPromise({
    // O_NOFOLLOW: a link put in the file's place after the checks is refused too (ELOOP), not followed.
    try: () => writeFile(file, bytes, { flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW }),
    catch: (e) =>
      new InvalidArgumentError({ op, argument: "--output", expected: "a writable output file", actual: `${file} (${reasonOf(e)})` })
  })
