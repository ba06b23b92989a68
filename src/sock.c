/* Layer 8: sockets, name resolution, TCP and Unix helpers. See
 * include/cio/io.h.
 *
 * Every call tries the system call first and waits for readiness only on
 * EAGAIN (Redis, asyncio's sock_*): with data waiting, a receive is one
 * recv() and no suspension. The waits are cio__fd_wait (io.c): a future in
 * this frame, a registration kept between calls.
 */
#include "executor.h"
#include "io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int need_task(const char *who, struct cio_task **t) {
  *t = cio__current();
  if (!*t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  return 0;
}

static int sys_fail(int err, const char *who, int fd) {
  return cio__fail(-err, "%s(fd %d): %s", who, fd, strerror(err));
}

/* accept(2) and connect(2) would block the whole loop on a blocking socket. */
static int need_nonblocking(int fd, const char *who) {
  if (fd < 0) return cio__fail(-EBADF, "%s: fd %d is not a valid file descriptor", who, fd);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return sys_fail(errno, who, fd);
  if (!(fl & O_NONBLOCK))
    return cio__fail(-EINVAL, "%s(fd %d): the socket must be non-blocking "
                              "(cio_fd_set_nonblocking)", who, fd);
  return 0;
}

const char *cio__addr_str(const struct sockaddr *sa, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN];
  if (!sa) {
    snprintf(buf, len, "?");
  } else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    snprintf(buf, len, "%s", ((const struct sockaddr_un *)sa)->sun_path);
  } else {
    snprintf(buf, len, "(family %d)", sa->sa_family);
  }
  return buf;
}

/* Sleep with back-off: 5 ms doubling to `cap`. */
static int backoff(double *delay, double cap) {
  *delay = *delay > 0 ? *delay * 2 : 0.005;
  if (*delay > cap) *delay = cap;
  return cio_sleep(*delay);
}

/* ---- accept / connect -------------------------------------------------------------- */

int cio_sock_accept(int fd, struct sockaddr *addr, socklen_t *addrlen) {
  const char *who = "cio_sock_accept";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (addr && !addrlen) return cio__fail(-EINVAL, "%s: addr given without addrlen", who);
  rc = need_nonblocking(fd, who);
  if (rc < 0) return rc;
  if ((rc = cio__coop(t)) < 0) return rc;
  cio_loop *loop = t->fut.loop;
  double delay = 0;
  bool reported = false;
  for (;;) {
    int c = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      cio__fd_fresh(loop, c);
      return c;
    }
    int e = errno;
    switch (e) {
    case EAGAIN:
      rc = cio__fd_wait(t, fd, CIO__POLL_IN, who);
      if (rc < 0) return rc;
      break;
    case EINTR:
    /* The connection died in the queue, or a network error Linux passes on
     * through accept (accept(2): "treat them like EAGAIN by retrying"). */
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case ENETUNREACH:
      break;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      /* The listener stays readable: retrying at once would spin at 100%
       * CPU. Say so once, then back off until resources come back. */
      if (!reported) {
        char text[256];
        snprintf(text, sizeof text,
                 "%s(fd %d): out of %s (%s); the connection waits in the backlog, retrying "
                 "with back-off",
                 who, fd, e == EMFILE || e == ENFILE ? "file descriptors" : "memory",
                 cio_err_name(-e));
        cio_exception_context ctx = {.message = text, .code = -e, .task = t};
        cio_loop_call_exception_handler(loop, &ctx);
        reported = true;
      }
      rc = backoff(&delay, 0.25);
      if (rc < 0) return rc;
      break;
    default:
      return sys_fail(e, who, fd);
    }
  }
}

