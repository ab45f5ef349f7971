/*
 * test_prefix_index.c — the block-hash chain (model seed, full blocks only,
 * the cap, pieces fed in any split) and the LRU index (longest prefix, LRU
 * eviction with the first blocks kept longest, deletion under heavy churn
 * checked against a brute-force model). Sources included.
 */
#include "../../src/gateway/prefix_index.c"
#include "t.h"

static uint32_t chain_of(const char *model, const char *text, uint64_t *out, uint32_t max)
{
	prefix_hasher h;
	prefix_hasher_init(&h, model, 64, out, max);
	prefix_hasher_feed(&h, text, strlen(text));
	return h.n;
}

static void test_chain(void)
{
	char a[1000], b[1000];
	memset(a, 'x', sizeof(a) - 1);
	a[999] = 0;
	memcpy(b, a, sizeof(a));
	b[200] = 'y'; /* differs in block 3 */
	uint64_t ca[64], cb[64], cm[64], cs[64];
	T_EQ_INT(chain_of("m", a, ca, 64), 999 / 64);
	T_EQ_INT(chain_of("m", b, cb, 64), 999 / 64);
	T_CHECK(ca[0] == cb[0] && ca[2] == cb[2]);
	T_CHECK(ca[3] != cb[3] && ca[10] != cb[10]); /* the chain carries the difference on */
	chain_of("other-model", a, cm, 64);
	T_CHECK(cm[0] != ca[0]);              /* seeded with the model */
	T_EQ_INT(chain_of("m", a, cs, 4), 4); /* the cap */
	/* Fed in odd pieces: the same chain. */
	prefix_hasher h;
	uint64_t cp[64];
	prefix_hasher_init(&h, "m", 64, cp, 64);
	for (size_t i = 0; i < 999; i += 7) prefix_hasher_feed(&h, a + i, i + 7 <= 999 ? 7 : 999 - i);
	T_EQ_INT(h.n, 999 / 64);
	T_CHECK(!memcmp(cp, ca, h.n * sizeof(uint64_t)));
	T_EQ_INT(chain_of("m", "short", cs, 64), 0); /* less than a block */
}

static void test_index(void)
{
	prefix_index *x = prefix_index_new(16);
	T_CHECK(x != NULL);
	uint64_t c1[10], c2[10];
	for (int i = 0; i < 10; i++) c1[i] = 1000 + i, c2[i] = 2000 + i;
	T_EQ_INT(prefix_index_match(x, c1, 10), 0);
	prefix_index_add(x, c1, 10);
	T_EQ_INT(prefix_index_match(x, c1, 10), 10);
	T_EQ_INT(prefix_index_match(x, c1, 4), 4);
	uint64_t mixed[3] = {1000, 1001, 9999};
	T_EQ_INT(prefix_index_match(x, mixed, 3), 2);
	/* 10 more: 4 evicted, the least recent: c1's tail (its first blocks are newest). */
	prefix_index_add(x, c2, 10);
	T_EQ_INT(prefix_index_size(x), 16);
	T_EQ_INT(prefix_index_match(x, c2, 10), 10);
	T_EQ_INT(prefix_index_match(x, c1, 10), 6);
	T_EQ_INT((int)prefix_index_evictions_total(x), 4);
	/* Refreshing c1 makes c2's tail go next. */
	prefix_index_add(x, c1, 6);
	uint64_t c3[2] = {3000, 3001};
	prefix_index_add(x, c3, 2);
	T_EQ_INT(prefix_index_match(x, c1, 6), 6);
	T_EQ_INT(prefix_index_match(x, c2, 10), 8);
	prefix_index_free(x);
}

/* Random adds against a brute-force LRU list. */
static void test_churn(void)
{
	enum { CAP = 64,
	       KEYS = 300,
	       ROUNDS = 20000 };
	prefix_index *x = prefix_index_new(CAP);
	uint64_t model[CAP];
	int n = 0;
	uint64_t rng = 12345;
	for (int r = 0; r < ROUNDS; r++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t key = (rng >> 33) % KEYS * 0x9e3779b97f4a7c15ull; /* clustered slots */
		prefix_index_add(x, &key, 1);
		int i;
		for (i = 0; i < n && model[i] != key; i++)
			;
		if (i < n) memmove(&model[1], &model[0], (size_t)i * sizeof(uint64_t));
		else {
			memmove(&model[1], &model[0], (size_t)(n < CAP ? n : CAP - 1) * sizeof(uint64_t));
			if (n < CAP) n++;
		}
		model[0] = key;
		if (r % 97 == 0)
			for (uint64_t k = 0; k < KEYS; k++) {
				uint64_t q = k * 0x9e3779b97f4a7c15ull;
				int in = 0;
				for (int j = 0; j < n; j++) in |= model[j] == q;
				T_EQ_INT((int)prefix_index_match(x, &q, 1), in);
			}
	}
	T_EQ_INT((int)prefix_index_size(x), n);
	prefix_index_free(x);
}

int main(void)
{
	T_RUN(test_chain);
	T_RUN(test_index);
	T_RUN(test_churn);
	return T_END();
}
