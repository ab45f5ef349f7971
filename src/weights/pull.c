/*
 * pull.c — files from a source into a folder (or through a staging folder into
 * a bucket): resumable partial files, verification, atomic appearance, progress.
 * The transfers are fetch.c's; the protocols are source.c's.
 */
#include "weights/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "weights/fetch.h"

#define BATCH_FILES 64 /* files open at once */
#define SIDECAR_MAX (FETCH_MAX_CHUNKS + 8192)
#define MANIFEST_MAX (64u << 20)
#define HASH_READ_BYTES (4u << 20) /* read-back buffer of the streaming digests */

/* ---------------------------------------------------------------- helpers */

int pull_mkdirs_for(const char *path)
{
	char tmp[4096];
	if (str_copy(tmp, path, sizeof tmp) >= sizeof tmp) return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/') continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
		*p = '/';
	}
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int pull_rmtree(const char *path)
{
	return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT ? -1 : 0;
}

int pull_hash_fd(int fd, uint64_t size, char *sha_hex, char *md5_hex)
{
	EVP_MD_CTX *sc = sha_hex ? EVP_MD_CTX_new() : NULL, *mc = md5_hex ? EVP_MD_CTX_new() : NULL;
	int rc = -1;
	size_t bl = 4u << 20;
	unsigned char *b = malloc(bl);
	if (!b || (sha_hex && !sc) || (md5_hex && !mc)) goto out;
	if (sc) EVP_DigestInit_ex(sc, EVP_sha256(), NULL);
	if (mc) EVP_DigestInit_ex(mc, EVP_md5(), NULL);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (uint64_t off = 0; off < size;) {
		ssize_t k = pread(fd, b, (size_t)MIN((uint64_t)bl, size - off), (off_t)off);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) goto out;
		if (sc) EVP_DigestUpdate(sc, b, (size_t)k);
		if (mc) EVP_DigestUpdate(mc, b, (size_t)k);
		off += (uint64_t)k;
	}
	unsigned char md[64];
	unsigned int ml;
	if (sc) {
		EVP_DigestFinal_ex(sc, md, &ml);
		for (unsigned i = 0; i < ml; i++) sprintf(sha_hex + 2 * i, "%02x", md[i]);
	}
	if (mc) {
		EVP_DigestFinal_ex(mc, md, &ml);
		for (unsigned i = 0; i < ml; i++) sprintf(md5_hex + 2 * i, "%02x", md[i]);
	}
	rc = 0;
out:
	free(b);
	EVP_MD_CTX_free(sc);
	EVP_MD_CTX_free(mc);
	return rc;
}

int pull_lock_bounded(int fd, int op, int timeout_s, const char *what, int quiet)
{
	uint64_t deadline = time_mono_ms() + (uint64_t)(timeout_s > 0 ? timeout_s : 0) * 1000u;
	int said = 0;
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0) return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) return -1;
		if (time_mono_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (!said && !quiet) {
			fprintf(stderr, "waiting for another process using %s\n", what);
			said = 1;
		}
		usleep(100 * 1000);
	}
}

const char *pull_file_id(const wfile *f)
{
	return f->sha256[0] ? f->sha256 : f->md5[0] ? f->md5
						    : f->etag;
}

static int fsync_dir_of(const char *path)
{
	char d[4096];
	str_copy(d, path, sizeof d);
	char *s = strrchr(d, '/');
	if (s) *s = 0;
	int fd = open(s && d[0] ? d : s ? "/"
					: ".",
		      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int read_small(const char *path, size_t max, buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	buf_init(out, max);
	for (;;) {
		char *p = buf_space(out, 65536);
		if (!p) {
			close(fd);
			buf_free(out);
			return -1;
		}
		ssize_t k = read(fd, p, 65536);
		if (k < 0 && errno == EINTR) continue;
		if (k < 0) {
			close(fd);
			buf_free(out);
			return -1;
		}
		if (k == 0) break;
		buf_commit(out, (size_t)k);
	}
	close(fd);
	return 0;
}

/* Writes data to path atomically (temp, fsync, rename). */
static int write_atomic(const char *path, const char *data, size_t n)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) return -1;
	size_t w = 0;
	while (w < n) {
		ssize_t k = write(fd, data + w, n - w);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		w += (size_t)k;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		unlink(tmp);
		return -1;
	}
	return rename(tmp, path);
}

