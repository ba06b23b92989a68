/* Layer 3: the event loop. See include/cio/loop.h for the iteration order. */
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOP_MAGIC 0x6c6f6f70u
#define HANDLE_MAGIC 0x68646c65u
#define HANDLE_DEAD 0xdead401eu

/* While callbacks keep the loop busy, fds are polled every this many passes
 * (Tokio's number): I/O is never starved, and a busy loop does not pay an
 * epoll_wait per pass. */
#define BUSY_POLL_PASSES 61
/* With the virtual clock and fds registered, wait this long (real time) for a
 * peer before letting time jump. */
#define VIRTUAL_IO_GRACE_NS 5000000

CIO__TLS cio_loop *cio__running_loop;

void cio__timers_expire(cio_loop *loop, int64_t now);

/* Handles come from the loop's slab (no malloc per call_later); the magic
 * comes first, where a freed slab object keeps it, so that a second release
 * is caught while the loop lives. */
struct cio_handle {
  uint32_t magic;
  int refs;                /* the loop's while scheduled, plus the user's */
  struct cio__timer timer; /* timer.cb is the ready-queue node */
  bool cancelled, scheduled, is_timer;
  cio_loop *loop;
  cio_callback_fn fn;
  void *arg;
};

/* ---- clock ------------------------------------------------------------------- */

static int64_t real_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cio__loop_now(const cio_loop *loop) {
  return loop->virtual_time ? loop->virt_now : real_now();
}

int64_t cio__seconds_to_ns(double s) {
  if (!(s > 0)) return 0;
  if (s > 9.2e9) return INT64_MAX / 2; /* ~292 years: as good as never */
  return (int64_t)llround(s * 1e9);
}

double cio_loop_time(const cio_loop *loop) {
  return loop ? (double)cio__loop_now(loop) / 1e9 : 0.0;
}

int64_t cio_loop_time_ns(const cio_loop *loop) { return loop ? cio__loop_now(loop) : 0; }

bool cio_loop_is_virtual(const cio_loop *loop) { return loop && loop->virtual_time; }

/* ---- discarding queued nodes at close ------------------------------------------ */

/* Nodes that own memory (handles, done-callback records) say how to drop them
 * when a loop closes with them still queued; registered once per kind. */
static struct {
  void (*run)(struct cio__cb *);
  void (*discard)(struct cio__cb *);
} discards[16];
static int ndiscards;

void cio__cb_discard_register(void (*run)(struct cio__cb *), void (*discard)(struct cio__cb *)) {
  for (int i = 0; i < ndiscards; i++)
    if (discards[i].run == run) return;
  if (ndiscards < (int)(sizeof discards / sizeof discards[0])) {
    discards[ndiscards].run = run;
    discards[ndiscards].discard = discard;
    ndiscards++;
  }
}

static void discard_node(struct cio__cb *cb) {
  for (int i = 0; i < ndiscards; i++)
    if (discards[i].run == cb->run) {
      discards[i].discard(cb);
      return;
    }
}

/* ---- lifecycle ----------------------------------------------------------------- */

int cio__loop_check(const cio_loop *loop, const char *who) {
  if (!loop) return cio__fail(-EINVAL, "%s: loop is NULL", who);
  if (loop->closed) return cio__fail(CIO_ECLOSED, "%s: the event loop is closed", who);
  return 0;
}

static bool env_flag(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0;
}

int cio_loop_new(cio_loop **out, const cio_loop_options *opts) {
  if (!out) return cio__fail(-EINVAL, "cio_loop_new: out is NULL");
  *out = NULL;
  cio_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return cio__fail_static(-ENOMEM, "cio_loop_new: out of memory");
  int rc = cio__poller_init(&loop->poller);
  if (rc < 0) {
    free(loop);
    return cio__fail(rc, "cio_loop_new: creating the poller failed: %s", strerror(-rc));
  }
  cio__queue_init(&loop->ready);
  cio__queue_init(&loop->inbox);
  pthread_mutex_init(&loop->inbox_lock, NULL);
  loop->tasks.prev = loop->tasks.next = &loop->tasks;
  loop->virtual_time = env_flag("CIO_VIRTUAL_TIME") || (opts && opts->virtual_time);
  loop->no_deadlock_check = opts && opts->no_deadlock_check;
  loop->refs = 1;
  cio__stack_pool_init(&loop->stacks, opts ? opts->default_stack_size : 0);
  *out = loop;
  return 0;
}

