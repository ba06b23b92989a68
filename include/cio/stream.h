/* cio — streams (asyncio's open_connection, start_server, StreamReader and
 * StreamWriter).
 *
 * ONE OBJECT: a cio_stream is asyncio's (StreamReader, StreamWriter) pair in
 * one object: the reading calls (cio_stream_read*) and the writing calls
 * (cio_stream_write*, drain, close) take the same pointer. It owns its fd
 * (closes it when freed) and, with TLS, the TLS state under it: the same
 * calls work with and without TLS.
 *
 * Where a stream comes from:
 *   reader, writer = await asyncio.open_connection(h, p)   cio_open_connection(h, p, NULL, &s)
 *   ... open_unix_connection(path)                          cio_open_unix_connection(path, NULL, &s)
 *   any fd (socket, pipe end, socketpair, file)             cio_stream_from_fd(fd, NULL, &s)
 *   async with aiofiles.open(path) as f: async for line..   cio_stream_open_file(path, O_RDONLY,
 *                                                               0, NULL, &s) + cio_stream_readline
 *   start_server(cb, h, p) -> cb(reader, writer)            cio_start_server(handler, arg, h, p, NULL, &srv)
 *
 * READING. The stream keeps one read buffer. A read takes what the buffer
 * holds and reads from the fd only when it needs more; one reader at a time:
 * a read call made while another task is suspended in a read of the same
 * stream returns -EBUSY at once (asyncio's "RuntimeError: readuntil() called
 * while another coroutine is already waiting for incoming data").
 *
 *   Zero-copy lines: cio_stream_readline and cio_stream_readuntil* return a
 *   pointer INTO the stream's buffer and a length (the line is not
 *   NUL-terminated). The pointer is valid until the next reading call on the
 *   stream (any cio_stream_read*), cio_stream_start_tls or cio_stream_free;
 *   copy it if you keep it. cio_stream_read and cio_stream_readexactly copy
 *   into the caller's buffer; cio_stream_read_all returns a malloc'd copy.
 *
 *   No byte is lost (cancel-safety): a read that is cancelled (-ECANCELED),
 *   times out (-ETIMEDOUT, the _timeout forms or a CIO_WITH_TIMEOUT scope) or
 *   fails with CIO_EINCOMPLETE / CIO_ELIMITOVERRUN from readuntil leaves every
 *   byte that arrived in the buffer, unconsumed: the next read sees it.
 *   (asyncio's readexactly and readuntil clear the buffer on EOF and hand the
 *   bytes over in IncompleteReadError.partial; here they stay in the buffer
 *   and cio_stream_read returns them, then 0.)
 *
 *   The limit (opts.limit, 64 KiB by default, asyncio's): readuntil/readline
 *   give up when the separator is not within `limit` bytes. readline then
 *   behaves as asyncio's: the line is discarded (up to and including the
 *   separator if it was found, else everything buffered), and it returns
 *   CIO_ELIMITOVERRUN; readuntil leaves all the data in the buffer.
 *
 *   Errors from the fd (a reset peer: -ECONNRESET) are returned by the read
 *   that needed more data; bytes already buffered are still returned first by
 *   cio_stream_read, so a reset mid-line loses nothing. The error is sticky:
 *   every later read that needs the fd returns it again.
 *
 * WRITING. cio_stream_write / writev / writelines never suspend: they send
 * at once when nothing is queued (one send(2) / sendmsg(2), MSG_NOSIGNAL: a
 * closed peer never raises SIGPIPE) and queue what the kernel did not take;
 * the queue is flushed in the background by the loop as the fd becomes
 * writable. cio_stream_drain suspends only while the queue is above the
 * high-water mark (64 KiB), until it is at or below the low-water mark (16
 * KiB), as asyncio's transports pause and resume. A failure while flushing
 * in the background (-EPIPE, -ECONNRESET) drops the queue and is returned by
 * the next drain (and by the writes after it). Writing after write_eof or
 * close returns -EPIPE.
 *
 * Pipes: a stream made from a pipe end reads (read end) or writes (write
 * end) only; the other half's calls return -EBADF. A pipe has no
 * MSG_NOSIGNAL, so the first pipe stream sets SIGPIPE to SIG_IGN for the
 * process if it was SIG_DFL (CPython does this at start-up); writes to a
 * pipe whose reader is gone then return -EPIPE.
 *
 * Error codes common to all the calls below (each lists its own):
 *   -EINVAL        s (or another required pointer) is NULL, or a bad size
 *                  (a negative int passed as a size_t: above SSIZE_MAX)
 *   CIO_ENOTASK    a suspending call made outside a task
 *   -ECANCELED     the task was cancelled while suspended (see cancel-safety)
 *   -ETIMEDOUT     a _timeout form's deadline passed (or an enclosing
 *                  cio_timeout scope expired)
 */
