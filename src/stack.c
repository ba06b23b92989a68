/* Layer 2: the stack pool. See stack.h. */
#include "stack.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "arch/switch.h" /* CIO_ASAN */
#include "cio/task.h"
#include "error.h"

#ifdef CIO_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
/* Dead frames leave redzones in the shadow of a stack; whatever is mapped at
 * that address next must not inherit them. */
#define UNMAP(p, n) (__asan_unpoison_memory_region((p), (n)), munmap((p), (n)))
#else
#define UNMAP(p, n) munmap((p), (n))
#endif


#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PIDFD_SELF_PROCESS (-10001) /* Linux 6.15+: "this process" for pidfd calls */

#define GUARDED_CHUNK_MAX 64    /* stacks per guarded reservation */
#define CANARY_CHUNK_MAX 1024   /* stacks per canary reservation (fewer mappings) */
#define KEEP_WARM 16            /* warm free stacks never trimmed */
#define QUIET_NS 1000000000     /* the window of the trimming policy: 1 s */
#define CANARY_WORD 0x5a17c0de0ddba11full

struct cio__stack_chunk {
  struct cio__stack_chunk *next, *prev; /* the pool's list of reservations */
  void *base;        /* the whole reservation */
  size_t bytes;
  size_t nstacks;
  size_t size;       /* nominal size of its stacks (the pool's class) */
  size_t slot;       /* distance between two stacks */
  size_t first;      /* offset of stack 0's lo from base */
  size_t carved;     /* stacks handed out of this chunk so far */
  size_t ncold;      /* its stacks on the pool's cold list */
  int method;        /* CIO__GUARD_MADVISE / _MPROTECT / _CANARY */
  bool release;      /* being unmapped (trim) */
  struct cio__stack stacks[];
};

static atomic_size_t page_size_cache;

static size_t page_size(void) {
  size_t page = atomic_load_explicit(&page_size_cache, memory_order_relaxed);
  if (!page) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page_size_cache, page, memory_order_relaxed);
  }
  return page;
}

size_t cio__stack_round(size_t size) {
  size_t page = page_size();
  if (size < CIO_STACK_MIN) size = CIO_STACK_MIN;
  if (size > ((size_t)1 << 40)) size = (size_t)1 << 40; /* no wrap-around; mmap refuses it */
  return (size + page - 1) & ~(page - 1);
}

void cio__stack_pool_init(struct cio__stack_pool *pool, size_t default_size) {
  memset(pool, 0, sizeof *pool);
  pool->default_size = cio__stack_round(default_size ? default_size : CIO_STACK_DEFAULT);
  pool->chunk_stacks = 4;
  pool->keep = KEEP_WARM;
  pool->quiet_ns = QUIET_NS;
}

/* ---- the protection method and the mapping budget --------------------------------
 *
 * Chosen once per process: MADV_GUARD_INSTALL when the kernel has it (a probe
 * on a scratch mapping), else mprotect guards within a budget of mappings,
 * then canaries. The budget is half of vm.max_map_count (each mprotect guard
 * splits its reservation: 2 mappings per stack), so the rest of the program
 * (heap, libraries, threads, its own mmaps, our canary reservations) keeps
 * the other half. A reservation unmapped gives its mappings back. */

atomic_bool cio__stack_canaries;
static atomic_int guard_method;        /* CIO__GUARD_AUTO until probed */
static atomic_long guard_budget_maps;  /* mappings mprotect guards may use */
static atomic_long guard_maps_used;
static atomic_bool noted_canary;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static long max_map_count(void) {
  long n = 65530; /* the kernel's default */
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f) {
    if (fscanf(f, "%ld", &n) != 1 || n <= 0) n = 65530;
    fclose(f);
  }
  return n;
}

