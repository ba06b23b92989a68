/* cio — TLS for streams, through OpenSSL 3 (asyncio's ssl= argument).
 *
 * A cio_tls_context is Python's ssl.SSLContext: one per client configuration
 * or per server, made once and shared by every connection that uses it. A
 * stream becomes a TLS stream by passing the context in its options
 * (cio_stream_opts.tls, .server_hostname) to cio_open_connection /
 * cio_start_server, or later with cio_stream_start_tls (STARTTLS). TLS sits
 * under the stream: the same read, readline, write, drain and close calls
 * work with and without it.
 *
 *   asyncio                                       cio
 *   ssl.create_default_context()                  cio_tls_context_new(NULL)
 *   ctx.load_verify_locations(cafile, capath)     opts.ca_file, opts.ca_dir
 *   ctx.load_cert_chain(certfile, keyfile)        opts.cert_file, opts.key_file
 *   ssl.SSLContext(PROTOCOL_TLS_SERVER)           opts.server = true
 *   ctx.verify_mode = CERT_REQUIRED (server)      opts.verify_client = true
 *   ctx.check_hostname = False; CERT_NONE         opts.insecure_no_verify = true (tests only)
 *   ctx.set_alpn_protocols([...])                 opts.alpn = (const char *[]){"h2", "http/1.1", NULL}
 *   ssl_handshake_timeout= / ssl_shutdown_timeout= cio_stream_opts.tls_handshake_timeout / _shutdown_timeout
 *   ctx.minimum_version / maximum_version         opts.min_version (CIO_TLS_1_2 default) / max_version
 *   get_extra_info('ssl_object').selected_alpn_protocol()   cio_stream_tls_alpn(s)
 *   get_extra_info('ssl_object').version() / cipher()       cio_stream_tls_version / _cipher
 *   get_extra_info('peercert')['subject']         cio_stream_tls_peer_subject(s, buf, len)
 *
 * Defaults are the safe ones: a client verifies the server's certificate
 * chain against the system's CA store (or ca_file / ca_dir) and checks that
 * it is valid for the host name (DNS names by name, IP addresses as IPs),
 * which is also sent as SNI (IP addresses are not, per RFC 6066). The name
 * is cio_stream_opts.server_hostname, else the host given to
 * cio_open_connection; a verifying client without one (a Unix socket,
 * start_tls with NULL) fails with -EINVAL, as asyncio; "" verifies the chain
 * but no name. TLS 1.2 is the minimum; renegotiation is refused.
 *
 * Errors during the handshake fail the connect (or start_tls):
 *   CIO_ECERT   the peer's certificate did not verify; the message says why in
 *               OpenSSL's words: "certificate has expired", "self-signed
 *               certificate", "unable to get local issuer certificate",
 *               "hostname mismatch" (with the name asked for), ...
 *   CIO_ETLS    any other TLS failure (no shared protocol version or cipher,
 *               an alert from the peer such as "tlsv1 alert unknown ca" when
 *               the peer rejected our certificate, garbage instead of TLS)
 *   -ETIMEDOUT  the handshake did not finish within the stream options'
 *               tls_handshake_timeout (default 60 s, as asyncio)
 *   -ECONNRESET the peer closed or reset the connection during the handshake
 *               (or another -errno of the socket)
 *   -EINVAL     a client context given to a server or a verifying client
 *               without a name (above)
 *
 * End of stream. A peer's close_notify is a clean EOF (read returns 0). A
 * peer that closes the TCP connection without close_notify is also reported
 * as EOF by default, as asyncio does (many HTTP servers do that); with
 * opts.strict_eof the read fails with CIO_ETLS ("truncated") instead, for
 * protocols that cannot tell a truncation from an end.
 *
 * Closing. Closing a TLS stream (and write_eof) sends close_notify once the
 * queued writes are flushed (retried while the socket is full), then (close)
 * closes the socket; the whole close is bounded by the stream options'
 * tls_shutdown_timeout (default 30 s, as asyncio's ssl_shutdown_timeout),
 * after which the socket is closed anyway. Unlike asyncio, cio does not wait
 * for the peer's own close_notify (as Go and nginx do not): a peer that never
 * answers cannot hold a close up (aiohttp#11091). A stream after write_eof
 * can still read.
 *
 * SIGPIPE: never raised; cio's own socket BIO sends with MSG_NOSIGNAL.
 *
 * Built with CMake option CIO_TLS (on when OpenSSL 3 is found; the library
 * then links libssl and libcrypto). Without it cio_tls_context_new fails
 * with -ENOTSUP, cio_tls_available() is false and the stream accessors
 * below report a plain stream.
 */
