/**
 * The CPU simulator of the Apple Neural Engine behind the Backend port: compiles MIL (in-memory text or a
 * `.mlmodelc` package) into a planned interpreter, reports I/O layouts and binding order the way the engine does,
 * keeps fp16 storage between ops, counts compiles against a budget, models latency, and can inject native faults.
 */
import { createHash } from "node:crypto"
import { existsSync, statSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { readRegularFileSync } from "../backend/files.js"
import { blobFilePaths, checkBlobFilePaths, outsideModel, resolveInside } from "../backend/weightPath.js"
import { Backend } from "../services/Backend.js"
import type {
  BackendModel, BackendRealTimeTask, BackendRequest, BackendSharedEvent, BackendSurface, SharedEventEval
} from "../services/Backend.js"
import { type CompileOptions, compileOptionsProblem } from "../schema/CompileOptions.js"
import { CompileStats } from "../schema/CompileStats.js"
import { DeviceInfo } from "../schema/DeviceInfo.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import {
  ClosedError,
  CompileBudgetExhaustedError,
  CompileError,
  type CompileFailure,
  EvalError,
  InvalidArgumentError,
  MapError,
  ModelLoadError,
  UnsupportedLayoutError
} from "../schema/errors.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import { ClientInfo, EvalStats, ModelDiagnostics } from "../schema/Telemetry.js"
import { frontEnd, hasErrors, type Rules } from "./frontend.js"
import { DEFAULT_MAX_TENSOR_BYTES, plan as planProgram, type Plan } from "./interpreter.js"
import {
  allocSurface, allocSurfaceBytes, bindingOrder, type Chip, layoutFor, packSurface, type SurfaceViews, unpackSurface
} from "./layout.js"
import { chipProfiles, EngineClock, executionNs, type LatencyOptions, withDeadline } from "./latency.js"
import { openSimMetal, type SimGpuOptions } from "./metal.js"
import { simPipelining } from "./pipelinedIO.js"
import { retainGemmWorkers } from "./kernels/gemm-workers.js"

/** A native failure to inject: the `nth` (1-based) call of `stage` fails with `code`/`domain`. */
export interface SimulatedFault {
  readonly stage: "compile" | "load" | "map" | "eval"
  readonly nth: number
  readonly code?: number
  readonly domain?: string
}

/** Options of the simulator backend. */
export interface SimulatorOptions {
  /** "ane" (default): fp16 storage between ops, engine cliffs. "exact": float32 throughout. */
  readonly numerics?: "ane" | "exact"
  /** ANE rule findings: "error" (default) fails the compile, "warn" reports them, "off" ignores them. */
  readonly rules?: Rules
  /** Chip to model (limits, latency, probe answers); default "m4". */
  readonly chip?: Chip
  /** Successful compiles allowed per backend instance (the daemon's ~119 per client). */
  readonly compileBudget?: number
  /**
   * Latency model of evalAsync and shared-event evals (sync `eval` never waits): "off", or overrides of the chip's
   * model (dispatch floor + FLOPs / throughput); default: the chip's model.
   */
  readonly latency?: LatencyOptions | "off"
  /** Native failures to inject. */
  readonly faults?: ReadonlyArray<SimulatedFault>
  /** The simulated GPU behind `Metal.open` (src/sim/metal.ts). */
  readonly gpu?: SimGpuOptions
  /**
   * Largest tensor or surface, in bytes, a compile may allocate (a positive integer; default 2 GiB). A program whose
   * tensor (4 bytes per element in the simulator) or I/O surface is larger fails to compile, typed, before anything
   * of that size is allocated; `createSurface` refuses larger surfaces.
   */
  readonly maxTensorBytes?: number
  /**
   * Threads a large matmul or convolution is split across, the calling one included (a positive integer; default:
   * the machine's available parallelism; 1: no worker threads). Workers start on the first product large enough
   * and stop when this backend's scope closes. The setting is process-wide: the latest backend's value holds.
   */
  readonly threads?: number
}

