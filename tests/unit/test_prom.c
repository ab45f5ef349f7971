/*
 * test_prom.c — the metrics registry's exact text output, the parser on pages
 * as vLLM, SGLang and llama.cpp write them, escapes, errors, write->parse
 * round trips, and a timing of a 100-sample page.
 */
#include "core/prom.h"
#include "t.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double five(void *arg)
{
	return 5 + *(int *)arg;
}

static void test_writer(void)
{
	prom_registry *reg = prom_registry_new();
	static const char *const lab[] = {"pool", "status", NULL};
	prom_family *req = prom_counter(reg, "infergate_requests_total", "Requests by pool and status.", lab);
	prom_family *inflight = prom_gauge(reg, "infergate_in_flight", "Requests in flight.", NULL);
	static const double b[] = {0.1, 1, 2.5};
	static const char *const mlab[] = {"model", NULL};
	prom_family *lat = prom_histogram(reg, "infergate_ttfb_seconds", "Time to first byte.\nSecond line \\.", mlab, b, 3);
	prom_family *fn = prom_gauge(reg, "infergate_computed", "", NULL);
	T_CHECK(req && inflight && lat && fn);

	prom_series *ok = prom_series_get(req, (const char *const[]){"gemma-pool", "200", NULL});
	prom_inc(ok);
	prom_inc(ok);
	prom_add(ok, 3);
	prom_add(ok, -1); /* counters never go down */
	T_CHECK(prom_series_get(req, (const char *const[]){"gemma-pool", "200"}) == ok);
	prom_series *odd = prom_series_get(req, (const char *const[]){"a\"b\\c\nd", "503"});
	prom_add(odd, 0.5);
	prom_series *g = prom_series_get(inflight, NULL);
	prom_set(g, 7);
	prom_add(g, -2);
	prom_series *h = prom_series_get(lat, (const char *const[]){"m"});
	prom_observe(h, 0.05);
	prom_observe(h, 0.1);
	prom_observe(h, 2);
	prom_observe(h, 100);
	int extra = 1;
	prom_series_set_fn(prom_series_get(fn, NULL), five, &extra);

	buf out;
	buf_init(&out, 0);
	T_EQ_INT(prom_write(reg, &out), 0);
	T_EQ_STR(buf_rptr(&out),
		 "# HELP infergate_requests_total Requests by pool and status.\n"
		 "# TYPE infergate_requests_total counter\n"
		 "infergate_requests_total{pool=\"gemma-pool\",status=\"200\"} 5\n"
		 "infergate_requests_total{pool=\"a\\\"b\\\\c\\nd\",status=\"503\"} 0.5\n"
		 "# HELP infergate_in_flight Requests in flight.\n"
		 "# TYPE infergate_in_flight gauge\n"
		 "infergate_in_flight 5\n"
		 "# HELP infergate_ttfb_seconds Time to first byte.\\nSecond line \\\\.\n"
		 "# TYPE infergate_ttfb_seconds histogram\n"
		 "infergate_ttfb_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
		 "infergate_ttfb_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
		 "infergate_ttfb_seconds_bucket{model=\"m\",le=\"2.5\"} 3\n"
		 "infergate_ttfb_seconds_bucket{model=\"m\",le=\"+Inf\"} 4\n"
		 "infergate_ttfb_seconds_sum{model=\"m\"} 102.15\n"
		 "infergate_ttfb_seconds_count{model=\"m\"} 4\n"
		 "# TYPE infergate_computed gauge\n"
		 "infergate_computed 6\n");

	/* Removal: the series disappears, others stay. */
	T_EQ_INT(prom_series_remove(req, (const char *const[]){"a\"b\\c\nd", "503"}), 0);
	T_EQ_INT(prom_series_remove(req, (const char *const[]){"x", "y"}), -1);
	buf_reset(&out);
	prom_write(reg, &out);
	T_CHECK(strstr(buf_rptr(&out), "503") == NULL);
	T_CHECK(strstr(buf_rptr(&out), "status=\"200\"} 5\n") != NULL);
	T_NEAR(prom_value(ok), 5, 0);
	T_NEAR(prom_value(h), 4, 0);

	/* Bad registrations; the same one again returns the family. */
	T_CHECK(prom_counter(reg, "bad name", "", NULL) == NULL);
	T_CHECK(prom_counter(reg, "x", "", (const char *const[]){"1a", NULL}) == NULL);
	T_CHECK(prom_counter(reg, "x", "", (const char *const[]){"a", "a", NULL}) == NULL);
	T_CHECK(prom_histogram(reg, "hh", "", (const char *const[]){"le", NULL}, b, 3) == NULL);
	T_CHECK(prom_histogram(reg, "hh", "", NULL, (const double[]){2, 1}, 2) == NULL);
	T_CHECK(prom_counter(reg, "infergate_requests_total", "", lab) == req);
	T_CHECK(prom_gauge(reg, "infergate_requests_total", "", lab) == NULL);
	/* NULL family: a sink, never NULL. */
	prom_series *sink = prom_series_get(NULL, NULL);
	T_CHECK(sink != NULL);
	prom_inc(sink);
	prom_observe(sink, 1);
	buf_free(&out);
	prom_registry_free(reg);
}

