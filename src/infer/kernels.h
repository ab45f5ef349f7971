/*
 * kernels.h — the numeric kernels of the forward pass, in three builds:
 * portable C (kernels.c), AVX2+FMA (kernels_avx2.c) and AVX-512 (kernels_avx512.c),
 * one chosen at run time from what the CPU supports.
 *
 * Weights stay in their stored type. bf16, f16 and f32 are converted to f32
 * in registers as they are read, against f32 activations; the block types
 * (Q8_0, Q4_0, Q4_K, Q6_K: quant.h) go through matmul_q, against activation
 * rows quantized to 8 bits once per matmul, with integer products per block.
 * Kernels are pure: the output argument comes first, nothing is allocated,
 * nothing is shared, so callers split work across threads by output rows.
 * Pointers to weights need no alignment (safetensors does not promise any).
 *
 * Each output element is summed in an order that depends only on the kernel
 * build and the input length, never on the batch size or on how rows were
 * split between threads: a batch of sequences gives bit-identical results to
 * the same sequences run one at a time.
 */
#ifndef INFER_KERNELS_H
#define INFER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* The quantized types are ggml's block formats, byte for byte (see quant.h):
 * a row of n elements is n / dtype_block_elems() blocks. */
typedef enum dtype {
	DTYPE_F32 = 0,
	DTYPE_F16 = 1,
	DTYPE_BF16 = 2,
	DTYPE_Q8_0 = 3,
	DTYPE_Q4_0 = 4,
	DTYPE_Q4_K = 5,
	DTYPE_Q6_K = 6,
	DTYPE_Q4_0_X8 = 7, /* Q4_0 blocks of 8 rows kept together (quant.h): in memory only */
	DTYPE_Q8_0_X8 = 8, /* the same for Q8_0 */
} dtype;
#define DTYPE_COUNT 9

size_t dtype_size(dtype t);        /* bytes per element of F32/F16/BF16; 0 for block types */
const char *dtype_name(dtype t);   /* "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "Q4_0x8", "Q8_0x8" */
int dtype_block_elems(dtype t);    /* elements per block: 1, 32 or 256 */
size_t dtype_block_bytes(dtype t); /* bytes per block: 4, 2, 2, 34, 18, 144, 210, 18, 34 */
/* Bytes of n elements (n a multiple of dtype_block_elems(t)). */
size_t dtype_row_bytes(dtype t, size_t n);
int dtype_is_quantized(dtype t);
/* Q4_0x8 and Q8_0x8 (quant.h): rows kept 8 together; their block type. */
int dtype_is_x8(dtype t);
dtype dtype_x8_base(dtype t); /* Q4_0 for Q4_0x8, Q8_0 for Q8_0x8, else t */

float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f); /* round to nearest even */
/* Reads element i of a weight array of type t (any alignment); for a block
 * type, i counts elements across consecutive blocks (row after row). Not for
 * the x8 types, whose rows are not consecutive (quant_x8_dequantize_row). */
float weight_at(const void *w, dtype t, size_t i);

typedef struct kernels {
	const char *name; /* "portable", "avx2", "avx512" */
	/* out[b*ldo + o] = sum_i w[o*in + i] * x[b*ldx + i]
	 * for b in [0, n_rows), o in [o_begin, o_end). w is [out][in] of type wt.
	 * Each weight row is read from memory once per chunk of activation rows
	 * (64-120 of them, per build), not once per row. */
	void (*matmul)(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
		       const void *w, dtype wt, int in, int o_begin, int o_end);
	/* The same for weights of a block type wt (quant.h), against activation
	 * rows already quantized by quant_quantize_x(wt, ...), ldxq bytes apart. */
	void (*matmul_q)(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
			 const void *w, dtype wt, int in, int o_begin, int o_end);
	/* quant_quantize_x (quant.h) of this build: the same bytes in every build */
	void (*quantize_x)(dtype wt, void *dst, const float *x, size_t n);
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float a, const float *x, int n); /* y += a * x */
	/* The same with the second operand in bf16 (a bf16 KV cache); summed in
	 * the same order as dot and axpy. */
	float (*dot_bf16)(const float *a, const uint16_t *b, int n);
	void (*axpy_bf16)(float *y, float a, const uint16_t *x, int n);
	/* Attention over a run of keys for the query heads that share them:
	 * out[g*ldo + j] = dot(q + g*ldq, key j) for g < nq, j < nk, the keys d
	 * elements apart, of type kt (DTYPE_F32 or DTYPE_BF16); the same bits as
	 * dot / dot_bf16 on each pair. Each key is read once for the nq heads. */
	void (*dot_keys)(float *out, size_t ldo, const float *q, size_t ldq, int nq,
			 const void *keys, dtype kt, int nk, int d);
	/* y[g*ldy + i] += a[g*lda + j] * value j [i] for j = 0, 1, .. nk-1 in
	 * order: the same bits as nk calls of axpy / axpy_bf16 per head. */
	void (*axpy_values)(float *y, size_t ldy, const float *a, size_t lda, int ny,
			    const void *vals, dtype vt, int nk, int d);
	/* One row of attention scores in place: a_j = s[j] * scale (then cap x
	 * tanh(a_j / cap) when cap > 0), s[j] = e^(a_j - max a) / sum of those.
	 * The builds differ in the last bits (their exp); each computes a row of
	 * a given length the same way wherever it runs. */
	void (*softmax)(float *s, int n, float scale, float cap);
	void (*to_f32)(float *out, const void *w, dtype wt, size_t n); /* convert n elements */
	/* g[i] = gelu_tanh(g[i]) * u[i] for i in [0, n): the GeGLU of the MLP, with
	 * gelu_tanh(x) = 0.5 x (1 + tanh(c (x + 0.044715 x^3))) computed as the
	 * equal x / (1 + exp(-2 c (x + 0.044715 x^3))), c = sqrt(2 / pi). */
	void (*gelu_mul)(float *g, const float *u, int n);
} kernels;

extern const kernels kernels_portable;
extern const kernels kernels_avx2;
extern const kernels kernels_avx512;

/* The kernels named ("portable", "avx2", "avx512"), or NULL when unknown or when
 * this CPU cannot run them. */
const kernels *kernels_get(const char *name);
/* The fastest kernels this CPU runs; the environment variable INFERGATE_KERNELS
 * (a name above) overrides the choice when that build is supported. */
const kernels *kernels_best(void);

#endif
