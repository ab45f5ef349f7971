/*
 * mount.c — the read-only FUSE filesystem of `infergate-weights mount`
 * (libfuse3, high-level API, multithreaded). See mount.h for the behaviour.
 *
 * One mutex guards every node's cache state; each node has a condition
 * variable that readers wait on until the chunks they need have arrived. One
 * download thread per object being cached runs fetch_run() with that mutex, so
 * the chunk states it updates are the ones readers see.
 *
 * Where the kernel allows it, a file complete in the cache is opened with
 * kernel FUSE passthrough and its reads never reach this file; the protocol
 * part libfuse 3.14 lacks is spoken in the "passthrough" section below.
 */
#define FUSE_USE_VERSION 31
#include "weights/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <fuse3/fuse.h>
#include <fuse3/fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "weights/fetch.h"
#include "weights/pull.h"
#include "weights/source.h"
#include "weights/xfer.h"

enum node_state { NODE_NONE,
		  NODE_FETCHING,
		  NODE_COMPLETE,
		  NODE_UNCACHED /* read from the source */ };

/* The largest read the kernel sends us (mount option max_read). libfuse splices
 * a reply from the cache file only when the reply (data and a 16-byte header)
 * fits a pipe, and a pipe grows to at most /proc/sys/fs/pipe-max-size (1 MiB by
 * default): 1 MiB reads would fall back to a copy through a user buffer. */
#define MOUNT_READ_MAX_BYTES (512u << 10)
/* Kernel readahead on the mount (the bdi's read_ahead_kb; FUSE starts at 128 KiB
 * and lowers, never raises, it at init). A deep window keeps several reads in
 * flight, so our threads splice the next ones while the reader copies this one. */
#define MOUNT_READAHEAD_KB 4096u

/* One file of the listing. Owner: the mount; never freed before unmount (open
 * file handles point at it). */
typedef struct node {
	wfile f;         /* path owned */
	int gone;        /* no longer in the listing */
	int state;       /* enum node_state */
	int fd;          /* the cache file (partial or complete), or -1 */
	uint8_t *chunks; /* FETCH_* per chunk while fetching */
	size_t n_chunks;
	uint64_t chunk_bytes;
	long want;              /* chunk a reader waits for, -1 */
	size_t next_read_chunk; /* where sequential prefetch continues */
	int opens;              /* all opens (an opened file is never evicted) */
	int pt_opens;           /* of which answered FOPEN_PASSTHROUGH (the kernel reads the cache file) */
	int fuse_opens;         /* of which read through us */
	int backing_id;         /* the kernel's id for fd while pt_opens > 0, else 0 */
	int cached_ok;          /* the cache file on disk is this version (from the index) */
	char source_pin[160];   /* read from the source: the ETag its first range came with (g.mu) */
	int changed;            /* its download stopped because the object changed at the source:
	                             reads fail (EIO) until every open is closed, so no open sees
	                             bytes of two versions; the next open starts over (g.mu) */
	struct node *older;     /* the version of this path the listing had before, or NULL */
	int opened;             /* opened at least once (its pages may be kept) */
	uint64_t last_used_ms;
	uint64_t progress_ms; /* last time a chunk arrived */
	pthread_cond_t cv;
	pthread_t thr;
	int thr_live;
	char err[512];
	char part[4200], final[8192];
} node;

static struct mnt {
	pthread_mutex_t mu;
	pthread_mutex_t refresh_mu;
	wsrc *src;
	weights_opts o;
	node **nodes; /* sorted by path */
	size_t n;
	node **all; /* every node ever made (for cleanup) */
	size_t n_all, cap_all;
	uint64_t listed_ms;
	int ttl_s;
	char root[4096]; /* CACHE/mount-<hash> */
	uint64_t capacity, used;
	uint64_t chunk_bytes;
	volatile int cancel;
	time_t mount_time;
	/* FUSE passthrough (see the section below). Guarded by mu, except pt
	 * fields the INIT exchange writes before any other request is served. */
	int pt;            /* enum pt_state */
	char pt_why[256];  /* why passthrough is off or unavailable */
	int dev_fd;        /* the session's /dev/fuse descriptor, for the backing ioctls */
	unsigned pt_depth; /* max_stack_depth we ask for: 1, or 2 when the cache is on a stacking fs */
	uint64_t opens_pt_total, opens_fuse_total;
	uint64_t reads_fuse_total; /* READ requests served (atomic) */
} g;

/* ---------------------------------------------------------------- tree */

static int node_cmp(const void *a, const void *b)
{
	return strcmp((*(node *const *)a)->f.path, (*(node *const *)b)->f.path);
}

/* First index whose path is >= key. */
static size_t lower_bound(const char *key)
{
	size_t lo = 0, hi = g.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(g.nodes[mid]->f.path, key) < 0) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

static node *find_file(const char *rel)
{
	size_t i = lower_bound(rel);
	return i < g.n && !strcmp(g.nodes[i]->f.path, rel) ? g.nodes[i] : NULL;
}

/* 1 when rel ("" for the root) is a directory: some object name starts with rel/. */
static int is_dir(const char *rel)
{
	if (!*rel) return 1;
	char key[WEIGHTS_MAX_PATH + 2];
	if (snprintf(key, sizeof key, "%s/", rel) >= (int)sizeof key) return 0;
	size_t i = lower_bound(key);
	return i < g.n && !strncmp(g.nodes[i]->f.path, key, strlen(key));
}

static node *node_new(const wfile *f)
{
	node *nd = calloc(1, sizeof *nd);
	if (!nd) return NULL;
	nd->f = *f;
	nd->f.path = str_dup(f->path);
	if (!nd->f.path) {
		free(nd);
		return NULL;
	}
	nd->fd = -1;
	nd->want = -1;
	pthread_cond_init(&nd->cv, NULL);
	snprintf(nd->final, sizeof nd->final, "%s/objects/%s", g.root, f->path);
	snprintf(nd->part, sizeof nd->part, "%s/partial/%016llx.part", g.root,
		 (unsigned long long)hash64(f->path, strlen(f->path), 3));
	if (g.n_all == g.cap_all) {
		size_t nc = g.cap_all ? g.cap_all * 2 : 256;
		node **na = realloc(g.all, nc * sizeof *na);
		if (!na) {
			free(nd->f.path);
			free(nd);
			return NULL;
		}
		g.all = na;
		g.cap_all = nc;
	}
	g.all[g.n_all++] = nd;
	return nd;
}

/* ---------------------------------------------------------------- index */

