/**
 * The fp32 GEMM every contraction kernel (matmul, linear, conv, lstm) runs on: a blocked WebAssembly SIMD kernel
 * (gemm.wat) with a plain-JS fallback that sums in the same order with fp32 rounding at every step, so the two
 * agree bit for bit.
 */
import { Either } from "effect"
import { InvalidArgumentError } from "../../schema/errors.js"
import { wasmBase64 } from "./gemm.wasm.js"

/** Which implementation runs the contractions. */
export type KernelBackend = "wasm" | "js"

// The project's lib settings carry no WebAssembly typings, so the few members used here are declared.
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: unknown }
}
const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly

interface GemmExports {
  readonly memory: WasmMemory
  readonly gemm: (
    M: number, N: number, K: number, a: number, lda: number, b: number, sk: number, sn: number,
    c: number, ldc: number, accumulate: number, pack: number, tile: number
  ) => void
}

const instantiate = (): GemmExports | undefined => {
  try {
    if (WA === undefined) return undefined
    const bytes = Buffer.from(wasmBase64, "base64")
    if (!WA.validate(bytes)) return undefined // no SIMD128 in this engine
    const instance = new WA.Instance(new WA.Module(bytes), {})
    return instance.exports as unknown as GemmExports
  } catch {
    return undefined
  }
}

const wasm = instantiate()
const forcedJs = typeof process === "object" && process.env["EFFECT_ANE_SIM_KERNELS"] === "js"
let backend: KernelBackend = wasm !== undefined && !forcedJs ? "wasm" : "js"

/** The backend contractions currently use (`"wasm"` unless SIMD is missing or `"js"` was forced). */
export const kernelBackend = (): KernelBackend => backend

/** Whether this engine can run the WebAssembly SIMD kernels. */
export const wasmAvailable = (): boolean => wasm !== undefined

/**
 * Forces a backend (`"auto"` picks wasm when available). The environment variable
 * `EFFECT_ANE_SIM_KERNELS=js` forces JS at load. Asking for wasm where it is missing is an error.
 */
export const setKernelBackend = (
  choice: KernelBackend | "auto"
): Either.Either<KernelBackend, InvalidArgumentError> => {
  if (choice === "wasm" && wasm === undefined) {
    return Either.left(new InvalidArgumentError({
      op: "setKernelBackend", argument: "choice", expected: "a backend this engine supports",
      actual: "wasm (WebAssembly SIMD is unavailable)", hint: "use \"js\" or \"auto\""
    }))
  }
  backend = choice === "auto" ? (wasm !== undefined ? "wasm" : "js") : choice
  return Either.right(backend)
}

// wasm memory map: [tile 128 B][pack 256 KiB][A][B][C]; grown on demand, never shrunk.
const TILE = 0
const PACK = 128
const DATA = PACK + 256 * 256 * 4
let heap = wasm !== undefined ? new Float32Array(wasm.memory.buffer) : new Float32Array(0)

// Grows the wasm memory to `bytes`; undefined when the engine refuses (past its 32-bit limit), and the caller then
// runs the JS kernel instead.
const reserve = (bytes: number): Float32Array | undefined => {
  const memory = wasm!.memory
  if (memory.buffer.byteLength < bytes) {
    if (bytes > 2 ** 32 - 65536) return undefined
    try {
      memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536))
    } catch {
      return undefined
    }
  }
  if (heap.buffer !== memory.buffer) heap = new Float32Array(memory.buffer)
  return heap
}

const align16 = (n: number) => (n + 15) & ~15

/**
 * C (+)= A·B in fp32. A is M×K: `A[i,k] = a[aOff + i·lda + k]`, or `a[aOff + k·lda + i]` when `transA`.
 * B is K×N: `B[k,j] = b[bOff + k·ldb + j]`, or `b[bOff + j·ldb + k]` when `transB`.
 * C is M×N at `c[cOff + i·ldc + j]`; `accumulate` adds to it, else it is overwritten. Sums run over k in order.
 */
export const gemm = (
  M: number, N: number, K: number,
  a: Float32Array, aOff: number, lda: number, transA: boolean,
  b: Float32Array, bOff: number, ldb: number, transB: boolean,
  c: Float32Array, cOff: number, ldc: number, accumulate: boolean
): void => {
  if (M <= 0 || N <= 0) return
  if (backend === "wasm") gemmWasm(M, N, K, a, aOff, lda, transA, b, bOff, ldb, transB, c, cOff, ldc, accumulate)
  else gemmJs(M, N, K, a, aOff, lda, transA, b, bOff, ldb, transB, c, cOff, ldc, accumulate)
}

