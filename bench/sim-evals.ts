/**
 * Simulator evaluation cost: heap growth (bytes, after GC) over 10 000 evals of a small program once warmed up —
 * the planned interpreter preallocates every buffer, so it should stay near zero — and evals/s. Also the backend's
 * own pipelining figure: evalAsync with the latency model fixed at 100 µs, 4 requests in flight against 1.
 * Run with `node --expose-gc --import tsx bench/run.ts sim-evals` for exact heap figures (best effort otherwise).
 */
import { Effect, Fiber } from "effect"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import { Backend } from "../src/services/Backend.js"
import * as Sim from "../src/sim/SimBackend.js"
import { round } from "./harness.js"

const text = `program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 32, 1, 64]> x) {
    tensor<fp16, [32, 32, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [32, 32, 1, 1]>(0x1p-5)];
    tensor<fp16, [1, 32, 1, 64]> h = conv(x = x, weight = w, pad_type = string("valid"))[name = string("h")];
    tensor<fp16, [1, 32, 1, 64]> s = sigmoid(x = h)[name = string("s")];
    tensor<fp16, [1, 32, 1, 64]> y = mul(x = x, y = s)[name = string("y")];
  } -> (y);
}
`

// The pipelining figure uses a program whose compute is small next to the 100 µs latency, as the stream bench does.
const tiny = `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 16, 1, 64]> x) {
        tensor<fp16, [1, 16, 1, 64]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
`

const gc = (globalThis as { gc?: () => void }).gc
const heapAfterGc = (): number => {
  if (gc) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}

const EVALS = Number(process.env.SIM_EVALS ?? 10_000)

export default async (): Promise<Record<string, unknown>> => {
  const evalFigures = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const be = yield* Backend
    const m = yield* be.compile(CompileOptions.mil({ text }))
    m.request.inputs[0]!.fill(0x3c)
    const evalOnce = m.request.eval
    for (let i = 0; i < 2000; i++) yield* evalOnce // warm-up: JIT and any lazy allocation
    const before = heapAfterGc()
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < EVALS; i++) yield* evalOnce
    const ns = Number(process.hrtime.bigint() - t0)
    const growth = heapAfterGc() - before
    return {
      evals: EVALS,
      evals_per_s: round(EVALS / (ns / 1e9), 0),
      us_per_eval: round(ns / EVALS / 1000, 2),
      heap_growth_bytes: growth,
      heap_growth_bytes_per_eval: round(growth / EVALS, 3),
      gc_exposed: gc !== undefined
    }
  })).pipe(Effect.provide(Sim.layer({ latency: "off", rules: "off" }))))

  const pipelining = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const be = yield* Backend
    const m = yield* be.compile(CompileOptions.mil({ text: tiny }))
    const requests = [m.request, yield* m.mapRequest, yield* m.mapRequest, yield* m.mapRequest]
    const N = 2000
    const time = (depth: number) => Effect.gen(function*() {
      const t0 = performance.now()
      const fibers = yield* Effect.forEach(requests.slice(0, depth), (r) =>
        Effect.fork(Effect.repeatN(r.evalAsync, N / depth - 1)))
      yield* Effect.forEach(fibers, Fiber.join)
      return performance.now() - t0
    })
    yield* time(4) // warm-up
    const d1 = yield* time(1)
    const d4 = yield* time(4)
    return {
      async_evals: N,
      depth1_us_per_eval: round((d1 * 1000) / N, 1),
      depth4_us_per_eval: round((d4 * 1000) / N, 1),
      speedup_depth4: round(d1 / d4, 2),
      latency_model: "fixedUs 100"
    }
  })).pipe(Effect.provide(Sim.layer({ latency: { fixedUs: 100 }, rules: "off" }))))

  return { ...evalFigures, ...pipelining }
}
