/*
 * model.c — loading a Gemma 3 text model: config, generation defaults and
 * weights (see model.h). The weights are views into the safetensors mappings;
 * only the small norm vectors are copied (as 1 + w in f32).
 */
#include <float.h>
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
#include "infer/team.h"
#include "infer/quant.h"
#include <sys/mman.h>
#include <unistd.h>


/* Every value is checked at load so that a bad file is refused with its name
 * and field, never loaded into a model that reports healthy and then fails
 * (or converts a float out of range to an int, which C leaves undefined). */

/* An integer field in [lo, hi], or dflt when absent (dflt < lo means required).
 * A number written as 4.0 or 1e3 counts when it is an exact integer. */
static int get_int_in(const json_val *o, const char *file, const char *key, long dflt, long lo, long hi, int *out,
		      char *err, size_t errlen)
{
	const json_val *v = json_get(o, key);
	int64_t x;
	if (!v || json_is(v, JSON_NULL)) {
		if (dflt < lo) return util_errf(err, errlen, "%s: %s is missing", file, key);
		*out = (int)dflt;
		return 0;
	}
	if (json_int64(v, &x) < 0 || x < lo || x > hi)
		return util_errf(err, errlen, "%s: %s must be an integer in [%ld, %ld]", file, key, lo, hi);
	*out = (int)x;
	return 0;
}

static int get_int(const json_val *o, const char *key, long dflt, long lo, long hi, int *out, char *err, size_t errlen)
{
	return get_int_in(o, "config.json", key, dflt, lo, hi, out, err, errlen);
}

/* Lower bounds of a float field. */
enum { GT_ZERO,
       GE_ZERO,
       GE_ONE,
       ANY };

/* A finite number that fits a float, with its bound, or dflt when absent. */
static int get_float_in(const json_val *o, const char *file, const char *key, double dflt, int bound, float *out,
			char *err, size_t errlen)
{
	static const char *const what[] = {"a finite number > 0", "a finite number >= 0", "a finite number >= 1",
					   "a finite number"};
	const json_val *v = json_get(o, key);
	if (!v || json_is(v, JSON_NULL)) {
		*out = (float)dflt;
		return 0;
	}
	double x = json_num(v, NAN);
	int ok = json_is(v, JSON_NUMBER) && isfinite(x) && fabs(x) <= FLT_MAX;
	if (ok && bound == GT_ZERO) ok = x > 0 && (float)x > 0; /* a tiny eps must not round to 0 */
	if (ok && bound == GE_ZERO) ok = x >= 0;
	if (ok && bound == GE_ONE) ok = x >= 1;
	if (!ok) return util_errf(err, errlen, "%s: %s must be %s", file, key, what[bound]);
	*out = (float)x;
	return 0;
}

static int get_float(const json_val *o, const char *key, double dflt, int bound, float *out, char *err, size_t errlen)
{
	return get_float_in(o, "config.json", key, dflt, bound, out, err, errlen);
}

/* A token id field (a number or, for eos_token_id, a list of them) in
 * [0, vocab): the ids the file names must exist. */
