/* A chat server on streams: every line a client sends goes to all the
 * others. A client that stalls (never reads) does not hold the others up:
 * what it has not read waits in its stream's write queue, bounded; when the
 * queue passes the bound the client is dropped with a message. SIGTERM (or
 * Ctrl-C) shuts the server down: every handler is cancelled and waited for
 * (cio_server_shutdown). The Python twin is examples/py/streams/chat_server.py.
 *
 * Usage: chat_server [host] [port]   (127.0.0.1 8888; port 0 = any free
 * port, the line "serving on HOST:PORT" tells which). Try it with
 * `nc 127.0.0.1 8888` in two terminals.
 */
#include <cio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUEUE_BOUND (256 * 1024) /* bytes a client may leave unread */

struct client {
  struct client *prev, *next;
  cio_stream *s;
  int id;
};

static struct client *clients;
static int next_id = 1;

/* Send text to every client but `from`; drop those that stopped reading. */
static void broadcast(struct client *from, const char *text, size_t len) {
  for (struct client *c = clients; c; c = c->next) {
    if (c == from || cio_stream_is_closing(c->s)) continue;
    if (cio_stream_write_buffer_size(c->s) + len > QUEUE_BOUND) {
      printf("dropping client %d: it does not read (queue over %d bytes)\n", c->id, QUEUE_BOUND);
      fflush(stdout);
      cio_stream_abort(c->s); /* its handler sees EOF and leaves */
      continue;
    }
    cio_stream_write(c->s, text, len);
  }
}

static void announce(struct client *c, const char *what) {
  char msg[64];
  int n = snprintf(msg, sizeof msg, "* client %d %s\n", c->id, what);
  broadcast(c, msg, (size_t)n);
}

static int handle_client(cio_stream *s, void *arg) {
  (void)arg;
  struct client me = {NULL, clients, s, next_id++};
  if (clients) clients->prev = &me;
  clients = &me;
  char hello[64];
  int n = snprintf(hello, sizeof hello, "welcome, you are client %d\n", me.id);
  cio_stream_write(s, hello, (size_t)n);
  announce(&me, "joined");
  const char *line;
  ssize_t len;
  char out[CIO_STREAM_LIMIT + 32];
  for (;;) {
    len = cio_stream_readline(s, &line); /* points into the stream's buffer */
    if (len == CIO_ELIMITOVERRUN) continue; /* an over-long line is skipped */
    if (len <= 0) break;                    /* 0: the client left; < 0: reset, cancelled */
    int h = snprintf(out, sizeof out, "[%d] ", me.id);
    memcpy(out + h, line, (size_t)len);
    broadcast(&me, out, (size_t)h + (size_t)len);
  }
  if (me.prev) me.prev->next = me.next;
  else clients = me.next;
  if (me.next) me.next->prev = me.prev;
  announce(&me, "left");
  return len == -ECANCELED ? (int)len : 0;
}

/* SIGTERM / SIGINT: the handler writes one byte to a pipe whose read end is
 * a stream that the main task waits on. */
static int sig_pipe[2];

static void on_signal(int sig) {
  char b = (char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r;
}

static int serve(void *arg, void **result) {
  (void)result;
  char **argv = arg;
  cio_stream *sig;
  int rc = cio_stream_from_fd(sig_pipe[0], NULL, &sig);
  if (rc < 0) return rc;
  cio_server *srv;
  rc = cio_start_server(handle_client, NULL, argv[0], argv[1], NULL, &srv);
  if (rc < 0) {
    cio_stream_free(sig);
    return rc;
  }
  printf("serving on %s:%d\n", argv[0], cio_server_port(srv));
  fflush(stdout);
  char b;
  rc = cio_stream_readexactly(sig, &b, 1); /* until a signal arrives */
  if (rc == 0) printf("signal %d: shutting down, %zu client(s) connected\n", b,
                      cio_server_connections(srv));
  rc = cio_server_shutdown(srv, 5.0);
  printf("bye\n");
  cio_server_free(srv);
  cio_stream_free(sig);
  return rc;
}

int main(int argc, char **argv) {
  char *args[2] = {argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? argv[2] : "8888"};
  if (pipe2(sig_pipe, O_CLOEXEC) < 0) return 1;
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int rc = cio_run(serve, args, NULL);
  close(sig_pipe[1]);
  if (rc < 0) {
    fprintf(stderr, "chat_server: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
