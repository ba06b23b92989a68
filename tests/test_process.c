/* Child processes with real programs: exec, wait, communicate, signals, fd
 * hygiene, cancellation, the SIGCHLD fallback, loop close. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio_test.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BIG (16u << 20) /* sanitizers make copying slow: 16 MiB there */
#else
#define BIG (100u << 20) /* 100 MiB each way */
#endif

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

static bool no_children(void) {
  errno = 0;
  return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static int run_real(cio_task_fn fn, void *arg) {
  int rc = cio_run(fn, arg, NULL);
  if (rc < 0) fail_msg("main task: %s (%s)", cio_err_name(rc), cio_errmsg());
  return rc;
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int exit_codes_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process *p;
  int code = -100;
  assert_code(cio_subprocess_exec(ARGV("true"), NULL, &p), 0);
  assert_true(cio_process_pid(p) > 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 0);
  assert_true(cio_process_returncode(p, &code));
  assert_int_equal(cio_process_send_signal(p, SIGTERM), 0); /* reaped: nothing happens */
  cio_process_free(p);
  assert_code(cio_subprocess_exec(ARGV("false"), NULL, &p), 0);
  assert_false(cio_process_returncode(p, NULL) && false);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 1);
  cio_process_free(p);
  assert_code(cio_subprocess_shell("exit 7", NULL, &p), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 7);
  cio_process_free(p);
  /* killed by a signal: minus its number */
  assert_code(cio_subprocess_exec(ARGV("sleep", "10"), NULL, &p), 0);
  assert_false(cio_process_returncode(p, &code));
  assert_code(cio_process_kill(p), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, -9);
  cio_process_free(p);
  assert_code(cio_subprocess_exec(ARGV("sleep", "10"), NULL, &p), 0);
  assert_code(cio_process_terminate(p), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, -SIGTERM);
  assert_code(cio_process_wait(p, &code), 0); /* again: at once */
  cio_process_free(p);
  return 0;
}

static void test_exit_codes(void **state) {
  (void)state;
  run_real(exit_codes_main, NULL);
  assert_true(no_children());
}

static int bad_input_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process *p = (cio_process *)1;
  int fds = count_fds();
  cio_process_options o = {.out = CIO_PIPE, .err = CIO_PIPE, .in = CIO_PIPE};
  assert_code(cio_subprocess_exec(ARGV("/nonexistent/prog"), &o, &p), -ENOENT);
  assert_null(p);
  assert_non_null(strstr(cio_errmsg(), "/nonexistent/prog"));
  assert_code(cio_subprocess_exec(ARGV("cio-no-such-program"), &o, &p), -ENOENT);
  assert_non_null(strstr(cio_errmsg(), "cio-no-such-program"));
  assert_code(cio_subprocess_exec(ARGV("/etc/passwd"), &o, &p), -EACCES);
  assert_code(cio_subprocess_exec(ARGV("true"), &(cio_process_options){.cwd = "/nonexistent"}, &p),
              -ENOENT);
  assert_non_null(strstr(cio_errmsg(), "/nonexistent"));
  assert_int_equal(count_fds(), fds); /* nothing left open */
  assert_code(cio_subprocess_exec(NULL, NULL, &p), -EINVAL);
  assert_code(cio_subprocess_exec(ARGV("true"), NULL, NULL), -EINVAL);
  assert_code(cio_subprocess_exec(ARGV("true"), &(cio_process_options){.out = CIO_STDOUT}, &p),
              -EINVAL);
  assert_code(cio_subprocess_exec(ARGV("true"), &(cio_process_options){.out = CIO_FD(999)}, &p),
              -EBADF);
  assert_code(cio_subprocess_exec(ARGV("true"), &(cio_process_options){.pass_fds = (int[]){1}, .npass_fds = 1}, &p),
              -EINVAL);
  assert_code(cio_subprocess_shell(NULL, NULL, &p), -EINVAL);
  /* Through the shell it is the shell that fails, as asyncio. */
  int code;
  assert_code(cio_subprocess_shell("cio-no-such-program 2>/dev/null", NULL, &p), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 127);
  cio_process_free(p);
  assert_code(cio_process_wait(NULL, &code), -EINVAL);
  assert_code(cio_process_free(NULL), -EINVAL);
  return 0;
}

