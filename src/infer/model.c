/*
 * model.c — loading a Gemma 3 text model: config, generation defaults and
 * weights (see model.h). The weights are views into the safetensors mappings;
 * only the small norm vectors are copied (as 1 + w in f32).
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/util.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/pool.h"
#include "infer/quant.h"
#include <sys/mman.h>
#include <unistd.h>


/* An integer field in [lo, hi], or dflt when absent (dflt < lo means required). */
static int get_int(const json_val *o, const char *key, long dflt, long lo, long hi, int *out,
                   char *err, size_t errlen)
{
	const json_val *v = json_get(o, key);
	if (!v || json_is(v, JSON_NULL)) {
		if (dflt < lo) return util_errf(err, errlen, "config.json: %s is missing", key);
		*out = (int)dflt;
		return 0;
	}
	if (!json_is(v, JSON_NUMBER) || !v->is_int || v->i < lo || v->i > hi)
		return util_errf(err, errlen, "config.json: %s must be an integer in [%ld, %ld]", key, lo, hi);
	*out = (int)v->i;
	return 0;
}

static int get_float(const json_val *o, const char *key, double dflt, float *out, char *err, size_t errlen)
{
	const json_val *v = json_get(o, key);
	if (!v || json_is(v, JSON_NULL)) { *out = (float)dflt; return 0; }
	if (!json_is(v, JSON_NUMBER) || !isfinite(v->u.num))
		return util_errf(err, errlen, "config.json: %s must be a number", key);
	*out = (float)v->u.num;
	return 0;
}

int model_config_parse(model_config *c, const char *text, size_t len, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	if (!doc) return util_errf(err, errlen, "config.json: not valid JSON (line %u col %u: %s)", je.line, je.col, je.msg);
	const json_val *root = json_root(doc), *o = root;
	int rc = -1;
	if (!json_is(root, JSON_OBJECT)) { util_errf(err, errlen, "config.json: not an object"); goto out; }
	const char *mt = json_str(json_get(root, "model_type"), "");
	const json_val *tc = json_get(root, "text_config");
	if (json_is(tc, JSON_OBJECT)) {
		o = tc;
		mt = json_str(json_get(tc, "model_type"), "gemma3_text");
	}
	if (strcmp(mt, "gemma3_text") != 0 && strcmp(mt, "gemma3") != 0) {
		util_errf(err, errlen, "config.json: model_type \"%.40s\" is not a Gemma 3 text model (gemma3_text)", mt);
		goto out;
	}
	/* defaults are Gemma3TextConfig's, for text_config objects that omit fields */
	if (get_int(o, "hidden_size", 2304, 1, 1 << 16, &c->hidden, err, errlen) < 0 ||
	    get_int(o, "intermediate_size", 9216, 1, 1 << 20, &c->intermediate, err, errlen) < 0 ||
	    get_int(o, "num_hidden_layers", 26, 1, MODEL_MAX_LAYERS, &c->n_layers, err, errlen) < 0 ||
	    get_int(o, "num_attention_heads", 8, 1, 1024, &c->n_heads, err, errlen) < 0 ||
	    get_int(o, "num_key_value_heads", 4, 1, 1024, &c->n_kv_heads, err, errlen) < 0 ||
	    get_int(o, "head_dim", 256, 2, 4096, &c->head_dim, err, errlen) < 0 ||
	    get_int(o, "vocab_size", 262208, 1, 1 << 24, &c->vocab, err, errlen) < 0 ||
	    get_int(o, "sliding_window", 4096, 1, INT_MAX, &c->sliding_window, err, errlen) < 0 ||
	    get_int(o, "max_position_embeddings", 131072, 1, INT_MAX, &c->max_position, err, errlen) < 0 ||
	    get_float(o, "rope_theta", 1e6, &c->rope_theta, err, errlen) < 0 ||
	    get_float(o, "rope_local_base_freq", 1e4, &c->rope_local_theta, err, errlen) < 0 ||
	    get_float(o, "query_pre_attn_scalar", 256, &c->query_pre_attn_scalar, err, errlen) < 0 ||
	    get_float(o, "rms_norm_eps", 1e-6, &c->rms_eps, err, errlen) < 0 ||
	    get_float(o, "attn_logit_softcapping", 0, &c->attn_softcap, err, errlen) < 0 ||
	    get_float(o, "final_logit_softcapping", 0, &c->final_softcap, err, errlen) < 0)
		goto out;
	if (c->n_heads % c->n_kv_heads != 0) {
		util_errf(err, errlen, "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
		     c->n_heads, c->n_kv_heads);
		goto out;
	}
	if (c->head_dim % 2 || c->rope_theta <= 0 || c->rope_local_theta <= 0 || c->query_pre_attn_scalar <= 0) {
		util_errf(err, errlen, "config.json: head_dim must be even and rope bases and query_pre_attn_scalar positive");
		goto out;
	}
	const char *act = json_str(json_get(o, "hidden_activation"), "gelu_pytorch_tanh");
	if (strcmp(act, "gelu_pytorch_tanh") != 0) {
		util_errf(err, errlen, "config.json: hidden_activation \"%.40s\" is not supported (gelu_pytorch_tanh)", act);
		goto out;
	}
	c->rope_scaling = 1;
	const json_val *rs = json_get(o, "rope_scaling");
	if (rs && !json_is(rs, JSON_NULL)) {
		const char *type = json_str(json_get(rs, "rope_type"), json_str(json_get(rs, "type"), ""));
		double f = json_num(json_get(rs, "factor"), 0);
		if (strcmp(type, "linear") != 0 || !(f >= 1)) {
			util_errf(err, errlen, "config.json: rope_scaling must be {\"rope_type\": \"linear\", \"factor\" >= 1}");
			goto out;
		}
		c->rope_scaling = (float)f;
	}
	const json_val *lt = json_get(o, "layer_types");
	if (lt && !json_is(lt, JSON_NULL)) {
		if (!json_is(lt, JSON_ARRAY) || json_count(lt) != (size_t)c->n_layers) {
			util_errf(err, errlen, "config.json: layer_types must list %d layers", c->n_layers);
			goto out;
		}
		for (int i = 0; i < c->n_layers; i++) {
			const char *k = json_str(json_at(lt, (size_t)i), "");
			if (strcmp(k, "sliding_attention") == 0) c->sliding[i] = 1;
			else if (strcmp(k, "full_attention") == 0) c->sliding[i] = 0;
			else { util_errf(err, errlen, "config.json: layer_types[%d] \"%.40s\" is unknown", i, k); goto out; }
		}
	} else {
		int pattern;
		if (get_int(o, "sliding_window_pattern", 6, 1, MODEL_MAX_LAYERS, &pattern, err, errlen) < 0) goto out;
		for (int i = 0; i < c->n_layers; i++) c->sliding[i] = (i + 1) % pattern != 0;
	}
	c->embed_scale = sqrtf((float)c->hidden);
	rc = 0;
out:
	json_doc_free(doc);
	return rc;
}