static void release_handle(struct cio_handle *h);

static void drop_queue(struct cio__queue *q) {
  struct cio__cb *cb = q->head;
  cio__queue_init(q);
  while (cb) {
    struct cio__cb *next = cb->next;
    discard_node(cb);
    cb = next;
  }
}

int cio_loop_close(cio_loop *loop) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_close: loop is NULL");
  if (loop->running)
    return cio__fail(CIO_ERUNNING, "cio_loop_close: cannot close a running event loop");
  if (loop->closed) return 0;
  /* `closed` is read by other threads in cio_call_soon_threadsafe, under the
   * inbox lock: write it under the lock too. */
  pthread_mutex_lock(&loop->inbox_lock);
  loop->closed = true;
  drop_queue(&loop->inbox);
  atomic_store(&loop->inbox_nonempty, false);
  pthread_mutex_unlock(&loop->inbox_lock);
  /* Drop what is queued before the task layer frees tasks whose nodes may
   * still be linked here. */
  drop_queue(&loop->ready);
  struct cio__queue rest = {.head = loop->batch};
  loop->batch = NULL;
  drop_queue(&rest);
  struct cio__heap_ent *heap = loop->heap;
  uint32_t n = loop->nheap;
  loop->nheap = 0;
  for (uint32_t i = 0; i < n; i++) {
    heap[i].t->slot = CIO__TIMER_IDLE;
    discard_node(&heap[i].t->cb);
  }
  if (loop->abandon_tasks) loop->abandon_tasks(loop);
  if (loop->io_close) loop->io_close(loop);
  if (loop->default_executor_shutdown) loop->default_executor_shutdown(loop, false);
  cio__stack_pool_destroy(&loop->stacks);
  cio__poller_close(&loop->poller);
  free(loop->heap);
  loop->heap = NULL;
  loop->heap_cap = 0;
  return 0;
}

void cio__loop_unref(cio_loop *loop) {
  if (--loop->refs > 0) return;
  cio__slab_release(&loop->task_slab);
  cio__slab_release(&loop->future_slab);
  cio__slab_release(&loop->handle_slab);
  pthread_mutex_destroy(&loop->inbox_lock);
  free(loop);
}

int cio_loop_free(cio_loop *loop) {
  if (!loop) return 0;
  if (loop->running)
    return cio__fail(CIO_ERUNNING, "cio_loop_free: cannot free a running event loop");
  if (loop->freed) return cio__fail(CIO_EDOUBLEFREE, "cio_loop_free: loop freed twice");
  int rc = cio_loop_close(loop);
  if (rc < 0) return rc;
  loop->freed = true;
  cio__loop_unref(loop);
  return 0;
}

bool cio_loop_is_running(const cio_loop *loop) { return loop && loop->running; }
bool cio_loop_is_closed(const cio_loop *loop) { return loop && loop->closed; }
cio_loop *cio_get_running_loop(void) { return cio__running_loop; }

int cio_loop_stop(cio_loop *loop) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_stop: loop is NULL");
  loop->stopping = true;
  return 0;
}

/* ---- callbacks and handles ------------------------------------------------------ */

static void handle_run(struct cio__cb *cb) {
  struct cio_handle *h = CIO__CONTAINER_OF(cb, struct cio_handle, timer.cb);
  h->scheduled = false;
  if (!h->cancelled) h->fn(h->arg);
  release_handle(h);
}

static void handle_discard(struct cio__cb *cb) {
  struct cio_handle *h = CIO__CONTAINER_OF(cb, struct cio_handle, timer.cb);
  h->scheduled = false;
  release_handle(h);
}

static void release_handle(struct cio_handle *h) {
  if (--h->refs > 0) return;
  h->magic = HANDLE_DEAD;
  cio_loop *loop = h->loop;
  cio__slab_free(&loop->handle_slab, h);
  cio__loop_unref(loop);
}