#ifndef CIO_STREAM_H
#define CIO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The stream: reader and writer in one object (see above). */
typedef struct cio_stream cio_stream;

/* A TLS configuration (include/cio/tls.h). */
struct cio_tls_context;

/* Default limit of the reader (asyncio's _DEFAULT_LIMIT) and write marks. */
#define CIO_STREAM_LIMIT (64u * 1024u)
#define CIO_STREAM_WRITE_HIGH (64u * 1024u)
#define CIO_STREAM_WRITE_LOW (16u * 1024u)

/* Options of every call that makes a stream or a server. Zero (or a NULL
 * pointer) means the default of each field. The struct is only read during
 * the call that takes it (strings are copied). */
typedef struct cio_stream_opts {
  size_t limit;       /* readline/readuntil limit; 0 = 64 KiB */
  size_t write_high;  /* drain suspends above this; 0 = 64 KiB (or 4 x write_low) */
  size_t write_low;   /* ... until at or below this; 0 = 16 KiB (or write_high / 4) */
  int backlog;        /* servers: listen(2) backlog; 0 = 100 */
  bool reuse_port;    /* servers: SO_REUSEPORT */
  double connect_timeout;     /* open_connection: whole call incl. resolution; 0 = none */
  double happy_eyeballs_delay; /* open_connection: start the next address after this
                                  many seconds while an attempt is still in progress
                                  (asyncio's happy_eyeballs_delay; RFC 8305 says 0.25);
                                  0 = try the addresses one after another */
  struct cio_tls_context *tls; /* non-NULL: TLS over the connection (cio/tls.h) */
  const char *server_hostname; /* TLS client: name to verify and send as SNI;
                                  NULL = the host given to cio_open_connection */
  double tls_handshake_timeout; /* seconds; 0 = 60 (asyncio's ssl_handshake_timeout) */
  double tls_shutdown_timeout;  /* seconds; 0 = 30 (asyncio's ssl_shutdown_timeout) */
  size_t handler_stack_size;    /* servers: stack of each handler task; 0 = the loop's
                                   default (cio_task_options.stack_size) */
} cio_stream_opts;

/* ---- making streams ----------------------------------------------------------- */

/* asyncio.open_connection: resolve host:port (cio_getaddrinfo) and connect a
 * TCP socket (TCP_NODELAY, as asyncio), trying every resolved address in
 * order; with opts->happy_eyeballs_delay > 0 the next attempt starts when the
 * previous one has not finished within the delay, the first to connect wins
 * and the others are closed. With opts->tls, performs the TLS handshake
 * (server_hostname or host for SNI and verification). Suspends. On success
 * *out is a new stream the caller frees with cio_stream_free. Returns 0, or:
 * -EINVAL (host, port or out NULL; bad opts), the resolution errors of
 * cio_getaddrinfo (CIO_EAI_*), the last connection error (-ECONNREFUSED,
 * -ENETUNREACH, -EHOSTUNREACH, ...) with every attempt in the message,
 * -ETIMEDOUT (connect_timeout), -ENOMEM, -EMFILE, the TLS errors (cio/tls.h;
 * -ENOTSUP when built without TLS), -ECANCELED, CIO_ENOTASK. *out is NULL on
 * failure, and no fd is left open. */
