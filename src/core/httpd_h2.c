/*
 * httpd_h2.c — HTTP/2 for httpd (nghttp2), on the same connections, limits and
 * request API as HTTP/1.1: a handler cannot tell which protocol carried its
 * request.
 *
 * A connection turns HTTP/2 when TLS chose "h2" by ALPN, or when its first
 * bytes are the client preface (h2c with prior knowledge); httpd.c decides,
 * this file runs the session. nghttp2 does the framing, HPACK, flow control
 * and stream states over memory (mem_recv / mem_send): bytes read go in,
 * frames come out into the connection's output buffer, which httpd.c flushes
 * as for HTTP/1.1, before the loop sleeps, over TLS or not.
 *
 * Each stream carries one request (struct h2_stream embeds its httpd_req):
 * headers and body are collected under the same caps as HTTP/1.1 (431, 413
 * answered on the stream), then the handler is called. Response bodies go
 * into the stream's own buffer, from which nghttp2 takes what the peer's
 * flow-control windows allow: a stream whose reader is slow fills its buffer
 * (httpd_stream_pending, httpd_on_drain per stream) without holding up the
 * others. RST_STREAM from the client is that request's on_close; the
 * connection going away is every open request's on_close; draining sends
 * GOAWAY and closes once the open streams are done.
 *
 * Not here: server push, priorities (nghttp2's defaults), request bodies
 * streamed to the handler in pieces (as HTTP/1.1: whole), per-stream body
 * timeouts (the connection's idle timeout bounds a stalled stream).
 */
#include "core/httpd_int.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames are moved into the connection's output up to this much at a time. */
#define H2_OUT_CHUNK_BYTES (256 * 1024)
/* Our receive windows: bodies are collected whole, so a large window costs
 * nothing more than the body cap and saves round trips on uploads. */
#define H2_WINDOW_BYTES (1 << 20)

struct h2_stream {
	int32_t id;
	h2_session *h;
	httpd_req req; /* req.h2 == this */
	buf fields;    /* "name\0value\0" pairs as received */
	size_t nfields;
	size_t field_bytes;                   /* as RFC 9113 counts them: name + value + 32 each */
	int method_at, path_at, authority_at; /* offsets of the pseudo-header values in fields, -1 = absent */
	http_header *hdrs;                    /* built at dispatch, pointing into fields */
	buf path;                             /* the path when the target has a query */
	buf body;                             /* the request body, capped at max_body_bytes */
	buf out;                              /* response body bytes nghttp2 has not taken yet */
	int eof;                              /* the response ended: EOF once out is empty */
	int dispatched;                       /* handed to the handler */
	int in_flight;                        /* dispatched, response not ended, not closed */
	int rejected;                         /* answered by httpd (431, 413, 400): further input ignored */
	int data_deferred;                    /* nghttp2 waits for data (resume on write) */
	h2_stream *prev, *next;
};

struct h2_session {
	nghttp2_session *ng;
	conn *c;
	h2_stream *streams;
	size_t nstreams;
	int goaway;     /* GOAWAY submitted: no new streams */
	buf nv_scratch; /* lower-cased header names of one response */
};

/* ------------------------------------------------------------ streams */

static h2_stream *stream_new(h2_session *h, int32_t id)
{
	h2_stream *st = calloc(1, sizeof(*st));
	if (!st) return NULL;
	httpd *s = h->c->s;
	st->id = id;
	st->h = h;
	st->method_at = st->path_at = st->authority_at = -1;
	buf_init(&st->fields, s->lim.max_header_bytes + 1024);
	buf_init(&st->path, 0);
	buf_init(&st->body, s->lim.max_body_bytes + 1);
	buf_init(&st->out, s->lim.max_output_bytes);
	st->req.c = h->c;
	st->req.h2 = st;
	st->req.declared_len = -1;
	st->next = h->streams;
	if (h->streams) h->streams->prev = st;
	h->streams = st;
	h->nstreams++;
	return st;
}

static void stream_free(h2_stream *st)
{
	h2_session *h = st->h;
	if (st->prev) st->prev->next = st->next;
	else h->streams = st->next;
	if (st->next) st->next->prev = st->prev;
	h->nstreams--;
	buf_free(&st->fields);
	buf_free(&st->path);
	buf_free(&st->body);
	buf_free(&st->out);
	free(st->hdrs);
	free(st);
}

