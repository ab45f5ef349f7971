/*
 * sim_openai.c — /v1/chat/completions and /v1/completions of infergate-sim:
 * vLLM's validation and error texts, the prompt rendered into words (see
 * docs/sim.md for the rule), the output decided up front (sim_text.h) and
 * paced by the engine, then written as vLLM writes it: one JSON answer, or
 * server-sent events (role chunk, one chunk per token, the finish, the usage
 * chunk, [DONE]). Per-request memory is one sim_call, freed when the answer
 * ends or the client leaves.
 */
#include "sim/sim_server.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/sse.h"
#include "core/util.h"

/* One completion request in flight. Owner: itself — freed by call_free when
 * its answer ended, or by on_close when the client left first. */
typedef struct sim_call {
	sim_server *s;
	httpd_req *r;
	sim_req req;
	int chat, stream, include_usage;
	const char *model;      /* the served name (lives in the config) */
	char id[48];
	int64_t created;
	size_t sent;            /* tokens written to the client */
	int64_t cut_after;      /* data events before the close fault cuts; -1 none */
	uint64_t events;        /* data events written */
	int started;            /* stream head written */
	int failed;             /* the connection is going away; on_close frees */
} sim_call;

static const char *const finish_names[] = {"stop", "length", "abort"};

static void call_free(sim_call *c)
{
	sim_req_deinit(&c->req);
	free(c);
}

static void call_on_close(httpd_req *r, void *arg)
{
	sim_call *c = arg;
	sim_engine_abort(c->s->engine, &c->req);
	call_free(c);
}

/* ---- request parsing and validation */

typedef struct params {
	const char *model;
	int stream, include_usage;
	int64_t max_tokens;            /* -1 when absent */
	int ignore_eos;
	const char *stops[SIM_MAX_STOPS];
	size_t n_stops;
	int add_generation_prompt, continue_final_message;
	const json_val *messages, *prompt;
} params;

/* An error answer being built: status, message, param. */
typedef struct verr {
	int status;
	const char *param;
	char msg[512];
} verr;

