/*
 * httpd_int.h — the private structures of httpd.c, shared with httpd_h2.c
 * (HTTP/2 on the same connections). Not for programs: they use httpd.h.
 */
#ifndef CORE_HTTPD_INT_H
#define CORE_HTTPD_INT_H

#include "core/buf.h"
#include "core/httpd.h"
#include "core/tls.h"

#define HTTPD_MAX_LISTENERS 16
#define HTTPD_READ_CHUNK 16384
#define HTTPD_LINGER_MS 1000
#define HTTPD_FREE_CONNS_KEPT 256
/* Pipelined requests wait while this much output is unsent. */
#define HTTPD_PIPELINE_OUT_BYTES (256 * 1024)

enum conn_state { ST_HEAD,
		  ST_BODY,
		  ST_WAIT,
		  ST_DONE,
		  ST_H2 };

typedef struct conn conn;
typedef struct h2_session h2_session;
typedef struct h2_stream h2_stream;

struct httpd_req {
	conn *c;
	http_request_head head;
	const char *path;  /* NUL-terminated; == target when no query */
	const char *query; /* "" when none */
	const char *body;
	size_t body_len;
	int keep_alive;
	int started;          /* head written */
	int ended;            /* response ended */
	int chunked;          /* streaming with chunked framing */
	int until_close;      /* HTTP/1.0 stream delimited by close */
	int head_only;        /* HEAD request: no body bytes go out */
	int64_t declared_len; /* fixed-length stream: declared bytes; -1 otherwise */
	uint64_t sent_len;    /* fixed-length stream: body bytes written */
	void *user;
	httpd_req_fn *on_close, *on_drain;
	void *on_close_arg, *on_drain_arg;
	h2_stream *h2; /* the HTTP/2 stream carrying it; NULL for HTTP/1.x */
};

struct conn {
	httpd *s;
	int fd;
	enum conn_state state;
	int dead;       /* closing scheduled; no more I/O */
	int in_handler; /* the handler is on the stack */
	int in_flight;  /* request handed to the handler, not ended */
	int linger;     /* DONE: output flushed, draining input */
	int io_mask;    /* interest registered with the loop */
	uint64_t timer; /* the loop's timer, armed for timer_at_ms (conn_timer) */
	uint64_t timer_at_ms;
	uint64_t deadline_ms; /* when the state's timeout is due; 0: none */
	buf in, out;
	http_header *hdrs;
	size_t head_len;     /* parsed head bytes at in.rd */
	const char *head_at; /* in.data + in.rd when the head was parsed */
	http_body_kind body_kind;
	uint64_t body_expect; /* Content-Length */
	http_chunked chunk;
	size_t body_decoded; /* chunked: payload bytes decoded so far */
	int sent_continue;
	net_addr peer;
	char peer_str[NET_ADDR_STRLEN];
	buf path_copy; /* path when the target has a query */
	httpd_req req;
	conn *prev, *next;   /* all connections */
	conn *fprev, *fnext; /* connections with output to flush */
	int in_flush_list;
	int send_blocked;    /* the last flush met EAGAIN */
	uint64_t send_op;    /* the queued batched send of out (ev_io_send), 0 = none */
	int pipeline_paused; /* input waits for output to drain */
	char *saved_at;      /* byte overwritten to NUL-terminate the body */
	char saved_byte;
	tls_conn *tls;          /* NULL on a plaintext listener */
	h2_session *h2;         /* ST_H2: the HTTP/2 session (httpd_h2.c) */
	uint32_t requests_seen; /* HTTP/1.x requests dispatched (h2c is detected on the first) */
	int handshaking;        /* TLS handshake not finished: no HTTP yet */
	int tls_more_deferred;  /* a read of bytes OpenSSL holds is scheduled */
};

struct httpd {
	ev_loop *loop;
	httpd_limits lim;
	httpd_handler *handler;
	void *handler_arg;
	int lfds[HTTPD_MAX_LISTENERS];
	tls_ctx *ltls[HTTPD_MAX_LISTENERS]; /* per listener: NULL = plaintext; owned */
	int nlisten;
	net_addr unlistened[HTTPD_MAX_LISTENERS]; /* address of a listener httpd_unlisten closed */
	int accept_paused;
	int draining;
	conn *conns;
	conn *flush_head;
	conn *free_conns;
	size_t nfree;
	conn *dead; /* closed, awaiting release by the reaper */
	int reap_scheduled;
	buf scratch; /* error bodies */
	httpd_stats st;
};

/* ---- httpd.c, for httpd_h2.c */
void httpd_conn_close(conn *c);
void httpd_conn_queue_flush(conn *c);
void httpd_conn_timer(conn *c, uint64_t after_ms);
void httpd_conn_update_io(conn *c);
/* Sends c->out until it is empty or the socket is full: 0, or -1 with errno. */
int httpd_conn_send(conn *c);

/* ---- httpd_h2.c */
/* 1 when the session has frames to send. */
int h2_conn_wants_write(const conn *c);
/* The 24 bytes every HTTP/2 client sends first (RFC 9113 3.4). */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
/* Turns c into an HTTP/2 connection (its read buffer holds the first bytes).
 * Returns 0, or -1 (out of memory: c is closed). */
int h2_conn_start(conn *c);
/* Feeds what c->in holds to the session (and empties it). */
void h2_conn_input(conn *c);
/* Moves frames the session has ready into c->out (bounded). Returns 0, or -1
 * when the session is over and c should close once c->out is sent. */
int h2_conn_output(conn *c);
/* The connection went away: on_close for every stream in flight, then frees. */
void h2_conn_free(conn *c);
/* Draining: GOAWAY. */
void h2_conn_goaway(conn *c);
/* 1 when no stream is open. */
int h2_conn_idle(const conn *c);
/* The request side of httpd.h for a stream. */
int h2_respond(httpd_req *r, int status, const char *ctype, const char *extra, const void *body, size_t len);
int h2_stream_start(httpd_req *r, int status, const char *ctype, const char *extra, int64_t clen);
int h2_stream_write(httpd_req *r, const void *data, size_t len);
int h2_stream_end(httpd_req *r);
size_t h2_stream_pending(const httpd_req *r);
int h2_abort(httpd_req *r);

#endif
