/*
 * safetensors.h — read-only access to safetensors checkpoints: one file or a
 * set of shards listed by model.safetensors.index.json, each memory-mapped
 * read-only and validated before any tensor is handed out.
 *
 * Validation (every header, before use): 8 <= size; header length N <= 100 MB
 * and 8 + N <= size; the header is a JSON object of tensors, each with a known
 * dtype, a shape of non-negative integers, and data_offsets [begin, end] whose
 * length equals the element count times the element size; tensors sorted by
 * offset are contiguous from 0 with no gap or overlap, and 8 + N + end_of_last
 * == file size. With an index, every file name is a plain name in the folder,
 * and every tensor the index names exists in its shard. Any failure is an
 * error message naming the file and the tensor; nothing is ever read outside
 * the mapping. Tensor data has no alignment guarantee.
 *
 * What it is not: a writer (mkmodel writes its own), or a dtype converter.
 */
#ifndef INFER_SAFETENSORS_H
#define INFER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER_BYTES 100000000ull
#define ST_MAX_DIMS 8
#define ST_MAX_FILES 4096

typedef enum st_dtype {
	ST_F64,
	ST_F32,
	ST_F16,
	ST_BF16,
	ST_I64,
	ST_I32,
	ST_I16,
	ST_I8,
	ST_U8,
	ST_BOOL,
	ST_F8_E4M3,
	ST_F8_E5M2,
	ST_U16,
	ST_U32,
	ST_U64
} st_dtype;

typedef struct st_tensor {
	const char *name; /* owned by the st_set */
	st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	const void *data; /* inside a read-only mapping; any alignment */
	size_t nbytes;
	int file; /* index into the set's files */
} st_tensor;

typedef struct st_set st_set;

/* Opens a model folder: model.safetensors.index.json if present, otherwise
 * model.safetensors. Returns NULL with a message in err on any failure. */
st_set *st_open_dir(const char *dir, char *err, size_t errlen);
/* Opens one safetensors file. */
st_set *st_open_file(const char *path, char *err, size_t errlen);
void st_close(st_set *s);

/* The tensor named `name`, or NULL. O(log n). */
const st_tensor *st_find(const st_set *s, const char *name);
size_t st_count(const st_set *s);
const st_tensor *st_at(const st_set *s, size_t i); /* sorted by name */
const char *st_file_path(const st_set *s, int file);
uint64_t st_total_bytes(const st_set *s); /* sum of file sizes */

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

#endif
