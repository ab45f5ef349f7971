/*
 * peak.c — this machine's own compute peak, so that a kernel's speed can be
 * given as a share of it in the same run: f32 FMA (8 lanes on AVX2, 16 on
 * AVX-512), bf16 (on AVX2 widened to f32 then FMA; with AVX512_BF16 the
 * vdpbf16ps pair dot product) and int8 multiply-add (AVX2 vpmaddubsw +
 * vpmaddwd, AVX-512 the same 64 bytes wide, VNNI vpdpbusd where present).
 *
 * Each figure is register-only work (independent accumulator chains, enough to
 * cover the latency of two pipes), run on 1 thread and then on N threads at
 * once, each thread timed by its own CPU-time clock; the best of REPEAT rounds is kept
 * (a busy machine only makes figures lower). Prints one JSON object:
 *   {"threads":N, "f32_gflops_1":..., "f32_gflops_n":..., "bf16_...", "int8_gops_...", ...}
 * where a flop is a multiply or an add (an FMA lane is 2), an int8 op the same.
 *
 *   cc -O2 -pthread bench/engine/peak.c -o peak && ./peak [THREADS] [REPEAT]
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

enum { ITERS = 1 << 22 };

/* this thread's CPU time: a thread descheduled by someone else's work is not
 * charged for the wait, so a busy machine lowers the figures less */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Each kernel returns ops done; a volatile sink keeps the work alive. */
static volatile float sink_f;
static volatile int sink_i;

AVX2 static double f32_avx2(void)
{
	__m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
	#pragma GCC unroll 16
	for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
	for (int it = 0; it < ITERS; it++)
		#pragma GCC unroll 16
		for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
	__m256 s = a[0];
	for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
	sink_f = _mm256_cvtss_f32(s);
	return (double)ITERS * 12 * 8 * 2;
}

/* bf16 as the AVX2 kernels read it: zero-extend, shift, FMA (the weights come
 * from L1, as in a packed panel they would not: this is the unpacked path) */
AVX2 static double bf16_avx2(void)
{
	_Alignas(32) uint16_t w[8 * 64];
	for (int i = 0; i < 8 * 64; i++) w[i] = (uint16_t)(0x3f80 + (i & 7));
	__m256 a[8], x = _mm256_set1_ps(1e-7f);
	#pragma GCC unroll 16
	for (int i = 0; i < 8; i++) a[i] = _mm256_set1_ps((float)i);
	for (int it = 0; it < ITERS / 8; it++)
#pragma GCC unroll 8
		for (int j = 0; j < 64; j += 8)
#pragma GCC unroll 8
			for (int i = 0; i < 8; i++) {
				__m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(
					_mm256_cvtepu16_epi32(_mm_load_si128((const __m128i *)(w + 8 * ((j + i) & 63)))), 16));
				a[i] = _mm256_fmadd_ps(wv, x, a[i]);
			}
	__m256 s = a[0];
	for (int i = 1; i < 8; i++) s = _mm256_add_ps(s, a[i]);
	sink_f = _mm256_cvtss_f32(s);
	return (double)(ITERS / 8) * 64 * 8 * 2;
}

/* u8 x s8 pairs into s16 (vpmaddubsw), pairs of those into s32 (vpmaddwd),
 * added to an accumulator: 32 multiply-adds per 256-bit step */
AVX2 static double int8_avx2(void)
{
	__m256i a[12], s = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
	#pragma GCC unroll 16
	for (int i = 0; i < 12; i++) a[i] = _mm256_set1_epi32(i);
	for (int it = 0; it < ITERS; it++)
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++)   /* the accumulator's bytes as the unsigned operand: no hoisting */
			a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a[i], s), one));
	__m256i t = a[0];
	for (int i = 1; i < 12; i++) t = _mm256_add_epi32(t, a[i]);
	sink_i = _mm256_extract_epi32(t, 0);
	return (double)ITERS * 12 * 32 * 2;
}

/* vpmaddubsw alone, its pairs added in 16 bits: what a kernel whose small
 * codes leave room in 16 bits does (Q4_0x8 adds 8 products before one
 * vpmaddwd), 32 multiply-adds per step */
AVX2 static double int8_avx2_16(void)
{
	__m256i a[12], s = _mm256_set1_epi8(-2);
	#pragma GCC unroll 16
	for (int i = 0; i < 12; i++) a[i] = _mm256_set1_epi32(i);
	for (int it = 0; it < ITERS; it++)
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++)
			a[i] = _mm256_add_epi16(a[i], _mm256_maddubs_epi16(a[i], s));
	__m256i t = a[0];
	for (int i = 1; i < 12; i++) t = _mm256_add_epi16(t, a[i]);
	sink_i = _mm256_extract_epi32(t, 0);
	return (double)ITERS * 12 * 32 * 2;
}

AVX512 static double f32_avx512(void)
{
	__m512 a[16], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
	#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
	for (int it = 0; it < ITERS; it++)
		#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
	__m512 s = a[0];
	for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
	sink_f = _mm512_reduce_add_ps(s);
	return (double)ITERS * 16 * 16 * 2;
}

