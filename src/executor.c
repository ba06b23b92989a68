/* Layer 8: the thread pool. See include/cio/executor.h.
 *
 * A job record is allocated by the loop thread, queued on the executor, run by
 * a worker thread, then handed back to its loop through the cross-thread
 * inbox (cio__loop_post: the node is embedded, so handing back cannot fail
 * for lack of memory). From then on only the loop thread touches it.
 *
 * The awaiting task waits on a future in its own frame (struct waiter). The
 * job and the waiter point at each other until one side lets go, always on
 * the loop thread: the completion completes the future and unlinks; a
 * cancelled task unlinks and marks the job cancelled, and the late outcome is
 * then dropped or reported when it arrives.
 *
 * A worker must never touch a loop that is gone: jobs reach their loop
 * through a small shared mailbox whose loop pointer is cleared, under its
 * lock, when the loop closes. A job finishing after that cleans up in its
 * own thread.
 */
#include "executor.h"
#include "sigs.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 1024

/* ---- mailbox: the way back to a loop ----------------------------------------------- */

struct mailbox {
  atomic_int refs;
  pthread_mutex_t lock;
  cio_loop *loop; /* NULL once the loop has closed */
};

static void mailbox_unref(struct mailbox *mb) {
  if (atomic_fetch_sub_explicit(&mb->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&mb->lock);
  free(mb);
}

/* ---- records ---------------------------------------------------------------------- */

struct waiter;

struct job {
  struct cio__cb cb;  /* completion node: inbox -> ready queue */
  struct job *qnext;  /* executor queue */
  cio_job_fn fn;
  void *arg;
  cio_job_drop_fn drop;
  void (*arg_free)(void *arg);
  struct mailbox *mb;
  atomic_bool cancelled;
  /* Outcome, written by the worker before it posts the job. */
  int rc;
  void *result;
  char *msg; /* malloc'd, NULL = the code's description */
  /* Loop side. */
  struct waiter *waiter; /* NULL once the awaiting task let go */
  char *task_name;       /* for reports about a late outcome */
};

struct waiter {
  struct cio_future fut;
  struct job *job; /* NULL once the job is done */
  struct cio_task *task;
};

struct cio_executor {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_mutex_t join_lock; /* one joiner at a time */
  struct job *head, **tailp;
  int queued;
  int max_threads;
  int nthreads; /* started */
  int alive;    /* not yet exited */
  int idle;
  int joined;   /* threads[0..joined) have been joined */
  bool shutdown;
  bool orphaned; /* released without waiting: the last thread frees it */
  unsigned fork_gen; /* cio__fork_gen at creation: its threads are in that process */
  pthread_t *threads;
};

/* Per-loop state, kept in loop->default_executor. */
struct loop_exec {
  cio_executor *dflt;
  struct mailbox *mb;
};

static _Thread_local struct job *current_job;
static _Thread_local cio_executor *current_executor;

bool cio_job_cancelled(void) {
  struct job *j = current_job;
  return j && atomic_load_explicit(&j->cancelled, memory_order_relaxed);
}

static int default_threads(void) {
  cpu_set_t set;
  int cpus = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus <= 0) cpus = 1;
  return cpus + 4 < 32 ? cpus + 4 : 32;
}

/* ---- the loop side of a finished job ------------------------------------------------- */

static void job_free(struct job *j) {
  if (j->arg_free) j->arg_free(j->arg);
  free(j->msg);
  free(j->task_name);
  mailbox_unref(j->mb);
  free(j);
}

/* The outcome arrived (or the loop closes) and nobody awaits it any more:
 * the job is over, so its drop function (if any) gets its result and arg,
 * whatever the outcome; a late error is reported, and so is a result that
 * nobody can free. */
