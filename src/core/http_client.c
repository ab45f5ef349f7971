/*
 * http_client.c — the HTTP/1.1 client of http_client.h.
 *
 * An hc_conn is one TCP connection: idle in its pool, or carrying one hc_req.
 * The request keeps its serialized head and points at the caller's body, so
 * it can be sent again on a fresh connection when a pooled one turns out
 * stale, and a proxy's every attempt sends the one body the client gave it:
 * a large body is never copied (head and body leave together: writev, one
 * sendmsg when batched, two TLS writes); one up to HC_BODY_COPY_MAX_BYTES is
 * appended to the head, which costs less than a second piece. Objects are
 * freed from ev_defer, so a callback that cancels its own request never finds
 * memory freed under the code that called it.
 *
 * On a loop with batched I/O (ev_batch_enable), a request's first send goes
 * through ev_io_send (ev_io_send2 with a body of its own): the sends of every request started in a loop pass (a
 * pool's scrapes, fired by one timer run) leave in one system call before the
 * loop sleeps. Reads stay direct: a response is parsed right after its read,
 * while its bytes are in the cache; batched reads of many connections made
 * the gateway's scraping dearer, not cheaper (bench/routing/RESULTS.md).
 */
#include "core/http_client.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HC_MAX_HEAD_BYTES (64 * 1024)
#define HC_MAX_HEADERS 100
#define HC_BODY_COPY_MAX_BYTES 4096
#define HC_READ_CHUNK 16384
#define HC_IDLE_MAX_AGE_MS 30000

typedef struct hc_conn hc_conn;

struct hc_conn {
	hc_pool *pool;
	int fd;
	int connecting;
	int closed;
	int reused; /* taken from the idle list */
	int io_mask;
	uint64_t send_op; /* the queued batched send (ev_io_send), 0 = none */
	tls_conn *tls;    /* NULL on a plaintext pool */
	int handshaking;  /* connected, TLS handshake in progress (still "connecting") */
	uint64_t idle_since_ms;
	buf in;
	hc_req *req;   /* the request on this connection, or NULL */
	hc_conn *next; /* idle list */
};

enum { RS_HEAD,
       RS_BODY,
       RS_DONE };

struct hc_req {
	hc_pool *pool;
	hc_conn *conn;
	hc_callbacks cb;
	void *arg;
	hc_timeouts to;
	buf out;          /* the request head (and a body up to HC_BODY_COPY_MAX_BYTES) */
	const char *body; /* the caller's body, not copied (NULL when in out) */
	size_t body_len;
	size_t sent; /* of out, then of body */
	char method[16];
	int state;
	int status;
	int received_any;
	int retried;
	int paused;
	int finished;    /* on_done called or cancelled */
	int pending_err; /* failed to start: reported from the loop */
	http_body_kind kind;
	uint64_t remaining; /* HTTP_BODY_LENGTH */
	http_chunked chunk;
	int keep_alive;
	uint64_t total_timer, idle_timer;
	hc_req *prev, *next; /* pool's active list */
};

struct hc_pool {
	ev_loop *loop;
	char hostport[256];
	net_addr addr;
	size_t max_idle;
	hc_conn *idle;
	size_t nidle;
	hc_req *active;
	size_t nactive;
	uint64_t connects_total;
	uint64_t body_bytes_copied_total; /* request body bytes copied into request buffers */
	tls_ctx *tls;                     /* our reference; NULL = plaintext */
	char server_name[256];
	char tls_err[200]; /* the last handshake failure */
};

static void req_fail(hc_req *r, int err);
static void conn_on_io(ev_loop *loop, int fd, int mask, void *arg);

const char *hc_err_name(int err)
{
	static const char *const names[] = {
		"ok",
		"connect_refused",
		"connect_failed",
		"connect_timeout",
		"reset",
		"eof",
		"idle_timeout",
		"total_timeout",
		"malformed",
		"too_large",
		"no_memory",
		"aborted",
		"tls",
	};
	return err >= 0 && err < (int)ARRAY_LEN(names) ? names[err] : "unknown";
}

/* ------------------------------------------------------------ connections */

/* c's input storage goes back to the loop's spare blocks when it is one. */
static void conn_in_release(hc_conn *c)
{
	size_t cap = 0;
	char *d = buf_take_storage(&c->in, &cap);
	if (d && cap == EV_IOBUF_BYTES) ev_iobuf_put(c->pool->loop, d);
	else free(d);
	buf_free(&c->in);
}

