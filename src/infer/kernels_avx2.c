/*
 * kernels_avx2.c — the kernels for CPUs with AVX2, FMA and F16C. Built with
 * those flags; only called after kernels_get() checked the CPU.
 *
 * matmul works in tiles of 12 accumulators (4 weight rows x 3 activation
 * rows, or 3 x 4) of the 16 vector registers; up to 32 activation rows
 * (decode steps) take 3 or 4 weight rows far apart, one from each part of the
 * caller's rows, so the weights are read as sequential streams (see
 * kernels_avx512.c; on Zen 5 with these kernels the best 270m decode step went
 * from 21.7 ms, with 8 adjacent rows and software prefetch, to 10.2 ms).
 * Every tile sums an element the same way (lane l takes inputs 8k + l in
 * increasing k, then one fixed horizontal sum), so results do not depend on
 * the batch. AVX2 has no masked 16-bit loads, so a tail (in % 8) is copied
 * into a zero-padded vector first.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "infer/kernels.h"
#include "infer/quant.h"

#define AI static inline __attribute__((always_inline))

AI __m256 load_w(const char *p, const int wt)
{
	if (wt == DTYPE_F32) return _mm256_loadu_ps((const float *)p);
	if (wt == DTYPE_BF16) {
		/* the 8 values in both halves (a load, no ALU work), then each
		 * into the top of its 32-bit lane by one in-lane byte shuffle: one
		 * shuffle-pipe operation where a widening move and a shift took
		 * two (bf16 matrix products with 4..16 activation rows ran ~15%
		 * faster on Zen 3, where they share the pipes of the FMAs) */
		const __m256i to_high = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1,
							 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
		__m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
		return _mm256_castsi256_ps(_mm256_shuffle_epi8(b, to_high));
	}
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* The tail of a row: n (< 8) elements copied into a zeroed 8-lane vector. */
AI __m256 load_w_tail(const char *p, const int wt, int n)
{
	char tmp[32] = {0};
	memcpy(tmp, p, (size_t)n * (wt == DTYPE_F32 ? 4 : 2));
	return load_w(tmp, wt);
}

AI __m256 load_x_tail(const float *p, int n)
{
	float tmp[8] = {0};
	memcpy(tmp, p, (size_t)n * 4);
	return _mm256_loadu_ps(tmp);
}

AI float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

AI void tile(float *out, size_t ldo, size_t os, const float *x, size_t ldx, const char *w, size_t wrow_bytes,
	     int in, const int wt, const int NO, const int NB)
{
	const int esz = wt == DTYPE_F32 ? 4 : 2;
	__m256 acc[8][4];
#pragma GCC unroll 8
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
	int i = 0;
	for (; i + 8 <= in; i += 8) {
		__m256 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = _mm256_loadu_ps(x + b * ldx + i);
#pragma GCC unroll 8
		for (int a = 0; a < NO; a++) {
			const char *wp = w + a * wrow_bytes + (size_t)i * esz;
			__m256 wv = load_w(wp, wt);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm256_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
	if (i < in) {
		__m256 xv[4];
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) xv[b] = load_x_tail(x + b * ldx + i, in - i);
#pragma GCC unroll 8
		for (int a = 0; a < NO; a++) {
			__m256 wv = load_w_tail(w + a * wrow_bytes + (size_t)i * esz, wt, in - i);
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) acc[a][b] = _mm256_fmadd_ps(wv, xv[b], acc[a][b]);
		}
	}
#pragma GCC unroll 8
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) out[b * ldo + a * os] = hsum(acc[a][b]);
}

/* ---- decode steps: up to SMALL_B_MAX activation rows (1-2 for one or
 * two sequences; more for many, above all the output projection) ----
 *
 * The weights are widened in registers as they are read, by tile() above, so
 * every element sees the same operations whatever the row count: packing
 * them as f32 first, as the matrix path below does, costs a store and a
 * reload per weight vector that a few activation rows do not pay back. The
 * weight rows come as 3 or 4 far streams, one from each equal part of the
 * caller's rows (one stream alone read 7 GB/s of a 262144 x 640 bf16 matrix
 * here, four 22), SMALL_RUN adjacent rows of each stream at a time: they come
 * from memory once and from L1 for every further group of activation rows,
 * which then stay in registers (or L1) across the group. The streams are an
 * odd number of rows apart: rows a multiple of 4 KB apart share L1 sets, and
 * 16 of them in 8 ways of L1 evicted each other (this cost ~20% at 16
 * activation rows). */
