/*
 * gateway.h — the running gateway's shared types: the process, its pools of
 * endpoints across regions, and the requests being proxied. Types only: each
 * file's functions are in the header of the same name.
 *
 *   main.c        flags, boot, signals (SIGTERM drain, SIGHUP reload)
 *   config.c      the configuration (config.h)
 *   pool.c        pools and endpoints built from a config; reload keeps what stays (pool.h)
 *   health.c      active checks and passive detection; endpoint state changes (health.h)
 *   picker.c      which endpoint serves a request (picker.h; glue picker_gw.c)
 *   proxy.c       one client request to an upstream and back, with retries (proxy.h)
 *   retry.c       may a failed attempt go elsewhere (retry.h: dead vs busy, budget)
 *   front.c       the front door: routes, admin paths, the JSON body (front.h)
 *   metrics.c     the gateway's own Prometheus metrics, docs/METRICS.md (metrics.h)
 *   access_log.c  one JSON line per request (access_log.h)
 *
 * Ownership: one struct gw per process, on one event loop thread. Pools and
 * endpoints are reference counted: the current set is gw.pools; a request holds
 * its pool (which holds its endpoints) until it ends, so a reload never frees
 * what a request in flight still uses.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stdio.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/ev.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/prom.h"
#include "gateway/config.h"
#include "gateway/request.h"
#include "gateway/usage.h"

typedef struct gw gw;
typedef struct gw_pool gw_pool;
typedef struct gw_endpoint gw_endpoint;
typedef struct gw_call gw_call;

/* Health as the active checks see it. UNKNOWN: not checked yet (serves). */
enum gw_health { GW_HEALTH_UNKNOWN = 0,
		 GW_HEALTH_UP,
		 GW_HEALTH_DOWN };

/* A warning about endpoint e that can repeat while it is failing. */
#define GW_EP_LOG_INTERVAL_MS 10000
#define GW_EP_LOG_BURST 3
#define gw_endpoint_log(e, level, ...) log_limited(&(e)->log_rl, GW_EP_LOG_INTERVAL_MS, GW_EP_LOG_BURST, level, __VA_ARGS__)

/* One model server. Owner: the pools that list it (refs). Grouped by concern,
 * as nginx's peer struct. */
struct gw_endpoint {
	/* identity */
	char address[GW_ADDR_LEN];
	char region[GW_NAME_LEN];
	char pool_name[GW_NAME_LEN];
	char label[GW_ADDR_LEN + 8]; /* address, as metrics and headers show it */
	uint32_t weight;
	int region_rank; /* 0 = the gateway's own region; then nearest first */
	int refs;
	int removed; /* left the configuration: drains, then freed */
	gw *g;
	hc_pool *conns; /* keep-alive connections to it */

	/* active health (health.c) */
	int state;                /* enum gw_health */
	uint32_t health;          /* HAProxy's counter, 0..rise+fall-1; up when >= rise */
	gw_health_cfg hc;         /* the pool's check policy */
	char api_key[GW_KEY_LEN]; /* the pool's backend.api_key, for GET /v1/models */
	uint64_t check_timer;
	hc_req *check; /* the check in flight */
	uint64_t check_started_ms;
	char last_check[96]; /* "ok 200", "connect_refused", ... */
	uint64_t checks_total, checks_failed_total, state_changes_total;
	uint64_t state_since_ms;

	/* passive detection (health.c) */
	gw_passive_cfg pc;
	uint32_t consecutive_failures;
	uint32_t ejections;        /* in a row; the back-off doubles with each */
	uint64_t ejected_until_ms; /* 0 = not ejected */
	uint64_t ejections_total;

	/* traffic (proxy.c, picker_gw.c) */
	uint32_t in_flight;
	gw_call *calls;        /* attempts in flight on it (gw_call.ep_next), for proxy_endpoint_down */
	uint64_t picked_total; /* tie-break: the least used wins */
	uint64_t requests_total, failures_total;

	/* models learned from its GET /v1/models (pools without a models list) */
	int learn_models;
	char (*models)[GW_NAME_LEN];
	size_t n_models;
	uint64_t adapters; /* bit i: models[i] is a LoRA adapter (listed with a parent) */
	uint64_t models_fetched_ms;
	hc_req *models_req;
	buf models_body; /* its answer so far, capped */

	/* its repeated warnings (scrapes, upstream errors, /v1/models): at most
	 * GW_EP_LOG_BURST lines per GW_EP_LOG_INTERVAL_MS, the rest counted */
	log_rl log_rl;

	/* metrics (metrics.c): cached series */
	prom_series *m_up, *m_ejected, *m_in_flight;

