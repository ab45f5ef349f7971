/*
 * bench_workload.c — request bodies for infergate-bench (see bench_workload.h).
 *
 * random:        one user message (or prompt) of input_len ± jitter words;
 *                max_tokens = output_len ± jitter and ignore_eos so the server
 *                generates exactly that many tokens.
 * shared-prefix: G groups, each with its own system prompt of system_len
 *                characters; U users per group; T turns per user. Users start
 *                in a seeded shuffled order; a user whose turn finished goes to
 *                the back of the ready queue with its next turn, which carries
 *                system, every earlier user turn and every earlier answer.
 * file:          JSONL, one body object a line; fields the line lacks (model,
 *                stream, stream_options, max_tokens, temperature) are filled
 *                from the flags, fields it has are sent as they are.
 */
#include "bench/bench_workload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_rng.h"
#include "core/json.h"
#include "core/util.h"

static const char *const wl_vocab[] = {
	"the",
	"of",
	"and",
	"to",
	"in",
	"is",
	"it",
	"that",
	"was",
	"for",
	"on",
	"are",
	"with",
	"as",
	"his",
	"they",
	"be",
	"at",
	"one",
	"have",
	"this",
	"from",
	"by",
	"hot",
	"word",
	"but",
	"what",
	"some",
	"we",
	"can",
	"out",
	"other",
	"were",
	"all",
	"there",
	"when",
	"up",
	"use",
	"your",
	"how",
	"said",
	"an",
	"each",
	"she",
	"which",
	"do",
	"their",
	"time",
	"if",
	"will",
	"way",
	"about",
	"many",
	"then",
	"them",
	"write",
	"would",
	"like",
	"so",
	"these",
	"her",
	"long",
	"make",
	"thing",
	"see",
	"him",
	"two",
	"has",
	"look",
	"more",
	"day",
	"could",
	"go",
	"come",
	"did",
	"number",
	"sound",
	"no",
	"most",
	"people",
	"my",
	"over",
	"know",
	"water",
	"than",
	"call",
	"first",
	"who",
	"may",
	"down",
	"side",
	"been",
	"now",
	"find",
	"any",
	"new",
	"work",
	"part",
	"take",
	"get",
	"place",
	"made",
	"live",
	"where",
	"after",
	"back",
	"little",
	"only",
	"round",
	"man",
	"year",
	"came",
	"show",
	"every",
	"good",
	"me",
	"give",
	"our",
	"under",
	"name",
	"very",
	"through",
	"just",
	"form",
	"great",
	"think",
	"say",
	"help",
	"low",
	"line",
	"before",
	"turn",
	"cause",
	"same",
	"mean",
	"differ",
	"move",
	"right",
	"boy",
	"old",
	"too",
	"does",
	"tell",
	"set",
	"three",
	"want",
	"air",
	"well",
	"also",
	"play",
	"small",
	"end",
	"put",
	"home",
	"read",
	"hand",
	"port",
	"large",
	"spell",
	"add",
	"even",
	"land",
	"here",
	"must",
	"big",
	"high",
	"such",
	"follow",
	"act",
	"why",
	"ask",
	"men",
	"change",
	"went",
	"light",
	"kind",
	"off",
	"need",
	"house",
	"picture",
	"try",
	"us",
	"again",
	"animal",
	"point",
	"mother",
	"world",
	"near",
	"build",
	"self",
	"earth",
	"father",
	"head",
	"stand",
	"own",
	"page",
	"should",
	"country",
	"found",
	"answer",
	"school",
	"grow",
	"study",
	"still",
	"learn",
	"plant",
	"cover",
	"food",
	"sun",
	"four",
	"thought",
	"let",
	"keep",
	"eye",
	"never",
	"last",
	"door",
	"between",
	"city",
	"tree",
	"cross",
	"since",
	"hard",
	"start",
	"might",
	"story",
	"saw",
	"far",
	"sea",
	"draw",
	"left",
	"late",
	"run",
};

