/**
 * A matmul whose weights change without recompiling (spec/mil-format.md §5): activations and weights travel together
 * in one input surface per tile, sliced apart inside the program, so one compile serves every weight matrix of a
 * shape. Wide outputs are split into tiles of output columns; each tile is a request of its own.
 */
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { dynamicMatmul as generate } from "../mil/generators/dynamic-matmul.js"
import { CompileOptions } from "../schema/CompileOptions.js"
import { type ClosedError, CompileError, type CompileFailure, type EvalError, InvalidArgumentError } from "../schema/errors.js"
import { Ane } from "./Ane.js"
import type { TensorIO } from "./internal/io.js"
import * as RequestPool from "./RequestPool.js"

/** How to build a {@link DynamicMatmul}. */
export interface DynamicMatmulOptions {
  readonly batch: number
  readonly inDim: number
  readonly outDim: number
  /** Compile QoS (default 21). */
  readonly qos?: number
  /**
   * Output columns per compiled tile. Absent or 0: one full-width program, and when that does not compile, the
   * widths of {@link defaultTileCandidates} in turn until one set compiles.
   */
  readonly tileOut?: number
}

/** One tile: output columns `[outOffset, outOffset + width)`. */
export interface Tile {
  readonly outOffset: number
  readonly width: number
}

/** Timing of one call. */
export interface CallStats {
  /** Sum over tiles of the engine's execution time, or of the tile's wall-clock time where the engine gave none. */
  readonly executionNs: number
  /** How many tiles were timed by the wall clock because the engine reported no time for them. */
  readonly wallClockTiles: number
}

/** Failures of a call. */
export type DynamicMatmulError = EvalError | ClosedError | InvalidArgumentError

/**
 * The executor. Dense calls take x row-major `[batch, inDim]` and w row-major `[inDim, outDim]` (the "IO layout")
 * and give y row-major `[batch, outDim]`, y = x·w. The primed path keeps the weights in the surfaces: prime once,
 * patch rows, then evaluate channel-first activations or one-hot rows. Calls are serialised.
 */
export interface DynamicMatmul {
  readonly batch: number
  readonly inDim: number
  readonly outDim: number
  readonly tiles: ReadonlyArray<Tile>
  /** y = x·w into a new array. */
  readonly eval: (x: Float32Array, w: Float32Array) => Effect.Effect<Float32Array, DynamicMatmulError>
  /** y = x·w into `dst` (`batch·outDim`). Leaves w in the surfaces, as {@link DynamicMatmul.primeWeights} does. */
  readonly evalInto: (dst: Float32Array, x: Float32Array, w: Float32Array) => Effect.Effect<CallStats, DynamicMatmulError>
  /** Writes w (`[inDim, outDim]`) into every tile's surface. */
  readonly primeWeights: (w: Float32Array) => Effect.Effect<void, DynamicMatmulError>
  /** Copies rows `rows` of w into the surfaces, rewriting only those rows (input channels). */
  readonly updateWeightRows: (w: Float32Array, rows: ReadonlyArray<number>) => Effect.Effect<void, DynamicMatmulError>
  /** Evaluates channel-first activations `xCF` (`[inDim, batch]`) against the primed weights; outputs stay in the surfaces. */
  readonly evalChannelFirst: (xCF: Float32Array) => Effect.Effect<CallStats, DynamicMatmulError>
  /** Reads the last outputs channel-first into `dstCF` (`[outDim, batch]`). */
  readonly readOutputChannelFirst: (dstCF: Float32Array) => Effect.Effect<void, DynamicMatmulError>
  /** {@link DynamicMatmul.evalChannelFirst}, then {@link DynamicMatmul.readOutputChannelFirst}. */
  readonly evalChannelFirstInto: (dstCF: Float32Array, xCF: Float32Array) => Effect.Effect<CallStats, DynamicMatmulError>
  /**
   * One-hot activations: position t selects weight row `xs[t]` (an embedding lookup on the engine); positions from
   * `xs.length` on are zero. `dst` holds `batch·outDim` (every row) or `xs.length·outDim` values (when both are equal,
   * every row). Only the rows touched by this call and the previous one are rewritten.
   */
  readonly evalOneHotInto: (dst: Float32Array, xs: ReadonlyArray<number>) => Effect.Effect<CallStats, DynamicMatmulError>
  /**
   * Copies the last outputs into input `dstInput` of `target` (a model or pooled request whose input is
   * `[C, 1, batch]`), channel `dstChannel + outOffset` for each tile.
   */
  readonly copyOutputToInput: (target: TensorIO, dstInput: number, dstChannel: number) => Effect.Effect<void, DynamicMatmulError>
}

