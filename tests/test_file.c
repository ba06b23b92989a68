/* Layer 8: file I/O (src/file.c), on both engines: every test runs once on a
 * loop with the io_uring back end (kernel operations) and once on epoll (the
 * thread pool), and must see the same results. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

/* On the thread pool, a cancelled call returns at once, maybe before its
 * job has even started; its fd may then be closed and the number reused by
 * another file, which the job must not touch: it works on its own dup. */
static int gate[2];
static int blocker(void *arg, void **result) {
  (void)arg, (void)result;
  char c;
  return read(gate[0], &c, 1) == 1 ? 0 : -EIO;
}
static int blocker_task(void *arg, void **result) {
  (void)arg, (void)result;
  return cio_to_thread(blocker, NULL, NULL);
}

static int reuse_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  if (strcmp(cio_loop_backend(cio_get_running_loop()), "epoll") != 0) return 0; /* (the ring) */
  assert_int_equal(pipe(gate), 0);
  int nthreads = cio_executor_max_threads(cio_get_default_executor());
  cio_task *b[64];
  assert_true(nthreads > 0 && nthreads <= 64);
  for (int i = 0; i < nthreads; i++) b[i] = cio_create_task(blocker_task, NULL, NULL);
  for (int i = 0; i < 10; i++) assert_int_equal(cio_yield(), 0); /* every thread busy */
  struct cancel_ctx c = {.rc = 1};
  assert_int_equal(pipe(c.pfd), 0);
  cio_task *t = cio_create_task(reader, &c, NULL);
  for (int i = 0; i < 10; i++) assert_int_equal(cio_yield(), 0); /* its job is queued */
  assert_int_equal(cio_task_cancel(t, "stop"), 1);
  assert_int_equal(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  /* The number goes to another file. */
  int old = c.pfd[0];
  close(old);
  char p[128];
  path_of(p, sizeof p, "reuse");
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* (every thread is busy) */
  assert_int_equal(pwrite(fd, "NEW!", 4, 0), 4);
  if (fd == old) {
    close(c.pfd[1]); /* the job's own read end then reads EOF */
    assert_int_equal(write(gate[1], "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
                           (size_t)nthreads), nthreads);
    for (int i = 0; i < nthreads; i++) {
      assert_int_equal(cio_await(b[i], NULL), 0);
      cio_task_unref(b[i]);
    }
    usleep(200000); /* the queued job runs now */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* untouched */
  } else {
    print_message("(the fd number was not reused: nothing to check)\n");
    close(c.pfd[1]);
    assert_int_equal(write(gate[1], "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
                           (size_t)nthreads), nthreads);
    for (int i = 0; i < nthreads; i++) {
      assert_int_equal(cio_await(b[i], NULL), 0);
      cio_task_unref(b[i]);
    }
  }
  close(fd);
  close(gate[0]);
  close(gate[1]);
  unlink(p);
  return 0;
}

static void test_cancel_then_reuse(void **state) {
  (void)state;
  assert_int_equal(run_on(reuse_main, NULL), 0);
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

/* A file operation in flight holds the virtual clock, on both engines: the
 * time it takes in the kernel or in a worker thread is real, and a virtual
 * timer must not fire past it. (On io_uring the clock used to jump after the
 * 5 ms grace of a watched fd: a file stream's close, bounded by a 30 s
 * timer, then dropped the bytes a slow write had not written yet.) The
 * write below waits for a thread that drains the pipe 100 ms later. */
#define HOLD_LEN (256u * 1024u)
static int hold_pipe[2];

static void *late_drain(void *arg) {
  (void)arg;
  usleep(100000);
  static char sink[65536];
  size_t got = 0;
  while (got < HOLD_LEN) {
    ssize_t r = read(hold_pipe[0], sink, sizeof sink);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return (void *)(uintptr_t)got;
}

static int hold_sleeper(void *arg, void **result) {
  (void)result;
  int rc = cio_sleep(1.0);
  if (rc == 0) *(bool *)arg = true;
  return rc;
}

static int clock_hold_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_int_equal(pipe2(hold_pipe, O_CLOEXEC), 0);
  static char data[HOLD_LEN];
  memset(data, 'h', sizeof data);
  bool fired = false;
  cio_task *t = cio_create_task(hold_sleeper, &fired, NULL);
  assert_int_equal(cio_yield(), 0); /* the sleeper's timer is armed */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, late_drain, NULL), 0);
  double t0 = now();
  assert_int_equal(cio_file_write(hold_pipe[1], data, sizeof data), (ssize_t)sizeof data);
  assert_false(fired);            /* the timer did not fire during the write */
  assert_true(now() == t0);       /* the clock did not move */
  void *got;
  assert_int_equal(pthread_join(th, &got), 0);
  assert_int_equal((size_t)(uintptr_t)got, HOLD_LEN);
  assert_int_equal(cio_sleep(1.0), 0); /* and then it moves as usual */
  assert_true(fired);
  assert_int_equal(cio_await(t, NULL), 0);
  cio_task_unref(t);
  close(hold_pipe[0]);
  close(hold_pipe[1]);
  return 0;
}

