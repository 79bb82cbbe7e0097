/*
 * A fake Objective-C runtime plus fake Foundation, CoreFoundation, IOSurface and AppleNeuralEngine classes, so the
 * native backend runs on Linux, and strict where a real Mac is:
 * - objc_msgSend dispatches on (receiver class, selector); a message nobody implements (or a hidden one) ends the
 *   process with NSInvalidArgumentException's text naming the receiver and selector, as the real runtime does.
 * - Signatures (spec/native-protocol.md Appendix A) are looked up per receiver class (fake_check_signature).
 * - CFDictionaryCreate with NULL callbacks retains nothing and compares keys by pointer, so IOSurfaceCreate finds its
 *   properties only under the exported kIOSurface* constants; with the kCFType callbacks keys compare by value.
 * - IOSurface CPU locks are tracked: content that changed while no write lock was held is counted (checked at the
 *   next lock, unlock of a read-only lock, or evaluation).
 * - Autorelease pools are per thread: an object autoreleased with no pool on its thread is counted as leaked, and so
 *   is every message sent outside a pool.
 * - NSTemporaryDirectory() is a folder of its own, not $TMPDIR; in-memory models read model.mil from their
 *   -localModelPath (or NSTemporaryDirectory()/<hex> when that selector is hidden); QoS 0 is refused.
 * - A stage can answer YES while also storing an NSError (fake_spurious_error).
 * - The state lock guards bookkeeping only: an evaluation runs (delay, hold, JS callback, stack use) and a wait
 *   blocks without it, so calls from several threads really overlap (fake_in_flight_max).
 * Every message is logged as "+Class sel" / "-Class sel"; live instances are counted; evaluation calls a registered
 * callback with the surfaces' base addresses. Failures can be injected per stage. The §13 telemetry classes report
 * what the test sets through the fake_stats_* / fake_set_* controls, and any (class, selector) pair can be hidden
 * (respondsToSelector: NO). The client's §14.5 real-time selectors count active tasks and evaluate through the same
 * callback. CFRetain/CFRelease of an IOSurface are logged, and fake_surface_refs reports a live surface's retain
 * count by its base address. `_ANEClient` answers the four §3 acquisition steps as fake_client_step sets them; owned
 * clients are counted per origin (retains, releases, alive) and become zombies when freed, so a message after the
 * last release is caught.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t u64;

enum Kind {
  K_NSString, K_NSNumber, K_NSArray, K_NSMutableArray, K_NSDictionary, K_NSMutableDictionary, K_NSData, K_NSError,
  K_ANEDeviceInfo, K_ANEInMemoryModelDescriptor, K_ANEInMemoryModel, K_ANEModel, K_ANEClient, K_ANERequest,
  K_ANEIOSurfaceObject, K_IOSurface, K_IOSurfaceSharedEvent, K_NSURL, K_ANESharedSignalEvent, K_ANESharedWaitEvent,
  K_ANESharedEvents, K_ANEPerformanceStats, K_ANEVirtualClient, K_ANEProgramForEvaluation, K_COUNT
};

static const char *const NAMES[K_COUNT] = {
  "NSString", "NSNumber", "NSArray", "NSMutableArray", "NSDictionary", "NSMutableDictionary", "NSData", "NSError",
  "_ANEDeviceInfo", "_ANEInMemoryModelDescriptor", "_ANEInMemoryModel", "_ANEModel", "_ANEClient", "_ANERequest",
  "_ANEIOSurfaceObject", "IOSurface", "IOSurfaceSharedEvent", "NSURL", "_ANESharedSignalEvent", "_ANESharedWaitEvent",
  "_ANESharedEvents", "_ANEPerformanceStats", "_ANEVirtualClient", "_ANEProgramForEvaluation"
};

#define MAGIC_CLASS 0xC1A55u
#define MAGIC_OBJ 0x0B1ECu
#define MAGIC_ZOMBIE 0x2DEADu

typedef struct Obj Obj;
struct Obj {
  unsigned magic;
  int kind;
  int rc;
  int initialised;
  int uncounted;           /* owned by a test control, not counted as live */
  /* payload (only the fields of this kind are used) */
  char *str;               /* NSString */
  int64_t num;             /* NSNumber */
  Obj **items;             /* NSArray: retained values; NSDictionary: values */
  Obj **keys;              /* NSDictionary: retained NSString keys */
  size_t n, cap;
  unsigned char *bytes;    /* NSData, IOSurface */
  size_t len;
  Obj *a, *b, *c, *d, *e, *f;  /* related objects, retained */
  Obj *g;                  /* _ANERequest: attached perf stats, retained */
  int64_t code;            /* NSError code */
  u64 mask;                /* perfStatsMask */
  int compiled, loaded, mapped;
  int raw;                 /* CFDictionary made with NULL callbacks: keys unretained, compared by pointer */
  int locks, write_lock;   /* IOSurface: CPU locks held, and whether one of them allows writing */
  u64 sum;                 /* IOSurface: content checksum when the CPU last gave it up (or the engine wrote it) */
  char hex[17];
};

static Obj CLASSES[K_COUNT];
static pthread_mutex_t LOCK = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t SIGNALED = PTHREAD_COND_INITIALIZER;
static unsigned next_port = 0x1000;
static long live = 0, rejected = 0, orphans = 0, sig_mismatches = 0;
/* IOSurface misuse: content changed while no CPU lock allowed writing, unlock without lock, bad lock options. */
static long unlocked_writes = 0, lock_errors = 0;
/* Messages sent on a thread with no autorelease pool pushed (the library wraps every native call in one). */
static long unpooled = 0;
static char last_unpooled[160];
/* Evaluations inside the engine right now and the most at once; each one sleeps eval_delay_us (lock released). */
static long in_flight = 0, in_flight_max = 0, eval_delay_us = 0;
/* While set, evaluations wait inside the engine (counted in flight) until it is cleared. */
static int hold_evals = 0;
static pthread_cond_t RELEASED = PTHREAD_COND_INITIALIZER;
/* Stack each evaluation uses inside the engine (bytes), as the framework's deep evaluate and XPC paths do. */
static long eval_stack_bytes = 0;
/* Per stage: the calls that succeed (YES) but also store an NSError, as some framework paths do. */
static long spurious_from[16], spurious_count[16];
/* Shared-event evaluations of package models since fake_reset. */
static long shared_event_evals = 0;
static char last_rejection[512];
static char *logbuf = NULL;
static size_t loglen = 0, logcap = 0;
static Obj *attributes = NULL;
static int client_path = 1; /* whether in-memory models expose -sharedConnection */
static Obj the_client;
typedef int (*EvalCallback)(const char *hex, int nin, void **inputs, int nout, void **outputs);
static EvalCallback eval_cb = NULL;

/* Injected failures: stage index -> calls so far, first failing call, number of failing calls, code. */
enum Stage { S_DESCRIPTOR, S_COMPILE, S_LOAD, S_MAP, S_EVAL, S_SURFACE, S_REQUEST, S_RT_BEGIN, S_RT_END, S_RT_EVAL, S_COUNT };
static const char *const STAGES[S_COUNT] = {
  "descriptor", "compile", "load", "map", "eval", "surface", "request", "rt-begin", "rt-end", "rt-eval"
};
static long calls[S_COUNT], fail_from[S_COUNT], fail_count[S_COUNT];
static int64_t fail_code[S_COUNT];

/* Telemetry controls (§13). A request's attached stats object gets stats_hw_ns at each evaluation; perfStatsArray
   holds stats_entries fresh objects reporting stats_array_hw_ns; names, counters and data are shared by all. */
static u64 stats_hw_ns = 0, stats_array_hw_ns = 0;
static long stats_entries = 0;
static int stats_factory = 1;
static Obj *stats_counter_data = NULL, *stats_raw_data = NULL, *stats_counters = NULL;
static char **stats_names = NULL;
static long stats_nnames = 0;
/* The virtual client `-[_ANEClient virtualClient]` returns when on. */
static Obj the_vclient;
static struct { int on; uint32_t anes, cores, iface; char arch[64]; int64_t board; u64 mask; int precompiled; } vclient;
/* Per model class (0: _ANEInMemoryModel, 1: _ANEModel): queue, program and state answers. */
typedef struct { int queue, has_program, prog_queue; int64_t inflight; u64 prog_handle, handle, state; } Diag;
static Diag diags[2];
static Obj the_programs[2];
/* Hidden messages, written as log lines ("+Class sel" / "-Class sel"): not answered, respondsToSelector: NO. */
static char *hidden[64];
static int nhidden = 0;
/* Real-time tasks of the client (§14.5) begun and not yet ended. */
static long rt_active = 0;
/* §3 client acquisition: what each step answers (0: not implemented, respondsToSelector: NO; 1: nil; 2: an object). */
enum { CS_PRIVATE, CS_SHARED, CS_ALLOC, CS_INIT, CS_NEW, CS_COUNT };
static const char *const CLIENT_STEPS[CS_COUNT] = {
  "sharedPrivateConnection", "sharedConnection", "alloc", "initWithRestrictedAccessAllowed:", "new"
};
static const int CLIENT_DEFAULTS[CS_COUNT] = {0, 2, 2, 2, 2};
static int client_mode[CS_COUNT] = {0, 2, 2, 2, 2};
/* A client's origin (its Obj.code): 1 sharedPrivateConnection, 2 sharedConnection, 3 alloc+init, 4 new. Per origin:
   retain and release messages since fake_reset, and instances alive. A freed client becomes a zombie: any message
   to it is rejected and counted. */
#define CLIENT_ORIGINS 5
static long client_retains[CLIENT_ORIGINS], client_releases[CLIENT_ORIGINS], client_alive[CLIENT_ORIGINS];
static long zombie_messages = 0;
static Obj the_private_client;

/* Time spent inside the fake's entry points (objc_msgSend, pools), so a benchmark can take it out of the host's. */
static u64 busy_ns = 0;
static u64 now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (u64)t.tv_sec * 1000000000ULL + (u64)t.tv_nsec;
}
static void busy_since(u64 t0) { __atomic_fetch_add(&busy_ns, now_ns() - t0, __ATOMIC_RELAXED); }

static void log_line(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  if (loglen + n + 2 > logcap) {
    logcap = (logcap + n + 2) * 2;
    logbuf = realloc(logbuf, logcap);
  }
  memcpy(logbuf + loglen, line, n);
  loglen += n;
  logbuf[loglen++] = '\n';
  logbuf[loglen] = 0;
}

/* ---- object lifetime ---- */

static Obj *mk(int kind) {
  Obj *o = calloc(1, sizeof(Obj));
  o->magic = MAGIC_OBJ;
  o->kind = kind;
  o->rc = 1;
  o->initialised = 1;
  live++;
  return o;
}

static int is_obj(const void *p) { return p != NULL && ((const Obj *)p)->magic == MAGIC_OBJ; }
static int is_class(const void *p) { return p != NULL && ((const Obj *)p)->magic == MAGIC_CLASS; }

static Obj *retain(Obj *o) {
  if (is_obj(o)) o->rc++;
  return o;
}

static void release(Obj *o);

/* Live IOSurfaces, so a test can ask for the retain count of the one behind a byte view (fake_surface_refs). */
static Obj **surfaces_live = NULL;
static size_t nsurfaces = 0, capsurfaces = 0;

