/* Layer 9: opening stream connections (with happy eyeballs) and stream
 * servers (asyncio.Server). See include/cio/stream.h.
 *
 * A server has one accept task per listening socket and one record per live
 * connection (its stream and handler task) in a list; a record is unlinked
 * and freed as soon as its handler has returned and its stream is closed,
 * so the memory of a server depends on the connections alive now, never on
 * how many it has served. The server's own memory goes when it has been
 * freed AND its last task (acceptor or connection) is gone.
 */
#include "tls.h"
#include "transport.h"

#include "cio/group.h"
#include "cio/io.h"
#include "cio/sync.h"
#include "cio/task.h"
#include "io.h"

#include <arpa/inet.h>
#include <math.h>
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

/* ---- open_connection ----------------------------------------------------------- */

struct attempt;

/* Happy eyeballs: the shared state of one open_connection. */
struct race {
  cio_event changed; /* an attempt ended */
  int winner;        /* fd, or -1 */
  int running;
  char text[768];    /* "addr: error; ..." */
  size_t len;
  int last;
};

struct attempt {
  struct race *race;
  const struct addrinfo *ai;
  cio_task *task;
};

static void note_failure(struct race *r, const struct sockaddr *sa, int code) {
  char where[INET6_ADDRSTRLEN + 16];
  const char *msg = cio_errmsg();
  int w = snprintf(r->text + r->len, sizeof r->text - r->len, "%s%s: %s", r->len ? "; " : "",
                   cio__addr_str(sa, where, sizeof where),
                   code > -4000 ? strerror(-code) : (*msg ? msg : cio_strerror(code)));
  if (w > 0) r->len = r->len + (size_t)w < sizeof r->text ? r->len + (size_t)w : sizeof r->text - 1;
  r->last = code;
}

/* Connect one address; the socket is set up as asyncio does (TCP_NODELAY). */
static int connect_one(const struct addrinfo *ai, int *out) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return cio_raise(-errno, "socket: %s", strerror(errno));
  cio_loop *loop = cio_get_running_loop();
  cio__fd_fresh(loop, fd);
  int rc = cio_sock_connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc < 0) {
    cio_fd_close(fd);
    return rc;
  }
  int one = 1;
  if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  *out = fd;
  return 0;
}

static int attempt_main(void *arg, void **result) {
  (void)result;
  struct attempt *a = arg;
  struct race *r = a->race;
  int fd = -1;
  int rc = connect_one(a->ai, &fd);
  r->running--;
  if (rc == 0) {
    if (r->winner < 0) r->winner = fd;
    else cio_fd_close(fd);
  } else if (rc != -ECANCELED) {
    note_failure(r, a->ai->ai_addr, rc);
  }
  cio_event_set(&r->changed);
  return 0;
}

/* Order the addresses as asyncio's _interleave_addrinfos (first_address_family_count 1):
 * alternate the families, starting with the first one's. */
static size_t interleave(struct addrinfo *res, const struct addrinfo **out, size_t cap) {
  size_t n = 0;
  const struct addrinfo *fam[2][64];
  size_t cnt[2] = {0, 0};
  int first = res ? res->ai_family : 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int k = ai->ai_family == first ? 0 : 1;
    if (cnt[k] < 64) fam[k][cnt[k]++] = ai;
  }
  for (size_t i = 0; n < cap && (i < cnt[0] || i < cnt[1]); i++) {
    if (i < cnt[0] && n < cap) out[n++] = fam[0][i];
    if (i < cnt[1] && n < cap) out[n++] = fam[1][i];
  }
  return n;
}

/* Try the addresses: one after another (delay 0), or staggered by delay
 * with the first connection winning. Returns the fd or an error. */
