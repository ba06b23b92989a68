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


#ifdef CIO_HAVE_URING
/* ==== completion-based sockets: multishot receive, batched sends ================== */

#include <arpa/inet.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>

#include "cio/stream.h"
#include "cio/sync.h"

/* ---- a cancelled stream read whose multishot completion races the cancel ------ */

struct sreader {
  cio_stream *s;
  ssize_t rc;
  char buf[8];
};

static int stream_reader(void *arg, void **result) {
  (void)result;
  struct sreader *r = arg;
  r->rc = cio_stream_read(r->s, r->buf, sizeof r->buf);
  return 0;
}

struct ms_canceller {
  cio_task *t;
  int fd;
};

static void cancel_reader_cb(void *arg) {
  struct ms_canceller *c = arg;
  cio_task_cancel(c->t, NULL);
  cio_remove_reader(cur_loop(), c->fd);
}

static int ms_race_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2], kick[2];
  CHECK_RC(pair(sv), 0);
  CHECK_RC(pair(kick), 0);
  cio_stream *s;
  CHECK_RC(cio_stream_from_fd(sv[0], NULL, &s), 0);
  size_t sent = 0, got = 0;
  uint64_t hs = FNV_INIT, hr = FNV_INIT;
  bool saw_queued = false;
  int cancelled_with_data = 0;
  for (int round = 0; round < 300; round++) {
    struct sreader r = {.s = s, .rc = 1};
    cio_task *t = cio_create_task(stream_reader, &r, NULL);
    CHECK_RC(cio_yield(), 0); /* the reader waits: its multishot request is armed */
    /* Data arrives, and in the same poll a callback cancels the reader:
     * the completion lands in the very iteration of the cancel, before or
     * after it. */
    struct ms_canceller c = {t, kick[0]};
    CHECK_RC(cio_add_reader(cur_loop(), kick[0], cancel_reader_cb, &c), 0);
    unsigned char msg[3];
    fill_pattern(msg, sizeof msg, 7, sent);
    if (round % 2) CHECK_RC(send(kick[1], "k", 1, 0), 1);
    CHECK_RC(send(sv[1], msg, sizeof msg, 0), 3);
    if (round % 2 == 0) CHECK_RC(send(kick[1], "k", 1, 0), 1);
    hs = fnv1a(hs, msg, 3);
    sent += 3;
    if (cio_await(t, NULL)) {}
    cio_task_unref(t);
    cio_remove_reader(cur_loop(), kick[0]);
    char k;
    CHECK_RC(recv(kick[0], &k, 1, 0), 1);
    CHECK(r.rc == -ECANCELED || r.rc > 0);
    if (r.rc > 0) {
      hr = fnv1a(hr, r.buf, (size_t)r.rc);
      got += (size_t)r.rc;
    } else if (cio__fd_recv_ms_queued(cur_loop(), sv[0]) > 0) {
      cancelled_with_data++; /* the race: cancelled, and its data came in */
    }
    if (round % 10 == 0) {
      /* More arrives while nobody reads: the kernel's receive keeps it. */
      fill_pattern(msg, sizeof msg, 7, sent);
      CHECK_RC(send(sv[1], msg, sizeof msg, 0), 3);
      hs = fnv1a(hs, msg, 3);
      sent += 3;
      CHECK_RC(cio_sleep(0.002), 0); /* a poll that waits: the completion comes */
      if (cio__fd_recv_ms_queued(cur_loop(), sv[0]) > 0) saw_queued = true;
    }
    /* Not a byte lost, none reordered: read what the cancelled one did not. */
    while (got < sent) {
      char buf[64];
      ssize_t n = cio_stream_read_timeout(s, buf, sizeof buf, 2.0); /* lost bytes: -ETIMEDOUT */
      CHECK_RC(n > 0 ? 1 : n, 1);
      hr = fnv1a(hr, buf, (size_t)n);
      got += (size_t)n;
    }
    CHECK_RC(got, sent);
    CHECK(hr == hs);
  }
  /* The data really went through the multishot receive's queue, and the
   * race happened. */
  CHECK(saw_queued);
  CHECK(cancelled_with_data > 0);
  cio_stream_free(s);
  CHECK_RC(cio_fd_close(sv[1]), 0);
  CHECK_RC(cio_fd_close(kick[0]), 0);
  CHECK_RC(cio_fd_close(kick[1]), 0);
  return 0;
}

