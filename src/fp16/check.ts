/** Argument checks for typed tensor I/O, run before any surface memory is touched. */
import { InvalidArgumentError } from "../schema/errors.js"
import { layoutProblem, type TensorLayout } from "../schema/TensorLayout.js"

const describe = (x: number): string => (Number.isNaN(x) ? "NaN" : String(x))

/**
 * The first thing wrong with a typed read or write of tensor `what[index]`, or undefined when it is safe:
 * the layout itself, `channelStart` (integer in 0..C), `channelCount` (integer, channelStart + channelCount ≤ C;
 * defaults to the remaining channels), the data `length` (must be channelCount × H × W) and, when given, the byte
 * length of the surface view (at least `layout.allocSize`).
 */
export const checkTensorIo = (
  op: string,
  layout: TensorLayout,
  what: "input" | "output",
  index: number,
  length: number,
  channelStart?: number,
  channelCount?: number,
  surfaceByteLength?: number
): InvalidArgumentError | undefined => {
  const name = `${what}[${index}]`
  const bad = (argument: string, expected: string, actual: string, hint?: string) =>
    new InvalidArgumentError(hint === undefined ? { op, argument, expected, actual } : { op, argument, expected, actual, hint })
  const problem = layoutProblem(layout)
  if (problem !== undefined) return bad(`${name} layout`, "a layout the engine could report", problem)
  const C = layout.channels
  const start = channelStart ?? 0
  if (!Number.isInteger(start) || start < 0 || start > C) {
    return bad(`${name} channelStart`, `an integer in 0..${C}`, describe(start))
  }
  const count = channelCount ?? C - start
  if (!Number.isInteger(count) || count < 0) {
    return bad(`${name} channelCount`, "a non-negative integer", describe(count))
  }
  if (start + count > C) {
    return bad(`${name} channelCount`, `at most ${C - start} (channels [${start}, ${start + count}) must lie in [0, ${C}))`,
      String(count))
  }
  const expected = count * layout.height * layout.width
  if (length !== expected) {
    return bad(`${name} length`,
      `${expected} elements (${count} channel(s) × H ${layout.height} × W ${layout.width})`, String(length),
      length % (layout.height * layout.width) === 0 && length > 0 && channelCount === undefined && channelStart === undefined
        ? `that is ${length / (layout.height * layout.width)} channel(s); pass channelStart/channelCount for a subset`
        : undefined)
  }
  if (surfaceByteLength !== undefined && surfaceByteLength < layout.allocSize) {
    return bad(`${name} surface`, `a view of at least ${layout.allocSize} bytes (the layout's allocSize)`,
      `${surfaceByteLength} bytes`)
  }
  return undefined
}
