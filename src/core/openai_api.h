/*
 * openai_api.h — the OpenAI completions API as vLLM serves it, for every
 * program that answers it (infergate-sim, infergate-server): reading and
 * validating a request's fields with vLLM's defaults and error texts, and
 * writing the answer objects and stream chunks in vLLM's exact shapes.
 *
 * Reading: each oai_parse_* reads one group of fields from the request's JSON
 * object, in the order vLLM validates them, so a program calls the groups it
 * serves in that order and adds its own fields between them. A bad field
 * fills an oai_err (status, message, param) for httpd_error and returns -1.
 *
 * Writing: through json.h's writer into the caller's buffer; nothing is
 * allocated. Framing as SSE events ("data: ...", "[DONE]") is sse.h's.
 *
 * Not here: the HTTP side (httpd.h), the engine, tokenization, the prompt.
 */
#ifndef CORE_OPENAI_API_H
#define CORE_OPENAI_API_H

#include <stddef.h>
#include <stdint.h>
#include "core/json.h"

#define OAI_MAX_STOPS 16       /* stop strings per request */
#define OAI_MAX_STOP_BYTES 256 /* bytes per stop string */

/* An error answer being built: HTTP status, message, the field it names
 * (param, may be NULL). */
typedef struct oai_err {
	int status;
	const char *param;
	char msg[768];
} oai_err;

