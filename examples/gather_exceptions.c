/* Seed 002: gather with return_exceptions=True.
 *
 *   async def dosomething(num):
 *       print('第 {} 任務,第一步'.format(num))
 *       await asyncio.sleep(2)
 *       print('第 {} 任務,第二步'.format(num))
 *       return '第 {} 任務完成'.format(num)
 *
 *   async def raise_error(num):
 *       raise ValueError
 *
 *   async def main():
 *       tasks = [dosomething(i) for i in range(5)]
 *       tasks1 = [raise_error(i) for i in range(5)]
 *       results = await asyncio.gather(*tasks, *tasks1, return_exceptions=True)
 *       print(results)
 *
 * ValueError is -EINVAL here; a failed slot prints as the seed's ValueError().
 */
#include <cio.h>
#include <stdio.h>

static char done_text[5][64];

static int dosomething(void *arg, void **result) {
  int num = (int)(intptr_t)arg;
  printf("第 %d 任務,第一步\n", num);
  int rc = cio_sleep(2);
  if (rc < 0) return rc;
  printf("第 %d 任務,第二步\n", num);
  snprintf(done_text[num], sizeof done_text[num], "第 %d 任務完成", num);
  *result = done_text[num];
  return 0;
}

static int raise_error(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EINVAL, "ValueError");
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  double start = cio_loop_time(cio_get_running_loop());
  cio_call calls[10];
  for (int i = 0; i < 5; i++) {
    calls[i] = (cio_call){dosomething, (void *)(intptr_t)i};
    calls[5 + i] = (cio_call){raise_error, (void *)(intptr_t)i};
  }
  void *results[10];
  int codes[10]; /* return_exceptions=True */
  int rc = cio_gather_calls(calls, 10, results, codes, NULL);
  if (rc < 0) return rc;
  printf("[");
  for (int i = 0; i < 10; i++) {
    if (i) printf(", ");
    if (codes[i] == 0)
      printf("'%s'", (const char *)results[i]);
    else if (codes[i] == -EINVAL)
      printf("ValueError()");
    else
      printf("%s()", cio_err_name(codes[i]));
  }
  printf("]\n");
  printf("TIME: %.3f\n", cio_loop_time(cio_get_running_loop()) - start);
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