const gemmWasm = (
  M: number, N: number, K: number,
  a: Float32Array, aOff: number, lda: number, transA: boolean,
  b: Float32Array, bOff: number, ldb: number, transB: boolean,
  c: Float32Array, cOff: number, ldc: number, accumulate: boolean
): void => {
  const kk = Math.max(K, 0)
  const aBytes = align16(M * kk * 4)
  const bSpan = kk === 0 ? 0 : transB ? (N - 1) * ldb + kk : (kk - 1) * ldb + N
  const bBytes = align16(bSpan * 4)
  const aPtr = DATA
  const bPtr = aPtr + aBytes
  const cPtr = bPtr + bBytes
  const h = reserve(cPtr + M * N * 4)
  if (h === undefined) return gemmJs(M, N, K, a, aOff, lda, transA, b, bOff, ldb, transB, c, cOff, ldc, accumulate)
  // A goes in row-major and compact (a transposed A is transposed here: O(MK) against O(MNK) flops).
  const a0 = aPtr >> 2
  if (!transA) {
    if (lda === kk) h.set(a.subarray(aOff, aOff + M * kk), a0)
    else for (let i = 0; i < M; i++) h.set(a.subarray(aOff + i * lda, aOff + i * lda + kk), a0 + i * kk)
  } else {
    for (let i = 0; i < M; i++) {
      const row = a0 + i * kk
      for (let k = 0; k < kk; k++) h[row + k] = a[aOff + k * lda + i]!
    }
  }
  if (bSpan > 0) h.set(b.subarray(bOff, bOff + bSpan), bPtr >> 2)
  const c0 = cPtr >> 2
  if (accumulate) {
    if (ldc === N) h.set(c.subarray(cOff, cOff + M * N), c0)
    else for (let i = 0; i < M; i++) h.set(c.subarray(cOff + i * ldc, cOff + i * ldc + N), c0 + i * N)
  }
  const sk = transB ? 4 : ldb * 4
  const sn = transB ? ldb * 4 : 4
  wasm!.gemm(M, N, kk, aPtr, kk * 4, bPtr, sk, sn, cPtr, N * 4, accumulate ? 1 : 0, PACK, TILE)
  if (ldc === N) c.set(h.subarray(c0, c0 + M * N), cOff)
  else for (let i = 0; i < M; i++) c.set(h.subarray(c0 + i * N, c0 + (i + 1) * N), cOff + i * ldc)
}

const fround = Math.fround

const gemmJs = (
  M: number, N: number, K: number,
  a: Float32Array, aOff: number, lda: number, transA: boolean,
  b: Float32Array, bOff: number, ldb: number, transB: boolean,
  c: Float32Array, cOff: number, ldc: number, accumulate: boolean
): void => {
  const sai = transA ? 1 : lda
  const sak = transA ? lda : 1
  const sbk = transB ? 1 : ldb
  const sbj = transB ? ldb : 1
  // 4×4 register tiles; each element sums k = 0..K−1 in order with one fp32 rounding per product and per
  // addition, exactly what the f32x4 kernel does, so both backends agree bit for bit.
  const M4 = M - (M % 4), N4 = N - (N % 4)
  for (let i = 0; i < M4; i += 4) {
    const a0 = aOff + i * sai, a1 = a0 + sai, a2 = a1 + sai, a3 = a2 + sai
    for (let j = 0; j < N4; j += 4) {
      const c0 = cOff + i * ldc + j, c1 = c0 + ldc, c2 = c1 + ldc, c3 = c2 + ldc
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0
      if (accumulate) {
        s00 = c[c0]!; s01 = c[c0 + 1]!; s02 = c[c0 + 2]!; s03 = c[c0 + 3]!
        s10 = c[c1]!; s11 = c[c1 + 1]!; s12 = c[c1 + 2]!; s13 = c[c1 + 3]!
        s20 = c[c2]!; s21 = c[c2 + 1]!; s22 = c[c2 + 2]!; s23 = c[c2 + 3]!
        s30 = c[c3]!; s31 = c[c3 + 1]!; s32 = c[c3 + 2]!; s33 = c[c3 + 3]!
      }
      const bj = bOff + j * sbj
      for (let k = 0; k < K; k++) {
        const bk = bj + k * sbk
        const b0 = b[bk]!, b1 = b[bk + sbj]!, b2 = b[bk + 2 * sbj]!, b3 = b[bk + 3 * sbj]!
        const ak = k * sak
        let av = a[a0 + ak]!
        s00 = fround(s00 + fround(av * b0)); s01 = fround(s01 + fround(av * b1))
        s02 = fround(s02 + fround(av * b2)); s03 = fround(s03 + fround(av * b3))
        av = a[a1 + ak]!
        s10 = fround(s10 + fround(av * b0)); s11 = fround(s11 + fround(av * b1))
        s12 = fround(s12 + fround(av * b2)); s13 = fround(s13 + fround(av * b3))
        av = a[a2 + ak]!
        s20 = fround(s20 + fround(av * b0)); s21 = fround(s21 + fround(av * b1))
        s22 = fround(s22 + fround(av * b2)); s23 = fround(s23 + fround(av * b3))
        av = a[a3 + ak]!
        s30 = fround(s30 + fround(av * b0)); s31 = fround(s31 + fround(av * b1))
        s32 = fround(s32 + fround(av * b2)); s33 = fround(s33 + fround(av * b3))
      }
      c[c0] = s00; c[c0 + 1] = s01; c[c0 + 2] = s02; c[c0 + 3] = s03
      c[c1] = s10; c[c1 + 1] = s11; c[c1 + 2] = s12; c[c1 + 3] = s13
      c[c2] = s20; c[c2 + 1] = s21; c[c2 + 2] = s22; c[c2 + 3] = s23
      c[c3] = s30; c[c3 + 1] = s31; c[c3 + 2] = s32; c[c3 + 3] = s33
    }
  }
  // Edges: the rows below M4 (all columns) and the columns right of N4 (top rows), one element at a time.
  for (let i = 0; i < M; i++) {
    const ai = aOff + i * sai
    for (let j = i < M4 ? N4 : 0; j < N; j++) {
      const bj = bOff + j * sbj
      let s = accumulate ? c[cOff + i * ldc + j]! : 0
      for (let k = 0; k < K; k++) s = fround(s + fround(a[ai + k * sak]! * b[bj + k * sbk]!))
      c[cOff + i * ldc + j] = s
    }
  }
}