static void conn_free_cb(ev_loop *loop, void *arg)
{
	hc_conn *c = arg;
	conn_in_release(c);
	free(c);
}

static void conn_close(hc_conn *c)
{
	if (c->closed) return;
	c->closed = 1;
	ev_io_cancel(c->pool->loop, c->send_op);
	c->send_op = 0;
	ev_del(c->pool->loop, c->fd);
	tls_conn_free(c->tls);
	c->tls = NULL;
	close(c->fd);
	c->fd = -1;
	if (ev_defer(c->pool->loop, conn_free_cb, c) < 0) {
		/* Leak rather than free under a caller: out of memory anyway. */
		log_ratelimited(LOG_ERROR, "http_client: out of memory freeing a connection");
	}
}

static void conn_set_io(hc_conn *c, int mask)
{
	if (c->closed || mask == c->io_mask) return;
	if (ev_mod(c->pool->loop, c->fd, mask) == 0) c->io_mask = mask;
}

static void idle_on_io(ev_loop *loop, int fd, int mask, void *arg)
{
	/* Data or EOF on an idle connection: it is no longer usable. */
	hc_conn *c = arg;
	hc_pool *p = c->pool;
	for (hc_conn **pp = &p->idle; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			p->nidle--;
			break;
		}
	}
	conn_close(c);
}

static void pool_put(hc_pool *p, hc_conn *c)
{
	c->req = NULL;
	if (p->nidle >= p->max_idle || buf_rlen(&c->in)) {
		conn_close(c);
		return;
	}
	/* An idle connection gives its (empty) input block back to the loop: the
	 * next read on any connection then gets the block given back last, still
	 * in the cache, instead of its own, untouched since its last response.
	 * 100 scraped endpoints kept 3.2 MB of buffers, each read into cold memory. */
	conn_in_release(c);
	if (ev_set(p->loop, c->fd, EV_READ, idle_on_io, c) < 0) {
		conn_close(c);
		return;
	}
	c->io_mask = EV_READ;
	c->idle_since_ms = ev_now_ms(p->loop);
	c->next = p->idle;
	p->idle = c;
	p->nidle++;
}

static hc_conn *pool_take(hc_pool *p)
{
	while (p->idle) {
		hc_conn *c = p->idle;
		p->idle = c->next;
		p->nidle--;
		c->next = NULL;
		if (ev_now_ms(p->loop) - c->idle_since_ms > HC_IDLE_MAX_AGE_MS) {
			conn_close(c);
			continue;
		}
		c->reused = 1;
		return c;
	}
	return NULL;
}

static hc_conn *conn_open(hc_pool *p, int *err)
{
	hc_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		*err = HC_ERR_NOMEM;
		return NULL;
	}
	buf_init(&c->in, 0);
	c->pool = p;
	c->fd = net_connect(&p->addr);
	if (c->fd < 0) {
		*err = errno == ECONNREFUSED ? HC_ERR_CONNECT_REFUSED : HC_ERR_CONNECT;
		free(c);
		return NULL;
	}
	p->connects_total++;
	net_set_nodelay(c->fd, 1);
	c->connecting = 1;
	if (ev_set(p->loop, c->fd, EV_WRITE, conn_on_io, c) < 0) {
		close(c->fd);
		free(c);
		*err = HC_ERR_NOMEM;
		return NULL;
	}
	c->io_mask = EV_WRITE;
	return c;
}

/* ------------------------------------------------------------ requests */

/* Bytes of r on the wire: head and body. */
static size_t req_len(const hc_req *r) { return buf_rlen(&r->out) + r->body_len; }

static void req_free_cb(ev_loop *loop, void *arg)
{
	hc_req *r = arg;
	buf_free(&r->out);
	free(r);
}

static void req_unlink(hc_req *r)
{
	hc_pool *p = r->pool;
	if (r->prev) r->prev->next = r->next;
	else p->active = r->next;
	if (r->next) r->next->prev = r->prev;
	r->prev = r->next = NULL;
	p->nactive--;
}