int model_generation_parse(model_generation *g, const char *text, size_t len, char *err, size_t errlen)
{
	*g = (model_generation){ .temperature = 1, .top_p = 1, .repetition_penalty = 1, .bos_id = 2, .eos_ids = {1}, .n_eos = 1 };
	if (len == 0) return 0;
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	if (!doc) return util_errf(err, errlen, "generation_config.json: not valid JSON (line %u col %u: %s)", je.line, je.col, je.msg);
	const json_val *o = json_root(doc);
	int rc = -1;
	if (!json_is(o, JSON_OBJECT)) { util_errf(err, errlen, "generation_config.json: not an object"); goto out; }
	g->has_file = 1;
	g->do_sample = json_bool(json_get(o, "do_sample"), 0);
	g->temperature = (float)json_num(json_get(o, "temperature"), 1.0);
	g->top_k = (int)json_num(json_get(o, "top_k"), 0);
	g->top_p = (float)json_num(json_get(o, "top_p"), 1.0);
	g->min_p = (float)json_num(json_get(o, "min_p"), 0.0);
	g->repetition_penalty = (float)json_num(json_get(o, "repetition_penalty"), 1.0);
	g->bos_id = (int)json_num(json_get(o, "bos_token_id"), 2);
	g->pad_id = (int)json_num(json_get(o, "pad_token_id"), 0);
	const json_val *eos = json_get(o, "eos_token_id");
	if (json_is(eos, JSON_NUMBER)) {
		g->eos_ids[0] = (int)eos->u.num;
		g->n_eos = 1;
	} else if (json_is(eos, JSON_ARRAY)) {
		g->n_eos = 0;
		for (size_t i = 0; i < json_count(eos) && g->n_eos < MODEL_MAX_EOS; i++)
			if (json_is(json_at(eos, i), JSON_NUMBER)) g->eos_ids[g->n_eos++] = (int)json_num(json_at(eos, i), 1);
	}
	if (!(g->temperature >= 0) || !(g->top_p > 0 && g->top_p <= 1) || g->top_k < 0 ||
	    !(g->repetition_penalty > 0)) {
		util_errf(err, errlen, "generation_config.json: temperature, top_k, top_p or repetition_penalty out of range");
		goto out;
	}
	rc = 0;
out:
	json_doc_free(doc);
	return rc;
}

