/*
 * test_quant.c — the block-quantized types: layouts, dequantization bit-exact
 * against references written here from the formats' definitions, the
 * quantizers' error bounds and ggml's Q8_0/Q4_0 recipe, and the quantized dot
 * product against dequantize-then-dot.
 */
#include <stdint.h>
#include <stdlib.h>
#include "t.h"
#include "infer/kernels.h"
#include "infer/quant.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)((double)rnd() / 4294967296.0 * 2 - 1); }

/* A random finite f16 of moderate size (exponent field 5..20). */
static uint16_t rand_f16(void) { return (uint16_t)((rnd() & 0x8000) | (5 + rnd() % 16) << 10 | (rnd() & 0x3ff)); }

static void rand_blocks(dtype t, unsigned char *p, size_t nblocks)
{
	size_t bb = dtype_block_bytes(t);
	for (size_t i = 0; i < nblocks * bb; i++) p[i] = (unsigned char)rnd();
	for (size_t b = 0; b < nblocks; b++) {
		unsigned char *q = p + b * bb;
		uint16_t d = rand_f16(), m = rand_f16();
		if (t == DTYPE_Q6_K) memcpy(q + 208, &d, 2);
		else memcpy(q, &d, 2);
		if (t == DTYPE_Q4_K) memcpy(q + 2, &m, 2);
	}
}

/* ---- references from the definitions (ggml-common.h's block structs) ---- */

static float ref_h(const unsigned char *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return f16_to_f32(h);
}

static void ref_q8_0(float *y, const unsigned char *b)
{
	float d = ref_h(b);
	for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

static void ref_q4_0(float *y, const unsigned char *b)
{
	float d = ref_h(b);
	for (int j = 0; j < 32; j++) {
		int nib = j < 16 ? b[2 + j] & 0x0f : b[2 + j - 16] >> 4;
		y[j] = (float)(nib - 8) * d;
	}
}

static void ref_q4_k(float *y, const unsigned char *b)
{
	float d = ref_h(b), dmin = ref_h(b + 2);
	const unsigned char *s = b + 4, *qs = b + 16;
	for (int j = 0; j < 8; j++) {
		int sc, m;
		if (j < 4) {
			sc = s[j] & 0x3f;
			m = s[j + 4] & 0x3f;
		} else {
			sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
			m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
		}
		float d1 = d * (float)sc, m1 = dmin * (float)m;
		for (int l = 0; l < 32; l++) {
			int q = (j % 2 == 0) ? (qs[32 * (j / 2) + l] & 0x0f) : (qs[32 * (j / 2) + l] >> 4);
			float a = d1 * (float)q;
			y[32 * j + l] = a - m1;
		}
	}
}

static void ref_q6_k(float *y, const unsigned char *b)
{
	const unsigned char *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	float d = ref_h(b + 208);
	for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8)
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
			int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
			int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
			int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
			float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2], s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
			y[n + l] = s1 * (float)q1;
			y[n + l + 32] = s2 * (float)q2;
			y[n + l + 64] = s3 * (float)q3;
			y[n + l + 96] = s4 * (float)q4;
		}
}

static void ref_dequant(dtype t, float *y, const unsigned char *p, size_t nblocks)
{
	size_t be = (size_t)dtype_block_elems(t), bb = dtype_block_bytes(t);
	for (size_t b = 0; b < nblocks; b++) {
		if (t == DTYPE_Q8_0) ref_q8_0(y + b * be, p + b * bb);
		if (t == DTYPE_Q4_0) ref_q4_0(y + b * be, p + b * bb);
		if (t == DTYPE_Q4_K) ref_q4_k(y + b * be, p + b * bb);
		if (t == DTYPE_Q6_K) ref_q6_k(y + b * be, p + b * bb);
	}
}

static const dtype qtypes[] = {DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q4_K, DTYPE_Q6_K};

