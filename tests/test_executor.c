/* Layer 8, the thread pool (src/executor.c): to_thread and run_in_executor
 * while other tasks run, 1,000 jobs at once, cancellation (the job runs on,
 * its late outcome dropped or reported), user executors and their shutdown,
 * the default executor's end with cio_run, several loops in several threads.
 * Run under ThreadSanitizer too (-DCIO_SANITIZE=thread). */
#include "io_test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- basics -------------------------------------------------------------------- */

static int double_it(void *arg, void **result) {
  *result = (void *)((intptr_t)arg * 2);
  return 0;
}

static int failing(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EIO, "disk on fire (job %d)", 7);
}

static int basics_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  void *r = NULL;
  CHECK_RC(cio_to_thread(double_it, (void *)21, &r), 0);
  CHECK_RC((intptr_t)r, 42);
  CHECK_RC(cio_to_thread(failing, NULL, &r), -EIO);
  CHECK(strcmp(cio_errmsg(), "disk on fire (job 7)") == 0);
  /* The next job's error does not inherit the old message. */
  CHECK_RC(cio_to_thread(failing, NULL, NULL), -EIO);
  CHECK_RC(cio_run_in_executor(NULL, double_it, (void *)5, &r), 0);
  CHECK_RC((intptr_t)r, 10);
  cio_executor *dflt = cio_get_default_executor();
  CHECK(dflt);
  CHECK(cio_executor_max_threads(dflt) >= 5 && cio_executor_max_threads(dflt) <= 32);
  CHECK_RC(cio_executor_free(dflt), -EINVAL); /* it belongs to the loop */
  CHECK_RC(cio_to_thread(NULL, NULL, NULL), -EINVAL);
  CHECK_RC(cio_run_in_executor(NULL, NULL, NULL, NULL), -EINVAL);
  /* The virtual clock stands still while a job is in flight. */
  CHECK(now() == 0.0);
  return 0;
}

static void test_basics(void **state) {
  (void)state;
  assert_code(run_virtual(basics_body, NULL), 0);
  assert_code(cio_to_thread(double_it, NULL, NULL), CIO_ENOTASK);
  assert_code(cio_run_in_executor(NULL, double_it, NULL, NULL), CIO_ENOTASK);
  assert_null(cio_get_default_executor());
  assert_code(cio_errcode(), CIO_ENOTRUNNING);
  assert_false(cio_job_cancelled());
}

/* ---- other tasks keep running (real time) ---------------------------------------- */

static int blocking_100ms(void *arg, void **result) {
  (void)arg;
  (void)result;
  sleep_ms(100);
  return 0;
}

static int ticker(void *arg, void **result) {
  (void)result;
  int *ticks = arg;
  for (int i = 0; i < 8; i++) {
    int rc = cio_sleep(0.01);
    if (rc < 0) return rc;
    ++*ticks;
  }
  return 0;
}

static int runs_while_blocked_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int ticks = 0;
  cio_task *t = cio_create_task(ticker, &ticks, NULL);
  CHECK(t);
  double t0 = wall();
  CHECK_RC(cio_to_thread(blocking_100ms, NULL, NULL), 0);
  double took = wall() - t0;
  CHECK(took >= 0.095);
  /* The ticker ran meanwhile: 8 ticks of 10 ms fit in 100 ms (a loaded
   * machine delays the ticks; any tick at all proves the loop ran). */
  if (ticks < 2) return cio_raise(CIO_ERUNTIME, "only %d ticks while the job ran", ticks);
  CHECK_RC(cio_await(t, NULL), 0);
  cio_task_unref(t);
  return 0;
}

static void test_other_tasks_run_meanwhile(void **state) {
  (void)state;
  assert_code(run_real(runs_while_blocked_body, NULL), 0);
}

/* ---- 1,000 tasks at once ------------------------------------------------------------ */

static atomic_int running_now, running_max;

static int tracked(void *arg, void **result) {
  int n = atomic_fetch_add(&running_now, 1) + 1;
  int m = atomic_load(&running_max);
  while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n)) {
  }
  struct timespec ts = {0, 200000}; /* 0.2 ms of "blocking" */
  nanosleep(&ts, NULL);
  atomic_fetch_sub(&running_now, 1);
  *result = (void *)((intptr_t)arg + 1);
  return 0;
}

