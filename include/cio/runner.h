/* cio — the Runner (asyncio.Runner) behind cio_run (asyncio.run).
 *
 * A runner owns one event loop and one set of task-local values, created on
 * first use and kept across several cio_runner_run() calls: a value that
 * one run's main task sets with cio_local_set() is seen by the next run's
 * main task (asyncio's Runner keeps one contextvars.Context). Tasks left
 * pending by one run keep running in the next one.
 *
 * Ctrl-C, as asyncio.Runner.run has it: while a run is in progress in the
 * main thread, and only if SIGINT has its default disposition (a program that
 * installed its own SIGINT handler keeps it), the runner installs its own:
 *  - the first SIGINT cancels the main task (its cleanup runs); if the main
 *    task then ends cancelled, cio_runner_run returns CIO_EINTERRUPTED (the
 *    C spelling of KeyboardInterrupt) instead of -ECANCELED; a main task that
 *    handles the cancellation (cio_task_uncancel) and returns keeps its
 *    outcome;
 *  - a second SIGINT before the main task ends stops waiting for it:
 *    cio_runner_run returns CIO_EINTERRUPTED at once (the main task stays
 *    pending; cio_runner_close cancels it once more and waits). If the loop
 *    never got control after the first SIGINT (a task that never suspends),
 *    the second one acts as the default action (the process dies of SIGINT),
 *    which is asyncio's "raise KeyboardInterrupt inside the busy code";
 *  - the previous disposition is restored when the run ends (and at the
 *    second SIGINT already, so that a third one acts as before).
 * A handler set for SIGINT with cio_add_signal_handler() takes precedence
 * while it is installed.
 * Exit code: CIO_EINTERRUPTED is negative, so `return cio_run(...) < 0`
 * exits 1; a program that wants its shell to see "killed by SIGINT" (130)
 * re-raises: signal(SIGINT, SIG_DFL); raise(SIGINT).
 *
 * Not thread-safe: a runner is used from one thread.
 */
#ifndef CIO_RUNNER_H
#define CIO_RUNNER_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* asyncio.Runner: one loop (and one set of task-local values) kept across
 * several runs; opaque, created with cio_runner_new. */
typedef struct cio_runner cio_runner;

/* Create a runner (no loop yet: it is made on first use with `opts`, copied;
 * NULL = defaults). Does not suspend. Returns 0, -EINVAL (out NULL),
 * -ENOMEM. */
CIO_NODISCARD int cio_runner_new(cio_runner **out, const cio_loop_options *opts);

/* Run main(arg) as the main task of the runner's loop until it is done
 * (asyncio's Runner.run). Returns the main task's outcome: its non-negative
 * return value with *result (may be NULL) set, its error code, -ECANCELED,
 * or CIO_EINTERRUPTED after Ctrl-C (see above). Also: -EINVAL (runner or
 * main NULL), CIO_ECLOSED (the runner is closed), CIO_ERUNNING (an event
 * loop is running in this thread), CIO_EDEADLOCK (the main task can never
 * finish), -ENOMEM, or an error of cio_loop_new. Blocks the calling thread
 * while the loop runs. */
CIO_NODISCARD int cio_runner_run(cio_runner *r, cio_task_fn main, void *arg, void **result);

/* The runner's loop, created now if needed (asyncio's Runner.get_loop): for
 * adding signal handlers or tasks before a run. Owned by the runner. NULL
 * with cio_errcode() -EINVAL (r NULL), CIO_ECLOSED (closed), -ENOMEM. */
cio_loop *cio_runner_get_loop(cio_runner *r);

/* Close the runner (asyncio's Runner.close): cancel the tasks still pending
 * and wait for them (their errors other than cancellation go to the
 * exception handler); tasks those cancelled tasks started meanwhile are
 * cancelled once more and waited for; anything left after that is reported
 * ("Task was destroyed but it is pending") and dropped. Then shut the default
 * executor down, waiting for its jobs, and close and free the loop (running
 * child processes are killed and reaped, signal handlers removed).
 * Idempotent. Returns 0, -EINVAL (NULL), CIO_ERUNNING (called from inside
 * the runner's running loop). Blocks while the cancelled tasks finish. */
int cio_runner_close(cio_runner *r);

/* Close (if needed) and free the runner. NULL is a no-op. Returns 0,
 * -EINVAL (not a live runner), or CIO_ERUNNING (from inside its running
 * loop: nothing is freed). */
int cio_runner_free(cio_runner *r);

#ifdef __cplusplus
}
#endif
#endif
