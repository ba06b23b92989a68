/* cio — I/O readiness and sockets (asyncio's add_reader & co., sock_*,
 * getaddrinfo).
 *
 * Everything here works on plain POSIX file descriptors that the caller owns:
 * cio never closes an fd behind your back, except in cio_fd_close(). The
 * socket calls use the running loop of the calling thread and must be called
 * from a task; they try the system call first and wait for readiness only
 * when it would block (EAGAIN), as Redis and asyncio do, so a socket with data
 * waiting costs one system call and no suspension. One refinement (Tokio's):
 * a receive that came back short (fewer bytes than asked) emptied the
 * buffer, so the next receive on that fd waits for readiness first instead
 * of making a recv() that would fail: one system call per message, not two.
 *
 * The waits and callbacks here are level-triggered, as asyncio's selector
 * loops have them: cio_wait_readable returns while unread bytes remain, and a
 * reader callback that leaves bytes unread is called again. (cio's own
 * socket and stream calls, which wait only after the kernel said EAGAIN,
 * register their fds edge-triggered on epoll, as Tokio and nginx do; the
 * first level wait or callback on such an fd switches it back, at the cost
 * of one epoll_ctl.) Each fd
 * has one reader slot and one writer slot per loop: a task waiting to read
 * (cio_wait_readable, cio_sock_recv, ...) or a reader callback
 * (cio_add_reader) fills the reader slot, and the writer slot likewise. A
 * second reader on the same fd gets -EBUSY instead of silently replacing the
 * first (asyncio replaces, and the first waiter hangs forever).
 *
 * The poller registration of an fd is kept between waits, so a steady stream
 * of waits makes no epoll_ctl call at all. The price is one rule:
 *
 *   CLOSING: an fd that cio has watched must be closed with cio_fd_close(),
 *   or handed back with cio_fd_forget() before close(). cio_fd_close() wakes
 *   the tasks waiting on it with -EBADF and drops its callbacks. With a plain
 *   close() the kernel silently drops the fd from epoll, and a task still
 *   waiting on it would wait forever; fds that cio itself creates
 *   (cio_sock_accept, cio_tcp_*, cio_unix_*) are re-checked, and a stale
 *   waiter on a reused number is woken with -EBADF.
 *
 * Fairness: a task whose socket calls keep finding data (a fast peer) would
 * never suspend and would starve every other task. So, as in Tokio, after
 * 128 socket calls in a row that completed without suspending, the next one
 * first yields once to the other tasks (asyncio's sock_* do not, and have
 * that flaw). Each call may therefore suspend, even with data ready.
 *
 * Cancellation: every suspending call here returns -ECANCELED when the task
 * is cancelled while it waits (a timeout scope turns that into -ETIMEDOUT);
 * the wait is removed cleanly and the fd stays usable. Each function's
 * comment says what happened to the data at that point ("cancel-safety").
 *
 * Errors: the calls return 0 or a non-negative count, or a negative code:
 * -errno from the system call (-ECONNRESET, -EPIPE, -ECONNREFUSED, ...) with a
 * message naming the call and the fd, -ECANCELED, CIO_ENOTASK outside a task,
 * -EINVAL for NULL or out-of-range arguments, -EBADF for a negative or closed
 * fd, -EBUSY when the slot is taken. cio_errmsg() holds the message.
 */
#ifndef CIO_IO_H
#define CIO_IO_H

#include <netdb.h> /* struct addrinfo, NI_* flags (with POSIX 2001 or _GNU_SOURCE) */
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "loop.h"

/* Declared here too, so that the header compiles in strict ISO C (-std=c11
 * without feature-test macros, where <netdb.h> hides struct addrinfo). */
struct addrinfo;
struct sockaddr;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- waiting for readiness from a task -------------------------------------- */

/* Suspend the current task until fd is readable (or has an error or hang-up
 * pending, so that the next read will not block: it returns the data, 0 for
 * EOF, or the error). Returns 0 when ready; -ECANCELED; -EBADF if fd < 0, is
 * not open (a number above every fd this loop has seen is checked with
 * fcntl(F_GETFD) before any memory is spent on it), or is closed by cio_fd_close() while waiting (or found reused);
 * -EPERM if fd cannot be polled (a regular file or directory); -EINVAL if fd
 * is one of the loop's own descriptors (its epoll or wake-up fd); -EBUSY if
 * another task or a reader callback already waits to read fd in this loop;
 * -ENOMEM / -ENOSPC (fs.epoll.max_user_watches) from the poller; CIO_ENOTASK.
 * Always suspends at least until the next poll, even if fd is readable now.
 * Allocates nothing once fd has been seen by this loop; makes no system call
 * when fd was registered for reading just before (the usual loop). */
