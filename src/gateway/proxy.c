/*
 * proxy.c — one client request, sent to an endpoint of its pool and answered
 * back as the upstream produces it.
 *
 * A gw_call lives from routing to the end of the client's response. Each
 * attempt picks an endpoint not tried yet (picker.h, a `tried` bitmap as
 * nginx's), sends the client's body byte for byte on a keep-alive connection
 * (core/http_client), and relays the answer:
 *   - the head when it arrives (hop-by-hop headers dropped, x-infergate-endpoint
 *     and x-infergate-region added), then body bytes as they come, never
 *     buffered beyond the client's output buffer; above a watermark the upstream
 *     is paused until the client drains (backpressure both ways: the upstream's
 *     socket fills, the server slows down);
 *   - before anything reached the client, a failed attempt is tried again
 *     elsewhere as retry.h decides: an endpoint found dead (refused, reset,
 *     EOF before the head, down or ejected) while any other is left; a 5xx
 *     or a timeout while tries, the deadline and the retry budget allow;
 *     otherwise 502/504;
 *   - after the first byte nothing is replayed as it was: a resumable stream
 *     (resume.h) continues on another endpoint as a continuation of what the
 *     client has; any other broken stream ends with an error event and [DONE]
 *     (SSE) or is cut (others).
 * A client that leaves cancels the upstream request: its connection is closed,
 * never pooled, so the model server stops generating. An endpoint that goes
 * hard down (health.c) has its attempts in flight moved elsewhere at once
 * (proxy_endpoint_down): a cut-off server's open connection would otherwise
 * keep them waiting until the idle timeout.
 */
#include "gateway/gateway.h"
#include "gateway/proxy.h"
#include "gateway/access_log.h"
#include "gateway/health.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/admission.h"
#include "gateway/picker.h"
#include "gateway/resume.h"
#include "gateway/retry.h"
#include "gateway/rewrite.h"
#include "gateway/tenant.h"
#include "gateway/token_metrics.h"
#include "core/json.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/sse.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Pause the upstream while this much is waiting for the client. */
#define PROXY_HIGH_WATERMARK_BYTES (256 * 1024)
#define PROXY_FREE_CALLS_KEPT 1024

/* The admission queues are served this often while they hold a request, this
 * many verdicts at a time. */
#define PROXY_ADMISSION_TICK_MS 50
#define PROXY_ADMISSION_BATCH 256

static void attempt(gw_call *c);
static void call_end(gw_call *c);
static void resume_carry_out(gw_call *c, int err);
static void admission_carry_out(gw_call *c, const admission_verdict *v);

/* ------------------------------------------------------------ calls */

static gw_call *call_new(gw *g)
{
	gw_call *c = g->free_calls;
	if (c) {
		g->free_calls = c->next_free;
		g->n_free_calls--;
		buf hb = c->up_headers, rb = c->resp_headers, bw = c->body_rewritten;
		memset(c, 0, sizeof(*c));
		c->up_headers = hb;
		c->resp_headers = rb;
		c->body_rewritten = bw;
		buf_reset(&c->up_headers);
		buf_reset(&c->resp_headers);
		buf_reset(&c->body_rewritten);
	} else {
		c = calloc(1, sizeof(*c));
		if (!c) return NULL;
		buf_init(&c->up_headers, 64 * 1024);
		buf_init(&c->resp_headers, 64 * 1024);
		buf_init(&c->body_rewritten, 0); /* the body's own cap was checked by httpd */
	}
	c->g = g;
	return c;
}

static void call_recycle(gw_call *c)
{
	gw *g = c->g;
	if (g->n_free_calls < PROXY_FREE_CALLS_KEPT) {
		c->next_free = g->free_calls;
		g->free_calls = c;
		g->n_free_calls++;
		return;
	}
	buf_free(&c->up_headers);
	buf_free(&c->resp_headers);
	buf_free(&c->body_rewritten);
	free(c);
}

void proxy_free_calls(gw *g)
{
	while (g->free_calls) {
		gw_call *c = g->free_calls;
		g->free_calls = c->next_free;
		buf_free(&c->up_headers);
		buf_free(&c->resp_headers);
		buf_free(&c->body_rewritten);
		free(c);
	}
	g->n_free_calls = 0;
}

