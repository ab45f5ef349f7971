/*
 * fuzz_config.c — libFuzzer target for the YAML configuration loader and the
 * validation helpers.
 *
 * Loads the input with cfg_load_yaml_text; a failure must leave a message that
 * names the file. A loaded tree is written as JSON, which must parse back to an
 * equal tree when it has no NaN or infinity (YAML .nan/.inf have no JSON form),
 * and every helper is run over the top-level keys.
 * fuzz-max-len: 4096
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/cfg.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static int finite_tree(const json_val *v)
{
	if (v->type == JSON_NUMBER)
		return isfinite(v->u.num);
	for (size_t i = 0; i < json_count(v); i++)
		if (!finite_tree(v->type == JSON_ARRAY ? json_at(v, i) : v->u.obj.members[i].val))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	char err[256];
	json_doc *d = cfg_load_yaml_text(text, size, "fuzz.yaml", err, sizeof(err));
	free(text);
	if (!d) {
		check(strncmp(err, "fuzz.yaml", 9) == 0);
		return 0;
	}
	const json_val *r = json_root(d);
	buf out;
	buf_init(&out, 0);
	json_w w;
	jw_init(&w, &out);
	jw_value(&w, r);
	if (!w.error && finite_tree(r)) {
		json_error je;
		json_doc *b = json_parse(buf_rptr(&out), buf_rlen(&out), 0, &je);
		check(b != NULL);
		check(json_equal(r, json_root(b)));
		json_doc_free(b);
	}
	buf_free(&out);

	cfg_ctx c;
	cfg_ctx_init(&c, "fuzz.yaml");
	static const char *const allowed[] = {"a", "b", "listen", NULL};
	static const char *const names[] = {"x", "y", NULL};
	cfg_check_keys(&c, r, "", allowed);
	for (size_t i = 0; i < json_count(r) && r->type == JSON_OBJECT; i++) {
		const char *k = r->u.obj.members[i].key;
		const char *s;
		int b, e;
		int64_t x;
		double dd;
		uint64_t u;
		char host[64];
		uint16_t port;
		cfg_str(&c, r, "top", k, 0, NULL, &s);
		cfg_bool(&c, r, "top", k, 0, 0, &b);
		cfg_int(&c, r, "top", k, 0, 0, -5, 5, &x);
		cfg_double(&c, r, "top", k, 0, 0, -1, 1, &dd);
		cfg_duration_ms(&c, r, "top", k, 0, 0, 0, UINT64_MAX, &u);
		cfg_size_bytes(&c, r, "top", k, 0, 0, 0, UINT64_MAX, &u);
		cfg_enum(&c, r, "top", k, 0, 0, names, &e);
		cfg_hostport(&c, r, "top", k, 0, NULL, 1, host, sizeof(host), &port);
		cfg_obj(&c, r, "top", k, 0);
		cfg_arr(&c, r, "top", k, 0);
	}
	check(!c.failed || strncmp(c.err, "fuzz.yaml", 9) == 0);
	json_doc_free(d);
	return 0;
}
