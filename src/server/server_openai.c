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
 *
 * A request's path: the handler parses and checks it on the loop (sizes
 * before anything is tokenized), the tokenizer thread tokenizes its prompts,
 * and back on the loop call_submit checks their lengths and submits one
 * scheduler request per choice.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/openai_api.h"
#include "core/sse.h"
#include "core/util.h"
#include "infer/chat_template.h"
#include "server/server.h"

#define PROMPT_TEXT_MAX (32u << 20) /* rendered prompt bytes */

/* One choice: one scheduler request and the text made of its tokens. */
typedef struct choice {
	sched_req *q;
	sched_req *plp_q; /* the request holding its prompt's log-probabilities:
	                               the first choice of the same prompt (computed once) */
	int index;
	int prompt_i;
	int n_read;   /* tokens taken from q */
	int n_tokens; /* completion tokens (up to a stop string) */
	tok_stream ts;
	buf text;        /* echo, then the generated text (cut at a stop) */
	size_t echo_len; /* stop strings are searched after the echo */
	size_t sent;     /* bytes of text written (stream) */
	int lp_sent;     /* tokens whose logprobs were written (stream) */
	int tok_sent;    /* tokens streamed (one chunk per token, as vLLM) */
	size_t *ends;    /* [max_tokens]: text length after each token */
	int ends_cap;
	int64_t lp_offset; /* text_offset of the next token (completions), code points */
	int done;
	sched_finish fin;
	const char *stop_str; /* the stop string that ended it, or NULL */
	int32_t stop_tok;     /* the stop token that ended it, or -1 */
	int finish_sent;
} choice;

typedef struct params {
	int64_t max_tokens;         /* -1: the default; INT64_MAX beyond int64 */
	const char *max_tokens_key; /* the field it came from, for messages */
	int64_t truncate;           /* truncate_prompt_tokens: keep the last this many; -1 = none */
	int64_t n;
	sched_params sp;
	int add_generation_prompt, continue_final_message;
	const json_val *messages, *prompt;
} params;

struct srv_call {
	server *s;
	httpd_req *r;
	srv_call *prev, *next;
	json_doc *doc;
	int chat, stream, include_usage, echo, include_stop_str;
	int tokens_as_ids; /* return_tokens_as_token_ids: "token_id:N" in logprobs */
	int logprobs;      /* -1 none, 0 the sampled token, K top */
	oai_stops stops;   /* point into doc */
	int min_tokens;    /* stop strings count from this many tokens on */
	int prompt_lp;     /* vLLM's prompt_logprobs: -1 none, else K alternatives */
	buf plp_json;      /* prompt_logprobs as rendered for plp_json_q's prompt */
	const sched_req *plp_json_q;
	int32_t *bias_ids; /* logit_bias, one entry per id (the scheduler copies it) */
	float *bias;
	int n_choices;
	choice *ch;
	char id[48];
	oai_answer answer; /* id, served name, created */
	int started;       /* stream head written */
	int failed;        /* the connection is going away; on_close frees */
	uint64_t t0_ms;
	/* Tokenizing, on the tokenizer thread (tok_main) between the handler
	 * and call_submit: the loop does not touch these meanwhile. */
	params p;
	size_t n_prompts;
	int list_of_prompts;
	int32_t **pids;    /* [n_prompts] each prompt's ids (malloc'd) */
	long *pn;          /* [n_prompts] their counts; -1 err, -2 te */
	int32_t *base_ids; /* a greedy continue_final_message: the head's ids */
	long base_n;
	char terr[512];
	oai_err te;
	int tokenizing;    /* queued or on the tokenizer thread */
	int tokenize_only; /* POST /tokenize: the ids are the answer */
	int add_special;   /* /tokenize's add_special_tokens (a text prompt) */
	int gone;          /* the client left while it was (loop thread) */
	srv_call *job_next;
};

/* ------------------------------------------------------------ prompts */

/* The bounds are checked on the loop thread before any tokenizing, so that a
 * huge prompt costs a length check, not seconds of tokenizing there (during
 * which /health went unanswered) and gigabytes of token arrays. */
int server_check_body(server *s, size_t len, oai_err *e)
{
	uint64_t max = SERVER_BODY_BASE_BYTES + (uint64_t)s->max_model_len * SERVER_BODY_BYTES_PER_TOKEN;
	if (max > SERVER_BODY_MAX_BYTES) max = SERVER_BODY_MAX_BYTES;
	if (len <= max) return 0;
	return oai_fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, your request body of %zu bytes is longer than any request within that context (at most %" PRIu64 " bytes). Please reduce the length of the messages.",
			s->max_model_len, len, max);
}

int server_check_prompt_bytes(server *s, size_t bytes, oai_err *e)
{
	uint64_t max = (uint64_t)s->max_model_len * SERVER_PROMPT_BYTES_PER_TOKEN;
	if (bytes <= max) return 0;
	return oai_fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, your prompt of %zu bytes is longer than %d tokens can be (at most %d bytes a token). Please reduce the length of the messages.",
			s->max_model_len, bytes, s->max_model_len, SERVER_PROMPT_BYTES_PER_TOKEN);
}

size_t server_messages_bytes(const json_val *messages)
{
	/* Each message renders to at least 4 tokens of the template's own
	 * (<start_of_turn>, the role, a newline, <end_of_turn>): counted as that
	 * many tokens' worth of bytes, so that many empty messages are refused
	 * untokenized too. */
	size_t n = json_count(messages) * 4 * SERVER_PROMPT_BYTES_PER_TOKEN;
	for (size_t i = 0; i < json_count(messages); i++) {
		const json_val *c = json_get(json_at(messages, i), "content");
		if (json_is(c, JSON_STRING)) n += c->u.str.len;
		for (size_t k = 0; json_is(c, JSON_ARRAY) && k < json_count(c); k++) {
			const json_val *t = json_get(json_at(c, k), "text");
			if (json_is(t, JSON_STRING)) n += t->u.str.len;
		}
	}
	return n;
}

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

int server_check_model(server *s, const char *model, oai_err *e)
{
	if (model && strcmp(model, s->o.served_name) != 0)
		return oai_fail_model(e, model);
	return 0;
}


static void token_text(srv_call *c, int32_t id, buf *out);
static void render_prompt_lp(srv_call *c, const choice *ch, json_w *w);

