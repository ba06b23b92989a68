/* Layer 9, streams (src/stream.c) over real loopback TCP sockets,
 * socketpairs and pipes: every reading call against a model with random
 * chunk splits and limits, cancellation and timeouts at each suspension with
 * no byte lost, drain against a peer that stops reading (memory bounded),
 * resets, pipes, bad input. Task bodies use CHECK / CHECK_RC (io_test_util.h). */
#include "io_test_util.h"
#include "transport.h" /* internal: cio__connect_addrs */

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- helpers --------------------------------------------------------------------- */

/* A connected TCP pair over 127.0.0.1: *a is a stream, *peer a raw fd. */
static int tcp_pair(cio_stream **a, int *peer, const cio_stream_opts *opts) {
  char port[8];
  int lfd = listen_local(4, port);
  if (lfd < 0) return lfd;
  int rc = cio_open_connection("127.0.0.1", port, opts, a);
  if (rc < 0) {
    cio_fd_close(lfd);
    return rc;
  }
  int c = cio_sock_accept(lfd, NULL, NULL);
  cio_fd_close(lfd);
  if (c < 0) {
    cio_stream_free(*a);
    return c;
  }
  *peer = c;
  return 0;
}

/* A socketpair: *a a stream, *peer the raw other end. */
static int sp_pair(cio_stream **a, int *peer, const cio_stream_opts *opts) {
  int sv[2];
  int rc = pair(sv);
  if (rc < 0) return rc;
  rc = cio_stream_from_fd(sv[0], opts, a);
  if (rc < 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  *peer = sv[1];
  return 0;
}

/* Write `data` to fd in the chunk sizes of `chunks` (0-terminated), yielding
 * (or sleeping) between chunks, then close. Runs as a task. */
struct feeder {
  int fd;
  const char *data;
  size_t len;
  unsigned seed;
  size_t maxchunk;
  bool keep_open;
};

static int feed(void *p, void **result) {
  (void)result;
  struct feeder *f = p;
  size_t off = 0;
  unsigned seed = f->seed;
  while (off < f->len) {
    size_t n = 1 + (size_t)rand_r(&seed) % f->maxchunk;
    if (n > f->len - off) n = f->len - off;
    int rc = cio_sock_sendall(f->fd, f->data + off, n, NULL);
    if (rc < 0) return rc;
    off += n;
    int r = rand_r(&seed) % 4;
    if (r == 0) CHECK_RC(cio_sleep(0.0005), 0);
    else if (r == 1) CHECK_RC(cio_yield(), 0);
  }
  if (!f->keep_open) cio_fd_close(f->fd);
  return 0;
}

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

/* ---- basics ------------------------------------------------------------------------- */

static int t_basic(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s;
  int peer;
  CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
  const char msg[] = "hello\nworld\r\nabcdefXYZtail";
  CHECK_RC(cio_sock_sendall(peer, msg, sizeof msg - 1, NULL), 0);
  CHECK_RC(shutdown(peer, SHUT_WR), 0);
  const char *line;
  CHECK_RC(cio_stream_readline(s, &line), 6);
  CHECK(memcmp(line, "hello\n", 6) == 0);
  CHECK_RC(cio_stream_readuntil(s, "\r\n", 2, &line), 7);
  CHECK(memcmp(line, "world\r\n", 7) == 0);
  char buf[16];
  CHECK_RC(cio_stream_readexactly(s, buf, 3), 0);
  CHECK(memcmp(buf, "abc", 3) == 0);
  const void *seps[] = {"XYZ", "def", "e"};
  size_t which = 99;
  /* "e" ends first (at "de|f"): the match that ends first wins. */
  CHECK_RC(cio_stream_readuntil_any(s, seps, NULL, 3, &line, &which), 2);
  CHECK(memcmp(line, "de", 2) == 0 && which == 2);
  CHECK_RC(cio_stream_readuntil_any(s, seps, NULL, 2, &line, &which), 4);
  CHECK(memcmp(line, "fXYZ", 4) == 0 && which == 0);
  CHECK(!cio_stream_at_eof(s));
  /* EOF before the separator: CIO_EINCOMPLETE, the bytes stay. */
  CHECK_RC(cio_stream_readuntil(s, "!", 1, &line), CIO_EINCOMPLETE);
  CHECK(line == NULL);
  CHECK_RC(cio_stream_buffered(s), 4);
  CHECK_RC(cio_stream_readexactly(s, buf, 5), CIO_EINCOMPLETE);
  CHECK_RC(cio_stream_buffered(s), 4);
  CHECK_RC(cio_stream_readline(s, &line), 4); /* the partial last line */
  CHECK(memcmp(line, "tail", 4) == 0);
  CHECK_RC(cio_stream_readline(s, &line), 0);
  CHECK(line && *line == 0);
  CHECK(cio_stream_at_eof(s));
  CHECK_RC(cio_stream_read(s, buf, sizeof buf), 0);
  /* peer and sock names */
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  CHECK_RC(cio_stream_peername(s, (struct sockaddr *)&ss, &len), 0);
  CHECK(ss.ss_family == AF_INET);
  len = sizeof ss;
  CHECK_RC(cio_stream_sockname(s, (struct sockaddr *)&ss, &len), 0);
  CHECK(cio_stream_fd(s) >= 0);
  CHECK(cio_stream_can_write_eof(s));
  CHECK(!cio_stream_is_tls(s));
  CHECK_RC(cio_stream_limit(s), 65536);
  cio_stream_free(s);
  cio_fd_close(peer);
  return 0;
}

static void test_basic(void **state) {
  (void)state;
  assert_code(run_real(t_basic, NULL), 0);
}

/* read(-1) and the writing side: write, writev, writelines, write_eof. */
static int t_write_read_all(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *a, *b;
  int sv[2];
  CHECK_RC(pair(sv), 0);
  CHECK_RC(cio_stream_from_fd(sv[0], NULL, &a), 0);
  CHECK_RC(cio_stream_from_fd(sv[1], NULL, &b), 0);
  CHECK_RC(cio_stream_write(a, "one ", 4), 0);
  struct iovec iov[2] = {{"two ", 4}, {"three ", 6}};
  CHECK_RC(cio_stream_writev(a, iov, 2), 0);
  const char *lines[] = {"four ", "five"};
  CHECK_RC(cio_stream_writelines(a, lines, 2), 0);
  /* 1 MiB more: most of it queues and is flushed in the background while
   * the reader reads. */
  size_t big = 1 << 20;
  unsigned char *p = malloc(big);
  CHECK(p);
  fill_pattern(p, big, 7, 0);
  CHECK_RC(cio_stream_write(a, p, big), 0);
  CHECK(cio_stream_write_buffer_size(a) > 0);
  CHECK_RC(cio_stream_write_eof(a), 0);
  CHECK_RC(cio_stream_write(a, "x", 1), -EPIPE);
  char *data;
  size_t len;
  CHECK_RC(cio_stream_read_all(b, &data, &len), 0);
  CHECK_RC(len, 23 + big);
  CHECK(memcmp(data, "one two three four five", 23) == 0);
  CHECK(memcmp(data + 23, p, big) == 0);
  free(data);
  CHECK_RC(cio_stream_write_buffer_size(a), 0);
  CHECK_RC(cio_stream_drain(a), 0);
  /* the reverse direction still works after a's write_eof */
  CHECK_RC(cio_stream_write(b, "back", 4), 0);
  char buf[8];
  CHECK_RC(cio_stream_readexactly(a, buf, 4), 0);
  CHECK(memcmp(buf, "back", 4) == 0);
  CHECK_RC(cio_stream_close(b), 0);
  CHECK_RC(cio_stream_wait_closed(b), 0);
  CHECK(cio_stream_is_closing(b));
  CHECK_RC(cio_stream_read_all(a, &data, &len), 0);
  CHECK(len == 0 && data && *data == 0);
  free(data);
  free(p);
  cio_stream_free(a);
  cio_stream_free(b);
  return 0;
}

static void test_write_read_all(void **state) {
  (void)state;
  assert_code(run_real(t_write_read_all, NULL), 0);
}

/* ---- the fuzz test: random data, random splits, random limits, a model ----------- */

struct fuzz {
  unsigned seed;
};

/* Where the first match of any separator ends in d[0..n), asyncio's rule;
 * returns the end (0 = none) and the start in *start. */
static size_t model_find(const char *d, size_t n, const char **seps, const size_t *lens,
                         size_t nseps, size_t *start) {
  size_t best = 0;
  for (size_t i = 0; i < nseps; i++) {
    const char *q = memmem(d, n, seps[i], lens[i]);
    if (!q) continue;
    size_t st = (size_t)(q - d), end = st + lens[i];
    if (!best || end < best || (end == best && st > *start)) {
      best = end;
      *start = st;
    }
  }
  return best;
}

static int t_fuzz_one(unsigned seed) {
  unsigned r = seed;
  size_t len = 2000 + (size_t)rand_r(&r) % 30000;
  char *d = malloc(len);
  CHECK(d);
  const char alphabet[] = "ab\n\r-=";
  for (size_t i = 0; i < len; i++) d[i] = alphabet[rand_r(&r) % 6];
  /* long runs without separators now and then */
  for (int k = 0; k < 3; k++) {
    size_t at = (size_t)rand_r(&r) % len, run = (size_t)rand_r(&r) % 3000;
    for (size_t i = at; i < at + run && i < len; i++) d[i] = 'z';
  }
  cio_stream_opts o = {.limit = 1 + (size_t)rand_r(&r) % (rand_r(&r) % 2 ? 16 : 2000)};
  cio_stream *s;
  int peer;
  CHECK_RC(tcp_pair(&s, &peer, &o), 0);
  struct feeder f = {peer, d, len, r, 1 + (size_t)rand_r(&r) % 3000, false};
  cio_task *ft = cio_create_task(feed, &f, NULL);
  CHECK(ft);
  size_t p = 0;
  char buf[4096];
  int rc = 0;
  for (int step = 0; step < 100000 && rc == 0; step++) {
    size_t rest = len - p;
    int op = rand_r(&r) % 5;
    const char *out;
    if (op == 0) { /* read(n) */
      size_t n = 1 + (size_t)rand_r(&r) % sizeof buf;
      ssize_t got = cio_stream_read(s, buf, n);
      if (got < 0) { rc = (int)got; break; }
      if (rest == 0) { CHECK_RC(got, 0); break; }
      CHECK(got > 0 && (size_t)got <= n && (size_t)got <= rest);
      CHECK(memcmp(buf, d + p, (size_t)got) == 0);
      p += (size_t)got;
    } else if (op == 1) { /* readexactly */
      size_t n = (size_t)rand_r(&r) % 3000;
      char *b = malloc(n + 1);
      CHECK(b);
      int e = cio_stream_readexactly(s, b, n);
      if (n <= rest) {
        CHECK_RC(e, 0);
        CHECK(memcmp(b, d + p, n) == 0);
        p += n;
      } else {
        CHECK_RC(e, CIO_EINCOMPLETE);
        CHECK_RC(cio_stream_buffered(s), rest);
      }
      free(b);
    } else if (op == 2 || op == 3) { /* readuntil (one or several separators) */
      const char *all[] = {"\n", "\r\n", "-=", "=-", "ab"};
      size_t alllens[] = {1, 2, 2, 2, 2};
      size_t nseps = op == 2 ? 1 : 1 + (size_t)rand_r(&r) % 4;
      size_t first = (size_t)rand_r(&r) % (5 - nseps + 1);
      const void *seps[5];
      const char *cseps[5];
      size_t lens[5], maxlen = 0;
      for (size_t i = 0; i < nseps; i++) {
        seps[i] = cseps[i] = all[first + i];
        lens[i] = alllens[first + i];
        if (lens[i] > maxlen) maxlen = lens[i];
      }
      size_t which = 99, mstart = 0;
      ssize_t got = cio_stream_readuntil_any(s, seps, lens, nseps, &out, &which);
      size_t end = model_find(d + p, rest, cseps, lens, nseps, &mstart);
      if (end && mstart <= o.limit) {
        CHECK_RC(got, end);
        CHECK(memcmp(out, d + p, end) == 0);
        CHECK(which < nseps && lens[which] == end - mstart);
        p += end;
      } else if (end) {
        CHECK_RC(got, CIO_ELIMITOVERRUN);
      } else if (rest <= o.limit) {
        CHECK_RC(got, CIO_EINCOMPLETE);
        CHECK_RC(cio_stream_buffered(s), rest);
      } else {
        CHECK(got == CIO_EINCOMPLETE || got == CIO_ELIMITOVERRUN);
      }
    } else { /* readline, only where asyncio's outcome does not depend on timing */
      const char *nl = memchr(d + p, '\n', rest);
      size_t linelen = nl ? (size_t)(nl - (d + p)) : rest;
      if (linelen > o.limit) continue;
      ssize_t got = cio_stream_readline(s, &out);
      size_t want = nl ? linelen + 1 : rest;
      CHECK_RC(got, want);
      CHECK(memcmp(out, d + p, want) == 0);
      p += want;
      if (rest == 0) break;
    }
    if (p == len && rand_r(&r) % 2) {
      CHECK_RC(cio_stream_read(s, buf, 1), 0);
      CHECK(cio_stream_at_eof(s));
      break;
    }
  }
  CHECK_RC(cio_await(ft, NULL), 0);
  cio_task_unref(ft);
  cio_stream_free(s);
  free(d);
  return rc;
}

static int t_fuzz(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (unsigned seed = 1; seed <= 60; seed++) {
    int rc = t_fuzz_one(seed);
    if (rc < 0) return cio_raise(rc, "seed %u: %s", seed, cio_errmsg());
  }
  return 0;
}

static void test_fuzz(void **state) {
  (void)state;
  assert_code(run_real(t_fuzz, NULL), 0);
}

/* ---- cancellation and timeouts: nothing lost -------------------------------------- */

enum { K_READ, K_LINE, K_EXACT, K_UNTIL, K_ANY, K_ALL, K_COUNT };

/* One read of kind k with a timeout. */
static ssize_t read_kind(cio_stream *s, int k, double timeout, const char **out, char *buf) {
  const void *seps[] = {"END", "\n"};
  size_t which;
  char *all;
  size_t len;
  switch (k) {
  case K_READ: return cio_stream_read_timeout(s, buf, 1000, timeout);
  case K_LINE: return cio_stream_readline_timeout(s, out, timeout);
  case K_EXACT: {
    int rc = cio_stream_readexactly_timeout(s, buf, 20, timeout);
    return rc == 0 ? 20 : rc;
  }
  case K_UNTIL: return cio_stream_readuntil_timeout(s, "END", 3, out, timeout);
  case K_ANY: return cio_stream_readuntil_any_timeout(s, seps, NULL, 2, out, &which, timeout);
  default: {
    int rc = cio_stream_read_all_timeout(s, &all, &len, timeout);
    if (rc == 0) {
      memcpy(buf, all, len < 1000 ? len : 1000);
      free(all);
      return (ssize_t)len;
    }
    return rc;
  }
  }
}

struct reader_arg {
  cio_stream *s;
  int kind;
  ssize_t got;
};

static int reader_task(void *p, void **result) {
  (void)result;
  struct reader_arg *a = p;
  char buf[1024];
  const char *out;
  a->got = read_kind(a->s, a->kind, CIO_NO_TIMEOUT, &out, buf);
  return a->got < 0 ? (int)a->got : 0;
}

static int t_cancel(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int k = 0; k < K_COUNT; k++) {
    for (int how = 0; how < 3; how++) { /* timeout, cancel, timeout scope */
      cio_stream *s;
      int peer;
      CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
      /* Part of what the read needs arrives, then the read is interrupted. */
      CHECK_RC(cio_sock_sendall(peer, "0123456789", 10, NULL), 0);
      char buf[1024];
      const char *out;
      if (k == K_READ) {
        /* read returns what is there: interrupt it while nothing is. */
        CHECK_RC(read_kind(s, k, 1, &out, buf), 10);
        CHECK(memcmp(buf, "0123456789", 10) == 0);
      }
      ssize_t got;
      if (how == 0) {
        got = read_kind(s, k, 0.02, &out, buf);
        CHECK_RC(got, -ETIMEDOUT);
      } else if (how == 1) {
        struct reader_arg ra = {s, k, 0};
        cio_task *t = cio_create_task(reader_task, &ra, NULL);
        CHECK(t);
        CHECK_RC(cio_sleep(0.01), 0);
        /* A second reader is refused while the first waits. */
        CHECK_RC(cio_stream_read(s, buf, 1), -EBUSY);
        cio_task_cancel(t, NULL);
        CHECK_RC(cio_await(t, NULL), -ECANCELED);
        cio_task_unref(t);
      } else {
        cio_timeout to;
        int rc;
        CIO_WITH_TIMEOUT(&to, 0.02, rc) {
          rc = (int)read_kind(s, k, CIO_NO_TIMEOUT, &out, buf);
        }
        CHECK_RC(rc, -ETIMEDOUT);
      }
      CHECK_RC(cio_stream_buffered(s), k == K_READ ? 0 : 10);
      /* The rest arrives: the next read sees every byte. */
      const char rest[] = "abcdefghijEND\nmore";
      CHECK_RC(cio_sock_sendall(peer, rest, sizeof rest - 1, NULL), 0);
      CHECK_RC(shutdown(peer, SHUT_WR), 0);
      char want[64];
      snprintf(want, sizeof want, "%s%s", k == K_READ ? "" : "0123456789", rest);
      size_t wlen = strlen(want);
      got = read_kind(s, k, 5, &out, buf);
      const char *data = (k == K_LINE || k == K_UNTIL || k == K_ANY) ? out : buf;
      size_t expect = k == K_READ ? 0 : k == K_EXACT ? 20 : k == K_ALL ? wlen : (k == K_UNTIL || k == K_ANY) ? 23 : 24;
      if (k == K_READ) {
        CHECK(got > 0);
        expect = (size_t)got;
      }
      CHECK_RC(got, expect);
      CHECK(memcmp(data, want, expect) == 0);
      cio_stream_free(s);
      cio_fd_close(peer);
    }
  }
  return 0;
}

