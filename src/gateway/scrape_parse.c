/*
 * scrape_parse.c — a model server's /metrics page into scrape_values (scrape.h).
 *
 * A vLLM page is ~10-60 KB, mostly histogram buckets the picker never reads,
 * and it is read 10 times a second from every endpoint. So lines are sieved
 * first: only those whose metric name is one we read (a byte compare of the
 * name) go to core's prom_parse, which does the real parsing (labels, escapes,
 * numbers). A page is garbage when a sieved line does not parse, when a line
 * does not start like a sample or a comment, when it holds a NUL byte, or when
 * no load metric is on it at all (or the configured one is missing).
 */
#include "gateway/scrape.h"
#include "core/prom.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum which { W_KV, W_WAITING, W_RUNNING, W_CACHE_CONFIG, W_METRIC, W_N };

typedef struct known {
	const char *name;
	int which;
	const char *dialect;
} known;

static const known table[] = {
	{"vllm:kv_cache_usage_perc", W_KV, "vllm"},
	{"vllm:gpu_cache_usage_perc", W_KV, "vllm"},
	{"vllm:num_requests_waiting", W_WAITING, "vllm"},
	{"vllm:num_requests_running", W_RUNNING, "vllm"},
	{"vllm:cache_config_info", W_CACHE_CONFIG, "vllm"},
	{"sglang:token_usage", W_KV, "sglang"},
	{"sglang:num_queue_reqs", W_WAITING, "sglang"},
	{"sglang:num_running_reqs", W_RUNNING, "sglang"},
	{"llamacpp:kv_cache_usage_ratio", W_KV, "llamacpp"},
	{"llamacpp:requests_deferred", W_WAITING, "llamacpp"},
	{"llamacpp:requests_processing", W_RUNNING, "llamacpp"},
};

int scrape_metric_is_kv(const char *metric)
{
	return !metric || !*metric || !strcmp(metric, "kv-cache") || !strcmp(metric, "tpu-cache");
}

typedef struct acc {
	double sum[W_N];
	uint32_t count[W_N];
	const char *dialect;
	const char *metric;            /* NULL: the KV usage */
	uint32_t block_size, num_gpu_blocks;
	int kv_prio;                   /* 2 = kv_cache_usage_perc seen, 1 = older name */
} acc;

/* The table entry for a name of len bytes, or -1 (W_METRIC for the configured one). */
static int lookup(const acc *a, const char *name, size_t len, const char **dialect)
{
	if (a->metric && strlen(a->metric) == len && !memcmp(a->metric, name, len)) {
		*dialect = "custom";
		return W_METRIC;
	}
	if (len < 10) return -1;
	for (size_t i = 0; i < ARRAY_LEN(table); i++)
		if (strlen(table[i].name) == len && !memcmp(table[i].name, name, len)) {
			*dialect = table[i].dialect;
			return table[i].which;
		}
	return -1;
}

static int on_sample(void *arg, const prom_sample *s)
{
	acc *a = arg;
	const char *dialect = NULL;
	int w = lookup(a, s->name, strlen(s->name), &dialect);
	if (w < 0 || !isfinite(s->value)) return 0;
	if (w == W_CACHE_CONFIG) {
		const char *bs = prom_sample_label(s, "block_size"), *nb = prom_sample_label(s, "num_gpu_blocks");
		int64_t v;
		if (bs && parse_int64(bs, 1, 1 << 20, &v) == 0) a->block_size = (uint32_t)v;
		if (nb && parse_int64(nb, 1, UINT32_MAX, &v) == 0) a->num_gpu_blocks = (uint32_t)v;
		a->count[w]++;
		return 0;
	}
	if (w == W_KV) {
		/* vLLM pages of a transition carry both names: the new one wins. */
		int prio = strstr(s->name, "gpu_cache") ? 1 : 2;
		if (prio < a->kv_prio) return 0;
		if (prio > a->kv_prio) {
			a->sum[w] = 0;
			a->count[w] = 0;
			a->kv_prio = prio;
		}
	}
	if (!a->dialect || w != W_METRIC) a->dialect = dialect;
	a->sum[w] += s->value;
	a->count[w]++;
	return 0;
}

static double frac(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

int scrape_parse(const char *text, size_t len, const char *metric, scrape_values *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->dialect = "";
	acc a;
	memset(&a, 0, sizeof(a));
	a.metric = scrape_metric_is_kv(metric) ? NULL : metric;
	if (memchr(text, 0, len)) {
		snprintf(err, err_len, "not Prometheus text (a NUL byte)");
		return -1;
	}
	/* Sieve: feed prom_parse only the lines whose metric name we read. */
	const char *p = text, *end = text + len;
	size_t lines = 0, comment_or_blank = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		lines++;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\t')) q++;
		if (q == le || *q == '#' || *q == '\r') {
			comment_or_blank++;
		} else {
			const char *ne = q;
			while (ne < le && *ne != '{' && *ne != ' ' && *ne != '\t') ne++;
			const char *dialect;
			if (lookup(&a, q, (size_t)(ne - q), &dialect) >= 0) {
				char perr[128];
				if (prom_parse(q, (size_t)(le - q), on_sample, &a, perr, sizeof(perr)) != 1) {
					snprintf(err, err_len, "not Prometheus text at line %zu: %s", lines, perr);
					return -1;
				}
			} else if (ne == q || !((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_' || *q == ':')) {
				/* Not a metric name: this is no Prometheus page. */
				snprintf(err, err_len, "not Prometheus text at line %zu", lines);
				return -1;
			}
		}
		p = nl ? nl + 1 : end;
	}
	if (a.count[W_KV]) {
		out->kv_usage = frac(a.sum[W_KV] / a.count[W_KV]);
		out->has |= SCRAPE_HAS_KV;
	}
	if (a.count[W_WAITING]) {
		out->waiting = a.sum[W_WAITING] < 0 ? 0 : a.sum[W_WAITING];
		out->has |= SCRAPE_HAS_WAITING;
	}
	if (a.count[W_RUNNING]) {
		out->running = a.sum[W_RUNNING] < 0 ? 0 : a.sum[W_RUNNING];
		out->has |= SCRAPE_HAS_RUNNING;
	}
	if (a.count[W_CACHE_CONFIG] && (a.block_size || a.num_gpu_blocks)) {
		out->block_size = a.block_size;
		out->num_gpu_blocks = a.num_gpu_blocks;
		out->has |= SCRAPE_HAS_CACHE_CONFIG;
	}
	if (a.metric) {
		if (a.count[W_METRIC]) {
			out->metric = frac(a.sum[W_METRIC] / a.count[W_METRIC]);
			out->has |= SCRAPE_HAS_METRIC;
		}
	} else if (out->has & SCRAPE_HAS_KV) {
		out->metric = out->kv_usage;
		out->has |= SCRAPE_HAS_METRIC;
	}
	out->dialect = a.dialect ? a.dialect : "";
	if (a.metric && !(out->has & SCRAPE_HAS_METRIC)) {
		snprintf(err, err_len, "the balancing metric %.96s is not on the page", a.metric);
		return -1;
	}
	/* Newer llama.cpp has no KV gauge: its queue gauges alone will do. */
	if (!(out->has & (SCRAPE_HAS_KV | SCRAPE_HAS_WAITING | SCRAPE_HAS_RUNNING | SCRAPE_HAS_METRIC))) {
		snprintf(err, err_len, "no load metric on the page (vLLM, SGLang or llama.cpp names)");
		return -1;
	}
	return 0;
}