#define SMALL_RUN 4 /* adjacent weight rows per stream and group */
#define SMALL_B_MAX 32
typedef void (*small_fn)(float *, size_t, size_t, const float *, size_t, const char *, size_t, int);
#define SMALL_FN(WT, NS, NB) \
	static void small_##WT##_##NS##_##NB(float *out, size_t ldo, size_t os, const float *x, size_t ldx, \
					     const char *w, size_t stride, int in) \
	{ \
		tile(out, ldo, os, x, ldx, w, stride, in, WT, NS, NB); \
	}
#define SMALL_NB(WT, NS) SMALL_FN(WT, NS, 1) SMALL_FN(WT, NS, 2) SMALL_FN(WT, NS, 3) SMALL_FN(WT, NS, 4)
#define SMALL_WT(WT) SMALL_NB(WT, 1) SMALL_NB(WT, 3) SMALL_FN(WT, 4, 1) SMALL_FN(WT, 4, 2) SMALL_FN(WT, 4, 3)
/* clang-format off */
SMALL_WT(0) SMALL_WT(1) SMALL_WT(2)
#define SMALL_ROW(WT, NS) { small_##WT##_##NS##_1, small_##WT##_##NS##_2, small_##WT##_##NS##_3, small_##WT##_##NS##_4 }
#define SMALL_T(WT) { SMALL_ROW(WT, 1), SMALL_ROW(WT, 3), { small_##WT##_4_1, small_##WT##_4_2, small_##WT##_4_3, NULL } }
/* [weight type][1, 3 or 4 weight rows][activation rows - 1]; 4 x 4 would
 * need 16 accumulators, every register */
static const small_fn small_tiles[3][3][4] = { SMALL_T(0), SMALL_T(1), SMALL_T(2) };
/* clang-format on */

/* How n_rows (1..SMALL_B_MAX) activation rows are cut into the groups of a
 * tile (sizes into nb[], their count returned), and from how many weight
 * streams (*ns). Every tile but a last one keeps 12 accumulators:
 * - 3 streams x 4 rows where rows of `in` <= 1024 elements allow it: a
 *   weight vector widened once serves 4 FMAs rather than 3. In L1 at 4..32
 *   rows this ran at 86-93% of the FMA peak against 76-87% for 4 x 3, and a
 *   270m decode step of 4 sequences went from 25-28 ms to 21-24. A group of
 *   3 completes a count that is not a multiple of 4.
 * - 4 streams x 3 rows otherwise: for 1-2 rows (one group), for a multiple
 *   of 3 (6 and 9 rows were 5% faster so), for 5 rows, and for longer rows (2048, the down projection:
 *   4 rows of x no longer stay in L1 beside the weights; 76 against 71
 *   GFLOP/s). The last group is 2 rows rather than 1 (4 accumulators do not
 *   cover the latency of the FMAs). */
static int small_plan(int n_rows, int in, int *ns, int nb[SMALL_B_MAX])
{
	int n = 0;
	if (n_rows < 3 || in > 1024 || (n_rows % 4 && n_rows % 3 == 0) || n_rows == 5) {
		*ns = 4;
		for (int b = 0; b < n_rows; b += nb[n++]) {
			int left = n_rows - b;
			nb[n] = left >= 5 || left == 3 ? 3 : left == 1 ? 1
								       : 2;
		}
		return n;
	}
	int b = (3 * n_rows) % 4, a = (n_rows - 3 * b) / 4; /* n_rows = 4a + 3b, a largest */
	*ns = 3;
	while (a-- > 0) nb[n++] = 4;
	while (b-- > 0) nb[n++] = 3;
	return n;
}

/* The groups of activation rows against weight rows o .. o + nr - 1 of each
 * of ns streams `part` rows apart (ns = 1: one stream). */
