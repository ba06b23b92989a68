/* TLS (internal view): a cio__transport (src/transport.h) that runs OpenSSL
 * over the stream's fd, and the suspending handshake. See
 * include/cio/tls.h for the user's side and src/tls.c for the design. */
#ifndef CIO_TLS_INTERNAL_H
#define CIO_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cio/tls.h"
#include "transport.h"

/* A TLS transport over fd (which the caller keeps owning). server_side picks
 * the role; a client verifies the peer against server_hostname (NULL or "":
 * no host name check and no SNI; verification of the chain stays on) and
 * sends it as SNI. prefix/prefix_len: bytes already read from fd that belong
 * to the TLS stream (start_tls after a buffered read); they are copied.
 * Takes a reference on ctx. Does not suspend, makes no system call. Returns
 * 0 with *out, or -EINVAL (NULL ctx, fd < 0, a server role on a client
 * context or the reverse), -ENOMEM, -ENOTSUP (built without TLS). */
int cio__tls_transport_new(cio_tls_context *ctx, int fd, const char *server_hostname,
                           bool server_side, const void *prefix, size_t prefix_len,
                           struct cio__transport **out);

/* Whether t is a TLS transport (NULL: false). */
bool cio__tls_is(const struct cio__transport *t);

/* Run the handshake from the current task, suspending on the fd as needed,
 * bounded by `timeout` seconds (<= 0 or NaN: 60; CIO_NO_TIMEOUT: none). `who` names the public call in
 * messages. Returns 0, or CIO_ECERT, CIO_ETLS, -ETIMEDOUT, -ECONNRESET, another
 * -errno of the socket, -ECANCELED, CIO_ENOTASK; the transport is then only
 * good for destroy. */
int cio__tls_handshake(struct cio__transport *t, double timeout, const char *who);

/* Whether ctx is a server context (NULL: false). */
bool cio__tls_context_is_server(const cio_tls_context *ctx);

/* The body of cio__stream_secure (src/transport.h): make a transport over the
 * stream's fd (taking the bytes the stream has read but nobody consumed as
 * the first TLS bytes), run the handshake bounded by the stream's
 * tls_handshake_timeout, install the transport. The role is the server's when
 * server_side or when ctx is a server context. A verifying client needs a
 * server_hostname ("" = check the chain only). Suspends. Returns 0 or the
 * errors of cio__tls_handshake, -EINVAL (no context; a verifying client with
 * no server_hostname), -EBADF (stream closed), -ENOMEM,
 * -ENOTSUP; on failure the stream is left plain (its unread bytes consumed). */
int cio__tls_secure_stream(cio_stream *s, cio_tls_context *ctx, const char *server_hostname,
                           bool server_side, const char *who);

/* What cio_stream_tls_* report for a TLS transport (t must be one). */
const char *cio__tls_alpn(struct cio__transport *t);
const char *cio__tls_version(struct cio__transport *t);
const char *cio__tls_cipher(struct cio__transport *t);
int cio__tls_peer_subject(struct cio__transport *t, char *buf, size_t len);

#endif
