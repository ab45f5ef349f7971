/*
 * scheduler.c — continuous batching: the scheduler thread, its queues, the
 * batch of each step (decode tokens first, then prompt chunks, then new
 * requests), preemption by recompute, sampling and stop conditions.
 *
 * Lists: `waiting` (FIFO, shared with submitters under mu) and `running`
 * (oldest first; touched by the scheduler thread only, under mu too so that
 * stats and cancellations see a consistent picture). A request is referenced by
 * its submitter and by the scheduler until it finishes; the last reference
 * frees it.
 */
#include "infer/scheduler.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/log.h"
#include "core/util.h"

enum { WHERE_NONE = 0,
       WHERE_WAITING,
       WHERE_RUNNING };

const char *const sched_phase_name[SCHED_PHASES] = {
	[SCHED_PHASE_SCHEDULE] = "schedule",
	[SCHED_PHASE_PREFILL] = "prefill",
	[SCHED_PHASE_DECODE] = "decode",
	[SCHED_PHASE_OUTPUT] = "output_projection",
	[SCHED_PHASE_SAMPLE] = "sample",
	[SCHED_PHASE_PUBLISH] = "publish",
};

/* Prompt rows whose log-probabilities one step computes. Each costs a whole
 * output projection and three passes over the vocabulary (a 262k vocabulary
 * makes a row dearer than a decode token of a small model), and every other
 * sequence's token waits for the step: few rows a step keep their inter-token
 * time bounded while a long prompt_logprobs prompt goes through. */
#define SCHED_PLP_ROWS_PER_STEP 8

struct sched_req {
	sched_params p;
	void *user;
	int32_t *tokens; /* [n_prompt + forced + max_tokens]: prompt, then sampled ids */
	int n_prompt;    /* grows while forced text is replayed */
	int cap_prompt;  /* room for the prompt and the forced tokens */
	char *forced;    /* forced text still to replay, or NULL */
	size_t forced_len, forced_at;
	sched_token *out;     /* [max_tokens] */
	sampler_logprob *top; /* [max_tokens * top_k] or NULL */
	int top_k;
	int32_t *bias_ids; /* the logit bias, owned; sp points here */
	float *bias;
	int32_t ban[SCHED_MAX_STOP_IDS + 8]; /* the stop ids, banned while n_gen < min_tokens */
	int n_ban;
	sched_token *pout;     /* [n_submitted] prompt log-probabilities, or NULL */
	sampler_logprob *ptop; /* [n_submitted * p.prompt_top] */
	int n_submitted;
	sampler_rng rng;
	/* scheduler thread */
	int seq;        /* KV sequence, -1 when not admitted */
	int n_computed; /* tokens whose K/V are stored */
	int n_gen;      /* tokens sampled */
	int scheduled;  /* admitted at least once */
	uint64_t t_arrival_ns, t_last_ns;
	sched_req *prev, *next;
	int where;
	/* shared, under mu */
	int n_out;        /* tokens published */
	int n_prompt_out; /* n_prompt published (it grows during a replay) */
	sched_finish finish;
	int32_t stop_id;
	sched_finish cancel; /* asked by the caller; SCHED_RUNNING = no */
	int refs;
};

typedef struct req_list {
	sched_req *head, *tail;
	int n;
} req_list;

struct sched {
	engine *e;
	kv_cache *kv;
	sched_config cfg;
	int vocab, max_model_len;
	const model_generation *gen;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int hold_admission; /* skip admission once (after a failed step) */
	req_list waiting, running;
	sched_stats stats;
	/* scheduler thread only */
	sampler *smp;
	float *logits;          /* [max_num_seqs][vocab] */
	float *plp_logits;      /* [plp_rows][vocab]: every row of one prompt chunk */
	int plp_rows;           /* rows of a prompt-logprobs chunk; 0 = none possible */
	engine_item *items;     /* [max_num_seqs] */
	sched_req **item_req;   /* [max_num_seqs] */
	float **item_row;       /* [max_num_seqs] the row to sample from, or NULL */
	sched_finish *item_fin; /* [max_num_seqs] how each item's step ended */
	int32_t *item_stop;     /* [max_num_seqs] the stop token each one sampled */
};

/* ------------------------------------------------------------ lists */

static void list_push_tail(req_list *l, sched_req *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail) l->tail->next = q;
	else l->head = q;
	l->tail = q;
	l->n++;
}

static void list_push_head(req_list *l, sched_req *q)
{
	q->prev = NULL;
	q->next = l->head;
	if (l->head) l->head->prev = q;
	else l->tail = q;
	l->head = q;
	l->n++;
}

static void list_remove(req_list *l, sched_req *q)
{
	if (q->prev) q->prev->next = q->next;
	else l->head = q->next;
	if (q->next) q->next->prev = q->prev;
	else l->tail = q->prev;
	q->prev = q->next = NULL;
	l->n--;
}