CIO_NODISCARD int cio_open_connection(const char *host, const char *port,
                                      const cio_stream_opts *opts, cio_stream **out);

/* asyncio.open_unix_connection: connect a Unix stream socket to path.
 * Suspends (a full backlog, TLS). Returns 0 with *out, or -EINVAL,
 * -ENAMETOOLONG, -ENOENT, -ECONNREFUSED, -ETIMEDOUT (connect_timeout),
 * -ENOMEM, the TLS errors, -ECANCELED, CIO_ENOTASK. */
CIO_NODISCARD int cio_open_unix_connection(const char *path, const cio_stream_opts *opts,
                                           cio_stream **out);

/* Wrap an open fd in a stream: one that can be polled (a connected socket,
 * a socketpair end, a pipe or FIFO end, a tty), or a regular file (see
 * cio_stream_open_file for how a file stream reads and writes). Takes
 * ownership of fd on success (cio_stream_free closes it) and makes a
 * pollable fd non-blocking. A read-only fd (pipe read end) serves the
 * reading calls and a write-only fd the writing calls; the other half's
 * calls return -EBADF. opts->tls is ignored (use cio_stream_start_tls).
 * Does not suspend; callable outside a task, but the stream must then be
 * used from tasks of one loop. Returns 0 with *out, or -EINVAL (out NULL,
 * bad opts), -EBADF (fd not open), -EISDIR (a directory), -ENOMEM. On
 * failure fd is not closed. */
CIO_NODISCARD int cio_stream_from_fd(int fd, const cio_stream_opts *opts, cio_stream **out);

/* Open the file at path as open(2) does (flags O_RDONLY, O_WRONLY or O_RDWR,
 * with O_CREAT, O_TRUNC, O_APPEND, O_EXCL...; mode for O_CREAT) and make a
 * stream of it: readline, readuntil, readexactly and read work on the file
 * with every promise of a socket stream (the limit, no byte lost to a
 * cancel or a timeout, at_eof at end of file), and so do write, drain and
 * close. The file calls of cio/file.h serve it (io_uring, or the thread
 * pool on epoll); data in the page cache is read and written at once.
 *   Reading starts at the start of the file (for cio_stream_from_fd: at the
 *   fd's offset) and keeps its own position; end of file is end of stream
 *   (later growth of the file is not seen). Writing goes at the file
 *   position (the end with O_APPEND); cio_stream_write never suspends: the
 *   bytes the page cache does not take at once are written in the
 *   background (up to 512 KiB of them in the file's own buffers, not
 *   counted by cio_stream_write_buffer_size), drain bounds what is queued
 *   beyond that, and cio_stream_close (then
 *   cio_stream_wait_closed, which returns the first write error, e.g.
 *   -ENOSPC) writes everything before closing the fd. As over TLS, the
 *   close is bounded by opts.tls_shutdown_timeout (30 s): what is still
 *   unwritten then is dropped, and wait_closed returns -ETIMEDOUT.
 *   cio_stream_write_eof ends the writing side the same way without
 *   closing. Nothing calls fsync: after wait_closed the data is in the page
 *   cache, as after Python's close().
 * Suspends (the open). On success *out is a new stream the caller frees
 * with cio_stream_free. Returns 0, or: -EINVAL (path or out NULL, bad opts,
 * O_DIRECT), the errors of open(2) (-ENOENT, -EACCES, -EEXIST, -EISDIR
 * (writing a directory), -EMFILE, ...), -EISDIR (reading a directory),
 * -ENOMEM, -ECANCELED, CIO_ENOTASK. *out is NULL on failure and no fd is
 * left open. */
CIO_NODISCARD int cio_stream_open_file(const char *path, int flags, mode_t mode,
                                       const cio_stream_opts *opts, cio_stream **out);

