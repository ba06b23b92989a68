/* cio — debug mode, the stall detector and task dumps (asyncio's debug mode,
 * `python -m asyncio ps / pstree`, Go's SIGQUIT dump).
 *
 * Debug mode (off by default, as in asyncio): CIO_DEBUG=1 in the environment
 * turns it on for every loop of the process, the loop option `debug` or
 * cio_loop_set_debug() for one loop. A loop in debug mode reports through its
 * exception handler (cio_loop_set_exception_handler):
 *  - a task step or callback that held the loop longer than
 *    slow_callback_duration (default 0.1 s): "Executing task 'name' (created
 *    at file.c:12) took 0.153 seconds; it gave control back at: ..." followed
 *    by the innermost frames of the task's stack where it suspended;
 *  - a task still pending when the loop closes ("Task was destroyed but it is
 *    pending") and a failed task released without anyone having awaited or
 *    detached it ("Task exception was never retrieved"), both reported in any
 *    mode, get " (created at file.c:12)" appended;
 *  - a failed task whose handle was never released when the loop is freed
 *    (a leaked cio_task *: its error would be lost);
 *  - a future of cio_future_new that nobody completed when the loop closes;
 *  - a non-thread-safe call (cio_call_soon, cio_call_later, cio_call_at,
 *    cio_loop_create_task, cio_future_set_result, cio_future_set_error,
 *    cio_future_cancel) made from a thread other than the one running the
 *    loop: reported, and the call fails with CIO_ERUNTIME (asyncio raises
 *    RuntimeError) instead of corrupting the loop.
 * Creation sites come from the macros cio_create_task() and
 * cio_loop_create_task() in task.h, which pass __FILE__ and __LINE__ to
 * cio_create_task_at() / cio_loop_create_task_at(); with debug mode off the
 * site is not stored and costs nothing.
 *
 * The stall detector (on by default; off with the loop option
 * `no_stall_detector`, CIO_STALL_DETECTOR=0, or a threshold of 0): one
 * watchdog thread per process, started when the first loop runs, looks at
 * every running loop a few times per threshold. A loop that has not come back
 * to its poll for longer than the threshold (default 1 s; CIO_STALL_THRESHOLD
 * in seconds, the loop option `stall_threshold`) is reported once per stall,
 * on stderr: the task (or callback) that holds the loop and its native call
 * stack, taken in the loop's thread by a real-time signal (SIGRTMAX-3, installed with SA_RESTART the first time a stall is seen; not
 * installed over a handler someone else put there). When the loop comes back
 * a second line says how long the stall lasted. A loop idle in its poll is
 * never stalled, with one exception, a bug: a loop that has slept in its poll
 * for longer than the threshold while work from other threads (an executor
 * job's outcome, cio_call_soon_threadsafe) waited in its inbox has lost a
 * wake-up; that is reported once ("... waited in its inbox (a lost
 * wake-up)") and the watchdog wakes the loop. The hot path pays one plain
 * store per loop iteration. Like
 * any signal, the one sent may cut short a blocking sleep or poll the stuck
 * thread is in (EINTR); that thread is already misbehaving.
 *
 * Task dumps: cio_loop_print_tasks() (task.h) prints every pending task with
 * its state, what it awaits and its native stack; cio_loop_print_task_tree()
 * prints the tasks as a tree (asyncio 3.14's pstree); and
 * cio_loop_dump_on_signal() makes a running program print both when it gets a
 * signal (`kill -USR1 <pid>`), as Go's runtime does on SIGQUIT.
 *
 * See docs/guide.md, "Debugging".
 */
#ifndef CIO_DEBUG_H
#define CIO_DEBUG_H

#include <stdbool.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Turn debug mode on or off for this loop (asyncio's loop.set_debug). Tasks
 * created while it was off have no creation site. Does not suspend. Returns 0
 * or -EINVAL (loop NULL), -ENOMEM. */
int cio_loop_set_debug(cio_loop *loop, bool enabled);

/* Whether the loop is in debug mode; false for NULL. */
bool cio_loop_get_debug(const cio_loop *loop);

/* Set the duration in seconds above which debug mode reports a task step or
 * callback as slow (asyncio's loop.slow_callback_duration; default 0.1).
 * Returns 0, or -EINVAL (loop NULL, seconds negative or NaN). */
int cio_loop_set_slow_callback_duration(cio_loop *loop, double seconds);

/* The slow-callback duration in seconds; 0.0 for NULL. */
double cio_loop_get_slow_callback_duration(const cio_loop *loop);

/* Set the stall detector's threshold for this loop in seconds (0 turns the
 * detector off for it). Takes effect at the watchdog's next look. Returns 0,
 * -EINVAL (loop NULL, seconds negative or NaN), -ENOMEM. */
int cio_loop_set_stall_threshold(cio_loop *loop, double seconds);

/* The stall threshold in seconds (0.0 = detector off); 0.0 for NULL. */
double cio_loop_get_stall_threshold(const cio_loop *loop);

/* Print the loop's pending tasks to `out` (a FILE *) as a tree, in the manner
 * of asyncio 3.14's pstree: a task hangs under the task that awaits it, else
 * (in debug mode) under the task that created it while that one is pending;
 * the others are roots. Each line gives the name, the state, what the task
 * awaits and (debug mode) its creation site. Callable from a task or callback
 * of that loop. Does not suspend. Returns the number of tasks printed, or
 * -EINVAL for a NULL argument. */
int cio_loop_print_task_tree(cio_loop *loop, void *out);

/* On signal `sig` (e.g. SIGUSR1), make `loop` print every pending task
 * (cio_loop_print_tasks) and the task tree (cio_loop_print_task_tree) to
 * stderr. The signal handler only wakes the loop; the printing is done by the
 * loop itself, between two callbacks (through a pipe registered with
 * cio_add_reader, so the loop counts one fd as registered: no deadlock is
 * reported while it is armed, and the virtual clock waits 5 ms before each
 * jump). One signal number serves every armed loop of the process. A
 * handler the program installed for sig is replaced. sig 0 disarms the loop.
 * Not async-signal-safe; call it from the loop's thread. Does not suspend.
 * Returns 0; -EINVAL (loop NULL, sig invalid or one the stall detector or
 * the stack-overflow guard uses), CIO_ECLOSED, -ENOSPC (64 loops armed
 * already), or a negative errno from pipe2/sigaction/cio_add_reader. */
int cio_loop_dump_on_signal(cio_loop *loop, int sig);

#ifdef __cplusplus
}
#endif
#endif