static void job_late(cio_loop *loop, struct job *j) {
  char text[256];
  const char *who = j->task_name ? j->task_name : "?";
  if (j->rc < 0 && j->rc != -ECANCELED) {
    snprintf(text, sizeof text,
             "executor job failed after its awaiting task '%s' stopped waiting", who);
    cio_exception_context ctx = {.message = text, .code = j->rc, .error = j->msg};
    if (loop) cio_loop_call_exception_handler(loop, &ctx);
  }
  if (j->drop) {
    j->drop(j->rc >= 0 ? j->result : NULL, j->arg);
  } else if (j->rc >= 0 && j->result) {
    snprintf(text, sizeof text,
             "result %p of an executor job was dropped: its awaiting task '%s' stopped waiting "
             "(give cio_run_in_executor_ex a drop function to free it)",
             j->result, who);
    cio_exception_context ctx = {.message = text};
    if (loop) cio_loop_call_exception_handler(loop, &ctx);
  }
}

static void job_done(struct cio__cb *cb) {
  struct job *j = (struct job *)cb;
  cio_loop *loop = j->mb->loop; /* valid: we run on that loop */
  atomic_fetch_sub_explicit(&loop->jobs_in_flight, 1, memory_order_acq_rel);
  struct waiter *w = j->waiter;
  if (w) {
    w->job = NULL;
    j->waiter = NULL;
    if (w->fut.state == CIO__PENDING) {
      if (j->rc >= 0) {
        cio__future_complete(&w->fut, CIO__RESULT, j->rc, j->result, NULL, false);
      } else {
        int state = j->rc == -ECANCELED ? CIO__CANCELLED : CIO__ERROR;
        cio__future_complete(&w->fut, state, j->rc, NULL, j->msg, j->msg != NULL);
        j->msg = NULL; /* the future owns it now */
      }
      job_free(j);
      return;
    }
    /* The task was cancelled in this iteration and has not resumed yet. */
    j->task_name = strdup(cio_task_get_name(w->task));
  }
  job_late(loop, j);
  job_free(j);
}

/* The loop closes with the completion still queued. */
static void job_discard(struct cio__cb *cb) {
  struct job *j = (struct job *)cb;
  job_late(j->mb->loop, j);
  job_free(j);
}

/* ---- the worker side ----------------------------------------------------------------- */

static void run_job(struct job *j) {
  /* A message left in this thread's error slot by an earlier job must not
   * be mistaken for this one's. */
  bool owned = false;
  const char *stale = cio__errslot_take(cio_errcode(), &owned);
  if (owned) free((void *)stale);
  current_job = j;
  void *result = NULL;
  int rc = j->fn(j->arg, &result);
  current_job = NULL;
  j->rc = rc;
  j->result = rc >= 0 ? result : NULL;
  if (rc < 0) {
    const char *m = cio__errslot_take(rc, &owned);
    j->msg = owned ? (char *)m : m ? strdup(m) : NULL;
  }
  /* Hand it back. Holding the mailbox lock keeps the loop alive meanwhile. */
  struct mailbox *mb = j->mb;
  pthread_mutex_lock(&mb->lock);
  bool posted = mb->loop && cio__loop_post(mb->loop, &j->cb) == 0;
  pthread_mutex_unlock(&mb->lock);
  if (posted) return; /* the loop owns j now */
  /* Its loop is closed: nobody will read the outcome. */
  if (j->rc < 0 && j->rc != -ECANCELED)
    fprintf(stderr, "cio: an executor job failed after its event loop closed: %s%s%s\n",
            cio_err_name(j->rc), j->msg ? ": " : "", j->msg ? j->msg : "");
  if (j->drop)
    j->drop(j->rc >= 0 ? j->result : NULL, j->arg);
  else if (j->rc >= 0 && j->result)
    fprintf(stderr, "cio: result %p of an executor job was dropped: its event loop is closed\n",
            j->result);
  job_free(j);
}

static void executor_destroy(cio_executor *ex) {
  cio__live_remove(ex, true);
  pthread_mutex_destroy(&ex->lock);
  pthread_mutex_destroy(&ex->join_lock);
  pthread_cond_destroy(&ex->cond);
  free(ex->threads);
  free(ex);
}

