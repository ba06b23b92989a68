/* Hardening of the core (loop, handles, tasks, futures, executor, I/O):
 * misuse is refused with a documented code, never a crash, and the corner
 * cases behave as asyncio's (issue 13). */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cio_test.h"
#include "loop.h" /* the loop's own fds */

/* ---- first: two threads make the first loops of the process -------------------- */

static void *make_a_loop(void *arg) {
  cio_loop **loop = arg;
  if (cio_loop_new(loop, NULL) < 0) *loop = NULL;
  return NULL; /* freed by the main thread: no lock taken between the two */
}

/* The page size was initialised lazily without synchronisation: ThreadSanitizer
 * reported the race when two threads created the first loops (tools/test.sh
 * tsan runs this program). Must run before anything else of this program. */
static void first_loops_in_two_threads(void **state) {
  (void)state;
  skip_if_emulated("threads");
  pthread_t a, b;
  cio_loop *la = NULL, *lb = NULL;
  assert_int_equal(pthread_create(&a, NULL, make_a_loop, &la), 0);
  assert_int_equal(pthread_create(&b, NULL, make_a_loop, &lb), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  assert_non_null(la);
  assert_non_null(lb);
  assert_int_equal(cio_loop_free(la), 0);
  assert_int_equal(cio_loop_free(lb), 0);
}

/* ---- handles: every state against cancel and unref ------------------------------ */

static int timeouts_fired, soon_ran;

static void on_timeout(void *arg) {
  (void)arg;
  timeouts_fired++;
}
static void count_soon(void *arg) {
  (void)arg;
  soon_ran++;
}

/* Runs in the same iteration as the timer it cancels (same deadline, armed
 * first): the timer has fired and waits in the ready queue. */
static void cancel_the_fired_timer(void *arg) {
  cio_handle **h = arg;
  assert_int_equal(cio_handle_cancel(*h), 0);
  assert_int_equal(cio_handle_unref(*h), 0);
  *h = NULL;
  /* Reuse the memory at once, as a busy program does. */
  cio_handle *again;
  assert_int_equal(cio_call_soon(cio_get_running_loop(), count_soon, NULL, &again), 0);
  assert_int_equal(cio_handle_unref(again), 0);
}

/* Issue 13 item 1: "cancel the timeout when the answer arrives", where the
 * answer and the timeout come in the same iteration, 3,000 times. Was a
 * double release (use-after-poison under ASan, a crash a little later). */
static int fired_then_cancelled_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  for (int i = 0; i < 3000; i++) {
    cio_handle *h = NULL;
    assert_int_equal(cio_call_later(loop, 0.001, cancel_the_fired_timer, &h, NULL), 0);
    assert_int_equal(cio_call_later(loop, 0.001, on_timeout, NULL, &h), 0);
    assert_int_equal(cio_sleep(0.002), 0);
    assert_null(h);
  }
  return 0;
}

static void timer_cancelled_in_the_iteration_it_fired(void **state) {
  (void)state;
  timeouts_fired = soon_ran = 0;
  run_ok(fired_then_cancelled_main, NULL);
  assert_int_equal(timeouts_fired, 0);
  assert_int_equal(soon_ran, 3000);
}

/* The same with a real peer: a thread answers on a socket about when the
 * timer is due (the reproduction of the report, fewer rounds). */
static void *answer_later(void *arg) {
  int fd = *(int *)arg;
  struct timespec ts = {0, 900000};
  nanosleep(&ts, NULL);
  char c = 'x';
  ssize_t n = write(fd, &c, 1);
  (void)n;
  return NULL;
}

static int real_peer_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  for (int i = 0; i < 200; i++) {
    cio_handle *h;
    assert_int_equal(cio_call_later(loop, 0.001, on_timeout, NULL, &h), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, answer_later, &sv[1]), 0);
    assert_int_equal(cio_wait_readable(sv[0]), 0);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    assert_int_equal(cio_handle_cancel(h), 0);
    assert_int_equal(cio_handle_unref(h), 0);
    pthread_join(th, NULL);
  }
  cio_fd_close(sv[0]);
  cio_fd_close(sv[1]);
  return 0;
}

