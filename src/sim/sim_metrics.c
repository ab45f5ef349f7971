/*
 * sim_metrics.c — the simulator's /metrics under vLLM's names, labels and
 * histogram buckets (V1 engine), on core/prom.h. Gauges and counters are
 * refreshed from the engine's stats when the text is written; the latency
 * histograms are fed by the engine as tokens come out.
 */
#include "sim/sim_server.h"

#include <stdio.h>
#include <string.h>
#include "core/util.h"

static const double ttft_buckets[] = {
	0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
	2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
};
static const double itl_buckets[] = {
	0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
	2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
};
static const double request_buckets[] = {
	0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
	50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
};

static void obs_ttft(void *arg, double s) { prom_observe(((sim_metrics *)arg)->ttft, s); }
static void obs_itl(void *arg, double s) { prom_observe(((sim_metrics *)arg)->itl, s); }
static void obs_e2e(void *arg, double s) { prom_observe(((sim_metrics *)arg)->e2e, s); }
static void obs_queue(void *arg, double s) { prom_observe(((sim_metrics *)arg)->queue, s); }

static void add_delta(prom_series *ser, uint64_t now, uint64_t *was)
{
	if (now > *was) prom_add(ser, (double)(now - *was));
	*was = now;
}

/* Refreshes every gauge and counter from the engine (prom_write's hook). */
static void collect(prom_registry *reg, void *arg)
{
	sim_server *s = arg;
	sim_metrics *m = &s->metrics;
	const sim_engine_stats *st = sim_engine_get_stats(s->engine);
	const sim_kv *kv = sim_engine_kv(s->engine);
	prom_set(m->running, st->running);
	prom_set(m->waiting, s->faults.waiting >= 0 ? (double)s->faults.waiting : st->waiting);
	prom_set(m->kv_usage, s->faults.kv_usage >= 0 ? s->faults.kv_usage
			      : (double)sim_kv_used(kv) / (double)kv->num_blocks);
	add_delta(m->prefix_queries, st->prefix_queries_total, &m->exported.prefix_queries_total);
	add_delta(m->prefix_hits, st->prefix_hits_total, &m->exported.prefix_hits_total);
	add_delta(m->prompt_tokens, st->prompt_tokens_total, &m->exported.prompt_tokens_total);
	add_delta(m->generation_tokens, st->generation_tokens_total, &m->exported.generation_tokens_total);
	add_delta(m->preemptions, st->preemptions_total, &m->exported.preemptions_total);
	for (int i = 0; i < 3; i++) add_delta(m->success[i], st->success_total[i], &m->exported.success_total[i]);
}

int sim_metrics_init(sim_metrics *m, sim_server *s)
{
	static const char *const lab[] = {"engine", "model_name", NULL};
	static const char *const lab_fin[] = {"engine", "finished_reason", "model_name", NULL};
	static const char *const lab_cache[] = {"block_size", "cache_dtype", "enable_prefix_caching",
						"engine", "num_gpu_blocks", NULL};
	static const char *const reasons[] = {"stop", "length", "abort"};
	const char *model = s->cfg.models[0];
	const char *const vals[] = {"0", model};
	memset(m, 0, sizeof(*m));
	m->reg = prom_registry_new();
	if (!m->reg) return -1;
	prom_registry *r = m->reg;
	m->running = prom_series_get(prom_gauge(r, "vllm:num_requests_running",
		"Number of requests in model execution batches.", lab), vals);
	m->waiting = prom_series_get(prom_gauge(r, "vllm:num_requests_waiting",
		"Number of requests waiting to be processed.", lab), vals);
	m->kv_usage = prom_series_get(prom_gauge(r, "vllm:kv_cache_usage_perc",
		"KV-cache usage. 1 means 100 percent usage.", lab), vals);
	m->prefix_queries = prom_series_get(prom_counter(r, "vllm:prefix_cache_queries_total",
		"Prefix cache queries, in terms of number of queried tokens.", lab), vals);
	m->prefix_hits = prom_series_get(prom_counter(r, "vllm:prefix_cache_hits_total",
		"Prefix cache hits, in terms of number of cached tokens.", lab), vals);
	m->preemptions = prom_series_get(prom_counter(r, "vllm:num_preemptions_total",
		"Cumulative number of preemption from the engine.", lab), vals);
	m->prompt_tokens = prom_series_get(prom_counter(r, "vllm:prompt_tokens_total",
		"Number of prefill tokens processed.", lab), vals);
	m->generation_tokens = prom_series_get(prom_counter(r, "vllm:generation_tokens_total",
		"Number of generation tokens processed.", lab), vals);
	prom_family *fin = prom_counter(r, "vllm:request_success_total",
		"Count of successfully processed requests.", lab_fin);
	for (int i = 0; i < 3; i++) {
		const char *const v[] = {"0", reasons[i], model};
		m->success[i] = prom_series_get(fin, v);
	}
	m->ttft = prom_series_get(prom_histogram(r, "vllm:time_to_first_token_seconds",
		"Histogram of time to first token in seconds.", lab, ttft_buckets,
		ARRAY_LEN(ttft_buckets)), vals);
	m->itl = prom_series_get(prom_histogram(r, "vllm:inter_token_latency_seconds",
		"Histogram of inter-token latency in seconds.", lab, itl_buckets,
		ARRAY_LEN(itl_buckets)), vals);
	m->e2e = prom_series_get(prom_histogram(r, "vllm:e2e_request_latency_seconds",
		"Histogram of e2e request latency in seconds.", lab, request_buckets,
		ARRAY_LEN(request_buckets)), vals);
	m->queue = prom_series_get(prom_histogram(r, "vllm:request_queue_time_seconds",
		"Histogram of time spent in WAITING phase for request.", lab, request_buckets,
		ARRAY_LEN(request_buckets)), vals);
	char blocks[24];
	snprintf(blocks, sizeof(blocks), "%u", s->cfg.engine.kv_blocks);
	const char *const cv[] = {"16", "auto", "True", "0", blocks};
	m->cache_info = prom_series_get(prom_gauge(r, "vllm:cache_config_info",
		"Information of the LLMEngine CacheConfig", lab_cache), cv);
	prom_set(m->cache_info, 1);
	prom_registry_on_write(r, collect, s);
	sim_engine_observer o = {obs_ttft, obs_itl, obs_e2e, obs_queue, m};
	sim_engine_set_observer(s->engine, &o);
	return 0;
}

void sim_metrics_deinit(sim_metrics *m)
{
	prom_registry_free(m->reg);
	m->reg = NULL;
}

int sim_metrics_write(sim_metrics *m, sim_server *s, buf *out)
{
	return prom_write(m->reg, out);
}
