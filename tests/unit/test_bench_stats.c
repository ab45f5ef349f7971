/*
 * test_bench_stats.c — the load generator's statistics: percentiles against
 * numpy's linear interpolation, reservoir behaviour past the cap, labelled
 * counters, and the folding of records into results (counts, window, ITL).
 * The bench sources are a program, not a library, so they are compiled in.
 */
#include "t.h"

#include "bench/bench_stats.c"
#include "bench/bench_report.c"

static void test_percentile_small(void)
{
	double one[] = {7};
	T_NEAR(stats_percentile_sorted(one, 1, 50), 7, 1e-12);
	T_NEAR(stats_percentile_sorted(one, 1, 99), 7, 1e-12);
	T_NEAR(stats_percentile_sorted(one, 0, 50), 0, 1e-12);
	/* numpy.percentile([1,2,3,4], [50,90,99]) = 2.5, 3.7, 3.97 */
	double v[] = {1, 2, 3, 4};
	T_NEAR(stats_percentile_sorted(v, 4, 50), 2.5, 1e-12);
	T_NEAR(stats_percentile_sorted(v, 4, 90), 3.7, 1e-12);
	T_NEAR(stats_percentile_sorted(v, 4, 99), 3.97, 1e-12);
	T_NEAR(stats_percentile_sorted(v, 4, 0), 1, 1e-12);
	T_NEAR(stats_percentile_sorted(v, 4, 100), 4, 1e-12);
}

static void test_summary_1_to_100(void)
{
	samples s;
	samples_init(&s, 1000, 1);
	for (int i = 100; i >= 1; i--) /* unsorted input */
		samples_add(&s, i);
	stats_summary m;
	samples_summary(&s, &m);
	T_EQ_INT(m.n, 100);
	T_NEAR(m.mean, 50.5, 1e-9);
	T_NEAR(m.min, 1, 0);
	T_NEAR(m.max, 100, 0);
	/* numpy: p50 50.5, p90 90.1, p99 99.01 */
	T_NEAR(m.p50, 50.5, 1e-9);
	T_NEAR(m.p90, 90.1, 1e-9);
	T_NEAR(m.p99, 99.01, 1e-9);
	samples_free(&s);
}

static void test_summary_empty_and_nan(void)
{
	samples s;
	samples_init(&s, 10, 1);
	samples_add(&s, NAN);
	samples_add(&s, INFINITY);
	stats_summary m;
	samples_summary(&s, &m);
	T_EQ_INT(m.n, 0);
	T_NEAR(m.p50, 0, 0);
	T_NEAR(m.max, 0, 0);
	samples_free(&s);
}

static void test_reservoir(void)
{
	/* 100000 uniform values through a 1000-value reservoir: count, mean and max
	 * exact; percentiles close. */
	samples s;
	samples_init(&s, 1000, 42);
	for (int i = 0; i < 100000; i++)
		samples_add(&s, (double)((i * 7919) % 100000));
	T_EQ_INT(s.n, 1000);
	stats_summary m;
	samples_summary(&s, &m);
	T_EQ_INT(m.n, 100000);
	T_NEAR(m.mean, 49999.5, 1e-6);
	T_NEAR(m.max, 99999, 0);
	T_NEAR(m.p50, 50000, 5000);
	T_NEAR(m.p90, 90000, 3000);
	samples_free(&s);
}

static void test_counters(void)
{
	counters c;
	counters_init(&c, 2);
	counters_add(&c, "eu", 2);
	counters_add(&c, "us", 2);
	counters_add(&c, "us", 2);
	counters_add(&c, "ap", 2); /* past the cap */
	counters_sort(&c);
	T_EQ_INT(c.n, 2);
	T_EQ_STR(c.items[0].label, "us");
	T_EQ_INT(c.items[0].count, 2);
	T_EQ_STR(c.items[1].label, "eu");
	T_EQ_INT(c.other, 1);
	counters_free(&c);
}

static void rec_init(bench_record *r, uint64_t sched_ms, uint64_t done_ms, int err)
{
	memset(r, 0, sizeof(*r));
	r->scheduled_ns = sched_ms * 1000000ULL;
	r->sent_ns = r->scheduled_ns + 1000000ULL; /* 1 ms late */
	r->done_ns = done_ms * 1000000ULL;
	r->e2e_ms = (double)(done_ms - sched_ms);
	r->ttft_ms = 10;
	r->tpot_ms = 2;
	r->output_tokens = 5;
	r->prompt_tokens = 3;
	r->usage_seen = 1;
	r->status = err == ERR_HTTP_5XX ? 503 : 200;
	r->err = err;
	strcpy(r->region, "-");
	strcpy(r->endpoint, "ep1");
}

static void test_results_fold(void)
{
	bench_results r;
	bench_results_init(&r, 1);
	bench_record rec;
	float gaps[] = {2, 2, 2, 2};
	rec_init(&rec, 1000, 1100, ERR_NONE);
	bench_results_add(&r, &rec, gaps, 4);
	rec_init(&rec, 1500, 2000, ERR_NONE);
	bench_results_add(&r, &rec, gaps, 4);
	rec_init(&rec, 1200, 1300, ERR_HTTP_5XX);
	bench_results_add(&r, &rec, gaps, 4); /* errors add no gaps */
	rec_init(&rec, 0, 5000, ERR_NONE);
	rec.warmup = 1;
	bench_results_add(&r, &rec, gaps, 4); /* warm-up: outside everything */

	T_EQ_INT(r.finished, 3);
	T_EQ_INT(r.ok, 2);
	T_EQ_INT(r.errors_by_kind[ERR_HTTP_5XX], 1);
	T_EQ_INT(r.warmup_finished, 1);
	T_EQ_INT(r.output_tokens, 10);
	T_EQ_INT(r.prompt_tokens, 6);
	T_EQ_INT(r.itl.seen, 8);
	T_EQ_INT(r.ttft.seen, 2);
	T_NEAR(window_s(&r), 1.0, 1e-9); /* 1000 ms .. 2000 ms */
	T_EQ_INT(r.statuses.n, 2);
	stats_summary m;
	samples_summary(&r.lag, &m);
	T_NEAR(m.p50, 1.0, 1e-9);
	bench_results_free(&r);
}

int main(void)
{
	T_RUN(test_percentile_small);
	T_RUN(test_summary_1_to_100);
	T_RUN(test_summary_empty_and_nan);
	T_RUN(test_reservoir);
	T_RUN(test_counters);
	T_RUN(test_results_fold);
	return T_END();
}