static int to_thread_one(void *arg, void **result) {
  void *r;
  int rc = cio_to_thread(tracked, arg, &r);
  if (rc < 0) return rc;
  CHECK_RC((intptr_t)r, (intptr_t)arg + 1);
  *result = r;
  return 0;
}

static int thousand_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  enum { N = 1000 };
  cio_task **ts = calloc(N, sizeof *ts);
  CHECK(ts);
  cio_task_options o = {.stack_size = 32 * 1024};
  for (int i = 0; i < N; i++) CHECK((ts[i] = cio_create_task(to_thread_one, (void *)(intptr_t)i, &o)));
  int rc = 0;
  for (int i = 0; i < N; i++) {
    void *r;
    int x = cio_await(ts[i], &r);
    if (x < 0 && rc == 0) rc = x;
    else if (x == 0 && (intptr_t)r != i + 1 && rc == 0) rc = cio_raise(CIO_ERUNTIME, "task %d", i);
    cio_task_unref(ts[i]);
  }
  free(ts);
  CHECK_RC(atomic_load(&cur_loop()->jobs_in_flight), 0);
  int max = atomic_load(&running_max);
  int limit = cio_executor_max_threads(cio_get_default_executor());
  print_message("  1000 to_thread jobs: at most %d at once (pool of %d)\n", max, limit);
  CHECK(max >= 1 && max <= limit);
  return rc;
}

static void test_to_thread_from_1000_tasks(void **state) {
  (void)state;
  assert_code(run_virtual(thousand_body, NULL), 0);
}

/* ---- cancellation: returns at once, the job runs on, its outcome is not lost ------------ */

struct slow_job {
  int ms;
  atomic_bool saw_cancel;
  atomic_bool finished;
  void *result;
  int rc;
};

static int slow(void *arg, void **result) {
  struct slow_job *j = arg;
  for (int waited = 0; waited < j->ms; waited += 5) {
    sleep_ms(5);
    if (cio_job_cancelled()) atomic_store(&j->saw_cancel, true);
  }
  atomic_store(&j->finished, true);
  *result = j->result;
  return j->rc < 0 ? cio_raise(j->rc, "late failure") : 0;
}

static int slow_waiter(void *arg, void **result) {
  struct slow_job *j = arg;
  return cio_to_thread(slow, j, result);
}

static int dropped;
static void drop_it(void *result, void *arg) {
  (void)arg;
  dropped++;
  free(result);
}

static int slow_waiter_drop(void *arg, void **result) {
  return cio_run_in_executor_ex(NULL, slow, arg, drop_it, result);
}

struct reports {
  int count;
  int code;
  char last[256];
};

static void record_report(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  struct reports *r = arg;
  r->count++;
  r->code = ctx->code;
  snprintf(r->last, sizeof r->last, "%s", ctx->message);
}

static int cancel_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cur_loop();
  struct reports rep = {0};
  CHECK_RC(cio_loop_set_exception_handler(loop, record_report, &rep), 0);

  /* 1. Cancelled at 20 ms of a 150 ms job: -ECANCELED at once. */
  static struct slow_job a = {.ms = 150};
  cio_task *t = cio_create_task(slow_waiter, &a, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.02), 0);
  double t0 = wall();
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  CHECK(wall() - t0 < 0.05);
  cio_task_unref(t);
  CHECK(!atomic_load(&a.finished));
  CHECK_RC(atomic_load(&loop->jobs_in_flight), 1); /* it runs on */
  while (atomic_load(&loop->jobs_in_flight) > 0) CHECK_RC(cio_sleep(0.01), 0);
  CHECK(atomic_load(&a.finished));
  CHECK(atomic_load(&a.saw_cancel)); /* cio_job_cancelled() told it */
  CHECK_RC(rep.count, 0);            /* a NULL result: nothing lost */

  /* 2. A late result with a drop function: freed through it. */
  static struct slow_job b = {.ms = 40};
  b.result = malloc(16);
  t = cio_create_task(slow_waiter_drop, &b, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.01), 0);
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  while (atomic_load(&loop->jobs_in_flight) > 0) CHECK_RC(cio_sleep(0.01), 0);
  CHECK_RC(dropped, 1);
  CHECK_RC(rep.count, 0);

  /* 3. A late result and no drop function: reported, not lost silently. */
  static int token;
  static struct slow_job c = {.ms = 40, .result = &token};
  t = cio_create_task(slow_waiter, &c, NULL);
  CHECK(t);
  CHECK_RC(cio_task_set_name(t, "fetcher"), 0);
  CHECK_RC(cio_sleep(0.01), 0);
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  while (atomic_load(&loop->jobs_in_flight) > 0) CHECK_RC(cio_sleep(0.01), 0);
  CHECK_RC(rep.count, 1);
  CHECK(strstr(rep.last, "dropped") && strstr(rep.last, "fetcher"));

  /* 4. A late error: reported with its code. */
  static struct slow_job d = {.ms = 40, .rc = -EIO};
  t = cio_create_task(slow_waiter, &d, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.01), 0);
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  while (atomic_load(&loop->jobs_in_flight) > 0) CHECK_RC(cio_sleep(0.01), 0);
  CHECK_RC(rep.count, 2);
  CHECK_RC(rep.code, -EIO);

  /* 5. A task cancelled before it started never submits its job. */
  static struct slow_job e = {.ms = 5};
  t = cio_create_task(slow_waiter, &e, NULL);
  CHECK(t);
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  return 0;
}

