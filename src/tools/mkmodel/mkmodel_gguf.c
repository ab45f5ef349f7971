/*
 * mkmodel_gguf.c — infergate-mkmodel --format gguf: a random-weight Gemma 3
 * written as llama.cpp's converter writes one (architecture "gemma3", its
 * tensor names, norms stored as 1 + w, the SentencePiece-style "llama"
 * vocabulary with scores and token types, tokenizer.chat_template).
 *
 * The vocabulary is the real Gemma 3 one, read from the tokenizer folder's
 * tokenizer.json: pieces by id; added tokens marked special become control
 * tokens (type 3), other added tokens user-defined (4), <0xNN> bytes (6),
 * <unk> unknown (2), the rest normal (1) with score -id (earlier pieces merge
 * first, as SentencePiece's BPE scores order them).
 *
 * Weights: every matrix in the chosen type; a matrix whose rows do not fill
 * whole blocks of that type falls back to Q4_0 (for Q4_K), Q8_0 (for Q6_K)
 * or F16, as llama.cpp's quantizer falls back; norms in F32. Values are drawn
 * as the safetensors writer draws them and quantized row by row, so memory
 * is a few MB whatever the shape (27B at Q4_0 streams ~16 GB to disk); the
 * matrices of 4B and larger repeat rows of a random bank (see below).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/gguf.h"
#include "infer/kernels.h"
#include "infer/quant.h"
#include "mkmodel.h"

#define ALIGN 32
#define BANK_ROWS 256
#define BANK_MIN_ELEMS (1ull << 24)       /* 4B's layers and up */
#define BANK_MIN_ELEMS_EMBED (1ull << 28) /* 4B's embedding and up, not 270m's or 1B's */

typedef struct gtensor {
	char name[96];
	int rows, cols; /* cols 0: a vector of rows elements */
	float mean, std;
	int norm;      /* stored as 1 + (mean + std * z) in F32 */
	uint32_t type; /* ggml type */
	uint64_t nbytes, offset;
} gtensor;

static const struct {
	const char *name;
	uint32_t ggml;
	uint32_t ftype;
} types[] = {
	{"f32", GGML_T_F32, 0},
	{"f16", GGML_T_F16, 1},
	{"bf16", GGML_T_BF16, 32},
	{"q8_0", GGML_T_Q8_0, 7},
	{"q4_0", GGML_T_Q4_0, 2},
	{"q4_k", GGML_T_Q4_K, 15},
	{"q6_k", GGML_T_Q6_K, 18},
};

/* ---------------------------------------------------------------- header writing */

static void put_u32(buf *b, uint32_t v)
{
	unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
	buf_append(b, le, 4);
}

static void put_u64(buf *b, uint64_t v)
{
	unsigned char le[8];
	for (int i = 0; i < 8; i++) le[i] = (unsigned char)(v >> (8 * i));
	buf_append(b, le, 8);
}

static void put_f32(buf *b, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	put_u32(b, u);
}

static void put_str(buf *b, const char *s, size_t n)
{
	put_u64(b, n);
	buf_append(b, s, n);
}

static void kv_head(buf *b, const char *key, uint32_t type)
{
	put_str(b, key, strlen(key));
	put_u32(b, type);
}

static void kv_u32(buf *b, const char *key, uint32_t v)
{
	kv_head(b, key, GGUF_U32);
	put_u32(b, v);
}
static void kv_f32(buf *b, const char *key, float v)
{
	kv_head(b, key, GGUF_F32);
	put_f32(b, v);
}
static void kv_bool(buf *b, const char *key, int v)
{
	kv_head(b, key, GGUF_BOOL);
	buf_append(b, v ? "\1" : "\0", 1);
}
static void kv_str(buf *b, const char *key, const char *s, size_t n)
{
	kv_head(b, key, GGUF_STRING);
	put_str(b, s, n);
}

/* ---------------------------------------------------------------- values */

static void f32_to_type(uint32_t t, void *dst, const float *src, size_t n)
{
	unsigned char *d = dst;
	for (size_t i = 0; i < n; i++) {
		if (t == GGML_T_F32) {
			memcpy(d + 4 * i, &src[i], 4);
			continue;
		}
		uint16_t h = t == GGML_T_BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
		d[2 * i] = (unsigned char)h;
		d[2 * i + 1] = (unsigned char)(h >> 8);
	}
}

