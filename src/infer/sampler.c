/*
 * sampler.c — next-token selection over one row of logits (see sampler.h).
 *
 * Order of operations, as vLLM's V1 sampler: raw log-probabilities first (for
 * reporting), then greedy argmax, or temperature -> min-p -> top-k -> top-p ->
 * a draw from what is left. Cuts work on an array of (logit, id) candidates:
 * top-k is a one-pass heap (or a quickselect for a large k), top-p a histogram of
 * probability mass by weight then a quickselect on mass inside one bucket, so a
 * row costs O(vocab) whatever the parameters; only the few survivors near a boundary are
 * ever sorted. Non-finite logits (NaN, +-inf) are never sampled.
 *
 * Penalties (sampler.h) are applied to a copy of the row, touching only the
 * ids seen; selection then reads the copy and log-probabilities the raw row.
 *
 * Not here: logit bias, stop rules.
 */
#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/util.h"

typedef struct cand {
	float v; /* logit, then weight once top-p needs one */
	int32_t id;
} cand;

struct sampler {
	size_t vocab;
	cand *c;         /* [vocab] candidates */
	uint8_t *banned; /* [vocab] 1 = never sample; cleared after each call */
	double *hist;    /* [HIST_BUCKETS] probability mass by weight bucket */
	float *work;     /* [vocab] the row with the bias and penalties applied */
	uint32_t *count; /* [vocab] occurrences in the output; cleared after each call */
};

/* Top-p over many candidates goes by buckets of weight: the float's exponent
 * and top 4 mantissa bits (weights are in (0, 1], so the order of the bits is
 * the order of the values). */
#define HIST_SHIFT 19
#define HIST_BUCKETS ((0x3F800000u >> HIST_SHIFT) + 1)

