/**
 * Reader and writer for Apple's MIL blob storage v2 (`weight.bin`): a 64-byte file header, then per blob a 64-byte
 * metadata record (sentinel 0xDEADBEEF) followed by its data, every record and data segment 64-byte aligned.
 * `BLOBFILE(offset = …)` in MIL text names the offset of the metadata record (spec/mil-format.md §3.1–§3.5,
 * mil-format-errata.md §2).
 */
import * as Effect from "effect/Effect"
import type { Block, Operation, Program, TypeExpr, Value } from "./ast.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { f32BitsToFp16, float32ToFp16, float32ToFp16Truncate, fp16ToFloat32 } from "../fp16/scalar.js"

/** Alignment of every metadata record and data segment (`DefaultStorageAlignment`). */
export const BLOB_ALIGNMENT = 64
/** Size of the file header and of each metadata record. */
export const BLOB_HEADER_SIZE = 64
/** The u32 that starts every metadata record. */
export const BLOB_SENTINEL = 0xdeadbeef
/** The only storage version Apple's reader accepts ("version=1 is Espresso blob_v1"). */
export const BLOB_VERSION = 2

/** Element types a blob can hold, by their MIL dtype name. */
export type BlobDtype =
  | "fp16" | "fp32" | "uint8" | "int8" | "bf16" | "int16" | "uint16" | "int4" | "uint1" | "uint2" | "uint4"
  | "uint3" | "uint6" | "int32" | "uint32" | "fp8e4m3fn" | "fp8e5m2"

/** The `mil_dtype` code stored in each metadata record (`BlobDataType.hpp`) and the element width in bits. */
export const BLOB_DTYPES: Readonly<Record<BlobDtype, { readonly code: number; readonly bits: number }>> = {
  fp16: { code: 1, bits: 16 },
  fp32: { code: 2, bits: 32 },
  uint8: { code: 3, bits: 8 },
  // Int8 is 4; Go's BlobInt8 = 8 is Apple's Int4 (spec §7.4).
  int8: { code: 4, bits: 8 },
  bf16: { code: 5, bits: 16 },
  int16: { code: 6, bits: 16 },
  uint16: { code: 7, bits: 16 },
  int4: { code: 8, bits: 4 },
  uint1: { code: 9, bits: 1 },
  uint2: { code: 10, bits: 2 },
  uint4: { code: 11, bits: 4 },
  uint3: { code: 12, bits: 3 },
  uint6: { code: 13, bits: 6 },
  int32: { code: 14, bits: 32 },
  uint32: { code: 15, bits: 32 },
  fp8e4m3fn: { code: 16, bits: 8 },
  fp8e5m2: { code: 17, bits: 8 }
}

const byCode: ReadonlyMap<number, BlobDtype> = new Map(
  (Object.keys(BLOB_DTYPES) as Array<BlobDtype>).map((d) => [BLOB_DTYPES[d].code, d])
)

/** True when `name` is a dtype a blob can store. */
export const isBlobDtype = (name: string): name is BlobDtype => Object.prototype.hasOwnProperty.call(BLOB_DTYPES, name)

/** Bytes `elements` values of `dtype` occupy once packed (sub-byte types share bytes, LSB first). */
export const blobByteSize = (dtype: BlobDtype, elements: number): number =>
  Math.ceil((elements * BLOB_DTYPES[dtype].bits) / 8)

/** One metadata record of a weight file. */
export interface BlobRecord {
  /** Offset of the metadata record: the number a `BLOBFILE(offset = …)` holds. */
  readonly offset: number
  readonly dtype: BlobDtype
  readonly dataOffset: number
  readonly sizeBytes: number
  /** Unused bits in the last byte (sub-byte dtypes only; 0 otherwise). */
  readonly paddingBits: number
  /** Number of elements the data holds. */
  readonly elements: number
}

/** A parsed weight file: its records in file order. */
export interface BlobFile {
  readonly count: number
  readonly records: ReadonlyArray<BlobRecord>
}

