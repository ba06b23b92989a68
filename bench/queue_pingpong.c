/* Two tasks pass an item back and forth through two queues (maxsize 1):
 * every item put is a get that was waiting, so each one costs a hand-off, a
 * wake-up and a task switch. Prints the cost per item moved, real clock.
 *
 *   bench_queue_pingpong [round_trips]      (default 500000)
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static cio_queue ping, pong;
static long rounds = 500000;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int echo(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (long i = 0; i < rounds; i++) {
    void *item;
    int rc = cio_queue_get(&ping, &item);
    if (rc < 0 || (rc = cio_queue_put(&pong, item)) < 0) return rc;
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)result;
  int64_t *elapsed = arg;
  cio_task *t = cio_create_task(echo, NULL, NULL);
  if (!t) return cio_errcode();
  int64_t start = now_ns();
  for (long i = 0; i < rounds; i++) {
    void *item;
    int rc = cio_queue_put(&ping, (void *)(intptr_t)i);
    if (rc < 0 || (rc = cio_queue_get(&pong, &item)) < 0) return rc;
    if ((intptr_t)item != i) return cio_raise(CIO_ERUNTIME, "wrong item");
  }
  *elapsed = now_ns() - start;
  int rc = cio_await(t, NULL);
  cio_task_unref(t);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1) rounds = atol(argv[1]);
  if (rounds <= 0 || cio_queue_init(&ping, 1) < 0 || cio_queue_init(&pong, 1) < 0) return 1;
  int64_t elapsed = 0;
  int rc = cio_run(main_task, &elapsed, NULL);
  if (rc < 0) {
    fprintf(stderr, "queue_pingpong: %s\n", cio_errmsg());
    return 1;
  }
  /* One round trip = one item through each queue (as the peers count). */
  printf("queue_pingpong: %.1f ns/roundtrip\n", (double)elapsed / (double)rounds);
  return cio_queue_destroy(&ping) < 0 || cio_queue_destroy(&pong) < 0;
}
