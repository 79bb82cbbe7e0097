import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, afterEach } from "vitest"
import { Effect } from "effect"
import { CompileOptions } from "../../../src/schema/CompileOptions.js"
import { Backend } from "../../../src/services/Backend.js"
import { kernelMemoryInUse } from "../../../src/sim/kernels/gemm.js"
import * as Sim from "../../../src/sim/SimBackend.js"
import {
  fmaActive, fmaAvailable, gemm, gemmPacked, packB, readyGemmWorkers, retainGemmWorkers, runningGemmWorkers,
  setFma, setGemmThreads, setKernelBackend, splitProducts, terminateGemmWorkers
} from "../../../src/sim/kernels/index.js"
import { expectWithin, ok, rand, sumBound } from "./helpers.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..")
const defaultThreads = setGemmThreads(0) // an invalid count leaves the setting alone and returns it

afterAll(() => {
  setKernelBackend("auto")
  setFma(true)
  setGemmThreads(defaultThreads)
  terminateGemmWorkers()
})
afterEach(() => setFma(true))

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// A plain fp32 reference of C = A·B (+ C0) with the kernels' summation order: each product and sum rounded.
const reference = (
  M: number, N: number, K: number, A: (i: number, k: number) => number, B: (k: number, j: number) => number,
  c0?: (i: number, j: number) => number
) => {
  const out = new Float32Array(M * N)
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = c0 ? c0(i, j) : 0
      for (let k = 0; k < K; k++) s = Math.fround(s + Math.fround(A(i, k) * B(k, j)))
      out[i * N + j] = s
    }
  }
  return out
}

describe.each(["wasm", "js"] as const)("gemm with a packed B on %s", (backend) => {
  it.each([
    [1, 1, 1, false], [3, 7, 5, true], [4, 8, 16, false], [5, 13, 300, true], [9, 258, 256, false], [2, 512, 128, true],
    // Row tiles of 6, then 4, then single rows; k blocks of 512 with a short last one.
    [6, 11, 257, true], [11, 9, 3, false], [16, 20, 513, false]
  ] as const)("%i×%i, K=%i (B transposed: %s) gives the unfused summation order exactly", (M, N, K, transB) => {
    ok(setKernelBackend(backend))
    setFma(false)
    const a = rand(M * K, M + 1), b = rand(K * N, N + 2)
    const B = packB(K, N, b, 0, transB ? K : N, transB)
    const out = new Float32Array(M * N).fill(Number.NaN)
    gemmPacked(M, a, 0, K, false, B, out, 0, N, false, false)
    const ref = reference(M, N, K, (i, k) => a[i * K + k]!, (k, j) => (transB ? b[j * K + k]! : b[k * N + j]!))
    expect(Array.from(out)).toEqual(Array.from(ref))
    B.dispose()
  })

  it("writes C transposed and accumulates onto it (a convolution's bias)", () => {
    ok(setKernelBackend(backend))
    setFma(false)
    const M = 6, N = 11, K = 9
    const a = rand(K * M, 3), b = rand(N * K, 4)
    const B = packB(K, N, b, 0, K, true)
    // C is stored [N, M] with a row stride of M + 2 (two unused columns stay as they are).
    const ld = M + 2
    const c = new Float32Array(N * ld).fill(0.25)
    gemmPacked(M, a, 0, M, true, B, c, 0, ld, true, true)
    const ref = reference(M, N, K, (i, k) => a[k * M + i]!, (k, j) => b[j * K + k]!, () => 0.25)
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) expect(c[j * ld + i]).toBe(ref[i * N + j])
    for (let j = 0; j < N; j++) expect([c[j * ld + M], c[j * ld + M + 1]]).toEqual([0.25, 0.25])
    B.dispose()
  })

  it("packed and unpacked products agree bit for bit", () => {
    ok(setKernelBackend(backend))
    setFma(false)
    const M = 7, N = 300, K = 520
    const a = rand(M * K, 5), b = rand(K * N, 6)
    const viaGemm = new Float32Array(M * N), viaPacked = new Float32Array(M * N)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, viaGemm, 0, N, false)
    const B = packB(K, N, b, 0, N, false)
    gemmPacked(M, a, 0, K, false, B, viaPacked, 0, N, false, false)
    expect(Array.from(viaPacked)).toEqual(Array.from(viaGemm))
    B.dispose()
  })
})

