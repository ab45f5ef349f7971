/*
 * tokenizer.c — Gemma 3's BPE tokenizer from tokenizer.json (see tokenizer.h for
 * the pipeline and the decisions).
 *
 * Load: the file is mapped read-only and parsed once with the core JSON reader;
 * the pieces are copied into one blob and three tables are built from the tree:
 * an open-addressed hash from piece to id (64-bit hashes in the slots), an
 * open-addressed table of merges (8 bytes a slot: the pair of ids and the rank;
 * the result by rank in a side array), and a byte trie of the added tokens. The
 * JSON tree is freed before returning. That load is dominated by parsing (the
 * file is 33 MB) and by three lookups per merge, batched with prefetches: about
 * a second. tokenizer_load_cached saves the built tables to tokenizer.bin and
 * later maps them read-only (a few milliseconds of checks, no parse).
 *
 * Encode: added tokens are cut out of the text (longest match at each byte);
 * each section between them is merged with a binary heap over adjacent pairs
 * ordered by (rank, position), O(n log n), on a linked list of symbols; merge
 * lookups are memoised per call in a small direct-mapped cache.
 *
 * Not here: tokenizers other than SentencePiece-style BPE; a tokenizer.json with
 * another normalizer, pre-tokenizer or decoder is refused with a message.
 */
#include "infer/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "infer/gguf.h"

#define TOK_MAX_FILE_BYTES (512u << 20) /* refuse a tokenizer.json beyond this */
#define TOK_MAX_ID ((1 << 21) - 2)      /* ids fit 21 bits in a merge slot */
#define TOK_MAX_MERGES (1 << 22)        /* ranks fit 22 bits */
#define TOK_MAX_PIECE_BYTES 4096

enum { TF_SPECIAL = 1,
       TF_ADDED = 2,
       TF_BYTE = 4 };

/* One merge in 8 bytes, so the table (the encoder's hot data) stays small:
 * (left id + 1) << 43 | (right id + 1) << 22 | rank; 0 marks an empty slot.
 * The id the pair becomes is merge_result[rank]. */
typedef uint64_t merge_slot;

/* Where a piece is in the blob; off UINT32_MAX = the id has no piece. */
typedef struct tok_piece {
	uint32_t off, len;
} tok_piece;

/* piece -> id: the piece's 64-bit hash, checked before the piece itself is
 * read, and the id (-1 empty). */
typedef struct vocab_slot {
	uint64_t hash;
	int32_t id;
	uint32_t unused;
} vocab_slot;

/* Trie edge: (parent node << 8 | byte) + 1 -> child node. */
typedef struct trie_edge {
	uint32_t key;
	int32_t child;
} trie_edge;

struct tokenizer {
	size_t n_vocab; /* largest id + 1 */
	char *blob;     /* every piece, NUL-terminated, back to back */
	size_t blob_len, blob_cap;
	tok_piece *pieces;       /* [n_vocab] where each piece is in blob */
	uint8_t *flags;          /* [n_vocab] TF_* */
	vocab_slot *vocab_slots; /* open addressing: piece -> id */
	int hash_collision;      /* two pieces share a 64-bit hash: always compare bytes */
	size_t vocab_mask;
	merge_slot *merge_slots;
	int32_t *merge_result; /* [n_merges] id of left + right, by rank (-1: never applies) */
	size_t n_merges;
	size_t merge_mask;
	trie_edge *trie_edges; /* open addressing */
	size_t trie_mask;
	int32_t *trie_tok; /* [n_trie] token id ending at the node, -1 none */
	size_t n_trie, trie_cap;
	uint8_t trie_first[256]; /* bytes that start some added token */
	int32_t byte_id[256];    /* <0xNN> -> id, -1 absent */
	int32_t ascii_id[128];   /* single-byte char -> id (' ' maps to "▁") */
	int32_t bos, eos, pad, unk;
	void *map; /* tokenizer.bin mapping the tables point into; NULL: tables malloc'd */
	size_t map_len;
	/* A GGUF vocabulary (tokenizer.ggml.model "llama"): llama.cpp's SPM merge by
	 * score instead of BPE ranks; NULL for tokenizer.json. */
	float *scores;          /* [n_vocab] */
	int spm_space_prefix;   /* tokenizer.ggml.add_space_prefix */
	size_t special_max_len; /* longest special piece */
};

/* ------------------------------------------------------------------ UTF-8 */

/* One step of the WHATWG UTF-8 decoder (the one TextDecoder and Node use).
 * Feeds byte b into the state of st; returns the number of bytes written to
 * out (0..7): the completed character as its original bytes, U+FFFD for an
 * invalid subpart, and possibly the byte itself re-read after a bad one. */
static size_t utf8_step(tok_stream *st, unsigned char b, unsigned char *out)
{
	size_t n = 0;
	if (st->need) {
		if (b >= st->lower && b <= st->upper) {
			st->lower = 0x80;
			st->upper = 0xBF;
			st->pending[st->n_pending++] = b;
			if ((uint32_t)st->n_pending == st->need + 1) {
				memcpy(out, st->pending, (size_t)st->n_pending);
				n = (size_t)st->n_pending;
				st->n_pending = 0;
				st->need = 0;
			}
			return n;
		}
		/* Invalid continuation: the subpart so far is one U+FFFD and b is read again. */
		out[n++] = 0xEF;
		out[n++] = 0xBF;
		out[n++] = 0xBD;
		st->n_pending = 0;
		st->need = 0;
		st->lower = 0x80;
		st->upper = 0xBF;
	}
	if (b < 0x80) {
		out[n++] = b;
	} else if (b >= 0xC2 && b <= 0xDF) {
		st->need = 1;
	} else if (b >= 0xE0 && b <= 0xEF) {
		if (b == 0xE0) st->lower = 0xA0;
		if (b == 0xED) st->upper = 0x9F;
		st->need = 2;
	} else if (b >= 0xF0 && b <= 0xF4) {
		if (b == 0xF0) st->lower = 0x90;
		if (b == 0xF4) st->upper = 0x8F;
		st->need = 3;
	} else {
		out[n++] = 0xEF;
		out[n++] = 0xBF;
		out[n++] = 0xBD;
		return n;
	}
	if (st->need) {
		st->pending[0] = b;
		st->n_pending = 1;
	}
	return n;
}

/* End of input for the decoder: an incomplete sequence is one U+FFFD. */
static size_t utf8_end(tok_stream *st, unsigned char *out)
{
	if (!st->need) return 0;
	st->need = 0;
	st->n_pending = 0;
	st->lower = 0x80;
	st->upper = 0xBF;
	out[0] = 0xEF;
	out[1] = 0xBF;
	out[2] = 0xBD;
	return 3;
}

static void utf8_state_init(tok_stream *st)
{
	st->n_pending = 0;
	st->need = 0;
	st->lower = 0x80;
	st->upper = 0xBF;
}

/* Length of the valid UTF-8 prefix of s (len when all of it is valid). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		unsigned lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) need = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			if (c == 0xE0) lo = 0xA0;
			if (c == 0xED) hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			if (c == 0xF0) lo = 0x90;
			if (c == 0xF4) hi = 0x8F;
		} else return i;
		if (i + need >= len) return i;
		if (s[i + 1] < lo || s[i + 1] > hi) return i;
		for (size_t k = 2; k <= need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
		i += need + 1;
	}
	return len;
}

/* Length in bytes of the UTF-8 character led by c (text already valid). */
static inline size_t utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2
		      : c < 0xF0       ? 3
				       : 4;
}

/* ------------------------------------------------------------------ tables */

static uint64_t piece_hash(const char *s, size_t len)
{
	return hash64(s, len, 0x9e3779b97f4a7c15ull);
}

static const char *piece_at(const tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || (size_t)id >= t->n_vocab || t->pieces[id].off == UINT32_MAX) return NULL;
	if (len) *len = t->pieces[id].len;
	return t->blob + t->pieces[id].off;
}

static inline int piece_is(const tokenizer *t, int32_t id, const char *s, size_t len)
{
	const tok_piece *p = &t->pieces[id];
	return p->off != UINT32_MAX && p->len == len && memcmp(t->blob + p->off, s, len) == 0;
}

/* The id of the piece with hash h. verify 0 trusts an equal hash (used while
 * loading, for pieces known to be in the vocabulary, when no two pieces share a
 * hash): the piece's bytes are then never read, which saves two cache misses. */
static inline int32_t vocab_find(const tokenizer *t, const char *piece, size_t len, uint64_t h, int verify)
{
	size_t i = (size_t)h & t->vocab_mask;
	for (;;) {
		const vocab_slot *v = &t->vocab_slots[i];
		if (v->id < 0) return -1;
		if (v->hash == h && (!verify || piece_is(t, v->id, piece, len))) return v->id;
		i = (i + 1) & t->vocab_mask;
	}
}

int32_t tokenizer_piece_id(const tokenizer *t, const char *piece, size_t len)
{
	return vocab_find(t, piece, len, piece_hash(piece, len), 1);
}

/* Maps piece -> id, replacing an existing mapping of the same piece. */
static void vocab_insert(tokenizer *t, int32_t id)
{
	size_t len = 0;
	const char *s = piece_at(t, id, &len);
	uint64_t h = piece_hash(s, len);
	size_t i = (size_t)h & t->vocab_mask;
	for (;;) {
		vocab_slot *v = &t->vocab_slots[i];
		if (v->id < 0 || (v->hash == h && piece_is(t, v->id, s, len))) {
			v->hash = h;
			v->id = id;
			return;
		}
		if (v->hash == h) t->hash_collision = 1;
		i = (i + 1) & t->vocab_mask;
	}
}

static inline uint64_t pair_key(int32_t a, int32_t b)
{
	return ((uint64_t)(uint32_t)(a + 1) << 21) | (uint32_t)(b + 1);
}

