/*
 * picker.h — the endpoint picker: a pipeline of filters and scorers over
 * plain views of a pool's endpoints, and its glue to the running gateway.
 *
 *   tried (hard) → healthy (hard: never DOWN) → not ejected → serves the model
 *   → region (waterfall with hysteresis, region_select.h) → under the max
 *   utilization → scored (KV headroom, queue, in flight, prefix affinity)
 *   → ordered.
 *
 Every filter, scorer, the region hysteresis and the admission policy are
 * static functions of picker.c, next to the tables that name them. A soft filter that would drop every remaining candidate
 * drops none (the Kubernetes inference extension's rule), so a pool whose
 * every endpoint is saturated still serves. The result is an ordered list,
 * best first: the candidates of the chosen region by score, then the other
 * regions in waterfall order; a retry takes the next one not tried yet.
 * Ties: the higher score, then fewer requests in flight per unit of weight,
 * then fewer picks so far per unit of weight, then configuration order.
 *
 * The pure part (picker.c) knows nothing of the gateway's structs and is
 * unit-tested on arrays of views; picker_gw.c builds the views from a gw_pool
 * and keeps per-request and per-endpoint state. A pick is a value the caller
 * owns (nginx's get/free shape): picker_pick fills the caller's pick_result,
 * picker_commit learns from that same value; nothing is cached between them.
 *
 * Regions: the gateway's own while it has capacity, else the next in
 * waterfall order (nearest first), and back when capacity returns, with
 * hysteresis so traffic does not flap. A region has capacity while one of its
 * endpoints is available (healthy, serving the model, metrics fresh) and its
 * utilization is at most max_utilization; once it has none it is spilled, and
 * taken back only under max_utilization - return_margin after region_hold.
 */
#ifndef GATEWAY_PICKER_H
#define GATEWAY_PICKER_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/config.h"

#define REGION_MAX 64 /* region ranks tracked per pool */

typedef struct region_entry {
	int spilled;       /* 1: traffic goes elsewhere */
	uint64_t since_ms; /* when spilled last changed */
	uint64_t spills_total, returns_total;
	double best_util;   /* lowest utilization of an available endpoint (last look), 2 = none */
	uint32_t available; /* endpoints available (last look) */
} region_entry;

/* The state of one pool's regions, indexed by region rank. Owner: the pool's
 * picker state. Zeroed = nothing spilled. */
typedef struct region_state {
	region_entry r[REGION_MAX];
} region_state;

enum pk_filter_bit {
	PK_F_UNTRIED = 1,
	PK_F_HEALTHY = 2,
	PK_F_NOT_EJECTED = 4,
	PK_F_MODEL = 8,
	PK_F_REGION = 16,
	PK_F_UTILIZATION = 32,
};
#define PK_F_ALL (PK_F_UNTRIED | PK_F_HEALTHY | PK_F_NOT_EJECTED | PK_F_MODEL | PK_F_REGION | PK_F_UTILIZATION)

/* Where a request's LoRA adapter stands on an endpoint (vLLM's /v1/models and
 * vllm:lora_requests_info): the picker prefers running, then a free slot,
 * then listed (the scorers decide among equals). NONE: not an adapter there. */
enum pk_adapter { PK_ADAPTER_NONE = 0,
		  PK_ADAPTER_LISTED,
		  PK_ADAPTER_SLOT,
		  PK_ADAPTER_RUNNING };
const char *picker_adapter_name(int a); /* "none", "listed", "slot", "running" */

enum pk_scorer { PK_S_KV,
		 PK_S_QUEUE,
		 PK_S_INFLIGHT,
		 PK_S_PREFIX,
		 PK_N_SCORERS };

/* One endpoint as the pipeline sees it. Inputs are filled by the caller;
 * outputs (passed, score, total) by picker_run. */
typedef struct pk_view {
	/* inputs */
	int index; /* the caller's (pool->eps) */
	const char *label;
	const char *region;
	int region_rank; /* 0 = own region, then nearest first */
	int tried;       /* this request already tried it */
	int available;   /* health not DOWN, not removed */
	int ejected;     /* passively ejected */
	int serves_model;
	double util;             /* balancing metric 0..1 (1 when stale) */
	int stale;               /* metrics too old */
	double waiting, running; /* scraped queue gauges */
	uint32_t in_flight;      /* the gateway's own count */
	uint32_t weight;         /* >= 1 */
	uint64_t picked_total;
	uint32_t prefix_blocks;              /* longest prefix of the request held there */
	int adapter;                         /* enum pk_adapter: the request's LoRA adapter there */
	uint32_t adapters_running, max_lora; /* its adapters (scraped), for the explanation */
	/* outputs */
	unsigned passed;            /* enum pk_filter_bit of the filters it passed */
	double score[PK_N_SCORERS]; /* each 0..1 */
	double total;               /* weighted sum */
	int guarded;                /* prefix affinity withheld by the load guard */
} pk_view;

/* The request and the policy, for one run. */
typedef struct pk_params {
	const gw_picker_cfg *cfg;
	uint32_t request_blocks; /* blocks of the request's prefix chain */
	uint64_t now_ms;
	uint64_t session; /* hash of the request's session key; 0: none */
} pk_params;

typedef struct pk_result {
	int order[GW_MAX_ENDPOINTS]; /* view positions, best first */
	size_t n_order;
	int region_rank;  /* of the chosen region; -1 when nothing is left */
	int spilled;      /* the chosen region is not the nearest live one */
	int saturated;    /* no region has capacity */
	unsigned relaxed; /* soft filters that would have dropped every candidate */
	int session_kept; /* the session's endpoint went first (picker_session_rank) */
} pk_result;

