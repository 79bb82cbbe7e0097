/*
 * Fake Metal for the native tests, linked into the same library as fake_objc.c: MTLCreateSystemDefaultDevice and
 * the MTLDevice, MTLSharedEvent, MTLBuffer, MTLCompileOptions, MTLLibrary, MTLFunction, MTLComputePipelineState,
 * MTLCommandQueue, MTLCommandBuffer and MTLComputeCommandEncoder classes the backend uses, as strict as fake_objc.c:
 * - fake_objc.c is compiled with its objc_msgSend, objc_getClass, fake_check_signature and autorelease-pool entry
 *   points renamed to fake_objc_inner_*; the exported ones here take Metal objects and hand everything else on.
 * - Every message to a Metal object is checked against the signature table below (fake_check_signature), logged
 *   ("-MTLDevice newCommandQueue"), and counted when sent outside an autorelease pool; one nobody implements ends
 *   the process as the real runtime does. commandBuffer and computeCommandEncoder are +0 (autoreleased).
 * - A no-copy buffer must start at the base address of a live IOSurface (fake_surface_refs): a copy is refused.
 * - A Metal shared event made from a Mach port is the IOSurfaceSharedEvent of that port (retained while it lives):
 *   they share one value, as the kernel object behind the port does.
 * - Each command queue runs its committed command buffers in order on a thread of its own ("the GPU"): a wait
 *   blocks until the event reaches the value (5 s, then the buffer fails), a dispatch calls the kernel callback the
 *   test registered (fake_metal_set_kernel) with the buffers' memory, a signal sets the event's value. A kernel that
 *   returns non-zero, or a source the fake's compiler refuses (no "kernel void <name>"), fails like Metal does.
 * - MTLSize arguments (dispatchThreads:threadsPerThreadgroup:) are 24-byte structs: on x86-64 they arrive on the
 *   stack after the register arguments, on arm64 by reference.
 * - The pipelined-I/O and chaining classes of §10.3–10.4 live here too (_ANEInputBuffersReady, _ANEOutputSetEnqueue,
 *   _ANEChainingRequest), with the three `_ANEClient` selectors that take them: this file answers those selectors
 *   (and respondsToSelector: for them) for any receiver that is not its own, and logs what each call carried.
 */
#undef objc_msgSend
#undef objc_getClass
#undef fake_check_signature
#undef objc_autoreleasePoolPush
#undef objc_autoreleasePoolPop
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t u64;

/* fake_objc.c's entry points (renamed at build time) and controls. */
u64 fake_objc_inner_msgSend(void *receiver, void *op, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, u64 a6, u64 a7, u64 a8);
void *fake_objc_inner_getClass(const char *name);
int fake_objc_inner_check_signature(void *receiver, const char *sel, const char *sig);
void *fake_objc_inner_poolPush(void);
void fake_objc_inner_poolPop(void *token);
void *sel_registerName(const char *name);
long fake_surface_refs(const void *base);
void fake_surface_device_wrote(const void *base);

#define MAGIC_METAL 0x3E7A1u

enum MKind {
  M_Device, M_SharedEvent, M_Buffer, M_CompileOptions, M_Library, M_Function, M_Pipeline, M_Queue, M_CommandBuffer,
  M_Encoder, M_InputBuffersReady, M_OutputSetEnqueue, M_ChainingRequest, M_COUNT
};
static const char *const MNAMES[M_COUNT] = {
  "MTLDevice", "MTLSharedEvent", "MTLBuffer", "MTLCompileOptions", "MTLLibrary", "MTLFunction",
  "MTLComputePipelineState", "MTLCommandQueue", "MTLCommandBuffer", "MTLComputeCommandEncoder",
  "_ANEInputBuffersReady", "_ANEOutputSetEnqueue", "_ANEChainingRequest"
};

#define MAX_BUFFERS 31
enum { OP_WAIT, OP_SIGNAL, OP_DISPATCH };

typedef struct MObj MObj;
typedef struct Op {
  int type;
  MObj *event;                 /* OP_WAIT / OP_SIGNAL: retained */
  u64 value;
  char name[64];               /* OP_DISPATCH: the kernel */
  int nbuf;
  MObj *buffers[MAX_BUFFERS];  /* retained */
  unsigned char *params;
  long nparams;
  u64 grid[3], group[3];
  struct Op *next;
} Op;

struct MObj {
  unsigned magic;
  int kind;
  int is_class;
  int rc;
  /* payload */
  u64 args[8];                 /* §10.3–10.4 objects: what they were made with */
  int ready;                   /* _ANEOutputSetEnqueue: initialised */
  unsigned port;               /* MTLSharedEvent */
  void *event;                 /* MTLSharedEvent: the IOSurfaceSharedEvent of its port (retained) */
  void *ptr;                   /* MTLBuffer */
  u64 len;
  char name[64];               /* MTLFunction, MTLComputePipelineState, MTLLibrary (first kernel name) */
  char *source;                /* MTLLibrary */
  /* MTLCommandQueue */
  pthread_t thread;
  int stop;
  MObj *pending_head, *pending_tail;
  /* MTLCommandBuffer */
  MObj *queue;                 /* not retained: a queue outlives what it runs, or fails it when released */
  Op *ops, *ops_tail;
  int committed;
  u64 status;                  /* 0 NotEnqueued, 2 Committed, 4 Completed, 5 Error */
  MObj *next_pending;
  /* MTLComputeCommandEncoder */
  MObj *cb;                    /* retained */
  MObj *pipeline;              /* retained */
  MObj *bound[MAX_BUFFERS];    /* retained */
  int nbound;
  unsigned char *bytes;
  long nbytes;
  int ended;
};

