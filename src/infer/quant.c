/*
 * quant.c — quantizing and dequantizing ggml's block formats, the 8-bit
 * activation blocks, and the portable quantized dot product (see quant.h).
 *
 * This file is built without FMA flags: the dequantization expressions must
 * round after each multiply, as the format defines them.
 */
#include <math.h>
#include <string.h>
#include "infer/quant.h"

static float h2f(uint16_t h) { return f16_to_f32(h); }
static int nearest(float x) { return (int)lrintf(x); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi
								       : v; }

/* ------------------------------------------------------------ quantize */

static void q8_0_block(block_q8_0 *y, const float *x)
{
	float amax = 0;
	for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
	float d = amax / 127, id = d ? 1.0f / d : 0.0f;
	y->d = f32_to_f16(d);
	for (int j = 0; j < 32; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
}

static void q4_0_block(block_q4_0 *y, const float *x)
{
	/* the signed value of largest magnitude maps to -8, so the other end of
	 * the range (+7) is never the clipped one */
	float amax = 0, max = 0;
	for (int j = 0; j < 32; j++)
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	float d = max / -8, id = d ? 1.0f / d : 0.0f;
	y->d = f32_to_f16(d);
	for (int j = 0; j < 16; j++) {
		int a = (int8_t)(x[j] * id + 8.5f), b = (int8_t)(x[16 + j] * id + 8.5f);
		a = a > 15 ? 15 : a;
		b = b > 15 ? 15 : b;
		y->qs[j] = (uint8_t)(a | b << 4);
	}
}

static void q4_k_block(block_q4_k *y, const float *x)
{
	float scale[8], minv[8], max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		float lo = 0, hi = x[32 * j];
		for (int i = 0; i < 32; i++) {
			lo = fminf(lo, x[32 * j + i]);
			hi = fmaxf(hi, x[32 * j + i]);
		}
		scale[j] = (hi - lo) / 15; /* lo <= 0: the format subtracts a non-negative min */
		minv[j] = -lo;
		max_scale = fmaxf(max_scale, scale[j]);
		max_min = fmaxf(max_min, minv[j]);
	}
	float is = max_scale > 0 ? 63 / max_scale : 0, im = max_min > 0 ? 63 / max_min : 0;
	uint8_t sc[8], m[8];
	for (int j = 0; j < 8; j++) {
		sc[j] = (uint8_t)clampi(nearest(is * scale[j]), 0, 63);
		m[j] = (uint8_t)clampi(nearest(im * minv[j]), 0, 63);
	}
	y->d = f32_to_f16(max_scale / 63);
	y->dmin = f32_to_f16(max_min / 63);
	memset(y->scales, 0, sizeof y->scales);
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			y->scales[j] |= sc[j];
			y->scales[j + 4] |= m[j];
		} else {
			y->scales[j + 4] = (uint8_t)((sc[j] & 15) | (m[j] & 15) << 4);
			y->scales[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
			y->scales[j] |= (uint8_t)((m[j] >> 4) << 6);
		}
	}
	/* the codes are chosen against the rounded scales the reader will use */
	float d = h2f(y->d), dmin = h2f(y->dmin);
	uint8_t L[256];
	for (int j = 0; j < 8; j++) {
		float d1 = d * sc[j], m1 = dmin * m[j];
		for (int i = 0; i < 32; i++)
			L[32 * j + i] = d1 > 0 ? (uint8_t)clampi(nearest((x[32 * j + i] + m1) / d1), 0, 15) : 0;
	}
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++)
			y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