/**
 * Narrower widths tried after a full-width compile fails: `min(outDim, 512)` if below outDim, then 384, 256, 128 and
 * 64 below outDim, without repeats; `[outDim − 1]` when that leaves nothing and outDim > 1.
 */
export const defaultTileCandidates = (outDim: number): Array<number> => {
  const out: Array<number> = []
  for (const w of [Math.min(outDim, 512), 384, 256, 128, 64]) if (w < outDim && !out.includes(w)) out.push(w)
  if (out.length === 0 && outDim > 1) out.push(outDim - 1)
  return out
}

/** Tiles of `width` columns covering `outDim` (the last one takes the remainder). */
export const tilesOf = (outDim: number, width: number): Array<Tile> => {
  const tiles: Array<Tile> = []
  for (let o = 0; o < outDim; o += width) tiles.push({ outOffset: o, width: Math.min(width, outDim - o) })
  return tiles
}

const invalid = (op: string, argument: string, expected: string, actual: string) =>
  new InvalidArgumentError({ op, argument, expected, actual })

const lengthCheck = (op: string, argument: string, a: Float32Array, want: number, what: string) =>
  a instanceof Float32Array && a.length === want
    ? undefined
    : invalid(op, argument, `a Float32Array of ${want} values (${what})`,
      a instanceof Float32Array ? `${a.length} values` : typeof a)

/** One tile at run time: its request, its packed input (channel-first, activations then weights) and output. */
interface TileState extends Tile {
  readonly io: RequestPool.PooledRequest
  readonly packed: Float32Array
  readonly out: Float32Array
}

/** Compiles every tile of one layout, each distinct width once, in `scope`; the tiles' requests live there too. */
const compileTiles = (
  ane: Ane["Type"],
  o: { readonly batch: number; readonly inDim: number; readonly qos: number | undefined },
  tiles: ReadonlyArray<Tile>,
  scope: Scope.Scope
) =>
  Effect.gen(function*() {
    const byWidth = new Map<number, Array<Tile>>()
    for (const t of tiles) byWidth.set(t.width, [...(byWidth.get(t.width) ?? []), t])
    const states: Array<TileState> = []
    for (const [width, group] of byWidth) {
      // The generator throws InvalidArgumentError for sizes beyond its limits; anything else is a defect.
      const g = yield* Effect.suspend(() => {
        try {
          return Effect.succeed(generate({ batch: o.batch, inDim: o.inDim, outDim: width }))
        } catch (e) {
          return e instanceof InvalidArgumentError ? Effect.fail(e) : Effect.die(e)
        }
      })
      const options = CompileOptions.mil({ text: g.text, weights: g.weights, ...(o.qos === undefined ? {} : { qos: o.qos }) })
      const model = yield* ane.compile(options)
      const pool = yield* RequestPool.make(model, group.length)
      for (const t of group) {
        const io = yield* pool.acquire
        states.push({
          ...t,
          io,
          packed: new Float32Array(o.inDim * (o.batch + width)),
          out: new Float32Array(width * o.batch)
        })
      }
    }
    return states.sort((a, b) => a.outOffset - b.outOffset)
  }).pipe(Effect.provideService(Scope.Scope, scope))

/**
 * Compiles the executor. Everything it compiles and maps is released when the caller's scope closes; an attempt that
 * fails releases its own part at once.
 */
