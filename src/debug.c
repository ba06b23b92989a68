/* Debug mode, the stall detector, task dumps and trees. See include/cio/debug.h.
 *
 * Debug mode keeps a side table (pointer -> creation site) for the tasks and
 * futures of a loop, filled only while the loop is in debug mode, so that
 * the task and future structs do not grow. The stall detector is one
 * watchdog thread per process reading each running loop's iteration mark
 * (loop->wd_tick) a few times per threshold; the stack of a stuck loop is
 * taken in the loop's own thread by a real-time signal whose handler walks
 * the frame pointers from the interrupted registers. */
#include "debug.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "cio/io.h"
#include "future.h"
#include "task.h"

#define SLOW_DEFAULT_NS 100000000   /* asyncio's slow_callback_duration */
#define STALL_DEFAULT_NS 1000000000 /* the stall detector's threshold */
#define STALL_FRAMES 32
#define DUMP_SLOTS 64

enum { SITE_TASK = 1, SITE_FUTURE = 2 };

struct site {
  const void *key; /* NULL: empty; TOMB: deleted */
  const char *file;
  int line;
  uint32_t parent_id; /* the task running when it was created; 0 = none */
  uint8_t kind;
};
#define TOMB ((const void *)1)

struct cio__debug {
  cio_loop *loop;
  int64_t slow_ns;
  _Atomic int64_t stall_ns;  /* 0 = off */
  _Atomic int tid;           /* the running thread's id; 0 while not running */
  pthread_t thread;          /* valid while registered and running (wd_lock) */

  /* The watchdog's own view (under wd_lock). */
  struct cio__debug *wd_next;
  bool wd_registered, wd_running, wd_reported;
  uint64_t wd_seen;
  int64_t wd_since;
  int64_t inbox_since; /* first look that saw the inbox waiting while the loop slept; 0 = none */
  bool inbox_reported;

  /* Filled by the stall signal handler in the loop's thread. */
  _Atomic int cap_state; /* 0 idle, 1 requested, 2 writing, 3 done */
  int cap_n;
  bool cap_task;
  uintptr_t cap_pcs[STALL_FRAMES];
  char cap_name[64];

  /* Creation sites (debug mode). */
  struct site *tab;
  size_t tab_cap, tab_used; /* used counts tombstones */

  /* Dump on signal. */
  int dump_slot; /* -1: not armed */
  int dump_rfd, dump_wfd;
};

void (*cio__debug_step_run)(struct cio__cb *cb);

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int my_tid(void) {
  static CIO__TLS int tid;
  if (!tid) tid = (int)syscall(SYS_gettid);
  return tid;
}

static double env_seconds(const char *name, double dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  double s = strtod(v, &end);
  return end != v && s >= 0 && !isnan(s) ? s : dflt;
}

static bool env_flag(const char *name, bool dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  return strcmp(v, "0") != 0;
}

/* ---- creation sites ------------------------------------------------------------------ */

static CIO__TLS const char *site_file;
static CIO__TLS int site_line;

