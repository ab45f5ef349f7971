/*
 * test_kv_cache.c — the paged KV cache: block accounting, block tables,
 * prefix matching by hash chain, sharing by reference count, LRU eviction of
 * cached blocks, usage, and the limits; the window pool of sliding-window
 * layers: blocks that slide out leave, its size bound, and prefix matching
 * that needs the window's blocks.
 */
#include <stdlib.h>
#include "t.h"
#include "infer/kv_cache.h"

static kv_cache *mk(int blocks, int seqs, int max_len, int prefix)
{
	kv_cache_config c = {.n_layers = 2, .n_kv_heads = 1, .head_dim = 8, .n_blocks = blocks, .max_seqs = seqs, .max_model_len = max_len, .prefix_caching = prefix};
	char err[128];
	kv_cache *kv = kv_cache_new(&c, err, sizeof err);
	T_CHECK(kv != NULL);
	return kv;
}

static void fill(int32_t *t, int n, int base)
{
	for (int i = 0; i < n; i++) t[i] = base + i;
}

/* Appends n tokens to seq as the engine does: reserve then commit. */
static int append(kv_cache *kv, int seq, const int32_t *t, int n)
{
	if (kv_seq_reserve(kv, seq, n) < 0) return -1;
	kv_seq_commit(kv, seq, t, n);
	return 0;
}

static void test_blocks_and_tables(void)
{
	kv_cache *kv = mk(8, 4, 256, 1);
	int32_t t[64];
	fill(t, 64, 100);
	T_EQ_INT(kv_cache_free_blocks(kv), 8);
	T_NEAR(kv_cache_usage(kv), 0.0, 1e-12);
	int s = kv_seq_new(kv, t, 20, NULL);
	T_EQ_INT(kv_seq_len(kv, s), 0);
	T_EQ_INT(kv_seq_blocks_needed(kv, s, 20), 2);
	T_EQ_INT(append(kv, s, t, 20), 0);
	T_EQ_INT(kv_seq_len(kv, s), 20);
	int nb;
	const int32_t *bt = kv_seq_blocks(kv, s, &nb);
	T_EQ_INT(nb, 2);
	T_CHECK(bt[0] != bt[1]);
	T_EQ_INT(kv_cache_free_blocks(kv), 6);
	T_NEAR(kv_cache_usage(kv), 2.0 / 8, 1e-12);
	T_EQ_INT(kv_seq_blocks_needed(kv, s, 12), 0); /* fits the second block */
	T_EQ_INT(kv_seq_blocks_needed(kv, s, 13), 1);
	T_EQ_INT(kv_cache_can_allocate(kv, 6), 1);
	T_EQ_INT(kv_cache_can_allocate(kv, 7), 0);
	/* the first block is full, so named */
	T_EQ_INT(kv_cache_cached_blocks(kv), 1);
	kv_seq_free(kv, s);
	T_EQ_INT(kv_cache_free_blocks(kv), 8);
	T_EQ_INT(kv_seq_valid(kv, s), 0);
	/* K and V of different blocks and layers do not overlap */
	T_CHECK((float *)kv_block_v(kv, 0, 0) > (float *)kv_block_k(kv, 0, 0));
	T_CHECK((float *)kv_block_k(kv, 0, 1) >= (float *)kv_block_v(kv, 0, 0) + 16 * 8);
	T_CHECK((float *)kv_block_k(kv, 1, 0) >= (float *)kv_block_v(kv, 0, 1) + 16 * 8);
	kv_cache_free(kv);
}

static void test_prefix_sharing(void)
{
	kv_cache *kv = mk(16, 4, 256, 1);
	int32_t a[64], b[64];
	fill(a, 64, 1000);
	fill(b, 64, 1000);
	b[40] = 7; /* b diverges in its third block */
	int n;
	int s1 = kv_seq_new(kv, a, 50, &n);
	T_EQ_INT(n, 0);
	T_EQ_INT(append(kv, s1, a, 50), 0); /* 3 full blocks + 2 tokens */
	T_EQ_INT(kv_cache_match_prefix(kv, a, 50), 48);
	T_EQ_INT(kv_cache_match_prefix(kv, b, 50), 32);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 48), 32); /* at most n-1 tokens */
	T_EQ_INT(kv_cache_match_prefix(kv, a, 49), 48);
	int s2 = kv_seq_new(kv, b, 50, &n);
	T_EQ_INT(n, 32);
	T_EQ_INT(kv_seq_len(kv, s2), 32);
	int nb1, nb2;
	const int32_t *t1 = kv_seq_blocks(kv, s1, &nb1), *t2 = kv_seq_blocks(kv, s2, &nb2);
	T_EQ_INT(nb2, 2);
	T_EQ_INT(t1[0], t2[0]);
	T_EQ_INT(t1[1], t2[1]);
	T_EQ_INT(kv_cache_free_blocks(kv), 12); /* shared blocks are counted once */
	T_EQ_INT(append(kv, s2, b + 32, 18), 0);
	t2 = kv_seq_blocks(kv, s2, &nb2);
	T_CHECK(t2[2] != t1[2]);
	T_EQ_INT(kv_cache_prefix_queries(kv), 100);
	T_EQ_INT(kv_cache_prefix_hits(kv), 32);
	/* freeing one holder keeps shared blocks in use */
	kv_seq_free(kv, s1);
	T_EQ_INT(kv_cache_free_blocks(kv), 16 - 4);
	/* a freed cached block is still found, and taken back out of the free queue */
	int s3 = kv_seq_new(kv, a, 64, &n);
	T_EQ_INT(n, 48);
	T_EQ_INT(kv_cache_free_blocks(kv), 16 - 5);
	kv_seq_free(kv, s2);
	kv_seq_free(kv, s3);
	T_EQ_INT(kv_cache_free_blocks(kv), 16);
	T_CHECK(kv_cache_cached_blocks(kv) >= 4);
	kv_cache_reset_prefix(kv);
	T_EQ_INT(kv_cache_cached_blocks(kv), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 64), 0);
	kv_cache_free(kv);
}