export const make = (
  options: DynamicMatmulOptions
): Effect.Effect<DynamicMatmul, CompileFailure | InvalidArgumentError | RequestPoolFailure, Ane | Scope.Scope> =>
  Effect.gen(function*() {
    const op = "DynamicMatmul.make"
    for (const name of ["batch", "inDim", "outDim"] as const) {
      const v = options[name]
      if (!Number.isInteger(v) || v < 1) return yield* invalid(op, name, "a positive integer", String(v))
    }
    const tileOut = options.tileOut ?? 0
    if (!Number.isInteger(tileOut) || tileOut < 0) {
      return yield* invalid(op, "tileOut", "a non-negative integer (0: full width, with fallback)", String(tileOut))
    }
    const { batch, inDim, outDim } = options
    const ane = yield* Ane
    const parent = yield* Effect.scope
    const attempt = (tiles: ReadonlyArray<Tile>) =>
      Effect.gen(function*() {
        const child = yield* Scope.fork(parent, ExecutionStrategy.sequential)
        return yield* compileTiles(ane, { batch, inDim, qos: options.qos }, tiles, child).pipe(
          Effect.onError((cause) => Scope.close(child, Exit.failCause(cause)))
        )
      })
    let states: Array<TileState>
    if (tileOut > 0) {
      states = yield* attempt(tilesOf(outDim, Math.min(tileOut, outDim)))
    } else {
      const full = yield* Effect.either(attempt(tilesOf(outDim, outDim)))
      if (full._tag === "Right") states = full.right
      else {
        if (full.left._tag === "InvalidArgumentError" || full.left._tag === "CompileBudgetExhaustedError") {
          return yield* Effect.fail(full.left)
        }
        let found: Array<TileState> | undefined
        let last: unknown = undefined
        const tried = defaultTileCandidates(outDim)
        for (const width of tried) {
          const r = yield* Effect.either(attempt(tilesOf(outDim, width)))
          if (r._tag === "Right") {
            found = r.right
            break
          }
          last = r.left
        }
        if (found === undefined) {
          const first = full.left
          const fallback = tried.length === 0
            ? "no narrower width to try"
            : `tile widths ${tried.join(", ")} failed too` + (last instanceof Error ? ` (last: ${last.message})` : "")
          return yield* first._tag === "CompileError"
            ? new CompileError({ ...first, hint: `${first.hint ? `${first.hint}; ` : ""}full-width compile failed; ${fallback}` })
            : Effect.fail(first)
        }
        states = found
      }
    }
    return makeExecutor(batch, inDim, outDim, states)
  }).pipe(Effect.withSpan("DynamicMatmul.make"))

/** What mapping the tiles' requests can fail with. */
export type RequestPoolFailure = Effect.Effect.Error<ReturnType<typeof RequestPool.make>>