void wl_words(buf *out, uint64_t *rng, int n)
{
	for (int i = 0; i < n; i++) {
		const char *w = wl_vocab[rng_below(rng, ARRAY_LEN(wl_vocab))];
		if (i)
			buf_append(out, " ", 1);
		buf_puts(out, w);
	}
}

/* Words until the text is at least min_chars long, then cut to exactly that. */
static void wl_chars(buf *out, uint64_t *rng, size_t min_chars)
{
	size_t start = buf_rlen(out);
	while (buf_rlen(out) - start < min_chars) {
		if (buf_rlen(out) > start)
			buf_append(out, " ", 1);
		if (buf_puts(out, wl_vocab[rng_below(rng, ARRAY_LEN(wl_vocab))]) < 0)
			return;
	}
	out->len = out->rd + start + min_chars;
	if (out->data)
		out->data[out->len] = 0;
}

void wl_request_free(wl_request *r)
{
	buf_free(&r->body);
}

/* One shared-prefix conversation. Owner: the workload. */
typedef struct wl_conv {
	int group;
	int turns_done; /* finished turns */
	int busy;       /* a turn is in flight */
	int dead;       /* ended by an error */
	char **users;   /* [turns]: user texts, made when first needed */
	char **answers; /* [turns]: assistant texts, NULL until answered */
	size_t *answer_len;
} wl_conv;

/* One line of --file. */
typedef struct wl_line {
	char *text;
	size_t len;
	int lineno;
} wl_line;

struct workload {
	bench_config cfg;
	char model[256];
	uint64_t rng;
	uint64_t produced;

	/* shared-prefix */
	char **system;  /* [groups] */
	wl_conv *convs; /* [groups * users] */
	int n_convs;
	int *ready; /* ring of conversation indexes */
	int ready_head, ready_count;

	/* file */
	wl_line *lines;
	size_t n_lines;
	size_t next_line;
	int cycle; /* wrap around at the end of the file */
};

static int jitter_len(workload *w, int len)
{
	if (w->cfg.len_jitter <= 0 || len <= 1)
		return len;
	double lo = len * (1.0 - w->cfg.len_jitter), hi = len * (1.0 + w->cfg.len_jitter);
	int v = (int)(lo + rng_double(&w->rng) * (hi - lo + 1));
	return v < 1 ? 1 : v;
}

/* Common tail of generated bodies: model, stream options, limits. */
static void put_common(workload *w, json_w *jw, int max_tokens)
{
	jw_key(jw, "model");
	jw_str(jw, w->model);
	jw_key(jw, "stream");
	jw_bool(jw, w->cfg.stream);
	if (w->cfg.stream) {
		jw_key(jw, "stream_options");
		jw_obj_begin(jw);
		jw_key(jw, "include_usage");
		jw_bool(jw, 1);
		jw_obj_end(jw);
	}
	if (max_tokens > 0) {
		jw_key(jw, "max_tokens");
		jw_int(jw, max_tokens);
	}
	int ignore_eos = w->cfg.ignore_eos < 0 ? (w->cfg.workload != WL_FILE) : w->cfg.ignore_eos;
	if (ignore_eos) {
		jw_key(jw, "ignore_eos");
		jw_bool(jw, 1);
	}
	if (w->cfg.temperature >= 0) {
		jw_key(jw, "temperature");
		jw_double(jw, w->cfg.temperature);
	}
}

static const char *endpoint_path(enum bench_endpoint e)
{
	return e == BENCH_COMPLETIONS ? "/v1/completions" : "/v1/chat/completions";
}

