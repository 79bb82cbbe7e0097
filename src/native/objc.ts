/**
 * A small Objective-C runtime binding over koffi: library loading by path, classes, cached selectors, one typed
 * `objc_msgSend` cast per C signature (spec/native-protocol.md Appendix A), Foundation/CoreFoundation/IOSurface
 * wrappers and autorelease-pool discipline (§14.1). The same code drives the real runtime and the C fake in tests.
 */
import { koffi, type LibraryHandle } from "./koffi.js"

/** An Objective-C object, class or CF object pointer; `0n` is nil. */
export type Id = bigint

/** The nil object. */
export const nil: Id = 0n

/**
 * C types used in message signatures: `id`/`SEL`/`ptr` are pointers, `err` is an `NSError**` slot, `str` a
 * `const char*`, `bool` a one-byte BOOL.
 */
export type CType = "void" | "id" | "SEL" | "ptr" | "err" | "str" | "bool" | "int8" | "int32" | "uint32" | "int64" | "uint64"

/** A message signature written `ret(arg,arg,…)` without the implicit self and _cmd, e.g. `bool(uint32,id,err)`. */
export type Signature = string

/** Paths of the libraries the runtime needs; tests point all of them at the fake. */
export interface ObjcPaths {
  readonly objc: string
  readonly foundation: string
  readonly coreFoundation: string
  readonly ioSurface: string
  readonly ane: string
}

/** The six IOSurface property keys of §7.1, exported by IOSurface.framework as CFStringRef constants. */
export const IOSURFACE_KEYS = [
  "kIOSurfaceWidth",
  "kIOSurfaceHeight",
  "kIOSurfaceBytesPerElement",
  "kIOSurfaceBytesPerRow",
  "kIOSurfaceAllocSize",
  "kIOSurfacePixelFormat"
] as const

/** One of {@link IOSURFACE_KEYS}. */
export type IOSurfaceKey = (typeof IOSURFACE_KEYS)[number]

/** The libraries on macOS (all inside the dyld shared cache, so never checked on disk). */
export const MACOS_PATHS: ObjcPaths = {
  objc: "/usr/lib/libobjc.A.dylib",
  foundation: "/System/Library/Frameworks/Foundation.framework/Foundation",
  coreFoundation: "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation",
  ioSurface: "/System/Library/Frameworks/IOSurface.framework/IOSurface",
  ane: "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"
}

/** What an `NSError` said: `-domain`, `-code`, `-localizedDescription`. */
export interface NSErrorInfo {
  readonly domain: string
  readonly code: number
  readonly description: string
}

/**
 * Outcome of an `…error:` message. YES is success even when the NSError slot was also written (Cocoa's rule: the
 * error is meaningful only with NO; some framework paths leave one behind on success). NO is a failure, with the
 * NSError's details when there is one.
 */
export type ErrorResult = { readonly ok: true } | { readonly ok: false; readonly error: NSErrorInfo | undefined }

/** Options of {@link openObjc}. */
export interface ObjcOptions {
  /** Called before every message with the selector, the signature it is cast to and the receiver (tests check it). */
  readonly onSend?: (selector: string, signature: Signature, receiver: Id) => void
}

const koffiType: Record<CType, string> = {
  void: "void",
  id: "void *",
  SEL: "void *",
  ptr: "void *",
  err: "void *",
  str: "const char *",
  bool: "bool",
  int8: "int8_t",
  int32: "int32_t",
  uint32: "uint32_t",
  int64: "int64_t",
  uint64: "uint64_t"
}

type KoffiFn = ReturnType<LibraryHandle["func"]>

const parseSignature = (signature: Signature): { readonly ret: CType; readonly args: ReadonlyArray<CType> } => {
  const m = /^(\w+)\(([\w,]*)\)$/.exec(signature)
  if (m === null) throw new TypeError(`bad message signature ${signature}`)
  const check = (t: string): CType => {
    if (!(t in koffiType)) throw new TypeError(`bad C type ${t} in ${signature}`)
    return t as CType
  }
  return { ret: check(m[1]!), args: m[2] === "" ? [] : m[2]!.split(",").map(check) }
}

