/* Layer 2: the stack pool. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio_test.h"
#include "loop.h" /* the loop's own pool */
#include "stack.h"
#include "task.h" /* sizeof(struct cio_task) */

static void stacks_are_reused(void **state) {
  (void)state;
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 0);
  assert_int_equal(pool.default_size, CIO_STACK_DEFAULT);
  struct cio__stack *a, *b, *c;
  assert_code(cio__stack_get(&pool, 0, &a), 0);
  assert_code(cio__stack_get(&pool, 0, &b), 0);
  assert_ptr_not_equal(a->lo, b->lo);
  assert_int_equal(a->size, CIO_STACK_DEFAULT);
  memset(a->lo, 0xab, a->size); /* the whole stack is usable */
  cio__stack_put(&pool, a);
  assert_code(cio__stack_get(&pool, 0, &c), 0);
  assert_ptr_equal(c, a); /* last returned, first reused */
  assert_int_equal(pool.live, 2);
  cio__stack_put(&pool, b);
  cio__stack_put(&pool, c);
  assert_int_equal(pool.live, 0);
  cio__stack_pool_destroy(&pool);
}

static void many_stacks_share_few_mappings(void **state) {
  (void)state;
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 16 * 1024);
  enum { N = 5000 };
  struct cio__stack **s = malloc(N * sizeof *s);
  for (int i = 0; i < N; i++) {
    assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
    *(volatile char *)((char *)s[i]->lo + s[i]->size - 1) = 1; /* touch the top */
  }
  int chunks = 0;
  for (struct cio__stack_chunk *c = pool.chunks; c; c = *(struct cio__stack_chunk **)c) chunks++;
  assert_true(chunks < N / 32); /* one mapping per up to 64 stacks */
  for (int i = 0; i < N; i++) cio__stack_put(&pool, s[i]);
  free(s);
  cio__stack_pool_destroy(&pool);
}

/* Destroying a pool unmaps every reservation (side by side ones with one
 * call), and nothing else: a mapping of ours next to them survives. */
static bool mapped(const void *p) {
  unsigned char v;
  return mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v) == 0;
}

static void destroy_unmaps_every_reservation(void **state) {
  (void)state;
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 16 * 1024);
  enum { N = 700 }; /* reservations of 4, 8, 16, 32, then 64 stacks */
  struct cio__stack **s = malloc(N * sizeof *s);
  for (int i = 0; i < N; i++) assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
  /* A neighbour: a page mapped right below the lowest reservation. */
  char *lowest = s[0]->lo;
  for (int i = 1; i < N; i++)
    if ((char *)s[i]->lo < lowest) lowest = s[i]->lo;
  lowest -= CIO__STACK_GUARD; /* the reservation starts with the lowest stack's guard */
  char *below = MAP_FAILED;
  if (cio__stack_guard_method() != CIO__GUARD_CANARY)
    below = mmap(lowest - 4096, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  bool have_below = below != MAP_FAILED && below == lowest - 4096;
  if (have_below) *below = 1;
  void **lo = malloc(N * sizeof *lo); /* the records go with the pool */
  for (int i = 0; i < N; i++) {
    lo[i] = s[i]->lo;
    assert_true(mapped(lo[i]));
  }
  cio__stack_pool_destroy(&pool);
  for (int i = 0; i < N; i++) assert_false(mapped(lo[i]));
  free(lo);
  if (have_below) {
    assert_true(mapped(below));
    assert_int_equal(*below, 1);
    munmap(below, 4096);
  }
  free(s);
}

static void odd_sizes_round_to_pages(void **state) {
  (void)state;
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 0);
  struct cio__stack *s;
  assert_code(cio__stack_get(&pool, 100000, &s), 0);
  assert_int_equal(s->size % 4096, 0);
  assert_true(s->size >= 100000);
  assert_int_equal(cio__stack_round(1), CIO_STACK_MIN);
  cio__stack_put(&pool, s); /* odd size: unmapped at once */
  assert_null(pool.free_list);
  cio__stack_pool_destroy(&pool);
}

static void guard_page_faults(void **state) {
  (void)state;
  skip_if_emulated("SIGSEGV from a guard page");
#if defined(__SANITIZE_ADDRESS__)
  skip();
#endif
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 0);
  struct cio__stack *s;
  assert_code(cio__stack_get(&pool, 0, &s), 0);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    *(volatile char *)((char *)s->lo - 1) = 1; /* the byte below the stack */
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  cio__stack_put(&pool, s);
  cio__stack_pool_destroy(&pool);
}


