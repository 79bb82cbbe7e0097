/** I/O tensor layouts from a compiled model's `modelAttributes` dictionary (spec/native-protocol.md §6). */
import { CompileError, UnsupportedLayoutError } from "../schema/errors.js"
import { layoutProblem, TensorLayout } from "../schema/TensorLayout.js"
import { type Id, nil, type Objc } from "./objc.js"

/** One I/O tensor as the engine reports it: the layout plus the symbol index the request carries (§6.2, §7.3). */
export interface NativeTensor {
  readonly layout: TensorLayout
  /** Position of the tensor's symbol in the description's symbol array; -1 when unknown. */
  readonly symbolIndex: number
}

/** Inputs and outputs in LiveInputList / LiveOutputList order (§6.5). */
export interface NativeLayouts {
  readonly inputs: ReadonlyArray<NativeTensor>
  readonly outputs: ReadonlyArray<NativeTensor>
}

/** The plain values read from one tensor entry, before validation. */
export interface RawTensorEntry {
  readonly channels: number
  readonly width: number
  readonly height: number
  readonly rowStride: number
  readonly planeStride: number
  readonly type: string
  readonly name: string
  readonly symbol: string
}

const symbolPositions = (rt: Objc, description: Id, key: string): Map<string, number> => {
  const positions = new Map<string, number>()
  if (description === nil) return positions
  const array = rt.objectForKey(description, key)
  if (array === nil) return positions
  const n = rt.count(array)
  // A name repeated in the array resolves to its last position, as the engine's tables do (§6.2).
  for (let i = 0; i < n; i++) positions.set(rt.string(rt.objectAt(array, i)), i)
  return positions
}

const readEntry = (rt: Objc, entry: Id): RawTensorEntry => {
  const int = (key: string) => {
    const v = rt.objectForKey(entry, key)
    return v === nil ? 0 : rt.intValue(v)
  }
  const str = (key: string) => rt.string(rt.objectForKey(entry, key))
  return {
    channels: int("Channels"),
    width: int("Width"),
    height: int("Height"),
    rowStride: int("RowStride"),
    planeStride: int("PlaneStride"),
    type: str("Type"),
    name: str("Name"),
    symbol: str("Symbol")
  }
}

/**
 * Validates one raw entry (§6.4) into a tensor; `where` is e.g. `input[0]`. ElemSize is 4 only for "Float32"
 * (every other type string is taken as fp16, the engine's default).
 */
export const tensorFromEntry = (
  raw: RawTensorEntry,
  where: string,
  positions: ReadonlyMap<string, number>,
  op: string
): NativeTensor | UnsupportedLayoutError => {
  const elemSize = raw.type === "Float32" ? 4 : 2
  const fields = { ...raw, elemSize }
  const problem = layoutProblem(fields)
  if (problem !== undefined) {
    return new UnsupportedLayoutError({ op, tensor: `${where}${raw.name ? ` (${raw.name})` : ""}`, reason: problem })
  }
  const key = raw.symbol !== "" ? raw.symbol : raw.name
  const symbolIndex = key === "" ? -1 : (positions.get(key) ?? -1)
  const layout = TensorLayout.make({
    name: raw.name,
    symbol: raw.symbol,
    channels: raw.channels,
    width: raw.width,
    height: raw.height,
    elemSize,
    rowStride: raw.rowStride,
    planeStride: raw.planeStride
  })
  return { layout, symbolIndex }
}

/** Parses and validates the attributes dictionary; must run inside an autorelease pool. */
export const parseLayouts = (
  rt: Objc,
  attributes: Id,
  op: string,
  model: string
): NativeLayouts | UnsupportedLayoutError | CompileError => {
  const fail = (hint: string) => new CompileError({ op, model, diagnostics: [], hint: `parse model layouts: ${hint}` })
  if (attributes === nil) return fail("model attributes are nil")
  const status = rt.objectForKey(attributes, "NetworkStatusList")
  if (status === nil) return fail("no NetworkStatusList in model attributes")
  if (rt.count(status) === 0) return fail("empty NetworkStatusList")
  // Only the first procedure is used.
  const first = rt.objectAt(status, 0)
  const description = rt.objectForKey(attributes, "ANEFModelDescription")
  const sides = [
    { list: "LiveInputList", symbols: "kANEFModelInputSymbolsArrayKey", label: "input" },
    { list: "LiveOutputList", symbols: "kANEFModelOutputSymbolsArrayKey", label: "output" }
  ] as const
  const out: Array<Array<NativeTensor>> = []
  for (const side of sides) {
    const list = rt.objectForKey(first, side.list)
    if (list === nil) return fail(`no ${side.list} in model attributes`)
    const positions = symbolPositions(rt, description, side.symbols)
    const tensors: Array<NativeTensor> = []
    const n = rt.count(list)
    for (let i = 0; i < n; i++) {
      const t = tensorFromEntry(readEntry(rt, rt.objectAt(list, i)), `${side.label}[${i}]`, positions, op)
      if (t instanceof UnsupportedLayoutError) return t
      tensors.push(t)
    }
    out.push(tensors)
  }
  return { inputs: out[0]!, outputs: out[1]! }
}
