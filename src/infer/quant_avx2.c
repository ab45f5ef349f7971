/*
 * quant_avx2.c — the quantized matmul for CPUs with AVX2 (and FMA): weight
 * blocks of Q8_0, Q4_0, Q4_K or Q6_K against activation rows already
 * quantized to 8 bits (quant.h). Built with AVX2 flags; only called after
 * kernels_get() checked the CPU. The AVX-512 kernels use it as well.
 *
 * Integer products: _mm256_maddubs_epi16 multiplies unsigned by signed bytes
 * and adds pairs into 16 bits, _mm256_madd_epi16 adds pairs of those into 32
 * bits (times a per-sub-block scale for the K types). Q8_0 weights are
 * signed, so the sign of the weight moves onto the activation
 * (|w| * sign(x, w)); Q4_0 codes are taken unsigned (0..15) and the offset 8
 * is taken off with the activation block's sum. Q4_K codes are unsigned and their mins are applied
 * with the activation's block sums; Q6_K codes are taken unsigned (0..63) and
 * the offset 32 is taken off with the block sums too. No 16-bit sum can
 * overflow: at most 2 * 127 * 127, 2 * 15 * 127 or 2 * 63 * 127.
 *
 * Each block's integer sums become f32 once, times the block's scales,
 * into an 8-lane accumulator; the lanes are added at the end of the row. An
 * output element is computed by the same operations whatever tile, batch or
 * thread split it falls in, so results do not depend on the batch.
 *
 * Tiles: one weight block is expanded once and used against up to 4
 * activation rows: 2 weight rows x 4 activation rows for Q8_0/Q4_0 (the 8
 * accumulators stay in registers), 4 x 4 for the K types. With 1 or 2
 * activation rows (decode steps), 4 weight rows far apart (one from each
 * quarter of the caller's rows) are walked together, 4 sequential streams the
 * prefetchers follow (see kernels_avx2.c); 1 or 2 activation rows of Q8_0 or
 * Q4_0 have their own loop (rows_small), the same bits in fewer instructions,
 * as a decode step is mostly that loop. On CPUs with AVX512_VNNI the avx512
 * kernels run the Q8_0/Q4_0 tiles with vpdpbusd (pair_sum).
 */
#include <immintrin.h>
#include <string.h>
#include "infer/kernels.h"
#include "infer/quant.h"

#define AI static inline __attribute__((always_inline))

AI float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