/* StreamWriter.start_tls: upgrade the open stream to TLS in place (STARTTLS),
 * as a client verifying server_hostname (required unless the context is
 * insecure_no_verify; "" checks the certificate chain but no name), or as the
 * server when ctx is a server context (server_hostname ignored). Flushes
 * queued writes first. Suspends for the
 * handshake. Returns 0, or: -EINVAL, -EBUSY (a read is in progress),
 * -EALREADY (already TLS), the TLS errors of cio/tls.h (-ENOTSUP when built
 * without TLS, or for a file stream), -ETIMEDOUT (tls_handshake_timeout),
 * -ECANCELED, CIO_ENOTASK. */
CIO_NODISCARD int cio_stream_start_tls(cio_stream *s, struct cio_tls_context *ctx,
                                       const char *server_hostname);

/* Free the stream: closes the fd at once if still open (queued writes that
 * were not sent are dropped: call cio_stream_close + cio_stream_wait_closed
 * first to flush them), wakes tasks still waiting on it with -EBADF, frees
 * the buffers. Must not be called while another task is suspended in a call
 * on s. NULL is a no-op. Does not suspend. */
void cio_stream_free(cio_stream *s);

/* ---- reading (StreamReader) -------------------------------------------------- */

/* StreamReader.read(n): up to n bytes into buf. Returns as soon as at least
 * one byte is available: the buffered bytes first, else one read from the fd
 * (when the buffer is empty and n is large, straight into buf). Suspends
 * while nothing is buffered and nothing has arrived. Returns the count
 * (> 0), 0 at end of stream (or n == 0: returns 0 at once), or: -EINVAL
 * (buf NULL with n > 0), -EBUSY (another task is reading s), -EBADF (s
 * cannot read: a write-only pipe), -ECONNRESET and other -errno of the read,
 * -ECANCELED / -ETIMEDOUT (nothing consumed), CIO_ENOTASK. After
 * cio_stream_close the buffered bytes are returned, then 0. */
CIO_NODISCARD ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n);
/* cio_stream_read with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD ssize_t cio_stream_read_timeout(cio_stream *s, void *buf, size_t n, double timeout);

/* StreamReader.read(-1): everything until end of stream, as one malloc'd
 * block: *data (NUL-terminated for convenience, not counted in *len) is the
 * caller's to free(). Suspends until EOF. Returns 0 with *data and *len (an
 * empty stream gives a valid "" block and *len 0), or: -EINVAL (data or len
 * NULL), -EBUSY, -EBADF, -ENOMEM, -errno of the read, -ECANCELED /
 * -ETIMEDOUT, CIO_ENOTASK. On failure *data is NULL and everything read so
 * far stays in the stream's buffer (nothing lost). Not bounded by the
 * limit. */
CIO_NODISCARD int cio_stream_read_all(cio_stream *s, char **data, size_t *len);
/* cio_stream_read_all with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD int cio_stream_read_all_timeout(cio_stream *s, char **data, size_t *len,
                                              double timeout);

/* StreamReader.readline: the next line, up to and including "\n", as a
 * pointer into the stream's buffer (see "Zero-copy lines" above): *line and
 * the returned length. At end of stream returns the last, unterminated line,
 * then 0 (with *line pointing at an empty string). Suspends until a line is
 * complete. Returns the length (> 0), 0 at EOF, or: CIO_ELIMITOVERRUN (the
 * line is longer than the limit: as asyncio, the line was discarded up to
 * and including its "\n" if that was in the buffer, else the whole buffer;
 * the next readline continues after it), -EINVAL (line NULL), -EBUSY,
 * -EBADF, -errno of the read (the partial line stays buffered), -ECANCELED
 * / -ETIMEDOUT (nothing consumed), CIO_ENOTASK. *line is NULL on error. */
