/* Seed 003: gather with return_exceptions=True, then one line per result.
 *
 *   results = await asyncio.gather(
 *       fetch(1), fetch(2), fetch(3),
 *       return_exceptions=True     # 失敗的會回傳例外物件,不 raise
 *   )
 *   for r in results:
 *       if isinstance(r, Exception):
 *           print(f"任務失敗:{r}")
 *       else:
 *           print(f"結果:{r}")
 *
 * with the seed's fetch(i): sleep 1 s, return i * 2. With the codes array,
 * gather never fails for a child: each slot holds its result or its error
 * (whose message, the str() of the exception, is kept by the child task).
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
  cio_call calls[] = {{fetch, (void *)1}, {fetch, (void *)2}, {fetch, (void *)3}};
  cio_task *tasks[3];
  void *results[3];
  int codes[3];
  int rc = cio_gather_calls(calls, 3, results, codes, tasks);
  if (rc < 0) return rc;
  for (int i = 0; i < 3; i++) {
    if (codes[i] < 0)
      printf("任務失敗:%s\n", cio_future_error_message(cio_task_future(tasks[i])));
    else
      printf("結果:%ld\n", (long)(intptr_t)results[i]);
    cio_task_unref(tasks[i]);
  }
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
