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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/openai_api.h"
#include "core/sse.h"
#include "core/util.h"

/* One completion request in flight. Owner: itself — freed by call_free when
 * its answer ended, or by on_close when the client left first. */
typedef struct sim_call {
	sim_server *s;
	httpd_req *r;
	sim_req req;
	int chat, stream, include_usage;
	char id[48];
	oai_answer answer; /* id, the served name (lives in the config), created */
	size_t sent;       /* tokens written to the client */
	int64_t cut_after; /* data events before the close fault cuts; -1 none */
	uint64_t events;   /* data events written */
	int started;       /* stream head written */
	int failed;        /* the connection is going away; on_close frees */
	int lora;          /* its adapter's index (sim_lora.h), -1: none */
} sim_call;

static const char *const finish_names[] = {"stop", "length", "abort"};

static void call_free(sim_call *c)
{
	sim_lora_end(&c->s->cfg.lora, c->lora);
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
	int64_t max_tokens; /* -1 when absent */
	int ignore_eos;
	oai_stops stops;
	int add_generation_prompt, continue_final_message;
	const json_val *messages, *prompt;
} params;

/* infergate-sim answers one prompt per request: a string, token ids, or a
 * list holding one of those. */
static int parse_prompt(const json_val *root, params *p, oai_err *e)
{
	int64_t n;
	const json_val *pr = json_get(root, "prompt");
	if (oai_absent(pr)) return oai_fail(e, 400, "prompt", "prompt: Field required");
	if (json_is(pr, JSON_ARRAY)) {
		if (json_count(pr) == 0) return oai_fail(e, 400, "prompt", "Prompt cannot be empty.");
		const json_val *first = json_at(pr, 0);
		if (json_is(first, JSON_STRING) || json_is(first, JSON_ARRAY)) {
			if (json_count(pr) > 1)
				return oai_fail(e, 400, "prompt", "Batched prompts are not supported by infergate-sim; send one prompt per request.");
			pr = first;
		}
		if (json_is(pr, JSON_ARRAY)) {
			for (size_t i = 0; i < json_count(pr); i++)
				if (oai_int_sat(json_at(pr, i), &n) < 0 || n < 0)
					return oai_fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
		}
	} else if (!json_is(pr, JSON_STRING)) {
		return oai_fail(e, 400, "prompt", "prompt: Input should be a string, a list of strings or a list of token ids");
	}
	p->prompt = pr;
	return 0;
}

/* The request's fields in vLLM's order (openai_api.h), with the simulator's
 * own limits: one prompt, n = 1, no logprobs returned. */
/* llama.cpp's prefill_assistant (on by default): a final assistant message is
 * continued even without continue_final_message; two at the end are refused. */
static int llamacpp_prefill(params *p, oai_err *e)
{
	size_t n = json_count(p->messages);
	const char *last = json_str(json_get(json_at(p->messages, n - 1), "role"), "");
	if (p->continue_final_message || strcmp(last, "assistant")) return 0;
	if (n >= 2 && !strcmp(json_str(json_get(json_at(p->messages, n - 2), "role"), ""), "assistant"))
		return oai_fail(e, 400, NULL, "Cannot have 2 or more assistant messages at the end of the list.");
	p->continue_final_message = 1;
	p->add_generation_prompt = 0;
	return 0;
}