static void test_multishot_cancel_race(void **state) {
  (void)state;
  int rc = run_uring(ms_race_main, NULL);
  if (rc) fprintf(stderr, "%s\n", cio_errmsg());
  assert_int_equal(rc, 0);
}

/* ---- echo through a server: provided buffers, batched sends, many connections ---- */

static int echo_handler(cio_stream *s, void *arg) {
  (void)arg;
  char buf[16384];
  ssize_t n;
  int rc = 0;
  while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
    if ((rc = cio_stream_write(s, buf, (size_t)n)) < 0) break;
    if ((rc = cio_stream_drain(s)) < 0) break;
  }
  if (n < 0) rc = (int)n;
  return rc;
}

struct echo_run {
  int conns;           /* connections, all open at once before any data moves */
  size_t bytes;        /* per connection, each way */
  int port;
  int connected, done, failed;
  cio_event all_in;
  cio_semaphore connecting;
  bool streams;        /* clients on streams too (else cio_sock_*) */
};

struct echo_client {
  struct echo_run *run;
  uint32_t id;
};

static int echo_client_sock(struct echo_client *c) {
  struct echo_run *run = c->run;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return cio_raise(-errno, "socket: %s", strerror(errno));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)run->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = cio_semaphore_acquire(&run->connecting);
  if (rc == 0) {
    rc = cio_sock_connect(fd, (struct sockaddr *)&sa, sizeof sa);
    cio_semaphore_release(&run->connecting);
  }
  if (rc < 0) goto out;
  if (++run->connected == run->conns) cio_event_set(&run->all_in);
  if ((rc = cio_event_wait(&run->all_in)) < 0) goto out;
  unsigned char out[4096], in[4096], want[4096];
  size_t sent = 0, got = 0;
  while (got < run->bytes) {
    if (sent < run->bytes) {
      size_t n = run->bytes - sent < sizeof out ? run->bytes - sent : sizeof out;
      fill_pattern(out, n, c->id, sent);
      if ((rc = cio_sock_sendall(fd, out, n, NULL)) < 0) goto out;
      sent += n;
    }
    while (got < sent) {
      ssize_t n = cio_sock_recv_into(fd, in, sent - got < sizeof in ? sent - got : sizeof in);
      if (n <= 0) {
        rc = n < 0 ? (int)n : cio_raise(CIO_ERUNTIME, "conn %u: EOF after %zu", c->id, got);
        goto out;
      }
      fill_pattern(want, (size_t)n, c->id, got);
      if (memcmp(in, want, (size_t)n) != 0) {
        rc = cio_raise(CIO_ERUNTIME, "conn %u: wrong bytes at %zu", c->id, got);
        goto out;
      }
      got += (size_t)n;
    }
  }
out:
  cio_fd_close(fd);
  return rc;
}

static int echo_client_stream(struct echo_client *c) {
  struct echo_run *run = c->run;
  char port[8];
  snprintf(port, sizeof port, "%d", run->port);
  cio_stream *s = NULL;
  int rc = cio_semaphore_acquire(&run->connecting);
  if (rc == 0) {
    rc = cio_open_connection("127.0.0.1", port, NULL, &s);
    cio_semaphore_release(&run->connecting);
  }
  if (rc < 0) return rc;
  if (++run->connected == run->conns) cio_event_set(&run->all_in);
  if ((rc = cio_event_wait(&run->all_in)) < 0) goto out;
  /* Everything at once (the stream queues it), then read it all back. */
  unsigned char *out = malloc(run->bytes), *in = malloc(run->bytes);
  if (!out || !in) {
    free(out);
    free(in);
    rc = -ENOMEM;
    goto out;
  }
  fill_pattern(out, run->bytes, c->id, 0);
  for (size_t off = 0; off < run->bytes && rc == 0; off += 1000)
    rc = cio_stream_write(s, out + off, run->bytes - off < 1000 ? run->bytes - off : 1000);
  if (rc == 0) rc = cio_stream_write_eof(s);
  ssize_t n = rc == 0 ? cio_stream_readexactly(s, in, run->bytes) : rc;
  if (n >= 0 && memcmp(in, out, run->bytes) != 0)
    rc = cio_raise(CIO_ERUNTIME, "conn %u: wrong bytes", c->id);
  else if (n < 0)
    rc = (int)n;
  if (rc == 0) {
    char extra;
    n = cio_stream_read(s, &extra, 1);
    if (n != 0) rc = cio_raise(CIO_ERUNTIME, "conn %u: %zd after the echo, not EOF", c->id, n);
  }
  free(out);
  free(in);
out:
  cio_stream_close(s);
  if (rc == 0) rc = cio_stream_wait_closed(s);
  cio_stream_free(s);
  return rc;
}