static void req_timers_clear(hc_req *r)
{
	ev_loop *l = r->pool->loop;
	if (r->total_timer) ev_timer_del(l, r->total_timer);
	if (r->idle_timer) ev_timer_del(l, r->idle_timer);
	r->total_timer = r->idle_timer = 0;
}

/* Ends r: the connection is pooled (ok and reusable) or closed, on_done runs,
 * the request is freed from the loop. */
static void req_finish(hc_req *r, int err)
{
	if (r->finished) return;
	r->finished = 1;
	req_timers_clear(r);
	req_unlink(r);
	hc_conn *c = r->conn;
	r->conn = NULL;
	if (c) {
		if (err == HC_OK && r->keep_alive && r->sent == req_len(r) && !c->closed && !c->send_op)
			pool_put(r->pool, c);
		else conn_close(c);
	}
	if (r->cb.on_done) r->cb.on_done(r, err, r->arg);
	ev_defer(r->pool->loop, req_free_cb, r);
}

static int64_t on_idle_timer(ev_loop *loop, uint64_t id, void *arg)
{
	hc_req *r = arg;
	r->idle_timer = 0;
	if (r->pending_err) {
		req_finish(r, r->pending_err);
		return -1;
	}
	req_fail(r, r->conn && r->conn->connecting ? HC_ERR_CONNECT_TIMEOUT : HC_ERR_IDLE_TIMEOUT);
	return -1;
}

static int64_t on_total_timer(ev_loop *loop, uint64_t id, void *arg)
{
	hc_req *r = arg;
	r->total_timer = 0;
	req_fail(r, HC_ERR_TOTAL_TIMEOUT);
	return -1;
}

/* The idle (or connect) timer, armed ms from now. Not armed when neither the
 * idle nor the connect timeout is shorter than the total one (scrapes and
 * health checks give all three the same value): the total timer, added first,
 * would fire first anyway, and one timer per request costs less than two plus
 * a re-arm per read. The zero-delay report of a failed start always arms. */
static void idle_timer_arm(hc_req *r, uint64_t ms)
{
	if (ms && r->to.idle_ms >= r->to.total_ms && r->to.connect_ms >= r->to.total_ms) return;
	ev_loop *l = r->pool->loop;
	if (r->idle_timer && ev_timer_set(l, r->idle_timer, ms) == 0) return;
	r->idle_timer = ev_timer_add(l, ms, on_idle_timer, r);
}

/* Attaches r to a connection (pooled when one is idle and allow_pooled). */
static int req_attach(hc_req *r, int allow_pooled)
{
	hc_pool *p = r->pool;
	hc_conn *c = allow_pooled ? pool_take(p) : NULL;
	int err = 0;
	if (!c) c = conn_open(p, &err);
	if (!c) return err;
	if (c->reused) {
		/* Read interest only: the request is sent at once (req_send), which
		 * asks for EV_WRITE only if the socket is full. An idle connection
		 * already reads, so this costs no system call. */
		if (ev_set(p->loop, c->fd, EV_READ, conn_on_io, c) < 0) {
			conn_close(c);
			return HC_ERR_NOMEM;
		}
		c->io_mask = EV_READ;
	}
	c->req = r;
	r->conn = c;
	r->sent = 0;
	r->state = RS_HEAD;
	idle_timer_arm(r, c->connecting ? r->to.connect_ms : r->to.idle_ms);
	return 0;
}

/* A failure: retried once on a fresh connection when a pooled one failed
 * before any response byte; otherwise the end. */
static void req_fail(hc_req *r, int err)
{
	if (r->finished) return;
	hc_conn *c = r->conn;
	if (c && c->reused && !r->received_any && !r->retried &&
	    (err == HC_ERR_RESET || err == HC_ERR_EOF)) {
		r->retried = 1;
		c->req = NULL;
		r->conn = NULL;
		conn_close(c);
		int e = req_attach(r, 0);
		if (e == 0) return;
		err = e;
	}
	req_finish(r, err);
}

static void req_send(hc_req *r);

/* A batched send is done: res bytes went out, or -errno. */
static void conn_sent(ev_loop *loop, long res, void *arg)
{
	hc_conn *c = arg;
	hc_req *r = c->req;
	c->send_op = 0;
	if (!r || r->finished) return;
	if (res > 0) {
		r->sent += (size_t)res;
		req_send(r); /* the rest, if any, directly */
		return;
	}
	if (res == -EAGAIN || res == -EWOULDBLOCK || res == -EINTR) {
		conn_set_io(c, (r->paused ? 0 : EV_READ) | EV_WRITE);
		return;
	}
	req_fail(r, HC_ERR_RESET);
}

