/* Layer 8, sockets (src/sock.c) over real loopback sockets: echo at scale with
 * checksums, reset, refusal, cancellation and timeouts of connect and accept,
 * back-pressure, fds closed under a waiter, EMFILE, UDP, Unix sockets, name
 * resolution. Every loop is bounded in count and time. */
#include "io_test_util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>

static const cio_task_options small_stack = {.stack_size = 64 * 1024};

/* ---- an echo server used by several tests ------------------------------------------- */

static int echo_conn(void *p, void **result) {
  (void)result;
  int fd = (int)(intptr_t)p;
  char buf[16384];
  int rc = 0;
  for (;;) {
    ssize_t n = cio_sock_recv_into(fd, buf, sizeof buf);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    rc = cio_sock_sendall(fd, buf, (size_t)n, NULL);
    if (rc < 0) break;
  }
  cio_fd_close(fd);
  return rc;
}

struct server {
  int lfd;
  int conns; /* accept this many, then wait for their tasks */
};

static int echo_server(void *p, void **result) {
  (void)result;
  struct server *s = p;
  cio_task **tasks = calloc((size_t)s->conns, sizeof *tasks);
  CHECK(tasks);
  int rc = 0;
  int n = 0;
  for (; n < s->conns; n++) {
    int c = cio_sock_accept(s->lfd, NULL, NULL);
    if (c < 0) {
      rc = c;
      break;
    }
    tasks[n] = cio_create_task(echo_conn, (void *)(intptr_t)c, &small_stack);
    CHECK(tasks[n]);
  }
  for (int i = 0; i < n; i++) {
    int r = cio_await(tasks[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(tasks[i]);
  }
  free(tasks);
  return rc;
}

/* One short exchange over host:port. */
static int hello(const char *host, const char *port) {
  int fd = cio_tcp_connect(host, port);
  if (fd < 0) return fd;
  int rc = cio_sock_sendall(fd, "hello", 5, NULL);
  char buf[8] = {0};
  size_t got = 0;
  while (rc == 0 && got < 5) {
    ssize_t n = cio_sock_recv_into(fd, buf + got, sizeof buf - got);
    if (n <= 0) rc = n < 0 ? (int)n : CIO_EINCOMPLETE;
    else got += (size_t)n;
  }
  cio_fd_close(fd);
  if (rc == 0 && memcmp(buf, "hello", 5) != 0) rc = cio_raise(CIO_ERUNTIME, "echo mismatch");
  return rc;
}

static int echo_families_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  const char *hosts[][2] = {{"127.0.0.1", "127.0.0.1"}, {"::1", "::1"}, {"127.0.0.1", "localhost"}};
  for (int i = 0; i < 3; i++) {
    int lfd = cio_tcp_listen(hosts[i][0], "0", 16);
    CHECK(lfd >= 0);
    char port[8];
    snprintf(port, sizeof port, "%d", local_port(lfd) & 0xffff);
    struct server s = {lfd, 2};
    cio_task *srv = cio_create_task(echo_server, &s, NULL);
    CHECK(srv);
    CHECK_RC(hello(hosts[i][1], port), 0);
    CHECK_RC(hello(hosts[i][1], port), 0);
    CHECK_RC(cio_await(srv, NULL), 0);
    cio_task_unref(srv);
    CHECK_RC(cio_fd_close(lfd), 0);
  }
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_echo_ipv4_ipv6_localhost(void **state) {
  (void)state;
  assert_code(run_virtual(echo_families_body, NULL), 0);
}

/* ---- 1,000 connections x 64 KiB, checksummed ----------------------------------------- */

#define NCONN 1000
#define PER_CONN (64 * 1024)

struct client {
  const char *port;
  uint32_t id;
  int fd;
};

static int client_writer(void *p, void **result) {
  (void)result;
  struct client *c = p;
  unsigned char buf[8192];
  for (size_t off = 0; off < PER_CONN; off += sizeof buf) {
    fill_pattern(buf, sizeof buf, c->id, off);
    int rc = cio_sock_sendall(c->fd, buf, sizeof buf, NULL);
    if (rc < 0) return rc;
  }
  shutdown(c->fd, SHUT_WR); /* the server sees EOF and closes */
  return 0;
}

static int client(void *p, void **result) {
  (void)result;
  struct client *c = p;
  c->fd = cio_tcp_connect("127.0.0.1", c->port);
  if (c->fd < 0) return c->fd;
  cio_task *w = cio_create_task(client_writer, c, &small_stack);
  CHECK(w);
  uint64_t want = FNV_INIT, got = FNV_INIT;
  unsigned char expect[8192], buf[8192];
  size_t total = 0;
  int rc = 0;
  for (;;) {
    ssize_t n = cio_sock_recv_into(c->fd, buf, sizeof buf);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    if (n == 0) break;
    if (total + (size_t)n > PER_CONN) {
      rc = cio_raise(CIO_ERUNTIME, "conn %u: too many bytes", c->id);
      break;
    }
    fill_pattern(expect, (size_t)n, c->id, total);
    want = fnv1a(want, expect, (size_t)n);
    got = fnv1a(got, buf, (size_t)n);
    total += (size_t)n;
  }
  int wrc = cio_await(w, NULL);
  cio_task_unref(w);
  cio_fd_close(c->fd);
  if (rc < 0) return rc;
  if (wrc < 0) return wrc;
  if (total != PER_CONN) return cio_raise(CIO_ERUNTIME, "conn %u: %zu bytes", c->id, total);
  if (got != want) return cio_raise(CIO_ERUNTIME, "conn %u: checksum mismatch", c->id);
  return 0;
}

static int thousand_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(NCONN, port);
  CHECK(lfd >= 0);
  struct server s = {lfd, NCONN};
  cio_task *srv = cio_create_task(echo_server, &s, NULL);
  CHECK(srv);
  static struct client cs[NCONN];
  cio_task **ts = calloc(NCONN, sizeof *ts);
  CHECK(ts);
  for (int i = 0; i < NCONN; i++) {
    cs[i] = (struct client){port, (uint32_t)i, -1};
    ts[i] = cio_create_task(client, &cs[i], &small_stack);
    CHECK(ts[i]);
  }
  int rc = 0;
  for (int i = 0; i < NCONN; i++) {
    int r = cio_await(ts[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(ts[i]);
  }
  free(ts);
  if (rc < 0) return rc;
  CHECK_RC(cio_await(srv, NULL), 0);
  cio_task_unref(srv);
  CHECK_RC(cio_fd_close(lfd), 0);
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_thousand_connections_64k_each(void **state) {
  (void)state;
  rlim_t have = raise_nofile(4 * NCONN + 64);
  if (have < 2 * NCONN + 64) {
    print_message("  RLIMIT_NOFILE hard limit %llu is too low for %d connections\n",
                  (unsigned long long)have, NCONN);
    skip();
  }
  double t0 = wall();
  assert_code(run_real(thousand_body, NULL), 0);
  print_message("  1000 connections x 64 KiB echoed in %.2f s\n", wall() - t0);
}

/* ---- the peer resets ----------------------------------------------------------------- */

static int resetter(void *p, void **result) {
  (void)result;
  int lfd = *(int *)p;
  int c = cio_sock_accept(lfd, NULL, NULL);
  if (c < 0) return c;
  char buf[4096];
  size_t got = 0;
  while (got < 1000) {
    ssize_t n = cio_sock_recv_into(c, buf, sizeof buf);
    if (n <= 0) return n < 0 ? (int)n : CIO_EINCOMPLETE;
    got += (size_t)n;
  }
  struct linger l = {1, 0}; /* close with RST */
  CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
  return cio_fd_close(c);
}

static int reset_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  /* A writer in the middle of a large sendall. */
  cio_task *r = cio_create_task(resetter, &lfd, NULL);
  CHECK(r);
  int fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  size_t len = 16 * 1024 * 1024, sent = 0;
  char *big = calloc(1, len);
  CHECK(big);
  int rc = cio_sock_sendall(fd, big, len, &sent);
  free(big);
  if (rc != -ECONNRESET && rc != -EPIPE)
    return cio_raise(CIO_ERUNTIME, "sendall gave %s, expected ECONNRESET or EPIPE", cio_err_name(rc));
  CHECK(sent >= 1000 && sent < len);
  CHECK(strstr(cio_errmsg(), "after"));
  CHECK_RC(cio_await(r, NULL), 0);
  cio_task_unref(r);
  cio_fd_close(fd);
  /* A reader waiting when the reset arrives. */
  r = cio_create_task(resetter, &lfd, NULL);
  CHECK(r);
  fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  char buf[1000] = {0};
  CHECK_RC(cio_sock_sendall(fd, buf, sizeof buf, NULL), 0);
  CHECK_RC(cio_sock_recv_into(fd, buf, sizeof buf), -ECONNRESET);
  CHECK_RC(cio_await(r, NULL), 0);
  cio_task_unref(r);
  cio_fd_close(fd);
  cio_fd_close(lfd);
  return 0;
}

static void test_peer_reset_mid_transfer(void **state) {
  (void)state;
  assert_code(run_virtual(reset_body, NULL), 0);
}

/* ---- refused -------------------------------------------------------------------------- */

static int refused_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  /* Bound but not listening: nobody else can take the port meanwhile. */
  int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(b, (struct sockaddr *)&sin, sizeof sin) == 0);
  char port[8];
  snprintf(port, sizeof port, "%d", local_port(b) & 0xffff);
  CHECK_RC(cio_tcp_connect("127.0.0.1", port), -ECONNREFUSED);
  CHECK(strstr(cio_errmsg(), "127.0.0.1:"));
  /* The raw call. */
  sin.sin_port = htons((uint16_t)atoi(port));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(cio_sock_connect(fd, (struct sockaddr *)&sin, sizeof sin), -ECONNREFUSED);
  cio_fd_close(fd);
  close(b);
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_connection_refused(void **state) {
  (void)state;
  assert_code(run_virtual(refused_body, NULL), 0);
}

/* ---- connect and accept: cancelled, under a timeout -------------------------------------- */

static int connect_stalled(int lfd, int *fd_out, double deadline_s, int *filler) {
  /* Listening with backlog 0 and never accepting: the first connection
   * fills the queue, the kernel drops the next SYN and the connect stays in
   * progress. */
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  getsockname(lfd, (struct sockaddr *)&sin, &len);
  *filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = cio_sock_connect(*filler, (struct sockaddr *)&sin, sizeof sin);
  if (rc < 0) return rc;
  *fd_out = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct deadline d;
  if (deadline_s > 0 && deadline_start(&d, deadline_s) < 0) return cio_errcode();
  rc = cio_sock_connect(*fd_out, (struct sockaddr *)&sin, sizeof sin);
  return deadline_s > 0 ? deadline_end(&d, rc) : rc;
}

struct stall_arg {
  int lfd, fd, filler;
};

static int stall_task(void *p, void **result) {
  (void)result;
  struct stall_arg *a = p;
  return connect_stalled(a->lfd, &a->fd, 0, &a->filler);
}

/* A task's outcome is 0 or an error; its value comes back through *result. */
static int accept_task(void *p, void **result) {
  int c = cio_sock_accept(*(int *)p, NULL, NULL);
  if (c < 0) return c;
  *result = (void *)(intptr_t)c;
  return 0;
}

/* The fd an accept_task got, or its error. */
static int await_fd(cio_task *t) {
  void *v = NULL;
  int rc = cio_await(t, &v);
  return rc < 0 ? rc : (int)(intptr_t)v;
}

static int cancel_connect_accept_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cur_loop();
  char port[8];
  int lfd = listen_local(1, port);
  CHECK(lfd >= 0);
  CHECK(listen(lfd, 0) == 0);
  /* connect under a timeout */
  int fd, filler;
  CHECK_RC(connect_stalled(lfd, &fd, 2.0, &filler), -ETIMEDOUT);
  CHECK(now() == 2.0);
  CHECK_RC(loop->io_watchers, 0);
  cio_fd_close(fd);
  cio_fd_close(filler);
  /* connect cancelled */
  struct stall_arg sa = {lfd, -1, -1};
  cio_task *t = cio_create_task(stall_task, &sa, NULL);
  CHECK(t);
  struct canceller c = {t};
  cio_handle *h;
  CHECK_RC(cio_call_later(loop, 1.0, cancel_cb, &c, &h), 0);
  cio_handle_unref(h);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  CHECK(now() == 3.0);
  CHECK_RC(loop->io_watchers, 0);
  cio_fd_close(sa.fd);
  cio_fd_close(sa.filler);
  cio_fd_close(lfd);

  /* accept under a timeout, then cancelled, then working */
  lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  struct deadline d;
  CHECK_RC(deadline_start(&d, 0.5), 0);
  CHECK_RC(deadline_end(&d, cio_sock_accept(lfd, NULL, NULL)), -ETIMEDOUT);
  CHECK(now() == 3.5);
  CHECK_RC(loop->io_watchers, 0);
  t = cio_create_task(accept_task, &lfd, NULL);
  CHECK(t);
  c.task = t;
  CHECK_RC(cio_call_later(loop, 0.5, cancel_cb, &c, &h), 0);
  cio_handle_unref(h);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  CHECK(now() == 4.0);
  CHECK_RC(loop->io_watchers, 0);
  t = cio_create_task(accept_task, &lfd, NULL);
  CHECK(t);
  fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  int got;
  CHECK((got = await_fd(t)) >= 0);
  cio_task_unref(t);
  cio_fd_close(got);
  cio_fd_close(fd);
  cio_fd_close(lfd);
  CHECK_RC(loop->io_watchers, 0);
  return 0;
}

static void test_connect_accept_cancel_and_timeout(void **state) {
  (void)state;
  assert_code(run_virtual(cancel_connect_accept_body, NULL), 0);
  assert_time(4.0);
}

/* ---- back-pressure --------------------------------------------------------------------- */

#define BP_LEN (1024 * 1024)

struct slow_reader {
  int fd;
  int reads;
  uint64_t hash;
  size_t total;
};

static int slow_reader(void *p, void **result) {
  (void)result;
  struct slow_reader *s = p;
  char buf[16384];
  for (;;) {
    int rc = cio_sleep(0.002);
    if (rc < 0) return rc;
    ssize_t n = cio_sock_recv_into(s->fd, buf, sizeof buf);
    if (n < 0) return (int)n;
    if (n == 0) return 0;
    s->reads++;
    s->hash = fnv1a(s->hash, buf, (size_t)n);
    s->total += (size_t)n;
  }
}

static int backpressure_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  int small = 16384;
  CHECK(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  cio_task *acc = cio_create_task(accept_task, &lfd, NULL);
  int fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  int peer = await_fd(acc);
  CHECK(peer >= 0);
  cio_task_unref(acc);
  struct slow_reader sr = {peer, 0, FNV_INIT, 0};
  cio_task *r = cio_create_task(slow_reader, &sr, NULL);
  CHECK(r);
  unsigned char *data = malloc(BP_LEN);
  CHECK(data);
  fill_pattern(data, BP_LEN, 7, 0);
  uint64_t polls0 = cur_loop()->polls;
  double cpu0 = cpu_seconds(), t0 = wall();
  size_t sent;
  CHECK_RC(cio_sock_sendall(fd, data, BP_LEN, &sent), 0);
  CHECK_RC(sent, BP_LEN);
  shutdown(fd, SHUT_WR);
  CHECK_RC(cio_await(r, NULL), 0);
  cio_task_unref(r);
  double cpu = cpu_seconds() - cpu0, elapsed = wall() - t0;
  uint64_t polls = cur_loop()->polls - polls0;
  CHECK_RC(sr.total, BP_LEN);
  CHECK(sr.hash == fnv1a(FNV_INIT, data, BP_LEN));
  free(data);
  print_message("  back-pressure: %d reads, %llu polls, %.3f s CPU in %.3f s\n", sr.reads,
                (unsigned long long)polls, cpu, elapsed);
  /* The writer slept while the buffer was full: the loop woke about once
   * per read (a timer and a writable event), not thousands of times. */
  CHECK(sr.reads >= 32);
  CHECK(polls < (uint64_t)sr.reads * 4 + 64);
  CHECK(cpu < elapsed * 0.5);
  cio_fd_close(fd);
  cio_fd_close(peer);
  cio_fd_close(lfd);
  return 0;
}

static void test_backpressure_slow_reader(void **state) {
  (void)state;
  assert_code(run_real(backpressure_body, NULL), 0);
}

/* ---- an fd closed while a task waits on it ------------------------------------------------- */

static int recv_task(void *p, void **result) {
  (void)result;
  char buf[16];
  return (int)cio_sock_recv_into(*(int *)p, buf, sizeof buf);
}

static int closed_while_waiting_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  /* cio_fd_close from another task: the waiter gets -EBADF. */
  int fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  cio_task *t = cio_create_task(recv_task, &fd, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.1), 0);
  CHECK_RC(cio_fd_close(fd), 0);
  CHECK_RC(cio_await(t, NULL), -EBADF);
  cio_task_unref(t);
  CHECK_RC(cur_loop()->io_watchers, 0);
  int a = cio_sock_accept(lfd, NULL, NULL);
  CHECK(a >= 0);
  cio_fd_close(a);

  /* Closing a listener while a task is blocked in accept (libdill's bug):
   * the task wakes with -EBADF, and the number's next owner works. */
  char port2[8];
  int l2 = listen_local(4, port2);
  CHECK(l2 >= 0);
  t = cio_create_task(accept_task, &l2, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.1), 0);
  CHECK_RC(cio_fd_close(l2), 0);
  CHECK_RC(await_fd(t), -EBADF);
  cio_task_unref(t);
  int l3 = listen_local(4, port2); /* likely the same number */
  CHECK(l3 >= 0);
  t = cio_create_task(accept_task, &l3, NULL);
  CHECK(t);
  int c3 = cio_tcp_connect("127.0.0.1", port2);
  CHECK(c3 >= 0);
  int a3 = await_fd(t);
  CHECK(a3 >= 0);
  cio_task_unref(t);
  cio_fd_close(a3);
  cio_fd_close(c3);
  cio_fd_close(l3);

  /* A plain close() while a task waits, and the number reused by accept:
   * the stale waiter is woken with -EBADF instead of hanging (or reading
   * another connection's data). */
  fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  a = cio_sock_accept(lfd, NULL, NULL);
  CHECK(a >= 0);
  t = cio_create_task(recv_task, &fd, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.1), 0);
  /* Occupy every free number below fd, so that accept gets fd's. */
  int fillers[64], nf = 0;
  for (int i = 0; i < fd && nf < 64; i++)
    if (fcntl(i, F_GETFD) < 0) fillers[nf++] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int other = cio_tcp_connect("127.0.0.1", port); /* before the close: takes a higher number */
  CHECK(other >= 0);
  close(fd); /* wrong, but it happens */
  int b = cio_sock_accept(lfd, NULL, NULL);
  CHECK_RC(b, fd);
  CHECK_RC(cio_await(t, NULL), -EBADF);
  CHECK(strstr(cio_errmsg(), "reused"));
  cio_task_unref(t);
  for (int i = 0; i < nf; i++) close(fillers[i]);
  cio_fd_close(b);
  cio_fd_close(other);
  cio_fd_close(a);
  cio_fd_close(lfd);
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_fd_closed_while_waiting(void **state) {
  (void)state;
  assert_code(run_virtual(closed_while_waiting_body, NULL), 0);
}