static size_t hash_ptr(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

static struct site *site_find(struct cio__debug *d, const void *key) {
  if (!d || !d->tab) return NULL;
  for (size_t i = hash_ptr(key, d->tab_cap);; i = (i + 1) & (d->tab_cap - 1)) {
    if (d->tab[i].key == key) return &d->tab[i];
    if (!d->tab[i].key) return NULL;
  }
}

static int site_grow(struct cio__debug *d) {
  size_t cap = d->tab_cap ? d->tab_cap * 2 : 256;
  size_t live = 0;
  for (size_t i = 0; i < d->tab_cap; i++)
    if (d->tab[i].key && d->tab[i].key != TOMB) live++;
  while (live * 4 >= cap) cap *= 2; /* after tombstones go, stay under 1/4 */
  if (live * 8 < d->tab_cap && d->tab_cap >= 512) cap = d->tab_cap; /* just drop tombstones */
  struct site *tab = calloc(cap, sizeof *tab);
  if (!tab) return -ENOMEM;
  for (size_t i = 0; i < d->tab_cap; i++) {
    const void *k = d->tab[i].key;
    if (!k || k == TOMB) continue;
    size_t j = hash_ptr(k, cap);
    while (tab[j].key) j = (j + 1) & (cap - 1);
    tab[j] = d->tab[i];
  }
  free(d->tab);
  d->tab = tab;
  d->tab_cap = cap;
  d->tab_used = live;
  return 0;
}

static void site_put(struct cio__debug *d, const void *key, uint8_t kind, const char *file,
                     int line, uint32_t parent_id) {
  struct site *s = site_find(d, key);
  if (!s) {
    if ((d->tab_used + 1) * 2 > d->tab_cap && site_grow(d) < 0) return; /* no site: fine */
    size_t i = hash_ptr(key, d->tab_cap);
    while (d->tab[i].key && d->tab[i].key != TOMB) i = (i + 1) & (d->tab_cap - 1);
    if (!d->tab[i].key) d->tab_used++;
    s = &d->tab[i];
  }
  *s = (struct site){.key = key, .file = file, .line = line, .parent_id = parent_id, .kind = kind};
}

static void site_del(struct cio__debug *d, const void *key) {
  struct site *s = site_find(d, key);
  if (s) *s = (struct site){.key = TOMB};
}

/* "file:line" of key's creation, or "" */
static const char *site_where(struct cio__debug *d, const void *key, char *buf, size_t cap) {
  struct site *s = site_find(d, key);
  if (s && s->file)
    snprintf(buf, cap, "%s:%d", s->file, s->line);
  else
    buf[0] = 0;
  return buf;
}

/* " (created at file:line)" or "" */
static void site_text(struct cio__debug *d, const void *key, char *buf, size_t cap) {
  char w[280];
  if (site_where(d, key, w, sizeof w)[0])
    snprintf(buf, cap, " (created at %s)", w);
  else
    buf[0] = 0;
}

/* The function at addr: "name" (dladdr) or "module+0x..." or "0x...". */
static void sym_name(const void *addr, char *buf, size_t cap) {
  Dl_info info;
  if (dladdr(addr, &info) && info.dli_fname) {
    if (info.dli_sname && info.dli_saddr == addr)
      snprintf(buf, cap, "%s", info.dli_sname);
    else if (info.dli_sname)
      snprintf(buf, cap, "%s+%#lx", info.dli_sname,
               (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_saddr));
    else
      snprintf(buf, cap, "%s+%#lx", info.dli_fname,
               (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_fbase));
  } else {
    snprintf(buf, cap, "%p", addr);
  }
}

/* Off debug mode these are a test and a tail call: the site is stored only
 * for a loop in debug mode. */
cio_task *cio_create_task_at(const char *file, int line, cio_task_fn fn, void *arg,
                             const cio_task_options *opts) {
  cio_loop *loop = cio__running_loop;
  if (CIO__UNLIKELY(loop && loop->debug)) {
    site_file = file;
    site_line = line;
    cio_task *t = cio_create_task(fn, arg, opts);
    site_file = NULL;
    return t;
  }
  return cio_create_task(fn, arg, opts);
}

cio_task *cio_loop_create_task_at(cio_loop *loop, const char *file, int line, cio_task_fn fn,
                                  void *arg, const cio_task_options *opts) {
  if (CIO__UNLIKELY(loop && loop->debug && !loop->closed)) {
    if (cio__debug_check_thread(loop, "cio_loop_create_task") < 0) return NULL;
    site_file = file;
    site_line = line;
    cio_task *t = cio_loop_create_task(loop, fn, arg, opts);
    site_file = NULL;
    return t;
  }
  return cio_loop_create_task(loop, fn, arg, opts);
}

void cio__debug_task_created(cio_loop *loop, struct cio_task *t) {
  struct cio_task *creator = cio__running_loop == loop ? loop->current : NULL;
  site_put(loop->dbg, t, SITE_TASK, site_file, site_line, creator ? creator->id : 0);
  site_file = NULL; /* consumed: a task it starts eagerly has its own */
}

void cio__debug_task_freed(cio_loop *loop, struct cio_task *t) { site_del(loop->dbg, t); }

void cio__debug_future_created(cio_loop *loop, struct cio_future *f) {
  struct cio_task *creator = cio__running_loop == loop ? loop->current : NULL;
  struct site *cs = creator ? site_find(loop->dbg, creator) : NULL;
  site_put(loop->dbg, f, SITE_FUTURE, cs ? cs->file : NULL, cs ? cs->line : 0,
           creator ? creator->id : 0);
}

void cio__debug_future_freed(cio_loop *loop, struct cio_future *f) { site_del(loop->dbg, f); }

/* ---- per-loop state and settings ------------------------------------------------------ */

static void wd_unregister(struct cio__debug *d);
static void dump_disarm(struct cio__debug *d);

int cio__debug_loop_init(cio_loop *loop, const cio_loop_options *opts) {
  struct cio__debug *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->loop = loop;
  d->dump_slot = -1;
  d->dump_rfd = d->dump_wfd = -1;
  double slow = opts && opts->slow_callback_duration > 0 ? opts->slow_callback_duration
                                                          : env_seconds("CIO_SLOW_CALLBACK_DURATION", 0.1);
  d->slow_ns = cio__seconds_to_ns(slow);
  bool stall_on = env_flag("CIO_STALL_DETECTOR", true) && !(opts && opts->no_stall_detector);
  double stall = opts && opts->stall_threshold > 0 ? opts->stall_threshold
                                                   : env_seconds("CIO_STALL_THRESHOLD", 1.0);
  atomic_store(&d->stall_ns, stall_on ? cio__seconds_to_ns(stall) : 0);
  loop->dbg = d;
  loop->debug = env_flag("CIO_DEBUG", false) || (opts && opts->debug);
  loop->wd_seq = 0;
  atomic_store(&loop->wd_tick, 1);
  return 0;
}

void cio__debug_loop_release(cio_loop *loop) {
  struct cio__debug *d = loop->dbg;
  if (!d) return;
  wd_unregister(d);
  dump_disarm(d);
  free(d->tab);
  free(d);
  loop->dbg = NULL;
}

int cio_loop_set_debug(cio_loop *loop, bool enabled) {
  if (!loop || !loop->dbg) return cio__fail(-EINVAL, "cio_loop_set_debug: loop is NULL");
  if (!enabled && loop->dbg->tab) { /* stale sites would outlive their objects */
    free(loop->dbg->tab);
    loop->dbg->tab = NULL;
    loop->dbg->tab_cap = loop->dbg->tab_used = 0;
  }
  loop->debug = enabled;
  return 0;
}

bool cio_loop_get_debug(const cio_loop *loop) { return loop && loop->debug; }

int cio_loop_set_slow_callback_duration(cio_loop *loop, double seconds) {
  if (!loop || !loop->dbg)
    return cio__fail(-EINVAL, "cio_loop_set_slow_callback_duration: loop is NULL");
  if (!(seconds >= 0))
    return cio__fail(-EINVAL, "cio_loop_set_slow_callback_duration: %g is not a duration", seconds);
  loop->dbg->slow_ns = cio__seconds_to_ns(seconds);
  return 0;
}

double cio_loop_get_slow_callback_duration(const cio_loop *loop) {
  return loop && loop->dbg ? (double)loop->dbg->slow_ns / 1e9 : 0.0;
}

/* ---- running one callback, timed ------------------------------------------------------- */

static void frame_lines(char *buf, size_t cap, const uintptr_t *pcs, int n) {
  size_t len = strlen(buf);
  for (int i = 0; i < n && len + 1 < cap; i++) {
    char f[256];
    cio__frame_format(pcs[i], f, sizeof f);
    int w = snprintf(buf + len, cap - len, "\n      %s", f);
    if (w < 0) break;
    len += (size_t)w;
    if (len >= cap) break;
  }
}

void cio__debug_run_cb(cio_loop *loop, struct cio__cb *cb) {
  struct cio__debug *d = loop->dbg;
  struct cio_task *t = NULL;
  void *arg = NULL;
  cio_callback_fn fn = NULL;
  if (cb->run == cio__debug_step_run) {
    t = CIO__CONTAINER_OF(cb, struct cio_task, step);
    cio_task_ref(t); /* it may finish and be released in this step */
  } else {
    fn = cio__handle_fn(cb, &arg);
  }
  void (*run)(struct cio__cb *) = cb->run;
  int64_t t0 = now_ns();
  cb->run(cb);
  int64_t dt = now_ns() - t0;
  if (dt >= d->slow_ns && d->slow_ns > 0) {
    char msg[2048], site[300];
    if (t) {
      site_text(d, t, site, sizeof site);
      snprintf(msg, sizeof msg, "Executing task '%s'%s took %.3f seconds; ", cio_task_get_name(t),
               site, (double)dt / 1e9);
      size_t len = strlen(msg);
      if (t->tstate == CIO__T_DONE) {
        snprintf(msg + len, sizeof msg - len, "it finished");
      } else {
        uintptr_t pcs[8];
        int n = cio__task_frames(t, pcs, 8);
        snprintf(msg + len, sizeof msg - len, "it gave control back at:%s",
                 n ? "" : " (no stack walk in this build)");
        frame_lines(msg, sizeof msg, pcs, n);
      }
    } else {
      char f[256];
      void *addr;
      if (fn)
        memcpy(&addr, &fn, sizeof addr);
      else
        memcpy(&addr, &run, sizeof addr);
      sym_name(addr, f, sizeof f);
      snprintf(msg, sizeof msg, "Executing callback %s(%p) took %.3f seconds", f, arg,
               (double)dt / 1e9);
    }
    cio_exception_context ctx = {.message = msg, .task = t, .future = t ? &t->fut : NULL};
    cio_loop_call_exception_handler(loop, &ctx);
  }
  if (t) cio_task_unref(t);
}

/* ---- thread checks ----------------------------------------------------------------------- */

int cio__debug_check_thread(cio_loop *loop, const char *who) {
  struct cio__debug *d = loop->dbg;
  int tid = d ? atomic_load_explicit(&d->tid, memory_order_acquire) : 0;
  int me = my_tid();
  if (!tid || tid == me) return 0;
  char msg[256];
  snprintf(msg, sizeof msg,
           "Non-thread-safe operation %s invoked on an event loop other than the current one "
           "(the loop runs in thread %d, the call came from thread %d; use "
           "cio_call_soon_threadsafe)",
           who, tid, me);
  cio_exception_context ctx = {.message = msg, .code = CIO_ERUNTIME};
  cio_loop_call_exception_handler(loop, &ctx);
  return cio__fail(CIO_ERUNTIME, "%s", msg);
}

/* ---- annotations and reports at close ---------------------------------------------------- */

const cio_exception_context *cio__debug_annotate(cio_loop *loop, const cio_exception_context *ctx,
                                                 cio_exception_context *tmp, char *buf,
                                                 size_t cap) {
  if (!ctx->task || ctx->created_at) return ctx;
  if (!site_where(loop->dbg, ctx->task, buf, cap)[0]) return ctx;
  *tmp = *ctx;
  tmp->created_at = buf;
  return tmp;
}

static const char *task_name_by_id(cio_loop *loop, uint32_t id, char *buf, size_t cap) {
  for (struct cio__tasklink *l = loop->tasks.next; l != &loop->tasks; l = l->next) {
    struct cio_task *t = CIO__CONTAINER_OF(l, struct cio_task, link);
    if (t->id == id) return cio_task_get_name(t);
  }
  snprintf(buf, cap, "Task-%u", id);
  return buf;
}

void cio__debug_loop_close(cio_loop *loop) {
  struct cio__debug *d = loop->dbg;
  if (!d) return;
  wd_unregister(d);
  dump_disarm(d);
  if (!loop->debug || !d->tab) return;
  for (size_t i = 0; i < d->tab_cap; i++) {
    struct site *s = &d->tab[i];
    if (s->kind != SITE_FUTURE || !s->key || s->key == TOMB) continue;
    struct cio_future *f = (struct cio_future *)s->key;
    if (f->magic != CIO__FUT_MAGIC || f->state != CIO__PENDING) continue;
    char msg[700], nb[32], where[300] = "";
    if (s->file) snprintf(where, sizeof where, ", created at %s:%d", s->file, s->line);
    if (s->parent_id)
      snprintf(msg, sizeof msg,
               "Future %p was never completed: the loop closes with it pending (created by task "
               "'%s'%s)",
               (void *)f, task_name_by_id(loop, s->parent_id, nb, sizeof nb), where);
    else
      snprintf(msg, sizeof msg,
               "Future %p was never completed: the loop closes with it pending (created outside "
               "any task)",
               (void *)f);
    cio_exception_context ctx = {.message = msg, .future = f};
    cio_loop_call_exception_handler(loop, &ctx);
  }
}

void cio__debug_loop_freeing(cio_loop *loop) {
  struct cio__debug *d = loop->dbg;
  if (!d || !d->tab) return;
  for (size_t i = 0; i < d->tab_cap; i++) {
    struct site *s = &d->tab[i];
    if (s->kind != SITE_TASK || !s->key || s->key == TOMB) continue;
    struct cio_task *t = (struct cio_task *)s->key;
    if (t->fut.magic != CIO__FUT_MAGIC || t->fut.state != CIO__ERROR ||
        (t->fut.flags & CIO__F_RETRIEVED))
      continue;
    t->fut.flags |= CIO__F_RETRIEVED; /* reported once */
    char msg[700], where[300];
    site_where(d, t, where, sizeof where);
    snprintf(msg, sizeof msg,
             "Task exception was never retrieved (task '%s'%s%s): the loop is freed and the "
             "task's handle was never released (cio_task_unref) nor detached",
             cio_task_get_name(t), where[0] ? ", created at " : "", where);
    cio_exception_context ctx = {.message = msg, .code = t->fut.code, .error = t->fut.msg,
                                 .task = t, .future = &t->fut};
    cio_loop_call_exception_handler(loop, &ctx);
  }
}

/* ---- frame-pointer stacks ------------------------------------------------------------------ */

/* The stack being walked: read in place, or a copy of the words [base, hi)
 * taken from another thread with process_vm_readv (a stack that changed or
 * went away meanwhile gives a short copy, never a fault: the watchdog runs
 * with every signal blocked, and a fault there would kill the process). */
struct stackview {
  uintptr_t lo, hi;
  const uintptr_t *copy; /* NULL: in place */
  uintptr_t base;
};

__attribute__((no_sanitize("address", "thread"))) static uintptr_t
word(const struct stackview *v, uintptr_t a) {
  return v->copy ? v->copy[(a - v->base) / sizeof(uintptr_t)] : *(const uintptr_t *)a;
}

__attribute__((no_sanitize("address", "thread"))) static int
fp_walk(const struct stackview *v, uintptr_t fp, uintptr_t pc, uintptr_t *pcs, int max) {
  int n = 0;
  while (n < max && pc) {
    pcs[n++] = pc;
    /* Written so that no sum can wrap (fp comes from memory: any value). */
    if (fp < v->lo || fp >= v->hi || v->hi - fp < 2 * sizeof(uintptr_t) || fp % sizeof(uintptr_t))
      break;
    uintptr_t up = word(v, fp);
    pc = word(v, fp + sizeof(uintptr_t));
    if (up <= fp) break; /* frames grow upwards: anything else ends the chain */
    fp = up;
  }
  return n;
}

int cio__fp_walk(uintptr_t fp, uintptr_t pc, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, int max) {
  struct stackview v = {lo, hi, NULL, 0};
  return fp_walk(&v, fp, pc, pcs, max);
}

int cio__task_frames(const struct cio_task *t, uintptr_t *pcs, int max) {
#if !defined(CIO_SWITCH_UCONTEXT) && !defined(CIO_ASAN) && !defined(CIO_TSAN) && \
    (defined(__x86_64__) || defined(__aarch64__))
  if (t->tstate != CIO__T_SUSPENDED || !t->u.run.stack) return 0;
  const uintptr_t *saved = t->u.run.ctx.sp;
  uintptr_t lo = (uintptr_t)t->u.run.stack->lo, hi = lo + t->u.run.stack->size;
#if defined(__x86_64__)
  uintptr_t fp = saved[6], pc = saved[7]; /* rbp, return address (switch_x86_64.S) */
#else
  uintptr_t fp = saved[10], pc = saved[11]; /* x29, x30 (switch_aarch64.S) */
#endif
  return cio__fp_walk(fp, pc, lo, hi, pcs, max);
#else
  (void)t;
  (void)pcs;
  (void)max;
  return 0;
#endif
}

void cio__frame_format(uintptr_t pc, char *buf, size_t cap) {
  Dl_info info;
  if (dladdr((void *)(pc - 1), &info) && info.dli_fname) {
    if (info.dli_sname)
      snprintf(buf, cap, "%#lx %s+%#lx", (unsigned long)pc, info.dli_sname,
               (unsigned long)(pc - (uintptr_t)info.dli_saddr));
    else
      snprintf(buf, cap, "%#lx (%s+%#lx)", (unsigned long)pc, info.dli_fname,
               (unsigned long)(pc - (uintptr_t)info.dli_fbase));
  } else {
    snprintf(buf, cap, "%#lx", (unsigned long)pc);
  }
}

/* ---- the stall detector -------------------------------------------------------------------- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static struct cio__debug *wd_loops;
static bool wd_started, wd_atfork;
static int64_t wd_last; /* the watchdog's previous look */
static _Atomic int stall_handler_state; /* 0 not tried, 1 ours, -1 someone else's */

static int stall_signal(void) { return SIGRTMAX - 3; }

static void put_u32(char *buf, size_t cap, uint32_t v) { /* async-signal-safe "Task-%u" */
  char tmp[16];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) && n < 15);
  size_t len = strlen(buf);
  while (n && len + 1 < cap) buf[len++] = tmp[--n];
  buf[len] = 0;
}

