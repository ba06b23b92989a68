/* Count the lines of a (large) file with readline on a file stream while a
 * ticker task keeps running: the loop never stalls on the disk. On io_uring
 * (CIO_BACKEND=uring) the kernel does the reads that miss the page cache;
 * on epoll, the thread pool.
 *
 * Usage: file_lines [path]   (default: a 64 MB file of 1,000,000 lines,
 * written first through a write stream)
 *
 * The asyncio twin (examples/py/file_lines.py) needs aiofiles, a thread pool
 * in disguise: every line it reads is a trip to a worker thread. */
#include <cio.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int ticks;

static int ticker(void *arg, void **result) {
  (void)arg, (void)result;
  for (;;) {
    int rc = cio_sleep(0.001);
    if (rc < 0) return rc;
    ticks++;
  }
}

/* async with aiofiles.open(path, 'w') as f: for ...: await f.write(line) */
static int write_lines(const char *path, long n) {
  cio_stream *out;
  int rc = cio_stream_open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, NULL, &out);
  if (rc < 0) return rc;
  char line[64];
  memset(line, 'x', sizeof line);
  line[63] = '\n';
  for (long i = 0; i < n && rc == 0; i++) {
    rc = cio_stream_write(out, line, sizeof line); /* never suspends */
    if (rc == 0) rc = cio_stream_drain(out);       /* bounds what is pending */
  }
  cio_stream_close(out); /* writes the rest, then closes */
  int wc = cio_stream_wait_closed(out);
  cio_stream_free(out);
  return rc < 0 ? rc : wc;
}

/* async with aiofiles.open(path) as f: async for line in f: lines += 1 */
static int count_lines(const char *path) {
  cio_stream *in;
  int rc = cio_stream_open_file(path, O_RDONLY, 0, NULL, &in);
  if (rc < 0) return rc;
  long lines = 0;
  const char *line;
  ssize_t n;
  while ((n = cio_stream_readline(in, &line)) > 0) lines++;
  cio_stream_free(in);
  if (n < 0) return (int)n;
  printf("%s: %ld lines\n", path, lines);
  return 0;
}

static int main_task(void *arg, void **result) {
  const char *path = arg;
  (void)result;
  char tmp[64] = "";
  if (!path) {
    snprintf(tmp, sizeof tmp, "/tmp/cio_file_lines.%d", (int)getpid());
    int rc = write_lines(tmp, 1000000);
    if (rc < 0) {
      unlink(tmp);
      return rc;
    }
    path = tmp;
  }
  cio_task *tick = cio_create_task(ticker, NULL, NULL);
  double t0 = cio_loop_time(cio_get_running_loop());
  int rc = count_lines(path);
  double dt = cio_loop_time(cio_get_running_loop()) - t0;
  cio_task_cancel(tick, NULL);
  if (cio_await(tick, NULL)) {} /* cancelled: -ECANCELED */
  cio_task_unref(tick);
  printf("%.3f s on %s; the ticker ran %d times meanwhile\n", dt,
         cio_loop_backend(cio_get_running_loop()), ticks);
  if (tmp[0]) unlink(tmp);
  return rc;
}

int main(int argc, char **argv) {
  int rc = cio_run(main_task, argc > 1 ? argv[1] : NULL, NULL);
  if (rc < 0) fprintf(stderr, "file_lines: %s\n", cio_errmsg());
  return rc < 0;
}
