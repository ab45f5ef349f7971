/*
 * gguf.c — memory-mapped, validated GGUF files (see gguf.h).
 *
 * A set owns its mappings, a key table of the first part (sorted by key) and a
 * tensor table of all parts (sorted by name). Every read of the header goes
 * through a cursor that refuses to step past the end of the file, so a
 * truncated or lying header is an error, never a read outside the mapping.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util.h"
#include "infer/gguf.h"

struct gguf_part {
	char *path;
	const unsigned char *map;
	size_t size;
	int mapped; /* 1: munmap on close; 0: caller's memory */
};

struct gguf_set {
	struct gguf_part *parts;
	int n_parts;
	gguf_kv *kvs; /* first part's, sorted by key */
	size_t n_kvs;
	gguf_kv *part_kvs;    /* scratch while reading later parts */
	gguf_tensor *tensors; /* all parts', sorted by name */
	size_t n_tensors, cap_tensors;
	uint64_t total_bytes;
};

/* ggml's type names by id (gaps are ids ggml retired). */
static const char *const ggml_names[] = {
	"F32",
	"F16",
	"Q4_0",
	"Q4_1",
	NULL,
	NULL,
	"Q5_0",
	"Q5_1",
	"Q8_0",
	"Q8_1",
	"Q2_K",
	"Q3_K",
	"Q4_K",
	"Q5_K",
	"Q6_K",
	"Q8_K",
	"IQ2_XXS",
	"IQ2_XS",
	"IQ3_XXS",
	"IQ1_S",
	"IQ4_NL",
	"IQ3_S",
	"IQ2_S",
	"IQ4_XS",
	"I8",
	"I16",
	"I32",
	"I64",
	"F64",
	"IQ1_M",
	"BF16",
	NULL,
	NULL,
	NULL,
	"TQ1_0",
	"TQ2_0",
	NULL,
	NULL,
	NULL,
	"MXFP4",
};

const char *gguf_ggml_type_name(uint32_t t)
{
	static __thread char tmp[24];
	if (t < sizeof ggml_names / sizeof ggml_names[0] && ggml_names[t]) return ggml_names[t];
	snprintf(tmp, sizeof tmp, "type %u", t);
	return tmp;
}

uint32_t gguf_ggml_block_elems(uint32_t t)
{
	switch (t) {
	case GGML_T_F32:
	case GGML_T_F16:
	case GGML_T_BF16: return 1;
	case GGML_T_Q4_0:
	case GGML_T_Q8_0: return 32;
	case GGML_T_Q4_K:
	case GGML_T_Q6_K: return 256;
	default: return 0;
	}
}

uint32_t gguf_ggml_block_bytes(uint32_t t)
{
	switch (t) {
	case GGML_T_F32: return 4;
	case GGML_T_F16:
	case GGML_T_BF16: return 2;
	case GGML_T_Q4_0: return 2 + 16;            /* f16 scale, 32 nibbles */
	case GGML_T_Q8_0: return 2 + 32;            /* f16 scale, 32 int8 */
	case GGML_T_Q4_K: return 2 + 2 + 12 + 128;  /* d, dmin, 6-bit scales/mins, 256 nibbles */
	case GGML_T_Q6_K: return 128 + 64 + 16 + 2; /* low 4 bits, high 2 bits, int8 scales, d */
	default: return 0;
	}
}

static const size_t vsize[GGUF_VTYPE_COUNT] = {
	[GGUF_U8] = 1,
	[GGUF_I8] = 1,
	[GGUF_U16] = 2,
	[GGUF_I16] = 2,
	[GGUF_U32] = 4,
	[GGUF_I32] = 4,
	[GGUF_F32] = 4,
	[GGUF_BOOL] = 1,
	[GGUF_STRING] = 0,
	[GGUF_ARRAY] = 0,
	[GGUF_U64] = 8,
	[GGUF_I64] = 8,
	[GGUF_F64] = 8,
};

/* ------------------------------------------------------------ cursor */

typedef struct cur {
	const unsigned char *p;
	size_t at, size;
	const char *file;
	char *err;
	size_t errlen;
} cur;

static int need(cur *c, size_t n, const char *what)
{
	if (n > c->size - c->at)
		return util_errf(c->err, c->errlen, "%s: %s at byte %zu runs past the end of the file (%zu bytes; truncated?)",
				 c->file, what, c->at, c->size);
	return 0;
}

