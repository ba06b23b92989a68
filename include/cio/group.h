/* cio — structured concurrency and the combinators (asyncio's TaskGroup,
 * gather, wait, wait_for, timeout, shield, as_completed).
 *
 * Every call here follows asyncio 3.13 step for step: the same program makes
 * the same callbacks run in the same loop iterations, so it prints the same
 * lines in the same order as under CPython (tests/test_group.c checks this
 * against traces recorded from CPython, tests/py/group_traces.py). The
 * deliberate differences, each also noted where it applies:
 *  - timeout(0) does not eat an earlier, unrelated cancel (cpython#134471);
 *  - TaskGroup.cancel() (3.15) does not swallow an outer cancel
 *    (cpython#155433);
 *  - errors are never dropped silently: shield reports an inner failure after
 *    its caller was cancelled; gather and wait leave the errors they do not
 *    hand over unretrieved, so they are reported when the future is freed;
 *  - as_completed's next() cancelled does not consume an item;
 *  - a TaskGroup cancels its children in creation order (asyncio: in the
 *    order of a set), and always sees a child's completion through its
 *    callback, even for an eager child done at creation (as CPython does
 *    since gh-128550);
 *  - task.h's rule applies to every child: a task that swallows a
 *    cancellation must cio_task_uncancel() itself, or it ends cancelled.
 *
 * The C spelling of the Python statements:
 *
 *   async with asyncio.TaskGroup() as tg:        cio_taskgroup *tg = cio_taskgroup_new();
 *       tg.create_task(work(1))                  int rc;
 *       await something()                        CIO_WITH_TASKGROUP(tg, rc) {
 *                                                  cio_taskgroup_create_task(tg, work, &one, NULL);
 *                                                  rc = something();
 *                                                  if (rc < 0) break;
 *                                                }
 *                                                ... rc is the group's outcome ...
 *                                                cio_taskgroup_free(tg);
 *
 *   async with asyncio.timeout(10):              cio_timeout to = CIO_TIMEOUT_INIT;
 *       await work()                             CIO_WITH_TIMEOUT(&to, 10, rc) {
 *                                                  rc = work();
 *                                                }   // rc: work's outcome, or -ETIMEDOUT
 *
 * A CIO_WITH_* scope is a block run once; its exit call is made when the block
 * ends normally or is left with `break` or `continue` (both only leave the
 * scope; unlike Python's `continue` inside a `with`, they do not act on an
 * enclosing loop). The variable `rc` is the body's status going in (set it
 * to the negative code the body failed with, then break) and the scope's
 * outcome coming out. The plain calls underneath (cio_taskgroup_enter/join,
 * cio_timeout_enter/exit) can be used directly.
 *
 * `return` or `goto` out of the block: with gcc and clang (any -std, the
 * macros use __attribute__((cleanup))) the exit call is still made, as the
 * block is left, with the current value of `rc` as the body's status (so
 * `if (rc < 0) return rc;` is a failing body, `return x;` with rc >= 0 a
 * normal end): a timeout scope is disarmed, a group is joined (the return
 * waits for the children, as Python's return inside `async with` does). The
 * outcome cannot reach the caller then: if it is an error other than rc
 * (a lost CIO_EGROUP, an -ETIMEDOUT), the loop's exception handler is told;
 * if it is -ECANCELED from an outer cancellation, the task's cancellation is
 * re-armed, so that its next suspension sees it. Prefer `break` all the
 * same. Other compilers (or -DCIO_NO_SCOPE_GUARD): strict C11 has no such
 * hook, and `return`/`goto` skip the exit call — never leave a scope that
 * way there (a timeout scope would stay armed on a dead frame and fire into
 * it; a group would be left unjoined). longjmp out of a scope is never
 * handled.
 *
 * Common codes: every call that must run inside a task returns CIO_ENOTASK
 * outside one; a NULL or dead object is -EINVAL; an object of another loop is
 * CIO_EWRONGLOOP; a call made in the wrong state (join twice, add a task to a
 * finished group, ...) is CIO_EINVALSTATE. Messages say which.
 */
