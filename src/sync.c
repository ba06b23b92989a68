/* Layer 7: the shared wait queue, and Lock, Event, Condition, Semaphore,
 * Barrier. See include/cio/sync.h and src/sync.h.
 *
 * Each primitive follows the hop structure of CPython's Lib/asyncio/locks.py
 * (3.13): the same checks in the same order, a waker that only completes the
 * waiter's future (the waiter runs one iteration later), and the waiter that
 * does its own bookkeeping when it resumes. That is what makes a cio program
 * print its lines in the order its asyncio original does. */
#include "sync.h"

#include <limits.h>
#include <math.h>
#include <stdalign.h>

/* ---- the wait queue ------------------------------------------------------------- */

static void link_tail(struct cio__waitq *q, struct cio__waiter *w) {
  w->next = NULL;
  w->prev = q->tail;
  if (q->tail)
    q->tail->next = w;
  else
    q->head = w;
  q->tail = w;
  q->n++;
}

static void unlink_waiter(struct cio__waitq *q, struct cio__waiter *w) {
  if (q->scan == w) q->scan = w->next ? w->next : w->prev;
  if (w->prev)
    w->prev->next = w->next;
  else
    q->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    q->tail = w->prev;
  w->prev = w->next = NULL;
  q->n--;
}

void cio__waiter_wake(struct cio__waiter *w, int token) {
  w->token = token;
  w->woken = true;
  cio__future_complete(&w->fut, CIO__RESULT, 0, NULL, NULL, false);
}

/* A linked waiter never becomes pending again and new ones go to the tail,
 * so the scan hint only moves forward (or to a neighbour on unlink). */
struct cio__waiter *cio__waitq_first_pending(struct cio__waitq *q) {
  for (struct cio__waiter *w = q->scan ? q->scan : q->head; w; w = w->next)
    if (cio__waiter_pending(w)) {
      q->scan = w;
      return w;
    }
  q->scan = q->tail;
  return NULL;
}

struct cio__waiter *cio__waitq_wake_first(struct cio__waitq *q, int token) {
  struct cio__waiter *w = cio__waitq_first_pending(q);
  if (w) cio__waiter_wake(w, token);
  return w;
}

size_t cio__waitq_wake_all(struct cio__waitq *q, int token) {
  size_t n = 0;
  while (cio__waitq_wake_first(q, token)) n++;
  return n;
}

bool cio__waitq_any_live(const struct cio__waitq *q) {
  for (struct cio__waiter *w = q->head; w; w = w->next)
    if (!cio__waiter_abandoned(w)) return true;
  return false;
}

static void waiter_deadline(struct cio__cb *cb) {
  struct cio__waiter *w = CIO__CONTAINER_OF(cb, struct cio__waiter, timer.cb);
  w->timer.slot = CIO__TIMER_IDLE;
  if (!cio__waiter_pending(w)) return; /* woken or cancelled first: that stands */
  w->timed_out = true;
  cio__future_complete(&w->fut, CIO__RESULT, 0, NULL, NULL, false);
}

int cio__waitq_wait(struct cio__waitq *q, struct cio__waiter *w, struct cio_task *t,
                    int64_t deadline) {
  cio_loop *loop = t->fut.loop;
  cio__future_init(&w->fut, loop, CIO__F_LOCAL);
  w->token = 0;
  w->woken = false;
  w->timed_out = false;
  if (deadline != CIO__NO_DEADLINE) {
    cio__timer_init(&w->timer, waiter_deadline);
    int rc = cio__timer_arm(loop, &w->timer, deadline);
    if (rc < 0) {
      cio__future_finalize(&w->fut, NULL);
      return rc;
    }
  }
  link_tail(q, w);
  int rc = cio__task_await(t, &w->fut, NULL);
  if (deadline != CIO__NO_DEADLINE) cio__timer_stop(loop, &w->timer);
  unlink_waiter(q, w);
  cio__future_finalize(&w->fut, NULL);
  if (rc == 0 && w->timed_out) rc = cio__fail_static(-ETIMEDOUT, "timed out");
  return rc;
}