static void test_special_values(void)
{
	char t[48];
	prom_format_value(t, sizeof(t), INFINITY);
	T_EQ_STR(t, "+Inf");
	prom_format_value(t, sizeof(t), -INFINITY);
	T_EQ_STR(t, "-Inf");
	prom_format_value(t, sizeof(t), NAN);
	T_EQ_STR(t, "NaN");
	prom_format_value(t, sizeof(t), 1e21);
	T_EQ_STR(t, "1e+21");
	prom_format_value(t, sizeof(t), 0.0421);
	T_EQ_STR(t, "0.0421");
}

/* The series found last is checked first: lookups that alternate, repeat or
 * follow a removal still find their own series (a removed one is never
 * handed out again), with the mutex waived or not. */
static void test_series_memo(void)
{
	for (int single = 0; single < 2; single++) {
		prom_registry *reg = prom_registry_new();
		if (single) prom_registry_single_thread(reg);
		prom_family *f = prom_counter(reg, "r_total", "", (const char *const[]){"pool", "code", NULL});
		prom_series *a = prom_series_get(f, (const char *const[]){"p", "200"});
		prom_series *b = prom_series_get(f, (const char *const[]){"p", "500"});
		T_CHECK(a != b);
		for (int i = 0; i < 3; i++) {
			T_CHECK(prom_series_get(f, (const char *const[]){"p", "200"}) == a);
			T_CHECK(prom_series_get(f, (const char *const[]){"p", "200"}) == a);
			T_CHECK(prom_series_get(f, (const char *const[]){"p", "500"}) == b);
			T_CHECK(prom_series_get(f, (const char *const[]){"p", "20"}) != a); /* a prefix is another series */
		}
		prom_inc(prom_series_get(f, (const char *const[]){"p", "200"}));
		prom_inc(prom_series_get(f, (const char *const[]){"p", "200"}));
		T_EQ_INT((int)prom_value(a), 2);
		/* The series found last removed: asked again, a new one at 0. */
		T_CHECK(prom_series_get(f, (const char *const[]){"p", "200"}) == a);
		T_EQ_INT(prom_series_remove(f, (const char *const[]){"p", "200"}), 0);
		prom_series *a2 = prom_series_get(f, (const char *const[]){"p", "200"});
		T_EQ_INT((int)prom_value(a2), 0);
		prom_inc(a2);
		buf out;
		buf_init(&out, 0);
		prom_write(reg, &out);
		T_CHECK(strstr(buf_rptr(&out), "r_total{pool=\"p\",code=\"200\"} 1\n") != NULL);
		buf_free(&out);
		prom_registry_free(reg);
	}
}

