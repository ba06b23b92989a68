/* Streams in one program: a server that upper-cases each line, and a client
 * that talks to it over loopback (asyncio's start_server + open_connection).
 *
 *   async def shout(reader, writer):
 *       while line := await reader.readline():
 *           writer.write(line.upper())
 *           await writer.drain()
 *
 *   async def main():
 *       server = await asyncio.start_server(shout, '127.0.0.1', 0)
 *       port = server.sockets[0].getsockname()[1]
 *       reader, writer = await asyncio.open_connection('127.0.0.1', port)
 *       for word in ('hello', 'streams', 'bye'):
 *           writer.write(f'{word}\n'.encode())
 *           print(f'sent {word!r}, got {(await reader.readline()).decode().strip()!r}')
 *       writer.close()
 *       await writer.wait_closed()
 *       server.close()
 *       await server.wait_closed()
 */
#include <cio.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int shout(cio_stream *s, void *arg) {
  (void)arg;
  const char *line;
  ssize_t n;
  while ((n = cio_stream_readline(s, &line)) > 0) { /* line points into the stream's buffer */
    char up[256];
    size_t len = (size_t)n < sizeof up ? (size_t)n : sizeof up;
    for (size_t i = 0; i < len; i++) up[i] = (char)toupper((unsigned char)line[i]);
    cio_stream_write(s, up, len);
    int rc = cio_stream_drain(s);
    if (rc < 0) return rc;
  }
  return (int)n; /* 0 at EOF */
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_server *server;
  int rc = cio_start_server(shout, NULL, "127.0.0.1", "0", NULL, &server);
  if (rc < 0) return rc;
  char port[16];
  snprintf(port, sizeof port, "%d", cio_server_port(server));
  cio_stream *s;
  rc = cio_open_connection("127.0.0.1", port, NULL, &s);
  if (rc < 0) goto out;
  const char *words[] = {"hello", "streams", "bye"};
  for (int i = 0; i < 3; i++) {
    char msg[32];
    int len = snprintf(msg, sizeof msg, "%s\n", words[i]);
    cio_stream_write(s, msg, (size_t)len);
    const char *reply;
    ssize_t n = cio_stream_readline(s, &reply);
    if (n <= 0) {
      rc = n < 0 ? (int)n : cio_raise(CIO_EINCOMPLETE, "the server hung up");
      break;
    }
    printf("sent '%s', got '%.*s'\n", words[i], (int)n - 1, reply);
  }
  cio_stream_close(s);
  if (rc == 0) rc = cio_stream_wait_closed(s);
  cio_stream_free(s);
out:
  cio_server_close(server);
  int rc2 = cio_server_wait_closed(server);
  cio_server_free(server);
  return rc < 0 ? rc : rc2;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "streams_hello: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
