/* TLS through OpenSSL 3: contexts, and a cio__transport that streams put
 * under their buffers. See include/cio/tls.h.
 *
 * Design:
 * - OpenSSL reads and writes the socket itself, through a small BIO of ours
 *   (not memory BIOs): SSL_read decrypts straight from the kernel's buffer
 *   into the stream's buffer and SSL_write encrypts straight into a send(),
 *   with no second copy through a memory BIO and no extra calls to move bytes
 *   between BIOs. The BIO is ours rather than OpenSSL's socket BIO so that
 *   send() gets MSG_NOSIGNAL (never SIGPIPE, whatever the application does
 *   with the signal), so that the socket's errno and EOF are recorded for
 *   precise messages, and so that bytes a stream had already buffered before
 *   start_tls can be fed to the handshake first.
 * - read_ahead is on: one recv() fills OpenSSL's read buffer with as many
 *   records as have arrived, instead of a recv() for each record header and
 *   one for each body.
 * - The read-readiness hint (as cio_sock_recv): a recv() that came back short
 *   emptied the socket, so when OpenSSL also holds nothing, the next read
 *   asks to wait for readability at once instead of making a recv() that
 *   would fail with EAGAIN. One system call per message.
 * - writev coalesces: iovecs smaller than a record are gathered into a
 *   16 KiB staging buffer (part of the transport, allocated once) and go out
 *   as one record and one send(); a large iovec is encrypted in place.
 *   SSL_MODE_ENABLE_PARTIAL_WRITE makes each SSL_write one record, and
 *   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a retry after WANT_WRITE come
 *   from the staging buffer or the caller's memory alike: OpenSSL only needs
 *   the same leading bytes again, which the stream's queue guarantees (it
 *   consumes only what writev reported).
 * - cio allocates nothing per read or write: the SSL object, its buffers and
 *   the staging buffer are made at connect time and kept
 *   (SSL_MODE_RELEASE_BUFFERS is an option, for servers with many idle
 *   connections). OpenSSL 3.0 itself still makes two 40-byte allocations
 *   per record it reads or writes (the WPACKET of its record layer,
 *   crypto/packet.c; measured with a malloc counter: 4 per echoed request,
 *   0 for the plain stream), served by malloc's per-thread cache.
 * - OpenSSL's error queue is per thread and shared by every task of the
 *   loop, so each call starts from an empty queue (cleared only when not
 *   empty: a peek is cheap) and every failure path empties it.
 */
#include "tls.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cio/group.h"
#include "error.h"
#include "io.h"
#include "task.h"

#ifdef CIO_HAVE_TLS

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define STAGE_SIZE 16384 /* one full TLS record of plaintext */

struct cio_tls_context {
  atomic_int refs;
  SSL_CTX *ssl_ctx;
  bool server;
  bool verify; /* client: verify the peer (not insecure); server: verify_client */
  bool strict_eof;
  unsigned char *alpn; /* wire format: length-prefixed names */
  unsigned alpn_len;
};

struct tls_tr {
  struct cio__transport base; /* first */
  SSL *ssl;
  cio_tls_context *ctx;
  char *host;          /* for messages (may be NULL) */
  unsigned char *prefix; /* bytes read before start_tls, fed to OpenSSL first */
  size_t prefix_off, prefix_len;
  int sock_err;        /* errno of the last failed recv/send */
  bool sock_eof;       /* recv returned 0 */
  bool not_socket;     /* fd is a pipe or the like: read/write instead of recv/send */
  bool drained;        /* the last recv came back short */
  bool handshaken;
  bool failed;         /* a fatal TLS error: no more I/O, no close_notify */
  bool read_eof;       /* read has reported 0 */
  bool eof_sent;       /* close_notify sent */
  const char *who;      /* the public call running the handshake, for messages */
  char alpn[256];      /* the protocol ALPN selected, NUL-terminated ("" none) */
  unsigned char stage[STAGE_SIZE];
};