int cio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen) {
  const char *who = "cio_sock_connect";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!addr) return cio__fail(-EINVAL, "%s: addr is NULL", who);
  rc = need_nonblocking(fd, who);
  if (rc < 0) return rc;
  /* A socket about to connect is new: do not trust an old registration of
   * its number. */
  cio__fd_untrust(t->fut.loop, fd);
  char where[INET6_ADDRSTRLEN + sizeof(struct sockaddr_un) + 16];
  double delay = 0;
  for (;;) {
    if (connect(fd, addr, addrlen) == 0) return 0;
    int e = errno;
    if (e == EINPROGRESS || e == EINTR || e == EALREADY) {
      rc = cio__fd_wait(t, fd, CIO__POLL_OUT, who);
      if (rc < 0) return rc;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
      if (err == 0) return 0;
      e = err;
    } else if (e == EAGAIN && addr->sa_family == AF_UNIX) {
      /* A Unix socket's backlog is full; writability would not tell when
       * there is room again. */
      rc = backoff(&delay, 0.1);
      if (rc < 0) return rc;
      continue;
    }
    return cio__fail(-e, "%s(fd %d, %s): %s", who, fd, cio__addr_str(addr, where, sizeof where),
                     strerror(e));
  }
}

/* ---- stream data ------------------------------------------------------------------- */

#ifdef CIO_HAVE_URING
/* A receive on io_uring: recv() at once unless the last read emptied the
 * buffer; if it would block, the kernel gets the request with the caller's
 * buffer and its completion carries the data (no readiness event and no
 * second recv() per message). Data that arrives after the task was
 * cancelled is returned, and the cancellation is delivered at the task's
 * next suspension point: no byte is lost. Returns as cio_sock_recv_into, or
 * -EAGAIN when the ring cannot take the request (the caller then waits for
 * readiness). */
static ssize_t kernel_recv(struct cio_task *t, int fd, void *buf, size_t len, const char *who) {
  cio_loop *loop = t->fut.loop;
  if (!cio__fd_take_drained(loop, fd)) {
    for (;;) {
      ssize_t n = cio__sys_recv(fd, buf, len, MSG_DONTWAIT);
      if (n >= 0) {
        cio__fd_note_read(loop, fd, n > 0 && (size_t)n < len);
        return n;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return sys_fail(errno, who, fd);
      break;
    }
  }
  ssize_t n = cio__fd_recv_kernel(t, fd, buf, len, who);
  if (n >= 0 || n == -EAGAIN) return n;
  if (n == -ECANCELED || n == -EBADF || n == -EBUSY) return n; /* message set */
  return sys_fail((int)-n, who, fd);
}
#endif

ssize_t cio_sock_recv_into(int fd, void *buf, size_t len) {
  const char *who = "cio_sock_recv_into";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!buf && len) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if (len == 0) return 0;
  if ((rc = cio__coop(t)) < 0) return rc;
#ifdef CIO_HAVE_URING
  if (cio__fd_kernel_reads(t->fut.loop)) {
    ssize_t n = kernel_recv(t, fd, buf, len, who);
    if (n != -EAGAIN) return n;
  }
#endif
  if ((rc = cio__fd_wait_unless_ready(t, fd, who)) < 0) return rc;
  for (;;) {
    ssize_t n = cio__sys_recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0) {
      cio__fd_note_read(t->fut.loop, fd, n > 0 && (size_t)n < len);
      return n;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN) return sys_fail(e, who, fd);
    rc = cio__fd_wait(t, fd, CIO__POLL_IN, who);
    if (rc < 0) return rc;
  }
}

ssize_t cio_sock_recv(int fd, size_t nbytes, void **data) {
  if (!data) return cio__fail(-EINVAL, "cio_sock_recv: data is NULL");
  *data = NULL;
  if (nbytes == 0) return cio_sock_recv_into(fd, NULL, 0);
  void *buf = malloc(nbytes);
  if (!buf) return cio__fail_static(-ENOMEM, "cio_sock_recv: out of memory");
  ssize_t n = cio_sock_recv_into(fd, buf, nbytes);
  if (n <= 0) {
    free(buf);
    return n;
  }
  if ((size_t)n < nbytes / 2) {
    void *shrunk = realloc(buf, (size_t)n);
    if (shrunk) buf = shrunk;
  }
  *data = buf;
  return n;
}

