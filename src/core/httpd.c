/*
 * httpd.c — the HTTP/1.1 server of httpd.h.
 *
 * One struct conn per connection holds the socket, a read buffer, an output
 * buffer, the header array and the one request in progress (struct httpd_req is
 * embedded: at most one request per connection is handled at a time). States:
 *
 *   HEAD  reading a head (idle between requests when no byte is buffered)
 *   BODY  reading the body (Content-Length or chunked, decoded in place)
 *   WAIT  the handler has the request; reading continues only into the read
 *         buffer's spare room, to notice the client leaving; once it is full,
 *         only a hang-up is watched for (EV_HUP)
 *   DONE  closing after the output is flushed (Connection: close, errors),
 *         then lingering: half-close and drain input briefly so the client
 *         reads the answer before a reset
 *
 * The read buffer holds [head][body][pipelined bytes...]. The head is parsed
 * again at dispatch time if the buffer moved while the body was read, then its
 * fields are NUL-terminated in place. Connections are closed from ev_defer (so
 * a callback never finds its connection freed under it) and recycled.
 */
#include "core/httpd_int.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/tls.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void conn_close(conn *c);
static void conn_resume(ev_loop *loop, void *arg);
static void conn_process(conn *c);
static void conn_update_io(conn *c);
static void conn_queue_flush(conn *c);

void httpd_limits_default(httpd_limits *l)
{
	l->max_header_bytes = 16 * 1024;
	l->max_headers = 100;
	l->max_body_bytes = 16 * 1024 * 1024;
	l->header_timeout_ms = 10000;
	l->body_timeout_ms = 60000;
	l->keepalive_idle_ms = 60000;
	l->send_timeout_ms = 60000;
	l->max_connections = 10000;
	l->max_output_bytes = 64 * 1024 * 1024;
	l->low_watermark_bytes = 64 * 1024;
	l->handshake_timeout_ms = 10000;
	l->max_concurrent_streams = 100;
}

/* ------------------------------------------------------------ timers */

static int64_t conn_on_timer(ev_loop *loop, uint64_t id, void *arg);

/* Sets the connection's one deadline to after_ms from now. The loop's timer
 * moves only when the deadline comes earlier than it is armed for: a later
 * one (every keep-alive request pushes the idle timeout) is found when the
 * timer fires, which then waits the rest. So a request costs no timer-heap
 * work; an idle connection, one wake-up per timeout. */
static void conn_timer(conn *c, uint64_t after_ms)
{
	ev_loop *loop = c->s->loop;
	uint64_t at = ev_now_ms(loop) + after_ms;
	c->deadline_ms = at;
	if (c->timer && at >= c->timer_at_ms) return;
	if (!c->timer || ev_timer_set(loop, c->timer, after_ms) < 0)
		c->timer = ev_timer_add(loop, after_ms, conn_on_timer, c);
	c->timer_at_ms = at;
}

/* No deadline: the armed timer, if any, finds nothing due when it fires. */
static void conn_timer_clear(conn *c)
{
	c->deadline_ms = 0;
}

/* The timer gone, for a connection that closes. */
static void conn_timer_stop(conn *c)
{
	if (c->timer) ev_timer_del(c->s->loop, c->timer);
	c->timer = 0;
	c->deadline_ms = 0;
}

/* ------------------------------------------------------------ output */

static void flush_list_del(conn *c)
{
	if (!c->in_flush_list) return;
	httpd *s = c->s;
	if (c->fprev) c->fprev->fnext = c->fnext;
	else s->flush_head = c->fnext;
	if (c->fnext) c->fnext->fprev = c->fprev;
	c->fprev = c->fnext = NULL;
	c->in_flush_list = 0;
}

static void conn_queue_flush(conn *c)
{
	if (c->in_flush_list || c->dead) return;
	httpd *s = c->s;
	c->fprev = NULL;
	c->fnext = s->flush_head;
	if (s->flush_head) s->flush_head->fprev = c;
	s->flush_head = c;
	c->in_flush_list = 1;
}

/* Sends queued output until it is all gone or the socket says no. Returns 0
 * when everything went, else -1 with errno (EAGAIN: the socket is full). */
static int conn_send(conn *c)
{
	while (buf_rlen(&c->out)) {
		ssize_t w = c->tls ? tls_write(c->tls, buf_rptr(&c->out), buf_rlen(&c->out))
				   : send(c->fd, buf_rptr(&c->out), buf_rlen(&c->out), MSG_NOSIGNAL);
		if (w > 0) {
			buf_consume(&c->out, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR) continue;
		if (w == 0) errno = EPIPE;
		return -1;
	}
	return 0;
}

/* HTTP/2: frames out of the session, then to the socket, while both go on. */
static int conn_flush_h2(conn *c)
{
	httpd *s = c->s;
	for (int i = 0; i < 16; i++) {
		int over = h2_conn_output(c) < 0;
		if (c->dead) return -1;
		if (conn_send(c) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->send_blocked || !c->deadline_ms) conn_timer(c, s->lim.send_timeout_ms);
				c->send_blocked = 1;
				conn_update_io(c);
				return 0;
			}
			conn_close(c);
			return -1;
		}
		if (over) { /* GOAWAY sent and no stream left, or a session error */
			conn_close(c);
			return -1;
		}
		if (!h2_conn_wants_write(c)) break;
	}
	if (h2_conn_wants_write(c)) conn_queue_flush(c); /* more than one pass: go on before sleeping */
	if (c->send_blocked) {
		c->send_blocked = 0;
		conn_timer(c, s->lim.keepalive_idle_ms);
	}
	conn_update_io(c);
	return 0;
}

static void conn_sent(ev_loop *loop, long res, void *arg);
static int conn_flush_after(conn *c, int rc);

/* Writes what the socket takes. From the before-sleep hook (batch set), a
 * plaintext connection's send is queued on the loop's batched I/O when it
 * has one: the sends of every connection flushed in this pass then leave in
 * one system call, issued right after the hooks (ev_run_once), before
 * anything else can touch the buffer; conn_sent carries on. Returns 0, or -1
 * when the connection failed (closing is then scheduled). */