describe("packed weights in the kernel memory", () => {
  it("are given back when disposed, and a second dispose is harmless", () => {
    ok(setKernelBackend("wasm"))
    const before = kernelMemoryInUse()
    const B = packB(300, 200, rand(300 * 200, 7), 0, 200, false)
    expect(kernelMemoryInUse()).toBeGreaterThanOrEqual(before + 300 * 200 * 4)
    B.dispose()
    B.dispose()
    expect(kernelMemoryInUse()).toBe(before)
  })

  it("still compute after their neighbours are freed and the space reused", () => {
    ok(setKernelBackend("wasm"))
    setFma(false)
    const K = 40, N = 24
    const b1 = rand(K * N, 8), b2 = rand(K * N, 9), a = rand(3 * K, 10)
    const first = packB(K, N, b1, 0, N, false)
    const second = packB(K, N, b2, 0, N, false)
    first.dispose()
    const third = packB(K, N, b1, 0, N, false)
    const out = new Float32Array(3 * N)
    gemmPacked(3, a, 0, K, false, second, out, 0, N, false, false)
    expect(Array.from(out)).toEqual(Array.from(reference(3, N, K, (i, k) => a[i * K + k]!, (k, j) => b2[k * N + j]!)))
    second.dispose()
    third.dispose()
  })
})

describe("products split across worker threads", () => {
  it("give the single-thread result bit for bit, and stop when the last holder lets go", async () => {
    ok(setKernelBackend("wasm"))
    setFma(false)
    const release = retainGemmWorkers(2)
    const M = 96, N = 160, K = 200 // 3.1 M multiply-adds: past the split threshold
    const a = rand(M * K, 11), b = rand(K * N, 12)
    const single = new Float32Array(M * N), split = new Float32Array(M * N)
    setGemmThreads(1)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, single, 0, N, false)
    setGemmThreads(2)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, split, 0, N, false) // starts the worker
    expect(runningGemmWorkers()).toBe(1)
    for (let i = 0; i < 200 && readyGemmWorkers() < 1; i++) await sleep(10)
    expect(readyGemmWorkers()).toBe(1)
    const before = splitProducts()
    split.fill(Number.NaN)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, split, 0, N, false)
    expect(splitProducts()).toBe(before + 1)
    expect(Array.from(split)).toEqual(Array.from(single))
    release()
    expect(runningGemmWorkers()).toBe(0)
  })

  it("pack B and copy C out across threads, matching the single-thread result bit for bit", async () => {
    ok(setKernelBackend("wasm"))
    const release = retainGemmWorkers(2)
    const M = 40, N = 203, K = 1100 // three k blocks, a ragged last panel, 8.9 M multiply-adds
    const a = rand(M * K, 21), b = rand(N * K, 22), c0 = rand(M * N, 23)
    const runBoth = (threads: number) => {
      setGemmThreads(threads)
      const plain = c0.slice(), packed = c0.slice()
      gemm(M, N, K, a, 0, K, false, b, 0, K, true, plain, 0, N, true)
      const pb = packB(K, N, b, 0, K, true)
      gemmPacked(M, a, 0, K, false, pb, packed, 0, N, false, true)
      // C transposed into a wider buffer, and row-major with a row stride past N: C goes out in pieces both ways.
      const wide = new Float32Array(N * (M + 3)).fill(7), strided = new Float32Array(M * (N + 5)).fill(7)
      gemmPacked(M, a, 0, K, false, pb, wide, 0, M + 3, true, false)
      gemmPacked(M, a, 0, K, false, pb, strided, 0, N + 5, false, false)
      pb.dispose()
      return [plain, packed, wide, strided] as const
    }
    for (const fused of [false, true]) {
      setFma(fused)
      const [single, singlePacked, singleWide, singleStrided] = runBoth(1)
      runBoth(2) // starts the worker
      for (let i = 0; i < 200 && readyGemmWorkers() < 1; i++) await sleep(10)
      const before = splitProducts()
      const [split, splitPacked, splitWide, splitStrided] = runBoth(2)
      expect(splitProducts()).toBe(before + 4)
      expect(Array.from(splitWide)).toEqual(Array.from(singleWide))
      expect(Array.from(splitStrided)).toEqual(Array.from(singleStrided))
      expect(splitStrided[N]).toBe(7)
      expect(Array.from(split)).toEqual(Array.from(single))
      expect(Array.from(splitPacked)).toEqual(Array.from(singlePacked))
      expect(Array.from(split)).toEqual(Array.from(splitPacked))
    }
    release()
  })

  it("never keep the process alive", async () => {
    const script = [
      "import { gemm, setGemmThreads } from './src/sim/kernels/index.ts'",
      "setGemmThreads(2)",
      "const n = 256, a = new Float32Array(n * n).fill(1), c = new Float32Array(n * n)",
      "gemm(n, n, n, a, 0, n, false, a, 0, n, false, c, 0, n, false)",
      "setTimeout(() => { gemm(n, n, n, a, 0, n, false, a, 0, n, false, c, 0, n, false); console.log(c[0]) }, 300)"
    ].join("\n")
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script],
        { cwd: root, timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout)))
    })
    expect(out.trim()).toBe("256")
  })
})

