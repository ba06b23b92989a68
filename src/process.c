/* Child processes: posix_spawn, pidfd (or SIGCHLD) watching, wait,
 * communicate. See include/cio/process.h.
 *
 * Each loop keeps the list of its children not yet reaped. A child is
 * watched from the moment it starts: its pidfd is an ordinary reader in the
 * loop (or, in the fallback, every SIGCHLD makes the loop try waitid on each
 * listed child). Reaping records the returncode, wakes the waiters, closes
 * the pidfd and drops the loop's reference to the process object.
 *
 * A waiter is a future in the waiting task's frame, linked in the process's
 * waiter list; a cancelled waiter unlinks itself. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio/group.h"
#include "cio/io.h"
#include "cio/process.h"
#include "cio/stream.h"
#include "io.h"
#include "sigs.h"
#include "task.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PROC_MAGIC 0x70726f63u
#define PROC_DEAD 0xdead970cu

extern char **environ;

struct pwaiter {
  struct cio_future fut;
  struct pwaiter *prev, *next;
};

struct cio_process {
  uint32_t magic;
  int refs;            /* the user's, plus the loop's until reaped */
  cio_loop *loop;      /* NULL once reaped or the loop closed */
  pid_t pid;
  int pidfd;           /* -1 with the SIGCHLD fallback or once reaped */
  bool exited;
  bool user_released;
  int returncode;
  char *name;          /* argv[0], for messages */
  struct cio_process *prev, *next; /* the loop's unreaped children */
  struct pwaiter *waiters;
  int fds[3];          /* the parent's pipe ends, -1 when not a pipe */
  cio_stream *streams[3];
};

struct procstate {
  struct cio_process *head;
  bool sigchld; /* the fallback watcher */
};

static atomic_bool sigpipe_done;

/* ---- reaping ----------------------------------------------------------------------------- */

static void proc_unref(struct cio_process *p);
static void close_ends(struct cio_process *p);

static void wake_waiters(struct cio_process *p) {
  struct pwaiter *w;
  while ((w = p->waiters)) {
    p->waiters = w->next;
    if (w->next) w->next->prev = NULL;
    w->next = w->prev = NULL;
    if (w->fut.state == CIO__PENDING)
      cio__future_complete(&w->fut, CIO__RESULT, 0, NULL, NULL, false);
  }
}

static void unwatch(struct cio_process *p) {
  cio_loop *loop = p->loop;
  struct procstate *ps = loop->procs;
  if (p->prev) p->prev->next = p->next; else ps->head = p->next;
  if (p->next) p->next->prev = p->prev;
  p->prev = p->next = NULL;
  cio__fd_close_in(loop, p->pidfd);
  p->pidfd = -1;
  p->loop = NULL;
}

static void record_exit(struct cio_process *p, const siginfo_t *si) {
  p->exited = true;
  if (si->si_code == CLD_EXITED)
    p->returncode = si->si_status;
  else
    p->returncode = -si->si_status;
}

/* Try to reap p without blocking; true if it was reaped. */
static bool try_reap(struct cio_process *p) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) < 0) {
    if (errno == EINTR) return false;
    /* Someone else reaped it (waitpid(-1) elsewhere): asyncio reports 255. */
    char msg[256];
    snprintf(msg, sizeof msg, "unknown child process %d ('%s'): reaped by someone else, "
             "returncode 255", (int)p->pid, p->name);
    cio_exception_context ctx = {.message = msg, .code = -errno};
    cio_loop_call_exception_handler(p->loop, &ctx);
    si.si_code = CLD_EXITED;
    si.si_status = 255;
  } else if (si.si_pid == 0) {
    return false;
  }
  record_exit(p, &si);
  wake_waiters(p);
  unwatch(p);
  proc_unref(p); /* the loop's reference */
  return true;
}

static void on_pidfd(void *arg) { try_reap(arg); }

static void on_sigchld(cio_loop *loop) {
  struct procstate *ps = loop->procs;
  struct cio_process *p = ps ? ps->head : NULL;
  while (p) {
    struct cio_process *next = p->next;
    try_reap(p);
    p = next;
  }
}

