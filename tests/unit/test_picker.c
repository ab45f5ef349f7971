/*
 * test_picker.c — the picker's pipeline over arrays of endpoint views: the
 * filters (hard and soft, a soft one never empties the set), every scorer,
 * weights, the deterministic tie-break, the ordered fallback list, the load
 * guard of prefix affinity, the region waterfall with its hysteresis (spill
 * above the max, return only under max - margin and after the hold), stale
 * metrics as saturated, and the admission decision and aging. Sources included.
 */
#include "../../src/gateway/picker.c"
#include "t.h"

static gw_picker_cfg cfg_default(void)
{
	gw_picker_cfg c;
	memset(&c, 0, sizeof(c));
	c.max_utilization = 0.6;
	c.return_margin = 0.1;
	c.region_hold_ms = 1000;
	c.weight_kv = 1;
	c.weight_queue = 1;
	c.weight_inflight = 1;
	c.weight_prefix = 3;
	c.prefix_guard = -1;
	return c;
}

static void view(pk_view *v, int i, int rank, double util)
{
	memset(v, 0, sizeof(*v));
	v->index = i;
	v->label = "ep";
	v->region = rank ? "europe-west4" : "us-east5";
	v->region_rank = rank;
	v->available = 1;
	v->serves_model = 1;
	v->util = util;
	v->weight = 1;
}

static int first(pk_view *v, size_t n, gw_picker_cfg *c, region_state *rs, uint64_t now, pk_result *r)
{
	pk_params p = {c, 0, now};
	picker_run(v, n, &p, rs, r);
	return r->n_order ? v[r->order[0]].index : -1;
}

static void test_scores_and_ties(void)
{
	gw_picker_cfg c = cfg_default();
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	pk_view v[4];
	pk_result r;
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.2);
	/* All equal: configuration order. */
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 0);
	T_EQ_INT((int)r.n_order, 4);
	/* Picks so far break the tie, then in flight. */
	v[0].picked_total = 5;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 1);
	v[1].in_flight = 1;
	v[2].in_flight = 1;
	v[3].in_flight = 1;
	v[0].in_flight = 1;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 1);
	/* KV headroom. */
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.5);
	v[2].util = 0.1;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 2);
	T_NEAR(v[2].score[PK_S_KV], 0.9, 1e-12);
	/* Queue depth (normalised: shortest 1, longest 0). */
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.3), v[i].waiting = 4;
	v[3].waiting = 0;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 3);
	T_NEAR(v[3].score[PK_S_QUEUE], 1, 0);
	T_NEAR(v[0].score[PK_S_QUEUE], 0, 0);
	/* In flight per weight: a burst between scrapes spreads. */
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.3);
	int seen[4] = {0};
	for (int k = 0; k < 8; k++) {
		int i = first(v, 4, &c, &rs, 0, &r);
		seen[i]++;
		v[i].in_flight++;
		v[i].picked_total++;
	}
	for (int i = 0; i < 4; i++) T_EQ_INT(seen[i], 2);
	/* Weights: with only the in-flight scorer, weight 3 takes 3 of 4. */
	c.weight_kv = c.weight_queue = c.weight_prefix = 0;
	for (int i = 0; i < 2; i++) view(&v[i], i, 0, 0.3);
	v[1].weight = 3;
	int s1 = 0;
	for (int k = 0; k < 8; k++) {
		int i = first(v, 2, &c, &rs, 0, &r);
		s1 += i == 1;
		v[i].in_flight++;
	}
	T_EQ_INT(s1, 6);
	/* The order is a fallback list: every candidate, best first, no duplicates. */
	c = cfg_default();
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.1 * (4 - i));
	first(v, 4, &c, &rs, 0, &r);
	T_EQ_INT((int)r.n_order, 4);
	for (int k = 0; k < 4; k++) T_EQ_INT(v[r.order[k]].index, 3 - k);
}