static int probe_method(void) {
  const char *env = getenv("CIO_STACK_GUARD");
  if (env && strcmp(env, "mprotect") == 0) return CIO__GUARD_MPROTECT;
  if (env && strcmp(env, "canary") == 0) return CIO__GUARD_CANARY;
  size_t page = page_size();
  void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return CIO__GUARD_MPROTECT;
  int method = madvise(p, page, MADV_GUARD_INSTALL) == 0 ? CIO__GUARD_MADVISE : CIO__GUARD_MPROTECT;
  munmap(p, 2 * page);
  return method;
}

int cio__stack_guard_method(void) {
  int m = atomic_load_explicit(&guard_method, memory_order_acquire);
  if (m != CIO__GUARD_AUTO) return m;
  pthread_mutex_lock(&probe_lock);
  m = atomic_load_explicit(&guard_method, memory_order_relaxed);
  if (m == CIO__GUARD_AUTO) {
    if (!atomic_load_explicit(&guard_budget_maps, memory_order_relaxed))
      atomic_store_explicit(&guard_budget_maps, max_map_count() / 2, memory_order_relaxed);
    m = probe_method();
    atomic_store_explicit(&guard_method, m, memory_order_release);
  }
  pthread_mutex_unlock(&probe_lock);
  return m;
}

void cio__stack_guard_force(int method, long budget_stacks) {
  pthread_mutex_lock(&probe_lock);
  atomic_store_explicit(&guard_budget_maps, budget_stacks > 0 ? 2 * budget_stacks : max_map_count() / 2,
                        memory_order_relaxed);
  atomic_store_explicit(&guard_maps_used, 0, memory_order_relaxed);
  atomic_store_explicit(&noted_canary, false, memory_order_relaxed);
  atomic_store_explicit(&guard_method, method, memory_order_release);
  pthread_mutex_unlock(&probe_lock);
}

/* Take `maps` mappings from the budget, or refuse. */
static bool budget_take(long maps) {
  long used = atomic_load_explicit(&guard_maps_used, memory_order_relaxed);
  long budget = atomic_load_explicit(&guard_budget_maps, memory_order_relaxed);
  do {
    if (used + maps > budget) return false;
  } while (!atomic_compare_exchange_weak_explicit(&guard_maps_used, &used, used + maps,
                                                  memory_order_relaxed, memory_order_relaxed));
  return true;
}

static void note_canary(void) {
  if (atomic_exchange_explicit(&noted_canary, true, memory_order_relaxed)) return;
  char msg[512];
  int n = snprintf(msg, sizeof msg,
                   "cio: note: without MADV_GUARD_INSTALL (Linux 6.13+) guard pages cost "
                   "mappings, and their budget (%ld stacks, half of vm.max_map_count) is "
                   "used up: further task stacks get canaries checked at every switch "
                   "instead (an overflow is then caught late or, by a large frame, not at "
                   "all; raise vm.max_map_count for more guard pages)\n",
                   atomic_load_explicit(&guard_budget_maps, memory_order_relaxed) / 2);
  if (n > 0) {
    ssize_t r = write(2, msg, strlen(msg));
    (void)r;
  }
}

/* ---- reservations ------------------------------------------------------------------ */

static int map_failure(const char *what, size_t bytes) {
  int err = errno;
  if (err == ENOMEM)
    return cio__fail(-ENOMEM,
                     "%s of %zu bytes for task stacks failed: out of memory or out of "
                     "mappings (see sysctl vm.max_map_count)",
                     what, bytes);
  return cio__fail(-err, "%s of %zu bytes for task stacks failed: %s", what, bytes,
                   strerror(err));
}

static void forget_chunk(struct cio__stack_chunk *c) {
  if (c->method == CIO__GUARD_MPROTECT)
    atomic_fetch_sub_explicit(&guard_maps_used, 2 * (long)c->nstacks, memory_order_relaxed);
  free(c);
}

static void unmap_chunk(struct cio__stack_chunk *c) {
  UNMAP(c->base, c->bytes);
  forget_chunk(c);
}

