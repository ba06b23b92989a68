/* Helpers shared by cio's benchmark programs (bench/<name>.c).
 *
 * Every program prints exactly one result line on stdout, in the format the
 * harness (bench/run.py) parses for cio and for every peer alike:
 *
 *     <name>: <number> <unit>[, [<label> ]<number> <unit>]...
 *
 * e.g. "spawn: 87.3 ns/task, peak RSS 12.3 MiB". Anything else (progress,
 * errors) goes to stderr. Memory is measured the same way for every peer:
 * peak RSS from getrusage(), and bytes per task as (peak RSS - RSS just before
 * the tasks were created) / count. */
#ifndef CIO_BENCH_H
#define CIO_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cio.h>

static inline int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Peak resident set size of this process, bytes. */
static inline int64_t bench_peak_rss(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_maxrss * 1024;
}

/* Current resident set size, bytes (from /proc/self/statm). */
static inline int64_t bench_current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* The iteration count: argv[1] if given (accepts 1e6, 1000000, 1_000_000 is
 * not accepted), else dflt. Exits with a message on a bad value. */
static inline long bench_count(int argc, char **argv, long dflt) {
  if (argc < 2) return dflt;
  char *end;
  double v = strtod(argv[1], &end);
  if (*end || !(v >= 1) || v > 1e12) {
    fprintf(stderr, "usage: %s [count]   (count >= 1, e.g. 1000000 or 1e6)\n", argv[0]);
    exit(2);
  }
  return (long)v;
}

/* Report a failed cio call and exit. */
static inline void bench_die(const char *what, int rc) {
  fprintf(stderr, "%s failed: %s (%s) %s\n", what, cio_err_name(rc), cio_strerror(rc),
          cio_errmsg());
  exit(1);
}

#endif
