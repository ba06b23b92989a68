/* The I/O poller seam (epoll today; io_uring and kqueue later implement the
 * same few functions). The poller also owns the cross-thread wake-up (an
 * eventfd on Linux). */
#ifndef CIO_POLL_H
#define CIO_POLL_H

#include <stdbool.h>
#include <stdint.h>

#define CIO__POLL_IN 1u
#define CIO__POLL_OUT 2u
#define CIO__POLL_ERR 4u /* error or hang-up */

struct cio__poller {
  int epfd;
  int wakefd;
};

/* A registered fd's owner: on_event(w, events) is called for each event. */
struct cio__poll_watch {
  void (*on_event)(struct cio__poll_watch *w, unsigned events);
};

int cio__poller_init(struct cio__poller *p);
void cio__poller_close(struct cio__poller *p);

/* Register, change or remove fd interest (events = CIO__POLL_IN|OUT; 0
 * removes). `registered` says whether the fd is already known to the poller.
 * Returns 0 or a negative errno. */
int cio__poller_ctl(struct cio__poller *p, int fd, unsigned events, bool registered,
                    struct cio__poll_watch *w);

/* Wait up to timeout_ns (-1 = forever, 0 = don't block) and dispatch events.
 * Returns the number of fd events dispatched (not counting a wake-up), sets
 * *woken when the wake-up fd fired (and has been drained). */
int cio__poller_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken);

/* Wake a poller blocked in another thread. Async-signal-safe. */
void cio__poller_wake(struct cio__poller *p);

#endif
