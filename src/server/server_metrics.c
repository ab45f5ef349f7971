/*
 * server_metrics.c — /metrics of infergate-server: vLLM's families
 * (core/vllm_metrics.h, with time_per_output_token and the "error" finish
 * reason), then a few infergate: series that show the batching itself (steps,
 * sequences per step). Gauges and counters are refreshed from the scheduler's
 * stats each time the text is written; latency histograms are fed by the
 * scheduler thread as tokens come out (prom.h is thread-safe).
 */
#include "server/server.h"

#include <string.h>
#include "core/util.h"

static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

/* The label vLLM uses for sched_finish 1.. (SCHED_STOP, LENGTH, ABORT, ERROR). */
static const char *const finish_label[] = {"stop", "length", "abort", "error"};

static void collect(prom_registry *reg, void *arg)
{
	server *s = arg;
	server_metrics *m = &s->m;
	if (!s->sc) return;
	sched_stats st;
	sched_get_stats(s->sc, &st);
	vllm_metrics_totals t = {
		.running = st.running,
		.waiting = st.waiting,
		.kv_usage = st.kv_usage,
		.prefix_queries_total = st.prefix_queries_total,
		.prefix_hits_total = st.prefix_hits_total,
		.prompt_tokens_total = st.prompt_tokens_total,
		.generation_tokens_total = st.generation_tokens_total,
		.preemptions_total = st.preemptions_total,
	};
	for (int i = 0; i < 4; i++) t.finished_total[i] = st.finished_total[i + 1];
	vllm_metrics_update(&m->v, &t);
	prom_add_total(m->steps, st.steps_total, &m->exported.steps_total);
	prom_add_total(m->step_seqs, st.step_seqs_total, &m->exported.step_seqs_total);
	prom_add_total(m->step_tokens, st.step_tokens_total, &m->exported.step_tokens_total);
	for (int i = 0; i < SCHED_PHASES; i++) {
		prom_add(m->phase[i], (double)(st.phase_ns[i] - m->exported.phase_ns[i]) / 1e9);
		m->exported.phase_ns[i] = st.phase_ns[i];
	}
	/* written on the loop thread, as this is */
	prom_add(m->output_seconds, (double)(m->output_ns_total - m->output_ns_exported) / 1e9);
	m->output_ns_exported = m->output_ns_total;
}

int server_metrics_init(server *s)
{
	static const char *const lab[] = {"engine", "model_name", NULL};
	server_metrics *m = &s->m;
	const char *const vals[] = {"0", s->o.served_name};
	const vllm_metrics_opts o = {.model_name = s->o.served_name, .finish_reasons = finish_label, .n_finish_reasons = ARRAY_LEN(finish_label), .with_tpot = 1, .cache_info_cpu_blocks = 1};
	memset(m, 0, sizeof *m);
	m->reg = prom_registry_new();
	if (!m->reg) return -1;
	prom_registry *r = m->reg;
	if (vllm_metrics_register(&m->v, r, &o) < 0) return -1;
	m->steps = prom_series_get(prom_counter(r, "infergate:engine_steps_total",
						"Engine steps run (one forward pass over the whole batch).", lab),
				   vals);
	m->step_seqs = prom_series_get(prom_counter(r, "infergate:engine_step_sequences_total",
						    "Sequences advanced, summed over steps.", lab),
				       vals);
	m->step_tokens = prom_series_get(prom_counter(r, "infergate:engine_step_tokens_total",
						      "Tokens through the model, summed over steps (prefill and decode).", lab),
					 vals);
	m->batch_size = prom_series_get(prom_histogram(r, "infergate:engine_batch_size",
						       "Sequences per engine step.", lab, batch_buckets, ARRAY_LEN(batch_buckets)),
					vals);
	static const char *const plab[] = {"engine", "model_name", "phase", NULL};
	prom_family *pf = prom_counter(r, "infergate:step_phase_seconds_total",
				       "Time of the scheduler thread by phase of its steps (schedule, prefill, decode, "
				       "output_projection, sample, publish).",
				       plab);
	for (int i = 0; i < SCHED_PHASES; i++) {
		const char *const pv[] = {"0", s->o.served_name, sched_phase_name[i]};
		if (!(m->phase[i] = prom_series_get(pf, pv))) return -1;
	}
	m->output_seconds = prom_series_get(prom_counter(r, "infergate:server_output_seconds_total",
							 "Time of the event loop turning new tokens into response bytes (detokenization, JSON, writes).", lab),
					    vals);
	prom_registry_on_write(r, collect, s);
	return 0;
}

void server_metrics_loaded(server *s)
{
	sched_stats st;
	sched_get_stats(s->sc, &st);
	vllm_metrics_cache_info(&s->m.v, 16, s->o.prefix_caching, (uint64_t)st.kv_total_blocks);
}

static void obs_queue(void *arg, double v) { prom_observe(((server *)arg)->m.v.queue, v); }
static void obs_ttft(void *arg, double v) { prom_observe(((server *)arg)->m.v.ttft, v); }
static void obs_itl(void *arg, double v) { vllm_metrics_observe_itl(&((server *)arg)->m.v, v); }
static void obs_finished(void *arg, double e2e, sched_finish why, int prompt, int gen)
{
	prom_observe(((server *)arg)->m.v.e2e, e2e);
}
static void obs_step(void *arg, int seqs, int tokens) { prom_observe(((server *)arg)->m.batch_size, seqs); }

void server_metrics_observer(server *s, sched_observer *o)
{
	*o = (sched_observer){obs_queue, obs_ttft, obs_itl, obs_finished, obs_step, s};
}

void server_metrics_deinit(server *s)
{
	prom_registry_free(s->m.reg);
	s->m.reg = NULL;
}