/* A full 64-bit mix (the finaliser of splitmix64): both ids reach every bit. */
static inline uint64_t mix_key(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline size_t pair_slot(uint64_t key, size_t mask)
{
	return (size_t)mix_key(key) & mask;
}

/* The rank of merging a then b, or -1. */
static inline int32_t merge_rank(const tokenizer *t, int32_t a, int32_t b)
{
	uint64_t key = pair_key(a, b);
	size_t i = pair_slot(key, t->merge_mask);
	for (;;) {
		merge_slot m = t->merge_slots[i];
		if ((m >> 22) == key) return (int32_t)(m & ((1u << 22) - 1));
		if (m == 0) return -1;
		i = (i + 1) & t->merge_mask;
	}
}

/* Later duplicates win, as the reference's Map does. */
static void merge_insert(tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
	uint64_t key = pair_key(a, b);
	size_t i = pair_slot(key, t->merge_mask);
	while (t->merge_slots[i] && (t->merge_slots[i] >> 22) != key) i = (i + 1) & t->merge_mask;
	t->merge_slots[i] = key << 22 | (uint64_t)rank;
	t->merge_result[rank] = merged;
}

static inline size_t trie_slot(uint32_t key, size_t mask)
{
	return (size_t)mix_key(key) & mask;
}

static int32_t trie_child(const tokenizer *t, int32_t node, unsigned char b)
{
	uint32_t key = (((uint32_t)node << 8) | b) + 1;
	size_t i = trie_slot(key, t->trie_mask);
	for (;;) {
		const trie_edge *e = &t->trie_edges[i];
		if (e->key == key) return e->child;
		if (e->key == 0) return -1;
		i = (i + 1) & t->trie_mask;
	}
}

/* Adds the bytes of an added token to the trie. Returns 0 or -1 (memory). */
static int trie_add(tokenizer *t, const char *s, size_t len, int32_t id)
{
	int32_t node = 0;
	for (size_t k = 0; k < len; k++) {
		unsigned char b = (unsigned char)s[k];
		int32_t child = trie_child(t, node, b);
		if (child < 0) {
			if (t->n_trie == t->trie_cap) {
				size_t cap = t->trie_cap * 2;
				int32_t *tok = realloc(t->trie_tok, cap * sizeof(*tok));
				if (!tok) return -1;
				t->trie_tok = tok;
				t->trie_cap = cap;
			}
			/* Keep the edge table under half full. */
			if ((t->n_trie + 1) * 2 > t->trie_mask + 1) {
				size_t ncap = (t->trie_mask + 1) * 2;
				trie_edge *ne = calloc(ncap, sizeof(*ne));
				if (!ne) return -1;
				for (size_t i = 0; i <= t->trie_mask; i++) {
					if (!t->trie_edges[i].key) continue;
					size_t j = trie_slot(t->trie_edges[i].key, ncap - 1);
					while (ne[j].key) j = (j + 1) & (ncap - 1);
					ne[j] = t->trie_edges[i];
				}
				free(t->trie_edges);
				t->trie_edges = ne;
				t->trie_mask = ncap - 1;
			}
			child = (int32_t)t->n_trie++;
			t->trie_tok[child] = -1;
			uint32_t key = (((uint32_t)node << 8) | b) + 1;
			size_t i = trie_slot(key, t->trie_mask);
			while (t->trie_edges[i].key) i = (i + 1) & t->trie_mask;
			t->trie_edges[i].key = key;
			t->trie_edges[i].child = child;
		}
		node = child;
	}
	t->trie_tok[node] = id;
	if (len) t->trie_first[(unsigned char)s[0]] = 1;
	return 0;
}

/* Longest added token starting at s[0]; returns its length (0: none) and *id. */
static size_t trie_match(const tokenizer *t, const unsigned char *s, size_t len, int32_t *id)
{
	int32_t node = 0;
	size_t best = 0;
	for (size_t k = 0; k < len; k++) {
		node = trie_child(t, node, s[k]);
		if (node < 0) break;
		if (t->trie_tok[node] >= 0) {
			best = k + 1;
			*id = t->trie_tok[node];
		}
	}
	return best;
}

/* ------------------------------------------------------------------ loading */

/* Maps a file read-only (the JSON reader copies what it keeps). Returns the
 * mapping (munmap it with *len) or NULL with err set. An empty file maps to a
 * static empty string with *len 0. */
static const char *map_file(const char *path, size_t max_bytes, size_t *len, struct stat *st_out,
			    char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		snprintf(err, errlen, "%s: %lld bytes, more than the %zu allowed", path,
			 (long long)st.st_size, max_bytes);
		close(fd);
		return NULL;
	}
	*len = (size_t)st.st_size;
	if (st_out) *st_out = st;
	if (*len == 0) {
		close(fd);
		return "";
	}
	void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return NULL;
	}
	return p;
}

static void unmap_file(const char *p, size_t len)
{
	if (len) munmap((void *)p, len);
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 1024;
	while (p < n) p <<= 1;
	return p;
}

/* Sets the piece of id (copying it into the blob). */
static int set_piece(tokenizer *t, int32_t id, const char *s, size_t len)
{
	if (t->blob_len + len + 1 > t->blob_cap) {
		size_t cap = (t->blob_len + len + 1) * 2;
		char *nb = realloc(t->blob, cap);
		if (!nb) return -1;
		t->blob = nb;
		t->blob_cap = cap;
	}
	memcpy(t->blob + t->blob_len, s, len);
	t->blob[t->blob_len + len] = 0;
	t->pieces[id].off = (uint32_t)t->blob_len;
	t->pieces[id].len = (uint32_t)len;
	t->blob_len += len + 1;
	return 0;
}

/* Checks that the pipeline around the model is the one this file implements:
 * normalizer Replace(" " -> "▁"), pre-tokenizer absent or Split on " " (a no-op
 * once spaces are gone), decoder Replace/ByteFallback/Fuse. */
static int check_pipeline(const json_val *root, const char *path, char *err, size_t errlen)
{
	const json_val *norm = json_get(root, "normalizer");
	const json_val *pat = json_get(norm, "pattern");
	if (!json_is(norm, JSON_OBJECT) || strcmp(json_str(json_get(norm, "type"), ""), "Replace") != 0 ||
	    strcmp(json_str(json_get(pat, "String"), ""), " ") != 0 ||
	    strcmp(json_str(json_get(norm, "content"), ""), "\xE2\x96\x81") != 0) {
		snprintf(err, errlen, "%s: unsupported normalizer (expected Replace \" \" with \"\xE2\x96\x81\")", path);
		return -1;
	}
	const json_val *pre = json_get(root, "pre_tokenizer");
	if (pre && !json_is(pre, JSON_NULL)) {
		const json_val *pp = json_get(pre, "pattern");
		if (strcmp(json_str(json_get(pre, "type"), ""), "Split") != 0 ||
		    strcmp(json_str(json_get(pp, "String"), ""), " ") != 0) {
			snprintf(err, errlen, "%s: unsupported pre_tokenizer (expected none or Split on \" \")", path);
			return -1;
		}
	}
	const json_val *dec = json_get(root, "decoder");
	const json_val *steps = json_get(dec, "decoders");
	int ok = json_is(dec, JSON_OBJECT) && strcmp(json_str(json_get(dec, "type"), ""), "Sequence") == 0 &&
		 json_count(steps) == 3;
	static const char *want[3] = {"Replace", "ByteFallback", "Fuse"};
	for (size_t i = 0; ok && i < 3; i++)
		ok = strcmp(json_str(json_get(json_at(steps, i), "type"), ""), want[i]) == 0;
	if (ok) {
		const json_val *r = json_at(steps, 0);
		ok = strcmp(json_str(json_get(json_get(r, "pattern"), "String"), ""), "\xE2\x96\x81") == 0 &&
		     strcmp(json_str(json_get(r, "content"), ""), " ") == 0;
	}
	if (!ok) {
		snprintf(err, errlen, "%s: unsupported decoder (expected Replace \"\xE2\x96\x81\", ByteFallback, Fuse)", path);
		return -1;
	}
	const json_val *model = json_get(root, "model");
	if (strcmp(json_str(json_get(model, "type"), ""), "BPE") != 0) {
		snprintf(err, errlen, "%s: model type is not BPE", path);
		return -1;
	}
	if (!json_bool(json_get(model, "byte_fallback"), 0)) {
		snprintf(err, errlen, "%s: BPE without byte_fallback is not supported", path);
		return -1;
	}
	if (json_bool(json_get(model, "ignore_merges"), 0) ||
	    json_is(json_get(model, "continuing_subword_prefix"), JSON_STRING) ||
	    json_is(json_get(model, "end_of_word_suffix"), JSON_STRING)) {
		snprintf(err, errlen, "%s: BPE options (ignore_merges, subword prefix/suffix) not supported", path);
		return -1;
	}
	return 0;
}

/* A token name from tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const json_val *cfg, const char *key)
{
	const json_val *v = json_get(cfg, key);
	if (json_is(v, JSON_OBJECT)) v = json_get(v, "content");
	return json_str(v, NULL);
}

static int32_t special_id(const tokenizer *t, const json_val *cfg, const char *key, const char *dflt)
{
	const char *name = config_token(cfg, key);
	int32_t id = name ? tokenizer_piece_id(t, name, strlen(name)) : -1;
	if (id < 0) id = tokenizer_piece_id(t, dflt, strlen(dflt));
	return id;
}

/* Merges: "a b" strings (older files) or [a, b] pairs, ranked by position.
 * Three lookups per merge (left, right, left + right) dominate the load, so
 * they go in batches: hash and prefetch a batch's slots, then look them up. */
#define MERGE_BATCH 16
typedef struct merge_job {
	const char *a, *b;
	size_t alen, blen;
	uint64_t ha, hb, hab;
	uint32_t line;
} merge_job;

