/**
 * The simulator's planner and interpreter. A MIL function is planned once: every value gets its buffer, constants
 * and constexpr chains are folded, and each remaining op becomes a closure over preallocated buffers, so an
 * evaluation is a straight run of closures that allocates nothing.
 */
import type { Binding, Literal, MilFunction, NamedValue, Program, TypeExpr, Value } from "../mil/ast.js"
import { decodeBlob, readBlobAt } from "../mil/blob.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { roundBitsToFp16 } from "./numerics.js"
import { OpError, ops, statefulOps } from "./ops/index.js"
import type { OpCtx, OutType, Run, Val } from "./ops/index.js"
import { sizeOf } from "./ops/util.js"
import { applyMatmulCliff } from "./numerics.js"

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
  /** Bytes of preallocated buffers. */
  readonly bufferBytes: number
  /** Resets state-typed inputs to zero. */
  readonly resetState: () => void
  /** The op (name and line) of the step that ran last: the one that threw, after a failed `run`. */
  readonly lastStep: () => { readonly op: string; readonly line: number } | undefined
}

/** How the planner resolves BLOBFILE paths and rounds. */
export interface PlanOptions {
  readonly numerics: "ane" | "exact"
  /** The bytes of a weight file by its BLOBFILE path, or undefined when there is none. */
  readonly weight: (path: string) => Uint8Array | undefined
  readonly file?: string
  /** Function to plan; default `main`, else the first function. */
  readonly functionName?: string
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
  try {
    return planOrThrow(program, options)
  } catch (e) {
    if (e instanceof PlanError) return [e.diagnostic]
    throw e
  }
}

const planOrThrow = (program: Program, options: PlanOptions): Plan => {
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
  const newVal = (name: string, t: OutType, isConst: boolean, str?: string): PVal => {
    const n = sizeOf(t.shape)
    bufferBytes += 4 * n
    return { name, shape: t.shape, dtype: t.dtype, data: new Float32Array(n), isConst, ...(str !== undefined ? { str } : {}) }
  }
  const typeOf = (b: Binding | { name: string; type: TypeExpr; pos: { line: number; col: number } }): OutType => {
    const t = staticType(b.type)
    return typeof t === "string" ? fail("SIM-DYNAMIC", `${b.name}: ${t}`, b.pos) : t
  }
  const inputs: Array<PVal> = []
  const states: Array<PVal> = []
  for (const b of fn.inputs) {
    const v = newVal(b.name, typeOf(b), false)
    env.set(b.name, v)
    if (b.type.kind === "state") states.push(v)
    else inputs.push(v)
  }
  const fp16Round = (v: PVal) => {
    if (!exact && v.dtype === "fp16") roundBitsToFp16(new Uint32Array(v.data.buffer, v.data.byteOffset, v.data.length))
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
    const v = newVal(name, t, true)
    const n = v.data.length
    if (nums.length === n) v.data.set(nums)
    else if (nums.length === 1) v.data.fill(nums[0]!)
    else fail("SIM-LITERAL", `${name}: ${nums.length} values for a tensor of ${n} elements`, pos)
    fp16Round(v)
    return v
  }

  const blobVal = (name: string, value: Extract<Value, { kind: "blob" }>): PVal => {
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
    const v = newVal(name, t, true)
    const decoded = decodeBlob(rec)
    for (let i = 0; i < v.data.length; i++) v.data[i] = Number(decoded[i]!)
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

  for (const op of fn.body.operations) {
    opCount++
    const outName = op.outputs[0]?.name ?? op.op
    if (op.blocks.length > 0) {
      fail("SIM-CONTROL-FLOW", `${op.op} (nested blocks) is not supported: the engine runs static graphs only`, op.pos, "ane")
    }
    if (op.op === "const") {
      const val = op.attributes.find((a) => a.name === "val") ?? op.args.find((a) => a.name === "val")
      const out = op.outputs[0]
      if (!val || !out) return fail("SIM-CONST", "const needs one output and a val attribute", op.pos)
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
    const scratch: Array<Float32Array> = []
    const ctx: OpCtx = {
      op,
      opset: fn.opset,
      exact,
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
        const v = newVal(op.outputs[i]!.name, t, false)
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
        const s = new Float32Array(n)
        scratch.push(s)
        bufferBytes += 4 * n
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
    const rounders: Array<Uint32Array> = []
    if (!exact) {
      produced.forEach((o, i) => {
        if (!aliased.has(i) && o.dtype === "fp16") rounders.push(new Uint32Array(o.data.buffer, o.data.byteOffset, o.data.length))
      })
    }
    const cliff = !exact && (op.op === "matmul" || op.op === "linear" || op.op === "conv") && produced[0]!.dtype === "fp16"
      ? produced[0]!.data : undefined
    const foldable = !statefulOps.has(op.op) && accessed.every((v) => v.isConst)
    if (run !== undefined) {
      const body = run
      const full: Run = rounders.length === 0 && cliff === undefined ? body : () => {
        body()
        if (cliff !== undefined) applyMatmulCliff(cliff)
        for (let i = 0; i < rounders.length; i++) roundBitsToFp16(rounders[i]!)
      }
      if (foldable) {
        try {
          full()
        } catch (e) {
          return fail(e instanceof OpError ? e.code : "SIM-OP", `${op.op} (${outName}): ${e instanceof Error ? e.message : String(e)}`, op.pos)
        }
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
      env.set(op.outputs[i]!.name, o)
    })
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
    resetState: () => states.forEach((s) => s.data.fill(0))
  }
}
