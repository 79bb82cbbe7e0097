/**
 * Hostile input to `ane run`: each case ends in one line on stderr naming the path and the reason, no stack trace,
 * the documented exit status, and quickly (issue: a FIFO, a device or /proc must not hang the command).
 */
import { execFileSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ExitCode } from "../../src/cli/failure.js"
import { writeNpy } from "../../src/cli/npy.js"
import { spawn } from "node:child_process"
import { type CliResult, inProcess, root, spawned, STACK } from "./harness.js"

const dir = mkdtempSync(join(tmpdir(), "ane-hostile-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/**
 * Each case must end within this bound: in-process cases refuse before any compile; a child process costs about a
 * second to start on an idle host, many more on a loaded one, and a hang never ends.
 */
const BOUND_MS = 20_000
const SPAWN_BOUND_MS = 50_000

const expectOneLine = (r: CliResult, code: number, ...mentions: Array<string>) => expectOneLineWithin(BOUND_MS, r, code, ...mentions)

const expectOneLineWithin = (bound: number, r: CliResult, code: number, ...mentions: Array<string>) => {
  expect(r.stderr, r.stderr).not.toMatch(STACK)
  expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1)
  for (const m of mentions) expect(r.stderr).toContain(m)
  expect(r.code, r.stderr).toBe(code)
  expect(r.ms).toBeLessThan(bound)
}

const linear = "examples/linear.mil"
const run = (...args: Array<string>) => inProcess(["run", ...args, "--backend", "simulator"])

const file = (name: string, bytes: Uint8Array | string = "x") => {
  const p = join(dir, name)
  writeFileSync(p, bytes)
  return p
}

/** A .npy header of numpy format version `major` with the given header text. */
const npyWith = (major: number, header: string, data: Uint8Array) => {
  const start = major === 1 ? 10 : 12
  const h = new TextEncoder().encode(header)
  const out = new Uint8Array(start + h.length + data.length)
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0])
  const dv = new DataView(out.buffer)
  if (major === 1) dv.setUint16(8, h.length, true)
  else dv.setUint32(8, h.length, true)
  out.set(h, start)
  out.set(data, start + h.length)
  return out
}

describe("ane run: --output", () => {
  it("a regular file, a path under a file, /dev/null and an empty path: refused before any work", async () => {
    const f = file("plain.txt")
    expectOneLine(await run(linear, "--output", f), ExitCode.usage, f, "a regular file")
    expectOneLine(await run(linear, "--output", join(f, "sub")), ExitCode.usage, join(f, "sub"), "not a directory")
    expectOneLine(await run(linear, "--output", "/dev/null"), ExitCode.usage, "/dev/null", "a character device")
    expectOneLine(await run(linear, "--output", ""), ExitCode.usage, "--output", "an empty path")
  })

  it("a directory under /proc: refused in bounded time, nothing created", async () => {
    expectOneLine(await run(linear, "--output", "/proc/1/nope/deeper"), ExitCode.usage, "/proc/1/nope/deeper")
    expect(existsSync("/proc/1/nope")).toBe(false)
  })

  it("an unwritable directory: refused naming it", async () => {
    const ro = join(dir, "ro")
    mkdirSync(ro, { mode: 0o500 })
    const r = await run(linear, "--output", join(ro, "out"))
    // root may write anywhere: there the run succeeds; anyone else is refused before any work.
    if (process.getuid?.() === 0) expect(r.code).toBe(ExitCode.ok)
    else expectOneLine(r, ExitCode.usage, ro, "not writable")
  })

  it("an existing directory where an output file goes: refused before the compile", async () => {
    const out = join(dir, "taken")
    mkdirSync(join(out, "y.npy"), { recursive: true })
    expectOneLine(await run(linear, "--output", out), ExitCode.usage, join(out, "y.npy"), "a directory")
  })

  it("a symbolic link where an output file goes: refused, its target untouched", async () => {
    const out = join(dir, "linked")
    mkdirSync(out)
    const target = file("target.txt", "keep")
    symlinkSync(target, join(out, "y.npy"))
    expectOneLine(await run(linear, "--output", out), ExitCode.usage, join(out, "y.npy"), "a symbolic link")
    expect(readFileSync(target, "utf8")).toBe("keep")
  })

  it("an output name over 255 bytes: refused before the compile, and no output directory is left", async () => {
    const long = "y".repeat(300)
    const mil = file("long.mil", `program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
    tensor<fp16, [1, 4, 1, 32]> ${long} = relu(x = x)[name = string("r")];
  } -> (${long});
}
`)
    const out = join(dir, "long-out")
    expectOneLine(await run(mil, "--output", out), ExitCode.usage, "255 bytes")
    expect(existsSync(out)).toBe(false)
  })
})