static int build_random(workload *w, wl_request *out)
{
	buf prompt;
	buf_init(&prompt, WL_BODY_MAX_BYTES);
	uint64_t r = w->rng ^ hash64(&w->produced, sizeof(w->produced), w->cfg.seed);
	wl_words(&prompt, &r, jitter_len(w, w->cfg.input_len));
	int max_tokens = w->cfg.max_tokens > 0 ? w->cfg.max_tokens : jitter_len(w, w->cfg.output_len);

	json_w jw;
	jw_init(&jw, &out->body);
	jw_obj_begin(&jw);
	if (w->cfg.endpoint == BENCH_CHAT) {
		jw_key(&jw, "messages");
		jw_arr_begin(&jw);
		jw_obj_begin(&jw);
		jw_key(&jw, "role");
		jw_str(&jw, "user");
		jw_key(&jw, "content");
		jw_strn(&jw, buf_rptr(&prompt), buf_rlen(&prompt));
		jw_obj_end(&jw);
		jw_arr_end(&jw);
	} else {
		jw_key(&jw, "prompt");
		jw_strn(&jw, buf_rptr(&prompt), buf_rlen(&prompt));
	}
	put_common(w, &jw, max_tokens);
	jw_obj_end(&jw);
	buf_free(&prompt);
	out->path = endpoint_path(w->cfg.endpoint);
	return jw.error ? -2 : WL_READY;
}

/* ------------------------------------------------------------- shared prefix */

static int shared_init(workload *w, char *err, size_t err_size)
{
	const bench_config *c = &w->cfg;
	if (c->groups < 1 || c->users < 1 || c->turns < 1 || c->system_len < 0) {
		snprintf(err, err_size, "shared-prefix needs --groups, --users, --turns >= 1");
		return -1;
	}
	if ((uint64_t)c->groups * (uint64_t)c->users > 1000000) {
		snprintf(err, err_size, "shared-prefix: groups x users is over 1000000");
		return -1;
	}
	w->n_convs = c->groups * c->users;
	w->system = calloc((size_t)c->groups, sizeof(*w->system));
	w->convs = calloc((size_t)w->n_convs, sizeof(*w->convs));
	w->ready = calloc((size_t)w->n_convs, sizeof(*w->ready));
	if (!w->system || !w->convs || !w->ready)
		goto oom;
	for (int g = 0; g < c->groups; g++) {
		buf b;
		buf_init(&b, 0);
		uint64_t r = hash64("system", 6, c->seed) ^ (uint64_t)g * 0x9e3779b97f4a7c15ULL;
		buf_printf(&b, "You are assistant %d. ", g);
		if ((size_t)c->system_len > buf_rlen(&b))
			wl_chars(&b, &r, (size_t)c->system_len - buf_rlen(&b));
		w->system[g] = buf_detach(&b, NULL);
		if (!w->system[g])
			goto oom;
	}
	for (int i = 0; i < w->n_convs; i++) {
		wl_conv *cv = &w->convs[i];
		cv->group = i % c->groups;
		cv->users = calloc((size_t)c->turns, sizeof(char *));
		cv->answers = calloc((size_t)c->turns, sizeof(char *));
		cv->answer_len = calloc((size_t)c->turns, sizeof(size_t));
		if (!cv->users || !cv->answers || !cv->answer_len)
			goto oom;
		w->ready[i] = i;
	}
	/* Seeded shuffle (Fisher-Yates) of the starting order. */
	uint64_t r = hash64("order", 5, c->seed);
	for (int i = w->n_convs - 1; i > 0; i--) {
		int j = (int)rng_below(&r, (uint64_t)i + 1);
		int t = w->ready[i];
		w->ready[i] = w->ready[j];
		w->ready[j] = t;
	}
	w->ready_head = 0;
	w->ready_count = w->n_convs;
	return 0;
oom:
	snprintf(err, err_size, "out of memory building the shared-prefix workload");
	return -1;
}

static const char *user_text(workload *w, int conv, int turn)
{
	wl_conv *cv = &w->convs[conv];
	if (!cv->users[turn]) {
		buf b;
		buf_init(&b, 0);
		uint64_t key[2] = {(uint64_t)conv, (uint64_t)turn};
		uint64_t r = hash64(key, sizeof(key), w->cfg.seed);
		buf_printf(&b, "User %d, question %d: ", conv, turn + 1);
		wl_words(&b, &r, jitter_len(w, w->cfg.input_len));
		cv->users[turn] = buf_detach(&b, NULL);
	}
	return cv->users[turn] ? cv->users[turn] : "";
}