/* ---- overflow by large frames (issue 13 item 2) --------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#define SKIP_UNDER_ASAN() skip() /* ASan reports the overflow itself */
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

/* Recursion with frames of `bytes`, infinite in effect. The array escapes
 * (the empty asm), so no compiler can shrink the frame. */
#define RECURSE(fname, bytes, attr)                                        \
  attr static int fname(int depth) {                                       \
    char pad[bytes];                                                       \
    pad[0] = (char)depth;                                                  \
    pad[(bytes) - 1] = 1;                                                  \
    __asm__ volatile("" : : "r"(pad) : "memory");                          \
    return depth > 1000000 ? pad[0] : fname(depth + 1) + pad[(bytes) - 1]; \
  }
RECURSE(recurse_10k, 10000, )
RECURSE(recurse_20k, 20000, )
RECURSE(recurse_50k, 50000, )
#if defined(__GNUC__) && !defined(__clang__)
/* Code built without -fstack-clash-protection (as a library built elsewhere
 * may be): no probes, the 50 KB frame must land in the 64 KiB guard. */
#define NO_PROBES __attribute__((optimize("no-stack-clash-protection"), noinline))
RECURSE(recurse_50k_no_probes, 50000, NO_PROBES)
static int frames_50k_no_probes(void *a, void **r) { (void)a; (void)r; return recurse_50k_no_probes(0); }
#define HAVE_NO_PROBES 1
#endif

static volatile int vla_size = 300 * 1024; /* unknown to the compiler */
__attribute__((noinline)) static int big_vla(int n) {
  char v[n];
  v[0] = 1;
  v[n - 1] = 2;
  __asm__ volatile("" : : "r"(v) : "memory");
  return v[0] + v[n - 1];
}

static int frames_10k(void *a, void **r) { (void)a; (void)r; return recurse_10k(0); }
static int frames_20k(void *a, void **r) { (void)a; (void)r; return recurse_20k(0); }
static int frames_50k(void *a, void **r) { (void)a; (void)r; return recurse_50k(0); }
static int vla_300k(void *a, void **r) { (void)a; (void)r; return big_vla(vla_size); }

static int sleeper(void *a, void **r) {
  (void)a;
  (void)r;
  return cio_sleep(3600);
}

struct victim_run {
  cio_task_fn body;
  const char *name;
  size_t stack;
};

/* A neighbour is created first (the stack the overflow would corrupt), then
 * the overflowing task. */
static int spawn_overflowing(void *arg, void **result) {
  (void)result;
  struct victim_run *v = arg;
  cio_task *neighbour = cio_create_task(sleeper, NULL, NULL);
  if (cio_sleep(0) < 0) return -1;
  cio_task_options o = {.name = v->name, .stack_size = v->stack};
  cio_task *t = cio_create_task(v->body, NULL, &o);
  int rc = cio_await(t, NULL);
  cio_task_cancel(neighbour, NULL);
  if (cio_await(neighbour, NULL) != -ECANCELED) return -1;
  cio_task_unref(neighbour);
  cio_task_unref(t);
  return rc;
}

/* Runs `body` as a task named `name` in a child process under protection
 * `method`; asserts that the child aborted and wrote `expect` on stderr. */
struct abort_child {
  int method;
  struct victim_run v;
};

static void overflow_child(void *arg) {
  struct abort_child *c = arg;
  cio__stack_guard_force(c->method, 0);
  int rc = cio_run(spawn_overflowing, &c->v, NULL);
  _exit(rc == 0 ? 0 : 3);
}

static void expect_abort(int method, cio_task_fn body, const char *name, size_t stack,
                         const char *expect) {
  struct abort_child c = {method, {body, name, stack}};
  char buf[2048];
  int status = run_in_child(overflow_child, &c, buf, sizeof buf);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT || !strstr(buf, expect))
    fail_msg("task '%s' (method %d): status %#x, stderr: %s", name, method, status, buf);
}

