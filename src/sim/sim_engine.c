/*
 * sim_engine.c — FIFO scheduler, KV admission and token timing of the
 * simulator (see sim_engine.h). One ev timer per running request.
 */
#include "sim/sim_engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

enum { ST_NEW = 0,
       ST_WAITING,
       ST_RUNNING,
       ST_FINISHED };

typedef struct req_list {
	sim_req *head, *tail;
} req_list;

struct sim_engine {
	ev_loop *loop;
	sim_engine_cfg cfg;
	char *model;
	sim_kv kv;
	req_list waiting, running;
	sim_engine_stats stats;
	sim_engine_observer obs;
	double slow;
	uint64_t *chain; /* scratch for block chains, chain_cap hashes */
	size_t chain_cap;
	sim_req *in_tick; /* the request whose timer callback is running */
};

static void list_push(req_list *l, sim_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail) l->tail->next = r;
	else l->head = r;
	l->tail = r;
}

static void list_unlink(req_list *l, sim_req *r)
{
	if (r->prev) r->prev->next = r->next;
	else l->head = r->next;
	if (r->next) r->next->prev = r->prev;
	else l->tail = r->prev;
	r->prev = r->next = NULL;
}

/* ---- requests */

void sim_req_init(sim_req *r, size_t max_words)
{
	memset(r, 0, sizeof(*r));
	sim_words_init(&r->words, max_words);
	buf_init(&r->text, 0);
}

void sim_req_deinit(sim_req *r)
{
	sim_words_free(&r->words);
	buf_free(&r->text);
	free(r->tok_end);
	free(r->stop_reason);
	sim_kv_seq_free(&r->seq);
	r->tok_end = NULL;
	r->stop_reason = NULL;
}

const char *sim_req_token(const sim_req *r, size_t i, size_t *len)
{
	uint32_t start = i ? r->tok_end[i - 1] : 0;
	*len = r->tok_end[i] - start;
	return buf_rptr(&r->text) + start;
}

int sim_req_generate(sim_req *r, sim_text *t, size_t max_tokens, int use_eos,
		     const char *const *stops, size_t n_stops)
{
	size_t max_stop = 0;
	for (size_t s = 0; s < n_stops; s++) max_stop = MAX(max_stop, strlen(stops[s]));
	free(r->tok_end);
	r->tok_end = malloc((max_tokens ? max_tokens : 1) * sizeof(*r->tok_end));
	if (!r->tok_end) return -1;
	r->out_tokens = 0;
	r->finish = SIM_FINISH_LENGTH;
	while (r->out_tokens < max_tokens) {
		if (use_eos && sim_text_eos(t)) {
			r->finish = SIM_FINISH_STOP;
			break;
		}
		size_t start = buf_rlen(&r->text);
		if (sim_text_next(t, &r->words, &r->text) < 0) return -1;
		size_t end = buf_rlen(&r->text);
		if (end > UINT32_MAX) return -1;
		r->tok_end[r->out_tokens++] = (uint32_t)end;
		if (!max_stop) continue;
		/* The earliest stop string that ends inside this token. */
		const char *text = buf_rptr(&r->text);
		size_t from = start + 1 > max_stop ? start + 1 - max_stop : 0;
		size_t best = SIZE_MAX, which = 0;
		for (size_t s = 0; s < n_stops; s++) {
			size_t sl = strlen(stops[s]);
			if (!sl) continue;
			const char *p = memmem(text + from, end - from, stops[s], sl);
			if (p && (size_t)(p - text) < best) {
				best = (size_t)(p - text);
				which = s;
			}
		}
		if (best == SIZE_MAX) continue;
		/* Cut the text at the stop; tokens that began after it never came out. */
		while (r->out_tokens > 1 && r->tok_end[r->out_tokens - 2] > best) r->out_tokens--;
		r->tok_end[r->out_tokens - 1] = (uint32_t)best;
		r->text.len = r->text.rd + best;
		if (r->text.data) r->text.data[r->text.len] = '\0';
		r->finish = SIM_FINISH_STOP;
		r->stop_reason = str_dup(stops[which]);
		if (!r->stop_reason) return -1;
		break;
	}
	r->words.n = r->prompt_tokens + r->out_tokens;
	return 0;
}

/* ---- the engine */

