/* Layer 5: tasks, cancellation, sleeping, task-local values, cio_run. */
#include <fenv.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cio_test.h"
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* ---- helpers ------------------------------------------------------------------ */

static cio_task *spawn(cio_task_fn fn, void *arg) {
  cio_task *t = cio_create_task(fn, arg, NULL);
  assert_non_null(t);
  return t;
}

static int sleeper(void *arg, void **result) {
  double d = arg ? *(double *)arg : 1.0;
  trace("sleep");
  int rc = cio_sleep(d);
  trace("woke:%s@%.3f", cio_err_name(rc), now());
  *result = (void *)(intptr_t)7;
  return rc;
}

/* ---- cancellation --------------------------------------------------------------- */

static int body_runs(void *arg, void **result) {
  (void)arg;
  (void)result;
  trace("BODY");
  return 0;
}

static int t_cancel_before_start(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = spawn(body_runs, NULL);
  assert_int_equal(cio_task_cancel(t, "early"), 1);
  assert_int_equal(cio_task_cancelling(t), 1);
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_string_equal(cio_errmsg(), "early");
  assert_true(cio_task_done(t));
  assert_true(cio_task_cancelled(t));
  assert_int_equal(cio_task_cancel(t, NULL), 0); /* done: nothing happens */
  assert_trace("");                               /* the body never ran */
  cio_task_unref(t);
  return 0;
}

static void cancel_before_start(void **state) {
  (void)state;
  assert_code(run_virtual(t_cancel_before_start, NULL), 0);
}

static int t_cancel_while_sleeping(void *arg, void **result) {
  (void)arg;
  (void)result;
  double d = 10;
  cio_task *t = spawn(sleeper, &d);
  assert_code(cio_sleep(2.5), 0);
  assert_int_equal(cio_task_cancel(t, NULL), 1);
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_true(cio_task_cancelled(t));
  assert_trace("sleep woke:ECANCELED@2.500");
  cio_task_unref(t);
  return 0;
}

static void cancel_while_sleeping(void **state) {
  (void)state;
  assert_code(run_virtual(t_cancel_while_sleeping, NULL), 0);
  assert_time(2.5);
}

/* Catches each cancellation and goes on: each request is delivered once. */
static int stubborn(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 3; i++) {
    int rc = cio_sleep(1);
    trace("%d:%s@%.0f:c%d", i, cio_err_name(rc), now(), cio_task_cancelling(cio_current_task()));
  }
  return 0;
}

static int t_two_cancels(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = spawn(stubborn, NULL);
  assert_code(cio_sleep(0.5), 0);
  cio_task_cancel(t, NULL);
  assert_code(cio_sleep(0.25), 0);
  cio_task_cancel(t, NULL);
  assert_int_equal(cio_task_cancelling(t), 2);
  /* Requests were not withdrawn: the task ends cancelled although its body
   * returned a result (DESIGN.md's rule). */
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_trace("0:ECANCELED@0:c1 1:ECANCELED@1:c2 2:OK@2:c2");
  cio_task_unref(t);
  return 0;
}

static void two_cancels_two_deliveries(void **state) {
  (void)state;
  assert_code(run_virtual(t_two_cancels, NULL), 0);
}

/* Handles the cancellation properly: uncancel, then return a value. */
static int handles_cancel(void *arg, void **result) {
  (void)arg;
  int rc = cio_sleep(5);
  trace("%s", cio_err_name(rc));
  if (rc == -ECANCELED) {
    assert_int_equal(cio_task_uncancel(cio_current_task()), 0);
    /* Suspending again during cleanup is not interrupted: the request was
     * delivered once. */
    assert_code(cio_sleep(1), 0);
    trace("cleanup@%.0f", now());
  }
  *result = (void *)(intptr_t)99;
  return 0;
}

static int t_uncancel(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = spawn(handles_cancel, NULL);
  assert_code(cio_sleep(1), 0);
  cio_task_cancel(t, NULL);
  void *v = NULL;
  assert_code(cio_await(t, &v), 0);
  assert_int_equal((intptr_t)v, 99);
  assert_false(cio_task_cancelled(t));
  assert_int_equal(cio_task_cancelling(t), 0);
  assert_trace("ECANCELED cleanup@2");
  cio_task_unref(t);
  return 0;
}

