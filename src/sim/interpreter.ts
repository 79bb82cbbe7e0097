/**
 * The simulator's planner and interpreter. A MIL function is planned once: every value gets its buffer, constants
 * and constexpr chains are folded, and each remaining op becomes a closure over preallocated buffers, so an
 * evaluation is a straight run of closures that allocates nothing. A run-time value's buffer is handed to a later
 * value once nothing reads it any more, and no buffer exceeds `maxTensorBytes`.
 */
import type { Binding, Literal, MilFunction, NamedValue, Program, TypeExpr, Value } from "../mil/ast.js"
import { decodeBlob, readBlobAt } from "../mil/blob.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { type KernelArena, kernelArena } from "./kernels/gemm.js"
import { fp16Rounder, roundArrayToFp16 } from "./numerics.js"
import { OpError, ops, statefulOps } from "./ops/index.js"
import type { OpCtx, OutType, Run, Val } from "./ops/index.js"
import { sizeOf } from "./ops/util.js"
import { applyMatmulCliff } from "./numerics.js"

/** Element count of a static shape; NaN when it is not an exact integer (refused by the size limit). */
const sizeOfChecked = (shape: ReadonlyArray<number>): number => {
  let n = 1
  for (const d of shape) n *= d
  return Number.isSafeInteger(n) ? n : NaN
}

/** A value of the planned program (mutable only inside the planner). */
interface PVal extends Val {
  isConst: boolean
}

/** One planned step: the op's work plus its fp16 output rounding. */
interface Step {
  readonly op: string
  readonly line: number
  readonly run: Run
}

/** A planned, runnable function. */
export interface Plan {
  readonly functionName: string
  /** Function inputs in declaration order (state inputs excluded). */
  readonly inputs: ReadonlyArray<Val>
  /** Function outputs in declaration order. */
  readonly outputs: ReadonlyArray<Val>
  /** Runs every step once (the caller fills `inputs[i].data` first and reads `outputs[i].data` after). */
  readonly run: () => void
  /** Estimated floating-point operations of one evaluation (for the latency model). */
  readonly flops: number
  /** Ops planned (const and folded ones included) and steps left to run per evaluation. */
  readonly opCount: number
  readonly stepCount: number
  /** Bytes of preallocated buffers (a buffer whose value is dead is reused, so this is what the plan holds). */
  readonly bufferBytes: number
  /** Distinct buffers allocated for values and scratch. */
  readonly bufferCount: number
  /** Resets state-typed inputs to zero. */
  readonly resetState: () => void
  /** The op (name and line) of the step that ran last: the one that threw, after a failed `run`. */
  readonly lastStep: () => { readonly op: string; readonly line: number } | undefined
  /**
   * Gives back the buffers held in the GEMM kernels' memory at once (they are otherwise given back when the plan
   * is collected); `run` fails after it.
   */
  readonly dispose: () => void
}

/** How the planner resolves BLOBFILE paths and rounds. */
export interface PlanOptions {
  readonly numerics: "ane" | "exact"
  /** The bytes of a weight file by its BLOBFILE path, or undefined when there is none. */
  readonly weight: (path: string) => Uint8Array | undefined
  readonly file?: string
  /** Function to plan; default `main`, else the first function. */
  readonly functionName?: string
  /** Largest buffer one tensor may take (float32 elements × 4); a larger one fails the plan before allocating. */
  readonly maxTensorBytes?: number
}

/** Default of {@link PlanOptions.maxTensorBytes}: 2 GiB. */
export const DEFAULT_MAX_TENSOR_BYTES = 2 ** 31

/** Every name a value refers to (tuples included). */
const refsOf = (v: Value, out: Array<string>): void => {
  if (v.kind === "ref") out.push(v.name)
  else if (v.kind === "tuple") for (const item of v.items) refsOf(item, out)
}

class PlanError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message)
  }
}

const ivalue = (l: Literal, out: Array<number>, strs: Array<string>): void => {
  switch (l.kind) {
    case "number": out.push(l.value); return
    case "bool": out.push(l.value ? 1 : 0); return
    case "string": strs.push(l.value); return
    case "list": l.items.forEach((i) => ivalue(i, out, strs)); return
    case "dict": return
  }
}

