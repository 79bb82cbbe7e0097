import { describe, expect, it } from "@effect/vitest"
import { afterEach } from "vitest"
import { kernelArena } from "../../../src/sim/kernels/gemm.js"
import { setKernelBackend } from "../../../src/sim/kernels/index.js"
import { applyMatmulCliff, MATMUL_CLIFF, roundArrayToFp16, roundBitsToFp16 } from "../../../src/sim/numerics.js"

// The WebAssembly kernel (fp16round.wat) must give the JS loops' bits exactly, in place in the kernel memory and
// for ordinary arrays the JS loops run.
afterEach(() => {
  setKernelBackend("auto")
})

/** Every boundary of the rules, both signs, NaNs with payloads, then pseudo-random bit patterns. */
const patterns = (random: number): Uint32Array => {
  const edges = [
    0, 1, 0x007fffff, 0x00800000, 0x387fffff, 0x38800000, 0x38800001, 0x38801000, 0x38802000, 0x3f800fff, 0x3f801000,
    0x3f801001, 0x3f802fff, 0x3f803000, 0x477fefff, 0x477ff000, 0x477ff001, 0x7f7fffff, 0x7f800000, 0x7f800001,
    0x7fc00000, 0x7fffffff
  ]
  const all = [...edges, ...edges.map((e) => (e | 0x80000000) >>> 0)]
  let s = 12345
  for (let i = 0; i < random; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    all.push(s)
  }
  return Uint32Array.from(all)
}

const reference = (bits: Uint32Array, f: (u: Uint32Array) => void): Uint32Array => {
  const u = bits.slice()
  f(u)
  return u
}

const jsCliff = (u: Uint32Array) => {
  const a = new Float32Array(u.buffer)
  for (let i = 0; i < a.length; i++) {
    if (a[i]! >= MATMUL_CLIFF) a[i] = Infinity
    else if (a[i]! <= -MATMUL_CLIFF) a[i] = -Infinity
  }
}

describe("fp16 rounding and the matmul cliff on the WebAssembly kernel", () => {
  // Lengths with a tail (not a multiple of 4), one large.
  it.each([63, 64, 1001, 40_003])("%i elements: the same bits as the JS loops, in place and on ordinary arrays", (n) => {
    const bits = patterns(n - 44)
    expect(bits.length).toBe(n)
    for (const [name, run, js] of [
      ["round", roundArrayToFp16, (u: Uint32Array) => roundBitsToFp16(u)],
      ["cliff", applyMatmulCliff, jsCliff]
    ] as const) {
      const want = reference(bits, js)
      const plain = new Float32Array(bits.slice().buffer)
      run(plain)
      expect(new Uint32Array(plain.buffer), `${name}, ordinary array`).toEqual(want)
      const arena = kernelArena()
      const resident = arena.array(n + 3)!
      new Uint32Array(resident.buffer, resident.byteOffset, n + 3).set(bits, 3)
      const view = resident.subarray(3)
      run(view)
      expect(new Uint32Array(view.buffer, view.byteOffset, n), `${name}, in the kernel memory`).toEqual(want)
      arena.dispose()
    }
  })

  it("a prefix of n elements leaves the rest alone", () => {
    const a = Float32Array.from({ length: 200 }, () => 1 + 2 ** -12)
    roundArrayToFp16(a, 100)
    applyMatmulCliff(a, 100)
    expect(a[99]).toBe(1)
    expect(a[100]).toBe(1 + 2 ** -12)
  })

  it("with the JS kernels forced, the JS loops run and agree", () => {
    const bits = patterns(5000)
    setKernelBackend("js")
    const a = new Float32Array(bits.slice().buffer)
    roundArrayToFp16(a)
    expect(new Uint32Array(a.buffer)).toEqual(reference(bits, (u) => roundBitsToFp16(u)))
  })
})
