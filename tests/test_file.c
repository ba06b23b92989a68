/* Layer 8: file I/O (src/file.c), on both engines: every test runs once on a
 * loop with the io_uring back end (kernel operations) and once on epoll (the
 * thread pool), and must see the same results. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cio_test.h"

static cio_backend backend;
static char dir[64];
static bool have_uring; /* built with liburing, and the kernel lets us */

static int run_on(cio_task_fn fn, void *arg) {
  cio_loop_options o = {.virtual_time = true, .backend = backend};
  return cio_run_opts(fn, arg, NULL, &o);
}

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static uint64_t fnv(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* ---- round trips ----------------------------------------------------------------- */

#define BIG (16u << 20)

static int round_trip_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  const char *want = backend == CIO_BACKEND_URING && have_uring ? "io_uring" : "epoll";
  /* Where io_uring is missing, the loop says epoll (and files still work). */
  assert_string_equal(cio_loop_backend(cio_get_running_loop()), want);
  char p[128];
  path_of(p, sizeof p, "big");
  unsigned char *data = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
  assert_int_equal(cio_file_write_all(p, data, BIG), 0);
  char *back;
  size_t len;
  assert_int_equal(cio_file_read_all(p, &back, &len), 0);
  assert_int_equal(len, BIG);
  assert_int_equal(back[len], '\0');
  assert_true(fnv((unsigned char *)back, len) == fnv(data, BIG));
  free(back);

  /* Positional and sequential reads in 64 KiB chunks. */
  int fd = cio_file_open(p, O_RDONLY, 0);
  assert_true(fd >= 0);
  unsigned char chunk[65536];
  ssize_t r = cio_file_pread(fd, chunk, sizeof chunk, 1000);
  assert_int_equal(r, sizeof chunk);
  assert_memory_equal(chunk, data + 1000, sizeof chunk);
  uint64_t h = 1469598103934665603ull;
  size_t total = 0;
  while ((r = cio_file_read(fd, chunk, sizeof chunk)) > 0) {
    for (ssize_t i = 0; i < r; i++) h = (h ^ chunk[i]) * 1099511628211ull;
    total += (size_t)r;
  }
  assert_int_equal(r, 0);
  assert_int_equal(total, BIG);
  assert_true(h == fnv(data, BIG));
  assert_int_equal(cio_file_pread(fd, chunk, 10, BIG + 5), 0); /* past the end */
  assert_int_equal(cio_file_close(fd), 0);

  /* pwrite in the middle, fsync, read back. */
  fd = cio_file_open(p, O_RDWR, 0);
  assert_true(fd >= 0);
  assert_int_equal(cio_file_pwrite(fd, "hello", 5, 4096), 5);
  assert_int_equal(cio_file_fsync(fd, false), 0);
  assert_int_equal(cio_file_fsync(fd, true), 0);
  assert_int_equal(cio_file_pread(fd, chunk, 5, 4096), 5);
  assert_memory_equal(chunk, "hello", 5);
  assert_int_equal(cio_file_write(fd, "ab", 2), 2); /* at the position: 0 */
  assert_int_equal(cio_file_pread(fd, chunk, 2, 0), 2);
  assert_memory_equal(chunk, "ab", 2);
  assert_int_equal(cio_file_close(fd), 0);
  free(data);
  unlink(p);
  return 0;
}

static void test_round_trip(void **state) {
  (void)state;
  assert_int_equal(run_on(round_trip_main, NULL), 0);
}

/* ---- errors ------------------------------------------------------------------------ */

static int errors_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "missing/none");
  assert_int_equal(cio_file_open(p, O_RDONLY, 0), -ENOENT);
  assert_non_null(strstr(cio_errmsg(), "missing/none"));
  char *d = (char *)1;
  size_t n = 7;
  assert_int_equal(cio_file_read_all(p, &d, &n), -ENOENT);
  assert_null(d);
  assert_int_equal(n, 0);
  assert_int_equal(cio_file_open(NULL, O_RDONLY, 0), -EINVAL);
  char buf[4];
  assert_int_equal(cio_file_read(-1, buf, 4), -EBADF);
  assert_int_equal(cio_file_pread(0, buf, 4, -3), -EINVAL);
  assert_int_equal(cio_file_read(0, NULL, 4), -EINVAL);
  /* A directory cannot be read. */
  int fd = cio_file_open(dir, O_RDONLY | O_DIRECTORY, 0);
  assert_true(fd >= 0);
  assert_int_equal(cio_file_read(fd, buf, 4), -EISDIR);
  assert_int_equal(cio_file_close(fd), 0);
  /* A closed fd. */
  assert_int_equal(cio_file_read(fd, buf, 4), -EBADF);
  /* Written to a read-only fd. */
  path_of(p, sizeof p, "ro");
  assert_int_equal(cio_file_write_all(p, "x", 1), 0);
  fd = cio_file_open(p, O_RDONLY, 0);
  assert_int_equal(cio_file_write(fd, "y", 1), -EBADF);
  close(fd);
  unlink(p);
  return 0;
}