static int build_merges(tokenizer *t, const json_val *merges, const char *path, char *err, size_t errlen)
{
	merge_job job[MERGE_BATCH];
	char *cat = malloc(MERGE_BATCH * 2 * TOK_MAX_PIECE_BYTES);
	if (!cat) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	int verify = t->hash_collision;
	size_t total = merges->u.arr.n;
	for (size_t r0 = 0; r0 < total; r0 += MERGE_BATCH) {
		size_t nb = total - r0 < MERGE_BATCH ? total - r0 : MERGE_BATCH;
		for (size_t k = 0; k < nb; k++) {
			const json_val *m = merges->u.arr.items[r0 + k];
			merge_job *j = &job[k];
			j->line = m->line;
			if (json_is(m, JSON_ARRAY) && json_count(m) == 2 && json_is(json_at(m, 0), JSON_STRING) &&
			    json_is(json_at(m, 1), JSON_STRING)) {
				j->a = json_at(m, 0)->u.str.s;
				j->alen = json_at(m, 0)->u.str.len;
				j->b = json_at(m, 1)->u.str.s;
				j->blen = json_at(m, 1)->u.str.len;
			} else if (json_is(m, JSON_STRING) && memchr(m->u.str.s, ' ', m->u.str.len)) {
				const char *sp = memchr(m->u.str.s, ' ', m->u.str.len);
				j->a = m->u.str.s;
				j->alen = (size_t)(sp - j->a);
				j->b = sp + 1;
				const char *sp2 = memchr(j->b, ' ', m->u.str.len - j->alen - 1);
				j->blen = sp2 ? (size_t)(sp2 - j->b) : m->u.str.len - j->alen - 1;
			} else {
				snprintf(err, errlen, "%s: line %u: merge %zu is neither \"a b\" nor [a, b]", path,
					 m->line, r0 + k);
				free(cat);
				return -1;
			}
			if (j->alen > TOK_MAX_PIECE_BYTES || j->blen > TOK_MAX_PIECE_BYTES) {
				j->a = NULL; /* longer than any piece: can never apply */
				continue;
			}
			char *c = cat + k * 2 * TOK_MAX_PIECE_BYTES;
			memcpy(c, j->a, j->alen);
			memcpy(c + j->alen, j->b, j->blen);
			j->ha = piece_hash(j->a, j->alen);
			j->hb = piece_hash(j->b, j->blen);
			j->hab = piece_hash(c, j->alen + j->blen);
			__builtin_prefetch(&t->vocab_slots[j->ha & t->vocab_mask]);
			__builtin_prefetch(&t->vocab_slots[j->hb & t->vocab_mask]);
			__builtin_prefetch(&t->vocab_slots[j->hab & t->vocab_mask]);
		}
		for (size_t k = 0; k < nb; k++) {
			merge_job *j = &job[k];
			if (!j->a) continue;
			int32_t ia = vocab_find(t, j->a, j->alen, j->ha, verify);
			int32_t ib = vocab_find(t, j->b, j->blen, j->hb, verify);
			if (ia < 0 || ib < 0) continue; /* a part outside the vocabulary: can never apply */
			int32_t im = vocab_find(t, cat + k * 2 * TOK_MAX_PIECE_BYTES, j->alen + j->blen, j->hab, 1);
			if (im < 0) {
				snprintf(err, errlen, "%s: line %u: merge %zu gives a piece not in the vocabulary", path,
					 j->line, r0 + k);
				free(cat);
				return -1;
			}
			merge_insert(t, ia, ib, (int32_t)(r0 + k), im);
		}
	}
	free(cat);
	return 0;
}

