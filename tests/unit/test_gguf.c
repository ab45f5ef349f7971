/*
 * test_gguf.c — the GGUF reader (src/infer/gguf.c): files built here byte by
 * byte; every header field refused when it lies (magic, version, counts,
 * lengths, types, alignment, offsets, overlaps, duplicates, unsupported ggml
 * types named), every prefix of a valid file refused; and the engine's
 * dequantization of each block type read from a GGUF file equal, bit for bit,
 * to a reference dequantizer written here from ggml's definition of the
 * formats.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "t.h"
#include "core/buf.h"
#include "infer/gguf.h"
#include "infer/kernels.h"
#include "infer/quant.h"

/* ---------------------------------------------------------------- a writer */

static void w_u32(buf *b, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		buf_append(b, &c, 1);
	}
}
static void w_u64(buf *b, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		buf_append(b, &c, 1);
	}
}
static void w_str(buf *b, const char *s)
{
	w_u64(b, strlen(s));
	buf_append(b, s, strlen(s));
}

typedef struct wt {
	const char *name;
	int ndim;
	uint64_t ne[2];
	uint32_t type;
	const void *data;
	uint64_t nbytes;
	uint64_t offset; /* UINT64_MAX: next aligned place */
} wt;

/* A GGUF image: header, n_kv pre-encoded key-values, tensors. */
static void build(buf *b, uint32_t version, const char *kvs, size_t kvs_len, uint64_t n_kv, wt *ts, int n_t, uint32_t align)
{
	buf_reset(b);
	buf_append(b, "GGUF", 4);
	w_u32(b, version);
	w_u64(b, (uint64_t)n_t);
	w_u64(b, n_kv);
	buf_append(b, kvs, kvs_len);
	uint64_t off = 0;
	for (int i = 0; i < n_t; i++) {
		w_str(b, ts[i].name);
		w_u32(b, (uint32_t)ts[i].ndim);
		for (int d = 0; d < ts[i].ndim; d++) w_u64(b, ts[i].ne[d]);
		w_u32(b, ts[i].type);
		if (ts[i].offset == UINT64_MAX) ts[i].offset = off;
		w_u64(b, ts[i].offset);
		off = (ts[i].offset + ts[i].nbytes + align - 1) / align * align;
	}
	while (buf_rlen(b) % align) buf_append(b, "", 1);
	size_t base = buf_rlen(b);
	for (int i = 0; i < n_t; i++) {
		while (buf_rlen(b) < base + ts[i].offset) buf_append(b, "", 1);
		if (buf_rlen(b) == base + ts[i].offset) buf_append(b, ts[i].data, (size_t)ts[i].nbytes);
	}
}

static gguf_set *open_buf(buf *b, char *err, size_t errlen)
{
	/* an exact-size copy, so a read past the end is caught under ASan */
	static void *copy;
	free(copy);
	copy = malloc(buf_rlen(b) + 1);
	memcpy(copy, buf_rptr(b), buf_rlen(b));
	return gguf_open_mem(copy, buf_rlen(b), "t.gguf", err, errlen);
}

static float vec4[4] = {1, 2, 3, 4};
static unsigned char q80[2 * 34];

static int refused_with(buf *b, const char *needle)
{
	char err[512] = "";
	gguf_set *g = open_buf(b, err, sizeof err);
	if (g) {
		gguf_close(g);
		printf("    accepted, expected an error with \"%s\"\n", needle);
		return 0;
	}
	if (!strstr(err, needle)) {
		printf("    error \"%s\" lacks \"%s\"\n", err, needle);
		return 0;
	}
	return 1;
}

static void kv_u32(buf *k, const char *key, uint32_t v)
{
	w_str(k, key);
	w_u32(k, GGUF_U32);
	w_u32(k, v);
}

