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
 * `async with lock:` is an acquire/release pair; `async with TaskGroup()` is
 * the CIO_WITH_TASKGROUP scope, which joins the workers when it ends.
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
  cio_taskgroup *tg = cio_taskgroup_new();
  if (!tg) return cio_errcode();
  CIO_WITH_TASKGROUP(tg, rc) {
    for (int i = 0; i < NUM_WORKERS; i++) {
      args[i] = (struct worker_arg){&lock, i};
      if (!cio_taskgroup_create_task(tg, worker, &args[i], NULL)) {
        rc = cio_errcode();
        break;
      }
    }
  }
  /* The group has joined every worker, even after a failure: none of them
   * uses this frame any more. */
  cio_taskgroup_free(tg);
  int drc = cio_lock_destroy(&lock);
  return rc < 0 ? rc : drc;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "lock_workers: %s\n", cio_errmsg());
  return rc < 0;
}