static void test_clock_holds(void **state) {
  (void)state;
  assert_int_equal(run_on(clock_hold_main, NULL), 0);
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


/* ---- files under streams (cio_stream_open_file) ------------------------------------------ */

/* Drop the file's pages from the page cache, so that reads must wait for the
 * disk (the transport's wait path, not the RWF_NOWAIT fast path). */
static void uncache(const char *p) {
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(fdatasync(fd), 0);
  assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  close(fd);
}

static int lines_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "lines");
  /* "line 0\n" ... , a 3,000-byte line, a record "a;b;", an unterminated end */
  char *text = malloc(1 << 16);
  size_t len = 0;
  for (int i = 0; i < 100; i++) len += (size_t)sprintf(text + len, "line %d\n", i);
  memset(text + len, 'L', 3000);
  len += 3000;
  text[len++] = '\n';
  len += (size_t)sprintf(text + len, "after\nrec1;rec2;0123456789tail");
  assert_int_equal(cio_file_write_all(p, text, len), 0);
  for (int round = 0; round < 2; round++) {
    if (round == 1) uncache(p); /* the second time from the disk */
    cio_stream *s;
    cio_stream_opts o = {.limit = 1024};
    assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, &o, &s), 0);
    assert_true(cio_stream_fd(s) >= 0);
    assert_false(cio_stream_can_write_eof(s)); /* read-only */
    const char *line;
    char want[32];
    for (int i = 0; i < 100; i++) {
      ssize_t n = cio_stream_readline(s, &line);
      int wn = sprintf(want, "line %d\n", i);
      assert_int_equal(n, wn);
      assert_memory_equal(line, want, (size_t)wn);
    }
    /* Over the limit: discarded through its "\n", as asyncio. */
    assert_int_equal(cio_stream_readline(s, &line), CIO_ELIMITOVERRUN);
    assert_int_equal(cio_stream_readline(s, &line), 6);
    assert_memory_equal(line, "after\n", 6);
    assert_int_equal(cio_stream_readuntil(s, ";", 1, &line), 5);
    assert_memory_equal(line, "rec1;", 5);
    assert_int_equal(cio_stream_readuntil(s, ";", 1, &line), 5);
    char ten[10];
    assert_int_equal(cio_stream_readexactly(s, ten, 10), 0);
    assert_memory_equal(ten, "0123456789", 10);
    /* No separator before the end: the data stays. */
    assert_int_equal(cio_stream_readuntil(s, ";", 1, &line), CIO_EINCOMPLETE);
    assert_int_equal(cio_stream_buffered(s), 4);
    assert_false(cio_stream_at_eof(s));
    assert_int_equal(cio_stream_readexactly(s, ten, 10), CIO_EINCOMPLETE);
    assert_int_equal(cio_stream_readline(s, &line), 4); /* the unterminated last line */
    assert_memory_equal(line, "tail", 4);
    assert_true(cio_stream_at_eof(s));
    assert_int_equal(cio_stream_readline(s, &line), 0);
    assert_int_equal(cio_stream_read(s, ten, 10), 0);
    assert_int_equal(cio_stream_close(s), 0);
    assert_int_equal(cio_stream_wait_closed(s), 0);
    cio_stream_free(s);
  }
  /* read_all, and read in big pieces (straight into the caller's buffer). */
  cio_stream *s;
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, &s), 0);
  char *all;
  size_t alen;
  assert_int_equal(cio_stream_read_all(s, &all, &alen), 0);
  assert_int_equal(alen, len);
  assert_memory_equal(all, text, len);
  free(all);
  cio_stream_free(s);
  /* Many lines from the disk: readahead and the wait path, line by line. */
  path_of(p, sizeof p, "many");
  size_t mlen = 64u * 65536;
  char *many = malloc(mlen);
  for (size_t i = 0; i < mlen; i++) many[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
  assert_int_equal(cio_file_write_all(p, many, mlen), 0);
  uncache(p);
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, &s), 0);
  const char *line;
  ssize_t n;
  long lines = 0;
  size_t off = 0;
  while ((n = cio_stream_readline(s, &line)) > 0) {
    assert_int_equal(n, 64);
    assert_memory_equal(line, many + off, 64);
    off += 64;
    lines++;
  }
  assert_int_equal(n, 0);
  assert_int_equal(lines, 65536);
  cio_stream_free(s);
  unlink(p);
  path_of(p, sizeof p, "lines");
  unlink(p);
  free(many);
  free(text);
  return 0;
}