/* Frames above a point where the frame-pointer chain is lost (a libc function
 * built without frame pointers): scan up from sp for the first frame record
 * (a saved frame pointer pointing further up, next to a return address) and
 * walk on from there. With `named` (not in a signal handler) the words that
 * dladdr resolves to code between sp and that record are taken as return
 * addresses too (they usually are: the libc calls in between). */
__attribute__((no_sanitize("address", "thread"))) static int
scan_frames(const struct stackview *sv, uintptr_t sp, uintptr_t *pcs, int max, bool named) {
  uintptr_t lo = sv->lo, hi = sv->hi;
  if (sp < lo || sp >= hi || max <= 0) return 0;
  uintptr_t end = sp + 16384 < hi ? sp + 16384 : hi;
  int n = 0;
  for (uintptr_t a = (sp + 7) & ~(uintptr_t)7; a + 16 <= end; a += 8) {
    uintptr_t v = word(sv, a), ret = word(sv, a + 8);
    bool code = ret >= 4096 && !(ret >= lo && ret < hi);
    if (named && code) {
      Dl_info info;
      code = dladdr((void *)(ret - 1), &info) && info.dli_fname;
    }
    if (v > a && v < hi && hi - v >= 16 && v % 8 == 0 && code) {
      uintptr_t next = word(sv, v);
      if (next == 0 || (next > v && next < hi && hi - next >= 16))
        return n + fp_walk(sv, v, ret, pcs + n, max - n);
    }
    if (named && n < 6 && v >= 4096 && !(v >= lo && v < hi)) {
      Dl_info info;
      if (dladdr((void *)(v - 1), &info) && info.dli_fname) pcs[n++] = v;
    }
  }
  return n;
}

