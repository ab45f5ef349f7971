/*
 * config.h — the gateway's configuration: what a YAML file (or the quick-start
 * flags) says, checked whole and strictly, as plain structs.
 *
 * A gw_config is a value: built by gw_config_load (a file), gw_config_parse
 * (YAML text) or gw_config_from_flags, then read-only; gw_config_free releases
 * it. The running gateway (gateway.h) is built from one and rebuilt from a new
 * one on reload. Every field is documented in docs/CONFIG.md.
 *
 * Not here: anything that runs (health checks, sockets). This file depends on
 * src/core only, so the fuzz target can link it alone.
 */
#ifndef GATEWAY_CONFIG_H
#define GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_LISTEN 8
#define GW_MAX_POOLS 64
#define GW_MAX_ENDPOINTS 1024 /* per pool: the tried bitmap of a request has this many bits */
#define GW_MAX_ROUTES 256
#define GW_MAX_MODELS 64 /* per pool */
#define GW_MAX_REGIONS 64
#define GW_NAME_LEN 128 /* pool, region, model names */
#define GW_ADDR_LEN 256 /* "host:port" */
#define GW_PATH_LEN 256
#define GW_MAX_API_KEYS 16
#define GW_KEY_LEN 256 /* API keys: 1-255 visible ASCII characters */

/* Active health checks of a pool's endpoints (HAProxy's inter/fastinter/rise/fall). */
typedef struct gw_health_cfg {
	char path[GW_PATH_LEN];    /* GET this; 2xx is a success */
	uint64_t interval_ms;      /* between checks of a steady endpoint */
	uint64_t fast_interval_ms; /* between checks while its state is changing */
	uint64_t timeout_ms;       /* a check without a full answer in time fails */
	uint32_t rise;             /* consecutive successes to go up */
	uint32_t fall;             /* consecutive failures to go down */
	int enabled;               /* 0: endpoints are always up (passive checks still run) */
} gw_health_cfg;

/* Passive detection: real traffic that fails takes an endpoint out for a while. */
typedef struct gw_passive_cfg {
	uint32_t failures;       /* consecutive failures (connect, reset, 5xx) to eject; 0 = off */
	uint64_t backoff_ms;     /* first ejection; doubles each time */
	uint64_t backoff_max_ms; /* cap of the doubling */
} gw_passive_cfg;

/* Metric scraping of the endpoints (used by the picker; parsed and kept here). */
typedef struct gw_scrape_cfg {
	char path[GW_PATH_LEN];
	uint64_t interval_ms;
	int enabled;
	uint64_t timeout_ms;      /* a scrape without a full page in time fails */
	uint64_t stale_ms;        /* values older than this count as saturated */
	char metric[GW_NAME_LEN]; /* balancing metric; "" = the KV-cache usage */
} gw_scrape_cfg;

/* The endpoint picker of a pool (picker.h, docs/CONFIG.md "picker"). */
typedef struct gw_picker_cfg {
	double max_utilization;                                         /* 0..1: above, an endpoint is full and its region spills */
	double return_margin;                                           /* a spilled region returns under max_utilization - this */
	uint64_t region_hold_ms;                                        /* ... and not before it has been spilled this long */
	double max_waiting;                                             /* queued requests above which an endpoint is full; 0 = off */
	double weight_kv, weight_queue, weight_inflight, weight_prefix; /* scorer weights */
	uint32_t prefix_block_chars;                                    /* prompt characters per hashed block */
	uint32_t prefix_max_blocks;                                     /* blocks hashed per request at most */
	uint32_t prefix_index_blocks;                                   /* LRU index per endpoint; 0 = the server's KV blocks */
	double prefix_guard;                                            /* affinity counts only at or under this utilization */
	uint32_t prefix_guard_in_flight;                                /* ... and within this many requests of the least busy; 0 = off */
	int explain;                                                    /* honour the x-infergate-explain request header */
	uint64_t retry_after_ms;                                        /* Retry-After of a 429 when the pool is saturated */
} gw_picker_cfg;

/* A named class of traffic with a priority (InferenceObjective). */
#define GW_MAX_OBJECTIVES 64
typedef struct gw_objective_cfg {
	char name[GW_NAME_LEN];
	int32_t priority;          /* < 0: shed (429) when every region of the pool is saturated */
	uint32_t queue;            /* wait for capacity, at most this many at once; 0 = shed at once */
	uint64_t queue_timeout_ms; /* longest wait before the 429 */
} gw_objective_cfg;

