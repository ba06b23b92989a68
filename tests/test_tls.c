/* TLS (src/tls.c): contexts, the handshake and its failures, the transport
 * under bulk traffic, EOF with and without close_notify, timeouts, client
 * certificates, ALPN. Real sockets over loopback; the certificates (a CA, a
 * server certificate for localhost and 127.0.0.1, an expired one, a
 * self-signed one, one for another host, one from an unknown CA, a client
 * certificate) are made here with OpenSSL's API into a temporary directory.
 *
 * The transport is driven the way the stream layer drives it: call the op,
 * on -EAGAIN wait for *want with cio__fd_wait and call again. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "io_test_util.h"
#include "tls.h"

/* ---- certificates --------------------------------------------------------------- */

static char dir[64];
static char path_buf[16][128];
static int npaths;

static const char *path(const char *name) {
  char *p = path_buf[npaths++ % 16];
  snprintf(p, 128, "%s/%s", dir, name);
  return p;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  assert_non_null(e);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

/* A certificate for `cn` with subjectAltName `san` (NULL: none), valid from
 * `from` to `to` seconds relative to now, signed by (issuer, ikey) or by
 * itself; a CA when `ca`. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *ikey, long from, long to, bool ca) {
  static long serial = 1;
  X509 *x = X509_new();
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from);
  X509_gmtime_adj(X509_getm_notAfter(x), to);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  add_ext(x, issuer ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(x, x, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
  if (san) add_ext(x, x, NID_subject_alt_name, san);
  assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
  return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *key) {
  FILE *f = fopen(path(name), "w");
  assert_non_null(f);
  if (x) PEM_write_X509(f, x);
  if (key) PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  fclose(f);
}

static int make_certs(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: prove there is none */
  snprintf(dir, sizeof dir, "/tmp/cio_tls_XXXXXX");
  if (!mkdtemp(dir)) return -1;
  EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256"),
           *otherkey = EVP_EC_gen("P-256"), *ckey = EVP_EC_gen("P-256");
  const long day = 86400;
  X509 *ca = make_cert(cakey, "cio test CA", NULL, NULL, NULL, -day, 30 * day, true);
  X509 *other_ca = make_cert(otherkey, "another CA", NULL, NULL, NULL, -day, 30 * day, true);
  X509 *good = make_cert(key, "localhost", "DNS:localhost,IP:127.0.0.1", ca, cakey, -day,
                         30 * day, false);
  X509 *expired = make_cert(key, "localhost", "DNS:localhost,IP:127.0.0.1", ca, cakey,
                            -30 * day, -day, false);
  X509 *self = make_cert(key, "localhost", "DNS:localhost,IP:127.0.0.1", NULL, NULL, -day,
                         30 * day, false);
  X509 *wrong = make_cert(key, "example.com", "DNS:example.com", ca, cakey, -day, 30 * day, false);
  X509 *unknown = make_cert(key, "localhost", "DNS:localhost", other_ca, otherkey, -day, 30 * day,
                            false);
  X509 *client = make_cert(ckey, "cio test client", NULL, ca, cakey, -day, 30 * day, false);
  write_pem("ca.pem", ca, NULL);
  write_pem("key.pem", NULL, key);
  write_pem("good.pem", good, NULL);
  write_pem("expired.pem", expired, NULL);
  write_pem("self.pem", self, NULL);
  write_pem("wrong.pem", wrong, NULL);
  write_pem("unknown.pem", unknown, NULL);
  FILE *f = fopen(path("unknownchain.pem"), "w"); /* leaf then its (self-signed) CA */
  PEM_write_X509(f, unknown);
  PEM_write_X509(f, other_ca);
  fclose(f);
  write_pem("client.pem", client, ckey); /* certificate and key in one file */
  write_pem("otherkey.pem", NULL, otherkey);
  X509 *all[] = {ca, other_ca, good, expired, self, wrong, unknown, client};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) X509_free(all[i]);
  EVP_PKEY_free(cakey), EVP_PKEY_free(key), EVP_PKEY_free(otherkey), EVP_PKEY_free(ckey);
  return 0;
}

static int remove_certs(void **state) {
  (void)state;
  const char *names[] = {"ca.pem", "key.pem", "good.pem", "expired.pem", "self.pem",
                         "wrong.pem", "unknown.pem", "unknownchain.pem", "client.pem", "otherkey.pem"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(path(names[i]));
  rmdir(dir);
  return 0;
}

static cio_tls_context *server_ctx(const char *cert, bool verify_client,
                                   const char *const *alpn) {
  cio_tls_options o = {.server = true, .cert_file = path(cert), .key_file = path("key.pem"),
                       .verify_client = verify_client, .ca_file = verify_client ? path("ca.pem") : NULL,
                       .alpn = alpn};
  return cio_tls_context_new(&o);
}

static cio_tls_context *client_ctx(void) {
  cio_tls_options o = {.ca_file = path("ca.pem")};
  return cio_tls_context_new(&o);
}

/* ---- driving a transport as the stream does ---------------------------------------- */

static ssize_t t_read(struct cio__transport *t, void *buf, size_t n) {
  for (;;) {
    unsigned want = 0;
    ssize_t r = t->ops->read(t, buf, n, &want);
    if (r != -EAGAIN) return r;
    int rc = cio__fd_wait(cio__current(), t->fd, want, "t_read");
    if (rc < 0) return rc;
  }
}

static int t_writev_all(struct cio__transport *t, struct iovec *iov, int cnt) {
  while (cnt > 0) {
    unsigned want = 0;
    ssize_t r = t->ops->writev(t, iov, cnt, &want);
    if (r == -EAGAIN) {
      int rc = cio__fd_wait(cio__current(), t->fd, want, "t_write");
      if (rc < 0) return rc;
      continue;
    }
    if (r < 0) return (int)r;
    size_t w = (size_t)r;
    while (cnt > 0 && w >= iov->iov_len) w -= iov->iov_len, iov++, cnt--;
    if (cnt > 0) iov->iov_base = (char *)iov->iov_base + w, iov->iov_len -= w;
  }
  return 0;
}

static int t_write_all(struct cio__transport *t, const void *buf, size_t n) {
  struct iovec iov = {(void *)buf, n};
  return t_writev_all(t, &iov, 1);
}

static int t_write_eof(struct cio__transport *t) {
  for (;;) {
    unsigned want = 0;
    int r = t->ops->write_eof(t, &want);
    if (r != -EAGAIN) return r;
    int rc = cio__fd_wait(cio__current(), t->fd, want, "t_write_eof");
    if (rc < 0) return rc;
  }
}

/* Read exactly n bytes (or fail with CIO_EINCOMPLETE at EOF). */
static int t_read_exactly(struct cio__transport *t, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = t_read(t, (char *)buf + got, n - got);
    if (r < 0) return (int)r;
    if (r == 0) return cio_raise(CIO_EINCOMPLETE, "EOF after %zu of %zu bytes", got, n);
    got += (size_t)r;
  }
  return 0;
}

