/**
 * The graph walker: binds inputs (fixed shapes, or values given at import), folds constants, inlines `If` branches
 * whose condition is known, converts each node, and names outputs; produces the MIL program and its metadata.
 */
import type { GraphProto, ModelProto, NodeProto, ValueInfoProto } from "onnx-buf"
import { buildSync, type Built } from "../mil/build.js"
import type { Builder } from "../mil/build.js"
import { CompileError, ImportError } from "../schema/errors.js"
import { formatDiagnostic } from "../schema/Diagnostic.js"
import { milIdent, NodeCtx, type Shared, Stop } from "./context.js"
import { converters, supportedOnnxOps } from "./ops/index.js"
import { foldBatchNormIntoConv } from "./ops/nn.js"
import { ELEMENT_TYPES, type ExternalReader, type Fail, MAX_GRAPH_DEPTH, tensorData } from "./read.js"
import { type Const, constant, type Kind, size, type Value } from "./values.js"

/** Options of a conversion. */
export interface ConvertOptions {
  /** Fixed shapes of inputs whose ONNX shape has symbolic or missing dims. */
  readonly shapes?: Readonly<Record<string, ReadonlyArray<number>>>
  /** Inputs fixed to a value at import (they leave the program), e.g. Silero's `sr: [16000]`. */
  readonly inputValues?: Readonly<Record<string, ReadonlyArray<number>>>
  /** The program's float type and weight storage: "fp16" (default) or "fp32". */
  readonly precision?: "fp16" | "fp32"
}

/** One program input or output, with its ONNX and MIL names. */
export interface IoSpec {
  readonly onnxName: string
  readonly milName: string
  readonly onnxType: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  /** Index the engine binds it at (inputs and outputs are bound sorted by MIL name). */
  readonly index: number
}

/** What an import describes about the model: written as metadata.json beside the program. */
export interface ImportMetadata {
  readonly format: "effect-ane/onnx-import@1"
  readonly source: string
  readonly producer: string
  readonly opsets: Readonly<Record<string, number>>
  readonly precision: "fp16" | "fp32"
  readonly inputs: ReadonlyArray<IoSpec>
  readonly outputs: ReadonlyArray<IoSpec>
  readonly fixedInputs: Readonly<Record<string, ReadonlyArray<number>>>
}

/** A converted model. */
export interface Converted {
  readonly built: Built
  readonly metadata: ImportMetadata
  /** MIL op (result) name → the ONNX node it came from. */
  readonly nodeOrigins: Readonly<Record<string, string>>
}

const elemOf = (vi: ValueInfoProto) =>
  vi.type?.value.case === "tensorType" ? vi.type.value.value : undefined

const MIL_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * The MIL names of a graph's program inputs and outputs: an ONNX name that is a valid MIL identifier is kept as it
 * is, so a model's I/O answers to its ONNX names; any other is sanitised (`input.1` → `input_1`) and, if that is
 * taken, numbered (`input_1_1`). Verbatim names are claimed first, so a sanitised name never displaces one.
 */
export const ioMilNames = (
  inputs: ReadonlyArray<string>,
  outputs: ReadonlyArray<string>
): { readonly inputs: ReadonlyArray<string>; readonly outputs: ReadonlyArray<string> } => {
  const all = [...inputs, ...outputs]
  const out = new Array<string | undefined>(all.length)
  const used = new Set<string>()
  all.forEach((n, i) => {
    if (MIL_IDENT.test(n) && !used.has(n)) {
      used.add(n)
      out[i] = n
    }
  })
  all.forEach((n, i) => {
    if (out[i] !== undefined) return
    const base = milIdent(n)
    let candidate = base
    for (let k = 1; used.has(candidate); k++) candidate = `${base}_${k}`
    used.add(candidate)
    out[i] = candidate
  })
  return { inputs: out.slice(0, inputs.length) as Array<string>, outputs: out.slice(inputs.length) as Array<string> }
}

/** How often each name is read in `g`: node inputs, graph outputs, and (counted as reads) anything a subgraph reads. */
const useCounts = (g: GraphProto): Map<string, number> => {
  const uses = new Map<string, number>()
  const add = (n: string) => {
    if (n !== "") uses.set(n, (uses.get(n) ?? 0) + 1)
  }
  const visit = (graph: GraphProto, depth: number) => {
    if (depth > MAX_GRAPH_DEPTH) return
    for (const node of graph.node) {
      for (const i of node.input) add(i)
      for (const a of node.attribute) {
        if (a.g !== undefined) visit(a.g, depth + 1)
        for (const sg of a.graphs) visit(sg, depth + 1)
      }
    }
    for (const o of graph.output) add(o.name)
  }
  visit(g, 0)
  return uses
}