static void uncancel_lets_a_task_end_with_its_value(void **state) {
  (void)state;
  assert_code(run_virtual(t_uncancel, NULL), 0);
  assert_time(2);
}

/* A request that arrives while the task runs (not suspended) is delivered at
 * its next suspension; uncancel to 0 before that rescinds it (3.13). */
static int self_cancel(void *arg, void **result) {
  (void)result;
  cio_task *me = cio_current_task();
  cio_task_cancel(me, NULL);
  if (arg) {
    assert_int_equal(cio_task_uncancel(me), 0);
    assert_code(cio_sleep(1), 0);
    trace("rescinded");
    return 0;
  }
  int rc = cio_sleep(1);
  trace("%s@%.0f", cio_err_name(rc), now());
  return rc;
}

static int t_self_cancel(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *a = spawn(self_cancel, NULL);
  assert_code(cio_await(a, NULL), -ECANCELED);
  cio_task *b = spawn(self_cancel, (void *)1);
  assert_code(cio_await(b, NULL), 0);
  assert_trace("ECANCELED@0 rescinded");
  cio_task_unref(a);
  cio_task_unref(b);
  return 0;
}

static void cancel_while_running_and_rescind(void **state) {
  (void)state;
  assert_code(run_virtual(t_self_cancel, NULL), 0);
}

/* Cancelling a task that awaits another task cancels that one too (asyncio). */
static int awaits_child(void *arg, void **result) {
  (void)result;
  cio_task *child = arg;
  int rc = cio_await(child, NULL);
  trace("parent:%s", cio_err_name(rc));
  return rc;
}

static int t_cancel_propagates(void *arg, void **result) {
  (void)arg;
  (void)result;
  double d = 10;
  cio_task *child = spawn(sleeper, &d);
  cio_task *parent = spawn(awaits_child, child);
  assert_code(cio_sleep(1), 0);
  cio_task_cancel(parent, "stop");
  assert_code(cio_await(parent, NULL), -ECANCELED);
  assert_true(cio_task_cancelled(child));
  assert_trace("sleep woke:ECANCELED@1.000 parent:ECANCELED");
  cio_task_unref(child);
  cio_task_unref(parent);
  return 0;
}

static void cancel_propagates_down_the_await_chain(void **state) {
  (void)state;
  assert_code(run_virtual(t_cancel_propagates, NULL), 0);
}

/* A request delivered after the awaited future completed but before the task
 * ran: the await still returns -ECANCELED (asyncio's must_cancel). The
 * sleeper's timer and the canceller's timer are both due at t=1; the
 * sleeper's fires first, completing its future, then the cancel comes. */
static void cancel_callback(void *arg) { cio_task_cancel(arg, NULL); }

static int t_cancel_after_wakeup2(void *arg, void **result) {
  (void)arg;
  (void)result;
  double d = 1;
  cio_task *t = spawn(sleeper, &d);
  assert_code(cio_sleep(0), 0); /* the sleeper arms its timer first */
  assert_code(cio_call_at(cio_get_running_loop(), 1.0, cancel_callback, t, NULL), 0);
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_trace("sleep woke:ECANCELED@1.000");
  cio_task_unref(t);
  return 0;
}

static void cancel_after_wakeup_is_still_delivered(void **state) {
  (void)state;
  assert_code(run_virtual(t_cancel_after_wakeup2, NULL), 0);
}

/* An error return stands even with a cancel pending. */
static int fails_when_cancelled(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(5);
  assert_code(rc, -ECANCELED);
  return cio_raise(-EIO, "cleanup failed: disk gone");
}

static int t_error_wins(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = spawn(fails_when_cancelled, NULL);
  assert_code(cio_sleep(1), 0);
  cio_task_cancel(t, NULL);
  assert_code(cio_await(t, NULL), -EIO);
  assert_string_equal(cio_errmsg(), "cleanup failed: disk gone");
  assert_false(cio_task_cancelled(t));
  assert_code(cio_future_error(cio_task_future(t)), -EIO);
  assert_string_equal(cio_future_error_message(cio_task_future(t)), "cleanup failed: disk gone");
  cio_task_unref(t);
  return 0;
}

