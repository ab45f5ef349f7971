/* test_gateway_health.c — the gateway's health logic (src/gateway/health.c,
 * compiled in here, metrics stubbed): HAProxy's single counter gives rise/fall
 * hysteresis, the first check of an unknown endpoint decides at once, fast
 * checks while changing, passive ejection with a doubling back-off that a
 * success resets, and availability. */
#include "gateway/health.c"
#include "t.h"

static int changes_to_up, changes_to_down, ejections;
void gw_metrics_health_change(gw *g, gw_endpoint *e, int from, int to)
{
	if (to == GW_HEALTH_UP) changes_to_up++;
	else changes_to_down++;
}
void gw_metrics_check(gw *g, gw_endpoint *e, int ok) {}
void gw_metrics_ejection(gw *g, gw_endpoint *e) { ejections++; }
static int endpoint_downs;
size_t proxy_endpoint_down(gw_endpoint *e, const char *why)
{
	endpoint_downs++;
	return 0;
}
static int scrape_wakes;
void scrape_wake(gw_endpoint *e) { scrape_wakes++; }

/* One check result through the path check_done takes: record, then change. */
static void result(gw_endpoint *e, int ok)
{
	int to = check_record(e, ok);
	if (to != e->state) state_set(e, to, ok ? "test ok" : "test fail");
}

static void setup(gw *g, gw_endpoint *e, uint32_t rise, uint32_t fall)
{
	memset(g, 0, sizeof(*g));
	memset(e, 0, sizeof(*e));
	g->loop = ev_new();
	e->g = g;
	str_copy(e->address, "127.0.0.1:1", sizeof(e->address));
	e->hc.rise = rise;
	e->hc.fall = fall;
	e->hc.interval_ms = 1000;
	e->hc.fast_interval_ms = 100;
	e->pc.failures = 3;
	e->pc.backoff_ms = 1000;
	e->pc.backoff_max_ms = 5000;
	changes_to_up = changes_to_down = ejections = 0;
}

static void test_hysteresis(void)
{
	gw g;
	gw_endpoint e;
	setup(&g, &e, 2, 3);
	T_EQ_INT(e.state, GW_HEALTH_UNKNOWN);
	T_CHECK(changing(&e)); /* unknown: check fast */
	result(&e, 1);         /* the first result decides */
	T_EQ_INT(e.state, GW_HEALTH_UP);
	T_EQ_INT(e.health, 4); /* rise + fall - 1 */
	T_CHECK(!changing(&e));
	result(&e, 0);
	result(&e, 0);
	T_EQ_INT(e.state, GW_HEALTH_UP); /* 2 failures of 3: still up */
	T_CHECK(changing(&e));
	result(&e, 1); /* a success climbs back one step only */
	T_EQ_INT(e.health, 3);
	result(&e, 0);
	T_EQ_INT(e.state, GW_HEALTH_UP);
	T_EQ_INT(e.health, 2); /* at rise: the next failure takes it down */
	result(&e, 0);
	T_EQ_INT(e.state, GW_HEALTH_DOWN);
	T_EQ_INT(e.health, 0);
	T_EQ_INT(changes_to_down, 1);
	result(&e, 1);
	T_EQ_INT(e.state, GW_HEALTH_DOWN); /* 1 success of 2 */
	result(&e, 0);
	T_EQ_INT(e.health, 0); /* a failure while rising starts over */
	result(&e, 1);
	result(&e, 1);
	T_EQ_INT(e.state, GW_HEALTH_UP);
	T_EQ_INT(e.health, 4); /* full credit on coming up */
	T_EQ_INT(changes_to_up, 2);
	T_EQ_INT(e.state_changes_total, 3);
	T_CHECK(scrape_wakes > 0); /* coming up restarts backed-off scrapes */
	ev_free(g.loop);
}

