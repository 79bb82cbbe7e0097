/**
 * The per-node conversion context: typed access to a node's inputs and attributes, materialisation of constants as
 * MIL tensors, node-tagged naming (so every MIL op traces back to its ONNX node), and typed failure.
 */
import type { AttributeProto, GraphProto, NodeProto } from "onnx-buf"
import type { Builder, Named, Tensor } from "../mil/build.js"
import type { ImportError } from "../schema/errors.js"
import type { Fail, TensorData } from "./read.js"
import { type Const, type Dyn, type Kind, size, type Value } from "./values.js"

/** Thrown inside a conversion and turned into the ImportError it carries at the boundary. */
export class Stop {
  constructor(readonly error: ImportError) {}
}

/** State shared by every node of one import. */
export interface Shared {
  readonly b: Builder
  /** The program's float dtype. */
  readonly dtype: "fp16" | "fp32"
  readonly fail: Fail
  readonly opsets: ReadonlyMap<string, number>
  /** MIL op name → ONNX node name. */
  readonly origins: Map<string, string>
  readonly usedNames: Set<string>
  readonly materialised: WeakMap<Const, Tensor>
  readonly decode: (t: NonNullable<AttributeProto["t"]>, what: string) => TensorData | ImportError
}

/** MIL identifier made from an ONNX name. */
export const milIdent = (name: string): string => {
  const s = name.replace(/[^A-Za-z0-9_]/g, "_").replace(/^_+/, "")
  return s === "" ? "v" : /^[0-9]/.test(s) ? `v${s}` : s
}

/** The context of one node. */
export class NodeCtx {
  private counter = 0
  constructor(
    readonly shared: Shared,
    readonly node: NodeProto,
    readonly inputs: ReadonlyArray<Value | undefined>,
    /** Converts a subgraph (If branch) in a scope that sees this node's scope; returns its outputs. */
    readonly subgraph: (g: GraphProto) => ReadonlyArray<Value>
  ) {}

  get b(): Builder { return this.shared.b }
  get dtype(): "fp16" | "fp32" { return this.shared.dtype }
  get opType(): string { return this.node.opType }
  /** The opset of the node's domain. */
  get opset(): number { return this.shared.opsets.get(this.node.domain === "ai.onnx" ? "" : this.node.domain) ?? 1 }

  /** Fails the whole import at this node. */
  fail(reason: string, hint?: string): never {
    throw new Stop(this.shared.fail(reason, {
      node: this.node.name || this.node.output[0] || "(unnamed)",
      opType: this.node.opType,
      ...(hint !== undefined ? { hint } : {})
    }))
  }

  /** Input `i`, which must be present. */
  in(i: number, what = `input ${i}`): Value {
    const v = this.inputs[i]
    if (v === undefined) this.fail(`${what} is missing`)
    return v
  }

  /** Input `i` or undefined when absent (empty name or past the end). */
  opt(i: number): Value | undefined {
    return this.inputs[i]
  }

  /** Input `i` as a constant (shapes, axes, pads must be known at import). */
  constIn(i: number, what = `input ${i}`): Const {
    const v = this.in(i, what)
    if (v.tag !== "const") this.fail(`${what} must be a constant (computed at import time), but it depends on a model input`)
    return v
  }

  /** Input `i` as integers (a constant). */
  intsIn(i: number, what = `input ${i}`): Array<number> {
    return Array.from(this.constIn(i, what).data)
  }

  private attr(name: string): AttributeProto | undefined {
    return this.node.attribute.find((a) => a.name === name)
  }

  /** True when the attribute is present. */
  has(name: string): boolean { return this.attr(name) !== undefined }

  /** An int attribute. */
  int(name: string, fallback: number): number {
    const a = this.attr(name)
    if (a === undefined) return fallback
    const v = Number(a.i)
    if (!Number.isSafeInteger(v)) this.fail(`attribute ${name} = ${a.i} is out of range`)
    return v
  }

  /** An ints attribute. */
  intList(name: string): Array<number> | undefined {
    const a = this.attr(name)
    if (a === undefined) return undefined
    return a.ints.map((i) => {
      const v = Number(i)
      if (!Number.isSafeInteger(v)) this.fail(`attribute ${name} holds ${i}, out of range`)
      return v
    })
  }

  /** A float attribute. */
  float(name: string, fallback: number): number {
    const a = this.attr(name)
    return a === undefined ? fallback : a.f
  }

  /** A floats attribute. */
  floatList(name: string): Array<number> | undefined {
    return this.attr(name)?.floats
  }

  /** A string attribute. */
  str(name: string, fallback: string): string {
    const a = this.attr(name)
    return a === undefined ? fallback : new TextDecoder().decode(a.s)
  }

  /** A strings attribute. */
  strList(name: string): Array<string> | undefined {
    return this.attr(name)?.strings.map((s) => new TextDecoder().decode(s))
  }

  /** A tensor attribute, decoded. */
  tensorAttr(name: string): Const | undefined {
    const a = this.attr(name)
    if (a?.t === undefined) return undefined
    const d = this.shared.decode(a.t, `attribute ${name} of node ${this.node.name}`)
    if ("_tag" in d) throw new Stop(d)
    return { tag: "const", kind: d.kind, shape: d.shape, data: d.data }
  }

  /** A graph attribute. */
  graph(name: string): GraphProto {
    const g = this.attr(name)?.g
    if (g === undefined) this.fail(`attribute ${name} (a graph) is missing`)
    return g
  }

  /** A fresh MIL name tagged with this node (recorded for the rule report). */
  name(): Named {
    const base = `n_${milIdent(this.node.name || this.node.output[0] || this.node.opType)}`
    let n = this.counter === 0 ? base : `${base}_${this.counter}`
    while (this.shared.usedNames.has(n)) n = `${base}_${++this.counter}`
    this.counter++
    this.shared.usedNames.add(n)
    this.shared.origins.set(n, this.node.name || this.node.output[0] || this.node.opType)
    return { name: n }
  }

  /** MIL dtype of a kind. */
  milDtype(kind: Kind): string {
    return kind === "float" ? this.dtype : kind === "int" ? "int32" : "bool"
  }

  /** The value as a MIL tensor (a constant is emitted once, in the program's dtype for floats). */
  tensor(v: Value): Tensor {
    if (v.tag === "dyn") return v.t
    const done = this.shared.materialised.get(v)
    if (done !== undefined) return done
    if (v.kind === "int" && v.data.some((x) => x > 2147483647 || x < -2147483648)) {
      this.fail("an integer constant does not fit int32, the program's integer type")
    }
    if (v.kind === "bool" && size(v.shape) >= 16) this.fail("a boolean constant of 16 or more elements cannot be stored")
    const t = this.b.const(v.data, v.shape, { ...this.name(), dtype: this.milDtype(v.kind) })
    this.shared.materialised.set(v, t)
    return t
  }

  /** A program value with this node's result. */
  dyn(t: Tensor, kind: Kind): Dyn {
    return { tag: "dyn", kind, shape: t.shape, t }
  }

  /** Normalises an axis against a rank, failing when out of range. */
  axis(a: number, rank: number, what = "axis"): number {
    const n = a < 0 ? a + rank : a
    if (!Number.isInteger(n) || n < 0 || n >= rank) this.fail(`${what} ${a} is out of range for rank ${rank}`)
    return n
  }
}

/** One ONNX op's converter: its results, in output order. */
export type Converter = (c: NodeCtx) => ReadonlyArray<Value | undefined>