static void put_answer(json_w *jw, const wl_conv *cv, int t)
{
	if (cv->answers[t])
		jw_strn(jw, cv->answers[t], cv->answer_len[t]);
	else
		jw_str(jw, "");
}

static int build_shared(workload *w, int conv, wl_request *out)
{
	wl_conv *cv = &w->convs[conv];
	int turn = cv->turns_done;
	int max_tokens = w->cfg.max_tokens > 0 ? w->cfg.max_tokens : jitter_len(w, w->cfg.output_len);
	json_w jw;
	jw_init(&jw, &out->body);
	jw_obj_begin(&jw);
	if (w->cfg.endpoint == BENCH_CHAT) {
		jw_key(&jw, "messages");
		jw_arr_begin(&jw);
		jw_obj_begin(&jw);
		jw_key(&jw, "role");
		jw_str(&jw, "system");
		jw_key(&jw, "content");
		jw_str(&jw, w->system[cv->group]);
		jw_obj_end(&jw);
		for (int t = 0; t <= turn; t++) {
			jw_obj_begin(&jw);
			jw_key(&jw, "role");
			jw_str(&jw, "user");
			jw_key(&jw, "content");
			jw_str(&jw, user_text(w, conv, t));
			jw_obj_end(&jw);
			if (t == turn)
				break;
			jw_obj_begin(&jw);
			jw_key(&jw, "role");
			jw_str(&jw, "assistant");
			jw_key(&jw, "content");
			put_answer(&jw, cv, t);
			jw_obj_end(&jw);
		}
		jw_arr_end(&jw);
	} else {
		buf p;
		buf_init(&p, WL_BODY_MAX_BYTES);
		buf_printf(&p, "%s\n\n", w->system[cv->group]);
		for (int t = 0; t <= turn; t++) {
			buf_printf(&p, "User: %s\nAssistant:", user_text(w, conv, t));
			if (t == turn)
				break;
			buf_append(&p, " ", 1);
			if (cv->answers[t])
				buf_append(&p, cv->answers[t], cv->answer_len[t]);
			buf_append(&p, "\n", 1);
		}
		jw_key(&jw, "prompt");
		jw_strn(&jw, buf_rptr(&p), buf_rlen(&p));
		buf_free(&p);
	}
	put_common(w, &jw, max_tokens);
	jw_obj_end(&jw);
	out->path = endpoint_path(w->cfg.endpoint);
	out->conv = conv;
	out->turn = turn;
	return jw.error ? -2 : WL_READY;
}

static int next_shared(workload *w, wl_request *out)
{
	while (w->ready_count > 0) {
		int conv = w->ready[w->ready_head];
		w->ready_head = (w->ready_head + 1) % w->n_convs;
		w->ready_count--;
		wl_conv *cv = &w->convs[conv];
		if (cv->dead || cv->turns_done >= w->cfg.turns)
			continue;
		cv->busy = 1;
		int rc = build_shared(w, conv, out);
		if (rc != WL_READY) {
			cv->busy = 0;
			cv->dead = 1;
		}
		return rc;
	}
	for (int i = 0; i < w->n_convs; i++)
		if (w->convs[i].busy)
			return WL_WAIT;
	return WL_EXHAUSTED;
}

/* Frees the texts of a conversation that is over (memory stays bounded by the
 * conversations still going). */
static void conv_release(workload *w, wl_conv *cv)
{
	for (int t = 0; t < w->cfg.turns; t++) {
		free(cv->users[t]);
		free(cv->answers[t]);
		cv->users[t] = cv->answers[t] = NULL;
		cv->answer_len[t] = 0;
	}
}