static int build(tokenizer *t, const json_val *root, const char *path, char *err, size_t errlen)
{
	if (check_pipeline(root, path, err, errlen) < 0) return -1;
	const json_val *model = json_get(root, "model");
	const json_val *vocab = json_get(model, "vocab");
	const json_val *merges = json_get(model, "merges");
	const json_val *added = json_get(root, "added_tokens");
	if (!json_is(vocab, JSON_OBJECT) || !json_is(merges, JSON_ARRAY)) {
		snprintf(err, errlen, "%s: model.vocab or model.merges missing", path);
		return -1;
	}
	if (merges->u.arr.n >= TOK_MAX_MERGES) {
		snprintf(err, errlen, "%s: %zu merges, more than the %d supported", path, merges->u.arr.n,
			 TOK_MAX_MERGES);
		return -1;
	}
	/* Pass 1: the id range and the blob size. */
	size_t max_id = 0, blob_bytes = 0;
	for (size_t i = 0; i < vocab->u.obj.n; i++) {
		const json_member *m = &vocab->u.obj.members[i];
		if (!json_is(m->val, JSON_NUMBER) || !m->val->is_int || m->val->i < 0 || m->val->i >= TOK_MAX_ID) {
			snprintf(err, errlen, "%s: line %u: vocab id of \"%.40s\" is not an id", path,
				 m->val->line, m->key);
			return -1;
		}
		if (m->key_len > TOK_MAX_PIECE_BYTES) {
			snprintf(err, errlen, "%s: line %u: piece longer than %d bytes", path, m->val->line,
				 TOK_MAX_PIECE_BYTES);
			return -1;
		}
		if ((size_t)m->val->i > max_id) max_id = (size_t)m->val->i;
		blob_bytes += m->key_len + 1;
	}
	for (size_t i = 0; i < json_count(added); i++) {
		const json_val *a = json_at(added, i);
		const json_val *idv = json_get(a, "id");
		const json_val *cv = json_get(a, "content");
		if (!json_is(idv, JSON_NUMBER) || !idv->is_int || idv->i < 0 || idv->i >= TOK_MAX_ID ||
		    !json_is(cv, JSON_STRING) || cv->u.str.len == 0 || cv->u.str.len > TOK_MAX_PIECE_BYTES) {
			snprintf(err, errlen, "%s: line %u: added token without a valid id and content", path,
				 a ? a->line : 0);
			return -1;
		}
		if (json_bool(json_get(a, "lstrip"), 0) || json_bool(json_get(a, "rstrip"), 0) ||
		    json_bool(json_get(a, "single_word"), 0) || json_bool(json_get(a, "normalized"), 0)) {
			snprintf(err, errlen, "%s: line %u: added token \"%.40s\" uses lstrip, rstrip, single_word "
					      "or normalized, which this tokenizer does not implement",
				 path, a->line, cv->u.str.s);
			return -1;
		}
		if ((size_t)idv->i > max_id) max_id = (size_t)idv->i;
		blob_bytes += cv->u.str.len + 1;
	}
	t->n_vocab = max_id + 1;
	t->pieces = malloc(t->n_vocab * sizeof(tok_piece));
	t->flags = calloc(t->n_vocab, 1);
	t->blob_cap = blob_bytes + 1;
	t->blob = malloc(t->blob_cap);
	size_t vslots = pow2_at_least(t->n_vocab + t->n_vocab / 2);
	t->vocab_slots = malloc(vslots * sizeof(vocab_slot));
	t->vocab_mask = vslots - 1;
	size_t mslots = pow2_at_least(merges->u.arr.n * 2);
	t->merge_slots = calloc(mslots, sizeof(merge_slot));
	t->merge_result = malloc((merges->u.arr.n + 1) * sizeof(int32_t));
	t->merge_mask = mslots - 1;
	t->n_merges = merges->u.arr.n;
	t->trie_cap = 1024;
	t->trie_tok = malloc(t->trie_cap * sizeof(int32_t));
	t->trie_edges = calloc(2048, sizeof(trie_edge));
	t->trie_mask = 2047;
	if (!t->pieces || !t->flags || !t->blob || !t->vocab_slots ||
	    !t->merge_slots || !t->merge_result || !t->trie_tok || !t->trie_edges) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	memset(t->pieces, 0xFF, t->n_vocab * sizeof(tok_piece));
	memset(t->vocab_slots, 0xFF, vslots * sizeof(vocab_slot));
	memset(t->merge_result, 0xFF, (merges->u.arr.n + 1) * sizeof(int32_t));
	t->n_trie = 1;
	t->trie_tok[0] = -1;

	/* Pass 2: pieces and the piece -> id table. */
	for (size_t i = 0; i < vocab->u.obj.n; i++) {
		const json_member *m = &vocab->u.obj.members[i];
		int32_t id = (int32_t)m->val->i;
		if (t->pieces[id].off != UINT32_MAX) {
			snprintf(err, errlen, "%s: line %u: id %d given to two pieces", path, m->val->line, id);
			return -1;
		}
		if (set_piece(t, id, m->key, m->key_len) < 0) goto oom;
		vocab_insert(t, id);
	}
	/* Added tokens override the vocabulary, as the reference does. */
	for (size_t i = 0; i < json_count(added); i++) {
		const json_val *a = json_at(added, i);
		int32_t id = (int32_t)json_get(a, "id")->i;
		const json_val *cv = json_get(a, "content");
		size_t plen;
		const char *p = piece_at(t, id, &plen);
		if (!p || plen != cv->u.str.len || memcmp(p, cv->u.str.s, plen) != 0)
			if (set_piece(t, id, cv->u.str.s, cv->u.str.len) < 0) goto oom;
		vocab_insert(t, id);
		t->flags[id] |= TF_ADDED | (json_bool(json_get(a, "special"), 0) ? TF_SPECIAL : 0);
		if (trie_add(t, cv->u.str.s, cv->u.str.len, id) < 0) goto oom;
	}
	/* Byte tokens and the one-byte characters. */
	for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
	for (size_t id = 0; id < t->n_vocab; id++) {
		size_t len;
		const char *p = piece_at(t, (int32_t)id, &len);
		if (!p || len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') continue;
		int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
		if (hi < 0 || lo < 0) continue;
		t->flags[id] |= TF_BYTE;
		if (t->byte_id[hi * 16 + lo] < 0) t->byte_id[hi * 16 + lo] = (int32_t)id;
	}
	for (int c = 0; c < 128; c++) {
		char ch = (char)c;
		t->ascii_id[c] = c == ' ' ? tokenizer_piece_id(t, "\xE2\x96\x81", 3) : tokenizer_piece_id(t, &ch, 1);
	}
	return build_merges(t, merges, path, err, errlen);
oom:
	snprintf(err, errlen, "%s: out of memory", path);
	return -1;
}

/* The bos/eos/pad/unk ids from tokenizer_config.json (config_path may be NULL:
 * the default names). Returns 0, or -1 with err set. */
static int apply_config(tokenizer *t, const char *tokenizer_json_path, const char *config_path,
			char *err, size_t errlen)
{
	json_doc *cdoc = NULL;
	json_error jerr;
	size_t len;
	if (config_path) {
		char *ctext = util_read_file(config_path, 64u << 20, &len, err, errlen);
		if (ctext) {
			cdoc = json_parse(ctext, len, 0, &jerr);
			free(ctext);
			if (!cdoc) {
				snprintf(err, errlen, "%s:%u:%u: %s", config_path, jerr.line, jerr.col, jerr.msg);
				return -1;
			}
		} else if (access(config_path, F_OK) == 0) {
			return -1;
		}
	}
	const json_val *cfg = cdoc ? json_root(cdoc) : NULL;
	t->bos = special_id(t, cfg, "bos_token", "<bos>");
	t->eos = special_id(t, cfg, "eos_token", "<eos>");
	t->pad = special_id(t, cfg, "pad_token", "<pad>");
	t->unk = special_id(t, cfg, "unk_token", "<unk>");
	json_doc_free(cdoc);
	if (t->unk < 0) {
		/* The reference turns unknown ids into the unk piece: we need one. */
		snprintf(err, errlen, "%s: no <unk> token", tokenizer_json_path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ tokenizer.bin */

/* What a tokenizer.bin was built from: the tokenizer.json's identity (size,
 * times, inode) and a hash of its first and last TOKBIN_SAMPLE_BYTES. Hashing
 * the whole 33 MB would cost more than the map it saves; the inode and ctime
 * change whenever the file is replaced or rewritten, which no tool can fake. */
typedef struct tok_src_key {
	uint64_t size, mtime_ns, ctime_ns, ino, dev, sample_hash;
} tok_src_key;

#define TOKBIN_MAGIC "IGTOKBIN"
#define TOKBIN_VERSION 1u
#define TOKBIN_SAMPLE_BYTES 65536
#define TOKBIN_ALIGN 64
#define TOKBIN_MAX_BYTES (1ull << 30)
#define TOKBIN_MAX_SLOTS (1ull << 26)

enum { TB_BLOB,
       TB_PIECES,
       TB_FLAGS,
       TB_VOCAB,
       TB_MERGES,
       TB_RESULT,
       TB_TRIE_EDGES,
       TB_TRIE_TOK,
       TB_N };

/* The file: this header, then the TB_N sections (each at a multiple of
 * TOKBIN_ALIGN), the tables exactly as they sit in memory. Little-endian,
 * this machine's layout: the file is a cache, rebuilt when it does not fit. */
typedef struct tokbin_header {
	char magic[8];
	uint32_t version, header_bytes;
	uint64_t file_bytes;
	tok_src_key src;
	tok_src_key cfg; /* tokenizer_config.json's; all 0 when there was none */
	int32_t bos, eos, pad, unk;
	uint64_t n_vocab, blob_len, vocab_mask, n_merges, merge_mask, trie_mask, n_trie;
	uint32_t hash_collision, unused;
	uint64_t sec_off[TB_N], sec_len[TB_N];
	int32_t byte_id[256];
	int32_t ascii_id[128];
	uint8_t trie_first[256];
	uint64_t header_hash; /* hash64 of every byte above */
} tokbin_header;

static uint64_t ts_ns(struct timespec ts)
{
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void src_key_from_stat(tok_src_key *k, const struct stat *st)
{
	k->size = (uint64_t)st->st_size;
	k->mtime_ns = ts_ns(st->st_mtim);
	k->ctime_ns = ts_ns(st->st_ctim);
	k->ino = (uint64_t)st->st_ino;
	k->dev = (uint64_t)st->st_dev;
}

static uint64_t sample_hash(const char *text, size_t len)
{
	size_t head = len < TOKBIN_SAMPLE_BYTES ? len : TOKBIN_SAMPLE_BYTES;
	size_t tail = len - head < TOKBIN_SAMPLE_BYTES ? len - head : TOKBIN_SAMPLE_BYTES;
	uint64_t h = hash64(text, head, (uint64_t)len);
	return hash64(text + len - tail, tail, h);
}

/* The key of the tokenizer.json at path, reading only its ends. 0 or -1. */
static int src_key_of_path(const char *path, tok_src_key *k)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	struct stat st;
	char *b = NULL;
	int rc = -1;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) goto out;
	src_key_from_stat(k, &st);
	size_t len = (size_t)st.st_size;
	size_t head = len < TOKBIN_SAMPLE_BYTES ? len : TOKBIN_SAMPLE_BYTES;
	size_t tail = len - head < TOKBIN_SAMPLE_BYTES ? len - head : TOKBIN_SAMPLE_BYTES;
	b = malloc(head + tail);
	if (!b) goto out;
	size_t got = 0;
	while (got < head + tail) {
		off_t at = got < head ? (off_t)got : (off_t)(len - tail + (got - head));
		size_t want = got < head ? head - got : head + tail - got;
		ssize_t r = pread(fd, b + got, want, at);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) goto out;
		got += (size_t)r;
	}
	uint64_t h = hash64(b, head, (uint64_t)len);
	k->sample_hash = hash64(b + head, tail, h);
	rc = 0;
out:
	free(b);
	close(fd);
	return rc;
}

static size_t align_up(size_t n)
{
	return (n + TOKBIN_ALIGN - 1) & ~(size_t)(TOKBIN_ALIGN - 1);
}

/* Section i's bytes and length in t. */
static const void *section(const tokenizer *t, int i, size_t *len)
{
	switch (i) {
	case TB_BLOB: *len = t->blob_len; return t->blob;
	case TB_PIECES: *len = t->n_vocab * sizeof(tok_piece); return t->pieces;
	case TB_FLAGS: *len = t->n_vocab; return t->flags;
	case TB_VOCAB: *len = (t->vocab_mask + 1) * sizeof(vocab_slot); return t->vocab_slots;
	case TB_MERGES: *len = (t->merge_mask + 1) * sizeof(merge_slot); return t->merge_slots;
	case TB_RESULT: *len = t->n_merges * sizeof(int32_t); return t->merge_result;
	case TB_TRIE_EDGES: *len = (t->trie_mask + 1) * sizeof(trie_edge); return t->trie_edges;
	default: *len = t->n_trie * sizeof(int32_t); return t->trie_tok;
	}
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes t's tables to bin_path: a temporary file in the same folder, synced,
 * then renamed over it, so readers see the old file or the whole new one.
 * Returns 0, or -1 (read-only folder, full disk: the caller goes on without). */
static int save_bin(const tokenizer *t, const char *bin_path, const tok_src_key *k, const tok_src_key *cfg)
{
	static unsigned seq;
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", bin_path, (long)getpid(),
			     __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED)) >= sizeof tmp)
		return -1;
	tokbin_header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, TOKBIN_MAGIC, 8);
	h.version = TOKBIN_VERSION;
	h.header_bytes = sizeof h;
	h.src = *k;
	h.cfg = *cfg;
	h.bos = t->bos;
	h.eos = t->eos;
	h.pad = t->pad;
	h.unk = t->unk;
	h.n_vocab = t->n_vocab;
	h.blob_len = t->blob_len;
	h.vocab_mask = t->vocab_mask;
	h.n_merges = t->n_merges;
	h.merge_mask = t->merge_mask;
	h.trie_mask = t->trie_mask;
	h.n_trie = t->n_trie;
	h.hash_collision = (uint32_t)t->hash_collision;
	memcpy(h.byte_id, t->byte_id, sizeof h.byte_id);
	memcpy(h.ascii_id, t->ascii_id, sizeof h.ascii_id);
	memcpy(h.trie_first, t->trie_first, sizeof h.trie_first);
	size_t at = align_up(sizeof h);
	for (int i = 0; i < TB_N; i++) {
		size_t len;
		section(t, i, &len);
		h.sec_off[i] = at;
		h.sec_len[i] = len;
		at = align_up(at + len);
	}
	h.file_bytes = at;
	h.header_hash = hash64(&h, offsetof(tokbin_header, header_hash), 0);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) return -1;
	static const char zeros[TOKBIN_ALIGN];
	size_t pos = sizeof h;
	int rc = write_all(fd, &h, sizeof h);
	for (int i = 0; rc == 0 && i < TB_N; i++) {
		size_t len;
		const void *p = section(t, i, &len);
		rc = write_all(fd, zeros, h.sec_off[i] - pos);
		if (rc == 0) rc = write_all(fd, p, len);
		pos = h.sec_off[i] + len;
	}
	if (rc == 0) rc = write_all(fd, zeros, h.file_bytes - pos);
	if (rc == 0) rc = fsync(fd);
	if (close(fd) < 0) rc = -1;
	if (rc == 0) rc = rename(tmp, bin_path);
	if (rc < 0) unlink(tmp);
	return rc;
}

/* Checks a mapped tokenizer.bin against the key and points t's tables into it.
 * Every id, offset and probe chain is checked, so a damaged or foreign file is
 * refused here rather than read out of bounds later. Returns 0, or -1 with the
 * reason in why. */
