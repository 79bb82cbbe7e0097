/**
 * The fp32 GEMM every contraction kernel (matmul, linear, conv, lstm) runs on: a blocked WebAssembly SIMD kernel
 * (gemm.wat driving the tiles of gemm-tiles.wat, or of gemm-tiles-fma.wat where the engine has relaxed SIMD) with a
 * plain-JS fallback that sums in the same order with fp32 rounding at every step, so it agrees with the unfused
 * tiles bit for bit. B is packed into panels before the multiply; a constant B (a weight) is packed once with
 * {@link packB} and stays in the kernel memory. Large products are split by rows across worker threads
 * (gemm-workers.ts) that share that memory. Operands that already live there (arrays of a {@link KernelArena}: the
 * simulator's large run-time tensors) are read and written in place; others are copied in and out.
 */
import * as Either from "effect/Either"
import { InvalidArgumentError } from "../../schema/errors.js"
import { wasmBase64 as roundBase64 } from "./fp16round.wasm.js"
import { wasmBase64 as fmaTilesBase64 } from "./gemm-tiles-fma.wasm.js"
import { wasmBase64 as tilesBase64 } from "./gemm-tiles.wasm.js"
import { wasmBase64 as driverBase64 } from "./gemm.wasm.js"
import { type GemmJob, type PackJob, runSplit } from "./gemm-workers.js"

/** Which implementation runs the contractions. */
export type KernelBackend = "wasm" | "js"

// The project's lib settings carry no WebAssembly typings, so the few members used here are declared.
/** A (shared) WebAssembly memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: unknown }
  readonly Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory
}
const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly

/** Exports of gemm.wat. */
export interface DriverExports {
  readonly pack_b: (b: number, sk: number, sn: number, K: number, N: number, dst: number) => void
  readonly gemm_packed: (
    i0: number, i1: number, N: number, K: number, a: number, lda: number, bp: number,
    c: number, ldc: number, accumulate: number, tile: number
  ) => void
}

/** The compiled modules, shared with the worker threads, which instantiate them over the same memory. */
export interface GemmModules {
  readonly driver: object
  readonly tiles: object
  readonly fmaTiles: object | undefined
  readonly memory: WasmMemory
}

const MAX_PAGES = 65536

const compile = (base64: string): object | undefined => {
  try {
    const bytes = Buffer.from(base64, "base64")
    // Validation fails on engines without SIMD128 (or relaxed SIMD for the fused tiles).
    return WA!.validate(bytes) ? new WA!.Module(bytes) : undefined
  } catch {
    return undefined
  }
}

/** Instantiates the driver over `memory` with the given tiles module. */
export const instantiateDriver = (driver: object, tiles: object, memory: WasmMemory): DriverExports => {
  const env = { memory }
  const kern = new WA!.Instance(tiles, { env }).exports
  return new WA!.Instance(driver, { env, kern }).exports as DriverExports
}

// A shared memory reserves its maximum up front: where 4 GiB of address space is refused, ask for less.
const sharedMemory = (): WasmMemory => {
  try {
    return new WA!.Memory({ initial: 16, maximum: MAX_PAGES, shared: true })
  } catch {
    return new WA!.Memory({ initial: 16, maximum: MAX_PAGES / 8, shared: true })
  }
}

interface Wasm {
  readonly memory: WasmMemory
  readonly driverModule: object
  readonly tilesModule: object
  readonly fmaModule: object | undefined
  readonly plain: DriverExports
  readonly fused: DriverExports | undefined
  readonly round: RoundExports | undefined
}

/** Exports of fp16round.wat. */
interface RoundExports {
  readonly round_fp16: (p: number, n: number) => void
  readonly cliff: (p: number, n: number) => void
}