static MObj MCLASSES[M_COUNT];
static pthread_mutex_t MLOCK = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t MWAKE = PTHREAD_COND_INITIALIZER;
static long mlive = 0, mrejected = 0, mmismatches = 0, munpooled = 0, mdispatches = 0, morphans = 0;
/* §10.3–10.4 calls the client answered since fake_metal_reset. */
static long mready = 0, menqueued = 0, mchains = 0;
static int device_available = 1;
/* A selector Metal objects say they do not answer (fake_metal_hide), as an older OS would. */
static char hidden_sel[160];
static char mlast[512];
static char *mlog = NULL;
static size_t mloglen = 0, mlogcap = 0;

typedef int (*KernelCallback)(const char *name, int nbuf, void **buffers, u64 *lengths, const void *params, long nparams,
                              u64 gx, u64 gy, u64 gz);
static KernelCallback kernel_cb = NULL;

/* Autorelease pools as fake_objc.c counts them, per thread, plus this file's own +0 Metal objects per pool. */
typedef struct MPool { MObj **objs; size_t n, cap; struct MPool *prev; void *token; } MPool;
static __thread MPool *mpool_top = NULL;

static void mlog_line(const char *text) {
  size_t n = strlen(text);
  if (mloglen + n + 2 > mlogcap) {
    mlogcap = (mloglen + n + 2) * 2;
    mlog = realloc(mlog, mlogcap);
  }
  memcpy(mlog + mloglen, text, n);
  mloglen += n;
  mlog[mloglen++] = '\n';
  mlog[mloglen] = 0;
}

static int is_metal(const void *p) { return p != NULL && ((const MObj *)p)->magic == MAGIC_METAL; }

static MObj *mk(int kind) {
  MObj *o = calloc(1, sizeof(MObj));
  o->magic = MAGIC_METAL;
  o->kind = kind;
  o->rc = 1;
  mlive++;
  return o;
}

/* ---- the IOSurfaceSharedEvents by port, seen as the runtime creates and releases them ---- */

typedef struct { unsigned port; void *event; long refs; } PortEntry;
static PortEntry *ports = NULL;
static size_t nports = 0, capports = 0;

static PortEntry *port_entry(unsigned port) {
  for (size_t i = 0; i < nports; i++) if (ports[i].port == port && port != 0) return &ports[i];
  return NULL;
}

static u64 inner(void *receiver, const char *sel, u64 a0, u64 a1) {
  return fake_objc_inner_msgSend(receiver, sel_registerName(sel), a0, a1, 0, 0, 0, 0, 0, 0, 0);
}

static void mrelease(MObj *o);

static void free_ops(Op *op) {
  while (op != NULL) {
    Op *next = op->next;
    if (op->event) mrelease(op->event);
    for (int i = 0; i < op->nbuf; i++) mrelease(op->buffers[i]);
    free(op->params);
    free(op);
    op = next;
  }
}

/* Called with MLOCK held. */
static void mdealloc(MObj *o) {
  switch (o->kind) {
    case M_SharedEvent:
      for (size_t i = 0; i < nports; i++) {
        if (ports[i].event != o->event) continue;
        if (--ports[i].refs <= 0) ports[i] = ports[--nports];
        break;
      }
      if (o->event) {
        /* The IOSurfaceSharedEvent is released through the runtime, in a pool of our own (any thread). */
        void *pool = fake_objc_inner_poolPush();
        inner(o->event, "release", 0, 0);
        fake_objc_inner_poolPop(pool);
      }
      break;
    case M_Library: free(o->source); break;
    case M_Queue:
      /* Its thread fails what is still pending, then frees the queue itself (never joined here: the thread may be
         inside a kernel callback that needs this thread's event loop). */
      o->stop = 1;
      pthread_cond_broadcast(&MWAKE);
      return;
    case M_CommandBuffer: free_ops(o->ops); break;
    case M_Encoder:
      if (o->cb) mrelease(o->cb);
      if (o->pipeline) mrelease(o->pipeline);
      for (int i = 0; i < o->nbound; i++) if (o->bound[i]) mrelease(o->bound[i]);
      free(o->bytes);
      break;
    default: break;
  }
  o->magic = 0;
  mlive--;
  free(o);
}

static void mrelease(MObj *o) {
  if (!is_metal(o) || o->is_class) return;
  if (--o->rc == 0) mdealloc(o);
}

static MObj *mretain(MObj *o) {
  if (is_metal(o) && !o->is_class) o->rc++;
  return o;
}

static MObj *mautorelease(MObj *o) {
  if (mpool_top == NULL) {
    morphans++;
    return o;
  }
  MPool *p = mpool_top;
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 8;
    p->objs = realloc(p->objs, p->cap * sizeof(MObj *));
  }
  p->objs[p->n++] = o;
  return o;
}

