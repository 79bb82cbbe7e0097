/**
 * Strided surface I/O: packs logical channel-major data into a surface's rows (fp16 or f32 elements, 64-byte
 * aligned rows, optional plane padding) and back. Padding bytes are never written. Arguments are assumed checked
 * (see checkTensorIo); nothing here validates.
 */
import type { TensorLayout } from "../schema/TensorLayout.js"
import { BLOCK_ELEMENTS, type KernelSurface, kernelSurfaceOf, SLACK, type Staging, staging } from "./kernels.js"

type Logical = Float32Array | Uint16Array

/** Rows with one constant stride: the whole range when planes are packed, else one run per channel. */
const forEachRun = (
  layout: TensorLayout,
  channelStart: number,
  channelCount: number,
  f: (byteOffset: number, rows: number, firstElement: number) => void
): void => {
  const { height, width, rowStride, planeStride } = layout
  if (planeStride === height * rowStride) {
    f(channelStart * planeStride, channelCount * height, 0)
    return
  }
  for (let c = 0; c < channelCount; c++) f((channelStart + c) * planeStride, height, c * height * width)
}

// Sub-views of the staging area, reused across calls: creating a view per row costs more than copying the row.
let cacheOwner: Staging | undefined
let cacheGeneration = -1
const viewCache = new Map<string, ReadonlyArray<Uint8Array | Uint16Array | Float32Array>>()

const stagedViews = <A extends Uint8Array | Uint16Array | Float32Array>(
  st: Staging,
  array: A,
  tag: string,
  base: number,
  stride: number,
  length: number,
  count: number
): ReadonlyArray<A> => {
  if (cacheOwner !== st || cacheGeneration !== st.generation()) {
    viewCache.clear()
    cacheOwner = st
    cacheGeneration = st.generation()
  }
  const key = `${tag}:${base}:${stride}:${length}:${count}`
  let views = viewCache.get(key)
  if (views === undefined) {
    if (viewCache.size >= 64) viewCache.clear()
    const made: Array<A> = []
    for (let j = 0; j < count; j++) made.push(array.subarray(base + j * stride, base + j * stride + length) as A)
    views = made
    viewCache.set(key, views)
  }
  return views as ReadonlyArray<A>
}

const bytesOf = (a: Logical): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

/**
 * The blocks a kernel surface's conversion goes through: `rows` rows of `width` elements, `stride` bytes apart,
 * starting at surface byte `byte` (relative to the view) and logical element `element`. A contiguous run is one long
 * row; padded rows go in groups that fill a block; a row wider than a block goes in pieces.
 */
const forEachBlock = (
  layout: TensorLayout,
  channelStart: number,
  channelCount: number,
  visit: (byte: number, element: number, width: number, rows: number, stride: number) => void
): void => {
  const { width, rowStride } = layout
  const contiguous = rowStride === width * 2
  forEachRun(layout, channelStart, channelCount, (off, rows, first) => {
    if (contiguous || width > BLOCK_ELEMENTS) {
      const runs = contiguous ? 1 : rows
      const length = contiguous ? rows * width : width
      for (let r = 0; r < runs; r++) {
        for (let done = 0; done < length; done += BLOCK_ELEMENTS) {
          visit(off + r * rowStride + done * 2, first + r * width + done, Math.min(BLOCK_ELEMENTS, length - done), 1, 0)
        }
      }
      return
    }
    const rowsPerBlock = Math.floor(BLOCK_ELEMENTS / width)
    for (let r0 = 0; r0 < rows; r0 += rowsPerBlock) {
      visit(off + r0 * rowStride, first + r0 * width, width, Math.min(rowsPerBlock, rows - r0), rowStride)
    }
  })
}

/**
 * f32 → an fp16 surface that lives in a kernel memory: the input is staged block by block behind the surface and
 * converted straight into its rows, exactly `width` elements each, so padding is never written.
 */
const packInPlace = (
  ks: KernelSurface,
  src: Float32Array,
  dst: Uint8Array,
  layout: TensorLayout,
  channelStart: number,
  channelCount: number
): void => {
  const { ex, f32, staging, scratch } = ks
  const inElem = staging / 4
  const base = dst.byteOffset
  forEachBlock(layout, channelStart, channelCount, (byte, e, width, rows, stride) => {
    f32.set(src.subarray(e, e + rows * width), inElem)
    ex.f32_to_f16_rows_exact(staging, base + byte, stride, width, rows, scratch)
  })
}

