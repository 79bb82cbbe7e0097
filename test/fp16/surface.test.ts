/** Strided surface I/O: the spec's surface vectors, padding never written, channel subsets, f32 surfaces, both kernels. */
import { afterEach, describe, expect, it } from "@effect/vitest"
import {
  f32BitsToFp16,
  float32ToFp16,
  fp16KernelKind,
  fp16ToF32Bits,
  readF32,
  readFp16,
  useJsFallback,
  wasmSimdAvailable,
  writeF32,
  writeFp16
} from "../../src/fp16/index.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"

const layoutOf = (channels: number, width: number, height: number, elemSize: 2 | 4, rowStride: number, planeStride: number) =>
  TensorLayout.make({ channels, width, height, elemSize, rowStride, planeStride })

const u16At = (b: Uint8Array, off: number) => b[off]! | (b[off + 1]! << 8)
const u32At = (b: Uint8Array, off: number) => (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0
const f32Bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length)

/** Deterministic generator (LCG) so failures reproduce. */
const rng = (seed: number) => () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 2 ** 32
}

const kernels: ReadonlyArray<boolean> = wasmSimdAvailable ? [false, true] : [true]
afterEach(() => useJsFallback(false))

describe.each(kernels.map((js) => ({ js, name: js ? "js" : "wasm-simd" })))("surface I/O ($name)", ({ js, name }) => {
  const use = () => {
    useJsFallback(js)
    expect(fp16KernelKind()).toBe(name)
  }

  it("packs the spec's strided fp16 vectors and leaves padding alone (§16.2 test 1)", () => {
    use()
    const layout = layoutOf(2, 5, 2, 2, 64, 128)
    const values = [0, 1, -2.5, 3.25, -4.5, 5, -6.5, 7.75, -8, 9.5, -10.25, 11.5, -12, 13.25, -14.5, 15, -16.5, 17.75, -18, 19.5]
    const halves = [0x0000, 0x3c00, 0xc100, 0x4280, 0xc480, 0x4500, 0xc680, 0x47c0, 0xc800, 0x48c0, 0xc920, 0x49c0,
      0xca00, 0x4aa0, 0xcb40, 0x4b80, 0xcc20, 0x4c70, 0xcc80, 0x4ce0]
    const surface = new Uint8Array(layout.allocSize)
    writeF32(new Float32Array(values), surface, layout)
    for (let c = 0; c < 2; c++) {
      for (let h = 0; h < 2; h++) {
        for (let w = 0; w < 5; w++) expect(u16At(surface, c * 128 + h * 64 + w * 2)).toBe(halves[(c * 2 + h) * 5 + w])
        for (let b = 10; b < 64; b++) expect(surface[c * 128 + h * 64 + b]).toBe(0)
      }
    }
    const back = new Float32Array(20)
    readF32(surface, layout, back)
    expect(Array.from(back)).toEqual(values)
  })

  it("writes and reads a channel subset at the right planes (§16.2 test 2)", () => {
    use()
    const layout = layoutOf(4, 5, 1, 2, 64, 64)
    const surface = new Uint8Array(layout.allocSize)
    writeF32(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), surface, layout, 1, 2)
    expect([0, 2, 4, 6, 8].map((o) => u16At(surface, 64 + o))).toEqual([0x3c00, 0x4000, 0x4200, 0x4400, 0x4500])
    expect([0, 2, 4, 6, 8].map((o) => u16At(surface, 128 + o))).toEqual([0x4600, 0x4700, 0x4800, 0x4880, 0x4900])
    expect(surface.subarray(0, 64).every((b) => b === 0)).toBe(true)
    expect(surface.subarray(192).every((b) => b === 0)).toBe(true)
    const back = new Float32Array(10)
    readF32(surface, layout, back, 1, 2)
    expect(Array.from(back)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  it("stores f32 elements unconverted on an elemSize-4 surface (§16.2 test 3)", () => {
    use()
    const layout = layoutOf(2, 7, 2, 4, 64, 128)
    const values = Float32Array.from({ length: 28 }, (_, i) => i + 0.5)
    const surface = new Uint8Array(layout.allocSize)
    writeF32(values, surface, layout)
    for (let c = 0; c < 2; c++) {
      for (let h = 0; h < 2; h++) {
        for (let w = 0; w < 7; w++) {
          expect(u32At(surface, c * 128 + h * 64 + w * 4)).toBe(f32Bits(values)[(c * 2 + h) * 7 + w])
        }
      }
    }
    const back = new Float32Array(28)
    readF32(surface, layout, back)
    expect(back).toEqual(values)
  })

  it("never writes a padding byte, for random layouts, subsets and element sizes", () => {
    use()
    const next = rng(7)
    const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
    for (let trial = 0; trial < 60; trial++) {
      const elemSize = next() < 0.5 ? 2 : 4
      const width = int(1, 90)
      const height = int(1, 4)
      const channels = int(1, 6)
      const rowStride = TensorLayout.rowStrideFor(width, elemSize) + 64 * int(0, 2)
      const planeStride = height * rowStride + (next() < 0.5 ? 0 : int(1, 200))
      const layout = layoutOf(channels, width, height, elemSize, rowStride, planeStride)
      const start = int(0, channels - 1)
      const count = int(0, channels - start)
      const n = count * height * width
      const src = Float32Array.from({ length: n }, () => (next() - 0.5) * 1000)
      const surface = new Uint8Array(layout.allocSize).fill(0xa5)
      writeF32(src, surface, layout, start, count)
      const isData = new Uint8Array(layout.allocSize)
      for (let c = start; c < start + count; c++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            const off = c * planeStride + h * rowStride + w * elemSize
            isData.fill(1, off, off + elemSize)
            const i = ((c - start) * height + h) * width + w
            if (elemSize === 2) expect(u16At(surface, off)).toBe(float32ToFp16(src[i]!))
            else expect(u32At(surface, off)).toBe(f32Bits(src)[i])
          }
        }
      }
      let touched = 0
      for (let b = 0; b < layout.allocSize; b++) if (isData[b] === 0 && surface[b] !== 0xa5) touched++
      expect({ trial, touched }).toEqual({ trial, touched: 0 })
      const back = new Float32Array(n)
      readF32(surface, layout, back, start, count)
      for (let i = 0; i < n; i++) {
        const want = elemSize === 2 ? fp16ToF32Bits(float32ToFp16(src[i]!)) : f32Bits(src)[i]
        if (f32Bits(back)[i] !== want) expect({ trial, i, got: f32Bits(back)[i] }).toEqual({ trial, i, got: want })
      }
    }
  })

  it("moves raw fp16 patterns: copied to fp16 surfaces, widened exactly on f32 surfaces and rounded back", () => {
    use()
    const bits = Uint16Array.from({ length: 3 * 40 }, (_, i) => (i * 2654435761) & 0xffff)
    for (const elemSize of [2, 4] as const) {
      const layout = TensorLayout.packed({ channels: 3, height: 1, width: 40, elemSize })
      const surface = new Uint8Array(layout.allocSize).fill(0x5a)
      writeFp16(bits, surface, layout)
      for (let i = 0; i < bits.length; i++) {
        const off = Math.floor(i / 40) * layout.planeStride + (i % 40) * elemSize
        expect(elemSize === 2 ? u16At(surface, off) : u32At(surface, off)).toBe(
          elemSize === 2 ? bits[i] : fp16ToF32Bits(bits[i]!)
        )
      }
      const back = new Uint16Array(bits.length)
      readFp16(surface, layout, back)
      for (let i = 0; i < bits.length; i++) {
        // NaN payloads come back as the canonical quiet NaN; everything else exactly.
        const isNaN = (bits[i]! & 0x7c00) === 0x7c00 && (bits[i]! & 0x3ff) !== 0
        expect(back[i]).toBe(isNaN && elemSize === 4 ? (bits[i]! & 0x8000) | 0x7e00 : bits[i])
      }
    }
  })

  it("handles odd byte offsets, wide rows spanning several blocks, sparse and dense padded rows", () => {
    use()
    const next = rng(99)
    const shapes: ReadonlyArray<readonly [number, number, number, 2 | 4]> = [
      [2, 2, 40000, 2], [3, 2, 1, 2], [5, 3, 33, 2], [2, 1, 17, 4], [1, 600, 100, 2]
    ]
    for (const [channels, height, width, elemSize] of shapes) {
      const layout = TensorLayout.packed({ channels, height, width, elemSize })
      const backing = new Uint8Array(layout.allocSize + 3)
      const surface = backing.subarray(1, 1 + layout.allocSize) // misaligned on purpose
      const src = Float32Array.from({ length: layout.logicalElements }, () => (next() - 0.5) * 70000)
      writeF32(src, surface, layout)
      const back = new Float32Array(src.length)
      readF32(surface, layout, back)
      let wrong = 0
      for (let i = 0; i < src.length; i++) {
        const want = elemSize === 2 ? fp16ToF32Bits(float32ToFp16(src[i]!)) : f32Bits(src)[i]
        if (f32Bits(back)[i] !== want) wrong++
      }
      expect({ shape: [channels, height, width, elemSize], wrong }).toEqual({ shape: [channels, height, width, elemSize], wrong: 0 })
      expect(backing[0]).toBe(0)
      expect(backing[backing.length - 1]).toBe(0)
    }
  })
})