/* ------------------------------------------------------------------ rng */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sampler_rng_seed(sampler_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void sampler_rng_seed_random(sampler_rng *r)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = time_mono_ns() ^ ((uint64_t)(uintptr_t)r << 16);
	sampler_rng_seed(r, seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(sampler_rng *r) /* xoshiro256** */
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double sampler_rng_uniform(sampler_rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------ setup */

void sampler_params_default(sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 1.0f;
	p->top_p = 1.0f;
	p->repetition_penalty = 1.0f;
}

sampler *sampler_new(size_t vocab_size)
{
	if (vocab_size == 0 || vocab_size > INT32_MAX) return NULL;
	sampler *s = calloc(1, sizeof(*s));
	if (!s) return NULL;
	s->vocab = vocab_size;
	s->c = malloc(vocab_size * sizeof(cand));
	s->banned = calloc(vocab_size, 1);
	s->hist = malloc(HIST_BUCKETS * sizeof(double));
	s->work = malloc(vocab_size * sizeof(float));
	s->count = calloc(vocab_size, sizeof(uint32_t));
	if (!s->c || !s->banned || !s->hist || !s->work || !s->count) {
		sampler_free(s);
		return NULL;
	}
	return s;
}

void sampler_free(sampler *s)
{
	if (!s) return;
	free(s->c);
	free(s->banned);
	free(s->hist);
	free(s->work);
	free(s->count);
	free(s);
}

/* ------------------------------------------------------------------ selection */

/* a ranks before b: larger value, then smaller id (a strict total order). */
static inline int before(const cand *a, const cand *b)
{
	return a->v > b->v || (a->v == b->v && a->id < b->id);
}

static inline void swap(cand *a, cand *b)
{
	cand t = *a;
	*a = *b;
	*b = t;
}

static void insertion_sort(cand *c, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		cand x = c[i];
		size_t j = i;
		while (j > 0 && before(&x, &c[j - 1])) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = x;
	}
}

static int cmp_cand(const void *a, const void *b)
{
	return before(a, b) ? -1 : before(b, a) ? 1
						: 0;
}

/* Partitions c[lo, hi) around a median-of-three pivot: those ranking before it
 * first, then the pivot (its final index is returned), then the rest. */
static size_t partition(cand *c, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2, last = hi - 1;
	if (before(&c[mid], &c[lo])) swap(&c[mid], &c[lo]);
	if (before(&c[last], &c[lo])) swap(&c[last], &c[lo]);
	if (before(&c[last], &c[mid])) swap(&c[last], &c[mid]);
	/* c[lo] ranks first, c[mid] is the median: move it to the end as pivot. */
	swap(&c[mid], &c[last]);
	cand pivot = c[last];
	size_t store = lo;
	for (size_t i = lo; i < last; i++)
		if (before(&c[i], &pivot)) swap(&c[i], &c[store++]);
	swap(&c[store], &c[last]);
	return store;
}

/* Puts the k best of c[0, n) first (in no particular order), 0 < k < n. */
static void select_top_k(cand *c, size_t n, size_t k)
{
	size_t lo = 0, hi = n;
	for (int rounds = 0; hi - lo > 16; rounds++) {
		if (rounds > 64) { /* pathological pivots: finish by sorting */
			qsort(c + lo, hi - lo, sizeof(cand), cmp_cand);
			return;
		}
		size_t p = partition(c, lo, hi);
		if (p == k || p + 1 == k) return;
		if (p > k) hi = p;
		else lo = p + 1;
	}
	insertion_sort(c + lo, hi - lo);
}

/* c[0, n) holds weights (v > 0). Puts first the fewest best candidates whose
 * weights add up to at least need and returns how many they are (at least 1). */
static size_t select_top_mass(cand *c, size_t n, double need)
{
	size_t lo = 0, hi = n;
	for (int rounds = 0; hi - lo > 16; rounds++) {
		if (rounds > 64) {
			qsort(c + lo, hi - lo, sizeof(cand), cmp_cand);
			break;
		}
		size_t p = partition(c, lo, hi);
		double mass = 0;
		for (size_t i = lo; i < p; i++) mass += c[i].v;
		if (mass >= need) {
			hi = p;
		} else if (mass + c[p].v >= need) {
			return p + 1;
		} else {
			need -= mass + c[p].v;
			lo = p + 1;
		}
	}
	if (hi - lo <= 16) insertion_sort(c + lo, hi - lo);
	double acc = 0;
	for (size_t i = lo; i < hi; i++) {
		acc += c[i].v;
		if (acc >= need) return i + 1;
	}
	return hi > 0 ? hi : 1;
}

static inline uint32_t weight_bucket(float w)
{
	uint32_t bits;
	memcpy(&bits, &w, sizeof(bits));
	return bits >> HIST_SHIFT;
}

/* select_top_mass for many candidates with weights in (0, 1]: one pass adds up
 * the mass per bucket, the bucket where the running mass from the top reaches
 * need is found, everything above it is kept, and only that bucket is searched.
 * Two linear passes and a small selection instead of a quickselect over all. */
static size_t select_top_mass_wide(sampler *s, cand *c, size_t m, double need)
{
	double *hist = s->hist;
	memset(hist, 0, HIST_BUCKETS * sizeof(double));
	for (size_t i = 0; i < m; i++) hist[weight_bucket(c[i].v)] += c[i].v;
	uint32_t b = HIST_BUCKETS;
	double above = 0;
	while (b-- > 0) {
		if (above + hist[b] >= need) break;
		above += hist[b];
	}
	if (b >= HIST_BUCKETS) return m; /* rounding: the whole mass is short of need */
	size_t k1 = 0;
	for (size_t i = 0; i < m; i++)
		if (weight_bucket(c[i].v) > b) swap(&c[i], &c[k1++]);
	size_t k2 = k1;
	for (size_t i = k1; i < m; i++)
		if (weight_bucket(c[i].v) == b) swap(&c[i], &c[k2++]);
	return k1 + select_top_mass(c + k1, k2 - k1, need - above);
}

/* ------------------------------------------------------------------ sampling */

/* The K best raw logits (ties: smaller id), best first. */
static int top_logprobs(const float *logits, size_t n, int k, float lse, sampler_logprob *top)
{
	int m = 0;
	for (size_t i = 0; i < n; i++) {
		float v = logits[i];
		if (!isfinite(v)) continue;
		if (m == k && !(v > top[m - 1].logprob)) continue;
		int j = m < k ? m++ : k - 1;
		while (j > 0 && v > top[j - 1].logprob) {
			top[j] = top[j - 1];
			j--;
		}
		top[j].id = (int32_t)i;
		top[j].logprob = v;
	}
	for (int j = 0; j < m; j++) top[j].logprob -= lse;
	return m;
}

/* log(sum(exp(x))) over the finite x[0, n), whose maximum is mx. */
static float lse_from(const float *x, size_t n, float mx)
{
	if (!(mx > -INFINITY)) return 0;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(x[i])) sum += expf(x[i] - mx);
	return mx + (float)log(sum);
}

int sampler_logprob_of(const float *logits, size_t n, int32_t id, int k, float *logprob, int *rank,
		       sampler_logprob *top)
{
	if (!logits || !logprob || id < 0 || (size_t)id >= n || (k > 0 && !top)) return -1;
	float mx = -INFINITY, v = logits[id];
	int above = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(logits[i])) continue;
		if (logits[i] > mx) mx = logits[i];
		above += logits[i] > v;
	}
	if (rank) *rank = above + 1;
	float lse = lse_from(logits, n, mx);
	*logprob = isfinite(logits[id]) ? logits[id] - lse : -INFINITY;
	if (k > SAMPLER_MAX_TOP_LOGPROBS) k = SAMPLER_MAX_TOP_LOGPROBS;
	return k > 0 ? top_logprobs(logits, n, k, lse, top) : 0;
}