#ifndef CIO_GROUP_H
#define CIO_GROUP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "No deadline": asyncio's None for every timeout and deadline here. Any
 * +infinite value means the same. */
#define CIO_NO_TIMEOUT HUGE_VAL

#define CIO__CAT2(a, b) a##b
#define CIO__CAT(a, b) CIO__CAT2(a, b)

/* The scope pattern behind the CIO_WITH_* macros: `enter` is evaluated once
 * into rc; if it is 0 the body runs once, and `exit` (which reads and writes
 * rc) runs when the body is left normally or with break/continue (those only
 * end the inner loop). */
/* The guard behind the scopes: armed while the body runs; a way out of the
 * block that skips the exit call (return, goto) finds it armed when it goes
 * out of scope, and makes the exit call then (gcc/clang cleanup attribute). */
typedef struct cio__scope_guard {
  int kind; /* CIO__SCOPE_TIMEOUT or CIO__SCOPE_GROUP */
  void *obj;
  int *rc;
  int armed, once;
} cio__scope_guard;
#define CIO__SCOPE_TIMEOUT 1
#define CIO__SCOPE_GROUP 2

/* Internal: the exit call of a scope left by return or goto. */
void cio__scope_abandoned(cio__scope_guard *g);

static inline void cio__scope_guard_end(cio__scope_guard *g) {
  if (g->armed) cio__scope_abandoned(g);
}

#if (defined(__GNUC__) || defined(__clang__)) && !defined(CIO_NO_SCOPE_GUARD)
#define CIO__GUARD_ATTR __attribute__((cleanup(cio__scope_guard_end)))
#else
#define CIO__GUARD_ATTR
#endif

#define CIO__SCOPE(rc, kind, obj, enter, exit)                                            \
  for (cio__scope_guard CIO__CAT(cio__guard_, __LINE__) CIO__GUARD_ATTR =                   \
           {(kind), (obj), &(rc), 0, 1};                                                    \
       CIO__CAT(cio__guard_, __LINE__).once; CIO__CAT(cio__guard_, __LINE__).once = 0)      \
    for (int CIO__CAT(cio__scope_, __LINE__) =                                              \
             (((rc) = (enter)) == 0) && (CIO__CAT(cio__guard_, __LINE__).armed = 1);        \
         CIO__CAT(cio__scope_, __LINE__);                                                   \
         CIO__CAT(cio__scope_, __LINE__) = 0, (exit), CIO__CAT(cio__guard_, __LINE__).armed = 0) \
      for (int CIO__CAT(cio__body_, __LINE__) = 1; CIO__CAT(cio__body_, __LINE__);          \
           CIO__CAT(cio__body_, __LINE__) = 0)

/* ==== TaskGroup ============================================================== */

/* A task group (asyncio.TaskGroup). Heap object: cio_taskgroup_new() /
 * cio_taskgroup_free(). It holds a reference to each child until it has seen
 * the child finish (its done callback ran, one loop iteration after the
 * child ended), then forgets it, as asyncio does: a group that supervises
 * many short children (a server's connections) does not grow. A child that
 * failed stays referenced by its cio_group_error until the group is freed.
 * So a task pointer the group hands out is borrowed: valid until the child
 * finished and the group saw it (or until free, if it failed); take a
 * reference (cio_task_ref) to keep it longer, to read its result after
 * join, say. */
typedef struct cio_taskgroup cio_taskgroup;

/* One error collected by a group: a child's, or the body's (task NULL). */
typedef struct cio_group_error {
  int code;         /* the error code (never -ECANCELED) */
  const char *msg;  /* its message; never NULL */
  cio_task *task;   /* the child that failed (borrowed: the group keeps it
                       until cio_taskgroup_free), NULL for the body */
} cio_group_error;

/* asyncio.TaskGroup(): a new group, not entered. Does not suspend; may be
 * called outside a task. Returns the group (the caller owns it) or NULL with
 * cio_errcode() -ENOMEM. */
cio_taskgroup *cio_taskgroup_new(void);

/* __aenter__: bind the group to the current task (its "parent") and loop.
 * Does not suspend. If cio_taskgroup_cancel() was called before, the group
 * is cancelled now. Returns 0, -EINVAL (NULL), CIO_ENOTASK, CIO_EINVALSTATE
 * (already entered). */