CIO_NODISCARD int cio_wait_readable(int fd);

/* The same for writability. */
CIO_NODISCARD int cio_wait_writable(int fd);

/* ---- callbacks (asyncio's loop.add_reader & co.) ------------------------------ */

/* Call fn(arg) from the loop every iteration while fd is readable (or has an
 * error or hang-up), until cio_remove_reader(). One reader callback per fd:
 * adding replaces the previous callback. Does not suspend; callable from
 * callbacks and tasks, on the thread that runs (or will run) the loop.
 * Returns 0; -EINVAL (loop or fn NULL); CIO_ECLOSED; -EBADF (fd < 0 or not
 * open); -EPERM (fd cannot be polled); -EINVAL (one of the loop's own fds);
 * -EBUSY (a task is waiting to read fd); -ENOMEM / -ENOSPC. */
CIO_NODISCARD int cio_add_reader(cio_loop *loop, int fd, cio_callback_fn fn, void *arg);

/* The same for writability. */
CIO_NODISCARD int cio_add_writer(cio_loop *loop, int fd, cio_callback_fn fn, void *arg);

/* Remove fd's reader callback: it will not be called again, even if an event
 * already queued it. Returns 1 if a callback was registered, 0 if not (a task
 * waiting to read fd is not a callback and is left alone), -EINVAL for a NULL
 * loop. Makes no system call. */
int cio_remove_reader(cio_loop *loop, int fd);

/* The same for the writer callback. */
int cio_remove_writer(cio_loop *loop, int fd);

/* ---- closing ---------------------------------------------------------------- */

/* Close fd the cio way: every task waiting on it in the running loop of this
 * thread resumes with -EBADF, its reader and writer callbacks are removed,
 * its poller registration is dropped, then close(fd). Without a running loop
 * it is close(fd). Does not suspend. Returns 0, -EBADF (fd < 0 or not open),
 * -EINVAL (fd is the running loop's own epoll or wake-up fd: refused, nothing
 * is closed), or another -errno of close(2) (the fd is closed anyway, as
 * close(2) says). In the child of a fork(), closing an fd that the parent's
 * loop watches only closes the child's copy: the parent's registration stays
 * (see "fork()" in loop.h). */
int cio_fd_close(int fd);

/* Forget fd without closing it: waiters resume with -EBADF, callbacks are
 * removed and the registration is dropped, as cio_fd_close, but fd stays open
 * (call it before handing fd to other code or before your own close()).
 * Returns 0 or -EBADF for fd < 0. */
int cio_fd_forget(int fd);

/* Set or clear O_NONBLOCK. Returns 0 or -errno of fcntl (-EBADF). */
int cio_fd_set_nonblocking(int fd, bool nonblocking);

/* ---- sockets (asyncio's loop.sock_*) --------------------------------------------
 * fd must be a socket. The reading and writing calls pass MSG_DONTWAIT, so
 * they never block the loop even on a blocking socket; accept and connect
 * need a non-blocking socket and return -EINVAL for a blocking one. Writes
 * pass MSG_NOSIGNAL: a closed peer gives -EPIPE, not SIGPIPE. */

/* Accept a connection (asyncio's sock_accept). Suspends until a connection
 * arrives. Returns the new socket's fd (non-blocking, close-on-exec; the
 * caller owns it) and, if addr is not NULL, the peer's address in
 * addr and addrlen (as accept(2)). Running out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) does not fail the call: the condition is
 * reported once per call to the loop's exception handler, and the call waits
 * with back-off (5 ms doubling to 250 ms, no busy loop) and retries, so an
 * accept loop resumes by itself when descriptors are freed and the waiting
 * connection is not lost (asyncio's servers pause 1 s likewise). Transient
 * network errors (ECONNABORTED, EPROTO, ...) are retried too.
 * Cancel-safety: on -ECANCELED no connection has been taken off the queue.
 * Errors: -EINVAL (blocking socket, or addr given without addrlen), -EBADF,
 * -ENOTSOCK, -EINVAL from accept (not listening), -ECANCELED, CIO_ENOTASK,
 * -EBUSY (another task is accepting on fd). */
CIO_NODISCARD int cio_sock_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);