static void error_return_stands_while_cancelling(void **state) {
  (void)state;
  assert_code(run_virtual(t_error_wins, NULL), 0);
}

/* ---- awaiting ----------------------------------------------------------------- */

static int quick(void *arg, void **result) {
  (void)arg;
  *result = (void *)(intptr_t)5;
  trace("quick");
  return 0;
}

static int ticker(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 3; i++) {
    trace("tick%d", i);
    if (cio_yield() < 0) break;
  }
  return 0;
}

static int t_await_done_does_not_yield(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *q = spawn(quick, NULL);
  void *v;
  assert_code(cio_await(q, &v), 0); /* yields: q runs */
  assert_int_equal((intptr_t)v, 5);
  cio_task *tk = spawn(ticker, NULL);
  /* q is done: awaiting it again returns at once, the ticker does not run. */
  for (int i = 0; i < 3; i++) assert_code(cio_await(q, &v), 0);
  trace("main");
  assert_code(cio_await(tk, NULL), 0);
  assert_trace("quick main tick0 tick1 tick2");
  cio_task_unref(q);
  cio_task_unref(tk);
  return 0;
}

static void awaiting_a_done_task_does_not_yield(void **state) {
  (void)state;
  assert_code(run_virtual(t_await_done_does_not_yield, NULL), 0);
}

static int t_await_self(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_await(cio_current_task(), NULL), CIO_ESELF);
  assert_code(cio_await((cio_task *)NULL, NULL), -EINVAL);
  return 0;
}

static void misuse_inside_a_task(void **state) {
  (void)state;
  assert_code(run_virtual(t_await_self, NULL), 0);
}

static void misuse_outside_a_task(void **state) {
  (void)state;
  assert_code(cio_sleep(1), CIO_ENOTASK);
  assert_code(cio_yield(), CIO_ENOTASK);
  assert_null(cio_create_task(quick, NULL, NULL));
  assert_code(cio_errcode(), CIO_ENOTRUNNING);
  assert_null(cio_current_task());
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  cio_future *f = cio_future_new(loop);
  assert_code(cio_future_await(f, NULL), CIO_ENOTASK);
  assert_null(cio_loop_create_task(loop, NULL, NULL, NULL));
  assert_code(cio_errcode(), -EINVAL);
  cio_task_options big = {.stack_size = (size_t)4 << 30};
  assert_null(cio_loop_create_task(loop, quick, NULL, &big));
  assert_code(cio_errcode(), -EINVAL);
  cio_task *t = cio_loop_create_task(loop, quick, NULL, NULL);
  assert_non_null(t);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_code(cio_task_unref(t), 0);
  /* The task's memory waits in the loop's cache, so a second release is
   * caught while the loop lives (not after the memory is reused). */
  assert_code(cio_task_unref(t), CIO_EDOUBLEFREE);
  assert_code(cio_future_unref(f), 0);
  assert_code(cio_loop_close(loop), 0);
  assert_null(cio_loop_create_task(loop, quick, NULL, NULL));
  assert_code(cio_errcode(), CIO_ECLOSED);
  assert_code(cio_loop_free(loop), 0);
  assert_code(cio_run(NULL, NULL, NULL), -EINVAL);
}

/* Awaiting a task of another loop. */
static cio_task *foreign;

static int t_wrong_loop(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_await(foreign, NULL), CIO_EWRONGLOOP);
  return 0;
}

static void awaiting_a_task_of_another_loop(void **state) {
  (void)state;
  cio_loop *other;
  assert_code(cio_loop_new(&other, NULL), 0);
  foreign = cio_loop_create_task(other, quick, NULL, NULL);
  assert_code(run_virtual(t_wrong_loop, NULL), 0);
  assert_code(cio_loop_run_until_complete(other, cio_task_future(foreign)), 0);
  cio_task_unref(foreign);
  cio_loop_free(other);
  trace_clear();
}

/* ---- done callbacks, names, introspection --------------------------------------- */