static void small_group(float *out, size_t ldo, const float *x, size_t ldx, const int *nb, int ng, const char *w,
			size_t rb, dtype wt, int in, int o, int nr, int ns, size_t part)
{
	const small_fn *t = small_tiles[wt][ns == 1 ? 0 : ns == 3 ? 1
								  : 2];
	for (int g = 0, b = 0; g < ng; b += nb[g++])
		for (int j = 0; j < nr; j++)
			t[nb[g] - 1](out + (size_t)b * ldo + o + j, ldo, part, x + (size_t)b * ldx, ldx,
				     w + (size_t)(o + j) * rb, part * rb, in);
}

static void small_avx2(float *out, size_t ldo, const float *x, size_t ldx, int n_rows, const void *w, dtype wt,
		       int in, int o_begin, int o_end)
{
	int nb[SMALL_B_MAX], ns, ng = small_plan(n_rows, in, &ns, nb);
	size_t rb = (size_t)in * dtype_size(wt), part = (size_t)(o_end - o_begin) / (size_t)ns;
	if (part > 1 && part % 2 == 0) part--;
	int o = o_begin, o_far = o_begin + (int)part;
	for (; o < o_far; o += SMALL_RUN)
		small_group(out, ldo, x, ldx, nb, ng, w, rb, wt, in, o, o_far - o < SMALL_RUN ? o_far - o : SMALL_RUN, ns, part);
	/* the rows left over: ns adjacent ones by the same tiles, then one by one */
	for (o = o_begin + (int)part * ns; o + ns <= o_end; o += ns)
		small_group(out, ldo, x, ldx, nb, ng, w, rb, wt, in, o, 1, ns, 1);
	int one[SMALL_B_MAX], n1 = 0;
	for (int b = n_rows; b > 0; b -= one[n1++]) one[n1] = b < 4 ? b : 4;
	for (; o < o_end; o++) small_group(out, ldo, x, ldx, one, n1, w, rb, wt, in, o, 1, 1, 1);
}

/* ---- matrix-matrix products (prefill, large batches) ----
 *
 * Weights are converted to f32 once per panel of GEMM_O rows x at most
 * GEMM_K elements (wbuf, 24 KB: in L1) and then used against every activation row of a chunk of
 * GEMM_B: the conversion is paid once per GEMM_B rows instead of once per
 * two. Tiles of 4 weight rows x 3 activation rows keep 12 accumulators, the
 * 3 activation vectors and 1 weight vector in the 16 registers. Between
 * panels the accumulators rest in acc, unchanged, so
 * every output element still sees the same operations as in the decode
 * tiles above (lane l takes elements 8k + l in increasing k, a zero-padded
 * tail, one fixed horizontal sum): bit-identical whatever the batch.
 * Loop order: activation chunk (stays in L2), weight panel (in L1), tiles. */
#ifndef GEMM_O
#define GEMM_O 8 /* weight rows per panel */
#endif
#ifndef GEMM_B
#define GEMM_B 120 /* activation rows per chunk (a multiple of 3): 120 x 768 floats = 368 KB, in a 512 KB L2 */
#endif
#ifndef GEMM_K
#define GEMM_K 768 /* most elements per panel (a multiple of 8) */
#endif

AI void gemm_tile(float *out, size_t ldo, __m256 *acc, const float *wp, const float *x, size_t ldx,
		  int kc, int first, int last, const int NO, const int NB)
{
	__m256 a[4][3];
#pragma GCC unroll 4
	for (int o = 0; o < NO; o++)
#pragma GCC unroll 3
		for (int b = 0; b < NB; b++) a[o][b] = first ? _mm256_setzero_ps() : acc[b * GEMM_O + o];
	int i = 0;
	for (; i + 8 <= kc; i += 8) {
		__m256 xv[3];
#pragma GCC unroll 3
		for (int b = 0; b < NB; b++) xv[b] = _mm256_loadu_ps(x + b * ldx + i);
#pragma GCC unroll 4
		for (int o = 0; o < NO; o++) {
			__m256 wv = _mm256_load_ps(wp + o * GEMM_K + i);
#pragma GCC unroll 3
			for (int b = 0; b < NB; b++) a[o][b] = _mm256_fmadd_ps(wv, xv[b], a[o][b]);
		}
	}
	if (i < kc) { /* the row's tail: zero-padded on both sides, as in tile() */
		__m256 xv[3];
#pragma GCC unroll 3
		for (int b = 0; b < NB; b++) xv[b] = load_x_tail(x + b * ldx + i, kc - i);
#pragma GCC unroll 4
		for (int o = 0; o < NO; o++) {
			__m256 wv = _mm256_load_ps(wp + o * GEMM_K + i);
#pragma GCC unroll 3
			for (int b = 0; b < NB; b++) a[o][b] = _mm256_fmadd_ps(wv, xv[b], a[o][b]);
		}
	}
#pragma GCC unroll 4
	for (int o = 0; o < NO; o++)
#pragma GCC unroll 3
		for (int b = 0; b < NB; b++) {
			if (last) out[b * ldo + o] = hsum(a[o][b]);
			else acc[b * GEMM_O + o] = a[o][b];
		}
}

