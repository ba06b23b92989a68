/* Layer 5: tasks, sleeping, task-local values (cio_run is in runner.c). See include/cio/task.h. */
#include "task.h"
#include "debug.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint next_task_id = 1;

/* Task ids ("Task-N"): unique in the process, increasing within a thread
 * (consecutive in a program whose tasks one thread creates). Each thread
 * takes them from the shared counter in blocks, so that creating a task costs
 * no locked instruction (one would also wait for the stores that initialised
 * the task to reach the cache). */
#define TASK_ID_BLOCK 1024u
static CIO__TLS uint32_t id_next, id_left;

static inline uint32_t new_task_id(void) {
  if (CIO__UNLIKELY(id_left == 0)) {
    id_next = (uint32_t)atomic_fetch_add_explicit(&next_task_id, TASK_ID_BLOCK, memory_order_relaxed);
    id_left = TASK_ID_BLOCK;
  }
  id_left--;
  return id_next++;
}

static inline struct cio_task *task_of(struct cio_future *f) { return (struct cio_task *)f; }

cio_task *cio_current_task(void) { return cio__current(); }

static bool task_ok(const cio_task *t) {
  return t && t->fut.magic == CIO__FUT_MAGIC && (t->fut.flags & CIO__F_TASK);
}

static int check_task(const cio_task *t, const char *who) {
  if (!t) return cio__fail(-EINVAL, "%s: task is NULL", who);
  if (!task_ok(t)) return cio__fail(-EINVAL, "%s: not a live task", who);
  return 0;
}

/* ---- task-local values ------------------------------------------------------------ */

static struct cio__locals *locals_ref(struct cio__locals *l) {
  if (l) l->refs++;
  return l;
}

static void locals_unref(struct cio__locals *l) {
  while (l && --l->refs == 0) {
    struct cio__locals *next = l->next;
    free(l);
    l = next;
  }
}

static struct cio__task_cold *cold_get(struct cio_task *t) {
  if (!t->cold) t->cold = calloc(1, sizeof *t->cold);
  return t->cold;
}

static struct cio__locals *locals_of(struct cio_task *t, cio_loop *loop) {
  if (t) return t->cold ? t->cold->locals : NULL;
  return loop ? loop->locals : NULL;
}

void *cio_local_get(const cio_local_key *key, void *dflt) {
  if (!key) return dflt;
  for (struct cio__locals *l = locals_of(cio__current(), cio__running_loop); l; l = l->next)
    if (l->key == key) return l->value;
  return dflt;
}

int cio_local_set(const cio_local_key *key, void *value) {
  if (!key) return cio__fail(-EINVAL, "cio_local_set: key is NULL");
  struct cio_task *t = cio__current();
  cio_loop *loop = cio__running_loop;
  if (!loop) return cio__fail(CIO_ENOTRUNNING, "cio_local_set: no task and no running loop");
  struct cio__locals **slot = &loop->locals;
  if (t) {
    if (!cold_get(t)) return cio__fail(-ENOMEM, "cio_local_set: out of memory");
    slot = &t->cold->locals;
  }
  /* Persistent list: a new head shadows older values, so copies made for
   * children (which share the old head) never see the change. */
  struct cio__locals *l = malloc(sizeof *l);
  if (!l) return cio__fail(-ENOMEM, "cio_local_set: out of memory");
  l->refs = 1;
  l->key = key;
  l->value = value;
  l->next = *slot; /* takes over the slot's reference */
  *slot = l;
  return 0;
}

/* ---- lifecycle ------------------------------------------------------------------- */

/* Tasks come from the loop's slab (no malloc per spawn; a released task
 * keeps its dead magic until reused, so a second release is caught). The
 * free-list link takes the `step` node. The creator sets every field. */
static struct cio_task *task_alloc(cio_loop *loop) {
  if (!loop->task_slab.size)
    cio__slab_init(&loop->task_slab, sizeof(struct cio_task), offsetof(struct cio_task, step));
  return cio__slab_alloc(&loop->task_slab);
}