static void large_frames_abort_naming_the_task(void **state) {
  (void)state;
  skip_if_emulated("SIGSEGV from a guard page");
  SKIP_UNDER_ASAN();
  int methods[] = {CIO__GUARD_AUTO, CIO__GUARD_MPROTECT};
  for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
    expect_abort(methods[m], frames_10k, "frames-10k", 0, "stack overflow in task 'frames-10k'");
    expect_abort(methods[m], frames_20k, "frames-20k", 0, "stack overflow in task 'frames-20k'");
    expect_abort(methods[m], frames_50k, "frames-50k", 0, "stack overflow in task 'frames-50k'");
    expect_abort(methods[m], vla_300k, "vla-300k", 0, "stack overflow in task 'vla-300k'");
    expect_abort(methods[m], frames_10k, "small-stack", 16384, "stack overflow in task 'small-stack'");
#ifdef HAVE_NO_PROBES
    expect_abort(methods[m], frames_50k_no_probes, "no-probes", 0,
                 "stack overflow in task 'no-probes'");
#endif
  }
}

/* With canaries only (no guard), a runaway recursion is still caught when it
 * reaches unmapped memory, and a small overflow at the task's next switch. */
static int overflow_a_little(void *a, void **r) {
  (void)a;
  (void)r;
  char buf[16384];
  memset(buf, 0x55, sizeof buf); /* 16 KiB of locals in a 16 KiB stack */
  __asm__ volatile("" : : "r"(buf) : "memory");
  int rc = cio_sleep(0); /* the switch checks the canary */
  return rc + buf[100] - 0x55;
}

static void canary_stacks_catch_overflow_at_a_switch(void **state) {
  (void)state;
  skip_if_emulated("SIGSEGV from a guard page");
  SKIP_UNDER_ASAN();
  expect_abort(CIO__GUARD_CANARY, overflow_a_little, "a-little", 16384,
               "stack overflow in task 'a-little' (stack size 16384 bytes; raise it with "
               "cio_task_options.stack_size): its canary was overwritten");
  expect_abort(CIO__GUARD_CANARY, frames_10k, "runaway", 0, "stack overflow in task 'runaway'");
}

/* ---- the mapping budget on kernels without MADV_GUARD_INSTALL (item 13) -------------- */

static void guard_budget_then_canaries(void **state) {
  (void)state;
  cio__stack_guard_force(CIO__GUARD_MPROTECT, 100); /* 100 guarded stacks, then canaries */
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 16 * 1024);
  enum { N = 1000 };
  struct cio__stack **s = malloc(N * sizeof *s);
  int guarded = 0, canaried = 0;
  for (int i = 0; i < N; i++) {
    assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
    memset((char *)s[i]->lo + s[i]->size - 1024, 1, 1024);
    if (s[i]->armed) {
      canaried++;
      assert_int_equal(s[i]->size, 16 * 1024 - CIO__STACK_CANARY_BYTES);
    } else {
      guarded++;
      assert_int_equal(s[i]->size, 16 * 1024);
    }
  }
  assert_true(guarded > 0 && guarded <= 100);
  assert_int_equal(guarded + canaried, N);
  /* The guarded ones fault below lo (not under qemu-user: its SIGSEGV
   * delivery hangs on some hosts); the canary ones have intact canaries. */
  if (!getenv("CIO_TEST_EMULATED")) {
    pid_t pid = fork();
    if (pid == 0) {
      signal(SIGSEGV, SIG_DFL);
      *(volatile char *)((char *)s[0]->lo - CIO__STACK_GUARD + 1) = 1;
      _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
  }
  for (int i = 0; i < N; i++)
    if (s[i]->armed) cio__stack_check_canary(s[i]); /* aborts if not intact */
  for (int i = 0; i < N; i++) cio__stack_put(&pool, s[i]);
  free(s);
  cio__stack_pool_destroy(&pool);
  cio__stack_guard_force(CIO__GUARD_AUTO, 0);
}

/* A million tasks alive at once (CIO_TEST_TASKS; 100,000 by default to keep
 * the suite fast) on the old-kernel path: beyond the ~32,700 mappings a
 * guard page each would take. */
static long many_n;
static cio_event many_go;
static int wait_forever(void *a, void **r) {
  (void)a;
  (void)r;
  return cio_event_wait(&many_go);
}
static int spawn_many(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task **ts = malloc((size_t)many_n * sizeof *ts);
  if (cio_event_init(&many_go) < 0) _exit(9);
  for (long i = 0; i < many_n; i++) {
    ts[i] = cio_create_task(wait_forever, NULL, NULL);
    if (!ts[i]) _exit(10);
  }
  if (cio_sleep(0.5) < 0) _exit(12); /* every task has started and waits */
  FILE *f = fopen("/proc/self/maps", "r");
  long maps = 0;
  int c;
  while ((c = fgetc(f)) != EOF) maps += c == '\n';
  fclose(f);
  fprintf(stderr, "maps: %ld\n", maps);
  if (cio_event_set(&many_go) < 0) _exit(13);
  for (long i = 0; i < many_n; i++) {
    if (cio_await(ts[i], NULL) != 0) _exit(11);
    cio_task_unref(ts[i]);
  }
  free(ts);
  cio_event_destroy(&many_go);
  return 0;
}