static int fail(verr *e, int status, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(verr *e, int status, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->status = status;
	e->param = param;
	return -1;
}

static int absent(const json_val *v) { return !v || json_is(v, JSON_NULL); }

static int get_bool(const json_val *root, const char *key, int dflt, int *out, verr *e)
{
	const json_val *v = json_get(root, key);
	if (absent(v)) { *out = dflt; return 0; }
	if (!json_is(v, JSON_TRUE) && !json_is(v, JSON_FALSE))
		return fail(e, 400, key, "%s: Input should be a valid boolean", key);
	*out = json_bool(v, dflt);
	return 0;
}

/* An optional integer; *out = dflt when absent. */
static int get_int(const json_val *root, const char *key, int64_t dflt, int64_t *out, verr *e)
{
	const json_val *v = json_get(root, key);
	if (absent(v)) { *out = dflt; return 0; }
	if (json_int64(v, out) < 0) return fail(e, 400, key, "%s: Input should be a valid integer", key);
	return 0;
}

/* An optional number; 1 when present. */
static int get_num(const json_val *root, const char *key, double *out, verr *e)
{
	const json_val *v = json_get(root, key);
	if (absent(v)) return 0;
	if (!json_is(v, JSON_NUMBER)) return fail(e, 400, key, "%s: Input should be a valid number", key);
	*out = json_num(v, 0);
	return 1;
}

static int parse_params(sim_server *s, const json_val *root, int chat, params *p, verr *e)
{
	double x;
	int64_t n;
	int rc, logprobs = 0;
	memset(p, 0, sizeof(*p));
	if (!json_is(root, JSON_OBJECT)) return fail(e, 400, NULL, "The request body must be a JSON object.");

	const json_val *model = json_get(root, "model");
	if (!absent(model) && !json_is(model, JSON_STRING))
		return fail(e, 400, "model", "model: Input should be a valid string");
	if (chat) {
		p->messages = json_get(root, "messages");
		if (!json_is(p->messages, JSON_ARRAY))
			return fail(e, 400, "messages", "messages: Field required (a list of messages)");
		if (json_count(p->messages) == 0)
			return fail(e, 400, "messages", "messages: List should have at least 1 item");
		for (size_t i = 0; i < json_count(p->messages); i++) {
			const json_val *m = json_at(p->messages, i), *role = json_get(m, "role");
			const json_val *content = json_get(m, "content");
			if (!json_is(m, JSON_OBJECT) || !json_is(role, JSON_STRING))
				return fail(e, 400, "messages", "messages.%zu: each message needs a string role", i);
			if (!absent(content) && !json_is(content, JSON_STRING) && !json_is(content, JSON_ARRAY))
				return fail(e, 400, "messages", "messages.%zu.content: Input should be a valid string or a list of parts", i);
			for (size_t k = 0; json_is(content, JSON_ARRAY) && k < json_count(content); k++) {
				const json_val *part = json_at(content, k);
				if (!json_is(part, JSON_OBJECT) || !json_is(json_get(part, "type"), JSON_STRING))
					return fail(e, 400, "messages", "messages.%zu.content.%zu: a part needs a type", i, k);
			}
		}
	} else {
		p->prompt = json_get(root, "prompt");
		const json_val *pr = p->prompt;
		if (absent(pr)) return fail(e, 400, "prompt", "prompt: Field required");
		if (json_is(pr, JSON_ARRAY)) {
			if (json_count(pr) == 0) return fail(e, 400, "prompt", "Prompt cannot be empty.");
			const json_val *first = json_at(pr, 0);
			if (json_is(first, JSON_STRING) || json_is(first, JSON_ARRAY)) {
				if (json_count(pr) > 1)
					return fail(e, 400, "prompt", "Batched prompts are not supported by infergate-sim; send one prompt per request.");
				pr = first;
			}
			if (json_is(pr, JSON_ARRAY)) {
				for (size_t i = 0; i < json_count(pr); i++)
					if (json_int64(json_at(pr, i), &n) < 0 || n < 0)
						return fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
			}
			p->prompt = pr;
		} else if (!json_is(pr, JSON_STRING)) {
			return fail(e, 400, "prompt", "prompt: Input should be a string, a list of strings or a list of token ids");
		}
	}

	if (get_bool(root, "stream", 0, &p->stream, e) < 0) return -1;
	const json_val *so = json_get(root, "stream_options");
	if (!absent(so)) {
		if (!json_is(so, JSON_OBJECT))
			return fail(e, 400, "stream_options", "stream_options: Input should be a valid dictionary");
		if (!p->stream)
			return fail(e, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
		if (get_bool(so, "include_usage", 0, &p->include_usage, e) < 0) return -1;
	}

	int64_t mt, mct;
	if (get_int(root, "max_tokens", -1, &mt, e) < 0) return -1;
	if (get_int(root, "max_completion_tokens", -1, &mct, e) < 0) return -1;
	if (!absent(json_get(root, "max_tokens")) && mt < 1)
		return fail(e, 400, "max_tokens", "max_tokens must be at least 1, got %" PRId64 ".", mt);
	if (!absent(json_get(root, "max_completion_tokens")) && mct < 1)
		return fail(e, 400, "max_completion_tokens", "max_completion_tokens must be at least 1, got %" PRId64 ".", mct);
	p->max_tokens = chat && mct >= 1 ? mct : mt;

	if (get_int(root, "n", 1, &n, e) < 0) return -1;
	if (n < 1) return fail(e, 400, "n", "n must be at least 1, got %" PRId64 ".", n);
	if (n > 1) return fail(e, 400, "n", "n > 1 is not supported by infergate-sim (got %" PRId64 ").", n);
	if ((rc = get_num(root, "temperature", &x, e)) < 0) return -1;
	if (rc && x < 0) return fail(e, 400, "temperature", "temperature must be non-negative, got %g.", x);
	if ((rc = get_num(root, "top_p", &x, e)) < 0) return -1;
	if (rc && !(x > 0 && x <= 1)) return fail(e, 400, "top_p", "top_p must be in (0, 1], got %g.", x);
	if ((rc = get_num(root, "min_p", &x, e)) < 0) return -1;
	if (rc && !(x >= 0 && x <= 1)) return fail(e, 400, "min_p", "min_p must be in [0, 1], got %g.", x);
	if (get_int(root, "top_k", 0, &n, e) < 0) return -1;
	if (n < -1) return fail(e, 400, "top_k", "top_k must be -1 (disable), or at least 1, got %" PRId64 ".", n);
	if (get_int(root, "seed", 0, &n, e) < 0) return -1;
	for (const char *const *k = (const char *const[]){"presence_penalty", "frequency_penalty", NULL}; *k; k++) {
		if ((rc = get_num(root, *k, &x, e)) < 0) return -1;
		if (rc && !(x >= -2 && x <= 2)) return fail(e, 400, *k, "%s must be in [-2, 2], got %g.", *k, x);
	}
	if ((rc = get_num(root, "repetition_penalty", &x, e)) < 0) return -1;
	if (rc && !(x > 0)) return fail(e, 400, "repetition_penalty", "repetition_penalty must be greater than zero, got %g.", x);
	if (chat) {
		if (get_bool(root, "logprobs", 0, &logprobs, e) < 0) return -1;
		if (get_int(root, "top_logprobs", -1, &n, e) < 0) return -1;
		if (n >= 0 && !logprobs)
			return fail(e, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
	} else if (get_int(root, "logprobs", 0, &n, e) < 0) {
		return -1;
	}
	if (get_bool(root, "ignore_eos", 0, &p->ignore_eos, e) < 0) return -1;
	if (get_bool(root, "add_generation_prompt", 1, &p->add_generation_prompt, e) < 0) return -1;
	if (get_bool(root, "continue_final_message", 0, &p->continue_final_message, e) < 0) return -1;
	if (chat && p->add_generation_prompt && p->continue_final_message)
		return fail(e, 400, NULL, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");

	const json_val *stop = json_get(root, "stop");
	if (json_is(stop, JSON_STRING)) {
		if (stop->u.str.len) p->stops[p->n_stops++] = stop->u.str.s;
	} else if (json_is(stop, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(stop); i++) {
			const json_val *v = json_at(stop, i);
			if (!json_is(v, JSON_STRING)) return fail(e, 400, "stop", "stop: Input should be a valid string");
			if (p->n_stops == SIM_MAX_STOPS)
				return fail(e, 400, "stop", "stop: at most %d stop strings", SIM_MAX_STOPS);
			if (v->u.str.len) p->stops[p->n_stops++] = v->u.str.s;
		}
	} else if (!absent(stop)) {
		return fail(e, 400, "stop", "stop: Input should be a valid string or a list of strings");
	}
	for (size_t i = 0; i < p->n_stops; i++)
		if (strlen(p->stops[i]) > SIM_MAX_STOP_BYTES)
			return fail(e, 400, "stop", "stop: each stop string is at most %d bytes", SIM_MAX_STOP_BYTES);

	/* Checked last, as vLLM does once the request itself is valid. */
	p->model = sim_server_model(s, absent(model) ? NULL : json_str(model, NULL));
	if (!p->model)
		return fail(e, 404, "model", "The model `%.200s` does not exist.", json_str(model, ""));
	return 0;
}

/* ---- the prompt as words (the rule is in docs/sim.md) */

static int feed(sim_text *t, sim_req *r, const char *s, size_t len)
{
	return sim_text_feed(t, &r->words, s, len) < 0 ? -1 : 0;
}

static int feed_content(sim_text *t, sim_req *r, const json_val *content)
{
	if (json_is(content, JSON_STRING)) return feed(t, r, content->u.str.s, content->u.str.len);
	for (size_t k = 0; json_is(content, JSON_ARRAY) && k < json_count(content); k++) {
		const json_val *text = json_get(json_at(content, k), "text");
		if (json_is(text, JSON_STRING) && feed(t, r, text->u.str.s, text->u.str.len) < 0) return -1;
	}
	return 0;
}

/* Renders the prompt into r->words and t. Returns 0, or -1 past the word cap. */
static int render_prompt(const params *p, int chat, sim_text *t, sim_req *r)
{
	char marker[80];
	sim_text_init(t);
	if (!chat) {
		const json_val *pr = p->prompt;
		if (json_is(pr, JSON_STRING)) return feed(t, r, pr->u.str.s, pr->u.str.len);
		for (size_t i = 0; i < json_count(pr); i++) {
			int len = snprintf(marker, sizeof(marker), "%" PRId64, json_at(pr, i)->i);
			if (feed(t, r, marker, (size_t)len) < 0) return -1;
		}
		return 0;
	}
	size_t n = json_count(p->messages);
	for (size_t i = 0; i < n; i++) {
		const json_val *m = json_at(p->messages, i);
		const char *role = json_str(json_get(m, "role"), "user");
		int len = snprintf(marker, sizeof(marker), "%.64s:", role);
		if (feed(t, r, marker, (size_t)len) < 0) return -1;
		sim_text_break(t);
		if (feed_content(t, r, json_get(m, "content")) < 0) return -1;
		if (!(p->continue_final_message && i == n - 1)) sim_text_break(t);
	}
	if (p->add_generation_prompt && !p->continue_final_message) {
		if (feed(t, r, "assistant:", 10) < 0) return -1;
		sim_text_break(t);
	}
	return 0;
}

/* ---- answers */

/* Opens a chunk object: id, object, created, model, then "choices". */
static void chunk_begin(sim_call *c, json_w *w)
{
	jw_obj_begin(w);
	jw_key(w, "id"); jw_str(w, c->id);
	jw_key(w, "object"); jw_str(w, c->chat ? "chat.completion.chunk" : "text_completion");
	jw_key(w, "created"); jw_int(w, c->created);
	jw_key(w, "model"); jw_str(w, c->model);
}

static void write_usage(sim_call *c, json_w *w)
{
	jw_key(w, "usage");
	jw_obj_begin(w);
	jw_key(w, "prompt_tokens"); jw_uint(w, c->req.prompt_tokens);
	jw_key(w, "total_tokens"); jw_uint(w, c->req.prompt_tokens + c->req.out_tokens);
	jw_key(w, "completion_tokens"); jw_uint(w, c->req.out_tokens);
	jw_obj_end(w);
}

static void write_finish(sim_call *c, json_w *w)
{
	jw_key(w, "finish_reason"); jw_str(w, finish_names[c->req.finish]);
	jw_key(w, "stop_reason"); jw_str(w, c->req.stop_reason);
}

/* Sends one SSE event; applies the close fault first.
 * Returns 0, or -1 when the stream is over (cut or the client gone). */
static int send_event(sim_call *c, const char *data, size_t len)
{
	if (c->failed) return -1;
	if (c->cut_after >= 0 && c->events >= (uint64_t)c->cut_after) {
		log_info("fault: closing a stream after %" PRIu64 " events", c->events);
		c->failed = 1;
		sim_engine_abort(c->s->engine, &c->req);
		httpd_abort(c->r);
		return -1;
	}
	if (httpd_stream_write(c->r, data, len) < 0) {
		c->failed = 1;
		sim_engine_abort(c->s->engine, &c->req);
		return -1;
	}
	c->events++;
	return 0;
}

/* Builds the chunk for token i (the role chunk when i is SIZE_MAX, the usage
 * chunk when usage) and sends it as one "data:" event. */
static int send_chunk(sim_call *c, size_t i, int with_finish, int usage)
{
	buf *b = &c->s->scratch, *ev = &c->s->event;
	json_w w;
	buf_reset(b);
	jw_init(&w, b);
	chunk_begin(c, &w);
	jw_key(&w, "choices");
	jw_arr_begin(&w);
	if (!usage) {
		const char *tok = "";
		size_t len = 0;
		if (i != SIZE_MAX && i < c->req.out_tokens) tok = sim_req_token(&c->req, i, &len);
		jw_obj_begin(&w);
		jw_key(&w, "index"); jw_int(&w, 0);
		if (c->chat) {
			jw_key(&w, "delta");
			jw_obj_begin(&w);
			if (i == SIZE_MAX) { jw_key(&w, "role"); jw_str(&w, "assistant"); }
			jw_key(&w, "content"); jw_strn(&w, tok, len);
			jw_obj_end(&w);
		} else {
			jw_key(&w, "text"); jw_strn(&w, tok, len);
		}
		jw_key(&w, "logprobs"); jw_null(&w);
		if (with_finish) {
			write_finish(c, &w);
		} else {
			jw_key(&w, "finish_reason"); jw_null(&w);
			if (!c->chat) { jw_key(&w, "stop_reason"); jw_null(&w); }
		}
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	if (usage) write_usage(c, &w);
	jw_obj_end(&w);
	buf_reset(ev);
	if (w.error || sse_write_data(ev, buf_rptr(b), buf_rlen(b)) < 0) {
		c->failed = 1;
		sim_engine_abort(c->s->engine, &c->req);
		httpd_abort(c->r);
		return -1;
	}
	return send_event(c, buf_rptr(ev), buf_rlen(ev));
}

static void stream_progress(sim_call *c)
{
	sim_req *q = &c->req;
	if (c->failed) return;
	if (!c->started) {
		c->started = 1;
		if (httpd_stream_start(c->r, 200, "text/event-stream; charset=utf-8", c->s->region_hdr, -1) < 0) {
			c->failed = 1;
			sim_engine_abort(c->s->engine, q);
			return;
		}
		if (c->chat && send_chunk(c, SIZE_MAX, 0, 0) < 0) return;
	}
	while (c->sent < q->emitted) {
		int last = q->done && c->sent + 1 == q->out_tokens;
		if (send_chunk(c, c->sent, last, 0) < 0) return;
		c->sent++;
	}
	if (!q->done) return;
	if (q->out_tokens == 0 && send_chunk(c, 0, 1, 0) < 0) return;
	if (c->include_usage && send_chunk(c, 0, 0, 1) < 0) return;
	buf_reset(&c->s->event);
	sse_write_done(&c->s->event);
	if (send_event(c, buf_rptr(&c->s->event), buf_rlen(&c->s->event)) < 0) return;
	httpd_req *r = c->r;
	httpd_on_close(r, NULL, NULL);
	if (httpd_stream_end(r) < 0) {
		/* The connection is closing; on_close was cancelled, so free here. */
	}
	call_free(c);
}

static void respond_whole(sim_call *c)
{
	buf *b = &c->s->scratch;
	json_w w;
	size_t len = buf_rlen(&c->req.text);
	buf_reset(b);
	jw_init(&w, b);
	jw_obj_begin(&w);
	jw_key(&w, "id"); jw_str(&w, c->id);
	jw_key(&w, "object"); jw_str(&w, c->chat ? "chat.completion" : "text_completion");
	jw_key(&w, "created"); jw_int(&w, c->created);
	jw_key(&w, "model"); jw_str(&w, c->model);
	jw_key(&w, "choices");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_key(&w, "index"); jw_int(&w, 0);
	if (c->chat) {
		jw_key(&w, "message");
		jw_obj_begin(&w);
		jw_key(&w, "role"); jw_str(&w, "assistant");
		jw_key(&w, "content"); jw_strn(&w, buf_rptr(&c->req.text), len);
		jw_key(&w, "tool_calls"); jw_arr_begin(&w); jw_arr_end(&w);
		jw_obj_end(&w);
	} else {
		jw_key(&w, "text"); jw_strn(&w, buf_rptr(&c->req.text), len);
	}
	jw_key(&w, "logprobs"); jw_null(&w);
	write_finish(c, &w);
	if (!c->chat) { jw_key(&w, "prompt_logprobs"); jw_null(&w); }
	jw_obj_end(&w);
	jw_arr_end(&w);
	write_usage(c, &w);
	if (c->chat) { jw_key(&w, "prompt_logprobs"); jw_null(&w); }
	jw_obj_end(&w);
	httpd_req *r = c->r;
	httpd_on_close(r, NULL, NULL);
	if (w.error) httpd_error(r, 500, "The answer is too large.", NULL);
	else httpd_respond(r, 200, "application/json", c->s->region_hdr, buf_rptr(b), buf_rlen(b));
	call_free(c);
}

static void on_progress(sim_req *q, void *arg)
{
	sim_call *c = arg;
	if (c->stream) stream_progress(c);
	else if (q->done && !c->failed) respond_whole(c);
}

/* ---- the handler */

void sim_openai_handle(sim_server *s, httpd_req *r, int chat)
{
	verr e = {0};
	params p;
	size_t len;
	const char *body = httpd_body(r, &len);

	if (s->faults.die_after_requests > 0 && --s->faults.die_after_requests == 0) {
		log_warn("fault: dying now (die_after_requests)");
		raise(SIGKILL);
	}
	int status = sim_faults_take_error(&s->faults);
	if (status) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Simulated failure: error_status %d.", status);
		httpd_error(r, status, msg, NULL);
		return;
	}

	json_error jerr;
	json_doc *doc = json_parse(body, len, 64, &jerr);
	if (!doc) {
		snprintf(e.msg, sizeof(e.msg), "Invalid JSON at line %u column %u: %s", jerr.line, jerr.col, jerr.msg);
		httpd_error(r, 400, e.msg, NULL);
		return;
	}
	sim_call *c = calloc(1, sizeof(*c));
	if (!c) {
		json_doc_free(doc);
		httpd_error(r, 503, "Out of memory.", NULL);
		return;
	}
	c->s = s;
	c->r = r;
	c->chat = chat;
	c->cut_after = -1;
	sim_req_init(&c->req, (size_t)s->cfg.max_model_len + 1);
	if (parse_params(s, json_root(doc), chat, &p, &e) < 0) goto error;
	c->model = p.model;
	c->stream = p.stream;
	c->include_usage = p.include_usage;

	sim_text t;
	uint32_t max_len = s->cfg.max_model_len;
	if (render_prompt(&p, chat, &t, &c->req) < 0 || c->req.words.n >= max_len) {
		fail(&e, 400, NULL, "This model's maximum context length is %u tokens. However, your request has %s%zu input tokens. Please reduce the length of the input messages.",
		     max_len, c->req.words.n > max_len ? "more than " : "", MIN((size_t)max_len, c->req.words.n));
		goto error;
	}
	c->req.prompt_tokens = c->req.words.n;
	size_t room = max_len - c->req.prompt_tokens;
	size_t max_tokens;
	if (p.max_tokens >= 1) {
		if ((uint64_t)p.max_tokens > room) {
			fail(&e, 400, NULL, "This model's maximum context length is %u tokens. However, you requested %" PRIu64 " tokens (%zu in the messages, %" PRId64 " in the completion). Please reduce the length of the messages or completion.",
			     max_len, (uint64_t)c->req.prompt_tokens + (uint64_t)p.max_tokens, c->req.prompt_tokens, p.max_tokens);
			goto error;
		}
		max_tokens = (size_t)p.max_tokens;
	} else {
		max_tokens = chat ? room : MIN(room, (size_t)16);
	}
	int use_eos = chat && p.max_tokens < 1 && !p.ignore_eos;
	if (sim_req_generate(&c->req, &t, max_tokens, use_eos, p.stops, p.n_stops) < 0) {
		fail(&e, 500, NULL, "Out of memory while generating.");
		goto error;
	}
	json_doc_free(doc);
	doc = NULL;

	uint64_t a = hash64(&s->id_seq, sizeof(s->id_seq), s->id_salt);
	uint64_t b = hash64(&a, sizeof(a), s->id_salt ^ 0x5a5a);
	s->id_seq++;
	snprintf(c->id, sizeof(c->id), "%s%016" PRIx64 "%016" PRIx64, chat ? "chatcmpl-" : "cmpl-", a, b);
	c->created = (int64_t)time_wall_s();
	if (c->stream) c->cut_after = sim_faults_take_close(&s->faults);

	c->req.on_progress = on_progress;
	c->req.arg = c;
	if (sim_engine_submit(s->engine, &c->req, &e.status, e.msg, sizeof(e.msg)) < 0) goto error;
	httpd_on_close(r, call_on_close, c);
	return;

error:
	if (doc) json_doc_free(doc);
	httpd_error(r, e.status ? e.status : 400, e.msg, e.param);
	call_free(c);
}