static void test_series_cap(void)
{
	prom_registry *reg = prom_registry_new();
	prom_family *f = prom_gauge(reg, "g", "", (const char *const[]){"id", NULL});
	char id[32];
	prom_series *last = NULL;
	for (int i = 0; i < PROM_MAX_SERIES + 5; i++) {
		snprintf(id, sizeof(id), "%d", i);
		last = prom_series_get(f, (const char *const[]){id});
		prom_set(last, i);
	}
	snprintf(id, sizeof(id), "%d", PROM_MAX_SERIES + 100);
	T_CHECK(prom_series_get(f, (const char *const[]){id}) == last); /* the sink */
	buf out;
	buf_init(&out, 0);
	prom_write(reg, &out);
	T_CHECK(strstr(buf_rptr(&out), "g{id=\"9999\"} 9999\n") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "g{id=\"10000\"}") == NULL);
	/* A capped buffer: -1, no overflow. */
	buf small;
	buf_init(&small, 100);
	T_EQ_INT(prom_write(reg, &small), -1);
	buf_free(&small);
	buf_free(&out);
	prom_registry_free(reg);
}

typedef struct {
	prom_series *s, *h;
} thr_arg;

static void *updater(void *p)
{
	thr_arg *a = p;
	for (int i = 0; i < 20000; i++) {
		prom_inc(a->s);
		prom_observe(a->h, i % 3);
	}
	return NULL;
}

static void test_threads(void)
{
	prom_registry *reg = prom_registry_new();
	prom_family *c = prom_counter(reg, "c_total", "", NULL);
	prom_family *h = prom_histogram(reg, "h", "", NULL, (const double[]){1}, 1);
	thr_arg a = {prom_series_get(c, NULL), prom_series_get(h, NULL)};
	pthread_t t;
	T_EQ_INT(pthread_create(&t, NULL, updater, &a), 0);
	buf out;
	buf_init(&out, 0);
	for (int i = 0; i < 50; i++) {
		buf_reset(&out);
		prom_write(reg, &out);
	}
	pthread_join(t, NULL);
	T_NEAR(prom_value(a.s), 20000, 0);
	T_NEAR(prom_value(a.h), 20000, 0);
	buf_free(&out);
	prom_registry_free(reg);
}

/* ---------------------------------------------------------------- parser */

typedef struct collected {
	int n;
	char names[64][96];
	double values[64];
	char labels[64][256]; /* "k=v;k=v" */
	int has_ts[64];
	long long ts[64];
	prom_type types[64];
} collected;

static int collect(void *arg, const prom_sample *s)
{
	collected *c = arg;
	if (c->n >= 64)
		return 0;
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", s->name);
	c->values[c->n] = s->value;
	c->labels[c->n][0] = 0;
	for (size_t i = 0; i < s->n_labels; i++) {
		size_t u = strlen(c->labels[c->n]);
		snprintf(c->labels[c->n] + u, sizeof(c->labels[0]) - u, "%s%s=%s", i ? ";" : "", s->labels[i].name, s->labels[i].value);
	}
	c->has_ts[c->n] = s->has_timestamp;
	c->ts[c->n] = s->timestamp_ms;
	c->types[c->n] = s->type;
	c->n++;
	return 0;
}

static const char vllm_page[] =
	"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
	"# TYPE vllm:num_requests_running gauge\n"
	"vllm:num_requests_running{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 3.0\n"
	"# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
	"# TYPE vllm:num_requests_waiting gauge\n"
	"vllm:num_requests_waiting{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 0.0\n"
	"# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
	"# TYPE vllm:kv_cache_usage_perc gauge\n"
	"vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 0.0421\n"
	"# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
	"# TYPE vllm:prefix_cache_queries_total counter\n"
	"vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 12800.0\n"
	"# TYPE vllm:request_success_total counter\n"
	"vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"google/gemma-3-1b-it\"} 77.0\n"
	"vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"google/gemma-3-1b-it\"} 131.0\n"
	"vllm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"google/gemma-3-1b-it\"} 0.0\n"
	"# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n"
	"# TYPE vllm:time_to_first_token_seconds histogram\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.001\",model_name=\"google/gemma-3-1b-it\"} 0.0\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.04\",model_name=\"google/gemma-3-1b-it\"} 150.0\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"2560.0\",model_name=\"google/gemma-3-1b-it\"} 208.0\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"google/gemma-3-1b-it\"} 208.0\n"
	"vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 208.0\n"
	"vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 5.123\n"
	"# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
	"# TYPE vllm:cache_config_info gauge\n"
	"vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\",num_gpu_blocks=\"4096\"} 1.0\n";