AI float h2f(const unsigned char *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

AI __m256i ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* ---- Q8_0 / Q4_0: one 32-element block per step ---- */

/* the 32 codes of a Q4_0 block as unsigned bytes 0..15 (the offset 8 is
 * taken off afterwards with the activation block's sum) */
AI __m256i q4_0_nibbles(const unsigned char *qs)
{
	__m128i b = _mm_loadu_si128((const __m128i *)qs);
	__m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
	return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* The integer sum of a pair of blocks as 8 lanes, each lane the sum of 4
 * adjacent byte products u * s (u unsigned, s signed): madd(maddubs(u, s), 1)
 * in AVX2, or one AVX512-VNNI vpdpbusd, which gives the same lanes (no 16-bit
 * sum saturates here: at most 2 x 127 x 127). The instruction is written out
 * so that this file keeps its AVX2 flags; it runs only where the CPU has
 * AVX512_VNNI and AVX512VL (quant_matmul_avx512). */
AI __m256i pair_sum(__m256i u, __m256i s, __m256i ones, const int VNNI)
{
	if (VNNI) {
		__m256i acc = _mm256_setzero_si256();
		__asm__("%{evex%} vpdpbusd %2, %1, %0"
			: "+x"(acc)
			: "x"(u), "x"(s));
		return acc;
	}
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones);
}

/* Rows of Q8_0 or Q4_0 (WT) against NB activation rows; NO weight rows given
 * by their pointers, outputs at out[a][b]. Per block and pair the integer sum
 * is madd(maddubs(|w|, sign(x, w)), 1) for Q8_0 and madd(maddubs(nibbles,
 * x), 1) minus 8 x sum in lane 0 for Q4_0, then converted and added times
 * d_w x d_x. What depends on one side only (a weight block's codes and
 * scale; an activation block's scale and offset) is prepared once per block
 * for the whole tile, so a pair costs 6 vector operations (5 for Q4_0). The
 * NO x NB accumulators stay in registers: matrix tiles are 2 x 4 (see
 * quant_matmul_avx2), decode tiles 4 x 1-2. */
AI void tile_small(float *const *outp, size_t ldo, const char *const *wr, const char *xq, size_t ldxq,
		   int nblocks, const int WT, const int NO, const int NB, const int VNNI)
{
	const size_t bb = WT == DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
	const __m256i ones = _mm256_set1_epi16(1);
	__m256 acc[4][4];
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
	for (int k = 0; k < nblocks; k++) {
		__m256i wv[4], aw[4];
		__m256 dw[4];
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			const unsigned char *p = (const unsigned char *)wr[a] + (size_t)k * bb;
			if (WT == DTYPE_Q8_0) {
				wv[a] = ld(p + 2);
				aw[a] = _mm256_sign_epi8(wv[a], wv[a]);
			} else {
				aw[a] = q4_0_nibbles(p + 2);
			}
			dw[a] = _mm256_set1_ps(h2f(p));
		}
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) {
			const xblock_q8 *x = (const xblock_q8 *)(xq + b * ldxq) + k;
			__m256i xv = ld(x->qs);
			__m256 dx = _mm256_broadcast_ss(&x->d);
			__m256i off = WT == DTYPE_Q8_0 ? _mm256_setzero_si256() : _mm256_setr_epi32(8 * x->sum, 0, 0, 0, 0, 0, 0, 0);
#pragma GCC unroll 4
			for (int a = 0; a < NO; a++) {
				__m256i si;
				if (WT == DTYPE_Q8_0) {
					si = pair_sum(aw[a], _mm256_sign_epi8(xv, wv[a]), ones, VNNI);
				} else { /* sum (nibble - 8) x = sum nibble x - 8 sum x, the last in lane 0 */
					si = pair_sum(aw[a], xv, ones, VNNI);
					si = _mm256_sub_epi32(si, off);
				}
				acc[a][b] = _mm256_fmadd_ps(_mm256_mul_ps(dw[a], dx), _mm256_cvtepi32_ps(si), acc[a][b]);
			}
		}
	}
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) outp[a][b * ldo] = hsum(acc[a][b]);
}

/* Q8_0 or Q4_0 rows (WT) against NB = 1 or 2 activation rows, for decode
 * steps: the operations of tile_small per lane, so the same bits, with fewer
 * vector instructions. Q4_0's 16 code bytes are loaded into both 128-bit
 * halves at once and the upper half shifted by 4 (no insert). The NO rows'
 * f16 scales are packed into one register by integer instructions (other
 * ports), widened and multiplied by each activation scale together, and each
 * pair broadcasts its product from memory (a load, not a shuffle). An
 * activation block's codes, scale and offset are loaded once for the rows. */
AI void rows_small(float *const *outp, size_t ldo, const char *const *wr, const char *xq, size_t ldxq,
		   int nblocks, const int WT, const int NO, const int NB)
{
	const size_t bb = WT == DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
	const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
	const __m256i shift = _mm256_setr_epi64x(0, 0, 4, 4);
	__m256 acc[4][2];
	float dwx[2][4] __attribute__((aligned(16)));
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 2
		for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
	for (int k = 0; k < nblocks; k++) {
		const xblock_q8 *x[2];
		__m256i xv[2], off[2];
		uint64_t d4 = 0;
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			uint16_t d;
			memcpy(&d, wr[a] + (size_t)k * bb, 2);
			d4 |= (uint64_t)d << (16 * a);
		}
		__m128 dw = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)d4));
#pragma GCC unroll 2
		for (int b = 0; b < NB; b++) {
			x[b] = (const xblock_q8 *)(xq + b * ldxq) + k;
			xv[b] = ld(x[b]->qs);
			off[b] = _mm256_zextsi128_si256(_mm_cvtsi32_si128(8 * x[b]->sum));
			_mm_store_ps(dwx[b], _mm_mul_ps(dw, _mm_set1_ps(x[b]->d)));
		}
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			const unsigned char *p = (const unsigned char *)wr[a] + (size_t)k * bb;
			__m256i w, aw = _mm256_setzero_si256();
			if (WT == DTYPE_Q8_0) { /* |w| times x with w's sign */
				w = ld(p + 2);
				aw = _mm256_sign_epi8(w, w);
			} else {
				w = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 2)));
				w = _mm256_and_si256(_mm256_srlv_epi64(w, shift), m15);
			}
