/* Signals: cio_add_signal_handler through a signalfd per loop. See
 * include/cio/signal.h.
 *
 * Each loop with handlers keeps one signalfd whose mask is the set of signals
 * it handles; the fd is watched with an ordinary reader callback, which
 * drains it and schedules the user's callbacks with call_soon (asyncio's
 * _handle_signal). The signals are blocked in the loop's thread; the
 * disposition is set to a stand-in that forwards a signal delivered to some
 * other thread (one that does not block it) to the loop's thread, where it
 * stays pending until the signalfd reads it. */
#include "io.h"
#include "sigs.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cio/io.h"

struct sighandler {
  cio_callback_fn fn;
  void *arg;
  bool user;               /* a handler from cio_add_signal_handler */
  bool chld;               /* the process layer's SIGCHLD watch */
  bool was_blocked;        /* in the loop thread before the first add */
  struct sigaction old;    /* the disposition before the first add */
  int signo;
  cio_loop *loop;
};

struct sigstate {
  int sfd;
  sigset_t mask;
  void (*chld_hook)(cio_loop *loop);
  struct sighandler h[NSIG];
};

/* Which thread handles each signal (0 = none): read by the forwarding
 * disposition, in signal context. */
static _Atomic pid_t owner_tid[NSIG];
static cio_loop *owner_loop[NSIG]; /* touched from main-thread calls only */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* ---- threads ------------------------------------------------------------------------ */

static void async_signals(sigset_t *set) {
  sigfillset(set);
  /* Faults are delivered to the faulting thread: never block them. */
  static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS};
  for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++) sigdelset(set, sync_sigs[i]);
}

int cio__thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  async_signals(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int err = pthread_create(t, attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return err;
}

/* ---- delivery ----------------------------------------------------------------------- */

/* The stand-in disposition: a signal that reached a thread which does not
 * block it is sent on to the loop's thread, where it is blocked and read by
 * the signalfd. */
static void forward(int signo) {
  int saved = errno;
  pid_t tid = signo > 0 && signo < NSIG ? atomic_load(&owner_tid[signo]) : 0;
  if (tid > 0 && tid != my_tid()) syscall(SYS_tgkill, getpid(), tid, signo);
  errno = saved;
}

static void run_handler(void *arg) {
  struct sighandler *h = arg;
  if (h->user && h->fn) h->fn(h->arg);
}

static void on_readable(void *arg) {
  cio_loop *loop = arg;
  struct sigstate *st = loop->sigs;
  struct signalfd_siginfo si[16];
  for (;;) {
    ssize_t n = read(st->sfd, si, sizeof si);
    if (n <= 0) break;
    bool chld = false;
    for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
      int s = (int)si[i].ssi_signo;
      if (s <= 0 || s >= NSIG) continue;
      if (st->h[s].chld) chld = true;
      /* As asyncio: the callback runs as a ready callback, not inline. */
      if (st->h[s].user && cio_call_soon(loop, run_handler, &st->h[s], NULL) < 0) {
        cio_exception_context ctx = {.message = "cannot schedule a signal handler",
                                     .code = cio_errcode()};
        cio_loop_call_exception_handler(loop, &ctx);
      }
    }
    if (chld && st->chld_hook) st->chld_hook(loop);
    if ((size_t)n < sizeof si) break;
  }
}

/* ---- state -------------------------------------------------------------------------- */

static void sigs_close(cio_loop *loop);

static int state_get(cio_loop *loop, struct sigstate **out) {
  struct sigstate *st = loop->sigs;
  if (!st) {
    st = calloc(1, sizeof *st);
    if (!st) return cio__fail_static(-ENOMEM, "cio_add_signal_handler: out of memory");
    st->sfd = -1;
    sigemptyset(&st->mask);
    loop->sigs = st;
    loop->sigs_close = sigs_close;
  }
  *out = st;
  return 0;
}

static void close_sfd(cio_loop *loop, struct sigstate *st) {
  cio__fd_close_in(loop, st->sfd);
  st->sfd = -1;
}

