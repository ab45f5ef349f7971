/*
 * kernels_avx512.c — the kernels for CPUs with AVX-512 (F, BW, VL, DQ) and FMA.
 * Built with AVX-512 flags; only called after kernels_get() checked the CPU.
 *
 * matmul has two shapes of tile, and every shape sums an output element the
 * same way for a given weight type (below), so a row's result never depends
 * on the tile or the batch it ran in:
 *  - up to 4 activation rows (decode steps): the caller's weight rows cut
 *    into 4 equal parts, and one row of each part at a time, start to end,
 *    against all the activation rows: 4 sequential streams megabytes apart,
 *    which the hardware prefetchers follow well, and 4 independent FMA
 *    chains. This is the memory-bound case. Measured on Zen 5 (2 threads,
 *    a decode step of the 270m shape, best step): 4 far streams 10.3-10.7 ms,
 *    1 stream 12.2-12.5, 2 streams 11.0-11.2, 8 streams 11.7-11.9; the
 *    earlier tile of 8 adjacent rows (8 interleaved streams 1280 bytes apart,
 *    with software prefetch) 15-18 ms; 2 adjacent rows (no prefetch) 25 ms.
 *    Software prefetch ahead of the far streams (2, 4, 8 KB) made steps
 *    slower, so there is none.
 *  - more activation rows: 4 weight rows x 4 activation rows, 16
 *    accumulators, each weight vector converted once and used 4 times. The
 *    weight tile stays in L1 while the activation rows of a chunk of 64 pass
 *    over it from L2, so the weights stream from memory once per call
 *    however many rows there are; only the first pass prefetches.
 * Summation: lane l of an accumulator takes elements 16k + l in increasing k,
 * then one fixed horizontal sum. bf16 becomes f32 by a zero-extend and a
 * 16-bit shift. Tails use masked loads. (Splitting bf16 pairs by shift and
 * mask, with the activations permuted to match, measured no faster for one
 * row and slower for batches: the permutes and the longer FMA chains cost
 * more than the zero-extends they save.)
 */
#include <immintrin.h>
#include "infer/kernels.h"
#include "infer/quant.h"

#define AI static inline __attribute__((always_inline))
#ifndef STREAMS
#define STREAMS 4 /* weight streams of a decode tile */
#endif
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 8192 /* how far ahead of the weight stream to prefetch */
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

/* NO weight rows (wrow_bytes apart) against NB activation rows; the result of
 * weight row a and activation row b goes to out[b * ldo + a * os].
 * With PF, prefetches the weight bytes PREFETCH_BYTES ahead of the tile at the
 * rate the tile consumes them (NO * 16 elements per step). */
