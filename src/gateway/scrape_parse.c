/*
 * scrape_parse.c — a model server's /metrics page into scrape_values (scrape.h).
 *
 * A vLLM page is ~10-60 KB, mostly histogram buckets the picker never reads,
 * and it is read 10 times a second from every endpoint. So lines are sieved
 * first: only those whose metric name is one we read (the first 8 bytes
 * looked up as one word in a small set, then the name's end and bytes
 * compared) go to core's prom_parse, which does the real parsing (labels, escapes,
 * numbers). A page is garbage when a sieved line does not parse, when a line
 * does not start like a sample or a comment, when it holds a NUL byte, or when
 * no load metric is on it at all (or the configured one is missing).
 *
 * The page may come in pieces as the socket gives them (scrape_parser_*):
 * whole lines are sieved where they are, and only a line cut by the end of a
 * piece is carried over (up to PROM_PARSE_MAX_LINE), so the page itself is
 * never copied. Line ends are found 64 bytes at a time (a bit mask of the
 * newlines of a block, SSE2 on x86-64), not by one memchr call per line: a
 * page is a hundred short lines, and a call per line cost more than the scan.
 */
#include "gateway/scrape.h"
#include "core/prom.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum which { W_KV,
	     W_WAITING,
	     W_RUNNING,
	     W_CACHE_CONFIG,
	     W_GEN_TOKENS,
	     W_LORA,
	     W_METRIC,
	     W_N };

typedef struct known {
	const char *name;
	size_t len;
	int which;
	const char *dialect;
} known;

#define K(name, which, dialect) \
	{ \
		name, sizeof(name) - 1, which, dialect \
	}
static const known table[] = {
	K("vllm:kv_cache_usage_perc", W_KV, "vllm"),
	K("vllm:gpu_cache_usage_perc", W_KV, "vllm"),
	K("vllm:num_requests_waiting", W_WAITING, "vllm"),
	K("vllm:num_requests_running", W_RUNNING, "vllm"),
	K("vllm:cache_config_info", W_CACHE_CONFIG, "vllm"),
	K("vllm:generation_tokens_total", W_GEN_TOKENS, "vllm"),
	K("vllm:lora_requests_info", W_LORA, "vllm"),
	K("sglang:token_usage", W_KV, "sglang"),
	K("sglang:num_queue_reqs", W_WAITING, "sglang"),
	K("sglang:num_running_reqs", W_RUNNING, "sglang"),
	K("llamacpp:kv_cache_usage_ratio", W_KV, "llamacpp"),
	K("llamacpp:requests_deferred", W_WAITING, "llamacpp"),
	K("llamacpp:requests_processing", W_RUNNING, "llamacpp"),
};
#undef K

int scrape_metric_is_kv(const char *metric)
{
	return !metric || !*metric || !strcmp(metric, "kv-cache") || !strcmp(metric, "tpu-cache");
}

#define HEAD_SLOTS 32 /* a power of two, over twice the table */

typedef struct acc {
	double sum[W_N];
	uint32_t count[W_N];
	const char *dialect;
	const char *metric; /* NULL: the KV usage */
	size_t metric_len;
	uint32_t block_size, num_gpu_blocks;
	uint32_t max_lora;
	double lora_ts; /* the value (a time) of the newest lora_requests_info series */
	char lora_running[SCRAPE_LORA_BYTES];
	int kv_prio; /* 2 = kv_cache_usage_perc seen, 1 = older name */
} acc;

/* The first 8 bytes of the names of the table, as words in a small
 * open-addressed set, each with the bits of the table entries it starts: a
 * line whose first 8 bytes are in no slot (histogram buckets, counters: nearly
 * every line of a page) is dropped with one multiply, one load and one
 * compare. It depends on the table alone: one set for the process, filled
 * once, shared by every parser (so it stays in the cache across endpoints). */
typedef struct heads {
	struct {
		uint64_t head;
		unsigned entries;
	} slot[HEAD_SLOTS];
} heads;
static heads the_heads;
static pthread_once_t heads_once = PTHREAD_ONCE_INIT;