static void surface_forget(Obj *o) {
  for (size_t i = 0; i < nsurfaces; i++) {
    if (surfaces_live[i] == o) {
      surfaces_live[i] = surfaces_live[--nsurfaces];
      return;
    }
  }
}

static void dealloc(Obj *o) {
  if (o->kind == K_ANEClient) {
    /* Kept as a zombie (never freed) so an over-release or a later message is caught, not undefined. */
    if (o->code > 0 && o->code < CLIENT_ORIGINS) client_alive[o->code]--;
    o->magic = MAGIC_ZOMBIE;
    if (!o->uncounted) live--;
    return;
  }
  if (o->kind == K_IOSurface) surface_forget(o);
  for (size_t i = 0; i < o->n && !o->raw; i++) {
    release(o->items[i]);
    if (o->keys) release(o->keys[i]);
  }
  free(o->items);
  free(o->keys);
  free(o->str);
  free(o->bytes);
  release(o->a); release(o->b); release(o->c); release(o->d); release(o->e); release(o->f); release(o->g);
  o->magic = 0;
  if (!o->uncounted) live--;
  free(o);
}

static void release(Obj *o) {
  if (!is_obj(o)) return;
  if (--o->rc == 0) dealloc(o);
}

/* Autorelease pools are per thread; autoreleasing with no pool pushed leaks (counted as an orphan). */
typedef struct Pool { Obj **objs; size_t n, cap; struct Pool *prev; } Pool;
static __thread Pool *pool_top = NULL;

static __thread long thread_orphans = 0;

static Obj *autorelease(Obj *o) {
  if (!is_obj(o)) return o;
  if (pool_top == NULL) {
    /* The real runtime would log "autoreleased with no pool in place - just leaking" on this thread. */
    orphans++;
    thread_orphans++;
    log_line("!orphan %s", NAMES[o->kind]);
    return o;
  }
  if (pool_top->n == pool_top->cap) {
    pool_top->cap = pool_top->cap ? pool_top->cap * 2 : 16;
    pool_top->objs = realloc(pool_top->objs, pool_top->cap * sizeof(Obj *));
  }
  pool_top->objs[pool_top->n++] = o;
  return o;
}

void *objc_autoreleasePoolPush(void) {
  u64 t0 = now_ns();
  Pool *p = calloc(1, sizeof(Pool));
  p->prev = pool_top;
  pool_top = p;
  busy_since(t0);
  return p;
}

void objc_autoreleasePoolPop(void *token) {
  u64 t0 = now_ns();
  pthread_mutex_lock(&LOCK);
  while (pool_top != NULL) {
    Pool *p = pool_top;
    pool_top = p->prev;
    for (size_t i = 0; i < p->n; i++) release(p->objs[i]);
    free(p->objs);
    free(p);
    if ((void *)p == token) break;
  }
  pthread_mutex_unlock(&LOCK);
  busy_since(t0);
}

/* ---- building values ---- */

static Obj *str_new(const char *s) {
  Obj *o = mk(K_NSString);
  o->str = strdup(s ? s : "");
  return o;
}

static Obj *num_new(int64_t v) {
  Obj *o = mk(K_NSNumber);
  o->num = v;
  return o;
}

static void arr_add(Obj *arr, Obj *v) {
  if (arr->n == arr->cap) {
    arr->cap = arr->cap ? arr->cap * 2 : 4;
    arr->items = realloc(arr->items, arr->cap * sizeof(Obj *));
    if (arr->kind == K_NSDictionary || arr->kind == K_NSMutableDictionary) {
      arr->keys = realloc(arr->keys, arr->cap * sizeof(Obj *));
    }
  }
  arr->items[arr->n++] = retain(v);
}

static Obj *dict_get(Obj *d, const char *key) {
  if (!is_obj(d) || (d->kind != K_NSDictionary && d->kind != K_NSMutableDictionary) || d->raw) return NULL;
  for (size_t i = 0; i < d->n; i++) {
    if (d->keys[i]->kind == K_NSString && strcmp(d->keys[i]->str, key) == 0) return d->items[i];
  }
  return NULL;
}

static void dict_set(Obj *d, Obj *key, Obj *value) {
  for (size_t i = 0; i < d->n; i++) {
    if (d->keys[i]->kind == K_NSString && strcmp(d->keys[i]->str, key->str) == 0) {
      retain(value);
      release(d->items[i]);
      d->items[i] = value;
      return;
    }
  }
  arr_add(d, value);
  d->keys[d->n - 1] = str_new(key->str);
}

static int stage_fails(int stage) {
  long k = ++calls[stage];
  return fail_count[stage] > 0 && k >= fail_from[stage] && k < fail_from[stage] + fail_count[stage];
}

static Obj *error_new(int stage, const char *text) {
  Obj *e = mk(K_NSError);
  e->a = str_new("com.apple.appleneuralengine");
  e->code = fail_code[stage];
  char buf[200];
  snprintf(buf, sizeof buf, "%s (injected %s failure)", text, STAGES[stage]);
  e->b = str_new(buf);
  return e;
}

/* Sets *slot to a +0 NSError and returns NO. */
static u64 fail_with(int stage, u64 slot, const char *text) {
  Obj *e = autorelease(error_new(stage, text));
  if (slot) *(Obj **)slot = e;
  else release(e);
  return 0;
}

/* Returns YES; when this call of `stage` is set to be spurious, also stores a +0 NSError in *slot. */
static u64 ok_with(int stage, u64 slot) {
  long k = calls[stage];
  if (slot && spurious_count[stage] > 0 && k >= spurious_from[stage] && k < spurious_from[stage] + spurious_count[stage]) {
    Obj *e = autorelease(error_new(stage, "spurious error alongside YES"));
    *(Obj **)slot = e;
  }
  return 1;
}

/* ---- Appendix A: (receiver, selector) -> signature (ret(args) without self and _cmd) ----
   A row's receivers are "+Class" (class method) / "-Class" (instance method) tokens separated by spaces, or "*" for
   the NSObject methods every object and class answers. A signature is looked up for the receiver's class, so a
   selector with the same name on another class cannot lend its signature. */

static const char *const SIGS[][3] = {
  {"*", "respondsToSelector:", "bool(SEL)"}, {"*", "retain", "id()"}, {"*", "release", "void()"},
  {"*", "description", "id()"},
  {"+_ANEDeviceInfo", "hasANE", "bool()"}, {"+_ANEDeviceInfo", "isVirtualMachine", "bool()"},
  {"+_ANEDeviceInfo", "isInternalBuild", "bool()"}, {"+_ANEDeviceInfo", "numANECores", "uint32()"},
  {"+_ANEDeviceInfo", "numANEs", "uint32()"}, {"+_ANEDeviceInfo", "aneBoardType", "int64()"},
  {"+_ANEDeviceInfo", "aneArchitectureType", "id()"}, {"+_ANEDeviceInfo", "productName", "id()"},
  {"+_ANEDeviceInfo", "buildVersion", "id()"}, {"+_ANEDeviceInfo", "aneSubType", "id()"},
  {"+_ANEClient", "sharedPrivateConnection", "id()"}, {"+_ANEClient -_ANEInMemoryModel", "sharedConnection", "id()"},
  {"+_ANEClient +NSData +NSMutableDictionary +NSMutableArray +IOSurfaceSharedEvent", "new", "id()"},
  {"+_ANEClient +NSString +NSData +NSURL", "alloc", "id()"},
  {"-_ANEClient", "initWithRestrictedAccessAllowed:", "id(bool)"},
  {"+_ANEInMemoryModelDescriptor", "modelWithMILText:weights:optionsPlist:", "id(id,id,id)"},
  {"+_ANEInMemoryModel", "inMemoryModelWithDescriptor:", "id(id)"},
  {"-_ANEInMemoryModel -_ANEModel", "setPerfStatsMask:", "void(uint32)"},
  {"-_ANEInMemoryModel", "hexStringIdentifier", "id()"},
  {"-_ANEInMemoryModel", "localModelPath", "id()"},
  {"-_ANEInMemoryModel", "compileWithQoS:options:error:", "bool(uint32,id,err)"},
  {"-_ANEInMemoryModel", "loadWithQoS:options:error:", "bool(uint32,id,err)"},
  {"-_ANEInMemoryModel", "unloadWithQoS:error:", "bool(uint32,err)"},
  {"-_ANEInMemoryModel", "model", "id()"}, {"-_ANEInMemoryModel -_ANEModel", "program", "id()"},
  {"-_ANEModel", "modelAttributes", "id()"},
  {"-_ANEInMemoryModel", "mapIOSurfacesWithRequest:cacheInference:error:", "bool(id,bool,err)"},
  {"-_ANEInMemoryModel", "unmapIOSurfacesWithRequest:", "void(id)"},
  {"-_ANEInMemoryModel", "evaluateWithQoS:options:request:error:", "bool(uint32,id,id,err)"},
  {"+_ANEIOSurfaceObject", "objectWithIOSurface:", "id(ptr)"},
  {"+_ANERequest",
   "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
   "id(id,id,id,id,id,id,id,id,id)"},
  {"+_ANERequest", "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:",
   "id(id,id,id,id,id,id,id)"},
  {"-_ANERequest", "validate", "bool()"}, {"-_ANERequest", "transactionHandle", "id()"},
  {"-_ANERequest", "setTransactionHandle:", "void(id)"},
  {"-NSString", "UTF8String", "str()"}, {"-NSString", "initWithString:", "id(id)"},
  {"+NSString", "stringWithUTF8String:", "id(str)"},
  {"-NSData", "initWithBytes:length:", "id(ptr,uint64)"},
  {"-NSMutableDictionary", "setObject:forKey:", "void(id,id)"},
  {"-NSDictionary -NSMutableDictionary", "objectForKey:", "id(id)"},
  {"-NSDictionary -NSMutableDictionary", "allKeys", "id()"},
  {"-NSMutableArray", "addObject:", "void(id)"},
  {"-NSArray -NSMutableArray -NSDictionary -NSMutableDictionary", "count", "uint64()"},
  {"-NSArray -NSMutableArray", "objectAtIndex:", "id(uint64)"},
  {"+NSNumber", "numberWithInt:", "id(int32)"}, {"+NSNumber", "numberWithUnsignedLongLong:", "id(uint64)"},
  {"+NSNumber", "numberWithBool:", "id(bool)"}, {"+NSNumber", "numberWithInteger:", "id(int64)"},
  {"-NSNumber", "intValue", "int32()"}, {"-NSNumber", "unsignedLongLongValue", "uint64()"},
  {"-NSNumber", "integerValue", "int64()"},
  {"-NSError", "localizedDescription", "id()"}, {"-NSError", "domain", "id()"}, {"-NSError", "code", "int64()"},
  {"-IOSurfaceSharedEvent", "eventPort", "uint32()"}, {"-IOSurfaceSharedEvent", "signaledValue", "uint64()"},
  {"-IOSurfaceSharedEvent", "setSignaledValue:", "void(uint64)"},
  {"-IOSurfaceSharedEvent", "waitUntilSignaledValue:timeoutMS:", "bool(uint64,uint64)"},
  {"-NSURL", "initFileURLWithPath:", "id(id)"}, {"+_ANEModel", "modelAtURL:key:", "id(id,id)"},
  {"-_ANEClient", "compileModel:options:qos:error:", "bool(id,id,uint32,err)"},
  {"-_ANEClient", "loadModel:options:qos:error:", "bool(id,id,uint32,err)"},
  {"-_ANEClient", "unloadModel:options:qos:error:", "bool(id,id,uint32,err)"},
  {"-_ANEClient", "mapIOSurfacesWithModel:request:cacheInference:error:", "bool(id,id,bool,err)"},
  {"-_ANEClient", "unmapIOSurfacesWithModel:request:", "void(id,id)"},
  {"-_ANEClient", "evaluateWithModel:options:request:qos:error:", "bool(id,id,id,uint32,err)"},
  {"-_ANEClient", "doEvaluateDirectWithModel:options:request:qos:error:", "bool(id,id,id,uint32,err)"},
  {"+_ANESharedSignalEvent", "signalEventWithValue:symbolIndex:eventType:sharedEvent:", "id(uint64,uint32,int64,id)"},
  {"+_ANESharedWaitEvent", "waitEventWithValue:sharedEvent:", "id(uint64,id)"},
  {"+_ANESharedEvents", "sharedEventsWithSignalEvents:waitEvents:", "id(id,id)"},
  {"-_ANEClient", "evaluateRealTimeWithModel:options:request:error:", "bool(id,id,id,err)"},
  {"-_ANEClient", "beginRealTimeTask", "bool()"}, {"-_ANEClient", "endRealTimeTask", "bool()"},
  /* §13 telemetry rows */
  {"-_ANEClient", "virtualClient", "id()"},
  {"-_ANEVirtualClient", "negotiatedDataInterfaceVersion", "uint32()"},
  {"-_ANEVirtualClient", "aneArchitectureTypeStr", "id()"}, {"-_ANEVirtualClient", "aneBoardtype", "int64()"},
  {"-_ANEVirtualClient", "negotiatedCapabilityMask", "uint64()"},
  {"-_ANEVirtualClient", "validateEnvironmentForPrecompiledBinarySupport", "bool()"},
  {"-_ANEVirtualClient", "numANEs", "uint32()"}, {"-_ANEVirtualClient", "numANECores", "uint32()"},
  {"-_ANEInMemoryModel -_ANEModel -_ANEProgramForEvaluation", "queueDepth", "int8()"},
  {"-_ANEInMemoryModel -_ANEModel -_ANEProgramForEvaluation", "programHandle", "uint64()"},
  {"-_ANEInMemoryModel -_ANEModel", "state", "uint64()"},
  {"-_ANEProgramForEvaluation", "currentAsyncRequestsInFlight", "int64()"},
  {"-_ANERequest", "perfStats", "id()"}, {"-_ANERequest", "perfStatsArray", "id()"},
  {"-_ANERequest", "setPerfStats:", "void(id)"},
  {"+_ANEPerformanceStats", "statsWithHardwareExecutionNS:", "id(uint64)"},
  {"-_ANEPerformanceStats", "hwExecutionTime", "uint64()"}, {"-_ANEPerformanceStats", "perfCounterData", "id()"},
  {"-_ANEPerformanceStats", "pStatsRawData", "id()"}, {"-_ANEPerformanceStats", "performanceCounters", "id()"},
  {"-_ANEPerformanceStats", "stringForPerfCounter:", "id(int64)"},
  /* NSData readers: not in Appendix A, but copying an NSData's bytes needs them */
  {"-NSData", "length", "uint64()"}, {"-NSData", "getBytes:length:", "void(ptr,uint64)"},
};
#define NSIGS (sizeof SIGS / sizeof SIGS[0])

