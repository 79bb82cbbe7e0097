/**
 * Deterministic generator of hostile MIL programs: random shapes with dims near every limit, splats of any size,
 * split counts, and literals past the range of their dtype. Program `i` depends only on `i` (seeded PRNG).
 */
import { mulberry32 } from "../../../src/cli/random.js"

/** A seedable PRNG returning floats in [0, 1). */
export const prng = mulberry32

// Dims as written: mostly small, sometimes at or past a limit (the engine's extents, int32, 2^53, 2^64, 1e400).
const hostileDims = [
  "0", "65536", "65537", "16384", "2147483647", "2147483648", "4294967296", "9007199254740991", "9007199254740992",
  "9007199254740993", "18446744073709551616", "1e400", "?", "s0", "1024", "100000"
]
// Scalar literals near the limits of their dtypes.
const hostileNumbers = [
  "0", "-0", "1", "-1", "2147483647", "-2147483648", "2147483648", "4294967296", "9007199254740993", "1e400", "-1e400",
  "65504", "65520", "0x1p-24", "0x1p+128", "nan", "inf", "-inf", "1e-400", "3.5"
]
const counts = ["1", "2", "3", "4", "0", "-1", "2147483647", "4294967296", "9007199254740993"]

/** One generated program: its text and a short label of what it stresses. */
export interface FuzzProgram {
  readonly text: string
  readonly label: string
}

/** The program with index `i` (same text for the same index, always). */
export const fuzzProgram = (i: number): FuzzProgram => {
  const r = prng(0x5eed0000 + i)
  const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(r() * xs.length)]!
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1))
  // A third of the programs are well formed apart from their values, so the compile and eval paths run too.
  const benign = r() < 0.35
  const dim = (): string => (benign || r() < 0.92 ? String(int(1, 8)) : pick(hostileDims))
  const shape = (rank = int(1, 5)): Array<string> => Array.from({ length: rank }, dim)
  const t = (dtype: string, s: ReadonlyArray<string>) => `tensor<${dtype}, [${s.join(", ")}]>`
  const dtype = () => pick(["fp16", "fp16", "fp16", "fp32", "fp32", "int32"])

  const inShape = shape()
  const inType = benign ? pick(["fp16", "fp32"]) : dtype()
  const lines: Array<string> = []
  let last = "x"
  let lastShape = inShape
  let lastType = inType
  const labels: Array<string> = []
  const nOps = int(1, 6)
  for (let k = 0; k < nOps; k++) {
    const name = `v${k}`
    const kind = benign ? pick([0, 5, 6, 6, 8, 9]) : int(0, 9)
    labels.push(String(kind))
    switch (kind) {
      case 0: { // a splat const of any shape, then an add
        const s = benign || r() < 0.5 ? lastShape : shape()
        const c = `c${k}`
        lines.push(`${t(lastType, s)} ${c} = const()[name = string("${c}"), val = ${t(lastType, s)}(${pick(hostileNumbers)})];`)
        lines.push(`${t(lastType, lastShape)} ${name} = add(x = ${last}, y = ${c})[name = string("${name}")];`)
        break
      }
      case 1: { // split with a count near the limits
        const n = pick(counts)
        const outs = Math.max(1, Math.min(4, int(1, 4)))
        const axis = int(-2, lastShape.length)
        const decls = Array.from({ length: outs }, (_, j) => `${t(lastType, shape(lastShape.length))} ${name}_${j}`)
        lines.push(`${decls.join(", ")} = split(x = ${last}, num_splits = int32(${n}), axis = int32(${axis}))[name = string("${name}")];`)
        last = `${name}_0`
        continue
      }
      case 2: { // reshape to a literal shape that may be huge or negative
        const target = shape(int(1, 4)).map((d) => (d === "?" || d.startsWith("s") ? "-1" : d))
        lines.push(`${t(lastType, shape(target.length))} ${name} = reshape(x = ${last}, shape = ${t("int32", [String(target.length)])}([${target.join(", ")}]))[name = string("${name}")];`)
        break
      }
      case 3: { // tile with reps near the limits
        const reps = lastShape.map(() => (r() < 0.7 ? String(int(1, 3)) : pick(counts)))
        lines.push(`${t(lastType, shape(lastShape.length))} ${name} = tile(x = ${last}, reps = ${t("int32", [String(reps.length)])}([${reps.join(", ")}]))[name = string("${name}")];`)
        break
      }
      case 4: { // range_1d with extreme bounds
        lines.push(`${t("fp32", [pick(["?", "4", "1e400", "2147483648"])])} ${name} = range_1d(end = fp32(${pick(hostileNumbers)}), start = fp32(${pick(hostileNumbers)}), step = fp32(${pick(hostileNumbers)}))[name = string("${name}")];`)
        continue
      }
      case 5: { // a one-value literal filling a tensor inline, as an argument
        const s = benign ? lastShape.slice(int(0, lastShape.length - 1)) : shape()
        lines.push(`${t(lastType, lastShape)} ${name} = mul(x = ${last}, y = ${t(lastType, s)}(${pick(hostileNumbers)}))[name = string("${name}")];`)
        break
      }
      case 6: { // elementwise on the running value
        lines.push(`${t(lastType, lastShape)} ${name} = ${pick(["relu", "sigmoid", "tanh", "exp", "sqrt", "abs"])}(x = ${last})[name = string("${name}")];`)
        break
      }
      case 7: { // slice with begin/size near the limits
        const begin = lastShape.map(() => (r() < 0.7 ? "0" : pick(hostileNumbers.filter((v) => /^-?\d+$/.test(v)))))
        const size = lastShape.map(() => (r() < 0.6 ? "-1" : pick(counts)))
        const n = String(lastShape.length)
        lines.push(`${t(lastType, shape(lastShape.length))} ${name} = slice_by_size(x = ${last}, begin = ${t("int32", [n])}([${begin.join(", ")}]), size = ${t("int32", [n])}([${size.join(", ")}]))[name = string("${name}")];`)
        break
      }
      case 8: { // concat of the value with itself along a random axis (declared right half of the time)
        const axis = benign ? int(-lastShape.length, lastShape.length - 1) : int(-1, lastShape.length)
        const doubled = lastShape.map((d, j) => (j === (axis < 0 ? axis + lastShape.length : axis) && /^\d+$/.test(d) ? String(2 * Number(d)) : d))
        lines.push(`${t(lastType, benign || r() < 0.5 ? doubled : shape(lastShape.length))} ${name} = concat(values = (${last}, ${last}), axis = int32(${axis}), interleave = bool(false))[name = string("${name}")];`)
        break
      }
      default: { // a softmax or reduction with an axis near the limits
        const axis = benign || r() < 0.8 ? String(int(-lastShape.length, lastShape.length - 1)) : pick(counts)
        lines.push(`${t(lastType, lastShape)} ${name} = softmax(x = ${last}, axis = int32(${axis}))[name = string("${name}")];`)
        break
      }
    }
    last = name
    if (!benign && r() < 0.1) lastShape = shape()
    if (!benign && r() < 0.1) lastType = dtype()
  }
  const text = `program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n` +
    `    func main<ios18>(${t(inType, inShape)} x) {\n` +
    lines.map((l) => `        ${l}\n`).join("") +
    `    } -> (${last});\n}\n`
  return { text, label: labels.join(",") }
}
