/*
 * model_gguf.c — a Gemma 3 text model from a GGUF file (architecture
 * "gemma3", as llama.cpp's converter writes it); model_load calls it for a
 * .gguf path or a folder holding one.
 *
 * llama.cpp's conventions, which differ from the Hugging Face checkpoint:
 *   - tensor names token_embd, blk.N.attn_q / attn_k / attn_v / attn_output,
 *     attn_q_norm / attn_k_norm, attn_norm, post_attention_norm, ffn_norm,
 *     post_ffw_norm, ffn_gate / ffn_up / ffn_down, output_norm; an output
 *     tensor is ignored (Gemma 3 ties it to token_embd);
 *   - the RMSNorm weights are stored already as 1 + w;
 *   - Q and K are not permuted (RoPE rotates halves, as in the checkpoint);
 *   - the embedding scale is sqrt(H) in f32, the query scale 1/sqrt(head
 *     dim) except for the 62-layer 27B (1/sqrt(H / heads)), the sliding
 *     layers' RoPE base is rope.freq_base_swa (10000) with no scaling;
 *   - every attention.sliding_window_pattern-th layer (6) is full.
 * Other tensors (a multimodal file's vision tower) are ignored. Every value
 * is range-checked as config.json's are; an error names the file and the key
 * or tensor.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "infer/gguf.h"
#include "infer/model.h"

typedef struct gload {
	model *m;
	const gguf_set *g;
	const char *file;
	char *err;
	size_t errlen;
} gload;

/* gemma3.<key> as an integer in [lo, hi]; dflt when absent (dflt < lo: required). */
static int g_int(gload *L, const char *key, long dflt, long lo, long hi, int *out)
{
	char full[128];
	snprintf(full, sizeof full, "gemma3.%s", key);
	const gguf_kv *kv = gguf_find_kv(L->g, full);
	int64_t v;
	if (!kv) {
		if (dflt < lo) return util_errf(L->err, L->errlen, "%s: %s is missing", L->file, full);
		*out = (int)dflt;
		return 0;
	}
	if (gguf_kv_int(kv, &v) < 0 || v < lo || v > hi)
		return util_errf(L->err, L->errlen, "%s: %s must be an integer in [%ld, %ld]", L->file, full, lo, hi);
	*out = (int)v;
	return 0;
}

/* gemma3.<key> as a finite number > lo (or >= lo when lo_ok); dflt when absent
 * (NAN: required). */
static int g_float(gload *L, const char *key, double dflt, double lo, int lo_ok, float *out)
{
	char full[128];
	snprintf(full, sizeof full, "gemma3.%s", key);
	const gguf_kv *kv = gguf_find_kv(L->g, full);
	double v;
	if (!kv) {
		if (isnan(dflt)) return util_errf(L->err, L->errlen, "%s: %s is missing", L->file, full);
		*out = (float)dflt;
		return 0;
	}
	if (gguf_kv_float(kv, &v) < 0 || !isfinite(v) || v < lo || (!lo_ok && v == lo) || v > 1e30)
		return util_errf(L->err, L->errlen, "%s: %s must be a finite number %s %g", L->file, full, lo_ok ? ">=" : ">", lo);
	*out = (float)v;
	return 0;
}

