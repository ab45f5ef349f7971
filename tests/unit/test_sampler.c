/*
 * test_sampler.c — greedy is argmax, same seed gives the same tokens, top-k 1 is
 * greedy, top-k / top-p / min-p cut where they should on a crafted distribution,
 * temperature reshapes it, log-probabilities are a log-softmax of the raw logits,
 * banned ids are never drawn, penalties follow vLLM's formulas (and leave the
 * reported log-probabilities raw), greedy's fast argmax picks what the general
 * path picks, and a 262144-wide row is fast.
 */
#include "t.h"

#include <stdlib.h>

#include "core/util.h"
#include "infer/sampler.h"

#define N_DRAWS 20000

/* Logits of a known distribution: log p. */
static void logits_of(const double *p, size_t n, float *out)
{
	for (size_t i = 0; i < n; i++) out[i] = (float)log(p[i]) + 3.0f; /* any shift */
}

/* Frequencies of N_DRAWS samples. */
static void draw(sampler *s, const float *logits, size_t n, const sampler_params *p, uint64_t seed, double *freq)
{
	sampler_rng rng;
	sampler_rng_seed(&rng, seed);
	for (size_t i = 0; i < n; i++) freq[i] = 0;
	for (int k = 0; k < N_DRAWS; k++) {
		sampler_result r;
		T_EQ_INT(sampler_sample(s, logits, n, p, &rng, -1, &r), 0);
		if (r.id >= 0 && (size_t)r.id < n) freq[r.id] += 1.0 / N_DRAWS;
	}
}

static const double dist[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};

