/*
 * scrape.c — the scraper of scrape.h: a timer per endpoint on the gateway's
 * loop, one GET of the metrics path at a time on the endpoint's keep-alive
 * pool, the page sieved as it arrives (scrape_parser: no copy of the page,
 * no allocation in steady state).
 *
 * The timer is periodic from the first scrape (not from each answer), so the
 * endpoints of a pool are read together and the loop wakes once for many of
 * them. A scrape still running when its next turn comes is left alone (its
 * timeout bounds it). Nothing here is fatal: every failure is a counter, a
 * log line limited per endpoint and an aging value. An endpoint that is down
 * (its health, or ejected) and fails its scrapes is read less and less often:
 * the delay doubles with each failure in a row up to SCRAPE_BACKOFF_MAX_MS,
 * until a scrape succeeds or its health comes back (scrape_wake) — a dead
 * server is the health checks' to watch, not the scraper's.
 */
#include "gateway/scrape.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "gateway/picker.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCRAPE_BACKOFF_MAX_MS 2000

struct scrape_state {
	/* Per scrape, together at the front (each endpoint's turn finds them cold);
	 * the configuration and the last error after them. */
	gw_endpoint *e;
	uint64_t timer;
	hc_req *req;           /* the scrape in flight */
	scrape_parser *parser; /* its page, sieved as it arrives */
	size_t body_bytes;     /* of its page so far, capped */
	uint64_t started_ms;   /* of the scrape in flight */
	uint64_t started_ns;
	uint64_t since_ms; /* scraping started (grace before the first success) */
	uint64_t ok_ms;    /* last good scrape, 0 = none */
	scrape_values last;
	uint64_t scrapes_total, failures_total, timeouts_total, garbage_total;
	uint64_t last_duration_us;
	uint32_t failures_in_row; /* since the last good scrape */
	prom_series *m_ok;        /* infergate_scrapes_total{result="ok"}, cached */
	gw_scrape_cfg cfg;
	char last_error[160];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One result: counted, logged when bad. */
static void record_failure(scrape_state *s, const char *result, const char *fmt_detail)
{
	gw_endpoint *e = s->e;
	s->failures_total++;
	s->failures_in_row++;
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", result, fmt_detail);
	picker_metrics_scrape(e, result);
	gw_endpoint_log(e, LOG_WARN, "endpoint %s (pool %s): scrape of %s failed: %s", e->address, e->pool_name, s->cfg.path,
			s->last_error);
}

static void scrape_body(hc_req *r, const char *d, size_t n, void *arg)
{
	scrape_state *s = arg;
	s->body_bytes += n;
	if (s->body_bytes <= SCRAPE_MAX_BODY_BYTES) {
		/* Only a page that came with 200 is read; a parse failure is kept for
		 * scrape_done (the rest of the page is still read, so the connection
		 * can be reused). */
		if (hc_status(r) == 200) scrape_parser_feed(s->parser, d, n);
		return;
	}
	hc_cancel(r); /* over the cap: no callback follows */
	s->req = NULL;
	s->scrapes_total++;
	s->garbage_total++;
	record_failure(s, "garbage", "page larger than the cap");
}

static void scrape_done(hc_req *r, int err, void *arg)
{
	scrape_state *s = arg;
	gw_endpoint *e = s->e;
	s->req = NULL;
	s->scrapes_total++;
	s->last_duration_us = (mono_ns() - s->started_ns) / 1000;
	if (err != HC_OK) {
		int timeout = err == HC_ERR_IDLE_TIMEOUT || err == HC_ERR_TOTAL_TIMEOUT || err == HC_ERR_CONNECT_TIMEOUT;
		if (timeout) s->timeouts_total++;
		record_failure(s, timeout ? "timeout" : "failed", hc_err_name(err));
		return;
	}
	int status = hc_status(r);
	if (status != 200) {
		char d[32];
		snprintf(d, sizeof(d), "status %d", status);
		record_failure(s, "failed", d);
		return;
	}
	scrape_values v;
	char why[160];
	if (scrape_parser_end(s->parser, &v, why, sizeof(why)) < 0) {
		s->garbage_total++;
		record_failure(s, "garbage", why);
		return;
	}
	s->last = v;
	s->ok_ms = ev_now_ms(e->g->loop);
	s->last_error[0] = 0;
	s->failures_in_row = 0;
	if (!s->m_ok) s->m_ok = picker_metrics_scrape_series(e, "ok");
	if (s->m_ok) prom_inc(s->m_ok);
}

/* The delay to the next scrape: the interval, or while e is down and failing
 * its scrapes, the interval doubled per failure in a row, capped. */
static uint64_t next_delay_ms(const scrape_state *s, uint64_t now_ms)
{
	const gw_endpoint *e = s->e;
	uint64_t d = s->cfg.interval_ms;
	if (!s->failures_in_row || (e->state != GW_HEALTH_DOWN && !health_ejected(e, now_ms))) return d;
	uint64_t cap = d > SCRAPE_BACKOFF_MAX_MS ? d : SCRAPE_BACKOFF_MAX_MS;
	for (uint32_t i = 0; i < s->failures_in_row && d < cap; i++) d *= 2;
	return d < cap ? d : cap;
}

static int64_t scrape_tick(ev_loop *loop, uint64_t id, void *arg)
{
	scrape_state *s = arg;
	gw_endpoint *e = s->e;
	if (e->removed) {
		s->timer = 0;
		return -1;
	}
	if (s->req) return (int64_t)s->cfg.interval_ms; /* still running: its timeout ends it */
	int64_t next = (int64_t)next_delay_ms(s, ev_now_ms(loop));
	scrape_parser_begin(s->parser, s->cfg.metric);
	s->body_bytes = 0;
	hc_callbacks cb = {NULL, scrape_body, scrape_done};
	hc_timeouts to = {s->cfg.timeout_ms, s->cfg.timeout_ms, s->cfg.timeout_ms};
	s->started_ms = ev_now_ms(loop);
	s->started_ns = mono_ns();
	s->req = hc_request(e->conns, "GET", s->cfg.path, "Accept: text/plain\r\nUser-Agent: infergate-scrape\r\n", NULL,
			    0, &cb, s, &to);
	return next;
}

static void stop(scrape_state *s)
{
	if (s->timer) ev_timer_del(s->e->g->loop, s->timer);
	s->timer = 0;
	if (s->req) hc_cancel(s->req);
	s->req = NULL;
}

int scrape_apply(gw_endpoint *e, const gw_scrape_cfg *cfg)
{
	scrape_state *s = e->scrape;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) return -1;
		s->parser = scrape_parser_new();
		if (!s->parser) {
			free(s);
			return -1;
		}
		s->e = e;
		e->scrape = s;
	} else if (s->cfg.enabled == cfg->enabled && s->cfg.interval_ms == cfg->interval_ms &&
		   s->cfg.timeout_ms == cfg->timeout_ms && s->cfg.stale_ms == cfg->stale_ms && s->timer &&
		   !strcmp(s->cfg.path, cfg->path) && !strcmp(s->cfg.metric, cfg->metric)) {
		return 0; /* unchanged and running */
	}
	stop(s);
	s->cfg = *cfg;
	if (!s->cfg.timeout_ms) s->cfg.timeout_ms = 1000;
	if (!s->cfg.stale_ms) s->cfg.stale_ms = 2000;
	if (!s->cfg.enabled || e->removed) return 0;
	s->since_ms = ev_now_ms(e->g->loop);
	s->timer = ev_timer_add(e->g->loop, 0, scrape_tick, s);
	return s->timer ? 0 : -1;
}