/* vdpbf16ps: 16 lanes, each two bf16 products added to an f32 */
AVX512BF16 static double bf16_avx512(void)
{
	__m512 a[16];
	__m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
	#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
	for (int it = 0; it < ITERS; it++)
		#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
	__m512 s = a[0];
	for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
	sink_f = _mm512_reduce_add_ps(s);
	return (double)ITERS * 16 * 32 * 2;
}

AVX512 static double int8_avx512(void)
{
	__m512i a[12], s = _mm512_set1_epi8(-2), one = _mm512_set1_epi16(1);
	#pragma GCC unroll 16
	for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
	for (int it = 0; it < ITERS; it++)
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++)
			a[i] = _mm512_add_epi32(a[i], _mm512_madd_epi16(_mm512_maddubs_epi16(a[i], s), one));
	__m512i t = a[0];
	for (int i = 1; i < 12; i++) t = _mm512_add_epi32(t, a[i]);
	sink_i = _mm512_reduce_add_epi32(t);
	return (double)ITERS * 12 * 64 * 2;
}

/* vpdpbusd: u8 x s8, four products added into each s32 lane */
AVX512VNNI static double int8_vnni(void)
{
	__m512i a[12], u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
	#pragma GCC unroll 16
	for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
	for (int it = 0; it < ITERS; it++)
		#pragma GCC unroll 16
		for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, s);
	__m512i t = a[0];
	for (int i = 1; i < 12; i++) t = _mm512_add_epi32(t, a[i]);
	sink_i = _mm512_reduce_add_epi32(t);
	return (double)ITERS * 12 * 64 * 2;
}

typedef double (*kern_fn)(void);
typedef struct { kern_fn fn; double gops; } job;

static void *run_job(void *p)
{
	job *j = p;
	double t0 = now_s(), ops = j->fn(), t1 = now_s();
	j->gops = ops / (t1 - t0) / 1e9;
	return NULL;
}

/* The sum over n threads run at once of each one's ops/s, best of rounds. */
static double measure(kern_fn fn, int n, int rounds)
{
	double best = 0;
	job jobs[256];
	pthread_t th[256];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < n; i++) jobs[i] = (job){ fn, 0 };
		for (int i = 1; i < n; i++) pthread_create(&th[i], NULL, run_job, &jobs[i]);
		run_job(&jobs[0]);
		for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
		double sum = 0;
		for (int i = 0; i < n; i++) sum += jobs[i].gops;
		if (sum > best) best = sum;
	}
	return best;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (n < 1 || n > 256 || rounds < 1 || rounds > 100) {
		fprintf(stderr, "usage: peak [THREADS 1..256] [REPEAT 1..100]\n");
		return 2;
	}
	__builtin_cpu_init();
	int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	             __builtin_cpu_supports("avx512vl");
	int bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
	int vnni = avx512 && __builtin_cpu_supports("avx512vnni");
	if (!avx2) { fprintf(stderr, "peak: this CPU has no AVX2+FMA\n"); return 1; }
	struct { const char *name; kern_fn fn; int ok; } k[] = {
		{ "f32_avx2", f32_avx2, 1 }, { "bf16_avx2", bf16_avx2, 1 }, { "int8_avx2", int8_avx2, 1 },
		{ "int8_avx2_16", int8_avx2_16, 1 },
		{ "f32_avx512", f32_avx512, avx512 }, { "bf16_avx512", bf16_avx512, bf16 },
		{ "int8_avx512", int8_avx512, avx512 }, { "int8_vnni", int8_vnni, vnni },
	};
	/* the fastest instructions of each kind this CPU has: what a kernel is measured against */
	double best_f32[2] = {0}, best_bf16[2] = {0}, best_int8[2] = {0};
	printf("{\"threads\":%d", n);
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		if (!k[i].ok) continue;
		double one = measure(k[i].fn, 1, rounds), all = n > 1 ? measure(k[i].fn, n, rounds) : one;
		printf(",\"%s_gops_1\":%.1f,\"%s_gops_n\":%.1f", k[i].name, one, k[i].name, all);
		double *b = strncmp(k[i].name, "f32", 3) == 0 ? best_f32 : strncmp(k[i].name, "bf16", 4) == 0 ? best_bf16 : best_int8;
		if (one > b[0]) b[0] = one;
		if (all > b[1]) b[1] = all;
	}
	/* a bf16 product is at least as fast as widening to f32 and an FMA */
	if (best_f32[0] > best_bf16[0]) best_bf16[0] = best_f32[0];
	if (best_f32[1] > best_bf16[1]) best_bf16[1] = best_f32[1];
	printf(",\"f32_peak_gflops_1\":%.1f,\"f32_peak_gflops_n\":%.1f,\"bf16_peak_gflops_1\":%.1f,\"bf16_peak_gflops_n\":%.1f"
	       ",\"int8_peak_gops_1\":%.1f,\"int8_peak_gops_n\":%.1f}\n",
	       best_f32[0], best_f32[1], best_bf16[0], best_bf16[1], best_int8[0], best_int8[1]);
	return 0;
}
