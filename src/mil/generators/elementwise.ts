/**
 * Single elementwise ops on one shape: `binary` (two inputs, or one input and a scalar) and `unary`.
 * Supported shapes: rank 1..5, each dim ≥ 1, last dim ≤ 16384, other dims ≤ 65536.
 */
import { buildSync, type Builder, type Tensor } from "../build.js"
import { buildOptions, type CommonOptions, type Generated, MAX_CHANNELS, MAX_SPATIAL, needInt, needThat } from "./common.js"

/** Binary ops {@link binary} emits. */
export type BinaryOp = "add" | "sub" | "mul" | "real_div" | "maximum" | "minimum" | "pow"
/** Unary ops {@link unary} emits. */
export type UnaryOp = "relu" | "sigmoid" | "tanh" | "exp" | "sqrt" | "abs" | "square" | "silu"

const binaries: Record<BinaryOp, (b: Builder, x: Tensor, y: Tensor | number) => Tensor> = {
  add: (b, x, y) => b.add(x, y, { name: "z" }),
  sub: (b, x, y) => b.sub(x, y, { name: "z" }),
  mul: (b, x, y) => b.mul(x, y, { name: "z" }),
  real_div: (b, x, y) => b.realDiv(x, y, { name: "z" }),
  maximum: (b, x, y) => b.maximum(x, y, { name: "z" }),
  minimum: (b, x, y) => b.minimum(x, y, { name: "z" }),
  pow: (b, x, y) => b.pow(x, y, { name: "z" })
}

const unaries: Record<UnaryOp, (b: Builder, x: Tensor) => Tensor> = {
  relu: (b, x) => b.relu(x, { name: "z" }),
  sigmoid: (b, x) => b.sigmoid(x, { name: "z" }),
  tanh: (b, x) => b.tanh(x, { name: "z" }),
  exp: (b, x) => b.exp(x, { name: "z" }),
  sqrt: (b, x) => b.sqrt(x, { name: "z" }),
  abs: (b, x) => b.abs(x, { name: "z" }),
  square: (b, x) => b.square(x, { name: "z" }),
  silu: (b, x) => b.silu(x, { name: "z" })
}

const checkShape = (op: string, shape: ReadonlyArray<number>): void => {
  needThat(op, "shape", shape.length >= 1 && shape.length <= 5, "rank 1..5", `rank ${shape.length}`)
  shape.forEach((d, i) => needInt(op, `shape[${i}]`, d, 1, i === shape.length - 1 ? MAX_SPATIAL : MAX_CHANNELS))
}

/** Options of {@link binary}. */
export interface BinaryOptions extends CommonOptions {
  readonly op: BinaryOp
  readonly shape: ReadonlyArray<number>
  /** A constant right operand instead of the second input `y`. */
  readonly scalar?: number
}

/** Inputs `x`, `y` (or a scalar) of `shape` → `z = x op y`. */
export const binary = (o: BinaryOptions): Generated => {
  const op = "Generators.binary"
  needThat(op, "op", o.op in binaries, Object.keys(binaries).join(", "), String(o.op))
  checkShape(op, o.shape)
  if (o.scalar !== undefined) needThat(op, "scalar", Number.isFinite(o.scalar), "a finite number", String(o.scalar))
  return buildSync(buildOptions(op, o), (b) => {
    const x = b.input("x", "fp16", o.shape)
    const y = o.scalar !== undefined ? o.scalar : b.input("y", "fp16", o.shape)
    return { z: binaries[o.op](b, x, y) }
  })
}

/** Options of {@link unary}. */
export interface UnaryOptions extends CommonOptions {
  readonly op: UnaryOp
  readonly shape: ReadonlyArray<number>
}

/** Input `x` of `shape` → `z = op(x)`. */
export const unary = (o: UnaryOptions): Generated => {
  const op = "Generators.unary"
  needThat(op, "op", o.op in unaries, Object.keys(unaries).join(", "), String(o.op))
  checkShape(op, o.shape)
  return buildSync(buildOptions(op, o), (b) => ({ z: unaries[o.op](b, b.input("x", "fp16", o.shape)) }))
}