static void test_parse_vllm(void)
{
	collected c = {0};
	char err[128];
	int n = prom_parse(vllm_page, sizeof(vllm_page) - 1, collect, &c, err, sizeof(err));
	T_EQ_INT(n, 14);
	T_EQ_STR(c.names[2], "vllm:kv_cache_usage_perc");
	T_NEAR(c.values[2], 0.0421, 0);
	T_EQ_STR(c.labels[2], "engine=0;model_name=google/gemma-3-1b-it");
	T_EQ_INT(c.types[2], PROM_GAUGE);
	T_EQ_INT(c.types[3], PROM_COUNTER);
	T_EQ_STR(c.labels[5], "engine=0;finished_reason=length;model_name=google/gemma-3-1b-it");
	T_NEAR(c.values[5], 131, 0);
	T_EQ_STR(c.names[10], "vllm:time_to_first_token_seconds_bucket");
	T_EQ_INT(c.types[10], PROM_HISTOGRAM);
	T_CHECK(strstr(c.labels[10], "le=+Inf") != NULL);
	T_EQ_STR(c.labels[13], "block_size=16;cache_dtype=auto;enable_prefix_caching=True;engine=0;num_gpu_blocks=4096");
	T_EQ_INT(c.has_ts[0], 0);
}

static void test_parse_others(void)
{
	static const char sglang[] =
		"# HELP sglang:num_running_reqs The number of running requests.\r\n"
		"# TYPE sglang:num_running_reqs gauge\r\n"
		"sglang:num_running_reqs{model_name=\"qwen\"} 2.0\r\n"
		"sglang:num_queue_reqs{model_name=\"qwen\"}   1   \r\n"
		"\r\n"
		"sglang:token_usage{model_name=\"qwen\",} 0.25\r\n";
	collected c = {0};
	char err[128];
	T_EQ_INT(prom_parse(sglang, sizeof(sglang) - 1, collect, &c, err, sizeof(err)), 3);
	T_EQ_STR(c.names[2], "sglang:token_usage");
	T_NEAR(c.values[2], 0.25, 0);
	T_NEAR(c.values[1], 1, 0);
	T_EQ_INT(c.types[1], PROM_UNTYPED);

	static const char llamacpp[] =
		"# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
		"# TYPE llamacpp:prompt_tokens_total counter\n"
		"llamacpp:prompt_tokens_total 1234\n"
		"llamacpp:requests_processing 1\n"
		"llamacpp:requests_deferred 0\n"
		"llamacpp:kv_cache_usage_ratio 0.5 1700000000000\n"
		"odd{a=\"x\\\\y\\\"z\\nw\"} -Inf\n"
		"nan_value NaN\n"
		"pos +Inf\n"
		"exp 1.5e-3 -5\n"
		"exemplar_total 3 # {trace_id=\"abc\"} 1.0\n"
		"# EOF";
	memset(&c, 0, sizeof(c));
	T_EQ_INT(prom_parse(llamacpp, sizeof(llamacpp) - 1, collect, &c, err, sizeof(err)), 9);
	T_EQ_STR(c.names[0], "llamacpp:prompt_tokens_total");
	T_EQ_INT(c.types[0], PROM_COUNTER);
	T_EQ_STR(c.labels[0], "");
	T_EQ_INT(c.has_ts[3], 1);
	T_EQ_INT(c.ts[3], 1700000000000LL);
	T_EQ_STR(c.labels[4], "a=x\\y\"z\nw");
	T_CHECK(isinf(c.values[4]) && c.values[4] < 0);
	T_CHECK(isnan(c.values[5]));
	T_CHECK(isinf(c.values[6]) && c.values[6] > 0);
	T_NEAR(c.values[7], 0.0015, 0);
	T_EQ_INT(c.ts[7], -5);
	T_NEAR(c.values[8], 3, 0);

	/* Without a trailing newline, and a line that is only blanks. */
	memset(&c, 0, sizeof(c));
	T_EQ_INT(prom_parse("a 1\n   \nb 2", 11, collect, &c, err, sizeof(err)), 2);
	/* Empty text. */
	T_EQ_INT(prom_parse("", 0, collect, &c, err, sizeof(err)), 0);
	T_EQ_INT(prom_parse(NULL, 0, NULL, NULL, err, sizeof(err)), 0);
}