static int adopt_bin(tokenizer *t, const unsigned char *base, size_t size, const tok_src_key *k,
		     const tok_src_key *cfg, const char **why)
{
	tokbin_header h;
	if (size < sizeof h) {
		*why = "short file";
		return -1;
	}
	memcpy(&h, base, sizeof h);
	if (memcmp(h.magic, TOKBIN_MAGIC, 8) != 0 || h.version != TOKBIN_VERSION || h.header_bytes != sizeof h) {
		*why = "another format or version";
		return -1;
	}
	if (h.header_hash != hash64(&h, offsetof(tokbin_header, header_hash), 0) || h.file_bytes != size) {
		*why = "damaged header or truncated file";
		return -1;
	}
	if (memcmp(&h.src, k, sizeof *k) != 0) {
		*why = "built from another tokenizer.json";
		return -1;
	}
	if (memcmp(&h.cfg, cfg, sizeof *cfg) != 0) {
		*why = "built with another tokenizer_config.json";
		return -1;
	}
	if (h.n_vocab == 0 || h.n_vocab > (uint64_t)TOK_MAX_ID + 1 || h.n_merges >= TOK_MAX_MERGES ||
	    h.blob_len == 0 || h.blob_len >= UINT32_MAX || h.n_trie == 0 || h.n_trie > TOKBIN_MAX_SLOTS ||
	    h.vocab_mask >= TOKBIN_MAX_SLOTS || (h.vocab_mask & (h.vocab_mask + 1)) ||
	    h.merge_mask >= TOKBIN_MAX_SLOTS || (h.merge_mask & (h.merge_mask + 1)) ||
	    h.trie_mask >= TOKBIN_MAX_SLOTS || (h.trie_mask & (h.trie_mask + 1))) {
		*why = "counts out of range";
		return -1;
	}
	t->n_vocab = h.n_vocab;
	t->blob_len = h.blob_len;
	t->vocab_mask = h.vocab_mask;
	t->n_merges = h.n_merges;
	t->merge_mask = h.merge_mask;
	t->trie_mask = h.trie_mask;
	t->n_trie = h.n_trie;
	for (int i = 0; i < TB_N; i++) {
		size_t want;
		section(t, i, &want);
		if (h.sec_len[i] != want || h.sec_off[i] % TOKBIN_ALIGN || h.sec_off[i] < sizeof h ||
		    h.sec_off[i] > size || size - h.sec_off[i] < want) {
			*why = "sections out of place";
			return -1;
		}
	}
	const void *sec[TB_N];
	for (int i = 0; i < TB_N; i++) sec[i] = base + h.sec_off[i];
	/* The tables are read in place: casting away const is safe, nothing writes them. */
	t->blob = (char *)sec[TB_BLOB];
	t->pieces = (tok_piece *)sec[TB_PIECES];
	t->flags = (uint8_t *)sec[TB_FLAGS];
	t->vocab_slots = (vocab_slot *)sec[TB_VOCAB];
	t->merge_slots = (merge_slot *)sec[TB_MERGES];
	t->merge_result = (int32_t *)sec[TB_RESULT];
	t->trie_edges = (trie_edge *)sec[TB_TRIE_EDGES];
	t->trie_tok = (int32_t *)sec[TB_TRIE_TOK];
	t->blob_cap = t->blob_len;
	t->trie_cap = t->n_trie;
	t->hash_collision = h.hash_collision != 0;
	memcpy(t->byte_id, h.byte_id, sizeof t->byte_id);
	memcpy(t->ascii_id, h.ascii_id, sizeof t->ascii_id);
	memcpy(t->trie_first, h.trie_first, sizeof t->trie_first);
	t->bos = h.bos;
	t->eos = h.eos;
	t->pad = h.pad;
	t->unk = h.unk;

	const int64_t nv = (int64_t)t->n_vocab;
	if (t->blob[t->blob_len - 1] != 0) {
		*why = "blob not terminated";
		return -1;
	}
	for (size_t id = 0; id < t->n_vocab; id++) {
		const tok_piece *p = &t->pieces[id];
		if (p->off == UINT32_MAX) {
			if (t->flags[id]) {
				*why = "flags on a missing piece";
				return -1;
			}
			continue;
		}
		if ((uint64_t)p->off + p->len >= t->blob_len || t->blob[p->off + p->len] != 0 ||
		    ((t->flags[id] & TF_BYTE) && p->len != 6)) {
			*why = "piece out of place";
			return -1;
		}
	}
	/* Sequential scans only (a random read per slot would cost more than the
	 * map saves). A slot may name an id without a piece or a rank that never
	 * applies: lookups treat both as absent, so only the ranges matter. */
	size_t empty = 0, bad = 0;
	for (size_t i = 0; i <= t->vocab_mask; i++) {
		int32_t id = t->vocab_slots[i].id;
		empty += id < 0;
		bad += id >= nv;
	}
	if (bad || !empty) {
		*why = bad ? "bad vocabulary slot" : "full vocabulary table";
		return -1;
	}
	for (size_t r = 0; r < t->n_merges; r++) bad += t->merge_result[r] < -1 || t->merge_result[r] >= nv;
	if (bad) {
		*why = "bad merge result";
		return -1;
	}
	empty = 0;
	for (size_t i = 0; i <= t->merge_mask; i++) {
		merge_slot m = t->merge_slots[i];
		empty += m == 0;
		bad += m != 0 && (m & ((1u << 22) - 1)) >= t->n_merges;
	}
	if (bad) {
		*why = "bad merge slot";
		return -1;
	}
	if (!empty) {
		*why = "full merge table";
		return -1;
	}
	empty = 0;
	for (size_t i = 0; i <= t->trie_mask; i++) {
		const trie_edge *e = &t->trie_edges[i];
		if (!e->key) {
			empty++;
			continue;
		}
		if (e->child <= 0 || (uint64_t)e->child >= t->n_trie) {
			*why = "bad trie edge";
			return -1;
		}
	}
	if (!empty) {
		*why = "full trie table";
		return -1;
	}
	for (size_t i = 0; i < t->n_trie; i++)
		if (t->trie_tok[i] < -1 || t->trie_tok[i] >= nv) {
			*why = "bad trie token";
			return -1;
		}
	for (int i = 0; i < 256; i++)
		if (t->byte_id[i] < -1 || t->byte_id[i] >= nv || (i < 128 && (t->ascii_id[i] < -1 || t->ascii_id[i] >= nv))) {
			*why = "bad byte table";
			return -1;
		}
	if (t->bos < -1 || t->bos >= nv || t->eos < -1 || t->eos >= nv || t->pad < -1 || t->pad >= nv ||
	    t->unk < 0 || t->unk >= nv || t->pieces[t->unk].off == UINT32_MAX) {
		*why = "bad special ids";
		return -1;
	}
	return 0;
}

/* Maps bin_path and adopts it when it was built from the files with keys k
 * and cfg. Returns the tokenizer or NULL (absent, stale, damaged). */