const load = (): Wasm | undefined => {
  try {
    if (WA === undefined) return undefined
    const driverModule = compile(driverBase64)
    const tilesModule = compile(tilesBase64)
    if (driverModule === undefined || tilesModule === undefined) return undefined
    const fmaModule = compile(fmaTilesBase64)
    const memory = sharedMemory()
    const roundModule = compile(roundBase64)
    return {
      memory, driverModule, tilesModule, fmaModule,
      plain: instantiateDriver(driverModule, tilesModule, memory),
      fused: fmaModule === undefined ? undefined : instantiateDriver(driverModule, fmaModule, memory),
      round: roundModule === undefined ? undefined : new WA!.Instance(roundModule, { env: { memory } }).exports as RoundExports
    }
  } catch {
    return undefined
  }
}

const wasm = load()
const forcedJs = typeof process === "object" && process.env["EFFECT_ANE_SIM_KERNELS"] === "js"
let backend: KernelBackend = wasm !== undefined && !forcedJs ? "wasm" : "js"
let fma = wasm?.fused !== undefined

/** The backend contractions currently use (`"wasm"` unless SIMD is missing or `"js"` was forced). */
export const kernelBackend = (): KernelBackend => backend

/** Whether this engine can run the WebAssembly SIMD kernels. */
export const wasmAvailable = (): boolean => wasm !== undefined

/** Whether this engine validates relaxed SIMD, so the wasm kernels can use fused multiply-add. */
export const fmaAvailable = (): boolean => wasm?.fused !== undefined

/** Whether the wasm kernels use fused multiply-add right now (on by default where available). */
export const fmaActive = (): boolean => fma && backend === "wasm"

/**
 * Turns fused multiply-add on or off (only effective where {@link fmaAvailable}). Off, the wasm kernels round each
 * product and each sum, exactly like the JS fallback; on, a product and its sum are rounded once.
 */
export const setFma = (on: boolean): boolean => {
  fma = on && wasm?.fused !== undefined
  return fma
}

/** The modules and memory the worker threads instantiate. */
export const gemmModules = (): GemmModules | undefined =>
  wasm === undefined ? undefined : {
    driver: wasm.driverModule, tiles: wasm.tilesModule, fmaTiles: wasm.fmaModule, memory: wasm.memory
  }

const tileOf = (slot: number): number => slot * TILE_BYTES

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

// ---- the kernel memory: [scratch, 16 KiB per thread][allocations…] ---------------------------------------------

/** Scratch per thread (the caller's is 0, worker w's is w + 1): the edge tile of C and the rows of A in use. */
export const TILE_BYTES = 16384
/** Threads that can take part in one product, the caller included. */
export const MAX_THREADS = 64
const HEAP_BASE = TILE_BYTES * MAX_THREADS

let heap = wasm !== undefined ? new Float32Array(wasm.memory.buffer) : new Float32Array(0)
let top = HEAP_BASE
// Every buffer object the kernel memory has had (a grown shared memory hands out a new one over the same bytes).
const kernelBuffers = new WeakSet<object>()
if (wasm !== undefined) kernelBuffers.add(heap.buffer)
// Free blocks [start, bytes], sorted by start and coalesced.
const free: Array<[number, number]> = []
// Nothing at or above this offset has ever been handed out, so it still holds the zeros the memory started with.
let pristine = HEAP_BASE

const refreshViews = (): Float32Array => {
  if (heap.buffer.byteLength !== wasm!.memory.buffer.byteLength) {
    heap = new Float32Array(wasm!.memory.buffer)
    kernelBuffers.add(heap.buffer)
  }
  return heap
}

/** Byte offset of `x`'s first element in the kernel memory, or -1 when `x` lies elsewhere. */
export const kernelOffset = (x: Float32Array): number => kernelBuffers.has(x.buffer) ? x.byteOffset : -1