/* Reads a small text file; *len 0 and NULL when absent (missing_ok). */
static char *slurp(const char *path, size_t max, size_t *len, int missing_ok, char *err, size_t errlen)
{
	char *b = util_read_file(path, max, len, err, errlen);
	if (!b && missing_ok && errno == ENOENT && err && errlen) err[0] = 0;
	return b;
}

#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

/* The tensor for logical name "model.X" (or "X" outside model.), trying the
 * text-only and the multimodal spellings. */
static const st_tensor *find_tensor(const st_set *st, const char *name, char *used, size_t usedlen)
{
	const char *rest = strncmp(name, "model.", 6) == 0 ? name + 6 : NULL;
	char cand[3][256];
	int n = 0;
	snprintf(cand[n++], 256, "%s", name);
	snprintf(cand[n++], 256, "language_model.%s", name);
	if (rest) snprintf(cand[n++], 256, "model.language_model.%s", rest);
	for (int i = 0; i < n; i++) {
		const st_tensor *t = st_find(st, cand[i]);
		if (t) { memcpy(used, cand[i], MIN_SZ(usedlen, 256)); used[MIN_SZ(usedlen, 256) - 1] = 0; return t; }
	}
	memcpy(used, cand[0], MIN_SZ(usedlen, 256));
	used[MIN_SZ(usedlen, 256) - 1] = 0;
	return NULL;
}