static void test_cancel(void **state) {
  (void)state;
  assert_code(run_real(t_cancel, NULL), 0);
}

/* ---- drain and back-pressure ---------------------------------------------------------- */

static int t_drain(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s;
  int peer;
  CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
  /* small kernel buffers so that the queue fills fast */
  int sz = 16384;
  setsockopt(cio_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  unsigned char chunk[8192];
  uint64_t sent = FNV_INIT;
  size_t total = 0, maxq = 0;
  /* The peer does not read: drain must end up waiting, and the queue stays
   * bounded by the high-water mark plus one write. */
  int rc = 0;
  for (int i = 0; i < 1000; i++) {
    fill_pattern(chunk, sizeof chunk, 1, total);
    CHECK_RC(cio_stream_write(s, chunk, sizeof chunk), 0);
    sent = fnv1a(sent, chunk, sizeof chunk);
    total += sizeof chunk;
    size_t q = cio_stream_write_buffer_size(s);
    if (q > maxq) maxq = q;
    rc = cio_stream_drain_timeout(s, 0.05);
    if (rc == -ETIMEDOUT) break;
    CHECK_RC(rc, 0);
  }
  CHECK_RC(rc, -ETIMEDOUT);
  CHECK(maxq <= 65536 + sizeof chunk);
  CHECK(cio_stream_write_buffer_size(s) > 16384); /* drain waits for the low mark */
  /* The peer reads everything: the queue drains, checksum intact. */
  CHECK_RC(cio_stream_write_eof(s), 0);
  uint64_t got = FNV_INIT;
  size_t n = 0;
  for (;;) {
    char buf[16384];
    ssize_t r = cio_sock_recv_into(peer, buf, sizeof buf);
    CHECK(r >= 0);
    if (r == 0) break;
    got = fnv1a(got, buf, (size_t)r);
    n += (size_t)r;
  }
  CHECK_RC(n, total);
  CHECK(got == sent);
  CHECK_RC(cio_stream_drain(s), 0);
  CHECK_RC(cio_stream_write_buffer_size(s), 0);
  /* the write marks */
  CHECK_RC(cio_stream_set_write_buffer_limits(s, 100, 200), -EINVAL);
  CHECK_RC(cio_stream_set_write_buffer_limits(s, 400, 0), 0);
  CHECK_RC(cio_stream_set_write_buffer_limits(s, 0, 0), 0);
  cio_stream_free(s);
  cio_fd_close(peer);
  return 0;
}

static void test_drain(void **state) {
  (void)state;
  assert_code(run_real(t_drain, NULL), 0);
}

/* Several tasks drain at once (asyncio's fixed drain race). */
static int drainer(void *p, void **result) {
  (void)result;
  return cio_stream_drain(p);
}

static int t_drain_many(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s;
  int peer;
  CHECK_RC(sp_pair(&s, &peer, NULL), 0);
  char *big = calloc(1, 1 << 20);
  CHECK(big);
  CHECK_RC(cio_stream_write(s, big, 1 << 20), 0);
  cio_task *t[3];
  for (int i = 0; i < 3; i++) CHECK((t[i] = cio_create_task(drainer, s, NULL)));
  CHECK_RC(cio_sleep(0.01), 0);
  for (int i = 0; i < 3; i++) CHECK(!cio_task_done(t[i]));
  char buf[65536];
  size_t n = 0;
  while (n < (1u << 20)) {
    ssize_t r = cio_sock_recv_into(peer, buf, sizeof buf);
    CHECK(r > 0);
    n += (size_t)r;
  }
  for (int i = 0; i < 3; i++) {
    CHECK_RC(cio_await(t[i], NULL), 0);
    cio_task_unref(t[i]);
  }
  free(big);
  cio_stream_free(s);
  cio_fd_close(peer);
  return 0;
}

static void test_drain_many(void **state) {
  (void)state;
  assert_code(run_real(t_drain_many, NULL), 0);
}

/* ---- faults: reset peers, cancelled drains ------------------------------------------------- */

static void rst_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  cio_fd_close(fd);
}

