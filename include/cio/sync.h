/* cio — synchronization primitives (asyncio's Lock, Event, Condition,
 * Semaphore, BoundedSemaphore, Barrier).
 *
 * They coordinate the tasks of ONE event loop. Like asyncio's they are not
 * thread-safe: call them only from the thread running the loop (from a task,
 * or for the non-suspending calls also from a callback). To act on a
 * primitive from another thread, schedule a callback on its loop with
 * cio_call_soon_threadsafe() and call the primitive from there.
 *
 * Storage: every primitive is caller storage of a published size (opaque: the
 * layout is private; the library checks at compile time that it fits). Put
 * one anywhere (a global, a struct field, a task's frame), call _init before
 * use and _destroy after. Nothing is allocated, ever: a waiting task's wait
 * record lives in its own stack frame. A primitive is not bound to a loop for
 * life (asyncio binds it at first use): it belongs to the loop of the tasks
 * waiting on it while any are, and a task of another loop gets
 * CIO_EWRONGLOOP. Do not copy an initialized primitive. A loop closed while
 * its tasks still wait on a primitive (cio_loop_close reports them as
 * destroyed while pending; cio_run never does this, it cancels and waits for
 * every task) leaves their wait records linked: the primitive can then not be
 * used any more, and _destroy returns -EBUSY.
 *
 * Suspending calls (acquire, wait) must be made from inside a task
 * (CIO_ENOTASK otherwise). They suspend only when they cannot complete at
 * once, exactly where asyncio's `await` would, and the task resumes one loop
 * iteration after it was woken (asyncio's call_soon hop), so a program prints
 * the same lines in the same order as its asyncio original.
 *
 * Cancellation: a suspended call returns -ECANCELED when its task is
 * cancelled, and then has taken nothing: a lock or semaphore unit, or a
 * notification, that was already handed to the task is passed on to the next
 * waiter, so nobody is stranded. A cancelled Condition wait still re-acquires
 * the lock before it returns.
 *
 * Timeouts: each suspending call has a _timeout form taking seconds (asyncio
 * has none; its users wrap calls in wait_for). The deadline is decided inside
 * the primitive: if the lock, unit or notification is handed over before the
 * deadline the call succeeds even if its task has not resumed yet at the
 * deadline; otherwise it returns -ETIMEDOUT having taken nothing. A timeout
 * of 0 or less does not suspend when the call can complete at once;
 * otherwise it suspends and times out on the next loop iteration unless it
 * is served first (as a call inside asyncio.timeout(0) would). +INFINITY
 * waits for ever; NaN is -EINVAL (checked even when the call would not
 * wait). Arming the deadline timer may need to grow the loop's timer heap,
 * hence -ENOMEM in the _timeout forms only.
 *
 * Error codes common to all the calls below (each function lists its own):
 *   -EINVAL         a NULL or uninitialized (or destroyed) primitive
 *   CIO_ENOTASK     a suspending call made outside a task
 *   CIO_EWRONGLOOP  tasks of another loop are waiting on the primitive
 * Status-returning calls are warn_unused_result where dropping the code
 * would hide a failed acquire or wait.
 */
#ifndef CIO_SYNC_H
#define CIO_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque storage: sizes are part of the ABI of this version. */
#define CIO_LOCK_SIZE 64
#define CIO_EVENT_SIZE 64
#define CIO_CONDITION_SIZE 128
#define CIO_SEMAPHORE_SIZE 64
#define CIO_BARRIER_SIZE 192

#define CIO__OPAQUE(size)                                                          \
  union {                                                                          \
    unsigned char bytes[size];                                                     \
    void *align_p;                                                                 \
    uint64_t align_u;                                                              \
    double align_d;                                                                \
  } opaque_

/* The primitives live in caller storage (a struct, a frame, a global):
 * opaque, sized for any build; _init before use, _destroy after. */