/* Binds a tensor of shape [rows, cols] (cols 0 = a vector of rows elements). */
static int bind(model *m, tensor *out, const char *name, int rows, int cols, char *err, size_t errlen)
{
	char used[256];
	const st_tensor *t = find_tensor(m->st, name, used, sizeof used);
	if (!t) return util_errf(err, errlen, "model: tensor %s is missing from the safetensors", name);
	const char *file = st_file_path(m->st, t->file);
	dtype dt;
	if (t->dtype == ST_BF16) dt = DTYPE_BF16;
	else if (t->dtype == ST_F16) dt = DTYPE_F16;
	else if (t->dtype == ST_F32) dt = DTYPE_F32;
	else return util_errf(err, errlen, "%s: tensor %s: dtype %s is not supported (BF16, F16, F32)", file, used, st_dtype_name(t->dtype));
	int ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
	              : (t->ndim == 1 && t->shape[0] == rows);
	if (!ok) {
		char got[96] = "";
		size_t at = 0;
		for (int d = 0; d < t->ndim && at < sizeof got - 24; d++)
			at += (size_t)snprintf(got + at, sizeof got - at, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
		if (cols) return util_errf(err, errlen, "%s: tensor %s: shape [%s], config.json implies [%d, %d]", file, used, got, rows, cols);
		return util_errf(err, errlen, "%s: tensor %s: shape [%s], config.json implies [%d]", file, used, got, rows);
	}
	*out = (tensor){ .data = t->data, .type = dt, .rows = cols ? rows : 1, .cols = cols ? cols : rows };
	m->weight_bytes += t->nbytes;
	return 0;
}

/* Binds a norm vector of n elements and stores 1 + w in a new f32 array. */
static int bind_norm(model *m, float **out, const char *name, int n, char *err, size_t errlen)
{
	tensor t;
	if (bind(m, &t, name, n, 0, err, errlen) < 0) return -1;
	float *v = malloc((size_t)n * sizeof *v);
	if (!v) return util_errf(err, errlen, "model: out of memory");
	for (int i = 0; i < n; i++) v[i] = 1.0f + weight_at(t.data, t.type, (size_t)i);
	*out = v;
	return 0;
}

void model_free(model *m)
{
	if (!m) return;
	if (m->layers) {
		for (int l = 0; l < m->cfg.n_layers; l++) {
			layer_weights *w = &m->layers[l];
			free(w->input_norm); free(w->post_attn_norm); free(w->pre_ff_norm);
			free(w->post_ff_norm); free(w->q_norm); free(w->k_norm);
		}
	}
	free(m->layers);
	free(m->final_norm);
	if (m->quant_mem) munmap(m->quant_mem, m->quant_bytes);
	st_close(m->st);
	gguf_close(m->gg);
	free(m);
}

model *model_load(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len;
	if (gguf_is_model_path(dir)) return model_load_gguf(dir, err, errlen);
	model *m = calloc(1, sizeof *m);
	if (!m) { util_errf(err, errlen, "model: out of memory"); return NULL; }
	snprintf(path, sizeof path, "%s/config.json", dir);
	char *text = slurp(path, 16 << 20, &len, 0, err, errlen);
	if (!text) goto bad;
	int rc = model_config_parse(&m->cfg, text, len, err, errlen);
	if (rc == 0) {
		json_doc *doc = json_parse(text, len, 0, NULL);
		const char *arch = json_str(json_at(json_get(json_root(doc), "architectures"), 0), "Gemma3ForCausalLM");
		snprintf(m->arch, sizeof m->arch, "%s", arch);
		json_doc_free(doc);
	}
	free(text);
	if (rc < 0) goto bad;
	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	text = slurp(path, 1 << 20, &len, 1, err, errlen);
	rc = model_generation_parse(&m->gen, text, text ? len : 0, err, errlen);
	free(text);
	if (rc < 0) goto bad;
	m->st = st_open_dir(dir, err, errlen);
	if (!m->st) goto bad;

	const model_config *c = &m->cfg;
	int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
	if (bind(m, &m->embed, "model.embed_tokens.weight", c->vocab, H, err, errlen) < 0) goto bad;
	if (bind_norm(m, &m->final_norm, "model.norm.weight", H, err, errlen) < 0) goto bad;
	/* sqrt(H) rounded to the embedding's dtype, as transformers casts it */
	if (m->embed.type == DTYPE_BF16) m->cfg.embed_scale = bf16_to_f32(f32_to_bf16(sqrtf((float)H)));
	else if (m->embed.type == DTYPE_F16) m->cfg.embed_scale = f16_to_f32(f32_to_f16(sqrtf((float)H)));
	m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
	if (!m->layers) { util_errf(err, errlen, "model: out of memory"); goto bad; }
	for (int l = 0; l < c->n_layers; l++) {
		layer_weights *w = &m->layers[l];
		char n[160];
#define NAME(s) (snprintf(n, sizeof n, "model.layers.%d.%s", l, s), n)
		if (bind(m, &w->q, NAME("self_attn.q_proj.weight"), qd, H, err, errlen) < 0 ||
		    bind(m, &w->k, NAME("self_attn.k_proj.weight"), kvd, H, err, errlen) < 0 ||
		    bind(m, &w->v, NAME("self_attn.v_proj.weight"), kvd, H, err, errlen) < 0 ||
		    bind(m, &w->o, NAME("self_attn.o_proj.weight"), H, qd, err, errlen) < 0 ||
		    bind(m, &w->gate, NAME("mlp.gate_proj.weight"), c->intermediate, H, err, errlen) < 0 ||
		    bind(m, &w->up, NAME("mlp.up_proj.weight"), c->intermediate, H, err, errlen) < 0 ||
		    bind(m, &w->down, NAME("mlp.down_proj.weight"), H, c->intermediate, err, errlen) < 0 ||
		    bind_norm(m, &w->input_norm, NAME("input_layernorm.weight"), H, err, errlen) < 0 ||
		    bind_norm(m, &w->post_attn_norm, NAME("post_attention_layernorm.weight"), H, err, errlen) < 0 ||
		    bind_norm(m, &w->pre_ff_norm, NAME("pre_feedforward_layernorm.weight"), H, err, errlen) < 0 ||
		    bind_norm(m, &w->post_ff_norm, NAME("post_feedforward_layernorm.weight"), H, err, errlen) < 0 ||
		    bind_norm(m, &w->q_norm, NAME("self_attn.q_norm.weight"), D, err, errlen) < 0 ||
		    bind_norm(m, &w->k_norm, NAME("self_attn.k_norm.weight"), D, err, errlen) < 0)
			goto bad;
#undef NAME
	}
	/* Gemma 3 ties the output to the embedding; a stored lm_head.weight is ignored. */
	return m;
bad:
	model_free(m);
	return NULL;
}

/* ------------------------------------------------------------ quantize on load */

int model_quantization_type(const char *name, dtype *out, char *err, size_t errlen)
{
	if (name && strcmp(name, "q8_0") == 0) { *out = DTYPE_Q8_0; return 0; }
	if (name && strcmp(name, "q4_0") == 0) { *out = DTYPE_Q4_0; return 0; }
	return util_errf(err, errlen, "quantization \"%.40s\" is not supported (q8_0, q4_0)", name ? name : "");
}

enum { QUANT_PARTS = 16 };   /* row ranges per tensor: the unit of work for the threads */

typedef struct quant_job {
	tensor **t;               /* the tensors to convert; their data still the source */
	dtype *to;
	char **dst;               /* where each one's blocks go */
	int n;
	int failed;               /* a thread could not allocate its row buffer */
} quant_job;

/* Drops the whole pages of a source tensor from the process (file-backed,
 * read-only: they are read again from the file if ever touched). */
static void release_pages(const void *data, size_t bytes)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)data + pg - 1) & ~(pg - 1),
	          e = ((uintptr_t)data + bytes) & ~(pg - 1);
	if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