static void task_free(struct cio_future *f) {
  struct cio_task *t = task_of(f);
  cio_loop *loop = f->loop;
  cio__future_finalize(f, t);
  if (CIO__UNLIKELY(loop->debug)) cio__debug_task_freed(loop, t); /* debug.c */
  struct cio__task_cold *c = t->cold;
  if (c) {
    free(c->name);
    free(c->cancel_msg);
    locals_unref(c->locals);
    cio__errslot_clear(&c->err);
    free(c);
  }
  cio__slab_free(&loop->task_slab, t);
  cio__loop_unref(loop);
}

/* Drop the loop's reference of a task that is done (or abandoned): what
 * cio_future_unref does, without its checks (the loop's reference keeps the
 * task alive and counted). */
static void loop_release(struct cio_task *t) {
  t->fut.flags &= (uint8_t)~CIO__F_LOOPREF;
  if (--t->fut.refs == 0) task_free(&t->fut);
}

static void link_task(cio_loop *loop, struct cio_task *t) {
  t->link.next = &loop->tasks;
  t->link.prev = loop->tasks.prev;
  loop->tasks.prev->next = &t->link;
  loop->tasks.prev = &t->link;
  loop->ntasks++;
}

static void unlink_task(cio_loop *loop, struct cio_task *t) {
  t->link.prev->next = t->link.next;
  t->link.next->prev = t->link.prev;
  t->link.prev = t->link.next = NULL;
  loop->ntasks--;
}

/* Record the outcome of a body that returned rc: the cancellation rule of
 * docs/design.md. */
static void finish(struct cio_task *t, int rc, void *result) {
  cio_loop *loop = t->fut.loop;
  unlink_task(loop, t);
  t->tstate = CIO__T_DONE;
  t->waiting_on = NULL;
  bool owned = false;
  const char *msg;
  if (rc >= 0 && t->cancel_requests == 0) {
    cio__future_complete(&t->fut, CIO__RESULT, rc, result, NULL, false); /* rc: kept for awaiters */
  } else if (rc >= 0 || rc == -ECANCELED) {
    msg = cio__errslot_take(-ECANCELED, &owned);
    if (!msg && t->cold && t->cold->cancel_msg) {
      msg = t->cold->cancel_msg;
      owned = true;
      t->cold->cancel_msg = NULL;
    }
    cio__future_complete(&t->fut, CIO__CANCELLED, -ECANCELED, NULL, msg, owned);
  } else {
    msg = cio__errslot_take(rc, &owned);
    cio__future_complete(&t->fut, CIO__ERROR, rc, NULL, msg, owned);
  }
}

/* Error messages: a task with a cold part keeps its last failure there; one
 * without writes to the thread's slot while it runs, and what is left there
 * when it stops running is moved into a cold part (rare: a failure followed
 * by a suspension), so another task's failure cannot overwrite it. */
static void stash_error(struct cio_task *t) {
  if (cio__cur_slot || !cio__thread_slot.code) return;
  if (cold_get(t))
    cio__errslot_move(&t->cold->err, &cio__thread_slot);
  else
    cio__errslot_clear(&cio__thread_slot);
}

static inline void publish_running(struct cio_task *t) {
  if (!t) {
    cio__errslot_use(NULL);
    cio__stack_set_running(NULL, NULL, 0);
    return;
  }
  if (t->cold) {
    cio__errslot_use(&t->cold->err);
  } else {
    cio__errslot_use(NULL);
    if (cio__thread_slot.code) cio__errslot_clear(&cio__thread_slot);
  }
  cio__stack_set_running(t->u.run.stack, t->cold ? &t->cold->name : NULL, t->id);
}

/* Handed from the first step to the new stack: the union that held fn and
 * arg is the context by then. */
struct start_args {
  struct cio_task *t;
  cio_task_fn fn;
  void *arg;
};

static void task_entry(void *p) {
  struct start_args *sa = p;
  struct cio_task *t = sa->t;
  cio_task_fn fn = sa->fn;
  void *arg = sa->arg;
  cio__ctx_entered(&t->u.run.ctx);
  void *result = NULL;
  int rc = fn(arg, &result);
  finish(t, rc, result);
  cio__ctx_switch(&t->u.run.ctx, t->fut.loop->back, true);
  abort(); /* a finished task is never resumed */
}