/* Lets go of this attempt's endpoint. */
static void release_endpoint(gw_call *c)
{
	gw_endpoint *e = c->ep;
	if (!e) return;
	if (c->ep_prev) c->ep_prev->ep_next = c->ep_next;
	else e->calls = c->ep_next;
	if (c->ep_next) c->ep_next->ep_prev = c->ep_prev;
	c->ep_next = c->ep_prev = NULL;
	c->ep = NULL;
	e->in_flight--;
	gw_endpoint_unref(e);
}

/* Makes e this attempt's endpoint (a ref taken, the call in e->calls). */
static void take_endpoint(gw_call *c, gw_endpoint *e)
{
	gw_endpoint_ref(e);
	c->ep = e;
	c->ep_prev = NULL;
	c->ep_next = e->calls;
	if (e->calls) e->calls->ep_prev = c;
	e->calls = c;
	e->in_flight++;
}

/* The call's tokens counted (token_metrics.h) and its tenant's limits
 * settled with them; its tenant let go. */
static void tenant_end(gw_call *c, uint64_t now)
{
	tenant_state *t = c->tenant;
	uint64_t used = token_metrics_observe(c->g, c, now);
	if (!t) return;
	if (c->tenant_taken) tenant_settle(t, now, c->reserve_tokens, used);
	tenant_count_end(t, c->status, used);
	if (t->m_prompt) {
		prom_add(t->m_prompt, c->usage.prompt_tokens > 0 ? (double)c->usage.prompt_tokens : 0);
		prom_add(t->m_completion, (double)(used - (c->usage.prompt_tokens > 0 ? (uint64_t)c->usage.prompt_tokens : 0)));
		prom_set(t->m_in_flight, t->in_flight);
	}
	c->tenant = NULL;
	tenant_unref(t);
}

/* The end of the call: counted, logged, recycled. The client side is done
 * (answered, or gone) and no upstream request is left. */
static void call_end(gw_call *c)
{
	gw *g = c->g;
	uint64_t now = ev_now_ms(g->loop);
	if (c->up) {
		hc_cancel(c->up);
		c->up = NULL;
	}
	gw_metrics_request(g, c, now);
	access_log_write(g, c, now);
	tenant_end(c, now);
	admission_forget(c);
	picker_req_free(c->pk);
	c->pk = NULL;
	resume_free(c->rs);
	c->rs = NULL;
	release_endpoint(c);
	gw_pool *p = c->pool;
	p->active_requests--;
	if (c->in_retry) p->active_retries--;
	gw_pool_unref(p);
	g->in_flight--;
	call_recycle(c);
}

/* After the last call on the client's request: 0 means the response ended and
 * the request is gone; -1 means on_close follows and ends the call. */
static void client_finished(gw_call *c, int rc)
{
	if (rc == 0) {
		c->r = NULL;
		call_end(c);
	}
}

/* ------------------------------------------------------------ headers */

/* 1 when name (len bytes) is lower, a lowercase literal of that length,
 * ignoring the case of name. */
static int name_is(const char *name, size_t len, const char *lower)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch) != (unsigned char)lower[i]) return 0;
	}
	return 1;
}

/* The headers that never cross the gateway as they are: hop-by-hop ones
 * (RFC 9110 7.6.1), and those it writes itself. Chosen by length first: a
 * header is compared with at most two names. */
static int hop_by_hop(const char *name, size_t len, const char *conn_tokens)
{
	int hop;
	switch (len) {
	case 2: hop = name_is(name, len, "te"); break;
	case 4: hop = name_is(name, len, "host"); break;
	case 6: hop = name_is(name, len, "expect"); break;
	case 7: hop = name_is(name, len, "trailer") || name_is(name, len, "upgrade"); break;
	case 10: hop = name_is(name, len, "connection") || name_is(name, len, "keep-alive"); break;
	case 12: hop = name_is(name, len, "content-type"); break;
	case 14: hop = name_is(name, len, "content-length"); break;
	case 15: hop = name_is(name, len, "x-forwarded-for"); break;
	case 16: hop = name_is(name, len, "proxy-connection"); break;
	case 17: hop = name_is(name, len, "transfer-encoding"); break;
	default: hop = 0;
	}
	if (hop) return 1;
	if (!conn_tokens) return 0;
	/* Headers the Connection header names are hop-by-hop too. */
	const char *p = conn_tokens;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t') p++;
		const char *s = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t') p++;
		if ((size_t)(p - s) == len && len && !strncasecmp(s, name, len)) return 1;
	}
	return 0;
}

