/* Layer 8: fd readiness. See include/cio/io.h.
 *
 * Each loop keeps a record per fd number it has seen (an array indexed by fd,
 * as Redis's ae has): one poller registration carrying a reader slot and a
 * writer slot. A slot holds either a waiting task (a future living in the
 * task's frame: waiting allocates nothing) or a callback (asyncio's
 * add_reader), or nothing.
 *
 * Registrations are lazy. A wait adds its interest if the poller does not
 * have it yet; when the wait ends the interest stays, so the usual "recv ->
 * EAGAIN -> wait -> recv" loop makes no epoll_ctl at all.
 *
 * Two kinds of waiter. The socket and stream layers wait only after the
 * kernel said EAGAIN (or a short read emptied the buffer): for them an edge
 * is enough, and on epoll their fds are registered edge-triggered, as Tokio
 * and nginx do. Level-triggered epoll would re-poll every reported socket at
 * the next epoll_wait just to find it drained (tcp_poll: ~4% of an echo
 * server's CPU at 1,000 connections). An event that finds nobody waiting sets
 * the record's `ready` bit, and the next such waiter returns at once instead
 * of suspending (its retry says EAGAIN at worst). The public waits
 * (cio_wait_readable, cio_add_reader: asyncio's add_reader is level-
 * triggered) promise a level: the first one on an fd switches its
 * registration to level-triggered for good (one epoll_ctl). A level
 * interest nobody wants any more is dropped the first time it fires for
 * nobody (one epoll_ctl then), so an idle fd cannot make the loop spin. The
 * io_uring back end reports levels only, and is treated as such.
 *
 * The price of keeping registrations is the fd-number reuse hazard: a plain
 * close() silently drops the fd from epoll, and a later fd with the same number
 * would be believed registered. So a registration is trusted only within the
 * poll in which it was last proven (by an event or a successful epoll_ctl):
 * that covers the hot path (a task woken by an event re-waits in the same
 * iteration), and any later wait re-registers with one epoll_ctl. Records are
 * never freed while the loop lives, so a pointer the kernel still holds
 * always points at a live record.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOT_NONE, SLOT_TASK, SLOT_CALLBACK, SLOT_KOP };

#define UNTRUSTED UINT64_MAX

struct slot {
  uint8_t kind;
  bool queued;             /* cb is in the ready queue */
  struct cio_future *fut;  /* SLOT_TASK: the future in the waiting frame */
  struct cio__kop *kop;    /* SLOT_KOP: a kernel operation (io_uring) on the fd */
  cio_callback_fn fn;      /* SLOT_CALLBACK */
  void *arg;
  struct cio__cb cb;       /* ready-queue node for the callback */
};

struct fdrec {
  struct cio__poll_watch watch; /* what the poller hands back */
  cio_loop *loop;
  int fd;
  unsigned armed;  /* CIO__POLL_IN|OUT interest the poller holds */
  bool edge;       /* ... edge-triggered (only while armed) */
  uint8_t ready;   /* CIO__POLL_IN|OUT events that came while nobody waited */
  uint8_t hup;     /* directions that will not block again (EOF, error) */
  bool drained;    /* a short read emptied the receive buffer */
  uint64_t trust;  /* loop->polls when the registration was last proven */
  struct slot rd, wr;
  struct msr *ms;  /* io_uring: the fd's multishot receive, NULL = none yet */
};

struct iostate {
  struct fdrec **recs; /* indexed by fd */
  int cap;
  unsigned long ctls;  /* poller_ctl calls, for the tests */
  struct msr *ms_all;  /* every multishot receive record (freed at close) */
  struct cio__leftover *leftovers; /* see io.h */
};

unsigned long cio__io_ctl_count(cio_loop *loop) {
  struct iostate *io = loop ? loop->io : NULL;
  return io ? io->ctls : 0;
}

static const char *dir_verb(unsigned dir) { return dir == CIO__POLL_IN ? "read" : "write"; }

static void slot_cb_run(struct cio__cb *cb);
static void on_event(struct cio__poll_watch *w, unsigned events);
static void msr_kill(struct fdrec *r);
static void msr_free_all(struct iostate *io);

/* ---- records ----------------------------------------------------------------- */

static void io_close(cio_loop *loop) {
  struct iostate *io = loop->io;
  if (!io) return;
  /* The tasks that waited here were abandoned and their frames are gone:
   * free the records without touching the slots' futures. Callback nodes
   * were dropped from the queues already. */
  for (int i = 0; i < io->cap; i++) free(io->recs[i]);
  msr_free_all(io);
  while (io->leftovers) {
    struct cio__leftover *l = io->leftovers;
    io->leftovers = l->next;
    l->release(l);
  }
  free(io->recs);
  free(io);
  loop->io = NULL;
  loop->io_watchers = 0;
}

static struct iostate *io_state(cio_loop *loop) {
  if (!loop->io) {
    loop->io = calloc(1, sizeof(struct iostate));
    if (loop->io) loop->io_close = io_close;
  }
  return loop->io;
}

