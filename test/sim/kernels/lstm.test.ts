import { describe, expect, it } from "@effect/vitest"
import { afterAll } from "vitest"
import {
  lstm, type LstmOptions, type LstmWeights, packLstmWeights, planLstm, setFma, setKernelBackend, sizeOf
} from "../../../src/sim/kernels/index.js"
import { expectWithin, fails, ok, rand } from "./helpers.js"

afterAll(() => { setKernelBackend("auto") })

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

// float64 reference from spec/mil-format-errata.md §4.4: rows i, f, o, z; c clipped after the update; o peeps at new c.
const refDirection = (
  S: number, B: number, I: number, H: number, x: Float32Array, w: LstmWeights, h0: Array<number>, c0: Array<number>,
  backwards: boolean, clip: number | undefined, act: (v: number) => number, ract: (v: number) => number
) => {
  const h = [...h0], c = [...c0]
  const seq: Array<Array<number>> = new Array(S)
  const row = (m: Float32Array, r: number, v: ArrayLike<number>, n: number) => {
    let s = 0
    for (let k = 0; k < n; k++) s += m[r * n + k]! * v[k]!
    return s
  }
  for (let step = 0; step < S; step++) {
    const t = backwards ? S - 1 - step : step
    const hs: Array<number> = []
    for (let b = 0; b < B; b++) {
      const xv = x.subarray((t * B + b) * I, (t * B + b + 1) * I)
      const hv = h.slice(b * H, b * H + H)
      for (let j = 0; j < H; j++) {
        const gate = (g: number) => row(w.weightIh, g * H + j, xv, I) + row(w.weightHh, g * H + j, hv, H) + (w.bias ? w.bias[g * H + j]! : 0)
        const p = (g: number) => (w.peephole ? w.peephole[g * H + j]! : 0)
        const cp = c[b * H + j]!
        const i = ract(gate(0) + p(0) * cp), f = ract(gate(1) + p(1) * cp), z = act(gate(3))
        let cn = f * cp + i * z
        if (clip !== undefined) cn = Math.min(Math.max(cn, -clip), clip)
        const o = ract(gate(2) + p(2) * cn)
        c[b * H + j] = cn
        hs[b * H + j] = o * act(cn)
      }
    }
    for (let q = 0; q < B * H; q++) h[q] = hs[q]!
    seq[t] = [...h]
  }
  return { h, c, seq }
}

const weights = (I: number, H: number, seed: number, extras: boolean): LstmWeights => ({
  weightIh: rand(4 * H * I, seed, -0.5, 0.5), weightHh: rand(4 * H * H, seed + 1, -0.5, 0.5),
  ...(extras ? { bias: rand(4 * H, seed + 2, -0.5, 0.5), peephole: rand(3 * H, seed + 3, -0.5, 0.5) } : {})
})

describe.each(["wasm", "js"] as const)("lstm on %s", (backend) => {
  it.each([
    ["forward, last output", { direction: "forward" }, false],
    ["forward, sequence, bias+peephole+clip", { direction: "forward", outputSequence: true, clip: 0.7 }, true],
    ["reverse, sequence", { direction: "reverse", outputSequence: true }, true],
    ["bidirectional, sequence", { direction: "bidirectional", outputSequence: true }, true],
    ["bidirectional, last output", { direction: "bidirectional" }, false],
    ["forward, relu cell/output and hard_sigmoid gates", {
      outputSequence: true, recurrentActivation: "hard_sigmoid", cellActivation: "relu", activation: "relu"
    }, true]
  ] as Array<[string, LstmOptions, boolean]>)("%s matches the step equations", (_, options, extras) => {
    ok(setKernelBackend(backend))
    const S = 4, B = 2, I = 3, H = 5
    const plan = ok(planLstm([S, B, I], H, options))
    const D = plan.directions
    const x = rand(S * B * I, 1)
    const h0 = rand(B * D * H, 2), c0 = rand(B * D * H, 3)
    const fw = weights(I, H, 10, extras), bw = weights(I, H, 20, extras)
    const out = new Float32Array(sizeOf(plan.outShape)), hOut = new Float32Array(B * D * H), cOut = new Float32Array(B * D * H)
    lstm(plan, x, h0, c0, fw, D === 2 ? bw : undefined, out, hOut, cOut)

    const act = options.activation === "relu" ? (v: number) => Math.max(v, 0) : Math.tanh
    const ract = options.recurrentActivation === "hard_sigmoid" ? (v: number) => Math.min(Math.max(0.2 * v + 0.5, 0), 1) : sigmoid
    const half = (a: Float32Array, d: number) => Array.from({ length: B * H }, (_, q) => a[Math.floor(q / H) * D * H + d * H + (q % H)]!)
    const refs = [refDirection(S, B, I, H, x, fw, half(h0, 0), half(c0, 0), options.direction === "reverse", options.clip, act, ract)]
    if (D === 2) refs.push(refDirection(S, B, I, H, x, bw, half(h0, 1), half(c0, 1), true, options.clip, act, ract))
    const refH: Array<number> = [], refC: Array<number> = [], refOut: Array<number> = []
    for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) for (let j = 0; j < H; j++) {
      refH.push(refs[d]!.h[b * H + j]!)
      refC.push(refs[d]!.c[b * H + j]!)
    }
    if (plan.outputSequence) {
      for (let t = 0; t < S; t++) for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) for (let j = 0; j < H; j++) {
        refOut.push(refs[d]!.seq[t]![b * H + j]!)
      }
    } else refOut.push(...refH)
    expect(plan.outShape).toEqual([plan.outputSequence ? S : 1, B, D * H])
    expectWithin(hOut, refH, 2e-6, "h")
    expectWithin(cOut, refC, 2e-6, "c")
    expectWithin(out, refOut, 2e-6, "output")
  })
})

describe.each(["wasm", "js"] as const)("lstm with packed weights on %s", (backend) => {
  it.each([3, 1])("gives the same bits as with the weights packed on every call (%i steps)", (S) => {
    ok(setKernelBackend(backend))
    setFma(false)
    const B = 2, I = 37, H = 20
    const plan = ok(planLstm([S, B, I], H, { direction: "bidirectional", outputSequence: true, clip: 2 }))
    const x = rand(S * B * I, 4), h0 = rand(B * 2 * H, 5), c0 = rand(B * 2 * H, 6)
    const fw = weights(I, H, 30, true), bw = weights(I, H, 40, true)
    const run = (f: LstmWeights, b: LstmWeights) => {
      const out = new Float32Array(sizeOf(plan.outShape)), hOut = new Float32Array(B * 2 * H), cOut = new Float32Array(B * 2 * H)
      lstm(plan, x, h0, c0, f, b, out, hOut, cOut)
      return [...out, ...hOut, ...cOut]
    }
    const pf = packLstmWeights(fw, I, H), pb = packLstmWeights(bw, I, H)
    expect(pf.packedIh?.K).toBe(I)
    expect(pf.packedHh?.N).toBe(4 * H)
    expect(pf.packedCat?.K).toBe(I + H)
    expect(run(pf, pb)).toEqual(run(fw, bw))
    setFma(true)
  })
})

describe("planLstm errors", () => {
  it("rejects x that is not rank 3 and a non-positive hidden size", () => {
    expect(fails(planLstm([4, 3], 2)).message).toContain("[seq, batch, input]")
    expect(fails(planLstm([4, 1, 3], 0)).argument).toBe("hidden")
  })
})