/* The unsent part of r: up to two pieces (the head's rest, the body's rest);
 * returns how many. */
static int req_unsent(const hc_req *r, struct iovec iov[2])
{
	size_t head = buf_rlen(&r->out);
	int n = 0;
	if (r->sent < head) iov[n++] = (struct iovec){buf_rptr(&r->out) + r->sent, head - r->sent};
	size_t off = r->sent > head ? r->sent - head : 0;
	if (off < r->body_len) iov[n++] = (struct iovec){(char *)r->body + off, r->body_len - off};
	return n;
}

static void req_send(hc_req *r)
{
	hc_conn *c = r->conn;
	if (c->send_op) return; /* queued: its completion goes on */
	struct iovec iov[2];
	int n;
	if (c->tls) {
		while ((n = req_unsent(r, iov)) > 0) {
			ssize_t w = tls_write(c->tls, iov[0].iov_base, iov[0].iov_len);
			if (w > 0) {
				r->sent += (size_t)w;
				continue;
			}
			if (errno == EAGAIN) {
				conn_set_io(c, (r->paused ? 0 : EV_READ) | EV_WRITE | tls_want(c->tls));
				return;
			}
			req_fail(r, HC_ERR_RESET);
			return;
		}
		conn_set_io(c, r->paused ? 0 : EV_READ);
		return;
	}
	if (r->sent == 0 && (n = req_unsent(r, iov)) > 0) {
		ev_loop *l = r->pool->loop;
		c->send_op = n == 1 ? ev_io_send(l, c->fd, iov[0].iov_base, iov[0].iov_len, conn_sent, c)
				    : ev_io_send2(l, c->fd, iov[0].iov_base, iov[0].iov_len, iov[1].iov_base,
						  iov[1].iov_len, conn_sent, c);
		if (c->send_op) return;
	}
	while ((n = req_unsent(r, iov)) > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w > 0) {
			r->sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR) continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_set_io(c, (r->paused ? 0 : EV_READ) | EV_WRITE);
			return;
		}
		req_fail(r, HC_ERR_RESET);
		return;
	}
	conn_set_io(c, r->paused ? 0 : EV_READ);
}

/* Delivers body bytes; returns 0 to go on, -1 when r ended or was cancelled. */
static int deliver(hc_req *r, const char *data, size_t n)
{
	if (!n || !r->cb.on_body) return r->finished ? -1 : 0;
	r->cb.on_body(r, data, n, r->arg);
	return r->finished ? -1 : 0;
}

