/* Layer 9, stream servers (src/server.c) over loopback TCP and Unix
 * sockets: 1,000 concurrent connections with checksums, close_clients /
 * abort_clients with handlers in read and in drain, the structured
 * shutdown, serve_forever's cancellation, wait_closed in either order, a
 * failing handler, 100,000 short connections with the RSS measured flat. */
#include "io_test_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static const cio_task_options small_stack = {.stack_size = 64 * 1024};

/* ---- handlers ------------------------------------------------------------------------ */

struct stats {
  int started, finished, failed;
  int last_rc;
  int reported; /* exception handler calls */
  cio_event go;  /* handlers that wait for it */
};

static struct stats st;

static void on_exception(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  if (ctx->message && strstr(ctx->message, "connection handler")) st.reported++;
}

/* Echo until EOF, drain after each write. */
static int echo_handler(cio_stream *s, void *arg) {
  (void)arg;
  st.started++;
  char buf[16384];
  ssize_t n;
  int rc = 0;
  while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
    if ((rc = cio_stream_write(s, buf, (size_t)n)) < 0) break;
    if ((rc = cio_stream_drain(s)) < 0) break;
  }
  if (n < 0) rc = (int)n;
  st.finished++;
  st.last_rc = rc;
  return rc == -ECANCELED ? rc : 0;
}

/* ---- 1,000 concurrent connections with checksums ------------------------------------------- */

struct client_arg {
  const char *port;
  uint32_t id;
  size_t bytes;
  int rc;
};

static int client(void *p, void **result) {
  (void)result;
  struct client_arg *a = p;
  cio_stream *s;
  int rc = cio_open_connection("127.0.0.1", a->port, NULL, &s);
  if (rc < 0) return a->rc = rc;
  unsigned char out[4096], in[4096];
  uint64_t hs = FNV_INIT, hr = FNV_INIT;
  size_t sent = 0, got = 0;
  while (sent < a->bytes) {
    size_t n = a->bytes - sent < sizeof out ? a->bytes - sent : sizeof out;
    fill_pattern(out, n, a->id, sent);
    hs = fnv1a(hs, out, n);
    if ((rc = cio_stream_write(s, out, n)) < 0) break;
    if ((rc = cio_stream_drain(s)) < 0) break;
    sent += n;
    /* read back what is there, interleaved with sending */
    while (got < sent) {
      ssize_t r = cio_stream_read(s, in, sizeof in);
      if (r <= 0) {
        rc = r < 0 ? (int)r : cio_raise(CIO_EINCOMPLETE, "early EOF");
        break;
      }
      hr = fnv1a(hr, in, (size_t)r);
      got += (size_t)r;
      if (got >= sent) break;
    }
    if (rc < 0) break;
  }
  if (rc == 0) rc = cio_stream_write_eof(s);
  if (rc == 0) {
    ssize_t r = cio_stream_read(s, in, sizeof in);
    if (r != 0) rc = cio_raise(CIO_ERUNTIME, "expected EOF, got %zd", r);
  }
  if (rc == 0 && hs != hr) rc = cio_raise(CIO_ERUNTIME, "client %u: checksum differs", a->id);
  cio_stream_free(s);
  return a->rc = rc;
}

