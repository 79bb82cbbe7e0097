/**
 * Progress of long CLI work on a terminal: a bar for counted work, elapsed time for the rest. It writes to stderr
 * only when stderr is a TTY, and never with `--json`, so pipes and scripts see nothing of it.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"

/** Where progress goes: a TTY flag and a raw writer (a test swaps in its own). */
export class ProgressOutput extends Context.Reference<ProgressOutput>()("effect-ane/cli/ProgressOutput", {
  defaultValue: (): { readonly isTTY: boolean; readonly write: (text: string) => void } => ({
    isTTY: process.stderr.isTTY === true,
    write: (text) => {
      process.stderr.write(text)
    }
  })
}) {}

/** Redraws at most this often. */
const REDRAW_MS = 100
/** Elapsed time shows once work has taken this long. */
const QUIET_MS = 1000
const BAR = 24
const CLEAR = "\r\u001b[K"

/** A counter for `total` units of work: `tick(done)` redraws now and then; `clear` removes the line. */
export interface Counter {
  readonly tick: (done: number) => void
  readonly clear: () => void
}

const silent: Counter = { tick: () => undefined, clear: () => undefined }

/** A progress bar for counted work, or a no-op when progress is off (`enabled` false or stderr not a TTY). */
export const counter = (label: string, total: number, enabled: boolean): Effect.Effect<Counter> =>
  Effect.map(ProgressOutput, (out) => {
    if (!enabled || !out.isTTY || total <= 0) return silent
    let last = 0
    let drawn = false
    return {
      tick: (done) => {
        const now = performance.now()
        if (now - last < REDRAW_MS && done < total) return
        last = now
        drawn = true
        const filled = Math.round((BAR * Math.min(done, total)) / total)
        out.write(`${CLEAR}${label} [${"#".repeat(filled)}${" ".repeat(BAR - filled)}] ${done}/${total}`)
      },
      clear: () => {
        if (drawn) out.write(CLEAR)
        drawn = false
      }
    }
  })

/**
 * Runs `self` with `label` on the terminal's status line, and the elapsed seconds once it has taken over a second
 * (TTY only). The label is drawn at once: a simulator compile or eval runs synchronously, so only what is on the
 * line before it starts stays visible while it runs.
 */
export const whileRunning = (label: string, enabled: boolean) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(ProgressOutput, (out) => {
    if (!enabled || !out.isTTY) return self
    const t0 = performance.now()
    const draw = Effect.sync(() => out.write(`${CLEAR}${label} ${((performance.now() - t0) / 1000).toFixed(1)} s`))
    const ticker = Effect.sleep(Duration.millis(QUIET_MS)).pipe(
      Effect.zipRight(Effect.forever(Effect.zipRight(draw, Effect.sleep(Duration.millis(4 * REDRAW_MS)))))
    )
    return Effect.acquireUseRelease(
      // Forked in acquire, which is uninterruptible: the ticker must be made interruptible to be stopped.
      Effect.zipRight(Effect.sync(() => out.write(`${CLEAR}${label}…`)), Effect.forkDaemon(Effect.interruptible(ticker))),
      () => self,
      (fiber) => Effect.zipRight(Fiber.interrupt(fiber), Effect.sync(() => out.write(CLEAR)))
    )
  })
