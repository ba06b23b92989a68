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
 * does not jump while an executor job or a file operation (cio/file.h, on
 * either engine) is in flight or the cross-thread inbox is non-empty; while
 * fds are registered it first polls for up to 5 ms of real time so that a
 * real peer can answer. So under the virtual clock a timeout
 * on real I/O fires after about 5 ms of real silence from the peer, whatever
 * its length: the virtual clock is for programs whose peers are other tasks
 * (or fast local peers); use the real clock to time out a slow real peer.
 * A delay of INFINITY (or beyond ~146 years) never fires and the virtual
 * clock never jumps to it; deadlines saturate instead of overflowing.
 *
 * Deadlocks: with nothing at all that could wake the loop (no ready callback,
 * no timer that will fire, no fd, no executor job, no threadsafe reference,
 * no cross-thread call ever made), the loop reports a deadlock naming the
 * blocked tasks to the exception handler and the run call returns
 * CIO_EDEADLOCK instead of hanging. A loop that another thread will wake
 * takes a threadsafe reference first (cio_loop_ref_threadsafe), or is
 * created with no_deadlock_check.
 *
 * fork(): as in asyncio, a loop does not survive fork(). In the child the
 * inherited loop (and its default executor, whose threads stayed in the
 * parent) is unusable: every call given it fails with CIO_EFORKED, and never
 * touches the epoll instance, eventfd or threads it shares with the parent.
 * If fork() was called from a task or callback of a running loop, the child's
 * thread runs no loop and no task any more: it may create and run a new loop
 * (cio_run works there, even on the task's stack); calls that need a task
 * (cio_sleep, cio_await, I/O waits) fail with CIO_ENOTASK; and when the code
 * that called fork() returns to the inherited loop, that loop stops at once
 * and its run call (cio_run, run_until_complete, run_forever) returns
 * CIO_EFORKED; closing and freeing it then releases the child's copy of its
 * memory (the executor records are leaked, never joined). fds are the
 * child's own: closing one in the child (cio_fd_close or close) is fine and
 * does not disturb the parent's registrations.
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

/* The opaque objects: an event loop (cio_loop_new), a scheduled callback
 * (cio_call_soon), a task (cio_create_task, task.h), a future
 * (cio_future_new, future.h). */
typedef struct cio_loop cio_loop;
typedef struct cio_handle cio_handle;
typedef struct cio_task cio_task;
typedef struct cio_future cio_future;

/* A callback of cio_call_soon / cio_call_later / cio_call_at, run on the
 * loop's thread, outside any task (it must not suspend). */
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
  const char *created_at; /* debug mode: "file:line" where the task was created, else NULL
                             (asyncio's source_traceback) */
} cio_exception_context;

/* An exception handler (cio_loop_set_exception_handler): told about errors
 * nobody else could handle; ctx and its strings are valid during the call. */
typedef void (*cio_exception_handler_fn)(cio_loop *loop, const cio_exception_context *ctx,
                                         void *arg);

/* The I/O back end of a loop. */
typedef enum cio_backend {
  CIO_BACKEND_DEFAULT = 0, /* CIO_BACKEND=uring|epoll from the environment, else epoll */
  CIO_BACKEND_EPOLL,
  CIO_BACKEND_URING /* io_uring; falls back to epoll, silently, where the kernel refuses it */
} cio_backend;

