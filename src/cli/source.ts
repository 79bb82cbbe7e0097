/** Reads the MIL text behind a CLI path: a `.mil` file, or a `.mlmodelc` directory holding `model.mil`. */
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { InvalidArgumentError } from "../schema/errors.js"

/** MIL text and the file it came from. */
export interface MilSource {
  readonly file: string
  readonly text: string
}

/** Loads MIL text; fails with an InvalidArgumentError naming the path when it cannot be read. */
export const loadMil = (op: string, path: string): Effect.Effect<MilSource, InvalidArgumentError,
  FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const p = yield* Path.Path
    const fail = (actual: string) =>
      new InvalidArgumentError({ op, argument: "path", expected: "a readable .mil file or a .mlmodelc directory",
        actual })
    const info = yield* fs.stat(path).pipe(Effect.mapError(() => fail(`${path} (not found)`)))
    const file = info.type === "Directory" ? p.join(path, "model.mil") : path
    const text = yield* fs.readFileString(file).pipe(Effect.mapError(() => fail(`${file} (cannot be read)`)))
    return { file, text }
  })

/** `command: message`, unless the message already names the command. */
export const withPrefix = (command: string, message: string): string =>
  message.startsWith(command) ? message : `${command}: ${message}`