static int conn_flush(conn *c, int batch)
{
	if (c->state == ST_H2) return conn_flush_h2(c);
	if (c->send_op) return 0; /* queued: its completion goes on */
	if (batch && !c->tls && !c->send_blocked && buf_rlen(&c->out)) {
		c->send_op = ev_io_send(c->s->loop, c->fd, buf_rptr(&c->out), buf_rlen(&c->out), conn_sent, c);
		if (c->send_op) return 0;
	}
	return conn_flush_after(c, conn_send(c));
}

/* A batched send is done: res bytes went out, or -errno. */
static void conn_sent(ev_loop *loop, long res, void *arg)
{
	conn *c = arg;
	c->send_op = 0;
	if (c->dead) return;
	int rc;
	if (res > 0 || res == -EINTR) {
		if (res > 0) buf_consume(&c->out, (size_t)res);
		rc = conn_send(c); /* the rest, if any, directly */
	} else {
		errno = res ? (int)-res : EPIPE;
		rc = -1;
	}
	conn_flush_after(c, rc);
}

/* What follows a send (conn_send's rc, errno set when -1). */
static int conn_flush_after(conn *c, int rc)
{
	httpd *s = c->s;
	if (rc < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (!c->send_blocked || !c->deadline_ms) conn_timer(c, s->lim.send_timeout_ms);
			c->send_blocked = 1;
			conn_update_io(c);
			goto drain_check;
		}
		conn_close(c);
		return -1;
	}
	if (c->state == ST_DONE) {
		/* Everything sent: half-close and drain input for a moment. */
		if (!c->linger) {
			c->linger = 1;
			if (c->tls) tls_close_notify(c->tls);
			shutdown(c->fd, SHUT_WR);
			conn_timer(c, HTTPD_LINGER_MS);
		}
	} else if (c->state == ST_WAIT) {
		if (c->send_blocked) conn_timer_clear(c);
	} else if (c->state == ST_HEAD && !buf_rlen(&c->in)) {
		if (s->draining) {
			conn_close(c);
			return -1;
		}
		if (c->send_blocked) conn_timer(c, s->lim.keepalive_idle_ms);
	}
	c->send_blocked = 0;
	if (c->pipeline_paused && c->state == ST_HEAD) {
		c->pipeline_paused = 0;
		ev_defer(s->loop, conn_resume, c);
	}
	conn_update_io(c);
drain_check:;
	httpd_req *r = &c->req;
	if (c->in_flight && r->on_drain && buf_rlen(&c->out) < s->lim.low_watermark_bytes) {
		httpd_req_fn *fn = r->on_drain;
		r->on_drain = NULL;
		fn(r, r->on_drain_arg);
	}
	return 0;
}

static void httpd_before_sleep(ev_loop *loop, void *arg)
{
	httpd *s = arg;
	while (s->flush_head) {
		conn *c = s->flush_head;
		flush_list_del(c);
		if (!c->dead) conn_flush(c, 1);
	}
}

/* ------------------------------------------------------------ connections */

static void conn_tls_more(ev_loop *loop, void *arg);

static void conn_update_io(conn *c)
{
	if (c->dead) return;
	int m = 0;
	if (c->handshaking) {
		m = tls_want(c->tls) ? tls_want(c->tls) : EV_READ;
		goto set;
	}
	/* Output queued for the before-sleep flush is sent then, without the
	 * poller's help: write interest only while the socket pushes back (or
	 * output waits outside the flush list), so a reply costs no epoll_ctl. */
	if (buf_rlen(&c->out) && !c->send_op && (c->send_blocked || !c->in_flush_list)) m |= EV_WRITE;
	/* Whenever input is not read (paused pipeline, full buffer) the client
	 * leaving must still be seen: EV_HUP, never EV_READ left armed with
	 * nowhere to put the bytes (level-triggered: that spins a core). */
	switch (c->state) {
	case ST_HEAD:
		m |= c->pipeline_paused ? EV_HUP : EV_READ;
		break;
	case ST_BODY:
		m |= EV_READ;
		break;
	case ST_WAIT:
		/* Only into spare room, so the head stays where it is. */
		m |= c->in.cap > c->in.len + 1 ? EV_READ : EV_HUP;
		break;
	case ST_DONE:
		if (c->linger) m |= EV_READ;
		break;
	case ST_H2:
		m |= EV_READ;
		break;
	}
	if (c->tls) {
		/* A read that said "again" for want of writing (or the reverse)
		 * waits for that direction too. */
		m |= tls_want(c->tls);
		/* Bytes OpenSSL decrypted already never wake the poller. */
		if ((m & EV_READ) && tls_pending(c->tls) && !c->tls_more_deferred &&
		    ev_defer(c->s->loop, conn_tls_more, c) == 0)
			c->tls_more_deferred = 1;
	}
set:
	if (m != c->io_mask) {
		if (ev_mod(c->s->loop, c->fd, m) == 0) c->io_mask = m;
	}
}

static void accept_resume_check(httpd *s);

static void conn_recycle(httpd *s, conn *c)
{
	if (s->nfree < HTTPD_FREE_CONNS_KEPT) {
		/* Keep moderate buffers for the next connection. */
		if (c->in.cap > 4 * HTTPD_READ_CHUNK) buf_free(&c->in);
		if (c->out.cap > 4 * HTTPD_READ_CHUNK) buf_free(&c->out);
		buf_reset(&c->in);
		buf_reset(&c->out);
		buf_free(&c->path_copy);
		c->next = s->free_conns;
		s->free_conns = c;
		s->nfree++;
	} else {
		buf_free(&c->in);
		buf_free(&c->out);
		buf_free(&c->path_copy);
		free(c->hdrs);
		free(c);
	}
}

/* Releases closed connections: on_close for requests whose response had not
 * ended, then the struct goes back to the free list. Runs from ev_defer. */
