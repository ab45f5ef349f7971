/*
 * openai_api.c — OpenAI completions requests read and answers written as vLLM
 * does: field checks with vLLM's texts, answer and chunk shapes.
 */
#include "core/openai_api.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/util.h"

int oai_fail(oai_err *e, int status, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->status = status;
	e->param = param;
	return -1;
}

/* ------------------------------------------------------------ reading */

json_doc *oai_parse_body(const char *body, size_t len, oai_err *e)
{
	json_error jerr;
	json_doc *doc = json_parse(body, len, 64, &jerr);
	if (!doc) {
		oai_fail(e, 400, NULL, "Invalid JSON at line %u column %u: %s", jerr.line, jerr.col, jerr.msg);
		return NULL;
	}
	if (!json_is(json_root(doc), JSON_OBJECT)) {
		oai_fail(e, 400, NULL, "The request body must be a JSON object.");
		json_doc_free(doc);
		return NULL;
	}
	return doc;
}

int oai_fail_model(oai_err *e, const char *model)
{
	return oai_fail(e, 404, "model", "The model `%.300s` does not exist.", model ? model : "");
}

int oai_absent(const json_val *v) { return !v || json_is(v, JSON_NULL); }

int oai_get_bool(const json_val *obj, const char *key, int dflt, int *out, oai_err *e)
{
	const json_val *v = json_get(obj, key);
	if (oai_absent(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is(v, JSON_TRUE) && !json_is(v, JSON_FALSE))
		return oai_fail(e, 400, key, "%s: Input should be a valid boolean", key);
	*out = json_bool(v, dflt);
	return 0;
}

int oai_int_sat(const json_val *v, int64_t *out)
{
	if (json_int64(v, out) == 0) return 0;
	if (!json_is(v, JSON_NUMBER)) return -1;
	double d = v->u.num;
	if (!isfinite(d) || d != floor(d)) return -1;
	*out = d > 0 ? INT64_MAX : INT64_MIN;
	return 0;
}

const char *oai_int_text(const json_val *v, int64_t x, char *buf, size_t size)
{
	int64_t exact;
	if (json_is(v, JSON_NUMBER) && json_int64(v, &exact) < 0 && isfinite(v->u.num))
		snprintf(buf, size, "%.0f", v->u.num);
	else
		snprintf(buf, size, "%" PRId64, x);
	return buf;
}

int oai_get_int(const json_val *obj, const char *key, int64_t dflt, int64_t *out, oai_err *e)
{
	const json_val *v = json_get(obj, key);
	if (oai_absent(v)) {
		*out = dflt;
		return 0;
	}
	if (oai_int_sat(v, out) < 0) return oai_fail(e, 400, key, "%s: Input should be a valid integer", key);
	return 0;
}

int oai_get_num(const json_val *obj, const char *key, double *out, oai_err *e)
{
	const json_val *v = json_get(obj, key);
	if (oai_absent(v)) return 0;
	if (!json_is(v, JSON_NUMBER)) return oai_fail(e, 400, key, "%s: Input should be a valid number", key);
	*out = json_num(v, 0);
	return 1;
}

int oai_parse_model(const json_val *root, const char **model, oai_err *e)
{
	const json_val *m = json_get(root, "model");
	*model = NULL;
	if (oai_absent(m)) return 0;
	if (!json_is(m, JSON_STRING)) return oai_fail(e, 400, "model", "model: Input should be a valid string");
	/* A NUL inside would make the name its own prefix to strcmp. */
	if (!json_cstr(m)) return oai_fail(e, 400, "model", "model: The model name must not contain NUL characters");
	*model = m->u.str.s;
	return 0;
}

int oai_parse_messages(const json_val *root, int part_types, const json_val **messages, oai_err *e)
{
	const json_val *ms = json_get(root, "messages");
	*messages = ms;
	if (!json_is(ms, JSON_ARRAY))
		return oai_fail(e, 400, "messages", "messages: Field required (a list of messages)");
	if (json_count(ms) == 0)
		return oai_fail(e, 400, "messages", "messages: List should have at least 1 item");
	for (size_t i = 0; i < json_count(ms); i++) {
		const json_val *m = json_at(ms, i), *role = json_get(m, "role");
		const json_val *content = json_get(m, "content");
		if (!json_is(m, JSON_OBJECT) || !json_is(role, JSON_STRING))
			return oai_fail(e, 400, "messages", "messages.%zu: each message needs a string role", i);
		if (!oai_absent(content) && !json_is(content, JSON_STRING) && !json_is(content, JSON_ARRAY))
			return oai_fail(e, 400, "messages", "messages.%zu.content: Input should be a valid string or a list of parts", i);
		for (size_t k = 0; part_types && json_is(content, JSON_ARRAY) && k < json_count(content); k++) {
			const json_val *part = json_at(content, k);
			if (!json_is(part, JSON_OBJECT) || !json_is(json_get(part, "type"), JSON_STRING))
				return oai_fail(e, 400, "messages", "messages.%zu.content.%zu: a part needs a type", i, k);
		}
	}
	return 0;
}

static int token_ids_ok(const json_val *ids)
{
	int64_t n;
	for (size_t k = 0; k < json_count(ids); k++)
		if (oai_int_sat(json_at(ids, k), &n) < 0 || n < 0) return 0;
	return 1;
}

int oai_parse_prompts(const json_val *root, const json_val **prompt, oai_err *e)
{
	static const char shapes[] = "prompt: Input should be a string, a list of strings, a list of token ids or a list of token-id lists";
	const json_val *pr = json_get(root, "prompt");
	*prompt = pr;
	if (oai_absent(pr)) return oai_fail(e, 400, "prompt", "prompt: Field required");
	if (json_is(pr, JSON_STRING)) return 0;
	if (!json_is(pr, JSON_ARRAY)) return oai_fail(e, 400, "prompt", "%s", shapes);
	if (json_count(pr) == 0) return oai_fail(e, 400, "prompt", "Prompt cannot be empty.");
	int kind = json_at(pr, 0)->type;
	for (size_t i = 0; i < json_count(pr); i++) {
		const json_val *it = json_at(pr, i);
		if (kind == JSON_NUMBER) {
			if (!token_ids_ok(pr))
				return oai_fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
			break;
		} else if (kind == JSON_STRING) {
			if (!json_is(it, JSON_STRING))
				return oai_fail(e, 400, "prompt", "prompt: a list of prompts must be all strings or all token-id lists");
		} else if (kind == JSON_ARRAY) {
			if (!json_is(it, JSON_ARRAY) || json_count(it) == 0)
				return oai_fail(e, 400, "prompt", "prompt: each token-id list must be a non-empty list");
			if (!token_ids_ok(it))
				return oai_fail(e, 400, "prompt", "prompt: token ids must be non-negative integers");
		} else {
			return oai_fail(e, 400, "prompt", "%s", shapes);
		}
	}
	return 0;
}

int oai_parse_stream(const json_val *root, int *stream, int *include_usage, oai_err *e)
{
	*include_usage = 0;
	if (oai_get_bool(root, "stream", 0, stream, e) < 0) return -1;
	const json_val *so = json_get(root, "stream_options");
	if (oai_absent(so)) return 0;
	if (!json_is(so, JSON_OBJECT))
		return oai_fail(e, 400, "stream_options", "stream_options: Input should be a valid dictionary");
	if (!*stream)
		return oai_fail(e, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
	return oai_get_bool(so, "include_usage", 0, include_usage, e);
}

int oai_parse_max_tokens(const json_val *root, int chat, int64_t *max_tokens, oai_err *e)
{
	int64_t mt, mct;
	if (oai_get_int(root, "max_tokens", -1, &mt, e) < 0) return -1;
	if (oai_get_int(root, "max_completion_tokens", -1, &mct, e) < 0) return -1;
	char t[40];
	if (!oai_absent(json_get(root, "max_tokens")) && mt < 1)
		return oai_fail(e, 400, "max_tokens", "max_tokens must be at least 1, got %s.",
				oai_int_text(json_get(root, "max_tokens"), mt, t, sizeof t));
	if (chat && !oai_absent(json_get(root, "max_completion_tokens")) && mct < 1)
		return oai_fail(e, 400, "max_completion_tokens", "max_completion_tokens must be at least 1, got %s.",
				oai_int_text(json_get(root, "max_completion_tokens"), mct, t, sizeof t));
	*max_tokens = chat && mct >= 1 ? mct : mt;
	return 0;
}

int oai_parse_n(const json_val *root, int64_t max_n, int64_t *n, oai_err *e)
{
	char t[40];
	if (oai_get_int(root, "n", 1, n, e) < 0) return -1;
	if (*n < 1) return oai_fail(e, 400, "n", "n must be at least 1, got %s.", oai_int_text(json_get(root, "n"), *n, t, sizeof t));
	if (*n > max_n)
		return oai_fail(e, 400, "n", "n must be at most %" PRId64 ", got %s.", max_n, oai_int_text(json_get(root, "n"), *n, t, sizeof t));
	return 0;
}

int oai_parse_sampling(const json_val *root, oai_sampling *s, oai_err *e)
{
	double x;
	int rc;
	memset(s, 0, sizeof *s);
	if ((rc = oai_get_num(root, "temperature", &s->temperature, e)) < 0) return -1;
	if (rc && s->temperature < 0)
		return oai_fail(e, 400, "temperature", "temperature must be non-negative, got %g.", s->temperature);
	s->has_temperature = rc;
	if ((rc = oai_get_num(root, "top_p", &s->top_p, e)) < 0) return -1;
	if (rc && !(s->top_p > 0 && s->top_p <= 1))
		return oai_fail(e, 400, "top_p", "top_p must be in (0, 1], got %g.", s->top_p);
	s->has_top_p = rc;
	if ((rc = oai_get_num(root, "min_p", &s->min_p, e)) < 0) return -1;
	if (rc && !(s->min_p >= 0 && s->min_p <= 1))
		return oai_fail(e, 400, "min_p", "min_p must be in [0, 1], got %g.", s->min_p);
	s->has_min_p = rc;
	s->has_top_k = !oai_absent(json_get(root, "top_k"));
	char t[40];
	if (oai_get_int(root, "top_k", 0, &s->top_k, e) < 0) return -1;
	if (s->top_k < -1)
		return oai_fail(e, 400, "top_k", "top_k must be -1 (disable), or at least 1, got %s.",
				oai_int_text(json_get(root, "top_k"), s->top_k, t, sizeof t));
	/* vLLM bounds seed to a C long (pydantic's ge/le and its words). */
	const json_val *seed = json_get(root, "seed");
	s->has_seed = !oai_absent(seed);
	if (oai_get_int(root, "seed", 0, &s->seed, e) < 0) return -1;
	if (s->has_seed && json_int64(seed, &s->seed) < 0)
		return oai_fail(e, 400, "seed", "seed: Input should be %s", s->seed > 0 ? "less than or equal to 9223372036854775807" : "greater than or equal to -9223372036854775808");
	s->presence_penalty = s->frequency_penalty = 0;
	s->repetition_penalty = 1;
	const char *const keys[2] = {"presence_penalty", "frequency_penalty"};
	double *vals[2] = {&s->presence_penalty, &s->frequency_penalty};
	for (int i = 0; i < 2; i++) {
		if ((rc = oai_get_num(root, keys[i], &x, e)) < 0) return -1;
		if (rc && !(x >= -2 && x <= 2))
			return oai_fail(e, 400, keys[i], "%s must be in [-2, 2], got %g.", keys[i], x);
		if (rc) *vals[i] = x;
	}
	if ((rc = oai_get_num(root, "repetition_penalty", &x, e)) < 0) return -1;
	if (rc && !(x > 0 && isfinite(x)))
		return oai_fail(e, 400, "repetition_penalty", "repetition_penalty must be greater than zero, got %g.", x);
	s->has_repetition_penalty = rc;
	if (rc) s->repetition_penalty = x;
	return 0;
}

/* The bounds of a logprobs count (chat top_logprobs, completions logprobs). */
static int check_top(const json_val *root, const char *key, int64_t n, int max_top, oai_err *e)
{
	char t[40];
	oai_int_text(json_get(root, key), n, t, sizeof t);
	if (n > max_top)
		return oai_fail(e, 400, key, "Requested sample logprobs of %s, which is greater than max allowed: %d", t, max_top);
	if (n < -1) return oai_fail(e, 400, key, "%s must be non-negative, got %s.", key, t);
	return 0;
}

int oai_parse_logprobs(const json_val *root, int chat, int max_top, int *logprobs, oai_err *e)
{
	int64_t n;
	int lp = 0;
	*logprobs = -1;
	if (!chat) {
		if (oai_get_int(root, "logprobs", -1, &n, e) < 0) return -1;
		if (max_top < 0) return 0;
		if (check_top(root, "logprobs", n, max_top, e) < 0) return -1;
		*logprobs = (int)n;
		return 0;
	}
	if (oai_get_bool(root, "logprobs", 0, &lp, e) < 0) return -1;
	if (oai_get_int(root, "top_logprobs", -1, &n, e) < 0) return -1;
	if (n >= 0 && !lp)
		return oai_fail(e, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
	if (max_top < 0) return 0;
	if (check_top(root, "top_logprobs", n, max_top, e) < 0) return -1;
	if (lp) *logprobs = n > 0 ? (int)n : 0;
	return 0;
}

int oai_parse_chat_flags(const json_val *root, int chat, int *add_generation_prompt,
			 int *continue_final_message, oai_err *e)
{
	if (oai_get_bool(root, "add_generation_prompt", 1, add_generation_prompt, e) < 0) return -1;
	if (oai_get_bool(root, "continue_final_message", 0, continue_final_message, e) < 0) return -1;
	if (chat && *add_generation_prompt && *continue_final_message)
		return oai_fail(e, 400, NULL, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
	return 0;
}

static int add_stop(oai_stops *st, const json_val *v, oai_err *e)
{
	if (st->n == OAI_MAX_STOPS) return oai_fail(e, 400, "stop", "stop: at most %d stop strings", OAI_MAX_STOPS);
	if (!v->u.str.len) return 0;
	st->s[st->n] = v->u.str.s;
	st->len[st->n++] = v->u.str.len;
	return 0;
}

int oai_parse_stop(const json_val *root, oai_stops *st, oai_err *e)
{
	const json_val *stop = json_get(root, "stop");
	memset(st, 0, sizeof *st);
	if (json_is(stop, JSON_STRING)) {
		add_stop(st, stop, e);
	} else if (json_is(stop, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(stop); i++) {
			const json_val *v = json_at(stop, i);
			if (!json_is(v, JSON_STRING)) return oai_fail(e, 400, "stop", "stop: Input should be a valid string");
			if (add_stop(st, v, e) < 0) return -1;
		}
	} else if (!oai_absent(stop)) {
		return oai_fail(e, 400, "stop", "stop: Input should be a valid string or a list of strings");
	}
	for (size_t i = 0; i < st->n; i++) {
		if (st->len[i] > OAI_MAX_STOP_BYTES)
			return oai_fail(e, 400, "stop", "stop: each stop string is at most %d bytes", OAI_MAX_STOP_BYTES);
		st->max_len = MAX(st->max_len, st->len[i]);
	}
	return 0;
}

void oai_make_id(char *out, size_t size, int chat, uint64_t *seq, uint64_t salt)
{
	uint64_t a = hash64(seq, sizeof *seq, salt);
	uint64_t b = hash64(&a, sizeof a, salt ^ 0x5a5a);
	(*seq)++;
	snprintf(out, size, "%s%016" PRIx64 "%016" PRIx64, chat ? "chatcmpl-" : "cmpl-", a, b);
}

/* ------------------------------------------------------------ writing */

static void write_head(json_w *w, const oai_answer *a, int chunk)
{
	jw_obj_begin(w);
	jw_key(w, "id");
	jw_str(w, a->id);
	jw_key(w, "object");
	jw_str(w, !a->chat ? "text_completion" : chunk ? "chat.completion.chunk"
						       : "chat.completion");
	jw_key(w, "created");
	jw_int(w, a->created);
	jw_key(w, "model");
	jw_str(w, a->model);
}

static void write_usage(json_w *w, const oai_answer *a, uint64_t prompt_tokens, uint64_t completion_tokens)
{
	jw_key(w, "usage");
	jw_obj_begin(w);
	jw_key(w, "prompt_tokens");
	jw_uint(w, prompt_tokens);
	jw_key(w, "total_tokens");
	jw_uint(w, prompt_tokens + completion_tokens);
	jw_key(w, "completion_tokens");
	jw_uint(w, completion_tokens);
	if (a->vllm_nulls) {
		jw_key(w, "prompt_tokens_details");
		jw_null(w);
	}
	jw_obj_end(w);
}

void oai_write_answer(json_w *w, const oai_answer *a)
{
	write_head(w, a, 0);
	jw_key(w, "choices");
	jw_arr_begin(w);
}

void oai_write_choice(json_w *w, const oai_answer *a, int index, const char *text, size_t len)
{
	jw_obj_begin(w);
	jw_key(w, "index");
	jw_int(w, index);
	if (!a->chat) {
		jw_key(w, "text");
		jw_strn(w, text, len);
		return;
	}
	jw_key(w, "message");
	jw_obj_begin(w);
	jw_key(w, "role");
	jw_str(w, "assistant");
	if (a->vllm_nulls) {
		jw_key(w, "reasoning_content");
		jw_null(w);
	}
	jw_key(w, "content");
	jw_strn(w, text, len);
	jw_key(w, "tool_calls");
	jw_arr_begin(w);
	jw_arr_end(w);
	jw_obj_end(w);
}

static void write_prompt_logprobs(json_w *w, const oai_answer *a, int choice)
{
	jw_key(w, "prompt_logprobs");
	if (a->prompt_logprobs) a->prompt_logprobs(w, a->prompt_logprobs_arg, choice);
	else jw_null(w);
}

void oai_write_choice_end(json_w *w, const oai_answer *a, int index)
{
	if (!a->chat) write_prompt_logprobs(w, a, index);
	jw_obj_end(w);
}

void oai_write_answer_end(json_w *w, const oai_answer *a, uint64_t prompt_tokens, uint64_t completion_tokens)
{
	jw_arr_end(w);
	write_usage(w, a, prompt_tokens, completion_tokens);
	if (a->chat) write_prompt_logprobs(w, a, 0);
	jw_obj_end(w);
}

void oai_write_finish(json_w *w, const char *finish_reason, const char *stop_str, int64_t stop_token)
{
	jw_key(w, "finish_reason");
	jw_str(w, finish_reason);
	jw_key(w, "stop_reason");
	if (stop_str) jw_str(w, stop_str);
	else if (stop_token >= 0) jw_int(w, stop_token);
	else jw_null(w);
}

void oai_write_no_finish(json_w *w, const oai_answer *a)
{
	jw_key(w, "finish_reason");
	jw_null(w);
	if (!a->chat) {
		jw_key(w, "stop_reason");
		jw_null(w);
	}
}

void oai_write_role_chunk(json_w *w, const oai_answer *a, int index)
{
	write_head(w, a, 1);
	jw_key(w, "choices");
	jw_arr_begin(w);
	jw_obj_begin(w);
	jw_key(w, "index");
	jw_int(w, index);
	jw_key(w, "delta");
	jw_obj_begin(w);
	jw_key(w, "role");
	jw_str(w, "assistant");
	jw_key(w, "content");
	jw_str(w, "");
	jw_obj_end(w);
	jw_key(w, "logprobs");
	jw_null(w);
	oai_write_no_finish(w, a);
	oai_write_chunk_end(w);
}

void oai_write_chunk(json_w *w, const oai_answer *a, int index, const char *text, size_t len)
{
	write_head(w, a, 1);
	jw_key(w, "choices");
	jw_arr_begin(w);
	jw_obj_begin(w);
	jw_key(w, "index");
	jw_int(w, index);
	if (a->chat) {
		jw_key(w, "delta");
		jw_obj_begin(w);
		jw_key(w, "content");
		jw_strn(w, text, len);
		jw_obj_end(w);
	} else {
		jw_key(w, "text");
		jw_strn(w, text, len);
	}
}

void oai_write_chunk_end(json_w *w)
{
	jw_obj_end(w);
	jw_arr_end(w);
	jw_obj_end(w);
}

void oai_write_usage_chunk(json_w *w, const oai_answer *a, uint64_t prompt_tokens, uint64_t completion_tokens)
{
	write_head(w, a, 1);
	jw_key(w, "choices");
	jw_arr_begin(w);
	jw_arr_end(w);
	write_usage(w, a, prompt_tokens, completion_tokens);
	jw_obj_end(w);
}

void oai_write_models(json_w *w, const char *const *ids, size_t n_ids, const char *root, int64_t created,
		      int64_t max_model_len, int vllm_nulls)
{
	jw_obj_begin(w);
	jw_key(w, "object");
	jw_str(w, "list");
	jw_key(w, "data");
	jw_arr_begin(w);
	for (size_t i = 0; i < n_ids; i++) oai_write_model(w, ids[i], root, created, max_model_len, vllm_nulls);
	jw_arr_end(w);
	jw_obj_end(w);
}

void oai_write_model_begin(json_w *w, const char *id, const char *owned_by, const char *root, int64_t created)
{
	oai_write_model_parent_begin(w, id, owned_by, root, NULL, created);
}

void oai_write_model_parent_begin(json_w *w, const char *id, const char *owned_by, const char *root,
				  const char *parent, int64_t created)
{
	jw_obj_begin(w);
	jw_key(w, "id");
	jw_str(w, id);
	jw_key(w, "object");
	jw_str(w, "model");
	jw_key(w, "created");
	jw_int(w, created);
	jw_key(w, "owned_by");
	jw_str(w, owned_by);
	jw_key(w, "root");
	jw_str(w, root);
	jw_key(w, "parent");
	jw_str(w, parent); /* NULL writes null */
}

void oai_write_model(json_w *w, const char *id, const char *root, int64_t created, int64_t max_model_len,
		     int vllm_nulls)
{
	oai_write_model_begin(w, id, "vllm", root, created);
	jw_key(w, "max_model_len");
	jw_int(w, max_model_len);
	if (vllm_nulls) {
		jw_key(w, "permission");
		jw_arr_begin(w);
		jw_arr_end(w);
	}
	jw_obj_end(w);
}