static void test_bad_input(void **state) {
  (void)state;
  run_real(bad_input_main, NULL);
  cio_process *p;
  assert_code(cio_subprocess_exec(ARGV("true"), NULL, &p), CIO_ENOTRUNNING);
}

/* fd exhaustion while creating the pipes leaves nothing open: fill the fd
 * table under a low limit, then free 0..5 slots so that each pipe (and the
 * spawn itself) fails in turn. */
static int fd_exhaustion_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  int fds = count_fds();
  cio_process_options o = {.in = CIO_PIPE, .out = CIO_PIPE, .err = CIO_PIPE};
  for (int room = 0; room < 6; room++) {
    low = old;
    low.rlim_cur = (rlim_t)(fds + 64);
    setrlimit(RLIMIT_NOFILE, &low);
    int fill[128], nfill = 0;
    int fd;
    while (nfill < 128 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) fill[nfill++] = fd;
    for (int i = 0; i < room; i++) close(fill[--nfill]);
    cio_process *p = NULL;
    int rc = cio_subprocess_exec(ARGV("true"), &o, &p);
    while (nfill) close(fill[--nfill]);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_code(rc, -EMFILE);
    assert_null(p);
    assert_int_equal(count_fds(), fds);
  }
  return 0;
}

static void test_fd_exhaustion(void **state) {
  (void)state;
  run_real(fd_exhaustion_main, NULL);
}

/* ---- communicate ------------------------------------------------------------------ */

static uint64_t checksum(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static int big_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  size_t n = BIG;
  unsigned char *in = malloc(n);
  for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 2654435761u >> 13);
  cio_process *p;
  cio_process_options o = {.in = CIO_PIPE, .out = CIO_PIPE, .err = CIO_PIPE};
  assert_code(cio_subprocess_exec(ARGV("cat"), &o, &p), 0);
  char *out, *err;
  size_t olen, elen;
  assert_code(cio_process_communicate(p, in, n, &out, &olen, &err, &elen), 0);
  assert_int_equal(olen, n);
  assert_int_equal(elen, 0);
  assert_true(checksum((unsigned char *)out, olen) == checksum(in, n));
  int code;
  assert_true(cio_process_returncode(p, &code));
  assert_int_equal(code, 0);
  free(out);
  free(err);
  free(in);
  cio_process_free(p);
  return 0;
}

static void test_communicate_100mb_through_cat(void **state) {
  (void)state;
  run_real(big_main, NULL);
}