static void test_filters(void)
{
	gw_picker_cfg c = cfg_default();
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	pk_view v[3];
	pk_result r;
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.2);
	/* Tried and down are hard. */
	v[0].tried = 1;
	v[1].available = 0;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 2);
	T_EQ_INT((int)r.n_order, 1);
	v[2].tried = 1;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), -1);
	/* Ejected and model are soft: dropped when others remain, kept when none would. */
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.2);
	v[0].ejected = 1;
	v[1].serves_model = 0;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 2);
	T_EQ_INT((int)r.n_order, 3); /* the dropped ones still follow, as a last resort */
	for (int i = 0; i < 3; i++) v[i].ejected = 1;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 0); /* ejection cannot empty a pool */
	T_CHECK(r.relaxed & PK_F_NOT_EJECTED);
	/* Over the max is dropped while another fits; all over: none dropped. */
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.7);
	v[1].util = 0.5;
	v[1].in_flight = 10; /* busier, but the only one under the max */
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 1);
	v[1].util = 0.9;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 0);
	T_CHECK(r.relaxed & PK_F_UTILIZATION);
	T_CHECK(r.saturated);
	/* max_waiting. */
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.1);
	c.max_waiting = 5;
	v[0].waiting = 6;
	c.weight_queue = 0;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 1);
	T_CHECK(!(v[0].passed & PK_F_UTILIZATION));
	/* Stale metrics count as full. */
	c = cfg_default();
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.1);
	v[0].stale = 1;
	v[0].util = 1;
	v[1].stale = 1;
	v[1].util = 1;
	T_EQ_INT(first(v, 3, &c, &rs, 0, &r), 2);
	char names[128];
	picker_filter_names(v[2].passed, names, sizeof(names));
	T_EQ_STR(names, "untried,healthy,not_ejected,model,region,utilization");
}

static void test_prefix_guard(void)
{
	gw_picker_cfg c = cfg_default();
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	pk_view v[3];
	pk_result r;
	pk_params p = {&c, 20, 0};
	for (int i = 0; i < 3; i++) view(&v[i], i, 0, 0.2);
	v[1].prefix_blocks = 18; /* holds the conversation */
	v[1].in_flight = 3;      /* busier than the others: affinity still wins */
	picker_run(v, 3, &p, &rs, &r);
	T_EQ_INT(v[r.order[0]].index, 1);
	T_NEAR(v[1].score[PK_S_PREFIX], 0.9, 1e-12);
	/* Saturated (over the guard = max utilization): affinity withheld, elsewhere. */
	v[1].util = 0.65;
	picker_run(v, 3, &p, &rs, &r);
	T_CHECK(v[r.order[0]].index != 1);
	T_CHECK(v[1].guarded);
	T_NEAR(v[1].score[PK_S_PREFIX], 0, 0);
	/* An explicit guard below the max. */
	c.prefix_guard = 0.3;
	v[1].util = 0.4;
	picker_run(v, 3, &p, &rs, &r);
	T_CHECK(v[r.order[0]].index != 1);
	/* The in-flight guard. */
	c.prefix_guard = -1;
	c.prefix_guard_in_flight = 2;
	v[1].util = 0.2;
	picker_run(v, 3, &p, &rs, &r);
	T_CHECK(v[r.order[0]].index != 1);
	v[1].in_flight = 2;
	picker_run(v, 3, &p, &rs, &r);
	T_EQ_INT(v[r.order[0]].index, 1);
}

static void test_regions(void)
{
	gw_picker_cfg c = cfg_default(); /* max 0.6, margin 0.1, hold 1000 ms */
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	pk_view v[4];
	pk_result r;
	view(&v[0], 0, 0, 0.3);
	view(&v[1], 1, 0, 0.3);
	view(&v[2], 2, 1, 0.1);
	view(&v[3], 3, 2, 0.0);
	uint64_t t = 1000;
	/* Local at 30%: local, though Europe is emptier. */
	T_CHECK(first(v, 4, &c, &rs, t, &r) <= 1);
	T_EQ_INT(r.region_rank, 0);
	T_CHECK(!r.spilled);
	/* One local endpoint over the max: still local (the other). */
	v[0].util = 0.8;
	T_EQ_INT(first(v, 4, &c, &rs, t, &r), 1);
	/* Both over: spill to the nearest region; local ones follow last. */
	v[1].util = 0.8;
	T_EQ_INT(first(v, 4, &c, &rs, t, &r), 2);
	T_CHECK(r.spilled && !r.saturated);
	T_EQ_INT(v[r.order[1]].index, 3);
	T_EQ_INT((int)r.n_order, 4);
	/* Back under the max but not under max - margin: stays spilled. */
	v[1].util = 0.55;
	T_EQ_INT(first(v, 4, &c, &rs, t + 2000, &r), 2);
	/* Under max - margin, but the hold (since the spill at t) is... over: back. */
	v[1].util = 0.45;
	T_EQ_INT(first(v, 4, &c, &rs, t + 2000, &r), 1);
	T_EQ_INT(r.region_rank, 0);
	T_EQ_INT((int)rs.r[0].spills_total, 1);
	T_EQ_INT((int)rs.r[0].returns_total, 1);
	/* Flapping around the max: a spill, then no return within the hold even far below. */
	v[1].util = 0.61;
	v[0].util = 0.9;
	T_EQ_INT(first(v, 4, &c, &rs, t + 3000, &r), 2);
	v[1].util = 0.1;
	T_EQ_INT(first(v, 4, &c, &rs, t + 3500, &r), 2);
	T_EQ_INT(first(v, 4, &c, &rs, t + 4000, &r), 1);
	/* Local down: spill; the waterfall goes past a full region too. */
	v[0].available = v[1].available = 0;
	v[2].util = 0.7;
	T_EQ_INT(first(v, 4, &c, &rs, t + 5000, &r), 3);
	T_EQ_INT(r.region_rank, 2);
	/* Everything full: saturated, the nearest live region serves. */
	v[3].util = 0.95;
	T_EQ_INT(first(v, 4, &c, &rs, t + 6000, &r), 2);
	T_CHECK(r.saturated);
	/* Unknown ranks beyond REGION_MAX are clamped, not overflowed. */
	view(&v[0], 0, 1000, 0.1);
	T_EQ_INT(first(v, 1, &c, &rs, t + 7000, &r), 0);
}