/** Static shape and dtype of a type expression, or a reason it has none. */
const staticType = (t: TypeExpr): OutType | string => {
  if (t.kind === "scalar") return { shape: [], dtype: t.dtype }
  if (t.kind === "state") return staticType(t.inner)
  if (t.kind !== "tensor") return `${t.kind} values are not supported by the simulator`
  if (t.shape === null) return "tensors of unknown rank are not supported (the engine runs static graphs only)"
  const dims: Array<number> = []
  for (const d of t.shape) {
    if (typeof d !== "number") {
      return `dimension ${typeof d === "string" ? d : d.symbol} is not fixed (the engine runs static graphs only)`
    }
    dims.push(d)
  }
  return { shape: dims, dtype: t.dtype }
}

/** Estimated FLOPs of an op from its shapes. */
const flopsOf = (op: string, ins: Map<string, Val>, outs: ReadonlyArray<Val>): number => {
  const o = outs[0] ? sizeOf(outs[0].shape) : 0
  switch (op) {
    case "conv": {
      const w = ins.get("weight")
      return w ? 2 * o * sizeOf(w.shape.slice(1)) : o
    }
    case "matmul": {
      const x = ins.get("x")
      return x ? 2 * o * x.shape[ins.get("transpose_x")?.data[0] ? x.shape.length - 2 : x.shape.length - 1]! : o
    }
    case "linear": {
      const w = ins.get("weight")
      return w ? 2 * o * w.shape[1]! : o
    }
    case "lstm": {
      const w = ins.get("weight_ih"), h = ins.get("weight_hh"), x = ins.get("x")
      return w && h && x ? 2 * x.shape[0]! * x.shape[1]! * (sizeOf(w.shape) + sizeOf(h.shape)) : o
    }
    default: return o
  }
}

/** Plans `program` (throws only PlanError internally; the result is a Plan or diagnostics). */
export const plan = (program: Program, options: PlanOptions): Plan | ReadonlyArray<Diagnostic> => {
  const arena = kernelArena()
  try {
    return planOrThrow(program, options, arena)
  } catch (e) {
    arena.dispose()
    if (e instanceof PlanError) return [e.diagnostic]
    throw e
  }
}

/**
 * Run-time buffers from this size up live in the GEMM kernels' memory, so a contraction reads and writes them in
 * place instead of copying them in and out; smaller ones are ordinary arrays.
 */
export const KERNEL_BUFFER_MIN_BYTES = 64 * 1024