/* The table entry for a name of len bytes, or -1 (W_METRIC for the configured one). */
static int lookup(const acc *a, const char *name, size_t len, const char **dialect)
{
	if (a->metric && a->metric_len == len && !memcmp(a->metric, name, len)) {
		*dialect = "custom";
		return W_METRIC;
	}
	for (size_t i = 0; i < ARRAY_LEN(table); i++)
		if (table[i].len == len && !memcmp(table[i].name, name, len)) {
			*dialect = table[i].dialect;
			return table[i].which;
		}
	return -1;
}

static inline uint64_t head8(const char *q)
{
	uint64_t w;
	memcpy(&w, q, sizeof(w));
	return w;
}

static inline unsigned head_slot(uint64_t h)
{
	return (unsigned)((h * 0x9e3779b97f4a7c15ull) >> 59); /* 5 bits: HEAD_SLOTS */
}

/* 1 when the name at q ends after n bytes: '{', a blank or the line end le. */
static inline int name_ends(const char *q, const char *le, size_t n)
{
	size_t room = (size_t)(le - q);
	return n <= room && (n == room || q[n] == '{' || q[n] == ' ' || q[n] == '\t');
}

/* 1 when the sample line at q (up to le) names a metric we read: a name of
 * the table or the configured one, followed by '{', a blank or the end. The
 * cheap test that keeps most lines away from the parser. */
static int wanted(const acc *a, const char *q, const char *le)
{
	const heads *hs = &the_heads;
	size_t m = a->metric_len;
	if (a->metric && *q == *a->metric && name_ends(q, le, m) && !memcmp(q, a->metric, m)) return 1;
	if ((size_t)(le - q) < 8) return 0;
	uint64_t h = head8(q);
	for (unsigned i = head_slot(h);; i = (i + 1) & (HEAD_SLOTS - 1)) {
		if (!hs->slot[i].entries) return 0;
		if (hs->slot[i].head != h) continue;
		for (unsigned hits = hs->slot[i].entries; hits; hits &= hits - 1) {
			unsigned k = (unsigned)__builtin_ctz(hits);
			if (name_ends(q, le, table[k].len) && !memcmp(q, table[k].name, table[k].len)) return 1;
		}
		return 0;
	}
}

/* Fills the_heads, the set of name heads, from the table. */
static void heads_fill(void)
{
	heads *hs = &the_heads;
	memset(hs, 0, sizeof(*hs));
	for (unsigned k = 0; k < ARRAY_LEN(table); k++) {
		uint64_t h = head8(table[k].name); /* every name has 8 bytes */
		unsigned i = head_slot(h);
		while (hs->slot[i].entries && hs->slot[i].head != h) i = (i + 1) & (HEAD_SLOTS - 1);
		hs->slot[i].head = h;
		hs->slot[i].entries |= 1u << k;
	}
}

static int on_sample(void *arg, const prom_sample *s)
{
	acc *a = arg;
	const char *dialect = NULL;
	int w = lookup(a, s->name, strlen(s->name), &dialect);
	if (w < 0 || !isfinite(s->value)) return 0;
	if (w == W_CACHE_CONFIG) {
		const char *bs = prom_sample_label(s, "block_size"), *nb = prom_sample_label(s, "num_gpu_blocks");
		int64_t v;
		if (bs && parse_int64(bs, 1, 1 << 20, &v) == 0) a->block_size = (uint32_t)v;
		if (nb && parse_int64(nb, 1, UINT32_MAX, &v) == 0) a->num_gpu_blocks = (uint32_t)v;
		a->count[w]++;
		return 0;
	}
	if (w == W_LORA) {
		/* One series per label set seen, its value the time it was set: the
		 * newest says what runs now (as the inference extension reads it). */
		if (a->count[w] && s->value < a->lora_ts) return 0;
		const char *run = prom_sample_label(s, "running_lora_adapters"), *ml = prom_sample_label(s, "max_lora");
		int64_t v;
		a->lora_ts = s->value;
		a->max_lora = ml && parse_int64(ml, 0, 1 << 20, &v) == 0 ? (uint32_t)v : 0;
		size_t n = run ? strlen(run) : 0;
		if (n >= sizeof(a->lora_running)) { /* cut at the last whole name */
			n = sizeof(a->lora_running) - 1;
			while (n && run[n] != ',') n--;
		}
		memcpy(a->lora_running, run ? run : "", n);
		a->lora_running[n] = 0;
		a->count[w]++;
		return 0;
	}
	if (w == W_KV) {
		/* vLLM pages of a transition carry both names: the new one wins. */
		int prio = strstr(s->name, "gpu_cache") ? 1 : 2;
		if (prio < a->kv_prio) return 0;
		if (prio > a->kv_prio) {
			a->sum[w] = 0;
			a->count[w] = 0;
			a->kv_prio = prio;
		}
	}
	if (!a->dialect || w != W_METRIC) a->dialect = dialect;
	a->sum[w] += s->value;
	a->count[w]++;
	return 0;
}

