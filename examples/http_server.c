/* An HTTP/1.1 server on cio streams, parsing with a real parser: Debian's
 * libhttp-parser-dev (http_parser 2.9, nodejs's former parser; llhttp, its
 * successor, is not packaged as a C library in Debian 12). The parser is
 * linked by this example only; libcio does not depend on it.
 *
 * What it does, as asyncio's web servers do it: one task per connection
 * (cio_start_server), reading into a buffer and feeding the parser; the
 * parser pauses at the end of each request, the task answers it (writes
 * never suspend; drain does, above the high-water mark) and continues with
 * the next request already in the buffer: keep-alive and pipelining come
 * from that loop. Request bodies may come with Content-Length or chunked.
 *
 * Routes:
 *   GET  /hello              "hello\n"
 *   GET  /stream?bytes=N     N bytes (default 1 MiB) in 64 KiB writes, each
 *                            followed by drain: the memory used stays at the
 *                            write buffer's high-water mark, whatever N is
 *   POST /echo               the request body back (Content-Length or chunked)
 *   HEAD on the GET routes; anything else 404 (405 for a wrong method).
 *
 * Bad input gets an answer and the connection is closed:
 *   400  malformed request (request line, header syntax, chunk framing)
 *   408  headers not complete within --header-timeout seconds (10) from the
 *        moment the server waits for a request (slowloris); an idle
 *        keep-alive connection is closed silently after the same time
 *   413  body over --max-body bytes (1 MiB), said before reading it when
 *        Content-Length tells, else when the chunks pass the limit
 *   414  a URL over 1 KiB
 *   431  request line + headers over --max-header bytes (8 KiB)
 * Upgrade and CONNECT requests are answered (404) and the connection closed.
 * A client that pipelines requests and never reads its responses gets
 * back-pressure: the task stops reading (drain waits) once the write buffer
 * is above its high-water mark, so memory stays bounded; after
 * --send-timeout seconds (60) without progress the connection is dropped.
 *
 * Usage: http_server [--host H] [--port P] [--header-timeout S]
 *                    [--send-timeout S] [--max-header N] [--max-body N]
 * Prints "serving on H:PORT" (port 0 = a free port) and serves until killed.
 */
#include <cio.h>
#include <cio/stream.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

struct config {
  const char *host, *port;
  double header_timeout, send_timeout;
  size_t max_header, max_body;
};
static struct config cfg = {"127.0.0.1", "8080", 10.0, 60.0, 8192, 1 << 20};

/* One connection: the parser and what it found in the current request. */
struct conn {
  cio_stream *s;
  cio_loop *loop;
  cio_task *task;
  /* One timer per connection, re-armed lazily: the task only moves
   * `deadline` (no timer operation per request); when the timer fires
   * early it re-arms itself at the new deadline, else it cancels the task
   * (the read or drain it waits in returns -ECANCELED, nothing is lost). */
  cio_handle *timer;
  double deadline;
  bool timed_out;
  http_parser p;
  size_t head_bytes;     /* request line + header bytes of this request */
  int error;             /* status to answer with and close (400, 413, 431), 0 if none */
  bool started;          /* a byte of the current request has arrived */
  bool headers_done;
  bool expect_continue;
  bool in_expect;        /* the header field being read is Expect */
  char url[1024];
  size_t url_len;
  char *body;            /* POST /echo: the body so far (bounded by max_body) */
  size_t body_len, body_cap;
  bool want_body;
};

/* ---- parser callbacks: record, check limits, never allocate beyond them ---- */

static int head_bytes(struct conn *c, size_t n) {
  c->head_bytes += n;
  if (c->head_bytes > cfg.max_header) {
    c->error = 431;
    return -1; /* stops the parser */
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  struct conn *c = p->data;
  c->started = true;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (head_bytes(c, n)) return -1;
  if (c->url_len + n >= sizeof c->url) {
    c->error = 414; /* a URL over 1 KiB */
    return -1;
  }
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  c->url[c->url_len] = 0;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (head_bytes(c, n + 4)) return -1; /* ": " and CRLF count too */
  /* Fields arrive in pieces only across reads; Expect is short: compare the
   * piece (a split "Expect" is simply not honoured, the client then waits
   * its own timeout and sends the body). */
  c->in_expect = n == 6 && strncasecmp(at, "Expect", 6) == 0;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (head_bytes(c, n)) return -1;
  if (c->in_expect && n == 12 && strncasecmp(at, "100-continue", 12) == 0) c->expect_continue = true;
  return 0;
}

static bool route_is(const struct conn *c, const char *path) {
  size_t n = strlen(path);
  return strncmp(c->url, path, n) == 0 && (c->url[n] == 0 || c->url[n] == '?');
}

static int on_headers_complete(http_parser *p) {
  struct conn *c = p->data;
  c->headers_done = true;
  c->want_body = p->method == HTTP_POST && route_is(c, "/echo");
  /* Content-Length says the body is too big: refuse before reading it. */
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > cfg.max_body) {
    c->error = 413;
    return -1;
  }
  if (c->expect_continue && (c->want_body || p->content_length == 0))
    cio_stream_write(c->s, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (c->body_len + n > cfg.max_body) { /* chunked bodies are checked as they come */
    c->error = 413;
    return -1;
  }
  if (c->want_body) {
    if (c->body_len + n > c->body_cap) {
      size_t cap = c->body_cap ? c->body_cap : 4096;
      while (cap < c->body_len + n) cap *= 2;
      char *b = realloc(c->body, cap);
      if (!b) {
        c->error = 413;
        return -1;
      }
      c->body = b;
      c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, n);
  }
  c->body_len += n; /* a body nobody wants is counted and dropped */
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_parser_pause(p, 1); /* the task answers, then resumes the parser */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- responses ---------------------------------------------------------------- */

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  default: return "Error";
  }
}

