/* cio — child processes (asyncio.create_subprocess_exec / _shell and
 * asyncio.subprocess.Process).
 *
 *   proc = await create_subprocess_exec('ls', '-l', stdout=PIPE)
 *       cio_process_options o = {.out = CIO_PIPE};
 *       cio_subprocess_exec((const char *[]){"ls", "-l", NULL}, &o, &proc);
 *   line = await proc.stdout.readline()  cio_stream_readline(cio_process_stdout(proc), &line)
 *   out, err = await proc.communicate(b"input")
 *                                         cio_process_communicate(proc, "input", 5, &out, &n, &err, &m)
 *   rc = await proc.wait()                cio_process_wait(proc, &rc)
 *   proc.send_signal(s) / terminate() / kill()  cio_process_send_signal / _terminate / _kill
 *   proc.pid, proc.returncode             cio_process_pid, cio_process_returncode
 *
 * Starting. The child is started with posix_spawn (vfork-style: no copy of the
 * parent's memory), so starting never suspends. It begins with an empty
 * signal mask (signals the loop blocks for its signalfd are not blocked in
 * it), SIGPIPE and SIGXFSZ at their default action (Python's
 * restore_signals), and every other disposition as exec leaves it (caught
 * signals back to default; a signal the program ignores stays ignored, as
 * under asyncio). Every fd other than 0, 1, 2 and opts->pass_fds is closed in
 * the child (close_range), whether or not it has FD_CLOEXEC. The pipes cio
 * creates are close-on-exec in the parent, so children started concurrently
 * never inherit each other's pipes. The first spawn sets SIGPIPE to "ignore"
 * in the parent if it had the default action (as Python does at start-up),
 * so that writing to a child that has exited fails with -EPIPE instead of
 * killing the program.
 *
 * A program that cannot be run (missing, not executable, bad cwd) fails the
 * exec call with its errno (-ENOENT, -EACCES, -ENOEXEC, ...) and a message
 * naming the program; there is no child. Through the shell it is the shell
 * that fails: the child exits 127, as with asyncio. The program is looked up
 * in the parent's PATH when it has no '/'.
 *
 * Watching. A child is watched with a pidfd (pidfd_open, Linux >= 5.3) or,
 * where that is missing, with SIGCHLD read from the loop's signalfd (then
 * SIGCHLD must stay blocked in every thread other than the loop's: cio's own
 * threads block it; CIO_CHILD_WATCHER=sigchld in the environment forces this
 * fallback, for tests). A child that exits is reaped once, by the loop, at
 * once, whether anyone waits or not; the exit status stays in the process
 * object. While a child runs the loop is never reported as deadlocked.
 *
 * Lifetime (asyncio's rules, stated):
 *  - cancelling a task in cio_process_wait/communicate does not kill the
 *    child; it keeps running and is still reaped when it exits;
 *  - cio_process_free on a running child kills it (SIGKILL, as asyncio's
 *    transport close) and closes the pipes; the loop still reaps it, so no
 *    zombie outlives the process object;
 *  - a loop that closes with children still running kills them with SIGKILL,
 *    reaps them (blocking briefly) and reports each one to the exception
 *    handler ("child process ... was still running when the event loop
 *    closed"); the pipe streams of every process object are freed with the
 *    loop (cio_process_stdout() then returns NULL); the objects themselves
 *    stay valid for cio_process_returncode() and cio_process_free().
 *
 * PIPE ends are cio streams (cio/stream.h) owned by the process object: do
 * not free them; cio_process_free does. wait() with stdout/stderr pipes that
 * nobody reads can deadlock when the child fills the pipe (asyncio's
 * documented trap): use communicate, or read the streams.
 *
 * Errors: every call returns 0 or a negative code (see each); -EINVAL for
 * NULL or a dead object; cio_errmsg() holds the message.
 */
#ifndef CIO_PROCESS_H
#define CIO_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A child process started by cio_subprocess_exec / _shell (asyncio's
 * Process): opaque, owned by the caller, released with cio_process_free. */
typedef struct cio_process cio_process;
/* A pipe to the child is a stream (cio/stream.h). */
typedef struct cio_stream cio_stream;