static void test_greedy(void)
{
	sampler *s = sampler_new(8);
	float l[8] = {0.1f, 2.0f, -1.0f, 2.0f, 1.5f, -INFINITY, NAN, 0};
	sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	sampler_result r;
	T_EQ_INT(sampler_sample(s, l, 8, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1); /* first of the tied maxima */
	/* Greedy ignores the other cuts, as vLLM does. */
	p.top_k = 3;
	p.top_p = 0.1f;
	T_EQ_INT(sampler_sample(s, l, 8, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1);
	int32_t ban[] = {1, 3};
	p.banned_ids = ban;
	p.n_banned = 2;
	T_EQ_INT(sampler_sample(s, l, 8, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 4);
	/* The ban lasts one call. */
	p.n_banned = 0;
	T_EQ_INT(sampler_sample(s, l, 8, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1);
	sampler_free(s);
}

static void test_seed_determinism(void)
{
	enum { N = 1000 };
	sampler *s = sampler_new(N);
	float l[N];
	sampler_rng g;
	sampler_rng_seed(&g, 7);
	for (int i = 0; i < N; i++) l[i] = (float)(sampler_rng_uniform(&g) * 6.0);
	sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0.9f;
	p.top_p = 0.9f;
	sampler_rng a, b, c;
	sampler_rng_seed(&a, 1234);
	sampler_rng_seed(&b, 1234);
	sampler_rng_seed(&c, 1235);
	int same_ab = 1, same_ac = 1;
	for (int k = 0; k < 200; k++) {
		sampler_result ra, rb, rc;
		sampler_sample(s, l, N, &p, &a, -1, &ra);
		sampler_sample(s, l, N, &p, &b, -1, &rb);
		sampler_sample(s, l, N, &p, &c, -1, &rc);
		if (ra.id != rb.id) same_ab = 0;
		if (ra.id != rc.id) same_ac = 0;
	}
	T_CHECK(same_ab);
	T_CHECK(!same_ac);
	sampler_free(s);
}

static void test_top_k_one_is_greedy(void)
{
	enum { N = 5000 };
	sampler *s = sampler_new(N);
	float *l = malloc(N * sizeof(float));
	sampler_rng g;
	sampler_rng_seed(&g, 99);
	for (int trial = 0; trial < 20; trial++) {
		int best = 0;
		for (int i = 0; i < N; i++) {
			l[i] = (float)(sampler_rng_uniform(&g) * 10.0 - 5.0);
			if (l[i] > l[best]) best = i;
		}
		sampler_params p;
		sampler_params_default(&p);
		p.temperature = 1.5f;
		p.top_k = 1;
		sampler_result r;
		T_EQ_INT(sampler_sample(s, l, N, &p, &g, -1, &r), 0);
		T_EQ_INT(r.id, best);
	}
	free(l);
	sampler_free(s);
}

static void test_temperature_one(void)
{
	sampler *s = sampler_new(6);
	float l[6];
	logits_of(dist, 6, l);
	sampler_params p;
	sampler_params_default(&p);
	double f[6];
	draw(s, l, 6, &p, 42, f);
	for (int i = 0; i < 6; i++) T_NEAR(f[i], dist[i], 0.015);
	/* T = 0.5 squares the probabilities (then renormalises). */
	p.temperature = 0.5f;
	draw(s, l, 6, &p, 43, f);
	double z = 0;
	for (int i = 0; i < 6; i++) z += dist[i] * dist[i];
	for (int i = 0; i < 6; i++) T_NEAR(f[i], dist[i] * dist[i] / z, 0.015);
	sampler_free(s);
}

static void test_cuts(void)
{
	sampler *s = sampler_new(6);
	float l[6];
	logits_of(dist, 6, l);
	sampler_params p;
	double f[6];
	/* top-k 2: {0, 1} in proportion 0.4 : 0.25. */
	sampler_params_default(&p);
	p.top_k = 2;
	draw(s, l, 6, &p, 1, f);
	T_NEAR(f[0], 0.4 / 0.65, 0.015);
	T_NEAR(f[1], 0.25 / 0.65, 0.015);
	for (int i = 2; i < 6; i++) T_EQ_INT(f[i] == 0, 1);
	/* top-p 0.7: 0.4 + 0.25 = 0.65 is short, 0.8 with id 2 is enough. */
	sampler_params_default(&p);
	p.top_p = 0.7f;
	draw(s, l, 6, &p, 2, f);
	T_NEAR(f[0], 0.4 / 0.8, 0.015);
	T_NEAR(f[2], 0.15 / 0.8, 0.015);
	T_CHECK(f[2] > 0);
	for (int i = 3; i < 6; i++) T_EQ_INT(f[i] == 0, 1);
	/* top-p 0.3: the top token alone. */
	p.top_p = 0.3f;
	draw(s, l, 6, &p, 3, f);
	T_NEAR(f[0], 1.0, 1e-9);
	/* min-p 0.3: keep p >= 0.12, i.e. ids 0, 1, 2. */
	sampler_params_default(&p);
	p.min_p = 0.3f;
	draw(s, l, 6, &p, 4, f);
	T_NEAR(f[0], 0.4 / 0.8, 0.015);
	T_CHECK(f[2] > 0.1);
	for (int i = 3; i < 6; i++) T_EQ_INT(f[i] == 0, 1);
	/* min-p after temperature: at T = 0.5, p ~ dist^2 (0.615, 0.240, 0.086, ...); 0.3 * 0.615 keeps ids 0, 1. */
	p.temperature = 0.5f;
	draw(s, l, 6, &p, 5, f);
	T_CHECK(f[0] > 0 && f[1] > 0);
	for (int i = 2; i < 6; i++) T_EQ_INT(f[i] == 0, 1);
	/* All three together: top-k 4, then top-p 0.6 of what is left (0.9 total). */
	sampler_params_default(&p);
	p.top_k = 4;
	p.top_p = 0.6f;
	draw(s, l, 6, &p, 6, f);
	T_CHECK(f[0] > 0 && f[1] > 0);
	for (int i = 2; i < 6; i++) T_EQ_INT(f[i] == 0, 1);
	sampler_free(s);
}

static void test_logprobs(void)
{
	sampler *s = sampler_new(6);
	float l[6];
	logits_of(dist, 6, l);
	sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	sampler_result r;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, 6, &r), 0);
	T_EQ_INT(r.id, 0);
	T_NEAR(r.logprob, log(0.4), 1e-5);
	T_EQ_INT(r.n_top, 6);
	double sum = 0;
	for (int i = 0; i < r.n_top; i++) {
		T_EQ_INT(r.top[i].id, i); /* dist is sorted */
		T_NEAR(r.top[i].logprob, log(dist[i]), 1e-5);
		sum += exp(r.top[i].logprob);
	}
	T_NEAR(sum, 1.0, 1e-5);
	/* Raw: temperature and cuts do not change the reported log-probabilities. */
	sampler_rng rng;
	sampler_rng_seed(&rng, 5);
	p.temperature = 0.3f;
	p.top_k = 2;
	T_EQ_INT(sampler_sample(s, l, 6, &p, &rng, 2, &r), 0);
	T_NEAR(r.logprob, log(dist[r.id]), 1e-5);
	T_EQ_INT(r.n_top, 2);
	T_NEAR(r.top[1].logprob, log(0.25), 1e-5);
	/* No log-probabilities asked: none computed. */
	T_EQ_INT(sampler_sample(s, l, 6, &p, &rng, -1, &r), 0);
	T_EQ_INT(r.n_top, 0);
	/* At most SAMPLER_MAX_TOP_LOGPROBS. */
	sampler *big = sampler_new(100);
	float lb[100];
	for (int i = 0; i < 100; i++) lb[i] = (float)i * 0.01f;
	T_EQ_INT(sampler_sample(big, lb, 100, &p, &rng, 50, &r), 0);
	T_EQ_INT(r.n_top, SAMPLER_MAX_TOP_LOGPROBS);
	T_EQ_INT(r.top[0].id, 99);
	sampler_free(big);
	sampler_free(s);
}

/* The row vLLM's apply_penalties gives, written out by hand. */
static void test_penalties(void)
{
	sampler *s = sampler_new(6);
	float l[6] = {3.0f, 2.9f, -0.5f, -0.4f, 1.0f, 0.0f};
	const float keep[6] = {3.0f, 2.9f, -0.5f, -0.4f, 1.0f, 0.0f};
	int32_t prompt[] = {0, 0, 7, -3}; /* out-of-range ids are ignored */
	int32_t output[] = {1, 3, 1};
	sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	p.prompt_ids = prompt;
	p.n_prompt = 4;
	p.output_ids = output;
	p.n_output = 3;
	sampler_result r;
	/* Off: the raw argmax. */
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 0);
	/* Repetition 2 on prompt and output ids: 0 -> 1.5, 1 -> 1.45, 3 -> -0.8;
	 * 4 (1.0, unseen) stays; 0 still wins. With 4: 0 -> 0.75, 1 -> 0.725, 4 wins. */
	p.repetition_penalty = 2;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, 5, &r), 0);
	T_EQ_INT(r.id, 0);
	p.repetition_penalty = 4;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, 5, &r), 0);
	T_EQ_INT(r.id, 4);
	/* Log-probabilities stay raw: the log-softmax of l, not of the penalised row. */
	double lse = 0;
	for (int i = 0; i < 6; i++) lse += exp(keep[i]);
	lse = log(lse);
	T_NEAR(r.logprob, keep[4] - lse, 1e-5);
	T_EQ_INT(r.top[0].id, 0);
	T_NEAR(r.top[0].logprob, keep[0] - lse, 1e-5);
	for (int i = 0; i < 6; i++) T_NEAR(l[i], keep[i], 0);
	/* Frequency: 1 (twice in the output) loses 2 * 0.2, 3 loses 0.2: 0 wins. */
	p.repetition_penalty = 1;
	p.frequency_penalty = 0.2f;
	l[0] = 2.0f; /* 0 is in the prompt only: untouched */
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1); /* 2.9 - 0.4 = 2.5 > 2.0 */
	p.frequency_penalty = 0.5f;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 0); /* 2.9 - 1.0 = 1.9 < 2.0 */
	/* Presence: once, however often: 2.9 - 0.8 = 2.1 > 2.0; 2.9 - 1.0 < 2.0. */
	p.frequency_penalty = 0;
	p.presence_penalty = 0.8f;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1);
	p.presence_penalty = 1.0f;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 0);
	/* Negative: a repeated id is encouraged (1: 2.9 + 2 = 4.9, 3: 3.0 + 2 = 5.0). */
	p.presence_penalty = -2.0f;
	l[3] = 3.0f;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 3);
	/* Nothing leaks into the next call: penalties off again, the raw argmax. */
	sampler_params_default(&p);
	p.temperature = 0;
	T_EQ_INT(sampler_sample(s, l, 6, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 3);
	/* Sampling (not greedy) reads the penalised row too: a repetition penalty
	 * of 100 leaves id 4 the best, and top_k 1 always draws it. */
	sampler_rng rng;
	sampler_rng_seed(&rng, 9);
	p.temperature = 1;
	p.top_k = 1;
	p.repetition_penalty = 100;
	p.prompt_ids = prompt;
	p.n_prompt = 4;
	p.output_ids = output;
	p.n_output = 3;
	l[3] = -0.4f;
	for (int k = 0; k < 20; k++) {
		T_EQ_INT(sampler_sample(s, l, 6, &p, &rng, -1, &r), 0);
		T_EQ_INT(r.id, 4);
	}
	sampler_free(s);
}

