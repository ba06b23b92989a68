/* libuv peers of cio's benchmark programs, written with libuv's own callbacks.
 *
 *     peer-libuv sleep_many [N]   W3: N timers of 1 s started together
 *     peer-libuv timers [N]       W6a: N timers started, then all stopped
 *     peer-libuv echo PORT        W5: TCP echo server on 127.0.0.1:PORT
 *
 * libuv has no tasks, so W1, W2, W4 and the queue/lock parts of W6 have no
 * libuv equivalent and are not run. Output lines use cio's format. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

static int64_t peak_rss(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_maxrss * 1024;
}

static int64_t current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static long count(int argc, char **argv, long dflt) {
  if (argc < 3) return dflt;
  double v = strtod(argv[2], NULL);
  if (!(v >= 1)) {
    fprintf(stderr, "bad count %s\n", argv[2]);
    exit(2);
  }
  return (long)v;
}

/* ---- W3: N timers of 1 s ---------------------------------------------------- */

static long fired;

static void on_sleep_done(uv_timer_t *t) {
  (void)t;
  fired++;
}

static void sleep_many(long n) {
  uv_loop_t *loop = uv_default_loop();
  int64_t rss0 = current_rss();
  uint64_t t0 = uv_hrtime();
  /* One allocation per timer, as a program with independent timers has. */
  for (long i = 0; i < n; i++) {
    uv_timer_t *t = malloc(sizeof *t);
    uv_timer_init(loop, t);
    uv_timer_start(t, on_sleep_done, 1000, 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  double beyond = (double)(uv_hrtime() - t0) / 1e6 - 1000.0;
  int64_t peak = peak_rss();
  if (fired != n) {
    fprintf(stderr, "sleep_many: %ld of %ld timers fired\n", fired, n);
    exit(1);
  }
  printf("sleep_many: %ld tasks, %.1f ms beyond 1 s, %.0f B/task, peak RSS %.1f MiB\n", n, beyond,
         (double)(peak - rss0) / (double)n, (double)peak / (1024.0 * 1024.0));
}

/* ---- W6a: N timers started then stopped ----------------------------------------- */

static void never(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "timers: a stopped timer ran\n");
  exit(1);
}

static void timers(long n) {
  uv_loop_t *loop = uv_default_loop();
  uv_timer_t **ts = malloc((size_t)n * sizeof *ts);
  uint32_t x = 12345; /* the LCG every peer uses */
  uint64_t t0 = uv_hrtime();
  for (long i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    ts[i] = malloc(sizeof *ts[i]);
    uv_timer_init(loop, ts[i]);
    uv_timer_start(ts[i], never, 1000 + (x >> 8) % 59000u, 0);
  }
  for (long i = 0; i < n; i++) uv_timer_stop(ts[i]);
  double ns = (double)(uv_hrtime() - t0) / (double)n;
  printf("timers: %.1f ns/op\n", ns);
}

/* ---- W5: echo server ------------------------------------------------------------------ */

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req;

static void on_close(uv_handle_t *h) { free(h); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = suggested;
}

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  free(w->buf.base);
  free(w);
  (void)status;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    free(buf->base);
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (nread == 0) {
    free(buf->base);
    return;
  }
  /* The usual libuv echo: try to write at once, queue the rest. */
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  int k = uv_try_write(s, &b, 1);
  if (k == nread) {
    free(buf->base);
    return;
  }
  if (k < 0 && k != UV_EAGAIN) {
    free(buf->base);
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (k < 0) k = 0;
  write_req *w = malloc(sizeof *w);
  w->buf = uv_buf_init(buf->base, (unsigned)nread);
  uv_buf_t rest = uv_buf_init(buf->base + k, (unsigned)(nread - k));
  uv_write(&w->req, s, &rest, 1, on_write);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) == 0) {
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
  } else {
    uv_close((uv_handle_t *)c, on_close);
  }
}

static int echo(int port) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
  if (rc) {
    fprintf(stderr, "echo: %s\n", uv_strerror(rc));
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  const char *w = argc > 1 ? argv[1] : "";
  if (!strcmp(w, "sleep_many")) {
    sleep_many(count(argc, argv, 100000));
  } else if (!strcmp(w, "timers")) {
    timers(count(argc, argv, 1000000));
  } else if (!strcmp(w, "echo") && argc == 3) {
    return echo(atoi(argv[2]));
  } else {
    fprintf(stderr, "usage: peer-libuv sleep_many|timers [N] | peer-libuv echo PORT\n");
    return 2;
  }
  return 0;
}