/* How requests are sent to a pool's endpoints. */
typedef struct gw_backend_cfg {
	uint64_t request_timeout_ms; /* whole request, all tries included */
	uint64_t idle_timeout_ms;    /* longest silence from the upstream (head or between bytes) */
	uint64_t connect_timeout_ms;
	uint32_t tries;            /* attempts per request, first included (1 = no retry) */
	double retry_budget_ratio; /* retries in progress <= min + ratio x requests in progress */
	uint32_t retry_budget_min;
	uint32_t max_idle_conns;  /* keep-alive connections kept per endpoint */
	uint32_t max_resumes;     /* continuations of a broken stream per request (docs/resume.md) */
	char api_key[GW_KEY_LEN]; /* sent as "Authorization: Bearer" instead of the client's; "" = pass the client's */
	/* backend.tls: every endpoint of the pool speaks HTTPS (an https:// address alone does too) */
	int tls;                           /* backend.tls given */
	int tls_verify;                    /* verify the server's chain and name; default 1 */
	char tls_ca_file[GW_PATH_LEN];     /* PEM CAs to trust; "" = the system store */
	char tls_server_name[GW_ADDR_LEN]; /* SNI and the name checked; "" = the endpoint's host */
	char tls_cert_file[GW_PATH_LEN];   /* client certificate (upstream mutual TLS); "" = none */
	char tls_key_file[GW_PATH_LEN];
} gw_backend_cfg;

/* How an endpoint entry's address becomes endpoints (discovery.h): as it is,
 * or re-resolved: DNS A/AAAA of "name:port", SRV of "_svc._proto.name", or
 * the EndpointSlices of the Kubernetes Service "service[.namespace]:port". */
enum gw_resolve { GW_RESOLVE_NONE = 0,
		  GW_RESOLVE_DNS,
		  GW_RESOLVE_SRV,
		  GW_RESOLVE_KUBERNETES };

/* Whose OpenAI server a pool's endpoints run (docs/resume.md): how a final
 * assistant message is continued. AUTO reads it from their metrics pages. */
enum gw_dialect { GW_DIALECT_AUTO = 0,
		  GW_DIALECT_VLLM,
		  GW_DIALECT_SGLANG,
		  GW_DIALECT_LLAMACPP,
		  GW_DIALECT_OPENAI };
extern const char *const gw_dialect_names[]; /* "auto", "vllm", ..., NULL */

typedef struct gw_endpoint_cfg {
	char address[GW_ADDR_LEN]; /* "host:port" (an "https://" or "http://" prefix is taken off) */
	int tls;                   /* written "https://host:port" */
	char region[GW_NAME_LEN];
	uint32_t weight;              /* 1..1000, default 1 */
	uint32_t line;                /* where it was declared (messages) */
	int resolve;                  /* enum gw_resolve */
	uint64_t resolve_interval_ms; /* between resolutions (dns, srv); 0 = default 5 s */
	char resolver[64];            /* DNS server "ip:port"; "" = /etc/resolv.conf */
} gw_endpoint_cfg;

typedef struct gw_pool_cfg {
	char name[GW_NAME_LEN];
	char models[GW_MAX_MODELS][GW_NAME_LEN]; /* served model names; none = any model */
	size_t n_models;
	gw_endpoint_cfg *endpoints; /* n_endpoints, owned */
	size_t n_endpoints;
	gw_health_cfg health;
	gw_passive_cfg passive;
	gw_scrape_cfg metrics;
	gw_backend_cfg backend;
	gw_picker_cfg picker;
	int resume;  /* resume broken streams on another endpoint (docs/resume.md) */
	int dialect; /* enum gw_dialect: how its servers continue a message */
} gw_pool_cfg;

/* A route: requests whose path starts with prefix (and, when model is set,
 * that name this model) go to pool. First match in order wins. */
#define GW_ROUTE_MAX_EXTRA_PATHS 8
typedef struct gw_route_cfg {
	char prefix[GW_PATH_LEN];
	/* Paths of the servers' own APIs (SGLang's /generate, llama.cpp's
	 * /completion...) the route also carries, by prefix; the model is read
	 * from a JSON body or a form when there is one. */
	char extra_paths[GW_ROUTE_MAX_EXTRA_PATHS][GW_PATH_LEN];
	size_t n_extra_paths;
	char model[GW_NAME_LEN]; /* "" = any model the pool serves */
	char pool[GW_NAME_LEN];
	int pool_index;              /* into gw_config.pools */
	char objective[GW_NAME_LEN]; /* default objective of its requests; "" = none */
	int objective_index;         /* 1 + index into gw_config.objectives; 0 = none */
} gw_route_cfg;

/* The latency from this gateway's region to another, for "nearest first". */
typedef struct gw_region_cfg {
	char name[GW_NAME_LEN];
	uint64_t latency_ms;
} gw_region_cfg;

typedef struct gw_limits_cfg {
	uint64_t max_header_bytes;
	uint64_t max_body_bytes;
	uint64_t header_timeout_ms;
	uint64_t body_timeout_ms;
	uint64_t keepalive_timeout_ms;
	uint64_t max_connections;
	uint64_t tls_handshake_timeout_ms;
} gw_limits_cfg;

/* The live dashboard (dashboard.h). Reloadable. */
typedef struct gw_dashboard_cfg {
	int enabled;          /* /dashboard and /dashboard/events answer (else 404) */
	uint32_t max_viewers; /* event streams at once; one more is a 503 */
} gw_dashboard_cfg;

