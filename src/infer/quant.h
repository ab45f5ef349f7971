/*
 * quant.h — the block-quantized weight types (ggml's formats, byte for byte,
 * so GGUF files are used in place) and the 8-bit activation blocks the
 * quantized matmul multiplies them with.
 *
 * Weight blocks (little-endian, no padding; f16 is IEEE half):
 *   Q8_0  32 elements, 34 B: f16 d; int8 qs[32]             x = qs[i] * d
 *   Q4_0  32 elements, 18 B: f16 d; uint8 qs[16]            x = (nibble - 8) * d,
 *         element j < 16 is the low nibble of qs[j], element 16 + j its high nibble
 *   Q4_K 256 elements, 144 B: f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]
 *         8 sub-blocks of 32 with 6-bit scale sc and min m packed in scales[]
 *         (sub-block j < 4: sc = scales[j] & 63, m = scales[j+4] & 63; j >= 4:
 *         sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
 *         m = (scales[j+4] >> 4) | (scales[j] >> 6) << 4);
 *         x = (d * sc) * q - (dmin * m); qs holds 64-element chunks, the low
 *         nibbles of 32 bytes are the chunk's first sub-block, the high its second
 *   Q6_K 256 elements, 210 B: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d
 *         x = (d * scales[k]) * (q - 32) for the 16-element group k; each half of
 *         128 takes 64 bytes of ql and 32 of qh: for l < 32, q of elements
 *         l, l+32, l+64, l+96 = low/low/high/high nibbles of ql[l], ql[l+32],
 *         ql[l], ql[l+32] with bits 0-1, 2-3, 4-5, 6-7 of qh[l] on top
 * Dequantization evaluates exactly those expressions in f32, in that order
 * (no fused multiply-add), so it is bit-exact with the format's definition.
 *
 * Q4_0x8 and Q8_0x8 (DTYPE_Q4_0_X8, DTYPE_Q8_0_X8, in memory only): rows
 * kept 8 together, so that one vector holds 4 elements of each of 8 rows and
 * a block's products end as the 8 rows' sums in 8 lanes, with no horizontal
 * sum. A group of 8 rows of n elements (nb = n / 32 blocks, q code bytes a
 * block: 16 for Q4_0, 32 for Q8_0) takes the bytes of its 8 rows: first
 * nb x 8q bytes of codes, block k's at 8q k in q/4 runs of 32 bytes, run L
 * holding bytes 4L..4L+3 of each row's qs, row r at 4r (Q8_0: elements
 * 4L..4L+3; Q4_0: the low nibbles are elements 4L..4L+3, the high ones
 * 16+4L..16+4L+3); then nb x 16 bytes of scales, block k's 8 f16 d at 16 k. A
 * row is addressed by its group (row / 8, 8 rows' bytes apart) and lane
 * (row % 8). Loaded Q4_0 and Q8_0 tensors whose row count is a multiple of 8
 * are kept this way (model_convert).
 *
 * Activations: before a quantized matmul each activation row is quantized
 * once to 8 bits (quant_quantize_x): per 32 elements {f32 d; int32 sum;
 * int8 qs[32]} for Q8_0/Q4_0 weights (sum: Q4_0's offset 8 is taken off with it), per 256 {f32 d; int16 bsums[16]; int8 qs[256]} for
 * the K types (bsums: sums of 16 qs, which the mins of Q4_K and the offset 32
 * of Q6_K need). Dot products are then integer sums per block, scaled once
 * per block.
 */
#ifndef INFER_QUANT_H
#define INFER_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "infer/kernels.h"

#define QK_SMALL 32  /* elements per Q8_0 / Q4_0 block */
#define QK_SUPER 256 /* elements per Q4_K / Q6_K block */

typedef struct {
	uint16_t d;
	int8_t qs[32];
} block_q8_0;
typedef struct {
	uint16_t d;
	uint8_t qs[16];
} block_q4_0;
typedef struct {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qs[128];
} block_q4_k;
typedef struct {
	uint8_t ql[128];
	uint8_t qh[64];
	int8_t scales[16];
	uint16_t d;
} block_q6_k;

/* activation blocks */
typedef struct {
	float d;
	int32_t sum;
	int8_t qs[32];
} xblock_q8; /* sum: of the 32 qs */
typedef struct {
	float d;
	int16_t bsums[16];
	int8_t qs[256];
} xblock_q8k;

/* n elements of src into blocks of type t at dst (n a multiple of the block).
 * Q8_0 and Q4_0 as ggml's reference quantizer (scale from the largest
 * magnitude, round to nearest); Q4_K and Q6_K by a plain min/max choice of
 * the sub-block scales, rounded to nearest. F32/F16/BF16 convert. */
void quant_quantize_row(dtype t, void *dst, const float *src, size_t n);
/* n elements of type t at src into f32. */
void quant_dequantize_row(dtype t, float *dst, const void *src, size_t n);
/* Element i of a quantized array (block i / block_elems, offset i % block_elems). */
float quant_dequantize_one(dtype t, const void *src, size_t i);

#define X8_ROWS 8
/* 8 consecutive rows of n elements of dtype_x8_base(t) at src into one
 * group of the x8 type t at dst. */
void quant_pack_x8(dtype t, void *dst, const void *src, size_t n);
/* Row `lane` (0..7) of the group of x8 type t at group (n elements) into
 * f32: the same values as the row it was packed from. */
void quant_x8_dequantize_row(dtype t, float *dst, const void *group, int lane, size_t n);

/* Activation rows for a matmul with weights of type wt (a block type). */
size_t quant_x_row_bytes(dtype wt, size_t n);
void quant_quantize_x(dtype wt, void *dst, const float *x, size_t n);

/* The dot product of one weight row (n elements of type wt, n a multiple of
 * the block) with one activation row quantized by quant_quantize_x: the
 * portable definition the SIMD builds are tested against. Blocks are summed in
 * order, each block's integer sum scaled once. */
float quant_dot_row(dtype wt, const void *w, const void *xq, size_t n);
/* The same for row `lane` of a group of x8 type t: blocks in order, each
 * block's integer sum s (Q4_0's offset 8 included) added as
 * acc = fma(d_w * d_x, s, acc), what the SIMD builds do per lane, so the bits
 * are the same. */
float quant_x8_dot_row(dtype t, const void *group, int lane, const void *xq, size_t n);

/* The AVX2 quantized matmul (quant_avx2.c), the matmul_q of the avx2 and
 * avx512 kernel tables (kernels.h); call only on a CPU with AVX2 and FMA. */
void quant_matmul_avx2(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
		       const void *w, dtype wt, int in, int o_begin, int o_end);
/* The same for the avx512 kernel table: with AVX512_VNNI (and VL) the Q8_0
 * and Q4_0 tiles take vpdpbusd for maddubs + madd, the same bits. */
void quant_matmul_avx512(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
			 const void *w, dtype wt, int in, int o_begin, int o_end);
/* quant_quantize_x in AVX2: the same bytes, faster. */
void quant_quantize_x_avx2(dtype wt, void *dst, const float *x, size_t n);

#endif