/* Whether a row's receiver list names "+Class" / "-Class" (or is "*"). */
static int receivers_match(const char *list, int cls, const char *name) {
  if (strcmp(list, "*") == 0) return 1;
  char token[96];
  snprintf(token, sizeof token, "%c%s", cls ? '+' : '-', name);
  size_t n = strlen(token);
  for (const char *p = list; (p = strstr(p, token)) != NULL; p += n) {
    if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
  }
  return 0;
}

/* The signature of `sel` on a receiver of class `name` (class method when `cls`); NULL when it has none. */
static const char *sig_for(int cls, const char *name, const char *sel) {
  for (size_t i = 0; i < NSIGS; i++) {
    if (strcmp(SIGS[i][1], sel) == 0 && receivers_match(SIGS[i][0], cls, name)) return SIGS[i][2];
  }
  return NULL;
}

static int is_class(const void *p);
static int is_obj(const void *p);

/* Checks the signature a caller cast objc_msgSend to for this receiver; returns 1 when it matches Appendix A. */
int fake_check_signature(void *receiver, const char *sel, const char *sig) {
  int cls = is_class(receiver);
  const char *name = (cls || is_obj(receiver)) ? NAMES[((Obj *)receiver)->kind] : "?";
  const char *want = (cls || is_obj(receiver)) ? sig_for(cls, name, sel) : NULL;
  if (want != NULL && strcmp(want, sig) == 0) return 1;
  pthread_mutex_lock(&LOCK);
  sig_mismatches++;
  snprintf(last_rejection, sizeof last_rejection, "signature %s for %c[%s %s] (Appendix A: %s)", sig, cls ? '+' : '-', name, sel,
           want ? want : "none");
  log_line("!signature %s %s", sel, sig);
  pthread_mutex_unlock(&LOCK);
  return 0;
}

/* ---- runtime entry points ---- */

typedef struct Sel { char *name; struct Sel *next; } Sel;
static Sel *sels = NULL;

void *sel_registerName(const char *name) {
  pthread_mutex_lock(&LOCK);
  Sel *s = sels;
  while (s != NULL && strcmp(s->name, name) != 0) s = s->next;
  if (s == NULL) {
    s = calloc(1, sizeof(Sel));
    s->name = strdup(name);
    s->next = sels;
    sels = s;
  }
  pthread_mutex_unlock(&LOCK);
  return s;
}

static void init_classes(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  for (int k = 0; k < K_COUNT; k++) {
    CLASSES[k].magic = MAGIC_CLASS;
    CLASSES[k].kind = k;
  }
}

void *objc_getClass(const char *name) {
  init_classes();
  for (int k = 0; k < K_COUNT; k++) {
    if (strcmp(NAMES[k], name) == 0) return &CLASSES[k];
  }
  return NULL;
}

/* Foundation's NSTemporaryDirectory(): deliberately not $TMPDIR itself (they differ under sudo, launchd, some CI
   runners, or `TMPDIR=… npm test`), so a library that writes where os.tmpdir() points cannot compile. It ends with
   a slash, as the real one does. */
static char ns_tmp[1024];
static const char *ns_temporary_directory(void) {
  if (ns_tmp[0] == 0) {
    const char *t = getenv("TMPDIR");
    char dir[900];
    snprintf(dir, sizeof dir, "%s/effect-ane-fake-NSTemporaryDirectory-%d", t && *t ? t : "/tmp", (int)getuid());
    mkdir(dir, 0700);
    snprintf(ns_tmp, sizeof ns_tmp, "%s/", dir);
  }
  return ns_tmp;
}

/* The folder the in-memory compiler reads a model from: -localModelPath when the class answers it (a sub-folder of
   its own, so a library that ignores it misses), else NSTemporaryDirectory()/<hex>. */
static int is_hidden(int cls, int kind, const char *sel);
static int local_path_parent = 0; /* -localModelPath answers a parent folder, not the model's own (fake_local_path_parent) */
static void model_dir(const char *hex, char *out, size_t size) {
  if (is_hidden(0, K_ANEInMemoryModel, "localModelPath") || local_path_parent) {
    snprintf(out, size, "%s%s", ns_temporary_directory(), hex);
  }
  else {
    char local[1100];
    snprintf(local, sizeof local, "%sane-local", ns_temporary_directory());
    mkdir(local, 0700);
    snprintf(out, size, "%s/%s", local, hex);
  }
}

/* Compile only succeeds when <model folder>/model.mil exists (§4.3). */
static int model_dir_ready(const char *hex) {
  char dir[1200], path[1300];
  model_dir(hex, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/model.mil", dir);
  struct stat st;
  return stat(path, &st) == 0;
}

static int is_dict(Obj *o) { return is_obj(o) && (o->kind == K_NSDictionary || o->kind == K_NSMutableDictionary); }
static int is_array(Obj *o) { return is_obj(o) && (o->kind == K_NSArray || o->kind == K_NSMutableArray); }

/* Waits until `ev` reaches `value` (lock held; released while waiting); 0 on a 5 s timeout. */
static int wait_event(Obj *ev, u64 value) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  while (ev->mask < value) {
    if (pthread_cond_timedwait(&SIGNALED, &LOCK, &deadline) != 0) break;
  }
  return ev->mask >= value;
}

/* Evaluates a mapped request of `model`: shared-event waits, the JS callback (or a byte copy), shared-event signals. */
static u64 surface_sum(Obj *sf);
static void surface_check(Obj *sf, const char *who);

/* Touches `bytes` of this thread's stack, one page at a time (a thread with less stack faults here). */
static __attribute__((noinline)) void use_stack(long bytes) {
  volatile char block[bytes];
  for (long i = 0; i < bytes; i += 4096) block[i] = (char)i;
  block[bytes - 1] = 1;
  (void)block[0];
}

/* Evaluates a mapped request of `model`: shared-event waits, the JS callback (or a byte copy), shared-event signals.
   Called with the lock held; the lock is released while the evaluation runs, so evaluations on several threads
   overlap (in_flight counts them). */
static u64 do_eval(Obj *model, Obj *r, u64 slot) {
  if (!is_obj(model) || !is_obj(r) || r->kind != K_ANERequest || !r->mapped) return fail_with(S_EVAL, slot, "request not mapped");
  if (stage_fails(S_EVAL)) return fail_with(S_EVAL, slot, "evaluation failed");
  Obj *events = r->f;
  if (events != NULL) {
    if (model->kind == K_ANEModel) shared_event_evals++;
    for (size_t i = 0; i < events->b->n; i++) {
      Obj *w = events->b->items[i];
      if (!wait_event(w->a, w->mask)) return fail_with(S_EVAL, slot, "shared-event wait timed out");
    }
  }
  int nin = (int)r->a->n, nout = (int)r->c->n;
  /* What the CPU wrote while it held no lock shows as changed content here. */
  for (int i = 0; i < nin; i++) surface_check(r->a->items[i]->a, "input");
  for (int i = 0; i < nout; i++) surface_check(r->c->items[i]->a, "output");
  void **ins = calloc(nin + 1, sizeof(void *)), **outs = calloc(nout + 1, sizeof(void *));
  for (int i = 0; i < nin; i++) ins[i] = r->a->items[i]->a->bytes;
  for (int i = 0; i < nout; i++) outs[i] = r->c->items[i]->a->bytes;
  EvalCallback cb = eval_cb;
  long delay = eval_delay_us;
  int status = 0;
  char hex[17];
  memcpy(hex, model->hex, sizeof hex);
  if (++in_flight > in_flight_max) in_flight_max = in_flight;
  while (hold_evals) pthread_cond_wait(&RELEASED, &LOCK);
  long stack = eval_stack_bytes;
  /* The engine's work happens without the lock: the callback runs JS and may send messages itself. */
  pthread_mutex_unlock(&LOCK);
  if (stack > 0) use_stack(stack);
  if (delay > 0) {
    struct timespec t = {delay / 1000000, (delay % 1000000) * 1000};
    nanosleep(&t, NULL);
  }
  if (cb != NULL) status = cb(hex, nin, ins, nout, outs);
  pthread_mutex_lock(&LOCK);
  in_flight--;
  if (cb == NULL) {
    /* Without a callback: output[i] is a byte copy of input[min(i, nin-1)]. */
    for (int i = 0; i < nout && nin > 0; i++) {
      Obj *src = r->a->items[i < nin ? i : nin - 1]->a, *dst = r->c->items[i]->a;
      memcpy(dst->bytes, src->bytes, src->len < dst->len ? src->len : dst->len);
    }
  }
  /* The engine's own writes are not the CPU's: the outputs' new content is the reference from here on. */
  for (int i = 0; i < nout; i++) r->c->items[i]->a->sum = surface_sum(r->c->items[i]->a);
  free(ins);
  free(outs);
  if (status != 0) return fail_with(S_EVAL, slot, "evaluation callback reported failure");
  /* The engine fills the request's attached stats object after a successful evaluation. */
  if (is_obj(r->g) && r->g->kind == K_ANEPerformanceStats) r->g->mask = stats_hw_ns;
  if (events != NULL) {
    for (size_t i = 0; i < events->a->n; i++) {
      Obj *sg = events->a->items[i];
      if (sg->a->mask < sg->mask) sg->a->mask = sg->mask;
    }
    pthread_cond_broadcast(&SIGNALED);
  }
  return ok_with(S_EVAL, slot);
}