/* Start handling signo in this loop (the first of user or chld). */
static int take_signal(cio_loop *loop, struct sigstate *st, int signo, const char *who) {
  struct sighandler *h = &st->h[signo];
  if (h->user || h->chld) return 0;
  pthread_mutex_lock(&owner_lock);
  if (owner_loop[signo] && owner_loop[signo] != loop) {
    pthread_mutex_unlock(&owner_lock);
    return cio__fail(-EBUSY, "%s: signal %d is handled by another event loop", who, signo);
  }
  owner_loop[signo] = loop;
  atomic_store(&owner_tid[signo], my_tid());
  pthread_mutex_unlock(&owner_lock);

  sigset_t one, cur;
  sigemptyset(&one);
  sigaddset(&one, signo);
  pthread_sigmask(SIG_BLOCK, &one, &cur);
  h->was_blocked = sigismember(&cur, signo);
  sigaddset(&st->mask, signo);
  int fd = signalfd(st->sfd, &st->mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int rc = 0;
  if (fd < 0) {
    rc = cio__fail(-errno, "%s: signalfd: %s", who, strerror(errno));
  } else if (st->sfd < 0) {
    st->sfd = fd;
    rc = cio_add_reader(loop, fd, on_readable, loop);
    if (rc < 0) {
      close(fd);
      st->sfd = -1;
    }
  }
  if (rc < 0) {
    sigdelset(&st->mask, signo);
    if (!h->was_blocked) pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    pthread_mutex_lock(&owner_lock);
    owner_loop[signo] = NULL;
    atomic_store(&owner_tid[signo], 0);
    pthread_mutex_unlock(&owner_lock);
    return rc;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(signo, &sa, &h->old);
  h->signo = signo;
  h->loop = loop;
  return 0;
}

/* Stop handling signo (neither user nor chld is left). */
static void release_signal(cio_loop *loop, struct sigstate *st, int signo) {
  struct sighandler *h = &st->h[signo];
  struct sigaction cur;
  sigaction(signo, NULL, &cur);
  if (cur.sa_handler == forward) {
    /* (A runner's SIGINT handler saved here may belong to a run that has
     * ended: it then acts as the default action, see runner.c.) */
    sigaction(signo, &h->old, NULL);
  }
  sigdelset(&st->mask, signo);
  if (!sigisemptyset(&st->mask))
    (void)signalfd(st->sfd, &st->mask, 0);
  else
    close_sfd(loop, st);
  if (!h->was_blocked) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  }
  pthread_mutex_lock(&owner_lock);
  if (owner_loop[signo] == loop) {
    owner_loop[signo] = NULL;
    atomic_store(&owner_tid[signo], 0);
  }
  pthread_mutex_unlock(&owner_lock);
}

static void sigs_close(cio_loop *loop) {
  struct sigstate *st = loop->sigs;
  if (!st) return;
  for (int s = 1; s < NSIG; s++)
    if (st->h[s].user || st->h[s].chld) {
      st->h[s].user = st->h[s].chld = false;
      release_signal(loop, st, s);
    }
  close_sfd(loop, st);
  free(st);
  loop->sigs = NULL;
}

/* ---- the API ----------------------------------------------------------------------- */

static int check_signo(int signo, const char *who) {
  if (signo <= 0 || signo >= NSIG)
    return cio__fail(-EINVAL, "%s: %d is not a signal number", who, signo);
  switch (signo) {
  case SIGKILL:
  case SIGSTOP:
    return cio__fail(-EINVAL, "%s: signal %d (%s) cannot be caught", who, signo, strsignal(signo));
  case SIGSEGV:
  case SIGBUS:
  case SIGILL:
  case SIGFPE:
  case SIGTRAP:
    return cio__fail(-EINVAL, "%s: signal %d (%s) is a synchronous fault, not an event", who,
                     signo, strsignal(signo));
  default:
    break;
  }
  if (signo > 31 && signo < SIGRTMIN)
    return cio__fail(-EINVAL, "%s: signal %d is reserved by the C library", who, signo);
  return 0;
}

int cio_add_signal_handler(cio_loop *loop, int signo, cio_callback_fn fn, void *arg) {
  const char *who = "cio_add_signal_handler";
  int rc = cio__loop_check(loop, who);
  if (rc < 0) return rc;
  if (!fn) return cio__fail(-EINVAL, "%s: callback is NULL", who);
  if ((rc = check_signo(signo, who)) < 0) return rc;
  if (my_tid() != getpid())
    return cio__fail(CIO_ERUNTIME, "%s: signal handlers can only be added in the main thread", who);
  struct sigstate *st = NULL;
  if ((rc = state_get(loop, &st)) < 0) return rc;
  if ((rc = take_signal(loop, st, signo, who)) < 0) return rc;
  st->h[signo].fn = fn;
  st->h[signo].arg = arg;
  st->h[signo].user = true;
  return 0;
}

int cio_remove_signal_handler(cio_loop *loop, int signo) {
  if (!loop) return cio__fail(-EINVAL, "cio_remove_signal_handler: loop is NULL");
  if (signo <= 0 || signo >= NSIG)
    return cio__fail(-EINVAL, "cio_remove_signal_handler: %d is not a signal number", signo);
  struct sigstate *st = loop->sigs;
  if (!st || !st->h[signo].user) return 0;
  st->h[signo].user = false;
  st->h[signo].fn = NULL;
  if (!st->h[signo].chld) release_signal(loop, st, signo);
  return 1;
}

int cio__signal_watch_chld(cio_loop *loop, void (*hook)(cio_loop *loop)) {
  struct sigstate *st = NULL;
  int rc = state_get(loop, &st);
  if (rc < 0) return rc;
  st->chld_hook = hook;
  if (st->h[SIGCHLD].chld) return 0;
  if ((rc = take_signal(loop, st, SIGCHLD, "cio_subprocess_exec")) < 0) return rc;
  st->h[SIGCHLD].chld = true;
  return 0;
}
