/* Seed 004: run a blocking function in the thread pool with to_thread while
 * other tasks keep running ("在线程池跑同步函数").
 *
 *   def blocking_io():
 *       print(f"start blocking_io at {time.strftime('%X')}")
 *       time.sleep(1)                      # a real, blocking sleep
 *       print(f"blocking_io complete at {time.strftime('%X')}")
 *
 *   async def ticker(name):
 *       for i in range(4):
 *           await asyncio.sleep(0.2)
 *           print(f"tick {name}")
 *
 *   async def main():
 *       print(f"started main at {time.strftime('%X')}")
 *       await asyncio.gather(asyncio.to_thread(blocking_io),
 *                            ticker('A'), ticker('B'))
 *       print(f"finished main at {time.strftime('%X')}")
 *
 * The ticks keep coming every 0.2 s while the worker thread sleeps: the loop
 * is never blocked. Times are real (a thread's sleep does not run on the
 * virtual clock), so tests/example_to_thread.sh checks them with a tolerance.
 */
#include <cio.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double t0;

/* Seconds since main started, on the loop's clock. */
static double elapsed(cio_loop *loop) { return cio_loop_time(loop) - t0; }

static void clock_line(const char *what) {
  char buf[16];
  time_t now = time(NULL);
  strftime(buf, sizeof buf, "%H:%M:%S", localtime(&now));
  printf("%s at %s\n", what, buf);
}

/* Runs in a worker thread: no loop here, so it prints wall-clock times. */
static int blocking_io(void *arg, void **result) {
  (void)arg;
  (void)result;
  clock_line("start blocking_io");
  fflush(stdout);
  sleep(1);
  clock_line("blocking_io complete");
  fflush(stdout);
  return 0;
}

static int ticker(void *arg, void **result) {
  (void)result;
  const char *name = arg;
  for (int i = 1; i <= 4; i++) {
    int rc = cio_sleep(0.2);
    if (rc < 0) return rc;
    printf("%.2f s: tick %s%d\n", elapsed(cio_get_running_loop()), name, i);
    fflush(stdout);
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  t0 = cio_loop_time(loop);
  clock_line("started main");
  cio_task *a = cio_create_task(ticker, "A", NULL);
  cio_task *b = cio_create_task(ticker, "B", NULL);
  if (!a || !b) return cio_errcode();
  int rc = cio_to_thread(blocking_io, NULL, NULL);
  printf("%.2f s: to_thread returned\n", elapsed(loop));
  int ra = cio_await(a, NULL), rb = cio_await(b, NULL);
  cio_task_unref(a);
  cio_task_unref(b);
  if (rc == 0) rc = ra < 0 ? ra : rb;
  clock_line("finished main");
  printf("%.2f s in all: the ticks never stopped while the thread slept\n", elapsed(loop));
  return rc;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
