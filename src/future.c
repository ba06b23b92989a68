/* Layer 4: futures. See include/cio/future.h. */
#include "future.h"
#include "debug.h"
#include "cio/task.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void (*cio__task_free_hook)(struct cio_future *f);

/* A user's done callback: holds a reference on the future while it is
 * scheduled. */
struct done_record {
  struct cio__cb cb;
  cio_done_fn fn;
  void *arg;
  struct cio_future *fut;
};

static void done_record_run(struct cio__cb *cb) {
  struct done_record *r = (struct done_record *)cb;
  r->fn(r->fut, r->arg);
  cio_future_unref(r->fut);
  free(r);
}

static void done_record_discard(struct cio__cb *cb) {
  struct done_record *r = (struct done_record *)cb;
  cio_future_unref(r->fut);
  free(r);
}

/* ---- the waiter list ------------------------------------------------------------ */

static void append(struct cio_future *f, struct cio__cb *cb) {
  struct cio__cb *tail = f->waiters_tail;
  if (tail) {
    cb->next = tail->next;
    tail->next = cb;
  } else {
    cb->next = cb;
  }
  f->waiters_tail = cb;
}

/* Unlink every waiter: the head of a NULL-terminated list, *tail its last. */
static struct cio__cb *take_all(struct cio_future *f, struct cio__cb **tail) {
  struct cio__cb *t = f->waiters_tail;
  *tail = t;
  if (!t) return NULL;
  struct cio__cb *head = t->next;
  t->next = NULL;
  f->waiters_tail = NULL;
  return head;
}

void cio__future_init(struct cio_future *f, cio_loop *loop, unsigned flags) {
  f->magic = CIO__FUT_MAGIC;
  f->state = CIO__PENDING;
  f->flags = (uint8_t)flags;
  f->refs = 1;
  f->code = 0;
  f->loop = loop;
  f->result = NULL;
  f->msg = NULL;
  f->waiters_tail = NULL;
}

/* Futures come from the loop's slab: no malloc, and a released future keeps
 * its dead magic until reused. The free-list link takes the `result` word. */
static struct cio_future *future_alloc(cio_loop *loop) {
  if (!loop->future_slab.size)
    cio__slab_init(&loop->future_slab, sizeof(struct cio_future), offsetof(struct cio_future, result));
  return cio__slab_alloc(&loop->future_slab);
}

cio_future *cio_future_new(cio_loop *loop) {
  if (cio__loop_check(loop, "cio_future_new") < 0) return NULL;
  struct cio_future *f = future_alloc(loop);
  if (!f) {
    cio__fail_static(-ENOMEM, "cio_future_new: out of memory");
    return NULL;
  }
  cio__future_init(f, loop, 0);
  cio__loop_ref(loop);
  if (CIO__UNLIKELY(loop->debug)) cio__debug_future_created(loop, f); /* debug.c */
  return f;
}

cio_future *cio_future_ref(cio_future *f) {
  if (cio__future_ok(f) && !(f->flags & CIO__F_LOCAL)) f->refs++;
  return f;
}

void cio__future_finalize(struct cio_future *f, cio_task *as_task) {
  if (f->state == CIO__ERROR && !(f->flags & CIO__F_RETRIEVED) && f->loop) {
    char msg[256];
    if (as_task)
      snprintf(msg, sizeof msg, "Task exception was never retrieved (task '%s')",
               cio_task_get_name(as_task));
    else
      snprintf(msg, sizeof msg, "Future exception was never retrieved");
    cio_exception_context ctx = {.message = msg, .code = f->code, .error = f->msg,
                                 .task = as_task, .future = f};
    cio_loop_call_exception_handler(f->loop, &ctx);
  }
  /* Done callbacks never scheduled (the future never completed) hold no
   * reference: drop their records. */
  struct cio__cb *tail, *cb = take_all(f, &tail);
  while (cb) {
    struct cio__cb *next = cb->next;
    if (cb->run == done_record_run) free(cb);
    cb = next;
  }
  if (f->flags & CIO__F_MSG_OWNED) free((void *)f->msg);
  f->msg = NULL;
  f->magic = CIO__FUT_DEAD;
}

int cio_future_unref(cio_future *f) {
  if (!f) return cio__fail(-EINVAL, "cio_future_unref: future is NULL");
  if (f->magic != CIO__FUT_MAGIC)
    return cio__fail(CIO_EDOUBLEFREE, "cio_future_unref: future released more times than referenced");
  if (f->flags & CIO__F_LOCAL) return 0;
  if ((f->flags & CIO__F_LOOPREF) && f->refs <= 1)
    return cio__fail(CIO_EDOUBLEFREE, "cio_task_unref: the task is still pending and was released "
                                      "more times than referenced (unref after detach?)");
  if (--f->refs > 0) return 0;
  if (f->flags & CIO__F_TASK) {
    cio__task_free_hook(f);
    return 0;
  }
  cio_loop *loop = f->loop;
  cio__future_finalize(f, NULL);
  if (CIO__UNLIKELY(loop->debug)) cio__debug_future_freed(loop, f); /* debug.c */
  cio__slab_free(&loop->future_slab, f);
  cio__loop_unref(loop);
  return 0;
}

