/*
 * fuzz_gguf.c — the GGUF reader on arbitrary bytes. Built as one translation
 * unit with src/infer/gguf.c (the fuzz runner links only src/core).
 *
 * The input is validated from an exact-size heap copy (ASan catches any read
 * past its end). When it is accepted, every key is read back through every
 * accessor, every string array walked, and the first and last byte of every
 * tensor touched: validation must have made all of that safe.
 * fuzz-max-len: 8192
 */
#include "../../src/infer/gguf.c"

static volatile unsigned fz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy = malloc(size ? size : 1);
	if (!copy) return 0;
	memcpy(copy, data, size);
	char err[256];
	gguf_set *g = gguf_open_mem(copy, size, "fuzz.gguf", err, sizeof err);
	if (!g) {
		if (!err[0]) __builtin_trap(); /* a refusal always says why */
		free(copy);
		return 0;
	}
	for (size_t i = 0; i < gguf_kv_count(g); i++) {
		const gguf_kv *kv = gguf_kv_at(g, i);
		if (gguf_find_kv(g, kv->key) != kv) __builtin_trap();
		int64_t iv;
		double dv;
		const char *sp;
		size_t sl;
		if (gguf_kv_int(kv, &iv) == 0) fz_sink += (unsigned)iv;
		if (gguf_kv_float(kv, &dv) == 0) fz_sink += (unsigned)(dv == dv);
		if (gguf_kv_str(kv, &sp, &sl) == 0 && sl) fz_sink += (unsigned char)sp[0] + (unsigned char)sp[sl - 1];
		if (kv->type != GGUF_ARRAY) continue;
		if (kv->arr_type == GGUF_STRING) {
			const char **ps = malloc((size_t)kv->n * sizeof *ps + 1);
			size_t *pl = malloc((size_t)kv->n * sizeof *pl + 1);
			if (ps && pl && gguf_arr_strs(kv, ps, pl) == 0)
				for (uint64_t j = 0; j < kv->n; j++)
					if (pl[j]) fz_sink += (unsigned char)ps[j][0] + (unsigned char)ps[j][pl[j] - 1];
			free(ps);
			free(pl);
		} else {
			for (uint64_t j = 0; j < kv->n; j++) {
				if (gguf_arr_int(kv, j, &iv) == 0) fz_sink += (unsigned)iv;
				if (gguf_arr_float(kv, j, &dv) == 0) fz_sink += (unsigned)(dv == dv);
			}
		}
	}
	for (size_t i = 0; i < gguf_tensor_count(g); i++) {
		const gguf_tensor *t = gguf_tensor_at(g, i);
		if (gguf_find_tensor(g, t->name) != t) __builtin_trap();
		const unsigned char *p = t->data;
		if (p < copy || p + t->nbytes > copy + size) __builtin_trap();
		if (t->nbytes) fz_sink += p[0] + p[t->nbytes - 1];
	}
	gguf_close(g);
	free(copy);
	return 0;
}