AI void tile(float *out, size_t ldo, size_t os, const float *x, size_t ldx, const char *w, size_t wrow_bytes,
	     int in, const int wt, const int NO, const int NB, const int PF)
{
	const int esz = wt == DTYPE_F32 ? 4 : 2;
	const int step_bytes = NO * 16 * esz;
	__m512 acc[8][4];
#pragma GCC unroll 8
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) acc[a][b] = _mm512_setzero_ps();
	const char *pf = w + PREFETCH_BYTES;
	int i = 0;
	for (; i + 16 <= in; i += 16) {
		if (PF) {
#pragma GCC unroll 8
			for (int l = 0; l < step_bytes; l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
			pf += step_bytes;
		}
		__m512 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = _mm512_loadu_ps(x + b * ldx + i);
#pragma GCC unroll 8
		for (int a = 0; a < NO; a++) {
			__m512 wv = load_w(w + a * wrow_bytes + (size_t)i * esz, wt, 0, 0);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
	if (i < in) {
		__mmask16 m = (__mmask16)((1u << (in - i)) - 1);
		__m512 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = _mm512_maskz_loadu_ps(m, x + b * ldx + i);
#pragma GCC unroll 8
		for (int a = 0; a < NO; a++) {
			__m512 wv = load_w(w + a * wrow_bytes + (size_t)i * esz, wt, m, 1);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
#pragma GCC unroll 8
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) out[b * ldo + a * os] = _mm512_reduce_add_ps(acc[a][b]);
}

typedef void (*tile_fn)(float *, size_t, const float *, size_t, const char *, size_t, int);

/* The batch tiles: NO in 1..4 weight rows x NB in 1..4 activation rows, with
 * or without prefetch (only the first pass over a weight tile prefetches). */
#define TILE_FN(WT, NO, NB, PF) \
	static void tile_##WT##_##NO##_##NB##_##PF(float *out, size_t ldo, const float *x, size_t ldx, \
						   const char *w, size_t wrow_bytes, int in) \
	{ \
		tile(out, ldo, 1, x, ldx, w, wrow_bytes, in, WT, NO, NB, PF); \
	}
#define TILE_NB(WT, NO, PF) TILE_FN(WT, NO, 1, PF) TILE_FN(WT, NO, 2, PF) TILE_FN(WT, NO, 3, PF) TILE_FN(WT, NO, 4, PF)
#define TILE_NO(WT, PF) TILE_NB(WT, 1, PF) TILE_NB(WT, 2, PF) TILE_NB(WT, 3, PF) TILE_NB(WT, 4, PF)
#define TILE_ALL(WT) TILE_NO(WT, 0) TILE_NO(WT, 1)
TILE_ALL(0)
TILE_ALL(1)
TILE_ALL(2)

#define T_NB(WT, NO, PF) \
	{ \
		tile_##WT##_##NO##_1_##PF, tile_##WT##_##NO##_2_##PF, tile_##WT##_##NO##_3_##PF, tile_##WT##_##NO##_4_##PF \
	}
#define T_NO(WT, PF) \
	{ \
		T_NB(WT, 1, PF), T_NB(WT, 2, PF), T_NB(WT, 3, PF), T_NB(WT, 4, PF) \
	}
#define T_DT(WT) \
	{ \
		T_NO(WT, 0), T_NO(WT, 1) \
	}
/* clang-format off */
	static const tile_fn tiles[3][2][4][4] = {T_DT(0), T_DT(1), T_DT(2)};
/* clang-format on */

/* The decode tiles: STREAMS weight rows far apart (one from each of STREAMS
 * equal parts of the caller's rows, `stride` bytes apart, results `os` floats
 * apart), or one row, against NB in 1..4 activation rows. */
typedef void (*stream_fn)(float *, size_t, size_t, const float *, size_t, const char *, size_t, int);
#define STREAM_FN(WT, NAME, NS, NB) \
	static void stream_##WT##_##NAME##_##NB(float *out, size_t os, size_t ldo, const float *x, size_t ldx, \
						const char *w, size_t stride, int in) \
	{ \
		tile(out, ldo, os, x, ldx, w, stride, in, WT, NS, NB, 0); \
	}
#define STREAM_NB(WT, NAME, NS) STREAM_FN(WT, NAME, NS, 1) STREAM_FN(WT, NAME, NS, 2) STREAM_FN(WT, NAME, NS, 3) STREAM_FN(WT, NAME, NS, 4)
STREAM_NB(0, one, 1)
STREAM_NB(1, one, 1)
STREAM_NB(2, one, 1)
/* clang-format off */
	STREAM_NB(0, far, STREAMS) STREAM_NB(1, far, STREAMS) STREAM_NB(2, far, STREAMS)
/* clang-format on */
#define S_NB(WT, NAME) \
	{ \
		stream_##WT##_##NAME##_1, stream_##WT##_##NAME##_2, stream_##WT##_##NAME##_3, stream_##WT##_##NAME##_4 \
	}
#define S_DT(WT) \
	{ \
		S_NB(WT, one), S_NB(WT, far) \
	}
	/* clang-format off */
		static const stream_fn streams[3][2][4] = {S_DT(0), S_DT(1), S_DT(2)};
/* clang-format on */

enum { CHUNK_O = 64,
       CHUNK_B = 64 };

static void matmul_avx512(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
			  const void *w, dtype wt, int in, int o_begin, int o_end)
{
	size_t rb = (size_t)in * dtype_size(wt);
	if (n_rows <= 4) { /* decode steps: STREAMS far streams, then the leftover rows one by one */
		stream_fn f1 = streams[wt][0][n_rows - 1], fs = streams[wt][1][n_rows - 1];
		size_t part = (size_t)(o_end - o_begin) / STREAMS;
		int o = o_begin;
		for (; o < o_begin + (int)part; o++)
			fs(out + o, part, ldo, x, ldx, (const char *)w + (size_t)o * rb, part * rb, in);
		for (o = o_begin + (int)part * STREAMS; o < o_end; o++)
			f1(out + o, 1, ldo, x, ldx, (const char *)w + (size_t)o * rb, rb, in);
		return;
	}
	for (int ob = o_begin; ob < o_end; ob += CHUNK_O) {
		int oe = ob + CHUNK_O < o_end ? ob + CHUNK_O : o_end;
		for (int bb = 0; bb < n_rows; bb += CHUNK_B) {
			int be = bb + CHUNK_B < n_rows ? bb + CHUNK_B : n_rows;
			for (int o = ob; o < oe; o += 4) {
				int no = oe - o < 4 ? oe - o : 4;
				const char *wr = (const char *)w + (size_t)o * rb;
				for (int b = bb; b < be; b += 4) {
					int nb = be - b < 4 ? be - b : 4;
					tiles[wt][b == 0][no - 1][nb - 1](out + b * ldo + o, ldo, x + b * ldx, ldx, wr, rb, in);
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

static float dot_bf16_avx512(const float *a, const uint16_t *b, int n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	const char *bp = (const char *)b;
	int i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), load_w(bp + 2 * i, DTYPE_BF16, 0xffff, 0), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), load_w(bp + 2 * i + 32, DTYPE_BF16, 0xffff, 0), s1);
	}
	for (; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), load_w(bp + 2 * i, DTYPE_BF16, m, 1), s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy_bf16_avx512(float *y, float a, const uint16_t *x, int n)
{
	__m512 av = _mm512_set1_ps(a);
	const char *xp = (const char *)x;
	for (int i = 0; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 yv = _mm512_maskz_loadu_ps(m, y + i);
		_mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, load_w(xp + 2 * i, DTYPE_BF16, m, 1), yv));
	}
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
	if (dtype_is_quantized(wt)) {
		quant_dequantize_row(wt, out, w, n);
		return;
	}
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

/* e^x for x in [-87, 88] (clamped), within ~2 ulp: x = n ln2 + r, e^r by
 * Cephes' expf polynomial, 2^n by scalef. */
AI __m512 exp_ps(__m512 x)
{
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	return _mm512_scalef_ps(p, n);
}

static void gelu_mul_avx512(float *g, const float *u, int n)
{
	const __m512 c = _mm512_set1_ps(-1.5957691216057308f), k = _mm512_set1_ps(0.044715f), one = _mm512_set1_ps(1.0f);
	for (int i = 0; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 x = _mm512_maskz_loadu_ps(m, g + i);
		__m512 z = _mm512_mul_ps(c, _mm512_fmadd_ps(_mm512_mul_ps(k, x), _mm512_mul_ps(x, x), x));
		__m512 y = _mm512_div_ps(x, _mm512_add_ps(one, exp_ps(z)));
		_mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i)));
	}
}