/* What a standard stream of the child is connected to. */
typedef enum cio_stdio_mode {
  CIO_STDIO_INHERIT = 0, /* the parent's (asyncio's None) */
  CIO_STDIO_PIPE,        /* a pipe to the parent, as a cio_stream */
  CIO_STDIO_DEVNULL,     /* /dev/null */
  CIO_STDIO_FD,          /* the caller's fd in .fd (not closed, not taken over) */
  CIO_STDIO_STDOUT       /* stderr only: wherever stdout goes */
} cio_stdio_mode;

/* One standard stream of the child: a mode, and the fd for CIO_STDIO_FD. */
typedef struct cio_stdio {
  cio_stdio_mode mode; /* where it goes */
  int fd;              /* for CIO_STDIO_FD */
} cio_stdio;

/* Shorthands for the fields below, as asyncio spells them:
 *   cio_process_options o = {.out = CIO_PIPE, .err = CIO_STDOUT};
 * (compound literals: for options in automatic storage). */
#define CIO_PIPE ((cio_stdio){.mode = CIO_STDIO_PIPE, .fd = -1})
#define CIO_DEVNULL ((cio_stdio){.mode = CIO_STDIO_DEVNULL, .fd = -1})
#define CIO_STDOUT ((cio_stdio){.mode = CIO_STDIO_STDOUT, .fd = -1})
#define CIO_INHERIT ((cio_stdio){.mode = CIO_STDIO_INHERIT, .fd = -1})
#define CIO_FD(n) ((cio_stdio){.mode = CIO_STDIO_FD, .fd = (n)})

/* Zero = asyncio's defaults: inherit everything, same cwd and environment. */
typedef struct cio_process_options {
  cio_stdio in;               /* the child's stdin */
  cio_stdio out;              /* its stdout */
  cio_stdio err;              /* its stderr (CIO_STDOUT: with stdout) */
  const char *cwd;            /* NULL = the parent's */
  const char *const *env;     /* NULL-terminated "NAME=value" list; NULL = inherit */
  bool env_add;               /* env adds to (and overrides in) the parent's
                                 environment instead of replacing it */
  bool start_new_session;     /* setsid() in the child */
  bool new_process_group;     /* setpgid(0, 0) in the child (asyncio's process_group=0) */
  const int *pass_fds;        /* fds (>= 3) kept open in the child, same numbers */
  int npass_fds;              /* how many fds pass_fds holds */
  size_t limit;               /* the pipe streams' readline limit; 0 = 64 KiB */
} cio_process_options;

/* asyncio.create_subprocess_exec: start argv[0] (looked up in PATH) with the
 * NULL-terminated argument list argv in the running loop of this thread.
 * Does not suspend; callable from a task or a callback. On success *out is a
 * process object the caller frees with cio_process_free(). Returns 0, or:
 * -EINVAL (argv, argv[0] or out NULL; a bad mode; CIO_STDIO_STDOUT for in or
 * out; a pass_fd < 3), -EBADF (a CIO_STDIO_FD or pass_fd not open),
 * CIO_ENOTRUNNING (no running loop), -ENOENT / -EACCES / -ENOEXEC / ... (the
 * program or cwd cannot be used: the message names them), -EMFILE /
 * -ENFILE / -ENOMEM / -EAGAIN (no fd, memory or process left: nothing is left
 * open), or an error of the child watcher's set-up. *out is NULL on
 * failure. */
CIO_NODISCARD int cio_subprocess_exec(const char *const *argv, const cio_process_options *opts,
                                      cio_process **out);

/* asyncio.create_subprocess_shell: /bin/sh -c cmd. Quoting is the caller's
 * job. Returns as cio_subprocess_exec (-EINVAL for a NULL cmd). */
CIO_NODISCARD int cio_subprocess_shell(const char *cmd, const cio_process_options *opts,
                                       cio_process **out);

/* The child's pid; -EINVAL for NULL. */
int cio_process_pid(const cio_process *p);

/* asyncio's returncode: true when the child has exited (and been reaped),
 * with *code (may be NULL) set to its exit status, or minus the number of
 * the signal that killed it; false while it runs, or for NULL. */
bool cio_process_returncode(const cio_process *p, int *code);

