/* Layer 2: task stacks.
 *
 * Stacks are carved out of large reservations (one mmap holds up to 64 stacks,
 * so a million tasks need ~16,000 mappings, not a million), committed lazily
 * by the kernel on first touch, and reused through a free list. Each stack has
 * a guard page below it: MADV_GUARD_INSTALL where the kernel has it (Linux
 * 6.13+: no extra mapping), mprotect(PROT_NONE) otherwise. A fault in a guard
 * page aborts with a message naming the task (cio__stack_overflow_*).
 */
#ifndef CIO_STACK_H
#define CIO_STACK_H

#include <stddef.h>

struct cio__stack {
  void *lo;                 /* lowest usable address */
  size_t size;              /* usable bytes above the guard page */
  struct cio__stack *next;  /* free list */
  struct cio__stack_chunk *chunk;
};

struct cio__stack_pool {
  size_t default_size;          /* usable size of the pooled stacks */
  struct cio__stack *free_list; /* default-size stacks ready for reuse */
  struct cio__stack_chunk *chunks;  /* every reservation, for destroy */
  struct cio__stack_chunk *carving; /* pooled chunk with stacks not carved yet */
  size_t chunk_stacks;          /* stacks in the next chunk (grows to 64) */
  size_t live;                  /* stacks handed out and not returned */
};

/* Rounded to whole pages, at least CIO_STACK_MIN. */
size_t cio__stack_round(size_t size);

void cio__stack_pool_init(struct cio__stack_pool *pool, size_t default_size);

/* Unmap everything, also stacks still handed out (a closing loop abandons
 * the tasks that were still pending). */
void cio__stack_pool_destroy(struct cio__stack_pool *pool);

/* A stack of `size` usable bytes (0 = the pool default). Returns 0, -ENOMEM
 * (with a message naming vm.max_map_count when the mapping limit is hit). */
int cio__stack_get(struct cio__stack_pool *pool, size_t size, struct cio__stack **out);

void cio__stack_put(struct cio__stack_pool *pool, struct cio__stack *stack);

/* Overflow detection: install the SIGSEGV handler (once per process) and an
 * alternate signal stack for this thread (once per thread). */
void cio__stack_overflow_guard_thread(void);

/* What the handler reports: set by the task layer whenever a task is switched
 * to (NULL when the thread runs its own stack). Inline: it runs at every
 * switch. */
struct cio__stack_running {
  const struct cio__stack *stack;
  char *const *name;
  unsigned long long id;
};
extern _Thread_local __attribute__((tls_model("initial-exec"))) struct cio__stack_running
    cio__stack_running;
static inline void cio__stack_set_running(const struct cio__stack *stack, char *const *name,
                                          unsigned long long id) {
  cio__stack_running.stack = stack;
  cio__stack_running.name = name;
  cio__stack_running.id = id;
}

#endif
