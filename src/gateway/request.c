/*
 * request.c — the request description of request.h, read in one pass over
 * the body with core/json's cursor: the fields the gateway uses are read,
 * everything else is checked and skipped, and the prompt is gathered as the
 * one text the picker hashes. Duplicate keys: the last wins, as json_get's.
 */
#include "gateway/request.h"
#include "core/json.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

void request_init(gw_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	buf_init(&rq->messages_text, REQUEST_PROMPT_HEAD_MAX_BYTES);
	buf_init(&rq->prompt_text, REQUEST_PROMPT_HEAD_MAX_BYTES);
}

void request_free(gw_request *rq)
{
	json_cursor_free(rq->cursor);
	rq->cursor = NULL;
	buf_free(&rq->messages_text);
	buf_free(&rq->prompt_text);
}

const char *request_prompt_head(const gw_request *rq, size_t *len)
{
	const buf *b = rq->messages_array ? &rq->messages_text : &rq->prompt_text;
	*len = buf_rlen(b);
	return buf_rptr(b);
}

static int req_key_is(const char *key, size_t key_len, const char *name)
{
	return key_len == strlen(name) && !strcmp(key, name);
}

/* Appends what fits under b's cap (the head is cut, never refused). */
static void head_put(buf *b, const char *s, size_t n)
{
	size_t room = b->max > buf_rlen(b) ? b->max - buf_rlen(b) : 0;
	if (n > room) n = room;
	if (n) buf_append(b, s, n);
}

static void head_cut(buf *b, size_t len)
{
	if (buf_rlen(b) > len) b->len = b->rd + len;
}

/* A leaf value kept for later (strings are not: their bytes do not last). */
typedef struct kept {
	int present;
	json_val v;
} kept;

static int keep(json_cursor *c, kept *k)
{
	if (json_cursor_leaf(c, &k->v) < 0) return -1;
	k->present = 1;
	k->v.u.str.s = NULL;
	return 0;
}

/* The text of a prompt or a message's content, appended to out: a string's
 * bytes; in a list, numbers (token ids) as "%.17g ", objects (content parts)
 * by their "text", and strings and lists as themselves; anything else adds
 * nothing. */
static int scan_text(json_cursor *c, buf *out)
{
	json_val v;
	int t = json_cursor_peek(c);
	if (t == JSON_STRING) {
		if (json_cursor_leaf(c, &v) < 0) return -1;
		head_put(out, v.u.str.s, v.u.str.len);
		return 0;
	}
	if (t != JSON_ARRAY) return json_cursor_skip(c);
	if (json_cursor_enter(c) < 0) return -1;
	int r;
	while ((r = json_cursor_next(c, NULL, NULL)) == 1) {
		int et = json_cursor_peek(c);
		if (et == JSON_NUMBER) {
			if (json_cursor_leaf(c, &v) < 0) return -1;
			char num[32];
			int k = snprintf(num, sizeof(num), "%.17g ", v.u.num);
			head_put(out, num, (size_t)k);
		} else if (et == JSON_OBJECT) {
			if (json_cursor_enter(c) < 0) return -1;
			size_t mark = buf_rlen(out);
			const char *key;
			size_t kl;
			int q;
			while ((q = json_cursor_next(c, &key, &kl)) == 1) {
				if (req_key_is(key, kl, "text")) {
					head_cut(out, mark); /* a later "text" wins */
					if (scan_text(c, out) < 0) return -1;
				} else if (json_cursor_skip(c) < 0) {
					return -1;
				}
			}
			if (q < 0) return -1;
		} else if (scan_text(c, out) < 0) {
			return -1;
		}
	}
	return r < 0 ? -1 : 0;
}

/* "messages": each message's "role\x1fcontent\x1e" into out; *count and
 * whether the last one's content is a string. role and content may come in
 * either order: content is gathered after what out holds, then the role put
 * in front of it. */
