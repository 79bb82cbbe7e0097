import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

// Importing the library and running the simulator never loads koffi's native binary; the hardware path loads it on
// first use. Checked in a child process, where nothing else has loaded it.
const root = join(dirname(fileURLToPath(import.meta.url)), "../..")
const src = (p: string) => pathToFileURL(join(root, "src", p)).href

const script = `
const loaded = () => process.report.getReport().sharedObjects.some((p) => /koffi/i.test(p))
const { Effect } = await import("effect")
const { Ane, CompileOptions } = await import(${JSON.stringify(src("index.ts"))})
const text = \`program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {
    tensor<fp16, [1, 4, 1, 8]> y = add(x = x, y = x)[name = string("y")];
  } -> (y);
}
\`
const y = await Effect.runPromise(Effect.gen(function* () {
  const ane = yield* Ane.Ane
  const model = yield* ane.compile(CompileOptions.mil({ text }))
  yield* model.writeInputF32(0, new Float32Array(32).fill(1.5))
  yield* model.eval
  return yield* model.readOutputF32(0)
}).pipe(Effect.scoped, Effect.provide(Ane.layerAuto())))
const afterSimulator = loaded()
const { koffi } = await import(${JSON.stringify(src("native/koffi.ts"))})
koffi()
console.log(JSON.stringify({ y0: y[0], afterSimulator, afterFirstUse: loaded() }))
`

describe("koffi is loaded on first use", () => {
  it("the library runs the simulator without loading it, and loads it when the hardware path asks", () => {
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root, encoding: "utf8", timeout: 60_000
    })
    const result = JSON.parse(out.trim().split("\n").pop()!) as { y0: number; afterSimulator: boolean; afterFirstUse: boolean }
    expect(result.y0).toBe(3)
    expect(result.afterSimulator).toBe(false)
    expect(result.afterFirstUse).toBe(true)
  }, 90_000)
})
