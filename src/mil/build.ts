/**
 * `Mil.build`: a typed builder that writes MIL programs. Ops infer their result shapes as they are added, constants
 * of at least `weightThreshold` elements move into a weight blob, every value gets a deterministic name, and the
 * finished program is printed and checked; an invalid program fails with the checker's diagnostics.
 */
import * as Effect from "effect/Effect"
import type { Literal, NamedValue, Operation, Program, TypeExpr, Value } from "./ast.js"
import { noPos } from "./ast.js"
import { type BlobDtype, type BlobEntry, isBlobDtype, writeBlobFile } from "./blob.js"
import { float32ToFp16, fp16ToFloat32 } from "../fp16/scalar.js"
import * as shapes from "./build/infer.js"
import { verifyBuilt } from "./build/verify.js"
import type { Chip } from "./validate.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { DEFAULT_WEIGHT_PATH } from "../schema/CompileOptions.js"
import { CompileError, InvalidArgumentError } from "../schema/errors.js"

/** The opsets the builder writes (`func main<opset>`). */
export type Opset = "ios15" | "ios16" | "ios17" | "ios18"

/** The buildInfo the in-memory ANE compiler is known to accept (spec/mil-format.md §1.1). */
export const DEFAULT_BUILD_INFO: ReadonlyArray<readonly [string, string]> = [
  ["coremlc-component-MIL", "3510.2.1"],
  ["coremlc-version", "3505.4.1"],
  ["coremltools-component-milinternal", ""],
  ["coremltools-version", "9.0"]
]

/** Options of {@link build}. */
export interface BuildOptions {
  /** Default `ios18`. */
  readonly opset?: Opset
  /** `program(<version>)`; default `1.3`. */
  readonly version?: string
  /** Function name; default `main`. */
  readonly functionName?: string
  /** Constants with at least this many elements go to a weight blob; default 16. */
  readonly weightThreshold?: number
  /** Weight file of blob constants that name none; default `@model_path/weights/weight.bin`. */
  readonly weightPath?: string
  /** buildInfo entries; default {@link DEFAULT_BUILD_INFO}; `null` omits the attribute. */
  readonly buildInfo?: ReadonlyArray<readonly [string, string]> | null
  /** Printer style; default `compact`. */
  readonly style?: "apple" | "compact"
  /**
   * Also run the ANE rule validator (for `chip`, or every chip's strictest limits); its errors fail the build.
   * Default: type checking only.
   */
  readonly validate?: { readonly chip?: Chip } | boolean
}

/** A value in the program being built: a function input, a constant, or an op result. */
export interface Tensor {
  readonly id: number
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
}

/** A `state<tensor<…>>` function input (KV caches). */
export interface StateTensor {
  readonly id: number
  readonly state: true
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
}

/** The name and type of a function input or output. */
export interface TensorSpec {
  readonly name: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly state?: boolean
}

/** A built program: text ready for `CompileOptions.mil`, its weight files, its syntax tree and signature. */
export interface Built {
  readonly text: string
  readonly weights: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  readonly program: Program
  readonly inputs: ReadonlyArray<TensorSpec>
  readonly outputs: ReadonlyArray<TensorSpec>
}

/** Per-op naming option. */
export interface Named {
  /** Name of the result (and the op's `name` attribute); made unique deterministically when omitted. */
  readonly name?: string
}

/** Numeric data of a constant. */
export type ConstData = ArrayLike<number>

/** Either a value in the program or a plain number (materialised as a scalar of the other operand's dtype). */
export type Operand = Tensor | number

type Arg =
  | { readonly kind: "var"; readonly id: number }
  | { readonly kind: "tuple"; readonly ids: ReadonlyArray<number> }

type ConstVal =
  | { readonly kind: "scalar"; readonly dtype: string; readonly value: number | boolean | string }
  | { readonly kind: "inline"; readonly dtype: string; readonly shape: ReadonlyArray<number>; readonly data: ReadonlyArray<number> }
  | { readonly kind: "blob"; readonly dtype: BlobDtype; readonly shape: ReadonlyArray<number>; readonly file: string; readonly index: number }

interface OpRecord {
  readonly op: string
  readonly args: ReadonlyArray<readonly [string, Arg]>
  readonly outputs: ReadonlyArray<number>
  readonly constVal?: ConstVal
  /** The `name` attribute of an op without results (write_state). */
  readonly opName?: string
}

