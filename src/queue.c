/* Layer 7: Queue, LifoQueue, PriorityQueue. See include/cio/queue.h.
 *
 * The hop structure is CPython's Lib/asyncio/queues.py (3.13): put_nowait
 * wakes one getter, get_nowait wakes one putter, a woken waiter does its own
 * put/get when it resumes one iteration later, task_done/join work as an
 * Event. One thing is added: a wake-up is a promise. The slot freed for a
 * woken putter (rslots) and the item stored for a woken getter (ritems) are
 * reserved until that waiter resumes, so a newcomer cannot take them and the
 * waiter never has to queue again (asyncio's waiter would, at the back).
 *
 * Invariants: ritems <= count; count + rslots <= maxsize (bounded); a getter
 * is pending only while no unpromised item is buffered, a putter only while
 * no unpromised slot is free. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "cio/queue.h"
#include "sync.h"

#define QUEUE_MAGIC 0x71756575u
#define DEAD_MAGIC 0xdeadbeefu

enum { FIFO, LIFO, PRIO };
enum { TOKEN_SLOT = 1, TOKEN_ITEM, TOKEN_SHUTDOWN };

struct entry {
  void *item;
  uint64_t seq; /* put order: ties of a priority queue */
};

struct queue {
  uint32_t magic;
  uint8_t kind;
  bool shutdown;
  bool finished; /* asyncio's _finished Event: set while unfinished == 0 */
  size_t maxsize;
  struct entry *buf;
  size_t cap, head, count; /* ring (FIFO), stack (LIFO), heap (PRIO) */
  uint64_t seq;
  cio_queue_cmp_fn cmp;
  void *ctx;
  size_t unfinished;
  size_t ritems; /* buffered items promised to woken getters */
  size_t rslots; /* free slots promised to woken putters */
  struct cio__waitq getters, putters, joiners;
};

_Static_assert(sizeof(struct queue) <= sizeof(cio_queue), "struct queue does not fit in cio_queue");
_Static_assert(alignof(struct queue) <= alignof(cio_queue), "struct queue is over-aligned");

#define INITIAL_CAP 16

static struct queue *queue_of(const cio_queue *p, const char *who, int *rc) {
  struct queue *q = (struct queue *)(void *)p;
  if (!p)
    *rc = cio__fail(-EINVAL, "%s: queue is NULL", who);
  else if (q->magic != QUEUE_MAGIC)
    *rc = cio__fail(-EINVAL, "%s: not an initialized queue", who);
  else
    return q;
  return NULL;
}

static const struct queue *queue_c(const cio_queue *p) {
  const struct queue *q = (const struct queue *)(const void *)p;
  return p && q->magic == QUEUE_MAGIC ? q : NULL;
}

/* ---- the buffer ----------------------------------------------------------------- */

static bool before(const struct queue *q, const struct entry *a, const struct entry *b) {
  int c = q->cmp(a->item, b->item, q->ctx);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_up(struct queue *q, size_t i, struct entry e) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(q, &e, &q->buf[parent])) break;
    q->buf[i] = q->buf[parent];
    i = parent;
  }
  q->buf[i] = e;
}

static void heap_down(struct queue *q, size_t i, struct entry e) {
  size_t n = q->count;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(q, &q->buf[c + 1], &q->buf[c])) c++;
    if (!before(q, &q->buf[c], &e)) break;
    q->buf[i] = q->buf[c];
    i = c;
  }
  q->buf[i] = e;
}

static int grow(struct queue *q) {
  size_t cap = q->cap * 2;
  if (q->maxsize && cap > q->maxsize) cap = q->maxsize;
  if (cap <= q->cap || cap > SIZE_MAX / sizeof(struct entry))
    return cio__fail_static(-ENOMEM, "queue buffer cannot grow");
  struct entry *b = malloc(cap * sizeof *b);
  if (!b) return cio__fail_static(-ENOMEM, "out of memory growing the queue buffer");
  if (q->kind == FIFO) { /* unwrap the ring */
    size_t first = q->cap - q->head < q->count ? q->cap - q->head : q->count;
    memcpy(b, q->buf + q->head, first * sizeof *b);
    memcpy(b + first, q->buf, (q->count - first) * sizeof *b);
  } else {
    memcpy(b, q->buf, q->count * sizeof *b);
  }
  free(q->buf);
  q->buf = b;
  q->cap = cap;
  q->head = 0;
  return 0;
}