int cio__leftover_add(cio_loop *loop, struct cio__leftover *l) {
  struct iostate *io = io_state(loop);
  if (!io) return -ENOMEM;
  l->prev = NULL;
  l->next = io->leftovers;
  if (l->next) l->next->prev = l;
  io->leftovers = l;
  return 0;
}

void cio__leftover_del(cio_loop *loop, struct cio__leftover *l) {
  struct iostate *io = loop->io;
  if (l->prev) l->prev->next = l->next;
  else io->leftovers = l->next;
  if (l->next) l->next->prev = l->prev;
}

static struct fdrec *rec_find(cio_loop *loop, int fd) {
  struct iostate *io = loop ? loop->io : NULL;
  return io && fd >= 0 && fd < io->cap ? io->recs[fd] : NULL;
}

static int rec_get(cio_loop *loop, int fd, struct fdrec **out, const char *who) {
  if (fd < 0) return cio__fail(-EBADF, "%s: fd %d is not a valid file descriptor", who, fd);
  /* Re-registering the loop's own wake-up fd would steal its events. */
  if (fd == loop->poller.epfd || fd == loop->poller.wakefd)
    return cio__fail(-EINVAL, "%s: fd %d belongs to the event loop itself", who, fd);
  struct iostate *io = loop->io;
  if (!io) {
    io = calloc(1, sizeof *io);
    if (!io) return cio__fail_static(-ENOMEM, "out of memory for the fd table");
    loop->io = io;
    loop->io_close = io_close;
  }
  if (fd >= io->cap) {
    /* Growing the table for a number that is not an open fd would cost
     * memory for nothing (8 bytes per number up to fd): ask the kernel
     * first. Only on growth, so at most once per new highest fd. */
    if (fcntl(fd, F_GETFD) < 0)
      return cio__fail(-EBADF, "%s: fd %d is not an open file descriptor", who, fd);
    int cap = io->cap ? io->cap : 64;
    while (cap <= fd) cap = cap > INT32_MAX / 2 ? fd + 1 : cap * 2;
    struct fdrec **recs = realloc(io->recs, (size_t)cap * sizeof *recs);
    if (!recs) return cio__fail_static(-ENOMEM, "out of memory for the fd table");
    memset(recs + io->cap, 0, (size_t)(cap - io->cap) * sizeof *recs);
    io->recs = recs;
    io->cap = cap;
  }
  struct fdrec *r = io->recs[fd];
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return cio__fail_static(-ENOMEM, "out of memory for an fd record");
    r->watch.on_event = on_event;
    r->loop = loop;
    r->fd = fd;
    r->trust = UNTRUSTED;
    r->rd.cb.run = slot_cb_run;
    r->wr.cb.run = slot_cb_run;
    io->recs[fd] = r;
  }
  *out = r;
  return 0;
}

static void slot_clear(cio_loop *loop, struct slot *s) {
  if (s->kind != SLOT_NONE) loop->io_watchers--;
  s->kind = SLOT_NONE;
  s->fut = NULL;
  s->kop = NULL;
  s->fn = NULL;
  s->arg = NULL;
  if (s->queued) {
    cio__loop_unqueue(loop, &s->cb);
    s->queued = false;
  }
}

/* Wake the waiters of r with -EBADF and drop its callbacks. */
static void rec_kill(struct fdrec *r, const char *why) {
  struct slot *slots[2] = {&r->rd, &r->wr};
  for (int i = 0; i < 2; i++) {
    struct slot *s = slots[i];
    if (s->kind == SLOT_TASK && s->fut->state == CIO__PENDING)
      cio__future_complete(s->fut, CIO__ERROR, -EBADF, NULL, why, false);
#ifdef CIO_HAVE_URING
    if (s->kind == SLOT_KOP && !s->kop->done) {
      /* The request holds the file: withdraw it; its task then sees -EBADF. */
      s->kop->killed = true;
      s->kop->why = why;
      cio__uring_cancel(&r->loop->poller, &s->kop->op);
    }
#endif
    slot_clear(r->loop, s);
  }
  msr_kill(r);
  r->trust = UNTRUSTED;
  r->drained = false;
  r->ready = r->hup = 0;
}

/* Make the poller hold `want` for r. On failure the registration is
 * forgotten (a closed fd has none left). */
static int set_interest(struct fdrec *r, unsigned want) {
  cio_loop *loop = r->loop;
  if (cio__loop_forked(loop)) return CIO_EFORKED; /* the epoll set is the parent's */
  ((struct iostate *)loop->io)->ctls++;
  unsigned mode = want && r->edge ? CIO__POLL_EDGE : 0;
  int rc = cio__poller_ctl(&loop->poller, r->fd, want | mode, r->armed != 0, &r->watch);
  if (rc < 0) {
    r->armed = 0;
    r->trust = UNTRUSTED;
    return rc;
  }
  r->armed = want;
  r->trust = loop->polls;
  return 0;
}

/* Make sure the poller watches r for dir, edge-triggered if `edge` allows
 * (and the fd has no level waiter), else level-triggered. No system call
 * when the interest is there and was proven in this poll. */