/* logit_bias: added before the penalties, to selection only (log-probabilities
 * stay raw); -100 all but forbids an id, out-of-range ids are ignored. */
static void test_logit_bias(void)
{
	sampler *s = sampler_new(5);
	const float l[5] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};
	int32_t ids[] = {0, 3, 9};
	float bias[] = {-100.0f, 2.5f, 50.0f};
	sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	p.bias_ids = ids;
	p.bias = bias;
	p.n_bias = 3;
	sampler_result r;
	T_EQ_INT(sampler_sample(s, l, 5, &p, NULL, 1, &r), 0);
	T_EQ_INT(r.id, 3); /* 0.0 + 2.5 beats 1.0; 0 is down at -98 */
	double lse = 0;
	for (int i = 0; i < 5; i++) lse += exp(l[i]);
	lse = log(lse);
	T_NEAR(r.logprob, l[3] - lse, 1e-5);
	T_EQ_INT(r.top[0].id, 0);
	/* With a penalty: 3 is in the output, a presence penalty of 2 takes the
	 * biased 2.5 to 0.5, below 1.0. */
	int32_t out[] = {3};
	p.output_ids = out;
	p.n_output = 1;
	p.presence_penalty = 2.0f;
	T_EQ_INT(sampler_sample(s, l, 5, &p, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 1);
	/* Sampling reads the biased row: 0 is never drawn in 2,000 draws. */
	sampler_rng rng;
	sampler_rng_seed(&rng, 3);
	p.presence_penalty = 0;
	p.temperature = 1;
	int zero = 0, three = 0;
	for (int k = 0; k < 2000; k++) {
		T_EQ_INT(sampler_sample(s, l, 5, &p, &rng, -1, &r), 0);
		zero += r.id == 0;
		three += r.id == 3;
	}
	T_EQ_INT(zero, 0);
	T_CHECK(three > 1000); /* e^2.5 of e^2.5 + e^1 + e^0.5 + e^-1 + e^-98: ~0.72 */
	sampler_free(s);
}