static void test_valid_file(void)
{
	buf b, k;
	buf_init(&b, 0);
	buf_init(&k, 0);
	w_str(&k, "general.architecture");
	w_u32(&k, GGUF_STRING);
	w_str(&k, "gemma3");
	kv_u32(&k, "gemma3.block_count", 7);
	w_str(&k, "tokenizer.ggml.tokens");
	w_u32(&k, GGUF_ARRAY);
	w_u32(&k, GGUF_STRING);
	w_u64(&k, 2);
	w_str(&k, "a");
	w_str(&k, "<0x0A>");
	w_str(&k, "x.f");
	w_u32(&k, GGUF_F32);
	float f = 0.5f;
	buf_append(&k, &f, 4);
	wt ts[2] = {{"v.weight", 1, {4}, GGML_T_F32, vec4, 16, UINT64_MAX},
		    {"m.weight", 2, {32, 2}, GGML_T_Q8_0, q80, 68, UINT64_MAX}};
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 4, ts, 2, 32);
	char err[256];
	gguf_set *g = open_buf(&b, err, sizeof err);
	T_CHECK(g != NULL);
	if (!g) {
		printf("    %s\n", err);
		return;
	}
	const char *s;
	size_t n;
	int64_t iv;
	double dv;
	T_CHECK(gguf_kv_str(gguf_find_kv(g, "general.architecture"), &s, &n) == 0 && n == 6 && !memcmp(s, "gemma3", 6));
	T_CHECK(gguf_kv_int(gguf_find_kv(g, "gemma3.block_count"), &iv) == 0 && iv == 7);
	T_CHECK(gguf_kv_float(gguf_find_kv(g, "x.f"), &dv) == 0 && dv == 0.5);
	T_CHECK(gguf_kv_int(gguf_find_kv(g, "x.f"), &iv) < 0);
	const char *ps[2];
	size_t pl[2];
	const gguf_kv *tk = gguf_find_kv(g, "tokenizer.ggml.tokens");
	T_CHECK(tk && tk->n == 2 && gguf_arr_strs(tk, ps, pl) == 0 && pl[1] == 6 && !memcmp(ps[1], "<0x0A>", 6));
	const gguf_tensor *v = gguf_find_tensor(g, "v.weight"), *m = gguf_find_tensor(g, "m.weight");
	T_CHECK(v && v->nbytes == 16 && !memcmp(v->data, vec4, 16) && (uintptr_t)v->data % 32 == 0);
	T_CHECK(m && m->ggml_type == GGML_T_Q8_0 && m->ne[0] == 32 && m->ne[1] == 2 && m->nbytes == 68);
	T_CHECK(gguf_find_tensor(g, "nope") == NULL);
	gguf_close(g);
	/* every strict prefix is refused, never read past */
	size_t full = buf_rlen(&b);
	int all = 1;
	for (size_t cut = 0; cut < full; cut++) {
		buf p;
		buf_init(&p, 0);
		buf_append(&p, buf_rptr(&b), cut);
		gguf_set *pg = open_buf(&p, err, sizeof err);
		if (pg) {
			all = 0;
			printf("    prefix of %zu bytes accepted\n", cut);
			gguf_close(pg);
		}
		buf_free(&p);
	}
	T_CHECK(all);
	/* no keys, no tensors: valid (qsort of an empty table once passed NULL) */
	build(&b, 3, "", 0, 0, NULL, 0, 32);
	g = open_buf(&b, err, sizeof err);
	T_CHECK(g && gguf_kv_count(g) == 0 && gguf_tensor_count(g) == 0 && gguf_find_kv(g, "a") == NULL);
	gguf_close(g);
	buf_free(&b);
	buf_free(&k);
}

