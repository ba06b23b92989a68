/* cio — tasks (asyncio.Task), sleeping and task-local values.
 *
 * A task runs a C function on its own stack (a stackful coroutine). It is a
 * future too: cio_task_future() gives that view, for the calls that take
 * futures. Calling a plain function is asyncio's "await coroutine": it runs
 * inline and does not yield. Only awaiting something that is not done yet
 * suspends (cio_await, cio_sleep, the sync primitives, I/O).
 *
 * Ownership: cio_create_task returns a reference the caller owns; release it
 * with cio_task_unref() (after, or instead of, awaiting it), or hand it to the
 * loop with cio_task_detach() (fire-and-forget, explicit). The loop holds its
 * own reference until the task is done, so a task never vanishes while it
 * runs. A failed task whose error nobody read is reported when it is freed.
 *
 * Cancellation, as asyncio has it (see docs/design.md, "The cancellation rule"):
 *  - cio_task_cancel on a done task returns 0 and changes nothing. Otherwise
 *    each call adds one request (cio_task_cancelling() counts them): a task
 *    that has not started never runs its body; a suspended task's awaited
 *    future is cancelled, so that suspension point returns -ECANCELED.
 *  - One request is delivered once: the body may clean up, even suspend
 *    again, and then return.
 *  - Deliberate difference from asyncio: a task whose cancelling() count is
 *    above zero when its body returns a *result* ends cancelled. A body that
 *    really handled the cancellation calls cio_task_uncancel() first. An
 *    *error* return stands as the task's outcome.
 */
