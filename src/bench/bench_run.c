/*
 * bench_run.c — one benchmark run on the core event loop (see bench_run.h).
 *
 * One thread, one loop, one hc_pool to the one upstream. The arrival process
 * is a pump run after every event that may let a request start (a timer for
 * the next Poisson arrival, a finished request, a conversation ready):
 *   open loop   — arrival k is due at t_k = t_{k-1} + Exp(rate); every due
 *                 arrival is started with t_k as its scheduled time, however
 *                 late the loop is, so delays show in its latency;
 *   closed loop — a free slot starts a request scheduled now.
 * Arrivals are generated lazily from the seeded generator, so a backlog costs
 * no memory. A request's bytes are measured as they arrive: SSE events with
 * content give the first-token time and the inter-token gaps; usage gives the
 * token counts. Every request ends in exactly one record.
 *
 * Not here: HTTP or SSE parsing (core), statistics (bench_stats.c), bodies
 * (bench_workload.c), report layout (bench_report.c).
 */
#include "bench/bench_run.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench_rng.h"
#include "bench/bench_workload.h"
#include "core/buf.h"
#include "core/ev.h"
#include "core/http_client.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sse.h"
#include "core/util.h"

#define RESP_BODY_MAX_BYTES (16u << 20) /* a non-streamed response body */
#define SSE_EVENT_MAX_BYTES (4u << 20)  /* one SSE event */
#define ITL_PER_REQ_MAX (1u << 20)      /* gaps kept per request */
#define PROGRESS_INTERVAL_MS 500
#define MODELS_TIMEOUT_MS 10000

typedef struct run run;

/* One request in flight. Owner: the run (linked in run.inflight); freed by
 * req_end after its record was folded in. */
typedef struct bench_req {
	run *run;
	struct bench_req *prev, *next;
	hc_req *hr; /* NULL once the client is done with it */
	int busy;   /* inside hc_request or sse_feed: free later */
	int ended;  /* req_end ran (possibly while busy) */
	bench_record rec;
	int sse;        /* the response is text/event-stream */
	int done_seen;  /* data: [DONE] */
	int stream_err; /* an {"error":...} event came */
	sse_parser sp;
	buf req_body; /* the request's, sent from here until hc's on_done */
	buf body;     /* non-stream (or error) response body, capped */
	buf answer;   /* assistant text, shared-prefix only */
	float *itl;   /* gaps, ms */
	size_t itl_n, itl_cap;
	double itl_sum_ms;
	uint64_t last_chunk_ns; /* run-relative */
} bench_req;

struct run {
	const bench_config *cfg;
	bench_results *res;
	ev_loop *loop;
	hc_pool *pool;
	workload *wl;
	FILE *per_req;
	uint64_t t0_ns;     /* monotonic ns at the start */
	uint64_t t0_ms;     /* ev loop ms at the start */
	uint64_t rng;       /* arrival gaps */
	char headers[8192]; /* extra header lines for every request */
	hc_timeouts to;

	uint64_t total_limit;     /* warm-up + measured requests at most */
	uint64_t arrivals_end_ns; /* no arrival scheduled at or past (0 = none) */
	uint64_t scheduled;       /* requests started */
	uint64_t next_arrival_ns; /* open loop: run-relative due time */
	int waiting_conv;         /* the next arrival waits for a conversation */
	int arrivals_done;
	int max_inflight;
	int inflight;
	bench_req *inflight_head;

	uint64_t arrival_timer, progress_timer, deadline_timer;
	int pump_queued;
	int stopping;
	int progress_drawn;
	uint64_t skipped_bodies; /* bodies the workload could not build */
};

static uint64_t rel_now_ns(const run *r)
{
	return time_mono_ns() - r->t0_ns;
}

static void pump(run *r);
static void pump_soon(run *r);

/* ------------------------------------------------------------ recording */

static void set_err(bench_req *q, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(bench_req *q, int kind, const char *fmt, ...)
{
	if (q->rec.err != ERR_NONE)
		return; /* the first cause wins */
	q->rec.err = kind;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->rec.err_detail, sizeof(q->rec.err_detail), fmt, ap);
	va_end(ap);
}