static void plp_entry(srv_call *c, json_w *w, int32_t id, float logprob, int rank, buf *t)
{
	char key[16];
	snprintf(key, sizeof key, "%d", (int)id);
	jw_key(w, key);
	jw_obj_begin(w);
	jw_key(w, "logprob");
	jw_double(w, logprob < -9999.0f ? -9999.0 : logprob);
	jw_key(w, "rank");
	jw_int(w, rank);
	token_text(c, id, t);
	jw_key(w, "decoded_token");
	jw_strn(w, buf_rptr(t), buf_rlen(t));
	jw_obj_end(w);
}

/* vLLM's "prompt_logprobs" of a choice: null for the first prompt token, then
 * for each {"id": {logprob, rank, decoded_token}}, the token itself first and
 * then the top alternatives. The n choices of a prompt share it: rendered
 * once into c->plp_json, then copied for each. */
static void write_prompt_lp(json_w *w, void *arg, int index)
{
	srv_call *c = arg;
	const choice *ch = index >= 0 && index < c->n_choices ? &c->ch[index] : NULL;
	if (!ch || !ch->plp_q || !sched_req_prompt_token(ch->plp_q, 0, NULL)) {
		jw_null(w);
		return;
	}
	if (c->plp_json_q == ch->plp_q) {
		jw_raw(w, buf_rptr(&c->plp_json), buf_rlen(&c->plp_json));
		return;
	}
	json_w pw;
	buf_reset(&c->plp_json);
	jw_init(&pw, &c->plp_json);
	c->plp_json_q = NULL;
	render_prompt_lp(c, ch, &pw);
	if (pw.error) {
		w->error = 1;
		return;
	}
	c->plp_json_q = ch->plp_q;
	jw_raw(w, buf_rptr(&c->plp_json), buf_rlen(&c->plp_json));
}