/* Parses the gathered lines. Returns 0, or -1 with err. */
static int flush(acc *a, char *sel, size_t *n, char *err, size_t err_len)
{
	if (!*n) return 0;
	char perr[128];
	int rc = prom_parse(sel, *n, on_sample, a, perr, sizeof(perr));
	*n = 0;
	if (rc < 0) {
		snprintf(err, err_len, "not Prometheus text: %s", perr);
		return -1;
	}
	return 0;
}

static double frac(double v) { return v < 0 ? 0 : v > 1 ? 1
							: v; }

/* The incremental parser of scrape.h: the sieve's state between pieces. */
struct scrape_parser {
	/* What every feed touches first, together: a parser is cold when its
	 * endpoint's turn comes (100 endpoints, one page each). */
	acc a;
	int failed; /* sticky: err holds why */
	size_t lines;
	size_t n_sel;
	buf carry; /* a line cut by the end of a piece, capped */
	char err[160];
	char sel[4096]; /* the gathered lines we read, parsed together */
};

/* What a parser needs before its first page, wherever it lives. */
static void parser_init(scrape_parser *sp)
{
	pthread_once(&heads_once, heads_fill);
	buf_init(&sp->carry, PROM_PARSE_MAX_LINE);
}

scrape_parser *scrape_parser_new(void)
{
	scrape_parser *sp = calloc(1, sizeof(*sp));
	if (sp) parser_init(sp);
	return sp;
}

void scrape_parser_free(scrape_parser *sp)
{
	if (!sp) return;
	buf_free(&sp->carry);
	free(sp);
}

void scrape_parser_begin(scrape_parser *sp, const char *metric)
{
	memset(&sp->a, 0, sizeof(sp->a));
	sp->a.metric = scrape_metric_is_kv(metric) ? NULL : metric;
	sp->a.metric_len = sp->a.metric ? strlen(sp->a.metric) : 0;
	sp->failed = 0;
	sp->err[0] = 0;
	sp->lines = sp->n_sel = 0;
	buf_reset(&sp->carry);
}

static int fail(scrape_parser *sp)
{
	sp->failed = 1;
	return -1;
}

/* Gathers a line we read (from its name q to le), or parses it where it is
 * when it does not fit the gathering buffer, so the parser runs once per page. */
static int gather(scrape_parser *sp, const char *q, const char *le)
{
	acc *a = &sp->a;
	size_t ll = (size_t)(le - q);
	if (sp->n_sel + ll + 1 > sizeof(sp->sel) && flush(a, sp->sel, &sp->n_sel, sp->err, sizeof(sp->err)) < 0)
		return fail(sp);
	if (ll + 1 > sizeof(sp->sel)) {
		char perr[128];
		if (prom_parse(q, ll, on_sample, a, perr, sizeof(perr)) != 1) {
			snprintf(sp->err, sizeof(sp->err), "not Prometheus text at line %zu: %s", sp->lines, perr);
			return fail(sp);
		}
		return 0;
	}
	memcpy(sp->sel + sp->n_sel, q, ll);
	sp->n_sel += ll;
	sp->sel[sp->n_sel++] = '\n';
	return 0;
}

