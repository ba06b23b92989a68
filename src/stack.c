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

#define CHUNK_MAX 64

struct cio__stack_chunk {
  struct cio__stack_chunk *next;
  void *base;        /* the whole reservation */
  size_t bytes;
  size_t nstacks;
  size_t slot;       /* guard page + stack */
  size_t carved;     /* stacks handed out of this chunk so far */
  struct cio__stack stacks[];
};

/* Read by every thread that creates tasks: an atomic (relaxed: every thread
 * computes the same value), so that two loops starting in two threads do
 * not race on it. */
static size_t page_size(void) {
  static _Atomic size_t page;
  size_t p = atomic_load_explicit(&page, memory_order_relaxed);
  if (!p) {
    p = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page, p, memory_order_relaxed);
  }
  return p;
}

size_t cio__stack_round(size_t size) {
  size_t page = page_size();
  if (size < CIO_STACK_MIN) size = CIO_STACK_MIN;
  return (size + page - 1) & ~(page - 1);
}

void cio__stack_pool_init(struct cio__stack_pool *pool, size_t default_size) {
  memset(pool, 0, sizeof *pool);
  pool->default_size = cio__stack_round(default_size ? default_size : CIO_STACK_DEFAULT);
  pool->chunk_stacks = 4;
}

void cio__stack_pool_destroy(struct cio__stack_pool *pool) {
  struct cio__stack_chunk *c = pool->chunks;
  while (c) {
    struct cio__stack_chunk *next = c->next;
    UNMAP(c->base, c->bytes);
    free(c);
    c = next;
  }
  pool->chunks = NULL;
  pool->carving = NULL;
  pool->free_list = NULL;
}

/* 0: not probed, 1: MADV_GUARD_INSTALL works, 2: use mprotect. */
static atomic_int guard_method;

static int install_guard(void *page) {
  int method = atomic_load_explicit(&guard_method, memory_order_relaxed);
  if (method != 2) {
    if (madvise(page, page_size(), MADV_GUARD_INSTALL) == 0) {
      atomic_store_explicit(&guard_method, 1, memory_order_relaxed);
      return 0;
    }
    if (errno != EINVAL) return -errno;
    atomic_store_explicit(&guard_method, 2, memory_order_relaxed);
  }
  return mprotect(page, page_size(), PROT_NONE) == 0 ? 0 : -errno;
}

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

static struct cio__stack_chunk *new_chunk(size_t size, size_t n) {
  size_t slot = size + page_size();
  size_t bytes = slot * n;
  struct cio__stack_chunk *c = malloc(sizeof *c + n * sizeof(struct cio__stack));
  if (!c) {
    cio__fail(-ENOMEM, "no memory for a stack chunk descriptor");
    return NULL;
  }
  void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (base == MAP_FAILED) {
    map_failure("mmap", bytes);
    free(c);
    return NULL;
  }
  c->next = NULL;
  c->base = base;
  c->bytes = bytes;
  c->nstacks = n;
  c->slot = slot;
  c->carved = 0;
  return c;
}

int cio__stack_get(struct cio__stack_pool *pool, size_t size, struct cio__stack **out) {
  size = size ? cio__stack_round(size) : pool->default_size;
  bool pooled = size == pool->default_size;
  if (pooled && pool->free_list) {
    struct cio__stack *s = pool->free_list;
    pool->free_list = s->next;
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
    pool->chunks = c;
    if (pooled) {
      pool->carving = c;
      if (pool->chunk_stacks < CHUNK_MAX) pool->chunk_stacks *= 2;
    }
  }
  struct cio__stack *s = &c->stacks[c->carved];
  char *slot = (char *)c->base + c->carved * c->slot;
  int rc = install_guard(slot);
  if (rc < 0) return map_failure("guard page", page_size());
  c->carved++;
  s->lo = slot + page_size();
  s->size = size;
  s->next = NULL;
  s->chunk = c;
  pool->live++;
  *out = s;
  return 0;
}

static void unlink_chunk(struct cio__stack_pool *pool, struct cio__stack_chunk *c) {
  for (struct cio__stack_chunk **p = &pool->chunks; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  UNMAP(c->base, c->bytes);
  free(c);
}

void cio__stack_put(struct cio__stack_pool *pool, struct cio__stack *s) {
  pool->live--;

  if (s->size != pool->default_size) {
    unlink_chunk(pool, s->chunk);
    return;
  }
  s->next = pool->free_list;
  pool->free_list = s;
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

static void on_segv(int sig, siginfo_t *info, void *uctx) {
  const struct cio__stack *s = cio__stack_running.stack;
  char *addr = info->si_addr;
  if (s && addr >= (char *)s->lo - page_size() && addr < (char *)s->lo) {
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
    write_str(utoa(s->size, size, sizeof size));
    write_str(" bytes; raise it with cio_task_options.stack_size)\n");
    signal(SIGABRT, SIG_DFL);
    abort();
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
