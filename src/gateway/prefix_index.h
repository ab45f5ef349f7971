/*
 * prefix_index.h — prefix-cache affinity without asking the servers: a
 * prompt cut into fixed blocks of characters and hashed as a chain, and, per
 * endpoint, an LRU index of the block hashes the gateway sent there.
 *
 * The chain: h[0] = hash(block 0, seed = hash(model)), h[i] = hash(block i,
 * seed = h[i-1]), so a block hash stands for the whole prompt up to the end of
 * that block: two prompts share h[i] only when their first i+1 blocks are the
 * same (the trick of vLLM's prefix cache, and of the Kubernetes inference
 * extension's prefix scorer). Only full blocks are hashed, at most max blocks.
 *
 * The index learns from the gateway's own routing decisions: what it sent to
 * an endpoint is probably in that endpoint's KV cache until enough other
 * prompts pushed it out. Its capacity should be about the server's cache
 * (one 64-character block is about one 16-token KV block).
 *
 * Not here: what the prompt is (request.c gathers it), scoring (picker.c).
 * Pure data structures; no I/O, no clock.
 */
#ifndef GATEWAY_PREFIX_INDEX_H
#define GATEWAY_PREFIX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define PREFIX_MAX_BLOCKS 1024      /* hard cap of a chain, whatever the configuration */
#define PREFIX_INDEX_MIN 16         /* smallest index capacity, in blocks */
#define PREFIX_INDEX_MAX (1u << 22) /* largest (4 Mi blocks, ~100 MB) */

/* A chain being built from text fed in pieces. Owner: the caller (on its
 * stack or in its request); out is the caller's array of max hashes. */
typedef struct prefix_hasher {
	uint64_t h;           /* hash of the last full block (the seed at first) */
	uint32_t block_chars; /* block size in bytes */
	uint32_t fill;        /* bytes in block[] */
	uint64_t *out;
	uint32_t n, max; /* hashes written, capacity */
	char block[256];
} prefix_hasher;

/* Starts a chain seeded with the model name. block_chars 8..256. */
void prefix_hasher_init(prefix_hasher *ph, const char *model, uint32_t block_chars, uint64_t *out, uint32_t max);
/* Feeds bytes; full blocks are hashed into out (bytes after max blocks are ignored). */
void prefix_hasher_feed(prefix_hasher *ph, const void *data, size_t len);
/* 1 once max blocks are out (further input is pointless). */
static inline int prefix_hasher_full(const prefix_hasher *ph) { return ph->n >= ph->max; }

typedef struct prefix_index prefix_index;

/* An index holding at most capacity block hashes (clamped to
 * PREFIX_INDEX_MIN..PREFIX_INDEX_MAX). Returns NULL when out of memory. */
prefix_index *prefix_index_new(uint32_t capacity);
void prefix_index_free(prefix_index *x);
/* How many leading hashes of chain[0..n) the index holds (stops at the first
 * missing one). Does not touch the LRU order. */
uint32_t prefix_index_match(const prefix_index *x, const uint64_t *chain, uint32_t n);
/* Records chain[0..n) as sent: each present hash is refreshed, each missing
 * one added, the least recently used evicted to make room. The first blocks
 * end up most recent, so a long prompt's tail goes first. */
void prefix_index_add(prefix_index *x, const uint64_t *chain, uint32_t n);
uint32_t prefix_index_size(const prefix_index *x);
uint32_t prefix_index_capacity(const prefix_index *x);
uint64_t prefix_index_evictions_total(const prefix_index *x);

#endif