void cio__future_complete(struct cio_future *f, int state, int code, void *result,
                          const char *msg, bool owned) {
  f->state = (uint8_t)state;
  f->code = code;
  f->result = result;
  f->msg = msg;
  if (owned) f->flags |= CIO__F_MSG_OWNED;
  struct cio__cb *tail, *head = take_all(f, &tail);
  if (!head) return;
  for (struct cio__cb *cb = head; cb; cb = cb->next)
    if (cb->run == done_record_run) f->refs++;
  if (f->loop->closed) {
    /* Nothing will run any more: drop instead of scheduling. */
    while (head) {
      struct cio__cb *next = head->next;
      if (head->run == done_record_run) done_record_discard(head);
      head = next;
    }
    return;
  }
  cio__queue_splice(&f->loop->ready, head, &tail->next);
}

void cio__future_add_waiter(struct cio_future *f, struct cio__cb *cb) {
  if (f->state != CIO__PENDING) {
    cio__loop_push(f->loop, cb);
    return;
  }
  append(f, cb);
}

bool cio__future_remove_waiter(struct cio_future *f, struct cio__cb *cb) {
  struct cio__cb *tail = f->waiters_tail;
  if (!tail) return false;
  struct cio__cb *prev = tail;
  do {
    struct cio__cb *cur = prev->next;
    if (cur == cb) {
      if (cur == prev)
        f->waiters_tail = NULL; /* it was the only one */
      else {
        prev->next = cur->next;
        if (cur == tail) f->waiters_tail = prev;
      }
      return true;
    }
    prev = cur;
  } while (prev != tail);
  return false;
}

static int check(const cio_future *f, const char *who) {
  if (!f) return cio__fail(-EINVAL, "%s: future is NULL", who);
  if (f->magic != CIO__FUT_MAGIC) return cio__fail(-EINVAL, "%s: not a live future", who);
  return 0;
}

int cio_future_set_result(cio_future *f, void *result) {
  int rc = check(f, "cio_future_set_result");
  if (rc < 0) return rc;
  if (CIO__UNLIKELY(f->loop->debug) && (rc = cio__debug_check_thread(f->loop, "cio_future_set_result")) < 0)
    return rc; /* debug.c */
  if (f->flags & CIO__F_TASK)
    return cio__fail(-EPERM, "cio_future_set_result: a task is completed by its own body");
  if (f->state != CIO__PENDING)
    return cio__fail(CIO_EINVALSTATE, "cio_future_set_result: the future is already done");
  cio__future_complete(f, CIO__RESULT, 0, result, NULL, false);
  return 0;
}

int cio_future_set_error(cio_future *f, int code, const char *fmt, ...) {
  int rc = check(f, "cio_future_set_error");
  if (rc < 0) return rc;
  if (CIO__UNLIKELY(f->loop->debug) && (rc = cio__debug_check_thread(f->loop, "cio_future_set_error")) < 0)
    return rc; /* debug.c */
  if (f->flags & CIO__F_TASK)
    return cio__fail(-EPERM, "cio_future_set_error: a task is completed by its own body");
  if (code >= 0 || code == -ECANCELED)
    return cio__fail(-EINVAL, "cio_future_set_error: code %d is not an error (use cio_future_cancel "
                              "to cancel)", code);
  if (f->state != CIO__PENDING)
    return cio__fail(CIO_EINVALSTATE, "cio_future_set_error: the future is already done");
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
  }
  cio__future_complete(f, CIO__ERROR, code, NULL, msg, msg != NULL);
  return 0;
}

int cio__future_cancel_plain(struct cio_future *f, const char *msg) {
  if (f->state != CIO__PENDING) return 0;
  char *copy = msg ? strdup(msg) : NULL;
  cio__future_complete(f, CIO__CANCELLED, -ECANCELED, NULL, copy, copy != NULL);
  return 1;
}

int cio_future_cancel(cio_future *f, const char *msg) {
  int rc = check(f, "cio_future_cancel");
  if (rc < 0) return rc;
  if (CIO__UNLIKELY(f->loop->debug) && (rc = cio__debug_check_thread(f->loop, "cio_future_cancel")) < 0)
    return rc; /* debug.c */
  if (f->flags & CIO__F_TASK) return cio_task_cancel(cio_future_task(f), msg);
  if ((f->flags & CIO__F_HOOKED) && f->state == CIO__PENDING)
    return ((struct cio__hooked_future *)f)->cancel((struct cio__hooked_future *)f, msg);
  return cio__future_cancel_plain(f, msg);
}