/** Decoded values of a blob: floats for fp16/bf16/fp8/fp32, integers otherwise (sub-byte unpacked). */
export type BlobValues = Float32Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array

/** One blob's data, checked against its record (and the expected tensor when one was given). */
export interface BlobData {
  readonly record: BlobRecord
  /** The stored bytes (a view into the file, not a copy). */
  readonly bytes: Uint8Array
}

/** A tensor to store: values (converted / packed here) or raw storage bytes. */
export type BlobEntry =
  | {
    readonly dtype: BlobDtype
    readonly data: ArrayLike<number>
    /**
     * fp16 only: `nearest` (default, round to nearest even, as coremltools) or `truncate` (toward zero, subnormals
     * flushed: byte-compatible with the Go generators' blobs, spec §3.5).
     */
    readonly rounding?: "nearest" | "truncate"
  }
  | { readonly dtype: BlobDtype; readonly bytes: Uint8Array; readonly elements?: number }

/** A written weight file and the metadata offset of each entry (for `BLOBFILE(offset = …)`). */
export interface WrittenBlobFile {
  readonly bytes: Uint8Array
  readonly offsets: ReadonlyArray<number>
}

// ---------------------------------------------------------------------------------------------------------------
// fp16 conversion rounds to nearest even with subnormals (src/fp16), as coremltools (numpy astype) does; the Go
// generators truncate instead (spec §3.5), which loses up to one ulp.

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

// Every fp16 value by its bits, built on first decode: a table lookup is ~10× faster than computing each value.
let fp16Table: Float32Array | undefined
const fp16Values = (): Float32Array => {
  if (fp16Table === undefined) {
    fp16Table = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) fp16Table[h] = fp16ToFloat32(h)
  }
  return fp16Table
}

const toBf16Bits = (x: number): number => {
  f32[0] = x
  const bits = u32[0]!
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1)
  return (rounded >>> 16) & 0xffff
}

const fromBf16Bits = (h: number): number => {
  u32[0] = (h & 0xffff) << 16
  return f32[0]!
}