/* The cache index: which version of each object the cache folder holds. */
static void index_save_locked(void)
{
	buf b;
	buf_init(&b, 64u << 20);
	json_w w;
	jw_init(&w, &b);
	jw_obj_begin(&w);
	for (size_t i = 0; i < g.n_all; i++) {
		node *nd = g.all[i];
		if (nd->state != NODE_COMPLETE) continue;
		jw_key(&w, nd->f.path);
		jw_obj_begin(&w);
		jw_key(&w, "size");
		jw_uint(&w, nd->f.size);
		jw_key(&w, "id");
		jw_str(&w, pull_file_id(&nd->f));
		jw_obj_end(&w);
	}
	jw_obj_end(&w);
	char p[4200], t[4300];
	snprintf(p, sizeof p, "%s/index.json", g.root);
	snprintf(t, sizeof t, "%s.tmp", p);
	int fd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0 && !w.error) {
		size_t off = 0, n = buf_rlen(&b);
		while (off < n) {
			ssize_t k = write(fd, buf_rptr(&b) + off, n - off);
			if (k < 0 && errno == EINTR) continue;
			if (k <= 0) break;
			off += (size_t)k;
		}
		close(fd);
		if (off == n) rename(t, p);
	} else if (fd >= 0) {
		close(fd);
	}
	buf_free(&b);
}

/* Marks nodes whose cached copy is this version; deletes stale copies. */
static void index_load(void)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/index.json", g.root);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return;
	buf b;
	buf_init(&b, 64u << 20);
	for (;;) {
		char *s = buf_space(&b, 65536);
		if (!s) break;
		ssize_t k = read(fd, s, 65536);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) break;
		buf_commit(&b, (size_t)k);
	}
	close(fd);
	json_doc *d = json_parse(buf_rptr(&b), buf_rlen(&b), 0, NULL);
	buf_free(&b);
	const json_val *r = d ? json_root(d) : NULL;
	for (size_t i = 0; r && i < json_count(r); i++) {
		const json_member *m = &r->u.obj.members[i];
		node *nd = find_file(m->key);
		struct stat st;
		int ok = nd && (uint64_t)json_num(json_get(m->val, "size"), -1) == nd->f.size &&
			 !strcmp(json_str(json_get(m->val, "id"), ""), pull_file_id(&nd->f)) &&
			 stat(nd->final, &st) == 0 && (uint64_t)st.st_size == nd->f.size;
		if (ok) {
			nd->cached_ok = 1;
			nd->state = NODE_COMPLETE;
			nd->last_used_ms = time_mono_ms();
			g.used += nd->f.size;
		} else if (wsrc_path_ok(m->key, strlen(m->key))) {
			char q[8192];
			snprintf(q, sizeof q, "%s/objects/%s", g.root, m->key);
			unlink(q);
		}
	}
	json_doc_free(d);
}

/* ---------------------------------------------------------------- listing */

static int list_into(wlist *l, char *err, size_t n)
{
	return wsrc_list(g.src, l, err, n);
}

/* Replaces the tree with a new listing; unchanged files keep their nodes. */
static int apply_listing(wlist *l)
{
	node **nn = calloc(l->n + 1, sizeof *nn);
	if (!nn) return -1;
	for (size_t i = 0; i < l->n; i++) {
		node *old = find_file(l->files[i].path);
		if (old && old->f.size == l->files[i].size && !strcmp(pull_file_id(&old->f), pull_file_id(&l->files[i]))) {
			nn[i] = old;
			continue;
		}
		if (old) old->gone = 1;
		nn[i] = node_new(&l->files[i]);
		if (!nn[i]) {
			free(nn);
			return -1;
		}
		nn[i]->older = old; /* the same kernel inode: see pt_choose_locked() */
	}
	for (size_t i = 0; i < g.n; i++) {
		int kept = 0;
		for (size_t k = 0; k < l->n && !kept; k++) kept = nn[k] == g.nodes[i];
		if (!kept) g.nodes[i]->gone = 1;
	}
	free(g.nodes);
	g.nodes = nn;
	g.n = l->n;
	qsort(g.nodes, g.n, sizeof *g.nodes, node_cmp);
	g.listed_ms = time_mono_ms();
	return 0;
}

/* Re-lists when the TTL has passed. A failed listing keeps the old tree. */
static void maybe_refresh(void)
{
	if (g.ttl_s <= 0) return;
	pthread_mutex_lock(&g.mu);
	int due = time_mono_ms() - g.listed_ms >= (uint64_t)g.ttl_s * 1000u;
	pthread_mutex_unlock(&g.mu);
	if (!due || pthread_mutex_trylock(&g.refresh_mu)) return;
	wlist l;
	char err[1024];
	if (list_into(&l, err, sizeof err) == 0) {
		pthread_mutex_lock(&g.mu);
		apply_listing(&l);
		pthread_mutex_unlock(&g.mu);
		wlist_free(&l);
	} else {
		log_ratelimited(LOG_WARN, "refreshing the listing failed: %s; keeping the old one", err);
		pthread_mutex_lock(&g.mu);
		g.listed_ms = time_mono_ms();
		pthread_mutex_unlock(&g.mu);
	}
	pthread_mutex_unlock(&g.refresh_mu);
}

/* ---------------------------------------------------------------- file cache */

static long pick(void *arg, fetch_file *f)
{
	node *nd = arg;
	if (nd->want >= 0 && (size_t)nd->want < nd->n_chunks && nd->chunks[nd->want] == FETCH_MISSING) return nd->want;
	for (size_t k = nd->next_read_chunk; k < nd->n_chunks; k++)
		if (nd->chunks[k] == FETCH_MISSING) return (long)k;
	return -1;
}

static void on_chunk(void *arg, fetch_file *f, size_t idx)
{
	node *nd = arg;
	nd->progress_ms = time_mono_ms();
	pthread_cond_broadcast(&nd->cv);
}

