/* W6a: N timers scheduled (cio_call_later, delays spread over 1..60 s by a
 * fixed pseudo-random sequence shared with the peers), then all cancelled
 * (cio_handle_cancel + release of the handle).
 * Prints "timers: <ns> ns/op" where one op is one timer scheduled and
 * cancelled. Usage: bench_timers [N=1e6] */
#include "cio_bench.h"

static long n;

static void never(void *arg) {
  (void)arg;
  fprintf(stderr, "timers: a cancelled timer ran\n");
  exit(1);
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  cio_handle **h = malloc((size_t)n * sizeof *h);
  if (!h) return -ENOMEM;
  uint32_t x = 12345; /* the same LCG in every peer */
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    double delay = 1.0 + (double)((x >> 8) % 59000u) / 1000.0;
    int rc = cio_call_later(loop, delay, never, NULL, &h[i]);
    if (rc < 0) bench_die("cio_call_later", rc);
  }
  for (long i = 0; i < n; i++) {
    cio_handle_cancel(h[i]);
    cio_handle_unref(h[i]);
  }
  double ns = (double)(bench_now_ns() - t0) / (double)n;
  free(h);
  printf("timers: %.1f ns/op\n", ns);
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 1000000);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  return 0;
}
