/*
 * picker.c — the picker's pipeline (picker.h) over an array of views, whole:
 * the filters, the scorers, the region waterfall with its hysteresis and the
 * admission policy, each a static function next to the table that names it,
 * then the run that orders the candidates. Changing how endpoints are picked
 * means changing this file (and its glue, picker_gw.c, for a new input).
 *
 * Pure: no gateway structs, no clock but p->now_ms, no allocation; unit-tested
 * on arrays of views (tests/unit/test_picker.c).
 */
#include "gateway/picker.h"
#include "gateway/admission.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ filters
 * A filter: 1 keeps v. Hard ones (hard = 1 in the tables below) may empty the
 * set; a soft one that would drop every candidate drops none. */

/* Never an endpoint this request already tried (hard). */
static int filter_untried(const pk_view *v, const pk_params *p) { return !v->tried; }

/* Never one the active checks say is down, or that left the configuration (hard). */
static int filter_healthy(const pk_view *v, const pk_params *p) { return v->available; }

/* Not one passive detection ejected (soft: a pool whose every endpoint is
 * ejected still serves). */
static int filter_not_ejected(const pk_view *v, const pk_params *p) { return !v->ejected; }

/* Endpoints that serve the request's model: for pools that list their models
 * every endpoint does; for the others, what the endpoint's GET /v1/models said
 * (one not asked yet counts as serving). Soft. */
static int filter_model(const pk_view *v, const pk_params *p) { return v->serves_model; }

/* At or under the pool's max utilization (stale metrics count as full) and,
 * when max_waiting is set, with at most that many requests queued. Soft: when
 * every candidate is full, all stay (and the pool is saturated). */
static int filter_utilization(const pk_view *v, const pk_params *p)
{
	const gw_picker_cfg *c = p->cfg;
	if (v->stale || v->util > c->max_utilization) return 0;
	if (c->max_waiting > 0 && v->waiting > c->max_waiting) return 0;
	return 1;
}

/* ------------------------------------------------------------ scorers
 * A scorer sets cand[i]->score[its slot] to 0..1 (higher is better) for the n
 * candidates; the relative ones normalise over them. */

/* KV-cache headroom: 1 - utilization. Absolute: an empty cache is worth the
 * same whatever the others hold. */
static void score_kv(pk_view *const cand[], size_t n, const pk_params *p)
{
	for (size_t i = 0; i < n; i++) {
		double u = cand[i]->stale ? 1 : cand[i]->util;
		cand[i]->score[PK_S_KV] = u < 0 ? 1 : u > 1 ? 0
							    : 1 - u;
	}
}

/* Queue depth as last scraped: the shortest queue scores 1, the longest 0,
 * all equal 1. */
static void score_queue(pk_view *const cand[], size_t n, const pk_params *p)
{
	double lo = 0, hi = 0;
	for (size_t i = 0; i < n; i++) {
		double w = cand[i]->waiting;
		if (i == 0 || w < lo) lo = w;
		if (i == 0 || w > hi) hi = w;
	}
	for (size_t i = 0; i < n; i++)
		cand[i]->score[PK_S_QUEUE] = hi > lo ? (hi - cand[i]->waiting) / (hi - lo) : 1;
}

static double inflight_per_weight(const pk_view *v) { return (double)v->in_flight / (double)(v->weight ? v->weight : 1); }

/* The gateway's own requests in flight per unit of weight: the least busy
 * scores 1, the busiest 0. It moves with every request, so a burst that
 * arrives between two scrapes still spreads. */
static void score_inflight(pk_view *const cand[], size_t n, const pk_params *p)
{
	double lo = 0, hi = 0;
	for (size_t i = 0; i < n; i++) {
		double l = inflight_per_weight(cand[i]);
		if (i == 0 || l < lo) lo = l;
		if (i == 0 || l > hi) hi = l;
	}
	for (size_t i = 0; i < n; i++)
		cand[i]->score[PK_S_INFLIGHT] = hi > lo ? (hi - inflight_per_weight(cand[i])) / (hi - lo) : 1;
}

/* Prefix affinity: the share of the request's prompt blocks the endpoint
 * probably holds (prefix_index.h). The load guard: an endpoint over
 * prefix_guard utilization (stale counts as full), or with more than
 * prefix_guard_in_flight requests above the least busy candidate, scores 0
 * here, so affinity never piles traffic onto a full endpoint ("sticky until
 * saturated"). */
