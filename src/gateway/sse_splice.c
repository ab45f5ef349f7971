/*
 * sse_splice.c — reading a streamed request for what a resume may do, keeping
 * what the client got, building the continuation request and joining its
 * events to the client's stream (sse_splice.h). Pure: JSON in, bytes out.
 *
 * Chunks are read with core/json and, for a continuation, written back with
 * the core/json writer (id, created and model replaced, the role chunk
 * dropped, usage summed). The original stream's chunks are relayed as they
 * came, byte for byte.
 */
#include "gateway/sse_splice.h"
#include "core/json.h"
#include "core/sse.h"
#include "core/util.h"

#include <string.h>

#define SPLICE_CHUNK_MAX_BYTES (4u << 20)

/* ------------------------------------------------------------ the request */

/* ------------------------------------------------------------ the stream */

void splice_init(splice *s, const splice_req *rq)
{
	memset(s, 0, sizeof(*s));
	s->chat = rq->chat;
	s->client_usage = rq->include_usage;
	s->prompt_tokens = -1;
	buf_init(&s->text, SPLICE_TEXT_MAX_BYTES);
	buf_init(&s->error_event, 64 * 1024);
	buf_init(&s->scratch, SPLICE_CHUNK_MAX_BYTES);
}

void splice_free(splice *s)
{
	buf_free(&s->text);
	buf_free(&s->error_event);
	buf_free(&s->scratch);
}

void splice_next_attempt(splice *s)
{
	s->attempt++;
	s->tokens_before = s->tokens;
	buf_reset(&s->error_event);
}

static int is_null(const json_val *v) { return !v || json_is(v, JSON_NULL); }

static void write_usage(json_w *w, int64_t prompt, int64_t completion)
{
	jw_obj_begin(w);
	jw_key(w, "prompt_tokens");
	jw_int(w, prompt);
	jw_key(w, "total_tokens");
	jw_int(w, prompt + completion);
	jw_key(w, "completion_tokens");
	jw_int(w, completion);
	jw_obj_end(w);
}

/* A continuation's usage made the whole stream's: its completion tokens
 * follow those relayed before it; its prompt held the text so far, which
 * vLLM counts as prompt (docs/resume.md). */
static void usage_totals(splice *s, const json_val *u, int64_t *prompt, int64_t *completion)
{
	int64_t p = 0, c = 0;
	json_int64(json_get(u, "prompt_tokens"), &p);
	json_int64(json_get(u, "completion_tokens"), &c);
	p -= (int64_t)s->tokens_before;
	if (p < 0) p = 0;
	*prompt = p;
	*completion = (int64_t)s->tokens_before + c;
}

/* A continuation's chunk written as part of the original stream. */
static int rewrite(splice *s, const json_val *root, buf *out)
{
	buf *b = &s->scratch;
	buf_reset(b);
	json_w w;
	jw_init(&w, b);
	jw_obj_begin(&w);
	for (size_t i = 0; i < root->u.obj.n; i++) {
		const json_member *m = &root->u.obj.members[i];
		jw_keyn(&w, m->key, m->key_len);
		if (!strcmp(m->key, "id")) jw_str(&w, s->id);
		else if (!strcmp(m->key, "created")) jw_int(&w, s->created);
		else if (!strcmp(m->key, "model")) jw_str(&w, s->model);
		else if (!strcmp(m->key, "usage") && json_is(m->val, JSON_OBJECT)) {
			int64_t p, c;
			usage_totals(s, m->val, &p, &c);
			write_usage(&w, p, c);
		} else if (!strcmp(m->key, "choices") && json_is(m->val, JSON_ARRAY)) {
			jw_arr_begin(&w);
			for (size_t k = 0; k < json_count(m->val); k++) {
				const json_val *ch = json_at(m->val, k);
				if (!json_is(ch, JSON_OBJECT)) {
					jw_value(&w, ch);
					continue;
				}
				jw_obj_begin(&w);
				for (size_t j = 0; j < ch->u.obj.n; j++) {
					const json_member *cm = &ch->u.obj.members[j];
					jw_keyn(&w, cm->key, cm->key_len);
					if (strcmp(cm->key, "delta") || !json_is(cm->val, JSON_OBJECT)) {
						jw_value(&w, cm->val);
						continue;
					}
					jw_obj_begin(&w); /* the delta without a second role */
					for (size_t q = 0; q < cm->val->u.obj.n; q++) {
						const json_member *dm = &cm->val->u.obj.members[q];
						if (!strcmp(dm->key, "role") && s->role_sent) continue;
						jw_keyn(&w, dm->key, dm->key_len);
						jw_value(&w, dm->val);
					}
					jw_obj_end(&w);
				}
				jw_obj_end(&w);
			}
			jw_arr_end(&w);
		} else jw_value(&w, m->val);
	}
	jw_obj_end(&w);
	if (w.error) return -1;
	return sse_write_data(out, buf_rptr(b), buf_rlen(b));
}