/* TLS of one listen entry; cert_file "" = plaintext. */
typedef struct gw_listen_tls_cfg {
	char cert_file[GW_PATH_LEN];      /* PEM chain, leaf first */
	char key_file[GW_PATH_LEN];       /* PEM private key */
	char client_ca_file[GW_PATH_LEN]; /* "" = no client certificate asked; else mutual TLS */
	char ciphers[GW_PATH_LEN];        /* TLS 1.2 cipher list; "" = the defaults (core/tls.h) */
} gw_listen_tls_cfg;

/* A tenant (docs/CONFIG.md "tenants"): who a request is, from its API key,
 * and what it may use. Limits of 0 are off. */
#define GW_MAX_TENANTS 64
#define GW_MAX_TENANT_KEYS 8
typedef struct gw_tenant_cfg {
	char name[GW_NAME_LEN]; /* a metric label value: letters, digits, . _ - */
	char api_keys[GW_MAX_TENANT_KEYS][GW_KEY_LEN];
	size_t n_api_keys;
	double requests_per_second; /* a bucket of max(1, this) requests, refilled at this rate */
	uint64_t tokens_per_minute; /* prompt + completion tokens of the answers' usage */
	uint32_t max_in_flight;     /* requests admitted and not yet answered */
	int32_t priority;           /* added to the objective's priority (fair queuing, admission.h) */
} gw_tenant_cfg;

/* A weighted model rewrite (the inference extension's InferenceModelRewrite):
 * requests naming model go to one of the targets, by weight, with `model`
 * rewritten in the body. */
#define GW_MAX_REWRITES 64
#define GW_MAX_REWRITE_TARGETS 8
typedef struct gw_rewrite_cfg {
	char model[GW_NAME_LEN];
	char targets[GW_MAX_REWRITE_TARGETS][GW_NAME_LEN];
	uint32_t weights[GW_MAX_REWRITE_TARGETS]; /* 0..1000000; their sum > 0 */
	size_t n_targets;
} gw_rewrite_cfg;

typedef struct gw_config {
	char file[GW_PATH_LEN];   /* where it came from ("(flags)" for flags) */
	char region[GW_NAME_LEN]; /* this gateway's region */
	char listen[GW_MAX_LISTEN][GW_ADDR_LEN];
	gw_listen_tls_cfg listen_tls[GW_MAX_LISTEN]; /* per listen entry */
	size_t n_listen;
	gw_region_cfg regions[GW_MAX_REGIONS];
	size_t n_regions;
	gw_limits_cfg limits;
	uint64_t shutdown_grace_ms;   /* SIGTERM: in-flight requests get this long */
	char access_log[GW_PATH_LEN]; /* "" = off, "-" = stdout, else a file */
	int io_uring;                 /* 1 (auto): upstream socket I/O batched through io_uring when the kernel allows; 0: off */
	gw_pool_cfg *pools;           /* n_pools, owned */
	size_t n_pools;
	gw_route_cfg *routes; /* n_routes, owned; defaults when the file has none */
	size_t n_routes;
	gw_objective_cfg objectives[GW_MAX_OBJECTIVES];
	size_t n_objectives;
	char api_keys[GW_MAX_API_KEYS][GW_KEY_LEN]; /* /v1 requests need one as a Bearer token; none = open */
	size_t n_api_keys;
	gw_dashboard_cfg dashboard;
	gw_tenant_cfg *tenants; /* n_tenants, owned; none = every request is the anonymous tenant */
	size_t n_tenants;
	int fair_queuing;         /* 1 (default): admission queues serve tenants of one priority in turn */
	char session_header[64];  /* session affinity by this request header ("" = off) */
	gw_rewrite_cfg *rewrites; /* n_rewrites, owned */
	size_t n_rewrites;
} gw_config;

/* Defaults of a pool's policies (also what the quick-start flags use). */
void gw_pool_cfg_defaults(gw_pool_cfg *p);

/* Reads (at most 4 MiB) and checks a YAML file. Returns a config the caller frees, or NULL with
 * "file:line: field: what" in err. */
gw_config *gw_config_load(const char *path, char *err, size_t err_len);
/* The same from text; name stands for the file in messages. */
gw_config *gw_config_parse(const char *text, size_t len, const char *name, char *err, size_t err_len);

/* The quick start: one pool "default" serving any model with the given
 * endpoints ("host:port@region", optionally "...@region#weight"). Returns a
 * config, or NULL with the reason in err. */
gw_config *gw_config_from_flags(const char *const listen[], size_t n_listen, const char *region,
				const char *const endpoints[], size_t n_endpoints, char *err, size_t err_len);
/* The quick start's --tls-cert / --tls-key: every listen entry serves TLS
 * with them. Returns 0, or -1 with the reason in err. */
int gw_config_listen_tls(gw_config *cfg, const char *cert_file, const char *key_file, char *err, size_t err_len);

void gw_config_free(gw_config *c);

/* The pool's index, or -1. */
int gw_config_pool_index(const gw_config *c, const char *name);
/* The latency to region as configured (0 for the gateway's own), or -1 when unknown. */
int64_t gw_config_region_latency_ms(const gw_config *c, const char *region);

#endif
