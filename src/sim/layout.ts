/**
 * How the simulator reports I/O tensors, the way the engine's `NetworkStatusList` does (native-protocol.md §6):
 * shape mapping to [C, H, W], element sizes, strides, binding order, and the surface codecs.
 *
 * Shape mapping (rank 0–5): the last axis is W, the one before it H, and every leading axis is folded into C
 * (channel-major planes). So `[1, C, 1, S]` → C×1×S (§7.1 / mil-format.md §7.1, the engine's native layout),
 * `[N, C, H, W]` → (N·C)×H×W (batches are consecutive planes), `[H, W]` → 1×H×W, `[W]` → 1×1×W, a scalar → 1×1×1,
 * rank 5 → (d0·d1·d2)×d3×d4. Core ML right-aligns N-d shapes onto the engine's 5-d tensors the same way; the folding
 * of leading axes into channels is this simulator's decision (TensorLayout has no batch stride), documented here.
 *
 * Binding order: inputs and outputs are bound, and reported, sorted by MIL name — the order the engine's
 * LiveInputList/LiveOutputList come in (ane-constraints.md §3, rows 3 and 13: "inputs/outputs are ordered
 * alphabetically"; native-protocol.md §6.5: indices follow those lists), not the function's declaration order.
 */
import { TensorLayout, layoutProblem } from "../schema/TensorLayout.js"
import { UnsupportedLayoutError } from "../schema/errors.js"
import { allocKernelSurface, KERNEL_SURFACE_MIN_BYTES } from "../fp16/kernels.js"
import { readF32, writeF32 } from "../fp16/surface.js"

/** Chips the simulator models. */
export type Chip = "m1" | "m2" | "m3" | "m4" | "m5"

/** Largest W/H extent per chip: 16384 up to the A15 generation (M1, M2), 65536 from A16 (ane-field-facts.md §4.4). */
export const maxExtent = (chip: Chip): number => (chip === "m1" || chip === "m2" ? 16384 : 65536)
/** Largest channel count on every chip (ane-field-facts.md §4.4). */
export const MAX_CHANNELS = 65536

/** [C, H, W] of a MIL shape under the mapping above. */
export const chwOf = (shape: ReadonlyArray<number>): readonly [number, number, number] => {
  const r = shape.length
  if (r === 0) return [1, 1, 1]
  if (r === 1) return [1, 1, shape[0]!]
  let c = 1
  for (let i = 0; i < r - 2; i++) c *= shape[i]!
  return [c, shape[r - 2]!, shape[r - 1]!]
}

/** The layout the engine would report for one I/O tensor, or the reason it cannot be bound. */
export const layoutFor = (
  name: string,
  shape: ReadonlyArray<number>,
  dtype: string,
  chip: Chip,
  role: "input" | "output",
  maxBytes = Infinity
): TensorLayout | UnsupportedLayoutError => {
  const bad = (reason: string) => new UnsupportedLayoutError({ op: "compile", tensor: `${role} ${name}`, reason })
  if (shape.length > 5) return bad(`rank ${shape.length} (the engine binds rank 1–5 tensors)`)
  // Counted in BigInt: the surface size is checked before any number of that size is trusted or allocated.
  const elemBytes = dtype === "fp32" ? 4n : 2n
  let count = 1n
  for (const d of shape) count *= BigInt(Number.isSafeInteger(d) && d >= 0 ? d : 0)
  if (count * elemBytes > BigInt(Number.isSafeInteger(maxBytes) ? maxBytes : Number.MAX_SAFE_INTEGER)) {
    return bad(`${count} elements of ${elemBytes} bytes exceed the surface limit of ${maxBytes} bytes ` +
      `(SimulatorOptions.maxTensorBytes)`)
  }
  if (dtype !== "fp16" && dtype !== "fp32") {
    return bad(`dtype ${dtype}: the engine's I/O surfaces hold fp16 or fp32 only (cast inside the program)`)
  }
  const [c, h, w] = chwOf(shape)
  const layout = TensorLayout.packed({ channels: c, height: h, width: w, elemSize: dtype === "fp16" ? 2 : 4 },
    { name, symbol: name })
  const problem = layoutProblem(layout)
  if (problem !== undefined) return bad(problem)
  if (layout.allocSize > maxBytes) {
    return bad(`a surface of ${layout.allocSize} bytes (rows padded to 64 bytes) exceeds the limit of ${maxBytes} ` +
      `bytes (SimulatorOptions.maxTensorBytes)`)
  }
  const ext = maxExtent(chip)
  if (w > ext || h > ext) return bad(`extent ${Math.max(w, h)} exceeds ${ext} on ${chip}`)
  if (c > MAX_CHANNELS) return bad(`${c} channels exceed ${MAX_CHANNELS}`)
  return layout
}

/** Indices of `names` in the engine's binding order (byte-wise sort by name). */
export const bindingOrder = (names: ReadonlyArray<string>): Array<number> =>
  names.map((n, i) => [n, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])).map((p) => p[1])

/** Typed views of one surface, made once per request. */
export interface SurfaceViews {
  readonly bytes: Uint8Array
  readonly u16: Uint16Array
  readonly f32: Float32Array
}

/**
 * `bytes` zeroed bytes for a surface, 64-byte aligned. Large surfaces live in a WebAssembly memory of their own so
 * that fp16 conversions run straight into and out of their rows (see fp16/kernels.ts); small ones, or any when that
 * is unavailable, are plain ArrayBuffers.
 */
export const allocSurfaceBytes = (bytes: number): Uint8Array => {
  const kernel = bytes >= KERNEL_SURFACE_MIN_BYTES ? allocKernelSurface(bytes) : undefined
  return kernel === undefined ? new Uint8Array(bytes) : new Uint8Array(kernel, 0, bytes)
}

/** A surface of `allocSize` bytes with its views. */
export const allocSurface = (layout: TensorLayout): SurfaceViews => {
  const bytes = allocSurfaceBytes(layout.allocSize)
  const buf = bytes.buffer
  return {
    bytes,
    u16: new Uint16Array(buf, 0, Math.floor(layout.allocSize / 2)),
    f32: new Float32Array(buf, 0, Math.floor(layout.allocSize / 4))
  }
}

/** Reads the logical elements of a surface into `dst` (channel-major, padding skipped); the shared fp16 codec. */
export const unpackSurface = (layout: TensorLayout, s: SurfaceViews, dst: Float32Array): void =>
  readF32(s.bytes, layout, dst)

/** Writes `src` into a surface's logical elements (fp16: round to nearest even; padding never written). */
export const packSurface = (layout: TensorLayout, src: Float32Array, s: SurfaceViews): void =>
  writeF32(src, s.bytes, layout)
