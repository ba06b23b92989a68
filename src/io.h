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

/* How many times this loop has called the poller's ctl (tests). */
unsigned long cio__io_ctl_count(cio_loop *loop);

#endif
