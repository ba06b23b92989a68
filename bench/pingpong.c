/* W2: two tasks pass a token back and forth N times through futures (each
 * side awaits a fresh future that the other side completes: asyncio's
 * loop.create_future() / set_result()).
 * Prints "pingpong: <ns> ns/roundtrip". Usage: bench_pingpong [N=1e6] */
#include "cio_bench.h"

static long n;
/* The future each side waits on next: [0] the pinger's, [1] the ponger's. */
static cio_future *waits[2];

static int pong(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (long i = 0; i < n; i++) {
    cio_future *mine = waits[1];
    int rc = cio_await(mine, NULL);
    if (rc < 0) bench_die("cio_await", rc);
    cio_future_unref(mine);
    /* The next one exists before the pinger can run again. */
    if (i + 1 < n && !(waits[1] = cio_future_new(cio_get_running_loop())))
      bench_die("cio_future_new", cio_errcode());
    rc = cio_future_set_result(waits[0], NULL);
    if (rc < 0) bench_die("cio_future_set_result", rc);
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  if (!(waits[1] = cio_future_new(loop))) bench_die("cio_future_new", cio_errcode());
  cio_task *ponger = cio_create_task(pong, NULL, NULL);
  if (!ponger) bench_die("cio_create_task", cio_errcode());
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    cio_future *mine = cio_future_new(loop);
    if (!mine) bench_die("cio_future_new", cio_errcode());
    waits[0] = mine;
    int rc = cio_future_set_result(waits[1], NULL);
    if (rc < 0) bench_die("cio_future_set_result", rc);
    rc = cio_await(mine, NULL);
    if (rc < 0) bench_die("cio_await", rc);
    cio_future_unref(mine);
  }
  double ns = (double)(bench_now_ns() - t0) / (double)n;
  int rc = cio_await(ponger, NULL);
  if (rc < 0) bench_die("cio_await", rc);
  cio_task_unref(ponger);
  *result = NULL;
  printf("pingpong: %.1f ns/roundtrip\n", ns);
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 1000000);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  return 0;
}