static void test_layouts(void)
{
	T_EQ_INT(DTYPE_Q8_0, 3);
	T_EQ_INT(DTYPE_Q4_0, 4);
	T_EQ_INT(DTYPE_Q4_K, 5);
	T_EQ_INT(DTYPE_Q6_K, 6);
	T_EQ_INT(dtype_row_bytes(DTYPE_Q8_0, 64), 68);
	T_EQ_INT(dtype_row_bytes(DTYPE_Q4_0, 640), 360);
	T_EQ_INT(dtype_row_bytes(DTYPE_Q4_K, 512), 288);
	T_EQ_INT(dtype_row_bytes(DTYPE_Q6_K, 256), 210);
	T_EQ_INT(dtype_row_bytes(DTYPE_BF16, 10), 20);
	T_EQ_INT(dtype_row_bytes(DTYPE_F32, 10), 40);
	T_EQ_INT(dtype_block_elems(DTYPE_F16), 1);
	T_EQ_INT(dtype_block_elems(DTYPE_Q4_0), 32);
	T_EQ_INT(dtype_block_elems(DTYPE_Q6_K), 256);
	T_EQ_STR(dtype_name(DTYPE_Q8_0), "Q8_0");
	T_EQ_STR(dtype_name(DTYPE_Q4_0), "Q4_0");
	T_EQ_STR(dtype_name(DTYPE_Q4_K), "Q4_K");
	T_EQ_STR(dtype_name(DTYPE_Q6_K), "Q6_K");
	T_CHECK(dtype_is_quantized(DTYPE_Q4_K) && !dtype_is_quantized(DTYPE_BF16));
}

/* Random bytes (every code, every packed scale) dequantize bit-exactly as the
 * definition, through quant_dequantize_row, weight_at and every kernel set's
 * to_f32, from an odd (unaligned) address. */
static void test_dequant_bit_exact(void)
{
	enum { NB = 6 };
	static unsigned char buf[1 + NB * 210];
	static float got[NB * 256], want[NB * 256];
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int ti = 0; ti < 4; ti++) {
		dtype t = qtypes[ti];
		size_t n = NB * (size_t)dtype_block_elems(t);
		for (int round = 0; round < 20; round++) {
			rand_blocks(t, buf + 1, NB);
			ref_dequant(t, want, buf + 1, NB);
			quant_dequantize_row(t, got, buf + 1, n);
			T_EQ_MEM(got, want, n * sizeof(float));
			for (size_t i = 0; i < n; i += 37) {
				float v = weight_at(buf + 1, t, i);
				T_EQ_MEM(&v, &want[i], sizeof v);
			}
			for (int s = 0; s < 3; s++) {
				const kernels *k = kernels_get(sets[s]);
				if (!k) continue;
				memset(got, 0, sizeof got);
				k->to_f32(got, buf + 1, t, n);
				T_EQ_MEM(got, want, n * sizeof(float));
			}
		}
	}
}

/* ggml's reference recipe for Q8_0 and Q4_0, restated. */
static void test_q8_0_q4_0_recipe(void)
{
	float x[64];
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 64; i++) x[i] = frand() * (round % 5 == 0 ? 1e-3f : 3.0f);
		if (round == 7) memset(x, 0, sizeof x);
		block_q8_0 q8[2];
		quant_quantize_row(DTYPE_Q8_0, q8, x, 64);
		block_q4_0 q4[2];
		quant_quantize_row(DTYPE_Q4_0, q4, x, 64);
		for (int b = 0; b < 2; b++) {
			const float *xb = x + 32 * b;
			float amax = 0, max = 0;
			for (int j = 0; j < 32; j++)
				if (amax < fabsf(xb[j])) {
					amax = fabsf(xb[j]);
					max = xb[j];
				}
			float d = amax / 127, id = d ? 1.0f / d : 0.0f;
			T_EQ_INT(q8[b].d, f32_to_f16(d));
			for (int j = 0; j < 32; j++) T_EQ_INT(q8[b].qs[j], (int)roundf(xb[j] * id));
			float d4 = max / -8, id4 = d4 ? 1.0f / d4 : 0.0f;
			T_EQ_INT(q4[b].d, f32_to_f16(d4));
			for (int j = 0; j < 16; j++) {
				int lo = (int8_t)(xb[j] * id4 + 8.5f), hi = (int8_t)(xb[16 + j] * id4 + 8.5f);
				lo = lo > 15 ? 15 : lo;
				hi = hi > 15 ? 15 : hi;
				T_EQ_INT(q4[b].qs[j], lo | hi << 4);
			}
		}
	}
}

