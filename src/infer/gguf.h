/*
 * gguf.h — read-only access to GGUF (version 3) files as llama.cpp writes
 * them: one file, or the parts of a split file (NAME-00001-of-0000N.gguf),
 * each memory-mapped read-only and validated whole before anything is handed
 * out.
 *
 * Validation (every part, before use): magic "GGUF", version 3; tensor and
 * key-value counts capped; every string length, array length and value read
 * within the file; value types known, arrays not nested, keys unique;
 * general.alignment (default 32) a u32 power of two; each tensor with a unique
 * name, 1..4 dimensions whose product fits, a supported ggml type whose block
 * divides the first dimension, an offset that is a multiple of the alignment,
 * and an extent inside the data section without overlapping another tensor.
 * Split parts must carry split.no / split.count matching their file names.
 * An error names the file and the field or tensor; nothing is read outside
 * the mapping.
 *
 * Shapes are GGUF's: ne[0] is the fastest-varying dimension (a [rows, cols]
 * matrix is stored with ne[0] = cols, ne[1] = rows).
 *
 * What it is not: a writer (mkmodel writes its own) or a model loader
 * (model_gguf.c reads Gemma 3 out of a set).
 */
#ifndef INFER_GGUF_H
#define INFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_TENSORS 1000000u
#define GGUF_MAX_KV 100000u
#define GGUF_MAX_PARTS 256
#define GGUF_DEFAULT_ALIGNMENT 32

/* Value types, as numbered in the file. */
typedef enum gguf_vtype {
	GGUF_U8 = 0,
	GGUF_I8 = 1,
	GGUF_U16 = 2,
	GGUF_I16 = 3,
	GGUF_U32 = 4,
	GGUF_I32 = 5,
	GGUF_F32 = 6,
	GGUF_BOOL = 7,
	GGUF_STRING = 8,
	GGUF_ARRAY = 9,
	GGUF_U64 = 10,
	GGUF_I64 = 11,
	GGUF_F64 = 12,
	GGUF_VTYPE_COUNT
} gguf_vtype;

/* ggml tensor types this reader accepts (ggml's numbering); others are refused
 * with their ggml name. */
enum {
	GGML_T_F32 = 0,
	GGML_T_F16 = 1,
	GGML_T_Q4_0 = 2,
	GGML_T_Q8_0 = 8,
	GGML_T_Q4_K = 12,
	GGML_T_Q6_K = 14,
	GGML_T_BF16 = 30
};

typedef struct gguf_kv {
	const char *key; /* NUL-terminated copy, owned by the set */
	gguf_vtype type;
	gguf_vtype arr_type;       /* element type when type == GGUF_ARRAY */
	uint64_t n;                /* array length (1 for a scalar) */
	const unsigned char *data; /* the value in the mapping (for a string: its u64 length) */
	size_t nbytes;             /* bytes of the value */
} gguf_kv;

typedef struct gguf_tensor {
	const char *name; /* NUL-terminated copy, owned by the set */
	uint32_t ggml_type;
	int ndim;
	uint64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
	const void *data;           /* inside a read-only mapping, aligned as the file says */
	uint64_t nbytes;
	int part; /* which file of the set */
} gguf_tensor;

typedef struct gguf_set gguf_set;

/* Opens path: a .gguf file (the first part of a split pulls in the others) or a
 * folder holding one model file (mmproj* projector files are ignored).
 * Returns NULL with a message in err on any failure. */
gguf_set *gguf_open(const char *path, char *err, size_t errlen);
/* Validates a GGUF image already in memory (for the fuzzer and tests); the set
 * points into data, which must outlive it. name is used in messages. */
gguf_set *gguf_open_mem(const void *data, size_t size, const char *name, char *err, size_t errlen);
void gguf_close(gguf_set *s);

/* The path of the model file inside a folder (or the file itself) into out.
 * Returns 0, or -1 with a message. */
int gguf_resolve(const char *path, char *out, size_t outlen, char *err, size_t errlen);
/* 1 when path is a .gguf file or a folder holding one model .gguf and no
 * config.json (a Hugging Face folder stays one even with a .gguf beside it). */
int gguf_is_model_path(const char *path);

/* Metadata of the first part. O(log n). */
const gguf_kv *gguf_find_kv(const gguf_set *s, const char *key);
size_t gguf_kv_count(const gguf_set *s);
const gguf_kv *gguf_kv_at(const gguf_set *s, size_t i);

/* Scalar readers: 0 on success, -1 when the value has another type or does
 * not fit. Integers accept any integer type; floats accept F32 and F64. */
int gguf_kv_int(const gguf_kv *kv, int64_t *out);
int gguf_kv_float(const gguf_kv *kv, double *out);
/* A string value: pointer into the mapping (not NUL-terminated) and length. */
int gguf_kv_str(const gguf_kv *kv, const char **p, size_t *len);
/* Element i of an array of scalars (integers or floats). */
int gguf_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out);
int gguf_arr_float(const gguf_kv *kv, uint64_t i, double *out);
/* All strings of a string array, in order, into p[n] / len[n]. */
int gguf_arr_strs(const gguf_kv *kv, const char **p, size_t *len);

const gguf_tensor *gguf_find_tensor(const gguf_set *s, const char *name);
size_t gguf_tensor_count(const gguf_set *s);
const gguf_tensor *gguf_tensor_at(const gguf_set *s, size_t i); /* sorted by name */
const char *gguf_part_path(const gguf_set *s, int part);
uint64_t gguf_total_bytes(const gguf_set *s); /* sum of file sizes */

/* ggml's name of a tensor type ("Q4_0", "Q5_K", ...; "type 99" when unknown). */
const char *gguf_ggml_type_name(uint32_t t);
/* Elements per block and bytes per block of a supported type; 0 otherwise. */
uint32_t gguf_ggml_block_elems(uint32_t t);
uint32_t gguf_ggml_block_bytes(uint32_t t);

#endif