static void *fetch_thread(void *arg)
{
	node *nd = arg;
	fetch_file ff = {.file = &nd->f, .fd = nd->fd, .chunk_bytes = nd->chunk_bytes, .n_chunks = nd->n_chunks, .state = nd->chunks, .pick = pick, .on_chunk = on_chunk, .arg = nd};
	fetch_opts fo = {.o = &g.o, .lock = &g.mu, .cancel = &g.cancel};
	int rc = fetch_run(g.src, &ff, 1, &fo);
	char err[512] = "";
	if (rc) snprintf(err, sizeof err, "%s", ff.failed ? ff.err : "cancelled");
	if (!rc && (nd->f.sha256[0] || nd->f.md5[0])) {
		char sha[65] = "", md5[33] = "";
		if (pull_hash_fd(nd->fd, nd->f.size, nd->f.sha256[0] ? sha : NULL, nd->f.md5[0] ? md5 : NULL) ||
		    strcmp(nd->f.sha256[0] ? nd->f.sha256 : nd->f.md5, nd->f.sha256[0] ? sha : md5)) {
			snprintf(err, sizeof err, "checksum mismatch for %s", nd->f.path);
			rc = -1;
		}
	}
	if (!rc) {
		fsync(nd->fd);
		if (pull_mkdirs_for(nd->final) < 0 || rename(nd->part, nd->final) < 0) {
			snprintf(err, sizeof err, "cannot move %s into the cache: %s", nd->f.path, strerror(errno));
			rc = -1;
		}
	}
	pthread_mutex_lock(&g.mu);
	if (rc && ff.changed) nd->changed = 1;
	if (rc) {
		log_ratelimited(LOG_ERROR, "caching %s failed: %s", nd->f.path, err);
		str_copy(nd->err, err, sizeof nd->err);
		/* Readers waiting on missing chunks see NODE_NONE and fail with EIO; a
		 * later open starts over. Bytes already served were complete chunks. */
		nd->state = NODE_NONE;
		close(nd->fd);
		nd->fd = -1;
		unlink(nd->part);
		g.used -= MIN(g.used, nd->f.size);
		free(nd->chunks);
		nd->chunks = NULL;
	} else {
		nd->state = NODE_COMPLETE;
		nd->cached_ok = 1;
		free(nd->chunks);
		nd->chunks = NULL;
		index_save_locked();
	}
	nd->thr_live = 0;
	pthread_cond_broadcast(&nd->cv);
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

static int by_lru(const void *a, const void *b)
{
	const node *x = *(node *const *)a, *y = *(node *const *)b;
	if (x->gone != y->gone) return y->gone - x->gone; /* stale versions first */
	return x->last_used_ms < y->last_used_ms ? -1 : x->last_used_ms > y->last_used_ms;
}

/* Frees room for `need` bytes by dropping complete, unopened files. Under lock. */
static int make_room_locked(uint64_t need)
{
	if (g.used + need <= g.capacity) return 0;
	node **c = calloc(g.n_all + 1, sizeof *c);
	if (!c) return -1;
	size_t n = 0;
	for (size_t i = 0; i < g.n_all; i++)
		if (g.all[i]->state == NODE_COMPLETE && g.all[i]->opens == 0) c[n++] = g.all[i];
	qsort(c, n, sizeof *c, by_lru);
	for (size_t i = 0; i < n && g.used + need > g.capacity; i++) {
		node *nd = c[i];
		if (nd->fd >= 0) close(nd->fd);
		nd->fd = -1;
		unlink(nd->final);
		nd->state = NODE_NONE;
		nd->cached_ok = 0;
		g.used -= MIN(g.used, nd->f.size);
		log_info("evicted %s from the file cache", nd->f.path);
	}
	free(c);
	if (n) index_save_locked();
	return g.used + need <= g.capacity ? 0 : -1;
}

/* Gets the node's bytes on their way: open a complete copy, or start a download,
 * or fall back to reading from the source. Under lock. Returns 0 or -errno. */
static int ensure_locked(node *nd)
{
	nd->last_used_ms = time_mono_ms();
	if (nd->state == NODE_FETCHING || nd->state == NODE_UNCACHED) return 0;
	if (nd->state == NODE_COMPLETE) {
		if (nd->fd < 0) nd->fd = open(nd->final, O_RDONLY | O_CLOEXEC);
		if (nd->fd >= 0) return 0;
		nd->state = NODE_NONE; /* removed behind our back: fetch again */
		g.used -= MIN(g.used, nd->f.size);
	}
	if (nd->f.size > g.capacity || make_room_locked(nd->f.size)) {
		log_ratelimited(LOG_WARN, "%s (%llu bytes) does not fit the file cache; reading it from the source",
				nd->f.path, (unsigned long long)nd->f.size);
		nd->state = NODE_UNCACHED;
		return 0;
	}
	if (pull_mkdirs_for(nd->part) < 0) return -EIO;
	int fd = open(nd->part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) return -EIO;
	if (ftruncate(fd, (off_t)nd->f.size) < 0) {
		close(fd);
		unlink(nd->part);
		return -ENOSPC;
	}
	fetch_file plan = {0};
	fetch_file_plan(&plan, nd->f.size, g.chunk_bytes);
	nd->chunks = calloc(plan.n_chunks + 1, 1);
	if (!nd->chunks) {
		close(fd);
		unlink(nd->part);
		return -ENOMEM;
	}
	nd->n_chunks = plan.n_chunks;
	nd->chunk_bytes = plan.chunk_bytes;
	nd->fd = fd;
	nd->want = -1;
	nd->err[0] = 0;
	nd->state = NODE_FETCHING;
	nd->progress_ms = time_mono_ms();
	g.used += nd->f.size;
	if (nd->thr_live) pthread_join(nd->thr, NULL); /* a finished earlier attempt */
	nd->thr_live = 1;
	if (pthread_create(&nd->thr, NULL, fetch_thread, nd)) {
		nd->thr_live = 0;
		nd->state = NODE_NONE;
		close(fd);
		nd->fd = -1;
		free(nd->chunks);
		nd->chunks = NULL;
		g.used -= nd->f.size;
		return -EAGAIN;
	}
	return 0;
}

/* ---------------------------------------------------------------- passthrough
 *
 * FUSE passthrough (Linux 6.9+, protocol 7.40): for an open file the kernel
 * may read a backing file itself (read, splice and mmap), so a read costs what
 * a read of the cache file costs; no request reaches us. libfuse 3.14 predates
 * it, so we speak that part of the protocol ourselves through libfuse's custom
 * I/O hooks (fuse_session_custom_io): `read` sees the kernel's INIT request
 * (does it offer FUSE_PASSTHROUGH?), `writev` patches two replies as they are
 * written: INIT (FUSE_INIT_EXT, FUSE_PASSTHROUGH in flags2, max_stack_depth)
 * and the OPEN of a file that is complete in the cache (FOPEN_PASSTHROUGH and
 * the backing id from FUSE_DEV_IOC_BACKING_OPEN). Both replies are written by
 * the thread that ran our callback (op_init, op_open), so a thread-local note
 * says which reply to patch and how; a reply of another shape is left alone.
 *
 * The kernel puts each inode in one I/O mode at a time: while a file is open
 * through us (cached mode) a passthrough open fails, and the other way round;
 * all passthrough opens of an inode must name the same backing file. So a node
 * open through us gets more opens through us, a node open passthrough reuses
 * its backing id, and only a node nobody has open chooses afresh. The kernel
 * leaves an inode's mode before it sends RELEASE, so our counts never say
 * "closed" while the kernel still holds a mode.
 *
 * Files still downloading, files not cached, and every file when passthrough
 * is not available (not root: the ioctl needs CAP_SYS_ADMIN; an older kernel;
 * --passthrough off) are read through us as before.
 */

enum pt_state { PT_OFF,
		PT_PENDING,
		PT_ON,
		PT_UNAVAILABLE };
static const char *const pt_names[] = {"off", "pending", "on", "unavailable"};

/* Protocol constants of Linux include/uapi/linux/fuse.h that libfuse 3.14's
 * headers lack (passthrough arrived in protocol 7.40, Linux 6.9). */
#define PT_FUSE_INIT 26                      /* opcode */
#define PT_FUSE_WRITEBACK_CACHE (1u << 16)   /* init flags; the kernel refuses passthrough with it */
#define PT_FUSE_INIT_EXT (1u << 30)          /* init flags: flags2 is valid */
#define PT_FUSE_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH is 1ULL << 37: bit 5 of flags2 */
#define PT_FOPEN_PASSTHROUGH (1u << 7)       /* fuse_open_out.open_flags */
/* The only open flags the kernel accepts beside it (fs/fuse/iomode.c): with
 * FOPEN_KEEP_CACHE, which op_open sets, the open fails (EIO). */
#define PT_FOPEN_PASSTHROUGH_MASK (PT_FOPEN_PASSTHROUGH | (1u << 0) /* DIRECT_IO */ | \
				   (1u << 5) /* NOFLUSH */ | (1u << 6) /* PARALLEL_DIRECT_WRITES */)
