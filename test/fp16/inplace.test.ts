/**
 * Surfaces in a kernel memory of their own (fp16/kernels.ts allocKernelSurface): conversions run straight into and
 * out of their rows. They must give exactly the bytes and floats the staged path gives, and never touch padding.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import {
  allocKernelSurface,
  BLOCK_ELEMENTS,
  KERNEL_SURFACE_MIN_BYTES,
  kernelSurfaceOf
} from "../../src/fp16/kernels.js"
import { readF32, useJsFallback, wasmSimdAvailable, writeF32 } from "../../src/fp16/index.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"
import { allocSurface, allocSurfaceBytes } from "../../src/sim/layout.js"

afterEach(() => useJsFallback(false))

const rng = (seed: number) => () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 2 ** 32
}

/** Bit patterns from every class: normal fp16 range, ties, subnormal window, tiny, zeros, overflow, Inf, NaN. */
const patterns = (n: number, seed: number): Float32Array => {
  const next = rng(seed)
  const bits = new Uint32Array(n)
  const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x477ff000, 0x477fefff,
    0x33000000, 0x2a800000, 0x387fffff, 0x38800000]
  for (let i = 0; i < n; i++) {
    const r = next()
    const sign = next() < 0.5 ? 0x80000000 : 0
    bits[i] = r < 0.55 ? (sign | (0x38800000 + Math.floor(next() * 0x0f000000))) >>> 0
      : r < 0.65 ? (sign | ((0x38800000 + Math.floor(next() * 0x0f000000)) & ~0x1fff) | 0x1000) >>> 0
      : r < 0.75 ? (sign | Math.floor(next() * 0x38800000)) >>> 0
      : r < 0.85 ? Math.floor(next() * 2 ** 32)
      : r < 0.93 ? sign
      : specials[Math.floor(next() * specials.length)]!
  }
  return new Float32Array(bits.buffer)
}

/** A layout with `width`, `height`, `channels` and the given extra row / plane padding in bytes. */
const layoutOf = (channels: number, height: number, width: number, rowPad: number, planePad: number) => {
  const rowStride = Math.ceil((width * 2) / 64) * 64 + rowPad
  return TensorLayout.make({
    channels, height, width, elemSize: 2, rowStride, planeStride: height * rowStride + planePad
  })
}

/** A kernel surface of at least `bytes` bytes, viewed from `offset` (so the view's byteOffset is not always 0). */
const kernelView = (bytes: number, offset = 0): Uint8Array => {
  const buf = allocKernelSurface(bytes + offset)
  expect(buf).toBeDefined()
  return new Uint8Array(buf!, offset, bytes)
}

describe("conversion blocks", () => {
  it("keep their copies off 64 KiB-aligned offsets and block starts on 16-element boundaries", () => {
    expect(BLOCK_ELEMENTS % 16).toBe(0)
    // f32 blocks (4 bytes) and fp16 blocks (2 bytes) both step by a non-multiple of the L2's 64 KiB set period.
    expect((BLOCK_ELEMENTS * 4) % 65536).not.toBe(0)
    expect((BLOCK_ELEMENTS * 2) % 65536).not.toBe(0)
  })
})