/* Appends without formatting: a literal, or a NUL-terminated string.
 * 0, or -1 when the buffer is full. */
#define APPEND_LIT(b, lit) buf_append((b), (lit), sizeof(lit) - 1)
static inline int append_str(buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* Appends "name: value\r\n" with one reservation. 0, or -1 when the buffer
 * is full. */
static int append_header(buf *b, const http_header *h)
{
	char *w = buf_space(b, h->name_len + h->value_len + 4);
	if (!w) return -1;
	memcpy(w, h->name, h->name_len);
	w += h->name_len;
	*w++ = ':';
	*w++ = ' ';
	memcpy(w, h->value, h->value_len);
	w += h->value_len;
	*w++ = '\r';
	*w = '\n';
	buf_commit(b, h->name_len + h->value_len + 4);
	return 0;
}

/* The client's address without the port ("127.0.0.1", "::1"). */
static void client_ip(const char *peer, char *out, size_t size)
{
	if (peer[0] == '[') {
		const char *rb = strchr(peer, ']');
		size_t n = rb ? (size_t)(rb - peer - 1) : strlen(peer);
		if (n >= size) n = size - 1;
		memcpy(out, peer + 1, n);
		out[n] = 0;
		return;
	}
	str_copy(out, peer, size);
	char *colon = strrchr(out, ':');
	if (colon) *colon = 0;
}

/* The request headers for the upstream: the client's end-to-end ones, then
 * Content-Type and X-Forwarded-For (Host and Content-Length come from the
 * client library), and the pool's backend API key in place of the client's
 * Authorization when one is set. Returns 0, or -1 when they do not fit. */
static int build_up_headers(gw_call *c, httpd_req *r)
{
	buf *b = &c->up_headers;
	size_t n;
	const http_header *h = httpd_headers(r, &n);
	const char *conn = httpd_header(r, "connection", NULL);
	const char *ctype = httpd_header(r, "content-type", NULL);
	const char *xff = httpd_header(r, "x-forwarded-for", NULL);
	const char *key = c->pool->cfg.backend.api_key;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (hop_by_hop(h[i].name, h[i].name_len, conn)) continue;
		if (*key && str_ieq(h[i].name, h[i].name_len, "authorization")) continue; /* ours instead */
		rc |= append_header(b, &h[i]);
	}
	rc |= APPEND_LIT(b, "Content-Type: ");
	rc |= append_str(b, ctype ? ctype : "application/json");
	char ip[NET_ADDR_STRLEN];
	client_ip(c->client, ip, sizeof(ip));
	rc |= APPEND_LIT(b, "\r\nX-Forwarded-For: ");
	if (xff && *xff) {
		rc |= append_str(b, xff);
		rc |= APPEND_LIT(b, ", ");
	}
	rc |= append_str(b, ip);
	rc |= APPEND_LIT(b, "\r\n");
	if (*key) {
		rc |= APPEND_LIT(b, "Authorization: Bearer ");
		rc |= append_str(b, key);
		rc |= APPEND_LIT(b, "\r\n");
	}
	return rc ? -1 : 0;
}

/* ------------------------------------------------------------ answers of our own */