void scrape_wake(gw_endpoint *e)
{
	scrape_state *s = e->scrape;
	if (!s || !s->timer || !s->failures_in_row) return;
	s->failures_in_row = 0;
	ev_timer_del(e->g->loop, s->timer);
	s->timer = ev_timer_add(e->g->loop, 0, scrape_tick, s);
}

void scrape_free(gw_endpoint *e)
{
	scrape_state *s = e->scrape;
	if (!s) return;
	stop(s);
	scrape_parser_free(s->parser);
	free(s);
	e->scrape = NULL;
}

double scrape_util(const gw_endpoint *e, uint64_t now_ms, int *stale)
{
	const scrape_state *s = e->scrape;
	*stale = 0;
	if (!s || !s->cfg.enabled) return 0;
	uint64_t ref = s->ok_ms ? s->ok_ms : s->since_ms;
	if (now_ms > ref && now_ms - ref > s->cfg.stale_ms) {
		*stale = 1;
		return 1;
	}
	return s->ok_ms ? s->last.metric : 0;
}

int64_t scrape_age_ms(const gw_endpoint *e, uint64_t now_ms)
{
	const scrape_state *s = e->scrape;
	if (!s || !s->ok_ms) return -1;
	return now_ms > s->ok_ms ? (int64_t)(now_ms - s->ok_ms) : 0;
}

const scrape_values *scrape_last(const gw_endpoint *e)
{
	const scrape_state *s = e->scrape;
	return s && s->ok_ms ? &s->last : NULL;
}

void scrape_get_stats(const gw_endpoint *e, scrape_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->last_error = "";
	const scrape_state *s = e->scrape;
	if (!s) return;
	out->scrapes_total = s->scrapes_total;
	out->failures_total = s->failures_total;
	out->timeouts_total = s->timeouts_total;
	out->garbage_total = s->garbage_total;
	out->last_duration_us = s->last_duration_us;
	out->last_error = s->last_error;
	out->interval_ms = s->cfg.interval_ms;
	out->stale_ms = s->cfg.stale_ms;
	out->enabled = s->cfg.enabled;
}