static void httpd_reap(ev_loop *loop, void *arg)
{
	httpd *s = arg;
	while (s->dead) {
		conn *c = s->dead;
		s->dead = c->next;
		h2_conn_free(c); /* on_close of its open streams */
		httpd_req *r = &c->req;
		if (c->in_flight) {
			c->in_flight = 0;
			s->st.in_flight--;
			if (r->on_close && !r->ended) {
				s->st.client_closed_total++;
				httpd_req_fn *fn = r->on_close;
				r->on_close = NULL;
				fn(r, r->on_close_arg);
			}
		}
		s->st.connections--;
		conn_recycle(s, c);
	}
	s->reap_scheduled = 0;
	accept_resume_check(s);
}

/* Closes the socket now; the struct is released (and on_close called) by the
 * reaper from a deferred call, so no caller finds it freed. Idempotent. */
static void conn_close(conn *c)
{
	if (c->dead) return;
	httpd *s = c->s;
	c->dead = 1;
	flush_list_del(c);
	ev_io_cancel(s->loop, c->send_op); /* before the fd closes */
	c->send_op = 0;
	conn_timer_stop(c);
	ev_del(s->loop, c->fd);
	if (c->handshaking) s->st.tls_handshake_failures_total++;
	c->handshaking = 0;
	tls_conn_free(c->tls);
	c->tls = NULL;
	if (c->tls_more_deferred) {
		ev_defer_cancel(s->loop, conn_tls_more, c);
		c->tls_more_deferred = 0;
	}
	close(c->fd);
	c->fd = -1;
	if (c->prev) c->prev->next = c->next;
	else s->conns = c->next;
	if (c->next) c->next->prev = c->prev;
	c->prev = NULL;
	c->next = s->dead;
	s->dead = c;
	if (!s->reap_scheduled && ev_defer(s->loop, httpd_reap, s) == 0) s->reap_scheduled = 1;
}

/* Starts waiting for the next request on a kept-alive connection. */
static void conn_next_request(conn *c)
{
	httpd_req *r = &c->req;
	c->state = ST_HEAD;
	c->head_len = 0;
	c->head_at = NULL;
	c->sent_continue = 0;
	c->body_decoded = 0;
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->declared_len = -1;
	if (c->s->draining && !buf_rlen(&c->in)) {
		c->state = ST_DONE;
		conn_queue_flush(c);
		return;
	}
	conn_timer(c, buf_rlen(&c->in) ? c->s->lim.header_timeout_ms : c->s->lim.keepalive_idle_ms);
	/* Interest was set for WAIT (maybe a hang-up watch on a full buffer):
	 * reading resumes now, not at the next flush. */
	conn_update_io(c);
}

/* An answer from httpd itself, then close. */
static void conn_reject(conn *c, int status, const char *msg)
{
	httpd *s = c->s;
	s->st.rejected_total++;
	buf_reset(&s->scratch);
	oai_error_write(&s->scratch, status, msg, NULL);
	if (http_write_response_head(&c->out, status, "application/json", (int64_t)buf_rlen(&s->scratch), 0, NULL) < 0 ||
	    buf_append(&c->out, buf_rptr(&s->scratch), buf_rlen(&s->scratch)) < 0) {
		conn_close(c);
		return;
	}
	c->state = ST_DONE;
	buf_reset(&c->in);
	conn_timer(c, s->lim.send_timeout_ms);
	conn_queue_flush(c);
	conn_update_io(c);
}

static int64_t conn_on_timer(ev_loop *loop, uint64_t id, void *arg)
{
	conn *c = arg;
	if (c->dead || !c->deadline_ms) {
		c->timer = 0;
		return -1;
	}
	uint64_t now = ev_now_ms(loop);
	if (now < c->deadline_ms) { /* pushed later since it was armed: wait the rest */
		c->timer_at_ms = c->deadline_ms;
		return (int64_t)(c->deadline_ms - now);
	}
	c->timer = 0;
	c->deadline_ms = 0;
	switch (c->state) {
	case ST_HEAD:
		if (c->handshaking) {
			log_ratelimited(LOG_WARN, "httpd: TLS handshake with %s timed out",
					net_addr_str(&c->peer, c->peer_str, sizeof(c->peer_str)) ? c->peer_str : "?");
			conn_close(c);
			break;
		}
		if (buf_rlen(&c->out)) {
			conn_close(c);
			break;
		}                                         /* stalled writer */
		if (buf_rlen(&c->in) == 0) conn_close(c); /* idle keep-alive */
		else conn_reject(c, 408, "Timed out reading the request head.");
		break;
	case ST_BODY:
		conn_reject(c, 408, "Timed out reading the request body.");
		break;
	case ST_WAIT:
	case ST_DONE:
		conn_close(c); /* stalled writer, or lingering over */
		break;
	case ST_H2:
		if (c->send_blocked || h2_conn_idle(c)) conn_close(c); /* stalled writer, or idle */
		else conn_timer(c, c->s->lim.keepalive_idle_ms);
		break;
	}
	return -1;
}

/* ------------------------------------------------------------ reading */

static const char *find_query(const char *t, size_t n)
{
	const char *q = memchr(t, '?', n);
	return q;
}

/* Turns an absolute-form target ("http://host:8000/v1/models?x", RFC 9112
 * 3.2.2, what a client talking to a proxy sends) into its origin form
 * ("/v1/models?x") in place: the authority is dropped (the byte before the
 * path becomes its '/' when the path is empty). Other targets are left as
 * they are. */
static void target_origin_form(http_request_head *h)
{
	char *t = (char *)h->target;
	size_t n = h->target_len, skip;
	if (n >= 7 && str_ieq(t, 7, "http://")) skip = 7;
	else if (n >= 8 && str_ieq(t, 8, "https://")) skip = 8;
	else return;
	size_t i = skip;
	while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#') i++;
	if (i == n || t[i] != '/') t[--i] = '/'; /* i > 0: the scheme's last '/' at worst */
	h->target = t + i;
	h->target_len = n - i;
}

