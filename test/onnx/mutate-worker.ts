/**
 * Child process of the mutation test: imports `count` mutated copies of the generated fixtures (bit flips,
 * truncation, bogus dims) and prints one JSON line of outcomes. A defect or thrown exception is counted as a crash.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf"
import { Cause, Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { ModelProtoSchema } from "onnx-buf"
import * as Onnx from "../../src/onnx/Onnx.js"
import { rng } from "./graph.js"

const [start, count] = process.argv.slice(2).map(Number) as [number, number]
const dir = path.join(import.meta.dirname, "fixtures")
const sources = ["convnet", "encoder", "resize"].map((n) => new Uint8Array(fs.readFileSync(path.join(dir, `${n}.onnx`))))
const bogus = [0n, -1n, 3n, 1n << 40n, 65536n, 7n]

const mutate = (i: number): Uint8Array => {
  const r = rng(1234 + i)
  const src = sources[i % sources.length]!
  const kind = i % 3
  if (kind === 0) {
    const b = src.slice()
    const flips = 1 + Math.floor(r() * 8)
    for (let k = 0; k < flips; k++) {
      const at = Math.floor(r() * b.length)
      b[at] = b[at]! ^ (1 << Math.floor(r() * 8))
    }
    return b
  }
  if (kind === 1) return src.slice(0, Math.floor(r() * src.length))
  const m = fromBinary(ModelProtoSchema, src)
  const g = m.graph!
  const pick = <T>(xs: ReadonlyArray<T>): T | undefined => xs[Math.floor(r() * xs.length)]
  const v = bogus[Math.floor(r() * bogus.length)]!
  if (r() < 0.5) {
    const t = pick(g.initializer)
    if (t !== undefined && t.dims.length > 0) t.dims[Math.floor(r() * t.dims.length)] = v
  } else {
    const vi = pick(g.input)
    const tt = vi?.type?.value.case === "tensorType" ? vi.type.value.value : undefined
    const d = tt?.shape?.dim
    if (d !== undefined && d.length > 0) d[Math.floor(r() * d.length)]!.value = { case: "dimValue", value: v }
  }
  return toBinary(ModelProtoSchema, m)
}

const outcome = { typed: 0, ok: 0, crash: 0, crashes: [] as Array<string> }
for (let i = start; i < start + count; i++) {
  try {
    const exit = Effect.runSyncExit(Onnx.importBytes(mutate(i)))
    if (Exit.isSuccess(exit)) outcome.ok++
    else if (Cause.failureOption(exit.cause)._tag === "Some") outcome.typed++
    else {
      outcome.crash++
      outcome.crashes.push(`#${i}: ${Cause.pretty(exit.cause).slice(0, 300)}`)
    }
  } catch (e) {
    outcome.crash++
    outcome.crashes.push(`#${i}: ${String(e).slice(0, 300)}`)
  }
}
process.stdout.write(JSON.stringify(outcome) + "\n")