/* Connect (asyncio's sock_connect): starts connect(2) and, while it is in
 * progress (EINPROGRESS), suspends until it completes. Returns 0 when
 * connected, else the connection's error: -ECONNREFUSED, -ETIMEDOUT (the
 * kernel's), -ENETUNREACH, -EHOSTUNREACH, -EADDRNOTAVAIL, -EISCONN (already
 * connected), -EINVAL (NULL addr, blocking socket), -EBADF, -ENOTSOCK,
 * -ECANCELED, CIO_ENOTASK. A full Unix-socket backlog (EAGAIN) is retried
 * with back-off. addr is only read during the call.
 * Cancel-safety: on -ECANCELED the connection attempt may still be in
 * progress in the kernel; the socket is in an unspecified state and should
 * be closed. */
CIO_NODISCARD int cio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/* Receive up to len bytes into buf (asyncio's sock_recv_into). Suspends
 * while no data is available (and, see above, right after a short read, or
 * once per 128 calls that did not suspend). Returns the number of bytes received (> 0), 0
 * at end of stream (orderly shutdown by the peer), or an error: -ECONNRESET,
 * -ETIMEDOUT, -EBADF, -ENOTSOCK, -EINVAL (buf NULL with len > 0), -ECANCELED,
 * CIO_ENOTASK, -EBUSY. len 0 returns 0 at once.
 * Cancel-safety: on -ECANCELED nothing was read; the data stays in the
 * socket for the next call. */
CIO_NODISCARD ssize_t cio_sock_recv_into(int fd, void *buf, size_t len);

/* Receive up to nbytes into a new buffer (asyncio's sock_recv, which returns
 * a new bytes object): on success *data is malloc'd and the caller frees it;
 * at end of stream returns 0 with *data NULL. Returns as cio_sock_recv_into,
 * and -ENOMEM; *data is NULL whenever the result is <= 0. */
CIO_NODISCARD ssize_t cio_sock_recv(int fd, size_t nbytes, void **data);

/* Send all len bytes of buf (asyncio's sock_sendall). Suspends while the
 * socket's send buffer is full (back-pressure: the task sleeps until the
 * peer reads; no busy loop). Returns 0 when everything was handed to the
 * kernel, or an error: -EPIPE / -ECONNRESET (peer closed or reset),
 * -EBADF, -ENOTSOCK, -EINVAL (buf NULL with len > 0), -ECANCELED,
 * CIO_ENOTASK, -EBUSY. If sent is not NULL, *sent is always set to the
 * number of bytes handed to the kernel, also on error.
 * Cancel-safety: on -ECANCELED the first *sent bytes are sent and the rest
 * are not; the stream is cut in the middle of your message. */
CIO_NODISCARD int cio_sock_sendall(int fd, const void *buf, size_t len, size_t *sent);

/* Receive one datagram into buf (asyncio's sock_recvfrom_into). Suspends
 * while none is queued. Returns its length (a datagram longer than len is
 * truncated, as recvfrom(2) does; 0 is a valid empty datagram) and, if addr
 * is not NULL, the sender's address in addr and addrlen. Errors as
 * cio_sock_recv_into, -EINVAL for addr without addrlen.
 * Cancel-safety: on -ECANCELED no datagram was consumed. */
CIO_NODISCARD ssize_t cio_sock_recvfrom_into(int fd, void *buf, size_t len,
                                             struct sockaddr *addr, socklen_t *addrlen);

/* Receive one datagram of at most nbytes into a new malloc'd buffer
 * (asyncio's sock_recvfrom): *data is the caller's to free (NULL for an empty
 * datagram or on error). Returns as cio_sock_recvfrom_into, and -ENOMEM. */
CIO_NODISCARD ssize_t cio_sock_recvfrom(int fd, size_t nbytes, void **data,
                                        struct sockaddr *addr, socklen_t *addrlen);

/* Send one datagram to addr (NULL: the connected peer) (asyncio's
 * sock_sendto). Suspends while the send buffer is full. Returns the number
 * of bytes sent (the whole datagram), or an error: -EMSGSIZE, -ECONNREFUSED
 * (an earlier datagram was refused), -EBADF, -ENOTSOCK, -EINVAL, -ECANCELED,
 * CIO_ENOTASK, -EBUSY.
 * Cancel-safety: on -ECANCELED the datagram was not sent. */
CIO_NODISCARD ssize_t cio_sock_sendto(int fd, const void *buf, size_t len,
                                      const struct sockaddr *addr, socklen_t addrlen);

/* ---- name resolution (run in the default executor) ------------------------- */