static uint64_t rd_le(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int rd_u32(cur *c, uint32_t *v, const char *what)
{
	if (need(c, 4, what) < 0) return -1;
	*v = (uint32_t)rd_le(c->p + c->at, 4);
	c->at += 4;
	return 0;
}

static int rd_u64(cur *c, uint64_t *v, const char *what)
{
	if (need(c, 8, what) < 0) return -1;
	*v = rd_le(c->p + c->at, 8);
	c->at += 8;
	return 0;
}

/* A string: u64 length then bytes. *s points into the file. */
static int rd_str(cur *c, const char **s, size_t *len, const char *what)
{
	uint64_t n;
	if (rd_u64(c, &n, what) < 0) return -1;
	if (n > c->size - c->at)
		return util_errf(c->err, c->errlen, "%s: %s: string length %llu at byte %zu runs past the end of the file",
				 c->file, what, (unsigned long long)n, c->at - 8);
	*s = (const char *)c->p + c->at;
	*len = (size_t)n;
	c->at += (size_t)n;
	return 0;
}

/* ------------------------------------------------------------ helpers */

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const gguf_kv *)a)->key, ((const gguf_kv *)b)->key);
}

static int tensor_cmp(const void *a, const void *b)
{
	return strcmp(((const gguf_tensor *)a)->name, ((const gguf_tensor *)b)->name);
}

static const gguf_kv *kv_lookup(const gguf_kv *kvs, size_t n, const char *key)
{
	gguf_kv k = {.key = key};
	return n ? bsearch(&k, kvs, n, sizeof *kvs, kv_cmp) : NULL;
}

void gguf_close(gguf_set *s)
{
	if (!s) return;
	for (int i = 0; i < s->n_parts; i++) {
		if (s->parts[i].mapped && s->parts[i].map) munmap((void *)s->parts[i].map, s->parts[i].size);
		free(s->parts[i].path);
	}
	for (size_t i = 0; i < s->n_kvs; i++) free((char *)s->kvs[i].key);
	for (size_t i = 0; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
	free(s->parts);
	free(s->kvs);
	free(s->tensors);
	free(s);
}

static int add_part(gguf_set *s, const char *path, const void *map, size_t size, int mapped, char *err, size_t errlen)
{
	struct gguf_part *np = realloc(s->parts, (size_t)(s->n_parts + 1) * sizeof *np);
	if (!np) return util_errf(err, errlen, "%s: out of memory", path);
	s->parts = np;
	struct gguf_part *p = &s->parts[s->n_parts];
	*p = (struct gguf_part){.path = str_dup(path), .map = map, .size = size, .mapped = mapped};
	if (!p->path) return util_errf(err, errlen, "%s: out of memory", path);
	s->total_bytes += size;
	return s->n_parts++;
}

static int map_part(gguf_set *s, const char *path, char *err, size_t errlen)
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
	if (size < 24) {
		close(fd);
		return util_errf(err, errlen, "%s: %zu bytes is too short for a GGUF header (truncated?)", path, size);
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED) return util_errf(err, errlen, "%s: cannot map: %s", path, strerror(e));
	int i = add_part(s, path, map, size, 1, err, errlen);
	if (i < 0) munmap(map, size);
	return i;
}

/* Reads one value of type t at the cursor (not an array). */
static int skip_scalar(cur *c, gguf_vtype t, const char *key)
{
	if (t == GGUF_STRING) {
		const char *sp;
		size_t sl;
		return rd_str(c, &sp, &sl, key);
	}
	if (need(c, vsize[t], key) < 0) return -1;
	if (t == GGUF_BOOL && c->p[c->at] > 1)
		return util_errf(c->err, c->errlen, "%s: %s: bool value %u is neither 0 nor 1", c->file, key, c->p[c->at]);
	c->at += vsize[t];
	return 0;
}