static void stall_handler(int sig, siginfo_t *si, void *ucv) {
  (void)sig;
  (void)si;
  int saved_errno = errno;
  cio_loop *loop = cio__running_loop;
  struct cio__debug *d = loop ? loop->dbg : NULL;
  int expect = 1;
  if (!d || !atomic_compare_exchange_strong(&d->cap_state, &expect, 2)) {
    errno = saved_errno;
    return;
  }
  uintptr_t fp = 0, pc = 0, sp = 0;
#if defined(__x86_64__)
  const ucontext_t *uc = ucv;
  fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
  pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  const ucontext_t *uc = ucv;
  fp = (uintptr_t)uc->uc_mcontext.regs[29];
  pc = (uintptr_t)uc->uc_mcontext.pc;
  sp = (uintptr_t)uc->uc_mcontext.sp;
#else
  (void)ucv;
#endif
  uintptr_t lo, hi;
  const struct cio__stack *st = cio__stack_running.stack;
  d->cap_name[0] = 0;
  if (st) {
    lo = (uintptr_t)st->lo;
    hi = lo + st->size;
    char *const *name = cio__stack_running.name;
    if (name && *name) {
      size_t i = 0;
      for (; (*name)[i] && i + 1 < sizeof d->cap_name; i++) d->cap_name[i] = (*name)[i];
      d->cap_name[i] = 0;
    } else {
      memcpy(d->cap_name, "Task-", 6);
      put_u32(d->cap_name, sizeof d->cap_name, (uint32_t)cio__stack_running.id);
    }
    d->cap_task = true;
  } else {
    lo = (uintptr_t)loop->thread_stack_lo;
    hi = lo + loop->thread_stack_size;
    d->cap_task = false;
  }
  /* The interrupted function itself may not have set up its frame yet:
   * its pc comes first either way. */
  struct stackview v = {lo, hi, NULL, 0};
  d->cap_n = pc ? fp_walk(&v, fp, pc, d->cap_pcs, STALL_FRAMES) : 0;
  if (d->cap_n == 1) d->cap_n += scan_frames(&v, sp, d->cap_pcs + 1, STALL_FRAMES - 1, false);
  atomic_store_explicit(&d->cap_state, 3, memory_order_release);
  errno = saved_errno;
}

