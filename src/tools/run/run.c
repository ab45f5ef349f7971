/*
 * run.c — infergate-run: generate from the command line, as llama2.c's run
 * does: load a model folder, encode a prompt (or render it as a chat turn),
 * prefill it, then sample and stream text to stdout token by token; the speed
 * goes to stderr.
 *
 *   infergate-run --model DIR [--prompt TEXT | --chat TEXT] [--max-tokens N]
 *                 [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--seed N]
 *                 [--logprobs K] [--json] [--threads N] [--ignore-eos]
 *   infergate-run --model DIR --tokenize TEXT      ids as a JSON array
 *
 * Sampling defaults come from generation_config.json (greedy when it says
 * do_sample false or is absent). --json prints one JSON object at the end
 * instead of streaming: the text, and every token with its log-probability
 * and the top --logprobs alternatives.
 *
 * Test and benchmark hooks (no tokenizer needed):
 *   --replay FILE --dump-logits OUT   runs the steps of FILE, a JSON object
 *       {"steps": [[{"seq": 0, "tokens": [ids], "logits": true}, ...], ...]},
 *       sequences created on first use; writes every requested logits row to
 *       OUT as little-endian f32, in order.
 *   --bench B [--bench-prompt N] [--bench-gen N]   B sequences of N random
 *       prompt ids prefilled together, then decoded together; prints one JSON
 *       line of timings.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/chat_template.h"
#include "infer/engine.h"
#include "infer/sampler.h"
#include "infer/tokenizer.h"

enum { MAX_PROMPT_BYTES = 1 << 20 };

typedef struct opts {
	const char *model, *prompt, *chat, *tokenize, *replay, *dump, *kernels, *quantization, *kv_cache_dtype;
	int max_tokens, top_k, logprobs, json, threads, ignore_eos, no_bos, no_repack, bench, bench_prompt, bench_gen;
	int max_model_len;
	float temperature, top_p, min_p;
	int have_temp, have_top_k, have_top_p, have_min_p, have_seed;
	uint64_t seed;
} opts;

static void usage(void)
{
	fprintf(stderr,
		"usage: infergate-run --model DIR [--prompt TEXT | --chat TEXT | --tokenize TEXT]\n"
		"         [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--min-p P]\n"
		"         [--seed N] [--logprobs K] [--json] [--threads N] [--ignore-eos] [--no-bos]\n"
		"         [--max-model-len N] [--kernels portable|avx2|avx512] [--quantization q8_0|q4_0]\n"
		"         [--kv-cache-dtype auto|bf16|f32] [--no-repack]\n"
		"       infergate-run --model DIR --replay FILE --dump-logits OUT\n"
		"       infergate-run --model DIR --bench B [--bench-prompt N] [--bench-gen N]\n");
}

static int parse_args(opts *o, int argc, char **argv)
{
	*o = (opts){.max_tokens = 128, .logprobs = -1, .bench_prompt = 128, .bench_gen = 32};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n;
#define STR(flag, field) \
	if (strcmp(a, flag) == 0 && v) { \
		o->field = v; \
		i++; \
		continue; \
	}
#define INT(flag, field, lo, hi) \
	if (strcmp(a, flag) == 0) { \
		if (!v || parse_int64(v, lo, hi, &n) < 0) { \
			fprintf(stderr, "infergate-run: %s needs an integer in [%lld, %lld]\n", flag, (long long)(lo), (long long)(hi)); \
			return -1; \
		} \
		o->field = (int)n; \
		i++; \
		continue; \
	}
#define FLT(flag, field, have) \
	if (strcmp(a, flag) == 0 && v) { \
		char *end; \
		o->field = strtof(v, &end); \
		o->have = 1; \
		if (*end || !isfinite(o->field)) { \
			fprintf(stderr, "infergate-run: %s needs a number\n", flag); \
			return -1; \
		} \
		i++; \
		continue; \
	}
		STR("--model", model)
		STR("--prompt", prompt)
		/* clang-format off */
		STR("--chat", chat) STR("--tokenize", tokenize)
			/* clang-format on */
			STR("--replay", replay) STR("--dump-logits", dump) STR("--kernels", kernels)
				STR("--quantization", quantization) STR("--kv-cache-dtype", kv_cache_dtype)
					INT("--max-tokens", max_tokens, 0, 1 << 20) INT("--logprobs", logprobs, 0, SAMPLER_MAX_TOP_LOGPROBS)
						INT("--threads", threads, 1, 256) INT("--bench", bench, 1, 256)
							INT("--bench-prompt", bench_prompt, 1, 1 << 16) INT("--bench-gen", bench_gen, 1, 1 << 16)
								INT("--max-model-len", max_model_len, 1, 1 << 30)
									FLT("--temperature", temperature, have_temp) FLT("--top-p", top_p, have_top_p)
										FLT("--min-p", min_p, have_min_p) if (strcmp(a, "--top-k") == 0)
		{
			if (!v || parse_int64(v, -1, 1 << 30, &n) < 0) {
				fprintf(stderr, "infergate-run: --top-k needs an integer\n");
				return -1;
			}
			o->top_k = (int)n;
			o->have_top_k = 1;
			i++;
			continue;
		}
		if (strcmp(a, "--seed") == 0) {
			if (!v || parse_int64(v, 0, INT64_MAX, &n) < 0) {
				fprintf(stderr, "infergate-run: --seed needs an integer\n");
				return -1;
			}
			o->seed = (uint64_t)n;
			o->have_seed = 1;
			i++;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strcmp(a, "--ignore-eos") == 0) {
			o->ignore_eos = 1;
			continue;
		}
		if (strcmp(a, "--no-bos") == 0) {
			o->no_bos = 1;
			continue;
		}
		if (strcmp(a, "--no-repack") == 0) {
			o->no_repack = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			exit(0);
		}
		fprintf(stderr, "infergate-run: unknown or incomplete argument %s\n", a);
		return -1;
	}
	if (!o->model) {
		usage();
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ replay (tests) */

static int replay(engine *e, const char *path, const char *dump)
{
	char why[512];
	size_t len;
	char *text = util_read_file(path, 64 << 20, &len, why, sizeof why);
	if (!text) {
		fprintf(stderr, "infergate-run: %s\n", why);
		return 1;
	}
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	free(text);
	const json_val *steps = json_get(json_root(doc), "steps");
	if (!json_is(steps, JSON_ARRAY)) {
		fprintf(stderr, "infergate-run: %s: no steps array\n", path);
		json_doc_free(doc);
		return 1;
	}
	FILE *out = fopen(dump, "wb");
	if (!out) {
		fprintf(stderr, "infergate-run: cannot write %s\n", dump);
		json_doc_free(doc);
		return 1;
	}
	kv_cache *kv = engine_kv_cache(e);
	int V = engine_vocab(e), rc = 0;
	enum { MAXS = 64,
	       MAXT = 4096 };
	int seq_of[MAXS];
	for (int i = 0; i < MAXS; i++) seq_of[i] = -1;
	engine_item items[MAXS];
	static int32_t toks[MAXS][MAXT];
	float *logits = malloc((size_t)MAXS * (size_t)V * sizeof(float));
	char err[256];
	for (size_t s = 0; s < json_count(steps) && rc == 0 && logits; s++) {
		const json_val *st = json_at(steps, s);
		int ni = 0;
		for (size_t k = 0; k < json_count(st) && ni < MAXS; k++) {
			const json_val *it = json_at(st, k), *tk = json_get(it, "tokens");
			int id = (int)json_num(json_get(it, "seq"), -1);
			if (id < 0 || id >= MAXS || json_count(tk) > MAXT) {
				rc = 1;
				break;
			}
			if (seq_of[id] < 0) seq_of[id] = kv_seq_new(kv, NULL, 0, NULL);
			items[ni] = (engine_item){.seq = seq_of[id]};
			items[ni].n_tokens = (int)json_count(tk);
			for (size_t t = 0; t < json_count(tk); t++) toks[ni][t] = (int32_t)json_num(json_at(tk, t), 0);
			items[ni].tokens = toks[ni];
			items[ni].logits = json_bool(json_get(it, "logits"), 0) ? logits + (size_t)ni * V : NULL;
			ni++;
		}
		if (rc) {
			fprintf(stderr, "infergate-run: %s: bad step %zu\n", path, s);
			break;
		}
		if (engine_step(e, items, ni, err, sizeof err) != ENGINE_OK) {
			fprintf(stderr, "infergate-run: step %zu: %s\n", s, err);
			rc = 1;
			break;
		}
		for (int k = 0; k < ni; k++)
			if (items[k].logits && fwrite(items[k].logits, sizeof(float), (size_t)V, out) != (size_t)V) rc = 1;
	}
	if (fclose(out) != 0) rc = 1;
	free(logits);
	json_doc_free(doc);
	return rc;
}

/* ------------------------------------------------------------ bench */

static void peak_rss(long *hwm_kb, long *rss_kb)
{
	*hwm_kb = *rss_kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) return;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmHWM:", 6) == 0) *hwm_kb = strtol(line + 6, NULL, 10);
		if (strncmp(line, "VmRSS:", 6) == 0) *rss_kb = strtol(line + 6, NULL, 10);
	}
	fclose(f);
}