/* Keeps the k best of logits[0, n) (not banned, finite) in c[0, k) with a
 * min-heap: one pass that mostly just compares, for the small k of real
 * requests. Returns how many there are (fewer than k when few are eligible). */
static size_t heap_top_k(const sampler *s, const float *logits, size_t n, size_t k, cand *c)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		float v = logits[i];
		if (s->banned[i] || !isfinite(v)) continue;
		cand x = {v, (int32_t)i};
		size_t j;
		if (m < k) {
			/* sift up: the root is the worst kept */
			j = m++;
			while (j > 0 && before(&c[(j - 1) / 2], &x)) {
				c[j] = c[(j - 1) / 2];
				j = (j - 1) / 2;
			}
			c[j] = x;
			continue;
		}
		if (!before(&x, &c[0])) continue;
		j = 0;
		for (;;) {
			size_t l = 2 * j + 1, w = j;
			if (l >= m) break;
			w = (l + 1 < m && before(&c[l], &c[l + 1])) ? l + 1 : l;
			if (!before(&x, &c[w])) break;
			c[j] = c[w];
			j = w;
		}
		c[j] = x;
	}
	return m;
}

static int has_changes(const sampler_params *p)
{
	return (p->repetition_penalty != 1.0f && p->repetition_penalty > 0) || p->frequency_penalty != 0 ||
	       p->presence_penalty != 0 || (p->bias_ids && p->bias && p->n_bias);
}

/* The row with the logit bias and vLLM's penalties applied, in s->work: a
 * copy of logits[0, n) with only the biased ids and the ids of the prompt and
 * the output changed. Ids outside [0, n) are ignored. */