static void score_prefix(pk_view *const cand[], size_t n, const pk_params *p)
{
	const gw_picker_cfg *c = p->cfg;
	double guard = c->prefix_guard < 0 ? c->max_utilization : c->prefix_guard;
	uint32_t least = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || cand[i]->in_flight < least) least = cand[i]->in_flight;
	for (size_t i = 0; i < n; i++) {
		pk_view *v = cand[i];
		v->guarded = 0;
		if (!p->request_blocks) {
			v->score[PK_S_PREFIX] = 0;
			continue;
		}
		double s = (double)v->prefix_blocks / (double)p->request_blocks;
		if (s > 1) s = 1;
		if (s > 0 && (v->stale || v->util > guard ||
			      (c->prefix_guard_in_flight && v->in_flight > least + c->prefix_guard_in_flight))) {
			v->guarded = 1;
			s = 0;
		}
		v->score[PK_S_PREFIX] = s;
	}
}

/* ------------------------------------------------------------ regions
 * The waterfall's hysteresis: a region with no endpoint under max_util is
 * marked spilled; it is taken back only when an endpoint is under
 * max_util - return_margin and it has been spilled for at least hold_ms (both,
 * so neither a level hovering at the limit nor one good scrape brings traffic
 * back). One flag and one timestamp per region, moved only here. Returns 1
 * when the region has capacity now. */
static int region_update(region_state *rs, int rank, double best_util, uint32_t available, double max_util,
			 double return_margin, uint64_t hold_ms, uint64_t now_ms)
{
	if (rank < 0) return 0;
	if (rank >= REGION_MAX) rank = REGION_MAX - 1;
	region_entry *e = &rs->r[rank];
	e->best_util = available ? best_util : 2;
	e->available = available;
	if (!e->spilled) {
		if (!available || best_util > max_util) {
			e->spilled = 1;
			e->since_ms = now_ms;
			e->spills_total++;
		}
	} else {
		double back = max_util - return_margin;
		if (available && best_util <= back && now_ms - e->since_ms >= hold_ms) {
			e->spilled = 0;
			e->since_ms = now_ms;
			e->returns_total++;
		}
	}
	return !e->spilled;
}

/* ------------------------------------------------------------ admission policy
 * (admission.h): pure, no state, no clock. */

int admission_decide(int priority, int saturated, uint32_t queued, uint32_t queue_cap)
{
	if (!saturated || priority >= 0) return ADMISSION_ADMIT;
	if (queue_cap && queued < queue_cap) return ADMISSION_QUEUE;
	return ADMISSION_SHED;
}

double admission_rank(int priority, uint64_t waited_ms)
{
	return (double)priority + (double)waited_ms / ADMISSION_AGING_MS;
}

size_t admission_next(const admission_cand *v, size_t n, int fair)
{
	size_t best = 0;
	double best_rank = admission_rank(v[0].priority, v[0].waited_ms);
	for (size_t i = 1; i < n; i++) {
		double r = admission_rank(v[i].priority, v[i].waited_ms);
		if (r > best_rank || (r == best_rank && v[i].waited_ms > v[best].waited_ms)) best = i, best_rank = r;
	}
	if (!fair) return best;
	int prio = v[best].priority;
	size_t pick = best;
	for (size_t i = 0; i < n; i++) {
		if (v[i].priority != prio) continue;
		const admission_cand *a = &v[i], *b = &v[pick];
		if (a->tenant_served != b->tenant_served ? a->tenant_served < b->tenant_served
		    : a->tenant != b->tenant             ? a->tenant < b->tenant
							 : a->waited_ms > b->waited_ms)
			pick = i;
	}
	return pick;
}

/* ------------------------------------------------------------ the tables and the run */

typedef int pk_filter_fn(const pk_view *v, const pk_params *p);
typedef void pk_scorer_fn(pk_view *const cand[], size_t n, const pk_params *p);

typedef struct pk_filter {
	pk_filter_fn *fn;
	unsigned bit;
	int hard; /* may empty the set (the request then fails) */
	const char *name;
} pk_filter;

