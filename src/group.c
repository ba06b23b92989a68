/* Layer 6: structured concurrency — TaskGroup, gather, wait, shield and
 * as_completed. See include/cio/group.h; timeout scopes and wait_for are in
 * timeout.c.
 *
 * Each combinator mirrors its asyncio original (Lib/asyncio/taskgroups.py,
 * tasks.py) hop for hop: asyncio's done callbacks become ready-queue nodes
 * (struct cio__cb) linked into the watched future's waiter list, so they run
 * one loop iteration after the future completes, exactly as a done callback
 * scheduled with call_soon; the future a combinator's caller waits on lives
 * in the caller's frame when it cannot outlive the call. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cio/group.h"
#include "task.h"

#undef cio_shield

/* ---- helpers ------------------------------------------------------------------------- */

static int current_task(const char *who, struct cio_task **out) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  *out = t;
  return 0;
}

/* Entry i of a set of futures given to a combinator running in `loop`. */
static int check_entry(const struct cio_future *f, cio_loop *loop, const struct cio_task *self,
                       const char *who, size_t i) {
  if (!f) return cio__fail(-EINVAL, "%s: entry %zu is NULL", who, i);
  if (!cio__future_ok(f)) return cio__fail(-EINVAL, "%s: entry %zu is not a live future or task", who, i);
  if (f->loop != loop)
    return cio__fail(CIO_EWRONGLOOP, "%s: entry %zu belongs to another event loop", who, i);
  if (self && f == &self->fut)
    return cio__fail(CIO_ESELF, "%s: entry %zu is the calling task itself", who, i);
  return 0;
}

struct ptr_idx {
  const void *p;
  size_t i;
};

static int cmp_ptr_idx(const void *a, const void *b) {
  const struct ptr_idx *x = a, *y = b;
  if (x->p != y->p) return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* The indices of the first occurrence of each distinct future of fs, in
 * argument order, into idx (n slots). Returns how many, or -ENOMEM. */
static long distinct(cio_future *const *fs, size_t n, size_t *idx) {
  if (n <= 16) { /* small sets: quadratic is cheaper than sorting */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      size_t j = 0;
      while (j < i && fs[j] != fs[i]) j++;
      if (j == i) idx[k++] = i;
    }
    return (long)k;
  }
  struct ptr_idx *tmp = malloc(n * sizeof *tmp);
  unsigned char *first = calloc(n, 1);
  if (!tmp || !first) {
    free(tmp);
    free(first);
    return cio__fail_static(-ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) tmp[i] = (struct ptr_idx){fs[i], i};
  qsort(tmp, n, sizeof *tmp, cmp_ptr_idx);
  for (size_t i = 0; i < n; i++)
    if (i == 0 || tmp[i].p != tmp[i - 1].p) first[tmp[i].i] = 1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (first[i]) idx[k++] = i;
  free(tmp);
  free(first);
  return (long)k;
}

static void complete_copy(struct cio_future *f, int state, int code, const char *msg) {
  char *copy = msg ? strdup(msg) : NULL;
  cio__future_complete(f, state, code, NULL, copy, copy != NULL);
}

static const char *describe(struct cio_future *f, char *buf, size_t cap) {
  cio_task *t = cio_future_task(f);
  if (t)
    snprintf(buf, cap, "task '%s'", cio_task_get_name(t));
  else
    snprintf(buf, cap, "future %p", (void *)f);
  return buf;
}

/* ---- type-stable memory for groups and iterators ------------------------------------------ */

/* A freed group or iterator is not given back to malloc: it keeps its dead
 * mark in a free list of its type, and is handed out again only once more
 * than POOL_QUARANTINE others of its type were freed after it. So a second
 * cio_taskgroup_free (or any other call) on a freed object reads memory that
 * is still a group, sees the dead mark, and returns -EINVAL — unless that
 * many objects were freed and one was made again in between, when the stale
 * pointer may alias a new live object (which no pointer check can tell).
 * The pools hold at most the peak number of live objects plus the
 * quarantine; they are never returned to the system. */
#define POOL_QUARANTINE 64

struct pool {
  pthread_mutex_t mu;
  void *head, *tail; /* FIFO: the oldest freed object is reused first */
  size_t nfree;
  size_t link; /* offset of the object's free-list pointer */
  size_t size;
};

static void *pool_get(struct pool *p) {
  void *obj = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->nfree > POOL_QUARANTINE) {
    obj = p->head;
    memcpy(&p->head, (char *)obj + p->link, sizeof(void *));
    if (!p->head) p->tail = NULL;
    p->nfree--;
  }
  pthread_mutex_unlock(&p->mu);
  if (!obj) return calloc(1, p->size);
  memset(obj, 0, p->size);
  return obj;
}

/* The object's dead mark must be set already. */
static void pool_put(struct pool *p, void *obj) {
  void *null = NULL;
  memcpy((char *)obj + p->link, &null, sizeof null);
  pthread_mutex_lock(&p->mu);
  if (p->tail)
    memcpy((char *)p->tail + p->link, &obj, sizeof obj);
  else
    p->head = obj;
  p->tail = obj;
  p->nfree++;
  pthread_mutex_unlock(&p->mu);
}

/* ==== TaskGroup =========================================================================== */

#define TG_MAGIC 0x74677270u
#define TG_DEAD 0xdead7970u

/* One child not yet seen done: the group's done callback on it and the
 * group's reference. Freed (and the reference dropped) when the callback
 * runs: the group forgets finished children, as asyncio does. */
struct child {
  struct cio__cb cb;
  struct child *prev, *next; /* creation order */
  struct cio_taskgroup *tg;
  struct cio_task *task;
};

