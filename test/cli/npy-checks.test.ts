/** The .npy reader on hostile headers, and the shape rule of `ane run --input` (leading 1s only). */
import { describe, expect, it } from "vitest"
import { maxNpyBytes, readNpy, sameShape, writeNpy } from "../../src/cli/npy.js"

const withHeader = (major: number, header: string, dataBytes = 0) => {
  const start = major === 1 ? 10 : 12
  const out = new Uint8Array(start + header.length + dataBytes)
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0])
  const dv = new DataView(out.buffer)
  if (major === 1) dv.setUint16(8, header.length, true)
  else dv.setUint32(8, header.length, true)
  for (let i = 0; i < header.length; i++) out[start + i] = header.charCodeAt(i)
  return out
}

const problem = (bytes: Uint8Array) => {
  const r = readNpy(bytes, "f.npy")
  return "_tag" in r ? r.message : "accepted"
}

describe("readNpy on hostile input", () => {
  it("v2 and v3 files too short for their header length are refused, not a RangeError", () => {
    for (const [major, size] of [[2, 10], [2, 11], [3, 10], [3, 11]] as const) {
      const b = new Uint8Array(size)
      b.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0])
      expect(problem(b)).toContain("header length")
    }
  })

  it("a header length past the end, an unknown version and a missing fortran_order are refused", () => {
    const h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
    const past = withHeader(2, h, 8)
    new DataView(past.buffer).setUint32(8, 1_000, true)
    expect(problem(past)).toContain("header")
    const v4 = withHeader(1, h, 8)
    v4[6] = 4
    expect(problem(v4)).toContain("version")
    expect(problem(withHeader(1, "{'descr': '<f4', 'shape': (2,), }", 8))).toContain("fortran_order")
    expect(problem(withHeader(1, h, 8))).toBe("accepted")
  })

  it("fortran_order must be exactly False", () => {
    for (const v of ["True", "1", "0", "None", "false"]) {
      expect(problem(withHeader(1, `{'descr': '<f4', 'fortran_order': ${v}, 'shape': (2,), }`, 8))).toContain("fortran_order")
    }
  })

  it("shapes with huge, negative or non-integer dims are refused before any allocation", () => {
    for (const s of ["(99999999999999999999,)", "(-1,)", "(1.5,)", "(2, , 3)", "(4294967296, 4294967296)"]) {
      expect(problem(withHeader(1, `{'descr': '<f4', 'fortran_order': False, 'shape': ${s}, }`, 8))).toContain("shape")
    }
  })

  it("a scalar and a one-dimensional array read as numpy writes them", () => {
    const scalar = readNpy(withHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4))
    expect("shape" in scalar && scalar.shape).toEqual([])
    const one = readNpy(writeNpy(Float32Array.of(1, 2, 3), [3], "<f4"))
    expect("shape" in one && one.shape).toEqual([3])
  })

  it("the size bound covers the largest header and 8-byte elements", () => {
    expect(maxNpyBytes(10)).toBe(12 + 65536 + 80)
  })
})

describe("sameShape", () => {
  it("ignores leading 1s only", () => {
    expect(sameShape([1, 64, 1, 384], [64, 1, 384])).toBe(true)
    expect(sameShape([1, 1, 1, 64, 1, 384], [1, 64, 1, 384])).toBe(true)
    expect(sameShape([384, 64], [1, 64, 1, 384])).toBe(false)
    expect(sameShape([64, 384], [1, 64, 1, 384])).toBe(false)
    expect(sameShape([1, 64, 1, 384, 1], [1, 64, 1, 384])).toBe(false)
    expect(sameShape([], [1, 1])).toBe(true)
  })
})