static int comm_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process *p;
  char *out, *err;
  size_t olen, elen;
  cio_process_options o = {.out = CIO_PIPE, .err = CIO_PIPE};
  assert_code(cio_subprocess_shell("echo out; echo err >&2; exit 3", &o, &p), 0);
  assert_code(cio_process_communicate(p, NULL, 0, &out, &olen, &err, &elen), 0);
  assert_string_equal(out, "out\n");
  assert_string_equal(err, "err\n");
  int code;
  assert_true(cio_process_returncode(p, &code));
  assert_int_equal(code, 3);
  free(out);
  free(err);
  cio_process_free(p);
  /* stderr to stdout */
  o.err.mode = CIO_STDIO_STDOUT;
  assert_code(cio_subprocess_shell("echo a; echo b >&2; echo c", &o, &p), 0);
  assert_code(cio_process_communicate(p, NULL, 0, &out, &olen, &err, &elen), 0);
  assert_string_equal(out, "a\nb\nc\n");
  assert_null(err);
  free(out);
  cio_process_free(p);
  /* sort reads all of stdin before writing */
  o = (cio_process_options){.in = CIO_PIPE, .out = CIO_PIPE};
  assert_code(cio_subprocess_exec(ARGV("sort"), &o, &p), 0);
  assert_code(cio_process_communicate(p, "b\nc\na\n", 6, &out, &olen, NULL, NULL), 0);
  assert_string_equal(out, "a\nb\nc\n");
  free(out);
  cio_process_free(p);
  /* empty input still closes stdin */
  assert_code(cio_subprocess_exec(ARGV("cat"), &o, &p), 0);
  assert_code(cio_process_communicate(p, "", 0, &out, &olen, NULL, NULL), 0);
  assert_int_equal(olen, 0);
  free(out);
  cio_process_free(p);
  /* a child that closes stdin early while we write: not an error */
  assert_code(cio_subprocess_exec(ARGV("head", "-c", "10"), &o, &p), 0);
  size_t n = 8u << 20;
  char *in = calloc(1, n);
  assert_code(cio_process_communicate(p, in, n, &out, &olen, NULL, NULL), 0);
  assert_int_equal(olen, 10);
  free(in);
  free(out);
  cio_process_free(p);
  /* yes never stops on its own: stdout DEVNULL, kill it */
  assert_code(cio_subprocess_exec(ARGV("yes"), &(cio_process_options){.out = CIO_DEVNULL}, &p), 0);
  assert_code(cio_sleep(0.01), 0);
  cio_process_kill(p);
  int code2;
  assert_code(cio_process_wait(p, &code2), 0);
  assert_int_equal(code2, -SIGKILL);
  cio_process_free(p);
  /* communicate with a deadline: the child keeps running */
  o = (cio_process_options){.out = CIO_PIPE, .err = CIO_PIPE};
  assert_code(cio_subprocess_shell("echo partial; sleep 5", &o, &p), 0);
  assert_code(cio_process_communicate_timeout(p, NULL, 0, &out, &olen, &err, &elen, 0.05),
              -ETIMEDOUT);
  assert_null(out);
  assert_false(cio_process_returncode(p, NULL));
  cio_process_kill(p);
  assert_code(cio_process_wait_timeout(p, 5, &code2), 0);
  assert_int_equal(code2, -SIGKILL);
  cio_process_free(p);
  /* a child that keeps running after closing stdout */
  o = (cio_process_options){.out = CIO_PIPE};
  assert_code(cio_subprocess_shell("echo x; exec >&-; sleep 0.2; exit 4", &o, &p), 0);
  assert_code(cio_process_communicate(p, NULL, 0, &out, &olen, NULL, NULL), 0);
  assert_string_equal(out, "x\n");
  assert_true(cio_process_returncode(p, &code));
  assert_int_equal(code, 4);
  free(out);
  cio_process_free(p);
  return 0;
}

static void test_communicate(void **state) {
  (void)state;
  run_real(comm_main, NULL);
  assert_true(no_children());
}

/* ---- PIPE ends are streams ------------------------------------------------------- */