CIO_NODISCARD ssize_t cio_stream_readline(cio_stream *s, const char **line);
/* cio_stream_readline with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD ssize_t cio_stream_readline_timeout(cio_stream *s, const char **line,
                                                  double timeout);

/* StreamReader.readexactly(n): exactly n bytes into buf. Suspends until n
 * bytes are there. Returns 0, or: CIO_EINCOMPLETE (end of stream first:
 * nothing was consumed, the partial bytes stay in the buffer: see
 * cio_stream_buffered, read them with cio_stream_read), -EINVAL (buf NULL
 * with n > 0), -EBUSY, -EBADF, -ENOMEM (n larger than the buffer could
 * grow), -errno of the read, -ECANCELED / -ETIMEDOUT (nothing consumed),
 * CIO_ENOTASK. n == 0 returns 0 at once. */
CIO_NODISCARD int cio_stream_readexactly(cio_stream *s, void *buf, size_t n);
/* cio_stream_readexactly with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD int cio_stream_readexactly_timeout(cio_stream *s, void *buf, size_t n,
                                                 double timeout);

/* StreamReader.readuntil(separator): the data up to and including the first
 * occurrence of sep (seplen bytes), as a pointer into the buffer (see
 * "Zero-copy lines"). Suspends until it is there. Returns the length, or:
 * CIO_ELIMITOVERRUN (no separator within the limit: everything stays
 * buffered, the call may be retried or the data read with cio_stream_read),
 * CIO_EINCOMPLETE (end of stream before a separator: the partial data stays
 * buffered), -EINVAL (out or sep NULL, seplen 0), -EBUSY, -EBADF, -ENOMEM,
 * -errno of the read, -ECANCELED / -ETIMEDOUT (nothing consumed),
 * CIO_ENOTASK. *out is NULL on error. */
CIO_NODISCARD ssize_t cio_stream_readuntil(cio_stream *s, const void *sep, size_t seplen,
                                           const char **out);
/* cio_stream_readuntil with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD ssize_t cio_stream_readuntil_timeout(cio_stream *s, const void *sep, size_t seplen,
                                                   const char **out, double timeout);

/* readuntil with several separators (asyncio 3.13's tuple): seps[i] is
 * seplens[i] bytes long (seplens NULL: each is a NUL-terminated string).
 * The match that ENDS first in the data wins (asyncio's "shortest data"
 * rule; of separators ending at the same byte, the shortest, which is also
 * the one the limit is checked against). If which is
 * not NULL it receives the index of the separator found. Returns and fails
 * as cio_stream_readuntil; -EINVAL also for nseps == 0 or an empty
 * separator. */
CIO_NODISCARD ssize_t cio_stream_readuntil_any(cio_stream *s, const void *const *seps,
                                               const size_t *seplens, size_t nseps,
                                               const char **out, size_t *which);
/* cio_stream_readuntil_any with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing consumed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD ssize_t cio_stream_readuntil_any_timeout(cio_stream *s, const void *const *seps,
                                                       const size_t *seplens, size_t nseps,
                                                       const char **out, size_t *which,
                                                       double timeout);

/* StreamReader.at_eof: true when end of stream was seen and the buffer is
 * empty. Does not suspend; false for NULL. */
bool cio_stream_at_eof(const cio_stream *s);

/* The number of bytes in the read buffer (read without suspending); 0 for
 * NULL. */
size_t cio_stream_buffered(const cio_stream *s);

/* The reader's limit (0 for NULL). */
size_t cio_stream_limit(const cio_stream *s);

/* ---- writing (StreamWriter) -------------------------------------------------- */

/* StreamWriter.write: queue n bytes (copied) for sending. Never suspends:
 * sends at once if nothing is queued, queues the rest, the loop flushes the
 * queue as the fd becomes writable. Returns 0 (n == 0 too), or: -EINVAL
 * (buf NULL with n > 0), -EPIPE (after write_eof or close), -EBADF (s cannot
 * write: a read-only pipe), the error that broke the connection earlier
 * (-EPIPE, -ECONNRESET, ...; the bytes are dropped), -ENOMEM (nothing was
 * queued; if the kernel had already taken part of the bytes, the stream is
 * cut and later writes and drains return -ENOMEM too), CIO_ENOTRUNNING (no loop has used the stream and none runs in
 * this thread). Callable outside a task (the stream's loop flushes). */