static int arm(struct fdrec *r, unsigned dir, bool edge, const char *who) {
  bool switch_to_level = !edge && r->armed && r->edge;
  if (!r->armed) r->edge = edge && !CIO__URING(&r->loop->poller);
  if ((r->armed & dir) && r->trust == r->loop->polls && !switch_to_level) return 0;
  if (switch_to_level) r->edge = false;
  /* A new or re-proven registration makes the kernel look at the fd's level
   * again and report it: older news is void (and may be of a previous fd
   * with this number). */
  r->ready = r->hup = 0;
  int rc = set_interest(r, r->armed | dir);
  if (rc == 0) return 0;
  if (rc == -EBADF)
    rec_kill(r, "the fd was closed while a task waited on it (close it with cio_fd_close)");
  if (rc == -EPERM)
    return cio__fail(rc, "%s(fd %d): this kind of fd cannot be polled (a regular file or a "
                         "directory?)", who, r->fd);
  return cio__fail(rc, "%s(fd %d): cannot watch the fd: %s", who, r->fd, strerror(-rc));
}

/* -EBUSY (with the message) when r's `dir` slot is taken, else 0. */
static int slot_taken(const struct fdrec *r, unsigned dir, const char *who) {
  const struct slot *s = dir == CIO__POLL_IN ? &r->rd : &r->wr;
  if (s->kind == SLOT_NONE) return 0;
  return cio__fail(-EBUSY, "%s(fd %d): %s already waits to %s this fd in this loop", who, r->fd,
                   s->kind == SLOT_CALLBACK ? "a callback" : "another task", dir_verb(dir));
}

/* ---- dispatch ------------------------------------------------------------------ */

/* An event for slot s: wake its task or queue its callback. Returns whether
 * somebody wanted it. */
static bool fire(cio_loop *loop, struct slot *s) {
  switch (s->kind) {
  case SLOT_TASK:
    /* A waiter cancelled earlier in this iteration has a done future: it
     * clears itself when it resumes, and gets nothing here. */
    if (s->fut->state == CIO__PENDING) {
      cio__future_complete(s->fut, CIO__RESULT, 0, NULL, NULL, false);
      slot_clear(loop, s);
    }
    return true;
  case SLOT_CALLBACK:
    if (!s->queued) {
      s->queued = true;
      cio__loop_push(loop, &s->cb);
    }
    return true;
  default:
    return false;
  }
}

static void on_event(struct cio__poll_watch *w, unsigned events) {
  struct fdrec *r = (struct fdrec *)w;
  cio_loop *loop = r->loop;
  /* An error or hang-up wakes both sides, as asyncio's selectors do: the
   * next read or write returns the error instead of blocking. */
  if (events & CIO__POLL_ERR) events |= CIO__POLL_IN | CIO__POLL_OUT;
  /* An edge that also carried the EOF or an error is the last one: a reader
   * that stops at a short read must not wait for another. */
  if (events & (CIO__POLL_ERR | CIO__POLL_RDHUP))
    r->hup |= (uint8_t)(events & (CIO__POLL_ERR) ? CIO__POLL_IN | CIO__POLL_OUT : CIO__POLL_IN);
  unsigned unused = 0;
  if ((events & CIO__POLL_IN) && !fire(loop, &r->rd)) unused |= CIO__POLL_IN;
  if ((events & CIO__POLL_OUT) && !fire(loop, &r->wr)) unused |= CIO__POLL_OUT;
  r->ready |= (uint8_t)unused; /* for the next waiter: the edge has passed */
  if ((unused & r->armed) && !r->edge)
    set_interest(r, r->armed & ~unused); /* nobody wants the level: stop it */
  else
    r->trust = loop->polls;
}

static void slot_cb_run(struct cio__cb *cb) {
  struct slot *s = CIO__CONTAINER_OF(cb, struct slot, cb);
  s->queued = false;
  /* The record outlives the call even if fn removes or closes the fd. */
  if (s->kind == SLOT_CALLBACK) s->fn(s->arg);
}

/* ---- the cooperative budget ---------------------------------------------------------- */

/* A task whose socket calls keep finding data never suspends, and would
 * starve every other task and the poller (a fast peer can keep a handler's
 * recv() busy forever; asyncio's sock_recv has this flaw). So, as Tokio does,
 * a task gets a budget of operations that complete without suspending; when
 * it is spent, the next operation first yields once. A loop runs in one
 * thread, so the budget can live there. */
#define COOP_BUDGET 128

static CIO__TLS struct cio_task *coop_task;
static CIO__TLS unsigned coop_left;

int cio__coop(struct cio_task *t) {
  if (coop_task != t) {
    coop_task = t;
    coop_left = COOP_BUDGET;
  }
  if (coop_left > 0) {
    coop_left--;
    return 0;
  }
  coop_left = COOP_BUDGET;
  return cio_yield();
}

/* ---- waiting from a task ---------------------------------------------------------- */

