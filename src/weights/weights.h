/*
 * weights.h — options shared by every part of the weights path (pull, cache,
 * mount): connections, chunk size, timeouts, retries, object-store endpoints.
 * Environment variables fill what the caller leaves unset (see
 * weights_opts_from_env). Defaults are in weights_opts_default.
 */
#ifndef WEIGHTS_WEIGHTS_H
#define WEIGHTS_WEIGHTS_H

#include <stdint.h>

#define WEIGHTS_MAX_FILES 100000              /* files in one listing */
#define WEIGHTS_MAX_LISTING_BYTES (64u << 20) /* one listing response */
#define WEIGHTS_MAX_PATH 1024                 /* one relative path */

typedef struct weights_opts {
	int connections;          /* parallel range GETs (default 8) */
	uint64_t chunk_bytes;     /* range size (default 16 MiB) */
	int connect_timeout_s;    /* TCP/TLS connect (default 10) */
	int stall_timeout_s;      /* no byte for this long: retry the range (default 30) */
	int request_timeout_s;    /* one request, all included (default 600) */
	int retries;              /* attempts after the first, per range/request (default 5) */
	int lock_timeout_s;       /* cache: wait for another process's download (default 3600) */
	int quiet;                /* no progress output */
	int progress;             /* 1 bar, 0 summary only, -1 auto (a bar when stderr is a tty) */
	const char *s3_endpoint;  /* default AWS_ENDPOINT_URL, then https://s3.REGION.amazonaws.com */
	const char *s3_region;    /* default AWS_REGION, AWS_DEFAULT_REGION, us-east-1 */
	const char *gcs_endpoint; /* default STORAGE_EMULATOR_HOST, then https://storage.googleapis.com */
	const char *hf_endpoint;  /* default HF_ENDPOINT, then https://huggingface.co */
	const char *staging_dir;  /* pull to a bucket: local staging (default $TMPDIR or /tmp) */
} weights_opts;

void weights_opts_default(weights_opts *o);

/* Prints "1.5 GB"-style sizes (decimal units) into out. */
const char *weights_fmt_bytes(uint64_t bytes, char *out, size_t n);

#endif