static void timer_cancelled_when_a_real_answer_comes(void **state) {
  (void)state;
  skip_if_emulated("threads and sockets");
  timeouts_fired = 0;
  assert_int_equal(cio_run(real_peer_main, NULL, NULL), 0);
}

static int ran;
static cio_handle *self_handle;
static void count(void *arg) {
  (void)arg;
  ran++;
}
static void cancel_and_release_self(void *arg) {
  (void)arg;
  ran++;
  assert_int_equal(cio_handle_cancel(self_handle), 0); /* running: no-op */
  assert_false(cio_handle_cancelled(self_handle));
  assert_int_equal(cio_handle_unref(self_handle), 0);  /* the loop still holds it */
}

static void handle_states(void **state) {
  (void)state;
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, &(cio_loop_options){.virtual_time = true}), 0);
  cio_handle *h;

  /* Queued (call_soon): a second unref is refused, the callback still runs. */
  ran = 0;
  assert_int_equal(cio_call_soon(loop, count, NULL, &h), 0);
  assert_int_equal(cio_handle_unref(h), 0);
  assert_code(cio_handle_unref(h), CIO_EDOUBLEFREE);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);

  /* Queued, cancelled, released: does not run. */
  ran = 0;
  assert_int_equal(cio_call_soon(loop, count, NULL, &h), 0);
  assert_int_equal(cio_handle_cancel(h), 0);
  assert_int_equal(cio_handle_cancel(h), 0);
  assert_true(cio_handle_cancelled(h));
  assert_int_equal(cio_handle_unref(h), 0);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0);
  assert_int_equal(ran, 0);

  /* Running: cancel is a no-op, unref inside the callback is fine. */
  ran = 0;
  assert_int_equal(cio_call_soon(loop, cancel_and_release_self, NULL, &self_handle), 0);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);

  /* Armed timer: cancel takes it out of the timer queue; then ran: cancel no-op. */
  ran = 0;
  assert_int_equal(cio_call_later(loop, 5, count, NULL, &h), 0);
  assert_true(cio__timers_armed(loop));
  assert_int_equal(cio_handle_cancel(h), 0);
  assert_false(cio__timers_armed(loop));
  assert_int_equal(cio_handle_unref(h), 0);
  assert_code(cio_handle_unref(h), CIO_EDOUBLEFREE); /* freed: caught while the loop lives */
  assert_int_equal(cio_call_later(loop, 0, count, NULL, &h), 0);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(cio_handle_cancel(h), 0); /* ran: no-op */
  assert_false(cio_handle_cancelled(h));
  assert_int_equal(cio_handle_unref(h), 0);
  assert_code(cio_handle_unref(h), CIO_EDOUBLEFREE);
  assert_code(cio_handle_cancel(h), -EINVAL);

  /* Armed when the loop closes: the handle stays the user's to release. */
  assert_int_equal(cio_call_later(loop, 5, count, NULL, &h), 0);
  assert_int_equal(cio_loop_free(loop), 0);
  assert_int_equal(cio_handle_cancel(h), 0);
  assert_int_equal(cio_handle_unref(h), 0);
}

/* ---- second releases and bad arguments ------------------------------------------- */

static int short_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(0.01);
}

static int release_twice_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = cio_create_task(short_body, NULL, NULL);
  assert_non_null(t);
  cio_task *keep = cio_task_ref(t);
  assert_int_equal(cio_task_unref(t), 0);
  assert_int_equal(cio_task_unref(keep), 0);
  assert_code(cio_task_unref(keep), CIO_EDOUBLEFREE); /* pending: the loop's is not ours */
  assert_code(cio_future_unref(cio_task_future(keep)), CIO_EDOUBLEFREE);

  cio_task *d = cio_create_task(short_body, NULL, NULL);
  assert_int_equal(cio_task_detach(d), 0);
  assert_code(cio_task_unref(d), CIO_EDOUBLEFREE);
  assert_code(cio_task_detach(d), CIO_EDOUBLEFREE);
  assert_int_equal(cio_sleep(0.05), 0); /* both ran to their end */
  assert_int_equal(cio_all_tasks(cio_get_running_loop(), NULL, 0), 1);
  return 0;
}

