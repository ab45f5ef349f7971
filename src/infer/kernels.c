/*
 * kernels.c — the portable kernels (plain C, any CPU), the number conversions
 * every build shares, and the choice of kernels at run time.
 *
 * The portable matmul follows the same tiling as the SIMD builds (a few weight
 * rows against a few activation rows), so it is a readable statement of what
 * they compute; it is slower, not different.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "infer/kernels.h"
#include "infer/quant.h"

size_t dtype_size(dtype t)
{
	return t == DTYPE_F32 ? 4 : t == DTYPE_F16 || t == DTYPE_BF16 ? 2
								      : 0;
}

const char *dtype_name(dtype t)
{
	switch (t) {
	case DTYPE_F32: return "F32";
	case DTYPE_F16: return "F16";
	case DTYPE_BF16: return "BF16";
	case DTYPE_Q8_0: return "Q8_0";
	case DTYPE_Q4_0: return "Q4_0";
	case DTYPE_Q4_K: return "Q4_K";
	case DTYPE_Q6_K: return "Q6_K";
	case DTYPE_Q4_0_X8: return "Q4_0x8";
	case DTYPE_Q8_0_X8: return "Q8_0x8";
	}
	return "?";
}

int dtype_is_quantized(dtype t) { return t >= DTYPE_Q8_0 && t <= DTYPE_Q8_0_X8; }

int dtype_is_x8(dtype t) { return t == DTYPE_Q4_0_X8 || t == DTYPE_Q8_0_X8; }

dtype dtype_x8_base(dtype t) { return t == DTYPE_Q4_0_X8 ? DTYPE_Q4_0 : t == DTYPE_Q8_0_X8 ? DTYPE_Q8_0
											   : t; }

int dtype_block_elems(dtype t)
{
	return t == DTYPE_Q8_0 || t == DTYPE_Q4_0 || dtype_is_x8(t) ? QK_SMALL : t == DTYPE_Q4_K || t == DTYPE_Q6_K ? QK_SUPER
														    : 1;
}

size_t dtype_block_bytes(dtype t)
{
	switch (t) {
	case DTYPE_Q8_0:
	case DTYPE_Q8_0_X8: return sizeof(block_q8_0);
	case DTYPE_Q4_0:
	case DTYPE_Q4_0_X8: return sizeof(block_q4_0);
	case DTYPE_Q4_K: return sizeof(block_q4_k);
	case DTYPE_Q6_K: return sizeof(block_q6_k);
	default: return dtype_size(t);
	}
}

size_t dtype_row_bytes(dtype t, size_t n) { return n / (size_t)dtype_block_elems(t) * dtype_block_bytes(t); }

_Static_assert(sizeof(block_q8_0) == 34 && sizeof(block_q4_0) == 18 && sizeof(block_q4_k) == 144 &&
		       sizeof(block_q6_k) == 210,
	       "block layouts are ggml's");

float bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

uint16_t f32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
	if (exp == 0) {
		if (man == 0) {
			u = sign;
		} else { /* subnormal: normalise */
			int e = -1;
			do {
				e++;
				man <<= 1;
			} while (!(man & 0x400));
			u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
		}
	} else if (exp == 31) {
		u = sign | 0x7f800000u | (man << 13);
	} else {
		u = sign | ((exp + 127 - 15) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &u, 4);
	return f;
}

