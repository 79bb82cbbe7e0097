/**
 * Bulk fp16 ↔ f32 conversion over a staging area: WebAssembly SIMD kernels (fp16.wat) where the engine has them,
 * a table-driven / integer JS fallback elsewhere. Both convert contiguous runs and give identical bits.
 */
import { wasmBase64 } from "./fp16.wasm.js"
import { f32BitsToFp16, fp16ToF32Bits } from "./scalar.js"

/** A byte area the surface codecs stage blocks in, with the two conversions over it (offsets in bytes). */
export interface Staging {
  readonly kind: "wasm-simd" | "js"
  /** Makes the area at least `bytes` long; views obtained before may be stale afterwards. */
  readonly reserve: (bytes: number) => void
  readonly u8: () => Uint8Array
  readonly u16: () => Uint16Array
  readonly f32: () => Float32Array
  /** `n` f32 at byte `src` → `n` fp16 at byte `dst`; may touch up to 15 elements past `n` on both sides. */
  readonly f32ToF16: (src: number, dst: number, n: number) => void
  /** `n` fp16 at byte `src` → `n` f32 at byte `dst`; may touch up to 15 elements past `n` on both sides. */
  readonly f16ToF32: (src: number, dst: number, n: number) => void
  /** `rows` rows of `width` fp16, `stride` bytes apart from byte `src`, → contiguous f32 at byte `dst`. */
  readonly f16ToF32Rows: (src: number, stride: number, dst: number, width: number, rows: number) => void
  /** `rows` rows of `width` f32, `stride` bytes apart from byte `src`, → contiguous fp16 at byte `dst`. */
  readonly f32ToF16Rows: (src: number, stride: number, dst: number, width: number, rows: number) => void
  /** Bumped whenever the views change (memory grew), so cached sub-views can be dropped. */
  readonly generation: () => number
}

const roundUp16 = (n: number) => (n + 15) & ~15

// The compile settings carry no DOM lib and @types/node declares WebAssembly only in part: describe what is used.
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: unknown }
  readonly Memory: new (descriptor: { initial: number }) => WasmMemory
}

/** The kernels of one instance; every pointer is a byte offset into the memory it was instantiated with. */
export interface Fp16Exports {
  readonly f32_to_f16: (src: number, dst: number, n: number) => void
  readonly f16_to_f32: (src: number, dst: number, n: number) => void
  readonly f16_to_f32_rows: (src: number, stride: number, dst: number, width: number, rows: number) => void
  readonly f32_to_f16_rows: (src: number, stride: number, dst: number, width: number, rows: number) => void
  readonly f32_to_f16_rows_exact: (
    src: number, dst: number, dstStride: number, width: number, rows: number, scratch: number
  ) => void
}

const compile = (): object | undefined => {
  try {
    if (typeof WebAssembly !== "object") return undefined
    const bytes = new Uint8Array(Buffer.from(wasmBase64, "base64"))
    // Validation fails on engines without SIMD128; that is the signal to use the JS fallback.
    if (!WebAssembly.validate(bytes)) return undefined
    return new WebAssembly.Module(bytes)
  } catch {
    return undefined
  }
}

const wasmModule = compile()

const instantiate = (memory: WasmMemory): Fp16Exports | undefined => {
  if (wasmModule === undefined) return undefined
  try {
    return new WebAssembly.Instance(wasmModule, { env: { memory } }).exports as Fp16Exports
  } catch {
    return undefined
  }
}

const makeWasmStaging = (memory: WasmMemory, ex: Fp16Exports): Staging => {
  let u8 = new Uint8Array(memory.buffer)
  let u16 = new Uint16Array(memory.buffer)
  let f32 = new Float32Array(memory.buffer)
  let generation = 0
  return {
    kind: "wasm-simd",
    reserve: (bytes) => {
      if (bytes <= memory.buffer.byteLength) return
      memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536))
      u8 = new Uint8Array(memory.buffer)
      u16 = new Uint16Array(memory.buffer)
      f32 = new Float32Array(memory.buffer)
      generation++
    },
    u8: () => u8,
    u16: () => u16,
    f32: () => f32,
    f32ToF16: (src, dst, n) => ex.f32_to_f16(src, dst, roundUp16(n)),
    f16ToF32: (src, dst, n) => ex.f16_to_f32(src, dst, roundUp16(n)),
    f16ToF32Rows: ex.f16_to_f32_rows,
    f32ToF16Rows: ex.f32_to_f16_rows,
    generation: () => generation
  }
}

let table: Uint32Array | undefined
/** fp16 bits → f32 bits for all 65 536 patterns (256 KiB, built on first use). */
const f16Table = (): Uint32Array => {
  if (table === undefined) {
    table = new Uint32Array(65536)
    for (let h = 0; h < 65536; h++) table[h] = fp16ToF32Bits(h)
  }
  return table
}