static void q6_k_block(block_q6_k *y, const float *x)
{
	float scale[16], max_scale = 0, max_abs = 0;
	for (int k = 0; k < 16; k++) {
		float amax = 0, v = 0;
		for (int i = 0; i < 16; i++)
			if (amax < fabsf(x[16 * k + i])) {
				amax = fabsf(x[16 * k + i]);
				v = x[16 * k + i];
			}
		scale[k] = v / -32; /* as Q4_0: the largest magnitude maps to -32 */
		if (fabsf(scale[k]) > max_abs) {
			max_abs = fabsf(scale[k]);
			max_scale = scale[k];
		}
	}
	float iscale = max_scale != 0 ? -128 / max_scale : 0;
	y->d = f32_to_f16(iscale != 0 ? 1 / iscale : 0);
	for (int k = 0; k < 16; k++) y->scales[k] = (int8_t)clampi(nearest(iscale * scale[k]), -128, 127);
	float d = h2f(y->d);
	uint8_t L[256];
	for (int k = 0; k < 16; k++) {
		float dk = d * y->scales[k];
		for (int i = 0; i < 16; i++)
			L[16 * k + i] = (uint8_t)(dk != 0 ? clampi(nearest(x[16 * k + i] / dk), -32, 31) + 32 : 32);
	}
	for (int h = 0; h < 2; h++) {
		const uint8_t *q = L + 128 * h;
		uint8_t *ql = y->ql + 64 * h, *qh = y->qh + 32 * h;
		for (int l = 0; l < 32; l++) {
			ql[l] = (uint8_t)((q[l] & 15) | (q[l + 64] & 15) << 4);
			ql[l + 32] = (uint8_t)((q[l + 32] & 15) | (q[l + 96] & 15) << 4);
			qh[l] = (uint8_t)((q[l] >> 4) | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
		}
	}
}

void quant_quantize_row(dtype t, void *dst, const float *src, size_t n)
{
	size_t nb = n / (size_t)dtype_block_elems(t);
	switch (t) {
	case DTYPE_Q8_0:
		for (size_t b = 0; b < nb; b++) q8_0_block((block_q8_0 *)dst + b, src + 32 * b);
		return;
	case DTYPE_Q4_0:
		for (size_t b = 0; b < nb; b++) q4_0_block((block_q4_0 *)dst + b, src + 32 * b);
		return;
	case DTYPE_Q4_K:
		for (size_t b = 0; b < nb; b++) q4_k_block((block_q4_k *)dst + b, src + 256 * b);
		return;
	case DTYPE_Q6_K:
		for (size_t b = 0; b < nb; b++) q6_k_block((block_q6_k *)dst + b, src + 256 * b);
		return;
	case DTYPE_F32: memcpy(dst, src, n * 4); return;
	case DTYPE_F16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h = f32_to_f16(src[i]);
			memcpy((char *)dst + 2 * i, &h, 2);
		}
		return;
	case DTYPE_BF16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h = f32_to_bf16(src[i]);
			memcpy((char *)dst + 2 * i, &h, 2);
		}
		return;
	case DTYPE_Q4_0_X8:
	case DTYPE_Q8_0_X8: return; /* 8 rows at a time: quant_pack_x8 */
	}
}

/* ------------------------------------------------------------ dequantize */

/* 6-bit scale and min of Q4_K sub-block j */
static void q4_k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
		*m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
	}
}

/* Q6_K code (0..63) of element e (0..255) of a block */
static int q6_k_code(const block_q6_k *b, int e)
{
	int h = e / 128, r = e % 128, l = r % 32, part = r / 32;
	const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
	int lo = part & 1 ? ql[l + 32] : ql[l];
	lo = part & 2 ? lo >> 4 : lo & 15;
	return lo | ((qh[l] >> (2 * part)) & 3) << 4;
}

/* Block pointers come from files with any alignment: fields are copied out. */
static void dq_block(dtype t, float *y, const unsigned char *p)
{
	uint16_t h;
	switch (t) {
	case DTYPE_Q8_0: {
		memcpy(&h, p, 2);
		float d = h2f(h);
		for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
		return;
	}
	case DTYPE_Q4_0: {
		memcpy(&h, p, 2);
		float d = h2f(h);
		for (int j = 0; j < 16; j++) {
			y[j] = (float)((p[2 + j] & 15) - 8) * d;
			y[16 + j] = (float)((p[2 + j] >> 4) - 8) * d;
		}
		return;
	}
	case DTYPE_Q4_K: {
		block_q4_k b;
		memcpy(&b, p, sizeof b);
		float d = h2f(b.d), dmin = h2f(b.dmin);
		for (int c = 0; c < 4; c++) {
			int sc, m;
			q4_k_scale_min(b.scales, 2 * c, &sc, &m);
			float d1 = d * (float)sc, m1 = dmin * (float)m;
			q4_k_scale_min(b.scales, 2 * c + 1, &sc, &m);
			float d2 = d * (float)sc, m2 = dmin * (float)m;
			for (int l = 0; l < 32; l++) {
				float a = d1 * (float)(b.qs[32 * c + l] & 15);
				float e = d2 * (float)(b.qs[32 * c + l] >> 4);
				y[64 * c + l] = a - m1;
				y[64 * c + 32 + l] = e - m2;
			}
		}
		return;
	}
	case DTYPE_Q6_K: {
		block_q6_k b;
		memcpy(&b, p, sizeof b);
		float d = h2f(b.d);
		for (int e = 0; e < 256; e++) {
			float s = d * (float)b.scales[e / 16];
			y[e] = s * (float)(q6_k_code(&b, e) - 32);
		}
		return;
	}
	default:
		return;
	}
}