bool cio_future_done(const cio_future *f) { return cio__future_ok(f) && f->state != CIO__PENDING; }
bool cio_future_cancelled(const cio_future *f) {
  return cio__future_ok(f) && f->state == CIO__CANCELLED;
}

int cio__future_outcome(struct cio_future *f, void **result) {
  switch (f->state) {
  case CIO__RESULT:
    if (result) *result = f->result;
    return f->code;
  case CIO__ERROR:
    f->flags |= CIO__F_RETRIEVED;
    return f->msg ? cio__fail_copy(f->code, f->msg) : cio__fail_static(f->code, NULL);
  case CIO__CANCELLED:
    return f->msg ? cio__fail_copy(-ECANCELED, f->msg) : cio__fail_static(-ECANCELED, NULL);
  default:
    return cio__fail_static(CIO_EINVALSTATE, "the future is not done yet");
  }
}

int cio_future_result(cio_future *f, void **result) {
  int rc = check(f, "cio_future_result");
  if (rc < 0) return rc;
  return cio__future_outcome(f, result);
}

int cio_future_error(cio_future *f) {
  int rc = check(f, "cio_future_error");
  if (rc < 0) return rc;
  if (f->state == CIO__PENDING)
    return cio__fail_static(CIO_EINVALSTATE, "cio_future_error: the future is not done yet");
  if (f->state == CIO__ERROR) f->flags |= CIO__F_RETRIEVED;
  return f->state == CIO__RESULT ? 0 : f->code;
}

const char *cio_future_error_message(const cio_future *f) {
  return cio__future_ok(f) && f->state != CIO__PENDING ? f->msg : NULL;
}

int cio_future_add_done_callback(cio_future *f, cio_done_fn fn, void *arg) {
  int rc = check(f, "cio_future_add_done_callback");
  if (rc < 0) return rc;
  if (!fn) return cio__fail(-EINVAL, "cio_future_add_done_callback: callback is NULL");
  if (f->loop->closed && f->state != CIO__PENDING)
    return cio__fail(CIO_ECLOSED, "cio_future_add_done_callback: the event loop is closed");
  struct done_record *r = malloc(sizeof *r);
  if (!r) return cio__fail(-ENOMEM, "cio_future_add_done_callback: out of memory");
  r->cb.run = done_record_run;
  r->fn = fn;
  r->arg = arg;
  r->fut = f;
  if (f->state != CIO__PENDING) f->refs++;
  cio__future_add_waiter(f, &r->cb);
  return 0;
}

int cio_future_remove_done_callback(cio_future *f, cio_done_fn fn, void *arg) {
  int rc = check(f, "cio_future_remove_done_callback");
  if (rc < 0) return rc;
  int removed = 0;
  struct cio__cb *tail, *cb = take_all(f, &tail);
  while (cb) {
    struct cio__cb *next = cb->next;
    struct done_record *r = (struct done_record *)cb;
    if (cb->run == done_record_run && r->fn == fn && r->arg == arg) {
      free(r);
      removed++;
    } else {
      append(f, cb);
    }
    cb = next;
  }
  return removed;
}

cio_loop *cio_future_get_loop(const cio_future *f) { return cio__future_ok(f) ? f->loop : NULL; }

/* ---- run_until_complete --------------------------------------------------------- */

struct stopper {
  struct cio__cb cb;
  cio_loop *loop;
};

static void stopper_run(struct cio__cb *cb) { ((struct stopper *)cb)->loop->stopping = true; }

int cio_loop_run_until_complete(cio_loop *loop, cio_future *f) {
  int rc = cio__loop_check(loop, "cio_loop_run_until_complete");
  if (rc < 0) return rc;
  rc = check(f, "cio_loop_run_until_complete");
  if (rc < 0) return rc;
  if (f->loop != loop)
    return cio__fail(CIO_EWRONGLOOP, "cio_loop_run_until_complete: the future belongs to another loop");
  if (loop->running || cio__running_loop)
    return cio__fail(CIO_ERUNNING, "cio_loop_run_until_complete: an event loop is already running");
  /* As asyncio: a done callback stops the loop, so the batch that completes
   * the future finishes, and so does the one after it. */
  struct stopper s = {.cb.run = stopper_run, .loop = loop};
  cio_future_ref(f);
  cio__future_add_waiter(f, &s.cb);
  rc = cio__loop_run_until(loop, NULL, NULL);
  /* Leaving early (deadlock, or stopped in the batch that completed f) can
   * leave the stopper linked: it lives in this frame, take it out. */
  if (!cio__future_remove_waiter(f, &s.cb)) cio__loop_unqueue(loop, &s.cb);
  int state = f->state;
  cio_future_unref(f);
  if (rc < 0) return rc;
  if (state == CIO__PENDING)
    return cio__fail(CIO_EINVALSTATE, "the event loop stopped before the future completed");
  return 0;
}

__attribute__((constructor)) static void register_discards(void) {
  cio__cb_discard_register(done_record_run, done_record_discard);
}