describe("ane run: --input and weights", () => {
  it("a directory as an input: one line naming it", async () => {
    const d = join(dir, "a-dir")
    mkdirSync(d)
    expectOneLine(await run(linear, "--input", `x=${d}`), ExitCode.usage, d, "a directory")
  })

  it("/dev/zero as an input: refused at once, not read", async () => {
    expectOneLine(await run(linear, "--input", "x=/dev/zero"), ExitCode.usage, "/dev/zero", "a character device")
  })

  it(".npy v2 and v3 files of 10 and 11 bytes: a header-length complaint, no RangeError", async () => {
    for (const [major, size] of [[2, 10], [3, 11], [2, 11]] as const) {
      const bytes = new Uint8Array(size)
      bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0])
      const p = file(`short-v${major}-${size}.npy`, bytes)
      expectOneLine(await run(linear, "--input", `x=${p}`), ExitCode.usage, p, "header length")
    }
  })

  it("a header longer than the file and an unknown version: refused", async () => {
    const long = npyWith(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(0))
    new DataView(long.buffer).setUint32(8, 60_000, true)
    const p = file("long-header.npy", long)
    expectOneLine(await run(linear, "--input", `x=${p}`), ExitCode.usage, p, "header")
    const v9 = npyWith(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", new Uint8Array(4))
    v9[6] = 9
    const q = file("v9.npy", v9)
    expectOneLine(await run(linear, "--input", `x=${q}`), ExitCode.usage, q, "version")
  })

  it("the right element count in the wrong shape is refused; leading 1s may be dropped", async () => {
    const data = new Float32Array(64 * 384)
    const wrong = file("wrong-shape.npy", writeNpy(data, [384, 64], "<f4"))
    expectOneLine(await run(linear, "--input", `x=${wrong}`, "--output", join(dir, "o1")), ExitCode.usage, wrong,
      "(384, 64)", "[1, 64, 1, 384]")
    const squeezed = file("squeezed.npy", writeNpy(data, [64, 1, 384], "<f4"))
    const ok = await run(linear, "--input", `x=${squeezed}`, "--output", join(dir, "o2"))
    expect(ok.stderr).toBe("")
    expect(ok.code).toBe(ExitCode.ok)
  })

  it("fortran_order anything but False is refused", async () => {
    const data = new Uint8Array(64 * 384 * 2)
    for (const value of ["1", "True", "0"]) {
      const p = file(`fortran-${value}.npy`,
        npyWith(1, `{'descr': '<f2', 'fortran_order': ${value}, 'shape': (1, 64, 1, 384), }\n`, data))
      expectOneLine(await run(linear, "--input", `x=${p}`), ExitCode.usage, p, "fortran_order")
    }
  })

  it("a --weights directory and a --weights file over 2 GiB (sparse): refused naming the path", async () => {
    const d = join(dir, "w-dir")
    mkdirSync(d)
    expectOneLine(await run(linear, "--weights", d), ExitCode.usage, d, "a directory")
    const big = file("big.bin", "")
    truncateSync(big, 2 ** 31 + 64)
    expectOneLine(await run(linear, "--weights", big), ExitCode.usage, big, "at most 2048 MiB")
  })

  it("a weight file over 2 GiB found beside the program: one line naming the program", async () => {
    const d = join(dir, "beside")
    mkdirSync(join(d, "weights"), { recursive: true })
    execFileSync("cp", ["examples/linear.mil", join(d, "p.mil")])
    truncateSync(file("beside/weights/weight.bin", ""), 2 ** 31 + 64)
    const r = await run(join(d, "p.mil"))
    expectOneLine(r, ExitCode.usage, join(d, "p.mil"), "over 2 GiB")
  })
})