/* ---- one client and one server over loopback ------------------------------------ */

struct side {
  cio_tls_context *ctx;
  const char *host;            /* client: the name to verify */
  double timeout;              /* handshake timeout (0: default) */
  int (*body)(struct side *s); /* after a successful handshake */
  int fd;
  struct cio__transport *t;
  int hs_rc, rc;               /* handshake outcome, body outcome */
  char hs_msg[512];
  char subject[256];
  const char *alpn, *version; /* alpn points to alpn_buf (the transport is gone by then) */
  char alpn_buf[256];
  /* per-test data */
  size_t bytes;
  uint64_t sum;
};

static int run_side(struct side *s, bool server) {
  int rc = cio__tls_transport_new(s->ctx, s->fd, s->host, server, NULL, 0, &s->t);
  if (rc < 0) return rc;
  s->hs_rc = cio__tls_handshake(s->t, s->timeout, server ? "server" : "client");
  snprintf(s->hs_msg, sizeof s->hs_msg, "%s", cio_errmsg());
  if (s->hs_rc == 0) {
    const char *a = cio__tls_alpn(s->t);
    if (a) s->alpn = strcpy(s->alpn_buf, a);
    s->version = cio__tls_version(s->t);
    if (cio__tls_peer_subject(s->t, s->subject, sizeof s->subject) < 0) s->subject[0] = 0;
    s->rc = s->body ? s->body(s) : 0;
  }
  return 0;
}

struct pair_run {
  struct side *cli, *srv;
  int lfd;
  char port[8];
};

static int server_task(void *arg, void **res) {
  (void)res;
  struct pair_run *p = arg;
  int fd = cio_sock_accept(p->lfd, NULL, NULL);
  if (fd < 0) return fd;
  p->srv->fd = fd;
  int rc = run_side(p->srv, true);
  if (p->srv->t) p->srv->t->ops->destroy(p->srv->t);
  cio_fd_close(fd);
  return rc;
}

static int client_task(void *arg, void **res) {
  (void)res;
  struct pair_run *p = arg;
  int fd = cio_tcp_connect("127.0.0.1", p->port);
  if (fd < 0) return fd;
  p->cli->fd = fd;
  int rc = run_side(p->cli, false);
  if (p->cli->t) p->cli->t->ops->destroy(p->cli->t);
  cio_fd_close(fd);
  return rc;
}

static int pair_main(void *arg, void **res) {
  (void)res;
  struct pair_run *p = arg;
  p->lfd = listen_local(16, p->port);
  if (p->lfd < 0) return p->lfd;
  cio_task *a = cio_create_task(server_task, p, NULL);
  cio_task *b = cio_create_task(client_task, p, NULL);
  int ra = cio_await(a, NULL), rb = cio_await(b, NULL);
  cio_task_unref(a), cio_task_unref(b);
  cio_fd_close(p->lfd);
  return ra < 0 ? ra : rb;
}

static void run_pair(struct side *cli, struct side *srv) {
  struct pair_run p = {.cli = cli, .srv = srv};
  int rc = run_real(pair_main, &p);
  if (rc < 0) fail_msg("pair: %s: %s", cio_err_name(rc), cio_errmsg());
}

/* ---- handshake and a message --------------------------------------------------- */

static int echo_once_server(struct side *s) {
  char buf[64];
  ssize_t n = t_read(s->t, buf, sizeof buf);
  if (n <= 0) return n < 0 ? (int)n : cio_raise(CIO_ERUNTIME, "unexpected EOF");
  int rc = t_write_all(s->t, buf, (size_t)n);
  if (rc < 0) return rc;
  rc = t_write_eof(s->t); /* close_notify */
  if (rc < 0) return rc;
  n = t_read(s->t, buf, sizeof buf); /* the client's close_notify */
  return n == 0 ? 0 : cio_raise(CIO_ERUNTIME, "server: expected EOF, got %zd", n);
}

static int echo_once_client(struct side *s) {
  struct iovec iov[3] = {{"hel", 3}, {"lo, ", 4}, {"TLS", 3}}; /* coalesced into one record */
  int rc = t_writev_all(s->t, iov, 3);
  if (rc < 0) return rc;
  char buf[64];
  rc = t_read_exactly(s->t, buf, 10);
  if (rc < 0) return rc;
  CHECK(memcmp(buf, "hello, TLS", 10) == 0);
  ssize_t n = t_read(s->t, buf, sizeof buf); /* close_notify: a clean EOF */
  CHECK_RC(n, 0);
  CHECK_RC(t_read(s->t, buf, sizeof buf), 0); /* and it stays EOF */
  return t_write_eof(s->t);
}

static void test_handshake(void **state) {
  (void)state;
  struct side srv = {.ctx = server_ctx("good.pem", false, NULL), .body = echo_once_server};
  struct side cli = {.ctx = client_ctx(), .host = "localhost", .body = echo_once_client};
  assert_non_null(srv.ctx);
  assert_non_null(cli.ctx);
  run_pair(&cli, &srv);
  assert_int_equal(cli.hs_rc, 0);
  assert_int_equal(srv.hs_rc, 0);
  if (cli.rc) fail_msg("client: %s", cio_err_name(cli.rc));
  if (srv.rc) fail_msg("server: %s", cio_err_name(srv.rc));
  assert_string_equal(cli.version, "TLSv1.3");
  assert_null(cli.alpn);
  assert_string_equal(cli.subject, "CN = localhost");
  assert_string_equal(srv.subject, ""); /* no client certificate */
  /* An IP address is checked as an IP (the certificate has IP:127.0.0.1). */
  struct side srv2 = {.ctx = srv.ctx, .body = echo_once_server};
  struct side cli2 = {.ctx = cli.ctx, .host = "127.0.0.1", .body = echo_once_client};
  run_pair(&cli2, &srv2);
  assert_int_equal(cli2.hs_rc, 0);
  assert_int_equal(cli2.rc, 0);
  cio_tls_context_unref(srv.ctx);
  cio_tls_context_unref(cli.ctx);
}

/* ---- every bad certificate ------------------------------------------------------ */

static void expect_cert_failure(const char *cert, const char *host, const char *want_msg) {
  struct side srv = {.ctx = server_ctx(cert, false, NULL)};
  struct side cli = {.ctx = client_ctx(), .host = host};
  assert_non_null(srv.ctx);
  run_pair(&cli, &srv);
  if (cli.hs_rc != CIO_ECERT || !strstr(cli.hs_msg, want_msg))
    fail_msg("%s for %s: got %s \"%s\", expected CIO_ECERT \"...%s...\"", cert, host,
             cio_err_name(cli.hs_rc), cli.hs_msg, want_msg);
  /* The server learns of it through the client's alert. */
  if (srv.hs_rc != CIO_ETLS || !strstr(srv.hs_msg, "alert"))
    fail_msg("server side of %s: %s \"%s\"", cert, cio_err_name(srv.hs_rc), srv.hs_msg);
  cio_tls_context_unref(srv.ctx);
  cio_tls_context_unref(cli.ctx);
}

