/**
 * Convolution, matmul/linear (on the fp32 GEMM kernels of ../kernels), pooling, LSTM and attention. The fp16
 * output rounding and the matmul cliff are applied by the planner.
 */
import * as Either from "effect/Either"
import {
  conv as convKernel, linear as linearKernel, type LstmActivation, type LstmOptions, type LstmWeights,
  lstm as lstmKernel, matmul as matmulKernel, packConvWeight, packLinearWeight, packLstmWeights, packMatmulY,
  planConv, planLstm, planMatmul
} from "../kernels/index.js"
import type { OpCtx, OpImpl, Val } from "./types.js"
import { OpError } from "./types.js"
import { broadcastIndex, checkWorkingBuffer, expectShape, sizeOf } from "./util.js"

/** Per-spatial-dim padding (before, after) for conv and pooling. */
const spatialPads = (
  ctx: OpCtx, padType: string, D: ReadonlyArray<number>, K: ReadonlyArray<number>, S: ReadonlyArray<number>,
  dil: ReadonlyArray<number>
): Array<readonly [number, number]> => {
  const n = D.length
  switch (padType) {
    case "valid": return D.map(() => [0, 0] as const)
    case "custom": {
      const p = ctx.ints("pad", new Array(2 * n).fill(0))
      if (p.length !== 2 * n) throw new OpError(`${ctx.op.op}: pad needs ${2 * n} entries, has ${p.length}`)
      return D.map((_, i) => [p[2 * i]!, p[2 * i + 1]!] as const)
    }
    case "same":
    case "same_lower":
      return D.map((d, i) => {
        const keff = (K[i]! - 1) * dil[i]! + 1
        const total = Math.max(0, S[i]! * Math.ceil(d / S[i]!) - d + keff - S[i]!)
        const small = Math.floor(total / 2)
        return padType === "same" ? [small, total - small] as const : [total - small, small] as const
      })
    default: throw new OpError(`${ctx.op.op}: unknown pad_type "${padType}"`)
  }
}

/** Right-aligns spatial values into three slots (missing leading dims are 1 / 0). */
const three = <T>(v: ReadonlyArray<T>, fill: T): [T, T, T] => {
  const o: Array<T> = [fill, fill, fill]
  for (let i = 0; i < v.length; i++) o[3 - v.length + i] = v[i]!
  return o as [T, T, T]
}

const conv: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const w = ctx.val("weight")
  const bias = ctx.opt("bias")
  const nsp = x.shape.length - 2
  if (nsp < 1 || nsp > 3) throw new OpError(`conv: x must have rank 3–5, has ${x.shape.length}`)
  const groups = ctx.num("groups", 1)
  const strides = ctx.ints("strides", new Array(nsp).fill(1))
  const dil = ctx.ints("dilations", new Array(nsp).fill(1))
  const pads = spatialPads(ctx, ctx.str("pad_type", "valid"), x.shape.slice(2), w.shape.slice(2), strides, dil)
  // The im2col buffer: input channels per group × kernel taps × output positions (the declared output's).
  if (Number.isInteger(groups) && groups >= 1) {
    checkWorkingBuffer(ctx, (x.shape[1]! / groups) * sizeOf(w.shape.slice(2)) * sizeOf(ctx.outType(0).shape.slice(2)), "conv")
  }
  const planned = planConv(x.shape, w.shape, { strides, dilations: dil, pads: pads.flat(), groups })
  if (Either.isLeft(planned)) throw new OpError(`conv: ${planned.left.message}`)
  const p = planned.right
  if (bias !== undefined && sizeOf(bias.shape) !== p.cout) throw new OpError(`conv: bias has ${sizeOf(bias.shape)} values for ${p.cout} output channels`)
  const out = ctx.alloc(0)
  expectShape("conv", out.shape, p.outShape)
  // A constant weight is packed once here (where that pays: see packConvWeight).
  const packed = w.isConst ? packConvWeight(p, w.data) : undefined
  return () => convKernel(p, x.data, w.data, bias?.data, out.data, packed)
}

const matmul: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const y = ctx.val("y")
  const planned = planMatmul(x.shape, y.shape, ctx.bool("transpose_x", false), ctx.bool("transpose_y", false))
  if (Either.isLeft(planned)) throw new OpError(`matmul: ${planned.left.message}`)
  const p = planned.right
  const out = ctx.alloc(0)
  expectShape("matmul", out.shape, p.outShape)
  const packed = y.isConst ? packMatmulY(p, y.data) : undefined
  return () => matmulKernel(p, x.data, y.data, out.data, packed)
}

const linear: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const w = ctx.val("weight")
  const bias = ctx.opt("bias")
  const Din = x.shape[x.shape.length - 1]!
  const Dout = w.shape[0]!
  if (w.shape.length !== 2 || w.shape[1] !== Din) throw new OpError(`linear: weight [${w.shape.join(", ")}] does not take ${Din} inputs`)
  if (bias !== undefined && sizeOf(bias.shape) !== Dout) throw new OpError(`linear: bias has ${sizeOf(bias.shape)} values for ${Dout} outputs`)
  const out = ctx.alloc(0)
  expectShape("linear", out.shape, [...x.shape.slice(0, -1), Dout])
  const rows = sizeOf(x.shape) / Din
  const packed = w.isConst ? packLinearWeight(w.data, Din, Dout) : undefined
  return () => linearKernel(x.data, rows, Din, w.data, Dout, bias?.data, out.data, packed)
}