/* The loop closes: kill and reap what still runs, and say so. The waiting
 * tasks were abandoned already: their frames are gone, do not touch them. */
static void procs_close(cio_loop *loop) {
  struct procstate *ps = loop->procs;
  if (!ps) return;
  struct cio_process *p;
  while ((p = ps->head)) {
    p->waiters = NULL;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    bool was_running = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0;
    if (was_running) {
      kill(p->pid, SIGKILL);
      memset(&si, 0, sizeof si);
      while (waitid(P_PID, (id_t)p->pid, &si, WEXITED) < 0 && errno == EINTR) {
      }
      char msg[256];
      snprintf(msg, sizeof msg, "child process %d ('%s') was still running when the event loop "
               "closed: killed with SIGKILL and reaped", (int)p->pid, p->name);
      cio_exception_context ctx = {.message = msg};
      cio_loop_call_exception_handler(loop, &ctx);
    }
    if (si.si_pid)
      record_exit(p, &si);
    else {
      p->exited = true;
      p->returncode = 255;
    }
    unwatch(p);
    close_ends(p);
    proc_unref(p);
  }
  free(ps);
  loop->procs = NULL;
}

/* ---- the process object -------------------------------------------------------------------- */

static bool proc_ok(const struct cio_process *p) { return p && p->magic == PROC_MAGIC; }

static void close_end(struct cio_process *p, int i) {
  if (p->streams[i]) {
    cio_stream_free(p->streams[i]);
    p->streams[i] = NULL;
  }
  if (p->fds[i] < 0) return;
  cio_loop *running = cio__running_loop;
  if (running)
    cio_fd_close(p->fds[i]);
  else
    close(p->fds[i]);
  p->fds[i] = -1;
}

static void close_ends(struct cio_process *p) {
  for (int i = 0; i < 3; i++) close_end(p, i);
}

static void proc_unref(struct cio_process *p) {
  if (--p->refs > 0) return;
  close_ends(p);
  free(p->name);
  p->magic = PROC_DEAD;
  free(p);
}

int cio_process_free(cio_process *p) {
  if (!p) return cio__fail(-EINVAL, "cio_process_free: process is NULL");
  if (p->magic != PROC_MAGIC || p->user_released)
    return cio__fail(CIO_EDOUBLEFREE, "cio_process_free: process released twice");
  p->user_released = true;
  if (!p->exited && p->loop) cio_process_kill(p); /* asyncio's transport close */
  close_ends(p);
  proc_unref(p);
  return 0;
}

int cio_process_pid(const cio_process *p) {
  return proc_ok(p) ? (int)p->pid : cio__fail(-EINVAL, "cio_process_pid: not a live process");
}

bool cio_process_returncode(const cio_process *p, int *code) {
  if (!proc_ok(p) || !p->exited) return false;
  if (code) *code = p->returncode;
  return true;
}

int cio_process_send_signal(cio_process *p, int signo) {
  if (!proc_ok(p)) return cio__fail(-EINVAL, "cio_process_send_signal: not a live process");
  if (signo < 0 || signo >= NSIG)
    return cio__fail(-EINVAL, "cio_process_send_signal: %d is not a signal number", signo);
  if (p->exited || !p->loop) return 0;
  int rc = p->pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, p->pidfd, signo, NULL, 0)
                         : kill(p->pid, signo);
  if (rc < 0 && errno != ESRCH)
    return cio__fail(-errno, "cio_process_send_signal(pid %d, %d): %s", (int)p->pid, signo,
                     strerror(errno));
  return 0;
}

int cio_process_terminate(cio_process *p) { return cio_process_send_signal(p, SIGTERM); }
int cio_process_kill(cio_process *p) { return cio_process_send_signal(p, SIGKILL); }

