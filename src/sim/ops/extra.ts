/** Less common ops the checker knows: conv_transpose, instance_norm, prelu, l2_pool, space_to_depth, fill, neg. */
import * as Either from "effect/Either"
import { convTranspose, planConvTranspose, planSpaceToDepth, stridedCopy } from "../kernels/index.js"
import type { OpImpl } from "./types.js"
import { OpError } from "./types.js"
import { checkWorkingBuffer, expectShape, planned, sizeOf } from "./util.js"

const convT: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const w = ctx.val("weight")
  const bias = ctx.opt("bias")
  const nsp = x.shape.length - 2
  const padType = ctx.str("pad_type", "valid")
  if (padType !== "valid" && padType !== "custom") {
    throw new OpError(`conv_transpose: pad_type "${padType}" is not supported by the simulator (valid or custom)`, "SIM-UNSUPPORTED-OP")
  }
  const pads = padType === "custom" ? ctx.ints("pad", new Array(2 * nsp).fill(0)) : new Array<number>(2 * nsp).fill(0)
  const out = ctx.alloc(0)
  // The col2im buffer: output channels per group (weight [Cin, Cout/groups, K…]) × kernel taps × input positions.
  checkWorkingBuffer(ctx, (w.shape[1] ?? 1) * sizeOf(w.shape.slice(2)) * sizeOf(x.shape.slice(2)), "conv_transpose")
  const planned = planConvTranspose(x.shape, w.shape, {
    strides: ctx.ints("strides", new Array(nsp).fill(1)),
    dilations: ctx.ints("dilations", new Array(nsp).fill(1)),
    pads,
    groups: ctx.num("groups", 1),
    outputSpatial: out.shape.slice(2)
  })
  if (Either.isLeft(planned)) throw new OpError(`conv_transpose: ${planned.left.message}`)
  const p = planned.right
  expectShape("conv_transpose", out.shape, p.outShape)
  return () => convTranspose(p, x.data, w.data, bias?.data, out.data)
}

const instanceNorm: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const gamma = ctx.opt("gamma"), beta = ctx.opt("beta")
  const eps = ctx.num("epsilon", 1e-5)
  const out = ctx.alloc(0)
  expectShape("instance_norm", out.shape, x.shape)
  const [N, C] = x.shape as [number, number]
  const inner = sizeOf(x.shape.slice(2))
  const o = out.data
  return () => {
    const a = x.data
    for (let p = 0; p < N * C; p++) {
      const c = p % C
      let s = 0
      for (let i = 0; i < inner; i++) s += a[p * inner + i]!
      const mean = s / inner
      let v = 0
      for (let i = 0; i < inner; i++) v += (a[p * inner + i]! - mean) ** 2
      const k = (gamma ? gamma.data[c]! : 1) / Math.sqrt(v / inner + eps)
      const b = beta ? beta.data[c]! : 0
      for (let i = 0; i < inner; i++) o[p * inner + i] = (a[p * inner + i]! - mean) * k + b
    }
  }
}

const prelu: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const alpha = ctx.val("alpha")
  const out = ctx.alloc(0)
  expectShape("prelu", out.shape, x.shape)
  const C = x.shape[1] ?? 1
  if (sizeOf(alpha.shape) !== C) throw new OpError(`prelu: alpha has ${sizeOf(alpha.shape)} values for ${C} channels`)
  const inner = sizeOf(x.shape.slice(2))
  const o = out.data
  return () => {
    const a = x.data, al = alpha.data
    for (let i = 0; i < o.length; i++) {
      const v = a[i]!
      o[i] = v >= 0 ? v : al[Math.floor(i / inner) % C]! * v
    }
  }
}

const l2Pool: OpImpl = (ctx) => {
  const x = ctx.val("x")
  if (x.shape.length !== 4) throw new OpError("l2_pool: the simulator supports 2-D pooling ([n, C, H, W]) only", "SIM-UNSUPPORTED-OP")
  const [kh, kw] = ctx.ints("kernel_sizes") as [number, number]
  const [sh, sw] = ctx.ints("strides", [1, 1]) as [number, number]
  const padType = ctx.str("pad_type")
  if (padType !== "valid") throw new OpError(`l2_pool: pad_type "${padType}" is not supported by the simulator`, "SIM-UNSUPPORTED-OP")
  const [N, C, H, W] = x.shape as [number, number, number, number]
  const OH = Math.floor((H - kh) / sh) + 1, OW = Math.floor((W - kw) / sw) + 1
  const out = ctx.alloc(0)
  expectShape("l2_pool", out.shape, [N, C, OH, OW])
  const o = out.data
  return () => {
    const a = x.data
    let k = 0
    for (let p = 0; p < N * C; p++) {
      for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
        let s = 0
        for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) s += a[(p * H + oh * sh + i) * W + ow * sw + j]! ** 2
        o[k++] = Math.sqrt(s)
      }
    }
  }
}

const spaceToDepth: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const bs = ctx.num("block_size")
  const [n, C, H, W] = x.shape as [number, number, number, number]
  if (x.shape.length !== 4 || H % bs !== 0 || W % bs !== 0) throw new OpError("space_to_depth: needs [n, C, H, W] with H and W divisible by block_size")
  const out = ctx.alloc(0)
  const Ho = H / bs, Wo = W / bs
  expectShape("space_to_depth", out.shape, [n, C * bs * bs, Ho, Wo])
  const plan = planned(planSpaceToDepth(x.shape, bs))
  const o = out.data
  return () => stridedCopy(plan, x.data, o)
}

const fill: OpImpl = (ctx) => {
  const value = ctx.num("value", 0)
  const out = ctx.alloc(0)
  out.data.fill(value)
  return undefined
}

const neg: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const out = ctx.alloc(0)
  expectShape("neg", out.shape, x.shape)
  const o = out.data
  return () => {
    const a = x.data
    for (let i = 0; i < o.length; i++) o[i] = -a[i]!
  }
}

/** Extra ops by MIL name. */
export const extraOps: Record<string, OpImpl> = {
  conv_transpose: convT,
  instance_norm: instanceNorm,
  prelu,
  l2_pool: l2Pool,
  space_to_depth: spaceToDepth,
  fill,
  neg
}