static int check_ids(const json_val *o, const char *file, const char *key, int vocab, char *err, size_t errlen)
{
	const json_val *v = json_get(o, key);
	if (!v || json_is(v, JSON_NULL)) return 0;
	size_t n = json_is(v, JSON_ARRAY) ? json_count(v) : 1;
	for (size_t i = 0; i < n; i++) {
		const json_val *x = json_is(v, JSON_ARRAY) ? json_at(v, i) : v;
		int64_t id;
		if (json_int64(x, &id) < 0 || id < 0 || id >= vocab)
			return util_errf(err, errlen, "%s: %s must be a token id in [0, %d)", file, key, vocab);
	}
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
	if (!json_is(root, JSON_OBJECT)) {
		util_errf(err, errlen, "config.json: not an object");
		goto out;
	}
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
	    get_float(o, "rope_theta", 1e6, GT_ZERO, &c->rope_theta, err, errlen) < 0 ||
	    get_float(o, "rope_local_base_freq", 1e4, GT_ZERO, &c->rope_local_theta, err, errlen) < 0 ||
	    get_float(o, "query_pre_attn_scalar", 256, GT_ZERO, &c->query_pre_attn_scalar, err, errlen) < 0 ||
	    get_float(o, "rms_norm_eps", 1e-6, GT_ZERO, &c->rms_eps, err, errlen) < 0 ||
	    get_float(o, "attn_logit_softcapping", 0, GE_ZERO, &c->attn_softcap, err, errlen) < 0 ||
	    get_float(o, "final_logit_softcapping", 0, GE_ZERO, &c->final_softcap, err, errlen) < 0 ||
	    check_ids(o, "config.json", "bos_token_id", c->vocab, err, errlen) < 0 ||
	    check_ids(o, "config.json", "eos_token_id", c->vocab, err, errlen) < 0 ||
	    check_ids(o, "config.json", "pad_token_id", c->vocab, err, errlen) < 0)
		goto out;
	if (c->n_heads % c->n_kv_heads != 0) {
		util_errf(err, errlen, "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
			  c->n_heads, c->n_kv_heads);
		goto out;
	}
	if (c->head_dim % 2) {
		util_errf(err, errlen, "config.json: head_dim %d must be even (rotary pairs)", c->head_dim);
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
		if (!json_is(rs, JSON_OBJECT) || strcmp(type, "linear") != 0 || !json_get(rs, "factor")) {
			util_errf(err, errlen, "config.json: rope_scaling must be {\"rope_type\": \"linear\", \"factor\" >= 1}");
			goto out;
		}
		if (get_float_in(rs, "config.json: rope_scaling", "factor", 1, GE_ONE, &c->rope_scaling, err, errlen) < 0) goto out;
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
			else {
				util_errf(err, errlen, "config.json: layer_types[%d] \"%.40s\" is unknown", i, k);
				goto out;
			}
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
	*g = (model_generation){.temperature = 1, .top_p = 1, .repetition_penalty = 1, .bos_id = 2, .eos_ids = {1}, .n_eos = 1};
	if (len == 0) return 0;
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	if (!doc) return util_errf(err, errlen, "generation_config.json: not valid JSON (line %u col %u: %s)", je.line, je.col, je.msg);
	const json_val *o = json_root(doc);
	int rc = -1;
	if (!json_is(o, JSON_OBJECT)) {
		util_errf(err, errlen, "generation_config.json: not an object");
		goto out;
	}
	g->has_file = 1;
	static const char f[] = "generation_config.json";
	const json_val *ds = json_get(o, "do_sample");
	if (ds && !json_is(ds, JSON_NULL) && !json_is(ds, JSON_TRUE) && !json_is(ds, JSON_FALSE)) {
		util_errf(err, errlen, "%s: do_sample must be true or false", f);
		goto out;
	}
	g->do_sample = json_bool(ds, 0);
	float top_p, min_p;
	if (get_float_in(o, f, "temperature", 1.0, GE_ZERO, &g->temperature, err, errlen) < 0 ||
	    get_int_in(o, f, "top_k", 0, 0, INT_MAX, &g->top_k, err, errlen) < 0 ||
	    get_float_in(o, f, "top_p", 1.0, GT_ZERO, &top_p, err, errlen) < 0 ||
	    get_float_in(o, f, "min_p", 0.0, GE_ZERO, &min_p, err, errlen) < 0 ||
	    get_float_in(o, f, "repetition_penalty", 1.0, GT_ZERO, &g->repetition_penalty, err, errlen) < 0 ||
	    get_int_in(o, f, "bos_token_id", 2, 0, INT_MAX, &g->bos_id, err, errlen) < 0 ||
	    get_int_in(o, f, "pad_token_id", 0, 0, INT_MAX, &g->pad_id, err, errlen) < 0)
		goto out;
	if (top_p > 1) {
		util_errf(err, errlen, "%s: top_p must be in (0, 1]", f);
		goto out;
	}
	if (min_p > 1) {
		util_errf(err, errlen, "%s: min_p must be in [0, 1]", f);
		goto out;
	}
	g->top_p = top_p;
	g->min_p = min_p;
	const json_val *eos = json_get(o, "eos_token_id");
	if (json_is(eos, JSON_ARRAY)) {
		if (json_count(eos) == 0 || json_count(eos) > MODEL_MAX_EOS) {
			util_errf(err, errlen, "%s: eos_token_id must list 1 to %d token ids", f, MODEL_MAX_EOS);
			goto out;
		}
		g->n_eos = (int)json_count(eos);
	} else if (eos && !json_is(eos, JSON_NULL) && !json_is(eos, JSON_NUMBER)) {
		util_errf(err, errlen, "%s: eos_token_id must be a token id or a list of them", f);
		goto out;
	}
	for (int i = 0; eos && !json_is(eos, JSON_NULL) && i < g->n_eos; i++) {
		const json_val *x = json_is(eos, JSON_ARRAY) ? json_at(eos, (size_t)i) : eos;
		int64_t id;
		if (json_int64(x, &id) < 0 || id < 0 || id > INT_MAX) {
			util_errf(err, errlen, "%s: eos_token_id must be a token id (an integer >= 0)", f);
			goto out;
		}
		g->eos_ids[i] = (int)id;
	}
	rc = 0;
out:
	json_doc_free(doc);
	return rc;
}