int cio_process_wait(cio_process *p, int *code) {
  const char *who = "cio_process_wait";
  if (!proc_ok(p)) return cio__fail(-EINVAL, "%s: not a live process", who);
  if (p->exited) {
    if (code) *code = p->returncode;
    return 0;
  }
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  if (!p->loop) return cio__fail(CIO_ECLOSED, "%s: the process's event loop is closed", who);
  if (p->loop != t->fut.loop)
    return cio__fail(CIO_EWRONGLOOP, "%s: the process belongs to another event loop", who);
  struct pwaiter w;
  cio__future_init(&w.fut, p->loop, CIO__F_LOCAL);
  w.prev = NULL;
  w.next = p->waiters;
  if (w.next) w.next->prev = &w;
  p->waiters = &w;
  int rc = cio__task_await(t, &w.fut, NULL);
  if (p->waiters == &w || w.prev) { /* still linked: cancelled */
    if (w.prev) w.prev->next = w.next; else p->waiters = w.next;
    if (w.next) w.next->prev = w.prev;
  }
  cio__future_finalize(&w.fut, NULL);
  if (rc < 0) return rc;
  if (code) *code = p->returncode;
  return 0;
}

/* ---- spawning ----------------------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static bool fd_open(int fd) { return fd >= 0 && fcntl(fd, F_GETFD) >= 0; }

/* The environment for the child: NULL-terminated, malloc'd array (entries
 * borrowed) or NULL on out of memory. */
static char **build_env(const cio_process_options *o, bool *alloced) {
  *alloced = false;
  if (!o || !o->env) return environ;
  if (!o->env_add) return (char **)o->env;
  size_t n = 0, m = 0;
  while (environ[n]) n++;
  while (o->env[m]) m++;
  char **env = malloc((n + m + 1) * sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    bool overridden = false;
    for (size_t j = 0; j < m && !overridden; j++)
      overridden = strncmp(o->env[j], environ[i], len) == 0 && o->env[j][len] == '=';
    if (!overridden) env[k++] = environ[i];
  }
  for (size_t j = 0; j < m; j++) env[k++] = (char *)o->env[j];
  env[k] = NULL;
  *alloced = true;
  return env;
}

