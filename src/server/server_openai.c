/*
 * server_openai.c — /v1/chat/completions and /v1/completions of
 * infergate-server: vLLM's request fields, defaults, validation and error
 * texts; the prompt rendered (Gemma 3 chat template) and tokenized; one
 * scheduler request per choice (n, and each prompt of a list); the output
 * read as the scheduler publishes it, turned into text by a streaming decoder
 * per choice, cut at stop strings, and written as vLLM writes it — one JSON
 * answer, or server-sent events (role chunk, content deltas, the finish with
 * finish_reason and stop_reason, the usage chunk, [DONE]).
 *
 * Per-request memory is one srv_call (with its parsed body, which the stop
 * strings point into), freed when the answer ended or the client left; a
 * client that leaves aborts its sequences at once (sched_release).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/sse.h"
#include "core/util.h"
#include "infer/chat_template.h"
#include "server/server.h"

#define PROMPT_TEXT_MAX (32u << 20)   /* rendered prompt bytes */
#define BODY_MAX (64u << 20)

/* One choice: one scheduler request and the text made of its tokens. */
typedef struct choice {
	sched_req *q;
	int index;
	int prompt_i;
	int n_read;                 /* tokens taken from q */
	int n_tokens;               /* completion tokens (up to a stop string) */
	tok_stream ts;
	buf text;                   /* echo, then the generated text (cut at a stop) */
	size_t echo_len;            /* stop strings are searched after the echo */
	size_t sent;                /* bytes of text written (stream) */
	int lp_sent;                /* tokens whose logprobs were written (stream) */
	int tok_sent;               /* tokens streamed (one chunk per token, as vLLM) */
	size_t *ends;               /* [max_tokens]: text length after each token */
	int ends_cap;
	int64_t lp_offset;          /* text_offset of the next token (completions), code points */
	int done;
	sched_finish fin;
	const char *stop_str;       /* the stop string that ended it, or NULL */
	int32_t stop_tok;           /* the stop token that ended it, or -1 */
	int finish_sent;
} choice;

struct srv_call {
	server *s;
	httpd_req *r;
	srv_call *prev, *next;
	json_doc *doc;
	int chat, stream, include_usage, echo, include_stop_str;
	int tokens_as_ids;          /* return_tokens_as_token_ids: "token_id:N" in logprobs */
	int logprobs;               /* -1 none, 0 the sampled token, K top */
	const char *stops[SERVER_MAX_STOPS];
	size_t stop_len[SERVER_MAX_STOPS];
	int n_stops;
	size_t max_stop;
	int n_choices;
	choice *ch;
	long prompt_tokens;         /* usage: each prompt once */
	char id[48];
	int64_t created;
	int started;                /* stream head written */
	int failed;                 /* the connection is going away; on_close frees */
	uint64_t t0_ms;
};

/* An error answer being built. */
typedef struct verr {
	int status;
	const char *param;
	char msg[768];
} verr;