static void test_stream_lines(void **state) {
  (void)state;
  assert_int_equal(run_on(lines_main, NULL), 0);
}

/* Cancelled while the file stream waits for the disk: nothing is lost, the
 * next read continues where the data is. */
struct scancel {
  cio_stream *s;
  int phase;
  int rc;
  char *got;
};

static int stream_reader(void *arg, void **result) {
  (void)result;
  struct scancel *c = arg;
  const char *line;
  ssize_t n = cio_stream_readline(c->s, &line); /* fills the buffer a little */
  if (n != 64) return -EIO;
  memcpy(c->got, line, 64);
  c->phase = 1;
  /* More than is buffered: waits for the disk, and is cancelled there. */
  c->rc = cio_stream_readexactly(c->s, c->got + 64, 1u << 20);
  return c->rc;
}

static int scancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "scancel");
  size_t len = 4u << 20;
  unsigned char *data = malloc(len);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = i % 64 == 63 ? '\n' : (unsigned char)('A' + x % 26);
  }
  assert_int_equal(cio_file_write_all(p, data, len), 0);
  uncache(p);
  struct scancel c = {.rc = 1, .got = malloc(len + 1)};
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, &c.s), 0);
  /* No readahead: what the first read did not fetch is not cached. */
  assert_int_equal(posix_fadvise(cio_stream_fd(c.s), 0, 0, POSIX_FADV_RANDOM), 0);
  cio_task *t = cio_create_task(stream_reader, &c, NULL);
  while (c.phase == 0) assert_int_equal(cio_yield(), 0);
  /* The reader went on into readexactly in the same step: it waits now. */
  assert_int_equal(c.rc, 1);
  size_t before = cio_stream_buffered(c.s);
  assert_true(before > 0 && before < (1u << 20));
  assert_int_equal(cio_task_cancel(t, "stop"), 1);
  assert_int_equal(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  assert_int_equal(c.rc, -ECANCELED);
  assert_int_equal(cio_stream_buffered(c.s), before); /* nothing consumed */
  /* The rest, in order, byte for byte. */
  size_t off = 64;
  ssize_t n;
  while ((n = cio_stream_read(c.s, c.got + off, 100000)) > 0) off += (size_t)n;
  assert_int_equal(n, 0);
  assert_int_equal(off, len);
  assert_memory_equal(c.got, data, len);
  assert_true(cio_stream_at_eof(c.s));
  cio_stream_free(c.s);
  free(c.got);
  free(data);
  unlink(p);
  return 0;
}

static void test_stream_cancel(void **state) {
  (void)state;
  assert_int_equal(run_on(scancel_main, NULL), 0);
}

/* A write stream: writes never suspend, drain bounds what is pending, close
 * writes everything before closing the fd. */