// A block of `bytes` (64-byte aligned) in the kernel memory, or undefined past the engine's limit; with `zero`, all
// zeros (only what earlier use may have written is cleared: pages never handed out are left alone, so not committed).
const alloc = (bytes: number, zero = false): number | undefined => {
  const size = Math.max(64, Math.ceil(bytes / 64) * 64)
  let start = -1
  for (let i = 0; i < free.length; i++) {
    const [at, n] = free[i]!
    if (n < size) continue
    if (n === size) free.splice(i, 1)
    else free[i] = [at + size, n - size]
    start = at
    break
  }
  if (start < 0) {
    const end = top + size
    const memory = wasm!.memory
    if (end > memory.buffer.byteLength) {
      const pages = Math.ceil((end - memory.buffer.byteLength) / 65536)
      if (memory.buffer.byteLength / 65536 + pages > MAX_PAGES) return undefined
      try {
        memory.grow(pages)
      } catch {
        return undefined
      }
    }
    start = top
    top = end
  }
  const used = Math.min(start + size, pristine)
  if (zero && used > start) new Uint8Array(refreshViews().buffer, start, used - start).fill(0)
  pristine = Math.max(pristine, start + size)
  return start
}

const release = (start: number, bytes: number): void => {
  const size = Math.max(64, Math.ceil(bytes / 64) * 64)
  let i = 0
  while (i < free.length && free[i]![0] < start) i++
  free.splice(i, 0, [start, size])
  // Coalesce with the neighbours, and give the last block back to the bump pointer.
  if (i + 1 < free.length && free[i]![0] + free[i]![1] === free[i + 1]![0]) {
    free[i]![1] += free[i + 1]![1]
    free.splice(i + 1, 1)
  }
  if (i > 0 && free[i - 1]![0] + free[i - 1]![1] === free[i]![0]) {
    free[i - 1]![1] += free[i]![1]
    free.splice(i, 1)
    i--
  }
  const last = free[free.length - 1]
  if (last !== undefined && last[0] + last[1] === top) {
    top = last[0]
    free.pop()
  }
}

/** Bytes of the kernel memory in use by packed weights and scratch (for tests of the allocator). */
export const kernelMemoryInUse = (): number => top - HEAP_BASE - free.reduce((s, [, n]) => s + n, 0)

// Per-call scratch: one block, replaced by a larger one when a product needs more.
let scratchPtr = 0
let scratchBytes = 0
const scratch = (bytes: number): number | undefined => {
  if (bytes <= scratchBytes) return scratchPtr
  if (scratchBytes > 0) release(scratchPtr, scratchBytes)
  scratchBytes = 0
  const p = alloc(Math.max(bytes, 1 << 20))
  if (p === undefined) return undefined
  scratchPtr = p
  scratchBytes = Math.max(bytes, 1 << 20)
  return p
}

const align64 = (n: number) => (n + 63) & ~63
const packedBytes = (K: number, N: number) => K * ((N + 7) & ~7) * 4

// ---- packed B -----------------------------------------------------------------------------------------------------

/**
 * B (K×N) packed for the kernels, made once with {@link packB} for a constant operand. It keeps its source so the
 * JS fallback can run from it; its packed copy in the kernel memory is given back by {@link PackedB.dispose}, or
 * when the object is collected.
 */
export interface PackedB {
  readonly K: number
  readonly N: number
  readonly source: { readonly b: Float32Array; readonly off: number; readonly ld: number; readonly trans: boolean }
  /** Byte offset of the packed panels in the kernel memory; -1 when there is none (JS, or no room). */
  readonly ptr: number
  readonly dispose: () => void
}

/**
 * Packed bytes kept at most: the collector does not see the kernel memory, so models compiled and dropped faster
 * than it runs must not grow it without bound; past this, weights are packed per call as before.
 */
export const PACKED_LIMIT_BYTES = 512 * 1024 * 1024
let packedTotal = 0

const unpack = (held: { ptr: number; bytes: number; done: boolean }): void => {
  if (held.done) return
  held.done = true
  packedTotal -= held.bytes
  release(held.ptr, held.bytes)
}

const registry = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry<{ ptr: number; bytes: number; done: boolean }>(unpack)
  : undefined

// Copies B's span into the kernel memory at `at` and packs it to `dst`.
const packInto = (
  K: number, N: number, b: Float32Array, bOff: number, ldb: number, transB: boolean, at: number, dst: number,
  h: Float32Array
): void => {
  const span = transB ? (N - 1) * ldb + K : (K - 1) * ldb + N
  h.set(b.subarray(bOff, bOff + span), at >>> 2)
  const sk = transB ? 4 : ldb * 4
  const sn = transB ? ldb * 4 : 4
  wasm!.plain.pack_b(at, sk, sn, K, N, dst)
}