interface VarInfo {
  name: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly origin: "input" | "state" | "op"
}

const opsetRank = (o: string) => ["ios15", "ios16", "ios17", "ios18"].indexOf(o)

/** Shortest decimal text that reads back as the same fp16 / fp32 value (ints as written). */
const numberText = (v: number, dtype: string): string => {
  // The parser's spellings of the non-finite values.
  if (Number.isNaN(v)) return "nan"
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf"
  if (dtype === "fp16" || dtype === "fp32" || dtype === "bf16") {
    const same = dtype === "fp16"
      ? (a: number) => float32ToFp16(a) === float32ToFp16(v)
      : (a: number) => Math.fround(a) === Math.fround(v)
    const exact = dtype === "fp16" ? fp16ToFloat32(float32ToFp16(v)) : Math.fround(v)
    // Integral values print exactly (65504.0, not the shorter 65500.0 that rounds to it).
    if (Number.isInteger(exact) && Math.abs(exact) < 1e15) return `${Object.is(exact, -0) ? "-0" : String(exact)}.0`
    let s = String(exact)
    for (let p = 1; p <= 17; p++) {
      const t = String(Number(v.toPrecision(p)))
      if (same(Number(t))) {
        s = t
        break
      }
    }
    if (Object.is(v, -0)) s = "-0"
    return /^-?\d+$/.test(s) ? `${s}.0` : s
  }
  return String(v)
}

const ident = (v: number | string): string => String(v).replace(/^-/, "m").replace(/[^A-Za-z0-9]/g, "_")

/** Content-derived name of a shared parameter constant (`c_true`, `c_valid`, `c_int32_1`, `c_fp16_0_5`). */
const scalarConstName = (value: number | boolean | string, dtype: string): string =>
  typeof value === "boolean" ? `c_${value}` : typeof value === "string" ? `c_${ident(value)}` : `c_${dtype}_${ident(numberText(value, dtype))}`

/** The builder handed to the body of {@link build}. */
export class Builder {
  private readonly vars: Array<VarInfo> = []
  private readonly ops: Array<OpRecord> = []
  private readonly used = new Set<string>()
  private readonly inputs: Array<number> = []
  private readonly blobs = new Map<string, Array<BlobEntry>>()
  private readonly paramCache = new Map<string, Tensor>()
  /** Problems found while building: (op index or -1, message). */
  readonly problems: Array<{ readonly at: number; readonly message: string }> = []

  constructor(readonly options: Required<Pick<BuildOptions, "opset" | "weightThreshold" | "weightPath">>) {}

  // -- naming ----------------------------------------------------------------------------------------------------

