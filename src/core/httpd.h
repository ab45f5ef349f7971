/*
 * httpd.h — the HTTP/1.1 server every daemon uses (gateway, simulator, model
 * server), on an ev.h loop.
 *
 * It accepts on one or more addresses, reads each request's head and whole body
 * under hard limits, and calls the handler once per request with everything in
 * memory. Limits answer with a proper status and close the connection: header
 * bytes over the cap 431, body over the cap 413, head or body not received in
 * time 408, bad framing (Content-Length with Transfer-Encoding, bad lengths)
 * 400, a transfer coding besides chunked 501, a version other than HTTP/1.0
 * and 1.1 505, malformed 400. Every error body is an OpenAI-style JSON error.
 * An absolute-form target ("http://host/path?q") is served as its origin form
 * ("/path?q"). While input is not read (a request in the handler's hands with
 * the read buffer full, or pipelined requests waiting for output to drain) the
 * socket is watched for a hang-up only, so the loop sleeps and a client that
 * leaves still gets its request's on_close.
 * Connections are kept alive; pipelined requests are answered one at a time, in
 * order. Responses go into a per-connection output buffer flushed with one
 * write(2) before the loop sleeps (and on EV_WRITE while the socket is full).
 * No per-request allocation in steady state: connections and their buffers are
 * recycled.
 *
 * Request lifetime — the contract:
 *   - The handler is called with a request; it may answer at once or later
 *     (from any callback on the same loop thread).
 *   - The request stays valid until its response has ended (httpd_respond,
 *     httpd_error, or httpd_stream_end returned) or until on_close has been
 *     called, whichever comes first. After that no call on it is allowed.
 *   - on_close (httpd_on_close) is called, from the loop, when the connection
 *     goes away before the response ended: client EOF or reset, write error,
 *     stalled writer, or server shutdown. Never from inside an httpd_* call.
 *     After on_close returns the request is freed. A write that fails returns -1
 *     and the request stays valid until on_close has run.
 *   - Strings handed out (method, target, header values, body) live as long as
 *     the request and are NUL-terminated (the head is NUL-terminated in place:
 *     the raw head bytes are not available).
 *
 * TLS (httpd_set_tls): a listener may serve TLS (tls.h); the handshake runs on
 * the loop before the first request, under handshake_timeout_ms, and is
 * counted in the stats; everything after it is the same.
 *
 * HTTP/2 (httpd_h2.c): a connection whose TLS handshake chose "h2", or whose
 * first bytes are the HTTP/2 preface (h2c, prior knowledge), carries
 * concurrent streams, each one request with this same API and contract;
 * httpd_stream_pending and httpd_on_drain are then per stream, httpd_abort
 * resets the stream, and draining sends GOAWAY.
 *
 * Not here: routing (the handler dispatches on the path).
 */
#ifndef CORE_HTTPD_H
#define CORE_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include "core/ev.h"
#include "core/http.h"
#include "core/net.h"
#include "core/tls.h"

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;

typedef struct httpd_limits {
	size_t max_header_bytes;       /* request line + headers; default 16 KiB (431 above) */
	size_t max_headers;            /* header fields; default 100 (431 above) */
	size_t max_body_bytes;         /* decoded body; default 16 MiB (413 above) */
	uint64_t header_timeout_ms;    /* from the first byte to the end of the head; 10 s */
	uint64_t body_timeout_ms;      /* from the end of the head to the end of the body; 60 s */
	uint64_t keepalive_idle_ms;    /* idle between requests; 60 s */
	uint64_t send_timeout_ms;      /* output pending with no progress; 60 s */
	size_t max_connections;        /* accepting pauses at this count; default 10000 */
	size_t max_output_bytes;       /* cap on a connection's unsent output; default 64 MiB */
	size_t low_watermark_bytes;    /* httpd_on_drain fires below this; default 64 KiB */
	uint64_t handshake_timeout_ms; /* TLS: from accept to the end of the handshake; 10 s */
	size_t max_concurrent_streams; /* HTTP/2: open streams per connection; default 100 */
} httpd_limits;

/* Fills l with the defaults above. */
void httpd_limits_default(httpd_limits *l);

typedef void httpd_handler(httpd_req *req, void *arg);
typedef void httpd_req_fn(httpd_req *req, void *arg);

typedef struct httpd_stats {
	uint64_t accepted_total;
	uint64_t requests_total;               /* handler calls */
	uint64_t rejected_total;               /* answered by httpd itself (4xx limits, malformed) */
	uint64_t client_closed_total;          /* on_close fired: client left before the response ended */
	size_t connections;                    /* open now */
	size_t in_flight;                      /* requests handed to the handler, response not ended */
	uint64_t tls_handshakes_total;         /* TLS handshakes completed */
	uint64_t tls_handshake_failures_total; /* failed, timed out, or the client left during it */
	uint64_t tls_resumed_total;            /* completed handshakes that resumed a session */
	uint64_t h2_connections_total;         /* connections that spoke HTTP/2 (ALPN h2 or the h2c preface) */
} httpd_stats;

/* A server on loop; limits may be NULL (defaults; zero fields take defaults too).
 * Returns NULL on allocation failure. */
httpd *httpd_new(ev_loop *loop, const httpd_limits *limits, httpd_handler *handler, void *arg);
/* Listens on addr ("127.0.0.1:8080", "[::1]:0", "host:port" resolved now).
 * Returns the index of the listener, or -1 with a reason in err. */
int httpd_listen(httpd *s, const char *addr, const net_listen_opts *opts, char *err, size_t err_len);
/* Makes listener i serve TLS with ctx (tls.h), which the server then owns;
 * a context set before replaces the old one for new connections only
 * (connections in progress keep theirs: a certificate reload drops nothing).
 * NULL makes the listener plaintext again. Returns 0, or -1 for a bad i. */