void *objc_autoreleasePoolPush(void) {
  MPool *p = calloc(1, sizeof(MPool));
  p->token = fake_objc_inner_poolPush();
  p->prev = mpool_top;
  mpool_top = p;
  return p;
}

void objc_autoreleasePoolPop(void *token) {
  while (mpool_top != NULL) {
    MPool *p = mpool_top;
    mpool_top = p->prev;
    pthread_mutex_lock(&MLOCK);
    for (size_t i = 0; i < p->n; i++) mrelease(p->objs[i]);
    pthread_mutex_unlock(&MLOCK);
    fake_objc_inner_poolPop(p->token);
    free(p->objs);
    free(p);
    if ((void *)p == token) break;
  }
}

/* ---- signatures: "+Class" / "-Class" receivers, as in fake_objc.c ---- */

static const char *const MSIGS[][3] = {
  {"*", "respondsToSelector:", "bool(SEL)"}, {"*", "retain", "id()"}, {"*", "release", "void()"},
  {"-MTLDevice", "name", "id()"},
  {"-MTLDevice", "newSharedEventWithMachPort:", "id(uint32)"},
  {"-MTLDevice", "newBufferWithBytesNoCopy:length:options:deallocator:", "id(ptr,uint64,uint64,ptr)"},
  {"-MTLDevice", "newLibraryWithSource:options:error:", "id(id,id,err)"},
  {"-MTLDevice", "newComputePipelineStateWithFunction:error:", "id(id,err)"},
  {"-MTLDevice", "newCommandQueue", "id()"},
  {"+MTLCompileOptions", "alloc", "id()"}, {"-MTLCompileOptions", "init", "id()"},
  {"-MTLLibrary", "newFunctionWithName:", "id(id)"},
  {"-MTLComputePipelineState", "maxTotalThreadsPerThreadgroup", "uint64()"},
  {"-MTLCommandQueue", "commandBuffer", "id()"},
  {"-MTLCommandBuffer", "computeCommandEncoder", "id()"},
  {"-MTLCommandBuffer", "encodeWaitForEvent:value:", "void(id,uint64)"},
  {"-MTLCommandBuffer", "encodeSignalEvent:value:", "void(id,uint64)"},
  {"-MTLCommandBuffer", "commit", "void()"}, {"-MTLCommandBuffer", "status", "uint64()"},
  {"-MTLCommandBuffer", "error", "id()"},
  {"-MTLComputeCommandEncoder", "setComputePipelineState:", "void(id)"},
  {"-MTLComputeCommandEncoder", "setBuffer:offset:atIndex:", "void(id,uint64,uint64)"},
  {"-MTLComputeCommandEncoder", "setBytes:length:atIndex:", "void(ptr,uint64,uint64)"},
  {"-MTLComputeCommandEncoder", "dispatchThreads:threadsPerThreadgroup:", "void(MTLSize,MTLSize)"},
  {"-MTLComputeCommandEncoder", "endEncoding", "void()"},
  {"+_ANEInputBuffersReady", "inputBuffersWithProcedureIndex:inputBufferInfoIndex:inputFreeValue:executionDelay:",
   "id(uint32,id,id,uint64)"},
  {"+_ANEOutputSetEnqueue", "alloc", "id()"},
  {"-_ANEOutputSetEnqueue", "initOutputSetWithProcedureIndex:setIndex:signalValue:signalNotRequired:isOpenLoop:",
   "id(uint32,uint32,uint64,bool,bool)"},
  {"+_ANEChainingRequest",
   "chainingRequestWithInputs:outputSets:lbInputSymbolId:lbOutputSymbolId:procedureIndex:signalEvents:transactionHandle:fwEnqueueDelay:memoryPoolId:",
   "id(id,id,id,id,id,id,id,id,id)"},
};
/* `_ANEClient` selectors answered here (the client itself is fake_objc.c's). */
static const char *const CLIENT_SIGS[][2] = {
  {"buffersReadyWithModel:inputBuffers:options:qos:error:", "bool(id,id,id,uint32,err)"},
  {"enqueueSetsWithModel:outputSet:options:qos:error:", "bool(id,id,id,uint32,err)"},
  {"prepareChainingWithModel:options:chainingReq:qos:error:", "bool(id,id,id,uint32,err)"},
};
static const char *client_sig(const char *sel) {
  for (size_t i = 0; i < sizeof CLIENT_SIGS / sizeof CLIENT_SIGS[0]; i++) {
    if (strcmp(CLIENT_SIGS[i][0], sel) == 0) return CLIENT_SIGS[i][1];
  }
  return NULL;
}
#define NMSIGS (sizeof MSIGS / sizeof MSIGS[0])

static const char *msig_for(const MObj *o, const char *sel) {
  char token[64];
  snprintf(token, sizeof token, "%c%s", o->is_class ? '+' : '-', MNAMES[o->kind]);
  for (size_t i = 0; i < NMSIGS; i++) {
    if (strcmp(MSIGS[i][1], sel) != 0) continue;
    if (strcmp(MSIGS[i][0], "*") == 0 || strcmp(MSIGS[i][0], token) == 0) return MSIGS[i][2];
  }
  return NULL;
}