/** Normalises a koffi pointer result (null or bigint) to an {@link Id}. */
export const toId = (p: unknown): Id => (p === null || p === undefined ? 0n : typeof p === "bigint" ? p : BigInt(p as number))

/** A loaded Objective-C runtime with the calls the backend needs. Every method is synchronous and may throw. */
export class Objc {
  private readonly sels = new Map<string, bigint>()
  /** Registered classes never go away, so a found class is looked up once (a miss is asked again). */
  private readonly classes = new Map<string, Id>()
  /** Spare NSError** slots for synchronous `…error:` messages (a stack: a message may run JS that sends another). */
  private readonly slots: Array<BigUint64Array> = []
  private readonly casts = new Map<Signature, KoffiFn>()
  private readonly getClassFn: KoffiFn
  private readonly selFn: KoffiFn
  private readonly poolPush: KoffiFn
  private readonly poolPop: KoffiFn
  private readonly temporaryDirectory: KoffiFn
  /** `&kCFTypeDictionaryKeyCallBacks` and `&kCFTypeDictionaryValueCallBacks`. */
  private readonly cfTypeCallBacks: { readonly keys: Id; readonly values: Id }
  private readonly surfaceKeys = new Map<IOSurfaceKey, Id>()
  private readonly cf: {
    readonly string: KoffiFn
    readonly number: KoffiFn
    readonly dictionary: KoffiFn
    readonly release: KoffiFn
    readonly retain: KoffiFn
  }
  private readonly surface: {
    readonly create: KoffiFn
    readonly lock: KoffiFn
    readonly unlock: KoffiFn
    readonly base: KoffiFn
    readonly allocSize: KoffiFn
  }

  constructor(
    readonly libs: {
      readonly objc: LibraryHandle
      readonly foundation: LibraryHandle
      readonly cf: LibraryHandle
      readonly io: LibraryHandle
      readonly ane: LibraryHandle
    },
    private readonly options: ObjcOptions = {}
  ) {
    const o = libs.objc
    this.getClassFn = o.func("objc_getClass", "void *", ["const char *"])
    this.selFn = o.func("sel_registerName", "void *", ["const char *"])
    this.poolPush = o.func("objc_autoreleasePoolPush", "void *", [])
    this.poolPop = o.func("objc_autoreleasePoolPop", "void", ["void *"])
    this.temporaryDirectory = libs.foundation.func("NSTemporaryDirectory", "void *", [])
    const c = libs.cf
    // Addresses of CoreFoundation's callback tables (data symbols), passed as-is to CFDictionaryCreate.
    this.cfTypeCallBacks = {
      keys: toId(c.symbol("kCFTypeDictionaryKeyCallBacks")),
      values: toId(c.symbol("kCFTypeDictionaryValueCallBacks"))
    }
    this.cf = {
      string: c.func("CFStringCreateWithCString", "void *", ["void *", "const char *", "uint32_t"]),
      // CFNumberType is a CFIndex: a pointer-sized signed integer (errata D14).
      number: c.func("CFNumberCreate", "void *", ["void *", "int64_t", "void *"]),
      dictionary: c.func("CFDictionaryCreate", "void *", ["void *", "void *", "void *", "int64_t", "void *", "void *"]),
      release: c.func("CFRelease", "void", ["void *"]),
      retain: c.func("CFRetain", "void *", ["void *"])
    }
    const s = libs.io
    this.surface = {
      create: s.func("IOSurfaceCreate", "void *", ["void *"]),
      lock: s.func("IOSurfaceLock", "int32_t", ["void *", "uint32_t", "void *"]),
      unlock: s.func("IOSurfaceUnlock", "int32_t", ["void *", "uint32_t", "void *"]),
      base: s.func("IOSurfaceGetBaseAddress", "void *", ["void *"]),
      allocSize: s.func("IOSurfaceGetAllocSize", "uint64_t", ["void *"])
    }
  }