/* The request left the handler's hands: its response ended, or it was closed. */
static void stream_not_in_flight(h2_stream *st)
{
	if (!st->in_flight) return;
	st->in_flight = 0;
	st->h->c->s->st.in_flight--;
}

/* Calls on_close of a request whose response had not ended. */
static void stream_closed_early(h2_stream *st)
{
	httpd_req *r = &st->req;
	if (!st->in_flight) return;
	stream_not_in_flight(st);
	r->ended = 1;
	if (r->on_close) {
		st->h->c->s->st.client_closed_total++;
		httpd_req_fn *fn = r->on_close;
		r->on_close = NULL;
		fn(r, r->on_close_arg);
	}
}

/* ------------------------------------------------------------ responses */

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	h2_stream *st = src->ptr;
	size_t n = MIN(len, buf_rlen(&st->out));
	if (n) {
		memcpy(dst, buf_rptr(&st->out), n);
		buf_consume(&st->out, n);
	}
	if (!buf_rlen(&st->out)) {
		if (st->eof) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		} else if (!n) {
			st->data_deferred = 1;
			return NGHTTP2_ERR_DEFERRED;
		}
	}
	return (ssize_t)n;
}

static int name_is(const char *n, size_t len, const char *lit)
{
	return strlen(lit) == len && str_ieq(n, len, lit);
}

/* Adds one field to nva (names lower-cased into scratch, which is sized first
 * so pointers stay put). */
static void nv_add(nghttp2_nv *nva, size_t *n, const char *name, size_t nlen, const char *value, size_t vlen)
{
	nva[*n] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
	(*n)++;
}

#define H2_MAX_RESPONSE_FIELDS 64

/* Submits the response head; with_body: DATA follows from st->out. */
static int submit_head(h2_stream *st, int status, const char *ctype, const char *extra, int64_t clen, int with_body)
{
	h2_session *h = st->h;
	nghttp2_nv nva[H2_MAX_RESPONSE_FIELDS];
	size_t n = 0;
	char status_s[8], clen_s[24];
	snprintf(status_s, sizeof(status_s), "%d", status);
	nv_add(nva, &n, ":status", 7, status_s, strlen(status_s));
	if (ctype) nv_add(nva, &n, "content-type", 12, ctype, strlen(ctype));
	if (clen >= 0 && !http_status_bodiless(status)) {
		snprintf(clen_s, sizeof(clen_s), "%lld", (long long)clen);
		nv_add(nva, &n, "content-length", 14, clen_s, strlen(clen_s));
	}
	/* extra: "Name: value\r\n" lines; names lower-cased (HTTP/2 requires
	 * it), connection-specific fields dropped (RFC 9113 8.2.2). */
	buf *sc = &h->nv_scratch;
	buf_reset(sc);
	if (extra && buf_space(sc, strlen(extra) + 1) == NULL) return -1;
	const char *p = extra;
	while (p && *p && n < H2_MAX_RESPONSE_FIELDS) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);
		const char *colon = memchr(p, ':', ll);
		if (colon && colon > p) {
			size_t nl = (size_t)(colon - p);
			const char *v = colon + 1;
			size_t vl = ll - nl - 1;
			while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
			if (!name_is(p, nl, "connection") && !name_is(p, nl, "keep-alive") &&
			    !name_is(p, nl, "transfer-encoding") && !name_is(p, nl, "upgrade") &&
			    !name_is(p, nl, "proxy-connection") && !name_is(p, nl, "content-length")) {
				char *lower = buf_rptr(sc) + buf_rlen(sc);
				for (size_t i = 0; i < nl; i++) lower[i] = (char)tolower((unsigned char)p[i]);
				buf_commit(sc, nl);
				nv_add(nva, &n, lower, nl, v, vl);
			}
		}
		if (!eol) break;
		p = eol + 2;
	}
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
	int rv = nghttp2_submit_response(h->ng, st->id, nva, n, with_body ? &prd : NULL);
	httpd_conn_queue_flush(h->c);
	return rv == 0 ? 0 : -1;
}