static int echo_client(void *arg, void **result) {
  (void)result;
  struct echo_client *c = arg;
  int rc = c->run->streams ? echo_client_stream(c) : echo_client_sock(c);
  if (rc < 0) {
    if (!c->run->failed) fprintf(stderr, "client %u: %s\n", c->id, cio_errmsg());
    c->run->failed++;
  } else {
    c->run->done++;
  }
  return 0;
}

/* Run run->conns echo clients (tasks) against run->port to the end. */
static int run_clients(struct echo_run *run) {
  cio_event_init(&run->all_in);
  cio_semaphore_init(&run->connecting, 128);
  struct echo_client *cs = calloc((size_t)run->conns, sizeof *cs);
  cio_task **ts = calloc((size_t)run->conns, sizeof *ts);
  CHECK(cs && ts);
  cio_task_options to = {.stack_size = 64 * 1024};
  for (int i = 0; i < run->conns; i++) {
    cs[i] = (struct echo_client){run, (uint32_t)i};
    ts[i] = cio_create_task(echo_client, &cs[i], &to);
    CHECK(ts[i] != NULL);
  }
  for (int i = 0; i < run->conns; i++) {
    if (cio_await(ts[i], NULL)) {}
    cio_task_unref(ts[i]);
  }
  free(ts);
  free(cs);
  cio_event_destroy(&run->all_in);
  cio_semaphore_destroy(&run->connecting);
  return 0;
}

static int echo_main(void *arg, void **result) {
  (void)result;
  struct echo_run *run = arg;
  CHECK(strcmp(cio_loop_backend(cur_loop()), "io_uring") == 0);
  cio_stream_opts opts = {.backlog = 4096};
  cio_server *srv;
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &opts, &srv), 0);
  run->port = cio_server_port(srv);
  CHECK_RC(run_clients(run), 0);
  CHECK_RC(cio_server_shutdown(srv, 5.0), 0);
  cio_server_free(srv);
  CHECK_RC(run->failed, 0);
  CHECK_RC(run->done, run->conns);
  /* Memory stays bounded: every provided buffer went back to the ring. */
  struct cio__poller *p = &cur_loop()->poller;
  CHECK_RC(cio__uring_bufs_free(p), cio__uring_bufs_total(p));
  return 0;
}

/* A ring of 4 provided buffers of 64 bytes for 64 connections that each send
 * 64 KiB at once: the receives run out of buffers (-ENOBUFS ends their
 * multishot requests) over and over, and fall back to one-shot receives
 * until buffers come back. Every byte is checked. */
static void test_provided_buffers_run_out(void **state) {
  (void)state;
  setenv("CIO_URING_BUFS", "4", 1);
  setenv("CIO_URING_BUF_SIZE", "64", 1);
  struct echo_run run = {.conns = 64, .bytes = 64 * 1024, .streams = true};
  int rc = run_uring(echo_main, &run);
  unsetenv("CIO_URING_BUFS");
  unsetenv("CIO_URING_BUF_SIZE");
  if (rc) fprintf(stderr, "%s\n", cio_errmsg());
  assert_int_equal(rc, 0);
}

/* 10,000 connections open at once through a streams server on io_uring, a
 * checksummed exchange on each. The clients run in a child process (a
 * process may not hold 20,000 fds here), on their own loop. */
static int clients_main(void *arg, void **result) {
  (void)result;
  struct echo_run *run = arg;
  CHECK_RC(run_clients(run), 0);
  CHECK_RC(run->failed, 0);
  CHECK_RC(run->done, run->conns);
  return 0;
}

struct big_server {
  int port_w, result_r;
  int conns;
  long handled;
};

static int counting_echo(cio_stream *s, void *arg) {
  struct big_server *b = arg;
  int rc = echo_handler(s, NULL);
  if (rc == 0) b->handled++;
  return rc;
}

