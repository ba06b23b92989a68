/* Layer 3: the event loop. See include/cio/loop.h for the iteration order. */
#include "loop.h"
#include "debug.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
atomic_uint cio__fork_gen;

/* Handles come from the loop's slab (no malloc per call_later); the magic
 * comes first, where a freed slab object keeps it, so that a second release
 * is caught while the loop lives. */
struct cio_handle {
  uint32_t magic;
  int refs;                /* the loop's while scheduled, plus the user's */
  struct cio__timer timer; /* timer.cb is the ready-queue node */
  bool cancelled, scheduled, is_timer;
  bool user_ref;           /* the caller's reference is not yet released */
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
  if (s >= (double)CIO__NEVER / 1e9) return CIO__NEVER; /* ~146 years: never */
  return (int64_t)llround(s * 1e9);
}

double cio_loop_time(const cio_loop *loop) {
  return loop ? (double)cio__loop_now(loop) / 1e9 : 0.0;
}

int64_t cio_loop_time_ns(const cio_loop *loop) { return loop ? cio__loop_now(loop) : 0; }

bool cio_loop_is_virtual(const cio_loop *loop) { return loop && loop->virtual_time; }

const char *cio_loop_backend(const cio_loop *loop) {
  return loop ? cio__poller_name(&loop->poller) : NULL;
}

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

/* ---- live objects ------------------------------------------------------------- */

/* Loops and executors are few and long-lived: a small process-wide list of
 * the live ones lets a second free be refused instead of touching freed
 * memory (a new object at the same address is, of course, live again). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static void **live;
static size_t nlive, live_cap;

int cio__live_add(void *p) {
  pthread_mutex_lock(&live_lock);
  if (nlive == live_cap) {
    size_t cap = live_cap ? live_cap * 2 : 16;
    void **n = realloc(live, cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&live_lock);
      return -ENOMEM;
    }
    live = n;
    live_cap = cap;
  }
  live[nlive++] = p;
  pthread_mutex_unlock(&live_lock);
  return 0;
}

bool cio__live_remove(void *p, bool remove) {
  bool found = false;
  pthread_mutex_lock(&live_lock);
  for (size_t i = 0; i < nlive; i++)
    if (live[i] == p) {
      found = true;
      if (remove) live[i] = live[--nlive];
      break;
    }
  if (remove && nlive == 0) {
    free(live); /* nothing left: leave no allocation behind for leak checkers */
    live = NULL;
    live_cap = 0;
  }
  pthread_mutex_unlock(&live_lock);
  return found;
}

/* ---- fork ----------------------------------------------------------------------- */

/* In the child of fork() only the forking thread exists, and the loop shares
 * its epoll instance and eventfd with the parent: any use would steal the
 * parent's events or change its registrations. The loop this thread was
 * running (fork called from a task or a callback) stops after the code that
 * called fork() returns to it, without polling; every other entry point
 * refuses an inherited loop with CIO_EFORKED. This thread runs no loop and no
 * task any more, so that it can run a new loop (asyncio's rule). */
static void before_fork(void) { pthread_mutex_lock(&live_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&live_lock); }

static void after_fork_child(void) {
  pthread_mutex_unlock(&live_lock);
  atomic_fetch_add_explicit(&cio__fork_gen, 1, memory_order_relaxed);
  cio_loop *loop = cio__running_loop;
  if (loop) {
    loop->batch = NULL; /* the rest of this batch is the parent's business */
    loop->stopping = true;
  }
  cio__running_loop = NULL;
  cio__errslot_use(NULL);
  cio__stack_set_running(NULL, NULL, 0);
}