/* dot_keys and axpy_values of this build as loops over its dot and axpy:
 * the same bits by construction */
static void dot_keys_avx512(float *out, size_t ldo, const float *q, size_t ldq, int nq,
			    const void *keys, dtype kt, int nk, int d)
{
	for (int j = 0; j < nk; j++)
		for (int g = 0; g < nq; g++)
			out[(size_t)g * ldo + j] = kt == DTYPE_BF16 ? dot_bf16_avx512(q + (size_t)g * ldq, (const uint16_t *)keys + (size_t)j * d, d)
								    : dot_avx512(q + (size_t)g * ldq, (const float *)keys + (size_t)j * d, d);
}

static void axpy_values_avx512(float *y, size_t ldy, const float *a, size_t lda, int ny,
			       const void *vals, dtype vt, int nk, int d)
{
	for (int g = 0; g < ny; g++)
		for (int j = 0; j < nk; j++) {
			if (vt == DTYPE_BF16) axpy_bf16_avx512(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const uint16_t *)vals + (size_t)j * d, d);
			else axpy_avx512(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const float *)vals + (size_t)j * d, d);
		}
}

/* the AVX2 softmax: its share of a step is small, one copy is enough */
static void softmax_avx512(float *s, int n, float scale, float cap)
{
	kernels_avx2.softmax(s, n, scale, cap);
}

const kernels kernels_avx512 = {
	.name = "avx512",
	.matmul = matmul_avx512,
	.matmul_q = quant_matmul_avx512,
	.quantize_x = quant_quantize_x_avx2,
	.dot = dot_avx512,
	.axpy = axpy_avx512,
	.dot_bf16 = dot_bf16_avx512,
	.axpy_bf16 = axpy_bf16_avx512,
	.dot_keys = dot_keys_avx512,
	.axpy_values = axpy_values_avx512,
	.softmax = softmax_avx512,
	.to_f32 = to_f32_avx512,
	.gelu_mul = gelu_mul_avx512,
};