  private claim(name: string | undefined, prefix: string, numbered = false): string {
    if (name !== undefined) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        this.problem(`"${name}" is not a valid MIL identifier`)
      } else if (this.used.has(name)) {
        this.problem(`the name "${name}" is already used`)
      } else {
        this.used.add(name)
        return name
      }
    }
    let candidate = numbered ? `${prefix}_0` : prefix
    for (let i = 1; this.used.has(candidate); i++) candidate = `${prefix}_${i}`
    this.used.add(candidate)
    return candidate
  }

  private problem(message: string): void {
    this.problems.push({ at: this.ops.length, message })
  }

  private newVar(name: string, dtype: string, shape: ReadonlyArray<number>, origin: VarInfo["origin"]): Tensor {
    const id = this.vars.length
    this.vars.push({ name, dtype, shape, origin })
    return { id, dtype, shape }
  }

  /** The current name of a value (final once the body returns). */
  nameOf(t: Tensor | StateTensor): string {
    return this.vars[t.id]!.name
  }

  private own(t: Tensor | StateTensor, what: string): boolean {
    const v = this.vars[t.id]
    if (v === undefined || v.dtype !== t.dtype) {
      this.problem(`${what} is not a value of this program`)
      return false
    }
    return true
  }

  // -- inputs and constants ----------------------------------------------------------------------------------------

  /** A function input `tensor<dtype, shape> name`. */
  input(name: string, dtype: string, shape: ReadonlyArray<number>): Tensor {
    if (shape.some((d) => !Number.isInteger(d) || d <= 0)) this.problem(`input ${name}: dims must be positive integers`)
    const t = this.newVar(this.claim(name, name), dtype, shape, "input")
    this.inputs.push(t.id)
    return t
  }

  /** A state input `state<tensor<dtype, shape>> name` (iOS18), read with `readState`, written with `writeState`. */
  state(name: string, dtype: string, shape: ReadonlyArray<number>): StateTensor {
    const t = this.newVar(this.claim(name, name), dtype, shape, "state")
    this.inputs.push(t.id)
    return { id: t.id, state: true, dtype, shape }
  }

  /**
   * A constant tensor of `shape` (row-major `data`, default dtype fp16). At least `weightThreshold` elements go to a
   * weight blob (`file` names its weight file), fewer are written inline.
   */
  const(
    data: ConstData,
    shape: ReadonlyArray<number>,
    options: Named & { readonly dtype?: string; readonly file?: string } = {}
  ): Tensor {
    const dtype = options.dtype ?? "fp16"
    const name = this.claim(options.name, "const", true)
    const n = shape.reduce((a, b) => a * b, 1)
    if (data.length !== n) this.problem(`const ${name}: ${data.length} values for shape [${shape.join(", ")}] (${n})`)
    const t = this.newVar(name, dtype, shape, "op")
    if (n >= this.options.weightThreshold || options.file !== undefined) {
      if (!isBlobDtype(dtype)) {
        this.problem(`const ${name}: dtype ${dtype} cannot be stored in a weight blob`)
        this.ops.push({ op: "const", args: [], outputs: [t.id], constVal: { kind: "inline", dtype, shape, data: Array.from(data) } })
        return t
      }
      const file = options.file ?? this.options.weightPath
      const list = this.blobs.get(file) ?? []
      this.blobs.set(file, list)
      list.push({ dtype, data })
      this.ops.push({ op: "const", args: [], outputs: [t.id], constVal: { kind: "blob", dtype, shape, file, index: list.length - 1 } })
    } else {
      this.ops.push({ op: "const", args: [], outputs: [t.id], constVal: { kind: "inline", dtype, shape, data: Array.from(data) } })
    }
    return t
  }

  /** A scalar constant (`fp16(0.5)`, `int32(1)`, `bool(true)`, `string("valid")`). */
  scalar(value: number | boolean | string, dtype?: string, options: Named = {}): Tensor {
    const dt = dtype ?? (typeof value === "boolean" ? "bool" : typeof value === "string" ? "string" : "fp16")
    if (typeof value === "number" && /int/.test(dt) && !Number.isInteger(value)) {
      this.problem(`scalar ${value} is not an integer but its dtype is ${dt}`)
    }
    const key = `s|${dt}|${String(value)}|${options.name ?? ""}`
    const cached = options.name === undefined ? this.paramCache.get(key) : undefined
    if (cached !== undefined) return cached
    const t = this.newVar(this.claim(options.name, scalarConstName(value, dt)), dt, [], "op")
    this.ops.push({ op: "const", args: [], outputs: [t.id], constVal: { kind: "scalar", dtype: dt, value } })
    if (options.name === undefined) this.paramCache.set(key, t)
    return t
  }

  /** A small inline int32 vector constant (shapes, permutations, begin/size). */
  ints(values: ReadonlyArray<number>, options: Named = {}): Tensor {
    const key = `i|${values.join(",")}|${options.name ?? ""}`
    const cached = options.name === undefined ? this.paramCache.get(key) : undefined
    if (cached !== undefined) return cached
    const t = this.newVar(this.claim(options.name, `c_ints_${values.map(ident).join("_")}`), "int32", [values.length], "op")
    this.ops.push({ op: "const", args: [], outputs: [t.id], constVal: { kind: "inline", dtype: "int32", shape: [values.length], data: values } })
    if (options.name === undefined) this.paramCache.set(key, t)
    return t
  }

  private operand(x: Operand, like: Tensor): Tensor {
    return typeof x === "number" ? this.scalar(x, like.dtype) : x
  }

  // -- ops -----------------------------------------------------------------------------------------------------------

  /**
   * Any op: `args` are values or tuples of values, the result type is given. Use for ops the builder has no method
   * for; the checker still verifies it.
   */
  op(
    op: string,
    args: Readonly<Record<string, Tensor | StateTensor | ReadonlyArray<Tensor>>>,
    output: { readonly dtype: string; readonly shape: ReadonlyArray<number> },
    options: Named = {}
  ): Tensor {
    return this.record(op, args, output, options)!
  }

  /** An op with several results (lstm, split, topk), their types given; the checker still verifies it. */
  opMulti(
    op: string,
    args: Readonly<Record<string, Tensor | StateTensor | ReadonlyArray<Tensor>>>,
    outputs: ReadonlyArray<{ readonly dtype: string; readonly shape: ReadonlyArray<number> }>,
    options: { readonly names?: ReadonlyArray<string> } = {}
  ): Array<Tensor> {
    const [first, ...rest] = outputs
    if (first === undefined) {
      this.problem(`${op}: an op needs at least one result`)
      return []
    }
    const head = this.record(op, args, first, options.names?.[0] !== undefined ? { name: options.names[0] } : {})!
    const tail = rest.map((o, i) => this.newVar(this.claim(options.names?.[i + 1], `${op}_out`, true), o.dtype, o.shape, "op"))
    const rec = this.ops[this.ops.length - 1]!
    this.ops[this.ops.length - 1] = { ...rec, outputs: [...rec.outputs, ...tail.map((t) => t.id)] }
    return [head, ...tail]
  }

  private record(
    op: string,
    args: Readonly<Record<string, Tensor | StateTensor | ReadonlyArray<Tensor>>>,
    output: { readonly dtype: string; readonly shape: ReadonlyArray<number> } | null,
    options: Named
  ): Tensor | undefined {
    const name = this.claim(options.name, op, true)
    const list: Array<readonly [string, Arg]> = []
    for (const k of Object.keys(args).sort()) {
      const v = args[k]!
      if (Array.isArray(v)) {
        const items = v as ReadonlyArray<Tensor>
        items.forEach((t) => this.own(t, `${op}.${k}`))
        list.push([k, { kind: "tuple", ids: items.map((t) => t.id) }])
      } else {
        const t = v as Tensor
        this.own(t, `${op}.${k}`)
        list.push([k, { kind: "var", id: t.id }])
      }
    }
    if (output === null) {
      this.ops.push({ op, args: list, outputs: [], opName: name })
      return undefined
    }
    const t = this.newVar(name, output.dtype, output.shape, "op")
    this.ops.push({ op, args: list, outputs: [t.id] })
    return t
  }

  private emit(
    op: string,
    args: Readonly<Record<string, Tensor | StateTensor | ReadonlyArray<Tensor>>>,
    inferred: shapes.Inferred,
    fallback: Tensor,
    options: Named
  ): Tensor {
    if ("problem" in inferred) {
      this.problem(`${op}${options.name ? ` ${options.name}` : ""}: ${inferred.problem}`)
      return this.op(op, args, { dtype: fallback.dtype, shape: fallback.shape }, options)
    }
    return this.op(op, args, inferred, options)
  }

  private binary(op: string, x: Operand, y: Operand, options: Named): Tensor {
    const xt = typeof x === "number" ? this.operand(x, y as Tensor) : x
    const yt = this.operand(y, xt)
    return this.emit(op, { x: xt, y: yt }, shapes.binary(xt, yt), xt, options)
  }

  /** `x + y` (numpy broadcasting, same dtype). */
  add(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("add", x, y, options) }
  /** `x − y`. */
  sub(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("sub", x, y, options) }
  /** `x · y`. */
  mul(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("mul", x, y, options) }
  /** `x / y`. */
  realDiv(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("real_div", x, y, options) }
  /** `x ^ y`. */
  pow(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("pow", x, y, options) }
  /** Elementwise maximum. */
  maximum(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("maximum", x, y, options) }
  /** Elementwise minimum. */
  minimum(x: Operand, y: Operand, options: Named = {}): Tensor { return this.binary("minimum", x, y, options) }

  private unary(op: string, x: Tensor, options: Named): Tensor {
    return this.emit(op, { x }, { dtype: x.dtype, shape: x.shape }, x, options)
  }

  /** |x|. */
  abs(x: Tensor, options: Named = {}): Tensor { return this.unary("abs", x, options) }
  /** x². */
  square(x: Tensor, options: Named = {}): Tensor { return this.unary("square", x, options) }
  /** √x. */
  sqrt(x: Tensor, options: Named = {}): Tensor { return this.unary("sqrt", x, options) }
  /** eˣ. */
  exp(x: Tensor, options: Named = {}): Tensor { return this.unary("exp", x, options) }
  /** tanh x. */
  tanh(x: Tensor, options: Named = {}): Tensor { return this.unary("tanh", x, options) }
  /** 1/(1+e^−x). */
  sigmoid(x: Tensor, options: Named = {}): Tensor { return this.unary("sigmoid", x, options) }
  /** max(x, 0). */
  relu(x: Tensor, options: Named = {}): Tensor { return this.unary("relu", x, options) }
  /** x·sigmoid(x). */
  silu(x: Tensor, options: Named = {}): Tensor { return this.unary("silu", x, options) }

  /** 1/√(x+ε); ε is written explicitly because the ANE compiler rejects rsqrt without it (ane-constraints.md §1). */
  rsqrt(x: Tensor, options: Named & { readonly epsilon?: number } = {}): Tensor {
    const epsilon = this.scalar(options.epsilon ?? 1e-4, x.dtype)
    return this.emit("rsqrt", { x, epsilon }, { dtype: x.dtype, shape: x.shape }, x, options)
  }

  /** Converts to `dtype` (`fp16`, `fp32`, `int32`, …). */
  cast(x: Tensor, dtype: string, options: Named = {}): Tensor {
    const d = this.scalar(dtype, "string")
    return this.emit("cast", { dtype: d, x }, { dtype, shape: x.shape }, x, options)
  }

  /** softmax along `axis` (default −1). */
  softmax(x: Tensor, options: Named & { readonly axis?: number } = {}): Tensor {
    const axis = this.scalar(options.axis ?? -1, "int32")
    const a = options.axis ?? -1
    const ok = a >= -x.shape.length && a < x.shape.length
    return this.emit("softmax", { axis, x }, ok ? { dtype: x.dtype, shape: x.shape } : { problem: `axis ${a} out of range` }, x, options)
  }

  private reduction(op: string, x: Tensor, options: Named & { readonly axes: ReadonlyArray<number>; readonly keepDims?: boolean }) {
    const keep = options.keepDims ?? true
    const axes = this.ints(options.axes)
    const kd = this.scalar(keep, "bool")
    return this.emit(op, { axes, keep_dims: kd, x }, shapes.reduce(x, options.axes, keep), x, options)
  }

  /** Σ over `axes` (keepDims default true). */
  reduceSum(x: Tensor, options: Named & { readonly axes: ReadonlyArray<number>; readonly keepDims?: boolean }): Tensor {
    return this.reduction("reduce_sum", x, options)
  }
  /** Mean over `axes` (keepDims default true). */
  reduceMean(x: Tensor, options: Named & { readonly axes: ReadonlyArray<number>; readonly keepDims?: boolean }): Tensor {
    return this.reduction("reduce_mean", x, options)
  }
  /** Max over `axes` (keepDims default true). */
  reduceMax(x: Tensor, options: Named & { readonly axes: ReadonlyArray<number>; readonly keepDims?: boolean }): Tensor {
    return this.reduction("reduce_max", x, options)
  }

  /**
   * Convolution. Defaults: strides 1, `valid` padding, dilations 1, groups 1. All parameters are written explicitly
   * as const ops, the form the ANE compiler is known to accept (spec §2.1).
   */
  conv(
    x: Tensor,
    weight: Tensor,
    options: Named & {
      readonly strides?: ReadonlyArray<number>
      readonly pad?: ReadonlyArray<number>
      readonly padType?: "valid" | "same" | "same_lower" | "custom"
      readonly dilations?: ReadonlyArray<number>
      readonly groups?: number
      readonly bias?: Tensor
    } = {}
  ): Tensor {
    const sp = Math.max(1, x.shape.length - 2)
    const o = {
      strides: options.strides ?? new Array<number>(sp).fill(1),
      dilations: options.dilations ?? new Array<number>(sp).fill(1),
      pad: options.pad ?? new Array<number>(2 * sp).fill(0),
      padType: options.padType ?? "valid",
      groups: options.groups ?? 1
    }
    const args: Record<string, Tensor> = {
      dilations: this.ints(o.dilations),
      groups: this.scalar(o.groups, "int32"),
      pad: this.ints(o.pad),
      pad_type: this.scalar(o.padType, "string"),
      strides: this.ints(o.strides),
      weight,
      x
    }
    if (options.bias !== undefined) args["bias"] = options.bias
    return this.emit("conv", args, shapes.conv(x, weight, o), x, options)
  }

  /** Batched matrix product with optional transposes of the last two dims. */
  matmul(
    x: Tensor,
    y: Tensor,
    options: Named & { readonly transposeX?: boolean; readonly transposeY?: boolean } = {}
  ): Tensor {
    const tx = options.transposeX ?? false
    const ty = options.transposeY ?? false
    const args = { transpose_x: this.scalar(tx, "bool"), transpose_y: this.scalar(ty, "bool"), x, y }
    return this.emit("matmul", args, shapes.matmul(x, y, tx, ty), x, options)
  }

  /** Row-major reshape (one −1 allowed). */
  reshape(x: Tensor, shape: ReadonlyArray<number>, options: Named = {}): Tensor {
    return this.emit("reshape", { shape: this.ints(shape), x }, shapes.reshape(x, shape), x, options)
  }

  /** Permutes dims. */
  transpose(x: Tensor, perm: ReadonlyArray<number>, options: Named = {}): Tensor {
    return this.emit("transpose", { perm: this.ints(perm), x }, shapes.transpose(x, perm), x, options)
  }

  /** `x[begin : begin+size]` per axis (size −1 = to the end). */
  sliceBySize(x: Tensor, begin: ReadonlyArray<number>, size: ReadonlyArray<number>, options: Named = {}): Tensor {
    return this.emit("slice_by_size", { begin: this.ints(begin), size: this.ints(size), x },
      shapes.sliceBySize(x, begin, size), x, options)
  }

  /** Concatenation along `axis`; `interleave` is always written (the ANE requires it: spec §7.3). */
  concat(values: ReadonlyArray<Tensor>, options: Named & { readonly axis: number; readonly interleave?: boolean }): Tensor {
    const args = {
      axis: this.scalar(options.axis, "int32"),
      interleave: this.scalar(options.interleave ?? false, "bool"),
      values
    }
    return this.emit("concat", args, shapes.concat(values, options.axis), values[0] ?? { id: -1, dtype: "fp16", shape: [] }, options)
  }

  /** numpy tile. */
  tile(x: Tensor, reps: ReadonlyArray<number>, options: Named = {}): Tensor {
    return this.emit("tile", { reps: this.ints(reps), x }, shapes.tile(x, reps), x, options)
  }

  /** layer_norm over `axes` with optional const gamma/beta; ε has x's dtype (errata row 11). */
  layerNorm(
    x: Tensor,
    options: Named & { readonly axes: ReadonlyArray<number>; readonly gamma?: Tensor; readonly beta?: Tensor; readonly epsilon?: number }
  ): Tensor {
    const args: Record<string, Tensor> = {
      axes: this.ints(options.axes),
      epsilon: this.scalar(options.epsilon ?? 1e-5, x.dtype),
      x
    }
    if (options.gamma !== undefined) args["gamma"] = options.gamma
    if (options.beta !== undefined) args["beta"] = options.beta
    return this.emit("layer_norm", args, { dtype: x.dtype, shape: x.shape }, x, options)
  }

  /** iOS18 scaled_dot_product_attention(query, key, value[, attn_mask]); the scale is fixed at 1/√E. */
  sdpa(query: Tensor, key: Tensor, value: Tensor, options: Named & { readonly mask?: Tensor } = {}): Tensor {
    const args: Record<string, Tensor> = { key, query, value }
    if (options.mask !== undefined) args["attn_mask"] = options.mask
    return this.emit("scaled_dot_product_attention", args, shapes.sdpa(query, key, value), query, options)
  }

  /** `read_state(input = s)`: the current contents of a state. */
  readState(s: StateTensor, options: Named = {}): Tensor {
    return this.emit("read_state", { input: s }, { dtype: s.dtype, shape: s.shape }, { id: s.id, dtype: s.dtype, shape: s.shape }, options)
  }

  /** `write_state(data = v, input = s)`: no result; the serialised form of coreml_update_state (errata row 17). */
  writeState(s: StateTensor, data: Tensor, options: Named = {}): void {
    if (data.dtype !== s.dtype || data.shape.join() !== s.shape.join()) {
      this.problem(`write_state: data ${data.dtype} [${data.shape.join(", ")}] does not match the state ` +
        `${s.dtype} [${s.shape.join(", ")}]`)
    }
    this.record("write_state", { data, input: s }, null, options)
  }

  /**
   * `coreml_update_state(state = s, value = v)`: writes v into the state and returns it (the coremltools dialect op;
   * Apple's serialiser lowers it to write_state + read_state).
   */
  updateState(s: StateTensor, value: Tensor, options: Named = {}): Tensor {
    if (value.dtype !== s.dtype || value.shape.join() !== s.shape.join()) {
      this.problem(`coreml_update_state: value ${value.dtype} [${value.shape.join(", ")}] does not match the state ` +
        `${s.dtype} [${s.shape.join(", ")}]`)
    }
    return this.op("coreml_update_state", { state: s, value }, { dtype: value.dtype, shape: value.shape }, options)
  }

  // -- finishing -----------------------------------------------------------------------------------------------------

  /** Renames results to the output keys and produces the syntax tree and weight files. */
  finish(
    outputs: Readonly<Record<string, Tensor>>,
    options: { readonly version: string; readonly functionName: string; readonly buildInfo: ReadonlyArray<readonly [string, string]> | null }
  ): { program: Program; weights: Array<{ path: string; bytes: Uint8Array }>; inputs: Array<TensorSpec>; outputs: Array<TensorSpec> } {
    const outIds: Array<number> = []
    for (const [key, t] of Object.entries(outputs)) {
      const v = this.vars[t.id]
      if (v === undefined) {
        this.problem(`output ${key} is not a value of this program`)
        continue
      }
      if (v.name !== key) {
        if (v.origin !== "op") this.problem(`output ${key} returns the input ${v.name} unchanged`)
        else if (this.used.has(key)) this.problem(`output name ${key} is already used by another value`)
        else {
          this.used.delete(v.name)
          this.used.add(key)
          v.name = key
        }
      }
      outIds.push(t.id)
    }
    if (outIds.length === 0) this.problem("the program returns no outputs")
    const weights: Array<{ path: string; bytes: Uint8Array }> = []
    const offsets = new Map<string, ReadonlyArray<number>>()
    for (const [path, entries] of this.blobs) {
      const w = writeBlobFile(entries, "Mil.build")
      if (w instanceof InvalidArgumentError) {
        this.problem(`weights for ${path}: ${w.message}`)
        continue
      }
      offsets.set(path, w.offsets)
      weights.push({ path, bytes: w.bytes })
    }
    const scalarType = (dtype: string): TypeExpr =>
      opsetRank(this.options.opset) >= 3
        ? { kind: "scalar", dtype, pos: noPos }
        : { kind: "tensor", dtype, shape: [], pos: noPos }
    const typeOf = (v: VarInfo): TypeExpr => {
      const t: TypeExpr = v.shape.length === 0 ? scalarType(v.dtype) : { kind: "tensor", dtype: v.dtype, shape: v.shape, pos: noPos }
      return v.origin === "state" ? { kind: "state", inner: t, pos: noPos } : t
    }
    const lit = (value: number | boolean | string, dtype: string): Literal =>
      typeof value === "number"
        ? { kind: "number", text: numberText(value, dtype), value, pos: noPos }
        : typeof value === "boolean"
        ? { kind: "bool", value, pos: noPos }
        : { kind: "string", value, pos: noPos }
    const str = (s: string): Value => ({ kind: "typed", type: scalarType("string"), literal: lit(s, "string"), pos: noPos })
    const constValue = (c: ConstVal): Value => {
      switch (c.kind) {
        case "scalar":
          return { kind: "typed", type: scalarType(c.dtype), literal: lit(c.value, c.dtype), pos: noPos }
        case "inline":
          return {
            kind: "typed",
            type: c.shape.length === 0 ? scalarType(c.dtype) : { kind: "tensor", dtype: c.dtype, shape: c.shape, pos: noPos },
            literal: c.shape.length === 0
              ? lit(c.data[0] ?? 0, c.dtype)
              : { kind: "list", items: c.data.map((d) => lit(d, c.dtype)), pos: noPos },
            pos: noPos
          }
        case "blob":
          return {
            kind: "blob",
            type: { kind: "tensor", dtype: c.dtype, shape: c.shape, pos: noPos },
            pathType: scalarType("string"),
            path: c.file,
            offsetType: scalarType("uint64"),
            offset: BigInt(offsets.get(c.file)?.[c.index] ?? 0),
            pos: noPos
          }
      }
    }
    const operations: Array<Operation> = this.ops.map((r) => {
      const outs = r.outputs.map((id) => ({ name: this.vars[id]!.name, type: typeOf(this.vars[id]!), pos: noPos }))
      const opName = outs[0]?.name ?? r.opName ?? r.op
      const nameAttr: NamedValue = { name: "name", value: str(opName), pos: noPos }
      if (r.constVal !== undefined) {
        return {
          outputs: outs, op: "const", args: [], blocks: [], pos: noPos,
          attributes: [nameAttr, { name: "val", value: constValue(r.constVal), pos: noPos }]
        }
      }
      const args: Array<NamedValue> = r.args.map(([name, a]) => ({
        name,
        value: a.kind === "var"
          ? { kind: "ref", name: this.vars[a.id]!.name, pos: noPos }
          : { kind: "tuple", items: a.ids.map((id) => ({ kind: "ref", name: this.vars[id]!.name, pos: noPos })), pos: noPos },
        pos: noPos
      }))
      return { outputs: outs, op: r.op, args, attributes: [nameAttr], blocks: [], pos: noPos }
    })
    const spec = (id: number): TensorSpec => {
      const v = this.vars[id]!
      return v.origin === "state"
        ? { name: v.name, dtype: v.dtype, shape: v.shape, state: true }
        : { name: v.name, dtype: v.dtype, shape: v.shape }
    }
    const dictType: TypeExpr = { kind: "dict", key: scalarType("string"), value: scalarType("string"), pos: noPos }
    const program: Program = {
      version: options.version,
      attributes: options.buildInfo === null ? [] : [{
        name: "buildInfo",
        value: {
          kind: "typed",
          type: dictType,
          literal: {
            kind: "dict",
            entries: options.buildInfo.map(([k, v]) => [lit(k, "string"), lit(v, "string")] as const),
            pos: noPos
          },
          pos: noPos
        },
        pos: noPos
      }],
      functions: [{
        name: options.functionName,
        opset: this.options.opset,
        inputs: this.inputs.map((id) => ({ name: this.vars[id]!.name, type: typeOf(this.vars[id]!), pos: noPos })),
        attributes: [],
        body: { params: [], operations, outputs: outIds.map((id) => this.vars[id]!.name), pos: noPos },
        pos: noPos
      }],
      pos: noPos
    }
    return { program, weights, inputs: this.inputs.map(spec), outputs: outIds.map(spec) }
  }
}

