/** relu keeps NaN, as np.maximum(x, 0) does (and clip, sigmoid and add do in the simulator). */
import { describe, expect, it } from "@effect/vitest"
import { lstm, planLstm, sizeOf } from "../../src/sim/kernels/index.js"
import { unary } from "../../src/sim/kernels/elementwise.js"
import { program, runMil } from "./helpers.js"

describe("relu(NaN)", () => {
  it("the elementwise kernel returns NaN, and still clamps negatives and keeps positives", () => {
    const x = new Float32Array([Number.NaN, -2, 0, 3, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])
    const out = new Float32Array(x.length)
    unary("relu", x, out)
    expect(Array.from(out)).toEqual([Number.NaN, 0, 0, 3, Number.POSITIVE_INFINITY, 0])
  })
  it("the relu op returns NaN on the simulator, fp16 and fp32", async () => {
    for (const dtype of ["fp16", "fp32"]) {
      const text = program(`tensor<${dtype}, [1, 4]> x`,
        `    tensor<${dtype}, [1, 4]> y = relu(x = x)[name = string("y")];`, "y")
      const out = await runMil(text, { x: [Number.NaN, -1, 0.5, 2] })
      expect(Array.from(out.y!)).toEqual([Number.NaN, 0, 0.5, 2])
    }
  })
  it("an lstm with relu cell activation carries NaN into the cell state", () => {
    // x = 0, zero weights: the i, f, o gates are hard_sigmoid(0) = 0.5; only z's bias is NaN.
    const plan = planLstm([1, 1, 1], 1, { recurrentActivation: "hard_sigmoid", cellActivation: "relu", activation: "relu" })
    if (plan._tag !== "Right") throw new Error(plan.left.message)
    const p = plan.right
    const w = { weightIh: new Float32Array(4), weightHh: new Float32Array(4), bias: new Float32Array([0, 0, 0, Number.NaN]) }
    const out = new Float32Array(sizeOf(p.outShape)), hOut = new Float32Array(1), cOut = new Float32Array(1)
    lstm(p, new Float32Array(1), new Float32Array(1), new Float32Array([1]), w, undefined, out, hOut, cOut)
    expect(cOut[0]).toBeNaN()
  })
})