typedef struct cio_lock { CIO__OPAQUE(CIO_LOCK_SIZE); } cio_lock;
typedef struct cio_event { CIO__OPAQUE(CIO_EVENT_SIZE); } cio_event;
typedef struct cio_condition { CIO__OPAQUE(CIO_CONDITION_SIZE); } cio_condition;
typedef struct cio_semaphore { CIO__OPAQUE(CIO_SEMAPHORE_SIZE); } cio_semaphore;
typedef struct cio_barrier { CIO__OPAQUE(CIO_BARRIER_SIZE); } cio_barrier;

/* ---- Lock (asyncio.Lock) ------------------------------------------------------
 * Not re-entrant and not owned: any task (or callback) may release it.
 * First come, first served: a task may take a free lock at once only if no
 * waiter is queued (waiters already cancelled or timed out do not count);
 * otherwise it queues behind them. A waiter woken by a release and then
 * cancelled before it resumed passes the wake-up to the next waiter. */

/* Initialize an unlocked lock. Returns 0, or -EINVAL if lock is NULL. */
int cio_lock_init(cio_lock *lock);

/* Finish with a lock (locked or not). Returns 0; -EINVAL (NULL or not
 * initialized); -EBUSY if tasks still wait on it (nothing is changed). */
int cio_lock_destroy(cio_lock *lock);

/* Acquire the lock, suspending while it is held or others queue before us.
 * Returns 0 (the lock is now held by the caller), -ECANCELED (not held),
 * -EINVAL, CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_lock_acquire(cio_lock *lock);

/* cio_lock_acquire with a timeout in seconds (see the top of this file).
 * Also returns -ETIMEDOUT (not held), -EINVAL for NaN, -ENOMEM. */
CIO_NODISCARD int cio_lock_acquire_timeout(cio_lock *lock, double timeout);

/* Take the lock only if cio_lock_acquire would not suspend. Never suspends;
 * callable outside a task. Returns 0 (held), -EBUSY (not taken), -EINVAL. */
CIO_NODISCARD int cio_lock_try_acquire(cio_lock *lock);

/* Release the lock and wake the first waiter, if any (it takes the lock when
 * it resumes). Never suspends; callable outside a task. Returns 0, -EPERM if
 * the lock is not locked (asyncio's RuntimeError), -EINVAL. */
int cio_lock_release(cio_lock *lock);

/* Whether the lock is held. false for NULL. */
bool cio_lock_locked(const cio_lock *lock);

/* ---- Event (asyncio.Event) ----------------------------------------------------
 * A flag, initially clear. set() wakes every task waiting at that moment; a
 * woken waiter returns 0 even if the flag was cleared again before it ran. */

/* Initialize a clear event. Returns 0 or -EINVAL. */
int cio_event_init(cio_event *ev);

/* Returns 0, -EINVAL, -EBUSY if tasks still wait on it. */
int cio_event_destroy(cio_event *ev);

/* Set the flag and wake all current waiters. No-op if already set. Never
 * suspends. Returns 0 or -EINVAL. */
int cio_event_set(cio_event *ev);

/* Clear the flag. Returns 0 or -EINVAL. */
int cio_event_clear(cio_event *ev);

/* The flag. false for NULL. */
bool cio_event_is_set(const cio_event *ev);

/* Return at once if the flag is set, else suspend until set() is called.
 * Returns 0, -ECANCELED, -EINVAL, CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_event_wait(cio_event *ev);

/* cio_event_wait with a timeout in seconds. Also -ETIMEDOUT, -EINVAL for
 * NaN, -ENOMEM. */
CIO_NODISCARD int cio_event_wait_timeout(cio_event *ev, double timeout);

/* ---- Condition (asyncio.Condition) --------------------------------------------
 * A condition variable over a lock: its own, or a given one that several
 * conditions may share. wait(), wait_for(), notify() and notify_all() must be
 * called with the lock held (-EPERM otherwise: asyncio's RuntimeError),
 * except wait_for() with a predicate already true.
 * Spurious wake-ups are possible (a cancelled waiter passes its notification
 * on even if it was not notified), so wait in a loop or use wait_for. */

/* Initialize. lock = NULL: the condition uses a lock of its own, inside its
 * storage. Otherwise it uses *lock, which must be initialized and outlive the
 * condition (not owned: destroy it yourself). Returns 0 or -EINVAL. */