static int fd_wait(struct cio_task *t, int fd, unsigned dir, bool edge, const char *who) {
  cio_loop *loop = t->fut.loop;
  struct fdrec *r;
  int rc = rec_get(loop, fd, &r, who);
  if (rc < 0) return rc;
  if ((rc = slot_taken(r, dir, who)) < 0) return rc;
  struct slot *s = dir == CIO__POLL_IN ? &r->rd : &r->wr;
  if ((r->ready | r->hup) & dir) {
    r->ready &= (uint8_t)~dir;
    /* An event came while nobody waited, or the last one said EOF: the
     * caller's retry tells whether it is still current (one syscall at
     * worst). A level waiter asks the poller instead. */
    if (edge) return 0;
  }
  rc = arm(r, dir, edge, who);
  if (rc < 0) return rc;
  struct cio_future f;
  cio__future_init(&f, loop, CIO__F_LOCAL);
  s->kind = SLOT_TASK;
  s->fut = &f;
  r->watch.hot = &f;
  loop->io_watchers++;
  rc = cio__task_await(t, &f, NULL);
  coop_task = NULL; /* it suspended: a fresh budget */
  if (s->kind == SLOT_TASK && s->fut == &f) {
    /* Cancelled: nobody fired the slot. Its interest stays until it fires
     * for nobody, but is not trusted by the next waiter. */
    slot_clear(loop, s);
    r->trust = UNTRUSTED;
  }
  cio__future_finalize(&f, NULL);
  return rc;
}

int cio__fd_wait(struct cio_task *t, int fd, unsigned dir, const char *who) {
  return fd_wait(t, fd, dir, true, who);
}

int cio__fd_wait_level(struct cio_task *t, int fd, unsigned dir, const char *who) {
  return fd_wait(t, fd, dir, false, who);
}

/* The read-readiness hint (Tokio's): a read that returned less than asked
 * for emptied the receive buffer, so the next read waits for readiness first
 * instead of making a recv() that would fail with EAGAIN. Safe with edges too:
 * data that arrives after the short read is a new edge (or sets `ready`). */
void cio__fd_note_read(cio_loop *loop, int fd, bool drained) {
  struct fdrec *r = rec_find(loop, fd);
  if (r) {
    r->drained = drained;
  } else if (drained) {
    if (rec_get(loop, fd, &r, "cio_sock_recv") == 0) r->drained = true;
  }
}

bool cio__fd_take_drained(cio_loop *loop, int fd) {
  struct fdrec *r = rec_find(loop, fd);
  if (!r || !r->drained) return false;
  r->drained = false;
  return true;
}

int cio__fd_wait_unless_ready(struct cio_task *t, int fd, const char *who) {
  struct fdrec *r = rec_find(t->fut.loop, fd);
  if (!r || !r->drained) return 0;
  r->drained = false;
  return cio__fd_wait(t, fd, CIO__POLL_IN, who);
}

static int wait_public(int fd, unsigned dir, const char *who) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  return fd_wait(t, fd, dir, false, who);
}

int cio_wait_readable(int fd) { return wait_public(fd, CIO__POLL_IN, "cio_wait_readable"); }
int cio_wait_writable(int fd) { return wait_public(fd, CIO__POLL_OUT, "cio_wait_writable"); }

/* ---- callbacks ----------------------------------------------------------------------- */

static int add_cb(cio_loop *loop, int fd, unsigned dir, cio_callback_fn fn, void *arg,
                  bool edge, const char *who) {
  int rc = cio__loop_check(loop, who);
  if (rc < 0) return rc;
  if (!fn) return cio__fail(-EINVAL, "%s: callback is NULL", who);
  struct fdrec *r;
  rc = rec_get(loop, fd, &r, who);
  if (rc < 0) return rc;
  struct slot *s = dir == CIO__POLL_IN ? &r->rd : &r->wr;
  if (s->kind == SLOT_TASK)
    return cio__fail(-EBUSY, "%s(fd %d): a task is waiting to %s this fd", who, fd, dir_verb(dir));
  rc = arm(r, dir, edge, who);
  if (rc < 0) return rc;
  if (s->kind == SLOT_CALLBACK) {
    /* Replace, as asyncio does: a call of the old callback already queued
     * is cancelled with it. */
    if (s->queued) {
      cio__loop_unqueue(loop, &s->cb);
      s->queued = false;
    }
  } else {
    s->kind = SLOT_CALLBACK;
    loop->io_watchers++;
  }
  s->fn = fn;
  s->arg = arg;
  if (r->ready & dir) {
    r->ready &= (uint8_t)~dir;
    /* The edge came before the callback: it must not wait for the next. */
    if (edge) fire(loop, s);
  }
  return 0;
}

static int remove_cb(cio_loop *loop, int fd, unsigned dir, const char *who) {
  if (!loop) return cio__fail(-EINVAL, "%s: loop is NULL", who);
  struct fdrec *r = rec_find(loop, fd);
  if (!r) return 0;
  struct slot *s = dir == CIO__POLL_IN ? &r->rd : &r->wr;
  if (s->kind != SLOT_CALLBACK) return 0;
  slot_clear(loop, s);
  r->trust = UNTRUSTED; /* the fd may be closed next: make the next user check */
  return 1;
}