describe("a simulator backend", () => {
  const text = `program(1.3)
{
  func main<ios18>(tensor<fp16, [256, 256]> x) {
    tensor<fp16, [256, 256]> w = const()[name = string("w"), val = tensor<fp16, [256, 256]>(0x1p-8)];
    tensor<fp16, [256, 256]> y = matmul(x = x, y = w)[name = string("y")];
  } -> (y);
}
`
  it("starts workers for a large product with its threads option and stops them when its scope closes", async () => {
    ok(setKernelBackend("wasm"))
    terminateGemmWorkers()
    const during = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const be = yield* Backend
      const m = yield* be.compile(CompileOptions.mil({ text }))
      yield* m.request.eval
      return runningGemmWorkers()
    })).pipe(Effect.provide(Sim.layer({ threads: 2, latency: "off" }))))
    expect(during).toBe(1)
    expect(runningGemmWorkers()).toBe(0)
  })

  it("with threads 1 runs every product on the calling thread", async () => {
    ok(setKernelBackend("wasm"))
    const before = splitProducts()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const be = yield* Backend
      const m = yield* be.compile(CompileOptions.mil({ text }))
      yield* m.request.eval
      yield* m.request.eval
    })).pipe(Effect.provide(Sim.layer({ threads: 1, latency: "off" }))))
    expect(runningGemmWorkers()).toBe(0)
    expect(splitProducts()).toBe(before)
  })
})

describe("fused multiply-add", () => {
  // Where this engine lacks relaxed SIMD, the check runs in a child with it enabled (Node 20 has it behind a flag).
  const compareInChild = () =>
    new Promise<{ available: boolean; maxExcess: number }>((resolve, reject) => {
      const script = [
        "import { fmaAvailable, gemm, setFma } from './src/sim/kernels/index.ts'",
        "const M = 9, N = 37, K = 700",
        "const r = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + s) * 0.5)",
        "const a = r(M * K, 1), b = r(K * N, 2), f = new Float32Array(M * N)",
        "setFma(true); gemm(M, N, K, a, 0, K, false, b, 0, N, false, f, 0, N, false)",
        "let maxExcess = -Infinity",
        "for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {",
        "  let s = 0, abs = 0",
        "  for (let k = 0; k < K; k++) { const p = a[i * K + k] * b[k * N + j]; s += p; abs += Math.abs(p) }",
        "  const bound = (K + 2) * 2 ** -24 * abs",
        "  maxExcess = Math.max(maxExcess, Math.abs(f[i * N + j] - s) - bound)",
        "}",
        "console.log(JSON.stringify({ available: fmaAvailable(), maxExcess }))"
      ].join("\n")
      execFile(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", "--input-type=module", "-e", script],
        { cwd: root, timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout))))
    })

  it("stays within the fp32 accumulation bound of the float64 sum, like the unfused kernel", async () => {
    if (fmaAvailable()) {
      ok(setKernelBackend("wasm"))
      expect(setFma(true)).toBe(true)
      expect(fmaActive()).toBe(true)
      const M = 9, N = 37, K = 700
      const a = rand(M * K, 13), b = rand(K * N, 14)
      const fused = new Float32Array(M * N), plain = new Float32Array(M * N)
      gemm(M, N, K, a, 0, K, false, b, 0, N, false, fused, 0, N, false)
      setFma(false)
      gemm(M, N, K, a, 0, K, false, b, 0, N, false, plain, 0, N, false)
      const ref = new Float64Array(M * N), bound = new Float64Array(M * N)
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = 0, abs = 0
        for (let k = 0; k < K; k++) { const p = a[i * K + k]! * b[k * N + j]!; s += p; abs += Math.abs(p) }
        ref[i * N + j] = s
        bound[i * N + j] = sumBound(K, abs)
      }
      expectWithin(fused, ref, bound)
      expectWithin(plain, ref, bound)
    } else {
      expect(setFma(true)).toBe(false)
      expect(fmaActive()).toBe(false)
      const child = await compareInChild()
      expect(child.available).toBe(true)
      expect(child.maxExcess).toBeLessThanOrEqual(0)
    }
  })
})
