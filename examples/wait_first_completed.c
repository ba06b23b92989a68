/* Seed 000: asyncio.wait with FIRST_COMPLETED returns the fastest task in
 * `done` and the others in `pending`; an ALL_COMPLETED wait on the pending
 * ones then collects the rest.
 *
 *   tasks = [asyncio.create_task(job(name, delay), name=name)
 *            for name, delay in (("slow", 3), ("fast", 1), ("medium", 2))]
 *   done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
 *   ...
 *   done, pending = await asyncio.wait(pending)
 *
 * The sets come back in argument order (asyncio's are unordered; the Python
 * original prints them in the order of `tasks`).
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
  snprintf(j->text, sizeof j->text, "%s after %d s", j->name, j->delay);
  *result = j->text;
  return 0;
}

static void show(const char *what, cio_future **fs, size_t n, bool results) {
  printf("t=%.0f %s: [", cio_loop_time(cio_get_running_loop()), what);
  for (size_t i = 0; i < n; i++) {
    void *res = NULL;
    if (results && cio_future_result(fs[i], &res) == 0)
      printf("%s'%s'", i ? ", " : "", (const char *)res);
    else
      printf("%s'%s'", i ? ", " : "", cio_task_get_name(cio_future_task(fs[i])));
  }
  printf("]\n");
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct job jobs[] = {{"slow", 3, ""}, {"fast", 1, ""}, {"medium", 2, ""}};
  cio_task *tasks[3];
  cio_future *fs[3];
  for (int i = 0; i < 3; i++) {
    cio_task_options opts = {.name = jobs[i].name};
    tasks[i] = cio_create_task(job, &jobs[i], &opts);
    if (!tasks[i]) return cio_errcode();
    fs[i] = cio_task_future(tasks[i]);
  }
  cio_future *done[3], *pending[3];
  size_t ndone, npending;
  int rc = cio_wait(fs, 3, CIO_NO_TIMEOUT, CIO_FIRST_COMPLETED, done, &ndone, pending, &npending);
  if (rc < 0) return rc;
  show("done", done, ndone, true);
  show("pending", pending, npending, false);
  rc = cio_wait(pending, npending, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, done, &ndone, pending,
                &npending);
  if (rc < 0) return rc;
  show("done", done, ndone, true);
  show("pending", pending, npending, false);
  for (int i = 0; i < 3; i++) cio_task_unref(tasks[i]);
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