uint16_t f32_to_f16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffffu;
	if (a > 0x7f800000u) return sign | 0x7e00;  /* NaN */
	if (a >= 0x477ff000u) return sign | 0x7c00; /* overflow to inf */
	if (a < 0x38800000u) {                      /* subnormal or zero */
		float af;
		memcpy(&af, &a, 4);
		return sign | (uint16_t)lrintf(af * 16777216.0f); /* 2^24: units of 2^-24 */
	}
	uint32_t r = a + 0xfffu + ((a >> 13) & 1);
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float weight_at(const void *w, dtype t, size_t i)
{
	const unsigned char *p = w;
	if (dtype_is_quantized(t)) return quant_dequantize_one(t, w, i);
	if (t == DTYPE_F32) {
		float f;
		memcpy(&f, p + i * 4, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, p + i * 2, 2);
	return t == DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

/* ------------------------------------------------------------ portable */

static void to_f32_portable(float *out, const void *w, dtype wt, size_t n)
{
	if (dtype_is_quantized(wt)) {
		quant_dequantize_row(wt, out, w, n);
		return;
	}
	for (size_t i = 0; i < n; i++) out[i] = weight_at(w, wt, i);
}

/* Sums in 8 interleaved partial sums (as an 8-lane vector would), so rounding
 * resembles the SIMD builds and does not depend on the batch. */
static float dot_portable(const float *a, const float *b, int n)
{
	float acc[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
	for (int l = 0; i < n; i++, l++) acc[l] += a[i] * b[i];
	float s = 0;
	for (int l = 0; l < 8; l++) s += acc[l];
	return s;
}

static void axpy_portable(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static float dot_bf16_portable(const float *a, const uint16_t *b, int n)
{
	float acc[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++) acc[l] += a[i + l] * bf16_to_f32(b[i + l]);
	for (int l = 0; i < n; i++, l++) acc[l] += a[i] * bf16_to_f32(b[i]);
	float s = 0;
	for (int l = 0; l < 8; l++) s += acc[l];
	return s;
}

static void axpy_bf16_portable(float *y, float a, const uint16_t *x, int n)
{
	for (int i = 0; i < n; i++) y[i] += a * bf16_to_f32(x[i]);
}

static void softmax_portable(float *s, int n, float scale, float cap)
{
	float mx = -INFINITY, sum = 0;
	for (int j = 0; j < n; j++) {
		float a = s[j] * scale;
		if (cap > 0) a = cap * tanhf(a / cap);
		s[j] = a;
		if (a > mx) mx = a;
	}
	for (int j = 0; j < n; j++) {
		s[j] = expf(s[j] - mx);
		sum += s[j];
	}
	float inv = 1.0f / sum;
	for (int j = 0; j < n; j++) s[j] *= inv;
}

static void gelu_mul_portable(float *g, const float *u, int n)
{
	for (int i = 0; i < n; i++) {
		float x = g[i];
		g[i] = x / (1.0f + expf(-1.5957691216057308f * (x + 0.044715f * x * x * x))) * u[i];
	}
}

enum { TILE_O = 4,
       TILE_B = 4,
       CHUNK_O = 64,
       CHUNK_B = 64,
       CONV = 256 };

/* One tile: no (<=4) weight rows starting at o, against nb (<=4) activation rows. */
static void tile_portable(float *out, size_t ldo, const float *x, size_t ldx, int nb,
			  const void *w, dtype wt, int in, int o, int no)
{
	float wrow[TILE_O][CONV];
	float acc[TILE_O][TILE_B][8];
	memset(acc, 0, sizeof acc);
	for (int i0 = 0; i0 < in; i0 += CONV) {
		int len = in - i0 < CONV ? in - i0 : CONV;
		for (int a = 0; a < no; a++)
			to_f32_portable(wrow[a], (const char *)w + ((size_t)(o + a) * in + i0) * dtype_size(wt), wt, len);
		for (int a = 0; a < no; a++)
			for (int b = 0; b < nb; b++) {
				const float *xr = x + b * ldx + i0;
				for (int i = 0; i < len; i++) acc[a][b][(i0 + i) & 7] += wrow[a][i] * xr[i];
			}
	}
	for (int a = 0; a < no; a++)
		for (int b = 0; b < nb; b++) {
			float s = 0;
			for (int l = 0; l < 8; l++) s += acc[a][b][l];
			out[b * ldo + o + a] = s;
		}
}

static void matmul_portable(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
			    const void *w, dtype wt, int in, int o_begin, int o_end)
{
	for (int ob = o_begin; ob < o_end; ob += CHUNK_O) {
		int oe = ob + CHUNK_O < o_end ? ob + CHUNK_O : o_end;
		for (int bb = 0; bb < n_rows; bb += CHUNK_B) {
			int be = bb + CHUNK_B < n_rows ? bb + CHUNK_B : n_rows;
			for (int o = ob; o < oe; o += TILE_O) {
				int no = oe - o < TILE_O ? oe - o : TILE_O;
				for (int b = bb; b < be; b += TILE_B) {
					int nb = be - b < TILE_B ? be - b : TILE_B;
					tile_portable(out + b * ldo, ldo, x + b * ldx, ldx, nb, w, wt, in, o, no);
				}
			}
		}
	}
}

/* One weight row at a time against every activation row (the row stays in
 * cache); quant_dot_row and quant_x8_dot_row are the definitions the SIMD
 * builds are tested against. */
static void matmul_q_portable(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
			      const void *w, dtype wt, int in, int o_begin, int o_end)
{
	size_t rb = dtype_row_bytes(wt, (size_t)in);
	if (dtype_is_x8(wt)) {
		for (int o = o_begin; o < o_end; o++)
			for (int b = 0; b < n_rows; b++)
				out[(size_t)b * ldo + o] = quant_x8_dot_row(wt, (const char *)w + (size_t)(o / X8_ROWS) * X8_ROWS * rb, o % X8_ROWS,
									    (const char *)xq + (size_t)b * ldxq, (size_t)in);
		return;
	}
	for (int o = o_begin; o < o_end; o++)
		for (int b = 0; b < n_rows; b++)
			out[(size_t)b * ldo + o] = quant_dot_row(wt, (const char *)w + (size_t)o * rb,
								 (const char *)xq + (size_t)b * ldxq, (size_t)in);
}

/* dot_keys and axpy_values of this build as loops over its dot and axpy:
 * the same bits by construction */
static void dot_keys_portable(float *out, size_t ldo, const float *q, size_t ldq, int nq,
			      const void *keys, dtype kt, int nk, int d)
{
	for (int j = 0; j < nk; j++)
		for (int g = 0; g < nq; g++)
			out[(size_t)g * ldo + j] = kt == DTYPE_BF16 ? dot_bf16_portable(q + (size_t)g * ldq, (const uint16_t *)keys + (size_t)j * d, d)
								    : dot_portable(q + (size_t)g * ldq, (const float *)keys + (size_t)j * d, d);
}

static void axpy_values_portable(float *y, size_t ldy, const float *a, size_t lda, int ny,
				 const void *vals, dtype vt, int nk, int d)
{
	for (int g = 0; g < ny; g++)
		for (int j = 0; j < nk; j++) {
			if (vt == DTYPE_BF16) axpy_bf16_portable(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const uint16_t *)vals + (size_t)j * d, d);
			else axpy_portable(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const float *)vals + (size_t)j * d, d);
		}
}

const kernels kernels_portable = {
	.name = "portable",
	.matmul = matmul_portable,
	.matmul_q = matmul_q_portable,
	.quantize_x = quant_quantize_x,
	.dot = dot_portable,
	.axpy = axpy_portable,
	.dot_bf16 = dot_bf16_portable,
	.axpy_bf16 = axpy_bf16_portable,
	.dot_keys = dot_keys_portable,
	.axpy_values = axpy_values_portable,
	.softmax = softmax_portable,
	.to_f32 = to_f32_portable,
	.gelu_mul = gelu_mul_portable,
};

/* ------------------------------------------------------------ choice */

static int cpu_has_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __builtin_cpu_supports("f16c");
}

static int cpu_has_avx512(void)
{
	__builtin_cpu_init();
	return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
	       __builtin_cpu_supports("avx512dq");
}

const kernels *kernels_get(const char *name)
{
	if (!name) return NULL;
	if (strcmp(name, "portable") == 0) return &kernels_portable;
	if (strcmp(name, "avx2") == 0) return cpu_has_avx2() ? &kernels_avx2 : NULL;
	if (strcmp(name, "avx512") == 0) return cpu_has_avx512() ? &kernels_avx512 : NULL;
	return NULL;
}

const kernels *kernels_best(void)
{
	const kernels *k = kernels_get(getenv("INFERGATE_KERNELS"));
	if (k) return k;
	if (cpu_has_avx512()) return &kernels_avx512;
	if (cpu_has_avx2()) return &kernels_avx2;
	return &kernels_portable;
}