static void test_refusals(void)
{
	buf b, k;
	buf_init(&b, 0);
	buf_init(&k, 0);
	wt one[1] = {{"v.weight", 1, {4}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	build(&b, 3, "", 0, 0, one, 1, 32);
	((char *)buf_rptr(&b))[0] = 'X';
	T_CHECK(refused_with(&b, "bad magic"));
	build(&b, 2, "", 0, 0, one, 1, 32);
	T_CHECK(refused_with(&b, "version 2 is not supported"));
	/* counts the file cannot hold */
	build(&b, 3, "", 0, 1u << 30, one, 1, 32);
	T_CHECK(refused_with(&b, "key count"));
	/* an unknown value type, a nested array, a duplicate key */
	buf_reset(&k);
	w_str(&k, "a");
	w_u32(&k, 13);
	w_u32(&k, 0);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "key a: value type 13 is unknown"));
	buf_reset(&k);
	w_str(&k, "a");
	w_u32(&k, GGUF_ARRAY);
	w_u32(&k, GGUF_ARRAY);
	w_u64(&k, 0);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "array element type 9 is not allowed"));
	buf_reset(&k);
	kv_u32(&k, "a", 1);
	kv_u32(&k, "a", 2);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 2, one, 1, 32);
	T_CHECK(refused_with(&b, "key a appears twice"));
	/* a string longer than the file */
	buf_reset(&k);
	w_str(&k, "a");
	w_u32(&k, GGUF_STRING);
	w_u64(&k, 1ull << 40);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "runs past the end of the file"));
	/* an array longer than the file */
	buf_reset(&k);
	w_str(&k, "a");
	w_u32(&k, GGUF_ARRAY);
	w_u32(&k, GGUF_U64);
	w_u64(&k, 1ull << 60);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "runs past the end of the file"));
	/* alignment */
	buf_reset(&k);
	kv_u32(&k, "general.alignment", 48);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "general.alignment 48 is not a power of two"));
	buf_reset(&k);
	w_str(&k, "general.alignment");
	w_u32(&k, GGUF_U64);
	w_u64(&k, 32);
	build(&b, 3, buf_rptr(&k), buf_rlen(&k), 1, one, 1, 32);
	T_CHECK(refused_with(&b, "general.alignment must be a u32"));
	/* tensors: misaligned offset, past the end, overlapping, duplicate, bad
	 * dimensions, a block that does not divide ne0, an unsupported type */
	wt mis[1] = {{"v.weight", 1, {4}, GGML_T_F32, vec4, 16, 8}};
	build(&b, 3, "", 0, 0, mis, 1, 32);
	T_CHECK(refused_with(&b, "tensor v.weight: offset 8 is not a multiple of the alignment 32"));
	wt big[1] = {{"v.weight", 1, {400}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	build(&b, 3, "", 0, 0, big, 1, 32);
	T_CHECK(refused_with(&b, "tensor v.weight: bytes [0, +1600) run past the end of the data section"));
	wt ov[2] = {{"a.weight", 1, {16}, GGML_T_F32, q80, 64, 0}, {"b.weight", 1, {4}, GGML_T_F32, vec4, 16, 32}};
	build(&b, 3, "", 0, 0, ov, 2, 32);
	T_CHECK(refused_with(&b, "overlaps"));
	wt dup[2] = {{"a.weight", 1, {4}, GGML_T_F32, vec4, 16, UINT64_MAX}, {"a.weight", 1, {4}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	build(&b, 3, "", 0, 0, dup, 2, 32);
	T_CHECK(refused_with(&b, "tensor a.weight appears twice"));
	wt nd[1] = {{"v.weight", 0, {4}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	build(&b, 3, "", 0, 0, nd, 1, 32);
	T_CHECK(refused_with(&b, "tensor v.weight: 0 dimensions"));
	wt ovf[1] = {{"v.weight", 2, {1ull << 40, 1ull << 40}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	build(&b, 3, "", 0, 0, ovf, 1, 32);
	T_CHECK(refused_with(&b, "tensor v.weight: dimensions overflow"));
	wt blk[1] = {{"m.weight", 1, {16}, GGML_T_Q8_0, q80, 34, UINT64_MAX}};
	build(&b, 3, "", 0, 0, blk, 1, 32);
	T_CHECK(refused_with(&b, "first dimension 16 is not a multiple of Q8_0's block of 32"));
	wt q5k[1] = {{"m.weight", 1, {256}, 13, q80, 34, UINT64_MAX}};
	build(&b, 3, "", 0, 0, q5k, 1, 32);
	T_CHECK(refused_with(&b, "tensor m.weight: type Q5_K is not supported"));
	wt odd[1] = {{"m.weight", 1, {256}, 77, q80, 34, UINT64_MAX}};
	build(&b, 3, "", 0, 0, odd, 1, 32);
	T_CHECK(refused_with(&b, "type 77 is not supported"));
	buf_free(&b);
	buf_free(&k);
}

/* Writes b to dir/name. */
static void write_to(const char *dir, const char *name, buf *b)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	fwrite(buf_rptr(b), 1, buf_rlen(b), f);
	fclose(f);
}

static void split_part(buf *b, int no, int count, wt *t)
{
	buf k;
	buf_init(&k, 0);
	w_str(&k, "split.no");
	w_u32(&k, GGUF_U16);
	{
		unsigned char v[2] = {(unsigned char)no, 0};
		buf_append(&k, v, 2);
	}
	w_str(&k, "split.count");
	w_u32(&k, GGUF_U16);
	{
		unsigned char v[2] = {(unsigned char)count, 0};
		buf_append(&k, v, 2);
	}
	build(b, 3, buf_rptr(&k), buf_rlen(&k), 2, t, 1, 32);
	buf_free(&k);
}

static void test_split_files(void)
{
	char dir[] = "/tmp/test_gguf.XXXXXX";
	T_CHECK(mkdtemp(dir) != NULL);
	buf b;
	buf_init(&b, 0);
	wt a[1] = {{"a.weight", 1, {4}, GGML_T_F32, vec4, 16, UINT64_MAX}};
	wt c[1] = {{"c.weight", 2, {32, 2}, GGML_T_Q8_0, q80, 68, UINT64_MAX}};
	split_part(&b, 0, 2, a);
	write_to(dir, "m-00001-of-00002.gguf", &b);
	split_part(&b, 1, 2, c);
	write_to(dir, "m-00002-of-00002.gguf", &b);
	char path[600], err[512];
	snprintf(path, sizeof path, "%s/m-00001-of-00002.gguf", dir);
	gguf_set *g = gguf_open(path, err, sizeof err);
	T_CHECK(g != NULL);
	if (g) {
		T_CHECK(gguf_tensor_count(g) == 2 && gguf_find_tensor(g, "a.weight") && gguf_find_tensor(g, "c.weight"));
		T_CHECK(gguf_find_tensor(g, "c.weight")->part == 1 && !memcmp(gguf_find_tensor(g, "c.weight")->data, q80, 68));
		gguf_close(g);
	}
	/* the folder resolves to the first part */
	g = gguf_open(dir, err, sizeof err);
	T_CHECK(g && gguf_tensor_count(g) == 2);
	gguf_close(g);
	/* a part whose split.no disagrees with its name, a missing part, the second part named */
	split_part(&b, 0, 2, c);
	write_to(dir, "m-00002-of-00002.gguf", &b);
	g = gguf_open(path, err, sizeof err);
	T_CHECK(!g && strstr(err, "m-00002-of-00002.gguf: split.no 0 / split.count 2 do not match the file name (2 of 2)"));
	snprintf(path, sizeof path, "%s/m-00002-of-00002.gguf", dir);
	g = gguf_open(path, err, sizeof err);
	T_CHECK(!g && strstr(err, "open the first part"));
	unlink(path);
	snprintf(path, sizeof path, "%s/m-00001-of-00002.gguf", dir);
	g = gguf_open(path, err, sizeof err);
	T_CHECK(!g && strstr(err, "m-00002-of-00002.gguf: cannot open"));
	unlink(path);
	rmdir(dir);
	buf_free(&b);
}

/* ---------------------------------------------------------------- dequantization */

static float h2f(const unsigned char *p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* ggml's dequantize_row_q8_0 */
static void ref_q8_0(float *y, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n / 32; i++, b += 34) {
		float d = h2f(b);
		for (int j = 0; j < 32; j++) y[i * 32 + j] = (float)(int8_t)b[2 + j] * d;
	}
}

/* ggml's dequantize_row_q4_0 */
static void ref_q4_0(float *y, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n / 32; i++, b += 18) {
		float d = h2f(b);
		for (int j = 0; j < 16; j++) {
			y[i * 32 + j] = (float)((b[2 + j] & 0x0F) - 8) * d;
			y[i * 32 + j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
		}
	}
}

static void scale_min_k4(int j, const unsigned char *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* ggml's dequantize_row_q4_K */
static void ref_q4_k(float *y, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n / 256; i++, b += 144) {
		float d = h2f(b), dmin = h2f(b + 2);
		const unsigned char *scales = b + 4, *q = b + 16;
		int is = 0, sc, m;
		for (int j = 0; j < 256; j += 64) {
			scale_min_k4(is + 0, scales, &sc, &m);
			float d1 = d * (float)sc, m1 = dmin * (float)m;
			scale_min_k4(is + 1, scales, &sc, &m);
			float d2 = d * (float)sc, m2 = dmin * (float)m;
			for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
			for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
			q += 32;
			is += 2;
		}
	}
}

/* ggml's dequantize_row_q6_K */
static void ref_q6_k(float *y, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n / 256; i++, b += 210) {
		const unsigned char *ql = b, *qh = b + 128;
		const int8_t *sc = (const int8_t *)(b + 192);
		float d = h2f(b + 208);
		for (int k = 0; k < 256; k += 128) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l] = d * (float)sc[is + 0] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

static uint64_t rs = 0x1234567;
static unsigned rnd8(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (unsigned)(rs >> 24) & 0xff;
}

/* Random blocks with sane f16 scales (finite, small) at the offsets given. */
static void random_blocks(unsigned char *p, size_t n_blocks, size_t bb, const int *scale_at, int n_scales)
{
	for (size_t i = 0; i < n_blocks * bb; i++) p[i] = (unsigned char)rnd8();
	for (size_t i = 0; i < n_blocks; i++)
		for (int s = 0; s < n_scales; s++) {
			float v = ((float)rnd8() - 128.0f) / 4096.0f;
			uint16_t h = f32_to_f16(v);
			p[i * bb + (size_t)scale_at[s]] = (unsigned char)h;
			p[i * bb + (size_t)scale_at[s] + 1] = (unsigned char)(h >> 8);
		}
}

static void test_dequantize_matches_definition(void)
{
	enum { ROWS = 3,
	       COLS = 512 };
	static const struct {
		uint32_t ggml;
		dtype dt;
		size_t be, bb;
		int sc[2];
		int nsc;
		void (*ref)(float *, const unsigned char *, size_t);
	} ty[] = {
		{GGML_T_Q8_0, DTYPE_Q8_0, 32, 34, {0}, 1, ref_q8_0},
		{GGML_T_Q4_0, DTYPE_Q4_0, 32, 18, {0}, 1, ref_q4_0},
		{GGML_T_Q4_K, DTYPE_Q4_K, 256, 144, {0, 2}, 2, ref_q4_k},
		{GGML_T_Q6_K, DTYPE_Q6_K, 256, 210, {208}, 1, ref_q6_k},
	};
	for (size_t t = 0; t < sizeof ty / sizeof ty[0]; t++) {
		size_t nb = ROWS * COLS / ty[t].be, bytes = nb * ty[t].bb;
		unsigned char *data = malloc(bytes);
		random_blocks(data, nb, ty[t].bb, ty[t].sc, ty[t].nsc);
		buf b;
		buf_init(&b, 0);
		wt ts[1] = {{"w.weight", 2, {COLS, ROWS}, ty[t].ggml, data, bytes, UINT64_MAX}};
		build(&b, 3, "", 0, 0, ts, 1, 32);
		char err[256];
		gguf_set *g = open_buf(&b, err, sizeof err);
		T_CHECK(g != NULL);
		if (!g) {
			printf("    %s\n", err);
			free(data);
			buf_free(&b);
			continue;
		}
		const gguf_tensor *w = gguf_find_tensor(g, "w.weight");
		T_CHECK(w && w->nbytes == bytes && !memcmp(w->data, data, bytes));
		T_EQ_INT((long)dtype_row_bytes(ty[t].dt, COLS) * ROWS, (long)bytes);
		float ours[COLS], ref[COLS];
		int same = 1;
		for (int r = 0; r < ROWS; r++) {
			const unsigned char *row = (const unsigned char *)w->data + (size_t)r * dtype_row_bytes(ty[t].dt, COLS);
			quant_dequantize_row(ty[t].dt, ours, row, COLS);
			ty[t].ref(ref, row, COLS);
			if (memcmp(ours, ref, sizeof ours) != 0) same = 0;
			for (int i = 0; i < COLS; i++)
				if (quant_dequantize_one(ty[t].dt, row, (size_t)i) != ref[i]) same = 0;
		}
		if (!same) printf("    %s: dequantization differs from the definition\n", gguf_ggml_type_name(ty[t].ggml));
		T_CHECK(same);
		gguf_close(g);
		buf_free(&b);
		free(data);
	}
}

int main(void)
{
	for (size_t i = 0; i < sizeof q80; i++) q80[i] = (unsigned char)(i * 7);
	q80[0] = 0;
	q80[1] = 0x3c;
	q80[34] = 0;
	q80[35] = 0x38;
	T_RUN(test_valid_file);
	T_RUN(test_refusals);
	T_RUN(test_split_files);
	T_RUN(test_dequantize_matches_definition);
	return T_END();
}