static void step_run(struct cio__cb *cb);

/* Stacks are page-aligned and the same size, so without an offset the frames
 * every task suspends in (the switch, the await, the fd wait) sit at the same
 * page offset in every stack: in the same few sets of the L1 and L2 caches,
 * which then hold only a handful of tasks' frames (a server with 1,000
 * connections missed on each). Consecutive tasks start their stacks one
 * cache line apart, over 32 lines (16 for stacks under 64 KiB): at most 2 KiB,
 * so that a shallow task (a sleeper) still touches only its top page. */
static size_t stack_colour(const struct cio_task *t, const struct cio__stack *stack) {
  unsigned mask = stack->size >= 64 * 1024 ? 31 : 15;
  return (size_t)(t->id & mask) * 64;
}

/* The batch's next callback, if it resumes a task: its stack's top lines
 * come in while this task runs (a few microseconds of system calls at
 * least), instead of stalling its switch and returns a cache miss each.
 * always_inline: out of line, GCC finds the function free of effects (a
 * prefetch is not one) and deletes the call. */
__attribute__((always_inline)) static inline void prefetch_next(cio_loop *loop) {
  struct cio__cb *next = loop->batch;
  if (next && next->run == step_run) {
    struct cio_task *n = CIO__CONTAINER_OF(next, struct cio_task, step);
    if (n->tstate == CIO__T_SUSPENDED) cio__ctx_prefetch(&n->u.run.ctx);
  }
}

/* Run the task until it suspends or finishes: one "step". */
static void run_step(struct cio_task *t) {
  cio_loop *loop = t->fut.loop;
  struct start_args sa;
  if (t->tstate == CIO__T_NEW) {
    if (t->must_cancel) { /* cancelled before it started: the body never runs */
      finish(t, -ECANCELED, NULL);
      loop_release(t); /* the loop's reference */
      return;
    }
    struct cio__stack *stack;
    int rc = cio__stack_get(&loop->stacks, t->stack_size, &stack);
    if (rc < 0) {
      bool owned;
      const char *msg = cio__errslot_take(rc, &owned);
      unlink_task(loop, t);
      t->tstate = CIO__T_DONE;
      cio__future_complete(&t->fut, CIO__ERROR, rc, NULL, msg, owned);
      loop_release(t);
      return;
    }
    sa = (struct start_args){t, t->u.start.fn, t->u.start.arg};
    cio__ctx_make(&t->u.run.ctx, stack->lo, stack->size - stack_colour(t, stack), task_entry,
                  &sa);
    t->u.run.stack = stack;
  }
  struct cio_task *prev = loop->current;
  void *prev_back = loop->back;
  cio__ctx back;
  cio__ctx_init_thread(&back);
  if (prev) {
    stash_error(prev); /* an eager step runs inside another task */
    cio__ctx_set_bounds(&back, prev->u.run.stack->lo, prev->u.run.stack->size);
  } else {
    cio__ctx_set_bounds(&back, loop->thread_stack_lo, loop->thread_stack_size);
  }
  loop->back = &back;
  prefetch_next(loop);
  t->tstate = CIO__T_RUNNING;
  loop->current = t;
  publish_running(t);
  cio__ctx_switch(&back, &t->u.run.ctx, false);
  if (t->tstate == CIO__T_DONE) {
    loop->current = prev;
    loop->back = prev_back;
    publish_running(prev);
    cio__stack_put(&loop->stacks, t->u.run.stack);
    cio__ctx_destroy(&t->u.run.ctx);
    loop_release(t); /* the loop's reference */
    return;
  }
  stash_error(t);
  loop->current = prev;
  loop->back = prev_back;
  publish_running(prev);
}

static void step_run(struct cio__cb *cb) {
  run_step(CIO__CONTAINER_OF(cb, struct cio_task, step));
}

static void suspend(struct cio_task *t) {
  t->tstate = CIO__T_SUSPENDED;
  cio__ctx_switch(&t->u.run.ctx, t->fut.loop->back, false);
}

