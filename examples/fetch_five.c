/* Seed 003: five fetches of 1 s each, gathered: 1 s in all.
 *
 *   async def fetch(i):
 *       await asyncio.sleep(1)
 *       return i * 2
 *
 *   async def main():
 *       results = await asyncio.gather(
 *           fetch(1), fetch(2), fetch(3), fetch(4), fetch(5)
 *       )
 *       print(results)        # [2, 4, 6, 8, 10]
 */
#include <cio.h>
#include <stdio.h>

static int fetch(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  *result = (void *)(i * 2);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_call calls[5];
  for (intptr_t i = 0; i < 5; i++) calls[i] = (cio_call){fetch, (void *)(i + 1)};
  void *results[5];
  int rc = cio_gather_calls(calls, 5, results, NULL, NULL);
  if (rc < 0) return rc;
  printf("[");
  for (int i = 0; i < 5; i++) printf("%s%ld", i ? ", " : "", (long)(intptr_t)results[i]);
  printf("]\n");
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
