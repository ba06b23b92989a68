/* The bare C peer: the minimal stackful coroutine runtime a C programmer
 * would write by hand, with none of cio's safety or asyncio semantics, as
 * the floor cio's W1 and W3 are measured against.
 *
 *     peer-bare spawn [N]         W1: spawn N coroutines that return at once, join them all
 *     peer-bare sleep_many [N]    W3: N coroutines start together and each sleeps 1 s
 *
 * What it has: a malloc'd coroutine record; a 256 KiB stack (cio's default
 * size) mmap'd on the coroutine's first run, with no guard page, kept on a
 * free list when the coroutine ends and reused by the next one; a hand-written
 * x86-64 context switch (callee-saved registers and the stack pointer only);
 * an intrusive FIFO run queue; a binary min-heap of (deadline, coroutine)
 * timers; one epoll_wait and one clock read per loop pass, which then runs the
 * coroutines that were ready when the pass began. sleep() takes its deadline
 * from a clock read at the call, as asyncio, Tokio and cio do (a deadline from
 * the loop's cached pass time would hide the cost of starting the other
 * coroutines of the same pass). No cancellation, no error handling beyond
 * exiting, no names, no task list.
 *
 * Output lines use cio's format (bench/cio_bench.h). Builds on x86-64 only;
 * bench/run.py skips the peer elsewhere. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "peer-bare: x86-64 only"
#endif

#define STACK_SIZE (256 * 1024)

/* ---- context switch -------------------------------------------------------------- */

/* bare_switch(&save_sp, sp): push the callee-saved registers, save the stack
 * pointer, load the other one, pop its registers, return into it. */
void bare_switch(void **save_sp, void *sp);
__asm__(".text\n"
        ".globl bare_switch\n"
        ".type bare_switch,@function\n"
        "bare_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size bare_switch, .-bare_switch\n");

/* ---- coroutines, run queue, timers --------------------------------------------------- */

struct co {
  void *sp;        /* saved stack pointer while not running */
  char *stack;     /* lowest address of its stack; NULL before the first run */
  void (*fn)(void *);
  void *arg;
  struct co *next; /* run queue link */
  struct co *waiter;
  int done;
};

struct timer {
  int64_t when;
  struct co *co;
};

static struct co *runq_head, **runq_tail = &runq_head;
static struct timer *heap;
static size_t nheap, heap_cap;
static struct co *current;
static void *sched_sp;
static char **free_stacks; /* stacks of ended coroutines, reused last-in first-out */
static size_t nfree, free_cap;
static int epfd;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void push_ready(struct co *c) {
  c->next = NULL;
  *runq_tail = c;
  runq_tail = &c->next;
}

static void heap_push(int64_t when, struct co *c) {
  if (nheap == heap_cap) {
    heap_cap = heap_cap ? 2 * heap_cap : 1024;
    heap = realloc(heap, heap_cap * sizeof *heap);
    if (!heap) die("realloc");
  }
  size_t i = nheap++;
  while (i > 0 && heap[(i - 1) / 2].when > when) {
    heap[i] = heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  heap[i] = (struct timer){when, c};
}

static struct co *heap_pop(void) {
  struct co *top = heap[0].co;
  struct timer last = heap[--nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= nheap) break;
    if (c + 1 < nheap && heap[c + 1].when < heap[c].when) c++;
    if (heap[c].when >= last.when) break;
    heap[i] = heap[c];
    i = c;
  }
  if (nheap) heap[i] = last;
  return top;
}

/* Give control back to the loop; someone pushes us on the run queue later. */
static void park(void) { bare_switch(&current->sp, sched_sp); }

static void co_main(void) {
  struct co *c = current;
  c->fn(c->arg);
  c->done = 1;
  if (c->waiter) push_ready(c->waiter);
  bare_switch(&c->sp, sched_sp); /* never resumed */
  abort();
}

static struct co *spawn(void (*fn)(void *), void *arg) {
  struct co *c = calloc(1, sizeof *c);
  if (!c) die("calloc");
  c->fn = fn;
  c->arg = arg;
  push_ready(c);
  return c;
}