static void quant_run(void *ctx, int chunk, int n_chunks)
{
	quant_job *j = ctx;
	(void)n_chunks;
	int ti = chunk / QUANT_PARTS, r0, r1;
	const tensor *t = j->t[ti];
	pool_split(t->rows, chunk % QUANT_PARTS, QUANT_PARTS, 1, &r0, &r1);
	float *row = malloc((size_t)t->cols * sizeof *row);
	if (!row) { __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED); return; }
	size_t sb = dtype_row_bytes(t->type, (size_t)t->cols), db = dtype_row_bytes(j->to[ti], (size_t)t->cols);
	for (int r = r0; r < r1; r++) {
		quant_dequantize_row(t->type, row, (const char *)t->data + (size_t)r * sb, (size_t)t->cols);
		quant_quantize_row(j->to[ti], j->dst[ti] + (size_t)r * db, row, (size_t)t->cols);
	}
	free(row);
	/* the whole pages of this chunk's source rows are read by no other chunk:
	 * dropping them now keeps the peak near the quantized size, not the sum */
	if (r1 > r0) release_pages((const char *)t->data + (size_t)r0 * sb, (size_t)(r1 - r0) * sb);
}

int model_quantize(model *m, dtype t, pool *p, char *err, size_t errlen)
{
	const model_config *c = &m->cfg;
	int n = 0, cap = 7 * c->n_layers + 1;
	tensor **ts = calloc((size_t)cap, sizeof *ts);
	dtype *to = calloc((size_t)cap, sizeof *to);
	char **dst = calloc((size_t)cap, sizeof *dst);
	int rc = -1;
	if (!ts || !to || !dst) { util_errf(err, errlen, "model: out of memory"); goto out; }
	if (!dtype_is_quantized(m->embed.type)) { ts[n] = &m->embed; to[n++] = DTYPE_Q8_0; }
	for (int l = 0; l < c->n_layers; l++) {
		layer_weights *w = &m->layers[l];
		tensor *mats[7] = { &w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down };
		for (int i = 0; i < 7; i++)
			if (!dtype_is_quantized(mats[i]->type)) { ts[n] = mats[i]; to[n++] = t; }
	}
	size_t total = 0;
	for (int i = 0; i < n; i++) {
		if (ts[i]->cols % QK_SMALL) {
			util_errf(err, errlen, "model: cannot quantize to %s: a row of %d elements is not a multiple of %d",
			          dtype_name(to[i]), ts[i]->cols, QK_SMALL);
			goto out;
		}
		total += (dtype_row_bytes(to[i], (size_t)ts[i]->cols) * (size_t)ts[i]->rows + 63) & ~(size_t)63;
	}
	if (n == 0) { rc = 0; goto out; }
	void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) { util_errf(err, errlen, "model: cannot map %zu bytes for the quantized weights", total); goto out; }
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		dst[i] = (char *)mem + at;
		at += (dtype_row_bytes(to[i], (size_t)ts[i]->cols) * (size_t)ts[i]->rows + 63) & ~(size_t)63;
	}
	quant_job j = { .t = ts, .to = to, .dst = dst, .n = n };
	pool_run_chunks(p, quant_run, &j, n * QUANT_PARTS);
	if (j.failed) {
		munmap(mem, total);
		util_errf(err, errlen, "model: out of memory while quantizing");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		size_t old = dtype_row_bytes(ts[i]->type, (size_t)ts[i]->cols) * (size_t)ts[i]->rows;
		release_pages(ts[i]->data, old);
		m->weight_bytes -= old;
		m->weight_bytes += dtype_row_bytes(to[i], (size_t)ts[i]->cols) * (size_t)ts[i]->rows;
		ts[i]->data = dst[i];
		ts[i]->type = to[i];
	}
	m->quant_mem = mem;
	m->quant_bytes = total;
	rc = 0;
out:
	free(ts); free(to); free(dst);
	return rc;
}