CIO_NODISCARD int cio_taskgroup_enter(cio_taskgroup *tg);

/* tg.create_task(): start fn(arg) as a task of the group (opts as
 * cio_create_task, may be NULL). May be called by any task or callback of
 * the group's loop, also while the parent waits in join. Does not suspend.
 * Returns the task, borrowed (valid until the group saw it finish, see
 * above; take a reference to keep it longer), or NULL with cio_errcode():
 *   -EINVAL           tg or fn NULL, bad stack size
 *   CIO_EINVALSTATE   the group was not entered, is shutting down (a child
 *                     failed, or it was cancelled), or is finished
 *   CIO_EWRONGLOOP    called from another thread's or loop's context
 *   CIO_ECLOSED, -ENOMEM */
cio_task *cio_taskgroup_create_task(cio_taskgroup *tg, cio_task_fn fn, void *arg,
                                    const cio_task_options *opts);

/* __aexit__: wait until every child is done, then report the outcome. Must
 * be called by the parent task, once. `body_rc` is how the body ended: >= 0
 * normally, -ECANCELED if it was interrupted by a cancellation, another
 * negative code if it failed (its message is taken from cio_errmsg()).
 * Suspends while children are pending.
 *
 * The rules, as asyncio 3.13 (plus 3.15's cancel()):
 *  - The first child that fails (an error, not a cancellation) cancels every
 *    other child and, once, the parent task: whatever the body awaits returns
 *    -ECANCELED. join withdraws that request (uncancel), so that only an
 *    outer cancellation stays visible.
 *  - A body that failed or was cancelled cancels the children too.
 *  - A cancellation of the parent from outside while join waits cancels the
 *    children; join still waits for all of them.
 * Returns:
 *   0               all children done; no error (cancelled children are not
 *                   errors). A positive body_rc is passed through.
 *   CIO_EGROUP      one or more errors: children's in completion order, then
 *                   the body's; walk them with cio_taskgroup_errors(). The
 *                   message lists them all. If the parent also has a
 *                   cancellation from outside pending, it is re-armed: the
 *                   parent's next suspension returns -ECANCELED (3.13).
 *   -ECANCELED      the parent was cancelled from outside (the body got
 *                   -ECANCELED, or join's wait did) and no child failed
 *   -ENOMEM         a child or the body failed, but no error could be
 *                   recorded (out of memory); the message names the first.
 *                   (If some were recorded, CIO_EGROUP, whose message counts
 *                   those lost.) A failure is never turned into success.
 *   -EINVAL, CIO_ENOTASK, CIO_EINVALSTATE (not entered, joined already, or
 *                   not called by the parent task)
 * Difference from asyncio: an outer cancel that arrives while the body is
 * failing drops the body's error as asyncio does (CancelledError wins), but
 * the dropped error is named in the -ECANCELED message. */
CIO_NODISCARD int cio_taskgroup_join(cio_taskgroup *tg, int body_rc);

/* TaskGroup.cancel() (Python 3.15): a non-error early exit. Cancels every
 * child not yet done and, once, the parent (its body's next suspension
 * returns -ECANCELED), and join then returns 0 rather than -ECANCELED.
 * Idempotent; before enter it makes enter cancel; after the group finished
 * it does nothing. Unlike CPython 3.15.0 (cpython#155433), a cancellation
 * from outside that arrives meanwhile (an enclosing timeout, say) is not
 * swallowed: join returns -ECANCELED for it. May be called from any task or
 * callback of the group's loop. Does not suspend. Returns 0, -EINVAL,
 * CIO_EWRONGLOOP. */
int cio_taskgroup_cancel(cio_taskgroup *tg);

/* The errors collected so far (all of them once join returned CIO_EGROUP):
 * an array of *n entries owned by the group, valid until the next call that
 * changes the group or cio_taskgroup_free. NULL with *n = 0 if none or tg is
 * NULL. Does not suspend. */
const cio_group_error *cio_taskgroup_errors(const cio_taskgroup *tg, size_t *n);

