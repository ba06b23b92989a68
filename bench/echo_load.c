/* Load generator for echo servers (bench/echo.sh): N connections, each
 * sending a request of S bytes and waiting for the S-byte echo before
 * sending the next (closed loop, one request in flight per connection).
 * Single-threaded, epoll, plain C, bounded by duration.
 *
 * Usage: bench_echo_load host port connections seconds [size=64] [warmup=0.5]
 * Prints one line:
 *   conns=50 size=64 seconds=3.00 requests=... rps=... p50_us=... p99_us=...
 * Latency is measured per request, from send to the last byte of the echo,
 * in a histogram of 100 ns buckets (up to 100 ms; beyond counts as 100 ms).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_NS 100
#define NBUCKETS 1000000 /* 100 ms */

struct conn {
  int fd;
  size_t got;     /* bytes of the current echo received */
  int64_t sent_at;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t *hist;
static uint64_t recorded;

static double percentile(double p) {
  uint64_t want = (uint64_t)(p * (double)recorded), seen = 0;
  for (int i = 0; i < NBUCKETS; i++) {
    seen += hist[i];
    if (seen > want) return (i + 0.5) * BUCKET_NS / 1000.0;
  }
  return NBUCKETS * (double)BUCKET_NS / 1000.0;
}

static int send_request(struct conn *c, const char *req, size_t size) {
  c->got = 0;
  c->sent_at = now_ns();
  ssize_t n = send(c->fd, req, size, MSG_NOSIGNAL);
  if (n != (ssize_t)size) {
    fprintf(stderr, "echo_load: send: %s\n", n < 0 ? strerror(errno) : "short write");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s host port connections seconds [size] [warmup]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nconn = atoi(argv[3]);
  double seconds = atof(argv[4]);
  size_t size = argc > 5 ? (size_t)atoi(argv[5]) : 64;
  double warmup = argc > 6 ? atof(argv[6]) : 0.5;
  if (nconn < 1 || nconn > 10000 || seconds <= 0 || seconds > 60 || size < 1 || size > 65536) {
    fprintf(stderr, "echo_load: connections 1..10000, seconds 0..60, size 1..65536\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)nconn + 64) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)nconn + 64 ? rl.rlim_max : (rlim_t)nconn + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
    fprintf(stderr, "echo_load: IPv4 address expected (loopback only), got %s\n", host);
    return 2;
  }
  hist = calloc(NBUCKETS, sizeof *hist);
  struct conn *cs = calloc((size_t)nconn, sizeof *cs);
  char *req = malloc(size), *buf = malloc(65536);
  memset(req, 'x', size);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int one = 1;
  /* Connect in blocking mode, a few at a time: simple and bounded. */
  for (int i = 0; i < nconn; i++) {
    cs[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
      fprintf(stderr, "echo_load: connection %d: %s\n", i, strerror(errno));
      return 1;
    }
    setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  for (int i = 0; i < nconn; i++)
    if (send_request(&cs[i], req, size) < 0) return 1;
  int64_t start = now_ns();
  int64_t measure_from = start + (int64_t)(warmup * 1e9);
  int64_t end = measure_from + (int64_t)(seconds * 1e9);
  uint64_t requests = 0;
  struct epoll_event evs[256];
  for (;;) {
    int64_t t = now_ns();
    if (t >= end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = recv(c->fd, buf, 65536, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        fprintf(stderr, "echo_load: the server closed a connection (%s)\n",
                r < 0 ? strerror(errno) : "EOF");
        return 1;
      }
      c->got += (size_t)r;
      if (c->got < size) continue;
      int64_t done = now_ns();
      if (c->sent_at >= measure_from && done <= end) {
        int64_t b = (done - c->sent_at) / BUCKET_NS;
        hist[b < NBUCKETS ? b : NBUCKETS - 1]++;
        recorded++;
        requests++;
      }
      if (send_request(c, req, size) < 0) return 1;
    }
  }
  printf("conns=%d size=%zu seconds=%.2f requests=%llu rps=%.0f p50_us=%.1f p99_us=%.1f\n", nconn,
         size, seconds, (unsigned long long)requests, (double)requests / seconds, percentile(0.50),
         percentile(0.99));
  /* The same in the one-line format of the benchmark harness (bench/run.py). */
  printf("echo_load: %.0f req/s, p50 %.1f us, p99 %.1f us, %llu requests\n",
         (double)requests / seconds, percentile(0.50), percentile(0.99),
         (unsigned long long)requests);
  for (int i = 0; i < nconn; i++) close(cs[i].fd);
  return 0;
}