  /** `objc_getClass`; nil when the class is not registered. */
  cls(name: string): Id {
    let cls = this.classes.get(name)
    if (cls === undefined) {
      cls = toId(this.getClassFn(name))
      if (cls !== nil) this.classes.set(name, cls)
    }
    return cls
  }

  /**
   * An exported `NSString *` constant of the AppleNeuralEngine framework (dlsym, then dereference), or nil when the
   * symbol is missing; its value need not equal its name (errata D1).
   */
  constant(name: string): Id {
    try {
      const address = toId(this.libs.ane.symbol(name))
      return address === nil ? nil : toId(koffi().decode(address, "void *"))
    } catch {
      return nil
    }
  }

  /** `sel_registerName`, cached per name. */
  sel(name: string): bigint {
    let s = this.sels.get(name)
    if (s === undefined) {
      s = toId(this.selFn(name))
      this.sels.set(name, s)
    }
    return s
  }

  /** The `objc_msgSend` cast for one signature (built once, then cached by signature string). */
  cast(signature: Signature): KoffiFn {
    let fn = this.casts.get(signature)
    if (fn === undefined) {
      const { args, ret } = parseSignature(signature)
      // The same symbol declared once per exact prototype: objc_msgSend is never called as variadic.
      fn = this.libs.objc.func("objc_msgSend", koffiType[ret], ["void *", "void *", ...args.map((a) => koffiType[a])])
      this.casts.set(signature, fn)
    }
    return fn
  }

  /** Sends `selector` to `receiver` through the cast for `signature`. */
  send(receiver: Id, selector: string, signature: Signature, ...args: ReadonlyArray<unknown>): unknown {
    this.options.onSend?.(selector, signature, receiver)
    return this.cast(signature)(receiver, this.sel(selector), ...args)
  }

  /** Reports a message another thread will send (the eval pool's), so `onSend` sees every message. */
  announce(receiver: Id, selector: string, signature: Signature): void {
    this.options.onSend?.(selector, signature, receiver)
  }

  /** Sends a message returning an object. */
  id(receiver: Id, selector: string, signature: Signature = "id()", ...args: ReadonlyArray<unknown>): Id {
    return toId(this.send(receiver, selector, signature, ...args))
  }

  /** Sends a message returning BOOL. */
  bool(receiver: Id, selector: string, signature: Signature = "bool()", ...args: ReadonlyArray<unknown>): boolean {
    return Boolean(this.send(receiver, selector, signature, ...args))
  }

  /** Sends a message returning an integer (uint32/int32/int64 per signature) as a number. */
  int(receiver: Id, selector: string, signature: Signature, ...args: ReadonlyArray<unknown>): number {
    return Number(this.send(receiver, selector, signature, ...args))
  }

  /**
   * Sends an `…error:` message (the NSError** slot is appended) and applies §4.4: an NSError means failure even
   * with YES; NO without an NSError is a failure with no details. The NSError is read inside the caller's pool.
   */
  sendError(receiver: Id, selector: string, signature: Signature, ...args: ReadonlyArray<unknown>): ErrorResult {
    const slot = this.slots.pop() ?? new BigUint64Array(1)
    slot[0] = 0n
    try {
      const ok = Boolean(this.send(receiver, selector, signature, ...args, slot))
      return this.errorResult(ok, slot)
    } finally {
      this.slots.push(slot)
    }
  }

  private errorResult(ok: boolean, slot: BigUint64Array): ErrorResult {
    if (ok) return { ok: true }
    const err = slot[0]!
    return { ok: false, error: err !== 0n ? this.nsError(err) : undefined }
  }

  /** Reads an NSError's domain, code and localized description. */
  nsError(error: Id): NSErrorInfo {
    return {
      domain: this.string(this.id(error, "domain")),
      code: this.int(error, "code", "int64()"),
      description: this.string(this.id(error, "localizedDescription"))
    }
  }

  /** Whether `receiver` (a class for class methods) answers `selector` (`respondsToSelector:`). */
  responds(receiver: Id, selector: string): boolean {
    return this.bool(receiver, "respondsToSelector:", "bool(SEL)", this.sel(selector))
  }