int cio_stream_write(cio_stream *s, const void *buf, size_t n);

/* write for several buffers at once (one sendmsg when nothing is queued).
 * Returns as cio_stream_write; -EINVAL also for iov NULL with iovcnt > 0 or
 * iovcnt < 0. */
int cio_stream_writev(cio_stream *s, const struct iovec *iov, int iovcnt);

/* StreamWriter.writelines: write each of the n NUL-terminated strings in
 * order (one sendmsg when nothing is queued). Returns as cio_stream_writev. */
int cio_stream_writelines(cio_stream *s, const char *const *lines, size_t n);

/* StreamWriter.drain: wait until it is appropriate to write more. Does not
 * suspend while the queue is at or below the high-water mark; above it,
 * suspends until the queue is at or below the low-water mark. Several tasks
 * may drain at once. Returns 0, or: the connection's write error (-EPIPE,
 * -ECONNRESET, -ETIMEDOUT, ...; the queue was dropped), -ECONNRESET (the
 * stream was aborted), -EBADF (a read-only pipe), -ECANCELED / -ETIMEDOUT (the queue is untouched,
 * still flushing), CIO_ENOTASK. A closed stream whose queue flushed returns
 * 0. */
CIO_NODISCARD int cio_stream_drain(cio_stream *s);
/* cio_stream_drain with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (the queue untouched),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD int cio_stream_drain_timeout(cio_stream *s, double timeout);

/* StreamWriter.write_eof: after the queue is flushed, half-close the sending
 * side (shutdown(SHUT_WR) for a socket, TLS close_notify, close(2) for a
 * pipe's write end); the reading side stays open. Does not suspend. Returns
 * 0 (also when already done), -EINVAL, -ENOTSUP (cannot write EOF: see
 * cio_stream_can_write_eof), -EBADF (closed), or the connection's write
 * error. */
int cio_stream_write_eof(cio_stream *s);

/* StreamWriter.can_write_eof: true for sockets, TLS and pipes; false for
 * NULL, a closed stream and fds that cannot half-close (a tty). */
bool cio_stream_can_write_eof(const cio_stream *s);

/* StreamWriter.close: stop writing; the queued bytes are still flushed, then
 * the fd is closed (at once if nothing is queued). Over TLS, close_notify is
 * sent after the flush, and the whole close is bounded by
 * opts.tls_shutdown_timeout (then the fd is closed anyway). Pending and later reads
 * return the buffered bytes, then 0 (EOF). Idempotent. Does not suspend.
 * The stream stays allocated until cio_stream_free. Returns 0 or -EINVAL. */
int cio_stream_close(cio_stream *s);

/* transport.abort: close the fd at once, dropping the queued bytes. Reads
 * then return the buffered bytes, then 0 (EOF); drains (waiting or later)
 * return -ECONNRESET, as asyncio's drain after a lost connection. Idempotent.
 * Does not suspend. Returns 0 or -EINVAL. */
int cio_stream_abort(cio_stream *s);

/* StreamWriter.wait_closed: suspend until the stream is closed (by
 * cio_stream_close, abort, or another task) and its queue flushed or
 * dropped. Returns 0, or: the write error that ended the connection (-EPIPE,
 * -ECONNRESET, ...), -ETIMEDOUT when a transport stream's (TLS, file) close
 * was cut short by opts.tls_shutdown_timeout and the rest dropped (asyncio's
 * "SSL shutdown timed out"), -ECANCELED (the flush goes on), CIO_ENOTASK. */