struct cio_taskgroup {
  uint32_t magic;
  bool entered, exiting, aborting, joining, joined;
  bool parent_cancel_requested, cancel_on_enter;
  cio_loop *loop;
  struct cio_task *parent; /* referenced from enter until free */
  struct child *head, *tail;
  size_t npending;                 /* children whose callback has not run */
  struct cio_future *on_completed; /* join's waiter, in join's frame */
  cio_group_error *errors;         /* each errors[i].task is referenced */
  unsigned char *owned; /* errors[i].msg is malloc'd */
  size_t nerrors, cap;
  /* Errors that could not be recorded (no memory): they fail the group all
   * the same; the first is described here, without allocating. */
  size_t nlost;
  int lost_code;
  char lost_what[200];
  struct cio_taskgroup *pool_next;
};

static struct pool tg_pool = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0,
                              offsetof(struct cio_taskgroup, pool_next),
                              sizeof(struct cio_taskgroup)};

/* Test hook: when set to n > 0, the n-th next error record fails as if out
 * of memory. */
int cio__taskgroup_fail_record;

static bool tg_ok(const cio_taskgroup *tg) { return tg && tg->magic == TG_MAGIC; }

cio_taskgroup *cio_taskgroup_new(void) {
  cio_taskgroup *tg = pool_get(&tg_pool);
  if (!tg) {
    cio__fail_static(-ENOMEM, "cio_taskgroup_new: out of memory");
    return NULL;
  }
  tg->magic = TG_MAGIC;
  return tg;
}

static bool record_fails(void) {
  return cio__taskgroup_fail_record > 0 && --cio__taskgroup_fail_record == 0;
}

/* Record an error: a child's (task, the group takes its own reference) or
 * the body's (task NULL; body_msg, malloc'd or NULL, is taken over). If it
 * cannot be recorded it still fails the group (nlost). */
static void add_error(cio_taskgroup *tg, int code, const char *msg, cio_task *task,
                      char *body_msg) {
  if (!msg) msg = cio_strerror(code);
  bool ok = !record_fails();
  if (ok && tg->nerrors == tg->cap) {
    size_t cap = tg->cap ? tg->cap * 2 : 4;
    cio_group_error *e = realloc(tg->errors, cap * sizeof *e);
    if (e) tg->errors = e;
    unsigned char *o = e ? realloc(tg->owned, cap) : NULL;
    if (o) tg->owned = o;
    if (e && o)
      tg->cap = cap;
    else
      ok = false;
  }
  if (!ok) {
    /* Cannot keep it: it fails the group all the same, and is not lost
     * silently. */
    if (tg->nlost++ == 0) {
      tg->lost_code = code;
      if (task)
        snprintf(tg->lost_what, sizeof tg->lost_what, "task '%s': %s: %s",
                 cio_task_get_name(task), cio_err_name(code), msg);
      else
        snprintf(tg->lost_what, sizeof tg->lost_what, "the group body: %s: %s",
                 cio_err_name(code), msg);
    }
    cio_exception_context ctx = {.message = "TaskGroup: no memory to record an error",
                                 .code = code, .error = msg, .task = task};
    if (tg->loop) cio_loop_call_exception_handler(tg->loop, &ctx);
    free(body_msg);
    return;
  }
  char *copy = body_msg ? body_msg : strdup(msg);
  /* Without a copy the message stays valid all the same: the task's (we hold
   * a reference), or a static description. */
  if (!copy && !task) msg = cio_strerror(code);
  tg->errors[tg->nerrors] = (cio_group_error){code, copy ? copy : msg, task ? cio_task_ref(task) : NULL};
  tg->owned[tg->nerrors] = copy != NULL;
  tg->nerrors++;
}

/* asyncio's _abort: cancel every child not done. */
static void tg_abort(cio_taskgroup *tg) {
  tg->aborting = true;
  for (struct child *c = tg->head; c; c = c->next)
    if (c->task->fut.state == CIO__PENDING) cio_task_cancel(c->task, NULL);
}

static void tg_unlink(cio_taskgroup *tg, struct child *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    tg->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    tg->tail = c->prev;
}

/* asyncio's _on_task_done. */
static void child_done(struct cio__cb *cb) {
  struct child *c = (struct child *)cb;
  cio_taskgroup *tg = c->tg;
  cio_task *task = c->task; /* the group's reference, dropped at the end */
  tg_unlink(tg, c);
  free(c);
  tg->npending--;
  if (tg->on_completed && tg->npending == 0 && tg->on_completed->state == CIO__PENDING)
    cio__future_complete(tg->on_completed, CIO__RESULT, 0, NULL, NULL, false);
  struct cio_future *f = &task->fut;
  if (f->state != CIO__ERROR) { /* a result, or cancelled: not an error */
    cio_task_unref(task);
    return;
  }
  f->flags |= CIO__F_RETRIEVED;
  add_error(tg, f->code, f->msg, task, NULL);
  if (tg->parent->fut.state != CIO__PENDING) {
    char msg[256];
    snprintf(msg, sizeof msg, "Task '%s' has errored out but its parent task '%s' is already "
             "completed", cio_task_get_name(task), cio_task_get_name(tg->parent));
    cio_exception_context ctx = {.message = msg, .code = f->code, .error = f->msg,
                                 .task = task, .future = f};
    cio_loop_call_exception_handler(tg->loop, &ctx);
  } else if (!tg->aborting && !tg->parent_cancel_requested) {
    /* Interrupt whatever the body awaits; join withdraws this request. */
    tg_abort(tg);
    tg->parent_cancel_requested = true;
    cio_task_cancel(tg->parent, NULL);
  }
  cio_task_unref(task);
}

int cio_taskgroup_enter(cio_taskgroup *tg) {
  if (!tg_ok(tg)) return cio__fail(-EINVAL, "cio_taskgroup_enter: not a task group");
  struct cio_task *t = NULL;
  int rc = current_task("cio_taskgroup_enter", &t);
  if (rc < 0) return rc;
  if (tg->entered) return cio__fail(CIO_EINVALSTATE, "cio_taskgroup_enter: the task group has "
                                                     "already been entered");
  tg->loop = t->fut.loop;
  tg->parent = cio_task_ref(t);
  tg->entered = true;
  if (tg->cancel_on_enter) cio_taskgroup_cancel(tg);
  return 0;
}