static int t_reset(void *arg, void **result) {
  (void)arg;
  (void)result;
  /* A peer that resets mid-line: the read fails with -ECONNRESET, the
   * partial line is still there. */
  cio_stream *s;
  int peer;
  CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
  CHECK_RC(cio_sock_sendall(peer, "partial", 7, NULL), 0);
  const char *line;
  CHECK_RC(cio_stream_readline_timeout(s, &line, 0.05), -ETIMEDOUT);
  CHECK_RC(cio_stream_buffered(s), 7);
  rst_close(peer);
  CHECK_RC(cio_stream_readline(s, &line), -ECONNRESET);
  char buf[16];
  CHECK_RC(cio_stream_read(s, buf, sizeof buf), 7);
  CHECK(memcmp(buf, "partial", 7) == 0);
  CHECK_RC(cio_stream_read(s, buf, sizeof buf), -ECONNRESET); /* sticky */
  /* Writing to the reset peer: fails on a later write/drain with the errno,
   * never SIGPIPE. */
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) {
    rc = cio_stream_write(s, "data", 4);
    if (rc == 0) rc = cio_stream_drain(s);
    if (rc == 0) CHECK_RC(cio_sleep(0.001), 0);
  }
  CHECK(rc == -EPIPE || rc == -ECONNRESET);
  CHECK_RC(cio_stream_drain(s), rc);
  CHECK(cio_stream_is_closing(s));
  CHECK_RC(cio_stream_close(s), 0);
  CHECK_RC(cio_stream_wait_closed(s), rc);
  cio_stream_free(s);

  /* A drain waiting on a peer that resets returns the error. */
  CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
  char *big = calloc(1, 4 << 20);
  CHECK(big);
  CHECK_RC(cio_stream_write(s, big, 4 << 20), 0);
  cio_task *t = cio_create_task(drainer, s, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.01), 0);
  rst_close(peer);
  rc = cio_await(t, NULL);
  CHECK(rc == -ECONNRESET || rc == -EPIPE);
  cio_task_unref(t);
  CHECK_RC(cio_stream_write_buffer_size(s), 0);
  free(big);
  cio_stream_free(s);
  return 0;
}