static void answer_error(gw_call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void answer_error(gw_call *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->status = status;
	client_finished(c, httpd_error(c->r, status, msg, NULL));
}

/* ------------------------------------------------------------ retries */

/* 1 when e is known gone: down, ejected or removed. */
static int endpoint_dead(const gw_endpoint *e, uint64_t now_ms)
{
	return e->state == GW_HEALTH_DOWN || e->removed || health_ejected(e, now_ms);
}

/* 1 when another attempt may follow this one, failed as `failure`
 * (retry.h decides; counted and logged here when the budget says no). */
static int can_retry(gw_call *c, int failure)
{
	gw_pool *p = c->pool;
	uint64_t now = ev_now_ms(c->g->loop);
	if (!c->r) return 0;
	pick_ctx ctx = {c->tried, c->model, now, c->pk};
	retry_question q = {failure, c->tries, p->cfg.backend.tries, now < c->deadline_ms, picker_any_left(p, &ctx),
			    c->in_retry, p->active_retries,
			    retry_budget(p->cfg.backend.retry_budget_min, p->cfg.backend.retry_budget_ratio, p->active_requests)};
	int v = retry_decide(&q);
	if (v == RETRY_NO_BUDGET) {
		gw_metrics_retry(c->g, c, "budget_exhausted");
		log_ratelimited(LOG_WARN, "pool %s: retry budget exhausted (%u retries, %u requests in progress)",
				p->cfg.name, p->active_retries, p->active_requests);
	}
	return v == RETRY_YES;
}

static void retry(gw_call *c, const char *reason)
{
	if (!c->in_retry) {
		c->in_retry = 1;
		c->pool->active_retries++;
	}
	gw_metrics_retry(c->g, c, reason);
	release_endpoint(c);
	attempt(c);
}

/* ------------------------------------------------------------ upstream callbacks */

static void on_client_drain(httpd_req *r, void *arg)
{
	gw_call *c = arg;
	c->paused = 0;
	if (c->up) hc_resume(c->up);
}

static int on_up_head(hc_req *up, int status, const http_header *h, size_t n, void *arg)
{
	gw_call *c = arg;
	gw_endpoint *e = c->ep;
	c->last_up_status = status;
	if (status >= 500) {
		char why[32];
		snprintf(why, sizeof(why), "status %d", status);
		health_passive_failure(e, why);
	}
	if (c->started) return resume_on_head(c, status, h, n); /* a continuation (resume.c) */
	if (status == 404 && c->seek && c->r) {
		/* A stored response lives on the server that made it: ask the next
		 * one, each at most once (the tried set), within the deadline. */
		pick_ctx ctx = {c->tried, c->model, ev_now_ms(c->g->loop), c->pk};
		if (ctx.now_ms < c->deadline_ms && picker_any_left(c->pool, &ctx)) {
			c->discard = 1;
			return 0;
		}
	}
	if (retry_failure_of(HC_OK, status, 1, 0) == RETRY_FAILURE_BUSY && can_retry(c, RETRY_FAILURE_BUSY)) {
		c->discard = 1; /* swallow the body; retried when it ends */
		return 0;
	}
	const char *ctype = NULL;
	int64_t clen = -1;
	/* The client gets the upstream's length when it gave one (the client
	 * module read and checked the framing already). */
	uint64_t length;
	if (hc_content_length(up, &length)) clen = (int64_t)length;
	buf *b = &c->resp_headers;
	buf_reset(b);
	const http_header *ch = http_find_header(h, n, "connection");
	char conn_tokens[256] = "";
	if (ch) {
		size_t k = MIN(ch->value_len, sizeof(conn_tokens) - 1);
		memcpy(conn_tokens, ch->value, k);
		conn_tokens[k] = 0;
	}
	char ctype_buf[256];
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (h[i].name_len == 12 && name_is(h[i].name, 12, "content-type")) {
			size_t k = MIN(h[i].value_len, sizeof(ctype_buf) - 1);
			memcpy(ctype_buf, h[i].value, k);
			ctype_buf[k] = 0;
			ctype = ctype_buf;
			continue;
		}
		if (h[i].name_len == 14 && name_is(h[i].name, 14, "content-length")) continue; /* written by httpd from clen */
		if (hop_by_hop(h[i].name, h[i].name_len, ch ? conn_tokens : NULL)) continue;
		if ((h[i].name_len == 4 && name_is(h[i].name, 4, "date")) || (h[i].name_len == 6 && name_is(h[i].name, 6, "server")) ||
		    (h[i].name_len >= 12 && name_is(h[i].name, 12, "x-infergate-")))
			continue;
		rc |= append_header(b, &h[i]);
	}
	rc |= APPEND_LIT(b, "x-infergate-endpoint: ");
	rc |= append_str(b, e->label);
	rc |= APPEND_LIT(b, "\r\nx-infergate-region: ");
	rc |= append_str(b, e->region);
	rc |= APPEND_LIT(b, "\r\n");
	picker_explain_header(c, b);
	if (rc) return -1;
	c->sse = ctype && !strncasecmp(ctype, "text/event-stream", 17);
	c->status = status;
	c->started = 1;
	c->served_remote = strcmp(e->region, c->g->cfg->region) != 0;
	c->first_byte_ms = ev_now_ms(c->g->loop);
	gw_metrics_ttfb(c->g, c, c->first_byte_ms - c->start_ms);
	if (httpd_stream_start(c->r, status, ctype, buf_rptr(b), clen) < 0) {
		/* The client is gone: on_close follows and ends the call. */
		hc_cancel(up);
		c->up = NULL;
		release_endpoint(c);
		return 0; /* cancelled: no more callbacks */
	}
	return 0;
}