/* Round trips stay within a fraction of each block's range. */
static void test_roundtrip_error(void)
{
	enum { N = 1024 };
	static float x[N], y[N];
	static unsigned char q[N * 2];
	/* worst error relative to the block's largest magnitude */
	/* Q4_0: a value of the other sign than the largest clips from +8 to +7, a whole step */
	/* (half a step, plus the f16 rounding of the scale at the far end of the range) */
	const double bound[] = {(0.5 + 127.0 / 2048) / 127 * 1.01, (1 + 8.0 / 2048) / 8 * 1.01, 0.12, 0.06};
	for (int ti = 0; ti < 4; ti++) {
		dtype t = qtypes[ti];
		int be = dtype_block_elems(t);
		for (int round = 0; round < 10; round++) {
			for (int i = 0; i < N; i++) x[i] = frand() * (float)(1 + i % 7) * (round & 1 ? 0.02f : 1.5f);
			quant_quantize_row(t, q, x, N);
			quant_dequantize_row(t, y, q, N);
			double worst = 0;
			for (int b = 0; b < N / be; b++) {
				double amax = 0;
				for (int i = 0; i < be; i++) amax = fmax(amax, fabs(x[b * be + i]));
				for (int i = 0; i < be; i++) worst = fmax(worst, fabs(y[b * be + i] - x[b * be + i]) / amax);
			}
			if (worst > bound[ti]) fprintf(stderr, "  %s: worst relative error %g\n", dtype_name(t), worst);
			T_CHECK(worst <= bound[ti]);
		}
	}
}

/* quant_dot_row equals dequantize-then-dot of the weights with the
 * dequantized activation blocks, to float rounding. */
static void test_dot_vs_dequant(void)
{
	enum { N = 768 };
	static float x[N], w[N], wd[N], xd[N];
	static unsigned char wq[N * 2], xq[N * 2];
	for (int ti = 0; ti < 4; ti++) {
		dtype t = qtypes[ti];
		for (int round = 0; round < 10; round++) {
			for (int i = 0; i < N; i++) {
				x[i] = frand() * 4;
				w[i] = frand() * 0.1f;
			}
			quant_quantize_row(t, wq, w, N);
			quant_dequantize_row(t, wd, wq, N);
			quant_quantize_x(t, xq, x, N);
			/* the activation blocks dequantized by hand */
			if (t == DTYPE_Q4_K || t == DTYPE_Q6_K) {
				const xblock_q8k *b = (const xblock_q8k *)xq;
				for (int i = 0; i < N; i++) xd[i] = b[i / 256].d * b[i / 256].qs[i % 256];
				for (int k = 0; k < N / 16; k++) {
					int s = 0;
					for (int i = 0; i < 16; i++) s += b[k / 16].qs[(k % 16) * 16 + i];
					T_EQ_INT(b[k / 16].bsums[k % 16], s);
				}
			} else {
				const xblock_q8 *b = (const xblock_q8 *)xq;
				for (int i = 0; i < N; i++) xd[i] = b[i / 32].d * b[i / 32].qs[i % 32];
			}
			double ref = 0, mag = 0, exact = 0;
			for (int i = 0; i < N; i++) {
				ref += (double)wd[i] * xd[i];
				mag += fabs((double)wd[i] * xd[i]);
				exact += (double)w[i] * x[i];
			}
			float got = quant_dot_row(t, wq, xq, N);
			T_NEAR(got, ref, mag * 1e-5 + 1e-6);
			/* and the whole thing is near the float dot product */
			T_NEAR(got, exact, mag * 0.15);
		}
	}
}

/* Every kernel set's matmul_q: near the portable one and the dequantize-then-
 * dot reference, bit-identical whatever the batch size, the tile and the
 * range of output rows (as a thread split would cut it). */
