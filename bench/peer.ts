/**
 * The simulator against a peer in the same run: onnxruntime-node (CPU, fp32, one thread), when it is installed
 * (it is not a dependency: `npm install --no-save --ignore-scripts onnxruntime-node`, or `--ort-dir <folder>` whose
 * node_modules holds it). Times a 512³ matmul on both (the simulator's kernel on all its threads, or `--threads n`),
 * and with `--onnx <file>` the Silero VAD v6 network (e.g. `dist/silero_vad_v6.onnx` of `@ricky0123/vad-web`) on
 * ORT against one eval of the corpus Silero package on the simulator. The simulator's operands live in the kernel
 * memory, where a simulated model keeps its run-time tensors (so its matmul reads and writes them in place):
 * `matmul_vs_ort`; `matmul_copy_vs_ort` is the same product on ordinary arrays, copied in and out. The two Silero files were converted separately and their
 * weights differ, so only times are compared. Ratios are simulator time ÷ ORT time, the median over alternating
 * rounds, so a busy spell on the shared host slows both sides of a ratio.
 */
import { Effect, Either } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { kernelArena } from "../src/sim/kernels/gemm.js"
import { fmaActive, fmaAvailable, gemmThreads, matmul, planMatmul, setGemmThreads } from "../src/sim/kernels/index.js"
import * as Sim from "../src/sim/SimBackend.js"
import { random, round } from "./harness.js"
import { SILERO_PACKAGE, sileroEval, warmThreads } from "./sim.js"

// The members of onnxruntime-node used here.
interface OrtTensor {
  readonly data: unknown
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>
  readonly inputNames: ReadonlyArray<string>
}
interface Ort {
  readonly InferenceSession: {
    create(model: string | Uint8Array, options: Record<string, unknown>): Promise<OrtSession>
  }
  readonly Tensor: new (type: string, data: unknown, dims: ReadonlyArray<number>) => OrtTensor
  readonly env: { readonly versions?: { readonly common?: string } }
}

const loadOrt = async (dir: string | undefined): Promise<Ort | undefined> => {
  try {
    if (dir === undefined) return (await import("onnxruntime-node" as string)) as Ort
    const entry = createRequire(join(resolve(dir), "package.json")).resolve("onnxruntime-node")
    return (await import(pathToFileURL(entry).href)) as Ort
  } catch {
    return undefined
  }
}

// ---- a one-node ONNX model (MatMul of two float inputs), encoded by hand -------------------------------------------

const varint = (n: number): Array<number> => {
  const out: Array<number> = []
  while (n > 127) {
    out.push((n & 127) | 128)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}
const field = (no: number, bytes: ReadonlyArray<number>): Array<number> => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes]
const str = (no: number, s: string) => field(no, [...Buffer.from(s, "utf8")])
const int = (no: number, v: number) => [...varint(no << 3), ...varint(v)]

// ValueInfoProto { name, type { tensor_type { elem_type FLOAT, shape { dim { dim_value } … } } } }
const valueInfo = (name: string, dims: ReadonlyArray<number>) =>
  [...str(1, name), ...field(2, field(1, [...int(1, 1), ...field(2, dims.flatMap((d) => field(1, int(1, d))))]))]

const matmulModel = (n: number): Uint8Array => {
  const node = [...str(1, "A"), ...str(1, "B"), ...str(2, "C"), ...str(4, "MatMul")]
  const graph = [...field(1, node), ...str(2, "matmul"), ...field(11, valueInfo("A", [n, n])),
    ...field(11, valueInfo("B", [n, n])), ...field(12, valueInfo("C", [n, n]))]
  return new Uint8Array([...int(1, 8), ...field(7, graph), ...field(8, int(2, 13))])
}

// ---- timing -------------------------------------------------------------------------------------------------------

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Alternating rounds of `runs` runs each; per round, the mean ns of each side and their ratio. */
const alternate = <E, R>(
  rounds: number, runs: number, sim: (n: number) => Effect.Effect<number, E, R>,
  ort: (n: number) => Effect.Effect<number, E, R>
) => Effect.gen(function*() {
  yield* sim(runs)
  yield* ort(runs)
  const s: Array<number> = [], o: Array<number> = [], r: Array<number> = []
  for (let i = 0; i < rounds; i++) {
    const a = (yield* sim(runs)) / runs
    const b = (yield* ort(runs)) / runs
    s.push(a)
    o.push(b)
    r.push(a / b)
  }
  return { simNs: median(s), ortNs: median(o), ratio: median(r) }
})

const elapsed = <E, R>(n: number, once: Effect.Effect<unknown, E, R>): Effect.Effect<number, E, R> =>
  Effect.gen(function*() {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) yield* once
    return Number(process.hrtime.bigint() - t0)
  })