const makeJsStaging = (): Staging => {
  // Views copied into locals: the loops then keep them in registers instead of reloading the closure's bindings.
  const f32ToF16 = (src: number, dst: number, n: number) => {
    const from = u32
    const to = u16
    const s = src >>> 2
    const d = dst >>> 1
    for (let i = 0; i < n; i++) to[d + i] = f32BitsToFp16(from[s + i]!)
  }
  const f16ToF32 = (src: number, dst: number, n: number) => {
    const t = f16Table()
    const from = u16
    const to = u32
    const s = src >>> 1
    const d = dst >>> 2
    for (let i = 0; i < n; i++) to[d + i] = t[from[s + i]!]!
  }
  let buffer = new ArrayBuffer(65536)
  let u8 = new Uint8Array(buffer)
  let u16 = new Uint16Array(buffer)
  let u32 = new Uint32Array(buffer)
  let f32 = new Float32Array(buffer)
  let generation = 0
  return {
    kind: "js",
    reserve: (bytes) => {
      if (bytes <= buffer.byteLength) return
      const next = new ArrayBuffer(Math.ceil(bytes / 65536) * 65536)
      buffer = next
      u8 = new Uint8Array(buffer)
      u16 = new Uint16Array(buffer)
      u32 = new Uint32Array(buffer)
      f32 = new Float32Array(buffer)
      generation++
    },
    u8: () => u8,
    u16: () => u16,
    f32: () => f32,
    f32ToF16,
    f16ToF32,
    f16ToF32Rows: (src, stride, dst, width, rows) => {
      for (let r = 0; r < rows; r++) f16ToF32(src + r * stride, dst + r * width * 4, width)
    },
    f32ToF16Rows: (src, stride, dst, width, rows) => {
      for (let r = 0; r < rows; r++) f32ToF16(src + r * stride, dst + r * width * 2, width)
    },
    generation: () => generation
  }
}

const stagingMemory = wasmModule === undefined ? undefined : new WebAssembly.Memory({ initial: 1 })
const stagingExports = stagingMemory === undefined ? undefined : instantiate(stagingMemory)
const wasmStaging = stagingMemory && stagingExports ? makeWasmStaging(stagingMemory, stagingExports) : undefined
let jsStaging: Staging | undefined
let forceJs = false

/** True when the WebAssembly SIMD kernels loaded on this engine. */
export const wasmSimdAvailable: boolean = wasmStaging !== undefined

/**
 * Forces the pure-JS fallback (`true`) or returns to the default (`false`: WebAssembly SIMD when available).
 * Meant for tests and benchmarks comparing both paths; results are bit-identical either way.
 */
export const useJsFallback = (on: boolean): void => {
  forceJs = on
}

/** Which conversion kernels the strided I/O functions use right now. */
export const fp16KernelKind = (): "wasm-simd" | "js" => (!forceJs && wasmStaging ? "wasm-simd" : "js")

/** The staging area of the active kernel kind. */
export const staging = (): Staging => {
  if (!forceJs && wasmStaging) return wasmStaging
  if (jsStaging === undefined) jsStaging = makeJsStaging()
  return jsStaging
}

/**
 * Elements per conversion block: staged input and output stay in the L2 cache (L1-sized blocks measured slower).
 * Not a power of two: with 16 384 every block's copy lands on a 64 KiB-aligned offset of the destination, the
 * period of the L2's sets, and a 4 MB unpack was measured 12× slower on a shared Zen 3 host (3 987 µs against
 * 329 µs with 16 368). A multiple of 16, so that block starts stay aligned for the 16-lane kernels.
 */
export const BLOCK_ELEMENTS = 16368
/** Slack after each staged region: the kernels round counts up to 16 elements of up to 4 bytes. */
export const SLACK = 64

/**
 * A surface that lives in a WebAssembly memory of its own, with a kernel instance bound to that memory, so fp16
 * conversions run straight between the surface rows and a staging area behind them: one copy fewer each way.
 * The memory is never grown, so views of it stay valid for its whole life.
 */
export interface KernelSurface {
  readonly ex: Fp16Exports
  readonly f32: Float32Array
  /** Byte offset of the staging area: one block of f32 plus slack, then 64 bytes of scratch. */
  readonly staging: number
  readonly scratch: number
}

/** Surfaces smaller than this stay plain ArrayBuffers: a memory of their own would cost more than it saves. */
export const KERNEL_SURFACE_MIN_BYTES = 256 * 1024

const kernelSurfaces = new WeakMap<ArrayBuffer, KernelSurface>()

/**
 * An ArrayBuffer for a surface of `bytes` bytes (zeroed) whose conversions can run in place, or undefined when the
 * WebAssembly kernels are unavailable or the engine refuses another memory; the caller then allocates a plain one.
 * The buffer is longer than `bytes` (the staging area follows): view exactly `bytes` of it.
 */
export const allocKernelSurface = (bytes: number): ArrayBuffer | undefined => {
  if (wasmModule === undefined || !Number.isSafeInteger(bytes) || bytes <= 0) return undefined
  // Page-aligned: copies into a staging area at another offset within the page measured up to 30% slower.
  const staging = Math.ceil((bytes + SLACK) / 4096) * 4096
  const scratch = staging + BLOCK_ELEMENTS * 4 + SLACK
  const total = scratch + 64
  if (total > 2 ** 31) return undefined
  let memory: WasmMemory
  try {
    memory = new WebAssembly.Memory({ initial: Math.ceil(total / 65536) })
  } catch {
    return undefined
  }
  const ex = instantiate(memory)
  if (ex === undefined) return undefined
  kernelSurfaces.set(memory.buffer, { ex, f32: new Float32Array(memory.buffer), staging, scratch })
  return memory.buffer
}

/** The kernel surface a view lies in, if any (only while the WebAssembly kernels are the active kind). */
export const kernelSurfaceOf = (view: Uint8Array): KernelSurface | undefined =>
  forceJs ? undefined : kernelSurfaces.get(view.buffer as ArrayBuffer)
