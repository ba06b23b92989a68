/* Layer 4: futures (internal view). A future's waiters are ready-queue nodes
 * linked in registration order (a circular list: the future keeps only the
 * tail, whose next is the head); completing the future splices them into the
 * loop's ready queue in one step (call_soon semantics, never run inline). */
#ifndef CIO_FUTURE_INTERNAL_H
#define CIO_FUTURE_INTERNAL_H

#include "cio/future.h"
#include "loop.h"

enum { CIO__PENDING, CIO__RESULT, CIO__ERROR, CIO__CANCELLED };

#define CIO__F_TASK 1u      /* this future is the head of a cio_task */
#define CIO__F_LOCAL 2u     /* lives in a task's frame: no refcount, no loop ref */
#define CIO__F_RETRIEVED 4u /* its error was read */
#define CIO__F_MSG_OWNED 8u
#define CIO__F_HOOKED 16u   /* a struct cio__hooked_future: cancel goes through its hook */
#define CIO__F_LOOPREF 32u  /* a task the loop still holds (not done): one of refs is the
                               loop's, so a release that would take refs to 0 is refused */

#define CIO__FUT_MAGIC 0x66757475u
#define CIO__FUT_DEAD 0xdeadf007u

struct cio_future {
  uint32_t magic;
  uint8_t state;
  uint8_t flags;
  int32_t refs;
  int code;       /* state ERROR/CANCELLED: the code; RESULT: the body's value (>= 0) */
  cio_loop *loop;
  void *result;
  const char *msg; /* error or cancel message, NULL = the code's description */
  struct cio__cb *waiters_tail; /* circular; NULL when none */
};

void cio__future_init(struct cio_future *f, cio_loop *loop, unsigned flags);

/* A future whose cancel() is overridden, as a Python subclass of Future
 * overrides it (asyncio's _GatheringFuture cancels its children instead of
 * itself). Flag CIO__F_HOOKED; cio_future_cancel() — and so the cancellation
 * of a task suspended on it — calls `cancel` and returns what it returns (1
 * if a cancellation was requested, 0 if not). */
struct cio__hooked_future {
  struct cio_future fut; /* first */
  int (*cancel)(struct cio__hooked_future *hf, const char *msg);
};

static inline bool cio__future_ok(const struct cio_future *f) {
  return f && f->magic == CIO__FUT_MAGIC;
}

/* Complete a pending future: state, code, result and message (taken over if
 * owned). Schedules the waiters. */
void cio__future_complete(struct cio_future *f, int state, int code, void *result,
                          const char *msg, bool owned);

/* Cancel a plain (non-task) future; returns 1 if it was pending. msg copied. */
int cio__future_cancel_plain(struct cio_future *f, const char *msg);

/* Wait for f: cb is pushed to the ready queue when f completes (at once if
 * it is done). */
void cio__future_add_waiter(struct cio_future *f, struct cio__cb *cb);

/* Unlink cb if it is still waiting on f; returns whether it was. */
bool cio__future_remove_waiter(struct cio_future *f, struct cio__cb *cb);

/* The outcome, for an awaiter: the non-negative value (0 for a plain future,
 * a task body's return value) with *result, or the code with the message
 * recorded as the current task's last error. Marks an error retrieved. */
int cio__future_outcome(struct cio_future *f, void **result);

/* Release what a future holds (message, callback records); used by free
 * paths of futures and tasks. Reports an unretrieved error first. */
void cio__future_finalize(struct cio_future *f, cio_task *as_task);

/* Set by the task layer: frees a task whose last reference went away. */
extern void (*cio__task_free_hook)(struct cio_future *f);

#endif