static int parse_config(gload *L)
{
	model_config *c = &L->m->cfg;
	memset(c, 0, sizeof *c);
	const char *arch;
	size_t alen;
	if (gguf_kv_str(gguf_find_kv(L->g, "general.architecture"), &arch, &alen) < 0)
		return util_errf(L->err, L->errlen, "%s: general.architecture is missing", L->file);
	if (alen != 6 || memcmp(arch, "gemma3", 6) != 0)
		return util_errf(L->err, L->errlen, "%s: general.architecture \"%.*s\" is not supported (gemma3)", L->file,
				 (int)(alen > 40 ? 40 : alen), arch);
	snprintf(L->m->arch, sizeof L->m->arch, "gemma3");
	const gguf_kv *ff = gguf_find_kv(L->g, "gemma3.feed_forward_length");
	if (ff && ff->type == GGUF_ARRAY)
		return util_errf(L->err, L->errlen, "%s: gemma3.feed_forward_length per layer is not supported", L->file);
	if (g_int(L, "embedding_length", -1, 1, 1 << 16, &c->hidden) < 0 ||
	    g_int(L, "feed_forward_length", -1, 1, 1 << 20, &c->intermediate) < 0 ||
	    g_int(L, "block_count", -1, 1, MODEL_MAX_LAYERS, &c->n_layers) < 0 ||
	    g_int(L, "attention.head_count", -1, 1, 1024, &c->n_heads) < 0 ||
	    g_int(L, "attention.head_count_kv", c->n_heads, 1, 1024, &c->n_kv_heads) < 0 ||
	    g_int(L, "context_length", -1, 1, INT_MAX, &c->max_position) < 0)
		return -1;
	int kd, vd;
	if (g_int(L, "attention.key_length", c->hidden / c->n_heads, 2, 4096, &kd) < 0 ||
	    g_int(L, "attention.value_length", kd, 2, 4096, &vd) < 0)
		return -1;
	if (kd != vd)
		return util_errf(L->err, L->errlen, "%s: gemma3.attention.key_length %d differs from value_length %d", L->file, kd, vd);
	c->head_dim = kd;
	if (c->n_heads % c->n_kv_heads)
		return util_errf(L->err, L->errlen, "%s: gemma3.attention.head_count %d is not a multiple of head_count_kv %d",
				 L->file, c->n_heads, c->n_kv_heads);
	if (c->head_dim % 2) return util_errf(L->err, L->errlen, "%s: gemma3.attention.key_length must be even", L->file);
	if (g_float(L, "attention.layer_norm_rms_epsilon", NAN, 0, 0, &c->rms_eps) < 0 ||
	    g_float(L, "rope.freq_base", 10000.0, 0, 0, &c->rope_theta) < 0 ||
	    g_float(L, "rope.freq_base_swa", 10000.0, 0, 0, &c->rope_local_theta) < 0 ||
	    g_float(L, "final_logit_softcapping", 0, 0, 1, &c->final_softcap) < 0 ||
	    g_float(L, "attn_logit_softcapping", 0, 0, 1, &c->attn_softcap) < 0)
		return -1;
	/* rope scaling: "none" or "linear" with a factor >= 1 (full layers only) */
	c->rope_scaling = 1;
	const char *st = "none";
	size_t stl = 4;
	const gguf_kv *stk = gguf_find_kv(L->g, "gemma3.rope.scaling.type");
	if (stk && gguf_kv_str(stk, &st, &stl) < 0)
		return util_errf(L->err, L->errlen, "%s: gemma3.rope.scaling.type must be a string", L->file);
	float factor = 0;
	if (g_float(L, "rope.scaling.factor", 0, 0, 1, &factor) < 0) return -1;
	if (factor == 0 && g_float(L, "rope.scale_linear", 0, 0, 1, &factor) < 0) return -1;
	if (stl == 6 && memcmp(st, "linear", 6) == 0) {
		if (factor != 0 && factor < 1)
			return util_errf(L->err, L->errlen, "%s: gemma3.rope.scaling.factor must be >= 1", L->file);
		if (factor) c->rope_scaling = factor;
	} else if (!(stl == 4 && memcmp(st, "none", 4) == 0)) {
		return util_errf(L->err, L->errlen, "%s: gemma3.rope.scaling.type \"%.*s\" is not supported (none, linear)",
				 L->file, (int)(stl > 40 ? 40 : stl), st);
	}
	/* sliding layers: every pattern-th layer is full; no window = all full */
	int window = 0, pattern = 6;
	if (g_int(L, "attention.sliding_window", 0, 0, INT_MAX, &window) < 0) return -1;
	const gguf_kv *pk = gguf_find_kv(L->g, "gemma3.attention.sliding_window_pattern");
	if (pk && pk->type == GGUF_ARRAY) {
		if (pk->n != (uint64_t)c->n_layers)
			return util_errf(L->err, L->errlen, "%s: gemma3.attention.sliding_window_pattern must list %d layers", L->file, c->n_layers);
		for (int i = 0; i < c->n_layers; i++) {
			int64_t v;
			if (gguf_arr_int(pk, (uint64_t)i, &v) < 0)
				return util_errf(L->err, L->errlen, "%s: gemma3.attention.sliding_window_pattern must be booleans", L->file);
			c->sliding[i] = window > 0 && v != 0;
		}
	} else {
		if (g_int(L, "attention.sliding_window_pattern", 6, 1, MODEL_MAX_LAYERS, &pattern) < 0) return -1;
		for (int i = 0; i < c->n_layers; i++) c->sliding[i] = window > 0 && (i + 1) % pattern != 0;
	}
	c->sliding_window = window > 0 ? window : c->max_position;
	c->query_pre_attn_scalar = c->n_layers == 62 ? (float)(c->hidden / c->n_heads) : (float)c->head_dim;
	c->embed_scale = sqrtf((float)c->hidden);
	return 0;
}