static int big_server_main(void *arg, void **result) {
  (void)result;
  struct big_server *b = arg;
  CHECK(strcmp(cio_loop_backend(cur_loop()), "io_uring") == 0);
  cio_stream_opts opts = {.backlog = 4096};
  cio_server *srv;
  CHECK_RC(cio_start_server(counting_echo, b, "127.0.0.1", "0", &opts, &srv), 0);
  int port = cio_server_port(srv);
  CHECK_RC(write(b->port_w, &port, sizeof port), sizeof port);
  CHECK_RC(cio_wait_readable(b->result_r), 0); /* the clients are done */
  char res = 1;
  CHECK_RC(read(b->result_r, &res, 1), 1);
  CHECK_RC(cio_server_shutdown(srv, 10.0), 0);
  cio_server_free(srv);
  CHECK_RC(res, 0);
  CHECK_RC(b->handled, b->conns);
  struct cio__poller *p = &cur_loop()->poller;
  CHECK_RC(cio__uring_bufs_free(p), cio__uring_bufs_total(p));
  return 0;
}

static void test_ten_thousand_connections(void **state) {
  (void)state;
  int conns = 10000;
  if (raise_nofile((rlim_t)conns + 300) < (rlim_t)conns + 300) {
    printf("RLIMIT_NOFILE cannot be raised to %d: skipped\n", conns + 300);
    skip();
  }
  int port_p[2], res_p[2];
  assert_int_equal(pipe2(port_p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(res_p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(port_p[1]);
    close(res_p[0]);
    int port = 0;
    char res = 1;
    if (read(port_p[0], &port, sizeof port) == sizeof port) {
      struct echo_run run = {.conns = conns, .bytes = 2000, .port = port};
      int rc = run_real(clients_main, &run);
      if (rc) fprintf(stderr, "clients: %s\n", cio_errmsg());
      res = rc != 0;
    }
    if (write(res_p[1], &res, 1) != 1) _exit(3);
    _exit(res);
  }
  close(port_p[0]);
  close(res_p[1]);
  struct big_server b = {.port_w = port_p[1], .result_r = res_p[0], .conns = conns};
  int rc = run_uring(big_server_main, &b);
  if (rc) fprintf(stderr, "server: %s\n", cio_errmsg());
  close(port_p[1]);
  close(res_p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  assert_int_equal(rc, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- a full submission queue: more sends and receives in one pass than entries ---- */

struct flood {
  cio_stream *s;
  int peer;
  int i;
};

static int flood_task(void *arg, void **result) {
  (void)result;
  struct flood *f = arg;
  char msg[32];
  int len = snprintf(msg, sizeof msg, "hello %d\n", f->i);
  int rc = cio_stream_write(f->s, msg, (size_t)len); /* a send entry each, same pass */
  if (rc < 0) return rc;
  const char *line;
  ssize_t n = cio_stream_readline(f->s, &line); /* a multishot request each, same pass */
  if (n < 0) return (int)n;
  if (n != len || memcmp(line, msg, n) != 0)
    return cio_raise(CIO_ERUNTIME, "stream %d read back %.*s", f->i, (int)n, line);
  return cio_stream_drain(f->s);
}

static int flood_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  enum { N = 1000 }; /* 2 entries each, in one pass: 2,000 > 256 ring entries */
  struct flood *fs = calloc(N, sizeof *fs);
  cio_task **ts = calloc(N, sizeof *ts);
  CHECK(fs && ts);
  for (int i = 0; i < N; i++) {
    int sv[2];
    CHECK_RC(pair(sv), 0);
    CHECK_RC(cio_stream_from_fd(sv[0], NULL, &fs[i].s), 0);
    fs[i].peer = sv[1];
    fs[i].i = i;
  }
  for (int i = 0; i < N; i++) ts[i] = cio_create_task(flood_task, &fs[i], NULL);
  CHECK_RC(cio_yield(), 0); /* every task wrote and armed its receive */
  /* The peers echo what they got, without the loop's help. */
  for (int i = 0; i < N; i++) {
    char buf[64];
    ssize_t n = cio_sock_recv_into(fs[i].peer, buf, sizeof buf);
    CHECK(n > 0);
    CHECK_RC(send(fs[i].peer, buf, (size_t)n, 0), n);
  }
  for (int i = 0; i < N; i++) {
    CHECK_RC(cio_await(ts[i], NULL), 0);
    cio_task_unref(ts[i]);
    cio_stream_free(fs[i].s);
    CHECK_RC(cio_fd_close(fs[i].peer), 0);
  }
  free(ts);
  free(fs);
  return 0;
}

static void test_full_submission_queue(void **state) {
  (void)state;
  raise_nofile(2 * 1000 + 200);
  int rc = run_uring(flood_main, NULL);
  if (rc) fprintf(stderr, "%s\n", cio_errmsg());
  assert_int_equal(rc, 0);
}

/* ---- a peer that resets: the errno at the next drain, never SIGPIPE ------------- */

static int reset_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  cio_stream *s;
  CHECK_RC(cio_stream_from_fd(sv[0], NULL, &s), 0);
  CHECK_RC(cio_stream_write(s, "ping", 4), 0);
  char buf[8];
  CHECK_RC(cio_sock_recv_into(sv[1], buf, sizeof buf), 4);
  CHECK_RC(cio_fd_close(sv[1]), 0); /* the peer goes away */
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) {
    rc = cio_stream_write(s, "more", 4);
    if (rc == 0) rc = cio_stream_drain(s);
    if (rc == 0) rc = cio_sleep(0.001);
  }
  CHECK(rc == -EPIPE || rc == -ECONNRESET);
  CHECK_RC(cio_stream_drain(s), rc); /* sticky */
  cio_stream_free(s);
  return 0;
}

static void test_send_to_reset_peer(void **state) {
  (void)state;
  struct sigaction old, dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGPIPE, &dfl, &old); /* a SIGPIPE would kill the test */
  int rc = run_uring(reset_main, NULL);
  sigaction(SIGPIPE, &old, NULL);
  if (rc) fprintf(stderr, "%s\n", cio_errmsg());
  assert_int_equal(rc, 0);
}

/* ---- a kernel without io_uring: epoll, silently, and everything works ---------- */

static int fallback_main(void *arg, void **result) {
  (void)result;
  struct echo_run *run = arg;
  CHECK_RC(strcmp(cio_loop_backend(cur_loop()), "epoll"), 0);
  cio_stream_opts opts = {.backlog = 256};
  cio_server *srv;
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &opts, &srv), 0);
  run->port = cio_server_port(srv);
  cio_event_init(&run->all_in);
  cio_semaphore_init(&run->connecting, 64);
  struct echo_client cs[16];
  cio_task *ts[16];
  for (int i = 0; i < run->conns; i++) {
    cs[i] = (struct echo_client){run, (uint32_t)i};
    ts[i] = cio_create_task(echo_client, &cs[i], NULL);
  }
  for (int i = 0; i < run->conns; i++) {
    if (cio_await(ts[i], NULL)) {}
    cio_task_unref(ts[i]);
  }
  CHECK_RC(cio_server_shutdown(srv, 5.0), 0);
  cio_server_free(srv);
  cio_event_destroy(&run->all_in);
  cio_semaphore_destroy(&run->connecting);
  CHECK_RC(run->failed, 0);
  CHECK_RC(run->done, run->conns);
  return 0;
}

