/*
 * kernels_avx512.c — the kernels for CPUs with AVX-512 (F, BW, VL, DQ) and FMA.
 * Built with AVX-512 flags; only called after kernels_get() checked the CPU.
 *
 * matmul works in tiles of up to 4 weight rows x 4 activation rows: 16 vector
 * accumulators, each weight vector converted once from bf16/f16/f32 and used
 * for 4 activation rows. The weight tile stays in L1 while the activations of
 * a chunk of rows stream from L2, so a batch reads each weight row from
 * memory once. Tails (in % 16) use masked loads.
 */
#include <immintrin.h>
#include "infer/kernels.h"

#define AI static inline __attribute__((always_inline))
#ifndef PREFETCH_TILES
#define PREFETCH_TILES 4   /* weight tiles ahead: rows are short streams the hardware prefetcher does not ramp up on */
#endif

AI __m512 load_w(const char *p, const int wt, __mmask16 m, const int masked)
{
	if (wt == DTYPE_F32)
		return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps((const float *)p);
	__m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256((const __m256i *)p);
	if (wt == DTYPE_BF16)
		return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
	return _mm512_cvtph_ps(h);
}

AI void tile(float *out, size_t ldo, const float *x, size_t ldx, const char *w, size_t wrow_bytes,
             int in, const int wt, const int NO, const int NB)
{
	const int esz = wt == DTYPE_F32 ? 4 : 2;
	__m512 acc[4][4];
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) acc[a][b] = _mm512_setzero_ps();
	int i = 0;
	for (; i + 16 <= in; i += 16) {
		__m512 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = _mm512_loadu_ps(x + b * ldx + i);
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			const char *wp = w + a * wrow_bytes + (size_t)i * esz;
			_mm_prefetch(wp + PREFETCH_TILES * NO * wrow_bytes, _MM_HINT_T0);
			__m512 wv = load_w(wp, wt, 0, 0);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
	if (i < in) {
		__mmask16 m = (__mmask16)((1u << (in - i)) - 1);
		__m512 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = _mm512_maskz_loadu_ps(m, x + b * ldx + i);
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			__m512 wv = load_w(w + a * wrow_bytes + (size_t)i * esz, wt, m, 1);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) out[b * ldo + a] = _mm512_reduce_add_ps(acc[a][b]);
}

#define TILE_FN(WT, NO, NB) \
	static void tile_##WT##_##NO##_##NB(float *out, size_t ldo, const float *x, size_t ldx, \
	                                   const char *w, size_t wrow_bytes, int in) \
	{ tile(out, ldo, x, ldx, w, wrow_bytes, in, WT, NO, NB); }
#define TILE_ROW(WT, NO) TILE_FN(WT, NO, 1) TILE_FN(WT, NO, 2) TILE_FN(WT, NO, 3) TILE_FN(WT, NO, 4)
#define TILE_ALL(WT) TILE_ROW(WT, 1) TILE_ROW(WT, 2) TILE_ROW(WT, 3) TILE_ROW(WT, 4)
TILE_ALL(0) TILE_ALL(1) TILE_ALL(2)

typedef void (*tile_fn)(float *, size_t, const float *, size_t, const char *, size_t, int);
#define TROW(WT, NO) { tile_##WT##_##NO##_1, tile_##WT##_##NO##_2, tile_##WT##_##NO##_3, tile_##WT##_##NO##_4 }
#define TDT(WT) { TROW(WT, 1), TROW(WT, 2), TROW(WT, 3), TROW(WT, 4) }
static const tile_fn tiles[3][4][4] = { TDT(0), TDT(1), TDT(2) };

enum { CHUNK_O = 64, CHUNK_B = 64 };

static void matmul_avx512(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
                          const void *w, dtype wt, int in, int o_begin, int o_end)
{
	size_t rb = (size_t)in * dtype_size(wt);
	for (int ob = o_begin; ob < o_end; ob += CHUNK_O) {
		int oe = ob + CHUNK_O < o_end ? ob + CHUNK_O : o_end;
		for (int bb = 0; bb < n_rows; bb += CHUNK_B) {
			int be = bb + CHUNK_B < n_rows ? bb + CHUNK_B : n_rows;
			for (int o = ob; o < oe; o += 4) {
				int no = oe - o < 4 ? oe - o : 4;
				const char *wr = (const char *)w + (size_t)o * rb;
				for (int b = bb; b < be; b += 4) {
					int nb = be - b < 4 ? be - b : 4;
					tiles[wt][no - 1][nb - 1](out + b * ldo + o, ldo, x + b * ldx, ldx, wr, rb, in);
				}
			}
		}
	}
}

static float dot_avx512(const float *a, const float *b, int n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	int i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy_avx512(float *y, float a, const float *x, int n)
{
	__m512 av = _mm512_set1_ps(a);
	for (int i = 0; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 yv = _mm512_maskz_loadu_ps(m, y + i);
		_mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), yv));
	}
}

static void to_f32_avx512(float *out, const void *w, dtype wt, size_t n)
{
	const char *p = w;
	size_t esz = dtype_size(wt);
	for (size_t i = 0; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 v;
		if (wt == DTYPE_BF16) v = load_w(p + i * esz, DTYPE_BF16, m, 1);
		else if (wt == DTYPE_F16) v = load_w(p + i * esz, DTYPE_F16, m, 1);
		else v = load_w(p + i * esz, DTYPE_F32, m, 1);
		_mm512_mask_storeu_ps(out + i, m, v);
	}
}

const kernels kernels_avx512 = {
	.name = "avx512",
	.matmul = matmul_avx512,
	.dot = dot_avx512,
	.axpy = axpy_avx512,
	.to_f32 = to_f32_avx512,
};
