/*
 * health.c — is an endpoint fit for traffic: active checks and passive
 * detection.
 *
 * Active: GET the pool's health path every interval (fast_interval while the
 * state is changing); 2xx within the timeout is a success. One counter per
 * endpoint, HAProxy's `health`, from 0 to rise+fall-1, gives hysteresis with
 * no other state: the endpoint is up when health >= rise. Recording a result
 * (check_record: moves the counter, says which state it implies) is kept apart
 * from changing state (state_set: logs, counts, updates the gauges). The first
 * result of an endpoint never checked (UNKNOWN, which serves meanwhile) decides
 * at once.
 *
 * Passive: consecutive failures of real traffic (connect errors, resets, 5xx —
 * never 4xx) eject the endpoint for a back-off that doubles with each ejection
 * in a row, up to a cap; a success resets the count and the doubling.
 *
 * Hard down: when checks that got no answer at all take an endpoint down, or
 * connect failures eject it, the attempts in flight on it are moved elsewhere
 * (proxy_endpoint_down): a cut-off server's kept-alive connections stay open
 * and silent, and nothing else would end them before the idle timeout.
 *
 * Also here, because it rides on a successful check: learning the models an
 * endpoint serves (GET /v1/models) for pools that list none.
 */
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/scrape.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODELS_REFRESH_MS 30000
#define MODELS_MAX_BODY (1 << 20)

const char *gw_health_name(int state)
{
	switch (state) {
	case GW_HEALTH_UP: return "up";
	case GW_HEALTH_DOWN: return "down";
	default: return "unknown";
	}
}

/* ------------------------------------------------------------ state */

/* Changes e's state: one log line, the metrics. */
static void state_set(gw_endpoint *e, int to, const char *why)
{
	int from = e->state;
	if (from == to) return;
	e->state = to;
	e->state_changes_total++;
	e->state_since_ms = ev_now_ms(e->g->loop);
	log_msg(to == GW_HEALTH_DOWN ? LOG_WARN : LOG_INFO, "endpoint %s (pool %s, region %s): %s -> %s (%s)",
		e->address, e->pool_name, e->region, gw_health_name(from), gw_health_name(to), why);
	gw_metrics_health_change(e->g, e, from, to);
	if (to == GW_HEALTH_UP) scrape_wake(e);
}

/* Records one check result in the health counter. Returns the state the
 * counter now implies. */
static int check_record(gw_endpoint *e, int ok)
{
	uint32_t rise = e->hc.rise, top = e->hc.rise + e->hc.fall - 1;
	if (e->state == GW_HEALTH_UNKNOWN) {
		e->health = ok ? top : 0;
		return ok ? GW_HEALTH_UP : GW_HEALTH_DOWN;
	}
	if (ok) {
		if (e->health < top) {
			e->health++;
			if (e->health == rise) e->health = top; /* just came up: full credit */
		}
	} else {
		if (e->health > rise) e->health--;
		else e->health = 0; /* was at rise (or below): down */
	}
	return e->health >= rise ? GW_HEALTH_UP : GW_HEALTH_DOWN;
}

/* 1 while the counter is between the two steady ends. */
static int changing(const gw_endpoint *e)
{
	uint32_t top = e->hc.rise + e->hc.fall - 1;
	return e->state == GW_HEALTH_UNKNOWN || (e->health > 0 && e->health < top);
}

int health_ejected(const gw_endpoint *e, uint64_t now_ms)
{
	return e->ejected_until_ms && now_ms < e->ejected_until_ms;
}

int health_available(const gw_endpoint *e, uint64_t now_ms, int ignore_ejection)
{
	if (e->removed || e->state == GW_HEALTH_DOWN) return 0;
	return ignore_ejection || !health_ejected(e, now_ms);
}

/* ------------------------------------------------------------ models */

static void models_body(hc_req *r, const char *d, size_t n, void *arg);
static void models_done(hc_req *r, int err, void *arg);

static void models_start(gw_endpoint *e)
{
	if (e->models_req || !e->learn_models) return;
	buf_free(&e->models_body);
	buf_init(&e->models_body, MODELS_MAX_BODY);
	hc_callbacks cb = {NULL, models_body, models_done};
	hc_timeouts to = {e->hc.timeout_ms, e->hc.timeout_ms * 2, e->hc.timeout_ms * 4};
	e->models_fetched_ms = ev_now_ms(e->g->loop);
	char hdrs[GW_KEY_LEN + 64];
	if (*e->api_key) snprintf(hdrs, sizeof hdrs, "Accept: application/json\r\nAuthorization: Bearer %s\r\n", e->api_key);
	else str_copy(hdrs, "Accept: application/json\r\n", sizeof hdrs);
	e->models_req = hc_request(e->conns, "GET", "/v1/models", hdrs, NULL, 0, &cb, e, &to);
}

