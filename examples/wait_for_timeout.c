/* Seed 003: a 10 s operation under a 3 s wait_for.
 *
 *   async def slow_task():
 *       await asyncio.sleep(10)        # 假設這是一個會跑很久的 IO
 *       return "done"
 *
 *   async def main():
 *       try:
 *           result = await asyncio.wait_for(slow_task(), timeout=3.0)
 *       except TimeoutError:
 *           print("超過 3 秒,放棄")
 *
 * asyncio runs the coroutine slow_task() inside main's task under a timeout
 * scope; cio_wait_for_call does the same with a function. At 3 s the sleep
 * is cancelled and wait_for returns -ETIMEDOUT (TimeoutError).
 */
#include <cio.h>
#include <stdio.h>

static int slow_task(void *arg, void **result) {
  (void)arg;
  int rc = cio_sleep(10); /* 假設這是一個會跑很久的 IO */
  if (rc < 0) return rc;
  *result = "done";
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  void *res;
  int rc = cio_wait_for_call(slow_task, NULL, 3.0, &res);
  if (rc == -ETIMEDOUT) {
    printf("超過 3 秒,放棄\n");
    return 0;
  }
  if (rc < 0) return rc;
  printf("%s\n", (const char *)res);
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
