/* Layer 3: the event loop (internal view). It knows nothing of tasks: it runs
 * callbacks (struct cio__cb nodes) from a FIFO ready queue, fires timers from a
 * deadline FIFO and a heap (timer.c), polls fds and drains a cross-thread inbox. The layers above embed cb
 * and timer nodes in their own objects, so scheduling allocates nothing. */
#ifndef CIO_LOOP_INTERNAL_H
#define CIO_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cio/loop.h"
#include "error.h"
#include "poll.h"
#include "slab.h"
#include "stack.h"

#define CIO__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A ready-queue entry: run(cb) is called once when its turn comes. */
struct cio__cb {
  struct cio__cb *next;
  void (*run)(struct cio__cb *cb);
};

/* FIFO of cb nodes. */
struct cio__queue {
  struct cio__cb *head;
  struct cio__cb **tailp;
};

static inline void cio__queue_init(struct cio__queue *q) {
  q->head = NULL;
  q->tailp = &q->head;
}
static inline bool cio__queue_empty(const struct cio__queue *q) { return q->head == NULL; }
static inline void cio__queue_push(struct cio__queue *q, struct cio__cb *cb) {
  cb->next = NULL;
  *q->tailp = cb;
  q->tailp = &cb->next;
}
/* Append the chain first..*last_next (already linked) in one step. */
static inline void cio__queue_splice(struct cio__queue *q, struct cio__cb *first,
                                     struct cio__cb **last_next) {
  *q->tailp = first;
  q->tailp = last_next;
}

/* A timer: when due, its cb is moved to the ready queue. An armed timer is
 * in the loop's deadline FIFO or in its heap (timer.c); while in the FIFO,
 * cb.next is its link to the next one (cb is in no queue then). */
struct cio__timer {
  struct cio__cb cb;
  int64_t when;  /* loop nanoseconds */
  uint64_t seq;  /* scheduling order, breaks deadline ties */
  struct cio__timer *prev; /* in the FIFO: the one before */
  uint32_t slot; /* heap index, CIO__TIMER_FIFO, _QUEUED or _IDLE */
};
/* A timer heap entry: the deadline inline, so that sifting does not chase
 * pointers. */
struct cio__heap_ent {
  int64_t when;
  struct cio__timer *t;
};
#define CIO__TIMER_IDLE UINT32_MAX
#define CIO__TIMER_QUEUED (UINT32_MAX - 1) /* fired: its cb waits in the ready queue */
#define CIO__TIMER_FIFO (UINT32_MAX - 2)   /* armed, in the deadline FIFO */

/* A pending task/future registry hook: the task layer lists its pending tasks
 * here so that the loop can name them (deadlock, close). */
struct cio__tasklink {
  struct cio__tasklink *prev, *next;
};

struct cio__locals;

struct cio_loop {
  struct cio__queue ready;
  struct cio__cb *batch; /* the rest of the batch being run (step 4) */
  /* Armed timers (timer.c): those armed in non-decreasing deadline order
   * (each sleep of a burst of tasks) are appended to a FIFO, O(1) both ways;
   * the others go to the heap. */
  struct cio__timer *fifo_head, *fifo_tail;
  struct cio__heap_ent *heap;
  uint32_t nheap, heap_cap;
  uint64_t timer_seq;

  int64_t virt_now;   /* virtual clock, ns */
  bool virtual_time;
  bool no_deadlock_check;
  bool running, stopping, closed, freed;
  int refs;           /* the user's (until cio_loop_free) plus one per live future */
  /* Threadsafe references (cio_loop_ref_threadsafe) plus one standing for all
   * of `refs`: the memory goes when this reaches 0. */
  atomic_int foreign_refs;
  /* Threadsafe references alone: while any is held the loop is never
   * reported deadlocked (another thread may still post). */
  atomic_int threadsafe_refs;
  unsigned fork_gen;  /* cio__fork_gen when the loop was created */

