/*
 * rewrite.c — the choice and the body of rewrite.h.
 */
#include "gateway/rewrite.h"
#include "core/json.h"

#include <string.h>

const gw_rewrite_cfg *rewrite_find(const gw_config *cfg, const char *model)
{
	for (size_t i = 0; i < cfg->n_rewrites; i++)
		if (!strcmp(cfg->rewrites[i].model, model)) return &cfg->rewrites[i];
	return NULL;
}

size_t rewrite_pick(const gw_rewrite_cfg *rw, uint64_t session, uint64_t seq)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < rw->n_targets; i++) sum += rw->weights[i];
	if (!sum) return 0;
	uint64_t point;
	if (session) {
		point = session % sum;
	} else {
		double f = (double)seq * 0.6180339887498949;
		f -= (double)(uint64_t)f;
		point = (uint64_t)(f * (double)sum);
		if (point >= sum) point = sum - 1;
	}
	for (size_t i = 0; i < rw->n_targets; i++) {
		if (point < rw->weights[i]) return i;
		point -= rw->weights[i];
	}
	return rw->n_targets - 1;
}

int rewrite_body(buf *out, const char *body, size_t len, size_t at, size_t vlen, const char *model,
		 size_t object_at, const char *insert)
{
	buf_reset(out);
	if (!model) at = len, vlen = 0;
	if (at > len || vlen > len - at) return -1;
	if (insert && (object_at >= at || object_at >= len || body[object_at] != '{')) return -1;
	int rc = 0;
	size_t from = 0;
	if (insert) {
		rc |= buf_append(out, body, object_at + 1);
		/* "{}" takes no comma after the member */
		size_t k = object_at + 1;
		while (k < len && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r' || body[k] == '\n')) k++;
		size_t il = strlen(insert);
		rc |= buf_append(out, insert, k < len && body[k] == '}' ? il - 1 : il);
		from = object_at + 1;
	}
	rc |= buf_append(out, body + from, at - from);
	if (model) {
		json_w w;
		jw_init(&w, out);
		jw_str(&w, model);
		rc |= w.error ? -1 : 0;
	}
	rc |= buf_append(out, body + at + vlen, len - at - vlen);
	return rc ? -1 : 0;
}
