/*
 * fuzz_safetensors.c — the safetensors header parser and validator
 * (src/infer/safetensors.c, compiled in here) on arbitrary file contents: the
 * input is a whole file (8-byte little-endian header length, JSON header,
 * tensor data), parsed from memory as load_header and finish parse a mapping.
 *
 * Checks: an error names the file; a file that loads has every tensor inside
 * the data section, tensors tiling it with no gap or overlap, nbytes equal to
 * shape times dtype size, names unique, non-empty and findable with st_find.
 * fuzz-max-len: 4096
 */
#include "../../src/infer/safetensors.c"

#include <stdint.h>
#include <stdlib.h>

static void check(int cond)
{
	if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8) return 0; /* map_file refuses these before the parser sees them */
	/* An exact-size copy, so reading past the file is caught as it would be past a mapping. */
	unsigned char *copy = malloc(size);
	if (!copy) return 0;
	memcpy(copy, data, size);
	struct st_file file = {.path = (char *)"fuzz.safetensors", .map = copy, .size = size};
	st_set s = {.files = &file, .n_files = 1, .total_bytes = size};
	char err[512] = "";
	int rc = load_header(&s, 0, err, sizeof(err));
	if (rc == 0) rc = finish(&s, err, sizeof(err));
	if (rc < 0) {
		check(strncmp(err, "fuzz.safetensors: ", 18) == 0);
	} else {
		uint64_t hdr = 0;
		for (int i = 0; i < 8; i++) hdr |= (uint64_t)copy[i] << (8 * i);
		const unsigned char *lo = copy + 8 + hdr, *hi = copy + size;
		uint64_t sum = 0;
		for (size_t i = 0; i < s.n_tensors; i++) {
			const st_tensor *t = &s.tensors[i];
			check(t->name && t->name[0]);
			check((const unsigned char *)t->data >= lo && (const unsigned char *)t->data + t->nbytes <= hi);
			check(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
			uint64_t elems = 1;
			for (int d = 0; d < t->ndim; d++) elems *= (uint64_t)t->shape[d];
			check(elems * st_dtype_size(t->dtype) == t->nbytes);
			check(st_find(&s, t->name) == t);
			if (i) check(strcmp(s.tensors[i - 1].name, t->name) < 0);
			sum += t->nbytes;
		}
		check(sum == (uint64_t)(hi - lo));
	}
	for (size_t i = 0; i < s.n_tensors; i++) free((char *)s.tensors[i].name);
	free(s.tensors);
	free(copy);
	return 0;
}
