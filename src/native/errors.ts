/** The one place where native failures (NSError domain/code/description, NO results, FFI throws) become typed errors. */
import { CompileError, EvalError, MapError, ModelLoadError } from "../schema/errors.js"
import type { NSErrorInfo } from "./objc.js"

/** The native stage that failed; decides the error class. */
export type NativeStage = "compile" | "load" | "map" | "eval"

/** The typed error for each stage. */
export interface StageErrors {
  readonly compile: CompileError
  readonly load: ModelLoadError
  readonly map: MapError
  readonly eval: EvalError
}

/** The typed error for a failed stage. */
export type NativeStageError = StageErrors[NativeStage]

const make = <S extends NativeStage>(
  stage: S,
  fields: { op: string; hint: string; domain?: string; code?: number; cause?: unknown },
  model: string
): StageErrors[S] => {
  const byStage: { readonly [K in NativeStage]: () => StageErrors[K] } = {
    compile: () => new CompileError({ ...fields, model, diagnostics: [] }),
    load: () => new ModelLoadError({ ...fields, model }),
    map: () => new MapError({ ...fields, model }),
    eval: () => new EvalError({ ...fields, model })
  }
  return byStage[stage]()
}

/**
 * The typed error for a failed `selector` at `stage`: `domain`/`code` from the NSError when there was one, and a
 * hint with its localized description (or saying the call returned NO/nil without one).
 */
export const nativeError = <S extends NativeStage>(
  stage: S,
  op: string,
  model: string,
  selector: string,
  error: NSErrorInfo | undefined
): StageErrors[S] =>
  make(stage, {
    op,
    hint: error !== undefined
      ? `${selector} failed: ${error.description || "(no description)"}`
      : `${selector} returned NO or nil without an NSError`,
    ...(error !== undefined ? { domain: error.domain, code: error.code } : {})
  }, model)

/** A JS exception thrown by the FFI layer (library or symbol missing, bad argument) as the stage's typed error. */
export const thrownError = <S extends NativeStage>(
  stage: S,
  op: string,
  model: string,
  what: string,
  cause: unknown
): StageErrors[S] =>
  make(stage, { op, hint: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause }, model)
