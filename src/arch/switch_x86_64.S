/* Layer 1, x86_64 System V: save the callee-saved registers (rbx, rbp,
 * r12-r15), the SSE control word (MXCSR) and the x87 control word on the
 * stack being left, store its rsp in *from, load *to's rsp and pop the same
 * frame. Caller-saved registers may change across a call by the ABI, so they
 * need no saving; the return address is already on the stack.
 *
 *   void cio__switch_raw(void **from_sp, void *to_sp);   rdi, rsi
 */
        .text
        .globl  cio__switch_raw
        .hidden cio__switch_raw
        .type   cio__switch_raw, @function
        .p2align 4
cio__switch_raw:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)              /* SSE rounding/exception mode */
        fnstcw  4(%rsp)             /* x87 control word */
        movl    (%rsp), %ecx        /* the current words, to compare */
        movzwl  4(%rsp), %edx
        movq    %rsp, (%rdi)        /* *from_sp = rsp */
        movq    %rsi, %rsp          /* switch stacks */
        xorl    (%rsp), %ecx        /* reloading costs a slow, serialising */
        testl   $0xffc0, %ecx       /* instruction each: only when the */
        jnz     1f                  /* control bits differ (MXCSR's status */
        cmpw    4(%rsp), %dx        /* flags are not preserved by the ABI) */
        jne     1f
        addq    $8, %rsp
2:
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret                         /* into the resumed context */
1:      ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        jmp     2b
        .cfi_endproc
        .size   cio__switch_raw, .-cio__switch_raw

/* First return target of a fresh context: cio__ctx_make put entry in r12 and
 * its argument in r13. rsp is 16-byte aligned here, as a call requires. */
        .globl  cio__switch_trampoline
        .hidden cio__switch_trampoline
        .type   cio__switch_trampoline, @function
        .p2align 4
cio__switch_trampoline:
        .cfi_startproc
        .cfi_undefined rip          /* outermost frame for debuggers */
        movq    %r13, %rdi
        callq   *%r12
        ud2                         /* entry must never return */
        .cfi_endproc
        .size   cio__switch_trampoline, .-cio__switch_trampoline

        .section .note.GNU-stack,"",@progbits
