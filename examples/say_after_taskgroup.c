/* Seeds 000, 001, 004: say_after, run concurrently in a TaskGroup.
 *
 *   async def say_after(delay, what):
 *       await asyncio.sleep(delay)
 *       print(what)
 *
 *   async def main():
 *       async with asyncio.TaskGroup() as tg:
 *           task1 = tg.create_task(say_after(1, 'hello'))
 *           task2 = tg.create_task(say_after(2, 'world'))
 *           print(f"started at {time.strftime('%X')}")
 *       # The await is implicit when the context manager exits.
 *       print(f"finished at {time.strftime('%X')}")
 *
 * Takes 2 seconds, not 3: the two waits overlap.
 */
#include <cio.h>
#include <stdio.h>
#include <time.h>

struct say {
  double delay;
  const char *what;
};

static int say_after(void *arg, void **result) {
  (void)result;
  struct say *s = arg;
  int rc = cio_sleep(s->delay);
  if (rc < 0) return rc;
  printf("%s\n", s->what);
  return 0;
}

/* time.strftime('%X') */
static const char *clock_now(char *buf, size_t cap) {
  time_t now = time(NULL);
  struct tm tm;
  strftime(buf, cap, "%X", localtime_r(&now, &tm));
  return buf;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct say hello = {1, "hello"}, world = {2, "world"};
  char buf[32];
  int rc;
  cio_taskgroup *tg = cio_taskgroup_new();
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, say_after, &hello, NULL);
    cio_taskgroup_create_task(tg, say_after, &world, NULL);
    printf("started at %s\n", clock_now(buf, sizeof buf));
  }
  /* The wait for the children is implicit when the scope ends. */
  cio_taskgroup_free(tg);
  if (rc < 0) return rc;
  printf("finished at %s\n", clock_now(buf, sizeof buf));
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