  struct cio__poller poller;
  unsigned io_watchers;    /* registered fd interests (not the inbox) */
  unsigned busy_passes;    /* passes since the last poll while busy */
  uint64_t polls;          /* poller waits so far (the I/O layer uses it to
                              know whether a poll ran since it last looked) */

  /* The I/O layer's per-loop state (fd records), created on first use and
   * released by io_close when the loop closes (after the pending tasks are
   * abandoned, before the poller is closed). */
  void *io;
  void (*io_close)(cio_loop *loop);
  /* The process and signal layers' per-loop state, released when the loop
   * closes (after the pending tasks are abandoned, before io_close): running
   * children are killed and reaped, signal dispositions restored. */
  void *procs;
  void (*procs_close)(cio_loop *loop);
  void *sigs;
  void (*sigs_close)(cio_loop *loop);

  pthread_mutex_t inbox_lock;
  struct cio__queue inbox;
  atomic_bool inbox_nonempty;
  atomic_bool inbox_signaled; /* the eventfd has been written and not yet read */
  atomic_bool ever_threadsafe;
  /* Executor jobs that will complete via the inbox, and file operations in
   * the io_uring (src/file.c): the virtual clock stands still while any is
   * in flight (time in a worker thread or the kernel is real). */
  atomic_int jobs_in_flight;

  void *thread_stack_lo;   /* the running thread's own stack, for the sanitizers */
  size_t thread_stack_size;

  struct cio__tasklink tasks; /* pending tasks (circular, sentinel) */
  size_t ntasks;
  void *current;              /* the running task (task layer's type) */
  void *back;                 /* context a suspending task returns to (innermost step) */
  struct cio__locals *locals; /* values set outside any task */

  cio_exception_handler_fn exc_handler;
  void *exc_arg;

  struct cio__stack_pool stacks;
  /* Memory of tasks and futures (set up by their layers on first use),
   * released with the loop's own memory: they may outlive close. */
  struct cio__slab task_slab;
  struct cio__slab future_slab;
  struct cio__slab handle_slab; /* call_soon/call_later handles (this layer's) */

  /* The default executor, owned by the executor layer: shut down (waiting or
   * not) when cio_run ends or the loop closes. */
  void *default_executor;
  void (*default_executor_shutdown)(cio_loop *loop, bool wait);

  /* Debug mode and the stall detector (src/debug.c, src/debug.h). */
  bool debug;
  uint64_t wd_seq;           /* loop thread only: 2 * iterations */
  _Atomic uint64_t wd_tick;  /* wd_seq while busy; odd while polling or not running */
  struct cio__debug *dbg;    /* debug.c's per-loop state */

  /* Hook for the task layer to describe a pending task (deadlock report). */
  const char *(*describe_task)(struct cio__tasklink *link);
  void (*abandon_tasks)(cio_loop *loop);

  /* Values of cio_loop_set_data (a list, newest first; few keys per loop). */
  struct cio__loop_data *data;
};

/* The loop running in this thread. */
extern CIO__TLS cio_loop *cio__running_loop;

/* Bumped in the child of every fork() (pthread_atfork): a loop created in
 * another generation was inherited from a parent and may not be used. */
extern atomic_uint cio__fork_gen;
static inline bool cio__loop_forked(const cio_loop *loop) {
  return loop->fork_gen != atomic_load_explicit(&cio__fork_gen, memory_order_relaxed);
}

/* A deadline that never comes (~146 years of loop time): timers armed at or
 * after it never fire, and the virtual clock never jumps to them. Sums of a
 * loop time and a cio__seconds_to_ns() value cannot overflow int64. */
#define CIO__NEVER (INT64_MAX / 2)

/* The largest task stack (a task's stack_size, a loop's default). */
#define CIO__STACK_MAX ((size_t)1 << 30)

/* Loops and executors alive (created and not yet freed), so that a second
 * free is refused. add returns 0 or -ENOMEM; remove(p, false) only asks. */
int cio__live_add(void *p);
bool cio__live_remove(void *p, bool remove);