/* ---------------------------------------------------------------- manifest */

typedef struct manifest_ent {
	char *path;
	uint64_t size;
	int64_t mtime_ns;
	char id[160];
} manifest_ent;
typedef struct manifest {
	manifest_ent *e;
	size_t n, cap;
	char path[4096];
} manifest;

static manifest_ent *manifest_find(manifest *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->e[i].path, path)) return &m->e[i];
	return NULL;
}

static int manifest_set(manifest *m, const char *path, uint64_t size, int64_t mtime_ns, const char *id)
{
	manifest_ent *e = manifest_find(m, path);
	if (!e) {
		if (m->n == m->cap) {
			size_t nc = m->cap ? m->cap * 2 : 64;
			manifest_ent *ne = realloc(m->e, nc * sizeof *ne);
			if (!ne) return -1;
			m->e = ne;
			m->cap = nc;
		}
		e = &m->e[m->n];
		e->path = str_dup(path);
		if (!e->path) return -1;
		m->n++;
	}
	e->size = size;
	e->mtime_ns = mtime_ns;
	str_copy(e->id, id, sizeof e->id);
	return 0;
}

/* 1 when a file or folder could only have been written by us: owned by our
 * user, not writable by group or others. */
static int only_ours(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

/* Loads STATE/manifest.json, unless it (or STATE) could have been written by
 * someone else: its entries let files skip verification. */
static void manifest_load(manifest *m, const char *state_dir)
{
	memset(m, 0, sizeof *m);
	snprintf(m->path, sizeof m->path, "%s/manifest.json", state_dir);
	struct stat sd, sm;
	int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) return;
	int ok = fstat(fd, &sm) == 0 && S_ISREG(sm.st_mode) && only_ours(&sm) && stat(state_dir, &sd) == 0 &&
		 only_ours(&sd);
	close(fd);
	if (!ok) {
		log_warn("%s is not private to this user: ignored, files are verified again", m->path);
		return;
	}
	buf b;
	if (read_small(m->path, MANIFEST_MAX, &b)) return;
	json_doc *d = json_parse(buf_rptr(&b), buf_rlen(&b), 0, NULL);
	buf_free(&b);
	if (!d) return;
	const json_val *files = json_get(json_root(d), "files");
	for (size_t i = 0; i < json_count(files) && i < WEIGHTS_MAX_FILES; i++) {
		const json_val *f = json_at(files, i);
		const char *p = json_str(json_get(f, "path"), NULL);
		if (!p) continue;
		const json_val *mt = json_get(f, "mtime_ns");
		manifest_set(m, p, (uint64_t)json_num(json_get(f, "size"), 0), mt && mt->is_int ? mt->i : 0,
			     json_str(json_get(f, "id"), ""));
	}
	json_doc_free(d);
}

static int manifest_save(const manifest *m)
{
	buf b;
	buf_init(&b, MANIFEST_MAX);
	json_w w;
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "files");
	jw_arr_begin(&w);
	for (size_t i = 0; i < m->n; i++) {
		jw_obj_begin(&w);
		jw_key(&w, "path");
		jw_str(&w, m->e[i].path);
		jw_key(&w, "size");
		jw_uint(&w, m->e[i].size);
		jw_key(&w, "mtime_ns");
		jw_int(&w, m->e[i].mtime_ns);
		jw_key(&w, "id");
		jw_str(&w, m->e[i].id);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	buf_puts(&b, "\n");
	int rc = w.error ? -1 : write_atomic(m->path, buf_rptr(&b), buf_rlen(&b));
	buf_free(&b);
	return rc;
}

static void manifest_free(manifest *m)
{
	for (size_t i = 0; i < m->n; i++) free(m->e[i].path);
	free(m->e);
}

static int64_t mtime_ns_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
}

/* ---------------------------------------------------------------- one file */