CIO_NODISCARD int cio_stream_wait_closed(cio_stream *s);
/* cio_stream_wait_closed with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing changed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD int cio_stream_wait_closed_timeout(cio_stream *s, double timeout);

/* StreamWriter.is_closing: true once close/abort was called or the
 * connection failed; true for NULL. */
bool cio_stream_is_closing(const cio_stream *s);

/* transport.get_write_buffer_size: the bytes queued, not yet sent; 0 for
 * NULL. */
size_t cio_stream_write_buffer_size(const cio_stream *s);

/* transport.set_write_buffer_limits(high, low): 0 means the default rule
 * (both 0: 64 KiB / 16 KiB; only high: low = high/4; only low: high =
 * 4*low). Returns 0, or -EINVAL (s NULL, low > high). Wakes drainers if the
 * queue is now below the new low mark. */
int cio_stream_set_write_buffer_limits(cio_stream *s, size_t high, size_t low);

/* get_extra_info('peername') / ('sockname'): copy the address into addr
 * (*len bytes available; set to the address length, as getpeername(2)).
 * Returns 0, or -EINVAL, -ENOTSOCK (not a socket), -ENOTCONN, -EBADF
 * (closed). Does not suspend. */
int cio_stream_peername(const cio_stream *s, struct sockaddr *addr, socklen_t *len);
/* get_extra_info('sockname'): as cio_stream_peername for the local address. */
int cio_stream_sockname(const cio_stream *s, struct sockaddr *addr, socklen_t *len);

/* get_extra_info('socket'): the stream's fd (still owned by the stream), or
 * -EBADF once closed, -EINVAL for NULL. */
int cio_stream_fd(const cio_stream *s);

/* Whether the stream runs over TLS; false for NULL and file streams. */
bool cio_stream_is_tls(const cio_stream *s);

/* ---- servers (asyncio.Server) --------------------------------------------------- */

/* A listening server (asyncio.Server), made by cio_start_server /
 * cio_start_unix_server; opaque, released with cio_server_free. */
typedef struct cio_server cio_server;

/* A connection handler (asyncio's client_connected_cb): runs as its own task
 * for each connection, with s the connection's stream and arg as given to
 * cio_start_server. The task starts eagerly (it runs up to its first
 * suspension as soon as the connection is accepted). THE SERVER OWNS s: when the handler returns, the server
 * closes s (flushing its queued writes, bounded by the connection staying
 * up) and frees it; the handler must not free it or keep it. A negative
 * return (other than -ECANCELED) is reported through the loop's exception
 * handler ("Unhandled error in the connection handler") and the server keeps
 * serving. */
typedef int (*cio_stream_handler)(cio_stream *s, void *arg);

/* asyncio.start_server: listen on host:port (host NULL or "" = every
 * interface; several addresses (e.g. IPv4 and IPv6 for "localhost") give one
 * listening socket each; port "0" = an ephemeral port, see
 * cio_server_port) and start accepting at once, each connection running
 * handler(stream, arg) in a new task. opts (limit, write marks, TLS) apply to
 * every connection; opts->tls makes a TLS server (the handshake runs in the
 * connection's task before handler). Suspends (name resolution). On success
 * *out is the server; free it with cio_server_free. Returns 0, or: -EINVAL
 * (handler, port or out NULL; bad opts), the resolution errors,
 * -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, -EMFILE, -ENOMEM, -ECANCELED,
 * CIO_ENOTASK. */
CIO_NODISCARD int cio_start_server(cio_stream_handler handler, void *arg, const char *host,
                                   const char *port, const cio_stream_opts *opts,
                                   cio_server **out);

/* asyncio.start_unix_server: as cio_start_server on a Unix socket at path (a
 * stale socket file there is replaced; the file is removed when the server
 * closes, as asyncio 3.13's cleanup_socket). Returns as cio_start_server,
 * and -ENAMETOOLONG, -ENOENT. */
CIO_NODISCARD int cio_start_unix_server(cio_stream_handler handler, void *arg, const char *path,
                                        const cio_stream_opts *opts, cio_server **out);

