/* Seeds 000 and 001: the same two calls run concurrently as tasks.
 *
 *   task1 = asyncio.create_task(say_after(1, 'hello'))
 *   task2 = asyncio.create_task(say_after(2, 'world'))
 *   print(f"started at {time.strftime('%X')}")
 *   await task1
 *   await task2
 *   print(f"finished at {time.strftime('%X')}")
 *
 * 2 seconds instead of 3.
 */
#include <cio.h>
#include <stdio.h>
#include <time.h>

struct say {
  double delay;
  const char *what;
};

static void print_clock(const char *what) {
  char buf[16];
  time_t t = time(NULL);
  strftime(buf, sizeof buf, "%X", localtime(&t));
  printf("%s at %s\n", what, buf);
}

static int say_after(void *arg, void **result) {
  (void)result;
  struct say *s = arg;
  int rc = cio_sleep(s->delay);
  if (rc < 0) return rc;
  printf("%s\n", s->what);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct say hello = {1, "hello"}, world = {2, "world"};
  cio_task *task1 = cio_create_task(say_after, &hello, NULL);
  cio_task *task2 = cio_create_task(say_after, &world, NULL);
  if (!task1 || !task2) return cio_errcode();
  print_clock("started");
  int rc = cio_await(task1, NULL);
  if (rc == 0) rc = cio_await(task2, NULL);
  cio_task_unref(task1);
  cio_task_unref(task2);
  if (rc < 0) return rc;
  print_clock("finished");
  return 0;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