const attrOf = (node: NodeProto, name: string) => node.attribute.find((a) => a.name === name)

/**
 * When node `k` is a Conv with constant weights whose output only a BatchNormalization (inference form, constant
 * parameters) reads, the Conv's inputs with that normalisation folded into its weights and bias, and the index of
 * the BatchNormalization, which then adds nothing to the program.
 */
const convBatchNorm = (
  g: GraphProto,
  k: number,
  inputs: ReadonlyArray<Value | undefined>,
  uses: ReadonlyMap<string, number>,
  lookup: (name: string) => Value | undefined
): { readonly bn: number; readonly inputs: ReadonlyArray<Value | undefined> } | undefined => {
  const out = g.node[k]!.output[0]
  if (out === undefined || out === "" || uses.get(out) !== 1) return undefined
  const j = g.node.findIndex((n, i) => i > k && n.input[0] === out)
  const bn = g.node[j]
  if (bn === undefined || bn.opType !== "BatchNormalization" || (bn.domain !== "" && bn.domain !== "ai.onnx")) return undefined
  if (bn.output.slice(1).some((o) => o !== "") || Number(attrOf(bn, "training_mode")?.i ?? 0n) !== 0) return undefined
  if (Number(attrOf(bn, "spatial")?.i ?? 1n) !== 1) return undefined
  const w = inputs[1], b = inputs[2]
  if (w?.tag !== "const" || (b !== undefined && b.tag !== "const")) return undefined
  const params = [1, 2, 3, 4].map((i) => (bn.input[i] ? lookup(bn.input[i]!) : undefined))
  if (params.some((p) => p?.tag !== "const")) return undefined
  const [scale, bias, mean, variance] = params as Array<Const>
  const folded = foldBatchNormIntoConv(w, b, {
    scale: scale!, bias: bias!, mean: mean!, variance: variance!, epsilon: attrOf(bn, "epsilon")?.f ?? 1e-5
  })
  return folded === undefined ? undefined : { bn: j, inputs: [inputs[0], folded.w, folded.b] }
}