int cio_sock_sendall(int fd, const void *buf, size_t len, size_t *sent) {
  const char *who = "cio_sock_sendall";
  if (sent) *sent = 0;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!buf && len) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if ((rc = cio__coop(t)) < 0) return rc;
  size_t off = 0;
  while (off < len) {
    ssize_t n = cio__sys_send(fd, (const char *)buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      bool partial = (size_t)n < len - off;
      off += (size_t)n;
      if (sent) *sent = off;
      /* A partial send filled the buffer: the next send would fail with
       * EAGAIN, so wait for room straight away. */
      if (!partial) continue;
    } else {
      int e = errno;
      if (e == EINTR) continue;
      if (e != EAGAIN)
        return cio__fail(-e, "%s(fd %d): %s after %zu of %zu bytes", who, fd, strerror(e), off,
                         len);
    }
    /* The send buffer is full: sleep until the peer has read some. */
    rc = cio__fd_wait(t, fd, CIO__POLL_OUT, who);
    if (rc < 0) return rc;
  }
  return 0;
}

/* ---- datagrams --------------------------------------------------------------------- */

ssize_t cio_sock_recvfrom_into(int fd, void *buf, size_t len, struct sockaddr *addr,
                               socklen_t *addrlen) {
  const char *who = "cio_sock_recvfrom_into";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!buf && len) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if (addr && !addrlen) return cio__fail(-EINVAL, "%s: addr given without addrlen", who);
  if ((rc = cio__coop(t)) < 0) return rc;
  socklen_t cap = addrlen ? *addrlen : 0;
  for (;;) {
    if (addrlen) *addrlen = cap;
    ssize_t n = recvfrom(fd, buf, len, MSG_DONTWAIT, addr, addrlen);
    if (n >= 0) return n;
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN) return sys_fail(e, who, fd);
    rc = cio__fd_wait(t, fd, CIO__POLL_IN, who);
    if (rc < 0) return rc;
  }
}

ssize_t cio_sock_recvfrom(int fd, size_t nbytes, void **data, struct sockaddr *addr,
                          socklen_t *addrlen) {
  if (!data) return cio__fail(-EINVAL, "cio_sock_recvfrom: data is NULL");
  *data = NULL;
  void *buf = malloc(nbytes ? nbytes : 1);
  if (!buf) return cio__fail_static(-ENOMEM, "cio_sock_recvfrom: out of memory");
  ssize_t n = cio_sock_recvfrom_into(fd, buf, nbytes, addr, addrlen);
  if (n <= 0) {
    free(buf);
    return n;
  }
  *data = buf;
  return n;
}

ssize_t cio_sock_sendto(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                        socklen_t addrlen) {
  const char *who = "cio_sock_sendto";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!buf && len) return cio__fail(-EINVAL, "%s: buf is NULL", who);
  if ((rc = cio__coop(t)) < 0) return rc;
  for (;;) {
    ssize_t n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr ? addrlen : 0);
    if (n >= 0) return n;
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN) return sys_fail(e, who, fd);
    rc = cio__fd_wait(t, fd, CIO__POLL_OUT, who);
    if (rc < 0) return rc;
  }
}

/* ---- name resolution ----------------------------------------------------------------- */

static int eai_code(int e, int err) {
  switch (e) {
  case EAI_NONAME:
#ifdef EAI_NODATA
  case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY:
#endif
    return CIO_EAI_NONAME;
  case EAI_AGAIN:
    return CIO_EAI_AGAIN;
  case EAI_FAMILY:
    return CIO_EAI_FAMILY;
  case EAI_SERVICE:
  case EAI_SOCKTYPE:
    return CIO_EAI_SERVICE;
  case EAI_BADFLAGS:
    return -EINVAL;
  case EAI_MEMORY:
    return -ENOMEM;
  case EAI_OVERFLOW:
    return -ENOSPC;
  case EAI_SYSTEM:
    return err ? -err : CIO_EAI_FAIL;
  default:
    return CIO_EAI_FAIL;
  }
}

