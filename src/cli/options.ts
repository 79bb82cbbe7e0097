/** Options several `ane` commands share, so their names, choices, defaults and help read the same everywhere. */
import { Options } from "./args.js"

/** `--backend auto|hardware|simulator`, default auto. */
export const backend = Options.choice("backend", ["auto", "hardware", "simulator"] as const).pipe(
  Options.withDefault("auto" as const),
  Options.withDescription("auto: the engine when present, else the simulator (default: auto)")
)

/** `--numerics ane|exact`, the simulator's arithmetic, default ane. */
export const numerics = Options.choice("numerics", ["ane", "exact"] as const).pipe(
  Options.withDefault("ane" as const),
  Options.withDescription("simulator: fp16 between ops like the engine, or float32 throughout (default: ane)")
)

/** `--rules error|warn|off`, what ANE rule findings do, default error. */
export const rules = Options.choice("rules", ["error", "warn", "off"] as const).pipe(
  Options.withDefault("error" as const),
  Options.withDescription("ANE rule findings refuse the program, are printed, or are ignored (default: error)")
)

/** `--json`: one JSON object on stdout, on failure too. */
export const json = Options.boolean("json").pipe(
  Options.withDescription("print one JSON object, on failure too (default: off)")
)