#pragma GCC unroll 2
			for (int b = 0; b < NB; b++) {
				__m256i si;
				if (WT == DTYPE_Q8_0)
					si = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[b], w)), ones);
				else
					si = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, xv[b]), ones), off[b]);
				acc[a][b] = _mm256_fmadd_ps(_mm256_broadcast_ss(&dwx[b][a]), _mm256_cvtepi32_ps(si), acc[a][b]);
			}
		}
	}
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 2
		for (int b = 0; b < NB; b++) outp[a][b * ldo] = hsum(acc[a][b]);
}

typedef void (*rows_fn)(float *const *, size_t, const char *const *, const char *, size_t, int);
#define RS(WT, NO, NB) \
	static void rs_##WT##_##NO##_##NB(float *const *o, size_t ldo, const char *const *w, const char *x, size_t ldx, int nb) \
	{ \
		rows_small(o, ldo, w, x, ldx, nb, WT, NO, NB); \
	}
RS(3, 1, 1)
RS(3, 4, 1)
/* clang-format off */
RS(4, 1, 1) RS(4, 4, 1) RS(3, 1, 2) RS(3, 4, 2) RS(4, 1, 2) RS(4, 4, 2)
	/* clang-format on */
	/* [type - Q8_0][activation rows - 1][1 or 4 weight rows] */
	static const rows_fn rows_tiles[2][2][2] = {
		{{rs_3_1_1, rs_3_4_1}, {rs_3_1_2, rs_3_4_2}},
		{{rs_4_1_1, rs_4_4_1}, {rs_4_1_2, rs_4_4_2}},
};

/* Output rows [o_begin, o_end) of Q8_0 or Q4_0 weights against 1 or 2
 * activation rows: 4 weight rows far apart (one from each quarter of the
 * range) walked together, 4 sequential streams the prefetchers follow, then
 * the leftover rows one by one. */
static void matvec_small(float *out, size_t ldo, const char *xq, size_t ldxq, int n_rows,
			 const char *w, dtype wt, int in, int o_begin, int o_end)
{
	const int ti = (int)wt - DTYPE_Q8_0;
	size_t rb = dtype_row_bytes(wt, (size_t)in);
	int nblocks = in / QK_SMALL, part = (o_end - o_begin) / 4, o = o_begin;
	rows_fn f4 = rows_tiles[ti][n_rows - 1][1], f1 = rows_tiles[ti][n_rows - 1][0];
	for (; o < o_begin + part; o++) {
		float *op[4];
		const char *wp[4];
		for (int a = 0; a < 4; a++) {
			op[a] = out + o + a * part;
			wp[a] = w + (size_t)(o + a * part) * rb;
		}
		f4(op, ldo, wp, xq, ldxq, nblocks);
	}
	for (o = o_begin + 4 * part; o < o_end; o++) {
		float *op[1] = {out + o};
		const char *wp[1] = {w + (size_t)o * rb};
		f1(op, ldo, wp, xq, ldxq, nblocks);
	}
}

/* ---- Q4_0x8 / Q8_0x8: 8 rows per vector (quant.h), a block's 8 row sums in 8 lanes ---- */

/* G groups of 8 rows of type WT (their codes at gp[a], scales at gp[a] + sc)
 * against NB activation rows; outputs of group a at outp[a][b * ldo + r].
 * Per block and group the runs of codes become 8 vectors once (Q4_0: 4 runs
 * of nibbles, low and high; Q8_0: 8 runs, kept with their magnitudes); each
 * meets the activation's 4 elements it pairs with broadcast to every lane.
 * Q4_0's 8 products are added in 16 bits (at most 8 x 2 x 15 x 127), then to
 * 32 bits by one madd, and the offset 8 is taken off with the activation's
 * sum; Q8_0's (|w| times x with w's sign, up to 2 x 127 x 127 each) go to 32
 * bits one by one. Lane r is row r's integer sum, and acc = fma(d_w x d_x,
 * sum, acc) per lane, as quant_x8_dot_row does: the same bits in every tile
 * and split. */