static void test_first_check_down_and_rise1(void)
{
	gw g;
	gw_endpoint e;
	setup(&g, &e, 1, 1);
	result(&e, 0);
	T_EQ_INT(e.state, GW_HEALTH_DOWN);
	result(&e, 1);
	T_EQ_INT(e.state, GW_HEALTH_UP); /* rise 1 */
	result(&e, 0);
	T_EQ_INT(e.state, GW_HEALTH_DOWN); /* fall 1 */
	ev_free(g.loop);
}

static void test_passive(void)
{
	gw g;
	gw_endpoint e;
	setup(&g, &e, 2, 2);
	result(&e, 1);
	uint64_t now = ev_now_ms(g.loop);
	T_CHECK(health_available(&e, now, 0));
	health_passive_failure(&e, "reset");
	health_passive_failure(&e, "reset");
	health_passive_success(&e); /* resets the count */
	health_passive_failure(&e, "reset");
	health_passive_failure(&e, "reset");
	T_CHECK(!health_ejected(&e, now));
	health_passive_failure(&e, "status 503");
	T_CHECK(health_ejected(&e, now));
	T_EQ_INT(e.ejected_until_ms - now, 1000);
	T_CHECK(!health_available(&e, now, 0));
	T_CHECK(health_available(&e, now, 1)); /* when every endpoint is ejected */
	/* the next ejection in a row doubles */
	now = e.ejected_until_ms;
	g.loop = g.loop;
	e.ejected_until_ms = 1; /* expired */
	for (int i = 0; i < 3; i++) health_passive_failure(&e, "eof");
	T_EQ_INT(e.ejections, 2);
	T_EQ_INT(e.ejected_until_ms - ev_now_ms(g.loop), 2000);
	e.ejected_until_ms = 1;
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 3; i++) health_passive_failure(&e, "eof");
		e.ejected_until_ms = k < 2 ? 1 : e.ejected_until_ms;
	}
	T_EQ_INT(e.ejected_until_ms - ev_now_ms(g.loop), 5000); /* capped at backoff_max */
	e.ejected_until_ms = 1;
	health_passive_success(&e);
	T_EQ_INT(e.ejections, 0); /* a success after the ejection resets the doubling */
	T_EQ_INT(ejections, 5);
	e.state = GW_HEALTH_DOWN;
	T_CHECK(!health_available(&e, now, 1)); /* down is down, ejection or not */
	e.state = GW_HEALTH_UP;
	e.removed = 1;
	T_CHECK(!health_available(&e, now, 1)); /* removed by a reload */
	ev_free(g.loop);
}

/* Which failures count as hard down (the attempts in flight are moved):
 * connect failures that eject, and checks that got no answer; not resets,
 * 5xx, or a check answered 503. */
static void test_hard_down(void)
{
	gw g;
	gw_endpoint e;
	setup(&g, &e, 2, 2);
	e.pc.failures = 1;
	endpoint_downs = 0;
	health_passive_error(&e, HC_ERR_RESET);
	T_CHECK(health_ejected(&e, ev_now_ms(g.loop)));
	T_EQ_INT(endpoint_downs, 0); /* a reset ejects but moves nothing */
	e.ejected_until_ms = 1;
	health_passive_error(&e, HC_ERR_CONNECT_TIMEOUT);
	T_EQ_INT(endpoint_downs, 1);
	health_passive_error(&e, HC_ERR_CONNECT_REFUSED);
	T_EQ_INT(endpoint_downs, 1); /* already ejected: nothing new */
	T_CHECK(check_no_answer(HC_ERR_TOTAL_TIMEOUT));
	T_CHECK(check_no_answer(HC_ERR_CONNECT_TIMEOUT));
	T_CHECK(check_no_answer(HC_ERR_CONNECT_REFUSED));
	T_CHECK(!check_no_answer(HC_OK)); /* an answer, 503 included */
	T_CHECK(!check_no_answer(HC_ERR_ABORTED));
	ev_free(g.loop);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	T_RUN(test_hysteresis);
	T_RUN(test_first_check_down_and_rise1);
	T_RUN(test_passive);
	T_RUN(test_hard_down);
	return T_END();
}
