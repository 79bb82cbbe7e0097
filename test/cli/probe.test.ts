/** `ane probe` end to end on the simulator: device info, budget and what the client negotiated. */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { chipProfiles } from "../../src/sim/latency.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const probe = (...args: Array<string>) =>
  spawnSync(process.execPath, [join(root, "bin", "ane.js"), "probe", "--backend", "simulator", ...args], {
    cwd: root, encoding: "utf8", timeout: 60_000
  })

describe("ane probe", () => {
  it("prints one JSON object with the device, the budget and the client info", () => {
    const r = probe("--json")
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout) as Record<string, unknown> & { client: Record<string, unknown> }
    expect(out).toMatchObject({ backend: "simulator", compileLimit: 119, compileCount: 0 })
    expect(out.client).toEqual({
      numAnes: out.numAnes, numCores: out.numCores, architecture: chipProfiles.m4.architecture, boardType: out.boardType
    })
  })

  it("prints the same as aligned rows", () => {
    const r = probe()
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^backend +simulator$/m)
    expect(r.stdout).toMatch(new RegExp(`^client architecture +${chipProfiles.m4.architecture}$`, "m"))
  })
})