/**
 * Packs B (K×N: `B[k,j] = b[bOff + k·ldb + j]`, or `b[bOff + j·ldb + k]` when `transB`) once, for products that
 * reuse it ({@link gemmPacked}). Without the wasm kernels it only records the source.
 */
export const packB = (
  K: number, N: number, b: Float32Array, bOff: number, ldb: number, transB: boolean
): PackedB => {
  const source = { b, off: bOff, ld: ldb, trans: transB }
  const none: PackedB = { K, N, source, ptr: -1, dispose: () => {} }
  if (wasm === undefined || K <= 0 || N <= 0) return none
  const bytes = packedBytes(K, N)
  if (packedTotal + bytes > PACKED_LIMIT_BYTES) return none
  const ptr = alloc(bytes)
  if (ptr === undefined) return none
  const span = transB ? (N - 1) * ldb + K : (K - 1) * ldb + N
  const at = scratch(span * 4 + 64)
  if (at === undefined) {
    release(ptr, bytes)
    return none
  }
  packInto(K, N, b, bOff, ldb, transB, at, ptr, refreshViews())
  packedTotal += bytes
  const held = { ptr, bytes, done: false }
  const packed: PackedB = {
    K, N, source, ptr,
    dispose: () => {
      registry?.unregister(packed)
      unpack(held)
    }
  }
  registry?.register(packed, held, packed)
  return packed
}

// ---- fp16 storage ---------------------------------------------------------------------------------------------

/**
 * Runs fp16round.wat's `which` (fp16 rounding, or the matmul cliff) in place over `n` floats at byte offset `off` of
 * the kernel memory. False (nothing done) where the wasm kernels are unavailable or JS is forced: the caller runs
 * its own loop.
 */
export const roundKernelAt = (which: "round_fp16" | "cliff", off: number, n: number): boolean => {
  const ex = wasm?.round
  if (backend !== "wasm" || ex === undefined) return false
  ex[which](off, n)
  return true
}

/**
 * {@link roundKernelAt} over the first `n` elements of `a` when `a` lives in the kernel memory; false for other
 * arrays (a staging copy would cost about what the kernel saves).
 */
export const kernelInPlace = (which: "round_fp16" | "cliff", a: Float32Array, n: number): boolean => {
  const off = kernelOffset(a)
  return off >= 0 && roundKernelAt(which, off, n)
}

// ---- arrays in the kernel memory -------------------------------------------------------------------------------

/**
 * Arrays the simulator allocates in the kernel memory: a product whose operands already live there reads A and B
 * and writes C in place, with no copy in or out (the worker threads see the same bytes). Each array keeps its
 * arena alive, and an arena's blocks go back when it is disposed or, failing that, collected.
 */
export interface KernelArena {
  /** `n` zeroed floats in the kernel memory, or undefined (no WebAssembly, {@link ARENA_LIMIT_BYTES} reached, no room). */
  readonly array: (n: number) => Float32Array | undefined
  /** Bytes held now. */
  readonly bytes: () => number
  readonly disposed: () => boolean
  /** Gives every block back: the arrays must not be used after. */
  readonly dispose: () => void
}

/** Bytes all arenas may hold together; past it, callers use ordinary arrays (and products copy them in and out). */
export const ARENA_LIMIT_BYTES = 256 * 1024 * 1024
let arenaTotal = 0

interface ArenaBlocks {
  readonly blocks: Array<[number, number]>
  done: boolean
}

const freeArena = (held: ArenaBlocks): void => {
  if (held.done) return
  held.done = true
  for (const [ptr, bytes] of held.blocks) {
    arenaTotal -= bytes
    release(ptr, bytes)
  }
  held.blocks.length = 0
}

const arenaRegistry = typeof FinalizationRegistry === "function" ? new FinalizationRegistry<ArenaBlocks>(freeArena) : undefined
// array → its arena: an arena is collected only once no array of it is reachable.
const arenaOf = new WeakMap<Float32Array, KernelArena>()