static void test_matmul_q_kernels(void)
{
	enum { IN = 512,
	       OUT = 37,
	       B = 7 };
	static float w[OUT * IN], x[B * IN], wd[OUT * IN], ref[B * OUT], got[B * OUT], alone[OUT], part[B * OUT];
	static unsigned char wq[OUT * IN * 2], xq[B * IN * 2];
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int ti = 0; ti < 4; ti++) {
		dtype t = qtypes[ti];
		size_t rb = dtype_row_bytes(t, IN), xb = quant_x_row_bytes(t, IN);
		for (int i = 0; i < OUT * IN; i++) w[i] = frand() * (float)(1 + i % 3) * 0.05f;
		for (int i = 0; i < B * IN; i++) x[i] = frand() * 2;
		for (int o = 0; o < OUT; o++) quant_quantize_row(t, wq + o * rb, w + o * IN, IN);
		quant_dequantize_row(t, wd, wq, (size_t)OUT * IN);
		for (int b = 0; b < B; b++) quant_quantize_x(t, xq + b * xb, x + b * IN, IN);
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++) {
				double s = 0;
				for (int i = 0; i < IN; i++) s += (double)wd[o * IN + i] * x[b * IN + i];
				ref[b * OUT + o] = (float)s;
			}
		const kernels *p = kernels_get("portable");
		for (int si = 0; si < 3; si++) {
			const kernels *k = kernels_get(sets[si]);
			if (!k) continue;
			k->matmul_q(got, OUT, xq, xb, B, wq, t, IN, 0, OUT);
			float worst = 0;
			for (int i = 0; i < B * OUT; i++) worst = fmaxf(worst, fabsf(got[i] - ref[i]));
			if (worst > 0.05f) fprintf(stderr, "  %s %s: worst %g vs dequantized\n", sets[si], dtype_name(t), worst);
			T_CHECK(worst <= 0.05f); /* activation quantization: ~0.5/127 of |x| per element */
			static float pg[B * OUT];
			p->matmul_q(pg, OUT, xq, xb, B, wq, t, IN, 0, OUT);
			for (int i = 0; i < B * OUT; i++) T_NEAR(got[i], pg[i], 1e-4 * (1 + fabs(pg[i])));
			for (int nb = 1; nb <= B; nb++) {
				for (int b = 0; b < nb; b++) {
					memset(alone, 0, sizeof alone);
					k->matmul_q(alone, OUT, xq + b * xb, xb, 1, wq, t, IN, 0, OUT);
					T_EQ_MEM(alone, got + b * OUT, sizeof alone);
				}
				memset(part, 0, sizeof part);
				k->matmul_q(part, OUT, xq, xb, nb, wq, t, IN, 5, 23);
				k->matmul_q(part, OUT, xq, xb, nb, wq, t, IN, 23, OUT);
				k->matmul_q(part, OUT, xq, xb, nb, wq, t, IN, 0, 5);
				T_EQ_MEM(part, got, (size_t)nb * OUT * sizeof(float));
			}
		}
	}
}

/* matmul_q past one chunk of activation rows and of weight rows (quant_avx2.c:
 * CHUNK_B, CHUNK_O): every row's outputs are the bits of that row alone and
 * of any split of the output rows. */
static void test_matmul_q_large(void)
{
	enum { IN = 512,
	       OUT = 71,
	       B = 150 };
	static float w[OUT * IN], x[B * IN], got[B * OUT], part[B * OUT], alone[OUT];
	static unsigned char wq[OUT * IN * 2], xq[B * IN * 2];
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int ti = 0; ti < 4; ti++) {
		dtype t = qtypes[ti];
		size_t rb = dtype_row_bytes(t, IN), xb = quant_x_row_bytes(t, IN);
		for (int i = 0; i < OUT * IN; i++) w[i] = frand() * 0.05f;
		for (int i = 0; i < B * IN; i++) x[i] = frand();
		for (int o = 0; o < OUT; o++) quant_quantize_row(t, wq + o * rb, w + o * IN, IN);
		for (int b = 0; b < B; b++) quant_quantize_x(t, xq + b * xb, x + b * IN, IN);
		for (int si = 0; si < 3; si++) {
			const kernels *k = kernels_get(sets[si]);
			if (!k) continue;
			k->matmul_q(got, OUT, xq, xb, B, wq, t, IN, 0, OUT);
			for (int b = 0; b < B; b += 13) {
				k->matmul_q(alone, OUT, xq + b * xb, xb, 1, wq, t, IN, 0, OUT);
				T_EQ_MEM(alone, got + b * OUT, sizeof alone);
			}
			memset(part, 0, sizeof part);
			k->matmul_q(part, OUT, xq, xb, B, wq, t, IN, 0, 3);
			k->matmul_q(part, OUT, xq, xb, B, wq, t, IN, 3, 66);
			k->matmul_q(part, OUT, xq, xb, B, wq, t, IN, 66, OUT);
			T_EQ_MEM(part, got, sizeof part);
		}
	}
}