static bool stall_handler_installed(void) {
  int st = atomic_load(&stall_handler_state);
  if (st) return st > 0;
  struct sigaction old;
  int sig = stall_signal();
  if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = stall_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    sigdelset(&sa.sa_mask, SIGSEGV); /* a fault here must reach its handler */
    sigdelset(&sa.sa_mask, SIGBUS);
    if (sigaction(sig, &sa, NULL) == 0) {
      atomic_store(&stall_handler_state, 1);
      return true;
    }
  }
  atomic_store(&stall_handler_state, -1);
  return false;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Called by the watchdog with wd_lock held: the loop of d has been stuck
 * for `stuck` ns. */
/* A thread blocked in a system call: its user sp and pc from /proc (no
 * signal, which would cut the call short with EINTR). False while it runs
 * user code. */
static bool blocked_in_syscall(int tid, uintptr_t *sp, uintptr_t *pc) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  long nr;
  unsigned long a[6], usp, upc;
  if (sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4],
             &a[5], &usp, &upc) != 9)
    return false; /* "running" */
  *sp = usp;
  *pc = upc;
  return true;
}

/* Copy n bytes of this process's memory at src without the risk of a fault:
 * the loop thread may free or unmap what the watchdog is reading. Returns
 * the bytes copied (short at an unmapped page; 0 when the kernel refuses). */
static size_t peek(void *dst, const void *src, size_t n) {
  struct iovec local = {dst, n}, remote = {(void *)src, n};
  ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  return r > 0 ? (size_t)r : 0;
}

/* The blocked loop thread's task and stack, read from the watchdog while
 * that thread sits in a system call (or has just left it: everything is
 * read with peek). */
/* The loop thread's stack bounds are plain fields it sets when a run
 * starts: read racily here, on purpose (hence no TSan). */
__attribute__((no_sanitize("address", "thread"))) static bool
take_blocked(struct cio__debug *d, uintptr_t sp, uintptr_t pc) {
  cio_loop *loop = d->loop;
  struct cio_task *tp = __atomic_load_n((struct cio_task **)&loop->current, __ATOMIC_ACQUIRE);
  struct cio_task t;
  struct cio__stack st;
  uintptr_t lo, hi;
  d->cap_name[0] = 0;
  if (tp && peek(&t, tp, sizeof t) == sizeof t && t.tstate == CIO__T_RUNNING && t.u.run.stack &&
      peek(&st, t.u.run.stack, sizeof st) == sizeof st) {
    lo = (uintptr_t)st.lo;
    hi = lo + st.size;
    struct cio__task_cold cold;
    size_t got = 0;
    if (t.cold && peek(&cold, t.cold, sizeof cold) == sizeof cold && cold.name)
      got = peek(d->cap_name, cold.name, sizeof d->cap_name - 1);
    d->cap_name[got] = 0;
    if (!d->cap_name[0]) {
      memcpy(d->cap_name, "Task-", 6);
      put_u32(d->cap_name, sizeof d->cap_name, t.id);
    }
    d->cap_task = true;
  } else {
    lo = (uintptr_t)loop->thread_stack_lo;
    hi = lo + loop->thread_stack_size;
    d->cap_task = false;
  }
  /* The 16 KiB above sp, copied (the watchdog holds wd_lock: one copy). */
  static uintptr_t window[16384 / sizeof(uintptr_t)];
  uintptr_t base = sp & ~(uintptr_t)7;
  size_t want = base >= lo && base < hi ? (hi - base < sizeof window ? hi - base : sizeof window) : 0;
  size_t got = want ? peek(window, (const void *)base, want) & ~(sizeof(uintptr_t) - 1) : 0;
  struct stackview v = {base, base + got, window, base};
  d->cap_pcs[0] = pc;
  d->cap_n = 1 + (got ? scan_frames(&v, base, d->cap_pcs + 1, STALL_FRAMES - 1, true) : 0);
  return true;
}

