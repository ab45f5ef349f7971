/*
 * cache.h — the machine-wide model cache the model server opens its weights
 * from (`infergate-server --model URL --cache-dir DIR`), also behind
 * `infergate-weights cache`.
 *
 * Layout under DIR:
 *   models/<name>-<hash>/files/…          the model's files, complete and verified
 *   models/<name>-<hash>/meta.json        source, revision, files (size, version), last use
 *   models/<name>-<hash>/state/           partial downloads and their sidecars
 *   models/<name>-<hash>/download.lock    flock: held exclusively while checking/downloading
 *   models/<name>-<hash>/use.lock         flock: held shared by every process using the model
 *   evict.lock                            flock: one evictor at a time
 *
 * One process downloads while the others wait on download.lock (bounded by
 * lock_timeout_s). A warm open does one cheap freshness check (one listing,
 * compared to meta.json) — none when offline — and returns at once. After an
 * open, whole models are evicted least-recently-used first until the cache fits
 * its capacity; a model in use (its use.lock held) is never evicted, and
 * neither is the one just opened.
 */
#ifndef WEIGHTS_CACHE_H
#define WEIGHTS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "weights/weights.h"

typedef struct weights_cache weights_cache;

/* Makes the model at url complete in cache_dir and holds it in use. capacity_bytes
 * 0 means unlimited. offline: never touch the network; fail when the model is not
 * complete in the cache. o NULL means defaults (quiet). Returns 0 with *out set,
 * or -1 with err filled. */
int weights_cache_open(const char *url, const char *cache_dir, uint64_t capacity_bytes, int offline,
		       const weights_opts *o, weights_cache **out, char *err, size_t errlen);
/* The folder holding the model's files (valid until weights_cache_close). */
const char *weights_cache_path(const weights_cache *c);
/* The revision recorded for the model ("" when the source has none). */
const char *weights_cache_revision(const weights_cache *c);
/* 1 when the open downloaded something, 0 when the cache was warm. */
int weights_cache_was_cold(const weights_cache *c);
/* Releases the model (its use lock); the files stay in the cache. */
void weights_cache_close(weights_cache *c);

/* Evicts least-recently-used models not in use until the cache holds at most
 * capacity_bytes; keep_key (a models/ entry name, may be NULL) is never evicted.
 * Returns the bytes freed. */
uint64_t weights_cache_evict(const char *cache_dir, uint64_t capacity_bytes, const char *keep_key);

#endif