/** The default per-client compile budget (ane-field-facts.md §4.5, ane-constraints.md §2). */
export const DEFAULT_COMPILE_BUDGET = 119
/** Error domain the simulator reports for injected native failures unless told otherwise. */
export const SIM_ERROR_DOMAIN = "com.apple.appleneuralengine"
/** Default native codes of injected failures per stage (0x1d is the engine's common eval failure status). */
export const DEFAULT_FAULT_CODES: Readonly<Record<SimulatedFault["stage"], number>> = {
  compile: 11,
  load: 5,
  map: 13,
  eval: 0x1d
}

/** A model compiled by the simulator: the port's model plus the findings `rules: "warn"` let through. */
export interface SimModel extends BackendModel {
  readonly diagnostics: ReadonlyArray<Diagnostic>
  /** Number of ops planned and steps run per evaluation. */
  readonly opCount: number
  readonly stepCount: number
  /** Estimated FLOPs of one evaluation. */
  readonly flops: number
}

let nextPort = 1

class SimEvent implements BackendSharedEvent {
  readonly port = nextPort++
  value = 0n
  closed = false
  private waiters: Array<{ readonly target: bigint; readonly done: (ok: boolean) => void }> = []
  private closedError = (op: string) => new ClosedError({ op, resource: `shared event ${this.port}` })

  readonly signaledValue = Effect.suspend(() =>
    this.closed ? Effect.fail(this.closedError("SharedEvent.signaledValue")) : Effect.succeed(this.value)
  )
  readonly signal = (value: bigint) =>
    Effect.suspend(() => {
      if (this.closed) return Effect.fail(this.closedError("SharedEvent.signal"))
      this.set(value)
      return Effect.void
    })
  readonly wait = (value: bigint, timeoutMs: number) =>
    Effect.suspend(() => {
      if (this.closed) return Effect.fail(this.closedError("SharedEvent.wait"))
      if (this.value >= value) return Effect.succeed(true)
      return Effect.async<boolean>((resume) => {
        let timer: ReturnType<typeof setTimeout> | undefined
        const entry = {
          target: value,
          done: (ok: boolean) => {
            if (timer !== undefined) clearTimeout(timer)
            resume(Effect.succeed(ok))
          }
        }
        this.waiters.push(entry)
        if (Number.isFinite(timeoutMs)) {
          timer = setTimeout(() => {
            this.remove(entry)
            resume(Effect.succeed(false))
          }, Math.max(0, timeoutMs))
        }
        return Effect.sync(() => {
          if (timer !== undefined) clearTimeout(timer)
          this.remove(entry)
        })
      })
    })

  set(value: bigint): void {
    this.value = value
    const ready = this.waiters.filter((w) => w.target <= value)
    this.waiters = this.waiters.filter((w) => w.target > value)
    for (const w of ready) w.done(true)
  }
  private remove(entry: { readonly target: bigint }): void {
    this.waiters = this.waiters.filter((w) => w !== entry)
  }
  close(): void {
    this.closed = true
    const pending = this.waiters
    this.waiters = []
    for (const w of pending) w.done(false)
  }
}

const hashId = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 12)

/** Largest weight file or program the simulator reads in one piece (a JS typed array's practical limit). */
const MAX_FILE_BYTES = 2 ** 31 - 1

/** The bytes of a regular file, or undefined (missing, a FIFO or device, unreadable, too large to hold). */
const readRegularFile = (path: string): Uint8Array | undefined => {
  const r = readRegularFileSync(path, MAX_FILE_BYTES)
  return typeof r === "string" ? undefined : r
}

