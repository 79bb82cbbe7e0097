/** `ane probe`: what the engine (or the simulator standing in for it) reports, and the compile budget. */
import { Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ane from "../services/Ane.js"
import { reported } from "./failure.js"
import * as CommonOptions from "./options.js"

const backend = Options.choice("backend", ["auto", "hardware", "simulator"]).pipe(
  Options.withDefault("auto" as const),
  Options.withDescription("which backend answers: auto picks the engine when present, else the simulator (default: auto)")
)
const json = CommonOptions.json

const layerFor = (choice: "auto" | "hardware" | "simulator") =>
  choice === "hardware" ? Ane.layer : choice === "simulator" ? Ane.layerSimulator() : Ane.layerAuto()

/** The `probe` subcommand. */
export const command = Command.make("probe", { backend, json }, ({ backend, json }) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const info = yield* ane.info
    const used = yield* ane.compileCount
    const client = yield* ane.clientInfo
    // Only what the client reported; u64 fields print as decimal strings.
    const reported = Object.fromEntries(Object.entries(client)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]))
    if (json) {
      yield* Console.log(JSON.stringify({ ok: true, ...info, compileLimit: ane.compileLimit, compileCount: used, client: reported }))
      return
    }
    const rows: Array<[string, string]> = [
      ["backend", info.backend],
      ["has ANE", String(info.hasAne)],
      ["architecture", info.architecture || "-"],
      ["product", info.product || "-"],
      ["build", info.buildVersion || "-"],
      ["cores", String(info.numCores)],
      ["ANEs", String(info.numAnes)],
      ["virtual machine", String(info.isVm)],
      ["compile budget", `${ane.compileLimit - used} of ${ane.compileLimit} left`],
      ...Object.entries(reported).map(([k, v]): [string, string] => [`client ${k}`, String(v)])
    ]
    yield* Console.log(rows.map(([k, v]) => `${k.padEnd(20)} ${v}`).join("\n"))
  }).pipe(
    Effect.provide(Layer.fresh(layerFor(backend))),
    reported("probe", json)
  )
).pipe(Command.withDescription("Report the ANE device (or the simulator) and the compile budget"))