static void test_reset(void **state) {
  (void)state;
  assert_code(run_real(t_reset, NULL), 0);
}

static int t_drain_cancel(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s;
  int peer;
  CHECK_RC(sp_pair(&s, &peer, NULL), 0);
  size_t big = 1 << 20;
  unsigned char *p = malloc(big);
  CHECK(p);
  fill_pattern(p, big, 3, 0);
  CHECK_RC(cio_stream_write(s, p, big), 0);
  /* cancelled and timed-out drains leave the queue alone */
  cio_task *t = cio_create_task(drainer, s, NULL);
  CHECK(t);
  CHECK_RC(cio_sleep(0.005), 0);
  size_t q = cio_stream_write_buffer_size(s);
  cio_task_cancel(t, NULL);
  CHECK_RC(cio_await(t, NULL), -ECANCELED);
  cio_task_unref(t);
  CHECK_RC(cio_stream_write_buffer_size(s), q);
  CHECK_RC(cio_stream_drain_timeout(s, 0.005), -ETIMEDOUT);
  /* close flushes everything that was queued, then closes */
  CHECK_RC(cio_stream_close(s), 0);
  CHECK_RC(cio_stream_write(s, "x", 1), -EPIPE);
  /* wait_closed timed out and cancelled: the flush goes on */
  CHECK_RC(cio_stream_wait_closed_timeout(s, 0.01), -ETIMEDOUT);
  CHECK(cio_stream_fd(s) >= 0);
  unsigned char *got = malloc(big + 1);
  CHECK(got);
  size_t n = 0;
  for (;;) {
    ssize_t r = cio_sock_recv_into(peer, got + n, big + 1 - n);
    CHECK(r >= 0);
    if (r == 0) break;
    n += (size_t)r;
  }
  CHECK_RC(n, big);
  CHECK(memcmp(got, p, big) == 0);
  CHECK_RC(cio_stream_wait_closed(s), 0);
  CHECK_RC(cio_stream_fd(s), -EBADF);
  free(got);
  free(p);
  cio_stream_free(s);
  cio_fd_close(peer);
  return 0;
}

static void test_drain_cancel(void **state) {
  (void)state;
  assert_code(run_real(t_drain_cancel, NULL), 0);
}

/* close() and abort() wake a task blocked in a read: it sees the buffered
 * bytes, then EOF. */
static int t_close_wakes_reader(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int abort_it = 0; abort_it < 2; abort_it++) {
    cio_stream *s;
    int peer;
    CHECK_RC(sp_pair(&s, &peer, NULL), 0);
    CHECK_RC(cio_sock_sendall(peer, "abc", 3, NULL), 0);
    struct reader_arg ra = {s, K_LINE, 0};
    cio_task *t = cio_create_task(reader_task, &ra, NULL);
    CHECK(t);
    CHECK_RC(cio_sleep(0.01), 0);
    CHECK(!cio_task_done(t));
    CHECK_RC(abort_it ? cio_stream_abort(s) : cio_stream_close(s), 0);
    CHECK_RC(cio_await(t, NULL), 0);
    CHECK_RC(ra.got, 3); /* the partial line at EOF */
    cio_task_unref(t);
    CHECK(cio_stream_at_eof(s));
    if (abort_it) CHECK_RC(cio_stream_drain(s), -ECONNRESET);
    cio_stream_free(s);
    cio_fd_close(peer);
  }
  return 0;
}

static void test_close_wakes_reader(void **state) {
  (void)state;
  assert_code(run_real(t_close_wakes_reader, NULL), 0);
}

