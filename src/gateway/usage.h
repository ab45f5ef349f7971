/*
 * usage.h — the token counts of an answer, read from its bytes as they pass
 * (a JSON body, or an SSE stream of JSON events), without holding them: the
 * last "prompt_tokens" and "completion_tokens" numbers of the answer's
 * "usage" object, and, for streams that carry no usage, the number of
 * chunks with choices (vLLM sends one token per chunk, so this is close).
 *
 * A state machine that knows JSON strings (a key inside a generated text is
 * escaped, so it is never taken for one) and survives any split of the
 * bytes; string bodies and the bytes between strings are run through 16
 * bytes at a time.
 * Memory: the struct (no allocation).
 *
 * Not here: what the counts are used for (tenant.h, token_metrics.c).
 */
#ifndef GATEWAY_USAGE_H
#define GATEWAY_USAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct usage_scan {
	int64_t prompt_tokens;     /* -1 until seen */
	int64_t completion_tokens; /* -1 until seen */
	uint64_t choice_chunks;    /* "finish_reason" keys seen: one per streamed chunk with a choice */
	/* the machine */
	int in_string, escaped;
	char key[24];     /* the string being read, when short enough to be a key we want */
	uint32_t key_len; /* > sizeof(key): too long, ignored */
	int want;         /* 0: nothing; 1: prompt_tokens, 2: completion_tokens after ':' */
	int after_colon;
	int64_t number;
	int in_number;
} usage_scan;

void usage_init(usage_scan *u);
/* Feeds len bytes of the answer. */
void usage_feed(usage_scan *u, const char *data, size_t len);

#endif
