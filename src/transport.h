/* Streams (internal): the transport seam under a stream, and what the TLS
 * layer may use of a stream's insides.
 *
 * A stream reads and writes its fd directly (recv / sendmsg) when it has no
 * transport (s->transport NULL: a plain stream). A transport (TLS) sits
 * between the stream's buffers and the fd: the stream then calls the ops
 * below instead, and on -EAGAIN waits with cio__fd_wait(task, fd, *want,
 * who) (src/io.h) and calls again. The ops never suspend, except wait, which
 * a transport without readiness (a file) provides instead of the fd wait.
 *
 * The one entry point for TLS is cio__stream_secure (src/stream.c), called
 * by cio_open_connection / the server's connection task when opts->tls is
 * set and by cio_stream_start_tls. It runs in a task, performs the handshake
 * (suspending with cio__fd_wait, bounded by cio__stream_opts(s)->
 * tls_handshake_timeout) and installs the transport with
 * cio__stream_set_transport. Built without TLS it returns -ENOTSUP.
 *
 * Closing: after the queue is flushed, cio_stream_write_eof and
 * cio_stream_close call ops->write_eof once (TLS: close_notify); -EAGAIN
 * with *want is retried when the fd is ready, as the flush is, and
 * cio_stream_close on a transport stream is bounded by
 * opts.tls_shutdown_timeout, after which the fd is closed anyway. The
 * stream does not wait for the peer's close_notify. ops->destroy is called
 * by cio_stream_free.
 *
 * Waiting for the other direction: a transport read may want CIO__POLL_OUT
 * and a write CIO__POLL_IN (renegotiation, key updates). The stream handles
 * both: when the fd's slot for that direction is held by the stream's own
 * background flush (a writer callback), it polls with short sleeps instead
 * of cio__fd_wait, so no -EBUSY reaches the transport.
 */
#ifndef CIO_TRANSPORT_H
#define CIO_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "cio/stream.h"
#include "poll.h"

struct cio__transport;
struct cio__transport_ops {
  /* >0 bytes read, 0 at clean EOF, -EAGAIN with *want = CIO__POLL_IN or CIO__POLL_OUT (wait for
   * that, then call again), or another negative code with a cio_raise'd message */
  ssize_t (*read)(struct cio__transport *t, void *buf, size_t n, unsigned *want);
  /* bytes consumed (>=0), or -EAGAIN + *want, or negative code */
  ssize_t (*writev)(struct cio__transport *t, const struct iovec *iov, int iovcnt, unsigned *want);
  /* half-close the sending side (TLS: send close_notify): 0, -EAGAIN + *want, or negative */
  int (*write_eof)(struct cio__transport *t, unsigned *want);
  /* bytes the transport already holds that read() returns without waiting for the fd */
  size_t (*pending)(struct cio__transport *t);
  /* free the transport's own state; never closes the fd (but see close) */
  void (*destroy)(struct cio__transport *t);

  /* For a transport with no readiness to wait for (a regular file: see
   * below); NULL for TLS. wait replaces the fd wait after -EAGAIN: it
   * suspends the calling task until read (want CIO__POLL_IN) can make
   * progress, and returns 0 or a negative code (-ECANCELED: nothing was
   * consumed). add_writer replaces cio_add_writer for the stream's flush:
   * cb(arg) is called (from a task, never suspending) whenever writev or
   * write_eof may make progress, until remove_writer; it returns 0 or a
   * negative code. close replaces cio_fd_close(fd): the transport closes
   * the fd once no operation of its own is in flight. */
  int (*wait)(struct cio__transport *t, unsigned want, const char *who);
  int (*add_writer)(struct cio__transport *t, void (*cb)(void *arg), void *arg);
  void (*remove_writer)(struct cio__transport *t);
  void (*close)(struct cio__transport *t);
};
struct cio__transport {
  const struct cio__transport_ops *ops;
  int fd;
};

/* The file transport (src/file.c), which cio_stream_from_fd installs for a
 * regular file: reads are positional (pread) from the fd's offset at the
 * time, page-cache hits at once (preadv2 RWF_NOWAIT), else through
 * cio_file_pread in ops->wait into the transport's own buffer (a cancelled
 * wait loses nothing: the offset moves only with data kept); writes go at
 * the file position (so O_APPEND appends): 64 KiB or more with nothing
 * pending at once when the page cache takes them without blocking
 * (pwritev2 RWF_NOWAIT), else copied into the transport's buffer (256 KiB)
 * and written by a background task with cio_file_write, which calls the
 * stream's flush back when it has room.
 * write_eof waits (-EAGAIN) until everything is written and returns the
 * first write error. loop may be NULL (bound at first use). Returns 0 with
 * *out, or -ENOMEM. */
int cio__file_transport_new(int fd, cio_loop *loop, struct cio__transport **out);

/* The TLS entry point (see above). ctx and server_hostname are only read
 * during the call. Returns 0 with the transport installed, or a negative
 * code with a message (-ENOTSUP "built without TLS" for now). */
int cio__stream_secure(cio_stream *s, struct cio_tls_context *ctx, const char *server_hostname,
                       bool server_side);

/* The stream's transport, NULL for a plain stream (or NULL s). */
struct cio__transport *cio__stream_transport(const cio_stream *s);

/* The stream's fd (-1 once closed). */
int cio__stream_fd(const cio_stream *s);

/* The options the stream was made with (defaults filled in: limit, write
 * marks, tls_handshake_timeout 60, tls_shutdown_timeout 30). Never NULL for
 * a live stream. */
const cio_stream_opts *cio__stream_opts(const cio_stream *s);

/* Install t as the stream's transport (the stream calls t->ops->destroy when
 * freed; NULL uninstalls without destroying). From then on every read and
 * write of s goes through t. */
void cio__stream_set_transport(cio_stream *s, struct cio__transport *t);

/* Bytes the stream has already read from the fd but nobody consumed (with
 * start_tls on a server, the peer's first handshake bytes may be there):
 * *data points into the buffer, valid until the next call on s; returns the
 * count. cio__stream_consume(s, n) drops the first n of them (the TLS layer
 * takes them as ciphertext). */
size_t cio__stream_unread(cio_stream *s, const char **data);
void cio__stream_consume(cio_stream *s, size_t n);

/* Send every queued write (suspends until the queue is empty). Returns 0 or
 * the write error, -ECANCELED. Used before switching to TLS. */
int cio__stream_flush(cio_stream *s);

/* For src/server.c: fill in the defaults of opts (NULL = all defaults) into
 * *o, checking them (-EINVAL with a message naming who); and apply them to
 * a stream made by cio_stream_from_fd. */
int cio__stream_fill_opts(cio_stream_opts *o, const cio_stream_opts *in, const char *who);
void cio__stream_set_opts(cio_stream *s, const cio_stream_opts *o);

/* open_connection's connecting step (exposed for the tests): try the
 * addresses of res in order, staggered by delay (happy eyeballs) when delay
 * > 0. Returns the connected fd or the last error (host, port and who only
 * name things in the message). Suspends. */
struct addrinfo;
int cio__connect_addrs(struct addrinfo *res, double delay, const char *host, const char *port,
                       const char *who);

#endif