const fromFp8Bits = (b: number, expBits: 4 | 5): number => {
  const mantBits = 7 - expBits
  const bias = expBits === 4 ? 7 : 15
  const sign = b & 0x80 ? -1 : 1
  const exp = (b >>> mantBits) & ((1 << expBits) - 1)
  const mant = b & ((1 << mantBits) - 1)
  if (expBits === 4 && exp === 15 && mant === 7) return NaN
  if (expBits === 5 && exp === 31) return mant === 0 ? sign * Infinity : NaN
  if (exp === 0) return sign * mant * 2 ** (1 - bias - mantBits)
  return sign * (1 + mant / (1 << mantBits)) * 2 ** (exp - bias)
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

const align = (n: number): number => Math.ceil(n / BLOB_ALIGNMENT) * BLOB_ALIGNMENT

const bad = (op: string, argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError(hint === undefined ? { op, argument, expected, actual } : { op, argument, expected, actual, hint })

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const hex32 = (n: number) => "0x" + n.toString(16).toUpperCase().padStart(8, "0")

/**
 * A file whose header is not a blob's. The bytes found are not quoted: a BLOBFILE may name any file, and an error
 * message must not become a way to read it (docs/security.md).
 */
const notABlob = (op: string, hint?: string) =>
  bad(op, "weight file header at offset 0: version (bytes 4..7)", `${BLOB_VERSION} (MIL blob storage v2)`,
    "another value: this is not a MIL weight blob", hint)

/** Reads the u64 at `at`; values past 2^53 come back as Infinity so bounds checks reject them. */
const u64 = (dv: DataView, at: number): number => {
  const v = dv.getBigUint64(at, true)
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v)
}

/** The metadata record at `offset`, checked against the file bounds, or the first thing wrong with it. */
const recordAt = (bytes: Uint8Array, offset: number, op: string): BlobRecord | InvalidArgumentError => {
  const where = `blob metadata at offset ${offset}`
  if (!Number.isSafeInteger(offset) || offset < BLOB_HEADER_SIZE) {
    return bad(op, where, `an offset ≥ ${BLOB_HEADER_SIZE} (the file header comes first)`, String(offset))
  }
  if (offset % BLOB_ALIGNMENT !== 0) {
    return bad(op, where, `a multiple of ${BLOB_ALIGNMENT}`, String(offset))
  }
  if (offset + BLOB_HEADER_SIZE > bytes.length) {
    return bad(op, where, `a 64-byte record inside the ${bytes.length}-byte file`, `it would end at ${offset + 64}`,
      "the BLOBFILE offset is past the end of the weight file")
  }
  const dv = view(bytes)
  // The bytes found instead of the sentinel are not quoted: they may be any file's contents (docs/security.md).
  if (dv.getUint32(offset, true) !== BLOB_SENTINEL) {
    return bad(op, `${where}: sentinel`, `a metadata record starting with ${hex32(BLOB_SENTINEL)}`, "no blob metadata record there",
      "BLOBFILE offsets name the metadata record, not the data (data starts 64 bytes later)")
  }
  const code = dv.getUint32(offset + 4, true)
  const dtype = byCode.get(code)
  if (dtype === undefined) return bad(op, `${where}: dtype code`, "a MIL blob dtype code in 1..17", String(code))
  const sizeBytes = u64(dv, offset + 8)
  const dataOffset = u64(dv, offset + 16)
  if (dataOffset < offset + BLOB_HEADER_SIZE || dataOffset > bytes.length) {
    return bad(op, `${where}: data offset`, `an offset in ${offset + 64}..${bytes.length}`, String(dataOffset))
  }
  if (dataOffset + sizeBytes > bytes.length) {
    return bad(op, `${where}: data size`, `at most ${bytes.length - dataOffset} bytes (the file ends at ${bytes.length})`,
      `${sizeBytes} bytes from offset ${dataOffset}`, "the weight file is truncated")
  }
  const bits = BLOB_DTYPES[dtype].bits
  let paddingBits = 0
  let elements: number
  if (bits < 8) {
    paddingBits = u64(dv, offset + 24)
    if (paddingBits >= 8 || (bits !== 3 && bits !== 6 && paddingBits % bits !== 0)) {
      return bad(op, `${where}: padding bits`, `fewer than 8 unused bits, a multiple of ${bits}`, String(paddingBits))
    }
    const usedBits = sizeBytes * 8 - paddingBits
    if (usedBits < 0 || usedBits % bits !== 0) {
      return bad(op, `${where}: padding bits`, `a padding leaving a whole number of ${bits}-bit elements`,
        `${paddingBits} bits of ${sizeBytes} bytes`)
    }
    elements = usedBits / bits
  } else {
    // Before iOS18 the padding slot was reserved and may hold garbage: ignore it for whole-byte types.
    const width = bits / 8
    if (sizeBytes % width !== 0) {
      return bad(op, `${where}: data size`, `a multiple of ${width} bytes (${dtype})`, String(sizeBytes))
    }
    elements = sizeBytes / width
  }
  return { offset, dtype, dataOffset, sizeBytes, paddingBits, elements }
}

/** Parses the header and walks every record (plain result: the file, or the first problem). */
export const readBlobFile = (bytes: Uint8Array, op = "Blob.read"): BlobFile | InvalidArgumentError => {
  if (bytes.length < BLOB_HEADER_SIZE) {
    return bad(op, "weight file header at offset 0", `at least ${BLOB_HEADER_SIZE} bytes`, `${bytes.length} bytes`)
  }
  const dv = view(bytes)
  const count = dv.getUint32(0, true)
  const version = dv.getUint32(4, true)
  if (version !== BLOB_VERSION) {
    return notABlob(op, version === 0 && dv.getUint32(8, true) === 2
        ? "this looks like the Go BlobWriter layout (version at byte 8), which Apple's reader rejects"
        : undefined)
  }
  const records: Array<BlobRecord> = []
  let at = BLOB_HEADER_SIZE
  for (let i = 0; i < count; i++) {
    const r = recordAt(bytes, at, op)
    if (r instanceof InvalidArgumentError) return r
    records.push(r)
    at = align(r.dataOffset + r.sizeBytes)
  }
  return { count, records }
}

/** What a caller expects at a BLOBFILE offset: the declared tensor's dtype and element count. */
export interface BlobExpectation {
  readonly dtype: BlobDtype | string
  readonly elements: number
}

/** The blob whose metadata record sits at `offset`, checked against `expected` (plain result). */
export const readBlobAt = (
  bytes: Uint8Array,
  offset: number | bigint,
  expected?: BlobExpectation,
  op = "Blob.readAt"
): BlobData | InvalidArgumentError => {
  const off = typeof offset === "bigint"
    ? (offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(offset))
    : offset
  if (bytes.length < BLOB_HEADER_SIZE) {
    return bad(op, "weight file header at offset 0", `at least ${BLOB_HEADER_SIZE} bytes`, `${bytes.length} bytes`)
  }
  if (view(bytes).getUint32(4, true) !== BLOB_VERSION) return notABlob(op)
  const r = recordAt(bytes, off, op)
  if (r instanceof InvalidArgumentError) return r
  if (expected !== undefined) {
    const where = `blob at offset ${off}`
    if (!isBlobDtype(expected.dtype)) {
      return bad(op, `${where}: declared dtype`, "a dtype a weight blob can hold", expected.dtype)
    }
    if (expected.dtype !== r.dtype) {
      return bad(op, `${where}: dtype`, `${expected.dtype} (as declared)`, `${r.dtype} (code ${BLOB_DTYPES[r.dtype].code})`)
    }
    if (expected.elements !== r.elements) {
      return bad(op, `${where}: size`,
        `${expected.elements} ${expected.dtype} elements (${blobByteSize(r.dtype, expected.elements)} bytes)`,
        `${r.elements} elements (${r.sizeBytes} bytes)`)
    }
  }
  return { record: r, bytes: bytes.subarray(r.dataOffset, r.dataOffset + r.sizeBytes) }
}

/** Unpacks LSB-first `bits`-wide elements (sign-extended when `signed`). */
const unpackBits = (bytes: Uint8Array, bits: number, count: number, signed: boolean): Int8Array | Uint8Array => {
  const out = signed ? new Int8Array(count) : new Uint8Array(count)
  const mask = (1 << bits) - 1
  for (let i = 0; i < count; i++) {
    const bit = i * bits
    const byte = bit >>> 3
    const word = bytes[byte]! | ((bytes[byte + 1] ?? 0) << 8)
    let v = (word >>> (bit & 7)) & mask
    if (signed && v >= 1 << (bits - 1)) v -= 1 << bits
    out[i] = v
  }
  return out
}

/** The values a blob holds, decoded (fp16/bf16/fp8 widened to float32; sub-byte unpacked one per element). */
export const decodeBlob = (data: BlobData): BlobValues => {
  const { record, bytes } = data
  const n = record.elements
  const dv = view(bytes)
  switch (record.dtype) {
    case "fp16": {
      const out = new Float32Array(n)
      const table = fp16Values()
      if (littleEndian && bytes.byteOffset % 2 === 0) {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n)
        for (let i = 0; i < n; i++) out[i] = table[h[i]!]!
      } else {
        for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, true)]!
      }
      return out
    }
    case "bf16": {
      const out = new Float32Array(n)
      for (let i = 0; i < n; i++) out[i] = fromBf16Bits(dv.getUint16(2 * i, true))
      return out
    }
    case "fp8e4m3fn":
    case "fp8e5m2": {
      const out = new Float32Array(n)
      const e = record.dtype === "fp8e4m3fn" ? 4 : 5
      for (let i = 0; i < n; i++) out[i] = fromFp8Bits(bytes[i]!, e)
      return out
    }
    case "fp32": {
      const out = new Float32Array(n)
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true)
      return out
    }
    case "uint8": return Uint8Array.from(bytes)
    case "int8": return Int8Array.from(bytes, (b) => (b << 24) >> 24)
    case "int16": {
      const out = new Int16Array(n)
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true)
      return out
    }
    case "uint16": {
      const out = new Uint16Array(n)
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true)
      return out
    }
    case "int32": {
      const out = new Int32Array(n)
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true)
      return out
    }
    case "uint32": {
      const out = new Uint32Array(n)
      for (let i = 0; i < n; i++) out[i] = dv.getUint32(4 * i, true)
      return out
    }
    case "int4": return unpackBits(bytes, 4, n, true)
    case "uint1": return unpackBits(bytes, 1, n, false)
    case "uint2": return unpackBits(bytes, 2, n, false)
    case "uint3": return unpackBits(bytes, 3, n, false)
    case "uint4": return unpackBits(bytes, 4, n, false)
    case "uint6": return unpackBits(bytes, 6, n, false)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