static void second_release_of_a_pending_task(void **state) {
  (void)state;
  run_ok(release_twice_main, NULL);
}

static void second_free_of_a_loop_or_executor(void **state) {
  (void)state;
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, NULL), 0);
  assert_int_equal(cio_loop_free(loop), 0);
  assert_code(cio_loop_free(loop), CIO_EDOUBLEFREE);
  cio_executor *ex;
  assert_int_equal(cio_executor_new(&ex, 1), 0);
  assert_int_equal(cio_executor_free(ex), 0);
  assert_code(cio_executor_free(ex), CIO_EDOUBLEFREE);
  assert_code(cio_executor_shutdown(ex, true), -EINVAL);
}

static void bad_arguments_refused(void **state) {
  (void)state;
  cio_default_exception_handler(NULL, NULL, NULL); /* no crash, prints nothing */
  cio_loop_call_exception_handler(NULL, NULL);
  cio_loop *loop = (cio_loop *)1;
  assert_code(cio_loop_new(&loop, &(cio_loop_options){.default_stack_size = SIZE_MAX}), -EINVAL);
  assert_null(loop);
  assert_code(cio_loop_new(&loop, &(cio_loop_options){.default_stack_size = ((size_t)1 << 30) + 1}),
              -EINVAL);
  cio_loop_options o = {.default_stack_size = 64 * 1024};
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_int_equal(cio_loop_free(loop), 0);
}

/* ---- return values ------------------------------------------------------------- */

static int five(void *arg, void **result) {
  (void)arg;
  *result = (void *)(intptr_t)55;
  return 5;
}
static int seven_job(void *arg, void **result) {
  (void)arg;
  *result = (void *)(intptr_t)77;
  return 7;
}

static int values_main(void *arg, void **result) {
  (void)arg;
  void *r = NULL;
  assert_int_equal(cio_to_thread(seven_job, NULL, &r), 7);
  assert_ptr_equal(r, (void *)(intptr_t)77);
  r = NULL;
  assert_int_equal(cio_run_in_executor(NULL, seven_job, NULL, &r), 7);
  assert_ptr_equal(r, (void *)(intptr_t)77);
  cio_task *t = cio_create_task(five, NULL, NULL);
  r = NULL;
  assert_int_equal(cio_await(t, &r), 5);
  assert_ptr_equal(r, (void *)(intptr_t)55);
  assert_int_equal(cio_task_result(t, &r), 5);
  assert_int_equal(cio_future_result(cio_task_future(t), NULL), 5);
  assert_int_equal(cio_future_error(cio_task_future(t)), 0); /* "0 if it has a result" */
  cio_task_unref(t);
  *result = (void *)(intptr_t)99;
  return 3;
}

static void positive_return_values_kept(void **state) {
  (void)state;
  skip_if_emulated("threads and sockets");
  void *r = NULL;
  assert_int_equal(cio_run(five, NULL, &r), 5);
  assert_ptr_equal(r, (void *)(intptr_t)55);
  r = NULL;
  assert_int_equal(cio_run(values_main, NULL, &r), 3);
  assert_ptr_equal(r, (void *)(intptr_t)99);
}

/* ---- fds ------------------------------------------------------------------------ */

static int huge_fd_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  assert_code(cio_wait_readable(1 << 28), -EBADF);
  assert_code(cio_wait_writable(INT_MAX), -EBADF);
  assert_code(cio_add_reader(cio_get_running_loop(), 1 << 29, count, NULL), -EBADF);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  assert_true(took < 0.1); /* was seconds and gigabytes */
  cio_loop *loop = cio_get_running_loop();
  /* No table was grown for them. */
  assert_true(loop->io == NULL || *(int *)((char *)loop->io + sizeof(void *)) < 4096);
  /* The loop's own fds cannot be closed from under it. */
  assert_code(cio_fd_close(loop->poller.epfd), -EINVAL);
  assert_code(cio_fd_close(loop->poller.wakefd), -EINVAL);
  assert_true(fcntl(loop->poller.epfd, F_GETFD) >= 0);
  assert_int_equal(cio_sleep(0.001), 0); /* the loop still works */
  return 0;
}

static void huge_and_own_fds_refused(void **state) {
  (void)state;
  run_ok(huge_fd_main, NULL);
}

