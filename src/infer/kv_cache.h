/*
 * kv_cache.h — the paged key/value cache, in the manner of vLLM.
 *
 * Memory is paged in blocks of KV_BLOCK_TOKENS (16) positions; each sequence
 * has a block table mapping position p to block table[p / 16], slot p % 16.
 * A block holds the keys and values of its 16 positions for a set of layers,
 * in bf16 (the engine's default) or f32: [layer][K, V][kv_head][slot][head_dim].
 *
 * Two pools. Full-attention layers read every position, so their pool (the
 * "full" pool) keeps a block for every 16 positions of a sequence. Sliding-
 * window layers (Gemma 3: 5 of every 6) never read a key more than
 * sliding_window - 1 positions back, so their pool (the "window" pool) keeps
 * only the blocks of the window: once a sequence's length passes a block by
 * the window, that block leaves the sequence's window table (entry -1). The
 * window pool is sized once for the worst case of max_seqs windows plus one
 * step's new positions, so it never runs short: block accounting
 * (kv_seq_blocks_needed, kv_cache_free_blocks, usage) speaks of the full pool
 * alone. With no sliding layers, or a window no shorter than max_model_len,
 * every layer lives in the full pool. (27B at 8,192 positions x 4 sequences
 * in bf16: 16.6 GB in one pool, 4.7 GB in two; see docs/server.md.)
 *
 * Prefix caching: when a block fills, it is named by a hash chain
 * h = hash64(its 16 tokens, seed = h of the block before) and entered in a
 * table, in each pool; a new sequence whose prompt starts with the same tokens
 * takes those blocks by reference instead of recomputing them. Free blocks
 * (reference 0) wait in one queue per pool: blocks with no name at the head,
 * named ones at the tail in the order they were released, so allocation
 * evicts the least recently used cached block last. A cached block found
 * again leaves the queue. A prefix of k blocks is taken only when the full
 * pool holds all k and the window pool holds the ones its next position can
 * see (index >= (16k - window + 1) / 16): a window block that was evicted
 * shortens the match to where the window is whole again, so a cached prefix
 * longer than the window is reused while its last window is still cached.
 * Usage = 1 - free / total, where free counts cached blocks (as vLLM reports
 * kv_cache_usage_perc).
 *
 * Use, for one sequence: kv_seq_new (matches the prompt's cached prefix),
 * then per step kv_seq_reserve (blocks for the new tokens), the forward pass
 * writes their K/V, kv_seq_commit (length and names), and kv_seq_free. The
 * engine (engine_step) does reserve and commit itself.
 * Not thread-safe: one scheduler thread owns it. No allocation after
 * kv_cache_new.
 */
#ifndef INFER_KV_CACHE_H
#define INFER_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "infer/kernels.h"

#define KV_BLOCK_TOKENS 16

typedef struct kv_cache_config {
	int n_layers, n_kv_heads, head_dim; /* shape of one position's K/V */
	int n_blocks;                       /* blocks in the pool (>= 1) */
	int max_seqs;                       /* sequences alive at once */
	int max_model_len;                  /* positions per sequence */
	int prefix_caching;                 /* 1 = name full blocks and reuse them */
	dtype dtype;                        /* DTYPE_F32 (0) or DTYPE_BF16 */
	/* Sliding-window layers (all zero / NULL: none). sliding is copied. */
	const unsigned char *sliding; /* [n_layers] 1 = sliding-window layer */
	int sliding_window;           /* a query at p sees keys > p - window */
	int max_step_tokens;          /* most positions one step reserves, over all sequences */
} kv_cache_config;

typedef struct kv_cache kv_cache;

/* Bytes of one block for this shape (to size n_blocks from a memory budget). */
size_t kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, dtype t);
/* For cfg (n_blocks aside): bytes of one full-pool block, and the window
 * pool's block count and total bytes (0, 0 when every layer is full). */
void kv_cache_sizes(const kv_cache_config *cfg, size_t *full_block_bytes,
		    int *window_blocks, size_t *window_bytes);