/* ------------------------------------------------------------ requests */

static void req_free(sched_req *q)
{
	free(q->forced);
	free(q->tokens);
	free(q->out);
	free(q->top);
	free(q->bias_ids);
	free(q->bias);
	free(q->pout);
	free(q->ptop);
	free(q);
}

static void req_unref_locked(sched_req *q)
{
	if (--q->refs == 0) req_free(q);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* Ends q (under mu): frees its sequence, takes it off its list, drops the
 * scheduler's reference. */
static void finish_locked(sched *s, sched_req *q, sched_finish why, int32_t stop_id)
{
	if (q->finish != SCHED_RUNNING) return;
	if (q->seq >= 0) {
		kv_seq_free(s->kv, q->seq);
		q->seq = -1;
	}
	if (q->where == WHERE_RUNNING) list_remove(&s->running, q);
	else if (q->where == WHERE_WAITING) list_remove(&s->waiting, q);
	q->where = WHERE_NONE;
	q->finish = why;
	q->stop_id = stop_id;
	q->n_out = q->n_gen;
	q->n_prompt_out = q->n_prompt;
	s->stats.finished_total[why]++;
	if (s->cfg.obs.finished)
		s->cfg.obs.finished(s->cfg.obs.arg, secs(time_mono_ns() - q->t_arrival_ns), why, q->n_prompt, q->n_gen);
	req_unref_locked(q);
}

/* Puts a running request back at the head of the queue, its blocks freed: it
 * will recompute prompt + generated tokens (the cached prefix aside). */
static void preempt_locked(sched *s, sched_req *q)
{
	kv_seq_free(s->kv, q->seq);
	q->seq = -1;
	q->n_computed = 0;
	list_remove(&s->running, q);
	list_push_head(&s->waiting, q);
	q->where = WHERE_WAITING;
	s->stats.preemptions_total++;
	log_ratelimited(LOG_INFO, "preempted a sequence of %d tokens (KV cache full)", q->n_prompt + q->n_gen);
}

/* Tokens q must have in the cache before its next sample. */
static int target_len(const sched_req *q) { return q->n_prompt + q->n_gen; }

/* ------------------------------------------------------------ the step */

/* Positions seq can still take without new blocks, plus those free blocks give. */
static int room_tokens(sched *s, int seq, int free_blocks)
{
	int nb = 0;
	kv_seq_blocks(s->kv, seq, &nb);
	int room = nb * KV_BLOCK_TOKENS - kv_seq_len(s->kv, seq);
	return room + free_blocks * KV_BLOCK_TOKENS;
}

static int blocks_for(int tokens) { return (tokens + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS; }

/* q still has prompt tokens whose log-probabilities are to be computed. */
static int wants_plp(const sched_req *q) { return q->pout && q->n_computed < q->n_submitted - 1; }

/* Adds an item for q: n tokens from its next uncomputed one. A chunk that
 * needs prompt log-probabilities (plp) asks for all its rows, in plp_logits. */
static void add_item(sched *s, int *n_items, int *n_logits, sched_req *q, int n, int plp)
{
	int k = *n_items;
	int last = q->n_computed + n == target_len(q);
	float *row = NULL;
	s->items[k] = (engine_item){.seq = q->seq, .tokens = q->tokens + q->n_computed, .n_tokens = n};
	if (plp) {
		s->items[k].logits = s->plp_logits;
		s->items[k].n_logits = n;
		if (last) row = s->plp_logits + (size_t)(n - 1) * (size_t)s->vocab;
	} else if (last) {
		row = s->logits + (size_t)(*n_logits)++ * (size_t)s->vocab;
		s->items[k].logits = row;
	}
	s->item_row[k] = row;
	s->item_req[k] = q;
	*n_items = k + 1;
}

/* After a step: the log-probabilities of the prompt tokens that the rows of
 * item k predict (row j, after token at + j, predicts token at + j + 1). */
static void take_plp(sched *s, int k, sched_req *q)
{
	const engine_item *it = &s->items[k];
	for (int j = 0; j < it->n_logits; j++) {
		int i = q->n_computed + j + 1;
		if (i >= q->n_submitted) break;
		sched_token *t = &q->pout[i];
		t->id = q->tokens[i];
		int m = sampler_logprob_of(it->logits + (size_t)j * (size_t)s->vocab, (size_t)s->vocab, t->id,
					   q->p.prompt_top, &t->logprob, &t->rank,
					   q->ptop ? q->ptop + (size_t)i * (size_t)q->p.prompt_top : NULL);
		t->n_top = m > 0 ? m : 0;
	}
}

/* Chooses the step's items under mu. Returns the count (0: nothing can run). */
static int build_batch_locked(sched *s)
{
	int n_items = 0, n_logits = 0, budget = s->cfg.max_batched_tokens, batch_need = 0;
	int preempted = s->hold_admission;
	s->hold_admission = 0;
	kv_cache *kv = s->kv;

	/* Cancellations asked since the last step. */
	for (sched_req *q = s->running.head, *nx; q; q = nx) {
		nx = q->next;
		if (q->cancel != SCHED_RUNNING) finish_locked(s, q, q->cancel, -1);
	}

	/* 1. Decode tokens (one pending token each), oldest first. */
	for (sched_req *q = s->running.head; q && budget > 0;) {
		if (target_len(q) - q->n_computed != 1) {
			q = q->next;
			continue;
		}
		int need = kv_seq_blocks_needed(kv, q->seq, 1);
		int self_preempted = 0;
		while (need > kv_cache_free_blocks(kv) - batch_need) {
			sched_req *victim = s->running.tail;
			preempted = 1;
			if (victim == q) {
				if (s->running.n == 1) {
					/* Alone and out of blocks: the cache cannot hold it. */
					finish_locked(s, q, SCHED_LENGTH, -1);
				} else {
					preempt_locked(s, q);
				}
				self_preempted = 1;
				break;
			}
			preempt_locked(s, victim);
		}
		if (self_preempted) break; /* q was the tail: nothing after it */
		add_item(s, &n_items, &n_logits, q, 1, 0);
		batch_need += need;
		budget--;
		q = q->next;
	}

	/* While sequences decode, their next tokens wait for the prompt tokens
	 * that share the step: a cap on those bounds the inter-token time. The
	 * delay budget lowers it as more sequences wait (each prompt token
	 * delays every one of them), and leaves it whole while few do. A step
	 * without decode tokens takes prompts up to the whole budget (no token
	 * waits on it, and big steps prefill faster). */
	if (n_items > 0) {
		int cap = s->cfg.max_prefill_tokens > 0 ? s->cfg.max_prefill_tokens : budget;
		if (s->cfg.prefill_delay_budget > 0) cap = MIN(cap, MAX(SCHED_PREFILL_FLOOR, s->cfg.prefill_delay_budget / n_items));
		budget = MIN(budget, cap);
	}

	/* 2. Prompt chunks of admitted sequences. One chunk a step may need
	 * prompt log-probabilities, of at most plp_rows tokens. */
	int plp_taken = 0;
	for (sched_req *q = s->running.head; q && budget > 0; q = q->next) {
		int rem = target_len(q) - q->n_computed;
		if (rem <= 1) continue;
		int plp = wants_plp(q);
		if (plp && plp_taken) continue;
		int free_blocks = kv_cache_free_blocks(kv) - batch_need;
		int n = MIN(rem, budget);
		if (plp) n = MIN(n, s->plp_rows);
		n = MIN(n, room_tokens(s, q->seq, free_blocks > 0 ? free_blocks : 0));
		if (n <= 0) continue;
		batch_need += kv_seq_blocks_needed(kv, q->seq, n);
		add_item(s, &n_items, &n_logits, q, n, plp);
		plp_taken |= plp;
		budget -= n;
	}

	/* 3. New (or preempted) requests, in order, while blocks, slots and budget
	 * last. One that needs prompt log-probabilities when this step's chunk of
	 * them is taken is passed over, not waited on: the requests behind it
	 * (a one-token request behind n choices that each wanted them) must not
	 * wait for every such chunk before theirs. */
	for (sched_req *q = s->waiting.head, *nx; q && !preempted && s->running.n < s->cfg.max_num_seqs && budget > 0; q = nx) {
		nx = q->next;
		int total = target_len(q);
		/* Prompt log-probabilities need every row: no cached prefix. */
		int plp = q->pout != NULL, match = plp ? 0 : total;
		if (plp && plp_taken) continue;
		int cached = kv_cache_match_prefix(kv, q->tokens, match);
		int need_all = blocks_for(total) - cached / KV_BLOCK_TOKENS;
		if (need_all > kv_cache_free_blocks(kv) - batch_need) break;
		int seq = kv_seq_new(kv, q->tokens, match, &cached);
		if (seq < 0) break;
		/* Cached blocks it took may have come from the free pool: check again. */
		int n = MIN(total - cached, budget);
		plp = plp && cached < q->n_submitted - 1;
		if (plp) n = MIN(n, s->plp_rows);
		if (kv_seq_blocks_needed(kv, seq, n) > kv_cache_free_blocks(kv) - batch_need) {
			kv_seq_free(kv, seq);
			break;
		}
		list_remove(&s->waiting, q);
		list_push_tail(&s->running, q);
		q->where = WHERE_RUNNING;
		q->seq = seq;
		q->n_computed = cached;
		if (!q->scheduled) {
			q->scheduled = 1;
			if (s->cfg.obs.queue_time) s->cfg.obs.queue_time(s->cfg.obs.arg, secs(time_mono_ns() - q->t_arrival_ns));
		}
		batch_need += kv_seq_blocks_needed(kv, seq, n);
		add_item(s, &n_items, &n_logits, q, n, plp);
		plp_taken |= plp;
		budget -= n;
	}

	/* Nothing fits but sequences hold the cache: free the newest so the others move. */
	if (n_items == 0 && s->running.n > 0) {
		sched_req *victim = s->running.tail;
		if (s->running.n == 1) finish_locked(s, victim, SCHED_LENGTH, -1);
		else preempt_locked(s, victim);
	}
	return n_items;
}

static int is_eos(const sched *s, int32_t id)
{
	for (int i = 0; i < s->gen->n_eos; i++)
		if (s->gen->eos_ids[i] == id) return 1;
	return 0;
}

/* Samples the next token of q from row; appends it and returns the finish
 * reason it implies (SCHED_RUNNING to go on). Scheduler thread, no lock. */
static sched_finish sample_one(sched *s, sched_req *q, const float *row, int32_t *stop_id)
{
	sampler_result res;
	int lp = q->p.logprobs;
	sampler_params sp = q->p.sp;
	sp.prompt_ids = q->tokens;
	sp.n_prompt = (size_t)q->n_prompt;
	sp.output_ids = q->tokens + q->n_prompt;
	sp.n_output = (size_t)q->n_gen;
	if (q->n_gen < q->p.min_tokens) {
		sp.banned_ids = q->ban;
		sp.n_banned = (size_t)q->n_ban;
	}
	if (sampler_sample(s->smp, row, (size_t)s->vocab, &sp, &q->rng, lp, &res) < 0) {
		log_ratelimited(LOG_WARN, "sampling failed (no candidate token)");
		return SCHED_ERROR;
	}
	int i = q->n_gen;
	q->tokens[q->n_prompt + i] = res.id;
	q->out[i].id = res.id;
	q->out[i].logprob = lp >= 0 ? res.logprob : 0;
	q->out[i].n_top = 0;
	if (lp > 0 && q->top) {
		int k = MIN(res.n_top, q->top_k);
		memcpy(q->top + (size_t)i * q->top_k, res.top, (size_t)k * sizeof *res.top);
		q->out[i].n_top = k;
	}
	q->n_gen = i + 1;
	*stop_id = -1;
	if (!q->p.ignore_eos && is_eos(s, res.id)) {
		*stop_id = res.id;
		return SCHED_STOP;
	}
	for (int k = 0; k < q->p.n_stop_ids; k++)
		if (q->p.stop_ids[k] == res.id) {
			*stop_id = res.id;
			return SCHED_STOP;
		}
	if (q->n_gen >= q->p.max_tokens) return SCHED_LENGTH;
	if (q->n_prompt + q->n_gen >= s->max_model_len) return SCHED_LENGTH;
	return SCHED_RUNNING;
}

/* The bytes a token stands for in text: a byte token its byte, a piece its
 * text with "\xe2\x96\x81" as a space; special tokens none. Returns the length. */
static size_t token_bytes(const tokenizer *t, int32_t id, char *out, size_t cap)
{
	int b = tokenizer_byte_value(t, id);
	if (b >= 0) {
		out[0] = (char)b;
		return 1;
	}
	if (tokenizer_is_special(t, id)) return 0;
	size_t len = 0, n = 0;
	const char *p = tokenizer_piece(t, id, &len);
	if (!p) return 0;
	for (size_t i = 0; i < len && n < cap;) {
		if (i + 3 <= len && (unsigned char)p[i] == 0xE2 && (unsigned char)p[i + 1] == 0x96 &&
		    (unsigned char)p[i + 2] == 0x81) {
			out[n++] = ' ';
			i += 3;
		} else {
			out[n++] = p[i++];
		}
	}
	return n;
}

/* One step of forced replay for q: takes the greedy token into the context if
 * its bytes begin the rest of the forced text; otherwise encodes the rest and
 * appends it as prompt to prefill. Returns SCHED_RUNNING, or SCHED_ERROR. */
static sched_finish forced_step(sched *s, sched_req *q, const float *row)
{
	sampler_params greedy;
	sampler_result res;
	char bytes[512];
	sampler_params_default(&greedy);
	greedy.temperature = 0;
	if (sampler_sample(s->smp, row, (size_t)s->vocab, &greedy, NULL, -1, &res) < 0) return SCHED_ERROR;
	size_t left = q->forced_len - q->forced_at;
	size_t n = token_bytes(s->cfg.tok, res.id, bytes, sizeof bytes);
	if (n > 0 && n <= left && !memcmp(bytes, q->forced + q->forced_at, n) && q->n_prompt < q->cap_prompt) {
		q->tokens[q->n_prompt++] = res.id;
		q->forced_at += n;
	} else {
		size_t got = 0;
		size_t room = (size_t)(q->cap_prompt - q->n_prompt);
		if (tokenizer_encode(s->cfg.tok, q->forced + q->forced_at, left, 0, q->tokens + q->n_prompt, room, &got) < 0)
			return SCHED_ERROR;
		if (got == 0) return SCHED_ERROR;
		q->n_prompt += (int)got;
		q->forced_at = q->forced_len;
	}
	if (q->forced_at >= q->forced_len) {
		free(q->forced);
		q->forced = NULL;
	}
	if (q->n_prompt >= s->max_model_len) return SCHED_LENGTH;
	return SCHED_RUNNING;
}

static void refresh_stats_locked(sched *s)
{
	s->stats.running = s->running.n;
	s->stats.waiting = s->waiting.n;
	s->stats.kv_usage = kv_cache_usage(s->kv);
	s->stats.kv_total_blocks = kv_cache_total_blocks(s->kv);
	s->stats.kv_free_blocks = kv_cache_free_blocks(s->kv);
	s->stats.prefix_queries_total = kv_cache_prefix_queries(s->kv);
	s->stats.prefix_hits_total = kv_cache_prefix_hits(s->kv);
}

static void fail_all_locked(sched *s, sched_finish why)
{
	while (s->running.head) finish_locked(s, s->running.head, why, -1);
	while (s->waiting.head) finish_locked(s, s->waiting.head, why, -1);
}

static void *sched_main(void *arg)
{
	sched *s = arg;
	char err[256];
	sched_finish *fin = s->item_fin; /* per item of a step, sized at creation */
	int32_t *stop_ids = s->item_stop;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && s->running.n == 0 && (s->waiting.n == 0 || s->stats.broken)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		if (s->stop) break;
		uint64_t t_sched = time_mono_ns();
		int n = build_batch_locked(s);
		refresh_stats_locked(s);
		uint64_t t_built = time_mono_ns();
		s->stats.phase_ns[SCHED_PHASE_SCHEDULE] += t_built - t_sched;
		if (n == 0) {
			/* A preemption or a finish changed things: go round again. If
			 * nothing at all can move, wait for a submit or a cancel. */
			if (s->running.n == 0 && s->waiting.n > 0) {
				sched_req *q = s->waiting.head;
				if (kv_cache_free_blocks(s->kv) == kv_cache_total_blocks(s->kv) && s->running.n == 0) {
					/* An empty cache cannot hold it: it never will. */
					finish_locked(s, q, SCHED_LENGTH, -1);
				}
			}
			pthread_mutex_unlock(&s->mu);
			if (s->cfg.notify) s->cfg.notify(s->cfg.notify_arg);
			pthread_mutex_lock(&s->mu);
			/* Do not spin: wait a little for a submit, a cancel or a finish. */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 5 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (!s->stop) pthread_cond_timedwait(&s->cv, &s->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&s->mu);

		uint64_t out0 = engine_output_ns_total(s->e);
		int rc = engine_step(s->e, s->items, n, err, sizeof err);
		uint64_t t_stepped = time_mono_ns();
		int tokens = 0, prompt_rows = 0;
		for (int k = 0; k < n; k++) {
			tokens += s->items[k].n_tokens;
			/* a decode row is one token whose logits are sampled */
			if (s->items[k].n_tokens > 1 || !s->item_row[k]) prompt_rows += s->items[k].n_tokens;
		}
		uint64_t phase_out = engine_output_ns_total(s->e) - out0, phase_prefill = 0, phase_decode = 0;
		if (t_stepped - t_built > phase_out && tokens > 0) {
			uint64_t layers = t_stepped - t_built - phase_out;
			phase_prefill = layers * (uint64_t)prompt_rows / (uint64_t)tokens;
			phase_decode = layers - phase_prefill;
		}
		if (rc == ENGINE_OK) {
			uint64_t now = t_stepped;
			for (int k = 0; k < n; k++) { /* n <= max_num_seqs, the arrays' size */
				sched_req *q = s->item_req[k];
				if (s->items[k].n_logits) take_plp(s, k, q);
				q->n_computed += s->items[k].n_tokens;
				fin[k] = SCHED_RUNNING;
				stop_ids[k] = -1;
				if (!s->item_row[k]) continue;
				if (q->forced) {
					fin[k] = forced_step(s, q, s->item_row[k]);
					continue;
				}
				fin[k] = sample_one(s, q, s->item_row[k], &stop_ids[k]);
				if (q->n_gen == 1) {
					if (s->cfg.obs.first_token) s->cfg.obs.first_token(s->cfg.obs.arg, secs(now - q->t_arrival_ns));
				} else if (s->cfg.obs.inter_token) {
					s->cfg.obs.inter_token(s->cfg.obs.arg, secs(now - q->t_last_ns));
				}
				q->t_last_ns = now;
			}
			if (s->cfg.obs.step) s->cfg.obs.step(s->cfg.obs.arg, n, tokens);
		}
		uint64_t t_sampled = time_mono_ns();

		pthread_mutex_lock(&s->mu);
		s->stats.phase_ns[SCHED_PHASE_PREFILL] += phase_prefill;
		s->stats.phase_ns[SCHED_PHASE_DECODE] += phase_decode;
		s->stats.phase_ns[SCHED_PHASE_OUTPUT] += phase_out;
		s->stats.phase_ns[SCHED_PHASE_SAMPLE] += t_sampled - t_stepped;
		if (rc == ENGINE_OK) {
			s->stats.steps_total++;
			s->stats.step_tokens_total += (uint64_t)tokens;
			s->stats.step_seqs_total += (uint64_t)n;
			for (int k = 0; k < n; k++) {
				sched_req *q = s->item_req[k];
				if (!s->item_row[k]) continue;
				q->n_prompt_out = q->n_prompt;
				if (q->n_gen == 0) { /* a forced replay step: no output */
					if (fin[k] != SCHED_RUNNING) finish_locked(s, q, fin[k], -1);
					continue;
				}
				if (q->n_gen == 1) s->stats.prompt_tokens_total += (uint64_t)q->n_prompt;
				s->stats.generation_tokens_total++;
				q->n_out = q->n_gen;
				if (fin[k] != SCHED_RUNNING) finish_locked(s, q, fin[k], stop_ids[k]);
			}
		} else if (rc == ENGINE_NO_BLOCKS) {
			/* The accounting above should prevent this; recover by preempting. */
			log_ratelimited(LOG_WARN, "engine step: %s", err);
			s->hold_admission = 1;
			if (s->running.n > 1) preempt_locked(s, s->running.tail);
			else if (s->running.head) finish_locked(s, s->running.head, SCHED_LENGTH, -1);
		} else {
			log_error("engine step failed: %s; the engine is out of service", err);
			s->stats.broken = 1;
			fail_all_locked(s, SCHED_ERROR);
		}
		refresh_stats_locked(s);
		pthread_mutex_unlock(&s->mu);
		if (s->cfg.notify) s->cfg.notify(s->cfg.notify_arg);
		pthread_mutex_lock(&s->mu);
		s->stats.phase_ns[SCHED_PHASE_PUBLISH] += time_mono_ns() - t_sampled;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ------------------------------------------------------------ public */

sched *sched_new(engine *e, const sched_config *cfg, char *err, size_t errlen)
{
	const engine_options *eo = engine_get_options(e);
	sched *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->e = e;
	s->kv = engine_kv_cache(e);
	s->cfg = *cfg;
	s->vocab = engine_vocab(e);
	s->gen = &engine_model(e)->gen;
	if (s->cfg.max_num_seqs <= 0 || s->cfg.max_num_seqs > eo->max_seqs) s->cfg.max_num_seqs = eo->max_seqs;
	if (eo->max_logits_rows > 0 && s->cfg.max_num_seqs > eo->max_logits_rows) s->cfg.max_num_seqs = eo->max_logits_rows;
	if (s->cfg.max_batched_tokens <= 0 || s->cfg.max_batched_tokens > eo->max_batch_tokens)
		s->cfg.max_batched_tokens = eo->max_batch_tokens;
	/* Every running sequence's decode token fits in every step: none waits
	 * a step for another's (decode never starves). */
	if (s->cfg.max_num_seqs > eo->max_batch_tokens) s->cfg.max_num_seqs = eo->max_batch_tokens;
	if (s->cfg.max_batched_tokens < s->cfg.max_num_seqs) s->cfg.max_batched_tokens = s->cfg.max_num_seqs;
	if (s->cfg.max_prefill_tokens < 0) s->cfg.max_prefill_tokens = 0;
	if (s->cfg.prefill_delay_budget < 0) s->cfg.prefill_delay_budget = 0;
	if (s->cfg.max_waiting <= 0) s->cfg.max_waiting = 1024;
	s->max_model_len = eo->max_model_len;
	if (s->cfg.max_model_len > 0 && s->cfg.max_model_len < s->max_model_len) s->max_model_len = s->cfg.max_model_len;
	/* A sequence must fit in the whole cache. */
	int cache_tokens = kv_cache_total_blocks(s->kv) * KV_BLOCK_TOKENS;
	if (s->max_model_len > cache_tokens) s->max_model_len = cache_tokens;
	s->smp = sampler_new((size_t)s->vocab);
	s->logits = malloc((size_t)s->cfg.max_num_seqs * (size_t)s->vocab * sizeof(float));
	/* Items: one per running sequence. */
	s->items = calloc((size_t)s->cfg.max_num_seqs, sizeof *s->items);
	s->item_req = calloc((size_t)s->cfg.max_num_seqs, sizeof *s->item_req);
	s->item_row = calloc((size_t)s->cfg.max_num_seqs, sizeof *s->item_row);
	s->item_fin = calloc((size_t)s->cfg.max_num_seqs, sizeof *s->item_fin);
	s->item_stop = calloc((size_t)s->cfg.max_num_seqs, sizeof *s->item_stop);
	/* Rows beyond one per sequence that the engine has room for: a prompt
	 * chunk's, for prompt log-probabilities (none: such requests refused). */
	s->plp_rows = MIN(eo->max_logits_rows - s->cfg.max_num_seqs, MIN(ENGINE_EXTRA_LOGITS_ROWS, SCHED_PLP_ROWS_PER_STEP));
	if (s->plp_rows < 0) s->plp_rows = 0;
	s->plp_logits = s->plp_rows ? malloc((size_t)s->plp_rows * (size_t)s->vocab * sizeof(float)) : NULL;
	if (!s->smp || !s->logits || !s->items || !s->item_req || !s->item_row || !s->item_fin || !s->item_stop || (s->plp_rows && !s->plp_logits)) {
		snprintf(err, errlen, "out of memory for the scheduler's buffers");
		sched_free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	refresh_stats_locked(s);
	int rc = pthread_create(&s->thread, NULL, sched_main, s);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the scheduler thread: %s", strerror(rc));
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		s->started = 0;
		free(s->logits);
		free(s->plp_logits);
		free(s->items);
		free(s->item_req);
		free(s->item_row);
		free(s->item_fin);
		free(s->item_stop);
		sampler_free(s->smp);
		free(s);
		return NULL;
	}
	s->started = 1;
	return s;
}

void sched_free(sched *s)
{
	if (!s) return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		pthread_mutex_lock(&s->mu);
		fail_all_locked(s, SCHED_ABORT);
		pthread_mutex_unlock(&s->mu);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
	}
	sampler_free(s->smp);
	free(s->logits);
	free(s->plp_logits);
	free(s->items);
	free(s->item_req);
	free(s->item_row);
	free(s->item_fin);
	free(s->item_stop);
	free(s);
}

sched_req *sched_submit(sched *s, const int32_t *tokens, int n, const sched_params *p, void *user,
			int *busy, char *err, size_t errlen)
{
	if (busy) *busy = 0;
	if (n < 1) {
		snprintf(err, errlen, "the prompt is empty");
		return NULL;
	}
	if (p->max_tokens < 1) {
		snprintf(err, errlen, "max_tokens must be at least 1");
		return NULL;
	}
	if (n >= s->max_model_len) {
		snprintf(err, errlen, "the prompt (%d tokens) does not fit the context of %d tokens", n, s->max_model_len);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= s->vocab) {
			snprintf(err, errlen, "token id %d is out of vocabulary (0..%d)", (int)tokens[i], s->vocab - 1);
			return NULL;
		}
	int max_tokens = MIN(p->max_tokens, s->max_model_len - n);
	size_t forced_cap = p->forced_text && p->forced_len && s->cfg.tok ? 3 * p->forced_len + 2 : 0;
	if (forced_cap > (size_t)s->max_model_len) forced_cap = (size_t)s->max_model_len;
	sched_req *q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (forced_cap) {
		q->forced = malloc(p->forced_len);
		if (!q->forced) {
			free(q);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(q->forced, p->forced_text, p->forced_len);
		q->forced_len = p->forced_len;
	}
	q->cap_prompt = n + (int)forced_cap;
	q->p = *p;
	q->p.forced_text = NULL;
	q->p.max_tokens = max_tokens;
	q->p.sp.banned_ids = NULL;
	q->p.sp.n_banned = 0;
	if (q->p.n_stop_ids > SCHED_MAX_STOP_IDS) q->p.n_stop_ids = SCHED_MAX_STOP_IDS;
	if (q->p.min_tokens > 0) {
		for (int i = 0; !q->p.ignore_eos && i < s->gen->n_eos && q->n_ban < 8; i++)
			q->ban[q->n_ban++] = s->gen->eos_ids[i];
		for (int i = 0; i < q->p.n_stop_ids; i++) q->ban[q->n_ban++] = q->p.stop_ids[i];
	}
	q->n_submitted = n;
	if (p->prompt_logprobs) {
		if (!s->plp_rows) {
			req_free(q);
			snprintf(err, errlen, "prompt log-probabilities are not available: the engine has no spare rows of logits");
			return NULL;
		}
		q->p.prompt_top = MAX(0, MIN(p->prompt_top, SAMPLER_MAX_TOP_LOGPROBS));
		q->pout = calloc((size_t)n, sizeof *q->pout);
		if (q->pout) q->pout[0] = (sched_token){.id = tokens[0], .logprob = NAN}; /* nothing predicts it */
		q->ptop = q->p.prompt_top ? calloc((size_t)n * (size_t)q->p.prompt_top, sizeof *q->ptop) : NULL;
		if (!q->pout || (q->p.prompt_top && !q->ptop)) {
			req_free(q);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
	}
	q->p.sp.bias_ids = NULL;
	q->p.sp.bias = NULL;
	q->p.sp.n_bias = 0;
	if (p->sp.n_bias && p->sp.bias_ids && p->sp.bias) {
		q->bias_ids = malloc(p->sp.n_bias * sizeof *q->bias_ids);
		q->bias = malloc(p->sp.n_bias * sizeof *q->bias);
		if (!q->bias_ids || !q->bias) {
			req_free(q);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(q->bias_ids, p->sp.bias_ids, p->sp.n_bias * sizeof *q->bias_ids);
		memcpy(q->bias, p->sp.bias, p->sp.n_bias * sizeof *q->bias);
		q->p.sp.bias_ids = q->bias_ids;
		q->p.sp.bias = q->bias;
		q->p.sp.n_bias = p->sp.n_bias;
	}
	q->top_k = p->logprobs > 0 ? MIN(p->logprobs, SAMPLER_MAX_TOP_LOGPROBS) : 0;
	q->tokens = malloc((size_t)(q->cap_prompt + max_tokens) * sizeof *q->tokens);
	q->out = calloc((size_t)max_tokens, sizeof *q->out);
	q->top = q->top_k ? malloc((size_t)max_tokens * (size_t)q->top_k * sizeof *q->top) : NULL;
	if (!q->tokens || !q->out || (q->top_k && !q->top)) {
		req_free(q);
		snprintf(err, errlen, "out of memory for a request of %d tokens", n + max_tokens);
		return NULL;
	}
	memcpy(q->tokens, tokens, (size_t)n * sizeof *tokens);
	q->n_prompt = n;
	q->n_prompt_out = n;
	q->user = user;
	q->seq = -1;
	q->stop_id = -1;
	if (p->has_seed) sampler_rng_seed(&q->rng, p->seed);
	else sampler_rng_seed_random(&q->rng);
	q->t_arrival_ns = time_mono_ns();
	q->refs = 2;

	pthread_mutex_lock(&s->mu);
	if (s->stats.broken) {
		pthread_mutex_unlock(&s->mu);
		req_free(q);
		snprintf(err, errlen, "the engine is out of service");
		if (busy) *busy = 1;
		return NULL;
	}
	if (s->waiting.n >= s->cfg.max_waiting) {
		pthread_mutex_unlock(&s->mu);
		req_free(q);
		snprintf(err, errlen, "the server is overloaded: %d requests are waiting", s->cfg.max_waiting);
		if (busy) *busy = 1;
		return NULL;
	}
	list_push_tail(&s->waiting, q);
	q->where = WHERE_WAITING;
	s->stats.waiting = s->waiting.n;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return q;
}

void sched_progress(sched *s, sched_req *q, int *n_out, sched_finish *finish, int32_t *stop_id)
{
	pthread_mutex_lock(&s->mu);
	*n_out = q->n_out;
	*finish = q->finish;
	if (stop_id) *stop_id = q->stop_id;
	pthread_mutex_unlock(&s->mu);
}

const sched_token *sched_req_token(const sched_req *q, int i) { return &q->out[i]; }
const sampler_logprob *sched_req_top(const sched_req *q, int i)
{
	return q->top ? q->top + (size_t)i * q->top_k : NULL;
}
const sched_token *sched_req_prompt_token(const sched_req *q, int i, const sampler_logprob **top)
{
	if (!q->pout || i < 0 || i >= q->n_submitted) return NULL;
	if (top) *top = q->ptop ? q->ptop + (size_t)i * (size_t)q->p.prompt_top : NULL;
	return &q->pout[i];
}
void *sched_req_user(const sched_req *q) { return q->user; }
int sched_req_prompt_len(sched *s, sched_req *q)
{
	pthread_mutex_lock(&s->mu);
	int n = q->n_prompt_out;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void sched_finish_req(sched *s, sched_req *q, sched_finish why)
{
	pthread_mutex_lock(&s->mu);
	if (q->finish == SCHED_RUNNING) {
		if (q->where == WHERE_WAITING) {
			finish_locked(s, q, why, -1);
		} else if (q->cancel == SCHED_RUNNING) {
			q->cancel = why;
			pthread_cond_signal(&s->cv);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

void sched_release(sched *s, sched_req *q)
{
	if (!q) return;
	pthread_mutex_lock(&s->mu);
	if (q->finish == SCHED_RUNNING) {
		if (q->where == WHERE_WAITING) {
			finish_locked(s, q, SCHED_ABORT, -1);
		} else if (q->cancel == SCHED_RUNNING) {
			q->cancel = SCHED_ABORT;
			pthread_cond_signal(&s->cv);
		}
	}
	req_unref_locked(q);
	pthread_mutex_unlock(&s->mu);
}

void sched_get_stats(sched *s, sched_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	out->running = s->running.n;
	out->waiting = s->waiting.n;
	pthread_mutex_unlock(&s->mu);
}

int sched_max_model_len(const sched *s) { return s->max_model_len; }
