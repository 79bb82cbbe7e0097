/** Controls of the fake Metal (test/native-fake/fake_metal.c), linked into the fake runtime's library. */
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { type Fake, loadFake } from "./fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

/** What a dispatched kernel gets: its buffers' memory, the parameter bytes and the grid. */
export interface KernelCall {
  readonly name: string
  readonly buffers: ReadonlyArray<Uint8Array>
  readonly params: Uint8Array | undefined
  readonly grid: readonly [number, number, number]
}

/** The fake Metal's controls. */
export interface MetalFake {
  readonly fake: Fake
  /** Clears the log and counters; the device is available again. */
  readonly reset: () => void
  /** Whether MTLCreateSystemDefaultDevice answers a device. */
  readonly setDevice: (on: boolean) => void
  /** A selector Metal objects then say they do not answer (respondsToSelector: NO) until the next reset. */
  readonly hide: (selector: string) => void
  /** The kernel run for every dispatch (0: success); undefined: dispatches do nothing. Runs on the fake GPU's thread. */
  readonly setKernel: (kernel: ((call: KernelCall) => number) | undefined) => void
  /** Metal objects alive. */
  readonly live: () => number
  readonly stat: (
    what: "rejected" | "mismatches" | "unpooled" | "dispatches" | "orphans" | "buffersReady" | "enqueued" | "chains"
  ) => number
  readonly last: () => string
  /** Every Metal message since the last reset ("-MTLDevice newCommandQueue"). */
  readonly log: () => ReadonlyArray<string>
}

let cached: MetalFake | undefined

/** Loads the fake (once per process) with its Metal controls. */
export const loadMetalFake = (): MetalFake => {
  if (cached !== undefined) return cached
  const fake = loadFake()
  const lib = koffi.load(fake.paths.objc)
  const reset = lib.func("fake_metal_reset", "void", [])
  const setDevice = lib.func("fake_metal_set_device", "void", ["int"])
  const hide = lib.func("fake_metal_hide", "void", ["const char *"])
  const live = lib.func("fake_metal_live", "long", [])
  const stat = lib.func("fake_metal_stat", "long", ["const char *"])
  const last = lib.func("fake_metal_last", "const char *", [])
  const log = lib.func("fake_metal_log", "const char *", [])
  const Proto = koffi.proto(
    "int FakeKernel(const char *name, int nbuf, void *buffers, void *lengths, void *params, long nparams, uint64_t gx, uint64_t gy, uint64_t gz)"
  )
  const setCb = lib.func("fake_metal_set_kernel", "void", [koffi.pointer(Proto) as unknown as string])
  let registered: ReturnType<typeof koffi.register> | undefined
  cached = {
    fake,
    reset: () => reset(),
    setDevice: (on) => setDevice(on ? 1 : 0),
    hide: (selector) => hide(selector),
    setKernel: (kernel) => {
      if (registered !== undefined) {
        setCb(null)
        koffi.unregister(registered)
        registered = undefined
      }
      if (kernel === undefined) return
      registered = koffi.register((name: string, n: number, buffers: unknown, lengths: unknown, params: unknown, np: number,
        gx: bigint, gy: bigint, gz: bigint) => {
        const ptrs = n > 0 ? (koffi.decode(buffers, koffi.array("void *", n)) as Array<unknown>) : []
        const lens = n > 0 ? (koffi.decode(lengths, koffi.array("uint64_t", n)) as Array<number | bigint>) : []
        const views = ptrs.map((p, i) => new Uint8Array(koffi.view(p as never, Number(lens[i]))))
        const bytes = np > 0 ? new Uint8Array(koffi.view(params as never, Number(np))).slice() : undefined
        try {
          return kernel({ name, buffers: views, params: bytes, grid: [Number(gx), Number(gy), Number(gz)] })
        } catch {
          return 1
        }
      }, koffi.pointer(Proto))
      setCb(registered)
    },
    live: () => Number(live()),
    stat: (what) => Number(stat(what)),
    last: () => last() as string,
    log: () => (log() as string).split("\n").filter((l) => l !== "")
  }
  return cached
}