/* Children not yet done (as the group saw them: a child's completion is
 * processed one loop iteration after it finished). 0 for NULL. */
size_t cio_taskgroup_pending(const cio_taskgroup *tg);

/* Free the group and release its children. Normally called after join. If
 * children are still pending (join was never called), they are cancelled,
 * left to the loop to finish, and the loop's exception handler is told.
 * NULL is a no-op. Does not suspend. Returns 0, -EINVAL (not a live group),
 * CIO_EINVALSTATE (a task is waiting in join: nothing is freed).
 * A freed group's memory keeps its "freed" mark (it is never handed back to
 * malloc, and is reused for a new group only after 64 other groups were
 * freed after it): a second free, or any other call on the freed group,
 * returns -EINVAL (-EINVAL/0/NULL for the accessors) without touching
 * freed memory. Not caught: a stale pointer used after its memory was
 * reused by a new group (at least 64 frees later) acts on that group; a
 * pointer that never was a group (its memory is read to check); a free
 * racing with another call on the same group from another thread. */
int cio_taskgroup_free(cio_taskgroup *tg);

/* `async with tg:` — enter, run the block, join. rc: see the top of this
 * file; after the scope it holds 0, CIO_EGROUP, -ECANCELED, or enter's
 * error (the body then did not run). */
#define CIO_WITH_TASKGROUP(tg, rc)                                 \
  CIO__SCOPE(rc, CIO__SCOPE_GROUP, (tg), cio_taskgroup_enter(tg), \
             (rc) = cio_taskgroup_join((tg), (rc)))

/* ==== timeout scopes ============================================================ */

/* A timeout scope (asyncio.timeout / timeout_at). Caller storage — usually a
 * local of the task that uses it; nothing is allocated. Its contents are
 * private: use the calls below. Its starting state is all zero: initialize
 * it with CIO_TIMEOUT_INIT, cio_timeout_init(), memset or static storage
 * before the first enter (enter reads it, to refuse a scope that is still
 * active; uninitialized storage is undefined, and memory checkers such as
 * valgrind report it). A scope may be entered again after its exit (a new
 * scope in the same storage), never while active. */
typedef struct cio_timeout {
  union {
    void *p;
    int64_t i;
    double d;
  } cio__opaque[16];
} cio_timeout;

/* The zero starting state of a cio_timeout, for an initializer:
 *   cio_timeout to = CIO_TIMEOUT_INIT; */
#define CIO_TIMEOUT_INIT {{{0}}}

/* Put `to` in its starting state (what CIO_TIMEOUT_INIT gives), never while
 * it is active. NULL is a no-op. Does not suspend. */
void cio_timeout_init(cio_timeout *to);

/* `async with asyncio.timeout(delay):` enter: the current task is cancelled
 * `delay` seconds from now unless the scope exits first. delay <= 0 fires on
 * the next loop iteration (never inline); CIO_NO_TIMEOUT (any +inf) means no
 * deadline. Does not suspend. Returns 0, -EINVAL (to NULL, delay NaN),
 * CIO_ENOTASK, CIO_EINVALSTATE (to is an active scope), -ENOMEM (timer heap
 * growth). */
CIO_NODISCARD int cio_timeout_enter(cio_timeout *to, double delay);

/* timeout_at(when): as cio_timeout_enter with an absolute deadline on the
 * loop clock (cio_loop_time); when <= now fires on the next iteration.
 * Returns as cio_timeout_enter (-EINVAL for to NULL or when NaN). */
CIO_NODISCARD int cio_timeout_enter_at(cio_timeout *to, double when);

/* __aexit__: disarm, and turn the scope's own cancellation into a timeout.
 * body_rc is how the block ended (as for cio_taskgroup_join). Must be called
 * by the task that entered. Does not suspend. Returns:
 *   -ETIMEDOUT  the deadline passed, the block ended with -ECANCELED, and the
 *               task has no other cancellation request than those it had at
 *               entry (the scope withdraws its own with uncancel)
 *   body_rc     otherwise: the block's own result or error, or -ECANCELED
 *               when another cancellation (an outer one) arrived too. If the
 *               deadline passed and the block failed with another error, the
 *               error stands and its message notes the expiry.
 *   -EINVAL, CIO_EINVALSTATE (not active, or another task)
 * Unlike CPython (cpython#134471), a cancellation requested before the
 * deadline fired and not yet delivered is never taken for the scope's own:
 * timeout(0) does not eat an earlier cancel. */