static const float *apply_changes(sampler *s, const float *logits, size_t n, const sampler_params *p)
{
	float *w = s->work;
	uint32_t *cnt = s->count;
	memcpy(w, logits, n * sizeof(float));
	if (p->bias_ids && p->bias)
		for (size_t i = 0; i < p->n_bias; i++)
			if (p->bias_ids[i] >= 0 && (size_t)p->bias_ids[i] < n) w[p->bias_ids[i]] += p->bias[i];
	const int32_t *out = p->output_ids;
	size_t n_out = out ? p->n_output : 0;
	for (size_t i = 0; i < n_out; i++)
		if (out[i] >= 0 && (size_t)out[i] < n) cnt[out[i]]++;
	float rp = p->repetition_penalty;
	if (rp > 0 && rp != 1.0f) {
		/* Each id once, however often it occurs: bit 1 of its banned byte
		 * (free scratch here: the bans are set after) marks it done. */
		for (int pass = 0; pass < 2; pass++) {
			const int32_t *ids = pass ? out : p->prompt_ids;
			size_t m = pass ? n_out : (p->prompt_ids ? p->n_prompt : 0);
			for (size_t i = 0; i < m; i++) {
				int32_t id = ids[i];
				if (id < 0 || (size_t)id >= n || (s->banned[id] & 2)) continue;
				s->banned[id] |= 2;
				w[id] = w[id] > 0 ? w[id] / rp : w[id] * rp;
			}
		}
		for (int pass = 0; pass < 2; pass++) {
			const int32_t *ids = pass ? out : p->prompt_ids;
			size_t m = pass ? n_out : (p->prompt_ids ? p->n_prompt : 0);
			for (size_t i = 0; i < m; i++)
				if (ids[i] >= 0 && (size_t)ids[i] < n) s->banned[ids[i]] &= (uint8_t)~2;
		}
	}
	for (size_t i = 0; i < n_out; i++) {
		int32_t id = out[i];
		if (id < 0 || (size_t)id >= n || !cnt[id]) continue;
		w[id] -= p->frequency_penalty * (float)cnt[id] + p->presence_penalty;
		cnt[id] = 0;
	}
	return w;
}

/* Weights below e^-PRUNE of the best one are dropped before top-p: all of them
 * together weigh less than vocab * e^-PRUNE (1e-8 of the mass at 262144), far
 * below the rounding of any reference implementation in fp32. */
#define PRUNE 30.0f

/* The first id of the largest finite logit, or -1 when none is finite: what
 * the general path below picks when nothing is banned or changed. Two passes:
 * the maximum over 8 lanes without a data-dependent branch, then a scan for
 * its first occurrence; a few times faster than one branchy pass, which
 * matters at 262,144 logits a row and one row per running sequence a step. */
#define ARGMAX_LANES 8
static int32_t argmax_finite(const float *x, size_t n)
{
	float lane[ARGMAX_LANES];
	for (int j = 0; j < ARGMAX_LANES; j++) lane[j] = -INFINITY;
	size_t i = 0;
	for (; i + ARGMAX_LANES <= n; i += ARGMAX_LANES)
		for (int j = 0; j < ARGMAX_LANES; j++) {
			/* NaN and +inf count as -inf; then a plain maximum, which
			 * the compiler turns into vector max operations */
			float v = x[i + j], w = v < INFINITY ? v : -INFINITY;
			lane[j] = w > lane[j] ? w : lane[j];
		}
	float mx = -INFINITY;
	for (int j = 0; j < ARGMAX_LANES; j++)
		if (lane[j] > mx) mx = lane[j];
	for (; i < n; i++)
		if (x[i] > mx && x[i] < INFINITY) mx = x[i];
	if (!(mx > -INFINITY)) return -1;
	for (i = 0; i < n; i++)
		if (x[i] == mx) return (int32_t)i;
	return -1;
}

