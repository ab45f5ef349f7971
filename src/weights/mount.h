/*
 * mount.h — `infergate-weights mount`: a read-only FUSE filesystem of a bucket
 * (or a Hugging Face repository), in the manner of Cloud Storage FUSE with
 * implicit directories and a file cache for range reads.
 *
 * Directories exist because object names have prefixes. The listing is fetched
 * once and kept for metadata_ttl_s. Opening a file starts a download of the
 * whole object into the cache folder with parallel range GETs (even when the
 * first read is at a non-zero offset); a read waits only for the chunks it
 * covers, and the chunk a reader waits for is fetched next, then the ones after
 * it (sequential prefetch). Files bigger than the cache are read straight from
 * the source, range by range. Complete files are evicted least-recently-used
 * when the cache is full; they survive a remount. The kernel page cache is kept
 * between opens, so mmap works and repeated reads cost nothing. Where the
 * kernel offers FUSE passthrough (Linux 6.9+) and we run as root, a file that
 * is complete in the cache when opened is read by the kernel straight from the
 * cache file (no request reaches us); CACHE/mount-<hash>/status.json says which
 * path is used. Writes get EROFS. SIGTERM, SIGINT or SIGHUP unmount cleanly.
 */
#ifndef WEIGHTS_MOUNT_H
#define WEIGHTS_MOUNT_H

#include <stddef.h>
#include <stdint.h>
#include "weights/weights.h"

typedef struct mount_opts {
	const char *source;      /* any location source.h knows */
	const char *mountpoint;  /* an existing empty folder */
	const char *cache_dir;   /* the file cache lives in CACHE/mount-<hash>/ */
	uint64_t capacity_bytes; /* 0: 100 GiB */
	int foreground;          /* else detach once mounted */
	int metadata_ttl_s;      /* listing reused this long (default 3600) */
	uint64_t chunk_bytes;    /* 0: 8 MiB (the read granularity of the file cache) */
	int passthrough_off;     /* 1: never ask the kernel for FUSE passthrough */
	const weights_opts *o;
} mount_opts;

/* Lists the source, mounts, serves until unmounted or signalled. Returns 0 after
 * a clean unmount, -1 with err filled when it could not mount. */
int weights_mount_run(const mount_opts *mo, char *err, size_t errlen);

#endif