#define PT_IN_HEADER_BYTES 40  /* struct fuse_in_header */
#define PT_OUT_HEADER_BYTES 16 /* struct fuse_out_header: len, error, unique */
/* struct fuse_init_in: major, minor, max_readahead, flags, flags2 (7.36+) */
#define PT_INIT_IN_FLAGS 12
#define PT_INIT_IN_FLAGS2 16
/* struct fuse_init_out: ... flags at 12, flags2 at 32, max_stack_depth at 36 (7.40) */
#define PT_INIT_OUT_FLAGS 12
#define PT_INIT_OUT_FLAGS2 32
#define PT_INIT_OUT_STACK_DEPTH 36
#define PT_INIT_OUT_MIN_BYTES 40
/* struct fuse_open_out: u64 fh, u32 open_flags, s32 backing_id (7.40; padding before) */
#define PT_OPEN_OUT_BYTES 16
struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct pt_backing_map)
#define PT_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

static int pt_kernel_offers;        /* INIT request carried FUSE_PASSTHROUGH */
static __thread int tls_patch_init; /* op_init ran on this thread: its reply follows */
static __thread struct {
	int pending;
	uint64_t fh;
	int32_t backing_id;
} tls_patch_open;

static uint32_t rd32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static void wr32(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* Writes ROOT/status.json: which read path the mount uses and how often.
 * Under mu. Best effort: a failed write is ignored. */
static void status_write_locked(void)
{
	char p[4200], t[4300], body[1024];
	int n = snprintf(body, sizeof body,
			 "{\"pid\":%ld,\"passthrough\":\"%s\",\"reason\":\"%s\",\"opens_passthrough_total\":%llu,"
			 "\"opens_fuse_total\":%llu,\"reads_fuse_total\":%llu}\n",
			 (long)getpid(), pt_names[g.pt], g.pt_why, (unsigned long long)g.opens_pt_total,
			 (unsigned long long)g.opens_fuse_total,
			 (unsigned long long)__atomic_load_n(&g.reads_fuse_total, __ATOMIC_RELAXED));
	if (n <= 0 || n >= (int)sizeof body) return;
	snprintf(p, sizeof p, "%s/status.json", g.root);
	snprintf(t, sizeof t, "%s.tmp", p);
	int fd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) return;
	ssize_t w;
	do w = write(fd, body, (size_t)n);
	while (w < 0 && errno == EINTR);
	close(fd);
	if (w == n) rename(t, p);
}

/* Passthrough is not to be had: say why, once, and serve every read through us. */
static void pt_unavailable(const char *why)
{
	if (g.pt == PT_UNAVAILABLE || g.pt == PT_OFF) return;
	g.pt = PT_UNAVAILABLE;
	str_copy(g.pt_why, why, sizeof g.pt_why);
	log_info("reads go through FUSE (spliced from the cache file): passthrough unavailable: %s", why);
}

/* Custom read: as read(2), and notes whether the kernel's INIT offers passthrough. */
static ssize_t pt_io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	if (n >= PT_IN_HEADER_BYTES + PT_INIT_IN_FLAGS2 + 4 && rd32((char *)buf + 4) == PT_FUSE_INIT) {
		const char *in = (const char *)buf + PT_IN_HEADER_BYTES;
		pt_kernel_offers = (rd32(in + PT_INIT_IN_FLAGS) & PT_FUSE_INIT_EXT) &&
				   (rd32(in + PT_INIT_IN_FLAGS2) & PT_FUSE_PASSTHROUGH_FLAGS2);
	} else if (n >= PT_IN_HEADER_BYTES + PT_INIT_IN_FLAGS + 4 && rd32((char *)buf + 4) == PT_FUSE_INIT) {
		pt_kernel_offers = 0; /* an INIT without flags2: protocol before 7.36 */
	}
	return n;
}

/* Custom writev: as writev(2), with the INIT or OPEN reply this thread is
 * about to send patched for passthrough (see above). */