static void on_done(cio_future *f, void *arg) {
  trace("cb%d:%s", (int)(intptr_t)arg, cio_future_done(f) ? "done" : "pending");
}

static int t_done_callbacks(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = spawn(quick, NULL);
  for (intptr_t i = 1; i <= 3; i++) assert_code(cio_task_add_done_callback(t, on_done, (void *)i), 0);
  assert_code(cio_task_add_done_callback(t, on_done, (void *)4), 0);
  assert_int_equal(cio_task_remove_done_callback(t, on_done, (void *)4), 1);
  assert_int_equal(cio_task_remove_done_callback(t, on_done, (void *)4), 0);
  assert_code(cio_await(t, NULL), 0);
  /* The callbacks were scheduled when the task finished, in order; we were
   * woken by the same completion, registered after them. */
  trace("main");
  assert_code(cio_yield(), 0);
  assert_trace("quick cb1:done cb2:done cb3:done main");
  /* Added to a done future: scheduled, never run inline. */
  assert_code(cio_task_add_done_callback(t, on_done, (void *)5), 0);
  trace("after-add");
  assert_code(cio_yield(), 0);
  assert_trace("after-add cb5:done");
  cio_task_unref(t);
  return 0;
}

static void done_callbacks_run_in_order_never_inline(void **state) {
  (void)state;
  assert_code(run_virtual(t_done_callbacks, NULL), 0);
}

static int named(void *arg, void **result) {
  (void)arg;
  (void)result;
  trace("%s", cio_task_get_name(cio_current_task()));
  return cio_sleep(1);
}

static int t_names(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task_options o = {.name = "worker-1"};
  cio_task *a = cio_create_task(named, NULL, &o);
  cio_task *b = spawn(named, NULL);
  assert_string_equal(cio_task_get_name(a), "worker-1");
  assert_memory_equal(cio_task_get_name(b), "Task-", 5);
  assert_code(cio_task_set_name(b, "renamed"), 0);
  cio_task *all[8];
  assert_code(cio_yield(), 0);
  int n = cio_all_tasks(cio_get_running_loop(), all, 8);
  assert_int_equal(n, 3); /* main, a, b */
  assert_ptr_equal(all[0], cio_current_task());
  assert_ptr_equal(all[1], a);
  assert_ptr_equal(all[2], b);
  assert_code(cio_await(a, NULL), 0);
  assert_code(cio_await(b, NULL), 0);
  assert_int_equal(cio_all_tasks(cio_get_running_loop(), NULL, 0), 1); /* done ones leave */
  assert_trace("worker-1 renamed");
  cio_task_unref(a);
  cio_task_unref(b);
  return 0;
}

static void names_and_all_tasks(void **state) {
  (void)state;
  assert_code(run_virtual(t_names, NULL), 0);
}

/* Default names "Task-N": increasing within a thread, never the same N in
 * two threads (each takes its numbers from a shared counter in blocks). */
enum { NAMED = 2000 };
struct ids {
  unsigned long n[NAMED];
};

static int returns_at_once(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static int t_default_ids(void *arg, void **result) {
  (void)result;
  struct ids *ids = arg;
  for (int i = 0; i < NAMED; i++) {
    cio_task *t = spawn(returns_at_once, NULL);
    const char *name = cio_task_get_name(t);
    assert_memory_equal(name, "Task-", 5);
    ids->n[i] = strtoul(name + 5, NULL, 10);
    if (i) assert_true(ids->n[i] > ids->n[i - 1]);
    assert_code(cio_await(t, NULL), 0);
    cio_task_unref(t);
  }
  return 0;
}

static void *ids_thread(void *arg) {
  return (void *)(intptr_t)cio_run(t_default_ids, arg, NULL);
}

static int cmp_ulong(const void *a, const void *b) {
  unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
  return x < y ? -1 : x > y;
}

static void default_names_unique_across_threads(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  struct ids *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, ids_thread, b), 0);
  assert_code(cio_run(t_default_ids, a, NULL), 0);
  void *rc;
  assert_int_equal(pthread_join(th, &rc), 0);
  assert_int_equal((intptr_t)rc, 0);
  unsigned long *all = malloc(2 * NAMED * sizeof *all);
  memcpy(all, a->n, sizeof a->n);
  memcpy(all + NAMED, b->n, sizeof b->n);
  qsort(all, 2 * NAMED, sizeof *all, cmp_ulong);
  for (int i = 1; i < 2 * NAMED; i++) assert_true(all[i - 1] < all[i]);
  free(all);
  free(a);
  free(b);
}