int cio_add_reader(cio_loop *loop, int fd, cio_callback_fn fn, void *arg) {
  return add_cb(loop, fd, CIO__POLL_IN, fn, arg, false, "cio_add_reader");
}
int cio_add_writer(cio_loop *loop, int fd, cio_callback_fn fn, void *arg) {
  return add_cb(loop, fd, CIO__POLL_OUT, fn, arg, false, "cio_add_writer");
}
int cio__fd_add_writer_edge(cio_loop *loop, int fd, cio_callback_fn fn, void *arg) {
  return add_cb(loop, fd, CIO__POLL_OUT, fn, arg, true, "cio_add_writer");
}
int cio_remove_reader(cio_loop *loop, int fd) {
  return remove_cb(loop, fd, CIO__POLL_IN, "cio_remove_reader");
}
int cio_remove_writer(cio_loop *loop, int fd) {
  return remove_cb(loop, fd, CIO__POLL_OUT, "cio_remove_writer");
}

/* ---- closing, forgetting, fresh fds ----------------------------------------------------- */

static void forget(cio_loop *loop, int fd, const char *why) {
  struct fdrec *r = rec_find(loop, fd);
  if (!r || cio__loop_forked(loop)) return; /* never touch a parent's epoll set */
  rec_kill(r, why);
  /* Drop the registration now: if the fd has duplicates (dup, fork), the
   * kernel would keep reporting it after close(). */
  if (r->armed) set_interest(r, 0);
  r->armed = 0;
  r->trust = UNTRUSTED;
}

int cio_fd_forget(int fd) {
  if (fd < 0) return cio__fail(-EBADF, "cio_fd_forget: fd %d is not a valid file descriptor", fd);
  forget(cio__running_loop, fd, "the fd was handed back with cio_fd_forget while a task waited on it");
  return 0;
}

int cio_fd_close(int fd) {
  if (fd < 0) return cio__fail(-EBADF, "cio_fd_close: fd %d is not a valid file descriptor", fd);
  cio_loop *loop = cio__running_loop;
  if (loop && (fd == loop->poller.epfd || fd == loop->poller.wakefd))
    return cio__fail(-EINVAL, "cio_fd_close: fd %d belongs to the event loop itself", fd);
  forget(loop, fd, "the fd was closed with cio_fd_close while a task waited on it");
  /* On Linux the fd is released even when close() reports EINTR. */
  if (close(fd) < 0 && errno != EINTR)
    return cio__fail(-errno, "cio_fd_close(fd %d): %s", fd, strerror(errno));
  return 0;
}

void cio__fd_close_in(cio_loop *loop, int fd) {
  if (fd < 0) return;
  forget(loop, fd, "the fd was closed by its owner while a task waited on it");
  close(fd);
}

void cio__fd_fresh(cio_loop *loop, int fd) {
  struct fdrec *r = rec_find(loop, fd);
  if (!r) return;
  rec_kill(r, "the fd was closed with close() while a task waited on it, and its number was "
              "reused (close fds with cio_fd_close)");
  r->armed = 0; /* the old file's registration went with it */
}

void cio__fd_untrust(cio_loop *loop, int fd) {
  struct fdrec *r = rec_find(loop, fd);
  if (r) r->trust = UNTRUSTED;
}

int cio_fd_set_nonblocking(int fd, bool nonblocking) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return cio__fail(-errno, "cio_fd_set_nonblocking(fd %d): %s", fd, strerror(errno));
  int nfl = nonblocking ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
  if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
    return cio__fail(-errno, "cio_fd_set_nonblocking(fd %d): %s", fd, strerror(errno));
  return 0;
}

/* ---- kernel operations (io_uring) ----------------------------------------------------------- */

static void kop_done(struct cio__poll_op *op, int res) {
  struct cio__kop *k = CIO__CONTAINER_OF(op, struct cio__kop, op);
  k->res = res;
  k->done = true;
  k->loop->io_watchers--;
  if (k->fut && k->fut->state == CIO__PENDING)
    cio__future_complete(k->fut, CIO__RESULT, 0, NULL, NULL, false);
}

void cio__kop_init(struct cio__kop *k, cio_loop *loop) {
  k->op.done = kop_done;
  k->loop = loop;
  k->fut = NULL;
  k->res = 0;
  k->done = false;
  k->killed = false;
  k->why = NULL;
}

ssize_t cio__fd_kop_await(struct cio_task *t, int fd, unsigned dir, struct cio__kop *k,
                          bool keep_data, const char *who) {
  struct fdrec *r;
  int rc = rec_get(t->fut.loop, fd, &r, who);
  if (rc < 0) return rc;
  if ((rc = slot_taken(r, dir, who)) < 0) return rc;
  struct slot *s = dir == CIO__POLL_IN ? &r->rd : &r->wr;
  s->kind = SLOT_KOP;
  s->kop = k;
  t->fut.loop->io_watchers++;
  ssize_t n = cio__kop_await(t, k, keep_data);
  if (s->kind == SLOT_KOP && s->kop == k) slot_clear(t->fut.loop, s);
  if (k->killed && n == -ECANCELED && k->res == -ECANCELED)
    return cio__fail(-EBADF, "%s(fd %d): %s", who, fd, k->why);
  return n;
}

