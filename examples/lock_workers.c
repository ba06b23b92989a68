/* Seed 004: four workers taking one Lock.
 *
 *   async def worker(lock, i):
 *       async with lock:
 *           print('worker', i)
 *
 *   async def main():
 *       lock = asyncio.Lock()
 *       async with asyncio.TaskGroup() as tg:
 *           for i in range(4):
 *               tg.create_task(worker(lock, i))
 *
 *   asyncio.run(main())
 *
 * `async with lock:` is an acquire/release pair. The TaskGroup is written as
 * create_task + await here (TaskGroup comes with the structured-concurrency
 * layer); the lines and the loop time are the same.
 */
#include <cio.h>
#include <stdio.h>

#define NUM_WORKERS 4

struct worker_arg {
  cio_lock *lock;
  int i;
};

static int worker(void *arg, void **result) {
  (void)result;
  struct worker_arg *w = arg;
  int rc = cio_lock_acquire(w->lock);
  if (rc < 0) return rc;
  printf("worker %d\n", w->i);
  return cio_lock_release(w->lock);
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_lock lock;
  int rc = cio_lock_init(&lock);
  if (rc < 0) return rc;
  struct worker_arg args[NUM_WORKERS];
  cio_task *tasks[NUM_WORKERS];
  int n = 0;
  for (; n < NUM_WORKERS; n++) {
    args[n] = (struct worker_arg){&lock, n};
    if (!(tasks[n] = cio_create_task(worker, &args[n], NULL))) {
      rc = cio_errcode();
      break;
    }
  }
  /* Wait for every worker, even after a failure: they use this frame. */
  for (int i = 0; i < n; i++) {
    int wrc = cio_await(tasks[i], NULL);
    if (wrc < 0 && rc == 0) rc = wrc;
    cio_task_unref(tasks[i]);
  }
  int drc = cio_lock_destroy(&lock);
  return rc < 0 ? rc : drc;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "lock_workers: %s\n", cio_errmsg());
  return rc < 0;
}
