/* Seed 003, the asynchronous version: fetch A (3 s) and B (2 s) at once.
 *
 *   async def fetch(name, seconds):
 *       print(f"{name} 開始")
 *       await asyncio.sleep(seconds)     # 模擬等網路
 *       print(f"{name} 完成")
 *       return name
 *
 *   async def main():
 *       results = await asyncio.gather(
 *           fetch("A", 3),
 *           fetch("B", 2),
 *       )
 *       print(results)
 *
 *   t0 = time.time()
 *   asyncio.run(main())
 *   print(time.time() - t0)              # ≈ 3 秒
 *
 * Both start at once, B finishes first, and the whole takes as long as the
 * slowest (3 s on the loop clock), not the sum.
 */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* print(x) for a float: Python's shortest round-trip repr. */
static void print_float(double x) {
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  printf("%s%s\n", buf, strpbrk(buf, ".eni") ? "" : ".0");
}

struct fetch_args {
  const char *name;
  double seconds;
};

static int fetch(void *arg, void **result) {
  struct fetch_args *a = arg;
  printf("%s 開始\n", a->name);
  int rc = cio_sleep(a->seconds); /* 模擬等網路 */
  if (rc < 0) return rc;
  printf("%s 完成\n", a->name);
  *result = (void *)a->name;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  double t0 = cio_loop_time(loop);
  struct fetch_args a = {"A", 3}, b = {"B", 2};
  cio_call calls[] = {{fetch, &a}, {fetch, &b}};
  void *results[2];
  int rc = cio_gather_calls(calls, 2, results, NULL, NULL);
  if (rc < 0) return rc;
  printf("['%s', '%s']\n", (const char *)results[0], (const char *)results[1]);
  /* The seed times asyncio.run from outside; the loop clock lives as long
   * as the loop, so the time is taken at the end of main instead. */
  print_float(cio_loop_time(loop) - t0); /* ≈ 3 秒 */
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
