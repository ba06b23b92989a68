/* Layer 2: task stacks.
 *
 * Stacks are carved out of large reservations (one mmap holds up to 64
 * guarded stacks, so a million tasks need thousands of mappings, not a
 * million), committed lazily by the kernel on first touch, and reused through
 * a free list.
 *
 * Protection against overflow (chosen once per process, see stack.c):
 *  - MADV_GUARD_INSTALL (Linux 6.13+): a CIO__STACK_GUARD (64 KiB) guard
 *    region below every stack. It costs no memory and no mapping (only page
 *    table entries), and is installed for a whole chunk with one call.
 *  - Older kernels: the same guard with mprotect(PROT_NONE), which splits
 *    the mapping (2 mappings per stack), for as many stacks as half of
 *    vm.max_map_count allows; beyond that, "canary" chunks: no guard, a
 *    64-byte canary below each stack, checked at every switch away from the
 *    task (one note on stderr says so when it first happens).
 *  - CIO_STACK_GUARD=mprotect forces the old-kernel path, =canary the last.
 * cio is built with -fstack-clash-protection and hands the flag to its users
 * (cio.pc, the CMake package): a frame larger than a page then touches every
 * page on its way down, so it lands in the guard instead of jumping over it.
 * A fault in a guard region, or any fault while a task's stack pointer is
 * below its stack, aborts with a message naming the task.
 *
 * Memory given back (cio__stack_pool_idle): the pool keeps warm up to the
 * recent demand and trims the rest after a quiet period; see stack.c.
 */
#ifndef CIO_STACK_H
#define CIO_STACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CIO__STACK_GUARD
#define CIO__STACK_GUARD (64u * 1024u)
#endif
#define CIO__STACK_CANARY_BYTES 64u

/* Protection methods (cio__stack_guard_force, chunk->guard_method). */
enum { CIO__GUARD_AUTO, CIO__GUARD_MADVISE, CIO__GUARD_MPROTECT, CIO__GUARD_CANARY };

struct cio__stack {
  void *lo;                 /* lowest usable address */
  struct cio__stack *next;  /* free lists */
  struct cio__stack_chunk *chunk;
  uint32_t size;            /* usable bytes (at most 1 GiB) */
  bool armed;               /* the canary below lo is checked at switches */
  bool trimmed;             /* free, its memory given back to the kernel */
  bool odd;                 /* not the pool's size: unmapped when returned */
};

struct cio__stack_pool {
  size_t default_size;          /* usable size of the pooled stacks (nominal) */
  struct cio__stack *free_list; /* warm default-size stacks, most recently used first */
  struct cio__stack *cold_list; /* free stacks whose memory was given back */
  struct cio__stack_chunk *chunks;  /* every reservation, for destroy */
  struct cio__stack_chunk *carving; /* pooled chunk with stacks not carved yet */
  size_t chunk_stacks;          /* stacks in the next chunk (grows) */
  size_t live;                  /* stacks handed out and not returned */
  size_t nwarm;                 /* stacks on free_list */
  size_t nwarm_min;             /* their low-water mark in the current window */
  size_t keep;                  /* warm free stacks never trimmed */
  int64_t quiet_ns;             /* window length */
  int64_t window_end;           /* 0: no window open */
  size_t trimmed_total;         /* stacks given back so far (tests, stats) */
  size_t released_chunks;       /* reservations unmapped so far (tests, stats) */
};

/* Rounded to whole pages, at least CIO_STACK_MIN. */
size_t cio__stack_round(size_t size);

void cio__stack_pool_init(struct cio__stack_pool *pool, size_t default_size);

/* Unmap everything, also stacks still handed out (a closing loop abandons
 * the tasks that were still pending). */
void cio__stack_pool_destroy(struct cio__stack_pool *pool);

/* A stack of `size` usable bytes (0 = the pool default). Returns 0, -EINVAL
 * (over 1 GiB), -ENOMEM (with a message naming vm.max_map_count when the
 * mapping limit is hit). */
int cio__stack_get_slow(struct cio__stack_pool *pool, size_t size, struct cio__stack **out);
static inline int cio__stack_get(struct cio__stack_pool *pool, size_t size,
                                 struct cio__stack **out) {
  struct cio__stack *s = pool->free_list;
  if (__builtin_expect(size != 0 || !s, 0)) return cio__stack_get_slow(pool, size, out);
  /* A warm stack of the default size: the common case, inline. */
  pool->free_list = s->next;
  if (--pool->nwarm < pool->nwarm_min) pool->nwarm_min = pool->nwarm;
  pool->live++;
  *out = s;
  return 0;
}

void cio__stack_put_odd(struct cio__stack_pool *pool, struct cio__stack *stack);
static inline void cio__stack_put(struct cio__stack_pool *pool, struct cio__stack *s) {
  if (__builtin_expect(s->odd, 0)) {
    cio__stack_put_odd(pool, s);
    return;
  }
  pool->live--;
  s->next = pool->free_list;
  pool->free_list = s;
  pool->nwarm++;
}

/* The loop is about to wait (nothing ready). Gives back the memory of warm
 * stacks the recent demand did not need (see stack.c) and returns the wait
 * timeout (ns, -1 = none), shortened so that the loop wakes up when a quiet
 * period ends. `now` is the loop's clock; with a virtual clock the timeout is
 * left alone. Call only when cio__stack_pool_has_surplus. */
int64_t cio__stack_pool_idle(struct cio__stack_pool *pool, int64_t now, int64_t timeout,
                             bool virtual_clock);
static inline bool cio__stack_pool_has_surplus(const struct cio__stack_pool *pool) {
  return pool->nwarm > pool->keep;
}

/* Tests: force a protection method and the mapping budget of mprotect
 * guards (in stacks; 0 = from vm.max_map_count) for stacks carved from now
 * on. CIO__GUARD_AUTO goes back to probing the kernel (and CIO_STACK_GUARD). */
void cio__stack_guard_force(int method, long budget_stacks);
/* The method a new chunk would use now (probes on first call). */
int cio__stack_guard_method(void);

/* Overflow detection: install the SIGSEGV handler (once per process) and an
 * alternate signal stack for this thread (once per thread). */
void cio__stack_overflow_guard_thread(void);

/* What the handler reports: set by the task layer whenever a task is switched
 * to (NULL when the thread runs its own stack). Inline: it runs at every
 * switch. Leaving a task whose stack has a canary checks the canary first
 * (only once some stack has one: a plain load and branch otherwise). */
struct cio__stack_running {
  const struct cio__stack *stack;
  char *const *name;
  unsigned long long id;
};
extern _Thread_local __attribute__((tls_model("initial-exec"))) struct cio__stack_running
    cio__stack_running;
extern atomic_bool cio__stack_canaries;
void cio__stack_check_canary(const struct cio__stack *stack);
static inline void cio__stack_set_running(const struct cio__stack *stack, char *const *name,
                                          unsigned long long id) {
  if (__builtin_expect(atomic_load_explicit(&cio__stack_canaries, memory_order_relaxed), 0) &&
      cio__stack_running.stack && cio__stack_running.stack->armed)
    cio__stack_check_canary(cio__stack_running.stack);
  cio__stack_running.stack = stack;
  cio__stack_running.name = name;
  cio__stack_running.id = id;
}

#endif
