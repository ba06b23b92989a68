/* Seed 003: awaiting a coroutine does not yield; awaiting a task does.
 *
 *   async def main():
 *       task_b = asyncio.create_task(coro_b())
 *       for _ in range(3):
 *           await coro_a()                  # A A A: never yields
 *       await task_b                        # B
 *
 * then the same with `await asyncio.create_task(coro_a())`, which prints
 * B first: each awaited task yields to the loop, and task_b was scheduled
 * before the first A task.
 */
#include <cio.h>
#include <stdio.h>

static int coro_a(void *arg, void **result) {
  (void)arg;
  (void)result;
  printf("A\n");
  return 0;
}

static int coro_b(void *arg, void **result) {
  (void)arg;
  (void)result;
  printf("B(希望沒人霸佔事件迴圈……)\n");
  return 0;
}

static int await_new_task(cio_task_fn fn) {
  cio_task *t = cio_create_task(fn, NULL, NULL);
  if (!t) return cio_errcode();
  int rc = cio_await(t, NULL);
  cio_task_unref(t);
  return rc;
}

static int main_task(void *arg, void **result) {
  (void)result;
  int as_tasks = *(int *)arg;
  cio_task *task_b = cio_create_task(coro_b, NULL, NULL);
  if (!task_b) return cio_errcode();
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++)
    rc = as_tasks ? await_new_task(coro_a) : coro_a(NULL, NULL);
  if (rc == 0) rc = cio_await(task_b, NULL);
  cio_task_unref(task_b);
  return rc;
}

int main(void) {
  int coroutines = 0, tasks = 1;
  if (cio_run(main_task, &coroutines, NULL) < 0) return 1;
  return cio_run(main_task, &tasks, NULL) < 0;
}