static int stream_usable(const httpd_req *r)
{
	const h2_stream *st = r->h2;
	return st->in_flight && !r->ended && !r->c->dead;
}

static void stream_end(h2_stream *st)
{
	st->req.ended = 1;
	stream_not_in_flight(st);
}

int h2_respond(httpd_req *r, int status, const char *ctype, const char *extra, const void *body, size_t len)
{
	h2_stream *st = r->h2;
	if (!stream_usable(r) || r->started) return -1;
	r->started = 1;
	int nobody = r->head_only || http_status_bodiless(status);
	if (!nobody && len && buf_append(&st->out, body, len) < 0) {
		h2_abort(r);
		return -1;
	}
	st->eof = 1;
	int rc = submit_head(st, status, ctype, extra, (int64_t)len, !nobody && len);
	stream_end(st);
	return rc;
}

int h2_stream_start(httpd_req *r, int status, const char *ctype, const char *extra, int64_t clen)
{
	h2_stream *st = r->h2;
	if (!stream_usable(r) || r->started) return -1;
	r->started = 1;
	if (http_status_bodiless(status)) r->head_only = 1;
	r->declared_len = clen;
	return submit_head(st, status, ctype, extra, clen, !r->head_only);
}

int h2_stream_write(httpd_req *r, const void *data, size_t len)
{
	h2_stream *st = r->h2;
	if (!stream_usable(r) || !r->started) return -1;
	if (!len || r->head_only) return 0;
	if (r->declared_len >= 0 && r->sent_len + len > (uint64_t)r->declared_len) return -1;
	if (buf_append(&st->out, data, len) < 0) {
		h2_abort(r); /* output cap: this stream's reader is not keeping up */
		return -1;
	}
	r->sent_len += len;
	if (st->data_deferred) {
		st->data_deferred = 0;
		nghttp2_session_resume_data(st->h->ng, st->id);
	}
	httpd_conn_queue_flush(r->c);
	return 0;
}

int h2_stream_end(httpd_req *r)
{
	h2_stream *st = r->h2;
	if (!stream_usable(r) || !r->started) return -1;
	st->eof = 1;
	if (st->data_deferred) {
		st->data_deferred = 0;
		nghttp2_session_resume_data(st->h->ng, st->id);
	}
	/* A fixed length not reached: the stream is cut, as HTTP/1.1 closes. */
	if (r->declared_len >= 0 && r->sent_len < (uint64_t)r->declared_len && !r->head_only)
		nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	stream_end(st);
	httpd_conn_queue_flush(r->c);
	return 0;
}

size_t h2_stream_pending(const httpd_req *r)
{
	return r->c->dead ? 0 : buf_rlen(&r->h2->out);
}

int h2_abort(httpd_req *r)
{
	h2_stream *st = r->h2;
	if (!st->in_flight || r->c->dead) return -1;
	/* The client sees this stream reset; on_close follows when the reset
	 * leaves (on_stream_close, from the loop). */
	nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	httpd_conn_queue_flush(r->c);
	return 0;
}