/* Hands a complete request to the handler. */
static void conn_dispatch(conn *c)
{
	httpd *s = c->s;
	httpd_req *r = &c->req;
	char *base = c->in.data + c->in.rd;
	if (c->head_at != base) {
		r->head.headers = c->hdrs;
		r->head.num_headers = s->lim.max_headers;
		int n = http_parse_request(base, c->head_len, &r->head);
		BUG_ON(n != (int)c->head_len);
	}
	/* NUL-terminate the head's fields in place. */
	http_request_head *h = &r->head;
	target_origin_form(h);
	((char *)h->method)[h->method_len] = 0;
	((char *)h->target)[h->target_len] = 0;
	for (size_t i = 0; i < h->num_headers; i++) {
		((char *)h->headers[i].name)[h->headers[i].name_len] = 0;
		((char *)h->headers[i].value)[h->headers[i].value_len] = 0;
	}
	const char *q = find_query(h->target, h->target_len);
	if (q) {
		buf_reset(&c->path_copy);
		if (buf_append(&c->path_copy, h->target, (size_t)(q - h->target)) < 0) {
			conn_reject(c, 500, "Out of memory.");
			return;
		}
		r->path = buf_rptr(&c->path_copy);
		r->query = q + 1;
	} else {
		r->path = h->target;
		r->query = "";
	}
	size_t body_len = c->body_kind == HTTP_BODY_CHUNKED ? c->body_decoded : (size_t)c->body_expect;
	r->body = base + c->head_len;
	r->body_len = body_len;
	/* The byte after the body may be the next pipelined request; the body is
	 * NUL-terminated only when that byte is not data. */
	if (c->head_len + body_len < buf_rlen(&c->in)) {
		c->saved_at = base + c->head_len + body_len;
		c->saved_byte = *c->saved_at;
		*c->saved_at = 0;
	}
	r->keep_alive = http_keep_alive(h->minor_version, h->headers, h->num_headers) && !s->draining;
	r->head_only = str_ieq(h->method, h->method_len, "HEAD");
	r->c = c;
	c->state = ST_WAIT;
	c->requests_seen++;
	c->in_flight = 1;
	s->st.in_flight++;
	s->st.requests_total++;
	conn_timer_clear(c);
	conn_update_io(c);
	c->in_handler = 1;
	s->handler(r, s->handler_arg);
	c->in_handler = 0;
}

/* Called when the response has ended: consume the request, go on. */
static void conn_request_done(conn *c)
{
	httpd *s = c->s;
	httpd_req *r = &c->req;
	if (c->in_flight) {
		c->in_flight = 0;
		s->st.in_flight--;
	}
	if (c->saved_at) {
		*c->saved_at = c->saved_byte;
		c->saved_at = NULL;
	}
	size_t used = c->head_len + r->body_len;
	int keep = r->keep_alive && !r->until_close &&
		   !(r->declared_len >= 0 && r->sent_len < (uint64_t)r->declared_len && !r->head_only);
	conn_queue_flush(c);
	if (!keep) {
		c->state = ST_DONE;
		buf_reset(&c->in);
		conn_update_io(c);
		return;
	}
	buf_consume(&c->in, used);
	conn_next_request(c);
}

/* Parses and dispatches what the read buffer holds, one request at a time. */
static void conn_process(conn *c)
{
	httpd *s = c->s;
	for (;;) {
		if (c->dead) return;
		if (c->state == ST_H2) {
			h2_conn_input(c);
			return;
		}
		if (c->state == ST_HEAD) {
			size_t n = buf_rlen(&c->in);
			if (n == 0) return;
			if (c->requests_seen == 0) {
				/* h2c with prior knowledge: the preface instead of a request line. */
				size_t k = MIN(n, (size_t)H2_PREFACE_LEN);
				if (!memcmp(buf_rptr(&c->in), H2_PREFACE, k)) {
					if (k < H2_PREFACE_LEN) return; /* more to come */
					h2_conn_start(c);
					return;
				}
			}
			if (buf_rlen(&c->out) >= HTTPD_PIPELINE_OUT_BYTES) {
				c->pipeline_paused = 1; /* resumed by conn_flush */
				conn_update_io(c);      /* stop reading: nothing reads the bytes now */
				return;
			}
			char *base = buf_rptr(&c->in);
			http_request_head *h = &c->req.head;
			h->headers = c->hdrs;
			h->num_headers = s->lim.max_headers;
			size_t plen = MIN(n, s->lim.max_header_bytes);
			int r = http_parse_request(base, plen, h);
			if (r == HTTP_INCOMPLETE) {
				if (n >= s->lim.max_header_bytes) {
					conn_reject(c, 431, "Request header fields too large.");
					return;
				}
				return;
			}
			if (r == HTTP_TOO_MANY_HEADERS) {
				conn_reject(c, 431, "Too many request header fields.");
				return;
			}
			if (r < 0) {
				conn_reject(c, 400, "Malformed HTTP request.");
				return;
			}
			if (h->major_version != 1 || h->minor_version > 1) {
				conn_reject(c, 505, "HTTP version not supported: HTTP/1.0 and HTTP/1.1 are.");
				return;
			}
			uint64_t len = 0;
			int fr = http_body_framing(h->headers, h->num_headers, 0, 0, NULL, 0, &c->body_kind, &len);
			if (fr == HTTP_FRAMING_UNSUPPORTED) {
				conn_reject(c, 501, "Transfer-Encoding not implemented: only chunked is.");
				return;
			}
			if (fr < 0) {
				conn_reject(c, 400, "Invalid request body framing (Content-Length or Transfer-Encoding).");
				return;
			}
			if (c->body_kind == HTTP_BODY_LENGTH && len > s->lim.max_body_bytes) {
				conn_reject(c, 413, "Request body too large.");
				return;
			}
			c->head_len = (size_t)r;
			c->head_at = base;
			c->body_expect = c->body_kind == HTTP_BODY_LENGTH ? len : 0;
			c->body_decoded = 0;
			if (c->body_kind == HTTP_BODY_CHUNKED) http_chunked_init(&c->chunk);
			c->state = ST_BODY;
			conn_timer(c, s->lim.body_timeout_ms);
			/* Expect: 100-continue, when the body is not here yet. */
			const http_header *e = http_find_header(h->headers, h->num_headers, "expect");
			if (e && str_ieq(e->value, e->value_len, "100-continue") && h->minor_version >= 1 &&
			    c->body_kind != HTTP_BODY_NONE && buf_rlen(&c->in) == c->head_len) {
				buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
				c->sent_continue = 1;
				conn_queue_flush(c);
			}
		}
		if (c->state == ST_BODY) {
			size_t have = buf_rlen(&c->in) - c->head_len;
			if (c->body_kind == HTTP_BODY_LENGTH) {
				if (have < c->body_expect) return;
			} else if (c->body_kind == HTTP_BODY_CHUNKED) {
				char *raw = buf_rptr(&c->in) + c->head_len + c->body_decoded;
				size_t rawlen = have - c->body_decoded;
				if (rawlen == 0) return;
				size_t out = rawlen;
				long rc = http_chunked_decode(&c->chunk, raw, &out);
				c->body_decoded += out;
				if (rc == HTTP_MALFORMED) {
					conn_reject(c, 400, "Malformed chunked request body.");
					return;
				}
				if (c->body_decoded > s->lim.max_body_bytes) {
					conn_reject(c, 413, "Request body too large.");
					return;
				}
				size_t end = c->in.rd + c->head_len + c->body_decoded;
				if (rc == HTTP_INCOMPLETE) {
					c->in.len = end;
					c->in.data[end] = 0;
					return;
				}
				c->in.len = end + (size_t)rc;
				c->in.data[c->in.len] = 0;
			}
			conn_dispatch(c);
			if (c->dead || c->state == ST_WAIT || c->state == ST_DONE) return;
			continue; /* answered at once: next pipelined request */
		}
		return;
	}
}