/* ---- the socket BIO ----------------------------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len) {
  struct tls_tr *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  for (;;) {
    n = t->not_socket ? write(t->base.fd, buf, (size_t)len)
                      : send(t->base.fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0 || errno != EINTR) break;
  }
  if (n >= 0) return (int)n;
  if (errno == ENOTSOCK && !t->not_socket) {
    t->not_socket = true;
    return bio_write(b, buf, len);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    BIO_set_retry_write(b);
  } else {
    t->sock_err = errno;
  }
  return -1;
}

static int bio_read(BIO *b, char *buf, int len) {
  struct tls_tr *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (t->prefix_off < t->prefix_len) {
    size_t n = t->prefix_len - t->prefix_off;
    if (n > (size_t)len) n = (size_t)len;
    memcpy(buf, t->prefix + t->prefix_off, n);
    t->prefix_off += n;
    return (int)n;
  }
  ssize_t n;
  for (;;) {
    n = t->not_socket ? read(t->base.fd, buf, (size_t)len) : recv(t->base.fd, buf, (size_t)len, 0);
    if (n >= 0 || errno != EINTR) break;
  }
  if (n > 0) {
    t->drained = n < len;
    return (int)n;
  }
  if (n == 0) {
    t->sock_eof = true;
    return 0;
  }
  if (errno == ENOTSOCK && !t->not_socket) {
    t->not_socket = true;
    return bio_read(b, buf, len);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    t->drained = false;
    BIO_set_retry_read(b);
  } else {
    t->sock_err = errno;
  }
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num, (void)ptr;
  struct tls_tr *t = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH: return 1; /* nothing is buffered here */
  case BIO_CTRL_EOF: return t && t->sock_eof;
  default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cio socket");
  if (!m) return;
  if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
      !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
    BIO_meth_free(m);
    return;
  }
  bio_method = m;
}

/* ---- messages ----------------------------------------------------------------- */

/* OpenSSL's reason for the oldest error in the queue ("certificate verify
 * failed", "tlsv1 alert unknown ca"), and empty the queue. */
static const char *ossl_reason(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r) {
    snprintf(buf, len, "%s", r);
  } else if (e) {
    ERR_error_string_n(e, buf, len);
  } else {
    snprintf(buf, len, "unknown TLS error");
  }
  ERR_clear_error();
  return buf;
}

static void clear_errors(void) {
  if (ERR_peek_error()) ERR_clear_error();
}

/* ---- contexts ------------------------------------------------------------------ */