static int gai_fail(int e, int err, const char *who, const char *host, const char *port) {
  int code = eai_code(e, err);
  return cio_raise(code, "%s(%s, %s): %s", who, host ? host : "NULL", port ? port : "NULL",
                   e == EAI_SYSTEM ? strerror(err) : gai_strerror(e));
}

struct gai_arg {
  char *host, *port;
  struct addrinfo hints;
  bool has_hints;
};

static void gai_arg_free(void *p) {
  struct gai_arg *a = p;
  free(a->host);
  free(a->port);
  free(a);
}

static void gai_drop(void *result, void *arg) {
  (void)arg;
  if (result) freeaddrinfo(result);
}

/* Runs in a worker thread. */
static int gai_job(void *p, void **result) {
  struct gai_arg *a = p;
  struct addrinfo *res = NULL;
  int e = getaddrinfo(a->host, a->port, a->has_hints ? &a->hints : NULL, &res);
  if (e) return gai_fail(e, errno, "cio_getaddrinfo", a->host, a->port);
  *result = res;
  return 0;
}

static struct addrinfo hints_copy(const struct addrinfo *h) {
  struct addrinfo c = {0};
  if (h) {
    c.ai_flags = h->ai_flags;
    c.ai_family = h->ai_family;
    c.ai_socktype = h->ai_socktype;
    c.ai_protocol = h->ai_protocol;
  }
  return c;
}

/* A numeric port must fit in 16 bits: getaddrinfo takes "99999" and
 * silently keeps its low 16 bits (34463). Service names are left to it. */
static bool port_out_of_range(const char *port) {
  if (!port || !*port) return false;
  unsigned long v = 0;
  for (const char *p = port; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > 65535) return true;
  }
  return false;
}

int cio_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                    struct addrinfo **res) {
  const char *who = "cio_getaddrinfo";
  if (res) *res = NULL;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!res) return cio__fail(-EINVAL, "%s: res is NULL", who);
  if (!host && !port) return cio__fail(-EINVAL, "%s: host and port are both NULL", who);
  if (port_out_of_range(port))
    return cio__fail(-EINVAL, "%s: port \"%s\" is out of range (0..65535)", who, port);
  /* Numeric host and port: nothing to look up, nothing blocks. */
  struct addrinfo h = hints_copy(hints);
  int numeric = AI_NUMERICHOST | AI_NUMERICSERV;
  h.ai_flags |= numeric;
  int e = getaddrinfo(host, port, &h, res);
  if (e == 0) return 0;
  *res = NULL;
  if (e != EAI_NONAME || (hints && (hints->ai_flags & numeric) == numeric))
    return gai_fail(e, errno, who, host, port);
  struct gai_arg *a = calloc(1, sizeof *a);
  if (!a || (host && !(a->host = strdup(host))) || (port && !(a->port = strdup(port)))) {
    if (a) gai_arg_free(a);
    return cio__fail_static(-ENOMEM, "cio_getaddrinfo: out of memory");
  }
  a->hints = hints_copy(hints);
  a->has_hints = hints != NULL;
  void *out = NULL;
  rc = cio__run_job(t, NULL, gai_job, a, gai_drop, gai_arg_free, &out, who);
  if (rc < 0) return rc;
  *res = out;
  return 0;
}

struct gni_arg {
  struct sockaddr_storage sa;
  socklen_t salen;
  int flags;
  bool want_host, want_serv;
};

struct gni_result {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
};

static void gni_drop(void *result, void *arg) {
  (void)arg;
  free(result);
}

