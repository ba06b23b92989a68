/* The timer heap: a 4-ary min-heap ordered by (deadline, scheduling
 * sequence). Each entry keeps the deadline inline next to the timer pointer,
 * so that sifting compares entries of the heap array itself instead of
 * chasing a pointer to every timer it passes (with a million timers each such
 * pointer is a cache miss); only equal deadlines look at the timers' sequence
 * numbers. Four children per node (as Go's timer heap) halve the depth, and
 * the four 16-byte entries compared at each level sit in one or two cache
 * lines. Each timer knows its slot, so that disarming is O(log n) and no
 * cancelled timer lingers. Equal deadlines fire in the order they were armed. */
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
  if (loop->nheap == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct cio__heap_ent *h = realloc(loop->heap, cap * sizeof *h);
    if (!h) return cio__fail_static(-ENOMEM, "no memory to grow the timer heap");
    loop->heap = h;
    loop->heap_cap = cap;
  }
  if (when > CIO__NEVER) when = CIO__NEVER; /* saturate: "never" stays never */
  t->when = when;
  t->seq = loop->timer_seq++;
  sift_up(loop, loop->nheap++, (struct cio__heap_ent){when, t});
  return 0;
}

void cio__timer_disarm(cio_loop *loop, struct cio__timer *t) {
  uint32_t i = t->slot;
  if (i >= CIO__TIMER_QUEUED) return;
  t->slot = CIO__TIMER_IDLE;
  struct cio__heap_ent last = loop->heap[--loop->nheap];
  if (last.t == t) return;
  if (i > 0 && before(&last, &loop->heap[(i - 1) / 4]))
    sift_up(loop, i, last);
  else
    sift_down(loop, i, last);
}

/* Move every timer due at `now` to the ready queue, in (deadline, seq) order. */
void cio__timers_expire(cio_loop *loop, int64_t now) {
  while (loop->nheap && loop->heap[0].when <= now) {
    struct cio__timer *t = loop->heap[0].t;
    t->slot = CIO__TIMER_QUEUED;
    struct cio__heap_ent last = loop->heap[--loop->nheap];
    if (last.t != t) sift_down(loop, 0, last);
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