/* Parses what c->in holds. */
static void conn_process(hc_conn *c)
{
	hc_req *r = c->req;
	while (r && !r->finished && buf_rlen(&c->in)) {
		if (r->state == RS_HEAD) {
			http_header hdrs[HC_MAX_HEADERS];
			http_response_head h = {.headers = hdrs, .num_headers = HC_MAX_HEADERS};
			int n = http_parse_response(buf_rptr(&c->in), buf_rlen(&c->in), &h);
			if (n == HTTP_INCOMPLETE) {
				if (buf_rlen(&c->in) > HC_MAX_HEAD_BYTES) req_fail(r, HC_ERR_TOO_LARGE);
				return;
			}
			if (n < 0) {
				req_fail(r, n == HTTP_TOO_MANY_HEADERS ? HC_ERR_TOO_LARGE : HC_ERR_MALFORMED);
				return;
			}
			/* Statuses are 100..599 (RFC 9110 15); a 101 answers an Upgrade,
			 * which is never sent: either is a broken upstream. */
			if (h.status > 599 || h.status == 101) {
				req_fail(r, HC_ERR_MALFORMED);
				return;
			}
			if (h.status < 200) {
				buf_consume(&c->in, (size_t)n); /* 100 Continue, 103 Early Hints: interim */
				continue;
			}
			uint64_t len = 0;
			if (http_body_framing(h.headers, h.num_headers, 1, h.status, r->method, strlen(r->method),
					      &r->kind, &len) < 0) {
				req_fail(r, HC_ERR_MALFORMED);
				return;
			}
			r->status = h.status;
			r->remaining = len;
			r->keep_alive = http_keep_alive(h.minor_version, h.headers, h.num_headers) &&
					r->kind != HTTP_BODY_UNTIL_CLOSE;
			if (r->kind == HTTP_BODY_CHUNKED) http_chunked_init(&r->chunk);
			r->state = RS_BODY;
			if (r->cb.on_head && r->cb.on_head(r, h.status, h.headers, h.num_headers, r->arg) < 0) {
				req_finish(r, HC_ERR_ABORTED);
				return;
			}
			if (r->finished) return;
			buf_consume(&c->in, (size_t)n);
			if (r->kind == HTTP_BODY_NONE || (r->kind == HTTP_BODY_LENGTH && len == 0)) {
				req_finish(r, HC_OK);
				return;
			}
			continue;
		}
		/* RS_BODY */
		size_t avail = buf_rlen(&c->in);
		if (r->kind == HTTP_BODY_LENGTH) {
			size_t n = (size_t)MIN((uint64_t)avail, r->remaining);
			r->remaining -= n;
			if (deliver(r, buf_rptr(&c->in), n) < 0) return;
			buf_consume(&c->in, n);
			if (r->remaining == 0) {
				if (buf_rlen(&c->in)) r->keep_alive = 0; /* extra bytes: not reusable */
				req_finish(r, HC_OK);
			}
			return;
		}
		if (r->kind == HTTP_BODY_UNTIL_CLOSE) {
			if (deliver(r, buf_rptr(&c->in), avail) < 0) return;
			buf_consume(&c->in, avail);
			return;
		}
		/* chunked, decoded in place */
		size_t n = avail;
		long rc = http_chunked_decode(&r->chunk, buf_rptr(&c->in), &n);
		if (rc == HTTP_MALFORMED) {
			req_fail(r, HC_ERR_MALFORMED);
			return;
		}
		if (deliver(r, buf_rptr(&c->in), n) < 0) return;
		if (rc == HTTP_INCOMPLETE) {
			buf_reset(&c->in);
			return;
		}
		if (rc > 0) r->keep_alive = 0;
		buf_reset(&c->in);
		req_finish(r, HC_OK);
		return;
	}
}

static void conn_read(hc_conn *c)
{
	hc_req *r = c->req;
	if (!c->in.data) buf_attach(&c->in, ev_iobuf_get(c->pool->loop), EV_IOBUF_BYTES);
	char *dst = buf_space(&c->in, HC_READ_CHUNK);
	if (!dst) {
		req_fail(r, HC_ERR_NOMEM);
		return;
	}
	ssize_t n = c->tls ? tls_read(c->tls, dst, c->in.cap - c->in.len - 1) : read(c->fd, dst, c->in.cap - c->in.len - 1);
	if (n > 0) {
		buf_commit(&c->in, (size_t)n);
		r->received_any = 1;
		if (!r->paused) idle_timer_arm(r, r->to.idle_ms);
		conn_process(c);
		/* Bytes OpenSSL decrypted already never wake the poller: read on
		 * while this request still wants them. */
		if (c->tls && !c->closed && c->req == r && !r->finished && !r->paused && tls_pending(c->tls))
			conn_read(c);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (c->tls && tls_want(c->tls) == EV_WRITE) conn_set_io(c, EV_READ | EV_WRITE);
		return;
	}
	if (n == 0 && r->state == RS_BODY && r->kind == HTTP_BODY_UNTIL_CLOSE) {
		r->keep_alive = 0;
		req_finish(r, HC_OK);
		return;
	}
	req_fail(r, n == 0 ? HC_ERR_EOF : HC_ERR_RESET);
}

