/* Layer 8: file I/O. See include/cio/file.h.
 *
 * One operation, two engines. On io_uring the request goes to the kernel
 * with the loop's next wait and completes through the poller; the caller's
 * buffer is used directly, and a cancelled call withdraws the request and
 * waits for its completion before returning (so the buffer is free again).
 * On epoll a worker thread of the default executor makes the system call on
 * a bounce buffer that the job owns, so that a cancelled call can return at
 * once while the thread finishes (the job frees the buffer). */
#include "cio/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef CIO_HAVE_URING
#include <liburing.h>
#endif

#include "cio/task.h"
#include "executor.h"
#include "io.h"
#include "task.h"
#include "transport.h"

enum op_kind { OP_OPEN, OP_READ, OP_WRITE, OP_FSYNC, OP_FDATASYNC, OP_CLOSE };

static const char *const op_names[] = {"open", "read", "write", "fsync", "fdatasync", "close"};

/* One system call's worth: at most 1 GiB, so that a result fits an int. */
#define CHUNK_MAX ((size_t)1 << 30)

struct op {
  enum op_kind kind;
  int fd;
  void *buf;
  size_t n;
  off_t off; /* -1: the file position */
  const char *path;
  int flags;
  mode_t mode;
};

static ssize_t do_syscall(const struct op *o) {
  ssize_t r;
  switch (o->kind) {
  case OP_OPEN: r = open(o->path, o->flags | O_CLOEXEC, o->mode); break;
  case OP_READ: r = o->off < 0 ? read(o->fd, o->buf, o->n) : pread(o->fd, o->buf, o->n, o->off); break;
  case OP_WRITE:
    r = o->off < 0 ? write(o->fd, o->buf, o->n) : pwrite(o->fd, o->buf, o->n, o->off);
    break;
  case OP_FSYNC: r = fsync(o->fd); break;
  case OP_FDATASYNC: r = fdatasync(o->fd); break;
  default: r = close(o->fd); break;
  }
  return r < 0 ? -errno : r;
}

/* ---- io_uring ---------------------------------------------------------------------- */

#ifdef CIO_HAVE_URING
static bool uring_prep(cio_loop *loop, struct cio__kop *k, const struct op *o) {
  struct io_uring_sqe *sqe = cio__uring_sqe(&loop->poller, &k->op);
  if (!sqe) return false;
  unsigned n = (unsigned)(o->n > CHUNK_MAX ? CHUNK_MAX : o->n);
  switch (o->kind) {
  case OP_OPEN: io_uring_prep_openat(sqe, AT_FDCWD, o->path, o->flags | O_CLOEXEC, o->mode); break;
  case OP_READ: io_uring_prep_read(sqe, o->fd, o->buf, n, (uint64_t)o->off); break;
  case OP_WRITE: io_uring_prep_write(sqe, o->fd, o->buf, n, (uint64_t)o->off); break;
  case OP_FSYNC: io_uring_prep_fsync(sqe, o->fd, 0); break;
  case OP_FDATASYNC: io_uring_prep_fsync(sqe, o->fd, IORING_FSYNC_DATASYNC); break;
  default: io_uring_prep_close(sqe, o->fd); break;
  }
  return true;
}

/* Returns the result, or *ran = false when the ring could not take the
 * request (then the caller uses the thread pool). A cancelled operation
 * returns -ECANCELED once the kernel has let go of the buffer. */
static ssize_t uring_run(struct cio_task *t, const struct op *o, bool *ran) {
  cio_loop *loop = t->fut.loop;
  struct cio__kop k;
  cio__kop_init(&k, loop);
  *ran = uring_prep(loop, &k, o);
  if (!*ran) return -EAGAIN;
  /* Counted as the thread pool's job is: the virtual clock waits for it
   * (not the 5 ms grace of a watched fd, after which a timer would fire
   * while the kernel still writes). The count drops once the task has
   * resumed: meanwhile it is ready, which holds the clock too. */
  atomic_fetch_add_explicit(&loop->jobs_in_flight, 1, memory_order_relaxed);
  ssize_t r = cio__kop_await(t, &k, false);
  atomic_fetch_sub_explicit(&loop->jobs_in_flight, 1, memory_order_relaxed);
  return r;
}
#endif