static tokenizer *load_bin(const char *bin_path, const tok_src_key *k, const tok_src_key *cfg, int ours_only)
{
	int fd = open(bin_path, O_RDONLY | O_CLOEXEC | (ours_only ? O_NOFOLLOW : 0));
	if (fd < 0) {
		if (errno != ENOENT) log_debug("%s: %s", bin_path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(tokbin_header) ||
	    (uint64_t)st.st_size > TOKBIN_MAX_BYTES) {
		close(fd);
		log_debug("%s: not a tokenizer cache (size), rebuilding", bin_path);
		return NULL;
	}
	/* The fallback folder may be shared (a cache folder open to all): a file
	 * there that another user could have written is not used, but rebuilt. */
	if (ours_only && ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
		close(fd);
		log_warn("%s: owned by uid %u, mode %03o: another user could have written it; rebuilding", bin_path,
			 (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		return NULL;
	}
	size_t size = (size_t)st.st_size;
	void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) return NULL;
	tokenizer *t = calloc(1, sizeof(*t));
	const char *why = "out of memory";
	if (!t || adopt_bin(t, p, size, k, cfg, &why) < 0) {
		log_debug("%s: not used (%s), rebuilding", bin_path, why);
		free(t);
		munmap(p, size);
		return NULL;
	}
	t->map = p;
	t->map_len = size;
	return t;
}

/* ------------------------------------------------------------------ load */

/* Builds a tokenizer from tokenizer.json (bos/eos not yet set); *key gets the
 * file's identity. NULL with err set. */
static tokenizer *build_from_json(const char *path, tok_src_key *key, char *err, size_t errlen)
{
	size_t len;
	struct stat st;
	const char *text = map_file(path, TOK_MAX_FILE_BYTES, &len, &st, err, errlen);
	if (!text) return NULL;
	if (key) {
		src_key_from_stat(key, &st);
		key->sample_hash = sample_hash(text, len);
	}
	json_error jerr;
	json_doc *doc = json_parse(text, len, 0, &jerr);
	unmap_file(text, len);
	if (!doc) {
		snprintf(err, errlen, "%s:%u:%u: %s", path, jerr.line, jerr.col, jerr.msg);
		return NULL;
	}
	tokenizer *t = calloc(1, sizeof(*t));
	if (!t) {
		json_doc_free(doc);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int rc = build(t, json_root(doc), path, err, errlen);
	json_doc_free(doc);
	if (rc < 0) {
		tokenizer_free(t);
		return NULL;
	}
	return t;
}

tokenizer *tokenizer_load_files(const char *tokenizer_json_path, const char *config_path,
				char *err, size_t errlen)
{
	tokenizer *t = build_from_json(tokenizer_json_path, NULL, err, errlen);
	if (t && apply_config(t, tokenizer_json_path, config_path, err, errlen) < 0) {
		tokenizer_free(t);
		return NULL;
	}
	return t;
}

static int model_paths(const char *model_dir, char *tpath, char *cpath, char *bpath, size_t cap,
		       char *err, size_t errlen)
{
	if ((size_t)snprintf(tpath, cap, "%s/tokenizer.json", model_dir) >= cap ||
	    (size_t)snprintf(cpath, cap, "%s/tokenizer_config.json", model_dir) >= cap ||
	    (bpath && (size_t)snprintf(bpath, cap, "%s/tokenizer.bin", model_dir) >= cap)) {
		snprintf(err, errlen, "model path too long");
		return -1;
	}
	return 0;
}

tokenizer *tokenizer_load(const char *model_dir, char *err, size_t errlen)
{
	if (gguf_is_model_path(model_dir)) return tokenizer_load_gguf(model_dir, err, errlen);
	char tpath[4096], cpath[4096];
	if (model_paths(model_dir, tpath, cpath, NULL, sizeof tpath, err, errlen) < 0) return NULL;
	return tokenizer_load_files(tpath, access(cpath, F_OK) == 0 ? cpath : NULL, err, errlen);
}

/* mkdir -p of dir (mode 0755). Returns 0 or -1 with errno set. */
static int mkdirs(const char *dir)
{
	char p[4096];
	if (str_copy(p, dir, sizeof p) >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *c = p + 1;; c++) {
		if (*c != '/' && *c != 0) continue;
		char was = *c;
		*c = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
		if (!was) return 0;
		*c = was;
	}
}

/* The tokenizer.bin of model_dir's tokenizer.json under fallback_dir, named by
 * a hash of the json's real path. Returns 0, or -1 (no such file, too long). */
static int fallback_path(const char *tpath, const char *fallback_dir, char *out, size_t cap)
{
	char real[PATH_MAX];
	if (!fallback_dir || !realpath(tpath, real)) return -1;
	uint64_t h = hash64(real, strlen(real), 0x746f6b656e697a65ull);
	return (size_t)snprintf(out, cap, "%s/tokenizer-%016llx.bin", fallback_dir, (unsigned long long)h) < cap ? 0 : -1;
}

tokenizer *tokenizer_load_cached(const char *model_dir, const char *fallback_dir, tokenizer_source *source,
				 char *err, size_t errlen)
{
	char tpath[4096], cpath[4096], bpath[4096], fpath[4200];
	tok_src_key key, ckey;
	memset(&key, 0, sizeof key);
	memset(&ckey, 0, sizeof ckey);
	if (source) *source = TOKENIZER_BUILT;
	/* A GGUF vocabulary loads in tens of milliseconds: no cache. */
	if (gguf_is_model_path(model_dir)) return tokenizer_load_gguf(model_dir, err, errlen);
	if (model_paths(model_dir, tpath, cpath, bpath, sizeof tpath, err, errlen) < 0) return NULL;
	int have_fallback = fallback_path(tpath, fallback_dir, fpath, sizeof fpath) == 0;
	uint64_t t0 = time_mono_ns();
	if (src_key_of_path(cpath, &ckey) < 0) memset(&ckey, 0, sizeof ckey);
	tokenizer *t = NULL;
	if (src_key_of_path(tpath, &key) == 0) {
		const char *from = bpath;
		t = load_bin(bpath, &key, &ckey, 0);
		if (!t && have_fallback) t = load_bin(from = fpath, &key, &ckey, 1);
		if (t) {
			if (source) *source = TOKENIZER_MAPPED;
			log_debug("tokenizer: mapped %s in %.1f ms", from, (double)(time_mono_ns() - t0) / 1e6);
			return t;
		}
	}
	memset(&key, 0, sizeof key);
	t = build_from_json(tpath, &key, err, errlen);
	if (!t) return NULL;
	uint64_t t1 = time_mono_ns();
	if (apply_config(t, tpath, access(cpath, F_OK) == 0 ? cpath : NULL, err, errlen) < 0) {
		tokenizer_free(t);
		return NULL;
	}
	uint64_t t2 = time_mono_ns();
	const char *to = bpath;
	int saved = save_bin(t, bpath, &key, &ckey) == 0;
	if (!saved && have_fallback) {
		/* A read-only model folder (a FUSE mount, a read-only volume). */
		to = fpath;
		saved = mkdirs(fallback_dir) == 0 && save_bin(t, fpath, &key, &ckey) == 0;
	}
	if (saved) {
		if (source) *source = TOKENIZER_BUILT_SAVED;
	} else {
		log_debug("%s: cannot write the tokenizer cache (%s); built in memory", to, strerror(errno));
	}
	log_debug("tokenizer: built from %s in %.1f ms, config %.1f ms, %s %s in %.1f ms", tpath,
		  (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, saved ? "cache written to" : "no cache at",
		  to, (double)(time_mono_ns() - t2) / 1e6);
	return t;
}

void tokenizer_free(tokenizer *t)
{
	if (!t) return;
	if (t->map) {
		munmap(t->map, t->map_len);
		free(t);
		return;
	}
	free(t->blob);
	free(t->pieces);
	free(t->flags);
	free(t->vocab_slots);
	free(t->merge_slots);
	free(t->merge_result);
	free(t->trie_edges);
	free(t->trie_tok);
	free(t->scores);
	free(t);
}

/* ------------------------------------------------------------------ lookups */

size_t tokenizer_vocab_size(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos_id(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos_id(const tokenizer *t) { return t->eos; }
int32_t tokenizer_pad_id(const tokenizer *t) { return t->pad; }
int32_t tokenizer_unk_id(const tokenizer *t) { return t->unk; }

const char *tokenizer_piece(const tokenizer *t, int32_t id, size_t *len)
{
	return piece_at(t, id, len);
}

int tokenizer_is_special(const tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n_vocab && (t->flags[id] & TF_SPECIAL);
}

int tokenizer_byte_value(const tokenizer *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->n_vocab || !(t->flags[id] & TF_BYTE)) return -1;
	const char *p = t->blob + t->pieces[id].off;
	return hex_digit(p[3]) * 16 + hex_digit(p[4]);
}

/* ------------------------------------------------------------------ encode */

/* A symbol of the section being merged: a piece id (-1: a character the
 * vocabulary lacks, written as bytes) over text[start, start + len). */
typedef struct bpe_sym {
	int32_t id;
	int32_t prev, next; /* -1 at the ends */
	uint32_t start, len;
} bpe_sym;

/* A candidate merge of sym[left] and sym[right], valid while both still hold
 * the ids they had when it was queued and are still neighbours. */
typedef struct bpe_cand {
	uint64_t key; /* rank << 32 | left: lowest rank, then leftmost */
	int32_t right;
	int32_t left_id, right_id;
	int32_t merged; /* the id they become */
} bpe_cand;

typedef struct enc_out {
	int32_t *ids;
	size_t cap, n;
} enc_out;

static inline void emit(enc_out *o, int32_t id)
{
	if (o->n < o->cap) o->ids[o->n] = id;
	o->n++;
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h[p].key <= c.key) break;
		h[i] = h[p];
		i = p;
	}
	h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n)
{
	bpe_cand top = h[0], last = h[--(*n)];
	size_t i = 0, cnt = *n;
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l >= cnt) break;
		m = (l + 1 < cnt && h[l + 1].key < h[l].key) ? l + 1 : l;
		if (h[m].key >= last.key) break;
		h[i] = h[m];
		i = m;
	}
	if (cnt) h[i] = last;
	return top;
}

/* A direct-mapped cache of merge lookups, per encode call: text repeats its
 * pairs, and the merge table is too large to stay in the CPU's caches. */
typedef struct pair_memo {
	uint64_t key; /* pair_key, 0 = empty */
	int32_t rank; /* -1: no merge */
	int32_t merged;
} pair_memo;

/* Scratch of one encode call. */
typedef struct bpe_scratch {
	bpe_sym *sym;   /* one per character of the longest section */
	bpe_cand *heap; /* three per character */
	size_t nheap;
	pair_memo *memo;
	size_t memo_mask;
} bpe_scratch;

static void queue_pair(const tokenizer *t, bpe_scratch *sc, int32_t left)
{
	const bpe_sym *sym = sc->sym;
	int32_t right = sym[left].next;
	if (right < 0 || sym[left].id < 0 || sym[right].id < 0) return;
	uint64_t key = pair_key(sym[left].id, sym[right].id);
	pair_memo *pm = &sc->memo[(size_t)mix_key(key) & sc->memo_mask];
	if (pm->key != key) {
		pm->key = key;
		pm->rank = merge_rank(t, sym[left].id, sym[right].id);
		pm->merged = pm->rank >= 0 ? t->merge_result[pm->rank] : -1;
	}
	if (pm->rank < 0) return;
	bpe_cand c = {((uint64_t)(uint32_t)pm->rank << 32) | (uint32_t)left, right, sym[left].id, sym[right].id,
		      pm->merged};
	heap_push(sc->heap, &sc->nheap, c);
}

/* Merges text[0, len) (valid UTF-8, no added token inside) and emits its ids.
 * sym and heap have room for len symbols and 3 * len candidates. */
static void bpe_section(const tokenizer *t, const unsigned char *text, size_t len, bpe_scratch *sc,
			enc_out *o)
{
	bpe_sym *sym = sc->sym;
	bpe_cand *heap = sc->heap;
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		size_t cl = utf8_len(text[i]);
		if (cl > len - i) cl = len - i;
		int32_t id = text[i] < 0x80 ? t->ascii_id[text[i]] : tokenizer_piece_id(t, (const char *)text + i, cl);
		sym[n].id = id;
		sym[n].prev = (int32_t)n - 1;
		sym[n].next = (int32_t)n + 1;
		sym[n].start = (uint32_t)i;
		sym[n].len = (uint32_t)cl;
		n++;
		i += cl;
	}
	if (!n) return;
	sym[n - 1].next = -1;
	sc->nheap = 0;
	for (size_t i = 0; i + 1 < n; i++) queue_pair(t, sc, (int32_t)i);
	while (sc->nheap) {
		bpe_cand c = heap_pop(heap, &sc->nheap);
		int32_t left = (int32_t)(uint32_t)c.key;
		if (sym[left].id != c.left_id || sym[left].next != c.right || sym[c.right].id != c.right_id)
			continue;
		bpe_sym *r = &sym[c.right];
		sym[left].id = c.merged;
		sym[left].len += r->len;
		sym[left].next = r->next;
		if (r->next >= 0) sym[r->next].prev = left;
		r->id = -2; /* gone */
		r->next = -1;
		if (sym[left].prev >= 0) queue_pair(t, sc, sym[left].prev);
		queue_pair(t, sc, left);
	}
	for (int32_t i = 0; i >= 0; i = sym[i].next) {
		if (sym[i].id >= 0) {
			emit(o, sym[i].id);
			continue;
		}
		/* Byte fallback; every byte token must exist, else one <unk>. */
		int all = 1;
		for (uint32_t k = 0; k < sym[i].len; k++)
			if (t->byte_id[text[sym[i].start + k]] < 0) all = 0;
		if (!all) {
			emit(o, t->unk);
			continue;
		}
		for (uint32_t k = 0; k < sym[i].len; k++) emit(o, t->byte_id[text[sym[i].start + k]]);
	}
}

