/*
 * bench.h — infergate-bench's shared types: the run configuration (from the
 * command line), the record of one finished request, and the results that
 * records are folded into.
 *
 * The program is split by concern: main.c parses flags; bench_workload.c makes
 * request bodies; bench_run.c sends them on the core event loop and measures;
 * bench_report.c folds records into results and writes the text and JSON
 * reports; bench_stats.c holds the percentile code.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench_stats.h"

enum bench_endpoint { BENCH_CHAT = 0,
		      BENCH_COMPLETIONS = 1 };
enum bench_workload_kind { WL_RANDOM = 0,
			   WL_SHARED_PREFIX = 1,
			   WL_FILE = 2 };

/* Error kinds of a finished request; ERR_NONE is success. */
enum bench_err {
	ERR_NONE = 0,
	ERR_CONNECT, /* could not connect (refused, unreachable, connect timeout) */
	ERR_TIMEOUT, /* the per-request timeout passed */
	ERR_HTTP_4XX,
	ERR_HTTP_5XX,
	ERR_STREAM,   /* an error event in the stream, or a stream without [DONE] */
	ERR_PROTOCOL, /* malformed HTTP, unparsable JSON, unexpected status, reset mid-body */
	ERR_KINDS
};
const char *bench_err_name(int kind);

#define BENCH_MAX_HEADERS 32
#define BENCH_MAX_REQUESTS_CAP 10000000ULL /* hard cap on requests of one run */

/* The whole configuration of a run. Owner: main.c (strings point into argv or
 * are owned by main). Times in ms unless named otherwise. */
typedef struct bench_config {
	/* target */
	const char *url; /* as given */
	char host[256];  /* from the URL */
	int port;
	char base_path[256]; /* URL path prefix without trailing '/', often "" */
	enum bench_endpoint endpoint;
	const char *model;                      /* NULL: ask GET /v1/models */
	const char *headers[BENCH_MAX_HEADERS]; /* "Name: value", verbatim */
	int n_headers;

	/* arrivals */
	double rate;              /* requests/s, open loop; 0 = closed loop */
	int concurrency;          /* closed loop slots (0 with rate) */
	uint64_t requests;        /* measured requests to send; 0 = by duration/workload */
	uint64_t duration_ms;     /* measured window for arrivals; 0 = by count */
	uint64_t warmup_requests; /* sent first, not measured */
	uint64_t warmup_ms;       /* or: arrivals in the first warmup_ms not measured */
	uint64_t seed;

	/* request shape */
	int stream;         /* 1 = "stream": true */
	int max_tokens;     /* -1: not sent (workloads may set it) */
	double temperature; /* < 0: not sent */
	int ignore_eos;     /* -1 auto (random, shared-prefix: on), 0, 1 */

	/* workload */
	enum bench_workload_kind workload;
	int input_len;     /* words of a random prompt / user turn */
	int output_len;    /* max_tokens of random and shared-prefix requests */
	double len_jitter; /* lengths uniform in [len*(1-j), len*(1+j)] */
	int groups, system_len, users, turns;
	const char *file;

	/* bounds */
	uint64_t timeout_ms;  /* per request, from its send */
	uint64_t deadline_ms; /* whole run; 0 = derived */
	int max_inflight;

	/* output */
	const char *json_path; /* NULL, "-" or a file */
	const char *per_request_path;
	int progress; /* -1 auto (stderr is a terminal), 0, 1 */
	int quiet;    /* no text report */
} bench_config;

/* One finished (or abandoned) request. Times are ns on the monotonic clock,
 * relative to the run's start; latencies in ms. Owner: bench_run.c, which fills
 * it and hands it to bench_results_add; strings are copied there. */
typedef struct bench_record {
	uint64_t id;             /* 0-based order of scheduling */
	int warmup;              /* 1: excluded from the statistics */
	int conv, turn;          /* shared-prefix: conversation and turn (else -1) */
	uint64_t scheduled_ns;   /* when the arrival process wanted it sent */
	uint64_t sent_ns;        /* when its first byte was handed to the client */
	uint64_t first_token_ns; /* first content chunk (0: none) */
	uint64_t done_ns;        /* last byte, error, or timeout */
	double ttft_ms;          /* first_token - scheduled (stream); e2e (non-stream) */
	double e2e_ms;           /* done - scheduled */
	double tpot_ms;          /* (e2e - ttft) / (output_tokens - 1); <0 if undefined */
	double itl_mean_ms, itl_max_ms;
	uint64_t itl_count;     /* gaps recorded */
	uint64_t output_tokens; /* usage.completion_tokens, else content chunks */
	uint64_t prompt_tokens; /* usage.prompt_tokens, else 0 */
	uint64_t chunks;        /* content chunks seen */
	int usage_seen;         /* tokens came from usage */
	int status;             /* HTTP status, 0 if none */
	int err;                /* enum bench_err */
	char err_detail[160];
	char region[64];    /* x-infergate-region, "-" when absent */
	char endpoint[128]; /* x-infergate-endpoint, "-" when absent */
} bench_record;

/* Everything the report shows; measured requests only, except `warmup_*`.
 * Owner: bench_run.c; bench_results_free releases it. */
typedef struct bench_results {
	uint64_t finished, ok; /* measured requests finished, of which ok */
	uint64_t errors_by_kind[ERR_KINDS];
	uint64_t warmup_finished, warmup_errors;
	uint64_t unfinished;                   /* in flight when the run ended */
	uint64_t deferred_arrivals;            /* arrivals that waited for a free conversation */
	uint64_t conversations_abandoned;      /* shared-prefix: ended by an error */
	uint64_t output_tokens, prompt_tokens; /* of ok measured requests */
	uint64_t usage_missing;                /* ok requests whose tokens were counted chunks */
	samples ttft, itl, tpot, e2e, lag;     /* ms */
	counters regions, endpoints, statuses;
	uint64_t window_start_ns, window_end_ns; /* measured window (run-relative) */
	int have_window;
	double elapsed_s;        /* whole run */
	const char *stop_reason; /* "done", "deadline", "signal", ... */
	char model[256];         /* the model used */
} bench_results;

void bench_results_init(bench_results *r, uint64_t seed);
void bench_results_free(bench_results *r);
/* Folds one finished record in, with its inter-token gaps (ms, n_itl of them;
 * only an ok measured request's gaps count). */
void bench_results_add(bench_results *r, const bench_record *rec, const float *itl_ms, size_t n_itl);

/* Writes the human report to f. */
void bench_report_text(FILE *f, const bench_config *cfg, bench_results *r);
/* Writes the JSON report to path ("-" = stdout). Returns 0 or -1 (message on stderr). */
int bench_report_json(const char *path, const bench_config *cfg, bench_results *r);
/* One JSONL line of a record, appended to f. */
void bench_report_record(FILE *f, const bench_record *rec);

#endif
