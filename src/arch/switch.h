/* Layer 1: switching stacks. Knows nothing but registers and stacks.
 *
 * A context is a saved stack pointer (the assembly back ends push the
 * callee-saved registers on the stack being left) or, with the portable
 * fallback (CIO_SWITCH_UCONTEXT), a ucontext_t. cio__ctx_make prepares a fresh
 * stack so that the first switch to it calls entry(arg); entry must never
 * return (it switches away for the last time instead).
 *
 * The sanitizers must be told when the stack changes under them (fiber
 * annotations); cio__ctx_switch does that, so callers only say whether the
 * context being left will ever run again.
 */
#ifndef CIO_ARCH_SWITCH_H
#define CIO_ARCH_SWITCH_H

#include <stdbool.h>
#include <stddef.h>

#ifdef CIO_SWITCH_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CIO_TSAN 1
#endif
#endif

typedef struct cio__ctx {
#ifdef CIO_SWITCH_UCONTEXT
  ucontext_t uc;
#else
  void *sp; /* saved stack pointer; the registers sit on that stack */
#endif
#ifdef CIO_ASAN
  void *stack_lo;    /* the stack's bounds, which ASan must be told at each switch */
  size_t stack_size;
  void *asan_fake;
#endif
#ifdef CIO_TSAN
  void *tsan_fiber;
#endif
} cio__ctx;

/* Prepare ctx to run entry(arg) on [lo, lo + size). */
void cio__ctx_make(cio__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg);

#if defined(CIO_ASAN) || defined(CIO_TSAN) || defined(CIO_SWITCH_UCONTEXT)
/* Capture the calling thread's own context so that it can be switched back to. */
void cio__ctx_init_thread(cio__ctx *ctx);

/* Switch from `from` (saved here) to `to`. `from_dies` says `from` will never be
 * resumed (a finished task), so the sanitizers can drop its state. Returns when
 * something switches back to `from`. */
void cio__ctx_switch(cio__ctx *from, cio__ctx *to, bool from_dies);
#else
/* The plain build: a context is a stack pointer, switching is the assembly
 * routine, both inline on the hot path. */
void cio__switch_raw(void **from_sp, void *to_sp);
static inline void cio__ctx_init_thread(cio__ctx *ctx) { ctx->sp = NULL; }
static inline void cio__ctx_switch(cio__ctx *from, cio__ctx *to, bool from_dies) {
  (void)from_dies;
  cio__switch_raw(&from->sp, to->sp);
}
#endif

/* Start loading the top of a suspended context's stack (the saved registers
 * and the frames it resumes through) into the cache: a task about to run
 * soon, among many, would otherwise stall on each line. */
#define CIO__CTX_PREFETCH_LINES 8
__attribute__((always_inline)) static inline void cio__ctx_prefetch(const cio__ctx *ctx) {
#ifdef CIO_SWITCH_UCONTEXT
  (void)ctx;
#else
  const char *sp = ctx->sp;
  if (sp)
    for (int i = 0; i < CIO__CTX_PREFETCH_LINES; i++) __builtin_prefetch(sp + 64 * i, 0, 3);
#endif
}

/* Called first thing on a fresh context (inside entry): completes the
 * sanitizer hand-over. */
void cio__ctx_entered(cio__ctx *self);

/* Tell the sanitizers the bounds of the stack ctx runs on (a thread's own
 * stack, or a task's, when ctx is a resumer's context). */
static inline void cio__ctx_set_bounds(cio__ctx *ctx, void *lo, size_t size) {
#ifdef CIO_ASAN
  ctx->stack_lo = lo;
  ctx->stack_size = size;
#else
  (void)ctx;
  (void)lo;
  (void)size;
#endif
}

/* Release what cio__ctx_make allocated (a TSan fiber). */
void cio__ctx_destroy(cio__ctx *ctx);

#endif