/* ---- accept while out of file descriptors ----------------------------------------------------- */

static void count_reports(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  if (ctx->code == -EMFILE) ++*(int *)arg;
}

static int emfile_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(8, port);
  CHECK(lfd >= 0);
  int reports = 0;
  CHECK_RC(cio_loop_set_exception_handler(cur_loop(), count_reports, &reports), 0);
  /* A client waiting in the backlog. */
  int cfd = cio_tcp_connect("127.0.0.1", port);
  CHECK(cfd >= 0);
  /* Use up every descriptor. */
  struct rlimit old, rl;
  getrlimit(RLIMIT_NOFILE, &old);
  rl = old;
  rl.rlim_cur = (rlim_t)cfd + 16;
  CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
  int fillers[64], nf = 0;
  for (;;) {
    int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f < 0) break;
    CHECK(nf < 64);
    fillers[nf++] = f;
  }
  CHECK(errno == EMFILE);
  cio_task *t = cio_create_task(accept_task, &lfd, NULL);
  CHECK(t);
  double cpu0 = cpu_seconds();
  CHECK_RC(cio_sleep(0.4), 0);
  double cpu = cpu_seconds() - cpu0;
  CHECK(!cio_task_done(t));
  CHECK_RC(reports, 1);
  print_message("  EMFILE: %.3f s CPU in 0.4 s while out of fds\n", cpu);
  CHECK(cpu < 0.1); /* backing off, not spinning */
  /* Free some: the pending connection is accepted. */
  for (int i = 0; i < nf; i++) close(fillers[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  double t0 = now();
  int a = await_fd(t);
  cio_task_unref(t);
  CHECK(a >= 0);
  CHECK(now() - t0 < 0.5);
  CHECK_RC(reports, 1);
  cio_fd_close(a);
  cio_fd_close(cfd);
  cio_fd_close(lfd);
  return 0;
}

static void test_accept_emfile_backs_off_and_recovers(void **state) {
  (void)state;
  assert_code(run_real(emfile_body, NULL), 0);
}

/* ---- UDP ------------------------------------------------------------------------------------- */

struct udp_arg {
  int fd;
  struct sockaddr_in to;
};

static int udp_sender(void *p, void **result) {
  (void)result;
  struct udp_arg *u = p;
  int rc = cio_sleep(0.1);
  if (rc < 0) return rc;
  CHECK_RC(cio_sock_sendto(u->fd, "ping", 4, (struct sockaddr *)&u->to, sizeof u->to), 4);
  CHECK_RC(cio_sock_sendto(u->fd, "", 0, (struct sockaddr *)&u->to, sizeof u->to), 0);
  return 0;
}

static int udp_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int a = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int b = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(a, (struct sockaddr *)&sin, sizeof sin) == 0);
  CHECK(bind(b, (struct sockaddr *)&sin, sizeof sin) == 0);
  struct udp_arg u = {b, sin};
  u.to.sin_port = htons((uint16_t)local_port(a));
  cio_task *t = cio_create_task(udp_sender, &u, NULL);
  CHECK(t);
  struct sockaddr_in from;
  socklen_t fromlen = sizeof from;
  void *data;
  CHECK_RC(cio_sock_recvfrom(a, 64, &data, (struct sockaddr *)&from, &fromlen), 4);
  CHECK(memcmp(data, "ping", 4) == 0);
  free(data);
  CHECK(now() == 0.1);
  CHECK_RC(ntohs(from.sin_port), local_port(b));
  char buf[8];
  CHECK_RC(cio_sock_recvfrom_into(a, buf, sizeof buf, NULL, NULL), 0); /* empty datagram */
  CHECK_RC(cio_await(t, NULL), 0);
  cio_task_unref(t);
  /* Connected UDP: sendto with no address. */
  CHECK(connect(b, (struct sockaddr *)&u.to, sizeof u.to) == 0);
  CHECK_RC(cio_sock_sendto(b, "pong", 4, NULL, 0), 4);
  CHECK_RC(cio_sock_recvfrom_into(a, buf, sizeof buf, NULL, NULL), 4);
  CHECK_RC(cio_sock_recvfrom_into(a, buf, 1, (struct sockaddr *)&from, NULL), -EINVAL);
  cio_fd_close(a);
  cio_fd_close(b);
  return 0;
}

