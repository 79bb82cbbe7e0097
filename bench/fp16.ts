/**
 * fp16 surface I/O: time to pack a 1024×1000 f32 tensor into a row-padded fp16 surface (RowStride 2048 > 2000 bytes)
 * and to unpack it back, each divided by `Float32Array.prototype.set` over the same f32 data in the same run.
 * Targets: pack_ratio ≤ 4, unpack_ratio ≤ 3 (WebAssembly SIMD path) on the padded layout, the harder case. The same
 * figures for a 1024×1024 tensor (whose 2048-byte rows need no padding) and for the JS fallback are for information.
 */
import { loadavg } from "node:os"
import { fp16KernelKind, readF32, useJsFallback, writeF32 } from "../src/fp16/index.js"
import { TensorLayout } from "../src/schema/TensorLayout.js"
import { medianNs, round } from "./harness.js"

const measureLayout = (layout: TensorLayout) => {
  const n = layout.logicalElements
  const src = new Float32Array(n)
  let seed = 12345
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    src[i] = ((seed / 2 ** 32) - 0.5) * 200
  }
  const copy = new Float32Array(n)
  const surface = new Uint8Array(layout.allocSize)
  const back = new Float32Array(n)
  const runs = 31
  // Warm up for a while first: the engine compiles the optimised wasm tier in the background, later on a busy host.
  const warm = (ms: number) => {
    const t0 = Date.now()
    while (Date.now() - t0 < ms) {
      writeF32(src, surface, layout)
      readF32(surface, layout, back)
      copy.set(src)
    }
  }
  const measure = () => {
    const base = medianNs(() => copy.set(src), runs)
    const pack = medianNs(() => writeF32(src, surface, layout), runs)
    const unpack = medianNs(() => readF32(surface, layout, back), runs)
    const base2 = medianNs(() => copy.set(src), runs)
    const setNs = (base + base2) / 2
    return { setNs, pack, unpack }
  }
  useJsFallback(false)
  warm(1500)
  const fast = measure()
  useJsFallback(true)
  warm(300)
  const js = measure()
  useJsFallback(false)
  return { fast, js }
}

export default async (): Promise<Record<string, unknown>> => {
  const layout = TensorLayout.packed({ channels: 1024, height: 1, width: 1000, elemSize: 2 })
  const kernel = fp16KernelKind()
  const { fast, js } = measureLayout(layout)
  const dense = measureLayout(TensorLayout.packed({ channels: 1024, height: 1, width: 1024, elemSize: 2 })).fast
  return {
    layout: `C${layout.channels} H${layout.height} W${layout.width} fp16 RowStride ${layout.rowStride}`,
    kernel,
    pack_ratio: round(fast.pack / fast.setNs, 2),
    unpack_ratio: round(fast.unpack / fast.setNs, 2),
    set_us: round(fast.setNs / 1000, 1),
    pack_us: round(fast.pack / 1000, 1),
    unpack_us: round(fast.unpack / 1000, 1),
    dense_1024_pack_ratio: round(dense.pack / dense.setNs, 2),
    dense_1024_unpack_ratio: round(dense.unpack / dense.setNs, 2),
    js_pack_ratio: round(js.pack / js.setNs, 2),
    js_unpack_ratio: round(js.unpack / js.setNs, 2),
    // The host is shared: ratios drift with its load, so record it next to them.
    load_1m: round(loadavg()[0]!, 2)
  }
}