/* ---- the thread pool ------------------------------------------------------------------ */

struct tjob {
  struct op o;
  int dupfd;       /* the job's own copy of o.fd (closed by the job), or -1 */
  atomic_int refs; /* the job's and the caller's */
  ssize_t res;
  char bounce[];
};

static void tjob_unref(void *arg) {
  struct tjob *j = arg;
  if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
    if (j->dupfd >= 0) close(j->dupfd); /* the job never ran */
    free(j);
  }
}

static int tjob_run(void *arg, void **result) {
  struct tjob *j = arg;
  (void)result;
  j->res = do_syscall(&j->o);
  if (j->dupfd >= 0) {
    close(j->dupfd);
    j->dupfd = -1;
  }
  return 0;
}

static ssize_t thread_run(struct cio_task *t, const struct op *o) {
  size_t n = o->n > CHUNK_MAX ? CHUNK_MAX : o->n;
  bool bounce = o->kind == OP_READ || o->kind == OP_WRITE;
  size_t plen = o->kind == OP_OPEN ? strlen(o->path) + 1 : 0;
  struct tjob *j = malloc(sizeof *j + (bounce ? n : 0) + plen);
  if (!j) return cio__fail_static(-ENOMEM, "out of memory for a file operation");
  j->o = *o;
  j->o.n = n;
  atomic_init(&j->refs, 2);
  j->res = -EIO;
  /* The worker works on its own copy of the fd: a cancelled call returns
   * at once, and its caller may close the fd while the worker has not made
   * the call yet; the number could by then name another file. */
  j->dupfd = -1;
  if (o->kind != OP_OPEN && o->kind != OP_CLOSE) {
    j->dupfd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
    if (j->dupfd < 0 && errno == EBADF) {
      free(j);
      return -EBADF;
    }
    if (j->dupfd >= 0) j->o.fd = j->dupfd; /* (out of fds: the fd itself) */
  }
  if (bounce) {
    j->o.buf = j->bounce;
    if (o->kind == OP_WRITE) memcpy(j->bounce, o->buf, n);
  }
  if (plen) {
    memcpy(j->bounce, o->path, plen);
    j->o.path = j->bounce;
  }
  int rc = cio__run_job(t, NULL, tjob_run, j, NULL, tjob_unref, NULL, op_names[o->kind]);
  ssize_t res = rc < 0 ? rc : j->res;
  if (rc >= 0 && o->kind == OP_READ && res > 0) memcpy(o->buf, j->bounce, (size_t)res);
  tjob_unref(j);
  return res;
}

/* ---- one operation ---------------------------------------------------------------------- */

static ssize_t run_op(const struct op *o, const char *who) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  ssize_t r;
  if (o->kind == OP_READ) {
    /* Data in the page cache is read at once, without a trip through the
     * kernel queue or a thread (RWF_NOWAIT fails instead of blocking); the
     * cooperative budget keeps such a reader from starving the others. */
    int c = cio__coop(t);
    if (c < 0) return c;
    struct iovec iov = {.iov_base = o->buf, .iov_len = o->n > CHUNK_MAX ? CHUNK_MAX : o->n};
    r = preadv2(o->fd, &iov, 1, o->off, RWF_NOWAIT);
    if (r >= 0) return r;
    if (errno != EAGAIN && errno != EOPNOTSUPP && errno != EINVAL && errno != ESPIPE &&
        errno != EINTR)
      return cio__fail(-errno, "%s(fd %d): %s", who, o->fd, strerror(errno));
  }
#ifdef CIO_HAVE_URING
  bool ran = false;
  if (CIO__URING(&t->fut.loop->poller)) {
    r = uring_run(t, o, &ran);
    if (ran) goto out;
  }
#endif
  r = thread_run(t, o);
#ifdef CIO_HAVE_URING
out:
#endif
  if (r == -ECANCELED) return cio__fail(-ECANCELED, "%s: cancelled", who);
  if (r < 0 && r != CIO_ENOTASK) {
    if (o->kind == OP_OPEN)
      return cio__fail((int)r, "%s(\"%s\"): %s", who, o->path, strerror((int)-r));
    return cio__fail((int)r, "%s(fd %d): %s", who, o->fd, strerror((int)-r));
  }
  return r;
}