int httpd_set_tls(httpd *s, int i, tls_ctx *ctx);
/* Serves fd, a connected socket (non-blocking; any family, a socketpair
 * too), as if accepted on a plaintext listener: the server owns and closes it.
 * Returns 0, or -1 with fd closed. (Tests and fuzzing feed bytes this way.) */
int httpd_adopt(httpd *s, int fd);
/* The bound port of listener i (useful with port 0), or -1. */
int httpd_port(const httpd *s, int i);
/* Graceful shutdown: closes the listeners, closes idle keep-alive connections,
 * lets requests in flight finish (their responses say Connection: close). */
void httpd_stop_accepting(httpd *s);
/* Closes listener i (its slot and bound address are kept) without draining:
 * connect(2) to it is refused until httpd_relisten. With close_idle, idle
 * keep-alive connections are closed too, so clients must connect again;
 * requests in flight go on. Returns 0, or -1 if i is not an open listener.
 * (The simulator's "refuse" fault.) */
int httpd_unlisten(httpd *s, int i, int close_idle);
/* Opens listener i again on the address it had when httpd_unlisten closed it
 * (the same port). Returns 0, or -1 with a reason in err. */
int httpd_relisten(httpd *s, int i, char *err, size_t err_len);
/* Closes everything now (on_close fires for requests in flight) and frees. */
void httpd_free(httpd *s);
void httpd_get_stats(const httpd *s, httpd_stats *out);
size_t httpd_connections(const httpd *s);
size_t httpd_in_flight(const httpd *s);
/* Requests in flight, plus connections whose response has ended but is not
 * all written yet (a slow reader): what a draining program waits for before
 * it exits, so no answer is cut in its last bytes. O(connections). */
size_t httpd_busy(const httpd *s);

/* ---- the request */
const char *httpd_method(const httpd_req *r);
int httpd_method_is(const httpd_req *r, const char *m);
/* 1 when the request's method is m (HEAD passes for GET); else answers 405
 * "Method Not Allowed" (which ends the request) and returns 0. */
int httpd_method_or_405(httpd_req *r, const char *m);
const char *httpd_target(const httpd_req *r); /* path and query (origin form) */
const char *httpd_path(const httpd_req *r);   /* target up to '?' */
const char *httpd_query(const httpd_req *r);  /* after '?', or "" */
int httpd_minor_version(const httpd_req *r);
/* The first header named name (case-insensitive), NUL-terminated, or NULL;
 * len may be NULL. */
const char *httpd_header(const httpd_req *r, const char *name, size_t *len);
const http_header *httpd_headers(const httpd_req *r, size_t *n);
/* 1 when the request carries "Authorization: Bearer KEY" (the scheme in any
 * case), the key compared in constant time. */
int httpd_bearer_is(const httpd_req *r, const char *key);
const char *httpd_body(const httpd_req *r, size_t *len); /* "" and 0 when none */
const char *httpd_peer(const httpd_req *r);              /* "127.0.0.1:53211" */
const net_addr *httpd_peer_addr(const httpd_req *r);
void httpd_set_user(httpd_req *r, void *user);
void *httpd_user(const httpd_req *r);
ev_loop *httpd_loop(const httpd_req *r);
/* 1 when the response will keep the connection open (the client allows it and
 * the server is not draining). */
int httpd_keep_alive(const httpd_req *r);
/* 1 when the request came over TLS. */
int httpd_is_tls(const httpd_req *r);

/* ---- answers. Each returns 0, or -1 when the client is gone or the output cap
 * is reached (then on_close follows from the loop). */

/* The whole response at once; ends the request. extra_headers are
 * "Name: v\r\n" lines or NULL. */
int httpd_respond(httpd_req *r, int status, const char *content_type,
		  const char *extra_headers, const void *body, size_t len);
/* An OpenAI-style JSON error (oai_error.h); ends the request. param may be NULL. */
int httpd_error(httpd_req *r, int status, const char *message, const char *param);

/* Streaming: a head, then body pieces, then the end. content_length -1 means
 * chunked (or, for an HTTP/1.0 client, delimited by closing the connection).
 * A bodiless status (1xx, 204, 304: http_status_bodiless) gets a head with no
 * framing; its writes are dropped and its end adds nothing. */
int httpd_stream_start(httpd_req *r, int status, const char *content_type,
		       const char *extra_headers, int64_t content_length);
/* Appends data (framed as a chunk when chunked); never blocks. */
int httpd_stream_write(httpd_req *r, const void *data, size_t len);
/* Bytes of this connection not yet accepted by the socket (backpressure). */
size_t httpd_stream_pending(const httpd_req *r);
/* Calls fn once, from the loop, the next time pending output falls below the
 * low watermark (immediately at the next flush if it already is). NULL cancels. */
void httpd_on_drain(httpd_req *r, httpd_req_fn *fn, void *arg);
/* Ends the response (last chunk when chunked); the request is then gone. A
 * fixed-length response ended short closes the connection. */
int httpd_stream_end(httpd_req *r);
/* 1 once the head was written (httpd_stream_start or a one-shot answer). */
int httpd_response_started(const httpd_req *r);

/* Closes the connection at once without ending the response: what is queued
 * is sent if the socket takes it now (never waiting), then the socket is
 * closed, so the client sees the body stop short (no last chunk). on_close
 * follows from the loop. Returns 0, or -1 when the request is already gone.
 * (For simulated crashes mid-stream.) */
int httpd_abort(httpd_req *r);

/* Calls fn(req, arg) if the connection goes away before the response ended
 * (see the contract above). NULL cancels. */
void httpd_on_close(httpd_req *r, httpd_req_fn *fn, void *arg);

#endif