static ssize_t pt_io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	int patch_init = tls_patch_init, patch_open = tls_patch_open.pending;
	tls_patch_init = 0;
	tls_patch_open.pending = 0;
	if (!(patch_init || patch_open) || count != 2 || iov[0].iov_len != PT_OUT_HEADER_BYTES ||
	    rd32((char *)iov[0].iov_base + 4) != 0 /* error */)
		return writev(fd, iov, count);
	unsigned char out[64];
	struct iovec v[2] = {iov[0], {out, iov[1].iov_len}};
	if (patch_init && iov[1].iov_len >= PT_INIT_OUT_MIN_BYTES && iov[1].iov_len <= sizeof out &&
	    rd32(iov[1].iov_base) == 7 /* major */) {
		memcpy(out, iov[1].iov_base, iov[1].iov_len);
		uint32_t flags = rd32(out + PT_INIT_OUT_FLAGS);
		if (flags & PT_FUSE_WRITEBACK_CACHE) {
			pt_unavailable("the writeback cache is on, and the kernel does not pass through with it");
			return writev(fd, iov, count);
		}
		wr32(out + PT_INIT_OUT_FLAGS, flags | PT_FUSE_INIT_EXT);
		wr32(out + PT_INIT_OUT_FLAGS2, rd32(out + PT_INIT_OUT_FLAGS2) | PT_FUSE_PASSTHROUGH_FLAGS2);
		wr32(out + PT_INIT_OUT_STACK_DEPTH, g.pt_depth);
		return writev(fd, v, 2);
	}
	if (patch_open && iov[1].iov_len == PT_OPEN_OUT_BYTES) {
		memcpy(out, iov[1].iov_base, PT_OPEN_OUT_BYTES);
		uint64_t fh;
		memcpy(&fh, out, 8);
		if (fh == tls_patch_open.fh) {
			wr32(out + 8, (rd32(out + 8) & PT_FOPEN_PASSTHROUGH_MASK) | PT_FOPEN_PASSTHROUGH);
			wr32(out + 12, (uint32_t)tls_patch_open.backing_id);
			return writev(fd, v, 2);
		}
	}
	log_ratelimited(LOG_ERROR, "a %s reply had an unexpected shape; sent unchanged", patch_init ? "INIT" : "OPEN");
	return writev(fd, iov, count);
}

static const struct fuse_custom_io pt_io = {.writev = pt_io_writev, .read = pt_io_read};

/* Registers nd's cache file with the kernel. Under mu, nd complete with fd open.
 * Returns the backing id (> 0), or 0 after marking passthrough unavailable. */
static int pt_backing_open_locked(node *nd)
{
	struct pt_backing_map map = {.fd = nd->fd};
	int id;
	do id = ioctl(g.dev_fd, PT_DEV_IOC_BACKING_OPEN, &map);
	while (id < 0 && errno == EINTR);
	if (id > 0) {
		if (g.pt != PT_ON) {
			g.pt = PT_ON;
			g.pt_why[0] = 0;
			log_info("reads of files complete in the cache go through kernel FUSE passthrough "
				 "(the kernel reads the cache file); files still arriving go through FUSE");
		}
		return id;
	}
	char why[256];
	snprintf(why, sizeof why, "FUSE_DEV_IOC_BACKING_OPEN: %s%s", id < 0 ? strerror(errno) : "id 0",
		 id < 0 && errno == EPERM ? " (the kernel did not enable passthrough, or no CAP_SYS_ADMIN)" : "");
	pt_unavailable(why);
	return 0;
}

static void pt_backing_close_locked(node *nd)
{
	if (nd->backing_id <= 0) return;
	uint32_t id = (uint32_t)nd->backing_id;
	if (ioctl(g.dev_fd, PT_DEV_IOC_BACKING_CLOSE, &id) < 0)
		log_ratelimited(LOG_WARN, "FUSE_DEV_IOC_BACKING_CLOSE of %s: %s", nd->f.path, strerror(errno));
	nd->backing_id = 0;
}

/* Decides how an open of nd is served. Under mu, after ensure_locked() gave 0.
 * Returns the backing id to answer with (> 0), 0 for "read through us", or
 * -EBUSY when an older version of the path, changed in the source since, is
 * still open through passthrough: the kernel inode (one per path) is bound to
 * that file and would refuse both modes for the new one. */
static int pt_choose_locked(node *nd)
{
	for (const node *o = nd->older; o; o = o->older) {
		if (o->pt_opens > 0) return -EBUSY;
		if (o->fuse_opens > 0) return 0;
	}
	if (g.pt != PT_PENDING && g.pt != PT_ON) return 0;
	if (nd->pt_opens > 0) return nd->backing_id; /* the inode is in passthrough mode */
	if (nd->fuse_opens > 0) return 0;            /* the inode is in cached mode */
	if (nd->state != NODE_COMPLETE || nd->fd < 0) return 0;
	nd->backing_id = pt_backing_open_locked(nd);
	return nd->backing_id;
}

/* fh is the node pointer; its low bit says "opened passthrough". */
#define FH_PASSTHROUGH 1u
static node *fh_node(const struct fuse_file_info *fi)
{
	return fi ? (node *)(uintptr_t)(fi->fh & ~(uint64_t)FH_PASSTHROUGH) : NULL;
}

/* ---------------------------------------------------------------- FUSE ops */

static const char *rel_of(const char *path) { return path[0] == '/' ? path + 1 : path; }

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	maybe_refresh();
	memset(st, 0, sizeof *st);
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_atime = st->st_mtime = st->st_ctime = g.mount_time;
	const char *rel = rel_of(path);
	pthread_mutex_lock(&g.mu);
	node *nd = fi && fi->fh ? fh_node(fi) : find_file(rel);
	int rc = 0;
	if (nd) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)nd->f.size;
		st->st_blksize = 1 << 20;
		st->st_blocks = (blkcnt_t)((nd->f.size + 511) / 512);
	} else if (is_dir(rel)) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&g.mu);
	return rc;
}