static void test_bad_certificates(void **state) {
  (void)state;
  expect_cert_failure("expired.pem", "localhost", "certificate has expired");
  expect_cert_failure("self.pem", "localhost", "self-signed certificate");
  expect_cert_failure("wrong.pem", "localhost", "hostname mismatch");
  expect_cert_failure("wrong.pem", "localhost", "not valid for 'localhost'");
  expect_cert_failure("unknown.pem", "localhost", "unable to get local issuer certificate");
  expect_cert_failure("unknownchain.pem", "localhost", "self-signed certificate in certificate chain");
  expect_cert_failure("good.pem", "127.0.0.2", "IP address mismatch");
  expect_cert_failure("good.pem", "other.localhost", "hostname mismatch");
}

/* The insecure option accepts all of them (tests only). */
static void test_insecure_accepts_anything(void **state) {
  (void)state;
  cio_tls_options o = {.insecure_no_verify = true};
  const char *certs[] = {"expired.pem", "self.pem", "wrong.pem"};
  for (int i = 0; i < 3; i++) {
    struct side srv = {.ctx = server_ctx(certs[i], false, NULL), .body = echo_once_server};
    struct side cli = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = echo_once_client};
    run_pair(&cli, &srv);
    assert_int_equal(cli.hs_rc, 0);
    assert_int_equal(cli.rc, 0);
    assert_int_equal(srv.rc, 0);
    cio_tls_context_unref(srv.ctx);
    cio_tls_context_unref(cli.ctx);
  }
}

/* ---- 64 MiB both ways ------------------------------------------------------------ */

#define BULK (16u << 20) /* the stream-level test below moves 64 MiB */

struct bulk_dir {
  struct side *s;
  uint32_t id_out, id_in;
  int rc;
  uint64_t sum_in, want_in;
};

static int bulk_writer(void *arg, void **res) {
  (void)res;
  struct bulk_dir *d = arg;
  static _Thread_local unsigned char chunk[2][100000];
  unsigned char *buf = chunk[d->id_out & 1];
  size_t off = 0;
  size_t k = 0;
  while (off < BULK) {
    /* odd sizes, several iovecs: small pieces coalesce, big ones go in place */
    size_t n = 1 + (k * 7919) % 99999;
    if (n > BULK - off) n = BULK - off;
    fill_pattern(buf, n, d->id_out, off);
    size_t a = n / 3, b = n / 7;
    struct iovec iov[3] = {{buf, a}, {buf + a, b}, {buf + a + b, n - a - b}};
    int rc = t_writev_all(d->s->t, iov, 3);
    if (rc < 0) return rc;
    off += n, k++;
  }
  return t_write_eof(d->s->t);
}

static int bulk_body(struct side *s, uint32_t out, uint32_t in) {
  struct bulk_dir d = {.s = s, .id_out = out, .id_in = in};
  cio_task *w = cio_create_task(bulk_writer, &d, NULL);
  if (!w) return cio_errcode();
  static _Thread_local unsigned char rbuf[2][65536], expect[2][65536];
  unsigned char *buf = rbuf[in & 1], *exp = expect[in & 1];
  size_t off = 0;
  uint64_t sum = FNV_INIT, want = FNV_INIT;
  int rc = 0;
  for (;;) {
    ssize_t n = t_read(s->t, buf, 65536);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    if (n == 0) break;
    if (off + (size_t)n > BULK) {
      rc = cio_raise(CIO_ERUNTIME, "more than %u bytes", BULK);
      break;
    }
    fill_pattern(exp, (size_t)n, in, off);
    sum = fnv1a(sum, buf, (size_t)n);
    want = fnv1a(want, exp, (size_t)n);
    off += (size_t)n;
  }
  int wrc = cio_await(w, NULL);
  cio_task_unref(w);
  if (rc < 0) return rc;
  if (wrc < 0) return wrc;
  if (off != BULK) return cio_raise(CIO_ERUNTIME, "got %zu bytes, expected %u", off, BULK);
  if (sum != want) return cio_raise(CIO_ERUNTIME, "checksum mismatch");
  s->sum = sum;
  s->bytes = off;
  return 0;
}

static int bulk_server(struct side *s) { return bulk_body(s, 2, 1); }
static int bulk_client(struct side *s) { return bulk_body(s, 1, 2); }

static void test_64mib_both_ways(void **state) {
  (void)state;
  struct side srv = {.ctx = server_ctx("good.pem", false, NULL), .body = bulk_server};
  struct side cli = {.ctx = client_ctx(), .host = "localhost", .body = bulk_client};
  run_pair(&cli, &srv);
  if (cli.rc || srv.rc)
    fail_msg("client %s, server %s", cio_err_name(cli.rc), cio_err_name(srv.rc));
  assert_int_equal(cli.bytes, BULK);
  assert_int_equal(srv.bytes, BULK);
  cio_tls_context_unref(srv.ctx);
  cio_tls_context_unref(cli.ctx);
}

/* ---- EOF without close_notify ----------------------------------------------------- */

static int abrupt_server(struct side *s) {
  int rc = t_write_all(s->t, "bye", 3);
  if (rc < 0) return rc;
  shutdown(s->fd, SHUT_WR); /* TCP FIN, no close_notify */
  char buf[8];
  return (int)t_read(s->t, buf, sizeof buf) < 0 ? 0 : 0;
}

static int abrupt_client(struct side *s) {
  char buf[8];
  int rc = t_read_exactly(s->t, buf, 3);
  if (rc < 0) return rc;
  ssize_t n = t_read(s->t, buf, sizeof buf);
  s->bytes = 3;
  int code = (int)n;
  t_write_eof(s->t);
  return code; /* 0 (EOF) or the strict error */
}

static void test_eof_without_close_notify(void **state) {
  (void)state;
  /* Default: reported as EOF, as asyncio does. */
  struct side srv = {.ctx = server_ctx("good.pem", false, NULL), .body = abrupt_server};
  struct side cli = {.ctx = client_ctx(), .host = "localhost", .body = abrupt_client};
  run_pair(&cli, &srv);
  assert_int_equal(cli.hs_rc, 0);
  assert_int_equal(cli.rc, 0);
  assert_int_equal(cli.bytes, 3);
  cio_tls_context_unref(cli.ctx);
  /* strict_eof: a truncation is an error that says so. */
  cio_tls_options o = {.ca_file = path("ca.pem"), .strict_eof = true};
  struct side srv2 = {.ctx = srv.ctx, .body = abrupt_server};
  struct side cli2 = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = abrupt_client};
  run_pair(&cli2, &srv2);
  assert_int_equal(cli2.rc, CIO_ETLS);
  cio_tls_context_unref(cli2.ctx);
  cio_tls_context_unref(srv.ctx);
}

/* The peer vanishes while we write: -EPIPE / -ECONNRESET, never SIGPIPE. */
static int vanish_server(struct side *s) {
  struct linger lg = {1, 0};
  setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  return 0; /* the caller closes: RST */
}

