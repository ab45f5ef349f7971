/*
 * sim_kv.h — the simulator's KV-cache model: a fixed pool of blocks of
 * SIM_KV_BLOCK_TOKENS tokens with prefix caching, as vLLM's block manager.
 *
 * A sequence holds ceil(tokens / 16) blocks while it runs. Each full block
 * carries the hash of its tokens chained with the previous block's hash (the
 * chain is seeded with the model name), and stays findable after its
 * sequence ends: freed blocks go to an LRU list and are only forgotten when
 * reused. A new sequence takes the longest run of its prompt's leading blocks
 * found in the pool (shared, reference counted) instead of computing them.
 *
 * Admission reserves the blocks a sequence will need to finish (its output
 * length is known up front), so a running sequence is never preempted; the
 * reservation is not reported as usage, only blocks actually held are.
 * Not thread-safe; no I/O.
 */
#ifndef SIM_KV_H
#define SIM_KV_H

#include <stddef.h>
#include <stdint.h>

#define SIM_KV_BLOCK_TOKENS 16
#define SIM_KV_NONE UINT32_MAX

typedef struct sim_kv_block {
	uint64_t hash;       /* chain hash of its 16 tokens; valid when hashed */
	uint32_t ref;        /* sequences holding it; 0 = on the free list */
	uint32_t prev, next; /* free (LRU) list links */
	uint32_t hnext;      /* hash bucket chain */
	uint8_t hashed;      /* in the hash table */
} sim_kv_block;

/* The pool. Owner: the engine (sim_kv_init / sim_kv_deinit). */
typedef struct sim_kv {
	uint32_t num_blocks;
	sim_kv_block *blocks; /* num_blocks */
	uint32_t *buckets;    /* hash table heads, bucket_mask + 1 */
	uint32_t bucket_mask;
	uint32_t lru_head, lru_tail; /* free blocks, next to be reused first */
	uint32_t free_blocks;        /* blocks with ref 0 */
	uint32_t reserved_blocks;    /* promised to running sequences, not yet taken */
	uint64_t seed;               /* seeds each chain (hash of the model name) */
} sim_kv;

/* One sequence's blocks. Owner: the request; zero it before the first
 * sim_kv_admit, free it with sim_kv_seq_free. */
typedef struct sim_kv_seq {
	uint32_t *ids;      /* held blocks, in order */
	uint32_t n, cap;    /* held, capacity of ids */
	uint32_t reserved;  /* blocks still reserved for its growth */
	uint32_t hashed;    /* leading blocks whose chain hash is known */
	uint64_t last_hash; /* chain hash of block hashed - 1 (seed when 0) */
} sim_kv_seq;

/* Returns 0, or -1 out of memory. seed_name is the model name. */
int sim_kv_init(sim_kv *kv, uint32_t num_blocks, const char *seed_name);
void sim_kv_deinit(sim_kv *kv);

/* Blocks needed for `tokens` tokens (at least 1). */
uint32_t sim_kv_blocks_for(uint64_t tokens);

/* The chain hashes of the full blocks of words[0..n): writes n / 16 hashes
 * into out (capacity max_out); returns how many were written. */
size_t sim_kv_chain(const sim_kv *kv, const uint64_t *words, size_t n, uint64_t *out,
		    size_t max_out);

/* The number of leading blocks of `chain` found in the pool. */
size_t sim_kv_match(const sim_kv *kv, const uint64_t *chain, size_t n);

/* Whether a sequence that reuses the first `hit` blocks of `chain` and needs
 * `total` blocks to finish can be admitted now. */
int sim_kv_can_admit(const sim_kv *kv, const uint64_t *chain, size_t hit, uint32_t total);

/* Admits a sequence: takes the `hit` cached blocks of chain, allocates fresh
 * ones up to `now` blocks (the prompt), hashes every full prompt block (chain
 * holds `full` hashes), and reserves total - now more. Call only after
 * sim_kv_can_admit said yes. Returns 0, or -1 out of memory (nothing held). */
int sim_kv_admit(sim_kv *kv, sim_kv_seq *seq, const uint64_t *chain, size_t full, size_t hit,
		 uint32_t now, uint32_t total);

/* Grows seq to hold blocks for `tokens` tokens, from its reservation (or from
 * the free pool when the reservation is spent and a block is free). Then
 * hashes every block that became full, from words (the sequence's tokens, at
 * least `tokens` of them). Returns 0, or -1 when no block was available. */
int sim_kv_grow(sim_kv *kv, sim_kv_seq *seq, const uint64_t *words, uint64_t tokens);

/* Releases every block of seq (cached ones stay findable) and its reservation. */
void sim_kv_release(sim_kv *kv, sim_kv_seq *seq);
void sim_kv_seq_free(sim_kv_seq *seq);

/* Blocks held by running sequences. */
static inline uint32_t sim_kv_used(const sim_kv *kv) { return kv->num_blocks - kv->free_blocks; }

#endif
