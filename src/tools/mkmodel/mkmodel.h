/*
 * mkmodel.h — what mkmodel.c (the program, the safetensors writer) shares
 * with mkmodel_gguf.c (the GGUF writer): the shape, the random stream and
 * the normal quantile table.
 */
#ifndef MKMODEL_H
#define MKMODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct shape {
	int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, window, max_pos;
	int pattern;        /* full layer when (i+1) % pattern == 0 */
	int write_pattern;  /* 1: sliding_window_pattern, 0: layer_types */
	float rope_scaling; /* 0 = null */
	float qpas;         /* query_pre_attn_scalar */
} shape;

#define NQ_BITS 16
#define NQ_SIZE (1u << NQ_BITS)
extern float normal_q[NQ_SIZE]; /* standard normal quantiles at (i + 0.5) / NQ_SIZE */
extern uint64_t rng_s[4];
uint64_t rng_next(void); /* xoshiro256** */

int die(const char *fmt, const char *a);
int find_tokenizer_dir(const char *given, char *out, size_t outlen);

/* Writes a GGUF file at path: Gemma 3 of shape s, weights of ggml type
 * `type` ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"), the
 * vocabulary and chat template of the tokenizer folder tokdir. Tensors are
 * generated and written one at a time, in blocks of rows: memory stays at a
 * few MB whatever the shape. Returns 0, or 1 after printing the error. */
int mkmodel_write_gguf(const char *path, const shape *s, const char *type, const char *tokdir, const char *shape_name);

#endif