int fake_check_signature(void *receiver, const char *sel, const char *sig) {
  if (!is_metal(receiver) && client_sig(sel) != NULL) {
    if (strcmp(client_sig(sel), sig) == 0) return 1;
    pthread_mutex_lock(&MLOCK);
    mmismatches++;
    snprintf(mlast, sizeof mlast, "signature %s for -[_ANEClient %s] (table: %s)", sig, sel, client_sig(sel));
    pthread_mutex_unlock(&MLOCK);
    return 0;
  }
  if (!is_metal(receiver)) return fake_objc_inner_check_signature(receiver, sel, sig);
  const MObj *o = receiver;
  const char *want = msig_for(o, sel);
  if (want != NULL && strcmp(want, sig) == 0) return 1;
  pthread_mutex_lock(&MLOCK);
  mmismatches++;
  snprintf(mlast, sizeof mlast, "signature %s for %c[%s %s] (table: %s)", sig, o->is_class ? '+' : '-', MNAMES[o->kind], sel,
           want ? want : "none");
  pthread_mutex_unlock(&MLOCK);
  return 0;
}

void *objc_getClass(const char *name) {
  for (int k = 0; k < M_COUNT; k++) {
    if (strcmp(MNAMES[k], name) == 0) {
      MCLASSES[k].magic = MAGIC_METAL;
      MCLASSES[k].kind = k;
      MCLASSES[k].is_class = 1;
      return &MCLASSES[k];
    }
  }
  return fake_objc_inner_getClass(name);
}

/* Learns each IOSurfaceSharedEvent from `+new`, its port from the `-eventPort` the backend asks it next (so the fake
   sends no message of its own), and drops it when the retains it saw are released. */
static void port_note(void *receiver, const char *sel, u64 ret) {
  if (receiver == NULL || is_metal(receiver)) return;
  int made = strcmp(sel, "new") == 0 && ret != 0 && receiver == fake_objc_inner_getClass("IOSurfaceSharedEvent");
  int port = strcmp(sel, "eventPort") == 0;
  int up = strcmp(sel, "retain") == 0, down = strcmp(sel, "release") == 0;
  if (!made && !port && !up && !down) return;
  pthread_mutex_lock(&MLOCK);
  if (made) {
    if (nports == capports) {
      capports = capports ? capports * 2 : 16;
      ports = realloc(ports, capports * sizeof(PortEntry));
    }
    ports[nports++] = (PortEntry){0, (void *)ret, 1};
  } else {
    for (size_t i = 0; i < nports; i++) {
      if (ports[i].event != receiver) continue;
      if (port) ports[i].port = (unsigned)ret;
      else {
        ports[i].refs += up ? 1 : -1;
        if (ports[i].refs <= 0) ports[i] = ports[--nports];
      }
      break;
    }
  }
  pthread_mutex_unlock(&MLOCK);
}

/* ---- the GPU: one thread per queue ---- */

static int event_wait(MObj *ev, u64 value, MObj *queue) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    void *pool = fake_objc_inner_poolPush();
    int reached = (int)inner(ev->event, "waitUntilSignaledValue:timeoutMS:", value, 5);
    fake_objc_inner_poolPop(pool);
    if (reached) return 1;
    pthread_mutex_lock(&MLOCK);
    int stop = queue->stop;
    pthread_mutex_unlock(&MLOCK);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (stop || now.tv_sec - start.tv_sec >= 5) return 0;
  }
}

static int run_op(Op *op, MObj *queue) {
  if (op->type == OP_WAIT) return event_wait(op->event, op->value, queue);
  if (op->type == OP_SIGNAL) {
    void *pool = fake_objc_inner_poolPush();
    inner(op->event->event, "setSignaledValue:", op->value, 0);
    fake_objc_inner_poolPop(pool);
    return 1;
  }
  void *ptrs[MAX_BUFFERS];
  u64 lens[MAX_BUFFERS];
  for (int i = 0; i < op->nbuf; i++) {
    ptrs[i] = op->buffers[i]->ptr;
    lens[i] = op->buffers[i]->len;
  }
  pthread_mutex_lock(&MLOCK);
  KernelCallback cb = kernel_cb;
  mdispatches++;
  pthread_mutex_unlock(&MLOCK);
  int status = cb ? cb(op->name, op->nbuf, ptrs, lens, op->params, op->nparams, op->grid[0], op->grid[1], op->grid[2]) : 0;
  /* The GPU's writes are not the CPU's: no IOSurface lock is needed for them. */
  for (int i = 0; i < op->nbuf; i++) fake_surface_device_wrote(ptrs[i]);
  return status == 0;
}

