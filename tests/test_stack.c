/* Layer 2: the stack pool. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio_test.h"
#include "stack.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stacks_are_reused),
      cmocka_unit_test(many_stacks_share_few_mappings),
      cmocka_unit_test(odd_sizes_round_to_pages),
      cmocka_unit_test(guard_page_faults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