/* The dtype of a ggml tensor type, or -1 (the reader refuses other types). */
static int dtype_of(uint32_t ggml_type, dtype *out)
{
	switch (ggml_type) {
	case GGML_T_F32: *out = DTYPE_F32; return 0;
	case GGML_T_F16: *out = DTYPE_F16; return 0;
	case GGML_T_BF16: *out = DTYPE_BF16; return 0;
	case GGML_T_Q8_0: *out = DTYPE_Q8_0; return 0;
	case GGML_T_Q4_0: *out = DTYPE_Q4_0; return 0;
	case GGML_T_Q4_K: *out = DTYPE_Q4_K; return 0;
	case GGML_T_Q6_K: *out = DTYPE_Q6_K; return 0;
	default: return -1;
	}
}

/* Binds name as [rows, cols] (cols 0: a vector of rows). */
static int g_bind(gload *L, tensor *out, const char *name, int rows, int cols)
{
	const gguf_tensor *t = gguf_find_tensor(L->g, name);
	if (!t) return util_errf(L->err, L->errlen, "%s: tensor %s is missing", L->file, name);
	const char *file = gguf_part_path(L->g, t->part);
	dtype dt;
	if (dtype_of(t->ggml_type, &dt) < 0)
		return util_errf(L->err, L->errlen, "%s: tensor %s: type %s is not supported by the engine", file, name,
				 gguf_ggml_type_name(t->ggml_type));
	int ok = cols ? (t->ndim == 2 && t->ne[0] == (uint64_t)cols && t->ne[1] == (uint64_t)rows)
		      : (t->ndim == 1 && t->ne[0] == (uint64_t)rows);
	if (!ok) {
		if (cols)
			return util_errf(L->err, L->errlen, "%s: tensor %s: shape [%llu, %llu] (ne0 first), the metadata implies [%d, %d]",
					 file, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], cols, rows);
		return util_errf(L->err, L->errlen, "%s: tensor %s: shape [%llu] with %d dimensions, the metadata implies [%d]",
				 file, name, (unsigned long long)t->ne[0], t->ndim, rows);
	}
	*out = (tensor){.data = t->data, .type = dt, .rows = cols ? rows : 1, .cols = cols ? cols : rows};
	L->m->weight_bytes += t->nbytes;
	return 0;
}

/* A norm vector, stored as 1 + w already: copied to f32 as it is. */
static int g_norm(gload *L, float **out, const char *name, int n)
{
	tensor t;
	if (g_bind(L, &t, name, n, 0) < 0) return -1;
	if (t.type != DTYPE_F32 && t.type != DTYPE_F16 && t.type != DTYPE_BF16)
		return util_errf(L->err, L->errlen, "%s: tensor %s: a norm must be F32, F16 or BF16", L->file, name);
	float *v = malloc((size_t)n * sizeof *v);
	if (!v) return util_errf(L->err, L->errlen, "model: out of memory");
	for (int i = 0; i < n; i++) v[i] = weight_at(t.data, t.type, (size_t)i);
	*out = v;
	return 0;
}

