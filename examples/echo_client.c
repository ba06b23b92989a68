/* A TCP echo client on streams, as asyncio's documentation writes it
 * (tcp_echo_client.py, here sending several lines; the Python twin is
 * examples/py/streams/tcp_echo_client.py).
 *
 *   async def tcp_echo_client(n):
 *       reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
 *       for i in range(1, n + 1):
 *           writer.write(f'line {i}\n'.encode())
 *           await writer.drain()
 *           print('reply:', (await reader.readline()).decode(), end='')
 *       writer.close()
 *       await writer.wait_closed()
 *
 * Usage: echo_client [--tls CAFILE] [host] [port] [lines]   (127.0.0.1 8888 5)
 *   --tls: TLS, trusting the CA certificates in CAFILE (PEM) and checking the
 *   server's certificate against host, as
 *   open_connection(host, port, ssl=ssl.create_default_context(cafile=CAFILE)).
 */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
  const char *host, *port;
  int lines;
  bool tls;
  const char *cafile;
};

/* ssl.create_default_context(cafile=cafile): verification and host name
 * checking are on. */
static int tls_setup(cio_stream_opts *opts, const struct config *cfg) {
  cio_tls_options o = {.ca_file = cfg->cafile};
  opts->tls = cio_tls_context_new(&o);
  return opts->tls ? 0 : cio_errcode();
}

static int client(void *arg, void **result) {
  (void)result;
  struct config *cfg = arg;
  cio_stream_opts opts = {0};
  int rc;
  if (cfg->tls && (rc = tls_setup(&opts, cfg)) < 0) return rc;
  cio_stream *s;
  rc = cio_open_connection(cfg->host, cfg->port, &opts, &s);
  cio_tls_context_unref(opts.tls); /* the stream keeps its own reference */
  if (rc < 0) return rc;
  printf("connected to %s:%s\n", cfg->host, cfg->port);
  for (int i = 1; i <= cfg->lines && rc == 0; i++) {
    char line[64];
    int len = snprintf(line, sizeof line, "line %d\n", i);
    cio_stream_write(s, line, (size_t)len);
    if ((rc = cio_stream_drain(s)) < 0) break;
    const char *reply;
    ssize_t n = cio_stream_readline(s, &reply); /* points into the stream's buffer */
    if (n <= 0) {
      rc = n < 0 ? (int)n : cio_raise(CIO_EINCOMPLETE, "the server closed the connection");
      break;
    }
    printf("reply: %.*s", (int)n, reply);
  }
  cio_stream_close(s);
  int rc2 = cio_stream_wait_closed(s);
  cio_stream_free(s);
  return rc < 0 ? rc : rc2;
}

int main(int argc, char **argv) {
  struct config cfg = {"127.0.0.1", "8888", 5, false, NULL};
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tls") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "usage: echo_client [--tls CAFILE] [host] [port] [lines]\n");
        return 2;
      }
      cfg.tls = true, cfg.cafile = argv[++i];
    }
    else if (pos == 0 && ++pos) cfg.host = argv[i];
    else if (pos == 1 && ++pos) cfg.port = argv[i];
    else if (pos == 2 && ++pos) cfg.lines = atoi(argv[i]);
  }
  int rc = cio_run(client, &cfg, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_client: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
