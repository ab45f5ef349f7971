/*
 * gemm.c — the engine's matrix kernels alone, on one thread: the products of
 * one 270m-shaped layer (q, k, v, o, gate, up, down: W[n][k] x X[m][k]) for a
 * batch of M activation rows, with the weights in each type, timed by this
 * thread's CPU clock (best of REPEAT), in GFLOP/s (2 m n k per product).
 * Compare with peak.c's f32/int8 figures from the same run.
 *
 *   cc -O2 -Isrc bench/engine/gemm.c build/rel/libinfer.a build/rel/libcore.a -lm -pthread -o gemm
 *   ./gemm [M] [REPEAT] [KERNELS]    M = 512, REPEAT = 5, KERNELS = the best for this CPU
 * Prints one JSON object: {"m":M,"kernels":"avx2","bf16_gflops":...,"q8_0_gflops":...,...}
 * (q4_0x8, q8_0x8: Q4_0 and Q8_0 kept 8 rows together, as loaded models keep them).
 *
 *   ./gemm oproj [REPEAT] [KERNELS]
 * The output projection instead (the tied embedding, 262144 x 640), for the
 * decode batches of a busy server, M = 1, 2, 4, 8, 16, 32, in bf16 and f16:
 * one JSON object per M. Its 335 MB of bf16 come from memory on every call,
 * as in the server.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "infer/kernels.h"
#include "infer/quant.h"

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 7;
static float frand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((double)(rng >> 40) / (double)(1ull << 24) - 0.5);
}

/* the matrices of one Gemma 3 270m layer: {out, in} */
static const int shapes[][2] = { { 1024, 640 }, { 256, 640 }, { 256, 640 }, { 640, 1024 },
                                 { 2048, 640 }, { 2048, 640 }, { 640, 2048 } };
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

