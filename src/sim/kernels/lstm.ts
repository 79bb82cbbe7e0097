/**
 * MIL lstm over a sequence: gate rows in Core ML's order i, f, o, z (input, forget, output, cell candidate;
 * spec/mil-format-errata.md §4.4), peepholes i, f, o, cell clip after the update, output gate peeping at the new c.
 * Input projections for all steps run as one GEMM; each step adds h·W_hhᵀ with a second one.
 */
import * as Either from "effect/Either"
import type { InvalidArgumentError } from "../../schema/errors.js"
import { gemm, gemmPacked, packB, type PackedB } from "./gemm.js"
import { checkShape, invalid, type Shape, showShape } from "./shape.js"

/** Activations lstm accepts. */
export type LstmActivation = "tanh" | "scaled_tanh" | "sigmoid" | "hard_sigmoid" | "relu" | "linear"

/** lstm options with MIL's defaults: forward, last output only, sigmoid / tanh / tanh, no clip. */
export interface LstmOptions {
  readonly direction?: "forward" | "reverse" | "bidirectional"
  readonly outputSequence?: boolean
  readonly recurrentActivation?: LstmActivation
  readonly cellActivation?: LstmActivation
  readonly activation?: LstmActivation
  readonly clip?: number
}

/**
 * One direction's parameters: weight_ih [4H, I], weight_hh [4H, H], bias [4H] (b_ih + b_hh), peephole [3H].
 * Constant weights can come packed once ({@link packLstmWeights}); the packed copies are then used instead.
 */
export interface LstmWeights {
  readonly weightIh: Float32Array
  readonly weightHh: Float32Array
  readonly bias?: Float32Array
  readonly peephole?: Float32Array
  /** weight_ihᵀ packed for the GEMM (K = I, N = 4H). */
  readonly packedIh?: PackedB
  /** weight_hhᵀ packed for the GEMM (K = H, N = 4H). */
  readonly packedHh?: PackedB
  /** [weight_ih | weight_hh]ᵀ packed (K = I + H, N = 4H): a one-step sequence runs as one GEMM over [x | h]. */
  readonly packedCat?: PackedB
}

/** `w` with both weight matrices packed once, for an lstm whose weights are constant. */
export const packLstmWeights = (w: LstmWeights, input: number, hidden: number): LstmWeights => {
  const K = input + hidden
  const cat = new Float32Array(4 * hidden * K)
  for (let r = 0; r < 4 * hidden; r++) {
    cat.set(w.weightIh.subarray(r * input, (r + 1) * input), r * K)
    cat.set(w.weightHh.subarray(r * hidden, (r + 1) * hidden), r * K + input)
  }
  return {
    ...w,
    packedIh: packB(input, 4 * hidden, w.weightIh, 0, input, true),
    packedHh: packB(hidden, 4 * hidden, w.weightHh, 0, hidden, true),
    packedCat: packB(K, 4 * hidden, cat, 0, K, true)
  }
}

/** A checked lstm with its scratch buffers. */
export interface LstmPlan {
  readonly seq: number
  readonly batch: number
  readonly input: number
  readonly hidden: number
  readonly directions: 1 | 2
  readonly reverse: boolean
  readonly outputSequence: boolean
  /** Output 0: [s, b, D·H] with output_sequence, else [1, b, D·H]. */
  readonly outShape: ReadonlyArray<number>
  /** Outputs 1 and 2 (final h and c): [b, D·H]. */
  readonly stateShape: ReadonlyArray<number>
  readonly activations: readonly [LstmActivation, LstmActivation, LstmActivation]
  readonly clip: number | undefined
  readonly xw: Float32Array
  readonly h: Float32Array
  readonly c: Float32Array
  /** [x | h] rows of a one-step sequence. */
  readonly xh: Float32Array
}

/** Plans lstm for x [s, b, I] and hidden size H. */
export const planLstm = (
  xShape: Shape, hidden: number, options: LstmOptions = {}
): Either.Either<LstmPlan, InvalidArgumentError> => {
  const bad = checkShape("lstm", "x", xShape)
  if (bad) return Either.left(bad)
  if (xShape.length !== 3) return Either.left(invalid("lstm", "x", "rank 3 [seq, batch, input]", showShape(xShape)))
  if (!Number.isInteger(hidden) || hidden < 1) return Either.left(invalid("lstm", "hidden", "a positive integer", String(hidden)))
  const [s, b, I] = xShape as [number, number, number]
  const dir = options.direction ?? "forward"
  const D = dir === "bidirectional" ? 2 : 1
  const out = options.outputSequence === true
  return Either.right({
    seq: s, batch: b, input: I, hidden, directions: D, reverse: dir === "reverse", outputSequence: out,
    outShape: [out ? s : 1, b, D * hidden], stateShape: [b, D * hidden],
    activations: [options.recurrentActivation ?? "sigmoid", options.cellActivation ?? "tanh", options.activation ?? "tanh"],
    clip: options.clip, xw: new Float32Array(s * b * 4 * hidden), h: new Float32Array(b * hidden),
    c: new Float32Array(b * hidden), xh: new Float32Array(s === 1 ? b * (I + hidden) : 0)
  })
}

