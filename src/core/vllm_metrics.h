/*
 * vllm_metrics.h — the metric families a vLLM (V1 engine) server exposes, with
 * vLLM's names, help texts, labels (engine, model_name) and histogram buckets,
 * registered on a prom.h registry. Both infergate-sim and infergate-server
 * serve these, so the gateway's scraper and any dashboard built for vLLM read
 * either the same way.
 *
 * What it is not: a source of numbers. The program feeds the histograms as
 * tokens come out (prom_observe on the series below) and hands its running
 * totals to vllm_metrics_update when the text is about to be written. Series of
 * the program's own (infergate:*) go on the same registry after these.
 */
#ifndef CORE_VLLM_METRICS_H
#define CORE_VLLM_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "core/prom.h"

#define VLLM_MAX_FINISH 8 /* finished_reason label values */

typedef struct vllm_metrics_opts {
	const char *model_name; /* model_name label; must outlive the registry */
	/* finished_reason values of vllm:request_success_total, one series each, in
	 * this order (e.g. "stop", "length", "abort"). At most VLLM_MAX_FINISH. */
	const char *const *finish_reasons;
	size_t n_finish_reasons;
	int with_tpot;             /* also vllm:time_per_output_token_seconds */
	int cache_info_cpu_blocks; /* cache_config_info has num_cpu_blocks too */
} vllm_metrics_opts;

/* The totals a program keeps, read when metrics are written. */
typedef struct vllm_metrics_totals {
	double running, waiting;                          /* requests now */
	double kv_usage;                                  /* 0..1 */
	uint64_t prefix_queries_total, prefix_hits_total; /* tokens */
	uint64_t prompt_tokens_total, generation_tokens_total;
	uint64_t preemptions_total;
	uint64_t finished_total[VLLM_MAX_FINISH]; /* by opts.finish_reasons */
} vllm_metrics_totals;

/* The series of one engine. Owner: the program's metrics; the series belong
 * to the registry and die with it. */
typedef struct vllm_metrics {
	prom_series *running, *waiting, *kv_usage;               /* gauges */
	prom_series *prefix_queries, *prefix_hits, *preemptions; /* counters */
	prom_series *prompt_tokens, *generation_tokens;
	prom_series *success[VLLM_MAX_FINISH];
	prom_series *ttft, *itl, *tpot, *e2e, *queue; /* histograms, seconds */
	prom_family *cache_info;                      /* series set by vllm_metrics_cache_info */
	int cache_info_cpu_blocks;
	size_t n_finish;
	vllm_metrics_totals exported; /* counter totals already added */
} vllm_metrics;

/* Registers every family on reg, in vLLM's order, and creates the series of
 * engine "0" and o->model_name. tpot is NULL without o->with_tpot. Returns 0, or
 * -1 on a bad option (too many finish reasons). */
int vllm_metrics_register(vllm_metrics *m, prom_registry *reg, const vllm_metrics_opts *o);

/* Sets the gauges and adds to the counters what t's totals grew since the
 * last call (prom_add_total). */
void vllm_metrics_update(vllm_metrics *m, const vllm_metrics_totals *t);

/* vllm:cache_config_info{block_size,cache_dtype="auto",enable_prefix_caching,
 * engine="0"[,num_cpu_blocks="0"],num_gpu_blocks} = 1. */
void vllm_metrics_cache_info(vllm_metrics *m, int block_size, int prefix_caching, uint64_t num_gpu_blocks);

/* One gap between two tokens of a request: inter-token latency, and time per
 * output token when registered (vLLM observes the same value in both). */
void vllm_metrics_observe_itl(vllm_metrics *m, double seconds);

#endif