sim_engine *sim_engine_new(ev_loop *loop, const sim_engine_cfg *cfg)
{
	sim_engine *e = calloc(1, sizeof(*e));
	if (!e) return NULL;
	e->loop = loop;
	e->cfg = *cfg;
	e->model = str_dup(cfg->model ? cfg->model : "");
	e->slow = 1.0;
	if (!e->model || sim_kv_init(&e->kv, cfg->kv_blocks, e->model) < 0) {
		free(e->model);
		free(e);
		return NULL;
	}
	e->cfg.model = e->model;
	return e;
}

void sim_engine_free(sim_engine *e)
{
	if (!e) return;
	while (e->waiting.head) sim_engine_abort(e, e->waiting.head);
	while (e->running.head) sim_engine_abort(e, e->running.head);
	sim_kv_deinit(&e->kv);
	free(e->chain);
	free(e->model);
	free(e);
}

void sim_engine_set_observer(sim_engine *e, const sim_engine_observer *o)
{
	e->obs = *o;
}

void sim_engine_set_slow(sim_engine *e, double factor)
{
	e->slow = factor > 0 ? factor : 1.0;
}

const sim_engine_stats *sim_engine_get_stats(const sim_engine *e) { return &e->stats; }
const sim_kv *sim_engine_kv(const sim_engine *e) { return &e->kv; }
const sim_engine_cfg *sim_engine_get_cfg(const sim_engine *e) { return &e->cfg; }

static void observe(void (*fn)(void *, double), void *arg, uint64_t from_ms, uint64_t to_ms)
{
	if (fn) fn(arg, (double)(to_ms - from_ms) / 1000.0);
}

static int64_t tick(ev_loop *loop, uint64_t id, void *arg);
static void schedule(sim_engine *e);

/* Ends a running request: out of the running list, blocks released. */
static void finish_running(sim_engine *e, sim_req *r, int finish)
{
	list_unlink(&e->running, r);
	e->stats.running--;
	sim_kv_release(&e->kv, &r->seq);
	e->stats.success_total[finish]++;
	r->state = ST_FINISHED;
	r->done = 1;
}

static double itl_ms(const sim_engine *e)
{
	double running = e->stats.running ? e->stats.running : 1;
	return e->cfg.itl_ms * (1.0 + e->cfg.itl_growth * (running - 1.0)) * e->slow;
}

/* Milliseconds from now until r's next due time (never negative). */
static int64_t due_in(const sim_engine *e, const sim_req *r)
{
	double d = r->next_due_ms - (double)ev_now_ms(e->loop);
	return d <= 0 ? 0 : (int64_t)llround(d);
}

/* Per-request timer: emits the next token (the first one after the prefill). */
static int64_t tick(ev_loop *loop, uint64_t id, void *arg)
{
	sim_req *r = arg;
	sim_engine *e = r->engine;
	uint64_t now = ev_now_ms(loop);
	if (r->state != ST_RUNNING) return -1;
	if (r->emitted < r->out_tokens) {
		if (sim_kv_grow(&e->kv, &r->seq, r->words.hash, r->prompt_tokens + r->emitted + 1) < 0) {
			/* Cannot happen with reservations; wait a step rather than overrun. */
			r->next_due_ms = (double)now + itl_ms(e);
			return due_in(e, r);
		}
		r->emitted++;
		e->stats.generation_tokens_total++;
		if (r->emitted == 1) {
			r->first_ms = now;
			if (e->obs.ttft) observe(e->obs.ttft, e->obs.arg, r->arrival_ms, now);
		} else if (e->obs.itl) {
			observe(e->obs.itl, e->obs.arg, r->last_ms, now);
		}
		r->last_ms = now;
	} else if (!r->first_ms) {
		r->first_ms = now;
		if (e->obs.ttft) observe(e->obs.ttft, e->obs.arg, r->arrival_ms, now);
	}
	if (r->emitted >= r->out_tokens) {
		r->timer = 0;
		finish_running(e, r, r->finish);
		if (e->obs.e2e) observe(e->obs.e2e, e->obs.arg, r->arrival_ms, now);
		/* Last use of r: the callback may free it. */
		r->on_progress(r, r->arg);
		schedule(e);
		return -1;
	}
	r->next_due_ms += itl_ms(e);
	e->in_tick = r;
	r->on_progress(r, r->arg);
	e->in_tick = NULL;
	if (r->state != ST_RUNNING) return -1; /* aborted from the callback */
	return due_in(e, r);
}

/* Admits waiting requests, first come first served, while a slot and the
 * blocks the head needs are free. */