static int swrite_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "swrite");
  cio_stream *s;
  assert_int_equal(cio_stream_open_file(p, O_WRONLY | O_CREAT | O_TRUNC, 0600, NULL, &s), 0);
  assert_true(cio_stream_can_write_eof(s));
  char line[100];
  size_t total = 0;
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 100000; i++) {
    int n = snprintf(line, sizeof line, "%d %0*d\n", i, i % 50, 0);
    assert_int_equal(cio_stream_write(s, line, (size_t)n), 0);
    for (int k = 0; k < n; k++) h = (h ^ (unsigned char)line[k]) * 1099511628211ull;
    total += (size_t)n;
    if (i % 1000 == 0) assert_int_equal(cio_stream_drain(s), 0);
  }
  const char *more[] = {"x\n", "y\n"};
  assert_int_equal(cio_stream_writelines(s, more, 2), 0);
  h = (h ^ 'x') * 1099511628211ull, h = (h ^ '\n') * 1099511628211ull;
  h = (h ^ 'y') * 1099511628211ull, h = (h ^ '\n') * 1099511628211ull;
  total += 4;
  assert_int_equal(cio_stream_read(s, line, 1), -EBADF); /* write-only */
  assert_int_equal(cio_stream_close(s), 0);
  assert_int_equal(cio_stream_write(s, "z", 1), -EPIPE);
  assert_int_equal(cio_stream_wait_closed(s), 0);
  cio_stream_free(s);
  char *back;
  size_t len;
  assert_int_equal(cio_file_read_all(p, &back, &len), 0);
  assert_int_equal(len, total);
  assert_true(fnv((unsigned char *)back, len) == h);
  free(back);

  /* O_APPEND, and write_eof: everything written, the reading side goes on. */
  assert_int_equal(cio_stream_open_file(p, O_RDWR | O_APPEND, 0, NULL, &s), 0);
  assert_int_equal(cio_stream_write(s, "appended\n", 9), 0);
  assert_int_equal(cio_stream_write_eof(s), 0);
  assert_int_equal(cio_stream_write(s, "no", 2), -EPIPE);
  const char *l;
  assert_int_equal(cio_stream_readline(s, &l), 4); /* reading starts at the start */
  assert_memory_equal(l, "0 0\n", 4);
  cio_stream_free(s); /* no close: nothing was pending after write_eof's flush */
  assert_int_equal(cio_file_read_all(p, &back, &len), 0);
  /* (write_eof does not wait: the free may have come first only if the
   * writer was still busy; a close + wait_closed is the way to be sure) */
  assert_true(len == total || (len == total + 9 && memcmp(back + total, "appended\n", 9) == 0));
  free(back);

  /* The reliable way. */
  assert_int_equal(cio_stream_open_file(p, O_WRONLY | O_APPEND, 0, NULL, &s), 0);
  assert_int_equal(cio_stream_write(s, "end\n", 4), 0);
  assert_int_equal(cio_stream_close(s), 0);
  assert_int_equal(cio_stream_wait_closed(s), 0);
  cio_stream_free(s);
  assert_int_equal(cio_file_read_all(p, &back, &len), 0);
  assert_memory_equal(back + len - 4, "end\n", 4);
  free(back);

  /* Freed or aborted while the background writer is busy: no crash, no
   * leak (ASan), the writer lets go of the fd; the bytes are dropped. */
  static char mib[1 << 20];
  for (int how = 0; how < 2; how++) {
    assert_int_equal(cio_stream_open_file(p, O_WRONLY | O_TRUNC, 0, NULL, &s), 0);
    assert_int_equal(cio_stream_write(s, mib, sizeof mib), 0);
    assert_true(cio_stream_write_buffer_size(s) > 0); /* pending */
    if (how == 0) {
      cio_stream_free(s);
    } else {
      assert_int_equal(cio_stream_abort(s), 0);
      assert_int_equal(cio_stream_drain(s), -ECONNRESET);
      cio_stream_free(s);
    }
    for (int i = 0; i < 50; i++) assert_int_equal(cio_sleep(0.001), 0);
  }
  unlink(p);
  return 0;
}

static void test_stream_write(void **state) {
  (void)state;
  assert_int_equal(run_on(swrite_main, NULL), 0);
}

/* A write that fails in the background (past RLIMIT_FSIZE: -EFBIG) is
 * returned by wait_closed. */
