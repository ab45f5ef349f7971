/*
 * sim_metrics.c — the simulator's /metrics: vLLM's families (core/vllm_metrics.h)
 * for the one simulated engine. Gauges and counters are refreshed from the
 * engine's stats (and the faults that override them) when the text is written;
 * the latency histograms are fed by the engine as tokens come out. With
 * --dialect llamacpp the page is llama.cpp's instead (its llamacpp:* names).
 */
#include "sim/sim_server.h"

#include <string.h>
#include "core/util.h"

static void obs_ttft(void *arg, double s) { prom_observe(((sim_metrics *)arg)->v.ttft, s); }
static void obs_itl(void *arg, double s) { vllm_metrics_observe_itl(&((sim_metrics *)arg)->v, s); }
static void obs_e2e(void *arg, double s) { prom_observe(((sim_metrics *)arg)->v.e2e, s); }
static void obs_queue(void *arg, double s) { prom_observe(((sim_metrics *)arg)->v.queue, s); }

/* Refreshes every gauge and counter from the engine (prom_write's hook). */
static void collect(prom_registry *reg, void *arg)
{
	sim_server *s = arg;
	const sim_engine_stats *st = sim_engine_get_stats(s->engine);
	const sim_kv *kv = sim_engine_kv(s->engine);
	vllm_metrics_totals t = {
		.running = st->running,
		.waiting = s->faults.waiting >= 0 ? (double)s->faults.waiting : st->waiting,
		.kv_usage = s->faults.kv_usage >= 0 ? s->faults.kv_usage
						    : (double)sim_kv_used(kv) / (double)kv->num_blocks,
		.prefix_queries_total = st->prefix_queries_total,
		.prefix_hits_total = st->prefix_hits_total,
		.prompt_tokens_total = st->prompt_tokens_total,
		.generation_tokens_total = st->generation_tokens_total,
		.preemptions_total = st->preemptions_total,
	};
	for (int i = 0; i < 3; i++) t.finished_total[i] = st->success_total[i];
	vllm_metrics_update(&s->metrics.v, &t);
}

int sim_metrics_init(sim_metrics *m, sim_server *s)
{
	static const char *const reasons[] = {"stop", "length", "abort"};
	const vllm_metrics_opts o = {.model_name = s->cfg.models[0], .finish_reasons = reasons, .n_finish_reasons = 3};
	memset(m, 0, sizeof(*m));
	m->reg = prom_registry_new();
	if (!m->reg) return -1;
	if (vllm_metrics_register(&m->v, m->reg, &o) < 0) return -1;
	vllm_metrics_cache_info(&m->v, 16, 1, s->cfg.engine.kv_blocks);
	prom_registry_on_write(m->reg, collect, s);
	sim_engine_observer obs = {obs_ttft, obs_itl, obs_e2e, obs_queue, m};
	sim_engine_set_observer(s->engine, &obs);
	return 0;
}

void sim_metrics_deinit(sim_metrics *m)
{
	prom_registry_free(m->reg);
	m->reg = NULL;
}

int sim_metrics_write(sim_metrics *m, sim_server *s, buf *out)
{
	int rc = prom_write(m->reg, out);
	if (rc == 0) sim_lora_write_metric(&s->cfg.lora, out, time_wall_s());
	return rc;
}

/* llama.cpp's server writes these (tools/server, --metrics): counters of
 * prompt and generated tokens, its slots busy (requests_processing) and the
 * tasks waiting for a slot (requests_deferred); kv_cache_usage_ratio is
 * the gauge of the versions that had one. */
int sim_metrics_write_llamacpp(sim_server *s, buf *out)
{
	const sim_engine_stats *st = sim_engine_get_stats(s->engine);
	const sim_kv *kv = sim_engine_kv(s->engine);
	double waiting = s->faults.waiting >= 0 ? (double)s->faults.waiting : st->waiting;
	double kv_usage = s->faults.kv_usage >= 0 ? s->faults.kv_usage : (double)sim_kv_used(kv) / (double)kv->num_blocks;
	struct {
		const char *name, *type, *help;
		double v;
	} m[] = {
		{"prompt_tokens_total", "counter", "Number of prompt tokens processed.", (double)st->prompt_tokens_total},
		{"tokens_predicted_total", "counter", "Number of generation tokens processed.", (double)st->generation_tokens_total},
		{"kv_cache_usage_ratio", "gauge", "KV-cache usage. 1 means 100 percent usage.", kv_usage},
		{"requests_processing", "gauge", "Number of requests processing.", (double)st->running},
		{"requests_deferred", "gauge", "Number of requests deferred.", waiting},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		rc |= buf_printf(out, "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %.17g\n", m[i].name, m[i].help,
				 m[i].name, m[i].type, m[i].name, m[i].v);
	return rc ? -1 : 0;
}
