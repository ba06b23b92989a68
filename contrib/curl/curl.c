/* cio_curl: libcurl's multi socket interface driven by cio's fd callbacks and
 * timers. See include/cio/curl.h for the contract; the pattern is written up
 * in the README ("Bridging a callback-based C library").
 *
 * Per loop: one `struct bridge` (the multi handle, its timer, the sockets curl
 * asked us to watch, the transfers in progress), hung on the loop under
 * bridge_key and destroyed when the loop closes.
 * Per transfer: one `struct transfer` in the frame of the task that called
 * cio_curl_perform (it lives exactly as long as the call), reached from the
 * easy handle through CURLOPT_PRIVATE.
 * Per socket: one `struct sock` (curl_multi_assign), freed on CURL_POLL_REMOVE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <cio.h>
#include <cio/curl.h>

struct transfer;

struct sock {
  struct bridge *b;
  curl_socket_t fd;
  int what; /* CURL_POLL_IN / OUT / INOUT as registered */
  struct sock *prev, *next;
};

struct bridge {
  cio_loop *loop;
  CURLM *multi;
  cio_handle *timer;        /* curl's one timeout, or NULL */
  struct sock socks;        /* sentinel of the watched sockets */
  struct transfer *xfers;   /* transfers in progress (doubly linked) */
  int active;
};

struct transfer {
  struct bridge *b;
  CURL *easy;
  cio_future *fut;
  void *user_private;
  CURLcode result;
  int error; /* < 0: the bridge failed the transfer (an fd could not be watched) */
  bool done;
  struct transfer *prev, *next;
};

static void bridge_destroy(cio_loop *loop, void *value);
static const cio_loop_key bridge_key = {"cio_curl", bridge_destroy};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- completing transfers --------------------------------------------------------- */

/* A transfer is on b->xfers from cio_curl_perform's start to its return. */
static void unlink_transfer(struct transfer *t) {
  if (t->prev) t->prev->next = t->next;
  else t->b->xfers = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

/* Take a transfer out of the multi handle and give the user's handle back
 * as it was. */
static void detach(struct transfer *t) {
  curl_multi_remove_handle(t->b->multi, t->easy);
  curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t->user_private);
  t->b->active--;
}

static void finish(struct transfer *t, CURLcode result, int error) {
  if (t->done) return;
  t->done = true;
  t->result = result;
  t->error = error;
  detach(t);
  /* Fails harmlessly (CIO_EINVALSTATE) if the task's wait was cancelled
   * already: the task resumes with -ECANCELED and sees t->done. */
  if (cio_future_set_result(t->fut, NULL) < 0) { /* already cancelled */ }
}

static void check_done(struct bridge *b) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(b->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    char *p = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
    CURLcode result = msg->data.result; /* msg dies with the remove below */
    if (p) finish((struct transfer *)(void *)p, result, 0);
  }
}

/* ---- the loop's side: fd events and the timer --------------------------------------- */

static void act(struct bridge *b, curl_socket_t fd, int ev) {
  int running;
  curl_multi_socket_action(b->multi, fd, ev, &running);
  check_done(b);
}

/* The sock may be freed inside (curl closes the socket): copy first. */
static void on_readable(void *arg) {
  struct sock *s = arg;
  act(s->b, s->fd, CURL_CSELECT_IN);
}
static void on_writable(void *arg) {
  struct sock *s = arg;
  act(s->b, s->fd, CURL_CSELECT_OUT);
}

static void on_timer(void *arg) {
  struct bridge *b = arg;
  cio_handle *h = b->timer;
  b->timer = NULL; /* curl may set a new timer inside */
  cio_handle_unref(h);
  act(b, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- curl's side: what to watch, when to call back ------------------------------------ */

static void sock_free(struct bridge *b, struct sock *s) {
  cio_remove_reader(b->loop, s->fd);
  cio_remove_writer(b->loop, s->fd);
  /* curl may close the fd next: cio must not keep a registration for it. */
  if (cio_get_running_loop() == b->loop) cio_fd_forget(s->fd);
  s->prev->next = s->next;
  s->next->prev = s->prev;
  free(s);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct bridge *b = userp;
  struct sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) sock_free(b, s);
    curl_multi_assign(b->multi, fd, NULL);
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) goto fail_nomem;
    s->b = b;
    s->fd = fd;
    s->next = &b->socks;
    s->prev = b->socks.prev;
    s->prev->next = s->next->prev = s;
    curl_multi_assign(b->multi, fd, s);
  }
  s->what = what;
  int rc = 0;
  if (what & CURL_POLL_IN) rc = cio_add_reader(b->loop, fd, on_readable, s);
  else cio_remove_reader(b->loop, fd);
  if (rc == 0) {
    if (what & CURL_POLL_OUT) rc = cio_add_writer(b->loop, fd, on_writable, s);
    else cio_remove_writer(b->loop, fd);
  }
  if (rc == 0) return 0;
  /* cio cannot watch this fd: fail the transfer that owns it (soon, not
   * inside curl's callback). */
  {
    char *p = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
    struct transfer *t = (struct transfer *)(void *)p;
    if (t && !t->done) {
      t->error = rc;
      if (cio_future_set_result(t->fut, NULL) < 0) { /* already cancelled */ }
    }
  }
  return 0;
