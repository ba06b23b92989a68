/* Seed 001: a coroutine awaited from another, and the same as a task.
 *
 *   async def nested():
 *       return 42
 *   async def main():
 *       print(await nested())        # will print "42".
 *
 * In C awaiting a coroutine is calling the function. The second half of the
 * seed wraps it in a task and awaits the task, which yields once.
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>

static int nested(void *arg, void **result) {
  (void)arg;
  *result = (void *)(intptr_t)42;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  void *value;
  nested(NULL, &value); /* await nested(): a plain call, no suspension */
  printf("%d\n", (int)(intptr_t)value);

  cio_task *task = cio_create_task(nested, NULL, NULL); /* scheduled to run soon */
  if (!task) return cio_errcode();
  int rc = cio_await(task, &value); /* "await task": waits until it is complete */
  cio_task_unref(task);
  return rc;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
