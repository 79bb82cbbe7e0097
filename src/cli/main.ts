/** The `ane` executable: runs the command on process.argv and exits with its status. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import { runCli } from "./app.js"
import { ExitCode } from "./failure.js"

// Logs go to stderr so that `--json` output on stdout stays one parseable object.
const toStderr = Effect.locally(FiberRef.currentLoggers, HashSet.make(Logger.prettyLogger({ stderr: true })))

// A reader that stops early (`ane … | head`) closes the pipe: end quietly, as a SIGPIPE would, not with a stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? ExitCode.ok : ExitCode.internal))
}

runCli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  toStderr,
  NodeRuntime.runMain({
    disableErrorReporting: true,
    // runCli never fails: a failed exit here means a signal interrupted it.
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? Number(exit.value) : ExitCode.interrupted)
  })
)