static int stop_after_one(void *arg, const prom_sample *s);

static void test_parse_errors(void)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{"a 1\n<html>\n", "line 2: metric name expected"},
		{"a\n", "line 1: value expected"},
		{"a{b=\"1\"}\n", "line 1: value expected"},
		{"a x\n", "line 1: bad sample value"},
		{"a 1 2 3\n", "line 1: unexpected text after the sample"},
		{"a 1 1.5\n", "line 1: bad timestamp"},
		{"a{b=1} 2\n", "line 1: '\"' expected before label value"},
		{"a{b=\"1} 2\n", "line 1: unterminated label value"},
		{"a{b=\"\\t\"} 2\n", "line 1: bad escape in label value"},
		{"a{b} 2\n", "line 1: '=' expected after label name"},
		{"a{=\"x\"} 2\n", "line 1: label name expected"},
		{"a{b=\"x\" c=\"y\"} 2\n", "line 1: ',' or '}' expected in labels"},
		{"a{b:c=\"x\"} 2\n", "line 1: '=' expected after label name"},
		{"# ok\n\n1abc 2\n", "line 3: metric name expected"},
		{"{a=\"b\"} 1\n", "line 1: metric name expected"},
		{"a{b=\"x\"}2\n", "line 1: space expected before value"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char err[128] = "";
		T_EQ_INT(prom_parse(cases[k].text, strlen(cases[k].text), NULL, NULL, err, sizeof(err)), -1);
		if (strcmp(err, cases[k].err))
			fprintf(stderr, "  case %zu: got \"%s\"\n", k, err);
		T_EQ_STR(err, cases[k].err);
	}
	/* Too many labels; a line too long. */
	buf b;
	buf_init(&b, 0);
	buf_puts(&b, "m{");
	for (int i = 0; i < PROM_PARSE_MAX_LABELS + 1; i++)
		buf_printf(&b, "l%d=\"v\",", i);
	buf_puts(&b, "} 1\n");
	char err[128];
	T_EQ_INT(prom_parse(buf_rptr(&b), buf_rlen(&b), NULL, NULL, err, sizeof(err)), -1);
	T_EQ_STR(err, "line 1: too many labels");
	buf_reset(&b);
	buf_puts(&b, "m{l=\"");
	for (int i = 0; i < PROM_PARSE_MAX_LINE; i++)
		buf_append(&b, "x", 1);
	buf_puts(&b, "\"} 1\n");
	T_EQ_INT(prom_parse(buf_rptr(&b), buf_rlen(&b), NULL, NULL, err, sizeof(err)), -1);
	T_EQ_STR(err, "line 1: line too long");
	buf_free(&b);
	/* The text is not read past len: "a 1" then garbage beyond len. */
	T_EQ_INT(prom_parse("a 1garbage", 3, NULL, NULL, err, sizeof(err)), 1);
	/* The callback can stop the parse. */
	T_EQ_INT(prom_parse("a 1\nb 2\nc 3\n", 12, stop_after_one, NULL, err, sizeof(err)), 1);
}

static int stop_after_one(void *arg, const prom_sample *s)
{
	return 1;
}

static int find_kv(void *arg, const prom_sample *s)
{
	if (!strcmp(s->name, "vllm:kv_cache_usage_perc"))
		*(double *)arg = s->value;
	return 0;
}