int splice_event(splice *s, const char *data, size_t len, buf *out)
{
	if (s->done) return SPLICE_GO_ON; /* nothing after [DONE] */
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		if (s->attempt && s->client_usage && !s->usage_sent) {
			if (splice_end(s, 0, out) < 0) return SPLICE_FULL; /* the usage the upstream did not send */
		} else if (sse_write_done(out) < 0) {
			return SPLICE_FULL;
		}
		s->done = 1;
		return SPLICE_DONE;
	}
	json_doc *d = json_parse(data, len, 64, NULL);
	const json_val *root = d ? json_root(d) : NULL;
	if (!json_is(root, JSON_OBJECT)) { /* not a chunk: relayed as it is */
		json_doc_free(d);
		return sse_write_data(out, data, len) < 0 ? SPLICE_FULL : SPLICE_GO_ON;
	}
	if (!is_null(json_get(root, "error"))) {
		buf_reset(&s->error_event);
		buf_append(&s->error_event, data, len);
		json_doc_free(d);
		return SPLICE_ERROR;
	}
	if (!s->seen_chunk) { /* the stream's identity: the first chunk the client gets */
		str_copy(s->id, json_str(json_get(root, "id"), ""), sizeof(s->id));
		str_copy(s->model, json_str(json_get(root, "model"), ""), sizeof(s->model));
		int64_t t = 0;
		json_int64(json_get(root, "created"), &t);
		s->created = t;
		s->seen_chunk = 1;
	}
	const json_val *choices = json_get(root, "choices");
	const json_val *ch = json_at(choices, 0);
	const json_val *delta = json_get(ch, "delta");
	const json_val *content = s->chat ? json_get(delta, "content") : json_get(ch, "text");
	size_t clen = json_is(content, JSON_STRING) ? content->u.str.len : 0;
	int has_role = !is_null(json_get(delta, "role"));
	int finish = !is_null(json_get(ch, "finish_reason"));
	const json_val *usage = json_get(root, "usage");
	int is_usage = json_is(usage, JSON_OBJECT) && !json_count(choices);
	if (!is_null(json_get(delta, "tool_calls")) || !is_null(json_get(delta, "reasoning_content")))
		s->unresumable = "tool calls or reasoning in the stream";
	if (json_count(choices) > 1) s->unresumable = "several choices";

	int rc = SPLICE_GO_ON;
	if (is_usage && !s->client_usage) { /* the original stream's too: the gateway asks for it (tenant tokens) */
		int64_t p, c;
		usage_totals(s, usage, &p, &c);
		s->prompt_tokens = p;
		goto out; /* asked by the gateway only */
	}
	if (s->attempt && has_role && s->role_sent && !clen && !finish && is_null(json_get(ch, "logprobs")))
		goto out; /* a second role chunk */
	if (!s->attempt) rc = sse_write_data(out, data, len) < 0 ? SPLICE_FULL : SPLICE_GO_ON;
	else rc = rewrite(s, root, out) < 0 ? SPLICE_FULL : SPLICE_GO_ON;
	if (rc != SPLICE_GO_ON) goto out;
	if (has_role) s->role_sent = 1;
	if (clen) {
		s->tokens++;
		if (!s->text_over && buf_append(&s->text, content->u.str.s, clen) < 0) s->text_over = 1;
	}
	if (finish) s->finished = 1;
	if (is_usage) {
		s->usage_sent = 1;
		int64_t p = -1, c;
		if (s->attempt) usage_totals(s, usage, &p, &c);
		else json_int64(json_get(usage, "prompt_tokens"), &p);
		s->prompt_tokens = p;
	}