static void conn_on_io(ev_loop *loop, int fd, int mask, void *arg)
{
	hc_conn *c = arg;
	hc_req *r = c->req;
	if (!r || c->closed) {
		conn_close(c);
		return;
	}
	if (c->connecting) {
		if (!c->handshaking) {
			if (!(mask & (EV_WRITE | EV_ERROR))) return;
			int e = net_connect_result(fd);
			if (e) {
				/* A fresh connection: no retry, the error is the upstream's. */
				req_finish(r, e == ECONNREFUSED ? HC_ERR_CONNECT_REFUSED : HC_ERR_CONNECT);
				return;
			}
			if (c->pool->tls) {
				c->tls = tls_conn_new(c->pool->tls, c->fd, c->pool->server_name);
				if (!c->tls) {
					req_finish(r, HC_ERR_NOMEM);
					return;
				}
				c->handshaking = 1;
			}
		}
		if (c->handshaking) {
			int h = tls_handshake(c->tls);
			if (h == 0) {
				conn_set_io(c, tls_want(c->tls));
				return;
			}
			if (h < 0) {
				str_copy(c->pool->tls_err, tls_error(c->tls), sizeof(c->pool->tls_err));
				log_ratelimited(LOG_WARN, "http_client: TLS to %s: %s", c->pool->hostport, tls_error(c->tls));
				req_finish(r, HC_ERR_TLS);
				return;
			}
			c->handshaking = 0;
		}
		c->connecting = 0;
		idle_timer_arm(r, r->to.idle_ms);
		req_send(r);
		return;
	}
	if ((mask & EV_WRITE) && r->sent < req_len(r)) {
		req_send(r);
		if (r->finished || c->req != r) return;
	}
	if (mask & EV_READ) conn_read(c);
}

hc_req *hc_request(hc_pool *p, const char *method, const char *target, const char *extra_headers,
		   const void *body, size_t body_len, const hc_callbacks *cb, void *arg,
		   const hc_timeouts *timeouts)
{
	hc_req *r = calloc(1, sizeof(*r));
	if (!r) return NULL;
	r->pool = p;
	r->cb = *cb;
	r->arg = arg;
	r->to.connect_ms = timeouts && timeouts->connect_ms ? timeouts->connect_ms : 5000;
	r->to.idle_ms = timeouts && timeouts->idle_ms ? timeouts->idle_ms : 60000;
	r->to.total_ms = timeouts && timeouts->total_ms ? timeouts->total_ms : 300000;
	str_copy(r->method, method, sizeof(r->method));
	buf_init(&r->out, 0);
	int needs_len = body_len > 0 || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
	if (http_write_request_head(&r->out, method, target, p->hostport, extra_headers,
				    needs_len ? (int64_t)body_len : -1) < 0 ||
	    (body_len && body_len <= HC_BODY_COPY_MAX_BYTES && buf_append(&r->out, body, body_len) < 0)) {
		buf_free(&r->out);
		free(r);
		return NULL;
	}
	if (body_len > HC_BODY_COPY_MAX_BYTES) {
		r->body = body;
		r->body_len = body_len;
	} else {
		p->body_bytes_copied_total += body_len;
	}
	r->next = p->active;
	if (p->active) p->active->prev = r;
	p->active = r;
	p->nactive++;
	r->total_timer = ev_timer_add(p->loop, r->to.total_ms, on_total_timer, r);
	int e = req_attach(r, 1);
	if (e) {
		/* Report from the loop, never from inside hc_request. */
		r->state = RS_DONE;
		r->pending_err = e;
		idle_timer_arm(r, 0);
		r->conn = NULL;
		return r;
	}
	if (!r->conn->connecting) req_send(r);
	return r;
}

void hc_cancel(hc_req *r)
{
	if (!r || r->finished) return;
	r->finished = 1;
	req_timers_clear(r);
	req_unlink(r);
	if (r->conn) {
		r->conn->req = NULL;
		conn_close(r->conn);
		r->conn = NULL;
	}
	ev_defer(r->pool->loop, req_free_cb, r);
}

void hc_pause(hc_req *r)
{
	if (!r || r->finished || r->paused) return;
	r->paused = 1;
	if (r->idle_timer) ev_timer_del(r->pool->loop, r->idle_timer);
	r->idle_timer = 0;
	if (r->conn && !r->conn->connecting)
		conn_set_io(r->conn, r->sent < req_len(r) ? EV_WRITE : 0);
}

void hc_resume(hc_req *r)
{
	if (!r || r->finished || !r->paused) return;
	r->paused = 0;
	if (r->conn && !r->conn->connecting) {
		conn_set_io(r->conn, EV_READ | (r->sent < req_len(r) ? EV_WRITE : 0));
		idle_timer_arm(r, r->to.idle_ms);
	}
}

int hc_received_any(const hc_req *r) { return r->received_any; }
int hc_status(const hc_req *r) { return r->status; }