static const char *describe(struct cio__tasklink *l) {
  return cio_task_get_name(CIO__CONTAINER_OF(l, struct cio_task, link));
}

/* The loop closes with these tasks still pending: report them and let go. */
static void abandon(cio_loop *loop) {
  while (loop->tasks.next != &loop->tasks) {
    struct cio_task *t = CIO__CONTAINER_OF(loop->tasks.next, struct cio_task, link);
    unlink_task(loop, t);
    char msg[256];
    snprintf(msg, sizeof msg, "Task was destroyed but it is pending (task '%s')",
             cio_task_get_name(t));
    cio_exception_context ctx = {.message = msg, .task = t, .future = &t->fut};
    if (!cio__loop_forked(loop)) cio_loop_call_exception_handler(loop, &ctx); /* the parent's */
    if (t->waiting_on && !(t->waiting_on->flags & CIO__F_LOCAL)) {
      cio__future_remove_waiter(t->waiting_on, &t->step);
      cio_future_unref(t->waiting_on);
    }
    t->waiting_on = NULL;
    if (t->tstate != CIO__T_NEW) cio__ctx_destroy(&t->u.run.ctx); /* its stack goes with the pool */
    t->tstate = CIO__T_DONE;
    loop_release(t); /* the loop's reference */
  }
}

cio_task *cio_loop_create_task(cio_loop *loop, cio_task_fn fn, void *arg,
                               const cio_task_options *opts) {
  /* cio__loop_check's conditions, tested inline; it says which failed. */
  if (CIO__UNLIKELY(!loop || cio__loop_forked(loop) || loop->closed)) {
    cio__loop_check(loop, "cio_create_task");
    return NULL;
  }
  if (!fn) {
    cio__fail(-EINVAL, "cio_create_task: function is NULL");
    return NULL;
  }
  size_t stack = opts ? opts->stack_size : 0;
  if (stack > CIO__STACK_MAX) {
    cio__fail(-EINVAL, "cio_create_task: stack size %zu is over 1 GiB", stack);
    return NULL;
  }
  struct cio_task *t = task_alloc(loop);
  if (!t) {
    cio__fail_static(-ENOMEM, "cio_create_task: out of memory");
    return NULL;
  }
  t->cold = NULL;
  struct cio_task *creator = cio__running_loop == loop ? loop->current : NULL;
  struct cio__locals *inherited = locals_of(creator, loop);
  if ((opts && opts->name) || inherited) {
    if (!cold_get(t) || (opts && opts->name && !(t->cold->name = strdup(opts->name)))) {
      free(t->cold);
      cio__slab_free(&loop->task_slab, t);
      cio__fail_static(-ENOMEM, "cio_create_task: out of memory");
      return NULL;
    }
    t->cold->locals = locals_ref(inherited);
  }
  cio__future_init(&t->fut, loop, CIO__F_TASK | CIO__F_LOOPREF);
  t->fut.refs = 2; /* the caller's and the loop's */
  t->step.next = NULL;
  t->step.run = step_run;
  memset(&t->u, 0, sizeof t->u); /* sanitizer builds keep more in the context */
  t->u.start.fn = fn;
  t->u.start.arg = arg;
  t->waiting_on = NULL;
  t->id = new_task_id();
  t->cancel_requests = 0;
  t->stack_size = stack ? (uint32_t)cio__stack_round(stack) : 0;
  t->tstate = CIO__T_NEW;
  t->must_cancel = false;
  t->detached = false;
  cio__loop_ref(loop);
  link_task(loop, t);
  if (!loop->describe_task) {
    loop->describe_task = describe;
    loop->abandon_tasks = abandon;
  }
  if (CIO__UNLIKELY(loop->debug)) cio__debug_task_created(loop, t); /* debug.c: creation site */
  if (opts && opts->eager_start && cio__running_loop == loop)
    run_step(t);
  else
    cio__loop_push(loop, &t->step);
  return t;
}