static void conn_lingering_read(conn *c)
{
	char sink[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t r = read(c->fd, sink, sizeof(sink));
		if (r > 0) continue;
		if (r < 0 && errno == EINTR) continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		conn_close(c);
		return;
	}
}

static void conn_read(conn *c)
{
	httpd *s = c->s;
	if (c->state == ST_DONE) {
		if (c->linger) conn_lingering_read(c);
		return;
	}
	char *dst;
	size_t room;
	if (c->state == ST_WAIT) {
		room = c->in.cap > c->in.len + 1 ? c->in.cap - c->in.len - 1 : 0;
		if (!room) {
			conn_update_io(c);
			return;
		}
		dst = c->in.data + c->in.len;
	} else {
		size_t want = HTTPD_READ_CHUNK;
		if (c->state == ST_BODY && c->body_kind == HTTP_BODY_LENGTH) {
			size_t need = c->head_len + (size_t)c->body_expect - buf_rlen(&c->in);
			if (need > want) want = MIN(need, (size_t)4 << 20);
		}
		dst = buf_space(&c->in, want);
		if (!dst) {
			conn_reject(c, 500, "Out of memory.");
			return;
		}
		room = c->in.cap - c->in.len - 1;
		/* A head may not grow beyond its cap; reading past it is pointless. */
		if (c->state == ST_HEAD && buf_rlen(&c->in) >= s->lim.max_header_bytes + HTTPD_READ_CHUNK)
			room = 0;
	}
	ssize_t n = room ? (c->tls ? tls_read(c->tls, dst, room) : read(c->fd, dst, room)) : 0;
	if (room == 0 && c->state == ST_HEAD) {
		conn_process(c);
		return;
	}
	if (n > 0) {
		buf_commit(&c->in, (size_t)n);
		if (c->state == ST_HEAD && !c->head_len && c->deadline_ms && buf_rlen(&c->in) == (size_t)n)
			conn_timer(c, s->lim.header_timeout_ms); /* first byte of a new request */
		if (c->state != ST_WAIT) conn_process(c);
		else conn_update_io(c);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (c->tls) conn_update_io(c);
		return;
	}
	/* EOF or error: the client is gone (or half-closed: treated the same, as
	 * vLLM does, so generation stops). */
	conn_close(c);
}

/* Advances a TLS handshake. Returns 1 when HTTP may go on, 0 to wait, -1
 * when the connection was closed. */
static int conn_handshake(conn *c)
{
	httpd *s = c->s;
	int rc = tls_handshake(c->tls);
	if (rc == 0) {
		conn_update_io(c);
		return 0;
	}
	if (rc < 0) {
		log_ratelimited(LOG_WARN, "httpd: TLS from %s: %s",
				net_addr_str(&c->peer, c->peer_str, sizeof(c->peer_str)) ? c->peer_str : "?",
				tls_error(c->tls));
		conn_close(c); /* counted as a failure there */
		return -1;
	}
	c->handshaking = 0;
	s->st.tls_handshakes_total++;
	if (tls_resumed(c->tls)) s->st.tls_resumed_total++;
	conn_timer(c, s->lim.keepalive_idle_ms);
	if (!strcmp(tls_alpn(c->tls), "h2") && h2_conn_start(c) < 0) return -1;
	conn_update_io(c);
	return 1;
}

/* Reads what OpenSSL holds decrypted (no socket event will announce it). */
static void conn_tls_more(ev_loop *loop, void *arg)
{
	conn *c = arg;
	c->tls_more_deferred = 0;
	if (c->dead || !c->tls || !(c->io_mask & EV_READ) || !tls_pending(c->tls)) return;
	conn_read(c);
}

static void conn_on_io(ev_loop *loop, int fd, int mask, void *arg)
{
	conn *c = arg;
	if (c->handshaking) {
		if (mask & EV_HUP && !(mask & (EV_READ | EV_WRITE))) {
			conn_close(c);
			return;
		}
		if (conn_handshake(c) <= 0) return;
		/* Request bytes that came with the last flight are still in the
		 * socket (OpenSSL reads record by record), so the poller reports
		 * them; reading now would give an idle connection its read buffer
		 * for nothing (16 KiB per idle TLS connection). */
		if (!tls_pending(c->tls)) return;
		mask = EV_READ;
	}
	if (mask & EV_WRITE) {
		if (conn_flush(c, 0) < 0) return;
		if (c->state == ST_HEAD && buf_rlen(&c->in)) conn_process(c);
	}
	if (!c->dead && (mask & EV_READ)) conn_read(c);
	/* Input paused and the client closed or reset: whatever its pipelined
	 * bytes were, nobody waits for the answers (on_close: a 499). */
	if (!c->dead && (mask & EV_HUP) && !(c->io_mask & EV_READ)) conn_close(c);
}