static int write_to_gone(struct side *s) {
  static char big[65536];
  int rc = 0;
  for (int i = 0; i < 1000 && rc == 0; i++) rc = t_write_all(s->t, big, sizeof big);
  CHECK(rc == -EPIPE || rc == -ECONNRESET);
  return 0;
}

static void test_no_sigpipe(void **state) {
  (void)state;
  struct side srv = {.ctx = server_ctx("good.pem", false, NULL), .body = vanish_server};
  struct side cli = {.ctx = client_ctx(), .host = "localhost", .body = write_to_gone};
  run_pair(&cli, &srv);
  assert_int_equal(cli.hs_rc, 0);
  if (cli.rc) fail_msg("client: %s", cio_err_name(cli.rc));
  cio_tls_context_unref(srv.ctx);
  cio_tls_context_unref(cli.ctx);
}

/* ---- handshake timeout (virtual clock) -------------------------------------------- */

static int silent_main(void *arg, void **res) {
  (void)res, (void)arg;
  char port[8];
  int lfd = listen_local(4, port); /* never accepts: the kernel completes the connect */
  CHECK(lfd >= 0);
  int fd = cio_tcp_connect("127.0.0.1", port);
  CHECK(fd >= 0);
  cio_tls_context *ctx = client_ctx();
  struct cio__transport *t;
  CHECK_RC(cio__tls_transport_new(ctx, fd, "localhost", false, NULL, 0, &t), 0);
  double t0 = cio_loop_time(cur_loop());
  int rc = cio__tls_handshake(t, 0, "client"); /* default: 60 s */
  double took = cio_loop_time(cur_loop()) - t0;
  char msg[256];
  snprintf(msg, sizeof msg, "%s", cio_errmsg());
  t->ops->destroy(t);
  cio_tls_context_unref(ctx);
  cio_fd_close(fd);
  cio_fd_close(lfd);
  CHECK_RC(rc, -ETIMEDOUT);
  CHECK(strstr(msg, "timed out after 60 s"));
  CHECK(took >= 60 && took < 60.5);
  return 0;
}

static void test_handshake_timeout(void **state) {
  (void)state;
  int rc = run_virtual(silent_main, NULL);
  if (rc) fail_msg("%s: %s", cio_err_name(rc), cio_errmsg());
}

/* ---- client certificates ---------------------------------------------------------- */

static void test_client_certificates(void **state) {
  (void)state;
  /* With a certificate from the CA: accepted, the server sees who. */
  cio_tls_options o = {.ca_file = path("ca.pem"), .cert_file = path("client.pem")};
  struct side srv = {.ctx = server_ctx("good.pem", true, NULL), .body = echo_once_server};
  struct side cli = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = echo_once_client};
  assert_non_null(cli.ctx);
  run_pair(&cli, &srv);
  assert_int_equal(srv.hs_rc, 0);
  assert_int_equal(cli.rc, 0);
  assert_string_equal(srv.subject, "CN = cio test client");
  cio_tls_context_unref(cli.ctx);
  /* Without one: the server refuses; the client (TLS 1.3: its handshake ends
   * before the server has checked) learns it from the alert at its first read. */
  struct side srv2 = {.ctx = srv.ctx, .body = echo_once_server};
  struct side cli2 = {.ctx = client_ctx(), .host = "localhost", .body = echo_once_client};
  run_pair(&cli2, &srv2);
  if (srv2.hs_rc != CIO_ETLS || !strstr(srv2.hs_msg, "certificate"))
    fail_msg("server: %s \"%s\"", cio_err_name(srv2.hs_rc), srv2.hs_msg);
  assert_true(cli2.hs_rc == CIO_ETLS || cli2.rc == CIO_ETLS);
  cio_tls_context_unref(cli2.ctx);
  cio_tls_context_unref(srv.ctx);
}

/* ---- ALPN ----------------------------------------------------------------------------- */

static void test_alpn(void **state) {
  (void)state;
  const char *srv_protos[] = {"http/1.1", "h2", NULL};
  const char *cli_protos[] = {"h2", "http/1.1", NULL};
  const char *cli_other[] = {"spdy/3", NULL};
  cio_tls_context *sctx = server_ctx("good.pem", false, srv_protos);
  assert_non_null(sctx);
  cio_tls_options o = {.ca_file = path("ca.pem"), .alpn = cli_protos};
  struct side srv = {.ctx = sctx, .body = echo_once_server};
  struct side cli = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = echo_once_client};
  run_pair(&cli, &srv);
  assert_int_equal(cli.rc, 0);
  assert_string_equal(cli.alpn, "http/1.1"); /* the server's preference */
  assert_string_equal(srv.alpn, "http/1.1");
  cio_tls_context_unref(cli.ctx);
  o.alpn = cli_other; /* nothing in common: no protocol, no failure */
  struct side srv2 = {.ctx = sctx, .body = echo_once_server};
  struct side cli2 = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = echo_once_client};
  run_pair(&cli2, &srv2);
  assert_int_equal(cli2.rc, 0);
  assert_null(cli2.alpn);
  assert_null(srv2.alpn);
  cio_tls_context_unref(cli2.ctx);
  cio_tls_context_unref(sctx);
}

/* ---- a peer that does not speak TLS ------------------------------------------------- */

static int plain_peer_main(void *arg, void **res) {
  (void)res;
  bool tls_is_server = *(bool *)arg;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  int cfd = cio_tcp_connect("127.0.0.1", port);
  CHECK(cfd >= 0);
  int sfd = cio_sock_accept(lfd, NULL, NULL);
  CHECK(sfd >= 0);
  int tls_fd = tls_is_server ? sfd : cfd, plain_fd = tls_is_server ? cfd : sfd;
  const char *text = tls_is_server ? "GET / HTTP/1.0\r\n\r\n" : "HTTP/1.0 400 Bad Request\r\n\r\n";
  CHECK_RC(cio_sock_sendall(plain_fd, text, strlen(text), NULL), 0);
  cio_tls_context *ctx = tls_is_server ? server_ctx("good.pem", false, NULL) : client_ctx();
  struct cio__transport *t;
  CHECK_RC(cio__tls_transport_new(ctx, tls_fd, "localhost", tls_is_server, NULL, 0, &t), 0);
  int rc = cio__tls_handshake(t, 5, "handshake");
  char msg[256];
  snprintf(msg, sizeof msg, "%s", cio_errmsg());
  t->ops->destroy(t);
  cio_tls_context_unref(ctx);
  cio_fd_close(cfd), cio_fd_close(sfd), cio_fd_close(lfd);
  CHECK_RC(rc, CIO_ETLS);
  CHECK(strstr(msg, tls_is_server ? "http request" : "wrong version number"));
  return 0;
}