int workload_finish(workload *w, int conv, int ok, const char *answer, size_t len)
{
	if (w->cfg.workload != WL_SHARED_PREFIX || conv < 0 || conv >= w->n_convs)
		return 0;
	wl_conv *cv = &w->convs[conv];
	if (!cv->busy)
		return 0;
	cv->busy = 0;
	if (!ok) {
		cv->dead = 1;
		conv_release(w, cv);
		return 1;
	}
	int t = cv->turns_done;
	if (!answer)
		len = 0;
	if (len > WL_ANSWER_MAX_BYTES) {
		/* Cut before a UTF-8 sequence, never inside one. */
		len = WL_ANSWER_MAX_BYTES;
		while (len > 0 && ((unsigned char)answer[len] & 0xC0) == 0x80)
			len--;
	}
	cv->answers[t] = str_ndup(answer ? answer : "", len);
	cv->answer_len[t] = cv->answers[t] ? len : 0;
	cv->turns_done++;
	if (cv->turns_done < w->cfg.turns) {
		int tail = (w->ready_head + w->ready_count) % w->n_convs;
		w->ready[tail] = conv;
		w->ready_count++;
	} else {
		conv_release(w, cv);
	}
	return 0;
}

/* ---------------------------------------------------------------------- file */

static int file_init(workload *w, char *err, size_t err_size)
{
	size_t len;
	char why[600];
	char *all = util_read_file(w->cfg.file, WL_FILE_MAX_BYTES, &len, why, sizeof why);
	if (!all) {
		snprintf(err, err_size, "--file %s", why);
		return -1;
	}
	char *s = all, *end = all + len;
	size_t cap = 0;
	int lineno = 0;
	while (s < end) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *le = nl ? nl : end;
		lineno++;
		char *a = s, *b = le;
		while (a < b && (*a == ' ' || *a == '\t' || *a == '\r'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
			b--;
		s = nl ? nl + 1 : end;
		if (a == b)
			continue;
		json_error je;
		json_doc *d = json_parse(a, (size_t)(b - a), 0, &je);
		if (!d || !json_is(json_root(d), JSON_OBJECT)) {
			snprintf(err, err_size, "--file %s:%d: %s", w->cfg.file, lineno,
				 d ? "a line must be a JSON object" : je.msg);
			json_doc_free(d);
			free(all);
			return -1;
		}
		const json_val *root = json_root(d);
		int has = json_get(root, "messages") || json_get(root, "prompt");
		json_doc_free(d);
		if (!has) {
			snprintf(err, err_size, "--file %s:%d: the object has neither \"messages\" nor \"prompt\"",
				 w->cfg.file, lineno);
			free(all);
			return -1;
		}
		if (w->n_lines == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			wl_line *nl2 = realloc(w->lines, ncap * sizeof(*nl2));
			if (!nl2) {
				free(all);
				snprintf(err, err_size, "out of memory reading --file");
				return -1;
			}
			w->lines = nl2;
			cap = ncap;
		}
		w->lines[w->n_lines].text = str_ndup(a, (size_t)(b - a));
		w->lines[w->n_lines].len = (size_t)(b - a);
		w->lines[w->n_lines].lineno = lineno;
		if (!w->lines[w->n_lines].text) {
			free(all);
			snprintf(err, err_size, "out of memory reading --file");
			return -1;
		}
		w->n_lines++;
	}
	free(all);
	if (w->n_lines == 0) {
		snprintf(err, err_size, "--file %s: no requests in it", w->cfg.file);
		return -1;
	}
	w->cycle = w->cfg.requests > 0 || w->cfg.duration_ms > 0;
	return 0;
}

static int next_file(workload *w, wl_request *out)
{
	if (w->next_line >= w->n_lines) {
		if (!w->cycle)
			return WL_EXHAUSTED;
		w->next_line = 0;
	}
	const wl_line *ln = &w->lines[w->next_line++];
	json_doc *d = json_parse(ln->text, ln->len, 0, NULL);
	if (!d)
		return -2;
	const json_val *root = json_root(d);
	json_w jw;
	jw_init(&jw, &out->body);
	jw_obj_begin(&jw);
	for (size_t i = 0; i < root->u.obj.n; i++) {
		jw_keyn(&jw, root->u.obj.members[i].key, root->u.obj.members[i].key_len);
		jw_value(&jw, root->u.obj.members[i].val);
	}
	if (!json_get(root, "model")) {
		jw_key(&jw, "model");
		jw_str(&jw, w->model);
	}
	int stream = json_get(root, "stream") ? json_bool(json_get(root, "stream"), 0) : w->cfg.stream;
	if (!json_get(root, "stream")) {
		jw_key(&jw, "stream");
		jw_bool(&jw, stream);
	}
	if (stream && !json_get(root, "stream_options")) {
		jw_key(&jw, "stream_options");
		jw_obj_begin(&jw);
		jw_key(&jw, "include_usage");
		jw_bool(&jw, 1);
		jw_obj_end(&jw);
	}
	if (w->cfg.max_tokens > 0 && !json_get(root, "max_tokens") &&
	    !json_get(root, "max_completion_tokens")) {
		jw_key(&jw, "max_tokens");
		jw_int(&jw, w->cfg.max_tokens);
	}
	if (w->cfg.ignore_eos == 1 && !json_get(root, "ignore_eos")) {
		jw_key(&jw, "ignore_eos");
		jw_bool(&jw, 1);
	}
	if (w->cfg.temperature >= 0 && !json_get(root, "temperature")) {
		jw_key(&jw, "temperature");
		jw_double(&jw, w->cfg.temperature);
	}
	jw_obj_end(&jw);
	out->path = json_get(root, "messages") ? "/v1/chat/completions" : "/v1/completions";
	json_doc_free(d);
	return jw.error ? -2 : WL_READY;
}

/* ------------------------------------------------------------------- common */

workload *workload_new(const bench_config *cfg, const char *model, char *err, size_t err_size)
{
	workload *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	w->cfg = *cfg;
	str_copy(w->model, model ? model : "", sizeof(w->model));
	w->rng = hash64("workload", 8, cfg->seed);
	int rc = 0;
	if (cfg->workload == WL_SHARED_PREFIX)
		rc = shared_init(w, err, err_size);
	else if (cfg->workload == WL_FILE)
		rc = file_init(w, err, err_size);
	else if (cfg->input_len < 1 || cfg->output_len < 1) {
		snprintf(err, err_size, "random needs --input-len and --output-len >= 1");
		rc = -1;
	}
	if (rc < 0) {
		workload_free(w);
		return NULL;
	}
	return w;
}

void workload_free(workload *w)
{
	if (!w)
		return;
	if (w->system)
		for (int g = 0; g < w->cfg.groups; g++)
			free(w->system[g]);
	free(w->system);
	if (w->convs) {
		for (int i = 0; i < w->n_convs; i++) {
			wl_conv *cv = &w->convs[i];
			for (int t = 0; t < w->cfg.turns; t++) {
				if (cv->users)
					free(cv->users[t]);
				if (cv->answers)
					free(cv->answers[t]);
			}
			free(cv->users);
			free(cv->answers);
			free(cv->answer_len);
		}
	}
	free(w->convs);
	free(w->ready);
	for (size_t i = 0; i < w->n_lines; i++)
		free(w->lines[i].text);
	free(w->lines);
	free(w);
}

int workload_next(workload *w, wl_request *out)
{
	buf_init(&out->body, WL_BODY_MAX_BYTES);
	out->conv = out->turn = -1;
	out->path = endpoint_path(w->cfg.endpoint);
	int rc;
	switch (w->cfg.workload) {
	case WL_SHARED_PREFIX: rc = next_shared(w, out); break;
	case WL_FILE: rc = next_file(w, out); break;
	default: rc = build_random(w, out); break;
	}
	if (rc == WL_READY)
		w->produced++;
	else
		buf_free(&out->body);
	return rc;
}

int workload_wants_answers(const workload *w)
{
	return w->cfg.workload == WL_SHARED_PREFIX;
}

uint64_t workload_size(const workload *w)
{
	if (w->cfg.workload == WL_SHARED_PREFIX)
		return (uint64_t)w->n_convs * (uint64_t)w->cfg.turns;
	if (w->cfg.workload == WL_FILE && !w->cycle)
		return w->n_lines;
	return 0;
}