typedef void (*gemm_fn)(float *, size_t, __m256 *, const float *, const float *, size_t, int, int, int);
#define GEMM_FN(NO, NB) \
	static void gemm_##NO##_##NB(float *out, size_t ldo, __m256 *acc, const float *wp, const float *x, \
				     size_t ldx, int kc, int first, int last) \
	{ \
		gemm_tile(out, ldo, acc, wp, x, ldx, kc, first, last, NO, NB); \
	}
#define GEMM_NO(NO) GEMM_FN(NO, 1) GEMM_FN(NO, 2) GEMM_FN(NO, 3)
GEMM_NO(1)
GEMM_NO(2)
/* clang-format off */
GEMM_NO(3) GEMM_NO(4)
/* clang-format on */
#define GR(NO) \
	{ \
		gemm_##NO##_1, gemm_##NO##_2, gemm_##NO##_3 \
	}
	static const gemm_fn gemm_tiles[4][3] = {GR(1), GR(2), GR(3), GR(4)};

/* Elements [k0, k0 + kc) of n weight rows (rb bytes apart) into wbuf as f32,
 * each row GEMM_K floats apart and zero-padded to a multiple of 8. */
static void gemm_pack(float *wbuf, const char *w, size_t rb, dtype wt, int n, int k0, int kc)
{
	size_t esz = dtype_size(wt);
	for (int o = 0; o < n; o++) {
		const char *src = w + (size_t)o * rb + (size_t)k0 * esz;
		float *dst = wbuf + o * GEMM_K;
		int i = 0;
		if (wt == DTYPE_BF16)
			for (; i + 8 <= kc; i += 8) _mm256_store_ps(dst + i, load_w(src + 2 * i, DTYPE_BF16));
		else if (wt == DTYPE_F16)
			for (; i + 8 <= kc; i += 8) _mm256_store_ps(dst + i, load_w(src + 2 * i, DTYPE_F16));
		else
			for (; i + 8 <= kc; i += 8) _mm256_store_ps(dst + i, load_w(src + 4 * i, DTYPE_F32));
		if (i < kc) _mm256_store_ps(dst + i, load_w_tail(src + esz * i, wt, kc - i));
	}
}

static void gemm_avx2(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
		      const void *w, dtype wt, int in, int o_begin, int o_end)
{
	_Alignas(32) float wbuf[GEMM_O * GEMM_K];
	__m256 acc[GEMM_B * GEMM_O];
	size_t rb = (size_t)in * dtype_size(wt);
	/* panels of equal length (a multiple of 8) rather than GEMM_K and a short
	 * rest: each tile call pays for loading, saving or summing its
	 * accumulators, so short panels cost (640 = 512 + 128 lost ~10% of the
	 * kernel's rate); a lane still takes its elements in the same order */
	int np = (in + GEMM_K - 1) / GEMM_K, step = ((in + np - 1) / np + 7) / 8 * 8;
	for (int bb = 0; bb < n_rows; bb += GEMM_B) {
		int be = bb + GEMM_B < n_rows ? bb + GEMM_B : n_rows;
		for (int ob = o_begin; ob < o_end; ob += GEMM_O) {
			int no_c = o_end - ob < GEMM_O ? o_end - ob : GEMM_O;
			for (int k0 = 0; k0 < in; k0 += step) {
				int kc = in - k0 < step ? in - k0 : step;
				int first = k0 == 0, last = k0 + kc == in;
				gemm_pack(wbuf, (const char *)w + (size_t)ob * rb, rb, wt, no_c, k0, kc);
				for (int b = bb; b < be; b += 3) {
					int nb = be - b < 3 ? be - b : 3;
					for (int o = 0; o < no_c; o += 4) {
						int no = no_c - o < 4 ? no_c - o : 4;
						gemm_tiles[no - 1][nb - 1](out + (size_t)b * ldo + ob + o, ldo, acc + (b - bb) * GEMM_O + o,
									   wbuf + o * GEMM_K, x + (size_t)b * ldx + k0, ldx, kc, first, last);
					}
				}
			}
		}
	}
}