static int schedule(cio_loop *loop, const char *who, bool timer, int64_t when, cio_callback_fn fn,
                    void *arg, cio_handle **out) {
  if (out) *out = NULL;
  int rc = cio__loop_check(loop, who);
  if (rc < 0) return rc;
  if (!fn) return cio__fail(-EINVAL, "%s: callback is NULL", who);
  if (!loop->handle_slab.size)
    cio__slab_init(&loop->handle_slab, sizeof(struct cio_handle), offsetof(struct cio_handle, fn));
  struct cio_handle *h = cio__slab_alloc(&loop->handle_slab);
  if (!h) return cio__fail(-ENOMEM, "%s: out of memory", who);
  cio__timer_init(&h->timer, handle_run);
  h->magic = HANDLE_MAGIC;
  h->refs = out ? 2 : 1;
  h->cancelled = false;
  h->scheduled = true;
  h->is_timer = timer;
  h->loop = loop;
  h->fn = fn;
  h->arg = arg;
  if (timer) {
    rc = cio__timer_arm(loop, &h->timer, when);
    if (rc < 0) {
      cio__slab_free(&loop->handle_slab, h);
      return rc;
    }
  } else {
    h->timer.when = 0;
    cio__loop_push(loop, &h->timer.cb);
  }
  cio__loop_ref(loop);
  if (out) *out = h;
  return 0;
}

int cio_call_soon(cio_loop *loop, cio_callback_fn fn, void *arg, cio_handle **handle) {
  return schedule(loop, "cio_call_soon", false, 0, fn, arg, handle);
}

int cio_call_later(cio_loop *loop, double delay, cio_callback_fn fn, void *arg,
                   cio_handle **handle) {
  if (isnan(delay)) {
    if (handle) *handle = NULL;
    return cio__fail(-EINVAL, "cio_call_later: delay is NaN");
  }
  int64_t now = loop ? cio__loop_now(loop) : 0;
  return schedule(loop, "cio_call_later", true, now + cio__seconds_to_ns(delay), fn, arg, handle);
}

int cio_call_at(cio_loop *loop, double when, cio_callback_fn fn, void *arg, cio_handle **handle) {
  if (isnan(when)) {
    if (handle) *handle = NULL;
    return cio__fail(-EINVAL, "cio_call_at: when is NaN");
  }
  int64_t at = when <= 0 ? 0 : cio__seconds_to_ns(when);
  return schedule(loop, "cio_call_at", true, at, fn, arg, handle);
}

static bool handle_ok(const cio_handle *h) { return h && h->magic == HANDLE_MAGIC; }

int cio_handle_cancel(cio_handle *h) {
  if (!handle_ok(h)) return cio__fail(-EINVAL, "cio_handle_cancel: not a live handle");
  if (h->cancelled || !h->scheduled) return 0;
  h->cancelled = true;
  if (h->is_timer && h->timer.slot < CIO__TIMER_QUEUED) {
    /* Out of the heap now, so that a cancelled timer costs nothing later. A
     * timer that fired already is queued: handle_run skips and releases it. */
    cio__timer_disarm(h->loop, &h->timer);
    h->scheduled = false;
    release_handle(h);
  }
  return 0;
}

bool cio_handle_cancelled(const cio_handle *h) { return handle_ok(h) && h->cancelled; }

double cio_handle_when(const cio_handle *h) {
  return handle_ok(h) && h->is_timer ? (double)h->timer.when / 1e9 : 0.0;
}

int cio_handle_unref(cio_handle *h) {
  if (!h) return cio__fail(-EINVAL, "cio_handle_unref: handle is NULL");
  if (h->magic != HANDLE_MAGIC)
    return cio__fail(CIO_EDOUBLEFREE, "cio_handle_unref: handle released twice");
  release_handle(h);
  return 0;
}

/* Cross-thread calls: a node in the inbox, spliced into the ready queue by the
 * loop thread. */
struct threadsafe_call {
  struct cio__cb cb;
  cio_callback_fn fn;
  void *arg;
};

static void threadsafe_run(struct cio__cb *cb) {
  struct threadsafe_call *c = (struct threadsafe_call *)cb;
  c->fn(c->arg);
  free(c);
}

static void threadsafe_discard(struct cio__cb *cb) { free(cb); }

