/* Seed 003, the synchronous version: fetch A (3 s), then fetch B (2 s).
 *
 *   def fetch(name, seconds):
 *       print(f"{name} 開始")
 *       time.sleep(seconds)              # 模擬等網路
 *       print(f"{name} 完成")
 *       return name
 *
 *   t0 = time.time()
 *   results = [fetch("A", 3), fetch("B", 2)]
 *   print(results)
 *   print(time.time() - t0)              # ≈ 5 秒
 *
 * In C a plain call is asyncio's "await coroutine": fetch runs inline and
 * each sleep is waited for before the next fetch starts, so one task takes
 * 3 + 2 = 5 seconds, measured on the loop clock (exactly 5.0 under the
 * virtual clock, a little more in real time).
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

static int fetch(const char *name, double seconds, const char **result) {
  printf("%s 開始\n", name);
  int rc = cio_sleep(seconds); /* 模擬等網路 */
  if (rc < 0) return rc;
  printf("%s 完成\n", name);
  *result = name;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  double t0 = cio_loop_time(loop);
  const char *results[2];
  int rc = fetch("A", 3, &results[0]);
  if (rc < 0) return rc;
  rc = fetch("B", 2, &results[1]);
  if (rc < 0) return rc;
  printf("['%s', '%s']\n", results[0], results[1]);
  print_float(cio_loop_time(loop) - t0); /* ≈ 5 秒 */
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