#define ON(name) if (strcmp(s, name) == 0 && !(dry && (found = 1)))

static int is_hidden(int cls, int kind, const char *sel) {
  char line[256];
  snprintf(line, sizeof line, "%c%s %s", cls ? '+' : '-', NAMES[kind], sel);
  for (int i = 0; i < nhidden; i++) {
    if (strcmp(hidden[i], line) == 0) return 1;
  }
  return 0;
}

/* Process-wide objects that are never freed (not counted as live). */
static Obj *static_obj(Obj *o, int kind, int64_t code) {
  o->magic = MAGIC_OBJ;
  o->kind = kind;
  o->rc = 1 << 30;
  o->code = code;
  return o;
}

/* A process-wide client (shared connection) of origin 1 or 2. */
static Obj *shared_client(Obj *o, int origin) {
  static_obj(o, K_ANEClient, origin);
  o->initialised = 1;
  return o;
}

/* A new +1 client of origin 3 (alloc, not yet initialised) or 4 (new). */
static Obj *owned_client(int origin) {
  Obj *o = mk(K_ANEClient);
  o->code = origin;
  o->initialised = origin == 4;
  client_alive[origin]++;
  return o;
}

/* The §13.2 ProbeDiagnostics selectors of a model; `which` picks the class's answers. */
#define DIAG_SELECTORS(which) \
  ON("queueDepth") { *ret = (u64)(int64_t)(int8_t)diags[which].queue; return 1; } \
  ON("program") { \
    *ret = diags[which].has_program ? (u64)static_obj(&the_programs[which], K_ANEProgramForEvaluation, which) : 0; \
    return 1; \
  } \
  ON("programHandle") { *ret = diags[which].handle; return 1; } \
  ON("state") { *ret = diags[which].state; return 1; }

