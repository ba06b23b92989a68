/* communicate N MiB through `cat` (in and out at once), R rounds; prints the
 * best round's throughput as "proc_communicate: <GB/s> GB/s" (bytes passed
 * through cat per second, one way). Usage: bench_proc_communicate [MiB=256]
 * Peers: bench/peers/python/proc.py communicate MiB, bench/peers/go_proc. */
#include "cio_bench.h"

static long mib;

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  size_t n = (size_t)mib << 20;
  char *in = malloc(n);
  if (!in) return -ENOMEM;
  memset(in, 'x', n);
  const char *argv[] = {"cat", NULL};
  cio_process_options o = {.in = CIO_PIPE, .out = CIO_PIPE};
  double best = 0;
  for (int round = 0; round < 3; round++) {
    cio_process *p;
    int rc = cio_subprocess_exec(argv, &o, &p);
    if (rc < 0) bench_die("cio_subprocess_exec", rc);
    int64_t t0 = bench_now_ns();
    char *out;
    size_t len;
    rc = cio_process_communicate(p, in, n, &out, &len, NULL, NULL);
    if (rc < 0 || len != n) bench_die("cio_process_communicate", rc);
    double gbs = (double)n / (double)(bench_now_ns() - t0);
    if (gbs > best) best = gbs;
    free(out);
    cio_process_free(p);
  }
  free(in);
  printf("proc_communicate: %.3f GB/s\n", best);
  return 0;
}

int main(int argc, char **argv) {
  mib = bench_count(argc, argv, 256);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  return 0;
}
