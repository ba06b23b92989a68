/* Layer 4: futures. */
#include <stdint.h>

#include "cio_test.h"

static cio_loop *new_loop(void) {
  cio_loop *loop;
  cio_loop_options o = {.virtual_time = true};
  assert_code(cio_loop_new(&loop, &o), 0);
  return loop;
}

static void states_and_accessors(void **state) {
  (void)state;
  cio_loop *loop = new_loop();
  cio_future *f = cio_future_new(loop);
  assert_non_null(f);
  assert_ptr_equal(cio_future_get_loop(f), loop);
  assert_false(cio_future_done(f));
  void *v;
  assert_code(cio_future_result(f, &v), CIO_EINVALSTATE);
  assert_code(cio_future_error(f), CIO_EINVALSTATE);
  assert_code(cio_future_set_result(f, (void *)(intptr_t)3), 0);
  assert_true(cio_future_done(f));
  assert_false(cio_future_cancelled(f));
  assert_code(cio_future_set_result(f, NULL), CIO_EINVALSTATE); /* exactly once */
  assert_code(cio_future_set_error(f, -EIO, "x"), CIO_EINVALSTATE);
  assert_int_equal(cio_future_cancel(f, NULL), 0);             /* done: no effect */
  assert_code(cio_future_result(f, &v), 0);
  assert_int_equal((intptr_t)v, 3);
  assert_code(cio_future_error(f), 0);
  assert_null(cio_future_error_message(f));
  cio_future_unref(f);

  f = cio_future_new(loop);
  assert_code(cio_future_set_error(f, 5, "positive"), -EINVAL);
  assert_code(cio_future_set_error(f, -ECANCELED, NULL), -EINVAL);
  assert_code(cio_future_set_error(f, -EPIPE, "peer closed after %d bytes", 17), 0);
  assert_code(cio_future_result(f, &v), -EPIPE);
  assert_string_equal(cio_errmsg(), "peer closed after 17 bytes");
  assert_string_equal(cio_future_error_message(f), "peer closed after 17 bytes");
  cio_future_unref(f);

  f = cio_future_new(loop);
  assert_int_equal(cio_future_cancel(f, "no longer needed"), 1);
  assert_true(cio_future_cancelled(f));
  assert_code(cio_future_result(f, &v), -ECANCELED);
  assert_string_equal(cio_errmsg(), "no longer needed");
  assert_code(cio_future_unref(f), 0);

  assert_code(cio_future_set_result(NULL, NULL), -EINVAL);
  assert_int_equal(cio_future_cancel(NULL, NULL), -EINVAL);
  assert_null(cio_future_new(NULL));
  cio_loop_free(loop);
}

static void cb(cio_future *f, void *arg) {
  trace("%s:%s", (const char *)arg, cio_future_cancelled(f) ? "cancelled" : "done");
}

static void stop_cb(void *arg) { cio_loop_stop(arg); }

static void done_callbacks_are_scheduled_in_order(void **state) {
  (void)state;
  cio_loop *loop = new_loop();
  cio_future *f = cio_future_new(loop);
  assert_code(cio_future_add_done_callback(f, cb, "one"), 0);
  assert_code(cio_future_add_done_callback(f, cb, "two"), 0);
  assert_code(cio_future_add_done_callback(f, cb, "one"), 0);
  assert_code(cio_future_add_done_callback(f, cb, "three"), 0);
  assert_int_equal(cio_future_remove_done_callback(f, cb, "one"), 2); /* all matching */
  assert_code(cio_future_add_done_callback(f, NULL, NULL), -EINVAL);
  assert_code(cio_future_set_result(f, NULL), 0);
  assert_trace(""); /* never inline */
  assert_code(cio_call_soon(loop, stop_cb, loop, NULL), 0);
  assert_code(cio_loop_run_forever(loop), 0);
  assert_trace("two:done three:done");
  cio_future_unref(f); /* the scheduled callbacks kept it alive until they ran */

  f = cio_future_new(loop);
  assert_code(cio_future_add_done_callback(f, cb, "x"), 0);
  cio_future_cancel(f, NULL);
  cio_future_unref(f); /* callback still holds it */
  assert_code(cio_call_soon(loop, stop_cb, loop, NULL), 0);
  assert_code(cio_loop_run_forever(loop), 0);
  assert_trace("x:cancelled");

  f = cio_future_new(loop);
  assert_code(cio_future_add_done_callback(f, cb, "never"), 0);
  cio_future_unref(f); /* pending future freed: its callback record goes too */
  cio_loop_free(loop);
  assert_trace("");
}