int model_generation_check(const model_generation *g, int vocab, char *err, size_t errlen)
{
	static const char f[] = "generation_config.json";
	if (g->bos_id >= vocab) return util_errf(err, errlen, "%s: bos_token_id %d is not in the vocabulary [0, %d)", f, g->bos_id, vocab);
	if (g->pad_id >= vocab) return util_errf(err, errlen, "%s: pad_token_id %d is not in the vocabulary [0, %d)", f, g->pad_id, vocab);
	for (int i = 0; i < g->n_eos; i++)
		if (g->eos_ids[i] < 0 || g->eos_ids[i] >= vocab)
			return util_errf(err, errlen, "%s: eos_token_id %d is not in the vocabulary [0, %d)", f, g->eos_ids[i], vocab);
	return 0;
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
		if (t) {
			memcpy(used, cand[i], MIN_SZ(usedlen, 256));
			used[MIN_SZ(usedlen, 256) - 1] = 0;
			return t;
		}
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
	*out = (tensor){.data = t->data, .type = dt, .rows = cols ? rows : 1, .cols = cols ? cols : rows};
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
			free(w->input_norm);
			free(w->post_attn_norm);
			free(w->pre_ff_norm);
			free(w->post_ff_norm);
			free(w->q_norm);
			free(w->k_norm);
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
	if (!m) {
		util_errf(err, errlen, "model: out of memory");
		return NULL;
	}
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
	if (rc == 0) rc = model_generation_check(&m->gen, m->cfg.vocab, err, errlen);
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
	if (!m->layers) {
		util_errf(err, errlen, "model: out of memory");
		goto bad;
	}
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
	if (name && strcmp(name, "q8_0") == 0) {
		*out = DTYPE_Q8_0;
		return 0;
	}
	if (name && strcmp(name, "q4_0") == 0) {
		*out = DTYPE_Q4_0;
		return 0;
	}
	return util_errf(err, errlen, "quantization \"%.40s\" is not supported (q8_0, q4_0)", name ? name : "");
}

enum { QUANT_PARTS = 16 }; /* row ranges per tensor: the unit of work for the threads */

typedef struct quant_job {
	tensor **t; /* the tensors to convert; their data still the source */
	dtype *to;
	char **dst; /* where each one's blocks go */
	int n;
	int failed; /* a thread could not allocate its row buffers */
} quant_job;

/* Drops the whole pages of a source tensor from the process (file-backed,
 * read-only: they are read again from the file if ever touched). */
static void release_pages(const void *data, size_t bytes)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)data + pg - 1) & ~(pg - 1),
		  e = ((uintptr_t)data + bytes) & ~(pg - 1);
	if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* One chunk of a tensor's rows (whole groups of 8 for an x8 type): copied
 * as they are into the new memory, or each row requantized from its
 * dequantized values (a source of the target's block type is used as it
 * is), then 8 rows packed together for an x8 type. */
static void quant_run(void *ctx, int chunk, int n_chunks)
{
	quant_job *j = ctx;
	(void)n_chunks;
	int ti = chunk / QUANT_PARTS, r0, r1;
	const tensor *t = j->t[ti];
	dtype to = j->to[ti], rows_to = dtype_x8_base(to);
	int unit = dtype_is_x8(to) ? X8_ROWS : 1, direct = t->type == rows_to;
	team_split(t->rows / unit, chunk % QUANT_PARTS, QUANT_PARTS, 1, &r0, &r1);
	r0 *= unit;
	r1 *= unit;
	size_t sb = dtype_row_bytes(t->type, (size_t)t->cols), db = dtype_row_bytes(rows_to, (size_t)t->cols);
	if (r1 <= r0) return;
	const char *src0 = (const char *)t->data + (size_t)r0 * sb;
#ifdef MADV_POPULATE_READ
	/* the source pages mapped in one call, where a fault per 4 KB page took
	 * 1.7 s for 270m's 536 MB against 0.1 s (a hint: older kernels refuse it) */
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)src0 & ~(pg - 1);
	madvise((void *)a, (uintptr_t)src0 + (size_t)(r1 - r0) * sb - a, MADV_POPULATE_READ);