/* One row of n values into dst in ggml type t (quant.h's quantizers for the
 * block types: the engine's types are ggml's layouts byte for byte). */
static void encode_row(uint32_t t, void *dst, const float *src, size_t n)
{
	switch (t) {
	case GGML_T_Q8_0: quant_quantize_row(DTYPE_Q8_0, dst, src, n); return;
	case GGML_T_Q4_0: quant_quantize_row(DTYPE_Q4_0, dst, src, n); return;
	case GGML_T_Q4_K: quant_quantize_row(DTYPE_Q4_K, dst, src, n); return;
	case GGML_T_Q6_K: quant_quantize_row(DTYPE_Q6_K, dst, src, n); return;
	default: f32_to_type(t, dst, src, n);
	}
}

/* n normal draws: mean + std * z. */
static void draw_f32(float *out, size_t n, float mean, float std)
{
	for (size_t i = 0; i < n; i += 4) {
		uint64_t r = rng_next();
		for (size_t j = 0; j < 4 && i + j < n; j++, r >>= 16) out[i + j] = mean + std * normal_q[r & 0xffff];
	}
}

/* The type a matrix of rows of `cols` gets when `want` is asked for. */
static uint32_t type_for(uint32_t want, int cols)
{
	uint32_t be = gguf_ggml_block_elems(want);
	if (cols % (int)be == 0) return want;
	uint32_t fb = want == GGML_T_Q4_K ? GGML_T_Q4_0 : want == GGML_T_Q6_K ? GGML_T_Q8_0
									      : GGML_T_F16;
	if (cols % (int)gguf_ggml_block_elems(fb) == 0) return fb;
	return GGML_T_F16;
}

/* ---------------------------------------------------------------- vocabulary */

typedef struct vocab {
	json_doc *doc, *cdoc;
	const char **piece;
	size_t *len;
	int32_t *type;
	float *score;
	const char *tmpl;
	size_t tmpl_len;
} vocab;

static void vocab_free(vocab *v)
{
	json_doc_free(v->doc);
	json_doc_free(v->cdoc);
	free(v->piece);
	free(v->len);
	free(v->type);
	free(v->score);
}

static int vocab_load(vocab *v, const char *tokdir, int n)
{
	char path[PATH_MAX + 64], err[256];
	size_t len;
	memset(v, 0, sizeof *v);
	snprintf(path, sizeof path, "%s/tokenizer.json", tokdir);
	char *text = util_read_file(path, 512u << 20, &len, err, sizeof err);
	if (!text) return die("%s", err);
	json_error je;
	v->doc = json_parse(text, len, 0, &je);
	free(text);
	if (!v->doc) return die("%s: not valid JSON", path);
	v->piece = calloc((size_t)n, sizeof *v->piece);
	v->len = calloc((size_t)n, sizeof *v->len);
	v->type = calloc((size_t)n, sizeof *v->type);
	v->score = calloc((size_t)n, sizeof *v->score);
	if (!v->piece || !v->len || !v->type || !v->score) return die("%s", "out of memory");
	const json_val *root = json_root(v->doc), *vocab = json_get(json_get(root, "model"), "vocab");
	if (!json_is(vocab, JSON_OBJECT)) return die("%s: model.vocab is missing", path);
	for (size_t i = 0; i < vocab->u.obj.n; i++) {
		const json_member *m = &vocab->u.obj.members[i];
		if (!json_is(m->val, JSON_NUMBER) || !m->val->is_int || m->val->i < 0 || m->val->i >= n) continue;
		int id = (int)m->val->i;
		v->piece[id] = m->key;
		v->len[id] = m->key_len;
		v->type[id] = 1;
		v->score[id] = -(float)id;
	}
	const json_val *added = json_get(root, "added_tokens");
	for (size_t i = 0; i < json_count(added); i++) {
		const json_val *a = json_at(added, i), *idv = json_get(a, "id"), *cv = json_get(a, "content");
		if (!json_is(idv, JSON_NUMBER) || !idv->is_int || idv->i < 0 || idv->i >= n || !json_is(cv, JSON_STRING)) continue;
		int id = (int)idv->i;
		v->piece[id] = cv->u.str.s;
		v->len[id] = cv->u.str.len;
		v->type[id] = json_bool(json_get(a, "special"), 0) ? 3 : 4;
		v->score[id] = 0;
	}
	for (int id = 0; id < n; id++) {
		if (!v->piece[id]) {
			char msg[64];
			snprintf(msg, sizeof msg, "%d", id);
			return die("the tokenizer has no piece for id %s below the model's vocabulary size", msg);
		}
		const char *p = v->piece[id];
		if (v->len[id] == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>') {
			v->type[id] = 6;
			v->score[id] = 0;
		}
		if (v->len[id] == 5 && memcmp(p, "<unk>", 5) == 0) {
			v->type[id] = 2;
			v->score[id] = 0;
		}
	}
	snprintf(path, sizeof path, "%s/tokenizer_config.json", tokdir);
	text = util_read_file(path, 64u << 20, &len, err, sizeof err);
	if (!text) return die("%s", err);
	v->cdoc = json_parse(text, len, 0, &je);
	free(text);
	const json_val *t = v->cdoc ? json_get(json_root(v->cdoc), "chat_template") : NULL;
	if (!json_is(t, JSON_STRING)) return die("%s: no chat_template", path);
	v->tmpl = t->u.str.s;
	v->tmpl_len = t->u.str.len;
	return 0;
}