/* A created response's id is in the first bytes of the answer ("id":"resp_…",
 * also inside the stream's first event): remembered with the pool, so GET
 * /v1/responses/{id} goes where it lives. */
static void learn_response_id(gw_call *c, const char *data, size_t len)
{
	static const char key[] = "\"id\":";
	size_t n = MIN(len, 2048);
	const char *k = memmem(data, n, key, sizeof(key) - 1);
	if (!k) return;
	const char *v = k + sizeof(key) - 1, *end = data + n;
	while (v < end && *v == ' ') v++;
	if (v >= end || *v != '"') return;
	v++;
	const char *q = memchr(v, '"', (size_t)(end - v));
	if (q && q > v && q - v <= 256) gw_response_remember(c->g, v, (size_t)(q - v), c->pool);
}

static void on_up_body(hc_req *up, const char *data, size_t len, void *arg)
{
	gw_call *c = arg;
	if (c->discard || !c->r) return;
	if (!c->first_token_ms) c->first_token_ms = ev_now_ms(c->g->loop);
	usage_feed(&c->usage, data, len);
	int rc = c->rs && c->sse ? resume_feed(c, data, len) : httpd_stream_write(c->r, data, len) < 0 ? RESUME_CLIENT_GONE
												       : -1;
	if (rc == RESUME_ERROR_EVENT || rc == RESUME_TOO_LARGE) {
		hc_cancel(up);
		c->up = NULL;
		if (rc == RESUME_ERROR_EVENT && c->ep) health_passive_failure(c->ep, "error event");
		resume_carry_out(c, rc == RESUME_ERROR_EVENT ? HC_ERR_ABORTED : HC_ERR_TOO_LARGE);
		return; /* the call moved on or ended */
	}
	if (rc == RESUME_CLIENT_GONE) {
		hc_cancel(up);
		c->up = NULL;
		release_endpoint(c);
		return;
	}
	if (rc < 0) { /* relayed as bytes */
		if (c->bytes_out == 0 && c->last_up_status == 200 && !strcmp(c->path, "/v1/responses"))
			learn_response_id(c, data, len);
		c->bytes_out += len;
		if (len >= 2) memcpy(c->tail, data + len - 2, 2);
		else if (len == 1) c->tail[0] = c->tail[1], c->tail[1] = data[0];
	}
	if (!c->paused && httpd_stream_pending(c->r) > PROXY_HIGH_WATERMARK_BYTES) {
		c->paused = 1;
		hc_pause(up);
		httpd_on_drain(c->r, on_client_drain, c);
	}
}

/* The upstream's stream broke after the client got the head: nothing is
 * replayed. SSE ends with an error event and [DONE], as vLLM ends a failed
 * stream; anything else is cut short so the client sees it incomplete. */