#ifndef CIO_TLS_H
#define CIO_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A TLS configuration (ssl.SSLContext): made by cio_tls_context_new,
 * reference-counted, immutable, shareable across connections and threads. */
typedef struct cio_tls_context cio_tls_context;

/* Protocol versions for cio_tls_options.min_version. */
#define CIO_TLS_1_2 0x0303
#define CIO_TLS_1_3 0x0304

/* Options of a context; zero (or NULL opts) = the defaults: a client that
 * verifies against the system's CA store. */
typedef struct cio_tls_options {
  bool server;            /* a server context: cert_file and key_file are required */
  const char *cert_file;  /* PEM certificate chain, leaf first (server; client: for client auth) */
  const char *key_file;   /* PEM private key of that certificate (NULL: in cert_file) */
  const char *ca_file;    /* PEM CA bundle that verifies the peer; with ca_dir NULL too, a client */
  const char *ca_dir;     /*   uses the system's store; a server with verify_client needs one */
  bool verify_client;     /* server: require a client certificate that verifies against ca_* */
  bool insecure_no_verify; /* client: accept ANY certificate for ANY name. For tests only:
                              it makes TLS useless against an active attacker */
  const char *const *alpn; /* ALPN protocols in preference order, NULL-terminated; NULL: none.
                              A server picks its first one the client offers, or none */
  int min_version;          /* CIO_TLS_1_2 (0 = this) or CIO_TLS_1_3 */
  int max_version;          /* CIO_TLS_1_2 or CIO_TLS_1_3 (0 = the highest known) */
  bool strict_eof;          /* an EOF without close_notify fails reads with CIO_ETLS */
  bool release_buffers;     /* free OpenSSL's buffers while a connection is idle (saves
                               ~34 KiB per idle connection; costs an allocation per read) */
} cio_tls_options;

/* ssl.SSLContext(): make a context. Copies what it needs from opts (the file
 * names are read now: the files may go afterwards; the alpn strings are
 * copied). Does not suspend (reads the files and, for a client with no
 * ca_file/ca_dir, locates the system store). The caller owns one reference:
 * cio_tls_context_unref. A context is immutable and may be shared by many
 * connections, loops and threads; each stream holds its own reference, so
 * the caller may unref it while connections still use it.
 * Returns the context, or NULL with cio_errcode():
 *   -EINVAL    bad options (server without cert_file, verify_client without
 *              ca_file/ca_dir, insecure_no_verify on a server, an ALPN name
 *              empty or longer than 255 bytes, min_version or max_version
 *              unknown, max_version below min_version)
 *   CIO_ETLS   OpenSSL refused a file: it is missing, not PEM, the key does
 *              not match the certificate (the message names the file and
 *              OpenSSL's reason)
 *   -ENOMEM, -ENOTSUP (built without TLS) */
cio_tls_context *cio_tls_context_new(const cio_tls_options *opts);

/* Take another reference; returns ctx (NULL for NULL). Thread-safe. */
cio_tls_context *cio_tls_context_ref(cio_tls_context *ctx);

/* Drop a reference; the last one frees the context. NULL is ignored.
 * Thread-safe. */
void cio_tls_context_unref(cio_tls_context *ctx);

/* Whether this cio was built with TLS (CMake option CIO_TLS). */
bool cio_tls_available(void);

/* ---- a TLS stream's state (get_extra_info('ssl_object') & co.) ------------ */

/* selected_alpn_protocol(): the protocol ALPN chose for stream s, or NULL
 * (no TLS, no ALPN, or no common protocol). The string lives as long as the
 * stream. Does not suspend. */
const char *cio_stream_tls_alpn(cio_stream *s);

/* version(): "TLSv1.3", "TLSv1.2", or NULL for a plain stream. Static string. */
const char *cio_stream_tls_version(cio_stream *s);

/* cipher()[0]: the cipher suite's name ("TLS_AES_256_GCM_SHA384"), or NULL
 * for a plain stream. Static string. */
const char *cio_stream_tls_cipher(cio_stream *s);

/* The peer certificate's subject, one line ("CN=localhost"), written to
 * buf (len bytes, NUL-terminated, truncated to fit). Returns the length of the
 * full subject; -ENOENT when the peer sent no certificate (a client without
 * one, or a plain stream); -EINVAL for NULL s or buf with len 0. */
int cio_stream_tls_peer_subject(cio_stream *s, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
