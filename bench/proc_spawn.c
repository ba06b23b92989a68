/* Spawn + wait N `true` children, 100 at a time (spawn 100, wait for them,
 * repeat). Prints "proc_spawn: <ms> ms/child". Usage: bench_proc_spawn [N=1e4]
 * Peers: bench/peers/python/proc.py spawn N, bench/peers/go_proc spawn N. */
#include "cio_bench.h"

#define BATCH 100

static long n;

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  const char *argv[] = {"true", NULL};
  cio_process *ps[BATCH];
  int64_t t0 = bench_now_ns();
  for (long done = 0; done < n;) {
    long k = n - done < BATCH ? n - done : BATCH;
    for (long i = 0; i < k; i++) {
      int rc = cio_subprocess_exec(argv, NULL, &ps[i]);
      if (rc < 0) bench_die("cio_subprocess_exec", rc);
    }
    for (long i = 0; i < k; i++) {
      int code, rc = cio_process_wait(ps[i], &code);
      if (rc < 0 || code != 0) bench_die("cio_process_wait", rc);
      cio_process_free(ps[i]);
    }
    done += k;
  }
  printf("proc_spawn: %.3f ms/child\n", (double)(bench_now_ns() - t0) / 1e6 / (double)n);
  return 0;
}

int main(int argc, char **argv) {
  n = bench_count(argc, argv, 10000);
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) bench_die("cio_run", rc);
  return 0;
}
