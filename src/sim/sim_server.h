/*
 * sim_server.h — infergate-sim's HTTP side: the vLLM-compatible API, the
 * fault endpoints and the metrics, on core/httpd.h, over the simulated engine
 * (sim_engine.h). One server per process, on one loop thread.
 *
 * Files: sim_server.c (routing, /health, /v1/models, /metrics, /sim/faults,
 * the listener faults), sim_openai.c (completions: validation, prompt
 * rendering, streaming and whole answers), sim_apis.c (the other APIs of vLLM's
 * server), sim_metrics.c (vLLM's metric names).
 */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/ev.h"
#include "core/httpd.h"
#include "core/prom.h"
#include "core/vllm_metrics.h"
#include "sim/sim_engine.h"
#include "sim/sim_fault.h"
#include "sim/sim_lora.h"

#define SIM_MAX_MODELS 16

typedef struct sim_server_cfg {
	const char *models[SIM_MAX_MODELS]; /* served names; the first names the engine */
	size_t n_models;
	const char *host;               /* listen address, default 127.0.0.1 */
	int port;                       /* 0 = any (printed at start) */
	int control_port;               /* second listener the refuse fault spares; -1 none */
	const char *region;             /* x-sim-region header and /sim/faults; may be NULL */
	const char *api_key;            /* /v1/ paths need "Authorization: Bearer KEY"; NULL = open */
	const char *tls_cert, *tls_key; /* PEM files: the port serves HTTPS (core/tls.h); NULL = HTTP */
	uint32_t max_model_len;         /* context length, tokens */
	int llamacpp;                   /* --dialect llamacpp: behave as llama.cpp's server where a gateway sees it */
	sim_engine_cfg engine;
	sim_lora lora; /* --lora-adapters (none: n = 0); its state lives in the server's copy */
} sim_server_cfg;

/* The vLLM metric families of one engine. Owner: the server. */
typedef struct sim_metrics {
	prom_registry *reg;
	vllm_metrics v;
} sim_metrics;

/* The server. Owner: main. */
typedef struct sim_server {
	ev_loop *loop;
	httpd *http;
	sim_server_cfg cfg;
	sim_engine *engine;
	sim_faults faults;
	sim_metrics metrics;
	int listener;          /* httpd listener index */
	int control_listener;  /* --control-port listener (never refused), or -1 */
	uint64_t refuse_timer; /* ends a refuse_ms fault */
	int listening;         /* 0 while the refuse fault holds */
	int port;              /* bound port */
	char region_hdr[160];  /* "x-sim-region: NAME\r\n" or "" */
	buf scratch;           /* one response or chunk JSON at a time */
	buf event;             /* one SSE event at a time */
	uint64_t id_seq;       /* request ids */
	uint64_t id_salt;
	int64_t created_s; /* /v1/models "created" */
} sim_server;

/* Builds the server (engine, metrics, listener). Returns 0, or -1 with a
 * reason in err. cfg's strings must outlive the server. */
int sim_server_init(sim_server *s, ev_loop *loop, const sim_server_cfg *cfg,
		    const sim_faults *faults, char *err, size_t err_len);
void sim_server_deinit(sim_server *s);
/* Applies the current faults that need action (listener, slow factor). */
void sim_server_faults_changed(sim_server *s);

/* sim_openai.c: POST /v1/chat/completions (chat 1) and /v1/completions (chat 0). */
void sim_openai_handle(sim_server *s, httpd_req *r, int chat);
/* The served name req_model stands for, or NULL (an unknown model). */
const char *sim_server_model(const sim_server *s, const char *req_model);

/* sim_apis.c: embeddings, pooling, classify, score, rerank, tokenize,
 * detokenize, the Responses API, audio, /ping. Returns 1 when path is one of
 * them (answered), 0 otherwise. */
int sim_apis_handle(sim_server *s, httpd_req *r, const char *path);

/* sim_metrics.c */
int sim_metrics_init(sim_metrics *m, sim_server *s);
/* llama.cpp's /metrics page (llamacpp:* names) from the same engine stats. */
int sim_metrics_write_llamacpp(sim_server *s, buf *out);
void sim_metrics_deinit(sim_metrics *m);
/* Appends the Prometheus text (gauges refreshed first). */
int sim_metrics_write(sim_metrics *m, sim_server *s, buf *out);

#endif