/* ---------------------------------------------------------------- the file */

int mkmodel_write_gguf(const char *path, const shape *s, const char *type_name, const char *tokdir, const char *shape_name)
{
	uint32_t want = UINT32_MAX, ftype = 0;
	for (size_t i = 0; i < ARRAY_LEN(types); i++)
		if (strcmp(type_name, types[i].name) == 0) {
			want = types[i].ggml;
			ftype = types[i].ftype;
		}
	if (want == UINT32_MAX) return die("unknown --type %s (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)", type_name);
	vocab v;
	if (vocab_load(&v, tokdir, s->vocab)) {
		vocab_free(&v);
		return 1;
	}

	int H = s->hidden, D = s->head_dim, I = s->intermediate, L = s->layers;
	size_t n_t = 2 + 13 * (size_t)L;
	gtensor *ts = calloc(n_t, sizeof *ts);
	if (!ts) {
		vocab_free(&v);
		return die("%s", "out of memory");
	}
	size_t k = 0;
	float sh = 1.0f / sqrtf((float)H), si = 1.0f / sqrtf((float)I), so = 1.0f / sqrtf((float)(s->heads * D));
#define T(nm, r, c, mu, sd, isnorm) \
	do { \
		gtensor *t_ = &ts[k++]; \
		snprintf(t_->name, sizeof t_->name, "%s", nm); \
		t_->rows = (r); \
		t_->cols = (c); \
		t_->mean = (mu); \
		t_->std = (sd); \
		t_->norm = (isnorm); \
	} while (0)
	/* 3x the safetensors writer's spread: logits a few units apart at the top, so
	 * greedy choices do not hinge on rounding differences between engines */
	T("token_embd.weight", s->vocab, H, 0, 6.0f * sh, 0);
	for (int l = 0; l < L; l++) {
		char n[96];
#define N(x) (snprintf(n, sizeof n, "blk.%d.%s.weight", l, x), n)
		T(N("attn_norm"), H, 0, 0, 0.1f, 1);
		T(N("attn_q"), s->heads * D, H, 0, sh, 0);
		T(N("attn_k"), s->kv_heads * D, H, 0, sh, 0);
		T(N("attn_v"), s->kv_heads * D, H, 0, sh, 0);
		T(N("attn_q_norm"), D, 0, 0, 0.1f, 1);
		T(N("attn_k_norm"), D, 0, 0, 0.1f, 1);
		T(N("attn_output"), H, s->heads * D, 0, so, 0);
		T(N("post_attention_norm"), H, 0, 1.0f, 0.1f, 1);
		T(N("ffn_norm"), H, 0, 0, 0.1f, 1);
		T(N("ffn_gate"), I, H, 0, sh, 0);
		T(N("ffn_up"), I, H, 0, sh, 0);
		T(N("ffn_down"), H, I, 0, si, 0);
		T(N("post_ffw_norm"), H, 0, 1.0f, 0.1f, 1);
#undef N
	}
	T("output_norm.weight", H, 0, 0, 0.1f, 1);
#undef T
	uint64_t off = 0, total = 0;
	for (size_t i = 0; i < n_t; i++) {
		gtensor *t = &ts[i];
		t->type = t->norm ? GGML_T_F32 : type_for(want, t->cols);
		uint64_t elems = (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1);
		t->nbytes = elems / gguf_ggml_block_elems(t->type) * gguf_ggml_block_bytes(t->type);
		t->offset = off;
		off += (t->nbytes + ALIGN - 1) / ALIGN * ALIGN;
		total += t->nbytes;
	}

	/* ---- header */
	buf h;
	buf_init(&h, 0);
	buf_append(&h, "GGUF", 4);
	put_u32(&h, 3);
	put_u64(&h, n_t);
	int n_kv = 0;
	buf kvb;
	buf_init(&kvb, 0);
	char name[128];
	snprintf(name, sizeof name, "infergate-mkmodel gemma3 %s random", shape_name);
	kv_str(&kvb, "general.architecture", "gemma3", 6);
	n_kv++;
	kv_str(&kvb, "general.name", name, strlen(name));
	n_kv++;
	kv_u32(&kvb, "general.alignment", ALIGN);
	n_kv++;
	kv_u32(&kvb, "general.file_type", ftype);
	n_kv++;
	kv_u32(&kvb, "general.quantization_version", 2);
	n_kv++;
	kv_u32(&kvb, "gemma3.context_length", (uint32_t)s->max_pos);
	n_kv++;
	kv_u32(&kvb, "gemma3.embedding_length", (uint32_t)H);
	n_kv++;
	kv_u32(&kvb, "gemma3.block_count", (uint32_t)L);
	n_kv++;
	kv_u32(&kvb, "gemma3.feed_forward_length", (uint32_t)I);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.head_count", (uint32_t)s->heads);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.head_count_kv", (uint32_t)s->kv_heads);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.key_length", (uint32_t)D);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.value_length", (uint32_t)D);
	n_kv++;
	kv_f32(&kvb, "gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.sliding_window", (uint32_t)s->window);
	n_kv++;
	kv_u32(&kvb, "gemma3.attention.sliding_window_pattern", (uint32_t)s->pattern);
	n_kv++;
	kv_f32(&kvb, "gemma3.rope.freq_base", 1000000.0f);
	n_kv++;
	kv_f32(&kvb, "gemma3.rope.freq_base_swa", 10000.0f);
	n_kv++;
	if (s->rope_scaling > 0) {
		kv_str(&kvb, "gemma3.rope.scaling.type", "linear", 6);
		n_kv++;
		kv_f32(&kvb, "gemma3.rope.scaling.factor", s->rope_scaling);
		n_kv++;
	}
	kv_str(&kvb, "tokenizer.ggml.model", "llama", 5);
	n_kv++;
	kv_head(&kvb, "tokenizer.ggml.tokens", GGUF_ARRAY);
	put_u32(&kvb, GGUF_STRING);
	put_u64(&kvb, (uint64_t)s->vocab);
	n_kv++;
	for (int i = 0; i < s->vocab; i++) put_str(&kvb, v.piece[i], v.len[i]);
	kv_head(&kvb, "tokenizer.ggml.scores", GGUF_ARRAY);
	put_u32(&kvb, GGUF_F32);
	put_u64(&kvb, (uint64_t)s->vocab);
	n_kv++;
	for (int i = 0; i < s->vocab; i++) put_f32(&kvb, v.score[i]);
	kv_head(&kvb, "tokenizer.ggml.token_type", GGUF_ARRAY);
	put_u32(&kvb, GGUF_I32);
	put_u64(&kvb, (uint64_t)s->vocab);
	n_kv++;
	for (int i = 0; i < s->vocab; i++) put_u32(&kvb, (uint32_t)v.type[i]);
	kv_u32(&kvb, "tokenizer.ggml.bos_token_id", 2);
	n_kv++;
	kv_u32(&kvb, "tokenizer.ggml.eos_token_id", 1);
	n_kv++;
	kv_u32(&kvb, "tokenizer.ggml.unknown_token_id", 3);
	n_kv++;
	kv_u32(&kvb, "tokenizer.ggml.padding_token_id", 0);
	n_kv++;
	if (s->vocab > 106) {
		kv_u32(&kvb, "tokenizer.ggml.eot_token_id", 106);
		n_kv++;
	}
	kv_bool(&kvb, "tokenizer.ggml.add_bos_token", 1);
	n_kv++;
	kv_bool(&kvb, "tokenizer.ggml.add_eos_token", 0);
	n_kv++;
	kv_bool(&kvb, "tokenizer.ggml.add_space_prefix", 0);
	n_kv++;
	kv_str(&kvb, "tokenizer.chat_template", v.tmpl, v.tmpl_len);
	n_kv++;
	put_u64(&h, (uint64_t)n_kv);
	buf_append(&h, buf_rptr(&kvb), buf_rlen(&kvb));
	buf_free(&kvb);
	vocab_free(&v);
	for (size_t i = 0; i < n_t; i++) {
		gtensor *t = &ts[i];
		put_str(&h, t->name, strlen(t->name));
		put_u32(&h, t->cols ? 2 : 1);
		put_u64(&h, (uint64_t)(t->cols ? t->cols : t->rows));
		if (t->cols) put_u64(&h, (uint64_t)t->rows);
		put_u32(&h, t->type);
		put_u64(&h, t->offset);
	}
	while (buf_rlen(&h) % ALIGN) buf_append(&h, "", 1);

	/* ---- data, tensor by tensor, a block of rows at a time */
	FILE *f = fopen(path, "wb");
	if (!f) {
		free(ts);
		buf_free(&h);
		return die("cannot write %s", path);
	}
	int ok = fwrite(buf_rptr(&h), 1, buf_rlen(&h), f) == buf_rlen(&h);
	buf_free(&h);
	enum { CHUNK_BYTES = 8 << 20 };
	int maxc = H > I ? H : I;
	if (s->heads * D > maxc) maxc = s->heads * D;
	float *row = malloc((size_t)maxc * sizeof *row);
	unsigned char *outb = malloc(CHUNK_BYTES);
	uint64_t at = 0;
	static const unsigned char zeros[ALIGN];
	for (size_t i = 0; i < n_t && ok && row && outb; i++) {
		gtensor *t = &ts[i];
		if (t->offset > at) {
			ok = fwrite(zeros, 1, (size_t)(t->offset - at), f) == t->offset - at;
			at = t->offset;
		}
		if (t->norm) {
			draw_f32(row, (size_t)t->rows, t->mean, t->std);
			for (int j = 0; j < t->rows; j++) row[j] += 1.0f;
			ok = ok && fwrite(row, 4, (size_t)t->rows, f) == (size_t)t->rows;
			at += t->nbytes;
			continue;
		}
		size_t row_bytes = (size_t)t->cols / gguf_ggml_block_elems(t->type) * gguf_ggml_block_bytes(t->type);
		size_t per = CHUNK_BYTES / row_bytes, fill = 0;
		if (per == 0) per = 1;
		/* Large matrices (4B and up) repeat rows of a bank of BANK_ROWS random
		 * rows in random order: drawing and quantizing 27e9 values would take
		 * far longer than writing them. Small shapes are drawn value by value,
		 * so their rows (the embedding's above all) never tie. */
		uint64_t elems = (uint64_t)t->rows * (uint64_t)t->cols;
		int banked = elems >= BANK_MIN_ELEMS && (i > 0 || elems >= BANK_MIN_ELEMS_EMBED) && t->rows > BANK_ROWS;
		unsigned char *bank = banked ? malloc(BANK_ROWS * row_bytes) : NULL;
		if (banked && !bank) ok = 0;
		for (int r = 0; banked && ok && r < BANK_ROWS; r++) {
			draw_f32(row, (size_t)t->cols, t->mean, t->std);
			encode_row(t->type, bank + (size_t)r * row_bytes, row, (size_t)t->cols);
		}
		for (int r = 0; r < t->rows && ok; r++) {
			if (bank) {
				memcpy(outb + fill * row_bytes, bank + (size_t)(rng_next() % BANK_ROWS) * row_bytes, row_bytes);
			} else {
				draw_f32(row, (size_t)t->cols, t->mean, t->std);
				encode_row(t->type, outb + fill * row_bytes, row, (size_t)t->cols);
			}
			if (++fill == per || r + 1 == t->rows) {
				ok = fwrite(outb, row_bytes, fill, f) == fill;
				fill = 0;
			}
		}
		free(bank);
		at += t->nbytes;
	}
	if (!row || !outb) ok = 0;
	free(row);
	free(outb);
	free(ts);
	if (fclose(f) != 0 || !ok) return die("cannot write %s", path);
	fprintf(stderr, "infergate-mkmodel: wrote %s (%d layers, hidden %d, vocab %d, %s, %.1f MB of weights)\n",
		path, L, H, s->vocab, type_name, (double)total / 1e6);
	return 0;
}
