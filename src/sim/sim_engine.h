/*
 * sim_engine.h — the simulated inference engine: a FIFO scheduler over the
 * KV-cache model (sim_kv.h) and the latency model, on the event loop.
 *
 * A request arrives with its prompt's word hashes and its whole output
 * already decided (the text is deterministic, see sim_text.h); the engine only
 * decides *when* each token comes out:
 *   - it waits (num_requests_waiting) until a sequence slot (max_num_seqs) and
 *     the KV blocks it needs to finish are free, strictly first come first
 *     served;
 *   - the first token comes ttft_ms + prefill_ms_per_token x (prompt tokens not
 *     found in the prefix cache) after admission;
 *   - each next token itl_ms x (1 + itl_growth x (running - 1)) later;
 *   - every latency is multiplied by the slow_factor fault.
 * The engine knows nothing of HTTP: it calls the request's on_progress after
 * each token and once more with done set. Not thread-safe.
 */
#ifndef SIM_ENGINE_H
#define SIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/ev.h"
#include "sim/sim_kv.h"
#include "sim/sim_text.h"

typedef struct sim_engine_cfg {
	uint32_t kv_blocks;          /* KV capacity in blocks of 16 tokens */
	uint32_t max_num_seqs;       /* running requests at most */
	uint32_t max_waiting;        /* waiting queue cap (beyond: 503) */
	double ttft_ms;              /* base time to first token */
	double prefill_ms_per_token; /* per prompt token not in the prefix cache */
	double itl_ms;               /* base inter-token latency */
	double itl_growth;           /* alpha: itl x (1 + alpha x (running - 1)) */
	const char *model;           /* the engine's model name (seeds the block hashes) */
} sim_engine_cfg;

enum sim_finish { SIM_FINISH_STOP = 0,
		  SIM_FINISH_LENGTH,
		  SIM_FINISH_ABORT };

typedef struct sim_engine sim_engine;
typedef struct sim_req sim_req;

/* Called after each token (r->emitted grew by one; the first call is the
 * first token) and once with r->done set (after the last token, or at the time
 * of the first token when there are none). It may call sim_engine_abort on r
 * but must not free r before returning. */
typedef void sim_progress_fn(sim_req *r, void *arg);

/* One request. Owner: the caller (sim_req_init / sim_req_deinit); the engine
 * only links it while it waits or runs. */
struct sim_req {
	/* the work, filled by the caller through sim_req_generate */
	sim_words words; /* prompt then output word hashes */
	size_t prompt_tokens;
	buf text;             /* the whole output text */
	uint32_t *tok_end;    /* byte offset in text where token i ends */
	size_t out_tokens;    /* tokens generated (the last may be cut by a stop) */
	double extra_ttft_ms; /* added to its first token (a LoRA adapter's load) */
	int finish;           /* enum sim_finish once decided */
	char *stop_reason;    /* the stop string that ended it, or NULL */
	/* progress, kept by the engine */
	size_t emitted;       /* tokens out so far */
	int done;             /* every token out, or aborted */
	int state;            /* internal */
	size_t cached_tokens; /* prompt tokens found in the prefix cache */
	uint64_t arrival_ms, admit_ms, first_ms, last_ms;
	double next_due_ms;
	uint64_t timer;
	sim_kv_seq seq;
	sim_req *prev, *next; /* waiting or running list */
	sim_engine *engine;
	sim_progress_fn *on_progress;
	void *arg;
};

/* Prepares an empty request whose words are capped at max_words. */
void sim_req_init(sim_req *r, size_t max_words);
void sim_req_deinit(sim_req *r);
/* Decides the output after state t (the prompt already fed into t and
 * r->words, r->prompt_tokens set): up to max_tokens tokens, ending early at a
 * natural end of text when use_eos, or at the first of stops[0..n_stops)
 * (the stop string is cut from the text, as vLLM does). Returns 0, or -1 out
 * of memory or past the word cap. */
int sim_req_generate(sim_req *r, sim_text *t, size_t max_tokens, int use_eos,
		     const char *const *stops, size_t n_stops);
/* Bytes of token i's text (i < out_tokens). */
const char *sim_req_token(const sim_req *r, size_t i, size_t *len);

/* Counters and gauges the metrics read. */
typedef struct sim_engine_stats {
	uint32_t running, waiting;
	uint64_t prompt_tokens_total, generation_tokens_total;
	uint64_t prefix_queries_total, prefix_hits_total; /* tokens */
	uint64_t success_total[3];                        /* by enum sim_finish */
	uint64_t preemptions_total;
} sim_engine_stats;

/* Latency observations, for histograms; each may be NULL. */
typedef struct sim_engine_observer {
	void (*ttft)(void *arg, double seconds);
	void (*itl)(void *arg, double seconds);
	void (*e2e)(void *arg, double seconds);
	void (*queue)(void *arg, double seconds);
	void *arg;
} sim_engine_observer;

sim_engine *sim_engine_new(ev_loop *loop, const sim_engine_cfg *cfg);
void sim_engine_free(sim_engine *e);
void sim_engine_set_observer(sim_engine *e, const sim_engine_observer *o);
/* Multiplies every latency from now on (the slow fault); 1 = normal. */
void sim_engine_set_slow(sim_engine *e, double factor);
/* Queues r (its on_progress and arg set). Returns 0, or -1 with a message when
 * it can never run (needs more blocks than the whole cache) or the waiting
 * queue is full (*status 400 or 503). */
int sim_engine_submit(sim_engine *e, sim_req *r, int *status, char *err, size_t err_len);
/* Takes r out of the engine at once (waiting or running): its blocks and slot
 * are freed and it counts as aborted unless it had finished. Safe to call from
 * on_progress and on a request that is not in the engine. */
void sim_engine_abort(sim_engine *e, sim_req *r);
const sim_engine_stats *sim_engine_get_stats(const sim_engine *e);
const sim_kv *sim_engine_kv(const sim_engine *e);
const sim_engine_cfg *sim_engine_get_cfg(const sim_engine *e);

#endif
