/*
 * scheduler.h — continuous batching over one engine, on one thread of its own.
 *
 * Requests (a prompt as token ids, sampling parameters, a token budget) are
 * submitted from any thread. The scheduler thread runs steps: every running
 * sequence advances in the same engine_step — decode tokens first, then prompt
 * chunks under a token budget per step (chunked prefill, so a long prompt never
 * stalls the others' decoding) — and new requests join at the next step. When
 * the KV cache or the sequence slots run out, requests wait in a bounded FIFO;
 * when running sequences need blocks the pool lacks, the newest one is preempted
 * by recompute: its blocks are freed and it goes back to the head of the queue
 * with its generated tokens appended to its prompt (prefix caching usually gives
 * most of them back).
 *
 * Output: each request has an append-only array of sampled tokens (id and the
 * log-probabilities asked for) that its submitter reads with sched_progress;
 * after each step the scheduler calls the notify hook once (for a server: one
 * ev_async_send to wake its loop). Stop conditions the scheduler knows are
 * token-level: the model's end-of-sequence ids (unless ignore_eos), stop token
 * ids, the token budget and the context length. Text-level stops (stop
 * strings) belong to the caller, which ends the request with sched_finish.
 *
 * What it is not: HTTP, text, tokenization. Memory: a request's arrays are
 * allocated at submit for its whole budget; a step allocates nothing.
 * Threads: every public function except sched_new/sched_free may be called
 * from any thread; one mutex guards the shared state, held only briefly (never
 * across an engine step).
 */
#ifndef INFER_SCHEDULER_H
#define INFER_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>
#include "infer/engine.h"
#include "infer/sampler.h"
#include "infer/tokenizer.h"

#define SCHED_MAX_STOP_IDS 32

typedef struct sched sched;
typedef struct sched_req sched_req;

typedef enum sched_finish {
	SCHED_RUNNING = 0,
	SCHED_STOP,   /* an end-of-sequence id, a stop token id, or the caller's stop string */
	SCHED_LENGTH, /* the token budget or the context length */
	SCHED_ABORT,  /* cancelled (client gone, shutdown) */
	SCHED_ERROR,  /* the engine failed */
} sched_finish;

/* Observations for metrics, called on the scheduler thread (keep them cheap and
 * thread-safe). Any may be NULL. Times in seconds. */
typedef struct sched_observer {
	void (*queue_time)(void *arg, double s);  /* arrival to first scheduled */
	void (*first_token)(void *arg, double s); /* arrival to first token */
	void (*inter_token)(void *arg, double s); /* between two tokens of a request */
	void (*finished)(void *arg, double e2e_s, sched_finish why, int prompt_tokens, int gen_tokens);
	void (*step)(void *arg, int seqs, int tokens); /* one engine step ran */
	void *arg;
} sched_observer;

/* the fewest prompt tokens the delay budget leaves a step: a prompt always moves */
#define SCHED_PREFILL_FLOOR 16

typedef struct sched_config {
	int max_num_seqs;          /* running sequences at once; 0 = the engine's max_seqs */
	int max_batched_tokens;    /* new tokens per step; 0 = the engine's max_batch_tokens;
	                                raised to max_num_seqs so no decode token waits */
	int max_prefill_tokens;    /* prompt tokens a step carries beside decode tokens;
	                                0 = up to max_batched_tokens */
	int prefill_delay_budget;  /* a step's prompt tokens times its decode tokens (each
	                                waits for all of them) at most this, but never
	                                fewer than SCHED_PREFILL_FLOOR prompt tokens; 0 = off */
	int max_waiting;           /* queued requests before submit refuses; 0 = 1024 */
	int max_model_len;         /* positions per sequence; 0 = the engine's */
	const tokenizer *tok;      /* for forced replay; may be NULL */
	void (*notify)(void *arg); /* after a step produced output (any thread-safe wake-up) */
	void *notify_arg;
	sched_observer obs;
} sched_config;

typedef struct sched_params {
	sampler_params sp; /* temperature, top_k, top_p, min_p, penalties, bias (banned ids ignored; the seen ids are the request's own) */
	int has_seed;
	uint64_t seed;
	int max_tokens; /* >= 1 */
	int ignore_eos;
	int logprobs; /* -1 none, 0 the sampled token's, K > 0 also the top K */
	int32_t stop_ids[SCHED_MAX_STOP_IDS];
	int n_stop_ids;
	int min_tokens;      /* until this many are sampled, no stop id (EOS unless ignore_eos, stop_ids) is */
	int prompt_logprobs; /* 1: the log-probability of each prompt token after the
	                                first, read with sched_req_prompt_token once finished;
	                                the prompt is then computed whole (no prefix cache) */
	int prompt_top;      /* and the top prompt_top alternatives of each */
	/* Logit bias, in sp.bias_ids/bias/n_bias: copied at submit. */
	/* Forced greedy replay (needs sched_config.tok): text the sequence must
	 * continue from, as if the model had written it. While it lasts, each step's
	 * greedy token is taken into the context (not the output) when its bytes
	 * begin the rest of the text; at the first mismatch the rest is encoded and
	 * prefilled. For a greedy request this reproduces exactly the tokens an
	 * uninterrupted run chose, where re-encoding the text would not (BPE may
	 * split the same text differently). Copied at submit; NULL = none. */
	const char *forced_text;
	size_t forced_len;
} sched_params;