static void test_admission(void)
{
	T_EQ_INT(admission_decide(-1, 0, 0, 0), ADMISSION_ADMIT);
	T_EQ_INT(admission_decide(10, 1, 0, 0), ADMISSION_ADMIT);
	T_EQ_INT(admission_decide(0, 1, 0, 0), ADMISSION_ADMIT);
	T_EQ_INT(admission_decide(-1, 1, 0, 0), ADMISSION_SHED);
	T_EQ_INT(admission_decide(-1, 1, 3, 4), ADMISSION_QUEUE);
	T_EQ_INT(admission_decide(-1, 1, 4, 4), ADMISSION_SHED);
	/* Aging: a priority -5 request that waited 6 s ranks above a fresh -1. */
	T_CHECK(admission_rank(-5, 6000) > admission_rank(-1, 0));
	T_CHECK(admission_rank(-1, 0) > admission_rank(-2, 500));
}

/* Serves the queue v (n entries) k times with admission_next, as the tick
 * does: the chosen one leaves, its tenant's turn is noted. Writes the
 * tenants served, in order, into out. */
static void serve(admission_cand *v, size_t n, size_t k, int fair, uint32_t *out)
{
	uint64_t turn = 0;
	for (size_t s = 0; s < k && n; s++) {
		size_t i = admission_next(v, n, fair);
		uint32_t t = v[i].tenant;
		out[s] = t;
		turn++;
		for (size_t j = 0; j < n; j++)
			if (v[j].tenant == t) v[j].tenant_served = turn;
		v[i] = v[--n];
	}
}

static void test_fair_queuing(void)
{
	/* Tenant 1 floods (40 waiting, the oldest), tenant 2 has 3 waiting. */
	admission_cand v[43], w[43];
	for (size_t i = 0; i < 40; i++) v[i] = (admission_cand){-1, 900 - i, 1, 0};
	for (size_t i = 40; i < 43; i++) v[i] = (admission_cand){-1, 100, 2, 0};
	memcpy(w, v, sizeof(v));
	uint32_t order[43];
	serve(v, 43, 6, 1, order);
	/* Fair: turns alternate while both wait. */
	T_EQ_INT(order[0], 1);
	T_EQ_INT(order[1], 2);
	T_EQ_INT(order[2], 1);
	T_EQ_INT(order[3], 2);
	T_EQ_INT(order[5], 2);
	/* Not fair: the flood's older requests all go first. */
	serve(w, 43, 6, 0, order);
	for (int i = 0; i < 6; i++) T_EQ_INT(order[i], 1);
	/* Priorities first: a priority 0 request of the flooding tenant leaves
	 * before a priority -3 one of a tenant never served. */
	admission_cand p[2] = {{-3, 10, 2, 0}, {0, 10, 1, 99}};
	T_EQ_INT(admission_next(p, 2, 1), 1);
	/* Ageing across priorities still wins: -3 that waited 4 s passes a fresh 0. */
	p[0].waited_ms = 4000;
	T_EQ_INT(admission_next(p, 2, 1), 0);
	/* Within one tenant, the oldest first. */
	admission_cand o[3] = {{-1, 10, 5, 0}, {-1, 30, 5, 0}, {-1, 20, 5, 0}};
	T_EQ_INT(admission_next(o, 3, 1), 1);
}