/* Process.wait: suspend until the child exits; *code (may be NULL) gets the
 * returncode as above. Does not suspend if it has exited. Returns 0,
 * -ECANCELED (the child is not killed), CIO_ENOTASK, -EINVAL, CIO_ECLOSED
 * (the loop is gone and the child was not reaped), CIO_EWRONGLOOP. Several
 * tasks may wait at once. */
CIO_NODISCARD int cio_process_wait(cio_process *p, int *code);

/* wait_for(proc.wait(), timeout): cio_process_wait for at most `timeout`
 * seconds (CIO_NO_TIMEOUT: no limit). Returns as cio_process_wait, and
 * -ETIMEDOUT (the child keeps running), -EINVAL for a NaN timeout. */
CIO_NODISCARD int cio_process_wait_timeout(cio_process *p, double timeout, int *code);

/* Process.communicate(input): write len bytes of input (input may be NULL
 * when len is 0) to the child's stdin pipe and close it (always, if stdin is
 * a pipe), while reading its stdout and stderr pipes to their end, then wait
 * for it to exit. *out / *err (each pointer may be NULL) receive malloc'd,
 * NUL-terminated copies of what the child wrote to stdout / stderr (NULL with
 * length 0 when that stream is not a pipe); *out_len / *err_len (may be NULL)
 * their lengths. The caller frees them. A child that exits or closes stdin
 * before taking all of input is not an error (-EPIPE/-ECONNRESET ignored, as
 * asyncio). Suspends. Returns 0 (returncode via cio_process_returncode), or
 * -ECANCELED (the child keeps running; input already written stays written,
 * output read so far is dropped, nothing is allocated), -ENOMEM, -EINVAL
 * (input NULL with len > 0), a read error of a pipe, CIO_ENOTASK, and the
 * errors of cio_process_wait. */
CIO_NODISCARD int cio_process_communicate(cio_process *p, const void *input, size_t len,
                                          char **out, size_t *out_len, char **err,
                                          size_t *err_len);

/* wait_for(proc.communicate(input), timeout): cio_process_communicate for
 * at most `timeout` seconds (CIO_NO_TIMEOUT: no limit). Returns as it, and
 * -ETIMEDOUT (the child keeps running; the output read so far is dropped),
 * -EINVAL for a NaN timeout. */
CIO_NODISCARD int cio_process_communicate_timeout(cio_process *p, const void *input, size_t len,
                                                  char **out, size_t *out_len, char **err,
                                                  size_t *err_len, double timeout);

/* Process.send_signal: send signo to the child (through its pidfd, so never
 * to a recycled pid). Nothing happens once the child has been reaped (as
 * asyncio). Does not suspend. Returns 0, -EINVAL (NULL, bad signal number),
 * -EPERM. */
int cio_process_send_signal(cio_process *p, int signo);
/* Process.terminate: cio_process_send_signal(p, SIGTERM). Returns as it. */
int cio_process_terminate(cio_process *p);

/* Process.kill: cio_process_send_signal(p, SIGKILL). Returns as it. */
int cio_process_kill(cio_process *p);

/* Process.stdin: the write end of the child's stdin pipe as a stream (owned
 * by the process object; write, drain, close), or NULL when in is not
 * CIO_STDIO_PIPE or p is NULL. Does not suspend. */
cio_stream *cio_process_stdin(cio_process *p);

/* Process.stdout: the read end of the child's stdout pipe as a stream
 * (owned by the process object; readline, read, ...), or NULL when out is
 * not CIO_STDIO_PIPE or p is NULL. Does not suspend. */
cio_stream *cio_process_stdout(cio_process *p);

/* Process.stderr: as cio_process_stdout, for stderr. */
cio_stream *cio_process_stderr(cio_process *p);

/* Release the process object: frees its pipe streams and, if the child is
 * still running, kills it (SIGKILL; the loop reaps it). Call it from the
 * loop's thread (a task or callback), or after the loop closed. Returns 0,
 * -EINVAL for NULL, CIO_EDOUBLEFREE for a second release where detectable
 * (while the loop still watches the child). */
int cio_process_free(cio_process *p);

#ifdef __cplusplus
}
#endif
#endif
