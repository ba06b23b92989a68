/* Seed 002: five tasks that print, sleep 2 s, print again.
 *
 *   async def dosomething(num):
 *       print('第 {} 任務,第一步'.format(num))
 *       await asyncio.sleep(2)
 *       print('第 {} 任務,第二步'.format(num))
 *   tasks = [dosomething(i) for i in range(5)]
 *   loop.run_until_complete(asyncio.wait(tasks))
 *   print('TIME: ', now() - start)
 *
 * The seed's listing shows the first steps in set order (0 1 4 3 2), an
 * artefact of passing bare coroutines to an old asyncio.wait; tasks created
 * in order run in that order, as here. The elapsed time comes from the loop's
 * clock: exactly 2.000 under the virtual clock.
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>

static int dosomething(void *arg, void **result) {
  (void)result;
  int num = (int)(intptr_t)arg;
  printf("第 %d 任務,第一步\n", num);
  int rc = cio_sleep(2);
  if (rc < 0) return rc;
  printf("第 %d 任務,第二步\n", num);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  double start = cio_loop_time(cio_get_running_loop());
  cio_task *tasks[5];
  for (int i = 0; i < 5; i++)
    if (!(tasks[i] = cio_create_task(dosomething, (void *)(intptr_t)i, NULL))) return cio_errcode();
  int rc = 0;
  for (int i = 0; i < 5; i++) {
    int r = cio_await(tasks[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(tasks[i]);
  }
  printf("TIME: %.3f\n", cio_loop_time(cio_get_running_loop()) - start);
  return rc;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
