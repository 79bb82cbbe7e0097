/**
 * fp16 surface I/O: time to pack a 1024×1000 f32 tensor into a row-padded fp16 surface (RowStride 2048 > 2000 bytes)
 * and to unpack it back, each divided by `Float32Array.prototype.set` over the same f32 data in the same run.
 * Targets: pack_ratio ≤ 4, unpack_ratio ≤ 3 (WebAssembly SIMD path) on the padded layout, the harder case.
 *
 * The surface is the simulator's: large surfaces live in a kernel memory, so conversions run in place. The same
 * figures into plain bytes (`external_*`: how IOSurface views on the hardware backend are converted, with one staging
 * copy more each way), for a 1024×1024 tensor (whose 2048-byte rows need no padding) and for the JS fallback are
 * printed for information.
 */
import { loadavg } from "node:os"
import { fp16KernelKind, readF32, useJsFallback, writeF32 } from "../src/fp16/index.js"
import { TensorLayout } from "../src/schema/TensorLayout.js"
import { allocSurfaceBytes } from "../src/sim/layout.js"
import { round, roundRatios } from "./harness.js"

interface Figures {
  readonly setNs: number
  readonly packNs: number
  readonly unpackNs: number
  readonly pack: number
  readonly unpack: number
}

const measureLayout = (layout: TensorLayout, surface: Uint8Array, js: boolean): Figures => {
  const n = layout.logicalElements
  const src = new Float32Array(n)
  let seed = 12345
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    src[i] = ((seed / 2 ** 32) - 0.5) * 200
  }
  const copy = new Float32Array(n)
  const back = new Float32Array(n)
  useJsFallback(js)
  // Warm up for a while first: the engine compiles the optimised wasm tier in the background, later on a busy host.
  const t0 = Date.now()
  while (Date.now() - t0 < (js ? 300 : 1000)) {
    writeF32(src, surface, layout)
    readF32(surface, layout, back)
    copy.set(src)
  }
  const { baseNs, ns, ratio } = roundRatios(() => copy.set(src), {
    pack: () => writeF32(src, surface, layout),
    unpack: () => readF32(surface, layout, back)
  }, js ? 5 : 15)
  useJsFallback(false)
  return {
    setNs: baseNs,
    packNs: ns.pack,
    unpackNs: ns.unpack,
    pack: round(ratio.pack, 2),
    unpack: round(ratio.unpack, 2)
  }
}

export default async (): Promise<Record<string, unknown>> => {
  const padded = TensorLayout.packed({ channels: 1024, height: 1, width: 1000, elemSize: 2 })
  const dense = TensorLayout.packed({ channels: 1024, height: 1, width: 1024, elemSize: 2 })
  const kernel = fp16KernelKind()
  const sim = measureLayout(padded, allocSurfaceBytes(padded.allocSize), false)
  const simDense = measureLayout(dense, allocSurfaceBytes(dense.allocSize), false)
  const external = measureLayout(padded, new Uint8Array(padded.allocSize), false)
  const externalDense = measureLayout(dense, new Uint8Array(dense.allocSize), false)
  const js = measureLayout(padded, new Uint8Array(padded.allocSize), true)
  return {
    layout: `C${padded.channels} H${padded.height} W${padded.width} fp16 RowStride ${padded.rowStride}`,
    kernel,
    pack_ratio: sim.pack,
    unpack_ratio: sim.unpack,
    set_us: round(sim.setNs / 1000, 1),
    pack_us: round(sim.packNs / 1000, 1),
    unpack_us: round(sim.unpackNs / 1000, 1),
    dense_1024_pack_ratio: simDense.pack,
    dense_1024_unpack_ratio: simDense.unpack,
    external_pack_ratio: external.pack,
    external_unpack_ratio: external.unpack,
    external_dense_1024_pack_ratio: externalDense.pack,
    external_dense_1024_unpack_ratio: externalDense.unpack,
    js_pack_ratio: js.pack,
    js_unpack_ratio: js.unpack,
    // The host is shared: ratios drift with its load, so record it next to them.
    load_1m: round(loadavg()[0]!, 2)
  }
}
