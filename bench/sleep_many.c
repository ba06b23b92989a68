/* W3: N tasks start together and each sleeps 1 s (real clock).
 * Prints "sleep_many: <N> tasks, <ms> ms beyond 1 s, <B> B/task, peak RSS <MiB> MiB"
 * where the time is the wall time from the first spawn to the last join minus
 * 1 s, and B/task is (peak RSS - RSS before spawning) / N.
 * Usage: bench_sleep_many [N=1e5] [stack KiB, 0 = the default] */
#include "cio_bench.h"

static long n;

static int sleeper(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(1.0);
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task **tasks = malloc((size_t)n * sizeof *tasks);
  if (!tasks) return -ENOMEM;
  int64_t rss0 = bench_current_rss();
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    tasks[i] = cio_create_task(sleeper, NULL, NULL);
    if (!tasks[i]) bench_die("cio_create_task", cio_errcode());
  }
  for (long i = 0; i < n; i++) {
    int rc = cio_await(tasks[i], NULL);
    if (rc < 0) bench_die("cio_await", rc);
    cio_task_unref(tasks[i]);
  }
  double beyond_ms = (double)(bench_now_ns() - t0) / 1e6 - 1000.0;
  int64_t peak = bench_peak_rss();
  free(tasks);
  printf("sleep_many: %ld tasks, %.1f ms beyond 1 s, %.0f B/task, peak RSS %.1f MiB\n", n,
         beyond_ms, (double)(peak - rss0) / (double)n, (double)peak / (1024.0 * 1024.0));
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 100000);
  cio_loop_options opts = {0};
  if (argc > 2) opts.default_stack_size = (size_t)strtoul(argv[2], NULL, 10) * 1024;
  int rc = cio_run_opts(main_task, NULL, NULL, &opts);
  if (rc < 0) bench_die("cio_run", rc);
  return 0;
}
