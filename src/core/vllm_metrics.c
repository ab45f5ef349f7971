/*
 * vllm_metrics.c — vLLM's metric families (V1 engine) on a prom.h registry:
 * the names, help texts, labels and buckets a vLLM server writes.
 */
#include "core/vllm_metrics.h"

#include <stdio.h>
#include <string.h>
#include "core/util.h"

static const double ttft_buckets[] = {
	0.001,
	0.005,
	0.01,
	0.02,
	0.04,
	0.06,
	0.08,
	0.1,
	0.25,
	0.5,
	0.75,
	1.0,
	2.5,
	5.0,
	7.5,
	10.0,
	20.0,
	40.0,
	80.0,
	160.0,
	640.0,
	2560.0,
};
static const double itl_buckets[] = {
	0.01,
	0.025,
	0.05,
	0.075,
	0.1,
	0.15,
	0.2,
	0.3,
	0.4,
	0.5,
	0.75,
	1.0,
	2.5,
	5.0,
	7.5,
	10.0,
	20.0,
	40.0,
	80.0,
};
static const double request_buckets[] = {
	0.3,
	0.5,
	0.8,
	1.0,
	1.5,
	2.0,
	2.5,
	5.0,
	10.0,
	15.0,
	20.0,
	30.0,
	40.0,
	50.0,
	60.0,
	120.0,
	240.0,
	480.0,
	960.0,
	1920.0,
	7680.0,
};

static const char *const lab[] = {"engine", "model_name", NULL};
static const char *const lab_fin[] = {"engine", "finished_reason", "model_name", NULL};
static const char *const lab_cache[] = {"block_size", "cache_dtype", "enable_prefix_caching", "engine",
					"num_gpu_blocks", NULL};
static const char *const lab_cache_cpu[] = {"block_size", "cache_dtype", "enable_prefix_caching", "engine",
					    "num_cpu_blocks", "num_gpu_blocks", NULL};

static prom_series *gauge(prom_registry *r, const char *name, const char *help, const char *const *vals)
{
	return prom_series_get(prom_gauge(r, name, help, lab), vals);
}

static prom_series *counter(prom_registry *r, const char *name, const char *help, const char *const *vals)
{
	return prom_series_get(prom_counter(r, name, help, lab), vals);
}

static prom_series *histogram(prom_registry *r, const char *name, const char *help, const double *b, size_t n,
			      const char *const *vals)
{
	return prom_series_get(prom_histogram(r, name, help, lab, b, n), vals);
}

int vllm_metrics_register(vllm_metrics *m, prom_registry *r, const vllm_metrics_opts *o)
{
	const char *const vals[] = {"0", o->model_name};
	memset(m, 0, sizeof *m);
	if (o->n_finish_reasons > VLLM_MAX_FINISH) return -1;
	m->n_finish = o->n_finish_reasons;
	m->cache_info_cpu_blocks = o->cache_info_cpu_blocks;
	m->running = gauge(r, "vllm:num_requests_running", "Number of requests in model execution batches.", vals);
	m->waiting = gauge(r, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", vals);
	m->kv_usage = gauge(r, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", vals);
	m->prefix_queries = counter(r, "vllm:prefix_cache_queries_total",
				    "Prefix cache queries, in terms of number of queried tokens.", vals);
	m->prefix_hits = counter(r, "vllm:prefix_cache_hits_total",
				 "Prefix cache hits, in terms of number of cached tokens.", vals);
	m->preemptions = counter(r, "vllm:num_preemptions_total",
				 "Cumulative number of preemption from the engine.", vals);
	m->prompt_tokens = counter(r, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", vals);
	m->generation_tokens = counter(r, "vllm:generation_tokens_total",
				       "Number of generation tokens processed.", vals);
	prom_family *fin = prom_counter(r, "vllm:request_success_total",
					"Count of successfully processed requests.", lab_fin);
	for (size_t i = 0; i < m->n_finish; i++) {
		const char *const v[] = {"0", o->finish_reasons[i], o->model_name};
		m->success[i] = prom_series_get(fin, v);
	}
	m->ttft = histogram(r, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
			    ttft_buckets, ARRAY_LEN(ttft_buckets), vals);
	m->itl = histogram(r, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
			   itl_buckets, ARRAY_LEN(itl_buckets), vals);
	if (o->with_tpot)
		m->tpot = histogram(r, "vllm:time_per_output_token_seconds",
				    "Histogram of time per output token in seconds.", itl_buckets, ARRAY_LEN(itl_buckets), vals);
	m->e2e = histogram(r, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
			   request_buckets, ARRAY_LEN(request_buckets), vals);
	m->queue = histogram(r, "vllm:request_queue_time_seconds",
			     "Histogram of time spent in WAITING phase for request.", request_buckets,
			     ARRAY_LEN(request_buckets), vals);
	m->cache_info = prom_gauge(r, "vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
				   o->cache_info_cpu_blocks ? lab_cache_cpu : lab_cache);
	return 0;
}

void vllm_metrics_update(vllm_metrics *m, const vllm_metrics_totals *t)
{
	vllm_metrics_totals *x = &m->exported;
	prom_set(m->running, t->running);
	prom_set(m->waiting, t->waiting);
	prom_set(m->kv_usage, t->kv_usage);
	prom_add_total(m->prefix_queries, t->prefix_queries_total, &x->prefix_queries_total);
	prom_add_total(m->prefix_hits, t->prefix_hits_total, &x->prefix_hits_total);
	prom_add_total(m->prompt_tokens, t->prompt_tokens_total, &x->prompt_tokens_total);
	prom_add_total(m->generation_tokens, t->generation_tokens_total, &x->generation_tokens_total);
	prom_add_total(m->preemptions, t->preemptions_total, &x->preemptions_total);
	for (size_t i = 0; i < m->n_finish; i++)
		prom_add_total(m->success[i], t->finished_total[i], &x->finished_total[i]);
}

void vllm_metrics_cache_info(vllm_metrics *m, int block_size, int prefix_caching, uint64_t num_gpu_blocks)
{
	char bs[24], blocks[24];
	snprintf(bs, sizeof bs, "%d", block_size);
	snprintf(blocks, sizeof blocks, "%llu", (unsigned long long)num_gpu_blocks);
	const char *pc = prefix_caching ? "True" : "False";
	const char *const cv[] = {bs, "auto", pc, "0", blocks};
	const char *const cv_cpu[] = {bs, "auto", pc, "0", "0", blocks};
	prom_set(prom_series_get(m->cache_info, m->cache_info_cpu_blocks ? cv_cpu : cv), 1);
}

void vllm_metrics_observe_itl(vllm_metrics *m, double seconds)
{
	prom_observe(m->itl, seconds);
	if (m->tpot) prom_observe(m->tpot, seconds);
}
