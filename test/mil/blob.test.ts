/** Byte-level, round-trip and bad-input tests of the MIL blob storage v2 reader and writer. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck } from "effect"
import {
  Blob,
  type BlobDtype,
  decodeBlob,
  readBlobAt,
  readBlobFile,
  writeBlobFile
} from "../../src/mil/blob.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ")
const ok = <A>(r: A | InvalidArgumentError): A => {
  if (r instanceof InvalidArgumentError) throw new Error(`unexpected failure: ${r.message}`)
  return r
}
const fail = (r: unknown): InvalidArgumentError => {
  expect(r).toBeInstanceOf(InvalidArgumentError)
  return r as InvalidArgumentError
}
const u32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true)

describe("Blob.write: byte layout of the spec's test vectors (§3.4, §1.9)", () => {
  it("writes [1,0,0,1] fp16 as the 136-byte single-blob file", () => {
    const { bytes, offsets } = ok(writeBlobFile([{ dtype: "fp16", data: [1, 0, 0, 1] }]))
    expect(bytes.length).toBe(136)
    expect(offsets).toEqual([64])
    expect(bytes[0]).toBe(0x01)
    expect(bytes[4]).toBe(0x02)
    expect(hex(bytes.subarray(64, 68))).toBe("ef be ad de")
    expect(bytes[68]).toBe(0x01)
    expect(hex(bytes.subarray(72, 76))).toBe("08 00 00 00")
    expect(hex(bytes.subarray(80, 84))).toBe("80 00 00 00")
    expect(hex(bytes.subarray(128, 136))).toBe("00 3c 00 00 00 00 00 3c")
    // Everything else is zero.
    const nonzero = [...bytes].flatMap((b, i) => (b !== 0 ? [i] : []))
    expect(nonzero).toEqual([0, 4, 64, 65, 66, 67, 68, 72, 80, 129, 135])
  })

  it("writes [1,2] as 132 bytes, [2.0] as 130 bytes, a 4×4 identity as 160 bytes", () => {
    const a = ok(writeBlobFile([{ dtype: "fp16", data: [1, 2] }])).bytes
    expect(a.length).toBe(132)
    expect(a[72]).toBe(4)
    expect(hex(a.subarray(128))).toBe("00 3c 00 40")
    const b = ok(writeBlobFile([{ dtype: "fp16", data: [2] }])).bytes
    expect(b.length).toBe(130)
    expect(hex(b.subarray(128))).toBe("00 40")
    const eye = Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0))
    const c = ok(writeBlobFile([{ dtype: "fp16", data: eye }])).bytes
    expect(c.length).toBe(160)
    for (const i of [0, 5, 10, 15]) expect(hex(c.subarray(128 + 2 * i, 130 + 2 * i))).toBe("00 3c")
  })

  it("writes the two-blob linear example of §1.9 byte for byte (260 bytes, offsets 64 and 192)", () => {
    const { bytes, offsets } = ok(writeBlobFile([
      { dtype: "fp16", data: [1, 2, 3, 0.5, -1, 0] },
      { dtype: "fp16", data: [0.25, -2] }
    ]))
    expect(offsets).toEqual([64, 192])
    expect(bytes.length).toBe(260)
    expect(hex(bytes.subarray(0, 8))).toBe("02 00 00 00 02 00 00 00")
    expect(hex(bytes.subarray(64, 72))).toBe("ef be ad de 01 00 00 00")
    expect(bytes[72]).toBe(12)
    expect(bytes[80]).toBe(128)
    expect(hex(bytes.subarray(128, 140))).toBe("00 3c 00 40 00 42 00 38 00 bc 00 00")
    expect(bytes.subarray(140, 192).every((b) => b === 0)).toBe(true)
    expect(hex(bytes.subarray(192, 197))).toBe("ef be ad de 01")
    expect(bytes[200]).toBe(4)
    expect(hex(bytes.subarray(208, 210))).toBe("00 01")
    expect(hex(bytes.subarray(256, 260))).toBe("00 34 00 c0")
  })

  it("aligns five odd-sized blobs to 64 bytes and does not pad the tail", () => {
    const sizes = [10, 17, 24, 31, 38]
    const { bytes, offsets } = ok(writeBlobFile(sizes.map((n) => ({ dtype: "uint8" as const, bytes: new Uint8Array(n).fill(7) }))))
    expect(offsets).toEqual([64, 192, 320, 448, 576])
    const dataOffsets = offsets.map((o) => u32At(bytes, o + 16))
    expect(dataOffsets).toEqual([128, 256, 384, 512, 640])
    expect(bytes.length).toBe(640 + 38)
    expect(u32At(bytes, 0)).toBe(5)
  })

  it("stores fp32 as raw IEEE bits and uint8 bytes as given", () => {
    const f = ok(writeBlobFile([{ dtype: "fp32", data: [1.0, -2.5, 3.14159, 0.0, 2 ** -149, 3.4028234663852886e38] }])).bytes
    expect(f[68]).toBe(2)
    expect(f[72]).toBe(24)
    expect([0, 1, 2, 3, 4, 5].map((i) => u32At(f, 128 + 4 * i).toString(16).padStart(8, "0")))
      .toEqual(["3f800000", "c0200000", "40490fd0", "00000000", "00000001", "7f7fffff"])
    const u = ok(writeBlobFile([{ dtype: "uint8", bytes: new Uint8Array([1, 2, 3, 4]) }])).bytes
    expect(u[68]).toBe(3)
    expect(hex(u.subarray(128))).toBe("01 02 03 04")
  })

  it("writes Apple's dtype codes (int8 is 4, int4 is 8, int32 is 14)", () => {
    const { bytes, offsets } = ok(writeBlobFile([
      { dtype: "int8", data: [-1] }, { dtype: "int4", data: [1, 2] }, { dtype: "int32", data: [-2] }
    ]))
    expect(offsets.map((o) => u32At(bytes, o + 4))).toEqual([4, 8, 14])
    expect(bytes[128]).toBe(0xff)
    expect(u32At(bytes, offsets[2]! + 64)).toBe(0xfffffffe)
  })

  it("stores fp16 rounded to nearest even (3.14 → 0x4248, not Go's truncated 0x4247), with subnormals and ±Inf", () => {
    const values = [3.14, -65504, 70000, 2 ** -24, 6.2e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11]
    const { bytes } = ok(writeBlobFile([{ dtype: "fp16", data: values }]))
    const halfs = values.map((_, i) => new DataView(bytes.buffer).getUint16(128 + 2 * i, true))
    expect(halfs).toEqual([0x4248, 0xfbff, 0x7c00, 0x0001, 0x0410, 0x3c00, 0x3c02])
    const back = decodeBlob(ok(readBlobAt(bytes, 64)))
    expect(back[3]).toBe(2 ** -24)
    expect(back[2]).toBe(Infinity)
  })
})

describe("Go-compatible fp16 truncation", () => {
  it("rounding: truncate reproduces the Go converter (3.14 → 0x4247, 0.1 → 0x2E66, 1e-5 → 0, 65520 → 0x7BFF)", () => {
    const { bytes } = ok(writeBlobFile([{ dtype: "fp16", data: [3.14, 0.1, 1e-5, 65520, 1 / 768], rounding: "truncate" }]))
    const halfs = [0, 1, 2, 3, 4].map((i) => new DataView(bytes.buffer).getUint16(128 + 2 * i, true))
    expect(halfs).toEqual([0x4247, 0x2e66, 0x0000, 0x7bff, 0x1555])
  })
})

describe("sub-byte dtypes are packed LSB first with padding bits recorded", () => {
  const cases: ReadonlyArray<readonly [BlobDtype, ReadonlyArray<number>, string, number]> = [
    ["uint2", [1, 2, 3, 0, 1], "39 01", 6],
    ["uint3", [5, 7, 2], "bd 00", 7],
    ["int4", [-1, 3], "3f", 0],
    ["uint6", [63, 1], "7f 00", 4],
    ["uint1", [1, 0, 1, 1, 0, 0, 0, 0, 1], "0d 01", 7],
    ["uint4", [0xa, 0x5, 0xf], "5a 0f", 4]
  ]
  for (const [dtype, values, packed, padding] of cases) {
    it(`${dtype} ${JSON.stringify(values)} → ${packed}, ${padding} padding bits, and back`, () => {
      const { bytes, offsets } = ok(writeBlobFile([{ dtype, data: values }]))
      const size = u32At(bytes, 72)
      expect(hex(bytes.subarray(128, 128 + size))).toBe(packed)
      expect(u32At(bytes, 88)).toBe(padding)
      const data = ok(readBlobAt(bytes, offsets[0]!, { dtype, elements: values.length }))
      expect(data.record.elements).toBe(values.length)
      expect([...decodeBlob(data)]).toEqual(values)
    })
  }

  it("rejects a 2-bit blob whose padding is not a multiple of 2", () => {
    const { bytes } = ok(writeBlobFile([{ dtype: "uint2", data: [1, 2, 3] }]))
    new DataView(bytes.buffer).setUint32(88, 1, true)
    const e = fail(readBlobAt(bytes, 64))
    expect(e.argument).toContain("offset 64")
    expect(e.argument).toContain("padding")
  })

  it("rejects 8 or more padding bits", () => {
    const { bytes } = ok(writeBlobFile([{ dtype: "uint3", data: [1, 2, 3] }]))
    new DataView(bytes.buffer).setUint32(88, 9, true)
    expect(fail(readBlobAt(bytes, 64)).argument).toContain("offset 64: padding bits")
  })
})

describe("Blob.read and Blob.readAt", () => {
  const file = () =>
    ok(writeBlobFile([
      { dtype: "fp16", data: [1, 2, 3, 0.5, -1, 0] },
      { dtype: "fp32", data: [0.25, -2] },
      { dtype: "int8", data: [-3, 4, 5] }
    ]))

  it("lists every record with its metadata offset, dtype, data offset and size", () =>
    Effect.gen(function* () {
      const { bytes } = file()
      const parsed = yield* Blob.read(bytes)
      expect(parsed.count).toBe(3)
      expect(parsed.records.map((r) => [r.offset, r.dtype, r.dataOffset, r.sizeBytes, r.elements])).toEqual([
        [64, "fp16", 128, 12, 6],
        [192, "fp32", 256, 8, 2],
        [320, "int8", 384, 3, 3]
      ])
    }).pipe(Effect.runSync))

  it.effect("reads each blob back at its returned offset with the values written", () =>
    Effect.gen(function* () {
      const { bytes, offsets } = file()
      const a = yield* Blob.readAt(bytes, offsets[0]!, { dtype: "fp16", elements: 6 })
      expect([...Blob.decode(a)]).toEqual([1, 2, 3, 0.5, -1, 0])
      const b = yield* Blob.readAt(bytes, BigInt(offsets[1]!), { dtype: "fp32", elements: 2 })
      expect([...Blob.decode(b)]).toEqual([0.25, -2])
      expect([...(yield* Blob.readValues(bytes, offsets[1]!, { dtype: "fp32", elements: 2 }))]).toEqual([0.25, -2])
      const c = yield* Blob.readAt(bytes, offsets[2]!)
      expect([...Blob.decode(c)]).toEqual([-3, 4, 5])
      expect(c.bytes.length).toBe(3)
    }))

  it.prop(
    "round-trips any list of fp16 / fp32 / int8 / uint4 tensors",
    [FastCheck.array(
      FastCheck.oneof(
        FastCheck.record({ dtype: FastCheck.constant("fp16" as const), data: FastCheck.array(FastCheck.integer({ min: -2048, max: 2048 }), { maxLength: 40 }) }),
        FastCheck.record({ dtype: FastCheck.constant("fp32" as const), data: FastCheck.array(FastCheck.float({ noNaN: true }), { maxLength: 40 }) }),
        FastCheck.record({ dtype: FastCheck.constant("int8" as const), data: FastCheck.array(FastCheck.integer({ min: -128, max: 127 }), { maxLength: 40 }) }),
        FastCheck.record({ dtype: FastCheck.constant("uint4" as const), data: FastCheck.array(FastCheck.integer({ min: 0, max: 15 }), { maxLength: 40 }) })
      ),
      { maxLength: 6 }
    )],
    ([entries]) => {
      const { bytes, offsets } = ok(writeBlobFile(entries))
      const parsed = ok(readBlobFile(bytes))
      expect(parsed.records.map((r) => r.offset)).toEqual(offsets)
      entries.forEach((e, i) => {
        expect(offsets[i]! % 64).toBe(0)
        const data = ok(readBlobAt(bytes, offsets[i]!, { dtype: e.dtype, elements: e.data.length }))
        expect(data.record.dataOffset).toBe(offsets[i]! + 64)
        expect([...decodeBlob(data)]).toEqual(e.data.map((v) => (Object.is(v, -0) ? -0 : v)))
      })
    }
  )

  it("converts a Float32Array (fast path) to the same bytes as a plain array, and decodes at an odd byte offset", () => {
    const values = Array.from({ length: 300 }, (_, i) => Math.sin(i) * 1000 * (i % 7 === 0 ? 1e-6 : 1))
    const typed = new Float32Array(values.length + 4).subarray(4)
    typed.set(values)
    const a = ok(writeBlobFile([{ dtype: "fp16", data: typed }])).bytes
    const b = ok(writeBlobFile([{ dtype: "fp16", data: Array.from(typed) }])).bytes
    expect(a).toEqual(b)
    const odd = new Uint8Array(a.length + 1)
    odd.set(a, 1)
    const slow = decodeBlob(ok(readBlobAt(odd.subarray(1), 64)))
    const fast = decodeBlob(ok(readBlobAt(a, 64)))
    expect(slow).toEqual(fast)
    expect(fast[1]).toBeCloseTo(Math.sin(1) * 1000, 0)
  })

  it("reads a file whose bytes sit at a non-zero offset in a larger buffer", () => {
    const { bytes } = file()
    const big = new Uint8Array(bytes.length + 3)
    big.set(bytes, 3)
    const data = ok(readBlobAt(big.subarray(3), 192, { dtype: "fp32", elements: 2 }))
    expect([...decodeBlob(data)]).toEqual([0.25, -2])
  })
})

describe("bad weight files: each failure is an InvalidArgumentError naming the offset", () => {
  const single = () => ok(writeBlobFile([{ dtype: "fp16", data: [1, 2, 3, 4] }])).bytes

  it("bad sentinel", () => {
    const b = single()
    b[64] = 0
    const e = fail(readBlobAt(b, 64))
    expect(e.argument).toBe("blob metadata at offset 64: sentinel")
    expect(e.expected).toContain("0xDEADBEEF")
    // What was found instead is not quoted (docs/security.md).
    expect(e.actual).toBe("no blob metadata record there")
    expect(fail(readBlobFile(b)).argument).toContain("offset 64")
  })

  it("a BLOBFILE offset that points at the data, not the metadata", () => {
    const b = ok(writeBlobFile([{ dtype: "fp16", data: new Array(64).fill(1) }])).bytes
    const e = fail(readBlobAt(b, 128))
    expect(e.argument).toBe("blob metadata at offset 128: sentinel")
    expect(e.hint).toContain("metadata record")
  })

  it("offset out of bounds", () => {
    const e = fail(readBlobAt(single(), 4096))
    expect(e.argument).toBe("blob metadata at offset 4096")
    expect(e.actual).toContain("4160")
  })

  it("offset inside the header or not 64-aligned", () => {
    expect(fail(readBlobAt(single(), 0)).argument).toBe("blob metadata at offset 0")
    expect(fail(readBlobAt(single(), 65)).expected).toBe("a multiple of 64")
  })

  it("an offset beyond 2^53 is out of bounds, not wrapped", () => {
    expect(fail(readBlobAt(single(), 2n ** 60n)).argument).toContain("blob metadata at offset")
  })

  it("truncated data", () => {
    const b = single().subarray(0, 133)
    const e = fail(readBlobAt(b, 64))
    expect(e.argument).toBe("blob metadata at offset 64: data size")
    expect(e.actual).toBe("8 bytes from offset 128")
    expect(e.hint).toContain("truncated")
    expect(fail(readBlobFile(b)).argument).toContain("offset 64")
  })

  it("data offset outside the file", () => {
    const b = single()
    new DataView(b.buffer).setUint32(80, 9999, true)
    expect(fail(readBlobAt(b, 64)).argument).toBe("blob metadata at offset 64: data offset")
  })

  it("size mismatch against the declared tensor", () => {
    const e = fail(readBlobAt(single(), 64, { dtype: "fp16", elements: 6 }))
    expect(e.argument).toBe("blob at offset 64: size")
    expect(e.expected).toBe("6 fp16 elements (12 bytes)")
    expect(e.actual).toBe("4 elements (8 bytes)")
  })

  it("dtype mismatch against the declared tensor", () => {
    const e = fail(readBlobAt(single(), 64, { dtype: "fp32", elements: 2 }))
    expect(e.argument).toBe("blob at offset 64: dtype")
    expect(e.actual).toBe("fp16 (code 1)")
  })

  it("a declared dtype no blob can hold", () => {
    expect(fail(readBlobAt(single(), 64, { dtype: "bool", elements: 4 })).actual).toBe("bool")
  })

  it("unknown dtype code", () => {
    const b = single()
    b[68] = 99
    const e = fail(readBlobAt(b, 64))
    expect(e.argument).toBe("blob metadata at offset 64: dtype code")
    expect(e.actual).toBe("99")
  })

  it("a data size that is not a whole number of elements", () => {
    const b = single()
    b[72] = 7
    expect(fail(readBlobAt(b, 64)).argument).toBe("blob metadata at offset 64: data size")
  })

  it("wrong version, and the Go BlobWriter layout with version at byte 8", () => {
    const b = single()
    b[4] = 1
    expect(fail(readBlobFile(b)).argument).toContain("offset 0: version")
    const go = single()
    new DataView(go.buffer).setUint32(4, 0, true)
    new DataView(go.buffer).setUint32(8, 2, true)
    expect(fail(readBlobFile(go)).hint).toContain("Go BlobWriter")
    expect(fail(readBlobAt(go, 64)).argument).toContain("version")
  })

  it("a file shorter than its header", () => {
    expect(fail(readBlobFile(new Uint8Array(10))).actual).toBe("10 bytes")
    expect(fail(readBlobAt(new Uint8Array(10), 64)).argument).toContain("offset 0")
  })

  it("a header count larger than the records present", () => {
    const b = single()
    b[0] = 2
    expect(fail(readBlobFile(b)).argument).toBe("blob metadata at offset 192")
  })

  it.effect("Blob.read / readAt fail in the error channel with the same error", () =>
    Effect.gen(function* () {
      const b = single()
      b[64] = 0
      const e1 = yield* Effect.flip(Blob.read(b))
      expect(e1._tag).toBe("InvalidArgumentError")
      const e2 = yield* Effect.flip(Blob.readAt(b, 64))
      expect(e2.message).toContain("offset 64")
    }))
})

describe("bad writer input", () => {
  it.effect("an integer out of range names the entry and element", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(Blob.write([{ dtype: "fp16", data: [1] }, { dtype: "uint4", data: [3, 16] }]))
      expect(e.argument).toBe("entries[1].data[1]")
      expect(e.expected).toContain("0..15")
    }))

  it("a non-integer for an integer dtype", () => {
    expect(fail(writeBlobFile([{ dtype: "int8", data: [1.5] }])).argument).toBe("entries[0].data[0]")
  })

  it("raw bytes whose length does not match the element count", () => {
    const e = fail(writeBlobFile([{ dtype: "fp16", bytes: new Uint8Array(5) }]))
    expect(e.argument).toBe("entries[0].bytes")
    const e2 = fail(writeBlobFile([{ dtype: "uint3", bytes: new Uint8Array(2), elements: 9 }]))
    expect(e2.expected).toContain("4 bytes for 9 uint3")
  })

  it("an unknown dtype", () => {
    const e = fail(writeBlobFile([{ dtype: "fp64" as BlobDtype, data: [1] }]))
    expect(e.argument).toBe("entries[0].dtype")
  })

  it("8-bit floats need raw bytes", () => {
    expect(fail(writeBlobFile([{ dtype: "fp8e4m3fn", data: [1] }])).actual).toBe("numeric values")
    const { bytes } = ok(writeBlobFile([{ dtype: "fp8e4m3fn", bytes: new Uint8Array([0x38, 0xb8]) }]))
    expect([...decodeBlob(ok(readBlobAt(bytes, 64)))]).toEqual([1, -1])
  })
})