static int spm_encode(const tokenizer *t, const unsigned char *text, size_t len, int add_bos, enc_out *o);

int tokenizer_encode(const tokenizer *t, const char *text_in, size_t len, int add_bos,
		     int32_t *ids, size_t cap, size_t *n)
{
	enc_out o = {ids, cap, 0};
	*n = 0;
	if (t->scores) {
		if (spm_encode(t, (const unsigned char *)text_in, len, add_bos, &o) < 0) return -1;
		*n = o.n;
		return o.n <= cap ? 0 : -1;
	}
	const unsigned char *text = (const unsigned char *)text_in;
	unsigned char *clean = NULL;
	if (utf8_valid_prefix(text, len) != len) {
		/* Invalid bytes become U+FFFD, as the reference sees them. */
		clean = malloc(len * 3 + 8);
		if (!clean) return -1;
		tok_stream st;
		utf8_state_init(&st);
		size_t w = 0;
		for (size_t i = 0; i < len; i++) w += utf8_step(&st, text[i], clean + w);
		w += utf8_end(&st, clean + w);
		text = clean;
		len = w;
	}
	/* Scratch for the longest section: one symbol per byte at most. */
	bpe_scratch sc = {0};
	size_t memo_n = 64;
	while (memo_n < 65536 && memo_n < 2 * len) memo_n *= 2;
	sc.memo_mask = memo_n - 1;
	if (len) {
		sc.sym = malloc(len * sizeof(*sc.sym));
		sc.heap = malloc(3 * len * sizeof(*sc.heap));
		sc.memo = calloc(memo_n, sizeof(*sc.memo));
		if (!sc.sym || !sc.heap || !sc.memo) {
			free(sc.sym);
			free(sc.heap);
			free(sc.memo);
			free(clean);
			return -1;
		}
	}
	if (add_bos && t->bos >= 0) emit(&o, t->bos);
	size_t sec = 0, i = 0;
	while (i < len) {
		if (t->trie_first[text[i]]) {
			int32_t id = -1;
			size_t m = trie_match(t, text + i, len - i, &id);
			if (m) {
				if (i > sec) bpe_section(t, text + sec, i - sec, &sc, &o);
				emit(&o, id);
				i += m;
				sec = i;
				continue;
			}
		}
		i++;
	}
	if (len > sec) bpe_section(t, text + sec, len - sec, &sc, &o);
	free(sc.sym);
	free(sc.heap);
	free(sc.memo);
	free(clean);
	*n = o.n;
	return o.n <= cap ? 0 : -1;
}

/* ------------------------------------------------------------------ decode */

void tok_stream_init(tok_stream *s, const tokenizer *t, int skip_special)
{
	memset(s, 0, sizeof(*s));
	s->tok = t;
	s->skip_special = skip_special;
	utf8_state_init(s);
}

/* Appends piece with every "▁" turned into " ". */
static int append_piece(buf *out, const char *p, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i + 2 < len; i++) {
		if ((unsigned char)p[i] == 0xE2 && (unsigned char)p[i + 1] == 0x96 && (unsigned char)p[i + 2] == 0x81) {
			if (buf_append(out, p + start, i - start) < 0 || buf_append(out, " ", 1) < 0) return -1;
			i += 2;
			start = i + 1;
		}
	}
	return buf_append(out, p + start, len - start);
}

int tok_stream_push(tok_stream *s, int32_t id, buf *out)
{
	const tokenizer *t = s->tok;
	size_t before = buf_rlen(out);
	if (id < 0 || (size_t)id >= t->n_vocab || t->pieces[id].off == UINT32_MAX) id = t->unk;
	if (s->skip_special && (t->flags[id] & TF_SPECIAL)) return 0;
	unsigned char tmp[8];
	if (t->flags[id] & TF_BYTE) {
		size_t k = utf8_step(s, (unsigned char)tokenizer_byte_value(t, id), tmp);
		if (k && buf_append(out, tmp, k) < 0) return -1;
		return (int)(buf_rlen(out) - before);
	}
	size_t k = utf8_end(s, tmp);
	if (k && buf_append(out, tmp, k) < 0) return -1;
	if (append_piece(out, t->blob + t->pieces[id].off, t->pieces[id].len) < 0) return -1;
	return (int)(buf_rlen(out) - before);
}

int tok_stream_flush(tok_stream *s, buf *out)
{
	unsigned char tmp[8];
	size_t k = utf8_end(s, tmp);
	if (k && buf_append(out, tmp, k) < 0) return -1;
	return (int)k;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int skip_special, buf *out)
{
	tok_stream s;
	tok_stream_init(&s, t, skip_special);
	for (size_t i = 0; i < n; i++)
		if (tok_stream_push(&s, ids[i], out) < 0) return -1;
	return tok_stream_flush(&s, out) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ GGUF vocabulary */

/* GGUF token types (llama.cpp's llama_token_type). */
enum { GGUF_TOK_NORMAL = 1,
       GGUF_TOK_UNKNOWN = 2,
       GGUF_TOK_CONTROL = 3,
       GGUF_TOK_USER = 4,
       GGUF_TOK_UNUSED = 5,
       GGUF_TOK_BYTE = 6 };

static int32_t gguf_id(const gguf_set *g, const char *key, int32_t dflt, size_t n)
{
	int64_t v;
	if (gguf_kv_int(gguf_find_kv(g, key), &v) < 0 || v < 0 || (uint64_t)v >= n) return dflt;
	return (int32_t)v;
}

tokenizer *tokenizer_from_gguf(const gguf_set *g, char *err, size_t errlen)
{
	const char *file = gguf_part_path(g, 0);
	const char *model;
	size_t model_len;
	if (gguf_kv_str(gguf_find_kv(g, "tokenizer.ggml.model"), &model, &model_len) < 0) {
		util_errf(err, errlen, "%s: tokenizer.ggml.model is missing", file);
		return NULL;
	}
	if (model_len != 5 || memcmp(model, "llama", 5) != 0) {
		util_errf(err, errlen, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama)", file,
			  (int)(model_len > 40 ? 40 : model_len), model);
		return NULL;
	}
	const gguf_kv *tk = gguf_find_kv(g, "tokenizer.ggml.tokens");
	const gguf_kv *sk = gguf_find_kv(g, "tokenizer.ggml.scores");
	const gguf_kv *yk = gguf_find_kv(g, "tokenizer.ggml.token_type");
	if (!tk || tk->type != GGUF_ARRAY || tk->arr_type != GGUF_STRING || tk->n == 0 || tk->n >= TOK_MAX_ID) {
		util_errf(err, errlen, "%s: tokenizer.ggml.tokens must be an array of 1 to %d strings", file, TOK_MAX_ID);
		return NULL;
	}
	size_t n = (size_t)tk->n;
	if (sk && (sk->type != GGUF_ARRAY || sk->n != n || (sk->arr_type != GGUF_F32 && sk->arr_type != GGUF_F64))) {
		util_errf(err, errlen, "%s: tokenizer.ggml.scores must be %zu floats", file, n);
		return NULL;
	}
	if (yk && (yk->type != GGUF_ARRAY || yk->n != n || gguf_arr_int(yk, 0, &(int64_t){0}) < 0)) {
		util_errf(err, errlen, "%s: tokenizer.ggml.token_type must be %zu integers", file, n);
		return NULL;
	}
	tokenizer *t = calloc(1, sizeof *t);
	const char **ps = malloc(n * sizeof *ps);
	size_t *pl = malloc(n * sizeof *pl);
	if (!t || !ps || !pl) goto oom;
	gguf_arr_strs(tk, ps, pl);
	size_t blob_bytes = 1;
	for (size_t i = 0; i < n; i++) {
		if (pl[i] > TOK_MAX_PIECE_BYTES) {
			util_errf(err, errlen, "%s: tokenizer.ggml.tokens[%zu] is longer than %d bytes", file, i, TOK_MAX_PIECE_BYTES);
			goto bad;
		}
		blob_bytes += pl[i] + 1;
	}
	t->n_vocab = n;
	t->pieces = malloc(n * sizeof(tok_piece));
	t->flags = calloc(n, 1);
	t->scores = malloc(n * sizeof(float));
	t->blob_cap = blob_bytes;
	t->blob = malloc(blob_bytes);
	size_t vslots = pow2_at_least(n + n / 2);
	t->vocab_slots = malloc(vslots * sizeof(vocab_slot));
	t->vocab_mask = vslots - 1;
	t->trie_cap = 1024;
	t->trie_tok = malloc(t->trie_cap * sizeof(int32_t));
	t->trie_edges = calloc(2048, sizeof(trie_edge));
	t->trie_mask = 2047;
	if (!t->pieces || !t->flags || !t->scores || !t->blob || !t->vocab_slots || !t->trie_tok || !t->trie_edges) goto oom;
	memset(t->vocab_slots, 0xFF, vslots * sizeof(vocab_slot));
	t->n_trie = 1;
	t->trie_tok[0] = -1;
	for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
	for (size_t i = 0; i < n; i++) {
		int32_t id = (int32_t)i;
		if (set_piece(t, id, ps[i], pl[i]) < 0) goto oom;
		/* later duplicates win, as llama.cpp's token_to_id map does */
		vocab_insert(t, id);
		double sc = 0;
		if (sk) gguf_arr_float(sk, i, &sc);
		t->scores[i] = (float)sc;
		int64_t ty = GGUF_TOK_NORMAL;
		if (yk) gguf_arr_int(yk, i, &ty);
		if (ty == GGUF_TOK_CONTROL) t->flags[i] |= TF_SPECIAL | TF_ADDED;
		else if (ty == GGUF_TOK_USER || ty == GGUF_TOK_UNKNOWN) t->flags[i] |= TF_ADDED;
		if (ty == GGUF_TOK_BYTE && pl[i] == 6 && memcmp(ps[i], "<0x", 3) == 0 && ps[i][5] == '>') {
			int hi = hex_digit(ps[i][3]), lo = hex_digit(ps[i][4]);
			if (hi >= 0 && lo >= 0) {
				t->flags[i] |= TF_BYTE;
				t->byte_id[hi * 16 + lo] = id;
			}
		}
		/* control, user-defined and unknown tokens are cut out of the text first */
		if ((t->flags[i] & TF_ADDED) && pl[i]) {
			if (trie_add(t, ps[i], pl[i], id) < 0) goto oom;
			if (pl[i] > t->special_max_len) t->special_max_len = pl[i];
		}
	}
	for (int c = 0; c < 128; c++) {
		char ch = (char)c;
		t->ascii_id[c] = tokenizer_piece_id(t, &ch, 1);
	}
	t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", tokenizer_piece_id(t, "<bos>", 5), n);
	t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", tokenizer_piece_id(t, "<eos>", 5), n);
	t->pad = gguf_id(g, "tokenizer.ggml.padding_token_id", tokenizer_piece_id(t, "<pad>", 5), n);
	t->unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", tokenizer_piece_id(t, "<unk>", 5), n);
	if (t->unk < 0) t->unk = 0;
	int64_t sp = 1; /* llama.cpp's default for SentencePiece vocabularies */
	const gguf_kv *spk = gguf_find_kv(g, "tokenizer.ggml.add_space_prefix");
	if (spk && gguf_kv_int(spk, &sp) < 0) {
		util_errf(err, errlen, "%s: tokenizer.ggml.add_space_prefix must be a bool", file);
		goto bad;
	}
	t->spm_space_prefix = sp != 0;
	free(ps);
	free(pl);
	return t;
oom:
	util_errf(err, errlen, "%s: out of memory", file);
bad:
	free(ps);
	free(pl);
	tokenizer_free(t);
	return NULL;
}