/** A new, empty arena (see {@link KernelArena}). */
export const kernelArena = (): KernelArena => {
  const held: ArenaBlocks = { blocks: [], done: false }
  const arena: KernelArena = {
    array: (n) => {
      if (wasm === undefined || held.done || !Number.isSafeInteger(n) || n <= 0) return undefined
      const bytes = Math.max(64, Math.ceil((n * 4) / 64) * 64)
      if (arenaTotal + bytes > ARENA_LIMIT_BYTES) return undefined
      const ptr = alloc(bytes, true)
      if (ptr === undefined) return undefined
      arenaTotal += bytes
      held.blocks.push([ptr, bytes])
      const view = new Float32Array(refreshViews().buffer, ptr, n)
      arenaOf.set(view, arena)
      return view
    },
    bytes: () => held.blocks.reduce((s, [, b]) => s + b, 0),
    disposed: () => held.done,
    dispose: () => {
      arenaRegistry?.unregister(arena)
      freeArena(held)
    }
  }
  arenaRegistry?.register(arena, held, arena)
  return arena
}

// ---- products -----------------------------------------------------------------------------------------------------

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
  if (backend === "wasm" && K > 0) {
    const span = transB ? (N - 1) * ldb + K : (K - 1) * ldb + N
    const d = operands(M, N, K, a, aOff, lda, transA, c, cOff, ldc, false)
    // B already in the kernel memory is packed from where it is; anything else is copied in first.
    const bk = kernelOffset(b)
    const staged = bk < 0 ? align64(span * 4 + 64) : 0
    const at = layoutScratch(M, N, K, d, packedBytes(K, N), staged)
    if (at !== undefined) {
      const h = refreshViews()
      if (bk < 0) h.set(b.subarray(bOff, bOff + span), at.free >>> 2)
      // The threads of the product pack B (run) while A is copied in.
      const pack: PackJob = {
        b: bk < 0 ? at.free : bk + bOff * 4, sk: transB ? 4 : ldb * 4, sn: transB ? ldb * 4 : 4, K, N, dst: at.b
      }
      return run(M, N, K, a, aOff, lda, transA, at.b, c, cOff, ldc, false, accumulate, d, at, h, undefined, pack)
    }
  }
  gemmJs(M, N, K, a, aOff, lda, transA, b, bOff, ldb, transB, c, cOff, ldc, false, accumulate)
}

/**
 * C (+)= A·B with B packed by {@link packB}; like {@link gemm}, and with `transC` C is written transposed:
 * `C[i,j]` at `c[cOff + j·ldc + i]` (so a convolution can run with its weight as the packed operand). With
 * `rowInit` (N values) every row of C starts from it instead (a bias), whatever `accumulate` says.
 */
export const gemmPacked = (
  M: number, a: Float32Array, aOff: number, lda: number, transA: boolean, B: PackedB,
  c: Float32Array, cOff: number, ldc: number, transC: boolean, accumulate: boolean, rowInit?: Float32Array
): void => {
  const { K, N, source: s } = B
  if (M <= 0 || N <= 0) return
  if (backend === "wasm" && K > 0 && B.ptr >= 0) {
    const d = operands(M, N, K, a, aOff, lda, transA, c, cOff, ldc, transC)
    const at = layoutScratch(M, N, K, d, 0, 0)
    if (at !== undefined) {
      return run(M, N, K, a, aOff, lda, transA, B.ptr, c, cOff, ldc, transC, accumulate, d, at, refreshViews(), rowInit)
    }
  }
  if (rowInit !== undefined) {
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) c[transC ? cOff + j * ldc + i : cOff + i * ldc + j] = rowInit[j]!
  }
  gemmJs(M, N, K, a, aOff, lda, transA, s.b, s.off, s.ld, s.trans, c, cOff, ldc, transC, accumulate || rowInit !== undefined)
}

/** Where the kernels read A and write C: in place (byte offset and row stride) when they can, else -1. */
interface Operands {
  readonly a: number
  readonly lda: number
  readonly c: number
  readonly ldc: number
}