/* ---- eager start ---------------------------------------------------------------- */

static int eager_body(void *arg, void **result) {
  (void)result;
  trace("eager-start:%s", cio_current_task() == arg ? "wrong" : "self");
  int rc = cio_sleep(1);
  trace("eager-end");
  return rc;
}

static int t_eager(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task_options o = {.eager_start = true};
  trace("before");
  cio_task *t = cio_create_task(eager_body, cio_current_task(), &o);
  trace("after");
  assert_ptr_not_equal(cio_current_task(), t);
  cio_task *q = cio_create_task(quick, NULL, &o); /* finishes eagerly */
  assert_true(cio_task_done(q));
  assert_code(cio_await(t, NULL), 0);
  assert_trace("before eager-start:self after quick eager-end");
  cio_task_unref(t);
  cio_task_unref(q);
  return 0;
}

static void eager_start_runs_until_the_first_suspension(void **state) {
  (void)state;
  assert_code(run_virtual(t_eager, NULL), 0);
}

/* ---- task-local values ---------------------------------------------------------- */

static cio_local_key request_id = {"request_id"};

static int local_child(void *arg, void **result) {
  (void)arg;
  (void)result;
  trace("child-sees:%d", (int)(intptr_t)cio_local_get(&request_id, (void *)-1));
  assert_code(cio_local_set(&request_id, (void *)2), 0);
  assert_code(cio_sleep(1), 0);
  trace("child-has:%d", (int)(intptr_t)cio_local_get(&request_id, NULL));
  return 0;
}

static int t_locals(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_int_equal((intptr_t)cio_local_get(&request_id, (void *)-1), -1);
  assert_code(cio_local_set(&request_id, (void *)1), 0);
  cio_task *c = spawn(local_child, NULL);
  assert_code(cio_local_set(&request_id, (void *)3), 0); /* after the copy */
  assert_code(cio_await(c, NULL), 0);
  trace("parent-has:%d", (int)(intptr_t)cio_local_get(&request_id, NULL));
  assert_trace("child-sees:1 child-has:2 parent-has:3");
  assert_code(cio_local_set(NULL, NULL), -EINVAL);
  cio_task_unref(c);
  return 0;
}

static void task_locals_are_copied_at_creation(void **state) {
  (void)state;
  assert_code(run_virtual(t_locals, NULL), 0);
  assert_code(cio_local_set(&request_id, NULL), CIO_ENOTRUNNING);
}

/* ---- scale ---------------------------------------------------------------------- */

static int counter;

static int sleep_then_count(void *arg, void **result) {
  (void)result;
  int rc = cio_sleep((double)(intptr_t)arg / 1000.0);
  if (rc == 0) counter++;
  return rc;
}

static int t_many(void *arg, void **result) {
  (void)result;
  int n = (int)(intptr_t)arg;
  cio_task **ts = malloc((size_t)n * sizeof *ts);
  counter = 0;
  for (int i = 0; i < n; i++) ts[i] = spawn(sleep_then_count, (void *)(intptr_t)(1 + i % 100));
  assert_code(cio_yield(), 0);
  assert_int_equal(cio_all_tasks(cio_get_running_loop(), NULL, 0), n + 1); /* all alive */
  for (int i = 0; i < n; i++) {
    assert_code(cio_await(ts[i], NULL), 0);
    cio_task_unref(ts[i]);
  }
  assert_int_equal(counter, n);
  free(ts);
  return 0;
}

static void ten_thousand_tasks_alive_at_once(void **state) {
  (void)state;
  assert_code(run_virtual(t_many, (void *)10000), 0);
  assert_time(0.1);
}

/* ---- errors and reports ------------------------------------------------------------ */

static char reported[1024];

static void capture(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  size_t len = strlen(reported);
  snprintf(reported + len, sizeof reported - len, "[%s|%s|%s]", ctx->message,
           ctx->code ? cio_err_name(ctx->code) : "-", ctx->error ? ctx->error : "-");
}