int cio__waitq_enter(const struct cio__waitq *q, const struct cio__waitq *q2, const char *who,
                     struct cio_task **out) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  cio_loop *l1 = cio__waitq_loop(q), *l2 = q2 ? cio__waitq_loop(q2) : NULL;
  if ((l1 && l1 != t->fut.loop) || (l2 && l2 != t->fut.loop))
    return cio__fail(CIO_EWRONGLOOP, "%s: tasks of another event loop are waiting on it", who);
  *out = t;
  return 0;
}

int cio__deadline(cio_loop *loop, double timeout, const char *who, int64_t *out) {
  if (isnan(timeout)) return cio__fail(-EINVAL, "%s: timeout is NaN", who);
  if (isinf(timeout) && timeout > 0) {
    *out = CIO__NO_DEADLINE;
    return 0;
  }
  *out = cio__loop_now(loop) + cio__seconds_to_ns(timeout);
  return 0;
}

/* ---- the private layouts -------------------------------------------------------- */

#define LOCK_MAGIC 0x6c6f636bu
#define EVENT_MAGIC 0x6576656eu
#define COND_MAGIC 0x636f6e64u
#define SEM_MAGIC 0x73656d61u
#define BARRIER_MAGIC 0x62617272u
#define DEAD_MAGIC 0xdeadbeefu

struct lock {
  uint32_t magic;
  bool locked;
  struct cio__waitq waiters;
};

struct event {
  uint32_t magic;
  bool value;
  struct cio__waitq waiters;
};

struct cond {
  uint32_t magic;
  struct lock *lock; /* NULL: own_lock */
  struct lock own_lock;
  struct cio__waitq waiters;
};

struct sem {
  uint32_t magic;
  bool bounded;
  int value;
  int bound;
  struct cio__waitq waiters;
};

enum barrier_state { FILLING, DRAINING, RESETTING, BROKEN };

struct barrier {
  uint32_t magic;
  int parties;
  int count; /* tasks inside wait() past the "block" step */
  int state;
  struct cond cond;
};

#define CHECK_FITS(impl, pub)                                                     \
  _Static_assert(sizeof(impl) <= sizeof(pub), #impl " does not fit in " #pub);   \
  _Static_assert(alignof(impl) <= alignof(pub), #impl " is over-aligned for " #pub)
CHECK_FITS(struct lock, cio_lock);
CHECK_FITS(struct event, cio_event);
CHECK_FITS(struct cond, cio_condition);
CHECK_FITS(struct sem, cio_semaphore);
CHECK_FITS(struct barrier, cio_barrier);

#define IMPL(type, p) ((type *)(void *)(p))

static struct lock *lock_of(const cio_lock *p, const char *who, int *rc) {
  struct lock *l = IMPL(struct lock, p);
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: lock is NULL", who);
  else if (l->magic != LOCK_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized lock", who);
  else
    return l;
  return NULL;
}

/* ---- Lock --------------------------------------------------------------------------- */

static void lock_init(struct lock *l) {
  l->magic = LOCK_MAGIC;
  l->locked = false;
  cio__waitq_init(&l->waiters);
}

int cio_lock_init(cio_lock *p) {
  if (!p) return cio__fail(-EINVAL, "cio_lock_init: lock is NULL");
  lock_init(IMPL(struct lock, p));
  return 0;
}

int cio_lock_destroy(cio_lock *p) {
  int rc;
  struct lock *l = lock_of(p, "cio_lock_destroy", &rc);
  if (!l) return rc;
  if (l->waiters.n) return cio__fail(-EBUSY, "cio_lock_destroy: tasks are waiting on the lock");
  l->magic = DEAD_MAGIC;
  return 0;
}

/* asyncio's fast path: free, and every queued waiter already gone. */
static bool lock_free_now(const struct lock *l) {
  return !l->locked && !cio__waitq_any_live(&l->waiters);
}

/* Lock._wake_up_first: look at the first waiter only; if it is done (woken,
 * or cancelled and about to run) it will see to the rest. */
static void lock_wake_first(struct lock *l) {
  struct cio__waiter *w = l->waiters.head;
  if (w && cio__waiter_pending(w)) cio__waiter_wake(w, 0);
}

/* Lock.acquire, for task t (checks done). */
static int lock_acquire(struct lock *l, struct cio_task *t, int64_t deadline) {
  if (lock_free_now(l)) {
    l->locked = true;
    return 0;
  }
  struct cio__waiter w;
  int rc = cio__waitq_wait(&l->waiters, &w, t, deadline);
  if (rc < 0) {
    /* Cancelled (maybe just after a release woke us) or timed out: if the
     * lock is free, make sure the next waiter runs. */
    if (!l->locked) lock_wake_first(l);
    return rc;
  }
  l->locked = true;
  return 0;
}

static void lock_release(struct lock *l) {
  l->locked = false;
  lock_wake_first(l);
}

static int lock_acquire_api(cio_lock *p, double timeout, bool timed, const char *who) {
  int rc;
  struct lock *l = lock_of(p, who, &rc);
  if (!l) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&l->waiters, NULL, who, &t)) < 0) return rc;
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  return lock_acquire(l, t, deadline);
}