static int streams_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process *p;
  const char *line;
  cio_process_options o = {.out = CIO_PIPE};
  assert_code(cio_subprocess_shell("echo one; echo two", &o, &p), 0);
  assert_null(cio_process_stdin(p));
  assert_null(cio_process_stderr(p));
  cio_stream *out = cio_process_stdout(p);
  assert_int_equal(cio_stream_readline(out, &line), 4);
  assert_memory_equal(line, "one\n", 4);
  assert_int_equal(cio_stream_readline(out, &line), 4);
  assert_memory_equal(line, "two\n", 4);
  assert_int_equal(cio_stream_readline(out, &line), 0);
  int code;
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 0);
  cio_process_free(p);
  /* a conversation with cat */
  o.in.mode = CIO_STDIO_PIPE;
  assert_code(cio_subprocess_exec(ARGV("cat"), &o, &p), 0);
  for (int i = 0; i < 100; i++) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "line %d\n", i);
    assert_code(cio_stream_write(cio_process_stdin(p), msg, (size_t)n), 0);
    assert_code(cio_stream_drain(cio_process_stdin(p)), 0);
    assert_int_equal(cio_stream_readline(cio_process_stdout(p), &line), n);
    assert_memory_equal(line, msg, (size_t)n);
  }
  assert_code(cio_stream_close(cio_process_stdin(p)), 0);
  assert_int_equal(cio_stream_readline(cio_process_stdout(p), &line), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 0);
  cio_process_free(p);
  /* writing to a child that has exited: -EPIPE, never SIGPIPE */
  o = (cio_process_options){.in = CIO_PIPE};
  assert_code(cio_subprocess_exec(ARGV("true"), &o, &p), 0);
  assert_code(cio_process_wait(p, &code), 0);
  int wrc = cio_stream_write(cio_process_stdin(p), "x", 1);
  if (wrc == 0) wrc = cio_stream_drain(cio_process_stdin(p));
  assert_code(wrc, -EPIPE);
  assert_code(cio_process_send_signal(p, -1), -EINVAL);
  assert_code(cio_process_send_signal(p, 9999), -EINVAL);
  cio_process_free(p);
  o.out = CIO_PIPE;
  /* a read with a timeout; then a child killed while we read */
  assert_code(cio_subprocess_exec(ARGV("sleep", "5"), &o, &p), 0);
  assert_code((int)cio_stream_readline_timeout(cio_process_stdout(p), &line, 0.05), -ETIMEDOUT);
  cio_process_kill(p);
  assert_int_equal(cio_stream_readline(cio_process_stdout(p), &line), 0);
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, -SIGKILL);
  cio_process_free(p);
  return 0;
}

static void test_pipe_streams(void **state) {
  (void)state;
  run_real(streams_main, NULL);
  assert_true(no_children());
}

/* ---- environment, cwd, fds, signals in the child ------------------------------------ */

static char *run_capture(const char *cmd, cio_process_options *o) {
  cio_process *p;
  o->out.mode = CIO_STDIO_PIPE;
  assert_code(cio_subprocess_shell(cmd, o, &p), 0);
  char *out;
  assert_code(cio_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), 0);
  cio_process_free(p);
  return out;
}