static void test_errors(void **state) {
  (void)state;
  assert_int_equal(run_on(errors_main, NULL), 0);
  char buf[4];
  assert_int_equal(cio_file_read(0, buf, 4), CIO_ENOTASK); /* outside a task */
}

/* ---- cancellation ------------------------------------------------------------------ */

/* A read of an empty pipe blocks until a writer writes: cancel it, and the
 * call must return -ECANCELED while the other tasks keep running; the
 * caller's buffer is its own again (on io_uring the request is withdrawn;
 * on the thread pool the worker reads into its own buffer). */
struct cancel_ctx {
  int pfd[2];
  char buf[16];
  int rc;
};

static int reader(void *arg, void **result) {
  (void)result;
  struct cancel_ctx *c = arg;
  c->rc = (int)cio_file_read(c->pfd[0], c->buf, sizeof c->buf);
  return c->rc < 0 ? c->rc : 0;
}

static int cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct cancel_ctx c = {.rc = 1};
  assert_int_equal(pipe(c.pfd), 0);
  memset(c.buf, '.', sizeof c.buf);
  cio_task *t = cio_create_task(reader, &c, NULL);
  /* (Not a sleep: the virtual clock stands still while a job runs.) */
  for (int i = 0; i < 200; i++) assert_int_equal(cio_yield(), 0);
  assert_int_equal(c.rc, 1); /* still reading */
  assert_int_equal(cio_task_cancel(t, "stop"), 1);
  assert_int_equal(cio_await(t, NULL), -ECANCELED);
  assert_int_equal(c.rc, -ECANCELED);
  cio_task_unref(t);
  /* Release a worker thread still blocked in read(2), then check the
   * caller's buffer was not written after the call returned. */
  assert_int_equal(write(c.pfd[1], "late", 4), 4);
  assert_int_equal(cio_sleep(0.01), 0);
  for (size_t i = 0; i < sizeof c.buf; i++) assert_int_equal(c.buf[i], '.');
  close(c.pfd[0]);
  close(c.pfd[1]);
  return 0;
}

static void test_cancel_mid_read(void **state) {
  (void)state;
  assert_int_equal(run_on(cancel_main, NULL), 0);
}

/* Tasks keep ticking while a large file is read. */
static int ticks;
static int ticker(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
    int rc = cio_sleep(0);
    if (rc < 0) return rc;
    ticks++;
  }
}

static int concurrent_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "conc");
  size_t n = 4u << 20;
  char *data = calloc(1, n);
  assert_int_equal(cio_file_write_all(p, data, n), 0);
  ticks = 0;
  cio_task *t = cio_create_task(ticker, NULL, NULL);
  int fd = cio_file_open(p, O_RDONLY, 0);
  ssize_t r;
  while ((r = cio_file_read(fd, data, 4096)) > 0) {
  }
  assert_int_equal(r, 0);
  close(fd);
  /* Cached data is read without suspending, but the cooperative budget
   * lets the ticker in at least every 128 reads: 1,024 reads. */
  assert_true(ticks >= 1024 / 128 - 1);
  cio_task_cancel(t, NULL);
  assert_int_equal(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  free(data);
  unlink(p);
  return 0;
}

static void test_loop_keeps_running(void **state) {
  (void)state;
  assert_int_equal(run_on(concurrent_main, NULL), 0);
}

/* A kernel that refuses io_uring: the loop falls back to epoll, silently,
 * and files still work (through the thread pool). */
static void test_fallback(void **state) {
  (void)state;
  setenv("CIO_URING_FAIL", "1", 1);
  cio_loop *loop;
  cio_loop_options o = {.backend = CIO_BACKEND_URING};
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_string_equal(cio_loop_backend(loop), "epoll");
  cio_loop_free(loop);
  unsetenv("CIO_URING_FAIL");
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_string_equal(cio_loop_backend(loop), have_uring ? "io_uring" : "epoll");
  cio_loop_free(loop);
}

static int setup_uring(void **state) {
  (void)state;
  backend = CIO_BACKEND_URING;
  return 0;
}
static int setup_epoll(void **state) {
  (void)state;
  backend = CIO_BACKEND_EPOLL;
  return 0;
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/cio_test_file.%d", (int)getpid());
  cio_loop *probe;
  cio_loop_options po = {.backend = CIO_BACKEND_URING};
  if (cio_loop_new(&probe, &po) == 0) {
    have_uring = strcmp(cio_loop_backend(probe), "io_uring") == 0;
    cio_loop_free(probe);
  }
  mkdir(dir, 0700);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_errors),
      cmocka_unit_test(test_cancel_mid_read),   cmocka_unit_test(test_loop_keeps_running),
  };
  int failed = cmocka_run_group_tests_name("file on io_uring", tests, setup_uring, NULL);
  failed += cmocka_run_group_tests_name("file on epoll (thread pool)", tests, setup_epoll, NULL);
  const struct CMUnitTest misc[] = {cmocka_unit_test(test_fallback)};
  failed += cmocka_run_group_tests_name("back end", misc, NULL, NULL);
  rmdir(dir);
  return failed;
}