static int failing(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EINVAL, "ValueError(%d)", 3);
}

static int forever(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
    int rc = cio_sleep(3600);
    if (rc < 0) return rc;
  }
}

static void unretrieved_error_and_pending_task_reports(void **state) {
  (void)state;
  cio_loop *loop;
  reported[0] = 0;
  assert_code(cio_loop_new(&loop, &(cio_loop_options){.virtual_time = true}), 0);
  cio_loop_set_exception_handler(loop, capture, NULL);
  cio_task *bad = cio_loop_create_task(loop, failing, NULL, &(cio_task_options){.name = "bad"});
  cio_task *stuck = cio_loop_create_task(loop, forever, NULL, &(cio_task_options){.name = "stuck"});
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(bad)), 0);
  assert_true(cio_task_done(bad));
  assert_code(cio_task_unref(bad), 0); /* nobody read the error */
  assert_string_equal(reported,
                      "[Task exception was never retrieved (task 'bad')|EINVAL|ValueError(3)]");
  reported[0] = 0;
  assert_code(cio_task_detach(stuck), 0);
  assert_code(cio_loop_close(loop), 0);
  assert_string_equal(reported, "[Task was destroyed but it is pending (task 'stuck')|-|-]");
  assert_code(cio_loop_free(loop), 0);
}

static int spawns_detached_failure(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop_set_exception_handler(cio_get_running_loop(), capture, NULL);
  cio_task *t = spawn(failing, NULL);
  assert_code(cio_task_detach(t), 0);
  return cio_sleep(1);
}

static void detached_task_error_is_reported(void **state) {
  (void)state;
  reported[0] = 0;
  assert_code(run_virtual(spawns_detached_failure, NULL), 0);
  assert_non_null(strstr(reported, "Task exception was never retrieved"));
  assert_non_null(strstr(reported, "ValueError(3)"));
}

static int leaves_tasks_behind(void *arg, void **result) {
  (void)result;
  cio_task *t = spawn(stubborn, NULL); /* catches cancellations but ends */
  cio_task_detach(t);
  cio_task *u = spawn(sleeper, arg);
  cio_task_detach(u);
  return cio_yield();
}

static void run_cancels_leftover_tasks(void **state) {
  (void)state;
  double d = 100;
  assert_code(run_virtual(leaves_tasks_behind, &d), 0);
  assert_trace("sleep 0:ECANCELED@0:c1 woke:ECANCELED@0.000 1:OK@1:c1 2:OK@2:c1");
}

static int main_fails(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_run(quick, NULL, NULL), CIO_ERUNNING); /* no nesting */
  return cio_raise(-ENOENT, "config file %s not found", "x.conf");
}

static void run_returns_the_main_error_with_message(void **state) {
  (void)state;
  assert_code(run_virtual(main_fails, NULL), -ENOENT);
  assert_string_equal(cio_errmsg(), "config file x.conf not found");
  void *v = NULL;
  assert_code(cio_run(quick, NULL, &v), 0);
  assert_int_equal((intptr_t)v, 5);
  trace_clear();
}

static int waits_forever(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_future *f = cio_future_new(cio_get_running_loop());
  int rc = cio_await(f, NULL);
  trace("%s", cio_err_name(rc));
  cio_future_unref(f);
  return rc;
}

static void deadlock_is_reported_not_hung(void **state) {
  (void)state;
  reported[0] = 0;
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0); /* real clock: would hang forever */
  cio_loop_set_exception_handler(loop, capture, NULL);
  cio_task *t = cio_loop_create_task(loop, waits_forever, NULL, &(cio_task_options){.name = "waiter"});
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), CIO_EDEADLOCK);
  assert_non_null(strstr(reported, "deadlock: 1 task(s)"));
  assert_non_null(strstr(reported, "waiter"));
  cio_task_cancel(t, NULL);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_trace("ECANCELED");
  cio_task_unref(t);
  cio_loop_free(loop);
  /* cio_run returns the code too, after cancelling the stuck task. */
  assert_code(cio_run(waits_forever, NULL, NULL), CIO_EDEADLOCK);
  trace_clear();
}