const makeExecutor = (batch: number, inDim: number, outDim: number, tiles: ReadonlyArray<TileState>): DynamicMatmul => {
  const lock = Effect.unsafeMakeSemaphore(1)
  let primed = false
  // One-hot bookkeeping: the activation row set at each position by the last one-hot call (-1: none), and whether
  // the activation columns hold dense data from another kind of call.
  const previous = new Int32Array(batch).fill(-1)
  let denseActivations = true

  const serial = <A>(name: string, body: () => Effect.Effect<A, DynamicMatmulError>) =>
    lock.withPermits(1)(Effect.suspend(body)).pipe(Effect.withSpan(`DynamicMatmul.${name}`))

  /** Evaluates every tile; the time of each is the engine's, or the wall clock's when the engine gave none. */
  const evalTiles = Effect.gen(function*() {
    let executionNs = 0
    let wallClockTiles = 0
    for (const t of tiles) {
      const t0 = process.hrtime.bigint()
      const stats = yield* t.io.evalWithStats
      if (stats.source !== "unavailable" && stats.hwExecutionNs > 0) executionNs += stats.hwExecutionNs
      else {
        executionNs += Number(process.hrtime.bigint() - t0)
        wallClockTiles++
      }
    }
    return { executionNs, wallClockTiles } satisfies CallStats
  })

  const setActivations = (t: TileState, x: Float32Array, channelFirst: boolean) => {
    const rowW = batch + t.width
    for (let d = 0; d < inDim; d++) {
      const row = d * rowW
      if (channelFirst) t.packed.set(x.subarray(d * batch, (d + 1) * batch), row)
      else for (let b = 0; b < batch; b++) t.packed[row + b] = x[b * inDim + d]!
    }
  }
  const setWeightRow = (t: TileState, w: Float32Array, d: number) => {
    const start = d * outDim + t.outOffset
    t.packed.set(w.subarray(start, start + t.width), d * (batch + t.width) + batch)
  }
  const writeAll = Effect.forEach(tiles, (t) => t.io.writeInputF32(0, t.packed), { discard: true })
  const writeRows = (rows: Iterable<number>) =>
    Effect.forEach(tiles, (t) => {
      const rowW = batch + t.width
      return Effect.forEach(rows, (d) => t.io.writeInputF32Channels(0, d, t.packed.subarray(d * rowW, (d + 1) * rowW)),
        { discard: true })
    }, { discard: true })
  const readInto = (dst: Float32Array, rows: number) =>
    Effect.forEach(tiles, (t) =>
      Effect.map(t.io.readOutputF32Into(0, t.out), () => {
        for (let j = 0; j < t.width; j++) {
          const src = j * batch
          for (let b = 0; b < rows; b++) dst[b * outDim + t.outOffset + j] = t.out[src + b]!
        }
      }), { discard: true })
  const needPrimed = (op: string) =>
    primed
      ? undefined
      : invalid(op, "weights", "primed weights (call primeWeights or evalInto first)", "no weights written yet")

  const evalInto = (dst: Float32Array, x: Float32Array, w: Float32Array) =>
    serial("evalInto", () => {
      const op = "DynamicMatmul.evalInto"
      const bad = lengthCheck(op, "dst", dst, batch * outDim, `batch ${batch} × outDim ${outDim}`) ??
        lengthCheck(op, "x", x, batch * inDim, `batch ${batch} × inDim ${inDim}, row-major`) ??
        lengthCheck(op, "w", w, inDim * outDim, `inDim ${inDim} × outDim ${outDim}, row-major`)
      if (bad) return Effect.fail(bad)
      for (const t of tiles) {
        setActivations(t, x, false)
        for (let d = 0; d < inDim; d++) setWeightRow(t, w, d)
      }
      primed = true
      denseActivations = true
      return Effect.zipLeft(Effect.zipRight(writeAll, evalTiles), readInto(dst, batch))
    })

  // Unlocked bodies: the public members take the lock once, so evalChannelFirstInto is one atomic step.
  const evalChannelFirstBody = (xCF: Float32Array) => {
    const op = "DynamicMatmul.evalChannelFirst"
    const bad = needPrimed(op) ?? lengthCheck(op, "xCF", xCF, inDim * batch, `inDim ${inDim} × batch ${batch}, channel-first`)
    if (bad) return Effect.fail(bad)
    for (const t of tiles) setActivations(t, xCF, true)
    denseActivations = true
    return Effect.zipRight(writeAll, evalTiles)
  }
  const readOutputChannelFirstBody = (op: string, dstCF: Float32Array) => {
    const bad = lengthCheck(op, "dstCF", dstCF, outDim * batch, `outDim ${outDim} × batch ${batch}, channel-first`)
    if (bad) return Effect.fail(bad)
    return Effect.forEach(tiles, (t) =>
      t.io.readOutputF32Into(0, dstCF.subarray(t.outOffset * batch, (t.outOffset + t.width) * batch)), { discard: true })
  }

  return {
    batch,
    inDim,
    outDim,
    tiles: tiles.map((t) => ({ outOffset: t.outOffset, width: t.width })),
    eval: (x, w) =>
      Effect.suspend(() => {
        const y = new Float32Array(batch * outDim)
        return Effect.as(evalInto(y, x, w), y)
      }),
    evalInto,
    primeWeights: (w) =>
      serial("primeWeights", () => {
        const bad = lengthCheck("DynamicMatmul.primeWeights", "w", w, inDim * outDim, `inDim ${inDim} × outDim ${outDim}, row-major`)
        if (bad) return Effect.fail(bad)
        for (const t of tiles) for (let d = 0; d < inDim; d++) setWeightRow(t, w, d)
        return Effect.tap(writeAll, () => {
          primed = true
        })
      }),
    updateWeightRows: (w, rows) =>
      serial("updateWeightRows", () => {
        const op = "DynamicMatmul.updateWeightRows"
        const bad = lengthCheck(op, "w", w, inDim * outDim, `inDim ${inDim} × outDim ${outDim}, row-major`)
        if (bad) return Effect.fail(bad)
        if (!Array.isArray(rows)) return Effect.fail(invalid(op, "rows", "an array of row indices", typeof rows))
        const unique = new Set<number>()
        for (let i = 0; i < rows.length; i++) {
          const r = rows[i]
          if (typeof r !== "number" || !Number.isInteger(r) || r < 0 || r >= inDim) {
            return Effect.fail(invalid(op, `rows[${i}]`, `an integer in [0, ${inDim})`, String(r)))
          }
          unique.add(r)
        }
        for (const t of tiles) for (const d of unique) setWeightRow(t, w, d)
        return writeRows([...unique].sort((a, b) => a - b))
      }),
    evalChannelFirst: (xCF) => serial("evalChannelFirst", () => evalChannelFirstBody(xCF)),
    readOutputChannelFirst: (dstCF) =>
      serial("readOutputChannelFirst", () => readOutputChannelFirstBody("DynamicMatmul.readOutputChannelFirst", dstCF)),
    evalChannelFirstInto: (dstCF, xCF) =>
      serial("evalChannelFirstInto", () => {
        const bad = lengthCheck("DynamicMatmul.evalChannelFirstInto", "dstCF", dstCF, outDim * batch,
          `outDim ${outDim} × batch ${batch}, channel-first`)
        return bad
          ? Effect.fail(bad)
          : Effect.zipLeft(evalChannelFirstBody(xCF), readOutputChannelFirstBody("DynamicMatmul.evalChannelFirstInto", dstCF))
      }),
    evalOneHotInto: (dst, xs) =>
      serial("evalOneHotInto", () => {
        const op = "DynamicMatmul.evalOneHotInto"
        const notPrimed = needPrimed(op)
        if (notPrimed) return Effect.fail(notPrimed)
        if (!Array.isArray(xs) || xs.length > batch) {
          return Effect.fail(invalid(op, "xs", `an array of at most ${batch} row indices`,
            Array.isArray(xs) ? `${xs.length} indices` : typeof xs))
        }
        for (let i = 0; i < xs.length; i++) {
          const r = xs[i]
          if (typeof r !== "number" || !Number.isInteger(r) || r < 0 || r >= inDim) {
            return Effect.fail(invalid(op, `xs[${i}]`, `an integer in [0, ${inDim})`, String(r)))
          }
        }
        const rows = dst instanceof Float32Array && dst.length === batch * outDim ? batch
          : dst instanceof Float32Array && dst.length === xs.length * outDim ? xs.length
          : -1
        if (rows < 0) {
          return Effect.fail(invalid(op, "dst", `a Float32Array of ${batch * outDim} or ${xs.length * outDim} values`,
            dst instanceof Float32Array ? `${dst.length} values` : typeof dst))
        }
        const touched = new Set<number>()
        for (const t of tiles) {
          const rowW = batch + t.width
          if (denseActivations) for (let d = 0; d < inDim; d++) t.packed.fill(0, d * rowW, d * rowW + batch)
          else for (let b = 0; b < batch; b++) if (previous[b]! >= 0) t.packed[previous[b]! * rowW + b] = 0
          for (let b = 0; b < xs.length; b++) t.packed[xs[b]! * rowW + b] = 1
        }
        for (let b = 0; b < batch; b++) {
          if (previous[b]! >= 0) touched.add(previous[b]!)
          previous[b] = b < xs.length ? xs[b]! : -1
          if (previous[b]! >= 0) touched.add(previous[b]!)
        }
        const write = denseActivations ? writeAll : writeRows([...touched].sort((a, b) => a - b))
        denseActivations = false
        return Effect.zipLeft(Effect.zipRight(write, evalTiles), readInto(dst, rows))
      }),
    copyOutputToInput: (target, dstInput, dstChannel) =>
      serial("copyOutputToInput", () => {
        const op = "DynamicMatmul.copyOutputToInput"
        if (!Number.isInteger(dstInput) || dstInput < 0 || dstInput >= target.inputCount) {
          return Effect.fail(invalid(op, "dstInput", `an input index in [0, ${target.inputCount})`, String(dstInput)))
        }
        const layout = target.inputs[dstInput]!
        if (layout.height !== 1 || layout.width !== batch) {
          return Effect.fail(invalid(op, "dstInput", `an input of height 1 and width ${batch} (the batch)`,
            `height ${layout.height}, width ${layout.width}`))
        }
        if (!Number.isInteger(dstChannel) || dstChannel < 0 || dstChannel + outDim > layout.channels) {
          return Effect.fail(invalid(op, "dstChannel", `an integer in [0, ${layout.channels - outDim}]`, String(dstChannel)))
        }
        return Effect.forEach(tiles, (t) =>
          Effect.flatMap(t.io.readOutputF32Into(0, t.out), () => target.writeInputF32Channels(dstInput, dstChannel + t.outOffset, t.out)),
        { discard: true })
      })
  }
}
