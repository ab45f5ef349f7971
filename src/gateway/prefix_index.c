/*
 * prefix_index.c — the block-hash chain and the per-endpoint LRU index of
 * prefix_index.h.
 *
 * The index is a fixed array of nodes (hash, LRU links) and an open-addressing
 * table of node numbers (linear probing, backward-shift deletion), twice the
 * capacity rounded to a power of two: no allocation after prefix_index_new,
 * every operation O(1) expected.
 */
#include "gateway/prefix_index.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the chain */

void prefix_hasher_init(prefix_hasher *ph, const char *model, uint32_t block_chars, uint64_t *out, uint32_t max)
{
	if (block_chars < 8) block_chars = 8;
	if (block_chars > sizeof(ph->block)) block_chars = sizeof(ph->block);
	ph->block_chars = block_chars;
	ph->fill = 0;
	ph->out = out;
	ph->n = 0;
	ph->max = max > PREFIX_MAX_BLOCKS ? PREFIX_MAX_BLOCKS : max;
	ph->h = hash64(model, strlen(model), 0x696e66657267ull);
}

void prefix_hasher_feed(prefix_hasher *ph, const void *data, size_t len)
{
	const char *p = data;
	while (len && ph->n < ph->max) {
		size_t k = ph->block_chars - ph->fill;
		if (k > len) k = len;
		memcpy(ph->block + ph->fill, p, k);
		ph->fill += (uint32_t)k;
		p += k;
		len -= k;
		if (ph->fill == ph->block_chars) {
			ph->h = hash64(ph->block, ph->block_chars, ph->h);
			ph->out[ph->n++] = ph->h;
			ph->fill = 0;
		}
	}
}

/* ------------------------------------------------------------ the index */

#define NIL UINT32_MAX

typedef struct node {
	uint64_t h;
	uint32_t prev, next; /* LRU list: head = most recent */
} node;

struct prefix_index {
	node *nodes;     /* cap */
	uint32_t *slots; /* mask + 1 entries: node number + 1, 0 = empty */
	uint32_t mask;
	uint32_t cap, used;
	uint32_t head, tail; /* LRU ends */
	uint64_t evictions_total;
};

prefix_index *prefix_index_new(uint32_t capacity)
{
	if (capacity < PREFIX_INDEX_MIN) capacity = PREFIX_INDEX_MIN;
	if (capacity > PREFIX_INDEX_MAX) capacity = PREFIX_INDEX_MAX;
	uint32_t size = 1;
	while (size < capacity * 2) size <<= 1;
	prefix_index *x = calloc(1, sizeof(*x));
	if (!x) return NULL;
	x->nodes = malloc((size_t)capacity * sizeof(*x->nodes));
	x->slots = calloc(size, sizeof(*x->slots));
	if (!x->nodes || !x->slots) {
		prefix_index_free(x);
		return NULL;
	}
	x->mask = size - 1;
	x->cap = capacity;
	x->head = x->tail = NIL;
	return x;
}

void prefix_index_free(prefix_index *x)
{
	if (!x) return;
	free(x->nodes);
	free(x->slots);
	free(x);
}

uint32_t prefix_index_size(const prefix_index *x) { return x->used; }
uint32_t prefix_index_capacity(const prefix_index *x) { return x->cap; }
uint64_t prefix_index_evictions_total(const prefix_index *x) { return x->evictions_total; }

/* The slot holding h, or the empty slot where it would go. */
static uint32_t slot_of(const prefix_index *x, uint64_t h)
{
	uint32_t i = (uint32_t)(h ^ (h >> 32)) & x->mask;
	while (x->slots[i] && x->nodes[x->slots[i] - 1].h != h) i = (i + 1) & x->mask;
	return i;
}

static void lru_unlink(prefix_index *x, uint32_t n)
{
	node *d = &x->nodes[n];
	if (d->prev != NIL) x->nodes[d->prev].next = d->next;
	else x->head = d->next;
	if (d->next != NIL) x->nodes[d->next].prev = d->prev;
	else x->tail = d->prev;
}

static void lru_push_head(prefix_index *x, uint32_t n)
{
	node *d = &x->nodes[n];
	d->prev = NIL;
	d->next = x->head;
	if (x->head != NIL) x->nodes[x->head].prev = n;
	x->head = n;
	if (x->tail == NIL) x->tail = n;
}

/* Empties slot i and shifts the probe run after it back (no tombstones). */
static void slot_delete(prefix_index *x, uint32_t i)
{
	uint32_t j = i;
	for (;;) {
		x->slots[i] = 0;
		for (;;) {
			j = (j + 1) & x->mask;
			if (!x->slots[j]) return;
			uint64_t h = x->nodes[x->slots[j] - 1].h;
			uint32_t home = (uint32_t)(h ^ (h >> 32)) & x->mask;
			/* Move j to i unless its home lies cyclically in (i, j]. */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
		}
		x->slots[i] = x->slots[j];
		i = j;
	}
}

uint32_t prefix_index_match(const prefix_index *x, const uint64_t *chain, uint32_t n)
{
	uint32_t k = 0;
	while (k < n && x->slots[slot_of(x, chain[k])]) k++;
	return k;
}

void prefix_index_add(prefix_index *x, const uint64_t *chain, uint32_t n)
{
	/* Last block first, so the first blocks end most recent. */
	for (uint32_t k = n; k-- > 0;) {
		uint64_t h = chain[k];
		uint32_t i = slot_of(x, h);
		if (x->slots[i]) {
			uint32_t nd = x->slots[i] - 1;
			lru_unlink(x, nd);
			lru_push_head(x, nd);
			continue;
		}
		uint32_t nd;
		if (x->used < x->cap) {
			nd = x->used++;
		} else {
			nd = x->tail;
			lru_unlink(x, nd);
			slot_delete(x, slot_of(x, x->nodes[nd].h));
			x->evictions_total++;
			i = slot_of(x, h); /* the deletion may have moved the run */
		}
		x->nodes[nd].h = h;
		x->slots[i] = nd + 1;
		lru_push_head(x, nd);
	}
}
