/*
 * request.h — the request description: what the gateway needs of a client's
 * completions body, read once at the front door and then read by every later
 * stage (routing, the picker's prefix chain, admission, resume). No later
 * stage reads the body's bytes again; they are forwarded untouched.
 *
 * The body is walked with core/json's cursor, which builds no tree: values the
 * gateway does not need are checked and skipped. Memory for one body, whatever
 * its shape: the description (fixed size, about 1 KiB), the prompt's head
 * (at most REQUEST_PROMPT_HEAD_MAX_BYTES, what the longest prefix chain can
 * hash) and the cursor's buffer for the longest string (at most the body's
 * size). So at most the body's size plus 0.5 MiB, where a tree of a body of
 * small array elements took 40 times the body.
 *
 * Not here: routing (pool.c), what a prefix chain is (prefix_index.h), what
 * makes a stream resumable beyond these fields (sse_splice.h).
 */
#ifndef GATEWAY_REQUEST_H
#define GATEWAY_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "gateway/sse_splice.h"

#define REQUEST_MODEL_MAX_BYTES 1024                 /* a longer model name is cut (it routes nowhere) */
#define REQUEST_PROMPT_HEAD_MAX_BYTES (1024u * 256u) /* PREFIX_MAX_BLOCKS x the largest block_chars */
#define REQUEST_MAX_DEPTH 64

/* One request's description. Owner: the caller (request_init / request_free);
 * the front door's, lent to the call for the request's life. */
typedef struct gw_request {
	int chat; /* 1: /v1/chat/completions; 0: /v1/completions */
	char model[REQUEST_MODEL_MAX_BYTES];
	int model_state;            /* REQUEST_MODEL_* */
	size_t model_at, model_len; /* the model's JSON string in the body: bytes [model_at, model_at + model_len) */
	int stream;                 /* "stream": true */
	int stream_bad;             /* "stream" is not a boolean or null */
	int stream_options;         /* the body has a "stream_options" key */
	size_t object_at;           /* the offset of the body's opening '{' */
	splice_req resume;          /* what a resume needs (sse_splice.h), read in the same pass */
	/* The prompt as one text, as the prefix chain hashes it (the head of
	 * request_prompt_head): chat messages in order ("role\x1fcontent\x1e";
	 * content parts' text; token ids as "%.17g "), or the completion
	 * prompt; each cut at REQUEST_PROMPT_HEAD_MAX_BYTES. */
	buf messages_text, prompt_text;
	int messages_array;          /* "messages" is a list (then it is the prompt) */
	int seek;                    /* a stored object (a response by id): a 404 tries the next endpoint */
	struct tenant_state *tenant; /* who asks (tenant.h), set by the front door from the key; borrowed */
	int rewritten;               /* model is a rewrite's target (rewrite.h): the body's model goes as model */
	struct json_cursor *cursor;  /* reads every body (json_cursor_reset): made once, owned */
} gw_request;

enum { REQUEST_MODEL_MISSING = 0,
       REQUEST_MODEL_OK,
       REQUEST_MODEL_NOT_STRING,
       REQUEST_MODEL_EMPTY,
       REQUEST_MODEL_NUL };

void request_init(gw_request *rq);
void request_free(gw_request *rq);

/* Empties rq's fields (a request with no body, or one read otherwise). */
void request_clear(gw_request *rq, int chat);

/* Reads body (len bytes) into rq. Returns 0; or 400 with msg filled (an
 * OpenAI-style message: invalid JSON with its line and column, not an
 * object). Missing or bad fields are left for the caller to judge
 * (model_state, stream_bad). */
int request_read(gw_request *rq, const char *body, size_t len, int chat, char *msg, size_t msg_size);

/* The resume fields alone of body (len bytes), for tests: 0 (out filled; see
 * out->resumable), or -1 when the body is not a JSON object. */
int splice_req_read(const char *body, size_t len, int chat, splice_req *out);

/* The prompt's head as one text (see messages_text): *len bytes at the
 * returned pointer, valid while rq is. */
const char *request_prompt_head(const gw_request *rq, size_t *len);

#endif