static int port_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_tcp_listen("127.0.0.1", "99999", 0), -EINVAL);
  assert_code(cio_tcp_listen("127.0.0.1", "65536", 0), -EINVAL);
  assert_code(cio_tcp_connect("127.0.0.1", "123456789012345678901234567890"), -EINVAL);
  int fd = cio_tcp_listen("127.0.0.1", "0", 0);
  assert_true(fd >= 0);
  cio_fd_close(fd);
  return 0;
}

static void port_out_of_range_refused(void **state) {
  (void)state;
  skip_if_emulated("threads and sockets");
  assert_int_equal(cio_run(port_main, NULL, NULL), 0);
}

/* ---- the virtual clock and "never" ----------------------------------------------- */

static int forever(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(INFINITY);
}

static int never_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  cio_task *t[3];
  for (int i = 0; i < 3; i++) t[i] = cio_create_task(forever, NULL, NULL);
  cio_handle *h;
  assert_int_equal(cio_call_later(loop, INFINITY, count, NULL, &h), 0);
  assert_true(isinf(cio_handle_when(h)));
  assert_int_equal(cio_handle_unref(h), 0);
  assert_int_equal(cio_call_later(loop, 1e300, count, NULL, NULL), 0);
  assert_int_equal(cio_call_at(loop, 1e300, count, NULL, NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(cio_sleep(1e6), 0);
  assert_float_equal(cio_loop_time(loop), 3e6, 1e-6);
  for (int i = 0; i < 3; i++) {
    assert_false(cio_task_done(t[i]));
    cio_task_cancel(t[i], NULL);
    assert_code(cio_await(t[i], NULL), -ECANCELED);
    cio_task_unref(t[i]);
  }
  return 0;
}

static void sleep_infinity_never_wakes(void **state) {
  (void)state;
  ran = 0;
  run_ok(never_main, NULL);
  assert_int_equal(ran, 0);
}

static int only_forever_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(INFINITY);
}

static void quiet_handler(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)ctx;
  (*(int *)arg)++;
}

static void sleep_infinity_alone_is_a_deadlock(void **state) {
  (void)state;
  /* Virtual clock: time used to jump to the "never" deadline and wake it. */
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, &(cio_loop_options){.virtual_time = true}), 0);
  int reports = 0;
  cio_loop_set_exception_handler(loop, quiet_handler, &reports);
  cio_task *t = cio_loop_create_task(loop, only_forever_main, NULL, NULL);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), CIO_EDEADLOCK);
  assert_int_equal(reports, 1);
  assert_false(cio_task_done(t));
  /* Real clock: the same (it would otherwise hang for ~146 years). */
  cio_loop *real;
  assert_int_equal(cio_loop_new(&real, NULL), 0);
  cio_loop_set_exception_handler(real, quiet_handler, &reports);
  cio_task *t2 = cio_loop_create_task(real, only_forever_main, NULL, NULL);
  if (!cio_loop_is_virtual(real)) {
    assert_code(cio_loop_run_until_complete(real, cio_task_future(t2)), CIO_EDEADLOCK);
    assert_int_equal(reports, 2);
  }
  cio_task_unref(t2);
  cio_task_unref(t);
  cio_loop_set_exception_handler(loop, quiet_handler, &reports);
  assert_int_equal(cio_loop_free(loop), 0);
  assert_int_equal(cio_loop_free(real), 0);
}

/* Documented: run_forever on a loop where nothing could ever call stop. */
static void run_forever_on_an_idle_loop(void **state) {
  (void)state;
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, NULL), 0);
  int reports = 0;
  cio_loop_set_exception_handler(loop, quiet_handler, &reports);
  assert_code(cio_loop_run_forever(loop), CIO_EDEADLOCK);
  assert_int_equal(reports, 1);
  assert_int_equal(cio_loop_free(loop), 0);
}

/* ---- the cross-thread hand-off ------------------------------------------------------ */

struct handoff {
  cio_loop *loop;
  cio_future *fut;
  atomic_int stage; /* 1: the loop is gone, post now */
  atomic_int late_rc;
};

static void complete_it(void *arg) {
  struct handoff *h = arg;
  assert_int_equal(cio_future_set_result(h->fut, (void *)(intptr_t)42), 0);
}