/** An fp16 surface in a kernel memory → f32: its rows are converted in place into the staging area, then copied. */
const unpackInPlace = (
  ks: KernelSurface,
  src: Uint8Array,
  dst: Float32Array,
  layout: TensorLayout,
  channelStart: number,
  channelCount: number
): void => {
  const { ex, f32, staging } = ks
  const outElem = staging / 4
  const base = src.byteOffset
  // Reads run up to 15 elements past a row; past the surface's end they land in the staging area, still in bounds.
  forEachBlock(layout, channelStart, channelCount, (byte, e, width, rows, stride) => {
    ex.f16_to_f32_rows(base + byte, stride, staging, width, rows)
    dst.set(f32.subarray(outElem, outElem + rows * width), e)
  })
}

/** Logical (element size `lz`) → surface rows, converting when the surface element size differs. */
const writeRows = (
  src: Logical,
  lz: 2 | 4,
  dst: Uint8Array,
  layout: TensorLayout,
  channelStart: number,
  channelCount: number
): void => {
  const { width, rowStride } = layout
  const ez = layout.elemSize
  const rowBytes = width * ez
  const contiguous = rowStride === rowBytes
  if (lz === ez) {
    const bytes = bytesOf(src)
    forEachRun(layout, channelStart, channelCount, (off, rows, first) => {
      const b = first * lz
      if (contiguous) dst.set(bytes.subarray(b, b + rows * rowBytes), off)
      else for (let r = 0; r < rows; r++) dst.set(bytes.subarray(b + r * rowBytes, b + (r + 1) * rowBytes), off + r * rowStride)
    })
    return
  }
  if (lz === 4) {
    const ks = kernelSurfaceOf(dst)
    if (ks !== undefined) return packInPlace(ks, src as Float32Array, dst, layout, channelStart, channelCount)
  }
  const st = staging()
  // Contiguous rows are one long row; padded rows go in groups of whole rows.
  const perBlock = contiguous ? BLOCK_ELEMENTS : Math.max(1, Math.floor(BLOCK_ELEMENTS / width)) * width
  const inBase = 0
  const outBase = Math.ceil((perBlock * lz + SLACK) / 64) * 64
  st.reserve(outBase + perBlock * ez + SLACK)
  const u8 = st.u8()
  const staged = lz === 4 ? st.f32() : st.u16()
  const convert = lz === 4 ? st.f32ToF16 : st.f16ToF32
  const rowsPerBlock = perBlock / width
  const rowViews = contiguous ? undefined : stagedViews(st, u8, "w", outBase, rowBytes, rowBytes, rowsPerBlock)
  forEachRun(layout, channelStart, channelCount, (off, rows, first) => {
    const total = rows * width
    for (let done = 0; done < total; done += perBlock) {
      const n = Math.min(perBlock, total - done)
      const e = first + done
      ;(staged as Logical).set(src.subarray(e, e + n), inBase / lz)
      convert(inBase, outBase, n)
      if (rowViews === undefined) dst.set(u8.subarray(outBase, outBase + n * ez), off + done * ez)
      else {
        const r0 = done / width
        const k = n / width
        for (let j = 0; j < k; j++) dst.set(rowViews[j]!, off + (r0 + j) * rowStride)
      }
    }
  })
}