static int t_many(void *arg, void **result) {
  (void)arg;
  (void)result;
  int n = (int)(intptr_t)arg;
  memset(&st, 0, sizeof st);
  cio_server *srv;
  cio_stream_opts o = {.backlog = 2048, .handler_stack_size = 64 * 1024};
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &o, &srv), 0);
  int port = cio_server_port(srv);
  CHECK(port > 0);
  int fds[4];
  CHECK_RC(cio_server_sockets(srv, fds, 4), 1);
  CHECK(fds[0] >= 0);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  CHECK_RC(cio_server_sockname(srv, 0, (struct sockaddr *)&ss, &len), 0);
  CHECK_RC(cio_server_sockname(srv, 1, (struct sockaddr *)&ss, &len), -ERANGE);
  CHECK(cio_server_is_serving(srv));
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct client_arg *ca = calloc((size_t)n, sizeof *ca);
  cio_task **ts = calloc((size_t)n, sizeof *ts);
  CHECK(ca && ts);
  for (int i = 0; i < n; i++) {
    ca[i] = (struct client_arg){ps, (uint32_t)i, 1000 + (size_t)(i * 7919) % 20000, 0};
    ts[i] = cio_create_task(client, &ca[i], &small_stack);
    CHECK(ts[i]);
  }
  int bad = 0;
  for (int i = 0; i < n; i++) {
    int rc = cio_await(ts[i], NULL);
    if (rc < 0 && bad++ == 0) print_message("client %d: %s (%s)\n", i, cio_err_name(rc), cio_errmsg());
    cio_task_unref(ts[i]);
  }
  CHECK_RC(bad, 0);
  CHECK_RC(cio_server_close(srv), 0);
  CHECK(!cio_server_is_serving(srv));
  CHECK_RC(cio_server_wait_closed(srv), 0);
  CHECK_RC(cio_server_connections(srv), 0);
  CHECK_RC(st.started, n);
  CHECK_RC(st.finished, n);
  CHECK_RC(cio_server_port(srv), -EBADF);
  CHECK_RC(cio_server_sockets(srv, fds, 4), 0);
  cio_server_free(srv);
  free(ca);
  free(ts);
  return 0;
}

static void test_many(void **state) {
  (void)state;
  raise_nofile(4096);
  assert_code(run_real(t_many, (void *)(intptr_t)1000), 0);
}

/* ---- close_clients / abort_clients with handlers in read and in drain ----------------------- */

/* A handler that writes 8 MiB and drains (the client does not read). */
static int flood_handler(cio_stream *s, void *arg) {
  (void)arg;
  st.started++;
  char *big = calloc(1, 8 << 20);
  if (!big) return -ENOMEM;
  int rc = cio_stream_write(s, big, 8 << 20);
  free(big);
  if (rc == 0) rc = cio_stream_drain(s);
  st.finished++;
  st.last_rc = rc;
  return 0;
}