cio_task *cio_taskgroup_create_task(cio_taskgroup *tg, cio_task_fn fn, void *arg,
                                    const cio_task_options *opts) {
  const char *state = NULL;
  if (!tg_ok(tg)) {
    cio__fail(-EINVAL, "cio_taskgroup_create_task: not a task group");
    return NULL;
  }
  if (!tg->entered)
    state = "has not been entered";
  else if (tg->joined || (tg->exiting && tg->npending == 0))
    state = "is finished";
  else if (tg->aborting)
    state = "is shutting down";
  if (state) {
    cio__fail(CIO_EINVALSTATE, "cio_taskgroup_create_task: the task group %s", state);
    return NULL;
  }
  if (cio__running_loop != tg->loop) {
    cio__fail(CIO_EWRONGLOOP, "cio_taskgroup_create_task: not called from the group's loop");
    return NULL;
  }
  if (!fn) {
    cio__fail(-EINVAL, "cio_taskgroup_create_task: function is NULL");
    return NULL;
  }
  struct child *c = malloc(sizeof *c);
  if (!c) {
    cio__fail_static(-ENOMEM, "cio_taskgroup_create_task: out of memory");
    return NULL;
  }
  cio_task *t = cio_loop_create_task(tg->loop, fn, arg, opts);
  if (!t) {
    free(c);
    return NULL;
  }
  c->cb.run = child_done;
  c->prev = tg->tail;
  c->next = NULL;
  c->tg = tg;
  c->task = t;
  if (tg->tail)
    tg->tail->next = c;
  else
    tg->head = c;
  tg->tail = c;
  tg->npending++;
  /* Always through the callback, even for a child that finished eagerly
   * (cpython gh-128550: else its error would cancel the parent too early). */
  cio__future_add_waiter(&t->fut, &c->cb);
  /* An eager child may have cancelled the group before it was listed
   * (cpython gh-155418). */
  if (tg->aborting && t->fut.state == CIO__PENDING) cio_task_cancel(t, NULL);
  return t;
}

/* The CIO_EGROUP message: every error, in order. */
static int group_failure(cio_taskgroup *tg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m) return cio__fail_static(CIO_EGROUP, "unhandled errors in a TaskGroup");
  fprintf(m, "unhandled errors in a TaskGroup (%zu sub-error%s):", tg->nerrors,
          tg->nerrors == 1 ? "" : "s");
  for (size_t i = 0; i < tg->nerrors; i++) {
    const cio_group_error *e = &tg->errors[i];
    fprintf(m, "%s %s%s%s: %s: %s", i ? ";" : "", e->task ? "task '" : "the group body",
            e->task ? cio_task_get_name(e->task) : "", e->task ? "'" : "", cio_err_name(e->code),
            e->msg);
  }
  if (tg->nlost)
    fprintf(m, "; and %zu more that could not be recorded (out of memory), the first: %s",
            tg->nlost, tg->lost_what);
  fclose(m);
  int rc = cio__fail(CIO_EGROUP, "%s", buf);
  free(buf);
  return rc;
}

int cio_taskgroup_join(cio_taskgroup *tg, int body_rc) {
  if (!tg_ok(tg)) return cio__fail(-EINVAL, "cio_taskgroup_join: not a task group");
  struct cio_task *t = NULL;
  int rc = current_task("cio_taskgroup_join", &t);
  if (rc < 0) return rc;
  if (!tg->entered)
    return cio__fail(CIO_EINVALSTATE, "cio_taskgroup_join: the task group has not been entered");
  if (tg->exiting)
    return cio__fail(CIO_EINVALSTATE, "cio_taskgroup_join: the task group was joined already");
  if (t != tg->parent)
    return cio__fail(CIO_EINVALSTATE, "cio_taskgroup_join: must be called by the task that "
                                      "entered the group ('%s')", cio_task_get_name(tg->parent));
  tg->exiting = true;
  tg->joining = true;

  /* The body's error, with its message, before any await replaces it. */
  int body_err = 0;
  char *body_msg = NULL;
  if (body_rc < 0 && body_rc != -ECANCELED) {
    body_err = body_rc;
    body_msg = strdup(cio_errcode() == body_rc ? cio_errmsg() : cio_strerror(body_rc));
  }
  bool propagate_cancel = body_rc == -ECANCELED;
  if (body_rc < 0 && !tg->aborting) tg_abort(tg);

  /* The waiter can be cancelled many times over (an outer cancel arriving
   * repeatedly, or once while our own is in flight): loop. */
  bool pending_cancel = false;
  while (tg->npending) {
    struct cio_future done;
    cio__future_init(&done, tg->loop, CIO__F_LOCAL);
    tg->on_completed = &done;
    rc = cio__task_await(t, &done, NULL);
    tg->on_completed = NULL;
    cio__future_finalize(&done, NULL);
    if (rc == -ECANCELED) {
      pending_cancel = true;
      if (!tg->aborting) { /* the parent is cancelled from outside */
        propagate_cancel = true;
        tg_abort(tg);
      }
    }
  }
  tg->joining = false;
  tg->joined = true;

  if (tg->parent_cancel_requested) {
    /* Withdraw the group's own request on the parent. */
    if (cio_task_uncancel(t) == 0)
      propagate_cancel = false;
    else if (!propagate_cancel)
      propagate_cancel = pending_cancel; /* cpython#155433: the rest is not ours */
  }
  if (propagate_cancel && tg->nerrors == 0 && tg->nlost == 0) {
    if (body_err) {
      rc = cio__fail(-ECANCELED, "the task group's parent task was cancelled (dropping the error "
                                 "of the group body: %s: %s)", cio_err_name(body_err),
                     body_msg ? body_msg : cio_strerror(body_err));
    } else {
      rc = cio__fail_static(-ECANCELED, "the task group's parent task was cancelled");
    }
    free(body_msg);
    return rc;
  }
  if (body_err) add_error(tg, body_err, body_msg, NULL, body_msg);
  if (tg->nerrors == 0 && tg->nlost == 0) return body_rc > 0 ? body_rc : 0;
  /* An outer cancellation pending on the parent stays armed (3.13): the
   * un-cancel/re-cancel keeps the count and makes the next await see it. */
  if (t->cancel_requests > 0) {
    cio_task_uncancel(t);
    cio_task_cancel(t, NULL);
  }
  if (tg->nerrors == 0)
    return cio__fail(-ENOMEM, "unhandled error%s in a TaskGroup that could not be recorded (out "
                     "of memory)%s: %s", tg->nlost == 1 ? "" : "s",
                     tg->nlost == 1 ? "" : ", the first", tg->lost_what);
  return group_failure(tg);
}