static void *worker(void *p) {
  cio_executor *ex = p;
  current_executor = ex;
  pthread_mutex_lock(&ex->lock);
  for (;;) {
    while (!ex->head && !ex->shutdown) {
      ex->idle++;
      pthread_cond_wait(&ex->cond, &ex->lock);
      ex->idle--;
    }
    struct job *j = ex->head;
    if (!j) break; /* shut down and drained */
    ex->head = j->qnext;
    if (!ex->head) ex->tailp = &ex->head;
    ex->queued--;
    pthread_mutex_unlock(&ex->lock);
    run_job(j);
    pthread_mutex_lock(&ex->lock);
  }
  bool last = --ex->alive == 0 && ex->orphaned;
  pthread_mutex_unlock(&ex->lock);
  if (last) executor_destroy(ex);
  return NULL;
}

/* ---- executors --------------------------------------------------------------------- */

int cio_executor_new(cio_executor **out, int max_threads) {
  if (!out) return cio__fail(-EINVAL, "cio_executor_new: out is NULL");
  *out = NULL;
  if (max_threads < 0 || max_threads > MAX_THREADS)
    return cio__fail(-EINVAL, "cio_executor_new: max_threads %d is not in 0..%d", max_threads,
                     MAX_THREADS);
  cio_executor *ex = calloc(1, sizeof *ex);
  if (!ex) return cio__fail_static(-ENOMEM, "cio_executor_new: out of memory");
  ex->max_threads = max_threads ? max_threads : default_threads();
  ex->threads = calloc((size_t)ex->max_threads, sizeof *ex->threads);
  if (!ex->threads) {
    free(ex);
    return cio__fail_static(-ENOMEM, "cio_executor_new: out of memory");
  }
  if (cio__live_add(ex) < 0) {
    free(ex->threads);
    free(ex);
    return cio__fail_static(-ENOMEM, "cio_executor_new: out of memory");
  }
  pthread_mutex_init(&ex->lock, NULL);
  pthread_mutex_init(&ex->join_lock, NULL);
  pthread_cond_init(&ex->cond, NULL);
  ex->tailp = &ex->head;
  ex->fork_gen = atomic_load_explicit(&cio__fork_gen, memory_order_relaxed);
  *out = ex;
  return 0;
}

int cio_executor_max_threads(const cio_executor *ex) {
  return ex ? ex->max_threads : cio__fail(-EINVAL, "cio_executor_max_threads: executor is NULL");
}

/* Queue j; start a thread if every running one is busy. */
static bool forked(const cio_executor *ex) {
  return ex->fork_gen != atomic_load_explicit(&cio__fork_gen, memory_order_relaxed);
}

static int submit(cio_executor *ex, struct job *j, const char *who) {
  if (forked(ex))
    return cio__fail(CIO_EFORKED, "%s: the executor was inherited across fork(); its threads are "
                                  "in the parent", who);
  pthread_mutex_lock(&ex->lock);
  if (ex->shutdown) {
    pthread_mutex_unlock(&ex->lock);
    return cio__fail(CIO_ESHUTDOWN, "%s: the executor is shut down", who);
  }
  j->qnext = NULL;
  *ex->tailp = j;
  ex->tailp = &j->qnext;
  ex->queued++;
  int err = 0;
  if (ex->queued > ex->idle && ex->nthreads < ex->max_threads) {
    err = cio__thread_create(&ex->threads[ex->nthreads], NULL, worker, ex);
    if (err == 0) {
      ex->nthreads++;
      ex->alive++;
    }
  }
  if (err && ex->alive == 0) {
    /* Nobody would ever run it: take it back. */
    ex->head = NULL;
    ex->tailp = &ex->head;
    ex->queued = 0;
    pthread_mutex_unlock(&ex->lock);
    return cio__fail(-EAGAIN, "%s: cannot start a worker thread: %s", who, strerror(err));
  }
  pthread_cond_signal(&ex->cond);
  pthread_mutex_unlock(&ex->lock);
  return 0;
}