/* Parses the key-value section: n_kv entries into kvs (keys copied). */
static int read_kvs(cur *c, uint64_t n_kv, gguf_kv *kvs, size_t *n_done)
{
	for (uint64_t i = 0; i < n_kv; i++) {
		const char *ks;
		size_t kl;
		char what[48];
		snprintf(what, sizeof what, "key %llu", (unsigned long long)i);
		if (rd_str(c, &ks, &kl, what) < 0) return -1;
		if (kl == 0 || kl > 65535 || memchr(ks, 0, kl))
			return util_errf(c->err, c->errlen, "%s: key %llu: length %zu or a NUL byte is not a valid key",
					 c->file, (unsigned long long)i, kl);
		char *key = str_ndup(ks, kl);
		if (!key) return util_errf(c->err, c->errlen, "%s: out of memory", c->file);
		gguf_kv *kv = &kvs[i];
		*kv = (gguf_kv){.key = key, .n = 1};
		(*n_done)++;
		uint32_t t;
		if (rd_u32(c, &t, key) < 0) return -1;
		if (t >= GGUF_VTYPE_COUNT)
			return util_errf(c->err, c->errlen, "%s: key %s: value type %u is unknown", c->file, key, t);
		kv->type = (gguf_vtype)t;
		size_t start = c->at;
		if (t == GGUF_ARRAY) {
			uint32_t at;
			uint64_t n;
			if (rd_u32(c, &at, key) < 0 || rd_u64(c, &n, key) < 0) return -1;
			if (at >= GGUF_VTYPE_COUNT || at == GGUF_ARRAY)
				return util_errf(c->err, c->errlen, "%s: key %s: array element type %u is not allowed", c->file, key, at);
			kv->arr_type = (gguf_vtype)at;
			kv->n = n;
			start = c->at;
			if (at == GGUF_STRING) {
				/* each string is at least its 8-byte length */
				if (n > (c->size - c->at) / 8)
					return util_errf(c->err, c->errlen, "%s: key %s: array of %llu strings runs past the end of the file",
							 c->file, key, (unsigned long long)n);
				for (uint64_t j = 0; j < n; j++)
					if (skip_scalar(c, GGUF_STRING, key) < 0) return -1;
			} else {
				if (n > (c->size - c->at) / vsize[at])
					return util_errf(c->err, c->errlen, "%s: key %s: array of %llu values runs past the end of the file",
							 c->file, key, (unsigned long long)n);
				if (at == GGUF_BOOL) {
					for (uint64_t j = 0; j < n; j++)
						if (skip_scalar(c, GGUF_BOOL, key) < 0) return -1;
				} else {
					c->at += (size_t)n * vsize[at];
				}
			}
		} else if (skip_scalar(c, kv->type, key) < 0) {
			return -1;
		}
		kv->data = c->p + start;
		kv->nbytes = c->at - start;
	}
	if (*n_done) qsort(kvs, *n_done, sizeof *kvs, kv_cmp);
	for (size_t i = 1; i < *n_done; i++)
		if (strcmp(kvs[i - 1].key, kvs[i].key) == 0)
			return util_errf(c->err, c->errlen, "%s: key %s appears twice", c->file, kvs[i].key);
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
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses and validates part pi. The first part's keys go to s->kvs; a later
 * part's keys are checked and dropped. expect_no/expect_count: the split
 * numbers the file name promises (0 = not a split). */
static int load_part(gguf_set *s, int pi, int expect_no, int expect_count, char *err, size_t errlen)
{
	struct gguf_part *f = &s->parts[pi];
	cur c = {.p = f->map, .size = f->size, .file = f->path, .err = err, .errlen = errlen};
	if (f->size < 24) return util_errf(err, errlen, "%s: %zu bytes is too short for a GGUF header (truncated?)", f->path, f->size);
	if (memcmp(f->map, "GGUF", 4) != 0) return util_errf(err, errlen, "%s: not a GGUF file (bad magic)", f->path);
	c.at = 4;
	uint32_t version;
	uint64_t n_tensors, n_kv;
	if (rd_u32(&c, &version, "version") < 0) return -1;
	if (version != 3)
		return util_errf(err, errlen, "%s: GGUF version %u is not supported (3)", f->path, version);
	if (rd_u64(&c, &n_tensors, "tensor count") < 0 || rd_u64(&c, &n_kv, "key count") < 0) return -1;
	if (n_tensors > GGUF_MAX_TENSORS)
		return util_errf(err, errlen, "%s: tensor count %llu is over the limit %u", f->path, (unsigned long long)n_tensors, GGUF_MAX_TENSORS);
	if (n_kv > GGUF_MAX_KV)
		return util_errf(err, errlen, "%s: key count %llu is over the limit %u", f->path, (unsigned long long)n_kv, GGUF_MAX_KV);
	/* each entry takes at least 8 + 1 + 4 bytes: refuse counts the file cannot hold before allocating */
	if (n_kv > f->size / 13 || n_tensors > f->size / 24)
		return util_errf(err, errlen, "%s: key count %llu or tensor count %llu cannot fit in %zu bytes",
				 f->path, (unsigned long long)n_kv, (unsigned long long)n_tensors, f->size);

	gguf_kv *kvs = calloc((size_t)n_kv + 1, sizeof *kvs);
	if (!kvs) return util_errf(err, errlen, "%s: out of memory", f->path);
	size_t n_done = 0;
	int rc = read_kvs(&c, n_kv, kvs, &n_done);
	uint32_t alignment = GGUF_DEFAULT_ALIGNMENT;
	int64_t split_no = 0, split_count = 0;
	if (rc == 0) {
		const gguf_kv *a = kv_lookup(kvs, n_done, "general.alignment");
		if (a) {
			if (a->type != GGUF_U32)
				rc = util_errf(err, errlen, "%s: general.alignment must be a u32", f->path);
			else {
				alignment = (uint32_t)rd_le(a->data, 4);
				if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 20))
					rc = util_errf(err, errlen, "%s: general.alignment %u is not a power of two up to 1 MiB", f->path, alignment);
			}
		}
	}
	if (rc == 0 && expect_count) {
		const gguf_kv *no = kv_lookup(kvs, n_done, "split.no"), *cnt = kv_lookup(kvs, n_done, "split.count");
		if (!no || !cnt || gguf_kv_int(no, &split_no) < 0 || gguf_kv_int(cnt, &split_count) < 0)
			rc = util_errf(err, errlen, "%s: split file lacks integer split.no / split.count", f->path);
		else if (split_no != expect_no - 1 || split_count != expect_count)
			rc = util_errf(err, errlen, "%s: split.no %lld / split.count %lld do not match the file name (%d of %d)",
				       f->path, (long long)split_no, (long long)split_count, expect_no, expect_count);
	}
	if (pi == 0 && rc == 0) {
		s->kvs = kvs;
		s->n_kvs = n_done;
	} else {
		for (size_t i = 0; i < n_done; i++) free((char *)kvs[i].key);
		free(kvs);
		if (rc < 0) return -1;
	}

	/* tensor infos */
	size_t first = s->n_tensors;
	if (s->n_tensors + n_tensors > s->cap_tensors) {
		size_t cap = s->n_tensors + (size_t)n_tensors;
		gguf_tensor *nt = realloc(s->tensors, (cap ? cap : 1) * sizeof *nt);
		if (!nt) return util_errf(err, errlen, "%s: out of memory", f->path);
		s->tensors = nt;
		s->cap_tensors = cap;
	}
	uint64_t *offsets = malloc(((size_t)n_tensors + 1) * sizeof *offsets);
	if (!offsets) return util_errf(err, errlen, "%s: out of memory", f->path);
	for (uint64_t i = 0; i < n_tensors; i++) {
		const char *ns;
		size_t nl;
		char what[48];
		snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
		if (rd_str(&c, &ns, &nl, what) < 0) goto bad;
		if (nl == 0 || nl > 1024 || memchr(ns, 0, nl)) {
			util_errf(err, errlen, "%s: tensor %llu: name length %zu or a NUL byte is not a valid name", f->path, (unsigned long long)i, nl);
			goto bad;
		}
		gguf_tensor *t = &s->tensors[s->n_tensors];
		*t = (gguf_tensor){.name = str_ndup(ns, nl), .part = pi};
		if (!t->name) {
			util_errf(err, errlen, "%s: out of memory", f->path);
			goto bad;
		}
		s->n_tensors++;
		uint32_t nd, type;
		if (rd_u32(&c, &nd, t->name) < 0) goto bad;
		if (nd < 1 || nd > GGUF_MAX_DIMS) {
			util_errf(err, errlen, "%s: tensor %s: %u dimensions (1 to %d)", f->path, t->name, nd, GGUF_MAX_DIMS);
			goto bad;
		}
		t->ndim = (int)nd;
		uint64_t elems = 1;
		for (int d = 0; d < GGUF_MAX_DIMS; d++) {
			t->ne[d] = 1;
			if (d < (int)nd && rd_u64(&c, &t->ne[d], t->name) < 0) goto bad;
			if (t->ne[d] > INT64_MAX || (t->ne[d] && elems > (uint64_t)INT64_MAX / t->ne[d])) {
				util_errf(err, errlen, "%s: tensor %s: dimensions overflow", f->path, t->name);
				goto bad;
			}
			elems *= t->ne[d];
		}
		if (rd_u32(&c, &type, t->name) < 0 || rd_u64(&c, &offsets[i], t->name) < 0) goto bad;
		t->ggml_type = type;
		uint32_t be = gguf_ggml_block_elems(type), bb = gguf_ggml_block_bytes(type);
		if (!be) {
			util_errf(err, errlen, "%s: tensor %s: type %s is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
				  f->path, t->name, gguf_ggml_type_name(type));
			goto bad;
		}
		if (t->ne[0] % be) {
			util_errf(err, errlen, "%s: tensor %s: first dimension %llu is not a multiple of %s's block of %u",
				  f->path, t->name, (unsigned long long)t->ne[0], gguf_ggml_type_name(type), be);
			goto bad;
		}
		uint64_t blocks = elems / be;
		if (blocks > UINT64_MAX / bb) {
			util_errf(err, errlen, "%s: tensor %s: size overflows", f->path, t->name);
			goto bad;
		}
		t->nbytes = blocks * bb;
		if (offsets[i] % alignment) {
			util_errf(err, errlen, "%s: tensor %s: offset %llu is not a multiple of the alignment %u",
				  f->path, t->name, (unsigned long long)offsets[i], alignment);
			goto bad;
		}
	}
	/* data section: after the header, padded to the alignment */
	size_t data_at = c.at + (alignment - c.at % alignment) % alignment;
	if (data_at > f->size && n_tensors) {
		util_errf(err, errlen, "%s: data section at byte %zu is past the end of the file", f->path, data_at);
		goto bad;
	}
	uint64_t data_size = data_at <= f->size ? f->size - data_at : 0;
	struct span *sp = malloc(((size_t)n_tensors + 1) * sizeof *sp);
	if (!sp) {
		util_errf(err, errlen, "%s: out of memory", f->path);
		goto bad;
	}
	for (uint64_t i = 0; i < n_tensors; i++) {
		gguf_tensor *t = &s->tensors[first + i];
		if (offsets[i] > data_size || t->nbytes > data_size - offsets[i]) {
			util_errf(err, errlen, "%s: tensor %s: bytes [%llu, +%llu) run past the end of the data section (%llu bytes; truncated?)",
				  f->path, t->name, (unsigned long long)offsets[i], (unsigned long long)t->nbytes,
				  (unsigned long long)data_size);
			free(sp);
			goto bad;
		}
		t->data = f->map + data_at + offsets[i];
		sp[i] = (struct span){offsets[i], offsets[i] + t->nbytes, first + i};
	}
	if (n_tensors) qsort(sp, (size_t)n_tensors, sizeof *sp, span_cmp);
	for (uint64_t i = 1; i < n_tensors; i++)
		if (sp[i].begin < sp[i - 1].end) {
			util_errf(err, errlen, "%s: tensor %s overlaps tensor %s", f->path,
				  s->tensors[sp[i].tensor].name, s->tensors[sp[i - 1].tensor].name);
			free(sp);
			goto bad;
		}
	free(sp);
	free(offsets);
	return 0;
