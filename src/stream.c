/* Layer 9: streams (asyncio's StreamReader + StreamWriter over a transport).
 * See include/cio/stream.h; the TLS seam is src/transport.h.
 *
 * Read side: one buffer [rstart, rend) of rcap bytes. A reading call looks at
 * the buffer first and reads from the fd only when it needs more; it never
 * consumes anything before it has succeeded, so a cancellation or a timeout
 * (which can only land on a suspension, inside fill()) leaves every byte in
 * the buffer. Compaction (memmove to the front) happens only at the start of
 * a reading call, which is what keeps the zero-copy line pointers valid until
 * the next one.
 *
 * Write side: one contiguous queue [wstart, wend). A write with nothing
 * queued goes straight to the kernel (one send/sendmsg) and queues what it
 * did not take; the queue is flushed by a writer callback (cio_add_writer)
 * registered while it is non-empty, so writes never suspend and nobody has to
 * drain for the bytes to leave. A regular file has no readiness: its
 * transport (src/file.c) reads and writes with cio's file calls and stands
 * in for the fd wait, the writer callback and the close (transport.h). drain() waits on an event that the flush sets
 * when the queue falls to the low-water mark.
 */
#include "tls.h"
#include "transport.h"

#include "cio/group.h"
#include "cio/sync.h"
#include "io.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef CIO_HAVE_URING
#include <liburing.h>
#endif

#define RBUF_MIN (16u * 1024u)   /* first read buffer */
#define RBUF_KEEP (256u * 1024u) /* an empty buffer larger than this is freed */
#define WBUF_KEEP (256u * 1024u)
#define DIRECT_READ 16384u       /* read(n >= this) with an empty buffer: recv into the caller's */

/* The first two cache lines (the struct is aligned to them) hold what every
 * read and write touches, so that a server with many connections misses on
 * one pair of lines per stream and request, not four or five. */
struct cio_stream {
  /* hot: read side and state */
  int fd;
  int rerr;         /* sticky read error */
  int werr;         /* the connection's write error (sticky) */
  bool is_sock, can_read, can_write, can_eof;
  bool eof;         /* EOF seen (or the fd closed) */
  bool reading;     /* a reading call is in progress */
  bool paused;      /* above high; drain waits until <= low */
  bool cb_armed;    /* writer callback registered */
  bool eof_wanted;  /* write_eof after the flush */
  bool eof_sent;
  bool closing;     /* close() or abort() called */
  bool aborted;
  cio_loop *loop; /* bound at creation (running loop) or first use */
  struct cio__transport *transport;
  char *rbuf;
  size_t rstart, rend;
  /* hot: write side */
  size_t rcap;
  char *wbuf;
  size_t wcap, wstart, wend;
  size_t wflight;   /* bytes of the queue the kernel has not taken yet (sop) */
  size_t high, low;

  cio_stream_opts opts; /* defaults filled in */
  struct sendop *sop; /* io_uring: the send in the kernel, with its own buffer */
  cio_handle *retry; /* transport wanted IN while flushing: poll again later */
  cio_handle *shut_timer; /* bounds the close of a transport stream */
  bool shut_timed_out;     /* it expired: werr is -ETIMEDOUT */
  cio_event drain_ev;  /* set while not paused */
  cio_event empty_ev;  /* set while the queue is empty */
  cio_event closed_ev; /* set once the fd is closed or the connection broke */
};
#define STREAM_ALIGN 128
_Static_assert(offsetof(struct cio_stream, high) + 2 * sizeof(size_t) <= STREAM_ALIGN,
               "the hot fields fit the first two cache lines");

static cio_stream *stream_alloc(void) {
  size_t size = (sizeof(cio_stream) + STREAM_ALIGN - 1) / STREAM_ALIGN * STREAM_ALIGN;
  cio_stream *s = aligned_alloc(STREAM_ALIGN, size);
  if (s) memset(s, 0, size);
  return s;
}