static int child_env_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  char *s;
  setenv("CIO_TEST_INHERITED", "yes", 1);
  s = run_capture("echo $CIO_TEST_INHERITED", &(cio_process_options){0});
  assert_string_equal(s, "yes\n");
  free(s);
  s = run_capture("echo ${CIO_TEST_INHERITED:-none} $ONLY",
                  &(cio_process_options){.env = (const char *[]){"ONLY=1", NULL}});
  assert_string_equal(s, "none 1\n");
  free(s);
  s = run_capture("echo $CIO_TEST_INHERITED $ONLY",
                  &(cio_process_options){.env = (const char *[]){"ONLY=2", "CIO_TEST_INHERITED=over", NULL},
                                         .env_add = true});
  assert_string_equal(s, "over 2\n");
  free(s);
  s = run_capture("pwd", &(cio_process_options){.cwd = "/tmp"});
  assert_string_equal(s, "/tmp\n");
  free(s);
  /* Only 0, 1, 2 (and ls's own directory fd) are open in the child, even
   * though the parent holds an fd without FD_CLOEXEC. */
  int leak = open("/dev/null", O_RDONLY);
  assert_true(leak > 2);
  s = run_capture("ls /proc/self/fd | sort -n | tr '\\n' ' '", &(cio_process_options){0});
  assert_string_equal(s, "0 1 2 3 ");
  free(s);
  /* pass_fds keeps a fd under its number */
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "echo passed > /proc/self/fd/%d", pfd[1]);
  s = run_capture(cmd, &(cio_process_options){.pass_fds = &pfd[1], .npass_fds = 1});
  free(s);
  char buf[16] = {0};
  assert_int_equal(read(pfd[0], buf, sizeof buf - 1), 7);
  assert_string_equal(buf, "passed\n");
  close(pfd[0]);
  close(pfd[1]);
  close(leak);
  /* An empty signal mask and SIGPIPE at its default, though the parent
   * blocks SIGUSR1 (a loop handler) and ignores SIGPIPE. */
  cio_loop *loop = cio_get_running_loop();
  assert_code(cio_add_signal_handler(loop, SIGUSR1, (cio_callback_fn)abort, NULL), 0);
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  assert_true(sa.sa_handler == SIG_IGN); /* set by the first spawn */
  s = run_capture("grep -E '^Sig(Blk|Ign)' /proc/$$/status | tr '\\t\\n' '  '", &(cio_process_options){0});
  /* SigIgn may hold what the test runner ignores, but never SIGPIPE (bit 13). */
  unsigned long long blk, ign;
  assert_int_equal(sscanf(s, "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
  assert_true(blk == 0);
  assert_false(ign & (1ull << (SIGPIPE - 1)));
  free(s);
  assert_int_equal(cio_remove_signal_handler(loop, SIGUSR1), 1);
  /* new session / process group */
  cio_process *p;
  cio_process_options o = {.out = CIO_PIPE, .start_new_session = true};
  assert_code(cio_subprocess_shell("cut -d' ' -f5,6 /proc/$$/stat", &o, &p), 0);
  char *out;
  assert_code(cio_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), 0);
  snprintf(cmd, sizeof cmd, "%d %d\n", cio_process_pid(p), cio_process_pid(p));
  assert_string_equal(out, cmd);
  free(out);
  cio_process_free(p);
  o = (cio_process_options){.out = CIO_PIPE, .new_process_group = true};
  assert_code(cio_subprocess_shell("cut -d' ' -f5,6 /proc/$$/stat", &o, &p), 0);
  assert_code(cio_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), 0);
  int pgrp, sid;
  assert_int_equal(sscanf(out, "%d %d", &pgrp, &sid), 2);
  assert_int_equal(pgrp, cio_process_pid(p));
  assert_int_equal(sid, getsid(0));
  free(out);
  cio_process_free(p);
  /* an fd of the caller's, and DEVNULL */
  int fpipe[2];
  assert_int_equal(pipe(fpipe), 0);
  assert_code(cio_subprocess_shell("echo to-fd; cat", &(cio_process_options){.out = CIO_FD(fpipe[1]),
                                                                      .in = CIO_DEVNULL}, &p), 0);
  int code;
  assert_code(cio_process_wait(p, &code), 0);
  assert_int_equal(code, 0);
  cio_process_free(p);
  memset(buf, 0, sizeof buf);
  assert_int_equal(read(fpipe[0], buf, sizeof buf - 1), 6);
  assert_string_equal(buf, "to-fd\n");
  close(fpipe[0]);
  close(fpipe[1]);
  return 0;
}

static void test_child_environment(void **state) {
  (void)state;
  run_real(child_env_main, NULL);
}

/* ---- many children, watchers, cancellation, lifetime ------------------------------- */

static int many_main(void *arg, void **result) {
  (void)result;
  int n = (int)(intptr_t)arg;
  cio_process **ps = calloc((size_t)n, sizeof *ps);
  for (int i = 0; i < n; i++)
    assert_code(cio_subprocess_exec(ARGV("sleep", "0.2"), &(cio_process_options){.out = CIO_PIPE}, &ps[i]), 0);
  for (int i = 0; i < n; i++) {
    int code;
    assert_code(cio_process_wait(ps[i], &code), 0);
    assert_int_equal(code, 0);
    cio_process_free(ps[i]);
  }
  free(ps);
  return 0;
}

static void test_thousand_children(void **state) {
  (void)state;
  /* 1,000 children with a pipe and a pidfd each need ~2,000 fds: raise the
   * soft limit (often 1,024) towards the hard one. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 4096) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int fds = count_fds();
  run_real(many_main, (void *)(intptr_t)1000);
  assert_true(no_children());
  assert_int_equal(count_fds(), fds);
}

static void test_sigchld_fallback(void **state) {
  (void)state;
  int fds = count_fds();
  setenv("CIO_CHILD_WATCHER", "sigchld", 1);
  run_real(many_main, (void *)(intptr_t)200);
  run_real(exit_codes_main, NULL);
  run_real(comm_main, NULL);
  unsetenv("CIO_CHILD_WATCHER");
  assert_true(no_children());
  assert_int_equal(count_fds(), fds);
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  assert_false(sigismember(&cur, SIGCHLD)); /* restored */
}