const INT_RANGE: Partial<Record<BlobDtype, readonly [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295], int4: [-8, 7],
  uint1: [0, 1], uint2: [0, 3], uint3: [0, 7], uint4: [0, 15], uint6: [0, 63]
}

/** Storage bytes of entry `i` (converted / packed), plus its element count, or the problem. */
const encodeEntry = (
  entry: BlobEntry,
  i: number,
  op: string
): { readonly bytes: Uint8Array; readonly elements: number } | InvalidArgumentError => {
  const { dtype } = entry
  if (!isBlobDtype(dtype)) return bad(op, `entries[${i}].dtype`, "a blob dtype (fp16, fp32, int8, uint4, …)", String(dtype))
  const bits = BLOB_DTYPES[dtype].bits
  if ("bytes" in entry) {
    const elements = entry.elements ?? Math.floor((entry.bytes.length * 8) / bits)
    if (!Number.isSafeInteger(elements) || elements < 0 || blobByteSize(dtype, elements) !== entry.bytes.length) {
      return bad(op, `entries[${i}].bytes`, `${blobByteSize(dtype, Math.max(0, elements))} bytes for ${elements} ${dtype} elements`,
        `${entry.bytes.length} bytes`)
    }
    return { bytes: entry.bytes, elements }
  }
  const data = entry.data
  const n = data.length
  const out = new Uint8Array(blobByteSize(dtype, n))
  const dv = view(out)
  const range = INT_RANGE[dtype]
  if (range !== undefined) {
    for (let k = 0; k < n; k++) {
      const v = data[k]!
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        return bad(op, `entries[${i}].data[${k}]`, `an integer in ${range[0]}..${range[1]} (${dtype})`, String(v))
      }
    }
  }
  switch (dtype) {
    case "fp16":
      if (entry.rounding === "truncate") {
        for (let k = 0; k < n; k++) dv.setUint16(2 * k, float32ToFp16Truncate(data[k]!), true)
      } else if (littleEndian && data instanceof Float32Array && data.byteOffset % 4 === 0) {
        // Fast path: convert straight from the float32 bits into a fresh (aligned) output.
        const bits = new Uint32Array(data.buffer, data.byteOffset, n)
        const h = new Uint16Array(out.buffer, 0, n)
        for (let k = 0; k < n; k++) h[k] = f32BitsToFp16(bits[k]!)
      } else {
        for (let k = 0; k < n; k++) dv.setUint16(2 * k, float32ToFp16(data[k]!), true)
      }
      break
    case "bf16":
      for (let k = 0; k < n; k++) dv.setUint16(2 * k, toBf16Bits(data[k]!), true)
      break
    case "fp32":
      for (let k = 0; k < n; k++) dv.setFloat32(4 * k, data[k]!, true)
      break
    case "fp8e4m3fn":
    case "fp8e5m2":
      return bad(op, `entries[${i}]`, `raw bytes ({ dtype: "${dtype}", bytes }) for 8-bit floats`, "numeric values")
    case "uint8":
    case "int8":
      for (let k = 0; k < n; k++) out[k] = data[k]! & 0xff
      break
    case "int16":
    case "uint16":
      for (let k = 0; k < n; k++) dv.setUint16(2 * k, data[k]! & 0xffff, true)
      break
    case "int32":
    case "uint32":
      for (let k = 0; k < n; k++) dv.setUint32(4 * k, data[k]! >>> 0, true)
      break
    default: {
      // Sub-byte: one LSB-first bit stream; element k occupies bits [k·b, k·b + b) and may straddle bytes.
      const mask = (1 << bits) - 1
      for (let k = 0; k < n; k++) {
        const bit = k * bits
        const word = (data[k]! & mask) << (bit & 7)
        out[bit >>> 3] |= word & 0xff
        if (word > 0xff) out[(bit >>> 3) + 1] |= word >>> 8
      }
    }
  }
  return { bytes: out, elements: n }
}