int cio__connect_addrs(struct addrinfo *res, double delay, const char *host, const char *port,
                       const char *who) {
  const struct addrinfo *list[128];
  size_t n = 0;
  if (delay > 0) {
    n = interleave(res, list, 128);
  } else {
    for (struct addrinfo *ai = res; ai && n < 128; ai = ai->ai_next) list[n++] = ai;
  }
  struct race r = {.winner = -1, .last = -EADDRNOTAVAIL};
  int rc = 0;
  if (delay <= 0) {
    for (size_t i = 0; i < n; i++) {
      int fd = -1;
      rc = connect_one(list[i], &fd);
      if (rc == 0) return fd;
      if (rc == -ECANCELED) return rc;
      note_failure(&r, list[i]->ai_addr, rc);
    }
  } else {
    struct attempt *at = calloc(n ? n : 1, sizeof *at);
    if (!at) return cio__fail_static(-ENOMEM, "cio_open_connection: out of memory");
    cio_event_init(&r.changed);
    size_t started = 0;
    for (;;) {
      if (r.winner >= 0) break;
      if (started < n) {
        at[started].race = &r;
        at[started].ai = list[started];
        at[started].task = cio_create_task(attempt_main, &at[started], NULL);
        if (!at[started].task) {
          rc = cio_errcode();
          break;
        }
        r.running++;
        started++;
        /* Wait for this attempt to end or the delay to pass. */
        cio_event_clear(&r.changed);
        rc = cio_event_wait_timeout(&r.changed, delay);
        if (rc == -ETIMEDOUT) rc = 0;
        if (rc < 0) break;
        continue;
      }
      if (r.running == 0) break;
      cio_event_clear(&r.changed);
      rc = cio_event_wait(&r.changed);
      if (rc < 0) break;
    }
    /* Cancel the losers and wait for them: they close their sockets. */
    for (size_t i = 0; i < started; i++) cio_task_cancel(at[i].task, NULL);
    for (size_t i = 0; i < started; i++) {
      cio_task *tk = at[i].task;
      while (!cio_task_done(tk)) {
        int w = cio_task_await(tk, NULL);
        if (w == -ECANCELED && !cio_task_done(tk)) {
          rc = -ECANCELED; /* we were cancelled too: keep waiting for the child */
          continue;
        }
        break;
      }
      cio_task_unref(tk);
    }
    free(at);
    cio_event_destroy(&r.changed);
    if (rc < 0) {
      if (r.winner >= 0) cio_fd_close(r.winner);
      return rc == -ECANCELED ? cio__fail_static(-ECANCELED, NULL) : rc;
    }
    if (r.winner >= 0) return r.winner;
  }
  return cio__fail(r.last, "%s(%s, %s): %s", who, host, port, r.len ? r.text : "no address");
}