const planOrThrow = (program: Program, options: PlanOptions, arena: KernelArena): Plan => {
  const file = options.file
  const exact = options.numerics === "exact"
  const fail = (code: string, message: string, pos: { line: number; col: number }, kind: "type" | "ane" = "type", hint?: string): never => {
    throw new PlanError(new Diagnostic({
      kind, severity: "error", code, message, line: pos.line, col: pos.col,
      ...(file !== undefined ? { file } : {}), ...(hint !== undefined ? { hint } : {})
    }))
  }
  const fn: MilFunction | undefined =
    program.functions.find((f) => f.name === (options.functionName ?? "main")) ??
    (options.functionName === undefined ? program.functions[0] : undefined)
  if (fn === undefined) {
    return fail("SIM-NO-FUNCTION", options.functionName ? `no function "${options.functionName}"` : "the program has no function", program.pos)
  }
  const env = new Map<string, PVal>()
  let bufferBytes = 0
  let bufferCount = 0
  const maxBytes = options.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES
  let where: { line: number; col: number } = fn.pos
  /**
   * A zeroed buffer of `n` float32s, refused (typed) above the limit before anything is allocated; a large run-time
   * one (`kernel`) in the kernel memory when there is room.
   */
  const buffer = (name: string, n: number, kernel = false): Float32Array => {
    if (!Number.isSafeInteger(n) || n < 0 || 4 * n > maxBytes) {
      const bytes = Number.isSafeInteger(n) && n >= 0 ? `${4 * n} bytes` : "more bytes than can be counted"
      fail("SIM-TENSOR-TOO-LARGE", `${name}: needs ${bytes}, above the simulator's limit of ${maxBytes} bytes per tensor`,
        where, "type", "raise SimulatorOptions.maxTensorBytes to simulate larger tensors")
    }
    bufferBytes += 4 * n
    bufferCount++
    return (kernel && 4 * n >= KERNEL_BUFFER_MIN_BYTES ? arena.array(n) : undefined) ?? new Float32Array(n)
  }
  const newVal = (name: string, t: OutType, isConst: boolean, str?: string): PVal => {
    const data = buffer(`${name}: ${t.dtype} [${t.shape.join(", ")}]`, sizeOfChecked(t.shape), !isConst)
    return { name, shape: t.shape, dtype: t.dtype, data, isConst, ...(str !== undefined ? { str } : {}) }
  }

  // Buffer reuse: a run-time value's buffer goes back to a pool after the last op that reads it, and a later output
  // of the same size takes it, so a long chain holds a few buffers, not one per intermediate.
  const lastUse = new Map<string, number>()
  const definitions = new Map<string, number>()
  fn.body.operations.forEach((op, i) => {
    const names: Array<string> = []
    for (const a of op.args) refsOf(a.value, names)
    for (const a of op.attributes) refsOf(a.value, names)
    for (const n of names) lastUse.set(n, i)
    for (const o of op.outputs) definitions.set(o.name, (definitions.get(o.name) ?? 0) + 1)
  })
  for (const b of fn.inputs) definitions.set(b.name, (definitions.get(b.name) ?? 0) + 1)
  for (const name of fn.body.outputs) lastUse.set(name, Infinity)
  /** Buffers written by run-time steps only: the ones that may be handed to a later value. */
  const recyclable = new Set<Float32Array>()
  /** Live values per buffer (aliases share one). */
  const holders = new Map<Float32Array, number>()
  const pool = new Map<number, Array<Float32Array>>()
  const hold = (data: Float32Array) => holders.set(data, (holders.get(data) ?? 0) + 1)
  const release = (data: Float32Array) => {
    const left = (holders.get(data) ?? 1) - 1
    if (left > 0) {
      holders.set(data, left)
      return
    }
    holders.delete(data)
    if (!recyclable.has(data)) return
    const free = pool.get(data.length)
    if (free === undefined) pool.set(data.length, [data])
    else free.push(data)
  }
  /** Values whose buffers may be released after op `i`: those it reads last, and its outputs nobody reads. */
  const dying = (i: number, outputs: ReadonlyArray<string>): Array<string> => {
    const out: Array<string> = []
    const op = fn.body.operations[i]!
    const names: Array<string> = []
    for (const a of op.args) refsOf(a.value, names)
    for (const a of op.attributes) refsOf(a.value, names)
    for (const n of new Set(names)) if (lastUse.get(n) === i) out.push(n)
    for (const n of outputs) if (!lastUse.has(n)) out.push(n)
    return out.filter((n) => definitions.get(n) === 1)
  }
  const typeOf = (b: Binding | { name: string; type: TypeExpr; pos: { line: number; col: number } }): OutType => {
    const t = staticType(b.type)
    return typeof t === "string" ? fail("SIM-DYNAMIC", `${b.name}: ${t}`, b.pos) : t
  }
  const inputs: Array<PVal> = []
  const states: Array<PVal> = []
  for (const b of fn.inputs) {
    where = b.pos
    const v = newVal(b.name, typeOf(b), false)
    env.set(b.name, v)
    if (b.type.kind === "state") states.push(v)
    else inputs.push(v)
  }
  const fp16Round = (v: PVal) => {
    if (!exact && v.dtype === "fp16") roundArrayToFp16(v.data)
  }

  // Every tensor is stored as float32 (ops/types.ts), exact for integers within ±2^24 only: an integer constant it
  // would change (int32(2147483647) → 2147483648) is refused rather than silently computed with another value.
  const checkIntExact = (name: string, dtype: string, values: ArrayLike<number>, pos: { line: number; col: number }) => {
    if (!/^u?int\d+$/.test(dtype)) return
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!
      if (Math.fround(x) === x) continue
      fail("SIM-INT-PRECISION",
        `${name}: ${dtype} value ${x}${values.length > 1 ? ` (element ${i})` : ""} cannot be held exactly: the simulator ` +
          `stores tensors as float32, exact for integers within ±2^24, and would use ${Math.fround(x)}`,
        pos, "type", "keep integer constants within ±16777216 for the simulator")
    }
  }

  const literalVal = (name: string, type: TypeExpr, lit: Literal, pos: { line: number; col: number }): PVal => {
    const t = typeOf({ name, type, pos })
    const nums: Array<number> = []
    const strs: Array<string> = []
    ivalue(lit, nums, strs)
    if (t.dtype === "string") {
      const v = newVal(name, t, true, strs.join(""))
      return v
    }
    checkIntExact(name, t.dtype, nums, pos)
    const v = newVal(name, t, true)
    const n = v.data.length
    if (nums.length === n) v.data.set(nums)
    else if (nums.length === 1) v.data.fill(nums[0]!)
    else fail("SIM-LITERAL", `${name}: ${nums.length} values for a tensor of ${n} elements`, pos)
    fp16Round(v)
    return v
  }

  /** The checked blob record of a BLOBFILE value (the weight file and its bounds), without decoding it. */
  const blobRecord = (name: string, value: Extract<Value, { kind: "blob" }>) => {
    const t = typeOf({ name, type: value.type, pos: value.pos })
    const bytes = options.weight(value.path)
    if (bytes === undefined) {
      return fail("SIM-BLOB-MISSING", `weight file "${value.path}" was not supplied`, value.pos, "type",
        "pass it in CompileOptions.mil({ weights }) or put it in the package's weights/ folder")
    }
    const rec = readBlobAt(bytes, value.offset, { dtype: t.dtype, elements: sizeOf(t.shape) }, "BLOBFILE")
    if (rec instanceof InvalidArgumentError) {
      return fail("SIM-BLOB", `${value.path} @ ${value.offset}: ${rec.message}`, value.pos)
    }
    return { t, rec }
  }

  const blobVal = (name: string, value: Extract<Value, { kind: "blob" }>): PVal => {
    const { t, rec } = blobRecord(name, value)
    const v = newVal(name, t, true)
    const decoded = decodeBlob(rec)
    for (let i = 0; i < v.data.length; i++) v.data[i] = Number(decoded[i]!)
    if (decoded instanceof Int32Array || decoded instanceof Uint32Array) checkIntExact(name, t.dtype, decoded, value.pos)
    return v
  }

  const resolve = (nv: NamedValue | { name: string; value: Value; pos: { line: number; col: number } }, owner: string): PVal | ReadonlyArray<PVal> => {
    const v = nv.value
    switch (v.kind) {
      case "ref": {
        const found = env.get(v.name)
        return found ?? fail("SIM-UNKNOWN-VALUE", `${owner}: "${v.name}" is not defined before this op`, v.pos)
      }
      case "typed": return literalVal(`${owner}.${nv.name}`, v.type, v.literal, v.pos)
      case "blob": return blobVal(`${owner}.${nv.name}`, v)
      case "tuple": return v.items.map((item, i) => {
        const r = resolve({ name: `${nv.name}[${i}]`, value: item, pos: item.pos }, owner)
        return Array.isArray(r) ? fail("SIM-TUPLE", "nested tuples are not supported", item.pos) : (r as PVal)
      })
    }
  }

  const steps: Array<Step> = []
  let flops = 0
  let opCount = 0

  for (let opIndex = 0; opIndex < fn.body.operations.length; opIndex++) {
    const op = fn.body.operations[opIndex]!
    where = op.pos
    opCount++
    const outName = op.outputs[0]?.name ?? op.op
    if (op.blocks.length > 0) {
      fail("SIM-CONTROL-FLOW", `${op.op} (nested blocks) is not supported: the engine runs static graphs only`, op.pos, "ane")
    }
    if (op.op === "const") {
      const val = op.attributes.find((a) => a.name === "val") ?? op.args.find((a) => a.name === "val")
      const out = op.outputs[0]
      if (!val || !out) return fail("SIM-CONST", "const needs one output and a val attribute", op.pos)
      // A const nothing reads needs no buffer: its weights are still checked, never decoded or held.
      if (!lastUse.has(out.name) && definitions.get(out.name) === 1) {
        if (val.value.kind === "blob") blobRecord(out.name, val.value)
        continue
      }
      const r = resolve(val, out.name)
      if (Array.isArray(r)) return fail("SIM-CONST", "const val cannot be a tuple", op.pos)
      const v = r as PVal
      const declared = typeOf(out)
      if (sizeOf(declared.shape) !== v.data.length && v.str === undefined) {
        fail("SIM-SHAPE", `${out.name}: declared ${sizeOf(declared.shape)} elements, value has ${v.data.length}`, op.pos)
      }
      env.set(out.name, { ...v, name: out.name, shape: declared.shape, dtype: declared.dtype })
      continue
    }
    const impl = ops[op.op]
    if (impl === undefined) {
      fail("SIM-UNSUPPORTED-OP", `op "${op.op}" is not supported by the simulator`, op.pos, "ane",
        "see supportedOps in src/sim/ops/index.ts")
    }
    const named = new Map<string, NamedValue>()
    for (const a of op.attributes) if (a.name !== "name") named.set(a.name, a)
    for (const a of op.args) named.set(a.name, a)
    const resolved = new Map<string, PVal | ReadonlyArray<PVal>>()
    const get = (name: string) => {
      if (!resolved.has(name)) {
        const nv = named.get(name)
        if (nv !== undefined) resolved.set(name, resolve(nv, outName))
      }
      return resolved.get(name)
    }
    const accessed: Array<PVal> = []
    const single = (name: string): PVal | undefined => {
      const r = get(name)
      if (r === undefined) return undefined
      if (Array.isArray(r)) throw new OpError(`${name} is a tuple, expected one value`)
      accessed.push(r as PVal)
      return r as PVal
    }
    const constOf = (name: string): PVal | undefined => {
      const v = single(name)
      if (v !== undefined && !v.isConst) throw new OpError(`${name} must be a compile-time constant`)
      return v
    }
    const outs: Array<PVal | undefined> = op.outputs.map(() => undefined)
    const outTypes = op.outputs.map((o) => typeOf(o))
    const aliased = new Set<number>()
    // An op reading only constants is folded at plan time: its outputs live on, so they take fresh buffers.
    let mayFold = !statefulOps.has(op.op)
    for (const nv of named.values()) {
      const names: Array<string> = []
      refsOf(nv.value, names)
      if (names.some((n) => env.get(n)?.isConst === false)) mayFold = false
    }
    const pooled = new Set<Float32Array>()
    const scratch: Array<Float32Array> = []
    const ctx: OpCtx = {
      op,
      opset: fn.opset,
      exact,
      maxTensorBytes: maxBytes,
      nOut: op.outputs.length,
      has: (name) => named.has(name),
      val: (name) => single(name) ?? (() => { throw new OpError(`missing argument "${name}"`) })(),
      opt: (name) => single(name),
      tuple: (name) => {
        const r = get(name)
        if (r === undefined) throw new OpError(`missing argument "${name}"`)
        const list = (Array.isArray(r) ? r : [r]) as ReadonlyArray<PVal>
        accessed.push(...list)
        return list
      },
      ints: (name, dflt) => {
        const v = constOf(name)
        if (v === undefined) {
          if (dflt === undefined) throw new OpError(`missing argument "${name}"`)
          return [...dflt]
        }
        return Array.from(v.data)
      },
      num: (name, dflt) => {
        const v = constOf(name)
        if (v === undefined) {
          if (dflt === undefined) throw new OpError(`missing argument "${name}"`)
          return dflt
        }
        if (v.data.length < 1) throw new OpError(`${name} is empty`)
        return v.data[0]!
      },
      str: (name, dflt) => {
        const v = constOf(name)
        if (v === undefined) {
          if (dflt === undefined) throw new OpError(`missing argument "${name}"`)
          return dflt
        }
        if (v.str === undefined) throw new OpError(`${name} must be a string`)
        return v.str
      },
      bool: (name, dflt) => {
        const v = constOf(name)
        if (v === undefined) {
          if (dflt === undefined) throw new OpError(`missing argument "${name}"`)
          return dflt
        }
        return v.data[0] !== 0
      },
      outType: (i) => {
        const t = outTypes[i]
        if (t === undefined) throw new OpError(`${op.op} declares ${op.outputs.length} output(s), needs at least ${i + 1}`)
        return t
      },
      alloc: (i) => {
        const t = ctx.outType(i)
        const reused = mayFold ? undefined : pool.get(sizeOfChecked(t.shape))?.pop()
        let v: PVal
        if (reused !== undefined) {
          pooled.add(reused)
          v = { name: op.outputs[i]!.name, shape: t.shape, dtype: t.dtype, data: reused, isConst: false }
        } else v = newVal(op.outputs[i]!.name, t, false)
        outs[i] = v
        return v
      },
      alias: (i, of) => {
        const t = ctx.outType(i)
        const v: PVal = { name: op.outputs[i]!.name, shape: t.shape, dtype: t.dtype, data: of.data, isConst: of.isConst }
        aliased.add(i)
        outs[i] = v
        return v
      },
      scratch: (n) => {
        const s = buffer(`${outName}: scratch`, n)
        scratch.push(s)
        return s
      }
    }
    let run: Run | undefined
    try {
      run = impl!(ctx)
      outs.forEach((o, i) => {
        if (o === undefined) throw new OpError(`output ${i} (${op.outputs[i]!.name}) was not produced`)
      })
    } catch (e) {
      if (e instanceof PlanError) throw e
      const code = e instanceof OpError ? e.code : "SIM-OP"
      const kind = code === "SIM-UNSUPPORTED-OP" ? "ane" : "type"
      return fail(code, `${op.op} (${outName}): ${e instanceof Error ? e.message : String(e)}`, op.pos, kind)
    }
    const produced = outs as Array<PVal>
    // fp16 storage between ops: every fp16 output is rounded after its op (aliases already are).
    const rounders: Array<() => void> = []
    if (!exact) {
      produced.forEach((o, i) => {
        if (!aliased.has(i) && o.dtype === "fp16") rounders.push(fp16Rounder(o.data))
      })
    }
    const cliff = !exact && (op.op === "matmul" || op.op === "linear" || op.op === "conv") && produced[0]!.dtype === "fp16"
      ? produced[0]!.data : undefined
    const foldable = !statefulOps.has(op.op) && accessed.every((v) => v.isConst)
    if (run !== undefined) {
      const body = run
      // A reused buffer holds its previous value's data: clear it first, as a fresh buffer would be, so a kernel
      // that leaves some elements alone (padding) sees the same zeros it would see alone.
      const reusedOuts = [...pooled]
      const clear: Run = reusedOuts.length === 0 ? body : () => {
        for (let i = 0; i < reusedOuts.length; i++) reusedOuts[i]!.fill(0)
        body()
      }
      const full: Run = rounders.length === 0 && cliff === undefined ? clear : () => {
        clear()
        if (cliff !== undefined) applyMatmulCliff(cliff)
        for (let i = 0; i < rounders.length; i++) rounders[i]!()
      }
      if (foldable) {
        try {
          full()
        } catch (e) {
          return fail(e instanceof OpError ? e.code : "SIM-OP", `${op.op} (${outName}): ${e instanceof Error ? e.message : String(e)}`, op.pos)
        }
        // Folded values live for the whole plan: move any out of a reused buffer, which goes back to the pool.
        produced.forEach((o) => {
          if (!pooled.has(o.data)) return
          const kept = buffer(`${o.name}: ${o.dtype} [${o.shape.join(", ")}]`, o.data.length)
          kept.set(o.data)
          const free = pool.get(o.data.length)
          if (free === undefined) pool.set(o.data.length, [o.data])
          else free.push(o.data)
          o.data = kept
        })
      } else {
        steps.push({ op: op.op, line: op.pos.line, run: full })
        const insByName = new Map<string, Val>()
        for (const k of named.keys()) {
          const r = resolved.get(k)
          if (r !== undefined && !Array.isArray(r)) insByName.set(k, r as Val)
        }
        flops += flopsOf(op.op, insByName, produced)
      }
    }
    produced.forEach((o, i) => {
      if (foldable) o.isConst = true
      else if (!aliased.has(i)) recyclable.add(o.data)
      hold(o.data)
      env.set(op.outputs[i]!.name, o)
    })
    for (const name of dying(opIndex, op.outputs.map((o) => o.name))) {
      const v = env.get(name)
      if (v !== undefined && holders.has(v.data)) release(v.data)
    }
  }
  const outputs = fn.body.outputs.map((name) =>
    env.get(name) ?? fail("SIM-UNKNOWN-VALUE", `function output "${name}" is not defined`, fn.body.pos)
  )
  const runSteps = steps.map((s) => s.run)
  const n = runSteps.length
  let at = -1
  return {
    functionName: fn.name,
    inputs,
    outputs,
    run: () => {
      if (arena.disposed()) throw new Error("the plan was disposed")
      for (let i = 0; i < n; i++) {
        at = i
        runSteps[i]!()
      }
    },
    lastStep: () => steps[at],
    flops,
    opCount,
    stepCount: n,
    bufferBytes,
    bufferCount,
    resetState: () => states.forEach((s) => s.data.fill(0)),
    dispose: arena.dispose
  }
}
