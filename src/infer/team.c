/*
 * team.c — the forward pass's thread team (see team.h).
 *
 * A job is published in `claim` = (generation << 32 | next chunk) after its
 * fn, ctx and n_chunks are written; threads claim chunks by compare-and-swap
 * on `claim`, so a thread that arrives late finds the job finished (or takes
 * part in the next one) and never runs a chunk twice. `gen` wakes sleeping
 * workers; `done` counts finished chunks, and the thread finishing the last
 * one wakes the caller if it went to sleep. Spinning is bounded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include "infer/team.h"

enum { SPIN_ROUNDS = 20000,
       MAX_THREADS = 256,
       CHUNKS_PER_THREAD = 4 };

struct worker {
	team *p;
	pthread_t tid;
};

struct team {
	int n;      /* threads including the caller */
	team_fn fn; /* current job, written before claim is published */
	void *ctx;
	int n_chunks;
	_Atomic uint64_t claim;    /* generation << 32 | next unclaimed chunk */
	_Atomic int done;          /* chunks finished in the current job */
	_Atomic unsigned long gen; /* bumped per job, to wake workers */
	_Atomic int stop;
	pthread_mutex_t mu;
	pthread_cond_t job_cv, done_cv;
	struct worker *workers; /* n-1 */
	int started;            /* workers successfully created */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of the current job until none is left. */
static void work(team *p)
{
	for (;;) {
		uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
		team_fn fn = p->fn;
		void *ctx = p->ctx;
		int n = p->n_chunks;
		int idx = (int)(uint32_t)c;
		if (idx >= n) return;
		if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel, memory_order_relaxed))
			continue;
		fn(ctx, idx, n);
		if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == n) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	team *p = w->p;
	unsigned long seen = 0;
	for (;;) {
		unsigned long g;
		int spins = 0;
		while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
			if (++spins < SPIN_ROUNDS) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->job_cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
			break;
		}
		seen = g;
		if (atomic_load(&p->stop)) return NULL;
		work(p);
	}
}

team *team_new(int n_threads)
{
	if (n_threads < 1) n_threads = 1;
	if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
	team *p = calloc(1, sizeof *p);
	if (!p) return NULL;
	p->n = n_threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->job_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	if (n_threads > 1) {
		p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
		if (!p->workers) {
			team_free(p);
			return NULL;
		}
		for (int i = 0; i < n_threads - 1; i++) {
			p->workers[i].p = p;
			if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
				team_free(p);
				return NULL;
			}
			p->started++;
		}
	}
	return p;
}

int team_threads(const team *p) { return p->n; }

void team_run_chunks(team *p, team_fn fn, void *ctx, int n_chunks)
{
	if (n_chunks < 1) return;
	if (p->n == 1) {
		for (int i = 0; i < n_chunks; i++) fn(ctx, i, n_chunks);
		return;
	}
	uint64_t g = (atomic_load(&p->claim) >> 32) + 1;
	p->fn = fn;
	p->ctx = ctx;
	p->n_chunks = n_chunks;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store_explicit(&p->claim, g << 32, memory_order_release);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_cond_broadcast(&p->job_cv);
	pthread_mutex_unlock(&p->mu);
	work(p);
	for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) != n_chunks; spins++) {
		if (spins < SPIN_ROUNDS) {
			cpu_relax();
			continue;
		}
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->done) != n_chunks) pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
		break;
	}
}

void team_run(team *p, team_fn fn, void *ctx)
{
	team_run_chunks(p, fn, ctx, p->n == 1 ? 1 : p->n * CHUNKS_PER_THREAD);
}

void team_free(team *p)
{
	if (!p) return;
	if (p->started > 0) {
		pthread_mutex_lock(&p->mu);
		atomic_store(&p->stop, 1);
		atomic_fetch_add(&p->gen, 1);
		pthread_cond_broadcast(&p->job_cv);
		pthread_mutex_unlock(&p->mu);
		for (int i = 0; i < p->started; i++) pthread_join(p->workers[i].tid, NULL);
	}
	free(p->workers);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->job_cv);
	pthread_cond_destroy(&p->done_cv);
	free(p);
}

void team_split(int total, int index, int n, int align, int *begin, int *end)
{
	if (align < 1) align = 1;
	long units = ((long)total + align - 1) / align;
	long b = units * index / n * align, e = units * (index + 1) / n * align;
	*begin = (int)(b < total ? b : total);
	*end = (int)(e < total ? e : total);
}