static void many_child(void *arg) {
  (void)arg;
  cio__stack_guard_force(CIO__GUARD_MPROTECT, 0); /* as on Linux 6.1: no MADV_GUARD_INSTALL */
  cio_loop_options o = {.virtual_time = true, .default_stack_size = CIO_STACK_MIN};
  int rc = cio_run_opts(spawn_many, NULL, NULL, &o);
  _exit(rc == 0 ? 0 : 3);
}

static void many_tasks_on_an_old_kernel(void **state) {
  (void)state;
  skip_if_emulated("a hundred thousand tasks");
  const char *env = getenv("CIO_TEST_TASKS");
  many_n = env ? atol(env) : 100000;
  char buf[4096];
  int status = run_in_child(many_child, NULL, buf, sizeof buf);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail_msg("status %#x: %s", status, buf);
  print_message("%ld tasks: %s", many_n, buf);
  /* One note, once, when the guards ran out. */
  const char *note = strstr(buf, "cio: note:");
  assert_non_null(note);
  assert_null(strstr(note + 1, "cio: note:"));
  long maps = atol(strstr(buf, "maps: ") + 6);
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  long max = 65530;
  if (f) {
    assert_int_equal(fscanf(f, "%ld", &max), 1);
    fclose(f);
  }
  assert_true(maps < max * 3 / 4);
}

/* ---- giving memory back (item 12) ------------------------------------------------------ */

static long rss_pages(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, rss = 0;
  assert_int_equal(fscanf(f, "%ld %ld", &size, &rss), 2);
  fclose(f);
  return rss;
}

static void pool_gives_back_what_recent_demand_did_not_need(void **state) {
  (void)state;
  struct cio__stack_pool pool;
  cio__stack_pool_init(&pool, 64 * 1024);
  enum { N = 10000 };
  long page = sysconf(_SC_PAGESIZE);
  struct cio__stack **s = malloc(N * sizeof *s);
  long before = rss_pages();
  for (int i = 0; i < N; i++) {
    assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
    memset((char *)s[i]->lo + s[i]->size - 8192, 1, 8192); /* two pages each */
  }
  long peak = rss_pages();
#ifdef UNDER_ASAN
  peak = before = 0; /* RSS under ASan moves with its shadow and quarantine */
#endif
  if (getenv("CIO_TEST_EMULATED")) peak = before = 0; /* qemu-user may ignore MADV_DONTNEED */
  assert_true((peak - before) * page >= N * 8192L * 9 / 10 || !peak);
  for (int i = 0; i < N; i++) cio__stack_put(&pool, s[i]);
  /* Warm: a burst coming back within the quiet period finds them resident. */
  assert_int_equal(pool.nwarm, N);
  int64_t t = 1000;
  assert_true(cio__stack_pool_has_surplus(&pool));
  assert_int_equal(cio__stack_pool_idle(&pool, t, -1, false), pool.quiet_ns); /* window opens */
  assert_int_equal(cio__stack_pool_idle(&pool, t, 5, false), 5);
  /* Demand within the window: 6,000 of them are used again. */
  for (int i = 0; i < 6000; i++) assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
  for (int i = 0; i < 6000; i++) cio__stack_put(&pool, s[i]);
  assert_int_equal(pool.trimmed_total, 0);
  t += pool.quiet_ns;
  cio__stack_pool_idle(&pool, t, -1, false); /* window ends: the 4,000 never used go */
  assert_int_equal(pool.trimmed_total, 4000 - pool.keep);
  assert_int_equal(pool.nwarm, 6000 + pool.keep);
  long mid = peak ? rss_pages() : 0;
  assert_true((peak - mid) * page >= (4000L - 16) * 8192 * 9 / 10 || !peak);
  /* A quiet window: all but `keep` go, RSS back near where it was. */
  t += pool.quiet_ns;
  cio__stack_pool_idle(&pool, t, -1, false);
  assert_int_equal(pool.nwarm, pool.keep);
  assert_false(cio__stack_pool_has_surplus(&pool));
  /* Reservations with every stack given back are unmapped (page tables and
   * mappings come back too); the kept stacks' ones stay. */
  int chunks = 0;
  for (struct cio__stack_chunk *c = pool.chunks; c; c = *(struct cio__stack_chunk **)c) chunks++;
  assert_true(pool.released_chunks > 0);
  assert_true(chunks <= (int)pool.keep);
  long after = peak ? rss_pages() : 0;
  print_message("RSS: %ld KiB before, %ld KiB with 10,000 stacks, %ld KiB after\n",
                before * page / 1024, peak * page / 1024, after * page / 1024);
  assert_true((after - before) * page < 2 * 1024 * 1024);
  /* Given-back stacks are reused (cold: refaulted on touch), guards intact. */
  for (int i = 0; i < N; i++) {
    assert_code(cio__stack_get(&pool, 0, &s[i]), 0);
    assert_int_equal(*((char *)s[i]->lo + s[i]->size - 1), i < (int)pool.keep ? 1 : 0);
    memset((char *)s[i]->lo + s[i]->size - 100, 2, 100);
  }
  assert_int_equal(pool.chunks ? 1 : 0, 1);
  for (int i = 0; i < N; i++) cio__stack_put(&pool, s[i]);
  free(s);
  cio__stack_pool_destroy(&pool);
}