/* Frees q's memory (its record was folded in already). */
static void req_release(bench_req *q)
{
	sse_parser_free(&q->sp);
	buf_free(&q->req_body);
	buf_free(&q->body);
	buf_free(&q->answer);
	free(q->itl);
	free(q);
}

/* Ends q: completes its record, folds it in, tells the workload, frees q and
 * lets the pump start what may start now. counted 0 = unfinished (stopped by
 * the deadline or a signal): only counted as such. */
static void req_end(bench_req *q, int counted)
{
	run *r = q->run;
	if (q->ended)
		return;
	q->ended = 1;
	bench_record *rec = &q->rec;
	rec->done_ns = rel_now_ns(r);
	if (q->prev)
		q->prev->next = q->next;
	else
		r->inflight_head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	r->inflight--;

	if (counted) {
		rec->e2e_ms = (double)(rec->done_ns - rec->scheduled_ns) / 1e6;
		if (rec->first_token_ns)
			rec->ttft_ms = (double)(rec->first_token_ns - rec->scheduled_ns) / 1e6;
		else
			rec->ttft_ms = rec->e2e_ms; /* non-stream, or no content at all */
		if (!rec->usage_seen)
			rec->output_tokens = rec->chunks;
		rec->tpot_ms = -1;
		if (q->sse && rec->first_token_ns && rec->output_tokens >= 2)
			rec->tpot_ms = (rec->e2e_ms - rec->ttft_ms) / (double)(rec->output_tokens - 1);
		rec->itl_count = q->itl_n;
		rec->itl_mean_ms = q->itl_n ? q->itl_sum_ms / (double)q->itl_n : 0;
		if (!rec->region[0])
			strcpy(rec->region, "-");
		if (!rec->endpoint[0])
			strcpy(rec->endpoint, "-");
		bench_results_add(r->res, rec, q->itl, q->itl_n);
		if (r->per_req)
			bench_report_record(r->per_req, rec);
		if (rec->conv >= 0 &&
		    workload_finish(r->wl, rec->conv, rec->err == ERR_NONE, buf_rptr(&q->answer),
				    buf_rlen(&q->answer)))
			r->res->conversations_abandoned++;
	} else {
		r->res->unfinished++;
	}
	if (q->hr) {
		hc_req *hr = q->hr;
		q->hr = NULL;
		hc_cancel(hr); /* no callback follows; safe from its own callbacks */
	}
	if (!q->busy)
		req_release(q);
	pump_soon(r);
}

static void add_gap(bench_req *q, double gap_ms)
{
	if (gap_ms > q->rec.itl_max_ms)
		q->rec.itl_max_ms = gap_ms;
	q->itl_sum_ms += gap_ms;
	if (q->itl_n == q->itl_cap) {
		if (q->itl_cap >= ITL_PER_REQ_MAX)
			return;
		size_t ncap = q->itl_cap ? q->itl_cap * 2 : 64;
		float *n = realloc(q->itl, ncap * sizeof(*n));
		if (!n)
			return;
		q->itl = n;
		q->itl_cap = ncap;
	}
	q->itl[q->itl_n++] = (float)gap_ms;
}

/* A content chunk arrived now. */
static void on_content(bench_req *q, const char *text, size_t len)
{
	uint64_t now = rel_now_ns(q->run);
	if (!q->rec.first_token_ns)
		q->rec.first_token_ns = now;
	else
		add_gap(q, (double)(now - q->last_chunk_ns) / 1e6);
	q->last_chunk_ns = now;
	q->rec.chunks++;
	if (workload_wants_answers(q->run->wl) && buf_rlen(&q->answer) < WL_ANSWER_MAX_BYTES + 8)
		buf_append(&q->answer, text, len);
}

static void read_usage(bench_req *q, const json_val *usage)
{
	int64_t v;
	if (!json_is(usage, JSON_OBJECT))
		return;
	if (json_int64(json_get(usage, "completion_tokens"), &v) == 0 && v >= 0) {
		q->rec.output_tokens = (uint64_t)v;
		q->rec.usage_seen = 1;
	}
	if (json_int64(json_get(usage, "prompt_tokens"), &v) == 0 && v >= 0)
		q->rec.prompt_tokens = (uint64_t)v;
}

