/* Helpers for the I/O and executor tests (test_io.c, test_sock.c,
 * test_executor.c).
 *
 * Task bodies must not use cmocka's assert_* (a failed assert longjmps off the
 * task's stack); they use CHECK / CHECK_RC, which return an error with a
 * message from the task, and the test asserts the task's outcome. */
#ifndef CIO_IO_TEST_UTIL_H
#define CIO_IO_TEST_UTIL_H

#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cio_test.h"
#include "io.h"   /* internal: cio__io_ctl_count */
#include "loop.h" /* internal: io_watchers, polls, jobs_in_flight */

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond))                                                                       \
      return cio_raise(CIO_ERUNTIME, "%s:%d: check failed: %s", __FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_RC(expr, expected)                                                       \
  do {                                                                                 \
    long long got_ = (long long)(expr), exp_ = (long long)(expected);                  \
    if (got_ != exp_)                                                                  \
      return cio_raise(CIO_ERUNTIME, "%s:%d: %s gave %lld (%s: %s), expected %lld (%s)", \
                       __FILE__, __LINE__, #expr, got_, cio_err_name((int)got_),        \
                       cio_errmsg(), exp_, cio_err_name((int)exp_));                    \
  } while (0)

/* Run fn as the main task on a loop with the real clock. */
static inline int run_real(cio_task_fn fn, void *arg) { return cio_run(fn, arg, NULL); }

static inline cio_loop *cur_loop(void) { return cio_get_running_loop(); }

static inline double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A non-blocking Unix stream socket pair. */
static inline int pair(int sv[2]) {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
}

/* The port a bound socket got. */
static inline int local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A TCP listener on 127.0.0.1 with an ephemeral port, from a task. */
static inline int listen_local(int backlog, char port[8]) {
  int fd = cio_tcp_listen("127.0.0.1", "0", backlog);
  if (fd >= 0) snprintf(port, 8, "%d", local_port(fd) & 0xffff);
  return fd;
}

/* Make room for many descriptors: raise the soft limit to the hard one. */
static inline rlim_t raise_nofile(rlim_t want) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/* A deadline for the current task built from a timer and cio_task_cancel
 * (timeout scopes live on another branch): deadline_end turns the deadline's
 * own cancellation into -ETIMEDOUT. */
struct deadline {
  cio_task *task;
  cio_handle *h;
  bool fired;
};

static inline void deadline_fire(void *p) {
  struct deadline *d = p;
  d->fired = true;
  cio_task_cancel(d->task, "deadline");
}

static inline int deadline_start(struct deadline *d, double seconds) {
  d->task = cio_current_task();
  d->fired = false;
  return cio_call_later(cur_loop(), seconds, deadline_fire, d, &d->h);
}

static inline int deadline_end(struct deadline *d, int rc) {
  cio_handle_cancel(d->h);
  cio_handle_unref(d->h);
  if (d->fired) {
    cio_task_uncancel(d->task);
    if (rc == -ECANCELED) return cio_raise(-ETIMEDOUT, "deadline passed");
  }
  return rc;
}

/* Cancel `task` after `delay` seconds. */
struct canceller {
  cio_task *task;
};
static inline void cancel_cb(void *p) { cio_task_cancel(((struct canceller *)p)->task, NULL); }

/* FNV-1a, order-sensitive: a checksum that notices lost or swapped bytes. */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* Deterministic bytes for connection `id`, offset `off`. */
static inline void fill_pattern(unsigned char *buf, size_t n, uint32_t id, size_t off) {
  for (size_t i = 0; i < n; i++) {
    uint32_t x = (uint32_t)(off + i) * 2654435761u ^ id * 40503u;
    buf[i] = (unsigned char)(x >> 13);
  }
}

#endif