int cio_file_open(const char *path, int flags, mode_t mode) {
  if (!path) return cio__fail(-EINVAL, "cio_file_open: path is NULL");
  struct op o = {.kind = OP_OPEN, .path = path, .flags = flags, .mode = mode, .fd = -1};
  return (int)run_op(&o, "cio_file_open");
}

static ssize_t rw(enum op_kind kind, int fd, void *buf, size_t n, off_t off, const char *who) {
  if (fd < 0) return cio__fail(-EBADF, "%s: fd %d is not a valid file descriptor", who, fd);
  if (!buf && n) return cio__fail(-EINVAL, "%s: buffer is NULL", who);
  if (off < -1) return cio__fail(-EINVAL, "%s: negative offset %lld", who, (long long)off);
  if (kind == OP_READ) {
    struct op o = {.kind = OP_READ, .fd = fd, .buf = buf, .n = n, .off = off};
    return n ? run_op(&o, who) : 0;
  }
  /* Writes: all of it, one system call per short write. */
  size_t done = 0;
  while (done < n) {
    struct op o = {.kind = OP_WRITE, .fd = fd, .buf = (char *)buf + done, .n = n - done,
                   .off = off < 0 ? -1 : off + (off_t)done};
    ssize_t r = run_op(&o, who);
    if (r < 0) return r;
    if (r == 0) return cio__fail(-EIO, "%s(fd %d): the write made no progress", who, fd);
    done += (size_t)r;
  }
  return (ssize_t)n;
}

ssize_t cio_file_read(int fd, void *buf, size_t n) {
  return rw(OP_READ, fd, buf, n, -1, "cio_file_read");
}
ssize_t cio_file_pread(int fd, void *buf, size_t n, off_t off) {
  if (off < 0) return cio__fail(-EINVAL, "cio_file_pread: negative offset %lld", (long long)off);
  return rw(OP_READ, fd, buf, n, off, "cio_file_pread");
}
ssize_t cio_file_write(int fd, const void *buf, size_t n) {
  return rw(OP_WRITE, fd, (void *)buf, n, -1, "cio_file_write");
}
ssize_t cio_file_pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (off < 0) return cio__fail(-EINVAL, "cio_file_pwrite: negative offset %lld", (long long)off);
  return rw(OP_WRITE, fd, (void *)buf, n, off, "cio_file_pwrite");
}

int cio_file_fsync(int fd, bool datasync) {
  if (fd < 0) return cio__fail(-EBADF, "cio_file_fsync: fd %d is not a valid file descriptor", fd);
  struct op o = {.kind = datasync ? OP_FDATASYNC : OP_FSYNC, .fd = fd};
  return (int)run_op(&o, "cio_file_fsync");
}

int cio_file_close(int fd) {
  if (fd < 0) return cio__fail(-EBADF, "cio_file_close: fd %d is not a valid file descriptor", fd);
  if (!cio__current()) return close(fd) < 0 && errno != EINTR ? -errno : 0;
  struct op o = {.kind = OP_CLOSE, .fd = fd};
  return (int)run_op(&o, "cio_file_close");
}

int cio_file_read_all(const char *path, char **data, size_t *len) {
  if (!path || !data || !len) return cio__fail(-EINVAL, "cio_file_read_all: NULL argument");
  *data = NULL;
  *len = 0;
  int fd = cio_file_open(path, O_RDONLY, 0);
  if (fd < 0) return fd;
  struct stat st;
  size_t cap = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
  char *buf = malloc(cap);
  size_t have = 0;
  int rc = 0;
  while (buf) {
    if (have + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        rc = cio__fail_static(-ENOMEM, "cio_file_read_all: out of memory");
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = cio_file_read(fd, buf + have, cap - 1 - have);
    if (r < 0) {
      rc = (int)r;
      break;
    }
    if (r == 0) break;
    have += (size_t)r;
  }
  if (!buf) rc = cio__fail_static(-ENOMEM, "cio_file_read_all: out of memory");
  close(fd);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  buf[have] = '\0';
  *data = buf;
  *len = have;
  return 0;
}

int cio_file_write_all(const char *path, const void *data, size_t len) {
  if (!path || (!data && len)) return cio__fail(-EINVAL, "cio_file_write_all: NULL argument");
  int fd = cio_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) return fd;
  ssize_t r = cio_file_write(fd, data, len);
  int c = close(fd) < 0 ? -errno : 0;
  if (r < 0) return (int)r;
  if (c < 0 && c != -EINTR) return cio__fail(c, "cio_file_write_all(\"%s\"): close: %s", path, strerror(-c));
  return 0;
}