int cio_taskgroup_cancel(cio_taskgroup *tg) {
  if (!tg_ok(tg)) return cio__fail(-EINVAL, "cio_taskgroup_cancel: not a task group");
  if (!tg->entered) {
    tg->cancel_on_enter = true;
    return 0;
  }
  if (tg->joined || (tg->exiting && tg->npending == 0)) return 0;
  if (cio__running_loop != tg->loop)
    return cio__fail(CIO_EWRONGLOOP, "cio_taskgroup_cancel: not called from the group's loop");
  if (!tg->aborting) {
    tg_abort(tg);
    if (!tg->parent_cancel_requested) {
      tg->parent_cancel_requested = true;
      cio_task_cancel(tg->parent, NULL);
    }
  }
  return 0;
}

const cio_group_error *cio_taskgroup_errors(const cio_taskgroup *tg, size_t *n) {
  if (!tg_ok(tg) || tg->nerrors == 0) {
    if (n) *n = 0;
    return NULL;
  }
  if (n) *n = tg->nerrors;
  return tg->errors;
}

size_t cio_taskgroup_pending(const cio_taskgroup *tg) { return tg_ok(tg) ? tg->npending : 0; }

static bool tg_queued_child(struct cio__cb *cb, void *arg) {
  return cb->run == child_done && ((struct child *)cb)->tg == arg;
}

int cio_taskgroup_free(cio_taskgroup *tg) {
  if (!tg) return 0;
  if (!tg_ok(tg)) return cio__fail(-EINVAL, "cio_taskgroup_free: not a live task group");
  if (tg->joining)
    return cio__fail(CIO_EINVALSTATE, "cio_taskgroup_free: a task is waiting in join");
  size_t cancelled = 0, queued = 0;
  /* Unhook the callbacks: those waiting on a pending child one by one, those
   * already queued (the child finished) all in one pass over the queue. */
  for (struct child *c = tg->head; c; c = c->next)
    if (c->task->fut.state == CIO__PENDING)
      cio__future_remove_waiter(&c->task->fut, &c->cb);
    else
      queued++;
  if (queued) cio__loop_unqueue_if(tg->loop, tg_queued_child, tg);
  struct child *c = tg->head;
  while (c) {
    struct child *next = c->next;
    if (c->task->fut.state == CIO__PENDING && cio_task_cancel(c->task, NULL) == 1) cancelled++;
    cio_task_unref(c->task);
    free(c);
    c = next;
  }
  tg->head = tg->tail = NULL;
  if (cancelled && tg->loop) {
    char msg[160];
    snprintf(msg, sizeof msg, "TaskGroup freed before join: %zu pending child task%s cancelled",
             cancelled, cancelled == 1 ? " was" : "s were");
    cio_exception_context ctx = {.message = msg, .task = tg->parent};
    cio_loop_call_exception_handler(tg->loop, &ctx);
  }
  for (size_t i = 0; i < tg->nerrors; i++) {
    if (tg->owned[i]) free((void *)tg->errors[i].msg);
    if (tg->errors[i].task) cio_task_unref(tg->errors[i].task);
  }
  free(tg->errors);
  free(tg->owned);
  if (tg->parent) cio_task_unref(tg->parent);
  tg->magic = TG_DEAD;
  pool_put(&tg_pool, tg);
  return 0;
}

/* ==== gather ================================================================================ */

struct gather;

/* gather's done callback on one distinct child. */
struct gkid {
  struct cio__cb cb;
  struct gather *g;
  struct cio_future *fut;
  bool ran;
};

/* asyncio's _GatheringFuture: the outer future, whose cancel() cancels the
 * children. Lives in cio_gather's frame. */
struct gather {
  struct cio__hooked_future outer;
  cio_future *const *aws;
  size_t n;
  size_t nkids, nfinished;
  void **results;
  int *codes; /* NULL: return_exceptions=False */
  bool cancel_requested;
};

/* asyncio's _done_callback. */
static void gather_process(struct gather *g, struct cio_future *f) {
  struct cio_future *outer = &g->outer.fut;
  g->nfinished++;
  if (outer->state != CIO__PENDING) return; /* left unretrieved: see the header */
  if (!g->codes) {
    if (f->state == CIO__CANCELLED) {
      complete_copy(outer, CIO__CANCELLED, -ECANCELED, f->msg);
      return;
    }
    if (f->state == CIO__ERROR) {
      f->flags |= CIO__F_RETRIEVED;
      complete_copy(outer, CIO__ERROR, f->code, f->msg);
      return;
    }
  }
  if (g->nfinished < g->nkids) return;
  for (size_t i = 0; i < g->n; i++) {
    struct cio_future *c = g->aws[i];
    if (c->state == CIO__RESULT) {
      if (g->results) g->results[i] = c->result;
    } else {
      if (c->state == CIO__ERROR) c->flags |= CIO__F_RETRIEVED;
      if (g->codes) g->codes[i] = c->code;
    }
  }
  if (g->cancel_requested) /* asyncio: fut._make_cancelled_error(), fut the last child */
    complete_copy(outer, CIO__CANCELLED, -ECANCELED, f->state == CIO__CANCELLED ? f->msg : NULL);
  else
    cio__future_complete(outer, CIO__RESULT, 0, NULL, NULL, false);
}