static void test_udp(void **state) {
  (void)state;
  assert_code(run_virtual(udp_body, NULL), 0);
}

/* ---- Unix sockets ------------------------------------------------------------------------------ */

static int unix_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char dir[] = "/tmp/cio_test_sock_XXXXXX";
  CHECK(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/s", dir);
  int lfd = cio_unix_listen(path, 0);
  CHECK(lfd >= 0);
  close(lfd); /* leaves a stale socket file */
  lfd = cio_unix_listen(path, 0); /* removes it and binds again */
  CHECK(lfd >= 0);
  struct server s = {lfd, 1};
  cio_task *srv = cio_create_task(echo_server, &s, NULL);
  CHECK(srv);
  int fd = cio_unix_connect(path);
  CHECK(fd >= 0);
  CHECK_RC(cio_sock_sendall(fd, "unix", 4, NULL), 0);
  void *data;
  ssize_t n = cio_sock_recv(fd, 64, &data);
  CHECK_RC(n, 4);
  CHECK(memcmp(data, "unix", 4) == 0);
  free(data);
  cio_fd_close(fd);
  CHECK_RC(cio_await(srv, NULL), 0);
  cio_task_unref(srv);
  cio_fd_close(lfd);
  /* Nobody listening on the (stale) socket file. */
  CHECK_RC(cio_unix_connect(path), -ECONNREFUSED);
  unlink(path);
  CHECK_RC(cio_unix_connect(path), -ENOENT);
  /* A regular file at path is not removed. */
  int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  close(f);
  CHECK_RC(cio_unix_listen(path, 0), -EADDRINUSE);
  unlink(path);
  rmdir(dir);
  char longp[200];
  memset(longp, 'x', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  CHECK_RC(cio_unix_listen(longp, 0), -ENAMETOOLONG);
  CHECK_RC(cio_unix_connect(longp), -ENAMETOOLONG);
  CHECK_RC(cio_unix_listen(NULL, 0), -EINVAL);
  CHECK_RC(cio_unix_connect(""), -EINVAL);
  return 0;
}

static void test_unix_sockets(void **state) {
  (void)state;
  assert_code(run_virtual(unix_body, NULL), 0);
}

/* ---- name resolution ------------------------------------------------------------------------------ */

static int port_of(const struct addrinfo *ai) {
  if (ai->ai_family == AF_INET) return ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
  return ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
}

static int resolve_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cur_loop();
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
  /* Numbers resolve inline: no thread pool. */
  CHECK_RC(cio_getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
  CHECK(res && res->ai_family == AF_INET && port_of(res) == 8080);
  freeaddrinfo(res);
  CHECK_RC(cio_getaddrinfo("::1", "0", &hints, &res), 0);
  CHECK(res->ai_family == AF_INET6);
  freeaddrinfo(res);
  CHECK(loop->default_executor == NULL);
  /* Names go through the default executor (files only: /etc/hosts,
   * /etc/services; no DNS traffic). */
  hints.ai_family = AF_INET;
  CHECK_RC(cio_getaddrinfo("localhost", "80", &hints, &res), 0);
  CHECK(res && ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  freeaddrinfo(res);
  CHECK(loop->default_executor != NULL);
  CHECK_RC(cio_getaddrinfo("127.0.0.1", "http", &hints, &res), 0);
  CHECK_RC(port_of(res), 80);
  freeaddrinfo(res);
  int rc = cio_getaddrinfo("127.0.0.1", "no-such-service-xyz", &hints, &res);
  CHECK(rc == CIO_EAI_SERVICE || rc == CIO_EAI_NONAME);
  CHECK(strstr(cio_errmsg(), "no-such-service-xyz"));
  CHECK(res == NULL);
  hints.ai_flags = AI_NUMERICHOST;
  CHECK_RC(cio_getaddrinfo("localhost", "80", &hints, &res), CIO_EAI_NONAME);
  hints.ai_flags = 0;
  hints.ai_family = 12345;
  CHECK_RC(cio_getaddrinfo("127.0.0.1", "80", &hints, &res), CIO_EAI_FAMILY);
  CHECK_RC(cio_getaddrinfo(NULL, NULL, NULL, &res), -EINVAL);
  CHECK_RC(cio_getaddrinfo("127.0.0.1", "80", NULL, NULL), -EINVAL);

  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char host[64], serv[32];
  CHECK_RC(cio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
                           sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV), 0);
  CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(serv, "80") == 0);
  CHECK_RC(cio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
                           sizeof serv, NI_NUMERICHOST), 0); /* service name: in the pool */
  CHECK(strcmp(serv, "http") == 0);
  CHECK_RC(cio_getnameinfo((struct sockaddr *)&sin, sizeof sin, NULL, 0, serv, 3, NI_NUMERICHOST),
           -ENOSPC);
  CHECK_RC(cio_getnameinfo(NULL, 0, host, sizeof host, NULL, 0, 0), -EINVAL);
  CHECK_RC(cio_getnameinfo((struct sockaddr *)&sin, sizeof sin, NULL, 0, NULL, 0, 0), -EINVAL);
  return 0;
}