static void test_cancel_while_job_runs(void **state) {
  (void)state;
  assert_code(run_real(cancel_body, NULL), 0);
}

/* ---- user executors ----------------------------------------------------------------- */

struct ex_arg {
  cio_executor *ex;
  int ms;
};

static int job_ms(void *arg, void **result) {
  int ms = (int)(intptr_t)arg;
  int n = atomic_fetch_add(&running_now, 1) + 1;
  int m = atomic_load(&running_max);
  while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n)) {
  }
  sleep_ms(ms);
  atomic_fetch_sub(&running_now, 1);
  *result = arg;
  return 0;
}

static int on_executor(void *arg, void **result) {
  struct ex_arg *a = arg;
  return cio_run_in_executor(a->ex, job_ms, (void *)(intptr_t)a->ms, result);
}

static int self_shutdown(void *arg, void **result) {
  (void)result;
  return cio_executor_shutdown(arg, true);
}

static int user_executor_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_executor *ex;
  CHECK_RC(cio_executor_new(&ex, 2), 0);
  CHECK_RC(cio_executor_max_threads(ex), 2);
  atomic_store(&running_max, 0);
  struct ex_arg a = {ex, 30};
  cio_task *ts[6];
  for (int i = 0; i < 6; i++) CHECK((ts[i] = cio_create_task(on_executor, &a, NULL)));
  for (int i = 0; i < 6; i++) {
    CHECK_RC(cio_await(ts[i], NULL), 0);
    cio_task_unref(ts[i]);
  }
  CHECK_RC(atomic_load(&running_max), 2); /* N threads: never more at once */
  /* A job cannot wait for its own executor. */
  CHECK_RC(cio_run_in_executor(ex, self_shutdown, ex, NULL), -EDEADLK);

  /* Shutdown while jobs run: wait blocks until they are done. */
  a.ms = 60;
  for (int i = 0; i < 3; i++) CHECK((ts[i] = cio_create_task(on_executor, &a, NULL)));
  CHECK_RC(cio_sleep(0.01), 0); /* two running, one queued */
  double t0 = wall();
  CHECK_RC(cio_executor_shutdown(ex, true), 0);
  double waited = wall() - t0;
  /* The queued job still ran (ThreadPoolExecutor semantics): ~50 + 60 ms. */
  CHECK(waited >= 0.08);
  CHECK_RC(atomic_load(&running_now), 0);
  for (int i = 0; i < 3; i++) {
    void *r;
    CHECK_RC(cio_await(ts[i], &r), 0); /* outcomes arrive through the inbox */
    CHECK_RC((intptr_t)r, 60);
    cio_task_unref(ts[i]);
  }
  CHECK_RC(cio_run_in_executor(ex, job_ms, NULL, NULL), CIO_ESHUTDOWN);
  CHECK_RC(cio_executor_shutdown(ex, true), 0); /* idempotent */
  CHECK_RC(cio_executor_free(ex), 0);

  /* Free without an explicit shutdown waits too. */
  CHECK_RC(cio_executor_new(&ex, 0), 0);
  CHECK(cio_executor_max_threads(ex) >= 5);
  a.ex = ex;
  a.ms = 20;
  cio_task *t = cio_create_task(on_executor, &a, NULL);
  CHECK_RC(cio_sleep(0.005), 0);
  CHECK_RC(cio_executor_free(ex), 0);
  CHECK_RC(cio_await(t, NULL), 0);
  cio_task_unref(t);
  return 0;
}

