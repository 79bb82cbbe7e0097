/** MIL programs the service tests compile on the simulator. */
import { CompileOptions } from "../../src/schema/CompileOptions.js"

/** `y = x + x` over an fp16 `[1, C, 1, W]` tensor (64 × 512 fp16 = 64 KiB, above the engine's small-surface floor). */
export const doubleText = (channels = 64, width = 512) => `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, ${channels}, 1, ${width}]> x) {
        tensor<fp16, [1, ${channels}, 1, ${width}]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
`

export const double = (channels = 64, width = 512) => CompileOptions.mil({ text: doubleText(channels, width) })

/** Small exactly-representable values, distinct per element and per `seed`. */
export const pattern = (n: number, seed = 0) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13) % 512) - 256)