static int need_task(const char *who, struct cio_task **t) {
  *t = cio__current();
  if (!*t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  return 0;
}

static int bad_stream(const char *who) { return cio__fail(-EINVAL, "%s: stream is NULL", who); }

/* Bytes written and not yet taken by the kernel (in the queue or in an
 * io_uring send); wqueued: those in the queue buffer itself. */
static size_t queued(const cio_stream *s) { return s->wend - s->wstart + s->wflight; }
static size_t wqueued(const cio_stream *s) { return s->wend - s->wstart; }
static size_t buffered(const cio_stream *s) { return s->rend - s->rstart; }

static int fill_opts(cio_stream_opts *o, const cio_stream_opts *in, const char *who) {
  if (in) *o = *in;
  else memset(o, 0, sizeof *o);
  if (!o->limit) o->limit = CIO_STREAM_LIMIT;
  if (!o->write_high && !o->write_low) {
    o->write_high = CIO_STREAM_WRITE_HIGH;
    o->write_low = CIO_STREAM_WRITE_LOW;
  } else if (!o->write_high) {
    o->write_high = 4 * o->write_low;
  } else if (!o->write_low) {
    o->write_low = o->write_high / 4;
  }
  if (o->write_low > o->write_high)
    return cio__fail(-EINVAL, "%s: write_low (%zu) is above write_high (%zu)", who, o->write_low,
                     o->write_high);
  if (isnan(o->connect_timeout) || o->connect_timeout < 0 || isnan(o->happy_eyeballs_delay) ||
      o->happy_eyeballs_delay < 0 || isnan(o->tls_handshake_timeout) ||
      o->tls_handshake_timeout < 0 || isnan(o->tls_shutdown_timeout) ||
      o->tls_shutdown_timeout < 0 || o->backlog < 0)
    return cio__fail(-EINVAL, "%s: a negative or NaN timeout, delay or backlog in the options", who);
  if (o->handler_stack_size && (o->handler_stack_size < CIO_STACK_MIN ||
                                 o->handler_stack_size > (size_t)1 << 30))
    return cio__fail(-EINVAL, "%s: handler_stack_size %zu is out of range (%u bytes to 1 GiB)",
                     who, o->handler_stack_size, CIO_STACK_MIN);
  if (!o->tls_handshake_timeout) o->tls_handshake_timeout = 60.0;
  if (!o->tls_shutdown_timeout) o->tls_shutdown_timeout = 30.0;
  o->server_hostname = NULL; /* not kept (only read during the call) */
  return 0;
}

/* ---- making and freeing ------------------------------------------------------ */

int cio_stream_from_fd(int fd, const cio_stream_opts *opts, cio_stream **out) {
  const char *who = "cio_stream_from_fd";
  if (out) *out = NULL;
  if (!out) return cio__fail(-EINVAL, "%s: out is NULL", who);
  cio_stream_opts o;
  int rc = fill_opts(&o, opts, who);
  if (rc < 0) return rc;
  if (fd < 0) return cio__fail(-EBADF, "%s: fd %d is not a valid file descriptor", who, fd);
  struct stat st;
  if (fstat(fd, &st) < 0) return cio__fail(-errno, "%s(fd %d): %s", who, fd, strerror(errno));
  if (S_ISDIR(st.st_mode)) return cio__fail(-EISDIR, "%s(fd %d): a directory", who, fd);
  bool is_file = S_ISREG(st.st_mode); /* no readiness: the file transport (src/file.c) */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return cio__fail(-errno, "%s(fd %d): %s", who, fd, strerror(errno));
  cio_stream *s = stream_alloc();
  if (!s) return cio__fail_static(-ENOMEM, "cio_stream_from_fd: out of memory");
  if (is_file && (rc = cio__file_transport_new(fd, cio_get_running_loop(), &s->transport)) < 0) {
    free(s);
    return rc;
  }
  if (!is_file && !(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    free(s);
    return cio__fail(-e, "%s(fd %d): %s", who, fd, strerror(e));
  }
  s->fd = fd;
  s->opts = o;
  s->high = o.write_high;
  s->low = o.write_low;
  s->is_sock = S_ISSOCK(st.st_mode);
  int acc = fl & O_ACCMODE;
  s->can_read = acc == O_RDONLY || acc == O_RDWR;
  s->can_write = acc == O_WRONLY || acc == O_RDWR;
  /* A socket half-closes with shutdown(2); a pipe's write end ends by being
   * closed; a file's writing side once all is written; a tty or character
   * device cannot. */
  s->can_eof =
      s->can_write && (s->is_sock || is_file || (S_ISFIFO(st.st_mode) && acc == O_WRONLY));
  if (!s->is_sock && !is_file && s->can_write) {
    /* No MSG_NOSIGNAL for pipes: ignore SIGPIPE as CPython does at start-up,
     * unless the program chose a handler of its own. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
      sa.sa_handler = SIG_IGN;
      sigaction(SIGPIPE, &sa, NULL);
    }
  }
  cio_event_init(&s->drain_ev);
  cio_event_init(&s->empty_ev);
  cio_event_init(&s->closed_ev);
  cio_event_set(&s->drain_ev);
  cio_event_set(&s->empty_ev);
  s->loop = cio_get_running_loop();
  /* An fd number cio may have watched before: do not trust that record. */
  if (s->loop) cio__fd_untrust(s->loop, fd);
  *out = s;
  return 0;
}

#ifdef CIO_HAVE_URING
/* ---- io_uring sends -----------------------------------------------------------------
 *
 * On io_uring a socket stream's writes are only queued; the flush hands the
 * whole queue to the kernel as one send operation, which goes out with the
 * loop's next io_uring_enter (shared by every stream that wrote in this
 * pass): no system call per write. The queued buffer moves into the
 * operation (it must not move until the completion), and new writes fill
 * a second buffer meanwhile. A partial send sends the rest first. Errors
 * (a reset peer) land in werr, as a failed send() does. */
struct sendop {
  struct cio__poll_op op;
  struct cio__leftover left; /* while orphaned (the stream was freed) */
  cio_stream *s;             /* NULL once orphaned */
  cio_loop *loop;
  char *buf;
  size_t cap, off, len;      /* [off, len) not sent yet */
  bool busy;                 /* in the kernel */
};

static bool kernel_sends(const cio_stream *s) {
  return s->is_sock && !s->transport && s->loop && CIO__URING(&s->loop->poller) &&
         cio__uring_sends(&s->loop->poller);
}

static void sendop_free(struct sendop *o) {
  free(o->buf);
  free(o);
}

static void sendop_release_left(struct cio__leftover *l) {
  sendop_free(CIO__CONTAINER_OF(l, struct sendop, left));
}

/* The stream goes away: a send in flight keeps its buffer until done. */
static void sendop_release(cio_stream *s) {
  struct sendop *o = s->sop;
  s->sop = NULL;
  if (!o) return;
  if (o->busy && cio__leftover_add(o->loop, &o->left) == 0) {
    o->s = NULL;
    cio__uring_cancel(&o->loop->poller, &o->op);
    return;
  }
  if (o->busy) { /* no memory to track it: leak it rather than free it under the kernel */
    o->s = NULL;
    return;
  }
  sendop_free(o);
}

static void flush(cio_stream *s);
static void flushed(cio_stream *s);
static void broken(cio_stream *s, int err);
static void unpause(cio_stream *s);
static int grow_wbuf_front(cio_stream *s, size_t n);

static bool sendop_submit(struct sendop *o) {
  struct io_uring_sqe *sqe = cio__uring_sqe(&o->loop->poller, &o->op);
  if (!sqe) return false;
  io_uring_prep_send(sqe, o->s->fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);
  o->busy = true;
  o->loop->io_watchers++;
  return true;
}

static void send_done(struct cio__poll_op *op, int res) {
  struct sendop *o = CIO__CONTAINER_OF(op, struct sendop, op);
  o->busy = false;
  o->loop->io_watchers--;
  cio_stream *s = o->s;
  if (!s) {
    cio__leftover_del(o->loop, &o->left);
    sendop_free(o);
    return;
  }
  if (s->fd < 0 || s->werr) { /* closed, aborted or broken meanwhile */
    o->off = o->len = 0;
    return;
  }
  if (res < 0 && res != -EAGAIN && res != -EINTR) {
    o->off = o->len = 0;
    broken(s, res);
    return;
  }
  if (res > 0) {
    o->off += (size_t)res;
    s->wflight -= (size_t)res;
  }
  if (o->off < o->len) {
    if (s->paused && queued(s) <= s->low) unpause(s);
    if (sendop_submit(o)) return;
    /* No ring entry: put the rest back in front of the queue. */
    size_t rest = o->len - o->off;
    if (grow_wbuf_front(s, rest) < 0) {
      o->off = o->len = 0;
      broken(s, -ENOMEM);
      return;
    }
    memcpy(s->wbuf + s->wstart, o->buf + o->off, rest);
    s->wflight = 0;
    o->off = o->len = 0;
  } else {
    o->off = o->len = 0;
    if (o->cap > WBUF_KEEP) {
      free(o->buf);
      o->buf = NULL;
      o->cap = 0;
    }
  }
  flush(s); /* the next batch, or flushed() */
}

/* Exchange the stream's write queue with the send operation's buffer (whose
 * offsets are 0 while no send is in flight): done twice, it undoes itself. */
static void swap_queue(cio_stream *s, struct sendop *o) {
  char *b = o->buf;
  size_t cap = o->cap, off = o->off, len = o->len;
  o->buf = s->wbuf;
  o->cap = s->wcap;
  o->off = s->wstart;
  o->len = s->wend;
  s->wbuf = b;
  s->wcap = cap;
  s->wstart = off;
  s->wend = len;
}

/* Hand the queue to the kernel as one send. false: no ring entry (the
 * queue stays; flush the readiness way). */
static bool submit_send(cio_stream *s) {
  struct sendop *o = s->sop;
  if (!o) {
    o = calloc(1, sizeof *o);
    if (!o) return false;
    o->op.done = send_done;
    o->left.release = sendop_release_left;
    o->s = s;
    o->loop = s->loop;
    s->sop = o;
  }
  swap_queue(s, o);
  s->wflight = o->len - o->off;
  if (sendop_submit(o)) return true;
  swap_queue(s, o);
  s->wflight = 0;
  return false;
}
#endif

static void drop_rbuf(cio_stream *s) {
  free(s->rbuf);
  s->rbuf = NULL;
  s->rcap = s->rstart = s->rend = 0;
}

static void drop_wbuf(cio_stream *s) {
  free(s->wbuf);
  s->wbuf = NULL;
  s->wcap = s->wstart = s->wend = 0;
}

static void unpause(cio_stream *s) {
  if (s->paused) {
    s->paused = false;
    cio_event_set(&s->drain_ev);
  }
}

static void on_writable(void *arg);

/* The flush callback on the fd's writability, or for a transport without
 * readiness (a file) when it has room again. */
static int writer_on(cio_stream *s) {
  if (s->transport && s->transport->ops->add_writer)
    return s->transport->ops->add_writer(s->transport, on_writable, s);
  /* A transport's "would block" need not come from the fd: a level. */
  return s->transport ? cio_add_writer(s->loop, s->fd, on_writable, s)
                      : cio__fd_add_writer_edge(s->loop, s->fd, on_writable, s);
}

static void writer_off(cio_stream *s) {
  if (s->transport && s->transport->ops->remove_writer)
    s->transport->ops->remove_writer(s->transport);
  else cio_remove_writer(s->loop, s->fd);
}

static void stop_flushing(cio_stream *s) {
  if (s->cb_armed && s->loop && s->fd >= 0) writer_off(s);
  s->cb_armed = false;
  if (s->retry) {
    cio_handle_cancel(s->retry);
    cio_handle_unref(s->retry);
    s->retry = NULL;
  }
}

/* Close the fd now. */
static void close_fd(cio_stream *s) {
  if (s->shut_timer) {
    cio_handle_cancel(s->shut_timer);
    cio_handle_unref(s->shut_timer);
    s->shut_timer = NULL;
  }
  if (s->fd < 0) return;
  stop_flushing(s);
#ifdef CIO_HAVE_URING
  if (s->sop && s->sop->busy) cio__uring_cancel(&s->loop->poller, &s->sop->op);
#endif
  s->wflight = 0;
  if (s->transport && s->transport->ops->close) s->transport->ops->close(s->transport);
  else cio_fd_close(s->fd); /* wakes a reader waiting on it with -EBADF */
  s->fd = -1;
  s->eof = true;
  s->closing = true;
  cio_event_set(&s->closed_ev);
  cio_event_set(&s->empty_ev);
  unpause(s);
}

void cio_stream_free(cio_stream *s) {
  if (!s) return;
  s->wstart = s->wend = 0;
  close_fd(s);
  stop_flushing(s);
  if (s->transport) s->transport->ops->destroy(s->transport);
  s->transport = NULL;
  drop_rbuf(s);
  drop_wbuf(s);
#ifdef CIO_HAVE_URING
  sendop_release(s);
#endif
  cio_event_destroy(&s->drain_ev);
  cio_event_destroy(&s->empty_ev);
  cio_event_destroy(&s->closed_ev);
  free(s);
}

static cio_loop *bind_loop(cio_stream *s) {
  if (!s->loop) {
    s->loop = cio_get_running_loop();
    if (s->loop && s->fd >= 0) cio__fd_untrust(s->loop, s->fd);
  }
  return s->loop;
}

/* ---- raw I/O ---------------------------------------------------------------------- */

/* One read from the fd or the transport: > 0, 0 (EOF), -EAGAIN with *want,
 * or an error (message raised). */
static ssize_t raw_read(cio_stream *s, void *buf, size_t n, unsigned *want) {
  if (s->transport) return s->transport->ops->read(s->transport, buf, n, want);
  for (;;) {
    ssize_t r = s->is_sock ? cio__sys_recv(s->fd, buf, n, MSG_DONTWAIT) : read(s->fd, buf, n);
    if (r >= 0) {
      cio__fd_note_read(s->loop, s->fd, r > 0 && (size_t)r < n);
      return r;
    }
    int e = errno;
    if (e == EINTR) continue;
    *want = CIO__POLL_IN;
    if (e == EAGAIN || e == EWOULDBLOCK) return -EAGAIN;
    return cio__fail(-e, "cio_stream read(fd %d): %s", s->fd, strerror(e));
  }
}

static ssize_t raw_writev(cio_stream *s, const struct iovec *iov, int cnt, unsigned *want) {
  *want = CIO__POLL_OUT;
  if (s->transport) return s->transport->ops->writev(s->transport, iov, cnt, want);
  for (;;) {
    ssize_t r;
    if (s->is_sock) {
      if (cnt == 1) {
        r = cio__sys_send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
      } else {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
        r = cio__sys_sendmsg(s->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
      }
    } else {
      r = writev(s->fd, iov, cnt);
    }
    if (r >= 0) return r;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) return -EAGAIN;
    return cio__fail(-e, "cio_stream write(fd %d): %s", s->fd, strerror(e));
  }
}

/* Wait for `want` on the fd from task t. The writer slot may be held by our
 * own flush callback (and a TLS read may want to write): then poll with
 * short sleeps instead. */
static int wait_fd(cio_stream *s, struct cio_task *t, unsigned want, const char *who) {
  if (s->transport && s->transport->ops->wait) /* a file: no readiness */
    return s->transport->ops->wait(s->transport, want, who);
  if (want == CIO__POLL_OUT && s->cb_armed) return cio_sleep(0.001);
  /* A transport's "would block" need not come from the fd (the edge
   * contract of cio__fd_wait): wait for the level. */
  int rc = s->transport ? cio__fd_wait_level(t, s->fd, want, who)
                        : cio__fd_wait(t, s->fd, want, who);
  if (rc == -EBUSY) return cio_sleep(0.001);
  return rc;
}

/* ---- the reading core ------------------------------------------------------------- */

#ifdef CIO_HAVE_URING
/* A read through the fd's multishot receive (src/io.h): > 0, 0 at EOF
 * (s->eof set), an error (connection errors sticky in s->rerr), or -EAGAIN
 * when it cannot be used now (then read the readiness way). Suspends. */
static ssize_t ms_read(cio_stream *s, struct cio_task *t, void *buf, size_t n, const char *who) {
  ssize_t r = cio__fd_recv_ms(t, s->fd, buf, n, who);
  if (r > 0 || r == -EAGAIN) return r;
  if (r == 0 || (r == -EBADF && s->fd < 0)) { /* EOF, or closed under us */
    s->eof = true;
    return 0;
  }
  if (r == -ECANCELED || r == -EBADF || r == -EBUSY) return r; /* message set */
  s->rerr = (int)r;
  return cio__fail((int)r, "cio_stream read(fd %d): %s", s->fd, strerror((int)-r));
}
#endif

/* Make room for at least `room` more bytes after rend, compacting (only here:
 * at the start of a reading call or inside one) or growing. */
static int reserve(cio_stream *s, size_t room) {
  if (s->rstart == s->rend) s->rstart = s->rend = 0;
  if (s->rcap - s->rend >= room) return 0;
  size_t have = s->rend - s->rstart;
  if (s->rstart && s->rcap - have >= room) {
    memmove(s->rbuf, s->rbuf + s->rstart, have);
    s->rstart = 0;
    s->rend = have;
    return 0;
  }
  size_t cap = s->rcap ? s->rcap : RBUF_MIN;
  while (cap - have < room) {
    if (cap > SIZE_MAX / 2) return cio__fail_static(-ENOMEM, "cio_stream: read buffer too large");
    cap *= 2;
  }
  if (s->rstart) {
    memmove(s->rbuf, s->rbuf + s->rstart, have);
    s->rstart = 0;
    s->rend = have;
  }
  char *nb = realloc(s->rbuf, cap);
  if (!nb) return cio__fail_static(-ENOMEM, "cio_stream: out of memory for the read buffer");
  s->rbuf = nb;
  s->rcap = cap;
  return 0;
}

/* Read once into the buffer (at least `room` bytes of space). Returns > 0
 * bytes added, 0 at EOF (s->eof set), or an error (s->rerr set for errors of
 * the connection; -ECANCELED and friends are not sticky). Suspends. */
static ssize_t fill(cio_stream *s, struct cio_task *t, size_t room, const char *who) {
  if (s->fd < 0 || s->eof) {
    s->eof = true;
    return 0;
  }
  if (s->rerr) return cio__fail(s->rerr, "%s: %s (earlier)", who, cio_strerror(s->rerr));
  int rc = reserve(s, room < 4096 ? 4096 : room);
  if (rc < 0) return rc;
  if ((rc = cio__coop(t)) < 0) return rc;
#ifdef CIO_HAVE_URING
  /* On io_uring a socket's data arrives through its multishot receive
   * (no submission, no system call per receive). */
  bool kernel = !s->transport && s->is_sock && cio__fd_kernel_reads(s->loop);
  if (kernel) {
    ssize_t n = ms_read(s, t, s->rbuf + s->rend, s->rcap - s->rend, who);
    if (n > 0) s->rend += (size_t)n;
    if (n != -EAGAIN) return n;
  }
#else
  const bool kernel = false;
#endif
  if (!s->transport && !kernel && (rc = cio__fd_wait_unless_ready(t, s->fd, who)) < 0)
    goto waitfail;
  for (;;) {
    unsigned want = CIO__POLL_IN;
    ssize_t n = kernel && cio__fd_take_drained(s->loop, s->fd)
                    ? -EAGAIN
                    : raw_read(s, s->rbuf + s->rend, s->rcap - s->rend, &want);
#ifdef CIO_HAVE_URING
    if (n == -EAGAIN && kernel) {
      n = cio__fd_recv_kernel(t, s->fd, s->rbuf + s->rend, s->rcap - s->rend, who);
      if (n == -EAGAIN) {
        kernel = false; /* the ring is full: readiness, as on epoll */
      } else if (n == -ECANCELED || n == -EBADF || n == -EBUSY) {
        rc = (int)n;
        goto waitfail;
      } else if (n < 0) {
        n = cio__fail((int)n, "cio_stream read(fd %d): %s", s->fd, strerror((int)-n));
      }
    }
#endif
    if (n > 0) {
      s->rend += (size_t)n;
      return n;
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    if (n != -EAGAIN) {
      s->rerr = (int)n;
      return n;
    }
    rc = wait_fd(s, t, want, who);
    if (rc < 0) goto waitfail;
  }
waitfail:
  /* The fd was closed under us (close/abort from another task): EOF. */
  if (rc == -EBADF && s->fd < 0) {
    s->eof = true;
    return 0;
  }
  return rc;
}

static int begin_read(cio_stream *s, struct cio_task **t, const char *who) {
  if (!s) return bad_stream(who);
  int rc = need_task(who, t);
  if (rc < 0) return rc;
  if (!s->can_read) return cio__fail(-EBADF, "%s: the stream's fd is write-only", who);
  if (s->reading)
    return cio__fail(-EBUSY, "%s: another task is already reading this stream", who);
  bind_loop(s);
  s->reading = true;
  /* The previous call's line pointer may point into the buffer until now:
   * only here may an empty buffer be rewound or a big one given back. */
  if (s->rstart == s->rend) {
    s->rstart = s->rend = 0;
    if (s->rcap > RBUF_KEEP) drop_rbuf(s);
  }
  return 0;
}

static void end_read(cio_stream *s) { s->reading = false; }

static ssize_t do_read(cio_stream *s, void *buf, size_t n) {
  const char *who = "cio_stream_read";
  struct cio_task *t;
  if (s && !buf && n) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if (s && n > SSIZE_MAX) return cio__fail(-EINVAL, "%s: n is negative (or too large)", who);
  int rc = begin_read(s, &t, who);
  if (rc < 0) return rc;
  ssize_t r = 0;
  if (n == 0) goto out;
  if (buffered(s) == 0) {
    if (n >= DIRECT_READ && !s->eof && s->fd >= 0 && !s->rerr) {
      /* Nothing buffered: straight into the caller's buffer (nothing can be
       * lost: a cancelled wait has read nothing). */
      if ((r = cio__coop(t)) < 0) goto out;
#ifdef CIO_HAVE_URING
      if (!s->transport && s->is_sock && cio__fd_kernel_reads(s->loop) &&
          (r = ms_read(s, t, buf, n, who)) != -EAGAIN)
        goto out;
#endif
      if (!s->transport && (r = cio__fd_wait_unless_ready(t, s->fd, who)) < 0) goto badf;
      for (;;) {
        unsigned want = CIO__POLL_IN;
        r = raw_read(s, buf, n, &want);
        if (r > 0) goto out;
        if (r == 0) {
          s->eof = true;
          goto out;
        }
        if (r != -EAGAIN) {
          s->rerr = (int)r;
          goto out;
        }
        if ((r = wait_fd(s, t, want, who)) < 0) goto badf;
      }
    badf:
      if (r == -EBADF && s->fd < 0) {
        s->eof = true;
        r = 0;
      }
      goto out;
    }
    r = fill(s, t, 0, who);
    if (r <= 0) goto out;
  }
  r = (ssize_t)(buffered(s) < n ? buffered(s) : n);
  memcpy(buf, s->rbuf + s->rstart, (size_t)r);
  s->rstart += (size_t)r;
out:
  end_read(s);
  return r;
}

static int do_read_all(cio_stream *s, char **data, size_t *len) {
  const char *who = "cio_stream_read_all";
  if (data) *data = NULL;
  if (len) *len = 0;
  if (s && (!data || !len)) return cio__fail(-EINVAL, "%s: data or len is NULL", who);
  struct cio_task *t;
  int rc = begin_read(s, &t, who);
  if (rc < 0) return rc;
  for (;;) {
    size_t room = buffered(s) < 65536 ? 65536 : buffered(s);
    ssize_t r = fill(s, t, room, who);
    if (r < 0) {
      rc = (int)r;
      goto out;
    }
    if (r == 0) break;
  }
  /* Hand the buffer itself over. */
  size_t n = buffered(s);
  if ((rc = reserve(s, 1)) < 0) goto out;
  if (s->rstart) {
    memmove(s->rbuf, s->rbuf + s->rstart, n);
    s->rstart = 0;
    s->rend = n;
  }
  s->rbuf[n] = '\0';
  *data = s->rbuf;
  *len = n;
  s->rbuf = NULL;
  s->rcap = s->rstart = s->rend = 0;
  rc = 0;
out:
  end_read(s);
  return rc;
}

/* The readuntil core (asyncio's algorithm). On success returns the length
 * through the end of the match with *mstart the match's start; on
 * CIO_ELIMITOVERRUN *consumed is asyncio's e.consumed. Consumes nothing. */
static ssize_t until_core(cio_stream *s, struct cio_task *t, const char *const *seps,
                          const size_t *lens, size_t nseps, size_t *which, size_t *mstart,
                          size_t *consumed, const char *who) {
  size_t minlen = SIZE_MAX, maxlen = 0;
  for (size_t i = 0; i < nseps; i++) {
    if (lens[i] < minlen) minlen = lens[i];
    if (lens[i] > maxlen) maxlen = lens[i];
  }
  size_t limit = s->opts.limit, offset = 0;
  for (;;) {
    size_t buflen = buffered(s);
    if (buflen >= offset && buflen - offset >= minlen) {
      const char *base = s->rbuf + s->rstart;
      size_t best_end = SIZE_MAX, best_start = 0, best_i = 0;
      for (size_t i = 0; i < nseps; i++) {
        const char *p = memmem(base + offset, buflen - offset, seps[i], lens[i]);
        if (!p) continue;
        size_t st = (size_t)(p - base), end = st + lens[i];
        if (end < best_end || (end == best_end && lens[i] < lens[best_i])) {
          best_end = end;
          best_start = st;
          best_i = i;
        }
      }
      if (best_end != SIZE_MAX) {
        if (best_start > limit) {
          *consumed = best_start;
          return cio__fail(CIO_ELIMITOVERRUN,
                           "%s: separator found, but the chunk (%zu bytes) is longer than the "
                           "limit (%zu)", who, best_start, limit);
        }
        *mstart = best_start;
        if (which) *which = best_i;
        return (ssize_t)best_end;
      }
      offset = buflen + 1 > maxlen ? buflen + 1 - maxlen : 0;
      if (offset > limit) {
        *consumed = offset;
        return cio__fail(CIO_ELIMITOVERRUN,
                         "%s: separator not found within the limit (%zu bytes); the data stays "
                         "in the buffer", who, limit);
      }
    }
    if (s->eof || s->fd < 0) {
      return cio__fail(CIO_EINCOMPLETE,
                       "%s: end of stream before the separator (%zu bytes stay in the buffer)",
                       who, buflen);
    }
    ssize_t r = fill(s, t, 0, who);
    if (r < 0) return r;
  }
}

static ssize_t do_until(cio_stream *s, const void *const *seps, const size_t *seplens,
                        size_t nseps, const char **out, size_t *which, const char *who) {
  if (out) *out = NULL;
  if (!s) return bad_stream(who);
  if (!out || !seps || !nseps) return cio__fail(-EINVAL, "%s: out or separators NULL, or none", who);
  size_t lens_local[8];
  size_t *lens = nseps <= 8 ? lens_local : NULL;
  if (!lens) {
    lens = malloc(nseps * sizeof *lens);
    if (!lens) return cio__fail_static(-ENOMEM, "cio_stream_readuntil_any: out of memory");
  }
  ssize_t r;
  for (size_t i = 0; i < nseps; i++) {
    if (!seps[i]) {
      r = cio__fail(-EINVAL, "%s: separator %zu is NULL", who, i);
      goto done;
    }
    lens[i] = seplens ? seplens[i] : strlen(seps[i]);
    if (!lens[i]) {
      r = cio__fail(-EINVAL, "%s: separator %zu is empty", who, i);
      goto done;
    }
  }
  struct cio_task *t;
  if ((r = begin_read(s, &t, who)) < 0) goto done;
  size_t mstart = 0, consumed = 0;
  r = until_core(s, t, (const char *const *)seps, lens, nseps, which, &mstart, &consumed, who);
  if (r >= 0) {
    *out = s->rbuf + s->rstart;
    s->rstart += (size_t)r;
  }
  end_read(s);
done:
  if (lens != lens_local) free(lens);
  return r;
}

static ssize_t do_readline(cio_stream *s, const char **line) {
  const char *who = "cio_stream_readline";
  if (line) *line = NULL;
  if (s && !line) return cio__fail(-EINVAL, "%s: line is NULL", who);
  struct cio_task *t;
  int rc = begin_read(s, &t, who);
  if (rc < 0) return rc;
  static const char nl[] = "\n";
  const char *seps[1] = {nl};
  size_t lens[1] = {1}, mstart = 0, consumed = 0;
  ssize_t r = until_core(s, t, seps, lens, 1, NULL, &mstart, &consumed, who);
  if (r >= 0) {
    *line = s->rbuf + s->rstart;
    s->rstart += (size_t)r;
  } else if (r == CIO_EINCOMPLETE) {
    /* asyncio: the partial line at EOF is a line; then b"". */
    r = (ssize_t)buffered(s);
    *line = r ? s->rbuf + s->rstart : "";
    s->rstart = s->rend;
  } else if (r == CIO_ELIMITOVERRUN) {
    /* asyncio: drop the line through its "\n" if that is here, else drop
     * everything buffered. */
    size_t have = buffered(s);
    if (consumed < have && s->rbuf[s->rstart + consumed] == '\n')
      s->rstart += consumed + 1;
    else
      s->rstart = s->rend;
    r = cio__fail(CIO_ELIMITOVERRUN, "%s: line longer than the limit (%zu bytes); discarded",
                  who, s->opts.limit);
  }
  end_read(s);
  return r;
}

static int do_readexactly(cio_stream *s, void *buf, size_t n) {
  const char *who = "cio_stream_readexactly";
  if (s && !buf && n) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if (s && n > SSIZE_MAX) return cio__fail(-EINVAL, "%s: n is negative (or too large)", who);
  struct cio_task *t;
  int rc = begin_read(s, &t, who);
  if (rc < 0) return rc;
  while (buffered(s) < n) {
    if (s->eof || s->fd < 0) {
      rc = cio__fail(CIO_EINCOMPLETE,
                     "%s: end of stream after %zu of %zu bytes (they stay in the buffer)", who,
                     buffered(s), n);
      goto out;
    }
    ssize_t r = fill(s, t, n - buffered(s), who);
    if (r < 0) {
      rc = (int)r;
      goto out;
    }
  }
  if (n) memcpy(buf, s->rbuf + s->rstart, n);
  s->rstart += n;
out:
  end_read(s);
  return rc;
}

/* ---- the public reading calls, with and without a timeout ----------------------------- */

enum { OP_READ, OP_READALL, OP_LINE, OP_EXACT, OP_UNTIL, OP_DRAIN, OP_CLOSED };

struct op {
  int kind;
  cio_stream *s;
  void *buf;
  size_t n;
  char **data;
  size_t *len;
  const char **out;
  const void *const *seps;
  const size_t *lens;
  size_t nseps;
  size_t *which;
  const char *who;
};

static int do_drain(cio_stream *s);
static int do_wait_closed(cio_stream *s);

static ssize_t run_op(const struct op *o) {
  switch (o->kind) {
  case OP_READ: return do_read(o->s, o->buf, o->n);
  case OP_READALL: return do_read_all(o->s, o->data, o->len);
  case OP_LINE: return do_readline(o->s, o->out);
  case OP_EXACT: return do_readexactly(o->s, o->buf, o->n);
  case OP_UNTIL: return do_until(o->s, o->seps, o->lens, o->nseps, o->out, o->which, o->who);
  case OP_DRAIN: return do_drain(o->s);
  default: return do_wait_closed(o->s);
  }
}

static ssize_t timed(const struct op *o, double timeout) {
  if (isnan(timeout)) return cio__fail(-EINVAL, "%s: timeout is NaN", o->who);
  cio_timeout to;
  int rc = cio_timeout_enter(&to, timeout);
  if (rc < 0) return rc;
  ssize_t r = run_op(o);
  rc = cio_timeout_exit(&to, r < 0 ? (int)r : 0);
  return rc < 0 ? rc : r;
}

ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n) { return do_read(s, buf, n); }
ssize_t cio_stream_read_timeout(cio_stream *s, void *buf, size_t n, double timeout) {
  struct op o = {.kind = OP_READ, .s = s, .buf = buf, .n = n, .who = "cio_stream_read_timeout"};
  return timed(&o, timeout);
}

int cio_stream_read_all(cio_stream *s, char **data, size_t *len) {
  return do_read_all(s, data, len);
}
int cio_stream_read_all_timeout(cio_stream *s, char **data, size_t *len, double timeout) {
  struct op o = {.kind = OP_READALL, .s = s, .data = data, .len = len,
                 .who = "cio_stream_read_all_timeout"};
  return (int)timed(&o, timeout);
}

ssize_t cio_stream_readline(cio_stream *s, const char **line) { return do_readline(s, line); }
ssize_t cio_stream_readline_timeout(cio_stream *s, const char **line, double timeout) {
  struct op o = {.kind = OP_LINE, .s = s, .out = line, .who = "cio_stream_readline_timeout"};
  return timed(&o, timeout);
}

int cio_stream_readexactly(cio_stream *s, void *buf, size_t n) {
  return do_readexactly(s, buf, n);
}
int cio_stream_readexactly_timeout(cio_stream *s, void *buf, size_t n, double timeout) {
  struct op o = {.kind = OP_EXACT, .s = s, .buf = buf, .n = n,
                 .who = "cio_stream_readexactly_timeout"};
  return (int)timed(&o, timeout);
}

ssize_t cio_stream_readuntil(cio_stream *s, const void *sep, size_t seplen, const char **out) {
  const void *seps[1] = {sep};
  size_t lens[1] = {seplen};
  return do_until(s, seps, lens, 1, out, NULL, "cio_stream_readuntil");
}
ssize_t cio_stream_readuntil_timeout(cio_stream *s, const void *sep, size_t seplen,
                                     const char **out, double timeout) {
  const void *seps[1] = {sep};
  size_t lens[1] = {seplen};
  struct op o = {.kind = OP_UNTIL, .s = s, .seps = seps, .lens = lens, .nseps = 1, .out = out,
                 .who = "cio_stream_readuntil_timeout"};
  return timed(&o, timeout);
}

ssize_t cio_stream_readuntil_any(cio_stream *s, const void *const *seps, const size_t *seplens,
                                 size_t nseps, const char **out, size_t *which) {
  return do_until(s, seps, seplens, nseps, out, which, "cio_stream_readuntil_any");
}
ssize_t cio_stream_readuntil_any_timeout(cio_stream *s, const void *const *seps,
                                         const size_t *seplens, size_t nseps, const char **out,
                                         size_t *which, double timeout) {
  struct op o = {.kind = OP_UNTIL, .s = s, .seps = seps, .lens = seplens, .nseps = nseps,
                 .out = out, .which = which, .who = "cio_stream_readuntil_any_timeout"};
  return timed(&o, timeout);
}

bool cio_stream_at_eof(const cio_stream *s) {
  return s && (s->eof || s->fd < 0) && buffered(s) == 0;
}
size_t cio_stream_buffered(const cio_stream *s) { return s ? buffered(s) : 0; }
size_t cio_stream_limit(const cio_stream *s) { return s ? s->opts.limit : 0; }

/* ---- writing ---------------------------------------------------------------------- */

static void on_writable(void *arg);
static void on_retry(void *arg);

/* The connection failed while writing: drop the queue, remember the error,
 * wake the drainers. The fd stays open for the reader (bytes the kernel
 * holds are still readable) until close or free. */
static void broken(cio_stream *s, int err) {
  if (!s->werr) s->werr = err;
  s->wstart = s->wend = 0;
  s->wflight = 0; /* an io_uring send still in flight ends unheeded */
  stop_flushing(s);
  unpause(s);
  cio_event_set(&s->empty_ev);
  cio_event_set(&s->closed_ev);
}

static void arm_flush(cio_stream *s, unsigned want);

/* Send the EOF (shutdown(SHUT_WR), a transport's write_eof such as TLS
 * close_notify, or closing a pipe's write end). Returns false when the
 * transport must wait (-EAGAIN): the flush machinery is armed and calls
 * again. */
static bool send_eof(cio_stream *s) {
  if (s->eof_sent || s->fd < 0) {
    s->eof_wanted = false;
    return true;
  }
  if (s->transport) {
    unsigned want = CIO__POLL_OUT;
    int r = s->transport->ops->write_eof(s->transport, &want);
    if (r == -EAGAIN) {
      arm_flush(s, want);
      return false;
    }
    s->eof_sent = true;
    s->eof_wanted = false;
    if (r < 0) broken(s, r);
    return true;
  }
  s->eof_sent = true;
  s->eof_wanted = false;
  if (s->is_sock) {
    if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) broken(s, -errno);
  } else {
    close_fd(s); /* a pipe's write end ends by being closed */
  }
  return true;
}

/* A transport stream being closed: bounded by tls_shutdown_timeout
 * (asyncio's ssl_shutdown_timeout), then aborted. */
static void on_shutdown_timeout(void *arg) {
  cio_stream *s = arg;
  cio_handle_unref(s->shut_timer);
  s->shut_timer = NULL;
  s->wstart = s->wend = 0;
  /* As asyncio's "SSL shutdown timed out": wait_closed says the close was
   * cut short (bytes or the close_notify were dropped). */
  if (!s->werr) {
    s->werr = -ETIMEDOUT;
    s->shut_timed_out = true;
  }
  close_fd(s);
}

static void start_shutdown_timer(cio_stream *s) {
  if (s->transport && !s->shut_timer && s->loop &&
      cio_call_later(s->loop, s->opts.tls_shutdown_timeout, on_shutdown_timeout, s,
                     &s->shut_timer) < 0)
    s->shut_timer = NULL;
}

/* Everything flushed: what was waiting for that. */
static void flushed(cio_stream *s) {
  s->wstart = s->wend = 0;
  if (s->wcap > WBUF_KEEP) drop_wbuf(s);
  cio_event_set(&s->empty_ev);
  unpause(s);
  bool eof = s->eof_wanted || (s->closing && s->transport && !s->eof_sent && !s->werr);
  if (eof && !send_eof(s)) return; /* the transport waits: called again */
  if (s->closing && s->fd >= 0) close_fd(s);
}

static void arm_flush(cio_stream *s, unsigned want) {
  if (s->fd < 0) return;
#ifdef CIO_HAVE_URING
  if (s->sop && s->sop->busy) return; /* the send's completion flushes on */
#endif
  if (want == CIO__POLL_IN) {
    /* A transport that must read before it can write (rare): poll. */
    if (s->cb_armed) {
      writer_off(s);
      s->cb_armed = false;
    }
    if (!s->retry && cio_call_later(s->loop, 0.001, on_retry, s, &s->retry) < 0) s->retry = NULL;
    return;
  }
  if (!s->cb_armed) {
    int rc = writer_on(s);
    if (rc == -EBUSY) {
      /* A task waits on the fd's writer slot itself (a transport read that
       * must write first): poll until it is done. */
      if (!s->retry && cio_call_later(s->loop, 0.001, on_retry, s, &s->retry) < 0) s->retry = NULL;
      return;
    }
    if (rc < 0) {
      broken(s, rc);
      return;
    }
    s->cb_armed = true;
  }
}

/* Send from the queue until it is empty or the kernel is full. */
static void flush(cio_stream *s) {
#ifdef CIO_HAVE_URING
  if (s->sop && s->sop->busy) return; /* its completion goes on */
  if (wqueued(s) && kernel_sends(s) && submit_send(s)) {
    if (s->cb_armed) {
      cio_remove_writer(s->loop, s->fd);
      s->cb_armed = false;
    }
    return;
  }
#endif
  while (wqueued(s)) {
    struct iovec iov = {s->wbuf + s->wstart, wqueued(s)};
    unsigned want = CIO__POLL_OUT;
    ssize_t r = raw_writev(s, &iov, 1, &want);
    if (r == -EAGAIN) {
      arm_flush(s, want);
      return;
    }
    if (r < 0) {
      broken(s, (int)r);
      return;
    }
    s->wstart += (size_t)r;
    if (s->paused && queued(s) <= s->low) unpause(s);
    if (r == 0 || ((size_t)r < iov.iov_len && !s->transport)) {
      arm_flush(s, CIO__POLL_OUT); /* the kernel is full: wait for room */
      return;
    }
  }
  if (s->cb_armed) {
    writer_off(s);
    s->cb_armed = false;
  }
  flushed(s);
}

static void on_writable(void *arg) { flush(arg); }

static void on_retry(void *arg) {
  cio_stream *s = arg;
  cio_handle_unref(s->retry);
  s->retry = NULL;
  flush(s);
}

static int write_check(cio_stream *s, const char *who) {
  if (!s) return bad_stream(who);
  if (!s->can_write) return cio__fail(-EBADF, "%s: the stream's fd is read-only", who);
  if (s->werr) return cio__fail(s->werr, "%s: the connection failed earlier: %s", who,
                                cio_strerror(s->werr));
  if (s->closing || s->eof_wanted || s->eof_sent || s->fd < 0)
    return cio__fail(-EPIPE, "%s: the stream is closed for writing (close or write_eof)", who);
  return 0;
}

static int grow_wbuf(cio_stream *s, size_t more) {
  size_t have = wqueued(s);
  if (s->wstart && (s->wcap - s->wend < more)) {
    memmove(s->wbuf, s->wbuf + s->wstart, have);
    s->wstart = 0;
    s->wend = have;
  }
  if (s->wcap - s->wend >= more) return 0;
  size_t cap = s->wcap ? s->wcap : 16384;
  while (cap - have < more) {
    if (cap > SIZE_MAX / 2) return cio__fail_static(-ENOMEM, "cio_stream_write: too much queued");
    cap *= 2;
  }
  char *nb = realloc(s->wbuf, cap);
  if (!nb) return cio__fail_static(-ENOMEM, "cio_stream_write: out of memory for the queue");
  s->wbuf = nb;
  s->wcap = cap;
  return 0;
}

#ifdef CIO_HAVE_URING
/* Make room for n bytes in front of the queue: on return they are
 * [wstart, wstart + n). */
static int grow_wbuf_front(cio_stream *s, size_t n) {
  if (s->wstart >= n) {
    s->wstart -= n;
    return 0;
  }
  size_t have = wqueued(s);
  if (have + n > s->wcap) {
    size_t cap = s->wcap ? s->wcap : 16384;
    while (cap < have + n) cap *= 2;
    char *nb = realloc(s->wbuf, cap);
    if (!nb) return -ENOMEM;
    s->wbuf = nb;
    s->wcap = cap;
  }
  memmove(s->wbuf + n, s->wbuf + s->wstart, have);
  s->wstart = 0;
  s->wend = have + n;
  return 0;
}
#endif

static int write_iov(cio_stream *s, const struct iovec *iov, int cnt, const char *who) {
  int rc = write_check(s, who);
  if (rc < 0) return rc;
  size_t total = 0;
  for (int i = 0; i < cnt; i++) {
    if (!iov[i].iov_base && iov[i].iov_len) return cio__fail(-EINVAL, "%s: buffer %d is NULL", who, i);
    if (iov[i].iov_len > SSIZE_MAX || total + iov[i].iov_len > SSIZE_MAX)
      return cio__fail(-EINVAL, "%s: a negative (or too large) size", who);
    total += iov[i].iov_len;
  }
  if (!total) return 0;
  if (!bind_loop(s)) return cio__fail(CIO_ENOTRUNNING, "%s: no running event loop", who);
  size_t done = 0;
  unsigned want = CIO__POLL_OUT;
#ifdef CIO_HAVE_URING
  bool batched = kernel_sends(s);
#else
  const bool batched = false;
#endif
  if (!queued(s) && !batched) {
    ssize_t r = raw_writev(s, iov, cnt > IOV_MAX ? IOV_MAX : cnt, &want);
    if (r == -EAGAIN) {
      r = 0;
    } else if (r < 0) {
      broken(s, (int)r);
      return (int)r;
    }
    done = (size_t)r;
    if (done == total) return 0;
  }
  if ((rc = grow_wbuf(s, total - done)) < 0) {
    if (done) broken(s, rc); /* the stream is cut: say so */
    return rc;
  }
  size_t skip = done;
  for (int i = 0; i < cnt; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(s->wbuf + s->wend, (const char *)iov[i].iov_base + skip, l - skip);
    s->wend += l - skip;
    skip = 0;
  }
  cio_event_clear(&s->empty_ev);
  if (!s->paused && queued(s) > s->high) {
    s->paused = true;
    cio_event_clear(&s->drain_ev);
  }
#ifdef CIO_HAVE_URING
  if (batched) {
    /* The send goes to the kernel with the loop's next io_uring_enter. */
    if (!(s->sop && s->sop->busy)) flush(s);
    return 0;
  }
#endif
  if (!s->cb_armed && !s->retry) arm_flush(s, done || !s->transport ? CIO__POLL_OUT : want);
  return 0;
}

int cio_stream_write(cio_stream *s, const void *buf, size_t n) {
  struct iovec iov = {(void *)buf, n};
  return write_iov(s, &iov, 1, "cio_stream_write");
}

int cio_stream_writev(cio_stream *s, const struct iovec *iov, int iovcnt) {
  if (s && ((!iov && iovcnt > 0) || iovcnt < 0))
    return cio__fail(-EINVAL, "cio_stream_writev: bad iov or iovcnt %d", iovcnt);
  return write_iov(s, iov, iovcnt, "cio_stream_writev");
}

int cio_stream_writelines(cio_stream *s, const char *const *lines, size_t n) {
  const char *who = "cio_stream_writelines";
  if (s && !lines && n) return cio__fail(-EINVAL, "%s: lines is NULL", who);
  struct iovec local[16];
  struct iovec *iov = n <= 16 ? local : malloc(n * sizeof *iov);
  if (!iov) return cio__fail_static(-ENOMEM, "cio_stream_writelines: out of memory");
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (!lines[i]) {
      rc = cio__fail(-EINVAL, "%s: line %zu is NULL", who, i);
      break;
    }
    iov[i].iov_base = (void *)lines[i];
    iov[i].iov_len = strlen(lines[i]);
  }
  if (rc == 0) rc = n > INT32_MAX ? cio__fail(-EINVAL, "%s: too many lines", who)
                                  : write_iov(s, iov, (int)n, who);
  if (iov != local) free(iov);
  return rc;
}

static int do_drain(cio_stream *s) {
  const char *who = "cio_stream_drain";
  if (!s) return bad_stream(who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!s->can_write) return cio__fail(-EBADF, "%s: the stream's fd is read-only", who);
  for (;;) {
    if (s->werr) return cio__fail(s->werr, "%s: %s", who, cio_strerror(s->werr));
    if (s->aborted) return cio__fail(-ECONNRESET, "%s: connection lost (aborted)", who);
    if (!s->paused) return 0;
    rc = cio_event_wait(&s->drain_ev);
    if (rc < 0) return rc;
  }
}

int cio_stream_drain(cio_stream *s) { return do_drain(s); }
int cio_stream_drain_timeout(cio_stream *s, double timeout) {
  struct op o = {.kind = OP_DRAIN, .s = s, .who = "cio_stream_drain_timeout"};
  return (int)timed(&o, timeout);
}

int cio_stream_write_eof(cio_stream *s) {
  const char *who = "cio_stream_write_eof";
  if (!s) return bad_stream(who);
  if (s->eof_wanted || s->eof_sent) return 0;
  if (s->werr) return cio__fail(s->werr, "%s: %s", who, cio_strerror(s->werr));
  if (s->fd < 0) return cio__fail(-EBADF, "%s: the stream is closed", who);
  if (!s->can_eof) return cio__fail(-ENOTSUP, "%s: this fd cannot be half-closed", who);
  s->eof_wanted = true;
  if (!queued(s) && bind_loop(s)) send_eof(s);
  return s->werr ? s->werr : 0;
}

bool cio_stream_can_write_eof(const cio_stream *s) {
  return s && s->fd >= 0 && (s->can_eof || (s->transport && s->can_write));
}

int cio_stream_close(cio_stream *s) {
  if (!s) return bad_stream("cio_stream_close");
  if (s->closing) return 0;
  s->closing = true;
  bind_loop(s);
  if (!queued(s) || s->werr) {
    s->wstart = s->wend = 0;
    if (s->transport && !s->eof_sent && !s->werr && s->fd >= 0 && s->loop && !send_eof(s)) {
      start_shutdown_timer(s); /* close_notify waits for room */
      return 0;
    }
    close_fd(s);
  } else {
    start_shutdown_timer(s);
    if (!s->cb_armed && !s->retry) arm_flush(s, CIO__POLL_OUT);
  }
  return 0;
}

int cio_stream_abort(cio_stream *s) {
  if (!s) return bad_stream("cio_stream_abort");
  if (s->fd >= 0) s->aborted = true;
  s->wstart = s->wend = 0;
  close_fd(s);
  return 0;
}

static int do_wait_closed(cio_stream *s) {
  const char *who = "cio_stream_wait_closed";
  if (!s) return bad_stream(who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  while (!cio_event_is_set(&s->closed_ev)) {
    rc = cio_event_wait(&s->closed_ev);
    if (rc < 0) return rc;
  }
  if (s->shut_timed_out)
    return cio__fail(s->werr, "%s: the close did not finish within tls_shutdown_timeout (%g s): "
                     "what was not yet written was dropped", who, s->opts.tls_shutdown_timeout);
  if (s->werr) return cio__fail(s->werr, "%s: %s", who, cio_strerror(s->werr));
  return 0;
}

int cio_stream_wait_closed(cio_stream *s) { return do_wait_closed(s); }
int cio_stream_wait_closed_timeout(cio_stream *s, double timeout) {
  struct op o = {.kind = OP_CLOSED, .s = s, .who = "cio_stream_wait_closed_timeout"};
  return (int)timed(&o, timeout);
}

bool cio_stream_is_closing(const cio_stream *s) {
  return !s || s->closing || s->fd < 0 || s->werr;
}

size_t cio_stream_write_buffer_size(const cio_stream *s) { return s ? queued(s) : 0; }

int cio_stream_set_write_buffer_limits(cio_stream *s, size_t high, size_t low) {
  const char *who = "cio_stream_set_write_buffer_limits";
  if (!s) return bad_stream(who);
  if (!high && !low) {
    high = CIO_STREAM_WRITE_HIGH;
    low = CIO_STREAM_WRITE_LOW;
  } else if (!high) {
    high = 4 * low;
  } else if (!low) {
    low = high / 4;
  }
  if (low > high) return cio__fail(-EINVAL, "%s: low (%zu) is above high (%zu)", who, low, high);
  s->high = high;
  s->low = low;
  if (!s->paused && queued(s) > high) {
    s->paused = true;
    cio_event_clear(&s->drain_ev);
  } else if (s->paused && queued(s) <= low) {
    unpause(s);
  }
  return 0;
}

static int addr_of(const cio_stream *s, struct sockaddr *addr, socklen_t *len, bool peer,
                   const char *who) {
  if (!s || !addr || !len) return cio__fail(-EINVAL, "%s: NULL argument", who);
  if (s->fd < 0) return cio__fail(-EBADF, "%s: the stream is closed", who);
  if (!s->is_sock) return cio__fail(-ENOTSOCK, "%s: the stream's fd is not a socket", who);
  int r = peer ? getpeername(s->fd, addr, len) : getsockname(s->fd, addr, len);
  if (r < 0) return cio__fail(-errno, "%s(fd %d): %s", who, s->fd, strerror(errno));
  return 0;
}

int cio_stream_peername(const cio_stream *s, struct sockaddr *addr, socklen_t *len) {
  return addr_of(s, addr, len, true, "cio_stream_peername");
}
int cio_stream_sockname(const cio_stream *s, struct sockaddr *addr, socklen_t *len) {
  return addr_of(s, addr, len, false, "cio_stream_sockname");
}

int cio_stream_fd(const cio_stream *s) {
  if (!s) return bad_stream("cio_stream_fd");
  return s->fd >= 0 ? s->fd : cio__fail(-EBADF, "cio_stream_fd: the stream is closed");
}

bool cio_stream_is_tls(const cio_stream *s) { return s && s->transport && s->is_sock; }

/* ---- TLS seam (src/transport.h) ------------------------------------------------------ */

int cio__stream_secure(cio_stream *s, struct cio_tls_context *ctx, const char *server_hostname,
                       bool server_side) {
  return cio__tls_secure_stream(s, ctx, server_hostname, server_side,
                                server_side ? "TLS server handshake" : "TLS client handshake");
}

/* The stream's transport, NULL for a plain stream (src/tls.c's accessors). */
struct cio__transport *cio__stream_transport(const cio_stream *s) { return s ? s->transport : NULL; }

int cio_stream_start_tls(cio_stream *s, struct cio_tls_context *ctx,
                         const char *server_hostname) {
  const char *who = "cio_stream_start_tls";
  if (!s || !ctx) return cio__fail(-EINVAL, "%s: stream or context is NULL", who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (s->transport && !s->is_sock) return cio__fail(-ENOTSUP, "%s: a file stream has no TLS", who);
  if (s->transport) return cio__fail(-EALREADY, "%s: the stream already runs TLS", who);
  if (s->reading) return cio__fail(-EBUSY, "%s: a read is in progress", who);
  if (s->fd < 0) return cio__fail(-EBADF, "%s: the stream is closed", who);
  s->reading = true; /* no read may start during the handshake */
  rc = cio__stream_flush(s);
#ifdef CIO_HAVE_URING
  /* TLS reads the fd itself: end the multishot receive, and keep what it
   * had queued in the buffer (the handshake takes it from there). */
  if (rc == 0 && s->loop && cio__fd_kernel_reads(s->loop) &&
      (rc = cio__fd_recv_ms_stop(t, s->fd)) == 0) {
    for (;;) {
      if ((rc = reserve(s, 4096)) < 0) break;
      size_t n = cio__fd_recv_ms_take(s->loop, s->fd, s->rbuf + s->rend, s->rcap - s->rend);
      if (!n) break;
      s->rend += n;
    }
  }
#endif
  if (rc == 0) rc = cio__stream_secure(s, ctx, server_hostname, false);
  s->reading = false;
  return rc;
}

int cio__stream_fd(const cio_stream *s) { return s ? s->fd : -1; }
const cio_stream_opts *cio__stream_opts(const cio_stream *s) { return s ? &s->opts : NULL; }
void cio__stream_set_transport(cio_stream *s, struct cio__transport *t) { s->transport = t; }

size_t cio__stream_unread(cio_stream *s, const char **data) {
  if (data) *data = s->rbuf ? s->rbuf + s->rstart : "";
  return buffered(s);
}

void cio__stream_consume(cio_stream *s, size_t n) {
  if (n > buffered(s)) n = buffered(s);
  s->rstart += n;
}

int cio__stream_flush(cio_stream *s) {
  while (queued(s) && !s->werr && s->fd >= 0) {
    int rc = cio_event_wait(&s->empty_ev);
    if (rc < 0) return rc;
  }
  return s->werr ? cio__fail(s->werr, "flush: %s", cio_strerror(s->werr)) : 0;
}

/* Server side (server.c): the options in force. */
void cio__stream_set_opts(cio_stream *s, const cio_stream_opts *o) {
  s->opts = *o;
  s->high = o->write_high;
  s->low = o->write_low;
}

int cio__stream_fill_opts(cio_stream_opts *o, const cio_stream_opts *in, const char *who) {
  return fill_opts(o, in, who);
}
