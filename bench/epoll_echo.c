/* The physical limit for bench/echo.sh: a minimal hand-written epoll echo
 * server in plain C, single-threaded, level-triggered, no library. It reads
 * what a connection sends and writes it back at once (buffering only what the
 * socket would not take), the same work examples/echo_server does with one
 * task per connection.
 *
 * Usage: bench_epoll_echo [host] [port]   (127.0.0.1 8888; port 0 = any;
 * prints "serving on HOST:PORT"). Runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  int fd;
  char *pending; /* bytes the socket did not take yet */
  size_t plen;
};

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pending);
  free(c);
}

/* Write what is pending; returns -1 on error. */
static int flush(int ep, struct conn *c) {
  while (c->plen) {
    ssize_t n = send(c->fd, c->pending, c->plen, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -1;
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      return 0;
    }
    memmove(c->pending, c->pending + n, c->plen - (size_t)n);
    c->plen -= (size_t)n;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  return 0;
}

int main(int argc, char **argv) {
  const char *host = argc > 1 ? argv[1] : "127.0.0.1";
  int port = argc > 2 ? atoi(argv[2]) : 8888;
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
    fprintf(stderr, "epoll_echo: IPv4 address expected, got %s\n", host);
    return 1;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 1024) < 0) {
    perror("epoll_echo: bind/listen");
    return 1;
  }
  socklen_t len = sizeof sin;
  getsockname(lfd, (struct sockaddr *)&sin, &len);
  printf("serving on %s:%d\n", host, ntohs(sin.sin_port));
  fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[256];
  char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) { /* the listener */
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      if (c->plen) { /* waiting to write */
        if (flush(ep, c) < 0) drop(ep, c);
        continue;
      }
      ssize_t r = recv(c->fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        drop(ep, c);
        continue;
      }
      ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
      if (w == r) continue;
      if (w < 0 && errno != EAGAIN) {
        drop(ep, c);
        continue;
      }
      if (w < 0) w = 0;
      c->plen = (size_t)(r - w);
      c->pending = malloc(c->plen);
      memcpy(c->pending, buf + w, c->plen);
      if (flush(ep, c) < 0) drop(ep, c);
    }
  }
}
