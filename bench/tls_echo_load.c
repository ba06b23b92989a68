/* Load generator for TLS echo servers (bench/tls_echo.sh): N TLS
 * connections (cio streams, verifying the server against CAFILE), each
 * sending a request of S bytes and waiting for the S-byte echo before the
 * next (closed loop, one request in flight per connection). The handshakes
 * are done before the clock starts: this measures the cost of requests on
 * established connections, not of handshakes.
 *
 * Usage: bench_tls_echo_load cafile port connections seconds [size=64] [server_pid=0]
 *                            [warmup=0.5]
 * Prints two lines (the second in bench/run.py's format):
 *   conns=50 size=64 seconds=3.00 requests=... rps=... server_cpu_us_per_req=...
 *   tls_echo_load: ... req/s, ... requests
 * With server_pid > 0, the server's CPU time (user + system, /proc/PID/stat)
 * over the measured seconds (after the warm-up), divided by the requests.
 */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *cafile, *port;
static int nconn;
static double seconds;
static size_t size;
static int server_pid;
static double warmup = 0.5;
static volatile bool measuring, stop;
static unsigned long long requests;

static double server_cpu(void) {
  if (server_pid <= 0) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the name may hold spaces */
  if (!p) return 0;
  unsigned long ut = 0, st = 0;
  /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct conn {
  cio_stream *s;
};

static int run_conn(void *arg, void **res) {
  (void)res;
  cio_stream *s = arg;
  char req[65536], rsp[65536];
  memset(req, 'x', size);
  while (!stop) {
    int rc = cio_stream_write(s, req, size);
    if (rc == 0) rc = cio_stream_drain(s);
    if (rc == 0) rc = cio_stream_readexactly(s, rsp, size);
    if (rc < 0) return rc;
    if (measuring) requests++;
  }
  return 0;
}

static int main_task(void *arg, void **res) {
  (void)arg, (void)res;
  cio_tls_options o = {.ca_file = cafile};
  cio_stream_opts so = {.tls = cio_tls_context_new(&o)};
  if (!so.tls) return cio_errcode();
  cio_stream **ss = calloc((size_t)nconn, sizeof *ss);
  cio_task **ts = calloc((size_t)nconn, sizeof *ts);
  int rc = 0;
  for (int i = 0; i < nconn && rc == 0; i++) rc = cio_open_connection("localhost", port, &so, &ss[i]);
  cio_tls_context_unref(so.tls);
  if (rc < 0) return rc;
  for (int i = 0; i < nconn; i++) ts[i] = cio_create_task(run_conn, ss[i], NULL);
  if (warmup > 0 && (rc = cio_sleep(warmup)) < 0) return rc;
  double c0 = server_cpu();
  double t0 = cio_loop_time(cio_get_running_loop());
  measuring = true;
  int slept = cio_sleep(seconds);
  measuring = false;
  double c1 = server_cpu();
  double el = cio_loop_time(cio_get_running_loop()) - t0;
  stop = true;
  for (int i = 0; i < nconn; i++) {
    int r = cio_await(ts[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(ts[i]);
    cio_stream_close(ss[i]);
    r = cio_stream_wait_closed(ss[i]);
    cio_stream_free(ss[i]);
  }
  free(ss);
  free(ts);
  if (slept < 0 && rc == 0) rc = slept;
  printf("conns=%d size=%zu seconds=%.2f requests=%llu rps=%.0f", nconn, size, el, requests,
         (double)requests / el);
  if (server_pid > 0 && requests)
    printf(" server_cpu_us_per_req=%.2f server_cpu_pct=%.0f", (c1 - c0) * 1e6 / (double)requests,
           (c1 - c0) / el * 100);
  printf("\ntls_echo_load: %.0f req/s, %llu requests\n", (double)requests / el, requests);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s cafile port connections seconds [size=64] [server_pid] [warmup]\n", argv[0]);
    return 2;
  }
  cafile = argv[1];
  port = argv[2];
  nconn = atoi(argv[3]);
  seconds = atof(argv[4]);
  size = argc > 5 ? (size_t)atol(argv[5]) : 64;
  server_pid = argc > 6 ? atoi(argv[6]) : 0;
  warmup = argc > 7 ? atof(argv[7]) : 0.5;
  if (nconn < 1 || nconn > 10000 || seconds <= 0 || seconds > 60 || size < 1 || size > 65536 ||
      !(warmup >= 0 && warmup <= 60)) {
    fprintf(stderr, "tls_echo_load: connections 1..10000, seconds 0..60, size 1..65536\n");
    return 2;
  }
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "tls_echo_load: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