static int bad_file(const char *what, const char *file) {
  char why[256];
  return cio__fail(CIO_ETLS, "cio_tls_context_new: cannot use %s '%s': %s", what, file,
                   ossl_reason(why, sizeof why));
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  cio_tls_context *c = arg;
  unsigned char *sel;
  /* Server preference: the first of ours that the client offers. */
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static int ctx_setup(cio_tls_context *c, const cio_tls_options *o) {
  const char *who = "cio_tls_context_new";
  SSL_CTX *s = c->ssl_ctx;
  int minv = o->min_version ? o->min_version : TLS1_2_VERSION;
  if (minv != TLS1_2_VERSION && minv != TLS1_3_VERSION)
    return cio__fail(-EINVAL, "%s: min_version 0x%x is not CIO_TLS_1_2 or CIO_TLS_1_3", who,
                     (unsigned)o->min_version);
  int maxv = o->max_version;
  if (maxv && ((maxv != TLS1_2_VERSION && maxv != TLS1_3_VERSION) || maxv < minv))
    return cio__fail(-EINVAL, "%s: max_version 0x%x is not CIO_TLS_1_2 or CIO_TLS_1_3 at or "
                              "above min_version", who, (unsigned)o->max_version);
  SSL_CTX_set_min_proto_version(s, minv);
  SSL_CTX_set_max_proto_version(s, maxv); /* 0: the highest */
  SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
  if (o->release_buffers) mode |= SSL_MODE_RELEASE_BUFFERS;
  SSL_CTX_set_mode(s, mode);
  SSL_CTX_set_read_ahead(s, 1);

  if (o->server && !o->cert_file)
    return cio__fail(-EINVAL, "%s: a server context needs cert_file (and key_file)", who);
  if (o->server && o->insecure_no_verify)
    return cio__fail(-EINVAL, "%s: insecure_no_verify is for clients", who);
  if (!o->server && o->verify_client)
    return cio__fail(-EINVAL, "%s: verify_client is for servers", who);
  if (o->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(s, o->cert_file) != 1)
      return bad_file("certificate chain", o->cert_file);
    const char *key = o->key_file ? o->key_file : o->cert_file;
    if (SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1)
      return bad_file("private key", key);
    if (SSL_CTX_check_private_key(s) != 1) return bad_file("private key", key);
  } else if (o->key_file) {
    return cio__fail(-EINVAL, "%s: key_file given without cert_file", who);
  }

  bool want_ca = o->server ? o->verify_client : !o->insecure_no_verify;
  if (want_ca) {
    if (o->ca_file || o->ca_dir) {
      if (SSL_CTX_load_verify_locations(s, o->ca_file, o->ca_dir) != 1)
        return bad_file("CA locations", o->ca_file ? o->ca_file : o->ca_dir);
    } else if (o->server) {
      return cio__fail(-EINVAL, "%s: verify_client needs ca_file or ca_dir", who);
    } else if (SSL_CTX_set_default_verify_paths(s) != 1) {
      return bad_file("the system CA store", "default");
    }
  }
  c->verify = want_ca;
  if (o->server) {
    static const unsigned char sid[] = "cio";
    SSL_CTX_set_session_id_context(s, sid, sizeof sid - 1);
    if (o->verify_client) {
      SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
      if (o->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
        if (names) SSL_CTX_set_client_CA_list(s, names);
      }
    } else {
      SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
    }
  } else {
    SSL_CTX_set_verify(s, want_ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  }

  if (o->alpn && o->alpn[0]) {
    size_t len = 0;
    for (const char *const *p = o->alpn; *p; p++) {
      size_t n = strlen(*p);
      if (n == 0 || n > 255)
        return cio__fail(-EINVAL, "%s: ALPN protocol name '%s' must be 1..255 bytes", who, *p);
      len += 1 + n;
    }
    if (len > 65535) return cio__fail(-EINVAL, "%s: ALPN list too long", who);
    c->alpn = malloc(len);
    if (!c->alpn) return cio__fail(-ENOMEM, "%s: out of memory", who);
    unsigned char *w = c->alpn;
    for (const char *const *p = o->alpn; *p; p++) {
      size_t n = strlen(*p);
      *w++ = (unsigned char)n;
      memcpy(w, *p, n);
      w += n;
    }
    c->alpn_len = (unsigned)len;
    if (o->server) {
      SSL_CTX_set_alpn_select_cb(s, alpn_select, c);
    } else if (SSL_CTX_set_alpn_protos(s, c->alpn, c->alpn_len) != 0) {
      return cio__fail(-ENOMEM, "%s: out of memory", who);
    }
  }
  c->strict_eof = o->strict_eof;
  c->server = o->server;
  return 0;
}

cio_tls_context *cio_tls_context_new(const cio_tls_options *opts) {
  static const cio_tls_options dflt;
  const cio_tls_options *o = opts ? opts : &dflt;
  pthread_once(&bio_once, bio_method_init);
  if (!bio_method) {
    cio__fail(-ENOMEM, "cio_tls_context_new: cannot make the socket BIO method");
    return NULL;
  }
  cio_tls_context *c = calloc(1, sizeof *c);
  if (!c) {
    cio__fail(-ENOMEM, "cio_tls_context_new: out of memory");
    return NULL;
  }
  atomic_init(&c->refs, 1);
  clear_errors();
  c->ssl_ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
  if (!c->ssl_ctx) {
    char why[256];
    cio__fail(-ENOMEM, "cio_tls_context_new: SSL_CTX_new: %s", ossl_reason(why, sizeof why));
    free(c);
    return NULL;
  }
  if (ctx_setup(c, o) < 0) {
    ERR_clear_error();
    SSL_CTX_free(c->ssl_ctx);
    free(c->alpn);
    free(c);
    return NULL;
  }
  return c;
}

cio_tls_context *cio_tls_context_ref(cio_tls_context *ctx) {
  if (ctx) atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
  return ctx;
}

void cio_tls_context_unref(cio_tls_context *ctx) {
  if (!ctx) return;
  if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx->alpn);
  free(ctx);
}