static void test_peer_not_tls(void **state) {
  (void)state;
  for (int server = 0; server < 2; server++) {
    bool b = server;
    int rc = run_real(plain_peer_main, &b);
    if (rc) fail_msg("TLS %s: %s: %s", b ? "server" : "client", cio_err_name(rc), cio_errmsg());
  }
}

/* ---- TLS 1.2, and another implementation: the openssl command ---------------------- */

static void test_tls12(void **state) {
  (void)state;
  cio_tls_options o = {.ca_file = path("ca.pem"), .max_version = CIO_TLS_1_2};
  struct side srv = {.ctx = server_ctx("good.pem", false, NULL), .body = echo_once_server};
  struct side cli = {.ctx = cio_tls_context_new(&o), .host = "localhost", .body = echo_once_client};
  assert_non_null(cli.ctx);
  run_pair(&cli, &srv);
  assert_int_equal(cli.hs_rc, 0);
  if (cli.rc || srv.rc) fail_msg("client %s, server %s", cio_err_name(cli.rc), cio_err_name(srv.rc));
  assert_string_equal(cli.version, "TLSv1.2");
  assert_string_equal(srv.version, "TLSv1.2");
  cio_tls_context_unref(cli.ctx);
  /* A client that wants 1.3 only and a server that stops at 1.2: no protocol in common. */
  cio_tls_options s12 = {.server = true, .cert_file = path("good.pem"), .key_file = path("key.pem"),
                         .max_version = CIO_TLS_1_2};
  cio_tls_options c13 = {.ca_file = path("ca.pem"), .min_version = CIO_TLS_1_3};
  struct side srv2 = {.ctx = cio_tls_context_new(&s12)};
  struct side cli2 = {.ctx = cio_tls_context_new(&c13), .host = "localhost"};
  run_pair(&cli2, &srv2);
  assert_code(cli2.hs_rc, CIO_ETLS);
  assert_code(srv2.hs_rc, CIO_ETLS);
  cio_tls_context_unref(srv2.ctx);
  cio_tls_context_unref(cli2.ctx);
  cio_tls_context_unref(srv.ctx);
}

struct s_server_run {
  pid_t pid;
  char port[8];
  char reply[64];
  const char *version;
};

static int s_server_client(void *arg, void **res) {
  (void)res;
  struct s_server_run *r = arg;
  cio_stream_opts so = {.tls = client_ctx()};
  cio_stream *s = NULL;
  int rc = -ECONNREFUSED;
  for (int i = 0; i < 200 && rc == -ECONNREFUSED; i++) { /* until openssl listens */
    rc = cio_open_connection("localhost", r->port, &so, &s);
    if (rc == -ECONNREFUSED) CHECK_RC(cio_sleep(0.02), 0);
  }
  cio_tls_context_unref(so.tls);
  if (rc < 0) return rc;
  const char *v = cio_stream_tls_version(s);
  r->version = v && strcmp(v, "TLSv1.2") == 0 ? "TLSv1.2" : "other";
  cio_stream_write(s, "hello\n", 6);
  const char *line;
  ssize_t n = cio_stream_readline_timeout(s, &line, 10);
  if (n > 0) snprintf(r->reply, sizeof r->reply, "%.*s", (int)n, line);
  cio_stream_close(s);
  int wc = cio_stream_wait_closed(s);
  cio_stream_free(s);
  return n < 0 ? (int)n : wc;
}

static void test_openssl_s_server_tls12(void **state) {
  (void)state;
  if (system("command -v openssl >/dev/null 2>&1") != 0) skip();
  struct s_server_run r = {0};
  int lfd = socket(AF_INET, SOCK_STREAM, 0); /* a free port (tiny race: fine on loopback) */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  snprintf(r.port, sizeof r.port, "%d", local_port(lfd) & 0xffff);
  close(lfd);
  char accept_arg[32];
  snprintf(accept_arg, sizeof accept_arg, "127.0.0.1:%s", r.port);
  r.pid = fork();
  assert_true(r.pid >= 0);
  if (r.pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    execlp("openssl", "openssl", "s_server", "-accept", accept_arg, "-cert", path("good.pem"),
           "-key", path("key.pem"), "-tls1_2", "-rev", "-naccept", "1", (char *)NULL);
    _exit(127);
  }
  int rc = run_real(s_server_client, &r);
  kill(r.pid, SIGTERM);
  waitpid(r.pid, NULL, 0);
  if (rc) fail_msg("%s: %s", cio_err_name(rc), cio_errmsg());
  assert_string_equal(r.version, "TLSv1.2");
  assert_string_equal(r.reply, "olleh\n"); /* -rev: each line reversed */
}

/* ---- contexts: bad options ---------------------------------------------------------- */

static void test_context_errors(void **state) {
  (void)state;
  cio_tls_context *c = cio_tls_context_new(NULL); /* the default client: system CA store */
  assert_non_null(c);
  assert_ptr_equal(cio_tls_context_ref(c), c);
  cio_tls_context_unref(c);
  cio_tls_context_unref(c);
  cio_tls_context_unref(NULL);
  assert_true(cio_tls_available());

  cio_tls_options o = {.server = true};
  assert_null(cio_tls_context_new(&o));
  assert_code(cio_errcode(), -EINVAL);
  o.cert_file = path("missing.pem");
  assert_null(cio_tls_context_new(&o));
  assert_code(cio_errcode(), CIO_ETLS);
  assert_non_null(strstr(cio_errmsg(), "missing.pem"));
  o.cert_file = path("good.pem");
  o.key_file = path("otherkey.pem"); /* not this certificate's key */
  assert_null(cio_tls_context_new(&o));
  assert_code(cio_errcode(), CIO_ETLS);
  assert_non_null(strstr(cio_errmsg(), "otherkey.pem"));
  o.key_file = path("key.pem");
  o.verify_client = true; /* without a CA */
  assert_null(cio_tls_context_new(&o));
  assert_code(cio_errcode(), -EINVAL);
  o.verify_client = false;
  o.insecure_no_verify = true;
  assert_null(cio_tls_context_new(&o));
  assert_code(cio_errcode(), -EINVAL);
  const char *bad_alpn[] = {"", NULL};
  cio_tls_options a = {.alpn = bad_alpn};
  assert_null(cio_tls_context_new(&a));
  assert_code(cio_errcode(), -EINVAL);
  cio_tls_options v = {.min_version = 0x0301};
  assert_null(cio_tls_context_new(&v));
  assert_code(cio_errcode(), -EINVAL);
  cio_tls_options v2 = {.min_version = CIO_TLS_1_3, .max_version = CIO_TLS_1_2};
  assert_null(cio_tls_context_new(&v2));
  assert_code(cio_errcode(), -EINVAL);
  cio_tls_options ca = {.ca_file = path("missing-ca.pem")};
  assert_null(cio_tls_context_new(&ca));
  assert_code(cio_errcode(), CIO_ETLS);

  /* A server context cannot run a client's side and the reverse. */
  cio_tls_context *cli = client_ctx();
  struct cio__transport *t = NULL;
  assert_code(cio__tls_transport_new(cli, 0, "x", true, NULL, 0, &t), -EINVAL);
  assert_code(cio__tls_transport_new(NULL, 0, "x", false, NULL, 0, &t), -EINVAL);
  assert_code(cio__tls_transport_new(cli, -1, "x", false, NULL, 0, &t), -EINVAL);
  cio_tls_context_unref(cli);
}