/* ---- limits: a 10 MB line against the 64 KiB limit ------------------------------------------ */

static int t_long_line(void *arg, void **result) {
  (void)arg;
  (void)result;
  size_t big = 10u << 20;
  char *d = malloc(big + 16);
  CHECK(d);
  memset(d, 'x', big);
  memcpy(d + big, "\nok\n", 4);
  for (int mode = 0; mode < 2; mode++) {
    cio_stream *s;
    int peer;
    CHECK_RC(tcp_pair(&s, &peer, NULL), 0);
    struct feeder f = {peer, d, big + 4, 5, 65536, false};
    cio_task *ft = cio_create_task(feed, &f, NULL);
    CHECK(ft);
    const char *line;
    if (mode == 0) {
      /* readline, as asyncio: CIO_ELIMITOVERRUN, the over-long part
       * discarded; memory stays bounded; "ok" comes through. */
      int overruns = 0;
      for (;;) {
        ssize_t n = cio_stream_readline(s, &line);
        CHECK(cio_stream_buffered(s) <= 4 * 65536);
        if (n == CIO_ELIMITOVERRUN) {
          overruns++;
          continue;
        }
        CHECK(n > 0);
        if (n == 3 && memcmp(line, "ok\n", 3) == 0) break;
        CHECK(n <= 65537); /* the tail of the long line, within the limit */
      }
      CHECK(overruns > 0);
    } else {
      /* readuntil: CIO_ELIMITOVERRUN, the data stays; read() consumes it. */
      CHECK_RC(cio_stream_readuntil(s, "\n", 1, &line), CIO_ELIMITOVERRUN);
      CHECK(cio_stream_buffered(s) > 65536);
      CHECK_RC(cio_stream_readuntil(s, "\n", 1, &line), CIO_ELIMITOVERRUN);
      size_t skipped = 0;
      char buf[65536];
      while (skipped < big) {
        size_t want = big - skipped < sizeof buf ? big - skipped : sizeof buf;
        ssize_t n = cio_stream_read(s, buf, want);
        CHECK(n > 0);
        for (ssize_t i = 0; i < n; i++) CHECK(buf[i] == 'x');
        skipped += (size_t)n;
      }
      CHECK_RC(cio_stream_readline(s, &line), 1);
      CHECK_RC(cio_stream_readline(s, &line), 3);
    }
    CHECK_RC(cio_await(ft, NULL), 0);
    cio_task_unref(ft);
    cio_stream_free(s);
  }
  free(d);
  return 0;
}

static void test_long_line(void **state) {
  (void)state;
  assert_code(run_real(t_long_line, NULL), 0);
}

/* The limit rules of asyncio's readuntil at the edge: the limit counts the
 * data before the separator. */
static int t_limit_edge(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream_opts o = {.limit = 4};
  cio_stream *s;
  int peer;
  CHECK_RC(sp_pair(&s, &peer, &o), 0);
  CHECK_RC(cio_sock_sendall(peer, "abcd\nabcde\nx", 12, NULL), 0);
  CHECK_RC(shutdown(peer, SHUT_WR), 0);
  const char *line;
  CHECK_RC(cio_stream_readuntil(s, "\n", 1, &line), 5);
  CHECK_RC(cio_stream_readuntil(s, "\n", 1, &line), CIO_ELIMITOVERRUN);
  CHECK_RC(cio_stream_readline(s, &line), CIO_ELIMITOVERRUN); /* drops "abcde\n" */
  CHECK_RC(cio_stream_readline(s, &line), 1);
  CHECK(*line == 'x');
  cio_stream_free(s);
  cio_fd_close(peer);
  /* A line that needed a big buffer stays valid after the call that
   * returned it, though the call emptied the buffer. */
  cio_stream_opts big = {.limit = 1 << 20};
  CHECK_RC(sp_pair(&s, &peer, &big), 0);
  size_t n = 600000;
  char *d = malloc(n + 1);
  CHECK(d);
  memset(d, 'a', n);
  d[n] = '\n';
  struct feeder f = {peer, d, n + 1, 1, 65536, false};
  cio_task *ft = cio_create_task(feed, &f, NULL);
  CHECK(ft);
  CHECK_RC(cio_stream_readline(s, &line), n + 1);
  CHECK_RC(cio_stream_buffered(s), 0);
  CHECK(memcmp(line, d, n + 1) == 0);
  CHECK_RC(cio_await(ft, NULL), 0);
  cio_task_unref(ft);
  CHECK_RC(cio_stream_readline(s, &line), 0);
  free(d);
  cio_stream_free(s);
  return 0;
}

static void test_limit_edge(void **state) {
  (void)state;
  assert_code(run_real(t_limit_edge, NULL), 0);
}

/* ---- pipes ---------------------------------------------------------------------------------- */

static int t_pipes(void *arg, void **result) {
  (void)arg;
  (void)result;
  int fds[2];
  CHECK_RC(pipe2(fds, O_CLOEXEC), 0);
  cio_stream *r, *w;
  CHECK_RC(cio_stream_from_fd(fds[0], NULL, &r), 0);
  CHECK_RC(cio_stream_from_fd(fds[1], NULL, &w), 0);
  CHECK_RC(cio_stream_write(r, "x", 1), -EBADF);
  char buf[8];
  CHECK_RC(cio_stream_read(w, buf, 1), -EBADF);
  CHECK(cio_stream_can_write_eof(w));
  CHECK(!cio_stream_can_write_eof(r));
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  CHECK_RC(cio_stream_peername(r, (struct sockaddr *)&ss, &len), -ENOTSOCK);
  size_t big = 1 << 20;
  unsigned char *p = malloc(big);
  CHECK(p);
  fill_pattern(p, big, 9, 0);
  CHECK_RC(cio_stream_write(w, "line one\n", 9), 0);
  CHECK_RC(cio_stream_write(w, p, big), 0);
  CHECK_RC(cio_stream_write_eof(w), 0); /* closes the write end after the flush */
  const char *line;
  CHECK_RC(cio_stream_readline(r, &line), 9);
  char *all;
  size_t alen;
  CHECK_RC(cio_stream_read_all(r, &all, &alen), 0);
  CHECK_RC(alen, big);
  CHECK(memcmp(all, p, big) == 0);
  CHECK(cio_stream_at_eof(r));
  free(all);
  free(p);
  cio_stream_free(r);
  cio_stream_free(w);
  /* A pipe whose reader is gone: -EPIPE, no SIGPIPE. */
  CHECK_RC(pipe2(fds, O_CLOEXEC), 0);
  CHECK_RC(cio_stream_from_fd(fds[1], NULL, &w), 0);
  close(fds[0]);
  CHECK_RC(cio_stream_write(w, "x", 1), -EPIPE);
  CHECK_RC(cio_stream_drain(w), -EPIPE);
  cio_stream_free(w);
  return 0;
}

static void test_pipes(void **state) {
  (void)state;
  assert_code(run_real(t_pipes, NULL), 0);
}

