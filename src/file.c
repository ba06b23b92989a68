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

#include "executor.h"
#include "io.h"
#include "task.h"

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
  struct cio__kop k;
  cio__kop_init(&k, t->fut.loop);
  *ran = uring_prep(t->fut.loop, &k, o);
  if (!*ran) return -EAGAIN;
  return cio__kop_await(t, &k, false);
}
#endif

/* ---- the thread pool ------------------------------------------------------------------ */

struct tjob {
  struct op o;
  atomic_int refs; /* the job's and the caller's */
  ssize_t res;
  char bounce[];
};

static void tjob_unref(void *arg) {
  struct tjob *j = arg;
  if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) free(j);
}

static int tjob_run(void *arg, void **result) {
  struct tjob *j = arg;
  (void)result;
  j->res = do_syscall(&j->o);
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