  /** Runs `f` inside `objc_autoreleasePoolPush` / `objc_autoreleasePoolPop` on the calling thread. */
  autoreleasePool<A>(f: () => A): A {
    const pool = this.poolPush()
    try {
      return f()
    } finally {
      this.poolPop(pool)
    }
  }

  /** `-retain`; returns the object. */
  retain(object: Id): Id {
    if (object !== nil) this.send(object, "retain", "id()")
    return object
  }

  /** `-release` (no-op for nil). */
  release(object: Id): void {
    if (object !== nil) this.send(object, "release", "void()")
  }

  // Foundation wrappers. "+0" results are autoreleased and must be used inside a pool or retained.

  /** `+[NSString stringWithUTF8String:]` (+0). */
  nsString(text: string): Id {
    return this.id(this.cls("NSString"), "stringWithUTF8String:", "id(str)", text)
  }

  /** An NSString's UTF-8 text (via `-UTF8String`); "" for nil. */
  string(object: Id): string {
    if (object === nil) return ""
    const text = this.send(object, "UTF8String", "str()")
    return typeof text === "string" ? text : ""
  }

  /** Any object's `-description` text; "" for nil. */
  describe(object: Id): string {
    return object === nil ? "" : this.string(this.id(object, "description"))
  }

  /** `+[NSNumber numberWithInt:]` (+0). */
  numberInt(value: number): Id {
    return this.id(this.cls("NSNumber"), "numberWithInt:", "id(int32)", value)
  }

  /** `+[NSNumber numberWithUnsignedLongLong:]` (+0). */
  numberU64(value: bigint): Id {
    return this.id(this.cls("NSNumber"), "numberWithUnsignedLongLong:", "id(uint64)", value)
  }

  /** `+[NSNumber numberWithBool:]` (+0). */
  numberBool(value: boolean): Id {
    return this.id(this.cls("NSNumber"), "numberWithBool:", "id(bool)", value)
  }

  /** `-[NSNumber intValue]`. */
  intValue(number: Id): number {
    return this.int(number, "intValue", "int32()")
  }

  /** NSData holding a copy of `bytes` (+1: `alloc`/`initWithBytes:length:`, or `new` when empty). */
  data(bytes: Uint8Array): Id {
    const cls = this.cls("NSData")
    if (bytes.length === 0) return this.id(cls, "new")
    return this.id(this.id(cls, "alloc"), "initWithBytes:length:", "id(ptr,uint64)", bytes, bytes.length)
  }

  /** `+[NSMutableDictionary new]` (+1). */
  mutableDictionary(): Id {
    return this.id(this.cls("NSMutableDictionary"), "new")
  }

  /** `-setObject:forKey:` with an object key. */
  setObjectForKeyObject(dictionary: Id, key: Id, value: Id): void {
    this.send(dictionary, "setObject:forKey:", "void(id,id)", value, key)
  }

  /** `-setObject:forKey:` with an NSString key. */
  setObject(dictionary: Id, key: string, value: Id): void {
    this.send(dictionary, "setObject:forKey:", "void(id,id)", value, this.nsString(key))
  }

  /** `-objectForKey:` with an NSString key; nil when absent. */
  objectForKey(dictionary: Id, key: string): Id {
    return this.id(dictionary, "objectForKey:", "id(id)", this.nsString(key))
  }

  /** `+[NSMutableArray new]` (+1). */
  mutableArray(): Id {
    return this.id(this.cls("NSMutableArray"), "new")
  }

  /** `-addObject:`. */
  addObject(array: Id, object: Id): void {
    this.send(array, "addObject:", "void(id)", object)
  }

  /** `-count` of an NSArray. */
  count(array: Id): number {
    return this.int(array, "count", "uint64()")
  }

  /** `-objectAtIndex:`. */
  objectAt(array: Id, index: number): Id {
    return this.id(array, "objectAtIndex:", "id(uint64)", index)
  }

  // CoreFoundation and IOSurface C functions.

  /** `CFStringCreateWithCString(NULL, s, kCFStringEncodingUTF8)` (+1). */
  cfString(text: string): Id {
    return toId(this.cf.string(null, text, 0x08000100))
  }