// A is read in place when it lies in the kernel memory row-major (or is one contiguous row), and C written in place
// when it lies there untransposed; if both would overlap, A is copied in first (threads must not read rows of A
// that others have already overwritten as C).
const operands = (
  M: number, N: number, K: number, a: Float32Array, aOff: number, lda: number, transA: boolean,
  c: Float32Array, cOff: number, ldc: number, transC: boolean
): Operands => {
  const ak = kernelOffset(a), ck = kernelOffset(c)
  const a0 = ak + aOff * 4, a1 = a0 + (transA ? K : (M - 1) * lda + K) * 4
  const c0 = ck + cOff * 4, c1 = c0 + ((M - 1) * ldc + N) * 4
  const inC = ck >= 0 && !transC
  const inA = ak >= 0 && (!transA || (M === 1 && lda === 1)) && !(inC && c0 < a1 && a0 < c1)
  return { a: inA ? a0 : -1, lda: transA ? K * 4 : lda * 4, c: inC ? c0 : -1, ldc: ldc * 4 }
}

interface Scratch {
  readonly a: number
  readonly c: number
  readonly flags: number
  readonly b: number
  /** Start of the staging bytes past the packed B. */
  readonly free: number
}

// Scratch for A (M×K) and C (M×N) unless they are used in place, C's row flags, the packed B of an unpacked
// product (`packed` bytes) and B's staging copy (`staged` bytes).
const layoutScratch = (M: number, N: number, K: number, d: Operands, packed: number, staged: number): Scratch | undefined => {
  const aBytes = d.a >= 0 ? 0 : align64(M * K * 4)
  const cBytes = d.c >= 0 ? 0 : align64(M * N * 4)
  const fBytes = align64(M * 4)
  const bPacked = align64(packed)
  const base = scratch(aBytes + cBytes + fBytes + bPacked + staged + 64)
  if (base === undefined) return undefined
  const b = base + aBytes + cBytes + fBytes
  return { a: base, c: base + aBytes, flags: base + aBytes + cBytes, b, free: b + bPacked }
}

const run = (
  M: number, N: number, K: number, a: Float32Array, aOff: number, lda: number, transA: boolean, bp: number,
  c: Float32Array, cOff: number, ldc: number, transC: boolean, accumulate: boolean, d: Operands, at: Scratch,
  h: Float32Array, rowInit?: Float32Array, pack?: PackJob
): void => {
  const inA = d.a >= 0, inC = d.c >= 0
  const c0 = at.c >>> 2
  const prepare = () => {
    // A goes in row-major and compact (a transposed A is transposed here: O(MK) against O(MNK) flops; a transposed
    // single row with unit stride is already compact).
    const a0 = at.a >>> 2
    if (inA) { /* read in place */ }
    else if (!transA || (M === 1 && lda === 1)) {
      if (lda === K) h.set(a.subarray(aOff, aOff + M * K), a0)
      else for (let i = 0; i < M; i++) h.set(a.subarray(aOff + i * lda, aOff + i * lda + K), a0 + i * K)
    } else {
      for (let i = 0; i < M; i++) {
        const row = a0 + i * K
        for (let k = 0; k < K; k++) h[row + k] = a[aOff + k * lda + i]!
      }
    }
    if (rowInit !== undefined) {
      const init = rowInit.subarray(0, N)
      if (inC) for (let i = 0; i < M; i++) c.set(init, cOff + i * ldc)
      else for (let i = 0; i < M; i++) h.set(init, c0 + i * N)
    } else if (accumulate && !inC) {
      if (transC) {
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) h[c0 + i * N + j] = c[cOff + j * ldc + i]!
      } else if (ldc === N) h.set(c.subarray(cOff, cOff + M * N), c0)
      else for (let i = 0; i < M; i++) h.set(c.subarray(cOff + i * ldc, cOff + i * ldc + N), c0 + i * N)
    }
  }
  const job: GemmJob = {
    M, N, K, a: inA ? d.a : at.a, lda: inA ? d.lda : K * 4, bp, c: inC ? d.c : at.c, ldc: inC ? d.ldc : N * 4,
    accumulate: accumulate || rowInit !== undefined ? 1 : 0, flags: at.flags
  }
  const fused = fma && wasm!.fused !== undefined
  // Rows [i0, i1) of C go out to the caller's array (nothing to do when C was written in place).
  const finish = (i0: number, i1: number): void => {
    if (inC) return
    if (transC && M === 1 && ldc === 1) c.set(h.subarray(c0, c0 + N), cOff)
    else if (transC) {
      for (let j = 0; j < N; j++) {
        const o = cOff + j * ldc
        for (let i = i0; i < i1; i++) c[o + i] = h[c0 + i * N + j]!
      }
    } else if (ldc === N) c.set(h.subarray(c0 + i0 * N, c0 + i1 * N), cOff + i0 * N)
    else for (let i = i0; i < i1; i++) c.set(h.subarray(c0 + i * N, c0 + (i + 1) * N), cOff + i * ldc)
  }
  runSplit(fused ? wasm!.fused! : wasm!.plain, fused, job, gemmModules, tileOf, prepare, finish, pack)
}