/** Writes entries in Apple's interleaved layout (plain result). Offsets are metadata offsets. */
export const writeBlobFile = (
  entries: ReadonlyArray<BlobEntry>,
  op = "Blob.write"
): WrittenBlobFile | InvalidArgumentError => {
  const encoded: Array<{ readonly bytes: Uint8Array; readonly elements: number; readonly dtype: BlobDtype }> = []
  for (let i = 0; i < entries.length; i++) {
    const e = encodeEntry(entries[i]!, i, op)
    if (e instanceof InvalidArgumentError) return e
    encoded.push({ ...e, dtype: entries[i]!.dtype })
  }
  const offsets: Array<number> = []
  let end = BLOB_HEADER_SIZE
  for (const e of encoded) {
    const meta = align(end)
    offsets.push(meta)
    end = meta + BLOB_HEADER_SIZE + e.bytes.length
  }
  // Apple's layout, not the Go BlobWriter's: version sits at bytes 4..7 (Go wrote a u64 count and put the version at
  // byte 8, which StorageReader rejects) and each returned offset is the metadata record's (Go returned the data
  // offset, 64 bytes too far: spec §3.3, §10.1). The tail is not padded: the file ends with the last blob's data.
  const out = new Uint8Array(end)
  const dv = view(out)
  dv.setUint32(0, encoded.length, true)
  dv.setUint32(4, BLOB_VERSION, true)
  encoded.forEach((e, i) => {
    const meta = offsets[i]!
    const bits = BLOB_DTYPES[e.dtype].bits
    dv.setUint32(meta, BLOB_SENTINEL, true)
    dv.setUint32(meta + 4, BLOB_DTYPES[e.dtype].code, true)
    dv.setBigUint64(meta + 8, BigInt(e.bytes.length), true)
    dv.setBigUint64(meta + 16, BigInt(meta + BLOB_HEADER_SIZE), true)
    if (bits < 8) dv.setBigUint64(meta + 24, BigInt((8 - ((e.elements * bits) % 8)) % 8), true)
    out.set(e.bytes, meta + BLOB_HEADER_SIZE)
  })
  return { bytes: out, offsets }
}

