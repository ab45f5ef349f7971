/*
 * sim_text.h — the simulator's tokenizer and its deterministic "model".
 *
 * A token is a word: a maximal run of bytes that are not ASCII whitespace.
 * Text is read as a stream of words; a rolling 64-bit state is updated with
 * the hash of every word, prompt and output alike. The next output word is a
 * pure function of that state, exactly as a greedy model's next token is a
 * function of the tokens before it. Hence the continuation rule the gateway's
 * mid-stream resume relies on: the text generated after "P + its first k
 * output tokens" is the rest of the text generated after P.
 *
 * Generated tokens are " word" (one leading space) unless the text before them
 * is empty or ends in whitespace, so concatenating tokens never merges words.
 * This is not a real tokenizer, and the words mean nothing.
 */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

/* The rolling state of one word stream. Owner: embedded by the caller. */
typedef struct sim_text {
	uint64_t h;       /* rolling hash of every word so far */
	int at_boundary;  /* the text so far is empty or ends in whitespace */
	int sentence_end; /* the last word ended with '.' */
} sim_text;

/* Word hashes in order, for KV block hashing. Owner: the caller
 * (sim_words_free); `max` caps n (an append past it fails). */
typedef struct sim_words {
	uint64_t *hash;
	size_t n, cap, max;
} sim_words;

void sim_words_init(sim_words *w, size_t max_words);
void sim_words_free(sim_words *w);
/* Appends one hash. Returns 0, or -1 at the cap or out of memory. */
int sim_words_push(sim_words *w, uint64_t hash);

/* The state of an empty stream. */
void sim_text_init(sim_text *t);
/* Reads s[0..len) as a piece of text that starts and ends at a word boundary
 * (separate pieces never join into one word). Each word is rolled into t and
 * its hash appended to w (w may be NULL). Returns the number of words read, or
 * -1 when w reached its cap. An empty piece changes nothing. */
long sim_text_feed(sim_text *t, sim_words *w, const char *s, size_t len);
/* Marks that the text so far ends at a boundary (a new message starts) without
 * adding a word. */
void sim_text_break(sim_text *t);
/* The word that follows state t: appends the token's text (leading space
 * included when needed) to out, rolls the word into t, appends its hash to w
 * (may be NULL). Returns the token's length in bytes, or -1 (cap of out or w). */
long sim_text_next(sim_text *t, sim_words *w, buf *out);
/* 1 when a model without a token limit would stop (emit EOS) at state t:
 * only after a sentence end, about one sentence in four. */
int sim_text_eos(const sim_text *t);
/* The hash of one word, as fed into the rolling state and the KV blocks. */
uint64_t sim_text_word_hash(const char *w, size_t len);
/* Number of words in s[0..len). */
size_t sim_text_count(const char *s, size_t len);

#endif
