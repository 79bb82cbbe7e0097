import { spawn } from "node:child_process"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { describe, expect, it } from "vitest"
import { type IOSurfaceKey, nil, toId } from "../../src/native/objc.js"
import { checkAfterEach, loadFake } from "./fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

describe("Objective-C binding over the fake runtime", () => {
  const fake = loadFake()
  checkAfterEach(fake)
  const rt = fake.rt

  it("looks classes up and caches selectors", () => {
    expect(rt.cls("_ANEInMemoryModel")).not.toBe(nil)
    expect(rt.cls("NoSuchClass")).toBe(nil)
    expect(rt.sel("hasANE")).toBe(rt.sel("hasANE"))
    expect(rt.sel("hasANE")).not.toBe(rt.sel("numANECores"))
  })

  it("round-trips NSString, NSNumber, NSArray and NSDictionary and frees them with the pool", () => {
    const before = fake.live()
    rt.autoreleasePool(() => {
      const dict = rt.mutableDictionary()
      const array = rt.mutableArray()
      rt.addObject(array, rt.nsString("héllo"))
      rt.addObject(array, rt.numberInt(-7))
      rt.setObject(dict, "list", array)
      const list = rt.objectForKey(dict, "list")
      expect(rt.count(list)).toBe(2)
      expect(rt.string(rt.objectAt(list, 0))).toBe("héllo")
      expect(rt.intValue(rt.objectAt(list, 1))).toBe(-7)
      expect(rt.objectForKey(dict, "missing")).toBe(nil)
      expect(rt.describe(rt.numberU64(42n))).toBe("42")
      rt.release(array)
      rt.release(dict)
    })
    expect(fake.live()).toBe(before)
  })

  it("copies bytes into NSData", () => {
    const before = fake.live()
    const data = rt.data(new Uint8Array([1, 2, 3]))
    expect(fake.live()).toBe(before + 1)
    rt.release(data)
    expect(fake.live()).toBe(before)
  })

  it("answers respondsToSelector: from the fake's class table", () => {
    const info = rt.cls("_ANEDeviceInfo")
    expect(rt.responds(info, "hasANE")).toBe(true)
    expect(rt.responds(info, "aneSubType")).toBe(false)
  })

  it("the fake checks a signature for the receiver's class, not for the selector alone", () => {
    fake.reset()
    const model = rt.cls("_ANEInMemoryModel")
    const info = rt.cls("_ANEDeviceInfo")
    expect(fake.checkSignature(model, "inMemoryModelWithDescriptor:", "id(id)")).toBe(true)
    expect(fake.checkSignature(info, "inMemoryModelWithDescriptor:", "id(id)")).toBe(false)
    // numANECores is a class method of _ANEDeviceInfo but an instance method of _ANEVirtualClient.
    expect(fake.checkSignature(info, "numANECores", "uint32()")).toBe(true)
    const array = rt.mutableArray()
    expect(fake.checkSignature(array, "count", "uint64()")).toBe(true)
    expect(fake.checkSignature(array, "intValue", "int32()")).toBe(false)
    rt.release(array)
    expect(fake.mismatches()).toBe(2)
    expect(fake.lastRejection()).toBe("signature int32() for -[NSMutableArray intValue] (Appendix A: none)")
    fake.reset()
  })

  it("an unknown selector ends the process with the selector's name, as NSInvalidArgumentException does", async () => {
    const script = [
      `import { openObjc } from ${JSON.stringify(new URL("../../src/native/objc.ts", import.meta.url).pathname)}`,
      `const p = ${JSON.stringify(fake.paths.objc)}`,
      "const rt = openObjc({ objc: p, foundation: p, coreFoundation: p, ioSurface: p, ane: p })",
      "rt.autoreleasePool(() => rt.id(rt.cls(\"NSString\"), \"stringWithFormat:\", \"id(str)\", \"x\"))",
      "console.log(\"still running\")"
    ].join("\n")
    const { code, signal, stderr, stdout } = await new Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }>(
      (resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: "pipe" })
        let stderr = ""
        let stdout = ""
        child.stderr.on("data", (d) => (stderr += String(d)))
        child.stdout.on("data", (d) => (stdout += String(d)))
        child.on("close", (code, signal) => resolve({ code, signal, stderr, stdout }))
      }
    )
    expect(stdout).not.toContain("still running")
    expect(signal ?? String(code)).toBe("SIGABRT")
    expect(stderr).toContain("NSInvalidArgumentException")
    expect(stderr).toContain("+[NSString stringWithFormat:]: unrecognized selector sent to class")
  })

  it("CFDictionaryCreate with NULL callbacks compares keys by pointer: a fresh key string misses", () => {
    const before = fake.live()
    const values = [32, 2, 2, 64, 128, 0].map((n) => rt.cfNumber(n))
    const keys = ["IOSurfaceWidth", "IOSurfaceHeight", "IOSurfaceBytesPerElement", "IOSurfaceBytesPerRow", "IOSurfaceAllocSize", "IOSurfacePixelFormat"]
    const fresh = keys.map((k) => rt.cfString(k))
    const create = koffi.load(fake.paths.coreFoundation).func("CFDictionaryCreate", "void *", ["void *", "void *", "void *", "int64_t", "void *", "void *"])
    const raw = toId(create(null, new BigUint64Array(fresh), new BigUint64Array(values), 6, null, null))
    expect(rt.ioSurfaceCreate(raw)).toBe(nil)
    // The same fresh strings in a kCFType dictionary are found by value.
    const typed = rt.cfDictionary(fresh, values)
    const surface = rt.ioSurfaceCreate(typed)
    expect(surface).not.toBe(nil)
    for (const o of [surface, raw, typed, ...fresh, ...values]) rt.cfRelease(o)
    expect(fake.live()).toBe(before)
  })

  it("creates, views and frees an IOSurface through the C API", () => {
    const before = fake.live()
    const keys = ["IOSurfaceWidth", "IOSurfaceHeight", "IOSurfaceBytesPerElement", "IOSurfaceBytesPerRow", "IOSurfaceAllocSize", "IOSurfacePixelFormat"]
    const values = [32, 2, 2, 64, 128, 0]
    const k = keys.map((s) => rt.ioSurfaceKey(`k${s}` as IOSurfaceKey))
    const v = values.map((n) => rt.cfNumber(n))
    const dict = rt.cfDictionary(k, v)
    const surface = rt.ioSurfaceCreate(dict)
    for (const o of [dict, ...v]) rt.cfRelease(o)
    expect(surface).not.toBe(nil)
    expect(rt.ioSurfaceAllocSize(surface)).toBe(128)
    expect(rt.ioSurfaceLock(surface, 0)).toBe(0)
    const view = rt.view(rt.ioSurfaceBase(surface), 128)
    view[127] = 9
    expect(rt.view(rt.ioSurfaceBase(surface), 128)[127]).toBe(9)
    rt.ioSurfaceUnlock(surface, 0)
    rt.cfRelease(surface)
    expect(fake.live()).toBe(before)
  })

  it("the fake tracks IOSurface locks: a CPU write with no write lock held is caught", () => {
    const keys = ["kIOSurfaceWidth", "kIOSurfaceHeight", "kIOSurfaceBytesPerElement", "kIOSurfaceBytesPerRow", "kIOSurfaceAllocSize", "kIOSurfacePixelFormat"] as const
    const v = [32, 2, 2, 64, 128, 0].map((n) => rt.cfNumber(n))
    const dict = rt.cfDictionary(keys.map((k) => rt.ioSurfaceKey(k)), v)
    const surface = rt.ioSurfaceCreate(dict)
    for (const o of [dict, ...v]) rt.cfRelease(o)
    fake.reset()
    const view = rt.view(rt.ioSurfaceBase(surface), 128)
    expect(fake.surfaceLocks(view)).toBe(0)
    // Under a write lock: fine.
    rt.ioSurfaceLock(surface, 0)
    expect(fake.surfaceLocks(view)).toBe(1)
    view[0] = 1
    rt.ioSurfaceUnlock(surface, 0)
    expect(fake.surfaceMisuse("unlocked")).toBe(0)
    // With no lock: caught at the next lock.
    view[1] = 2
    rt.ioSurfaceLock(surface, 1)
    rt.ioSurfaceUnlock(surface, 1)
    expect(fake.surfaceMisuse("unlocked")).toBe(1)
    // Under a read-only lock: caught at its unlock.
    rt.ioSurfaceLock(surface, 1)
    view[2] = 3
    rt.ioSurfaceUnlock(surface, 1)
    expect(fake.surfaceMisuse("unlocked")).toBe(2)
    // An unlock with no lock held is refused.
    expect(rt.ioSurfaceUnlock(surface, 0)).not.toBe(0)
    expect(fake.surfaceMisuse("lock")).toBe(1)
    rt.cfRelease(surface)
    fake.reset()
  })

  it("NSTemporaryDirectory() is Foundation's folder, not $TMPDIR", () => {
    const dir = rt.autoreleasePool(() => rt.nsTemporaryDirectory())
    expect(dir).toBe(fake.temporaryDirectory())
    expect(dir.endsWith("/")).toBe(true)
    expect(dir.replace(/\/$/, "")).not.toBe((process.env["TMPDIR"] ?? "/tmp").replace(/\/$/, ""))
  })
})