static int forked_fail(const char *who) {
  return cio__fail(CIO_EFORKED,
                   "%s: this event loop was inherited across fork(); the child cannot use it "
                   "(create and run a new loop in the child)",
                   who);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int cio__loop_check(const cio_loop *loop, const char *who) {
  if (!loop) return cio__fail(-EINVAL, "%s: loop is NULL", who);
  if (cio__loop_forked(loop)) return forked_fail(who);
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
  if (opts && opts->default_stack_size > CIO__STACK_MAX)
    return cio__fail(-EINVAL, "cio_loop_new: default_stack_size %zu is over 1 GiB",
                     opts->default_stack_size);
  cio_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return cio__fail_static(-ENOMEM, "cio_loop_new: out of memory");
  if (cio__debug_loop_init(loop, opts) < 0) { /* debug.c */
    free(loop);
    return cio__fail_static(-ENOMEM, "cio_loop_new: out of memory");
  }
  int rc = cio__poller_init(&loop->poller, opts ? (int)opts->backend : 0);
  if (rc < 0) {
    cio__debug_loop_release(loop); /* debug.c */
    free(loop);
    return cio__fail(rc, "cio_loop_new: creating the poller failed: %s", strerror(-rc));
  }
  if (cio__live_add(loop) < 0) {
    cio__poller_close(&loop->poller);
    free(loop);
    return cio__fail_static(-ENOMEM, "cio_loop_new: out of memory");
  }
  cio__queue_init(&loop->ready);
  cio__queue_init(&loop->inbox);
  pthread_mutex_init(&loop->inbox_lock, NULL);
  loop->tasks.prev = loop->tasks.next = &loop->tasks;
  loop->virtual_time = env_flag("CIO_VIRTUAL_TIME") || (opts && opts->virtual_time);
  loop->no_deadlock_check = opts && opts->no_deadlock_check;
  loop->refs = 1;
  atomic_init(&loop->foreign_refs, 1);
  loop->fork_gen = atomic_load_explicit(&cio__fork_gen, memory_order_relaxed);
  cio__stack_pool_init(&loop->stacks, opts ? opts->default_stack_size : 0);
  *out = loop;
  return 0;
}

static void release_handle(struct cio_handle *h);

/* ---- per-loop data ----------------------------------------------------------------- */

struct cio__loop_data {
  struct cio__loop_data *next;
  const cio_loop_key *key;
  void *value;
};

void *cio_loop_get_data(const cio_loop *loop, const cio_loop_key *key) {
  if (!loop || !key) return NULL;
  for (struct cio__loop_data *d = loop->data; d; d = d->next)
    if (d->key == key) return d->value;
  return NULL;
}

int cio_loop_set_data(cio_loop *loop, const cio_loop_key *key, void *value) {
  if (!loop || !key) return cio__fail(-EINVAL, "cio_loop_set_data: loop or key is NULL");
  struct cio__loop_data **pp = &loop->data;
  while (*pp && (*pp)->key != key) pp = &(*pp)->next;
  if (!value) {
    struct cio__loop_data *d = *pp;
    if (d) {
      *pp = d->next;
      free(d);
    }
    return 0;
  }
  if (loop->closed)
    return cio__fail(CIO_ECLOSED, "cio_loop_set_data(%s): the loop is closed",
                     key->name ? key->name : "?");
  if (*pp) {
    (*pp)->value = value;
    return 0;
  }
  struct cio__loop_data *d = malloc(sizeof *d);
  if (!d) return cio__fail_static(-ENOMEM, "cio_loop_set_data: out of memory");
  d->key = key;
  d->value = value;
  d->next = loop->data;
  loop->data = d;
  return 0;
}

/* Newest first; a destructor may set or remove other keys meanwhile. */
static void destroy_data(cio_loop *loop) {
  while (loop->data) {
    struct cio__loop_data *d = loop->data;
    loop->data = d->next;
    const cio_loop_key *key = d->key;
    void *value = d->value;
    free(d);
    if (key->destroy) key->destroy(loop, value);
  }
}

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
  /* Libraries' per-loop values first, while the loop is still whole: their
   * destructors may remove fd callbacks and cancel timer handles. */
  destroy_data(loop);
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
  cio__timers_discard_all(loop, discard_node);
  cio__debug_loop_close(loop); /* debug.c: stall watch off; debug: uncompleted futures */
  if (loop->abandon_tasks) loop->abandon_tasks(loop);
  if (loop->procs_close) loop->procs_close(loop);
  if (loop->sigs_close) loop->sigs_close(loop);
  if (loop->io_close) loop->io_close(loop);
  /* An inherited loop's executor threads live in the parent only: its
   * records are left alone (a small leak in the child, never a hang). */
  if (loop->default_executor_shutdown && !cio__loop_forked(loop))
    loop->default_executor_shutdown(loop, false);
  cio__stack_pool_destroy(&loop->stacks);
  cio__poller_close(&loop->poller);
  free(loop->heap);
  loop->heap = NULL;
  loop->heap_cap = 0;
  return 0;
}