/* Prompt log-probabilities: an id's raw log-softmax, its rank, the top k. */
static void test_logprob_of(void)
{
	const float l[5] = {1.0f, 3.0f, -INFINITY, 2.0f, 3.0f};
	double lse = log(exp(1.0) + exp(3.0) + exp(2.0) + exp(3.0));
	float lp;
	int rank;
	sampler_logprob top[3];
	T_EQ_INT(sampler_logprob_of(l, 5, 3, 3, &lp, &rank, top), 3);
	T_NEAR(lp, 2.0 - lse, 1e-5);
	T_EQ_INT(rank, 3); /* two ids (1, 4) are more likely */
	T_CHECK(top[0].id == 1 || top[0].id == 4);
	T_EQ_INT(top[2].id, 3);
	T_NEAR(top[2].logprob, lp, 0);
	T_EQ_INT(sampler_logprob_of(l, 5, 0, 0, &lp, &rank, NULL), 0);
	T_EQ_INT(rank, 4);
	T_EQ_INT(sampler_logprob_of(l, 5, 2, 0, &lp, NULL, NULL), 0);
	T_CHECK(isinf(lp) && lp < 0); /* a -inf logit: log-probability -inf */
	T_EQ_INT(sampler_logprob_of(l, 5, 5, 0, &lp, NULL, NULL), -1);
	T_EQ_INT(sampler_logprob_of(l, 5, 1, 2, &lp, NULL, NULL), -1); /* k without room */
}