static int fail(verr *e, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(verr *e, int status, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->status = status;
	e->param = param;
	return -1;
}

/* ------------------------------------------------------------ prompts */

long server_text_tokens(server *s, const char *text, size_t len, int add_bos, int32_t **ids, char *err, size_t errlen)
{
	size_t cap = 3 * len + 2, n = 0;
	*ids = malloc(cap * sizeof **ids);
	if (!*ids || tokenizer_encode(s->tok, text, len, add_bos, *ids, cap, &n) < 0) {
		free(*ids);
		*ids = NULL;
		snprintf(err, errlen, "cannot tokenize the prompt (out of memory)");
		return -1;
	}
	return (long)n;
}

long server_chat_tokens(server *s, const void *messages_json, int add_generation_prompt, int continue_final_message,
			int32_t **ids, char *err, size_t errlen)
{
	buf text;
	*ids = NULL;
	if (!s->chat_ok) {
		snprintf(err, errlen, "This model has no supported chat template: %s", s->chat_err);
		return -1;
	}
	buf_init(&text, PROMPT_TEXT_MAX);
	if (chat_render(messages_json, add_generation_prompt, continue_final_message, &text, err, errlen) < 0) {
		buf_free(&text);
		return -1;
	}
	long n = server_text_tokens(s, buf_rptr(&text), buf_rlen(&text), 0, ids, err, errlen);
	buf_free(&text);
	return n;
}

/* ------------------------------------------------------------ parameters */

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

static int get_int(const json_val *root, const char *key, int64_t dflt, int64_t *out, verr *e)
{
	const json_val *v = json_get(root, key);
	if (absent(v)) { *out = dflt; return 0; }
	if (json_int64(v, out) < 0) return fail(e, 400, key, "%s: Input should be a valid integer", key);
	return 0;
}

/* 1 when present (then *out is set), 0 when absent, -1 on a bad type. */
static int get_num(const json_val *root, const char *key, double *out, verr *e)
{
	const json_val *v = json_get(root, key);
	if (absent(v)) return 0;
	if (!json_is(v, JSON_NUMBER)) return fail(e, 400, key, "%s: Input should be a valid number", key);
	*out = json_num(v, 0);
	return 1;
}

typedef struct params {
	int64_t max_tokens;         /* -1: the default */
	int64_t n;
	sched_params sp;
	int add_generation_prompt, continue_final_message;
	const json_val *messages, *prompt;
} params;

static int parse_params(server *s, srv_call *c, const json_val *root, params *p, verr *e)
{
	double x;
	int64_t n;
	int rc;
	const model_generation *g = &engine_model(s->e)->gen;
	memset(p, 0, sizeof *p);
	c->logprobs = -1;

	const json_val *model = json_get(root, "model");
	if (!absent(model) && !json_is(model, JSON_STRING))
		return fail(e, 400, "model", "model: Input should be a valid string");
	if (c->chat) {
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
		}
	} else {
		p->prompt = json_get(root, "prompt");
		const json_val *pr = p->prompt;
		if (absent(pr)) return fail(e, 400, "prompt", "prompt: Field required");
		if (json_is(pr, JSON_ARRAY)) {
			if (json_count(pr) == 0) return fail(e, 400, "prompt", "Prompt cannot be empty.");
			int kind = json_at(pr, 0)->type;
			for (size_t i = 0; i < json_count(pr); i++) {
				const json_val *it = json_at(pr, i);
				if (kind == JSON_NUMBER) {
					if (json_int64(it, &n) < 0 || n < 0)
						return fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
				} else if (kind == JSON_STRING) {
					if (!json_is(it, JSON_STRING))
						return fail(e, 400, "prompt", "prompt: a list of prompts must be all strings or all token-id lists");
				} else if (kind == JSON_ARRAY) {
					if (!json_is(it, JSON_ARRAY) || json_count(it) == 0)
						return fail(e, 400, "prompt", "prompt: each token-id list must be a non-empty list");
					for (size_t k = 0; k < json_count(it); k++)
						if (json_int64(json_at(it, k), &n) < 0 || n < 0)
							return fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
				} else {
					return fail(e, 400, "prompt", "prompt: Input should be a string, a list of strings, a list of token ids or a list of token-id lists");
				}
			}
		} else if (!json_is(pr, JSON_STRING)) {
			return fail(e, 400, "prompt", "prompt: Input should be a string, a list of strings, a list of token ids or a list of token-id lists");
		}
	}

	if (get_bool(root, "stream", 0, &c->stream, e) < 0) return -1;
	const json_val *so = json_get(root, "stream_options");
	if (!absent(so)) {
		if (!json_is(so, JSON_OBJECT))
			return fail(e, 400, "stream_options", "stream_options: Input should be a valid dictionary");
		if (!c->stream)
			return fail(e, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
		if (get_bool(so, "include_usage", 0, &c->include_usage, e) < 0) return -1;
	}

	int64_t mt, mct;
	if (get_int(root, "max_tokens", -1, &mt, e) < 0) return -1;
	if (get_int(root, "max_completion_tokens", -1, &mct, e) < 0) return -1;
	if (!absent(json_get(root, "max_tokens")) && mt < 1)
		return fail(e, 400, "max_tokens", "max_tokens must be at least 1, got %" PRId64 ".", mt);
	if (c->chat && !absent(json_get(root, "max_completion_tokens")) && mct < 1)
		return fail(e, 400, "max_completion_tokens", "max_completion_tokens must be at least 1, got %" PRId64 ".", mct);
	p->max_tokens = c->chat && mct >= 1 ? mct : mt;

	if (get_int(root, "n", 1, &p->n, e) < 0) return -1;
	if (p->n < 1) return fail(e, 400, "n", "n must be at least 1, got %" PRId64 ".", p->n);
	if (p->n > SERVER_MAX_CHOICES) return fail(e, 400, "n", "n must be at most %d, got %" PRId64 ".", SERVER_MAX_CHOICES, p->n);

	sampler_params *sp = &p->sp.sp;
	sampler_params_default(sp);
	/* vLLM's defaults: the model's generation_config.json. */
	sp->temperature = g->temperature;
	sp->top_k = g->top_k;
	sp->top_p = g->top_p;
	sp->min_p = g->min_p;
	if ((rc = get_num(root, "temperature", &x, e)) < 0) return -1;
	if (rc && x < 0) return fail(e, 400, "temperature", "temperature must be non-negative, got %g.", x);
	if (rc) sp->temperature = (float)x;
	if ((rc = get_num(root, "top_p", &x, e)) < 0) return -1;
	if (rc && !(x > 0 && x <= 1)) return fail(e, 400, "top_p", "top_p must be in (0, 1], got %g.", x);
	if (rc) sp->top_p = (float)x;
	if ((rc = get_num(root, "min_p", &x, e)) < 0) return -1;
	if (rc && !(x >= 0 && x <= 1)) return fail(e, 400, "min_p", "min_p must be in [0, 1], got %g.", x);
	if (rc) sp->min_p = (float)x;
	if (get_int(root, "top_k", -2, &n, e) < 0) return -1;
	if (n != -2) {
		if (n < -1) return fail(e, 400, "top_k", "top_k must be -1 (disable), or at least 1, got %" PRId64 ".", n);
		sp->top_k = n <= 0 ? 0 : (int)MIN(n, 1 << 30);
	}
	if (!absent(json_get(root, "seed"))) {
		if (get_int(root, "seed", 0, &n, e) < 0) return -1;
		p->sp.has_seed = 1;
		p->sp.seed = (uint64_t)n;
	}
	for (const char *const *k = (const char *const[]){"presence_penalty", "frequency_penalty", NULL}; *k; k++) {
		if ((rc = get_num(root, *k, &x, e)) < 0) return -1;
		if (rc && !(x >= -2 && x <= 2)) return fail(e, 400, *k, "%s must be in [-2, 2], got %g.", *k, x);
	}
	if ((rc = get_num(root, "repetition_penalty", &x, e)) < 0) return -1;
	if (rc && !(x > 0)) return fail(e, 400, "repetition_penalty", "repetition_penalty must be greater than zero, got %g.", x);

	if (c->chat) {
		int lp = 0;
		if (get_bool(root, "logprobs", 0, &lp, e) < 0) return -1;
		if (get_int(root, "top_logprobs", -1, &n, e) < 0) return -1;
		if (n >= 0 && !lp)
			return fail(e, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
		if (n > SAMPLER_MAX_TOP_LOGPROBS)
			return fail(e, 400, "top_logprobs", "Requested sample logprobs of %" PRId64 ", which is greater than max allowed: %d", n, SAMPLER_MAX_TOP_LOGPROBS);
		if (n < -1) return fail(e, 400, "top_logprobs", "top_logprobs must be non-negative, got %" PRId64 ".", n);
		if (lp) c->logprobs = n > 0 ? (int)n : 0;
	} else {
		if (get_int(root, "logprobs", -1, &n, e) < 0) return -1;
		if (n > SAMPLER_MAX_TOP_LOGPROBS)
			return fail(e, 400, "logprobs", "Requested sample logprobs of %" PRId64 ", which is greater than max allowed: %d", n, SAMPLER_MAX_TOP_LOGPROBS);
		if (n < -1) return fail(e, 400, "logprobs", "logprobs must be non-negative, got %" PRId64 ".", n);
		c->logprobs = (int)n;
		if (get_bool(root, "echo", 0, &c->echo, e) < 0) return -1;
		if (c->echo && c->logprobs >= 0)
			return fail(e, 400, "echo", "echo together with logprobs (prompt logprobs) is not supported.");
	}
	p->sp.logprobs = c->logprobs;
	if (get_bool(root, "ignore_eos", 0, &p->sp.ignore_eos, e) < 0) return -1;
	if (get_bool(root, "include_stop_str_in_output", 0, &c->include_stop_str, e) < 0) return -1;
	if (get_bool(root, "return_tokens_as_token_ids", 0, &c->tokens_as_ids, e) < 0) return -1;
	if (get_bool(root, "add_generation_prompt", 1, &p->add_generation_prompt, e) < 0) return -1;
	if (get_bool(root, "continue_final_message", 0, &p->continue_final_message, e) < 0) return -1;
	if (c->chat && p->add_generation_prompt && p->continue_final_message)
		return fail(e, 400, NULL, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");

	const json_val *stop = json_get(root, "stop");
	if (json_is(stop, JSON_STRING)) {
		if (stop->u.str.len) { c->stops[c->n_stops] = stop->u.str.s; c->stop_len[c->n_stops++] = stop->u.str.len; }
	} else if (json_is(stop, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(stop); i++) {
			const json_val *v = json_at(stop, i);
			if (!json_is(v, JSON_STRING)) return fail(e, 400, "stop", "stop: Input should be a valid string");
			if (c->n_stops == SERVER_MAX_STOPS) return fail(e, 400, "stop", "stop: at most %d stop strings", SERVER_MAX_STOPS);
			if (v->u.str.len) { c->stops[c->n_stops] = v->u.str.s; c->stop_len[c->n_stops++] = v->u.str.len; }
		}
	} else if (!absent(stop)) {
		return fail(e, 400, "stop", "stop: Input should be a valid string or a list of strings");
	}
	for (int i = 0; i < c->n_stops; i++) {
		if (c->stop_len[i] > SERVER_MAX_STOP_BYTES)
			return fail(e, 400, "stop", "stop: each stop string is at most %d bytes", SERVER_MAX_STOP_BYTES);
		c->max_stop = MAX(c->max_stop, c->stop_len[i]);
	}
	const json_val *sti = json_get(root, "stop_token_ids");
	if (json_is(sti, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(sti); i++) {
			if (json_int64(json_at(sti, i), &n) < 0 || n < 0 || n >= engine_vocab(s->e))
				return fail(e, 400, "stop_token_ids", "stop_token_ids: each must be a token id of the vocabulary");
			if (p->sp.n_stop_ids == SCHED_MAX_STOP_IDS)
				return fail(e, 400, "stop_token_ids", "stop_token_ids: at most %d ids", SCHED_MAX_STOP_IDS);
			p->sp.stop_ids[p->sp.n_stop_ids++] = (int32_t)n;
		}
	} else if (!absent(sti)) {
		return fail(e, 400, "stop_token_ids", "stop_token_ids: Input should be a valid list");
	}

	/* Checked last, as vLLM does once the request itself is valid. */
	if (!absent(model) && strcmp(model->u.str.s, s->o.served_name) != 0)
		return fail(e, 404, "model", "The model `%.300s` does not exist.", model->u.str.s);
	return 0;
}

/* ------------------------------------------------------------ calls */

static void call_unlink(srv_call *c)
{
	server *s = c->s;
	if (c->prev) c->prev->next = c->next; else if (s->calls == c) s->calls = c->next;
	if (c->next) c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->n_calls--;
}

static void call_free(srv_call *c)
{
	server *s = c->s;
	for (int i = 0; i < c->n_choices; i++) {
		if (c->ch[i].q) sched_release(s->sc, c->ch[i].q);
		buf_free(&c->ch[i].text);
		free(c->ch[i].ends);
	}
	free(c->ch);
	json_doc_free(c->doc);
	free(c);
}

static void call_done(srv_call *c)
{
	call_unlink(c);
	call_free(c);
}

static void call_on_close(httpd_req *r, void *arg)
{
	srv_call *c = arg;
	log_ratelimited(LOG_INFO, "client left %s %s before the answer ended", httpd_method(r), httpd_path(r));
	call_done(c);
}

/* Ends the request from our side: no on_close after this. */
static httpd_req *call_take_req(srv_call *c)
{
	httpd_req *r = c->r;
	httpd_on_close(r, NULL, NULL);
	c->r = NULL;
	return r;
}

/* ------------------------------------------------------------ text */

/* Looks for a stop string ending at or after byte `from` of the new text. */
static void check_stop(srv_call *c, choice *ch, size_t before)
{
	size_t len = buf_rlen(&ch->text);
	const char *t = buf_rptr(&ch->text);
	size_t from = before > c->max_stop ? before - c->max_stop + 1 : 0;
	if (from < ch->echo_len) from = ch->echo_len;
	size_t best = SIZE_MAX;
	int which = -1;
	for (int k = 0; k < c->n_stops; k++) {
		size_t sl = c->stop_len[k];
		for (size_t at = from; at + sl <= len; at++)
			if (t[at] == c->stops[k][0] && !memcmp(t + at, c->stops[k], sl)) {
				if (at < best) { best = at; which = k; }
				break;
			}
	}
	if (which < 0) return;
	size_t cut = c->include_stop_str ? best + c->stop_len[which] : best;
	ch->text.len = ch->text.rd + cut;
	ch->text.data[ch->text.len] = 0;
	ch->done = 1;
	ch->fin = SCHED_STOP;
	ch->stop_str = c->stops[which];
	sched_finish_req(c->s->sc, ch->q, SCHED_STOP);
}

/* Takes the choice's new tokens from the scheduler into its text. */
static void choice_take(srv_call *c, choice *ch)
{
	int n_out;
	sched_finish fin;
	int32_t stop_id;
	if (ch->done) return;
	sched_progress(c->s->sc, ch->q, &n_out, &fin, &stop_id);
	for (; ch->n_read < n_out && !ch->done; ch->n_read++) {
		int i = ch->n_read;
		ch->n_tokens = i + 1;
		/* The stop token itself is not part of the text (vLLM's detokenizer). */
		if (!(fin == SCHED_STOP && stop_id >= 0 && i == n_out - 1)) {
			size_t before = buf_rlen(&ch->text);
			if (tok_stream_push(&ch->ts, sched_req_token(ch->q, i)->id, &ch->text) < 0) {
				ch->done = 1;
				ch->fin = SCHED_LENGTH;
				sched_finish_req(c->s->sc, ch->q, SCHED_LENGTH);
			} else if (c->n_stops) {
				check_stop(c, ch, before);
			}
		}
		if (ch->ends && i < ch->ends_cap) ch->ends[i] = buf_rlen(&ch->text);
	}
	if (!ch->done && fin != SCHED_RUNNING && ch->n_read >= n_out) {
		size_t before = buf_rlen(&ch->text);
		tok_stream_flush(&ch->ts, &ch->text);
		if (c->n_stops) check_stop(c, ch, before);
		if (!ch->done) {
			ch->done = 1;
			ch->fin = fin;
			if (fin == SCHED_STOP && stop_id >= 0) ch->stop_tok = stop_id;
		}
	}
}

static const char *finish_name(sched_finish f)
{
	switch (f) {
	case SCHED_STOP: return "stop";
	case SCHED_LENGTH: return "length";
	case SCHED_ABORT: return "abort";
	default: return "error";
	}
}

static void write_finish(srv_call *c, choice *ch, json_w *w)
{
	jw_key(w, "finish_reason"); jw_str(w, finish_name(ch->fin));
	jw_key(w, "stop_reason");
	if (ch->stop_str) jw_str(w, ch->stop_str);
	else if (ch->stop_tok >= 0 && ch->stop_tok != c->s->primary_eos) jw_int(w, ch->stop_tok);
	else jw_null(w);
}

/* The text of one token as vLLM reports it in logprobs ("token_id:N" with
 * return_tokens_as_token_ids). */
static void token_text(srv_call *c, int32_t id, buf *out)
{
	buf_reset(out);
	if (c->tokens_as_ids) buf_printf(out, "token_id:%d", (int)id);
	else tokenizer_decode(c->s->tok, &id, 1, 0, out);
}

static int64_t code_points(const char *p, size_t n)
{
	int64_t k = 0;
	for (size_t i = 0; i < n; i++) if (((unsigned char)p[i] & 0xC0) != 0x80) k++;
	return k;
}

static void write_bytes(json_w *w, const char *p, size_t n)
{
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++) jw_int(w, (unsigned char)p[i]);
	jw_arr_end(w);
}

/* "logprobs" of tokens [from, to) of ch, in the chat or the completions shape. */
static void write_logprobs(srv_call *c, choice *ch, int from, int to, json_w *w)
{
	buf t;
	buf_init(&t, 1 << 20);
	jw_key(w, "logprobs");
	if (c->logprobs < 0) { jw_null(w); buf_free(&t); return; }
	if (c->chat) {
		jw_obj_begin(w);
		jw_key(w, "content");
		jw_arr_begin(w);
		for (int i = from; i < to; i++) {
			const sched_token *tk = sched_req_token(ch->q, i);
			const sampler_logprob *top = sched_req_top(ch->q, i);
			jw_obj_begin(w);
			token_text(c, tk->id, &t);
			jw_key(w, "token"); jw_strn(w, buf_rptr(&t), buf_rlen(&t));
			jw_key(w, "logprob"); jw_double(w, tk->logprob < -9999.0f ? -9999.0 : tk->logprob);
			jw_key(w, "bytes"); write_bytes(w, buf_rptr(&t), buf_rlen(&t));
			jw_key(w, "top_logprobs");
			jw_arr_begin(w);
			for (int k = 0; k < tk->n_top && k < c->logprobs; k++) {
				jw_obj_begin(w);
				token_text(c, top[k].id, &t);
				jw_key(w, "token"); jw_strn(w, buf_rptr(&t), buf_rlen(&t));
				jw_key(w, "logprob"); jw_double(w, top[k].logprob < -9999.0f ? -9999.0 : top[k].logprob);
				jw_key(w, "bytes"); write_bytes(w, buf_rptr(&t), buf_rlen(&t));
				jw_obj_end(w);
			}
			jw_arr_end(w);
			jw_obj_end(w);
		}
		jw_arr_end(w);
		jw_obj_end(w);
	} else {
		jw_obj_begin(w);
		jw_key(w, "text_offset");
		jw_arr_begin(w);
		int64_t off = ch->lp_offset;
		for (int i = from; i < to; i++) {
			jw_int(w, off);
			token_text(c, sched_req_token(ch->q, i)->id, &t);
			off += code_points(buf_rptr(&t), buf_rlen(&t));
		}
		ch->lp_offset = off;
		jw_arr_end(w);
		jw_key(w, "token_logprobs");
		jw_arr_begin(w);
		for (int i = from; i < to; i++) jw_double(w, sched_req_token(ch->q, i)->logprob);
		jw_arr_end(w);
		jw_key(w, "tokens");
		jw_arr_begin(w);
		for (int i = from; i < to; i++) {
			token_text(c, sched_req_token(ch->q, i)->id, &t);
			jw_strn(w, buf_rptr(&t), buf_rlen(&t));
		}
		jw_arr_end(w);
		jw_key(w, "top_logprobs");
		jw_arr_begin(w);
		for (int i = from; i < to; i++) {
			const sched_token *tk = sched_req_token(ch->q, i);
			const sampler_logprob *top = sched_req_top(ch->q, i);
			int seen = 0;
			jw_obj_begin(w);
			for (int k = 0; k < tk->n_top; k++) {
				token_text(c, top[k].id, &t);
				jw_keyn(w, buf_rptr(&t), buf_rlen(&t));
				jw_double(w, top[k].logprob);
				if (top[k].id == tk->id) seen = 1;
			}
			if (!seen) {
				token_text(c, tk->id, &t);
				jw_keyn(w, buf_rptr(&t), buf_rlen(&t));
				jw_double(w, tk->logprob);
			}
			jw_obj_end(w);
		}
		jw_arr_end(w);
		jw_obj_end(w);
	}
	buf_free(&t);
}

static void write_usage(srv_call *c, json_w *w)
{
	long gen = 0;
	for (int i = 0; i < c->n_choices; i++) gen += c->ch[i].n_tokens;
	jw_key(w, "usage");
	jw_obj_begin(w);
	jw_key(w, "prompt_tokens"); jw_int(w, c->prompt_tokens);
	jw_key(w, "total_tokens"); jw_int(w, c->prompt_tokens + gen);
	jw_key(w, "completion_tokens"); jw_int(w, gen);
	jw_key(w, "prompt_tokens_details"); jw_null(w);
	jw_obj_end(w);
}

static void log_call(srv_call *c, int status)
{
	if (c->s->o.disable_log_requests) return;
	long gen = 0;
	for (int i = 0; i < c->n_choices; i++) gen += c->ch[i].n_tokens;
	log_info("%s %s %d prompt_tokens=%ld completion_tokens=%ld choices=%d stream=%d %" PRIu64 "ms",
		 c->chat ? "chat" : "completion", c->id, status, c->prompt_tokens, gen, c->n_choices, c->stream,
		 time_mono_ms() - c->t0_ms);
}

/* ------------------------------------------------------------ whole answers */

static void respond_whole(srv_call *c)
{
	server *s = c->s;
	buf *b = &s->scratch;
	json_w w;
	for (int i = 0; i < c->n_choices; i++)
		if (c->ch[i].fin == SCHED_ERROR) {
			httpd_req *r = call_take_req(c);
			httpd_error(r, 500, "The engine failed while generating.", NULL);
			log_call(c, 500);
			call_done(c);
			return;
		}
	buf_reset(b);
	jw_init(&w, b);
	jw_obj_begin(&w);
	jw_key(&w, "id"); jw_str(&w, c->id);
	jw_key(&w, "object"); jw_str(&w, c->chat ? "chat.completion" : "text_completion");
	jw_key(&w, "created"); jw_int(&w, c->created);
	jw_key(&w, "model"); jw_str(&w, s->o.served_name);
	jw_key(&w, "choices");
	jw_arr_begin(&w);
	for (int i = 0; i < c->n_choices; i++) {
		choice *ch = &c->ch[i];
		jw_obj_begin(&w);
		jw_key(&w, "index"); jw_int(&w, ch->index);
		if (c->chat) {
			jw_key(&w, "message");
			jw_obj_begin(&w);
			jw_key(&w, "role"); jw_str(&w, "assistant");
			jw_key(&w, "reasoning_content"); jw_null(&w);
			jw_key(&w, "content"); jw_strn(&w, buf_rptr(&ch->text), buf_rlen(&ch->text));
			jw_key(&w, "tool_calls"); jw_arr_begin(&w); jw_arr_end(&w);
			jw_obj_end(&w);
		} else {
			jw_key(&w, "text"); jw_strn(&w, buf_rptr(&ch->text), buf_rlen(&ch->text));
		}
		write_logprobs(c, ch, 0, ch->n_tokens, &w);
		write_finish(c, ch, &w);
		if (!c->chat) { jw_key(&w, "prompt_logprobs"); jw_null(&w); }
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	write_usage(c, &w);
	if (c->chat) { jw_key(&w, "prompt_logprobs"); jw_null(&w); }
	jw_obj_end(&w);
	httpd_req *r = call_take_req(c);
	if (w.error) httpd_error(r, 500, "The answer is too large.", NULL);
	else httpd_respond(r, 200, "application/json", NULL, buf_rptr(b), buf_rlen(b));
	log_call(c, 200);
	call_done(c);
}

/* ------------------------------------------------------------ streams */

static void chunk_begin(srv_call *c, json_w *w)
{
	jw_obj_begin(w);
	jw_key(w, "id"); jw_str(w, c->id);
	jw_key(w, "object"); jw_str(w, c->chat ? "chat.completion.chunk" : "text_completion");
	jw_key(w, "created"); jw_int(w, c->created);
	jw_key(w, "model"); jw_str(w, c->s->o.served_name);
}

/* Sends the JSON in s->scratch as one data event. Returns 0 or -1 (gone). */
static int send_scratch(srv_call *c, json_w *w)
{
	server *s = c->s;
	if (c->failed) return -1;
	buf_reset(&s->event);
	if (w->error || sse_write_data(&s->event, buf_rptr(&s->scratch), buf_rlen(&s->scratch)) < 0 ||
	    httpd_stream_write(c->r, buf_rptr(&s->event), buf_rlen(&s->event)) < 0) {
		c->failed = 1;
		return -1;
	}
	return 0;
}

/* The first chunk of each chat choice: the role. */
static int send_role(srv_call *c, choice *ch)
{
	json_w w;
	buf_reset(&c->s->scratch);
	jw_init(&w, &c->s->scratch);
	chunk_begin(c, &w);
	jw_key(&w, "choices");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_key(&w, "index"); jw_int(&w, ch->index);
	jw_key(&w, "delta"); jw_obj_begin(&w);
	jw_key(&w, "role"); jw_str(&w, "assistant");
	jw_key(&w, "content"); jw_str(&w, "");
	jw_obj_end(&w);
	jw_key(&w, "logprobs"); jw_null(&w);
	jw_key(&w, "finish_reason"); jw_null(&w);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	return send_scratch(c, &w);
}

/* How much of the choice's text may go out now: all of it once done, else
 * all but what might be the start of a stop string, on a character boundary. */
static size_t sendable(srv_call *c, choice *ch)
{
	size_t len = buf_rlen(&ch->text);
	if (ch->done || c->max_stop <= 1) return len;
	size_t hold = c->max_stop - 1;
	size_t end = len > hold ? len - hold : 0;
	const char *t = buf_rptr(&ch->text);
	while (end > ch->sent && end < len && ((unsigned char)t[end] & 0xC0) == 0x80) end--;
	return end < ch->sent ? ch->sent : end;
}

/* One chunk of a choice: text[sent, end), the logprobs of tokens
 * [lp_sent, lp_to), and the finish when last. */
static int send_delta(srv_call *c, choice *ch, size_t end, int lp_to, int last)
{
	json_w w;
	buf_reset(&c->s->scratch);
	jw_init(&w, &c->s->scratch);
	chunk_begin(c, &w);
	jw_key(&w, "choices");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_key(&w, "index"); jw_int(&w, ch->index);
	const char *t = buf_rptr(&ch->text) + ch->sent;
	if (c->chat) {
		jw_key(&w, "delta"); jw_obj_begin(&w);
		jw_key(&w, "content"); jw_strn(&w, t, end - ch->sent);
		jw_obj_end(&w);
	} else {
		jw_key(&w, "text"); jw_strn(&w, t, end - ch->sent);
	}
	write_logprobs(c, ch, ch->lp_sent, lp_to, &w);
	if (last) {
		write_finish(c, ch, &w);
	} else {
		jw_key(&w, "finish_reason"); jw_null(&w);
		if (!c->chat) { jw_key(&w, "stop_reason"); jw_null(&w); }
	}
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	ch->sent = end;
	ch->lp_sent = lp_to;
	if (last) ch->finish_sent = 1;
	return send_scratch(c, &w);
}

/* Sends what the choice has new, one chunk per token as vLLM streams (a token
 * whose text is empty or held back sends nothing of its own; its text and
 * logprobs go with the next chunk), then the finish chunk. */
static int send_choice(srv_call *c, choice *ch)
{
	size_t allowed = sendable(c, ch), len = buf_rlen(&ch->text);
	while (ch->tok_sent < ch->n_tokens) {
		int j = ch->tok_sent;
		int last = ch->done && j == ch->n_tokens - 1;
		size_t e = last ? len : MIN(ch->ends ? ch->ends[j] : len, len);
		if (e > allowed) break;   /* held back (may start a stop string) */
		if (e < ch->sent) e = ch->sent;
		ch->tok_sent = j + 1;
		int lp_to = c->logprobs >= 0 ? ch->tok_sent : ch->lp_sent;
		if (last || e > ch->sent || lp_to > ch->lp_sent)
			if (send_delta(c, ch, e, lp_to, last) < 0) return -1;
	}
	if (ch->done && !ch->finish_sent)
		return send_delta(c, ch, len, c->logprobs >= 0 ? ch->n_tokens : ch->lp_sent, 1);
	return 0;
}

static int send_error_event(srv_call *c, int status, const char *msg)
{
	json_w w;
	buf_reset(&c->s->scratch);
	jw_init(&w, &c->s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "error");
	jw_obj_begin(&w);
	jw_key(&w, "message"); jw_str(&w, msg);
	jw_key(&w, "type"); jw_str(&w, oai_error_type(status));
	jw_key(&w, "param"); jw_null(&w);
	jw_key(&w, "code"); jw_int(&w, status);
	jw_obj_end(&w);
	jw_obj_end(&w);
	return send_scratch(c, &w);
}

/* Writes [DONE] and ends the stream, freeing the call: returns 1. Returns 0
 * when the connection is going away (on_close follows and frees). */
static int stream_end(srv_call *c, int status)
{
	server *s = c->s;
	buf_reset(&s->event);
	sse_write_done(&s->event);
	if (!c->failed && httpd_stream_write(c->r, buf_rptr(&s->event), buf_rlen(&s->event)) < 0) c->failed = 1;
	if (c->failed) return 0;
	httpd_req *r = call_take_req(c);
	httpd_stream_end(r);
	log_call(c, status);
	call_done(c);
	return 1;
}

static void stream_progress(srv_call *c)
{
	if (c->failed) return;
	if (!c->started) {
		c->started = 1;
		if (httpd_stream_start(c->r, 200, "text/event-stream; charset=utf-8", NULL, -1) < 0) {
			c->failed = 1;
			return;
		}
		if (c->chat)
			for (int i = 0; i < c->n_choices; i++)
				if (send_role(c, &c->ch[i]) < 0) return;
	}
	int all_done = 1, error = 0;
	for (int i = 0; i < c->n_choices; i++) {
		choice *ch = &c->ch[i];
		if (ch->done && ch->fin == SCHED_ERROR) { error = 1; continue; }
		if (send_choice(c, ch) < 0) return;
		if (!ch->finish_sent) all_done = 0;
	}
	if (error) {
		for (int i = 0; i < c->n_choices; i++) if (!c->ch[i].done) sched_finish_req(c->s->sc, c->ch[i].q, SCHED_ABORT);
		if (send_error_event(c, 500, "The engine failed while generating.") < 0) return;
		stream_end(c, 500);
		return;
	}
	if (!all_done) return;
	if (c->include_usage) {
		json_w w;
		buf_reset(&c->s->scratch);
		jw_init(&w, &c->s->scratch);
		chunk_begin(c, &w);
		jw_key(&w, "choices"); jw_arr_begin(&w); jw_arr_end(&w);
		write_usage(c, &w);
		jw_obj_end(&w);
		if (send_scratch(c, &w) < 0) return;
	}
	stream_end(c, 200);
}

/* ------------------------------------------------------------ progress */

static void call_progress(srv_call *c)
{
	if (c->failed || !c->r) return;
	int all = 1;
	for (int i = 0; i < c->n_choices; i++) {
		choice_take(c, &c->ch[i]);
		if (!c->ch[i].done) all = 0;
	}
	if (c->stream) stream_progress(c);
	else if (all) respond_whole(c);
}

void server_openai_progress(server *s)
{
	for (srv_call *c = s->calls, *nx; c; c = nx) {
		nx = c->next;
		call_progress(c);
	}
}

void server_openai_abort_all(server *s, const char *why)
{
	while (s->calls) {
		srv_call *c = s->calls;
		if (c->failed || !c->r) {
			/* Already going away: drop it now (its on_close is cancelled). */
			if (c->r) httpd_on_close(c->r, NULL, NULL);
			call_done(c);
			continue;
		}
		if (c->stream && c->started) {
			send_error_event(c, 503, why);
			if (!stream_end(c, 503)) {
				httpd_on_close(c->r, NULL, NULL);
				call_done(c);
			}
			continue;
		}
		httpd_req *r = call_take_req(c);
		httpd_error(r, 503, why, NULL);
		log_call(c, 503);
		call_done(c);
	}
}

/* ------------------------------------------------------------ the handler */

/* One prompt's ids (a string is encoded with <bos>); *ids is malloc'd. */
static long prompt_ids(server *s, const json_val *pr, int32_t **ids, char *err, size_t errlen)
{
	if (json_is(pr, JSON_STRING))
		return server_text_tokens(s, pr->u.str.s, pr->u.str.len, 1, ids, err, errlen);
	size_t n = json_count(pr);
	*ids = malloc((n ? n : 1) * sizeof **ids);
	if (!*ids) { snprintf(err, errlen, "out of memory"); return -1; }
	for (size_t i = 0; i < n; i++) (*ids)[i] = (int32_t)json_at(pr, i)->i;
	return (long)n;
}

static int context_error(verr *e, int max_len, long n, int64_t max_tokens)
{
	if (max_tokens < 0 || n >= max_len)
		return fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, you requested %ld tokens in the messages, Please reduce the length of the messages.",
			    max_len, n);
	return fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, you requested %" PRId64 " tokens (%ld in the messages, %" PRId64 " in the completion). Please reduce the length of the messages or completion.",
		    max_len, (int64_t)n + max_tokens, n, max_tokens);
}

void server_openai_handle(server *s, httpd_req *r, int chat)
{
	verr e = {0};
	params p;
	size_t len;
	const char *body = httpd_body(r, &len);
	json_error jerr;
	int32_t *ids = NULL;
	char err[512];

	if (len > BODY_MAX) { httpd_error(r, 413, "The request body is too large.", NULL); return; }
	srv_call *c = calloc(1, sizeof *c);
	if (!c) { httpd_error(r, 503, "Out of memory.", NULL); return; }
	c->s = s;
	c->r = r;
	c->chat = chat;
	c->t0_ms = time_mono_ms();
	uint64_t a = hash64(&s->id_seq, sizeof s->id_seq, s->id_salt);
	uint64_t b = hash64(&a, sizeof a, s->id_salt ^ 0x5a5a);
	s->id_seq++;
	snprintf(c->id, sizeof c->id, "%s%016" PRIx64 "%016" PRIx64, chat ? "chatcmpl-" : "cmpl-", a, b);
	c->created = (int64_t)time_wall_s();

	c->doc = json_parse(body, len, 64, &jerr);
	if (!c->doc) {
		fail(&e, 400, NULL, "Invalid JSON at line %u column %u: %s", jerr.line, jerr.col, jerr.msg);
		goto error;
	}
	const json_val *root = json_root(c->doc);
	if (!json_is(root, JSON_OBJECT)) { fail(&e, 400, NULL, "The request body must be a JSON object."); goto error; }
	if (parse_params(s, c, root, &p, &e) < 0) goto error;

	/* The prompts: one for chat; one or more for completions. */
	const json_val *pr = p.prompt;
	size_t n_prompts = 1;
	int list_of_prompts = !chat && json_is(pr, JSON_ARRAY) &&
			      (json_is(json_at(pr, 0), JSON_STRING) || json_is(json_at(pr, 0), JSON_ARRAY));
	if (list_of_prompts) n_prompts = json_count(pr);
	if (n_prompts * (size_t)p.n > SERVER_MAX_CHOICES) {
		fail(&e, 400, "n", "At most %d choices per request (prompts x n).", SERVER_MAX_CHOICES);
		goto error;
	}
	c->n_choices = (int)(n_prompts * (size_t)p.n);
	c->ch = calloc((size_t)c->n_choices, sizeof *c->ch);
	if (!c->ch) { fail(&e, 503, NULL, "Out of memory."); goto error; }
	for (int i = 0; i < c->n_choices; i++) {
		buf_init(&c->ch[i].text, 64u << 20);
		c->ch[i].stop_tok = -1;
	}
	int max_len = s->max_model_len;
	for (size_t pi = 0; pi < n_prompts; pi++) {
		long n;
		const json_val *one = list_of_prompts ? json_at(pr, pi) : pr;
		if (chat) n = server_chat_tokens(s, p.messages, p.add_generation_prompt, p.continue_final_message, &ids, err, sizeof err);
		else n = prompt_ids(s, one, &ids, err, sizeof err);
		if (n < 0) { fail(&e, 400, chat ? "messages" : "prompt", "%s", err); goto error; }
		if (n == 0) { fail(&e, 400, "prompt", "Prompt cannot be empty."); goto error; }
		for (long k = 0; k < n; k++)
			if (ids[k] >= engine_vocab(s->e)) {
				fail(&e, 400, "prompt", "Token id %d is out of vocabulary (the model has %d).", (int)ids[k], engine_vocab(s->e));
				goto error;
			}
		if (n >= max_len || (p.max_tokens >= 1 && n + p.max_tokens > max_len)) {
			context_error(&e, max_len, n, n >= max_len ? -1 : p.max_tokens);
			goto error;
		}
		int64_t room = max_len - n;
		sched_params sp = p.sp;
		/* A greedy continuation of an assistant message: replay its text as the
		 * model's own tokens (scheduler.h, forced replay), so the result is the
		 * one an uninterrupted run gives. */
		const json_val *last = chat ? json_at(p.messages, json_count(p.messages) - 1) : NULL;
		const json_val *last_content = json_get(last, "content");
		if (chat && p.continue_final_message && sp.sp.temperature < 1e-5f && json_count(p.messages) >= 2 &&
		    json_is(last_content, JSON_STRING) && last_content->u.str.len > 0 &&
		    !strcmp(json_str(json_get(last, "role"), ""), "assistant")) {
			json_val head = *p.messages;
			int32_t *base = NULL;
			head.u.arr.n--;
			long nb = server_chat_tokens(s, &head, 1, 0, &base, err, sizeof err);
			if (nb > 0) {
				free(ids);
				ids = base;
				n = nb;
				sp.forced_text = last_content->u.str.s;
				sp.forced_len = last_content->u.str.len;
			} else {
				free(base);
			}
		}
		sp.max_tokens = (int)(p.max_tokens >= 1 ? p.max_tokens : chat ? room : MIN(room, 16));
		c->prompt_tokens += n;
		for (int64_t k = 0; k < p.n; k++) {
			choice *ch = &c->ch[pi * (size_t)p.n + (size_t)k];
			ch->index = (int)(pi * (size_t)p.n + (size_t)k);
			if (c->stream) {
				ch->ends_cap = sp.max_tokens;
				ch->ends = calloc((size_t)sp.max_tokens, sizeof *ch->ends);
				if (!ch->ends) { fail(&e, 503, NULL, "Out of memory."); goto error; }
			}
			ch->prompt_i = (int)pi;
			tok_stream_init(&ch->ts, s->tok, json_bool(json_get(root, "skip_special_tokens"), 1));
			if (c->echo) {
				if (json_is(one, JSON_STRING)) buf_append(&ch->text, one->u.str.s, one->u.str.len);
				else tokenizer_decode(s->tok, ids, (size_t)n, 1, &ch->text);
				ch->echo_len = buf_rlen(&ch->text);
				ch->lp_offset = code_points(buf_rptr(&ch->text), ch->echo_len);
			}
			if (sp.has_seed) sp.seed = p.sp.seed + (uint64_t)k;
			int busy = 0;
			ch->q = sched_submit(s->sc, ids, (int)n, &sp, c, &busy, err, sizeof err);
			if (!ch->q) {
				fail(&e, busy ? 503 : 400, NULL, "%s", err);
				goto error;
			}
		}
		free(ids);
		ids = NULL;
	}
	c->prev = NULL;
	c->next = s->calls;
	if (s->calls) s->calls->prev = c;
	s->calls = c;
	s->n_calls++;
	httpd_on_close(r, call_on_close, c);
	return;

error:
	free(ids);
	httpd_error(r, e.status ? e.status : 400, e.msg, e.param);
	if (!s->o.disable_log_requests && e.status >= 500) log_ratelimited(LOG_WARN, "request refused: %s", e.msg);
	call_free(c);
}
