/*
 * server_metrics.c — /metrics of infergate-server under vLLM's names, labels
 * (engine, model_name) and histogram buckets (V1 engine), on core/prom.h.
 * Gauges and counters are refreshed from the scheduler's stats each time the
 * text is written; latency histograms are fed by the scheduler thread as tokens
 * come out (prom.h is thread-safe). A few infergate: series show the batching
 * itself (steps, sequences per step).
 */
#include "server/server.h"

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
static const double batch_buckets[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };

/* Index by sched_finish; the label vLLM uses for each. */
static const char *const finish_label[5] = { NULL, "stop", "length", "abort", "error" };

static void add_delta(prom_series *ser, uint64_t now, uint64_t *was)
{
	if (now > *was) prom_add(ser, (double)(now - *was));
	*was = now;
}

static void collect(prom_registry *reg, void *arg)
{
	server *s = arg;
	server_metrics *m = &s->m;
	if (!s->sc) return;
	sched_stats st;
	sched_get_stats(s->sc, &st);
	prom_set(m->running, st.running);
	prom_set(m->waiting, st.waiting);
	prom_set(m->kv_usage, st.kv_usage);
	add_delta(m->prefix_queries, st.prefix_queries_total, &m->exported.prefix_queries_total);
	add_delta(m->prefix_hits, st.prefix_hits_total, &m->exported.prefix_hits_total);
	add_delta(m->prompt_tokens, st.prompt_tokens_total, &m->exported.prompt_tokens_total);
	add_delta(m->generation_tokens, st.generation_tokens_total, &m->exported.generation_tokens_total);
	add_delta(m->preemptions, st.preemptions_total, &m->exported.preemptions_total);
	add_delta(m->steps, st.steps_total, &m->exported.steps_total);
	add_delta(m->step_seqs, st.step_seqs_total, &m->exported.step_seqs_total);
	add_delta(m->step_tokens, st.step_tokens_total, &m->exported.step_tokens_total);
	for (int i = 1; i < 5; i++) add_delta(m->success[i], st.finished_total[i], &m->exported.finished_total[i]);
}

int server_metrics_init(server *s)
{
	static const char *const lab[] = {"engine", "model_name", NULL};
	static const char *const lab_fin[] = {"engine", "finished_reason", "model_name", NULL};
	server_metrics *m = &s->m;
	const char *const vals[] = {"0", s->o.served_name};
	memset(m, 0, sizeof *m);
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
	for (int i = 1; i < 5; i++) {
		const char *const v[] = {"0", finish_label[i], s->o.served_name};
		m->success[i] = prom_series_get(fin, v);
	}
	m->ttft = prom_series_get(prom_histogram(r, "vllm:time_to_first_token_seconds",
		"Histogram of time to first token in seconds.", lab, ttft_buckets,
		ARRAY_LEN(ttft_buckets)), vals);
	m->itl = prom_series_get(prom_histogram(r, "vllm:inter_token_latency_seconds",
		"Histogram of inter-token latency in seconds.", lab, itl_buckets,
		ARRAY_LEN(itl_buckets)), vals);
	m->tpot = prom_series_get(prom_histogram(r, "vllm:time_per_output_token_seconds",
		"Histogram of time per output token in seconds.", lab, itl_buckets,
		ARRAY_LEN(itl_buckets)), vals);
	m->e2e = prom_series_get(prom_histogram(r, "vllm:e2e_request_latency_seconds",
		"Histogram of e2e request latency in seconds.", lab, request_buckets,
		ARRAY_LEN(request_buckets)), vals);
	m->queue = prom_series_get(prom_histogram(r, "vllm:request_queue_time_seconds",
		"Histogram of time spent in WAITING phase for request.", lab, request_buckets,
		ARRAY_LEN(request_buckets)), vals);
	m->cache_info = prom_gauge(r, "vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
		(const char *const[]){"block_size", "cache_dtype", "enable_prefix_caching", "engine",
				      "num_cpu_blocks", "num_gpu_blocks", NULL});
	m->steps = prom_series_get(prom_counter(r, "infergate:engine_steps_total",
		"Engine steps run (one forward pass over the whole batch).", lab), vals);
	m->step_seqs = prom_series_get(prom_counter(r, "infergate:engine_step_sequences_total",
		"Sequences advanced, summed over steps.", lab), vals);
	m->step_tokens = prom_series_get(prom_counter(r, "infergate:engine_step_tokens_total",
		"Tokens through the model, summed over steps (prefill and decode).", lab), vals);
	m->batch_size = prom_series_get(prom_histogram(r, "infergate:engine_batch_size",
		"Sequences per engine step.", lab, batch_buckets, ARRAY_LEN(batch_buckets)), vals);
	prom_registry_on_write(r, collect, s);
	return 0;
}

void server_metrics_loaded(server *s)
{
	char blocks[24];
	sched_stats st;
	sched_get_stats(s->sc, &st);
	snprintf(blocks, sizeof blocks, "%d", st.kv_total_blocks);
	const char *const cv[] = {"16", "auto", s->o.prefix_caching ? "True" : "False", "0", "0", blocks};
	prom_set(prom_series_get(s->m.cache_info, cv), 1);
}

static void obs_queue(void *arg, double v) { prom_observe(((server *)arg)->m.queue, v); }
static void obs_ttft(void *arg, double v) { prom_observe(((server *)arg)->m.ttft, v); }
static void obs_itl(void *arg, double v)
{
	server *s = arg;
	prom_observe(s->m.itl, v);
	prom_observe(s->m.tpot, v);
}
static void obs_finished(void *arg, double e2e, sched_finish why, int prompt, int gen)
{
	prom_observe(((server *)arg)->m.e2e, e2e);
}
static void obs_step(void *arg, int seqs, int tokens) { prom_observe(((server *)arg)->m.batch_size, seqs); }

void server_metrics_observer(server *s, sched_observer *o)
{
	*o = (sched_observer){ obs_queue, obs_ttft, obs_itl, obs_finished, obs_step, s };
}

void server_metrics_deinit(server *s)
{
	prom_registry_free(s->m.reg);
	s->m.reg = NULL;
}