static void *helper_thread(void *arg) {
  struct handoff *h = arg;
  struct timespec ts = {0, 30 * 1000000}; /* well after the loop went idle */
  nanosleep(&ts, NULL);
  int rc = cio_call_soon_threadsafe(h->loop, complete_it, h);
  assert_int_equal(rc, 0);
  /* Keep the reference until the loop is gone, then try again. */
  while (atomic_load(&h->stage) == 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
  h->late_rc = cio_call_soon_threadsafe(h->loop, complete_it, h);
  assert_int_equal(cio_loop_unref_threadsafe(h->loop), 0);
  atomic_store(&h->stage, 2);
  return NULL;
}

static int handoff_main(void *arg, void **result) {
  (void)result;
  struct handoff *h = arg;
  h->loop = cio_get_running_loop();
  h->fut = cio_future_new(h->loop);
  assert_int_equal(cio_loop_ref_threadsafe(h->loop), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, helper_thread, h), 0);
  pthread_detach(th);
  void *r = NULL;
  int rc = cio_await(h->fut, &r);
  cio_future_unref(h->fut);
  return rc < 0 ? rc : (int)(intptr_t)r;
}

static void handoff_to_a_thread_is_not_a_deadlock(void **state) {
  (void)state;
  skip_if_emulated("threads and sockets");
  struct handoff h;
  atomic_init(&h.late_rc, 1);
  atomic_init(&h.stage, 0);
  assert_int_equal(cio_run(handoff_main, &h, NULL), 42);
  /* The loop is closed and freed by cio_run, but its memory waits for the
   * thread's reference: a late post is refused, not a use-after-free. */
  atomic_store(&h.stage, 1);
  for (int i = 0; i < 2000 && atomic_load(&h.late_rc) == 1; i++) nanosleep(&(struct timespec){0, 1000000}, NULL);
  for (int i = 0; i < 2000 && atomic_load(&h.stage) != 2; i++)
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  assert_code(atomic_load(&h.late_rc), CIO_ECLOSED);
  assert_int_equal(atomic_load(&h.stage), 2);
}

static void threadsafe_unref_unbalanced(void **state) {
  (void)state;
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, NULL), 0);
  assert_code(cio_loop_unref_threadsafe(loop), CIO_EDOUBLEFREE);
  assert_code(cio_loop_ref_threadsafe(NULL), -EINVAL);
  assert_int_equal(cio_loop_ref_threadsafe(loop), 0);
  assert_int_equal(cio_loop_unref_threadsafe(loop), 0);
  assert_int_equal(cio_loop_free(loop), 0);
}

/* ---- cancel messages, as CPython 3.13 (tests/py/cancel_messages.py) ---------------- */

static char seen[64];

static int sees_message(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(10);
  snprintf(seen, sizeof seen, "%s", rc == -ECANCELED ? cio_errmsg() : "not cancelled");
  return rc;
}

static int awaits_future(void *arg, void **result) {
  (void)result;
  int rc = cio_await((cio_future *)arg, NULL);
  snprintf(seen, sizeof seen, "%s", rc == -ECANCELED ? cio_errmsg() : "not cancelled");
  return rc;
}

static int yields_then_sleeps(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_yield();
  if (rc == 0) rc = cio_sleep(10);
  snprintf(seen, sizeof seen, "%s", rc == -ECANCELED ? cio_errmsg() : "not cancelled");
  return rc;
}

static void expect_cancelled_with(cio_task *t, const char *msg) {
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_string_equal(cio_errmsg(), msg);
  cio_task_unref(t);
}