static int t_close_clients(void *arg, void **result) {
  (void)result;
  int mode = (int)(intptr_t)arg; /* 0 close_clients, 1 abort_clients */
  for (int in_drain = 0; in_drain < 2; in_drain++) {
    memset(&st, 0, sizeof st);
    cio_server *srv;
    CHECK_RC(cio_start_server(in_drain ? flood_handler : echo_handler, NULL, "127.0.0.1", "0",
                              NULL, &srv),
             0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
    cio_stream *c[3];
    for (int i = 0; i < 3; i++) CHECK_RC(cio_open_connection("127.0.0.1", ps, NULL, &c[i]), 0);
    while (st.started < 3) CHECK_RC(cio_sleep(0.001), 0);
    CHECK_RC(cio_sleep(0.02), 0);
    CHECK_RC(cio_server_connections(srv), 3);
    CHECK_RC(st.finished, 0);
    /* wait_closed waits for the close AND the connections */
    CHECK_RC(cio_server_wait_closed_timeout(srv, 0.01), -ETIMEDOUT);
    CHECK_RC(cio_server_close(srv), 0);
    CHECK_RC(cio_server_wait_closed_timeout(srv, 0.01), -ETIMEDOUT);
    CHECK_RC(mode ? cio_server_abort_clients(srv) : cio_server_close_clients(srv), 3);
    if (in_drain && !mode) {
      /* close_clients flushes first: the handlers stay in drain until the
       * clients read everything. */
      CHECK_RC(cio_sleep(0.02), 0);
      CHECK_RC(st.finished, 0);
      for (int i = 0; i < 3; i++) {
        char *data;
        size_t len;
        CHECK_RC(cio_stream_read_all(c[i], &data, &len), 0);
        CHECK_RC(len, 8 << 20);
        free(data);
      }
    }
    CHECK_RC(cio_server_wait_closed_timeout(srv, 5), 0);
    CHECK_RC(st.finished, 3);
    if (in_drain) CHECK_RC(st.last_rc, mode ? -ECONNRESET : 0);
    else CHECK_RC(st.last_rc, 0); /* the reader saw EOF */
    CHECK_RC(cio_server_connections(srv), 0);
    for (int i = 0; i < 3; i++) {
      if (!in_drain) {
        char buf[4];
        ssize_t r = cio_stream_read(c[i], buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET);
      }
      cio_stream_free(c[i]);
    }
    cio_server_free(srv);
  }
  return 0;
}

static void test_close_clients(void **state) {
  (void)state;
  assert_code(run_real(t_close_clients, (void *)0), 0);
}

static void test_abort_clients(void **state) {
  (void)state;
  assert_code(run_real(t_close_clients, (void *)1), 0);
}

/* ---- the structured shutdown; serve_forever; failing handlers ------------------------------- */

/* A handler that waits on an event forever (ignores its stream). */
static int stuck_handler(cio_stream *s, void *arg) {
  (void)s;
  (void)arg;
  st.started++;
  int rc = cio_event_wait(&st.go);
  st.finished++;
  st.last_rc = rc;
  return rc;
}

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

static int t_shutdown(void *arg, void **result) {
  (void)arg;
  (void)result;
  int fds_before = count_fds();
  memset(&st, 0, sizeof st);
  cio_event_init(&st.go);
  cio_server *srv;
  CHECK_RC(cio_start_server(stuck_handler, NULL, "127.0.0.1", "0", NULL, &srv), 0);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  cio_stream *c[5];
  for (int i = 0; i < 5; i++) CHECK_RC(cio_open_connection("127.0.0.1", ps, NULL, &c[i]), 0);
  while (st.started < 5) CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(cio_server_shutdown(srv, 1.0), 0);
  CHECK_RC(st.finished, 5);
  CHECK_RC(st.last_rc, -ECANCELED);
  CHECK_RC(cio_server_connections(srv), 0);
  /* the clients see the connections closed */
  for (int i = 0; i < 5; i++) {
    char buf[4];
    ssize_t r = cio_stream_read(c[i], buf, sizeof buf);
    CHECK(r == 0 || r == -ECONNRESET);
    cio_stream_free(c[i]);
  }
  /* a new connection is refused */
  CHECK_RC(cio_open_connection("127.0.0.1", ps, NULL, &c[0]), -ECONNREFUSED);
  cio_server_free(srv);
  cio_event_destroy(&st.go);
  CHECK_RC(count_fds(), fds_before); /* no fd leaks */
  return 0;
}

static void test_shutdown(void **state) {
  (void)state;
  assert_code(run_real(t_shutdown, NULL), 0);
}

static int forever_task(void *p, void **result) {
  (void)result;
  return cio_server_serve_forever(p);
}

static int t_serve_forever(void *arg, void **result) {
  (void)arg;
  (void)result;
  memset(&st, 0, sizeof st);
  cio_event_init(&st.go);
  cio_server *srv;
  CHECK_RC(cio_start_server(stuck_handler, NULL, "127.0.0.1", "0", NULL, &srv), 0);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  cio_task *f = cio_create_task(forever_task, srv, NULL);
  CHECK(f);
  CHECK_RC(cio_sleep(0.001), 0);
  CHECK_RC(cio_server_serve_forever(srv), CIO_EINVALSTATE); /* one at a time */
  cio_stream *c;
  CHECK_RC(cio_open_connection("127.0.0.1", ps, NULL, &c), 0);
  while (st.started < 1) CHECK_RC(cio_sleep(0.001), 0);
  /* Cancelling serve_forever closes the server but does not cancel the
   * handler; it returns once the connection is gone. */
  cio_task_cancel(f, NULL);
  CHECK_RC(cio_sleep(0.02), 0);
  CHECK(!cio_server_is_serving(srv));
  CHECK(!cio_task_done(f));
  CHECK_RC(st.finished, 0);
  CHECK_RC(cio_event_set(&st.go), 0);
  CHECK_RC(cio_await(f, NULL), -ECANCELED);
  cio_task_unref(f);
  CHECK_RC(st.finished, 1);
  CHECK_RC(st.last_rc, 0);
  CHECK_RC(cio_server_serve_forever(srv), CIO_EINVALSTATE); /* closed */
  cio_stream_free(c);
  cio_server_free(srv);
  cio_event_destroy(&st.go);
  return 0;
}

static void test_serve_forever(void **state) {
  (void)state;
  assert_code(run_real(t_serve_forever, NULL), 0);
}

static int failing_handler(cio_stream *s, void *arg) {
  (void)arg;
  const char *line;
  ssize_t n = cio_stream_readline(s, &line);
  if (n > 0 && line[0] == 'x') return cio_raise(-EPROTO, "bad request");
  cio_stream_write(s, "ok\n", 3);
  return 0;
}

static int t_failing_handler(void *arg, void **result) {
  (void)arg;
  (void)result;
  memset(&st, 0, sizeof st);
  cio_loop_set_exception_handler(cur_loop(), on_exception, NULL);
  cio_server *srv;
  CHECK_RC(cio_start_server(failing_handler, NULL, "127.0.0.1", "0", NULL, &srv), 0);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  for (int i = 0; i < 4; i++) {
    cio_stream *c;
    CHECK_RC(cio_open_connection("127.0.0.1", ps, NULL, &c), 0);
    CHECK_RC(cio_stream_write(c, i % 2 ? "x\n" : "y\n", 2), 0);
    const char *line;
    ssize_t n = cio_stream_readline(c, &line);
    if (i % 2) CHECK_RC(n, 0); /* failed: closed without a reply */
    else CHECK_RC(n, 3);
    cio_stream_free(c);
  }
  CHECK_RC(cio_server_shutdown(srv, 1), 0);
  CHECK_RC(st.reported, 2);
  cio_server_free(srv);
  return 0;
}

static void test_failing_handler(void **state) {
  (void)state;
  assert_code(run_real(t_failing_handler, NULL), 0);
}

/* ---- Unix servers; 100,000 short connections with a flat RSS ------------------------------- */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

static int short_handler(cio_stream *s, void *arg) {
  (void)arg;
  char buf[16];
  ssize_t n = cio_stream_read(s, buf, sizeof buf);
  if (n > 0) cio_stream_write(s, buf, (size_t)n);
  return 0;
}

struct churn {
  const char *path;
  int count;
  int rc;
};

static int churn_client(void *p, void **result) {
  (void)result;
  struct churn *c = p;
  for (int i = 0; i < c->count; i++) {
    cio_stream *s;
    int rc = cio_open_unix_connection(c->path, NULL, &s);
    if (rc < 0) return c->rc = rc;
    cio_stream_write(s, "ping", 4);
    char buf[8];
    rc = cio_stream_readexactly(s, buf, 4);
    cio_stream_free(s);
    if (rc < 0) return c->rc = rc;
  }
  return 0;
}

static int run_churn(const char *path, int total) {
  struct churn cs[8];
  cio_task *ts[8];
  for (int i = 0; i < 8; i++) {
    cs[i] = (struct churn){path, total / 8, 0};
    ts[i] = cio_create_task(churn_client, &cs[i], &small_stack);
    CHECK(ts[i]);
  }
  int rc = 0;
  for (int i = 0; i < 8; i++) {
    int r = cio_await(ts[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(ts[i]);
  }
  return rc;
}

static int t_churn(void *arg, void **result) {
  (void)result;
  int total = (int)(intptr_t)arg;
  char path[64];
  snprintf(path, sizeof path, "/tmp/cio-test-server-%d.sock", (int)getpid());
  cio_server *srv;
  CHECK_RC(cio_start_unix_server(short_handler, NULL, path, NULL, &srv), 0);
  CHECK_RC(cio_server_port(srv), -ENOTSOCK);
  CHECK_RC(run_churn(path, total / 10), 0); /* warm-up: pools and caches at size */
  long before = rss_kib();
  double t0 = wall();
  CHECK_RC(run_churn(path, total), 0);
  long after = rss_kib();
  print_message("%d Unix connections in %.2f s; RSS %ld -> %ld KiB\n", total, wall() - t0,
                before, after);
#ifndef SANITIZED
  CHECK(after - before < 2048); /* flat: the server keeps only live connections */
#endif
  CHECK_RC(cio_server_connections(srv), 0);
  CHECK_RC(cio_server_close(srv), 0);
  CHECK_RC(cio_server_wait_closed(srv), 0);
  CHECK(access(path, F_OK) != 0); /* the socket file is removed */
  cio_server_free(srv);
  return 0;
}

static void test_churn(void **state) {
  (void)state;
#ifdef SANITIZED
  assert_code(run_real(t_churn, (void *)(intptr_t)8000), 0);
#else
  assert_code(run_real(t_churn, (void *)(intptr_t)100000), 0);
#endif
}

/* IPv6 loopback: a server on ::1 and a connection to it. */
static int t_ipv6(void *arg, void **result) {
  (void)arg;
  (void)result;
  memset(&st, 0, sizeof st);
  cio_server *srv;
  int rc = cio_start_server(echo_handler, NULL, "::1", "0", NULL, &srv);
  if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
    print_message("skipped: no IPv6 loopback here\n");
    return 0;
  }
  CHECK_RC(rc, 0);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  cio_stream *c;
  CHECK_RC(cio_open_connection("::1", ps, NULL, &c), 0);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  CHECK_RC(cio_stream_peername(c, (struct sockaddr *)&ss, &len), 0);
  CHECK(ss.ss_family == AF_INET6);
  CHECK_RC(cio_stream_write(c, "six\n", 4), 0);
  const char *line;
  CHECK_RC(cio_stream_readline(c, &line), 4);
  CHECK(memcmp(line, "six\n", 4) == 0);
  cio_stream_free(c);
  CHECK_RC(cio_server_shutdown(srv, 1), 0);
  cio_server_free(srv);
  return 0;
}

static void test_ipv6(void **state) {
  (void)state;
  assert_code(run_real(t_ipv6, NULL), 0);
}

/* ---- bad input --------------------------------------------------------------------------------- */

static int t_server_bad(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_server *srv;
  CHECK_RC(cio_start_server(NULL, NULL, "127.0.0.1", "0", NULL, &srv), -EINVAL);
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", NULL, NULL, &srv), -EINVAL);
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", NULL, NULL), -EINVAL);
  CHECK_RC(cio_start_unix_server(echo_handler, NULL, NULL, NULL, &srv), -EINVAL);
  cio_stream_opts bad = {.write_high = 1, .write_low = 2};
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &bad, &srv), -EINVAL);
  cio_stream_opts tiny = {.handler_stack_size = 100};
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &tiny, &srv), -EINVAL);
  CHECK_RC(cio_server_close(NULL), -EINVAL);
  CHECK_RC(cio_server_close_clients(NULL), -EINVAL);
  CHECK_RC(cio_server_abort_clients(NULL), -EINVAL);
  CHECK_RC(cio_server_wait_closed(NULL), -EINVAL);
  CHECK_RC(cio_server_serve_forever(NULL), -EINVAL);
  CHECK_RC(cio_server_shutdown(NULL, 1), -EINVAL);
  CHECK_RC(cio_server_port(NULL), -EINVAL);
  CHECK(!cio_server_is_serving(NULL));
  cio_server_free(NULL);
  /* the port is taken */
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", NULL, &srv), 0);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  cio_server *srv2;
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", ps, NULL, &srv2), -EADDRINUSE);
  /* ... unless both ask for SO_REUSEPORT */
  cio_server_free(srv);
  cio_stream_opts rp = {.reuse_port = true};
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", "0", &rp, &srv), 0);
  snprintf(ps, sizeof ps, "%d", cio_server_port(srv));
  CHECK_RC(cio_start_server(echo_handler, NULL, "127.0.0.1", ps, &rp, &srv2), 0);
  cio_server_free(srv2);
  cio_server_free(srv);
  return 0;
}

static void test_server_bad(void **state) {
  (void)state;
  assert_code(run_real(t_server_bad, NULL), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_close_clients),
      cmocka_unit_test(test_abort_clients),
      cmocka_unit_test(test_shutdown),
      cmocka_unit_test(test_serve_forever),
      cmocka_unit_test(test_failing_handler),
      cmocka_unit_test(test_churn),
      cmocka_unit_test(test_server_bad),
      cmocka_unit_test(test_ipv6),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
