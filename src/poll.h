/* The I/O poller seam. Two back ends implement it: epoll (poll_epoll.c) and
 * io_uring (poll_uring.c, built when liburing is found), chosen per loop at
 * run time. Both give the layers above level-triggered readiness, and epoll
 * edge-triggered on request (CIO__POLL_EDGE: io.c asks for it where its
 * waiters follow an EAGAIN); io_uring also runs operations to completion
 * (file reads and writes, receives), which epoll cannot. The poller also owns the cross-thread wake-up (an
 * eventfd). Dispatch is a predictable branch, not an indirect call. */
#ifndef CIO_POLL_H
#define CIO_POLL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIO__POLL_IN 1u
#define CIO__POLL_OUT 2u
#define CIO__POLL_ERR 4u /* error or hang-up */
/* With cio__poller_ctl: report the interest edge-triggered (epoll only; the
 * io_uring back end reports levels and never gets this flag). */
#define CIO__POLL_EDGE 8u
/* In events: the peer shut its writing side down (EPOLLRDHUP; edge mode only):
 * reads no longer block, and no new edge will say so again. */
#define CIO__POLL_RDHUP 16u

enum { CIO__BACKEND_EPOLL, CIO__BACKEND_URING };

struct cio__uring;
struct io_uring_sqe;

struct cio__poller {
  int epfd;                 /* the poller's own fd: epoll's, or the ring's */
  int wakefd;
  struct cio__uring *uring; /* NULL on the epoll back end */
};

/* A registered fd's owner: on_event(w, events) is called for each event.
 * The watch must stay valid while the fd is registered, and on io_uring
 * until the loop closes (a cancelled request may still complete). */
struct cio__poll_watch {
  void (*on_event)(struct cio__poll_watch *w, unsigned events);
  /* What on_event will touch first, if known (a waiting task's frame): the
   * poller prefetches it for a whole batch of events before dispatching
   * any, so that the cache misses of many connections overlap instead of
   * coming one after another. A stale pointer is harmless. */
  const void *hot;
  /* io_uring's view of the registration (unused by epoll): */
  int fd;
  unsigned want;     /* the interest: CIO__POLL_IN|OUT */
  unsigned inflight; /* the mask of the poll request in the kernel, 0 = none */
};

/* An operation run to completion by the poller (io_uring only): done(op,
 * res) is called from the poll with the operation's result (bytes, 0, or
 * -errno; -ECANCELED when cancelled before it ran). */
struct cio__poll_op {
  void (*done)(struct cio__poll_op *op, int res);
  unsigned flags; /* the completion's flags (IORING_CQE_F_*), set before done */
};

/* Which back end a new loop gets: `requested` is the loop option
 * (CIO__BACKEND_* + 1, 0 = default), else CIO_BACKEND=uring|epoll, else
 * epoll. io_uring falls back to epoll, silently, when the kernel refuses it. */
int cio__poller_init(struct cio__poller *p, int requested);
void cio__poller_close(struct cio__poller *p);

int cio__epoll_init(struct cio__poller *p);
void cio__epoll_close(struct cio__poller *p);
int cio__epoll_ctl(struct cio__poller *p, int fd, unsigned events, bool registered,
                   struct cio__poll_watch *w);
int cio__epoll_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken);
void cio__wakefd_wake(int wakefd);

#ifdef CIO_HAVE_URING
int cio__uring_init(struct cio__poller *p);
void cio__uring_close(struct cio__poller *p);
int cio__uring_ctl(struct cio__poller *p, int fd, unsigned events, bool registered,
                   struct cio__poll_watch *w);
int cio__uring_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken);
/* A submission queue entry for op (its user_data set: the completion goes
 * to op->done), to be prepared by the caller and submitted with the next
 * wait; NULL when the ring is full and cannot be flushed. Declared with an
 * opaque type so that only users of liburing need its header. */
struct io_uring_sqe *cio__uring_sqe(struct cio__poller *p, struct cio__poll_op *op);
void cio__uring_cancel(struct cio__poller *p, struct cio__poll_op *op);
/* Whether socket receives run as kernel operations on this ring (else they
 * use readiness, as on epoll). CIO_URING_RECV=0 turns them off. */
bool cio__uring_completions(const struct cio__poller *p);
/* Whether a stream socket's queued writes go out as kernel send operations
 * on this ring (else send() and writability, as on epoll). CIO_URING_SEND=0
 * turns them off. */
bool cio__uring_sends(const struct cio__poller *p);
/* Provided buffers (one buffer ring per loop, group CIO__URING_BGID, made
 * on first use): cio__uring_bufs_ready sets it up and says whether it can
 * be used. A completion with IORING_CQE_F_BUFFER names buffer `bid`
 * (flags >> IORING_CQE_BUFFER_SHIFT): its bytes are at cio__uring_buf(p,
 * bid) until cio__uring_buf_put(p, bid) hands it back to the kernel. The
 * count and size come from CIO_URING_BUFS (a power of two, 1..32768,
 * default 2048) and CIO_URING_BUF_SIZE (default 2048): 4 MiB, touched as
 * used. Fewer buffers than busy connections make receives run out (and fall
 * back), which costs more than the memory. */
#define CIO__URING_BGID 7
bool cio__uring_bufs_ready(struct cio__poller *p);
void *cio__uring_buf(struct cio__poller *p, unsigned bid);
void cio__uring_buf_put(struct cio__poller *p, unsigned bid);
/* Provided buffers not held by the program (an estimate: the kernel's own
 * use is counted when its completion arrives), and how many there are. */
unsigned cio__uring_bufs_free(const struct cio__poller *p);
unsigned cio__uring_bufs_total(const struct cio__poller *p);
/* Queued submission entries not yet handed to the kernel (tests). */
unsigned cio__uring_sq_pending(struct cio__poller *p);
#else
#define cio__uring_ctl(p, fd, e, r, w) ((void)(p), (void)(w), -ENOSYS)
#define cio__uring_wait(p, t, w) ((void)(p), (void)(w), -ENOSYS)
#endif
#define CIO__URING(p) ((p)->uring != NULL)

/* Register, change or remove fd interest (events = CIO__POLL_IN|OUT; 0
 * removes). `registered` says whether the fd is already known to the poller.
 * Returns 0 or a negative errno. */
static inline int cio__poller_ctl(struct cio__poller *p, int fd, unsigned events,
                                  bool registered, struct cio__poll_watch *w) {
  return CIO__URING(p) ? cio__uring_ctl(p, fd, events, registered, w)
                       : cio__epoll_ctl(p, fd, events, registered, w);
}

/* Wait up to timeout_ns (-1 = forever, 0 = don't block) and dispatch events
 * (and, on io_uring, completions). Returns the number of fd events and
 * completions dispatched (not counting a wake-up), sets *woken when the
 * wake-up fd fired (and has been drained). */
static inline int cio__poller_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken) {
  return CIO__URING(p) ? cio__uring_wait(p, timeout_ns, woken)
                       : cio__epoll_wait(p, timeout_ns, woken);
}

/* Wake a poller blocked in another thread. Async-signal-safe. */
static inline void cio__poller_wake(struct cio__poller *p) { cio__wakefd_wake(p->wakefd); }

/* The back end's name: "epoll" or "io_uring". */
static inline const char *cio__poller_name(const struct cio__poller *p) {
  return CIO__URING(p) ? "io_uring" : "epoll";
}

#endif