void quant_dequantize_row(dtype t, float *dst, const void *src, size_t n)
{
	if (!dtype_is_quantized(t)) {
		for (size_t i = 0; i < n; i++) dst[i] = weight_at(src, t, i);
		return;
	}
	size_t be = (size_t)dtype_block_elems(t), bb = dtype_block_bytes(t);
	for (size_t b = 0; b < n / be; b++) dq_block(t, dst + b * be, (const unsigned char *)src + b * bb);
}

float quant_dequantize_one(dtype t, const void *src, size_t i)
{
	size_t be = (size_t)dtype_block_elems(t);
	float tmp[QK_SUPER];
	dq_block(t, tmp, (const unsigned char *)src + (i / be) * dtype_block_bytes(t));
	return tmp[i % be];
}

/* ------------------------------------------------------------ x8 */

void quant_pack_x8(dtype t, void *dst, const void *src, size_t n)
{
	size_t bb = dtype_block_bytes(t), q = bb - 2, nb = n / QK_SMALL, rb = nb * bb;
	unsigned char *codes = dst, *scales = codes + nb * 8 * q;
	const unsigned char *s = src;
	for (size_t k = 0; k < nb; k++)
		for (int r = 0; r < X8_ROWS; r++) {
			const unsigned char *b = s + (size_t)r * rb + k * bb;
			memcpy(scales + 16 * k + 2 * r, b, 2);
			for (size_t l = 0; l < q / 4; l++) memcpy(codes + 8 * q * k + 32 * l + 4 * r, b + 2 + 4 * l, 4);
		}
}

/* The q code bytes of row lane's block k, in the block's order, and its scale. */
static float x8_block(const unsigned char *group, size_t q, size_t nb, int lane, size_t k, uint8_t *qs)
{
	uint16_t h;
	for (size_t l = 0; l < q / 4; l++) memcpy(qs + 4 * l, group + 8 * q * k + 32 * l + 4 * lane, 4);
	memcpy(&h, group + nb * 8 * q + 16 * k + 2 * lane, 2);
	return h2f(h);
}

void quant_x8_dequantize_row(dtype t, float *dst, const void *group, int lane, size_t n)
{
	size_t nb = n / QK_SMALL, q = dtype_block_bytes(t) - 2;
	for (size_t k = 0; k < nb; k++) {
		uint8_t qs[32];
		float d = x8_block(group, q, nb, lane, k, qs), *y = dst + k * QK_SMALL;
		if (t == DTYPE_Q8_0_X8) {
			for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)qs[j] * d;
			continue;
		}
		for (int j = 0; j < 16; j++) {
			y[j] = (float)((qs[j] & 15) - 8) * d;
			y[16 + j] = (float)((qs[j] >> 4) - 8) * d;
		}
	}
}

/* ------------------------------------------------------------ activations */

static int x_is_super(dtype wt) { return wt == DTYPE_Q4_K || wt == DTYPE_Q6_K; }

size_t quant_x_row_bytes(dtype wt, size_t n)
{
	return x_is_super(wt) ? n / QK_SUPER * sizeof(xblock_q8k) : n / QK_SMALL * sizeof(xblock_q8);
}

/* d = amax / 127 and codes rounded to nearest: symmetric, so that a block's
 * integer sum times d * dw is the dot product within half a step per element. */
static float x_codes(int8_t *q, const float *x, int n)
{
	float amax = 0;
	for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
	float d = amax / 127, id = d ? 1.0f / d : 0.0f;
	/* round to nearest even by adding and taking off 1.5 * 2^23 (|x * id| <=
	 * 127): what the SIMD builds' conversion does, without a libm call */
	for (int j = 0; j < n; j++) {
		float t = x[j] * id + 12582912.0f;
		q[j] = (int8_t)(int)(t - 12582912.0f);
	}
	return d;
}