/* n random weights in [-0.05, 0.05) of a float type (F32, F16 or BF16) at w,
 * which need not be aligned. */
static void rand_float_weights(unsigned char *w, dtype dt, int n)
{
	size_t es = dtype_size(dt);
	for (int i = 0; i < n; i++) {
		float f = frand() * 0.1f;
		uint16_t h = dt == DTYPE_BF16 ? f32_to_bf16(f) : f32_to_f16(f);
		if (dt == DTYPE_F32) memcpy(w + i * es, &f, 4);
		else memcpy(w + i * es, &h, 2);
	}
}

/* The float matmul at prefill sizes: more activation rows than one chunk of
 * the matrix tiles and rows longer than one weight panel (kernels_avx2.c:
 * GEMM_B, GEMM_K), with a tail: every row's outputs are the bits of that row
 * alone (a decode-shaped call), for any range of output rows, and near the
 * portable kernels, for bf16, f16 and f32 weights, in every kernel set. */
static void test_matmul_large(void)
{
	enum { IN = 1101,
	       OUT = 29,
	       B = 203 };
	static float x[B * IN], got[B * OUT], part[B * OUT], alone[OUT], ref[B * OUT];
	static unsigned char w[OUT * IN * 4 + 1];
	const char *sets[] = {"avx2", "avx512"};
	const kernels *p = kernels_get("portable");
	for (int i = 0; i < B * IN; i++) x[i] = frand();
	for (int dt = 0; dt < 3; dt++) {
		rand_float_weights(w + 1, (dtype)dt, OUT * IN);
		p->matmul(ref, OUT, x, IN, B, w + 1, (dtype)dt, IN, 0, OUT);
		for (int si = 0; si < 2; si++) {
			const kernels *k = kernels_get(sets[si]);
			if (!k) continue;
			k->matmul(got, OUT, x, IN, B, w + 1, (dtype)dt, IN, 0, OUT);
			for (int i = 0; i < B * OUT; i++) T_NEAR(got[i], ref[i], 1e-4 * (1 + fabs(ref[i])));
			for (int b = 0; b < B; b += 17) {
				k->matmul(alone, OUT, x + (size_t)b * IN, IN, 1, w + 1, (dtype)dt, IN, 0, OUT);
				T_EQ_MEM(alone, got + (size_t)b * OUT, sizeof alone);
			}
			memset(part, 0, sizeof part);
			k->matmul(part, OUT, x, IN, B, w + 1, (dtype)dt, IN, 0, 5);
			k->matmul(part, OUT, x, IN, B, w + 1, (dtype)dt, IN, 5, 18);
			k->matmul(part, OUT, x, IN, B, w + 1, (dtype)dt, IN, 18, OUT);
			T_EQ_MEM(part, got, sizeof part);
		}
	}
}

/* The float matmul at decode-batch sizes (3..33 activation rows: the output
 * projection of many sequences takes its own tiles, kernels_avx2.c's
 * small_avx2, 3 x 4 or 4 x 3 by the count of rows and the row length): every
 * row gives the bits of that row alone, whatever the range of output rows
 * (its far streams, an odd number of rows apart, and the rows left over), and
 * agrees with the portable kernels. */