/* Server.serve_forever: suspend until the task is cancelled (the server
 * already accepts; this only waits). When cancelled it closes the server
 * (stops accepting) but, as asyncio, does not cancel the handlers, and
 * returns -ECANCELED. Returns -EINVAL (NULL), CIO_EINVALSTATE (the server is
 * closed, or another task is in serve_forever), -ECANCELED, CIO_ENOTASK. */
CIO_NODISCARD int cio_server_serve_forever(cio_server *srv);

/* Server.close: stop accepting and close the listening sockets. Open
 * connections and their handlers go on. Idempotent. Does not suspend.
 * Returns 0 or -EINVAL. */
int cio_server_close(cio_server *srv);

/* Server.close_clients (3.13): close every live connection after its queued
 * writes are flushed (cio_stream_close on each): a handler suspended in a
 * read sees EOF (0), one in a drain returns when the flush ends. Does not
 * suspend. Returns the number of connections closed, or -EINVAL. */
int cio_server_close_clients(cio_server *srv);

/* Server.abort_clients (3.13): drop every live connection at once
 * (cio_stream_abort: queued writes discarded). Returns the number of
 * connections aborted, or -EINVAL. */
int cio_server_abort_clients(cio_server *srv);

/* Server.wait_closed: suspend until the server is closed AND no connection
 * is left (every handler returned and its stream was freed), in either
 * order. Returns 0 at once when both hold. Returns -EINVAL, -ECANCELED,
 * CIO_ENOTASK. */
CIO_NODISCARD int cio_server_wait_closed(cio_server *srv);
/* cio_server_wait_closed with a timeout in seconds (+INFINITY: none; 0 or less: no
 * suspension when it can complete at once). Also -ETIMEDOUT (nothing changed),
 * -EINVAL for a NaN timeout, -ENOMEM (arming the timer). */
CIO_NODISCARD int cio_server_wait_closed_timeout(cio_server *srv, double timeout);

/* Beyond asyncio, the structured shutdown: close the server, cancel every
 * live handler task and wait until all are gone (their streams closed and
 * freed). If they are not gone after `timeout` seconds (+INFINITY: wait for
 * ever), their connections are aborted and it waits once more for the tasks
 * to finish. Returns 0 when no connection is left, -ETIMEDOUT if some
 * handler ignored both the cancellation and the abort, -EINVAL (NULL, NaN),
 * -ECANCELED, CIO_ENOTASK. */
CIO_NODISCARD int cio_server_shutdown(cio_server *srv, double timeout);

/* Server.is_serving: true while accepting; false for NULL. */
bool cio_server_is_serving(const cio_server *srv);

/* The number of live connections (handlers running or their streams being
 * closed); 0 for NULL. */
size_t cio_server_connections(const cio_server *srv);

/* Server.sockets: copy up to cap listening fds (still owned by the server)
 * into fds and return how many there are in all (0 once closed), or -EINVAL. */
int cio_server_sockets(const cio_server *srv, int *fds, int cap);

/* The port of the first listening TCP socket (to learn the port given for
 * "0"), or -EINVAL (NULL), -ENOTSOCK (a Unix server), -EBADF (closed). */
int cio_server_port(const cio_server *srv);

/* The local address of listening socket i (as getsockname(2)). Returns 0,
 * -EINVAL, -ERANGE (no socket i), -EBADF (closed). */
int cio_server_sockname(const cio_server *srv, int i, struct sockaddr *addr, socklen_t *len);

/* Free the server. If connections are still live it closes the server and
 * aborts them, and the server's memory goes when the last handler returns
 * (the handler tasks keep running until they notice the abort), or when the
 * last task waiting in serve_forever / wait_closed / shutdown leaves. NULL is
 * a no-op. Does not suspend. */
void cio_server_free(cio_server *srv);

#ifdef __cplusplus
}
#endif
#endif