/* ---- bad input ----------------------------------------------------------------------------- */

static int t_bad_input(void *arg, void **result) {
  (void)arg;
  (void)result;
  char buf[8];
  const char *line;
  char *data;
  size_t len;
  CHECK_RC(cio_stream_read(NULL, buf, 1), -EINVAL);
  CHECK_RC(cio_stream_readline(NULL, &line), -EINVAL);
  CHECK_RC(cio_stream_readexactly(NULL, buf, 1), -EINVAL);
  CHECK_RC(cio_stream_readuntil(NULL, "x", 1, &line), -EINVAL);
  CHECK_RC(cio_stream_read_all(NULL, &data, &len), -EINVAL);
  CHECK_RC(cio_stream_write(NULL, "x", 1), -EINVAL);
  CHECK_RC(cio_stream_drain(NULL), -EINVAL);
  CHECK_RC(cio_stream_close(NULL), -EINVAL);
  CHECK_RC(cio_stream_abort(NULL), -EINVAL);
  CHECK_RC(cio_stream_wait_closed(NULL), -EINVAL);
  CHECK_RC(cio_stream_write_eof(NULL), -EINVAL);
  CHECK_RC(cio_stream_fd(NULL), -EINVAL);
  CHECK_RC(cio_stream_set_write_buffer_limits(NULL, 1, 1), -EINVAL);
  CHECK(cio_stream_is_closing(NULL));
  CHECK(!cio_stream_at_eof(NULL));
  CHECK(!cio_stream_can_write_eof(NULL));
  CHECK_RC(cio_stream_write_buffer_size(NULL), 0);
  cio_stream_free(NULL);
  cio_stream *s;
  CHECK_RC(cio_stream_from_fd(-1, NULL, &s), -EBADF);
  CHECK_RC(cio_stream_from_fd(0, NULL, NULL), -EINVAL);
  int fd = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* (files: test_file.c) */
  CHECK(fd >= 0);
  CHECK_RC(cio_stream_from_fd(fd, NULL, &s), -EISDIR);
  close(fd);
  cio_stream_opts bad = {.write_high = 10, .write_low = 20};
  int sv[2];
  CHECK_RC(pair(sv), 0);
  CHECK_RC(cio_stream_from_fd(sv[0], &bad, &s), -EINVAL);
  cio_stream_opts neg = {.connect_timeout = -1};
  CHECK_RC(cio_stream_from_fd(sv[0], &neg, &s), -EINVAL);
  /* limit 0 = the default */
  cio_stream_opts zero = {.limit = 0};
  CHECK_RC(cio_stream_from_fd(sv[0], &zero, &s), 0);
  CHECK_RC(cio_stream_limit(s), 65536);
  CHECK_RC(cio_stream_read(s, NULL, 1), -EINVAL);
  CHECK_RC(cio_stream_read(s, buf, (size_t)-1), -EINVAL); /* a negative size */
  CHECK_RC(cio_stream_readexactly(s, buf, (size_t)-5), -EINVAL);
  CHECK_RC(cio_stream_write(s, buf, (size_t)-1), -EINVAL);
  CHECK_RC(cio_stream_read(s, buf, 0), 0);
  CHECK_RC(cio_stream_readline(s, NULL), -EINVAL);
  CHECK_RC(cio_stream_readexactly(s, NULL, 1), -EINVAL);
  CHECK_RC(cio_stream_readexactly(s, buf, 0), 0);
  CHECK_RC(cio_stream_readuntil(s, "", 0, &line), -EINVAL);
  CHECK_RC(cio_stream_readuntil(s, NULL, 1, &line), -EINVAL);
  CHECK_RC(cio_stream_readuntil(s, "x", 1, NULL), -EINVAL);
  CHECK_RC(cio_stream_readuntil_any(s, NULL, NULL, 0, &line, NULL), -EINVAL);
  const void *seps[] = {"a", ""};
  CHECK_RC(cio_stream_readuntil_any(s, seps, NULL, 2, &line, NULL), -EINVAL);
  CHECK_RC(cio_stream_read_all(s, NULL, &len), -EINVAL);
  CHECK_RC(cio_stream_write(s, NULL, 1), -EINVAL);
  CHECK_RC(cio_stream_write(s, NULL, 0), 0);
  CHECK_RC(cio_stream_writev(s, NULL, -1), -EINVAL);
  CHECK_RC(cio_stream_writelines(s, NULL, 1), -EINVAL);
  CHECK_RC(cio_stream_readline_timeout(s, &line, NAN), -EINVAL);
  CHECK_RC(cio_stream_peername(s, NULL, NULL), -EINVAL);
  /* a closed stream */
  CHECK_RC(cio_sock_sendall(sv[1], "left", 4, NULL), 0);
  CHECK_RC(cio_stream_readexactly(s, buf, 1), 0);
  CHECK_RC(cio_stream_close(s), 0);
  CHECK_RC(cio_stream_close(s), 0);
  CHECK(cio_stream_is_closing(s));
  CHECK_RC(cio_stream_write(s, "x", 1), -EPIPE);
  CHECK_RC(cio_stream_write_eof(s), -EBADF);
  CHECK_RC(cio_stream_read(s, buf, sizeof buf), 3); /* what was buffered */
  CHECK_RC(cio_stream_read(s, buf, sizeof buf), 0);
  CHECK_RC(cio_stream_readline(s, &line), 0);
  CHECK_RC(cio_stream_readexactly(s, buf, 1), CIO_EINCOMPLETE);
  CHECK_RC(cio_stream_drain(s), 0);
  CHECK_RC(cio_stream_wait_closed(s), 0);
  CHECK_RC(cio_stream_fd(s), -EBADF);
  CHECK_RC(cio_stream_peername(s, (struct sockaddr *)buf, &(socklen_t){8}), -EBADF);
  cio_stream_free(s);
  close(sv[1]);
  /* opening */
  CHECK_RC(cio_open_connection(NULL, "1", NULL, &s), -EINVAL);
  CHECK_RC(cio_open_connection("127.0.0.1", "1", NULL, NULL), -EINVAL);
  CHECK_RC(cio_open_unix_connection(NULL, NULL, &s), -EINVAL);
  CHECK_RC(cio_open_unix_connection("/nonexistent/sock", NULL, &s), -ENOENT);
  CHECK(s == NULL);
  /* refused, with every attempt in the message */
  char port[8];
  int lfd = listen_local(1, port);
  CHECK(lfd >= 0);
  cio_fd_close(lfd);
  CHECK_RC(cio_open_connection("127.0.0.1", port, NULL, &s), -ECONNREFUSED);
  CHECK(strstr(cio_errmsg(), "127.0.0.1") != NULL);
  cio_stream_opts he = {.happy_eyeballs_delay = 0.05};
  CHECK_RC(cio_open_connection("127.0.0.1", port, &he, &s), -ECONNREFUSED);
  /* TLS is not built in (yet): a clear code */
  CHECK_RC(cio_stream_start_tls(NULL, NULL, NULL), -EINVAL);
  return 0;
}

