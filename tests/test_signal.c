/* Signals in the loop: cio_add_signal_handler / cio_remove_signal_handler,
 * and the signal mask of the threads cio creates. */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "cio_test.h"
#include "error.h" /* cio__thread_slot: a thread's last message, freed by hand here */

static int hits;
static cio_event got;

static void on_usr1(void *arg) {
  hits++;
  trace("usr1:%s", (const char *)arg);
  cio_event_set(&got);
}

static int refused_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  assert_code(cio_add_signal_handler(loop, SIGKILL, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, SIGSTOP, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, 0, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, -3, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, NSIG, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, SIGSEGV, on_usr1, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
  assert_code(cio_add_signal_handler(NULL, SIGUSR1, on_usr1, NULL), -EINVAL);
  assert_int_equal(cio_remove_signal_handler(loop, SIGUSR1), 0);
  assert_code(cio_remove_signal_handler(loop, 0), -EINVAL);
  assert_code(cio_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
  return 0;
}

static void test_refused(void **state) {
  (void)state;
  run_ok(refused_main, NULL);
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  assert_code(cio_loop_close(loop), 0);
  assert_code(cio_add_signal_handler(loop, SIGUSR1, on_usr1, NULL), CIO_ECLOSED);
  cio_loop_free(loop);
}

static void *add_from_thread(void *arg) {
  cio_loop *loop = arg;
  int rc = cio_add_signal_handler(loop, SIGUSR2, on_usr1, NULL);
  cio__errslot_clear(&cio__thread_slot);
  return (void *)(intptr_t)rc;
}

static void test_main_thread_only(void **state) {
  (void)state;
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  pthread_t th;
  void *ret;
  pthread_create(&th, NULL, add_from_thread, loop);
  pthread_join(th, &ret);
  assert_code((int)(intptr_t)ret, CIO_ERUNTIME);
  cio_loop_free(loop);
}

static bool blocked(int signo) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  return sigismember(&cur, signo);
}

static int handled_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  cio_event_init(&got);
  hits = 0;
  assert_false(blocked(SIGUSR1));
  assert_code(cio_add_signal_handler(loop, SIGUSR1, on_usr1, "a"), 0);
  assert_true(blocked(SIGUSR1));
  kill(getpid(), SIGUSR1);
  assert_code(cio_event_wait(&got), 0);
  assert_int_equal(hits, 1);
  /* A second add replaces the handler. */
  cio_event_clear(&got);
  assert_code(cio_add_signal_handler(loop, SIGUSR1, on_usr1, "b"), 0);
  raise(SIGUSR1);
  assert_code(cio_event_wait(&got), 0);
  assert_int_equal(cio_remove_signal_handler(loop, SIGUSR1), 1);
  assert_int_equal(cio_remove_signal_handler(loop, SIGUSR1), 0);
  /* Restored: not blocked, default disposition. */
  assert_false(blocked(SIGUSR1));
  struct sigaction sa;
  sigaction(SIGUSR1, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
  cio_event_destroy(&got);
  return 0;
}

static void test_handler_runs_in_loop(void **state) {
  (void)state;
  trace_clear();
  cio_test_fn = handled_main;
  assert_code(cio_run(cio_test_main, NULL, NULL), 0);
  assert_trace("usr1:a usr1:b");
}

/* The case of the issue: a handler added after (and before) the thread pool
 * started must still run, and the pool's threads must block the signal from
 * their creation on. */
static int job_mask(void *arg, void **result) {
  (void)arg;
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  *result = (void *)(intptr_t)(sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGINT) &&
                               sigismember(&cur, SIGTERM) && sigismember(&cur, SIGCHLD));
  return 0;
}

static int pool_main(void *arg, void **result) {
  (void)result;
  bool before = (bool)(intptr_t)arg;
  cio_loop *loop = cio_get_running_loop();
  cio_event_init(&got);
  hits = 0;
  void *all_blocked = NULL;
  if (!before) assert_code(cio_add_signal_handler(loop, SIGUSR1, on_usr1, "x"), 0);
  assert_code(cio_to_thread(job_mask, NULL, &all_blocked), 0);
  assert_true(all_blocked);
  if (before) assert_code(cio_add_signal_handler(loop, SIGUSR1, on_usr1, "x"), 0);
  for (int i = 0; i < 20; i++) {
    cio_event_clear(&got);
    kill(getpid(), SIGUSR1); /* process-directed: any thread not blocking it may get it */
    assert_code(cio_event_wait(&got), 0);
  }
  assert_int_equal(hits, 20);
  assert_int_equal(cio_remove_signal_handler(loop, SIGUSR1), 1);
  cio_event_destroy(&got);
  return 0;
}

static void test_handler_with_thread_pool(void **state) {
  (void)state;
  cio_test_fn = pool_main;
  assert_code(cio_run(cio_test_main, (void *)(intptr_t)1, NULL), 0);
  cio_test_fn = pool_main;
  assert_code(cio_run(cio_test_main, (void *)(intptr_t)0, NULL), 0);
}

/* Closing the loop with a handler installed restores the signal. */
static int left_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_add_signal_handler(cio_get_running_loop(), SIGUSR2, on_usr1, "left");
}

static void test_close_restores(void **state) {
  (void)state;
  assert_code(run_virtual(left_main, NULL), 0);
  assert_false(blocked(SIGUSR2));
  struct sigaction sa;
  sigaction(SIGUSR2, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL);
}

/* Two loops cannot own one signal. */
static void test_one_loop_per_signal(void **state) {
  (void)state;
  cio_loop *a, *b;
  assert_code(cio_loop_new(&a, NULL), 0);
  assert_code(cio_loop_new(&b, NULL), 0);
  assert_code(cio_add_signal_handler(a, SIGUSR2, on_usr1, NULL), 0);
  assert_code(cio_add_signal_handler(b, SIGUSR2, on_usr1, NULL), -EBUSY);
  assert_int_equal(cio_remove_signal_handler(a, SIGUSR2), 1);
  assert_code(cio_add_signal_handler(b, SIGUSR2, on_usr1, NULL), 0);
  cio_loop_free(a);
  cio_loop_free(b); /* removes it */
  assert_false(blocked(SIGUSR2));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_main_thread_only),
      cmocka_unit_test(test_handler_runs_in_loop),
      cmocka_unit_test(test_handler_with_thread_pool),
      cmocka_unit_test(test_close_restores),
      cmocka_unit_test(test_one_loop_per_signal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
