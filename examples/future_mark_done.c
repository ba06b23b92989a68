/* Seed 002: a future completed from a plain callback.
 *
 *   def mark_done(future, result):
 *       print('setting future result to {!r}'.format(result))
 *       future.set_result(result)
 *   async def main():
 *       future = loop.create_future()
 *       print('scheduling mark_done')
 *       loop.call_soon(mark_done, future, 'the result')
 *       print('suspending the coroutine')
 *       result = await future
 *       ...
 */
#include <cio.h>
#include <stdio.h>

struct mark {
  cio_future *future;
  const char *result;
};

static void mark_done(void *arg) {
  struct mark *m = arg;
  printf("setting future result to '%s'\n", m->result);
  if (cio_future_set_result(m->future, (void *)m->result) < 0)
    fprintf(stderr, "set_result: %s\n", cio_errmsg());
}

static int main_task(void *arg, void **result) {
  (void)arg;
  cio_loop *loop = cio_get_running_loop();
  cio_future *future = cio_future_new(loop);
  if (!future) return cio_errcode();
  printf("scheduling mark_done\n");
  struct mark m = {future, "the result"};
  int rc = cio_call_soon(loop, mark_done, &m, NULL);
  if (rc == 0) {
    printf("suspending the coroutine\n");
    void *value;
    rc = cio_await(future, &value);
    if (rc == 0) {
      printf("awaited result: '%s'\n", (const char *)value);
      void *again;
      rc = cio_future_result(future, &again);
      printf("future result: '%s'\n", (const char *)again);
      *result = value;
    }
  }
  cio_future_unref(future);
  return rc;
}

int main(void) {
  printf("entering the event loop\n");
  void *result;
  int rc = cio_run(main_task, NULL, &result);
  if (rc < 0) {
    fprintf(stderr, "cio_run: %s\n", cio_errmsg());
    return 1;
  }
  printf("returned result: '%s'\n", (const char *)result);
  return 0;
}