/* ---- sleeping --------------------------------------------------------------------- */

static int t_sleep_values(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_sleep(-5), 0); /* acts as 0 */
  assert_float_equal(now(), 0, 0);
  assert_code(cio_sleep(0.0 / 0.0), -EINVAL);
  assert_code(cio_sleep(3600), 0); /* an hour, instantly */
  assert_float_equal(now(), 3600, 0);
  assert_code(cio_sleep(0.001), 0);
  assert_int_equal(cio_loop_time_ns(cio_get_running_loop()), 3600001000000LL);
  return 0;
}

static void sleep_edges_and_a_virtual_hour(void **state) {
  (void)state;
  assert_code(run_virtual(t_sleep_values, NULL), 0);
  assert_time(3600.001);
}

static void real_clock_sleep_takes_real_time(void **state) {
  (void)state;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  double d = 0.05;
  trace_clear();
  assert_code(cio_run(sleeper, &d, NULL), 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  assert_true(took >= 0.05);
  assert_true(took < 0.5);
  trace_clear();
}

/* ---- the task dump ------------------------------------------------------------------ */

/* Exported (the tests link with -rdynamic), not inlined and not a tail call,
 * so that it is a frame of its own the dump can name. */
int dump_level2(double d);
__attribute__((noinline)) int dump_level2(double d) {
  int rc = cio_sleep(d);
  trace("level2:%s", cio_err_name(rc));
  return rc;
}

static int dump_sleeper(void *arg, void **result) {
  (void)arg;
  (void)result;
  return dump_level2(5);
}

static int t_dump(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *s = cio_create_task(dump_sleeper, NULL, &(cio_task_options){.name = "sleeper"});
  cio_task *a = cio_create_task(awaits_child, s, &(cio_task_options){.name = "awaiter"});
  assert_code(cio_sleep(1), 0);
  cio_task_cancel(a, NULL);
  cio_task_uncancel(a); /* leaves the count at 0 but shows the path */
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_int_equal(cio_loop_print_tasks(cio_get_running_loop(), out), 3);
  fclose(out);
  assert_non_null(strstr(buf, "cio: 3 pending task(s)"));
  assert_non_null(strstr(buf, "running")); /* this task, printing */
  assert_non_null(strstr(buf, "task 'sleeper': suspended"));
  assert_non_null(strstr(buf, "task 'awaiter': suspended"));
#if !defined(CIO_SWITCH_UCONTEXT) && !defined(__SANITIZE_ADDRESS__)
  assert_non_null(strstr(buf, "dump_level2")); /* a real frame of the sleeper's stack */
  assert_non_null(strstr(buf, "cio_sleep"));
#endif
  free(buf);
  assert_code(cio_loop_print_tasks(NULL, stdout), -EINVAL);
  cio_task_cancel(s, NULL);
  assert_code(cio_await(a, NULL), -ECANCELED);
  cio_task_unref(s);
  cio_task_unref(a);
  trace_clear();
  return 0;
}

static void dump_of_pending_tasks_with_stacks(void **state) {
  (void)state;
  assert_code(run_virtual(t_dump, NULL), 0);
}

/* ---- stack overflow --------------------------------------------------------------- */

static int recurse(int depth) {
  volatile char pad[1024];
  pad[0] = (char)depth;
  return depth > 1000000 ? pad[0] : recurse(depth + 1) + pad[0];
}

static int overflows(void *arg, void **result) {
  (void)arg;
  (void)result;
  return recurse(0);
}

static int spawn_overflow(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task_options o = {.name = "deep-recursion", .stack_size = 64 * 1024};
  cio_task *t = cio_create_task(overflows, NULL, &o);
  return cio_await(t, NULL);
}

static void overflow_child(void *arg) {
  (void)arg;
  int rc = cio_run(spawn_overflow, NULL, NULL);
  _exit(rc == 0 ? 0 : 3);
}

static void stack_overflow_aborts_naming_the_task(void **state) {
  (void)state;
  skip_if_emulated("SIGSEGV from a guard page");
#if defined(__SANITIZE_ADDRESS__)
  skip(); /* ASan reports the overflow itself */
#endif
  char buf[512];
  int status = run_in_child(overflow_child, NULL, buf, sizeof buf);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
  assert_non_null(strstr(buf, "stack overflow in task 'deep-recursion'"));
  assert_non_null(strstr(buf, "65536"));
}

/* ---- floating-point control state ------------------------------------------------- */

/* Each task keeps its own floating-point rounding mode across suspensions, as
 * the ABI keeps it across calls (x86-64: MXCSR's control bits and the x87
 * control word, which the switch reloads only when they differ). */
#if defined(__x86_64__)
static int fp_mode_task(void *arg, void **result) {
  (void)result;
  int mode = (int)(intptr_t)arg;
  assert_int_equal(fegetround(), FE_TONEAREST); /* a new task starts with the default */
  assert_int_equal(fesetround(mode), 0);
  unsigned sse = _mm_getcsr() & 0x6000; /* MXCSR's rounding control */
  for (int i = 0; i < 3; i++) {
    volatile double x = 1.0, y = 3.0;
    volatile double q = x / y; /* sets the precision flag: flags differ between tasks */
    (void)q;
    assert_code(cio_sleep(0), 0);
    assert_int_equal(fegetround(), mode); /* the x87 control word */
    assert_int_equal(_mm_getcsr() & 0x6000, sse);
  }
  return 0;
}

static int t_fp_modes(void *arg, void **result) {
  (void)arg;
  (void)result;
  static const int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST};
  cio_task *ts[4];
  for (int i = 0; i < 4; i++) ts[i] = spawn(fp_mode_task, (void *)(intptr_t)modes[i]);
  for (int i = 0; i < 4; i++) {
    assert_code(cio_await(ts[i], NULL), 0);
    cio_task_unref(ts[i]);
  }
  assert_int_equal(fegetround(), FE_TONEAREST); /* and the caller's is its own */
  return 0;
}