/* ---- a file under a stream (the transport of src/transport.h) ---------------------------- */

#define FT_BUF (256u * 1024u) /* the read-ahead buffer, and each of the two write buffers */
#define FT_DIRECT (64u * 1024u) /* a write of this much with nothing pending: tried at once */

struct ftrans {
  struct cio__transport base; /* base.fd: the file (the stream's fd) */
  cio_loop *loop;
  /* read side: reads are positional, from rpos; what a wait read is in rb */
  off_t rpos;
  char *rb;
  size_t rb_off, rb_len;
  bool r_eof;
  int rerr;
  /* write side: writev fills `fill`; the writer task writes `flight` */
  char *fill, *flight;
  size_t fill_len, flight_len;
  bool writer;    /* the writer task is alive */
  bool nowait_w;  /* pwritev2(RWF_NOWAIT) is worth trying on this file */
  int werr;       /* the first write error (sticky) */
  void (*cb)(void *arg); /* the stream's flush, while armed */
  void *cb_arg;
  /* life */
  int busy;       /* operations in flight on the fd */
  bool closing;   /* the stream closed the fd: close it when not busy */
  bool orphaned;  /* destroyed: free when the writer is gone */
};

static void ft_free(struct ftrans *t) {
  free(t->rb);
  free(t->fill);
  free(t->flight);
  free(t);
}

/* After an operation or a state change: close and free what is due. */
static void ft_settle(struct ftrans *t) {
  if (t->closing && !t->busy && t->base.fd >= 0) {
    close(t->base.fd); /* (a regular file: no loop registration to forget) */
    t->base.fd = -1;
  }
  if (t->orphaned && !t->busy && !t->writer) ft_free(t);
}

static ssize_t ft_read(struct cio__transport *bt, void *buf, size_t n, unsigned *want) {
  struct ftrans *t = (struct ftrans *)bt;
  if (t->rb_len) {
    size_t k = n < t->rb_len ? n : t->rb_len;
    memcpy(buf, t->rb + t->rb_off, k);
    t->rb_off += k;
    t->rb_len -= k;
    return (ssize_t)k;
  }
  if (t->rerr)
    return cio__fail(t->rerr, "cio_stream read(file fd %d): %s", t->base.fd, strerror(-t->rerr));
  if (t->r_eof) {
    t->r_eof = false;
    return 0;
  }
  if (t->base.fd < 0) return 0; /* closed: end of file */
  /* In the page cache: at once, straight into the stream's buffer. */
  struct iovec iov = {.iov_base = buf, .iov_len = n > CHUNK_MAX ? CHUNK_MAX : n};
  ssize_t r = preadv2(t->base.fd, &iov, 1, t->rpos, RWF_NOWAIT);
  if (r >= 0) {
    t->rpos += r;
    return r;
  }
  int e = errno;
  if (e == EAGAIN || e == EOPNOTSUPP || e == EINTR) {
    *want = CIO__POLL_IN;
    return -EAGAIN; /* ft_wait reads it */
  }
  return cio__fail(-e, "cio_stream read(file fd %d): %s", t->base.fd, strerror(e));
}

/* The read that would block, in the transport's buffer: a cancelled one
 * leaves rpos where it was, so the next read reads those bytes again. */