static int buf_push(struct queue *q, void *item) {
  if (q->count == q->cap) {
    int rc = grow(q);
    if (rc < 0) return rc;
  }
  struct entry e = {item, q->seq++};
  switch (q->kind) {
  case FIFO: {
    size_t i = q->head + q->count;
    q->buf[i >= q->cap ? i - q->cap : i] = e;
    break;
  }
  case LIFO:
    q->buf[q->count] = e;
    break;
  default:
    heap_up(q, q->count, e);
  }
  q->count++;
  return 0;
}

static void *buf_pop(struct queue *q) {
  void *item;
  switch (q->kind) {
  case FIFO:
    item = q->buf[q->head].item;
    if (++q->head == q->cap) q->head = 0;
    q->count--;
    break;
  case LIFO:
    item = q->buf[--q->count].item;
    break;
  default:
    item = q->buf[0].item;
    if (--q->count) heap_down(q, 0, q->buf[q->count]);
  }
  return item;
}

/* ---- bookkeeping ---------------------------------------------------------------- */

static inline size_t items_free(const struct queue *q) { return q->count - q->ritems; }

static inline size_t slots_free(const struct queue *q) {
  return q->maxsize ? q->maxsize - q->count - q->rslots : SIZE_MAX;
}

static void wake_getter(struct queue *q) {
  if (items_free(q) > 0 && cio__waitq_wake_first(&q->getters, TOKEN_ITEM)) q->ritems++;
}

static void wake_putter(struct queue *q) {
  if (slots_free(q) > 0 && cio__waitq_wake_first(&q->putters, TOKEN_SLOT)) q->rslots++;
}

static void set_finished(struct queue *q) {
  if (!q->finished) {
    q->finished = true;
    cio__waitq_wake_all(&q->joiners, 0);
  }
}

/* Queue.put_nowait, once the caller may use a free slot. */
static int put_now(struct queue *q, void *item) {
  int rc = buf_push(q, item);
  if (rc < 0) return rc;
  q->unfinished++;
  q->finished = false;
  wake_getter(q);
  return 0;
}

