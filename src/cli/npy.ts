/** Reading and writing numpy `.npy` files (format version 1.0): little-endian fp16/fp32/fp64/int/uint/bool arrays. */
import { InvalidArgumentError } from "../schema/errors.js"
import { float32ToFp16, fp16ToFloat32 } from "../fp16/scalar.js"

/** Element types this module reads; writing supports fp16 and fp32. */
export type NpyDtype = "<f2" | "<f4" | "<f8" | "|i1" | "|u1" | "<i2" | "<u2" | "<i4" | "<u4" | "<i8" | "|b1"

/** A decoded array: values widened to float32, row-major. */
export interface NpyArray {
  readonly dtype: NpyDtype
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] // "\x93NUMPY"
const sizes: Readonly<Record<NpyDtype, number>> = {
  "<f2": 2, "<f4": 4, "<f8": 8, "|i1": 1, "|u1": 1, "<i2": 2, "<u2": 2, "<i4": 4, "<u4": 4, "<i8": 8, "|b1": 1
}

const bad = (argument: string, expected: string, actual: string) =>
  new InvalidArgumentError({ op: "npy.read", argument, expected, actual })

/** Longest header read (numpy itself refuses headers over 10 000 bytes unless told otherwise). */
export const MAX_NPY_HEADER_BYTES = 65536

/** Bytes an `.npy` file of `elements` values can need at most: the largest header and 8 bytes per element. */
export const maxNpyBytes = (elements: number): number => 12 + MAX_NPY_HEADER_BYTES + 8 * elements

/** Parses a `.npy` file (plain result: the array, or what is wrong with it). */
export const readNpy = (bytes: Uint8Array, what = "file"): NpyArray | InvalidArgumentError => {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) return bad(`${what}: magic`, "\\x93NUMPY", "something else")
  const major = bytes[6]!
  if (major !== 1 && major !== 2 && major !== 3) return bad(`${what}: version`, "1, 2 or 3", String(major))
  const start = major === 1 ? 10 : 12
  if (bytes.length < start) return bad(`${what}: header length`, `a file of at least ${start} bytes`, `${bytes.length} bytes`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true)
  if (headerLen > MAX_NPY_HEADER_BYTES) return bad(`${what}: header length`, `at most ${MAX_NPY_HEADER_BYTES} bytes`, `${headerLen}`)
  if (start + headerLen > bytes.length) {
    return bad(`${what}: header`, `${headerLen} bytes`, `${bytes.length - start} bytes before the end of the file`)
  }
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen))
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1]
  const fortran = /'fortran_order'\s*:\s*([^,}\s]*)/.exec(header)?.[1]
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1]
  if (descr === undefined || shapeText === undefined || fortran === undefined) {
    return bad(`${what}: header`, "a dict with descr, fortran_order and shape", "something else")
  }
  const dtype = (descr === "<b1" ? "|b1" : descr === "<i1" ? "|i1" : descr === "<u1" ? "|u1" : descr) as NpyDtype
  if (!(dtype in sizes)) return bad(`${what}: descr`, "a little-endian number type (<f2, <f4, <f8, <i4, …)", descr.slice(0, 16))
  if (fortran !== "False") return bad(`${what}: fortran_order`, "False (C order)", fortran.slice(0, 16))
  const dims = shapeText.split(",").map((s) => s.trim())
  // "(5,)" ends in an empty item; any other empty item is malformed.
  if (dims.length > 1 && dims[dims.length - 1] === "") dims.pop()
  const shape = dims.length === 1 && dims[0] === "" ? [] : dims.map((d) => (/^[0-9]{1,16}$/.test(d) ? Number(d) : NaN))
  if (shape.some((d) => !Number.isSafeInteger(d))) return bad(`${what}: shape`, "non-negative integers", `(${shapeText.slice(0, 64)})`)
  const count = shape.reduce((a, b) => a * BigInt(b), 1n)
  if (count > BigInt(bytes.length)) return bad(`${what}: shape`, "as many elements as the file holds", `(${shapeText.slice(0, 64)})`)
  const n = shape.reduce((a, b) => a * b, 1)
  const off = start + headerLen
  const es = sizes[dtype]
  if (bytes.length < off + n * es) return bad(`${what}: data`, `${n * es} bytes`, `${bytes.length - off} bytes`)
  const data = new Float32Array(n)
  const at = (i: number) => off + i * es
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "<f2": data[i] = fp16ToFloat32(dv.getUint16(at(i), true)); break
      case "<f4": data[i] = dv.getFloat32(at(i), true); break
      case "<f8": data[i] = dv.getFloat64(at(i), true); break
      case "|i1": data[i] = dv.getInt8(at(i)); break
      case "|u1":
      case "|b1": data[i] = dv.getUint8(at(i)); break
      case "<i2": data[i] = dv.getInt16(at(i), true); break
      case "<u2": data[i] = dv.getUint16(at(i), true); break
      case "<i4": data[i] = dv.getInt32(at(i), true); break
      case "<u4": data[i] = dv.getUint32(at(i), true); break
      case "<i8": data[i] = Number(dv.getBigInt64(at(i), true)); break
    }
  }
  return { dtype, shape, data }
}

/** Encodes `data` (row-major, `shape`) as a version 1.0 `.npy` file of fp16 or fp32. */
export const writeNpy = (data: Float32Array, shape: ReadonlyArray<number>, dtype: "<f2" | "<f4"): Uint8Array => {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends with a newline.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64
  header = header + " ".repeat(total - 10 - header.length - 1) + "\n"
  const es = dtype === "<f2" ? 2 : 4
  const out = new Uint8Array(total + data.length * es)
  out.set(MAGIC, 0)
  out[6] = 1
  out[7] = 0
  const dv = new DataView(out.buffer)
  dv.setUint16(8, header.length, true)
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i)
  for (let i = 0; i < data.length; i++) {
    if (es === 2) dv.setUint16(total + 2 * i, float32ToFp16(data[i]!), true)
    else dv.setFloat32(total + 4 * i, data[i]!, true)
  }
  return out
}

/** True when two shapes are the same once leading 1s are dropped (`(64, 1, 384)` fits `[1, 64, 1, 384]`). */
export const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => {
  const strip = (s: ReadonlyArray<number>) => {
    let i = 0
    while (i < s.length && s[i] === 1) i++
    return s.slice(i)
  }
  const x = strip(a), y = strip(b)
  return x.length === y.length && x.every((d, i) => d === y[i])
}