static int op_readdir(const char *path, void *dbuf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	maybe_refresh();
	const char *rel = rel_of(path);
	char pfx[WEIGHTS_MAX_PATH + 2];
	if (*rel) snprintf(pfx, sizeof pfx, "%s/", rel);
	else pfx[0] = 0;
	size_t pl = strlen(pfx);
	pthread_mutex_lock(&g.mu);
	if (!is_dir(rel)) {
		pthread_mutex_unlock(&g.mu);
		return -ENOENT;
	}
	fill(dbuf, ".", NULL, 0, 0);
	fill(dbuf, "..", NULL, 0, 0);
	char last[WEIGHTS_MAX_PATH + 1] = "";
	for (size_t i = lower_bound(pfx); i < g.n && !strncmp(g.nodes[i]->f.path, pfx, pl); i++) {
		const char *rest = g.nodes[i]->f.path + pl;
		const char *sl = strchr(rest, '/');
		size_t nl = sl ? (size_t)(sl - rest) : strlen(rest);
		char name[WEIGHTS_MAX_PATH + 1];
		memcpy(name, rest, nl);
		name[nl] = 0;
		if (!strcmp(name, last)) continue; /* the same implicit directory again */
		str_copy(last, name, sizeof last);
		if (fill(dbuf, name, NULL, 0, 0)) break;
	}
	pthread_mutex_unlock(&g.mu);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
	maybe_refresh();
	pthread_mutex_lock(&g.mu);
	node *nd = find_file(rel_of(path));
	int rc = nd ? ensure_locked(nd) : (is_dir(rel_of(path)) ? -EISDIR : -ENOENT);
	int backing_id = rc ? 0 : pt_choose_locked(nd);
	if (backing_id < 0) {
		log_ratelimited(LOG_WARN, "%s changed in the source while the old version is open (passthrough); "
					  "it opens again once that is closed",
				nd->f.path);
		rc = backing_id;
	}
	if (!rc) {
		nd->opens++;
		fi->fh = (uint64_t)(uintptr_t)nd;
		/* The object is immutable while listed: keep its pages, except at the
		 * first open of a new version of a path, whose kernel inode may hold
		 * pages of the old one. */
		fi->keep_cache = !nd->older || nd->opened;
		nd->opened = 1;
		fi->direct_io = 0;
		if (backing_id > 0) {
			nd->pt_opens++;
			g.opens_pt_total++;
			fi->fh |= FH_PASSTHROUGH;
			/* libfuse writes the reply from this thread next: pt_io_writev patches it */
			tls_patch_open.pending = 1;
			tls_patch_open.fh = fi->fh;
			tls_patch_open.backing_id = backing_id;
		} else {
			nd->fuse_opens++;
			g.opens_fuse_total++;
		}
		status_write_locked();
	}
	pthread_mutex_unlock(&g.mu);
	return rc;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	node *nd = fh_node(fi);
	pthread_mutex_lock(&g.mu);
	if (nd && nd->opens > 0) nd->opens--;
	if (nd && nd->opens == 0) {
		/* Nobody holds bytes of the old version any more: the next open
		 * may start over with whatever the source serves then. */
		nd->changed = 0;
		nd->source_pin[0] = 0;
	}
	if (nd && (fi->fh & FH_PASSTHROUGH)) {
		if (nd->pt_opens > 0 && --nd->pt_opens == 0) pt_backing_close_locked(nd);
	} else if (nd && nd->fuse_opens > 0) {
		nd->fuse_opens--;
	}
	status_write_locked();
	pthread_mutex_unlock(&g.mu);
	return 0;
}

/* Reads straight from the source: for files that do not fit the cache. */
static int read_from_source(node *nd, char *out, size_t len, uint64_t off)
{
	char *url = NULL;
	struct curl_slist *h = NULL;
	char pin[160];
	pthread_mutex_lock(&g.mu);
	str_copy(pin, nd->source_pin, sizeof pin);
	pthread_mutex_unlock(&g.mu);
	if (wsrc_get_request(g.src, &nd->f, off, len, pin, &url, &h)) return -ENOMEM;
	xfer_req q = {.url = url, .headers = h, .body_max = len + 1, .upload_fd = -1, .o = &g.o};
	xfer_resp r;
	int rc = xfer_do_retry(&q, &r);
	char why[400] = "";
	/* Checked against the version pinned when the answer arrives, not when
	 * the request left: reads the kernel sends in parallel (readahead) may
	 * all leave unpinned, and the first good answer pins the version for
	 * the others, whichever comes back first. */
	int bad = 0, whole;
	pthread_mutex_lock(&g.mu);
	str_copy(pin, nd->source_pin, sizeof pin);
	if (rc == 0) bad = wsrc_check_range_answer(g.src, &nd->f, pin, off, len, &r, why, sizeof why);
	whole = rc == 0 && !bad && (r.status == 206 || (r.status == 200 && off == 0 && len == nd->f.size)) &&
		buf_rlen(&r.body) == len;
	if (whole && !pin[0] && r.etag[0] && strncmp(r.etag, "W/", 2))
		str_copy(nd->source_pin, r.etag, sizeof nd->source_pin);
	pthread_mutex_unlock(&g.mu);
	if (bad) {
		/* Reads of one open file all come from one version of the object. */
		log_ratelimited(LOG_ERROR, "reading %s at %llu from the source: %s", nd->f.path, (unsigned long long)off, why);
		rc = -EIO;
	} else if (whole) {
		memcpy(out, buf_rptr(&r.body), len);
		rc = (int)len;
	} else {
		log_ratelimited(LOG_ERROR, "reading %s at %llu from the source failed: %s (HTTP %ld)", nd->f.path,
				(unsigned long long)off, rc ? r.err : "bad answer", r.status);
		rc = -EIO;
	}
	xfer_resp_free(&r);
	curl_slist_free_all(h);
	free(url);
	return rc;
}

/* Waits until [off, off+len) of nd is in the cache file. Returns the fd to read
 * it from (>= 0), READ_FROM_SOURCE when the node does not fit the cache, or -errno. */
#define READ_FROM_SOURCE (-100000)
static int wait_range(node *nd, uint64_t off, size_t len);

static int op_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off_s,
		       struct fuse_file_info *fi)
{
	node *nd = fh_node(fi);
	if (!nd || off_s < 0) return -EIO;
	__atomic_add_fetch(&g.reads_fuse_total, 1, __ATOMIC_RELAXED);
	uint64_t off = (uint64_t)off_s;
	size_t len = off >= nd->f.size ? 0 : (size_t)MIN((uint64_t)size, nd->f.size - off);
	struct fuse_bufvec *bv = malloc(sizeof *bv);
	if (!bv) return -ENOMEM;
	*bv = FUSE_BUFVEC_INIT(len);
	if (len == 0) {
		*bufp = bv;
		return 0;
	}
	int fd = wait_range(nd, off, len);
	if (fd >= 0) {
		/* libfuse splices or reads straight from the cache file. */
		bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv->buf[0].fd = fd;
		bv->buf[0].pos = (off_t)off;
		*bufp = bv;
		return 0;
	}
	if (fd != READ_FROM_SOURCE) {
		free(bv);
		return fd;
	}
	char *mem = malloc(len);
	int rc = mem ? read_from_source(nd, mem, len, off) : -ENOMEM;
	if (rc < 0) {
		free(mem);
		free(bv);
		return rc;
	}
	bv->buf[0].mem = mem;
	bv->buf[0].size = (size_t)rc;
	*bufp = bv; /* libfuse frees mem and bv after replying */
	return 0;
}

