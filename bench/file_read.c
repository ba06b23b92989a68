/* Files: read a file sequentially in 64 KiB chunks, then again through a
 * file stream (cio_stream_open_file + cio_stream_read of 64 KiB), then 4 KiB
 * at random offsets with 64 reads in flight (64 tasks), through cio's file
 * calls: on
 * io_uring the kernel runs them, on epoll the thread pool (CIO_BACKEND picks;
 * --blocking uses plain pread() in one thread: the limit).
 * Prints "file_read: <backend>, seq <MB/s> MB/s, stream <MB/s> MB/s, rand <k> kIOPS"
 * (no stream figure for --blocking).
 * Usage: bench_file_read PATH [--blocking]   (PATH: an existing file; the
 * page cache holds it after the first run, so this measures the mechanism,
 * not the disk) */
#include <fcntl.h>
#include <sys/stat.h>

#include "cio_bench.h"

#define SEQ_CHUNK (64 * 1024)
#define RAND_SIZE 4096
#define INFLIGHT 64
#define RAND_READS 200000

static const char *path;
static off_t size;
static int fd;
static long rand_left;
static bool blocking;

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static int rand_reader(void *arg, void **result) {
  (void)result;
  uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  char buf[RAND_SIZE];
  while (rand_left > 0) {
    rand_left--;
    off_t off = (off_t)(xorshift(&seed) % (uint64_t)(size / RAND_SIZE)) * RAND_SIZE;
    ssize_t r = blocking ? pread(fd, buf, RAND_SIZE, off) : cio_file_pread(fd, buf, RAND_SIZE, off);
    if (r != RAND_SIZE) bench_die("pread", r < 0 ? (int)r : -EIO);
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg, (void)result;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) bench_die("open", -errno);
  static char buf[SEQ_CHUNK];
  int64_t t0 = bench_now_ns();
  off_t total = 0;
  for (;;) {
    ssize_t r = blocking ? read(fd, buf, SEQ_CHUNK) : cio_file_read(fd, buf, SEQ_CHUNK);
    if (r < 0) bench_die("read", (int)r);
    if (r == 0) break;
    total += r;
  }
  double seq_s = (double)(bench_now_ns() - t0) / 1e9;
  char stream_fig[48] = "";
  if (!blocking) {
    cio_stream *s;
    int rc = cio_stream_open_file(path, O_RDONLY, 0, NULL, &s);
    if (rc < 0) bench_die("cio_stream_open_file", rc);
    t0 = bench_now_ns();
    off_t got = 0;
    ssize_t r;
    while ((r = cio_stream_read(s, buf, SEQ_CHUNK)) > 0) got += r;
    if (r < 0 || got != total) bench_die("cio_stream_read", r < 0 ? (int)r : -EIO);
    double st_s = (double)(bench_now_ns() - t0) / 1e9;
    cio_stream_free(s);
    snprintf(stream_fig, sizeof stream_fig, ", stream %.0f MB/s", (double)got / 1e6 / st_s);
  }
  rand_left = RAND_READS;
  cio_task *ts[INFLIGHT];
  t0 = bench_now_ns();
  for (int i = 0; i < INFLIGHT; i++) ts[i] = cio_create_task(rand_reader, (void *)(uintptr_t)(i + 1), NULL);
  for (int i = 0; i < INFLIGHT; i++) {
    int rc = cio_await(ts[i], NULL);
    if (rc < 0) bench_die("rand_reader", rc);
    cio_task_unref(ts[i]);
  }
  double rand_s = (double)(bench_now_ns() - t0) / 1e9;
  close(fd);
  printf("file_read: %s, seq %.0f MB/s%s, rand %.1f kIOPS\n",
         blocking ? "blocking pread" : cio_loop_backend(cio_get_running_loop()),
         (double)total / 1e6 / seq_s, stream_fig, RAND_READS / rand_s / 1e3);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH [--blocking]\n", argv[0]);
    return 2;
  }
  path = argv[1];
  blocking = argc > 2 && strcmp(argv[2], "--blocking") == 0;
  struct stat st;
  if (stat(path, &st) < 0 || st.st_size < RAND_SIZE) {
    fprintf(stderr, "%s: not a file of at least 4 KiB\n", path);
    return 2;
  }
  size = st.st_size;
  return cio_run(main_task, NULL, NULL) < 0;
}