int cio_lock_acquire(cio_lock *p) { return lock_acquire_api(p, 0, false, "cio_lock_acquire"); }

int cio_lock_acquire_timeout(cio_lock *p, double timeout) {
  return lock_acquire_api(p, timeout, true, "cio_lock_acquire_timeout");
}

int cio_lock_try_acquire(cio_lock *p) {
  int rc;
  struct lock *l = lock_of(p, "cio_lock_try_acquire", &rc);
  if (!l) return rc;
  if (!lock_free_now(l))
    return cio__fail_static(-EBUSY, "cio_lock_try_acquire: the lock is held or has waiters");
  l->locked = true;
  return 0;
}

int cio_lock_release(cio_lock *p) {
  int rc;
  struct lock *l = lock_of(p, "cio_lock_release", &rc);
  if (!l) return rc;
  if (!l->locked) return cio__fail_static(-EPERM, "cio_lock_release: the lock is not acquired");
  lock_release(l);
  return 0;
}

bool cio_lock_locked(const cio_lock *p) {
  const struct lock *l = IMPL(const struct lock, p);
  return p && l->magic == LOCK_MAGIC && l->locked;
}

/* ---- Event ------------------------------------------------------------------------- */

static struct event *event_of(const cio_event *p, const char *who, int *rc) {
  struct event *e = IMPL(struct event, p);
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: event is NULL", who);
  else if (e->magic != EVENT_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized event", who);
  else
    return e;
  return NULL;
}

int cio_event_init(cio_event *p) {
  if (!p) return cio__fail(-EINVAL, "cio_event_init: event is NULL");
  struct event *e = IMPL(struct event, p);
  e->magic = EVENT_MAGIC;
  e->value = false;
  cio__waitq_init(&e->waiters);
  return 0;
}

int cio_event_destroy(cio_event *p) {
  int rc;
  struct event *e = event_of(p, "cio_event_destroy", &rc);
  if (!e) return rc;
  if (e->waiters.n) return cio__fail(-EBUSY, "cio_event_destroy: tasks are waiting on the event");
  e->magic = DEAD_MAGIC;
  return 0;
}

int cio_event_set(cio_event *p) {
  int rc;
  struct event *e = event_of(p, "cio_event_set", &rc);
  if (!e) return rc;
  if (!e->value) {
    e->value = true;
    cio__waitq_wake_all(&e->waiters, 0);
  }
  return 0;
}

int cio_event_clear(cio_event *p) {
  int rc;
  struct event *e = event_of(p, "cio_event_clear", &rc);
  if (!e) return rc;
  e->value = false;
  return 0;
}

bool cio_event_is_set(const cio_event *p) {
  const struct event *e = IMPL(const struct event, p);
  return p && e->magic == EVENT_MAGIC && e->value;
}

static int event_wait(cio_event *p, double timeout, bool timed, const char *who) {
  int rc;
  struct event *e = event_of(p, who, &rc);
  if (!e) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&e->waiters, NULL, who, &t)) < 0) return rc;
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  if (e->value) return 0;
  struct cio__waiter w;
  /* Woken then cancelled: -ECANCELED, and nothing to pass on (set() woke
   * every waiter). */
  return cio__waitq_wait(&e->waiters, &w, t, deadline);
}

int cio_event_wait(cio_event *p) { return event_wait(p, 0, false, "cio_event_wait"); }

int cio_event_wait_timeout(cio_event *p, double timeout) {
  return event_wait(p, timeout, true, "cio_event_wait_timeout");
}

/* ---- Condition ------------------------------------------------------------------------ */