AI void tile_x8(float *const *outp, size_t ldo, const char *const *gp, size_t sc, const char *xq, size_t ldxq,
		int nblocks, const int WT, const int G, const int NB)
{
	const int Q8 = WT == DTYPE_Q8_0_X8;
	const size_t cb = Q8 ? 256 : 128; /* code bytes of a block of 8 rows */
	const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
	__m256 acc[4][4];
#pragma GCC unroll 4
	for (int a = 0; a < G; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) acc[a][b] = _mm256_setzero_ps();
	for (int k = 0; k < nblocks; k++) {
#pragma GCC unroll 4
		for (int a = 0; a < G; a++) {
			const char *c = gp[a] + (size_t)k * cb;
			__m256i q[8], aq[8];
			if (Q8) {
#pragma GCC unroll 8
				for (int l = 0; l < 8; l++) {
					q[l] = ld(c + 32 * l);
					aq[l] = _mm256_sign_epi8(q[l], q[l]);
				}
			} else {
#pragma GCC unroll 4
				for (int l = 0; l < 4; l++) {
					__m256i v = ld(c + 32 * l);
					q[l] = _mm256_and_si256(v, m15);
					q[4 + l] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
				}
			}
			__m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gp[a] + sc + (size_t)k * 16)));
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) {
				const xblock_q8 *x = (const xblock_q8 *)(xq + b * ldxq) + k;
				__m256i si;
				if (Q8) {
					__m256i p[8];
#pragma GCC unroll 8
					for (int j = 0; j < 8; j++) {
						int32_t x4;
						memcpy(&x4, x->qs + 4 * j, 4);
						p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(aq[j], _mm256_sign_epi8(_mm256_set1_epi32(x4), q[j])), ones);
					}
					si = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])),
							      _mm256_add_epi32(_mm256_add_epi32(p[4], p[5]), _mm256_add_epi32(p[6], p[7])));
				} else {
					__m256i p[8];
#pragma GCC unroll 8
					for (int j = 0; j < 8; j++) {
						int32_t x4;
						memcpy(&x4, x->qs + 4 * j, 4);
						p[j] = _mm256_maddubs_epi16(q[j], _mm256_set1_epi32(x4));
					}
					__m256i s16 = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3])),
								       _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7])));
					si = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones), _mm256_set1_epi32(8 * x->sum));
				}
				acc[a][b] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(si), acc[a][b]);
			}
		}
	}
#pragma GCC unroll 4
	for (int a = 0; a < G; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) _mm256_storeu_ps(outp[a] + b * ldo, acc[a][b]);
}

typedef void (*x8_fn)(float *const *, size_t, const char *const *, size_t, const char *, size_t, int);
#define X8T(WT, G, NB) \
	static void x8_##WT##_##G##_##NB(float *const *o, size_t ldo, const char *const *g, size_t sc, const char *x, size_t ldx, int nb) \
	{ \
		tile_x8(o, ldo, g, sc, x, ldx, nb, WT, G, NB); \
	}
#define X8_TYPE(WT) X8T(WT, 1, 1) X8T(WT, 1, 2) X8T(WT, 1, 3) X8T(WT, 1, 4) X8T(WT, 4, 1) X8T(WT, 4, 2)
X8_TYPE(7)
X8_TYPE(8)
/* [type - Q4_0x8][1 or 4 groups][activation rows - 1] */
static const x8_fn x8_tiles[2][2][4] = {
	{{x8_7_1_1, x8_7_1_2, x8_7_1_3, x8_7_1_4}, {x8_7_4_1, x8_7_4_2}},
	{{x8_8_1_1, x8_8_1_2, x8_8_1_3, x8_8_1_4}, {x8_8_4_1, x8_8_4_2}},
};

/* Output rows [o_begin, o_end) of Q4_0x8 or Q8_0x8 weights: whole groups straight into
 * out, a group cut by the range into a scratch tile whose lanes in range are
 * copied (each lane is computed alone, so the bits are the same). Decode
 * steps (1-2 activation rows) walk 4 groups far apart together, 4 sequential
 * streams; matrix steps take one group against 4 activation rows at a time,
 * chunks of 8 groups x 64 rows staying in cache. */
