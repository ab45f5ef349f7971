/*
 * sim_kv.c — block pool with chained-hash prefix caching (see sim_kv.h).
 * All storage is allocated at init except each sequence's small id array.
 */
#include "sim/sim_kv.h"

#include <stdlib.h>
#include <string.h>
#include "core/util.h"

static uint32_t bucket_of(const sim_kv *kv, uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32)) & kv->bucket_mask;
}

static void lru_unlink(sim_kv *kv, uint32_t id)
{
	sim_kv_block *b = &kv->blocks[id];
	if (b->prev != SIM_KV_NONE) kv->blocks[b->prev].next = b->next;
	else kv->lru_head = b->next;
	if (b->next != SIM_KV_NONE) kv->blocks[b->next].prev = b->prev;
	else kv->lru_tail = b->prev;
	b->prev = b->next = SIM_KV_NONE;
}

/* Appends at the tail (reused last) or pushes at the head (reused first). */
static void lru_insert(sim_kv *kv, uint32_t id, int at_tail)
{
	sim_kv_block *b = &kv->blocks[id];
	if (at_tail) {
		b->next = SIM_KV_NONE;
		b->prev = kv->lru_tail;
		if (kv->lru_tail != SIM_KV_NONE) kv->blocks[kv->lru_tail].next = id;
		else kv->lru_head = id;
		kv->lru_tail = id;
	} else {
		b->prev = SIM_KV_NONE;
		b->next = kv->lru_head;
		if (kv->lru_head != SIM_KV_NONE) kv->blocks[kv->lru_head].prev = id;
		else kv->lru_tail = id;
		kv->lru_head = id;
	}
}

static uint32_t table_find(const sim_kv *kv, uint64_t h)
{
	for (uint32_t id = kv->buckets[bucket_of(kv, h)]; id != SIM_KV_NONE; id = kv->blocks[id].hnext)
		if (kv->blocks[id].hash == h) return id;
	return SIM_KV_NONE;
}

static void table_remove(sim_kv *kv, uint32_t id)
{
	sim_kv_block *b = &kv->blocks[id];
	if (!b->hashed) return;
	uint32_t *pp = &kv->buckets[bucket_of(kv, b->hash)];
	while (*pp != SIM_KV_NONE && *pp != id) pp = &kv->blocks[*pp].hnext;
	if (*pp == id) *pp = b->hnext;
	b->hnext = SIM_KV_NONE;
	b->hashed = 0;
}

/* Gives block id the hash h unless another block already caches h. */
static void table_insert(sim_kv *kv, uint32_t id, uint64_t h)
{
	if (table_find(kv, h) != SIM_KV_NONE) return;
	sim_kv_block *b = &kv->blocks[id];
	uint32_t k = bucket_of(kv, h);
	b->hash = h;
	b->hashed = 1;
	b->hnext = kv->buckets[k];
	kv->buckets[k] = id;
}

int sim_kv_init(sim_kv *kv, uint32_t num_blocks, const char *seed_name)
{
	memset(kv, 0, sizeof(*kv));
	if (num_blocks == 0 || num_blocks >= SIM_KV_NONE) return -1;
	uint32_t nb = 1;
	while (nb < num_blocks && nb < (1u << 30)) nb <<= 1;
	kv->blocks = calloc(num_blocks, sizeof(*kv->blocks));
	kv->buckets = malloc((size_t)nb * sizeof(*kv->buckets));
	if (!kv->blocks || !kv->buckets) {
		sim_kv_deinit(kv);
		return -1;
	}
	kv->num_blocks = num_blocks;
	kv->bucket_mask = nb - 1;
	for (uint32_t i = 0; i < nb; i++) kv->buckets[i] = SIM_KV_NONE;
	kv->lru_head = kv->lru_tail = SIM_KV_NONE;
	for (uint32_t i = 0; i < num_blocks; i++) {
		kv->blocks[i].hnext = SIM_KV_NONE;
		lru_insert(kv, i, 1);
	}
	kv->free_blocks = num_blocks;
	kv->seed = hash64(seed_name, strlen(seed_name), 0x4b56424c4f434bull);
	return 0;
}

void sim_kv_deinit(sim_kv *kv)
{
	free(kv->blocks);
	free(kv->buckets);
	memset(kv, 0, sizeof(*kv));
}

uint32_t sim_kv_blocks_for(uint64_t tokens)
{
	uint64_t n = (tokens + SIM_KV_BLOCK_TOKENS - 1) / SIM_KV_BLOCK_TOKENS;
	if (n == 0) n = 1;
	return n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
}

size_t sim_kv_chain(const sim_kv *kv, const uint64_t *words, size_t n, uint64_t *out,
		    size_t max_out)
{
	size_t full = n / SIM_KV_BLOCK_TOKENS, i;
	uint64_t h = kv->seed;
	for (i = 0; i < full && i < max_out; i++) {
		h = hash64(words + i * SIM_KV_BLOCK_TOKENS, SIM_KV_BLOCK_TOKENS * sizeof(uint64_t), h);
		out[i] = h;
	}
	return i;
}

size_t sim_kv_match(const sim_kv *kv, const uint64_t *chain, size_t n)
{
	size_t i = 0;
	while (i < n && table_find(kv, chain[i]) != SIM_KV_NONE) i++;
	return i;
}

