/**
 * Numeric kernels of the ANE simulator: pure fp32 math over typed arrays with explicit shapes, no MIL knowledge.
 *
 * Conventions every kernel follows:
 * - Data is row-major; fp32 tensors are Float32Array, indices Int32Array; movement kernels take any typed array.
 * - Shape-dependent ops have a `plan*` step (run once per shape set: the MIL graph is static) that checks the
 *   shapes, returns `Either<Plan, InvalidArgumentError>`, and allocates any scratch; the kernel then writes into a
 *   caller-provided output (sized `sizeOf(plan.outShape)`) and allocates nothing. Kernels trust their plan and do
 *   not re-check array lengths.
 * - Sums (matmul, conv, reductions, norms) accumulate in fp32, one rounding per operation, in index order. Output
 *   rounding to fp16 (`numerics.ts` roundArrayToFp16, applyMatmulCliff) is the interpreter's job in "ane" mode.
 * - Contractions run on a WebAssembly SIMD GEMM, or a bit-identical JS fallback (`setKernelBackend("js")` or
 *   `EFFECT_ANE_SIM_KERNELS=js`); with fused multiply-add (relaxed SIMD, where the engine has it) the wasm GEMM
 *   rounds each product with its sum once, so it agrees with the fallback within the fp32 accumulation bound.
 *   Constant weights are packed once (`packB`); large products are split across worker threads.
 * - Ops that are pure reshapes (reshape, expand_dims, squeeze) need no kernel; stack is concat over the values
 *   viewed with a unit dim inserted at the axis; slice_by_size is planSlice with end = begin + size.
 */

export {
  fmaActive, fmaAvailable, gemm, gemmPacked, type KernelBackend, kernelBackend, packB, type PackedB, setFma,
  setKernelBackend, wasmAvailable
} from "./gemm.js"
export {
  gemmThreads, readyGemmWorkers, retainGemmWorkers, runningGemmWorkers, setGemmThreads, splitProducts,
  terminateGemmWorkers
} from "./gemm-workers.js"
export {
  broadcastShapes, broadcastStrides, checkShape, normAxes, normAxis, type NumArray, type Shape, sizeOf, stridesOf
} from "./shape.js"
export { linear, matmul, type MatmulPlan, packLinearWeight, packMatmulY, planMatmul } from "./matmul.js"
export {
  conv, type ConvOptions, type ConvPlan, convTranspose, type ConvTransposeOptions, packConvWeight, planConv,
  planConvTranspose
} from "./conv.js"
export { avgPool, maxPool, planPool, type PoolOptions, type PoolPlan } from "./pool.js"
export {
  binary, type BinaryOp, type BroadcastPlan, erf, planBroadcast, select, unary, type UnaryOp, type UnaryParams
} from "./elementwise.js"
export {
  argReduce, type AxisSplit, batchNorm, instanceNorm, l2Norm, layerNorm, planArgReduce, planReduce, reduce,
  type ReduceOp, type ReducePlan, rmsNorm, softmax, splitAtAxis
} from "./reduce.js"
export {
  mappedCopy, type MappedPlan, type PadMode, planDepthToSpace, planPad, planPixelShuffle, planSlice,
  planSpaceToDepth, planTile, planTranspose, type SliceOptions, stridedCopy, stridedScatter, type StridedPlan
} from "./layout.js"
export {
  type AlongAxisPlan, concat, type ConcatPlan, gather, gatherAlongAxis, type GatherPlan, oneHot, planConcat,
  planGather, planGatherAlongAxis, planSplit, planTopk, range1d, rangeLength, split, topk, type TopkPlan
} from "./indexing.js"
export {
  type LstmActivation, lstm, type LstmOptions, type LstmPlan, type LstmWeights, packLstmWeights, planLstm
} from "./lstm.js"
export { dequantize, quantize, quantRange } from "./quant.js"