/* What the first byte of a line says: a blank (look further), a comment or
 * an empty line (skip), a metric name, or none of these (not Prometheus). */
enum { FIRST_BAD,
       FIRST_BLANK,
       FIRST_SKIP,
       FIRST_NAME };
static const unsigned char first_class[256] = {
	[' '] = FIRST_BLANK,
	['\t'] = FIRST_BLANK,
	['#'] = FIRST_SKIP,
	['\r'] = FIRST_SKIP,
	['a' ... 'z'] = FIRST_NAME,
	['A' ... 'Z'] = FIRST_NAME,
	['_'] = FIRST_NAME,
	[':'] = FIRST_NAME,
};

/* One line [p, le) of the page, without its newline; no is its number (the
 * caller counts in a register and stores sp->lines when it returns). Inline:
 * it runs for every line, and nearly every line ends at its first byte or at
 * wanted(). */
static inline int line(scrape_parser *sp, const char *p, const char *le, size_t no)
{
	if (p == le) return 0;
	int c = first_class[(unsigned char)*p];
	if (c == FIRST_BLANK) {
		while (p < le && (*p == ' ' || *p == '\t')) p++;
		if (p == le) return 0;
		c = first_class[(unsigned char)*p];
	}
	if (c == FIRST_SKIP) return 0;
	if (c == FIRST_NAME) {
		if (!wanted(&sp->a, p, le)) return 0;
		sp->lines = no; /* for gather's messages */
		return gather(sp, p, le);
	}
	snprintf(sp->err, sizeof(sp->err), "not Prometheus text at line %zu", no);
	return fail(sp);
}

/* Bit i set where q[i] is a newline, for the 64 bytes at q. */
static inline uint64_t newlines64(const char *q)
{
#if defined(__SSE2__)
	const __m128i nl = _mm_set1_epi8('\n');
	const __m128i *v = (const __m128i *)(const void *)q;
	uint64_t m0 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v), nl));
	uint64_t m1 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 1), nl));
	uint64_t m2 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 2), nl));
	uint64_t m3 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 3), nl));
	return m0 | m1 << 16 | m2 << 32 | m3 << 48;
#else
	uint64_t m = 0;
	for (int i = 0; i < 64; i++) m |= (uint64_t)(q[i] == '\n') << i;
	return m;
#endif
}

int scrape_parser_feed(scrape_parser *sp, const char *data, size_t len)
{
	if (sp->failed) return -1;
	if (memchr(data, 0, len)) {
		snprintf(sp->err, sizeof(sp->err), "not Prometheus text (a NUL byte)");
		return fail(sp);
	}
	const char *p = data, *end = data + len;
	size_t no = sp->lines; /* lines done */
	int rc = 0;
	if (buf_rlen(&sp->carry)) {
		/* The end of the line the last piece cut. */
		const char *nl = memchr(p, '\n', len);
		const char *le = nl ? nl : end;
		if (buf_append(&sp->carry, p, (size_t)(le - p)) < 0) {
			snprintf(sp->err, sizeof(sp->err), "not Prometheus text at line %zu: line too long", no + 1);
			return fail(sp);
		}
		if (!nl) return 0;
		if (line(sp, buf_rptr(&sp->carry), buf_rptr(&sp->carry) + buf_rlen(&sp->carry), ++no) < 0) goto out_fail;
		buf_reset(&sp->carry);
		p = nl + 1;
	}
	/* Whole 64-byte blocks: every newline of a block from one mask. */
	const char *ls = p; /* the current line's start */
	for (; end - p >= 64; p += 64) {
		for (uint64_t m = newlines64(p); m; m &= m - 1) {
			const char *nl = p + __builtin_ctzll(m);
			if (line(sp, ls, nl, ++no) < 0) goto out_fail;
			ls = nl + 1;
		}
	}
	for (p = ls; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			if (buf_append(&sp->carry, p, (size_t)(end - p)) < 0) {
				snprintf(sp->err, sizeof(sp->err), "not Prometheus text at line %zu: line too long", no + 1);
				rc = fail(sp);
			}
			break;
		}
		if (line(sp, p, nl, ++no) < 0) goto out_fail;
		p = nl + 1;
	}
	sp->lines = no;
	return rc;
