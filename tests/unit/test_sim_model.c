/*
 * test_sim_model.c — infergate-sim's models without HTTP: the word tokenizer
 * and its continuation rule, stop strings, and the KV-cache block pool
 * (accounting invariants under random admissions and releases, prefix hits).
 * The simulator's sources are a program, not a library, so they are compiled
 * in here directly.
 */
#include "t.h"

#include "../../src/sim/sim_text.c"
#include "../../src/sim/sim_kv.c"

#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Generates n tokens after text p; returns them concatenated in out. */
static void gen(const char *p, size_t n, buf *out)
{
	sim_text t;
	sim_text_init(&t);
	sim_text_feed(&t, NULL, p, strlen(p));
	for (size_t i = 0; i < n; i++) sim_text_next(&t, NULL, out);
}

static void test_continuation_rule(void)
{
	const char *prompts[] = {"Once upon a time", "", "ends with space ", "x", "tab\tand\nnewline"};
	for (size_t pi = 0; pi < ARRAY_LEN(prompts); pi++) {
		buf full, tok;
		buf_init(&full, 0);
		buf_init(&tok, 0);
		/* Token boundaries of the full output. */
		sim_text t;
		size_t ends[40];
		sim_text_init(&t);
		sim_text_feed(&t, NULL, prompts[pi], strlen(prompts[pi]));
		for (size_t i = 0; i < 40; i++) {
			sim_text_next(&t, NULL, &full);
			ends[i] = buf_rlen(&full);
		}
		for (size_t k = 0; k < 40; k += 3) {
			buf p, rest;
			buf_init(&p, 0);
			buf_init(&rest, 0);
			buf_puts(&p, prompts[pi]);
			buf_append(&p, buf_rptr(&full), k ? ends[k - 1] : 0);
			gen(buf_rptr(&p), 40 - k, &rest);
			size_t from = k ? ends[k - 1] : 0;
			T_EQ_INT(buf_rlen(&rest), buf_rlen(&full) - from);
			T_CHECK(memcmp(buf_rptr(&rest), buf_rptr(&full) + from, buf_rlen(&rest)) == 0);
			buf_free(&p);
			buf_free(&rest);
		}
		/* Tokens are whole words: the output has exactly 40 words. */
		T_EQ_INT(sim_text_count(buf_rptr(&full), buf_rlen(&full)), 40);
		buf_free(&full);
		buf_free(&tok);
	}
}

static void test_leading_space(void)
{
	buf out;
	buf_init(&out, 0);
	gen("", 2, &out);
	T_CHECK(buf_rptr(&out)[0] != ' ');
	buf_reset(&out);
	gen("word", 1, &out);
	T_CHECK(buf_rptr(&out)[0] == ' ');
	buf_reset(&out);
	gen("word\n", 1, &out);
	T_CHECK(buf_rptr(&out)[0] != ' ');
	buf_free(&out);
}

static void test_words_cap(void)
{
	sim_text t;
	sim_words w;
	sim_text_init(&t);
	sim_words_init(&w, 3);
	T_EQ_INT(sim_text_feed(&t, &w, "a b c", 5), 3);
	T_EQ_INT(sim_text_feed(&t, &w, "d", 1), -1);
	sim_words_free(&w);
}

/* Checks the pool's accounting against the sequences that hold blocks. */
static void kv_invariants(const sim_kv *kv, sim_kv_seq *seqs, size_t n)
{
	uint32_t *refs = calloc(kv->num_blocks, sizeof(*refs));
	uint64_t reserved = 0;
	for (size_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < seqs[i].n; j++) refs[seqs[i].ids[j]]++;
		reserved += seqs[i].reserved;
	}
	uint32_t free_n = 0, lru_n = 0;
	for (uint32_t b = 0; b < kv->num_blocks; b++) {
		T_EQ_INT(refs[b], kv->blocks[b].ref);
		if (!refs[b]) free_n++;
	}
	for (uint32_t b = kv->lru_head; b != SIM_KV_NONE; b = kv->blocks[b].next) lru_n++;
	T_EQ_INT(free_n, kv->free_blocks);
	T_EQ_INT(lru_n, kv->free_blocks);
	T_EQ_INT(reserved, kv->reserved_blocks);
	T_CHECK(kv->reserved_blocks <= kv->free_blocks);
	free(refs);
}