static void gather_kid_done(struct cio__cb *cb) {
  struct gkid *k = (struct gkid *)cb;
  k->ran = true;
  gather_process(k->g, k->fut);
}

/* _GatheringFuture.cancel: cancel every child (duplicates included, as
 * asyncio does); the gather is cancelled if any child was. */
static int gather_cancel(struct cio__hooked_future *hf, const char *msg) {
  struct gather *g = (struct gather *)hf;
  int ret = 0;
  for (size_t i = 0; i < g->n; i++)
    if (cio_future_cancel(g->aws[i], msg) == 1) ret = 1;
  if (ret) g->cancel_requested = true;
  return ret;
}

static bool gather_queued_kid(struct cio__cb *cb, void *arg) {
  return cb->run == gather_kid_done && ((struct gkid *)cb)->g == arg;
}

int cio_gather(cio_future *const *aws, size_t n, void **results, int *codes) {
  struct cio_task *t = NULL;
  int rc = current_task("cio_gather", &t);
  if (rc < 0) return rc;
  if (n && !aws) return cio__fail(-EINVAL, "cio_gather: the array of futures is NULL");
  cio_loop *loop = t->fut.loop;
  for (size_t i = 0; i < n; i++) {
    rc = check_entry(aws[i], loop, t, "cio_gather", i);
    if (rc < 0) return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (results) results[i] = NULL;
    if (codes) codes[i] = 0;
  }
  if (n == 0) return 0;
  size_t *idx = malloc(n * sizeof *idx);
  struct gkid *kids = malloc(n * sizeof *kids);
  long nk = idx && kids ? distinct(aws, n, idx) : -ENOMEM;
  if (nk < 0) {
    free(idx);
    free(kids);
    return cio__fail_static(-ENOMEM, "cio_gather: out of memory");
  }
  struct gather g = {.aws = aws, .n = n, .nkids = (size_t)nk, .results = results, .codes = codes};
  cio__future_init(&g.outer.fut, loop, CIO__F_LOCAL | CIO__F_HOOKED);
  g.outer.cancel = gather_cancel;
  for (size_t k = 0; k < g.nkids; k++) {
    struct cio_future *f = aws[idx[k]];
    kids[k] = (struct gkid){.cb.run = gather_kid_done, .g = &g, .fut = cio_future_ref(f)};
    if (f->state == CIO__PENDING) cio__future_add_waiter(f, &kids[k].cb);
  }
  /* Children done already are processed now, in order, once the outer
   * future exists (asyncio's done_futs): if all are, gather is done without
   * a suspension. */
  for (size_t k = 0; k < g.nkids; k++)
    if (kids[k].fut->state != CIO__PENDING) {
      kids[k].ran = true;
      gather_process(&g, kids[k].fut);
    }
  rc = cio__task_await(t, &g.outer.fut, NULL);
  size_t queued = 0;
  for (size_t k = 0; k < g.nkids; k++) {
    if (kids[k].ran) continue;
    if (kids[k].fut->state == CIO__PENDING)
      cio__future_remove_waiter(kids[k].fut, &kids[k].cb);
    else
      queued++;
  }
  if (queued) cio__loop_unqueue_if(loop, gather_queued_kid, &g); /* one pass */
  for (size_t k = 0; k < g.nkids; k++) cio_future_unref(kids[k].fut);
  cio__future_finalize(&g.outer.fut, NULL);
  free(kids);
  free(idx);
  return rc;
}