/** Diagnostics for problems the builder itself found (code `B001`, kind `type`). */
const builderDiagnostics = (problems: ReadonlyArray<{ readonly message: string }>): Array<Diagnostic> =>
  problems.map((p) => new Diagnostic({ kind: "type", severity: "error", code: "B001", message: p.message, line: 0, col: 0, source: "Mil.build" }))

/** The body of a build: adds inputs and ops, returns the outputs by name (or one tensor, named `y`). */
export type BuildBody = (b: Builder) => Readonly<Record<string, Tensor>> | Tensor

/**
 * Builds, prints and checks a program; throws the {@link CompileError} (with the checker's diagnostics) when it is
 * invalid. Prefer {@link build} in Effect code.
 */
export const buildSync = (options: BuildOptions, body: BuildBody): Built => {
  const opset = options.opset ?? "ios18"
  const b = new Builder({
    opset,
    weightThreshold: options.weightThreshold ?? 16,
    weightPath: options.weightPath ?? DEFAULT_WEIGHT_PATH
  })
  const returned = body(b)
  const outs = "id" in returned && typeof returned.id === "number" ? { y: returned as Tensor } : returned as Record<string, Tensor>
  const done = b.finish(outs, {
    version: options.version ?? "1.3",
    functionName: options.functionName ?? "main",
    buildInfo: options.buildInfo === undefined ? DEFAULT_BUILD_INFO : options.buildInfo
  })
  const v = options.validate ?? false
  const verified = verifyBuilt(done.program, { style: options.style ?? "compact", ane: v === true ? {} : v })
  const errors = verified.diagnostics.filter((d) => d.severity === "error")
  if (errors.length > 0 || b.problems.length > 0) {
    throw new CompileError({
      op: "Mil.build",
      model: "Mil.build",
      // The checker's findings are positioned in the text; the builder's own only stand in when it found none.
      diagnostics: errors.length > 0 ? errors : builderDiagnostics(b.problems),
      hint: "diagnostic positions refer to the printed program, kept in `cause`",
      cause: verified.text
    })
  }
  return { text: verified.text, weights: done.weights, program: done.program, inputs: done.inputs, outputs: done.outputs }
}

/** Builds a program (see {@link BuildOptions}); fails with a CompileError carrying the checker's diagnostics. */
export const build = (options: BuildOptions, body: BuildBody): Effect.Effect<Built, CompileError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(buildSync(options, body))
    } catch (e) {
      return e instanceof CompileError ? Effect.fail(e) : Effect.die(e)
    }
  })
