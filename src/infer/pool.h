/*
 * pool.h — a fixed team of threads that run one function together, for the
 * forward pass: the caller and n-1 workers each take a share of the rows.
 *
 * pool_run() hands out one job and returns when every thread has finished it.
 * Workers spin briefly between jobs (a decode step dispatches ~100 jobs in
 * tens of milliseconds) and then sleep on a condition variable, so an idle
 * engine costs no CPU. Nothing is allocated per job.
 * Not a general task queue: one job at a time, one caller at a time.
 */
#ifndef INFER_POOL_H
#define INFER_POOL_H

typedef struct pool pool;

/* fn runs on every thread; `index` is 0 for the caller, 1..n-1 for workers. */
typedef void (*pool_fn)(void *ctx, int index, int n_threads);

/* Starts n_threads-1 workers (n_threads >= 1; capped at 256). NULL on failure. */
pool *pool_new(int n_threads);
int pool_threads(const pool *p);
/* Runs fn(ctx, i, n) on all n threads and waits for all of them. */
void pool_run(pool *p, pool_fn fn, void *ctx);
/* Stops and joins the workers; frees p. Accepts NULL. */
void pool_free(pool *p);

/* The share [*begin, *end) of `total` items for thread `index` of n, with
 * boundaries rounded to multiples of `align` (so SIMD tiles stay whole). */
void pool_split(int total, int index, int n, int align, int *begin, int *end);

#endif