int cio_gather_calls(const cio_call *calls, size_t n, void **results, int *codes,
                     cio_task **tasks) {
  struct cio_task *t = NULL;
  int rc = current_task("cio_gather_calls", &t);
  if (rc < 0) return rc;
  if (n && !calls) return cio__fail(-EINVAL, "cio_gather_calls: the array of calls is NULL");
  for (size_t i = 0; i < n; i++)
    if (!calls[i].fn) return cio__fail(-EINVAL, "cio_gather_calls: call %zu has no function", i);
  if (n == 0) return 0;
  cio_task **ts = tasks ? tasks : malloc(n * sizeof *ts);
  cio_future **fs = malloc(n * sizeof *fs);
  if (!ts || !fs) {
    if (!tasks) free(ts);
    free(fs);
    return cio__fail_static(-ENOMEM, "cio_gather_calls: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    ts[i] = cio_loop_create_task(t->fut.loop, calls[i].fn, calls[i].arg, NULL);
    if (!ts[i]) {
      bool owned;
      int code = cio_errcode();
      const char *msg = cio__errslot_take(code, &owned);
      for (size_t j = 0; j < i; j++) {
        cio_task_cancel(ts[j], NULL);
        cio_task_unref(ts[j]);
        ts[j] = NULL;
      }
      if (!tasks) free(ts);
      free(fs);
      rc = cio__fail_copy(code, msg);
      if (owned) free((void *)msg);
      return rc;
    }
    fs[i] = &ts[i]->fut;
  }
  rc = cio_gather(fs, n, results, codes);
  free(fs);
  if (!tasks) {
    bool owned;
    const char *msg = rc < 0 ? cio__errslot_take(rc, &owned) : NULL;
    for (size_t i = 0; i < n; i++) cio_task_unref(ts[i]);
    free(ts);
    if (msg) {
      cio__fail_copy(rc, msg);
      if (owned) free((void *)msg);
    }
  }
  return rc;
}

/* ==== wait ==================================================================================== */

struct waitst;

struct wrec {
  struct cio__cb cb;
  struct waitst *w;
  struct cio_future *fut;
  bool ran;
};

struct waitst {
  struct cio_future waiter;
  struct cio__timer timer;
  size_t counter;
  cio_return_when when;
};

static void wait_release(struct waitst *w) {
  if (w->waiter.state == CIO__PENDING)
    cio__future_complete(&w->waiter, CIO__RESULT, 0, NULL, NULL, false);
}

/* asyncio's _on_completion. */
static void wait_rec_done(struct cio__cb *cb) {
  struct wrec *r = (struct wrec *)cb;
  struct waitst *w = r->w;
  r->ran = true;
  w->counter--;
  if (w->counter == 0 || w->when == CIO_FIRST_COMPLETED ||
      (w->when == CIO_FIRST_EXCEPTION && r->fut->state == CIO__ERROR)) {
    cio__timer_stop(w->waiter.loop, &w->timer);
    wait_release(w);
  }
}

static void wait_timeout(struct cio__cb *cb) {
  struct waitst *w = CIO__CONTAINER_OF(cb, struct waitst, timer.cb);
  w->timer.slot = CIO__TIMER_IDLE;
  wait_release(w);
}

static bool wait_queued_rec(struct cio__cb *cb, void *arg) {
  return cb->run == wait_rec_done && ((struct wrec *)cb)->w == arg;
}

int cio_wait(cio_future *const *fs, size_t n, double timeout, cio_return_when return_when,
             cio_future **done, size_t *ndone, cio_future **pending, size_t *npending) {
  if (ndone) *ndone = 0;
  if (npending) *npending = 0;
  struct cio_task *t = NULL;
  int rc = current_task("cio_wait", &t);
  if (rc < 0) return rc;
  if (n == 0) return cio__fail(-EINVAL, "cio_wait: the set of futures is empty");
  if (!fs) return cio__fail(-EINVAL, "cio_wait: the array of futures is NULL");
  if (return_when != CIO_ALL_COMPLETED && return_when != CIO_FIRST_COMPLETED &&
      return_when != CIO_FIRST_EXCEPTION)
    return cio__fail(-EINVAL, "cio_wait: invalid return_when value %d", (int)return_when);
  if (isnan(timeout)) return cio__fail(-EINVAL, "cio_wait: timeout is NaN");
  cio_loop *loop = t->fut.loop;
  for (size_t i = 0; i < n; i++) {
    rc = check_entry(fs[i], loop, t, "cio_wait", i);
    if (rc < 0) return rc;
  }
  size_t *idx = malloc(n * sizeof *idx);
  struct wrec *recs = malloc(n * sizeof *recs);
  long nr = idx && recs ? distinct(fs, n, idx) : -ENOMEM;
  if (nr < 0) {
    free(idx);
    free(recs);
    return cio__fail_static(-ENOMEM, "cio_wait: out of memory");
  }
  struct waitst w = {.counter = (size_t)nr, .when = return_when};
  cio__future_init(&w.waiter, loop, CIO__F_LOCAL);
  cio__timer_init(&w.timer, wait_timeout);
  if (!(isinf(timeout) && timeout > 0)) {
    rc = cio__timer_arm(loop, &w.timer, cio__loop_now(loop) + cio__seconds_to_ns(timeout));
    if (rc < 0) {
      free(idx);
      free(recs);
      return rc;
    }
  }
  for (long k = 0; k < nr; k++) {
    struct cio_future *f = fs[idx[k]];
    recs[k] = (struct wrec){.cb.run = wait_rec_done, .w = &w, .fut = cio_future_ref(f)};
    cio__future_add_waiter(f, &recs[k].cb); /* done already: scheduled now */
  }
  rc = cio__task_await(t, &w.waiter, NULL);
  cio__timer_stop(loop, &w.timer);
  size_t nd = 0, np = 0, queued = 0;
  for (long k = 0; k < nr; k++) {
    if (recs[k].ran) continue;
    if (recs[k].fut->state == CIO__PENDING)
      cio__future_remove_waiter(recs[k].fut, &recs[k].cb);
    else
      queued++;
  }
  if (queued) cio__loop_unqueue_if(loop, wait_queued_rec, &w); /* one pass */
  for (long k = 0; k < nr; k++) {
    struct cio_future *f = recs[k].fut;
    if (f->state != CIO__PENDING) {
      if (done) done[nd] = f;
      nd++;
    } else {
      if (pending) pending[np] = f;
      np++;
    }
    cio_future_unref(f);
  }
  if (ndone) *ndone = nd;
  if (npending) *npending = np;
  cio__future_finalize(&w.waiter, NULL);
  free(recs);
  free(idx);
  return rc;
}

/* ==== shield ==================================================================================== */

/* The shield's done callback on inner. Heap: it outlives the call when the
 * caller is cancelled, to report a later failure of inner. */
struct shield_rec {
  struct cio__cb cb;
  struct cio_future *inner;   /* referenced */
  struct cio_future *outer;   /* in cio_shield's frame; NULL once the caller left */
  bool ran;
};

static void shield_report(struct cio_future *inner) {
  char what[96], msg[192];
  inner->flags |= CIO__F_RETRIEVED;
  snprintf(msg, sizeof msg, "shielded %s failed after its awaiting task was cancelled",
           describe(inner, what, sizeof what));
  cio_exception_context ctx = {.message = msg, .code = inner->code, .error = inner->msg,
                               .task = cio_future_task(inner), .future = inner};
  cio_loop_call_exception_handler(inner->loop, &ctx);
}

/* The watch after the caller left: report a failure nobody will read. */
static void shield_late(cio_future *inner, void *arg) {
  (void)arg;
  if (inner->state == CIO__ERROR) shield_report(inner);
}

/* asyncio's _inner_done_callback. */
static void shield_inner_done(struct cio__cb *cb) {
  struct shield_rec *r = (struct shield_rec *)cb;
  struct cio_future *inner = r->inner, *outer = r->outer;
  r->ran = true;
  if (!outer || outer->state != CIO__PENDING) {
    /* The caller was cancelled: nobody will read inner's outcome here. */
    if (inner->state == CIO__ERROR) shield_report(inner);
    if (!outer) {
      cio_future_unref(inner);
      free(r);
    }
    return;
  }
  if (inner->state == CIO__CANCELLED) {
    complete_copy(outer, CIO__CANCELLED, -ECANCELED, inner->msg);
  } else if (inner->state == CIO__ERROR) {
    inner->flags |= CIO__F_RETRIEVED;
    complete_copy(outer, CIO__ERROR, inner->code, inner->msg);
  } else {
    cio__future_complete(outer, CIO__RESULT, 0, inner->result, NULL, false);
  }
}

/* The loop closed with a detached record queued: free it. */
static void shield_discard(struct cio__cb *cb) {
  struct shield_rec *r = (struct shield_rec *)cb;
  if (r->outer) return;
  cio_future_unref(r->inner);
  free(r);
}

int cio_shield(cio_future *inner, void **result) {
  struct cio_task *t = NULL;
  int rc = current_task("cio_shield", &t);
  if (rc < 0) return rc;
  rc = check_entry(inner, t->fut.loop, t, "cio_shield", 0);
  if (rc < 0) return rc;
  if (inner->state != CIO__PENDING) return cio__future_outcome(inner, result);
  struct shield_rec *r = malloc(sizeof *r);
  if (!r) return cio__fail_static(-ENOMEM, "cio_shield: out of memory");
  struct cio_future outer;
  cio__future_init(&outer, t->fut.loop, CIO__F_LOCAL);
  *r = (struct shield_rec){.cb.run = shield_inner_done, .inner = cio_future_ref(inner),
                           .outer = &outer};
  cio__future_add_waiter(inner, &r->cb);
  rc = cio__task_await(t, &outer, result);
  if (!r->ran && inner->state == CIO__PENDING &&
      cio_future_add_done_callback(inner, shield_late, NULL) == 0) {
    /* The caller left (cancelled) while inner runs on: watch it with a done
     * callback, which holds no reference until inner completes, so that a
     * pending inner whose last reference goes away is freed with it instead
     * of being kept alive (with its loop) by this watch. */
    cio__future_remove_waiter(inner, &r->cb);
    r->ran = true;
  }
  if (r->ran) {
    cio_future_unref(inner);
    free(r);
  } else {
    r->outer = NULL; /* queued already (or no memory): it goes on alone and frees itself */
  }
  cio__future_finalize(&outer, NULL);
  return rc;
}

/* ==== as_completed ============================================================================== */

#define AC_MAGIC 0x61636d70u
#define AC_DEAD 0xdead6163u

struct acrec {
  struct cio__cb cb;
  struct cio_as_completed *it;
  struct cio_future *fut; /* referenced */
  bool linked;            /* cb is in fut's waiters or in the ready queue */
  bool in_todo;
};

struct cio_as_completed {
  uint32_t magic;
  cio_loop *loop;
  struct acrec *recs;
  size_t nrecs;
  struct cio_future **q; /* done futures (NULL: a timeout), a ring of nrecs */
  size_t qhead, qlen;
  size_t todo_left; /* items next() has still to hand out */
  size_t ntodo;     /* futures still watched */
  struct cio__timer timer;
  struct cio_future *getter; /* the future a waiting next() sleeps on */
  struct cio_as_completed *pool_next;
};

static struct pool ac_pool = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0,
                              offsetof(struct cio_as_completed, pool_next),
                              sizeof(struct cio_as_completed)};