static int touch_stack(void *a, void **r) {
  (void)a;
  (void)r;
  char buf[16384];
  memset(buf, 1, sizeof buf);
  __asm__ volatile("" : : "r"(buf) : "memory");
  return cio_sleep(0.01) + buf[1] - 1;
}

static long burst_rss[3];
static size_t burst_trimmed, burst_warm;
static int burst(void *a, void **r) {
  (void)a;
  (void)r;
  enum { N = 10000 };
  cio_task **ts = malloc(N * sizeof *ts);
  for (int i = 0; i < 100; i++) ts[i] = SPAWN(touch_stack, 0); /* warm the loop's own memory */
  join_all(ts, 100);
  burst_rss[0] = rss_pages();
  for (int i = 0; i < N; i++) ts[i] = SPAWN(touch_stack, 0);
  join_all(ts, N);
  free(ts);
  burst_rss[1] = rss_pages();
  /* The first idle pass opens a window, one after its end trims. */
  if (cio_sleep(1.5) < 0 || cio_sleep(1.5) < 0) return -1;
  burst_rss[2] = rss_pages();
  burst_trimmed = cio_get_running_loop()->stacks.trimmed_total;
  burst_warm = cio_get_running_loop()->stacks.nwarm;
  return 0;
}

enum { KEEP = 16 }; /* stack.c's KEEP_WARM */
static void rss_returns_after_a_burst_of_tasks(void **state) {
  (void)state;
  long page = sysconf(_SC_PAGESIZE);
  run_ok(burst, NULL);
  print_message("RSS: %ld KiB before, %ld KiB after 10,000 tasks, %ld KiB after a quiet period\n",
                burst_rss[0] * page / 1024, burst_rss[1] * page / 1024,
                burst_rss[2] * page / 1024);
  assert_true(burst_trimmed >= 10000 - 100 - KEEP);
  assert_int_equal(burst_warm, KEEP);
  if (!getenv("CIO_TEST_EMULATED"))
    assert_true((burst_rss[1] - burst_rss[0]) * page > 10000L * 16384 * 9 / 10);
#ifndef UNDER_ASAN /* ASan's shadow of the stacks stays */
  /* Task objects stay in the loop's slab (128 B each; 1 KB with ucontext);
   * the stacks go, but for the few kept warm. */
  if (!getenv("CIO_TEST_EMULATED"))
    assert_true((burst_rss[2] - burst_rss[0]) * page <
                4 * 1024 * 1024 + 10000 * (long)sizeof(struct cio_task));
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stacks_are_reused),
      cmocka_unit_test(many_stacks_share_few_mappings),
      cmocka_unit_test(destroy_unmaps_every_reservation),
      cmocka_unit_test(odd_sizes_round_to_pages),
      cmocka_unit_test(guard_page_faults),
      cmocka_unit_test(large_frames_abort_naming_the_task),
      cmocka_unit_test(canary_stacks_catch_overflow_at_a_switch),
      cmocka_unit_test(guard_budget_then_canaries),
      cmocka_unit_test(many_tasks_on_an_old_kernel),
      cmocka_unit_test(pool_gives_back_what_recent_demand_did_not_need),
      cmocka_unit_test(rss_returns_after_a_burst_of_tasks),
  };
  if (getenv("CIO_TEST_FILTER")) cmocka_set_test_filter(getenv("CIO_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
