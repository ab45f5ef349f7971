/*
 * dashboard.h — the live dashboard: GET /dashboard serves one self-contained
 * HTML page (CSS and JavaScript compiled into the binary, nothing fetched from
 * elsewhere); GET /dashboard/events is the Server-Sent Events stream it reads:
 *
 *   event: snapshot   on connect: the state, the last minutes of samples, the
 *                     recent events (events.h)
 *   event: sample     every second: the state and one new sample per pool
 *   event: state      the state again, within DASH_TICK_MS of an event or of a
 *                     region spilling or returning
 *   event: event      one event, within DASH_TICK_MS of its push (a repeat
 *                     carries the same id with a higher count; events are sent
 *                     from the tick, so a storm costs one message per tick)
 *
 * Bounded: at most dashboard.max_viewers streams (then 503); a viewer whose
 * unsent output would pass DASH_VIEWER_MAX_PENDING_BYTES is dropped (the
 * browser reconnects), so a slow viewer never grows the gateway's memory.
 * Every viewer gets the same bytes, built once per sample.
 *
 * The samples come from the requests as they end (dashboard_request, called
 * by metrics.c): requests, errors (5xx), sheds (429), time to first byte
 * p50/p99 and response bytes per second per pool, and the share of each
 * region in what a pool served; tokens/s from the growth of the endpoints'
 * scraped vllm:generation_tokens_total. The state is read from the pools, endpoints
 * and the picker's region states, as /status reads them. Per tenant, the
 * sample reads the totals tenant.c keeps (requests ended, 5xx, 429, tokens)
 * once a second and sends their growth, with its in-flight count against its
 * limit and its requests waiting in the admission queues: at most
 * DASH_MAX_TENANTS, the busiest of the last minute when there are more.
 *
 * Not here: the JSON /status (front.c), the events' ring (events.c).
 */
#ifndef GATEWAY_DASHBOARD_H
#define GATEWAY_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#define DASH_TICK_MS 250         /* state checks; a sample every 4 ticks */
#define DASH_HISTORY_SAMPLES 300 /* five minutes of one-second samples */
#define DASH_MAX_POOLS 16        /* pools charted (others: state only) */
#define DASH_MAX_RANKS 8         /* region ranks counted for the shares */
#define DASH_TTFB_SAMPLES 1024   /* first-byte times kept per pool per second */
#define DASH_VIEWER_MAX_PENDING_BYTES (1u << 20)
#define DASH_MAX_VIEWERS_LIMIT 256 /* the most dashboard.max_viewers may say */
#define DASH_MAX_TENANTS 24        /* tenants per message (the busiest when more) */
#define DASH_TENANT_HISTORY 60     /* one-second samples kept per tenant (sparklines) */

struct gw;
struct gw_call;
struct httpd_req;

/* Starts the sampler on g's loop and registers the dashboard's metrics.
 * Returns 0, or -1 when out of memory. */
int dashboard_init(struct gw *g);
/* Stops the sampler; viewers must be gone (after httpd_free). */
void dashboard_free(struct gw *g);
/* 1 when path is the dashboard's (/dashboard, /dashboard/events): then r was
 * taken (answered, or streaming); 0 otherwise. */
int dashboard_handle(struct gw *g, struct httpd_req *r, const char *path);
/* A request ended (before its call is recycled): counted into the samples. */
void dashboard_request(struct gw *g, const struct gw_call *c, uint64_t now_ms);

#endif
