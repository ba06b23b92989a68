/* Layer 8: fd readiness (internal view). Each loop keeps one record per fd
 * number it has seen: one poller registration carrying a reader slot and a
 * writer slot. The socket calls (sock.c) build on cio__fd_wait. */
#ifndef CIO_IO_INTERNAL_H
#define CIO_IO_INTERNAL_H

#include "cio/io.h"
#include "task.h"

/* Suspend t until fd is ready for `dir` (CIO__POLL_IN or CIO__POLL_OUT).
 * Returns as cio_wait_readable; `who` names the public call in messages. */
int cio__fd_wait(struct cio_task *t, int fd, unsigned dir, const char *who);

/* A descriptor cio has just obtained from the kernel (accept, socket): any
 * record for that number is stale. Waiters left on it (their fd was closed
 * with plain close()) resume with -EBADF, callbacks are dropped, and the
 * registration is no longer trusted. No system call. loop may be NULL. */
void cio__fd_fresh(cio_loop *loop, int fd);

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

/* How many times this loop has called the poller's ctl (tests). */
unsigned long cio__io_ctl_count(cio_loop *loop);

#endif
