/* A TCP echo client: sends lines and prints the replies (asyncio's
 * open_connection example).
 *
 *   async def main():
 *       reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
 *       for i in range(1, n + 1):
 *           writer.write(f'line {i}\n'.encode())
 *           await writer.drain()
 *           print('reply:', (await reader.readline()).decode(), end='')
 *       writer.close()
 *
 * Usage: echo_client [host] [port] [lines]   (127.0.0.1 8888 5)
 */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
  const char *host, *port;
  int lines;
};

/* A tiny buffered reader: streams (asyncio's StreamReader.readline) come
 * in a later layer. */
struct reader {
  int fd;
  char buf[4096];
  size_t pos, len;
};

/* Read one line (through '\n') into line; returns its length, 0 at EOF. */
static ssize_t read_line(struct reader *r, char *line, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    if (r->pos == r->len) {
      ssize_t got = cio_sock_recv_into(r->fd, r->buf, sizeof r->buf);
      if (got <= 0) return got < 0 ? got : (ssize_t)n;
      r->pos = 0;
      r->len = (size_t)got;
    }
    char c = r->buf[r->pos++];
    line[n++] = c;
    if (c == '\n') break;
  }
  line[n] = 0;
  return (ssize_t)n;
}

static int client(void *arg, void **result) {
  (void)result;
  struct config *cfg = arg;
  int fd = cio_tcp_connect(cfg->host, cfg->port);
  if (fd < 0) return fd;
  printf("connected to %s:%s\n", cfg->host, cfg->port);
  struct reader r = {.fd = fd};
  int rc = 0;
  for (int i = 1; i <= cfg->lines && rc == 0; i++) {
    char line[64], reply[64];
    int len = snprintf(line, sizeof line, "line %d\n", i);
    rc = cio_sock_sendall(fd, line, (size_t)len, NULL);
    if (rc < 0) break;
    ssize_t n = read_line(&r, reply, sizeof reply);
    if (n <= 0) {
      rc = n < 0 ? (int)n : cio_raise(CIO_EINCOMPLETE, "the server closed the connection");
      break;
    }
    printf("reply: %s", reply);
  }
  cio_fd_close(fd);
  return rc;
}

int main(int argc, char **argv) {
  struct config cfg = {argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? argv[2] : "8888",
                       argc > 3 ? atoi(argv[3]) : 5};
  int rc = cio_run(client, &cfg, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_client: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