static void x8_matmul(float *out, size_t ldo, const char *xq, size_t ldxq, int n_rows, const char *w, dtype wt,
		      int in, int o_begin, int o_end)
{
	int nblocks = in / QK_SMALL, ti = wt == DTYPE_Q8_0_X8;
	size_t gb = (size_t)X8_ROWS * dtype_row_bytes(wt, (size_t)in), sc = (size_t)nblocks * (ti ? 256 : 128);
	const x8_fn *f_1 = x8_tiles[ti][0];
	int g0 = (o_begin + X8_ROWS - 1) / X8_ROWS, g1 = o_end / X8_ROWS;
	/* the groups cut by the range: at its start, and at its end unless that is the same one */
	int head = o_begin % X8_ROWS != 0, tail = o_end % X8_ROWS != 0 && (o_end / X8_ROWS > o_begin / X8_ROWS || !head);
	for (int cut = 0; cut < 2; cut++) {
		if (!(cut ? tail : head)) continue;
		int g = (cut ? o_end : o_begin) / X8_ROWS;
		int lo = cut && g * X8_ROWS > o_begin ? g * X8_ROWS : o_begin;
		int hi = !cut && (g + 1) * X8_ROWS < o_end ? (g + 1) * X8_ROWS : o_end;
		for (int b = 0; b < n_rows; b += 4) {
			int nb = n_rows - b < 4 ? n_rows - b : 4;
			float tmp[4 * X8_ROWS];
			float *op[1] = {tmp};
			const char *wp[1] = {w + (size_t)g * gb};
			f_1[nb - 1](op, X8_ROWS, wp, sc, xq + (size_t)b * ldxq, ldxq, nblocks);
			for (int i = 0; i < nb; i++)
				for (int o = lo; o < hi; o++) out[(size_t)(b + i) * ldo + o] = tmp[i * X8_ROWS + o - g * X8_ROWS];
		}
	}
	if (g0 >= g1) return;
	if (n_rows <= 2) {
		int part = (g1 - g0) / 4, g = g0;
		x8_fn f4 = x8_tiles[ti][1][n_rows - 1], f1 = f_1[n_rows - 1];
		for (; g < g0 + part; g++) {
			float *op[4];
			const char *wp[4];
			for (int a = 0; a < 4; a++) {
				op[a] = out + (size_t)(g + a * part) * X8_ROWS;
				wp[a] = w + (size_t)(g + a * part) * gb;
			}
			f4(op, ldo, wp, sc, xq, ldxq, nblocks);
		}
		for (g = g0 + 4 * part; g < g1; g++) {
			float *op[1] = {out + (size_t)g * X8_ROWS};
			const char *wp[1] = {w + (size_t)g * gb};
			f1(op, ldo, wp, sc, xq, ldxq, nblocks);
		}
		return;
	}
	enum { CHUNK_G = 8 };
	for (int gc = g0; gc < g1; gc += CHUNK_G) {
		int ge = gc + CHUNK_G < g1 ? gc + CHUNK_G : g1;
		for (int bb = 0; bb < n_rows; bb += 64) {
			int be = bb + 64 < n_rows ? bb + 64 : n_rows;
			for (int g = gc; g < ge; g++)
				for (int b = bb; b < be; b += 4) {
					int nb = be - b < 4 ? be - b : 4;
					float *op[1] = {out + (size_t)b * ldo + (size_t)g * X8_ROWS};
					const char *wp[1] = {w + (size_t)g * gb};
					f_1[nb - 1](op, ldo, wp, sc, xq + (size_t)b * ldxq, ldxq, nblocks);
				}
		}
	}
}

/* ---- Q4_K / Q6_K: one 256-element super-block per step ---- */

/* Integer sum of one Q4_K block with one activation block: the scaled code
 * products as 8 int32 lanes, and the min term (sum over sub-blocks of m times
 * the activation sums) as one integer. */