/* The first index of the largest of l[0..n), n >= 1: the maximum in 8
 * independent lanes (the compiler makes them one vector), then its first
 * place. A dependent compare chain over 262144 logits cost ~1 ms a token. */
static int argmax(const float *l, int n)
{
	float m[8];
	for (int j = 0; j < 8; j++) m[j] = l[0];
	int v = 0;
	for (; v + 8 <= n; v += 8)
		for (int j = 0; j < 8; j++) m[j] = l[v + j] > m[j] ? l[v + j] : m[j];
	for (; v < n; v++) m[0] = l[v] > m[0] ? l[v] : m[0];
	float mx = m[0];
	for (int j = 1; j < 8; j++) mx = m[j] > mx ? m[j] : mx;
	for (v = 0; v < n; v++)
		if (l[v] == mx) return v;
	return 0;
}

static int bench(engine *e, int B, int P, int G)
{
	kv_cache *kv = engine_kv_cache(e);
	int V = engine_vocab(e);
	int chunk = engine_get_options(e)->max_batch_tokens;
	int32_t *prompt = malloc((size_t)B * (size_t)P * sizeof *prompt);
	int32_t *next = malloc((size_t)B * sizeof *next);
	float *logits = malloc((size_t)B * (size_t)V * sizeof *logits);
	engine_item *items = calloc((size_t)B, sizeof *items);
	int *seqs = malloc((size_t)B * sizeof *seqs);
	char err[256];
	if (!prompt || !next || !logits || !items || !seqs) {
		fprintf(stderr, "infergate-run: out of memory\n");
		return 1;
	}
	uint64_t x = 12345;
	for (int i = 0; i < B * P; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		prompt[i] = (int32_t)(3 + (x >> 33) % (uint64_t)(V - 3));
	}
	/* warm-up: one token through a throwaway sequence maps every weight page
	 * (first-touch faults are load cost, not prefill speed) */
	int warm = kv_seq_new(kv, NULL, 0, NULL);
	engine_item wi = {warm, prompt, 1, logits};
	if (warm < 0 || engine_step(e, &wi, 1, err, sizeof err) != ENGINE_OK) {
		fprintf(stderr, "infergate-run: warm-up step failed\n");
		return 1;
	}
	kv_seq_free(kv, warm);
	for (int b = 0; b < B; b++) seqs[b] = kv_seq_new(kv, NULL, 0, NULL);
	/* prefill: every sequence's prompt, packed into steps of at most `chunk` tokens */
	uint64_t t0 = time_mono_ns();
	int done[256] = {0};
	for (;;) {
		int ni = 0, room = chunk;
		for (int b = 0; b < B && room > 0; b++) {
			if (done[b] == P) continue;
			int n = P - done[b] < room ? P - done[b] : room;
			items[ni] = (engine_item){seqs[b], prompt + (size_t)b * P + done[b], n,
						  done[b] + n == P ? logits + (size_t)b * V : NULL};
			done[b] += n;
			room -= n;
			ni++;
		}
		if (ni == 0) break;
		if (engine_step(e, items, ni, err, sizeof err) != ENGINE_OK) {
			fprintf(stderr, "infergate-run: %s\n", err);
			return 1;
		}
	}
	uint64_t t1 = time_mono_ns();
	for (int g = 0; g < G; g++) {
		for (int b = 0; b < B; b++) {
			next[b] = argmax(logits + (size_t)b * V, V);
			items[b] = (engine_item){seqs[b], &next[b], 1, logits + (size_t)b * V};
		}
		if (engine_step(e, items, B, err, sizeof err) != ENGINE_OK) {
			fprintf(stderr, "infergate-run: %s\n", err);
			return 1;
		}
	}
	uint64_t t2 = time_mono_ns();
	long hwm, rss;
	peak_rss(&hwm, &rss);
	double pf = (double)(t1 - t0) / 1e9, dc = (double)(t2 - t1) / 1e9;
	printf("{\"batch\":%d,\"prompt_tokens\":%d,\"gen_tokens\":%d,\"threads\":%d,\"kernels\":\"%s\","
	       "\"prefill_s\":%.4f,\"prefill_tok_s\":%.1f,\"decode_s\":%.4f,\"decode_tok_s\":%.2f,"
	       "\"decode_step_ms\":%.3f,\"step_weight_bytes\":%" PRIu64 ",\"vm_hwm_kb\":%ld,\"vm_rss_kb\":%ld}\n",
	       B, P, G, engine_threads(e), engine_kernels(e), pf, (double)B * P / pf, dc, (double)B * G / dc,
	       dc * 1e3 / G, engine_step_weight_bytes(e), hwm, rss);
	for (int b = 0; b < B; b++) kv_seq_free(kv, seqs[b]);
	free(prompt);
	free(next);
	free(logits);
	free(items);
	free(seqs);
	return 0;
}

