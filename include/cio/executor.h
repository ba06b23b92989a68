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
 * its thread; cio_job_cancelled() lets a long job notice and stop early. Its
 * late outcome is never lost silently: a late error is reported to the
 * loop's exception handler; a late non-NULL result is passed to the drop
 * function given to cio_run_in_executor_ex() (to free it), or reported if
 * there is none; a late NULL result is simply discarded.
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

/* Frees a result that nobody will read (the awaiting task was cancelled).
 * Runs on the loop's thread, or in the worker thread if the loop is closed by
 * then. */
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
 * the other tasks keep running). Idempotent. Returns 0, -EINVAL (NULL),
 * -EDEADLK (wait from one of ex's own jobs). */
int cio_executor_shutdown(cio_executor *ex, bool wait);

/* Shut down waiting (as cio_executor_shutdown(ex, true)) and free. Returns 0,
 * -EDEADLK from one of ex's own jobs (nothing is freed), -EINVAL for the
 * default executor of the running loop (it belongs to the loop; the loop
 * frees it). NULL is a no-op. */
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
 * CIO_ENOTASK (outside a task), -ENOMEM, -EAGAIN (no thread could be
 * started and none is running).
 * Cancel-safety: on -ECANCELED *result is untouched; fn(arg) may still be
 * running, so arg must stay valid until it ends (use a heap object, or pass
 * a drop function to learn when it is over). */
CIO_NODISCARD int cio_run_in_executor(cio_executor *ex, cio_job_fn fn, void *arg, void **result);

/* As cio_run_in_executor, plus drop: called with the result and arg when the
 * job succeeds after its awaiting task was cancelled (and only then), so that
 * an abandoned result is freed instead of leaked. drop may be NULL. */
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