static int kop_wait(struct cio_task *t, struct cio__kop *k) {
  struct cio_future f;
  cio__future_init(&f, k->loop, CIO__F_LOCAL);
  k->fut = &f;
  int rc = cio__task_await(t, &f, NULL);
  k->fut = NULL;
  cio__future_finalize(&f, NULL);
  return rc;
}

ssize_t cio__kop_await(struct cio_task *t, struct cio__kop *k, bool keep_data) {
  k->loop->io_watchers++; /* a completion is coming: the loop must poll for it */
  int rc = kop_wait(t, k);
  if (k->done && rc == 0) return k->killed && k->res == -ECANCELED ? -ECANCELED : k->res;
#ifdef CIO_HAVE_URING
  if (!k->done) cio__uring_cancel(&k->loop->poller, &k->op);
#endif
  while (!k->done) (void)kop_wait(t, k);
  if (keep_data && k->res > 0) {
    t->must_cancel = true; /* delivered at the next suspension point */
    return k->res;
  }
  return rc < 0 ? rc : -ECANCELED;
}

#ifdef CIO_HAVE_URING
#include <liburing.h>
#include <sys/socket.h>

bool cio__fd_kernel_reads(cio_loop *loop) {
  return CIO__URING(&loop->poller) && cio__uring_completions(&loop->poller);
}

ssize_t cio__fd_recv_kernel(struct cio_task *t, int fd, void *buf, size_t len, const char *who) {
  cio_loop *loop = t->fut.loop;
  if (!cio__fd_kernel_reads(loop)) return -EAGAIN;
  struct cio__kop k;
  cio__kop_init(&k, loop);
  struct io_uring_sqe *sqe = cio__uring_sqe(&loop->poller, &k.op);
  if (!sqe) return -EAGAIN;
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  ssize_t n = cio__fd_kop_await(t, fd, CIO__POLL_IN, &k, true, who);
  if (n >= 0) cio__fd_note_read(loop, fd, n > 0 && (size_t)n < len);
  return n;
}
#endif

/* ---- multishot receive with provided buffers (io_uring) ------------------------------------
 *
 * A stream socket read through the stream layer keeps one multishot receive
 * in the kernel: each arrival completes into a buffer of the loop's buffer
 * ring, with no submission per receive. Completions are queued per fd (in
 * arrival order) whether or not a task reads at the time, and the next read
 * copies from the queue, giving each buffer back once emptied: a cancelled
 * read loses nothing. The fd is never recv()'d directly while the request
 * is armed or the queue holds data (the order would break).
 *
 * The request ends by itself at EOF, on an error, when the ring runs out of
 * buffers (-ENOBUFS) or when cancelled (a reader that lets its queue grow
 * past a quarter of the ring, or a close); a read that finds it ended arms
 * it again, or, while buffers are short, makes a one-shot receive into its
 * own buffer instead (cio__fd_recv_kernel). A record whose fd is closed or
 * replaced while its request is in the kernel is orphaned: its buffers go
 * back at once, and it frees itself at the request's last completion (or
 * when the loop closes). */

struct msr_chunk {
  uint16_t bid;
  uint32_t off, len;
};

struct msr {
  struct cio__poll_op op;
  struct fdrec *r;       /* NULL once orphaned */
  cio_loop *loop;
  struct iostate *io;
  struct msr *prev, *next; /* iostate's list */
  bool armed;            /* the request is in the kernel */
  bool stopping;         /* a cancel was submitted */
  bool accept;           /* a multishot accept: the chunks' len is an accepted fd */
  int8_t kind;           /* 1: a stream socket, -1: not, 0: not known yet */
  bool has_fin;          /* `fin` follows the queued data */
  int fin;               /* 0 (EOF) or -errno */
  struct msr_chunk *q;   /* a ring of chunks: [head, head+len) mod cap */
  unsigned qhead, qlen, qcap;
};

static void msr_unlink_free(struct msr *m) {
  if (m->prev) m->prev->next = m->next;
  else m->io->ms_all = m->next;
  if (m->next) m->next->prev = m->prev;
  free(m->q);
  free(m);
}

static void msr_free_all(struct iostate *io) {
  /* The ring is closed after this (loop.c): no completion comes any more. */
  while (io->ms_all) msr_unlink_free(io->ms_all);
}

#ifdef CIO_HAVE_URING
static void msr_drop_queue(struct msr *m, cio_loop *loop) {
  for (; m->qlen; m->qlen--, m->qhead = (m->qhead + 1) % m->qcap) {
    if (m->accept) close((int)m->q[m->qhead].len); /* never handed out */
    else cio__uring_buf_put(&loop->poller, m->q[m->qhead].bid);
  }
  m->qhead = 0;
  m->has_fin = false;
}

