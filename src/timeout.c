/* Layer 6: timeout scopes and wait_for. See include/cio/group.h.
 *
 * A scope is asyncio's Timeout (Lib/asyncio/timeouts.py) with the same
 * states and the same hops: the deadline is a timer whose callback cancels
 * the task (a deadline already passed is a call_soon), and the exit withdraws
 * that one request with uncancel() and turns the -ECANCELED into -ETIMEDOUT
 * only if no other request remains beyond those the task had at entry. The
 * scope lives in caller storage; its timer node is inside it. */
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "cio/group.h"
#include "task.h"

#undef cio_wait_for

enum { TO_CREATED, TO_ENTERED, TO_EXPIRING, TO_EXPIRED, TO_EXITED };

#define TO_MAGIC 0x74696d65u
#define NO_DEADLINE INT64_MAX

struct timeout_impl {
  uint32_t magic;
  uint8_t state;
  /* A cancellation was requested and not yet delivered when the scope was
   * entered (cpython#134471): until it is delivered, the deadline does not
   * add its own request, which would be merged into the same delivery. */
  bool pending_at_entry;
  int cancelling; /* the task's cancelling() at entry */
  struct cio_task *task;
  cio_loop *loop;
  int64_t when; /* ns on the loop clock, NO_DEADLINE for none */
  double when_s; /* the deadline as given (when()): may be in the past */
  struct cio__timer timer;
};

_Static_assert(sizeof(struct timeout_impl) <= sizeof(cio_timeout),
               "cio_timeout is too small for struct timeout_impl");
_Static_assert(alignof(struct timeout_impl) <= alignof(cio_timeout),
               "cio_timeout is not aligned enough for struct timeout_impl");

static inline struct timeout_impl *impl(cio_timeout *to) { return (struct timeout_impl *)to; }
static inline const struct timeout_impl *cimpl(const cio_timeout *to) {
  return (const struct timeout_impl *)to;
}

static bool active(const struct timeout_impl *to) {
  return to->magic == TO_MAGIC && (to->state == TO_ENTERED || to->state == TO_EXPIRING);
}

/* A request made before the deadline fired and not yet delivered to the
 * task's body: either still armed (must_cancel) or already delivered to the
 * future the task waits on, which has not resumed it yet. */
static bool cancel_in_flight(const struct cio_task *t) {
  if (t->cancel_requests == 0) return false;
  if (t->must_cancel) return true;
  return t->tstate == CIO__T_SUSPENDED && t->waiting_on && t->waiting_on->state == CIO__CANCELLED;
}

static void fire(struct cio__cb *cb) {
  struct timeout_impl *to = CIO__CONTAINER_OF(cb, struct timeout_impl, timer.cb);
  to->timer.slot = CIO__TIMER_IDLE;
  if (to->magic != TO_MAGIC || to->state != TO_ENTERED) return;
  if (to->pending_at_entry) {
    if (cancel_in_flight(to->task)) {
      /* Let the earlier request be delivered alone; try again next
       * iteration (the deadline has passed, so this stays a call_soon). */
      to->timer.slot = CIO__TIMER_QUEUED;
      cio__loop_push(to->loop, &to->timer.cb);
      return;
    }
    to->pending_at_entry = false;
  }
  cio_task_cancel(to->task, NULL);
  to->state = TO_EXPIRING;
}

/* Deadline from seconds: +inf = none; NaN is the caller's to refuse. */
static int64_t deadline_at(double when) {
  if (isinf(when) && when > 0) return NO_DEADLINE;
  if (!(when > 0)) return 0;
  return cio__seconds_to_ns(when);
}

static int arm(struct timeout_impl *to, int64_t when, double when_s) {
  cio__timer_stop(to->loop, &to->timer);
  to->when = when;
  to->when_s = when_s;
  if (when == NO_DEADLINE) return 0;
  if (when <= cio__loop_now(to->loop)) {
    /* asyncio: call_soon(_on_timeout), never inline. */
    to->timer.slot = CIO__TIMER_QUEUED;
    cio__loop_push(to->loop, &to->timer.cb);
    return 0;
  }
  return cio__timer_arm(to->loop, &to->timer, when);
}

