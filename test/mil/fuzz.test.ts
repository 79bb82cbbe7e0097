/**
 * 5 000 generated hostile programs (fuzz/programs.ts: dims near every limit, splats, split counts, literals past
 * their dtype) through analyze, inspect and a simulator compile + eval, in child processes under a 512 MB heap.
 * Each chunk must exit 0 within its bound with every result typed: nothing thrown, no defect, no heap exhaustion.
 * The children run asynchronously, so this file never blocks its vitest worker.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import type { FuzzSummary } from "./fuzz/worker.js"

const worker = fileURLToPath(new URL("./fuzz/worker.ts", import.meta.url))
const root = fileURLToPath(new URL("../..", import.meta.url))
const CHUNK = 2500
const CHUNKS = 2
/** Generous for a loaded 2-core host (a chunk takes ~6 s of CPU, half of it loading); a hang or a heap blow-up ends it. */
const BOUND_MS = 150_000

interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

const runChunk = (start: number, count: number): Promise<Outcome> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--max-old-space-size=512", "--import", "tsx", worker, String(start), String(count)], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()))
    child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, BOUND_MS)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })

describe("hostile-program fuzz (512 MB heap)", () => {
  for (let c = 0; c < CHUNKS; c++) {
    const start = c * CHUNK
    it(`programs ${start}…${start + CHUNK - 1}: typed results only, within the bound`, async () => {
      const out = await runChunk(start, CHUNK)
      expect(out.timedOut, "the chunk did not finish within its bound").toBe(false)
      const line = out.stdout.trim().split("\n").pop() ?? ""
      const summary = (line.startsWith("{") ? JSON.parse(line) : undefined) as FuzzSummary | undefined
      expect(summary, `no summary; stderr: ${out.stderr}`).toBeDefined()
      expect(summary!.failures).toEqual([])
      expect(summary!.thrown).toBe(0)
      expect(summary!.count).toBe(CHUNK)
      expect(summary!.compiled + summary!.typed).toBe(CHUNK)
      // The generator reaches both sides: programs that run and programs refused with diagnostics.
      expect(summary!.compiled).toBeGreaterThan(0)
      expect(summary!.typed).toBeGreaterThan(0)
      expect([out.code, out.signal]).toEqual([0, null])
    }, BOUND_MS + 10_000)
  }
})