typedef struct job {
	fetch_file ff;
	const wfile *f;
	char final[4096], part[4200], ranges[4200];
	int dirty; /* chunks done since the sidecar was written */
	uint64_t resumed_bytes;
	/* Digests of the file's leading complete chunks, advanced as chunks arrive
	 * so the check at the end has (almost) nothing left to read. NULL when the
	 * source gives no checksum. */
	EVP_MD_CTX *sha, *md5;
	size_t hashed_chunks; /* chunks [0, hashed_chunks) are in the digests */
	int hash_failed;      /* a read-back failed: hash the whole file at the end */
	unsigned char *hbuf;  /* borrowed: HASH_READ_BYTES, pull_files' */
} job;

typedef struct progress {
	int bar;                /* draw a bar on stderr */
	uint64_t total, before; /* bytes of this run, bytes already present */
	uint64_t start_ms, last_flush_ms;
	job *jobs;
	size_t n_jobs;
	uint64_t batch_base; /* bytes finished by earlier batches */
} progress;

static int sidecar_save(job *j)
{
	if (fdatasync(j->ff.fd) < 0) return -1;
	buf b;
	buf_init(&b, SIDECAR_MAX);
	buf_printf(&b, "infergate-partial 1\npath %s\nsize %llu\nchunk %llu\nid %s\ndone ", j->f->path,
		   (unsigned long long)j->f->size, (unsigned long long)j->ff.chunk_bytes,
		   pull_file_id(j->f)[0] ? pull_file_id(j->f) : "-");
	for (size_t k = 0; k < j->ff.n_chunks; k++) buf_puts(&b, j->ff.state[k] == FETCH_DONE ? "1" : "0");
	int rc = buf_puts(&b, "\n") ? -1 : write_atomic(j->ranges, buf_rptr(&b), buf_rlen(&b));
	buf_free(&b);
	j->dirty = 0;
	return rc;
}

/* Loads a sidecar matching this file's size and version; returns the chunk
 * size it used and fills done[], or 0 when there is none (or it is stale). */
static uint64_t sidecar_load(job *j, uint8_t **state, size_t *n_chunks)
{
	buf b;
	if (read_small(j->ranges, SIDECAR_MAX, &b)) return 0;
	char *s = buf_rptr(&b);
	uint64_t chunk = 0;
	char want[256];
	snprintf(want, sizeof want, "size %llu\n", (unsigned long long)j->f->size);
	char id[200];
	snprintf(id, sizeof id, "id %s\n", pull_file_id(j->f)[0] ? pull_file_id(j->f) : "-");
	char *c = strstr(s, "\nchunk "), *d = strstr(s, "\ndone ");
	if (strncmp(s, "infergate-partial 1\n", 20) || !strstr(s, want) || !strstr(s, id) || !c || !d) goto stale;
	chunk = strtoull(c + 7, NULL, 10);
	if (chunk < 4096) goto stale;
	fetch_file tmp = {.file = j->f};
	fetch_file_plan(&tmp, j->f->size, chunk);
	if (tmp.chunk_bytes != chunk) goto stale;
	d += 6;
	if (strlen(d) < tmp.n_chunks) goto stale;
	*state = calloc(tmp.n_chunks + 1, 1);
	if (!*state) goto stale;
	for (size_t k = 0; k < tmp.n_chunks; k++) (*state)[k] = d[k] == '1' ? FETCH_DONE : FETCH_MISSING;
	*n_chunks = tmp.n_chunks;
	buf_free(&b);
	return chunk;
stale:
	buf_free(&b);
	return 0;
}

/* Opens (or resumes) the partial file of j. 0 or -1 with err. */
static int job_open(job *j, const weights_opts *o, char *err, size_t n)
{
	uint8_t *state = NULL;
	size_t nc = 0;
	uint64_t chunk = sidecar_load(j, &state, &nc);
	int fd = open(j->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		free(state);
		util_errf(err, n, "%s: %s", j->part, strerror(errno));
		return -1;
	}
	struct stat st;
	if (chunk && (fstat(fd, &st) < 0 || (uint64_t)st.st_size != j->f->size)) {
		free(state);
		state = NULL;
		chunk = 0;
	}
	if (!chunk) {
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)j->f->size) < 0) {
			util_errf(err, n, "%s: %s", j->part, strerror(errno));
			close(fd);
			return -1;
		}
		fetch_file_plan(&j->ff, j->f->size, o->chunk_bytes);
		state = calloc(j->ff.n_chunks + 1, 1);
		if (!state) {
			close(fd);
			util_errf(err, n, "out of memory");
			return -1;
		}
		unlink(j->ranges);
	} else {
		fetch_file_plan(&j->ff, j->f->size, chunk);
		for (size_t k = 0; k < nc; k++)
			if (state[k] == FETCH_DONE) j->resumed_bytes += MIN(chunk, j->f->size - (uint64_t)k * chunk);
	}
	j->ff.file = j->f;
	j->ff.fd = fd;
	j->ff.state = state;
	j->hashed_chunks = 0;
	j->hash_failed = 0;
	if (j->f->sha256[0] && !(j->sha = EVP_MD_CTX_new())) j->hash_failed = 1;
	if (j->f->md5[0] && !(j->md5 = EVP_MD_CTX_new())) j->hash_failed = 1;
	if (j->sha) EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL);
	if (j->md5) EVP_DigestInit_ex(j->md5, EVP_md5(), NULL);
	return 0;
}

