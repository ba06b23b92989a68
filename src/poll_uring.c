/* The io_uring back end of the poller seam.
 *
 * Readiness: the layers above expect epoll's level-triggered model (an
 * interest stays registered between waits, and an fd that is still ready is
 * reported again by the next poll). io_uring's poll requests are one-shot, so
 * each registration keeps one poll request in the kernel and re-arms it after
 * every completion while the interest stands; a re-armed poll on an fd that
 * is still ready completes at the next submission, which is exactly a
 * level-triggered report. Re-arming is a submission queue entry, not a
 * system call: every entry queued during an iteration goes to the kernel
 * with the next wait, in one io_uring_enter.
 *
 * A poll request holds a reference to the file, so a plain close() does not
 * end it (epoll forgets a closed fd by itself): removing an interest
 * therefore submits at once, before the caller closes the fd, and a
 * registration that the layer above no longer trusts (registered == false
 * while a request is in flight) is replaced, never kept. Each request's
 * user_data carries a generation, so the late completion of a replaced
 * request is recognised and ignored.
 *
 * Completions: operations (file reads and writes) are submitted the same way
 * and finish through their own callback. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/poll.h> /* not <poll.h>: src/poll.h is the seam */
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "poll.h"

/* user_data: the low two bits are a tag; watches carry a 2-bit generation in
 * bits 2-3 (watches are at least 16-byte aligned: they open a heap record). */
#define TAG_MASK 3u
#define TAG_WATCH 0u
#define TAG_OP 1u
#define UD_WAKE 2u
#define UD_IGNORE 6u
#define GEN_SHIFT 2
#define GEN_MASK 3u
#define PTR_MASK (~(uint64_t)15)

#define RING_ENTRIES 1024
/* Completions can outnumber submissions many times over (multishot
 * receives, a send and a receive per connection and pass): a completion
 * queue that overflows makes the kernel keep the rest on a slow list. */
#define CQ_ENTRIES 16384
#define BATCH 64

struct cio__uring {
  struct io_uring ring;
  uint64_t wake_buf;
  /* Watches whose request could not be queued (a full ring whose submission
   * failed): re-armed at the next wait. Rare; a small array. */
  struct cio__poll_watch **pend;
  unsigned npend, pend_cap;
  bool completions; /* socket receives as kernel operations */
  bool sends;       /* stream sends as kernel operations */
  /* Provided buffers (see poll.h): made on first use. */
  struct io_uring_buf_ring *br;
  char *bufmem;
  unsigned nbufs, bufsize, bufs_out;
  bool bufs_tried, bufs_ok;
};

static uint64_t watch_ud(const struct cio__poll_watch *w, unsigned gen) {
  return (uint64_t)(uintptr_t)w | ((uint64_t)(gen & GEN_MASK) << GEN_SHIFT) | TAG_WATCH;
}

/* The generation lives in the bits of `inflight` above the poll mask. */
#define INFLIGHT_GEN_SHIFT 8
static unsigned cur_gen(const struct cio__poll_watch *w) {
  return (w->inflight >> INFLIGHT_GEN_SHIFT) & GEN_MASK;
}
static unsigned inflight_mask(const struct cio__poll_watch *w) { return w->inflight & 0xffu; }

static struct io_uring_sqe *get_sqe(struct cio__uring *u) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (!sqe) {
    io_uring_submit(&u->ring);
    sqe = io_uring_get_sqe(&u->ring);
  }
  return sqe;
}

static unsigned to_poll_mask(unsigned want) {
  unsigned m = 0;
  if (want & CIO__POLL_IN) m |= POLLIN;
  if (want & CIO__POLL_OUT) m |= POLLOUT;
  return m;
}

static void pend_push(struct cio__uring *u, struct cio__poll_watch *w) {
  for (unsigned i = 0; i < u->npend; i++)
    if (u->pend[i] == w) return;
  if (u->npend == u->pend_cap) {
    unsigned cap = u->pend_cap ? u->pend_cap * 2 : 16;
    struct cio__poll_watch **p = realloc(u->pend, cap * sizeof *p);
    if (!p) return; /* the interest stays unarmed until its next ctl */
    u->pend = p;
    u->pend_cap = cap;
  }
  u->pend[u->npend++] = w;
}

