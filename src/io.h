/* Layer 8: fd readiness (internal view). Each loop keeps one record per fd
 * number it has seen: one poller registration carrying a reader slot and a
 * writer slot. The socket calls (sock.c) build on cio__fd_wait. */
#ifndef CIO_IO_INTERNAL_H
#define CIO_IO_INTERNAL_H

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cio/io.h"
#include "task.h"

/* Suspend t until fd is ready for `dir` (CIO__POLL_IN or CIO__POLL_OUT).
 * The edge contract: call it only after the kernel said EAGAIN for `dir` (or
 * a short read emptied the buffer) since this task's last wait on fd ended;
 * it may then return at once, without a new event, when one came while
 * nobody waited (retry the call: it says EAGAIN again at worst).
 * Returns as cio_wait_readable; `who` names the public call in messages. */
int cio__fd_wait(struct cio_task *t, int fd, unsigned dir, const char *who);
/* cio__fd_wait without the contract: returns when the fd is ready now (a
 * level), as cio_wait_readable does. For transports (TLS), whose "would
 * block" need not come from the fd. */
int cio__fd_wait_level(struct cio_task *t, int fd, unsigned dir, const char *who);

/* cio_add_writer under the edge contract (called after a write said EAGAIN
 * or came back short): the callback runs once per edge, not while the fd
 * stays writable. For the stream layer's flush. */
int cio__fd_add_writer_edge(cio_loop *loop, int fd, cio_callback_fn fn, void *arg);
/* A descriptor cio has just obtained from the kernel (accept, socket): any
 * record for that number is stale. Waiters left on it (their fd was closed
 * with plain close()) resume with -EBADF, callbacks are dropped, and the
 * registration is no longer trusted. No system call. loop may be NULL. */
void cio__fd_fresh(cio_loop *loop, int fd);

/* cio_fd_close for an fd that loop's own machinery owns (a pidfd, a
 * signalfd), from the loop's thread whether or not the loop is running now
 * (its close path): waiters wake with -EBADF, callbacks and the registration
 * go, then close(fd). No-op for fd < 0. */
void cio__fd_close_in(cio_loop *loop, int fd);

/* Do not trust fd's registration any more: the next wait re-registers it
 * (one epoll_ctl). For sockets about to connect. */
void cio__fd_untrust(cio_loop *loop, int fd);

/* The read-readiness hint: after a read of fd, note whether it came back
 * short (0 < n < asked), i.e. emptied the receive buffer. Before the next
 * read, cio__fd_wait_unless_ready waits for readability if the buffer was
 * left empty (and clears the hint), else returns 0 at once. It returns as
 * cio__fd_wait. */
void cio__fd_note_read(cio_loop *loop, int fd, bool drained);
int cio__fd_wait_unless_ready(struct cio_task *t, int fd, const char *who);


/* The cooperative budget: call at the start of every socket operation of
 * task t. After 128 operations in a row that did not suspend, yields once
 * (so other tasks and the poller get their turn) and returns its result:
 * 0, or -ECANCELED (then the operation must not start). */
int cio__coop(struct cio_task *t);

/* io_uring: a kernel operation awaited by a task. The caller prepares the
 * request (cio__uring_sqe(&loop->poller, &k->op) + an io_uring_prep_*) and
 * calls cio__kop_await, which suspends t until the completion and returns
 * the operation's result (bytes, 0, -errno). If t is cancelled meanwhile,
 * the request is withdrawn and t waits on (through further cancellations)
 * until the kernel lets go of the buffers; then the cancel is what it
 * returns, unless `keep_data` and the operation moved data anyway: then the
 * data's count is returned and the cancellation is delivered at t's next
 * suspension point (no byte lost). */
struct cio__kop {
  struct cio__poll_op op;
  cio_loop *loop;
  struct cio_future *fut;
  int res;
  bool done;
  bool killed;     /* withdrawn because its fd was closed (cio_fd_close) */
  const char *why; /* then: the message its task gets with -EBADF */
};
void cio__kop_init(struct cio__kop *k, cio_loop *loop);
ssize_t cio__kop_await(struct cio_task *t, struct cio__kop *k, bool keep_data);

/* cio__kop_await for an operation on fd that takes fd's `dir` slot, as a
 * waiting task would (-EBUSY if taken): closing fd with cio_fd_close (or
 * finding its number reused) withdraws the request, and the task gets
 * -EBADF, exactly as a readiness wait. */
ssize_t cio__fd_kop_await(struct cio_task *t, int fd, unsigned dir, struct cio__kop *k,
                          bool keep_data, const char *who);