static int messages_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  /* Suspended on a sleep: the first request cancels the sleep with its
   * message, the second finds it done: "first". */
  cio_task *t = cio_create_task(sees_message, NULL, NULL);
  assert_int_equal(cio_yield(), 0);
  cio_task_cancel(t, "first");
  cio_task_cancel(t, "second");
  expect_cancelled_with(t, "first");
  assert_string_equal(seen, "first");
  /* Not started: "second" (CPython keeps the last _cancel_message). */
  t = cio_create_task(sees_message, NULL, NULL);
  cio_task_cancel(t, "first");
  cio_task_cancel(t, "second");
  expect_cancelled_with(t, "second");
  /* In the ready queue (after a yield), not waiting on a future: "second". */
  t = cio_create_task(yields_then_sleeps, NULL, NULL);
  assert_int_equal(cio_yield(), 0);
  cio_task_cancel(t, "first");
  cio_task_cancel(t, "second");
  expect_cancelled_with(t, "second");
  assert_string_equal(seen, "second");
  /* Another party cancels the awaited future with "x", then the task "y". */
  cio_future *f = cio_future_new(cio_get_running_loop());
  t = cio_create_task(awaits_future, f, NULL);
  assert_int_equal(cio_yield(), 0);
  cio_future_cancel(f, "x");
  cio_task_cancel(t, "y");
  expect_cancelled_with(t, "x");
  assert_string_equal(seen, "x");
  cio_future_unref(f);
  return 0;
}

static void cancel_messages_as_asyncio(void **state) {
  (void)state;
  run_ok(messages_main, NULL);
}

/* ---- the thread pool's drop function: every path -------------------------------------- */

static atomic_int drops, drop_null_results, jobs_over;

struct jobarg {
  int rc;
  void *result;
  atomic_bool go;
};

static int gated_job(void *p, void **result) {
  struct jobarg *a = p;
  while (!atomic_load(&a->go)) nanosleep(&(struct timespec){0, 200000}, NULL);
  *result = a->result;
  atomic_fetch_add(&jobs_over, 1);
  if (a->rc < 0) return cio_raise(a->rc, "job failed on purpose");
  return a->rc;
}

static void drop_it(void *result, void *arg) {
  struct jobarg *a = arg;
  if (result) {
    assert_ptr_equal(result, a->result);
    free(result);
  } else {
    atomic_fetch_add(&drop_null_results, 1);
    free(a->result); /* the job's own, never handed over */
  }
  free(a);
  atomic_fetch_add(&drops, 1);
}

static int run_gated(void *p, void **result) {
  (void)result;
  void *r = NULL;
  return cio_run_in_executor_ex(NULL, gated_job, p, drop_it, &r);
}

static struct jobarg *new_arg(int rc, bool with_result) {
  struct jobarg *a = calloc(1, sizeof *a);
  a->rc = rc;
  a->result = with_result ? malloc(16) : NULL;
  atomic_init(&a->go, false);
  return a;
}

static int late_errors;
static void count_reports(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  if (ctx->code < 0) late_errors++;
}

static int drop_paths_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop_set_exception_handler(cio_get_running_loop(), count_reports, NULL);
  /* Late outcomes: success with a result, success with NULL, an error. */
  struct jobarg *as[3] = {new_arg(0, true), new_arg(0, false), new_arg(-EIO, false)};
  for (int i = 0; i < 3; i++) {
    cio_task *t = cio_create_task(run_gated, as[i], NULL);
    assert_int_equal(cio_yield(), 0);
    assert_int_equal(cio_yield(), 0); /* the job is in flight */
    cio_task_cancel(t, NULL);
    assert_code(cio_await(t, NULL), -ECANCELED);
    cio_task_unref(t);
    int before = atomic_load(&drops);
    atomic_store(&as[i]->go, true);
    for (int k = 0; k < 5000 && atomic_load(&drops) == before; k++)
      assert_int_equal(cio_sleep(0.001), 0);
    assert_int_equal(atomic_load(&drops), before + 1);
  }
  assert_int_equal(atomic_load(&drop_null_results), 2);
  assert_int_equal(late_errors, 1);
  /* Delivered outcome: no drop, arg stays the caller's. */
  struct jobarg *mine = new_arg(4, false);
  atomic_store(&mine->go, true);
  void *r = (void *)1;
  assert_int_equal(cio_run_in_executor_ex(NULL, gated_job, mine, drop_it, &r), 4);
  assert_null(r);
  free(mine);
  assert_int_equal(atomic_load(&drops), 3);
  return 0;
}

static void drop_called_on_every_abandoned_outcome(void **state) {
  (void)state;
  skip_if_emulated("threads");
  atomic_store(&drops, 0);
  atomic_store(&drop_null_results, 0);
  late_errors = 0;
  assert_int_equal(cio_run(drop_paths_main, NULL, NULL), 0);
}