static void render_prompt_lp(srv_call *c, const choice *ch, json_w *w)
{
	buf t;
	buf_init(&t, 1 << 20);
	jw_arr_begin(w);
	const sampler_logprob *top;
	const sched_token *tk;
	for (int i = 0; (tk = sched_req_prompt_token(ch->plp_q, i, &top)); i++) {
		if (isnan(tk->logprob)) {
			jw_null(w);
			continue;
		}
		jw_obj_begin(w);
		plp_entry(c, w, tk->id, tk->logprob, tk->rank, &t);
		for (int k = 0; k < tk->n_top && k < c->prompt_lp; k++)
			if (top[k].id != tk->id) plp_entry(c, w, top[k].id, top[k].logprob, k + 1, &t);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	buf_free(&t);
}

/* "logit_bias": {"token id": bias, ...}, each bias clamped to [-100, 100] as
 * vLLM does; ids must be in the vocabulary. A repeated id: the last wins. */
static int parse_logit_bias(server *s, srv_call *c, const json_val *root, sampler_params *sp, oai_err *e)
{
	const json_val *lb = json_get(root, "logit_bias");
	if (oai_absent(lb)) return 0;
	if (!json_is(lb, JSON_OBJECT)) return oai_fail(e, 400, "logit_bias", "logit_bias: Input should be a valid dictionary");
	size_t m = lb->u.obj.n;
	if (m == 0) return 0;
	if (m > SERVER_MAX_LOGIT_BIAS)
		return oai_fail(e, 400, "logit_bias", "logit_bias: at most %d entries, got %zu", SERVER_MAX_LOGIT_BIAS, m);
	c->bias_ids = malloc(m * sizeof *c->bias_ids);
	c->bias = malloc(m * sizeof *c->bias);
	if (!c->bias_ids || !c->bias) return oai_fail(e, 503, NULL, "Out of memory.");
	size_t n = 0;
	for (size_t i = 0; i < m; i++) {
		const json_member *mb = &lb->u.obj.members[i];
		int64_t id;
		/* Digits only (no sign or space); a number of any length is a token
		 * id, out of the vocabulary when it does not fit (never wrapped). */
		if (!mb->key_len || strlen(mb->key) != mb->key_len || strspn(mb->key, "0123456789") != mb->key_len)
			return oai_fail(e, 400, "logit_bias", "logit_bias: `%.40s` is not a token id", mb->key);
		if (mb->key_len > 18 || parse_int64(mb->key, 0, INT64_MAX, &id) < 0) id = INT64_MAX;
		if (id >= engine_vocab(s->e))
			return oai_fail(e, 400, "logit_bias", "token_id(s) [%.40s] in logit_bias contain out-of-vocab token ids. Vocabulary size: %d",
					mb->key + strspn(mb->key, "0") - (strspn(mb->key, "0") == mb->key_len), engine_vocab(s->e));
		if (!json_is(mb->val, JSON_NUMBER))
			return oai_fail(e, 400, "logit_bias", "logit_bias.%.40s: Input should be a valid number", mb->key);
		double b = json_num(mb->val, 0);
		size_t k = 0;
		while (k < n && c->bias_ids[k] != (int32_t)id) k++;
		if (k == n) n++;
		c->bias_ids[k] = (int32_t)id;
		c->bias[k] = (float)(b > 100 ? 100 : b < -100 ? -100
							      : b);
	}
	sp->bias_ids = c->bias_ids;
	sp->bias = c->bias;
	sp->n_bias = n;
	return 0;
}

/* What vLLM does with a tool-call parser or guided decoding, and images, which
 * this server cannot do: refused, rather than ignored into an answer of another
 * kind than the client asked for. tool_choice "none" and response_format
 * "text" ask for plain text and pass. */
static int check_unsupported(const srv_call *c, const params *p, const json_val *root, oai_err *e)
{
	const json_val *rf = json_get(root, "response_format");
	if (!oai_absent(rf)) {
		const char *type = json_cstr(json_get(rf, "type")); /* "text\u0000x" is not "text" */
		if (!json_is(rf, JSON_OBJECT) || !type)
			return oai_fail(e, 400, "response_format", "response_format: an object with a string `type`");
		if (strcmp(type, "text"))
			return oai_fail(e, 400, "response_format", "response_format `%.40s` needs guided decoding, which this server does not do; only `text` is supported.", type);
	}
	if (!c->chat) return 0;
	const json_val *tools = json_get(root, "tools"), *tc = json_get(root, "tool_choice");
	if (!oai_absent(tools) && !json_is(tools, JSON_ARRAY))
		return oai_fail(e, 400, "tools", "tools: Input should be a valid list");
	/* A string, or an object naming a function (choice NULL); absent: vLLM's default. */
	const char *choice = oai_absent(tc) ? (json_count(tools) ? "auto" : "none") : json_cstr(tc);
	if (choice ? strcmp(choice, "none") && strcmp(choice, "auto") && strcmp(choice, "required")
		   : !json_is(tc, JSON_OBJECT))
		return oai_fail(e, 400, "tool_choice", "tool_choice: \"none\", \"auto\", \"required\" or an object naming a function");
	if (choice && !strcmp(choice, "auto"))
		return oai_fail(e, 400, "tool_choice", "\"auto\" tool choice needs a tool-call parser, which this server does not have (Gemma 3's chat template has no tools); send tool_choice \"none\" or no tools.");
	if (!choice || !strcmp(choice, "required"))
		return oai_fail(e, 400, "tool_choice", "tool_choice %s needs guided decoding, which this server does not do; send tool_choice \"none\" or no tools.",
				choice ? "\"required\"" : "naming a function");
	for (size_t i = 0; i < json_count(p->messages); i++) {
		const json_val *content = json_get(json_at(p->messages, i), "content");
		for (size_t k = 0; json_is(content, JSON_ARRAY) && k < json_count(content); k++) {
			const json_val *tv = json_get(json_at(content, k), "type");
			const char *type = json_str(tv, NULL);
			if (type && !json_cstr(tv))
				return oai_fail(e, 400, "messages", "messages.%zu.content.%zu: a part type must not contain NUL characters.", i, k);
			if (type && strcmp(type, "text"))
				return oai_fail(e, 400, "messages", "messages.%zu.content.%zu: `%.40s` parts are not supported: this server serves the text model only.", i, k, type);
		}
	}
	return 0;
}

/* The request's fields in vLLM's order (openai_api.h), with the server's own:
 * echo, include_stop_str_in_output, return_tokens_as_token_ids,
 * stop_token_ids. The model's generation_config.json gives the sampling
 * defaults, as in vLLM. */
static int parse_params(server *s, srv_call *c, const json_val *root, params *p, oai_err *e)
{
	int64_t n;
	oai_sampling os;
	const char *model;
	const model_generation *g = &engine_model(s->e)->gen;
	memset(p, 0, sizeof *p);
	c->logprobs = -1;

	if (oai_parse_model(root, &model, e) < 0) return -1;
	if (c->chat ? oai_parse_messages(root, 0, &p->messages, e) : oai_parse_prompts(root, &p->prompt, e)) return -1;
	if (oai_parse_stream(root, &c->stream, &c->include_usage, e) < 0) return -1;
	if (oai_parse_max_tokens(root, c->chat, &p->max_tokens, e) < 0) return -1;
	p->max_tokens_key = c->chat && !oai_absent(json_get(root, "max_completion_tokens")) ? "max_completion_tokens" : "max_tokens";
	if (oai_parse_n(root, SERVER_MAX_CHOICES, &p->n, e) < 0) return -1;

	if (oai_parse_sampling(root, &os, e) < 0) return -1;
	sampler_params *sp = &p->sp.sp;
	sampler_params_default(sp);
	sp->temperature = os.has_temperature ? (float)os.temperature : g->temperature;
	sp->top_p = os.has_top_p ? (float)os.top_p : g->top_p;
	sp->min_p = os.has_min_p ? (float)os.min_p : g->min_p;
	sp->top_k = !os.has_top_k ? g->top_k : os.top_k <= 0 ? 0
							     : (int)MIN(os.top_k, 1 << 30);
	sp->repetition_penalty = os.has_repetition_penalty ? (float)os.repetition_penalty : g->repetition_penalty;
	sp->frequency_penalty = (float)os.frequency_penalty;
	sp->presence_penalty = (float)os.presence_penalty;
	p->sp.has_seed = os.has_seed;
	p->sp.seed = (uint64_t)os.seed;

	if (oai_parse_logprobs(root, c->chat, SAMPLER_MAX_TOP_LOGPROBS, &c->logprobs, e) < 0) return -1;
	if (!c->chat) {
		if (!oai_absent(json_get(root, "suffix")))
			return oai_fail(e, 400, "suffix", "suffix is not currently supported");
		if (oai_get_bool(root, "echo", 0, &c->echo, e) < 0) return -1;
		if (c->echo && c->logprobs >= 0 && c->stream)
			return oai_fail(e, 400, "echo", "echo together with logprobs is not supported with stream.");
	}
	p->sp.logprobs = c->logprobs;
	/* echo with logprobs: the prompt's tokens get theirs too (null for the
	 * first); vLLM's prompt_logprobs asks for them on their own. */
	int64_t plp;
	if (oai_get_int(root, "prompt_logprobs", -1, &plp, e) < 0) return -1;
	if (json_is(json_get(root, "prompt_logprobs"), JSON_NUMBER)) {
		if (c->stream) return oai_fail(e, 400, "prompt_logprobs", "`prompt_logprobs` are not available when `stream=True`.");
		char t[40];
		if (plp < 0 || plp > SAMPLER_MAX_TOP_LOGPROBS)
			return oai_fail(e, 400, "prompt_logprobs", "prompt_logprobs must be between 0 and %d, got %s.",
					SAMPLER_MAX_TOP_LOGPROBS, oai_int_text(json_get(root, "prompt_logprobs"), plp, t, sizeof t));
	}
	c->prompt_lp = (int)plp;
	p->sp.prompt_logprobs = (c->echo && c->logprobs >= 0) || c->prompt_lp >= 0;
	p->sp.prompt_top = MAX(c->echo ? c->logprobs : 0, c->prompt_lp);
	if (c->prompt_lp >= 0) {
		c->answer.prompt_logprobs = write_prompt_lp;
		c->answer.prompt_logprobs_arg = c;
	}
	if (oai_get_bool(root, "ignore_eos", 0, &p->sp.ignore_eos, e) < 0) return -1;
	if (oai_get_bool(root, "include_stop_str_in_output", 0, &c->include_stop_str, e) < 0) return -1;
	if (oai_get_bool(root, "return_tokens_as_token_ids", 0, &c->tokens_as_ids, e) < 0) return -1;
	if (oai_parse_chat_flags(root, c->chat, &p->add_generation_prompt, &p->continue_final_message, e) < 0) return -1;
	if (oai_parse_stop(root, &c->stops, e) < 0) return -1;
	const json_val *sti = json_get(root, "stop_token_ids");
	if (json_is(sti, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(sti); i++) {
			if (oai_int_sat(json_at(sti, i), &n) < 0 || n < 0 || n >= engine_vocab(s->e))
				return oai_fail(e, 400, "stop_token_ids", "stop_token_ids: each must be a token id of the vocabulary");
			if (p->sp.n_stop_ids == SCHED_MAX_STOP_IDS)
				return oai_fail(e, 400, "stop_token_ids", "stop_token_ids: at most %d ids", SCHED_MAX_STOP_IDS);
			p->sp.stop_ids[p->sp.n_stop_ids++] = (int32_t)n;
		}
	} else if (!oai_absent(sti)) {
		return oai_fail(e, 400, "stop_token_ids", "stop_token_ids: Input should be a valid list");
	}
	if (oai_get_int(root, "min_tokens", 0, &n, e) < 0) return -1;

	/* The model once the request's fields are well-formed, then what vLLM
	 * checks knowing the model: an unknown model is a 404 first. */
	if (server_check_model(s, model, e) < 0) return -1;
	char t[40], t2[40];
	oai_int_text(json_get(root, "min_tokens"), n, t, sizeof t);
	if (n < 0) return oai_fail(e, 400, "min_tokens", "min_tokens must be greater than or equal to 0, got %s.", t);
	if (p->max_tokens >= 1 && n > p->max_tokens)
		return oai_fail(e, 400, "min_tokens", "min_tokens must be less than or equal to max_tokens=%s, got %s.",
				oai_int_text(json_get(root, p->max_tokens_key), p->max_tokens, t2, sizeof t2), t);
	p->sp.min_tokens = c->min_tokens = (int)MIN(n, INT32_MAX);
	/* truncate_prompt_tokens: -1 is the context; else at most the context. */
	if (oai_get_int(root, "truncate_prompt_tokens", -2, &p->truncate, e) < 0) return -1;
	if (p->truncate < -1 && !oai_absent(json_get(root, "truncate_prompt_tokens")))
		return oai_fail(e, 400, "truncate_prompt_tokens", "truncate_prompt_tokens: Input should be greater than or equal to -1");
	if (p->truncate > s->max_model_len)
		return oai_fail(e, 400, "truncate_prompt_tokens", "truncate_prompt_tokens value (%s) is greater than max_model_len (%d). Please, select a smaller truncation size.",
				oai_int_text(json_get(root, "truncate_prompt_tokens"), p->truncate, t, sizeof t), s->max_model_len);
	if (p->truncate == -1) p->truncate = s->max_model_len;
	if (p->truncate < -1) p->truncate = -1;
	if (parse_logit_bias(s, c, root, &p->sp.sp, e) < 0) return -1;
	return check_unsupported(c, p, root, e);
}

/* ------------------------------------------------------------ calls */

static void call_unlink(srv_call *c)
{
	server *s = c->s;
	if (c->prev) c->prev->next = c->next;
	else if (s->calls == c) s->calls = c->next;
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
	for (size_t i = 0; c->pids && i < c->n_prompts; i++) free(c->pids[i]);
	free(c->pids);
	free(c->pn);
	free(c->base_ids);
	buf_free(&c->plp_json);
	free(c->bias_ids);
	free(c->bias);
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
	if (c->tokenizing) {
		/* The tokenizer thread has it: freed when it comes back. */
		call_unlink(c);
		c->r = NULL;
		c->gone = 1;
		return;
	}
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
	if (ch->n_tokens < c->min_tokens) return; /* vLLM: no stop string before min_tokens */
	size_t len = buf_rlen(&ch->text);
	const char *t = buf_rptr(&ch->text);
	size_t from = before > c->stops.max_len ? before - c->stops.max_len + 1 : 0;
	if (from < ch->echo_len) from = ch->echo_len;
	size_t best = SIZE_MAX;
	size_t which = SIZE_MAX;
	for (size_t k = 0; k < c->stops.n; k++) {
		size_t sl = c->stops.len[k];
		for (size_t at = from; at + sl <= len; at++)
			if (t[at] == c->stops.s[k][0] && !memcmp(t + at, c->stops.s[k], sl)) {
				if (at < best) {
					best = at;
					which = k;
				}
				break;
			}
	}
	if (which == SIZE_MAX) return;
	size_t cut = c->include_stop_str ? best + c->stops.len[which] : best;
	ch->text.len = ch->text.rd + cut;
	ch->text.data[ch->text.len] = 0;
	ch->done = 1;
	ch->fin = SCHED_STOP;
	ch->stop_str = c->stops.s[which];
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
			} else if (c->stops.n) {
				check_stop(c, ch, before);
			}
		}
		if (ch->ends && i < ch->ends_cap) ch->ends[i] = buf_rlen(&ch->text);
	}
	if (!ch->done && fin != SCHED_RUNNING && ch->n_read >= n_out) {
		size_t before = buf_rlen(&ch->text);
		tok_stream_flush(&ch->ts, &ch->text);
		if (c->stops.n) check_stop(c, ch, before);
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
	/* The model's own end of sequence is no stop reason. */
	int64_t tok = ch->stop_tok >= 0 && ch->stop_tok != c->s->primary_eos ? ch->stop_tok : -1;
	oai_write_finish(w, finish_name(ch->fin), ch->stop_str, tok);
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
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)p[i] & 0xC0) != 0x80) k++;
	return k;
}