static void models_body(hc_req *r, const char *d, size_t n, void *arg)
{
	gw_endpoint *e = arg;
	if (buf_append(&e->models_body, d, n) == 0) return;
	hc_cancel(r); /* over the cap: no callback follows */
	e->models_req = NULL;
	buf_free(&e->models_body);
}

static void models_done(hc_req *r, int err, void *arg)
{
	gw_endpoint *e = arg;
	e->models_req = NULL;
	json_doc *d = NULL;
	if (err == HC_OK && hc_status(r) == 200 &&
	    (d = json_parse(buf_rptr(&e->models_body), buf_rlen(&e->models_body), 0, NULL))) {
		const json_val *data = json_get(json_root(d), "data");
		size_t n = MIN(json_count(data), (size_t)GW_MAX_MODELS);
		char(*m)[GW_NAME_LEN] = n ? calloc(n, GW_NAME_LEN) : NULL;
		size_t k = 0;
		uint64_t adapters = 0;
		for (size_t i = 0; m && i < n; i++) {
			const char *id = json_cstr(json_get(json_at(data, i), "id")); /* NULL with a NUL inside */
			if (!id || strlen(id) >= GW_NAME_LEN) continue;
			/* vLLM lists a LoRA adapter with its base model as parent. */
			if (json_str(json_get(json_at(data, i), "parent"), NULL)) adapters |= 1ull << k;
			str_copy(m[k++], id, GW_NAME_LEN);
		}
		if (m || !n) {
			free(e->models);
			e->models = m;
			e->n_models = k;
			e->adapters = adapters;
		}
		json_doc_free(d);
	} else {
		gw_endpoint_log(e, LOG_WARN, "endpoint %s: GET /v1/models failed (%s, status %d)", e->address,
				hc_err_name(err), hc_status(r));
	}
	buf_free(&e->models_body);
}

/* ------------------------------------------------------------ active checks */

/* Checks run on a period counted from their starts, not from their answers:
 * the endpoints of a pool, started together, stay checked in the same loop
 * pass (one wake-up, one batched send for all) instead of drifting apart by
 * their answer times into a wake-up each. A check still running when its turn
 * comes is left alone (its timeout ends it). While the state is changing, the
 * next check comes fast_interval after the last one started (check_soon). */
static int64_t check_timer_fn(ev_loop *loop, uint64_t id, void *arg);

static void check_soon(gw_endpoint *e)
{
	uint64_t now = ev_now_ms(e->g->loop), due = e->check_started_ms + e->hc.fast_interval_ms;
	uint64_t ms = due > now ? due - now : 0;
	if (e->check_timer && ev_timer_set(e->g->loop, e->check_timer, ms) == 0) return;
	e->check_timer = ev_timer_add(e->g->loop, ms, check_timer_fn, e);
}

/* 1 when a check's error means the endpoint did not answer at all. */
static int check_no_answer(int err)
{
	return err != HC_OK && err != HC_ERR_NOMEM && err != HC_ERR_ABORTED && err != HC_ERR_MALFORMED &&
	       err != HC_ERR_TOO_LARGE;
}

static void check_done(hc_req *r, int err, void *arg)
{
	gw_endpoint *e = arg;
	e->check = NULL;
	int status = hc_status(r);
	int ok = err == HC_OK && status >= 200 && status < 300;
	if (err == HC_OK) snprintf(e->last_check, sizeof(e->last_check), "%s %d", ok ? "ok" : "status", status);
	else snprintf(e->last_check, sizeof(e->last_check), "%s", hc_err_name(err));
	e->checks_total++;
	e->checks_failed_total += !ok;
	gw_metrics_check(e->g, e, ok);
	int to = check_record(e, ok);
	if (to != e->state) {
		char why[160];
		if (e->state == GW_HEALTH_UNKNOWN) snprintf(why, sizeof(why), "first check: %s", e->last_check);
		else if (ok) snprintf(why, sizeof(why), "%u checks passed", e->hc.rise);
		else snprintf(why, sizeof(why), "%u checks failed, last: %s", e->hc.fall, e->last_check);
		state_set(e, to, why);
		/* No answer at all (a timeout, a refused or failed connect, a
		 * reset) is a dead or cut-off server: what waits on it now waits
		 * for nothing. A server that answers 503 (draining) finishes what
		 * it runs, so its attempts stay. */
		if (to == GW_HEALTH_DOWN && check_no_answer(err)) proxy_endpoint_down(e, why);
	}
	if (ok && e->learn_models &&
	    (!e->models_fetched_ms || ev_now_ms(e->g->loop) - e->models_fetched_ms >= MODELS_REFRESH_MS))
		models_start(e);
	if (!e->removed && changing(e)) check_soon(e);
}