/* The job finishes, then its task is cancelled before it resumes: the outcome
 * was not delivered, so drop gets it. The order is forced: X runs before the
 * job's completion in one batch and queues Y, which therefore runs after the
 * completion but before the task's step. */
static void cancel_it(void *arg) { cio_task_cancel(arg, NULL); }
static void queue_cancel(void *arg) {
  assert_int_equal(cio_call_soon(cio_get_running_loop(), cancel_it, arg, NULL), 0);
}

static int finished_then_cancelled_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  cio_loop_set_exception_handler(loop, count_reports, NULL);
  for (int kind = 0; kind < 3; kind++) {
    struct jobarg *a = new_arg(kind == 2 ? -EIO : 0, kind == 1);
    atomic_store(&a->go, true);
    cio_task *t = cio_create_task(run_gated, a, NULL);
    assert_int_equal(cio_yield(), 0); /* t submits its job and waits */
    while (!atomic_load(&loop->inbox_nonempty)) nanosleep(&(struct timespec){0, 200000}, NULL);
    int before = atomic_load(&drops);
    assert_int_equal(cio_call_soon(loop, queue_cancel, t, NULL), 0);
    assert_code(cio_await(t, NULL), -ECANCELED);
    cio_task_unref(t);
    assert_int_equal(atomic_load(&drops), before + 1);
  }
  assert_int_equal(atomic_load(&drop_null_results), 2);
  assert_int_equal(late_errors, 1); /* the error, reported when nobody read it */
  return 0;
}

static void drop_when_finished_but_cancelled_before_resuming(void **state) {
  (void)state;
  skip_if_emulated("threads");
  atomic_store(&drops, 0);
  atomic_store(&drop_null_results, 0);
  late_errors = 0;
  assert_int_equal(cio_run(finished_then_cancelled_main, NULL, NULL), 0);
}

/* ---- error messages -------------------------------------------------------------- */

static void *fail_in_thread(void *arg) {
  (void)arg;
  cio_raise(-EIO, "a message of some length that is malloc'd: %d", 42);
  return NULL;
}

/* Under LeakSanitizer this leaked each thread's last message. */
static void thread_error_message_freed_at_exit(void **state) {
  (void)state;
  skip_if_emulated("threads and sockets");
  for (int i = 0; i < 50; i++) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fail_in_thread, NULL), 0);
    pthread_join(th, NULL);
  }
}

static void errmsg_is_errno_like(void **state) {
  (void)state;
  cio_raise(-EIO, "old failure");
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, NULL), 0); /* a success... */
  assert_string_equal(cio_errmsg(), "old failure"); /* ...does not clear it (documented) */
  assert_int_equal(cio_errcode(), -EIO);
  assert_int_equal(cio_loop_free(loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(first_loops_in_two_threads),
      cmocka_unit_test(timer_cancelled_in_the_iteration_it_fired),
      cmocka_unit_test(timer_cancelled_when_a_real_answer_comes),
      cmocka_unit_test(handle_states),
      cmocka_unit_test(second_release_of_a_pending_task),
      cmocka_unit_test(second_free_of_a_loop_or_executor),
      cmocka_unit_test(bad_arguments_refused),
      cmocka_unit_test(positive_return_values_kept),
      cmocka_unit_test(huge_and_own_fds_refused),
      cmocka_unit_test(port_out_of_range_refused),
      cmocka_unit_test(sleep_infinity_never_wakes),
      cmocka_unit_test(sleep_infinity_alone_is_a_deadlock),
      cmocka_unit_test(run_forever_on_an_idle_loop),
      cmocka_unit_test(handoff_to_a_thread_is_not_a_deadlock),
      cmocka_unit_test(threadsafe_unref_unbalanced),
      cmocka_unit_test(cancel_messages_as_asyncio),
      cmocka_unit_test(drop_called_on_every_abandoned_outcome),
      cmocka_unit_test(drop_when_finished_but_cancelled_before_resuming),
      cmocka_unit_test(thread_error_message_freed_at_exit),
      cmocka_unit_test(errmsg_is_errno_like),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