static int parse_params(sim_server *s, const json_val *root, int chat, params *p, oai_err *e)
{
	oai_sampling sampling;
	const char *model;
	int64_t n;
	int logprobs;
	memset(p, 0, sizeof(*p));
	if (oai_parse_model(root, &model, e) < 0) return -1;
	if (chat ? oai_parse_messages(root, 1, &p->messages, e) : parse_prompt(root, p, e)) return -1;
	if (oai_parse_stream(root, &p->stream, &p->include_usage, e) < 0) return -1;
	if (oai_parse_max_tokens(root, chat, &p->max_tokens, e) < 0) return -1;
	if (!chat && oai_get_int(root, "max_completion_tokens", -1, &n, e) == 0 &&
	    !oai_absent(json_get(root, "max_completion_tokens")) && n < 1)
		return oai_fail(e, 400, "max_completion_tokens", "max_completion_tokens must be at least 1, got %" PRId64 ".", n);
	if (oai_parse_n(root, INT64_MAX, &n, e) < 0) return -1;
	if (n > 1) return oai_fail(e, 400, "n", "n > 1 is not supported by infergate-sim (got %" PRId64 ").", n);
	if (oai_parse_sampling(root, &sampling, e) < 0) return -1;
	if (oai_parse_logprobs(root, chat, -1, &logprobs, e) < 0) return -1;
	if (oai_get_bool(root, "ignore_eos", 0, &p->ignore_eos, e) < 0) return -1;
	if (oai_parse_chat_flags(root, chat, &p->add_generation_prompt, &p->continue_final_message, e) < 0) return -1;
	if (chat && s->cfg.llamacpp && llamacpp_prefill(p, e) < 0) return -1;
	if (oai_parse_stop(root, &p->stops, e) < 0) return -1;

	/* Checked last, as vLLM does once the request itself is valid. */
	p->model = sim_server_model(s, model);
	if (!p->model)
		return oai_fail_model(e, model);
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
			int64_t id = 0;
			oai_int_sat(json_at(pr, i), &id); /* checked by parse_prompt (2.0 is 2) */
			int len = snprintf(marker, sizeof(marker), "%" PRId64, id);
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

static void write_finish(sim_call *c, json_w *w)
{
	oai_write_finish(w, finish_names[c->req.finish], c->req.stop_reason, -1);
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
	if (usage) {
		oai_write_usage_chunk(&w, &c->answer, c->req.prompt_tokens, c->req.out_tokens);
	} else if (i == SIZE_MAX) {
		oai_write_role_chunk(&w, &c->answer, 0);
	} else {
		const char *tok = "";
		size_t len = 0;
		if (i < c->req.out_tokens) tok = sim_req_token(&c->req, i, &len);
		oai_write_chunk(&w, &c->answer, 0, tok, len);
		jw_key(&w, "logprobs");
		jw_null(&w);
		if (with_finish) write_finish(c, &w);
		else oai_write_no_finish(&w, &c->answer);
		oai_write_chunk_end(&w);
	}
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
	buf_reset(b);
	jw_init(&w, b);
	oai_write_answer(&w, &c->answer);
	oai_write_choice(&w, &c->answer, 0, buf_rptr(&c->req.text), buf_rlen(&c->req.text));
	jw_key(&w, "logprobs");
	jw_null(&w);
	write_finish(c, &w);
	oai_write_choice_end(&w, &c->answer, 0);
	oai_write_answer_end(&w, &c->answer, c->req.prompt_tokens, c->req.out_tokens);
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
	oai_err e = {0};
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

	json_doc *doc = oai_parse_body(body, len, &e);
	if (!doc) {
		httpd_error(r, e.status, e.msg, e.param);
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
	c->lora = -1;
	sim_req_init(&c->req, (size_t)s->cfg.max_model_len + 1);
	if (parse_params(s, json_root(doc), chat, &p, &e) < 0) goto error;
	c->stream = p.stream;
	c->include_usage = p.include_usage;

	sim_text t;
	uint32_t max_len = s->cfg.max_model_len;
	if (render_prompt(&p, chat, &t, &c->req) < 0 || c->req.words.n >= max_len) {
		oai_fail(&e, 400, NULL, "This model's maximum context length is %u tokens. However, your request has %s%zu input tokens. Please reduce the length of the input messages.",
			 max_len, c->req.words.n > max_len ? "more than " : "", MIN((size_t)max_len, c->req.words.n));
		goto error;
	}
	c->req.prompt_tokens = c->req.words.n;
	size_t room = max_len - c->req.prompt_tokens;
	size_t max_tokens;
	if (p.max_tokens >= 1) {
		if ((uint64_t)p.max_tokens > room) {
			oai_fail(&e, 400, NULL, "This model's maximum context length is %u tokens. However, you requested %" PRIu64 " tokens (%zu in the messages, %" PRId64 " in the completion). Please reduce the length of the messages or completion.",
				 max_len, (uint64_t)c->req.prompt_tokens + (uint64_t)p.max_tokens, c->req.prompt_tokens, p.max_tokens);
			goto error;
		}
		max_tokens = (size_t)p.max_tokens;
	} else {
		max_tokens = chat ? room : MIN(room, (size_t)16);
	}
	int use_eos = chat && p.max_tokens < 1 && !p.ignore_eos;
	if (sim_req_generate(&c->req, &t, max_tokens, use_eos, p.stops.s, p.stops.n) < 0) {
		oai_fail(&e, 500, NULL, "Out of memory while generating.");
		goto error;
	}
	json_doc_free(doc);
	doc = NULL;

	oai_make_id(c->id, sizeof(c->id), chat, &s->id_seq, s->id_salt);
	c->answer = (oai_answer){.id = c->id, .model = p.model, .created = (int64_t)time_wall_s(), .chat = chat};
	if (c->stream) c->cut_after = sim_faults_take_close(&s->faults);

	c->req.on_progress = on_progress;
	c->req.arg = c;
	c->lora = sim_lora_begin(&s->cfg.lora, p.model, &c->req.extra_ttft_ms);
	if (sim_engine_submit(s->engine, &c->req, &e.status, e.msg, sizeof(e.msg)) < 0) goto error;
	httpd_on_close(r, call_on_close, c);
	return;

error:
	if (doc) json_doc_free(doc);
	httpd_error(r, e.status ? e.status : 400, e.msg, e.param);
	call_free(c);
}