static int enter(cio_timeout *pub, bool relative, double arg, const char *who) {
  if (!pub) return cio__fail(-EINVAL, "%s: timeout is NULL", who);
  if (isnan(arg)) return cio__fail(-EINVAL, "%s: the %s is NaN", who,
                                   strcmp(who, "cio_timeout_enter") == 0 ? "delay" : "deadline");
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  struct timeout_impl *to = impl(pub);
  if (active(to)) return cio__fail(CIO_EINVALSTATE, "%s: this timeout scope is already active", who);
  memset(to, 0, sizeof *to);
  to->magic = TO_MAGIC;
  to->task = t;
  to->loop = t->fut.loop;
  to->cancelling = t->cancel_requests;
  to->pending_at_entry = t->must_cancel;
  cio__timer_init(&to->timer, fire);
  to->state = TO_ENTERED;
  to->when = NO_DEADLINE;
  /* asyncio keeps the deadline as given, also one in the past: when() of
   * timeout(-11) at t = 0 is -11. */
  int64_t when = deadline_at(arg);
  double when_s = arg;
  if (relative) {
    int64_t now = cio__loop_now(to->loop);
    when = isinf(arg) && arg > 0 ? NO_DEADLINE : now + cio__seconds_to_ns(arg);
    when_s = (double)now / 1e9 + arg;
  }
  int rc = arm(to, when, when_s);
  if (rc < 0) to->state = TO_EXITED;
  return rc;
}

int cio_timeout_enter(cio_timeout *to, double delay) {
  return enter(to, true, delay, "cio_timeout_enter");
}

int cio_timeout_enter_at(cio_timeout *to, double when) {
  return enter(to, false, when, "cio_timeout_enter_at");
}

void cio_timeout_init(cio_timeout *to) {
  if (to) memset(to, 0, sizeof *to);
}

int cio_timeout_exit(cio_timeout *pub, int body_rc) {
  if (!pub) return cio__fail(-EINVAL, "cio_timeout_exit: timeout is NULL");
  struct timeout_impl *to = impl(pub);
  if (!active(to))
    return cio__fail(CIO_EINVALSTATE, "cio_timeout_exit: the timeout scope is not active");
  if (cio__current() != to->task)
    return cio__fail(CIO_EINVALSTATE,
                     "cio_timeout_exit: must be called by the task that entered the scope");
  cio__timer_stop(to->loop, &to->timer);
  if (to->state == TO_ENTERED) {
    to->state = TO_EXITED;
    return body_rc;
  }
  to->state = TO_EXPIRED;
  if (cio_task_uncancel(to->task) > to->cancelling || body_rc >= 0) return body_rc;
  if (body_rc == -ECANCELED) return cio__fail_static(-ETIMEDOUT, "the timeout expired");
  /* Another error ended the block while it was being cancelled: it stands
   * (asyncio 3.13 chains a TimeoutError into its context). */
  if (cio_errcode() == body_rc)
    return cio__fail(body_rc, "%s (while a timeout expired)", cio_errmsg());
  return cio__fail(body_rc, "%s (while a timeout expired)", cio_strerror(body_rc));
}

int cio_timeout_reschedule(cio_timeout *pub, double when) {
  if (!pub) return cio__fail(-EINVAL, "cio_timeout_reschedule: timeout is NULL");
  if (isnan(when)) return cio__fail(-EINVAL, "cio_timeout_reschedule: the deadline is NaN");
  struct timeout_impl *to = impl(pub);
  if (to->magic != TO_MAGIC || to->state == TO_CREATED)
    return cio__fail(CIO_EINVALSTATE, "cio_timeout_reschedule: the timeout has not been entered");
  if (to->state != TO_ENTERED)
    return cio__fail(CIO_EINVALSTATE, "cio_timeout_reschedule: cannot change the deadline of %s "
                                      "timeout", to->state == TO_EXITED ? "a finished" :
                                      to->state == TO_EXPIRING ? "an expiring" : "an expired");
  if (cio__running_loop != to->loop)
    return cio__fail(CIO_EWRONGLOOP, "cio_timeout_reschedule: not called from the scope's loop");
  return arm(to, deadline_at(when), when);
}

double cio_timeout_when(const cio_timeout *pub) {
  if (!pub) return CIO_NO_TIMEOUT;
  const struct timeout_impl *to = cimpl(pub);
  if (to->magic != TO_MAGIC || to->state == TO_CREATED || to->when == NO_DEADLINE)
    return CIO_NO_TIMEOUT;
  return to->when_s;
}

bool cio_timeout_expired(const cio_timeout *pub) {
  if (!pub) return false;
  const struct timeout_impl *to = cimpl(pub);
  return to->magic == TO_MAGIC && (to->state == TO_EXPIRING || to->state == TO_EXPIRED);
}