static void test_lru_eviction(void)
{
	kv_cache *kv = mk(4, 4, 256, 1);
	int32_t a[32], b[32], c[64];
	fill(a, 32, 10);
	fill(b, 32, 500);
	fill(c, 64, 9000);
	int s = kv_seq_new(kv, a, 17, NULL);
	T_EQ_INT(append(kv, s, a, 17), 0); /* a: block 1 named, block 2 partial */
	kv_seq_free(kv, s);
	s = kv_seq_new(kv, b, 17, NULL);
	T_EQ_INT(append(kv, s, b, 17), 0); /* b: same */
	kv_seq_free(kv, s);
	T_EQ_INT(kv_cache_cached_blocks(kv), 2);
	T_EQ_INT(kv_cache_free_blocks(kv), 4);
	/* taking 3 blocks uses the two unnamed ones first, then evicts a (older) */
	s = kv_seq_new(kv, c, 48, NULL);
	T_EQ_INT(append(kv, s, c, 33), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 17), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, b, 17), 16);
	/* the pool is short: reserve fails and changes nothing */
	T_EQ_INT(kv_cache_free_blocks(kv), 1);
	T_EQ_INT(kv_seq_reserve(kv, s, 40), -1);
	T_EQ_INT(kv_seq_len(kv, s), 33);
	T_EQ_INT(kv_cache_free_blocks(kv), 1);
	kv_seq_free(kv, s);
	kv_cache_free(kv);
}

static void test_limits(void)
{
	kv_cache *kv = mk(64, 2, 40, 1);
	int32_t t[64];
	fill(t, 64, 1);
	int a = kv_seq_new(kv, NULL, 0, NULL), b = kv_seq_new(kv, NULL, 0, NULL);
	T_CHECK(a >= 0 && b >= 0 && a != b);
	T_EQ_INT(kv_seq_new(kv, NULL, 0, NULL), -1); /* every slot taken */
	T_EQ_INT(kv_seq_reserve(kv, a, 41), -1);     /* over max_model_len */
	T_EQ_INT(append(kv, a, t, 40), 0);
	T_EQ_INT(kv_seq_reserve(kv, a, 1), -1);
	T_EQ_INT(kv_seq_reserve(kv, 7, 1), -1); /* not a sequence */
	kv_seq_free(kv, 7);                     /* ignored */
	kv_seq_free(kv, a);
	kv_seq_free(kv, a); /* twice: ignored */
	T_EQ_INT(kv_cache_free_blocks(kv), 64);
	kv_seq_free(kv, b);
	kv_cache_free(kv);
	/* without prefix caching nothing is named or matched */
	kv = mk(8, 2, 256, 0);
	int s = kv_seq_new(kv, t, 40, NULL);
	T_EQ_INT(append(kv, s, t, 40), 0);
	T_EQ_INT(kv_cache_cached_blocks(kv), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, t, 40), 0);
	kv_seq_free(kv, s);
	kv_cache_free(kv);
	kv_cache_config bad = {0};
	char err[128];
	T_CHECK(kv_cache_new(&bad, err, sizeof err) == NULL);
}

/* Layers 0..2 sliding (window 40), layer 3 full; two sequences, steps of at
 * most 32 positions: the window pool has ceil((2 * (40 + 29) + 32) / 16) = 11
 * blocks. */
static kv_cache *mk_window(void)
{
	static const unsigned char sliding[4] = {1, 1, 1, 0};
	kv_cache_config c = {.n_layers = 4, .n_kv_heads = 1, .head_dim = 8, .n_blocks = 32, .max_seqs = 2, .max_model_len = 256, .prefix_caching = 1, .sliding = sliding, .sliding_window = 40, .max_step_tokens = 32};
	size_t fb, wb;
	int nw;
	kv_cache_sizes(&c, &fb, &nw, &wb);
	T_EQ_INT((int)fb, 1 * 2 * 16 * 8 * 4);
	T_EQ_INT(nw, 11);
	T_EQ_INT((int)wb, 11 * 3 * 2 * 16 * 8 * 4);
	char err[128];
	kv_cache *kv = kv_cache_new(&c, err, sizeof err);
	T_CHECK(kv != NULL);
	T_EQ_INT((int)kv_cache_bytes(kv), (int)(32 * fb + wb));
	return kv;
}