  /** `CFNumberCreate(NULL, kCFNumberSInt64Type, &v)` (+1). */
  cfNumber(value: number): Id {
    return toId(this.cf.number(null, 4, new BigInt64Array([BigInt(value)])))
  }

  /**
   * `CFDictionaryCreate(NULL, keys, values, n, &kCFTypeDictionaryKeyCallBacks, &kCFTypeDictionaryValueCallBacks)`
   * (+1): the dictionary retains its keys and values and compares keys with CFEqual, so the caller may release its
   * own references at once.
   */
  cfDictionary(keys: ReadonlyArray<Id>, values: ReadonlyArray<Id>): Id {
    const { keys: kcb, values: vcb } = this.cfTypeCallBacks
    return toId(this.cf.dictionary(null, new BigUint64Array(keys), new BigUint64Array(values), keys.length, kcb, vcb))
  }

  /**
   * An IOSurface property key: the framework's exported `kIOSurface…` CFStringRef (dlsym, then dereference), cached;
   * throws when the symbol is missing.
   */
  ioSurfaceKey(name: IOSurfaceKey): Id {
    let key = this.surfaceKeys.get(name)
    if (key === undefined) {
      const address = toId(this.libs.io.symbol(name))
      key = address === nil ? nil : toId(koffi().decode(address, "void *"))
      if (key === nil) throw new Error(`IOSurface.framework exports no ${name}`)
      this.surfaceKeys.set(name, key)
    }
    return key
  }

  /** Foundation's `NSTemporaryDirectory()` (ends with a slash); call inside a pool (+0). */
  nsTemporaryDirectory(): string {
    return this.string(toId(this.temporaryDirectory()))
  }

  /** `CFRetain` (+1; no-op for NULL); returns its argument. */
  cfRetain(object: Id): Id {
    if (object !== nil) this.cf.retain(object)
    return object
  }

  /** `CFRelease` (no-op for NULL). */
  cfRelease(object: Id): void {
    if (object !== nil) this.cf.release(object)
  }

  /** `IOSurfaceCreate(properties)` (+1); nil on failure. */
  ioSurfaceCreate(properties: Id): Id {
    return toId(this.surface.create(properties))
  }

  /** `IOSurfaceLock(ref, options, NULL)`; 0 on success. */
  ioSurfaceLock(surface: Id, options: number): number {
    return Number(this.surface.lock(surface, options, null))
  }

  /** `IOSurfaceUnlock(ref, options, NULL)`. */
  ioSurfaceUnlock(surface: Id, options: number): number {
    return Number(this.surface.unlock(surface, options, null))
  }

  /** `IOSurfaceGetBaseAddress`. */
  ioSurfaceBase(surface: Id): Id {
    return toId(this.surface.base(surface))
  }

  /** `IOSurfaceGetAllocSize`. */
  ioSurfaceAllocSize(surface: Id): number {
    return Number(this.surface.allocSize(surface))
  }

  /** A zero-copy byte view of native memory (`koffi.view`). */
  view(address: Id, length: number): Uint8Array {
    return new Uint8Array(koffi().view(address, length))
  }
}

const loaded = new Map<string, LibraryHandle>()

// A library stays loaded for the life of the process: unloading under live functions would crash (koffi load.md).
const load = (path: string) => {
  let lib = loaded.get(path)
  if (lib === undefined) {
    lib = koffi().load(path, { global: true })
    loaded.set(path, lib)
  }
  return lib
}

/**
 * Loads the runtime, Foundation, CoreFoundation, IOSurface and AppleNeuralEngine (in §1 order) and binds them.
 * Throws when a library will not load.
 */
export const openObjc = (paths: ObjcPaths, options: ObjcOptions = {}): Objc => {
  const objc = load(paths.objc)
  const foundation = load(paths.foundation)
  const cf = load(paths.coreFoundation)
  const io = load(paths.ioSurface)
  const ane = load(paths.ane)
  return new Objc({ objc, foundation, cf, io, ane }, options)
}
