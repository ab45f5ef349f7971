/*
 * server.h — infergate-server: the OpenAI- and vLLM-compatible model server
 * on top of the engine (src/infer) and its scheduler (continuous batching).
 *
 * Threads: the HTTP loop thread (ev.h + httpd.h) owns every request and never
 * blocks on the engine; the scheduler thread (scheduler.h) runs the engine
 * steps; a tokenizer thread renders and tokenizes the completion prompts (a
 * prompt of a long context takes a second or more, which the loop must not
 * spend); a loader thread reads the model at start-up while /health answers 503.
 * The scheduler wakes the loop with an ev_async after each step; the loop then
 * reads every active call's new tokens (sched_progress) and writes them out.
 *
 * Files: main.c (flags, start, load, shutdown), server_http.c (routing and the
 * small endpoints), server_openai.c (completions and chat), server_metrics.c
 * (vLLM's /metrics).
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/ev.h"
#include "core/httpd.h"
#include "core/openai_api.h"
#include "core/prom.h"
#include "core/vllm_metrics.h"
#include "infer/engine.h"
#include "infer/scheduler.h"
#include "infer/tokenizer.h"
#include "weights/cache.h"

#define SERVER_VERSION "0.1.0+infergate"
#define SERVER_MAX_CHOICES 128     /* n x prompts per request */
#define SERVER_MAX_LOGIT_BIAS 1024 /* logit_bias entries per request */
/* prompt_logprobs (or echo with logprobs): choices x prompt tokens per request
 * (each choice's answer carries the prompt's rows, as vLLM's does). */
#define SERVER_MAX_PROMPT_LOGPROBS_ROWS 8192
/* Input bounds checked before anything is tokenized (docs/server.md): a
 * prompt's text of more than max_model_len x SERVER_PROMPT_BYTES_PER_TOKEN
 * bytes cannot fit the context (no token of Gemma's vocabulary is that long),
 * and a request body is at most SERVER_BODY_BASE_BYTES plus max_model_len x
 * SERVER_BODY_BYTES_PER_TOKEN (room for JSON escapes and the other fields),
 * capped at SERVER_BODY_MAX_BYTES. */
#define SERVER_PROMPT_BYTES_PER_TOKEN 32
#define SERVER_BODY_BYTES_PER_TOKEN 64
#define SERVER_BODY_BASE_BYTES (1u << 20)
#define SERVER_BODY_MAX_BYTES (64u << 20)

typedef struct server_opts {
	const char *model;       /* folder or URL (hf://, http(s)://, s3://, gs://) */
	const char *served_name; /* default: model as given */
	const char *api_key;     /* /v1/ paths need "Authorization: Bearer KEY"; NULL = open */
	const char *host;        /* default 0.0.0.0, as vLLM */
	int port;                /* 0 = any (printed) */
	int max_num_seqs;
	int max_model_len;
	int num_kv_blocks;
	uint64_t kv_cache_bytes;
	int threads;
	int max_num_batched_tokens;
	int max_prefill_tokens;   /* prompt tokens beside decode tokens in a step; 0 = no cap */
	int prefill_delay_budget; /* prompt tokens x decode tokens of a step; 0 = off */
	int prefix_caching;       /* 1 (default) */
	int no_repack;            /* --no-repack: matrices read in place from the file's mapping */
	int max_waiting;          /* queued requests before 503 */
	const char *cache_dir;
	uint64_t cache_capacity_bytes;
	int offline;
	const char *kernels;
	const char *quantization;   /* --quantization q8_0|q4_0, NULL = as stored */
	const char *kv_cache_dtype; /* --kv-cache-dtype auto|bf16|f32, NULL = auto (bf16) */
	uint64_t shutdown_grace_ms;
	uint64_t load_delay_ms; /* test hook: sleep before loading */
	int disable_log_requests;
} server_opts;