cio_task *cio_create_task(cio_task_fn fn, void *arg, const cio_task_options *opts) {
  cio_loop *loop = cio__running_loop;
  if (!loop) {
    cio__fail(CIO_ENOTRUNNING, "cio_create_task: no running event loop in this thread");
    return NULL;
  }
  return cio_loop_create_task(loop, fn, arg, opts);
}

cio_task *cio_task_ref(cio_task *t) {
  if (task_ok(t)) t->fut.refs++;
  return t;
}

int cio_task_unref(cio_task *t) {
  if (!t) return cio__fail(-EINVAL, "cio_task_unref: task is NULL");
  if (t->fut.magic != CIO__FUT_MAGIC)
    return cio__fail(CIO_EDOUBLEFREE, "cio_task_unref: task released more times than referenced");
  /* A task with a reference beside the loop's: released here (the common
   * case, without a call); anything else through cio_future_unref's checks. */
  if ((t->fut.flags & (CIO__F_TASK | CIO__F_LOCAL)) != CIO__F_TASK ||
      ((t->fut.flags & CIO__F_LOOPREF) && t->fut.refs <= 1))
    return cio_future_unref(&t->fut);
  if (--t->fut.refs == 0) task_free(&t->fut);
  return 0;
}

int cio_task_detach(cio_task *t) {
  int rc = check_task(t, "cio_task_detach");
  if (rc < 0) return rc;
  bool was = t->detached;
  t->detached = true; /* before: the release may free the task */
  rc = cio_future_unref(&t->fut);
  if (rc < 0) t->detached = was; /* refused: the task is still there */
  return rc;
}

cio_future *cio_task_future(cio_task *t) { return task_ok(t) ? &t->fut : NULL; }

cio_task *cio_future_task(cio_future *f) {
  return cio__future_ok(f) && (f->flags & CIO__F_TASK) ? task_of(f) : NULL;
}

bool cio_task_done(const cio_task *t) { return task_ok(t) && t->fut.state != CIO__PENDING; }
bool cio_task_cancelled(const cio_task *t) { return task_ok(t) && t->fut.state == CIO__CANCELLED; }

int cio_task_result(cio_task *t, void **result) {
  int rc = check_task(t, "cio_task_result");
  return rc < 0 ? rc : cio_future_result(&t->fut, result);
}

const char *cio_task_get_name(cio_task *t) {
  if (!task_ok(t)) return "(not a task)";
  if (!t->cold || !t->cold->name) {
    char buf[32];
    snprintf(buf, sizeof buf, "Task-%u", t->id);
    if (!cold_get(t) || !(t->cold->name = strdup(buf))) return "Task-?";
  }
  return t->cold->name;
}

int cio_task_set_name(cio_task *t, const char *name) {
  int rc = check_task(t, "cio_task_set_name");
  if (rc < 0) return rc;
  if (!name) return cio__fail(-EINVAL, "cio_task_set_name: name is NULL");
  char *copy = strdup(name);
  if (!copy || !cold_get(t)) {
    free(copy);
    return cio__fail_static(-ENOMEM, "cio_task_set_name: out of memory");
  }
  free(t->cold->name);
  t->cold->name = copy;
  return 0;
}

int cio_task_add_done_callback(cio_task *t, cio_done_fn fn, void *arg) {
  int rc = check_task(t, "cio_task_add_done_callback");
  return rc < 0 ? rc : cio_future_add_done_callback(&t->fut, fn, arg);
}

int cio_task_remove_done_callback(cio_task *t, cio_done_fn fn, void *arg) {
  int rc = check_task(t, "cio_task_remove_done_callback");
  return rc < 0 ? rc : cio_future_remove_done_callback(&t->fut, fn, arg);
}

int cio_all_tasks(cio_loop *loop, cio_task **buf, int cap) {
  if (!loop) return cio__fail(-EINVAL, "cio_all_tasks: loop is NULL");
  if (cap > 0 && !buf) return cio__fail(-EINVAL, "cio_all_tasks: buf is NULL");
  int n = 0;
  for (struct cio__tasklink *l = loop->tasks.next; l != &loop->tasks; l = l->next, n++)
    if (n < cap) buf[n] = CIO__CONTAINER_OF(l, struct cio_task, link);
  return n;
}