/* The text of choices[0]: delta.content, delta.reasoning_content, message.content or text. */
static const json_val *choice_text(const json_val *root)
{
	const json_val *c0 = json_at(json_get(root, "choices"), 0);
	if (!c0)
		return NULL;
	const json_val *d = json_get(c0, "delta");
	if (d) {
		const json_val *t = json_get(d, "content");
		if (json_is(t, JSON_STRING) && t->u.str.len)
			return t;
		t = json_get(d, "reasoning_content");
		return json_is(t, JSON_STRING) ? t : NULL;
	}
	const json_val *m = json_get(c0, "message");
	if (m)
		return json_get(m, "content");
	return json_get(c0, "text");
}

/* One SSE event's data. Returns -1 when the request ended (error). */
static int on_event(bench_req *q, const char *data, size_t len)
{
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		q->done_seen = 1;
		return 0;
	}
	if (q->done_seen)
		return 0; /* nothing is expected after [DONE] */
	json_error je;
	json_doc *d = json_parse(data, len, 0, &je);
	if (!d) {
		set_err(q, ERR_PROTOCOL, "an SSE event is not JSON: %s", je.msg);
		req_end(q, 1);
		return -1;
	}
	const json_val *root = json_root(d);
	const json_val *e = json_get(root, "error");
	if (e) {
		const char *msg = json_str(json_get(e, "message"), json_str(e, "error event"));
		set_err(q, ERR_STREAM, "error event: %.120s", msg);
		q->stream_err = 1;
		json_doc_free(d);
		return 0; /* read on to [DONE] or the end */
	}
	const json_val *t = choice_text(root);
	if (json_is(t, JSON_STRING) && t->u.str.len)
		on_content(q, t->u.str.s, t->u.str.len);
	read_usage(q, json_get(root, "usage"));
	json_doc_free(d);
	return 0;
}