static void test_bad_input(void **state) {
  (void)state;
  assert_code(run_real(t_bad_input, NULL), 0);
  /* outside a task */
  cio_stream *s;
  int sv[2];
  assert_int_equal(pair(sv), 0);
  assert_int_equal(cio_stream_from_fd(sv[0], NULL, &s), 0);
  char buf[4];
  assert_code(cio_stream_read(s, buf, 1), CIO_ENOTASK);
  assert_code(cio_stream_drain(s), CIO_ENOTASK);
  cio_stream *s2 = s;
  assert_code(cio_open_connection("127.0.0.1", "1", NULL, &s2), CIO_ENOTASK);
  assert_null(s2);
  cio_stream_free(s);
  close(sv[1]);
}

/* open_connection with happy eyeballs to a live server, and "localhost". */
static int t_connect(void *arg, void **result) {
  (void)arg;
  (void)result;
  char port[8];
  int lfd = listen_local(16, port);
  CHECK(lfd >= 0);
  const char *hosts[] = {"127.0.0.1", "localhost"};
  for (int i = 0; i < 4; i++) {
    cio_stream_opts o = {.happy_eyeballs_delay = i & 1 ? 0.02 : 0, .connect_timeout = 5};
    cio_stream *s;
    int rc = cio_open_connection(hosts[i / 2], port, &o, &s);
    if (rc == -ECONNREFUSED && i >= 2) continue; /* localhost is ::1 only here */
    CHECK_RC(rc, 0);
    int c = cio_sock_accept(lfd, NULL, NULL);
    CHECK(c >= 0);
    CHECK_RC(cio_stream_write(s, "hi\n", 3), 0);
    char buf[4];
    CHECK_RC(cio_sock_recv_into(c, buf, sizeof buf), 3);
    cio_stream_free(s);
    cio_fd_close(c);
  }
  cio_fd_close(lfd);
  /* connect_timeout against a listener whose queue is full (SYNs dropped) */
  lfd = listen_local(1, port);
  CHECK(lfd >= 0);
  int fill[4];
  int nfill = 0;
  for (int i = 0; i < 4; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fd, (struct sockaddr *)&sin, sizeof sin);
    fill[nfill++] = fd;
  }
  CHECK_RC(cio_sleep(0.05), 0);
  cio_stream_opts o = {.connect_timeout = 0.2};
  cio_stream *s = NULL;
  double t0 = wall();
  int rc = cio_open_connection("127.0.0.1", port, &o, &s);
  if (rc == 0) {
    print_message("note: the full listener accepted a connection; timeout not tested\n");
    cio_stream_free(s);
  } else {
    CHECK_RC(rc, -ETIMEDOUT);
    CHECK(s == NULL);
    CHECK(wall() - t0 < 2.0);
  }
  for (int i = 0; i < nfill; i++) close(fill[i]);
  cio_fd_close(lfd);
  return 0;
}

static void test_connect(void **state) {
  (void)state;
  assert_code(run_real(t_connect, NULL), 0);
}

/* Happy eyeballs: the first address never answers (a listener whose queue
 * is full drops the SYN); tried one after another the connection hangs,
 * staggered by 50 ms the second address wins. */
static int t_happy_eyeballs(void *arg, void **result) {
  (void)arg;
  (void)result;
  char hole[8], good[8];
  int lh = listen_local(1, hole), lg = listen_local(4, good);
  CHECK(lh >= 0 && lg >= 0);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(hole)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
  }
  CHECK_RC(cio_sleep(0.05), 0);
  struct sockaddr_in a1 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(hole)),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in a2 = a1;
  a2.sin_port = htons((uint16_t)atoi(good));
  struct addrinfo ai2 = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                         .ai_addrlen = sizeof a2, .ai_addr = (struct sockaddr *)&a2};
  struct addrinfo ai1 = ai2;
  ai1.ai_addr = (struct sockaddr *)&a1;
  ai1.ai_next = &ai2;
  /* one after another: stuck on the first (bounded here by a timeout) */
  cio_timeout to;
  int rc;
  CIO_WITH_TIMEOUT(&to, 0.3, rc) { rc = cio__connect_addrs(&ai1, 0, "test", "0", "test"); }
  if (rc >= 0) {
    print_message("note: the full listener answered; happy eyeballs not tested\n");
    cio_fd_close(rc);
  } else {
    CHECK_RC(rc, -ETIMEDOUT);
    double t0 = wall();
    int fd = cio__connect_addrs(&ai1, 0.05, "test", "0", "test");
    CHECK(fd >= 0);
    CHECK(wall() - t0 < 1.0); /* 0.05 s plus a connect; one after another it never ends */
    CHECK_RC(local_port(fd) > 0, 1);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    CHECK_RC(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
    CHECK(peer.sin_port == a2.sin_port);
    cio_fd_close(fd);
    /* cancelled or timed out in the middle of the race: no fd left behind */
    int before = count_fds();
    for (int i = 0; i < 2; i++) {
      cio_stream_opts o = {.happy_eyeballs_delay = i ? 0.01 : 0, .connect_timeout = 0.03};
      cio_stream *s = NULL;
      rc = cio_open_connection("127.0.0.1", hole, &o, &s);
      CHECK_RC(rc, -ETIMEDOUT);
      CHECK(s == NULL);
    }
    CHECK_RC(count_fds(), before);
  }
  for (int i = 0; i < 4; i++) close(fill[i]);
  cio_fd_close(lh);
  cio_fd_close(lg);
  return 0;
}

static void test_happy_eyeballs(void **state) {
  (void)state;
  assert_code(run_real(t_happy_eyeballs, NULL), 0);
}

/* ---- the transport seam (src/transport.h), as TLS uses it ------------------------------------ */

/* A pass-through transport that XORs every byte with 0x5a (so that bytes
 * going around it would show) and, at random, pretends the fd is not ready
 * (-EAGAIN) in either direction, as OpenSSL does when it needs to read to
 * write or to write to read. */
struct xor_transport {
  struct cio__transport base;
  unsigned seed;
  int destroyed, eofs;
  size_t pending;
  bool eof_never;
};

static ssize_t xt_read(struct cio__transport *t, void *buf, size_t n, unsigned *want) {
  struct xor_transport *x = (struct xor_transport *)t;
  if (rand_r(&x->seed) % 4 == 0) {
    *want = rand_r(&x->seed) % 2 ? CIO__POLL_OUT : CIO__POLL_IN;
    return -EAGAIN;
  }
  ssize_t r = recv(t->fd, buf, n, MSG_DONTWAIT);
  if (r < 0) {
    if (errno == EAGAIN) {
      *want = CIO__POLL_IN;
      return -EAGAIN;
    }
    return cio_raise(-errno, "xor read: %s", strerror(errno));
  }
  for (ssize_t i = 0; i < r; i++) ((unsigned char *)buf)[i] ^= 0x5a;
  return r;
}

