/** `ane probe` end to end on the simulator: device info, budget and what the client negotiated. */
import { describe, expect, it } from "vitest"
import { chipProfiles } from "../../src/sim/latency.js"
import { spawned } from "./harness.js"

const probe = async (...args: Array<string>) => {
  const r = await spawned(["probe", "--backend", "simulator", ...args], 60_000)
  return { status: r.code, stdout: r.stdout, stderr: r.stderr }
}

describe("ane probe", () => {
  it("prints one JSON object with the device, the budget and the client info", async () => {
    const r = await probe("--json")
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout) as Record<string, unknown> & { client: Record<string, unknown> }
    expect(out).toMatchObject({ backend: "simulator", compileLimit: 119, compileCount: 0 })
    expect(out.client).toEqual({
      numAnes: out.numAnes, numCores: out.numCores, architecture: chipProfiles.m4.architecture, boardType: out.boardType
    })
  })

  it("prints the same as aligned rows", async () => {
    const r = await probe()
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^backend +simulator$/m)
    expect(r.stdout).toMatch(new RegExp(`^client architecture +${chipProfiles.m4.architecture}$`, "m"))
  })
})