static int scan_messages(json_cursor *c, buf *out, size_t *count, int *last_content_string)
{
	*count = 0;
	*last_content_string = 0;
	if (json_cursor_enter(c) < 0) return -1;
	int r;
	char role[256];
	while ((r = json_cursor_next(c, NULL, NULL)) == 1) {
		(*count)++;
		*last_content_string = 0;
		if (json_cursor_peek(c) != JSON_OBJECT) {
			if (json_cursor_skip(c) < 0) return -1;
			head_put(out, "\x1f\x1e", 2); /* no role, no content */
			continue;
		}
		if (json_cursor_enter(c) < 0) return -1;
		size_t start = buf_rlen(out), role_len = 0;
		const char *key;
		size_t kl;
		int q;
		json_val v;
		while ((q = json_cursor_next(c, &key, &kl)) == 1) {
			if (req_key_is(key, kl, "role")) {
				if (json_cursor_leaf(c, &v) < 0) return -1;
				role_len = 0;
				if (v.type == JSON_STRING) { /* cut at 256 bytes: no real role is longer */
					role_len = v.u.str.len < sizeof(role) ? v.u.str.len : sizeof(role);
					memcpy(role, v.u.str.s, role_len);
				}
			} else if (req_key_is(key, kl, "content")) {
				head_cut(out, start);
				*last_content_string = json_cursor_peek(c) == JSON_STRING;
				if (scan_text(c, out) < 0) return -1;
			} else if (json_cursor_skip(c) < 0) {
				return -1;
			}
		}
		if (q < 0) return -1;
		/* out[start..] is the content: put "role\x1f" before it, "\x1e" after. */
		size_t content_len = buf_rlen(out) - start;
		char *base = buf_rptr(out) + start;
		size_t room = out->max - start;
		size_t pre = role_len + 1 > room ? room : role_len + 1;
		if (content_len + pre > room) content_len = room - pre;
		head_cut(out, start + content_len);
		if (pre) {
			/* Make room, then shift the content right by pre. */
			if (buf_space(out, pre) == NULL) return 0;
			base = buf_rptr(out) + start;
			memmove(base + pre, base, content_len);
			size_t rl = pre - 1 < role_len ? pre - 1 : role_len;
			memcpy(base, role, rl);
			if (rl < pre) base[rl] = '\x1f';
			buf_commit(out, pre);
		}
		head_put(out, "\x1e", 1);
	}
	return r < 0 ? -1 : 0;
}

static int scan_stream_options(json_cursor *c, kept *include_usage)
{
	memset(include_usage, 0, sizeof(*include_usage));
	if (json_cursor_peek(c) != JSON_OBJECT) return json_cursor_skip(c);
	if (json_cursor_enter(c) < 0) return -1;
	const char *key;
	size_t kl;
	int r;
	while ((r = json_cursor_next(c, &key, &kl)) == 1) {
		if (req_key_is(key, kl, "include_usage")) {
			if (keep(c, include_usage) < 0) return -1;
		} else if (json_cursor_skip(c) < 0) {
			return -1;
		}
	}
	return r < 0 ? -1 : 0;
}

static int kept_null(const kept *k) { return !k->present || k->v.type == JSON_NULL; }

/* The resume rules of splice_req_read (sse_splice.h), from the fields read. */
static void resume_fields(gw_request *rq, const kept *n, const kept *best_of, const kept *max_tokens,
			  const kept *max_completion_tokens, const kept *echo, const kept *cont, const kept *usage,
			  int prompt_string, size_t n_messages, int last_content_string)
{
	splice_req *out = &rq->resume;
	int chat = rq->chat;
	memset(out, 0, sizeof(*out));
	out->chat = chat;
	out->max_tokens = -1;
	out->resumable = 1;
	int64_t v;
	if (!kept_null(n) && (json_int64(&n->v, &v) < 0 || v != 1)) out->why = "n > 1";
	if (!out->why && !kept_null(best_of) && (json_int64(&best_of->v, &v) < 0 || v > 1)) out->why = "best_of > 1";
	if (!out->why && chat) {
		if (!rq->messages_array || !n_messages) out->why = "messages is not a list";
		else if (cont->present && json_bool(&cont->v, 0) && !last_content_string)
			out->why = "the message continued has no string content";
	}
	if (!out->why && !chat) {
		if (!prompt_string) out->why = "prompt is not a string";
		else if (echo->present && json_bool(&echo->v, 0)) out->why = "echo";
	}
	if (out->why) out->resumable = 0;
	/* The budget: max_completion_tokens wins for chat; completions default to 16. */
	const kept *mt = chat ? max_completion_tokens : NULL;
	if (!mt || kept_null(mt)) mt = max_tokens;
	if (!kept_null(mt) && json_int64(&mt->v, &v) == 0) out->max_tokens = v;
	else if (!chat) out->max_tokens = 16;
	out->include_usage = usage->present && json_bool(&usage->v, 0);
}

void request_clear(gw_request *rq, int chat)
{
	rq->chat = chat;
	rq->model[0] = 0;
	rq->model_state = REQUEST_MODEL_MISSING;
	rq->model_at = rq->model_len = 0;
	rq->stream_options = 0;
	rq->object_at = 0;
	rq->rewritten = 0;
	rq->stream = rq->stream_bad = 0;
	rq->seek = 0;
	rq->messages_array = 0;
	memset(&rq->resume, 0, sizeof(rq->resume));
	buf_reset(&rq->messages_text);
	buf_reset(&rq->prompt_text);
}