static void ignore_sigpipe(void) {
  if (atomic_exchange(&sigpipe_done, true)) return;
  struct sigaction cur;
  if (sigaction(SIGPIPE, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
      cur.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
}

static int procstate_get(cio_loop *loop, struct procstate **out) {
  struct procstate *ps = loop->procs;
  if (!ps) {
    ps = calloc(1, sizeof *ps);
    if (!ps) return cio__fail_static(-ENOMEM, "cio_subprocess_exec: out of memory");
    const char *w = getenv("CIO_CHILD_WATCHER");
    ps->sigchld = w && strcmp(w, "sigchld") == 0;
    loop->procs = ps;
    loop->procs_close = procs_close;
  }
  *out = ps;
  return 0;
}

int cio__process_make_streams(struct cio_process *p, const cio_process_options *o);

static int spawn(const char *const *argv, const cio_process_options *o, const char *who,
                 cio_process **out) {
  if (out) *out = NULL;
  if (!argv || !argv[0] || !out) return cio__fail(-EINVAL, "%s: argv, argv[0] or out is NULL", who);
  cio_loop *loop = cio__running_loop;
  if (!loop) return cio__fail(CIO_ENOTRUNNING, "%s: no running event loop in this thread", who);
  static const cio_process_options none;
  if (!o) o = &none;
  const cio_stdio *io[3] = {&o->in, &o->out, &o->err};
  for (int i = 0; i < 3; i++) {
    if ((unsigned)io[i]->mode > CIO_STDIO_STDOUT || (io[i]->mode == CIO_STDIO_STDOUT && i != 2))
      return cio__fail(-EINVAL, "%s: bad mode %d for standard stream %d", who, (int)io[i]->mode, i);
    if (io[i]->mode == CIO_STDIO_FD && !fd_open(io[i]->fd))
      return cio__fail(-EBADF, "%s: fd %d for standard stream %d is not open", who, io[i]->fd, i);
  }
  if (o->npass_fds < 0 || (o->npass_fds > 0 && !o->pass_fds))
    return cio__fail(-EINVAL, "%s: bad pass_fds", who);
  for (int i = 0; i < o->npass_fds; i++) {
    if (o->pass_fds[i] < 3) return cio__fail(-EINVAL, "%s: pass_fd %d is below 3", who, o->pass_fds[i]);
    if (!fd_open(o->pass_fds[i])) return cio__fail(-EBADF, "%s: pass_fd %d is not open", who, o->pass_fds[i]);
  }
  struct procstate *ps = NULL;
  int rc = procstate_get(loop, &ps);
  if (rc < 0) return rc;
  if (ps->sigchld && (rc = cio__signal_watch_chld(loop, on_sigchld)) < 0) return rc;
  ignore_sigpipe();

  struct cio_process *p = calloc(1, sizeof *p);
  char *name = strdup(argv[0]);
  int *pass = o->npass_fds ? malloc((size_t)o->npass_fds * sizeof *pass) : NULL;
  if (!p || !name || (o->npass_fds && !pass)) {
    free(p);
    free(name);
    free(pass);
    return cio__fail_static(-ENOMEM, "cio_subprocess_exec: out of memory");
  }
  p->name = name;
  p->pidfd = -1;
  for (int i = 0; i < 3; i++) p->fds[i] = -1;
  int child[3] = {-1, -1, -1};  /* fds to dup2 onto 0, 1, 2 (-1 = leave) */
  int owned[4] = {-1, -1, -1, -1}; /* fds to close in the parent after the spawn */
  int nowned = 0;
  int devnull = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  bool fa_init = false, attr_init = false;
  bool env_alloced = false;
  char **envp = NULL;
  int e = 0;
  for (int i = 0; i < 3 && !e; i++) {
    switch (io[i]->mode) {
    case CIO_STDIO_INHERIT:
    case CIO_STDIO_STDOUT:
      break;
    case CIO_STDIO_FD:
      child[i] = io[i]->fd;
      break;
    case CIO_STDIO_DEVNULL:
      if (devnull < 0) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
          e = errno;
          break;
        }
        owned[nowned++] = devnull;
      }
      child[i] = devnull;
      break;
    case CIO_STDIO_PIPE: {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) {
        e = errno;
        break;
      }
      int mine = i == 0 ? fds[1] : fds[0], theirs = i == 0 ? fds[0] : fds[1];
      p->fds[i] = mine;
      owned[nowned++] = theirs;
      child[i] = theirs;
      fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK);
      break;
    }
    }
  }
  /* A source among 0..2 other than its target would be overwritten by an
   * earlier dup2: move it up first. */
  for (int i = 0; i < 3 && !e; i++)
    if (child[i] >= 0 && child[i] < 3 && child[i] != i) {
      int up = fcntl(child[i], F_DUPFD_CLOEXEC, 3);
      if (up < 0) {
        e = errno;
        break;
      }
      owned[nowned++] = up;
      child[i] = up;
    }
  if (e) goto fail_errno;
  if ((e = posix_spawn_file_actions_init(&fa))) goto fail_errno;
  fa_init = true;
  for (int i = 0; i < 3 && !e; i++)
    if (child[i] >= 0) e = posix_spawn_file_actions_adddup2(&fa, child[i], i);
  if (!e && io[2]->mode == CIO_STDIO_STDOUT) e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int next = 3;
  if (o->npass_fds) {
    memcpy(pass, o->pass_fds, (size_t)o->npass_fds * sizeof *pass);
    qsort(pass, (size_t)o->npass_fds, sizeof *pass, cmp_int);
    for (int i = 0; i < o->npass_fds && !e; i++) {
      e = posix_spawn_file_actions_adddup2(&fa, pass[i], pass[i]); /* clears FD_CLOEXEC */
      for (int fd = next; fd < pass[i] && !e; fd++) e = posix_spawn_file_actions_addclose(&fa, fd);
      if (pass[i] >= next) next = pass[i] + 1;
    }
  }
  if (!e) e = posix_spawn_file_actions_addclosefrom_np(&fa, next);
  if (!e && o->cwd) e = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  if (e) goto fail_errno;
  if ((e = posix_spawnattr_init(&attr))) goto fail_errno;
  attr_init = true;
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o->start_new_session) flags |= POSIX_SPAWN_SETSID;
  if (o->new_process_group) flags |= POSIX_SPAWN_SETPGROUP; /* pgroup 0: its own */
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  if ((e = posix_spawnattr_setflags(&attr, flags))) goto fail_errno;
  envp = build_env(o, &env_alloced);
  if (!envp) {
    e = ENOMEM;
    goto fail_errno;
  }
  pid_t pid;
  e = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, envp);
  if (e) {
    if (o->cwd)
      rc = cio__fail(-e, "%s: cannot run '%s' in directory '%s': %s", who, argv[0], o->cwd,
                     strerror(e));
    else
      rc = cio__fail(-e, "%s: cannot run '%s': %s", who, argv[0], strerror(e));
    goto fail;
  }
  p->pid = pid;
  p->loop = loop;
  p->refs = 2;
  p->magic = PROC_MAGIC;
  /* Watch it: listed first, so that the SIGCHLD fallback sees it. */
  p->next = ps->head;
  if (p->next) p->next->prev = p;
  ps->head = p;
  if (!ps->sigchld) {
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) fcntl(pfd, F_SETFD, FD_CLOEXEC);
    if (pfd >= 0 && cio_add_reader(loop, pfd, on_pidfd, p) == 0) {
      p->pidfd = pfd;
    } else {
      if (pfd >= 0) close(pfd);
      /* No pidfd (old kernel) or no room: this loop falls back to SIGCHLD
       * for good. The child may have exited already: its SIGCHLD is lost,
       * so look once now. */
      ps->sigchld = true;
      rc = cio__signal_watch_chld(loop, on_sigchld);
      if (rc < 0) {
        cio_exception_context ctx = {.message = "cannot watch a child process", .code = rc};
        cio_loop_call_exception_handler(loop, &ctx);
      }
    }
  }
  for (int i = 0; i < nowned; i++) close(owned[i]);
  nowned = 0;
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (env_alloced) free(envp);
  free(pass);
  rc = cio__process_make_streams(p, o);
  if (rc < 0) {
    cio_process_free(p);
    return rc;
  }
  if (ps->sigchld) on_sigchld(loop); /* (exited meanwhile and SIGCHLD missed) */
  *out = p;
  return 0;