typedef struct server_metrics {
	prom_registry *reg;
	vllm_metrics v; /* vLLM's families */
	prom_series *steps, *step_seqs, *step_tokens, *batch_size;
	prom_series *phase[SCHED_PHASES]; /* infergate:step_phase_seconds_total by phase */
	prom_series *output_seconds;      /* infergate:server_output_seconds_total */
	sched_stats exported;             /* infergate: counters already added */
	uint64_t output_ns_total;         /* event loop time turning tokens into responses */
	uint64_t output_ns_exported;
} server_metrics;

typedef struct srv_call srv_call;

typedef struct server {
	server_opts o;
	ev_loop *loop;
	httpd *http;
	int port;
	/* lifecycle (loop thread) */
	int ready;    /* model loaded, scheduler running */
	int draining; /* SIGTERM seen */
	int exit_code;
	uint64_t drain_deadline_ms, drain_timer;
	/* loading */
	pthread_t loader;
	int loader_started;
	ev_async *loaded_async; /* the loader is done */
	ev_async *step_async;   /* the scheduler produced output */
	char load_err[1024];
	int load_ok;
	weights_cache *wcache;
	char model_dir[4096];
	engine *e;
	tokenizer *tok;
	int chat_ok; /* the chat template is Gemma 3's */
	char chat_err[256];
	sched *sc;
	int max_model_len; /* effective */
	int primary_eos;   /* stop_reason null for this id */
	/* requests */
	srv_call *calls;        /* active completion calls (doubly linked) */
	struct tok_queue *tokq; /* the tokenizer thread (server_openai.c) */
	size_t n_calls;
	server_metrics m;
	buf scratch, event;
	uint64_t id_seq, id_salt;
	int64_t created_s;
} server;

/* server_http.c */
void server_on_request(httpd_req *r, void *arg);
void server_respond_json(httpd_req *r, int status, buf *body);

/* server_openai.c */
/* Starts and stops the tokenizer thread that prompts are tokenized on (off the
 * loop). init after the loop exists; deinit after httpd_free. */
int server_openai_init(server *s);
void server_openai_deinit(server *s);
/* POST /tokenize once its fields are checked: doc (owned from here), and
 * messages (chat, with agp/cfm) or prompt (a string, with add_special); the
 * ids are made on the tokenizer thread and the answer written on return. */
void server_openai_tokenize(server *s, httpd_req *r, json_doc *doc, const json_val *messages, int agp, int cfm,
			    const json_val *prompt, int add_special);
/* A requested model (NULL: none named) must be the served one: else 404 in e. */
int server_check_model(server *s, const char *model, oai_err *e);
void server_openai_handle(server *s, httpd_req *r, int chat);
/* Reads new output of every active call and writes it out (loop thread). */
void server_openai_progress(server *s);
/* Ends every active call now (shutdown past its grace): streams get an error
 * event and [DONE], others a 503. */
void server_openai_abort_all(server *s, const char *why);
/* Renders a chat request's messages into token ids (for /tokenize too).
 * Returns the count, or -1 with a message in err. *ids is malloc'd. */
long server_chat_tokens(server *s, const void *messages_json, int add_generation_prompt,
			int continue_final_message, int32_t **ids, char *err, size_t errlen);
long server_text_tokens(server *s, const char *text, size_t len, int add_bos, int32_t **ids,
			char *err, size_t errlen);
/* The input bounds above, before parsing (body) and before tokenizing (text
 * bytes; for chat, the sum of the messages' text): 0, or -1 with vLLM's
 * context-length 400 in e. */
int server_check_body(server *s, size_t body_len, oai_err *e);
int server_check_prompt_bytes(server *s, size_t text_bytes, oai_err *e);
/* The text bytes of a chat request's messages (contents, string or text
 * parts), plus 4 tokens' worth (4 x SERVER_PROMPT_BYTES_PER_TOKEN) per message
 * for the template's tokens around each. */
size_t server_messages_bytes(const json_val *messages);

/* server_metrics.c */
int server_metrics_init(server *s);
void server_metrics_loaded(server *s); /* cache_config_info, after the load */
void server_metrics_observer(server *s, sched_observer *o);
void server_metrics_deinit(server *s);

#endif