static int swerr_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "swerr");
  cio_stream *s;
  assert_int_equal(cio_stream_open_file(p, O_WRONLY | O_CREAT | O_TRUNC, 0600, NULL, &s), 0);
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 1u << 20;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  static char chunk[65536];
  memset(chunk, 'e', sizeof chunk);
  int rc = 0;
  for (int i = 0; i < 64 && rc == 0; i++) {
    rc = cio_stream_write(s, chunk, sizeof chunk);
    if (rc == 0) rc = cio_stream_drain(s);
  }
  if (rc == 0) {
    assert_int_equal(cio_stream_close(s), 0);
    rc = cio_stream_wait_closed(s);
  }
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, -EFBIG);
  assert_int_equal(cio_stream_write(s, "x", 1), -EFBIG);
  cio_stream_free(s);
  unlink(p);
  return 0;
}

static void test_stream_write_error(void **state) {
  (void)state;
  assert_int_equal(run_on(swerr_main, NULL), 0);
}

static int sbad_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s = (cio_stream *)1;
  char p[128];
  path_of(p, sizeof p, "missing");
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, &s), -ENOENT);
  assert_null(s);
  assert_int_equal(cio_stream_open_file(dir, O_RDONLY, 0, NULL, &s), -EISDIR);
  assert_non_null(strstr(cio_errmsg(), "directory"));
  assert_int_equal(cio_stream_open_file(dir, O_WRONLY, 0, NULL, &s), -EISDIR);
  assert_int_equal(cio_stream_open_file(NULL, O_RDONLY, 0, NULL, &s), -EINVAL);
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, NULL), -EINVAL);
  assert_int_equal(cio_stream_open_file(p, O_RDONLY | O_DIRECT, 0, NULL, &s), -EINVAL);
  cio_stream_opts bad = {.write_high = 1, .write_low = 2};
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, &bad, &s), -EINVAL);
  /* A closed fd, and a directory's fd. */
  path_of(p, sizeof p, "bad");
  assert_int_equal(cio_file_write_all(p, "data\n", 5), 0);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  close(fd);
  assert_int_equal(cio_stream_from_fd(fd, NULL, &s), -EBADF);
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_int_equal(cio_stream_from_fd(fd, NULL, &s), -EISDIR);
  close(fd);
  /* A read-only file refuses writes; from an fd, reading starts at its offset. */
  fd = open(p, O_RDONLY | O_CLOEXEC);
  assert_int_equal(lseek(fd, 2, SEEK_SET), 2);
  assert_int_equal(cio_stream_from_fd(fd, NULL, &s), 0);
  assert_int_equal(cio_stream_write(s, "x", 1), -EBADF);
  assert_int_equal(cio_stream_drain(s), -EBADF);
  assert_int_equal(cio_stream_write_eof(s), -ENOTSUP);
  assert_false(cio_stream_is_tls(s));
  assert_int_equal(cio_stream_start_tls(s, (struct cio_tls_context *)1, "x"), -ENOTSUP);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  assert_int_equal(cio_stream_peername(s, (struct sockaddr *)&ss, &sl), -ENOTSOCK);
  const char *line;
  assert_int_equal(cio_stream_readline(s, &line), 3);
  assert_memory_equal(line, "ta\n", 3);
  /* Closed under a reader: end of stream. */
  assert_int_equal(cio_stream_abort(s), 0);
  assert_int_equal(cio_stream_readline(s, &line), 0);
  assert_true(cio_stream_at_eof(s));
  assert_int_equal(cio_stream_fd(s), -EBADF);
  cio_stream_free(s);
  unlink(p);
  return 0;
}

static void test_stream_bad_input(void **state) {
  (void)state;
  assert_int_equal(run_on(sbad_main, NULL), 0);
  cio_stream *s;
  assert_int_equal(cio_stream_open_file("/nonexistent", O_RDONLY, 0, NULL, &s), CIO_ENOTASK);
}

/* ---- 1 GiB, checksummed ---------------------------------------------------------------- */

/* A checksum of a byte stream cut anywhere: 8-byte words, a partial word
 * carried over. */
struct ck {
  uint64_t h, acc;
  size_t n;
};

static void ck_word(struct ck *c, uint64_t w) {
  c->h = (c->h ^ w) * 0x9E3779B97F4A7C15ull;
  c->h ^= c->h >> 29;
}

static void ck_add(struct ck *c, const unsigned char *p, size_t len) {
  while (len && (c->n & 7)) {
    c->acc |= (uint64_t)*p++ << (8 * (c->n++ & 7));
    len--;
    if (!(c->n & 7)) {
      ck_word(c, c->acc);
      c->acc = 0;
    }
  }
  for (; len >= 8; p += 8, len -= 8, c->n += 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    ck_word(c, w);
  }
  while (len--) c->acc |= (uint64_t)*p++ << (8 * (c->n++ & 7));
}