/* ==== through the stream layer ========================================================== */

struct srv_state {
  int rc;             /* the handler's outcome */
  int handled;
  char subject[256], alpn[64], version[16];
  uint64_t sum;
  size_t bytes;
  bool plain_then_tls;   /* start_tls test: the handler upgrades */
  bool pipelined;        /* ... without answering OK first */
  cio_tls_context *upgrade;
};

static int line_echo_handler(cio_stream *s, void *arg) {
  struct srv_state *st = arg;
  st->handled++;
  if (st->plain_then_tls) {
    const char *line;
    ssize_t n = cio_stream_readline(s, &line);
    CHECK(n == 9 && memcmp(line, "STARTTLS\n", 9) == 0);
    CHECK(!cio_stream_is_tls(s));
    if (!st->pipelined) {
      cio_stream_write(s, "OK\n", 3);
      CHECK_RC(cio_stream_drain(s), 0);
    }
    int rc = cio_stream_start_tls(s, st->upgrade, NULL); /* a server context: the server side */
    if (rc < 0) return st->rc = rc;
  }
  const char *a = cio_stream_tls_alpn(s), *v = cio_stream_tls_version(s);
  snprintf(st->alpn, sizeof st->alpn, "%s", a ? a : "");
  snprintf(st->version, sizeof st->version, "%s", v ? v : "");
  if (cio_stream_tls_peer_subject(s, st->subject, sizeof st->subject) < 0) st->subject[0] = 0;
  for (;;) {
    const char *line;
    ssize_t n = cio_stream_readline(s, &line);
    if (n <= 0) return st->rc = (int)n;
    cio_stream_write(s, line, (size_t)n);
    int rc = cio_stream_drain(s);
    if (rc < 0) return st->rc = rc;
  }
}

struct client_run {
  cio_stream_opts sopts;     /* server options */
  cio_stream_opts copts;     /* client options */
  const char *host;
  cio_stream_handler handler;
  struct srv_state st;
  int (*client)(struct client_run *r, const char *port);
  int client_rc;
  char msg[512];
};

static int with_server(void *arg, void **res) {
  (void)res;
  struct client_run *r = arg;
  cio_server *srv;
  int rc = cio_start_server(r->handler, &r->st, "127.0.0.1", "0", &r->sopts, &srv);
  if (rc < 0) return rc;
  char port[8];
  snprintf(port, sizeof port, "%d", cio_server_port(srv));
  r->client_rc = r->client(r, port);
  snprintf(r->msg, sizeof r->msg, "%s", cio_errmsg());
  cio_server_close(srv);
  rc = cio_server_wait_closed_timeout(srv, 5); /* the handlers finish on their own */
  if (rc < 0) {
    int rc2 = cio_server_shutdown(srv, 5);
    (void)rc2;
  }
  cio_server_free(srv);
  return rc;
}

static void run_with_server(struct client_run *r) {
  int rc = run_real(with_server, r);
  if (rc < 0) fail_msg("server: %s: %s", cio_err_name(rc), cio_errmsg());
}

static int echo_client(struct client_run *r, const char *port) {
  cio_stream *s;
  int rc = cio_open_connection(r->host, port, &r->copts, &s);
  if (rc < 0) return rc;
  CHECK(cio_stream_is_tls(s));
  CHECK(cio_stream_tls_version(s) && strcmp(cio_stream_tls_version(s), "TLSv1.3") == 0);
  CHECK(cio_stream_tls_cipher(s) != NULL);
  char subj[128];
  CHECK(cio_stream_tls_peer_subject(s, subj, sizeof subj) > 0);
  CHECK(strcmp(subj, "CN = localhost") == 0);
  const char *alpn = cio_stream_tls_alpn(s);
  CHECK(alpn && strcmp(alpn, "echo/1") == 0);
  for (int i = 0; i < 3; i++) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "line %d over TLS\n", i);
    cio_stream_write(s, msg, (size_t)n);
    const char *line;
    ssize_t got = cio_stream_readline(s, &line);
    CHECK(got == n && memcmp(line, msg, (size_t)n) == 0);
  }
  CHECK_RC(cio_stream_write_eof(s), 0); /* close_notify: the server's readline sees EOF */
  const char *line;
  CHECK_RC(cio_stream_readline(s, &line), 0); /* then the server's close_notify */
  CHECK(cio_stream_at_eof(s));
  cio_stream_close(s);
  CHECK_RC(cio_stream_wait_closed(s), 0);
  cio_stream_free(s);
  return 0;
}

static void test_stream_echo(void **state) {
  (void)state;
  const char *protos[] = {"echo/1", NULL};
  cio_tls_options so = {.server = true, .cert_file = path("good.pem"), .key_file = path("key.pem"),
                        .verify_client = true, .ca_file = path("ca.pem"), .alpn = protos};
  cio_tls_options co = {.ca_file = path("ca.pem"), .cert_file = path("client.pem"), .alpn = protos};
  struct client_run r = {.handler = line_echo_handler, .client = echo_client,
                         .host = "127.0.0.1"};
  r.sopts.tls = cio_tls_context_new(&so);
  r.copts.tls = cio_tls_context_new(&co);
  r.copts.server_hostname = "localhost"; /* overrides the host for SNI and the check */
  assert_non_null(r.sopts.tls);
  assert_non_null(r.copts.tls);
  /* The server and the streams keep their own references. */
  cio_tls_context *sctx = r.sopts.tls;
  run_with_server(&r);
  if (r.client_rc) fail_msg("client: %s: %s", cio_err_name(r.client_rc), r.msg);
  assert_int_equal(r.st.handled, 1);
  assert_int_equal(r.st.rc, 0);
  assert_string_equal(r.st.subject, "CN = cio test client");
  assert_string_equal(r.st.alpn, "echo/1");
  /* IP address as the host: checked against the certificate's IP entry. */
  r.copts.server_hostname = NULL;
  run_with_server(&r);
  if (r.client_rc) fail_msg("client by IP: %s: %s", cio_err_name(r.client_rc), r.msg);
  cio_tls_context_unref(sctx);
  cio_tls_context_unref(r.copts.tls);
}

/* 64 MiB both ways at once through the streams (write + drain, read). */
struct sbulk {
  cio_stream *s;
  uint32_t id;
};

static int stream_bulk_writer(void *arg, void **res) {
  (void)res;
  struct sbulk *b = arg;
  unsigned char *buf = malloc(65536);
  if (!buf) return -ENOMEM;
  int rc = 0;
  for (size_t off = 0; off < (64u << 20) && rc == 0; off += 65536) {
    fill_pattern(buf, 65536, b->id, off);
    rc = cio_stream_write(b->s, buf, 65536);
    if (rc == 0) rc = cio_stream_drain(b->s);
  }
  free(buf);
  if (rc == 0) rc = cio_stream_write_eof(b->s);
  return rc;
}

