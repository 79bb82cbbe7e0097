/** Shared by the weight-path tests of the CLI, the simulator and the hardware backend (docs/security.md). */
import { writeBlobFile } from "../src/mil/blob.js"

/** Values of the "secret" blob outside the model: read, they would flow into the outputs or an error message. */
export const SECRET_VALUES = [1234, 2345, 3456, 4567]

/** A valid fp16 weight blob of `values`. */
export const blob = (values: ReadonlyArray<number>): Uint8Array => {
  const b = writeBlobFile([{ dtype: "fp16", data: values }])
  if (!("bytes" in b)) throw b
  return b.bytes
}

/** A program scaling `x` [1, 4, 1, 32] by four fp16 weights read from `path` at offset 64. */
export const scaleBy = (path: string): string => `program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
    tensor<fp16, [1, 4, 1, 1]> s = const()[name = string("s"), val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = string("${path}"), offset = uint64(64)))];
    tensor<fp16, [1, 4, 1, 32]> y = mul(x = x, y = s)[name = string("y")];
  } -> (y);
}
`
