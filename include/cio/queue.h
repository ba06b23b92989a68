/* cio — queues (asyncio.Queue, PriorityQueue, LifoQueue).
 *
 * One type, three orders: cio_queue_init (FIFO), cio_queue_init_lifo (last
 * in, first out) and cio_queue_init_priority (lowest first by a comparison
 * function; items that compare equal come out in the order they were put).
 * Items are `void *` values (NULL is a valid item); the queue never looks at
 * or frees what they point to.
 *
 * Like asyncio's, a queue coordinates the tasks of ONE event loop and is not
 * thread-safe: call it only from the thread running its loop. To feed a
 * queue from another thread, schedule a callback on the loop with
 * cio_call_soon_threadsafe() that calls cio_queue_put_nowait().
 *
 * Storage: a cio_queue is caller storage of a published size (opaque layout,
 * checked by the library at compile time); cio_queue_init allocates the item
 * buffer, cio_queue_destroy frees it. The buffer grows (doubling) up to
 * maxsize (0 = unbounded), so put allocates only when the queue holds more
 * items than it ever did (-ENOMEM then); get, the waits, join and task_done
 * never allocate: a waiting task's wait record lives in its own frame. Do
 * not copy an initialized queue.
 *
 * Fairness, and where cio differs from asyncio: tasks waiting in put() are
 * served in the order they started waiting, and so are tasks waiting in
 * get(). When get() frees a slot it is handed to the first waiting putter
 * (which stores its item when it resumes, one iteration later, as in
 * asyncio); when put() stores an item it is promised to the first waiting
 * getter. A newcomer cannot take a slot or an item promised to a waiter:
 * asyncio lets it (and the overtaken waiter queues again at the back), so a
 * program where a task calls put/get in that one-iteration window can print
 * in a different order than under asyncio. qsize(), empty() and full() count
 * the items in the buffer as asyncio does, promised ones included: get_nowait
 * fails with CIO_EQUEUEEMPTY when every buffered item is promised, and
 * put_nowait with CIO_EQUEUEFULL when every free slot is.
 *
 * Cancellation and timeouts: a put() cancelled (or timed out) has not stored
 * its item: the caller still owns it, and a slot handed to it goes to the
 * next waiting putter. A get() cancelled (or timed out) has taken no item:
 * one promised to it goes to the next waiting getter, or stays in the queue.
 * In the _timeout forms the hand-off and the deadline are decided at one
 * point: a waiter handed a slot or item before its deadline completes, even
 * if it resumes after the deadline. Timeouts are in seconds: 0 or less does
 * not suspend when the call can complete at once, otherwise it suspends and
 * times out on the next loop iteration unless served first; +INFINITY waits
 * for ever; NaN is -EINVAL. Arming a deadline may grow the loop's timer heap
 * (-ENOMEM).
 *
 * Shutdown (asyncio 3.13): after cio_queue_shutdown(q, false) puts fail with
 * CIO_EQUEUESHUTDOWN at once (waiting putters too), gets return what is left
 * and then fail with CIO_EQUEUESHUTDOWN. cio_queue_shutdown(q, true) also
 * drops the items left (counting each as done for join) and fails waiting
 * getters at once.
 *
 * Error codes common to the calls below (each function lists its own):
 *   -EINVAL         a NULL or uninitialized (or destroyed) queue
 *   CIO_ENOTASK     a suspending call made outside a task
 *   CIO_EWRONGLOOP  tasks of another loop are waiting on the queue
 */
#ifndef CIO_QUEUE_H
#define CIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A queue lives in caller storage (opaque, CIO_QUEUE_SIZE bytes); _init
 * before use, _destroy after. */
#define CIO_QUEUE_SIZE 256
typedef struct cio_queue { CIO__OPAQUE(CIO_QUEUE_SIZE); } cio_queue;

/* Order of a priority queue: negative if a comes out before b, 0 if equal
 * (then first put, first out), positive otherwise. ctx is the pointer given
 * to cio_queue_init_priority. Must not call the queue. */
typedef int (*cio_queue_cmp_fn)(const void *a, const void *b, void *ctx);

/* Initialize a FIFO queue holding at most maxsize items (0 = unbounded).
 * Returns 0, -EINVAL (q NULL), -ENOMEM. */
int cio_queue_init(cio_queue *q, size_t maxsize);

/* A LIFO queue (asyncio.LifoQueue). Returns as cio_queue_init. */
int cio_queue_init_lifo(cio_queue *q, size_t maxsize);