static int ft_wait(struct cio__transport *bt, unsigned want, const char *who) {
  struct ftrans *t = (struct ftrans *)bt;
  (void)who;
  if (want != CIO__POLL_IN || t->rb_len || t->rerr || t->r_eof || t->base.fd < 0) return 0;
  if (!t->rb && !(t->rb = malloc(FT_BUF)))
    return cio__fail_static(-ENOMEM, "cio_stream read: out of memory for a file's buffer");
  t->busy++;
  ssize_t r = cio_file_pread(t->base.fd, t->rb, FT_BUF, t->rpos);
  t->busy--;
  ft_settle(t);
  if (r == -ECANCELED || r == -ENOMEM) return (int)r;
  if (r < 0) {
    t->rerr = (int)r; /* the read returns it */
    return 0;
  }
  t->rb_off = 0;
  t->rb_len = (size_t)r;
  t->rpos += r;
  t->r_eof = r == 0;
  return 0;
}

static int ft_writer(void *arg, void **result);

static int ft_start_writer(struct ftrans *t) {
  if (t->writer) return 0;
  if (!t->loop) t->loop = cio_get_running_loop();
  if (!t->loop) return cio__fail(CIO_ENOTRUNNING, "cio_stream write (file): no running event loop");
  cio_task_options o = {.name = "cio_stream file writer"};
  cio_task *task = cio_loop_create_task(t->loop, ft_writer, t, &o);
  if (!task) return cio_errcode() < 0 ? cio_errcode() : -ENOMEM;
  t->writer = true;
  cio_task_detach(task);
  return 0;
}

static ssize_t ft_writev(struct cio__transport *bt, const struct iovec *iov, int cnt,
                         unsigned *want) {
  struct ftrans *t = (struct ftrans *)bt;
  *want = CIO__POLL_OUT;
  if (t->werr)
    return cio__fail(t->werr, "cio_stream write (file): %s (earlier)", strerror(-t->werr));
  if (t->base.fd < 0) return cio__fail(-EPIPE, "cio_stream write (file): closed");
  size_t total = 0, done = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  if (!t->writer && !t->fill_len && t->nowait_w && total >= FT_DIRECT) {
    /* Nothing pending and a large write: straight into the page cache if it
     * takes it now (small writes are gathered into one). */
    ssize_t r = pwritev2(t->base.fd, iov, cnt, -1, RWF_NOWAIT);
    if (r >= 0) {
      done = (size_t)r;
    } else if (errno == EOPNOTSUPP) {
      t->nowait_w = false;
    } else if (errno != EAGAIN && errno != EINTR) {
      int e = errno;
      t->werr = -e;
      return cio__fail(-e, "cio_stream write(file fd %d): %s", t->base.fd, strerror(e));
    }
    if (done == total) return (ssize_t)done;
  }
  /* The rest into the fill buffer, for the writer task. */
  if (!t->fill && !(t->fill = malloc(FT_BUF)))
    return done ? (ssize_t)done
                : cio__fail_static(-ENOMEM, "cio_stream write: out of memory for a file's buffer");
  size_t skip = done, took = 0;
  for (int i = 0; i < cnt && t->fill_len < FT_BUF; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t k = l - skip;
    if (k > FT_BUF - t->fill_len) k = FT_BUF - t->fill_len;
    memcpy(t->fill + t->fill_len, (const char *)iov[i].iov_base + skip, k);
    t->fill_len += k;
    took += k;
    skip = 0;
  }
  if (took) {
    int rc = ft_start_writer(t);
    if (rc < 0) {
      t->fill_len -= took;
      return done ? (ssize_t)done : rc;
    }
  }
  return done + took ? (ssize_t)(done + took) : -EAGAIN;
}

/* The background writer: writes what writev buffered, and calls the
 * stream's flush back after each write, so that it hands over more (or, at
 * the end, sees that all is written). */