fail_errno:
  rc = cio__fail(-e, "%s: cannot start '%s': %s", who, argv[0], strerror(e));
fail:
  for (int i = 0; i < nowned; i++) close(owned[i]);
  for (int i = 0; i < 3; i++)
    if (p->fds[i] >= 0) close(p->fds[i]);
  if (fa_init) posix_spawn_file_actions_destroy(&fa);
  if (attr_init) posix_spawnattr_destroy(&attr);
  if (env_alloced) free(envp);
  free(pass);
  free(name);
  free(p);
  return rc;
}

int cio_subprocess_exec(const char *const *argv, const cio_process_options *opts,
                        cio_process **out) {
  return spawn(argv, opts, "cio_subprocess_exec", out);
}

int cio_subprocess_shell(const char *cmd, const cio_process_options *opts, cio_process **out) {
  if (!cmd) {
    if (out) *out = NULL;
    return cio__fail(-EINVAL, "cio_subprocess_shell: cmd is NULL");
  }
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  return spawn(argv, opts, "cio_subprocess_shell", out);
}

/* ---- pipes and communicate ---------------------------------------------------------------- */

/* The parent's pipe ends become streams (the stream owns the fd). */
int cio__process_make_streams(struct cio_process *p, const cio_process_options *o) {
  cio_stream_opts so = {.limit = o->limit};
  for (int i = 0; i < 3; i++) {
    if (p->fds[i] < 0) continue;
    int rc = cio_stream_from_fd(p->fds[i], &so, &p->streams[i]);
    if (rc < 0) return rc;
    p->fds[i] = -1;
  }
  return 0;
}

cio_stream *cio_process_stdin(cio_process *p) { return proc_ok(p) ? p->streams[0] : NULL; }
cio_stream *cio_process_stdout(cio_process *p) { return proc_ok(p) ? p->streams[1] : NULL; }
cio_stream *cio_process_stderr(cio_process *p) { return proc_ok(p) ? p->streams[2] : NULL; }

/* asyncio's _feed_stdin: write, drain, close. A reader that went away is
 * not an error. Written in slices so that a large input is not copied into
 * the stream's queue at once. */
