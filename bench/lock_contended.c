/* 100 tasks contend for one Lock: each holds it across a yield, so every
 * acquire but the first of a round waits in the queue and is handed the lock
 * by a release. Prints the cost per acquire/release pair (including the
 * wake-up hop and the task switches), real clock.
 *
 *   bench_lock_contended [acquisitions]   (in all, default 1,000,000; as the peers)
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NTASKS 100

static cio_lock lock;
static long rounds = 5000;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int worker(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (long i = 0; i < rounds; i++) {
    int rc = cio_lock_acquire(&lock);
    if (rc < 0) return rc;
    if ((rc = cio_yield()) < 0) return rc;
    if ((rc = cio_lock_release(&lock)) < 0) return rc;
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)result;
  int64_t *elapsed = arg;
  cio_task *ts[NTASKS];
  int64_t start = now_ns();
  for (int i = 0; i < NTASKS; i++)
    if (!(ts[i] = cio_create_task(worker, NULL, NULL))) return cio_errcode();
  int rc = 0;
  for (int i = 0; i < NTASKS; i++) {
    int r = cio_await(ts[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(ts[i]);
  }
  *elapsed = now_ns() - start;
  return rc;
}

int main(int argc, char **argv) {
  long total = argc > 1 ? atol(argv[1]) : 1000000;
  rounds = total / NTASKS;
  if (rounds <= 0 || cio_lock_init(&lock) < 0) return 1;
  int64_t elapsed = 0;
  int rc = cio_run(main_task, &elapsed, NULL);
  if (rc < 0) {
    fprintf(stderr, "lock_contended: %s\n", cio_errmsg());
    return 1;
  }
  printf("lock_contended: %.1f ns/op\n", (double)elapsed / ((double)NTASKS * (double)rounds));
  return cio_lock_destroy(&lock) < 0;
}