const pool = (kind: "max" | "avg"): OpImpl => (ctx) => {
  const x = ctx.val("x")
  const nsp = x.shape.length - 2
  if (nsp < 1 || nsp > 3) throw new OpError(`${ctx.op.op}: x must have rank 3–5`)
  const K = ctx.ints("kernel_sizes")
  const S = ctx.ints("strides", new Array(nsp).fill(1))
  if (ctx.bool("ceil_mode", false)) throw new OpError(`${ctx.op.op}: ceil_mode is not supported by the simulator`, "SIM-UNSUPPORTED-OP")
  const excludePad = ctx.bool("exclude_padding_from_average", false)
  const Dsp = x.shape.slice(2)
  const pads = spatialPads(ctx, ctx.str("pad_type"), Dsp, K, S, new Array(nsp).fill(1))
  const Osp = Dsp.map((d, i) => Math.floor((d + pads[i]![0] + pads[i]![1] - K[i]!) / S[i]!) + 1)
  const out = ctx.alloc(0)
  const [N, C] = x.shape as [number, number]
  expectShape(ctx.op.op, out.shape, [N, C, ...Osp])
  const [ID, IH, IW] = three(Dsp, 1)
  const [KD, KH, KW] = three(K, 1)
  const [OD, OH, OW] = three(Osp, 1)
  const [sd, sh, sw] = three(S, 1)
  const [pd, ph, pw] = three(pads.map((p) => p[0]), 0)
  const o = out.data
  return () => {
    const a = x.data
    let at = 0
    for (let p = 0; p < N * C; p++) {
      const ib = p * ID * IH * IW
      for (let od = 0; od < OD; od++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
        let acc = kind === "max" ? -Infinity : 0
        let cnt = 0
        for (let kd = 0; kd < KD; kd++) {
          const id = od * sd - pd + kd
          if (id < 0 || id >= ID) continue
          for (let kh = 0; kh < KH; kh++) {
            const ih = oh * sh - ph + kh
            if (ih < 0 || ih >= IH) continue
            for (let kw = 0; kw < KW; kw++) {
              const iw = ow * sw - pw + kw
              if (iw < 0 || iw >= IW) continue
              const v = a[ib + (id * IH + ih) * IW + iw]!
              if (kind === "max") acc = v > acc ? v : acc
              else acc += v
              cnt++
            }
          }
        }
        o[at++] = kind === "max" ? acc : acc / (excludePad ? Math.max(cnt, 1) : KD * KH * KW)
      }
    }
  }
}

const lstmActivations: ReadonlySet<string> = new Set(["tanh", "scaled_tanh", "sigmoid", "hard_sigmoid", "relu", "linear"])

const lstmActivation = (ctx: OpCtx, name: string, dflt: LstmActivation): LstmActivation => {
  const a = ctx.str(name, dflt)
  if (!lstmActivations.has(a)) throw new OpError(`lstm: unknown activation "${a}"`)
  return a as LstmActivation
}