static void ac_put(struct cio_as_completed *it, struct cio_future *f) {
  it->q[(it->qhead + it->qlen++) % it->nrecs] = f;
  if (it->getter && it->getter->state == CIO__PENDING)
    cio__future_complete(it->getter, CIO__RESULT, 0, NULL, NULL, false);
}

/* _handle_completion. */
static void ac_done(struct cio__cb *cb) {
  struct acrec *r = (struct acrec *)cb;
  struct cio_as_completed *it = r->it;
  r->linked = false;
  if (it->ntodo == 0) return; /* the timeout was here first */
  r->in_todo = false;
  it->ntodo--;
  ac_put(it, r->fut);
  if (it->ntodo == 0) cio__timer_stop(it->loop, &it->timer);
}

/* _handle_timeout: every future still watched reports a timeout. */
static void ac_timeout(struct cio__cb *cb) {
  struct cio_as_completed *it = CIO__CONTAINER_OF(cb, struct cio_as_completed, timer.cb);
  it->timer.slot = CIO__TIMER_IDLE;
  for (size_t k = 0; k < it->nrecs; k++) {
    struct acrec *r = &it->recs[k];
    if (!r->in_todo) continue;
    r->in_todo = false;
    if (r->linked && r->fut->state == CIO__PENDING) {
      /* A callback already scheduled still runs, and finds nothing to do. */
      cio__future_remove_waiter(r->fut, &r->cb);
      r->linked = false;
    }
    ac_put(it, NULL);
  }
  it->ntodo = 0;
}

