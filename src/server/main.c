/*
 * main.c — infergate-server: flags (vLLM's names), start-up, the model load in
 * the background, and graceful shutdown.
 *
 * The HTTP listener opens first and /health answers 503 while a loader thread
 * fetches the model (--model URL through the shared weights cache) and loads
 * it; when it is done the loop starts the scheduler and /health turns 200. A
 * failed load is fatal (exit 1), as vLLM's is. SIGTERM or SIGINT: /health and
 * new requests answer 503, requests in flight get --shutdown-grace to finish,
 * then whatever is left is ended and the process exits 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/log.h"
#include "core/util.h"
#include "infer/chat_template.h"
#include "server/server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: infergate-server --model DIR|FILE.gguf|URL [options]\n"
		"  --model DIR|FILE.gguf|URL     model folder, a GGUF file (or a folder holding one), or\n"
		"                                hf://ORG/NAME[@REV], http(s)://, s3://, gs://\n"
		"  --cache-dir DIR               shared weights cache for a URL model, and DIR/tokenizers for the\n"
		"                                tokenizer.bin of a read-only model folder (default\n"
		"                                $INFERGATE_CACHE_DIR or ~/.cache/infergate)\n"
		"  --cache-capacity SIZE         evict least-recently-used models beyond SIZE (default unlimited)\n"
		"  --offline                     use the cache only, never the network\n"
		"  --host ADDR                   listen address (default 0.0.0.0)\n"
		"  --port N                      listen port (default 8000; 0 = any, printed)\n"
		"  --served-model-name NAME      model name in the API and the metrics (default: --model)\n"
		"  --api-key KEY                 /v1/, /tokenize and /detokenize need \"Authorization: Bearer\n"
		"                                KEY\" (default: $VLLM_API_KEY; /health, /metrics stay open)\n"
		"  --max-num-seqs N              sequences running at once (default 64)\n"
		"  --max-model-len N             context length (default min(config, 8192))\n"
		"  --max-num-batched-tokens N    tokens per engine step, prefill chunks included (default 512)\n"
		"  --max-prefill-tokens N        prompt tokens a step carries beside decode tokens; bounds the\n"
		"                                inter-token latency (default 256; 0 = up to the step's budget)\n"
		"  --prefill-delay-budget N      prompt tokens of a step times the sequences decoding in it at\n"
		"                                most N (not below 16 tokens): the cap falls as more wait\n"
		"                                (default 0 = off; 1024: 64 tokens beside 16)\n"
		"  --num-kv-blocks N             KV cache blocks of 16 tokens (alias --num-gpu-blocks-override)\n"
		"  --kv-cache-memory BYTES       KV cache size (\"2GiB\") when --num-kv-blocks is not given\n"
		"  --enable-prefix-caching | --no-enable-prefix-caching | --disable-prefix-caching\n"
		"  --threads N                   threads per engine step (default: online CPUs)\n"
		"  --kernels portable|avx2|avx512\n"
		"  --quantization q8_0|q4_0      quantize the weights on load (the embedding, also the output\n"
		"                                projection, to q8_0); default: as stored\n"
		"  --no-repack                   read the matrices in place from the file's mapping, Q4_0/Q8_0\n"
		"                                as stored (loads at once, shares the page cache; slower kernels)\n"
		"  --kv-cache-dtype auto|bf16|f32  element type of the KV cache (default auto = bf16)\n"
		"  --max-waiting N               queued requests before 503 (default 1024)\n"
		"  --shutdown-grace DURATION     time for requests in flight after SIGTERM (default 30s)\n"
		"  --load-delay DURATION         wait before loading (tests of /health while loading)\n"
		"  --disable-log-requests        no line per request\n"
		"  --log-level debug|info|warn|error\n");
}

static int parse_args(server_opts *o, int argc, char **argv)
{
	*o = (server_opts){.host = "0.0.0.0", .port = 8000, .prefix_caching = 1, .shutdown_grace_ms = 30000, .max_prefill_tokens = 256};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		char flag[64];
		/* --flag=value as well as --flag value */
		const char *eq = strchr(a, '=');
		if (eq && strncmp(a, "--", 2) == 0 && (size_t)(eq - a) < sizeof flag) {
			memcpy(flag, a, (size_t)(eq - a));
			flag[eq - a] = 0;
			v = eq + 1;
			a = flag;
		}