/* A priority queue (asyncio.PriorityQueue): get returns the lowest item
 * according to cmp, equal items in put order. Returns as cio_queue_init, and
 * -EINVAL if cmp is NULL. */
int cio_queue_init_priority(cio_queue *q, size_t maxsize, cio_queue_cmp_fn cmp, void *ctx);

/* Free the buffer. Items still in the queue are dropped (they are the
 * caller's: drain the queue first if they own memory). Returns 0, -EINVAL,
 * -EBUSY if tasks still wait on the queue (nothing is changed). */
int cio_queue_destroy(cio_queue *q);

/* Put item, suspending while the queue is full (or its free slots are
 * promised to putters that waited first). Returns 0 (stored, counted as
 * unfinished for join), CIO_EQUEUESHUTDOWN, -ECANCELED (not stored: the
 * item is still the caller's), -ENOMEM (buffer growth; not stored), -EINVAL,
 * CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_queue_put(cio_queue *q, void *item);

/* cio_queue_put with a timeout in seconds. Also -ETIMEDOUT (not stored),
 * -EINVAL for NaN. */
CIO_NODISCARD int cio_queue_put_timeout(cio_queue *q, void *item, double timeout);

/* Put item without suspending; callable outside a task. Returns 0,
 * CIO_EQUEUEFULL (asyncio's QueueFull), CIO_EQUEUESHUTDOWN, -ENOMEM, -EINVAL. */
CIO_NODISCARD int cio_queue_put_nowait(cio_queue *q, void *item);

/* Take the next item into *item, suspending while there is none (or the ones
 * there are promised to getters that waited first). Returns 0 with *item
 * set, CIO_EQUEUESHUTDOWN (shut down and empty, or shut down immediately),
 * -ECANCELED (nothing taken), -EINVAL (also for item NULL), CIO_ENOTASK,
 * CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_queue_get(cio_queue *q, void **item);

/* cio_queue_get with a timeout in seconds. Also -ETIMEDOUT (nothing taken),
 * -EINVAL for NaN, -ENOMEM. */
CIO_NODISCARD int cio_queue_get_timeout(cio_queue *q, void **item, double timeout);

/* Take an item without suspending; callable outside a task. Returns 0 with
 * *item set, CIO_EQUEUEEMPTY (asyncio's QueueEmpty), CIO_EQUEUESHUTDOWN
 * (shut down and nothing left to take), -EINVAL (also for item NULL). */
CIO_NODISCARD int cio_queue_get_nowait(cio_queue *q, void **item);

/* Items in the buffer (promised ones included); 0 for NULL. */
size_t cio_queue_qsize(const cio_queue *q);

/* The maxsize given at init (0 = unbounded); 0 for NULL. */
size_t cio_queue_maxsize(const cio_queue *q);

/* qsize() == 0. true for NULL. */
bool cio_queue_empty(const cio_queue *q);

/* qsize() >= maxsize, never for an unbounded queue. false for NULL. */
bool cio_queue_full(const cio_queue *q);

/* Tell the queue that the work on one item taken with get is finished: the
 * unfinished count (items put and not yet marked done) goes down by one, and
 * at zero join() returns. Never suspends. Returns 0, -ERANGE if called more
 * times than items were put (asyncio's ValueError; nothing changes), -EINVAL. */
int cio_queue_task_done(cio_queue *q);

/* The unfinished count (see cio_queue_task_done); 0 for NULL. */
size_t cio_queue_unfinished(const cio_queue *q);

/* Suspend until every item put has been marked done (or dropped by an
 * immediate shutdown); return at once if none is unfinished. Returns 0,
 * -ECANCELED, -EINVAL, CIO_ENOTASK, CIO_EWRONGLOOP. */
CIO_NODISCARD int cio_queue_join(cio_queue *q);

/* cio_queue_join with a timeout in seconds. Also -ETIMEDOUT, -EINVAL for
 * NaN, -ENOMEM. */
CIO_NODISCARD int cio_queue_join_timeout(cio_queue *q, double timeout);

/* Shut the queue down (see the top of this file): waiting putters fail with
 * CIO_EQUEUESHUTDOWN; waiting getters fail once nothing is left for them.
 * immediate: drop the items left, each counted done (join may return).
 * Idempotent; a later immediate shutdown still drops the items. Never
 * suspends. Returns 0 or -EINVAL. */
int cio_queue_shutdown(cio_queue *q, bool immediate);

/* Whether cio_queue_shutdown was called. false for NULL. */
bool cio_queue_is_shutdown(const cio_queue *q);

#ifdef __cplusplus
}
#endif
#endif