cio_as_completed *cio_as_completed_new(cio_future *const *fs, size_t n, double timeout) {
  cio_loop *loop = cio__running_loop;
  if (!loop) {
    cio__fail(CIO_ENOTRUNNING, "cio_as_completed_new: no running event loop in this thread");
    return NULL;
  }
  if (n && !fs) {
    cio__fail(-EINVAL, "cio_as_completed_new: the array of futures is NULL");
    return NULL;
  }
  if (isnan(timeout)) {
    cio__fail(-EINVAL, "cio_as_completed_new: timeout is NaN");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    if (check_entry(fs[i], loop, cio__current(), "cio_as_completed_new", i) < 0) return NULL;
  struct cio_as_completed *it = pool_get(&ac_pool);
  size_t *idx = n ? malloc(n * sizeof *idx) : NULL;
  long nr = 0;
  if (it && n) {
    it->recs = malloc(n * sizeof *it->recs);
    it->q = malloc(n * sizeof *it->q);
    nr = idx && it->recs && it->q ? distinct(fs, n, idx) : -ENOMEM;
  }
  if (!it || nr < 0) {
    if (it) {
      free(it->recs);
      free(it->q);
      it->magic = AC_DEAD;
      pool_put(&ac_pool, it);
    }
    free(idx);
    cio__fail_static(-ENOMEM, "cio_as_completed_new: out of memory");
    return NULL;
  }
  it->magic = AC_MAGIC;
  it->loop = loop;
  it->nrecs = (size_t)nr;
  it->todo_left = it->ntodo = (size_t)nr;
  cio__timer_init(&it->timer, ac_timeout);
  for (long k = 0; k < nr; k++) {
    struct cio_future *f = fs[idx[k]];
    it->recs[k] = (struct acrec){.cb.run = ac_done, .it = it, .fut = cio_future_ref(f),
                                 .linked = true, .in_todo = true};
    cio__future_add_waiter(f, &it->recs[k].cb);
  }
  free(idx);
  if (nr && !(isinf(timeout) && timeout > 0)) {
    int rc = cio__timer_arm(loop, &it->timer, cio__loop_now(loop) + cio__seconds_to_ns(timeout));
    if (rc < 0) {
      cio_as_completed_free(it);
      cio__fail_static(-ENOMEM, "cio_as_completed_new: out of memory");
      return NULL;
    }
  }
  return it;
}

int cio_as_completed_next(cio_as_completed *it, cio_future **done) {
  if (done) *done = NULL;
  if (!it || it->magic != AC_MAGIC)
    return cio__fail(-EINVAL, "cio_as_completed_next: not an as_completed iterator");
  struct cio_task *t = NULL;
  int rc = current_task("cio_as_completed_next", &t);
  if (rc < 0) return rc;
  if (t->fut.loop != it->loop)
    return cio__fail(CIO_EWRONGLOOP, "cio_as_completed_next: the iterator belongs to another loop");
  if (it->getter)
    return cio__fail(CIO_EINVALSTATE, "cio_as_completed_next: another task is waiting on this "
                                      "iterator");
  if (it->todo_left == 0) return 1;
  it->todo_left--;
  while (it->qlen == 0) {
    struct cio_future getter;
    cio__future_init(&getter, it->loop, CIO__F_LOCAL);
    it->getter = &getter;
    rc = cio__task_await(t, &getter, NULL);
    it->getter = NULL;
    cio__future_finalize(&getter, NULL);
    if (rc < 0) {
      it->todo_left++; /* this item was not handed out */
      return rc;
    }
  }
  struct cio_future *f = it->q[it->qhead];
  it->qhead = (it->qhead + 1) % it->nrecs;
  it->qlen--;
  if (!f) return cio__fail_static(-ETIMEDOUT, "as_completed: the total timeout expired");
  if (done) *done = f;
  return 0;
}

size_t cio_as_completed_remaining(const cio_as_completed *it) {
  return it && it->magic == AC_MAGIC ? it->todo_left : 0;
}

static bool ac_queued_rec(struct cio__cb *cb, void *arg) {
  return cb->run == ac_done && ((struct acrec *)cb)->it == arg;
}

int cio_as_completed_free(cio_as_completed *it) {
  if (!it) return 0;
  if (it->magic != AC_MAGIC)
    return cio__fail(-EINVAL, "cio_as_completed_free: not an as_completed iterator");
  if (it->getter)
    return cio__fail(CIO_EINVALSTATE, "cio_as_completed_free: a task is waiting in next");
  cio__timer_stop(it->loop, &it->timer);
  /* Callbacks still waiting are unhooked one by one; those already queued
   * (their future is done) all in one pass over the ready queue. */
  size_t queued = 0;
  for (size_t k = 0; k < it->nrecs; k++) {
    struct acrec *r = &it->recs[k];
    if (!r->linked) continue;
    if (r->fut->state == CIO__PENDING)
      cio__future_remove_waiter(r->fut, &r->cb);
    else
      queued++;
  }
  if (queued) cio__loop_unqueue_if(it->loop, ac_queued_rec, it);
  for (size_t k = 0; k < it->nrecs; k++) cio_future_unref(it->recs[k].fut);
  free(it->recs);
  free(it->q);
  it->magic = AC_DEAD;
  pool_put(&ac_pool, it);
  return 0;
}

__attribute__((constructor)) static void register_discards(void) {
  cio__cb_discard_register(shield_inner_done, shield_discard);
}

/* ==== scopes left by return or goto ============================================================ */

void cio__scope_abandoned(cio__scope_guard *g) {
  g->armed = 0;
  struct cio_task *t = cio__current();
  if (!t) return; /* a scope is only entered inside a task */
  int body_rc = *g->rc;
  /* The function is returning something, perhaps an error whose message
   * its caller will read: keep the thread's last error as it is. */
  int saved_code = cio_errcode();
  bool owned = false;
  const char *saved_msg = cio__errslot_take(saved_code, &owned);
  const char *what = g->kind == CIO__SCOPE_GROUP ? "CIO_WITH_TASKGROUP" : "CIO_WITH_TIMEOUT";
  int out = g->kind == CIO__SCOPE_GROUP ? cio_taskgroup_join(g->obj, body_rc)
                                        : cio_timeout_exit(g->obj, body_rc);
  bool lost = out < 0 && out != body_rc;
  if (out == CIO_EGROUP && body_rc < 0) {
    /* Only the body's own error, which the return carries: nothing lost. */
    size_t n = 0;
    const cio_group_error *e = cio_taskgroup_errors(g->obj, &n);
    if (n == 1 && !e[0].task && e[0].code == body_rc) lost = false;
  }
  if (out == -ECANCELED && lost) {
    /* An outer cancellation: keep it pending, for the next suspension. */
    if (cio_task_cancelling(t) > 0) {
      cio_task_uncancel(t);
      cio_task_cancel(t, NULL);
    }
    lost = false;
  }
  if (lost) {
    char msg[160];
    snprintf(msg, sizeof msg, "a %s block was left by return or goto (task '%s'): the scope's "
             "outcome %s could not be returned", what, cio_task_get_name(t), cio_err_name(out));
    cio_exception_context ctx = {.message = msg, .code = out, .error = cio_errmsg(), .task = t};
    cio_loop_call_exception_handler(t->fut.loop, &ctx);
  }
  cio__fail_copy(saved_code, saved_msg);
  if (owned) free((void *)saved_msg);
}
