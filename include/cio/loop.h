/* cio — the event loop (asyncio's AbstractEventLoop and asyncio.run).
 *
 * One loop per thread. A loop is used only from the thread that runs it, with
 * one exception: cio_call_soon_threadsafe(). Times at this API are seconds as
 * double, as in asyncio; the loop keeps integer nanoseconds inside, so the
 * virtual clock is exact.
 *
 * One iteration, as asyncio's _run_once: (1) the poll timeout is 0 when
 * callbacks are ready or the loop is stopping, else the time to the earliest
 * timer, else infinite; (2) poll I/O and queue the fd callbacks (skipped when
 * no fd is registered; while callbacks keep the loop busy, polled every 61
 * passes); (3) move due timers to the ready queue in deadline order, ties in
 * scheduling order; (4) run exactly the callbacks that were ready when this
 * step began. The order is deterministic.
 *
 * Virtual clock: when nothing is ready, time jumps to the earliest timer. It
 * does not jump while an executor job is in flight or the cross-thread inbox
 * is non-empty; while fds are registered it first polls for up to 5 ms of real
 * time so that a real peer can answer. With tasks pending and nothing at all
 * that could wake them, the loop reports a deadlock naming the blocked tasks
 * and run_until_complete returns CIO_EDEADLOCK instead of hanging.
 */
#ifndef CIO_LOOP_H
#define CIO_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_loop cio_loop;
typedef struct cio_handle cio_handle;
typedef struct cio_task cio_task;
typedef struct cio_future cio_future;

typedef void (*cio_callback_fn)(void *arg);

/* A task body: runs on its own stack; returns 0 (or any non-negative value)
 * with *result set, or a negative code (see errors.h). -ECANCELED means the
 * task ends cancelled. */
typedef int (*cio_task_fn)(void *arg, void **result);

/* What the exception handler is told (asyncio's context dict). Fields that do
 * not apply are NULL / 0. */
typedef struct cio_exception_context {
  const char *message; /* what happened, e.g. "Task exception was never retrieved" */
  int code;            /* the error code involved, 0 if none */
  const char *error;   /* the error's own message, NULL if none */
  cio_task *task;      /* the task concerned, if any (borrowed) */
  cio_future *future;  /* the future concerned, if any (borrowed) */
} cio_exception_context;

typedef void (*cio_exception_handler_fn)(cio_loop *loop, const cio_exception_context *ctx,
                                         void *arg);

typedef struct cio_loop_options {
  /* Use the virtual clock (time jumps to the next timer when idle). Also
   * enabled for every loop of the process by the environment variable
   * CIO_VIRTUAL_TIME=1. */
  bool virtual_time;
  /* Disable deadlock detection (for loops that another thread will wake with
   * cio_call_soon_threadsafe() before it has made its first call). */
  bool no_deadlock_check;
  /* Default stack size of this loop's tasks, in bytes; 0 = CIO_STACK_DEFAULT. */
  size_t default_stack_size;
} cio_loop_options;

/* ---- running a program ---------------------------------------------------- */

/* asyncio.run: create a new loop, run `main` as the main task until it is done,
 * then cancel the tasks still pending and wait for them (their errors other
 * than cancellation go to the exception handler), shut the default executor
 * down (waiting for its jobs), close and free the loop.
 * Returns the main task's outcome: its non-negative return value with *result
 * (may be NULL) set to its result, -ECANCELED if it ended cancelled, or its
 * error code (message in cio_errmsg()). Also: CIO_ERUNNING if a loop is
 * already running in this thread, -EINVAL if main is NULL, -ENOMEM,
 * CIO_EDEADLOCK if the main task could never finish, CIO_EINTERRUPTED after
 * Ctrl-C (the first SIGINT cancels the main task, asyncio's
 * KeyboardInterrupt: see runner.h). A thin use of cio_runner (runner.h):
 * tasks that the cancelled tasks start in their cleanup are cancelled once
 * more, then what is still pending is reported and dropped.
 * With CIO_TRACE_RUN=1 in the environment it prints the loop time the run took
 * to stderr ("cio_run: loop time 3.000 s"). */
CIO_NODISCARD int cio_run(cio_task_fn main, void *arg, void **result);

/* cio_run with loop options (NULL = defaults). */
CIO_NODISCARD int cio_run_opts(cio_task_fn main, void *arg, void **result,
                               const cio_loop_options *opts);

/* ---- loop lifecycle -------------------------------------------------------- */

/* Create a loop (asyncio.new_event_loop; it is not made current). opts may be
 * NULL. Returns 0, -EINVAL if out is NULL, -ENOMEM, or the errno of a failed
 * epoll/eventfd creation. */
CIO_NODISCARD int cio_loop_new(cio_loop **out, const cio_loop_options *opts);