static void test_kv_random(void)
{
	sim_kv kv;
	enum { NSEQ = 12,
	       MAXTOK = 300 };
	sim_kv_seq seqs[NSEQ];
	uint64_t words[NSEQ][MAXTOK], chain[MAXTOK / 16 + 1];
	size_t prompt[NSEQ], total[NSEQ], done[NSEQ];
	int live[NSEQ] = {0};
	T_EQ_INT(sim_kv_init(&kv, 64, "model"), 0);
	memset(seqs, 0, sizeof(seqs));
	for (int step = 0; step < 20000; step++) {
		size_t i = rnd() % NSEQ;
		if (!live[i]) {
			/* Prompts share prefixes: words drawn from a small set of families. */
			uint64_t fam = rnd() % 3;
			prompt[i] = 1 + rnd() % 120;
			total[i] = prompt[i] + rnd() % 60;
			for (size_t k = 0; k < total[i]; k++) words[i][k] = k < 80 ? fam * 1000 + k : rnd();
			size_t full = sim_kv_chain(&kv, words[i], prompt[i], chain, ARRAY_LEN(chain));
			size_t hit = sim_kv_match(&kv, chain, MIN(full, (prompt[i] - 1) / 16));
			uint32_t need = sim_kv_blocks_for(total[i]);
			if (!sim_kv_can_admit(&kv, chain, hit, need)) continue;
			T_EQ_INT(sim_kv_admit(&kv, &seqs[i], chain, full, hit, sim_kv_blocks_for(prompt[i]), need), 0);
			live[i] = 1;
			done[i] = prompt[i];
		} else if (done[i] < total[i] && rnd() % 4) {
			done[i]++;
			T_EQ_INT(sim_kv_grow(&kv, &seqs[i], words[i], done[i]), 0); /* reserved: never fails */
		} else {
			sim_kv_release(&kv, &seqs[i]);
			live[i] = 0;
		}
		if (step % 97 == 0) kv_invariants(&kv, seqs, NSEQ);
	}
	for (size_t i = 0; i < NSEQ; i++) {
		if (live[i]) sim_kv_release(&kv, &seqs[i]);
		sim_kv_seq_free(&seqs[i]);
	}
	T_EQ_INT(kv.free_blocks, 64);
	T_EQ_INT(kv.reserved_blocks, 0);
	sim_kv_deinit(&kv);
}

static void test_kv_prefix_hits(void)
{
	sim_kv kv, other;
	sim_kv_seq a = {0}, b = {0};
	uint64_t words[100], chain[8];
	for (int i = 0; i < 100; i++) words[i] = 7000 + i;
	T_EQ_INT(sim_kv_init(&kv, 32, "m"), 0);
	T_EQ_INT(sim_kv_init(&other, 32, "another model"), 0);
	size_t full = sim_kv_chain(&kv, words, 100, chain, 8);
	T_EQ_INT(full, 6);
	T_EQ_INT(sim_kv_match(&kv, chain, 6), 0);
	T_EQ_INT(sim_kv_admit(&kv, &a, chain, full, 0, 7, 8), 0);
	T_EQ_INT(sim_kv_used(&kv), 7);
	/* While a runs, its blocks are shared. */
	T_EQ_INT(sim_kv_match(&kv, chain, 6), 6);
	T_EQ_INT(sim_kv_admit(&kv, &b, chain, full, 6, 7, 7), 0);
	T_EQ_INT(sim_kv_used(&kv), 8);
	sim_kv_release(&kv, &a);
	sim_kv_release(&kv, &b);
	T_EQ_INT(sim_kv_used(&kv), 0);
	/* Freed, still cached. */
	T_EQ_INT(sim_kv_match(&kv, chain, 6), 6);
	/* The chain is seeded with the model name. */
	uint64_t chain2[8];
	sim_kv_chain(&other, words, 100, chain2, 8);
	T_CHECK(chain2[0] != chain[0]);
	/* Filling the pool with other blocks evicts the cached ones. */
	uint64_t w2[512], c2[32];
	for (int i = 0; i < 512; i++) w2[i] = 90000 + i;
	size_t f2 = sim_kv_chain(&kv, w2, 512, c2, 32);
	T_EQ_INT(sim_kv_admit(&kv, &a, c2, f2, 0, 32, 32), 0);
	sim_kv_release(&kv, &a);
	T_EQ_INT(sim_kv_match(&kv, chain, 6), 0);
	sim_kv_seq_free(&a);
	sim_kv_seq_free(&b);
	sim_kv_deinit(&kv);
	sim_kv_deinit(&other);
}

int main(void)
{
	T_RUN(test_continuation_rule);
	T_RUN(test_leading_space);
	T_RUN(test_words_cap);
	T_RUN(test_kv_random);
	T_RUN(test_kv_prefix_hits);
	return T_END();
}
