/** Test helpers for the simulator: run MIL text with named float inputs and read named outputs. */
import { Effect } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import { packSurface, type SurfaceViews, unpackSurface } from "../../src/sim/layout.js"
import * as Sim from "../../src/sim/SimBackend.js"

/** Typed views over a request surface. */
export const views = (bytes: Uint8Array): SurfaceViews => ({
  bytes,
  u16: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1),
  f32: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2)
})


/** Compiles `text` on a fresh simulator, writes `inputs` by name, evaluates once, returns outputs by name. */
export const runMil = (
  text: string,
  inputs: Record<string, ArrayLike<number>>,
  options: Sim.SimulatorOptions = {},
  weights: ReadonlyArray<{ path: string; bytes: Uint8Array }> = []
): Promise<Record<string, Float32Array>> =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const be = yield* Backend
      const m = yield* be.compile(CompileOptions.mil({ text, weights }))
      m.inputs.forEach((l, i) => {
        const src = inputs[l.name]
        if (src === undefined) throw new Error(`no test input for ${l.name}`)
        packSurface(l, Float32Array.from(src), views(m.request.inputs[i]!))
      })
      yield* m.request.eval
      const out: Record<string, Float32Array> = {}
      m.outputs.forEach((l, i) => {
        const a = new Float32Array(l.logicalElements)
        unpackSurface(l, views(m.request.outputs[i]!), a)
        out[l.name] = a
      })
      return out
    })).pipe(Effect.provide(Sim.layer({ latency: "off", rules: "warn", ...options })))
  )

/** Wraps op lines into a program with fp32 inputs (declared `inputs`) returning `outputs`. */
export const program = (inputs: string, body: string, outputs: string): string =>
  `program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n  func main<ios18>(${inputs}) {\n${body}\n  } -> (${outputs});\n}\n`

/** Deterministic values in [-1, 1). */
export const randoms = (n: number, seed = 1): Float32Array => {
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 2 ** 31 - 1
  }
  return a
}

/** Max |a - b| (NaN-aware: mismatched NaN counts as Infinity). */
export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (!(Number.isNaN(x) && Number.isNaN(y))) return Infinity
      continue
    }
    if (x === y) continue
    m = Math.max(m, Math.abs(x - y))
  }
  return m
}