int sampler_sample(sampler *s, const float *raw, size_t n, const sampler_params *p,
		   sampler_rng *rng, int n_logprobs, sampler_result *out)
{
	memset(out, 0, sizeof(*out));
	out->id = -1;
	if (!s || !raw || !p || n == 0 || n > s->vocab) return -1;
	/* Greedy with no bias, penalty, ban or log-probability: the argmax alone. */
	if ((!(p->temperature >= 1e-5f) || !rng) && n_logprobs < 0 && p->n_banned == 0 && !has_changes(p)) {
		out->id = argmax_finite(raw, n);
		return out->id < 0 ? -1 : 0;
	}
	/* logits: what selection reads; raw: what log-probabilities report. */
	const float *logits = has_changes(p) ? apply_changes(s, raw, n, p) : raw;
	for (size_t i = 0; i < p->n_banned; i++)
		if (p->banned_ids[i] >= 0 && (size_t)p->banned_ids[i] < n) s->banned[p->banned_ids[i]] = 1;

	/* One pass: the best allowed id (and, without bias or penalties, the raw maximum). */
	float raw_max = -INFINITY, mx = -INFINITY;
	int32_t pick = -1;
	for (size_t i = 0; i < n; i++) {
		float v = logits[i];
		if (!isfinite(v)) continue;
		if (v > raw_max) raw_max = v;
		if (!s->banned[i] && (pick < 0 || v > mx)) {
			mx = v;
			pick = (int32_t)i;
		}
	}
	float lse = 0;
	if (n_logprobs >= 0) {
		if (logits != raw) {
			raw_max = -INFINITY;
			for (size_t i = 0; i < n; i++)
				if (isfinite(raw[i]) && raw[i] > raw_max) raw_max = raw[i];
		}
		lse = lse_from(raw, n, raw_max);
	}

	int greedy = !(p->temperature >= 1e-5f) || !rng;
	if (!greedy && pick >= 0) {
		cand *c = s->c;
		float t = p->temperature;
		/* min-p: p_i >= min_p * p_max  <=>  (l_i - l_max) / T >= log(min_p). */
		float cut = mx - PRUNE * t;
		if (p->min_p > 0) {
			float mcut = p->min_p >= 1 ? mx : mx + t * logf(p->min_p);
			if (mcut > cut) cut = mcut;
		}
		size_t m = 0;
		if (p->top_k > 0 && p->top_k <= 1024) {
			m = heap_top_k(s, logits, n, (size_t)p->top_k, c);
			size_t k = 0;
			for (size_t i = 0; i < m; i++)
				if (c[i].v >= cut) c[k++] = c[i];
			m = k;
		} else {
			for (size_t i = 0; i < n; i++) {
				float v = logits[i];
				if (s->banned[i] || !isfinite(v) || v < cut) continue;
				c[m].v = v;
				c[m].id = (int32_t)i;
				m++;
			}
			if (p->top_k > 0 && (size_t)p->top_k < m) {
				select_top_k(c, m, (size_t)p->top_k);
				m = (size_t)p->top_k;
			}
		}
		double total = 0;
		float inv_t = 1.0f / t;
		for (size_t i = 0; i < m; i++) {
			c[i].v = expf((c[i].v - mx) * inv_t);
			total += c[i].v;
		}
		if (m && p->top_p > 0 && p->top_p < 1) {
			double need = (double)p->top_p * total;
			size_t k = m > 4096 ? select_top_mass_wide(s, c, m, need) : select_top_mass(c, m, need);
			total = 0;
			for (size_t i = 0; i < k; i++) total += c[i].v;
			m = k;
		}
		/* m >= 1: the best allowed logit always survives every cut. */
		double u = sampler_rng_uniform(rng) * total, acc = 0;
		pick = c[m - 1].id;
		for (size_t i = 0; i < m; i++) {
			acc += c[i].v;
			if (u < acc) {
				pick = c[i].id;
				break;
			}
		}
	}
	for (size_t i = 0; i < p->n_banned; i++)
		if (p->banned_ids[i] >= 0 && (size_t)p->banned_ids[i] < n) s->banned[p->banned_ids[i]] = 0;
	if (pick < 0) return -1;
	out->id = pick;
	if (n_logprobs >= 0) {
		out->logprob = raw[pick] - lse;
		int k = n_logprobs > SAMPLER_MAX_TOP_LOGPROBS ? SAMPLER_MAX_TOP_LOGPROBS : n_logprobs;
		if (k > 0) out->n_top = top_logprobs(raw, n, k, lse, out->top);
	}
	return 0;
}
