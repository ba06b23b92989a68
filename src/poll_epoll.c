/* The epoll back end of the poller seam. */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "poll.h"

int cio__epoll_init(struct cio__poller *p) {
  p->uring = NULL;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) return -errno;
  p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wakefd < 0) {
    int err = -errno;
    close(p->epfd);
    return err;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) < 0) {
    int err = -errno;
    close(p->wakefd);
    close(p->epfd);
    return err;
  }
  return 0;
}

void cio__epoll_close(struct cio__poller *p) {
  if (p->wakefd >= 0) close(p->wakefd);
  if (p->epfd >= 0) close(p->epfd);
  p->wakefd = p->epfd = -1;
}

int cio__epoll_ctl(struct cio__poller *p, int fd, unsigned events, bool registered,
                   struct cio__poll_watch *w) {
  if (!events) {
    if (!registered) return 0;
    return epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
  }
  struct epoll_event ev = {.data.ptr = w};
  if (events & CIO__POLL_IN) ev.events |= EPOLLIN;
  if (events & CIO__POLL_OUT) ev.events |= EPOLLOUT;
  if (events & CIO__POLL_EDGE) ev.events |= EPOLLET | (events & CIO__POLL_IN ? EPOLLRDHUP : 0);
  int op = registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(p->epfd, op, fd, &ev) == 0) return 0;
  /* The fd may have been closed and its number reused behind our back. */
  if (errno == ENOENT && registered)
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  if (errno == EEXIST && !registered)
    return epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
  return -errno;
}

/* Events taken per epoll_wait: at 1,000 busy connections 64 filled up at
 * every call (one call per 62 requests); Tokio takes 1,024. */
#define MAX_EVENTS 256

int cio__epoll_wait(struct cio__poller *p, int64_t timeout_ns, bool *woken) {
  struct epoll_event evs[MAX_EVENTS];
  int n;
  *woken = false;
  for (;;) {
    if (timeout_ns < 0) {
      n = epoll_wait(p->epfd, evs, MAX_EVENTS, -1);
    } else {
      /* epoll_pwait2 takes nanoseconds: timers fire on time, not a
       * millisecond late. */
      struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
      n = epoll_pwait2(p->epfd, evs, MAX_EVENTS, &ts, NULL);
      if (n < 0 && errno == ENOSYS) {
        int ms = (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(p->epfd, evs, MAX_EVENTS, ms);
      }
    }
    if (n >= 0) break;
    if (errno != EINTR) return -errno;
    timeout_ns = 0; /* a signal arrived: look once more without blocking */
  }
  int fired = 0;
  for (int i = 0; i < n; i++) __builtin_prefetch(evs[i].data.ptr);
  for (int i = 0; i < n; i++) {
    const struct cio__poll_watch *w = evs[i].data.ptr;
    if (w) __builtin_prefetch(w->hot);
  }
  for (int i = 0; i < n; i++) {
    struct cio__poll_watch *w = evs[i].data.ptr;
    if (!w) {
      uint64_t v;
      ssize_t r = read(p->wakefd, &v, sizeof v);
      (void)r;
      *woken = true;
      continue;
    }
    unsigned e = 0;
    if (evs[i].events & EPOLLIN) e |= CIO__POLL_IN;
    if (evs[i].events & EPOLLOUT) e |= CIO__POLL_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) e |= CIO__POLL_ERR;
    if (evs[i].events & EPOLLRDHUP) e |= CIO__POLL_IN | CIO__POLL_RDHUP;
    w->on_event(w, e);
    fired++;
  }
  return fired;
}

void cio__wakefd_wake(int wakefd) {
  uint64_t one = 1;
  ssize_t r = write(wakefd, &one, sizeof one);
  (void)r;
}