/* An answer from httpd itself on a stream (limits), never dispatched. */
static void stream_reject(h2_stream *st, int status, const char *msg)
{
	if (st->rejected || st->dispatched) return;
	httpd *s = st->h->c->s;
	st->rejected = 1;
	s->st.rejected_total++;
	buf_reset(&s->scratch);
	oai_error_write(&s->scratch, status, msg, NULL);
	buf_reset(&st->out);
	if (buf_append(&st->out, buf_rptr(&s->scratch), buf_rlen(&s->scratch)) < 0) {
		nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	st->eof = 1;
	submit_head(st, status, "application/json", NULL, (int64_t)buf_rlen(&st->out), 1);
}

/* ------------------------------------------------------------ requests */

static const char *field_at(const h2_stream *st, int at)
{
	return at < 0 ? NULL : st->fields.data + at;
}

/* Builds the request from the collected fields and calls the handler. */
static void stream_dispatch(h2_stream *st)
{
	conn *c = st->h->c;
	httpd *s = c->s;
	httpd_req *r = &st->req;
	const char *method = field_at(st, st->method_at), *target = field_at(st, st->path_at);
	if (!method || !target || !*target) {
		stream_reject(st, 400, "Malformed HTTP/2 request: :method and :path are required.");
		return;
	}
	size_t cap = st->nfields + 1;
	st->hdrs = calloc(cap, sizeof(http_header));
	if (!st->hdrs) {
		stream_reject(st, 500, "Out of memory.");
		return;
	}
	size_t nh = 0;
	int have_host = 0;
	const char *p = st->fields.data, *end = st->fields.data + st->fields.len;
	while (p && p < end) {
		size_t nl = strlen(p);
		const char *v = p + nl + 1;
		size_t vl = strlen(v);
		if (nl && p[0] != ':') {
			if (name_is(p, nl, "host")) have_host = 1;
			st->hdrs[nh++] = (http_header){p, nl, v, vl};
		}
		p = v + vl + 1;
	}
	const char *auth = field_at(st, st->authority_at);
	if (auth && !have_host) st->hdrs[nh++] = (http_header){"host", 4, auth, strlen(auth)};
	http_request_head *h = &r->head;
	h->method = method;
	h->method_len = strlen(method);
	h->target = target;
	h->target_len = strlen(target);
	h->major_version = 2;
	h->minor_version = 1; /* what handlers that look see: a version with keep-alive */
	h->headers = st->hdrs;
	h->num_headers = nh;
	const char *q = strchr(target, '?');
	if (q) {
		if (buf_append(&st->path, target, (size_t)(q - target)) < 0) {
			stream_reject(st, 500, "Out of memory.");
			return;
		}
		r->path = buf_rptr(&st->path);
		r->query = q + 1;
	} else {
		r->path = target;
		r->query = "";
	}
	r->body = buf_rptr(&st->body);
	r->body_len = buf_rlen(&st->body);
	r->keep_alive = 1;
	r->head_only = !strcmp(method, "HEAD");
	st->dispatched = 1;
	st->in_flight = 1;
	s->st.in_flight++;
	s->st.requests_total++;
	s->handler(r, s->handler_arg);
}

/* ------------------------------------------------------------ nghttp2 callbacks */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	h2_session *h = ud;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
	if (h->goaway) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* refused: draining */
	h2_stream *st = stream_new(h, f->hd.stream_id);
	if (!st) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	h2_session *h = ud;
	if (f->hd.type != NGHTTP2_HEADERS) return 0;
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!st || st->rejected) return 0;
	httpd *s = h->c->s;
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: ignored */
	st->field_bytes += nl + vl + 32;
	if (st->field_bytes > s->lim.max_header_bytes || st->nfields >= s->lim.max_headers) {
		stream_reject(st, 431, "Request header fields too large.");
		return 0;
	}
	int at = (int)st->fields.len + (int)nl + 1;
	if (buf_append(&st->fields, name, nl) < 0 || buf_append(&st->fields, "", 1) < 0 ||
	    buf_append(&st->fields, value, vl) < 0 || buf_append(&st->fields, "", 1) < 0) {
		stream_reject(st, 431, "Request header fields too large.");
		return 0;
	}
	st->nfields++;
	if (nl && name[0] == ':') {
		if (nl == 7 && !memcmp(name, ":method", 7)) st->method_at = at;
		else if (nl == 5 && !memcmp(name, ":path", 5)) st->path_at = at;
		else if (nl == 10 && !memcmp(name, ":authority", 10)) st->authority_at = at;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	if (!st || st->rejected || st->dispatched) return 0;
	httpd *s = st->h->c->s;
	if (buf_rlen(&st->body) + len > s->lim.max_body_bytes || buf_append(&st->body, data, len) < 0)
		stream_reject(st, 413, "Request body too large.");
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
	if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!st || st->rejected || st->dispatched) return 0;
	stream_dispatch(st);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud)
{
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	if (!st) return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	/* Reset by the client (or by us: httpd_abort, the output cap) before the
	 * response ended: the handler learns it as for a closed connection. */
	stream_closed_early(st);
	stream_free(st);
	return 0;
}

/* ------------------------------------------------------------ the session */