static void loop_destroy(cio_loop *loop) {
  cio__debug_loop_release(loop); /* debug.c */
  cio__slab_release(&loop->task_slab);
  cio__slab_release(&loop->future_slab);
  cio__slab_release(&loop->handle_slab);
  pthread_mutex_destroy(&loop->inbox_lock);
  free(loop);
}

/* Drop one unit of foreign_refs; the last one frees the memory. Under the
 * inbox lock, so that a thread's wake-up (also under it) never touches a
 * loop that another thread has just freed. */
static int foreign_drop(cio_loop *loop, bool wake) {
  pthread_mutex_lock(&loop->inbox_lock);
  int left = atomic_fetch_sub_explicit(&loop->foreign_refs, 1, memory_order_acq_rel) - 1;
  if (wake && left > 0 && !loop->closed && !cio__loop_forked(loop) &&
      !atomic_exchange_explicit(&loop->inbox_signaled, true, memory_order_seq_cst))
    cio__poller_wake(&loop->poller); /* let it look at its deadlock rule again */
  pthread_mutex_unlock(&loop->inbox_lock);
  if (left == 0) loop_destroy(loop);
  return 0;
}

void cio__loop_unref(cio_loop *loop) {
  if (--loop->refs > 0) return;
  foreign_drop(loop, false);
}

int cio_loop_ref_threadsafe(cio_loop *loop) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_ref_threadsafe: loop is NULL");
  atomic_fetch_add_explicit(&loop->threadsafe_refs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&loop->foreign_refs, 1, memory_order_relaxed);
  return 0;
}

int cio_loop_unref_threadsafe(cio_loop *loop) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_unref_threadsafe: loop is NULL");
  if (atomic_fetch_sub_explicit(&loop->threadsafe_refs, 1, memory_order_acq_rel) <= 0) {
    atomic_fetch_add_explicit(&loop->threadsafe_refs, 1, memory_order_relaxed);
    return cio__fail(CIO_EDOUBLEFREE,
                     "cio_loop_unref_threadsafe: more releases than cio_loop_ref_threadsafe calls");
  }
  return foreign_drop(loop, true);
}