static void job_close(job *j)
{
	if (j->ff.fd >= 0) close(j->ff.fd);
	j->ff.fd = -1;
	free(j->ff.state);
	j->ff.state = NULL;
	EVP_MD_CTX_free(j->sha);
	EVP_MD_CTX_free(j->md5);
	j->sha = j->md5 = NULL;
}

/* Feeds the digests every complete chunk that follows the hashed prefix,
 * reading it back from the page cache (it was just written). A read error
 * only means the whole file is hashed again at the end. */
static void hash_advance(job *j, const fetch_file *f)
{
	if ((!j->sha && !j->md5) || j->hash_failed) return;
	while (j->hashed_chunks < f->n_chunks && f->state[j->hashed_chunks] == FETCH_DONE) {
		uint64_t off = (uint64_t)j->hashed_chunks * f->chunk_bytes;
		uint64_t end = MIN(off + f->chunk_bytes, f->file->size);
		while (off < end) {
			ssize_t k = pread(f->fd, j->hbuf, (size_t)MIN((uint64_t)HASH_READ_BYTES, end - off), (off_t)off);
			if (k < 0 && errno == EINTR) continue;
			if (k <= 0) {
				j->hash_failed = 1;
				return;
			}
			if (j->sha) EVP_DigestUpdate(j->sha, j->hbuf, (size_t)k);
			if (j->md5) EVP_DigestUpdate(j->md5, j->hbuf, (size_t)k);
			off += (uint64_t)k;
		}
		j->hashed_chunks++;
	}
}

static void hex_final(EVP_MD_CTX *c, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	EVP_DigestFinal_ex(c, md, &ml);
	for (unsigned i = 0; i < ml; i++) sprintf(hex + 2 * i, "%02x", md[i]);
}

/* A chunk is on disk (in the page cache): start its writeback now, so the
 * sidecar's fdatasync and the final fsync find little left to write and the
 * disk works while the network does. */
static void on_chunk(void *arg, fetch_file *f, size_t idx)
{
	job *j = arg;
	j->dirty = 1;
	uint64_t off = (uint64_t)idx * f->chunk_bytes;
	sync_file_range(f->fd, (off_t)off, (off_t)MIN(f->chunk_bytes, f->file->size - off), SYNC_FILE_RANGE_WRITE);
	hash_advance(j, f);
}

static void draw(progress *p, uint64_t now_bytes, int final)
{
	uint64_t now = time_mono_ms();
	for (size_t i = 0; i < p->n_jobs; i++)
		if (p->jobs[i].dirty && now - p->last_flush_ms >= 1000) sidecar_save(&p->jobs[i]);
	if (now - p->last_flush_ms >= 1000) p->last_flush_ms = now;
	if (!p->bar || !p->total) return;
	uint64_t done = MIN(p->batch_base + now_bytes, p->total);
	double secs = (now - p->start_ms) / 1000.0;
	double rate = secs > 0 ? (done - MIN(done, p->before)) / secs : 0;
	int pct = (int)(100.0 * done / p->total);
	char bar[31], a[32], b[32], r[32];
	int fill = pct * 30 / 100;
	for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
	bar[30] = 0;
	double eta = rate > 0 ? (p->total - done) / rate : 0;
	fprintf(stderr, "\r%3d%% [%s] %s / %s  %s/s  ETA %.0fs   %s", pct, bar, weights_fmt_bytes(done, a, sizeof a),
		weights_fmt_bytes(p->total, b, sizeof b), weights_fmt_bytes((uint64_t)rate, r, sizeof r), eta,
		final ? "\n" : "");
}