static void test_bad_input(void)
{
	sampler *s = sampler_new(4);
	float l[4] = {1, 2, 3, 4};
	float nan4[4] = {NAN, NAN, -INFINITY, NAN};
	sampler_params p;
	sampler_params_default(&p);
	sampler_rng rng;
	sampler_rng_seed(&rng, 1);
	sampler_result r;
	T_EQ_INT(sampler_sample(s, l, 5, &p, &rng, -1, &r), -1); /* wider than the sampler */
	T_EQ_INT(sampler_sample(s, nan4, 4, &p, &rng, -1, &r), -1);
	int32_t all[4] = {0, 1, 2, 3};
	p.banned_ids = all;
	p.n_banned = 4;
	T_EQ_INT(sampler_sample(s, l, 4, &p, &rng, -1, &r), -1);
	T_EQ_INT(r.id, -1);
	p.n_banned = 3; /* 0, 1, 2 banned: only 3 is left */
	T_EQ_INT(sampler_sample(s, l, 4, &p, &rng, -1, &r), 0);
	T_EQ_INT(r.id, 3);
	T_CHECK(sampler_new(0) == NULL);
	sampler_free(s);
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? 1 : x > y ? -1
				 : 0;
}

/* top-p over many candidates (the bucketed path): every draw lies in the
 * nucleus computed by a full sort, and the draws cover it. */
static void test_top_p_wide(void)
{
	enum { N = 4500 }; /* above the 4096 where the bucketed path starts */
	sampler *s = sampler_new(N);
	float *l = malloc(N * sizeof(float));
	double *w = malloc(N * sizeof(double));
	char *hit = calloc(N, 1);
	sampler_rng g;
	sampler_rng_seed(&g, 77);
	double total = 0, mx = 0;
	for (int i = 0; i < N; i++) {
		l[i] = (float)(sampler_rng_uniform(&g) * 8.0);
		if (l[i] > mx) mx = l[i];
	}
	for (int i = 0; i < N; i++) total += (w[i] = exp(l[i] - mx));
	double *sorted = malloc(N * sizeof(double));
	memcpy(sorted, w, N * sizeof(double));
	qsort(sorted, N, sizeof(double), cmp_desc);
	double acc = 0, cut = 0;
	int size = 0;
	while (acc < 0.5 * total) {
		acc += sorted[size];
		cut = sorted[size++];
	}
	sampler_params p;
	sampler_params_default(&p);
	p.top_p = 0.5f;
	int outside = 0, covered = 0;
	for (int k = 0; k < 12000; k++) {
		sampler_result r;
		T_EQ_INT(sampler_sample(s, l, N, &p, &g, -1, &r), 0);
		if (w[r.id] < cut * (1 - 1e-6)) outside++;
		hit[r.id] = 1;
	}
	for (int i = 0; i < N; i++)
		if (hit[i] && w[i] >= cut * (1 - 1e-6)) covered++;
	T_EQ_INT(outside, 0);
	T_CHECK(covered >= size * 99 / 100);
	T_CHECK(size > 100 && size < N / 2);
	free(sorted);
	free(hit);
	free(w);
	free(l);
	sampler_free(s);
}

/* A Gemma-wide row: top-p with no top-k over a flat-ish distribution (the
 * expensive case) stays a few milliseconds under sanitizers. */
static void test_wide_row(void)
{
	enum { N = 262144 };
	sampler *s = sampler_new(N);
	float *l = malloc(N * sizeof(float));
	sampler_rng g;
	sampler_rng_seed(&g, 2024);
	for (int i = 0; i < N; i++) l[i] = (float)(sampler_rng_uniform(&g) * 4.0);
	sampler_params p;
	sampler_params_default(&p);
	p.top_p = 0.95f;
	sampler_result r;
	uint64_t t0 = time_mono_ns();
	int rounds = 20;
	for (int k = 0; k < rounds; k++) T_EQ_INT(sampler_sample(s, l, N, &p, &g, 5, &r), 0);
	double ms = (double)(time_mono_ns() - t0) / 1e6 / rounds;
	printf("262144 logits, top_p 0.95 + 5 logprobs: %.2f ms per token\n", ms);
	p.top_p = 1;
	p.top_k = 64;
	t0 = time_mono_ns();
	for (int k = 0; k < rounds; k++) T_EQ_INT(sampler_sample(s, l, N, &p, &g, -1, &r), 0);
	printf("262144 logits, top_k 64: %.2f ms per token\n", (double)(time_mono_ns() - t0) / 1e6 / rounds);
	/* The sampled id is among the 64 best. */
	int better = 0;
	for (int i = 0; i < N; i++)
		if (l[i] > l[r.id]) better++;
	T_CHECK(better < 64);
	/* greedy: the argmax, in one pass that vectorizes */
	p.temperature = 0;
	t0 = time_mono_ns();
	for (int k = 0; k < rounds; k++) T_EQ_INT(sampler_sample(s, l, N, &p, NULL, -1, &r), 0);
	printf("262144 logits, greedy: %.3f ms per token\n", (double)(time_mono_ns() - t0) / 1e6 / rounds);
	int above = 0;
	for (int i = 0; i < N; i++) above += l[i] > l[r.id];
	T_EQ_INT(above, 0);
	free(l);
	sampler_free(s);
}