CIO_NODISCARD int cio_timeout_exit(cio_timeout *to, int body_rc);

/* Timeout.reschedule(when): move the deadline of an active, not yet expired
 * scope (absolute loop time; CIO_NO_TIMEOUT disarms; <= now fires on the next
 * iteration). May be called by any task or callback of the scope's loop.
 * Does not suspend. Returns 0, -EINVAL (NULL, NaN), CIO_EINVALSTATE (not
 * entered, expired or exited), CIO_EWRONGLOOP, -ENOMEM. */
CIO_NODISCARD int cio_timeout_reschedule(cio_timeout *to, double when);

/* Timeout.when(): the deadline in loop seconds as given (loop time at enter
 * + delay, the `when` of enter_at or reschedule), also when it is in the
 * past (timeout(-11) entered at t = 5: -6); CIO_NO_TIMEOUT if none (or for
 * NULL / a never-entered scope). */
double cio_timeout_when(const cio_timeout *to);

/* Timeout.expired(): true once the deadline fired (and after exit). */
bool cio_timeout_expired(const cio_timeout *to);

/* `async with asyncio.timeout(delay):` — rc after the scope: see
 * cio_timeout_exit (or enter's error; the body then did not run). */
#define CIO_WITH_TIMEOUT(to, delay, rc)                                           \
  CIO__SCOPE(rc, CIO__SCOPE_TIMEOUT, (to), cio_timeout_enter((to), (delay)), \
             (rc) = cio_timeout_exit((to), (rc)))

/* `async with asyncio.timeout_at(when):` */
#define CIO_WITH_TIMEOUT_AT(to, when, rc)                                           \
  CIO__SCOPE(rc, CIO__SCOPE_TIMEOUT, (to), cio_timeout_enter_at((to), (when)), \
             (rc) = cio_timeout_exit((to), (rc)))

/* ==== wait_for =================================================================== */

/* asyncio.wait_for(fut, timeout) (3.12 semantics): await fut (a future or a
 * task, see the macro below) for at most `timeout` seconds. Suspends.
 *  - CIO_NO_TIMEOUT: a plain await.
 *  - At the deadline the awaited task/future is cancelled and waited for
 *    (so wait_for can take longer than the timeout). If it ends cancelled,
 *    -ETIMEDOUT; if it finished meanwhile (or swallowed the cancellation,
 *    see task.h: it must cio_task_uncancel() itself), its outcome wins.
 *  - timeout <= 0: fut's outcome if it is done already, else it is cancelled
 *    and waited for as above.
 *  - Cancelling the caller cancels fut.
 * fut stays owned by the caller. Returns fut's outcome (0 with *result, its
 * error code, -ECANCELED), -ETIMEDOUT, -EINVAL (NULL, NaN timeout),
 * CIO_ENOTASK, CIO_EWRONGLOOP, CIO_ESELF (the caller's own task), -ENOMEM. */
CIO_NODISCARD int cio_wait_for(cio_future *fut, double timeout, void **result);

/* wait_for(coroutine, timeout): run fn(arg, result) inline in the current
 * task under a timeout scope, exactly as asyncio awaits a coroutine passed
 * to wait_for (no task is created; fn's own suspension points see the
 * cancellation). timeout <= 0 wraps fn in a task that is cancelled before
 * it starts (as asyncio's ensure_future): fn never runs. Returns fn's return
 * value (>= 0, *result set) or error, -ECANCELED, -ETIMEDOUT, -EINVAL (fn
 * NULL, NaN), CIO_ENOTASK, -ENOMEM. */
CIO_NODISCARD int cio_wait_for_call(cio_task_fn fn, void *arg, double timeout, void **result);

/* ==== shield ===================================================================== */