static cio_process *shared;

static int waiter(void *arg, void **result) {
  (void)arg;
  (void)result;
  int code;
  return cio_process_wait(shared, &code);
}

/* Cancel a wait at its suspension: the child keeps running; other waiters
 * are unaffected. */
static int cancel_wait_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_subprocess_exec(ARGV("sleep", "0.3"), NULL, &shared), 0);
  cio_task *a = cio_create_task(waiter, NULL, NULL), *b = cio_create_task(waiter, NULL, NULL);
  assert_code(cio_sleep(0.01), 0);
  cio_task_cancel(a, NULL);
  assert_code(cio_await(a, NULL), -ECANCELED);
  assert_int_equal(kill(cio_process_pid(shared), 0), 0); /* still running */
  assert_false(cio_process_returncode(shared, NULL));
  /* a wait under a timeout scope: -ETIMEDOUT, the child still runs */
  cio_timeout to = {0};
  int rc = 0;
  CIO_WITH_TIMEOUT(&to, 0.02, rc) { rc = cio_process_wait(shared, NULL); }
  assert_code(rc, -ETIMEDOUT);
  assert_code(cio_process_wait_timeout(shared, 0.02, NULL), -ETIMEDOUT);
  assert_code(cio_process_wait_timeout(shared, NAN, NULL), -EINVAL);
  assert_int_equal(kill(cio_process_pid(shared), 0), 0);
  assert_code(cio_await(b, NULL), 0);
  int code;
  assert_true(cio_process_returncode(shared, &code));
  assert_int_equal(code, 0);
  cio_task_unref(a);
  cio_task_unref(b);
  cio_process_free(shared);
  return 0;
}

static void test_cancelled_wait_does_not_kill(void **state) {
  (void)state;
  run_real(cancel_wait_main, NULL);
  assert_true(no_children());
}

struct comm_case {
  cio_process *p;
  const char *in;
  size_t n;
  int rc;
};

static int communicator(void *arg, void **result) {
  (void)result;
  struct comm_case *c = arg;
  char *out, *err;
  c->rc = cio_process_communicate(c->p, c->in, c->n, &out, NULL, &err, NULL);
  if (c->rc == 0) {
    free(out);
    free(err);
  }
  return c->rc;
}

/* Cancel communicate after k loop iterations, for every k until it
 * completes by itself: it returns -ECANCELED, leaks nothing, and the child
 * is still there to be killed and reaped. */
static int cancel_comm_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  size_t n = 200000; /* more than a pipe holds */
  char *in = calloc(1, n);
  int completed = 0;
  for (int k = 0; k < 100000 && !completed; k += k < 64 ? 1 : k / 8) {
    struct comm_case c = {.in = in, .n = n, .rc = 1};
    cio_process_options o = {.in = CIO_PIPE, .out = CIO_PIPE, .err = CIO_PIPE};
    assert_code(cio_subprocess_exec(ARGV("cat"), &o, &c.p), 0);
    cio_task *t = cio_create_task(communicator, &c, NULL);
    for (int i = 0; i < k; i++) (void)!cio_yield();
    cio_task_cancel(t, NULL);
    int rc = cio_await(t, NULL);
    if (rc == 0)
      completed = 1;
    else
      assert_code(rc, -ECANCELED);
    cio_task_unref(t);
    cio_process_kill(c.p);
    int code;
    assert_code(cio_process_wait(c.p, &code), 0);
    cio_process_free(c.p);
  }
  free(in);
  assert_true(completed);
  return 0;
}

