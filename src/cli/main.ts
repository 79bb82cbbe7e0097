/** The `ane` command line: probe, check, run, bench, inspect. */
import { Command } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, FiberRef, HashSet, Logger } from "effect"
import { command as bench } from "./bench.js"
import { command as check } from "./check.js"
import { command as inspect } from "./inspect.js"
import { command as probe } from "./probe.js"
import { command as run } from "./run.js"

const ane = Command.make("ane").pipe(
  Command.withDescription("Compile, check, inspect and run MIL programs on the Apple Neural Engine or its CPU simulator"),
  Command.withSubcommands([probe, check, run, bench, inspect])
)

const cli = Command.run(ane, { name: "ane", version: "0.1.0" })

// Logs go to stderr so that `--json` output on stdout stays one parseable object.
const toStderr = Effect.locally(FiberRef.currentLoggers, HashSet.make(Logger.prettyLogger({ stderr: true })))

cli(process.argv).pipe(Effect.provide(NodeContext.layer), toStderr, NodeRuntime.runMain({ disableErrorReporting: false }))