/* One process_madvise for the whole chunk where the kernel allows it (6.15+
 * knows PIDFD_SELF), else one madvise per range if one_by_one. Returns 0 or
 * -errno. */
static int advise_ranges(struct iovec *iov, size_t n, int advice, bool one_by_one) {
  static atomic_bool no_batch;
  if (!atomic_load_explicit(&no_batch, memory_order_relaxed)) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += iov[i].iov_len;
    long r = syscall(SYS_process_madvise, PIDFD_SELF_PROCESS, iov, n, advice, 0);
    if (r == (long)total) return 0;
    if (r >= 0 || (errno != EBADF && errno != ENOSYS && errno != EINVAL && errno != EPERM))
      return r >= 0 ? -EAGAIN : -errno; /* partial (never seen): refuse the chunk */
    atomic_store_explicit(&no_batch, true, memory_order_relaxed);
  }
  if (!one_by_one) return -EOPNOTSUPP;
  for (size_t i = 0; i < n; i++)
    if (madvise(iov[i].iov_base, iov[i].iov_len, advice) != 0) return -errno;
  return 0;
}

static int install_guards(struct cio__stack_chunk *c) {
  struct iovec iov[GUARDED_CHUNK_MAX];
  for (size_t i = 0; i < c->nstacks; i++) {
    iov[i].iov_base = (char *)c->base + i * c->slot;
    iov[i].iov_len = CIO__STACK_GUARD;
  }
  if (c->method == CIO__GUARD_MADVISE) return advise_ranges(iov, c->nstacks, MADV_GUARD_INSTALL, true);
  for (size_t i = 0; i < c->nstacks; i++)
    if (mprotect(iov[i].iov_base, iov[i].iov_len, PROT_NONE) != 0) return -errno;
  return 0;
}

/* Every task touches the top page of its stack first. Faulting in the tops
 * of the next 64 stacks of a chunk with one call (MADV_POPULATE_WRITE,
 * batched) measured about 10% less CPU per cold task than a page fault each
 * (bench/ANALYSIS.md, W3). At most 63 pages are populated ahead of use. A
 * failure is harmless: the page then faults in on first touch. */
static void populate_tops(struct cio__stack_chunk *c, size_t from) {
  size_t page = page_size();
  struct iovec iov[GUARDED_CHUNK_MAX];
  size_t n = c->nstacks - from < GUARDED_CHUNK_MAX ? c->nstacks - from : GUARDED_CHUNK_MAX;
  for (size_t i = 0; i < n; i++) {
    iov[i].iov_base = (char *)c->base + c->first + (from + i) * c->slot + c->size - page;
    iov[i].iov_len = page;
  }
  advise_ranges(iov, n, MADV_POPULATE_WRITE, false); /* no gain one by one */
}

static void write_canary(uint64_t *zone) {
  for (size_t i = 0; i < CIO__STACK_CANARY_BYTES / 8; i++) zone[i] = CANARY_WORD;
}

/* A reservation for n stacks of nominal size `size` (n is cut to what the
 * method allows). Guarded layout: [guard|stack][guard|stack]...; canary
 * layout: [page|stack|stack|...], each stack's top 64 bytes holding the
 * canary of the stack above it, the first page the canary of stack 0. */