static void test_user_executor_and_shutdown(void **state) {
  (void)state;
  assert_code(run_real(user_executor_body, NULL), 0);
  cio_executor *ex = (cio_executor *)1;
  assert_code(cio_executor_new(&ex, -1), -EINVAL);
  assert_null(ex);
  assert_code(cio_executor_new(NULL, 1), -EINVAL);
  assert_code(cio_executor_new(&ex, 5000), -EINVAL);
  assert_code(cio_executor_shutdown(NULL, true), -EINVAL);
  assert_code(cio_executor_free(NULL), 0);
  assert_code(cio_executor_max_threads(NULL), -EINVAL);
}

/* ---- cio_run waits for the default executor's jobs at its end ------------------------------ */

static struct slow_job at_end = {.ms = 80};

static int fire_and_forget_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = cio_create_task(slow_waiter, &at_end, NULL);
  if (!t) return cio_errcode();
  int rc = cio_sleep(0.01);
  cio_task_detach(t);
  return rc; /* returns while the job runs */
}

static void test_cio_run_waits_for_default_executor(void **state) {
  (void)state;
  double t0 = wall();
  assert_code(run_real(fire_and_forget_main, NULL), 0);
  assert_true(atomic_load(&at_end.finished)); /* joined before cio_run returned */
  assert_true(atomic_load(&at_end.saw_cancel));
  assert_true(wall() - t0 >= 0.07);
}

/* ---- a loop closed while its job runs: the job finishes alone ------------------------------- */

static struct slow_job orphan = {.ms = 60};

static int start_and_cancel(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = cio_create_task(slow_waiter, &orphan, NULL);
  if (!t) return cio_errcode();
  int rc = cio_sleep(0.005);
  cio_task_cancel(t, NULL);
  cio_task_unref(t);
  return rc;
}

static void test_loop_closed_while_job_runs(void **state) {
  (void)state;
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  cio_task *t = cio_loop_create_task(loop, start_and_cancel, NULL, NULL);
  assert_non_null(t);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_code(cio_task_result(t, NULL), 0);
  cio_task_unref(t);
  /* The cancelled waiter has not run its last step: close abandons it. */
  cio_loop_set_exception_handler(loop, record_report, &(struct reports){0});
  assert_code(cio_loop_free(loop), 0); /* closes without waiting for the job */
  assert_false(atomic_load(&orphan.finished));
  while (!atomic_load(&orphan.finished)) sleep_ms(5);
  sleep_ms(10); /* let it clean up in its thread */
}

/* ---- several loops in several threads share one executor ------------------------------------- */

static cio_executor *shared;

static int shared_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 100; i++) {
    void *r;
    CHECK_RC(cio_run_in_executor(shared, double_it, (void *)(intptr_t)i, &r), 0);
    CHECK_RC((intptr_t)r, 2 * i);
    void *r2;
    CHECK_RC(cio_to_thread(double_it, (void *)(intptr_t)i, &r2), 0);
  }
  return 0;
}

static void *loop_thread(void *p) {
  (void)p;
  cio_loop_options o = {.virtual_time = true};
  return (void *)(intptr_t)cio_run_opts(shared_body, NULL, NULL, &o);
}

static void test_loops_in_threads_share_an_executor(void **state) {
  (void)state;
  assert_code(cio_executor_new(&shared, 3), 0);
  pthread_t th[3];
  for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, loop_thread, NULL), 0);
  for (int i = 0; i < 3; i++) {
    void *rc;
    pthread_join(th[i], &rc);
    assert_int_equal((intptr_t)rc, 0);
  }
  assert_code(cio_executor_free(shared), 0);
}

int main(void) {
  /* Some tests need the real clock: an exported CIO_VIRTUAL_TIME=1 would
   * force every loop onto the virtual one. */
  unsetenv("CIO_VIRTUAL_TIME");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_other_tasks_run_meanwhile),
      cmocka_unit_test(test_to_thread_from_1000_tasks),
      cmocka_unit_test(test_cancel_while_job_runs),
      cmocka_unit_test(test_user_executor_and_shutdown),
      cmocka_unit_test(test_cio_run_waits_for_default_executor),
      cmocka_unit_test(test_loop_closed_while_job_runs),
      cmocka_unit_test(test_loops_in_threads_share_an_executor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
