/* Layer 8, fd readiness (src/io.c): waits from tasks, add_reader & co.,
 * cio_fd_close, the registration kept between waits. */
#include "io_test_util.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- waits from tasks ---------------------------------------------------------- */

struct writer_arg {
  int fd;
  double delay;
  const char *data;
};

static int delayed_writer(void *p, void **result) {
  (void)result;
  struct writer_arg *w = p;
  int rc = cio_sleep(w->delay);
  if (rc < 0) return rc;
  trace("write@%.2f", now());
  CHECK(write(w->fd, w->data, strlen(w->data)) == (ssize_t)strlen(w->data));
  return 0;
}

static int wait_readable_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  struct writer_arg w = {sv[1], 0.25, "hi"};
  cio_task *t = cio_create_task(delayed_writer, &w, NULL);
  CHECK(t);
  CHECK_RC(cio_wait_readable(sv[0]), 0);
  trace("readable@%.2f", now());
  char buf[8];
  CHECK_RC(read(sv[0], buf, sizeof buf), 2);
  CHECK_RC(cio_await(t, NULL), 0);
  cio_task_unref(t);
  CHECK_RC(cur_loop()->io_watchers, 0);
  /* A socket with room in its send buffer is writable at once (next poll). */
  CHECK_RC(cio_wait_writable(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_wait_readable_writable(void **state) {
  (void)state;
  assert_code(run_virtual(wait_readable_body, NULL), 0);
  assert_trace("write@0.25 readable@0.25");
}

/* The registration stays between waits: a hundred wait/read rounds cost one
 * epoll_ctl, not one per wait. */
struct pingpong {
  int fd;
  int rounds;
};

static int pinger(void *p, void **result) {
  (void)result;
  struct pingpong *pp = p;
  for (int i = 0; i < pp->rounds; i++) {
    CHECK(write(pp->fd, "x", 1) == 1);
    int rc = cio_yield();
    if (rc < 0) return rc;
  }
  return 0;
}

static int no_ctl_per_wait_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  struct pingpong pp = {sv[1], 100};
  cio_task *t = cio_create_task(pinger, &pp, NULL);
  CHECK(t);
  int got = 0;
  unsigned long ctl0 = cio__io_ctl_count(cur_loop());
  while (got < pp.rounds) {
    char buf[128];
    ssize_t n = cio_sock_recv_into(sv[0], buf, sizeof buf);
    CHECK(n > 0);
    got += (int)n;
  }
  unsigned long ctls = cio__io_ctl_count(cur_loop()) - ctl0;
  CHECK_RC(cio_await(t, NULL), 0);
  cio_task_unref(t);
  /* One to register; the rest of the waits reuse it. */
  if (ctls > 2) return cio_raise(CIO_ERUNTIME, "%lu epoll_ctl calls for 100 waits", ctls);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_registration_kept_between_waits(void **state) {
  (void)state;
  assert_code(run_virtual(no_ctl_per_wait_body, NULL), 0);
}

/* An interest nobody wants any more is dropped the first time it fires, so
 * a readable fd nobody reads does not make the loop spin. */
static int idle_fd_no_spin_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_RC(cio_wait_readable(sv[0]), 0);
  /* Not read: sv[0] stays readable. Sleep 100 ms of real time. */
  uint64_t polls0 = cur_loop()->polls;
  double cpu0 = cpu_seconds();
  CHECK_RC(cio_sleep(0.1), 0);
  uint64_t polls = cur_loop()->polls - polls0;
  double cpu = cpu_seconds() - cpu0;
  if (polls > 5) return cio_raise(CIO_ERUNTIME, "%llu polls while idle", (unsigned long long)polls);
  CHECK(cpu < 0.05);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_idle_fd_does_not_spin(void **state) {
  (void)state;
  assert_code(run_real(idle_fd_no_spin_body, NULL), 0);
}

/* One reader per fd: a second task gets -EBUSY, not a silent replacement. */
static int wait_reader(void *p, void **result) {
  (void)result;
  return cio_wait_readable(*(int *)p);
}

static int busy_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_task *a = cio_create_task(wait_reader, &sv[0], NULL);
  CHECK(a);
  CHECK_RC(cio_yield(), 0); /* a is waiting now */
  CHECK_RC(cur_loop()->io_watchers, 1);
  CHECK_RC(cio_wait_readable(sv[0]), -EBUSY);
  CHECK(strstr(cio_errmsg(), "another task"));
  CHECK_RC(cio_add_reader(cur_loop(), sv[0], (cio_callback_fn)abort, NULL), -EBUSY);
  /* The writer slot is separate. */
  CHECK_RC(cio_wait_writable(sv[0]), 0);
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_RC(cio_await(a, NULL), 0);
  cio_task_unref(a);
  CHECK_RC(cur_loop()->io_watchers, 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_one_reader_per_fd(void **state) {
  (void)state;
  assert_code(run_virtual(busy_body, NULL), 0);
}

/* Cancelling a waiting task removes its wait; the fd stays usable. */
static int cancel_wait_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_task *a = cio_create_task(wait_reader, &sv[0], NULL);
  CHECK(a);
  struct canceller c = {a};
  cio_handle *h;
  CHECK_RC(cio_call_later(cur_loop(), 0.5, cancel_cb, &c, &h), 0);
  cio_handle_unref(h);
  CHECK_RC(cio_await(a, NULL), -ECANCELED);
  CHECK(now() == 0.5);
  cio_task_unref(a);
  CHECK_RC(cur_loop()->io_watchers, 0);
  /* A timeout built from a timer gives -ETIMEDOUT, and also cleans up. */
  struct deadline d;
  CHECK_RC(deadline_start(&d, 0.25), 0);
  CHECK_RC(deadline_end(&d, cio_wait_readable(sv[0])), -ETIMEDOUT);
  CHECK(now() == 0.75);
  CHECK_RC(cur_loop()->io_watchers, 0);
  /* The next waiter gets the data. */
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_RC(cio_wait_readable(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_cancel_removes_wait(void **state) {
  (void)state;
  assert_code(run_virtual(cancel_wait_body, NULL), 0);
  assert_time(0.75);
}

/* A hang-up wakes a reader: the next read returns 0 instead of hanging. */
static int hangup_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_task *a = cio_create_task(wait_reader, &sv[0], NULL);
  CHECK(a);
  CHECK_RC(cio_sleep(0.1), 0);
  close(sv[1]); /* never watched: a plain close is fine */
  CHECK_RC(cio_await(a, NULL), 0);
  cio_task_unref(a);
  char c;
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  return 0;
}

static void test_hangup_wakes_reader(void **state) {
  (void)state;
  assert_code(run_virtual(hangup_body, NULL), 0);
}

/* cio_fd_close wakes every task waiting on the fd with -EBADF. */
static int wait_writer_full(void *p, void **result) {
  (void)result;
  int fd = *(int *)p;
  /* Fill the send buffer, then wait for room. */
  char buf[4096] = {0};
  while (send(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  return cio_wait_writable(fd);
}

static int fd_close_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_task *r = cio_create_task(wait_reader, &sv[0], NULL);
  cio_task *w = cio_create_task(wait_writer_full, &sv[0], NULL);
  CHECK(r && w);
  CHECK_RC(cio_sleep(0.1), 0);
  CHECK_RC(cur_loop()->io_watchers, 2);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_await(r, NULL), -EBADF);
  CHECK(strstr(cio_errmsg(), "cio_fd_close"));
  CHECK_RC(cio_await(w, NULL), -EBADF);
  cio_task_unref(r);
  cio_task_unref(w);
  CHECK_RC(cur_loop()->io_watchers, 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  /* Closing twice: -EBADF from close(2). */
  CHECK_RC(cio_fd_close(sv[1]), -EBADF);
  return 0;
}

static void test_fd_close_wakes_waiters(void **state) {
  (void)state;
  assert_code(run_virtual(fd_close_body, NULL), 0);
}

/* cio_fd_forget: the same wake-up, the fd stays open. */
static int fd_forget_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_task *r = cio_create_task(wait_reader, &sv[0], NULL);
  CHECK(r);
  CHECK_RC(cio_yield(), 0);
  CHECK_RC(cio_fd_forget(sv[0]), 0);
  CHECK_RC(cio_await(r, NULL), -EBADF);
  cio_task_unref(r);
  CHECK(fcntl(sv[0], F_GETFD) >= 0); /* still open */
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_RC(cio_wait_readable(sv[0]), 0); /* and usable again */
  CHECK_RC(cio_fd_forget(-1), -EBADF);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_fd_forget(void **state) {
  (void)state;
  assert_code(run_virtual(fd_forget_body, NULL), 0);
}

/* Misuse gets documented codes. */
static int misuse_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  CHECK_RC(cio_wait_readable(-1), -EBADF);
  CHECK_RC(cio_wait_writable(-5), -EBADF);
  int sv[2];
  CHECK_RC(pair(sv), 0);
  close(sv[1]);
  CHECK_RC(cio_wait_writable(sv[1]), -EBADF); /* closed */
  close(sv[0]);
  /* A regular file cannot be polled. */
  char path[] = "/tmp/cio_test_io_XXXXXX";
  int f = mkstemp(path);
  CHECK(f >= 0);
  unlink(path);
  CHECK_RC(cio_wait_readable(f), -EPERM);
  CHECK_RC(cio_add_reader(cur_loop(), f, (cio_callback_fn)abort, NULL), -EPERM);
  close(f);
  CHECK_RC(cio_add_reader(NULL, 0, (cio_callback_fn)abort, NULL), -EINVAL);
  CHECK_RC(cio_add_reader(cur_loop(), 0, NULL, NULL), -EINVAL);
  CHECK_RC(cio_add_writer(cur_loop(), -1, (cio_callback_fn)abort, NULL), -EBADF);
  CHECK_RC(cio_remove_reader(NULL, 0), -EINVAL);
  CHECK_RC(cio_remove_reader(cur_loop(), 12345), 0);
  CHECK_RC(cio_remove_writer(cur_loop(), -1), 0);
  /* The loop's own descriptors are not for waiting on. */
  CHECK_RC(cio_wait_readable(cur_loop()->poller.wakefd), -EINVAL);
  CHECK_RC(cio_add_reader(cur_loop(), cur_loop()->poller.epfd, (cio_callback_fn)abort, NULL),
           -EINVAL);
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_misuse(void **state) {
  (void)state;
  assert_code(run_virtual(misuse_body, NULL), 0);
  /* Outside a task. */
  assert_code(cio_wait_readable(0), CIO_ENOTASK);
  assert_code(cio_wait_writable(0), CIO_ENOTASK);
  assert_code(cio_fd_close(-1), -EBADF);
  /* Without a running loop, cio_fd_close is close(). */
  int sv[2];
  assert_int_equal(pair(sv), 0);
  assert_code(cio_fd_close(sv[0]), 0);
  assert_code(cio_fd_close(sv[1]), 0);
  assert_code(cio_fd_set_nonblocking(-1, true), -EBADF);
}

/* ---- callbacks -------------------------------------------------------------------- */

struct cbstate {
  int fd;
  int calls;
  int limit;
  const char *name;
};

static void on_readable(void *p) {
  struct cbstate *s = p;
  s->calls++;
  trace("%s%d", s->name, s->calls);
  if (s->calls == s->limit) {
    char buf[16];
    ssize_t n = read(s->fd, buf, sizeof buf); /* drain: stops being readable */
    (void)n;
  }
}

static int add_reader_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cur_loop();
  int sv[2];
  CHECK_RC(pair(sv), 0);
  struct cbstate a = {sv[0], 0, 3, "a"};
  CHECK_RC(cio_add_reader(loop, sv[0], on_readable, &a), 0);
  CHECK_RC(loop->io_watchers, 1);
  CHECK(write(sv[1], "x", 1) == 1);
  /* Level-triggered: called on every poll while readable (3 times, then
   * the callback drains the socket). A task that only yields keeps the loop
   * busy, and a busy loop polls every 61 passes: sleep instead. */
  for (int i = 0; i < 6; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(a.calls, 3);
  /* add replaces: b gets the next event, a nothing. */
  struct cbstate b = {sv[0], 0, 1, "b"};
  CHECK_RC(cio_add_reader(loop, sv[0], on_readable, &b), 0);
  CHECK_RC(loop->io_watchers, 1);
  CHECK(write(sv[1], "y", 1) == 1);
  for (int i = 0; i < 3; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(b.calls, 1);
  CHECK_RC(a.calls, 3);
  /* remove says whether something was registered. */
  CHECK_RC(cio_remove_reader(loop, sv[0]), 1);
  CHECK_RC(cio_remove_reader(loop, sv[0]), 0);
  CHECK_RC(loop->io_watchers, 0);
  CHECK(write(sv[1], "z", 1) == 1);
  for (int i = 0; i < 3; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(b.calls, 1);
  /* With the callback gone a task may wait to read. */
  CHECK_RC(cio_wait_readable(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_add_remove_reader(void **state) {
  (void)state;
  assert_code(run_virtual(add_reader_body, NULL), 0);
  assert_trace("a1 a2 a3 b1");
}

/* A writer callback, removed from inside itself. And two reader callbacks
 * queued by the same poll, each removing the other: only the first runs (a
 * call already queued is cancelled with its callback). */
struct wstate {
  cio_loop *loop;
  int fd;
  int calls;
};

static void on_writable(void *p) {
  struct wstate *s = p;
  s->calls++;
  int r = cio_remove_writer(s->loop, s->fd);
  trace("w%d removed=%d", s->calls, r);
}

struct rival {
  cio_loop *loop;
  int self, other;
  int *ran;
};

static void rival_cb(void *p) {
  struct rival *r = p;
  (*r->ran)++;
  trace("removed-other=%d", cio_remove_reader(r->loop, r->other));
  cio_remove_reader(r->loop, r->self);
}

static int add_writer_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cur_loop();
  int sv[2], sw[2];
  CHECK_RC(pair(sv), 0);
  CHECK_RC(pair(sw), 0);
  struct wstate w = {loop, sv[0], 0};
  CHECK_RC(cio_add_writer(loop, sv[0], on_writable, &w), 0);
  for (int i = 0; i < 4; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(w.calls, 1);
  CHECK_RC(loop->io_watchers, 0);
  int ran = 0;
  struct rival a = {loop, sv[0], sw[0], &ran}, b = {loop, sw[0], sv[0], &ran};
  CHECK_RC(cio_add_reader(loop, sv[0], rival_cb, &a), 0);
  CHECK_RC(cio_add_reader(loop, sw[0], rival_cb, &b), 0);
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK(write(sw[1], "x", 1) == 1);
  for (int i = 0; i < 4; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(ran, 1);
  CHECK_RC(loop->io_watchers, 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  CHECK_RC(cio_fd_close(sw[0]), 0);
  CHECK_RC(cio_fd_close(sw[1]), 0);
  return 0;
}

static void test_add_remove_writer(void **state) {
  (void)state;
  assert_code(run_virtual(add_writer_body, NULL), 0);
  assert_trace("w1 removed=1 removed-other=1");
}

/* Callbacks work without any task: a loop run by run_forever, stopped from
 * a reader callback. */
static void never(void *p) {
  (void)p;
  trace("never");
}

struct stopper_state {
  cio_loop *loop;
  int fd;
};

static void read_and_stop(void *p) {
  struct stopper_state *s = p;
  char buf[8];
  ssize_t n = read(s->fd, buf, sizeof buf);
  trace("read %zd", n);
  cio_remove_reader(s->loop, s->fd);
  cio_loop_stop(s->loop);
}

static void test_reader_without_tasks(void **state) {
  (void)state;
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  int sv[2];
  assert_int_equal(pair(sv), 0);
  struct stopper_state s = {loop, sv[0]};
  assert_code(cio_add_reader(loop, sv[0], read_and_stop, &s), 0);
  assert_int_equal(write(sv[1], "abc", 3), 3);
  assert_code(cio_loop_run_forever(loop), 0);
  assert_trace("read 3");
  /* A callback still registered when the loop closes is dropped. */
  assert_code(cio_add_reader(loop, sv[0], never, NULL), 0);
  assert_code(cio_loop_free(loop), 0);
  close(sv[0]);
  close(sv[1]);
}

/* Several loops in several threads, each with its own fd records. */
static int quiet_writer(void *p, void **result) {
  (void)result;
  struct writer_arg *w = p;
  int rc = cio_sleep(w->delay);
  if (rc < 0) return rc;
  CHECK(write(w->fd, w->data, strlen(w->data)) == (ssize_t)strlen(w->data));
  return 0;
}

static int thread_loop_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 50; i++) {
    int sv[2];
    CHECK_RC(pair(sv), 0);
    struct writer_arg w = {sv[1], 0.001, "ping"};
    cio_task *t = cio_create_task(quiet_writer, &w, NULL);
    CHECK(t);
    char buf[8];
    CHECK_RC(cio_sock_recv_into(sv[0], buf, sizeof buf), 4);
    CHECK_RC(cio_await(t, NULL), 0);
    cio_task_unref(t);
    CHECK_RC(cio_fd_close(sv[0]), 0);
    CHECK_RC(cio_fd_close(sv[1]), 0);
  }
  return 0;
}

static void *thread_main(void *p) {
  (void)p;
  cio_loop_options o = {.virtual_time = true};
  intptr_t rc = cio_run_opts(thread_loop_body, NULL, NULL, &o);
  return (void *)rc;
}

static void test_loops_in_threads(void **state) {
  (void)state;
  pthread_t th[3];
  for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, NULL), 0);
  for (int i = 0; i < 3; i++) {
    void *rc;
    pthread_join(th[i], &rc);
    assert_int_equal((intptr_t)rc, 0);
  }
}

/* ---- edge-triggered registrations (epoll) ------------------------------------------ */

/* The socket calls register edge-triggered; a public wait on the same fd
 * still promises a level: bytes left unread must make cio_wait_readable
 * return, though no new edge comes. */
static int edge_then_level_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  char c;
  /* An edge waiter: the recv suspends, then the data comes. */
  cio_task *w = cio_create_task(wait_reader, &sv[0], NULL);
  CHECK(w);
  CHECK_RC(cio_yield(), 0);
  CHECK(write(sv[1], "ab", 2) == 2);
  CHECK_RC(cio_await(w, NULL), 0);
  cio_task_unref(w);
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 1); /* one byte left */
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 1);
  CHECK(write(sv[1], "cd", 2) == 2);
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 1); /* 'd' is left, no new edge */
  CHECK_RC(cio_wait_readable(sv[0]), 0);         /* a level: returns */
  CHECK_RC(cio_wait_readable(sv[0]), 0);         /* and again */
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 1);
  CHECK(c == 'd');
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_edge_then_level(void **state) {
  (void)state;
  assert_code(run_real(edge_then_level_body, NULL), 0);
}

/* Data that arrives while its reader is busy elsewhere (the event finds
 * nobody waiting) is not lost: the next read gets it, though its last read
 * came back short (the "buffer emptied" hint) and no new edge will come. */
static int pinger_once(void *p, void **result) {
  (void)result;
  return write(*(int *)p, "first", 5) == 5 ? 0 : -errno;
}

static int write_both(void *p, void **result) {
  (void)result;
  int *fds = p;
  if (write(fds[0], "later", 5) != 5 || write(fds[1], "!", 1) != 1) return -errno;
  return 0;
}

struct eof_reader {
  int fd;
  ssize_t first, second;
};

static int read_twice(void *p, void **result) {
  (void)result;
  struct eof_reader *e = p;
  char buf[64];
  e->first = cio_sock_recv_into(e->fd, buf, sizeof buf);
  e->second = cio_sock_recv_into(e->fd, buf, sizeof buf);
  return 0;
}

static int edge_while_busy_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  char buf[64];
  /* Registered edge-triggered by a wait, then read short (the hint). */
  cio_task *p = cio_create_task(pinger_once, &sv[1], NULL);
  CHECK(p);
  CHECK_RC(cio_sock_recv_into(sv[0], buf, sizeof buf), 5);
  CHECK_RC(cio_await(p, NULL), 0);
  cio_task_unref(p);
  /* Busy waiting on another fd when the data comes: one poll reports both,
   * the event for sv[0] finds nobody, and the task reads sv[0] in the same
   * iteration (the registration is trusted: no epoll_ctl re-reports it). */
  int other[2];
  CHECK_RC(pair(other), 0);
  int both[2] = {sv[1], other[1]};
  p = cio_create_task(write_both, both, NULL);
  CHECK(p);
  CHECK_RC(cio_sock_recv_into(other[0], buf, sizeof buf), 1);
  CHECK_RC(cio_await(p, NULL), 0);
  cio_task_unref(p);
  CHECK_RC(cio_fd_close(other[0]), 0);
  CHECK_RC(cio_fd_close(other[1]), 0);
  CHECK_RC(cio_sock_recv_into(sv[0], buf, sizeof buf), 5);
  CHECK(memcmp(buf, "later", 5) == 0);
  /* The last data and the EOF in one edge, woken in the iteration of the
   * event: a short read, then 0 without waiting for an edge that never
   * comes. */
  struct eof_reader e = {sv[0], -1, -1};
  cio_task *r = cio_create_task(read_twice, &e, NULL);
  CHECK(r);
  CHECK_RC(cio_yield(), 0); /* r waits */
  CHECK(write(sv[1], "end", 3) == 3);
  CHECK(shutdown(sv[1], SHUT_WR) == 0);
  CHECK_RC(cio_await(r, NULL), 0);
  cio_task_unref(r);
  CHECK_RC(e.first, 3);
  CHECK_RC(e.second, 0);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_edge_while_busy(void **state) {
  (void)state;
  assert_code(run_real(edge_while_busy_body, NULL), 0);
}

/* asyncio's add_reader is level-triggered: a callback that leaves bytes
 * unread is called again, also on an fd the socket calls registered
 * edge-triggered before. */
static int reader_calls;
static void count_and_leave(void *arg) {
  (void)arg;
  reader_calls++;
}

static int level_callback_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  char c;
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_RC(cio_sock_recv_into(sv[0], &c, 1), 1);
  cio_task *w = cio_create_task(wait_reader, &sv[0], NULL); /* registers the fd */
  CHECK(w);
  CHECK_RC(cio_yield(), 0);
  CHECK(write(sv[1], "yz", 2) == 2);
  CHECK_RC(cio_await(w, NULL), 0);
  cio_task_unref(w);
  reader_calls = 0;
  CHECK_RC(cio_add_reader(cur_loop(), sv[0], count_and_leave, NULL), 0);
  for (int i = 0; i < 5; i++) CHECK_RC(cio_sleep(0.001), 0);
  CHECK(reader_calls >= 3);
  CHECK_RC(cio_remove_reader(cur_loop(), sv[0]), 1);
  CHECK_RC(cio_fd_close(sv[0]), 0);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  return 0;
}

static void test_level_callback_after_edge(void **state) {
  (void)state;
  assert_code(run_real(level_callback_body, NULL), 0);
}

int main(void) {
  /* Some tests need the real clock: an exported CIO_VIRTUAL_TIME=1 would
   * force every loop onto the virtual one. */
  unsetenv("CIO_VIRTUAL_TIME");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_readable_writable),
      cmocka_unit_test(test_registration_kept_between_waits),
      cmocka_unit_test(test_idle_fd_does_not_spin),
      cmocka_unit_test(test_one_reader_per_fd),
      cmocka_unit_test(test_cancel_removes_wait),
      cmocka_unit_test(test_hangup_wakes_reader),
      cmocka_unit_test(test_fd_close_wakes_waiters),
      cmocka_unit_test(test_fd_forget),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_add_remove_reader),
      cmocka_unit_test(test_add_remove_writer),
      cmocka_unit_test(test_reader_without_tasks),
      cmocka_unit_test(test_loops_in_threads),
      cmocka_unit_test(test_edge_then_level),
      cmocka_unit_test(test_edge_while_busy),
      cmocka_unit_test(test_level_callback_after_edge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