int cio_loop_free(cio_loop *loop) {
  if (!loop) return 0;
  if (!cio__live_remove(loop, false))
    return cio__fail(CIO_EDOUBLEFREE, "cio_loop_free: not a live loop (freed twice?)");
  if (loop->running)
    return cio__fail(CIO_ERUNNING, "cio_loop_free: cannot free a running event loop");
  int rc = cio_loop_close(loop);
  if (rc < 0) return rc;
  if (CIO__UNLIKELY(loop->debug)) cio__debug_loop_freeing(loop); /* debug.c: leaked failed tasks */
  cio__live_remove(loop, true);
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

/* A handle's states: armed (a timer in the heap), queued (its node in the
 * ready queue: a call_soon, or a timer that fired), running, ran, cancelled.
 * The loop holds one reference from scheduling until the handle leaves the
 * heap or the queue (run, discarded at close, or a cancelled timer taken out
 * of the heap); the user holds one (user_ref) until cio_handle_unref. A
 * cancelled handle that is queued stays queued and is skipped when its turn
 * comes (asyncio does the same), so its node is released exactly once. */
static void handle_run(struct cio__cb *cb) {
  struct cio_handle *h = CIO__CONTAINER_OF(cb, struct cio_handle, timer.cb);
  h->scheduled = false;
  h->timer.slot = CIO__TIMER_IDLE;
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
  if (CIO__UNLIKELY(loop->debug) && (rc = cio__debug_check_thread(loop, who)) < 0) /* debug.c */
    return rc;
  if (!fn) return cio__fail(-EINVAL, "%s: callback is NULL", who);
  if (!loop->handle_slab.size)
    cio__slab_init(&loop->handle_slab, sizeof(struct cio_handle), offsetof(struct cio_handle, fn));
  struct cio_handle *h = cio__slab_alloc(&loop->handle_slab);
  if (!h) return cio__fail(-ENOMEM, "%s: out of memory", who);
  cio__timer_init(&h->timer, handle_run);
  h->magic = HANDLE_MAGIC;
  h->refs = out ? 2 : 1;
  h->user_ref = out != NULL;
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
  if (!handle_ok(h) || !h->is_timer) return 0.0;
  return h->timer.when >= CIO__NEVER ? INFINITY : (double)h->timer.when / 1e9;
}

int cio_handle_unref(cio_handle *h) {
  if (!h) return cio__fail(-EINVAL, "cio_handle_unref: handle is NULL");
  if (h->magic != HANDLE_MAGIC || !h->user_ref)
    return cio__fail(CIO_EDOUBLEFREE, "cio_handle_unref: handle released twice");
  h->user_ref = false;
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
  /* One eventfd write per wake-up: the loop clears the flag when it reads.
   * Sequentially consistent, with the loop's side in run_once: either this
   * exchange comes after the loop's clear (and writes the eventfd), or the
   * loop's look at inbox_nonempty after its clear sees this item. */
  atomic_store_explicit(&loop->inbox_nonempty, true, memory_order_seq_cst);
  bool wake = !atomic_exchange_explicit(&loop->inbox_signaled, true, memory_order_seq_cst);
  if (wake) cio__poller_wake(&loop->poller);
  pthread_mutex_unlock(&loop->inbox_lock);
  return 0;
}

int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg) {
  if (!loop) return cio__fail(-EINVAL, "cio_call_soon_threadsafe: loop is NULL");
  if (cio__loop_forked(loop)) return forked_fail("cio_call_soon_threadsafe");
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

size_t cio__loop_unqueue_if(cio_loop *loop, bool (*match)(struct cio__cb *cb, void *arg),
                            void *arg) {
  size_t n = 0;
  for (struct cio__cb **p = &loop->batch; *p;)
    if (match(*p, arg)) {
      *p = (*p)->next;
      n++;
    } else {
      p = &(*p)->next;
    }
  struct cio__cb **p = &loop->ready.head;
  while (*p)
    if (match(*p, arg)) {
      *p = (*p)->next;
      n++;
    } else {
      p = &(*p)->next;
    }
  loop->ready.tailp = p;
  return n;
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
  if (!ctx) return;
  fprintf(stderr, "cio: %s\n", ctx->message ? ctx->message : "unknown problem");
  if (ctx->code)
    fprintf(stderr, "  error: %s (%s)%s%s\n", cio_err_name(ctx->code), cio_strerror(ctx->code),
            ctx->error ? ": " : "", ctx->error ? ctx->error : "");
  if (ctx->created_at) fprintf(stderr, "  task created at: %s\n", ctx->created_at);
}

int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg) {
  if (!loop) return cio__fail(-EINVAL, "cio_loop_set_exception_handler: loop is NULL");
  loop->exc_handler = fn;
  loop->exc_arg = arg;
  return 0;
}

