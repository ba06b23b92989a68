/* Seed 003: five workers started with create_task, each done after 1 s;
 * all five finish together, 1 second in all.
 *
 *   async def worker(i):
 *       await asyncio.sleep(1)
 *       print(f"任務 {i} 完成")
 *   tasks = [asyncio.create_task(worker(i)) for i in range(5)]
 *   await asyncio.gather(*tasks)
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>

static int worker(void *arg, void **result) {
  (void)result;
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  printf("任務 %d 完成\n", (int)(intptr_t)arg);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tasks[5];
  cio_future *futs[5];
  for (int i = 0; i < 5; i++) {
    if (!(tasks[i] = cio_create_task(worker, (void *)(intptr_t)i, NULL))) return cio_errcode();
    futs[i] = cio_task_future(tasks[i]);
  }
  /* ... other work could go here ... */
  int rc = cio_gather(futs, 5, NULL, NULL); /* then wait for all of them */
  for (int i = 0; i < 5; i++) cio_task_unref(tasks[i]);
  return rc;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