out_fail:
	sp->lines = no;
	return -1;
}

int scrape_parser_end(scrape_parser *sp, scrape_values *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->dialect = "";
	acc *ap = &sp->a;
	if (!sp->failed && buf_rlen(&sp->carry)) /* the last line, without a newline */
		line(sp, buf_rptr(&sp->carry), buf_rptr(&sp->carry) + buf_rlen(&sp->carry), ++sp->lines);
	buf_reset(&sp->carry);
	if (!sp->failed && flush(ap, sp->sel, &sp->n_sel, sp->err, sizeof(sp->err)) < 0) sp->failed = 1;
	if (sp->failed) {
		snprintf(err, err_len, "%s", sp->err);
		return -1;
	}
	const acc a = *ap;
	if (a.count[W_KV]) {
		out->kv_usage = frac(a.sum[W_KV] / a.count[W_KV]);
		out->has |= SCRAPE_HAS_KV;
	}
	if (a.count[W_WAITING]) {
		out->waiting = a.sum[W_WAITING] < 0 ? 0 : a.sum[W_WAITING];
		out->has |= SCRAPE_HAS_WAITING;
	}
	if (a.count[W_RUNNING]) {
		out->running = a.sum[W_RUNNING] < 0 ? 0 : a.sum[W_RUNNING];
		out->has |= SCRAPE_HAS_RUNNING;
	}
	if (a.count[W_CACHE_CONFIG] && (a.block_size || a.num_gpu_blocks)) {
		out->block_size = a.block_size;
		out->num_gpu_blocks = a.num_gpu_blocks;
		out->has |= SCRAPE_HAS_CACHE_CONFIG;
	}
	if (a.count[W_GEN_TOKENS] && a.sum[W_GEN_TOKENS] >= 0) {
		out->generation_tokens_total = a.sum[W_GEN_TOKENS];
		out->has |= SCRAPE_HAS_GEN_TOKENS;
	}
	if (a.count[W_LORA]) {
		out->max_lora = a.max_lora;
		memcpy(out->lora_running, a.lora_running, sizeof(out->lora_running));
		out->has |= SCRAPE_HAS_LORA;
	}
	if (a.metric) {
		if (a.count[W_METRIC]) {
			out->metric = frac(a.sum[W_METRIC] / a.count[W_METRIC]);
			out->has |= SCRAPE_HAS_METRIC;
		}
	} else if (out->has & SCRAPE_HAS_KV) {
		out->metric = out->kv_usage;
		out->has |= SCRAPE_HAS_METRIC;
	}
	out->dialect = a.dialect ? a.dialect : "";
	if (a.metric && !(out->has & SCRAPE_HAS_METRIC)) {
		snprintf(err, err_len, "the balancing metric %.96s is not on the page", a.metric);
		return -1;
	}
	/* Newer llama.cpp has no KV gauge: its queue gauges alone will do. */
	if (!(out->has & (SCRAPE_HAS_KV | SCRAPE_HAS_WAITING | SCRAPE_HAS_RUNNING | SCRAPE_HAS_METRIC))) {
		snprintf(err, err_len, "no load metric on the page (vLLM, SGLang or llama.cpp names)");
		return -1;
	}
	return 0;
}

int scrape_parse(const char *text, size_t len, const char *metric, scrape_values *out, char *err, size_t err_len)
{
	scrape_parser sp;
	parser_init(&sp);
	scrape_parser_begin(&sp, metric);
	scrape_parser_feed(&sp, text, len);
	int rc = scrape_parser_end(&sp, out, err, err_len);
	buf_free(&sp.carry);
	return rc;
}