/* asyncio.shield(inner): await inner (a future or task) so that a
 * cancellation of the caller does not reach it. Suspends unless inner is
 * done (then its outcome is returned at once).
 *  - The caller cancelled: returns -ECANCELED at once; inner runs on.
 *  - inner cancelled directly: returns -ECANCELED.
 *  - Difference from asyncio (where the error is marked retrieved and lost):
 *    if inner fails after the caller stopped waiting, its error is passed to
 *    the loop's exception handler ("shielded ... failed after its awaiting
 *    task was cancelled").
 * shield holds its own reference to inner while the caller waits; after
 * the caller was cancelled it watches inner without keeping it alive: an
 * inner future that never completes is freed with its last reference.
 * inner stays owned by the caller. Returns inner's outcome (0 with *result, its error,
 * -ECANCELED), -EINVAL, CIO_ENOTASK, CIO_EWRONGLOOP, CIO_ESELF, -ENOMEM. */
CIO_NODISCARD int cio_shield(cio_future *inner, void **result);

/* ==== gather ===================================================================== */

/* A function call to run as a task (the coroutine of asyncio's gather). */
typedef struct cio_call {
  cio_task_fn fn; /* the task body */
  void *arg;      /* its argument */
} cio_call;

/* asyncio.gather(*aws, return_exceptions=...): wait for n futures/tasks
 * (cio_task_future() turns a task into one; an entry may repeat, it is
 * waited for once) and collect their results in argument order. Suspends
 * (unless all are done already; n == 0 returns 0 at once).
 *  - codes == NULL (return_exceptions=False): returns 0 with results[i] set
 *    when all succeeded; at the first child that fails or ends cancelled,
 *    returns its code (and message) at once while the other children keep
 *    running, and results[] is left all NULL.
 *  - codes != NULL (return_exceptions=True): waits for all; codes[i] is 0
 *    (results[i] set) or the child's error code or -ECANCELED (results[i]
 *    NULL); messages: cio_future_error_message(aws[i]). Returns 0.
 *  - Cancelling the caller cancels every child not done; gather then returns
 *    -ECANCELED (also with codes, after all children are done, as asyncio
 *    since 3.7; codes[]/results[] are filled all the same), with the
 *    cancel's message (that of the last child to finish, as asyncio). A child cancelled
 *    on its own does not cancel the others.
 * results (n slots) may be NULL if unused. The futures stay owned by the
 * caller. An error of a child that finishes after gather returned is left
 * unretrieved, so it is reported when the child is freed unless read
 * (difference from asyncio, which silently marks it retrieved).
 * Returns as above, or -EINVAL (aws NULL with n > 0, a NULL or dead entry),
 * CIO_ENOTASK, CIO_EWRONGLOOP, CIO_ESELF, -ENOMEM. */
CIO_NODISCARD int cio_gather(cio_future *const *aws, size_t n, void **results, int *codes);

/* gather(f(a), g(b), ...): create one task per call (in order, in the
 * current loop), then cio_gather over them. If `tasks` is not NULL it
 * receives the n tasks, each a reference the caller owns (release with
 * cio_task_unref; the messages of failed children are read from them);
 * otherwise cio_gather_calls releases them (tasks still running keep
 * running to their end). If a task cannot be created, those created are
 * cancelled and released and the creation error is returned (-ENOMEM,
 * -EINVAL). Returns as cio_gather, and -EINVAL for a NULL fn. */
CIO_NODISCARD int cio_gather_calls(const cio_call *calls, size_t n, void **results, int *codes,
                                   cio_task **tasks);

/* ==== wait ======================================================================= */

/* When cio_wait returns (asyncio's return_when). */
typedef enum cio_return_when {
  CIO_ALL_COMPLETED = 0,   /* every future is done */
  CIO_FIRST_COMPLETED = 1, /* any future is done (result, error or cancelled) */
  CIO_FIRST_EXCEPTION = 2  /* any future failed (an error, not a cancellation);
                              else as ALL_COMPLETED */
} cio_return_when;