void cio_loop_call_exception_handler(cio_loop *loop, const cio_exception_context *ctx) {
  if (!loop || !ctx) return;
  cio_exception_context tmp; /* debug.c: debug mode adds the task's creation site */
  char buf[1024];
  if (CIO__UNLIKELY(loop->debug)) ctx = cio__debug_annotate(loop, ctx, &tmp, buf, sizeof buf);
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
  cio__wd_busy(loop); /* debug.c: the stall detector's mark, one store */
  bool busy = !cio__queue_empty(&loop->ready) || loop->stopping ||
              atomic_load_explicit(&loop->inbox_nonempty, memory_order_acquire);
  int jobs = atomic_load_explicit(&loop->jobs_in_flight, memory_order_acquire);
  /* Timers at CIO__NEVER (sleep(INFINITY)) never fire: they do not count. */
  int64_t next_timer = cio__timers_next(loop);
  bool timers = next_timer < CIO__NEVER;
  int64_t timeout;
  if (busy) {
    timeout = 0;
  } else if (loop->virtual_time) {
    if (jobs > 0)
      timeout = -1; /* time stands still until the job is done */
    else if (loop->io_watchers)
      timeout = timers ? VIRTUAL_IO_GRACE_NS : -1;
    else
      timeout = timers ? 0 : -1;
  } else if (timers) {
    timeout = next_timer - real_now();
    if (timeout < 0) timeout = 0;
  } else {
    timeout = -1;
  }
  if (timeout < 0 && !loop->io_watchers && jobs == 0 && !loop->no_deadlock_check &&
      !atomic_load_explicit(&loop->ever_threadsafe, memory_order_relaxed) &&
      atomic_load_explicit(&loop->threadsafe_refs, memory_order_acquire) == 0)
    return report_deadlock(loop);
  if (!busy && cio__stack_pool_has_surplus(&loop->stacks)) /* give back unused stack memory */
    timeout = cio__stack_pool_idle(&loop->stacks, cio__loop_now(loop), timeout, loop->virtual_time);

  if (timeout != 0 || (loop->io_watchers && ++loop->busy_passes >= BUSY_POLL_PASSES)) {
    loop->busy_passes = 0;
    loop->polls++;
    bool woken = false;
    cio__wd_idle(loop); /* debug.c: polling is not a stall */
    int n = cio__poller_wait(&loop->poller, timeout, &woken);
    cio__wd_busy(loop);
    (void)n;
    /* The eventfd has been read: a thread that posts from now on writes
     * it again. The clear and the look at the inbox below must not be
     * reordered (a store then a load: release/acquire allows it, and x86
     * does it): a post that saw the flag still set, and so did not write,
     * would stay in the inbox while the loop sleeps (cio__loop_post). */
    if (woken) atomic_store_explicit(&loop->inbox_signaled, false, memory_order_seq_cst);
  }
  if (atomic_load_explicit(&loop->inbox_nonempty, memory_order_seq_cst)) drain_inbox(loop);

  int64_t now;
  if (loop->virtual_time) {
    next_timer = cio__timers_next(loop); /* the callbacks of the poll may have armed one */
    if (cio__queue_empty(&loop->ready) && next_timer > loop->virt_now && next_timer < CIO__NEVER &&
        atomic_load_explicit(&loop->jobs_in_flight, memory_order_acquire) == 0 &&
        !atomic_load_explicit(&loop->inbox_nonempty, memory_order_acquire))
      loop->virt_now = next_timer;
    now = loop->virt_now;
  } else {
    now = cio__timers_armed(loop) ? real_now() : 0;
  }
  if (cio__timers_armed(loop)) cio__timers_expire(loop, now);

  /* Run exactly the callbacks ready now; what they schedule waits. The batch
   * lives in the loop so that a node can be taken out of it (cio__loop_unqueue). */
  loop->batch = loop->ready.head;
  cio__queue_init(&loop->ready);
  struct cio__cb *cb;
  while ((cb = loop->batch)) {
    loop->batch = cb->next;
    if (CIO__UNLIKELY(loop->debug)) /* debug.c: slow callbacks */
      cio__debug_run_cb(loop, cb);
    else
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
  cio__debug_run_enter(loop); /* debug.c: this thread, the stall watchdog */
  rc = 0;
  for (;;) {
    rc = run_once(loop);
    if (rc < 0 || loop->stopping || (until && until(arg))) break;
  }
  cio__debug_run_leave(loop); /* debug.c */
  if (cio__loop_forked(loop)) {
    /* fork() was called from this loop's code: in the child it ends here,
     * without polling (see after_fork_child). */
    rc = forked_fail("cio_loop_run");
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

/* For debug mode's slow-callback report (debug.c): the user's function. */
cio_callback_fn cio__handle_fn(const struct cio__cb *cb, void **arg) {
  if (cb->run == handle_run) {
    const struct cio_handle *h = CIO__CONTAINER_OF(cb, struct cio_handle, timer.cb);
    *arg = h->arg;
    return h->fn;
  }
  if (cb->run == threadsafe_run) {
    const struct threadsafe_call *c = (const struct threadsafe_call *)cb;
    *arg = c->arg;
    return c->fn;
  }
  return NULL;
}

__attribute__((constructor)) static void register_discards(void) {
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  cio__cb_discard_register(handle_run, handle_discard);
  cio__cb_discard_register(threadsafe_run, threadsafe_discard);
}