void quant_quantize_x(dtype wt, void *dst, const float *x, size_t n)
{
	if (x_is_super(wt)) {
		xblock_q8k *y = dst;
		for (size_t b = 0; b < n / QK_SUPER; b++, y++) {
			y->d = x_codes(y->qs, x + b * QK_SUPER, QK_SUPER);
			for (int k = 0; k < 16; k++) {
				int s = 0;
				for (int i = 0; i < 16; i++) s += y->qs[16 * k + i];
				y->bsums[k] = (int16_t)s;
			}
		}
	} else {
		xblock_q8 *y = dst;
		for (size_t b = 0; b < n / QK_SMALL; b++, y++) {
			y->d = x_codes(y->qs, x + b * QK_SMALL, QK_SMALL);
			int sum = 0;
			for (int i = 0; i < QK_SMALL; i++) sum += y->qs[i];
			y->sum = sum;
		}
	}
}

/* ------------------------------------------------------------ dot */

float quant_x8_dot_row(dtype t, const void *group, int lane, const void *xq, size_t n)
{
	size_t nb = n / QK_SMALL, q = dtype_block_bytes(t) - 2;
	const xblock_q8 *x = xq;
	float acc = 0;
	for (size_t k = 0; k < nb; k++, x++) {
		uint8_t qs[32];
		float d = x8_block(group, q, nb, lane, k, qs);
		int s = 0;
		if (t == DTYPE_Q8_0_X8) {
			for (int j = 0; j < 32; j++) s += (int8_t)qs[j] * x->qs[j];
		} else {
			for (int j = 0; j < 16; j++) s += (qs[j] & 15) * x->qs[j] + (qs[j] >> 4) * x->qs[16 + j];
			s -= 8 * x->sum;
		}
		acc = fmaf(d * x->d, (float)s, acc);
	}
	return acc;
}

float quant_dot_row(dtype wt, const void *w, const void *xq, size_t n)
{
	const unsigned char *p = w;
	float sum = 0;
	uint16_t h;
	switch (wt) {
	case DTYPE_Q8_0: {
		const xblock_q8 *x = xq;
		for (size_t b = 0; b < n / 32; b++, p += sizeof(block_q8_0), x++) {
			int s = 0;
			for (int j = 0; j < 32; j++) s += (int8_t)p[2 + j] * x->qs[j];
			memcpy(&h, p, 2);
			sum += h2f(h) * x->d * (float)s;
		}
		return sum;
	}
	case DTYPE_Q4_0: {
		const xblock_q8 *x = xq;
		for (size_t b = 0; b < n / 32; b++, p += sizeof(block_q4_0), x++) {
			int s = 0;
			for (int j = 0; j < 16; j++)
				s += ((p[2 + j] & 15) - 8) * x->qs[j] + ((p[2 + j] >> 4) - 8) * x->qs[16 + j];
			memcpy(&h, p, 2);
			sum += h2f(h) * x->d * (float)s;
		}
		return sum;
	}
	case DTYPE_Q4_K: {
		const xblock_q8k *x = xq;
		for (size_t b = 0; b < n / 256; b++, p += sizeof(block_q4_k), x++) {
			block_q4_k blk;
			memcpy(&blk, p, sizeof blk);
			int isum = 0, msum = 0;
			for (int j = 0; j < 8; j++) {
				int sc, m, s = 0;
				q4_k_scale_min(blk.scales, j, &sc, &m);
				const uint8_t *q = blk.qs + 32 * (j / 2);
				for (int l = 0; l < 32; l++) s += (j & 1 ? q[l] >> 4 : q[l] & 15) * x->qs[32 * j + l];
				isum += sc * s;
				msum += m * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
			}
			sum += h2f(blk.d) * x->d * (float)isum - h2f(blk.dmin) * x->d * (float)msum;
		}
		return sum;
	}
	case DTYPE_Q6_K: {
		const xblock_q8k *x = xq;
		for (size_t b = 0; b < n / 256; b++, p += sizeof(block_q6_k), x++) {
			block_q6_k blk;
			memcpy(&blk, p, sizeof blk);
			int isum = 0;
			for (int k = 0; k < 16; k++) {
				int s = 0;
				for (int i = 0; i < 16; i++) s += (q6_k_code(&blk, 16 * k + i) - 32) * x->qs[16 * k + i];
				isum += blk.scales[k] * s;
			}
			sum += h2f(blk.d) * x->d * (float)isum;
		}
		return sum;
	}
	default:
		return 0;
	}
}
