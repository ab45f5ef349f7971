/*
 * sse_splice.h — the pure part of a stream resume: what a request allows, what
 * a stream delivered so far, the continuation request, and the rewriting that
 * joins a continuation's events to what the client already has.
 *
 * Knows JSON and SSE event data, nothing of sockets or pools (resume.c runs
 * it on a live call), so every rule here is unit-tested on plain strings
 * (tests/unit/test_resume.c). docs/resume.md explains the rules.
 *
 * One choice only (n = 1): requests with several are not resumable.
 */
#ifndef GATEWAY_SSE_SPLICE_H
#define GATEWAY_SSE_SPLICE_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define SPLICE_TEXT_MAX_BYTES (1u << 20) /* text kept per stream; beyond, not resumable */
#define SPLICE_ID_LEN 256

/* What a request body allows. Filled by the front door's one reading of the
 * body (request.h: gw_request.resume). */
typedef struct splice_req {
	int chat;           /* 1: /v1/chat/completions, 0: /v1/completions */
	int resumable;      /* 0: why says why */
	const char *why;    /* static text: "n > 1", "prompt is not a string", ... */
	int64_t max_tokens; /* the token budget asked (-1: none; completions default 16) */
	int include_usage;  /* the client asked stream_options.include_usage */
	int prefill;        /* the server continues a final assistant message unasked (llama.cpp's
				    * prefill_assistant): set by the caller after splice_req_read */
} splice_req;

/* A stream as the client has it so far, across attempts. Owner: resume.c
 * (one per call); splice_init / splice_free. */
typedef struct splice {
	int chat;
	int client_usage;        /* relay (or write) one usage chunk */
	buf text;                /* choice 0's text so far (cap SPLICE_TEXT_MAX_BYTES) */
	int text_over;           /* the cap was hit: no more resumes */
	const char *unresumable; /* set when the stream holds what a continuation cannot rebuild */
	uint64_t tokens;         /* content deltas relayed, all attempts (≈ tokens, one per chunk) */
	uint64_t tokens_before;  /* ... at the start of this attempt */
	uint32_t attempt;        /* 0: the original stream; n: the n-th continuation */
	int seen_chunk;          /* id, created and model below are known */
	char id[SPLICE_ID_LEN];
	char model[SPLICE_ID_LEN];
	int64_t created;
	int role_sent; /* the role chunk went out */
	int finished;  /* a finish_reason went out */
	int usage_sent;
	int done;              /* [DONE] went out */
	int64_t prompt_tokens; /* the original request's, -1 while unknown */
	buf error_event;       /* the upstream's error event, held (not relayed) */
	buf scratch;           /* a rewritten chunk */
} splice;

void splice_init(splice *s, const splice_req *rq);
void splice_free(splice *s);

/* What splice_event saw. */
enum splice_result {
	SPLICE_GO_ON = 0,
	SPLICE_ERROR = 1, /* an error event: held in s->error_event, nothing written */
	SPLICE_DONE = 2,  /* [DONE]: written */
	SPLICE_FULL = -1, /* out hit its cap */
};

/* One upstream event's data (len bytes, NUL-terminated). Appends to out what
 * the client gets for it ("data: ...\n\n", or nothing for a dropped chunk):
 * the original stream's events as they are; a continuation's with the
 * original id, created and model, without a second role chunk, and with its
 * usage made the whole stream's (dropped when the client did not ask). */
int splice_event(splice *s, const char *data, size_t len, buf *out);

/* The next attempt begins (a continuation): counters moved on. */
void splice_next_attempt(splice *s);

/* The continuation request: the original body with the text so far given
 * back (chat: an assistant message with continue_final_message: true and
 * add_generation_prompt: false; completions: prompt + text), the budget less
 * the tokens already relayed, and stream_options.include_usage: true.
 * Returns 0 (body in out), 1 when no budget is left (nothing to ask), or -1
 * (malformed body, or out's cap). */
int splice_continuation(const splice *s, const splice_req *rq, const char *body, size_t len, buf *out);

/* Ends a stream the gateway completes itself: when finish_length is set a
 * last chunk with finish_reason "length" (the budget was spent), then the
 * usage chunk if the client asked for it and it is known, then [DONE].
 * Returns 0, or -1 at out's cap. */
int splice_end(splice *s, int finish_length, buf *out);

#endif
