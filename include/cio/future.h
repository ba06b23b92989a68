/* cio — futures (asyncio.Future).
 *
 * A future is pending, then done exactly once with a result (void *), an error
 * (a negative code plus a message) or cancelled. Done callbacks are never run
 * synchronously: each is scheduled with call_soon when the future completes,
 * in registration order (a callback added to a done future is scheduled at
 * once). Futures belong to one loop and are reference counted: the creator
 * holds one reference and releases it with cio_future_unref().
 *
 * An error that nobody read (cio_future_result / cio_future_error /
 * cio_await) is reported to the loop's exception handler when the future is
 * freed ("Future exception was never retrieved").
 */
#ifndef CIO_FUTURE_H
#define CIO_FUTURE_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A done callback (cio_future_add_done_callback): called with the future
 * once it is done, scheduled on the loop, outside any task. */
typedef void (*cio_done_fn)(cio_future *fut, void *arg);

/* loop.create_future(). Returns the new future (the caller owns one
 * reference), or NULL with cio_errcode() set to -EINVAL (loop NULL),
 * CIO_ECLOSED or -ENOMEM. */
cio_future *cio_future_new(cio_loop *loop);

/* Take another reference. Returns fut. */
cio_future *cio_future_ref(cio_future *fut);

/* Release a reference. Returns 0, -EINVAL for NULL, CIO_EDOUBLEFREE where an
 * extra release can be detected. */
int cio_future_unref(cio_future *fut);

/* Complete with a result. Returns 0, -EINVAL, CIO_EINVALSTATE if already done,
 * -EPERM on a task's future (a task is completed by its own body). */
CIO_NODISCARD int cio_future_set_result(cio_future *fut, void *result);

/* Complete with an error: code < 0 plus a printf-style message (fmt may be
 * NULL: the code's description is used). Returns as cio_future_set_result,
 * and -EINVAL if code >= 0. Setting -ECANCELED is refused with -EINVAL: use
 * cio_future_cancel. */
CIO_NODISCARD int cio_future_set_error(cio_future *fut, int code, const char *fmt, ...)
    CIO_PRINTF(3, 4);

/* Cancel (asyncio's cancel(msg)): returns 1 if the future was pending and is
 * now cancelled, 0 if it was already done (nothing changes), -EINVAL for NULL.
 * msg may be NULL; it is copied. For a task use cio_task_cancel. */
int cio_future_cancel(cio_future *fut, const char *msg);

/* Whether fut is done / cancelled; false for NULL or a dead future. */
bool cio_future_done(const cio_future *fut);
bool cio_future_cancelled(const cio_future *fut);

/* The outcome of a done future: 0 with *result set (result may be NULL; for
 * a task's future, the body's non-negative return value instead of 0), the
 * error code, -ECANCELED, or CIO_EINVALSTATE while pending, -EINVAL for NULL.
 * Marks an error as retrieved, and puts its message in cio_errmsg(). */
int cio_future_result(cio_future *fut, void **result);

/* The error code of a done future (0 if it has a result, -ECANCELED if
 * cancelled), CIO_EINVALSTATE while pending. Marks the error retrieved. */
int cio_future_error(cio_future *fut);

/* The error message (or cancel message) of a done future; NULL if none. Owned
 * by the future. */
const char *cio_future_error_message(const cio_future *fut);

/* Register fn(fut, arg), scheduled with call_soon once fut is done (at once
 * if it is done already). Returns 0, -EINVAL, -ENOMEM. */
CIO_NODISCARD int cio_future_add_done_callback(cio_future *fut, cio_done_fn fn, void *arg);

/* Remove every registration of (fn, arg) not yet scheduled. Returns how many
 * were removed, or -EINVAL. */
int cio_future_remove_done_callback(cio_future *fut, cio_done_fn fn, void *arg);

/* The loop fut belongs to; NULL for NULL or a dead future. */
cio_loop *cio_future_get_loop(const cio_future *fut);

/* await fut from the current task: suspends until fut is done (does not
 * suspend if it is done already) and returns its outcome as
 * cio_future_result. Also: CIO_ENOTASK outside a task, CIO_EWRONGLOOP if fut
 * belongs to another loop, CIO_ESELF for the task's own future, -ECANCELED if
 * the awaiting task is cancelled meanwhile (fut is then cancelled too, as in
 * asyncio). */
CIO_NODISCARD int cio_future_await(cio_future *fut, void **result);

#ifdef __cplusplus
}
#endif
#endif