AI __m256i q4_k_block(const unsigned char *p, const xblock_q8k *x, int *msum)
{
	const unsigned char *qs = p + 16;
	/* the 6-bit scales and mins, four bytes at a time as the format packs
	 * them: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7
	 * (mins), sub-blocks 4-7 in the nibbles of bytes 8-11 with their top two
	 * bits in the top bits of bytes 0-3 and 4-7 */
	uint32_t w0, w1, w2;
	memcpy(&w0, p + 4, 4);
	memcpy(&w1, p + 8, 4);
	memcpy(&w2, p + 12, 4);
	uint32_t sc_lo = w0 & 0x3f3f3f3fu, sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
	uint32_t m_lo = w1 & 0x3f3f3f3fu, m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
	__m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo));
	__m256i bs = ld(x->bsums);
	__m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
	__m128i mp = _mm_madd_epi16(mins, pairs);
	mp = _mm_add_epi32(mp, _mm_shuffle_epi32(mp, 0x4e));
	mp = _mm_add_epi32(mp, _mm_shuffle_epi32(mp, 0xb1));
	*msum = _mm_cvtsi128_si32(mp);
	/* scale j as a 16-bit value in every lane: bytes 2j, 2j+1 of the widened scales */
	__m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
	const __m256i lo4 = _mm256_set1_epi8(15);
	__m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		__m256i q = ld(qs + 32 * c);
		__m256i ql = _mm256_and_si256(q, lo4), qh = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
		__m256i p0 = _mm256_maddubs_epi16(ql, ld(x->qs + 64 * c));
		__m256i p1 = _mm256_maddubs_epi16(qh, ld(x->qs + 64 * c + 32));
		__m256i s0 = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)((4 * c + 1) << 8 | 4 * c)));
		__m256i s1 = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)((4 * c + 3) << 8 | (4 * c + 2))));
		acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
	}
	return acc;
}

/* Integer sum of one Q6_K block with one activation block, the offset 32
 * already taken off (sum over groups of scale x 32 x activation sum, as 8
 * lanes subtracted from the 8 lanes of products: the total is what counts). */
AI __m256i q6_k_block(const unsigned char *p, const xblock_q8k *x)
{
	const unsigned char *ql = p, *qh = p + 128;
	const int8_t *sc = (const int8_t *)(p + 192);
	__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
	__m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, ld(x->bsums)), 5);
	const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
	__m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(), off);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8) {
		__m256i l0 = ld(ql), l1 = ld(ql + 32), hb = ld(qh);
		__m256i q[4];
		q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
		q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
		q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
		q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
#pragma GCC unroll 4
		for (int part = 0; part < 4; part++) {
			__m256i pr = _mm256_maddubs_epi16(q[part], ld(x->qs + 128 * h + 32 * part));
			/* 16-bit lanes 0-7 hold elements 0-15 of the 32, lanes 8-15 elements 16-31 */
			__m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * part + 1]), _mm_set1_epi16(sc[2 * part]));
			acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pr, s));
		}
	}
	return acc;
}

AI void tile_super(float *const *outp, size_t ldo, const char *const *wr, const char *xq, size_t ldxq,
		   int nblocks, const int WT, const int NO, const int NB)
{
	const size_t bb = WT == DTYPE_Q4_K ? sizeof(block_q4_k) : sizeof(block_q6_k);
	__m256 acc[4][4];
	float corr[4][4];
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) {
			acc[a][b] = _mm256_setzero_ps();
			corr[a][b] = 0;
		}
	for (int k = 0; k < nblocks; k++) {
#pragma GCC unroll 4
		for (int a = 0; a < NO; a++) {
			const unsigned char *p = (const unsigned char *)wr[a] + (size_t)k * bb;
#pragma GCC unroll 4
			for (int b = 0; b < NB; b++) {
				const xblock_q8k *x = (const xblock_q8k *)(xq + b * ldxq) + k;
				if (WT == DTYPE_Q4_K) {
					int extra;
					__m256i s = q4_k_block(p, x, &extra);
					acc[a][b] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(p) * x->d), _mm256_cvtepi32_ps(s), acc[a][b]);
					corr[a][b] += h2f(p + 2) * x->d * (float)extra;
				} else {
					__m256i s = q6_k_block(p, x);
					acc[a][b] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(p + 208) * x->d), _mm256_cvtepi32_ps(s), acc[a][b]);
				}
			}
		}
	}
#pragma GCC unroll 4
	for (int a = 0; a < NO; a++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++) outp[a][b * ldo] = hsum(acc[a][b]) - corr[a][b];
}

typedef void (*qtile_fn)(float *const *, size_t, const char *const *, const char *, size_t, int);
#define tile_small(o, ldo, w, x, ldx, nb, WT, NO, NB) tile_small(o, ldo, w, x, ldx, nb, WT, NO, NB, 0)
#define QT(WT, KIND, NO, NB) \
	static void qt_##WT##_##NO##_##NB(float *const *o, size_t ldo, const char *const *w, const char *x, size_t ldx, int nb) \
	{ \
		tile_##KIND(o, ldo, w, x, ldx, nb, WT, NO, NB); \
	}
