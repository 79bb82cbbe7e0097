/**
 * The ANE↔GPU Stream stage (`Pipeline.stream`): throughput of an alternating ANE → GPU stream at depth 2 over
 * depth 1 on the simulator, both stages taking 100 µs: the engine's time is FLOPs over a throughput chosen so one
 * evaluation takes 100 µs and queues on the one engine (no overlapping dispatch floor), and the simulated GPU runs
 * one 100 µs dispatch at a time. At depth 2 one element's GPU step overlaps the next one's ANE step, so the ideal
 * ratio is 2. Figures: `speedup_depth2` (median of 7 interleaved pairs over the same 1 500 inputs) and the µs per
 * element at each depth.
 */
import { Effect, Stream } from "effect"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import * as Ane from "../src/services/Ane.js"
import * as Metal from "../src/services/Metal.js"
import type { Model } from "../src/services/Model.js"
import * as Pipeline from "../src/services/Pipeline.js"
import { round } from "./harness.js"

const STAGE_US = 100

const program = `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 1, 1, 64]> x) {
        tensor<fp16, [1, 1, 1, 64]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
`

const median = (xs: ReadonlyArray<number>) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** The throughput (TFLOP/s) that makes one evaluation of the program take STAGE_US of engine time. */
const calibrate = Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const tflops = 1e-6
  const model = yield* (yield* Ane.Ane).compile(CompileOptions.mil({ text: program }))
  const stats = yield* model.evalWithStats
  const ns = stats.hwExecutionNs ?? 0
  if (!(ns > 0)) return yield* Effect.dieMessage("the simulator reported no modelled execution time")
  return tflops * (ns / (STAGE_US * 1000))
})).pipe(Effect.provide(Ane.layerSimulator({ latency: { dispatchUs: 0, tflops: 1e-6 } }))))

/** Wall time (µs) of one run of `inputs` through ANE → GPU at `depth`. */
const timeStream = (
  device: Metal.MetalDevice,
  first: Model,
  kernel: Metal.ComputePipeline,
  depth: number,
  inputs: ReadonlyArray<ReadonlyArray<Float32Array>>
) =>
  Effect.gen(function*() {
    const t0 = process.hrtime.bigint()
    const n = yield* Stream.fromIterable(inputs).pipe(
      Pipeline.stream(device, { first, kernel, grid: 64, depth }),
      Stream.runCount
    )
    if (n !== inputs.length) return yield* Effect.dieMessage(`stream produced ${n} of ${inputs.length}`)
    return Number(process.hrtime.bigint() - t0) / 1000
  })

export default async function pipeline(): Promise<Record<string, number | string>> {
  const tflops = await calibrate
  const layer = Ane.layerSimulator({ latency: { dispatchUs: 0, tflops }, gpu: { dispatchUs: STAGE_US }, rules: "off" })
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const device = yield* Metal.open
    const first = yield* (yield* Ane.Ane).compile(CompileOptions.mil({ text: program }))
    // The GPU step: a negation over the fp16 output (one pass over the surface).
    const kernel = yield* device.compile(Metal.kernel({
      name: "negate",
      simulate: ({ buffers }) => {
        const b = buffers[0]!
        const h = new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)
        for (let i = 0; i < h.length; i++) h[i] = h[i]! ^ 0x8000
      }
    }))
    const inputs = Array.from({ length: 1500 }, (_, i) => [new Float32Array(64).fill(i % 7)] as ReadonlyArray<Float32Array>)
    yield* timeStream(device, first, kernel, 1, inputs.slice(0, 200))
    yield* timeStream(device, first, kernel, 2, inputs.slice(0, 200))
    const d1s: Array<number> = [], d2s: Array<number> = [], ratios: Array<number> = []
    for (let r = 0; r < 7; r++) {
      const order = r % 2 === 0 ? [1, 2] : [2, 1]
      const a = yield* timeStream(device, first, kernel, order[0]!, inputs)
      const b = yield* timeStream(device, first, kernel, order[1]!, inputs)
      const [d1, d2] = order[0] === 1 ? [a, b] : [b, a]
      d1s.push(d1 / inputs.length)
      d2s.push(d2 / inputs.length)
      ratios.push(d1 / d2)
    }
    return { d1: median(d1s), d2: median(d2s), ratio: median(ratios) }
  })).pipe(Effect.provide(layer)))
  return {
    depth1_us_per_element: round(result.d1),
    depth2_us_per_element: round(result.d2),
    speedup_depth2: round(result.ratio, 2),
    target: ">= 1.8",
    model: `simulator, ANE ${STAGE_US} µs per eval queued on one engine, GPU ${STAGE_US} µs per dispatch`
  }
}