static ssize_t xt_writev(struct cio__transport *t, const struct iovec *iov, int cnt,
                         unsigned *want) {
  struct xor_transport *x = (struct xor_transport *)t;
  if (rand_r(&x->seed) % 4 == 0) {
    *want = rand_r(&x->seed) % 3 ? CIO__POLL_OUT : CIO__POLL_IN;
    return -EAGAIN;
  }
  /* one buffer, at most 3000 bytes at a time (a TLS record's worth) */
  unsigned char tmp[3000];
  size_t n = iov[0].iov_len < sizeof tmp ? iov[0].iov_len : sizeof tmp;
  (void)cnt;
  for (size_t i = 0; i < n; i++) tmp[i] = ((const unsigned char *)iov[0].iov_base)[i] ^ 0x5a;
  ssize_t r = send(t->fd, tmp, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (r < 0) {
    if (errno == EAGAIN) {
      *want = CIO__POLL_OUT;
      return -EAGAIN;
    }
    return cio_raise(-errno, "xor write: %s", strerror(errno));
  }
  return r;
}

static int xt_write_eof(struct cio__transport *t, unsigned *want) {
  struct xor_transport *x = (struct xor_transport *)t;
  if (x->eof_never || rand_r(&x->seed) % 2) { /* like close_notify waiting for room */
    *want = rand_r(&x->seed) % 2 ? CIO__POLL_OUT : CIO__POLL_IN;
    return -EAGAIN;
  }
  x->eofs++;
  return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

static size_t xt_pending(struct cio__transport *t) { return ((struct xor_transport *)t)->pending; }
static void xt_destroy(struct cio__transport *t) { ((struct xor_transport *)t)->destroyed++; }

static const struct cio__transport_ops xor_ops = {.read = xt_read, .writev = xt_writev,
                                                  .write_eof = xt_write_eof, .pending = xt_pending,
                                                  .destroy = xt_destroy};

static int t_transport(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream *s;
  int peer;
  CHECK_RC(sp_pair(&s, &peer, NULL), 0);
  if (!cio_tls_available()) /* with TLS, test_tls.c covers start_tls */
    CHECK_RC(cio_stream_start_tls(s, (struct cio_tls_context *)1, "x"), -ENOTSUP);
  CHECK_RC(cio_stream_start_tls(s, NULL, "x"), -EINVAL);
  static struct xor_transport x;
  x = (struct xor_transport){{&xor_ops, cio__stream_fd(s)}, 42, 0, 0, 0, false};
  cio__stream_set_transport(s, &x.base);
  CHECK(cio_stream_is_tls(s));
  CHECK_RC(cio_stream_start_tls(s, (struct cio_tls_context *)1, "x"), -EALREADY);
  /* 1 MiB each way through the transport, with a peer that XORs back */
  size_t big = 1 << 20;
  unsigned char *p = malloc(big), *q = malloc(big);
  CHECK(p && q);
  fill_pattern(p, big, 11, 0);
  CHECK_RC(cio_stream_write(s, p, big), 0);
  size_t n = 0;
  while (n < big) {
    ssize_t r = cio_sock_recv_into(peer, q + n, big - n);
    CHECK(r > 0);
    n += (size_t)r;
  }
  for (size_t i = 0; i < big; i++) CHECK((q[i] ^ 0x5a) == p[i]);
  CHECK_RC(cio_stream_drain(s), 0);
  for (size_t i = 0; i < big; i++) q[i] = p[i] ^ 0x5a;
  struct feeder f = {peer, (const char *)q, big, 3, 5000, true};
  cio_task *ft = cio_create_task(feed, &f, NULL);
  CHECK(ft);
  unsigned char *got = malloc(big);
  CHECK(got);
  CHECK_RC(cio_stream_readexactly(s, got, big / 2), 0);
  /* a pending read while the write side is flushing through the transport */
  CHECK_RC(cio_stream_write(s, p, big), 0);
  CHECK_RC(cio_stream_readexactly(s, got + big / 2, big - big / 2), 0);
  CHECK(memcmp(got, p, big) == 0);
  CHECK_RC(cio_await(ft, NULL), 0);
  cio_task_unref(ft);
  n = 0;
  while (n < big) {
    ssize_t r = cio_sock_recv_into(peer, q + n, big - n);
    CHECK(r > 0);
    n += (size_t)r;
  }
  CHECK_RC(cio_stream_write_eof(s), 0);
  char b;
  CHECK_RC(cio_sock_recv_into(peer, &b, 1), 0); /* EOF after the flush */
  CHECK_RC(x.eofs, 1);
  CHECK_RC(cio_stream_close(s), 0);
  CHECK_RC(cio_stream_wait_closed(s), 0);
  cio_stream_free(s);
  CHECK_RC(x.destroyed, 1);
  cio_fd_close(peer);
  /* close() alone: flush, close_notify (retried until the transport takes
   * it), then the fd closes */
  for (int round = 0; round < 2; round++) {
    /* round 1's shutdown timeout must outlast the flush even on a loaded
     * machine, and round 0 must never meet its own */
    cio_stream_opts o = {.tls_shutdown_timeout = round ? 0.3 : 0};
    CHECK_RC(sp_pair(&s, &peer, &o), 0);
    static struct xor_transport y; /* static: never a dangling pointer if a check fails */
    y = (struct xor_transport){{&xor_ops, cio__stream_fd(s)}, 7u + (unsigned)round, 0, 0, 0,
                               round == 1};
    cio__stream_set_transport(s, &y.base);
    CHECK_RC(cio_stream_write(s, p, 100000), 0);
    CHECK_RC(cio_stream_close(s), 0);
    n = 0;
    for (;;) {
      ssize_t r = cio_sock_recv_into(peer, q + n, big - n);
      CHECK(r >= 0);
      if (r == 0) break;
      n += (size_t)r;
    }
    CHECK_RC(n, 100000);
    /* round 1: the transport never takes the EOF: the shutdown timeout
     * closes the fd anyway, and wait_closed says so (asyncio: TimeoutError) */
    CHECK_RC(cio_stream_wait_closed(s), round == 0 ? 0 : -ETIMEDOUT);
    if (round == 1) CHECK(strstr(cio_errmsg(), "tls_shutdown_timeout (0.3 s)") != NULL);
    CHECK_RC(y.eofs, round == 0 ? 1 : 0);
    cio_stream_free(s);
    cio_fd_close(peer);
  }
  free(p);
  free(q);
  free(got);
  return 0;
}

static void test_transport(void **state) {
  (void)state;
  assert_code(run_real(t_transport, NULL), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL); /* a stray SIGPIPE must kill the test */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_write_read_all),
      cmocka_unit_test(test_fuzz),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_drain),
      cmocka_unit_test(test_drain_many),
      cmocka_unit_test(test_reset),
      cmocka_unit_test(test_drain_cancel),
      cmocka_unit_test(test_close_wakes_reader),
      cmocka_unit_test(test_long_line),
      cmocka_unit_test(test_limit_edge),
      cmocka_unit_test(test_pipes),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_connect),
      cmocka_unit_test(test_happy_eyeballs),
      cmocka_unit_test(test_transport),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