int cio_executor_shutdown(cio_executor *ex, bool wait) {
  if (!ex) return cio__fail(-EINVAL, "cio_executor_shutdown: executor is NULL");
  if (!cio__live_remove(ex, false))
    return cio__fail(-EINVAL, "cio_executor_shutdown: not a live executor (freed?)");
  if (forked(ex))
    return cio__fail(CIO_EFORKED, "cio_executor_shutdown: the executor was inherited across fork()");
  if (wait && current_executor == ex)
    return cio__fail(-EDEADLK, "cio_executor_shutdown: a job cannot wait for its own executor");
  pthread_mutex_lock(&ex->lock);
  ex->shutdown = true;
  pthread_cond_broadcast(&ex->cond);
  pthread_mutex_unlock(&ex->lock);
  if (!wait) return 0;
  pthread_mutex_lock(&ex->join_lock);
  for (;;) {
    pthread_mutex_lock(&ex->lock);
    int n = ex->nthreads, i = ex->joined; /* no thread starts after shutdown */
    pthread_mutex_unlock(&ex->lock);
    if (i >= n) break;
    pthread_join(ex->threads[i], NULL);
    pthread_mutex_lock(&ex->lock);
    ex->joined = i + 1;
    pthread_mutex_unlock(&ex->lock);
  }
  pthread_mutex_unlock(&ex->join_lock);
  return 0;
}

int cio_executor_free(cio_executor *ex) {
  if (!ex) return 0;
  if (!cio__live_remove(ex, false))
    return cio__fail(CIO_EDOUBLEFREE, "cio_executor_free: not a live executor (freed twice?)");
  if (forked(ex)) {
    /* Its threads and locks are the parent's: forget it, touch nothing. */
    cio__live_remove(ex, true);
    return 0;
  }
  cio_loop *loop = cio__running_loop;
  struct loop_exec *le = loop ? loop->default_executor : NULL;
  if (le && le->dflt == ex)
    return cio__fail(-EINVAL, "cio_executor_free: this is the loop's default executor");
  int rc = cio_executor_shutdown(ex, true);
  if (rc < 0) return rc;
  executor_destroy(ex);
  return 0;
}

/* Shut down without waiting and let the last thread free it. */
static void executor_release(cio_executor *ex) {
  pthread_mutex_lock(&ex->lock);
  ex->shutdown = true;
  ex->orphaned = true;
  for (int i = ex->joined; i < ex->nthreads; i++) pthread_detach(ex->threads[i]);
  ex->joined = ex->nthreads;
  bool none = ex->alive == 0;
  pthread_cond_broadcast(&ex->cond);
  pthread_mutex_unlock(&ex->lock);
  if (none) executor_destroy(ex);
}

/* ---- per-loop state and the default executor ------------------------------------------ */

/* loop->default_executor_shutdown: cio_run's end (wait) and cio_loop_close
 * (no wait: the loop is closing, so the mailbox is closed too). */
static void loop_shutdown(cio_loop *loop, bool wait) {
  struct loop_exec *le = loop->default_executor;
  if (!le) return;
  if (le->dflt) {
    if (wait) {
      cio_executor_shutdown(le->dflt, true);
      executor_destroy(le->dflt);
    } else {
      executor_release(le->dflt);
    }
    le->dflt = NULL;
  }
  if (!wait) {
    pthread_mutex_lock(&le->mb->lock);
    le->mb->loop = NULL;
    pthread_mutex_unlock(&le->mb->lock);
    mailbox_unref(le->mb);
    free(le);
    loop->default_executor = NULL;
  }
}

static struct loop_exec *loop_exec(cio_loop *loop) {
  struct loop_exec *le = loop->default_executor;
  if (le) return le;
  le = calloc(1, sizeof *le);
  struct mailbox *mb = calloc(1, sizeof *mb);
  if (!le || !mb) {
    free(le);
    free(mb);
    cio__fail_static(-ENOMEM, "out of memory for the executor state");
    return NULL;
  }
  atomic_init(&mb->refs, 1);
  pthread_mutex_init(&mb->lock, NULL);
  mb->loop = loop;
  le->mb = mb;
  loop->default_executor = le;
  loop->default_executor_shutdown = loop_shutdown;
  return le;
}

static cio_executor *default_executor(cio_loop *loop) {
  struct loop_exec *le = loop_exec(loop);
  if (!le) return NULL;
  if (!le->dflt && cio_executor_new(&le->dflt, 0) < 0) return NULL;
  return le->dflt;
}