const act = (a: LstmActivation, v: number): number => {
  switch (a) {
    case "tanh": case "scaled_tanh": return Math.tanh(v)
    case "sigmoid": return 1 / (1 + Math.exp(-v))
    case "hard_sigmoid": return Math.min(Math.max(0.2 * v + 0.5, 0), 1)
    case "relu": return v > 0 || v !== v ? v : 0
    case "linear": return v
  }
}

const fround = Math.fround

const runDirection = (
  plan: LstmPlan, x: Float32Array, w: LstmWeights, d: number, backwards: boolean,
  h0: Float32Array, c0: Float32Array, out: Float32Array, hOut: Float32Array, cOut: Float32Array
): void => {
  const { seq: S, batch: B, input: I, hidden: H, directions: D, xw, h, c } = plan
  const G = 4 * H
  const [ra, ca, oa] = plan.activations
  const DH = D * H
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < H; j++) {
      h[b * H + j] = h0[b * DH + d * H + j]!
      c[b * H + j] = c0[b * DH + d * H + j]!
    }
  }
  // xw[t, b, :] = bias + x[t, b, :]·W_ihᵀ for every step at once; one step: bias + [x | h]·[W_ih | W_hh]ᵀ, the
  // same sums in the same order as the two products.
  const fused = S === 1 && w.packedCat !== undefined
  if (w.bias !== undefined) for (let r = 0; r < S * B; r++) xw.set(w.bias.subarray(0, G), r * G)
  if (fused) {
    const xh = plan.xh
    for (let b = 0; b < B; b++) {
      xh.set(x.subarray(b * I, (b + 1) * I), b * (I + H))
      xh.set(h.subarray(b * H, (b + 1) * H), b * (I + H) + I)
    }
    gemmPacked(B, xh, 0, I + H, false, w.packedCat!, xw, 0, G, false, w.bias !== undefined)
  } else if (w.packedIh !== undefined) gemmPacked(S * B, x, 0, I, false, w.packedIh, xw, 0, G, false, w.bias !== undefined)
  else gemm(S * B, G, I, x, 0, I, false, w.weightIh, 0, I, true, xw, 0, G, w.bias !== undefined)
  const p = w.peephole
  const clip = plan.clip
  for (let step = 0; step < S; step++) {
    const t = backwards ? S - 1 - step : step
    const g0 = t * B * G
    // gates = xw[t] + h·W_hhᵀ, accumulated in place (xw[t] is not needed again).
    if (!fused) {
      if (w.packedHh !== undefined) gemmPacked(B, h, 0, H, false, w.packedHh, xw, g0, G, false, true)
      else gemm(B, G, H, h, 0, H, false, w.weightHh, 0, H, true, xw, g0, G, true)
    }
    for (let b = 0; b < B; b++) {
      const g = g0 + b * G
      for (let j = 0; j < H; j++) {
        const cp = c[b * H + j]!
        const gi = fround(act(ra, p !== undefined ? fround(xw[g + j]! + fround(p[j]! * cp)) : xw[g + j]!))
        const gf = fround(act(ra, p !== undefined ? fround(xw[g + H + j]! + fround(p[H + j]! * cp)) : xw[g + H + j]!))
        const gz = fround(act(ca, xw[g + 3 * H + j]!))
        let cn = fround(fround(gf * cp) + fround(gi * gz))
        if (clip !== undefined) cn = Math.min(Math.max(cn, -clip), clip)
        const go = fround(act(ra, p !== undefined ? fround(xw[g + 2 * H + j]! + fround(p[2 * H + j]! * cn)) : xw[g + 2 * H + j]!))
        c[b * H + j] = cn
        h[b * H + j] = fround(go * fround(act(oa, cn)))
      }
    }
    if (plan.outputSequence) {
      // The backward half stays time-aligned with the input.
      for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) out[(t * B + b) * DH + d * H + j] = h[b * H + j]!
    }
  }
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < H; j++) {
      hOut[b * DH + d * H + j] = h[b * H + j]!
      cOut[b * DH + d * H + j] = c[b * H + j]!
      if (!plan.outputSequence) out[b * DH + d * H + j] = h[b * H + j]!
    }
  }
}

/**
 * Runs a planned lstm. initialH/initialC are [b, D·H] ([forward | backward] on the last axis for bidirectional);
 * `backward` is required when bidirectional. Writes out (plan.outShape), hOut and cOut (plan.stateShape).
 */
export const lstm = (
  plan: LstmPlan, x: Float32Array, initialH: Float32Array, initialC: Float32Array,
  forward: LstmWeights, backward: LstmWeights | undefined,
  out: Float32Array, hOut: Float32Array, cOut: Float32Array
): void => {
  runDirection(plan, x, forward, 0, plan.reverse, initialH, initialC, out, hOut, cOut)
  if (plan.directions === 2 && backward !== undefined) {
    runDirection(plan, x, backward, 1, true, initialH, initialC, out, hOut, cOut)
  }
}
