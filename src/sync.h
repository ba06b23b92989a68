/* Layer 7: the wait queue shared by every sync primitive and queue.
 *
 * A waiter is a record in the waiting task's own frame: a frame-local future
 * (CIO__F_LOCAL), an optional deadline timer, and the links of a FIFO list.
 * The task suspends on the future; a waker completes it (the task then runs
 * one iteration later: call_soon semantics, as asyncio's fut.set_result), the
 * deadline timer completes it too (marked timed out), and cancelling the task
 * cancels it. Whichever comes first decides: once a waiter has been woken its
 * deadline no longer matters, and once it has timed out no waker can pick it.
 *
 * As in CPython's locks.py and queues.py, a waiter stays in its list until
 * its own task resumes and unlinks it: a woken or cancelled waiter that has
 * not run yet is still visible to the primitive (CPython's `fut.done()`
 * entries), which is what the primitives' fairness rules look at. A task
 * whose wake-up arrived and was then cancelled gets -ECANCELED with
 * `woken` set, and the primitive passes the wake-up on.
 *
 * Nothing here allocates, except arming a deadline timer when the loop's
 * timer heap has to grow (-ENOMEM). */
#ifndef CIO_SYNC_INTERNAL_H
#define CIO_SYNC_INTERNAL_H

#include "cio/sync.h"
#include "task.h"

/* No deadline. */
#define CIO__NO_DEADLINE INT64_MAX

struct cio__waiter {
  struct cio__waiter *prev, *next;
  struct cio_future fut;   /* RESULT: woken or timed out; CANCELLED: task cancelled */
  struct cio__timer timer; /* armed only with a deadline */
  int token;               /* what the waker handed over (the primitive's meaning) */
  bool woken;              /* a waker picked this waiter */
  bool timed_out;          /* the deadline picked it first */
};

struct cio__waitq {
  struct cio__waiter *head, *tail;
  /* Every waiter before `scan` is no longer pending (NULL: no such hint), so
   * a burst of wake-ups does not rescan the woken ones still linked. */
  struct cio__waiter *scan;
  size_t n; /* linked waiters, in any state */
};

static inline void cio__waitq_init(struct cio__waitq *q) {
  q->head = q->tail = q->scan = NULL;
  q->n = 0;
}

/* Still waiting: neither woken, timed out nor cancelled. */
static inline bool cio__waiter_pending(const struct cio__waiter *w) {
  return w->fut.state == CIO__PENDING;
}

/* Gone without a wake-up: cancelled or timed out, not yet resumed (asyncio's
 * `fut.cancelled()`: a timeout scope cancels the future). */
static inline bool cio__waiter_abandoned(const struct cio__waiter *w) {
  return w->fut.state == CIO__CANCELLED || w->timed_out;
}

/* Pick w (which must be pending): record token, complete its future. The
 * waiting task runs on the next iteration. */
void cio__waiter_wake(struct cio__waiter *w, int token);

/* The first linked waiter still pending, or NULL. */
struct cio__waiter *cio__waitq_first_pending(struct cio__waitq *q);

/* Wake the first pending waiter with token; returns it, or NULL if none. */
struct cio__waiter *cio__waitq_wake_first(struct cio__waitq *q, int token);

/* Wake every pending waiter with token, in order; returns how many. */
size_t cio__waitq_wake_all(struct cio__waitq *q, int token);

/* Whether any linked waiter is neither cancelled nor timed out. */
bool cio__waitq_any_live(const struct cio__waitq *q);

/* The loop the linked waiters belong to (NULL when the list is empty). */
static inline cio_loop *cio__waitq_loop(const struct cio__waitq *q) {
  return q->head ? q->head->fut.loop : NULL;
}

/* Append w to q and suspend task t (the current task) until w is woken,
 * times out at `deadline` (loop ns; CIO__NO_DEADLINE for none) or t is
 * cancelled. On return w is unlinked and its future finalized. Returns 0
 * (woken: w->token tells by what), -ETIMEDOUT, -ECANCELED (w->woken tells
 * whether a wake-up was lost with it: pass it on), -ENOMEM (timer heap). */
int cio__waitq_wait(struct cio__waitq *q, struct cio__waiter *w, struct cio_task *t,
                    int64_t deadline);

/* Checks shared by the suspending entry points: the current task (or
 * CIO_ENOTASK), and that the waiters already queued belong to its loop (or
 * CIO_EWRONGLOOP). q2 may be NULL. */
int cio__waitq_enter(const struct cio__waitq *q, const struct cio__waitq *q2, const char *who,
                     struct cio_task **out);

/* Absolute deadline (loop ns) `timeout` seconds from now: NaN -> -EINVAL,
 * +inf -> CIO__NO_DEADLINE, <= 0 -> now. */
int cio__deadline(cio_loop *loop, double timeout, const char *who, int64_t *out);

#endif
