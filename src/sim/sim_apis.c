/*
 * sim_apis.c — the rest of vLLM's OpenAI server in infergate-sim, so a gateway
 * in front of it can be tested on every path it must carry: embeddings,
 * pooling, classify, score and rerank, tokenize and detokenize, the Responses
 * API (create, whole or streamed as OpenAI's typed events; retrieve; cancel),
 * and audio transcriptions and translations (multipart uploads).
 *
 * Everything is deterministic and made of the simulator's word tokens
 * (sim_text.h): a token id is a word's 31-bit hash; an embedding is a sum of
 * pseudo-random unit-variance vectors seeded by each word's hash, normalised;
 * scores are cosine similarities mapped to [0, 1]; a response's text is the
 * word stream sim_text generates after the input, as completions are; a
 * transcript's words come from a hash of the audio bytes, two words a second
 * of 16-bit 16 kHz mono audio. Nothing here goes through the engine (no KV
 * cache, no batching); a streamed response is paced by the engine's ttft_ms
 * and itl_ms on a timer.
 *
 * Not here: chat and completions (sim_openai.c), routing (sim_server.c).
 */
#include "sim/sim_server.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/multipart.h"
#include "core/openai_api.h"
#include "core/sse.h"
#include "core/util.h"

#define SIM_EMBED_DIM 64           /* dimensions of an embedding (and the most `dimensions` may ask) */
#define SIM_MAX_INPUTS 2048        /* texts per embeddings, score or rerank request */
#define SIM_MAX_RESPONSE_WORDS 512 /* a response's output tokens at most */
#define SIM_RESPONSE_WORDS 16      /* default max_output_tokens */
#define SIM_TRANSCRIPT_WORDS 256   /* words of a transcript at most */

/* ---- the vocabulary of ids seen, for /detokenize */

#define VOCAB_CAP 65536   /* words remembered; later ones are not */
#define VOCAB_WORD_MAX 64 /* longer words are not remembered */

typedef struct vocab_slot {
	uint32_t id; /* 0 = empty (ids are 1..2^31-1) */
	char word[VOCAB_WORD_MAX];
} vocab_slot;

/* Owner: the process (one simulator per process); allocated on first use. */
static vocab_slot *vocab;
static size_t vocab_n;

/* Words of one to three bytes are their own ids (bit 30 set, the bytes below):
 * any simulator reads them back, as replicas of one model share a tokenizer.
 * Longer words get a 30-bit hash, read back by the process that made it. */
#define WORD_ID_PACKED 0x40000000u

static uint32_t word_id(const char *w, size_t n)
{
	if (n <= 3) {
		uint32_t id = WORD_ID_PACKED;
		for (size_t i = 0; i < n; i++) id |= (uint32_t)(unsigned char)w[i] << (8 * i);
		return id;
	}
	uint32_t id = (uint32_t)(sim_text_word_hash(w, n) & 0x3fffffff);
	return id ? id : 1;
}

/* The word of a packed id into out (4 bytes); NULL when id is not one. */
static const char *unpack_id(uint32_t id, char *out)
{
	if (!(id & WORD_ID_PACKED) || (id >> 31)) return NULL;
	size_t n = 0;
	for (int i = 0; i < 3; i++) {
		unsigned char b = (unsigned char)(id >> (8 * i));
		if (!b) break;
		out[n++] = (char)b;
	}
	if (!n || (id & 0x3f000000u & ~WORD_ID_PACKED)) return NULL;
	out[n] = 0;
	return out;
}

static void vocab_learn(uint32_t id, const char *w, size_t n)
{
	if (n >= VOCAB_WORD_MAX) return;
	if (!vocab) {
		vocab = calloc(VOCAB_CAP * 2, sizeof(*vocab));
		if (!vocab) return;
	}
	for (size_t i = id % (VOCAB_CAP * 2), k = 0; k < VOCAB_CAP * 2; k++, i = (i + 1) % (VOCAB_CAP * 2)) {
		if (vocab[i].id == id) return;
		if (vocab[i].id == 0) {
			if (vocab_n == VOCAB_CAP) return;
			vocab[i].id = id;
			memcpy(vocab[i].word, w, n);
			vocab[i].word[n] = 0;
			vocab_n++;
			return;
		}
	}
}

