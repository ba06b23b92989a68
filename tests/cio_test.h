/* Shared helpers for the cmocka test programs.
 *
 * - run_virtual(fn, arg): cio_run under the virtual clock, returning the main
 *   task's code; the loop time it took is left in cio_test_elapsed (seconds).
 * - A trace buffer: trace("a%d", i) appends "a1 " ...; assert_trace("a1 b2")
 *   compares (the trailing space is ignored) and clears it.
 * - assert_code(rc, CODE): prints both codes by name on failure.
 * - CIO_TEST_FILTER=pattern in the environment: only the matching tests run.
 */
#ifndef CIO_TEST_H
#define CIO_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <cio.h>

/* A failed assertion inside a task longjmps out of the task's stack, leaving
 * this thread's loop marked running. Every test gets a teardown that forgets
 * it, so that one failure does not fail every later test of the binary. */
void cio__thread_reset(void);
static inline int cio_test_teardown(void **state) {
  (void)state;
  cio__thread_reset();
  return 0;
}
#undef cmocka_unit_test
#define cmocka_unit_test(f) cmocka_unit_test_teardown(f, cio_test_teardown)

/* CIO_TEST_FILTER=pattern runs only the tests whose name matches it (cmocka's
 * filter: '*' and '?' wildcards), e.g. to repeat one test in a loop:
 *   CIO_TEST_FILTER=test_stream_write build/tests/test_file */
__attribute__((constructor)) static void cio_test_filter(void) {
  const char *f = getenv("CIO_TEST_FILTER");
  if (f && *f) cmocka_set_test_filter(f);
}

/* Death tests and heavy runs: run child(arg) in a forked process with its
 * stderr captured into buf (NUL-terminated, cap bytes at most; the rest is
 * read and dropped). child must end the process (_exit). Returns the
 * child's waitpid status. */
static inline int run_in_child(void (*child)(void *), void *arg, char *buf, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) fail_msg("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    child(arg);
    _exit(99); /* child returned: not what a death test expects */
  }
  close(fds[1]);
  size_t len = 0;
  char sink[256];
  ssize_t r;
  while ((r = read(fds[0], len + 1 < cap ? buf + len : sink,
                   len + 1 < cap ? cap - 1 - len : sizeof sink)) > 0)
    if (len + 1 < cap) len += (size_t)r;
  buf[len] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

static double cio_test_elapsed;
static double cio_test_start;
static cio_task_fn cio_test_fn;

static int cio_test_main(void *arg, void **result) {
  cio_test_start = cio_loop_time(cio_get_running_loop());
  int rc = cio_test_fn(arg, result);
  cio_test_elapsed = cio_loop_time(cio_get_running_loop()) - cio_test_start;
  return rc;
}

static inline int run_virtual(cio_task_fn fn, void *arg) {
  cio_loop_options o = {.virtual_time = true};
  cio_test_fn = fn;
  return cio_run_opts(cio_test_main, arg, NULL, &o);
}

static char cio_trace_buf[1 << 16];
static size_t cio_trace_len;

static inline void trace(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cio_trace_buf + cio_trace_len, sizeof cio_trace_buf - cio_trace_len, fmt, ap);
  va_end(ap);
  if (n > 0) cio_trace_len += (size_t)n;
  if (cio_trace_len + 1 < sizeof cio_trace_buf) cio_trace_buf[cio_trace_len++] = ' ';
  cio_trace_buf[cio_trace_len] = 0;
}

static inline void trace_clear(void) {
  cio_trace_len = 0;
  cio_trace_buf[0] = 0;
}

#define assert_trace(expected)                                              \
  do {                                                                      \
    if (cio_trace_len && cio_trace_buf[cio_trace_len - 1] == ' ')           \
      cio_trace_buf[--cio_trace_len] = 0;                                   \
    assert_string_equal(cio_trace_buf, (expected));                         \
    trace_clear();                                                          \
  } while (0)

#define assert_code(rc, expected)                                                      \
  do {                                                                                 \
    int cio_rc_ = (rc), cio_exp_ = (expected);                                         \
    if (cio_rc_ != cio_exp_)                                                           \
      fail_msg("%s: got %s (%d: %s), expected %s (%d)", #rc, cio_err_name(cio_rc_),    \
               cio_rc_, cio_errmsg(), cio_err_name(cio_exp_), cio_exp_);               \
  } while (0)

#define assert_time(expected) assert_float_equal(cio_test_elapsed, (expected), 1e-9)

/* Create a task in the running loop; a failure fails the test. */
static inline cio_task *spawn_task(cio_task_fn fn, void *arg) {
  cio_task *t = cio_create_task(fn, arg, NULL);
  if (!t) fail_msg("cio_create_task: %s", cio_errmsg());
  return t;
}
#define SPAWN(fn, arg) spawn_task((fn), (void *)(intptr_t)(arg))

/* Await each task (a cancelled one is fine) and release it. */
static inline void join_all(cio_task **ts, int n) {
  for (int i = 0; i < n; i++) {
    int rc = cio_await(ts[i], NULL);
    if (rc < 0 && rc != -ECANCELED) fail_msg("task %d: %s (%s)", i, cio_err_name(rc), cio_errmsg());
    cio_task_unref(ts[i]);
  }
}

/* run_virtual with an empty trace; the main task must succeed. */
static inline void run_ok(cio_task_fn fn, void *arg) {
  trace_clear();
  int rc = run_virtual(fn, arg);
  if (rc < 0) fail_msg("main task: %s (%s)", cio_err_name(rc), cio_errmsg());
}

/* Cross builds run under qemu-user (CIO_TEST_EMULATED=1), whose threads and
 * SIGSEGV delivery do not work on every host kernel: such tests are skipped
 * there, and say so. */
#define skip_if_emulated(why)                                           \
  do {                                                                  \
    if (getenv("CIO_TEST_EMULATED")) {                                  \
      print_message("skipped under emulation: %s\n", why);             \
      skip();                                                           \
    }                                                                   \
  } while (0)

/* Loop time now, in seconds, inside a running loop. */
static inline double now(void) { return cio_loop_time(cio_get_running_loop()); }

#endif
