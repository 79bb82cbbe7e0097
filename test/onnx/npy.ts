/** Minimal .npy (v1/v2, little-endian float32/float64) reading and float32 writing for the ONNX goldens. */

/** Parses a .npy file into its shape and float32 data. */
export const readNpy = (bytes: Uint8Array): { readonly shape: ReadonlyArray<number>; readonly data: Float32Array } => {
  if (bytes[0] !== 0x93 || new TextDecoder().decode(bytes.subarray(1, 6)) !== "NUMPY") throw new Error("not a .npy file")
  const major = bytes[6]!
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true)
  const start = major === 1 ? 10 : 12
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen))
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1]
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number)
  const n = shape.reduce((a, b) => a * b, 1)
  const body = start + headerLen
  const data = new Float32Array(n)
  if (descr === "<f4") for (let i = 0; i < n; i++) data[i] = dv.getFloat32(body + 4 * i, true)
  else if (descr === "<f8") for (let i = 0; i < n; i++) data[i] = dv.getFloat64(body + 8 * i, true)
  else throw new Error(`unsupported dtype ${descr}`)
  return { shape, data }
}

/** Serialises float32 data as .npy v1. */
export const writeNpy = (shape: ReadonlyArray<number>, data: Float32Array): Uint8Array => {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`
  const pad = 64 - ((10 + header.length + 1) % 64)
  header += " ".repeat(pad % 64) + "\n"
  const out = new Uint8Array(10 + header.length + data.length * 4)
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0])
  new DataView(out.buffer).setUint16(8, header.length, true)
  out.set(new TextEncoder().encode(header), 10)
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length)
  return out
}
