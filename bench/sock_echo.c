/* The sock_* echo server: one task per connection on the raw socket calls
 * (cio_sock_recv_into / cio_sock_sendall), no stream layer. The benchmark
 * baseline of the streams echo server (examples/echo_server.c): bench/echo.sh
 * and bench/run.py (W5) run both. Same command line as echo_server.
 *
 *   async def handle(reader, writer):
 *       while data := await reader.read(16384):
 *           writer.write(data)
 *           await writer.drain()
 *       writer.close()
 *
 *   async def main():
 *       server = await asyncio.start_server(handle, '127.0.0.1', 8888)
 *       async with server:
 *           await server.serve_forever()
 *
 * Usage: echo_server [host] [port] [connections]
 *   host defaults to 127.0.0.1, port to 8888 (0 = any free port; the line
 *   "serving on HOST:PORT" tells which). With connections > 0 the server
 *   accepts that many, waits for them to finish and exits (for tests).
 */
#include <cio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int handle(void *arg, void **result) {
  (void)result;
  int fd = (int)(intptr_t)arg;
  char buf[16384];
  int rc = 0;
  for (;;) {
    ssize_t n = cio_sock_recv_into(fd, buf, sizeof buf);
    if (n <= 0) { /* 0: the client closed; < 0: reset or cancelled */
      rc = (int)n;
      break;
    }
    rc = cio_sock_sendall(fd, buf, (size_t)n, NULL);
    if (rc < 0) break;
  }
  cio_fd_close(fd);
  /* A client that resets is not the server's error. */
  return rc == -ECONNRESET || rc == -EPIPE ? 0 : rc;
}

struct config {
  const char *host, *port;
  long connections;
};

static int serve(void *arg, void **result) {
  (void)result;
  struct config *cfg = arg;
  int lfd = cio_tcp_listen(cfg->host, cfg->port, 1024);
  if (lfd < 0) return lfd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(lfd, (struct sockaddr *)&ss, &len);
  char host[64], port[16];
  int rc = cio_getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                           NI_NUMERICHOST | NI_NUMERICSERV);
  if (rc < 0) return rc;
  printf("serving on %s:%s\n", host, port);
  fflush(stdout);
  cio_task **tasks = NULL;
  if (cfg->connections > 0 && !(tasks = calloc((size_t)cfg->connections, sizeof *tasks)))
    return cio_raise(-ENOMEM, "out of memory");
  for (long n = 0; cfg->connections <= 0 || n < cfg->connections; n++) {
    int fd = cio_sock_accept(lfd, NULL, NULL);
    if (fd < 0) {
      rc = fd;
      break;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cio_task *t = cio_create_task(handle, (void *)(intptr_t)fd, NULL);
    if (!t) {
      cio_fd_close(fd);
      continue;
    }
    if (tasks)
      tasks[n] = t;
    else
      cio_task_detach(t); /* serving forever: nobody awaits the handlers */
  }
  for (long i = 0; tasks && i < cfg->connections; i++) {
    if (!tasks[i]) continue;
    int r = cio_await(tasks[i], NULL);
    if (r < 0 && rc == 0) rc = r;
    cio_task_unref(tasks[i]);
  }
  free(tasks);
  cio_fd_close(lfd);
  return rc;
}

int main(int argc, char **argv) {
  struct config cfg = {argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? argv[2] : "8888",
                       argc > 3 ? atol(argv[3]) : 0};
  int rc = cio_run(serve, &cfg, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_server: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
