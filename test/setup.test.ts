/** The setup file lets the event loop turn between tests (see test/setup.ts). */
import { describe, expect, it } from "vitest"

describe("between tests", () => {
  let turned = false
  it("schedules a macrotask and returns without waiting", () => {
    setImmediate(() => turned = true)
    expect(turned).toBe(false)
  })
  it("sees it run before the next test starts", () => {
    expect(turned).toBe(true)
  })
})