int hc_content_length(const hc_req *r, uint64_t *len)
{
	if (r->kind != HTTP_BODY_LENGTH) return 0;
	*len = r->remaining;
	return 1;
}
void *hc_arg(const hc_req *r) { return r->arg; }

/* ------------------------------------------------------------ pools */

hc_pool *hc_pool_new(ev_loop *loop, const char *hostport, size_t max_idle_conns, char *err, size_t err_len)
{
	hc_pool *p = calloc(1, sizeof(*p));
	if (!p) return NULL;
	if (net_addr_parse(hostport, &p->addr, err, err_len) < 0) {
		free(p);
		return NULL;
	}
	str_copy(p->hostport, hostport, sizeof(p->hostport));
	p->loop = loop;
	p->max_idle = max_idle_conns;
	return p;
}

void hc_pool_free(hc_pool *p)
{
	if (!p) return;
	while (p->active) hc_cancel(p->active);
	while (p->idle) {
		hc_conn *c = p->idle;
		p->idle = c->next;
		conn_close(c);
	}
	/* Deferred frees of requests and connections do not touch the pool. */
	tls_ctx_free(p->tls);
	free(p);
}

void hc_pool_set_tls(hc_pool *p, tls_ctx *ctx, const char *server_name)
{
	tls_ctx_free(p->tls);
	p->tls = ctx ? tls_ctx_ref(ctx) : NULL;
	if (server_name && *server_name) {
		str_copy(p->server_name, server_name, sizeof(p->server_name));
	} else {
		/* The host part of "host:port" / "[v6]:port". */
		const char *h = p->hostport, *colon = strrchr(h, ':');
		size_t n = colon ? (size_t)(colon - h) : strlen(h);
		if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
			h++;
			n -= 2;
		}
		if (n >= sizeof(p->server_name)) n = sizeof(p->server_name) - 1;
		memcpy(p->server_name, h, n);
		p->server_name[n] = 0;
	}
}

const char *hc_pool_tls_error(const hc_pool *p) { return p->tls_err; }

size_t hc_pool_idle(const hc_pool *p) { return p->nidle; }
size_t hc_pool_active(const hc_pool *p) { return p->nactive; }
uint64_t hc_pool_connects_total(const hc_pool *p) { return p->connects_total; }
uint64_t hc_pool_body_bytes_copied_total(const hc_pool *p) { return p->body_bytes_copied_total; }
const char *hc_pool_hostport(const hc_pool *p) { return p->hostport; }

/* ------------------------------------------------------------ hc_fetch */

typedef struct fetch_ctx {
	int done, err, status;
	buf *body;
	int body_overflow;
} fetch_ctx;

static void fetch_body(hc_req *r, const char *d, size_t n, void *arg)
{
	fetch_ctx *f = arg;
	if (f->body && buf_append(f->body, d, n) < 0) f->body_overflow = 1;
}

static void fetch_done(hc_req *r, int err, void *arg)
{
	fetch_ctx *f = arg;
	f->done = 1;
	f->err = err;
	f->status = hc_status(r);
}

int hc_fetch(const char *hostport, const char *method, const char *target, const char *extra_headers,
	     const void *body, size_t len, int timeout_ms, int *status, buf *resp_body)
{
	ev_loop *loop = ev_new();
	if (!loop) return HC_ERR_NOMEM;
	hc_pool *p = hc_pool_new(loop, hostport, 0, NULL, 0);
	if (!p) {
		ev_free(loop);
		return HC_ERR_CONNECT;
	}
	fetch_ctx f = {0};
	f.body = resp_body;
	hc_callbacks cb = {NULL, fetch_body, fetch_done};
	hc_timeouts to = {(uint64_t)timeout_ms, (uint64_t)timeout_ms, (uint64_t)timeout_ms};
	hc_req *r = hc_request(p, method, target, extra_headers, body, len, &cb, &f, &to);
	if (!r) f.done = 1, f.err = HC_ERR_NOMEM;
	uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms + 1000;
	while (!f.done && time_mono_ms() < deadline) ev_run_once(loop, 100);
	if (!f.done) f.err = HC_ERR_TOTAL_TIMEOUT;
	hc_pool_free(p);
	ev_run_once(loop, 0); /* deferred frees */
	ev_free(loop);
	if (status) *status = f.status;
	return f.err;
}