bool cio_tls_available(void) { return true; }

/* ---- the transport ------------------------------------------------------------ */

static ssize_t tr_read(struct cio__transport *bt, void *buf, size_t n, unsigned *want);
static ssize_t tr_writev(struct cio__transport *bt, const struct iovec *iov, int iovcnt,
                         unsigned *want);
static int tr_write_eof(struct cio__transport *bt, unsigned *want);
static size_t tr_pending(struct cio__transport *bt);
static void tr_destroy(struct cio__transport *bt);

static const struct cio__transport_ops tls_ops = {
    .read = tr_read,
    .writev = tr_writev,
    .write_eof = tr_write_eof,
    .pending = tr_pending,
    .destroy = tr_destroy,
};

bool cio__tls_is(const struct cio__transport *t) { return t && t->ops == &tls_ops; }

static bool is_ip(const char *host) {
  unsigned char a[16];
  return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int cio__tls_transport_new(cio_tls_context *ctx, int fd, const char *server_hostname,
                           bool server_side, const void *prefix, size_t prefix_len,
                           struct cio__transport **out) {
  const char *who = "TLS";
  if (!ctx || fd < 0 || !out || (prefix_len && !prefix))
    return cio__fail(-EINVAL, "%s: no context, or a bad fd", who);
  if (server_side != ctx->server)
    return cio__fail(-EINVAL, "%s: a %s context cannot run the %s side", who,
                     ctx->server ? "server" : "client", server_side ? "server" : "client");
  struct tls_tr *t = calloc(1, sizeof *t);
  if (!t) return cio__fail(-ENOMEM, "%s: out of memory", who);
  t->base.ops = &tls_ops;
  t->base.fd = fd;
  clear_errors();
  t->ssl = SSL_new(ctx->ssl_ctx);
  BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
  if (!bio) goto nomem;
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio); /* one reference for both directions */
  if (prefix_len) {
    t->prefix = malloc(prefix_len);
    if (!t->prefix) goto nomem;
    memcpy(t->prefix, prefix, prefix_len);
    t->prefix_len = prefix_len;
  }
  if (server_side) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (server_hostname && *server_hostname) {
      t->host = strdup(server_hostname);
      if (!t->host) goto nomem;
      bool ip = is_ip(server_hostname);
      if (!ip && SSL_set_tlsext_host_name(t->ssl, server_hostname) != 1) goto nomem;
      if (ctx->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, server_hostname)
                    : X509_VERIFY_PARAM_set1_host(vp, server_hostname, 0);
        if (ok != 1) goto nomem;
      }
    }
  }
  t->ctx = cio_tls_context_ref(ctx);
  *out = &t->base;
  return 0;
nomem:
  ERR_clear_error();
  if (t->ssl) SSL_free(t->ssl);
  free(t->prefix);
  free(t->host);
  free(t);
  return cio__fail(-ENOMEM, "%s: out of memory", who);
}

static void tr_destroy(struct cio__transport *bt) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (!t) return;
  SSL_free(t->ssl); /* frees the BIO; never touches the fd */
  cio_tls_context_unref(t->ctx);
  free(t->prefix);
  free(t->host);
  free(t);
}

