/**
 * koffi, loaded on first use: importing the library, or using only the simulator, never loads its native binary
 * (so a platform koffi has no build for can still run the simulator). The CommonJS entry is the one the evaluation
 * worker threads load too.
 */
import { createRequire } from "node:module"
import type * as Koffi from "koffi"

export type KoffiApi = typeof Koffi
export type LibraryHandle = Koffi.LibraryHandle

let api: KoffiApi | undefined

/** The koffi module (throws where it cannot load, which callers turn into a NoAneError). */
export const koffi = (): KoffiApi => (api ??= createRequire(import.meta.url)("koffi") as KoffiApi)
