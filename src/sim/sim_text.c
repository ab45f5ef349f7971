/*
 * sim_text.c — word tokenizer and the deterministic next-word function of the
 * simulator (see sim_text.h for the rule). No allocation except sim_words.
 */
#include "sim/sim_text.h"

#include <stdlib.h>
#include <string.h>
#include "core/util.h"

#define WORD_SEED 0x53494d574f5244ull /* "SIMWORD" */
#define STATE_SEED 0x53494d5354415445ull

/* 64 plain words; the output reads like a slow day at the weather office. */
static const char *const sim_words_list[] = {
	"the",
	"cloud",
	"river",
	"morning",
	"quiet",
	"signal",
	"north",
	"light",
	"stone",
	"window",
	"gateway",
	"region",
	"token",
	"engine",
	"bright",
	"slow",
	"over",
	"under",
	"across",
	"beyond",
	"calm",
	"storm",
	"paper",
	"garden",
	"music",
	"number",
	"simple",
	"steady",
	"early",
	"late",
	"open",
	"close",
	"bridge",
	"harbor",
	"valley",
	"forest",
	"copper",
	"silver",
	"amber",
	"green",
	"rain",
	"wind",
	"snow",
	"sun",
	"moon",
	"star",
	"field",
	"road",
	"and",
	"with",
	"from",
	"into",
	"near",
	"far",
	"again",
	"still",
	"soft",
	"warm",
	"cold",
	"clear",
	"deep",
	"wide",
	"small",
	"long",
};

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void sim_words_init(sim_words *w, size_t max_words)
{
	memset(w, 0, sizeof(*w));
	w->max = max_words;
}

void sim_words_free(sim_words *w)
{
	free(w->hash);
	w->hash = NULL;
	w->n = w->cap = 0;
}

int sim_words_push(sim_words *w, uint64_t hash)
{
	if (w->max && w->n >= w->max) return -1;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		if (w->max && cap > w->max) cap = w->max;
		uint64_t *p = realloc(w->hash, cap * sizeof(*p));
		if (!p) return -1;
		w->hash = p;
		w->cap = cap;
	}
	w->hash[w->n++] = hash;
	return 0;
}

void sim_text_init(sim_text *t)
{
	t->h = STATE_SEED;
	t->at_boundary = 1;
	t->sentence_end = 0;
}

void sim_text_break(sim_text *t)
{
	t->at_boundary = 1;
}

uint64_t sim_text_word_hash(const char *w, size_t len)
{
	return hash64(w, len, WORD_SEED);
}

/* Rolls one word into the state. */
static int roll(sim_text *t, sim_words *w, const char *word, size_t len)
{
	uint64_t wh = sim_text_word_hash(word, len);
	if (w && sim_words_push(w, wh) < 0) return -1;
	t->h = hash64(&wh, sizeof(wh), t->h);
	t->sentence_end = word[len - 1] == '.';
	return 0;
}

long sim_text_feed(sim_text *t, sim_words *w, const char *s, size_t len)
{
	long words = 0;
	size_t i = 0;
	if (len == 0) return 0;
	while (i < len) {
		while (i < len && is_ws((unsigned char)s[i])) i++;
		size_t start = i;
		while (i < len && !is_ws((unsigned char)s[i])) i++;
		if (i > start) {
			if (roll(t, w, s + start, i - start) < 0) return -1;
			words++;
		}
	}
	t->at_boundary = is_ws((unsigned char)s[len - 1]);
	return words;
}

long sim_text_next(sim_text *t, sim_words *w, buf *out)
{
	char word[32];
	uint64_t h = t->h;
	const char *base = sim_words_list[(h >> 17) % ARRAY_LEN(sim_words_list)];
	size_t n = strlen(base);
	memcpy(word, base, n);
	if ((h >> 40) % 12 == 0) word[n++] = '.';
	else if ((h >> 44) % 10 == 0) word[n++] = ',';
	size_t before = buf_rlen(out);
	if (!t->at_boundary && buf_append(out, " ", 1) < 0) return -1;
	if (buf_append(out, word, n) < 0) goto undo;
	if (roll(t, w, word, n) < 0) goto undo;
	t->at_boundary = 0;
	return (long)(buf_rlen(out) - before);
undo:
	out->len = out->rd + before;
	if (out->data) out->data[out->len] = '\0';
	return -1;
}

int sim_text_eos(const sim_text *t)
{
	return t->sentence_end && (t->h >> 52) % 4 == 0;
}

size_t sim_text_count(const char *s, size_t len)
{
	size_t n = 0, i = 0;
	while (i < len) {
		while (i < len && is_ws((unsigned char)s[i])) i++;
		if (i < len) n++;
		while (i < len && !is_ws((unsigned char)s[i])) i++;
	}
	return n;
}
