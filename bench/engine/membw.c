/*
 * membw.c — the machine's memory bandwidth, measured as the engine uses
 * memory: T threads each stream-read their share of a buffer much larger than
 * the caches (the decode step's pattern: read every weight once), plus a
 * STREAM-like triad a[i] = b[i] + s * c[i] for reference. Prints one JSON line
 * with the best of several repetitions, in GB/s (1e9 bytes per second).
 *
 * Each thread reads the clock itself, after the start barrier and after its
 * last load; a repetition lasts from the earliest start to the latest end.
 * (Timing from the main thread, as an earlier version did, let the workers
 * start before the main thread, itself a third runnable thread on a 2-CPU
 * machine, was scheduled to read the clock: its start came 0.4-8 ms late in
 * a ~25 ms pass, and the best of 5 reported up to 82 GB/s for a machine whose
 * threads measured 40-48 GB/s.)
 *
 *   cc -O2 -mavx2 -pthread membw.c -o membw && ./membw [THREADS] [MBYTES]
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t n_floats;
static float *a, *b, *c;
static int threads;
static volatile float sink;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct job { int t, mode; pthread_barrier_t *bar; double t0, t1; };

static void *work(void *arg)
{
	struct job *j = arg;
	size_t lo = n_floats * (size_t)j->t / (size_t)threads, hi = n_floats * (size_t)(j->t + 1) / (size_t)threads;
	lo &= ~(size_t)31;
	hi &= ~(size_t)31;
	pthread_barrier_wait(j->bar);
	j->t0 = now();
	if (j->mode == 0) {
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (size_t i = lo; i < hi; i += 32) {
			s0 = _mm256_add_ps(s0, _mm256_loadu_ps(b + i));
			s1 = _mm256_add_ps(s1, _mm256_loadu_ps(b + i + 8));
			s2 = _mm256_add_ps(s2, _mm256_loadu_ps(b + i + 16));
			s3 = _mm256_add_ps(s3, _mm256_loadu_ps(b + i + 24));
		}
		float t[8];
		_mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
		sink += t[0];
	} else {
		for (size_t i = lo; i < hi; i++) a[i] = b[i] + 3.0f * c[i];
	}
	j->t1 = now();
	return NULL;
}

static double run(int mode)
{
	double best = 1e30;
	for (int rep = 0; rep < 5; rep++) {
		pthread_t tid[256];
		struct job jobs[256];
		pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, (unsigned)threads);
		for (int t = 0; t < threads; t++) {
			jobs[t] = (struct job){ t, mode, &bar, 0, 0 };
			pthread_create(&tid[t], NULL, work, &jobs[t]);
		}
		double t0 = 1e300, t1 = 0;
		for (int t = 0; t < threads; t++) {
			pthread_join(tid[t], NULL);
			if (jobs[t].t0 < t0) t0 = jobs[t].t0;
			if (jobs[t].t1 > t1) t1 = jobs[t].t1;
		}
		double dt = t1 - t0;
		pthread_barrier_destroy(&bar);
		if (dt < best) best = dt;
	}
	double bytes = (double)n_floats * 4 * (mode == 0 ? 1 : 3);
	return bytes / best / 1e9;
}

int main(int argc, char **argv)
{
	threads = argc > 1 ? atoi(argv[1]) : 2;
	size_t mb = argc > 2 ? (size_t)atol(argv[2]) : 1024;
	if (threads < 1 || threads > 256 || mb < 16) return 2;
	n_floats = mb * 1000000 / 4;
	a = aligned_alloc(64, n_floats * 4);
	b = aligned_alloc(64, n_floats * 4);
	c = aligned_alloc(64, n_floats * 4);
	if (!a || !b || !c) return 1;
	memset(a, 0, n_floats * 4);
	for (size_t i = 0; i < n_floats; i++) { b[i] = (float)(i & 7); c[i] = 1.0f; }
	double rd = run(0), triad = run(1);
	printf("{\"threads\":%d,\"buffer_mb\":%zu,\"read_gb_s\":%.2f,\"triad_gb_s\":%.2f}\n", threads, mb, rd, triad);
	free(a); free(b); free(c);
	return 0;
}