static struct cio__stack_chunk *new_chunk(size_t size, size_t n) {
  size_t page = page_size();
  int method = cio__stack_guard_method();
  if (method == CIO__GUARD_MPROTECT) {
    if (n > GUARDED_CHUNK_MAX) n = GUARDED_CHUNK_MAX;
    if (!budget_take(2 * (long)n)) {
      method = CIO__GUARD_CANARY;
      note_canary();
    }
  }
  if (method == CIO__GUARD_MADVISE && n > GUARDED_CHUNK_MAX) n = GUARDED_CHUNK_MAX;
  size_t slot = method == CIO__GUARD_CANARY ? size : size + CIO__STACK_GUARD;
  size_t first = method == CIO__GUARD_CANARY ? page : CIO__STACK_GUARD;
  size_t bytes = (method == CIO__GUARD_CANARY ? page : 0) + slot * n;
  struct cio__stack_chunk *c = malloc(sizeof *c + n * sizeof(struct cio__stack));
  if (!c) {
    if (method == CIO__GUARD_MPROTECT)
      atomic_fetch_sub_explicit(&guard_maps_used, 2 * (long)n, memory_order_relaxed);
    cio__fail(-ENOMEM, "no memory for a stack chunk descriptor");
    return NULL;
  }
  void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (base == MAP_FAILED) {
    map_failure("mmap", bytes);
    if (method == CIO__GUARD_MPROTECT)
      atomic_fetch_sub_explicit(&guard_maps_used, 2 * (long)n, memory_order_relaxed);
    free(c);
    return NULL;
  }
  *c = (struct cio__stack_chunk){.base = base, .bytes = bytes, .nstacks = n, .size = size,
                                 .slot = slot, .first = first, .method = method};
  if (method == CIO__GUARD_CANARY) {
    write_canary((uint64_t *)((char *)base + page - CIO__STACK_CANARY_BYTES));
    atomic_store_explicit(&cio__stack_canaries, true, memory_order_relaxed);
    return c;
  }
  int rc = install_guards(c);
  if (rc < 0) {
    errno = -rc;
    map_failure(method == CIO__GUARD_MADVISE ? "guard install" : "mprotect guard", bytes);
    unmap_chunk(c);
    if (method == CIO__GUARD_MPROTECT && rc == -ENOMEM) {
      /* Out of mappings before the budget said so: no more mprotect guards. */
      atomic_store_explicit(&guard_maps_used,
                            atomic_load_explicit(&guard_budget_maps, memory_order_relaxed),
                            memory_order_relaxed);
      return new_chunk(size, n);
    }
    return NULL;
  }
  return c;
}

/* Canaries: stack i's canary is the top of stack i-1 (or the first page),
 * valid while that memory has not been given back. */
static void arm_canary(struct cio__stack_chunk *c, size_t i) {
  struct cio__stack *s = &c->stacks[i];
  if (i > 0 && c->stacks[i - 1].trimmed) {
    s->armed = false; /* re-armed when stack i-1 is used again */
    return;
  }
  write_canary((uint64_t *)((char *)s->lo - CIO__STACK_CANARY_BYTES));
  s->armed = true;
}

/* Stack i is being used: its canary, and the one of the stack above (which
 * lives in stack i's top, given back if stack i was trimmed). */
static void canaries_on_use(struct cio__stack_chunk *c, struct cio__stack *s) {
  size_t i = (size_t)(s - c->stacks);
  s->trimmed = false;
  arm_canary(c, i);
  if (i + 1 < c->carved && !c->stacks[i + 1].armed) arm_canary(c, i + 1);
}

void cio__stack_pool_destroy(struct cio__stack_pool *pool) {
  /* Reservations mapped one after the other usually sit side by side (the
   * kernel maps downwards): unmap each such run with one call, which spares
   * a system call and a TLB flush per reservation (a burst of 100,000 tasks
   * leaves about 1,600). */
  char *lo = NULL, *hi = NULL;
  struct cio__stack_chunk *c = pool->chunks;
  while (c) {
    struct cio__stack_chunk *next = c->next;
    char *b = c->base, *e = b + c->bytes;
    if (lo && e == lo) {
      lo = b;
    } else if (lo && b == hi) {
      hi = e;
    } else {
      if (lo) UNMAP(lo, (size_t)(hi - lo));
      lo = b;
      hi = e;
    }
    forget_chunk(c);
    c = next;
  }
  if (lo) UNMAP(lo, (size_t)(hi - lo));
  pool->chunks = NULL;
  pool->carving = NULL;
  pool->free_list = NULL;
  pool->cold_list = NULL;
  pool->nwarm = pool->nwarm_min = 0;
}