/* ---- introspection: a dump of the pending tasks ------------------------------------- */

/* A suspended task's native stack, one frame a line (debug.c walks the
 * frame-pointer chain from the frame the switch saved). */
static void print_stack(FILE *out, struct cio_task *t) {
  uintptr_t pcs[32];
  int n = cio__task_frames(t, pcs, 32);
  if (n == 0) fprintf(out, "      (no stack walk in this build)\n");
  for (int i = 0; i < n; i++) {
    char f[512];
    cio__frame_format(pcs[i], f, sizeof f);
    fprintf(out, "      %s\n", f);
  }
}

int cio_loop_print_tasks(cio_loop *loop, void *stream) {
  FILE *out = stream;
  if (!loop || !out) return cio__fail(-EINVAL, "cio_loop_print_tasks: NULL argument");
  static const char *const states[] = {"not started", "running", "suspended", "done"};
  int n = 0;
  fprintf(out, "cio: %zu pending task(s)\n", loop->ntasks);
  for (struct cio__tasklink *l = loop->tasks.next; l != &loop->tasks; l = l->next, n++) {
    struct cio_task *t = CIO__CONTAINER_OF(l, struct cio_task, link);
    fprintf(out, "  task '%s': %s", cio_task_get_name(t), states[t->tstate]);
    if (t->cancel_requests) fprintf(out, ", %d cancellation(s) pending", t->cancel_requests);
    if (t->tstate == CIO__T_SUSPENDED) {
      struct cio_task *on = cio_future_task(t->waiting_on);
      if (on)
        fprintf(out, ", awaiting task '%s'", cio_task_get_name(on));
      else if (t->waiting_on && (t->waiting_on->flags & CIO__F_LOCAL))
        fprintf(out, ", waiting (sleep, lock, queue, fd...: see the stack)");
      else if (t->waiting_on)
        fprintf(out, ", awaiting future %p", (void *)t->waiting_on);
      else
        fprintf(out, ", ready to run");
      fprintf(out, "\n");
      print_stack(out, t);
    } else {
      fprintf(out, "\n");
    }
  }
  return n;
}

/* ---- cancellation -------------------------------------------------------------------- */

int cio_task_cancel(cio_task *t, const char *msg) {
  int rc = check_task(t, "cio_task_cancel");
  if (rc < 0) return rc;
  if (t->fut.state != CIO__PENDING) return 0;
  t->cancel_requests++;
  if (msg && cold_get(t)) {
    char *copy = strdup(msg);
    if (copy) {
      free(t->cold->cancel_msg);
      t->cold->cancel_msg = copy;
    }
  }
  if (t->waiting_on && cio_future_cancel(t->waiting_on, msg) == 1) return 1;
  t->must_cancel = true;
  return 1;
}

int cio_task_cancelling(const cio_task *t) { return task_ok(t) ? t->cancel_requests : 0; }

int cio_task_uncancel(cio_task *t) {
  int rc = check_task(t, "cio_task_uncancel");
  if (rc < 0) return rc;
  if (t->fut.state != CIO__PENDING) return t->cancel_requests;
  if (t->cancel_requests > 0 && --t->cancel_requests == 0) t->must_cancel = false;
  return t->cancel_requests;
}

/* One delivered request: the suspension point returns -ECANCELED. */
static int deliver_cancel(struct cio_task *t) {
  t->must_cancel = false;
  const char *msg = t->cold ? t->cold->cancel_msg : NULL;
  return msg ? cio__fail_copy(-ECANCELED, msg) : cio__fail_static(-ECANCELED, NULL);
}

/* ---- awaiting ------------------------------------------------------------------------ */