static void *gpu_thread(void *arg) {
  MObj *q = arg;
  pthread_mutex_lock(&MLOCK);
  for (;;) {
    while (q->pending_head == NULL && !q->stop) pthread_cond_wait(&MWAKE, &MLOCK);
    MObj *cb = q->pending_head;
    if (cb == NULL) break;
    q->pending_head = cb->next_pending;
    if (q->pending_head == NULL) q->pending_tail = NULL;
    int ok = !q->stop;
    pthread_mutex_unlock(&MLOCK);
    for (Op *op = cb->ops; op != NULL && ok; op = op->next) ok = run_op(op, q);
    pthread_mutex_lock(&MLOCK);
    cb->status = ok ? 4 : 5;
    mrelease(cb);
  }
  /* The queue was released: nothing is left to run. */
  q->magic = 0;
  mlive--;
  pthread_mutex_unlock(&MLOCK);
  free(q);
  return NULL;
}

/* ---- messages ---- */

static void mreject(const MObj *o, const char *sel, const char *why) {
  mrejected++;
  snprintf(mlast, sizeof mlast, "%c[%s %s]: %s", o->is_class ? '+' : '-', MNAMES[o->kind], sel, why);
}

/* Handles one message to a Metal object (MLOCK held); returns 1 when implemented. */
static int mhandle(MObj *self, const char *s, const u64 *a, u64 *ret, int dry) {
#define MON(name) if (strcmp(s, name) == 0 && !(dry && (found = 1)))
  int found = 0;
  MON("respondsToSelector:") {
    const char *name = *(char **)a[0];
    u64 r = 0;
    *ret = msig_for(self, name) != NULL && strcmp(name, hidden_sel) != 0 && mhandle(self, name, a, &r, 1);
    return 1;
  }
  if (self->is_class) {
    if (self->kind == M_CompileOptions) MON("alloc") { *ret = (u64)mk(M_CompileOptions); return 1; }
    if (self->kind == M_OutputSetEnqueue) MON("alloc") { *ret = (u64)mk(M_OutputSetEnqueue); return 1; }
    if (self->kind == M_InputBuffersReady) {
      MON("inputBuffersWithProcedureIndex:inputBufferInfoIndex:inputFreeValue:executionDelay:") {
        MObj *o = mk(M_InputBuffersReady);
        memcpy(o->args, a, 4 * sizeof(u64));
        *ret = (u64)mautorelease(o);
        return 1;
      }
    }
    if (self->kind == M_ChainingRequest) {
      MON("chainingRequestWithInputs:outputSets:lbInputSymbolId:lbOutputSymbolId:procedureIndex:signalEvents:transactionHandle:fwEnqueueDelay:memoryPoolId:") {
        /* Reads the arrays and numbers through the runtime (they are fake_objc.c's objects). */
        pthread_mutex_unlock(&MLOCK);
        u64 v[8];
        v[0] = a[0] ? inner((void *)a[0], "count", 0, 0) : 0;
        v[1] = a[1] ? inner((void *)a[1], "count", 0, 0) : 0;
        for (int i = 2; i < 4; i++) {
          void *n = a[i] && inner((void *)a[i], "count", 0, 0) == 1 ? (void *)inner((void *)a[i], "objectAtIndex:", 0, 0) : NULL;
          v[i] = n ? (u64)(int64_t)(int32_t)inner(n, "intValue", 0, 0) : (u64)-1;
        }
        v[4] = a[4] ? (u64)(int64_t)(int32_t)inner((void *)a[4], "intValue", 0, 0) : (u64)-1;
        v[5] = a[5];  /* signalEvents: nil expected */
        v[6] = a[6] ? inner((void *)a[6], "unsignedLongLongValue", 0, 0) : (u64)-1;
        v[7] = a[7] ? inner((void *)a[7], "unsignedLongLongValue", 0, 0) : (u64)-1;
        u64 pool = a[8] ? (u64)(int64_t)(int32_t)inner((void *)a[8], "intValue", 0, 0) : (u64)-1;
        pthread_mutex_lock(&MLOCK);
        MObj *o = mk(M_ChainingRequest);
        memcpy(o->args, v, sizeof v);
        o->ready = (int)pool;
        *ret = (u64)mautorelease(o);
        return 1;
      }
    }
    return found;
  }
  MON("retain") { *ret = (u64)mretain(self); return 1; }
  MON("release") { mrelease(self); return 1; }
  switch (self->kind) {
    case M_Device:
      MON("name") {
        pthread_mutex_unlock(&MLOCK);
        void *cls = fake_objc_inner_getClass("NSString");
        *ret = fake_objc_inner_msgSend(cls, sel_registerName("stringWithUTF8String:"), (u64) "Fake GPU", 0, 0, 0, 0, 0, 0, 0, 0);
        pthread_mutex_lock(&MLOCK);
        return 1;
      }
      MON("newSharedEventWithMachPort:") {
        PortEntry *e = port_entry((unsigned)a[0]);
        if (e == NULL) { mreject(self, s, "no IOSurfaceSharedEvent has this port"); *ret = 0; return 1; }
        MObj *ev = mk(M_SharedEvent);
        ev->port = (unsigned)a[0];
        ev->event = e->event;
        e->refs++;
        pthread_mutex_unlock(&MLOCK);
        void *pool = fake_objc_inner_poolPush();
        inner(ev->event, "retain", 0, 0);
        fake_objc_inner_poolPop(pool);
        pthread_mutex_lock(&MLOCK);
        *ret = (u64)ev;
        return 1;
      }
      MON("newBufferWithBytesNoCopy:length:options:deallocator:") {
        void *p = (void *)a[0];
        pthread_mutex_unlock(&MLOCK);
        long refs = fake_surface_refs(p);
        pthread_mutex_lock(&MLOCK);
        if (refs <= 0 || a[1] == 0 || a[2] != 0 || a[3] != 0) {
          mreject(self, s, refs <= 0 ? "not the base address of a live IOSurface" : "zero length, options or a deallocator");
          *ret = 0;
          return 1;
        }
        MObj *b = mk(M_Buffer);
        b->ptr = p;
        b->len = a[1];
        *ret = (u64)b;
        return 1;
      }
      MON("newLibraryWithSource:options:error:") {
        pthread_mutex_unlock(&MLOCK);
        const char *text = (const char *)fake_objc_inner_msgSend((void *)a[0], sel_registerName("UTF8String"), 0, 0, 0, 0, 0, 0, 0, 0, 0);
        pthread_mutex_lock(&MLOCK);
        const MObj *opts = (const MObj *)a[1];
        if (text == NULL || strstr(text, "kernel void ") == NULL || !is_metal(opts) || opts->kind != M_CompileOptions) {
          /* Refused with no NSError: the backend reports a failure without details. */
          mlog_line("!compile refused");
          *ret = 0;
          return 1;
        }
        MObj *lib = mk(M_Library);
        lib->source = strdup(text);
        *ret = (u64)lib;
        return 1;
      }
      MON("newComputePipelineStateWithFunction:error:") {
        MObj *f = (MObj *)a[0];
        if (!is_metal(f) || f->kind != M_Function) { mreject(self, s, "not an MTLFunction"); *ret = 0; return 1; }
        MObj *p = mk(M_Pipeline);
        memcpy(p->name, f->name, sizeof p->name);
        *ret = (u64)p;
        return 1;
      }
      MON("newCommandQueue") {
        MObj *q = mk(M_Queue);
        pthread_create(&q->thread, NULL, gpu_thread, q);
        pthread_detach(q->thread);
        *ret = (u64)q;
        return 1;
      }
      break;
    case M_CompileOptions:
      MON("init") { *ret = (u64)self; return 1; }
      break;
    case M_Library:
      MON("newFunctionWithName:") {
        pthread_mutex_unlock(&MLOCK);
        const char *name = (const char *)fake_objc_inner_msgSend((void *)a[0], sel_registerName("UTF8String"), 0, 0, 0, 0, 0, 0, 0, 0, 0);
        pthread_mutex_lock(&MLOCK);
        char want[96];
        snprintf(want, sizeof want, "kernel void %s(", name ? name : "");
        if (name == NULL || strstr(self->source, want) == NULL) { *ret = 0; return 1; }
        MObj *f = mk(M_Function);
        snprintf(f->name, sizeof f->name, "%s", name);
        *ret = (u64)f;
        return 1;
      }
      break;
    case M_Pipeline:
      MON("maxTotalThreadsPerThreadgroup") { *ret = 1024; return 1; }
      break;
    case M_OutputSetEnqueue:
      MON("initOutputSetWithProcedureIndex:setIndex:signalValue:signalNotRequired:isOpenLoop:") {
        memcpy(self->args, a, 5 * sizeof(u64));
        self->ready = 1;
        *ret = (u64)self;
        return 1;
      }
      break;
    case M_Queue:
      MON("commandBuffer") {
        MObj *cb = mk(M_CommandBuffer);
        cb->queue = self;
        *ret = (u64)mautorelease(cb);
        return 1;
      }
      break;
    case M_CommandBuffer:
      MON("computeCommandEncoder") {
        if (self->committed) { mreject(self, s, "already committed"); *ret = 0; return 1; }
        MObj *e = mk(M_Encoder);
        e->cb = mretain(self);
        *ret = (u64)mautorelease(e);
        return 1;
      }
      if (strcmp(s, "encodeWaitForEvent:value:") == 0 || strcmp(s, "encodeSignalEvent:value:") == 0) {
        if (dry) return 1;
        MObj *ev = (MObj *)a[0];
        if (!is_metal(ev) || ev->kind != M_SharedEvent || self->committed) { mreject(self, s, "not an MTLSharedEvent, or committed"); return 1; }
        Op *op = calloc(1, sizeof(Op));
        op->type = s[6] == 'W' ? OP_WAIT : OP_SIGNAL;
        op->event = mretain(ev);
        op->value = a[1];
        if (self->ops_tail) self->ops_tail->next = op; else self->ops = op;
        self->ops_tail = op;
        return 1;
      }
      MON("commit") {
        if (self->committed) { mreject(self, s, "committed twice"); return 1; }
        self->committed = 1;
        self->status = 2;
        MObj *q = self->queue;
        mretain(self);
        if (q->pending_tail) q->pending_tail->next_pending = self; else q->pending_head = self;
        q->pending_tail = self;
        pthread_cond_broadcast(&MWAKE);
        return 1;
      }
      MON("status") { *ret = self->status; return 1; }
      MON("error") { *ret = 0; return 1; }
      break;
    case M_Encoder:
      MON("setComputePipelineState:") {
        MObj *p = (MObj *)a[0];
        if (!is_metal(p) || p->kind != M_Pipeline || self->ended) { mreject(self, s, "not a pipeline state"); return 1; }
        if (self->pipeline) mrelease(self->pipeline);
        self->pipeline = mretain(p);
        return 1;
      }
      MON("setBuffer:offset:atIndex:") {
        MObj *b = (MObj *)a[0];
        if (!is_metal(b) || b->kind != M_Buffer || a[1] != 0 || a[2] >= MAX_BUFFERS || self->ended) {
          mreject(self, s, "not a buffer, a non-zero offset or an index past 30");
          return 1;
        }
        int i = (int)a[2];
        if (self->bound[i]) mrelease(self->bound[i]);
        self->bound[i] = mretain(b);
        if (i + 1 > self->nbound) self->nbound = i + 1;
        return 1;
      }
      MON("setBytes:length:atIndex:") {
        if (a[1] == 0 || a[1] > 4096 || self->ended) { mreject(self, s, "length 0 or over 4 KiB"); return 1; }
        free(self->bytes);
        self->bytes = malloc(a[1]);
        memcpy(self->bytes, (void *)a[0], a[1]);
        self->nbytes = (long)a[1];
        return 1;
      }
      MON("dispatchThreads:threadsPerThreadgroup:") {
        const u64 *grid = a, *group = a + 3;
        if (self->pipeline == NULL || self->ended) { mreject(self, s, "no pipeline state set"); return 1; }
        for (int i = 0; i < 3; i++) {
          if (grid[i] == 0 || group[i] == 0) { mreject(self, s, "an empty grid or threadgroup"); return 1; }
        }
        if (group[0] * group[1] * group[2] > 1024) { mreject(self, s, "threadgroup over maxTotalThreadsPerThreadgroup"); return 1; }
        for (int i = 0; i < self->nbound; i++) {
          if (self->bound[i] == NULL) { mreject(self, s, "a gap in the bound buffers"); return 1; }
        }
        Op *op = calloc(1, sizeof(Op));
        op->type = OP_DISPATCH;
        memcpy(op->name, self->pipeline->name, sizeof op->name);
        op->nbuf = self->nbound;
        for (int i = 0; i < op->nbuf; i++) op->buffers[i] = mretain(self->bound[i]);
        if (self->nbytes > 0) {
          op->params = malloc(self->nbytes);
          memcpy(op->params, self->bytes, self->nbytes);
          op->nparams = self->nbytes;
        }
        memcpy(op->grid, grid, sizeof op->grid);
        memcpy(op->group, group, sizeof op->group);
        MObj *cb = self->cb;
        if (cb->ops_tail) cb->ops_tail->next = op; else cb->ops = op;
        cb->ops_tail = op;
        return 1;
      }
      MON("endEncoding") { self->ended = 1; return 1; }
      break;
    default: break;
  }
  return found;
#undef MON
}