fail_nomem:
  return -1; /* curl fails the transfer (CURLE_OUT_OF_MEMORY-like) */
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  struct bridge *b = userp;
  if (b->timer) {
    cio_handle_cancel(b->timer);
    cio_handle_unref(b->timer);
    b->timer = NULL;
  }
  if (timeout_ms < 0) return 0;
  /* Never socket_action from here (curl forbids it): schedule it. */
  return cio_call_later(b->loop, (double)timeout_ms / 1e3, on_timer, b, &b->timer) < 0 ? -1 : 0;
}

/* Every socket curl closes is first forgotten by cio (curl also reports it with
 * CURL_POLL_REMOVE first; this covers sockets cio watched through other paths
 * and keeps the rule "forget before close" in one place). */
static int closesocket_cb(void *clientp, curl_socket_t fd) {
  (void)clientp;
  if (cio_get_running_loop()) cio_fd_forget(fd);
  return close(fd);
}

/* ---- the per-loop bridge ------------------------------------------------------------ */

static struct bridge *bridge_get(cio_loop *loop, const char *who) {
  struct bridge *b = cio_loop_get_data(loop, &bridge_key);
  if (b) return b;
  if (!loop) {
    cio_raise(-EINVAL, "%s: loop is NULL", who);
    return NULL;
  }
  if (cio_loop_is_closed(loop)) {
    cio_raise(CIO_ECLOSED, "%s: the loop is closed", who);
    return NULL;
  }
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK) {
    cio_raise(-ENOMEM, "%s: curl_global_init failed: %s", who, curl_easy_strerror(global_rc));
    return NULL;
  }
  b = calloc(1, sizeof *b);
  if (!b || !(b->multi = curl_multi_init())) {
    free(b);
    cio_raise(-ENOMEM, "%s: out of memory (curl_multi_init)", who);
    return NULL;
  }
  b->loop = loop;
  b->socks.next = b->socks.prev = &b->socks;
  curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
  curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
  int rc = cio_loop_set_data(loop, &bridge_key, b);
  if (rc < 0) {
    curl_multi_cleanup(b->multi);
    free(b);
    return NULL;
  }
  return b;
}

/* At loop close (the loop is whole but not running). Transfers still in the
 * multi handle belong to tasks the loop is about to abandon: detach them so
 * that their easy handles are usable again, then let curl close its
 * connections. */
static void bridge_destroy(cio_loop *loop, void *value) {
  (void)loop;
  struct bridge *b = value;
  while (b->xfers) {
    struct transfer *t = b->xfers;
    if (!t->done) {
      t->done = true;
      t->result = CURLE_ABORTED_BY_CALLBACK;
      t->error = CIO_ECLOSED;
      detach(t);
    }
    unlink_transfer(t);
    /* The task will never resume (its loop is closed): drop the reference
     * it holds on its future for it; the loop drops the waiter's own when
     * it abandons the task. */
    cio_future_unref(t->fut);
    t->fut = NULL;
  }
  curl_multi_cleanup(b->multi);
  while (b->socks.next != &b->socks) sock_free(b, b->socks.next);
  if (b->timer) {
    cio_handle_cancel(b->timer);
    cio_handle_unref(b->timer);
  }
  free(b);
}

CURLM *cio_curl_multi(cio_loop *loop) {
  struct bridge *b = bridge_get(loop, "cio_curl_multi");
  return b ? b->multi : NULL;
}

int cio_curl_active(const cio_loop *loop) {
  struct bridge *b = cio_loop_get_data(loop, &bridge_key);
  return b ? b->active : 0;
}

/* ---- the task's side ------------------------------------------------------------------- */

int cio_curl_perform(CURL *easy) {
  if (!easy) return cio_raise(-EINVAL, "cio_curl_perform: easy is NULL");
  if (!cio_current_task())
    return cio_raise(CIO_ENOTASK, "cio_curl_perform: must be called from inside a task");
  cio_loop *loop = cio_get_running_loop();
  struct bridge *b = bridge_get(loop, "cio_curl_perform");
  if (!b) return cio_errcode();

  struct transfer t = {.b = b, .easy = easy};
  t.fut = cio_future_new(loop);
  if (!t.fut) return cio_errcode();
  CURLMcode mc = curl_multi_add_handle(b->multi, easy);
  if (mc != CURLM_OK) {
    cio_future_unref(t.fut);
    int code = mc == CURLM_ADDED_ALREADY ? -EBUSY : mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
    return cio_raise(code, "cio_curl_perform: curl_multi_add_handle: %s", curl_multi_strerror(mc));
  }
  char *p = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
  t.user_private = p;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)&t);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
  t.next = b->xfers;
  if (t.next) t.next->prev = &t;
  b->xfers = &t;
  b->active++;

  int rc = cio_future_await(t.fut, NULL);
  if (!t.done) {
    /* Cancelled (or failed by the bridge) before curl finished: take the
     * transfer out now; curl closes its connection if it was mid-way. */
    t.done = true;
    detach(&t);
  }
  unlink_transfer(&t);
  cio_future_unref(t.fut);
  if (rc < 0) return rc == -ECANCELED ? cio_raise(rc, "cio_curl_perform: cancelled; the transfer was removed") : rc;
  if (t.error < 0)
    return cio_raise(t.error, "cio_curl_perform: %s",
                     t.error == CIO_ECLOSED ? "the loop was closed during the transfer"
                                            : "cio could not watch one of curl's sockets");
  return (int)t.result;
}