static void test_matmul_decode_batches(void)
{
	enum { INMAX = 1030,
	       OUT = 171,
	       BMAX = 33 };
	static float x[BMAX * INMAX], got[BMAX * OUT], part[BMAX * OUT], alone[OUT], ref[BMAX * OUT];
	static unsigned char w[OUT * INMAX * 4 + 1];
	const int batches[] = {3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 33}, ins[] = {645, INMAX};
	const int splits[][2] = {{0, OUT}, {1, OUT}, {0, 7}, {7, 100}, {100, OUT}};
	const char *sets[] = {"avx2", "avx512"};
	const kernels *p = kernels_get("portable");
	for (int i = 0; i < BMAX * INMAX; i++) x[i] = frand();
	for (int ii = 0; ii < 2; ii++)
		for (int dt = 0; dt < 3; dt++) {
			int in = ins[ii];
			rand_float_weights(w + 1, (dtype)dt, OUT * in);
			p->matmul(ref, OUT, x, in, BMAX, w + 1, (dtype)dt, in, 0, OUT);
			for (int si = 0; si < 2; si++) {
				const kernels *k = kernels_get(sets[si]);
				if (!k) continue;
				for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
					int nb = batches[bi];
					k->matmul(got, OUT, x, in, nb, w + 1, (dtype)dt, in, 0, OUT);
					for (int i = 0; i < nb * OUT; i++) T_NEAR(got[i], ref[i], 1e-4 * (1 + fabs(ref[i])));
					for (int b = 0; b < nb; b++) {
						k->matmul(alone, OUT, x + (size_t)b * in, in, 1, w + 1, (dtype)dt, in, 0, OUT);
						T_EQ_MEM(alone, got + (size_t)b * OUT, sizeof alone);
					}
					for (size_t r = 0; r < sizeof splits / sizeof *splits; r++) {
						int o0 = splits[r][0], o1 = splits[r][1];
						k->matmul(part, OUT, x, in, nb, w + 1, (dtype)dt, in, o0, o1);
						for (int b = 0; b < nb; b++)
							T_EQ_MEM(part + (size_t)b * OUT + o0, got + (size_t)b * OUT + o0,
								 (size_t)(o1 - o0) * sizeof(float));
					}
				}
			}
		}
}

/* The bf16 KV cache's dot and axpy equal the f32 ones on the widened values,
 * bit for bit, in every kernel set (same summation order), at every length. */
static void test_bf16_kv_kernels(void)
{
	enum { N = 301 };
	static float a[N], bw[N], y1[N], y2[N];
	static uint16_t b[N];
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int i = 0; i < N; i++) {
		a[i] = frand();
		b[i] = f32_to_bf16(frand() * 3);
		bw[i] = bf16_to_f32(b[i]);
	}
	for (int si = 0; si < 3; si++) {
		const kernels *k = kernels_get(sets[si]);
		if (!k) continue;
		for (int n = 1; n <= N; n += (n < 40 ? 1 : 37)) {
			float d1 = k->dot_bf16(a, b, n), d2 = k->dot(a, bw, n);
			T_EQ_MEM(&d1, &d2, sizeof d1);
			memcpy(y1, a, sizeof y1);
			memcpy(y2, a, sizeof y2);
			k->axpy_bf16(y1, 0.37f, b, n);
			k->axpy(y2, 0.37f, bw, n);
			T_EQ_MEM(y1, y2, sizeof y1);
		}
	}
}

/* Attention's dot_keys and axpy_values: per (head, key) the same bits as dot
 * and axpy (bf16 keys: dot_bf16 / axpy_bf16), for 1..5 heads sharing the
 * keys, head sizes with and without a tail, in every kernel set. */
static void test_attention_kernels(void)
{
	enum { NK = 9,
	       DMAX = 256,
	       NQ = 5 };
	static float q[NQ * DMAX], kf[NK * DMAX], sc[NQ * 16], y1[NQ * DMAX], y2[NQ * DMAX];
	static uint16_t kb[NK * DMAX];
	const int ds[] = {256, 16, 45, 8};
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int i = 0; i < NQ * DMAX; i++) q[i] = frand();
	for (int i = 0; i < NK * DMAX; i++) {
		kf[i] = frand();
		kb[i] = f32_to_bf16(frand());
	}
	for (int si = 0; si < 3; si++) {
		const kernels *k = kernels_get(sets[si]);
		if (!k) continue;
		for (size_t di = 0; di < sizeof ds / sizeof *ds; di++) {
			int d = ds[di];
			for (int nq = 1; nq <= NQ; nq++)
				for (int bf = 0; bf < 2; bf++) {
					const void *keys = bf ? (const void *)kb : (const void *)kf;
					dtype kt = bf ? DTYPE_BF16 : DTYPE_F32;
					k->dot_keys(sc, 16, q, (size_t)d, nq, keys, kt, NK, d);
					for (int g = 0; g < nq; g++)
						for (int j = 0; j < NK; j++) {
							float want = bf ? k->dot_bf16(q + g * d, kb + j * d, d) : k->dot(q + g * d, kf + j * d, d);
							T_EQ_MEM(&sc[g * 16 + j], &want, sizeof want);
						}
					memcpy(y1, q, sizeof y1);
					memcpy(y2, q, sizeof y2);
					k->axpy_values(y1, (size_t)d, sc, 16, nq, keys, kt, NK, d);
					for (int g = 0; g < nq; g++)
						for (int j = 0; j < NK; j++) {
							if (bf) k->axpy_bf16(y2 + g * d, sc[g * 16 + j], kb + j * d, d);
							else k->axpy(y2 + g * d, sc[g * 16 + j], kf + j * d, d);
						}
					T_EQ_MEM(y1, y2, (size_t)nq * d * sizeof(float));
				}
		}
	}
}