static int sse_cb(void *arg, const char *event, const char *data, size_t len, const char *id)
{
	return on_event(arg, data, len) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ client callbacks */

static void copy_header(char *dst, size_t size, const http_header *h)
{
	size_t n = h->value_len < size - 1 ? h->value_len : size - 1;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h->value[i];
		dst[j++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[j] = 0;
}

static int cb_head(hc_req *hr, int status, const http_header *h, size_t n, void *arg)
{
	bench_req *q = arg;
	q->rec.status = status;
	const http_header *x = http_find_header(h, n, "x-infergate-region");
	if (x && x->value_len)
		copy_header(q->rec.region, sizeof(q->rec.region), x);
	x = http_find_header(h, n, "x-infergate-endpoint");
	if (x && x->value_len)
		copy_header(q->rec.endpoint, sizeof(q->rec.endpoint), x);
	x = http_find_header(h, n, "content-type");
	q->sse = x && x->value_len >= 17 && str_ieq(x->value, 17, "text/event-stream");
	return 0;
}

static void cb_body(hc_req *hr, const char *data, size_t len, void *arg)
{
	bench_req *q = arg;
	if (q->sse && q->rec.status >= 200 && q->rec.status < 300) {
		q->busy++;
		int rc = sse_feed(&q->sp, data, len);
		q->busy--;
		if (q->ended) { /* an event ended it */
			req_release(q);
			return;
		}
		if (rc < 0) {
			set_err(q, ERR_PROTOCOL, "malformed event stream (a line or event over %u bytes)",
				SSE_EVENT_MAX_BYTES);
			req_end(q, 1);
		}
		return;
	}
	if (buf_append(&q->body, data, len) < 0) {
		set_err(q, ERR_PROTOCOL, "response body over %u bytes", RESP_BODY_MAX_BYTES);
		req_end(q, 1);
	}
}

static int is_timeout(int err)
{
	return err == HC_ERR_IDLE_TIMEOUT || err == HC_ERR_TOTAL_TIMEOUT;
}

/* The end of a non-streamed 2xx response: the JSON body. */
static void finish_json_body(bench_req *q)
{
	json_error je;
	json_doc *d = json_parse(buf_rptr(&q->body), buf_rlen(&q->body), 0, &je);
	if (!d) {
		set_err(q, ERR_PROTOCOL, "response body is not JSON: %s", je.msg);
		return;
	}
	const json_val *root = json_root(d);
	if (json_get(root, "error")) {
		set_err(q, ERR_PROTOCOL, "200 with an error body: %.100s",
			json_str(json_get(json_get(root, "error"), "message"), "?"));
		json_doc_free(d);
		return;
	}
	const json_val *t = choice_text(root);
	if (!json_get(root, "choices")) {
		set_err(q, ERR_PROTOCOL, "response has no choices");
		json_doc_free(d);
		return;
	}
	if (json_is(t, JSON_STRING)) {
		q->rec.chunks = 1;
		if (workload_wants_answers(q->run->wl))
			buf_append(&q->answer, t->u.str.s, t->u.str.len);
	}
	read_usage(q, json_get(root, "usage"));
	json_doc_free(d);
}

static void http_error_detail(bench_req *q)
{
	json_doc *d = json_parse(buf_rptr(&q->body), buf_rlen(&q->body), 0, NULL);
	const char *msg = d ? json_str(json_get(json_get(json_root(d), "error"), "message"), NULL) : NULL;
	set_err(q, q->rec.status < 500 ? ERR_HTTP_4XX : ERR_HTTP_5XX, "HTTP %d: %.120s", q->rec.status,
		msg ? msg : buf_rptr(&q->body));
	json_doc_free(d);
}

static void cb_done(hc_req *hr, int err, void *arg)
{
	bench_req *q = arg;
	q->hr = NULL; /* the client frees it after we return */
	int st = q->rec.status;
	if (err == HC_ERR_CONNECT_REFUSED || err == HC_ERR_CONNECT || err == HC_ERR_CONNECT_TIMEOUT) {
		set_err(q, ERR_CONNECT, "%s", hc_err_name(err));
	} else if (is_timeout(err)) {
		set_err(q, ERR_TIMEOUT, "%s after %.0f ms", hc_err_name(err),
			(double)(rel_now_ns(q->run) - q->rec.sent_ns) / 1e6);
	} else if (st >= 400 && st < 600) {
		http_error_detail(q);
	} else if (err != HC_OK) {
		if (q->sse && st >= 200 && st < 300)
			set_err(q, ERR_STREAM, "stream ended without [DONE] (%s)", hc_err_name(err));
		else
			set_err(q, ERR_PROTOCOL, "%s%s", hc_err_name(err),
				hc_received_any(hr) ? " during the response" : " before any response byte");
	} else if (st < 200 || st >= 300) {
		set_err(q, ERR_PROTOCOL, "unexpected status %d", st);
	} else if (q->sse) {
		if (!q->done_seen && !q->stream_err)
			set_err(q, ERR_STREAM, "stream ended without [DONE]");
	} else {
		finish_json_body(q);
	}
	req_end(q, 1);
}

/* ------------------------------------------------------------ scheduling */

static int is_warmup(const run *r, uint64_t id, uint64_t sched_ns)
{
	if (id < r->cfg->warmup_requests)
		return 1;
	return r->cfg->warmup_ms && sched_ns < r->cfg->warmup_ms * 1000000ULL;
}

/* Starts wr (consumed) scheduled at sched_ns. */
static void req_start(run *r, wl_request *wr, uint64_t sched_ns)
{
	bench_req *q = calloc(1, sizeof(*q));
	if (!q) {
		log_ratelimited(LOG_ERROR, "out of memory starting a request");
		if (wr->conv >= 0)
			workload_finish(r->wl, wr->conv, 0, NULL, 0);
		wl_request_free(wr);
		return;
	}
	q->run = r;
	bench_record *rec = &q->rec;
	rec->id = r->scheduled++;
	rec->scheduled_ns = sched_ns;
	rec->warmup = is_warmup(r, rec->id, sched_ns);
	rec->conv = wr->conv;
	rec->turn = wr->turn;
	sse_parser_init(&q->sp, SSE_EVENT_MAX_BYTES, sse_cb, q);
	buf_init(&q->body, RESP_BODY_MAX_BYTES);
	buf_init(&q->answer, WL_ANSWER_MAX_BYTES + 64);
	q->next = r->inflight_head;
	if (q->next)
		q->next->prev = q;
	r->inflight_head = q;
	r->inflight++;

	char target[512];
	snprintf(target, sizeof(target), "%s%s", r->cfg->base_path, wr->path);
	static const hc_callbacks cbs = {cb_head, cb_body, cb_done};
	rec->sent_ns = rel_now_ns(r);
	q->req_body = wr->body; /* q owns it now: hc_request sends it from there */
	buf_init(&wr->body, 0);
	wl_request_free(wr);
	q->busy++;
	hc_req *hr = hc_request(r->pool, "POST", target, r->headers, buf_rptr(&q->req_body),
				buf_rlen(&q->req_body), &cbs, q, &r->to);
	q->busy--;
	if (q->ended) { /* it finished inside hc_request */
		req_release(q);
		return;
	}
	q->hr = hr;
	if (!q->hr) {
		set_err(q, ERR_PROTOCOL, "the request could not be started (out of memory)");
		req_end(q, 1);
	}
}

/* Whether the arrival process may make another arrival (counts, duration). */
static int may_schedule(run *r, uint64_t sched_ns)
{
	if (r->arrivals_done || r->stopping)
		return 0;
	if (r->scheduled >= r->total_limit ||
	    (r->arrivals_end_ns && sched_ns >= r->arrivals_end_ns)) {
		r->arrivals_done = 1;
		return 0;
	}
	return 1;
}

static int64_t arrival_timer_cb(ev_loop *loop, uint64_t id, void *arg)
{
	run *r = arg;
	r->arrival_timer = 0;
	pump(r);
	return -1;
}

static void pump_cb(ev_loop *loop, void *arg)
{
	run *r = arg;
	r->pump_queued = 0;
	pump(r);
}

static void pump_soon(run *r)
{
	if (r->pump_queued || r->stopping)
		return;
	if (ev_defer(r->loop, pump_cb, r) == 0)
		r->pump_queued = 1;
}

static void run_stop(run *r, const char *reason)
{
	if (r->stopping)
		return;
	r->stopping = 1;
	r->res->stop_reason = reason;
	while (r->inflight_head)
		req_end(r->inflight_head, 0);
	ev_stop(r->loop);
}

static void pump(run *r)
{
	if (r->stopping)
		return;
	int open = r->cfg->rate > 0;
	for (;;) {
		uint64_t now = rel_now_ns(r);
		uint64_t sched;
		if (open) {
			if (r->next_arrival_ns > now)
				break;
			sched = r->next_arrival_ns;
		} else {
			if (r->inflight >= r->cfg->concurrency)
				break;
			sched = now;
		}
		if (r->inflight >= r->max_inflight)
			break;
		if (!may_schedule(r, sched))
			break;
		wl_request wr;
		int rc = workload_next(r->wl, &wr);
		if (rc == WL_EXHAUSTED) {
			r->arrivals_done = 1;
			break;
		}
		if (rc == WL_WAIT) {
			r->waiting_conv = 1; /* a conversation must answer first */
			break;
		}
		if (rc < 0) {
			r->skipped_bodies++;
			log_ratelimited(LOG_WARN, "a request body could not be built; skipped");
			continue;
		}
		if (r->waiting_conv) {
			/* The arrival waited for the workload, not for the server: its
			 * clock (and the arrival process) restarts now. */
			r->waiting_conv = 0;
			r->res->deferred_arrivals++;
			sched = now;
			if (open)
				r->next_arrival_ns = now;
		}
		req_start(r, &wr, sched);
		if (open)
			r->next_arrival_ns += (uint64_t)(rng_exponential(&r->rng, r->cfg->rate) * 1e9);
		if (r->stopping)
			return;
	}
	if (r->arrivals_done && r->inflight == 0) {
		run_stop(r, "done");
		return;
	}
	if (open && !r->arrivals_done && !r->waiting_conv && r->inflight < r->max_inflight) {
		uint64_t now = rel_now_ns(r);
		uint64_t wait_ns = r->next_arrival_ns > now ? r->next_arrival_ns - now : 0;
		uint64_t wait_ms = (wait_ns + 999999) / 1000000;
		if (r->arrival_timer)
			ev_timer_set(r->loop, r->arrival_timer, wait_ms);
		else
			r->arrival_timer = ev_timer_add(r->loop, wait_ms, arrival_timer_cb, r);
	}
}

/* ------------------------------------------------------------ progress, stop */

static void progress_draw(run *r, int final)
{
	bench_results *s = r->res;
	double t = (double)rel_now_ns(r) / 1e9;
	uint64_t errs = 0;
	for (int k = 1; k < ERR_KINDS; k++)
		errs += s->errors_by_kind[k];
	double win = s->have_window && t > (double)s->window_start_ns / 1e9 ? t - (double)s->window_start_ns / 1e9 : 0;
	fprintf(stderr, "\r%7.1fs  sent %llu  done %llu  ok %llu  err %llu  in flight %d  %.1f req/s  %.0f tok/s   ",
		t, (unsigned long long)r->scheduled,
		(unsigned long long)(s->finished + s->warmup_finished), (unsigned long long)s->ok,
		(unsigned long long)errs, r->inflight, win > 0 ? (double)s->finished / win : 0.0,
		win > 0 ? (double)s->output_tokens / win : 0.0);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
	r->progress_drawn = 1;
}

static int64_t progress_cb(ev_loop *loop, uint64_t id, void *arg)
{
	progress_draw(arg, 0);
	return PROGRESS_INTERVAL_MS;
}

static int64_t deadline_cb(ev_loop *loop, uint64_t id, void *arg)
{
	run *r = arg;
	r->deadline_timer = 0;
	log_warn("the deadline of %.1f s passed; stopping", (double)r->cfg->deadline_ms / 1000.0);
	run_stop(r, "deadline");
	return -1;
}

static void signal_cb(ev_loop *loop, int signo, void *arg)
{
	run_stop(arg, "signal");
}

/* ------------------------------------------------------------ setup */

static void hostport_of(const bench_config *cfg, char *out, size_t size)
{
	if (strchr(cfg->host, ':'))
		snprintf(out, size, "[%s]:%d", cfg->host, cfg->port);
	else
		snprintf(out, size, "%s:%d", cfg->host, cfg->port);
}

/* Asks GET /v1/models for the first model id. */
static int ask_model(const bench_config *cfg, const char *hostport, const char *headers,
		     char *model, size_t size, char *err, size_t err_size)
{
	char target[512];
	snprintf(target, sizeof(target), "%s/v1/models", cfg->base_path);
	buf body;
	buf_init(&body, 4u << 20);
	int status = 0;
	int rc = hc_fetch(hostport, "GET", target, headers, NULL, 0, MODELS_TIMEOUT_MS, &status, &body);
	if (rc != HC_OK || status != 200) {
		if (rc != HC_OK)
			snprintf(err, err_size, "GET %s from %s failed (%s); pass --model NAME", target,
				 hostport, hc_err_name(rc));
		else
			snprintf(err, err_size, "GET %s from %s answered %d; pass --model NAME", target,
				 hostport, status);
		buf_free(&body);
		return -1;
	}
	json_doc *d = json_parse(buf_rptr(&body), buf_rlen(&body), 0, NULL);
	const char *id = d ? json_str(json_get(json_at(json_get(json_root(d), "data"), 0), "id"), NULL) : NULL;
	if (!id || !*id || strlen(id) >= size) {
		snprintf(err, err_size, "GET %s: no model id in the answer; pass --model NAME", target);
		json_doc_free(d);
		buf_free(&body);
		return -1;
	}
	str_copy(model, id, size);
	json_doc_free(d);
	buf_free(&body);
	return 0;
}

/* Raises the open-file limit to its hard maximum and caps in-flight requests to
 * fit in it. */
static int fit_fd_limit(int want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	long room = (long)(rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur) - 64;
	if (room < 1)
		room = 1;
	if (want > room) {
		log_warn("--max-inflight %d is over the open-file limit; using %ld", want, room);
		return (int)room;
	}
	return want;
}

int bench_run(const bench_config *cfg, bench_results *res, char *err, size_t err_size)
{
	run r;
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.res = res;
	int rc = -1;
	char hostport[300];
	hostport_of(cfg, hostport, sizeof(hostport));

	/* Header lines every request carries. */
	buf h;
	buf_init(&h, sizeof(r.headers) - 1);
	buf_puts(&h, "Content-Type: application/json\r\nUser-Agent: infergate-bench\r\n");
	for (int i = 0; i < cfg->n_headers; i++)
		if (buf_printf(&h, "%s\r\n", cfg->headers[i]) < 0) {
			snprintf(err, err_size, "--header: more than %zu bytes of headers", sizeof(r.headers));
			buf_free(&h);
			return -1;
		}
	str_copy(r.headers, buf_rptr(&h), sizeof(r.headers));
	buf_free(&h);

	if (cfg->model)
		str_copy(res->model, cfg->model, sizeof(res->model));
	else if (ask_model(cfg, hostport, r.headers, res->model, sizeof(res->model), err, err_size) < 0)
		return -1;

	r.wl = workload_new(cfg, res->model, err, err_size);
	if (!r.wl)
		return -1;
	if (cfg->per_request_path) {
		r.per_req = strcmp(cfg->per_request_path, "-") == 0 ? stdout : fopen(cfg->per_request_path, "w");
		if (!r.per_req) {
			snprintf(err, err_size, "--per-request %s: %s", cfg->per_request_path, strerror(errno));
			goto out;
		}
	}
	r.loop = ev_new();
	if (!r.loop) {
		snprintf(err, err_size, "no event loop: %s", strerror(errno));
		goto out;
	}
	r.max_inflight = fit_fd_limit(cfg->max_inflight);
	r.pool = hc_pool_new(r.loop, hostport, (size_t)r.max_inflight, err, err_size);
	if (!r.pool)
		goto out;
	r.to.connect_ms = cfg->timeout_ms < 5000 ? cfg->timeout_ms : 5000;
	r.to.idle_ms = cfg->timeout_ms;
	r.to.total_ms = cfg->timeout_ms;

	r.total_limit = cfg->warmup_requests + (cfg->requests ? cfg->requests : BENCH_MAX_REQUESTS_CAP);
	if (cfg->duration_ms)
		r.arrivals_end_ns = (cfg->warmup_ms + cfg->duration_ms) * 1000000ULL;
	r.rng = hash64("arrivals", 8, cfg->seed);
	signal(SIGPIPE, SIG_IGN);
	ev_signal(r.loop, SIGINT, signal_cb, &r);
	ev_signal(r.loop, SIGTERM, signal_cb, &r);

	r.t0_ns = time_mono_ns();
	r.next_arrival_ns = 0; /* the first arrival at the start */
	r.deadline_timer = ev_timer_add(r.loop, cfg->deadline_ms, deadline_cb, &r);
	if (cfg->progress)
		r.progress_timer = ev_timer_add(r.loop, PROGRESS_INTERVAL_MS, progress_cb, &r);
	pump(&r);
	if (!r.stopping && ev_run(r.loop) < 0)
		log_error("the event loop failed: %s", strerror(errno));
	if (!r.stopping)
		run_stop(&r, "error");
	res->elapsed_s = (double)rel_now_ns(&r) / 1e9;
	if (cfg->progress)
		progress_draw(&r, 1);
	if (r.skipped_bodies)
		log_warn("%llu request bodies could not be built and were skipped",
			 (unsigned long long)r.skipped_bodies);
	rc = 0;
out:
	if (r.pool)
		hc_pool_free(r.pool);
	if (r.loop) {
		ev_run_once(r.loop, 0); /* deferred frees of the client */
		ev_free(r.loop);
	}
	if (r.per_req && r.per_req != stdout)
		fclose(r.per_req);
	else if (r.per_req)
		fflush(stdout);
	workload_free(r.wl);
	return rc;
}