/* Handles one message; returns 1 when (receiver kind, selector) is implemented. With dry set, only answers that. */
static int handle(Obj *self, int cls, const char *s, const u64 *a, u64 *ret, int dry) {
  int found = 0;
  int k = self->kind;
  ON("respondsToSelector:") {
    const char *name = ((Sel *)a[0])->name;
    u64 r = 0;
    *ret = !is_hidden(cls, k, name) && sig_for(cls, NAMES[k], name) != NULL && handle(self, cls, name, a, &r, 1);
    return 1;
  }
  if (cls) {
    switch (k) {
      case K_ANEDeviceInfo:
        ON("hasANE") { *ret = 1; return 1; }
        ON("numANECores") { *ret = 16; return 1; }
        ON("isVirtualMachine") { *ret = 0; return 1; }
        ON("aneArchitectureType") { *ret = (u64)autorelease(str_new("h16")); return 1; }
        ON("productName") { *ret = (u64)autorelease(str_new("FakeMac")); return 1; }
        ON("buildVersion") { *ret = (u64)autorelease(str_new("0A000")); return 1; }
        ON("numANEs") { *ret = 1; return 1; }
        ON("aneBoardType") { *ret = 208; return 1; }
        /* aneSubType and isInternalBuild are deliberately not answered, so the probe's gating is exercised. */
        break;
      case K_NSString:
        ON("stringWithUTF8String:") { *ret = (u64)autorelease(str_new((const char *)a[0])); return 1; }
        ON("alloc") { Obj *o = mk(K_NSString); o->initialised = 0; *ret = (u64)o; return 1; }
        break;
      case K_NSNumber:
        ON("numberWithInt:") { *ret = (u64)autorelease(num_new((int32_t)a[0])); return 1; }
        ON("numberWithUnsignedLongLong:") { *ret = (u64)autorelease(num_new((int64_t)a[0])); return 1; }
        ON("numberWithBool:") { *ret = (u64)autorelease(num_new(a[0] & 0xff ? 1 : 0)); return 1; }
        ON("numberWithInteger:") { *ret = (u64)autorelease(num_new((int64_t)a[0])); return 1; }
        break;
      case K_NSData:
        ON("new") { *ret = (u64)mk(K_NSData); return 1; }
        ON("alloc") { Obj *o = mk(K_NSData); o->initialised = 0; *ret = (u64)o; return 1; }
        break;
      case K_NSMutableDictionary:
        ON("new") { *ret = (u64)mk(K_NSMutableDictionary); return 1; }
        break;
      case K_NSMutableArray:
        ON("new") { *ret = (u64)mk(K_NSMutableArray); return 1; }
        break;
      case K_ANEClient:
        /* §3 steps; a step in mode 0 is not implemented at all. Shared connections are never freed (not live). */
        if (client_mode[CS_PRIVATE]) ON("sharedPrivateConnection") {
          *ret = client_mode[CS_PRIVATE] == 2 ? (u64)shared_client(&the_private_client, 1) : 0;
          return 1;
        }
        if (client_mode[CS_SHARED]) ON("sharedConnection") {
          *ret = client_mode[CS_SHARED] == 2 ? (u64)shared_client(&the_client, 2) : 0;
          return 1;
        }
        if (client_mode[CS_ALLOC]) ON("alloc") { *ret = client_mode[CS_ALLOC] == 2 ? (u64)owned_client(3) : 0; return 1; }
        if (client_mode[CS_NEW]) ON("new") { *ret = client_mode[CS_NEW] == 2 ? (u64)owned_client(4) : 0; return 1; }
        break;
      case K_NSURL:
        ON("alloc") { Obj *o = mk(K_NSURL); o->initialised = 0; *ret = (u64)o; return 1; }
        break;
      case K_ANEModel:
        ON("modelAtURL:key:") {
          Obj *url = (Obj *)a[0], *key = (Obj *)a[1];
          struct stat st;
          if (!is_obj(url) || url->kind != K_NSURL || !is_obj(key) || key->kind != K_NSString || stat(url->str, &st) != 0) {
            *ret = 0;
            return 1;
          }
          Obj *m = mk(K_ANEModel);
          m->c = retain(key);
          u64 h = 1469598103934665603ULL;
          for (const char *p = url->str; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
          snprintf(m->hex, sizeof m->hex, "%016llx", (unsigned long long)h);
          *ret = (u64)autorelease(m);
          return 1;
        }
        break;
      case K_ANESharedSignalEvent:
        ON("signalEventWithValue:symbolIndex:eventType:sharedEvent:") {
          Obj *ev = (Obj *)a[3];
          if (!is_obj(ev) || ev->kind != K_IOSurfaceSharedEvent || (int64_t)a[2] != 5) { *ret = 0; return 1; }
          Obj *o = mk(K_ANESharedSignalEvent);
          o->mask = a[0];
          o->code = (uint32_t)a[1];
          o->a = retain(ev);
          *ret = (u64)autorelease(o);
          return 1;
        }
        break;
      case K_ANESharedWaitEvent:
        ON("waitEventWithValue:sharedEvent:") {
          Obj *ev = (Obj *)a[1];
          if (!is_obj(ev) || ev->kind != K_IOSurfaceSharedEvent) { *ret = 0; return 1; }
          Obj *o = mk(K_ANESharedWaitEvent);
          o->mask = a[0];
          o->a = retain(ev);
          *ret = (u64)autorelease(o);
          return 1;
        }
        break;
      case K_ANESharedEvents:
        ON("sharedEventsWithSignalEvents:waitEvents:") {
          if (!is_array((Obj *)a[0]) || !is_array((Obj *)a[1])) { *ret = 0; return 1; }
          Obj *o = mk(K_ANESharedEvents);
          o->a = retain((Obj *)a[0]);
          o->b = retain((Obj *)a[1]);
          *ret = (u64)autorelease(o);
          return 1;
        }
        break;
      case K_IOSurfaceSharedEvent:
        ON("new") {
          Obj *e = mk(K_IOSurfaceSharedEvent);
          e->code = next_port++;
          *ret = (u64)e;
          return 1;
        }
        break;
      case K_ANEInMemoryModelDescriptor:
        ON("modelWithMILText:weights:optionsPlist:") {
          Obj *text = (Obj *)a[0], *weights = (Obj *)a[1];
          if (!is_obj(text) || text->kind != K_NSData || !is_dict(weights) || a[2] != 0 || stage_fails(S_DESCRIPTOR)) {
            *ret = 0;
            return 1;
          }
          Obj *d = mk(K_ANEInMemoryModelDescriptor);
          d->a = retain(text);
          d->b = retain(weights);
          /* The identifier is a hash of the text, as the real one is derived from the model. */
          u64 h = 1469598103934665603ULL;
          for (size_t i = 0; i < text->len; i++) h = (h ^ text->bytes[i]) * 1099511628211ULL;
          snprintf(d->hex, sizeof d->hex, "%016llx", (unsigned long long)h);
          *ret = (u64)autorelease(d);
          return 1;
        }
        break;
      case K_ANEInMemoryModel:
        ON("inMemoryModelWithDescriptor:") {
          Obj *d = (Obj *)a[0];
          if (!is_obj(d) || d->kind != K_ANEInMemoryModelDescriptor) { *ret = 0; return 1; }
          Obj *m = mk(K_ANEInMemoryModel);
          m->a = retain(d);
          memcpy(m->hex, d->hex, sizeof m->hex);
          *ret = (u64)autorelease(m);
          return 1;
        }
        break;
      case K_ANEPerformanceStats:
        ON("statsWithHardwareExecutionNS:") {
          if (!stats_factory) { *ret = 0; return 1; }
          Obj *o = mk(K_ANEPerformanceStats);
          o->mask = a[0];
          *ret = (u64)autorelease(o);
          return 1;
        }
        break;
      case K_ANEIOSurfaceObject:
        ON("objectWithIOSurface:") {
          Obj *sf = (Obj *)a[0];
          if (!is_obj(sf) || sf->kind != K_IOSurface) { *ret = 0; return 1; }
          Obj *o = mk(K_ANEIOSurfaceObject);
          o->a = retain(sf);
          *ret = (u64)autorelease(o);
          return 1;
        }
        break;
      case K_ANERequest:
        ON("requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:") {
          for (int i = 0; i < 4; i++) {
            if (!is_array((Obj *)a[i])) { *ret = 0; return 1; }
          }
          if (((Obj *)a[0])->n != ((Obj *)a[1])->n || ((Obj *)a[2])->n != ((Obj *)a[3])->n || a[4] != 0 || a[5] != 0 ||
              !is_obj((Obj *)a[6]) || stage_fails(S_REQUEST)) {
            *ret = 0;
            return 1;
          }
          /* Logs the symbol indices the request carries, e.g. "request in=1,0 out=0". */
          char idx[160] = "request in=";
          for (int side = 1; side <= 3; side += 2) {
            Obj *arr = (Obj *)a[side];
            if (side == 3) strncat(idx, " out=", sizeof idx - strlen(idx) - 1);
            for (size_t i = 0; i < arr->n; i++) {
              char one[24];
              snprintf(one, sizeof one, i ? ",%lld" : "%lld", is_obj(arr->items[i]) ? (long long)arr->items[i]->num : -1LL);
              strncat(idx, one, sizeof idx - strlen(idx) - 1);
            }
          }
          log_line("%s", idx);
          Obj *r = mk(K_ANERequest);
          r->a = retain((Obj *)a[0]);
          r->b = retain((Obj *)a[1]);
          r->c = retain((Obj *)a[2]);
          r->d = retain((Obj *)a[3]);
          r->e = retain((Obj *)a[8]);
          if (is_obj((Obj *)a[7])) r->f = retain((Obj *)a[7]);
          *ret = (u64)autorelease(r);
          return 1;
        }
        ON("requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:") {
          /* The older factory: no shared events, no transaction handle (the caller sets one). */
          for (int i = 0; i < 4; i++) {
            if (!is_array((Obj *)a[i])) { *ret = 0; return 1; }
          }
          if (((Obj *)a[0])->n != ((Obj *)a[1])->n || ((Obj *)a[2])->n != ((Obj *)a[3])->n || a[4] != 0 || a[5] != 0 ||
              !is_obj((Obj *)a[6]) || stage_fails(S_REQUEST)) {
            *ret = 0;
            return 1;
          }
          log_line("request (7 arguments)");
          Obj *r = mk(K_ANERequest);
          r->a = retain((Obj *)a[0]);
          r->b = retain((Obj *)a[1]);
          r->c = retain((Obj *)a[2]);
          r->d = retain((Obj *)a[3]);
          *ret = (u64)autorelease(r);
          return 1;
        }
        break;
      default:
        break;
    }
    return found;
  }
  /* instance methods */
  ON("retain") {
    if (k == K_ANEClient && self->code > 0 && self->code < CLIENT_ORIGINS) client_retains[self->code]++;
    *ret = (u64)retain(self);
    return 1;
  }
  ON("release") {
    if (k == K_ANEClient && self->code > 0 && self->code < CLIENT_ORIGINS) client_releases[self->code]++;
    release(self);
    return 1;
  }
  ON("description") {
    if (k == K_NSString) { *ret = (u64)self; return 1; }
    char buf[64];
    if (k == K_NSNumber) snprintf(buf, sizeof buf, "%lld", (long long)self->num);
    else snprintf(buf, sizeof buf, "<%s>", NAMES[k]);
    *ret = (u64)autorelease(str_new(buf));
    return 1;
  }
  switch (k) {
    case K_NSString:
      ON("UTF8String") { *ret = (u64)self->str; return 1; }
      ON("initWithString:") {
        Obj *src = (Obj *)a[0];
        self->str = strdup(is_obj(src) && src->kind == K_NSString ? src->str : "");
        self->initialised = 1;
        *ret = (u64)self;
        return 1;
      }
      break;
    case K_NSNumber:
      ON("intValue") { *ret = (u64)(uint32_t)(int32_t)self->num; return 1; }
      ON("integerValue") { *ret = (u64)self->num; return 1; }
      ON("unsignedLongLongValue") { *ret = (u64)self->num; return 1; }
      break;
    case K_NSData:
      ON("initWithBytes:length:") {
        self->len = (size_t)a[1];
        self->bytes = malloc(self->len ? self->len : 1);
        memcpy(self->bytes, (const void *)a[0], self->len);
        self->initialised = 1;
        *ret = (u64)self;
        return 1;
      }
      ON("length") { *ret = self->len; return 1; }
      ON("getBytes:length:") {
        size_t n = a[1] < self->len ? (size_t)a[1] : self->len;
        if (n > 0 && a[0] != 0) memcpy((void *)a[0], self->bytes, n);
        return 1;
      }
      break;
    case K_NSArray:
    case K_NSMutableArray:
      ON("count") { *ret = self->n; return 1; }
      ON("objectAtIndex:") { *ret = a[0] < self->n ? (u64)self->items[a[0]] : 0; return 1; }
      if (k == K_NSMutableArray) {
        ON("addObject:") { arr_add(self, (Obj *)a[0]); return 1; }
      }
      break;
    case K_NSDictionary:
    case K_NSMutableDictionary:
      ON("objectForKey:") {
        Obj *key = (Obj *)a[0];
        *ret = is_obj(key) && key->kind == K_NSString ? (u64)dict_get(self, key->str) : 0;
        if (is_obj(key) && key->kind == K_NSNumber) {
          for (size_t i = 0; i < self->n; i++) {
            if (self->keys[i]->kind == K_NSNumber && self->keys[i]->num == key->num) *ret = (u64)self->items[i];
          }
        }
        return 1;
      }
      ON("count") { *ret = self->n; return 1; }
      ON("allKeys") {
        Obj *keys = mk(K_NSArray);
        for (size_t i = 0; i < self->n; i++) arr_add(keys, self->keys[i]);
        *ret = (u64)autorelease(keys);
        return 1;
      }
      if (k == K_NSMutableDictionary) {
        ON("setObject:forKey:") {
          Obj *v = (Obj *)a[0], *key = (Obj *)a[1];
          if (is_obj(v) && is_obj(key) && key->kind == K_NSString) dict_set(self, key, v);
          return 1;
        }
      }
      break;
    case K_NSError:
      ON("domain") { *ret = (u64)self->a; return 1; }
      ON("code") { *ret = (u64)self->code; return 1; }
      ON("localizedDescription") { *ret = (u64)self->b; return 1; }
      break;
    case K_ANEInMemoryModel:
      ON("setPerfStatsMask:") { self->mask = (uint32_t)a[0]; return 1; }
      ON("hexStringIdentifier") { *ret = (u64)autorelease(str_new(self->hex)); return 1; }
      ON("localModelPath") {
        char dir[1200];
        if (local_path_parent) snprintf(dir, sizeof dir, "%s", ns_temporary_directory());
        else model_dir(self->hex, dir, sizeof dir);
        *ret = (u64)autorelease(str_new(dir));
        return 1;
      }
      ON("compileWithQoS:options:error:") {
        if (!is_dict((Obj *)a[1])) { *ret = fail_with(S_COMPILE, a[2], "options must be a dictionary"); return 1; }
        if ((uint32_t)a[0] == 0) { *ret = fail_with(S_COMPILE, a[2], "QoS 0 (QOS_CLASS_UNSPECIFIED) reached the framework"); return 1; }
        if (!model_dir_ready(self->hex)) {
          *ret = fail_with(S_COMPILE, a[2], "model.mil not found in the temporary directory");
          return 1;
        }
        if (stage_fails(S_COMPILE)) { *ret = fail_with(S_COMPILE, a[2], "compilation failed"); return 1; }
        self->compiled = 1;
        *ret = ok_with(S_COMPILE, a[2]);
        return 1;
      }
      ON("loadWithQoS:options:error:") {
        if ((uint32_t)a[0] == 0) { *ret = fail_with(S_LOAD, a[2], "QoS 0 (QOS_CLASS_UNSPECIFIED) reached the framework"); return 1; }
        if (!self->compiled) { *ret = fail_with(S_LOAD, a[2], "not compiled"); return 1; }
        if (stage_fails(S_LOAD)) { *ret = fail_with(S_LOAD, a[2], "load failed"); return 1; }
        self->loaded = 1;
        self->mask = 0; /* load clears the mask (§14.3) */
        if (self->b == NULL) {
          self->b = mk(K_ANEModel);
          self->b->a = retain(attributes);
          memcpy(self->b->hex, self->hex, sizeof self->hex);
        }
        self->b->loaded = 1;
        *ret = ok_with(S_LOAD, a[2]);
        return 1;
      }
      ON("unloadWithQoS:error:") {
        if (self->mapped || (self->b && self->b->mapped)) { *ret = fail_with(S_LOAD, a[1], "unload while mapped"); return 1; }
        self->loaded = 0;
        if (self->b) self->b->loaded = 0;
        *ret = 1;
        return 1;
      }
      ON("model") { *ret = (u64)self->b; return 1; }
      DIAG_SELECTORS(0)
      if (client_path) {
        ON("sharedConnection") { *ret = (u64)shared_client(&the_client, 2); return 1; }
      }
      ON("mapIOSurfacesWithRequest:cacheInference:error:") {
        Obj *r = (Obj *)a[0];
        if (!self->loaded || !is_obj(r) || r->kind != K_ANERequest) {
          *ret = fail_with(S_MAP, a[2], "bad request or model not loaded");
          return 1;
        }
        if (stage_fails(S_MAP)) { *ret = fail_with(S_MAP, a[2], "map failed"); return 1; }
        self->mapped++;
        r->mapped = 1;
        *ret = ok_with(S_MAP, a[2]);
        return 1;
      }
      ON("unmapIOSurfacesWithRequest:") {
        Obj *r = (Obj *)a[0];
        if (is_obj(r) && r->mapped) {
          r->mapped = 0;
          self->mapped--;
        }
        return 1;
      }
      ON("evaluateWithQoS:options:request:error:") {
        if (!is_dict((Obj *)a[1])) { *ret = fail_with(S_EVAL, a[3], "options must be a dictionary"); return 1; }
        *ret = do_eval(self, (Obj *)a[2], a[3]);
        return 1;
      }
      break;
    case K_ANEClient:
      if (!self->initialised) {
        /* An alloc'd client answers only its initialiser (and retain/release/respondsToSelector: above). */
        if (client_mode[CS_INIT]) ON("initWithRestrictedAccessAllowed:") {
          int yes = (a[0] & 0xff) == 1;
          if (!yes) {
            rejected++;
            snprintf(last_rejection, sizeof last_rejection, "-[_ANEClient initWithRestrictedAccessAllowed:] with NO");
            log_line("!rejected -_ANEClient initWithRestrictedAccessAllowed: NO");
          }
          if (yes && client_mode[CS_INIT] == 2) {
            self->initialised = 1;
            *ret = (u64)self;
          } else {
            /* An init that fails consumes its receiver (Objective-C convention) and answers nil. */
            release(self);
            *ret = 0;
          }
          return 1;
        }
        break;
      }
      ON("compileModel:options:qos:error:") {
        Obj *m = (Obj *)a[0];
        if (!is_obj(m) || m->kind != K_ANEModel) { *ret = fail_with(S_COMPILE, a[3], "not a model"); return 1; }
        if ((uint32_t)a[2] == 0) { *ret = fail_with(S_COMPILE, a[3], "QoS 0 (QOS_CLASS_UNSPECIFIED) reached the framework"); return 1; }
        if (stage_fails(S_COMPILE)) { *ret = fail_with(S_COMPILE, a[3], "compilation failed"); return 1; }
        m->compiled = 1;
        *ret = 1;
        return 1;
      }
      ON("loadModel:options:qos:error:") {
        Obj *m = (Obj *)a[0];
        if (!is_obj(m) || m->kind != K_ANEModel || !m->compiled) { *ret = fail_with(S_LOAD, a[3], "not compiled"); return 1; }
        if (stage_fails(S_LOAD)) { *ret = fail_with(S_LOAD, a[3], "load failed"); return 1; }
        m->loaded = 1;
        m->mask = 0;
        if (m->a == NULL) m->a = retain(attributes);
        *ret = 1;
        return 1;
      }
      ON("unloadModel:options:qos:error:") {
        Obj *m = (Obj *)a[0];
        if (!is_obj(m) || m->mapped) { *ret = fail_with(S_LOAD, a[3], "unload while mapped"); return 1; }
        m->loaded = 0;
        *ret = 1;
        return 1;
      }
      ON("mapIOSurfacesWithModel:request:cacheInference:error:") {
        Obj *m = (Obj *)a[0], *r = (Obj *)a[1];
        if (!is_obj(m) || !m->loaded || !is_obj(r) || r->kind != K_ANERequest) {
          *ret = fail_with(S_MAP, a[3], "bad request or model not loaded");
          return 1;
        }
        if (stage_fails(S_MAP)) { *ret = fail_with(S_MAP, a[3], "map failed"); return 1; }
        m->mapped++;
        r->mapped = 1;
        *ret = ok_with(S_MAP, a[3]);
        return 1;
      }
      ON("unmapIOSurfacesWithModel:request:") {
        Obj *m = (Obj *)a[0], *r = (Obj *)a[1];
        if (is_obj(m) && is_obj(r) && r->mapped) {
          r->mapped = 0;
          m->mapped--;
        }
        return 1;
      }
      ON("doEvaluateDirectWithModel:options:request:qos:error:") {
        *ret = do_eval((Obj *)a[0], (Obj *)a[2], a[4]);
        return 1;
      }
      /* §14.5: begin/end count active tasks (an injected NO changes nothing); evaluation needs one active, a loaded
         _ANEModel and an empty mutable options dictionary, then runs like any other evaluation. */
      ON("beginRealTimeTask") {
        if (stage_fails(S_RT_BEGIN)) { *ret = 0; return 1; }
        rt_active++;
        *ret = 1;
        return 1;
      }
      ON("endRealTimeTask") {
        if (rt_active == 0 || stage_fails(S_RT_END)) { *ret = 0; return 1; }
        rt_active--;
        *ret = 1;
        return 1;
      }
      ON("evaluateRealTimeWithModel:options:request:error:") {
        Obj *m = (Obj *)a[0], *o = (Obj *)a[1];
        if (rt_active == 0) { *ret = fail_with(S_RT_EVAL, a[3], "no real-time task is active"); return 1; }
        if (!is_obj(m) || m->kind != K_ANEModel || !m->loaded) {
          *ret = fail_with(S_RT_EVAL, a[3], "not a loaded _ANEModel");
          return 1;
        }
        if (!is_obj(o) || o->kind != K_NSMutableDictionary || o->n != 0) {
          *ret = fail_with(S_RT_EVAL, a[3], "options must be an empty mutable dictionary");
          return 1;
        }
        log_line("realtime %s", m->hex);
        if (stage_fails(S_RT_EVAL)) { *ret = fail_with(S_RT_EVAL, a[3], "real-time evaluation failed"); return 1; }
        *ret = do_eval(m, (Obj *)a[2], a[3]);
        return 1;
      }
      ON("virtualClient") { *ret = vclient.on ? (u64)static_obj(&the_vclient, K_ANEVirtualClient, 0) : 0; return 1; }
      ON("evaluateWithModel:options:request:qos:error:") {
        Obj *o = (Obj *)a[1];
        if (is_dict(o)) {
          char keys[200] = "options";
          for (size_t i = 0; i < o->n; i++) {
            strncat(keys, i ? "," : " ", sizeof keys - strlen(keys) - 1);
            strncat(keys, o->keys[i]->str, sizeof keys - strlen(keys) - 1);
          }
          log_line("%s", keys);
        }
        *ret = do_eval((Obj *)a[0], (Obj *)a[2], a[4]);
        return 1;
      }
      break;
    case K_NSURL:
      ON("initFileURLWithPath:") {
        Obj *p = (Obj *)a[0];
        self->str = strdup(is_obj(p) && p->kind == K_NSString ? p->str : "");
        self->initialised = 1;
        *ret = (u64)self;
        return 1;
      }
      break;
    case K_IOSurfaceSharedEvent:
      ON("eventPort") { *ret = (u64)self->code; return 1; }
      ON("signaledValue") { *ret = self->mask; return 1; }
      ON("setSignaledValue:") {
        self->mask = a[0];
        pthread_cond_broadcast(&SIGNALED);
        return 1;
      }
      ON("waitUntilSignaledValue:timeoutMS:") {
        /* Blocks this thread (the caller's worker) with the lock released until the value is reached or timeout. */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        u64 ms = a[1] > 86400000ULL ? 86400000ULL : a[1];
        deadline.tv_sec += (time_t)(ms / 1000);
        deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
        while (self->mask < a[0]) {
          if (pthread_cond_timedwait(&SIGNALED, &LOCK, &deadline) != 0) break;
        }
        *ret = self->mask >= a[0];
        return 1;
      }
      break;
    case K_ANEModel:
      ON("setPerfStatsMask:") { self->mask = (uint32_t)a[0]; return 1; }
      ON("modelAttributes") { *ret = (u64)self->a; return 1; }
      DIAG_SELECTORS(1)
      break;
    case K_ANEProgramForEvaluation:
      ON("currentAsyncRequestsInFlight") { *ret = (u64)diags[self->code].inflight; return 1; }
      ON("queueDepth") { *ret = (u64)(int64_t)(int8_t)diags[self->code].prog_queue; return 1; }
      ON("programHandle") { *ret = diags[self->code].prog_handle; return 1; }
      break;
    case K_ANEPerformanceStats:
      ON("hwExecutionTime") { *ret = self->mask; return 1; }
      ON("perfCounterData") { *ret = (u64)stats_counter_data; return 1; }
      ON("pStatsRawData") { *ret = (u64)stats_raw_data; return 1; }
      ON("performanceCounters") { *ret = (u64)stats_counters; return 1; }
      ON("stringForPerfCounter:") {
        int64_t i = (int64_t)a[0];
        *ret = i >= 0 && i < stats_nnames ? (u64)autorelease(str_new(stats_names[i])) : 0;
        return 1;
      }
      break;
    case K_ANEVirtualClient:
      ON("numANEs") { *ret = vclient.anes; return 1; }
      ON("numANECores") { *ret = vclient.cores; return 1; }
      ON("negotiatedDataInterfaceVersion") { *ret = vclient.iface; return 1; }
      ON("aneArchitectureTypeStr") { *ret = (u64)autorelease(str_new(vclient.arch)); return 1; }
      ON("aneBoardtype") { *ret = (u64)vclient.board; return 1; }
      ON("negotiatedCapabilityMask") { *ret = vclient.mask; return 1; }
      ON("validateEnvironmentForPrecompiledBinarySupport") { *ret = vclient.precompiled != 0; return 1; }
      break;
    case K_ANERequest:
      ON("validate") { *ret = self->a->n > 0 && self->c->n > 0; return 1; }
      ON("transactionHandle") { *ret = (u64)self->e; return 1; }
      ON("setTransactionHandle:") {
        Obj *t = retain((Obj *)a[0]);
        release(self->e);
        self->e = t;
        return 1;
      }
      ON("setPerfStats:") {
        Obj *p = retain((Obj *)a[0]);
        release(self->g);
        self->g = p;
        return 1;
      }
      ON("perfStats") { *ret = (u64)self->g; return 1; }
      ON("perfStatsArray") {
        Obj *arr = mk(K_NSArray);
        for (long i = 0; i < stats_entries; i++) {
          Obj *ps = mk(K_ANEPerformanceStats);
          ps->mask = stats_array_hw_ns;
          arr_add(arr, ps);
          release(ps);
        }
        *ret = (u64)autorelease(arr);
        return 1;
      }
      break;
    default:
      break;
  }
  return found;
}

/* What a real runtime does with a message nobody implements: raise NSInvalidArgumentException, which ends the
   process. The message names the receiver and the selector, as the real one does. */
static void unrecognized(int cls, const char *kname, const char *s, const void *receiver) {
  fprintf(stderr,
          "*** Terminating app due to uncaught exception 'NSInvalidArgumentException', reason: '%c[%s %s]: "
          "unrecognized selector sent to %s %p'\n",
          cls ? '+' : '-', kname, s, cls ? "class" : "instance", receiver);
  fflush(stderr);
  abort();
}

static u64 msg_send(void *receiver, void *op, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, u64 a6, u64 a7, u64 a8);

u64 objc_msgSend(void *receiver, void *op, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, u64 a6, u64 a7, u64 a8) {
  u64 t0 = now_ns();
  u64 ret = msg_send(receiver, op, a0, a1, a2, a3, a4, a5, a6, a7, a8);
  busy_since(t0);
  return ret;
}

static u64 msg_send(void *receiver, void *op, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, u64 a6, u64 a7, u64 a8) {
  init_classes();
  const char *s = op ? ((Sel *)op)->name : "(null)";
  if (receiver == NULL) return 0; /* messages to nil return nil/NO/0 */
  pthread_mutex_lock(&LOCK);
  if (((Obj *)receiver)->magic == MAGIC_ZOMBIE) {
    zombie_messages++;
    rejected++;
    snprintf(last_rejection, sizeof last_rejection, "-[_ANEClient %s] sent to a freed client", s);
    log_line("!zombie -_ANEClient %s", s);
    pthread_mutex_unlock(&LOCK);
    return 0;
  }
  int cls = is_class(receiver);
  Obj *self = (Obj *)receiver;
  if (!cls && !is_obj(receiver)) {
    fprintf(stderr, "*** message %s sent to %p, which is not an object\n", s, receiver);
    fflush(stderr);
    abort();
  }
  const char *kname = NAMES[self->kind];
  log_line("%c%s %s", cls ? '+' : '-', kname, s);
  if (pool_top == NULL) {
    unpooled++;
    snprintf(last_unpooled, sizeof last_unpooled, "%c[%s %s]", cls ? '+' : '-', kname, s);
  }
  u64 args[9] = {a0, a1, a2, a3, a4, a5, a6, a7, a8};
  u64 ret = 0;
  if (sig_for(cls, kname, s) == NULL || is_hidden(cls, self->kind, s) || !handle(self, cls, s, args, &ret, 0)) {
    unrecognized(cls, kname, s, receiver);
  }
  pthread_mutex_unlock(&LOCK);
  return ret;
}

/* ---- CoreFoundation (toll-free bridged: CF objects are the fake NS objects) ---- */

void *CFStringCreateWithCString(void *alloc, const char *s, uint32_t encoding) {
  (void)alloc; (void)encoding;
  pthread_mutex_lock(&LOCK);
  Obj *o = str_new(s);
  pthread_mutex_unlock(&LOCK);
  return o;
}

void *CFNumberCreate(void *alloc, int64_t type, const void *value) {
  (void)alloc;
  if (type != 4) return NULL;
  pthread_mutex_lock(&LOCK);
  Obj *o = num_new(*(const int64_t *)value);
  pthread_mutex_unlock(&LOCK);
  return o;
}

/* CoreFoundation's callback tables for CF-typed keys and values. Only their addresses matter here. */
typedef struct { long version; void *retain, *release, *copyDescription, *equal, *hash; } FakeCallBacks;
const FakeCallBacks kCFTypeDictionaryKeyCallBacks = {0, 0, 0, 0, 0, 0};
const FakeCallBacks kCFTypeDictionaryValueCallBacks = {0, 0, 0, 0, 0};

/* With the kCFType callbacks keys are retained and compared by value (CFEqual); with NULL callbacks, as
   CoreFoundation does, nothing is retained and keys are compared by pointer, so a key string made on the fly never
   matches the framework's own constant. */
void *CFDictionaryCreate(void *alloc, void **keys, void **values, int64_t n, const void *kcb, const void *vcb) {
  (void)alloc;
  pthread_mutex_lock(&LOCK);
  Obj *d = mk(K_NSDictionary);
  int typed = kcb == &kCFTypeDictionaryKeyCallBacks && vcb == &kCFTypeDictionaryValueCallBacks;
  log_line("CFDictionaryCreate %s", typed ? "kCFType" : "NULL");
  d->raw = !typed;
  for (int64_t i = 0; i < n; i++) {
    if (typed) {
      if (is_obj(keys[i]) && ((Obj *)keys[i])->kind == K_NSString) dict_set(d, (Obj *)keys[i], (Obj *)values[i]);
    } else {
      if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = realloc(d->items, d->cap * sizeof(Obj *));
        d->keys = realloc(d->keys, d->cap * sizeof(Obj *));
      }
      d->keys[d->n] = (Obj *)keys[i];
      d->items[d->n++] = (Obj *)values[i];
    }
  }
  pthread_mutex_unlock(&LOCK);
  return d;
}