static int wait_range(node *nd, uint64_t off, size_t len)
{
	pthread_mutex_lock(&g.mu);
	if (nd->changed) {
		pthread_mutex_unlock(&g.mu);
		log_ratelimited(LOG_ERROR, "read of %s at %llu failed: %s changed at the source while open; "
					   "close it and open it again",
				nd->f.path, (unsigned long long)off, nd->f.path);
		return -EIO;
	}
	if (nd->state == NODE_NONE) {
		int e = ensure_locked(nd);
		if (e) {
			pthread_mutex_unlock(&g.mu);
			return e;
		}
	}
	nd->last_used_ms = time_mono_ms();
	if (nd->state == NODE_UNCACHED) {
		pthread_mutex_unlock(&g.mu);
		return READ_FROM_SOURCE;
	}
	/* Wait until the chunks [first, last] have arrived, bounded by the stall
	 * budget of the download (no chunk for that long: give up with EIO). */
	uint64_t budget_ms = (uint64_t)g.o.stall_timeout_s * 1000u * (uint64_t)(g.o.retries + 2) + 10000u;
	int rc = 0;
	while (nd->state == NODE_FETCHING) {
		size_t first = (size_t)(off / nd->chunk_bytes), last = (size_t)((off + len - 1) / nd->chunk_bytes);
		size_t missing = SIZE_MAX;
		for (size_t k = first; k <= last; k++)
			if (nd->chunks[k] != FETCH_DONE) {
				missing = k;
				break;
			}
		if (missing == SIZE_MAX) {
			nd->next_read_chunk = last + 1 < nd->n_chunks ? last + 1 : 0;
			break;
		}
		nd->want = (long)missing;
		nd->next_read_chunk = missing;
		if (time_mono_ms() - nd->progress_ms > budget_ms) {
			rc = -EIO;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&nd->cv, &g.mu, &ts);
	}
	if (!rc && nd->state != NODE_FETCHING && nd->state != NODE_COMPLETE) rc = -EIO;
	int fd = nd->fd;
	pthread_mutex_unlock(&g.mu);
	if (rc) {
		log_ratelimited(LOG_ERROR, "read of %s at %llu failed: %s", nd->f.path, (unsigned long long)off,
				nd->err[0] ? nd->err : "the download stalled");
		return rc;
	}
	return fd;
}

static int op_read(const char *path, char *out, size_t size, off_t off_s, struct fuse_file_info *fi)
{
	node *nd = fh_node(fi);
	if (!nd || off_s < 0) return -EIO;
	__atomic_add_fetch(&g.reads_fuse_total, 1, __ATOMIC_RELAXED);
	uint64_t off = (uint64_t)off_s;
	if (off >= nd->f.size || size == 0) return 0;
	size_t len = (size_t)MIN((uint64_t)size, nd->f.size - off);
	int fd = wait_range(nd, off, len);
	if (fd == READ_FROM_SOURCE) return read_from_source(nd, out, len, off);
	if (fd < 0) return fd;
	size_t got = 0;
	while (got < len) {
		ssize_t k = pread(fd, out + got, len - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) return got ? (int)got : -EIO;
		got += (size_t)k;
	}
	return (int)got;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	memset(sv, 0, sizeof *sv);
	sv->f_bsize = sv->f_frsize = 4096;
	pthread_mutex_lock(&g.mu);
	uint64_t total = 0;
	for (size_t i = 0; i < g.n; i++) total += g.nodes[i]->f.size;
	sv->f_blocks = total / 4096 + 1;
	sv->f_files = g.n;
	pthread_mutex_unlock(&g.mu);
	sv->f_namemax = 255;
	return 0;
}

static int op_erofs_create(const char *p, mode_t m, struct fuse_file_info *fi) { return -EROFS; }
static int op_erofs_write(const char *p, const char *b, size_t n, off_t o, struct fuse_file_info *fi) { return -EROFS; }
static int op_erofs_path(const char *p) { return -EROFS; }
static int op_erofs_mkdir(const char *p, mode_t m) { return -EROFS; }
static int op_erofs_rename(const char *a, const char *b, unsigned int f) { return -EROFS; }
static int op_erofs_truncate(const char *p, off_t o, struct fuse_file_info *fi) { return -EROFS; }

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->kernel_cache = 0; /* op_open sets keep_cache itself */
	cfg->direct_io = 0;
	cfg->entry_timeout = cfg->attr_timeout = g.ttl_s > 0 ? g.ttl_s : 3600;
	cfg->negative_timeout = 1;
	conn->max_read = MOUNT_READ_MAX_BYTES;          /* must equal the max_read mount option */
	conn->max_readahead = MOUNT_READAHEAD_KB << 10; /* the kernel takes the lower of this and its own */
	conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* read-only; and it rules out passthrough */
	if (g.pt == PT_PENDING) {
		if (pt_kernel_offers) tls_patch_init = 1; /* the INIT reply follows on this thread */
		else pt_unavailable("the kernel does not offer it (Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH)");
	}
	return NULL;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.read_buf = op_read_buf,
	.release = op_release,
	.statfs = op_statfs,
	.create = op_erofs_create,
	.write = op_erofs_write,
	.unlink = op_erofs_path,
	.rmdir = op_erofs_path,
	.mkdir = op_erofs_mkdir,
	.rename = op_erofs_rename,
	.truncate = op_erofs_truncate,
};

/* ---------------------------------------------------------------- run */

/* Raises the kernel readahead of the mount at `mountpoint` (already a canonical
 * path) by writing the bdi's read_ahead_kb, found through /proc/self/mountinfo
 * (a stat of the mount point would ask this very filesystem, which is not
 * serving yet). Needs root; without it the kernel's 128 KiB stays. 0 or -1. */
static int set_readahead(const char *mountpoint, unsigned kb)
{
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi) return -1;
	char line[8192], dev[64] = "";
	while (fgets(line, sizeof line, mi)) {
		if (!strchr(line, '\n')) { /* a longer line (overlay options): skip the rest of it */
			int c;
			while ((c = getc(mi)) != EOF && c != '\n') {}
		}
		/* id parent major:minor root mountpoint options ...; the last match is the top mount */
		char *save = NULL, *f[5];
		int n = 0;
		for (char *t = strtok_r(line, " ", &save); t && n < 5; t = strtok_r(NULL, " ", &save)) f[n++] = t;
		if (n < 5) continue;
		char mp[4096];
		size_t k = 0;
		for (const char *c = f[4]; *c && k + 1 < sizeof mp; c++) { /* undo octal escapes (a space is \040) */
			if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] >= '0' && c[2] <= '7' && c[3] >= '0' && c[3] <= '7') {
				mp[k++] = (char)((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0'));
				c += 3;
			} else {
				mp[k++] = *c;
			}
		}
		mp[k] = 0;
		if (!strcmp(mp, mountpoint)) str_copy(dev, f[2], sizeof dev);
	}
	fclose(mi);
	if (!dev[0]) return -1;
	char path[128], val[32];
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	int n = snprintf(val, sizeof val, "%u\n", kb);
	ssize_t w;
	do w = write(fd, val, (size_t)n);
	while (w < 0 && errno == EINTR);
	close(fd);
	return w == n ? 0 : -1;
}

