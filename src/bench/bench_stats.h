/*
 * bench_stats.h — samples and their summary (percentiles, mean, max) for the
 * load generator, and a small counter table for labelled tallies (serving
 * region, endpoint, status code).
 *
 * A sample set keeps every value up to a hard cap; past the cap it keeps a
 * uniform reservoir of that many values (Vitter's algorithm R with its own
 * seeded generator), so percentiles stay unbiased estimates while count, mean
 * and max stay exact. Percentiles interpolate linearly between the two closest
 * ranks (numpy's default, which vLLM's benchmark uses):
 *   rank = p/100 * (n-1);  value = v[floor(rank)] + frac(rank) * (v[ceil] - v[floor]).
 *
 * Not here: anything about HTTP or time sources; values are plain doubles.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Owner: whoever embeds it; samples_free releases the storage. */
typedef struct samples {
	double *v;       /* kept values, n of them (unsorted until summarised) */
	size_t n, cap;   /* kept, allocated */
	size_t max_kept; /* hard cap on n; past it the set is a reservoir */
	uint64_t seen;   /* values ever added */
	double sum;      /* of every value ever added */
	double max;      /* of every value ever added */
	double min;
	uint64_t rng; /* reservoir generator state */
	int oom;      /* an allocation failed: later values only counted */
} samples;

typedef struct stats_summary {
	uint64_t n; /* values added */
	double mean, min, p50, p90, p99, max;
} stats_summary;

void samples_init(samples *s, size_t max_kept, uint64_t seed);
void samples_free(samples *s);
void samples_add(samples *s, double x);
/* Sorts the kept values in place and fills *out; an empty set gives n 0 and
 * zeros elsewhere. */
void samples_summary(samples *s, stats_summary *out);

/* The p-th percentile (0..100) of n sorted values, linear interpolation between
 * closest ranks. n 0 gives 0. */
double stats_percentile_sorted(const double *v, size_t n, double p);

/* Labelled counters: a small table of distinct strings and their counts, in
 * first-seen order. At most max_labels distinct labels; later new ones are
 * counted under "(other)". Owner: the embedder; counters_free releases it. */
typedef struct counter_item {
	char *label;
	uint64_t count;
} counter_item;
typedef struct counters {
	counter_item *items;
	size_t n, cap, max_labels;
	uint64_t other; /* counts of labels past the cap (or not storable) */
} counters;

void counters_init(counters *c, size_t max_labels);
void counters_free(counters *c);
/* Adds 1 to label (len bytes, copied; at most 255 bytes are kept). */
void counters_add(counters *c, const char *label, size_t len);
/* Sorts by count, descending (ties by label), for reporting. */
void counters_sort(counters *c);

#endif