tokenizer *tokenizer_load_gguf(const char *path, char *err, size_t errlen)
{
	gguf_set *g = gguf_open(path, err, errlen);
	if (!g) return NULL;
	tokenizer *t = tokenizer_from_gguf(g, err, errlen);
	gguf_close(g);
	return t;
}

/* A piece of text to encode: raw text [start, start + len), or a token. */
typedef struct spm_frag {
	uint32_t start, len;
	int32_t id; /* -1: raw text */
} spm_frag;

/* A candidate merge in llama.cpp's order: highest score, then leftmost. */
typedef struct spm_cand {
	float score;
	int32_t left, right;
	uint32_t size; /* bytes of the merged text: stale when the symbols changed */
} spm_cand;

static int spm_before(const spm_cand *a, const spm_cand *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void spm_push(spm_cand *h, size_t *n, spm_cand c)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!spm_before(&c, &h[p])) break;
		h[i] = h[p];
		i = p;
	}
	h[i] = c;
}

static spm_cand spm_pop(spm_cand *h, size_t *n)
{
	spm_cand top = h[0], last = h[--(*n)];
	size_t i = 0, cnt = *n;
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= cnt) break;
		size_t m = (l + 1 < cnt && spm_before(&h[l + 1], &h[l])) ? l + 1 : l;
		if (!spm_before(&h[m], &last)) break;
		h[i] = h[m];
		i = m;
	}
	if (cnt) h[i] = last;
	return top;
}

typedef struct spm_scratch {
	unsigned char *text; /* the escaped section */
	bpe_sym *sym;
	spm_cand *heap;
	size_t nheap, heap_cap;
} spm_scratch;

static void spm_try(const tokenizer *t, spm_scratch *sc, int32_t left, int32_t right)
{
	if (left < 0 || right < 0) return;
	const bpe_sym *a = &sc->sym[left], *b = &sc->sym[right];
	uint32_t size = a->len + b->len;
	int32_t id = tokenizer_piece_id(t, (const char *)sc->text + a->start, size);
	if (id < 0 || sc->nheap == sc->heap_cap) return;
	spm_push(sc->heap, &sc->nheap, (spm_cand){t->scores[id], left, right, size});
}

/* One raw section: spaces become "▁" (and a leading one when the vocabulary
 * asks for it), then llama.cpp's SentencePiece merge: repeatedly the adjacent
 * pair whose joined text is the token of highest score (leftmost on ties);
 * symbols that are not tokens at the end are written as byte tokens. */
static void spm_section(const tokenizer *t, const unsigned char *in, size_t len, int prefix, spm_scratch *sc, enc_out *o)
{
	size_t w = 0;
	if (prefix) {
		memcpy(sc->text, "\xE2\x96\x81", 3);
		w = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (in[i] == ' ') {
			memcpy(sc->text + w, "\xE2\x96\x81", 3);
			w += 3;
		} else sc->text[w++] = in[i];
	}
	bpe_sym *sym = sc->sym;
	size_t n = 0;
	for (size_t i = 0; i < w;) {
		size_t cl = utf8_len(sc->text[i]);
		if (cl > w - i) cl = w - i;
		sym[n] = (bpe_sym){.prev = (int32_t)n - 1, .next = (int32_t)n + 1, .start = (uint32_t)i, .len = (uint32_t)cl};
		n++;
		i += cl;
	}
	if (!n) return;
	sym[n - 1].next = -1;
	sc->nheap = 0;
	for (size_t i = 1; i < n; i++) spm_try(t, sc, (int32_t)i - 1, (int32_t)i);
	while (sc->nheap) {
		spm_cand c = spm_pop(sc->heap, &sc->nheap);
		bpe_sym *l = &sym[c.left], *r = &sym[c.right];
		if (l->len == 0 || r->len == 0 || l->len + r->len != c.size) continue;
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0) sym[r->next].prev = c.left;
		spm_try(t, sc, l->prev, c.left);
		spm_try(t, sc, c.left, l->next);
	}
	for (int32_t i = 0; i >= 0; i = sym[i].next) {
		const unsigned char *p = sc->text + sym[i].start;
		int32_t id = tokenizer_piece_id(t, (const char *)p, sym[i].len);
		if (id >= 0) {
			emit(o, id);
			continue;
		}
		for (uint32_t k = 0; k < sym[i].len; k++) {
			int32_t b = t->byte_id[p[k]];
			if (b < 0) b = p[k] < 0x80 && t->ascii_id[p[k]] >= 0 ? t->ascii_id[p[k]] : t->unk;
			emit(o, b);
		}
	}
}

/* Cuts the special pieces out of the raw fragments, longest pieces first over
 * the whole text, each leftmost first (llama.cpp's partition). fr holds n
 * fragments and has room for 2 * len + 1. Returns the new count. */
static size_t spm_partition(const tokenizer *t, const unsigned char *text, spm_frag *fr, size_t n, spm_frag *tmp)
{
	for (size_t L = t->special_max_len; L >= 1; L--) {
		size_t m = 0;
		for (size_t f = 0; f < n; f++) {
			if (fr[f].id >= 0 || fr[f].len < L) {
				tmp[m++] = fr[f];
				continue;
			}
			uint32_t s = fr[f].start, e = fr[f].start + fr[f].len, from = s;
			for (uint32_t i = s; i + L <= e; i++) {
				if (!t->trie_first[text[i]]) continue;
				int32_t node = 0;
				for (size_t k = 0; k < L && node >= 0; k++) node = trie_child(t, node, text[i + k]);
				if (node < 0 || t->trie_tok[node] < 0) continue;
				if (i > from) tmp[m++] = (spm_frag){from, i - from, -1};
				tmp[m++] = (spm_frag){i, (uint32_t)L, t->trie_tok[node]};
				i += (uint32_t)L - 1;
				from = i + 1;
			}
			if (e > from) tmp[m++] = (spm_frag){from, e - from, -1};
		}
		memcpy(fr, tmp, m * sizeof *fr);
		n = m;
	}
	return n;
}

static int spm_encode(const tokenizer *t, const unsigned char *text, size_t len, int add_bos, enc_out *o)
{
	if (len > UINT32_MAX / 4) return -1;
	spm_frag *fr = malloc((2 * len + 2) * sizeof *fr), *tmp = malloc((2 * len + 2) * sizeof *tmp);
	spm_scratch sc = {0};
	sc.text = malloc(3 * len + 4);
	sc.sym = malloc((3 * len + 4) * sizeof *sc.sym);
	sc.heap_cap = 9 * len + 12; /* 3 candidates per symbol, 3 symbols per byte at most */
	sc.heap = malloc(sc.heap_cap * sizeof *sc.heap);
	int rc = -1;
	if (!fr || !tmp || !sc.text || !sc.sym || !sc.heap) goto out;
	size_t n = 0;
	if (len) fr[n++] = (spm_frag){0, (uint32_t)len, -1};
	n = spm_partition(t, text, fr, n, tmp);
	if (add_bos && t->bos >= 0) emit(o, t->bos);
	int prev_special = 1;
	for (size_t f = 0; f < n; f++) {
		if (fr[f].id >= 0) {
			emit(o, fr[f].id);
			prev_special = 1;
			continue;
		}
		spm_section(t, text + fr[f].start, fr[f].len, t->spm_space_prefix && prev_special, &sc, o);
		prev_special = 0;
	}
	rc = 0;
out:
	free(fr);
	free(tmp);
	free(sc.text);
	free(sc.sym);
	free(sc.heap);
	return rc;
}