/* Options of cio_loop_new / cio_run_opts: all zero = the defaults. */
typedef struct cio_loop_options {
  /* Use the virtual clock (time jumps to the next timer when idle). Also
   * enabled for every loop of the process by the environment variable
   * CIO_VIRTUAL_TIME=1. */
  bool virtual_time;
  /* Disable deadlock detection (for loops that another thread will wake with
   * cio_call_soon_threadsafe() before it has made its first call). */
  bool no_deadlock_check;
  /* Default stack size of this loop's tasks, in bytes; 0 = CIO_STACK_DEFAULT;
   * at most 1 GiB (more is refused with -EINVAL). */
  size_t default_stack_size;
  /* Debug mode (see debug.h); also on for every loop with CIO_DEBUG=1. */
  bool debug;
  /* Debug mode reports a task step or callback that holds the loop longer
   * than this, in seconds; 0 = 0.1 (asyncio's slow_callback_duration). */
  double slow_callback_duration;
  /* Turn the stall detector (debug.h) off for this loop; CIO_STALL_DETECTOR=0
   * turns it off for every loop. */
  bool no_stall_detector;
  /* The stall detector's threshold in seconds; 0 = CIO_STALL_THRESHOLD from
   * the environment, else 1.0. */
  double stall_threshold;
  /* The I/O back end. Programs cannot tell the two apart, except that file
   * operations (cio/file.h) run in the kernel on io_uring and in the thread
   * pool on epoll. */
  cio_backend backend;
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
 * CIO_EDEADLOCK if the main task could never finish, CIO_EFORKED in the
 * child of a fork() called from this run's tasks (see "fork()" above),
 * CIO_EINTERRUPTED after
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
 * NULL. Returns 0, -EINVAL if out is NULL or default_stack_size is over
 * 1 GiB, -ENOMEM, or the errno of a failed epoll/eventfd creation. */
CIO_NODISCARD int cio_loop_new(cio_loop **out, const cio_loop_options *opts);

/* Close the loop: drops pending callbacks and timers, reports the tasks still
 * pending ("Task was destroyed but it is pending") and shuts the default
 * executor down without waiting. Idempotent. Returns 0, -EINVAL for NULL,
 * CIO_ERUNNING if the loop is running. Memory stays until cio_loop_free(). */
CIO_NODISCARD int cio_loop_close(cio_loop *loop);

/* Close (if needed) and free the loop. Task and future handles the user still
 * holds stay valid to inspect and release, but their loop is gone; so do
 * threadsafe references (the memory stays until the last is released).
 * Returns 0 (NULL is a no-op), CIO_ERUNNING for a running loop (refused),
 * CIO_EDOUBLEFREE for a pointer that is not a live loop (a second free). */
int cio_loop_free(cio_loop *loop);

/* A threadsafe reference, for handing the loop to another thread that will
 * call cio_call_soon_threadsafe on it (asyncio's "give a future to a thread,
 * await it"). Take it on a thread that already holds a reference (usually the
 * loop's own, before starting the other thread); the other thread releases it
 * with cio_loop_unref_threadsafe when it will post no more. While any is held:
 * the loop is never reported deadlocked (it waits for the thread's call), and
 * its memory outlives cio_loop_free / the end of cio_run, so a late
 * cio_call_soon_threadsafe is refused with CIO_ECLOSED instead of touching
 * freed memory. Both calls are thread-safe and do not suspend. Return 0 or
 * -EINVAL (NULL); unref also CIO_EDOUBLEFREE when no threadsafe reference is
 * held. */
int cio_loop_ref_threadsafe(cio_loop *loop);
int cio_loop_unref_threadsafe(cio_loop *loop);

/* Run until `fut` is done (asyncio's run_until_complete; wrap a function in a
 * task first with cio_create_task). Returns 0 when fut is done (its outcome is
 * read with the future calls), -EINVAL, CIO_ECLOSED, CIO_ERUNNING if any loop
 * is already running in this thread, CIO_EWRONGLOOP, CIO_EDEADLOCK,
 * CIO_EFORKED (see "fork()" above), or
 * CIO_EINVALSTATE if the loop was stopped before fut was done. */
CIO_NODISCARD int cio_loop_run_until_complete(cio_loop *loop, cio_future *fut);

/* Run until cio_loop_stop(). Returns 0, -EINVAL, CIO_ECLOSED, CIO_ERUNNING,
 * CIO_EFORKED, or CIO_EDEADLOCK when nothing could ever call cio_loop_stop
 * (see "Deadlocks" above: an idle loop with no task, timer, fd, job or
 * threadsafe reference returns at once instead of blocking forever, as
 * asyncio's would; a loop kept for other threads holds a threadsafe
 * reference). */
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

/* The loop's I/O back end: "epoll" or "io_uring"; NULL for NULL. */
const char *cio_loop_backend(const cio_loop *loop);

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
 * made. Another thread must hold a threadsafe reference while it may call
 * this (cio_loop_ref_threadsafe), else the loop may be gone. Returns 0,
 * -EINVAL, CIO_ECLOSED, CIO_EFORKED, -ENOMEM. */
CIO_NODISCARD int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg);

/* Cancel a scheduled callback: it will not run. No-op if it already ran, is
 * running, or was cancelled; a timer that fired but has not run yet is
 * skipped when its turn comes. Returns 0, or -EINVAL for NULL or a released
 * handle. */
int cio_handle_cancel(cio_handle *handle);
bool cio_handle_cancelled(const cio_handle *handle);
/* Deadline of a timer handle in loop seconds (INFINITY for one that never
 * fires: a delay of INFINITY or beyond ~146 years); 0.0 for a call_soon
 * handle, NULL or a released handle. */
double cio_handle_when(const cio_handle *handle);
/* Release the caller's reference (a scheduled callback still runs, unless
 * cancelled). Returns 0, -EINVAL for NULL, or CIO_EDOUBLEFREE for a second
 * release (always caught while the handle is scheduled; afterwards while its
 * loop's memory lives). */
int cio_handle_unref(cio_handle *handle);

/* ---- per-loop data (for libraries built on cio) ------------------------------
 * A library that keeps one state per loop (a connection pool, the cio_curl
 * bridge's multi handle) hangs it on the loop under a key, and gets it
 * destroyed when the loop closes. A key is any object with static storage
 * duration:
 *     static const cio_loop_key my_key = {"mylib", my_destroy};
 * destroy(loop, value), if not NULL, is called once by cio_loop_close (and so
 * by cio_run at its end) for each value still set, newest first, before the
 * loop drops its callbacks, timers and fds: the loop is not running, but the
 * value's fd callbacks and timer handles can still be removed and cancelled
 * there. */
typedef struct cio_loop_key {
  const char *name; /* for messages, e.g. the library's name */
  /* called at loop close with the value still set (may be NULL: nothing is called) */
  void (*destroy)(cio_loop *loop, void *value);
} cio_loop_key;

/* The value set for key on loop, or NULL if none (or loop/key NULL). Does not
 * suspend. */
void *cio_loop_get_data(const cio_loop *loop, const cio_loop_key *key);

/* Set (or replace, without calling destroy on the old value) key's value on
 * loop; NULL removes it. Does not suspend; call it from the loop's thread.
 * Returns 0, -EINVAL (loop or key NULL), CIO_ECLOSED (closed loop, unless
 * value is NULL), -ENOMEM. */
CIO_NODISCARD int cio_loop_set_data(cio_loop *loop, const cio_loop_key *key, void *value);

/* ---- errors ---------------------------------------------------------------- */

/* Replace the exception handler (NULL restores the default, which prints the
 * context to stderr). Returns 0 or -EINVAL. */
int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg);

/* Pass ctx to the loop's exception handler. */
void cio_loop_call_exception_handler(cio_loop *loop, const cio_exception_context *ctx);

/* The default handler: prints "cio: <message>" plus task, code and error to
 * stderr. A NULL ctx prints nothing. */
void cio_default_exception_handler(cio_loop *loop, const cio_exception_context *ctx,
                                   void *arg);

#ifdef __cplusplus
}
#endif
#endif
