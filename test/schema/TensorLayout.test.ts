/** TensorLayout: sizes and stride math against the spec's vectors (§16.1), and every rejection rule (§6.4). */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  InvalidArgumentError,
  layoutProblem,
  makeTensorLayout,
  ROW_ALIGNMENT,
  rowStrideFor,
  TensorLayout,
  tensorLayoutInvalid
} from "../../src/schema/index.js"

const base = { channels: 2, width: 5, height: 2, elemSize: 2, rowStride: 64, planeStride: 128 }

describe("TensorLayout sizes", () => {
  it("matches the spec's size table (native-protocol.md §16.1)", () => {
    const rows: ReadonlyArray<readonly [number, number, number, 2 | 4, number, number, number, number, number]> = [
      [1, 1, 1, 2, 64, 64, 64, 2, 1],
      [4, 1, 1, 2, 64, 64, 256, 8, 4],
      [4, 16, 1, 2, 64, 64, 256, 128, 64],
      [32, 32, 1, 2, 64, 64, 2048, 2048, 1024],
      [1, 1, 1, 4, 64, 64, 64, 4, 1],
      [4, 1, 1, 4, 64, 64, 256, 16, 4],
      [8, 32, 4, 2, 64, 256, 2048, 2048, 1024] // multi-height
    ]
    for (const [channels, width, height, elemSize, rowStride, planeStride, alloc, bytes, elements] of rows) {
      const l = TensorLayout.make({ channels, width, height, elemSize, rowStride, planeStride })
      expect([l.allocSize, l.logicalBytes, l.logicalElements]).toEqual([alloc, bytes, elements])
      expect(l.allocSize).toBeGreaterThanOrEqual(l.logicalBytes)
      expect(layoutProblem(l)).toBeUndefined()
    }
  })

  it("rounds row strides up to 64 bytes (§16.1 vectors)", () => {
    const vectors: ReadonlyArray<readonly [number, number, number]> = [
      [1, 2, 64], [32, 2, 64], [33, 2, 128], [1, 4, 64], [16, 4, 64], [17, 4, 128], [3, 2, 64], [64, 2, 128],
      [256, 2, 512], [0, 2, 0], [1000, 2, 2048]
    ]
    for (const [width, elem, stride] of vectors) {
      expect(rowStrideFor(width, elem)).toBe(stride)
      expect(TensorLayout.rowStrideFor(width, elem) % ROW_ALIGNMENT).toBe(0)
    }
  })

  it("builds packed layouts with dtype and per-plane sizes", () => {
    const l = TensorLayout.packed({ channels: 3, height: 2, width: 33, elemSize: 2 }, { name: "x" })
    expect([l.rowStride, l.planeStride, l.allocSize, l.planeElements, l.dtype, l.name]).toEqual([128, 256, 768, 66, "fp16", "x"])
    expect(TensorLayout.packed({ channels: 1, height: 1, width: 1, elemSize: 4 }).dtype).toBe("fp32")
  })
})

describe("layoutProblem", () => {
  it("rejects non-positive dimensions", () => {
    expect(layoutProblem({ ...base, channels: 0 })).toBe("invalid dimensions: C=0 H=2 W=5")
    expect(layoutProblem({ ...base, width: -1 })).toContain("W=-1")
    expect(layoutProblem({ ...base, height: Number.NaN })).toContain("H=NaN")
  })
  it("rejects an element size other than 2 or 4", () => {
    expect(layoutProblem({ ...base, elemSize: 3 })).toBe("unsupported element size 3 (expected 2 or 4)")
  })
  it("rejects a row stride that is not 64-byte aligned", () => {
    expect(layoutProblem({ ...base, rowStride: 96 })).toBe("RowStride 96 is not 64-byte aligned")
  })
  it("rejects a row stride below the row's bytes", () => {
    expect(layoutProblem({ ...base, width: 33, rowStride: 64 })).toBe("RowStride 64 < minimum 128 for width 33 × 2 bytes")
  })
  it("rejects a plane stride below height × row stride", () => {
    expect(layoutProblem({ ...base, planeStride: 127 })).toBe("PlaneStride 127 < Height*RowStride 128")
  })
})

describe("makeTensorLayout (validating constructor)", () => {
  const rejects = (fields: typeof base, argument: string, expected: string, actual: string) =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(makeTensorLayout(fields, "Surface.layout"))
      expect(e).toBeInstanceOf(InvalidArgumentError)
      expect([e.op, e.argument, e.actual]).toEqual(["Surface.layout", argument, actual])
      expect(e.expected).toContain(expected)
      expect(e.message).toContain(`invalid ${argument}`)
    })

  it.effect("builds a valid layout", () =>
    Effect.gen(function* () {
      const l = yield* makeTensorLayout({ ...base, name: "in" })
      expect(l).toBeInstanceOf(TensorLayout)
      expect([l.allocSize, l.name]).toEqual([256, "in"])
    }))
  it.effect("rejects a fractional channel count", () => rejects({ ...base, channels: 1.5 }, "channels", "a positive integer", "1.5"))
  it.effect("rejects a zero width", () => rejects({ ...base, width: 0 }, "width", "a positive integer", "0"))
  it.effect("rejects an infinite height", () => rejects({ ...base, height: Infinity }, "height", "a positive integer", "Infinity"))
  it.effect("rejects elemSize 8", () => rejects({ ...base, elemSize: 8 }, "elemSize", "2 (fp16) or 4 (fp32)", "8"))
  it.effect("rejects a non-finite row stride", () => rejects({ ...base, rowStride: Number.NaN }, "rowStride", "a multiple of 64", "NaN"))
  it.effect("rejects a too-small row stride", () =>
    rejects({ ...base, width: 40, rowStride: 64, planeStride: 256 }, "rowStride", "at least 128 (width 40 × 2 bytes)", "64"))
  it.effect("rejects an unaligned row stride", () => rejects({ ...base, rowStride: 100 }, "rowStride", "a multiple of 64", "100"))
  it.effect("rejects a too-small plane stride", () =>
    rejects({ ...base, planeStride: 64 }, "planeStride", "at least 128 (height × rowStride)", "64"))
  it.effect("rejects an infinite plane stride", () =>
    rejects({ ...base, planeStride: Infinity }, "planeStride", "an integer number of bytes", "Infinity"))

  it("agrees with layoutProblem on every layout it accepts", () => {
    for (const width of [1, 31, 32, 33, 64]) {
      for (const elemSize of [2, 4]) {
        const rowStride = rowStrideFor(width, elemSize)
        const l = { channels: 2, width, height: 3, elemSize, rowStride, planeStride: 3 * rowStride }
        expect([tensorLayoutInvalid(l), layoutProblem(l)]).toEqual([undefined, undefined])
      }
    }
  })
})
