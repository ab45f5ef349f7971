/*
 * kv_cache.c — the paged KV cache with prefix caching (see kv_cache.h).
 *
 * Each pool keeps its blocks in one array; its free queue is a doubly linked
 * list through the blocks themselves; its names live in a chained hash table
 * whose chains also run through the blocks (bucket_next). Sequences live in
 * a fixed array of slots, each with a table of max_model_len / 16 entries per
 * pool. Pool 0 holds the full-attention layers, pool 1 (when there is one)
 * the sliding-window layers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core/util.h"
#include "infer/kv_cache.h"

#define HASH_ROOT 0x6b76636163686531ull /* seed of the first block's hash */

enum { POOL_FULL = 0,
       POOL_WINDOW = 1 };

typedef struct kv_block {
	int ref;         /* sequences holding it */
	int prev, next;  /* free-queue links, -1 at the ends */
	int bucket_next; /* hash-table chain, -1 at the end */
	uint8_t in_free, named;
	uint64_t hash, parent; /* valid when named */
	int32_t tokens[KV_BLOCK_TOKENS];
} kv_block;

/* One pool of blocks for a set of layers; owned by the cache. */
typedef struct kv_pool {
	int n_layers;       /* layers a block holds (0: bookkeeping only) */
	size_t block_bytes; /* n_layers * layer_bytes */
	char *data;         /* n_blocks * block_bytes, mmap'd (NULL when 0 bytes) */
	size_t data_bytes;
	kv_block *blocks;
	int n_blocks;
	int free_head, free_tail, n_free;
	int *buckets;  /* heads of hash chains */
	int n_buckets; /* power of two */
	int n_named;
} kv_pool;

typedef struct kv_seq {
	int used;
	int len;         /* positions stored */
	int n_blocks;    /* table entries (both tables) */
	int window_lo;   /* first live entry of the window table */
	int32_t *blocks; /* [max_blocks_per_seq] full pool, into the cache's tables */
	int32_t *window; /* [max_blocks_per_seq] window pool, -1 below window_lo */
	uint64_t chain;  /* hash of the last full block (HASH_ROOT before the first) */
} kv_seq;

struct kv_cache {
	kv_cache_config cfg;
	size_t layer_bytes; /* bytes per layer in a block (K and V) */
	kv_pool pool[2];
	int has_window;            /* pool[POOL_WINDOW] is in use */
	int window;                /* sliding_window, when has_window */
	unsigned char *layer_pool; /* [n_layers] POOL_* */
	int *layer_index;          /* [n_layers] the layer's place within its pool's block */
	kv_seq *seqs;
	int32_t *tables; /* max_seqs * 2 * max_blocks_per_seq */
	int max_blocks_per_seq;
	uint64_t *scratch_hash; /* [max_blocks_per_seq] for prefix matching */
	int *scratch_miss;      /* [max_blocks_per_seq + 1] */
	uint64_t queries, hits;
};

size_t kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, dtype t)
{
	return (size_t)n_layers * 2 * (size_t)n_kv_heads * KV_BLOCK_TOKENS * (size_t)head_dim * dtype_size(t);
}

/* Layers in the window pool for cfg (0 when the window covers max_model_len). */
static int window_layers(const kv_cache_config *cfg)
{
	if (!cfg->sliding || cfg->sliding_window < 1 || cfg->sliding_window >= cfg->max_model_len) return 0;
	int n = 0;
	for (int l = 0; l < cfg->n_layers; l++) n += cfg->sliding[l] != 0;
	return n;
}

/* The window pool's blocks: every live sequence holds at most
 * ceil((len + n_new) / 16) - floor((len - window + 1) / 16)
 * <= (window + n_new + 29) / 16 window blocks during a step (n_new of the
 * step's positions), and the n_new of all sequences sum to max_step_tokens. */