describe.runIf(wasmSimdAvailable)("kernel surfaces", () => {
  it("are found by their views and only while the WebAssembly kernels are active", () => {
    const view = kernelView(1000, 64)
    expect(view.every((b) => b === 0)).toBe(true)
    expect(kernelSurfaceOf(view)).toBeDefined()
    expect(kernelSurfaceOf(view.subarray(10))).toBeDefined()
    expect(kernelSurfaceOf(new Uint8Array(1000))).toBeUndefined()
    useJsFallback(true)
    expect(kernelSurfaceOf(view)).toBeUndefined()
  })

  it("refuse sizes that are not a positive safe integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53]) expect(allocKernelSurface(bad)).toBeUndefined()
  })

  const layouts: ReadonlyArray<readonly [string, TensorLayout]> = [
    ["contiguous rows", layoutOf(3, 4, 32, 0, 0)],
    ["padded rows, width 1000", layoutOf(3, 2, 1000, 0, 0)],
    ["plane padding", layoutOf(4, 3, 40, 64, 128)],
    ...[1, 7, 8, 15, 16, 17, 31].map((w) => [`width ${w} (tail)`, layoutOf(5, 3, w, 0, 64)] as const),
    ["a row wider than a block, padded", layoutOf(2, 2, BLOCK_ELEMENTS + 37, 0, 0)],
    ["a contiguous run longer than a block", layoutOf(1, 1, 3 * BLOCK_ELEMENTS + 96, 0, 0)],
    ["many rows per block", layoutOf(2, 700, 24, 0, 0)],
    ["dense 1024-wide rows over several blocks", layoutOf(40, 1, 1024, 0, 0)]
  ]

  it.each(layouts)("pack exactly like the staged path and leave padding alone: %s", (_, layout) => {
    const src = patterns(layout.logicalElements, layout.width * 31 + layout.channels)
    for (const [start, count] of [[0, layout.channels], [1, layout.channels - 1]] as const) {
      const part = src.subarray(0, count * layout.height * layout.width)
      const staged = new Uint8Array(layout.allocSize).fill(0xa5)
      const inPlace = kernelView(layout.allocSize, 128).fill(0xa5)
      writeF32(part, staged, layout, start, count)
      writeF32(part, inPlace, layout, start, count)
      expect(Buffer.compare(Buffer.from(inPlace), Buffer.from(staged))).toBe(0)
    }
  })

  it.each(layouts)("unpack exactly like the staged path: %s", (_, layout) => {
    const src = patterns(layout.logicalElements, layout.height * 17 + layout.width)
    const plain = new Uint8Array(layout.allocSize)
    writeF32(src, plain, layout)
    const inPlace = kernelView(layout.allocSize)
    inPlace.set(plain)
    for (const [start, count] of [[0, layout.channels], [layout.channels - 1, 1]] as const) {
      const n = count * layout.height * layout.width
      const a = new Float32Array(n)
      const b = new Float32Array(n)
      readF32(plain, layout, a, start, count)
      readF32(inPlace, layout, b, start, count)
      expect(Buffer.compare(Buffer.from(b.buffer), Buffer.from(a.buffer))).toBe(0)
    }
  })

  it("go back to the staged path, with the same bytes, when the JS kernels are forced", () => {
    const layout = layoutOf(2, 3, 50, 0, 64)
    const src = patterns(layout.logicalElements, 9)
    const inPlace = kernelView(layout.allocSize).fill(0x3c)
    const staged = new Uint8Array(layout.allocSize).fill(0x3c)
    useJsFallback(true)
    writeF32(src, inPlace, layout)
    useJsFallback(false)
    writeF32(src, staged, layout)
    expect(Buffer.compare(Buffer.from(inPlace), Buffer.from(staged))).toBe(0)
  })

  it("back the simulator's large surfaces; small ones stay plain", () => {
    const big = allocSurfaceBytes(KERNEL_SURFACE_MIN_BYTES)
    expect(big.length).toBe(KERNEL_SURFACE_MIN_BYTES)
    expect(kernelSurfaceOf(big)).toBeDefined()
    const small = allocSurfaceBytes(KERNEL_SURFACE_MIN_BYTES - 64)
    expect(kernelSurfaceOf(small)).toBeUndefined()
    const views = allocSurface(TensorLayout.packed({ channels: 256, height: 1, width: 512, elemSize: 2 }))
    expect(kernelSurfaceOf(views.bytes)).toBeDefined()
    expect(views.u16.buffer).toBe(views.bytes.buffer)
    expect(views.f32.length).toBe(views.bytes.length / 4)
  })
})
