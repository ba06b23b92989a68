/* cio — awaiting libcurl transfers from tasks (optional component cio_curl).
 *
 * Not part of the core library: link cio_curl (CMake target cio::curl,
 * pkg-config cio-curl), which is built only where libcurl's development files
 * (Debian: libcurl4-openssl-dev) are found. Include <cio/curl.h> after
 * <curl/curl.h> or on its own.
 *
 * How it works: each loop gets one curl multi handle, created on first use
 * and cleaned up when the loop closes (a cio_loop_key destructor). The multi
 * handle runs on curl's "multi socket" interface: curl tells cio which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION -> cio_add_reader/add_writer/
 * remove_*) and when to call it back (CURLMOPT_TIMERFUNCTION ->
 * cio_call_later); cio's callbacks call curl_multi_socket_action. A task that
 * calls cio_curl_perform adds its easy handle to that multi handle and awaits
 * a future that the bridge completes when curl reports the transfer done.
 * Any number of tasks' transfers run at once on one loop, and connections
 * and DNS results are reused between transfers of the same loop, as curl's
 * multi interface does (its connection cache and DNS cache belong to the
 * multi handle). TLS sessions are not: curl 7.88 keeps them per easy handle,
 * so a new connection resumes a session only if it is made by an easy handle
 * that made one before, or by easy handles that share a CURLSH with
 * CURL_LOCK_DATA_SSL_SESSION (curl's own API: one share per loop needs no
 * lock functions, as only the loop's thread uses it; curl_share_cleanup it
 * after every easy handle using it is cleaned up). Over TLS 1.2 curl resumes
 * by session ID only (it turns tickets off), so the server must keep a
 * session cache (nginx: ssl_session_cache). Connections that start together
 * resume nothing: no session exists yet when they say hello.
 *
 * Client CPU (measured on the crawler, examples/crawl.c, over HTTPS; both are
 * plain curl options, set on your easy handles):
 *   - With CURLOPT_CAINFO, also set CURLOPT_CAPATH to NULL when the CA file is
 *     all you trust. Debian's libcurl has a default CA path
 *     (/etc/ssl/certs), and curl 7.88 keeps the certificate store it builds
 *     from CURLOPT_CAINFO in the multi handle (CURLOPT_CA_CACHE_TIMEOUT,
 *     default 24 h) only when no CA path is set: otherwise it parses the CA
 *     file again for every new connection (a fifth of the crawler's CPU at
 *     100 connections).
 *   - CURLOPT_NOSIGNAL 1: curl then does not install and restore a SIGPIPE
 *     handler (two rt_sigaction calls) around every socket action (~10 per
 *     transfer); it needs no signal on Linux (it sends with MSG_NOSIGNAL).
 * curl 7.88 still creates an OpenSSL SSL_CTX for every new connection (no
 * option avoids it) and does a full handshake for each unless sessions are
 * shared as above.
 *
 * Clock: curl keeps its own (real) time. On a loop with the virtual clock
 * (CIO_VIRTUAL_TIME=1) cio's timers jump ahead while curl's deadlines do not,
 * so timeouts behave differently there: run transfers on a real-time loop.
 *
 * Threads: one loop per thread as always; each loop has its own multi handle,
 * so several loops in several threads may perform transfers at once (an easy
 * handle is used by one transfer at a time). curl_global_init is called once
 * per process, on first use.
 */
#ifndef CIO_CURL_H
#define CIO_CURL_H

#include <curl/curl.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Perform the transfer set up on `easy` (all its options, callbacks and
 * buffers are the caller's, as for curl_easy_perform) from the current task:
 * suspends the task until the transfer ends, while the loop runs other tasks
 * and other transfers. `easy` stays owned by the caller and may be performed
 * again afterwards (its connection goes back to the loop's pool).
 *
 * While the transfer runs, the bridge borrows CURLOPT_PRIVATE (your value is
 * restored before the call returns, and curl_easy_getinfo(CURLINFO_PRIVATE)
 * from your callbacks gives the bridge's) and sets CURLOPT_CLOSESOCKETFUNCTION
 * (so that every socket curl closes is first forgotten by cio): do not set
 * your own close-socket callback on an easy handle you pass here.
 * Write and header callbacks run on the loop, inside a loop callback, not in
 * the task: they must not suspend.
 *
 * Returns curl's result for the transfer, a CURLcode >= 0: CURLE_OK (0), or
 * e.g. CURLE_COULDNT_CONNECT (refused), CURLE_PEER_FAILED_VERIFICATION (the
 * server's certificate did not verify), CURLE_OPERATION_TIMEDOUT (curl's own
 * CURLOPT_TIMEOUT), CURLE_WRITE_ERROR (your write callback refused data);
 * curl_easy_strerror() names it, and CURLOPT_ERRORBUFFER gets the details.
 * Or a negative cio code, never a CURLcode:
 *   -ECANCELED   the task was cancelled while it waited: the transfer was
 *                removed from the multi handle (curl_multi_remove_handle)
 *                before returning, its connection closed or returned to the
 *                pool; data already delivered to the write callback stays
 *                delivered. Inside a timeout scope that expired, the scope
 *                turns this into -ETIMEDOUT as usual.
 *   -EINVAL      easy is NULL.
 *   -EBUSY       easy is already being performed (by this bridge, or in
 *                another multi handle).
 *   -ENOMEM      out of memory (also curl's CURLM_OUT_OF_MEMORY).
 *   CIO_ENOTASK  not called from a task.
 *   -EIO         curl refused the handle for another reason (the message gives
 *                curl_multi_strerror's text).
 * The message of every error is in cio_errmsg(). */
CIO_NODISCARD int cio_curl_perform(CURL *easy);

/* The loop's multi handle (created if needed), to set multi options such as
 * CURLMOPT_MAX_HOST_CONNECTIONS or CURLMOPT_MAXCONNECTS. Do not set
 * CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION or their data, and do not
 * add or remove handles yourself. The handle belongs to the loop: it is
 * cleaned up when the loop closes. Does not suspend. Returns NULL, with
 * cio_errcode() set, for a NULL or closed loop (-EINVAL, CIO_ECLOSED) or out
 * of memory (-ENOMEM). */
CURLM *cio_curl_multi(cio_loop *loop);

/* How many transfers are in progress on loop's multi handle (0 for NULL or a
 * loop that never used the bridge). Does not suspend. */
int cio_curl_active(const cio_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
