/** Properties of the shape arithmetic: broadcasting is symmetric, and reshape keeps the element count. */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import { broadcast } from "../../src/mil/ops/types.js"
import { checkBody, errors, shapeIn } from "./milText.js"

const dim = FastCheck.integer({ min: 1, max: 6 })
const shape = FastCheck.array(dim, { minLength: 0, maxLength: 4 })

describe("shape properties", () => {
  it.prop("broadcast is symmetric and its rank is the larger rank", [shape, shape], ([a, b]) => {
    const ab = broadcast(a, b)
    const ba = broadcast(b, a)
    expect(ab.ok).toBe(ba.ok)
    if (ab.ok && ba.ok) {
      expect(ab.shape).toEqual(ba.shape)
      expect(ab.shape!.length).toBe(Math.max(a.length, b.length))
    }
  })

  it.prop("a shape broadcasts with itself and with all-ones of any rank", [shape, FastCheck.integer({ min: 0, max: 4 })],
    ([a, n]) => {
      expect(broadcast(a, a)).toEqual({ ok: true, shape: a })
      const ones = new Array<number>(n).fill(1)
      const r = broadcast(a, ones)
      expect(r.ok).toBe(true)
      if (r.ok) expect(r.shape!.slice(r.shape!.length - a.length)).toEqual(a)
    })

  it.prop("reshape to a permutation of the dims with one -1 recovers the missing dim",
    [FastCheck.array(dim, { minLength: 1, maxLength: 4 }), FastCheck.nat()], ([dims, k]) => {
      const target = [...dims].reverse()
      const hole = k % target.length
      const written = target.map((d, i) => (i === hole ? -1 : d))
      const r = checkBody(`tensor<fp16, [${dims.join(", ")}]> x`,
        `tensor<fp16, [${target.map(() => "?").join(", ")}]> y = reshape(shape = tensor<int32, [${written.length}]>([${written.join(", ")}]), x = x);`)
      expect(errors(r)).toEqual([])
      expect(shapeIn(r, "y")).toEqual(target)
    }, { fastCheck: { numRuns: 40 } })
})
