/*
 * sim_lora.c — the adapters of sim_lora.h.
 */
#include "sim/sim_lora.h"
#include "core/openai_api.h"

#include <stdio.h>
#include <string.h>

int sim_lora_parse(sim_lora *l, char *s, char *err, size_t err_len)
{
	char *save = NULL;
	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!*tok) continue;
		if (l->n == SIM_MAX_LORAS) {
			snprintf(err, err_len, "--lora-adapters: at most %d adapters", SIM_MAX_LORAS);
			return -1;
		}
		for (const char *p = tok; *p; p++)
			if (*p == '"' || *p == '\\' || *p == '\n' || (unsigned char)*p < 0x20) {
				snprintf(err, err_len, "--lora-adapters: \"%s\" is not a usable name", tok);
				return -1;
			}
		l->names[l->n++] = tok;
	}
	return 0;
}

const char *sim_lora_find(const sim_lora *l, const char *model)
{
	for (size_t i = 0; model && i < l->n; i++)
		if (!strcmp(l->names[i], model)) return l->names[i];
	return NULL;
}

static size_t n_loaded(const sim_lora *l)
{
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) k += l->loaded[i] != 0;
	return k;
}

int sim_lora_begin(sim_lora *l, const char *model, double *load_ms)
{
	*load_ms = 0;
	int i = -1;
	for (size_t k = 0; model && k < l->n; k++)
		if (!strcmp(l->names[k], model)) i = (int)k;
	if (i < 0) return -1;
	if (!l->loaded[i]) {
		uint32_t slots = l->max_loras ? l->max_loras : 1;
		while (n_loaded(l) >= slots) { /* evict: an idle one first, the least recently used */
			int victim = -1;
			for (size_t k = 0; k < l->n; k++) {
				if (!l->loaded[k]) continue;
				if (victim < 0 || (l->running[k] == 0) > (l->running[victim] == 0) ||
				    ((l->running[k] == 0) == (l->running[victim] == 0) && l->used_seq[k] < l->used_seq[victim]))
					victim = (int)k;
			}
			l->loaded[victim] = 0;
		}
		l->loaded[i] = 1;
		l->loads_total++;
		*load_ms = l->load_ms;
	}
	l->running[i]++;
	l->used_seq[i] = ++l->seq;
	return i;
}

void sim_lora_end(sim_lora *l, int i)
{
	if (i >= 0 && (size_t)i < l->n && l->running[i]) l->running[i]--;
}

void sim_lora_write_cards(const sim_lora *l, json_w *w, const char *base, int64_t created, int64_t max_model_len)
{
	for (size_t i = 0; i < l->n; i++) {
		char root[256];
		snprintf(root, sizeof(root), "/adapters/%s", l->names[i]);
		oai_write_model_parent_begin(w, l->names[i], "vllm", root, base, created);
		jw_key(w, "max_model_len");
		jw_null(w); /* vLLM shows none for an adapter */
		jw_key(w, "permission");
		jw_arr_begin(w);
		jw_arr_end(w);
		jw_obj_end(w);
	}
}

void sim_lora_write_metric(const sim_lora *l, buf *out, double now_s)
{
	if (!l->n) return;
	buf_puts(out, "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
		      "# TYPE vllm:lora_requests_info gauge\n");
	buf_printf(out, "vllm:lora_requests_info{max_lora=\"%u\",running_lora_adapters=\"", l->max_loras ? l->max_loras : 1);
	int first = 1;
	for (size_t i = 0; i < l->n; i++)
		if (l->running[i]) {
			buf_printf(out, "%s%s", first ? "" : ",", l->names[i]);
			first = 0;
		}
	buf_printf(out, "\",waiting_lora_adapters=\"\"} %.3f\n", now_s);
}