static uint64_t ck_end(struct ck *c) {
  if (c->n & 7) ck_word(c, c->acc);
  ck_word(c, c->n);
  return c->h;
}

static size_t big_size;

static int big_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char p[128];
  path_of(p, sizeof p, "gib");
  size_t chunk = 1u << 20;
  uint64_t *buf = malloc(chunk);
  unsigned char *rbuf = malloc(chunk);
  /* Write it in 1 MiB chunks of a xorshift stream. */
  int fd = cio_file_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  struct ck w = {0};
  uint64_t x = 0x2545F4914F6CDD1Dull;
  for (size_t done = 0; done < big_size; done += chunk) {
    for (size_t i = 0; i < chunk / 8; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = x;
    }
    ck_add(&w, (unsigned char *)buf, chunk);
    assert_int_equal(cio_file_write(fd, buf, chunk), chunk);
  }
  assert_int_equal(cio_file_close(fd), 0);
  uint64_t want = ck_end(&w);
  /* Back with cio_file_read. */
  fd = cio_file_open(p, O_RDONLY, 0);
  assert_true(fd >= 0);
  struct ck r = {0};
  ssize_t n;
  while ((n = cio_file_read(fd, rbuf, chunk)) > 0) ck_add(&r, rbuf, (size_t)n);
  assert_int_equal(n, 0);
  assert_int_equal(cio_file_close(fd), 0);
  assert_int_equal(r.n, big_size);
  assert_true(ck_end(&r) == want);
  /* And through a file stream: reads of every size, and readexactly. */
  cio_stream *s;
  assert_int_equal(cio_stream_open_file(p, O_RDONLY, 0, NULL, &s), 0);
  struct ck st = {0};
  size_t sz = 1;
  for (;;) {
    if (sz % 3 == 0 && cio_stream_readexactly(s, rbuf, sz) == 0) {
      n = (ssize_t)sz;
    } else {
      n = cio_stream_read(s, rbuf, sz);
      if (n <= 0) break;
    }
    ck_add(&st, rbuf, (size_t)n);
    sz = sz * 7 % chunk + 1; /* 1 byte to 1 MiB */
  }
  assert_int_equal(n, 0);
  assert_true(cio_stream_at_eof(s));
  cio_stream_free(s);
  assert_int_equal(st.n, big_size);
  assert_true(ck_end(&st) == want);
  unlink(p);
  free(buf);
  free(rbuf);
  return 0;
}

static void test_big_round_trip(void **state) {
  (void)state;
  struct statvfs v;
  big_size = getenv("CIO_TEST_QUICK") ? 64u << 20 : 1u << 30;
  if (statvfs(dir, &v) == 0 && (double)v.f_bavail * (double)v.f_frsize < 3.0 * (1u << 30)) {
    print_message("[  SKIPPED ] the 1 GiB round trip: less than 3 GiB free under %s\n", dir);
    skip();
  }
  /* On the back end of the environment (CIO_BACKEND): tools/test.sh runs
   * it on epoll, tools/test.sh uring on io_uring. */
  cio_loop_options o = {.virtual_time = true};
  assert_int_equal(cio_run_opts(big_main, NULL, NULL, &o), 0);
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
      cmocka_unit_test(test_stream_lines),      cmocka_unit_test(test_stream_cancel),
      cmocka_unit_test(test_stream_write),      cmocka_unit_test(test_stream_write_error),
      cmocka_unit_test(test_stream_bad_input),  cmocka_unit_test(test_cancel_then_reuse),
      cmocka_unit_test(test_clock_holds),
  };
  int failed = cmocka_run_group_tests_name("file on io_uring", tests, setup_uring, NULL);
  failed += cmocka_run_group_tests_name("file on epoll (thread pool)", tests, setup_epoll, NULL);
  const struct CMUnitTest misc[] = {cmocka_unit_test(test_fallback),
                                    cmocka_unit_test(test_big_round_trip)};
  failed += cmocka_run_group_tests_name("back end", misc, NULL, NULL);
  rmdir(dir);
  return failed;
}
