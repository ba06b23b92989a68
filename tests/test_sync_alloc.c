/* The waits of every primitive allocate nothing in the steady state: a
 * waiting task's record (future, deadline timer, links) lives in its frame.
 *
 * malloc/calloc/realloc are interposed to count calls while `counting` is
 * set. Under AddressSanitizer (which owns malloc) the test is skipped. */
#include "cio_test.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define NO_INTERPOSE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define NO_INTERPOSE 1
#endif
#endif

/* volatile: the compiler treats malloc as a builtin that touches no user
 * state, and would move these stores across the calls. */
static volatile bool counting;
static volatile long allocs;

#ifndef NO_INTERPOSE
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
void *malloc(size_t n) {
  if (counting) allocs++;
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  if (counting) allocs++;
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  if (counting) allocs++;
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#endif

#define ROUNDS 200
#define WARMUP 20

static cio_lock L;
static cio_semaphore S;
static cio_event E1, E2;
static cio_condition C;
static cio_barrier B;
static cio_queue Q1, Q2;
static int turn;

static bool my_turn(void *arg) { return turn == (int)(intptr_t)arg; }

/* Two copies of this run in lock-step; every call below suspends on most
 * rounds. */
static int worker(void *arg, void **res) {
  (void)res;
  int me = (int)(intptr_t)arg, other = 1 - me;
  cio_event *mine = me ? &E2 : &E1, *theirs = me ? &E1 : &E2;
  for (int r = 0; r < ROUNDS; r++) {
    if (me == 0 && r == WARMUP) counting = true;
    int rc;
    if ((rc = cio_lock_acquire(&L)) < 0) return rc;
    if ((rc = cio_yield()) < 0) return rc;
    if ((rc = cio_lock_release(&L)) < 0) return rc;
    if ((rc = cio_semaphore_acquire_timeout(&S, 5.0)) < 0) return rc;
    if ((rc = cio_yield()) < 0) return rc;
    if ((rc = cio_semaphore_release(&S)) < 0) return rc;
    /* Event ping-pong. */
    if ((rc = cio_event_set(theirs)) < 0) return rc;
    if ((rc = cio_event_wait_timeout(mine, 5.0)) < 0) return rc;
    if ((rc = cio_event_clear(mine)) < 0) return rc;
    /* Condition turn-taking. */
    if ((rc = cio_condition_acquire(&C)) < 0) return rc;
    if ((rc = cio_condition_wait_for(&C, my_turn, (void *)(intptr_t)me)) < 0) return rc;
    turn = other;
    if ((rc = cio_condition_notify_all(&C)) < 0) return rc;
    if ((rc = cio_condition_release(&C)) < 0) return rc;
    if ((rc = cio_barrier_wait_timeout(&B, NULL, 5.0)) < 0) return rc;
    /* Queue ping-pong through two bounded queues, with timeouts. */
    void *item;
    if (me == 0) {
      if ((rc = cio_queue_put(&Q1, (void *)(intptr_t)r)) < 0) return rc;
      if ((rc = cio_queue_get_timeout(&Q2, &item, 5.0)) < 0) return rc;
    } else {
      if ((rc = cio_queue_get(&Q1, &item)) < 0) return rc;
      if ((rc = cio_queue_put_timeout(&Q2, item, 5.0)) < 0) return rc;
    }
    if ((rc = cio_queue_task_done(me == 0 ? &Q2 : &Q1)) < 0) return rc;
    if ((rc = cio_queue_join_timeout(me == 0 ? &Q1 : &Q2, 5.0)) < 0) return rc;
    /* A wait that times out. */
    if (me == 0) {
      if ((rc = cio_lock_acquire(&L)) < 0) return rc;
      if ((rc = cio_sleep(0.01)) < 0) return rc;
      if ((rc = cio_lock_release(&L)) < 0) return rc;
    } else {
      while (!cio_lock_locked(&L))
        if ((rc = cio_yield()) < 0) return rc;
      if ((rc = cio_lock_acquire_timeout(&L, 0.001)) != -ETIMEDOUT) return rc < 0 ? rc : -EINVAL;
    }
  }
  counting = false;
  return 0;
}

static int main_task(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_semaphore_init(&S, 1), 0);
  assert_code(cio_event_init(&E1), 0);
  assert_code(cio_event_init(&E2), 0);
  assert_code(cio_condition_init(&C, NULL), 0);
  assert_code(cio_barrier_init(&B, 2), 0);
  assert_code(cio_queue_init(&Q1, 1), 0);
  assert_code(cio_queue_init(&Q2, 1), 0);
  turn = 0;
  cio_task *a = cio_create_task(worker, (void *)0, NULL);
  cio_task *b = cio_create_task(worker, (void *)1, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_code(cio_await(a, NULL), 0);
  assert_code(cio_await(b, NULL), 0);
  cio_task_unref(a);
  cio_task_unref(b);
  counting = false;
  assert_code(cio_lock_destroy(&L), 0);
  assert_code(cio_semaphore_destroy(&S), 0);
  assert_code(cio_event_destroy(&E1), 0);
  assert_code(cio_event_destroy(&E2), 0);
  assert_code(cio_condition_destroy(&C), 0);
  assert_code(cio_barrier_destroy(&B), 0);
  assert_code(cio_queue_destroy(&Q1), 0);
  assert_code(cio_queue_destroy(&Q2), 0);
  return 0;
}

static void test_waits_do_not_allocate(void **state) {
  (void)state;
#ifdef NO_INTERPOSE
  (void)main_task;
  skip();
#else
  /* The counter works (else the check below proves nothing). */
  void *(*volatile m)(size_t) = malloc;
  counting = true;
  void *p = m(16);
  counting = false;
  free(p);
  assert_int_equal(allocs, 1);
  allocs = 0;
  int rc = run_virtual(main_task, NULL);
  assert_code(rc, 0);
  print_message("loop time %.3f s, %ld allocations in %d steady rounds\n", cio_test_elapsed, allocs,
                ROUNDS - WARMUP);
  assert_true(cio_test_elapsed > (ROUNDS - 1) * 0.01);
  assert_int_equal(allocs, 0);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_waits_do_not_allocate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