static const char *peer_name(struct tls_tr *t) { return t->host ? t->host : "peer"; }

/* The peer closed the TCP connection without close_notify. */
static ssize_t unclean_eof(struct tls_tr *t, const char *op) {
  ERR_clear_error();
  t->failed = true;
  if (t->ctx->strict_eof)
    return cio__fail(CIO_ETLS, "TLS %s (fd %d): %s closed the connection without close_notify "
                               "(the data may be truncated)", op, t->base.fd, peer_name(t));
  t->read_eof = true;
  return 0;
}

/* Map a failed SSL_* call (r <= 0) of `op` to -EAGAIN + *want, 0 (clean EOF
 * on reads) or an error with a message. */
static ssize_t tr_fail(struct tls_tr *t, int r, unsigned *want, const char *op) {
  int e = SSL_get_error(t->ssl, r);
  char why[256];
  switch (e) {
  case SSL_ERROR_WANT_READ:
    *want = CIO__POLL_IN;
    return -EAGAIN;
  case SSL_ERROR_WANT_WRITE:
    *want = CIO__POLL_OUT;
    return -EAGAIN;
  case SSL_ERROR_ZERO_RETURN: /* close_notify */
    t->read_eof = true;
    return 0;
  case SSL_ERROR_SYSCALL:
    if (t->sock_err) {
      ERR_clear_error();
      t->failed = true;
      int err = t->sock_err;
      return cio__fail(-err, "TLS %s (fd %d): %s", op, t->base.fd, strerror(err));
    }
    if (t->sock_eof) return unclean_eof(t, op);
    break;
  case SSL_ERROR_SSL:
    if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      return unclean_eof(t, op);
    break;
  default:
    break;
  }
  t->failed = true;
  return cio__fail(CIO_ETLS, "TLS %s (fd %d): %s", op, t->base.fd, ossl_reason(why, sizeof why));
}

static ssize_t tr_read(struct cio__transport *bt, void *buf, size_t n, unsigned *want) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (t->read_eof) return 0;
  if (t->failed) return cio__fail(-EPIPE, "TLS read (fd %d): the connection failed before", bt->fd);
  if (n == 0) return 0;
  if (t->drained && !SSL_has_pending(t->ssl)) {
    t->drained = false; /* the socket was left empty: wait before reading */
    *want = CIO__POLL_IN;
    return -EAGAIN;
  }
  clear_errors();
  size_t got;
  int r = SSL_read_ex(t->ssl, buf, n, &got);
  if (r == 1) return (ssize_t)got;
  return tr_fail(t, r, want, "read");
}

static ssize_t tr_writev(struct cio__transport *bt, const struct iovec *iov, int iovcnt,
                         unsigned *want) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (t->failed) return cio__fail(-EPIPE, "TLS write (fd %d): the connection failed before", bt->fd);
  if (t->eof_sent)
    return cio__fail(-EPIPE, "TLS write (fd %d): write after write_eof (close_notify sent)", bt->fd);
  clear_errors();
  size_t done = 0;
  int i = 0;
  size_t off = 0; /* into iov[i] */
  while (i < iovcnt) {
    if (off == iov[i].iov_len) {
      i++, off = 0;
      continue;
    }
    const void *p;
    size_t len;
    size_t left = iov[i].iov_len - off;
    if (left >= STAGE_SIZE || i == iovcnt - 1) {
      p = (const char *)iov[i].iov_base + off; /* a full record's worth, or the last piece */
      len = left;
    } else { /* gather small pieces into one record */
      len = 0;
      int j = i;
      size_t o = off;
      while (j < iovcnt && len < STAGE_SIZE) {
        size_t k = iov[j].iov_len - o;
        if (k > STAGE_SIZE - len) k = STAGE_SIZE - len;
        memcpy(t->stage + len, (const char *)iov[j].iov_base + o, k);
        len += k;
        o += k;
        if (o == iov[j].iov_len) j++, o = 0;
      }
      p = t->stage;
    }
    size_t w;
    int r = SSL_write_ex(t->ssl, p, len, &w);
    if (r != 1) {
      ssize_t rc = tr_fail(t, r, want, "write");
      if (rc == 0) /* the peer's close_notify (TLS 1.2 allows no more writing) */
        rc = cio__fail(-EPIPE, "TLS write (fd %d): %s closed the connection (close_notify)",
                       bt->fd, peer_name(t));
      if (rc == -EAGAIN && done) return (ssize_t)done;
      return rc;
    }
    done += w;
    /* advance the cursor by w */
    while (w) {
      size_t k = iov[i].iov_len - off;
      if (k > w) k = w;
      off += k;
      w -= k;
      if (off == iov[i].iov_len) i++, off = 0;
    }
  }
  return (ssize_t)done;
}