int cio_condition_init(cio_condition *cond, cio_lock *lock);

/* Returns 0, -EINVAL, -EBUSY if tasks wait on the condition or (own lock
 * only) on its lock. */
int cio_condition_destroy(cio_condition *cond);

/* The lock the condition uses (its own or the one given). NULL for NULL. */
cio_lock *cio_condition_lock(cio_condition *cond);

/* The lock calls, on the condition's lock (see cio_lock_*). */
CIO_NODISCARD int cio_condition_acquire(cio_condition *cond);
CIO_NODISCARD int cio_condition_acquire_timeout(cio_condition *cond, double timeout);
int cio_condition_release(cio_condition *cond);
bool cio_condition_locked(const cio_condition *cond);

/* Release the lock, suspend until notified, re-acquire the lock, return.
 * The lock is held again on EVERY return except -EPERM, -EINVAL and
 * CIO_ENOTASK/CIO_EWRONGLOOP (where it was never released): also when the
 * wait is cancelled — the re-acquire goes on through further cancellations,
 * and the call then returns -ECANCELED. A waiter that leaves with an error
 * (it may have been notified just before) notifies one other waiter, as
 * asyncio 3.13 does. Returns 0, -ECANCELED, -EPERM (lock not held), -EINVAL,
 * CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_condition_wait(cio_condition *cond);

/* cio_condition_wait with a timeout in seconds on the wait for a
 * notification. The lock is still re-acquired before returning -ETIMEDOUT;
 * re-acquiring it is not bounded by the timeout (the call cannot return
 * without the lock). Also -ETIMEDOUT, -EINVAL for NaN, -ENOMEM. */
CIO_NODISCARD int cio_condition_wait_timeout(cio_condition *cond, double timeout);

/* A condition's predicate (cio_condition_wait_for): true when the wait is over. */
typedef bool (*cio_predicate_fn)(void *arg);

/* Wait until pred(arg) is true: check it first — if it is true already,
 * return 0 at once without suspending, whether or not the lock is held (as
 * asyncio 3.13 does) — then, the lock held, wait() and re-check in a loop.
 * pred is called once per check. Returns 0 once pred is true, or the first
 * error of cio_condition_wait (with the lock held as described there);
 * -EPERM if pred is false at first and the lock is not held; -EINVAL if pred
 * is NULL; CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_condition_wait_for(cio_condition *cond, cio_predicate_fn pred, void *arg);

/* cio_condition_wait_for with one timeout in seconds for the whole call.
 * Returns -ETIMEDOUT (lock held) if pred is still false at the deadline. */
CIO_NODISCARD int cio_condition_wait_for_timeout(cio_condition *cond, cio_predicate_fn pred,
                                                 void *arg, double timeout);

/* Wake up to n tasks waiting on the condition (not yet woken), in arrival
 * order (n <= 0 wakes none). They resume only once they re-acquire the lock,
 * so the caller should release it. Never suspends. Returns how many were
 * woken, -EPERM if the lock is not held, -EINVAL. */
int cio_condition_notify(cio_condition *cond, int n);

/* Wake every waiting task. Returns as cio_condition_notify. */
int cio_condition_notify_all(cio_condition *cond);

/* ---- Semaphore and BoundedSemaphore (asyncio.Semaphore / BoundedSemaphore) -----
 * A counter: acquire() takes a unit (suspending while there is none),
 * release() gives one back. Strictly FIFO, as asyncio >= 3.12: the semaphore
 * counts as locked while the value is 0 or any live waiter is queued, so a
 * newcomer never overtakes a waiter. A waiter handed a unit and then
 * cancelled gives it back and the next waiter gets it. A bounded semaphore
 * refuses a release above its initial value. */

/* Initialize with `value` units. Returns 0, -EINVAL (NULL; value < 0). */
int cio_semaphore_init(cio_semaphore *sem, int value);

/* A BoundedSemaphore of `value` units. Returns as cio_semaphore_init. */
int cio_semaphore_init_bounded(cio_semaphore *sem, int value);

/* Returns 0, -EINVAL, -EBUSY if tasks still wait on it. */
int cio_semaphore_destroy(cio_semaphore *sem);