static void stall_report(struct cio__debug *d, int64_t stuck) {
  bool got = false;
  uintptr_t sp, pc;
  int tid = atomic_load(&d->tid);
  if (tid && blocked_in_syscall(tid, &sp, &pc)) {
    got = take_blocked(d, sp, pc);
  } else if (stall_handler_installed()) {
    atomic_store(&d->cap_state, 1);
    if (pthread_kill(d->thread, stall_signal()) == 0) {
      for (int i = 0; i < 400; i++) { /* up to 200 ms */
        if (atomic_load_explicit(&d->cap_state, memory_order_acquire) == 3) {
          got = true;
          break;
        }
        sleep_ns(500000);
      }
    }
    int expect = 1;
    if (!got && !atomic_compare_exchange_strong(&d->cap_state, &expect, 0)) {
      while (atomic_load_explicit(&d->cap_state, memory_order_acquire) != 3) sleep_ns(100000);
      got = true;
    }
    atomic_store(&d->cap_state, 0);
  }
  char buf[8192];
  size_t len = 0;
  int w;
  if (got && d->cap_task)
    w = snprintf(buf, sizeof buf,
                 "cio: stall: the event loop has not come back to its poll for %.2f s: task "
                 "'%s' holds it; its stack:\n",
                 (double)stuck / 1e9, d->cap_name);
  else if (got)
    w = snprintf(buf, sizeof buf,
                 "cio: stall: the event loop has not come back to its poll for %.2f s: a "
                 "callback (no task) holds it; the stack:\n",
                 (double)stuck / 1e9);
  else
    w = snprintf(buf, sizeof buf,
                 "cio: stall: the event loop has not come back to its poll for %.2f s (its "
                 "stack could not be taken)\n",
                 (double)stuck / 1e9);
  len = w > 0 ? (size_t)w : 0;
  for (int i = 0; got && i < d->cap_n && len + 300 < sizeof buf; i++) {
    char f[256];
    cio__frame_format(d->cap_pcs[i], f, sizeof f);
    w = snprintf(buf + len, sizeof buf - len, "      %s\n", f);
    if (w > 0) len += (size_t)w;
  }
  ssize_t r = write(2, buf, len);
  (void)r;
}

/* The loop of d sleeps in its poll (the same mark as at the previous look)
 * while work from other threads waits in its inbox: a post writes the
 * eventfd unless a wake-up is already on its way, so a poll never sleeps
 * through a waiting inbox for long. If it does for longer than the
 * threshold, a wake-up was lost: say so once, and wake the loop (wd_lock
 * held: the loop is running, its poller alive). */
static void inbox_waits(struct cio__debug *d, int64_t now, int64_t limit) {
  if (!d->inbox_since) { /* (it may have come just now) */
    d->inbox_since = now;
    return;
  }
  if (d->inbox_reported || now - d->inbox_since <= limit) return;
  d->inbox_reported = true;
  char buf[256];
  int w = snprintf(buf, sizeof buf,
                   "cio: stall: the event loop has slept in its poll for %.2f s while work "
                   "from other threads waited in its inbox (a lost wake-up); waking it\n",
                   (double)(now - d->inbox_since) / 1e9);
  if (w > 0) {
    ssize_t r = write(2, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf - 1);
    (void)r;
  }
  cio__poller_wake(&d->loop->poller);
}

static void wd_wait(int64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ns / 1000000000;
  ts.tv_nsec += ns % 1000000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
}

static void *wd_main(void *arg) {
  /* The faults stay deliverable (a blocked SIGSEGV kills without a word). */
  sigset_t faults;
  sigemptyset(&faults);
  sigaddset(&faults, SIGSEGV);
  sigaddset(&faults, SIGBUS);
  pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
  (void)arg;
  pthread_mutex_lock(&wd_lock);
  for (;;) {
    int64_t period = -1;
    for (struct cio__debug *d = wd_loops; d; d = d->wd_next) {
      int64_t s = atomic_load_explicit(&d->stall_ns, memory_order_relaxed);
      if ((d->wd_running || d->wd_reported) && s > 0) {
        int64_t p = s / 4;
        if (p < 2000000) p = 2000000;
        if (p > 250000000) p = 250000000;
        if (period < 0 || p < period) period = p;
      }
    }
    if (period < 0) {
      pthread_cond_wait(&wd_cond, &wd_lock);
      continue;
    }
    wd_wait(period);
    int64_t now = now_ns(), prev = wd_last ? wd_last : now;
    wd_last = now;
    for (struct cio__debug *d = wd_loops; d; d = d->wd_next) {
      int64_t limit = atomic_load_explicit(&d->stall_ns, memory_order_relaxed);
      if ((!d->wd_running || limit <= 0) && !d->wd_reported) continue;
      uint64_t tick = atomic_load_explicit(&d->loop->wd_tick, memory_order_relaxed);
      if (d->wd_running && limit > 0 && (tick & 1) && tick == d->wd_seen &&
          atomic_load_explicit(&d->loop->inbox_nonempty, memory_order_acquire))
        inbox_waits(d, now, limit);
      else
        d->inbox_since = 0, d->inbox_reported = false;
      if (tick != d->wd_seen || (tick & 1) || !d->wd_running || limit <= 0) {
        if (d->wd_reported) {
          char buf[160];
          int w = snprintf(buf, sizeof buf,
                           "cio: stall: the event loop came back after %.2f s\n",
                           (double)(now - d->wd_since) / 1e9);
          if (w > 0) {
            ssize_t r = write(2, buf, (size_t)w);
            (void)r;
          }
        }
        d->wd_seen = tick;
        d->wd_since = prev; /* it moved since the last look: count from then */
        d->wd_reported = false;
        continue;
      }
      if (!d->wd_reported && now - d->wd_since > limit) {
        d->wd_reported = true;
        stall_report(d, now - d->wd_since);
      }
    }
  }
  return NULL;
}

