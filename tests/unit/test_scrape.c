/*
 * test_scrape.c — scrape_parse on pages as vLLM (new and old KV names, the
 * cache_config_info labels, several engines), SGLang and llama.cpp (with and
 * without the KV gauge) write them, a configured balancing metric and its
 * aliases, garbage of every kind, and the cost of parsing the simulator's page.
 * The source is included: the gateway is a program, not a library.
 */
#include "../../src/gateway/scrape_parse.c"
#include "t.h"

#include <time.h>

static const char vllm_page[] =
	"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
	"# TYPE vllm:num_requests_running gauge\n"
	"vllm:num_requests_running{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 3.0\n"
	"# TYPE vllm:num_requests_waiting gauge\n"
	"vllm:num_requests_waiting{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 2.0\n"
	"# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
	"# TYPE vllm:kv_cache_usage_perc gauge\n"
	"vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"google/gemma-3-1b-it\"} 0.0421\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.001\",model_name=\"m\"} 0.0\n"
	"vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 7.0\n"
	"vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\",num_gpu_blocks=\"8192\"} 1.0\n";

static void test_vllm(void)
{
	scrape_values v;
	char err[160];
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.kv_usage, 0.0421, 1e-12);
	T_NEAR(v.metric, 0.0421, 1e-12);
	T_NEAR(v.waiting, 2, 0);
	T_NEAR(v.running, 3, 0);
	T_EQ_INT(v.block_size, 16);
	T_EQ_INT(v.num_gpu_blocks, 8192);
	T_EQ_STR(v.dialect, "vllm");
	T_EQ_INT(v.has, SCRAPE_HAS_KV | SCRAPE_HAS_WAITING | SCRAPE_HAS_RUNNING | SCRAPE_HAS_METRIC | SCRAPE_HAS_CACHE_CONFIG);
	/* Aliases of the KV usage. */
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), "tpu-cache", &v, err, sizeof(err)), 0);
	T_NEAR(v.metric, 0.0421, 1e-12);
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), "kv-cache", &v, err, sizeof(err)), 0);
	/* A named gauge as the balancing metric; missing: an error. */
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), "vllm:num_requests_running", &v, err, sizeof(err)), 0);
	T_NEAR(v.metric, 1, 0); /* 3 clamped to 0..1 */
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), "my:load", &v, err, sizeof(err)), -1);
	T_CHECK(strstr(err, "my:load") != NULL);
}

/* vllm:generation_tokens_total (the dashboard's tokens/s): summed over
 * engines, never a load metric on its own. */
