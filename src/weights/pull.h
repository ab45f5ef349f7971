/*
 * pull.h — downloading a model's files into a folder, or into a bucket.
 *
 * A file appears under its final name only once it is complete and verified:
 * it is written as STATE/<hash>.part with a sidecar STATE/<hash>.ranges that
 * records the chunks already on disk (synced before they are recorded), so an
 * interrupted download resumes where it stopped; when the source gives a sha256
 * (Hugging Face LFS) or an MD5 (S3 single-part ETag, GCS md5Hash) the whole file
 * is hashed, otherwise its size is checked; then fsync, rename, fsync of the
 * folder. A wrong checksum deletes the partial file: the bad bytes never appear
 * under the final name. STATE/manifest.json remembers verified files (size,
 * mtime, version) so a second pull skips them without hashing again.
 * STATE/pull.lock (flock) keeps a second pull of the same folder waiting.
 */
#ifndef WEIGHTS_PULL_H
#define WEIGHTS_PULL_H

#include <stddef.h>
#include <stdint.h>
#include "weights/source.h"

typedef struct pull_stats {
	size_t files_total, files_fetched, files_skipped, files_resumed;
	uint64_t bytes_total;   /* size of every file in the listing */
	uint64_t bytes_fetched; /* bytes downloaded by this run */
	double seconds;
} pull_stats;

/* Downloads the files of list from src into dir, keeping partial state in
 * state_dir (created; should be on the same filesystem as dir). Returns 0, or -1
 * with err naming the first failure (other files still complete). */
int pull_files(wsrc *src, const wlist *list, const char *dir, const char *state_dir,
	       const weights_opts *o, pull_stats *st, char *err, size_t errlen);

/* The whole `infergate-weights pull SOURCE DEST`: DEST is a folder or a bucket
 * location (http(s)://…/ accepting PUT, s3://, gs://). Prints progress per o. */
int weights_pull(const char *source, const char *dest, const weights_opts *o, pull_stats *st,
		 char *err, size_t errlen);

/* Creates the folder path with mode 0700, or accepts it when it exists and is
 * private: a real folder (not a symlink) owned by our user with no group or
 * other permissions, checked with fstat on the opened folder, in a parent
 * that others cannot write (unless sticky). 0, or -1 with err saying why. */
int pull_stage_private(const char *path, char *err, size_t errlen);
/* 0 when folder path is a real folder (not a symlink) owned by our user or
 * root and not writable by others unless sticky, so no other local user can
 * plant files in it; -1 with err saying why. The cache and the mount check
 * the folders they keep verified files and their records in. */
int pull_dir_trusted(const char *path, char *err, size_t errlen);
/* Creates every missing parent folder of path (mode 0755). 0 or -1. */
int pull_mkdirs_for(const char *path);
/* Removes a tree (no symlinks followed). 0 or -1. */
int pull_rmtree(const char *path);
/* Hashes size bytes of fd: sha256 (when sha_hex) and MD5 (when md5_hex). 0 or -1. */
int pull_hash_fd(int fd, uint64_t size, char *sha_hex, char *md5_hex);
/* Takes an flock (op LOCK_SH or LOCK_EX) on fd, polling every 100 ms for at
 * most timeout_s seconds; says once on stderr that it waits for `what` unless
 * quiet. 0, or -1 with errno (ETIMEDOUT when the wait ran out). */
int pull_lock_bounded(int fd, int op, int timeout_s, const char *what, int quiet);
/* The version a file is known by: sha256, else MD5, else ETag/mtime, else "". */
const char *pull_file_id(const wfile *f);

#endif
