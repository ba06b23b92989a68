/* Debug mode, the stall detector and task dumps (internal view; see
 * include/cio/debug.h). The other layers call in here only behind
 * `if (CIO__UNLIKELY(loop->debug))` (debug mode) or through the inline
 * watchdog marks below (one plain store per loop iteration). */
#ifndef CIO_DEBUG_INTERNAL_H
#define CIO_DEBUG_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "cio/debug.h"
#include "loop.h"

#define CIO__UNLIKELY(x) __builtin_expect(!!(x), 0)

struct cio_task;
struct cio_future;

/* ---- the stall detector's marks (loop.c) ------------------------------------------- */

/* A new iteration begins: the loop is busy. */
static inline void cio__wd_busy(cio_loop *loop) {
  loop->wd_seq += 2;
  atomic_store_explicit(&loop->wd_tick, loop->wd_seq, memory_order_relaxed);
}
/* About to poll (or stop running): idle, never a stall. */
static inline void cio__wd_idle(cio_loop *loop) {
  atomic_store_explicit(&loop->wd_tick, loop->wd_seq | 1, memory_order_relaxed);
}

/* ---- hooks ---------------------------------------------------------------------------- */

/* cio_loop_new: read the options and the environment, allocate loop->dbg.
 * Returns 0 or -ENOMEM. */
int cio__debug_loop_init(cio_loop *loop, const cio_loop_options *opts);
/* cio__loop_run_until, before the first / after the last iteration: the
 * running thread, and the watchdog (started on first use). */
void cio__debug_run_enter(cio_loop *loop);
void cio__debug_run_leave(cio_loop *loop);
/* cio_loop_close, before pending tasks are abandoned: stop watching the
 * loop; in debug mode report the futures nobody completed. */
void cio__debug_loop_close(cio_loop *loop);
/* cio_loop_free, before the user's reference goes (debug mode): report the
 * failed tasks whose handles were never released. */
void cio__debug_loop_freeing(cio_loop *loop);
/* When the loop's memory goes: free loop->dbg. */
void cio__debug_loop_release(cio_loop *loop);

/* Debug mode: run one ready-queue node, timing it. */
void cio__debug_run_cb(cio_loop *loop, struct cio__cb *cb);
/* Debug mode: a non-thread-safe entry point `who` called; returns 0, or
 * CIO_ERUNTIME (reported) from a thread other than the running loop's. */
int cio__debug_check_thread(cio_loop *loop, const char *who);
/* Debug mode: the exception handler is about to get ctx; returns ctx or a
 * copy in *tmp whose message names the task's creation site (in buf). */
const cio_exception_context *cio__debug_annotate(cio_loop *loop, const cio_exception_context *ctx,
                                                 cio_exception_context *tmp, char *buf,
                                                 size_t cap);

/* Debug mode, task layer: a task was created (its site is the one the
 * cio_*_create_task_at caller left) / is being freed. */
void cio__debug_task_created(cio_loop *loop, struct cio_task *t);
void cio__debug_task_freed(cio_loop *loop, struct cio_task *t);
/* Debug mode, future layer: a future of cio_future_new was created / freed. */
void cio__debug_future_created(cio_loop *loop, struct cio_future *f);
void cio__debug_future_freed(cio_loop *loop, struct cio_future *f);

/* The task layer's step function (set by task.c): tells task steps from callbacks. */
extern void (*cio__debug_step_run)(struct cio__cb *cb);

/* The user function behind a queued callback node (loop.c), or NULL. */
cio_callback_fn cio__handle_fn(const struct cio__cb *cb, void **arg);

/* ---- frame-pointer stacks (shared with cio_loop_print_tasks) --------------------------- */

/* Walk a frame-pointer chain starting at (fp, pc) whose frames lie in
 * [lo, hi): store up to max return addresses, innermost first (pc first).
 * Returns how many. Reads only memory inside [lo, hi): async-signal-safe. */
int cio__fp_walk(uintptr_t fp, uintptr_t pc, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, int max);
/* The frames of a suspended task (from what the switch saved). Returns how
 * many (0 in builds where the saved frame cannot be read). */
int cio__task_frames(const struct cio_task *t, uintptr_t *pcs, int max);
/* Format one frame as "0x... name+0x.." (dladdr) into buf. */
void cio__frame_format(uintptr_t pc, char *buf, size_t cap);

#endif