static void test_getaddrinfo_getnameinfo(void **state) {
  (void)state;
  assert_code(run_virtual(resolve_body, NULL), 0);
  struct addrinfo *res = (struct addrinfo *)1;
  assert_code(cio_getaddrinfo("127.0.0.1", "80", NULL, &res), CIO_ENOTASK);
  assert_null(res);
}

/* ---- fairness: a task whose peer is always ahead still lets others run ----------------- */

struct greedy {
  int fd;
  int reads;
  int reads_when_other_ran;
  bool other_ran;
};

static int greedy_reader(void *p, void **result) {
  (void)result;
  struct greedy *g = p;
  char buf[64];
  for (;;) {
    ssize_t n = cio_sock_recv_into(g->fd, buf, sizeof buf);
    if (n <= 0) return (int)n;
    g->reads++;
    if (g->other_ran && !g->reads_when_other_ran) g->reads_when_other_ran = g->reads;
  }
}

static int other(void *p, void **result) {
  (void)result;
  ((struct greedy *)p)->other_ran = true;
  return 0;
}

static int fairness_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  /* 64 KiB queued before the reader starts: 1,024 reads that never wait. */
  char chunk[4096] = {0};
  for (int i = 0; i < 16; i++) CHECK(write(sv[1], chunk, sizeof chunk) == (ssize_t)sizeof chunk);
  close(sv[1]);
  struct greedy g = {sv[0], 0, 0, false};
  cio_task *r = cio_create_task(greedy_reader, &g, NULL);
  cio_task *o = cio_create_task(other, &g, NULL);
  CHECK(r && o);
  CHECK_RC(cio_await(r, NULL), 0);
  CHECK_RC(cio_await(o, NULL), 0);
  cio_task_unref(r);
  cio_task_unref(o);
  CHECK_RC(g.reads, 1024);
  /* The other task ran after at most one budget (128 calls), not at the end. */
  if (g.reads_when_other_ran < 1 || g.reads_when_other_ran > 130)
    return cio_raise(CIO_ERUNTIME, "the other task ran after %d of 1024 reads",
                     g.reads_when_other_ran);
  cio_fd_close(sv[0]);
  return 0;
}