static void conn_resume(ev_loop *loop, void *arg)
{
	conn *c = arg;
	if (!c->dead && c->state == ST_HEAD) conn_process(c);
}

/* ------------------------------------------------------------ accepting */

static conn *conn_new(httpd *s)
{
	conn *c = s->free_conns;
	if (c) {
		s->free_conns = c->next;
		s->nfree--;
	} else {
		c = calloc(1, sizeof(*c));
		if (!c) return NULL;
		c->hdrs = calloc(s->lim.max_headers, sizeof(http_header));
		if (!c->hdrs) {
			free(c);
			return NULL;
		}
		buf_init(&c->in, 0);
		buf_init(&c->out, s->lim.max_output_bytes);
		buf_init(&c->path_copy, 0);
	}
	http_header *h = c->hdrs;
	buf in = c->in, out = c->out, pc = c->path_copy;
	memset(c, 0, sizeof(*c));
	c->hdrs = h;
	c->in = in;
	c->out = out;
	c->path_copy = pc;
	c->s = s;
	return c;
}

static void listeners_set(httpd *s, int on)
{
	for (int i = 0; i < s->nlisten; i++)
		if (s->lfds[i] >= 0) ev_mod(s->loop, s->lfds[i], on ? EV_READ : EV_NONE);
	s->accept_paused = !on;
}

static void accept_resume_check(httpd *s)
{
	if (s->accept_paused && !s->draining && s->st.connections < s->lim.max_connections) listeners_set(s, 1);
}

static int64_t accept_unpause(ev_loop *loop, uint64_t id, void *arg)
{
	accept_resume_check(arg);
	return -1;
}

/* Makes fd (connected, non-blocking) a client connection, TLS with tc when
 * not NULL. Returns 0, or -1 with fd closed. */
static int conn_adopt(httpd *s, int fd, const net_addr *peer, tls_ctx *tc)
{
	conn *c = conn_new(s);
	if (!c) {
		close(fd);
		return -1;
	}
	net_set_nodelay(fd, 1);
	c->fd = fd;
	if (peer) c->peer = *peer;
	if (tc) {
		c->tls = tls_conn_new(tc, fd, NULL);
		if (!c->tls) goto fail;
		c->handshaking = 1;
	}
	if (ev_set(s->loop, fd, EV_READ, conn_on_io, c) < 0) goto fail;
	c->io_mask = EV_READ;
	c->next = s->conns;
	if (s->conns) s->conns->prev = c;
	s->conns = c;
	s->st.connections++;
	s->st.accepted_total++;
	conn_next_request(c);
	conn_timer(c, c->handshaking ? s->lim.handshake_timeout_ms : s->lim.header_timeout_ms);
	return 0;
fail:
	tls_conn_free(c->tls);
	c->tls = NULL;
	c->handshaking = 0;
	close(fd);
	c->next = s->free_conns;
	s->free_conns = c;
	s->nfree++;
	return -1;
}

int httpd_adopt(httpd *s, int fd)
{
	return conn_adopt(s, fd, NULL, NULL);
}

static void on_accept(ev_loop *loop, int lfd, int mask, void *arg)
{
	httpd *s = arg;
	for (int i = 0; i < 64; i++) {
		if (s->st.connections >= s->lim.max_connections) {
			listeners_set(s, 0);
			return;
		}
		net_addr peer;
		int fd = net_accept(lfd, &peer);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return;
			log_ratelimited(LOG_WARN, "httpd: accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				listeners_set(s, 0);
				ev_timer_add(loop, 100, accept_unpause, s);
			}
			return;
		}
		tls_ctx *tc = NULL;
		for (int li = 0; li < s->nlisten; li++)
			if (s->lfds[li] == lfd) tc = s->ltls[li];
		if (conn_adopt(s, fd, &peer, tc) < 0) return;
	}
}

/* ------------------------------------------------------------ server */

httpd *httpd_new(ev_loop *loop, const httpd_limits *limits, httpd_handler *handler, void *arg)
{
	httpd *s = calloc(1, sizeof(*s));
	if (!s) return NULL;
	httpd_limits d;
	httpd_limits_default(&d);
	s->lim = d;
	if (limits) {
#define TAKE(f) \
	if (limits->f) s->lim.f = limits->f
		TAKE(max_header_bytes);
		TAKE(max_headers);
		TAKE(max_body_bytes);
		TAKE(header_timeout_ms);
		TAKE(body_timeout_ms);
		TAKE(keepalive_idle_ms);
		TAKE(send_timeout_ms);
		TAKE(max_connections);
		TAKE(max_output_bytes);
		TAKE(low_watermark_bytes);
		TAKE(handshake_timeout_ms);
		TAKE(max_concurrent_streams);
#undef TAKE
	}
	s->loop = loop;
	s->handler = handler;
	s->handler_arg = arg;
	buf_init(&s->scratch, 0);
	for (int i = 0; i < HTTPD_MAX_LISTENERS; i++) s->lfds[i] = -1;
	if (ev_before_sleep(loop, httpd_before_sleep, s) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

int httpd_listen(httpd *s, const char *addr, const net_listen_opts *opts, char *err, size_t err_len)
{
	if (s->nlisten == HTTPD_MAX_LISTENERS) {
		if (err) str_copy(err, "too many listeners", err_len);
		return -1;
	}
	net_addr a;
	if (net_addr_parse(addr, &a, err, err_len) < 0) return -1;
	int fd = net_listen(&a, opts, err, err_len);
	if (fd < 0) return -1;
	if (ev_set(s->loop, fd, s->accept_paused ? EV_NONE : EV_READ, on_accept, s) < 0) {
		if (err) str_copy(err, "cannot register the listener", err_len);
		close(fd);
		return -1;
	}
	s->lfds[s->nlisten] = fd;
	return s->nlisten++;
}

int httpd_port(const httpd *s, int i)
{
	if (i < 0 || i >= s->nlisten || s->lfds[i] < 0) return -1;
	net_addr a;
	if (net_local_addr(s->lfds[i], &a) < 0) return -1;
	return net_addr_port(&a);
}

void httpd_stop_accepting(httpd *s)
{
	s->draining = 1;
	for (int i = 0; i < s->nlisten; i++) {
		if (s->lfds[i] < 0) continue;
		ev_del(s->loop, s->lfds[i]);
		close(s->lfds[i]);
		s->lfds[i] = -1;
	}
	conn *next;
	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_H2) h2_conn_goaway(c);
		else if (c->state == ST_HEAD && !buf_rlen(&c->in) && !buf_rlen(&c->out)) conn_close(c);
		else if (c->state != ST_DONE) c->req.keep_alive = 0;
	}
}