static void on_progress(void *arg, uint64_t bytes) { draw(arg, bytes, 0); }

/* Verifies, syncs and renames one complete partial file. 0 or -1 with err. */
static int job_finish(job *j, manifest *m, char *err, size_t n)
{
	struct stat st;
	if (fstat(j->ff.fd, &st) < 0 || (uint64_t)st.st_size != j->f->size) {
		util_errf(err, n, "%s: size is not %llu bytes", j->f->path, (unsigned long long)j->f->size);
		return -1;
	}
	char sha[65] = "", md5[33] = "";
	if (j->f->sha256[0] || j->f->md5[0]) {
		hash_advance(j, &j->ff); /* chunks done by an earlier run, when none arrived in this one */
		if (!j->hash_failed && j->hashed_chunks == j->ff.n_chunks) {
			if (j->sha) hex_final(j->sha, sha);
			if (j->md5) hex_final(j->md5, md5);
		} else if (pull_hash_fd(j->ff.fd, j->f->size, j->f->sha256[0] ? sha : NULL, j->f->md5[0] ? md5 : NULL)) {
			util_errf(err, n, "%s: cannot read back for verification: %s", j->part, strerror(errno));
			return -1;
		}
		const char *want = j->f->sha256[0] ? j->f->sha256 : j->f->md5, *got = j->f->sha256[0] ? sha : md5;
		if (strcmp(want, got)) {
			util_errf(err, n, "checksum mismatch for %s: expected %s %s, got %s; the download was discarded",
				  j->f->path, j->f->sha256[0] ? "sha256" : "md5", want, got);
			job_close(j);
			unlink(j->part);
			unlink(j->ranges);
			return -1;
		}
	}
	if (fsync(j->ff.fd) < 0) {
		util_errf(err, n, "fsync %s: %s", j->part, strerror(errno));
		return -1;
	}
	if (pull_mkdirs_for(j->final) < 0) {
		util_errf(err, n, "mkdir for %s: %s", j->final, strerror(errno));
		return -1;
	}
	if (rename(j->part, j->final) < 0) {
		util_errf(err, n, "rename to %s: %s", j->final, strerror(errno));
		return -1;
	}
	fsync_dir_of(j->final);
	unlink(j->ranges);
	if (stat(j->final, &st) == 0) manifest_set(m, j->f->path, j->f->size, mtime_ns_of(&st), pull_file_id(j->f));
	return 0;
}

/* 1 when dir/path is already there and known good: hashed against the
 * source's checksum when it gives one (or, unless `prove`, recorded in the
 * manifest as verified with the same size, mtime and version). */