static void stream_broken(gw_call *c, int err)
{
	c->broken = 1;
	if (c->sse && httpd_minor_version(c->r) >= 1) {
		buf *b = &c->resp_headers;
		buf_reset(b);
		/* Close whatever event the upstream left unfinished. */
		if (c->bytes_out && !(c->tail[0] == '\n' && c->tail[1] == '\n')) buf_puts(b, "\n\n");
		int status = err == HC_ERR_IDLE_TIMEOUT || err == HC_ERR_TOTAL_TIMEOUT ? 504 : 502;
		char msg[512];
		snprintf(msg, sizeof(msg), "The stream from the model server ended early (%s at %s); no more tokens will follow.",
			 hc_err_name(err), c->ep ? c->ep->label : "?");
		buf_puts(b, "data: ");
		buf tmp;
		buf_init(&tmp, 0);
		oai_error_write(&tmp, status, msg, NULL);
		buf_append(b, buf_rptr(&tmp), buf_rlen(&tmp));
		buf_free(&tmp);
		buf_puts(b, "\n\n");
		sse_write_done(b);
		if (httpd_stream_write(c->r, buf_rptr(b), buf_rlen(b)) < 0) return; /* on_close follows */
		c->bytes_out += buf_rlen(b);
		client_finished(c, httpd_stream_end(c->r));
		return;
	}
	httpd_abort(c->r); /* on_close follows */
}

static int err_is_timeout(int err) { return err == HC_ERR_IDLE_TIMEOUT || err == HC_ERR_TOTAL_TIMEOUT || err == HC_ERR_CONNECT_TIMEOUT; }

static void on_up_done(hc_req *up, int err, void *arg)
{
	gw_call *c = arg;
	gw_endpoint *e = c->ep;
	c->up = NULL;
	c->last_err = err;
	if (!c->r) { /* the client left meanwhile (cannot happen: its close cancels us) */
		release_endpoint(c);
		return;
	}
	if (c->discard) {
		c->discard = 0;
		char reason[32];
		snprintf(reason, sizeof(reason), "status_%d", c->last_up_status);
		retry(c, reason);
		return;
	}
	if (err == HC_OK) {
		if (c->last_up_status < 500) health_passive_success(e);
		if (c->rs && c->sse && !resume_complete(c)) { /* ended before [DONE] */
			gw_endpoint_log(e, LOG_WARN, "pool %s: stream from %s ended before [DONE]", c->pool->cfg.name, e->label);
			resume_carry_out(c, HC_ERR_EOF);
			return;
		}
		client_finished(c, httpd_stream_end(c->r));
		return;
	}
	if (err != HC_ERR_TOTAL_TIMEOUT && err != HC_ERR_ABORTED && err != HC_ERR_NOMEM)
		health_passive_error(e, err); /* may move the other attempts on e (not this one: c->up is gone) */
	if (c->started) {
		gw_endpoint_log(e, LOG_WARN, "pool %s: stream from %s broke after %llu bytes: %s", c->pool->cfg.name,
				e->label, (unsigned long long)c->bytes_out, hc_err_name(err));
		if (c->rs && c->sse) resume_carry_out(c, err);
		else stream_broken(c, err);
		return;
	}
	int failure = retry_failure_of(err, 0, hc_received_any(up), endpoint_dead(e, ev_now_ms(c->g->loop)));
	if (failure != RETRY_FAILURE_FINAL && can_retry(c, failure)) {
		retry(c, hc_err_name(err));
		return;
	}
	if (err_is_timeout(err) && err != HC_ERR_CONNECT_TIMEOUT)
		answer_error(c, 504, "The model server %s did not answer in time (%s).", e->label, hc_err_name(err));
	else
		answer_error(c, 502, "The model server %s failed: %s (after %u tries).", e->label, hc_err_name(err), c->tries);
}

/* ------------------------------------------------------------ attempts */

static void attempt(gw_call *c)
{
	gw *g = c->g;
	gw_pool *p = c->pool;
	uint64_t now = ev_now_ms(g->loop);
	if (now >= c->deadline_ms) {
		answer_error(c, 504, "The request timed out after %llu ms.", (unsigned long long)(now - c->start_ms));
		return;
	}
	pick_ctx ctx = {c->tried, c->model, now, c->pk};
	pick_result *pr = picker_result_get();
	int i = pr ? picker_pick(p, &ctx, pr) : -1;
	if (pr && i >= 0) picker_commit(p, &ctx, pr);
	picker_result_put(pr);
	if (i < 0) {
		if (c->tries == 0)
			answer_error(c, 503, "No healthy endpoint in pool %s for model `%s`.", p->cfg.name, c->model);
		else
			answer_error(c, 502, "Every endpoint tried for model `%s` failed (%u tries).", c->model, c->tries);
		return;
	}
	pick_mark(c->tried, i);
	gw_endpoint *e = p->eps[i];
	take_endpoint(c, e);
	e->picked_total++;
	e->requests_total++;
	c->tries++;
	hc_timeouts to = {p->cfg.backend.connect_timeout_ms, p->cfg.backend.idle_timeout_ms, c->deadline_ms - now};
	hc_callbacks cb = {on_up_head, on_up_body, on_up_done};
	const char *body = c->body;
	size_t body_len = c->body_len;
	if (c->rs) resume_body(c->rs, &body, &body_len);
	c->up = hc_request(e->conns, httpd_method(c->r), httpd_target(c->r), buf_rptr(&c->up_headers), body,
			   body_len, &cb, c, &to);
	if (!c->up) {
		if (c->started) {
			stream_broken(c, HC_ERR_NOMEM);
			return;
		}
		release_endpoint(c);
		answer_error(c, 503, "Out of memory.");
	}
}