int cio__stack_get_slow(struct cio__stack_pool *pool, size_t size, struct cio__stack **out) {
  if (size > ((size_t)1 << 30) || pool->default_size > ((size_t)1 << 30))
    return cio__fail(-EINVAL, "task stack size %zu is over 1 GiB",
                     size > ((size_t)1 << 30) ? size : pool->default_size);
  size = size ? cio__stack_round(size) : pool->default_size;
  bool pooled = size == pool->default_size;
  struct cio__stack *s;
  if (pooled && pool->free_list) {
    s = pool->free_list;
    pool->free_list = s->next;
    if (--pool->nwarm < pool->nwarm_min) pool->nwarm_min = pool->nwarm;
    pool->live++;
    *out = s;
    return 0;
  }
  if (pooled && pool->cold_list) { /* memory given back: refaulted on first touch */
    s = pool->cold_list;
    pool->cold_list = s->next;
    s->chunk->ncold--;
    if (s->chunk->method == CIO__GUARD_CANARY) canaries_on_use(s->chunk, s);
    s->trimmed = false;
    pool->live++;
    *out = s;
    return 0;
  }
  /* Carve the next stack of the chunk being carved, or map a new chunk. An
   * odd size gets a chunk of its own, unmapped again when it is returned. */
  struct cio__stack_chunk *c = pooled ? pool->carving : NULL;
  if (!c || c->carved == c->nstacks) {
    c = new_chunk(size, pooled ? pool->chunk_stacks : 1);
    if (!c) return cio_errcode();
    c->next = pool->chunks;
    if (c->next) c->next->prev = c;
    pool->chunks = c;
    if (pooled) {
      pool->carving = c;
      if (pool->chunk_stacks < CANARY_CHUNK_MAX) pool->chunk_stacks *= 2;
    }
  }
  size_t i = c->carved++;
  if (i % GUARDED_CHUNK_MAX == 0 && c->nstacks > 1) populate_tops(c, i);
  s = &c->stacks[i];
  s->lo = (char *)c->base + c->first + i * c->slot;
  s->size = (uint32_t)(c->method == CIO__GUARD_CANARY ? size - CIO__STACK_CANARY_BYTES : size);
  s->next = NULL;
  s->chunk = c;
  s->armed = false;
  s->trimmed = false;
  s->odd = !pooled;
  if (c->method == CIO__GUARD_CANARY) arm_canary(c, i);
  pool->live++;
  *out = s;
  return 0;
}

static void unlink_chunk(struct cio__stack_pool *pool, struct cio__stack_chunk *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    pool->chunks = c->next;
  if (c->next) c->next->prev = c->prev;
  if (pool->carving == c) pool->carving = NULL;
  unmap_chunk(c);
}

void cio__stack_put_odd(struct cio__stack_pool *pool, struct cio__stack *s) {
  pool->live--;
  unlink_chunk(pool, s->chunk);
}

/* ---- giving memory back --------------------------------------------------------
 *
 * One policy serves both a warm pool (a burst that comes back finds its
 * stacks resident: no page fault, no system call) and memory that returns
 * after a burst (an echo server back to its idle RSS):
 *  - Finished tasks' stacks stay warm (on free_list, pages resident).
 *  - While warm free stacks exceed KEEP_WARM, the loop's idle passes run a
 *    window of QUIET_NS (1 s) and track the lowest number of warm free stacks
 *    seen in it (nwarm_min). Those stacks were not needed by the demand of
 *    the whole window: when it ends, that many (less KEEP_WARM) are given
 *    back with MADV_DONTNEED, the least recently used first, and the next
 *    window starts. A steady load keeps what it uses; after a burst the
 *    surplus goes within one or two windows; a burst that recurs within a
 *    second finds its stacks warm.
 *  - A given-back stack keeps its place in the reservation and its guard
 *    (guard markers survive MADV_DONTNEED): reusing it costs a page fault on
 *    first touch and no system call. (MADV_FREE would be cheaper but its
 *    pages count in RSS until the kernel is short of memory.) A reservation
 *    whose stacks have all been given back is unmapped (page tables, and on
 *    old kernels the mappings of its guards, come back too).
 *  - No hard cap: the window needs only idle passes, which every loop that
 *    waits for I/O or timers has; the pool is unmapped when the loop closes.
 *  - The wait of an idle loop is shortened to the window's end, so an idle
 *    server trims too. */
