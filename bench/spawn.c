/* W1: spawn N tasks that return at once, then join them all.
 * Prints "spawn: <ns> ns/task, peak RSS <MiB> MiB". Usage: bench_spawn [N=1e6] */
#include "cio_bench.h"

static int noop(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static long n;
static double ns_per_task;

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task **tasks = malloc((size_t)n * sizeof *tasks);
  if (!tasks) return -ENOMEM;
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    tasks[i] = cio_create_task(noop, NULL, NULL);
    if (!tasks[i]) bench_die("cio_create_task", cio_errcode());
  }
  for (long i = 0; i < n; i++) {
    int rc = cio_await(tasks[i], NULL);
    if (rc < 0) bench_die("cio_await", rc);
    cio_task_unref(tasks[i]);
  }
  ns_per_task = (double)(bench_now_ns() - t0) / (double)n;
  free(tasks);
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 1000000);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  printf("spawn: %.1f ns/task, peak RSS %.1f MiB\n", ns_per_task,
         (double)bench_peak_rss() / (1024.0 * 1024.0));
  return 0;
}
