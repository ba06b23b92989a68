/* Layer 8: the thread pool (internal view). */
#ifndef CIO_EXECUTOR_INTERNAL_H
#define CIO_EXECUTOR_INTERNAL_H

#include "cio/executor.h"
#include "task.h"

/* cio_run_in_executor_ex for the library's own jobs, plus arg_free: when it
 * is given, arg belongs to the call from the start, and arg_free(arg) is
 * called once whatever happens (refused, done, abandoned, loop closed).
 * `who` names the public call in messages. */
int cio__run_job(struct cio_task *t, cio_executor *ex, cio_job_fn fn, void *arg,
                 cio_job_drop_fn drop, void (*arg_free)(void *arg), void **result,
                 const char *who);

#endif