/* getaddrinfo(3) for a task (asyncio's loop.getaddrinfo). A numeric host and
 * port ("127.0.0.1", "::1", NULL, "8080") are resolved at once without
 * suspending; anything else runs the blocking libc call in the loop's default
 * executor while other tasks run. host and port are copied. On success *res
 * is a list the caller frees with freeaddrinfo(). Returns 0, or:
 * CIO_EAI_NONAME (unknown host or service), CIO_EAI_AGAIN (temporary DNS
 * failure), CIO_EAI_FAIL, CIO_EAI_FAMILY, CIO_EAI_SERVICE, -EINVAL (res NULL,
 * both host and port NULL, bad hints, a numeric port above 65535), -ENOMEM, another -errno (EAI_SYSTEM),
 * -ECANCELED, CIO_ENOTASK, CIO_ESHUTDOWN (default executor shut down). The
 * message gives gai_strerror's text.
 * Cancel-safety: on -ECANCELED the lookup finishes in its thread and its
 * result is freed there; *res is NULL. */
CIO_NODISCARD int cio_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                                  struct addrinfo **res);

/* getnameinfo(3) for a task (asyncio's loop.getnameinfo), run in the default
 * executor (NI_NUMERICHOST|NI_NUMERICSERV without suspending). sa is copied;
 * host and serv (either may be NULL with length 0) receive NUL-terminated
 * names only when the call succeeds. Returns 0, CIO_EAI_NONAME,
 * CIO_EAI_AGAIN, CIO_EAI_FAIL, CIO_EAI_FAMILY, -ENOSPC (a buffer is too small),
 * -EINVAL, -ENOMEM, -ECANCELED, CIO_ENOTASK, CIO_ESHUTDOWN.
 * Cancel-safety: on -ECANCELED host and serv are left untouched. */
CIO_NODISCARD int cio_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                                  size_t hostlen, char *serv, size_t servlen, int flags);

/* ---- opening TCP and Unix sockets --------------------------------------------- */

/* Open a TCP listening socket on host:port (IPv4 or IPv6; host NULL or "" =
 * all interfaces; port "0" = an ephemeral port, read it with getsockname).
 * Resolves with cio_getaddrinfo and binds the first address that works, with
 * SO_REUSEADDR; backlog <= 0 means 100 (asyncio's default). May suspend (name
 * resolution). Returns the listening fd (non-blocking, close-on-exec; the
 * caller owns it) or: the resolution errors of cio_getaddrinfo, -EADDRINUSE,
 * -EADDRNOTAVAIL, -EACCES, -EMFILE, -EINVAL (port NULL, or a numeric port
 * above 65535), -ECANCELED,
 * CIO_ENOTASK. The message lists each address tried.
 * Cancel-safety: on -ECANCELED no socket is left open. */
CIO_NODISCARD int cio_tcp_listen(const char *host, const char *port, int backlog);

/* Open a TCP connection to host:port: resolves (cio_getaddrinfo), then tries
 * each address in order until one connects (asyncio's create_connection
 * without happy eyeballs). Sets TCP_NODELAY, as asyncio does. Suspends.
 * Returns the connected fd (non-blocking, close-on-exec; the caller owns it),
 * or the last attempt's error (-ECONNREFUSED, -ENETUNREACH, ...) with a
 * message listing every attempt; resolution errors; -EINVAL (host or port
 * NULL, numeric port above 65535); -ECANCELED; CIO_ENOTASK.
 * Cancel-safety: on -ECANCELED no socket is left open. */
CIO_NODISCARD int cio_tcp_connect(const char *host, const char *port);

/* Open a Unix stream socket listening on path. A socket file already at path
 * is removed first (asyncio does the same; any other kind of file is left
 * and gives -EADDRINUSE). backlog <= 0 means 100. Does not suspend; callable from anywhere (also
 * before the loop runs). Returns the
 * listening fd (non-blocking, close-on-exec), or -EINVAL (path NULL or
 * empty), -ENAMETOOLONG (longer than sun_path), -EADDRINUSE, -EACCES,
 * -ENOENT (no such directory), -EMFILE. Remove the file yourself when done. */
CIO_NODISCARD int cio_unix_listen(const char *path, int backlog);

/* Connect a Unix stream socket to path. Suspends while the server's backlog
 * is full. Returns the connected fd (non-blocking, close-on-exec), or
 * -ENOENT (no socket there), -ECONNREFUSED (nobody listening), -EINVAL,
 * -ENAMETOOLONG, -ECANCELED, CIO_ENOTASK.
 * Cancel-safety: on -ECANCELED no socket is left open. */
CIO_NODISCARD int cio_unix_connect(const char *path);

#ifdef __cplusplus
}
#endif
#endif