#define NEEDV() \
	do { \
		if (!v) { \
			if (i + 1 >= argc) { \
				fprintf(stderr, "infergate-server: %s needs a value\n", a); \
				return -1; \
			} \
			v = argv[++i]; \
		} \
	} while (0)
#define INTARG(name, field, lo, hi) \
	if (!strcmp(a, name)) { \
		int64_t n_; \
		NEEDV(); \
		if (parse_int64(v, lo, hi, &n_) < 0) { \
			fprintf(stderr, "infergate-server: %s needs an integer in [%lld, %lld], got %s\n", name, (long long)(lo), (long long)(hi), v); \
			return -1; \
		} \
		o->field = (int)n_; \
		continue; \
	}
#define STRARG(name, field) \
	if (!strcmp(a, name)) { \
		NEEDV(); \
		o->field = v; \
		continue; \
	}
#define DURARG(name, field) \
	if (!strcmp(a, name)) { \
		NEEDV(); \
		if (parse_duration_ms(v, 1000, &o->field) < 0) { \
			fprintf(stderr, "infergate-server: %s needs a duration (\"30s\", \"500ms\"), got %s\n", name, v); \
			return -1; \
		} \
		continue; \
	}
#define SIZEARG(name, field) \
	if (!strcmp(a, name)) { \
		NEEDV(); \
		if (parse_size_bytes(v, &o->field) < 0) { \
			fprintf(stderr, "infergate-server: %s needs a size (\"2GiB\"), got %s\n", name, v); \
			return -1; \
		} \
		continue; \
	}
		STRARG("--model", model)
		STRARG("--served-model-name", served_name)
		STRARG("--api-key", api_key)
		STRARG("--host", host)
		STRARG("--cache-dir", cache_dir)
		STRARG("--download-dir", cache_dir)
		STRARG("--kernels", kernels)
		if (!strcmp(a, "--quantization")) {
			NEEDV();
			if (strcmp(v, "q8_0") != 0 && strcmp(v, "q4_0") != 0) {
				fprintf(stderr, "infergate-server: --quantization: q8_0 or q4_0, got %s\n", v);
				return -1;
			}
			o->quantization = v;
			continue;
		}
		if (!strcmp(a, "--kv-cache-dtype")) {
			NEEDV();
			if (strcmp(v, "auto") != 0 && strcmp(v, "bf16") != 0 && strcmp(v, "f32") != 0) {
				fprintf(stderr, "infergate-server: --kv-cache-dtype: auto, bf16 or f32, got %s\n", v);
				return -1;
			}
			o->kv_cache_dtype = v;
			continue;
		}
		INTARG("--port", port, 0, 65535)
		INTARG("--max-num-seqs", max_num_seqs, 1, 4096)
		INTARG("--max-model-len", max_model_len, 1, 1 << 24)
		INTARG("--num-kv-blocks", num_kv_blocks, 1, 1 << 26)
		INTARG("--num-gpu-blocks-override", num_kv_blocks, 1, 1 << 26)
		INTARG("--threads", threads, 1, 1024)
		INTARG("--max-num-batched-tokens", max_num_batched_tokens, 1, 1 << 20)
		INTARG("--max-prefill-tokens", max_prefill_tokens, 0, 1 << 20)
		INTARG("--prefill-delay-budget", prefill_delay_budget, 0, 1 << 30)
		INTARG("--max-waiting", max_waiting, 1, 1 << 20)
		SIZEARG("--kv-cache-memory", kv_cache_bytes)
		SIZEARG("--cache-capacity", cache_capacity_bytes)
		DURARG("--shutdown-grace", shutdown_grace_ms)
		DURARG("--load-delay", load_delay_ms)
		if (!strcmp(a, "--enable-prefix-caching")) {
			o->prefix_caching = 1;
			continue;
		}
		if (!strcmp(a, "--no-enable-prefix-caching") || !strcmp(a, "--disable-prefix-caching")) {
			o->prefix_caching = 0;
			continue;
		}
		if (!strcmp(a, "--no-repack")) {
			o->no_repack = 1;
			continue;
		}
		if (!strcmp(a, "--offline")) {
			o->offline = 1;
			continue;
		}
		if (!strcmp(a, "--disable-log-requests")) {
			o->disable_log_requests = 1;
			continue;
		}
		if (!strcmp(a, "--log-level")) {
			NEEDV();
			int l = log_level_parse(v);
			if (l < 0) {
				fprintf(stderr, "infergate-server: --log-level: debug, info, warn or error\n");
				return -1;
			}
			log_set_level((enum log_level)l);
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		fprintf(stderr, "infergate-server: unknown argument %s (see --help)\n", argv[i]);
		return -1;
	}
	if (!o->model) {
		fprintf(stderr, "infergate-server: --model is required\n");
		usage(stderr);
		return -1;
	}
	if (!o->served_name) o->served_name = o->model;
	if (!o->api_key) o->api_key = getenv("VLLM_API_KEY");
	if (o->api_key && !*o->api_key) o->api_key = NULL;
	return 0;
}

