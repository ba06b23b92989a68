/* cio — error codes.
 *
 * Every cio call that can fail returns an int: 0 (or a non-negative count) on
 * success, a negative code on failure. Codes that have an errno twin are the
 * negated errno value (-ECANCELED, -ETIMEDOUT, -EINVAL, -ENOMEM, ...); the
 * conditions asyncio names with its own exception classes get CIO_E* codes in
 * a private range starting at -4000. cio_strerror() and cio_err_name() cover
 * both ranges.
 *
 * The C spelling of asyncio's exceptions:
 *   CancelledError      -ECANCELED          TimeoutError       -ETIMEDOUT
 *   InvalidStateError   CIO_EINVALSTATE     RuntimeError       CIO_ERUNTIME / a more precise code
 *   ExceptionGroup      CIO_EGROUP          BrokenBarrierError CIO_EBROKENBARRIER
 *   QueueFull           CIO_EQUEUEFULL      QueueEmpty         CIO_EQUEUEEMPTY
 *   QueueShutDown       CIO_EQUEUESHUTDOWN  ValueError         -EINVAL
 *   IncompleteReadError CIO_EINCOMPLETE     LimitOverrunError  CIO_ELIMITOVERRUN
 *   socket.gaierror     CIO_EAI_* (getaddrinfo / getnameinfo failures)
 *   KeyboardInterrupt   CIO_EINTERRUPTED (cio_run / cio_runner_run after Ctrl-C)
 *   ssl.SSLError        CIO_ETLS            ssl.SSLCertVerificationError  CIO_ECERT
 *
 * Each failure also carries a human-readable message. Inside a task the
 * message of the last failure is kept per task (cio_errmsg()); a task that
 * returns the code keeps the message as its error, so "return rc;" is the C
 * spelling of "let it raise" and loses nothing.
 */
#ifndef CIO_ERRORS_H
#define CIO_ERRORS_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CIO_NODISCARD marks the calls whose result must be looked at (a lost
 * -ECANCELED or error is a bug). Where a result may be ignored on purpose,
 * cast it to void: `(void)cio_sleep(1);`. That works with C23 and C++17
 * ([[nodiscard]]) and with clang (warn_unused_result). gcc's
 * warn_unused_result in C11/C17 ignores the cast (a gcc rule, and
 * [[nodiscard]] cannot be used there under -Wpedantic): write
 * `if (cio_sleep(1)) {}`, or `(void)!cio_sleep(1)`, or build with
 * -std=c2x/c23, or define CIO_NODISCARD as empty before including cio.h to
 * turn the check off. */
#ifndef CIO_NODISCARD
#if defined(__cplusplus) && __cplusplus >= 201703L
#define CIO_NODISCARD [[nodiscard]]
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ > 201710L
#define CIO_NODISCARD [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define CIO_NODISCARD __attribute__((warn_unused_result))
#else
#define CIO_NODISCARD
#endif
#endif
/* CIO_PRINTF(f, a) marks a printf-like function (format argument f, first
 * value a), for the compiler's checks. */
#if defined(__GNUC__) || defined(__clang__)
#define CIO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CIO_PRINTF(f, a)
#endif

/* X(name, value, description): the one table behind the enum, cio_err_name()
 * and cio_strerror(), so the three cannot drift apart. */
#define CIO_ERROR_TABLE(X)                                                           \
  X(CIO_EINVALSTATE, -4000, "invalid state (future already done, or not done yet)") \
  X(CIO_ENOTASK, -4001, "must be called from inside a task")                        \
  X(CIO_EWRONGLOOP, -4002, "object belongs to a different event loop")              \
  X(CIO_ECLOSED, -4003, "event loop is closed")                                      \
  X(CIO_ERUNNING, -4004, "an event loop is already running")                         \
  X(CIO_ENOTRUNNING, -4005, "no running event loop")                                 \
  X(CIO_EGROUP, -4006, "one or more tasks of the group failed")                      \
  X(CIO_EQUEUEFULL, -4007, "queue is full")                                          \
  X(CIO_EQUEUEEMPTY, -4008, "queue is empty")                                        \
  X(CIO_EQUEUESHUTDOWN, -4009, "queue is shut down")                                 \
  X(CIO_EBROKENBARRIER, -4010, "barrier is broken")                                  \
  X(CIO_EDEADLOCK, -4011, "deadlock: tasks are waiting and nothing can wake them")   \
  X(CIO_ESELF, -4012, "a task cannot await itself")                                  \
  X(CIO_EDOUBLEFREE, -4013, "object released more times than it was referenced")    \
  X(CIO_ERUNTIME, -4014, "runtime error")                                            \
  X(CIO_EINCOMPLETE, -4015, "end of stream before the expected number of bytes")     \
  X(CIO_ELIMITOVERRUN, -4016, "separator not found within the buffer limit")         \
  X(CIO_ESHUTDOWN, -4017, "executor is shut down")                                   \
  X(CIO_EEOF, -4018, "end of file")                                                  \
  X(CIO_EFORKED, -4019, "event loop or executor inherited across fork() (unusable here)") \
  X(CIO_EINTERRUPTED, -4020, "interrupted by SIGINT (Ctrl-C)")                      \
  X(CIO_ETLS, -4040, "TLS error")                                                    \
  X(CIO_ECERT, -4041, "TLS certificate verification failed")                         \
  X(CIO_EAI_NONAME, -4050, "host or service not known")                              \
  X(CIO_EAI_AGAIN, -4051, "temporary failure in name resolution")                    \
  X(CIO_EAI_FAIL, -4052, "non-recoverable failure in name resolution")               \
  X(CIO_EAI_FAMILY, -4053, "address family not supported")                          \
  X(CIO_EAI_SERVICE, -4054, "service not supported for this socket type")

/* cio's own error codes (beside negated errno values), from the table above. */
enum cio_error_code {
#define CIO__ENUM(name, value, text) name = (value),
  CIO_ERROR_TABLE(CIO__ENUM)
#undef CIO__ENUM
};

/* The description of a code: "operation canceled" for -ECANCELED, the table
 * text for a CIO_E* code, strerror() for any other negative errno. Never NULL;
 * the string is static. */
const char *cio_strerror(int code);

/* The symbolic name of a code: "ECANCELED", "CIO_EGROUP", "OK" for 0,
 * "UNKNOWN" otherwise. Never NULL; the string is static. */
const char *cio_err_name(int code);

/* The message of the last failure seen by the current task (or, outside any
 * task, by the current thread): what failed and why; "" when there is none.
 * Never NULL. Like errno, it is set by failures only: a later successful
 * call does not clear it, so read it right after a call returned a negative
 * code (the string stays valid until the next cio call in the same task or
 * thread; copy it to keep it). A thread's last message is freed when the
 * thread exits. */
const char *cio_errmsg(void);

/* The code of that last failure, 0 when there is none (also errno-like: not
 * reset by a success). Functions that return a
 * pointer (cio_create_task, cio_future_new, ...) return NULL on failure and leave
 * the code here. */
int cio_errcode(void);

/* Record a failure with a formatted message for the current task (or thread)
 * and return `code`, so that a task body can write
 *     return cio_raise(-EINVAL, "bad port %d", port);
 * `code` must be negative; a non-negative code is replaced by CIO_ERUNTIME. */
int cio_raise(int code, const char *fmt, ...) CIO_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif
