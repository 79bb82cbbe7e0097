/** Reads the MIL text behind a CLI path: a `.mil` file, or a `.mlmodelc` directory holding `model.mil`. */
import { join } from "node:path"
import * as Effect from "effect/Effect"
import type { InvalidArgumentError } from "../schema/errors.js"
import { checkProgramPath, MAX_PROGRAM_BYTES, readRegularFile } from "./files.js"

/** MIL text and the file it came from. */
export interface MilSource {
  readonly file: string
  readonly text: string
  /** A `.mlmodelc` directory (its weights live under it), or a loose `.mil` file. */
  readonly kind: "file" | "package"
}

/** Loads MIL text from a regular file (never a FIFO or device); fails with an InvalidArgumentError naming the path. */
export const loadMil = (op: string, path: string): Effect.Effect<MilSource, InvalidArgumentError> =>
  Effect.gen(function*() {
    const kind = yield* checkProgramPath(op, path)
    const file = kind === "package" ? join(path, "model.mil") : path
    const bytes = yield* readRegularFile(file, {
      op, argument: "program", expected: "a .mil file or a .mlmodelc directory holding model.mil",
      maxBytes: MAX_PROGRAM_BYTES
    })
    return { file, text: new TextDecoder().decode(bytes), kind }
  })