/* Read to EOF, checking the pattern of `id`. */
static int stream_bulk_read(cio_stream *s, uint32_t id, size_t *total) {
  unsigned char *buf = malloc(65536), *exp = malloc(65536);
  if (!buf || !exp) return free(buf), free(exp), -ENOMEM;
  uint64_t sum = FNV_INIT, want = FNV_INIT;
  size_t off = 0;
  int rc = 0;
  for (;;) {
    ssize_t n = cio_stream_read(s, buf, 65536);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    fill_pattern(exp, (size_t)n, id, off);
    sum = fnv1a(sum, buf, (size_t)n);
    want = fnv1a(want, exp, (size_t)n);
    off += (size_t)n;
  }
  free(buf), free(exp);
  *total = off;
  if (rc == 0 && sum != want) rc = cio_raise(CIO_ERUNTIME, "checksum mismatch after %zu bytes", off);
  return rc;
}

static int bulk_both(cio_stream *s, uint32_t out, uint32_t in, size_t *got) {
  struct sbulk b = {.s = s, .id = out};
  cio_task *w = cio_create_task(stream_bulk_writer, &b, NULL);
  if (!w) return cio_errcode();
  int rc = stream_bulk_read(s, in, got);
  int wrc = cio_await(w, NULL);
  cio_task_unref(w);
  return rc < 0 ? rc : wrc;
}

static int bulk_handler(cio_stream *s, void *arg) {
  struct srv_state *st = arg;
  st->handled++;
  return st->rc = bulk_both(s, 20, 10, &st->bytes);
}

static int bulk_stream_client(struct client_run *r, const char *port) {
  cio_stream *s;
  int rc = cio_open_connection(r->host, port, &r->copts, &s);
  if (rc < 0) return rc;
  size_t got = 0;
  rc = bulk_both(s, 10, 20, &got);
  if (rc == 0 && got != (64u << 20)) rc = cio_raise(CIO_ERUNTIME, "client got %zu bytes", got);
  cio_stream_close(s);
  int wc = cio_stream_wait_closed(s);
  cio_stream_free(s);
  return rc < 0 ? rc : wc;
}

static void test_stream_64mib_both_ways(void **state) {
  (void)state;
  struct client_run r = {.handler = bulk_handler, .client = bulk_stream_client, .host = "localhost"};
  r.sopts.tls = server_ctx("good.pem", false, NULL);
  r.copts.tls = client_ctx();
  run_with_server(&r);
  if (r.client_rc) fail_msg("client: %s: %s", cio_err_name(r.client_rc), r.msg);
  if (r.st.rc) fail_msg("server: %s", cio_err_name(r.st.rc));
  assert_int_equal(r.st.bytes, 64u << 20);
  cio_tls_context_unref(r.sopts.tls);
  cio_tls_context_unref(r.copts.tls);
}

/* A bad certificate fails cio_open_connection with its code; no stream. */
static int bad_cert_client(struct client_run *r, const char *port) {
  cio_stream *s = (cio_stream *)1;
  int rc = cio_open_connection(r->host, port, &r->copts, &s);
  CHECK(s == NULL);
  return rc;
}

static void test_stream_bad_certificate(void **state) {
  (void)state;
  struct client_run r = {.handler = line_echo_handler, .client = bad_cert_client,
                         .host = "localhost"};
  r.sopts.tls = server_ctx("expired.pem", false, NULL);
  r.copts.tls = client_ctx();
  run_with_server(&r);
  assert_code(r.client_rc, CIO_ECERT);
  assert_non_null(strstr(r.msg, "certificate has expired"));
  assert_int_equal(r.st.handled, 0); /* the handler never ran */
  cio_tls_context_unref(r.sopts.tls);
  /* A client context cannot serve. */
  r.sopts.tls = r.copts.tls;
  assert_int_equal(run_real(with_server, &r), -EINVAL);
  cio_tls_context_unref(r.copts.tls);
}

/* The peer never answers: open_connection fails after tls_handshake_timeout. */
static int stream_silent_main(void *arg, void **res) {
  (void)res, (void)arg;
  char port[8];
  int lfd = listen_local(4, port);
  CHECK(lfd >= 0);
  cio_stream_opts o = {.tls = client_ctx(), .tls_handshake_timeout = 5};
  double t0 = cio_loop_time(cur_loop());
  cio_stream *s;
  int rc = cio_open_connection("127.0.0.1", port, &o, &s);
  double took = cio_loop_time(cur_loop()) - t0;
  cio_tls_context_unref(o.tls);
  cio_fd_close(lfd);
  CHECK_RC(rc, -ETIMEDOUT);
  CHECK(took >= 5 && took < 5.5);
  return 0;
}

static void test_stream_handshake_timeout(void **state) {
  (void)state;
  int rc = run_virtual(stream_silent_main, NULL);
  if (rc) fail_msg("%s: %s", cio_err_name(rc), cio_errmsg());
}

/* STARTTLS: a plain connection upgraded in place, on both sides. */
static int starttls_client(struct client_run *r, const char *port) {
  cio_stream *s;
  int rc = cio_open_connection("127.0.0.1", port, NULL, &s);
  if (rc < 0) return rc;
  cio_stream_write(s, "STARTTLS\n", 9);
  if (!r->st.pipelined) {
    const char *line;
    CHECK_RC(cio_stream_readline(s, &line), 3);
    CHECK(memcmp(line, "OK\n", 3) == 0);
  }
  /* pipelined: the ClientHello follows the command at once, and the server's
   * readline takes both in one read: start_tls hands the rest to TLS. */
  /* A verifying client must name the server. */
  CHECK_RC(cio_stream_start_tls(s, r->copts.tls, NULL), -EINVAL);
  CHECK(!cio_stream_is_tls(s));
  rc = cio_stream_start_tls(s, r->copts.tls, r->st.pipelined ? "" : "localhost"); /* "": chain only */
  if (rc == 0) {
    CHECK(cio_stream_is_tls(s));
    CHECK_RC(cio_stream_start_tls(s, r->copts.tls, "localhost"), -EALREADY);
    cio_stream_write(s, "secret\n", 7);
    const char *line;
    CHECK_RC(cio_stream_readline(s, &line), 7);
    CHECK(memcmp(line, "secret\n", 7) == 0);
  }
  cio_stream_close(s);
  int wc = cio_stream_wait_closed(s);
  cio_stream_free(s);
  return rc < 0 ? rc : wc;
}