static int gni_job(void *p, void **result) {
  struct gni_arg *a = p;
  struct gni_result *r = calloc(1, sizeof *r);
  if (!r) return cio_raise(-ENOMEM, "cio_getnameinfo: out of memory");
  int e = getnameinfo((struct sockaddr *)&a->sa, a->salen, a->want_host ? r->host : NULL,
                      a->want_host ? sizeof r->host : 0, a->want_serv ? r->serv : NULL,
                      a->want_serv ? sizeof r->serv : 0, a->flags);
  if (e) {
    free(r);
    return gai_fail(e, errno, "cio_getnameinfo", NULL, NULL);
  }
  *result = r;
  return 0;
}

static int copy_name(char *dst, size_t cap, const char *src, const char *what) {
  if (!dst) return 0;
  size_t n = strlen(src);
  if (n >= cap)
    return cio__fail(-ENOSPC, "cio_getnameinfo: the %s buffer (%zu bytes) is too small for \"%s\"",
                     what, cap, src);
  memcpy(dst, src, n + 1);
  return 0;
}

int cio_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, size_t hostlen,
                    char *serv, size_t servlen, int flags) {
  const char *who = "cio_getnameinfo";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!sa || salen == 0 || salen > sizeof(struct sockaddr_storage))
    return cio__fail(-EINVAL, "%s: bad address (NULL or length %u)", who, (unsigned)salen);
  if ((!host || !hostlen) && (!serv || !servlen))
    return cio__fail(-EINVAL, "%s: neither a host nor a service buffer", who);
  if (!hostlen) host = NULL;
  if (!servlen) serv = NULL;
  struct gni_result *r = NULL;
  if ((flags & (NI_NUMERICHOST | NI_NUMERICSERV)) == (NI_NUMERICHOST | NI_NUMERICSERV)) {
    /* Numbers only: no lookup, nothing blocks. */
    struct gni_result local;
    int e = getnameinfo(sa, salen, host ? local.host : NULL, host ? sizeof local.host : 0,
                        serv ? local.serv : NULL, serv ? sizeof local.serv : 0, flags);
    if (e) return gai_fail(e, errno, who, NULL, NULL);
    if ((rc = copy_name(host, hostlen, local.host, "host")) < 0) return rc;
    return copy_name(serv, servlen, local.serv, "service");
  }
  struct gni_arg *a = calloc(1, sizeof *a);
  if (!a) return cio__fail_static(-ENOMEM, "cio_getnameinfo: out of memory");
  memcpy(&a->sa, sa, salen);
  a->salen = salen;
  a->flags = flags;
  a->want_host = host != NULL;
  a->want_serv = serv != NULL;
  rc = cio__run_job(t, NULL, gni_job, a, gni_drop, free, (void **)&r, who);
  if (rc < 0) return rc;
  rc = copy_name(host, hostlen, r->host, "host");
  if (rc == 0) rc = copy_name(serv, servlen, r->serv, "service");
  free(r);
  return rc;
}

/* ---- TCP and Unix helpers ------------------------------------------------------------- */

/* Accumulates "addr: error; addr: error" for the final message. */
struct attempts {
  char text[768];
  size_t len;
  int last;
};

static void attempt_failed(struct attempts *a, const struct sockaddr *sa, int code) {
  char where[INET6_ADDRSTRLEN + 16];
  const char *msg = cio_errmsg();
  int w = snprintf(a->text + a->len, sizeof a->text - a->len, "%s%s: %s", a->len ? "; " : "",
                   cio__addr_str(sa, where, sizeof where),
                   code < 0 && code > -4000 ? strerror(-code) : (*msg ? msg : cio_strerror(code)));
  if (w > 0) a->len = a->len + (size_t)w < sizeof a->text ? a->len + (size_t)w : sizeof a->text - 1;
  a->last = code;
}

/* Resolve host:port and try each address in order: a fresh non-blocking
 * socket, then setup(fd, ai, arg) (bind+listen, or connect). Returns the
 * first fd set up, -ECANCELED at once if setup was cancelled, else the last
 * error with every attempt in the message. */