/* Wait for c to end, then free it. */
static void join(struct co *c) {
  if (!c->done) {
    c->waiter = current;
    park();
  }
  free(c);
}

static void sleep_s(double s) {
  heap_push(now_ns() + (int64_t)(s * 1e9), current);
  park();
}

static void resume(struct co *c) {
  if (!c->stack) {
    if (nfree) {
      c->stack = free_stacks[--nfree];
    } else {
      c->stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (c->stack == MAP_FAILED) die("mmap");
    }
    /* The first switch pops six registers and returns into co_main with the
     * stack aligned as after a call. */
    void **sp = (void **)(c->stack + STACK_SIZE);
    *--sp = NULL;             /* co_main's return address: never used */
    *--sp = (void *)co_main;
    for (int i = 0; i < 6; i++) *--sp = NULL;
    c->sp = sp;
  }
  current = c;
  bare_switch(&sched_sp, c->sp);
  current = NULL;
  if (c->done) {
    if (nfree == free_cap) {
      free_cap = free_cap ? 2 * free_cap : 1024;
      free_stacks = realloc(free_stacks, free_cap * sizeof *free_stacks);
      if (!free_stacks) die("realloc");
    }
    free_stacks[nfree++] = c->stack;
    c->stack = NULL;
  }
}

static void run(void) {
  struct epoll_event evs[64];
  while (runq_head || nheap) {
    int timeout = 0;
    if (!runq_head) {
      int64_t d = heap[0].when - now_ns();
      timeout = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
    }
    if (epoll_wait(epfd, evs, 64, timeout) < 0) die("epoll_wait");
    int64_t now = now_ns();
    while (nheap && heap[0].when <= now) push_ready(heap_pop());
    struct co *batch = runq_head;
    runq_head = NULL;
    runq_tail = &runq_head;
    while (batch) {
      struct co *c = batch;
      batch = c->next;
      resume(c);
    }
  }
}

/* ---- the workloads ---------------------------------------------------------------------- */

static int64_t peak_rss(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_maxrss * 1024;
}

static int64_t current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static long n;
static double result;

static void noop(void *arg) { (void)arg; }

static void sleeper(void *arg) {
  (void)arg;
  sleep_s(1.0);
}

static void spawn_main(void *arg) {
  (void)arg;
  struct co **cos = malloc((size_t)n * sizeof *cos);
  if (!cos) die("malloc");
  int64_t t0 = now_ns();
  for (long i = 0; i < n; i++) cos[i] = spawn(noop, NULL);
  for (long i = 0; i < n; i++) join(cos[i]);
  result = (double)(now_ns() - t0) / (double)n;
  free(cos);
}

static void sleep_main(void *arg) {
  (void)arg;
  struct co **cos = malloc((size_t)n * sizeof *cos);
  if (!cos) die("malloc");
  int64_t rss0 = current_rss();
  int64_t t0 = now_ns();
  for (long i = 0; i < n; i++) cos[i] = spawn(sleeper, NULL);
  for (long i = 0; i < n; i++) join(cos[i]);
  double beyond = (double)(now_ns() - t0) / 1e6 - 1000.0;
  int64_t peak = peak_rss();
  free(cos);
  printf("sleep_many: %ld tasks, %.1f ms beyond 1 s, %.0f B/task, peak RSS %.1f MiB\n", n, beyond,
         (double)(peak - rss0) / (double)n, (double)peak / (1024.0 * 1024.0));
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "spawn") && strcmp(argv[1], "sleep_many"))) {
    fprintf(stderr, "usage: %s spawn|sleep_many [count]\n", argv[0]);
    return 2;
  }
  int w1 = strcmp(argv[1], "spawn") == 0;
  n = w1 ? 1000000 : 100000;
  if (argc > 2) {
    double v = strtod(argv[2], NULL);
    if (!(v >= 1)) {
      fprintf(stderr, "bad count %s\n", argv[2]);
      return 2;
    }
    n = (long)v;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  struct co *m = spawn(w1 ? spawn_main : sleep_main, NULL);
  run();
  free(m);
  if (w1)
    printf("spawn: %.1f ns/task, peak RSS %.1f MiB\n", result,
           (double)peak_rss() / (1024.0 * 1024.0));
  return 0;
}