static int feed(struct cio_process *p, const char *buf, size_t len) {
  cio_stream *s = p->streams[0];
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0;) {
    size_t n = len - off < 256 * 1024 ? len - off : 256 * 1024;
    rc = cio_stream_write(s, buf + off, n);
    if (rc == 0) rc = cio_stream_drain(s);
    off += n;
  }
  if (rc == -EPIPE || rc == -ECONNRESET) rc = 0;
  if (rc != -ECANCELED) cio_stream_close(s);
  return rc;
}

struct sink {
  char *buf;
  size_t len;
};

static int drain_pipe(struct cio_process *p, int i, struct sink *s) {
  return cio_stream_read_all(p->streams[i], &s->buf, &s->len);
}

struct comm {
  struct cio_process *p;
  const char *input;
  size_t len;
  struct sink err;
};

static int feed_task(void *arg, void **result) {
  (void)result;
  struct comm *c = arg;
  return feed(c->p, c->input, c->len);
}

static int err_task(void *arg, void **result) {
  (void)result;
  struct comm *c = arg;
  return drain_pipe(c->p, 2, &c->err);
}

/* Cancel (if asked) and wait until t is done, whatever happens to us
 * meanwhile: the helper tasks use our frame. Returns t's outcome. */
static int join(cio_task *t, bool cancel) {
  if (!t) return 0;
  if (cancel) cio_task_cancel(t, NULL);
  while (!cio_task_done(t)) {
    if (cio_await(t, NULL) == -ECANCELED && !cio_task_done(t)) cio_task_cancel(t, NULL);
  }
  int rc = cio_task_result(t, NULL);
  cio_task_unref(t);
  return rc;
}

int cio_process_communicate(cio_process *p, const void *input, size_t len, char **out,
                            size_t *out_len, char **err, size_t *err_len) {
  const char *who = "cio_process_communicate";
  if (out) *out = NULL;
  if (err) *err = NULL;
  if (out_len) *out_len = 0;
  if (err_len) *err_len = 0;
  if (!proc_ok(p)) return cio__fail(-EINVAL, "%s: not a live process", who);
  if (!input && len) return cio__fail(-EINVAL, "%s: input is NULL", who);
  if (!cio__current()) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  struct comm c = {.p = p, .input = input, .len = len};
  struct sink o = {0};
  cio_task *tin = NULL, *terr = NULL;
  int rc = 0;
  /* stdin and stderr in helper tasks, stdout here (asyncio gathers three). */
  if (p->streams[0]) {
    if (len == 0) {
      cio_stream_close(p->streams[0]);
    } else if (!(tin = cio_create_task(feed_task, &c, &(cio_task_options){.name = "communicate-stdin"}))) {
      rc = cio_errcode();
    }
  }
  if (rc == 0 && p->streams[2] &&
      !(terr = cio_create_task(err_task, &c, &(cio_task_options){.name = "communicate-stderr"})))
    rc = cio_errcode();
  if (rc == 0 && p->streams[1]) rc = drain_pipe(p, 1, &o);
  int r1 = join(tin, rc < 0), r2 = join(terr, rc < 0);
  if (rc == 0) rc = r1 < 0 ? r1 : r2;
  if (rc == 0) rc = cio_process_wait(p, NULL);
  if (rc < 0) {
    free(o.buf);
    free(c.err.buf);
    return rc;
  }
  if (out) *out = o.buf; else free(o.buf);
  if (out_len) *out_len = o.len;
  if (err) *err = c.err.buf; else free(c.err.buf);
  if (err_len) *err_len = c.err.len;
  return 0;
}

int cio_process_wait_timeout(cio_process *p, double timeout, int *code) {
  cio_timeout to;
  memset(&to, 0, sizeof to);
  int rc = 0;
  CIO_WITH_TIMEOUT(&to, timeout, rc) { rc = cio_process_wait(p, code); }
  return rc;
}

int cio_process_communicate_timeout(cio_process *p, const void *input, size_t len, char **out,
                                    size_t *out_len, char **err, size_t *err_len,
                                    double timeout) {
  cio_timeout to;
  memset(&to, 0, sizeof to);
  int rc = 0;
  CIO_WITH_TIMEOUT(&to, timeout, rc) {
    rc = cio_process_communicate(p, input, len, out, out_len, err, err_len);
  }
  return rc;
}