/* The three §10.3–10.4 `_ANEClient` selectors (MLOCK held): YES, with what they carried in the log. */
static u64 client_call(const char *s, const u64 *a) {
  char line[200];
  const MObj *o = (const MObj *)a[1];
  int buffers = strcmp(s, "buffersReadyWithModel:inputBuffers:options:qos:error:") == 0;
  int sets = strcmp(s, "enqueueSetsWithModel:outputSet:options:qos:error:") == 0;
  if (buffers || sets) {
    int want = buffers ? M_InputBuffersReady : M_OutputSetEnqueue;
    if (a[0] == 0 || !is_metal(o) || o->kind != want || (sets && !o->ready) || a[2] != 0) {
      mrejected++;
      snprintf(mlast, sizeof mlast, "-[_ANEClient %s]: no model, a wrong object, or options", s);
      return 0;
    }
    if (buffers) {
      mready++;
      snprintf(line, sizeof line, "buffersReady procedure=%u info=%llu free=%llu delay=%llu qos=%u", (unsigned)o->args[0],
               (unsigned long long)o->args[1], (unsigned long long)o->args[2], (unsigned long long)o->args[3], (unsigned)a[3]);
    } else {
      menqueued++;
      snprintf(line, sizeof line, "enqueue procedure=%u set=%u value=%llu notRequired=%d openLoop=%d qos=%u", (unsigned)o->args[0],
               (unsigned)o->args[1], (unsigned long long)o->args[2], (int)(o->args[3] & 0xff), (int)(o->args[4] & 0xff),
               (unsigned)a[3]);
    }
    mlog_line(line);
    return 1;
  }
  /* prepareChainingWithModel:options:chainingReq:qos:error: */
  const MObj *r = (const MObj *)a[2];
  if (a[0] == 0 || a[1] == 0 || !is_metal(r) || r->kind != M_ChainingRequest) {
    mrejected++;
    snprintf(mlast, sizeof mlast, "-[_ANEClient %s]: no model, no options, or not a chaining request", s);
    return 0;
  }
  mchains++;
  snprintf(line, sizeof line, "chain inputs=%llu outputs=%llu lbIn=%lld lbOut=%lld procedure=%lld events=%llu txn=%llu delay=%llu pool=%d qos=%u",
           (unsigned long long)r->args[0], (unsigned long long)r->args[1], (long long)r->args[2], (long long)r->args[3],
           (long long)r->args[4], (unsigned long long)r->args[5], (unsigned long long)r->args[6],
           (unsigned long long)r->args[7], r->ready, (unsigned)a[3]);
  mlog_line(line);
  return 1;
}