out:
	json_doc_free(d);
	return rc;
}

/* ------------------------------------------------------------ the continuation */

static int key_is(const json_member *m, const char *k) { return !strcmp(m->key, k); }

int splice_continuation(const splice *s, const splice_req *rq, const char *body, size_t len, buf *out)
{
	int64_t left = -1;
	if (rq->max_tokens >= 0) {
		left = rq->max_tokens - (int64_t)s->tokens;
		if (left < 1) return 1;
	}
	json_doc *d = json_parse(body, len, 64, NULL);
	const json_val *root = d ? json_root(d) : NULL;
	if (!json_is(root, JSON_OBJECT)) {
		json_doc_free(d);
		return -1;
	}
	const char *text = buf_rptr(&s->text);
	size_t text_len = buf_rlen(&s->text);
	int cont = rq->chat && text_len > 0; /* an assistant message to continue */
	int client_cont = json_bool(json_get(root, "continue_final_message"), 0);
	if (rq->chat && rq->prefill && !client_cont) { /* the server was continuing the client's last message */
		const json_val *ms = json_get(root, "messages");
		const json_val *last = json_at(ms, json_count(ms) ? json_count(ms) - 1 : 0);
		client_cont = json_is(json_get(last, "content"), JSON_STRING) &&
			      !strcmp(json_str(json_get(last, "role"), ""), "assistant");
	}
	buf tmp;
	buf_init(&tmp, 0);
	json_w w;
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	for (size_t i = 0; i < root->u.obj.n; i++) {
		const json_member *m = &root->u.obj.members[i];
		if (key_is(m, "max_tokens") || key_is(m, "max_completion_tokens") || key_is(m, "stream_options")) continue;
		if (cont && (key_is(m, "continue_final_message") || key_is(m, "add_generation_prompt"))) continue;
		if (key_is(m, "min_tokens")) {
			int64_t v = 0;
			json_int64(m->val, &v);
			v -= (int64_t)s->tokens;
			if (v > 0) {
				jw_key(&w, "min_tokens");
				jw_int(&w, v);
			}
			continue;
		}
		jw_keyn(&w, m->key, m->key_len);
		if (rq->chat && key_is(m, "messages") && cont && json_is(m->val, JSON_ARRAY)) {
			size_t n = json_count(m->val);
			jw_arr_begin(&w);
			for (size_t k = 0; k < n; k++) {
				const json_val *msg = json_at(m->val, k);
				if (k + 1 < n || !client_cont || !json_is(msg, JSON_OBJECT)) {
					jw_value(&w, msg);
					continue;
				}
				/* The client continued this message itself: the text goes on it. */
				jw_obj_begin(&w);
				for (size_t j = 0; j < msg->u.obj.n; j++) {
					const json_member *mm = &msg->u.obj.members[j];
					jw_keyn(&w, mm->key, mm->key_len);
					if (!key_is(mm, "content")) {
						jw_value(&w, mm->val);
						continue;
					}
					buf_reset(&tmp);
					if (json_is(mm->val, JSON_STRING)) buf_append(&tmp, mm->val->u.str.s, mm->val->u.str.len);
					buf_append(&tmp, text, text_len);
					jw_strn(&w, buf_rptr(&tmp), buf_rlen(&tmp));
				}
				jw_obj_end(&w);
			}
			if (!client_cont) {
				jw_obj_begin(&w);
				jw_key(&w, "role");
				jw_str(&w, "assistant");
				jw_key(&w, "content");
				jw_strn(&w, text, text_len);
				jw_obj_end(&w);
			}
			jw_arr_end(&w);
		} else if (!rq->chat && key_is(m, "prompt") && json_is(m->val, JSON_STRING)) {
			buf_reset(&tmp);
			buf_append(&tmp, m->val->u.str.s, m->val->u.str.len);
			buf_append(&tmp, text, text_len);
			jw_strn(&w, buf_rptr(&tmp), buf_rlen(&tmp));
		} else {
			jw_value(&w, m->val);
		}
	}
	if (left >= 0) {
		jw_key(&w, rq->chat && json_get(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
		jw_int(&w, left);
	}
	if (cont) {
		jw_key(&w, "continue_final_message");
		jw_bool(&w, 1);
		jw_key(&w, "add_generation_prompt");
		jw_bool(&w, 0);
	}
	jw_key(&w, "stream_options");
	jw_obj_begin(&w);
	const json_val *so = json_get(root, "stream_options");
	if (json_is(so, JSON_OBJECT))
		for (size_t i = 0; i < so->u.obj.n; i++) {
			const json_member *m = &so->u.obj.members[i];
			if (key_is(m, "include_usage")) continue;
			jw_keyn(&w, m->key, m->key_len);
			jw_value(&w, m->val);
		}
	jw_key(&w, "include_usage");
	jw_bool(&w, 1);
	jw_obj_end(&w);
	jw_obj_end(&w);
	buf_free(&tmp);
	json_doc_free(d);
	return w.error ? -1 : 0;
}

int splice_end(splice *s, int finish_length, buf *out)
{
	buf *b = &s->scratch;
	json_w w;
	if (finish_length && !s->finished) {
		buf_reset(b);
		jw_init(&w, b);
		jw_obj_begin(&w);
		jw_key(&w, "id");
		jw_str(&w, s->id);
		jw_key(&w, "object");
		jw_str(&w, s->chat ? "chat.completion.chunk" : "text_completion");
		jw_key(&w, "created");
		jw_int(&w, s->created);
		jw_key(&w, "model");
		jw_str(&w, s->model);
		jw_key(&w, "choices");
		jw_arr_begin(&w);
		jw_obj_begin(&w);
		jw_key(&w, "index");
		jw_int(&w, 0);
		if (s->chat) {
			jw_key(&w, "delta");
			jw_obj_begin(&w);
			jw_key(&w, "content");
			jw_str(&w, "");
			jw_obj_end(&w);
		} else {
			jw_key(&w, "text");
			jw_str(&w, "");
		}
		jw_key(&w, "logprobs");
		jw_null(&w);
		jw_key(&w, "finish_reason");
		jw_str(&w, "length");
		jw_key(&w, "stop_reason");
		jw_null(&w);
		jw_obj_end(&w);
		jw_arr_end(&w);
		jw_obj_end(&w);
		if (w.error || sse_write_data(out, buf_rptr(b), buf_rlen(b)) < 0) return -1;
		s->finished = 1;
	}
	if (s->client_usage && !s->usage_sent && s->prompt_tokens >= 0) {
		buf_reset(b);
		jw_init(&w, b);
		jw_obj_begin(&w);
		jw_key(&w, "id");
		jw_str(&w, s->id);
		jw_key(&w, "object");
		jw_str(&w, s->chat ? "chat.completion.chunk" : "text_completion");
		jw_key(&w, "created");
		jw_int(&w, s->created);
		jw_key(&w, "model");
		jw_str(&w, s->model);
		jw_key(&w, "choices");
		jw_arr_begin(&w);
		jw_arr_end(&w);
		jw_key(&w, "usage");
		write_usage(&w, s->prompt_tokens, (int64_t)s->tokens);
		jw_obj_end(&w);
		if (w.error || sse_write_data(out, buf_rptr(b), buf_rlen(b)) < 0) return -1;
		s->usage_sent = 1;
	}
	if (sse_write_done(out) < 0) return -1;
	s->done = 1;
	return 0;
}
