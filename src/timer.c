/* Armed timers, in two structures that together keep one order: (deadline,
 * scheduling sequence), so equal deadlines fire in the order they were armed.
 *
 * The deadline FIFO: a timer whose deadline is not before the FIFO's last one
 * is appended to it (a doubly-linked list through the timers themselves).
 * That is the common case: a burst of tasks that each sleep the same delay,
 * timeouts of the same length per request, a periodic timer. Arming, firing
 * and disarming such a timer are O(1) and touch no other timer.
 *
 * The heap, for the rest: a 4-ary min-heap. Each entry keeps the deadline
 * inline next to the timer pointer, so that sifting compares entries of the
 * heap array itself instead of chasing a pointer to every timer it passes
 * (with a million timers each such pointer is a cache miss); only equal
 * deadlines look at the timers' sequence numbers. Four children per node (as
 * Go's timer heap) halve the depth, and the four 16-byte entries compared at
 * each level sit in one or two cache lines. Each timer knows its slot, so
 * that disarming is O(log n) and no cancelled timer lingers.
 *
 * Firing takes whichever head comes first in (deadline, sequence) order. */
#include <errno.h>
#include <stdlib.h>

#include "loop.h"

static inline bool before(const struct cio__heap_ent *a, const struct cio__heap_ent *b) {
  return a->when < b->when || (a->when == b->when && a->t->seq < b->t->seq);
}

static inline void place(struct cio__heap_ent *heap, uint32_t i, struct cio__heap_ent e) {
  heap[i] = e;
  e.t->slot = i;
}

static void sift_up(cio_loop *loop, uint32_t i, struct cio__heap_ent e) {
  struct cio__heap_ent *heap = loop->heap;
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (!before(&e, &heap[parent])) break;
    place(heap, i, heap[parent]);
    i = parent;
  }
  place(heap, i, e);
}

static void sift_down(cio_loop *loop, uint32_t i, struct cio__heap_ent e) {
  struct cio__heap_ent *heap = loop->heap;
  uint32_t n = loop->nheap;
  for (;;) {
    uint32_t first = 4 * i + 1;
    if (first >= n) break;
    uint32_t c = first, end = first + 4 < n ? first + 4 : n;
    for (uint32_t k = first + 1; k < end; k++)
      if (before(&heap[k], &heap[c])) c = k;
    if (!before(&heap[c], &e)) break;
    place(heap, i, heap[c]);
    i = c;
  }
  place(heap, i, e);
}

int cio__timer_arm(cio_loop *loop, struct cio__timer *t, int64_t when) {
  cio__timer_stop(loop, t);
  if (when > CIO__NEVER) when = CIO__NEVER; /* saturate: "never" stays never */
  struct cio__timer *tail = loop->fifo_tail;
  if (!tail || when >= tail->when) {
    /* Not before the FIFO's last deadline (or the FIFO is empty): append.
     * The sequence grows, so the FIFO stays in (deadline, seq) order. */
    t->when = when;
    t->seq = loop->timer_seq++;
    t->slot = CIO__TIMER_FIFO;
    t->prev = tail;
    t->cb.next = NULL;
    if (tail)
      tail->cb.next = &t->cb;
    else
      loop->fifo_head = t;
    loop->fifo_tail = t;
    return 0;
  }
  if (loop->nheap == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct cio__heap_ent *h = realloc(loop->heap, cap * sizeof *h);
    if (!h) return cio__fail_static(-ENOMEM, "no memory to grow the timer heap");
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->when = when;
  t->seq = loop->timer_seq++;
  sift_up(loop, loop->nheap++, (struct cio__heap_ent){when, t});
  return 0;
}

static inline struct cio__timer *fifo_next(const struct cio__timer *t) {
  return t->cb.next ? CIO__CONTAINER_OF(t->cb.next, struct cio__timer, cb) : NULL;
}

static void fifo_unlink(cio_loop *loop, struct cio__timer *t) {
  struct cio__timer *next = fifo_next(t);
  if (t->prev)
    t->prev->cb.next = t->cb.next;
  else
    loop->fifo_head = next;
  if (next)
    next->prev = t->prev;
  else
    loop->fifo_tail = t->prev;
  t->prev = NULL;
  t->cb.next = NULL;
}

void cio__timer_disarm(cio_loop *loop, struct cio__timer *t) {
  uint32_t i = t->slot;
  if (i == CIO__TIMER_FIFO) {
    fifo_unlink(loop, t);
    t->slot = CIO__TIMER_IDLE;
    return;
  }
  if (i >= CIO__TIMER_FIFO) return; /* idle or queued */
  t->slot = CIO__TIMER_IDLE;
  struct cio__heap_ent last = loop->heap[--loop->nheap];
  if (last.t == t) return;
  if (i > 0 && before(&last, &loop->heap[(i - 1) / 4]))
    sift_up(loop, i, last);
  else
    sift_down(loop, i, last);
}

/* Move every timer due at `now` to the ready queue, in (deadline, seq) order:
 * each time the earlier of the FIFO's head and the heap's top. */
void cio__timers_expire(cio_loop *loop, int64_t now) {
  for (;;) {
    struct cio__timer *f = loop->fifo_head;
    struct cio__timer *t;
    if (f && f->when <= now &&
        (!loop->nheap || f->when < loop->heap[0].when ||
         (f->when == loop->heap[0].when && f->seq < loop->heap[0].t->seq))) {
      t = f;
      loop->fifo_head = fifo_next(f);
      if (loop->fifo_head)
        loop->fifo_head->prev = NULL;
      else
        loop->fifo_tail = NULL;
      t->prev = NULL;
    } else if (loop->nheap && loop->heap[0].when <= now) {
      t = loop->heap[0].t;
      struct cio__heap_ent last = loop->heap[--loop->nheap];
      if (last.t != t) sift_down(loop, 0, last);
    } else {
      break;
    }
    t->slot = CIO__TIMER_QUEUED;
    cio__loop_push(loop, &t->cb);
  }
}

void cio__timer_stop(cio_loop *loop, struct cio__timer *t) {
  if (t->slot == CIO__TIMER_QUEUED)
    cio__loop_unqueue(loop, &t->cb);
  else
    cio__timer_disarm(loop, t);
  t->slot = CIO__TIMER_IDLE;
}

void cio__timers_discard_all(cio_loop *loop, void (*discard)(struct cio__cb *cb)) {
  struct cio__timer *f = loop->fifo_head;
  loop->fifo_head = loop->fifo_tail = NULL;
  while (f) {
    struct cio__timer *next = fifo_next(f);
    f->prev = NULL;
    f->cb.next = NULL;
    f->slot = CIO__TIMER_IDLE;
    discard(&f->cb);
    f = next;
  }
  struct cio__heap_ent *heap = loop->heap;
  uint32_t n = loop->nheap;
  loop->nheap = 0;
  for (uint32_t i = 0; i < n; i++) {
    heap[i].t->slot = CIO__TIMER_IDLE;
    discard(&heap[i].t->cb);
  }
}
