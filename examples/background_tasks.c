/* Seed 004: fire-and-forget tasks kept in a set and removed from it by a
 * done callback.
 *
 *   background_tasks = set()
 *
 *   def fire_and_forget(coro):
 *       task = asyncio.create_task(coro)
 *       background_tasks.add(task)
 *       task.add_done_callback(background_tasks.discard)
 *
 * The set holds the task references (asyncio's loop keeps only weak ones;
 * cio's loop keeps a strong one until the task is done, and the set keeps
 * the creator's). main waits for a snapshot of the set: the done callbacks
 * that empty it were added first, so they have run when cio_wait returns.
 */
#include <cio.h>
#include <stdio.h>

#define MAX_BACKGROUND 16

static cio_task *background_tasks[MAX_BACKGROUND];
static size_t n_background;

/* background_tasks.discard(task) */
static void discard(cio_future *fut, void *arg) {
  (void)arg;
  cio_task *task = cio_future_task(fut);
  for (size_t i = 0; i < n_background; i++)
    if (background_tasks[i] == task) {
      background_tasks[i] = background_tasks[--n_background];
      cio_task_unref(task);
      return;
    }
}

static int fire_and_forget(cio_task_fn fn, void *arg) {
  if (n_background == MAX_BACKGROUND) return cio_raise(-ENOSPC, "too many background tasks");
  cio_task *task = cio_create_task(fn, arg, NULL);
  if (!task) return cio_errcode();
  background_tasks[n_background++] = task;
  return cio_task_add_done_callback(task, discard, NULL);
}

static int work(void *arg, void **result) {
  (void)result;
  intptr_t i = (intptr_t)arg;
  int rc = cio_sleep((double)i);
  if (rc < 0) return rc;
  printf("background task %ld done\n", (long)i);
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (intptr_t i = 1; i <= 3; i++) {
    int rc = fire_and_forget(work, (void *)i);
    if (rc < 0) return rc;
  }
  printf("background tasks: %zu\n", n_background);
  cio_future *snapshot[MAX_BACKGROUND];
  size_t n = n_background;
  for (size_t i = 0; i < n; i++) snapshot[i] = cio_task_future(background_tasks[i]);
  int rc = cio_wait(snapshot, n, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
  if (rc < 0) return rc;
  printf("background tasks: %zu\n", n_background);
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