static void test_busy_reader_does_not_starve_others(void **state) {
  (void)state;
  assert_code(run_virtual(fairness_body, NULL), 0);
}

/* ---- misuse ------------------------------------------------------------------------------------------- */

static int misuse_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  CHECK_RC(cio_tcp_listen("127.0.0.1", port, 4), -EADDRINUSE);
  CHECK(strstr(cio_errmsg(), "127.0.0.1:"));
  CHECK_RC(cio_tcp_listen("127.0.0.1", NULL, 4), -EINVAL);
  CHECK_RC(cio_tcp_connect(NULL, "80"), -EINVAL);
  /* Blocking sockets are refused by accept and connect. */
  CHECK_RC(cio_fd_set_nonblocking(lfd, false), 0);
  CHECK_RC(cio_sock_accept(lfd, NULL, NULL), -EINVAL);
  CHECK(strstr(cio_errmsg(), "non-blocking"));
  CHECK_RC(cio_fd_set_nonblocking(lfd, true), 0);
  struct sockaddr_in sin;
  CHECK_RC(cio_sock_accept(lfd, (struct sockaddr *)&sin, NULL), -EINVAL);
  int bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK_RC(cio_sock_connect(bfd, (struct sockaddr *)&sin, sizeof sin), -EINVAL);
  CHECK_RC(cio_sock_connect(bfd, NULL, 0), -EINVAL);
  close(bfd);
  /* Bad fds and buffers. */
  CHECK_RC(cio_sock_accept(-1, NULL, NULL), -EBADF);
  CHECK_RC(cio_sock_recv_into(-1, port, 1), -EBADF);
  CHECK_RC(cio_sock_recv_into(lfd, NULL, 10), -EINVAL);
  CHECK_RC(cio_sock_recv_into(lfd, NULL, 0), 0);
  CHECK_RC(cio_sock_recv(lfd, 10, NULL), -EINVAL);
  CHECK_RC(cio_sock_sendall(-1, "x", 1, NULL), -EBADF);
  CHECK_RC(cio_sock_sendall(lfd, NULL, 1, NULL), -EINVAL);
  CHECK_RC(cio_sock_sendto(lfd, NULL, 1, NULL, 0), -EINVAL);
  int p[2];
  CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  CHECK_RC(cio_sock_recv_into(p[0], port, 1), -ENOTSOCK);
  close(p[0]);
  close(p[1]);
  cio_fd_close(lfd);
  /* accept on a socket that is not listening */
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(cio_sock_accept(s, NULL, NULL), -EINVAL);
  close(s);
  CHECK_RC(cur_loop()->io_watchers, 0);
  return 0;
}

