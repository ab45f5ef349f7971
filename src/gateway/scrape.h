/*
 * scrape.h — the load of each endpoint, read from its Prometheus /metrics page.
 *
 * Two halves:
 *   - scrape_parse (scrape_parse.c): a page of text into scrape_values, through
 *     core's prom_parse. Pure. Recognised without configuration:
 *       vLLM      vllm:kv_cache_usage_perc (older vllm:gpu_cache_usage_perc),
 *                 vllm:num_requests_waiting, vllm:num_requests_running,
 *                 vllm:cache_config_info{block_size, num_gpu_blocks},
 *                 vllm:generation_tokens_total (throughput only: never a load metric)
 *       SGLang    sglang:token_usage, sglang:num_queue_reqs, sglang:num_running_reqs
 *       llama.cpp llamacpp:kv_cache_usage_ratio, llamacpp:requests_deferred,
 *                 llamacpp:requests_processing
 *     plus one configured balancing metric (any gauge name; "kv-cache" or its
 *     alias "tpu-cache" mean the KV usage above). Series of one name are summed
 *     (several engines or models on one server), except fractions (KV usage,
 *     the balancing metric), which are averaged.
 *   - the scraper (scrape.c): a timer per endpoint on the gateway's loop GETs
 *     the page every interval with a timeout; a success fills the endpoint's
 *     load; a failure, a timeout, a bad status or a page that is not Prometheus
 *     text (or has none of the load metrics) is counted and logged
 *     (rate-limited), and leaves the old values to age: once older than the
 *     staleness limit the endpoint counts as saturated (scrape_util).
 *
 * Not here: what the picker makes of the values (picker.h).
 */
#ifndef GATEWAY_SCRAPE_H
#define GATEWAY_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#define SCRAPE_MAX_BODY_BYTES (4u << 20) /* a page larger than this is garbage */

enum scrape_has {
	SCRAPE_HAS_KV = 1,
	SCRAPE_HAS_WAITING = 2,
	SCRAPE_HAS_RUNNING = 4,
	SCRAPE_HAS_METRIC = 8, /* the configured balancing metric */
	SCRAPE_HAS_CACHE_CONFIG = 16,
	SCRAPE_HAS_GEN_TOKENS = 32, /* a throughput counter, not a load metric */
	SCRAPE_HAS_LORA = 64,       /* vllm:lora_requests_info */
};

#define SCRAPE_LORA_BYTES 512 /* running adapters' names kept (longer lists are cut at a comma) */

/* What one page said. Values not found are 0 with their bit clear in has. */
typedef struct scrape_values {
	double kv_usage;                      /* 0..1, fraction of the KV cache in use */
	double waiting;                       /* requests queued */
	double running;                       /* requests in the running batch */
	double metric;                        /* the balancing metric, clamped to 0..1 */
	uint32_t block_size;                  /* tokens per KV block (cache_config_info) */
	uint32_t num_gpu_blocks;              /* KV blocks (cache_config_info) */
	double generation_tokens_total;       /* vllm:generation_tokens_total, summed (the dashboard's tokens/s) */
	uint32_t max_lora;                    /* adapter slots (lora_requests_info's max_lora) */
	char lora_running[SCRAPE_LORA_BYTES]; /* running_lora_adapters: "a,b" (the newest series) */
	unsigned has;                         /* enum scrape_has bits */
	const char *dialect;                  /* "vllm", "sglang", "llamacpp", "custom" or "" */
} scrape_values;

/* Parses len bytes of text. metric is the configured balancing metric name,
 * or NULL/"" (or "kv-cache"/"tpu-cache") for the KV usage. Returns 0, or -1
 * with the reason in err: not Prometheus text, or none of the recognised load
 * metrics (nor the configured one) on the page. */
int scrape_parse(const char *text, size_t len, const char *metric, scrape_values *out, char *err, size_t err_len);

/* The same, for a page that comes in pieces: begin, feed each piece as it
 * arrives (nothing of it is kept but a line cut at its end), end. A failure
 * is sticky: feed returns -1 from then on and end gives the reason. Owner of
 * a parser: whoever made it (scrape_parser_new/free); reused page after page
 * without allocating (its carry buffer keeps its storage). metric must stay
 * valid until end. */
typedef struct scrape_parser scrape_parser;
scrape_parser *scrape_parser_new(void);
void scrape_parser_free(scrape_parser *sp);
void scrape_parser_begin(scrape_parser *sp, const char *metric);
int scrape_parser_feed(scrape_parser *sp, const char *data, size_t len);
int scrape_parser_end(scrape_parser *sp, scrape_values *out, char *err, size_t err_len);

/* 1 when metric names the KV usage rather than a gauge of its own. */
int scrape_metric_is_kv(const char *metric);

/* ---- the scraper (scrape.c): runs on the gateway's loop */
struct gw_endpoint;
struct gw_scrape_cfg;

/* Per-endpoint scraping state. Owner: its endpoint (e->scrape). */
typedef struct scrape_state scrape_state;

/* Starts, restarts (new settings) or stops (disabled) scraping of e with the
 * pool's settings. Returns 0, or -1 when out of memory (then e is never
 * scraped and counts as unknown: not saturated). */
int scrape_apply(struct gw_endpoint *e, const struct gw_scrape_cfg *cfg);
/* The endpoint's health came back up: a scrape backed off while it was down
 * runs now, and the interval's pace resumes. */
void scrape_wake(struct gw_endpoint *e);
/* Stops scraping and frees the state (the endpoint is going away). */
void scrape_free(struct gw_endpoint *e);

/* The endpoint's utilization for the picker: the balancing metric 0..1; 1
 * (saturated) when the last good scrape is older than the staleness limit;
 * 0 when scraping is off or has not had its first chance yet. *stale is set
 * to 1 in the stale case. */
double scrape_util(const struct gw_endpoint *e, uint64_t now_ms, int *stale);
/* Age of the last good scrape in ms, or -1 when there was none. */
int64_t scrape_age_ms(const struct gw_endpoint *e, uint64_t now_ms);
/* The last good values, or NULL when there are none. */
const scrape_values *scrape_last(const struct gw_endpoint *e);
/* Counters and the last error, for /status. */
typedef struct scrape_stats {
	uint64_t scrapes_total, failures_total, timeouts_total, garbage_total;
	uint64_t last_duration_us;
	const char *last_error; /* "" when the last scrape was good */
	uint64_t interval_ms, stale_ms;
	int enabled;
} scrape_stats;
void scrape_get_stats(const struct gw_endpoint *e, scrape_stats *out);

#endif
