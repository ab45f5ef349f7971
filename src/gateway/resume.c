/*
 * resume.c — mid-stream failover on a live call (resume.h): the SSE of a
 * resumable call parsed as it is relayed (core/sse.h), the decision when it
 * breaks, the continuation sent through the proxy's attempts, and the
 * counting (infergate_resumes_total, the access log's `resumes`).
 *
 * Not here: the rules of what a continuation is and how its events are
 * rewritten (sse_splice.c), picking and sending (picker.c, proxy.c).
 */
#include "gateway/resume.h"
#include "gateway/metrics.h"
#include "gateway/picker.h"
#include "gateway/scrape.h"
#include "core/http_client.h"
#include "gateway/sse_splice.h"
#include "core/log.h"
#include "core/sse.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESUME_EVENT_MAX_BYTES (4u << 20) /* one upstream event at most */
#define RESUME_OUT_MAX_BYTES (16u << 20)  /* what one read may turn into for the client */

/* A line that repeats while an endpoint fails: limited per endpoint. */
#define call_log(c, level, ...) \
	do { \
		if ((c)->ep) gw_endpoint_log((c)->ep, level, __VA_ARGS__); \
		else log_ratelimited(level, __VA_ARGS__); \
	} while (0)

/* Owner: the call (gw_call.rs); freed with it. */
struct resume_state {
	splice_req rq;
	splice sp;
	sse_parser parser; /* the current attempt's stream */
	buf body;          /* the continuation's request body ("" before the first) */
	buf out;           /* what the client gets for the bytes being fed */
	int seen;          /* the splice result that stopped the parser */
	int completed_counted;
};

static int on_event(void *arg, const char *event, const char *data, size_t len, const char *id)
{
	resume_state *rs = arg;
	int r = splice_event(&rs->sp, data, len, &rs->out);
	if (r == SPLICE_GO_ON) return 0;
	rs->seen = r;
	return r == SPLICE_DONE ? 0 : 1; /* after an error or a full buffer: read no further */
}

/* A path ends with suffix. */
static int path_is(const char *path, const char *suffix)
{
	size_t n = strlen(path), k = strlen(suffix);
	return n >= k && !strcmp(path + n - k, suffix);
}

int resume_dialect(const gw_pool *p)
{
	if (p->cfg.dialect != GW_DIALECT_AUTO) return p->cfg.dialect;
	for (size_t i = 0; i < p->n_eps; i++) {
		const scrape_values *v = scrape_last(p->eps[i]);
		if (!v || !v->dialect) continue;
		if (!strcmp(v->dialect, "llamacpp")) return GW_DIALECT_LLAMACPP;
		if (!strcmp(v->dialect, "sglang")) return GW_DIALECT_SGLANG;
		if (!strcmp(v->dialect, "vllm")) return GW_DIALECT_VLLM;
	}
	return GW_DIALECT_VLLM;
}

resume_state *resume_new(gw_call *c, const gw_request *req)
{
	const gw_pool_cfg *pc = &c->pool->cfg;
	if (!c->stream || !pc->resume || !pc->backend.max_resumes) return NULL;
	int chat = path_is(c->path, "/chat/completions");
	if (!chat && !path_is(c->path, "/completions")) return NULL;
	splice_req rq = req->resume;
	int dialect = resume_dialect(c->pool);
	if (chat && dialect == GW_DIALECT_OPENAI) { /* servers that cannot continue a message */
		rq.resumable = 0;
		rq.why = "the pool's servers cannot continue a message (dialect: openai)";
	}
	if (!rq.resumable) {
		log_debug("pool %s: stream not resumable: %s", pc->name, rq.why);
		return NULL;
	}
	rq.prefill = dialect == GW_DIALECT_LLAMACPP;
	resume_state *rs = calloc(1, sizeof(*rs));
	if (!rs) return NULL;
	rs->rq = rq;
	splice_init(&rs->sp, &rq);
	sse_parser_init(&rs->parser, RESUME_EVENT_MAX_BYTES, on_event, rs);
	buf_init(&rs->body, 0);
	buf_init(&rs->out, RESUME_OUT_MAX_BYTES);
	return rs;
}

void resume_free(resume_state *rs)
{
	if (!rs) return;
	splice_free(&rs->sp);
	sse_parser_free(&rs->parser);
	buf_free(&rs->body);
	buf_free(&rs->out);
	free(rs);
}

void resume_body(const resume_state *rs, const char **body, size_t *len)
{
	if (!rs->sp.attempt) return;
	*body = buf_rptr(&rs->body);
	*len = buf_rlen(&rs->body);
}

int resume_complete(const gw_call *c) { return c->rs && c->rs->sp.done; }

int resume_on_head(gw_call *c, int status, const http_header *h, size_t n)
{
	const http_header *ct = http_find_header(h, n, "content-type");
	if (status == 200 && ct && ct->value_len >= 17 && !strncasecmp(ct->value, "text/event-stream", 17)) return 0;
	call_log(c, LOG_WARN, "pool %s: continuation at %s answered %d: dropped", c->pool->cfg.name,
		 c->ep ? c->ep->label : "?", status);
	return -1;
}