cio_executor *cio_get_default_executor(void) {
  cio_loop *loop = cio__running_loop;
  if (!loop) {
    cio__fail(CIO_ENOTRUNNING, "cio_get_default_executor: no running event loop in this thread");
    return NULL;
  }
  if (cio__loop_check(loop, "cio_get_default_executor") < 0) return NULL;
  return default_executor(loop);
}

/* ---- running a job from a task --------------------------------------------------------- */

int cio__run_job(struct cio_task *t, cio_executor *ex, cio_job_fn fn, void *arg,
                 cio_job_drop_fn drop, void (*arg_free)(void *arg), void **result,
                 const char *who) {
  cio_loop *loop = t->fut.loop;
  struct loop_exec *le = loop_exec(loop);
  struct job *j = NULL;
  int rc;
  if (!le || (!ex && !(ex = default_executor(loop)))) {
    rc = cio_errcode();
    goto refused;
  }
  j = calloc(1, sizeof *j);
  if (!j) {
    rc = cio__fail_static(-ENOMEM, "out of memory for an executor job");
    goto refused;
  }
  j->cb.run = job_done;
  j->fn = fn;
  j->arg = arg;
  j->drop = drop;
  j->mb = le->mb;
  atomic_init(&j->cancelled, false);
  atomic_fetch_add_explicit(&le->mb->refs, 1, memory_order_relaxed);
  struct waiter w = {.job = j, .task = t};
  cio__future_init(&w.fut, loop, CIO__F_LOCAL);
  j->waiter = &w;
  rc = submit(ex, j, who);
  if (rc < 0) goto refused;
  j->arg_free = arg_free; /* the job owns arg now */
  atomic_fetch_add_explicit(&loop->jobs_in_flight, 1, memory_order_acq_rel);
  rc = cio__task_await(t, &w.fut, result);
  if (w.job) {
    /* Cancelled while the job runs: it goes on in its thread, its outcome
     * will be dropped (or reported) when it arrives. */
    j = w.job;
    j->waiter = NULL;
    j->task_name = strdup(cio_task_get_name(t));
    atomic_store_explicit(&j->cancelled, true, memory_order_relaxed);
  } else if (rc == -ECANCELED && w.fut.state != CIO__CANCELLED) {
    /* The job finished, but the task was cancelled before it resumed: its
     * outcome was not delivered (an error is reported when w.fut goes). */
    void *res = w.fut.state == CIO__RESULT ? w.fut.result : NULL;
    if (drop) {
      drop(res, arg);
    } else if (res) {
      char text[256];
      snprintf(text, sizeof text,
               "result %p of an executor job was dropped: its awaiting task '%s' was cancelled "
               "(give cio_run_in_executor_ex a drop function to free it)",
               w.fut.result, cio_task_get_name(t));
      cio_exception_context ctx = {.message = text, .task = t};
      cio_loop_call_exception_handler(loop, &ctx);
    }
  }
  cio__future_finalize(&w.fut, NULL);
  return rc;

refused:
  if (j) job_free(j);
  if (arg_free) arg_free(arg);
  return rc;
}

int cio_run_in_executor_ex(cio_executor *ex, cio_job_fn fn, void *arg, cio_job_drop_fn drop,
                           void **result) {
  const char *who = "cio_run_in_executor";
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  if (!fn) return cio__fail(-EINVAL, "%s: function is NULL", who);
  return cio__run_job(t, ex, fn, arg, drop, NULL, result, who);
}

int cio_run_in_executor(cio_executor *ex, cio_job_fn fn, void *arg, void **result) {
  return cio_run_in_executor_ex(ex, fn, arg, NULL, result);
}

int cio_to_thread(cio_job_fn fn, void *arg, void **result) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "cio_to_thread: must be called from inside a task");
  if (!fn) return cio__fail(-EINVAL, "cio_to_thread: function is NULL");
  return cio__run_job(t, NULL, fn, arg, NULL, NULL, result, "cio_to_thread");
}

__attribute__((constructor)) static void register_discards(void) {
  cio__cb_discard_register(job_done, job_discard);
}