/* CFRetain / CFRelease of an IOSurface are logged ("CFRetain IOSurface"), so tests see who holds a surface. */
void CFRelease(void *o) {
  pthread_mutex_lock(&LOCK);
  if (is_obj(o) && ((Obj *)o)->kind == K_IOSurface) log_line("CFRelease IOSurface");
  release((Obj *)o);
  pthread_mutex_unlock(&LOCK);
}

void *CFRetain(void *o) {
  pthread_mutex_lock(&LOCK);
  if (is_obj(o) && ((Obj *)o)->kind == K_IOSurface) log_line("CFRetain IOSurface");
  retain((Obj *)o);
  pthread_mutex_unlock(&LOCK);
  return o;
}

/* ---- IOSurface C API ---- */

/* The framework's property keys, exported as CFStringRef globals (dlsym them; their address is the key). */
void *kIOSurfaceWidth, *kIOSurfaceHeight, *kIOSurfaceBytesPerElement, *kIOSurfaceBytesPerRow, *kIOSurfaceAllocSize,
  *kIOSurfacePixelFormat;

/* A property by key, as IOSurfaceCreate looks it up: the constant itself in a NULL-callback dictionary (pointer
   equality), its text in a kCFType one. */
static int64_t prop(Obj *d, void *key) {
  if (!is_obj(d) || (d->kind != K_NSDictionary && d->kind != K_NSMutableDictionary)) return -1;
  Obj *v = NULL;
  if (d->raw) {
    for (size_t i = 0; i < d->n; i++) {
      if (d->keys[i] == key) v = d->items[i];
    }
  } else v = dict_get(d, ((Obj *)key)->str);
  return is_obj(v) && v->kind == K_NSNumber ? v->num : -1;
}