int cio__task_await(struct cio_task *t, struct cio_future *f, void **result) {
  if (f->state == CIO__PENDING) {
    bool counted = !(f->flags & CIO__F_LOCAL);
    if (counted) f->refs++; /* nobody may free it under us */
    t->waiting_on = f;
    cio__future_add_waiter(f, &t->step);
    if (t->must_cancel) {
      /* A request arrived while we were running: deliver it here, through
       * the future we are about to wait on. */
      t->must_cancel = false;
      cio_future_cancel(f, t->cold ? t->cold->cancel_msg : NULL);
    }
    suspend(t);
    t->waiting_on = NULL;
    int rc;
    if (t->must_cancel && f->state == CIO__CANCELLED) {
      /* Cancelled twice before it resumed (the awaited future by a first
       * request or by another party, then this task): as asyncio, the
       * future's cancellation, with its message, is the one delivered. */
      t->must_cancel = false;
      rc = cio__future_outcome(f, result);
    } else {
      rc = t->must_cancel ? deliver_cancel(t) : cio__future_outcome(f, result);
    }
    if (counted) cio_future_unref(f);
    return rc;
  }
  return cio__future_outcome(f, result);
}

static int await_checks(struct cio_future *f, const char *who, struct cio_task **out) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "%s: must be called from inside a task", who);
  if (!f) return cio__fail(-EINVAL, "%s: NULL", who);
  if (f->magic != CIO__FUT_MAGIC) return cio__fail(-EINVAL, "%s: not a live future or task", who);
  if (f->loop != t->fut.loop)
    return cio__fail(CIO_EWRONGLOOP, "%s: it belongs to another event loop", who);
  if (f == &t->fut) return cio__fail(CIO_ESELF, "%s: task '%s' cannot await itself", who,
                                     cio_task_get_name(t));
  *out = t;
  return 0;
}

int cio_future_await(cio_future *f, void **result) {
  struct cio_task *t;
  int rc = await_checks(f, "cio_future_await", &t);
  return rc < 0 ? rc : cio__task_await(t, f, result);
}

int cio_task_await(cio_task *task, void **result) {
  struct cio_task *t;
  int rc = await_checks(task ? &task->fut : NULL, "cio_task_await", &t);
  if (rc == 0 && !(task->fut.flags & CIO__F_TASK)) rc = cio__fail(-EINVAL, "cio_task_await: not a task");
  return rc < 0 ? rc : cio__task_await(t, &task->fut, result);
}

/* ---- sleeping ------------------------------------------------------------------------ */

struct sleeper {
  struct cio__timer timer;
  struct cio_future fut;
};

static void sleeper_fire(struct cio__cb *cb) {
  struct sleeper *s = CIO__CONTAINER_OF(cb, struct sleeper, timer.cb);
  s->timer.slot = CIO__TIMER_IDLE;
  if (s->fut.state == CIO__PENDING) cio__future_complete(&s->fut, CIO__RESULT, 0, NULL, NULL, false);
}

int cio_yield(void) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "cio_yield: must be called from inside a task");
  cio__loop_push(t->fut.loop, &t->step);
  suspend(t);
  return t->must_cancel ? deliver_cancel(t) : 0;
}

int cio_sleep(double delay) {
  struct cio_task *t = cio__current();
  if (!t) return cio__fail(CIO_ENOTASK, "cio_sleep: must be called from inside a task");
  if (isnan(delay)) return cio__fail(-EINVAL, "cio_sleep: delay is NaN");
  if (delay <= 0) return cio_yield();
  cio_loop *loop = t->fut.loop;
  /* The future and its timer live in this frame: sleeping allocates nothing
   * (the timer heap grows only when more timers are armed than ever before). */
  struct sleeper s;
  cio__timer_init(&s.timer, sleeper_fire);
  cio__future_init(&s.fut, loop, CIO__F_LOCAL);
  int rc = cio__timer_arm(loop, &s.timer, cio__loop_now(loop) + cio__seconds_to_ns(delay));
  if (rc < 0) return rc;
  rc = cio__task_await(t, &s.fut, NULL);
  cio__timer_stop(loop, &s.timer);
  cio__future_finalize(&s.fut, NULL);
  return rc;
}

__attribute__((constructor)) static void install_hooks(void) {
  cio__task_free_hook = task_free;
  cio__debug_step_run = step_run; /* debug.c: tells task steps from callbacks */
}