static int is_url(const char *m) { return strstr(m, "://") != NULL; }

/* ------------------------------------------------------------ loading */

/* The tokenizer half of the load, on its own thread. */
typedef struct tok_job {
	server *s;
	const char *cache_dir; /* for tokenizer.bin when the model folder is read-only */
	pthread_t thread;
	tokenizer_source source;
	uint64_t tok_ns;
	char err[1024];
} tok_job;

static void *tokenizer_main(void *arg)
{
	tok_job *j = arg;
	uint64_t t0 = time_mono_ns();
	j->s->tok = tokenizer_load_cached(j->s->model_dir, j->cache_dir, &j->source, j->err, sizeof j->err);
	j->tok_ns = time_mono_ns() - t0;
	return NULL;
}

static void *loader_main(void *arg)
{
	server *s = arg;
	char err[1024];
	const server_opts *o = &s->o;
	if (o->load_delay_ms) {
		struct timespec ts = {(time_t)(o->load_delay_ms / 1000), (long)(o->load_delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
	}
	char dflt[4096];
	const char *dir = o->cache_dir ? o->cache_dir : getenv("INFERGATE_CACHE_DIR");
	if (!dir) {
		const char *home = getenv("HOME");
		snprintf(dflt, sizeof dflt, "%s/.cache/infergate", home ? home : "/tmp");
		dir = dflt;
	}
	/* tokenizer.bin goes here when the model folder is read-only */
	char tok_cache[4200];
	snprintf(tok_cache, sizeof tok_cache, "%s/tokenizers", dir);
	if (is_url(o->model)) {
		weights_opts wo;
		weights_opts_default(&wo);
		wo.progress = 0;
		uint64_t t0 = time_mono_ms();
		if (weights_cache_open(o->model, dir, o->cache_capacity_bytes, o->offline, &wo, &s->wcache, err, sizeof err) < 0) {
			snprintf(s->load_err, sizeof s->load_err, "%.200s: %.800s", o->model, err);
			goto done;
		}
		str_copy(s->model_dir, weights_cache_path(s->wcache), sizeof s->model_dir);
		log_info("model %s %s in %s (%" PRIu64 " ms)", o->model,
			 weights_cache_was_cold(s->wcache) ? "downloaded" : "found", s->model_dir, time_mono_ms() - t0);
	} else {
		str_copy(s->model_dir, o->model, sizeof s->model_dir);
	}
	engine_options eo = {
		.threads = o->threads,
		.max_batch_tokens = o->max_num_batched_tokens,
		.max_seqs = o->max_num_seqs,
		.max_model_len = o->max_model_len,
		.num_kv_blocks = o->num_kv_blocks,
		.kv_cache_bytes = o->kv_cache_bytes,
		.no_prefix_caching = !o->prefix_caching,
		.no_repack = o->no_repack,
		.kernels = o->kernels,
		.quantization = o->quantization,
		.kv_cache_dtype = o->kv_cache_dtype,
	};
	/* The scheduler needs at least one token per running sequence per step. */
	if (eo.max_batch_tokens > 0 && eo.max_seqs > 0 && eo.max_batch_tokens < eo.max_seqs)
		eo.max_batch_tokens = eo.max_seqs;
	/* The tokenizer (mapped from tokenizer.bin, or built from tokenizer.json)
	 * loads beside the engine and the chat template check. */
	uint64_t t0 = time_mono_ns();
	tok_job tj = {.s = s, .cache_dir = tok_cache};
	int tok_thread = pthread_create(&tj.thread, NULL, tokenizer_main, &tj) == 0;
	if (!tok_thread) tokenizer_main(&tj);
	s->e = engine_load(s->model_dir, &eo, err, sizeof err);
	uint64_t engine_ns = time_mono_ns() - t0, chat_ns = 0;
	if (s->e) {
		s->chat_ok = chat_template_check_dir(s->model_dir, s->chat_err, sizeof s->chat_err) == 0;
		chat_ns = time_mono_ns() - t0 - engine_ns;
	}
	if (tok_thread) pthread_join(tj.thread, NULL);
	if (!s->e) {
		str_copy(s->load_err, err, sizeof s->load_err);
		goto done;
	}
	if (!s->tok) {
		str_copy(s->load_err, tj.err, sizeof s->load_err);
		goto done;
	}
	if (!s->chat_ok) log_warn("chat completions disabled: %s", s->chat_err);
	log_debug("load: engine %.1f ms, tokenizer %.1f ms (%s), chat template check %.1f ms",
		  (double)engine_ns / 1e6, (double)tj.tok_ns / 1e6,
		  tj.source == TOKENIZER_MAPPED ? "mapped tokenizer.bin" : tj.source == TOKENIZER_BUILT_SAVED ? "built, tokenizer.bin written"
													      : "built",
		  (double)chat_ns / 1e6);
	kv_cache *kv = engine_kv_cache(s->e);
	log_info("model loaded in %" PRIu64 " ms: %d threads, %s kernels, weights %s%s (%.1f MB per step), "
		 "%d KV blocks + %d sliding-window blocks in %s (%.1f MB)",
		 (time_mono_ns() - t0) / 1000000, engine_threads(s->e), engine_kernels(s->e),
		 o->quantization ? o->quantization : "as stored", o->no_repack ? ", read in place" : ", Q4_0/Q8_0 repacked 8 rows together, in 2 MB pages",
		 (double)engine_step_weight_bytes(s->e) / 1e6,
		 kv_cache_total_blocks(kv), kv_cache_window_total_blocks(kv), engine_get_options(s->e)->kv_cache_dtype,
		 (double)kv_cache_bytes(kv) / 1e6);
	s->load_ok = 1;
done:
	ev_async_send(s->loaded_async);
	return NULL;
}

static void on_step(void *arg) { ev_async_send(((server *)arg)->step_async); }

static void on_step_async(ev_loop *loop, void *arg)
{
	server *s = arg;
	uint64_t t0 = time_mono_ns();
	server_openai_progress(s);
	s->m.output_ns_total += time_mono_ns() - t0;
}

static void on_loaded(ev_loop *loop, void *arg)
{
	server *s = arg;
	char err[256];
	if (s->loader_started) {
		pthread_join(s->loader, NULL);
		s->loader_started = 0;
	}
	if (!s->load_ok) {
		log_error("cannot load the model: %s", s->load_err);
		s->exit_code = 1;
		ev_stop(loop);
		return;
	}
	const model *m = engine_model(s->e);
	s->primary_eos = m->gen.n_eos > 0 ? m->gen.eos_ids[0] : -1;
	sched_config sc = {
		.max_num_seqs = s->o.max_num_seqs,
		.max_batched_tokens = s->o.max_num_batched_tokens,
		.max_prefill_tokens = s->o.max_prefill_tokens,
		.prefill_delay_budget = s->o.prefill_delay_budget,
		.max_waiting = s->o.max_waiting,
		.max_model_len = s->o.max_model_len,
		.tok = s->tok,
		.notify = on_step,
		.notify_arg = s,
	};
	server_metrics_observer(s, &sc.obs);
	s->sc = sched_new(s->e, &sc, err, sizeof err);
	if (!s->sc) {
		log_error("cannot start the scheduler: %s", err);
		s->exit_code = 1;
		ev_stop(loop);
		return;
	}
	s->max_model_len = sched_max_model_len(s->sc);
	server_metrics_loaded(s);
	s->ready = 1;
	log_info("ready: model %s as \"%s\", max_model_len %d", s->model_dir, s->o.served_name, s->max_model_len);
}

/* ------------------------------------------------------------ shutdown */

/* The last answers were queued on the loop: let it flush them, then stop. */
static int64_t stop_now(ev_loop *loop, uint64_t id, void *arg)
{
	ev_stop(loop);
	return -1;
}

static void stop_soon(server *s)
{
	if (!ev_timer_add(s->loop, 200, stop_now, s)) ev_stop(s->loop);
}

static int64_t drain_tick(ev_loop *loop, uint64_t id, void *arg)
{
	server *s = arg;
	if (s->n_calls == 0 && httpd_busy(s->http) == 0) {
		log_info("shutdown: no request left");
		s->drain_timer = 0;
		stop_soon(s);
		return -1;
	}
	if (ev_now_ms(loop) >= s->drain_deadline_ms) {
		log_warn("shutdown: grace period over, ending %zu requests", s->n_calls);
		server_openai_abort_all(s, "The server is shutting down.");
		s->drain_timer = 0;
		stop_soon(s);
		return -1;
	}
	return 50;
}

static void on_signal(ev_loop *loop, int signo, void *arg)
{
	server *s = arg;
	if (s->draining) {
		log_warn("second signal: stopping now");
		server_openai_abort_all(s, "The server is shutting down.");
		ev_stop(loop);
		return;
	}
	s->draining = 1;
	log_info("signal %d: draining, %zu requests in flight, grace %" PRIu64 " ms", signo, s->n_calls,
		 s->o.shutdown_grace_ms);
	s->drain_deadline_ms = ev_now_ms(loop) + s->o.shutdown_grace_ms;
	if (!s->ready) {
		ev_stop(loop);
		return;
	}
	s->drain_timer = ev_timer_add(loop, 0, drain_tick, s);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	server s_, *s = &s_;
	char err[512];
	memset(s, 0, sizeof *s);
	log_init("infergate-server");
	if (parse_args(&s->o, argc, argv) < 0) return 2;
	signal(SIGPIPE, SIG_IGN);
	s->loop = ev_new();
	if (!s->loop) {
		log_error("cannot create the event loop: %s", strerror(errno));
		return 1;
	}
	if (ev_signal(s->loop, SIGTERM, on_signal, s) < 0 || ev_signal(s->loop, SIGINT, on_signal, s) < 0) {
		log_error("cannot route signals: %s", strerror(errno));
		return 1;
	}
	buf_init(&s->scratch, 256u << 20);
	buf_init(&s->event, 256u << 20);
	s->created_s = (int64_t)time_wall_s();
	s->id_salt = time_mono_ns() ^ ((uint64_t)getpid() << 32);
	if (server_metrics_init(s) < 0) {
		log_error("cannot create the metrics registry");
		return 1;
	}
	s->loaded_async = ev_async_new(s->loop, on_loaded, s);
	s->step_async = ev_async_new(s->loop, on_step_async, s);
	if (!s->loaded_async || !s->step_async) {
		log_error("cannot create wake-ups: %s", strerror(errno));
		return 1;
	}
	if (server_openai_init(s) < 0) {
		log_error("cannot start the tokenizer thread");
		return 1;
	}
	httpd_limits lim;
	httpd_limits_default(&lim);
	lim.max_body_bytes = 64u << 20;
	lim.send_timeout_ms = 300000;
	s->http = httpd_new(s->loop, &lim, server_on_request, s);
	if (!s->http) {
		log_error("cannot create the HTTP server");
		return 1;
	}
	char addr[300];
	snprintf(addr, sizeof addr, strchr(s->o.host, ':') ? "[%s]:%d" : "%s:%d", s->o.host, s->o.port);
	int li = httpd_listen(s->http, addr, NULL, err, sizeof err);
	if (li < 0) {
		log_error("cannot listen on %s: %s", addr, err);
		return 1;
	}
	s->port = httpd_port(s->http, li);
	printf("infergate-server listening on %s:%d (loading %s)\n", s->o.host, s->port, s->o.model);
	fflush(stdout);
	log_info("listening on %s:%d; loading %s", s->o.host, s->port, s->o.model);

	int rc = pthread_create(&s->loader, NULL, loader_main, s);
	if (rc != 0) {
		log_error("cannot start the loader: %s", strerror(rc));
		return 1;
	}
	s->loader_started = 1;

	if (ev_run(s->loop) < 0) {
		log_error("event loop failed: %s", strerror(errno));
		s->exit_code = 1;
	}

	/* Teardown: the loader first (it may still be loading), then HTTP (on_close
	 * releases the requests still open), then the scheduler and the engine. */
	if (s->loader_started) {
		pthread_join(s->loader, NULL);
		s->loader_started = 0;
	}
	if (s->drain_timer) ev_timer_del(s->loop, s->drain_timer);
	httpd_free(s->http);
	server_openai_deinit(s);
	sched_free(s->sc);
	engine_free(s->e);
	tokenizer_free(s->tok);
	if (s->wcache) weights_cache_close(s->wcache);
	server_metrics_deinit(s);
	ev_async_free(s->loaded_async);
	ev_async_free(s->step_async);
	buf_free(&s->scratch);
	buf_free(&s->event);
	ev_free(s->loop);
	log_info("stopped");
	return s->exit_code;
}