bad:
	free(offsets);
	return -1;
}

/* Sorts the tensor table and refuses duplicate names. */
static int finish(gguf_set *s, char *err, size_t errlen)
{
	if (s->n_tensors) qsort(s->tensors, s->n_tensors, sizeof *s->tensors, tensor_cmp);
	for (size_t i = 1; i < s->n_tensors; i++)
		if (strcmp(s->tensors[i - 1].name, s->tensors[i].name) == 0)
			return util_errf(err, errlen, "%s: tensor %s appears twice", s->parts[s->tensors[i].part].path, s->tensors[i].name);
	return 0;
}

gguf_set *gguf_open_mem(const void *data, size_t size, const char *name, char *err, size_t errlen)
{
	gguf_set *s = calloc(1, sizeof *s);
	if (!s) {
		util_errf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	if (add_part(s, name, data, size, 0, err, errlen) < 0 || load_part(s, 0, 0, 0, err, errlen) < 0 ||
	    finish(s, err, errlen) < 0) {
		gguf_close(s);
		return NULL;
	}
	return s;
}

/* Recognizes "...-NNNNN-of-MMMMM.gguf": returns 1 with the prefix length,
 * the part number and the count. */
static int split_name(const char *path, size_t *prefix, int *no, int *count)
{
	size_t n = strlen(path);
	const char *tail = "-00000-of-00000.gguf";
	size_t tl = strlen(tail);
	if (n < tl) return 0;
	const char *p = path + n - tl;
	for (size_t i = 0; i < tl; i++) {
		if (tail[i] == '0') {
			if (p[i] < '0' || p[i] > '9') return 0;
		} else if (p[i] != tail[i]) return 0;
	}
	*no = atoi(p + 1);
	*count = atoi(p + 10);
	*prefix = n - tl;
	return *no >= 1 && *count >= 1 && *no <= *count;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

int gguf_resolve(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) return util_errf(err, errlen, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if ((size_t)snprintf(out, outlen, "%s", path) >= outlen) return util_errf(err, errlen, "%s: path too long", path);
		return 0;
	}
	DIR *d = opendir(path);
	if (!d) return util_errf(err, errlen, "%s: cannot list: %s", path, strerror(errno));
	char found[NAME_MAX + 1] = "";
	int n_found = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		size_t pl;
		int no, cnt;
		if (nm[0] == '.' || !has_suffix(nm, ".gguf") || strncmp(nm, "mmproj", 6) == 0) continue;
		if (split_name(nm, &pl, &no, &cnt) && no != 1) continue;
		if (n_found == 0 || strcmp(nm, found) < 0) snprintf(found, sizeof found, "%s", nm);
		n_found++;
	}
	closedir(d);
	if (n_found == 0) return util_errf(err, errlen, "%s: no .gguf file in the folder", path);
	if (n_found > 1) return util_errf(err, errlen, "%s: %d model .gguf files in the folder; name one", path, n_found);
	if ((size_t)snprintf(out, outlen, "%s/%s", path, found) >= outlen) return util_errf(err, errlen, "%s: path too long", path);
	return 0;
}

