/** The `ane` executable: runs the command on process.argv and exits with its status. */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
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

const fiber = Effect.runFork(runCli(process.argv).pipe(toStderr))
// The fiber may wait on nothing Node can see (a sleep, a worker's answer): keep the process up until it ends.
const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
// SIGINT or SIGTERM interrupts the command, which releases what it holds and ends with the interrupted status.
const stop = () => void Effect.runFork(Fiber.interrupt(fiber))
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
fiber.addObserver((exit) => {
  clearInterval(keepAlive)
  // runCli never fails: a failed exit here means a signal interrupted it.
  process.exit(Exit.isSuccess(exit) ? exit.value : ExitCode.interrupted)
})