/* ---- wait_for --------------------------------------------------------------------- */

/* A done callback of fut that completes the waiter (asyncio's
 * _release_waiter), living in _cancel_and_wait's frame. */
struct release {
  struct cio__cb cb;
  struct cio_future *waiter;
};

static void release_run(struct cio__cb *cb) {
  struct release *r = (struct release *)cb;
  r->cb.run = NULL; /* ran */
  if (r->waiter->state == CIO__PENDING)
    cio__future_complete(r->waiter, CIO__RESULT, 0, NULL, NULL, false);
}

/* asyncio's _cancel_and_wait: cancel fut and wait until it is done, through
 * a waiter of our own so that this wait itself stays cancellable. */
static int cancel_and_wait(struct cio_task *t, struct cio_future *fut) {
  cio_loop *loop = t->fut.loop;
  struct cio_future waiter;
  cio__future_init(&waiter, loop, CIO__F_LOCAL);
  struct release r = {.cb.run = release_run, .waiter = &waiter};
  cio_future_ref(fut);
  cio__future_add_waiter(fut, &r.cb);
  cio_future_cancel(fut, NULL);
  int rc = cio__task_await(t, &waiter, NULL);
  if (r.cb.run) { /* not run: still waiting on fut, or queued */
    if (!cio__future_remove_waiter(fut, &r.cb)) cio__loop_unqueue(loop, &r.cb);
  }
  cio_future_unref(fut);
  cio__future_finalize(&waiter, NULL);
  return rc;
}

static int wait_for_checks(struct cio_future *fut, double timeout, struct cio_task **out) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "cio_wait_for: must be called from inside a task");
  if (!fut) return cio__fail(-EINVAL, "cio_wait_for: future is NULL");
  if (!cio__future_ok(fut)) return cio__fail(-EINVAL, "cio_wait_for: not a live future or task");
  if (fut->loop != t->fut.loop)
    return cio__fail(CIO_EWRONGLOOP, "cio_wait_for: the future belongs to another event loop");
  if (fut == &t->fut)
    return cio__fail(CIO_ESELF, "cio_wait_for: task '%s' cannot wait for itself",
                     cio_task_get_name(t));
  if (isnan(timeout)) return cio__fail(-EINVAL, "cio_wait_for: timeout is NaN");
  *out = t;
  return 0;
}

/* The timeout <= 0 branch: the outcome if done, else cancel, wait, and a
 * cancelled outcome becomes -ETIMEDOUT. */
static int expired_now(struct cio_task *t, struct cio_future *fut, void **result) {
  if (fut->state != CIO__PENDING) return cio__future_outcome(fut, result);
  int rc = cancel_and_wait(t, fut);
  if (rc < 0) return rc;
  rc = cio__future_outcome(fut, result);
  if (rc == -ECANCELED) return cio__fail_static(-ETIMEDOUT, "cio_wait_for: timed out");
  return rc;
}

int cio_wait_for(cio_future *fut, double timeout, void **result) {
  struct cio_task *t = NULL;
  int rc = wait_for_checks(fut, timeout, &t);
  if (rc < 0) return rc;
  if (isinf(timeout) && timeout > 0) return cio__task_await(t, fut, result);
  if (timeout <= 0) return expired_now(t, fut, result);
  cio_timeout to = CIO_TIMEOUT_INIT;
  rc = cio_timeout_enter(&to, timeout);
  if (rc < 0) return rc;
  rc = cio__task_await(t, fut, result);
  return cio_timeout_exit(&to, rc);
}

int cio_wait_for_call(cio_task_fn fn, void *arg, double timeout, void **result) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "cio_wait_for_call: must be called from inside a task");
  if (!fn) return cio__fail(-EINVAL, "cio_wait_for_call: function is NULL");
  if (isnan(timeout)) return cio__fail(-EINVAL, "cio_wait_for_call: timeout is NaN");
  if (timeout <= 0) {
    /* asyncio wraps the coroutine in a task (ensure_future) and cancels it
     * before it ever runs. */
    cio_task *task = cio_loop_create_task(t->fut.loop, fn, arg, NULL);
    if (!task) return cio_errcode();
    int rc = expired_now(t, &task->fut, result);
    cio_task_unref(task);
    return rc;
  }
  void *res = NULL;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc = cio_timeout_enter(&to, timeout);
  if (rc < 0) return rc;
  rc = fn(arg, &res);
  rc = cio_timeout_exit(&to, rc);
  if (rc >= 0 && result) *result = res;
  return rc;
}