#define QT_NO(WT, KIND, NO) QT(WT, KIND, NO, 1) QT(WT, KIND, NO, 2) QT(WT, KIND, NO, 3) QT(WT, KIND, NO, 4)
#define QT_ALL(WT, KIND) QT_NO(WT, KIND, 1) QT_NO(WT, KIND, 2) QT_NO(WT, KIND, 4)
QT_ALL(3, small)
QT_ALL(4, small)
/* clang-format off */
QT_ALL(5, super) QT_ALL(6, super)
/* clang-format on */
#define QR(WT, NO) \
	{ \
		qt_##WT##_##NO##_1, qt_##WT##_##NO##_2, qt_##WT##_##NO##_3, qt_##WT##_##NO##_4 \
	}
	/* [type - Q8_0][1, 2 or 4 weight rows][activation rows - 1] */
	static const qtile_fn qtiles[4][3][4] = {
		{QR(3, 1), QR(3, 2), QR(3, 4)},
		{QR(4, 1), QR(4, 2), QR(4, 4)},
		{QR(5, 1), QR(5, 2), QR(5, 4)},
		{QR(6, 1), QR(6, 2), QR(6, 4)},
};
#undef tile_small
/* the same small-block tiles with vpdpbusd (same bits) */
#define QV(WT, NO, NB) \
	static void qv_##WT##_##NO##_##NB(float *const *o, size_t ldo, const char *const *w, const char *x, size_t ldx, int nb) \
	{ \
		tile_small(o, ldo, w, x, ldx, nb, WT, NO, NB, 1); \
	}
#define QV_NO(WT, NO) QV(WT, NO, 1) QV(WT, NO, 2) QV(WT, NO, 3) QV(WT, NO, 4)
QV_NO(3, 1)
QV_NO(3, 2)
/* clang-format off */
QV_NO(3, 4) QV_NO(4, 1) QV_NO(4, 2) QV_NO(4, 4)
/* clang-format on */
#define QVR(WT, NO) \
	{ \
		qv_##WT##_##NO##_1, qv_##WT##_##NO##_2, qv_##WT##_##NO##_3, qv_##WT##_##NO##_4 \
	}
	static const qtile_fn qtiles_vnni[4][3][4] = {
		{QVR(3, 1), QVR(3, 2), QVR(3, 4)},
		{QVR(4, 1), QVR(4, 2), QVR(4, 4)},
		{QR(5, 1), QR(5, 2), QR(5, 4)},
		{QR(6, 1), QR(6, 2), QR(6, 4)},
};

enum { CHUNK_O = 64,
       CHUNK_B = 64 };

