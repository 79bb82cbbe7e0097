/**
 * Host-side layout helpers for the generated programs: tokens × features (row-major [seq, dim], PyTorch's layout)
 * to and from the channel-first `[1, dim, 1, seq]` the programs take (spec §6, §7.1).
 */
import { InvalidArgumentError } from "../../schema/errors.js"

const check = (op: string, x: ArrayLike<number>, seq: number, dim: number): void => {
  if (!Number.isInteger(seq) || seq < 1 || !Number.isInteger(dim) || dim < 1) {
    throw new InvalidArgumentError({ op, argument: "seq, dim", expected: "positive integers", actual: `${seq}, ${dim}` })
  }
  if (x.length !== seq * dim) {
    throw new InvalidArgumentError({ op, argument: "x", expected: `${seq * dim} values (${seq}×${dim})`, actual: `${x.length} values` })
  }
}

/** Row-major [seq, dim] → channel-first [dim, seq]: out[i·seq + t] = x[t·dim + i]. */
export const toChannelFirst = (x: ArrayLike<number>, seq: number, dim: number): Float32Array => {
  check("toChannelFirst", x, seq, dim)
  const out = new Float32Array(seq * dim)
  for (let t = 0; t < seq; t++) for (let i = 0; i < dim; i++) out[i * seq + t] = x[t * dim + i]!
  return out
}

/** Channel-first [dim, seq] → row-major [seq, dim]: out[t·dim + i] = x[i·seq + t]. */
export const fromChannelFirst = (x: ArrayLike<number>, seq: number, dim: number): Float32Array => {
  check("fromChannelFirst", x, seq, dim)
  const out = new Float32Array(seq * dim)
  for (let i = 0; i < dim; i++) for (let t = 0; t < seq; t++) out[t * dim + i] = x[i * seq + t]!
  return out
}
