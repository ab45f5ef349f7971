/*
 * sampler.h — picks the next token from a row of logits: greedy, temperature,
 * min-p, top-k, top-p (applied in that order, as vLLM's V1 sampler does), with a
 * per-sequence seeded RNG, and the log-probabilities vLLM reports: log-softmax of
 * the raw logits (before temperature and cuts) for the sampled token and for the
 * top K alternatives.
 *
 * A sampler holds scratch for one vocabulary size, allocated once by sampler_new:
 * sampling allocates nothing and costs O(vocab) (selection, never a full sort).
 * One sampler per thread; the RNG state lives with each sequence.
 *
 * A logit bias (OpenAI's logit_bias) is added to its ids' logits first, then
 * the penalties on tokens seen before, vLLM's (and its order): repetition
 * (prompt and output ids: a positive logit divided by it, a negative one
 * multiplied), then frequency (times the id's count in the output) and presence
 * (once if the id is in the output) subtracted. They change what is selected,
 * not the reported log-probabilities, which stay those of the raw row (vLLM's
 * default "raw_logprobs"). Cost O(vocab + ids seen + ids biased).
 * Not here: stop conditions.
 */
#ifndef INFER_SAMPLER_H
#define INFER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_TOP_LOGPROBS 20 /* vLLM's default cap on top_logprobs */

/* Per-sequence random state (xoshiro256**). Same seed, same draws. */
typedef struct sampler_rng {
	uint64_t s[4];
} sampler_rng;
void sampler_rng_seed(sampler_rng *r, uint64_t seed);
/* Seeds from the kernel's random source (getrandom), for requests without a seed. */
void sampler_rng_seed_random(sampler_rng *r);
double sampler_rng_uniform(sampler_rng *r); /* [0, 1) */

typedef struct sampler_params {
	float temperature;         /* 0 (or below 1e-5) = greedy */
	int top_k;                 /* <= 0 = off */
	float top_p;               /* (0, 1]; 1 = off */
	float min_p;               /* [0, 1]; 0 = off */
	const int32_t *banned_ids; /* ids never sampled (e.g. stop ids before min_tokens); may be NULL */
	size_t n_banned;
	float repetition_penalty;  /* > 0; 1 = off */
	float frequency_penalty;   /* [-2, 2]; 0 = off */
	float presence_penalty;    /* [-2, 2]; 0 = off */
	const int32_t *prompt_ids; /* the ids the penalties look at; may be NULL when off */
	size_t n_prompt;
	const int32_t *output_ids;
	size_t n_output;
	const int32_t *bias_ids; /* logit bias: bias[i] added to bias_ids[i]'s logit; may be NULL */
	const float *bias;
	size_t n_bias;
} sampler_params;
/* Neutral parameters: temperature 1, every cut and penalty off. */
void sampler_params_default(sampler_params *p);

typedef struct sampler_logprob {
	int32_t id;
	float logprob;
} sampler_logprob;

typedef struct sampler_result {
	int32_t id;    /* the sampled token */
	float logprob; /* its raw log-probability (when logprobs were asked for) */
	int n_top;     /* entries in top, highest first */
	sampler_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
} sampler_result;

typedef struct sampler sampler;

/* Scratch for rows of up to vocab_size logits. NULL on allocation failure. */
sampler *sampler_new(size_t vocab_size);
void sampler_free(sampler *s);

/* Samples from logits[0..n) (n <= the vocab size given to sampler_new; logits are
 * not modified). n_logprobs < 0: no log-probabilities; 0: the sampled token's
 * only; K > 0: also the K (capped at SAMPLER_MAX_TOP_LOGPROBS) most likely ids.
 * rng may be NULL for greedy. Returns 0, or -1 on bad arguments (n too large, no
 * candidate left: every id banned or non-finite). */
int sampler_sample(sampler *s, const float *logits, size_t n, const sampler_params *p,
		   sampler_rng *rng, int n_logprobs, sampler_result *out);

/* The raw log-probability of id in logits[0, n) (the log-softmax, as
 * sampling reports it) in *logprob, its rank (1 + the ids more likely) in
 * *rank (may be NULL), and the k (capped at SAMPLER_MAX_TOP_LOGPROBS) most
 * likely ids in top: prompt log-probabilities. Returns how many are in top,
 * or -1 on bad arguments. Allocates nothing. */
int sampler_logprob_of(const float *logits, size_t n, int32_t id, int k, float *logprob, int *rank,
		       sampler_logprob *top);

#endif
