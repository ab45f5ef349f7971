/*
 * bench_run.h — one benchmark run on the core event loop: asks the model name
 * when none is given, sends the workload's requests on the arrival schedule,
 * measures each response as it streams in, and folds the records into results.
 */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include <stddef.h>

#include "bench/bench.h"

/* Runs the benchmark cfg describes; results go into res (initialised by the
 * caller). Returns 0 when the run happened (even if every request failed or it
 * was interrupted: res says so), or -1 with a message in err when it could not
 * start (bad address, no model, unreadable file, no event loop). */
int bench_run(const bench_config *cfg, bench_results *res, char *err, size_t err_size);

#endif