void httpd_free(httpd *s)
{
	if (!s) return;
	httpd_stop_accepting(s);
	while (s->conns) conn_close(s->conns);
	ev_defer_cancel(s->loop, httpd_reap, s);
	httpd_reap(s->loop, s); /* on_close fires now for requests in flight */
	ev_before_sleep_del(s->loop, httpd_before_sleep, s);
	while (s->free_conns) {
		conn *c = s->free_conns;
		s->free_conns = c->next;
		buf_free(&c->in);
		buf_free(&c->out);
		buf_free(&c->path_copy);
		free(c->hdrs);
		free(c);
	}
	for (int i = 0; i < HTTPD_MAX_LISTENERS; i++) tls_ctx_free(s->ltls[i]);
	buf_free(&s->scratch);
	free(s);
}

int httpd_set_tls(httpd *s, int i, tls_ctx *ctx)
{
	if (i < 0 || i >= s->nlisten) return -1;
	tls_ctx_free(s->ltls[i]); /* its live connections keep their reference */
	s->ltls[i] = ctx;
	return 0;
}

int httpd_is_tls(const httpd_req *r) { return r->c->tls != NULL; }

void httpd_get_stats(const httpd *s, httpd_stats *out) { *out = s->st; }
size_t httpd_connections(const httpd *s) { return s->st.connections; }
size_t httpd_in_flight(const httpd *s) { return s->st.in_flight; }

size_t httpd_busy(const httpd *s)
{
	size_t n = s->st.in_flight;
	/* A connection whose answers ended but whose bytes have not all gone:
	 * in its buffer, or still in an HTTP/2 session's frames (the last DATA and
	 * END_STREAM of a stream that ended, waiting to be written). */
	for (const conn *c = s->conns; c; c = c->next)
		if (!c->in_flight && (buf_rlen(&c->out) || h2_conn_wants_write(c))) n++;
	return n;
}

/* ------------------------------------------------------------ request accessors */

const char *httpd_method(const httpd_req *r) { return r->head.method; }
int httpd_method_is(const httpd_req *r, const char *m) { return !strcmp(r->head.method, m); }
int httpd_method_or_405(httpd_req *r, const char *m)
{
	if (httpd_method_is(r, m) || (!strcmp(m, "GET") && httpd_method_is(r, "HEAD"))) return 1;
	httpd_error(r, 405, "Method Not Allowed", NULL);
	return 0;
}
const char *httpd_target(const httpd_req *r) { return r->head.target; }
const char *httpd_path(const httpd_req *r) { return r->path; }
const char *httpd_query(const httpd_req *r) { return r->query; }
int httpd_minor_version(const httpd_req *r) { return r->head.minor_version; }
const char *httpd_body(const httpd_req *r, size_t *len)
{
	if (len) *len = r->body_len;
	return r->body_len ? r->body : "";
}
void httpd_set_user(httpd_req *r, void *user) { r->user = user; }
void *httpd_user(const httpd_req *r) { return r->user; }
ev_loop *httpd_loop(const httpd_req *r) { return r->c->s->loop; }
int httpd_keep_alive(const httpd_req *r) { return r->keep_alive && !r->c->s->draining; }
int httpd_response_started(const httpd_req *r) { return r->started; }
const net_addr *httpd_peer_addr(const httpd_req *r) { return &r->c->peer; }

const char *httpd_peer(const httpd_req *r)
{
	conn *c = r->c;
	if (!c->peer_str[0]) net_addr_str(&c->peer, c->peer_str, sizeof(c->peer_str));
	return c->peer_str;
}

const char *httpd_header(const httpd_req *r, const char *name, size_t *len)
{
	const http_header *h = http_find_header(r->head.headers, r->head.num_headers, name);
	if (!h) return NULL;
	if (len) *len = h->value_len;
	return h->value;
}

int httpd_bearer_is(const httpd_req *r, const char *key)
{
	size_t n = 0, k = strlen(key);
	const char *h = httpd_header(r, "authorization", &n);
	if (!h || n != 7 + k || !str_ieq(h, 7, "Bearer ")) return 0;
	unsigned char diff = 0;
	for (size_t i = 0; i < k; i++) diff |= (unsigned char)(h[7 + i] ^ key[i]);
	return diff == 0;
}

const http_header *httpd_headers(const httpd_req *r, size_t *n)
{
	*n = r->head.num_headers;
	return r->head.headers;
}

/* ------------------------------------------------------------ answers */

static int req_usable(const httpd_req *r)
{
	return r->c && !r->c->dead && (r->h2 || r->c->in_flight) && !r->ended;
}

/* Ends the response: the request is consumed; the next one may start. */
static void req_end(httpd_req *r)
{
	conn *c = r->c;
	r->ended = 1;
	conn_request_done(c);
	if (!c->in_handler && c->state == ST_HEAD && buf_rlen(&c->in)) ev_defer(c->s->loop, conn_resume, c);
}

