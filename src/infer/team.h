/*
 * team.h — a fixed team of threads that run one function together, for the
 * forward pass: the caller and n-1 workers each take a share of the rows.
 *
 * team_run() cuts one job into chunks (4 per thread) that the caller and the
 * workers claim one at a time, and returns when every chunk is done. Claiming
 * (not a fixed share per thread) matters on a busy machine: when a worker is
 * descheduled, the others take its chunks instead of waiting a time slice
 * for it. Workers spin briefly between jobs (a decode step dispatches ~100
 * jobs in tens of milliseconds) and then sleep on a condition variable, so an
 * idle engine costs no CPU. Nothing is allocated per job.
 * Not a general task queue: one job at a time, one caller at a time.
 */
#ifndef INFER_TEAM_H
#define INFER_TEAM_H

typedef struct team team;

/* fn runs once per chunk, on whichever thread claimed it: chunk `index` of
 * `n_chunks`; chunks of one job may run at the same time. */
typedef void (*team_fn)(void *ctx, int index, int n_chunks);

/* Starts n_threads-1 workers (n_threads >= 1; capped at 256). NULL on failure. */
team *team_new(int n_threads);
int team_threads(const team *p);
/* Runs fn(ctx, i, n) for every chunk i of n = 4 x threads (1 with one
 * thread) and waits until all are done. */
void team_run(team *p, team_fn fn, void *ctx);
/* The same with n_chunks chosen by the caller (>= 1, < 2^31). */
void team_run_chunks(team *p, team_fn fn, void *ctx, int n_chunks);
/* Stops and joins the workers; frees p. Accepts NULL. */
void team_free(team *p);

/* The share [*begin, *end) of `total` items for chunk `index` of n, with
 * boundaries rounded to multiples of `align` (so SIMD tiles stay whole). */
void team_split(int total, int index, int n, int align, int *begin, int *end);

#endif