static int already_done(const wfile *f, const char *final, manifest *m, int prove)
{
	struct stat st;
	if (lstat(final, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) return 0;
	manifest_ent *e = manifest_find(m, f->path);
	int listed = e && e->size == f->size && e->mtime_ns == mtime_ns_of(&st) && !strcmp(e->id, pull_file_id(f));
	if (listed && (!prove || (!f->sha256[0] && !f->md5[0]))) return 1;
	if (!f->sha256[0] && !f->md5[0]) return 0;
	/* A file from elsewhere with a checksum to compare: verify it once. */
	int fd = open(final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) return 0;
	char sha[65] = "", md5[33] = "";
	int ok = !pull_hash_fd(fd, f->size, f->sha256[0] ? sha : NULL, f->md5[0] ? md5 : NULL) &&
		 !strcmp(f->sha256[0] ? f->sha256 : f->md5, f->sha256[0] ? sha : md5);
	close(fd);
	if (ok) manifest_set(m, f->path, f->size, mtime_ns_of(&st), pull_file_id(f));
	return ok;
}

static int pull_files_into(wsrc *src, const wlist *list, const char *dir, const char *state_dir,
			   const weights_opts *o, int prove, pull_stats *st, char *err, size_t errlen);

int pull_files(wsrc *src, const wlist *list, const char *dir, const char *state_dir,
	       const weights_opts *o, pull_stats *st, char *err, size_t errlen)
{
	return pull_files_into(src, list, dir, state_dir, o, 0, st, err, errlen);
}

static int pull_files_into(wsrc *src, const wlist *list, const char *dir, const char *state_dir,
			   const weights_opts *o, int prove, pull_stats *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof *st);
	uint64_t t0 = time_mono_ms();
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/x", state_dir);
	if (pull_mkdirs_for(probe) < 0) {
		util_errf(err, errlen, "mkdir %s: %s", state_dir, strerror(errno));
		return -1;
	}
	/* One pull at a time per state folder: a second one would truncate the
	 * first's partial files under it. It waits, as the cache's openers do. */
	char lock_path[4300];
	snprintf(lock_path, sizeof lock_path, "%s/pull.lock", state_dir);
	int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0) {
		util_errf(err, errlen, "%s: %s", lock_path, strerror(errno));
		return -1;
	}
	if (pull_lock_bounded(lock_fd, LOCK_EX, o->lock_timeout_s, dir, o->quiet)) {
		if (errno == ETIMEDOUT)
			util_errf(err, errlen, "another pull into %s is running (its lock %s was held for %d s, --lock-timeout)",
				  dir, lock_path, o->lock_timeout_s);
		else
			util_errf(err, errlen, "locking %s: %s", lock_path, strerror(errno));
		close(lock_fd);
		return -1;
	}
	manifest m;
	manifest_load(&m, state_dir);
	job *jobs = calloc(BATCH_FILES, sizeof *jobs);
	const wfile **todo = calloc(list->n + 1, sizeof *todo);
	unsigned char *hbuf = malloc(HASH_READ_BYTES);
	if (!jobs || !todo || !hbuf) {
		free(jobs);
		free(todo);
		free(hbuf);
		manifest_free(&m);
		close(lock_fd);
		util_errf(err, errlen, "out of memory");
		return -1;
	}
	size_t n_todo = 0;
	progress pg = {.start_ms = t0, .last_flush_ms = t0, .jobs = jobs};
	pg.bar = o->progress > 0 || (o->progress < 0 && isatty(2));
	if (o->quiet) pg.bar = 0;
	for (size_t i = 0; i < list->n; i++) {
		const wfile *f = &list->files[i];
		st->files_total++;
		st->bytes_total += f->size;
		char final[4096];
		if (snprintf(final, sizeof final, "%s/%s", dir, f->path) >= (int)sizeof final) {
			util_errf(err, errlen, "path too long: %s", f->path);
			free(jobs);
			free(todo);
			free(hbuf);
			manifest_free(&m);
			close(lock_fd);
			return -1;
		}
		if (already_done(f, final, &m, prove)) {
			st->files_skipped++;
			continue;
		}
		todo[n_todo++] = f;
		pg.total += f->size;
	}
	int rc = 0;
	char first_err[1024] = "";
	size_t n_failed = 0;
	for (size_t b = 0; b < n_todo; b += BATCH_FILES) {
		size_t nb = MIN((size_t)BATCH_FILES, n_todo - b);
		memset(jobs, 0, nb * sizeof *jobs);
		size_t opened = 0;
		for (size_t i = 0; i < nb; i++) {
			job *j = &jobs[opened];
			j->f = todo[b + i];
			j->ff.fd = -1;
			j->hbuf = hbuf;
			char key[32];
			snprintf(key, sizeof key, "%016llx", (unsigned long long)hash64(j->f->path, strlen(j->f->path), 7));
			snprintf(j->final, sizeof j->final, "%s/%s", dir, j->f->path);
			snprintf(j->part, sizeof j->part, "%s/%s.part", state_dir, key);
			snprintf(j->ranges, sizeof j->ranges, "%s/%s.ranges", state_dir, key);
			char e[600];
			if (job_open(j, o, e, sizeof e)) {
				if (!first_err[0]) str_copy(first_err, e, sizeof first_err);
				n_failed++;
				continue;
			}
			j->ff.on_chunk = on_chunk;
			j->ff.arg = j;
			if (j->resumed_bytes) {
				char a[32], c[32];
				st->files_resumed++;
				pg.before += j->resumed_bytes;
				if (!o->quiet)
					fprintf(stderr, "resuming %s: %s of %s already downloaded\n", j->f->path,
						weights_fmt_bytes(j->resumed_bytes, a, sizeof a), weights_fmt_bytes(j->f->size, c, sizeof c));
			}
			opened++;
		}
		fetch_file *ffs = calloc(opened + 1, sizeof *ffs);
		if (!ffs) {
			util_errf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		for (size_t i = 0; i < opened; i++) ffs[i] = jobs[i].ff;
		pg.n_jobs = opened;
		fetch_opts fo = {.o = o, .progress = on_progress, .progress_arg = &pg};
		/* The engine works on copies; the jobs see state through the shared pointers. */
		for (size_t i = 0; i < opened; i++) ffs[i].arg = &jobs[i];
		fetch_run(src, ffs, opened, &fo);
		for (size_t i = 0; i < opened; i++) {
			job *j = &jobs[i];
			j->ff.done_bytes = ffs[i].done_bytes;
			pg.batch_base += ffs[i].done_bytes;
			st->bytes_fetched += ffs[i].done_bytes - MIN(ffs[i].done_bytes, j->resumed_bytes);
			char e[1024] = "";
			int complete = !ffs[i].failed;
			for (size_t k = 0; complete && k < j->ff.n_chunks; k++) complete = j->ff.state[k] == FETCH_DONE;
			if (ffs[i].failed) str_copy(e, ffs[i].err, sizeof e);
			else if (!complete) util_errf(e, sizeof e, "%s: interrupted", j->f->path);
			else if (job_finish(j, &m, e, sizeof e) == 0) st->files_fetched++;
			if (e[0] && ffs[i].changed) {
				/* The chunks on disk belong to a version the source no
				 * longer serves: resuming from them would mix versions. */
				util_errf(e, sizeof e, "%s; the partial download was discarded, pull again", ffs[i].err);
				job_close(j);
				unlink(j->part);
				unlink(j->ranges);
				if (!first_err[0]) str_copy(first_err, e, sizeof first_err);
				n_failed++;
			} else if (e[0]) {
				if (j->ff.state) sidecar_save(j); /* keep what arrived for a resume */
				if (!first_err[0]) str_copy(first_err, e, sizeof first_err);
				n_failed++;
			}
			job_close(j);
		}
		free(ffs);
		manifest_save(&m);
	}
	if (pg.bar && pg.total) draw(&pg, 0, 1);
	if (n_failed) {
		if (n_failed > 1) util_errf(err, errlen, "%s (and %zu more files failed)", first_err, n_failed - 1);
		else util_errf(err, errlen, "%s", first_err);
		rc = -1;
	}
	manifest_save(&m);
	manifest_free(&m);
	close(lock_fd); /* releases the lock */
	free(jobs);
	free(hbuf);
	free(todo);
	st->seconds = (time_mono_ms() - t0) / 1000.0;
	return rc;
}