static int tr_write_eof(struct cio__transport *bt, unsigned *want) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (t->eof_sent || t->failed || !t->handshaken) return 0;
  clear_errors();
  int r = SSL_shutdown(t->ssl);
  if (r >= 0) {
    t->eof_sent = true;
    return 0;
  }
  ssize_t rc = tr_fail(t, r, want, "close_notify");
  if (rc == -EAGAIN && *want == CIO__POLL_IN) { /* cannot happen before it was sent */
    t->eof_sent = true;
    return 0;
  }
  return (int)rc;
}

static size_t tr_pending(struct cio__transport *bt) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (t->failed || t->read_eof) return 0;
  int n = SSL_pending(t->ssl);
  if (n > 0) return (size_t)n;
  if (t->prefix_off < t->prefix_len) return 1; /* start_tls bytes not yet fed to OpenSSL */
  /* Undecrypted bytes read ahead: perhaps a whole record. */
  return SSL_has_pending(t->ssl) ? 1 : 0;
}

/* ---- handshake and close ------------------------------------------------------ */

static int handshake_fail(struct tls_tr *t, int r, const char *who) {
  int e = SSL_get_error(t->ssl, r);
  char why[256];
  t->failed = true;
  long vr = SSL_get_verify_result(t->ssl);
  if (e == SSL_ERROR_SSL && vr != X509_V_OK) {
    ERR_clear_error();
    const char *what = X509_verify_cert_error_string(vr);
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
      return cio__fail(CIO_ECERT, "%s: certificate verify failed: %s (the certificate is not "
                                  "valid for '%s')", who, what, peer_name(t));
    return cio__fail(CIO_ECERT, "%s: certificate verify failed for %s: %s", who, peer_name(t),
                     what);
  }
  if ((e == SSL_ERROR_SYSCALL && !t->sock_err) ||
      (e == SSL_ERROR_SSL &&
       ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    return cio__fail(-ECONNRESET, "%s: %s closed the connection during the TLS handshake", who,
                     peer_name(t));
  }
  if (e == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    return cio__fail(-t->sock_err, "%s: TLS handshake with %s: %s", who, peer_name(t),
                     strerror(t->sock_err));
  }
  return cio__fail(CIO_ETLS, "%s: TLS handshake with %s failed: %s", who, peer_name(t),
                   ossl_reason(why, sizeof why));
}

/* Run step(t) until it completes, waiting on the fd, within `timeout`. */
static int drive(struct tls_tr *t, double timeout, const char *who, const char *what,
                 int (*step)(struct tls_tr *t, unsigned *want)) {
  struct cio_task *task = cio__current();
  if (!task) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  cio_timeout to;
  bool bounded = timeout < CIO_NO_TIMEOUT;
  int rc = bounded ? cio_timeout_enter(&to, timeout) : 0;
  if (rc < 0) return rc;
  for (;;) {
    unsigned want = 0;
    rc = step(t, &want);
    if (rc != -EAGAIN) break;
    rc = cio__fd_wait_level(task, t->base.fd, want, who);
    if (rc < 0) break;
  }
  if (bounded) {
    rc = cio_timeout_exit(&to, rc);
    if (rc == -ETIMEDOUT)
      rc = cio__fail(-ETIMEDOUT, "%s: %s with %s timed out after %g s", who, what, peer_name(t),
                     timeout);
  }
  return rc;
}

static int handshake_step(struct tls_tr *t, unsigned *want) {
  clear_errors();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) return 0;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    *want = CIO__POLL_IN;
    return -EAGAIN;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    *want = CIO__POLL_OUT;
    return -EAGAIN;
  }
  return handshake_fail(t, r, t->who);
}

