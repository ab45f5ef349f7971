/*
 * engine.h — the inference engine: a Gemma 3 model loaded once, a paged KV
 * cache, and a forward step over a batch of sequences. This is the whole
 * interface a server needs; it knows nothing of HTTP, tokens as text, or
 * sampling (see tokenizer.h, chat_template.h, sampler.h).
 *
 * A step takes any mix of sequences, each with its own new tokens: a prompt
 * chunk (prefill) or one sampled token (decode), each sequence at its own
 * position. All the step's tokens go through every layer together, so each
 * weight row is read from memory once per step however many sequences run:
 * that is what makes batching cheaper than memory bandwidth alone allows.
 * Logits (the next-token scores after a sequence's last new token) are
 * computed only for the sequences that ask, and written to the caller's buffers.
 *
 * Typical server loop (one scheduler thread owns the engine):
 *
 *   engine *e = engine_load(dir, &opt, err, sizeof err);         // once
 *   kv_cache *kv = engine_kv_cache(e);
 *   // a request arrives with prompt ids p[0..n):
 *   int cached, seq = kv_seq_new(kv, p, n, &cached);             // -1: no slot
 *   // it still needs p[cached..n); feed it in chunks, the last chunk with logits:
 *   engine_item it = { .seq = seq, .tokens = p + cached, .n_tokens = n - cached,
 *                      .logits = row };                          // float row[vocab]
 *   ...gather items of all running sequences, then:
 *   int rc = engine_step(e, items, n_items, err, sizeof err);
 *   // rc == ENGINE_NO_BLOCKS: nothing ran; preempt a sequence (kv_seq_free) and retry.
 *   // sample from row (sampler.h); the sampled id is the next step's item for seq.
 *   kv_seq_free(kv, seq);                                        // finished or cancelled
 *
 * The KV cache API (kv_cache.h) answers the scheduler's questions: free blocks,
 * kv_cache_can_allocate, kv_seq_blocks_needed for the next step, the cached
 * prefix of a prompt (kv_cache_match_prefix), usage as a fraction.
 *
 * Threads: the engine runs each step on its own team of `threads` threads (the
 * caller's thread is one of them) and returns when the step is done. Only one
 * thread may call into an engine (and its KV cache) at a time.
 * Memory: everything is allocated by engine_load; a step allocates nothing.
 */
#ifndef INFER_ENGINE_H
#define INFER_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "infer/kv_cache.h"
#include "infer/model.h"

typedef struct engine_options {
	int threads;                /* threads per step, caller included; 0 = online CPUs */
	int max_batch_tokens;       /* cap on a step's new tokens (all sequences); 0 = 512 */
	int max_seqs;               /* sequences alive at once (KV slots); 0 = 64 */
	int max_model_len;          /* positions per sequence; 0 = min(max_position_embeddings, 8192) */
	int num_kv_blocks;          /* KV blocks of 16 positions; 0 = from kv_cache_bytes */
	uint64_t kv_cache_bytes;    /* KV memory when num_kv_blocks is 0; 0 = one full-length
	                             sequence plus one block per other slot */
	int max_logits_rows;        /* logits rows per step; 0 = max_seqs + ENGINE_EXTRA_LOGITS_ROWS */
	int no_prefix_caching;      /* 1 = never share blocks between sequences */
	const char *kernels;        /* "portable", "avx2", "avx512"; NULL = best this CPU runs */
	const char *quantization;   /* "q8_0", "q4_0": quantize the weights on load; NULL = as stored */
	int no_repack;              /* 1 = matrices read in place from the mapping, Q4_0/Q8_0 as stored (model_convert) */
	const char *kv_cache_dtype; /* "auto" (= "bf16"), "bf16", "f32"; NULL = auto. After load:
	                             the type in use, "bf16" or "f32" */
} engine_options;

/* Rows of logits a step has room for beyond one per sequence (the default):
 * what a prompt chunk whose every row is wanted may take. */
#define ENGINE_EXTRA_LOGITS_ROWS 16

/* One sequence's part of a step. */
typedef struct engine_item {
	int seq;               /* a live id from kv_seq_new on engine_kv_cache() */
	const int32_t *tokens; /* n_tokens new ids, stored at positions
	                             kv_seq_len(seq) .. kv_seq_len(seq) + n_tokens - 1 */
	int n_tokens;          /* >= 1 */
	float *logits;         /* caller-owned [vocab]: filled with the logits after the
	                             last new token; NULL = not needed (a prompt chunk) */
	int n_logits;          /* rows wanted, those after the last n_logits new tokens in
	                             order, logits then [n_logits][vocab] (prompt
	                             log-probabilities); 0 = 1 when logits is set */
} engine_item;

enum {
	ENGINE_OK = 0,
	ENGINE_EINVAL = -1,    /* bad item: unknown sequence, bad id, over a cap */
	ENGINE_NO_BLOCKS = -2, /* the KV pool lacks blocks for this step: nothing ran */
};

typedef struct engine engine;

/* Loads the model in dir (config.json, generation_config.json, safetensors;
 * see model.h), starts the threads, and allocates the KV cache and every
 * buffer a step uses. opt may be NULL for the defaults. Returns NULL with a
 * message naming the file and tensor in err. */
engine *engine_load(const char *dir, const engine_options *opt, char *err, size_t errlen);
void engine_free(engine *e);

/* Runs one step: every item's tokens through the model, their K/V stored in
 * the cache, their sequence lengths advanced, and logits written where asked.
 * Items must name distinct sequences. Returns ENGINE_OK, or an ENGINE_* error
 * with a message in err, in which case nothing changed. */
int engine_step(engine *e, const engine_item *items, int n_items, char *err, size_t errlen);

const model *engine_model(const engine *e); /* config, generation defaults */
const model_config *engine_config(const engine *e);
kv_cache *engine_kv_cache(engine *e);
int engine_vocab(const engine *e); /* logits per row */
int engine_threads(const engine *e);
const char *engine_kernels(const engine *e);               /* name of the kernels in use */
const engine_options *engine_get_options(const engine *e); /* with defaults filled in */
/* Bytes of weights a decode step reads (every matrix once, the embedding as the
 * output projection): the memory-bandwidth cost of one step. */
uint64_t engine_step_weight_bytes(const engine *e);
/* Nanoseconds spent in the output projection (final norm and logits rows),
 * summed over every step so far: the part of a step that grows with the rows
 * that sample, 262,144 outputs each for Gemma 3. */
uint64_t engine_output_ns_total(const engine *e);

#endif