static int finish_open(int fd, const cio_stream_opts *o, const char *sni, cio_stream **out) {
  cio_stream *s;
  int rc = cio_stream_from_fd(fd, o, &s);
  if (rc < 0) {
    cio_fd_close(fd);
    return rc;
  }
  if (o && o->tls) {
    rc = cio__stream_secure(s, o->tls, o->server_hostname ? o->server_hostname : sni, false);
    if (rc < 0) {
      cio_stream_free(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

struct open_args {
  const char *host, *port, *path;
  const cio_stream_opts *opts;
  double delay;
  cio_stream **out;
};

static int open_tcp(struct open_args *a) {
  const char *who = "cio_open_connection";
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res;
  int rc = cio_getaddrinfo(a->host, a->port, &hints, &res);
  if (rc < 0) return rc;
  int fd = cio__connect_addrs(res, a->delay, a->host, a->port, who);
  freeaddrinfo(res);
  if (fd < 0) return fd;
  return finish_open(fd, a->opts, a->host, a->out);
}

static int open_unix(struct open_args *a) {
  int fd = cio_unix_connect(a->path);
  if (fd < 0) return fd;
  return finish_open(fd, a->opts, NULL, a->out);
}

static int with_connect_timeout(struct open_args *a, double timeout, int (*fn)(struct open_args *)) {
  if (timeout <= 0) return fn(a);
  cio_timeout to;
  int rc = cio_timeout_enter(&to, timeout);
  if (rc < 0) return rc;
  rc = fn(a);
  rc = cio_timeout_exit(&to, rc);
  if (rc == -ETIMEDOUT && *a->out) {
    cio_stream_free(*a->out); /* finished just as the deadline passed */
    *a->out = NULL;
  }
  return rc;
}

int cio_open_connection(const char *host, const char *port, const cio_stream_opts *opts,
                        cio_stream **out) {
  const char *who = "cio_open_connection";
  if (out) *out = NULL;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!host || !port || !out) return cio__fail(-EINVAL, "%s: host, port or out is NULL", who);
  cio_stream_opts o;
  if ((rc = cio__stream_fill_opts(&o, opts, who)) < 0) return rc;
  o.server_hostname = opts ? opts->server_hostname : NULL;
  struct open_args a = {.host = host, .port = port, .opts = &o, .delay = o.happy_eyeballs_delay,
                        .out = out};
  return with_connect_timeout(&a, o.connect_timeout, open_tcp);
}

int cio_open_unix_connection(const char *path, const cio_stream_opts *opts, cio_stream **out) {
  const char *who = "cio_open_unix_connection";
  if (out) *out = NULL;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!path || !out) return cio__fail(-EINVAL, "%s: path or out is NULL", who);
  cio_stream_opts o;
  if ((rc = cio__stream_fill_opts(&o, opts, who)) < 0) return rc;
  o.server_hostname = opts ? opts->server_hostname : NULL;
  struct open_args a = {.path = path, .opts = &o, .out = out};
  return with_connect_timeout(&a, o.connect_timeout, open_unix);
}

/* ---- servers ---------------------------------------------------------------------- */

#define MAX_LISTEN 16

struct conn {
  struct conn *prev, *next;
  cio_server *srv;
  cio_stream *s;
  cio_task *task;
};

struct acceptor {
  cio_server *srv;
  int fd;
  cio_task *task;
};

struct cio_server {
  cio_loop *loop;
  cio_stream_handler handler;
  void *arg;
  cio_stream_opts opts;
  struct cio_tls_context *tls;
  int nfds;
  struct acceptor acc[MAX_LISTEN];
  char *unix_path;
  struct conn *head;
  size_t nconns;
  size_t tasks;     /* acceptors and connections still running */
  bool is_unix;
  bool serving;
  bool closed;
  bool freed;
  bool in_forever;
  cio_event idle;   /* set when closed and no connection is left */
  cio_event stop;   /* set by close: wakes serve_forever */
};

static void srv_release(cio_server *srv) {
  if (!srv->freed || srv->tasks) return;
  cio_tls_context_unref(srv->tls);
  cio_event_destroy(&srv->idle);
  cio_event_destroy(&srv->stop);
  free(srv->unix_path);
  free(srv);
}

static void check_idle(cio_server *srv) {
  if (srv->closed && srv->nconns == 0) cio_event_set(&srv->idle);
}

static void report(cio_server *srv, cio_task *t, int rc, const char *what) {
  char text[160];
  snprintf(text, sizeof text, "%s", what);
  cio_exception_context ctx = {.message = text, .code = rc, .error = cio_errmsg(), .task = t};
  cio_loop_call_exception_handler(srv->loop, &ctx);
}

static void conn_unlink(cio_server *srv, struct conn *c);

static int conn_main(void *arg, void **result) {
  (void)result;
  struct conn *c = arg;
  cio_server *srv = c->srv;
  cio_task *self = cio_current_task();
  c->task = self; /* borrowed: valid while c is linked (this body runs) */
  int rc = 0;
  if (srv->tls) rc = cio__stream_secure(c->s, srv->tls, NULL, true);
  if (rc == 0) {
    rc = srv->handler(c->s, srv->arg);
    if (rc < 0 && rc != -ECANCELED)
      report(srv, self, rc, "Unhandled error in the connection handler (cio_start_server)");
  }
  /* The server owns the stream: flush and close it, unless we are being
   * shut down (then drop it). */
  if (cio_task_cancelling(self) > 0 || rc == -ECANCELED) {
    cio_stream_abort(c->s);
  } else {
    cio_stream_close(c->s);
    if (cio_stream_wait_closed(c->s) == -ECANCELED) cio_stream_abort(c->s);
  }
  cio_stream_free(c->s);
  conn_unlink(srv, c);
  free(c);
  check_idle(srv);
  srv_release(srv);
  return 0;
}

static void conn_unlink(cio_server *srv, struct conn *c) {
  if (c->prev) c->prev->next = c->next;
  else srv->head = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->nconns--;
  srv->tasks--;
}

static int acceptor_main(void *arg, void **result) {
  (void)result;
  struct acceptor *a = arg;
  cio_server *srv = a->srv;
  /* Eager: the handler runs at once, up to its first suspension, so a
   * connection task is never left unstarted (a task cancelled before its
   * first step would never run its body, and its stream would leak). */
  cio_task_options eager = {.eager_start = true, .stack_size = srv->opts.handler_stack_size};
  for (;;) {
#ifdef CIO_HAVE_URING
    /* io_uring: one multishot accept in the kernel, no call per connection. */
    int fd = cio__fd_accept_ms(cio__current(), a->fd, "cio_start_server");
    if (fd == -EAGAIN) fd = cio_sock_accept(a->fd, NULL, NULL);
#else
    int fd = cio_sock_accept(a->fd, NULL, NULL);
#endif
    if (fd < 0) {
      if (fd == -ECANCELED || fd == -EBADF || srv->closed) break;
      report(srv, cio_current_task(), fd, "accept failed (cio_start_server)");
      if (cio_sleep(0.1) < 0) break;
      continue;
    }
    if (srv->closed) {
      cio_fd_close(fd);
      break;
    }
    if (!srv->is_unix) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as asyncio */
    }
    struct conn *c = calloc(1, sizeof *c);
    int rc = c ? cio_stream_from_fd(fd, &srv->opts, &c->s) : -ENOMEM;
    if (rc < 0) {
      cio_fd_close(fd);
      free(c);
      report(srv, cio_current_task(), rc, "cannot start a connection (cio_start_server)");
      continue;
    }
    c->srv = srv;
    c->next = srv->head;
    if (srv->head) srv->head->prev = c;
    srv->head = c;
    srv->nconns++;
    srv->tasks++;
    /* The body may run to its end inside this call: c is not touched after. */
    cio_task *t = cio_create_task(conn_main, c, &eager);
    if (!t) {
      rc = cio_errcode();
      conn_unlink(srv, c);
      cio_stream_free(c->s);
      free(c);
      report(srv, cio_current_task(), rc, "cannot start a connection (cio_start_server)");
      continue;
    }
    cio_task_detach(t);
  }
  srv->tasks--;
  srv_release(srv);
  return 0;
}

static void stop_listening(cio_server *srv) {
  for (int i = 0; i < srv->nfds; i++) {
    if (srv->acc[i].fd >= 0) {
      cio_fd_close(srv->acc[i].fd); /* wakes the acceptor with -EBADF */
      srv->acc[i].fd = -1;
    }
    if (srv->acc[i].task) {
      /* Not cancelled: closing the fd wakes it with -EBADF (a cancel on top
       * would leave that error unretrieved), and an acceptor in a back-off
       * sleep finds its fd gone when it wakes. */
      cio_task_unref(srv->acc[i].task);
      srv->acc[i].task = NULL;
    }
  }
  srv->serving = false;
  if (srv->unix_path) {
    struct stat st;
    if (lstat(srv->unix_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(srv->unix_path);
    free(srv->unix_path);
    srv->unix_path = NULL;
  }
}

static int srv_new(cio_stream_handler handler, void *arg, const cio_stream_opts *opts,
                   cio_server **out, const char *who, cio_server **srvp) {
  cio_server *srv = calloc(1, sizeof *srv);
  if (!srv) return cio__fail_static(-ENOMEM, "cio_start_server: out of memory");
  int rc = cio__stream_fill_opts(&srv->opts, opts, who);
  if (rc < 0) {
    free(srv);
    return rc;
  }
  (void)out;
  if (opts && opts->tls && !cio__tls_context_is_server(opts->tls)) {
    free(srv);
    return cio__fail(-EINVAL, "%s: opts.tls is a client context (make it with "
                              "cio_tls_options.server = true)", who);
  }
  srv->tls = cio_tls_context_ref(opts ? opts->tls : NULL); /* the server keeps it alive */
  srv->handler = handler;
  srv->arg = arg;
  srv->loop = cio_get_running_loop();
  cio_event_init(&srv->idle);
  cio_event_init(&srv->stop);
  for (int i = 0; i < MAX_LISTEN; i++) srv->acc[i].fd = -1;
  *srvp = srv;
  return 0;
}

static void srv_discard(cio_server *srv) {
  for (int i = 0; i < srv->nfds; i++)
    if (srv->acc[i].fd >= 0) cio_fd_close(srv->acc[i].fd);
  cio_tls_context_unref(srv->tls);
  cio_event_destroy(&srv->idle);
  cio_event_destroy(&srv->stop);
  free(srv->unix_path);
  free(srv);
}

static int srv_start(cio_server *srv, cio_server **out) {
  for (int i = 0; i < srv->nfds; i++) {
    srv->acc[i].srv = srv;
    srv->acc[i].task = cio_create_task(acceptor_main, &srv->acc[i], NULL);
    if (!srv->acc[i].task) {
      int rc = cio_errcode();
      for (int j = 0; j < i; j++) {
        cio_task_cancel(srv->acc[j].task, NULL);
      }
      /* The started acceptors hold the server until they see the close. */
      srv->closed = true;
      srv->freed = true;
      stop_listening(srv);
      return rc;
    }
    srv->tasks++;
  }
  srv->serving = true;
  *out = srv;
  return 0;
}

int cio_start_server(cio_stream_handler handler, void *arg, const char *host, const char *port,
                     const cio_stream_opts *opts, cio_server **out) {
  const char *who = "cio_start_server";
  if (out) *out = NULL;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!handler || !port || !out) return cio__fail(-EINVAL, "%s: handler, port or out is NULL", who);
  if (host && !*host) host = NULL;
  cio_server *srv;
  if ((rc = srv_new(handler, arg, opts, out, who, &srv)) < 0) return rc;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE};
  struct addrinfo *res;
  rc = cio_getaddrinfo(host, port, &hints, &res);
  if (rc < 0) {
    srv_discard(srv);
    return rc;
  }
  int count = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) count++;
  char where[INET6_ADDRSTRLEN + 16];
  for (struct addrinfo *ai = res; ai && srv->nfds < MAX_LISTEN; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      rc = cio__fail(-errno, "%s: socket: %s", who, strerror(errno));
      break;
    }
    cio__fd_fresh(t->fut.loop, fd);
    srv->acc[srv->nfds++].fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv->opts.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      rc = cio__fail(-errno, "%s: SO_REUSEPORT: %s", who, strerror(errno));
      break;
    }
    /* As asyncio: an IPv6 socket listens on IPv6 only, so that the IPv4
     * address of the same list can be bound too. */
    if (ai->ai_family == AF_INET6 && count > 1)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, srv->opts.backlog > 0 ? srv->opts.backlog : 100) < 0) {
      int e = errno;
      rc = cio__fail(-e, "%s: cannot listen on %s: %s", who, cio__addr_str(ai->ai_addr, where, sizeof where),
                     strerror(e));
      break;
    }
  }
  freeaddrinfo(res);
  if (rc < 0) {
    srv_discard(srv);
    return rc;
  }
  return srv_start(srv, out);
}