static int head_write(httpd_req *r, int status, const char *ctype, const char *extra, int64_t clen)
{
	conn *c = r->c;
	if (!r->keep_alive || c->s->draining) r->keep_alive = 0;
	if (clen < 0 && r->head.minor_version == 0 && !http_status_bodiless(status)) {
		/* HTTP/1.0 has no chunked coding: delimit by closing. */
		r->until_close = 1;
		r->keep_alive = 0;
		if (buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status)) < 0 ||
		    (ctype && buf_printf(&c->out, "Content-Type: %s\r\n", ctype) < 0) ||
		    buf_printf(&c->out, "Connection: close\r\n%s\r\n", extra ? extra : "") < 0)
			return -1;
		return 0;
	}
	return http_write_response_head(&c->out, status, ctype, clen, r->keep_alive, extra);
}

int httpd_respond(httpd_req *r, int status, const char *content_type,
		  const char *extra_headers, const void *body, size_t len)
{
	if (r->h2) return h2_respond(r, status, content_type, extra_headers, body, len);
	if (!req_usable(r) || r->started) return -1;
	conn *c = r->c;
	r->started = 1;
	int nobody = r->head_only || http_status_bodiless(status);
	if (head_write(r, status, content_type, extra_headers, (int64_t)len) < 0 ||
	    (!nobody && len && buf_append(&c->out, body, len) < 0)) {
		conn_close(c);
		return -1;
	}
	req_end(r);
	return 0;
}

int httpd_error(httpd_req *r, int status, const char *message, const char *param)
{
	if (!req_usable(r)) return -1;
	httpd *s = r->c->s;
	buf_reset(&s->scratch);
	oai_error_write(&s->scratch, status, message, param);
	return httpd_respond(r, status, "application/json", NULL, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
}

int httpd_stream_start(httpd_req *r, int status, const char *content_type,
		       const char *extra_headers, int64_t content_length)
{
	if (r->h2) return h2_stream_start(r, status, content_type, extra_headers, content_length);
	if (!req_usable(r) || r->started) return -1;
	r->started = 1;
	if (http_status_bodiless(status)) {
		/* No framing, no body, no last chunk: the head is the whole answer
		 * (what an upstream's 204 or 304 relayed becomes). */
		r->head_only = 1;
		content_length = -1;
	}
	r->chunked = content_length < 0 && r->head.minor_version >= 1 && !r->head_only;
	r->declared_len = content_length;
	r->sent_len = 0;
	if (head_write(r, status, content_type, extra_headers, content_length) < 0) {
		conn_close(r->c);
		return -1;
	}
	conn_queue_flush(r->c);
	return 0;
}

int httpd_stream_write(httpd_req *r, const void *data, size_t len)
{
	if (r->h2) return h2_stream_write(r, data, len);
	if (!req_usable(r) || !r->started) return -1;
	conn *c = r->c;
	if (!len || r->head_only) return 0;
	int rc;
	if (r->chunked) {
		rc = http_write_chunk(&c->out, data, len);
	} else {
		if (r->declared_len >= 0 && r->sent_len + len > (uint64_t)r->declared_len) return -1;
		rc = buf_append(&c->out, data, len);
	}
	if (rc < 0) {
		conn_close(c); /* output cap: the reader is not keeping up */
		return -1;
	}
	r->sent_len += len;
	conn_queue_flush(c);
	return 0;
}

size_t httpd_stream_pending(const httpd_req *r)
{
	if (r->h2) return h2_stream_pending(r);
	return r->c && !r->c->dead ? buf_rlen(&r->c->out) : 0;
}

void httpd_on_drain(httpd_req *r, httpd_req_fn *fn, void *arg)
{
	r->on_drain = fn;
	r->on_drain_arg = arg;
	if (fn && r->c && !r->c->dead) conn_queue_flush(r->c); /* HTTP/2 too: the flush checks each stream */
}

int httpd_stream_end(httpd_req *r)
{
	if (r->h2) return h2_stream_end(r);
	if (!req_usable(r) || !r->started) return -1;
	conn *c = r->c;
	if (r->chunked && !r->head_only && http_write_last_chunk(&c->out) < 0) {
		conn_close(c);
		return -1;
	}
	req_end(r);
	return 0;
}

void httpd_on_close(httpd_req *r, httpd_req_fn *fn, void *arg)
{
	r->on_close = fn;
	r->on_close_arg = arg;
}

/* ------------------------------------------------------------ listener and abort faults */

int httpd_unlisten(httpd *s, int i, int close_idle)
{
	if (i < 0 || i >= s->nlisten || s->lfds[i] < 0) return -1;
	if (net_local_addr(s->lfds[i], &s->unlistened[i]) < 0) return -1;
	ev_del(s->loop, s->lfds[i]);
	close(s->lfds[i]);
	s->lfds[i] = -1;
	if (!close_idle) return 0;
	conn *next;
	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_HEAD && !buf_rlen(&c->in) && !buf_rlen(&c->out)) conn_close(c);
	}
	return 0;
}

int httpd_relisten(httpd *s, int i, char *err, size_t err_len)
{
	if (i < 0 || i >= s->nlisten || s->lfds[i] >= 0 || !s->unlistened[i].len) {
		if (err) str_copy(err, "no such closed listener", err_len);
		return -1;
	}
	int fd = net_listen(&s->unlistened[i], NULL, err, err_len);
	if (fd < 0) return -1;
	if (ev_set(s->loop, fd, s->accept_paused ? EV_NONE : EV_READ, on_accept, s) < 0) {
		if (err) str_copy(err, "cannot register the listener", err_len);
		close(fd);
		return -1;
	}
	s->lfds[i] = fd;
	return 0;
}

int httpd_abort(httpd_req *r)
{
	if (r->h2) return h2_abort(r);
	if (!req_usable(r)) return -1;
	conn *c = r->c;
	conn_send(c); /* what the socket takes now; the rest is dropped */
	conn_close(c);
	return 0;
}

/* ------------------------------------------------------------ for httpd_h2.c */

void httpd_conn_close(conn *c) { conn_close(c); }
void httpd_conn_queue_flush(conn *c) { conn_queue_flush(c); }
void httpd_conn_timer(conn *c, uint64_t after_ms) { conn_timer(c, after_ms); }
void httpd_conn_update_io(conn *c) { conn_update_io(c); }
int httpd_conn_send(conn *c) { return conn_send(c); }