static void matmul_avx2(float *out, size_t ldo, const float *x, size_t ldx, int n_rows,
			const void *w, dtype wt, int in, int o_begin, int o_end)
{
	if (n_rows <= SMALL_B_MAX) small_avx2(out, ldo, x, ldx, n_rows, w, wt, in, o_begin, o_end);
	else gemm_avx2(out, ldo, x, ldx, n_rows, w, wt, in, o_begin, o_end);
}

static float dot_avx2(const float *a, const float *b, int n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	if (i < n) s0 = _mm256_fmadd_ps(load_x_tail(a + i, n - i), load_x_tail(b + i, n - i), s0);
	return hsum(_mm256_add_ps(s0, s1));
}

static float dot_bf16_avx2(const float *a, const uint16_t *b, int n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	const char *bp = (const char *)b;
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_w(bp + 2 * i, DTYPE_BF16), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_w(bp + 2 * i + 16, DTYPE_BF16), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_w(bp + 2 * i, DTYPE_BF16), s0);
	if (i < n) s0 = _mm256_fmadd_ps(load_x_tail(a + i, n - i), load_w_tail(bp + 2 * i, DTYPE_BF16, n - i), s0);
	return hsum(_mm256_add_ps(s0, s1));
}

static void axpy_bf16_avx2(float *y, float a, const uint16_t *x, int n)
{
	__m256 av = _mm256_set1_ps(a);
	const char *xp = (const char *)x;
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load_w(xp + 2 * i, DTYPE_BF16), _mm256_loadu_ps(y + i)));
	for (; i < n; i++) y[i] += a * bf16_to_f32(x[i]);
}

static void axpy_avx2(float *y, float a, const float *x, int n)
{
	__m256 av = _mm256_set1_ps(a);
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++) y[i] += a * x[i];
}

/* ---- attention: several query heads against one run of keys ---- */

AI __m256 load_kv(const void *base, size_t i, const int kt)
{
	return kt == DTYPE_BF16 ? load_w((const char *)base + 2 * i, DTYPE_BF16) : _mm256_loadu_ps((const float *)base + i);
}

/* NQ (1..4) queries against one key: the operations of dot_avx2 and
 * dot_bf16_avx2 (two accumulators over 16-element steps, one over the last
 * 8, a zero-padded tail, one horizontal sum) for each query. */
AI void dot_key(float *out, size_t ldo, const float *q, size_t ldq, const void *key, int d, const int kt, const int NQ)
{
	__m256 s0[4], s1[4];
#pragma GCC unroll 4
	for (int g = 0; g < NQ; g++) s0[g] = s1[g] = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= d; i += 16) {
		__m256 k0 = load_kv(key, (size_t)i, kt), k1 = load_kv(key, (size_t)i + 8, kt);
#pragma GCC unroll 4
		for (int g = 0; g < NQ; g++) {
			s0[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * ldq + i), k0, s0[g]);
			s1[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * ldq + i + 8), k1, s1[g]);
		}
	}
	for (; i + 8 <= d; i += 8) {
		__m256 k0 = load_kv(key, (size_t)i, kt);
#pragma GCC unroll 4
		for (int g = 0; g < NQ; g++) s0[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * ldq + i), k0, s0[g]);
	}
	if (i < d) {
		__m256 k0 = kt == DTYPE_BF16 ? load_w_tail((const char *)key + 2 * i, DTYPE_BF16, d - i)
					     : load_x_tail((const float *)key + i, d - i);
#pragma GCC unroll 4
		for (int g = 0; g < NQ; g++) s0[g] = _mm256_fmadd_ps(load_x_tail(q + g * ldq + i, d - i), k0, s0[g]);
	}
#pragma GCC unroll 4
	for (int g = 0; g < NQ; g++) out[g * ldo] = hsum(_mm256_add_ps(s0[g], s1[g]));
}