/* Before the region choice, in order. */
static const pk_filter pre_filters[] = {
	{filter_untried, PK_F_UNTRIED, 1, "untried"},
	{filter_healthy, PK_F_HEALTHY, 1, "healthy"},
	{filter_not_ejected, PK_F_NOT_EJECTED, 0, "not_ejected"},
	{filter_model, PK_F_MODEL, 0, "model"},
};
/* Within the chosen region. */
static const pk_filter post_filter = {filter_utilization, PK_F_UTILIZATION, 0, "utilization"};

static const struct {
	pk_scorer_fn *fn;
	const char *name;
} scorers[PK_N_SCORERS] = {
	[PK_S_KV] = {score_kv, "kv"},
	[PK_S_QUEUE] = {score_queue, "queue"},
	[PK_S_INFLIGHT] = {score_inflight, "in_flight"},
	[PK_S_PREFIX] = {score_prefix, "prefix"},
};

const char *picker_scorer_name(int s) { return s >= 0 && s < PK_N_SCORERS ? scorers[s].name : "?"; }

void picker_filter_names(unsigned mask, char *dst, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} all[] = {
		{PK_F_UNTRIED, "untried"},
		{PK_F_HEALTHY, "healthy"},
		{PK_F_NOT_EJECTED, "not_ejected"},
		{PK_F_MODEL, "model"},
		{PK_F_REGION, "region"},
		{PK_F_UTILIZATION, "utilization"},
	};
	size_t off = 0;
	if (size) dst[0] = 0;
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		if (!(mask & all[i].bit)) continue;
		int k = snprintf(dst + off, off < size ? size - off : 0, "%s%s", off ? "," : "", all[i].name);
		if (k > 0) off += (size_t)k;
		if (off >= size) break;
	}
}

/* Keeps the members of set[0..n) that pass f; if none would, keeps them all
 * (soft filters) and flags it. Returns the new size. */
static size_t apply(const pk_filter *f, pk_view **set, size_t n, const pk_params *p, unsigned *relaxed)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (set[i]->passed & f->bit) k++;
	if (k == 0 && !f->hard) {
		if (n) *relaxed |= f->bit;
		return n;
	}
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (set[i]->passed & f->bit) set[k++] = set[i];
	return k;
}

static double weight_of(const gw_picker_cfg *c, int s)
{
	switch (s) {
	case PK_S_KV: return c->weight_kv;
	case PK_S_QUEUE: return c->weight_queue;
	case PK_S_INFLIGHT: return c->weight_inflight;
	default: return c->weight_prefix;
	}
}

static void score_group(pk_view **g, size_t n, const pk_params *p)
{
	if (!n) return;
	for (int s = 0; s < PK_N_SCORERS; s++) scorers[s].fn(g, n, p);
	for (size_t i = 0; i < n; i++) {
		double t = 0;
		for (int s = 0; s < PK_N_SCORERS; s++) t += weight_of(p->cfg, s) * g[i]->score[s];
		g[i]->total = t;
	}
}

/* Best first: the higher total, then fewer in flight per weight, then fewer
 * picks per weight, then configuration order. */
