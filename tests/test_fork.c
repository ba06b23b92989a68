/* fork() and cio (issue 13 item 8), with real processes. The rule (loop.h,
 * "fork()"): an inherited loop is unusable in the child (CIO_EFORKED) and
 * never touches the epoll set, eventfd or threads it shares with the parent;
 * the child may run a new loop, even when fork() was called from a task. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio_test.h"

/* ThreadSanitizer cannot follow a child that starts threads after a fork
 * of a multi-threaded process (it dies there on purpose). */
#if defined(__SANITIZE_THREAD__)
#define skip_if_tsan() skip()
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define skip_if_tsan() skip()
#endif
#endif
#ifndef skip_if_tsan
#define skip_if_tsan() ((void)0)
#endif

/* In the child, a failed check exits with its line number. */
#define CHILD_CHECK(cond)        \
  do {                           \
    if (!(cond)) _exit(__LINE__ % 250 + 1); \
  } while (0)

static int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (!WIFEXITED(status)) return -1000 - (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return WEXITSTATUS(status);
}

static int seven_job(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 7;
}

static int child_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(0.005);
  if (rc < 0) return rc;
  int fd = cio_tcp_listen("127.0.0.1", "0", 0); /* the new loop's own epoll */
  if (fd < 0) return fd;
  cio_fd_close(fd);
  return cio_to_thread(seven_job, NULL, NULL); /* a fresh default executor */
}

static void noop(void *arg) { (void)arg; }

static int on_executor(void *arg, void **result) {
  (void)result;
  return cio_run_in_executor(arg, seven_job, NULL, NULL);
}

/* ---- fork() from inside a task ------------------------------------------------------ */

struct acceptor {
  int listener;
  int accepted;
};

static int accept_one(void *arg, void **result) {
  (void)result;
  struct acceptor *a = arg;
  a->accepted = cio_sock_accept(a->listener, NULL, NULL);
  return a->accepted < 0 ? a->accepted : 0;
}

static int wait_job(void *arg, void **result) {
  (void)result;
  return wait_child(*(pid_t *)arg);
}

static int fork_in_task_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  struct acceptor a = {.listener = cio_tcp_listen("127.0.0.1", "0", 0), .accepted = -1};
  assert_true(a.listener >= 0);
  cio_task *acc = cio_create_task(accept_one, &a, NULL);
  assert_int_equal(cio_yield(), 0); /* it waits in the shared epoll set now */
  void *r;
  assert_int_equal(cio_to_thread(seven_job, NULL, &r), 7); /* the parent's pool has a thread */

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child: no loop and no task run in this thread any more. */
    CHILD_CHECK(cio_get_running_loop() == NULL);
    CHILD_CHECK(cio_current_task() == NULL);
    CHILD_CHECK(cio_call_soon(loop, noop, NULL, NULL) == CIO_EFORKED);
    CHILD_CHECK(cio_call_soon_threadsafe(loop, noop, NULL) == CIO_EFORKED);
    CHILD_CHECK(cio_future_new(loop) == NULL && cio_errcode() == CIO_EFORKED);
    CHILD_CHECK(cio_loop_create_task(loop, child_main, NULL, NULL) == NULL);
    CHILD_CHECK(cio_sleep(0.001) == CIO_ENOTASK);
    CHILD_CHECK(cio_to_thread(seven_job, NULL, NULL) == CIO_ENOTASK);
    /* Closing the parent's listener here closes only the child's copy. */
    CHILD_CHECK(cio_fd_close(a.listener) == 0);
    /* A new loop runs, on this task's stack, with its own executor. */
    CHILD_CHECK(cio_run(child_main, NULL, NULL) == 7);
    _exit(0);
  }
  /* The parent: the child's status, then the listener still works. */
  pid_t p = pid;
  assert_int_equal(cio_to_thread(wait_job, &p, NULL), 0);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  assert_int_equal(getsockname(a.listener, (struct sockaddr *)&ss, &len), 0);
  char port[16];
  snprintf(port, sizeof port, "%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  int conn = cio_tcp_connect("127.0.0.1", port);
  assert_true(conn >= 0);
  assert_int_equal(cio_wait_for(cio_task_future(acc), 5, NULL), 0);
  assert_true(a.accepted >= 0);
  cio_task_unref(acc);
  cio_fd_close(conn);
  cio_fd_close(a.accepted);
  cio_fd_close(a.listener);
  (void)loop;
  return 0;
}

static void fork_from_a_task(void **state) {
  (void)state;
  skip_if_emulated("fork and threads");
  skip_if_tsan();
  assert_int_equal(cio_run(fork_in_task_main, NULL, NULL), 0);
}

/* ---- the child returns into the inherited loop ---------------------------------------- */

static pid_t parent_pid;
static pid_t child_pid;

static int sleeper(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(0.05);
}

static int fork_and_return_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *other = cio_create_task(sleeper, NULL, NULL); /* would run in the same batch */
  cio_task_detach(other);
  child_pid = fork();
  assert_true(child_pid >= 0);
  return 0; /* both processes: back to the loop */
}

static void child_returning_to_the_inherited_loop(void **state) {
  (void)state;
  skip_if_emulated("fork");
  skip_if_tsan();
  parent_pid = getpid();
  int rc = cio_run(fork_and_return_main, NULL, NULL);
  if (getpid() != parent_pid) {
    /* The child: the inherited loop stopped without polling. */
    _exit(rc == CIO_EFORKED ? 0 : 100);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(wait_child(child_pid), 0);
}

/* ---- a loop and an executor that exist (not running) at fork() -------------------------- */

static void loop_and_executor_inherited(void **state) {
  (void)state;
  skip_if_emulated("fork and threads");
  skip_if_tsan();
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, NULL), 0);
  cio_executor *ex;
  assert_int_equal(cio_executor_new(&ex, 2), 0);
  cio_task *t = cio_loop_create_task(loop, on_executor, ex, NULL); /* starts a thread of ex */
  assert_int_equal(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_int_equal(cio_task_result(t, NULL), 7);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    CHILD_CHECK(cio_loop_run_until_complete(loop, cio_task_future(t)) == CIO_EFORKED);
    CHILD_CHECK(cio_loop_run_forever(loop) == CIO_EFORKED);
    CHILD_CHECK(cio_call_soon(loop, noop, NULL, NULL) == CIO_EFORKED);
    CHILD_CHECK(cio_executor_shutdown(ex, true) == CIO_EFORKED);
    CHILD_CHECK(cio_executor_free(ex) == 0); /* forgotten, no join of the parent's threads */
    CHILD_CHECK(cio_task_unref(t) == 0);
    CHILD_CHECK(cio_loop_free(loop) == 0);    /* no hang, parent untouched */
    CHILD_CHECK(cio_run(child_main, NULL, NULL) == 7);
    _exit(0);
  }
  assert_int_equal(wait_child(pid), 0);
  /* The parent's loop and executor still work. */
  cio_task_unref(t);
  t = cio_loop_create_task(loop, on_executor, ex, NULL);
  assert_int_equal(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_int_equal(cio_task_result(t, NULL), 7);
  cio_task_unref(t);
  assert_int_equal(cio_executor_free(ex), 0);
  assert_int_equal(cio_loop_free(loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fork_from_a_task),
      cmocka_unit_test(child_returning_to_the_inherited_loop),
      cmocka_unit_test(loop_and_executor_inherited),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
