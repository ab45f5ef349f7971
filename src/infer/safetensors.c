/*
 * safetensors.c — memory-mapped, validated safetensors files (see safetensors.h).
 *
 * A set owns its mappings, its tensor table (sorted by name for lookups) and
 * one arena holding the names. The JSON header is parsed with core/json.h and
 * freed once the table is built.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/json.h"
#include "core/util.h"
#include "infer/safetensors.h"

struct st_file {
	char *path;
	const unsigned char *map;
	size_t size;
};

struct st_set {
	struct st_file *files;
	int n_files;
	st_tensor *tensors; /* sorted by name */
	size_t n_tensors, cap_tensors;
	uint64_t total_bytes;
};

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[ST_F64] = {"F64", 8},
	[ST_F32] = {"F32", 4},
	[ST_F16] = {"F16", 2},
	[ST_BF16] = {"BF16", 2},
	[ST_I64] = {"I64", 8},
	[ST_I32] = {"I32", 4},
	[ST_I16] = {"I16", 2},
	[ST_I8] = {"I8", 1},
	[ST_U8] = {"U8", 1},
	[ST_BOOL] = {"BOOL", 1},
	[ST_F8_E4M3] = {"F8_E4M3", 1},
	[ST_F8_E5M2] = {"F8_E5M2", 1},
	[ST_U16] = {"U16", 2},
	[ST_U32] = {"U32", 4},
	[ST_U64] = {"U64", 8},
};

const char *st_dtype_name(st_dtype t) { return (size_t)t < sizeof dtypes / sizeof dtypes[0] ? dtypes[t].name : "?"; }
size_t st_dtype_size(st_dtype t) { return (size_t)t < sizeof dtypes / sizeof dtypes[0] ? dtypes[t].size : 0; }

static int dtype_parse(const char *s, st_dtype *out)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (st_dtype)i;
			return 0;
		}
	return -1;
}


