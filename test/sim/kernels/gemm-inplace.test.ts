import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { afterAll, afterEach } from "vitest"
import { ARENA_LIMIT_BYTES, kernelArena, kernelMemoryInUse, kernelOffset } from "../../../src/sim/kernels/gemm.js"
import {
  gemm, gemmPacked, packB, readyGemmWorkers, setFma, setGemmThreads, setKernelBackend, splitProducts, terminateGemmWorkers
} from "../../../src/sim/kernels/index.js"
import { ok, rand } from "./helpers.js"

// Operands that live in the kernel memory are read and written in place; the results must be the same bits as
// with ordinary arrays (which are copied in and out) and as the JS fallback.
const defaultThreads = setGemmThreads(0)
afterAll(() => {
  setKernelBackend("auto")
  setFma(true)
  setGemmThreads(defaultThreads)
  terminateGemmWorkers()
})
afterEach(() => {
  setKernelBackend("auto")
  setFma(true)
})

/** `n` floats copied into an arena array, with `pad` untouched floats before them (so offsets are exercised). */
const resident = (arena: ReturnType<typeof kernelArena>, x: Float32Array, pad = 0): Float32Array => {
  const v = arena.array(x.length + pad)!
  v.set(x, pad)
  return v
}

interface Case {
  readonly M: number
  readonly N: number
  readonly K: number
  readonly transA: boolean
  readonly transB: boolean
  readonly accumulate: boolean
  /** Row stride of C beyond N (its extra columns must be left alone). */
  readonly cPad: number
}

const cases: ReadonlyArray<Case> = [
  { M: 1, N: 9, K: 5, transA: false, transB: false, accumulate: false, cPad: 0 },
  { M: 1, N: 16, K: 7, transA: true, transB: true, accumulate: true, cPad: 0 },
  { M: 7, N: 13, K: 33, transA: false, transB: true, accumulate: true, cPad: 3 },
  { M: 17, N: 20, K: 513, transA: true, transB: false, accumulate: false, cPad: 0 },
  // Large enough to be split across threads.
  { M: 160, N: 136, K: 130, transA: false, transB: false, accumulate: true, cPad: 5 },
  { M: 130, N: 129, K: 140, transA: true, transB: true, accumulate: false, cPad: 0 }
]

const label = (c: Case) => `${c.M}×${c.N}, K=${c.K}, transA ${c.transA}, transB ${c.transB}, acc ${c.accumulate}, pad ${c.cPad}`

/** Runs one product with the operands given, C starting from `c0`; returns C's whole buffer after. */
const product = (
  c: Case, a: Float32Array, aOff: number, b: Float32Array, bOff: number, out: Float32Array, cOff: number
): Float32Array => {
  const { M, N, K, transA, transB, accumulate, cPad } = c
  gemm(M, N, K, a, aOff, transA ? M : K, transA, b, bOff, transB ? K : N, transB, out, cOff, N + cPad, accumulate)
  return out.slice(cOff)
}