u64 objc_msgSend(void *receiver, void *op, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, u64 a6, u64 a7, u64 a8,
                 u64 a9) {
  if (receiver != NULL && !is_metal(receiver) && op != NULL) {
    const char *name = *(char **)op;
    const char *asked = strcmp(name, "respondsToSelector:") == 0 && a0 != 0 ? *(char **)a0 : NULL;
    if (client_sig(name) != NULL || (asked != NULL && client_sig(asked) != NULL)) {
      u64 args[5] = {a0, a1, a2, a3, a4};
      pthread_mutex_lock(&MLOCK);
      char line[256];
      snprintf(line, sizeof line, "-_ANEClient %s", name);
      mlog_line(line);
      if (mpool_top == NULL) munpooled++;
      u64 ret = asked != NULL ? 1 : client_call(name, args);
      pthread_mutex_unlock(&MLOCK);
      return ret;
    }
  }
  if (!is_metal(receiver)) {
    u64 ret = fake_objc_inner_msgSend(receiver, op, a0, a1, a2, a3, a4, a5, a6, a7, a8);
    port_note(receiver, op ? *(char **)op : "", ret);
    return ret;
  }
  const char *s = op ? *(char **)op : "(null)";
  MObj *self = receiver;
  u64 args[10] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9};
  if (strcmp(s, "dispatchThreads:threadsPerThreadgroup:") == 0) {
#if defined(__x86_64__)
    /* Two 24-byte structs go on the stack, after the four integer registers this prototype names. */
    u64 sizes[6] = {a4, a5, a6, a7, a8, a9};
#elif defined(__aarch64__)
    /* Structs over 16 bytes are passed by reference. */
    const u64 *g = (const u64 *)a0, *t = (const u64 *)a1;
    u64 sizes[6] = {g[0], g[1], g[2], t[0], t[1], t[2]};
#else
#error "fake_metal.c: unknown ABI for MTLSize arguments"
#endif
    memcpy(args, sizes, sizeof sizes);
  }
  pthread_mutex_lock(&MLOCK);
  char line[256];
  snprintf(line, sizeof line, "%c%s %s", self->is_class ? '+' : '-', MNAMES[self->kind], s);
  mlog_line(line);
  if (mpool_top == NULL) munpooled++;
  u64 ret = 0;
  if (msig_for(self, s) == NULL || !mhandle(self, s, args, &ret, 0)) {
    pthread_mutex_unlock(&MLOCK);
    fprintf(stderr,
            "*** Terminating app due to uncaught exception 'NSInvalidArgumentException', reason: '%c[%s %s]: "
            "unrecognized selector sent to %s %p'\n",
            self->is_class ? '+' : '-', MNAMES[self->kind], s, self->is_class ? "class" : "instance", receiver);
    fflush(stderr);
    abort();
  }
  pthread_mutex_unlock(&MLOCK);
  return ret;
}