static void msr_kill(struct fdrec *r) {
  struct msr *m = r->ms;
  if (!m) return;
  msr_drop_queue(m, r->loop);
  m->kind = 0;
  if (!m->armed) m->accept = false;
  if (m->armed) {
    /* The request holds the file: withdraw it, and let the record go with
     * its last completion. */
    if (!m->stopping) cio__uring_cancel(&r->loop->poller, &m->op);
    m->r = NULL;
    r->ms = NULL;
  }
}

static bool msr_push(struct msr *m, unsigned bid, unsigned len) {
  if (m->qlen == m->qcap) {
    unsigned cap = m->qcap ? m->qcap * 2 : 4;
    struct msr_chunk *q = malloc(cap * sizeof *q);
    if (!q) return false;
    for (unsigned i = 0; i < m->qlen; i++) q[i] = m->q[(m->qhead + i) % m->qcap];
    free(m->q);
    m->q = q;
    m->qhead = 0;
    m->qcap = cap;
  }
  m->q[(m->qhead + m->qlen) % m->qcap] = (struct msr_chunk){(uint16_t)bid, 0, len};
  m->qlen++;
  return true;
}

static void msr_done(struct cio__poll_op *op, int res) {
  struct msr *m = CIO__CONTAINER_OF(op, struct msr, op);
  unsigned flags = op->flags;
  bool more = flags & IORING_CQE_F_MORE;
  if (!more) {
    m->armed = false;
    m->stopping = false;
  }
  struct fdrec *r = m->r;
  if (m->accept) {
    if (res >= 0 && (!r || !msr_push(m, 0, (unsigned)res))) close(res);
    if (res < 0 && res != -ECANCELED && r) {
      m->has_fin = true; /* the next accept goes the readiness way, with its policy */
      m->fin = res;
    }
    if (!r) {
      if (!m->armed) msr_unlink_free(m);
      return;
    }
    /* Accepted but not taken: let the listen backlog hold the rest. */
    if (m->armed && !m->stopping && m->qlen >= 64) {
      m->stopping = true;
      cio__uring_cancel(&r->loop->poller, &m->op);
    }
    struct slot *s = &r->rd;
    if (s->kind == SLOT_TASK && s->fut->state == CIO__PENDING) {
      cio__future_complete(s->fut, CIO__RESULT, 0, NULL, NULL, false);
      slot_clear(r->loop, s);
    }
    return;
  }
  if (!r) {
    /* Orphaned: nobody will read this. */
    if (flags & IORING_CQE_F_BUFFER)
      cio__uring_buf_put(&m->loop->poller, flags >> IORING_CQE_BUFFER_SHIFT);
    if (!m->armed) msr_unlink_free(m);
    return;
  }
  cio_loop *loop = r->loop;
  if (flags & IORING_CQE_F_BUFFER) {
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (res <= 0 || !msr_push(m, bid, (unsigned)res)) {
      cio__uring_buf_put(&loop->poller, bid);
      if (res > 0) { /* out of memory for the queue: the stream is cut */
        m->has_fin = true;
        m->fin = -ENOMEM;
      }
    }
  }
  if (res == 0 && !more) {
    m->has_fin = true;
    m->fin = 0;
  } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
    m->has_fin = true;
    m->fin = res;
  }
  /* A reader that falls behind must not hold the whole ring. */
  if (m->armed && !m->stopping && m->qlen > 2 &&
      m->qlen > cio__uring_bufs_total(&loop->poller) / 4) {
    m->stopping = true;
    cio__uring_cancel(&loop->poller, &m->op);
  }
  struct slot *s = &r->rd;
  if (s->kind == SLOT_TASK && s->fut->state == CIO__PENDING) {
    cio__future_complete(s->fut, CIO__RESULT, 0, NULL, NULL, false);
    slot_clear(loop, s);
  }
}

static size_t msr_copy(struct msr *m, cio_loop *loop, char *buf, size_t len) {
  size_t got = 0;
  while (got < len && m->qlen) {
    struct msr_chunk *c = &m->q[m->qhead];
    size_t n = c->len - c->off;
    if (n > len - got) n = len - got;
    memcpy(buf + got, (char *)cio__uring_buf(&loop->poller, c->bid) + c->off, n);
    c->off += (uint32_t)n;
    got += n;
    if (c->off == c->len) {
      cio__uring_buf_put(&loop->poller, c->bid);
      m->qhead = (m->qhead + 1) % m->qcap;
      m->qlen--;
    }
  }
  return got;
}

static struct msr *msr_get(struct fdrec *r) {
  if (r->ms) return r->ms;
  struct msr *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->op.done = msr_done;
  m->r = r;
  m->loop = r->loop;
  m->io = r->loop->io;
  m->next = m->io->ms_all;
  if (m->next) m->next->prev = m;
  m->io->ms_all = m;
  r->ms = m;
  return m;
}