/* ---- the connection's deadline ------------------------------------------------ */

static void on_deadline(void *arg) {
  struct conn *c = arg;
  cio_handle_unref(c->timer);
  c->timer = NULL;
  double now = cio_loop_time(c->loop);
  if (now < c->deadline) {
    if (cio_call_later(c->loop, c->deadline - now, on_deadline, c, &c->timer) == 0) return;
  }
  c->timed_out = true;
  cio_task_cancel(c->task, "http_server: timeout");
}

/* The task must be done with whatever it waits for by `seconds` from now. */
static void set_deadline(struct conn *c, double seconds) {
  c->deadline = cio_loop_time(c->loop) + seconds;
}

/* Queue the head (and body) of a response in one write, then drain: a
 * client that does not read stops this task here (bounded memory). */
static int respond(struct conn *c, int status, const char *body, size_t len, size_t content_length,
                   bool head_only, bool keep_alive) {
  /* The head by hand (snprintf was a visible share of a "hello" request). */
  char head[256], num[24];
  char *h = head;
#define PUT(str) (memcpy(h, (str), strlen(str)), h += strlen(str))
  int nl = 0;
  size_t v = content_length;
  do num[sizeof num - 1 - nl++] = (char)('0' + v % 10); while ((v /= 10) && nl < 20);
  PUT("HTTP/1.1 ");
  *h++ = (char)('0' + status / 100), *h++ = (char)('0' + status / 10 % 10), *h++ = (char)('0' + status % 10);
  *h++ = ' ';
  PUT(reason(status));
  PUT("\r\nServer: cio\r\nContent-Type: text/plain\r\nContent-Length: ");
  memcpy(h, num + sizeof num - nl, (size_t)nl);
  h += nl;
  PUT("\r\n");
  PUT(!keep_alive ? "Connection: close\r\n"
      : c->p.http_minor == 0 ? "Connection: keep-alive\r\n" /* HTTP/1.0 */
                             : "");
  PUT("\r\n");
#undef PUT
  size_t n = (size_t)(h - head);
  struct iovec iov[2] = {{head, n}, {(void *)body, head_only ? 0 : len}};
  int rc = cio_stream_writev(c->s, iov, 2);
  if (rc == 0 && cio_stream_write_buffer_size(c->s) > 0) {
    set_deadline(c, cfg.send_timeout); /* the client must keep reading */
    rc = cio_stream_drain(c->s);
  }
  return rc;
}

static int error_response(struct conn *c, int status) {
  const char *msg = reason(status);
  char body[64];
  int n = snprintf(body, sizeof body, "%d %s\n", status, msg);
  return respond(c, status, body, (size_t)n, (size_t)n, false, false);
}

/* GET /stream?bytes=N: the head, then N bytes in 64 KiB writes, each drained. */
static int stream_body(struct conn *c, size_t total, bool head_only, bool keep_alive) {
  static char chunk[65536];
  if (!chunk[0]) memset(chunk, 'x', sizeof chunk);
  int rc = respond(c, 200, NULL, 0, total, true, keep_alive);
  for (size_t sent = 0; rc == 0 && !head_only && sent < total; sent += sizeof chunk) {
    size_t k = total - sent < sizeof chunk ? total - sent : sizeof chunk;
    rc = cio_stream_write(c->s, chunk, k);
    if (rc == 0) {
      set_deadline(c, cfg.send_timeout);
      rc = cio_stream_drain(c->s);
    }
  }
  return rc;
}

static int answer(struct conn *c, bool keep_alive) {
  http_parser *p = &c->p;
  bool head = p->method == HTTP_HEAD;
  bool get = p->method == HTTP_GET || head;
  if (route_is(c, "/hello")) {
    if (!get) return respond(c, 405, "405 Method Not Allowed\n", 23, 23, false, keep_alive);
    return respond(c, 200, "hello\n", 6, 6, head, keep_alive);
  }
  if (route_is(c, "/stream")) {
    if (!get) return respond(c, 405, "405 Method Not Allowed\n", 23, 23, false, keep_alive);
    size_t total = 1 << 20;
    const char *q = strstr(c->url, "bytes=");
    if (q) total = strtoull(q + 6, NULL, 10);
    return stream_body(c, total, head, keep_alive);
  }
  if (route_is(c, "/echo")) {
    if (p->method != HTTP_POST)
      return respond(c, 405, "405 Method Not Allowed\n", 23, 23, false, keep_alive);
    return respond(c, 200, c->body, c->body_len, c->body_len, false, keep_alive);
  }
  return respond(c, 404, "404 Not Found\n", 14, 14, head, keep_alive);
}