/* A resumable stream broke after its head went out: resume.c decides, this
 * carries it out. */
static void resume_carry_out(gw_call *c, int err)
{
	switch (resume_broken(c, &err)) {
	case RESUME_CONTINUE:
		release_endpoint(c);
		attempt(c);
		return;
	case RESUME_END:
		if (resume_flush(c) < 0) return; /* on_close follows and ends the call */
		client_finished(c, httpd_stream_end(c->r));
		return;
	default:
		stream_broken(c, err);
	}
}

/* 1 when a stream that broke now could continue elsewhere: time is left and an
 * endpoint not tried yet is available (resume_broken decides the rest). */
static int can_resume(gw_call *c)
{
	uint64_t now = ev_now_ms(c->g->loop);
	if (now >= c->deadline_ms) return 0;
	pick_ctx ctx = {c->tried, c->model, now, c->pk};
	return picker_any_left(c->pool, &ctx);
}

size_t proxy_endpoint_down(gw_endpoint *e, const char *why)
{
	size_t retried = 0, resumed = 0, left = 0;
	gw_call *next;
	gw_endpoint_ref(e); /* the last call moved away must not free e under the loop */
	/* Moving a call only unlinks that call (retry and resume start its next
	 * attempt elsewhere, or end it); the saved next stays valid. */
	for (gw_call *c = e->calls; c; c = next) {
		next = c->ep_next;
		if (!c->up || !c->r) continue; /* between attempts, or its own on_done is running */
		/* Not started: retried if no byte came back. Started: resumed if
		 * resumable. Anything else (answered already, not resumable, or
		 * nowhere to go) ends as it ends. */
		int resume = c->started;
		if (resume ? !(c->rs && c->sse && can_resume(c)) : !can_retry(c, retry_failure_of(HC_ERR_ABORTED, 0, hc_received_any(c->up), 1))) {
			left++;
			continue;
		}
		hc_cancel(c->up);
		c->up = NULL;
		c->last_err = HC_ERR_ABORTED;
		if (resume) {
			resumed++;
			resume_carry_out(c, HC_ERR_ABORTED);
		} else {
			retried++;
			retry(c, "endpoint_down");
		}
	}
	if (retried || resumed || left)
		log_warn("endpoint %s (pool %s, region %s) is down (%s): %zu attempts in flight retried elsewhere, "
			 "%zu streams resumed elsewhere, %zu left to finish or time out",
			 e->address, e->pool_name, e->region, why, retried, resumed, left);
	gw_endpoint_unref(e);
	return retried + resumed;
}

/* ------------------------------------------------------------ the client side */

static void on_client_close(httpd_req *r, void *arg)
{
	gw_call *c = arg;
	c->r = NULL;
	if (!c->broken) c->status = 499; /* the client left before its answer ended */
	c->client_gone = 1;
	if (c->up) {
		hc_cancel(c->up); /* closes the upstream connection: generation stops */
		c->up = NULL;
	}
	call_end(c);
}

/* What a request reserves in its tenant's token bucket (tenant.h): the
 * prompt's bytes / 4 (about a token each) plus the completion budget asked. */
static uint64_t reserve_of(const gw_request *rq)
{
	size_t len;
	request_prompt_head(rq, &len);
	int64_t mt = rq->resume.max_tokens;
	return len / 4 + 1 + (mt > 0 && mt < (1 << 24) ? (uint64_t)mt : 0);
}