// ---------------------------------------------------------------------------------------------------------------
// Cross-checking a program's BLOBFILE references against its weight files

/** The element count of a fully known tensor type, or null (symbolic / unknown dims, non-tensor). */
const elementCount = (t: TypeExpr): number | null => {
  if (t.kind === "scalar") return 1
  if (t.kind !== "tensor" || t.shape === null) return null
  let n = 1
  for (const d of t.shape) {
    if (typeof d !== "number") return null
    n *= d
  }
  return n
}

const dtypeOfType = (t: TypeExpr): string | null => (t.kind === "tensor" || t.kind === "scalar" ? t.dtype : null)

/** Every BLOBFILE value of a program, in text order. */
export const blobReferences = (program: Program): ReadonlyArray<Extract<Value, { kind: "blob" }>> => {
  const out: Array<Extract<Value, { kind: "blob" }>> = []
  const visitValue = (v: Value): void => {
    if (v.kind === "blob") out.push(v)
    else if (v.kind === "tuple") v.items.forEach(visitValue)
  }
  const visitOp = (op: Operation): void => {
    op.args.forEach((a) => visitValue(a.value))
    op.attributes.forEach((a) => visitValue(a.value))
    op.blocks.forEach(visitBlock)
  }
  const visitBlock = (b: Block): void => b.operations.forEach(visitOp)
  program.functions.forEach((f) => visitBlock(f.body))
  return out
}

