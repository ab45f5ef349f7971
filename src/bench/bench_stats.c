/*
 * bench_stats.c — sample sets with reservoir past a cap, percentiles, and
 * labelled counters, as declared in bench_stats.h.
 */
#include "bench/bench_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_rng.h"

void samples_init(samples *s, size_t max_kept, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->max_kept = max_kept ? max_kept : 1;
	s->rng = seed ^ 0x5eed5a3b1e5ULL;
	s->min = INFINITY;
	s->max = -INFINITY;
}

void samples_free(samples *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

void samples_add(samples *s, double x)
{
	if (!isfinite(x))
		return;
	s->seen++;
	s->sum += x;
	if (x > s->max)
		s->max = x;
	if (x < s->min)
		s->min = x;
	if (s->n < s->max_kept) {
		if (s->n == s->cap) {
			if (s->oom)
				return;
			size_t ncap = s->cap ? s->cap * 2 : 256;
			if (ncap > s->max_kept)
				ncap = s->max_kept;
			double *nv = realloc(s->v, ncap * sizeof(*nv));
			if (!nv) {
				s->oom = 1;
				return;
			}
			s->v = nv;
			s->cap = ncap;
		}
		s->v[s->n++] = x;
		return;
	}
	/* Reservoir: keep the new value with probability max_kept/seen. */
	uint64_t j = rng_below(&s->rng, s->seen);
	if (j < s->max_kept)
		s->v[j] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double stats_percentile_sorted(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	if (p <= 0)
		return v[0];
	if (p >= 100)
		return v[n - 1];
	double rank = p / 100.0 * (double)(n - 1);
	size_t lo = (size_t)floor(rank);
	size_t hi = lo + 1 < n ? lo + 1 : lo;
	double frac = rank - (double)lo;
	return v[lo] + frac * (v[hi] - v[lo]);
}

void samples_summary(samples *s, stats_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->n = s->seen;
	if (s->seen == 0)
		return;
	out->mean = s->sum / (double)s->seen;
	out->min = s->min;
	out->max = s->max;
	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	out->p50 = stats_percentile_sorted(s->v, s->n, 50);
	out->p90 = stats_percentile_sorted(s->v, s->n, 90);
	out->p99 = stats_percentile_sorted(s->v, s->n, 99);
}

/* ---------------------------------------------------------------- counters */

#define COUNTER_LABEL_MAX_BYTES 255

void counters_init(counters *c, size_t max_labels)
{
	memset(c, 0, sizeof(*c));
	c->max_labels = max_labels;
}

void counters_free(counters *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->items[i].label);
	free(c->items);
	memset(c, 0, sizeof(*c));
}

void counters_add(counters *c, const char *label, size_t len)
{
	if (len > COUNTER_LABEL_MAX_BYTES)
		len = COUNTER_LABEL_MAX_BYTES;
	for (size_t i = 0; i < c->n; i++) {
		if (strlen(c->items[i].label) == len && memcmp(c->items[i].label, label, len) == 0) {
			c->items[i].count++;
			return;
		}
	}
	if (c->n >= c->max_labels) {
		c->other++;
		return;
	}
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		counter_item *ni = realloc(c->items, ncap * sizeof(*ni));
		if (!ni) {
			c->other++;
			return;
		}
		c->items = ni;
		c->cap = ncap;
	}
	char *l = malloc(len + 1);
	if (!l) {
		c->other++;
		return;
	}
	memcpy(l, label, len);
	l[len] = 0;
	c->items[c->n].label = l;
	c->items[c->n].count = 1;
	c->n++;
}

static int cmp_counter(const void *a, const void *b)
{
	const counter_item *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->label, y->label);
}

void counters_sort(counters *c)
{
	if (c->n > 1)
		qsort(c->items, c->n, sizeof(*c->items), cmp_counter);
}