/* One sampled token. */
typedef struct sched_token {
	int32_t id;
	float logprob; /* when logprobs >= 0 */
	int n_top;     /* entries at sched_req_top(q, i) */
	int rank;      /* prompt tokens: 1 + the ids more likely */
} sched_token;

/* Where the scheduler thread's time goes, summed over steps (nanoseconds).
 * The engine's forward pass is split in three: the output projection (the
 * logits rows, measured by the engine), and the rest of the pass shared
 * between prompt rows and decode rows in proportion to their counts (every
 * row goes through the same layers, so a row costs about the same). */
enum {
	SCHED_PHASE_SCHEDULE = 0, /* composing the batch, under the lock */
	SCHED_PHASE_PREFILL,      /* the layers, prompt rows' share */
	SCHED_PHASE_DECODE,       /* the layers, decode rows' share */
	SCHED_PHASE_OUTPUT,       /* the output projection (logits rows only) */
	SCHED_PHASE_SAMPLE,       /* sampling and stop conditions */
	SCHED_PHASE_PUBLISH,      /* publishing tokens, finishing requests, the wake-up */
	SCHED_PHASES
};
extern const char *const sched_phase_name[SCHED_PHASES];

/* A snapshot of the scheduler, for metrics and /health. */
typedef struct sched_stats {
	int running, waiting;
	double kv_usage; /* 0..1 */
	int kv_total_blocks, kv_free_blocks;
	uint64_t prefix_queries_total, prefix_hits_total; /* tokens */
	uint64_t prompt_tokens_total, generation_tokens_total;
	uint64_t preemptions_total;
	uint64_t steps_total, step_tokens_total, step_seqs_total;
	uint64_t finished_total[5];      /* by sched_finish */
	uint64_t phase_ns[SCHED_PHASES]; /* time of the scheduler thread by phase */
	int broken;                      /* the engine failed: nothing runs any more */
} sched_stats;

/* Starts the scheduler thread over e (which it then owns the use of: nobody
 * else may call into e or its KV cache until sched_free). Returns NULL with a
 * message. */
sched *sched_new(engine *e, const sched_config *cfg, char *err, size_t errlen);
/* Stops the thread, finishes every request still known as SCHED_ABORT and
 * frees the scheduler (not the engine). Requests the caller still holds stay
 * valid until sched_release. */
void sched_free(sched *s);

/* Submits tokens[0..n) with p. user is the caller's (sched_req_user). Returns
 * the request, holding one reference for the caller (sched_release), or NULL
 * with a message: bad parameters, the prompt does not fit the context, the
 * queue is full (*busy = 1), out of memory. */
sched_req *sched_submit(sched *s, const int32_t *tokens, int n, const sched_params *p, void *user,
			int *busy, char *err, size_t errlen);

/* Reads a request's progress: *n_out tokens are final and readable with
 * sched_req_token (index < *n_out); *finish is SCHED_RUNNING while it goes on.
 * *stop_id gets the id that stopped it (or -1). */
void sched_progress(sched *s, sched_req *q, int *n_out, sched_finish *finish, int32_t *stop_id);
const sched_token *sched_req_token(const sched_req *q, int i);
const sampler_logprob *sched_req_top(const sched_req *q, int i);
/* With prompt_logprobs, once q finished: prompt token i (i < the submitted
 * length) with its log-probability (NaN for token 0, which nothing predicts)
 * and n_top alternatives at *top. NULL without prompt_logprobs or for i out
 * of range. */
const sched_token *sched_req_prompt_token(const sched_req *q, int i, const sampler_logprob **top);
void *sched_req_user(const sched_req *q);
/* Prompt tokens of q as the model saw them: the tokens submitted, plus a forced
 * text replayed into the context (sched_params.forced_text: its tokens are
 * context, not output) and, after a mismatch, its encoded rest. Final once q
 * published its first token or finished; the count vllm:prompt_tokens_total
 * adds. */
int sched_req_prompt_len(sched *s, sched_req *q);

/* Ends a request early (a stop string was seen: SCHED_STOP; the client left:
 * SCHED_ABORT). Its sequence and blocks are freed at the next step. No effect
 * once finished. */
void sched_finish_req(sched *s, sched_req *q, sched_finish why);
/* Drops the caller's reference. A request still running is aborted first. */
void sched_release(sched *s, sched_req *q);

void sched_get_stats(sched *s, sched_stats *out);
/* Effective limits (defaults filled in). */
int sched_max_model_len(const sched *s);

#endif