/* ------------------------------------------------------------ generate */

static int is_stop(const model_generation *g, int32_t id)
{
	for (int i = 0; i < g->n_eos; i++)
		if (g->eos_ids[i] == id) return 1;
	return 0;
}

/* Writes the prompt's ids into *ids (malloc'd). Returns the count or -1. */
static long encode_prompt(const tokenizer *tok, const opts *o, int32_t **ids)
{
	buf text;
	buf_init(&text, MAX_PROMPT_BYTES * 2);
	int add_bos = !o->no_bos;
	if (o->chat) {
		buf mj;
		buf_init(&mj, MAX_PROMPT_BYTES * 2);
		json_w w;
		jw_init(&w, &mj);
		jw_arr_begin(&w);
		jw_obj_begin(&w);
		jw_key(&w, "role");
		jw_str(&w, "user");
		jw_key(&w, "content");
		jw_str(&w, o->chat);
		jw_obj_end(&w);
		jw_arr_end(&w);
		json_doc *doc = json_parse(buf_rptr(&mj), buf_rlen(&mj), 0, NULL);
		char err[256];
		int rc = doc ? chat_render(json_root(doc), 1, 0, &text, err, sizeof err) : -1;
		json_doc_free(doc);
		buf_free(&mj);
		if (rc < 0) {
			fprintf(stderr, "infergate-run: chat template: %s\n", doc ? err : "bad message");
			buf_free(&text);
			return -1;
		}
		add_bos = 0; /* the template starts with <bos> */
	} else if (buf_puts(&text, o->prompt ? o->prompt : "") < 0) {
		fprintf(stderr, "infergate-run: prompt too long\n");
		buf_free(&text);
		return -1;
	}
	size_t len = buf_rlen(&text), cap = 3 * len + 2, n = 0;
	*ids = malloc(cap * sizeof **ids);
	if (!*ids || tokenizer_encode(tok, buf_rptr(&text), len, add_bos, *ids, cap, &n) < 0) {
		fprintf(stderr, "infergate-run: cannot encode the prompt\n");
		buf_free(&text);
		return -1;
	}
	buf_free(&text);
	return (long)n;
}