int cio__loop_post(cio_loop *loop, struct cio__cb *cb) {
  pthread_mutex_lock(&loop->inbox_lock);
  if (loop->closed) {
    pthread_mutex_unlock(&loop->inbox_lock);
    return CIO_ECLOSED;
  }
  cio__queue_push(&loop->inbox, cb);
  atomic_store_explicit(&loop->inbox_nonempty, true, memory_order_release);
  /* One eventfd write per wake-up: the loop clears the flag when it reads. */
  bool wake = !atomic_exchange_explicit(&loop->inbox_signaled, true, memory_order_acq_rel);
  if (wake) cio__poller_wake(&loop->poller);
  pthread_mutex_unlock(&loop->inbox_lock);
  return 0;
}

int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg) {
  if (!loop) return cio__fail(-EINVAL, "cio_call_soon_threadsafe: loop is NULL");
  if (!fn) return cio__fail(-EINVAL, "cio_call_soon_threadsafe: callback is NULL");
  struct threadsafe_call *c = malloc(sizeof *c);
  if (!c) return cio__fail(-ENOMEM, "cio_call_soon_threadsafe: out of memory");
  c->cb.run = threadsafe_run;
  c->fn = fn;
  c->arg = arg;
  atomic_store_explicit(&loop->ever_threadsafe, true, memory_order_relaxed);
  if (cio__loop_post(loop, &c->cb) < 0) {
    free(c);
    return cio__fail(CIO_ECLOSED, "cio_call_soon_threadsafe: the event loop is closed");
  }
  return 0;
}

bool cio__loop_unqueue(cio_loop *loop, struct cio__cb *cb) {
  for (struct cio__cb **p = &loop->batch; *p; p = &(*p)->next)
    if (*p == cb) {
      *p = cb->next;
      return true;
    }
  for (struct cio__cb **p = &loop->ready.head; *p; p = &(*p)->next)
    if (*p == cb) {
      *p = cb->next;
      if (loop->ready.tailp == &cb->next) loop->ready.tailp = p;
      return true;
    }
  return false;
}

static void drain_inbox(cio_loop *loop) {
  pthread_mutex_lock(&loop->inbox_lock);
  if (loop->inbox.head) {
    cio__queue_splice(&loop->ready, loop->inbox.head, loop->inbox.tailp);
    cio__queue_init(&loop->inbox);
  }
  atomic_store_explicit(&loop->inbox_nonempty, false, memory_order_relaxed);
  pthread_mutex_unlock(&loop->inbox_lock);
}

/* ---- exception handler ------------------------------------------------------------ */

void cio_default_exception_handler(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  fprintf(stderr, "cio: %s\n", ctx->message ? ctx->message : "unknown problem");
  if (ctx->code)
    fprintf(stderr, "  error: %s (%s)%s%s\n", cio_err_name(ctx->code), cio_strerror(ctx->code),
            ctx->error ? ": " : "", ctx->error ? ctx->error : "");
}

int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_set_exception_handler: loop is NULL");
  loop->exc_handler = fn;
  loop->exc_arg = arg;
  return 0;
}

void cio_loop_call_exception_handler(cio_loop *loop, const cio_exception_context *ctx) {
  if (!loop || !ctx) return;
  if (loop->exc_handler)
    loop->exc_handler(loop, ctx, loop->exc_arg);
  else
    cio_default_exception_handler(loop, ctx, NULL);
}

/* ---- one iteration ------------------------------------------------------------------ */

static int report_deadlock(cio_loop *loop) {
  char buf[512];
  size_t len = 0;
  int shown = 0;
  for (struct cio__tasklink *l = loop->tasks.next; l != &loop->tasks && shown < 8; l = l->next) {
    const char *name = loop->describe_task ? loop->describe_task(l) : "?";
    int w = snprintf(buf + len, sizeof buf - len, "%s%s", shown ? ", " : "", name);
    if (w < 0 || (size_t)w >= sizeof buf - len) break;
    len += (size_t)w;
    shown++;
  }
  if (loop->ntasks > (size_t)shown && len + 8 < sizeof buf)
    snprintf(buf + len, sizeof buf - len, ", ...");
  char msg[1024];
  if (loop->ntasks)
    snprintf(msg, sizeof msg,
             "deadlock: %zu task(s) wait and nothing can wake them (no ready callback, timer, "
             "fd, executor job or other thread): %s",
             loop->ntasks, buf);
  else
    snprintf(msg, sizeof msg,
             "deadlock: the loop waits and nothing can wake it (no task, ready callback, timer, "
             "fd, executor job or other thread)");
  cio_exception_context ctx = {.message = msg, .code = CIO_EDEADLOCK};
  cio_loop_call_exception_handler(loop, &ctx);
  return cio__fail(CIO_EDEADLOCK, "%s", msg);
}

