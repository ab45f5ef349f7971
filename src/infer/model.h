/*
 * model.h — a Gemma 3 text model as loaded from a Hugging Face folder: its
 * configuration (config.json), its sampling defaults (generation_config.json)
 * and its weights, which point into read-only mappings of the safetensors
 * files (see safetensors.h) and are used in place in bf16, f16 or f32.
 *
 * Accepted: Gemma3ForCausalLM / gemma3_text (text-only checkpoints) and the
 * text part of the multimodal Gemma3ForConditionalGeneration (a `text_config`
 * object; weights named `language_model.model.*` or `model.language_model.*`;
 * the vision tower is ignored). The layer kinds come from `layer_types` when
 * present, otherwise from `sliding_window_pattern` (layer i is full when
 * (i + 1) % pattern == 0). Every tensor's shape and dtype are checked against
 * the configuration; an error names the file and the tensor.
 *
 * GGUF files (architecture "gemma3") load through model_load_gguf.
 *
 * What it is not: the forward pass (engine.h) or the tokenizer (tokenizer.h).
 */
#ifndef INFER_MODEL_H
#define INFER_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "infer/kernels.h"
#include "infer/safetensors.h"

#define MODEL_MAX_LAYERS 256
#define MODEL_MAX_EOS 8

typedef struct model_config {
	int hidden;       /* hidden_size, H */
	int intermediate; /* intermediate_size, I */
	int n_layers;
	int n_heads; /* query heads */
	int n_kv_heads;
	int head_dim;           /* D */
	int vocab;              /* rows of embed_tokens, V */
	int sliding_window;     /* a sliding layer's query at q sees keys k > q - window */
	int max_position;       /* max_position_embeddings */
	float rope_theta;       /* full layers */
	float rope_local_theta; /* sliding layers */
	float rope_scaling;     /* linear factor on full layers; 1 = none */
	float query_pre_attn_scalar;
	float rms_eps;
	float attn_softcap;                      /* 0 = none */
	float final_softcap;                     /* 0 = none */
	float embed_scale;                       /* sqrt(H) rounded to the embedding dtype */
	unsigned char sliding[MODEL_MAX_LAYERS]; /* 1 = sliding layer, 0 = full */
} model_config;

/* Sampling defaults from generation_config.json (absent fields keep the
 * defaults shown). */
typedef struct model_generation {
	int do_sample;              /* 0 */
	float temperature;          /* 1.0 */
	int top_k;                  /* 0 = off */
	float top_p;                /* 1.0 */
	float min_p;                /* 0 */
	float repetition_penalty;   /* 1 = off */
	int bos_id;                 /* 2 */
	int pad_id;                 /* 0 */
	int eos_ids[MODEL_MAX_EOS]; /* default {1} */
	int n_eos;
	int has_file; /* generation_config.json was present */
} model_generation;

/* A weight matrix or vector: a view into a mapping. */
typedef struct tensor {
	const void *data;
	dtype type;
	int rows, cols; /* [out, in] for projections; rows 1 for vectors */
} tensor;

typedef struct layer_weights {
	tensor q, k, v, o;     /* [heads*D, H], [kv*D, H], [kv*D, H], [H, heads*D] */
	tensor gate, up, down; /* [I, H], [I, H], [H, I] */
	/* norm weights, converted to f32 as (1 + w) at load; owned by the model */
	float *input_norm, *post_attn_norm, *pre_ff_norm, *post_ff_norm; /* [H] */
	float *q_norm, *k_norm;                                          /* [D] */
} layer_weights;

typedef struct model {
	model_config cfg;
	model_generation gen;
	tensor embed;          /* [V, H], also the output projection (tied) */
	float *final_norm;     /* [H], (1 + w) */
	layer_weights *layers; /* [n_layers] */
	st_set *st;            /* the mappings the tensors point into (safetensors) */
	struct gguf_set *gg;   /* or (a GGUF file) */
	uint64_t weight_bytes; /* bytes of the tensors the forward pass reads */
	char arch[64];         /* architectures[0] */
	void *quant_mem;       /* anonymous mapping of the weights quantized on load */
	size_t quant_bytes;
} model;

/* Loads dir/config.json, dir/generation_config.json (optional) and the
 * safetensors; or, when dir is a .gguf file or a folder holding one, that file
 * (model_load_gguf). Returns the model (free with model_free) or NULL with a
 * message in err. Cost: parsing the headers; weights are not touched. */
model *model_load(const char *dir, char *err, size_t errlen);
/* A Gemma 3 GGUF file (or split set, or a folder holding one): its metadata,
 * sampling defaults from the vocabulary's ids, and llama.cpp's tensor names
 * and conventions (see model_gguf.c). */
model *model_load_gguf(const char *path, char *err, size_t errlen);
void model_free(model *m);

/* "q8_0" or "q4_0" (vLLM's --quantization names) as a dtype; -1 with a
 * message otherwise. */
int model_quantization_type(const char *name, dtype *out, char *err, size_t errlen);

struct team;
/* Converts the weights once loaded, into one anonymous mapping, on the
 * team's threads, releasing the source pages from the mappings:
 * - with quantize, every projection of a float type to t (Q8_0 or Q4_0) and
 *   a float embedding, which is also the output projection, to Q8_0 (as
 *   llama.cpp keeps the output at higher precision than 4 bits): vLLM's
 *   --quantization, on load;
 * - with repack, every Q4_0 and Q8_0 matrix (from the file or just
 *   quantized) whose row count is a multiple of 8 to Q4_0x8 or Q8_0x8
 *   (quant.h), the layout the kernels read fastest, the same values; and
 *   every other matrix copied as it is. This reads the whole file at load
 *   and holds the weights in anonymous memory (2 MB pages where the kernel
 *   grants them) instead of the page cache.
 * Without repack, other matrices stay in place. Returns 0, or -1 with a
 * message (a row length not a multiple of 32, out of memory). */
int model_convert(model *m, int quantize, dtype t, int repack, struct team *p, char *err, size_t errlen);

/* Parses a config.json text into cfg (shapes not yet checked against weights).
 * Every value is range-checked: positive sizes, heads divisible by kv heads,
 * even head_dim, eps and rope bases finite and > 0, softcaps >= 0, window >= 1,
 * token ids in [0, vocab_size). Returns 0, or -1 with a message naming
 * config.json and the field. Exposed for tests. */
int model_config_parse(model_config *cfg, const char *json_text, size_t len, char *err, size_t errlen);
/* Parses a generation_config.json text; len 0 gives the defaults. Every field
 * is range-checked (an error names the file and the field). */
int model_generation_parse(model_generation *g, const char *json_text, size_t len, char *err, size_t errlen);
/* The token ids of g must be in the vocabulary [0, vocab): 0, or -1 with a
 * message naming the field. model_load calls it. */
int model_generation_check(const model_generation *g, int vocab, char *err, size_t errlen);

#endif