int sim_kv_can_admit(const sim_kv *kv, const uint64_t *chain, size_t hit, uint32_t total)
{
	/* Cached blocks on the free list stop being free when taken. */
	uint64_t from_free = 0;
	for (size_t i = 0; i < hit; i++) {
		uint32_t id = table_find(kv, chain[i]);
		if (id != SIM_KV_NONE && kv->blocks[id].ref == 0) from_free++;
	}
	uint64_t fresh = total > hit ? total - hit : 0;
	uint64_t avail = kv->free_blocks > kv->reserved_blocks ? kv->free_blocks - kv->reserved_blocks : 0;
	return fresh + from_free <= avail;
}

static int seq_push(sim_kv_seq *seq, uint32_t id)
{
	if (seq->n == seq->cap) {
		uint32_t cap = seq->cap ? seq->cap * 2 : 8;
		uint32_t *p = realloc(seq->ids, (size_t)cap * sizeof(*p));
		if (!p) return -1;
		seq->ids = p;
		seq->cap = cap;
	}
	seq->ids[seq->n++] = id;
	return 0;
}

/* Takes the least recently freed block (forgetting its cached hash). */
static uint32_t take_free(sim_kv *kv)
{
	uint32_t id = kv->lru_head;
	if (id == SIM_KV_NONE) return id;
	lru_unlink(kv, id);
	table_remove(kv, id);
	kv->blocks[id].ref = 1;
	kv->free_blocks--;
	return id;
}

/* Appends a free block to seq. Returns its id, or SIM_KV_NONE when seq's id
 * array cannot grow (the block goes back to the free list). */
static uint32_t push_free(sim_kv *kv, sim_kv_seq *seq)
{
	uint32_t id = take_free(kv);
	BUG_ON(id == SIM_KV_NONE);
	if (seq_push(seq, id) < 0) {
		kv->blocks[id].ref = 0;
		lru_insert(kv, id, 0);
		kv->free_blocks++;
		return SIM_KV_NONE;
	}
	return id;
}

int sim_kv_admit(sim_kv *kv, sim_kv_seq *seq, const uint64_t *chain, size_t full, size_t hit,
		 uint32_t now, uint32_t total)
{
	/* A released sequence may be admitted again: its id array is kept. */
	seq->n = seq->reserved = seq->hashed = 0;
	seq->last_hash = 0;
	for (size_t i = 0; i < hit; i++) {
		uint32_t id = table_find(kv, chain[i]);
		BUG_ON(id == SIM_KV_NONE);
		if (kv->blocks[id].ref++ == 0) {
			lru_unlink(kv, id);
			kv->free_blocks--;
		}
		if (seq_push(seq, id) < 0) goto fail;
	}
	while (seq->n < now) {
		uint32_t id = push_free(kv, seq);
		if (id == SIM_KV_NONE) goto fail;
		if (seq->n - 1 < full) table_insert(kv, id, chain[seq->n - 1]);
	}
	seq->hashed = (uint32_t)(full < now ? full : now);
	seq->last_hash = seq->hashed ? chain[seq->hashed - 1] : kv->seed;
	seq->reserved = total > now ? total - now : 0;
	kv->reserved_blocks += seq->reserved;
	return 0;
fail:
	sim_kv_release(kv, seq);
	return -1;
}

int sim_kv_grow(sim_kv *kv, sim_kv_seq *seq, const uint64_t *words, uint64_t tokens)
{
	uint32_t need = sim_kv_blocks_for(tokens);
	while (seq->n < need) {
		if (seq->reserved) {
			seq->reserved--;
			kv->reserved_blocks--;
		} else if (kv->free_blocks <= kv->reserved_blocks) {
			return -1;
		}
		if (push_free(kv, seq) == SIM_KV_NONE) return -1;
	}
	uint64_t full = tokens / SIM_KV_BLOCK_TOKENS;
	while (seq->hashed < full && seq->hashed < seq->n) {
		uint64_t h = hash64(words + (uint64_t)seq->hashed * SIM_KV_BLOCK_TOKENS,
				    SIM_KV_BLOCK_TOKENS * sizeof(uint64_t), seq->last_hash);
		uint32_t id = seq->ids[seq->hashed];
		if (!kv->blocks[id].hashed) table_insert(kv, id, h);
		seq->last_hash = h;
		seq->hashed++;
	}
	return 0;
}

void sim_kv_release(sim_kv *kv, sim_kv_seq *seq)
{
	/* Release in reverse so a prompt's first blocks are the last evicted. */
	for (uint32_t i = seq->n; i-- > 0;) {
		uint32_t id = seq->ids[i];
		sim_kv_block *b = &kv->blocks[id];
		BUG_ON(b->ref == 0);
		if (--b->ref == 0) {
			lru_insert(kv, id, !b->hashed ? 0 : 1);
			kv->free_blocks++;
		}
	}
	seq->n = 0;
	kv->reserved_blocks -= seq->reserved;
	seq->reserved = 0;
}

void sim_kv_seq_free(sim_kv_seq *seq)
{
	free(seq->ids);
	memset(seq, 0, sizeof(*seq));
}
