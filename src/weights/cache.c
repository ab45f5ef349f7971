/*
 * cache.c — the shared model cache: flock-coordinated downloads, freshness
 * checks against the source's listing, LRU eviction of whole models. See
 * cache.h for the layout. The downloads are pull.c's.
 */
#include "weights/cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "weights/pull.h"
#include "weights/source.h"

#define META_MAX (64u << 20)
#define MAX_MODELS 4096

struct weights_cache {
	char dir[4096];   /* models/<key> */
	char files[4200]; /* models/<key>/files */
	char key[256];
	char revision[96];
	int use_fd; /* use.lock, held LOCK_SH */
	int cold;
};

/* A readable, safe folder name for a URL plus a hash that makes it unique. */
static void cache_key(const char *url, char *out, size_t n)
{
	char name[80];
	size_t o = 0;
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	for (; *p && o < sizeof name - 1; p++) name[o++] = isalnum((unsigned char)*p) || *p == '.' || *p == '_' ? *p : '-';
	while (o && name[o - 1] == '-') o--;
	name[o] = 0;
	snprintf(out, n, "%s-%016llx", name, (unsigned long long)hash64(url, strlen(url), 0x1f));
}

static int open_lock(const char *dir, const char *name)
{
	char p[4400];
	snprintf(p, sizeof p, "%.4000s/%.100s", dir, name);
	return open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
}

