/* The timer heap: a binary min-heap of timer pointers ordered by (deadline,
 * scheduling sequence), each timer knowing its slot, so that disarming is
 * O(log n) and no cancelled timer lingers. Equal deadlines fire in the order
 * they were armed. */
#include <errno.h>
#include <stdlib.h>

#include "loop.h"

static inline bool before(const struct cio__timer *a, const struct cio__timer *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(cio_loop *loop, uint32_t i, struct cio__timer *t) {
  loop->heap[i] = t;
  t->slot = i;
}

static void sift_up(cio_loop *loop, uint32_t i, struct cio__timer *t) {
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!before(t, loop->heap[parent])) break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, t);
}

static void sift_down(cio_loop *loop, uint32_t i, struct cio__timer *t) {
  uint32_t n = loop->nheap;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(loop->heap[c + 1], loop->heap[c])) c++;
    if (!before(loop->heap[c], t)) break;
    place(loop, i, loop->heap[c]);
    i = c;
  }
  place(loop, i, t);
}

int cio__timer_arm(cio_loop *loop, struct cio__timer *t, int64_t when) {
  cio__timer_stop(loop, t);
  if (loop->nheap == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct cio__timer **h = realloc(loop->heap, cap * sizeof *h);
    if (!h) return cio__fail_static(-ENOMEM, "no memory to grow the timer heap");
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->when = when;
  t->seq = loop->timer_seq++;
  sift_up(loop, loop->nheap++, t);
  return 0;
}

void cio__timer_disarm(cio_loop *loop, struct cio__timer *t) {
  uint32_t i = t->slot;
  if (i >= CIO__TIMER_QUEUED) return;
  t->slot = CIO__TIMER_IDLE;
  struct cio__timer *last = loop->heap[--loop->nheap];
  if (last == t) return;
  if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
    sift_up(loop, i, last);
  else
    sift_down(loop, i, last);
}

/* Move every timer due at `now` to the ready queue, in (deadline, seq) order. */
void cio__timers_expire(cio_loop *loop, int64_t now) {
  while (loop->nheap && loop->heap[0]->when <= now) {
    struct cio__timer *t = loop->heap[0];
    t->slot = CIO__TIMER_QUEUED;
    struct cio__timer *last = loop->heap[--loop->nheap];
    if (last != t) sift_down(loop, 0, last);
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
