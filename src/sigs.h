/* Signals (internal view): the thread helper every cio thread is made with,
 * and the hook the SIGCHLD fallback of the process layer uses. */
#ifndef CIO_SIGNAL_INTERNAL_H
#define CIO_SIGNAL_INTERNAL_H

#include <pthread.h>
#include <signal.h>

#include "cio/signal.h"
#include "loop.h"

/* pthread_create with every asynchronous signal blocked in the new thread
 * from its first instruction (the caller's mask is restored before
 * returning). Returns pthread_create's result (0 or a positive errno). */
int cio__thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* Watch SIGCHLD on loop for the process layer (the fallback when pidfd_open
 * is missing): `hook(loop)` runs in the loop after each SIGCHLD, besides any
 * user handler. Unlike user handlers, allowed in any thread. Returns 0 or a
 * negative code. */
int cio__signal_watch_chld(cio_loop *loop, void (*hook)(cio_loop *loop));

#endif