/* ---------------------------------------------------------------- pull */

/* 0 when folder path (not a symlink) could only have been changed by us or
 * root: owned by one of them and not writable by others unless sticky. A
 * cache whose files another local user could plant is refused: its meta.json
 * and manifests let files count as verified. -1 with err otherwise. */
int pull_dir_trusted(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		util_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		util_errf(err, errlen, "%s is not a folder (a symbolic link?)", path);
		return -1;
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) || ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
		util_errf(err, errlen, "folder %s could be changed by another user (owner uid %u, mode %03o): "
				       "use a folder owned by this user or root that others cannot write",
			  path,
			  (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int pull_stage_private(const char *path, char *err, size_t errlen)
{
	/* The folder that holds it: another user must not be able to rename our
	 * folder away and put theirs in its place (a shared /tmp is sticky). */
	char parent[4096];
	str_copy(parent, path, sizeof parent);
	char *sl = strrchr(parent, '/');
	if (sl == parent) sl[1] = 0;
	else if (sl) *sl = 0;
	else str_copy(parent, ".", sizeof parent);
	struct stat st;
	if (stat(parent, &st) < 0) {
		util_errf(err, errlen, "staging folder %s: %s", parent, strerror(errno));
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX) && st.st_uid != geteuid()) {
		util_errf(err, errlen, "staging folder %s is writable by other users and not sticky: choose another "
				       "--staging-dir",
			  parent);
		return -1;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		util_errf(err, errlen, "cannot create the staging folder %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		util_errf(err, errlen, "staging folder %s: %s (a symbolic link or not a folder?): remove it or choose "
				       "another --staging-dir",
			  path, strerror(errno));
		return -1;
	}
	int rc = fstat(fd, &st);
	close(fd);
	if (rc < 0) {
		util_errf(err, errlen, "staging folder %s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		util_errf(err, errlen, "staging folder %s is not private (owner uid %u, mode %03o; expected uid %u, "
				       "mode 700): another user may have made it; remove it or choose another --staging-dir",
			  path,
			  (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
		return -1;
	}
	return 0;
}

static void summary(const char *src, const char *dest, const pull_stats *st, int ok)
{
	char a[32], b[32], r[32];
	double rate = st->seconds > 0 ? st->bytes_fetched / st->seconds : 0;
	fprintf(stderr, "%s %s -> %s: %zu files (%s), %zu downloaded (%s, %zu resumed), %zu already present, "
			"%.2f s, %s/s\n",
		ok ? "pulled" : "incomplete pull", src, dest, st->files_total,
		weights_fmt_bytes(st->bytes_total, a, sizeof a), st->files_fetched,
		weights_fmt_bytes(st->bytes_fetched, b, sizeof b), st->files_resumed, st->files_skipped,
		st->seconds, weights_fmt_bytes((uint64_t)rate, r, sizeof r));
}

int weights_pull(const char *source, const char *dest, const weights_opts *o, pull_stats *st,
		 char *err, size_t errlen)
{
	wsrc *src = wsrc_new(source, o, err, errlen);
	if (!src) return -1;
	wsrc *dst = NULL;
	if (wsrc_is_url(dest)) {
		dst = wsrc_new(dest, o, err, errlen);
		if (!dst) {
			wsrc_free(src);
			return -1;
		}
		if (wsrc_kind_of(dst) == WSRC_HF) {
			util_errf(err, errlen, "cannot write to a Hugging Face repository; use a folder or a bucket");
			wsrc_free(src);
			wsrc_free(dst);
			return -1;
		}
	}
	wlist l;
	if (wsrc_list(src, &l, err, errlen)) {
		wsrc_free(src);
		wsrc_free(dst);
		return -1;
	}
	int rc;
	if (!dst) {
		char state[4200];
		snprintf(state, sizeof state, "%s/.infergate", dest);
		rc = pull_files(src, &l, dest, state, o, st, err, errlen);
	} else {
		/* Through a local staging folder, then one upload per file. Its name
		 * is predictable (so a rerun resumes), hence it must be proven ours
		 * before a byte in it is trusted, and files already in it are hashed
		 * against the source's checksum rather than taken from its manifest. */
		const char *tmp = o->staging_dir ? o->staging_dir : getenv("TMPDIR") ? getenv("TMPDIR")
										     : "/tmp";
		char stage[4096], state[4200], key[600];
		snprintf(key, sizeof key, "%s\n%s", source, dest);
		snprintf(stage, sizeof stage, "%s/infergate-stage-%016llx", tmp, (unsigned long long)hash64(key, strlen(key), 1));
		snprintf(state, sizeof state, "%s/.infergate", stage);
		rc = pull_stage_private(stage, err, errlen);
		if (rc == 0 && !o->quiet) fprintf(stderr, "staging in %s\n", stage);
		if (rc == 0) rc = pull_files_into(src, &l, stage, state, o, 1, st, err, errlen);
		for (size_t i = 0; rc == 0 && i < l.n; i++) {
			char p[8192];
			snprintf(p, sizeof p, "%s/%s", stage, l.files[i].path);
			int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0) {
				util_errf(err, errlen, "%s: %s", p, strerror(errno));
				rc = -1;
				break;
			}
			rc = wsrc_put(dst, l.files[i].path, fd, l.files[i].size, l.files[i].sha256, err, errlen);
			close(fd);
		}
		if (rc == 0) pull_rmtree(stage);
	}
	if (!o->quiet) summary(source, dest, st, rc == 0);
	wlist_free(&l);
	wsrc_free(src);
	wsrc_free(dst);
	return rc;
}
