/*
 * fetch.h — the parallel range engine: many ranged GETs at once over libcurl's
 * multi interface, written with pwrite into files the caller opened.
 *
 * Each file is cut into chunks of chunk_bytes; a chunk is one GET with Range.
 * The engine keeps up to `connections` chunks in flight across all files, checks
 * every answer (206 whose Content-Range is exactly the range asked and the
 * file's size, or 200 for a whole-file range), pins every range to one version
 * of the object (wsrc_get_request's If-Match / generation / revision, and the
 * answer's ETag compared before a byte is written: a change fails the file
 * with `changed` set, never mixing versions), and retries a chunk on a transport error, a stall, a short body, a
 * 5xx/408/429, with backoff, at most `retries` times. A 4xx is final for its
 * file. The chunk states array is the caller's: chunks marked done are skipped
 * (that is how a download resumes). When `lock` is set, every read or write of
 * the states (and the pick and on_chunk hooks) happens under it, so readers in
 * other threads (the FUSE mount) can wait for chunks.
 *
 * It does not verify checksums or rename files: pull.c does that.
 */
#ifndef WEIGHTS_FETCH_H
#define WEIGHTS_FETCH_H

#include <pthread.h>
#include <stdint.h>
#include "weights/source.h"

enum { FETCH_MISSING = 0,
       FETCH_INFLIGHT = 1,
       FETCH_DONE = 2 };
#define FETCH_MAX_CHUNKS (1u << 20)

typedef struct fetch_file fetch_file;
struct fetch_file {
	const wfile *file; /* borrowed: path, size */
	int fd;            /* open for writing, already sized */
	uint64_t chunk_bytes;
	size_t n_chunks; /* ceil(size / chunk_bytes) */
	uint8_t *state;  /* n_chunks FETCH_*; the caller's */
	/* Optional: which missing chunk to start next (-1: none wanted now, the
	 * engine then takes the first missing one). Called under lock. */
	long (*pick)(void *arg, fetch_file *f);
	/* Optional: chunk idx has been written completely. Called under lock. */
	void (*on_chunk)(void *arg, fetch_file *f, size_t idx);
	void *arg;
	/* Filled by the engine. */
	int failed;
	int changed;   /* failed because the object changed at the source */
	char pin[160]; /* the ETag the first answer came with; later ranges must match it */
	char err[512];
	uint64_t done_bytes;     /* bytes of chunks done (including those done before) */
	uint8_t *attempts;       /* engine-owned */
	uint64_t *not_before_ms; /* engine-owned backoff deadlines */
	size_t cursor;           /* engine-owned: first chunk that may be missing */
};

typedef struct fetch_opts {
	const weights_opts *o;
	pthread_mutex_t *lock; /* NULL when single-threaded */
	volatile int *cancel;  /* stop as soon as possible when non-zero */
	/* Called at most every 200 ms from the engine's thread. */
	void (*progress)(void *arg, uint64_t bytes_now);
	void *progress_arg;
} fetch_opts;

/* Sets chunk fields of f for a file of `size` bytes; state must then be allocated
 * by the caller with n_chunks bytes. Returns 0, or -1 when too many chunks. */
int fetch_file_plan(fetch_file *f, uint64_t size, uint64_t chunk_bytes);

/* Downloads every missing chunk of every file. Returns 0 when all are done, -1
 * when some file failed (its failed/err say why) or on cancel. */
int fetch_run(wsrc *src, fetch_file *files, size_t n, const fetch_opts *fo);

#endif