void st_close(st_set *s)
{
	if (!s) return;
	for (int i = 0; i < s->n_files; i++) {
		if (s->files[i].map) munmap((void *)s->files[i].map, s->files[i].size);
		free(s->files[i].path);
	}
	for (size_t i = 0; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
	free(s->files);
	free(s->tensors);
	free(s);
}

/* Maps path read-only into a new file slot. Returns the slot index or -1. */
static int map_file(st_set *s, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return util_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return util_errf(err, errlen, "%s: cannot stat: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return util_errf(err, errlen, "%s: not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	if (size < 8) {
		close(fd);
		return util_errf(err, errlen, "%s: %zu bytes is too short for a safetensors header (truncated?)", path, size);
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED) return util_errf(err, errlen, "%s: cannot map: %s", path, strerror(e));
	struct st_file *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
	if (!nf) {
		munmap(map, size);
		return util_errf(err, errlen, "%s: out of memory", path);
	}
	s->files = nf;
	struct st_file *f = &s->files[s->n_files];
	f->map = map;
	f->size = size;
	f->path = strdup(path);
	if (!f->path) {
		munmap(map, size);
		return util_errf(err, errlen, "%s: out of memory", path);
	}
	s->total_bytes += size;
	return s->n_files++;
}

static int get_u64(const json_val *v, uint64_t *out)
{
	if (!json_is(v, JSON_NUMBER) || !v->is_int || v->i < 0) return -1;
	*out = (uint64_t)v->i;
	return 0;
}

struct span {
	uint64_t begin, end;
	size_t tensor;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end) return x->end < y->end ? -1 : 1;
	return 0;
}

/* Parses and validates the header of file slot fi, appending its tensors. */
static int load_header(st_set *s, int fi, char *err, size_t errlen)
{
	struct st_file *f = &s->files[fi];
	uint64_t n = 0;
	for (int i = 0; i < 8; i++) n |= (uint64_t)f->map[i] << (8 * i);
	if (n > ST_MAX_HEADER_BYTES)
		return util_errf(err, errlen, "%s: header length %llu exceeds the limit of %llu bytes",
				 f->path, (unsigned long long)n, ST_MAX_HEADER_BYTES);
	if (n > f->size - 8)
		return util_errf(err, errlen, "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)",
				 f->path, (unsigned long long)n, f->size);
	json_error je;
	json_doc *doc = json_parse((const char *)f->map + 8, (size_t)n, 0, &je);
	if (!doc)
		return util_errf(err, errlen, "%s: header is not valid JSON (line %u col %u: %s)",
				 f->path, je.line, je.col, je.msg);
	const json_val *root = json_root(doc);
	int rc = -1;
	struct span *spans = NULL;
	size_t n_spans = 0, first = s->n_tensors;
	uint64_t data_bytes = f->size - 8 - n;
	if (!json_is(root, JSON_OBJECT)) {
		util_errf(err, errlen, "%s: header is not a JSON object", f->path);
		goto out;
	}
	spans = calloc(root->u.obj.n + 1, sizeof *spans);
	if (!spans) {
		util_errf(err, errlen, "%s: out of memory", f->path);
		goto out;
	}
	for (size_t m = 0; m < root->u.obj.n; m++) {
		const json_member *mem = &root->u.obj.members[m];
		const char *name = mem->key;
		const json_val *t = mem->val;
		if (strcmp(name, "__metadata__") == 0) {
			if (!json_is(t, JSON_OBJECT)) {
				util_errf(err, errlen, "%s: __metadata__ is not an object", f->path);
				goto out;
			}
			continue;
		}
		if (strlen(name) != mem->key_len || mem->key_len == 0) {
			util_errf(err, errlen, "%s: a tensor name is empty or contains NUL", f->path);
			goto out;
		}
		if (!json_is(t, JSON_OBJECT)) {
			util_errf(err, errlen, "%s: tensor %s: entry is not an object", f->path, name);
			goto out;
		}
		const char *dts = json_str(json_get(t, "dtype"), NULL);
		st_dtype dt;
		if (!dts) {
			util_errf(err, errlen, "%s: tensor %s: missing dtype", f->path, name);
			goto out;
		}
		if (dtype_parse(dts, &dt) < 0) {
			util_errf(err, errlen, "%s: tensor %s: unknown dtype \"%.32s\"", f->path, name, dts);
			goto out;
		}
		const json_val *shape = json_get(t, "shape"), *offs = json_get(t, "data_offsets");
		if (!json_is(shape, JSON_ARRAY)) {
			util_errf(err, errlen, "%s: tensor %s: missing or bad shape", f->path, name);
			goto out;
		}
		if (json_count(shape) > ST_MAX_DIMS) {
			util_errf(err, errlen, "%s: tensor %s: %zu dimensions (at most %d)", f->path, name, json_count(shape), ST_MAX_DIMS);
			goto out;
		}
		if (!json_is(offs, JSON_ARRAY) || json_count(offs) != 2) {
			util_errf(err, errlen, "%s: tensor %s: data_offsets is not [begin, end]", f->path, name);
			goto out;
		}
		st_tensor tt = {.dtype = dt, .ndim = (int)json_count(shape), .file = fi};
		uint64_t elems = 1, b, e;
		for (int d = 0; d < tt.ndim; d++) {
			uint64_t dim;
			if (get_u64(json_at(shape, (size_t)d), &dim) < 0 || dim > (1ull << 40)) {
				util_errf(err, errlen, "%s: tensor %s: shape dimension %d is not a non-negative integer below 2^40", f->path, name, d);
				goto out;
			}
			tt.shape[d] = (int64_t)dim;
			if (__builtin_mul_overflow(elems, dim, &elems)) {
				util_errf(err, errlen, "%s: tensor %s: shape overflows", f->path, name);
				goto out;
			}
		}
		if (get_u64(json_at(offs, 0), &b) < 0 || get_u64(json_at(offs, 1), &e) < 0 || b > e) {
			util_errf(err, errlen, "%s: tensor %s: data_offsets are not integers with begin <= end", f->path, name);
			goto out;
		}
		uint64_t want;
		if (__builtin_mul_overflow(elems, (uint64_t)st_dtype_size(dt), &want) || want != e - b) {
			util_errf(err, errlen, "%s: tensor %s: data_offsets span %llu bytes but shape and dtype %s need %llu",
				  f->path, name, (unsigned long long)(e - b), dts, (unsigned long long)want);
			goto out;
		}
		if (e > data_bytes) {
			util_errf(err, errlen, "%s: tensor %s: data ends at byte %llu but the file holds only %llu data bytes (truncated?)",
				  f->path, name, (unsigned long long)e, (unsigned long long)data_bytes);
			goto out;
		}
		if (s->n_tensors == s->cap_tensors) {
			size_t nc = s->cap_tensors ? s->cap_tensors * 2 : 64;
			st_tensor *nt = realloc(s->tensors, nc * sizeof *nt);
			if (!nt) {
				util_errf(err, errlen, "%s: out of memory", f->path);
				goto out;
			}
			s->tensors = nt;
			s->cap_tensors = nc;
		}
		tt.name = strdup(name);
		if (!tt.name) {
			util_errf(err, errlen, "%s: out of memory", f->path);
			goto out;
		}
		tt.data = f->map + 8 + n + b;
		tt.nbytes = (size_t)(e - b);
		spans[n_spans++] = (struct span){b, e, s->n_tensors};
		s->tensors[s->n_tensors++] = tt;
	}
	qsort(spans, n_spans, sizeof *spans, span_cmp);
	uint64_t at = 0;
	for (size_t i = 0; i < n_spans; i++) {
		const char *name = s->tensors[spans[i].tensor].name;
		if (spans[i].begin < at) {
			util_errf(err, errlen, "%s: tensor %s: data [%llu, %llu) overlaps the tensor before it (which ends at %llu)",
				  f->path, name, (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end, (unsigned long long)at);
			goto out;
		}
		if (spans[i].begin > at) {
			util_errf(err, errlen, "%s: tensor %s: data starts at %llu, leaving a gap after byte %llu",
				  f->path, name, (unsigned long long)spans[i].begin, (unsigned long long)at);
			goto out;
		}
		at = spans[i].end;
	}
	if (at != data_bytes) {
		util_errf(err, errlen, "%s: tensors end at data byte %llu but the file has %llu data bytes (8 + %llu + %llu != %zu)",
			  f->path, (unsigned long long)at, (unsigned long long)data_bytes,
			  (unsigned long long)n, (unsigned long long)at, f->size);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) { /* drop this file's tensors */
		for (size_t i = first; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
		s->n_tensors = first;
	}
	free(spans);
	json_doc_free(doc);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorts the table and refuses duplicate names. */
static int finish(st_set *s, char *err, size_t errlen)
{
	/* A file may hold no tensor at all (tensors is NULL then, and qsort's
	 * pointer must not be NULL even for zero elements). */
	if (s->n_tensors > 1) qsort(s->tensors, s->n_tensors, sizeof *s->tensors, name_cmp);
	for (size_t i = 1; i < s->n_tensors; i++)
		if (strcmp(s->tensors[i - 1].name, s->tensors[i].name) == 0)
			return util_errf(err, errlen, "%s: tensor %s appears twice (also in %s)",
					 s->files[s->tensors[i].file].path, s->tensors[i].name,
					 s->files[s->tensors[i - 1].file].path);
	return 0;
}

st_set *st_open_file(const char *path, char *err, size_t errlen)
{
	st_set *s = calloc(1, sizeof *s);
	if (!s) {
		util_errf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	int fi = map_file(s, path, err, errlen);
	if (fi < 0 || load_header(s, fi, err, errlen) < 0 || finish(s, err, errlen) < 0) {
		st_close(s);
		return NULL;
	}
	return s;
}

st_set *st_open_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	if (access(path, F_OK) != 0) {
		snprintf(path, sizeof path, "%s/model.safetensors", dir);
		return st_open_file(path, err, errlen);
	}
	size_t len;
	char *text = util_read_file(path, ST_MAX_HEADER_BYTES, &len, err, errlen);
	if (!text) return NULL;
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	st_set *s = calloc(1, sizeof *s);
	const json_val *wm = doc ? json_get(json_root(doc), "weight_map") : NULL;
	if (!doc || !s || !json_is(wm, JSON_OBJECT)) {
		if (!doc) util_errf(err, errlen, "%s: not valid JSON (line %u col %u: %s)", path, je.line, je.col, je.msg);
		else if (!s) util_errf(err, errlen, "%s: out of memory", path);
		else util_errf(err, errlen, "%s: no weight_map object", path);
		goto bad;
	}
	for (size_t m = 0; m < wm->u.obj.n; m++) {
		const json_member *mem = &wm->u.obj.members[m];
		const char *fname = json_str(mem->val, NULL);
		if (!fname || !*fname || strchr(fname, '/') || strcmp(fname, ".") == 0 || strcmp(fname, "..") == 0) {
			util_errf(err, errlen, "%s: tensor %s: shard name is not a plain file name", path, mem->key);
			goto bad;
		}
		int known = 0;
		char fpath[PATH_MAX];
		snprintf(fpath, sizeof fpath, "%s/%s", dir, fname);
		for (int i = 0; i < s->n_files && !known; i++) known = strcmp(s->files[i].path, fpath) == 0;
		if (known) continue;
		if (s->n_files >= ST_MAX_FILES) {
			util_errf(err, errlen, "%s: more than %d shards", path, ST_MAX_FILES);
			goto bad;
		}
		int fi = map_file(s, fpath, err, errlen);
		if (fi < 0 || load_header(s, fi, err, errlen) < 0) goto bad;
	}
	if (finish(s, err, errlen) < 0) goto bad;
	for (size_t m = 0; m < wm->u.obj.n; m++) {
		const json_member *mem = &wm->u.obj.members[m];
		char fpath[PATH_MAX];
		snprintf(fpath, sizeof fpath, "%s/%s", dir, json_str(mem->val, ""));
		const st_tensor *t = st_find(s, mem->key);
		if (!t || strcmp(s->files[t->file].path, fpath) != 0) {
			util_errf(err, errlen, "%s: tensor %s: not found in %s", path, mem->key, fpath);
			goto bad;
		}
	}
	json_doc_free(doc);
	free(text);
	return s;
bad:
	json_doc_free(doc);
	free(text);
	st_close(s);
	return NULL;
}

const st_tensor *st_find(const st_set *s, const char *name)
{
	size_t lo = 0, hi = s->n_tensors;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->tensors[mid].name, name);
		if (c == 0) return &s->tensors[mid];
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

size_t st_count(const st_set *s) { return s->n_tensors; }
const st_tensor *st_at(const st_set *s, size_t i) { return i < s->n_tensors ? &s->tensors[i] : NULL; }
const char *st_file_path(const st_set *s, int file) { return file >= 0 && file < s->n_files ? s->files[file].path : NULL; }
uint64_t st_total_bytes(const st_set *s) { return s->total_bytes; }
