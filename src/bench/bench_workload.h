/*
 * bench_workload.h — what infergate-bench sends: request bodies for the
 * `random`, `shared-prefix` and `file` workloads, deterministic for a seed.
 *
 * A workload hands out one request at a time. `shared-prefix` is stateful: a
 * conversation's next turn is ready only after its previous turn finished, and
 * it carries the conversation so far (the assistant's answers included), so
 * workload_next may answer "nothing ready now" while every conversation waits
 * for an answer.
 *
 * Not here: sending, timing or statistics.
 */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"
#include "core/buf.h"

typedef struct workload workload;

#define WL_BODY_MAX_BYTES (64u << 20)   /* hard cap on one request body */
#define WL_ANSWER_MAX_BYTES (64u << 10) /* assistant text kept per turn */
#define WL_FILE_MAX_BYTES (512u << 20)  /* --file size cap */

/* One request to send. Owner: the caller; wl_request_free releases the body. */
typedef struct wl_request {
	buf body;         /* JSON body */
	const char *path; /* "/v1/chat/completions" or "/v1/completions" (static) */
	int conv, turn;   /* shared-prefix conversation and 0-based turn; else -1 */
} wl_request;

void wl_request_free(wl_request *r);

/* Builds the workload for cfg, with the model name to put in bodies. Returns
 * NULL and a message in err on a bad configuration or unreadable file. */
workload *workload_new(const bench_config *cfg, const char *model, char *err, size_t err_size);
void workload_free(workload *w);

#define WL_READY 1
#define WL_WAIT 0 /* nothing ready now; ask again after a workload_finish */
#define WL_EXHAUSTED (-1)
/* Fills *out with the next request (out->body is initialised here). Returns
 * WL_READY, WL_WAIT or WL_EXHAUSTED; -2 when a body could not be built (too
 * large or out of memory; the request is skipped). */
int workload_next(workload *w, wl_request *out);
/* Tells a stateful workload that a request ended: ok, and the assistant's text
 * (may be NULL). A failed turn ends its conversation. Returns 1 when a
 * conversation was abandoned by this call, else 0. */
int workload_finish(workload *w, int conv, int ok, const char *answer, size_t len);
/* 1 when the workload needs the assistant's text back (shared-prefix). */
int workload_wants_answers(const workload *w);
/* Requests the workload holds when it is finite (shared-prefix: G*U*T; file:
 * its lines); 0 when unlimited. */
uint64_t workload_size(const workload *w);

/* Writes n pseudo-random words (from a fixed list of common English words,
 * roughly one token each) to out, separated by spaces. */
void wl_words(buf *out, uint64_t *rng, int n);

#endif