/**
 * Diagnostics (kind "type", codes `blob-*`) for every BLOBFILE of `program` whose file is missing or whose record
 * is malformed or disagrees with the declared tensor's dtype and element count.
 */
export const checkProgramBlobs = (
  program: Program,
  files: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>,
  file?: string
): ReadonlyArray<Diagnostic> => {
  const byPath = new Map(files.map((f) => [f.path, f.bytes]))
  const diagnostics: Array<Diagnostic> = []
  const diag = (code: string, message: string, v: Value, hint?: string) =>
    diagnostics.push(new Diagnostic({
      kind: "type", severity: "error", code, message, line: v.pos.line, col: v.pos.col,
      ...(file !== undefined ? { file } : {}), ...(hint !== undefined ? { hint } : {})
    }))
  for (const ref of blobReferences(program)) {
    const bytes = byPath.get(ref.path)
    if (bytes === undefined) {
      diag("blob-missing-file", `no weight file "${ref.path}" was supplied`, ref,
        `supply it in CompileOptions.mil({ weights: [{ path: "${ref.path}", bytes }] })`)
      continue
    }
    const dtype = dtypeOfType(ref.type)
    const elements = elementCount(ref.type)
    const expected = dtype !== null && elements !== null ? { dtype, elements } : undefined
    const r = readBlobAt(bytes, ref.offset, expected, "BLOBFILE")
    if (r instanceof InvalidArgumentError) diag("blob-mismatch", `${ref.path}: ${r.message}`, ref, r.hint)
  }
  return diagnostics
}

// ---------------------------------------------------------------------------------------------------------------

/** Effect-returning entry points for weight files. */
export const Blob = {
  /** Parses the header and lists every record; fails naming the offset of the first bad record. */
  read: (bytes: Uint8Array): Effect.Effect<BlobFile, InvalidArgumentError> =>
    Effect.suspend(() => {
      const r = readBlobFile(bytes)
      return r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r)
    }),
  /** The blob whose metadata sits at `offset` (a BLOBFILE offset), checked against the declared tensor. */
  readAt: (
    bytes: Uint8Array,
    offset: number | bigint,
    expected?: BlobExpectation
  ): Effect.Effect<BlobData, InvalidArgumentError> =>
    Effect.suspend(() => {
      const r = readBlobAt(bytes, offset, expected)
      return r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r)
    }),
  /** `readAt` then decode: the values (fp16/bf16/fp8 as float32, sub-byte unpacked) of the blob at `offset`. */
  readValues: (
    bytes: Uint8Array,
    offset: number | bigint,
    expected?: BlobExpectation
  ): Effect.Effect<BlobValues, InvalidArgumentError> =>
    Effect.suspend(() => {
      const r = readBlobAt(bytes, offset, expected)
      return r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(decodeBlob(r))
    }),
  /** Writes one weight file; `offsets[i]` is the BLOBFILE offset of `entries[i]`. */
  write: (entries: ReadonlyArray<BlobEntry>): Effect.Effect<WrittenBlobFile, InvalidArgumentError> =>
    Effect.suspend(() => {
      const r = writeBlobFile(entries)
      return r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.succeed(r)
    }),
  /** Decoded values of a blob read with `readAt`. */
  decode: decodeBlob,
  /** Checks every BLOBFILE of a parsed program against the supplied weight files. */
  check: checkProgramBlobs,
  dtypes: BLOB_DTYPES,
  byteSize: blobByteSize
} as const