int request_read(gw_request *rq, const char *body, size_t len, int chat, char *msg, size_t msg_size)
{
	request_clear(rq, chat);
	json_error je;
	json_cursor *c = rq->cursor;
	if (c) json_cursor_reset(c, body, len, &je);
	else c = rq->cursor = json_cursor_new(body, len, REQUEST_MAX_DEPTH, &je);
	if (!c) {
		snprintf(msg, msg_size, "Out of memory.");
		return 503;
	}
	kept n = {0}, best_of = {0}, max_tokens = {0}, max_completion_tokens = {0}, echo = {0}, cont = {0},
	     usage = {0};
	int prompt_string = 0, last_content_string = 0, object = 0;
	size_t n_messages = 0;
	int r = 0;
	if (json_cursor_peek(c) == JSON_OBJECT) {
		object = 1;
		rq->object_at = (size_t)(json_cursor_pos(c) - body);
		r = json_cursor_enter(c);
		const char *key;
		size_t kl;
		json_val v;
		while (r == 0 && (r = json_cursor_next(c, &key, &kl)) == 1) {
			r = 0;
			if (req_key_is(key, kl, "model")) {
				if (json_cursor_peek(c) < 0) {
					r = -1;
					break;
				}
				const char *at = json_cursor_pos(c);
				if ((r = json_cursor_leaf(c, &v)) < 0) break;
				rq->model_at = (size_t)(at - body);
				rq->model_len = (size_t)(json_cursor_pos(c) - at);
				if (v.type == JSON_NULL) {
					rq->model_state = REQUEST_MODEL_MISSING; /* as absent, as vLLM reads it */
				} else if (v.type != JSON_STRING) {
					rq->model_state = REQUEST_MODEL_NOT_STRING;
				} else {
					size_t k = v.u.str.len < sizeof(rq->model) ? v.u.str.len : sizeof(rq->model) - 1;
					memcpy(rq->model, v.u.str.s, k);
					rq->model[k] = 0;
					rq->model_state = !v.u.str.len ? REQUEST_MODEL_EMPTY
							  /* a NUL inside would route the name as its own prefix */
							  : memchr(v.u.str.s, 0, v.u.str.len) ? REQUEST_MODEL_NUL
											      : REQUEST_MODEL_OK;
				}
			} else if (req_key_is(key, kl, "stream")) {
				if ((r = json_cursor_leaf(c, &v)) < 0) break;
				rq->stream = v.type == JSON_TRUE;
				rq->stream_bad = v.type != JSON_TRUE && v.type != JSON_FALSE && v.type != JSON_NULL;
			} else if (req_key_is(key, kl, "messages")) {
				buf_reset(&rq->messages_text);
				rq->messages_array = json_cursor_peek(c) == JSON_ARRAY;
				n_messages = 0;
				last_content_string = 0;
				r = rq->messages_array ? scan_messages(c, &rq->messages_text, &n_messages, &last_content_string)
						       : json_cursor_skip(c);
			} else if (req_key_is(key, kl, "prompt")) {
				buf_reset(&rq->prompt_text);
				prompt_string = json_cursor_peek(c) == JSON_STRING;
				r = scan_text(c, &rq->prompt_text);
			} else if (req_key_is(key, kl, "n")) {
				r = keep(c, &n);
			} else if (req_key_is(key, kl, "best_of")) {
				r = keep(c, &best_of);
			} else if (req_key_is(key, kl, "max_tokens")) {
				r = keep(c, &max_tokens);
			} else if (req_key_is(key, kl, "max_completion_tokens")) {
				r = keep(c, &max_completion_tokens);
			} else if (req_key_is(key, kl, "echo")) {
				r = keep(c, &echo);
			} else if (req_key_is(key, kl, "continue_final_message")) {
				r = keep(c, &cont);
			} else if (req_key_is(key, kl, "stream_options")) {
				rq->stream_options = 1;
				r = scan_stream_options(c, &usage);
			} else {
				r = json_cursor_skip(c);
			}
		}
	} else {
		r = json_cursor_skip(c);
	}
	if (r >= 0) r = json_cursor_end(c);
	int failed = json_cursor_failed(c);
	if (r < 0 || failed) {
		if (!strcmp(je.msg, "out of memory")) {
			snprintf(msg, msg_size, "Out of memory.");
			return 503;
		}
		snprintf(msg, msg_size, "Invalid JSON body at line %u column %u: %s", je.line, je.col, je.msg);
		return 400;
	}
	if (!object) {
		snprintf(msg, msg_size, "The request body must be a JSON object.");
		return 400;
	}
	resume_fields(rq, &n, &best_of, &max_tokens, &max_completion_tokens, &echo, &cont, &usage, prompt_string,
		      n_messages, last_content_string);
	return 0;
}

int splice_req_read(const char *body, size_t len, int chat, splice_req *out)
{
	gw_request rq;
	char msg[256];
	request_init(&rq);
	int rc = request_read(&rq, body, len, chat, msg, sizeof(msg));
	*out = rq.resume;
	request_free(&rq);
	return rc ? -1 : 0;
}
