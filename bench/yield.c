/* W4: one task yields N times (asyncio.sleep(0)).
 * Prints "yield: <ns> ns/yield". Usage: bench_yield [N=1e6] */
#include "cio_bench.h"

static long n;
static double ns_per_yield;

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    int rc = cio_yield();
    if (rc < 0) bench_die("cio_yield", rc);
  }
  ns_per_yield = (double)(bench_now_ns() - t0) / (double)n;
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 1000000);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  printf("yield: %.1f ns/yield\n", ns_per_yield);
  return 0;
}