static void test_misuse(void **state) {
  (void)state;
  assert_code(run_virtual(misuse_body, NULL), 0);
  char buf[4];
  size_t sent = 99;
  assert_code(cio_sock_accept(0, NULL, NULL), CIO_ENOTASK);
  assert_code(cio_sock_connect(0, NULL, 0), CIO_ENOTASK);
  assert_code(cio_sock_recv_into(0, buf, 4), CIO_ENOTASK);
  assert_code(cio_sock_sendall(0, buf, 4, &sent), CIO_ENOTASK);
  assert_int_equal(sent, 0);
  assert_code(cio_sock_sendto(0, buf, 4, NULL, 0), CIO_ENOTASK);
  assert_code(cio_sock_recvfrom_into(0, buf, 4, NULL, NULL), CIO_ENOTASK);
  assert_code(cio_tcp_listen("127.0.0.1", "0", 1), CIO_ENOTASK);
  assert_code(cio_tcp_connect("127.0.0.1", "1"), CIO_ENOTASK);
  assert_code(cio_unix_connect("/nonexistent"), CIO_ENOTASK);
}

int main(void) {
  /* Some tests need the real clock: an exported CIO_VIRTUAL_TIME=1 would
   * force every loop onto the virtual one. */
  unsetenv("CIO_VIRTUAL_TIME");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echo_ipv4_ipv6_localhost),
      cmocka_unit_test(test_thousand_connections_64k_each),
      cmocka_unit_test(test_peer_reset_mid_transfer),
      cmocka_unit_test(test_connection_refused),
      cmocka_unit_test(test_connect_accept_cancel_and_timeout),
      cmocka_unit_test(test_backpressure_slow_reader),
      cmocka_unit_test(test_fd_closed_while_waiting),
      cmocka_unit_test(test_accept_emfile_backs_off_and_recovers),
      cmocka_unit_test(test_udp),
      cmocka_unit_test(test_unix_sockets),
      cmocka_unit_test(test_getaddrinfo_getnameinfo),
      cmocka_unit_test(test_busy_reader_does_not_starve_others),
      cmocka_unit_test(test_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