/** Surface rows → logical (element size `lz`), converting when the surface element size differs. */
const readRows = (
  src: Uint8Array,
  dst: Logical,
  lz: 2 | 4,
  layout: TensorLayout,
  channelStart: number,
  channelCount: number
): void => {
  const { width, rowStride } = layout
  const ez = layout.elemSize
  const rowBytes = width * ez
  const contiguous = rowStride === rowBytes
  if (lz === ez) {
    const bytes = bytesOf(dst)
    forEachRun(layout, channelStart, channelCount, (off, rows, first) => {
      const b = first * lz
      if (contiguous) bytes.set(src.subarray(off, off + rows * rowBytes), b)
      else for (let r = 0; r < rows; r++) bytes.set(src.subarray(off + r * rowStride, off + r * rowStride + rowBytes), b + r * rowBytes)
    })
    return
  }
  if (lz === 4) {
    const ks = kernelSurfaceOf(src)
    if (ks !== undefined) return unpackInPlace(ks, src, dst as Float32Array, layout, channelStart, channelCount)
  }
  const st = staging()
  const strideElems = rowStride / ez
  // Dense padded rows: stage the whole span (padding included; reading it is harmless) with one copy and let the
  // kernel skip the padding; sparse rows: stage row by row.
  const dense = !contiguous && rowStride <= 2 * rowBytes
  const rowsPerBlock = contiguous ? 0 : Math.max(1, Math.floor(BLOCK_ELEMENTS / (dense ? strideElems : width)))
  const stagedElems = contiguous ? BLOCK_ELEMENTS : dense ? (rowsPerBlock - 1) * strideElems + width : rowsPerBlock * width
  const inBase = 0
  const outBase = Math.ceil((stagedElems * ez + SLACK) / 64) * 64
  st.reserve(outBase + stagedElems * lz + SLACK)
  const u8 = st.u8()
  const staged = (lz === 4 ? st.f32() : st.u16()) as Logical
  const convert = lz === 4 ? st.f16ToF32 : st.f32ToF16
  const outElem = outBase / lz
  const convertRows = lz === 4 ? st.f16ToF32Rows : st.f32ToF16Rows
  // The converted output of a full block of rows: one cached view instead of a new one per block.
  const fullOut = contiguous
    ? undefined
    : stagedViews(st, staged, lz === 4 ? "r4" : "r2", outElem, 0, rowsPerBlock * width, 1)[0]!
  forEachRun(layout, channelStart, channelCount, (off, rows, first) => {
    if (contiguous) {
      const total = rows * width
      for (let done = 0; done < total; done += BLOCK_ELEMENTS) {
        const n = Math.min(BLOCK_ELEMENTS, total - done)
        u8.set(src.subarray(off + done * ez, off + (done + n) * ez), inBase)
        convert(inBase, outBase, n)
        dst.set(staged.subarray(outElem, outElem + n), first + done)
      }
      return
    }
    for (let r0 = 0; r0 < rows; r0 += rowsPerBlock) {
      const k = Math.min(rowsPerBlock, rows - r0)
      const rowOff = off + r0 * rowStride
      const e = first + r0 * width
      if (dense) {
        u8.set(src.subarray(rowOff, rowOff + ((k - 1) * strideElems + width) * ez), inBase)
        convertRows(inBase, rowStride, outBase, width, k)
      } else {
        for (let j = 0; j < k; j++) u8.set(src.subarray(rowOff + j * rowStride, rowOff + j * rowStride + rowBytes), inBase + j * rowBytes)
        convert(inBase, outBase, k * width)
      }
      dst.set(k === rowsPerBlock ? fullOut! : staged.subarray(outElem, outElem + k * width), e)
    }
  })
}

/**
 * Packs logical channel-major f32 data (`channelCount` channels × H × W, starting at channel `channelStart`) into
 * the surface bytes `dst`: fp16 (round to nearest even) when `layout.elemSize` is 2, f32 when 4. Padding bytes are
 * never written. Arguments must have passed checkTensorIo.
 */
export const writeF32 = (
  src: Float32Array,
  dst: Uint8Array,
  layout: TensorLayout,
  channelStart = 0,
  channelCount = layout.channels - channelStart
): void => writeRows(src, 4, dst, layout, channelStart, channelCount)

/** Unpacks surface bytes (fp16 or f32 elements) into logical channel-major f32 data; the inverse of {@link writeF32}. */
export const readF32 = (
  src: Uint8Array,
  layout: TensorLayout,
  dst: Float32Array,
  channelStart = 0,
  channelCount = layout.channels - channelStart
): void => readRows(src, dst, 4, layout, channelStart, channelCount)

/** Like {@link writeF32} for raw fp16 bit patterns: copied as-is to an fp16 surface, widened exactly to an f32 one. */
export const writeFp16 = (
  src: Uint16Array,
  dst: Uint8Array,
  layout: TensorLayout,
  channelStart = 0,
  channelCount = layout.channels - channelStart
): void => writeRows(src, 2, dst, layout, channelStart, channelCount)

/** Like {@link readF32} into raw fp16 bit patterns: copied from an fp16 surface, rounded (RNE) from an f32 one. */
export const readFp16 = (
  src: Uint8Array,
  layout: TensorLayout,
  dst: Uint16Array,
  channelStart = 0,
  channelCount = layout.channels - channelStart
): void => readRows(src, dst, 2, layout, channelStart, channelCount)