// The matmul ratio again in a child process that turns on relaxed SIMD, or undefined where the flag does not.
const relaxedSimdRatio = (args: ReadonlyArray<string>): number | undefined => {
  const passOn = ["--ort-dir", "--threads"].flatMap((o) => {
    const v = option(args, o)
    return v === undefined ? [] : [o, v]
  })
  const child = spawnSync(process.execPath, [
    ...process.execArgv, "--experimental-wasm-relaxed-simd", process.argv[1]!, "peer", "--json", "--matmul-only", ...passOn
  ], { encoding: "utf8", timeout: 600_000 })
  try {
    const line = child.stdout.trim().split("\n").pop() ?? ""
    const out = JSON.parse(line) as { fma?: boolean; matmul_vs_ort?: number }
    return out.fma === true && typeof out.matmul_vs_ort === "number" ? out.matmul_vs_ort : undefined
  } catch {
    return undefined
  }
}

const option = (args: ReadonlyArray<string>, name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

export default async (args: ReadonlyArray<string>): Promise<Record<string, unknown>> => {
  const ort = await loadOrt(option(args, "--ort-dir"))
  const onnx = option(args, "--onnx")
  const threads = option(args, "--threads")
  if (threads !== undefined) setGemmThreads(Number(threads))
  await warmThreads()
  const n = 512
  const a = random(n * n, 1), b = random(n * n, 2), c = new Float32Array(n * n)
  // The same operands in the kernel memory, as a simulated model holds its run-time tensors.
  const arena = kernelArena()
  const resident = (x: Float32Array) => {
    const v = arena.array(x.length)
    v?.set(x)
    return v ?? x
  }
  const ka = resident(a), kb = resident(b), kc = resident(c)
  const plan = Either.getOrThrow(planMatmul([n, n], [n, n]))
  const timed = (x: Float32Array, y: Float32Array, z: Float32Array) => (runs: number) => Effect.sync(() => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < runs; i++) matmul(plan, x, y, z)
    return Number(process.hrtime.bigint() - t0)
  })
  const simMatmul = timed(ka, kb, kc), simCopied = timed(a, b, c)
  const flops = 2 * n ** 3
  const figures: Record<string, unknown> = { threads: gemmThreads(), fma: fmaActive() }
  if (ort === undefined) {
    const ns = (await Effect.runPromise(simMatmul(20))) / 20
    const copiedNs = (await Effect.runPromise(simCopied(20))) / 20
    return {
      ...figures, ort: "not installed", matmul_sim_gflops: round(flops / ns, 2),
      matmul_copy_sim_gflops: round(flops / copiedNs, 2)
    }
  }
  figures["ort_version"] = ort.env.versions?.common ?? "unknown"
  const single = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential" }
  const mmSession = await ort.InferenceSession.create(matmulModel(n), single)
  const feeds = { A: new ort.Tensor("float32", a, [n, n]), B: new ort.Tensor("float32", b, [n, n]) }
  const ortMatmul = (runs: number) => elapsed(runs, Effect.promise(() => mmSession.run(feeds)))
  const mm = await Effect.runPromise(alternate(9, 5, simMatmul, ortMatmul))
  const copied = await Effect.runPromise(alternate(9, 5, simCopied, ortMatmul))
  arena.dispose()
  figures["matmul_sim_gflops"] = round(flops / mm.simNs, 2)
  figures["matmul_copy_sim_gflops"] = round(flops / copied.simNs, 2)
  figures["matmul_ort_gflops"] = round(flops / mm.ortNs, 2)
  figures["matmul_vs_ort"] = round(mm.ratio, 2)
  figures["matmul_copy_vs_ort"] = round(copied.ratio, 2)
  if (args.includes("--matmul-only")) return figures
  if (!fmaAvailable()) {
    const relaxed = relaxedSimdRatio(args)
    if (relaxed !== undefined) figures["matmul_vs_ort_relaxed_simd"] = relaxed
  }

  if (onnx === undefined) return { ...figures, silero: "give --onnx <silero_vad_v6.onnx> to compare" }
  if (!existsSync(SILERO_PACKAGE)) return { ...figures, silero: `missing ${SILERO_PACKAGE}` }
  const session = await ort.InferenceSession.create(resolve(onnx), single)
  // 512 samples at 16 kHz plus the 64 samples of context the Core ML package also takes: 576.
  const audio = Float32Array.from({ length: 576 }, (_, k) => 0.1 * Math.sin(k * 0.3))
  const ortFeeds = {
    input: new ort.Tensor("float32", audio, [1, 576]),
    state: new ort.Tensor("float32", new Float32Array(2 * 128).fill(0.01), [2, 1, 128]),
    sr: new ort.Tensor("int64", BigInt64Array.from([16000n]), [])
  }
  const silero = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const evalOnce = yield* sileroEval
    return yield* alternate(15, 50, (k) => elapsed(k, evalOnce), (k) => elapsed(k, Effect.promise(() => session.run(ortFeeds))))
  })).pipe(Effect.provide(Sim.layer({ latency: "off", rules: "off" }))))
  return {
    ...figures,
    silero_sim_us: round(silero.simNs / 1000, 1),
    silero_ort_us: round(silero.ortNs / 1000, 1),
    silero_vs_ort: round(silero.ratio, 2)
  }
}