int cio_start_unix_server(cio_stream_handler handler, void *arg, const char *path,
                          const cio_stream_opts *opts, cio_server **out) {
  const char *who = "cio_start_unix_server";
  if (out) *out = NULL;
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (!handler || !path || !out) return cio__fail(-EINVAL, "%s: handler, path or out is NULL", who);
  cio_server *srv;
  if ((rc = srv_new(handler, arg, opts, out, who, &srv)) < 0) return rc;
  int fd = cio_unix_listen(path, srv->opts.backlog);
  if (fd < 0) {
    srv_discard(srv);
    return fd;
  }
  srv->acc[srv->nfds++].fd = fd;
  srv->is_unix = true;
  srv->unix_path = strdup(path);
  if (!srv->unix_path) {
    srv_discard(srv);
    unlink(path);
    return cio__fail_static(-ENOMEM, "cio_start_unix_server: out of memory");
  }
  return srv_start(srv, out);
}

int cio_server_close(cio_server *srv) {
  if (!srv) return cio__fail(-EINVAL, "cio_server_close: server is NULL");
  if (srv->closed) return 0;
  srv->closed = true;
  stop_listening(srv);
  cio_event_set(&srv->stop);
  check_idle(srv);
  return 0;
}

int cio_server_close_clients(cio_server *srv) {
  if (!srv) return cio__fail(-EINVAL, "cio_server_close_clients: server is NULL");
  int n = 0;
  for (struct conn *c = srv->head; c; c = c->next, n++) cio_stream_close(c->s);
  return n;
}