	/* the picker (scrape.h, picker.h): its scraper and its prefix index */
	struct scrape_state *scrape;
	struct picker_ep *pk;
};

/* A pool: its policy and endpoints, immutable once built (a reload builds a
 * new one). Owner: gw.pools and every request that uses it (refs). */
struct gw_pool {
	gw_pool_cfg cfg;   /* endpoints array not owned (NULL here) */
	gw_endpoint **eps; /* n_eps, each holding one ref */
	size_t n_eps;
	int refs;
	/* retry budget (Envoy): requests and retries in progress */
	uint32_t active_requests;
	uint32_t active_retries;
	struct picker_pool *pk; /* region states of the picker (picker_gw.c) */
	gw *g;
};

/* One client request being proxied. Owner: proxy.c (recycled through a free
 * list). Fields grouped: client side, upstream side, bookkeeping. */
struct gw_call {
	gw *g;
	httpd_req *r;     /* NULL once the client left or was answered */
	gw_pool *pool;    /* ref held */
	const char *body; /* the client's, alive while r is */
	size_t body_len;
	char model[GW_NAME_LEN];
	int stream; /* "stream": true */
	char path[GW_PATH_LEN];
	char client[NET_ADDR_STRLEN];
	buf up_headers;   /* request headers for the upstream */
	buf resp_headers; /* response headers for the client */

	gw_endpoint *ep;            /* this attempt's endpoint (ref held) */
	gw_call *ep_next, *ep_prev; /* in ep->calls while ep is set */
	hc_req *up;                 /* this attempt */
	uint64_t tried[GW_MAX_ENDPOINTS / 64];
	uint32_t tries;
	int in_retry; /* counted in pool->active_retries */
	int discard;  /* a retryable answer being swallowed */
	int seek;     /* a stored object: a 404 moves on to an endpoint not tried yet */
	int started;  /* response head went to the client */
	int sse;      /* the response is text/event-stream */
	int paused;   /* upstream paused for client backpressure */
	int status;   /* what the client got (499: left first) */
	int last_up_status;
	int last_err;
	int served_remote;
	int client_gone;
	int broken;   /* the upstream's stream broke after the head went out */
	char tail[2]; /* last two body bytes sent (SSE event boundary) */
	uint64_t start_ms, first_byte_ms, deadline_ms;
	uint64_t bytes_out;
	double start_wall_s;
	gw_call *next_free;
	struct picker_req *pk;   /* prefix chain, objective, explain (picker_gw.c) */
	struct resume_state *rs; /* a resumable stream's state (resume.h); NULL otherwise */
	uint32_t resumes;        /* continuations sent after the stream broke */
	/* the tenant (tenant.h) and what the answer used (token_metrics.h) */
	struct tenant_state *tenant; /* ref held; never NULL once proxy_start ran */
	int tenant_taken;            /* its limits took this request: settled at the end */
	const char *tenant_limit;    /* the limit that answered 429 (tenant_limit_name); NULL: none */
	uint64_t reserve_tokens;     /* what the token bucket reserved for it */
	uint64_t queued_ms;          /* time spent in an admission queue */
	uint64_t first_token_ms;     /* the first body byte of the answer (0: none yet) */
	usage_scan usage;            /* the answer's token counts, read as it passes */
	buf body_rewritten;          /* the client's body with `model` rewritten (rewrite.h); body points here then */
};

/* The process. */
struct gw {
	ev_loop *loop;
	httpd *httpd;
	gw_config *cfg;             /* current configuration, owned */
	char cfg_path[GW_PATH_LEN]; /* "" when made from flags */
	gw_pool **pools;            /* cfg->n_pools, each one ref */
	size_t n_pools;
	gw_endpoint **all_eps; /* every live endpoint, removed ones until freed */
	size_t n_all, cap_all;
	gw_call *free_calls;
	size_t n_free_calls;
	uint64_t admission_timer; /* proxy.c serves the admission queues while they hold a request */
	size_t in_flight;
	int draining;
	uint64_t drain_deadline_ms;
	/* metrics */
	prom_registry *reg;
	struct gw_metrics *m;
	/* access log */
	FILE *access_log;
	int access_log_owned;
	buf log_line;
	buf scratch; /* admin answers */
	uint64_t reloads_total, reload_failures_total;
	struct gw_discovery *discovery; /* entries with resolve: (discovery_pools.c) */
	struct picker_gw *pk;           /* the picker's metrics and tick (picker_gw.c) */
	gw_request req;                 /* the front door's request description, reused (one loop thread) */
	void *response_ids;             /* stored responses' pools (pool.c), allocated on first use */
};

#endif