/* Queue a poll request for w's interest, with the next generation. */
static void arm(struct cio__uring *u, struct cio__poll_watch *w) {
  struct io_uring_sqe *sqe = get_sqe(u);
  if (!sqe) {
    pend_push(u, w);
    return;
  }
  unsigned gen = (cur_gen(w) + 1) & GEN_MASK;
  io_uring_prep_poll_add(sqe, w->fd, to_poll_mask(w->want));
  io_uring_sqe_set_data64(sqe, watch_ud(w, gen));
  w->inflight = (gen << INFLIGHT_GEN_SHIFT) | (w->want & 0xffu);
}

/* Withdraw w's request from the kernel; its completion will be ignored. */
static void disarm(struct cio__uring *u, struct cio__poll_watch *w) {
  struct io_uring_sqe *sqe = get_sqe(u);
  uint64_t ud = watch_ud(w, cur_gen(w));
  /* Whatever happens to the request now, its generation is stale. */
  w->inflight = ((cur_gen(w) + 1) & GEN_MASK) << INFLIGHT_GEN_SHIFT;
  if (!sqe) return; /* cannot happen after a successful submit; the request then ends with the fd */
  io_uring_prep_poll_remove(sqe, ud);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
}

static void arm_wake(struct cio__uring *u, int wakefd) {
  struct io_uring_sqe *sqe = get_sqe(u);
  if (!sqe) return;
  io_uring_prep_poll_add(sqe, wakefd, POLLIN);
  io_uring_sqe_set_data64(sqe, UD_WAKE);
}

/* A test hook: pretend the kernel has no io_uring (CIO_URING_FAIL=1). */
static bool setup_refused(void) {
  const char *v = getenv("CIO_URING_FAIL");
  return v && *v == '1';
}

int cio__uring_init(struct cio__poller *p) {
  if (setup_refused()) return -ENOSYS;
  struct cio__uring *u = calloc(1, sizeof *u);
  if (!u) return -ENOMEM;
  struct io_uring_params params = {.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                                            IORING_SETUP_CQSIZE,
                                   .cq_entries = CQ_ENTRIES};
  int rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &params);
  if (rc == -EINVAL) { /* before Linux 5.19 */
    struct io_uring_params plain = {.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
    rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &plain);
  }
  if (rc < 0) {
    free(u);
    return rc;
  }
  /* The layers above rely on: non-blocking submission of every entry and
   * nanosecond wait timeouts without a timeout entry. */
  if (!(params.features & IORING_FEAT_EXT_ARG) || !(params.features & IORING_FEAT_NODROP)) {
    io_uring_queue_exit(&u->ring);
    free(u);
    return -ENOTSUP;
  }
  p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wakefd < 0) {
    rc = -errno;
    io_uring_queue_exit(&u->ring);
    free(u);
    return rc;
  }
  p->epfd = u->ring.ring_fd;
  p->uring = u;
  const char *recv_env = getenv("CIO_URING_RECV");
  u->completions = !(recv_env && *recv_env == '0');
  const char *send_env = getenv("CIO_URING_SEND");
  u->sends = !(send_env && *send_env == '0');
  arm_wake(u, p->wakefd);
  return 0;
}

void cio__uring_close(struct cio__poller *p) {
  struct cio__uring *u = p->uring;
  io_uring_queue_exit(&u->ring);
  /* The ring is gone: the kernel no longer uses the buffers. */
  if (u->br) munmap(u->br, u->nbufs * sizeof(struct io_uring_buf));
  if (u->bufmem) munmap(u->bufmem, (size_t)u->nbufs * u->bufsize);
  if (p->wakefd >= 0) close(p->wakefd);
  free(u->pend);
  free(u);
  p->uring = NULL;
  p->wakefd = p->epfd = -1;
}

