/* cio — the thread pool (asyncio's run_in_executor, to_thread and
 * concurrent.futures.ThreadPoolExecutor).
 *
 * A task hands a blocking function to a pool of threads and suspends while
 * the other tasks keep running; the job's outcome comes back to the loop
 * through its cross-thread inbox. Each loop has a default executor, created
 * on first use with up to min(32, CPUs + 4) threads (threads start lazily, as
 * in ThreadPoolExecutor) and shut down, waiting for its jobs, when cio_run()
 * ends (cio_loop_close() shuts it down without waiting).
 *
 * A job is `int fn(void *arg, void **result)`, the shape of a task body: it
 * returns 0 (or any non-negative value) with *result set, or a negative code;
 * cio_raise() inside the job sets the message the awaiting task will see.
 * The job runs in a worker thread: it must not call cio functions that need
 * a loop or a task (cio_raise, cio_errmsg and cio_job_cancelled are fine).
 *
 * Cancellation: a thread cannot be interrupted. Cancelling the awaiting task
 * returns -ECANCELED from the await at once, and the job runs to its end in
 * its thread; cio_job_cancelled() lets a long job notice and stop early.
 *
 * Ownership of a cancelled job (one rule, every outcome): the caller's arg
 * and the job's result belong to the job until it is over. A job whose
 * awaiting task stopped waiting before the outcome reached it is
 * "abandoned"; when an abandoned job is over, the drop function given to
 * cio_run_in_executor_ex() is called exactly once with (result, arg) --
 * result is the job's result (possibly NULL) if it returned >= 0, NULL if it
 * failed -- and from then on drop owns both (it may free arg and result).
 * drop is never called for a job whose outcome was delivered (the await
 * returned it), nor for one that was refused (the call returned the error
 * without running fn; arg is still the caller's). Besides: a late error is
 * reported to the loop's exception handler (to stderr once the loop is
 * closed), and without a drop function a late non-NULL result is reported
 * as leaked.
 *
 * While a job is in flight the virtual clock does not move: time in the
 * worker thread is real, and a virtual timeout must not fire past it.
 */
#ifndef CIO_EXECUTOR_H
#define CIO_EXECUTOR_H

#include <stdbool.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A thread pool (cio_executor_new); NULL in the calls below = the loop's
 * default executor. */
typedef struct cio_executor cio_executor;

/* A job run in a worker thread (see above). */
typedef int (*cio_job_fn)(void *arg, void **result);

/* Called once when an abandoned job is over (see "Ownership" above) with its
 * result (NULL if it failed) and its arg: free what needs freeing. Runs on
 * the loop's thread, or in the worker thread if the loop is closed by then. */
typedef void (*cio_job_drop_fn)(void *result, void *arg);

/* Create a thread pool of up to max_threads threads (0 = min(32, CPUs + 4)),
 * started lazily as jobs arrive. It is not tied to a loop: tasks of several
 * loops may share it. Does not suspend. Returns 0, -EINVAL (out NULL,
 * max_threads < 0 or over 1024), -ENOMEM. */
CIO_NODISCARD int cio_executor_new(cio_executor **out, int max_threads);

/* Stop accepting jobs (later submissions fail with CIO_ESHUTDOWN). Jobs
 * already queued still run, as ThreadPoolExecutor.shutdown does. With wait,
 * block the calling thread until every job has finished and the threads
 * have exited; their outcomes reach the awaiting tasks once the loop runs
 * again (from a task, prefer cio_to_thread on a helper that calls this, so
 * the other tasks keep running). Idempotent. Returns 0, -EINVAL (NULL or not
 * a live executor), -EDEADLK (wait from one of ex's own jobs), CIO_EFORKED
 * (inherited across fork()). */
int cio_executor_shutdown(cio_executor *ex, bool wait);

/* Shut down waiting (as cio_executor_shutdown(ex, true)) and free. Returns 0,
 * -EDEADLK from one of ex's own jobs (nothing is freed), -EINVAL for the
 * default executor of the running loop (it belongs to the loop; the loop
 * frees it), CIO_EDOUBLEFREE for a pointer that is not a live executor (a
 * second free). NULL is a no-op. In the child of a fork(), an inherited
 * executor is forgotten without touching its threads (they are the
 * parent's; its memory is leaked in the child). */
int cio_executor_free(cio_executor *ex);

/* The maximum number of threads of ex, or -EINVAL. */
int cio_executor_max_threads(const cio_executor *ex);

/* The default executor of the running loop, created if needed (it stays the
 * loop's). NULL with cio_errcode() CIO_ENOTRUNNING, CIO_ECLOSED, -ENOMEM. */
cio_executor *cio_get_default_executor(void);

/* Run fn(arg) in ex (NULL = the running loop's default executor) and
 * suspend the current task until it is done (asyncio's
 * `await loop.run_in_executor(ex, fn, arg)`; for several jobs at once, run
 * each from its own task). Returns fn's outcome: its non-negative return
 * value with *result (may be NULL) set, or its error code with its message.
 * Also: -ECANCELED (the task was cancelled: returned at once, the job keeps
 * running, see above), -EINVAL (fn NULL), CIO_ESHUTDOWN (ex shut down),
 * CIO_EFORKED (ex was created before a fork() and this is the child),
 * CIO_ENOTASK (outside a task), -ENOMEM, -EAGAIN (no thread could be
 * started and none is running).
 * Cancel-safety: on -ECANCELED *result is untouched; fn(arg) may still be
 * running, so arg must stay valid until it ends (use a heap object, or pass
 * a drop function to learn when it is over). */
CIO_NODISCARD int cio_run_in_executor(cio_executor *ex, cio_job_fn fn, void *arg, void **result);

/* As cio_run_in_executor, plus drop: called once with (result or NULL, arg)
 * when the job is over after its awaiting task stopped waiting, whatever the
 * job's outcome (see "Ownership" above), so that an abandoned result and arg
 * are freed instead of leaked. drop may be NULL. */
CIO_NODISCARD int cio_run_in_executor_ex(cio_executor *ex, cio_job_fn fn, void *arg,
                                         cio_job_drop_fn drop, void **result);

/* asyncio.to_thread: cio_run_in_executor(NULL, fn, arg, result). */
CIO_NODISCARD int cio_to_thread(cio_job_fn fn, void *arg, void **result);

/* Inside a job: true once the task awaiting it was cancelled (the result
 * will be dropped), so that a long job can stop early. False outside a job.
 * Thread-safe, cheap (one atomic load). */
bool cio_job_cancelled(void);

#ifdef __cplusplus
}
#endif
#endif
