/* Count the lines of a (large) file with cio's file I/O while a ticker task
 * keeps running: the loop never stalls on the disk. On io_uring
 * (CIO_BACKEND=uring) the kernel does the reads; on epoll, the thread pool.
 *
 * Usage: file_lines [path]   (default: a 64 MiB file it writes first)
 *
 * The asyncio twin (examples/py/file_lines.py) needs aiofiles, a thread pool
 * in disguise. */
#include <cio.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

static int count_lines(void *arg, void **result) {
  const char *path = arg;
  (void)result;
  int fd = cio_file_open(path, O_RDONLY, 0);
  if (fd < 0) return fd;
  static char buf[1 << 16];
  long lines = 0;
  ssize_t n;
  while ((n = cio_file_read(fd, buf, sizeof buf)) > 0)
    for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))); p++) lines++;
  cio_file_close(fd);
  if (n < 0) return (int)n;
  printf("%s: %ld lines\n", path, lines);
  return 0;
}

static int main_task(void *arg, void **result) {
  const char *path = arg;
  char tmp[64] = "";
  if (!path) { /* make a file: 1,000,000 lines of 64 bytes */
    snprintf(tmp, sizeof tmp, "/tmp/cio_file_lines.%d", (int)getpid());
    size_t len = 64u * 1000000;
    char *data = malloc(len);
    if (!data) return cio_raise(-ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) data[i] = i % 64 == 63 ? '\n' : 'x';
    int rc = cio_file_write_all(tmp, data, len);
    free(data);
    if (rc < 0) return rc;
    path = tmp;
  }
  cio_task *tick = cio_create_task(ticker, NULL, NULL);
  double t0 = cio_loop_time(cio_get_running_loop());
  int rc = count_lines((void *)path, result);
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
