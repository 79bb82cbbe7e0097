/**
 * Host cost of one synchronous evaluation on the hardware backend, over the fake runtime: the wall time of
 * `request.eval` minus the time spent inside the fake's own entry points (objc_msgSend, autorelease pools), i.e.
 * what the library and koffi add per evaluation. The fake evaluates by copying 256 bytes. On a shared host the
 * least-disturbed run (`host_per_sync_eval_us_min`) is the figure to compare; the median shows the contention.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import * as NativeBackend from "../src/native/NativeBackend.js"
import { CompileOptions } from "../src/schema/CompileOptions.js"
import { Backend, type BackendRequest } from "../src/services/Backend.js"
import { loadFake } from "../test/native-fake/controls.js"
import { round } from "./harness.js"

const N = 5_000
const RUNS = 40

const text = `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
        tensor<fp16, [1, 4, 1, 32]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
`

export default async function nativeFfi(): Promise<Record<string, number>> {
  const fake = loadFake()
  const tensor = (name: string) => ({ Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name })
  fake.setEval(undefined)
  fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(NativeBackend.layerWith({ paths: fake.paths, loadRetryMs: 1 }), scope))
  const request: BackendRequest = await Effect.runPromise(
    Effect.gen(function*() {
      const backend = yield* Backend
      return (yield* backend.compile(CompileOptions.mil({ text }))).request
    }).pipe(Effect.provide(context), Scope.extend(scope))
  )
  const loop = Effect.repeatN(request.eval, N - 1)
  const samples: Array<{ wall: number; fake: number }> = []
  for (let r = 0; r < RUNS + 3; r++) {
    // The fake logs every message; clearing the log keeps its buffer small.
    fake.reset()
    const busy0 = fake.busyNs()
    const t0 = process.hrtime.bigint()
    Effect.runSync(loop)
    const wall = Number(process.hrtime.bigint() - t0) / N
    if (r >= 3) samples.push({ wall, fake: (fake.busyNs() - busy0) / N })
  }
  const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const host = samples.map((s) => s.wall - s.fake)
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fake.setAttributes(undefined)
  return {
    wall_per_eval_us: round(median(samples.map((s) => s.wall)) / 1000, 2),
    fake_runtime_per_eval_us: round(median(samples.map((s) => s.fake)) / 1000, 2),
    host_per_sync_eval_us: round(median(host) / 1000, 2),
    host_per_sync_eval_us_min: round(Math.min(...host) / 1000, 2),
    evals_per_run: N
  }
}