#endif
	if (direct && unit == 1) {
		memcpy(j->dst[ti] + (size_t)r0 * db, src0, (size_t)(r1 - r0) * sb);
		release_pages(src0, (size_t)(r1 - r0) * sb);
		return;
	}
	float *row = direct ? NULL : malloc((size_t)t->cols * sizeof *row);
	char *rows = unit > 1 && !direct ? malloc(db * X8_ROWS) : NULL;
	if ((!direct && !row) || (unit > 1 && !direct && !rows)) {
		__atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
		free(row);
		return;
	}
	for (int r = r0; r < r1; r += unit) {
		const char *src = (const char *)t->data + (size_t)r * sb;
		char *out = unit > 1 && !direct ? rows : j->dst[ti] + (size_t)r * db;
		for (int i = 0; i < unit && !direct; i++) {
			quant_dequantize_row(t->type, row, src + (size_t)i * sb, (size_t)t->cols);
			quant_quantize_row(rows_to, out + (size_t)i * db, row, (size_t)t->cols);
		}
		if (unit > 1) quant_pack_x8(to, j->dst[ti] + (size_t)r * db, direct ? src : rows, (size_t)t->cols);
	}
	free(row);
	free(rows);
	/* the whole pages of this chunk's source rows are read by no other chunk:
	 * dropping them now keeps the peak near the converted size, not the sum */
	release_pages(src0, (size_t)(r1 - r0) * sb);
}

int model_convert(model *m, int quantize, dtype t, int repack, team *p, char *err, size_t errlen)
{
	const model_config *c = &m->cfg;
	int n = 0, cap = 7 * c->n_layers + 1;
	tensor **ts = calloc((size_t)cap, sizeof *ts);
	dtype *to = calloc((size_t)cap, sizeof *to);
	char **dst = calloc((size_t)cap, sizeof *dst);
	int rc = -1;
	if (!ts || !to || !dst) {
		util_errf(err, errlen, "model: out of memory");
		goto out;
	}
	tensor *all[7 * MODEL_MAX_LAYERS + 1];
	int na = 0;
	all[na++] = &m->embed;
	for (int l = 0; l < c->n_layers; l++) {
		layer_weights *w = &m->layers[l];
		tensor *mats[7] = {&w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down};
		for (int i = 0; i < 7; i++) all[na++] = mats[i];
	}
	/* with repack, every matrix moves to anonymous memory (2 MB pages),
	 * converted or as it is; without, only what is quantized does */
	for (int i = 0; i < na; i++) {
		dtype want = all[i]->type;
		if (quantize && !dtype_is_quantized(want)) want = all[i] == &m->embed ? DTYPE_Q8_0 : t;
		if (repack && (want == DTYPE_Q4_0 || want == DTYPE_Q8_0) && all[i]->rows % X8_ROWS == 0)
			want = want == DTYPE_Q4_0 ? DTYPE_Q4_0_X8 : DTYPE_Q8_0_X8;
		if (want == all[i]->type && !repack) continue;
		if (want != all[i]->type && all[i]->cols % QK_SMALL) {
			util_errf(err, errlen, "model: cannot quantize to %s: a row of %d elements is not a multiple of %d",
				  dtype_name(want), all[i]->cols, QK_SMALL);
			goto out;
		}
		ts[n] = all[i];
		to[n++] = want;
	}
	size_t total = 0;
	for (int i = 0; i < n; i++) total += (dtype_row_bytes(to[i], (size_t)ts[i]->cols) * (size_t)ts[i]->rows + 63) & ~(size_t)63;
	if (n == 0) {
		rc = 0;
		goto out;
	}
	void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		util_errf(err, errlen, "model: cannot map %zu bytes for the converted weights", total);
		goto out;
	}
#ifdef MADV_HUGEPAGE
	/* 2 MB pages where the kernel has them: a decode step streams every
	 * weight once, and 4 KB pages would cost a TLB miss per 4 KB (a 270m
	 * bf16 decode step of 1 or 4 sequences: ~7% faster than read in place
	 * from the file's mapping) */
	madvise(mem, total, MADV_HUGEPAGE);
#endif
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		dst[i] = (char *)mem + at;
		at += (dtype_row_bytes(to[i], (size_t)ts[i]->cols) * (size_t)ts[i]->rows + 63) & ~(size_t)63;
	}
	quant_job j = {.t = ts, .to = to, .dst = dst, .n = n};
	team_run_chunks(p, quant_run, &j, n * QUANT_PARTS);
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
	free(ts);
	free(to);
	free(dst);
	return rc;
}
