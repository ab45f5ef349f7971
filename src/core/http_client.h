/*
 * http_client.h — the HTTP/1.1 client on the event loop, for proxying to
 * upstreams, health checks, metric scraping and load generation.
 *
 * A pool per upstream ("host:port", resolved once when the pool is made) keeps
 * up to max_idle keep-alive connections. hc_request sends one request on an
 * idle connection or a new one and reports the response through callbacks:
 * on_head once (for the final response: interim 1xx answers are skipped),
 * on_body with decoded bytes as they arrive (chunked decoded; none for a
 * HEAD request or a 204 or 304, whatever their headers say),
 * and on_done exactly once — unless the request was cancelled (hc_cancel),
 * after which no callback comes. A pooled connection that fails before any
 * response byte (the upstream closed it while idle) is retried once on a fresh
 * connection. Errors say what failed and whether any response byte came, so a
 * proxy can decide whether a retry elsewhere is safe.
 *
 * TLS (hc_pool_set_tls): the pool's connections run a TLS handshake after
 * connecting (counted in the connect timeout) and are pooled the same way;
 * a failed handshake is HC_ERR_TLS, never retried on the same endpoint.
 *
 * Not here: HTTP/2, redirects, request bodies streamed in pieces (the body
 * is sent whole, from the caller's memory). Loop thread only.
 */
#ifndef CORE_HTTP_CLIENT_H
#define CORE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/ev.h"
#include "core/http.h"
#include "core/tls.h"

typedef struct hc_pool hc_pool;
typedef struct hc_req hc_req;

enum hc_err {
	HC_OK = 0,
	HC_ERR_CONNECT_REFUSED, /* ECONNREFUSED */
	HC_ERR_CONNECT,         /* other connect failure (unreachable, ...) */
	HC_ERR_CONNECT_TIMEOUT,
	HC_ERR_RESET,         /* reset or write failure after connecting */
	HC_ERR_EOF,           /* closed before the response completed */
	HC_ERR_IDLE_TIMEOUT,  /* no byte for timeouts.idle_ms */
	HC_ERR_TOTAL_TIMEOUT, /* the whole exchange took longer than total_ms */
	HC_ERR_MALFORMED,     /* bad response head or framing; a status outside
				   * 100..599; a 101 (no Upgrade is ever asked) */
	HC_ERR_TOO_LARGE,     /* response head over 64 KiB */
	HC_ERR_NOMEM,
	HC_ERR_ABORTED, /* the pool was freed, or on_head returned -1 */
	HC_ERR_TLS,     /* TLS handshake failed (certificate not trusted, wrong name, protocol) */
};
const char *hc_err_name(int err); /* "connect_refused", ... */

typedef struct hc_timeouts {
	uint64_t connect_ms; /* default 5 s */
	uint64_t idle_ms;    /* between bytes of the response (and the wait for the head); default 60 s */
	uint64_t total_ms;   /* whole exchange; default 300 s */
} hc_timeouts;

typedef struct hc_callbacks {
	/* The response head; headers point into a buffer valid during the call.
	 * Return 0 to go on, -1 to abort (on_done follows with HC_ERR_ABORTED). May be NULL. */
	int (*on_head)(hc_req *req, int status, const http_header *headers, size_t n, void *arg);
	/* Decoded body bytes, valid during the call. May call hc_pause/hc_cancel. May be NULL. */
	void (*on_body)(hc_req *req, const char *data, size_t len, void *arg);
	/* The end: err HC_OK or an hc_err. The request is freed after it returns. */
	void (*on_done)(hc_req *req, int err, void *arg);
} hc_callbacks;

/* A pool for one upstream. hostport is "127.0.0.1:8001", "[::1]:80" or
 * "name:port" (resolved now, blocking: boot time only). Returns NULL on a bad
 * address (reason in err) or allocation failure. */
hc_pool *hc_pool_new(ev_loop *loop, const char *hostport, size_t max_idle_conns, char *err, size_t err_len);
/* Closes idle connections and cancels requests in flight (no callbacks). */
void hc_pool_free(hc_pool *p);
/* Makes the pool speak TLS with ctx (a client context; the pool takes its own
 * reference). server_name: SNI and the name the certificate must carry (a
 * host name or an IP literal); NULL = the pool's host. For new connections. */
void hc_pool_set_tls(hc_pool *p, tls_ctx *ctx, const char *server_name);
/* Why the last TLS handshake of the pool failed, or "". */
const char *hc_pool_tls_error(const hc_pool *p);
size_t hc_pool_idle(const hc_pool *p);   /* idle connections now */
size_t hc_pool_active(const hc_pool *p); /* requests in flight */
uint64_t hc_pool_connects_total(const hc_pool *p);
/* Request body bytes copied into the requests' own buffers (bodies of at
 * most 4 KiB); a larger body is sent from the caller's memory. */
uint64_t hc_pool_body_bytes_copied_total(const hc_pool *p);
const char *hc_pool_hostport(const hc_pool *p);

/* Starts a request. extra_headers: "Name: v\r\n" lines or NULL (Host and
 * Content-Length are written here; send Content-Type yourself). body may be NULL
 * (no Content-Length sent unless body_len > 0 or the method is POST/PUT/PATCH).
 * body is the caller's and is not copied (a small one may be): it must stay
 * unchanged until on_done returns or hc_cancel is called, so that retries of
 * one request, here or by the caller, send the one body without a copy each.
 * cb is copied; timeouts may be NULL (defaults). Returns the request, or NULL
 * when it could not even be started (allocation failure: no callback follows). */
hc_req *hc_request(hc_pool *p, const char *method, const char *target, const char *extra_headers,
		   const void *body, size_t body_len, const hc_callbacks *cb, void *arg,
		   const hc_timeouts *timeouts);
/* Stops the request: its connection is closed (never pooled), no callback
 * follows, the request is freed. Safe from inside its own callbacks. */
void hc_cancel(hc_req *req);
/* Stop / restart reading the response (backpressure). The idle timeout does
 * not run while paused; the total timeout does. */
void hc_pause(hc_req *req);
void hc_resume(hc_req *req);
/* 1 once any byte of the response arrived (valid in callbacks, on_done included). */
int hc_received_any(const hc_req *req);
int hc_status(const hc_req *req); /* 0 until the head arrived */
/* Called from on_head: 1 and the body's length when the answer is framed by
 * Content-Length (as the client read and checked the head), else 0. Later
 * calls give what is left of the body. */
int hc_content_length(const hc_req *req, uint64_t *len);
void *hc_arg(const hc_req *req);

/* Synchronous fetch for tools and tests: runs a private loop until the response
 * is complete or timeout_ms passes. Appends the body to resp_body (which may
 * have a cap). Returns HC_OK (0) and sets *status, or an hc_err. */
int hc_fetch(const char *hostport, const char *method, const char *target, const char *extra_headers,
	     const void *body, size_t len, int timeout_ms, int *status, buf *resp_body);

#endif