/* The output projection: the best of `rounds` calls per M, in GFLOP/s. */
static int oproj(int rounds, const kernels *k)
{
	enum { NO = 262144,
	       IN = 640,
	       MMAX = 32 };
	const dtype types[] = {DTYPE_BF16, DTYPE_F16};
	const int ms[] = {1, 2, 4, 8, 16, 32};
	float *x = malloc((size_t)MMAX * IN * sizeof(float)), *out = malloc((size_t)MMAX * NO * sizeof(float));
	float *wf = malloc((size_t)IN * sizeof(float));
	uint16_t *w[2];
	if (!x || !out || !wf) return 1;
	for (size_t i = 0; i < (size_t)MMAX * IN; i++) x[i] = frand();
	for (int t = 0; t < 2; t++) {
		if (!(w[t] = malloc((size_t)NO * IN * 2))) return 1;
		for (size_t o = 0; o < NO; o++) {
			for (int i = 0; i < IN; i++) wf[i] = frand() * 0.1f;
			quant_quantize_row(types[t], w[t] + o * IN, wf, IN);
		}
	}
	for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
		int m = ms[mi];
		printf("{\"shape\":\"oproj\",\"m\":%d,\"kernels\":\"%s\"", m, k->name);
		for (int t = 0; t < 2; t++) {
			double best = 1e30;
			for (int r = 0; r < rounds; r++) {
				double t0 = cpu_s();
				k->matmul(out, NO, x, IN, m, w[t], types[t], IN, 0, NO);
				double dt = cpu_s() - t0;
				if (dt < best) best = dt;
			}
			printf(",\"%s_gflops\":%.1f,\"%s_ms\":%.1f", t ? "f16" : "bf16", 2.0 * m * NO * IN / best / 1e9,
			       t ? "f16" : "bf16", best * 1e3);
		}
		printf("}\n");
		fflush(stdout);
	}
	free(x);
	free(out);
	free(wf);
	free(w[0]);
	free(w[1]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "oproj")) {
		int rounds = argc > 2 ? atoi(argv[2]) : 5;
		const kernels *k = argc > 3 ? kernels_get(argv[3]) : kernels_best();
		if (rounds < 1 || !k) {
			fprintf(stderr, "usage: gemm oproj [REPEAT] [portable|avx2|avx512]\n");
			return 2;
		}
		return oproj(rounds, k);
	}
	int m = argc > 1 ? atoi(argv[1]) : 512, rounds = argc > 2 ? atoi(argv[2]) : 5;
	const kernels *k = argc > 3 ? kernels_get(argv[3]) : kernels_best();
	if (m < 1 || m > 4096 || rounds < 1 || !k) {
		fprintf(stderr, "usage: gemm [M 1..4096] [REPEAT] [portable|avx2|avx512]\n");
		return 2;
	}
	const dtype types[] = { DTYPE_BF16, DTYPE_F32, DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q8_0_X8, DTYPE_Q4_0_X8, DTYPE_Q4_K, DTYPE_Q6_K };
	float *x = malloc((size_t)m * 2048 * sizeof(float)), *out = malloc((size_t)m * 2048 * sizeof(float));
	float *wf = malloc((size_t)2048 * 640 * sizeof(float));
	void *w[NSHAPES];
	char *xq = malloc((size_t)m * quant_x_row_bytes(DTYPE_Q8_0, 2048) + (size_t)m * quant_x_row_bytes(DTYPE_Q4_K, 2048));
	if (!x || !out || !wf || !xq) return 1;
	for (size_t i = 0; i < (size_t)m * 2048; i++) x[i] = frand();
	printf("{\"m\":%d,\"kernels\":\"%s\"", m, k->name);
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		dtype t = types[ti];
		double flops = 0;
		for (int s = 0; s < NSHAPES; s++) {
			size_t n = (size_t)shapes[s][0] * (size_t)shapes[s][1];
			for (size_t i = 0; i < n; i++) wf[i] = frand() * 0.1f;
			w[s] = malloc(dtype_row_bytes(t, n));
			if (!w[s]) return 1;
			if (dtype_is_x8(t)) { /* as the model keeps Q4_0 and Q8_0: 8 rows together */
				dtype base = dtype_x8_base(t);
				size_t gb = X8_ROWS * dtype_row_bytes(base, (size_t)shapes[s][1]);
				char *q = malloc(dtype_row_bytes(base, n));
				if (!q) return 1;
				quant_quantize_row(base, q, wf, n);
				for (int g = 0; g < shapes[s][0] / X8_ROWS; g++)
					quant_pack_x8(t, (char *)w[s] + g * gb, q + g * gb, (size_t)shapes[s][1]);
				free(q);
			} else {
				quant_quantize_row(t, w[s], wf, n);
			}
			flops += 2.0 * m * (double)n;
		}
		double best = 1e30;
		for (int r = 0; r < rounds; r++) {
			double t0 = cpu_s();
			for (int s = 0; s < NSHAPES; s++) {
				int no = shapes[s][0], in = shapes[s][1];
				if (dtype_is_quantized(t)) {
					/* the activations are quantized once per product, as the engine does */
					size_t xb = quant_x_row_bytes(t, (size_t)in);
					for (int r2 = 0; r2 < m; r2++) k->quantize_x(t, xq + (size_t)r2 * xb, x + (size_t)r2 * in, (size_t)in);
					k->matmul_q(out, (size_t)no, xq, xb, m, w[s], t, in, 0, no);
				} else {
					k->matmul(out, (size_t)no, x, (size_t)in, m, w[s], t, in, 0, no);
				}
			}
			double dt = cpu_s() - t0;
			if (dt < best) best = dt;
		}
		char name[16];
		snprintf(name, sizeof name, "%s", dtype_name(t));
		for (char *p = name; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		printf(",\"%s_gflops\":%.1f", name, flops / best / 1e9);
		for (int s = 0; s < NSHAPES; s++) free(w[s]);
	}
	printf("}\n");
	free(x); free(out); free(wf); free(xq);
	return 0;
}