/* Reservations whose every stack has been given back are unmapped: that
 * returns their page tables, their mappings (the mprotect budget) and their
 * address space. */
static void release_cold_chunks(struct cio__stack_pool *pool) {
  bool any = false;
  for (struct cio__stack_chunk *c = pool->chunks; c; c = c->next)
    if (c->ncold == c->nstacks) any = c->release = true;
  if (!any) return;
  for (struct cio__stack **link = &pool->cold_list; *link;)
    if ((*link)->chunk->release)
      *link = (*link)->next;
    else
      link = &(*link)->next;
  for (struct cio__stack_chunk *c = pool->chunks, *next; c; c = next) {
    next = c->next;
    if (c->release) {
      unlink_chunk(pool, c);
      pool->released_chunks++;
    }
  }
}

static void trim(struct cio__stack_pool *pool, size_t count) {
  if (count == 0 || count > pool->nwarm) return;
  /* Keep the first nwarm - count (most recently used), give back the rest. */
  struct cio__stack **link = &pool->free_list;
  for (size_t i = count; i < pool->nwarm; i++) link = &(*link)->next;
  struct cio__stack *s = *link;
  *link = NULL;
  pool->nwarm -= count;
  while (s) {
    struct cio__stack *next = s->next;
    struct cio__stack_chunk *c = s->chunk;
    /* The whole slot but the guard; a canary stack includes its top canary. */
    size_t bytes = c->method == CIO__GUARD_CANARY ? c->size : s->size;
#ifdef CIO_ASAN
    __asan_unpoison_memory_region(s->lo, bytes);
#endif
    madvise(s->lo, bytes, MADV_DONTNEED);
    s->trimmed = true;
    if (c->method == CIO__GUARD_CANARY) {
      size_t i = (size_t)(s - c->stacks);
      if (i + 1 < c->carved) c->stacks[i + 1].armed = false; /* it lived in our top */
    }
    s->next = pool->cold_list;
    pool->cold_list = s;
    c->ncold++;
    pool->trimmed_total++;
    s = next;
  }
  release_cold_chunks(pool);
}

int64_t cio__stack_pool_idle(struct cio__stack_pool *pool, int64_t now, int64_t timeout,
                             bool virtual_clock) {
  if (pool->nwarm <= pool->keep) {
    pool->window_end = 0;
    return timeout;
  }
  if (!pool->window_end) {
    pool->window_end = now + pool->quiet_ns;
    pool->nwarm_min = pool->nwarm;
  } else if (now >= pool->window_end) {
    size_t unused = pool->nwarm_min < pool->nwarm ? pool->nwarm_min : pool->nwarm;
    if (unused > pool->keep) trim(pool, unused - pool->keep);
    pool->nwarm_min = pool->nwarm;
    pool->window_end = pool->nwarm > pool->keep ? now + pool->quiet_ns : 0;
  }
  if (pool->window_end && !virtual_clock) {
    int64_t left = pool->window_end - now;
    if (timeout < 0 || timeout > left) timeout = left;
  }
  return timeout;
}

/* ---- overflow detection ------------------------------------------------------ */