static void schedule(sim_engine *e)
{
	while (e->waiting.head && e->stats.running < e->cfg.max_num_seqs) {
		sim_req *r = e->waiting.head;
		size_t full = r->prompt_tokens / SIM_KV_BLOCK_TOKENS;
		if (full > e->chain_cap) {
			uint64_t *p = realloc(e->chain, full * sizeof(*p));
			if (!p) return; /* tried again at the next event */
			e->chain = p;
			e->chain_cap = full;
		}
		full = sim_kv_chain(&e->kv, r->words.hash, r->prompt_tokens, e->chain, full);
		/* As vLLM: the last prompt token is always computed, never a hit. */
		size_t hit_cap = r->prompt_tokens ? (r->prompt_tokens - 1) / SIM_KV_BLOCK_TOKENS : 0;
		size_t hit = sim_kv_match(&e->kv, e->chain, MIN(full, hit_cap));
		uint32_t now_blocks = sim_kv_blocks_for(r->prompt_tokens);
		uint32_t total = sim_kv_blocks_for(r->prompt_tokens + r->out_tokens);
		if (!sim_kv_can_admit(&e->kv, e->chain, hit, total)) return;
		if (sim_kv_admit(&e->kv, &r->seq, e->chain, full, hit, now_blocks, total) < 0) return;
		list_unlink(&e->waiting, r);
		e->stats.waiting--;
		list_push(&e->running, r);
		e->stats.running++;
		r->state = ST_RUNNING;
		r->cached_tokens = hit * SIM_KV_BLOCK_TOKENS;
		e->stats.prefix_queries_total += r->prompt_tokens;
		e->stats.prefix_hits_total += r->cached_tokens;
		e->stats.prompt_tokens_total += r->prompt_tokens;
		uint64_t t = ev_now_ms(e->loop);
		r->admit_ms = t;
		if (e->obs.queue) observe(e->obs.queue, e->obs.arg, r->arrival_ms, t);
		double prefill = (e->cfg.ttft_ms + r->extra_ttft_ms + e->cfg.prefill_ms_per_token * (double)(r->prompt_tokens - r->cached_tokens)) * e->slow;
		r->next_due_ms = (double)t + prefill;
		r->timer = ev_timer_add(e->loop, (uint64_t)due_in(e, r), tick, r);
		if (!r->timer) {
			/* Out of memory for a timer: give the request back its place. */
			list_unlink(&e->running, r);
			e->stats.running--;
			sim_kv_release(&e->kv, &r->seq);
			list_push(&e->waiting, r);
			e->stats.waiting++;
			r->state = ST_WAITING;
			return;
		}
	}
}

int sim_engine_submit(sim_engine *e, sim_req *r, int *status, char *err, size_t err_len)
{
	uint32_t total = sim_kv_blocks_for(r->prompt_tokens + r->out_tokens);
	if (total > e->kv.num_blocks) {
		*status = 400;
		snprintf(err, err_len,
			 "This request needs %u KV-cache blocks of %d tokens (%zu prompt + %zu output "
			 "tokens), but the cache holds only %u blocks.",
			 total, SIM_KV_BLOCK_TOKENS, r->prompt_tokens, r->out_tokens, e->kv.num_blocks);
		return -1;
	}
	if (e->stats.waiting >= e->cfg.max_waiting) {
		*status = 503;
		snprintf(err, err_len, "The waiting queue is full (%u requests).", e->cfg.max_waiting);
		return -1;
	}
	r->engine = e;
	r->emitted = 0;
	r->done = 0;
	r->first_ms = r->last_ms = r->admit_ms = 0;
	r->arrival_ms = ev_now_ms(e->loop);
	r->state = ST_WAITING;
	list_push(&e->waiting, r);
	e->stats.waiting++;
	schedule(e);
	return 0;
}

void sim_engine_abort(sim_engine *e, sim_req *r)
{
	if (r->engine != e) return;
	if (r->state == ST_WAITING) {
		list_unlink(&e->waiting, r);
		e->stats.waiting--;
		r->state = ST_FINISHED;
		r->done = 1;
		e->stats.success_total[SIM_FINISH_ABORT]++;
	} else if (r->state == ST_RUNNING) {
		if (e->in_tick != r) ev_timer_del(e->loop, r->timer);
		r->timer = 0;
		finish_running(e, r, SIM_FINISH_ABORT);
		/* Freed blocks may let a waiting request in; not from inside a tick
		 * of r, where the caller still holds r. */
		schedule(e);
	}
	r->engine = NULL;
}