describe.runIf(wasmSimdAvailable)("wasm SIMD and JS kernels", () => {
  const layout = layoutOf(3, 1000, 2, 2, 2048, 4096 + 64)

  it("pack every kind of float32 bit pattern identically, and as the scalar rule says", () => {
    const next = rng(2024)
    const bits = new Uint32Array(layout.logicalElements)
    for (let i = 0; i < bits.length; i++) {
      const r = next()
      // Mix: any pattern, the fp16 range, subnormal range, near-ties, NaN/Inf.
      bits[i] = r < 0.2 ? Math.floor(next() * 2 ** 32)
        : r < 0.5 ? ((next() < 0.5 ? 0x80000000 : 0) | (0x38000000 + Math.floor(next() * 0x10000000))) >>> 0
        : r < 0.7 ? Math.floor(next() * 0x38800000)
        : r < 0.9 ? ((0x38800000 + Math.floor(next() * 0x0f000000)) & ~0x1fff | 0x1000) >>> 0
        : [0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x477ff000, 0x477fefff][Math.floor(next() * 7)]!
    }
    const src = new Float32Array(bits.buffer)
    const viaWasm = new Uint8Array(layout.allocSize).fill(0x11)
    const viaJs = new Uint8Array(layout.allocSize).fill(0x11)
    useJsFallback(false)
    writeF32(src, viaWasm, layout)
    useJsFallback(true)
    writeF32(src, viaJs, layout)
    expect(Buffer.compare(viaWasm, viaJs)).toBe(0)
    let wrong = 0
    for (let i = 0; i < bits.length; i++) {
      const c = Math.floor(i / 2000)
      const h = Math.floor(i / 1000) % 2
      if (u16At(viaWasm, c * layout.planeStride + h * 2048 + (i % 1000) * 2) !== f32BitsToFp16(bits[i]!)) wrong++
    }
    expect(wrong).toBe(0)
  })

  it("agree at the edges of the fast common-case kernels and when one lane forces the full kernels", () => {
    // Handled by the common-case kernel alone: zeros, values below 2^-46 (rounding to zero), normal results up to the
    // Inf boundary.
    const edges = [0, -0, 1e-30, -1e-30, 2 ** -47, -(2 ** -46) * 0.999, 2 ** -14, 65504, 65519.99, -65519.99, 1, -2.5]
    // Each sends its block to the full kernel: subnormal results, the 2^-25 tie, tiny values from 2^-46 up (which
    // round to zero too), overflow, Inf, NaN.
    const forcing = [2 ** -20, -(2 ** -15), 2 ** -25, 2 ** -25 * 0.999, 2 ** -46, -(2 ** -30), 65520, 1e9, Infinity,
      -Infinity, NaN]
    const width = 640
    const l = TensorLayout.packed({ channels: 2, height: 1, width, elemSize: 2 })
    const cases: Array<Float32Array> = [Float32Array.from({ length: 2 * width }, (_, i) => edges[i % edges.length]!)]
    for (const f of forcing) {
      for (const at of [3, 700, 2 * width - 1]) { // first check, a later one, the last lane
        const block = Float32Array.from({ length: 2 * width }, (_, i) => edges[i % edges.length]!)
        block[at] = f
        cases.push(block)
      }
    }
    for (const src of cases) {
      const viaWasm = new Uint8Array(l.allocSize)
      useJsFallback(false)
      writeF32(src, viaWasm, l)
      const want = Array.from(src, (x) => float32ToFp16(x))
      const got = Array.from({ length: src.length }, (_, i) => u16At(viaWasm, i * 2))
      expect(got).toEqual(want)
      const back = new Float32Array(src.length)
      readF32(viaWasm, l, back)
      expect(Array.from(f32Bits(back))).toEqual(want.map((h) => fp16ToF32Bits(h)))
    }
  })

  it("unpack every fp16 bit pattern identically", () => {
    const bits = Uint16Array.from({ length: layout.logicalElements }, (_, i) => (i * 40503) & 0xffff)
    const surface = new Uint8Array(layout.allocSize)
    writeFp16(bits, surface, layout)
    const a = new Float32Array(bits.length)
    const b = new Float32Array(bits.length)
    useJsFallback(false)
    readF32(surface, layout, a)
    useJsFallback(true)
    readF32(surface, layout, b)
    expect(Buffer.compare(new Uint8Array(a.buffer), new Uint8Array(b.buffer))).toBe(0)
    let wrong = 0
    for (let i = 0; i < bits.length; i++) if (f32Bits(a)[i] !== fp16ToF32Bits(bits[i]!)) wrong++
    expect(wrong).toBe(0)
  })
})