/* Sends rs->out to the client. Returns 0, or -1 when the client is gone. */
int resume_flush(gw_call *c)
{
	resume_state *rs = c->rs;
	size_t n = buf_rlen(&rs->out);
	if (!n) return 0;
	if (httpd_stream_write(c->r, buf_rptr(&rs->out), n) < 0) return -1;
	c->bytes_out += n;
	c->tail[0] = '\n'; /* every write ends an event */
	c->tail[1] = '\n';
	buf_reset(&rs->out);
	return 0;
}

/* The stream is not resumed: the upstream's own error event when it sent one
 * (into rs->out, then [DONE]: RESUME_END), else the proxy's (RESUME_BROKEN). */
static int give_up(gw_call *c, int err, const char *outcome, const char *why)
{
	resume_state *rs = c->rs;
	gw_metrics_resume(c->g, c, outcome);
	call_log(c, LOG_WARN, "pool %s: stream from %s not resumed (%s: %s) after %llu tokens, %u resumes",
		 c->pool->cfg.name, c->ep ? c->ep->label : "?", outcome, why,
		 (unsigned long long)rs->sp.tokens, c->resumes);
	if (!buf_rlen(&rs->sp.error_event)) return RESUME_BROKEN;
	buf_reset(&rs->out);
	if (sse_write_data(&rs->out, buf_rptr(&rs->sp.error_event), buf_rlen(&rs->sp.error_event)) < 0 ||
	    sse_write_done(&rs->out) < 0)
		return RESUME_BROKEN;
	return RESUME_END;
}

int resume_broken(gw_call *c, int *errp)
{
	int err = *errp;
	resume_state *rs = c->rs;
	splice *sp = &rs->sp;
	gw_pool *p = c->pool;
	uint64_t now = ev_now_ms(c->g->loop);
	const char *why = buf_rlen(&sp->error_event) ? "error_event" : hc_err_name(err);
	buf_reset(&rs->out);
	if (sp->done) return RESUME_END; /* the end was already relayed */
	if (sp->finished) {              /* the generation was complete: only its tail was lost */
		gw_metrics_resume(c->g, c, "finished");
		return splice_end(sp, 0, &rs->out) < 0 ? RESUME_BROKEN : RESUME_END;
	}
	if (sp->unresumable || sp->text_over) {
		return give_up(c, err, "not_resumable", sp->unresumable ? sp->unresumable : "text over 1 MiB");
	}
	if (c->resumes >= p->cfg.backend.max_resumes) {
		return give_up(c, err, "exhausted", why);
	}
	if (now >= c->deadline_ms || !c->r) {
		*errp = HC_ERR_TOTAL_TIMEOUT;
		return give_up(c, HC_ERR_TOTAL_TIMEOUT, "deadline", why);
	}
	pick_ctx ctx = {c->tried, c->model, now, c->pk};
	if (!picker_any_left(p, &ctx)) {
		return give_up(c, err, "no_endpoint", why);
	}
	int r = splice_continuation(sp, &rs->rq, c->body, c->body_len, &rs->body);
	if (r == 1) { /* the budget was spent: the stream ends as the original would */
		gw_metrics_resume(c->g, c, "finished");
		return splice_end(sp, 1, &rs->out) < 0 ? RESUME_BROKEN : RESUME_END;
	}
	if (r < 0) {
		return give_up(c, err, "not_resumable", "the continuation could not be written");
	}
	c->resumes++;
	gw_metrics_resume(c->g, c, "resumed");
	call_log(c, LOG_INFO, "pool %s: stream from %s broke (%s) after %llu tokens: resuming elsewhere (resume %u of %u)",
		 p->cfg.name, c->ep ? c->ep->label : "?", why, (unsigned long long)sp->tokens, c->resumes,
		 p->cfg.backend.max_resumes);
	sse_parser_free(&rs->parser);
	sse_parser_init(&rs->parser, RESUME_EVENT_MAX_BYTES, on_event, rs);
	rs->seen = 0;
	splice_next_attempt(sp);
	return RESUME_CONTINUE;
}

int resume_feed(gw_call *c, const char *data, size_t len)
{
	resume_state *rs = c->rs;
	buf_reset(&rs->out);
	rs->seen = 0;
	int rc = sse_feed(&rs->parser, data, len);
	if (resume_flush(c) < 0) return RESUME_CLIENT_GONE;
	if (rs->seen == SPLICE_DONE && rs->sp.attempt && !rs->completed_counted) {
		rs->completed_counted = 1;
		gw_metrics_resume(c->g, c, "completed");
	}
	if (rs->seen == SPLICE_ERROR) return RESUME_ERROR_EVENT; /* the server gave up on this request */
	if (rc < 0 || rs->seen == SPLICE_FULL) {                 /* an event over the caps: cannot be relayed whole */
		rs->sp.unresumable = "an event over the size cap";
		return RESUME_TOO_LARGE;
	}
	return RESUME_GO_ON;
}