int weights_mount_run(const mount_opts *mo, char *err, size_t errlen)
{
	memset(&g, 0, sizeof g);
	pthread_mutex_init(&g.mu, NULL);
	pthread_mutex_init(&g.refresh_mu, NULL);
	if (mo->o) g.o = *mo->o;
	else weights_opts_default(&g.o);
	g.o.quiet = 1;
	g.ttl_s = mo->metadata_ttl_s > 0 ? mo->metadata_ttl_s : 3600;
	g.capacity = mo->capacity_bytes ? mo->capacity_bytes : (100ull << 30);
	g.chunk_bytes = mo->chunk_bytes ? mo->chunk_bytes : (8u << 20);
	g.mount_time = time(NULL);
	g.dev_fd = -1;
	if (mo->passthrough_off) {
		g.pt = PT_OFF;
		str_copy(g.pt_why, "--passthrough off", sizeof g.pt_why);
	} else if (geteuid() != 0) {
		g.pt = PT_UNAVAILABLE;
		str_copy(g.pt_why, "not root (FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN)", sizeof g.pt_why);
	} else {
		g.pt = PT_PENDING;
	}
	struct stat st;
	if (stat(mo->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		util_errf(err, errlen, "mount point %s is not a folder", mo->mountpoint);
		return -1;
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		util_errf(err, errlen, "FUSE is not available here (/dev/fuse: %s)", strerror(errno));
		return -1;
	}
	snprintf(g.root, sizeof g.root, "%s/mount-%016llx", mo->cache_dir,
		 (unsigned long long)hash64(mo->source, strlen(mo->source), 9));
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/partial/x", g.root);
	if (pull_mkdirs_for(probe) < 0) {
		util_errf(err, errlen, "cannot create %s: %s", g.root, strerror(errno));
		return -1;
	}
	/* Its index.json lets cached objects count as verified: it must be ours. */
	if (pull_dir_trusted(g.root, err, errlen)) return -1;
	/* Detached, we run in "/": a relative cache folder must be made absolute now. */
	char abs_root[PATH_MAX];
	if (!realpath(g.root, abs_root) || strlen(abs_root) >= sizeof g.root) {
		util_errf(err, errlen, "cannot resolve %s: %s", g.root, strerror(errno));
		return -1;
	}
	str_copy(g.root, abs_root, sizeof g.root);
	snprintf(probe, sizeof probe, "%s/partial", g.root);
	pull_rmtree(probe); /* partial objects of an earlier run are not reused */
	snprintf(probe, sizeof probe, "%s/partial/x", g.root);
	pull_mkdirs_for(probe);
	/* A backing file on a stacking filesystem (overlayfs, ecryptfs) has stack
	 * depth 1, so ours must be 2; otherwise 1 keeps our mount stackable. */
	struct statfs sfs;
	g.pt_depth = statfs(g.root, &sfs) == 0 && (sfs.f_type == 0x794c7630 /* overlayfs */ ||
						   sfs.f_type == 0xf15f /* ecryptfs */)
			     ? 2
			     : 1;
	g.src = wsrc_new(mo->source, &g.o, err, errlen);
	if (!g.src) return -1;
	wlist l;
	if (list_into(&l, err, errlen)) {
		wsrc_free(g.src);
		return -1;
	}
	if (apply_listing(&l)) {
		wlist_free(&l);
		wsrc_free(g.src);
		util_errf(err, errlen, "out of memory");
		return -1;
	}
	wlist_free(&l);
	index_load();

	char canon[4096] = "";
	if (!realpath(mo->mountpoint, canon)) canon[0] = 0;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char opts[1024];
	snprintf(opts, sizeof opts, "ro,fsname=infergate-weights,subtype=infergate,max_read=%u%s",
		 MOUNT_READ_MAX_BYTES, getuid() == 0 ? ",allow_other" : "");
	fuse_opt_add_arg(&args, "infergate-weights");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, opts);
	struct fuse *f = fuse_new(&args, &ops, sizeof ops, NULL);
	int rc = -1;
	if (!f) {
		util_errf(err, errlen, "fuse_new failed");
		goto out;
	}
	/* libfuse keeps the path to unmount with later, when a detached daemon
	 * runs in "/": give it the absolute one. */
	if (fuse_mount(f, canon[0] ? canon : mo->mountpoint)) {
		util_errf(err, errlen, "cannot mount on %s (is FUSE available, the folder empty and not mounted?)", mo->mountpoint);
		fuse_destroy(f);
		goto out;
	}
	if (fuse_daemonize(mo->foreground)) {
		util_errf(err, errlen, "cannot detach");
		fuse_unmount(f);
		fuse_destroy(f);
		goto out;
	}
	struct fuse_session *se = fuse_get_session(f);
	if (g.pt == PT_PENDING) {
		g.dev_fd = fuse_session_fd(se);
		if (fuse_session_custom_io(se, &pt_io, g.dev_fd) != 0) pt_unavailable("libfuse refused custom I/O");
	} else {
		log_info("reads go through FUSE (spliced from the cache file): passthrough %s: %s", pt_names[g.pt], g.pt_why);
	}
	pthread_mutex_lock(&g.mu);
	status_write_locked();
	pthread_mutex_unlock(&g.mu);
	fuse_set_signal_handlers(se);
	if (!canon[0] || set_readahead(canon, MOUNT_READAHEAD_KB) < 0)
		log_info("could not raise the readahead of %s to %u KiB (not root?); sequential reads will be slower",
			 mo->mountpoint, MOUNT_READAHEAD_KB);
	log_info("mounted %s on %s (%zu files, cache %s)", mo->source, mo->mountpoint, g.n, g.root);
	fuse_loop_mt(f, 1); /* clone_fd: each thread reads requests from its own /dev/fuse descriptor */
	fuse_remove_signal_handlers(se);
	fuse_unmount(f);
	fuse_destroy(f);
	log_info("unmounted %s", mo->mountpoint);
	rc = 0;
out:
	fuse_opt_free_args(&args);
	g.cancel = 1;
	/* Every download thread ends before any node is freed: a thread finishing
	 * its file (fsync, rename) rewrites the index from all nodes. */
	for (size_t i = 0; i < g.n_all; i++)
		if (g.all[i]->thr) pthread_join(g.all[i]->thr, NULL);
	for (size_t i = 0; i < g.n_all; i++) {
		node *nd = g.all[i];
		if (nd->fd >= 0) close(nd->fd);
		if (nd->state == NODE_FETCHING) unlink(nd->part);
		free(nd->chunks);
		free(nd->f.path);
		pthread_cond_destroy(&nd->cv);
		free(nd);
	}
	free(g.all);
	free(g.nodes);
	wsrc_free(g.src);
	return rc;
}