static int window_blocks(const kv_cache_config *cfg)
{
	if (!window_layers(cfg)) return 0;
	long step = cfg->max_step_tokens > 0 ? cfg->max_step_tokens : cfg->max_model_len;
	long n = ((long)cfg->max_seqs * (cfg->sliding_window + 29) + step + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	long per_seq_max = (cfg->max_model_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	if (n > (long)cfg->max_seqs * per_seq_max) n = (long)cfg->max_seqs * per_seq_max;
	return n > (1 << 30) ? (1 << 30) : (int)n;
}

void kv_cache_sizes(const kv_cache_config *cfg, size_t *full_block_bytes, int *n_window, size_t *window_bytes)
{
	int wl = window_layers(cfg), wb = window_blocks(cfg);
	*full_block_bytes = kv_block_bytes(cfg->n_layers - wl, cfg->n_kv_heads, cfg->head_dim, cfg->dtype);
	*n_window = wb;
	*window_bytes = (size_t)wb * kv_block_bytes(wl, cfg->n_kv_heads, cfg->head_dim, cfg->dtype);
}

/* ------------------------------------------------------------ free queue */

static void queue_remove(kv_pool *p, int b)
{
	kv_block *k = &p->blocks[b];
	if (!k->in_free) return;
	if (k->prev >= 0) p->blocks[k->prev].next = k->next;
	else p->free_head = k->next;
	if (k->next >= 0) p->blocks[k->next].prev = k->prev;
	else p->free_tail = k->prev;
	k->prev = k->next = -1;
	k->in_free = 0;
	p->n_free--;
}

static void queue_push(kv_pool *p, int b, int at_head)
{
	kv_block *k = &p->blocks[b];
	k->in_free = 1;
	if (at_head) {
		k->prev = -1;
		k->next = p->free_head;
		if (p->free_head >= 0) p->blocks[p->free_head].prev = b;
		else p->free_tail = b;
		p->free_head = b;
	} else {
		k->next = -1;
		k->prev = p->free_tail;
		if (p->free_tail >= 0) p->blocks[p->free_tail].next = b;
		else p->free_head = b;
		p->free_tail = b;
	}
	p->n_free++;
}

/* Drops one reference; an unreferenced block joins the free queue (a named
 * one at the tail, to be evicted last). */
static void block_release(kv_pool *p, int b)
{
	if (--p->blocks[b].ref == 0) queue_push(p, b, !p->blocks[b].named);
}

/* ------------------------------------------------------------ names */

static uint64_t block_hash(const int32_t *tokens, uint64_t parent)
{
	return hash64(tokens, KV_BLOCK_TOKENS * sizeof(int32_t), parent);
}

static int name_find(const kv_pool *p, uint64_t hash, uint64_t parent, const int32_t *tokens)
{
	for (int b = p->buckets[hash & (uint64_t)(p->n_buckets - 1)]; b >= 0; b = p->blocks[b].bucket_next) {
		const kv_block *k = &p->blocks[b];
		if (k->hash == hash && k->parent == parent &&
		    memcmp(k->tokens, tokens, sizeof k->tokens) == 0)
			return b;
	}
	return -1;
}

static void name_add(kv_pool *p, int b, uint64_t hash, uint64_t parent)
{
	kv_block *k = &p->blocks[b];
	int *head = &p->buckets[hash & (uint64_t)(p->n_buckets - 1)];
	k->hash = hash;
	k->parent = parent;
	k->named = 1;
	k->bucket_next = *head;
	*head = b;
	p->n_named++;
}

static void name_drop(kv_pool *p, int b)
{
	kv_block *k = &p->blocks[b];
	if (!k->named) return;
	int *h = &p->buckets[k->hash & (uint64_t)(p->n_buckets - 1)];
	while (*h >= 0 && *h != b) h = &p->blocks[*h].bucket_next;
	if (*h == b) *h = k->bucket_next;
	k->bucket_next = -1;
	k->named = 0;
	p->n_named--;
}

/* Takes the head of the free queue (evicting its name) for one holder. */
static int block_take_free(kv_pool *p)
{
	int b = p->free_head;
	queue_remove(p, b);
	name_drop(p, b);
	p->blocks[b].ref = 1;
	return b;
}

/* ------------------------------------------------------------ life */

static int pool_init(kv_pool *p, int n_layers, size_t layer_bytes, int n_blocks)
{
	p->n_layers = n_layers;
	p->block_bytes = (size_t)n_layers * layer_bytes;
	p->n_blocks = n_blocks;
	p->data_bytes = p->block_bytes * (size_t)n_blocks;
	p->free_head = p->free_tail = -1;
	if (n_blocks == 0) return 0;
	if (p->data_bytes > 0) {
		p->data = mmap(NULL, p->data_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p->data == MAP_FAILED) {
			p->data = NULL;
			return -1;
		}
	}
	p->blocks = calloc((size_t)n_blocks, sizeof *p->blocks);
	p->n_buckets = 16;
	while (p->n_buckets < 2 * n_blocks) p->n_buckets *= 2;
	p->buckets = malloc((size_t)p->n_buckets * sizeof *p->buckets);
	if (!p->blocks || !p->buckets) return -1;
	for (int i = 0; i < p->n_buckets; i++) p->buckets[i] = -1;
	for (int b = 0; b < n_blocks; b++) {
		p->blocks[b].bucket_next = -1;
		queue_push(p, b, 0);
	}
	return 0;
}

static void pool_deinit(kv_pool *p)
{
	if (p->data) munmap(p->data, p->data_bytes);
	free(p->blocks);
	free(p->buckets);
}

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
	int wl = window_layers(cfg);
	kv_cache *c = calloc(1, sizeof *c);
	if (!c) goto oom;
	c->cfg = *cfg;
	c->cfg.sliding = NULL; /* the caller's array is copied into layer_pool */
	c->layer_bytes = 2 * (size_t)cfg->n_kv_heads * KV_BLOCK_TOKENS * (size_t)cfg->head_dim * dtype_size(cfg->dtype);
	c->has_window = wl > 0;
	c->window = cfg->sliding_window;
	c->layer_pool = calloc((size_t)cfg->n_layers, 1);
	c->layer_index = calloc((size_t)cfg->n_layers, sizeof *c->layer_index);
	if (!c->layer_pool || !c->layer_index) goto oom;
	int at[2] = {0, 0};
	for (int l = 0; l < cfg->n_layers; l++) {
		int p = c->has_window && cfg->sliding[l] ? POOL_WINDOW : POOL_FULL;
		c->layer_pool[l] = (unsigned char)p;
		c->layer_index[l] = at[p]++;
	}
	if (pool_init(&c->pool[POOL_FULL], cfg->n_layers - wl, c->layer_bytes, cfg->n_blocks) < 0 ||
	    pool_init(&c->pool[POOL_WINDOW], wl, c->layer_bytes, window_blocks(cfg)) < 0)
		goto oom;
	c->max_blocks_per_seq = (cfg->max_model_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
	c->seqs = calloc((size_t)cfg->max_seqs, sizeof *c->seqs);
	c->tables = calloc((size_t)cfg->max_seqs * 2 * (size_t)c->max_blocks_per_seq, sizeof *c->tables);
	c->scratch_hash = calloc((size_t)c->max_blocks_per_seq, sizeof *c->scratch_hash);
	c->scratch_miss = calloc((size_t)c->max_blocks_per_seq + 1, sizeof *c->scratch_miss);
	if (!c->seqs || !c->tables || !c->scratch_hash || !c->scratch_miss) goto oom;
	for (int s = 0; s < cfg->max_seqs; s++) {
		c->seqs[s].blocks = c->tables + (size_t)s * 2 * (size_t)c->max_blocks_per_seq;
		c->seqs[s].window = c->seqs[s].blocks + c->max_blocks_per_seq;
	}
	return c;
oom:
	snprintf(err, errlen, "kv cache: cannot allocate %d blocks of %zu bytes (and %d window blocks)", cfg->n_blocks,
		 kv_block_bytes(cfg->n_layers - wl, cfg->n_kv_heads, cfg->head_dim, cfg->dtype), window_blocks(cfg));
	kv_cache_free(c);
	return NULL;
}

void kv_cache_free(kv_cache *c)
{
	if (!c) return;
	pool_deinit(&c->pool[POOL_FULL]);
	pool_deinit(&c->pool[POOL_WINDOW]);
	free(c->layer_pool);
	free(c->layer_index);
	free(c->seqs);
	free(c->tables);
	free(c->scratch_hash);
	free(c->scratch_miss);
	free(c);
}

const kv_cache_config *kv_cache_get_config(const kv_cache *c) { return &c->cfg; }

/* ------------------------------------------------------------ sequences */

int kv_seq_valid(const kv_cache *c, int seq)
{
	return seq >= 0 && seq < c->cfg.max_seqs && c->seqs[seq].used;
}

/* The first window-table entry a sequence of len positions still needs: the
 * next query, at len, sees keys from len - window + 1. */
static int window_lo(const kv_cache *c, int len)
{
	int first = len - c->window + 1;
	return first > 0 ? first / KV_BLOCK_TOKENS : 0;
}

/* Walks the cached prefix of tokens; with s, the sequence takes the blocks.
 * The full pool must hold every block of the prefix, the window pool those
 * from window_lo on; the longest k blocks that satisfy both win. */
static int match(kv_cache *c, const int32_t *tokens, int n, kv_seq *s)
{
	if (!c->cfg.prefix_caching || n <= 1) return 0;
	int max_blocks = (n - 1) / KV_BLOCK_TOKENS, got = 0;
	if (max_blocks > c->max_blocks_per_seq) max_blocks = c->max_blocks_per_seq;
	kv_pool *full = &c->pool[POOL_FULL], *win = &c->pool[POOL_WINDOW];
	uint64_t parent = HASH_ROOT;
	/* scratch_miss[i]: the last index < i whose window block is not cached, or -1 */
	c->scratch_miss[0] = -1;
	for (; got < max_blocks; got++) {
		const int32_t *t = tokens + (size_t)got * KV_BLOCK_TOKENS;
		uint64_t h = block_hash(t, parent);
		if (name_find(full, h, parent, t) < 0) break;
		c->scratch_hash[got] = h;
		int miss = c->has_window && name_find(win, h, parent, t) < 0;
		c->scratch_miss[got + 1] = miss ? got : c->scratch_miss[got];
		parent = h;
	}
	if (c->has_window)
		while (got > 0 && c->scratch_miss[got] >= window_lo(c, got * KV_BLOCK_TOKENS)) got--;
	if (s && got > 0) {
		int lo = c->has_window ? window_lo(c, got * KV_BLOCK_TOKENS) : got;
		parent = HASH_ROOT;
		for (int i = 0; i < got; i++) {
			const int32_t *t = tokens + (size_t)i * KV_BLOCK_TOKENS;
			uint64_t h = c->scratch_hash[i];
			int b = name_find(full, h, parent, t);
			queue_remove(full, b);
			full->blocks[b].ref++;
			s->blocks[i] = b;
			s->window[i] = -1;
			if (i >= lo) {
				int w = name_find(win, h, parent, t);
				queue_remove(win, w);
				win->blocks[w].ref++;
				s->window[i] = w;
			}
			parent = h;
		}
		s->n_blocks = got;
		s->window_lo = c->has_window ? lo : 0;
		s->chain = parent;
	}
	return got * KV_BLOCK_TOKENS;
}

int kv_seq_new(kv_cache *c, const int32_t *tokens, int n, int *n_cached)
{
	int id = -1;
	for (int i = 0; i < c->cfg.max_seqs; i++)
		if (!c->seqs[i].used) {
			id = i;
			break;
		}
	if (n_cached) *n_cached = 0;
	if (id < 0) return -1;
	kv_seq *s = &c->seqs[id];
	s->used = 1;
	s->len = 0;
	s->n_blocks = 0;
	s->window_lo = 0;
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
		block_release(&c->pool[POOL_FULL], s->blocks[i]);
		if (c->has_window && i >= s->window_lo) block_release(&c->pool[POOL_WINDOW], s->window[i]);
	}
	s->used = 0;
	s->n_blocks = 0;
	s->window_lo = 0;
	s->len = 0;
}

int kv_seq_len(const kv_cache *c, int seq) { return kv_seq_valid(c, seq) ? c->seqs[seq].len : 0; }

const int32_t *kv_seq_blocks(const kv_cache *c, int seq, int *n_blocks)
{
	if (!kv_seq_valid(c, seq)) {
		*n_blocks = 0;
		return NULL;
	}
	*n_blocks = c->seqs[seq].n_blocks;
	return c->seqs[seq].blocks;
}

const int32_t *kv_seq_layer_blocks(const kv_cache *c, int seq, int layer)
{
	if (!kv_seq_valid(c, seq) || layer < 0 || layer >= c->cfg.n_layers) return NULL;
	return c->layer_pool[layer] == POOL_WINDOW ? c->seqs[seq].window : c->seqs[seq].blocks;
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
	kv_pool *full = &c->pool[POOL_FULL], *win = &c->pool[POOL_WINDOW];
	/* new entries are the newest positions: each needs a window block too */
	if (need > full->n_free || (c->has_window && need > win->n_free)) return -1;
	for (int i = 0; i < need; i++) {
		s->blocks[s->n_blocks] = block_take_free(full);
		s->window[s->n_blocks] = c->has_window ? block_take_free(win) : -1;
		s->n_blocks++;
	}
	return 0;
}

void kv_seq_commit(kv_cache *c, int seq, const int32_t *tokens, int n)
{
	if (!kv_seq_valid(c, seq)) return;
	kv_seq *s = &c->seqs[seq];
	kv_pool *full = &c->pool[POOL_FULL], *win = &c->pool[POOL_WINDOW];
	for (int i = 0; i < n; i++) {
		int p = s->len, bi = p / KV_BLOCK_TOKENS;
		BUG_ON(bi >= s->n_blocks);
		kv_block *k = &full->blocks[s->blocks[bi]];
		k->tokens[p % KV_BLOCK_TOKENS] = tokens[i];
		s->len++;
		if (p % KV_BLOCK_TOKENS == KV_BLOCK_TOKENS - 1) {
			uint64_t h = block_hash(k->tokens, s->chain);
			if (c->cfg.prefix_caching) {
				if (!k->named && name_find(full, h, s->chain, k->tokens) < 0)
					name_add(full, s->blocks[bi], h, s->chain);
				if (c->has_window) {
					int w = s->window[bi];
					kv_block *wk = &win->blocks[w];
					memcpy(wk->tokens, k->tokens, sizeof wk->tokens);
					if (!wk->named && name_find(win, h, s->chain, wk->tokens) < 0)
						name_add(win, w, h, s->chain);
				}
			}
			s->chain = h;
		}
	}
	/* window blocks the next query can no longer see go back to the pool */
	if (c->has_window) {
		int lo = window_lo(c, s->len);
		for (; s->window_lo < lo && s->window_lo < s->n_blocks; s->window_lo++) {
			block_release(win, s->window[s->window_lo]);
			s->window[s->window_lo] = -1;
		}
	}
}

/* ------------------------------------------------------------ queries */

int kv_cache_match_prefix(const kv_cache *c, const int32_t *tokens, int n)
{
	return match((kv_cache *)c, tokens, n, NULL);
}

int kv_cache_free_blocks(const kv_cache *c) { return c->pool[POOL_FULL].n_free; }
int kv_cache_total_blocks(const kv_cache *c) { return c->cfg.n_blocks; }
int kv_cache_can_allocate(const kv_cache *c, int n_blocks) { return n_blocks <= c->pool[POOL_FULL].n_free; }
double kv_cache_usage(const kv_cache *c) { return 1.0 - (double)c->pool[POOL_FULL].n_free / (double)c->cfg.n_blocks; }
int kv_cache_cached_blocks(const kv_cache *c) { return c->pool[POOL_FULL].n_named; }
int kv_cache_window_total_blocks(const kv_cache *c) { return c->pool[POOL_WINDOW].n_blocks; }
int kv_cache_window_free_blocks(const kv_cache *c) { return c->pool[POOL_WINDOW].n_free; }
size_t kv_cache_bytes(const kv_cache *c) { return c->pool[POOL_FULL].data_bytes + c->pool[POOL_WINDOW].data_bytes; }
uint64_t kv_cache_prefix_queries(const kv_cache *c) { return c->queries; }
uint64_t kv_cache_prefix_hits(const kv_cache *c) { return c->hits; }

void kv_cache_reset_prefix(kv_cache *c)
{
	for (int p = 0; p < 2; p++)
		for (int b = 0; b < c->pool[p].n_blocks; b++) name_drop(&c->pool[p], b);
}

void *kv_block_k(kv_cache *c, int block, int layer)
{
	const kv_pool *p = &c->pool[c->layer_pool[layer]];
	return p->data + (size_t)block * p->block_bytes + (size_t)c->layer_index[layer] * c->layer_bytes;
}

void *kv_block_v(kv_cache *c, int block, int layer)
{
	return (char *)kv_block_k(c, block, layer) + c->layer_bytes / 2;
}