int cio_server_abort_clients(cio_server *srv) {
  if (!srv) return cio__fail(-EINVAL, "cio_server_abort_clients: server is NULL");
  int n = 0;
  for (struct conn *c = srv->head; c; c = c->next, n++) cio_stream_abort(c->s);
  return n;
}

static int wait_idle(cio_server *srv, double timeout, bool timed, const char *who) {
  if (!srv) return cio__fail(-EINVAL, "%s: server is NULL", who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  srv->tasks++; /* the server's memory stays while we wait (cio_server_free) */
  while (!(srv->closed && srv->nconns == 0)) {
    rc = timed ? cio_event_wait_timeout(&srv->idle, timeout) : cio_event_wait(&srv->idle);
    if (rc < 0) break;
  }
  srv->tasks--;
  srv_release(srv);
  return rc < 0 ? rc : 0;
}

int cio_server_wait_closed(cio_server *srv) {
  return wait_idle(srv, 0, false, "cio_server_wait_closed");
}

int cio_server_wait_closed_timeout(cio_server *srv, double timeout) {
  if (isnan(timeout)) return cio__fail(-EINVAL, "cio_server_wait_closed_timeout: timeout is NaN");
  return wait_idle(srv, timeout, true, "cio_server_wait_closed_timeout");
}

int cio_server_serve_forever(cio_server *srv) {
  const char *who = "cio_server_serve_forever";
  if (!srv) return cio__fail(-EINVAL, "%s: server is NULL", who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  if (srv->closed) return cio__fail(CIO_EINVALSTATE, "%s: the server is closed", who);
  if (srv->in_forever)
    return cio__fail(CIO_EINVALSTATE, "%s: another task is already in serve_forever", who);
  srv->in_forever = true;
  srv->tasks++; /* the server's memory stays while we wait (cio_server_free) */
  while (!srv->closed) {
    rc = cio_event_wait(&srv->stop);
    if (rc < 0) break;
  }
  /* Cancelled, or closed by somebody: as asyncio, close and wait until the
   * connections are gone (the handlers are not cancelled), then end
   * cancelled. */
  cio_server_close(srv);
  rc = cio_server_wait_closed(srv);
  (void)rc;
  srv->in_forever = false;
  srv->tasks--;
  srv_release(srv);
  return cio__fail_static(-ECANCELED, "serve_forever: the server was closed");
}

int cio_server_shutdown(cio_server *srv, double timeout) {
  const char *who = "cio_server_shutdown";
  if (!srv) return cio__fail(-EINVAL, "%s: server is NULL", who);
  if (isnan(timeout)) return cio__fail(-EINVAL, "%s: timeout is NaN", who);
  struct cio_task *t;
  int rc = need_task(who, &t);
  if (rc < 0) return rc;
  cio_server_close(srv);
  srv->tasks++; /* the server's memory stays while we wait (cio_server_free) */
  for (struct conn *c = srv->head; c; c = c->next) cio_task_cancel(c->task, "server shutdown");
  rc = wait_idle(srv, timeout, true, who);
  if (rc == -ETIMEDOUT) {
    cio_server_abort_clients(srv);
    rc = wait_idle(srv, timeout, true, who);
    if (rc == -ETIMEDOUT)
      rc = cio__fail(-ETIMEDOUT, "%s: %zu handler(s) still running after cancel and abort", who,
                     srv->nconns);
  }
  srv->tasks--;
  srv_release(srv);
  return rc;
}

bool cio_server_is_serving(const cio_server *srv) { return srv && srv->serving; }
size_t cio_server_connections(const cio_server *srv) { return srv ? srv->nconns : 0; }

int cio_server_sockets(const cio_server *srv, int *fds, int cap) {
  if (!srv || (!fds && cap > 0)) return cio__fail(-EINVAL, "cio_server_sockets: NULL argument");
  if (srv->closed) return 0;
  for (int i = 0; i < srv->nfds && i < cap; i++) fds[i] = srv->acc[i].fd;
  return srv->nfds;
}

int cio_server_sockname(const cio_server *srv, int i, struct sockaddr *addr, socklen_t *len) {
  const char *who = "cio_server_sockname";
  if (!srv || !addr || !len) return cio__fail(-EINVAL, "%s: NULL argument", who);
  if (srv->closed) return cio__fail(-EBADF, "%s: the server is closed", who);
  if (i < 0 || i >= srv->nfds) return cio__fail(-ERANGE, "%s: no listening socket %d", who, i);
  if (getsockname(srv->acc[i].fd, addr, len) < 0)
    return cio__fail(-errno, "%s: %s", who, strerror(errno));
  return 0;
}

int cio_server_port(const cio_server *srv) {
  const char *who = "cio_server_port";
  if (!srv) return cio__fail(-EINVAL, "%s: server is NULL", who);
  if (srv->closed) return cio__fail(-EBADF, "%s: the server is closed", who);
  for (int i = 0; i < srv->nfds; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(srv->acc[i].fd, (struct sockaddr *)&ss, &len) < 0) continue;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return cio__fail(-ENOTSOCK, "%s: the server has no TCP socket", who);
}

void cio_server_free(cio_server *srv) {
  if (!srv) return;
  cio_server_close(srv);
  if (srv->nconns) cio_server_abort_clients(srv);
  srv->freed = true;
  srv_release(srv);
}