static void dot_keys_avx2(float *out, size_t ldo, const float *q, size_t ldq, int nq,
			  const void *keys, dtype kt, int nk, int d)
{
	size_t es = kt == DTYPE_BF16 ? 2 : 4;
	for (int g = 0; g < nq; g += 4) {
		int n = nq - g < 4 ? nq - g : 4;
		const float *qg = q + (size_t)g * ldq;
		float *og = out + (size_t)g * ldo;
		for (int j = 0; j < nk; j++) {
			const char *key = (const char *)keys + (size_t)j * d * es;
			if (kt == DTYPE_BF16) {
				switch (n) {
				case 4: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_BF16, 4); break;
				case 3: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_BF16, 3); break;
				case 2: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_BF16, 2); break;
				default: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_BF16, 1); break;
				}
			} else {
				switch (n) {
				case 4: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_F32, 4); break;
				case 3: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_F32, 3); break;
				case 2: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_F32, 2); break;
				default: dot_key(og + j, ldo, qg, ldq, key, d, DTYPE_F32, 1); break;
				}
			}
		}
	}
}

/* NY (1..4) outputs, 16 elements of each held in registers across all nk
 * values: per element the same fused multiply-adds, in the same order, as nk
 * calls of axpy_avx2 / axpy_bf16_avx2. */
AI void axpy_strip(float *y, size_t ldy, const float *a, size_t lda, const void *vals, int nk, int d, int i,
		   const int vt, const int NY)
{
	__m256 y0[4], y1[4];
#pragma GCC unroll 4
	for (int g = 0; g < NY; g++) {
		y0[g] = _mm256_loadu_ps(y + g * ldy + i);
		y1[g] = _mm256_loadu_ps(y + g * ldy + i + 8);
	}
	for (int j = 0; j < nk; j++) {
		const void *v = vt == DTYPE_BF16 ? (const void *)((const uint16_t *)vals + (size_t)j * d) : (const void *)((const float *)vals + (size_t)j * d);
		__m256 v0 = load_kv(v, (size_t)i, vt), v1 = load_kv(v, (size_t)i + 8, vt);
#pragma GCC unroll 4
		for (int g = 0; g < NY; g++) {
			__m256 av = _mm256_set1_ps(a[g * lda + j]);
			y0[g] = _mm256_fmadd_ps(av, v0, y0[g]);
			y1[g] = _mm256_fmadd_ps(av, v1, y1[g]);
		}
	}
#pragma GCC unroll 4
	for (int g = 0; g < NY; g++) {
		_mm256_storeu_ps(y + g * ldy + i, y0[g]);
		_mm256_storeu_ps(y + g * ldy + i + 8, y1[g]);
	}
}

static void axpy_values_avx2(float *y, size_t ldy, const float *a, size_t lda, int ny,
			     const void *vals, dtype vt, int nk, int d)
{
	if (d % 16) { /* a scalar tail as in axpy_avx2: call it, for the same bits */
		for (int g = 0; g < ny; g++)
			for (int j = 0; j < nk; j++) {
				if (vt == DTYPE_BF16) axpy_bf16_avx2(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const uint16_t *)vals + (size_t)j * d, d);
				else axpy_avx2(y + (size_t)g * ldy, a[(size_t)g * lda + j], (const float *)vals + (size_t)j * d, d);
			}
		return;
	}
	for (int g = 0; g < ny; g += 4) {
		int n = ny - g < 4 ? ny - g : 4;
		float *yg = y + (size_t)g * ldy;
		const float *ag = a + (size_t)g * lda;
		for (int i = 0; i < d; i += 16) {
			if (vt == DTYPE_BF16) {
				switch (n) {
				case 4: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_BF16, 4); break;
				case 3: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_BF16, 3); break;
				case 2: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_BF16, 2); break;
				default: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_BF16, 1); break;
				}
			} else {
				switch (n) {
				case 4: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_F32, 4); break;
				case 3: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_F32, 3); break;
				case 2: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_F32, 2); break;
				default: axpy_strip(yg, ldy, ag, lda, vals, nk, d, i, DTYPE_F32, 1); break;
				}
			}
		}
	}
}