static const char *vocab_word(uint32_t id)
{
	static char packed[4];
	if (unpack_id(id, packed)) return packed;
	if (!vocab || id == 0) return NULL;
	for (size_t i = id % (VOCAB_CAP * 2), k = 0; k < VOCAB_CAP * 2; k++, i = (i + 1) % (VOCAB_CAP * 2)) {
		if (vocab[i].id == id) return vocab[i].word;
		if (vocab[i].id == 0) return NULL;
	}
	return NULL;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Calls fn for each word of s[0..len) (sim_text's words: runs of non-space). */
static size_t for_words(const char *s, size_t len, void (*fn)(void *arg, const char *w, size_t n), void *arg)
{
	size_t count = 0, i = 0;
	while (i < len) {
		while (i < len && is_ws(s[i])) i++;
		size_t b = i;
		while (i < len && !is_ws(s[i])) i++;
		if (i > b) {
			if (fn) fn(arg, s + b, i - b);
			count++;
		}
	}
	return count;
}

/* ---- embeddings */

typedef struct embed_acc {
	float v[SIM_EMBED_DIM];
	size_t words;
} embed_acc;

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void embed_hash(embed_acc *a, uint64_t h)
{
	for (int k = 0; k < SIM_EMBED_DIM; k++) {
		uint64_t r = splitmix(h + (uint64_t)k * 0x632be59bd9b4e019ull);
		a->v[k] += (float)((double)(r >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
	}
	a->words++;
}

static void embed_word(void *arg, const char *w, size_t n) { embed_hash(arg, sim_text_word_hash(w, n)); }

/* Normalises to unit length over the first dim components. */
static void embed_finish(embed_acc *a, int dim)
{
	double ss = 0;
	for (int k = 0; k < dim; k++) ss += (double)a->v[k] * a->v[k];
	float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
	for (int k = 0; k < dim; k++) a->v[k] *= inv;
}

/* Embeds one input: a string, or a list of token ids (each id a word). */
static int embed_input(const json_val *in, embed_acc *a, int dim, oai_err *e, const char *param)
{
	memset(a, 0, sizeof(*a));
	if (json_is(in, JSON_STRING)) {
		for_words(in->u.str.s, in->u.str.len, embed_word, a);
	} else if (json_is(in, JSON_ARRAY)) {
		for (size_t i = 0; i < json_count(in); i++) {
			int64_t id;
			if (json_int64(json_at(in, i), &id) < 0 || id < 0 || id > INT32_MAX)
				return oai_fail(e, 400, param, "%s: token ids must be integers in [0, 2147483647]", param);
			const char *w = vocab_word((uint32_t)id);
			embed_hash(a, w ? sim_text_word_hash(w, strlen(w)) : splitmix((uint64_t)id));
		}
	} else {
		return oai_fail(e, 400, param, "%s: Input should be a string, a list of strings or token ids", param);
	}
	embed_finish(a, dim);
	return 0;
}

/* The inputs of a field that takes a string, a list of strings, a list of
 * token ids or a list of such lists. Returns their count (items point into
 * the document), or -1. */
static long inputs_of(const json_val *v, const json_val **items, size_t cap, const char *param, oai_err *e)
{
	if (oai_absent(v)) return oai_fail(e, 400, param, "%s: Field required", param);
	if (json_is(v, JSON_STRING)) {
		items[0] = v;
		return 1;
	}
	if (!json_is(v, JSON_ARRAY)) return oai_fail(e, 400, param, "%s: Input should be a string or a list", param);
	size_t n = json_count(v);
	if (n == 0) return oai_fail(e, 400, param, "%s: Input cannot be empty.", param);
	const json_val *first = json_at(v, 0);
	if (json_is(first, JSON_NUMBER)) { /* one list of token ids */
		items[0] = v;
		return 1;
	}
	if (n > cap) return oai_fail(e, 400, param, "%s: at most %zu inputs per request, got %zu.", param, cap, n);
	for (size_t i = 0; i < n; i++) items[i] = json_at(v, i);
	return (long)n;
}

/* The request's JSON object and its served model: 0, or -1 with e set. */
static json_doc *parse_request(sim_server *s, httpd_req *r, const char **model, oai_err *e)
{
	size_t len;
	const char *body = httpd_body(r, &len);
	json_doc *doc = oai_parse_body(body, len, e);
	if (!doc) return NULL;
	const char *m;
	if (oai_parse_model(json_root(doc), &m, e) < 0) {
		json_doc_free(doc);
		return NULL;
	}
	*model = sim_server_model(s, m);
	if (!*model) {
		oai_fail_model(e, m);
		json_doc_free(doc);
		return NULL;
	}
	return doc;
}

static void fail(httpd_req *r, const oai_err *e) { httpd_error(r, e->status, e->msg, e->param); }

static void respond(sim_server *s, httpd_req *r, const char *content_type)
{
	httpd_respond(r, 200, content_type, s->region_hdr, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
}

static void write_usage(json_w *w, uint64_t prompt, uint64_t completion)
{
	jw_key(w, "usage");
	jw_obj_begin(w);
	jw_key(w, "prompt_tokens");
	jw_uint(w, prompt);
	jw_key(w, "total_tokens");
	jw_uint(w, prompt + completion);
	jw_key(w, "completion_tokens");
	jw_uint(w, completion);
	jw_key(w, "prompt_tokens_details");
	jw_null(w);
	jw_obj_end(w);
}

static void write_head(sim_server *s, json_w *w, const char *prefix, const char *object, const char *model)
{
	char id[64];
	snprintf(id, sizeof(id), "%s-%016" PRIx64, prefix, hash64(&s->id_seq, sizeof(s->id_seq), s->id_salt));
	s->id_seq++;
	jw_key(w, "id");
	jw_str(w, id);
	if (object) {
		jw_key(w, "object");
		jw_str(w, object);
	}
	jw_key(w, "created");
	jw_int(w, (int64_t)time_wall_s());
	jw_key(w, "model");
	jw_str(w, model);
}

/* Little-endian float32 bytes in base64, as OpenAI's encoding_format "base64". */
static void write_base64_floats(json_w *w, const float *v, int n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[SIM_EMBED_DIM * 4];
	for (int i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		for (int b = 0; b < 4; b++) raw[i * 4 + b] = (unsigned char)(u >> (8 * b));
	}
	char out[SIM_EMBED_DIM * 4 / 3 * 4 + 8];
	size_t o = 0, len = (size_t)n * 4;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t x = (uint32_t)raw[i] << 16 | (i + 1 < len ? (uint32_t)raw[i + 1] << 8 : 0) | (i + 2 < len ? raw[i + 2] : 0);
		out[o++] = tab[x >> 18 & 63];
		out[o++] = tab[x >> 12 & 63];
		out[o++] = i + 1 < len ? tab[x >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tab[x & 63] : '=';
	}
	jw_strn(w, out, o);
}

static void write_floats(json_w *w, const float *v, int n)
{
	jw_arr_begin(w);
	for (int k = 0; k < n; k++) jw_double(w, v[k]);
	jw_arr_end(w);
}

/* POST /v1/embeddings, /pooling (pooling 1) and /classify (classify 1). */
static void handle_embeddings(sim_server *s, httpd_req *r, int kind)
{
	enum { EMBED,
	       POOL,
	       CLASSIFY };
	oai_err e;
	const char *model;
	json_doc *doc = parse_request(s, r, &model, &e);
	if (!doc) {
		fail(r, &e);
		return;
	}
	const json_val *root = json_root(doc);
	static const json_val *items[SIM_MAX_INPUTS];
	long n = inputs_of(json_get(root, "input"), items, SIM_MAX_INPUTS, "input", &e);
	int64_t dim = SIM_EMBED_DIM;
	const char *fmt = json_str(json_get(root, "encoding_format"), "float");
	if (n >= 0 && oai_get_int(root, "dimensions", SIM_EMBED_DIM, &dim, &e) == 0 && (dim < 1 || dim > SIM_EMBED_DIM))
		n = oai_fail(&e, 400, "dimensions", "dimensions must be between 1 and %d, got %" PRId64 ".", SIM_EMBED_DIM, dim);
	if (n >= 0 && strcmp(fmt, "float") && strcmp(fmt, "base64"))
		n = oai_fail(&e, 400, "encoding_format", "encoding_format must be 'float' or 'base64', got '%s'.", fmt);
	if (n < 0) {
		json_doc_free(doc);
		fail(r, &e);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	if (kind == EMBED) {
		jw_key(&w, "object");
		jw_str(&w, "list");
		jw_key(&w, "model");
		jw_str(&w, model);
	} else {
		write_head(s, &w, kind == POOL ? "pool" : "classify", "list", model);
	}
	jw_key(&w, "data");
	jw_arr_begin(&w);
	uint64_t tokens = 0;
	for (long i = 0; i < n; i++) {
		embed_acc a;
		if (embed_input(items[i], &a, (int)dim, &e, "input") < 0) {
			json_doc_free(doc);
			fail(r, &e);
			return;
		}
		tokens += a.words;
		jw_obj_begin(&w);
		jw_key(&w, "index");
		jw_int(&w, i);
		if (kind == CLASSIFY) {
			double p1 = 1.0 / (1.0 + exp(-8.0 * a.v[0]));
			jw_key(&w, "label");
			jw_str(&w, p1 >= 0.5 ? "positive" : "negative");
			jw_key(&w, "probs");
			jw_arr_begin(&w);
			jw_double(&w, 1.0 - p1);
			jw_double(&w, p1);
			jw_arr_end(&w);
			jw_key(&w, "num_classes");
			jw_int(&w, 2);
		} else {
			jw_key(&w, "object");
			jw_str(&w, kind == EMBED ? "embedding" : "pooling");
			jw_key(&w, kind == EMBED ? "embedding" : "data");
			if (!strcmp(fmt, "base64")) write_base64_floats(&w, a.v, (int)dim);
			else write_floats(&w, a.v, (int)dim);
		}
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	write_usage(&w, tokens, 0);
	jw_obj_end(&w);
	json_doc_free(doc);
	respond(s, r, "application/json");
}

/* ---- score and rerank */

static double similarity(const embed_acc *a, const embed_acc *b)
{
	double d = 0;
	for (int k = 0; k < SIM_EMBED_DIM; k++) d += (double)a->v[k] * b->v[k];
	return (d + 1.0) / 2.0;
}

/* The text of a rerank document: a string or {"text": ...}. */
static const json_val *doc_text(const json_val *d)
{
	if (json_is(d, JSON_OBJECT)) return json_get(d, "text");
	return d;
}

typedef struct ranked {
	long index;
	double score;
} ranked;

static int by_score(const void *a, const void *b)
{
	const ranked *x = a, *y = b;
	if (x->score != y->score) return x->score < y->score ? 1 : -1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* POST /score, /v1/score (rerank 0) and /rerank, /v1/rerank, /v2/rerank. */
static void handle_score(sim_server *s, httpd_req *r, int rerank)
{
	oai_err e;
	const char *model;
	json_doc *doc = parse_request(s, r, &model, &e);
	if (!doc) {
		fail(r, &e);
		return;
	}
	const json_val *root = json_root(doc);
	static const json_val *left[SIM_MAX_INPUTS], *right[SIM_MAX_INPUTS];
	long nl, nr;
	int64_t top_n = -1;
	if (rerank) {
		const json_val *q = json_get(root, "query");
		nl = json_is(q, JSON_STRING) ? 1 : oai_fail(&e, 400, "query", "query: Input should be a valid string");
		left[0] = q;
		nr = nl < 0 ? -1 : inputs_of(json_get(root, "documents"), right, SIM_MAX_INPUTS, "documents", &e);
		if (nr >= 0 && oai_get_int(root, "top_n", -1, &top_n, &e) < 0) nr = -1;
	} else {
		nl = inputs_of(json_get(root, "text_1"), left, SIM_MAX_INPUTS, "text_1", &e);
		nr = nl < 0 ? -1 : inputs_of(json_get(root, "text_2"), right, SIM_MAX_INPUTS, "text_2", &e);
		if (nr >= 0 && nl != 1 && nl != nr)
			nr = oai_fail(&e, 400, "text_2", "text_1 has %ld inputs and text_2 %ld: give one text_1 or as many as text_2.", nl, nr);
	}
	ranked *res = nr > 0 ? calloc((size_t)nr, sizeof(*res)) : NULL;
	if (nr > 0 && !res) nr = oai_fail(&e, 500, NULL, "out of memory");
	uint64_t tokens = 0;
	embed_acc a, b;
	for (long i = 0; i < nr; i++) {
		if (embed_input(doc_text(left[nl == 1 ? 0 : i]), &a, SIM_EMBED_DIM, &e, rerank ? "query" : "text_1") < 0 ||
		    embed_input(doc_text(right[i]), &b, SIM_EMBED_DIM, &e, rerank ? "documents" : "text_2") < 0) {
			nr = -1;
			break;
		}
		tokens += a.words + b.words;
		res[i].index = i;
		res[i].score = similarity(&a, &b);
	}
	if (nr < 0) {
		free(res);
		json_doc_free(doc);
		fail(r, &e);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	if (rerank) {
		qsort(res, (size_t)nr, sizeof(*res), by_score);
		long shown = top_n > 0 && top_n < nr ? (long)top_n : nr;
		write_head(s, &w, "rerank", NULL, model);
		jw_key(&w, "usage");
		jw_obj_begin(&w);
		jw_key(&w, "total_tokens");
		jw_uint(&w, tokens);
		jw_obj_end(&w);
		jw_key(&w, "results");
		jw_arr_begin(&w);
		for (long i = 0; i < shown; i++) {
			jw_obj_begin(&w);
			jw_key(&w, "index");
			jw_int(&w, res[i].index);
			jw_key(&w, "document");
			jw_obj_begin(&w);
			jw_key(&w, "text");
			jw_value(&w, doc_text(right[res[i].index]));
			jw_obj_end(&w);
			jw_key(&w, "relevance_score");
			jw_double(&w, res[i].score);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	} else {
		write_head(s, &w, "score", "list", model);
		jw_key(&w, "data");
		jw_arr_begin(&w);
		for (long i = 0; i < nr; i++) {
			jw_obj_begin(&w);
			jw_key(&w, "index");
			jw_int(&w, i);
			jw_key(&w, "object");
			jw_str(&w, "score");
			jw_key(&w, "score");
			jw_double(&w, res[i].score);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		write_usage(&w, tokens, 0);
	}
	jw_obj_end(&w);
	free(res);
	json_doc_free(doc);
	respond(s, r, "application/json");
}

/* ---- tokenize and detokenize */

typedef struct tok_acc {
	json_w *w;
	size_t count;
} tok_acc;

static void tok_word(void *arg, const char *wd, size_t n)
{
	tok_acc *t = arg;
	uint32_t id = word_id(wd, n);
	vocab_learn(id, wd, n);
	jw_uint(t->w, id);
	t->count++;
}

/* POST /tokenize: {prompt} or {messages} (each message's text content). */
static void handle_tokenize(sim_server *s, httpd_req *r)
{
	oai_err e;
	const char *model;
	json_doc *doc = parse_request(s, r, &model, &e);
	if (!doc) {
		fail(r, &e);
		return;
	}
	const json_val *root = json_root(doc), *prompt = json_get(root, "prompt"), *msgs = json_get(root, "messages");
	if (oai_absent(prompt) && oai_absent(msgs)) {
		json_doc_free(doc);
		httpd_error(r, 400, "Either `prompt` or `messages` is required.", NULL);
		return;
	}
	if (!oai_absent(prompt) && !json_is(prompt, JSON_STRING)) {
		json_doc_free(doc);
		httpd_error(r, 400, "prompt: Input should be a valid string", "prompt");
		return;
	}
	if (oai_absent(prompt) && oai_parse_messages(root, 1, &msgs, &e) < 0) {
		json_doc_free(doc);
		fail(r, &e);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "tokens");
	jw_arr_begin(&w);
	tok_acc t = {.w = &w};
	if (!oai_absent(prompt)) {
		for_words(prompt->u.str.s, prompt->u.str.len, tok_word, &t);
	} else {
		for (size_t i = 0; i < json_count(msgs); i++) {
			const json_val *c = json_get(json_at(msgs, i), "content");
			if (json_is(c, JSON_STRING)) {
				for_words(c->u.str.s, c->u.str.len, tok_word, &t);
			} else if (json_is(c, JSON_ARRAY)) {
				for (size_t k = 0; k < json_count(c); k++) {
					const json_val *tx = json_get(json_at(c, k), "text");
					if (json_is(tx, JSON_STRING)) for_words(tx->u.str.s, tx->u.str.len, tok_word, &t);
				}
			}
		}
	}
	jw_arr_end(&w);
	jw_key(&w, "count");
	jw_uint(&w, t.count);
	jw_key(&w, "max_model_len");
	jw_uint(&w, s->cfg.max_model_len);
	jw_key(&w, "token_strs");
	jw_null(&w);
	jw_obj_end(&w);
	json_doc_free(doc);
	respond(s, r, "application/json");
}

/* POST /detokenize: {tokens} → {prompt}, the words joined by spaces. An id this
 * process never produced is a 400 (the words behind hashes are not known). */
static void handle_detokenize(sim_server *s, httpd_req *r)
{
	oai_err e;
	const char *model;
	json_doc *doc = parse_request(s, r, &model, &e);
	if (!doc) {
		fail(r, &e);
		return;
	}
	const json_val *toks = json_get(json_root(doc), "tokens");
	if (!json_is(toks, JSON_ARRAY)) {
		json_doc_free(doc);
		httpd_error(r, 400, "tokens: Input should be a valid list", "tokens");
		return;
	}
	buf text;
	buf_init(&text, 16 * 1024 * 1024);
	for (size_t i = 0; i < json_count(toks); i++) {
		int64_t id = -1;
		const char *wd = NULL;
		if (json_int64(json_at(toks, i), &id) < 0 || id < 0 || id > INT32_MAX || !(wd = vocab_word((uint32_t)id))) {
			char msg[96];
			if (json_is(json_at(toks, i), JSON_NUMBER))
				snprintf(msg, sizeof(msg), "Token id %" PRId64 " is out of vocabulary", id);
			else
				snprintf(msg, sizeof(msg), "tokens: Input should be a list of integers");
			buf_free(&text);
			json_doc_free(doc);
			httpd_error(r, 400, msg, "tokens");
			return;
		}
		if (i) buf_append(&text, " ", 1);
		buf_append(&text, wd, strlen(wd));
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "prompt");
	jw_strn(&w, buf_rptr(&text), buf_rlen(&text));
	jw_obj_end(&w);
	buf_free(&text);
	json_doc_free(doc);
	respond(s, r, "application/json");
}

/* ---- the Responses API */

#define RESPONSES_KEPT 64 /* stored responses GET can return (the oldest go) */

/* A stored response: its id and its final JSON. Owner: the ring below. */
typedef struct stored_response {
	char id[48];
	char *json;
	size_t len;
} stored_response;

static stored_response kept[RESPONSES_KEPT];
static size_t kept_next;

static void keep_response(const char *id, const char *json, size_t len)
{
	stored_response *k = &kept[kept_next++ % RESPONSES_KEPT];
	free(k->json);
	k->json = malloc(len);
	if (!k->json) {
		k->id[0] = 0;
		return;
	}
	memcpy(k->json, json, len);
	k->len = len;
	str_copy(k->id, id, sizeof(k->id));
}

static const stored_response *find_response(const char *id, size_t n)
{
	for (size_t i = 0; i < RESPONSES_KEPT; i++)
		if (kept[i].json && strlen(kept[i].id) == n && !memcmp(kept[i].id, id, n)) return &kept[i];
	return NULL;
}

/* One response being made. Owner: itself (freed when written, or on close). */
typedef struct resp_call {
	sim_server *s;
	httpd_req *r;
	char id[48], msg_id[48];
	const char *model;
	int64_t created;
	int store;
	buf text;                                /* the output text, generated up front */
	size_t word_end[SIM_MAX_RESPONSE_WORDS]; /* end offset of each output word in text */
	size_t n_words, sent;
	uint64_t input_tokens;
	char *instructions; /* NULL or a copy */
	uint64_t timer;
	int seq; /* sequence_number of the next event */
} resp_call;

static void resp_free(resp_call *c)
{
	if (c->timer) ev_timer_del(c->s->loop, c->timer);
	buf_free(&c->text);
	free(c->instructions);
	free(c);
}

static void feed_words(void *arg, const char *w, size_t n)
{
	sim_text_feed(arg, NULL, w, n);
}

/* Feeds the input (a string, or a list of message items with string or
 * input_text content) into t; returns the words read, or -1 with e set. */
static long feed_input(sim_text *t, const json_val *in, oai_err *e)
{
	long words = 0;
	if (json_is(in, JSON_STRING)) return (long)for_words(in->u.str.s, in->u.str.len, feed_words, t);
	if (!json_is(in, JSON_ARRAY)) return oai_fail(e, 400, "input", "input: Input should be a string or a list of items");
	for (size_t i = 0; i < json_count(in); i++) {
		const json_val *item = json_at(in, i), *c = json_get(item, "content");
		if (!json_is(item, JSON_OBJECT)) return oai_fail(e, 400, "input", "input[%zu]: Input should be an object", i);
		sim_text_break(t);
		if (json_is(c, JSON_STRING)) {
			words += (long)for_words(c->u.str.s, c->u.str.len, feed_words, t);
		} else if (json_is(c, JSON_ARRAY)) {
			for (size_t k = 0; k < json_count(c); k++) {
				const json_val *part = json_at(c, k), *tx = json_get(part, "text");
				const char *type = json_str(json_get(part, "type"), "");
				if (strcmp(type, "input_text") && strcmp(type, "output_text") && strcmp(type, "text"))
					return oai_fail(e, 400, "input", "input[%zu].content[%zu]: type '%s' is not supported by this text model", i, k, type);
				if (json_is(tx, JSON_STRING)) words += (long)for_words(tx->u.str.s, tx->u.str.len, feed_words, t);
			}
		} else if (!oai_absent(c)) {
			return oai_fail(e, 400, "input", "input[%zu].content: Input should be a string or a list", i);
		}
	}
	return words;
}

/* One output_text content part: the whole text (done) or "" (just added). */
static void write_output_text(const resp_call *c, json_w *w, int with_text)
{
	jw_obj_begin(w);
	jw_key(w, "type");
	jw_str(w, "output_text");
	jw_key(w, "text");
	if (with_text) jw_strn(w, buf_rptr(&c->text), buf_rlen(&c->text));
	else jw_str(w, "");
	jw_key(w, "annotations");
	jw_arr_begin(w);
	jw_arr_end(w);
	jw_obj_end(w);
}

/* The response object; status "in_progress" (no output yet) or "completed". */
static void write_response(const resp_call *c, json_w *w, int completed)
{
	jw_obj_begin(w);
	jw_key(w, "id");
	jw_str(w, c->id);
	jw_key(w, "object");
	jw_str(w, "response");
	jw_key(w, "created_at");
	jw_int(w, c->created);
	jw_key(w, "status");
	jw_str(w, completed ? "completed" : "in_progress");
	jw_key(w, "error");
	jw_null(w);
	jw_key(w, "incomplete_details");
	jw_null(w);
	jw_key(w, "instructions");
	jw_str(w, c->instructions);
	jw_key(w, "model");
	jw_str(w, c->model);
	jw_key(w, "output");
	jw_arr_begin(w);
	if (completed) {
		jw_obj_begin(w);
		jw_key(w, "type");
		jw_str(w, "message");
		jw_key(w, "id");
		jw_str(w, c->msg_id);
		jw_key(w, "status");
		jw_str(w, "completed");
		jw_key(w, "role");
		jw_str(w, "assistant");
		jw_key(w, "content");
		jw_arr_begin(w);
		write_output_text(c, w, 1);
		jw_arr_end(w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "parallel_tool_calls");
	jw_bool(w, 1);
	jw_key(w, "tool_choice");
	jw_str(w, "auto");
	jw_key(w, "tools");
	jw_arr_begin(w);
	jw_arr_end(w);
	jw_key(w, "store");
	jw_bool(w, c->store);
	jw_key(w, "text");
	jw_raw(w, "{\"format\":{\"type\":\"text\"}}", 26);
	jw_key(w, "usage");
	if (completed) {
		jw_obj_begin(w);
		jw_key(w, "input_tokens");
		jw_uint(w, c->input_tokens);
		jw_key(w, "input_tokens_details");
		jw_raw(w, "{\"cached_tokens\":0}", 19);
		jw_key(w, "output_tokens");
		jw_uint(w, c->n_words);
		jw_key(w, "output_tokens_details");
		jw_raw(w, "{\"reasoning_tokens\":0}", 22);
		jw_key(w, "total_tokens");
		jw_uint(w, c->input_tokens + c->n_words);
		jw_obj_end(w);
	} else {
		jw_null(w);
	}
	jw_obj_end(w);
}

/* Writes one typed event (event: TYPE, data: {"type": TYPE, "sequence_number": N, ...}).
 * body writes the other members into w. Returns httpd_stream_write's result. */
typedef void event_body_fn(resp_call *c, json_w *w, const void *arg);

static int send_event(resp_call *c, const char *type, event_body_fn *body, const void *arg)
{
	sim_server *s = c->s;
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "type");
	jw_str(&w, type);
	jw_key(&w, "sequence_number");
	jw_int(&w, c->seq++);
	body(c, &w, arg);
	jw_obj_end(&w);
	buf_reset(&s->event);
	sse_write_event(&s->event, type, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
	return httpd_stream_write(c->r, buf_rptr(&s->event), buf_rlen(&s->event));
}

static void ev_response(resp_call *c, json_w *w, const void *arg)
{
	jw_key(w, "response");
	write_response(c, w, *(const int *)arg);
}

static void message_item(resp_call *c, json_w *w, int done)
{
	jw_key(w, "output_index");
	jw_int(w, 0);
	jw_key(w, "item");
	jw_obj_begin(w);
	jw_key(w, "type");
	jw_str(w, "message");
	jw_key(w, "id");
	jw_str(w, c->msg_id);
	jw_key(w, "status");
	jw_str(w, done ? "completed" : "in_progress");
	jw_key(w, "role");
	jw_str(w, "assistant");
	jw_key(w, "content");
	jw_arr_begin(w);
	if (done) {
		write_output_text(c, w, 1);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

static void ev_item(resp_call *c, json_w *w, const void *arg) { message_item(c, w, *(const int *)arg); }

static void where(resp_call *c, json_w *w)
{
	jw_key(w, "item_id");
	jw_str(w, c->msg_id);
	jw_key(w, "output_index");
	jw_int(w, 0);
	jw_key(w, "content_index");
	jw_int(w, 0);
}

static void ev_part(resp_call *c, json_w *w, const void *arg)
{
	int done = *(const int *)arg;
	where(c, w);
	jw_key(w, "part");
	write_output_text(c, w, done);
}

static void ev_delta(resp_call *c, json_w *w, const void *arg)
{
	size_t i = *(const size_t *)arg, b = i ? c->word_end[i - 1] : 0;
	where(c, w);
	jw_key(w, "delta");
	jw_strn(w, buf_rptr(&c->text) + b, c->word_end[i] - b);
	jw_key(w, "logprobs");
	jw_arr_begin(w);
	jw_arr_end(w);
}

static void ev_text_done(resp_call *c, json_w *w, const void *arg)
{
	where(c, w);
	jw_key(w, "text");
	jw_strn(w, buf_rptr(&c->text), buf_rlen(&c->text));
	jw_key(w, "logprobs");
	jw_arr_begin(w);
	jw_arr_end(w);
}

static void resp_on_close(httpd_req *r, void *arg) { resp_free(arg); }

/* Stores the completed response when asked to (store, default true). */
static void resp_store(resp_call *c)
{
	if (!c->store) return;
	json_w w;
	buf_reset(&c->s->scratch);
	jw_init(&w, &c->s->scratch);
	write_response(c, &w, 1);
	keep_response(c->id, buf_rptr(&c->s->scratch), buf_rlen(&c->s->scratch));
}

/* The stream's next step: the opening events, one delta per word, then the
 * closing events. */
static int64_t resp_tick(ev_loop *loop, uint64_t id, void *arg)
{
	resp_call *c = arg;
	static const int no = 0, yes = 1;
	int rc = 0;
	c->timer = 0;
	if (c->sent == 0 && c->seq == 0) {
		rc |= send_event(c, "response.created", ev_response, &no);
		rc |= send_event(c, "response.in_progress", ev_response, &no);
		rc |= send_event(c, "response.output_item.added", ev_item, &no);
		rc |= send_event(c, "response.content_part.added", ev_part, &no);
	}
	if (rc == 0 && c->sent < c->n_words) {
		rc |= send_event(c, "response.output_text.delta", ev_delta, &c->sent);
		c->sent++;
	}
	if (rc < 0) return -1; /* the client is gone: on_close frees */
	if (c->sent < c->n_words) {
		c->timer = ev_timer_add(loop, (uint64_t)(c->s->cfg.engine.itl_ms > 0 ? c->s->cfg.engine.itl_ms : 0), resp_tick, c);
		return -1;
	}
	rc |= send_event(c, "response.output_text.done", ev_text_done, NULL);
	rc |= send_event(c, "response.content_part.done", ev_part, &yes);
	rc |= send_event(c, "response.output_item.done", ev_item, &yes);
	rc |= send_event(c, "response.completed", ev_response, &yes);
	if (rc < 0) return -1;
	resp_store(c);
	httpd_on_close(c->r, NULL, NULL);
	httpd_stream_end(c->r);
	resp_free(c);
	return -1;
}

/* POST /v1/responses */
static void handle_responses_create(sim_server *s, httpd_req *r)
{
	oai_err e;
	const char *model;
	json_doc *doc = parse_request(s, r, &model, &e);
	if (!doc) {
		fail(r, &e);
		return;
	}
	const json_val *root = json_root(doc), *instr = json_get(root, "instructions");
	int stream = 0, store = 1, background = 0;
	int64_t max_out = SIM_RESPONSE_WORDS;
	int bad = oai_get_bool(root, "stream", 0, &stream, &e) < 0 || oai_get_bool(root, "store", 1, &store, &e) < 0 ||
		  oai_get_bool(root, "background", 0, &background, &e) < 0 ||
		  oai_get_int(root, "max_output_tokens", SIM_RESPONSE_WORDS, &max_out, &e) < 0;
	if (!bad && (max_out < 1 || max_out > SIM_MAX_RESPONSE_WORDS))
		bad = oai_fail(&e, 400, "max_output_tokens", "max_output_tokens must be between 1 and %d, got %" PRId64 ".",
			       SIM_MAX_RESPONSE_WORDS, max_out) < 0;
	if (!bad && background)
		bad = oai_fail(&e, 400, "background", "background responses are not supported by infergate-sim.") < 0;
	if (!bad && !oai_absent(instr) && !json_is(instr, JSON_STRING))
		bad = oai_fail(&e, 400, "instructions", "instructions: Input should be a valid string") < 0;
	resp_call *c = bad ? NULL : calloc(1, sizeof(*c));
	if (!bad && !c) bad = oai_fail(&e, 500, NULL, "out of memory") < 0;
	sim_text t;
	sim_text_init(&t);
	long words = 0;
	if (!bad && !oai_absent(instr)) words += (long)for_words(instr->u.str.s, instr->u.str.len, feed_words, &t);
	long in_words = bad ? -1 : feed_input(&t, json_get(root, "input"), &e);
	if (bad || in_words < 0) {
		free(c);
		json_doc_free(doc);
		fail(r, &e);
		return;
	}
	c->s = s;
	c->r = r;
	c->model = model;
	c->store = store;
	c->created = (int64_t)time_wall_s();
	c->input_tokens = (uint64_t)(words + in_words);
	if (json_is(instr, JSON_STRING)) c->instructions = strdup(instr->u.str.s);
	uint64_t h = hash64(&s->id_seq, sizeof(s->id_seq), s->id_salt);
	s->id_seq++;
	snprintf(c->id, sizeof(c->id), "resp_%016" PRIx64, h);
	snprintf(c->msg_id, sizeof(c->msg_id), "msg_%016" PRIx64, h);
	buf_init(&c->text, SIM_MAX_RESPONSE_WORDS * 64);
	sim_text_break(&t);
	while (c->n_words < (size_t)max_out) {
		if (sim_text_next(&t, NULL, &c->text) < 0) break;
		c->word_end[c->n_words++] = buf_rlen(&c->text);
		if (sim_text_eos(&t)) break;
	}
	json_doc_free(doc);
	if (!stream) {
		json_w w;
		buf_reset(&s->scratch);
		jw_init(&w, &s->scratch);
		write_response(c, &w, 1);
		if (c->store) keep_response(c->id, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
		respond(s, r, "application/json");
		resp_free(c);
		return;
	}
	if (httpd_stream_start(r, 200, "text/event-stream", s->region_hdr, -1) < 0) {
		resp_free(c);
		return;
	}
	httpd_on_close(r, resp_on_close, c);
	c->timer = ev_timer_add(s->loop, (uint64_t)(s->cfg.engine.ttft_ms > 0 ? s->cfg.engine.ttft_ms : 0), resp_tick, c);
}

/* GET /v1/responses/{id} and POST /v1/responses/{id}/cancel. */
static void handle_response_id(sim_server *s, httpd_req *r, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	int cancel = slash && !strcmp(slash, "/cancel");
	if (slash && !cancel) {
		httpd_error(r, 404, "Not Found", NULL);
		return;
	}
	if (!httpd_method_or_405(r, cancel ? "POST" : "GET")) return;
	const stored_response *k = find_response(rest, n);
	if (!k) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Response with id '%.*s' not found.", (int)MIN(n, 64), rest);
		httpd_error(r, 404, msg, NULL);
		return;
	}
	if (cancel) { /* every stored response has completed */
		httpd_error(r, 400, "Cannot cancel a response that is not running in the background.", NULL);
		return;
	}
	httpd_respond(r, 200, "application/json", s->region_hdr, k->json, k->len);
}

/* ---- audio */

/* POST /v1/audio/transcriptions (translate 0) and /v1/audio/translations. */
static void handle_audio(sim_server *s, httpd_req *r, int translate)
{
	size_t len, ctl = 0;
	const char *body = httpd_body(r, &len), *ct = httpd_header(r, "content-type", &ctl), *b;
	size_t bl;
	if (!ct || multipart_boundary(ct, ctl, &b, &bl) != 1) {
		httpd_error(r, 400, "The request must be multipart/form-data with a boundary.", NULL);
		return;
	}
	multipart_iter it;
	multipart_part p;
	const char *file = NULL, *model_v = NULL, *fmt_v = NULL, *lang_v = NULL;
	size_t file_len = 0, model_len = 0, fmt_len = 0, lang_len = 0;
	int rc;
	multipart_begin(&it, body, len, b, bl);
	while ((rc = multipart_next(&it, &p)) == 1) {
		if (!p.name) continue;
#define FIELD(nm, v, vl) \
	if (p.name_len == sizeof(nm) - 1 && !memcmp(p.name, nm, p.name_len)) { \
		v = p.data; \
		vl = p.len; \
	}
		FIELD("file", file, file_len)
		FIELD("model", model_v, model_len)
		FIELD("response_format", fmt_v, fmt_len)
		FIELD("language", lang_v, lang_len)
#undef FIELD
	}
	if (rc < 0) {
		httpd_error(r, 400, "The multipart body is malformed.", NULL);
		return;
	}
	if (!file) {
		httpd_error(r, 400, "file: Field required", "file");
		return;
	}
	char model_buf[256];
	const char *model = NULL;
	if (model_v) {
		if (model_len >= sizeof(model_buf) || memchr(model_v, 0, model_len)) {
			httpd_error(r, 400, "model: Input should be a valid string", "model");
			return;
		}
		memcpy(model_buf, model_v, model_len);
		model_buf[model_len] = 0;
	}
	model = sim_server_model(s, model_v ? model_buf : NULL);
	if (!model) {
		oai_err e;
		oai_fail_model(&e, model_buf);
		fail(r, &e);
		return;
	}
	enum { JSON_FMT,
	       TEXT_FMT,
	       VERBOSE_FMT } fmt = JSON_FMT;
	if (fmt_v) {
		if (fmt_len == 4 && !memcmp(fmt_v, "text", 4)) fmt = TEXT_FMT;
		else if (fmt_len == 12 && !memcmp(fmt_v, "verbose_json", 12)) fmt = VERBOSE_FMT;
		else if (!(fmt_len == 4 && !memcmp(fmt_v, "json", 4))) {
			httpd_error(r, 400, "response_format must be json, text or verbose_json.", "response_format");
			return;
		}
	}
	/* Two words a second of 16-bit 16 kHz mono after a 44-byte WAV header. */
	double seconds = file_len > 44 ? (double)(file_len - 44) / 32000.0 : 0;
	size_t words = (size_t)(seconds * 2 + 1);
	if (words > SIM_TRANSCRIPT_WORDS) words = SIM_TRANSCRIPT_WORDS;
	sim_text t;
	sim_text_init(&t);
	char seed[32];
	int sl = snprintf(seed, sizeof(seed), "%s%016" PRIx64, translate ? "en:" : "",
			  hash64(file, file_len, 0x5eed));
	sim_text_feed(&t, NULL, seed, (size_t)sl);
	sim_text_break(&t);
	buf text;
	buf_init(&text, SIM_TRANSCRIPT_WORDS * 64);
	for (size_t i = 0; i < words; i++)
		if (sim_text_next(&t, NULL, &text) < 0) break;
	if (fmt == TEXT_FMT) {
		httpd_respond(r, 200, "text/plain; charset=utf-8", s->region_hdr, buf_rptr(&text), buf_rlen(&text));
		buf_free(&text);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	if (fmt == VERBOSE_FMT) {
		jw_key(&w, "task");
		jw_str(&w, translate ? "translate" : "transcribe");
		jw_key(&w, "language");
		if (translate || !lang_v) jw_str(&w, "en");
		else jw_strn(&w, lang_v, MIN(lang_len, 16));
		jw_key(&w, "duration");
		jw_double(&w, seconds);
		jw_key(&w, "segments");
		jw_arr_begin(&w);
		jw_arr_end(&w);
	}
	jw_key(&w, "text");
	jw_strn(&w, buf_rptr(&text), buf_rlen(&text));
	jw_key(&w, "usage");
	jw_obj_begin(&w);
	jw_key(&w, "type");
	jw_str(&w, "duration");
	jw_key(&w, "seconds");
	jw_int(&w, (int64_t)(seconds + 0.999));
	jw_obj_end(&w);
	jw_obj_end(&w);
	buf_free(&text);
	respond(s, r, "application/json");
}

/* ---- routing */

int sim_apis_handle(sim_server *s, httpd_req *r, const char *path)
{
	/* The /v1 paths were checked by the caller; the others here need the key too. */
	if (s->cfg.api_key && strncmp(path, "/v1", 3) && strcmp(path, "/ping") && !httpd_bearer_is(r, s->cfg.api_key)) {
		static const char *const guarded[] = {"/pooling", "/classify", "/score", "/rerank", "/v2/rerank",
						      "/tokenize", "/detokenize", NULL};
		for (int i = 0; guarded[i]; i++)
			if (!strcmp(path, guarded[i])) {
				httpd_error(r, 401, "Unauthorized", NULL);
				return 1;
			}
	}
	if (!strcmp(path, "/v1/embeddings")) {
		if (httpd_method_or_405(r, "POST")) handle_embeddings(s, r, 0);
	} else if (!strcmp(path, "/pooling")) {
		if (httpd_method_or_405(r, "POST")) handle_embeddings(s, r, 1);
	} else if (!strcmp(path, "/classify")) {
		if (httpd_method_or_405(r, "POST")) handle_embeddings(s, r, 2);
	} else if (!strcmp(path, "/score") || !strcmp(path, "/v1/score")) {
		if (httpd_method_or_405(r, "POST")) handle_score(s, r, 0);
	} else if (!strcmp(path, "/rerank") || !strcmp(path, "/v1/rerank") || !strcmp(path, "/v2/rerank")) {
		if (httpd_method_or_405(r, "POST")) handle_score(s, r, 1);
	} else if (!strcmp(path, "/tokenize")) {
		if (httpd_method_or_405(r, "POST")) handle_tokenize(s, r);
	} else if (!strcmp(path, "/detokenize")) {
		if (httpd_method_or_405(r, "POST")) handle_detokenize(s, r);
	} else if (!strcmp(path, "/v1/responses")) {
		if (httpd_method_or_405(r, "POST")) handle_responses_create(s, r);
	} else if (!strncmp(path, "/v1/responses/", 14) && path[14]) {
		handle_response_id(s, r, path + 14);
	} else if (!strcmp(path, "/v1/audio/transcriptions")) {
		if (httpd_method_or_405(r, "POST")) handle_audio(s, r, 0);
	} else if (!strcmp(path, "/v1/audio/translations")) {
		if (httpd_method_or_405(r, "POST")) handle_audio(s, r, 1);
	} else if (!strcmp(path, "/ping")) {
		if (httpd_method_is(r, "GET") || httpd_method_is(r, "POST")) httpd_respond(r, 200, NULL, s->region_hdr, "", 0);
		else httpd_error(r, 405, "Method Not Allowed", NULL);
	} else {
		return 0;
	}
	return 1;
}
