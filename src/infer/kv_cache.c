/*
 * kv_cache.c — the paged KV cache with prefix caching (see kv_cache.h).
 *
 * Blocks live in one array; the free queue is a doubly linked list through
 * the blocks themselves; names live in a chained hash table whose chains also
 * run through the blocks (bucket_next). Sequences live in a fixed array of
 * slots, each with a block table of max_model_len / 16 entries.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core/util.h"
#include "infer/kv_cache.h"

#define HASH_ROOT 0x6b76636163686531ull   /* seed of the first block's hash */

typedef struct kv_block {
	int ref;                  /* sequences holding it */
	int prev, next;           /* free-queue links, -1 at the ends */
	int bucket_next;          /* hash-table chain, -1 at the end */
	uint8_t in_free, named;
	uint64_t hash, parent;    /* valid when named */
	int32_t tokens[KV_BLOCK_TOKENS];
} kv_block;

typedef struct kv_seq {
	int used;
	int len;                  /* positions stored */
	int n_blocks;
	int32_t *blocks;          /* [max_blocks_per_seq], into the cache's table array */
	uint64_t chain;           /* hash of the last full block (HASH_ROOT before the first) */
} kv_seq;

struct kv_cache {
	kv_cache_config cfg;
	size_t block_bytes;       /* bytes per block */
	size_t layer_bytes;       /* bytes per layer in a block (K and V) */
	char *data;               /* n_blocks * block_bytes, mmap'd */
	size_t data_bytes;
	kv_block *blocks;
	int free_head, free_tail, n_free;
	int *buckets;             /* heads of hash chains */
	int n_buckets;            /* power of two */
	int n_named;
	kv_seq *seqs;
	int32_t *tables;          /* max_seqs * max_blocks_per_seq */
	int max_blocks_per_seq;
	uint64_t queries, hits;
};

size_t kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, dtype t)
{
	return (size_t)n_layers * 2 * (size_t)n_kv_heads * KV_BLOCK_TOKENS * (size_t)head_dim * dtype_size(t);
}

/* ------------------------------------------------------------ free queue */

static void queue_remove(kv_cache *c, int b)
{
	kv_block *k = &c->blocks[b];
	if (!k->in_free) return;
	if (k->prev >= 0) c->blocks[k->prev].next = k->next; else c->free_head = k->next;
	if (k->next >= 0) c->blocks[k->next].prev = k->prev; else c->free_tail = k->prev;
	k->prev = k->next = -1;
	k->in_free = 0;
	c->n_free--;
}

static void queue_push(kv_cache *c, int b, int at_head)
{
	kv_block *k = &c->blocks[b];
	k->in_free = 1;
	if (at_head) {
		k->prev = -1;
		k->next = c->free_head;
		if (c->free_head >= 0) c->blocks[c->free_head].prev = b; else c->free_tail = b;
		c->free_head = b;
	} else {
		k->next = -1;
		k->prev = c->free_tail;
		if (c->free_tail >= 0) c->blocks[c->free_tail].next = b; else c->free_head = b;
		c->free_tail = b;
	}
	c->n_free++;
}

/* ------------------------------------------------------------ names */

static uint64_t block_hash(const int32_t *tokens, uint64_t parent)
{
	return hash64(tokens, KV_BLOCK_TOKENS * sizeof(int32_t), parent);
}

static int name_find(const kv_cache *c, uint64_t hash, uint64_t parent, const int32_t *tokens)
{
	for (int b = c->buckets[hash & (uint64_t)(c->n_buckets - 1)]; b >= 0; b = c->blocks[b].bucket_next) {
		const kv_block *k = &c->blocks[b];
		if (k->hash == hash && k->parent == parent &&
		    memcmp(k->tokens, tokens, sizeof k->tokens) == 0)
			return b;
	}
	return -1;
}

static void name_add(kv_cache *c, int b, uint64_t hash, uint64_t parent)
{
	kv_block *k = &c->blocks[b];
	int *head = &c->buckets[hash & (uint64_t)(c->n_buckets - 1)];
	k->hash = hash;
	k->parent = parent;
	k->named = 1;
	k->bucket_next = *head;
	*head = b;
	c->n_named++;
}

static void name_drop(kv_cache *c, int b)
{
	kv_block *k = &c->blocks[b];
	if (!k->named) return;
	int *p = &c->buckets[k->hash & (uint64_t)(c->n_buckets - 1)];
	while (*p >= 0 && *p != b) p = &c->blocks[*p].bucket_next;
	if (*p == b) *p = k->bucket_next;
	k->bucket_next = -1;
	k->named = 0;
	c->n_named--;
}

/* ------------------------------------------------------------ life */

