import { describe, expect, it } from "vitest"
import { nil } from "../../src/native/objc.js"
import { loadFake } from "./fake.js"

describe("Objective-C binding over the fake runtime", () => {
  const fake = loadFake()
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

  it("the fake rejects selectors and signatures outside Appendix A", () => {
    fake.reset()
    expect(fake.checkSignature("compileWithQoS:options:error:", "bool(uint32,id,err)")).toBe(true)
    expect(fake.checkSignature("compileWithQoS:options:error:", "bool(int64,id,err)")).toBe(false)
    expect(fake.mismatches()).toBe(1)
    expect(rt.id(rt.cls("NSString"), "stringWithFormat:", "id(str)", "x")).toBe(nil)
    expect(fake.rejected()).toBe(1)
    expect(fake.lastRejection()).toBe("+[NSString stringWithFormat:]")
    fake.reset()
  })

  it("creates, views and frees an IOSurface through the C API", () => {
    const before = fake.live()
    const keys = ["IOSurfaceWidth", "IOSurfaceHeight", "IOSurfaceBytesPerElement", "IOSurfaceBytesPerRow", "IOSurfaceAllocSize", "IOSurfacePixelFormat"]
    const values = [32, 2, 2, 64, 128, 0]
    const k = keys.map((s) => rt.cfString(s))
    const v = values.map((n) => rt.cfNumber(n))
    const dict = rt.cfDictionary(k, v)
    const surface = rt.ioSurfaceCreate(dict)
    for (const o of [dict, ...k, ...v]) rt.cfRelease(o)
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
})