void *IOSurfaceCreate(void *properties) {
  pthread_mutex_lock(&LOCK);
  Obj *d = (Obj *)properties;
  Obj *sf = NULL;
  int64_t w = prop(d, kIOSurfaceWidth), h = prop(d, kIOSurfaceHeight), bpe = prop(d, kIOSurfaceBytesPerElement);
  int64_t bpr = prop(d, kIOSurfaceBytesPerRow), size = prop(d, kIOSurfaceAllocSize), pf = prop(d, kIOSurfacePixelFormat);
  log_line("IOSurfaceCreate %lld %lld %lld %lld %lld", (long long)w, (long long)h, (long long)bpe, (long long)bpr, (long long)size);
  if (is_dict(d) && d->n == 6 && w > 0 && h > 0 && (bpe == 2 || bpe == 4) && bpr >= w * bpe && bpr % 64 == 0 && pf == 0 &&
      size >= h * bpr && !stage_fails(S_SURFACE)) {
    sf = mk(K_IOSurface);
    sf->len = (size_t)size;
    sf->bytes = calloc(1, sf->len);
    sf->sum = surface_sum(sf);
    if (nsurfaces == capsurfaces) {
      capsurfaces = capsurfaces ? capsurfaces * 2 : 16;
      surfaces_live = realloc(surfaces_live, capsurfaces * sizeof(Obj *));
    }
    surfaces_live[nsurfaces++] = sf;
  }
  pthread_mutex_unlock(&LOCK);
  return sf;
}

/* A cheap content checksum (64-bit words; sizes are multiples of 64 bytes). */
static u64 surface_sum(Obj *sf) {
  u64 h = 0x9e3779b97f4a7c15ULL;
  const u64 *w = (const u64 *)sf->bytes;
  for (size_t i = 0; i < sf->len / 8; i++) h = (h ^ w[i]) * 0x100000001b3ULL + (h >> 29);
  return h;
}

/* Counts a CPU write made while no write lock was held: the content changed since the CPU last gave it up. */
static void surface_check(Obj *sf, const char *who) {
  if (!is_obj(sf) || sf->kind != K_IOSurface || sf->write_lock) return;
  u64 now = surface_sum(sf);
  if (now != sf->sum) {
    unlocked_writes++;
    snprintf(last_rejection, sizeof last_rejection, "CPU wrote an %s IOSurface without IOSurfaceLock", who);
    log_line("!unlocked write %s", who);
    sf->sum = now;
  }
}

int32_t IOSurfaceLock(void *p, uint32_t options, uint32_t *seed) {
  (void)seed;
  Obj *sf = (Obj *)p;
  if (!is_obj(sf) || sf->kind != K_IOSurface || options > 1) {
    pthread_mutex_lock(&LOCK);
    lock_errors++;
    pthread_mutex_unlock(&LOCK);
    return 1;
  }
  pthread_mutex_lock(&LOCK);
  surface_check(sf, "locked");
  sf->locks++;
  if (options == 0) sf->write_lock++;
  pthread_mutex_unlock(&LOCK);
  return 0;
}

int32_t IOSurfaceUnlock(void *p, uint32_t options, uint32_t *seed) {
  (void)seed;
  Obj *sf = (Obj *)p;
  pthread_mutex_lock(&LOCK);
  int bad = !is_obj(sf) || sf->kind != K_IOSurface || options > 1 || sf->locks == 0 || (options == 0 && sf->write_lock == 0);
  if (bad) lock_errors++;
  else {
    /* A read-only lock that saw a write: the CPU wrote without the right to. */
    if (options == 1 && sf->write_lock == 0) surface_check(sf, "read-locked");
    sf->locks--;
    if (options == 0) sf->write_lock--;
    if (sf->write_lock == 0) sf->sum = surface_sum(sf);
  }
  pthread_mutex_unlock(&LOCK);
  return bad ? 1 : 0;
}

void *IOSurfaceGetBaseAddress(void *sf) { return is_obj(sf) ? ((Obj *)sf)->bytes : NULL; }

uint64_t IOSurfaceGetAllocSize(void *sf) { return is_obj(sf) ? ((Obj *)sf)->len : 0; }

/* ---- Foundation C functions ---- */

void *NSTemporaryDirectory(void) {
  pthread_mutex_lock(&LOCK);
  Obj *o = autorelease(str_new(ns_temporary_directory()));
  pthread_mutex_unlock(&LOCK);
  return o;
}

/* ---- exported constants (the engine's option keys are NSString globals looked up with dlsym) ---- */

void *kANEFDisableIOFencesUseSharedEventsKey = NULL;
void *kANEFEnableFWToFWSignal = NULL;

static void *constant(const char *text) {
  Obj *o = str_new(text);
  o->uncounted = 1;
  live--;
  return o;
}

__attribute__((constructor)) static void init_constants(void) {
  /* Values differ from the symbol names on purpose: tests see whether the key came from the symbol. */
  kANEFDisableIOFencesUseSharedEventsKey = constant("fake.DisableIOFencesUseSharedEvents");
  kANEFEnableFWToFWSignal = constant("fake.EnableFWToFWSignal");
  kIOSurfaceWidth = constant("IOSurfaceWidth");
  kIOSurfaceHeight = constant("IOSurfaceHeight");
  kIOSurfaceBytesPerElement = constant("IOSurfaceBytesPerElement");
  kIOSurfaceBytesPerRow = constant("IOSurfaceBytesPerRow");
  kIOSurfaceAllocSize = constant("IOSurfaceAllocSize");
  kIOSurfacePixelFormat = constant("IOSurfacePixelFormat");
}

/* ---- test controls ---- */

/* Clears the log, the counters and the injected failures (live objects are not touched). */
void fake_reset(void) {
  pthread_mutex_lock(&LOCK);
  loglen = 0;
  if (logbuf) logbuf[0] = 0;
  rejected = 0;
  sig_mismatches = 0;
  last_rejection[0] = 0;
  for (int i = 0; i < S_COUNT; i++) calls[i] = fail_from[i] = fail_count[i] = fail_code[i] = spurious_from[i] = spurious_count[i] = 0;
  unlocked_writes = lock_errors = unpooled = 0;
  last_unpooled[0] = 0;
  in_flight_max = in_flight;
  shared_event_evals = 0;
  for (int i = 0; i < CLIENT_ORIGINS; i++) client_retains[i] = client_releases[i] = 0;
  zombie_messages = 0;
  pthread_mutex_unlock(&LOCK);
}

/* Makes calls nth..nth+count-1 (1-based, counted since fake_reset) of a stage fail with `code`; 0 on unknown stage. */
int fake_fail(const char *stage, long nth, long count, int64_t code) {
  for (int i = 0; i < S_COUNT; i++) {
    if (strcmp(STAGES[i], stage) == 0) {
      pthread_mutex_lock(&LOCK);
      fail_from[i] = nth;
      fail_count[i] = count;
      fail_code[i] = code;
      pthread_mutex_unlock(&LOCK);
      return 1;
    }
  }
  return 0;
}