int cio__uring_ctl(struct cio__poller *p, int fd, unsigned events, bool registered,
                   struct cio__poll_watch *w) {
  struct cio__uring *u = p->uring;
  if ((uintptr_t)w & 15) return -EINVAL; /* user_data needs the low bits (see above) */
  if (events && !registered) {
    /* What epoll_ctl would refuse, refuse the same way: a poll request on a
     * regular file or directory is always "ready". */
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return -EPERM;
  }
  bool same = registered && w->fd == fd && inflight_mask(w) == events && events;
  w->fd = fd;
  w->want = events;
  if (same) return 0; /* the request in the kernel already watches this */
  if (inflight_mask(w)) disarm(u, w);
  if (events) {
    arm(u, w);
  } else {
    /* Hand the file back now: the caller may close it next, and the
     * request would keep the file (and a socket's connection) alive. */
    io_uring_submit(&u->ring);
  }
  return 0;
}

static void dispatch(struct cio__poller *p, uint64_t ud, int res, unsigned flags, bool *woken,
                     int *fired) {
  struct cio__uring *u = p->uring;
  if (ud == UD_WAKE) {
    uint64_t v;
    ssize_t r = read(p->wakefd, &v, sizeof v);
    (void)r;
    *woken = true;
    arm_wake(u, p->wakefd);
    return;
  }
  if (ud == UD_IGNORE) return;
  if ((ud & TAG_MASK) == TAG_OP) {
    struct cio__poll_op *op = (struct cio__poll_op *)(uintptr_t)(ud & ~(uint64_t)TAG_MASK);
    if (flags & IORING_CQE_F_BUFFER) u->bufs_out++;
    op->flags = flags;
    op->done(op, res);
    (*fired)++;
    return;
  }
  struct cio__poll_watch *w = (struct cio__poll_watch *)(uintptr_t)(ud & PTR_MASK);
  unsigned gen = (unsigned)(ud >> GEN_SHIFT) & GEN_MASK;
  if (gen != cur_gen(w) || !inflight_mask(w)) return; /* a replaced request */
  w->inflight &= ~0xffu;
  if (res == -ECANCELED) {
    if (w->want) arm(u, w);
    return;
  }
  unsigned e = 0;
  if (res < 0) {
    /* The fd went away under the request (closed before it was
     * submitted): report an error, as the next I/O call will; do not
     * re-arm, the layer above drops or renews the interest. */
    e = CIO__POLL_ERR;
  } else {
    if (res & POLLIN) e |= CIO__POLL_IN;
    if (res & POLLOUT) e |= CIO__POLL_OUT;
    if (res & (POLLERR | POLLHUP)) e |= CIO__POLL_ERR;
  }
  unsigned want = w->want;
  if (e & ~CIO__POLL_ERR & ~want) e &= want | CIO__POLL_ERR;
  if (e) {
    w->on_event(w, e);
    (*fired)++;
  }
  /* Level-triggered: while the interest stands, watch again. on_event may
   * have changed it (and armed a request itself). */
  if (res >= 0 && w->want && !inflight_mask(w)) arm(u, w);
}

int cio__uring_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken) {
  struct cio__uring *u = p->uring;
  struct io_uring *ring = &u->ring;
  *woken = false;
  if (u->npend) {
    unsigned n = u->npend;
    u->npend = 0;
    for (unsigned i = 0; i < n; i++)
      if (u->pend[i]->want && !inflight_mask(u->pend[i])) arm(u, u->pend[i]);
  }
  struct io_uring_cqe *cqe = NULL;
  int rc;
  if (timeout_ns == 0) {
    /* Enter only when there is something to submit or completions to flush. */
    if (io_uring_sq_ready(ring) || (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN))
      rc = io_uring_submit_and_get_events(ring);
    else
      rc = 0;
  } else if (timeout_ns < 0) {
    rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, NULL, NULL);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                   .tv_nsec = timeout_ns % 1000000000};
    rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
  int fired = 0;
  for (int round = 0; round < CQ_ENTRIES / BATCH; round++) {
    struct io_uring_cqe *cqes[BATCH];
    unsigned n = io_uring_peek_batch_cqe(ring, cqes, BATCH);
    if (!n) break;
    struct {
      uint64_t ud;
      int res;
      unsigned flags;
    } got[BATCH];
    for (unsigned i = 0; i < n; i++) {
      got[i].ud = cqes[i]->user_data;
      got[i].res = cqes[i]->res;
      got[i].flags = cqes[i]->flags;
    }
    io_uring_cq_advance(ring, n);
    for (unsigned i = 0; i < n; i++) dispatch(p, got[i].ud, got[i].res, got[i].flags, woken, &fired);
    if (n < BATCH) break;
  }
  return fired;
}