static void test_generation_tokens(void)
{
	static const char page[] =
		"# TYPE vllm:generation_tokens_total counter\n"
		"vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 1200.0\n"
		"vllm:generation_tokens_total{engine=\"1\",model_name=\"m\"} 34\n"
		"vllm:generation_tokens_created{engine=\"0\",model_name=\"m\"} 1.7e9\n"
		"vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 1\n";
	scrape_values v;
	char err[160];
	T_EQ_INT(scrape_parse(page, strlen(page), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.generation_tokens_total, 1234, 0);
	T_CHECK(v.has & SCRAPE_HAS_GEN_TOKENS);
	T_NEAR(v.waiting, 1, 0);
	/* without it: the bit is clear */
	T_EQ_INT(scrape_parse(vllm_page, strlen(vllm_page), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(!(v.has & SCRAPE_HAS_GEN_TOKENS));
	/* the counter alone is no load metric */
	static const char only[] = "vllm:generation_tokens_total{model_name=\"m\"} 5\n";
	T_EQ_INT(scrape_parse(only, strlen(only), NULL, &v, err, sizeof(err)), -1);
	T_CHECK(strstr(err, "no load metric") != NULL);
}

static void test_vllm_old_and_engines(void)
{
	/* The older name alone; then both names (the new one wins); two engines averaged/summed. */
	const char *old = "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\nvllm:num_requests_waiting{model_name=\"m\"} 1\n";
	scrape_values v;
	char err[160];
	T_EQ_INT(scrape_parse(old, strlen(old), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.kv_usage, 0.5, 0);
	const char *both = "vllm:gpu_cache_usage_perc{engine=\"0\"} 0.9\nvllm:kv_cache_usage_perc{engine=\"0\"} 0.2\n"
			   "vllm:kv_cache_usage_perc{engine=\"1\"} 0.4\nvllm:gpu_cache_usage_perc{engine=\"1\"} 0.9\n"
			   "vllm:num_requests_waiting{engine=\"0\"} 1\nvllm:num_requests_waiting{engine=\"1\"} 4\n";
	T_EQ_INT(scrape_parse(both, strlen(both), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.kv_usage, 0.3, 1e-12);
	T_NEAR(v.waiting, 5, 0);
	/* CRLF line ends. */
	const char *crlf = "# TYPE vllm:kv_cache_usage_perc gauge\r\nvllm:kv_cache_usage_perc 0.25\r\n";
	T_EQ_INT(scrape_parse(crlf, strlen(crlf), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.kv_usage, 0.25, 0);
}

static void test_sglang_llamacpp(void)
{
	const char *sg = "# TYPE sglang:token_usage gauge\nsglang:token_usage{model_name=\"m\"} 0.61\n"
			 "sglang:num_queue_reqs{model_name=\"m\"} 7\nsglang:num_running_reqs{model_name=\"m\"} 12\n"
			 "sglang:cache_hit_rate{model_name=\"m\"} 0.5\n";
	scrape_values v;
	char err[160];
	T_EQ_INT(scrape_parse(sg, strlen(sg), NULL, &v, err, sizeof(err)), 0);
	T_EQ_STR(v.dialect, "sglang");
	T_NEAR(v.kv_usage, 0.61, 1e-12);
	T_NEAR(v.waiting, 7, 0);
	T_NEAR(v.running, 12, 0);
	const char *lc = "# HELP llamacpp:prompt_tokens_total x\nllamacpp:prompt_tokens_total 100\n"
			 "llamacpp:kv_cache_usage_ratio 0.125\nllamacpp:requests_processing 2\nllamacpp:requests_deferred 1\n";
	T_EQ_INT(scrape_parse(lc, strlen(lc), NULL, &v, err, sizeof(err)), 0);
	T_EQ_STR(v.dialect, "llamacpp");
	T_NEAR(v.kv_usage, 0.125, 0);
	T_NEAR(v.running, 2, 0);
	T_NEAR(v.waiting, 1, 0);
	/* Newer llama.cpp: no KV gauge; the queue gauges still make a page. */
	const char *lc2 = "llamacpp:requests_processing 1\nllamacpp:requests_deferred 0\n";
	T_EQ_INT(scrape_parse(lc2, strlen(lc2), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(!(v.has & SCRAPE_HAS_KV));
	T_NEAR(v.metric, 0, 0);
}

static void test_garbage(void)
{
	scrape_values v;
	char err[160];
	const char *cases[] = {
		"", /* no load metric */
		"# only comments\n",
		"some_other_metric 1\n", /* Prometheus, but nothing we read */
		"<html><body>502 Bad Gateway</body></html>\n",
		"{\"kv\": 0.5}\n",
		"vllm:kv_cache_usage_perc{engine=\"0\" 0.5\n", /* broken labels */
		"vllm:kv_cache_usage_perc zero\n",             /* not a number */
		"vllm:kv_cache_usage_perc 0.5\n\xff\xfe garbage\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		T_EQ_INT(scrape_parse(cases[i], strlen(cases[i]), NULL, &v, err, sizeof(err)), -1);
		T_CHECK(err[0] != 0);
	}
	const char nul[] = "vllm:kv_cache_usage_perc 0.5\n\0\n";
	T_EQ_INT(scrape_parse(nul, sizeof(nul) - 1, NULL, &v, err, sizeof(err)), -1);
	/* Out-of-range values are clamped, NaN ignored. */
	const char *odd = "vllm:kv_cache_usage_perc 1.7\nvllm:num_requests_waiting -3\n";
	T_EQ_INT(scrape_parse(odd, strlen(odd), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.kv_usage, 1, 0);
	T_NEAR(v.waiting, 0, 0);
	const char *nan = "vllm:kv_cache_usage_perc NaN\nvllm:num_requests_running 1\n";
	T_EQ_INT(scrape_parse(nan, strlen(nan), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(!(v.has & SCRAPE_HAS_KV));
}

/* The sieve drops a line on its first 8 bytes and its name's end: names that
 * share a head or a prefix with a read name, short lines, short configured
 * names, names ending in a blank or at the line end. */
static void test_sieve(void)
{
	scrape_values v;
	char err[160];
	const char *near =
		"vllm:num_requests_waiting_total 50\n" /* a longer name: not the gauge */
		"vllm:num_requests_waitin 40\n"        /* a shorter one */
		"vllm:num_preemptions_total 30\n"      /* same head and length as a read name */
		"vllm:num_requests_waiting\t2\n"       /* a tab after the name */
		"vllm:num_requests_running 3\n"
		"a 1\n"                                          /* shorter than a head */
		"  vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\n" /* leading blanks */
		"vllm:kv_cache_usage_perc_other 0.9\n";
	T_EQ_INT(scrape_parse(near, strlen(near), NULL, &v, err, sizeof(err)), 0);
	T_NEAR(v.waiting, 2, 0);
	T_NEAR(v.running, 3, 0);
	T_NEAR(v.kv_usage, 0.5, 0);
	/* A configured name shorter than a head, at the end of a page without a newline. */
	const char *tiny = "ld 0.25\nldx 0.9\nl 0.8\nld";
	T_EQ_INT(scrape_parse(tiny, strlen(tiny), "ld", &v, err, sizeof(err)), -1); /* "ld" alone: no value */
	T_EQ_INT(scrape_parse(tiny, strlen(tiny) - 3, "ld", &v, err, sizeof(err)), 0);
	T_NEAR(v.metric, 0.25, 0);
	T_EQ_STR(v.dialect, "custom");
}

/* What the sieve keeps gives what parsing the whole page gives. */
typedef struct full {
	double kv, waiting, running;
	int n_kv;
} full;

static int full_sample(void *arg, const prom_sample *s)
{
	full *f = arg;
	if (!strcmp(s->name, "vllm:kv_cache_usage_perc")) f->kv += s->value, f->n_kv++;
	if (!strcmp(s->name, "vllm:num_requests_waiting")) f->waiting += s->value;
	if (!strcmp(s->name, "vllm:num_requests_running")) f->running += s->value;
	return 0;
}

static void test_sieve_matches_full_parse(void)
{
	buf b;
	buf_init(&b, 0);
	unsigned seed = 7;
	for (int round = 0; round < 50; round++) {
		buf_reset(&b);
		int engines = 1 + round % 3;
		for (int e = 0; e < engines; e++) {
			for (int i = 0; i < 20; i++) {
				seed = seed * 1103515245u + 12345u;
				buf_printf(&b, "vllm:e2e_request_latency_seconds_bucket{engine=\"%d\",le=\"%d.0\"} %u\n", e, i, seed % 100);
			}
			seed = seed * 1103515245u + 12345u;
			buf_printf(&b, "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine=\"%d\"} 0.%02u\n", e, seed % 100);
			buf_printf(&b, "vllm:num_requests_waiting{engine=\"%d\"} %u\n", e, seed % 7);
			buf_printf(&b, "vllm:num_requests_running{engine=\"%d\"} %u\n", e, seed % 5);
			buf_printf(&b, "vllm:num_requests_running_total{engine=\"%d\"} 99\n", e);
		}
		full f = {0};
		char err[160];
		T_CHECK(prom_parse(buf_rptr(&b), buf_rlen(&b), full_sample, &f, err, sizeof(err)) > 0);
		scrape_values v;
		T_EQ_INT(scrape_parse(buf_rptr(&b), buf_rlen(&b), NULL, &v, err, sizeof(err)), 0);
		T_NEAR(v.kv_usage, f.kv / f.n_kv, 1e-12);
		T_NEAR(v.waiting, f.waiting, 0);
		T_NEAR(v.running, f.running, 0);
	}
	buf_free(&b);
}

/* A page fed in pieces, cut anywhere, reads as the page in one piece; a
 * failure in any piece is sticky; a line cut between pieces longer than the
 * carry cap is garbage; a parser is reused page after page. */
static void test_pieces(void)
{
	scrape_parser *sp = scrape_parser_new();
	T_CHECK(sp != NULL);
	scrape_values whole, v;
	char err[160];
	size_t len = strlen(vllm_page);
	T_EQ_INT(scrape_parse(vllm_page, len, NULL, &whole, err, sizeof(err)), 0);
	for (size_t cut = 0; cut <= len; cut++) {
		scrape_parser_begin(sp, NULL);
		T_EQ_INT(scrape_parser_feed(sp, vllm_page, cut), 0);
		T_EQ_INT(scrape_parser_feed(sp, vllm_page + cut, len - cut), 0);
		T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), 0);
		T_CHECK(!memcmp(&v, &whole, sizeof(v)));
	}
	for (size_t step = 1; step < 40; step += 3) { /* many small pieces */
		scrape_parser_begin(sp, "tpu-cache");
		for (size_t at = 0; at < len; at += step) scrape_parser_feed(sp, vllm_page + at, MIN(step, len - at));
		T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), 0);
		T_NEAR(v.metric, 0.0421, 1e-12);
		T_EQ_INT(v.num_gpu_blocks, 8192);
	}
	/* A bad line cut in two; a NUL in the second piece; then a good page again. */
	const char *bad = "vllm:kv_cache_usage_perc 0.5\n<html>\n";
	scrape_parser_begin(sp, NULL);
	T_EQ_INT(scrape_parser_feed(sp, bad, 31), 0);
	T_EQ_INT(scrape_parser_feed(sp, bad + 31, strlen(bad) - 31), -1);
	T_EQ_INT(scrape_parser_feed(sp, "vllm:num_requests_waiting 1\n", 28), -1);
	T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), -1);
	T_CHECK(strstr(err, "line 2") != NULL);
	scrape_parser_begin(sp, NULL);
	T_EQ_INT(scrape_parser_feed(sp, "vllm:kv_cache_usage_perc 0.5\n", 29), 0);
	T_EQ_INT(scrape_parser_feed(sp, "x 1\n\0", 5), -1);
	T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), -1);
	T_CHECK(strstr(err, "NUL") != NULL);
	buf b;
	buf_init(&b, 0);
	buf_puts(&b, "vllm:kv_cache_usage_perc 0.5\nlong_label_metric{l=\"");
	while (buf_rlen(&b) < PROM_PARSE_MAX_LINE + 100) buf_puts(&b, "xxxxxxxxxxxxxxxx");
	buf_puts(&b, "\"} 1\n");
	scrape_parser_begin(sp, NULL);
	T_EQ_INT(scrape_parser_feed(sp, buf_rptr(&b), 40), 0);
	T_EQ_INT(scrape_parser_feed(sp, buf_rptr(&b) + 40, buf_rlen(&b) - 40), -1);
	T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), -1);
	T_CHECK(strstr(err, "too long") != NULL);
	scrape_parser_begin(sp, NULL);
	T_EQ_INT(scrape_parser_feed(sp, vllm_page, len), 0);
	T_EQ_INT(scrape_parser_end(sp, &v, err, sizeof(err)), 0);
	T_CHECK(!memcmp(&v, &whole, sizeof(v)));
	buf_free(&b);
	scrape_parser_free(sp);
}

/* The cost per page of a simulator-like page (~12 KB, mostly histograms). */
static void test_cost(void)
{
	buf b;
	buf_init(&b, 0);
	buf_puts(&b, vllm_page);
	for (int h = 0; h < 4; h++)
		for (int i = 0; i < 30; i++)
			buf_printf(&b, "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"%d.0\",model_name=\"google/gemma-3-1b-it\"} %d\n", i, i * 7);
	scrape_values v;
	char err[160];
	struct timespec a, z;
	int n = 2000;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	for (int i = 0; i < n; i++) T_EQ_INT(scrape_parse(buf_rptr(&b), buf_rlen(&b), NULL, &v, err, sizeof(err)), 0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &z);
	double us = ((z.tv_sec - a.tv_sec) * 1e9 + (z.tv_nsec - a.tv_nsec)) / 1e3 / n;
	printf("  scrape_parse: %zu-byte page in %.1f us\n", buf_rlen(&b), us);
	T_CHECK(us < 2000);
	buf_free(&b);
}

static void test_lora(void)
{
	/* vLLM keeps one series per label set seen, its value the time it was
	 * set: the newest tells what runs now, wherever it is on the page. */
	const char *page =
		"vllm:kv_cache_usage_perc{engine=\"0\"} 0.25\n"
		"# TYPE vllm:lora_requests_info gauge\n"
		"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"sql,chat\",waiting_lora_adapters=\"\"} 1796620074.5\n"
		"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"old\",waiting_lora_adapters=\"\"} 1796620010\n";
	scrape_values v;
	char err[128];
	T_EQ_INT(scrape_parse(page, strlen(page), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(v.has & SCRAPE_HAS_LORA);
	T_EQ_STR(v.lora_running, "sql,chat");
	T_EQ_INT(v.max_lora, 4);
	T_NEAR(v.kv_usage, 0.25, 1e-12);
	/* None running; and a page without the family. */
	const char *idle = "vllm:kv_cache_usage_perc 0.1\nvllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 5\n";
	T_EQ_INT(scrape_parse(idle, strlen(idle), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(v.has & SCRAPE_HAS_LORA);
	T_EQ_STR(v.lora_running, "");
	T_EQ_INT(v.max_lora, 1);
	const char *none = "vllm:kv_cache_usage_perc 0.1\n";
	T_EQ_INT(scrape_parse(none, strlen(none), NULL, &v, err, sizeof(err)), 0);
	T_CHECK(!(v.has & SCRAPE_HAS_LORA));
}

int main(void)
{
	T_RUN(test_vllm);
	T_RUN(test_generation_tokens);
	T_RUN(test_lora);
	T_RUN(test_vllm_old_and_engines);
	T_RUN(test_sglang_llamacpp);
	T_RUN(test_garbage);
	T_RUN(test_sieve);
	T_RUN(test_sieve_matches_full_parse);
	T_RUN(test_pieces);
	T_RUN(test_cost);
	return T_END();
}