static int ft_writer(void *arg, void **result) {
  struct ftrans *t = arg;
  (void)result;
  for (;;) {
    if (t->orphaned || t->closing || t->werr) {
      t->fill_len = 0; /* aborted, freed or failed: dropped */
      break;
    }
    if (t->fill_len) {
      if (!t->flight && !(t->flight = malloc(FT_BUF))) {
        t->werr = cio__fail_static(-ENOMEM, "cio_stream write: out of memory for a file's buffer");
        continue;
      }
      char *b = t->fill;
      t->fill = t->flight;
      t->flight = b;
      t->flight_len = t->fill_len;
      t->fill_len = 0;
      t->busy++;
      ssize_t r = cio_file_write(t->base.fd, t->flight, t->flight_len);
      t->busy--;
      t->flight_len = 0;
      if (r < 0) t->werr = (int)r;
      if (t->orphaned || t->closing) continue;
    }
    if (!t->cb) {
      if (t->fill_len || t->werr) continue;
      break;
    }
    /* The stream's flush: it hands over more, sees the end, or the error
     * (and then disarms). */
    t->cb(t->cb_arg);
    if (!t->fill_len && !t->werr && t->cb) break; /* (not expected: no spinning) */
  }
  t->writer = false;
  ft_settle(t);
  return 0;
}

static int ft_write_eof(struct cio__transport *bt, unsigned *want) {
  struct ftrans *t = (struct ftrans *)bt;
  *want = CIO__POLL_OUT;
  if (t->werr)
    return cio__fail(t->werr, "cio_stream close (file): a write failed: %s", strerror(-t->werr));
  if (t->fill_len || t->flight_len) return -EAGAIN; /* the writer calls back */
  return 0;
}

static size_t ft_pending(struct cio__transport *bt) { return ((struct ftrans *)bt)->rb_len; }

static int ft_add_writer(struct cio__transport *bt, void (*cb)(void *arg), void *arg) {
  struct ftrans *t = (struct ftrans *)bt;
  t->cb = cb;
  t->cb_arg = arg;
  return ft_start_writer(t); /* (it calls back at once when idle) */
}

static void ft_remove_writer(struct cio__transport *bt) {
  struct ftrans *t = (struct ftrans *)bt;
  t->cb = NULL;
  t->cb_arg = NULL;
}

static void ft_close(struct cio__transport *bt) {
  struct ftrans *t = (struct ftrans *)bt;
  t->closing = true;
  t->cb = NULL;
  ft_settle(t);
}

static void ft_destroy(struct cio__transport *bt) {
  struct ftrans *t = (struct ftrans *)bt;
  t->closing = true;
  t->orphaned = true;
  t->cb = NULL;
  ft_settle(t);
}

static const struct cio__transport_ops file_ops = {
    .read = ft_read,
    .writev = ft_writev,
    .write_eof = ft_write_eof,
    .pending = ft_pending,
    .destroy = ft_destroy,
    .wait = ft_wait,
    .add_writer = ft_add_writer,
    .remove_writer = ft_remove_writer,
    .close = ft_close,
};

int cio__file_transport_new(int fd, cio_loop *loop, struct cio__transport **out) {
  struct ftrans *t = calloc(1, sizeof *t);
  if (!t) return cio__fail_static(-ENOMEM, "cio_stream_from_fd: out of memory");
  t->base.ops = &file_ops;
  t->base.fd = fd;
  t->loop = loop;
  off_t pos = lseek(fd, 0, SEEK_CUR);
  t->rpos = pos < 0 ? 0 : pos;
  t->nowait_w = true;
  *out = &t->base;
  return 0;
}

int cio_stream_open_file(const char *path, int flags, mode_t mode, const cio_stream_opts *opts,
                         cio_stream **out) {
  const char *who = "cio_stream_open_file";
  if (out) *out = NULL;
  if (!path || !out) return cio__fail(-EINVAL, "%s: path or out is NULL", who);
  if (flags & O_DIRECT)
    return cio__fail(-EINVAL, "%s(\"%s\"): O_DIRECT is not supported for streams", who, path);
  cio_stream_opts o;
  int rc = cio__stream_fill_opts(&o, opts, who);
  if (rc < 0) return rc;
  int fd = cio_file_open(path, flags, mode);
  if (fd < 0) return fd;
  rc = cio_stream_from_fd(fd, &o, out);
  if (rc < 0) {
    close(fd);
    if (rc == -EISDIR) return cio__fail(rc, "%s(\"%s\"): a directory", who, path);
  }
  return rc;
}