CIO__TLS struct cio__stack_running cio__stack_running;
static struct sigaction previous_segv;
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_str(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

/* Async-signal-safe number formatting. */
static const char *utoa(unsigned long long v, char *buf, size_t len) {
  size_t i = len - 1;
  buf[i] = 0;
  do buf[--i] = (char)('0' + v % 10); while ((v /= 10) && i > 0);
  return buf + i;
}

static void report_overflow(const struct cio__stack *s, const char *how) {
  char size[32], id[32];
  write_str("cio: stack overflow in task '");
  char *const *name = cio__stack_running.name;
  if (name && *name) {
    write_str(*name);
  } else {
    write_str("Task-");
    write_str(utoa(cio__stack_running.id, id, sizeof id));
  }
  write_str("' (stack size ");
  write_str(utoa(s->chunk->size, size, sizeof size));
  write_str(" bytes; raise it with cio_task_options.stack_size)");
  write_str(how);
  write_str("\n");
  signal(SIGABRT, SIG_DFL);
  abort();
}

void cio__stack_check_canary(const struct cio__stack *s) {
  const uint64_t *z = (const uint64_t *)((const char *)s->lo - CIO__STACK_CANARY_BYTES);
  uint64_t bad = 0;
  for (size_t i = 0; i < CIO__STACK_CANARY_BYTES / 8; i++) bad |= z[i] ^ CANARY_WORD;
  if (bad) report_overflow(s, ": its canary was overwritten, found at a switch");
}

static uintptr_t fault_sp(void *uctx) {
  ucontext_t *uc = uctx;
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.sp;
#else
  (void)uc;
  return UINTPTR_MAX;
#endif
}

static void on_segv(int sig, siginfo_t *info, void *uctx) {
  const struct cio__stack *s = cio__stack_running.stack;
  if (s) {
    uintptr_t addr = (uintptr_t)info->si_addr, lo = (uintptr_t)s->lo;
    uintptr_t guard = s->chunk->method == CIO__GUARD_CANARY ? 0 : CIO__STACK_GUARD;
    uintptr_t sp = fault_sp(uctx);
    /* In the guard region; or near the stack pointer while it is below the
     * stack (a frame that jumped the guard, or a canary stack that ran
     * through its neighbours into unmapped memory). */
    if ((addr < lo && addr >= lo - guard) || (sp < lo && addr < lo && addr + 4096 >= sp))
      report_overflow(s, "");
  }
  /* Not ours: hand over to whoever was there before. */
  if (previous_segv.sa_flags & SA_SIGINFO) {
    if (previous_segv.sa_sigaction) {
      previous_segv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
    previous_segv.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL); /* the faulting instruction runs again and kills us */
}

/* Install ours unless it is in place; whoever was there is chained to. */
static void install_handler(void) {
  struct sigaction cur;
  if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
      cur.sa_sigaction == on_segv)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous_segv);
}

static pthread_key_t altstack_key;
static pthread_once_t altstack_key_once = PTHREAD_ONCE_INIT;

static void free_altstack(void *p) {
  stack_t off = {.ss_flags = SS_DISABLE};
  sigaltstack(&off, NULL);
  munmap(p, 64 * 1024);
}

static void make_altstack_key(void) { pthread_key_create(&altstack_key, free_altstack); }

void cio__stack_overflow_guard_thread(void) {
  static _Thread_local int done;
  /* Checked on every loop start: a test framework or the program may have
   * replaced the handler since. */
  pthread_mutex_lock(&handler_lock);
  install_handler();
  pthread_mutex_unlock(&handler_lock);
  if (done) return;
  done = 1;
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return; /* one exists */
  size_t size = 64 * 1024;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return; /* overflow then dies without the message */
  stack_t ss = {.ss_sp = p, .ss_size = size, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, size);
    return;
  }
  pthread_once(&altstack_key_once, make_altstack_key);
  pthread_setspecific(altstack_key, p);
}