static int64_t check_timer_fn(ev_loop *loop, uint64_t id, void *arg)
{
	gw_endpoint *e = arg;
	if (e->removed) {
		e->check_timer = 0;
		return -1;
	}
	int64_t next = (int64_t)(changing(e) ? e->hc.fast_interval_ms : e->hc.interval_ms);
	if (e->check) return next;
	hc_callbacks cb = {NULL, NULL, check_done};
	hc_timeouts to = {e->hc.timeout_ms, e->hc.timeout_ms, e->hc.timeout_ms};
	e->check_started_ms = ev_now_ms(loop);
	e->check = hc_request(e->conns, "GET", e->hc.path, "User-Agent: infergate-health\r\n", NULL, 0, &cb, e, &to);
	return next; /* out of memory (no check): tried again next turn */
}

void health_start(gw_endpoint *e)
{
	if (!e->hc.enabled) {
		if (e->state != GW_HEALTH_UP) state_set(e, GW_HEALTH_UP, "health checks disabled");
		e->health = e->hc.rise + e->hc.fall - 1;
		if (e->learn_models && !e->n_models) models_start(e);
		return;
	}
	if (e->state != GW_HEALTH_UNKNOWN) {
		uint32_t top = e->hc.rise + e->hc.fall - 1;
		e->health = e->state == GW_HEALTH_UP ? top : 0;
	}
	if (e->check_timer) ev_timer_del(e->g->loop, e->check_timer);
	e->check_timer = ev_timer_add(e->g->loop, 0, check_timer_fn, e);
}

void health_stop(gw_endpoint *e)
{
	if (e->check_timer) ev_timer_del(e->g->loop, e->check_timer);
	e->check_timer = 0;
	if (e->check) hc_cancel(e->check);
	e->check = NULL;
}

/* ------------------------------------------------------------ passive */

int health_passive_failure(gw_endpoint *e, const char *why)
{
	e->failures_total++;
	e->consecutive_failures++;
	if (!e->pc.failures || e->consecutive_failures < e->pc.failures) return 0;
	uint64_t now = ev_now_ms(e->g->loop);
	if (health_ejected(e, now)) return 0;
	uint64_t backoff = e->pc.backoff_ms;
	for (uint32_t i = 0; i < e->ejections && backoff < e->pc.backoff_max_ms; i++) backoff *= 2;
	backoff = MIN(backoff, e->pc.backoff_max_ms);
	e->ejected_until_ms = now + backoff;
	e->ejections++;
	e->ejections_total++;
	e->consecutive_failures = 0;
	log_warn("endpoint %s (pool %s, region %s): ejected for %llu ms after %u failures in a row (last: %s)",
		 e->address, e->pool_name, e->region, (unsigned long long)backoff, e->pc.failures, why);
	gw_metrics_ejection(e->g, e);
	return 1;
}

/* Only connect failures say the server is unreachable: a reset or an early
 * EOF is one connection's end (a crashed server resets the others itself),
 * an idle timeout may be one slow answer. */
void health_passive_error(gw_endpoint *e, int err)
{
	int ejected = health_passive_failure(e, hc_err_name(err));
	if (ejected && (err == HC_ERR_CONNECT_REFUSED || err == HC_ERR_CONNECT || err == HC_ERR_CONNECT_TIMEOUT)) {
		char why[64];
		snprintf(why, sizeof(why), "ejected after %s", hc_err_name(err));
		proxy_endpoint_down(e, why);
	}
}

void health_passive_success(gw_endpoint *e)
{
	e->consecutive_failures = 0;
	if (e->ejections && !health_ejected(e, ev_now_ms(e->g->loop))) e->ejections = 0;
}