#ifdef CIO_HAVE_URING
/* Whether this loop's receives run as kernel operations (io_uring). */
bool cio__fd_kernel_reads(cio_loop *loop);
/* A receive of up to len bytes into buf as a kernel operation, awaited
 * (cio__fd_kop_await with keep_data: data that arrives after a cancel is
 * returned, the cancel delivered at the next suspension). For a socket whose
 * recv() just said EAGAIN. Returns the count (0 at EOF; the read hint is
 * noted), -EAGAIN when kernel reads are off or the ring is full (then wait
 * for readiness), -ECANCELED / -EBADF / -EBUSY (message set), or another
 * -errno (message not set). */
ssize_t cio__fd_recv_kernel(struct cio_task *t, int fd, void *buf, size_t len, const char *who);
/* A receive from fd's multishot request with provided buffers (for a
 * stream socket that only the stream layer reads, and that is closed with
 * cio_fd_close: the request stays in the kernel between reads and holds
 * the file). Copies up to len bytes of what has arrived, in order, else
 * (re)arms the request and suspends until something does. Never loses a
 * byte: what completes while nobody reads (a cancelled read) is kept for the
 * next call. Returns the count, 0 at EOF, -ECANCELED / -EBADF / -EBUSY
 * (message set), another -errno (message not set), or -EAGAIN when this fd
 * cannot use it now (not io_uring, kernel reads off, not a stream socket,
 * no ring entry or buffers): then read it the readiness way; the queue is
 * empty and no request is armed, so that keeps the order. */
ssize_t cio__fd_recv_ms(struct cio_task *t, int fd, void *buf, size_t len, const char *who);
/* The next connection of listening socket fd from its multishot accept
 * (armed on first use, kept in the kernel between calls; connections it
 * accepted meanwhile are queued, at most 64, and closed if the fd is closed
 * with cio_fd_close). Suspends. Returns the new fd (non-blocking,
 * close-on-exec), -ECANCELED / -EBADF / -EBUSY (message set), or -EAGAIN
 * when it cannot be used now or the kernel reported an accept error: then
 * accept the readiness way (cio_sock_accept), which has the error policy. */
int cio__fd_accept_ms(struct cio_task *t, int fd, const char *who);
/* Withdraw fd's multishot receive and wait (suspending) until the kernel
 * has let go of it; data already queued stays (take it with
 * cio__fd_recv_ms_take before reading fd directly). 0 or -ECANCELED. */
int cio__fd_recv_ms_stop(struct cio_task *t, int fd);
/* Copy (without suspending) up to len queued bytes; returns the count. */
size_t cio__fd_recv_ms_take(cio_loop *loop, int fd, void *buf, size_t len);
/* Bytes queued by fd's multishot receive and not read yet (tests). */
size_t cio__fd_recv_ms_queued(cio_loop *loop, int fd);
#endif
/* recv/send/sendmsg for the hot paths, without glibc's cancellation-point
 * wrapper: in a process with more than one thread (the stall watchdog is
 * one) every recv() and send() does two atomic read-modify-writes around the
 * system call to allow pthread_cancel, ~1% of an echo server's CPU. cio's
 * calls are never cancellation points: a task is cancelled with
 * cio_task_cancel. Return and errno as recv(2)/send(2)/sendmsg(2). */
static inline ssize_t cio__sys_recv(int fd, void *buf, size_t len, int flags) {
  return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}
static inline ssize_t cio__sys_send(int fd, const void *buf, size_t len, int flags) {
  return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}
static inline ssize_t cio__sys_sendmsg(int fd, const struct msghdr *m, int flags) {
  return syscall(SYS_sendmsg, fd, m, flags);
}
/* Memory that an operation still in the kernel owns after its owner went
 * away (a stream freed while its send is in flight): kept on the loop's
 * list until the operation's completion unlinks and frees it, or freed by
 * `release` when the loop closes (the ring is closed after that). add
 * returns 0 or -ENOMEM. */
struct cio__leftover {
  struct cio__leftover *prev, *next;
  void (*release)(struct cio__leftover *l);
};
int cio__leftover_add(cio_loop *loop, struct cio__leftover *l);
void cio__leftover_del(cio_loop *loop, struct cio__leftover *l);

/* Whether the last read of fd emptied its buffer (and clear the hint). */
bool cio__fd_take_drained(cio_loop *loop, int fd);

/* A socket address for messages: "127.0.0.1:80", "[::1]:80", "/path", or
 * "?" for NULL. Returns buf. */
const char *cio__addr_str(const struct sockaddr *sa, char *buf, size_t len);

/* How many times this loop has called the poller's ctl (tests). */
unsigned long cio__io_ctl_count(cio_loop *loop);

#endif