static void test_fallback_without_uring(void **state) {
  (void)state;
  /* io_uring_setup refused (CIO_URING_FAIL=1), asked for by the loop option,
   * and by CIO_BACKEND; then CIO_BACKEND=epoll on a kernel that has it. */
  for (int how = 0; how < 3; how++) {
    if (how < 2) setenv("CIO_URING_FAIL", "1", 1);
    const char *old = getenv("CIO_BACKEND");
    char *saved = old ? strdup(old) : NULL;
    setenv("CIO_BACKEND", how == 2 ? "epoll" : "uring", 1);
    struct echo_run run = {.conns = 16, .bytes = 100000, .streams = how != 1};
    int rc = how == 0 ? run_uring(fallback_main, &run) : run_real(fallback_main, &run);
    unsetenv("CIO_URING_FAIL");
    if (saved) setenv("CIO_BACKEND", saved, 1);
    else unsetenv("CIO_BACKEND");
    free(saved);
    if (rc) fprintf(stderr, "way %d: %s\n", how, cio_errmsg());
    assert_int_equal(rc, 0);
  }
}
#endif

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
#ifdef CIO_HAVE_URING
      cmocka_unit_test(test_multishot_cancel_race),
      cmocka_unit_test(test_provided_buffers_run_out),
      cmocka_unit_test(test_full_submission_queue),
      cmocka_unit_test(test_send_to_reset_peer),
      cmocka_unit_test(test_fallback_without_uring),
      cmocka_unit_test(test_ten_thousand_connections),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
