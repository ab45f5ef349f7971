/*
 * token_metrics.h — latency and token metrics by model and tenant, as the
 * Gateway API inference extension's endpoint picker exports them, measured
 * at the gateway on every answer (docs/METRICS.md):
 *   infergate_model_time_to_first_token_seconds     streamed answers: arrival to the first body byte
 *   infergate_model_time_per_output_token_seconds   streamed: (end - first byte) / (completion - 1);
 *                                                   unstreamed: whole time / completion tokens
 *   infergate_model_request_duration_seconds        arrival to the end of the answer
 *   infergate_model_prompt_tokens_total, infergate_model_completion_tokens_total
 * Token counts come from the answer's usage (usage.h); a stream without usage
 * counts its chunks as completion tokens and leaves the prompt uncounted.
 *
 * Cardinality: tenants come from the configuration; models are those the
 * requests named, the first TOKEN_METRICS_MAX_MODELS of them, later ones
 * under model="other".
 */
#ifndef GATEWAY_TOKEN_METRICS_H
#define GATEWAY_TOKEN_METRICS_H

#include <stdint.h>

#define TOKEN_METRICS_MAX_MODELS 64

struct gw;
struct gw_call;

int token_metrics_init(struct gw *g);
/* One answered call (status 2xx) at now_ms: observed and counted; returns the
 * tokens it used (prompt + completion, as counted). */
uint64_t token_metrics_observe(struct gw *g, const struct gw_call *c, uint64_t now_ms);
void token_metrics_free(struct gw *g);

#endif