static int generate(engine *e, tokenizer *tok, const opts *o)
{
	const model *m = engine_model(e);
	kv_cache *kv = engine_kv_cache(e);
	int V = engine_vocab(e), rc = 1;
	int32_t *ids = NULL;
	long n = encode_prompt(tok, o, &ids);
	if (n < 0) return 1;
	if (n == 0) {
		fprintf(stderr, "infergate-run: empty prompt\n");
		free(ids);
		return 1;
	}
	int max_len = engine_get_options(e)->max_model_len;
	if (n >= max_len) {
		fprintf(stderr, "infergate-run: prompt of %ld tokens does not fit max_model_len %d\n", n, max_len);
		free(ids);
		return 1;
	}

	sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = m->gen.do_sample ? m->gen.temperature : 0;
	sp.top_k = m->gen.do_sample ? m->gen.top_k : 0;
	sp.top_p = m->gen.do_sample ? m->gen.top_p : 1;
	sp.min_p = m->gen.do_sample ? m->gen.min_p : 0;
	if (o->have_temp) sp.temperature = o->temperature;
	if (o->have_top_k) sp.top_k = o->top_k;
	if (o->have_top_p) sp.top_p = o->top_p;
	if (o->have_min_p) sp.min_p = o->min_p;
	sampler_rng rng;
	if (o->have_seed) sampler_rng_seed(&rng, o->seed);
	else sampler_rng_seed_random(&rng);
	sampler *smp = sampler_new((size_t)V);
	float *logits = malloc((size_t)V * sizeof *logits);
	int max_gen = o->max_tokens;
	if (max_gen > max_len - n) max_gen = (int)(max_len - n);
	sampler_result *res = calloc((size_t)max_gen + 1, sizeof *res);
	buf out, js;
	buf_init(&out, 0);
	buf_init(&js, 0);
	tok_stream ts;
	tok_stream_init(&ts, tok, 1);
	char err[256];
	if (!smp || !logits || !res) {
		fprintf(stderr, "infergate-run: out of memory\n");
		goto done;
	}

	int seq = kv_seq_new(kv, ids, (int)n, NULL);
	int chunk = engine_get_options(e)->max_batch_tokens;
	uint64_t t0 = time_mono_ns(), t1 = 0;
	for (long at = kv_seq_len(kv, seq); at < n; at += chunk) {
		int len = n - at < chunk ? (int)(n - at) : chunk;
		engine_item it = {seq, ids + at, len, at + len == n ? logits : NULL};
		if (engine_step(e, &it, 1, err, sizeof err) != ENGINE_OK) {
			fprintf(stderr, "infergate-run: %s\n", err);
			goto done;
		}
	}
	t1 = time_mono_ns();
	int gen = 0;
	const char *finish = "length";
	while (gen < max_gen) {
		sampler_result *r = &res[gen];
		if (sampler_sample(smp, logits, (size_t)V, &sp, &rng, o->logprobs, r) < 0) {
			fprintf(stderr, "infergate-run: sampling failed\n");
			goto done;
		}
		gen++;
		if (!o->ignore_eos && is_stop(&m->gen, r->id)) {
			finish = "stop";
			break;
		}
		if (!o->json) {
			buf_reset(&out);
			tok_stream_push(&ts, r->id, &out);
			fwrite(buf_rptr(&out), 1, buf_rlen(&out), stdout);
			fflush(stdout);
		}
		if (gen == max_gen) break;
		engine_item it = {seq, &r->id, 1, logits};
		if (engine_step(e, &it, 1, err, sizeof err) != ENGINE_OK) {
			fprintf(stderr, "infergate-run: %s\n", err);
			goto done;
		}
	}
	uint64_t t2 = time_mono_ns();
	if (!o->json) {
		buf_reset(&out);
		tok_stream_flush(&ts, &out);
		fwrite(buf_rptr(&out), 1, buf_rlen(&out), stdout);
		printf("\n");
	} else {
		json_w w;
		jw_init(&w, &js);
		jw_obj_begin(&w);
		buf_reset(&out);
		for (int i = 0; i < gen; i++) {
			if (!o->ignore_eos && is_stop(&m->gen, res[i].id)) break;
			tokenizer_decode(tok, &res[i].id, 1, 1, &out);
		}
		jw_key(&w, "text");
		jw_strn(&w, buf_rptr(&out), buf_rlen(&out));
		jw_key(&w, "finish_reason");
		jw_str(&w, finish);
		jw_key(&w, "prompt_tokens");
		jw_int(&w, n);
		jw_key(&w, "completion_tokens");
		jw_int(&w, gen);
		jw_key(&w, "tokens");
		jw_arr_begin(&w);
		for (int i = 0; i < gen; i++) {
			jw_obj_begin(&w);
			jw_key(&w, "id");
			jw_int(&w, res[i].id);
			buf_reset(&out);
			tokenizer_decode(tok, &res[i].id, 1, 0, &out);
			jw_key(&w, "text");
			jw_strn(&w, buf_rptr(&out), buf_rlen(&out));
			if (o->logprobs >= 0) {
				jw_key(&w, "logprob");
				jw_double(&w, res[i].logprob);
				jw_key(&w, "top_logprobs");
				jw_arr_begin(&w);
				for (int k = 0; k < res[i].n_top; k++) {
					jw_obj_begin(&w);
					jw_key(&w, "id");
					jw_int(&w, res[i].top[k].id);
					buf_reset(&out);
					tokenizer_decode(tok, &res[i].top[k].id, 1, 0, &out);
					jw_key(&w, "text");
					jw_strn(&w, buf_rptr(&out), buf_rlen(&out));
					jw_key(&w, "logprob");
					jw_double(&w, res[i].top[k].logprob);
					jw_obj_end(&w);
				}
				jw_arr_end(&w);
			}
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
		printf("%s\n", buf_rptr(&js));
	}
	double pf = (double)(t1 - t0) / 1e9, dc = (double)(t2 - t1) / 1e9;
	fprintf(stderr, "prompt %ld tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s); %d threads, %s kernels\n",
		n, pf, n / (pf > 0 ? pf : 1e-9), gen, dc, gen / (dc > 0 ? dc : 1e-9), engine_threads(e), engine_kernels(e));
	kv_seq_free(kv, seq);
	rc = 0;
done:
	buf_free(&out);
	buf_free(&js);
	free(res);
	free(logits);
	sampler_free(smp);
	free(ids);
	return rc;
}

int main(int argc, char **argv)
{
	opts o;
	if (parse_args(&o, argc, argv) < 0) return 2;
	char err[512];
	if (o.tokenize) {
		tokenizer *tok = tokenizer_load(o.model, err, sizeof err);
		if (!tok) {
			fprintf(stderr, "infergate-run: %s\n", err);
			return 1;
		}
		size_t len = strlen(o.tokenize), cap = 3 * len + 2, n = 0;
		int32_t *ids = malloc(cap * sizeof *ids);
		if (!ids || tokenizer_encode(tok, o.tokenize, len, !o.no_bos, ids, cap, &n) < 0) {
			fprintf(stderr, "infergate-run: cannot encode\n");
			free(ids);
			tokenizer_free(tok);
			return 1;
		}
		printf("[");
		for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
		printf("]\n");
		free(ids);
		tokenizer_free(tok);
		return 0;
	}
	engine_options eo = {.threads = o.threads, .max_model_len = o.max_model_len, .kernels = o.kernels, .quantization = o.quantization, .kv_cache_dtype = o.kv_cache_dtype, .no_repack = o.no_repack, .max_seqs = o.bench > 0 ? o.bench : 64};
	if (o.bench > 0) eo.num_kv_blocks = o.bench * ((o.bench_prompt + o.bench_gen) / KV_BLOCK_TOKENS + 2);
	uint64_t t0 = time_mono_ns();
	engine *e = engine_load(o.model, &eo, err, sizeof err);
	if (!e) {
		fprintf(stderr, "infergate-run: %s\n", err);
		return 1;
	}
	double load_s = (double)(time_mono_ns() - t0) / 1e9;
	int rc;
	if (o.replay) {
		rc = o.dump ? replay(e, o.replay, o.dump) : (fprintf(stderr, "infergate-run: --replay needs --dump-logits\n"), 2);
	} else if (o.bench > 0) {
		fprintf(stderr, "loaded in %.3f s\n", load_s);
		rc = bench(e, o.bench, o.bench_prompt, o.bench_gen);
	} else {
		tokenizer *tok = tokenizer_load(o.model, err, sizeof err);
		if (!tok) {
			fprintf(stderr, "infergate-run: %s\n", err);
			engine_free(e);
			return 1;
		}
		if (o.chat && chat_template_check_dir(o.model, err, sizeof err) < 0) {
			fprintf(stderr, "infergate-run: %s\n", err);
			rc = 1;
		} else {
			rc = generate(e, tok, &o);
		}
		tokenizer_free(tok);
	}
	engine_free(e);
	return rc;
}
