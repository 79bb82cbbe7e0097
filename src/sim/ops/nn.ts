/**
 * Convolution, matmul/linear (on the fp32 GEMM kernels of ../kernels), pooling, LSTM and attention. The fp16
 * output rounding and the matmul cliff are applied by the planner.
 */
import { Either } from "effect"
import { conv as convKernel, linear as linearKernel, matmul as matmulKernel, planConv, planMatmul } from "../kernels/index.js"
import type { OpCtx, OpImpl, Val } from "./types.js"
import { OpError } from "./types.js"
import { broadcastIndex, expectShape, sizeOf } from "./util.js"

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
  const planned = planConv(x.shape, w.shape, { strides, dilations: dil, pads: pads.flat(), groups })
  if (Either.isLeft(planned)) throw new OpError(`conv: ${planned.left.message}`)
  const p = planned.right
  if (bias !== undefined && sizeOf(bias.shape) !== p.cout) throw new OpError(`conv: bias has ${sizeOf(bias.shape)} values for ${p.cout} output channels`)
  const out = ctx.alloc(0)
  expectShape("conv", out.shape, p.outShape)
  return () => convKernel(p, x.data, w.data, bias?.data, out.data)
}

const matmul: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const y = ctx.val("y")
  const planned = planMatmul(x.shape, y.shape, ctx.bool("transpose_x", false), ctx.bool("transpose_y", false))
  if (Either.isLeft(planned)) throw new OpError(`matmul: ${planned.left.message}`)
  const p = planned.right
  const out = ctx.alloc(0)
  expectShape("matmul", out.shape, p.outShape)
  return () => matmulKernel(p, x.data, y.data, out.data)
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
  return () => linearKernel(x.data, rows, Din, w.data, Dout, bias?.data, out.data)
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

const activation = (name: string): ((v: number) => number) => {
  switch (name) {
    case "sigmoid": return (v) => 1 / (1 + Math.exp(-v))
    case "tanh":
    case "scaled_tanh": return Math.tanh
    case "relu": return (v) => (v > 0 ? v : 0)
    case "linear": return (v) => v
    case "hard_sigmoid": return (v) => Math.min(1, Math.max(0, 0.2 * v + 0.5))
    default: throw new OpError(`lstm: unknown activation "${name}"`)
  }
}

const lstm: OpImpl = (ctx) => {
  const x = ctx.val("x")
  if (x.shape.length !== 3) throw new OpError("lstm: x must be [s, b, I]")
  const [S, Bn, I] = x.shape as [number, number, number]
  const h0 = ctx.val("initial_h"), c0 = ctx.val("initial_c")
  const direction = ctx.str("direction", "forward")
  const Dn = direction === "bidirectional" ? 2 : 1
  const outputSequence = ctx.bool("output_sequence", false)
  const rec = activation(ctx.str("recurrent_activation", "sigmoid"))
  const cellAct = activation(ctx.str("cell_activation", "tanh"))
  const act = activation(ctx.str("activation", "tanh"))
  const clip = ctx.has("clip") ? ctx.num("clip") : undefined
  const dirs: Array<{ wih: Val; whh: Val; b: Val | undefined; p: Val | undefined; reverse: boolean }> = [{
    wih: ctx.val("weight_ih"), whh: ctx.val("weight_hh"), b: ctx.opt("bias"), p: ctx.opt("peephole"),
    reverse: direction === "reverse"
  }]
  if (Dn === 2) {
    dirs.push({
      wih: ctx.val("weight_ih_back"), whh: ctx.val("weight_hh_back"), b: ctx.opt("bias_back"),
      p: ctx.opt("peephole_back"), reverse: true
    })
  }
  const H = dirs[0]!.whh.shape[1]!
  if (dirs[0]!.wih.shape[0] !== 4 * H || dirs[0]!.wih.shape[1] !== I) {
    throw new OpError(`lstm: weight_ih [${dirs[0]!.wih.shape.join(", ")}] does not match 4H=${4 * H}, I=${I}`)
  }
  const seq = ctx.alloc(0), hOut = ctx.alloc(1), cOut = ctx.alloc(2)
  expectShape("lstm output 0", seq.shape, [outputSequence ? S : 1, Bn, Dn * H])
  expectShape("lstm output 1", hOut.shape, [Bn, Dn * H])
  expectShape("lstm output 2", cOut.shape, [Bn, Dn * H])
  const h = new Float64Array(H), c = new Float64Array(H), gates = new Float64Array(4 * H)
  return () => {
    const xd = x.data
    for (let d = 0; d < Dn; d++) {
      const { wih, whh, b, p, reverse } = dirs[d]!
      const Wi = wih.data, Wh = whh.data, bd = b?.data, pd = p?.data
      for (let bi = 0; bi < Bn; bi++) {
        for (let j = 0; j < H; j++) {
          h[j] = h0.data[bi * Dn * H + d * H + j]!
          c[j] = c0.data[bi * Dn * H + d * H + j]!
        }
        for (let step = 0; step < S; step++) {
          const t = reverse ? S - 1 - step : step
          const xb = (t * Bn + bi) * I
          for (let g = 0; g < 4 * H; g++) {
            let acc = bd ? bd[g]! : 0
            const wb = g * I
            for (let k = 0; k < I; k++) acc += Wi[wb + k]! * xd[xb + k]!
            const hb = g * H
            for (let k = 0; k < H; k++) acc += Wh[hb + k]! * h[k]!
            gates[g] = acc
          }
          for (let j = 0; j < H; j++) {
            const cp = c[j]!
            const ig = rec(gates[j]! + (pd ? pd[j]! * cp : 0))
            const fg = rec(gates[H + j]! + (pd ? pd[H + j]! * cp : 0))
            const z = cellAct(gates[3 * H + j]!)
            let cn = fg * cp + ig * z
            if (clip !== undefined) cn = Math.min(clip, Math.max(-clip, cn))
            const og = rec(gates[2 * H + j]! + (pd ? pd[2 * H + j]! * cn : 0))
            c[j] = cn
            h[j] = og * act(cn)
          }
          if (outputSequence) {
            const ob = (t * Bn + bi) * Dn * H + d * H
            for (let j = 0; j < H; j++) seq.data[ob + j] = h[j]!
          }
        }
        for (let j = 0; j < H; j++) {
          hOut.data[bi * Dn * H + d * H + j] = h[j]!
          cOut.data[bi * Dn * H + d * H + j] = c[j]!
          if (!outputSequence) seq.data[bi * Dn * H + d * H + j] = h[j]!
        }
      }
    }
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
