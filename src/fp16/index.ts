/** fp16 numerics and strided surface I/O: the base layer every backend uses to move tensors in and out. */
export { checkTensorIo } from "./check.js"
export { fp16KernelKind, useJsFallback, wasmSimdAvailable } from "./kernels.js"
export { f32BitsToFp16, float32ToFp16, float32ToFp16Truncate, fp16ToF32Bits, fp16ToFloat32 } from "./scalar.js"
export { readF32, readFp16, writeF32, writeFp16 } from "./surface.js"
