/* Seeds 000 and 001: awaiting two coroutines one after the other.
 *
 *   async def say_after(delay, what):
 *       await asyncio.sleep(delay)
 *       print(what)
 *   async def main():
 *       print(f"started at {time.strftime('%X')}")
 *       await say_after(1, 'hello')
 *       await say_after(2, 'world')
 *       print(f"finished at {time.strftime('%X')}")
 *
 * Awaiting a coroutine is a plain call in cio: it runs inline. 3 seconds.
 */
#include <cio.h>
#include <stdio.h>
#include <time.h>

static void print_clock(const char *what) {
  char buf[16];
  time_t t = time(NULL);
  strftime(buf, sizeof buf, "%X", localtime(&t));
  printf("%s at %s\n", what, buf);
}

static int say_after(double delay, const char *what) {
  int rc = cio_sleep(delay);
  if (rc < 0) return rc;
  printf("%s\n", what);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc;
  print_clock("started");
  if ((rc = say_after(1, "hello")) < 0) return rc;
  if ((rc = say_after(2, "world")) < 0) return rc;
  print_clock("finished");
  return 0;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