static void test_round_trip(void)
{
	prom_registry *reg = prom_registry_new();
	prom_family *f = prom_gauge(reg, "vllm:kv_cache_usage_perc", "KV-cache usage.",
				    (const char *const[]){"engine", "model_name", NULL});
	prom_set(prom_series_get(f, (const char *const[]){"0", "we\"ird\\name\n"}), 0.123456789);
	prom_family *h = prom_histogram(reg, "lat_seconds", "", NULL, (const double[]){0.001, 0.5, 2560}, 3);
	prom_observe(prom_series_get(h, NULL), 0.25);
	buf out;
	buf_init(&out, 0);
	prom_write(reg, &out);
	collected c = {0};
	char err[128];
	T_EQ_INT(prom_parse(buf_rptr(&out), buf_rlen(&out), collect, &c, err, sizeof(err)), 7);
	T_EQ_STR(c.labels[0], "engine=0;model_name=we\"ird\\name\n");
	T_CHECK(c.values[0] == 0.123456789);
	T_EQ_INT(c.types[0], PROM_GAUGE);
	T_EQ_STR(c.labels[1], "le=0.001");
	T_EQ_STR(c.labels[3], "le=2560");
	T_NEAR(c.values[2], 1, 0);
	T_EQ_INT(c.types[6], PROM_HISTOGRAM);
	double kv = -1;
	prom_parse(buf_rptr(&out), buf_rlen(&out), find_kv, &kv, err, sizeof(err));
	T_CHECK(kv == 0.123456789);
	buf_free(&out);
	prom_registry_free(reg);
}

static int count_only(void *arg, const prom_sample *s)
{
	(*(int *)arg)++;
	return 0;
}

static void test_parse_speed(void)
{
	buf page;
	buf_init(&page, 0);
	for (int i = 0; i < 10; i++)
		buf_append(&page, vllm_page, sizeof(vllm_page) - 1); /* 140 samples */
	int seen = 0;
	char err[128];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rounds = 200;
	int bad = 0;
	for (int i = 0; i < rounds; i++)
		bad += prom_parse(buf_rptr(&page), buf_rlen(&page), count_only, &seen, err, sizeof(err)) != 140;
	T_EQ_INT(bad, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / rounds;
	fprintf(stderr, "  140-sample vLLM page (%zu bytes): %.1f us per parse\n", buf_rlen(&page), us);
	T_EQ_INT(seen, 140 * rounds);
	buf_free(&page);
}

/* A parse started from a callback of another (its state is busy) gets its own
 * state: the outer parse's names and labels are intact after it, and a parse
 * after both reuses the kept state. */
typedef struct nested {
	int inner, checked;
} nested;

static int nested_inner(void *arg, const prom_sample *s)
{
	((nested *)arg)->inner++;
	return 0;
}

static int nested_outer(void *arg, const prom_sample *s)
{
	nested *n = arg;
	char err[64];
	const char *text = "x{l=\"inner\"} 1\ny 2\n";
	T_EQ_INT(prom_parse(text, strlen(text), nested_inner, n, err, sizeof(err)), 2);
	T_EQ_STR(s->name, "outer_total");
	T_EQ_STR(prom_sample_label(s, "job"), "a");
	n->checked++;
	return 0;
}

static void test_parse_nested(void)
{
	nested n = {0};
	char err[64];
	const char *text = "outer_total{job=\"a\"} 1\nouter_total{job=\"a\"} 2\n";
	T_EQ_INT(prom_parse(text, strlen(text), nested_outer, &n, err, sizeof(err)), 2);
	T_EQ_INT(n.checked, 2);
	T_EQ_INT(n.inner, 4);
	T_EQ_INT(prom_parse(text, strlen(text), NULL, NULL, err, sizeof(err)), 2);
	T_EQ_INT(prom_parse("bad{", 4, NULL, NULL, err, sizeof(err)), -1);
	T_EQ_INT(prom_parse(text, strlen(text), NULL, NULL, err, sizeof(err)), 2); /* after an error too */
}

int main(void)
{
	T_RUN(test_writer);
	T_RUN(test_special_values);
	T_RUN(test_series_memo);
	T_RUN(test_series_cap);
	T_RUN(test_threads);
	T_RUN(test_parse_vllm);
	T_RUN(test_parse_others);
	T_RUN(test_parse_errors);
	T_RUN(test_round_trip);
	T_RUN(test_parse_nested);
	T_RUN(test_parse_speed);
	return T_END();
}