/* asyncio.wait(fs, timeout=..., return_when=...): wait until the condition
 * holds or `timeout` seconds passed (CIO_NO_TIMEOUT: no limit), then split
 * the n futures (duplicates counted once) into done and pending, each in
 * argument order. A timeout cancels nothing and is not an error; nor does a
 * cancellation of the caller cancel the futures. Always suspends: as in
 * asyncio, even futures done already are seen through their callbacks, so
 * wait returns two loop iterations later at the earliest.
 * done / pending: arrays of n slots, or NULL if not wanted; ndone / npending
 * may be NULL. Nothing changes hands: the futures stay the caller's. Errors
 * of done futures are not marked retrieved.
 * Returns 0, -ECANCELED (the caller was cancelled; the outputs are filled
 * all the same), -EINVAL (empty set, NULL/dead entry, bad return_when, NaN
 * timeout), CIO_ENOTASK, CIO_EWRONGLOOP, CIO_ESELF, -ENOMEM. */
CIO_NODISCARD int cio_wait(cio_future *const *fs, size_t n, double timeout,
                           cio_return_when return_when, cio_future **done, size_t *ndone,
                           cio_future **pending, size_t *npending);

/* ==== as_completed =============================================================== */

/* An as_completed iterator: hands the given futures out in the order they
 * complete (`async for f in asyncio.as_completed(fs, timeout=...)`). Heap
 * object: cio_as_completed_new / cio_as_completed_free. */
typedef struct cio_as_completed cio_as_completed;

/* as_completed(fs, timeout=...): watch n futures (duplicates counted once);
 * the optional total `timeout` (seconds from now; CIO_NO_TIMEOUT for none)
 * makes every item not done by then report -ETIMEDOUT. Nothing is
 * cancelled, ever. Must be called on the loop's thread while it runs (from a
 * task or a callback). Does not suspend. The iterator holds a reference to
 * each future until freed. Returns the iterator or NULL with cio_errcode():
 * -EINVAL (fs NULL with n > 0, NULL/dead entry, NaN timeout),
 * CIO_ENOTRUNNING, CIO_EWRONGLOOP, CIO_ESELF (the calling task is in fs),
 * -ENOMEM. */
cio_as_completed *cio_as_completed_new(cio_future *const *fs, size_t n, double timeout);

/* The next completed future: the `async for` step. Suspends until one is
 * done (not if one is waiting already). *done is borrowed from the iterator
 * (valid until it is freed); read its outcome with cio_future_result.
 *   while ((rc = cio_as_completed_next(it, &f)) == 0) { ... }
 * Returns 0 (*done set), 1 when every item has been handed out
 * (StopAsyncIteration), -ETIMEDOUT for each item still pending when the
 * total timeout passed, -ECANCELED (the caller was cancelled; the item is
 * not consumed — difference from asyncio, which loses it), -EINVAL,
 * CIO_ENOTASK, CIO_EWRONGLOOP, CIO_EINVALSTATE (another task is already
 * waiting in next). */
CIO_NODISCARD int cio_as_completed_next(cio_as_completed *it, cio_future **done);

/* Items not yet handed out (including those that will report -ETIMEDOUT). */
size_t cio_as_completed_remaining(const cio_as_completed *it);

/* Stop watching and release the futures. NULL is a no-op. Does not
 * suspend; linear in the number of futures plus the loop's ready queue.
 * Returns 0, -EINVAL (not a live iterator: a second free is caught as for
 * cio_taskgroup_free, same limit), CIO_EINVALSTATE (a task is waiting in
 * next: nothing is freed). */
int cio_as_completed_free(cio_as_completed *it);

/* ==== tasks as futures ============================================================= */

#ifndef __cplusplus
/* cio_wait_for and cio_shield also accept a cio_task * directly, as
 * cio_await does. */
static inline cio_future *cio__as_future_f(cio_future *f) { return f; }
#define cio__as_future(x) \
  _Generic((x), cio_task *: cio_task_future, default: cio__as_future_f)(x)
/* cio_wait_for / cio_shield taking a cio_task * or a cio_future *. */
#define cio_wait_for(aw, timeout, result) cio_wait_for(cio__as_future(aw), (timeout), (result))
#define cio_shield(aw, result) cio_shield(cio__as_future(aw), (result))
#endif

#ifdef __cplusplus
}
#endif
#endif