kv_cache *kv_cache_new(const kv_cache_config *cfg, char *err, size_t errlen)
{
	if (cfg->n_layers < 1 || cfg->n_kv_heads < 1 || cfg->head_dim < 1 || cfg->n_blocks < 1 ||
	    cfg->max_seqs < 1 || cfg->max_model_len < 1) {
		snprintf(err, errlen, "kv cache: every size must be at least 1");
		return NULL;
	}
	if (cfg->dtype != DTYPE_F32 && cfg->dtype != DTYPE_BF16) {
		snprintf(err, errlen, "kv cache: dtype %s is not supported (F32, BF16)", dtype_name(cfg->dtype));
		return NULL;
	}
	kv_cache *c = calloc(1, sizeof *c);
	if (!c) goto oom;
	c->cfg = *cfg;
	c->layer_bytes = 2 * (size_t)cfg->n_kv_heads * KV_BLOCK_TOKENS * (size_t)cfg->head_dim * dtype_size(cfg->dtype);
	c->block_bytes = (size_t)cfg->n_layers * c->layer_bytes;
	c->data_bytes = c->block_bytes * (size_t)cfg->n_blocks;
	c->data = mmap(NULL, c->data_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->data == MAP_FAILED) { c->data = NULL; goto oom; }
	c->blocks = calloc((size_t)cfg->n_blocks, sizeof *c->blocks);
	c->n_buckets = 16;
	while (c->n_buckets < 2 * cfg->n_blocks) c->n_buckets *= 2;
	c->buckets = malloc((size_t)c->n_buckets * sizeof *c->buckets);
	c->max_blocks_per_seq = (cfg->max_model_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	c->seqs = calloc((size_t)cfg->max_seqs, sizeof *c->seqs);
	c->tables = calloc((size_t)cfg->max_seqs * (size_t)c->max_blocks_per_seq, sizeof *c->tables);
	if (!c->blocks || !c->buckets || !c->seqs || !c->tables) goto oom;
	for (int i = 0; i < c->n_buckets; i++) c->buckets[i] = -1;
	c->free_head = c->free_tail = -1;
	for (int b = 0; b < cfg->n_blocks; b++) {
		c->blocks[b].bucket_next = -1;
		queue_push(c, b, 0);
	}
	for (int s = 0; s < cfg->max_seqs; s++)
		c->seqs[s].blocks = c->tables + (size_t)s * (size_t)c->max_blocks_per_seq;
	return c;
oom:
	snprintf(err, errlen, "kv cache: cannot allocate %d blocks of %zu bytes", cfg->n_blocks,
	         kv_block_bytes(cfg->n_layers, cfg->n_kv_heads, cfg->head_dim, cfg->dtype));
	kv_cache_free(c);
	return NULL;
}

void kv_cache_free(kv_cache *c)
{
	if (!c) return;
	if (c->data) munmap(c->data, c->data_bytes);
	free(c->blocks);
	free(c->buckets);
	free(c->seqs);
	free(c->tables);
	free(c);
}

const kv_cache_config *kv_cache_get_config(const kv_cache *c) { return &c->cfg; }

/* ------------------------------------------------------------ sequences */

int kv_seq_valid(const kv_cache *c, int seq)
{
	return seq >= 0 && seq < c->cfg.max_seqs && c->seqs[seq].used;
}

/* Walks the cached prefix of tokens; with take, the sequence s takes the blocks. */
static int match(kv_cache *c, const int32_t *tokens, int n, kv_seq *s)
{
	if (!c->cfg.prefix_caching || n <= 1) return 0;
	int max_blocks = (n - 1) / KV_BLOCK_TOKENS, got = 0;
	if (max_blocks > c->max_blocks_per_seq) max_blocks = c->max_blocks_per_seq;
	uint64_t parent = HASH_ROOT;
	for (; got < max_blocks; got++) {
		const int32_t *t = tokens + (size_t)got * KV_BLOCK_TOKENS;
		uint64_t h = block_hash(t, parent);
		int b = name_find(c, h, parent, t);
		if (b < 0) break;
		if (s) {
			queue_remove(c, b);
			c->blocks[b].ref++;
			s->blocks[s->n_blocks++] = b;
			s->chain = h;
		}
		parent = h;
	}
	return got * KV_BLOCK_TOKENS;
}

int kv_seq_new(kv_cache *c, const int32_t *tokens, int n, int *n_cached)
{
	int id = -1;
	for (int i = 0; i < c->cfg.max_seqs; i++)
		if (!c->seqs[i].used) { id = i; break; }
	if (n_cached) *n_cached = 0;
	if (id < 0) return -1;
	kv_seq *s = &c->seqs[id];
	s->used = 1;
	s->len = 0;
	s->n_blocks = 0;
	s->chain = HASH_ROOT;
	if (n > 0 && tokens) {
		s->len = match(c, tokens, n, s);
		c->queries += (uint64_t)n;
		c->hits += (uint64_t)s->len;
	}
	if (n_cached) *n_cached = s->len;
	return id;
}

void kv_seq_free(kv_cache *c, int seq)
{
	if (!kv_seq_valid(c, seq)) return;
	kv_seq *s = &c->seqs[seq];
	/* last block first, so a sequence's tail is evicted before its head */
	for (int i = s->n_blocks - 1; i >= 0; i--) {
		int b = s->blocks[i];
		if (--c->blocks[b].ref == 0) queue_push(c, b, !c->blocks[b].named);
	}
	s->used = 0;
	s->n_blocks = 0;
	s->len = 0;
}

int kv_seq_len(const kv_cache *c, int seq) { return kv_seq_valid(c, seq) ? c->seqs[seq].len : 0; }

const int32_t *kv_seq_blocks(const kv_cache *c, int seq, int *n_blocks)
{
	if (!kv_seq_valid(c, seq)) { *n_blocks = 0; return NULL; }
	*n_blocks = c->seqs[seq].n_blocks;
	return c->seqs[seq].blocks;
}

int kv_seq_blocks_needed(const kv_cache *c, int seq, int n_new)
{
	if (!kv_seq_valid(c, seq) || n_new < 0) return 0;
	const kv_seq *s = &c->seqs[seq];
	int want = (s->len + n_new + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	return want > s->n_blocks ? want - s->n_blocks : 0;
}

int kv_seq_reserve(kv_cache *c, int seq, int n_new)
{
	if (!kv_seq_valid(c, seq) || n_new < 0) return -1;
	kv_seq *s = &c->seqs[seq];
	if ((long)s->len + n_new > c->cfg.max_model_len) return -1;
	int need = kv_seq_blocks_needed(c, seq, n_new);
	if (need > c->n_free) return -1;
	for (int i = 0; i < need; i++) {
		int b = c->free_head;
		queue_remove(c, b);
		name_drop(c, b);             /* evict whatever it cached */
		c->blocks[b].ref = 1;
		s->blocks[s->n_blocks++] = b;
	}
	return 0;
}

void kv_seq_commit(kv_cache *c, int seq, const int32_t *tokens, int n)
{
	if (!kv_seq_valid(c, seq)) return;
	kv_seq *s = &c->seqs[seq];
	for (int i = 0; i < n; i++) {
		int p = s->len;
		BUG_ON(p / KV_BLOCK_TOKENS >= s->n_blocks);
		kv_block *k = &c->blocks[s->blocks[p / KV_BLOCK_TOKENS]];
		k->tokens[p % KV_BLOCK_TOKENS] = tokens[i];
		s->len++;
		if (p % KV_BLOCK_TOKENS == KV_BLOCK_TOKENS - 1) {
			uint64_t h = block_hash(k->tokens, s->chain);
			int b = s->blocks[p / KV_BLOCK_TOKENS];
			if (c->cfg.prefix_caching && !k->named && name_find(c, h, s->chain, k->tokens) < 0)
				name_add(c, b, h, s->chain);
			s->chain = h;
		}
	}
}

/* ------------------------------------------------------------ queries */

int kv_cache_match_prefix(const kv_cache *c, const int32_t *tokens, int n)
{
	return match((kv_cache *)c, tokens, n, NULL);
}

int kv_cache_free_blocks(const kv_cache *c) { return c->n_free; }
int kv_cache_total_blocks(const kv_cache *c) { return c->cfg.n_blocks; }
int kv_cache_can_allocate(const kv_cache *c, int n_blocks) { return n_blocks <= c->n_free; }
double kv_cache_usage(const kv_cache *c) { return 1.0 - (double)c->n_free / (double)c->cfg.n_blocks; }
int kv_cache_cached_blocks(const kv_cache *c) { return c->n_named; }
uint64_t kv_cache_prefix_queries(const kv_cache *c) { return c->queries; }
uint64_t kv_cache_prefix_hits(const kv_cache *c) { return c->hits; }

void kv_cache_reset_prefix(kv_cache *c)
{
	for (int b = 0; b < c->cfg.n_blocks; b++) name_drop(c, b);
}

void *kv_block_k(kv_cache *c, int block, int layer)
{
	return c->data + (size_t)block * c->block_bytes + (size_t)layer * c->layer_bytes;
}

void *kv_block_v(kv_cache *c, int block, int layer)
{
	return (char *)kv_block_k(c, block, layer) + c->layer_bytes / 2;
}