int gguf_is_model_path(const char *path)
{
	char f[PATH_MAX], e[8];
	struct stat st;
	if (stat(path, &st) < 0) return 0;
	if (!S_ISDIR(st.st_mode)) return has_suffix(path, ".gguf");
	/* a Hugging Face folder (config.json) stays one even when a .gguf sits beside it */
	if ((size_t)snprintf(f, sizeof f, "%s/config.json", path) < sizeof f && access(f, F_OK) == 0) return 0;
	return gguf_resolve(path, f, sizeof f, e, sizeof e) == 0;
}

gguf_set *gguf_open(const char *path, char *err, size_t errlen)
{
	char file[PATH_MAX];
	if (gguf_resolve(path, file, sizeof file, err, errlen) < 0) return NULL;
	gguf_set *s = calloc(1, sizeof *s);
	if (!s) {
		util_errf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	size_t prefix;
	int no, count;
	if (!split_name(file, &prefix, &no, &count)) {
		if (map_part(s, file, err, errlen) < 0 || load_part(s, 0, 0, 0, err, errlen) < 0) goto bad;
	} else {
		if (no != 1) {
			util_errf(err, errlen, "%s: open the first part (-00001-of-%05d.gguf)", file, count);
			goto bad;
		}
		if (count > GGUF_MAX_PARTS) {
			util_errf(err, errlen, "%s: %d parts is over the limit %d", file, count, GGUF_MAX_PARTS);
			goto bad;
		}
		for (int i = 1; i <= count; i++) {
			char pp[PATH_MAX];
			if (snprintf(pp, sizeof pp, "%.*s-%05d-of-%05d.gguf", (int)prefix, file, i, count) >= (int)sizeof pp) {
				util_errf(err, errlen, "%s: path too long", file);
				goto bad;
			}
			if (map_part(s, pp, err, errlen) < 0 || load_part(s, i - 1, i, count, err, errlen) < 0) goto bad;
		}
	}
	if (finish(s, err, errlen) < 0) goto bad;
	return s;
bad:
	gguf_close(s);
	return NULL;
}

/* ------------------------------------------------------------ accessors */

const gguf_kv *gguf_find_kv(const gguf_set *s, const char *key) { return kv_lookup(s->kvs, s->n_kvs, key); }
size_t gguf_kv_count(const gguf_set *s) { return s->n_kvs; }
const gguf_kv *gguf_kv_at(const gguf_set *s, size_t i) { return i < s->n_kvs ? &s->kvs[i] : NULL; }

const gguf_tensor *gguf_find_tensor(const gguf_set *s, const char *name)
{
	gguf_tensor k = {.name = name};
	return s->n_tensors ? bsearch(&k, s->tensors, s->n_tensors, sizeof k, tensor_cmp) : NULL;
}

size_t gguf_tensor_count(const gguf_set *s) { return s->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_set *s, size_t i) { return i < s->n_tensors ? &s->tensors[i] : NULL; }
const char *gguf_part_path(const gguf_set *s, int part) { return part >= 0 && part < s->n_parts ? s->parts[part].path : "?"; }
uint64_t gguf_total_bytes(const gguf_set *s) { return s->total_bytes; }

static int scalar_int(gguf_vtype t, const unsigned char *p, int64_t *out)
{
	switch (t) {
	case GGUF_U8:
	case GGUF_BOOL: *out = p[0]; return 0;
	case GGUF_I8: *out = (int8_t)p[0]; return 0;
	case GGUF_U16: *out = (uint16_t)rd_le(p, 2); return 0;
	case GGUF_I16: *out = (int16_t)rd_le(p, 2); return 0;
	case GGUF_U32: *out = (uint32_t)rd_le(p, 4); return 0;
	case GGUF_I32: *out = (int32_t)rd_le(p, 4); return 0;
	case GGUF_U64: {
		uint64_t v = rd_le(p, 8);
		if (v > INT64_MAX) return -1;
		*out = (int64_t)v;
		return 0;
	}
	case GGUF_I64: *out = (int64_t)rd_le(p, 8); return 0;
	default: return -1;
	}
}

static int scalar_float(gguf_vtype t, const unsigned char *p, double *out)
{
	if (t == GGUF_F32) {
		uint32_t u = (uint32_t)rd_le(p, 4);
		float f;
		memcpy(&f, &u, 4);
		*out = f;
		return 0;
	}
	if (t == GGUF_F64) {
		uint64_t u = rd_le(p, 8);
		double d;
		memcpy(&d, &u, 8);
		*out = d;
		return 0;
	}
	return -1;
}

int gguf_kv_int(const gguf_kv *kv, int64_t *out) { return kv && kv->type != GGUF_ARRAY ? scalar_int(kv->type, kv->data, out) : -1; }
int gguf_kv_float(const gguf_kv *kv, double *out) { return kv && kv->type != GGUF_ARRAY ? scalar_float(kv->type, kv->data, out) : -1; }

int gguf_kv_str(const gguf_kv *kv, const char **p, size_t *len)
{
	if (!kv || kv->type != GGUF_STRING) return -1;
	*len = (size_t)rd_le(kv->data, 8);
	*p = (const char *)kv->data + 8;
	return 0;
}

int gguf_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out)
{
	if (!kv || kv->type != GGUF_ARRAY || i >= kv->n || !vsize[kv->arr_type]) return -1;
	return scalar_int(kv->arr_type, kv->data + i * vsize[kv->arr_type], out);
}

int gguf_arr_float(const gguf_kv *kv, uint64_t i, double *out)
{
	if (!kv || kv->type != GGUF_ARRAY || i >= kv->n || !vsize[kv->arr_type]) return -1;
	return scalar_float(kv->arr_type, kv->data + i * vsize[kv->arr_type], out);
}

int gguf_arr_strs(const gguf_kv *kv, const char **p, size_t *len)
{
	if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING) return -1;
	size_t at = 0;
	for (uint64_t i = 0; i < kv->n; i++) { /* bounds were checked when the file was opened */
		len[i] = (size_t)rd_le(kv->data + at, 8);
		p[i] = (const char *)kv->data + at + 8;
		at += 8 + len[i];
	}
	return 0;
}