/* ---- operations ---------------------------------------------------------------- */

struct io_uring_sqe *cio__uring_sqe(struct cio__poller *p, struct cio__poll_op *op) {
  struct io_uring_sqe *sqe = get_sqe(p->uring);
  if (sqe) io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_OP);
  return sqe;
}

bool cio__uring_completions(const struct cio__poller *p) { return p->uring->completions; }
bool cio__uring_sends(const struct cio__poller *p) { return p->uring->sends; }

void cio__uring_cancel(struct cio__poller *p, struct cio__poll_op *op) {
  struct io_uring_sqe *sqe = get_sqe(p->uring);
  if (!sqe) return;
  io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | TAG_OP, 0);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  io_uring_submit(&p->uring->ring);
}

/* ---- provided buffers ------------------------------------------------------------- */

static unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  return *end || n < lo || n > hi ? dflt : (unsigned)n;
}

bool cio__uring_bufs_ready(struct cio__poller *p) {
  struct cio__uring *u = p->uring;
  if (u->bufs_tried) return u->bufs_ok;
  u->bufs_tried = true;
  unsigned n = env_uint("CIO_URING_BUFS", 2048, 1, 32768);
  if (n & (n - 1)) n = 2048; /* a power of two */
  unsigned size = env_uint("CIO_URING_BUF_SIZE", 2048, 64, 1u << 20);
  size_t ringsz = n * sizeof(struct io_uring_buf);
  void *br = mmap(NULL, ringsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED) return false;
  void *mem = mmap(NULL, (size_t)n * size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                   -1, 0);
  if (mem == MAP_FAILED) {
    munmap(br, ringsz);
    return false;
  }
  struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = n,
                                 .bgid = CIO__URING_BGID};
  if (io_uring_register_buf_ring(&u->ring, &reg, 0) < 0) { /* before Linux 5.19 */
    munmap(mem, (size_t)n * size);
    munmap(br, ringsz);
    return false;
  }
  u->br = br;
  u->bufmem = mem;
  u->nbufs = n;
  u->bufsize = size;
  io_uring_buf_ring_init(u->br);
  int mask = io_uring_buf_ring_mask(n);
  for (unsigned i = 0; i < n; i++)
    io_uring_buf_ring_add(u->br, u->bufmem + (size_t)i * size, size, (unsigned short)i, mask, (int)i);
  io_uring_buf_ring_advance(u->br, (int)n);
  u->bufs_ok = true;
  return true;
}

void *cio__uring_buf(struct cio__poller *p, unsigned bid) {
  return p->uring->bufmem + (size_t)bid * p->uring->bufsize;
}

void cio__uring_buf_put(struct cio__poller *p, unsigned bid) {
  struct cio__uring *u = p->uring;
  io_uring_buf_ring_add(u->br, u->bufmem + (size_t)bid * u->bufsize, u->bufsize,
                        (unsigned short)bid, io_uring_buf_ring_mask(u->nbufs), 0);
  io_uring_buf_ring_advance(u->br, 1);
  u->bufs_out--;
}

unsigned cio__uring_bufs_free(const struct cio__poller *p) {
  const struct cio__uring *u = p->uring;
  return u->nbufs - u->bufs_out;
}

unsigned cio__uring_bufs_total(const struct cio__poller *p) { return p->uring->nbufs; }

unsigned cio__uring_sq_pending(struct cio__poller *p) { return io_uring_sq_ready(&p->uring->ring); }