const fround = Math.fround

const gemmJs = (
  M: number, N: number, K: number,
  a: Float32Array, aOff: number, lda: number, transA: boolean,
  b: Float32Array, bOff: number, ldb: number, transB: boolean,
  c: Float32Array, cOff: number, ldc: number, transC: boolean, accumulate: boolean
): void => {
  const sai = transA ? 1 : lda
  const sak = transA ? lda : 1
  const sbk = transB ? 1 : ldb
  const sbj = transB ? ldb : 1
  // C[i, j] at cOff + i·sci + j·scj.
  const sci = transC ? 1 : ldc
  const scj = transC ? ldc : 1
  // 4×4 register tiles; each element sums k = 0..K−1 in order with one fp32 rounding per product and per
  // addition, exactly what the unfused f32x4 tiles do, so both backends agree bit for bit.
  const M4 = M - (M % 4), N4 = N - (N % 4)
  for (let i = 0; i < M4; i += 4) {
    const a0 = aOff + i * sai, a1 = a0 + sai, a2 = a1 + sai, a3 = a2 + sai
    for (let j = 0; j < N4; j += 4) {
      const c0 = cOff + i * sci + j * scj, c1 = c0 + sci, c2 = c1 + sci, c3 = c2 + sci
      const d1 = scj, d2 = 2 * scj, d3 = 3 * scj
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0
      if (accumulate) {
        s00 = c[c0]!; s01 = c[c0 + d1]!; s02 = c[c0 + d2]!; s03 = c[c0 + d3]!
        s10 = c[c1]!; s11 = c[c1 + d1]!; s12 = c[c1 + d2]!; s13 = c[c1 + d3]!
        s20 = c[c2]!; s21 = c[c2 + d1]!; s22 = c[c2 + d2]!; s23 = c[c2 + d3]!
        s30 = c[c3]!; s31 = c[c3 + d1]!; s32 = c[c3 + d2]!; s33 = c[c3 + d3]!
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
      c[c0] = s00; c[c0 + d1] = s01; c[c0 + d2] = s02; c[c0 + d3] = s03
      c[c1] = s10; c[c1 + d1] = s11; c[c1 + d2] = s12; c[c1 + d3] = s13
      c[c2] = s20; c[c2 + d1] = s21; c[c2 + d2] = s22; c[c2 + d3] = s23
      c[c3] = s30; c[c3 + d1] = s31; c[c3 + d2] = s32; c[c3 + d3] = s33
    }
  }
  // Edges: the rows below M4 (all columns) and the columns right of N4 (top rows), one element at a time.
  for (let i = 0; i < M; i++) {
    const ai = aOff + i * sai
    for (let j = i < M4 ? N4 : 0; j < N; j++) {
      const bj = bOff + j * sbj
      const at = cOff + i * sci + j * scj
      let s = accumulate ? c[at]! : 0
      for (let k = 0; k < K; k++) s = fround(s + fround(a[ai + k * sak]! * b[bj + k * sbk]!))
      c[at] = s
    }
  }
}