static struct cond *cond_of(const cio_condition *p, const char *who, int *rc) {
  struct cond *c = IMPL(struct cond, p);
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: condition is NULL", who);
  else if (c->magic != COND_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized condition", who);
  else
    return c;
  return NULL;
}

static inline struct lock *cond_lock(struct cond *c) { return c->lock ? c->lock : &c->own_lock; }
static inline const struct lock *cond_lock_c(const struct cond *c) {
  return c->lock ? c->lock : &c->own_lock;
}

static void cond_init(struct cond *c, struct lock *given) {
  c->magic = COND_MAGIC;
  c->lock = given;
  lock_init(&c->own_lock);
  cio__waitq_init(&c->waiters);
}

int cio_condition_init(cio_condition *p, cio_lock *lock) {
  if (!p) return cio__fail(-EINVAL, "cio_condition_init: condition is NULL");
  struct lock *given = NULL;
  if (lock) {
    int rc;
    if (!(given = lock_of(lock, "cio_condition_init", &rc))) return rc;
  }
  cond_init(IMPL(struct cond, p), given);
  return 0;
}

int cio_condition_destroy(cio_condition *p) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_destroy", &rc);
  if (!c) return rc;
  if (c->waiters.n || (!c->lock && c->own_lock.waiters.n))
    return cio__fail(-EBUSY, "cio_condition_destroy: tasks are waiting on the condition");
  c->magic = DEAD_MAGIC;
  c->own_lock.magic = DEAD_MAGIC;
  return 0;
}

cio_lock *cio_condition_lock(cio_condition *p) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_lock", &rc);
  return c ? (cio_lock *)(void *)cond_lock(c) : NULL;
}

int cio_condition_acquire(cio_condition *p) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_acquire", &rc);
  return c ? lock_acquire_api((cio_lock *)(void *)cond_lock(c), 0, false, "cio_condition_acquire")
           : rc;
}

int cio_condition_acquire_timeout(cio_condition *p, double timeout) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_acquire_timeout", &rc);
  return c ? lock_acquire_api((cio_lock *)(void *)cond_lock(c), timeout, true,
                              "cio_condition_acquire_timeout")
           : rc;
}

int cio_condition_release(cio_condition *p) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_release", &rc);
  return c ? cio_lock_release((cio_lock *)(void *)cond_lock(c)) : rc;
}

bool cio_condition_locked(const cio_condition *p) {
  const struct cond *c = IMPL(const struct cond, p);
  return p && c->magic == COND_MAGIC && cond_lock_c(c)->locked;
}

/* Condition._notify: wake up to n waiters not yet woken. */
static int cond_notify(struct cond *c, int n) {
  int woken = 0;
  while (woken < n && cio__waitq_wake_first(&c->waiters, 0)) woken++;
  return woken;
}

/* Condition.wait for task t, the lock held (checks done). */
static int cond_wait(struct cond *c, struct cio_task *t, int64_t deadline) {
  struct lock *l = cond_lock(c);
  lock_release(l);
  struct cio__waiter w;
  int err = cio__waitq_wait(&c->waiters, &w, t, deadline);
  /* Re-acquire the lock whatever happened, through any number of
   * cancellations; the most recent cancellation is what we return. */
  for (;;) {
    int rc = lock_acquire(l, t, CIO__NO_DEADLINE); /* 0 or -ECANCELED: no deadline */
    if (rc == 0) break;
    err = rc;
  }
  if (err < 0) {
    /* We may have been notified just before the error: hand a notification
     * to another waiter (a spurious wake-up at worst). */
    cond_notify(c, 1);
    if (err == -ETIMEDOUT) return cio__fail_static(-ETIMEDOUT, "condition wait timed out");
    return err;
  }
  return 0;
}

/* The checks of wait and wait_for; the lock's check only if `need_lock`. */
static int cond_enter(cio_condition *p, const char *who, bool need_lock, struct cond **out,
                      struct cio_task **t) {
  int rc;
  struct cond *c = cond_of(p, who, &rc);
  if (!c) return rc;
  if ((rc = cio__waitq_enter(&c->waiters, &cond_lock(c)->waiters, who, t)) < 0) return rc;
  if (need_lock && !cond_lock(c)->locked)
    return cio__fail(-EPERM, "%s: the condition's lock is not acquired", who);
  *out = c;
  return 0;
}

