/* Layer 5: tasks (internal view). A task is a future plus a C function
 * running on its own stack. Its one ready-queue node (`step`) is either in
 * the ready queue (scheduled), in the waiter list of the one future it awaits,
 * or nowhere (running, done): a task is never in two places at once. */
#ifndef CIO_TASK_INTERNAL_H
#define CIO_TASK_INTERNAL_H

#include "arch/switch.h"
#include "cio/task.h"
#include "future.h"

enum { CIO__T_NEW, CIO__T_RUNNING, CIO__T_SUSPENDED, CIO__T_DONE };

struct cio__locals {
  int refs;
  const cio_local_key *key;
  void *value;
  struct cio__locals *next;
};

/* What few tasks need (a name asked for, a cancel message, task-local values,
 * an error message kept across a suspension): allocated on first use, so that
 * a task is two cache lines. */
struct cio__task_cold {
  char *name;
  char *cancel_msg;
  struct cio__locals *locals;
  struct cio__errslot err;
};

struct cio_task {
  struct cio_future fut; /* first: a task is a future */
  struct cio__cb step;
  struct cio__tasklink link; /* in the loop's pending list */
  union {
    struct { /* until the first step */
      cio_task_fn fn;
      void *arg;
    } start;
    struct { /* from the first step until done */
      cio__ctx ctx;
      struct cio__stack *stack;
    } run;
  } u;
  struct cio_future *waiting_on;
  struct cio__task_cold *cold;
  uint32_t id;              /* "Task-<id>" (wraps after 2^32 tasks) */
  int32_t cancel_requests;
  uint32_t stack_size;      /* requested; 0 = the loop's default */
  uint8_t tstate;
  bool must_cancel;
  bool detached;
};

/* The running task of this thread's running loop, or NULL. */
static inline struct cio_task *cio__current(void) {
  cio_loop *loop = cio__running_loop;
  return loop ? (struct cio_task *)loop->current : NULL;
}

/* Suspend the current task until `f` is done and return its outcome (see
 * cio_future_await). f may live in the caller's frame (CIO__F_LOCAL). */
int cio__task_await(struct cio_task *t, struct cio_future *f, void **result);

#endif
