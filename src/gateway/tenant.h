/*
 * tenant.h — who a request is (its API key names a tenant) and what that
 * tenant may still use: requests per second, tokens per minute, requests in
 * flight. Over a limit the request gets 429 with Retry-After before anything
 * reaches a backend (admission.c asks, proxy.c answers).
 *
 * The limits are pure arithmetic on a tenant_state (tenant_take,
 * tenant_settle), unit-tested without sockets. Tokens per minute is a bucket
 * of tokens_per_minute refilled continuously: a request is admitted while the
 * balance is positive and reserves its estimate (the prompt's bytes / 4 plus
 * its max_tokens); the answer's usage settles it (the estimate given back,
 * the real count taken). The balance may go below zero by what the requests
 * in flight used beyond their estimate (one long stream overshoots by at
 * most itself); then everyone of the tenant waits until it refills.
 *
 * Ownership: a tenant_state is reference counted: the table (one per
 * process, rebuilt by tenant_apply on each configuration) holds one ref,
 * every call of the tenant another. A reload keeps a tenant's state (its
 * buckets, its in-flight count, its metrics) by name and copies the new
 * limits into it; nothing here points into a gw_config, which a reload
 * frees. Keyless requests (no tenants, or the anonymous api_keys) are the
 * tenant "anonymous", which has no limits.
 *
 * Not here: fair queuing between tenants (admission.c), counting tokens in
 * an answer (usage.h).
 */
#ifndef GATEWAY_TENANT_H
#define GATEWAY_TENANT_H

#include <stddef.h>
#include <stdint.h>
#include "core/prom.h"
#include "gateway/config.h"

typedef struct tenant_state {
	char name[GW_NAME_LEN]; /* "anonymous" for keyless requests */
	int refs;
	uint32_t id; /* unique in the process (fair queuing's key) */
	/* limits, copied from the configuration (0 = off) */
	double requests_per_second;
	uint64_t tokens_per_minute;
	uint32_t max_in_flight;
	int32_t priority;
	/* state */
	double request_level; /* requests-per-second bucket: requests available now */
	double token_level;   /* tokens-per-minute bucket: may be negative */
	uint64_t refilled_ms; /* both buckets are refilled up to this time */
	uint32_t in_flight;
	uint64_t served_seq; /* admission's turn counter when the tenant was last served */
	/* requests ended (answered or given up) since the state was made, read
	 * by the dashboard once a second; never reset */
	uint64_t ended_total;
	uint64_t errors_total; /* of those, answered 5xx */
	uint64_t shed_total;   /* answered 429: its own limits, or its objective's */
	uint64_t tokens_total; /* prompt + completion tokens of their answers (usage) */
	/* metrics (cached series; NULL before tenant_metrics_init) */
	prom_series *m_requests, *m_prompt, *m_completion, *m_in_flight, *m_queue;
	prom_series *m_limited[3];
} tenant_state;

enum tenant_limit { TENANT_OK = -1,
		    TENANT_RPS = 0,
		    TENANT_TPM,
		    TENANT_IN_FLIGHT };
const char *tenant_limit_name(int limit); /* "requests_per_second", ... */

/* Sets t's limits from tc (or none when tc is NULL), keeping its state;
 * buckets start full. */
void tenant_set_limits(tenant_state *t, const gw_tenant_cfg *tc, uint64_t now_ms);
/* Takes one request reserving reserve_tokens at now_ms: TENANT_OK (its
 * request, its reservation and its in-flight place taken), or the limit hit
 * with *retry_after_ms when it frees (at least 1 ms; nothing taken). */
int tenant_take(tenant_state *t, uint64_t now_ms, uint64_t reserve_tokens, uint64_t *retry_after_ms);
/* A taken request ended: its in-flight place given back and its
 * reservation replaced by used_tokens. */
void tenant_settle(tenant_state *t, uint64_t now_ms, uint64_t reserve_tokens, uint64_t used_tokens);

/* ---- the process's table (tenant.c), on the gateway's loop */
struct gw;
struct httpd_req;
/* Families of the per-tenant metrics (at boot, after gw_metrics_init). */
int tenant_metrics_init(struct gw *g);
/* Builds the table from cfg (states kept by name). Returns 0, or -1 (out of
 * memory; the table is as it was). */
int tenant_apply(struct gw *g, const gw_config *cfg, uint64_t now_ms);
/* The tenant of r by its Bearer key (keys compared in constant time), with a
 * ref for the caller: NULL when the configuration asks for a key and r has
 * none that is known (answer 401). */
tenant_state *tenant_identify(struct gw *g, struct httpd_req *r);
void tenant_ref(tenant_state *t);
void tenant_unref(tenant_state *t);
/* Counters of one request's end (metrics). */
void tenant_count_limited(tenant_state *t, int limit);
/* One request of t ended with HTTP status (0: no answer) and tokens used. */
void tenant_count_end(tenant_state *t, int status, uint64_t tokens);
/* The table as it stands: 1 + the configured tenants; tenant_at(0) is the
 * anonymous tenant, then the configured ones in their file's order (NULL past
 * the end). Borrowed: valid until the next tenant_apply. */
size_t tenant_table_size(void);
tenant_state *tenant_at(size_t i);
void tenant_free_all(struct gw *g);
/* /status: "tenants": each tenant's limits and where its buckets stand at now_ms. */
struct json_w;
void tenant_status(struct json_w *w, uint64_t now_ms);

#endif