static void test_window_pool(void)
{
	kv_cache *kv = mk_window();
	int32_t a[128], c[128];
	fill(a, 128, 7000);
	fill(c, 128, 50);
	T_EQ_INT(kv_cache_window_total_blocks(kv), 11);
	int s1 = kv_seq_new(kv, a, 100, NULL);
	for (int at = 0; at < 100; at += 20) {
		T_EQ_INT(append(kv, s1, a + at, 20), 0);
		/* held: entries from (len - 40 + 1) / 16 to the last */
		int len = at + 20, lo = len - 39 > 0 ? (len - 39) / 16 : 0, nb;
		kv_seq_blocks(kv, s1, &nb);
		T_EQ_INT(kv_cache_window_free_blocks(kv), 11 - (nb - lo));
	}
	int nb;
	const int32_t *full = kv_seq_blocks(kv, s1, &nb), *win = kv_seq_layer_blocks(kv, s1, 0);
	T_EQ_INT(nb, 7);
	T_CHECK(kv_seq_layer_blocks(kv, s1, 3) == full);
	T_CHECK(kv_seq_layer_blocks(kv, s1, 2) == win);
	for (int i = 0; i < 3; i++) T_EQ_INT(win[i], -1); /* slid out: 100 - 39 > 48 */
	for (int i = 3; i < 7; i++) T_CHECK(win[i] >= 0);
	T_EQ_INT(kv_cache_free_blocks(kv), 32 - 7);
	/* the layers of one window block do not overlap */
	T_CHECK((char *)kv_block_k(kv, win[3], 1) >= (char *)kv_block_v(kv, win[3], 0) + 16 * 8 * 4);
	T_CHECK((char *)kv_block_k(kv, win[4], 0) >= (char *)kv_block_v(kv, win[3], 2) + 16 * 8 * 4);
	/* a second sequence shares the prefix, window blocks of its window only */
	int n;
	int s2 = kv_seq_new(kv, a, 100, &n);
	T_EQ_INT(n, 96);
	const int32_t *win2 = kv_seq_layer_blocks(kv, s2, 0);
	T_EQ_INT(win2[2], -1);
	for (int i = 3; i < 6; i++) T_EQ_INT(win2[i], win[i]);
	kv_seq_free(kv, s2);
	kv_seq_free(kv, s1);
	T_EQ_INT(kv_cache_window_free_blocks(kv), 11);
	T_EQ_INT(kv_cache_free_blocks(kv), 32);
	/* freed window blocks stay cached: short and long prefixes both match */
	T_EQ_INT(kv_cache_match_prefix(kv, a, 41), 32);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 100), 96);
	/* another sequence takes 8 window blocks: the 5 unnamed ones, then evicts
	 * a's oldest named ones (entries 0, 1, 2, released first as they slid out) */
	int s3 = kv_seq_new(kv, c, 128, NULL);
	for (int at = 0; at < 128; at += 32) T_EQ_INT(append(kv, s3, c + at, 32), 0);
	/* the full pool still holds all of a, but a prefix of 2 blocks lacks its
	 * window; one of 6 blocks has entries 3..5, all it can see */
	T_EQ_INT(kv_cache_match_prefix(kv, a, 41), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 70), 0);
	T_EQ_INT(kv_cache_match_prefix(kv, a, 100), 96);
	kv_seq_free(kv, s3);
	int s4 = kv_seq_new(kv, a, 100, &n);
	T_EQ_INT(n, 96);
	T_EQ_INT(append(kv, s4, a + 96, 4), 0);
	T_EQ_INT(kv_seq_len(kv, s4), 100);
	kv_seq_free(kv, s4);
	T_EQ_INT(kv_cache_window_free_blocks(kv), 11);
	kv_cache_free(kv);

	/* a window as long as max_model_len: no window pool, every layer full */
	static const unsigned char sliding[2] = {1, 0};
	kv_cache_config cfg = {.n_layers = 2, .n_kv_heads = 1, .head_dim = 8, .n_blocks = 8, .max_seqs = 2, .max_model_len = 64, .sliding = sliding, .sliding_window = 64, .max_step_tokens = 16};
	char err[128];
	kv = kv_cache_new(&cfg, err, sizeof err);
	T_CHECK(kv != NULL);
	T_EQ_INT(kv_cache_window_total_blocks(kv), 0);
	int s = kv_seq_new(kv, NULL, 0, NULL);
	T_CHECK(kv_seq_layer_blocks(kv, s, 0) == kv_seq_layer_blocks(kv, s, 1));
	kv_seq_free(kv, s);
	kv_cache_free(kv);
}

int main(void)
{
	T_RUN(test_blocks_and_tables);
	T_RUN(test_prefix_sharing);
	T_RUN(test_lru_eviction);
	T_RUN(test_limits);
	T_RUN(test_window_pool);
	return T_END();
}