/* Clock: the loop's time in ns (fresh reading for the real clock). */
int64_t cio__loop_now(const cio_loop *loop);
/* A delay in ns: 0 for a non-positive one, CIO__NEVER for +inf or beyond. */
int64_t cio__seconds_to_ns(double s);

/* Schedule cb on the ready queue (call_soon without a handle). */
static inline void cio__loop_push(cio_loop *loop, struct cio__cb *cb) {
  cio__queue_push(&loop->ready, cb);
}

/* Arm / disarm a timer. Disarming an idle timer is a no-op. Arming may
 * allocate (heap growth); returns 0 or -ENOMEM. A deadline past CIO__NEVER is
 * saturated to it (such a timer never fires). */
int cio__timer_arm(cio_loop *loop, struct cio__timer *t, int64_t when);
void cio__timer_disarm(cio_loop *loop, struct cio__timer *t);
/* Make sure t will not run: disarm it, or take its fired cb out of the ready
 * queue. For timers living in a frame that is about to end. */
void cio__timer_stop(cio_loop *loop, struct cio__timer *t);
/* Whether any timer is armed, and the earliest deadline (INT64_MAX if none). */
static inline bool cio__timers_armed(const cio_loop *loop) {
  return loop->nheap || loop->fifo_head;
}
static inline int64_t cio__timers_next(const cio_loop *loop) {
  int64_t h = loop->nheap ? loop->heap[0].when : INT64_MAX;
  int64_t f = loop->fifo_head ? loop->fifo_head->when : INT64_MAX;
  return h < f ? h : f;
}
/* Move every timer due at `now` to the ready queue, in (deadline, seq) order. */
void cio__timers_expire(cio_loop *loop, int64_t now);
/* Disarm every armed timer and hand each to discard(cb) (the loop closes). */
void cio__timers_discard_all(cio_loop *loop, void (*discard)(struct cio__cb *cb));
/* Push an embedded node onto the cross-thread inbox from any thread and wake
 * the loop (what cio_call_soon_threadsafe does, without allocating). Returns
 * 0, or CIO_ECLOSED (nothing queued) if the loop is closed. */
int cio__loop_post(cio_loop *loop, struct cio__cb *cb);
/* Take cb out of the ready queue or the running batch, if it is there. */
bool cio__loop_unqueue(cio_loop *loop, struct cio__cb *cb);
/* Take out of the ready queue and the running batch every node for which
 * match(cb, arg) is true, in one pass (for many nodes at once: linear where
 * one cio__loop_unqueue per node is quadratic). Returns how many. */
size_t cio__loop_unqueue_if(cio_loop *loop, bool (*match)(struct cio__cb *cb, void *arg),
                            void *arg);
static inline void cio__timer_init(struct cio__timer *t, void (*run)(struct cio__cb *)) {
  t->cb.run = run;
  t->cb.next = NULL;
  t->slot = CIO__TIMER_IDLE;
}

/* Loop references held by futures and tasks. */
static inline void cio__loop_ref(cio_loop *loop) { loop->refs++; }
void cio__loop_unref(cio_loop *loop);

/* Checks shared by every entry point: NULL, closed, inherited across fork()
 * (CIO_EFORKED). */
int cio__loop_check(const cio_loop *loop, const char *who);

/* Run iterations until the loop is stopped or until(arg) (may be NULL) is
 * true after an iteration. Returns 0, CIO_EDEADLOCK, CIO_ECLOSED, CIO_ERUNNING. */
int cio__loop_run_until(cio_loop *loop, bool (*until)(void *), void *arg);

/* Forget this thread's running loop and task (for test harnesses after an
 * assertion jumped out of a task: that loop is lost, later tests can run). */
void cio__thread_reset(void);

/* Tell the loop how to drop a queued node of this kind when it closes. */
void cio__cb_discard_register(void (*run)(struct cio__cb *), void (*discard)(struct cio__cb *));

#endif
