/**
 * 2 000 mutated ONNX files (bit flips, truncation, bogus dims) import to a typed ImportError or a valid program,
 * never a crash or a hang. The work runs in child processes, in chunks, so no test blocks its worker for long.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"

const worker = path.join(import.meta.dirname, "mutate-worker.ts")
const CHUNK = 250

const runChunk = (start: number): Promise<{ typed: number; ok: number; crash: number; crashes: Array<string> }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", worker, String(start), String(CHUNK)], {
      cwd: path.resolve(import.meta.dirname, "../.."),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = "", err = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (err += d))
    // A hang is a failure: the chunk is killed after 100 s.
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`worker exited with ${code}: ${err.slice(0, 2000)}`))
      else resolve(JSON.parse(out.trim().split("\n").pop()!))
    })
  })

describe("mutated ONNX files", () => {
  for (let start = 0; start < 2000; start += CHUNK) {
    it(`mutations ${start}–${start + CHUNK - 1} give typed errors or programs`, async () => {
      const r = await runChunk(start)
      expect(r.crashes).toEqual([])
      expect(r.typed + r.ok).toBe(CHUNK)
      expect(r.typed).toBeGreaterThan(0)
    }, 120_000)
  }
})