static int cmp_views(const void *pa, const void *pb)
{
	const pk_view *a = *(pk_view *const *)pa, *b = *(pk_view *const *)pb;
	double d = a->total - b->total;
	if (d > 1e-9) return -1;
	if (d < -1e-9) return 1;
	uint64_t la = (uint64_t)a->in_flight * b->weight, lb = (uint64_t)b->in_flight * a->weight;
	if (la != lb) return la < lb ? -1 : 1;
	uint64_t pa2 = a->picked_total * b->weight, pb2 = b->picked_total * a->weight;
	if (pa2 != pb2) return pa2 < pb2 ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* The utilization a view counts with for its region's capacity. */
static double effective_util(const pk_view *v, const gw_picker_cfg *c)
{
	if (v->stale) return c->max_utilization + 1;
	if (c->max_waiting > 0 && v->waiting > c->max_waiting) return c->max_utilization + 1;
	return v->util;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

uint64_t picker_session_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	h = mix64(h);
	return h ? h : 1;
}

uint64_t picker_session_rank(uint64_t session, const char *label)
{
	return mix64(session ^ picker_session_hash(label, strlen(label)));
}

const char *picker_adapter_name(int a)
{
	static const char *const names[] = {"none", "listed", "slot", "running"};
	return a >= 0 && a <= PK_ADAPTER_RUNNING ? names[a] : "none";
}

/* LoRA affinity: in the first tier (ordered by score), endpoints where the
 * request's adapter runs first, then those with a free slot, then the rest,
 * each class in score order. Returns the best class present. */
static int adapter_first(pk_view *v, pk_result *out, size_t first_tier)
{
	int best = PK_ADAPTER_NONE;
	for (size_t i = 0; i < first_tier; i++)
		if (v[out->order[i]].adapter > best) best = v[out->order[i]].adapter;
	if (best <= PK_ADAPTER_LISTED) return best;
	int sorted[GW_MAX_ENDPOINTS];
	size_t k = 0;
	for (int cls = PK_ADAPTER_RUNNING; cls >= PK_ADAPTER_NONE; cls--)
		for (size_t i = 0; i < first_tier; i++)
			if (v[out->order[i]].adapter == cls) sorted[k++] = out->order[i];
	memcpy(out->order, sorted, first_tier * sizeof(sorted[0]));
	return best;
}

/* The session's endpoint first: among the first tier (the chosen region),
 * of the best adapter class, the one of the highest rank that passed every
 * filter. */
static void session_first(pk_view *v, const pk_params *p, pk_result *out, size_t first_tier, int adapter)
{
	size_t best = first_tier;
	uint64_t best_rank = 0;
	for (size_t i = 0; i < first_tier; i++) {
		const pk_view *x = &v[out->order[i]];
		if ((x->passed & PK_F_ALL) != PK_F_ALL || x->adapter < adapter) continue;
		uint64_t r = picker_session_rank(p->session, x->label);
		if (best == first_tier || r > best_rank) best = i, best_rank = r;
	}
	if (best == first_tier) return;
	int keep = out->order[best];
	memmove(&out->order[1], &out->order[0], best * sizeof(out->order[0]));
	out->order[0] = keep;
	out->session_kept = 1;
}

static int clamp_rank(int r) { return r < 0 ? 0 : r >= REGION_MAX ? REGION_MAX - 1
								  : r; }

void picker_run(pk_view *v, size_t n, const pk_params *p, region_state *rs, pk_result *out)
{
	const gw_picker_cfg *c = p->cfg;
	/* Everything but order[], which is written up to n_order (4 KiB not
	 * cleared per pick). */
	out->n_order = 0;
	out->region_rank = -1;
	out->spilled = out->saturated = out->session_kept = 0;
	out->relaxed = 0;
	if (n > GW_MAX_ENDPOINTS) n = GW_MAX_ENDPOINTS;

	/* Each filter's verdict on each view. */
	for (size_t i = 0; i < n; i++) {
		v[i].passed = 0;
		v[i].total = 0;
		v[i].guarded = 0;
		memset(v[i].score, 0, sizeof(v[i].score));
		for (size_t f = 0; f < ARRAY_LEN(pre_filters); f++)
			if (pre_filters[f].fn(&v[i], p)) v[i].passed |= pre_filters[f].bit;
		if (post_filter.fn(&v[i], p)) v[i].passed |= post_filter.bit;
	}

	/* Region capacity, from every endpoint (a request's tries aside), with
	 * the hysteresis of region_update. */
	int present[REGION_MAX], cap[REGION_MAX];
	double best[REGION_MAX];
	uint32_t avail[REGION_MAX];
	int n_ranks = 0; /* ranks above the views' highest are absent: not walked */
	for (size_t i = 0; i < n; i++)
		if (clamp_rank(v[i].region_rank) >= n_ranks) n_ranks = clamp_rank(v[i].region_rank) + 1;
	for (int r = 0; r < n_ranks; r++) {
		present[r] = cap[r] = 0;
		avail[r] = 0;
		best[r] = 2;
	}
	for (size_t i = 0; i < n; i++) {
		int r = clamp_rank(v[i].region_rank);
		present[r] = 1;
		if (!v[i].available || v[i].ejected || !v[i].serves_model) continue;
		avail[r]++;
		double u = effective_util(&v[i], c);
		if (u < best[r]) best[r] = u;
	}
	int any_cap = 0;
	for (int r = 0; r < n_ranks; r++) {
		if (!present[r]) continue;
		cap[r] = region_update(rs, r, best[r], avail[r], c->max_utilization, c->return_margin, c->region_hold_ms,
				       p->now_ms);
		any_cap |= cap[r];
	}
	out->saturated = !any_cap;

	/* The candidates: hard filters, then the soft ones before the region. */
	pk_view *set[GW_MAX_ENDPOINTS];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) set[m++] = &v[i];
	for (size_t f = 0; f < ARRAY_LEN(pre_filters) && m; f++) m = apply(&pre_filters[f], set, m, p, &out->relaxed);
	if (!m) return;

	/* The region: the first in waterfall order with capacity and a candidate;
	 * none: the nearest with a candidate. */
	int nearest = -1, chosen = -1;
	for (size_t i = 0; i < m; i++) {
		int r = clamp_rank(set[i]->region_rank);
		if (nearest < 0 || r < nearest) nearest = r;
		if (cap[r] && (chosen < 0 || r < chosen)) chosen = r;
	}
	if (chosen < 0) chosen = nearest;
	out->region_rank = chosen;
	out->spilled = chosen != nearest;

	/* Tiers: chosen region under the max, chosen region over it, then every
	 * other region in waterfall order (under, over), then what the soft
	 * filters before the region dropped. */
	pk_view *in_region[GW_MAX_ENDPOINTS];
	size_t k = 0;
	for (size_t i = 0; i < m; i++)
		if (clamp_rank(set[i]->region_rank) == chosen) {
			set[i]->passed |= PK_F_REGION;
			in_region[k++] = set[i];
		}
	/* A soft filter over the region: would it drop all, it drops none. */
	unsigned relaxed_util = 0;
	size_t fit = apply(&post_filter, in_region, k, p, &relaxed_util);
	out->relaxed |= relaxed_util;

	/* Mark membership to build the tiers. */
	int tier_of[GW_MAX_ENDPOINTS];
	for (size_t i = 0; i < n; i++) tier_of[i] = -1;
	for (size_t i = 0; i < m; i++) {
		int r = clamp_rank(set[i]->region_rank);
		int pos = r == chosen ? 0 : 1 + (r < chosen ? r + REGION_MAX : r); /* spilled-from regions last */
		int over = !(set[i]->passed & PK_F_UTILIZATION);
		tier_of[set[i] - v] = pos * 2 + over;
	}
	for (size_t i = 0; i < fit; i++) tier_of[in_region[i] - v] = 0; /* relaxed: all of the region are tier 0 */
	int last = 2 * (2 * REGION_MAX + 2);
	for (size_t i = 0; i < n; i++)
		if (tier_of[i] < 0 && (v[i].passed & PK_F_UNTRIED) && (v[i].passed & PK_F_HEALTHY)) tier_of[i] = last;

	/* Group by tier (a stable order: tier, then position), score each group,
	 * order it. */
	pk_view *g[GW_MAX_ENDPOINTS];
	size_t gn = 0;
	for (size_t i = 0; i < n; i++)
		if (tier_of[i] >= 0) g[gn++] = &v[i];
	for (size_t i = 1; i < gn; i++) { /* insertion sort by tier: few distinct tiers, mostly in order */
		pk_view *x = g[i];
		size_t j = i;
		while (j > 0 && tier_of[g[j - 1] - v] > tier_of[x - v]) {
			g[j] = g[j - 1];
			j--;
		}
		g[j] = x;
	}
	size_t first_tier = 0;
	for (size_t a = 0; a < gn;) {
		size_t b = a;
		while (b < gn && tier_of[g[b] - v] == tier_of[g[a] - v]) b++;
		score_group(g + a, b - a, p);
		qsort(g + a, b - a, sizeof(g[0]), cmp_views);
		for (size_t i = a; i < b; i++) out->order[out->n_order++] = (int)(g[i] - v);
		if (a == 0 && tier_of[g[a] - v] == 0) first_tier = b;
		a = b;
	}
	int adapter = first_tier ? adapter_first(v, out, first_tier) : PK_ADAPTER_NONE;
	if (p->session && first_tier) session_first(v, p, out, first_tier, adapter);
}
