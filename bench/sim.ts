/**
 * Simulator kernel throughput: a 512×512×512 matmul and a 1×1 conv 512→512 over 256 positions on the active
 * kernel backend, against a naive triple-loop JS matmul measured in the same run; plus the JS fallback and the
 * fp16 rounding pass. `--js` forces the JS backend for the whole run.
 */
import { Either } from "effect"
import { conv, kernelBackend, matmul, planConv, planMatmul, setKernelBackend } from "../src/sim/kernels/index.js"
import { roundArrayToFp16 } from "../src/sim/numerics.js"
import { medianNs, round } from "./harness.js"

const random = (n: number, seed: number): Float32Array => {
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 2 ** 32 - 0.5
  }
  return a
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

  const gMm = flopsMm / tMm
  const gNaive = flopsMm / tNaive
  return {
    backend: kernelBackend(),
    gflops_matmul: round(gMm, 2),
    gflops_conv1x1: round(flopsConv / tConv, 2),
    gflops_naive_js_matmul: round(gNaive, 2),
    ratio_matmul_vs_naive: round(gMm / gNaive, 1),
    ratio_conv1x1_vs_naive: round(flopsConv / tConv / gNaive, 1),
    ...(gJs !== undefined ? { gflops_js_fallback_matmul: round(gJs, 2) } : {}),
    fp16_round_melem_per_s: round(big.length / tRound * 1e3, 1)
  }
}
