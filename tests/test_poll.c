/* Layer 3: the poller seam's io_uring back end (src/poll_uring.c), checked
 * against what the layers above expect of epoll. The whole suite also runs on
 * it (tools/test.sh uring); these are the cases particular to it. */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "io_test_util.h"

static int run_uring(cio_task_fn fn, void *arg) {
  cio_loop_options o = {.backend = CIO_BACKEND_URING};
  return cio_run_opts(fn, arg, NULL, &o);
}

/* ---- a cancelled wait whose readiness arrives in the same iteration ---------- */

struct racer {
  int fd;
  int rc;
};

static int racing_reader(void *arg, void **result) {
  (void)result;
  struct racer *r = arg;
  char c;
  r->rc = (int)cio_sock_recv_into(r->fd, &c, 1);
  return 0;
}

static int race_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  CHECK(strcmp(cio_loop_backend(cur_loop()), "io_uring") == 0);
  for (int round = 0; round < 200; round++) {
    int sv[2];
    CHECK_RC(pair(sv), 0);
    struct racer r = {.fd = sv[0], .rc = 1};
    cio_task *t = cio_create_task(racing_reader, &r, NULL);
    CHECK_RC(cio_yield(), 0); /* the reader waits: a poll request is queued */
    for (int i = 0; i < round % 3; i++) CHECK_RC(cio_yield(), 0);
    /* Data arrives, and the reader is cancelled before it resumes: the
     * poll may complete in the very iteration of the cancel. */
    CHECK_RC(send(sv[1], "xy", 2, 0), 2);
    cio_task_cancel(t, NULL);
    if (cio_await(t, NULL)) {} /* ends cancelled either way (cio's rule) */
    cio_task_unref(t);
    CHECK(r.rc == -ECANCELED || r.rc == 1);
    /* Not a byte lost: the next read gets what the cancelled one did not. */
    char buf[4];
    ssize_t n = cio_sock_recv_into(sv[0], buf, sizeof buf);
    CHECK_RC(n, r.rc == 1 ? 1 : 2);
    CHECK_RC(cio_fd_close(sv[0]), 0);
    CHECK_RC(cio_fd_close(sv[1]), 0);
  }
  return 0;
}

static void test_cancel_races_readiness(void **state) {
  (void)state;
  int rc = run_uring(race_main, NULL);
  if (rc) fprintf(stderr, "%s\n", cio_errmsg());
  assert_int_equal(rc, 0);
}

/* ---- level-triggered, as epoll ---------------------------------------------------- */

static int calls;
static void on_readable(void *arg) {
  (void)arg;
  calls++;
}

static int level_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  CHECK_RC(send(sv[1], "z", 1, 0), 1);
  calls = 0;
  CHECK_RC(cio_add_reader(cur_loop(), sv[0], on_readable, NULL), 0);
  for (int i = 0; i < 20; i++) CHECK_RC(cio_sleep(0.001), 0);
  /* Unread data is reported again and again (not once, as an edge would). */
  CHECK(calls >= 10);
  CHECK_RC(cio_remove_reader(cur_loop(), sv[0]), 1);
  int before = calls;
  for (int i = 0; i < 5; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(calls, before); /* removed: not called again */
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_level_triggered(void **state) {
  (void)state;
  assert_int_equal(run_uring(level_main, NULL), 0);
}

/* ---- many waits at once: more requests than the submission ring holds ---------- */

struct many {
  int n;
  int (*sv)[2];
  int done;
};

static int many_reader(void *arg, void **result) {
  (void)result;
  int *fds = arg;
  char buf[8];
  ssize_t n = cio_sock_recv_into(fds[0], buf, sizeof buf);
  if (n != 3) return cio_raise(CIO_ERUNTIME, "recv gave %zd", n);
  return cio_sock_sendall(fds[0], buf, 3, NULL);
}

static int many_main(void *arg, void **result) {
  (void)result;
  struct many *m = arg;
  cio_task **ts = calloc((size_t)m->n, sizeof *ts);
  for (int i = 0; i < m->n; i++) ts[i] = cio_create_task(many_reader, m->sv[i], NULL);
  CHECK_RC(cio_yield(), 0); /* every reader armed in one iteration: n > 256 entries */
  for (int i = 0; i < m->n; i++) CHECK_RC(send(m->sv[i][1], "abc", 3, 0), 3);
  for (int i = 0; i < m->n; i++) {
    CHECK_RC(cio_await(ts[i], NULL), 0);
    cio_task_unref(ts[i]);
    char buf[8];
    CHECK_RC(cio_sock_recv_into(m->sv[i][1], buf, sizeof buf), 3);
    m->done++;
  }
  for (int i = 0; i < m->n; i++) {
    CHECK_RC(cio_fd_close(m->sv[i][0]), 0);
    CHECK_RC(cio_fd_close(m->sv[i][1]), 0);
  }
  free(ts);
  return 0;
}

static void test_more_waits_than_ring_entries(void **state) {
  (void)state;
  rlim_t lim = raise_nofile(5000);
  struct many m = {.n = lim > 2100 ? 2000 : (int)(lim - 100) / 2};
  m.sv = calloc((size_t)m.n, sizeof *m.sv);
  for (int i = 0; i < m.n; i++) assert_int_equal(pair(m.sv[i]), 0);
  assert_int_equal(run_uring(many_main, &m), 0);
  assert_int_equal(m.done, m.n);
  free(m.sv);
}

/* ---- the loop's own fd ------------------------------------------------------------- */

static int own_fd_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  /* The ring's fd is the loop's own: refused as epoll's is. */
  CHECK_RC(cio_wait_readable(cur_loop()->poller.epfd), -EINVAL);
  CHECK_RC(cio_wait_readable(cur_loop()->poller.wakefd), -EINVAL);
  return 0;
}

static void test_own_fds_refused(void **state) {
  (void)state;
  assert_int_equal(run_uring(own_fd_main, NULL), 0);
}

/* ---- a regular file cannot be polled, as with epoll ---------------------------- */

static int regular_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK_RC(cio_wait_readable(fd), -EPERM);
  close(fd);
  return 0;
}

static void test_regular_file_refused(void **state) {
  (void)state;
  assert_int_equal(run_uring(regular_main, NULL), 0);
}

int main(void) {
  cio_loop *probe;
  cio_loop_options po = {.backend = CIO_BACKEND_URING};
  if (cio_loop_new(&probe, &po) == 0) {
    bool have = strcmp(cio_loop_backend(probe), "io_uring") == 0;
    cio_loop_free(probe);
    if (!have) {
      printf("io_uring is not available here (not built, or refused by the kernel): skipped\n");
      return 0;
    }
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cancel_races_readiness),
      cmocka_unit_test(test_level_triggered),
      cmocka_unit_test(test_more_waits_than_ring_entries),
      cmocka_unit_test(test_own_fds_refused),
      cmocka_unit_test(test_regular_file_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
