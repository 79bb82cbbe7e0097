/**
 * The generator catalogue: ready-to-compile MIL programs for the common ANE kernels, each returning `{ text,
 * weights, program, inputs, outputs }` (text + weights go straight into `CompileOptions.mil`). Plain functions throw
 * the typed `InvalidArgumentError` on bad sizes; `GeneratorsEffect` wraps each one as an Effect.
 */
import * as Effect from "effect/Effect"
import { CompileError, InvalidArgumentError } from "../../schema/errors.js"
import { attention, sdpa } from "./attention.js"
import { conv2d } from "./conv.js"
import { dynamicMatmul, packDynamicMatmulInput } from "./dynamic-matmul.js"
import { binary, unary } from "./elementwise.js"
import { ffn, swiglu } from "./ffn.js"
import { linear } from "./linear.js"
import { matmul } from "./matmul.js"
import { fromChannelFirst, toChannelFirst } from "./layout.js"
import { layerNorm, rmsNorm } from "./norm.js"
import { rope, ropeTables } from "./rope.js"
import { softmax } from "./softmax.js"
import { readState, updateState } from "./state.js"
import type { Generated } from "./common.js"

export type { CommonOptions, Generated } from "./common.js"
export { causalMask, MASK_NEG } from "./common.js"
export * from "./attention.js"
export * from "./conv.js"
export * from "./dynamic-matmul.js"
export * from "./elementwise.js"
export * from "./ffn.js"
export * from "./layout.js"
export * from "./linear.js"
export * from "./matmul.js"
export * from "./norm.js"
export * from "./rope.js"
export * from "./softmax.js"
export * from "./state.js"

/** Every generator by name (synchronous; bad sizes throw `InvalidArgumentError`). */
export const Generators = {
  linear, matmul, dynamicMatmul, ffn, swiglu, rmsNorm, layerNorm, softmax, attention, sdpa, rope, readState,
  updateState, conv2d, binary, unary,
  /** Helpers that prepare data for the generated programs. */
  packDynamicMatmulInput, ropeTables, toChannelFirst, fromChannelFirst
} as const

const lift = <A extends ReadonlyArray<unknown>>(f: (...a: A) => Generated) =>
  (...a: A): Effect.Effect<Generated, InvalidArgumentError | CompileError> =>
    Effect.suspend(() => {
      try {
        return Effect.succeed(f(...a))
      } catch (e) {
        return e instanceof InvalidArgumentError || e instanceof CompileError ? Effect.fail(e) : Effect.die(e)
      }
    })

/** The generators as Effects failing with `InvalidArgumentError` (bad sizes) or `CompileError` (never expected). */
export const GeneratorsEffect = {
  linear: lift(linear), matmul: lift(matmul), dynamicMatmul: lift(dynamicMatmul), ffn: lift(ffn),
  swiglu: lift(swiglu), rmsNorm: lift(rmsNorm), layerNorm: lift(layerNorm), softmax: lift(softmax),
  attention: lift(attention), sdpa: lift(sdpa), rope: lift(rope), readState: lift(readState),
  updateState: lift(updateState), conv2d: lift(conv2d), binary: lift(binary), unary: lift(unary)
} as const