static void wd_prepare(void) { pthread_mutex_lock(&wd_lock); }
static void wd_parent(void) { pthread_mutex_unlock(&wd_lock); }
static void wd_child(void) {
  /* The watchdog thread does not exist in the child: start afresh. */
  pthread_mutex_init(&wd_lock, NULL);
  wd_loops = NULL;
  wd_started = false;
}

static void wd_start(void) { /* wd_lock held */
  if (!wd_atfork) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_atfork(wd_prepare, wd_parent, wd_child);
    wd_atfork = true;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the watchdog takes no signal */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  pthread_t th;
  if (pthread_create(&th, &attr, wd_main, NULL) == 0) wd_started = true;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void wd_unregister(struct cio__debug *d) {
  pthread_mutex_lock(&wd_lock);
  if (d->wd_registered) {
    for (struct cio__debug **p = &wd_loops; *p; p = &(*p)->wd_next)
      if (*p == d) {
        *p = d->wd_next;
        break;
      }
    d->wd_registered = false;
    d->wd_running = false;
  }
  pthread_mutex_unlock(&wd_lock);
}

void cio__debug_run_enter(cio_loop *loop) {
  struct cio__debug *d = loop->dbg;
  atomic_store_explicit(&d->tid, my_tid(), memory_order_release);
  if (atomic_load_explicit(&d->stall_ns, memory_order_relaxed) <= 0) return;
  pthread_mutex_lock(&wd_lock);
  if (!d->wd_registered) {
    d->wd_next = wd_loops;
    wd_loops = d;
    d->wd_registered = true;
  }
  d->thread = pthread_self();
  d->wd_running = true;
  d->wd_seen = atomic_load(&loop->wd_tick);
  d->wd_since = now_ns();
  if (!wd_started) wd_start();
  pthread_cond_signal(&wd_cond);
  pthread_mutex_unlock(&wd_lock);
}

void cio__debug_run_leave(cio_loop *loop) {
  struct cio__debug *d = loop->dbg;
  cio__wd_idle(loop);
  atomic_store_explicit(&d->tid, 0, memory_order_release);
  if (!d->wd_registered) return;
  pthread_mutex_lock(&wd_lock);
  d->wd_running = false;
  pthread_mutex_unlock(&wd_lock);
}

int cio_loop_set_stall_threshold(cio_loop *loop, double seconds) {
  if (!loop || !loop->dbg) return cio__fail(-EINVAL, "cio_loop_set_stall_threshold: loop is NULL");
  if (!(seconds >= 0))
    return cio__fail(-EINVAL, "cio_loop_set_stall_threshold: %g is not a duration", seconds);
  atomic_store(&loop->dbg->stall_ns, cio__seconds_to_ns(seconds));
  if (loop->running && seconds > 0 && cio__running_loop == loop) {
    cio__debug_run_enter(loop); /* register now */
  } else if (loop->running) {
    pthread_mutex_lock(&wd_lock);
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
  }
  return 0;
}

double cio_loop_get_stall_threshold(const cio_loop *loop) {
  return loop && loop->dbg ? (double)atomic_load(&loop->dbg->stall_ns) / 1e9 : 0.0;
}

/* ---- the task tree ---------------------------------------------------------------------------- */

static const char *const state_names[] = {"not started", "running", "suspended", "done"};

static void tree_print(FILE *out, cio_loop *loop, struct cio_task **ts, int *parent, int n, int i,
                       char *prefix, size_t plen, bool last, int depth) {
  struct cio_task *t = ts[i];
  char site[300], what[160] = "";
  site_text(loop->dbg, t, site, sizeof site);
  if (t->tstate == CIO__T_SUSPENDED) {
    struct cio_task *on = cio_future_task(t->waiting_on);
    if (on)
      snprintf(what, sizeof what, ", awaiting task '%s'", cio_task_get_name(on));
    else if (t->waiting_on && (t->waiting_on->flags & CIO__F_LOCAL))
      snprintf(what, sizeof what, ", waiting (sleep, lock, queue, fd...)");
    else if (t->waiting_on)
      snprintf(what, sizeof what, ", awaiting future %p", (void *)t->waiting_on);
    else
      snprintf(what, sizeof what, ", ready to run");
  }
  fprintf(out, "%s%s (T) %s [%s%s]%s\n", prefix, depth ? (last ? "└──" : "├──") : "└──",
          cio_task_get_name(t), state_names[t->tstate], what, site);
  if (depth > 64 || plen + 8 > 512) return;
  strcpy(prefix + plen, last || !depth ? "    " : "│   ");
  size_t np = plen + strlen(prefix + plen);
  int lastc = -1;
  for (int j = 0; j < n; j++)
    if (parent[j] == i) lastc = j;
  for (int j = 0; j < n; j++)
    if (parent[j] == i)
      tree_print(out, loop, ts, parent, n, j, prefix, np, j == lastc, depth + 1);
  prefix[plen] = 0;
}

int cio_loop_print_task_tree(cio_loop *loop, void *stream) {
  FILE *out = stream;
  if (!loop || !out) return cio__fail(-EINVAL, "cio_loop_print_task_tree: NULL argument");
  int n = cio_all_tasks(loop, NULL, 0);
  fprintf(out, "cio: task tree (%d pending task(s))\n", n);
  if (n <= 0) return 0;
  struct cio_task **ts = malloc((size_t)n * sizeof *ts);
  int *parent = malloc((size_t)n * sizeof *parent);
  if (!ts || !parent) {
    free(ts);
    free(parent);
    return cio_loop_print_tasks(loop, out); /* the flat list needs no memory */
  }
  cio_all_tasks(loop, ts, n);
  for (int i = 0; i < n; i++) parent[i] = -1;
  /* Who awaits whom. */
  for (int i = 0; i < n; i++) {
    struct cio_task *on = ts[i]->tstate == CIO__T_SUSPENDED ? cio_future_task(ts[i]->waiting_on) : NULL;
    for (int j = 0; on && j < n; j++)
      if (ts[j] == on && parent[j] < 0) parent[j] = i;
  }
  /* Then who created whom (debug mode). */
  for (int j = 0; j < n; j++) {
    struct site *s = parent[j] < 0 ? site_find(loop->dbg, ts[j]) : NULL;
    for (int i = 0; s && s->parent_id && i < n; i++)
      if (i != j && ts[i]->id == s->parent_id) parent[j] = i;
  }
  /* A cycle (tasks awaiting each other: a deadlock) is cut where found. */
  for (int j = 0; j < n; j++) {
    int p = parent[j];
    for (int k = 0; p >= 0 && k <= n; k++) {
      if (p == j) {
        parent[j] = -1;
        break;
      }
      p = parent[p];
    }
  }
  char prefix[520] = "";
  for (int i = 0; i < n; i++)
    if (parent[i] < 0) tree_print(out, loop, ts, parent, n, i, prefix, 0, true, 0);
  free(ts);
  free(parent);
  return n;
}

/* ---- dump on signal ---------------------------------------------------------------------------- */

static _Atomic int dump_sig[DUMP_SLOTS];
static _Atomic int dump_fd[DUMP_SLOTS];
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;

static void dump_handler(int sig) {
  int saved_errno = errno;
  for (int i = 0; i < DUMP_SLOTS; i++)
    if (atomic_load_explicit(&dump_sig[i], memory_order_acquire) == sig) {
      int fd = atomic_load_explicit(&dump_fd[i], memory_order_relaxed);
      char c = 1;
      if (fd >= 0) {
        ssize_t r = write(fd, &c, 1);
        (void)r;
      }
    }
  errno = saved_errno;
}

static void dump_ready(void *arg) {
  cio_loop *loop = arg;
  struct cio__debug *d = loop->dbg;
  char buf[64];
  while (read(d->dump_rfd, buf, sizeof buf) > 0) {
  }
  fprintf(stderr, "cio: task dump (signal)\n");
  cio_loop_print_tasks(loop, stderr);
  cio_loop_print_task_tree(loop, stderr);
  fflush(stderr);
}

static void dump_disarm(struct cio__debug *d) {
  if (d->dump_slot < 0) return;
  pthread_mutex_lock(&dump_lock);
  atomic_store(&dump_sig[d->dump_slot], 0);
  atomic_store(&dump_fd[d->dump_slot], -1);
  pthread_mutex_unlock(&dump_lock);
  d->dump_slot = -1;
  if (!d->loop->closed) (void)cio_remove_reader(d->loop, d->dump_rfd);
  close(d->dump_rfd);
  close(d->dump_wfd);
  d->dump_rfd = d->dump_wfd = -1;
}

int cio_loop_dump_on_signal(cio_loop *loop, int sig) {
  int rc = cio__loop_check(loop, "cio_loop_dump_on_signal");
  if (rc < 0) return rc;
  struct cio__debug *d = loop->dbg;
  if (sig == 0) {
    dump_disarm(d);
    return 0;
  }
  if (sig < 1 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
      sig == SIGBUS || sig == stall_signal())
    return cio__fail(-EINVAL, "cio_loop_dump_on_signal: signal %d cannot be used", sig);
  if (d->dump_slot < 0) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
      return cio__fail(-errno, "cio_loop_dump_on_signal: pipe2: %s", strerror(errno));
    rc = cio_add_reader(loop, fds[0], dump_ready, loop);
    if (rc < 0) {
      close(fds[0]);
      close(fds[1]);
      return rc;
    }
    pthread_mutex_lock(&dump_lock);
    int slot = -1;
    for (int i = 0; i < DUMP_SLOTS && slot < 0; i++)
      if (atomic_load(&dump_sig[i]) == 0) slot = i;
    if (slot >= 0) {
      atomic_store(&dump_fd[slot], fds[1]);
      atomic_store(&dump_sig[slot], -1); /* taken, not armed yet */
    }
    pthread_mutex_unlock(&dump_lock);
    if (slot < 0) {
      (void)cio_remove_reader(loop, fds[0]);
      close(fds[0]);
      close(fds[1]);
      return cio__fail(-ENOSPC, "cio_loop_dump_on_signal: %d loops are armed already", DUMP_SLOTS);
    }
    d->dump_slot = slot;
    d->dump_rfd = fds[0];
    d->dump_wfd = fds[1];
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = dump_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL) < 0) {
    rc = -errno;
    dump_disarm(d);
    return cio__fail(rc, "cio_loop_dump_on_signal: sigaction: %s", strerror(-rc));
  }
  atomic_store_explicit(&dump_sig[d->dump_slot], sig, memory_order_release);
  return 0;
}
