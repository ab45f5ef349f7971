/*
 * sim_lora.h — LoRA adapters as vLLM serves them, simulated: a fixed list of
 * adapter names on top of the base model, at most max_loras of them loaded
 * at once (vLLM's --max-loras), a load delay added to the first token of a
 * request whose adapter is not loaded (the least recently used idle one is
 * evicted to make room), and what vLLM shows of them:
 *   /v1/models  one card per adapter with "parent": the base model and
 *               "root": its path
 *   /metrics    vllm:lora_requests_info{max_lora, running_lora_adapters,
 *               waiting_lora_adapters} = the time of the reading (seconds)
 * Simplification: a request never waits for a slot (when every loaded
 * adapter is busy, the least recently used is replaced anyway), so
 * waiting_lora_adapters is always empty.
 */
#ifndef SIM_LORA_H
#define SIM_LORA_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/json.h"

#define SIM_MAX_LORAS 64

typedef struct sim_lora {
	const char *names[SIM_MAX_LORAS]; /* from the command line (not owned) */
	size_t n;
	uint32_t max_loras;              /* slots; vLLM's default 1 */
	double load_ms;                  /* added to the first token when the adapter is not loaded */
	uint32_t running[SIM_MAX_LORAS]; /* requests in flight per adapter */
	int loaded[SIM_MAX_LORAS];
	uint64_t used_seq[SIM_MAX_LORAS];
	uint64_t seq;
	uint64_t loads_total;
} sim_lora;

/* Parses "a,b,c" (names kept pointing into s, which is cut at the commas).
 * 0, or -1 with err. */
int sim_lora_parse(sim_lora *l, char *s, char *err, size_t err_len);
/* The adapter named model, as a stable string, or NULL. */
const char *sim_lora_find(const sim_lora *l, const char *model);
/* A request for model starts: its adapter's index (loaded now if it was not;
 * *load_ms the delay that costs), or -1 when model is not an adapter. */
int sim_lora_begin(sim_lora *l, const char *model, double *load_ms);
/* The request of adapter i (from sim_lora_begin; -1: none) ended. */
void sim_lora_end(sim_lora *l, int i);
/* The adapters' model cards, inside the data array of /v1/models. */
void sim_lora_write_cards(const sim_lora *l, json_w *w, const char *base, int64_t created, int64_t max_model_len);
/* The vllm:lora_requests_info family, appended in Prometheus text. */
void sim_lora_write_metric(const sim_lora *l, buf *out, double now_s);

#endif
