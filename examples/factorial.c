/* Seed 004: two factorials computed concurrently, gathered.
 *
 *   async def factorial(name, n):
 *       f = 1
 *       for i in range(2, n + 1):
 *           await asyncio.sleep(0.1)
 *           f *= i
 *       return f
 *
 *   async def main():
 *       results = await asyncio.gather(
 *           factorial('A', 3),
 *           factorial('B', 4),
 *       )
 *       print(results)
 *
 * Prints [6, 24] after 0.3 s (B's three steps; A's two overlap them).
 */
#include <cio.h>
#include <stdio.h>

struct fact {
  const char *name;
  long n;
};

static int factorial(void *arg, void **result) {
  struct fact *a = arg;
  long f = 1;
  for (long i = 2; i <= a->n; i++) {
    int rc = cio_sleep(0.1);
    if (rc < 0) return rc;
    f *= i;
  }
  *result = (void *)(intptr_t)f;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct fact a = {"A", 3}, b = {"B", 4};
  cio_call calls[] = {{factorial, &a}, {factorial, &b}};
  void *results[2];
  int rc = cio_gather_calls(calls, 2, results, NULL, NULL);
  if (rc < 0) return rc;
  printf("[%ld, %ld]\n", (long)(intptr_t)results[0], (long)(intptr_t)results[1]);
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