/* Runs the pipeline over v[0..n) (n <= GW_MAX_ENDPOINTS) with the pool's
 * region state rs (updated: hysteresis), filling each view's outputs and out. */
void picker_run(pk_view *v, size_t n, const pk_params *p, region_state *rs, pk_result *out);

/* Session affinity (rendezvous hashing): the rank of the endpoint named label
 * for a session hash; a session goes to its highest-ranked endpoint among
 * those in the chosen region that pass every filter (healthy, under the
 * utilization limit), so it stays there while that holds, and moves to the
 * next-ranked one, the same for every request of the session, when not. No
 * table: nothing of a session is stored. */
uint64_t picker_session_rank(uint64_t session, const char *label);
/* The hash of a session key (64-bit FNV-1a, then mixed); never 0. */
uint64_t picker_session_hash(const char *key, size_t len);

/* The names of the filter bits set in mask, comma-separated, into dst. */
void picker_filter_names(unsigned mask, char *dst, size_t size);
const char *picker_scorer_name(int s);

/* ---- picker_gw.c: the glue to the running gateway */
struct gw;
struct gw_pool;
struct gw_endpoint;
struct gw_call;
struct json_w;
struct gw_request;

/* The pool's region states (hysteresis), or NULL; read only. */
const region_state *picker_pool_regions(const struct gw_pool *pool);

/* What the picker keeps for one request. Owner: its gw_call (c->pk). */
typedef struct picker_req picker_req;

/* Reads what the picker needs from the client's request: the prefix chain
 * of the prompt (from rq's prompt head, the front door's one reading of the
 * body; NULL: none), the objective, the explain opt-in. rq is only read
 * during the call. Returns the state, or NULL when out of memory (the
 * request is then picked without affinity). */
picker_req *picker_req_new(struct gw_call *c, const struct gw_request *rq);
void picker_req_free(picker_req *q);
/* The objective's priority (0 without one) and name ("" without one). */
int picker_req_priority(const picker_req *q);
const char *picker_req_objective(const picker_req *q);
/* 400 when the request named an objective that does not exist (msg filled). */
int picker_req_error(const picker_req *q, const char **msg);

/* What the picker knows of the request. */
typedef struct pick_ctx {
	const uint64_t *tried; /* bitmap over pool->eps indexes (NULL: none tried) */
	const char *model;     /* NULL: any */
	uint64_t now_ms;
	struct picker_req *req; /* the request's prefix chain etc.; may be NULL */
} pick_ctx;

static inline int pick_tried(const uint64_t *bits, int i) { return (int)((bits[i >> 6] >> (i & 63)) & 1); }
static inline void pick_mark(uint64_t *bits, int i) { bits[i >> 6] |= 1ull << (i & 63); }

/* One run of the pipeline over a pool. Owner: the caller (on its stack);
 * valid while the pool it was made from is. */
typedef struct pick_result {
	pk_view views[GW_MAX_ENDPOINTS];
	size_t n_views;
	pk_result res;
	uint64_t now_ms;
	int best; /* index into pool->eps, -1 when nothing is left */
} pick_result;

/* A pick_result to fill and give back (picker_result_put); NULL when out of
 * memory. picker_result_free_all at exit. */
pick_result *picker_result_get(void);
void picker_result_put(pick_result *pr);
void picker_result_free_all(void);

/* Runs the pipeline for the request into out (the pool's region hysteresis
 * moves). Returns out->best: the index into pool->eps of the best endpoint not
 * tried yet, or -1. */
int picker_pick(struct gw_pool *pool, const pick_ctx *ctx, pick_result *out);
/* The attempt went to pool->eps[pr->best]: learn its prefix, count, remember why. */
void picker_commit(struct gw_pool *pool, const pick_ctx *ctx, const pick_result *pr);
/* 1 when an endpoint not tried yet may take the request (what picker_pick
 * would find something among). No side effect: for retry and resume. */
int picker_any_left(const struct gw_pool *pool, const pick_ctx *ctx);
/* Appends "x-infergate-pick: ...\r\n" when the request asked for it. */
void picker_explain_header(const struct gw_call *c, void *headers_buf);
/* 1 when no region of the pool has capacity now. */
int picker_pool_saturated(struct gw_pool *pool, uint64_t now_ms);
/* /status: the endpoint's scraped values, their age, filters and last scores. */
void picker_status_endpoint(struct json_w *w, const struct gw_endpoint *e, uint64_t now_ms);
/* /status: the pool's region states. */
void picker_status_pool(struct json_w *w, struct gw_pool *pool, uint64_t now_ms);
/* Per-gateway state (metrics, the tick that refreshes the autoscaling gauges). */
int picker_init(struct gw *g);
void picker_deinit(struct gw *g);
void picker_pool_free(struct gw_pool *pool);
/* Counts one scrape of e by result ("ok", "failed", "timeout", "garbage"). */
void picker_metrics_scrape(struct gw_endpoint *e, const char *result);
/* The series of that counter, to cache (NULL before picker_init). */
struct prom_series *picker_metrics_scrape_series(struct gw_endpoint *e, const char *result);
/* Counts one request shed (429) by reason ("saturated", "queue_full", "queue_timeout"). */
void picker_metrics_shed(struct gw_call *c, const char *reason);
void picker_endpoint_free(struct gw_endpoint *e);

#endif