/* The first endpoint for session s over v[0..n). */
static int first_session(pk_view *v, size_t n, gw_picker_cfg *c, region_state *rs, uint64_t s, pk_result *r)
{
	pk_params p = {c, 0, 0, s};
	picker_run(v, n, &p, rs, r);
	return r->n_order ? v[r->order[0]].index : -1;
}

static void test_session_affinity(void)
{
	gw_picker_cfg c = cfg_default();
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	static const char *const labels[] = {"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"};
	pk_view v[4];
	pk_result r;
	int hits[4] = {0};
	for (uint64_t k = 0; k < 400; k++) {
		char key[32];
		snprintf(key, sizeof key, "session-%llu", (unsigned long long)k);
		uint64_t s = picker_session_hash(key, strlen(key));
		for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.2), v[i].label = labels[i];
		/* Different loads: the scorers alone would pick endpoint 3. */
		v[3].util = 0.05;
		int e = first_session(v, 4, &c, &rs, s, &r);
		T_CHECK(r.session_kept);
		hits[e]++;
		/* The same session, other loads: the same endpoint. */
		v[3].util = 0.5;
		v[1].util = 0.01;
		v[e].in_flight = 7;
		T_EQ_INT(first_session(v, 4, &c, &rs, s, &r), e);
		/* Its endpoint over the limit: the next one, the same each time. */
		v[e].util = 0.9;
		int e2 = first_session(v, 4, &c, &rs, s, &r);
		T_CHECK(e2 != e);
		T_EQ_INT(first_session(v, 4, &c, &rs, s, &r), e2);
		/* Back under the limit: back to it. */
		v[e].util = 0.2;
		T_EQ_INT(first_session(v, 4, &c, &rs, s, &r), e);
		/* Tried already (a retry): another. */
		v[e].tried = 1;
		T_CHECK(first_session(v, 4, &c, &rs, s, &r) != e);
	}
	/* Sessions spread over the endpoints (rendezvous hashing). */
	for (int i = 0; i < 4; i++) T_CHECK(hits[i] > 60);
	/* No session: the scorers decide. */
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.2), v[i].label = labels[i];
	v[2].util = 0.01;
	T_EQ_INT(first_session(v, 4, &c, &rs, 0, &r), 2);
	T_CHECK(!r.session_kept);
}

static void test_lora_affinity(void)
{
	gw_picker_cfg c = cfg_default();
	region_state rs;
	memset(&rs, 0, sizeof(rs));
	pk_view v[4];
	pk_result r;
	for (int i = 0; i < 4; i++) view(&v[i], i, 0, 0.2);
	/* Endpoint 3 is the least loaded; the adapter runs on 1, a slot is free on 2. */
	v[3].util = 0.01;
	v[0].adapter = PK_ADAPTER_LISTED;
	v[1].adapter = PK_ADAPTER_RUNNING;
	v[2].adapter = PK_ADAPTER_SLOT;
	v[3].adapter = PK_ADAPTER_LISTED;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 1);
	T_EQ_INT(v[r.order[1]].index, 2);
	T_EQ_INT(v[r.order[2]].index, 3); /* then the least loaded that lists it */
	/* Where it runs but over the limit: a free slot under it wins. */
	v[1].util = 0.9;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 2);
	/* No slot anywhere: the least loaded that lists it. */
	v[1].util = 0.2;
	v[1].adapter = PK_ADAPTER_LISTED;
	v[2].adapter = PK_ADAPTER_LISTED;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 3);
	/* A retry skips the one tried. */
	v[1].adapter = PK_ADAPTER_RUNNING;
	v[1].tried = 1;
	T_EQ_INT(first(v, 4, &c, &rs, 0, &r), 3);
	T_EQ_STR(picker_adapter_name(PK_ADAPTER_SLOT), "slot");
}

int main(void)
{
	T_RUN(test_scores_and_ties);
	T_RUN(test_filters);
	T_RUN(test_prefix_guard);
	T_RUN(test_regions);
	T_RUN(test_admission);
	T_RUN(test_fair_queuing);
	T_RUN(test_session_affinity);
	T_RUN(test_lora_affinity);
	return T_END();
}