/* Allocates the pool (lazily-touched anonymous memory) and the tables.
 * NULL with a message on bad config or no memory. */
kv_cache *kv_cache_new(const kv_cache_config *cfg, char *err, size_t errlen);
void kv_cache_free(kv_cache *c);
const kv_cache_config *kv_cache_get_config(const kv_cache *c);

/* A new sequence whose prompt is tokens[0..n). The longest cached prefix of
 * whole blocks (at most n - 1 tokens, so the last prompt token is always
 * computed and yields logits) is taken by reference; *n_cached (may be NULL)
 * gets its length, which is also the sequence's length. Counts one prefix-cache
 * query of n tokens and a hit of *n_cached. tokens may be NULL when n is 0.
 * Returns the sequence id (0..max_seqs-1) or -1 when every slot is taken. */
int kv_seq_new(kv_cache *c, const int32_t *tokens, int n, int *n_cached);
/* Releases the sequence's blocks (named ones stay cached until evicted). */
void kv_seq_free(kv_cache *c, int seq);
/* Positions whose K/V are stored (the next token's position). */
int kv_seq_len(const kv_cache *c, int seq);
/* The full pool's block table: *n_blocks entries. */
const int32_t *kv_seq_blocks(const kv_cache *c, int seq, int *n_blocks);
/* The block table of the pool that holds `layer` (the same n_blocks entries;
 * a window table has -1 below the window). Stable while seq lives. */
const int32_t *kv_seq_layer_blocks(const kv_cache *c, int seq, int layer);
int kv_seq_valid(const kv_cache *c, int seq); /* 1 when seq is a live id */

/* Blocks an append of n_new tokens to seq would take from the free pool. */
int kv_seq_blocks_needed(const kv_cache *c, int seq, int n_new);
/* Makes sure blocks exist for n_new more positions. Returns 0, or -1 (nothing
 * changed) when the pool lacks blocks or max_model_len would be exceeded. */
int kv_seq_reserve(kv_cache *c, int seq, int n_new);
/* Records that the K/V of tokens[0..n) are now stored at the next n positions
 * (reserved before): advances the length and names blocks that became full. */
void kv_seq_commit(kv_cache *c, int seq, const int32_t *tokens, int n);

/* Tokens of tokens[0..n) already cached (whole blocks, at most n - 1); no
 * side effects. For a scheduler deciding what a prompt will cost. */
int kv_cache_match_prefix(const kv_cache *c, const int32_t *tokens, int n);
int kv_cache_free_blocks(const kv_cache *c); /* includes evictable cached blocks */
int kv_cache_total_blocks(const kv_cache *c);
int kv_cache_can_allocate(const kv_cache *c, int n_blocks);
double kv_cache_usage(const kv_cache *c);      /* 0..1 */
int kv_cache_cached_blocks(const kv_cache *c); /* named blocks, in use or not */
/* The window pool: blocks in all, free (cached included), 0 without one. */
int kv_cache_window_total_blocks(const kv_cache *c);
int kv_cache_window_free_blocks(const kv_cache *c);
/* Bytes of both pools' blocks (reserved address space; pages are touched
 * as blocks are first written). */
size_t kv_cache_bytes(const kv_cache *c);
/* Prefix-cache counters in tokens, since creation (vLLM's
 * prefix_cache_queries_total / prefix_cache_hits_total). */
uint64_t kv_cache_prefix_queries(const kv_cache *c);
uint64_t kv_cache_prefix_hits(const kv_cache *c);
/* Drops every name (blocks in use keep their data). For tests and resets. */
void kv_cache_reset_prefix(kv_cache *c);

/* For the forward pass: the keys of `layer` in `block` (an entry of
 * kv_seq_layer_blocks for that layer), [kv_head][16][head_dim] elements of
 * the cache's dtype; values follow the same layout at kv_block_v. */
void *kv_block_k(kv_cache *c, int block, int layer);
void *kv_block_v(kv_cache *c, int block, int layer);

#endif
