/* Seeds 003 and 004, the common mistake: a blocking call inside a task.
 *
 *   async def bad():
 *       time.sleep(1)          # no error, but the whole event loop stops
 *
 * cio tasks are cooperative: a task runs until it awaits something. A plain
 * sleep(1) (or a blocking read, or a long computation) inside a task keeps
 * the loop's thread busy, so no other task runs and every timer fires late.
 * This program shows it with timestamps, then shows the two fixes: await
 * cio_sleep() instead (asyncio.sleep), or, when the blocking call cannot be
 * changed, run it in the thread pool with cio_to_thread (asyncio.to_thread).
 *
 * Times are real, so tests/example_blocking_mistake.sh checks them with a
 * tolerance.
 */
#include <cio.h>
#include <stdio.h>
#include <unistd.h>

static double t0;

static double elapsed(void) { return cio_loop_time(cio_get_running_loop()) - t0; }

/* Ticks every 0.2 s, and says when a tick comes late. */
static int ticker(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 1; i <= 5; i++) {
    int rc = cio_sleep(0.2);
    if (rc < 0) return rc;
    double t = elapsed(), due = 0.2 * i, late = t - due;
    if (late > 0.1)
      printf("%.2f s: tick %d (due at %.2f s: %.2f s late)\n", t, i, due, late);
    else
      printf("%.2f s: tick %d\n", t, i);
  }
  return 0;
}

static int blocking_sleep(void *arg, void **result) {
  (void)arg;
  (void)result;
  sleep(1);
  return 0;
}

enum way { MISTAKE, FIX_SLEEP, FIX_THREAD };

static int worker(void *arg, void **result) {
  (void)result;
  enum way way = (enum way)(long)arg;
  int rc = 0;
  switch (way) {
  case MISTAKE:
    printf("%.2f s: worker calls sleep(1): the loop stops\n", elapsed());
    sleep(1); /* the mistake */
    break;
  case FIX_SLEEP:
    printf("%.2f s: worker awaits cio_sleep(1): the loop runs on\n", elapsed());
    rc = cio_sleep(1);
    break;
  case FIX_THREAD:
    printf("%.2f s: worker runs sleep(1) with cio_to_thread: the loop runs on\n", elapsed());
    rc = cio_to_thread(blocking_sleep, NULL, NULL);
    break;
  }
  printf("%.2f s: worker done\n", elapsed());
  return rc;
}

static int part(enum way way, const char *title) {
  printf("-- %s\n", title);
  t0 = cio_loop_time(cio_get_running_loop());
  cio_task *t = cio_create_task(ticker, NULL, NULL);
  cio_task *w = cio_create_task(worker, (void *)(long)way, NULL);
  if (!t || !w) return cio_errcode();
  int rc = cio_await(w, NULL);
  int rt = cio_await(t, NULL);
  cio_task_unref(t);
  cio_task_unref(w);
  return rc < 0 ? rc : rt;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = part(MISTAKE, "the mistake: sleep(1) inside a task");
  if (rc == 0) rc = part(FIX_SLEEP, "fix 1: await cio_sleep(1)");
  if (rc == 0) rc = part(FIX_THREAD, "fix 2: cio_to_thread(blocking function)");
  return rc;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  return cio_run(main_task, NULL, NULL) < 0;
}
