/* The limit for W6h (bench/http_bench.py): a minimal hand-written epoll HTTP
 * "hello" responder in plain C, single-threaded, edge-triggered, no parser:
 * it answers every "\r\n\r\n" it reads with the same canned keep-alive
 * response (what wrk's GET /hello needs, nothing more: no bodies, no
 * validation). Not a server to use; the floor to compare servers with.
 *
 * Usage: bench_epoll_http [host] [port]   (127.0.0.1 8080; port 0 = any;
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

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nServer: epoll\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 6\r\n\r\nhello\n";

struct conn {
  int fd;
  int matched; /* how much of "\r\n\r\n" the previous read ended with */
};

static void drop(struct conn *c) {
  close(c->fd);
  free(c);
}

/* Read until EAGAIN; answer each request head seen. Returns -1 to drop. */
static int serve(struct conn *c) {
  static const char end[] = "\r\n\r\n";
  char buf[16384], out[sizeof RESPONSE * 64];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    size_t olen = 0;
    for (ssize_t i = 0; i < n; i++) {
      c->matched = buf[i] == end[c->matched] ? c->matched + 1 : buf[i] == '\r' ? 1 : 0;
      if (c->matched == 4) {
        c->matched = 0;
        if (olen + sizeof RESPONSE - 1 > sizeof out) {
          if (send(c->fd, out, olen, MSG_NOSIGNAL) != (ssize_t)olen) return -1;
          olen = 0;
        }
        memcpy(out + olen, RESPONSE, sizeof RESPONSE - 1);
        olen += sizeof RESPONSE - 1;
      }
    }
    /* A "hello" client never fills the socket buffer: a short send is dropped. */
    if (olen && send(c->fd, out, olen, MSG_NOSIGNAL) != (ssize_t)olen) return -1;
  }
}

int main(int argc, char **argv) {
  const char *host = argc > 1 ? argv[1] : "127.0.0.1";
  int port = argc > 2 ? atoi(argv[2]) : 8080;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &sa.sin_addr);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t sl = sizeof sa;
  getsockname(ls, (struct sockaddr *)&sa, &sl);
  printf("serving on %s:%d\n", host, ntohs(sa.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      if (serve(c) < 0) drop(c);
    }
  }
}