static void each_task_keeps_its_rounding_mode(void **state) {
  (void)state;
  assert_code(run_virtual(t_fp_modes, NULL), 0);
}
#else
static void each_task_keeps_its_rounding_mode(void **state) {
  (void)state;
  skip(); /* the AArch64 switch does not keep FPCR (see src/arch/switch_aarch64.S) */
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancel_before_start),
      cmocka_unit_test(cancel_while_sleeping),
      cmocka_unit_test(two_cancels_two_deliveries),
      cmocka_unit_test(uncancel_lets_a_task_end_with_its_value),
      cmocka_unit_test(cancel_while_running_and_rescind),
      cmocka_unit_test(cancel_propagates_down_the_await_chain),
      cmocka_unit_test(cancel_after_wakeup_is_still_delivered),
      cmocka_unit_test(error_return_stands_while_cancelling),
      cmocka_unit_test(awaiting_a_done_task_does_not_yield),
      cmocka_unit_test(misuse_inside_a_task),
      cmocka_unit_test(misuse_outside_a_task),
      cmocka_unit_test(awaiting_a_task_of_another_loop),
      cmocka_unit_test(done_callbacks_run_in_order_never_inline),
      cmocka_unit_test(names_and_all_tasks),
      cmocka_unit_test(default_names_unique_across_threads),
      cmocka_unit_test(eager_start_runs_until_the_first_suspension),
      cmocka_unit_test(task_locals_are_copied_at_creation),
      cmocka_unit_test(ten_thousand_tasks_alive_at_once),
      cmocka_unit_test(unretrieved_error_and_pending_task_reports),
      cmocka_unit_test(detached_task_error_is_reported),
      cmocka_unit_test(run_cancels_leftover_tasks),
      cmocka_unit_test(run_returns_the_main_error_with_message),
      cmocka_unit_test(deadlock_is_reported_not_hung),
      cmocka_unit_test(sleep_edges_and_a_virtual_hour),
      cmocka_unit_test(real_clock_sleep_takes_real_time),
      cmocka_unit_test(dump_of_pending_tasks_with_stacks),
      cmocka_unit_test(stack_overflow_aborts_naming_the_task),
      cmocka_unit_test(each_task_keeps_its_rounding_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
