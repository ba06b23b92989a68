/* Layer 1, AArch64 AAPCS64: save the callee-saved x19-x28, the frame pointer
 * x29, the link register x30 and the low halves of v8-v15 (d8-d15) on the
 * stack being left, store sp in *from, load *to's sp and restore the same
 * frame; `ret` then jumps to the resumed context's x30.
 *
 *   void cio__switch_raw(void **from_sp, void *to_sp);   x0, x1
 */
        .text
        .globl  cio__switch_raw
        .hidden cio__switch_raw
        .type   cio__switch_raw, %function
        .p2align 4
cio__switch_raw:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]            /* *from_sp = sp */
        mov     sp, x1              /* switch stacks */
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   cio__switch_raw, .-cio__switch_raw

/* First return target of a fresh context: entry in x19, its argument in x20. */
        .globl  cio__switch_trampoline
        .hidden cio__switch_trampoline
        .type   cio__switch_trampoline, %function
        .p2align 4
cio__switch_trampoline:
        mov     x0, x20
        blr     x19
        brk     #0                  /* entry must never return */
        .size   cio__switch_trampoline, .-cio__switch_trampoline

        .section .note.GNU-stack,"",%progbits