/* Every build's softmax near the portable one (its own exp), summing to 1,
 * at lengths with and without a tail, with far-below-max scores at 0, with
 * and without a logit cap; the same bits for a row wherever it runs. */
static void test_softmax_kernels(void)
{
	enum { N = 203 };
	static float in[N], ref[N], got[N], again[N];
	const char *sets[] = {"avx2", "avx512"};
	const kernels *p = kernels_get("portable");
	for (int i = 0; i < N; i++) in[i] = frand() * 40;
	in[5] = -1e4f; /* e^(a - max) far below the smallest float */
	for (int si = 0; si < 2; si++) {
		const kernels *k = kernels_get(sets[si]);
		if (!k) continue;
		const int ns[] = {1, 7, 8, 9, 64, N};
		for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
			for (int capped = 0; capped < 2; capped++) {
				int n = ns[ni];
				float cap = capped ? 30.0f : 0.0f;
				memcpy(ref, in, sizeof ref);
				memcpy(got, in, sizeof got);
				p->softmax(ref, n, 0.0625f, cap);
				k->softmax(got, n, 0.0625f, cap);
				double sum = 0;
				for (int j = 0; j < n; j++) {
					T_NEAR(got[j], ref[j], 1e-6 + 1e-5 * ref[j]);
					sum += got[j];
				}
				T_NEAR(sum, 1.0, 1e-5);
				if (n > 5 && !capped) T_CHECK(got[5] == 0.0f); /* capped, it is e^-60 or so */
				memcpy(again, in, sizeof again);
				k->softmax(again, n, 0.0625f, cap);
				T_EQ_MEM(again, got, (size_t)n * sizeof(float));
			}
	}
}

/* Every build's quantize_x writes the same bytes as quant_quantize_x,
 * including values exactly halfway between codes and all-zero blocks. */
static void test_quantize_x_kernels(void)
{
	enum { N = 1024 };
	static float x[N];
	static unsigned char a[N * 2], b[N * 2];
	const char *sets[] = {"portable", "avx2", "avx512"};
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < N; i++) x[i] = frand() * (round + 1);
		if (round == 1)
			for (int i = 0; i < N; i++) x[i] = (float)((int)(frand() * 254) / 2); /* halves: ties */
		if (round == 2)
			for (int i = 0; i < 256; i++) x[i] = 0;
		for (int k = 0; k < 2; k++) {
			dtype t = k ? DTYPE_Q4_K : DTYPE_Q8_0;
			size_t bytes = quant_x_row_bytes(t, N);
			memset(a, 0, sizeof a);
			quant_quantize_x(t, a, x, N);
			for (int si = 0; si < 3; si++) {
				const kernels *kk = kernels_get(sets[si]);
				if (!kk) continue;
				memset(b, 0, sizeof b);
				kk->quantize_x(t, b, x, N);
				T_EQ_MEM(a, b, bytes);
			}
		}
	}
}

/* Q4_0 and Q8_0 rows kept 8 together (Q4_0x8, Q8_0x8): packing keeps every
 * value (each row dequantizes to the bits of its plain row), and every kernel
 * set's matmul_q gives the bits of the portable definition
 * (quant_x8_dot_row) whatever the batch, tile and range of output rows,
 * ranges that cut a group of 8 included, near the plain product; with 1 and
 * 2 activation rows (decode steps) and more than one chunk of activation
 * rows. */
