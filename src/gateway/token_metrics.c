/*
 * token_metrics.c — the families of token_metrics.h and the observation of
 * one answer. The model label is bounded by a small table of the names seen
 * (strings owned here, never pointing into a configuration or a call).
 */
#include "gateway/token_metrics.h"
#include "gateway/gateway.h"
#include "gateway/tenant.h"
#include "core/util.h"

#include <string.h>

static struct {
	prom_family *ttft, *tpot, *e2e, *prompt, *completion;
	char models[TOKEN_METRICS_MAX_MODELS][GW_NAME_LEN];
	size_t n_models;
} tm;

static const double ttft_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
static const double tpot_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1};
static const double e2e_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

int token_metrics_init(gw *g)
{
	static const char *const l[] = {"model", "tenant", NULL};
	prom_registry *r = g->reg;
	tm.ttft = prom_histogram(r, "infergate_model_time_to_first_token_seconds",
				 "Streamed answers: time from the request's arrival to the first body byte of the answer, seconds.", l,
				 ttft_bounds, ARRAY_LEN(ttft_bounds));
	tm.tpot = prom_histogram(r, "infergate_model_time_per_output_token_seconds",
				 "Time per output token, seconds: streamed, (end - first byte) / (completion tokens - 1); unstreamed, "
				 "the whole time / completion tokens.",
				 l, tpot_bounds, ARRAY_LEN(tpot_bounds));
	tm.e2e = prom_histogram(r, "infergate_model_request_duration_seconds",
				"Successful answers: time from the request's arrival to the end of the answer, seconds.", l, e2e_bounds,
				ARRAY_LEN(e2e_bounds));
	tm.prompt = prom_counter(r, "infergate_model_prompt_tokens_total",
				 "Prompt tokens of the answers (their usage), by model and tenant.", l);
	tm.completion = prom_counter(r, "infergate_model_completion_tokens_total",
				     "Completion tokens of the answers (their usage; a stream without usage: its chunks), by model and tenant.", l);
	return tm.ttft && tm.tpot && tm.e2e && tm.prompt && tm.completion ? 0 : -1;
}

/* The label value for model: itself while the table has room, else "other". */
static const char *model_label(const char *model)
{
	for (size_t i = 0; i < tm.n_models; i++)
		if (!strcmp(tm.models[i], model)) return tm.models[i];
	if (tm.n_models == TOKEN_METRICS_MAX_MODELS) return "other";
	str_copy(tm.models[tm.n_models], model, GW_NAME_LEN);
	return tm.models[tm.n_models++];
}

uint64_t token_metrics_observe(gw *g, const gw_call *c, uint64_t now_ms)
{
	const usage_scan *u = &c->usage;
	uint64_t prompt = u->prompt_tokens > 0 ? (uint64_t)u->prompt_tokens : 0;
	uint64_t completion = u->completion_tokens >= 0 ? (uint64_t)u->completion_tokens
			      : c->sse                  ? u->choice_chunks
							: 0;
	if (c->status < 200 || c->status >= 300 || !tm.ttft) return prompt + completion;
	const char *lv[] = {model_label(c->model), c->tenant ? c->tenant->name : "anonymous"};
	double e2e = (double)(now_ms - c->start_ms) / 1000.0;
	prom_observe(prom_series_get(tm.e2e, lv), e2e);
	if (c->sse && c->first_token_ms) {
		prom_observe(prom_series_get(tm.ttft, lv), (double)(c->first_token_ms - c->start_ms) / 1000.0);
		if (completion > 1)
			prom_observe(prom_series_get(tm.tpot, lv),
				     (double)(now_ms - c->first_token_ms) / 1000.0 / (double)(completion - 1));
	} else if (!c->sse && completion) {
		prom_observe(prom_series_get(tm.tpot, lv), e2e / (double)completion);
	}
	prom_add(prom_series_get(tm.prompt, lv), (double)prompt);
	prom_add(prom_series_get(tm.completion, lv), (double)completion);
	return prompt + completion;
}

void token_metrics_free(gw *g)
{
	memset(&tm, 0, sizeof(tm));
}