static int write_file_atomic(const char *path, const buf *b)
{
	char tmp[4500];
	snprintf(tmp, sizeof tmp, "%.4400s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) return -1;
	const char *p = buf_rptr(b);
	size_t n = buf_rlen(b), w = 0;
	while (w < n) {
		ssize_t k = write(fd, p + w, n - w);
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

/* meta.json as a file list: the recorded listing of a complete model. */
static int meta_load(const char *dir, wlist *l, int *complete, uint64_t *last_used_ms, uint64_t *bytes)
{
	char p[4400];
	snprintf(p, sizeof p, "%s/meta.json", dir);
	size_t len;
	memset(l, 0, sizeof *l);
	char *text = util_read_file(p, META_MAX, &len, NULL, 0);
	if (!text) return -1;
	json_doc *d = json_parse(text, len, 0, NULL);
	free(text);
	if (!d) return -1;
	const json_val *r = json_root(d);
	if (complete) *complete = json_bool(json_get(r, "complete"), 0);
	if (last_used_ms) *last_used_ms = (uint64_t)json_num(json_get(r, "last_used_ms"), 0);
	if (bytes) *bytes = (uint64_t)json_num(json_get(r, "bytes"), 0);
	str_copy(l->revision, json_str(json_get(r, "revision"), ""), sizeof l->revision);
	const json_val *fs = json_get(r, "files");
	for (size_t i = 0; i < json_count(fs); i++) {
		const json_val *f = json_at(fs, i);
		const char *path = json_str(json_get(f, "path"), NULL);
		if (!path || wlist_add(l, path, strlen(path), (uint64_t)json_num(json_get(f, "size"), 0), 1)) continue;
		wfile *w = &l->files[l->n - 1];
		str_copy(w->sha256, json_str(json_get(f, "sha256"), ""), sizeof w->sha256);
		str_copy(w->md5, json_str(json_get(f, "md5"), ""), sizeof w->md5);
		str_copy(w->etag, json_str(json_get(f, "etag"), ""), sizeof w->etag);
	}
	json_doc_free(d);
	wlist_sort(l);
	return 0;
}

static int meta_save(const char *dir, const char *url, const wlist *l, int complete)
{
	buf b;
	buf_init(&b, META_MAX);
	json_w w;
	jw_init(&w, &b);
	uint64_t bytes = 0;
	for (size_t i = 0; i < l->n; i++) bytes += l->files[i].size;
	jw_obj_begin(&w);
	jw_key(&w, "url");
	jw_str(&w, url);
	jw_key(&w, "revision");
	jw_str(&w, l->revision);
	jw_key(&w, "complete");
	jw_bool(&w, complete);
	jw_key(&w, "last_used_ms");
	jw_uint(&w, time_wall_ms());
	jw_key(&w, "bytes");
	jw_uint(&w, bytes);
	jw_key(&w, "files");
	jw_arr_begin(&w);
	for (size_t i = 0; i < l->n; i++) {
		const wfile *f = &l->files[i];
		jw_obj_begin(&w);
		jw_key(&w, "path");
		jw_str(&w, f->path);
		jw_key(&w, "size");
		jw_uint(&w, f->size);
		jw_key(&w, "sha256");
		jw_str(&w, f->sha256);
		jw_key(&w, "md5");
		jw_str(&w, f->md5);
		jw_key(&w, "etag");
		jw_str(&w, f->etag);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	buf_puts(&b, "\n");
	char p[4400];
	snprintf(p, sizeof p, "%s/meta.json", dir);
	int rc = w.error ? -1 : write_file_atomic(p, &b);
	buf_free(&b);
	return rc;
}

/* 1 when the listing l matches the recorded one (same files, sizes, versions). */
static int same_listing(const wlist *a, const wlist *b)
{
	if (a->n != b->n || strcmp(a->revision, b->revision)) return 0;
	for (size_t i = 0; i < a->n; i++) {
		const wfile *x = &a->files[i], *y = &b->files[i];
		if (strcmp(x->path, y->path) || x->size != y->size || strcmp(pull_file_id(x), pull_file_id(y))) return 0;
	}
	return 1;
}

/* 1 when every recorded file is present with its size. */
static int files_present(const char *files_dir, const wlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		char p[8192];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", files_dir, l->files[i].path);
		if (stat(p, &st) < 0 || (uint64_t)st.st_size != l->files[i].size) return 0;
	}
	return 1;
}

/* Removes files recorded in old but absent from new (the source dropped them). */
static void drop_stale(const char *files_dir, const wlist *old, const wlist *now)
{
	for (size_t i = 0; i < old->n; i++) {
		int keep = 0;
		for (size_t k = 0; k < now->n && !keep; k++) keep = !strcmp(old->files[i].path, now->files[k].path);
		if (keep) continue;
		char p[8192];
		snprintf(p, sizeof p, "%s/%s", files_dir, old->files[i].path);
		unlink(p);
	}
}

static int cache_open_once(const char *url, const char *cache_dir, uint64_t capacity, int offline,
			   const weights_opts *o_in, weights_cache **out, char *err, size_t errlen);

/* 1 when fd is still the file at dir/name (an evictor may have moved the folder). */
static int lock_still_there(int fd, const char *dir, const char *name)
{
	char p[4400];
	struct stat a, b;
	snprintf(p, sizeof p, "%.4000s/%.100s", dir, name);
	return fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

int weights_cache_open(const char *url, const char *cache_dir, uint64_t capacity, int offline,
		       const weights_opts *o, weights_cache **out, char *err, size_t errlen)
{
	for (int attempt = 0;; attempt++) {
		int rc = cache_open_once(url, cache_dir, capacity, offline, o, out, err, errlen);
		if (rc != -2 || attempt == 3) return rc == -2 ? -1 : rc;
	}
}

/* One try; -2 when the model folder was evicted while we waited (try again). */
static int cache_open_once(const char *url, const char *cache_dir, uint64_t capacity, int offline,
			   const weights_opts *o_in, weights_cache **out, char *err, size_t errlen)
{
	weights_opts od;
	if (!o_in) {
		weights_opts_default(&od);
		od.quiet = 1;
		o_in = &od;
	}
	const weights_opts *o = o_in;
	*out = NULL;
	weights_cache *c = calloc(1, sizeof *c);
	if (!c) {
		util_errf(err, errlen, "out of memory");
		return -1;
	}
	c->use_fd = -1;
	cache_key(url, c->key, sizeof c->key);
	snprintf(c->dir, sizeof c->dir, "%s/models/%s", cache_dir, c->key);
	snprintf(c->files, sizeof c->files, "%s/files", c->dir);
	char probe[4400], state[4400];
	snprintf(probe, sizeof probe, "%s/files/x", c->dir);
	snprintf(state, sizeof state, "%s/state", c->dir);
	if (pull_mkdirs_for(probe) < 0) {
		util_errf(err, errlen, "cannot create %s: %s", c->files, strerror(errno));
		free(c);
		return -1;
	}
	/* DIR itself may be shared and open to all (a Kubernetes emptyDir is
	 * 0777); what we keep in it must be ours. */
	char models[4200];
	snprintf(models, sizeof models, "%s/models", cache_dir);
	if (pull_dir_trusted(models, err, errlen) || pull_dir_trusted(c->dir, err, errlen)) {
		free(c);
		return -1;
	}
	int dl_fd = open_lock(c->dir, "download.lock");
	c->use_fd = open_lock(c->dir, "use.lock");
	if (dl_fd < 0 || c->use_fd < 0) {
		util_errf(err, errlen, "cannot open locks in %s: %s", c->dir, strerror(errno));
		goto fail;
	}
	/* Holding use.lock shared first keeps an evictor away while we work. */
	if (pull_lock_bounded(c->use_fd, LOCK_SH, o->lock_timeout_s, url, o->quiet) ||
	    pull_lock_bounded(dl_fd, LOCK_EX, o->lock_timeout_s, url, o->quiet)) {
		util_errf(err, errlen, "timed out after %d s waiting for another process's download of %s",
			  o->lock_timeout_s, url);
		goto fail;
	}
	if (!lock_still_there(c->use_fd, c->dir, "use.lock")) {
		util_errf(err, errlen, "%s was evicted while opening", c->dir);
		flock(dl_fd, LOCK_UN);
		close(dl_fd);
		close(c->use_fd);
		free(c);
		return -2;
	}
	wlist old;
	int complete = 0;
	int have = meta_load(c->dir, &old, &complete, NULL, NULL) == 0 && complete && files_present(c->files, &old);
	if (offline) {
		if (!have) {
			util_errf(err, errlen, "offline and %s is not complete in the cache %s", url, cache_dir);
			wlist_free(&old);
			goto fail_locked;
		}
		str_copy(c->revision, old.revision, sizeof c->revision);
		meta_save(c->dir, url, &old, 1); /* records the use time */
		wlist_free(&old);
		goto done;
	}
	wsrc *src = wsrc_new(url, o, err, errlen);
	if (!src) {
		wlist_free(&old);
		goto fail_locked;
	}
	wlist now;
	if (wsrc_list(src, &now, err, errlen)) {
		if (have) {
			/* The source is unreachable but we hold a complete copy: serve it. */
			log_warn("freshness check of %s failed (%s); using the cached copy", url, err);
			err[0] = 0;
			str_copy(c->revision, old.revision, sizeof c->revision);
			meta_save(c->dir, url, &old, 1);
			wlist_free(&old);
			wsrc_free(src);
			goto done;
		}
		wlist_free(&old);
		wsrc_free(src);
		goto fail_locked;
	}
	if (have && same_listing(&old, &now)) {
		str_copy(c->revision, old.revision, sizeof c->revision);
		meta_save(c->dir, url, &old, 1);
	} else {
		c->cold = 1;
		meta_save(c->dir, url, &now, 0);
		pull_stats st;
		int rc = pull_files(src, &now, c->files, state, o, &st, err, errlen);
		if (rc == 0) {
			drop_stale(c->files, &old, &now);
			meta_save(c->dir, url, &now, 1);
			str_copy(c->revision, now.revision, sizeof c->revision);
			if (!o->quiet) {
				char a[32];
				fprintf(stderr, "cached %s: %zu files, %s downloaded in %.2f s\n", url, st.files_total,
					weights_fmt_bytes(st.bytes_fetched, a, sizeof a), st.seconds);
			}
		}
		if (rc) {
			wlist_free(&old);
			wlist_free(&now);
			wsrc_free(src);
			goto fail_locked;
		}
	}
	wlist_free(&old);
	wlist_free(&now);
	wsrc_free(src);
done:
	flock(dl_fd, LOCK_UN);
	close(dl_fd);
	if (capacity) weights_cache_evict(cache_dir, capacity, c->key);
	*out = c;
	return 0;
fail_locked:
	flock(dl_fd, LOCK_UN);
fail:
	if (dl_fd >= 0) close(dl_fd);
	if (c->use_fd >= 0) close(c->use_fd);
	free(c);
	return -1;
}

const char *weights_cache_path(const weights_cache *c) { return c->files; }
const char *weights_cache_revision(const weights_cache *c) { return c->revision; }
int weights_cache_was_cold(const weights_cache *c) { return c->cold; }

void weights_cache_close(weights_cache *c)
{
	if (!c) return;
	if (c->use_fd >= 0) close(c->use_fd); /* closing drops the shared lock */
	free(c);
}

/* ---------------------------------------------------------------- eviction */

typedef struct model_ent {
	char name[256];
	uint64_t bytes, last_used_ms;
} model_ent;

static int by_last_used(const void *a, const void *b)
{
	const model_ent *x = a, *y = b;
	return x->last_used_ms < y->last_used_ms ? -1 : x->last_used_ms > y->last_used_ms;
}

/* Bytes a model folder holds on disk (its files and partial state). */
static uint64_t model_bytes(const char *dir, uint64_t recorded)
{
	return recorded; /* meta.json's total; partial state is counted once complete */
}

uint64_t weights_cache_evict(const char *cache_dir, uint64_t capacity, const char *keep)
{
	char p[4400];
	snprintf(p, sizeof p, "%s/evict.lock", cache_dir);
	int lfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lfd < 0) return 0;
	if (pull_lock_bounded(lfd, LOCK_EX, 60, "the cache's eviction lock", 1)) {
		close(lfd);
		return 0;
	}
	snprintf(p, sizeof p, "%s/models", cache_dir);
	DIR *d = opendir(p);
	model_ent *ms = calloc(MAX_MODELS, sizeof *ms);
	size_t n = 0;
	uint64_t total = 0, freed = 0;
	struct dirent *de;
	while (d && ms && n < MAX_MODELS && (de = readdir(d))) {
		if (de->d_name[0] == '.') continue;
		char md[4700];
		snprintf(md, sizeof md, "%s/%s", p, de->d_name);
		wlist l;
		uint64_t lu = 0, bytes = 0;
		int complete = 0;
		if (meta_load(md, &l, &complete, &lu, &bytes) == 0) wlist_free(&l);
		str_copy(ms[n].name, de->d_name, sizeof ms[n].name);
		ms[n].bytes = model_bytes(md, bytes);
		ms[n].last_used_ms = lu;
		total += ms[n].bytes;
		n++;
	}
	if (d) closedir(d);
	if (ms) qsort(ms, n, sizeof *ms, by_last_used);
	for (size_t i = 0; ms && i < n && total > capacity; i++) {
		if (keep && !strcmp(ms[i].name, keep)) continue;
		char md[4700];
		snprintf(md, sizeof md, "%s/%s", p, ms[i].name);
		int ufd = open_lock(md, "use.lock"), dfd = open_lock(md, "download.lock");
		int got = ufd >= 0 && dfd >= 0 && flock(ufd, LOCK_EX | LOCK_NB) == 0 && flock(dfd, LOCK_EX | LOCK_NB) == 0;
		if (got) {
			/* Rename first so no opener finds a half-deleted model. */
			char gone[4800];
			snprintf(gone, sizeof gone, "%s/.evicting-%s", p, ms[i].name);
			if (rename(md, gone) == 0) {
				pull_rmtree(gone);
				total -= ms[i].bytes;
				freed += ms[i].bytes;
				log_info("evicted %s (%llu bytes) from the weights cache", ms[i].name, (unsigned long long)ms[i].bytes);
			}
		}
		if (ufd >= 0) close(ufd);
		if (dfd >= 0) close(dfd);
	}
	if (ms && total > capacity)
		log_warn("weights cache %s holds %llu bytes, over its capacity of %llu: the rest is in use",
			 cache_dir, (unsigned long long)total, (unsigned long long)capacity);
	free(ms);
	flock(lfd, LOCK_UN);
	close(lfd);
	return freed;
}