describe("ane run: a package's weight files", () => {
  it("a FIFO or a file over 2 GiB as a package's weight file: refused by name before the compile", async () => {
    const pkg = join(dir, "heavy.mlmodelc")
    cpSync("examples/gated_conv.mlmodelc", pkg, { recursive: true })
    const weights = join(pkg, "weights", "weight.bin")
    truncateSync(weights, 2 ** 31 + 64)
    expectOneLine(await run(pkg, "--output", join(dir, "h1")), ExitCode.usage, weights, "at most 2048 MiB")
    rmSync(weights)
    execFileSync("mkfifo", [weights])
    expectOneLine(await inProcess(["bench", pkg, "--backend", "simulator"]), ExitCode.usage, weights, "a FIFO")
  })
})

describe("ane run: FIFOs and devices end to end", () => {
  it("a reader that closes the pipe early: the command ends quietly, no stack trace", async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, [join(root, "bin", "ane.js"), "--help"], { cwd: root })
      child.stdout.destroy()
      let stderr = ""
      child.stderr.on("data", (d) => (stderr += String(d)))
      const kill = setTimeout(() => child.kill("SIGKILL"), SPAWN_BOUND_MS)
      child.on("close", (code) => {
        clearTimeout(kill)
        done({ code, stderr })
      })
    })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(ExitCode.ok)
  })

  it("a FIFO as the program, a package's model.mil, an input and --weights: refused at once, the process exits", async () => {
    const fifo = join(dir, "pipe.mil")
    execFileSync("mkfifo", [fifo])
    const pkg = join(dir, "fifo.mlmodelc")
    mkdirSync(pkg)
    execFileSync("mkfifo", [join(pkg, "model.mil")])
    const [inPackage, ...cases] = await Promise.all([
      spawned(["run", pkg, "--backend", "simulator"], SPAWN_BOUND_MS),
      spawned(["run", fifo, "--backend", "simulator"], SPAWN_BOUND_MS),
      spawned(["run", linear, "--backend", "simulator", "--input", `x=${fifo}`, "--output", join(dir, "f1")], SPAWN_BOUND_MS),
      spawned(["run", linear, "--backend", "simulator", "--weights", fifo, "--output", join(dir, "f2")], SPAWN_BOUND_MS),
      spawned(["check", fifo], SPAWN_BOUND_MS)
    ])
    for (const r of cases) expectOneLineWithin(SPAWN_BOUND_MS, r, ExitCode.usage, fifo, "a FIFO")
    expectOneLineWithin(SPAWN_BOUND_MS, inPackage!, ExitCode.usage, join(pkg, "model.mil"), "a FIFO")
  })

  it("a usage error: one line, exit 2, no JSON dump of the parser's error", async () => {
    const r = await spawned(["run", linear, "--backend", "nowhere"], SPAWN_BOUND_MS)
    expectOneLineWithin(SPAWN_BOUND_MS, r, ExitCode.usage, "auto, hardware, simulator")
    expect(r.stderr).not.toContain("_tag")
  })

  it("SIGTERM stops a long bench of synchronous evals: exit 130, promptly, no stack trace", async () => {
    const r = await new Promise<{ code: number | null; stderr: string; afterSignalMs: number }>((done) => {
      const child = spawn(process.execPath, [join(root, "bin", "ane.js"), "bench", linear, "--iterations", "5000000",
        "--warmup", "0", "--json"], { cwd: root })
      let stderr = "", signalledAt = 0
      const kill = setTimeout(() => child.kill("SIGKILL"), SPAWN_BOUND_MS)
      child.stderr.on("data", (d) => {
        stderr += String(d)
        // The auto backend logs its choice once the command runs: from then on SIGTERM is the command's to handle.
        if (signalledAt === 0 && stderr.includes("using the simulator backend")) {
          signalledAt = -1
          setTimeout(() => {
            signalledAt = performance.now()
            child.kill("SIGTERM")
          }, 1000)
        }
      })
      child.on("close", (code) => {
        clearTimeout(kill)
        done({ code, stderr, afterSignalMs: performance.now() - signalledAt })
      })
    })
    expect(r.code, r.stderr).toBe(ExitCode.interrupted)
    expect(r.stderr).not.toMatch(STACK)
    expect(r.afterSignalMs).toBeLessThan(BOUND_MS)
  })
})