/* The system default device (+1), or NULL when fake_metal_set_device(0). */
void *MTLCreateSystemDefaultDevice(void) {
  pthread_mutex_lock(&MLOCK);
  MObj *d = device_available ? mk(M_Device) : NULL;
  if (d) mlog_line("MTLCreateSystemDefaultDevice");
  pthread_mutex_unlock(&MLOCK);
  return d;
}

/* ---- test controls ---- */

void fake_metal_reset(void) {
  pthread_mutex_lock(&MLOCK);
  mrejected = mmismatches = munpooled = mdispatches = morphans = 0;
  mready = menqueued = mchains = 0;
  mlast[0] = 0;
  mloglen = 0;
  if (mlog) mlog[0] = 0;
  device_available = 1;
  hidden_sel[0] = 0;
  pthread_mutex_unlock(&MLOCK);
}
void fake_metal_hide(const char *sel) { snprintf(hidden_sel, sizeof hidden_sel, "%s", sel ? sel : ""); }
void fake_metal_set_device(int on) { device_available = on; }
void fake_metal_set_kernel(KernelCallback cb) {
  pthread_mutex_lock(&MLOCK);
  kernel_cb = cb;
  pthread_mutex_unlock(&MLOCK);
}
long fake_metal_live(void) { return mlive; }
long fake_metal_stat(const char *what) {
  if (strcmp(what, "rejected") == 0) return mrejected;
  if (strcmp(what, "mismatches") == 0) return mmismatches;
  if (strcmp(what, "unpooled") == 0) return munpooled;
  if (strcmp(what, "dispatches") == 0) return mdispatches;
  if (strcmp(what, "orphans") == 0) return morphans;
  if (strcmp(what, "buffersReady") == 0) return mready;
  if (strcmp(what, "enqueued") == 0) return menqueued;
  if (strcmp(what, "chains") == 0) return mchains;
  return -1;
}
const char *fake_metal_last(void) { return mlast; }
const char *fake_metal_log(void) { return mlog ? mlog : ""; }