static void next_request(struct conn *c) {
  c->head_bytes = 0;
  c->error = 0;
  c->started = c->headers_done = c->expect_continue = c->in_expect = c->want_body = false;
  c->url_len = 0;
  c->url[0] = 0;
  c->body_len = 0;
}

/* ---- the connection's task ----------------------------------------------------- */

static int serve_connection(struct conn *c) {
  char buf[16384];
  /* The head must be complete by the deadline (set again after each
   * request); in a body, each read may take up to the same time. */
  set_deadline(c, cfg.header_timeout);
  int rc = cio_call_later(c->loop, cfg.header_timeout, on_deadline, c, &c->timer);
  if (rc < 0) return rc;
  for (;;) {
    ssize_t n = cio_stream_read(c->s, buf, sizeof buf);
    if (n == -ECANCELED && c->timed_out) {
      /* Slowloris (408), or an idle keep-alive connection (closed). */
      cio_task_uncancel(c->task);
      return c->started && !c->headers_done ? error_response(c, 408) : 0;
    }
    if (n < 0) return (int)n;
    size_t len = (size_t)n, off = 0;
    if (len == 0) { /* EOF: tell the parser (a body "until close" ends here) */
      http_parser_execute(&c->p, &settings, NULL, 0);
      return 0;
    }
    if (c->headers_done) set_deadline(c, cfg.header_timeout); /* body: per read */
    while (off < len) {
      size_t used = http_parser_execute(&c->p, &settings, buf + off, len - off);
      off += used;
      enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
      if (e == HPE_PAUSED) { /* one complete request */
        /* Upgrade and CONNECT are not served: answer, then close. */
        bool keep_alive = http_should_keep_alive(&c->p) && !c->p.upgrade;
        rc = answer(c, keep_alive);
        if (rc < 0 || !keep_alive) return rc;
        next_request(c);
        set_deadline(c, cfg.header_timeout);
        http_parser_pause(&c->p, 0);
        continue;
      }
      if (e != HPE_OK || used == 0) { /* (no progress: the parser stopped, e.g. an upgrade) */
        int status = c->error ? c->error : e == HPE_HEADER_OVERFLOW ? 431 : 400;
        return error_response(c, status);
      }
    }
  }
}

static int handle(cio_stream *s, void *arg) {
  (void)arg;
  struct conn *c = calloc(1, sizeof *c);
  if (!c) return cio_raise(-ENOMEM, "out of memory");
  c->s = s;
  c->loop = cio_get_running_loop();
  c->task = cio_current_task();
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  int rc = serve_connection(c);
  if (c->timer) {
    cio_handle_cancel(c->timer);
    cio_handle_unref(c->timer);
  }
  if (c->timed_out) { /* a client too slow to read: not an error of ours */
    cio_task_uncancel(c->task);
    if (rc == -ECANCELED) rc = 0;
  }
  free(c->body);
  free(c);
  /* A client that goes away or is too slow is not the server's error. */
  if (rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT || rc == -ECANCELED) rc = 0;
  return rc;
}

static int serve(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_stream_opts opts = {.backlog = 4096};
  cio_server *srv;
  int rc = cio_start_server(handle, NULL, cfg.host, cfg.port, &opts, &srv);
  if (rc < 0) return rc;
  printf("serving on %s:%d\n", cfg.host, cio_server_port(srv));
  fflush(stdout);
  rc = cio_server_serve_forever(srv);
  cio_server_free(srv);
  return rc;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--host")) cfg.host = v;
    else if (!strcmp(k, "--port")) cfg.port = v;
    else if (!strcmp(k, "--header-timeout")) cfg.header_timeout = atof(v);
    else if (!strcmp(k, "--send-timeout")) cfg.send_timeout = atof(v);
    else if (!strcmp(k, "--max-header")) cfg.max_header = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--max-body")) cfg.max_body = strtoull(v, NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--host H] [--port P] [--header-timeout S] [--send-timeout S] "
                      "[--max-header N] [--max-body N]\n", argv[0]);
      return 2;
    }
  }
  if ((argc - 1) % 2) {
    fprintf(stderr, "%s: option %s needs a value\n", argv[0], argv[argc - 1]);
    return 2;
  }
  /* The parser's own head limit, as a second guard beside the callbacks'. */
  http_parser_set_max_header_size((uint32_t)cfg.max_header + 1024);
  /* Many connections: lift the descriptor limit to the hard limit, as nginx's
   * worker_rlimit_nofile does. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int rc = cio_run(serve, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "http_server: %s\n", cio_errmsg());
    return 1;
  }
  return 0;
}
