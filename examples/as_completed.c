/* Seed 000: `async for task in as_completed(tasks)` hands the tasks out in
 * completion order, not creation order.
 *
 *   tasks = [asyncio.create_task(job(name, delay))
 *            for name, delay in (("A", 3), ("B", 1), ("C", 2))]
 *   async for task in asyncio.as_completed(tasks):
 *       result = await task
 *       print(f"t={loop.time():.0f} {result}")
 */
#include <cio.h>
#include <stdio.h>

struct job {
  const char *name;
  int delay;
  char text[32];
};

static int job(void *arg, void **result) {
  struct job *j = arg;
  int rc = cio_sleep(j->delay);
  if (rc < 0) return rc;
  snprintf(j->text, sizeof j->text, "%s (%d s)", j->name, j->delay);
  *result = j->text;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct job jobs[] = {{"A", 3, ""}, {"B", 1, ""}, {"C", 2, ""}};
  cio_task *tasks[3];
  cio_future *fs[3];
  for (int i = 0; i < 3; i++) {
    tasks[i] = cio_create_task(job, &jobs[i], NULL);
    if (!tasks[i]) return cio_errcode();
    fs[i] = cio_task_future(tasks[i]);
  }
  cio_as_completed *it = cio_as_completed_new(fs, 3, CIO_NO_TIMEOUT);
  if (!it) return cio_errcode();
  cio_future *f;
  int rc;
  while ((rc = cio_as_completed_next(it, &f)) == 0) {
    void *res;
    rc = cio_await(f, &res);
    if (rc < 0) break;
    printf("t=%.0f %s\n", cio_loop_time(cio_get_running_loop()), (const char *)res);
  }
  cio_as_completed_free(it);
  for (int i = 0; i < 3; i++) cio_task_unref(tasks[i]);
  return rc < 0 ? rc : 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
