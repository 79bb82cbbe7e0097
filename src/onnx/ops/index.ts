/** Every ONNX op the importer converts, by op type (default domain). `If` is handled by the graph walker. */
import type { Converter } from "../context.js"
import { elementwiseOps } from "./elementwise.js"
import { nnOps } from "./nn.js"
import { resizeOps } from "./resize.js"
import { rnnOps } from "./rnn.js"
import { shapeOps } from "./shape.js"

/** Converters by ONNX op type. */
export const converters: Readonly<Record<string, Converter>> = {
  ...elementwiseOps,
  ...shapeOps,
  ...nnOps,
  ...rnnOps,
  ...resizeOps
}

/** The supported op types, sorted (for errors and docs). */
export const supportedOnnxOps: ReadonlyArray<string> = [...Object.keys(converters), "If"].sort()
