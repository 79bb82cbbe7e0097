/**
 * Builds ONNX models with the protobuf library (never hand-written bytes): for per-op tests, the generated fixture
 * graphs (scripts/onnx-fixtures.mjs) and the mutation test.
 */
import { create, toBinary } from "@bufbuild/protobuf"
import {
  AttributeProto_AttributeType as AT, AttributeProtoSchema, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema,
  type AttributeProto, TensorProtoSchema, type TensorProto, ValueInfoProtoSchema
} from "onnx-buf"

/** Attribute values: number (int when integral unless `floatAttrs` names it), number[], string, string[], tensor. */
export type Attr = number | ReadonlyArray<number> | string | ReadonlyArray<string> | { readonly tensor: TensorProto } | { readonly float: number } | { readonly floats: ReadonlyArray<number> }

/** A node: op type, input names, output names, attributes. */
export interface NodeSpec {
  readonly op: string
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
  readonly attrs?: Readonly<Record<string, Attr>>
  readonly name?: string
}

/** A float32 tensor proto (raw little-endian data). */
export const floatTensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): TensorProto =>
  create(TensorProtoSchema, {
    name, dims: dims.map(BigInt), dataType: 1,
    rawData: new Uint8Array(Float32Array.from(data).buffer)
  })

/** An int64 tensor proto. */
export const intTensor = (name: string, dims: ReadonlyArray<number>, data: ReadonlyArray<number>): TensorProto =>
  create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: 7, int64Data: data.map(BigInt) })

const attr = (name: string, v: Attr): AttributeProto => {
  const enc = (s: string) => new TextEncoder().encode(s)
  if (typeof v === "number") {
    return Number.isInteger(v)
      ? create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) })
      : create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v })
  }
  if (typeof v === "string") return create(AttributeProtoSchema, { name, type: AT.STRING, s: enc(v) })
  if ("tensor" in v) return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: v.tensor })
  if ("float" in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.float })
  if ("floats" in v) return create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: [...v.floats] })
  const list = v as ReadonlyArray<number | string>
  if (list.length > 0 && typeof list[0] === "string") {
    return create(AttributeProtoSchema, { name, type: AT.STRINGS, strings: (list as ReadonlyArray<string>).map(enc) })
  }
  return create(AttributeProtoSchema, { name, type: AT.INTS, ints: (list as ReadonlyArray<number>).map(BigInt) })
}

const valueInfo = (name: string, shape: ReadonlyArray<number | string>, elemType = 1) =>
  create(ValueInfoProtoSchema, {
    name,
    type: {
      value: {
        case: "tensorType",
        value: {
          elemType,
          shape: {
            dim: shape.map((d) => ({ value: typeof d === "number" ? { case: "dimValue" as const, value: BigInt(d) } : { case: "dimParam" as const, value: d } }))
          }
        }
      }
    }
  })

/** A whole model. */
export interface ModelSpec {
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number | string>; readonly elemType?: number }>
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly shape?: ReadonlyArray<number | string> }>
  readonly nodes: ReadonlyArray<NodeSpec>
  readonly initializers?: ReadonlyArray<TensorProto>
  readonly opset?: number
}

/** Serialises a model to ONNX bytes. */
export const modelBytes = (spec: ModelSpec): Uint8Array => {
  const graph = create(GraphProtoSchema, {
    name: "g",
    node: spec.nodes.map((n, i) => create(NodeProtoSchema, {
      name: n.name ?? `${n.op}_${i}`, opType: n.op, input: [...n.inputs], output: [...n.outputs],
      attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v))
    })),
    initializer: [...(spec.initializers ?? [])],
    input: spec.inputs.map((i) => valueInfo(i.name, i.shape, i.elemType)),
    output: spec.outputs.map((o) => valueInfo(o.name, o.shape ?? []))
  })
  const model = create(ModelProtoSchema, {
    irVersion: 8n, producerName: "effect-ane tests", graph, opsetImport: [{ domain: "", version: BigInt(spec.opset ?? 17) }]
  })
  return toBinary(ModelProtoSchema, model)
}

/** A deterministic pseudo-random generator (mulberry32) for weights and inputs. */
export const rng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` values uniform in [−scale, scale). */
export const randoms = (n: number, seed: number, scale = 1): Float32Array => {
  const r = rng(seed)
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale)
}