static void to_f32_avx2(float *out, const void *w, dtype wt, size_t n)
{
	if (dtype_is_quantized(wt)) {
		quant_dequantize_row(wt, out, w, n);
		return;
	}
	const char *p = w;
	size_t esz = dtype_size(wt), i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v;
		if (wt == DTYPE_BF16) v = load_w(p + i * esz, DTYPE_BF16);
		else if (wt == DTYPE_F16) v = load_w(p + i * esz, DTYPE_F16);
		else v = load_w(p + i * esz, DTYPE_F32);
		_mm256_storeu_ps(out + i, v);
	}
	for (; i < n; i++) out[i] = weight_at(w, wt, i);
}

/* e^x for x in [-87, 88] (clamped), within ~2 ulp: x = n ln2 + r, e^r by
 * Cephes' expf polynomial, 2^n built in the exponent field. */
AI __m256 exp_ps(__m256 x)
{
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	/* n in [-126, 127]: 2^n = (n + 127) << 23; n = 128 (x near 88.7) is split in two */
	__m256i ni = _mm256_cvtps_epi32(n);
	__m256i half = _mm256_srai_epi32(ni, 1);
	__m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
	__m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
	return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* The softmax's exponentials 8 at a time (exp_ps; below e^-87 they are 0),
 * summed in 8 lanes and then across them; the tail as a vector padded with
 * -inf. */
static void softmax_avx2(float *s, int n, float scale, float cap)
{
	const __m256 sv = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-87.0f);
	__m256 mv = _mm256_set1_ps(-INFINITY);
	float mx = -INFINITY;
	int j = 0;
	if (cap > 0) {
		for (; j < n; j++) {
			float a = cap * tanhf(s[j] * scale / cap);
			s[j] = a;
			if (a > mx) mx = a;
		}
	} else {
		for (; j + 8 <= n; j += 8) {
			__m256 a = _mm256_mul_ps(_mm256_loadu_ps(s + j), sv);
			_mm256_storeu_ps(s + j, a);
			mv = _mm256_max_ps(mv, a);
		}
		for (; j < n; j++) {
			s[j] *= scale;
			if (s[j] > mx) mx = s[j];
		}
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		if (_mm_cvtss_f32(h) > mx) mx = _mm_cvtss_f32(h);
	}
	const __m256 m = _mm256_set1_ps(mx);
	__m256 sum = _mm256_setzero_ps();
	for (j = 0; j < n; j += 8) {
		float tmp[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
		int k = n - j < 8 ? n - j : 8;
		if (k < 8) memcpy(tmp, s + j, (size_t)k * 4);
		__m256 x = _mm256_sub_ps(k < 8 ? _mm256_loadu_ps(tmp) : _mm256_loadu_ps(s + j), m);
		__m256 e = _mm256_and_ps(exp_ps(x), _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
		sum = _mm256_add_ps(sum, e);
		if (k < 8) {
			_mm256_storeu_ps(tmp, e);
			memcpy(s + j, tmp, (size_t)k * 4);
		} else {
			_mm256_storeu_ps(s + j, e);
		}
	}
	const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
	for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
	for (; j < n; j++) s[j] *= _mm256_cvtss_f32(inv);
}

static void gelu_mul_avx2(float *g, const float *u, int n)
{
	const __m256 c = _mm256_set1_ps(-1.5957691216057308f), k = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 z = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(k, x), _mm256_mul_ps(x, x), x));
		__m256 y = _mm256_div_ps(x, _mm256_add_ps(one, exp_ps(z)));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
	}
	if (i < n) {
		float gt[8] = {0}, ut[8] = {0};
		memcpy(gt, g + i, (size_t)(n - i) * 4);
		memcpy(ut, u + i, (size_t)(n - i) * 4);
		gelu_mul_avx2(gt, ut, 8);
		memcpy(g + i, gt, (size_t)(n - i) * 4);
	}
}

const kernels kernels_avx2 = {
	.name = "avx2",
	.matmul = matmul_avx2,
	.matmul_q = quant_matmul_avx2,
	.quantize_x = quant_quantize_x_avx2,
	.dot = dot_avx2,
	.axpy = axpy_avx2,
	.dot_bf16 = dot_bf16_avx2,
	.axpy_bf16 = axpy_bf16_avx2,
	.dot_keys = dot_keys_avx2,
	.axpy_values = axpy_values_avx2,
	.softmax = softmax_avx2,
	.to_f32 = to_f32_avx2,
	.gelu_mul = gelu_mul_avx2,
};