/* Suspend t in fd's reader slot until msr_done (or a close) wakes it. */
static int msr_wait(struct cio_task *t, struct fdrec *r) {
  cio_loop *loop = r->loop;
  struct slot *s = &r->rd;
  struct cio_future f;
  cio__future_init(&f, loop, CIO__F_LOCAL);
  s->kind = SLOT_TASK;
  s->fut = &f;
  loop->io_watchers++;
  int rc = cio__task_await(t, &f, NULL);
  coop_task = NULL;
  if (s->kind == SLOT_TASK && s->fut == &f) slot_clear(loop, s);
  cio__future_finalize(&f, NULL);
  return rc;
}

ssize_t cio__fd_recv_ms(struct cio_task *t, int fd, void *buf, size_t len, const char *who) {
  cio_loop *loop = t->fut.loop;
  if (!cio__fd_kernel_reads(loop) || len == 0) return -EAGAIN;
  struct fdrec *r;
  int rc = rec_get(loop, fd, &r, who);
  if (rc < 0) return rc;
  if ((rc = slot_taken(r, CIO__POLL_IN, who)) < 0) return rc;
  for (;;) {
    struct msr *m = msr_get(r);
    if (!m) return -EAGAIN; /* out of memory: readiness, as on epoll */
    if (m->accept) return -EAGAIN; /* a listening socket */
    if (m->qlen) return (ssize_t)msr_copy(m, loop, buf, len);
    if (m->has_fin) {
      m->has_fin = false;
      return m->fin;
    }
    if (!m->armed) {
      if (m->kind == 0) {
        int type = 0;
        socklen_t tl = sizeof type;
        m->kind = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM
                      ? 1 : -1;
      }
      if (m->kind < 0 || !cio__uring_bufs_ready(&loop->poller)) return -EAGAIN;
      unsigned nfree = cio__uring_bufs_free(&loop->poller);
      if (nfree == 0 || nfree < cio__uring_bufs_total(&loop->poller) / 16)
        return cio__fd_recv_kernel(t, fd, buf, len, who); /* buffers are short: one-shot */
      struct io_uring_sqe *sqe = cio__uring_sqe(&loop->poller, &m->op);
      if (!sqe) return -EAGAIN;
      io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = CIO__URING_BGID;
      m->armed = true;
    }
    if ((rc = msr_wait(t, r)) < 0) return rc;
  }
}

int cio__fd_accept_ms(struct cio_task *t, int fd, const char *who) {
  cio_loop *loop = t->fut.loop;
  if (!cio__fd_kernel_reads(loop)) return -EAGAIN;
  struct fdrec *r;
  int rc = rec_get(loop, fd, &r, who);
  if (rc < 0) return rc;
  if ((rc = slot_taken(r, CIO__POLL_IN, who)) < 0) return rc;
  if ((rc = cio__coop(t)) < 0) return rc;
  for (;;) {
    struct msr *m = msr_get(r);
    if (!m) return -EAGAIN;
    if (!m->accept) {
      if (m->qlen || m->armed) return -EAGAIN; /* it was read as a stream */
      m->accept = true;
      m->has_fin = false;
    }
    if (m->qlen) {
      int c = (int)m->q[m->qhead].len;
      m->qhead = (m->qhead + 1) % m->qcap;
      m->qlen--;
      cio__fd_fresh(loop, c);
      return c;
    }
    if (m->has_fin) {
      m->has_fin = false;
      return -EAGAIN;
    }
    if (!m->armed) {
      struct io_uring_sqe *sqe = cio__uring_sqe(&loop->poller, &m->op);
      if (!sqe) return -EAGAIN;
      io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      m->armed = true;
    }
    if ((rc = msr_wait(t, r)) < 0) return rc;
  }
}

int cio__fd_recv_ms_stop(struct cio_task *t, int fd) {
  struct fdrec *r = rec_find(t->fut.loop, fd);
  struct msr *m = r ? r->ms : NULL;
  if (!m || !m->armed) return 0;
  if (!m->stopping) {
    m->stopping = true;
    cio__uring_cancel(&r->loop->poller, &m->op);
  }
  while (r->ms == m && m->armed) {
    int rc = r->rd.kind == SLOT_NONE ? msr_wait(t, r) : cio_sleep(0.001);
    if (rc < 0) return rc;
  }
  return 0;
}

size_t cio__fd_recv_ms_take(cio_loop *loop, int fd, void *buf, size_t len) {
  struct fdrec *r = rec_find(loop, fd);
  struct msr *m = r ? r->ms : NULL;
  return m && m->qlen ? msr_copy(m, loop, buf, len) : 0;
}

size_t cio__fd_recv_ms_queued(cio_loop *loop, int fd) {
  struct fdrec *r = rec_find(loop, fd);
  struct msr *m = r ? r->ms : NULL;
  size_t n = 0;
  for (unsigned i = 0; m && i < m->qlen; i++) {
    struct msr_chunk *c = &m->q[(m->qhead + i) % m->qcap];
    n += c->len - c->off;
  }
  return n;
}
#else
static void msr_kill(struct fdrec *r) { (void)r; }
#endif