/* Greedy with nothing banned, changed or reported takes a fast argmax: the same
 * id as the general path (reached here by banning an id outside the row) on
 * rows with NaN, infinities, ties (the first wins), signed zeros, no finite
 * value at all, and lengths around its 8-lane blocks. */
static void test_greedy_fast_path(void)
{
	enum { N = 1000 };
	sampler *s = sampler_new(N);
	float l[N];
	sampler_rng g;
	sampler_rng_seed(&g, 7);
	sampler_params fast, slow;
	sampler_params_default(&fast);
	fast.temperature = 0;
	slow = fast;
	int32_t outside = -1;
	slow.banned_ids = &outside;
	slow.n_banned = 1;
	static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 5.0f, -5.0f};
	int mismatches = 0, none = 0, rows = 0;
	for (int t = 0; t < 400; t++) {
		int n = 1 + (int)(sampler_rng_uniform(&g) * (t < 200 ? 40 : N));
		if (n > N) n = N;
		int coarse = t % 3 == 0; /* few distinct values: many ties */
		for (int i = 0; i < n; i++) {
			double u = sampler_rng_uniform(&g);
			l[i] = coarse ? (float)(int)(u * 4) : (float)(u * 20 - 10);
			if (sampler_rng_uniform(&g) < 0.1)
				l[i] = specials[(int)(sampler_rng_uniform(&g) * 7) % 7];
		}
		if (t % 50 == 0) /* nothing finite */
			for (int i = 0; i < n; i++) l[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY
											 : -INFINITY;
		sampler_result a, b;
		int ra = sampler_sample(s, l, (size_t)n, &fast, NULL, -1, &a);
		int rb = sampler_sample(s, l, (size_t)n, &slow, NULL, -1, &b);
		if (ra != rb || a.id != b.id) {
			if (mismatches++ < 5) fprintf(stderr, "  row %d (n %d): fast %d/%d, general %d/%d\n", t, n, ra, a.id, rb, b.id);
		}
		none += ra < 0;
		rows++;
	}
	T_EQ_INT(mismatches, 0);
	T_CHECK(none >= 8); /* the rows without a finite value were refused by both */
	/* the first of the tied maxima, +inf and NaN passed over */
	float tie[11] = {NAN, INFINITY, 1.0f, 3.0f, -0.0f, 3.0f, 2.0f, 3.0f, INFINITY, 3.0f, NAN};
	sampler_result r;
	T_EQ_INT(sampler_sample(s, tie, 11, &fast, NULL, -1, &r), 0);
	T_EQ_INT(r.id, 3);
	fprintf(stderr, "  %d rows agree\n", rows);
	sampler_free(s);
}

int main(void)
{
	T_RUN(test_greedy);
	T_RUN(test_greedy_fast_path);
	T_RUN(test_seed_determinism);
	T_RUN(test_top_k_one_is_greedy);
	T_RUN(test_temperature_one);
	T_RUN(test_cuts);
	T_RUN(test_logprobs);
	T_RUN(test_penalties);
	T_RUN(test_logit_bias);
	T_RUN(test_logprob_of);
	T_RUN(test_bad_input);
	T_RUN(test_top_p_wide);
	T_RUN(test_wide_row);
	return T_END();
}