/* Close the loop: drops pending callbacks and timers, reports the tasks still
 * pending ("Task was destroyed but it is pending") and shuts the default
 * executor down without waiting. Idempotent. Returns 0, -EINVAL for NULL,
 * CIO_ERUNNING if the loop is running. Memory stays until cio_loop_free(). */
CIO_NODISCARD int cio_loop_close(cio_loop *loop);

/* Close (if needed) and free the loop. Task and future handles the user still
 * holds stay valid to inspect and release, but their loop is gone. NULL is a
 * no-op; freeing a running loop is refused (returns CIO_ERUNNING). */
int cio_loop_free(cio_loop *loop);

/* Run until `fut` is done (asyncio's run_until_complete; wrap a function in a
 * task first with cio_create_task). Returns 0 when fut is done (its outcome is
 * read with the future calls), -EINVAL, CIO_ECLOSED, CIO_ERUNNING if any loop
 * is already running in this thread, CIO_EWRONGLOOP, CIO_EDEADLOCK, or
 * CIO_EINVALSTATE if the loop was stopped before fut was done. */
CIO_NODISCARD int cio_loop_run_until_complete(cio_loop *loop, cio_future *fut);

/* Run until cio_loop_stop(). Returns 0, -EINVAL, CIO_ECLOSED, CIO_ERUNNING. */
CIO_NODISCARD int cio_loop_run_forever(cio_loop *loop);

/* Stop after the current batch of ready callbacks (callbacks they schedule run
 * on the next run). Called before run_forever: one poll and one batch, then
 * return. Returns 0 or -EINVAL. */
int cio_loop_stop(cio_loop *loop);

/* Whether the loop is running / closed; false for NULL. */
bool cio_loop_is_running(const cio_loop *loop);
bool cio_loop_is_closed(const cio_loop *loop);

/* The loop running in this thread, or NULL (asyncio.get_running_loop; cio
 * never creates one implicitly). */
cio_loop *cio_get_running_loop(void);

/* The loop's clock in seconds: CLOCK_MONOTONIC, or the virtual clock (which
 * starts at 0). Returns 0.0 for NULL. */
double cio_loop_time(const cio_loop *loop);

/* The same in integer nanoseconds. */
int64_t cio_loop_time_ns(const cio_loop *loop);

/* Whether the loop uses the virtual clock; false for NULL. */
bool cio_loop_is_virtual(const cio_loop *loop);

/* ---- callbacks ------------------------------------------------------------- */

/* Schedule fn(arg) on the next iteration, FIFO. If `handle` is not NULL it
 * receives a handle the caller owns (cio_handle_unref) and may cancel.
 * Returns 0, -EINVAL (loop or fn NULL), CIO_ECLOSED, -ENOMEM. Not
 * thread-safe. */
CIO_NODISCARD int cio_call_soon(cio_loop *loop, cio_callback_fn fn, void *arg,
                                cio_handle **handle);

/* Schedule fn(arg) `delay` seconds from now (negative = now). Timers with the
 * same deadline fire in the order they were scheduled. Returns as
 * cio_call_soon, and -EINVAL for a NaN delay. */
CIO_NODISCARD int cio_call_later(cio_loop *loop, double delay, cio_callback_fn fn, void *arg,
                                 cio_handle **handle);

/* Schedule fn(arg) at loop time `when` (seconds). Returns as cio_call_later. */
CIO_NODISCARD int cio_call_at(cio_loop *loop, double when, cio_callback_fn fn, void *arg,
                              cio_handle **handle);

/* Schedule fn(arg) from any thread; wakes the loop (one eventfd write per
 * wake-up, not per call). Callbacks from one thread run in the order they were
 * made. Returns 0, -EINVAL, CIO_ECLOSED, -ENOMEM. */
CIO_NODISCARD int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg);

/* Cancel a scheduled callback: it will not run. No-op if it already ran or
 * was cancelled. Returns 0 or -EINVAL. */
int cio_handle_cancel(cio_handle *handle);
bool cio_handle_cancelled(const cio_handle *handle);
/* Deadline of a timer handle in loop seconds; 0.0 for a call_soon handle. */
double cio_handle_when(const cio_handle *handle);
/* Release the caller's reference. Returns 0, or CIO_EDOUBLEFREE where a
 * second release can be detected. */
int cio_handle_unref(cio_handle *handle);

/* ---- errors ---------------------------------------------------------------- */

/* Replace the exception handler (NULL restores the default, which prints the
 * context to stderr). Returns 0 or -EINVAL. */
int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg);

/* Pass ctx to the loop's exception handler. */
void cio_loop_call_exception_handler(cio_loop *loop, const cio_exception_context *ctx);

/* The default handler: prints "cio: <message>" plus task, code and error to
 * stderr. */
void cio_default_exception_handler(cio_loop *loop, const cio_exception_context *ctx,
                                   void *arg);

#ifdef __cplusplus
}
#endif
#endif