static int cond_wait_api(cio_condition *p, double timeout, bool timed, const char *who) {
  struct cond *c;
  struct cio_task *t;
  int rc = cond_enter(p, who, true, &c, &t);
  if (rc < 0) return rc;
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  return cond_wait(c, t, deadline);
}

int cio_condition_wait(cio_condition *p) { return cond_wait_api(p, 0, false, "cio_condition_wait"); }

int cio_condition_wait_timeout(cio_condition *p, double timeout) {
  return cond_wait_api(p, timeout, true, "cio_condition_wait_timeout");
}

static int cond_wait_for(struct cond *c, struct cio_task *t, cio_predicate_fn pred, void *arg,
                         int64_t deadline) {
  while (!pred(arg)) {
    int rc = cond_wait(c, t, deadline);
    if (rc < 0) return rc;
  }
  return 0;
}

static int cond_wait_for_api(cio_condition *p, cio_predicate_fn pred, void *arg, double timeout,
                             bool timed, const char *who) {
  struct cond *c;
  struct cio_task *t;
  int rc = cond_enter(p, who, false, &c, &t);
  if (rc < 0) return rc;
  if (!pred) return cio__fail(-EINVAL, "%s: predicate is NULL", who);
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  /* asyncio checks the predicate before anything else: already true, it
   * returns at once, with or without the lock. */
  if (pred(arg)) return 0;
  if (!cond_lock(c)->locked) return cio__fail(-EPERM, "%s: the condition's lock is not acquired", who);
  do {
    if ((rc = cond_wait(c, t, deadline)) < 0) return rc;
  } while (!pred(arg));
  return 0;
}

int cio_condition_wait_for(cio_condition *p, cio_predicate_fn pred, void *arg) {
  return cond_wait_for_api(p, pred, arg, 0, false, "cio_condition_wait_for");
}

int cio_condition_wait_for_timeout(cio_condition *p, cio_predicate_fn pred, void *arg,
                                   double timeout) {
  return cond_wait_for_api(p, pred, arg, timeout, true, "cio_condition_wait_for_timeout");
}

int cio_condition_notify(cio_condition *p, int n) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_notify", &rc);
  if (!c) return rc;
  if (!cond_lock(c)->locked)
    return cio__fail_static(-EPERM, "cio_condition_notify: the condition's lock is not acquired");
  return cond_notify(c, n);
}

int cio_condition_notify_all(cio_condition *p) {
  int rc;
  struct cond *c = cond_of(p, "cio_condition_notify_all", &rc);
  if (!c) return rc;
  if (!cond_lock(c)->locked)
    return cio__fail_static(-EPERM,
                            "cio_condition_notify_all: the condition's lock is not acquired");
  return cond_notify(c, INT_MAX);
}

/* ---- Semaphore ------------------------------------------------------------------------ */

