/* Layer 1: the context switch, tested directly (no loop). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cio_test.h"
#include "arch/switch.h"

static cio__ctx main_ctx, co_ctx;
static int steps;

static void entry(void *arg) {
  cio__ctx_entered(&co_ctx);
  int *counter = arg;
  for (;;) {
    (*counter)++;
    steps++;
    cio__ctx_switch(&co_ctx, &main_ctx, false);
  }
}

static void *new_stack(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  return p;
}

static void switches_back_and_forth(void **state) {
  (void)state;
  size_t size = 64 * 1024;
  void *stack = new_stack(size);
  int counter = 0;
  cio__ctx_init_thread(&main_ctx);
  cio__ctx_make(&co_ctx, stack, size, entry, &counter);
  for (int i = 1; i <= 1000; i++) {
    cio__ctx_switch(&main_ctx, &co_ctx, false);
    assert_int_equal(counter, i);
  }
  cio__ctx_destroy(&co_ctx);
  munmap(stack, size);
}

/* Callee-saved state survives a switch: values live in registers across the
 * call (the compiler keeps them in rbx/r12-r15 or x19-x28 and d8-d15), and
 * the floating-point control state of each side is its own. */
static double fp_entry_result;

static void fp_entry(void *arg) {
  cio__ctx_entered(&co_ctx);
  (void)arg;
  for (;;) {
    volatile double x = 1.0;
    fp_entry_result = sqrt(x * 2.0);
    cio__ctx_switch(&co_ctx, &main_ctx, false);
  }
}

static void registers_survive(void **state) {
  (void)state;
  size_t size = 64 * 1024;
  void *stack = new_stack(size);
  cio__ctx_init_thread(&main_ctx);
  cio__ctx_make(&co_ctx, stack, size, fp_entry, NULL);
  uint64_t a = 0x1111111111111111u, b = 0x2222222222222222u, c = 0x3333333333333333u;
  uint64_t d = 0x4444444444444444u, e = 0x5555555555555555u;
  double f1 = 1.5, f2 = 2.5, f3 = 3.5;
  for (int i = 0; i < 100; i++) {
    cio__ctx_switch(&main_ctx, &co_ctx, false);
    a += 1; b += 2; c += 3; d += 4; e += 5;
    f1 *= 1.0; f2 += 0.0; f3 -= 0.0;
  }
  assert_true(a == 0x1111111111111111u + 100 && b == 0x2222222222222222u + 200);
  assert_true(c == 0x3333333333333333u + 300 && d == 0x4444444444444444u + 400);
  assert_true(e == 0x5555555555555555u + 500);
  assert_true(f1 == 1.5 && f2 == 2.5 && f3 == 3.5);
  assert_float_equal(fp_entry_result, sqrt(2.0), 1e-15);
  cio__ctx_destroy(&co_ctx);
  munmap(stack, size);
}

static void stack_is_aligned_for_calls(void **state) {
  (void)state;
  /* A function using aligned SSE spills (e.g. printf with doubles) would
   * crash on a misaligned stack; snprintf of a double exercises it. */
  size_t size = 64 * 1024;
  void *stack = new_stack(size);
  cio__ctx_init_thread(&main_ctx);
  char buf[64];
  struct {
    char *buf;
  } arg = {buf};
  void aligned_entry(void *);
  cio__ctx_make(&co_ctx, stack, size, aligned_entry, &arg);
  cio__ctx_switch(&main_ctx, &co_ctx, false);
  assert_string_equal(buf, "3.141593 aligned");
  cio__ctx_destroy(&co_ctx);
  munmap(stack, size);
}

void aligned_entry(void *p) {
  cio__ctx_entered(&co_ctx);
  char *buf = *(char **)p;
  long double x = 3.14159265358979L;
  _Alignas(16) char probe[16];
  snprintf(buf, 64, "%Lf %s", x, ((uintptr_t)probe % 16) == 0 ? "aligned" : "misaligned");
  for (;;) cio__ctx_switch(&co_ctx, &main_ctx, false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(switches_back_and_forth),
      cmocka_unit_test(registers_survive),
      cmocka_unit_test(stack_is_aligned_for_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