static void test_start_tls(void **state) {
  (void)state;
  for (int pipelined = 0; pipelined < 2; pipelined++) {
    struct client_run r = {.handler = line_echo_handler, .client = starttls_client};
    r.st.plain_then_tls = true;
    r.st.pipelined = pipelined;
    r.st.upgrade = server_ctx("good.pem", false, NULL);
    r.copts.tls = client_ctx();
    run_with_server(&r);
    if (r.client_rc) fail_msg("client (pipelined %d): %s: %s", pipelined, cio_err_name(r.client_rc), r.msg);
    if (r.st.rc) fail_msg("server (pipelined %d): %s", pipelined, cio_err_name(r.st.rc));
    assert_string_equal(r.st.version, "TLSv1.3");
    cio_tls_context_unref(r.st.upgrade);
    cio_tls_context_unref(r.copts.tls);
  }
}

/* A TLS server that closes the TCP connection without close_notify. */
static int abrupt_handler(cio_stream *s, void *arg) {
  struct srv_state *st = arg;
  st->handled++;
  cio_stream_write(s, "bye\n", 4);
  CHECK_RC(cio_stream_drain(s), 0);
  shutdown(cio_stream_fd(s), SHUT_RDWR); /* FIN, no close_notify */
  return 0;
}

static int abrupt_stream_client(struct client_run *r, const char *port) {
  cio_stream *s;
  int rc = cio_open_connection(r->host, port, &r->copts, &s);
  if (rc < 0) return rc;
  const char *line;
  CHECK_RC(cio_stream_readline(s, &line), 4);
  rc = (int)cio_stream_readline(s, &line); /* EOF (0), or CIO_ETLS with strict_eof */
  cio_stream_abort(s);
  cio_stream_free(s);
  return rc;
}

static void test_stream_eof_without_close_notify(void **state) {
  (void)state;
  struct client_run r = {.handler = abrupt_handler, .client = abrupt_stream_client,
                         .host = "localhost"};
  r.sopts.tls = server_ctx("good.pem", false, NULL);
  r.copts.tls = client_ctx();
  run_with_server(&r);
  assert_code(r.client_rc, 0); /* EOF, as asyncio */
  cio_tls_context_unref(r.copts.tls);
  cio_tls_options o = {.ca_file = path("ca.pem"), .strict_eof = true};
  r.copts.tls = cio_tls_context_new(&o);
  run_with_server(&r);
  assert_code(r.client_rc, CIO_ETLS);
  assert_non_null(strstr(r.msg, "without close_notify"));
  cio_tls_context_unref(r.copts.tls);
  cio_tls_context_unref(r.sopts.tls);
}

/* A peer that never reads: closing a TLS stream with a full socket is
 * bounded by tls_shutdown_timeout (virtual clock). */
static int never_read_handler(cio_stream *s, void *arg) {
  (void)s;
  struct srv_state *st = arg;
  st->handled++;
  return cio_sleep(3600);
}

static int close_bounded_main(void *arg, void **res) {
  (void)res;
  struct client_run *r = arg;
  cio_server *srv;
  CHECK_RC(cio_start_server(never_read_handler, &r->st, "127.0.0.1", "0", &r->sopts, &srv), 0);
  char port[8];
  snprintf(port, sizeof port, "%d", cio_server_port(srv));
  cio_stream *s;
  CHECK_RC(cio_open_connection("localhost", port, &r->copts, &s), 0);
  static char chunk[1 << 16];
  for (int i = 0; i < 256; i++) cio_stream_write(s, chunk, sizeof chunk); /* 16 MiB: never all sent */
  double t0 = cio_loop_time(cur_loop());
  cio_stream_close(s);
  int rc = cio_stream_wait_closed(s);
  double took = cio_loop_time(cur_loop()) - t0;
  cio_stream_free(s);
  int rc2 = cio_server_shutdown(srv, 1);
  cio_server_free(srv);
  CHECK(took >= 2 && took < 2.5);
  CHECK_RC(rc, -ETIMEDOUT); /* asyncio: TimeoutError('SSL shutdown timed out') */
  return rc2;
}

static void test_stream_close_bounded(void **state) {
  (void)state;
  struct client_run r = {0};
  r.sopts.tls = server_ctx("good.pem", false, NULL);
  r.copts.tls = client_ctx();
  r.copts.tls_shutdown_timeout = 2;
  int rc = run_virtual(close_bounded_main, &r);
  if (rc) fail_msg("%s: %s", cio_err_name(rc), cio_errmsg());
  cio_tls_context_unref(r.sopts.tls);
  cio_tls_context_unref(r.copts.tls);
}

/* A client that connects and never starts the handshake: the server drops it
 * after tls_handshake_timeout; the handler never runs (virtual clock). */
static int silent_client_main(void *arg, void **res) {
  (void)res;
  struct client_run *r = arg;
  cio_server *srv;
  CHECK_RC(cio_start_server(line_echo_handler, &r->st, "127.0.0.1", "0", &r->sopts, &srv), 0);
  char port[8];
  snprintf(port, sizeof port, "%d", cio_server_port(srv));
  cio_stream *s;
  CHECK_RC(cio_open_connection("127.0.0.1", port, NULL, &s), 0); /* plain: says nothing */
  double t0 = cio_loop_time(cur_loop());
  char b[16];
  ssize_t n = cio_stream_read(s, b, sizeof b); /* the server closes: EOF */
  double took = cio_loop_time(cur_loop()) - t0;
  cio_stream_free(s);
  cio_server_close(srv);
  CHECK_RC(cio_server_wait_closed(srv), 0);
  cio_server_free(srv);
  CHECK(n == 0 || n == -ECONNRESET);
  CHECK(took >= 3 && took < 3.5);
  CHECK_RC(r->st.handled, 0);
  return 0;
}

static void test_server_handshake_timeout(void **state) {
  (void)state;
  struct client_run r = {0};
  r.sopts.tls = server_ctx("good.pem", false, NULL);
  r.sopts.tls_handshake_timeout = 3;
  int rc = run_virtual(silent_client_main, &r);
  if (rc) fail_msg("%s: %s", cio_err_name(rc), cio_errmsg());
  cio_tls_context_unref(r.sopts.tls);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_context_errors),
      cmocka_unit_test(test_handshake),
      cmocka_unit_test(test_bad_certificates),
      cmocka_unit_test(test_insecure_accepts_anything),
      cmocka_unit_test(test_64mib_both_ways),
      cmocka_unit_test(test_eof_without_close_notify),
      cmocka_unit_test(test_no_sigpipe),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_client_certificates),
      cmocka_unit_test(test_alpn),
      cmocka_unit_test(test_peer_not_tls),
      cmocka_unit_test(test_tls12),
      cmocka_unit_test(test_openssl_s_server_tls12),
      cmocka_unit_test(test_stream_echo),
      cmocka_unit_test(test_stream_64mib_both_ways),
      cmocka_unit_test(test_stream_bad_certificate),
      cmocka_unit_test(test_stream_handshake_timeout),
      cmocka_unit_test(test_start_tls),
      cmocka_unit_test(test_stream_eof_without_close_notify),
      cmocka_unit_test(test_stream_close_bounded),
      cmocka_unit_test(test_server_handshake_timeout),
  };
  return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