static struct sem *sem_of(const cio_semaphore *p, const char *who, int *rc) {
  struct sem *s = IMPL(struct sem, p);
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: semaphore is NULL", who);
  else if (s->magic != SEM_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized semaphore", who);
  else
    return s;
  return NULL;
}

static int sem_init(cio_semaphore *p, int value, bool bounded, const char *who) {
  if (!p) return cio__fail(-EINVAL, "%s: semaphore is NULL", who);
  if (value < 0) return cio__fail(-EINVAL, "%s: initial value %d is negative", who, value);
  struct sem *s = IMPL(struct sem, p);
  s->magic = SEM_MAGIC;
  s->bounded = bounded;
  s->value = value;
  s->bound = value;
  cio__waitq_init(&s->waiters);
  return 0;
}

int cio_semaphore_init(cio_semaphore *p, int value) {
  return sem_init(p, value, false, "cio_semaphore_init");
}

int cio_semaphore_init_bounded(cio_semaphore *p, int value) {
  return sem_init(p, value, true, "cio_semaphore_init_bounded");
}

int cio_semaphore_destroy(cio_semaphore *p) {
  int rc;
  struct sem *s = sem_of(p, "cio_semaphore_destroy", &rc);
  if (!s) return rc;
  if (s->waiters.n)
    return cio__fail(-EBUSY, "cio_semaphore_destroy: tasks are waiting on the semaphore");
  s->magic = DEAD_MAGIC;
  return 0;
}

/* Semaphore.locked: no unit, or a live waiter queued (FIFO: no barging). */
static bool sem_locked(const struct sem *s) {
  return s->value == 0 || cio__waitq_any_live(&s->waiters);
}

/* Semaphore._wake_up_next: hand a unit to the first pending waiter. */
static bool sem_wake_next(struct sem *s) {
  struct cio__waiter *w = cio__waitq_first_pending(&s->waiters);
  if (!w) return false;
  s->value--;
  cio__waiter_wake(w, 0);
  return true;
}

static int sem_acquire(struct sem *s, struct cio_task *t, int64_t deadline) {
  if (!sem_locked(s)) {
    s->value--;
    return 0;
  }
  struct cio__waiter w;
  int rc = cio__waitq_wait(&s->waiters, &w, t, deadline);
  if (rc < 0 && w.woken) s->value++; /* handed a unit, but we are not taking it */
  /* Waiters that queued behind us while units were free (FIFO) get them. */
  while (s->value > 0)
    if (!sem_wake_next(s)) break;
  return rc;
}

static int sem_acquire_api(cio_semaphore *p, double timeout, bool timed, const char *who) {
  int rc;
  struct sem *s = sem_of(p, who, &rc);
  if (!s) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&s->waiters, NULL, who, &t)) < 0) return rc;
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  return sem_acquire(s, t, deadline);
}

int cio_semaphore_acquire(cio_semaphore *p) {
  return sem_acquire_api(p, 0, false, "cio_semaphore_acquire");
}

int cio_semaphore_acquire_timeout(cio_semaphore *p, double timeout) {
  return sem_acquire_api(p, timeout, true, "cio_semaphore_acquire_timeout");
}

int cio_semaphore_try_acquire(cio_semaphore *p) {
  int rc;
  struct sem *s = sem_of(p, "cio_semaphore_try_acquire", &rc);
  if (!s) return rc;
  if (sem_locked(s))
    return cio__fail_static(-EBUSY, "cio_semaphore_try_acquire: no unit free, or waiters first");
  s->value--;
  return 0;
}

int cio_semaphore_release(cio_semaphore *p) {
  int rc;
  struct sem *s = sem_of(p, "cio_semaphore_release", &rc);
  if (!s) return rc;
  if (s->bounded && s->value >= s->bound)
    return cio__fail(-EOVERFLOW, "cio_semaphore_release: bounded semaphore released too many times");
  if (s->value == INT_MAX)
    return cio__fail_static(-EOVERFLOW, "cio_semaphore_release: value would exceed INT_MAX");
  s->value++;
  sem_wake_next(s);
  return 0;
}

bool cio_semaphore_locked(const cio_semaphore *p) {
  const struct sem *s = IMPL(const struct sem, p);
  return p && s->magic == SEM_MAGIC && sem_locked(s);
}

int cio_semaphore_value(const cio_semaphore *p) {
  int rc;
  struct sem *s = sem_of(p, "cio_semaphore_value", &rc);
  return s ? s->value : rc;
}

/* ---- Barrier ----------------------------------------------------------------------------
 * asyncio's Barrier, step for step: a Condition guards the state; wait() is
 * "block while draining/resetting, count in, trip or wait for the trip,
 * count out". */

