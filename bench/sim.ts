/**
 * Simulator kernel throughput: a 512×512×512 matmul and a 1×1 conv 512→512 over 256 positions on the active
 * kernel backend (split across `threads` threads: all cores unless `--threads n`), against a naive triple-loop JS
 * matmul measured in the same run; plus the JS fallback, the fp16 rounding pass, and `silero_us`: one synchronous
 * eval of the corpus Silero VAD v6 package (rules off, latency model off). `--js` forces the JS backend.
 */
import { Effect, Either } from "effect"
import { existsSync } from "node:fs"
import { writeF32 } from "../src/fp16/index.js"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import { Backend } from "../src/services/Backend.js"
import {
  conv, fmaActive, gemmThreads, kernelBackend, matmul, planConv, planMatmul, readyGemmWorkers, setGemmThreads,
  setKernelBackend
} from "../src/sim/kernels/index.js"
import { roundArrayToFp16 } from "../src/sim/numerics.js"
import * as Sim from "../src/sim/SimBackend.js"
import { corpusPath } from "../test/corpus/corpus.js"
import { medianNs, random, round } from "./harness.js"

/** The corpus package the silero figures time (test/corpus, or the folder named by MIL_CORPUS). */
export const SILERO_PACKAGE = corpusPath(
  "FluidInference__mobius/models/vad/silero-vad/coreml/compiled/silero-vad-unified-v6.0.0.mlmodelc"
)

/** The Silero package compiled on the simulator's backend with a tone in every input; its warmed-up sync eval. */
export const sileroEval = Effect.gen(function*() {
  const be = yield* Backend
  const m = yield* be.compile(CompileOptions.package({ path: SILERO_PACKAGE }))
  // A tone in every input (audio, and a small recurrent state): the same work as a real frame.
  m.inputs.forEach((layout, i) => {
    const x = Float32Array.from({ length: layout.logicalElements }, (_, k) => 0.1 * Math.sin(k * 0.3))
    writeF32(x, m.request.inputs[i]!, layout)
  })
  const evalOnce = m.request.eval
  for (let i = 0; i < 300; i++) yield* evalOnce
  return evalOnce
})

/** Median µs of one synchronous eval of the Silero package on the simulator, or undefined when it is missing. */
export const sileroEvalUs = async (): Promise<number | undefined> => {
  if (!existsSync(SILERO_PACKAGE)) return undefined
  return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const evalOnce = yield* sileroEval
    const samples: Array<number> = []
    for (let r = 0; r < 15; r++) {
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < 50; i++) yield* evalOnce
      samples.push(Number(process.hrtime.bigint() - t0) / 50 / 1000)
    }
    samples.sort((a, b) => a - b)
    return samples[Math.floor(samples.length / 2)]!
  })).pipe(Effect.provide(Sim.layer({ latency: "off", rules: "off" }))))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts the GEMM workers and waits until they take work, so a timed run is not charged their start-up. */
export const warmThreads = async (): Promise<void> => {
  const n = 256, a = new Float32Array(n * n), c = new Float32Array(n * n)
  const plan = Either.getOrThrow(planMatmul([n, n], [n, n]))
  matmul(plan, a, a, c)
  for (let i = 0; i < 300 && readyGemmWorkers() < gemmThreads() - 1; i++) await sleep(10)
}

// The baseline: the obvious i-j-k loop a first implementation would write.
const naiveMatmul = (n: number, a: Float32Array, b: Float32Array, c: Float32Array): void => {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0
      for (let k = 0; k < n; k++) s += a[i * n + k]! * b[k * n + j]!
      c[i * n + j] = s
    }
  }
}

const orThrow = <A, E>(e: Either.Either<A, E>): A => Either.getOrThrowWith(e, (err) => new Error(String(err)))

export default async (args: ReadonlyArray<string>): Promise<Record<string, unknown>> => {
  if (args.includes("--js")) orThrow(setKernelBackend("js"))
  const t = args.indexOf("--threads")
  if (t >= 0) setGemmThreads(Number(args[t + 1]))
  await warmThreads()
  const n = 512
  const a = random(n * n, 1), b = random(n * n, 2), c = new Float32Array(n * n)
  const mm = orThrow(planMatmul([n, n], [n, n]))
  const flopsMm = 2 * n * n * n
  const tMm = medianNs(() => matmul(mm, a, b, c), 9)
  const tNaive = medianNs(() => naiveMatmul(n, a, b, c), 3)

  const S = 256
  const x = random(n * S, 3), w = random(n * n, 4), y = new Float32Array(n * S)
  const cv = orThrow(planConv([1, n, 1, S], [n, n, 1, 1]))
  const flopsConv = 2 * n * n * S
  const tConv = medianNs(() => conv(cv, x, w, undefined, y), 15)

  const big = random(1 << 20, 5)
  const work = new Float32Array(big.length)
  const tRound = medianNs(() => { work.set(big); roundArrayToFp16(work) }, 15)

  // The pure-JS fallback (same fp32 summation order), measured only when wasm is the active backend.
  let gJs: number | undefined
  if (kernelBackend() === "wasm") {
    orThrow(setKernelBackend("js"))
    gJs = flopsMm / medianNs(() => matmul(mm, a, b, c), 3)
    orThrow(setKernelBackend("auto"))
  }

  const sileroUs = await sileroEvalUs()
  const gMm = flopsMm / tMm
  const gNaive = flopsMm / tNaive
  return {
    backend: kernelBackend(),
    threads: gemmThreads(),
    fma: fmaActive(),
    gflops_matmul: round(gMm, 2),
    gflops_conv1x1: round(flopsConv / tConv, 2),
    gflops_naive_js_matmul: round(gNaive, 2),
    ratio_matmul_vs_naive: round(gMm / gNaive, 1),
    ratio_conv1x1_vs_naive: round(flopsConv / tConv / gNaive, 1),
    ...(gJs !== undefined ? { gflops_js_fallback_matmul: round(gJs, 2) } : {}),
    fp16_round_melem_per_s: round(big.length / tRound * 1e3, 1),
    ...(sileroUs !== undefined ? { silero_us: round(sileroUs, 1) } : {})
  }
}