#ifndef CIO_TASK_H
#define CIO_TASK_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default task stack: 256 KiB reserved, committed page by page on first
 * touch, with a guard region below it.
 *
 * Stack overflow: what is caught and what is not.
 *  - Caught, aborting with "cio: stack overflow in task '<name>'": any
 *    overflow on Linux 6.13+ (MADV_GUARD_INSTALL: a 64 KiB guard below every
 *    stack, costing no memory and no mapping) and, on older kernels, in the
 *    first tasks' stacks (mprotect guards, up to half of vm.max_map_count:
 *    about 16,000 stacks by default), by code built with
 *    -fstack-clash-protection, whatever the frame size (a 300 KiB VLA
 *    included). cio is built with it; cio.pc (Cflags) and the CMake package
 *    (cio::cio's INTERFACE compile options) give it to your code.
 *  - Also caught there: frames of up to 64 KiB in code built without that
 *    flag (they land in the guard region).
 *  - Not caught, silently corrupting another task's stack: a frame larger
 *    than 64 KiB in code built without -fstack-clash-protection (a
 *    third-party library, another compiler) that writes only below the
 *    guard region.
 *  - Beyond the mprotect budget on kernels before 6.13 (one note on stderr
 *    says when this starts; CIO_STACK_GUARD=mprotect forces this path, as
 *    does =canary for every stack): no guard; a 64-byte canary below each
 *    stack is checked each time its task is switched away from, and the
 *    abort then says "its canary was overwritten". An overflow that skips
 *    the canary, or that corrupts and returns before the next switch, can
 *    go undetected; a runaway recursion is caught when it reaches unmapped
 *    memory. Raise vm.max_map_count to keep guard pages for more tasks.
 *  - Under AddressSanitizer, ASan reports the overflow itself.
 *  - The flag's cost: a large local buffer is touched page by page when its
 *    function is entered, so its pages are committed even if little of it
 *    is used (the echo server's 16 KiB buffer: about 20 KB per connection
 *    instead of 8). Where that matters, use a heap buffer, or build that
 *    code with -fno-stack-clash-protection: frames up to 64 KiB stay caught.
 *
 * Memory: a finished task's stack stays in its loop's pool for reuse;
 * after a burst, the stacks not needed during one second of the loop's
 * time are given back to the kernel (MADV_DONTNEED), so the resident size
 * returns near its idle level while the loop is idle or keeps running.
 *
 * Colouring: a task's frames start up to 2 KiB below the top of its stack
 * (1 KiB for stacks under 64 KiB), a cache line further for each new task,
 * so that many suspended tasks' frames do not compete for the same cache
 * sets; that much of stack_size is not usable. */
#define CIO_STACK_DEFAULT (256u * 1024u)
#define CIO_STACK_MIN (16u * 1024u)

/* Options of cio_create_task: all zero = the defaults. */
typedef struct cio_task_options {
  const char *name;  /* copied; NULL = "Task-N" */
  size_t stack_size; /* 0 = the loop's default; rounded up to pages; >= CIO_STACK_MIN */
  bool eager_start;  /* run synchronously inside cio_create_task until the first
                        suspension; if the body finishes there the task is done
                        on return */
} cio_task_options;

/* asyncio.create_task: create a task running fn(arg) in the running loop of
 * this thread, scheduled with call_soon (or started at once if eager). Its
 * task-local values start as a copy of the creator's. Returns the task (the
 * caller owns one reference) or NULL with cio_errcode(): -EINVAL (fn NULL,
 * bad stack size), CIO_ENOTRUNNING (no running loop), CIO_ECLOSED, -ENOMEM. */
cio_task *cio_create_task(cio_task_fn fn, void *arg, const cio_task_options *opts);

/* The same on an explicit loop, which need not be running (the task starts
 * when it runs). eager_start is honoured only on a running loop. Returns the
 * task (the caller owns one reference) or NULL with cio_errcode(): -EINVAL
 * (loop or fn NULL, stack size over 1 GiB), CIO_ECLOSED, -ENOMEM. */
cio_task *cio_loop_create_task(cio_loop *loop, cio_task_fn fn, void *arg,
                               const cio_task_options *opts);

/* cio_create_task and cio_loop_create_task with the caller's source position
 * (file, line), which debug mode (debug.h) shows in its reports. The macros
 * below make every cio_create_task(...) / cio_loop_create_task(...) call of a
 * program pass __FILE__ and __LINE__ here; the functions of those names stay
 * exported and can be called as (cio_create_task)(...) or through a pointer.
 * With debug mode off the position is not stored. file may be NULL (no
 * position); it must stay valid as long as the loop (a string literal).
 * Returns and fails as cio_create_task / cio_loop_create_task; in debug mode
 * cio_loop_create_task_at called from a thread other than the one running
 * the loop also fails with CIO_ERUNTIME. Define CIO_NO_SITE_MACROS before
 * including cio.h to do without the macros. */
cio_task *cio_create_task_at(const char *file, int line, cio_task_fn fn, void *arg,
                             const cio_task_options *opts);
cio_task *cio_loop_create_task_at(cio_loop *loop, const char *file, int line, cio_task_fn fn,
                                  void *arg, const cio_task_options *opts);
#if !defined(CIO_BUILDING) && !defined(CIO_NO_SITE_MACROS)
#define cio_create_task(fn, arg, opts) cio_create_task_at(__FILE__, __LINE__, fn, arg, opts)
#define cio_loop_create_task(loop, fn, arg, opts)                                    \
  cio_loop_create_task_at(loop, __FILE__, __LINE__, fn, arg, opts)
#endif

/* Take another reference. Returns task. */
cio_task *cio_task_ref(cio_task *task);

/* Release a reference. Returns 0, -EINVAL, CIO_EDOUBLEFREE where detectable. */
int cio_task_unref(cio_task *task);

/* Give up the caller's reference but keep the task running to its end
 * (fire-and-forget). Its error, if any, is reported when it finishes. The task
 * stays listed by cio_all_tasks. Returns 0 or -EINVAL. */
int cio_task_detach(cio_task *task);

/* The task viewed as a future (not a new reference); NULL if task is not a
 * live task. */
cio_future *cio_task_future(cio_task *task);

/* await task: as cio_future_await on its future. Returns the task's outcome
 * (the body's non-negative return value with *result, its error code,
 * -ECANCELED) and does not suspend when the
 * task is already done; CIO_ENOTASK outside a task, CIO_ESELF for the
 * current task, CIO_EWRONGLOOP for a task of another loop. */
CIO_NODISCARD int cio_task_await(cio_task *task, void **result);

/* The asyncio spelling: cio_await(task_or_future, &result). */
#ifndef __cplusplus
#define cio_await(x, result)                                                        \
  _Generic((x), cio_task *: cio_task_await, cio_future *: cio_future_await)((x), (result))
#endif

/* Request cancellation (see above). Returns 1 if a request was added, 0 if
 * the task is already done, -EINVAL. msg (may be NULL) is copied and becomes
 * the message of the -ECANCELED delivered. */
int cio_task_cancel(cio_task *task, const char *msg);

/* Requests not yet withdrawn by cio_task_uncancel; 0 for NULL or a dead
 * task. */
int cio_task_cancelling(const cio_task *task);

/* Withdraw one request (never below 0); at 0 a request not yet delivered is
 * rescinded. No effect on a done task. Returns the new count, or -EINVAL. */
int cio_task_uncancel(cio_task *task);

/* Whether the task is done / ended cancelled; false for NULL or a dead task. */
bool cio_task_done(const cio_task *task);
bool cio_task_cancelled(const cio_task *task);

/* The outcome of a done task, as cio_future_result: the body's non-negative
 * return value with *result, its error code, -ECANCELED, CIO_EINVALSTATE while pending, -EINVAL for NULL. */
int cio_task_result(cio_task *task, void **result);

/* The task's name ("Task-N" unless set). Owned by the task; never NULL
 * ("(not a task)" for NULL or a dead task, "Task-?" when out of memory). */
const char *cio_task_get_name(cio_task *task);

/* Rename. Returns 0, -EINVAL, -ENOMEM. */
int cio_task_set_name(cio_task *task, const char *name);

/* Add fn(task's future, arg) as a done callback. Returns as
 * cio_future_add_done_callback. */
CIO_NODISCARD int cio_task_add_done_callback(cio_task *task, cio_done_fn fn, void *arg);
int cio_task_remove_done_callback(cio_task *task, cio_done_fn fn, void *arg);

/* The task viewed through its future (the inverse of cio_task_future); NULL if
 * fut is not a task. */
cio_task *cio_future_task(cio_future *fut);

/* The task running now in this thread, or NULL (callbacks are not tasks). */
cio_task *cio_current_task(void);

/* Fill buf with up to cap pending tasks of loop (no references taken; valid
 * until the next suspension) and return how many there are in all, or
 * -EINVAL. asyncio's all_tasks(). */
int cio_all_tasks(cio_loop *loop, cio_task **buf, int cap);

/* Print every pending task of `loop` to `out` (a FILE *): its name, state,
 * pending cancellations, what it awaits, and, for a suspended task, its
 * native call stack, innermost first (walked through frame pointers: code
 * built without -fno-omit-frame-pointer shows fewer frames; addresses are
 * named with dladdr where the symbol is exported, else module+offset for
 * addr2line). Safe to call from a task or a callback of that loop. Returns
 * the number of tasks printed, or -EINVAL. (asyncio's print_stack shows one
 * frame; a stackful task has them all.) */
int cio_loop_print_tasks(cio_loop *loop, void *out);

/* ---- sleeping --------------------------------------------------------------- */

/* Suspend the current task for `delay` seconds. 0 or negative: yield once
 * (one trip through the ready queue, no timer). Returns 0, -ECANCELED,
 * -EINVAL for NaN, CIO_ENOTASK outside a task. Allocates nothing. */
CIO_NODISCARD int cio_sleep(double delay);

/* Yield once: cio_sleep(0). Returns 0, -ECANCELED, CIO_ENOTASK. Not marked
 * CIO_NODISCARD: a bare `cio_yield();` to let others run is common and
 * harmless (an ignored -ECANCELED is not lost: the request stays counted by
 * cio_task_cancelling, and the task ends cancelled when its body returns). */
int cio_yield(void);

/* ---- task-local values (contextvars) ----------------------------------------
 * A key is any object with static storage duration:
 *     static cio_local_key request_id = {"request_id"};
 * A task starts with a copy of its creator's values (O(1): the copy is
 * shared until either side sets a value); changes in a task are invisible to
 * its creator and siblings. Outside any task the loop's own values are used. */
typedef struct cio_local_key {
  const char *name; /* for messages and dumps */
} cio_local_key;

/* The value of key in the current task (or loop), or dflt if unset, if key
 * is NULL, or if no loop runs in this thread. */
void *cio_local_get(const cio_local_key *key, void *dflt);

/* Set key's value in the current task (or the running loop). Returns 0,
 * -EINVAL, CIO_ENOTRUNNING (no task and no running loop), -ENOMEM. */
CIO_NODISCARD int cio_local_set(const cio_local_key *key, void *value);

#ifdef __cplusplus
}
#endif
#endif