static void write_bytes(json_w *w, const char *p, size_t n)
{
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++) jw_int(w, (unsigned char)p[i]);
	jw_arr_end(w);
}

/* Token i of ch's logprobs: a generated one (i >= 0) or, with echo, prompt
 * token np + i (i < 0), whose logprob is NaN where there is none. */
static const sched_token *lp_token(const choice *ch, int np, int i, const sampler_logprob **top)
{
	if (i < 0) return sched_req_prompt_token(ch->plp_q, np + i, top);
	if (top) *top = sched_req_top(ch->q, i);
	return sched_req_token(ch->q, i);
}

/* "logprobs" of tokens [from, to) of ch, in the chat or the completions shape
 * (with echo, from 0: the prompt's tokens first). */
static void write_logprobs(srv_call *c, choice *ch, int from, int to, json_w *w)
{
	buf t;
	buf_init(&t, 1 << 20);
	jw_key(w, "logprobs");
	if (c->logprobs < 0) {
		jw_null(w);
		buf_free(&t);
		return;
	}
	if (c->chat) {
		jw_obj_begin(w);
		jw_key(w, "content");
		jw_arr_begin(w);
		for (int i = from; i < to; i++) {
			const sched_token *tk = sched_req_token(ch->q, i);
			const sampler_logprob *top = sched_req_top(ch->q, i);
			jw_obj_begin(w);
			token_text(c, tk->id, &t);
			jw_key(w, "token");
			jw_strn(w, buf_rptr(&t), buf_rlen(&t));
			jw_key(w, "logprob");
			jw_double(w, tk->logprob < -9999.0f ? -9999.0 : tk->logprob);
			jw_key(w, "bytes");
			write_bytes(w, buf_rptr(&t), buf_rlen(&t));
			jw_key(w, "top_logprobs");
			jw_arr_begin(w);
			for (int k = 0; k < tk->n_top && k < c->logprobs; k++) {
				jw_obj_begin(w);
				token_text(c, top[k].id, &t);
				jw_key(w, "token");
				jw_strn(w, buf_rptr(&t), buf_rlen(&t));
				jw_key(w, "logprob");
				jw_double(w, top[k].logprob < -9999.0f ? -9999.0 : top[k].logprob);
				jw_key(w, "bytes");
				write_bytes(w, buf_rptr(&t), buf_rlen(&t));
				jw_obj_end(w);
			}
			jw_arr_end(w);
			jw_obj_end(w);
		}
		jw_arr_end(w);
		jw_obj_end(w);
	} else {
		/* With echo, the prompt's tokens first (index -np .. -1 below). */
		int np = 0;
		if (from == 0 && c->echo)
			while (sched_req_prompt_token(ch->plp_q, np, NULL)) np++;
		int64_t off = np ? 0 : ch->lp_offset;
		jw_obj_begin(w);
		jw_key(w, "text_offset");
		jw_arr_begin(w);
		for (int i = from - np; i < to; i++) {
			jw_int(w, off);
			token_text(c, lp_token(ch, np, i, NULL)->id, &t);
			off += code_points(buf_rptr(&t), buf_rlen(&t));
		}
		ch->lp_offset = off;
		jw_arr_end(w);
		jw_key(w, "token_logprobs");
		jw_arr_begin(w);
		for (int i = from - np; i < to; i++) {
			float lp = lp_token(ch, np, i, NULL)->logprob;
			if (isnan(lp)) jw_null(w);
			else jw_double(w, lp);
		}
		jw_arr_end(w);
		jw_key(w, "tokens");
		jw_arr_begin(w);
		for (int i = from - np; i < to; i++) {
			token_text(c, lp_token(ch, np, i, NULL)->id, &t);
			jw_strn(w, buf_rptr(&t), buf_rlen(&t));
		}
		jw_arr_end(w);
		jw_key(w, "top_logprobs");
		jw_arr_begin(w);
		for (int i = from - np; i < to; i++) {
			const sampler_logprob *top;
			const sched_token *tk = lp_token(ch, np, i, &top);
			if (isnan(tk->logprob)) {
				jw_null(w);
				continue;
			}
			int seen = 0;
			jw_obj_begin(w);
			for (int k = 0; k < tk->n_top && k < c->logprobs; k++) {
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

/* usage.prompt_tokens: each prompt once, as the model saw it. A replayed
 * assistant text (a greedy continue_final_message) is context, so its tokens
 * count as prompt, as vLLM counts the whole rendered prompt; completion tokens
 * are only those generated after it. Read when the choices are done (the
 * count is final once a choice has its first token or finished). */
static long prompt_tokens(srv_call *c)
{
	long n = 0;
	int last = -1;
	for (int i = 0; i < c->n_choices; i++) {
		if (!c->ch[i].q || c->ch[i].prompt_i == last) continue;
		last = c->ch[i].prompt_i;
		n += sched_req_prompt_len(c->s->sc, c->ch[i].q);
	}
	return n;
}

/* Completion tokens of every choice. */
static long generated(srv_call *c)
{
	long gen = 0;
	for (int i = 0; i < c->n_choices; i++) gen += c->ch[i].n_tokens;
	return gen;
}

static void log_call(srv_call *c, int status)
{
	if (c->s->o.disable_log_requests) return;
	long gen = generated(c);
	log_info("%s %s %d prompt_tokens=%ld completion_tokens=%ld choices=%d stream=%d %" PRIu64 "ms",
		 c->chat ? "chat" : "completion", c->id, status, prompt_tokens(c), gen, c->n_choices, c->stream,
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
	oai_write_answer(&w, &c->answer);
	for (int i = 0; i < c->n_choices; i++) {
		choice *ch = &c->ch[i];
		oai_write_choice(&w, &c->answer, ch->index, buf_rptr(&ch->text), buf_rlen(&ch->text));
		write_logprobs(c, ch, 0, ch->n_tokens, &w);
		write_finish(c, ch, &w);
		oai_write_choice_end(&w, &c->answer, i);
	}
	oai_write_answer_end(&w, &c->answer, (uint64_t)prompt_tokens(c), (uint64_t)generated(c));
	httpd_req *r = call_take_req(c);
	if (w.error) httpd_error(r, 500, "The answer is too large.", NULL);
	else httpd_respond(r, 200, "application/json", NULL, buf_rptr(b), buf_rlen(b));
	log_call(c, 200);
	call_done(c);
}

/* ------------------------------------------------------------ streams */

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
	oai_write_role_chunk(&w, &c->answer, ch->index);
	return send_scratch(c, &w);
}

/* How much of the choice's text may go out now: all of it once done, else
 * all but what might be the start of a stop string, on a character boundary. */
static size_t sendable(srv_call *c, choice *ch)
{
	size_t len = buf_rlen(&ch->text);
	if (ch->done || c->stops.max_len <= 1) return len;
	size_t hold = c->stops.max_len - 1;
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
	oai_write_chunk(&w, &c->answer, ch->index, buf_rptr(&ch->text) + ch->sent, end - ch->sent);
	write_logprobs(c, ch, ch->lp_sent, lp_to, &w);
	if (last) write_finish(c, ch, &w);
	else oai_write_no_finish(&w, &c->answer);
	oai_write_chunk_end(&w);
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
		if (e > allowed) break; /* held back (may start a stop string) */
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
	jw_key(&w, "message");
	jw_str(&w, msg);
	jw_key(&w, "type");
	jw_str(&w, oai_error_type(status));
	jw_key(&w, "param");
	jw_null(&w);
	jw_key(&w, "code");
	jw_int(&w, status);
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
		if (ch->done && ch->fin == SCHED_ERROR) {
			error = 1;
			continue;
		}
		if (send_choice(c, ch) < 0) return;
		if (!ch->finish_sent) all_done = 0;
	}
	if (error) {
		for (int i = 0; i < c->n_choices; i++)
			if (!c->ch[i].done) sched_finish_req(c->s->sc, c->ch[i].q, SCHED_ABORT);
		if (send_error_event(c, 500, "The engine failed while generating.") < 0) return;
		stream_end(c, 500);
		return;
	}
	if (!all_done) return;
	if (c->include_usage) {
		json_w w;
		buf_reset(&c->s->scratch);
		jw_init(&w, &c->s->scratch);
		oai_write_usage_chunk(&w, &c->answer, (uint64_t)prompt_tokens(c), (uint64_t)generated(c));
		if (send_scratch(c, &w) < 0) return;
	}
	stream_end(c, 200);
}

/* ------------------------------------------------------------ progress */

static void call_progress(srv_call *c)
{
	if (c->failed || !c->r || c->tokenizing) return;
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
		if (c->tokenizing) {
			httpd_req *r = call_take_req(c);
			httpd_error(r, 503, why, NULL);
			call_unlink(c);
			c->gone = 1;
			continue;
		}
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

/* ------------------------------------------------------------ prompt ids */

/* One prompt's ids (a string is encoded with <bos>); *ids is malloc'd. Token
 * ids are checked against the vocabulary before they are narrowed to int32
 * (4294967301 is out of vocabulary, not token 5): -2 with the message in e. */
static long prompt_ids(server *s, const json_val *pr, int32_t **ids, char *err, size_t errlen, oai_err *e)
{
	if (json_is(pr, JSON_STRING))
		return server_text_tokens(s, pr->u.str.s, pr->u.str.len, 1, ids, err, errlen);
	size_t n = json_count(pr);
	*ids = malloc((n ? n : 1) * sizeof **ids);
	if (!*ids) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t id = -1;
		char t[40];
		oai_int_sat(json_at(pr, i), &id); /* integral and >= 0: oai_parse_prompts */
		if (id < 0 || id >= engine_vocab(s->e)) {
			oai_fail(e, 400, "prompt", "Token id %s is out of vocabulary (the model has %d).",
				 oai_int_text(json_at(pr, i), id, t, sizeof t), engine_vocab(s->e));
			return -2;
		}
		(*ids)[i] = (int32_t)id;
	}
	return (long)n;
}

/* vLLM's words for a prompt (n tokens) plus max_tokens (mt, as given in
 * mt_v: it may be beyond int64) over the context; the sum is printed from a
 * long double so that no value overflows. */
static int context_error(oai_err *e, int max_len, long n, int64_t max_tokens, const json_val *mt_v)
{
	if (max_tokens < 0 || n >= max_len)
		return oai_fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, you requested %ld tokens in the messages, Please reduce the length of the messages.",
				max_len, n);
	char t[40];
	long double mt = json_is(mt_v, JSON_NUMBER) && !mt_v->is_int ? (long double)mt_v->u.num : (long double)max_tokens;
	return oai_fail(e, 400, NULL, "This model's maximum context length is %d tokens. However, you requested %.0Lf tokens (%ld in the messages, %s in the completion). Please reduce the length of the messages or completion.",
			max_len, (long double)n + mt, n, oai_int_text(mt_v, max_tokens, t, sizeof t));
}

/* ------------------------------------------------------------ the tokenizer thread */

/* Tokenizing a prompt of the context's length takes a while (a 4 MiB text
 * about a second): it runs on a thread of its own, so that the loop keeps
 * answering (/health among others) meanwhile. Calls go through a FIFO, one at
 * a time; the thread reads only the call's parsed document and the read-only
 * tokenizer, and writes only the call's pids/pn/base_ids/terr/te. */
typedef struct tok_queue {
	pthread_t thread;
	int started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	srv_call *todo_head, *todo_tail; /* waiting for the thread */
	srv_call *done_head, *done_tail; /* back to the loop */
	srv_call *busy;                  /* on the thread now */
	ev_async *done_async;
} tok_queue;

static void q_push(srv_call **head, srv_call **tail, srv_call *c)
{
	c->job_next = NULL;
	if (*tail) (*tail)->job_next = c;
	else *head = c;
	*tail = c;
}

static srv_call *q_pop(srv_call **head, srv_call **tail)
{
	srv_call *c = *head;
	if (c) {
		*head = c->job_next;
		if (!*head) *tail = NULL;
		c->job_next = NULL;
	}
	return c;
}

/* The greedy continue_final_message case (a replay of the assistant text). */
static int wants_replay(const srv_call *c)
{
	const params *p = &c->p;
	const json_val *last = c->chat ? json_at(p->messages, json_count(p->messages) - 1) : NULL;
	const json_val *content = json_get(last, "content");
	return c->chat && !c->tokenize_only && p->continue_final_message && p->sp.sp.temperature < 1e-5f && json_count(p->messages) >= 2 &&
	       json_is(content, JSON_STRING) && content->u.str.len > 0 &&
	       !strcmp(json_str(json_get(last, "role"), ""), "assistant");
}

/* Tokenizer thread: every prompt of c (stops at the first error). */
static void tokenize_call(srv_call *c)
{
	server *s = c->s;
	const params *p = &c->p;
	for (size_t pi = 0; pi < c->n_prompts; pi++) {
		const json_val *one = c->list_of_prompts ? json_at(p->prompt, pi) : p->prompt;
		long n;
		if (c->chat)
			n = server_chat_tokens(s, p->messages, p->add_generation_prompt, p->continue_final_message,
					       &c->pids[pi], c->terr, sizeof c->terr);
		else if (c->tokenize_only)
			n = server_text_tokens(s, one->u.str.s, one->u.str.len, c->add_special, &c->pids[pi], c->terr, sizeof c->terr);
		else
			n = prompt_ids(s, one, &c->pids[pi], c->terr, sizeof c->terr, &c->te);
		c->pn[pi] = n;
		if (n < 0) return;
	}
	if (wants_replay(c)) {
		json_val head = *p->messages;
		char err[256];
		head.u.arr.n--;
		c->base_n = server_chat_tokens(s, &head, 1, 0, &c->base_ids, err, sizeof err);
	}
}

static void *tok_main(void *arg)
{
	server *s = arg;
	tok_queue *tq = s->tokq;
	pthread_mutex_lock(&tq->mu);
	while (!tq->stop) {
		srv_call *c = q_pop(&tq->todo_head, &tq->todo_tail);
		if (!c) {
			pthread_cond_wait(&tq->cv, &tq->mu);
			continue;
		}
		tq->busy = c;
		pthread_mutex_unlock(&tq->mu);
		tokenize_call(c);
		pthread_mutex_lock(&tq->mu);
		tq->busy = NULL;
		q_push(&tq->done_head, &tq->done_tail, c);
		pthread_mutex_unlock(&tq->mu);
		ev_async_send(tq->done_async);
		pthread_mutex_lock(&tq->mu);
	}
	pthread_mutex_unlock(&tq->mu);
	return NULL;
}

static int call_submit(srv_call *c, oai_err *e);

/* The answer of POST /tokenize: {count, max_model_len, tokens, token_strs}. */
static void tokenize_answer(srv_call *c)
{
	server *s = c->s;
	httpd_req *r = call_take_req(c);
	long n = c->pn[0];
	if (n < 0) {
		httpd_error(r, 400, c->terr, NULL);
		call_done(c);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "count");
	jw_int(&w, n);
	jw_key(&w, "max_model_len");
	jw_int(&w, s->max_model_len);
	jw_key(&w, "tokens");
	jw_arr_begin(&w);
	for (long i = 0; i < n; i++) jw_int(&w, c->pids[0][i]);
	jw_arr_end(&w);
	jw_key(&w, "token_strs");
	jw_null(&w);
	jw_obj_end(&w);
	if (w.error) httpd_error(r, 500, "The answer is too large.", NULL);
	else server_respond_json(r, 200, &s->scratch);
	call_done(c);
}

/* Loop thread: calls back from the tokenizer go on to their submission. */
static void on_tokenized(ev_loop *loop, void *arg)
{
	server *s = arg;
	tok_queue *tq = s->tokq;
	for (;;) {
		pthread_mutex_lock(&tq->mu);
		srv_call *c = q_pop(&tq->done_head, &tq->done_tail);
		pthread_mutex_unlock(&tq->mu);
		if (!c) break;
		c->tokenizing = 0;
		if (c->gone) {
			call_free(c);
			continue;
		}
		if (c->tokenize_only) {
			tokenize_answer(c);
			continue;
		}
		oai_err e = {0};
		if (call_submit(c, &e) < 0) {
			httpd_req *r = call_take_req(c);
			httpd_error(r, e.status ? e.status : 400, e.msg, e.param);
			if (!s->o.disable_log_requests && e.status >= 500) log_ratelimited(LOG_WARN, "request refused: %s", e.msg);
			call_done(c);
		}
	}
}

int server_openai_init(server *s)
{
	tok_queue *tq = calloc(1, sizeof *tq);
	if (!tq) return -1;
	s->tokq = tq;
	pthread_mutex_init(&tq->mu, NULL);
	pthread_cond_init(&tq->cv, NULL);
	tq->done_async = ev_async_new(s->loop, on_tokenized, s);
	if (!tq->done_async || pthread_create(&tq->thread, NULL, tok_main, s) != 0) return -1;
	tq->started = 1;
	return 0;
}

void server_openai_deinit(server *s)
{
	tok_queue *tq = s->tokq;
	if (!tq) return;
	if (tq->started) {
		pthread_mutex_lock(&tq->mu);
		tq->stop = 1;
		pthread_cond_signal(&tq->cv);
		pthread_mutex_unlock(&tq->mu);
		pthread_join(tq->thread, NULL);
	}
	/* Whatever is still queued lost its client with the HTTP server. */
	srv_call *c;
	while ((c = q_pop(&tq->todo_head, &tq->todo_tail))) call_free(c);
	while ((c = q_pop(&tq->done_head, &tq->done_tail))) call_free(c);
	if (tq->done_async) ev_async_free(tq->done_async);
	pthread_mutex_destroy(&tq->mu);
	pthread_cond_destroy(&tq->cv);
	free(tq);
	s->tokq = NULL;
}

/* Links c among the active calls (a drain waits for it) and hands it to the
 * tokenizer thread; on_tokenized goes on when it is back. */
static void call_enqueue(srv_call *c)
{
	server *s = c->s;
	tok_queue *tq = s->tokq;
	c->prev = NULL;
	c->next = s->calls;
	if (s->calls) s->calls->prev = c;
	s->calls = c;
	s->n_calls++;
	httpd_on_close(c->r, call_on_close, c);
	c->tokenizing = 1;
	pthread_mutex_lock(&tq->mu);
	q_push(&tq->todo_head, &tq->todo_tail, c);
	pthread_cond_signal(&tq->cv);
	pthread_mutex_unlock(&tq->mu);
}

void server_openai_tokenize(server *s, httpd_req *r, json_doc *doc, const json_val *messages, int agp, int cfm,
			    const json_val *prompt, int add_special)
{
	srv_call *c = calloc(1, sizeof *c);
	if (c) {
		c->pids = calloc(1, sizeof *c->pids);
		c->pn = calloc(1, sizeof *c->pn);
	}
	if (!c || !c->pids || !c->pn) {
		if (c) {
			free(c->pids);
			free(c->pn);
			free(c);
		}
		json_doc_free(doc);
		httpd_error(r, 503, "Out of memory.", NULL);
		return;
	}
	c->s = s;
	c->r = r;
	c->doc = doc;
	c->tokenize_only = 1;
	c->chat = messages != NULL;
	c->n_prompts = 1;
	c->p.messages = messages;
	c->p.prompt = prompt;
	c->p.add_generation_prompt = agp;
	c->p.continue_final_message = cfm;
	c->add_special = add_special;
	buf_init(&c->plp_json, 1);
	call_enqueue(c);
}

/* ------------------------------------------------------------ the handler */

/* Loop thread, once the prompts are tokenized: their checks, then one
 * scheduler request per choice. 0, or -1 with e. */
static int call_submit(srv_call *c, oai_err *e)
{
	server *s = c->s;
	params *pp = &c->p;
	const params p = *pp;
	const json_val *root = json_root(c->doc), *pr = p.prompt;
	int chat = c->chat;
	int max_len = s->max_model_len;
	uint64_t plp_rows = 0;
	for (size_t pi = 0; pi < c->n_prompts; pi++) {
		long n = c->pn[pi];
		int32_t *ids = c->pids[pi];
		int truncated = 0;
		const json_val *one = c->list_of_prompts ? json_at(pr, pi) : pr;
		if (n == -2) {
			*e = c->te;
			return -1;
		}
		if (n < 0) return oai_fail(e, 400, chat ? "messages" : "prompt", "%s", c->terr);
		if (p.truncate >= 0 && n > p.truncate) {
			/* vLLM keeps the last truncate_prompt_tokens tokens. */
			memmove(ids, ids + (n - p.truncate), (size_t)p.truncate * sizeof *ids);
			n = (long)p.truncate;
			truncated = 1;
		}
		if (n == 0) return oai_fail(e, 400, "prompt", "Prompt cannot be empty.");
		for (long k = 0; k < n; k++)
			if (ids[k] >= engine_vocab(s->e))
				return oai_fail(e, 400, "prompt", "Token id %d is out of vocabulary (the model has %d).", (int)ids[k], engine_vocab(s->e));
		if (n >= max_len || (p.max_tokens >= 1 && p.max_tokens > max_len - n))
			return context_error(e, max_len, n, n >= max_len ? -1 : p.max_tokens, json_get(root, p.max_tokens_key));
		/* Prompt log-probabilities are written once per choice (vLLM's
		 * shape): bound the rows of the answer, n x prompt tokens. */
		plp_rows += p.sp.prompt_logprobs ? (uint64_t)n * (uint64_t)p.n : 0;
		if (plp_rows > SERVER_MAX_PROMPT_LOGPROBS_ROWS)
			return oai_fail(e, 400, "prompt_logprobs", "prompt_logprobs (or echo with logprobs) for n=%" PRId64 " choices of prompts of this length would write %" PRIu64 " rows; at most %d rows (choices x prompt tokens) per request.",
					p.n, plp_rows, SERVER_MAX_PROMPT_LOGPROBS_ROWS);
		int64_t room = max_len - n;
		sched_params sp = p.sp;
		/* A greedy continuation of an assistant message: replay its text as the
		 * model's own tokens (scheduler.h, forced replay), so the result is the
		 * one an uninterrupted run gives. */
		if (wants_replay(c) && c->base_n > 0) {
			const json_val *last_content = json_get(json_at(p.messages, json_count(p.messages) - 1), "content");
			ids = c->base_ids;
			n = c->base_n;
			sp.forced_text = last_content->u.str.s;
			sp.forced_len = last_content->u.str.len;
		}
		sp.max_tokens = (int)(p.max_tokens >= 1 ? p.max_tokens : chat ? room
									      : MIN(room, 16));
		for (int64_t k = 0; k < p.n; k++) {
			choice *ch = &c->ch[pi * (size_t)p.n + (size_t)k];
			char err[512];
			ch->index = (int)(pi * (size_t)p.n + (size_t)k);
			if (c->stream) {
				ch->ends_cap = sp.max_tokens;
				ch->ends = calloc((size_t)sp.max_tokens, sizeof *ch->ends);
				if (!ch->ends) return oai_fail(e, 503, NULL, "Out of memory.");
			}
			ch->prompt_i = (int)pi;
			tok_stream_init(&ch->ts, s->tok, json_bool(json_get(root, "skip_special_tokens"), 1));
			if (c->echo) {
				if (json_is(one, JSON_STRING) && !truncated) buf_append(&ch->text, one->u.str.s, one->u.str.len);
				else tokenizer_decode(s->tok, ids, (size_t)n, 1, &ch->text);
				ch->echo_len = buf_rlen(&ch->text);
				ch->lp_offset = code_points(buf_rptr(&ch->text), ch->echo_len);
			}
			if (sp.has_seed) sp.seed = p.sp.seed + (uint64_t)k;
			/* The prompt's log-probabilities are the same for every choice of
			 * it: the first computes them, the others read its (and may use
			 * the prefix cache, which a prompt_logprobs request may not). */
			sp.prompt_logprobs = k == 0 ? p.sp.prompt_logprobs : 0;
			int busy = 0;
			ch->q = sched_submit(s->sc, ids, (int)n, &sp, c, &busy, err, sizeof err);
			if (!ch->q) return oai_fail(e, busy ? 503 : 400, NULL, "%s", err);
			ch->plp_q = sp.prompt_logprobs ? ch->q : c->ch[pi * (size_t)p.n].plp_q;
		}
	}
	return 0;
}

void server_openai_handle(server *s, httpd_req *r, int chat)
{
	oai_err e = {0};
	size_t len;
	const char *body = httpd_body(r, &len);

	if (server_check_body(s, len, &e) < 0) {
		httpd_error(r, e.status, e.msg, e.param);
		return;
	}
	srv_call *c = calloc(1, sizeof *c);
	if (!c) {
		httpd_error(r, 503, "Out of memory.", NULL);
		return;
	}
	c->s = s;
	c->r = r;
	c->chat = chat;
	buf_init(&c->plp_json, 256u << 20);
	c->t0_ms = time_mono_ms();
	oai_make_id(c->id, sizeof c->id, chat, &s->id_seq, s->id_salt);
	c->answer = (oai_answer){.id = c->id, .model = s->o.served_name, .created = (int64_t)time_wall_s(), .chat = chat, .vllm_nulls = 1};

	c->doc = oai_parse_body(body, len, &e);
	if (!c->doc) goto error;
	const json_val *root = json_root(c->doc);
	params *pp = &c->p;
	if (parse_params(s, c, root, pp, &e) < 0) goto error;
	const params p = *pp;

	/* The prompts: one for chat; one or more for completions. */
	const json_val *pr = p.prompt;
	size_t n_prompts = 1;
	int list_of_prompts = !chat && json_is(pr, JSON_ARRAY) &&
			      (json_is(json_at(pr, 0), JSON_STRING) || json_is(json_at(pr, 0), JSON_ARRAY));
	if (list_of_prompts) n_prompts = json_count(pr);
	if (n_prompts * (size_t)p.n > SERVER_MAX_CHOICES) {
		oai_fail(&e, 400, "n", "At most %d choices per request (prompts x n).", SERVER_MAX_CHOICES);
		goto error;
	}
	c->n_prompts = n_prompts;
	c->list_of_prompts = list_of_prompts;
	c->n_choices = (int)(n_prompts * (size_t)p.n);
	c->ch = calloc((size_t)c->n_choices, sizeof *c->ch);
	c->pids = calloc(n_prompts, sizeof *c->pids);
	c->pn = calloc(n_prompts, sizeof *c->pn);
	if (!c->ch || !c->pids || !c->pn) {
		oai_fail(&e, 503, NULL, "Out of memory.");
		goto error;
	}
	for (int i = 0; i < c->n_choices; i++) {
		buf_init(&c->ch[i].text, 64u << 20);
		c->ch[i].stop_tok = -1;
	}
	/* What cannot fit is refused before any tokenizing. */
	int max_len = s->max_model_len;
	if (chat && server_check_prompt_bytes(s, server_messages_bytes(p.messages), &e) < 0) goto error;
	for (size_t pi = 0; pi < n_prompts; pi++) {
		const json_val *one_pr = list_of_prompts ? json_at(pr, pi) : pr;
		if (!chat && json_is(one_pr, JSON_STRING) && server_check_prompt_bytes(s, one_pr->u.str.len, &e) < 0) goto error;
		if (!chat && json_is(one_pr, JSON_ARRAY) && json_count(one_pr) >= (size_t)max_len) {
			context_error(&e, max_len, (long)MIN(json_count(one_pr), (size_t)LONG_MAX), -1, NULL);
			goto error;
		}
	}
	call_enqueue(c);
	return;

error:
	httpd_error(r, e.status ? e.status : 400, e.msg, e.param);
	if (!s->o.disable_log_requests && e.status >= 500) log_ratelimited(LOG_WARN, "request refused: %s", e.msg);
	call_free(c);
}