/* The attributes dictionary every later-loaded model reports (retained; NULL clears it). */
void fake_set_attributes(void *dict) {
  pthread_mutex_lock(&LOCK);
  Obj *old = attributes;
  attributes = is_dict((Obj *)dict) ? retain((Obj *)dict) : NULL;
  release(old);
  pthread_mutex_unlock(&LOCK);
}

void fake_set_eval_callback(EvalCallback cb) { eval_cb = cb; }

/* Whether in-memory models answer -sharedConnection (the client path of spec §7.4/§7.5); on by default. */
void fake_set_client_path(int on) { client_path = on; }

const char *fake_log(void) { return logbuf ? logbuf : ""; }

/* The retain count of the live IOSurface whose memory starts at `base`; 0 when none is live. */
long fake_surface_refs(const void *base) {
  long rc = 0;
  pthread_mutex_lock(&LOCK);
  for (size_t i = 0; i < nsurfaces; i++) {
    if (surfaces_live[i]->bytes == base) rc = surfaces_live[i]->rc;
  }
  pthread_mutex_unlock(&LOCK);
  return rc;
}
long fake_live(void) { return live; }

/* Makes calls nth..nth+count-1 of a stage answer YES and also store an NSError; 0 on an unknown stage. */
int fake_spurious_error(const char *stage, long nth, long count) {
  for (int i = 0; i < S_COUNT; i++) {
    if (strcmp(STAGES[i], stage) == 0) {
      pthread_mutex_lock(&LOCK);
      spurious_from[i] = nth;
      spurious_count[i] = count;
      pthread_mutex_unlock(&LOCK);
      return 1;
    }
  }
  return 0;
}

/* How long each evaluation stays inside the engine (microseconds, lock released), and the concurrency it saw. */
void fake_set_eval_delay(long us) { eval_delay_us = us; }
void fake_set_eval_stack(long bytes) { eval_stack_bytes = bytes; }
/* Holds evaluations inside the engine (1) or lets them all go on (0). */
void fake_hold_evals(int on) {
  pthread_mutex_lock(&LOCK);
  hold_evals = on;
  if (!on) pthread_cond_broadcast(&RELEASED);
  pthread_mutex_unlock(&LOCK);
}
long fake_in_flight(void) { return in_flight; }
/* Makes -localModelPath answer NSTemporaryDirectory() itself (a folder the library must never take as the model's). */
void fake_local_path_parent(int on) { local_path_parent = on; }
/* Messages sent outside any autorelease pool since fake_reset, and the last of them. */
long fake_unpooled(void) { return unpooled; }
const char *fake_last_unpooled(void) { return last_unpooled; }
/* Nanoseconds spent inside objc_msgSend and the pool functions since the process started. */
u64 fake_busy_ns(void) { return __atomic_load_n(&busy_ns, __ATOMIC_RELAXED); }
long fake_in_flight_max(void) { return in_flight_max; }
/* IOSurface misuse since fake_reset: "unlocked" CPU writes without a write lock, "lock" bad lock/unlock calls. */
long fake_surface_misuse(const char *what) { return strcmp(what, "unlocked") == 0 ? unlocked_writes : lock_errors; }
/* The surface behind `base`: CPU locks currently held (-1 when none is live there). */
long fake_surface_locks(const void *base) {
  long n = -1;
  pthread_mutex_lock(&LOCK);
  for (size_t i = 0; i < nsurfaces; i++) {
    if (surfaces_live[i]->bytes == base) n = surfaces_live[i]->locks;
  }
  pthread_mutex_unlock(&LOCK);
  return n;
}
/* For fake_metal.c: a GPU wrote the surface at `base` (no CPU lock is needed for that); its content is the new
   reference, as after an evaluation. */
void fake_surface_device_wrote(const void *base) {
  pthread_mutex_lock(&LOCK);
  for (size_t i = 0; i < nsurfaces; i++) {
    if (surfaces_live[i]->bytes == base) surfaces_live[i]->sum = surface_sum(surfaces_live[i]);
  }
  pthread_mutex_unlock(&LOCK);
}
/* Objects autoreleased with no pool pushed, on the calling thread. */
long fake_thread_orphans(void) { return thread_orphans; }
/* Shared-event evaluations of package models since fake_reset. */
long fake_shared_event_evals(void) { return shared_event_evals; }
/* Foundation's temporary directory as the fake answers it. */
const char *fake_temporary_directory(void) { return ns_temporary_directory(); }
long fake_realtime_active(void) { return rt_active; }
long fake_rejected(void) { return rejected; }
long fake_signature_mismatches(void) { return sig_mismatches; }
long fake_orphans(void) { return orphans; }
const char *fake_last_rejection(void) { return last_rejection; }

/* ---- telemetry controls (§13) ---- */

static Obj *uncounted(Obj *o) {
  o->uncounted = 1;
  live--;
  return o;
}

/* The attached object's hwExecutionTime after each evaluation, the perfStatsArray length and its entries' time,
   and whether +statsWithHardwareExecutionNS: returns an object. */
void fake_stats_set(u64 hw_ns, long entries, u64 array_hw_ns, int factory) {
  pthread_mutex_lock(&LOCK);
  stats_hw_ns = hw_ns;
  stats_entries = entries;
  stats_array_hw_ns = array_hw_ns;
  stats_factory = factory;
  pthread_mutex_unlock(&LOCK);
}

/* perfCounterData ("counter") or pStatsRawData ("raw") bytes; len < 0 makes it nil. 0 on unknown `which`. */
int fake_stats_data(const char *which, const unsigned char *bytes, long len) {
  Obj **slot = strcmp(which, "counter") == 0 ? &stats_counter_data : strcmp(which, "raw") == 0 ? &stats_raw_data : NULL;
  if (slot == NULL) return 0;
  pthread_mutex_lock(&LOCK);
  release(*slot);
  *slot = NULL;
  if (len >= 0) {
    Obj *d = uncounted(mk(K_NSData));
    d->len = (size_t)len;
    d->bytes = malloc(len ? (size_t)len : 1);
    if (len > 0) memcpy(d->bytes, bytes, (size_t)len);
    *slot = d;
  }
  pthread_mutex_unlock(&LOCK);
  return 1;
}

/* Counter names for stringForPerfCounter:, separated by '\n' (nil past the last one); NULL for none. */
void fake_stats_names(const char *joined) {
  pthread_mutex_lock(&LOCK);
  for (long i = 0; i < stats_nnames; i++) free(stats_names[i]);
  free(stats_names);
  stats_names = NULL;
  stats_nnames = 0;
  if (joined != NULL) {
    long n = 1;
    for (const char *p = joined; *p; p++) n += *p == '\n';
    stats_names = calloc((size_t)n, sizeof(char *));
    const char *start = joined;
    for (long i = 0; i < n; i++) {
      const char *end = strchr(start, '\n');
      size_t len = end ? (size_t)(end - start) : strlen(start);
      stats_names[i] = strndup(start, len);
      start = end ? end + 1 : start + len;
    }
    stats_nnames = n;
  }
  pthread_mutex_unlock(&LOCK);
}

/* Adds index -> value to the performanceCounters dictionary (created on first use). */
void fake_stats_counter(long index, u64 value) {
  pthread_mutex_lock(&LOCK);
  if (stats_counters == NULL) stats_counters = uncounted(mk(K_NSDictionary));
  Obj *key = uncounted(num_new(index)), *v = uncounted(num_new((int64_t)value));
  arr_add(stats_counters, v);
  stats_counters->keys[stats_counters->n - 1] = key;
  release(v);
  pthread_mutex_unlock(&LOCK);
}

/* Whether -[_ANEClient virtualClient] answers an object, and what it reports. */
void fake_set_virtual_client(int on, uint32_t anes, uint32_t cores, const char *arch, int64_t board, u64 mask,
                             uint32_t iface, int precompiled) {
  pthread_mutex_lock(&LOCK);
  vclient.on = on;
  vclient.anes = anes;
  vclient.cores = cores;
  snprintf(vclient.arch, sizeof vclient.arch, "%s", arch ? arch : "");
  vclient.board = board;
  vclient.mask = mask;
  vclient.iface = iface;
  vclient.precompiled = precompiled;
  pthread_mutex_unlock(&LOCK);
}

/* What models of class `cls` (_ANEInMemoryModel or _ANEModel) and their program report; 0 on another class. */
int fake_set_diagnostics(const char *cls, int queue, int has_program, int64_t inflight, int prog_queue, u64 prog_handle,
                         u64 handle, u64 state) {
  int which = strcmp(cls, "_ANEInMemoryModel") == 0 ? 0 : strcmp(cls, "_ANEModel") == 0 ? 1 : -1;
  if (which < 0) return 0;
  pthread_mutex_lock(&LOCK);
  diags[which] = (Diag){queue, has_program, prog_queue, inflight, prog_handle, handle, state};
  pthread_mutex_unlock(&LOCK);
  return 1;
}

/* Hides a message written as a log line ("-_ANERequest perfStatsArray", "+_ANEClient sharedConnection"). */
int fake_hide(const char *line) {
  if (nhidden == (int)(sizeof hidden / sizeof hidden[0])) return 0;
  pthread_mutex_lock(&LOCK);
  hidden[nhidden++] = strdup(line);
  pthread_mutex_unlock(&LOCK);
  return 1;
}

/* Back to the defaults: no stats data, names or counters, factory on, no virtual client, zero diagnostics without a
   program, nothing hidden, no active real-time task. */
void fake_telemetry_reset(void) {
  fake_stats_set(0, 0, 0, 1);
  fake_stats_data("counter", NULL, -1);
  fake_stats_data("raw", NULL, -1);
  fake_stats_names(NULL);
  fake_set_virtual_client(0, 0, 0, "", 0, 0, 0, 0);
  pthread_mutex_lock(&LOCK);
  release(stats_counters);
  stats_counters = NULL;
  memset(diags, 0, sizeof diags);
  rt_active = 0;
  for (int i = 0; i < CS_COUNT; i++) client_mode[i] = CLIENT_DEFAULTS[i];
  for (int i = 0; i < nhidden; i++) free(hidden[i]);
  nhidden = 0;
  pthread_mutex_unlock(&LOCK);
}

/* ---- §3 client acquisition controls ---- */

/* What step `step` (a selector of §3 step 2) answers: 0 not implemented, 1 nil, 2 an object. 0 on an unknown step. */
int fake_client_step(const char *step, int mode) {
  for (int i = 0; i < CS_COUNT; i++) {
    if (strcmp(CLIENT_STEPS[i], step) == 0 && mode >= 0 && mode <= 2) {
      pthread_mutex_lock(&LOCK);
      client_mode[i] = mode;
      pthread_mutex_unlock(&LOCK);
      return 1;
    }
  }
  return 0;
}

/* Per client origin (1 private, 2 shared, 3 alloc+init, 4 new): "retain" / "release" messages since fake_reset,
   "alive" instances; "zombie" (any origin) counts messages sent to freed clients. -1 on an unknown query. */
long fake_client_stat(const char *what, long origin) {
  if (strcmp(what, "zombie") == 0) return zombie_messages;
  if (origin <= 0 || origin >= CLIENT_ORIGINS) return -1;
  if (strcmp(what, "retain") == 0) return client_retains[origin];
  if (strcmp(what, "release") == 0) return client_releases[origin];
  if (strcmp(what, "alive") == 0) return client_alive[origin];
  return -1;
}