/* Queue.get_nowait, once the caller may take an item. */
static void *take(struct queue *q) {
  void *item = buf_pop(q);
  wake_putter(q);
  return item;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int init(cio_queue *p, size_t maxsize, int kind, cio_queue_cmp_fn cmp, void *ctx,
                const char *who) {
  if (!p) return cio__fail(-EINVAL, "%s: queue is NULL", who);
  struct queue *q = (struct queue *)(void *)p;
  size_t cap = maxsize && maxsize < INITIAL_CAP ? maxsize : INITIAL_CAP;
  struct entry *buf = malloc(cap * sizeof *buf);
  if (!buf) return cio__fail_static(-ENOMEM, "out of memory creating a queue");
  memset(q, 0, sizeof *q);
  q->magic = QUEUE_MAGIC;
  q->kind = (uint8_t)kind;
  q->finished = true;
  q->maxsize = maxsize;
  q->buf = buf;
  q->cap = cap;
  q->cmp = cmp;
  q->ctx = ctx;
  cio__waitq_init(&q->getters);
  cio__waitq_init(&q->putters);
  cio__waitq_init(&q->joiners);
  return 0;
}

int cio_queue_init(cio_queue *q, size_t maxsize) {
  return init(q, maxsize, FIFO, NULL, NULL, "cio_queue_init");
}

int cio_queue_init_lifo(cio_queue *q, size_t maxsize) {
  return init(q, maxsize, LIFO, NULL, NULL, "cio_queue_init_lifo");
}

int cio_queue_init_priority(cio_queue *q, size_t maxsize, cio_queue_cmp_fn cmp, void *ctx) {
  if (!cmp) return cio__fail(-EINVAL, "cio_queue_init_priority: comparison function is NULL");
  return init(q, maxsize, PRIO, cmp, ctx, "cio_queue_init_priority");
}

int cio_queue_destroy(cio_queue *p) {
  int rc;
  struct queue *q = queue_of(p, "cio_queue_destroy", &rc);
  if (!q) return rc;
  if (q->getters.n || q->putters.n || q->joiners.n)
    return cio__fail(-EBUSY, "cio_queue_destroy: tasks are waiting on the queue");
  free(q->buf);
  q->buf = NULL;
  q->magic = DEAD_MAGIC;
  return 0;
}

/* ---- suspending calls -------------------------------------------------------------- */

static int enter(cio_queue *p, const char *who, bool timed, double timeout, struct queue **qout,
                 struct cio_task **tout, int64_t *deadline) {
  int rc;
  struct queue *q = queue_of(p, who, &rc);
  if (!q) return rc;
  struct cio_task *t;
  if ((rc = cio__waitq_enter(&q->getters, &q->putters, who, &t)) < 0) return rc;
  cio_loop *other = cio__waitq_loop(&q->joiners);
  if (other && other != t->fut.loop)
    return cio__fail(CIO_EWRONGLOOP, "%s: tasks of another event loop are waiting on it", who);
  *deadline = CIO__NO_DEADLINE;
  if (timed && (rc = cio__deadline(t->fut.loop, timeout, who, deadline)) < 0) return rc;
  *qout = q;
  *tout = t;
  return 0;
}

static int shut_down_error(const char *who) {
  return cio__fail(CIO_EQUEUESHUTDOWN, "%s: the queue is shut down", who);
}

static int put(cio_queue *p, void *item, bool timed, double timeout, const char *who) {
  struct queue *q;
  struct cio_task *t;
  int64_t deadline;
  int rc = enter(p, who, timed, timeout, &q, &t, &deadline);
  if (rc < 0) return rc;
  if (q->shutdown) return shut_down_error(who);
  if (slots_free(q) > 0) return put_now(q, item);
  struct cio__waiter w;
  rc = cio__waitq_wait(&q->putters, &w, t, deadline);
  bool slot = w.woken && w.token == TOKEN_SLOT;
  if (slot) q->rslots--;
  if (rc == 0 && slot) {
    if (q->shutdown) return shut_down_error(who);
    if ((rc = put_now(q, item)) == 0) return 0;
  } else if (rc == 0) {
    return shut_down_error(who); /* woken by shutdown */
  }
  /* Not stored (cancelled, timed out, no memory): a slot handed to us goes
   * to the next putter. */
  if (slot) wake_putter(q);
  return rc;
}

int cio_queue_put(cio_queue *q, void *item) { return put(q, item, false, 0, "cio_queue_put"); }

int cio_queue_put_timeout(cio_queue *q, void *item, double timeout) {
  return put(q, item, true, timeout, "cio_queue_put_timeout");
}

static int get(cio_queue *p, void **item, bool timed, double timeout, const char *who) {
  struct queue *q;
  struct cio_task *t;
  int64_t deadline;
  int rc = enter(p, who, timed, timeout, &q, &t, &deadline);
  if (rc < 0) return rc;
  if (!item) return cio__fail(-EINVAL, "%s: item pointer is NULL", who);
  for (;;) {
    if (items_free(q) > 0) {
      *item = take(q);
      return 0;
    }
    if (q->shutdown) return shut_down_error(who);
    struct cio__waiter w;
    rc = cio__waitq_wait(&q->getters, &w, t, deadline);
    bool promised = w.woken && w.token == TOKEN_ITEM;
    if (promised) q->ritems--;
    if (rc < 0) {
      /* Nothing taken: an item promised to us goes to the next getter. */
      if (promised) wake_getter(q);
      return rc;
    }
    if (promised) {
      *item = take(q);
      return 0;
    }
    /* Woken by shutdown (or our promise was dropped by an immediate one):
     * look again. */
  }
}

int cio_queue_get(cio_queue *q, void **item) { return get(q, item, false, 0, "cio_queue_get"); }

int cio_queue_get_timeout(cio_queue *q, void **item, double timeout) {
  return get(q, item, true, timeout, "cio_queue_get_timeout");
}

static int join(cio_queue *p, bool timed, double timeout, const char *who) {
  struct queue *q;
  struct cio_task *t;
  int64_t deadline;
  int rc = enter(p, who, timed, timeout, &q, &t, &deadline);
  if (rc < 0) return rc;
  if (q->unfinished == 0 || q->finished) return 0;
  struct cio__waiter w;
  return cio__waitq_wait(&q->joiners, &w, t, deadline);
}

int cio_queue_join(cio_queue *q) { return join(q, false, 0, "cio_queue_join"); }

int cio_queue_join_timeout(cio_queue *q, double timeout) {
  return join(q, true, timeout, "cio_queue_join_timeout");
}

/* ---- non-suspending calls ------------------------------------------------------------ */

int cio_queue_put_nowait(cio_queue *p, void *item) {
  int rc;
  struct queue *q = queue_of(p, "cio_queue_put_nowait", &rc);
  if (!q) return rc;
  if (q->shutdown) return shut_down_error("cio_queue_put_nowait");
  if (slots_free(q) == 0) return cio__fail_static(CIO_EQUEUEFULL, "cio_queue_put_nowait: the queue is full");
  return put_now(q, item);
}

int cio_queue_get_nowait(cio_queue *p, void **item) {
  int rc;
  struct queue *q = queue_of(p, "cio_queue_get_nowait", &rc);
  if (!q) return rc;
  if (!item) return cio__fail(-EINVAL, "cio_queue_get_nowait: item pointer is NULL");
  if (items_free(q) == 0) {
    if (q->shutdown) return shut_down_error("cio_queue_get_nowait");
    return cio__fail_static(CIO_EQUEUEEMPTY, "cio_queue_get_nowait: the queue is empty");
  }
  *item = take(q);
  return 0;
}

size_t cio_queue_qsize(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return q ? q->count : 0;
}

size_t cio_queue_maxsize(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return q ? q->maxsize : 0;
}

bool cio_queue_empty(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return !q || q->count == 0;
}

bool cio_queue_full(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return q && q->maxsize && q->count >= q->maxsize;
}

size_t cio_queue_unfinished(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return q ? q->unfinished : 0;
}

int cio_queue_task_done(cio_queue *p) {
  int rc;
  struct queue *q = queue_of(p, "cio_queue_task_done", &rc);
  if (!q) return rc;
  if (q->unfinished == 0)
    return cio__fail_static(-ERANGE, "cio_queue_task_done: called more times than items were put");
  if (--q->unfinished == 0) set_finished(q);
  return 0;
}

int cio_queue_shutdown(cio_queue *p, bool immediate) {
  int rc;
  struct queue *q = queue_of(p, "cio_queue_shutdown", &rc);
  if (!q) return rc;
  q->shutdown = true;
  if (immediate) {
    while (q->count) {
      buf_pop(q);
      if (q->unfinished > 0) q->unfinished--;
    }
    /* Items promised to woken getters are gone: they will look again and
     * find the queue shut down. */
    for (struct cio__waiter *w = q->getters.head; w; w = w->next)
      if (w->woken && w->token == TOKEN_ITEM) w->token = TOKEN_SHUTDOWN;
    q->ritems = 0;
    if (q->unfinished == 0) set_finished(q);
  }
  cio__waitq_wake_all(&q->getters, TOKEN_SHUTDOWN);
  cio__waitq_wake_all(&q->putters, TOKEN_SHUTDOWN);
  return 0;
}

bool cio_queue_is_shutdown(const cio_queue *p) {
  const struct queue *q = queue_c(p);
  return q && q->shutdown;
}