/* Sampling defaults: the bos id and the stop ids (eos, and end-of-turn) from
 * the vocabulary's metadata. */
static void parse_generation(gload *L)
{
	model_generation *g = &L->m->gen;
	*g = (model_generation){.temperature = 1, .top_p = 1, .repetition_penalty = 1, .bos_id = 2, .eos_ids = {1}, .n_eos = 1};
	int64_t v;
	if (gguf_kv_int(gguf_find_kv(L->g, "tokenizer.ggml.bos_token_id"), &v) == 0 && v >= 0 && v < INT_MAX) g->bos_id = (int)v;
	if (gguf_kv_int(gguf_find_kv(L->g, "tokenizer.ggml.padding_token_id"), &v) == 0 && v >= 0 && v < INT_MAX) g->pad_id = (int)v;
	if (gguf_kv_int(gguf_find_kv(L->g, "tokenizer.ggml.eos_token_id"), &v) == 0 && v >= 0 && v < INT_MAX) g->eos_ids[0] = (int)v;
	if (gguf_kv_int(gguf_find_kv(L->g, "tokenizer.ggml.eot_token_id"), &v) == 0 && v >= 0 && v < INT_MAX &&
	    v != g->eos_ids[0])
		g->eos_ids[g->n_eos++] = (int)v;
}

model *model_load_gguf(const char *path, char *err, size_t errlen)
{
	model *m = calloc(1, sizeof *m);
	if (!m) {
		util_errf(err, errlen, "model: out of memory");
		return NULL;
	}
	m->gg = gguf_open(path, err, errlen);
	if (!m->gg) goto bad;
	gload L = {.m = m, .g = m->gg, .file = gguf_part_path(m->gg, 0), .err = err, .errlen = errlen};
	if (parse_config(&L) < 0) goto bad;
	parse_generation(&L);
	model_config *c = &m->cfg;
	const gguf_tensor *emb = gguf_find_tensor(m->gg, "token_embd.weight");
	if (!emb || emb->ndim != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 24)) {
		util_errf(err, errlen, "%s: tensor token_embd.weight is missing or not a matrix", L.file);
		goto bad;
	}
	c->vocab = (int)emb->ne[1];
	int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
	if (g_bind(&L, &m->embed, "token_embd.weight", c->vocab, H) < 0 ||
	    g_norm(&L, &m->final_norm, "output_norm.weight", H) < 0)
		goto bad;
	m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
	if (!m->layers) {
		util_errf(err, errlen, "model: out of memory");
		goto bad;
	}
	for (int l = 0; l < c->n_layers; l++) {
		layer_weights *w = &m->layers[l];
		char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s.weight", l, s), n)
		if (g_bind(&L, &w->q, NAME("attn_q"), qd, H) < 0 ||
		    g_bind(&L, &w->k, NAME("attn_k"), kvd, H) < 0 ||
		    g_bind(&L, &w->v, NAME("attn_v"), kvd, H) < 0 ||
		    g_bind(&L, &w->o, NAME("attn_output"), H, qd) < 0 ||
		    g_bind(&L, &w->gate, NAME("ffn_gate"), c->intermediate, H) < 0 ||
		    g_bind(&L, &w->up, NAME("ffn_up"), c->intermediate, H) < 0 ||
		    g_bind(&L, &w->down, NAME("ffn_down"), H, c->intermediate) < 0 ||
		    g_norm(&L, &w->input_norm, NAME("attn_norm"), H) < 0 ||
		    g_norm(&L, &w->post_attn_norm, NAME("post_attention_norm"), H) < 0 ||
		    g_norm(&L, &w->pre_ff_norm, NAME("ffn_norm"), H) < 0 ||
		    g_norm(&L, &w->post_ff_norm, NAME("post_ffw_norm"), H) < 0 ||
		    g_norm(&L, &w->q_norm, NAME("attn_q_norm"), D) < 0 ||
		    g_norm(&L, &w->k_norm, NAME("attn_k_norm"), D) < 0)
			goto bad;
#undef NAME
	}
	return m;
bad:
	model_free(m);
	return NULL;
}
