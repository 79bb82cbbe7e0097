/** checkTensorIo: every bad argument is a typed error naming the field, the expectation and what was given. */
import { describe, expect, it } from "@effect/vitest"
import { checkTensorIo } from "../../src/fp16/index.js"
import { InvalidArgumentError } from "../../src/schema/errors.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"

const layout = TensorLayout.packed({ channels: 4, height: 2, width: 8, elemSize: 2 }) // 16 elements per channel
const op = "Model.writeInputF32"

const fails = (e: InvalidArgumentError | undefined, argument: string, ...fragments: ReadonlyArray<string>) => {
  expect(e).toBeInstanceOf(InvalidArgumentError)
  expect(e!.op).toBe(op)
  expect(e!.argument).toBe(argument)
  for (const f of fragments) expect(e!.message).toContain(f)
}

describe("checkTensorIo", () => {
  it("accepts whole tensors, subsets and empty subsets", () => {
    expect(checkTensorIo(op, layout, "input", 0, 64)).toBeUndefined()
    expect(checkTensorIo(op, layout, "input", 0, 32, 2)).toBeUndefined()
    expect(checkTensorIo(op, layout, "input", 0, 16, 1, 1)).toBeUndefined()
    expect(checkTensorIo(op, layout, "output", 3, 0, 4, 0)).toBeUndefined()
    expect(checkTensorIo(op, layout, "input", 0, 64, 0, 4, layout.allocSize)).toBeUndefined()
  })

  it("rejects a wrong length with the expected and actual counts", () => {
    fails(checkTensorIo(op, layout, "input", 1, 63), "input[1] length", "expected 64 elements", "4 channel(s) × H 2 × W 8", "got 63")
    fails(checkTensorIo(op, layout, "output", 0, 16, 1, 2), "output[0] length", "expected 32", "got 16")
  })

  it("rejects a negative channelStart", () => {
    fails(checkTensorIo(op, layout, "input", 0, 16, -1, 1), "input[0] channelStart", "an integer in 0..4", "got -1")
  })

  it("rejects a fractional channelStart", () => {
    fails(checkTensorIo(op, layout, "input", 0, 16, 0.5, 1), "input[0] channelStart", "got 0.5")
  })

  it("rejects an out-of-range channelStart", () => {
    fails(checkTensorIo(op, layout, "input", 0, 0, 5, 0), "input[0] channelStart", "0..4", "got 5")
  })

  it("rejects a NaN channelStart", () => {
    fails(checkTensorIo(op, layout, "input", 0, 16, Number.NaN, 1), "input[0] channelStart", "got NaN")
  })

  it("rejects a negative channelCount", () => {
    fails(checkTensorIo(op, layout, "input", 0, 16, 0, -1), "input[0] channelCount", "non-negative integer", "got -1")
  })

  it("rejects a fractional channelCount", () => {
    fails(checkTensorIo(op, layout, "input", 0, 16, 0, 1.5), "input[0] channelCount", "got 1.5")
  })

  it("rejects a channel range past the last channel", () => {
    fails(checkTensorIo(op, layout, "input", 0, 48, 2, 3), "input[0] channelCount", "at most 2", "[2, 5)", "[0, 4)", "got 3")
  })

  it("rejects a surface view shorter than allocSize", () => {
    fails(checkTensorIo(op, layout, "output", 2, 64, 0, 4, layout.allocSize - 1), "output[2] surface",
      `at least ${layout.allocSize} bytes`, `got ${layout.allocSize - 1} bytes`)
  })

  it("rejects a layout the engine could not report", () => {
    const bad = TensorLayout.make({ channels: 1, width: 40, height: 1, elemSize: 2, rowStride: 96, planeStride: 96 })
    fails(checkTensorIo(op, bad, "input", 0, 40), "input[0] layout", "RowStride 96 is not 64-byte aligned")
  })

  it("hints at channel subsets when a whole-tensor length is a whole number of channels", () => {
    const e = checkTensorIo(op, layout, "input", 0, 32)
    expect(e?.hint).toContain("2 channel(s)")
  })
})