/* Take a unit, suspending while none can be taken (see above). Returns 0
 * (one unit taken), -ECANCELED (none taken), -EINVAL, CIO_ENOTASK,
 * CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_semaphore_acquire(cio_semaphore *sem);

/* cio_semaphore_acquire with a timeout in seconds. Also -ETIMEDOUT (none
 * taken), -EINVAL for NaN, -ENOMEM. */
CIO_NODISCARD int cio_semaphore_acquire_timeout(cio_semaphore *sem, double timeout);

/* Take a unit only if acquire would not suspend. Never suspends; callable
 * outside a task. Returns 0, -EBUSY (none taken), -EINVAL. */
CIO_NODISCARD int cio_semaphore_try_acquire(cio_semaphore *sem);

/* Give a unit back and wake the first waiter, if any. Never suspends.
 * Returns 0, -EINVAL, -EOVERFLOW if the value would exceed the bound of a
 * bounded semaphore (its initial value; asyncio's ValueError) or INT_MAX
 * (nothing changes). */
int cio_semaphore_release(cio_semaphore *sem);

/* Whether acquire would suspend now. false for NULL. */
bool cio_semaphore_locked(const cio_semaphore *sem);

/* The current value (units free, not counting units already handed to
 * woken waiters). -EINVAL for NULL. */
int cio_semaphore_value(const cio_semaphore *sem);

/* ---- Barrier (asyncio.Barrier, 3.11) -------------------------------------------
 * `parties` tasks meet: wait() suspends until that many are waiting, then
 * releases them all. Cyclic: once all have left ("draining"), it fills
 * again; tasks arriving while it drains wait for the next cycle. A waiter
 * cancelled (or timed out) while the barrier fills leaves it and is no
 * longer counted; nothing is broken. abort() breaks it for good (until
 * reset); reset() returns it to empty, and the tasks waiting at that moment
 * get CIO_EBROKENBARRIER. Built on a Condition, as asyncio's is, so its
 * calls suspend where asyncio's do. */

/* Initialize for `parties` tasks. Returns 0, -EINVAL (NULL; parties < 1). */
int cio_barrier_init(cio_barrier *barrier, int parties);

/* Returns 0, -EINVAL, -EBUSY if tasks are inside wait(). */
int cio_barrier_destroy(cio_barrier *barrier);

/* Wait for the barrier. On success returns 0 and sets *index (may be NULL)
 * to this task's arrival index, 0 .. parties-1, distinct within a cycle.
 * Returns CIO_EBROKENBARRIER if the barrier is broken or is reset/aborted
 * while we wait, -ECANCELED, -EINVAL, CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_barrier_wait(cio_barrier *barrier, int *index);

/* cio_barrier_wait with a timeout in seconds: -ETIMEDOUT if the barrier did
 * not trip in time (the task leaves it, as a cancelled one does; the barrier
 * is not broken). Also -EINVAL for NaN, -ENOMEM. */
CIO_NODISCARD int cio_barrier_wait_timeout(cio_barrier *barrier, int *index, double timeout);

/* Return to the empty, filling state; tasks waiting now get
 * CIO_EBROKENBARRIER. May suspend briefly (it takes the barrier's internal
 * lock, as asyncio's `async def reset` does). Returns 0, -ECANCELED, -EINVAL,
 * CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_barrier_reset(cio_barrier *barrier);

/* Break the barrier: waiting and future wait() calls get
 * CIO_EBROKENBARRIER until reset(). Suspends as reset() does. Returns as
 * cio_barrier_reset. */
CIO_NODISCARD int cio_barrier_abort(cio_barrier *barrier);

/* The number of parties; -EINVAL for NULL. */
int cio_barrier_parties(const cio_barrier *barrier);

/* Tasks waiting for the barrier to trip in the current (filling) cycle; 0
 * while it drains; -EINVAL for NULL. */
int cio_barrier_n_waiting(const cio_barrier *barrier);

/* Whether the barrier is broken (aborted). false for NULL. */
bool cio_barrier_broken(const cio_barrier *barrier);

#ifdef __cplusplus
}
#endif
#endif