/* Fills e and returns -1. */
int oai_fail(oai_err *e, int status, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 404 "The model `X` does not exist." (vLLM's words; model may be NULL). */
int oai_fail_model(oai_err *e, const char *model);

/* ---- reading a request */

/* Parses a request body that must be a JSON object (nesting up to 64).
 * Returns the document (json_doc_free), or NULL with a 400 in e:
 * "Invalid JSON at line L column C: ..." or "The request body must be a JSON object." */
json_doc *oai_parse_body(const char *body, size_t len, oai_err *e);

/* 1 when v is missing or null (vLLM treats both as "not given"). */
int oai_absent(const json_val *v);

/* An integral JSON number of any size (1, 2.0, 1e30, 99999999999999999999)
 * into *out, saturated to INT64_MIN/INT64_MAX beyond int64: vLLM's integer
 * fields are Python ints without bound, so a huge value must meet the field's
 * range check and its message, never be truncated or wrap. Returns 0, or -1
 * for a non-number, a fraction or an infinity. */
int oai_int_sat(const json_val *v, int64_t *out);
/* The integer v as the client wrote it (beyond int64: its digits from the
 * double, as Python prints a big int), else x, into buf. Returns buf. */
const char *oai_int_text(const json_val *v, int64_t x, char *buf, size_t size);

/* Typed optional fields: *out = dflt when absent; -1 with "KEY: Input should
 * be a valid boolean/integer" on a bad type. Integers are read with
 * oai_int_sat (saturated, never truncated). */
int oai_get_bool(const json_val *obj, const char *key, int dflt, int *out, oai_err *e);
int oai_get_int(const json_val *obj, const char *key, int64_t dflt, int64_t *out, oai_err *e);
/* An optional number: 1 when present (*out set), 0 when absent, -1 on a bad type. */
int oai_get_num(const json_val *obj, const char *key, double *out, oai_err *e);

/* "model": the string, or NULL when absent; 400 when it is not a string or
 * holds a NUL ("a\u0000b" would be served as model "a"). */
int oai_parse_model(const json_val *root, const char **model, oai_err *e);

/* Chat "messages": a non-empty list of objects with a string role and a
 * content that is absent, a string or a list of parts. With part_types, each
 * part must be an object with a string "type" (for programs without a chat
 * template that would say so). */
int oai_parse_messages(const json_val *root, int part_types, const json_val **messages, oai_err *e);

/* Completions "prompt": a string, a list of token ids, a list of strings or a
 * list of token-id lists (non-empty, each id a non-negative integer). *prompt
 * is the field as given. */
int oai_parse_prompts(const json_val *root, const json_val **prompt, oai_err *e);

/* "stream" and "stream_options.include_usage" (only with stream). */
int oai_parse_stream(const json_val *root, int *stream, int *include_usage, oai_err *e);

/* "max_tokens", and "max_completion_tokens" for chat (which wins there):
 * at least 1 when given. *max_tokens is -1 when neither is given. */
int oai_parse_max_tokens(const json_val *root, int chat, int64_t *max_tokens, oai_err *e);

/* "n": 1 when absent, else in [1, max_n]. */
int oai_parse_n(const json_val *root, int64_t max_n, int64_t *n, oai_err *e);

/* The sampling fields vLLM checks, as given (has_* 0 when absent). */
typedef struct oai_sampling {
	int has_temperature, has_top_p, has_min_p, has_top_k, has_seed;
	double temperature; /* >= 0 */
	double top_p;       /* (0, 1] */
	double min_p;       /* [0, 1] */
	int64_t top_k;      /* -1 (off) or >= 0 */
	int64_t seed;
	double presence_penalty;  /* [-2, 2], 0 when absent */
	double frequency_penalty; /* [-2, 2], 0 when absent */
	int has_repetition_penalty;
	double repetition_penalty; /* > 0, 1 when absent */
} oai_sampling;

/* temperature, top_p, min_p, top_k, seed, presence_penalty,
 * frequency_penalty, repetition_penalty. */
int oai_parse_sampling(const json_val *root, oai_sampling *s, oai_err *e);

/* Logprobs: chat "logprobs" (bool) and "top_logprobs", completions
 * "logprobs" (int). *logprobs is -1 for none, 0 for the sampled token's, K for
 * also the top K. max_top < 0: the program returns no logprobs, so only the
 * types and the top_logprobs-needs-logprobs rule are checked (*logprobs -1). */
int oai_parse_logprobs(const json_val *root, int chat, int max_top, int *logprobs, oai_err *e);

/* "add_generation_prompt" (default true) and "continue_final_message"
 * (default false); both true is an error for chat. */
int oai_parse_chat_flags(const json_val *root, int chat, int *add_generation_prompt,
			 int *continue_final_message, oai_err *e);

/* "stop": a string or a list of strings (empty ones dropped), at most
 * OAI_MAX_STOPS of at most OAI_MAX_STOP_BYTES each. The strings point into the
 * request's document. */
typedef struct oai_stops {
	const char *s[OAI_MAX_STOPS];
	size_t len[OAI_MAX_STOPS];
	size_t n;
	size_t max_len; /* the longest */
} oai_stops;
int oai_parse_stop(const json_val *root, oai_stops *stops, oai_err *e);

/* A completion id: "chatcmpl-" or "cmpl-" and 32 hex digits from a hash of
 * *seq (then incremented) and salt. out needs 48 bytes. */
void oai_make_id(char *out, size_t size, int chat, uint64_t *seq, uint64_t salt);

/* ---- writing answers */

/* What every object of one answer repeats. vllm_nulls: also the null fields
 * recent vLLM versions write (message.reasoning_content,
 * usage.prompt_tokens_details). */
typedef struct oai_answer {
	const char *id;
	const char *model;
	int64_t created; /* seconds since the epoch */
	int chat;
	int vllm_nulls;
	/* vLLM's "prompt_logprobs" (per choice for completions, once for chat):
	 * null, or what this writes when set (choice: the index, 0 for chat). */
	void (*prompt_logprobs)(json_w *w, void *arg, int choice);
	void *prompt_logprobs_arg;
} oai_answer;

/* Opens a whole answer: the object with id, object ("chat.completion" or
 * "text_completion"), created and model, then the "choices" list. */
void oai_write_answer(json_w *w, const oai_answer *a);

/* Opens a choice of a whole answer: {"index", then "message" (role, content,
 * tool_calls) for chat or "text". Logprobs and the finish follow, then
 * oai_write_choice_end. */
void oai_write_choice(json_w *w, const oai_answer *a, int index, const char *text, size_t len);
/* Closes choice `index` of a whole answer (prompt_logprobs for completions). */
void oai_write_choice_end(json_w *w, const oai_answer *a, int index);
/* Closes the choices, writes usage (and prompt_logprobs for chat) and
 * closes the answer. */
void oai_write_answer_end(json_w *w, const oai_answer *a, uint64_t prompt_tokens, uint64_t completion_tokens);

/* "finish_reason" and "stop_reason": the stop string, else the stop token id
 * when >= 0, else null. */
void oai_write_finish(json_w *w, const char *finish_reason, const char *stop_str, int64_t stop_token);
/* The finish of a chunk that does not end its choice: finish_reason null (and
 * stop_reason null for completions). */
void oai_write_no_finish(json_w *w, const oai_answer *a);

/* A whole chunk: the first of a chat choice (delta role "assistant", content ""). */
void oai_write_role_chunk(json_w *w, const oai_answer *a, int index);
/* Opens a content chunk of one choice: head, "choices":[{"index", "delta":
 * {"content"} or "text". Logprobs and the finish follow, then
 * oai_write_chunk_end. */
void oai_write_chunk(json_w *w, const oai_answer *a, int index, const char *text, size_t len);
void oai_write_chunk_end(json_w *w);
/* A whole chunk: no choices, the usage (stream_options.include_usage). */
void oai_write_usage_chunk(json_w *w, const oai_answer *a, uint64_t prompt_tokens, uint64_t completion_tokens);

/* GET /v1/models: {"object":"list","data":[...]}, one card per id (object
 * "model", created, owned_by "vllm", root, parent null, max_model_len, and
 * permission [] with vllm_nulls). */
void oai_write_models(json_w *w, const char *const *ids, size_t n_ids, const char *root, int64_t created,
		      int64_t max_model_len, int vllm_nulls);
/* A card's common fields, the object left open for the caller's own. */
void oai_write_model_begin(json_w *w, const char *id, const char *owned_by, const char *root, int64_t created);
/* The same with a parent (a LoRA adapter's base model, as vLLM lists it; NULL writes null). */
void oai_write_model_parent_begin(json_w *w, const char *id, const char *owned_by, const char *root,
				  const char *parent, int64_t created);
/* One card (GET /v1/models/{id}). */
void oai_write_model(json_w *w, const char *id, const char *root, int64_t created, int64_t max_model_len,
		     int vllm_nulls);

#endif
