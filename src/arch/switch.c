/* Layer 1: preparing fresh stacks and telling the sanitizers about switches.
 * The register save/restore itself is in switch_<arch>.S, or swapcontext()
 * with CIO_SWITCH_UCONTEXT. */
#include "switch.h"
#include <pthread.h>
#include <signal.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef CIO_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef CIO_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#ifndef CIO_SWITCH_UCONTEXT
void cio__switch_raw(void **from_sp, void *to_sp);
void cio__switch_trampoline(void);
#endif

#if defined(CIO_ASAN) || defined(CIO_TSAN) || defined(CIO_SWITCH_UCONTEXT)
void cio__ctx_init_thread(cio__ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
#ifdef CIO_TSAN
  ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
}

#endif

#ifdef CIO_SWITCH_UCONTEXT
/* makecontext passes int arguments only: split the two pointers. */
static void uc_entry(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo) {
  void (*entry)(void *) =
      (void (*)(void *))(((uintptr_t)e_hi << 16 << 16) | (uintptr_t)e_lo);
  void *arg = (void *)(((uintptr_t)a_hi << 16 << 16) | (uintptr_t)a_lo);
  entry(arg);
  abort(); /* entry must never return */
}
#endif

void cio__ctx_make(cio__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg) {
  memset(ctx, 0, sizeof *ctx);
#ifdef CIO_ASAN
  /* Memory reused for a stack (a pooled stack, or a mapping at an address
   * used before) may carry redzones of dead frames in the shadow. */
  __asan_unpoison_memory_region(lo, size);
#endif
  cio__ctx_set_bounds(ctx, lo, size);
#ifdef CIO_SWITCH_UCONTEXT
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
  makecontext(&ctx->uc, (void (*)(void))uc_entry, 4, (unsigned)(e >> 16 >> 16), (unsigned)e,
              (unsigned)(a >> 16 >> 16), (unsigned)a);
#else
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* The frame cio__switch_raw pops, lowest address first: control words,
   * r15, r14, r13 (= arg), r12 (= entry), rbx, rbp, return address
   * (= trampoline); 8 words, then two zero words as the outermost frame. After
   * the final `ret` rsp = top - 16, 16-byte aligned for the trampoline's call. */
  uint64_t *sp = (uint64_t *)(top - 16) - 8;
  memset(sp, 0, 10 * sizeof *sp);
  sp[0] = 0x1F80 | ((uint64_t)0x037F << 32); /* default MXCSR and x87 control word */
  sp[3] = (uint64_t)(uintptr_t)arg;           /* r13 */
  sp[4] = (uint64_t)(uintptr_t)entry;         /* r12 */
  sp[7] = (uint64_t)(uintptr_t)cio__switch_trampoline;
  ctx->sp = sp;
#elif defined(__aarch64__)
  /* The 160-byte frame cio__switch_raw restores: x19 = entry, x20 = arg,
   * x29 = 0 (outermost frame), x30 = trampoline. */
  uint64_t *sp = (uint64_t *)(top - 160);
  memset(sp, 0, 160);
  sp[0] = (uint64_t)(uintptr_t)entry; /* x19 */
  sp[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
  sp[11] = (uint64_t)(uintptr_t)cio__switch_trampoline; /* x30 */
  ctx->sp = sp;
#else
#error "no context switch for this architecture: build with -DCIO_SWITCH=ucontext"
#endif
#endif
#ifdef CIO_TSAN
  ctx->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void cio__ctx_destroy(cio__ctx *ctx) {
#ifdef CIO_TSAN
  if (ctx->tsan_fiber) __tsan_destroy_fiber(ctx->tsan_fiber);
  ctx->tsan_fiber = NULL;
#else
  (void)ctx;
#endif
}

#if defined(CIO_ASAN) || defined(CIO_TSAN) || defined(CIO_SWITCH_UCONTEXT)
void cio__ctx_switch(cio__ctx *from, cio__ctx *to, bool from_dies) {
#ifdef CIO_ASAN
  __sanitizer_start_switch_fiber(from_dies ? NULL : &from->asan_fake, to->stack_lo,
                                 to->stack_size);
#endif
#ifdef CIO_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  (void)from_dies;
#ifdef CIO_SWITCH_UCONTEXT
  /* swapcontext also restores the signal mask saved in `to`: keep the mask
   * a property of the thread (as with the assembly switch), so that a mask
   * changed inside a task (cio_add_signal_handler blocks its signal) is not
   * undone at the next switch. */
  pthread_sigmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask);
  swapcontext(&from->uc, &to->uc);
#else
  cio__switch_raw(&from->sp, to->sp);
#endif
#ifdef CIO_ASAN
  __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}
#endif

void cio__ctx_entered(cio__ctx *self) {
  (void)self;
#ifdef CIO_ASAN
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}