static struct barrier *barrier_of(const cio_barrier *p, const char *who, int *rc) {
  struct barrier *b = IMPL(struct barrier, p);
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: barrier is NULL", who);
  else if (b->magic != BARRIER_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized barrier", who);
  else
    return b;
  return NULL;
}

int cio_barrier_init(cio_barrier *p, int parties) {
  if (!p) return cio__fail(-EINVAL, "cio_barrier_init: barrier is NULL");
  if (parties < 1) return cio__fail(-EINVAL, "cio_barrier_init: parties must be > 0 (got %d)", parties);
  struct barrier *b = IMPL(struct barrier, p);
  b->magic = BARRIER_MAGIC;
  b->parties = parties;
  b->count = 0;
  b->state = FILLING;
  cond_init(&b->cond, NULL);
  return 0;
}

int cio_barrier_destroy(cio_barrier *p) {
  int rc;
  struct barrier *b = barrier_of(p, "cio_barrier_destroy", &rc);
  if (!b) return rc;
  if (b->count || b->cond.waiters.n || b->cond.own_lock.waiters.n || b->cond.own_lock.locked)
    return cio__fail(-EBUSY, "cio_barrier_destroy: tasks are inside wait()");
  b->magic = DEAD_MAGIC;
  return 0;
}

static bool not_draining(void *arg) {
  struct barrier *b = arg;
  return b->state != DRAINING && b->state != RESETTING;
}

static bool not_filling(void *arg) { return ((struct barrier *)arg)->state != FILLING; }

/* Barrier._exit: the last task out ends the draining (or resetting). */
static void barrier_exit(struct barrier *b) {
  if (b->count == 0) {
    if (b->state == RESETTING || b->state == DRAINING) b->state = FILLING;
    cond_notify(&b->cond, INT_MAX);
  }
}

static int barrier_wait(cio_barrier *p, int *index, double timeout, bool timed, const char *who) {
  int rc;
  struct barrier *b = barrier_of(p, who, &rc);
  if (!b) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&b->cond.waiters, &b->cond.own_lock.waiters, who, &t)) < 0) return rc;
  int64_t deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, &deadline)) < 0) return rc;
  struct lock *l = &b->cond.own_lock;
  /* async with self._cond */
  if ((rc = lock_acquire(l, t, deadline)) < 0) return rc;
  /* _block(): wait while the barrier drains or resets. */
  rc = cond_wait_for(&b->cond, t, not_draining, b, deadline);
  if (rc == 0 && b->state == BROKEN) rc = cio__fail_static(CIO_EBROKENBARRIER, "barrier aborted");
  if (rc < 0) {
    lock_release(l);
    return rc;
  }
  int idx = b->count++;
  if (idx + 1 == b->parties) {
    /* _release(): trip. */
    b->state = DRAINING;
    cond_notify(&b->cond, INT_MAX);
  } else {
    /* _wait(): until the trip, a reset or an abort. */
    rc = cond_wait_for(&b->cond, t, not_filling, b, deadline);
    if (rc == 0 && (b->state == BROKEN || b->state == RESETTING))
      rc = cio__fail_static(CIO_EBROKENBARRIER, "barrier aborted or reset while waiting");
  }
  b->count--;
  barrier_exit(b);
  lock_release(l);
  if (rc < 0) return rc;
  if (index) *index = idx;
  return 0;
}

int cio_barrier_wait(cio_barrier *p, int *index) {
  return barrier_wait(p, index, 0, false, "cio_barrier_wait");
}

int cio_barrier_wait_timeout(cio_barrier *p, int *index, double timeout) {
  return barrier_wait(p, index, timeout, true, "cio_barrier_wait_timeout");
}

static int barrier_change(cio_barrier *p, bool abort, const char *who) {
  int rc;
  struct barrier *b = barrier_of(p, who, &rc);
  if (!b) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&b->cond.waiters, &b->cond.own_lock.waiters, who, &t)) < 0) return rc;
  struct lock *l = &b->cond.own_lock;
  if ((rc = lock_acquire(l, t, CIO__NO_DEADLINE)) < 0) return rc;
  if (abort)
    b->state = BROKEN;
  else if (b->count > 0)
    b->state = RESETTING;
  else
    b->state = FILLING;
  cond_notify(&b->cond, INT_MAX);
  lock_release(l);
  return 0;
}

int cio_barrier_reset(cio_barrier *p) { return barrier_change(p, false, "cio_barrier_reset"); }

int cio_barrier_abort(cio_barrier *p) { return barrier_change(p, true, "cio_barrier_abort"); }

int cio_barrier_parties(const cio_barrier *p) {
  int rc;
  struct barrier *b = barrier_of(p, "cio_barrier_parties", &rc);
  return b ? b->parties : rc;
}

int cio_barrier_n_waiting(const cio_barrier *p) {
  int rc;
  struct barrier *b = barrier_of(p, "cio_barrier_n_waiting", &rc);
  if (!b) return rc;
  return b->state == FILLING ? b->count : 0;
}

bool cio_barrier_broken(const cio_barrier *p) {
  const struct barrier *b = IMPL(const struct barrier, p);
  return p && b->magic == BARRIER_MAGIC && b->state == BROKEN;
}