static char reported[256];

static void capture(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  snprintf(reported, sizeof reported, "%s|%s|%s", ctx->message, cio_err_name(ctx->code),
           ctx->error ? ctx->error : "-");
}

static void unretrieved_error_is_reported_once_freed(void **state) {
  (void)state;
  cio_loop *loop = new_loop();
  cio_loop_set_exception_handler(loop, capture, NULL);
  cio_future *f = cio_future_new(loop);
  assert_code(cio_future_set_error(f, -EIO, "lost"), 0);
  cio_future_unref(f);
  assert_string_equal(reported, "Future exception was never retrieved|EIO|lost");
  reported[0] = 0;
  f = cio_future_new(loop);
  assert_code(cio_future_set_error(f, -EIO, "read"), 0);
  assert_code(cio_future_error(f), -EIO); /* retrieved */
  cio_future_unref(f);
  assert_string_equal(reported, "");
  cio_loop_free(loop);
}

struct pair {
  cio_future *f;
  int rc;
  void *value;
};

static int awaiter(void *arg, void **result) {
  (void)result;
  struct pair *p = arg;
  trace("waiting");
  p->rc = cio_await(p->f, &p->value);
  trace("got:%s", cio_err_name(p->rc));
  return 0;
}

static void complete(void *arg) {
  struct pair *p = arg;
  trace("completing");
  assert_code(cio_future_set_result(p->f, (void *)(intptr_t)11), 0);
}

static int t_await(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  struct pair p = {.f = cio_future_new(loop)};
  cio_task *t = cio_create_task(awaiter, &p, NULL);
  assert_code(cio_call_later(loop, 1, complete, &p, NULL), 0);
  assert_code(cio_await(t, NULL), 0);
  assert_code(p.rc, 0);
  assert_int_equal((intptr_t)p.value, 11);
  assert_trace("waiting completing got:OK");
  cio_task_unref(t);
  cio_future_unref(p.f);

  /* The awaiting task is cancelled: the future it awaits is cancelled too. */
  p = (struct pair){.f = cio_future_new(loop)};
  t = cio_create_task(awaiter, &p, NULL);
  assert_code(cio_sleep(1), 0);
  cio_task_cancel(t, NULL);
  assert_code(cio_await(t, NULL), -ECANCELED); /* awaiter swallowed it... */
  assert_true(cio_task_cancelled(t)); /* ...but did not uncancel: ends cancelled */
  assert_code(p.rc, -ECANCELED);
  assert_true(cio_future_cancelled(p.f));
  trace_clear();
  cio_task_unref(t);
  cio_future_unref(p.f);
  return 0;
}

static void await_from_a_task(void **state) {
  (void)state;
  assert_code(run_virtual(t_await, NULL), 0);
  assert_time(2);
}

static int t_task_future_is_read_only(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_future *mine = cio_task_future(cio_current_task());
  assert_code(cio_future_set_result(mine, NULL), -EPERM);
  assert_code(cio_future_set_error(mine, -EIO, NULL), -EPERM);
  assert_ptr_equal(cio_future_task(mine), cio_current_task());
  assert_code(cio_future_await(mine, NULL), CIO_ESELF);
  return 0;
}

static void a_task_completes_only_from_its_body(void **state) {
  (void)state;
  assert_code(run_virtual(t_task_future_is_read_only, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(states_and_accessors),
      cmocka_unit_test(done_callbacks_are_scheduled_in_order),
      cmocka_unit_test(unretrieved_error_is_reported_once_freed),
      cmocka_unit_test(await_from_a_task),
      cmocka_unit_test(a_task_completes_only_from_its_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