static int open_first(struct cio_task *t, const char *who, const char *host, const char *port,
                      int flags, int (*setup)(int fd, const struct addrinfo *ai, void *arg),
                      void *arg) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags};
  struct addrinfo *res;
  int rc = cio_getaddrinfo(host, port, &hints, &res);
  if (rc < 0) return rc;
  struct attempts at = {.last = -EADDRNOTAVAIL};
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      attempt_failed(&at, ai->ai_addr, -errno);
      continue;
    }
    cio__fd_fresh(t->fut.loop, fd);
    rc = setup(fd, ai, arg);
    if (rc == 0) {
      freeaddrinfo(res);
      return fd;
    }
    cio_fd_close(fd);
    if (rc == -ECANCELED) {
      freeaddrinfo(res);
      return cio__fail_static(-ECANCELED, NULL);
    }
    attempt_failed(&at, ai->ai_addr, rc);
  }
  freeaddrinfo(res);
  return cio__fail(at.last, "%s(%s, %s): %s", who, host ? host : "*", port,
                   at.len ? at.text : "no address");
}

static int bind_listen(int fd, const struct addrinfo *ai, void *arg) {
  int backlog = *(int *)arg, one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog > 0 ? backlog : 100) < 0)
    return -errno;
  return 0;
}

static int connect_nodelay(int fd, const struct addrinfo *ai, void *arg) {
  (void)arg;
  int rc = cio_sock_connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc == 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return rc;
}

int cio_tcp_listen(const char *host, const char *port, int backlog) {
  const char *who = "cio_tcp_listen";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!port) return cio__fail(-EINVAL, "%s: port is NULL", who);
  if (host && !*host) host = NULL;
  return open_first(t, who, host, port, AI_PASSIVE, bind_listen, &backlog);
}

int cio_tcp_connect(const char *host, const char *port) {
  const char *who = "cio_tcp_connect";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!host || !port) return cio__fail(-EINVAL, "%s: host or port is NULL", who);
  return open_first(t, who, host, port, 0, connect_nodelay, NULL);
}

static int unix_addr(const char *path, struct sockaddr_un *sun, const char *who) {
  if (!path || !*path) return cio__fail(-EINVAL, "%s: path is NULL or empty", who);
  size_t n = strlen(path);
  if (n >= sizeof sun->sun_path)
    return cio__fail(-ENAMETOOLONG, "%s: path is %zu bytes, the limit is %zu", who, n,
                     sizeof sun->sun_path - 1);
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, n + 1);
  return 0;
}

int cio_unix_listen(const char *path, int backlog) {
  const char *who = "cio_unix_listen";
  struct sockaddr_un sun;
  int rc = unix_addr(path, &sun, who);
  if (rc < 0) return rc;
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path); /* a stale socket */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return cio__fail(-errno, "%s(%s): %s", who, path, strerror(errno));
  cio__fd_fresh(cio__running_loop, fd);
  if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
      listen(fd, backlog > 0 ? backlog : 100) < 0) {
    int e = errno;
    close(fd);
    return cio__fail(-e, "%s(%s): %s", who, path, strerror(e));
  }
  return fd;
}

int cio_unix_connect(const char *path) {
  const char *who = "cio_unix_connect";
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  struct sockaddr_un sun;
  rc = unix_addr(path, &sun, who);
  if (rc < 0) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return cio__fail(-errno, "%s(%s): %s", who, path, strerror(errno));
  cio__fd_fresh(t->fut.loop, fd);
  rc = cio_sock_connect(fd, (struct sockaddr *)&sun, sizeof sun);
  if (rc < 0) {
    cio_fd_close(fd);
    if (rc == -ECANCELED) return cio__fail_static(-ECANCELED, NULL);
    return cio__fail(rc, "%s(%s): %s", who, path, strerror(-rc));
  }
  return fd;
}
