/*
 * bench_run.c — the run on the core event loop (see bench_run.h).
 */
#include "bench/bench_run.h"

#include <stdio.h>

int bench_run(const bench_config *cfg, bench_results *res, char *err, size_t err_size)
{
	snprintf(err, err_size, "not built with an HTTP client yet");
	return -1;
}