int h2_conn_start(conn *c)
{
	httpd *s = c->s;
	h2_session *h = calloc(1, sizeof(*h));
	if (!h) goto fail;
	h->c = c;
	buf_init(&h->nv_scratch, 0);
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0) goto fail_h;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_option *opt = NULL;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		goto fail_h;
	}
	/* Header lists are capped by our own count (431); nghttp2's HPACK
	 * decoder also refuses a table update above its default 4 KiB. */
	nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
	int rv = nghttp2_session_server_new2(&h->ng, cb, h, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (rv != 0) goto fail_h;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->lim.max_concurrent_streams},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)s->lim.max_header_bytes},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW_BYTES},
	};
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0 ||
	    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_WINDOW_BYTES) != 0) {
		nghttp2_session_del(h->ng);
		goto fail_h;
	}
	c->h2 = h;
	c->state = ST_H2;
	s->st.h2_connections_total++;
	httpd_conn_timer(c, s->lim.keepalive_idle_ms);
	if (s->draining) h2_conn_goaway(c);
	if (buf_rlen(&c->in)) h2_conn_input(c);
	if (!c->dead) {
		httpd_conn_queue_flush(c);
		httpd_conn_update_io(c);
	}
	return 0;
fail_h:
	buf_free(&h->nv_scratch);
	free(h);
fail:
	httpd_conn_close(c);
	return -1;
}

void h2_conn_input(conn *c)
{
	h2_session *h = c->h2;
	size_t n = buf_rlen(&c->in);
	if (!n) return;
	httpd_conn_timer(c, c->s->lim.keepalive_idle_ms);
	ssize_t rv = nghttp2_session_mem_recv(h->ng, (const uint8_t *)buf_rptr(&c->in), n);
	buf_reset(&c->in);
	if (rv < 0) {
		/* Not HTTP/2 (a bad preface) or a connection error nghttp2 could not
		 * answer with GOAWAY itself: say so if we can, then close. */
		log_ratelimited(LOG_WARN, "httpd: HTTP/2 from %s: %s",
				net_addr_str(&c->peer, c->peer_str, sizeof(c->peer_str)), nghttp2_strerror((int)rv));
		nghttp2_session_terminate_session(h->ng, NGHTTP2_PROTOCOL_ERROR);
		h2_conn_output(c);
		httpd_conn_send(c);
		httpd_conn_close(c);
		return;
	}
	httpd_conn_queue_flush(c);
}

int h2_conn_output(conn *c)
{
	h2_session *h = c->h2;
	httpd *s = c->s;
	while (buf_rlen(&c->out) < H2_OUT_CHUNK_BYTES) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(h->ng, &d);
		if (n < 0) return -1;
		if (n == 0) break;
		if (buf_append(&c->out, d, (size_t)n) < 0) return -1;
	}
	/* Streams whose buffer fell below the low watermark: their writers may go on. */
	for (h2_stream *st = h->streams; st; st = st->next) {
		httpd_req *r = &st->req;
		if (st->in_flight && r->on_drain && buf_rlen(&st->out) < s->lim.low_watermark_bytes) {
			httpd_req_fn *fn = r->on_drain;
			r->on_drain = NULL;
			fn(r, r->on_drain_arg);
			if (c->dead) return -1;
		}
	}
	if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)) return -1;
	if (h->goaway && h->nstreams == 0 && !nghttp2_session_want_write(h->ng)) return -1;
	return 0;
}

int h2_conn_wants_write(const conn *c)
{
	return c->h2 && nghttp2_session_want_write(c->h2->ng);
}

void h2_conn_goaway(conn *c)
{
	h2_session *h = c->h2;
	if (h->goaway) return;
	h->goaway = 1;
	nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
			      NGHTTP2_NO_ERROR, NULL, 0);
	httpd_conn_queue_flush(c);
}

int h2_conn_idle(const conn *c) { return c->h2->nstreams == 0; }

void h2_conn_free(conn *c)
{
	h2_session *h = c->h2;
	if (!h) return;
	while (h->streams) {
		h2_stream *st = h->streams;
		stream_closed_early(st);
		stream_free(st);
	}
	nghttp2_session_del(h->ng);
	buf_free(&h->nv_scratch);
	free(h);
	c->h2 = NULL;
}
