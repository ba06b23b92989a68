/* A TCP echo server on streams, as asyncio's documentation writes it
 * (tcp_echo_server.py, here echoing until the client closes; the Python twin
 * is examples/py/streams/tcp_echo_server.py). The benchmarks use it (bench/echo.sh,
 * bench/run.py W5) beside bench/sock_echo.c, the same server on sock_*.
 *
 *   async def handle_echo(reader, writer):          static int handle_echo(cio_stream *s, void *arg) {
 *       while data := await reader.read(16384):       while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
 *           writer.write(data)                            cio_stream_write(s, buf, n);
 *           await writer.drain()                          if ((rc = cio_stream_drain(s)) < 0) break; }
 *       writer.close()                                (the server closes and frees s after return)
 *
 *   async def main():
 *       server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
 *       print(f'serving on {server.sockets[0].getsockname()}')
 *       async with server:
 *           await server.serve_forever()
 *
 * Usage: echo_server [--tls CERT KEY] [host] [port] [connections]
 *   host defaults to 127.0.0.1, port to 8888 (0 = any free port; the line
 *   "serving on HOST:PORT" tells which). With connections > 0 the server
 *   stops accepting after that many, waits for them to finish and exits
 *   (for tests). --tls serves TLS with the certificate chain CERT and
 *   its private key KEY (PEM files), as ssl=ctx with ctx.load_cert_chain().
 */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
  const char *host, *port;
  long connections;
  bool tls;
  const char *cert, *key;
  long accepted;
  cio_server *server;
};

static int handle_echo(cio_stream *s, void *arg) {
  struct config *cfg = arg;
  if (cfg->connections > 0 && ++cfg->accepted == cfg->connections)
    cio_server_close(cfg->server); /* the last one: stop accepting */
  char buf[16384];
  ssize_t n;
  int rc = 0;
  while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
    cio_stream_write(s, buf, (size_t)n);
    if ((rc = cio_stream_drain(s)) < 0) break;
  }
  if (n < 0) rc = (int)n;
  /* A client that resets is not the server's error. */
  return rc == -ECONNRESET || rc == -EPIPE ? 0 : rc;
}

/* ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key) */
static int tls_setup(cio_stream_opts *opts, const struct config *cfg) {
  cio_tls_options o = {.server = true, .cert_file = cfg->cert, .key_file = cfg->key};
  opts->tls = cio_tls_context_new(&o);
  return opts->tls ? 0 : cio_errcode();
}

static int serve(void *arg, void **result) {
  (void)result;
  struct config *cfg = arg;
  cio_stream_opts opts = {.backlog = 1024};
  int rc;
  if (cfg->tls && (rc = tls_setup(&opts, cfg)) < 0) return rc;
  rc = cio_start_server(handle_echo, cfg, cfg->host, cfg->port, &opts, &cfg->server);
  cio_tls_context_unref(opts.tls); /* the server keeps its own reference */
  if (rc < 0) return rc;
  printf("serving on %s:%d\n", cfg->host, cio_server_port(cfg->server));
  fflush(stdout);
  rc = cio_server_serve_forever(cfg->server);
  /* serve_forever ends "cancelled" when the server closes (as asyncio's):
   * here that is the plan when a connection count was given. */
  if (rc == -ECANCELED && cfg->connections > 0) rc = 0;
  cio_server_free(cfg->server);
  return rc;
}

int main(int argc, char **argv) {
  struct config cfg = {"127.0.0.1", "8888", 0, false, NULL, NULL, 0, NULL};
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tls") == 0) {
      if (i + 2 >= argc) {
        fprintf(stderr, "usage: echo_server [--tls CERT KEY] [host] [port] [connections]\n");
        return 2;
      }
      cfg.tls = true, cfg.cert = argv[++i], cfg.key = argv[++i];
    }
    else if (pos == 0 && ++pos) cfg.host = argv[i];
    else if (pos == 1 && ++pos) cfg.port = argv[i];
    else if (pos == 2 && ++pos) cfg.connections = atol(argv[i]);
  }
  int rc = cio_run(serve, &cfg, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_server: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