static void test_matmul_q_x8(void)
{
	enum { IN = 640,
	       OUT = 72,
	       B = 70 };
	static float w[OUT * IN], x[B * IN], row[IN], want[IN], plain[B * OUT], ref[B * OUT], got[B * OUT], alone[OUT], part[B * OUT];
	static unsigned char wq[OUT * IN * 2], wx[OUT * IN * 2], xq[B * IN * 2];
	const char *sets[] = {"portable", "avx2", "avx512"};
	const dtype x8[] = {DTYPE_Q4_0_X8, DTYPE_Q8_0_X8};
	for (int ti = 0; ti < 2; ti++) {
		dtype t = x8[ti], base = dtype_x8_base(t);
		T_CHECK(dtype_is_x8(t) && !dtype_is_x8(base) && base == (ti ? DTYPE_Q8_0 : DTYPE_Q4_0));
		size_t rb = dtype_row_bytes(base, IN), xb = quant_x_row_bytes(base, IN);
		T_EQ_INT(dtype_row_bytes(t, IN), rb);
		for (int i = 0; i < OUT * IN; i++) w[i] = frand() * (float)(1 + i % 5) * 0.03f;
		for (int i = 0; i < B * IN; i++) x[i] = frand() * 2;
		for (int o = 0; o < OUT; o++) quant_quantize_row(base, wq + o * rb, w + o * IN, IN);
		for (int g = 0; g < OUT / X8_ROWS; g++) quant_pack_x8(t, wx + g * X8_ROWS * rb, wq + g * X8_ROWS * rb, IN);
		for (int o = 0; o < OUT; o++) {
			quant_dequantize_row(base, want, wq + o * rb, IN);
			quant_x8_dequantize_row(t, row, wx + (o / X8_ROWS) * X8_ROWS * rb, o % X8_ROWS, IN);
			T_EQ_MEM(row, want, sizeof row);
		}
		for (int b = 0; b < B; b++) quant_quantize_x(base, xq + b * xb, x + b * IN, IN);
		const kernels *p = kernels_get("portable");
		p->matmul_q(plain, OUT, xq, xb, B, wq, base, IN, 0, OUT);
		p->matmul_q(ref, OUT, xq, xb, B, wx, t, IN, 0, OUT);
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++)
				T_EQ_MEM(&ref[b * OUT + o], &(float){quant_x8_dot_row(t, wx + (o / 8) * 8 * rb, o % 8, xq + b * xb, IN)}, 4);
		for (int i = 0; i < B * OUT; i++) T_NEAR(ref[i], plain[i], 1e-4 * (1 + fabs(plain[i])));
		for (int si = 0; si < 3; si++) {
			const kernels *k = kernels_get(sets[si]);
			if (!k) continue;
			k->matmul_q(got, OUT, xq, xb, B, wx, t, IN, 0, OUT);
			T_EQ_MEM(got, ref, sizeof got);
			for (int b = 0; b < B; b += 3) {
				memset(alone, 0, sizeof alone);
				k->matmul_q(alone, OUT, xq + b * xb, xb, 1, wx, t, IN, 0, OUT);
				T_EQ_MEM(alone, got + b * OUT, sizeof alone);
			}
			static const int cuts[][4] = {{0, 5, 23, OUT}, {0, 3, 66, OUT}, {0, 16, 40, OUT}, {0, 9, 12, OUT}, {0, 8, 13, OUT}};
			for (int nb = 1; nb <= B; nb += nb < 6 ? 1 : 31)
				for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
					memset(part, 0, sizeof part);
					for (int r = 0; r < 3; r++) k->matmul_q(part, OUT, xq, xb, nb, wx, t, IN, cuts[c][r], cuts[c][r + 1]);
					T_EQ_MEM(part, got, (size_t)nb * OUT * sizeof(float));
				}
		}
	}
}

int main(void)
{
	T_RUN(test_layouts);
	T_RUN(test_dequant_bit_exact);
	T_RUN(test_q8_0_q4_0_recipe);
	T_RUN(test_roundtrip_error);
	T_RUN(test_dot_vs_dequant);
	T_RUN(test_matmul_q_kernels);
	T_RUN(test_matmul_q_large);
	T_RUN(test_matmul_q_x8);
	T_RUN(test_matmul_large);
	T_RUN(test_matmul_decode_batches);
	T_RUN(test_bf16_kv_kernels);
	T_RUN(test_attention_kernels);
	T_RUN(test_softmax_kernels);
	T_RUN(test_quantize_x_kernels);
	return T_END();
}