static void test_cancel_communicate_everywhere(void **state) {
  (void)state;
  int fds = count_fds();
  run_real(cancel_comm_main, NULL);
  assert_true(no_children());
  assert_int_equal(count_fds(), fds);
}

/* Freeing a running child's object kills it; the loop still reaps it. */
static int free_running_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process *p;
  assert_code(cio_subprocess_exec(ARGV("sleep", "10"), NULL, &p), 0);
  pid_t pid = cio_process_pid(p);
  assert_code(cio_process_free(p), 0);
  assert_code(cio_process_free(p), CIO_EDOUBLEFREE);
  for (int i = 0; i < 500 && kill(pid, 0) == 0; i++) assert_code(cio_sleep(0.01), 0);
  assert_int_equal(kill(pid, 0), -1); /* gone: killed and reaped */
  return 0;
}

static void test_free_running_kills_and_reaps(void **state) {
  (void)state;
  run_real(free_running_main, NULL);
  assert_true(no_children());
}

/* A loop that closes with a child running kills it, reaps it, reports it. */
static int reports;
static void count_reports(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  if (strstr(ctx->message, "still running when the event loop closed")) reports++;
}

static cio_process *kept;

/* Run fn as a task on a fresh loop to its end, then free the loop with
 * what fn left behind: exactly one report (the abandoned child or task). */
static void run_then_free_loop(cio_task_fn fn) {
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  cio_loop_set_exception_handler(loop, count_reports, NULL);
  cio_task *t = cio_loop_create_task(loop, fn, NULL, NULL);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
  assert_code(cio_task_result(t, NULL), 0);
  cio_task_unref(t);
  reports = 0;
  assert_code(cio_loop_free(loop), 0);
  assert_int_equal(reports, 1);
}

static int start_and_leave(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process_options o = {.in = CIO_PIPE, .out = CIO_PIPE};
  int rc = cio_subprocess_exec(ARGV("sleep", "10"), &o, &kept);
  if (rc == 0) rc = cio_stream_write(cio_process_stdin(kept), "queued", 6);
  return rc;
}

static int blocked_reader(void *arg, void **result) {
  (void)arg;
  (void)result;
  const char *line;
  return (int)cio_stream_readline(cio_process_stdout(kept), &line);
}

static int start_reader_and_leave(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_process_options o = {.out = CIO_PIPE};
  int rc = cio_subprocess_exec(ARGV("sleep", "10"), &o, &kept);
  if (rc < 0) return rc;
  cio_task_detach(cio_create_task(blocked_reader, NULL, NULL));
  return cio_sleep(0.01); /* the reader is suspended in readline now */
}

/* The same with a task suspended in a read of the child's stdout when the
 * loop closes: the task is abandoned (reported), the stream freed, nothing
 * touches the abandoned frame. */
static void test_loop_close_with_reader(void **state) {
  (void)state;
  run_then_free_loop(start_reader_and_leave);
  assert_true(no_children());
  assert_null(cio_process_stdout(kept)); /* freed with the loop */
  assert_code(cio_process_free(kept), 0);
}

static void test_loop_close_kills_children(void **state) {
  (void)state;
  run_then_free_loop(start_and_leave);
  assert_true(no_children());
  int code;
  assert_true(cio_process_returncode(kept, &code));
  assert_int_equal(code, -SIGKILL);
  assert_code(cio_process_free(kept), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_codes),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_fd_exhaustion),
      cmocka_unit_test(test_communicate_100mb_through_cat),
      cmocka_unit_test(test_communicate),
      cmocka_unit_test(test_pipe_streams),
      cmocka_unit_test(test_child_environment),
      cmocka_unit_test(test_thousand_children),
      cmocka_unit_test(test_sigchld_fallback),
      cmocka_unit_test(test_cancelled_wait_does_not_kill),
      cmocka_unit_test(test_cancel_communicate_everywhere),
      cmocka_unit_test(test_free_running_kills_and_reaps),
      cmocka_unit_test(test_loop_close_kills_children),
      cmocka_unit_test(test_loop_close_with_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