void proxy_start(gw *g, httpd_req *r, gw_pool *pool, const gw_request *rq)
{
	gw_call *c = call_new(g);
	if (!c) {
		httpd_error(r, 503, "Out of memory.", NULL);
		return;
	}
	c->r = r;
	c->pool = pool;
	gw_pool_ref(pool);
	pool->active_requests++;
	g->in_flight++;
	c->body = httpd_body(r, &c->body_len);
	str_copy(c->model, rq->model, sizeof(c->model));
	str_copy(c->path, httpd_path(r), sizeof(c->path));
	str_copy(c->client, httpd_peer(r), sizeof(c->client));
	c->stream = rq->stream;
	c->seek = rq->seek;
	c->tenant = rq->tenant;
	tenant_ref(c->tenant);
	usage_init(&c->usage);
	c->reserve_tokens = reserve_of(rq);
	c->start_ms = ev_now_ms(g->loop);
	c->start_wall_s = time_wall_s();
	c->deadline_ms = c->start_ms + pool->cfg.backend.request_timeout_ms;
	httpd_on_close(r, on_client_close, c);
	if (build_up_headers(c, r) < 0) {
		answer_error(c, 431, "Request header fields too large to forward.");
		return;
	}
	c->pk = picker_req_new(c, rq);
	c->rs = resume_new(c, rq);
	/* A resumable stream that asks no usage asks for it here (the tenant's
	 * tokens are counted from it; resume drops the chunk again); a rewritten
	 * model goes in the same copy. The call owns the copy. */
	int ask_usage = c->rs && !rq->resume.include_usage && !rq->stream_options;
	if (rq->rewritten || ask_usage) {
		if (rewrite_body(&c->body_rewritten, c->body, c->body_len, rq->model_at, rq->model_len,
				 rq->rewritten ? rq->model : NULL, rq->object_at, ask_usage ? REWRITE_USAGE_MEMBER : NULL) < 0) {
			answer_error(c, 503, "Out of memory.");
			return;
		}
		c->body = buf_rptr(&c->body_rewritten);
		c->body_len = buf_rlen(&c->body_rewritten);
	}
	admission_verdict v;
	admission_admit(c, &v);
	admission_carry_out(c, &v);
}

/* Serves the admission queues while they hold a request: the verdicts on
 * those whose wait is over, carried out here. */
static int64_t admission_timer_cb(ev_loop *loop, uint64_t id, void *arg)
{
	gw *g = arg;
	gw_call *calls[PROXY_ADMISSION_BATCH];
	admission_verdict *v = malloc(PROXY_ADMISSION_BATCH * sizeof(*v));
	if (!v) return PROXY_ADMISSION_TICK_MS;
	/* Taken out of the queue first: carrying one out may end it (and others
	 * of the batch are not touched by that). */
	size_t n = admission_tick(g, ev_now_ms(loop), calls, v, PROXY_ADMISSION_BATCH);
	for (size_t i = 0; i < n; i++) admission_carry_out(calls[i], &v[i]);
	free(v);
	if (admission_queued(g)) return PROXY_ADMISSION_TICK_MS;
	g->admission_timer = 0;
	return -1;
}

static void admission_carry_out(gw_call *c, const admission_verdict *v)
{
	gw *g = c->g;
	switch (v->action) {
	case ADMISSION_ADMIT:
		attempt(c);
		return;
	case ADMISSION_QUEUE:
		if (!g->admission_timer) g->admission_timer = ev_timer_add(g->loop, PROXY_ADMISSION_TICK_MS, admission_timer_cb, g);
		return;
	default:
		c->status = v->status;
		buf *b = &c->resp_headers; /* unused before an upstream answers */
		buf_reset(b);
		if (v->type) oai_error_write_type(b, v->status, v->type, v->msg, NULL);
		else oai_error_write(b, v->status, v->msg, NULL);
		client_finished(c, httpd_respond(c->r, v->status, "application/json", v->headers[0] ? v->headers : NULL,
						 buf_rptr(b), buf_rlen(b)));
	}
}

void proxy_free_admission(gw *g)
{
	if (g->admission_timer) ev_timer_del(g->loop, g->admission_timer);
	g->admission_timer = 0;
}
