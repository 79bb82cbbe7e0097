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

/** Parses a `.npy` file (plain result: the array, or what is wrong with it). */
export const readNpy = (bytes: Uint8Array, what = "file"): NpyArray | InvalidArgumentError => {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) return bad(`${what}: magic`, "\\x93NUMPY", "something else")
  const major = bytes[6]!
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true)
  const start = major === 1 ? 10 : 12
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen))
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1]
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1]
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1]
  if (descr === undefined || shapeText === undefined) return bad(`${what}: header`, "a dict with descr and shape", header.trim())
  const dtype = (descr === "<b1" ? "|b1" : descr === "<i1" ? "|i1" : descr === "<u1" ? "|u1" : descr) as NpyDtype
  if (!(dtype in sizes)) return bad(`${what}: descr`, "a little-endian number type (<f2, <f4, <f8, <i4, …)", descr)
  if (fortran === "True") return bad(`${what}: fortran_order`, "False (C order)", "True")
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number)
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) return bad(`${what}: shape`, "non-negative integers", shapeText)
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