/** Builds one simulator backend instance (its compile budget, handle count and fault counters are its own). */
export const make = (options: SimulatorOptions = {}): Effect.Effect<Backend["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const numerics = options.numerics ?? "ane"
    const rules: Rules = options.rules ?? "error"
    const chip: Chip = options.chip ?? "m4"
    const compileLimit = options.compileBudget ?? DEFAULT_COMPILE_BUDGET
    const latency = options.latency
    const clock = latency === "off" ? undefined : EngineClock.make(chip, latency ?? {})
    const faults = options.faults ?? []
    const maxTensorBytes = Number.isSafeInteger(options.maxTensorBytes) && options.maxTensorBytes! > 0
      ? options.maxTensorBytes!
      : DEFAULT_MAX_TENSOR_BYTES
    // The GEMM worker pool is shared by every backend in the process; the last one to close stops it.
    yield* Effect.acquireRelease(
      Effect.sync(() => retainGemmWorkers(Number.isInteger(options.threads) && options.threads! >= 1 ? options.threads : undefined)),
      (release) => Effect.sync(release)
    )
    const calls = { compile: 0, load: 0, map: 0, eval: 0 }
    let live = 0
    let compiled = 0

    const fault = (stage: SimulatedFault["stage"]): { code: number; domain: string } | undefined => {
      const n = ++calls[stage]
      const f = faults.find((x) => x.stage === stage && x.nth === n)
      return f === undefined ? undefined : { code: f.code ?? DEFAULT_FAULT_CODES[stage], domain: f.domain ?? SIM_ERROR_DOMAIN }
    }

    const handle = <A>(acquire: Effect.Effect<A>, release: (a: A) => void, count = 1) =>
      Effect.acquireRelease(
        Effect.map(acquire, (a) => {
          live += count
          return a
        }),
        (a) => Effect.sync(() => {
          live -= count
          release(a)
        })
      )

    // Models this backend compiled: a real-time task evaluates only those. Surfaces it created: only those back
    // requests mapped over caller surfaces.
    const ours = new WeakSet<BackendModel>()
    const madeHere = new WeakSet<BackendSurface>()
    let nextTask = 1

    const info = DeviceInfo.make({
      hasAne: true,
      numCores: 16,
      architecture: chipProfiles[chip].architecture,
      product: chipProfiles[chip].product,
      buildVersion: "",
      isVm: false,
      numAnes: 1,
      subType: "",
      boardType: 0,
      internalBuild: false,
      backend: "simulator"
    })

    /**
     * Source text and weight lookup of a compile request. A package's program and weights are read only from inside
     * the package, after realpath, and only when they are regular files (docs/security.md).
     */
    const source = (o: CompileOptions): { text: string; file?: string; weight: (p: string) => Uint8Array | undefined } | CompileError => {
      if (o._tag === "mil") {
        const outside = checkBlobFilePaths(o.text)
        if (outside !== undefined) return outsideModel(outside.diagnostics, { op: "compile", model: `mil:${hashId(o.text)}` })
        const byPath = new Map(o.weights.map((w) => [w.path, w.bytes]))
        return { text: o.text, weight: (p) => byPath.get(p) }
      }
      const milPath = join(o.path, "model.mil")
      const site = { op: "compile", model: o.path, file: milPath }
      const realMil = existsSync(o.path) && statSync(o.path).isDirectory() ? resolveInside(o.path, "model.mil", site) : undefined
      if (realMil instanceof CompileError) return realMil
      const milBytes = realMil === undefined ? undefined : readRegularFile(realMil)
      if (milBytes === undefined) {
        return new CompileError({
          op: "compile", model: o.path,
          hint: "a .mlmodelc package is a directory holding model.mil (and weights/ when it has BLOBFILE weights)",
          diagnostics: [new Diagnostic({
            kind: "syntax", severity: "error", code: "SIM-PACKAGE", line: 1, col: 1, file: milPath,
            message: `no model.mil in package ${o.path}`
          })]
        })
      }
      const text = Buffer.from(milBytes.buffer, milBytes.byteOffset, milBytes.byteLength).toString("utf8")
      const outside = checkBlobFilePaths(text, site)
      if (outside !== undefined) return outside
      const weights = new Map<string, Uint8Array | undefined>()
      const refused: Array<Diagnostic> = []
      for (const b of blobFilePaths(text)) {
        if (weights.has(b.path)) continue
        const full = resolveInside(o.path, b.path, { ...site, line: b.line, col: b.col })
        if (full instanceof CompileError) refused.push(...full.diagnostics)
        else weights.set(b.path, readRegularFile(full))
      }
      if (refused.length > 0) return outsideModel(refused, site)
      return { text, file: milPath, weight: (p) => weights.get(p) }
    }

    interface Request {
      readonly inputs: ReadonlyArray<SurfaceViews>
      readonly outputs: ReadonlyArray<SurfaceViews>
    }

    const compileInto = (o: CompileOptions, scope: Scope.Scope): Effect.Effect<SimModel, CompileFailure> =>
      Effect.gen(function*() {
        const t0 = process.hrtime.bigint()
        const problem = compileOptionsProblem(o, "Backend.compile")
        if (problem !== undefined) return yield* Effect.fail(problem)
        if (compiled >= compileLimit) {
          return yield* Effect.fail(new CompileBudgetExhaustedError({ op: "compile", used: compiled, limit: compileLimit }))
        }
        const src = source(o)
        if (src instanceof CompileError) return yield* Effect.fail(src)
        const id = o._tag === "mil" ? `mil:${hashId(src.text)}` : o.path
        const compileFault = fault("compile")
        if (compileFault !== undefined) {
          return yield* Effect.fail(new CompileError({
            op: "compile", model: id, ...compileFault, hint: "injected compile failure", diagnostics: []
          }))
        }
        const fe = frontEnd(src.text, { ...(src.file !== undefined ? { file: src.file } : {}), chip, rules })
        if (fe.program === null || hasErrors(fe.diagnostics)) {
          return yield* Effect.fail(new CompileError({ op: "compile", model: id, diagnostics: fe.diagnostics }))
        }
        const planned = planProgram(fe.program, {
          numerics, maxTensorBytes, weight: src.weight, ...(src.file !== undefined ? { file: src.file } : {})
        })
        if (!("run" in planned)) {
          return yield* Effect.fail(new CompileError({ op: "compile", model: id, diagnostics: [...fe.diagnostics, ...planned] }))
        }
        const p: Plan = planned
        // A compile that fails from here gives the plan's kernel memory back at once.
        const discard = <E>(e: E) => Effect.suspend(() => {
          p.dispose()
          return Effect.fail(e)
        })
        const t1 = process.hrtime.bigint()

        // Layouts, in the engine's binding order.
        const inOrder = bindingOrder(p.inputs.map((v) => v.name))
        const outNames = p.outputs.map((v, i) => fe.program!.functions.find((f) => f.name === p.functionName)!.body.outputs[i] ?? v.name)
        const outOrder = bindingOrder(outNames)
        const inputs: Array<TensorLayout> = []
        const outputs: Array<TensorLayout> = []
        for (const i of inOrder) {
          const v = p.inputs[i]!
          const l = layoutFor(v.name, v.shape, v.dtype, chip, "input", maxTensorBytes)
          if (l instanceof UnsupportedLayoutError) return yield* discard(l)
          inputs.push(l)
        }
        for (const i of outOrder) {
          const v = p.outputs[i]!
          const l = layoutFor(outNames[i]!, v.shape, v.dtype, chip, "output", maxTensorBytes)
          if (l instanceof UnsupportedLayoutError) return yield* discard(l)
          outputs.push(l)
        }
        const diagnostics = fe.diagnostics

        const loadFault = fault("load")
        if (loadFault !== undefined) {
          return yield* discard(new ModelLoadError({ op: "load", model: id, ...loadFault, hint: "injected load failure" }))
        }
        const t2 = process.hrtime.bigint()

        const inVals = inOrder.map((i) => p.inputs[i]!)
        const outVals = outOrder.map((i) => p.outputs[i]!)
        const state = { closed: false }
        yield* Scope.extend(handle(Effect.void, () => {
          state.closed = true
          p.dispose()
        }), scope)

        const closedError = (op: string) => new ClosedError({ op, resource: `model ${id}` })
        const run = (req: Request): EvalError | undefined => {
          try {
            for (let i = 0; i < inVals.length; i++) unpackSurface(inputs[i]!, req.inputs[i]!, inVals[i]!.data)
            p.run()
            for (let i = 0; i < outVals.length; i++) packSurface(outputs[i]!, outVals[i]!.data, req.outputs[i]!)
            return undefined
          } catch (e) {
            const step = p.lastStep()
            const where = step !== undefined ? `${step.op} at line ${step.line}: ` : ""
            return new EvalError({ op: "eval", model: id, hint: where + (e instanceof Error ? e.message : String(e)), cause: e })
          }
        }
        const evalNow = (req: Request, op: string): Effect.Effect<void, EvalError | ClosedError> =>
          Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
            if (state.closed) return Effect.fail(closedError(op))
            const f = fault("eval")
            if (f !== undefined) return Effect.fail(new EvalError({ op: "eval", model: id, ...f, hint: "injected eval failure" }))
            const err = run(req)
            return err === undefined ? Effect.void : Effect.fail(err)
          })
        let inFlight = 0
        const leave = Effect.sync(() => {
          inFlight--
        })
        const withLatency = (req: Request, op: string): Effect.Effect<void, EvalError | ClosedError> => {
          const inner = clock === undefined ? evalNow(req, op) : withDeadline(evalNow(req, op), clock, p.flops)
          return Effect.suspend(() => {
            inFlight++
            return Effect.ensuring(inner, leave)
          })
        }
        // One immutable stats value per model: the modelled time never changes, so evalWithStats allocates nothing.
        const modelledStats = EvalStats.make({
          ...EvalStats.unavailable,
          source: "modelled",
          hwExecutionNs: executionNs(chip, latency === "off" ? {} : latency ?? {}, p.flops)
        })

        const makeRequest = (
          req: Request = { inputs: inputs.map(allocSurface), outputs: outputs.map(allocSurface) }
        ): BackendRequest & { readonly surfaces: Request } => {
          return {
            surfaces: req,
            inputs: req.inputs.map((s) => s.bytes),
            outputs: req.outputs.map((s) => s.bytes),
            eval: evalNow(req, "Request.eval"),
            evalAsync: withLatency(req, "Request.evalAsync"),
            evalWithStats: Effect.as(evalNow(req, "Request.evalWithStats"), modelledStats),
            evalWithSharedEvents: (spec: SharedEventEval) =>
              Effect.gen(function*() {
                if (state.closed) return yield* Effect.fail(closedError("Request.evalWithSharedEvents"))
                if (spec.wait !== undefined) {
                  const reached = yield* spec.wait.event.wait(spec.wait.value, Infinity).pipe(
                    Effect.catchTag("ClosedError", () => Effect.succeed(false))
                  )
                  if (!reached) {
                    return yield* Effect.fail(new EvalError({
                      op: "evalWithSharedEvents", model: id, hint: `wait event ${spec.wait.event.port} closed before reaching ${spec.wait.value}`
                    }))
                  }
                }
                yield* withLatency(req, "Request.evalWithSharedEvents")
                if (spec.signal !== undefined) {
                  yield* spec.signal.event.signal(spec.signal.value).pipe(
                    Effect.mapError(() => new EvalError({
                      op: "evalWithSharedEvents", model: id, hint: `signal event ${spec.signal!.event.port} is closed`
                    }))
                  )
                }
              })
          }
        }
        const surfacesPerRequest = 1 + inputs.length + outputs.length
        const mapOne = (): Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope> =>
          Effect.suspend((): Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope> => {
            if (state.closed) return Effect.fail(closedError("Model.mapRequest"))
            const f = fault("map")
            if (f !== undefined) return Effect.fail(new MapError({ op: "map", model: id, ...f, hint: "injected map failure" }))
            return handle(Effect.sync(() => makeRequest()), () => undefined, surfacesPerRequest)
          })
        /** The caller's surfaces as a request's views; only surfaces this simulator made, each large enough. */
        const mapOver = (given: {
          readonly inputs: ReadonlyArray<BackendSurface>
          readonly outputs: ReadonlyArray<BackendSurface>
        }): Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope> =>
          Effect.suspend((): Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope> => {
            if (state.closed) return Effect.fail(closedError("Model.mapRequestOver"))
            const refuse = (hint: string) => Effect.fail(new MapError({ op: "map", model: id, hint }))
            const views: Array<Array<SurfaceViews>> = []
            for (const [side, layouts, list] of [["input", inputs, given.inputs], ["output", outputs, given.outputs]] as const) {
              if (list.length !== layouts.length) return refuse(`${layouts.length} ${side} surfaces expected, ${list.length} given`)
              const side_: Array<SurfaceViews> = []
              for (let i = 0; i < list.length; i++) {
                const bytes = list[i]!.bytes
                if (!madeHere.has(list[i]!)) return refuse(`${side} ${i}: surface ${list[i]!.id} was not created by this simulator`)
                const need = layouts[i]!.allocSize
                if (bytes.length < need) return refuse(`${side} ${i}: surface of ${bytes.length} bytes, the layout needs ${need}`)
                const b = bytes.subarray(0, need)
                side_.push({
                  bytes: b,
                  u16: new Uint16Array(b.buffer, b.byteOffset, need >>> 1),
                  f32: new Float32Array(b.buffer, b.byteOffset, need >>> 2)
                })
              }
              views.push(side_)
            }
            const f = fault("map")
            if (f !== undefined) return Effect.fail(new MapError({ op: "map", model: id, ...f, hint: "injected map failure" }))
            return handle(Effect.sync(() => makeRequest({ inputs: views[0]!, outputs: views[1]! })), () => undefined)
          })
        // Only a scope closed before the compile finished gets here: the model was released at once.
        const request = yield* Scope.extend(mapOne(), scope).pipe(
          Effect.catchTag("ClosedError", () => Effect.fail(new MapError({
            op: "map", model: id, hint: "the scope the model was compiled into is already closed"
          })))
        )
        const t3 = process.hrtime.bigint()
        compiled++
        const model: SimModel = {
          id,
          kind: o._tag,
          inputs,
          outputs,
          stats: CompileStats.make({ compileNs: Number(t1 - t0), loadNs: Number(t2 - t1), totalNs: Number(t3 - t0) }),
          capabilities: { sharedEvents: "all", asyncEval: false },
          request,
          mapRequest: mapOne(),
          mapRequestOver: mapOver,
          ...simPipelining(id, state, inputs.length, outputs.length),
          probeDiagnostics: Effect.suspend(() =>
            state.closed
              ? Effect.fail(closedError("Model.probeDiagnostics"))
              : Effect.succeed(ModelDiagnostics.make({ programClass: "SimulatorModel", asyncRequestsInFlight: inFlight }))
          ),
          diagnostics,
          opCount: p.opCount,
          stepCount: p.stepCount,
          flops: p.flops
        }
        ours.add(model)
        return model
      })

    const backend: Backend["Type"] = {
      kind: "simulator",
      openMetal: openSimMetal(options.gpu ?? {}, { add: (n) => { live += n } }),
      probe: Effect.succeed(info),
      compile: (o) =>
        Effect.gen(function*() {
          const parent = yield* Effect.scope
          const child = yield* Scope.fork(parent, ExecutionStrategy.sequential)
          return yield* compileInto(o, child).pipe(
            Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(child, exit) : Effect.void))
          )
        }),
      compileCount: Effect.sync(() => compiled),
      compileLimit,
      createSurface: (bytes) =>
        Number.isInteger(bytes) && bytes > 0 && bytes <= maxTensorBytes
          ? handle(Effect.sync(() => {
            const surface: BackendSurface = { id: nextPort++, bytes: allocSurfaceBytes(bytes) }
            madeHere.add(surface)
            return surface
          }), () => undefined)
          : Effect.fail(new InvalidArgumentError({
            op: "Backend.createSurface", argument: "bytes",
            expected: `a positive integer up to ${maxTensorBytes} (SimulatorOptions.maxTensorBytes)`, actual: String(bytes)
          })),
      createSharedEvent: handle(Effect.sync(() => new SimEvent()), (e) => e.close()),
      beginRealTimeTask: handle(
        Effect.sync((): BackendRealTimeTask & { active: boolean } => {
          const id = nextTask++
          const task = {
            active: true,
            eval: (model: BackendModel) =>
              Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
                if (!task.active) return Effect.fail(new ClosedError({ op: "RealTimeTask.eval", resource: `real-time task ${id}` }))
                if (!ours.has(model)) {
                  return Effect.fail(new EvalError({
                    op: "RealTimeTask.eval", model: model.id, hint: "the model was not compiled by this simulator"
                  }))
                }
                return model.request.eval
              })
          }
          return task
        }),
        (task) => {
          task.active = false
        }
      ),
      clientInfo: Effect.succeed(ClientInfo.make({
        numAnes: info.numAnes,
        numCores: info.numCores,
        architecture: info.architecture,
        boardType: info.boardType
      })),
      liveHandles: Effect.sync(() => live)
    }
    return backend
  })

/** The simulator as a Backend layer. */
export const layer = (options?: SimulatorOptions): Layer.Layer<Backend> => Layer.scoped(Backend, make(options))
