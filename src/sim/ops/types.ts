/** The contract between the simulator's planner and its op implementations. */
import type { Operation } from "../../mil/ast.js"

/**
 * One value of the planned program. Every tensor is held as float32 (fp16 values are exact in float32; integer and
 * bool tensors hold their integer values, exact below 2^24). Strings appear only as constant scalars.
 */
export interface Val {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly dtype: string
  data: Float32Array
  /** Known at compile time (a const, a constexpr, or folded from constants). */
  readonly isConst: boolean
  /** The value of a string scalar. */
  readonly str?: string
}

/** A problem found while planning an op; the planner turns it into a positioned CompileError diagnostic. */
export class OpError extends Error {
  constructor(message: string, readonly code = "SIM-OP") {
    super(message)
  }
}

/** Declared type of an op output. */
export interface OutType {
  readonly shape: ReadonlyArray<number>
  readonly dtype: string
}

/** What an op implementation sees while it is planned. */
export interface OpCtx {
  readonly op: Operation
  readonly opset: string | null
  /** numerics "exact": no fp16 rounding, no engine cliffs. */
  readonly exact: boolean
  /** Largest buffer, in bytes, one tensor or kernel working buffer may take (SimulatorOptions.maxTensorBytes). */
  readonly maxTensorBytes: number
  readonly nOut: number
  /** True when the argument (or attribute) is present. */
  has(name: string): boolean
  /** A required tensor argument. */
  val(name: string): Val
  /** An optional tensor argument. */
  opt(name: string): Val | undefined
  /** A tuple argument such as `values = (a, b)`. */
  tuple(name: string): ReadonlyArray<Val>
  /** A compile-time integer vector (scalars give one element). */
  ints(name: string, dflt?: ReadonlyArray<number>): Array<number>
  /** A compile-time number. */
  num(name: string, dflt?: number): number
  /** A compile-time string. */
  str(name: string, dflt?: string): string
  /** A compile-time bool. */
  bool(name: string, dflt?: boolean): boolean
  /** The declared type of output `i`. */
  outType(i: number): OutType
  /** Output `i` with its own preallocated buffer. */
  alloc(i: number): Val
  /** Output `i` sharing `data` with an input (reshape-like ops). */
  alias(i: number, of: Val): Val
  /** A scratch buffer owned by this op. */
  scratch(n: number): Float32Array
}

/** The per-eval work of a planned op; undefined when planning did all the work. */
export type Run = () => void

/** An op implementation: validates, allocates, and returns its per-eval work. */
export type OpImpl = (ctx: OpCtx) => Run | undefined