int cio__tls_handshake(struct cio__transport *bt, double timeout, const char *who) {
  struct tls_tr *t = (struct tls_tr *)bt;
  if (!cio__tls_is(bt)) return cio__fail(-EINVAL, "%s: not a TLS transport", who);
  if (t->handshaken) return 0;
  if (t->failed) return cio__fail(CIO_ETLS, "%s: the TLS connection failed before", who);
  t->who = who;
  if (isnan(timeout) || timeout <= 0) timeout = 60;
  int rc = drive(t, timeout, who, "TLS handshake", handshake_step);
  if (rc < 0) {
    t->failed = true;
    return rc;
  }
  t->handshaken = true;
  t->drained = false;
  const unsigned char *p;
  unsigned len;
  SSL_get0_alpn_selected(t->ssl, &p, &len);
  if (p && len) {
    memcpy(t->alpn, p, len); /* len <= 255 */
    t->alpn[len] = 0;
  }
  return 0;
}

bool cio__tls_context_is_server(const cio_tls_context *ctx) { return ctx && ctx->server; }

/* ---- streams -------------------------------------------------------------------- */

int cio__tls_secure_stream(cio_stream *s, cio_tls_context *ctx, const char *server_hostname,
                           bool server_side, const char *who) {
  if (!ctx) return cio__fail(-EINVAL, "%s: no TLS context", who);
  if (ctx->server) server_side = true; /* start_tls with a server context: the server side */
  int fd = cio__stream_fd(s);
  if (fd < 0) return cio__fail(-EBADF, "%s: the stream is closed", who);
  if (!server_side && !server_hostname && ctx->verify)
    return cio__fail(-EINVAL, "%s: a server_hostname is needed to verify the server's "
                              "certificate (\"\" checks the chain only)", who);
  /* Bytes the stream read past the plain-text part (a pipelined ClientHello
   * after STARTTLS) are the start of the TLS stream. */
  const char *data = NULL;
  size_t n = cio__stream_unread(s, &data);
  struct cio__transport *t;
  int rc = cio__tls_transport_new(ctx, fd, server_side ? NULL : server_hostname, server_side, data,
                                  n, &t);
  if (rc < 0) return rc;
  if (n) cio__stream_consume(s, n);
  rc = cio__tls_handshake(t, cio__stream_opts(s)->tls_handshake_timeout, who);
  if (rc < 0) {
    t->ops->destroy(t);
    return rc;
  }
  cio__stream_set_transport(s, t);
  return 0;
}

/* ---- state -------------------------------------------------------------------- */

const char *cio__tls_alpn(struct cio__transport *bt) {
  struct tls_tr *t = (struct tls_tr *)bt;
  return t->alpn[0] ? t->alpn : NULL;
}

const char *cio__tls_version(struct cio__transport *bt) {
  return SSL_get_version(((struct tls_tr *)bt)->ssl);
}

const char *cio__tls_cipher(struct cio__transport *bt) {
  return SSL_get_cipher_name(((struct tls_tr *)bt)->ssl);
}