/* asyncio's _run_once. Returns 0 or CIO_EDEADLOCK. */
static int run_once(cio_loop *loop) {
  bool busy = !cio__queue_empty(&loop->ready) || loop->stopping ||
              atomic_load_explicit(&loop->inbox_nonempty, memory_order_acquire);
  int jobs = atomic_load_explicit(&loop->jobs_in_flight, memory_order_acquire);
  int64_t timeout;
  if (busy) {
    timeout = 0;
  } else if (loop->virtual_time) {
    if (jobs > 0)
      timeout = -1; /* time stands still until the job is done */
    else if (loop->io_watchers)
      timeout = loop->nheap ? VIRTUAL_IO_GRACE_NS : -1;
    else
      timeout = loop->nheap ? 0 : -1;
  } else if (loop->nheap) {
    timeout = loop->heap[0].when - real_now();
    if (timeout < 0) timeout = 0;
  } else {
    timeout = -1;
  }
  if (timeout < 0 && !loop->io_watchers && jobs == 0 && !loop->no_deadlock_check &&
      !atomic_load_explicit(&loop->ever_threadsafe, memory_order_relaxed))
    return report_deadlock(loop);

  if (timeout != 0 || (loop->io_watchers && ++loop->busy_passes >= BUSY_POLL_PASSES)) {
    loop->busy_passes = 0;
    loop->polls++;
    bool woken = false;
    int n = cio__poller_wait(&loop->poller, timeout, &woken);
    (void)n;
    if (woken) atomic_store_explicit(&loop->inbox_signaled, false, memory_order_release);
  }
  if (atomic_load_explicit(&loop->inbox_nonempty, memory_order_acquire)) drain_inbox(loop);

  int64_t now;
  if (loop->virtual_time) {
    if (cio__queue_empty(&loop->ready) && loop->nheap && loop->heap[0].when > loop->virt_now &&
        atomic_load_explicit(&loop->jobs_in_flight, memory_order_acquire) == 0 &&
        !atomic_load_explicit(&loop->inbox_nonempty, memory_order_acquire))
      loop->virt_now = loop->heap[0].when;
    now = loop->virt_now;
  } else {
    now = loop->nheap ? real_now() : 0;
  }
  if (loop->nheap) cio__timers_expire(loop, now);

  /* Run exactly the callbacks ready now; what they schedule waits. The batch
   * lives in the loop so that a node can be taken out of it (cio__loop_unqueue). */
  loop->batch = loop->ready.head;
  cio__queue_init(&loop->ready);
  struct cio__cb *cb;
  while ((cb = loop->batch)) {
    loop->batch = cb->next;
    cb->run(cb);
  }
  return 0;
}

static void get_thread_stack(cio_loop *loop) {
  pthread_attr_t attr;
  void *lo = NULL;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
  }
  loop->thread_stack_lo = lo;
  loop->thread_stack_size = size;
}

int cio__loop_run_until(cio_loop *loop, bool (*until)(void *), void *arg) {
  int rc = cio__loop_check(loop, "cio_loop_run");
  if (rc < 0) return rc;
  if (loop->running || cio__running_loop)
    return cio__fail(CIO_ERUNNING, "cio_loop_run: an event loop is already running in this thread");
  loop->running = true;
  cio__running_loop = loop;
  get_thread_stack(loop);
  cio__stack_overflow_guard_thread();
  rc = 0;
  for (;;) {
    rc = run_once(loop);
    if (rc < 0 || loop->stopping || (until && until(arg))) break;
  }
  loop->stopping = false;
  loop->running = false;
  cio__running_loop = NULL;
  return rc;
}

void cio__thread_reset(void) {
  cio__running_loop = NULL;
  cio__errslot_use(NULL);
  cio__stack_set_running(NULL, NULL, 0);
}

int cio_loop_run_forever(cio_loop *loop) { return cio__loop_run_until(loop, NULL, NULL); }

__attribute__((constructor)) static void register_discards(void) {
  cio__cb_discard_register(handle_run, handle_discard);
  cio__cb_discard_register(threadsafe_run, threadsafe_discard);
}