// Runs on the GEMM-based kernel (fp32, one rounding per operation); constant weights are packed once here.
const lstm: OpImpl = (ctx) => {
  const x = ctx.val("x")
  if (x.shape.length !== 3) throw new OpError("lstm: x must be [s, b, I]")
  const [, Bn, I] = x.shape as [number, number, number]
  const h0 = ctx.val("initial_h"), c0 = ctx.val("initial_c")
  const direction = ctx.str("direction", "forward")
  if (direction !== "forward" && direction !== "reverse" && direction !== "bidirectional") {
    throw new OpError(`lstm: unknown direction "${direction}"`)
  }
  const Dn = direction === "bidirectional" ? 2 : 1
  const outputSequence = ctx.bool("output_sequence", false)
  const options: LstmOptions = {
    direction, outputSequence,
    recurrentActivation: lstmActivation(ctx, "recurrent_activation", "sigmoid"),
    cellActivation: lstmActivation(ctx, "cell_activation", "tanh"),
    activation: lstmActivation(ctx, "activation", "tanh"),
    ...(ctx.has("clip") ? { clip: ctx.num("clip") } : {})
  }
  const dirs: Array<{ wih: Val; whh: Val; b: Val | undefined; p: Val | undefined }> = [{
    wih: ctx.val("weight_ih"), whh: ctx.val("weight_hh"), b: ctx.opt("bias"), p: ctx.opt("peephole")
  }]
  if (Dn === 2) {
    dirs.push({ wih: ctx.val("weight_ih_back"), whh: ctx.val("weight_hh_back"), b: ctx.opt("bias_back"), p: ctx.opt("peephole_back") })
  }
  const H = dirs[0]!.whh.shape[1]!
  for (const d of dirs) {
    if (d.wih.shape.length !== 2 || d.wih.shape[0] !== 4 * H || d.wih.shape[1] !== I) {
      throw new OpError(`lstm: weight_ih [${d.wih.shape.join(", ")}] does not match 4H=${4 * H}, I=${I}`)
    }
    if (d.whh.shape.length !== 2 || d.whh.shape[0] !== 4 * H || d.whh.shape[1] !== H) {
      throw new OpError(`lstm: weight_hh [${d.whh.shape.join(", ")}] does not match 4H=${4 * H}, H=${H}`)
    }
    if (d.b !== undefined && sizeOf(d.b.shape) !== 4 * H) throw new OpError(`lstm: bias has ${sizeOf(d.b.shape)} values for 4H=${4 * H}`)
    if (d.p !== undefined && sizeOf(d.p.shape) !== 3 * H) throw new OpError(`lstm: peephole has ${sizeOf(d.p.shape)} values for 3H=${3 * H}`)
  }
  for (const [name, v] of [["initial_h", h0], ["initial_c", c0]] as const) {
    if (sizeOf(v.shape) !== Bn * Dn * H) throw new OpError(`lstm: ${name} has ${sizeOf(v.shape)} values for [${Bn}, ${Dn * H}]`)
  }
  // The input projections of every step: [seq, batch, 4H].
  checkWorkingBuffer(ctx, sizeOf(x.shape.slice(0, 2)) * 4 * H, "lstm")
  const planned = planLstm(x.shape, H, options)
  if (Either.isLeft(planned)) throw new OpError(`lstm: ${planned.left.message}`)
  const plan = planned.right
  const seq = ctx.alloc(0), hOut = ctx.alloc(1), cOut = ctx.alloc(2)
  expectShape("lstm output 0", seq.shape, plan.outShape)
  expectShape("lstm output 1", hOut.shape, plan.stateShape)
  expectShape("lstm output 2", cOut.shape, plan.stateShape)
  const weightsOf = (d: (typeof dirs)[number]): LstmWeights => ({
    weightIh: d.wih.data, weightHh: d.whh.data,
    ...(d.b !== undefined ? { bias: d.b.data } : {}), ...(d.p !== undefined ? { peephole: d.p.data } : {})
  })
  const packed = dirs.map((d) => (d.wih.isConst && d.whh.isConst ? packLstmWeights(weightsOf(d), I, H) : undefined))
  return () => {
    const fw = packed[0] ?? weightsOf(dirs[0]!)
    const bw = Dn === 2 ? packed[1] ?? weightsOf(dirs[1]!) : undefined
    lstmKernel(plan, x.data, h0.data, c0.data, fw, bw, seq.data, hOut.data, cOut.data)
  }
}

const sdpa: OpImpl = (ctx) => {
  const q = ctx.val("query"), k = ctx.val("key"), v = ctx.val("value")
  const mask = ctx.opt("attn_mask")
  const r = q.shape.length
  if (r < 3 || k.shape.length !== r || v.shape.length !== r) throw new OpError("scaled_dot_product_attention: q, k, v need the same rank ≥ 3")
  const L = q.shape[r - 2]!, E = q.shape[r - 1]!, S = k.shape[r - 2]!, EV = v.shape[r - 1]!
  const batch = q.shape.slice(0, -2)
  const B = sizeOf(batch)
  const out = ctx.alloc(0)
  expectShape("scaled_dot_product_attention", out.shape, [...batch, L, EV])
  const mi = mask ? broadcastIndex(mask.shape, [...batch, L, S]) : null
  const scale = 1 / Math.sqrt(E)
  const scores = new Float64Array(S)
  const o = out.data
  return () => {
    const qd = q.data, kd = k.data, vd = v.data, md = mask?.data
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < L; i++) {
        let mx = -Infinity
        for (let j = 0; j < S; j++) {
          let s = 0
          for (let e = 0; e < E; e++) s += qd[(b * L + i) * E + e]! * kd[(b * S + j) * E + e]!
          s *= scale
          if (md) {
            const flat = (b * L + i) * S + j
            const m = md[mi ? mi[flat]! : flat]!
            s = mask!.dtype === "bool" ? (m !== 0 ? s : -Infinity) : s + m
          }
          scores[j] = s
          if (s > mx) mx = s
        }
        let sum = 0
        for (let j = 0; j < S; j++) {
          scores[j] = Math.exp(scores[j]! - mx)
          sum += scores[j]!
        }
        for (let e = 0; e < EV; e++) {
          let acc = 0
          for (let j = 0; j < S; j++) acc += scores[j]! * vd[(b * S + j) * EV + e]!
          o[(b * L + i) * EV + e] = acc / sum
        }
      }
    }
  }
}

/** Neural-network ops by MIL name. */
export const nnOps: Record<string, OpImpl> = {
  conv,
  matmul,
  linear,
  max_pool: pool("max"),
  avg_pool: pool("avg"),
  lstm,
  scaled_dot_product_attention: sdpa
}