int cio__tls_peer_subject(struct cio__transport *bt, char *buf, size_t len) {
  struct tls_tr *t = (struct tls_tr *)bt;
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (!x) return -ENOENT;
  BIO *m = BIO_new(BIO_s_mem());
  if (!m) return -ENOMEM;
  X509_NAME_print_ex(m, X509_get_subject_name(x), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char *data;
  long n = BIO_get_mem_data(m, &data);
  if (n < 0) n = 0;
  size_t k = (size_t)n < len - 1 ? (size_t)n : len - 1;
  memcpy(buf, data, k);
  buf[k] = 0;
  BIO_free(m);
  return (int)n;
}

#endif /* CIO_HAVE_TLS */

/* ---- public accessors (both builds) -------------------------------------------- */

static struct cio__transport *tls_of(cio_stream *s) {
  struct cio__transport *t = cio__stream_transport(s);
  return cio__tls_is(t) ? t : NULL;
}

const char *cio_stream_tls_alpn(cio_stream *s) {
  struct cio__transport *t = tls_of(s);
  return t ? cio__tls_alpn(t) : NULL;
}

const char *cio_stream_tls_version(cio_stream *s) {
  struct cio__transport *t = tls_of(s);
  return t ? cio__tls_version(t) : NULL;
}

const char *cio_stream_tls_cipher(cio_stream *s) {
  struct cio__transport *t = tls_of(s);
  return t ? cio__tls_cipher(t) : NULL;
}

int cio_stream_tls_peer_subject(cio_stream *s, char *buf, size_t len) {
  if (!s || !buf || len == 0)
    return cio__fail(-EINVAL, "cio_stream_tls_peer_subject: NULL stream or empty buffer");
  struct cio__transport *t = tls_of(s);
  int rc = t ? cio__tls_peer_subject(t, buf, len) : -ENOENT;
  if (rc == -ENOENT) {
    buf[0] = 0;
    return cio__fail(-ENOENT, "cio_stream_tls_peer_subject: the peer sent no certificate%s",
                     t ? "" : " (not a TLS stream)");
  }
  return rc;
}

#ifndef CIO_HAVE_TLS

static int no_tls(const char *who) {
  return cio__fail(-ENOTSUP, "%s: cio was built without TLS (CMake option CIO_TLS)", who);
}

cio_tls_context *cio_tls_context_new(const cio_tls_options *opts) {
  (void)opts;
  no_tls("cio_tls_context_new");
  return NULL;
}
cio_tls_context *cio_tls_context_ref(cio_tls_context *ctx) { return ctx; }
void cio_tls_context_unref(cio_tls_context *ctx) { (void)ctx; }
bool cio_tls_available(void) { return false; }
int cio__tls_transport_new(cio_tls_context *ctx, int fd, const char *server_hostname,
                           bool server_side, const void *prefix, size_t prefix_len,
                           struct cio__transport **out) {
  (void)ctx, (void)fd, (void)server_hostname, (void)server_side, (void)prefix, (void)prefix_len;
  (void)out;
  return no_tls("TLS");
}
bool cio__tls_is(const struct cio__transport *t) { (void)t; return false; }
int cio__tls_handshake(struct cio__transport *t, double timeout, const char *who) {
  (void)t, (void)timeout;
  return no_tls(who);
}
bool cio__tls_context_is_server(const cio_tls_context *ctx) { (void)ctx; return false; }
int cio__tls_secure_stream(cio_stream *s, cio_tls_context *ctx, const char *server_hostname,
                           bool server_side, const char *who) {
  (void)s, (void)ctx, (void)server_hostname, (void)server_side;
  return no_tls(who);
}
const char *cio__tls_alpn(struct cio__transport *t) { (void)t; return NULL; }
const char *cio__tls_version(struct cio__transport *t) { (void)t; return NULL; }
const char *cio__tls_cipher(struct cio__transport *t) { (void)t; return NULL; }
int cio__tls_peer_subject(struct cio__transport *t, char *buf, size_t len) {
  (void)t, (void)buf, (void)len;
  return -ENOENT;
}

#endif