const bindingOrder = (names: ReadonlyArray<string>): Map<string, number> =>
  new Map([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((n, i) => [n, i]))

/** Converts a decoded model; failures are ImportErrors. */
export const convert = (
  model: ModelProto, file: string, fail: Fail, external: ExternalReader | undefined, options: ConvertOptions = {}
): Converted | ImportError => {
  const graph = model.graph!
  const precision = options.precision ?? "fp16"
  const opsets = new Map<string, number>()
  for (const o of model.opsetImport) opsets.set(o.domain === "ai.onnx" ? "" : o.domain, Number(o.version))
  if (!opsets.has("")) opsets.set("", 1)
  const inputsMeta: Array<Omit<IoSpec, "index">> = []
  const outputsMeta: Array<Omit<IoSpec, "index">> = []
  const fixedInputs: Record<string, ReadonlyArray<number>> = {}
  const origins = new Map<string, string>()
  const decode: Shared["decode"] = (t, what) => tensorData(t, what, fail, external)

  const body = (b: Builder) => {
    const shared: Shared = {
      b, dtype: precision, fail, opsets, origins, usedNames: new Set(), materialised: new WeakMap(), decode
    }
    const stop = (reason: string, hint?: string): never => {
      throw new Stop(fail(reason, hint !== undefined ? { hint } : {}))
    }
    const scope = new Map<string, Value>()
    const inputTensorIds = new Set<number>()
    const initNames = new Set(graph.initializer.map((t) => t.name))
    const programInputs = graph.input.filter((vi) => !initNames.has(vi.name) && options.inputValues?.[vi.name] === undefined)
    const ioNames = ioMilNames(programInputs.map((vi) => vi.name), graph.output.map((vi) => vi.name))
    const inputMilName = new Map(programInputs.map((vi, i) => [vi, ioNames.inputs[i]!]))
    for (const init of graph.initializer) {
      const d = tensorData(init, `initializer "${init.name}"`, fail, external)
      if (d instanceof ImportError) throw new Stop(d)
      scope.set(init.name, { tag: "const", kind: d.kind, shape: d.shape, data: d.data })
    }
    for (const vi of graph.input) {
      if (initNames.has(vi.name)) continue
      const tt = elemOf(vi)
      const type = tt === undefined ? undefined : ELEMENT_TYPES[tt.elemType]
      if (type === undefined) stop(`input "${vi.name}" is not a tensor of a supported element type`)
      const fixed = options.inputValues?.[vi.name]
      const given = options.shapes?.[vi.name]
      const dims = tt!.shape?.dim ?? []
      let shape: Array<number>
      if (given !== undefined) {
        if (given.length !== dims.length && tt!.shape !== undefined) {
          stop(`the shape given for input "${vi.name}" has rank ${given.length}, the model declares rank ${dims.length}`)
        }
        shape = [...given]
      } else if (fixed !== undefined && dims.length <= 1) {
        shape = dims.length === 0 ? [] : [fixed.length]
      } else {
        if (tt!.shape === undefined) stop(`input "${vi.name}" has no declared shape`, `give one: --shape ${vi.name}=…`)
        shape = dims.map((d, i) => {
          if (d.value.case === "dimValue" && d.value.value > 0n) return Number(d.value.value)
          const label = d.value.case === "dimParam" ? `"${d.value.value}"` : "unknown"
          return stop(`input "${vi.name}" has a symbolic dimension ${label} at axis ${i}`,
            `fix it: --shape ${vi.name}=${dims.map((x) => (x.value.case === "dimValue" ? String(x.value.value) : "N")).join(",")} ` +
            `(API: shapes: { "${vi.name}": [...] })`)
        })
      }
      if (shape.some((d) => !Number.isInteger(d) || d < 1) || size(shape) > 2 ** 28) {
        stop(`the shape [${shape.join(", ")}] of input "${vi.name}" is not a list of positive dims`)
      }
      if (fixed !== undefined) {
        if (fixed.length !== size(shape)) stop(`the value given for input "${vi.name}" has ${fixed.length} elements, its shape [${shape.join(", ")}] needs ${size(shape)}`)
        scope.set(vi.name, constant(type!.kind, shape, fixed))
        fixedInputs[vi.name] = [...fixed]
        continue
      }
      const milName = inputMilName.get(vi)!
      shared.usedNames.add(milName)
      const dtype = type!.kind === "float" ? precision : type!.kind === "int" ? "int32" : "bool"
      const t = b.input(milName, dtype, shape)
      inputTensorIds.add(t.id)
      scope.set(vi.name, { tag: "dyn", kind: type!.kind, shape, t })
      inputsMeta.push({ onnxName: vi.name, milName, onnxType: type!.name, dtype, shape })
    }
    for (const n of ioNames.outputs) shared.usedNames.add(n)

    const walk = (g: GraphProto, env: Map<string, Value>, depth: number): ReadonlyArray<Value> => {
      if (depth > MAX_GRAPH_DEPTH) stop(`subgraphs nest deeper than ${MAX_GRAPH_DEPTH}`)
      const lookup = (name: string): Value | undefined => {
        for (let e: Map<string, Value> | undefined = env; e !== undefined; e = parents.get(e)) {
          const v = e.get(name)
          if (v !== undefined) return v
        }
        return undefined
      }
      for (const init of depth > 0 ? g.initializer : []) {
        const d = tensorData(init, `initializer "${init.name}"`, fail, external)
        if (d instanceof ImportError) throw new Stop(d)
        env.set(init.name, { tag: "const", kind: d.kind, shape: d.shape, data: d.data })
      }
      const uses = useCounts(g)
      const folded = new Set<number>()
      for (let k = 0; k < g.node.length; k++) {
        if (folded.has(k)) continue
        const node = g.node[k]!
        const nodeName = node.name || node.output[0] || node.opType
        const domain = node.domain === "ai.onnx" ? "" : node.domain
        const inputs = node.input.map((n) => {
          if (n === "") return undefined
          const v = lookup(n)
          if (v === undefined) {
            throw new Stop(fail(`input "${n}" is not produced by any earlier node or initializer`, { node: nodeName, opType: node.opType }))
          }
          return v
        })
        const converter = domain === "" ? converters[node.opType] : undefined
        let results: ReadonlyArray<Value | undefined>
        if (domain === "" && node.opType === "If") {
          const ctx = new NodeCtx(shared, node, inputs, () => [])
          const cond = ctx.in(0, "cond")
          if (cond.tag !== "const" || cond.data.length !== 1) {
            return ctx.fail("the condition must be known at import", "fix the inputs it depends on (shapes or inputValues)")
          }
          const branch = ctx.graph((cond as Const).data[0] !== 0 ? "then_branch" : "else_branch")
          const child = new Map<string, Value>()
          parents.set(child, env)
          results = walk(branch, child, depth + 1)
        } else if (converter === undefined) {
          throw new Stop(fail(`op ${domain === "" ? "" : `${domain}.`}${node.opType} (opset ${opsets.get(domain) ?? "?"}) is not supported`, {
            node: nodeName, opType: node.opType,
            hint: `supported: ${supportedOnnxOps.join(", ")}`
          }))
        } else {
          const fused = node.opType === "Conv" ? convBatchNorm(g, k, inputs, uses, lookup) : undefined
          if (fused === undefined) results = converter(new NodeCtx(shared, node, inputs, () => []))
          else {
            // Conv then BatchNormalization as one conv: the normalisation lives in the weights (no mul/add ops).
            results = converter(new NodeCtx(shared, node, fused.inputs, () => []))
            folded.add(fused.bn)
            const y = g.node[fused.bn]!.output[0]!
            if (results[0] !== undefined) env.set(y, results[0])
          }
        }
        node.output.forEach((name, i) => {
          const v = results[i]
          if (name !== "" && v !== undefined) env.set(name, v)
        })
      }
      return g.output.map((o) => {
        const v = lookup(o.name)
        if (v === undefined) return stop(`graph output "${o.name}" is never produced`)
        return v
      })
    }
    const parents = new WeakMap<Map<string, Value>, Map<string, Value>>()
    const outs = walk(graph, scope, 0)
    const result: Record<string, import("../mil/build.js").Tensor> = {}
    const usedAsOutput = new Set<number>()
    graph.output.forEach((vi, i) => {
      const v = outs[i]!
      const key = ioNames.outputs[i]!
      const ctx = new NodeCtx(shared, { ...graph.node[0]!, name: `output ${vi.name}`, opType: "output" } as never, [], () => [])
      let t = ctx.tensor(v)
      // An output must be an op result of its own: pass inputs and repeated values through identity.
      if (inputTensorIds.has(t.id) || usedAsOutput.has(t.id) || v.tag === "const") {
        t = b.op("identity", { x: t }, { dtype: t.dtype, shape: t.shape })
      }
      usedAsOutput.add(t.id)
      result[key] = t
      const type = ELEMENT_TYPES[elemOf(vi)?.elemType ?? 1]
      outputsMeta.push({ onnxName: vi.name, milName: key, onnxType: type?.name ?? "float", dtype: t.dtype, shape: t.shape })
    })
    return result
  }

  try {
    if (graph.node.length === 0) return fail("the graph has no nodes")
    const built = buildSync({ opset: "ios18", weightThreshold: 16 }, body)
    const inOrder = bindingOrder(inputsMeta.map((s) => s.milName))
    const outOrder = bindingOrder(outputsMeta.map((s) => s.milName))
    return {
      built,
      metadata: {
        format: "effect-ane/onnx-import@1",
        source: file,
        producer: `${model.producerName} ${model.producerVersion}`.trim(),
        opsets: Object.fromEntries(opsets),
        precision,
        inputs: inputsMeta.map((s) => ({ ...s, index: inOrder.get(s.milName)! })),
        outputs: outputsMeta.map((s) => ({ ...s, index: outOrder.get(s.milName)! })),
        fixedInputs
      },
      nodeOrigins: Object.fromEntries(origins)
    }
  } catch (e) {
    if (e instanceof Stop) return e.error
    if (e instanceof CompileError) {
      return fail(`the converted program does not type-check:\n  ${e.diagnostics.slice(0, 5).map(formatDiagnostic).join("\n  ")}`, { cause: e })
    }
    if (e instanceof RangeError) return fail(`the model is too large or too deeply nested to convert (${e.message})`, { cause: e })
    throw e
  }
}

export type { Const, Kind }