describe("GEMM operands in the kernel memory", () => {
  it("an arena's arrays are zeroed views into the kernel memory, and the memory comes back on dispose", () => {
    const before = kernelMemoryInUse()
    const arena = kernelArena()
    const x = arena.array(1000)!
    expect(kernelOffset(x)).toBeGreaterThan(0)
    expect(kernelOffset(new Float32Array(4))).toBe(-1)
    expect(Array.from(x.subarray(0, 8))).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    x.fill(7)
    expect(arena.bytes()).toBeGreaterThanOrEqual(4000)
    expect(kernelMemoryInUse()).toBeGreaterThanOrEqual(before + 4000)
    arena.dispose()
    expect(arena.disposed()).toBe(true)
    expect(arena.array(4)).toBeUndefined()
    expect(kernelMemoryInUse()).toBe(before)
    // The block is handed out again, cleared.
    const again = kernelArena()
    const y = again.array(1000)!
    expect(y.every((v) => v === 0)).toBe(true)
    again.dispose()
  })

  it("an arena dropped without dispose gives its memory back when collected", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "../../..")
    const gemmUrl = pathToFileURL(join(root, "src/sim/kernels/gemm.ts")).href
    const script = `
const { kernelArena, kernelMemoryInUse } = await import(${JSON.stringify(gemmUrl)})
const before = kernelMemoryInUse()
const kept = kernelArena()
const live = kept.array(50000)
;(() => { const dropped = kernelArena(); dropped.array(100000); dropped.array(7) })()
const held = kernelMemoryInUse() - before
for (let i = 0; i < 20 && kernelMemoryInUse() - before > 200000 + 64; i++) {
  globalThis.gc()
  await new Promise((r) => setTimeout(r, 10))
}
console.log(JSON.stringify({ held, after: kernelMemoryInUse() - before, live: live.length }))
`
    const out = execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root, encoding: "utf8", timeout: 60_000
    })
    const r = JSON.parse(out.trim().split("\n").pop()!) as { held: number; after: number; live: number }
    expect(r.held).toBeGreaterThanOrEqual(4 * 150007)
    // The kept arena's array is still held; the dropped one's blocks are back.
    expect(r.after).toBe(200000)
    expect(r.live).toBe(50000)
  }, 90_000)

  it("refuses what it cannot hold instead of throwing", () => {
    const arena = kernelArena()
    expect(arena.array(0)).toBeUndefined()
    expect(arena.array(-3)).toBeUndefined()
    expect(arena.array(1.5)).toBeUndefined()
    expect(arena.array(ARENA_LIMIT_BYTES / 4 + 1)).toBeUndefined()
    arena.dispose()
  })

  describe.each([1, 2])("on %i thread(s)", (threads) => {
    it.each(cases.map((c) => [label(c), c] as const))("%s: in place = copied = JS, bit for bit", async (_, c) => {
      setGemmThreads(threads)
      setFma(false)
      if (threads > 1) {
        // The first large product starts the worker; wait until it takes work.
        const z = new Float32Array(128 * 128)
        gemm(128, 128, 128, z, 0, 128, false, z, 0, 128, false, z.slice(), 0, 128, false)
        for (let i = 0; i < 300 && readyGemmWorkers() < 1; i++) await new Promise((r) => setTimeout(r, 10))
      }
      const { M, N, K, cPad } = c
      const a = rand(M * K, M + K), b = rand(K * N, N + 3), c0 = rand(M * (N + cPad), 11)
      const arena = kernelArena()
      try {
        ok(setKernelBackend("js"))
        const js = product(c, a, 0, b, 0, c0.slice(), 0)
        ok(setKernelBackend("wasm"))
        const copied = product(c, a, 0, b, 0, c0.slice(), 0)
        const splitsBefore = splitProducts()
        const inPlace = product(c, resident(arena, a, 3), 3, resident(arena, b, 5), 5, resident(arena, c0, 2), 2)
        // Mixed: only C in place, then only A and B.
        const onlyC = product(c, a, 0, b, 0, resident(arena, c0, 1), 1)
        const onlyAB = product(c, resident(arena, a), 0, resident(arena, b), 0, c0.slice(), 0)
        expect(Array.from(copied)).toEqual(Array.from(js))
        expect(Array.from(inPlace)).toEqual(Array.from(js))
        expect(Array.from(onlyC)).toEqual(Array.from(js))
        expect(Array.from(onlyAB)).toEqual(Array.from(js))
        if (threads === 2 && M * N * K >= 1 << 21) expect(splitProducts()).toBeGreaterThan(splitsBefore)
      } finally {
        arena.dispose()
      }
    })
  })

  it("a packed product with a bias row writes C in place, and a transposed C is still copied out", () => {
    setFma(false)
    const M = 40, N = 24, K = 70
    const a = rand(M * K, 1), w = rand(N * K, 2), bias = rand(N, 3)
    const B = packB(K, N, w, 0, K, true)
    const arena = kernelArena()
    try {
      ok(setKernelBackend("js"))
      const js = new Float32Array(M * N)
      gemmPacked(M, a, 0, K, false, B, js, 0, N, false, false, bias)
      const jsT = new Float32Array(M * N)
      gemmPacked(M, a, 0, K, false, B, jsT, 0, M, true, false, bias)
      ok(setKernelBackend("wasm"))
      const out = arena.array(M * N)!
      gemmPacked(M, resident(arena, a), 0, K, false, B, out, 0, N, false, false, bias)
      expect(Array.from(out)).toEqual(Array.from(js))
      const outT = arena.array(M * N)!
      gemmPacked(M, resident(arena, a), 0, K, false, B, outT, 0, M, true, false, bias)
      expect(Array.from(outT)).toEqual(Array.from(jsT))
    } finally {
      arena.dispose()
      B.dispose()
    }
  })

  it("C overlapping an A read in place is computed as if copied", () => {
    setFma(false)
    const M = 12, K = 16, N = 16
    const a = rand(M * K, 5), b = rand(K * N, 6)
    ok(setKernelBackend("js"))
    const js = new Float32Array(M * N)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, js, 0, N, false)
    ok(setKernelBackend("wasm"))
    const arena = kernelArena()
    try {
      // C is A's own buffer: every row of A must be read before it is overwritten.
      const shared = resident(arena, a)
      gemm(M, N, K, shared, 0, K, false, b, 0, N, false, shared, 0, N, false)
      expect(Array.from(shared)).toEqual(Array.from(js))
    } finally {
      arena.dispose()
    }
  })
})