static void quant_matmul(const qtile_fn (*qtiles)[3][4], float *out, size_t ldo, const void *xq, size_t ldxq,
			 int n_rows, const void *w, dtype wt, int in, int o_begin, int o_end)
{
	if (dtype_is_x8(wt)) {
		x8_matmul(out, ldo, xq, ldxq, n_rows, w, wt, in, o_begin, o_end);
		return;
	}
	if (n_rows <= 2 && (wt == DTYPE_Q8_0 || wt == DTYPE_Q4_0)) {
		matvec_small(out, ldo, xq, ldxq, n_rows, w, wt, in, o_begin, o_end);
		return;
	}
	const int ti = (int)wt - DTYPE_Q8_0;
	size_t rb = dtype_row_bytes(wt, (size_t)in);
	int nblocks = in / dtype_block_elems(wt);
	const char *wc = w, *xc = xq;
	if (n_rows <= 2) { /* decode steps: 4 far streams, then the leftover rows one by one */
		int part = (o_end - o_begin) / 4, o = o_begin;
		qtile_fn f4 = qtiles[ti][2][n_rows - 1], f1 = qtiles[ti][0][n_rows - 1];
		for (; o < o_begin + part; o++) {
			float *op[4];
			const char *wp[4];
			for (int a = 0; a < 4; a++) {
				op[a] = out + o + a * part;
				wp[a] = wc + (size_t)(o + a * part) * rb;
			}
			f4(op, ldo, wp, xc, ldxq, nblocks);
		}
		for (o = o_begin + 4 * part; o < o_end; o++) {
			float *op[1] = {out + o};
			const char *wp[1] = {wc + (size_t)o * rb};
			f1(op, ldo, wp, xc, ldxq, nblocks);
		}
		return;
	}
	/* matrix tiles: NO weight rows x 4 activation rows (2 x 4 for the small
	 * blocks, whose tiles need more registers per weight row; 4 x 4 for the
	 * super-blocks), leftover weight rows one at a time */
	const int NO = ti < 2 ? 2 : 4, ni = ti < 2 ? 1 : 2;
	for (int ob = o_begin; ob < o_end; ob += CHUNK_O) {
		int oe = ob + CHUNK_O < o_end ? ob + CHUNK_O : o_end;
		for (int bb = 0; bb < n_rows; bb += CHUNK_B) {
			int be = bb + CHUNK_B < n_rows ? bb + CHUNK_B : n_rows;
			int o = ob;
			for (; o + NO <= oe; o += NO) {
				float *op[4];
				const char *wp[4];
				for (int b = bb; b < be; b += 4) {
					int nb = be - b < 4 ? be - b : 4;
					for (int a = 0; a < NO; a++) {
						op[a] = out + (size_t)b * ldo + o + a;
						wp[a] = wc + (size_t)(o + a) * rb;
					}
					qtiles[ti][ni][nb - 1](op, ldo, wp, xc + (size_t)b * ldxq, ldxq, nblocks);
				}
			}
			for (; o < oe; o++)
				for (int b = bb; b < be; b += 4) {
					int nb = be - b < 4 ? be - b : 4;
					float *op[1] = {out + (size_t)b * ldo + o};
					const char *wp[1] = {wc + (size_t)o * rb};
					qtiles[ti][0][nb - 1](op, ldo, wp, xc + (size_t)b * ldxq, ldxq, nblocks);
				}
		}
	}
}

void quant_matmul_avx2(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
		       const void *w, dtype wt, int in, int o_begin, int o_end)
{
	quant_matmul(qtiles, out, ldo, xq, ldxq, n_rows, w, wt, in, o_begin, o_end);
}

void quant_matmul_avx512(float *out, size_t ldo, const void *xq, size_t ldxq, int n_rows,
			 const void *w, dtype wt, int in, int o_begin, int o_end)
{
	int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
	quant_matmul(vnni ? qtiles_vnni : qtiles, out, ldo, xq, ldxq, n_rows, w, wt, in, o_begin, o_end);
}

/* ---- activation rows to 8-bit blocks: the same numbers as quant_quantize_x
 * (amax / 127, codes rounded to nearest even), 8 lanes at a time ---- */

AI float x_block_avx2(int8_t *q, const float *x, int n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 m = _mm256_setzero_ps();
	for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	float amax = _mm_cvtss_f32(h), d = amax / 127, id = d ? 1.0f / d : 0.0f;
	__m256 iv = _mm256_set1_ps(id);
	for (int j = 0; j < n; j += 32) {
		__m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), iv));
		__m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), iv));
		__m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), iv));
		__m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), iv));
		/* packs interleave the 128-bit halves; the permute puts 0..31 back in order */
		__m256i ab = _mm256_packs_epi32(a, b), ce = _mm256_packs_epi32(c, e);
		__m256i r = _mm256_packs_epi16(ab, ce);
		r = _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_storeu_si256((__m256i *)(q + j), r);
	}
	return d;
}

void quant_quantize_x_avx2(dtype wt, void *dst, const float *x, size_t n)
{
	if (wt == DTYPE_Q4_K || wt == DTYPE_Q6_K) {
		xblock_q8k *y = dst;
		for (size_t b = 0; b < n / QK_SUPER; b++, y++) {
			y->d = x_block_avx2(y->qs, x + b * QK_SUPER, QK_SUPER);
			for (int k = 0; k < 16; k++) {
				int s = 0;
				for (int i = 0; i < 16; i++) s += y->qs[16 * k + i];
				y->bsums[k] = (int16_t)s;
			}
		}
	} else {
		xblock_q8 *y = dst;
		for (size_t b = 0; b < n / QK_SMALL; b++, y++) {
			y->d = x_block_avx2(y->qs, x + b * QK_SMALL, QK_SMALL);
			__m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), ld(y->qs)), _mm256_set1_epi16(1));
			__m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
			h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
			h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
			y->sum = _mm_cvtsi128_si32(h);
		}
	}
}
