/*
 * main.c — infergate-sim: a vLLM stand-in for tests and benchmarks. Parses
 * the flags (every fault is a flag too), builds the server and runs the loop
 * until SIGTERM or SIGINT. SIGUSR1 clears every fault. See docs/sim.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/ev.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "sim/sim_server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: infergate-sim [flags]\n"
		"  --port N                 listen port (default 8000; 0 = any, printed at start)\n"
		"  --host ADDR              listen address (default 127.0.0.1)\n"
		"  --control-port N         a second port the refuse fault leaves open (default none)\n"
		"  --model NAME[,NAME...]   served model names, repeatable (default google/gemma-3-1b-it);\n"
		"                           also --served-model-name\n"
		"  --region NAME            echoed in x-sim-region and GET /sim/faults\n"
		"  --tls-cert FILE          serve HTTPS with this PEM chain (and --tls-key FILE, its key)\n"
		"  --tls-key FILE\n"
		"  --lora-adapters A,B,...  LoRA adapters on the base model (/v1/models with parent,\n"
		"                           vllm:lora_requests_info)\n"
		"  --max-loras N            adapters loaded at once (default 1)\n"
		"  --lora-load-ms MS        added to the first token when the adapter is not loaded (default 200)\n"
		"  --api-key KEY            /v1/ requests need \"Authorization: Bearer KEY\", as vLLM's\n"
		"  --dialect vllm|llamacpp  whose server to behave as (default vllm); llamacpp: its /metrics\n"
		"                           names, any model name, a final assistant message continued\n"
		"                           without continue_final_message, its /health body\n"
		"  --max-model-len N        context length in tokens (default 32768)\n"
		"  --kv-blocks N            KV-cache capacity in blocks of 16 tokens (default 8192)\n"
		"  --max-num-seqs N         running requests at most (default 256)\n"
		"  --max-waiting N          waiting requests at most, then 503 (default 100000)\n"
		"  --ttft-ms MS             base time to first token (default 20)\n"
		"  --prefill-ms-per-token MS  added per prompt token not in the prefix cache (default 0.1)\n"
		"  --itl-ms MS              base inter-token latency (default 10)\n"
		"  --itl-growth A           itl x (1 + A x (running - 1)) (default 0.02)\n"
		"  --log-level LEVEL        debug, info, warn, error (default info)\n"
		"  --faults JSON            faults as the body of POST /sim/faults\n"
		"faults (see docs/sim.md):\n");
	for (const sim_fault_key *k = sim_fault_keys; k->key; k++) {
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s", k->key);
		for (char *p = flag; *p; p++)
			if (*p == '_') *p = '-';
		fprintf(f, "  %-24s %s%s\n", flag, k->kind == 'b' ? "" : "(value) ", k->help);
	}
}

static void on_stop(ev_loop *loop, int signo, void *arg)
{
	log_info("signal %d: stopping", signo);
	ev_stop(loop);
}

static void on_usr1(ev_loop *loop, int signo, void *arg)
{
	sim_server *s = arg;
	sim_faults_clear(&s->faults);
	sim_server_faults_changed(s);
	log_info("SIGUSR1: faults cleared");
}

static int parse_u32(const char *flag, const char *v, int64_t min, int64_t max, uint32_t *out)
{
	int64_t x;
	if (parse_int64(v, min, max, &x) < 0) {
		fprintf(stderr, "infergate-sim: %s: expected an integer in [%lld, %lld], got \"%s\"\n",
			flag, (long long)min, (long long)max, v);
		return -1;
	}
	*out = (uint32_t)x;
	return 0;
}

static int parse_ms(const char *flag, const char *v, double *out)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || *end || !(x >= 0) || x > 1e9) {
		fprintf(stderr, "infergate-sim: %s: expected a non-negative number, got \"%s\"\n", flag, v);
		return -1;
	}
	*out = x;
	return 0;
}

/* The fault key a flag names ("--error-status" -> error_status), or NULL. */
static const sim_fault_key *fault_flag(const char *name)
{
	char key[64];
	if (strlen(name) >= sizeof(key)) return NULL;
	str_copy(key, name, sizeof(key));
	for (char *p = key; *p; p++)
		if (*p == '-') *p = '_';
	for (const sim_fault_key *k = sim_fault_keys; k->key; k++)
		if (!strcmp(k->key, key)) return k;
	return NULL;
}

int main(int argc, char **argv)
{
	char *model_copies[SIM_MAX_MODELS] = {0};
	size_t n_copies = 0;
	sim_server_cfg cfg = {0};
	buf faults_json;
	int rc = 1;
	uint32_t port = 8000, control_port = 0;
	int have_control = 0;

	log_init("infergate-sim");
	buf_init(&faults_json, 1 << 20);
	buf_puts(&faults_json, "{");
	cfg.host = "127.0.0.1";
	cfg.max_model_len = 32768;
	cfg.engine.kv_blocks = 8192;
	cfg.engine.max_num_seqs = 256;
	cfg.engine.max_waiting = 100000;
	cfg.engine.ttft_ms = 20;
	cfg.engine.prefill_ms_per_token = 0.1;
	cfg.engine.itl_ms = 10;
	cfg.engine.itl_growth = 0.02;
	cfg.lora.max_loras = 1;
	cfg.lora.load_ms = 200;
	char lora_err[160];
	char *lora_copy = NULL;
	const char *extra_faults = NULL;

	for (int i = 1; i < argc; i++) {
		char name[64];
		const char *arg = argv[i], *val = NULL;
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			buf_free(&faults_json);
			return 0;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "infergate-sim: unexpected argument \"%s\" (see --help)\n", arg);
			return 2;
		}
		const char *eq = strchr(arg, '=');
		size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (nlen >= sizeof(name)) nlen = sizeof(name) - 1;
		memcpy(name, arg + 2, nlen);
		name[nlen] = '\0';
		const sim_fault_key *fk = fault_flag(name);
		int is_switch = fk && fk->kind == 'b';
		if (eq) val = eq + 1;
		else if (!is_switch) {
			if (i + 1 >= argc) {
				fprintf(stderr, "infergate-sim: --%s needs a value\n", name);
				return 2;
			}
			val = argv[++i];
		}
#define FLAG(n) (!strcmp(name, n))
		if (FLAG("port")) {
			if (parse_u32("--port", val, 0, 65535, &port) < 0) return 2;
		} else if (FLAG("control-port")) {
			if (parse_u32("--control-port", val, 0, 65535, &control_port) < 0) return 2;
			have_control = 1;
		} else if (FLAG("host")) {
			cfg.host = val;
		} else if (FLAG("model") || FLAG("served-model-name")) {
			char *copy = n_copies < SIM_MAX_MODELS ? str_dup(val) : NULL, *save = NULL;
			if (!copy) {
				fprintf(stderr, "infergate-sim: too many --model flags\n");
				return 2;
			}
			model_copies[n_copies++] = copy;
			for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (!*tok) continue;
				if (cfg.n_models == SIM_MAX_MODELS) {
					fprintf(stderr, "infergate-sim: at most %d model names\n", SIM_MAX_MODELS);
					return 2;
				}
				cfg.models[cfg.n_models++] = tok;
			}
		} else if (FLAG("region")) {
			cfg.region = val;
		} else if (FLAG("dialect")) {
			if (strcmp(val, "vllm") && strcmp(val, "llamacpp")) {
				fprintf(stderr, "infergate-sim: --dialect: expected vllm or llamacpp, got \"%s\"\n", val);
				buf_free(&faults_json);
				return 2;
			}
			cfg.llamacpp = !strcmp(val, "llamacpp");
		} else if (FLAG("tls-cert")) {
			cfg.tls_cert = val;
		} else if (FLAG("tls-key")) {
			cfg.tls_key = val;
		} else if (FLAG("lora-adapters")) {
			free(lora_copy);
			memset(cfg.lora.names, 0, sizeof(cfg.lora.names));
			cfg.lora.n = 0;
			if (!(lora_copy = str_dup(val)) || sim_lora_parse(&cfg.lora, lora_copy, lora_err, sizeof(lora_err)) < 0) {
				fprintf(stderr, "infergate-sim: %s\n", lora_err);
				return 2;
			}
		} else if (FLAG("max-loras")) {
			if (parse_u32("--max-loras", val, 1, SIM_MAX_LORAS, &cfg.lora.max_loras) < 0) return 2;
		} else if (FLAG("lora-load-ms")) {
			uint32_t ms;
			if (parse_u32("--lora-load-ms", val, 0, 600000, &ms) < 0) return 2;
			cfg.lora.load_ms = ms;
		} else if (FLAG("api-key")) {
			cfg.api_key = *val ? val : NULL;
		} else if (FLAG("max-model-len")) {
			if (parse_u32("--max-model-len", val, 1, 10000000, &cfg.max_model_len) < 0) return 2;
		} else if (FLAG("kv-blocks")) {
			if (parse_u32("--kv-blocks", val, 1, 100000000, &cfg.engine.kv_blocks) < 0) return 2;
		} else if (FLAG("max-num-seqs")) {
			if (parse_u32("--max-num-seqs", val, 1, 1000000, &cfg.engine.max_num_seqs) < 0) return 2;
		} else if (FLAG("max-waiting")) {
			if (parse_u32("--max-waiting", val, 0, 100000000, &cfg.engine.max_waiting) < 0) return 2;
		} else if (FLAG("ttft-ms")) {
			if (parse_ms("--ttft-ms", val, &cfg.engine.ttft_ms) < 0) return 2;
		} else if (FLAG("prefill-ms-per-token")) {
			if (parse_ms("--prefill-ms-per-token", val, &cfg.engine.prefill_ms_per_token) < 0) return 2;
		} else if (FLAG("itl-ms")) {
			if (parse_ms("--itl-ms", val, &cfg.engine.itl_ms) < 0) return 2;
		} else if (FLAG("itl-growth")) {
			if (parse_ms("--itl-growth", val, &cfg.engine.itl_growth) < 0) return 2;
		} else if (FLAG("log-level")) {
			int lvl = log_level_parse(val);
			if (lvl < 0) {
				fprintf(stderr, "infergate-sim: --log-level: debug, info, warn or error\n");
				return 2;
			}
			log_set_level((enum log_level)lvl);
		} else if (FLAG("faults")) {
			extra_faults = val;
		} else if (fk) {
			/* Each fault flag becomes a member of one JSON object. */
			if (buf_rlen(&faults_json) > 1) buf_puts(&faults_json, ",");
			buf_printf(&faults_json, "\"%s\":", fk->key);
			if (fk->kind == 'b') {
				buf_puts(&faults_json, val && !strcmp(val, "false") ? "false" : "true");
			} else if (fk->kind == 's') {
				buf_puts(&faults_json, "\"");
				json_escape(&faults_json, val, strlen(val));
				buf_puts(&faults_json, "\"");
			} else {
				char *end;
				strtod(val, &end);
				if (end == val || *end) {
					fprintf(stderr, "infergate-sim: --%s: expected a number, got \"%s\"\n", name, val);
					return 2;
				}
				buf_puts(&faults_json, val);
			}
		} else {
			fprintf(stderr, "infergate-sim: unknown flag --%s (see --help)\n", name);
			return 2;
		}
#undef FLAG
	}
	buf_puts(&faults_json, "}");
	if (cfg.n_models == 0) cfg.models[cfg.n_models++] = "google/gemma-3-1b-it";
	cfg.port = (int)port;
	cfg.control_port = have_control ? (int)control_port : -1;

	sim_faults faults = {0};
	sim_faults_clear(&faults);
	const char *fault_texts[2] = {buf_rptr(&faults_json), extra_faults};
	for (int k = 0; k < 2; k++) {
		char err[256];
		json_error jerr;
		if (!fault_texts[k]) continue;
		json_doc *doc = json_parse(fault_texts[k], strlen(fault_texts[k]), 16, &jerr);
		if (!doc) {
			fprintf(stderr, "infergate-sim: --faults: invalid JSON: %s\n", jerr.msg);
			return 2;
		}
		int bad = sim_faults_apply(&faults, json_root(doc), err, sizeof(err));
		json_doc_free(doc);
		if (bad) {
			fprintf(stderr, "infergate-sim: fault flags: %s\n", err);
			return 2;
		}
	}
	buf_free(&faults_json);

	signal(SIGPIPE, SIG_IGN);
	ev_loop *loop = ev_new();
	if (!loop) {
		fprintf(stderr, "infergate-sim: cannot create the event loop\n");
		return 1;
	}
	sim_server srv;
	char err[256];
	if (sim_server_init(&srv, loop, &cfg, &faults, err, sizeof(err)) < 0) {
		fprintf(stderr, "infergate-sim: %s\n", err);
		goto out;
	}
	ev_signal(loop, SIGTERM, on_stop, &srv);
	ev_signal(loop, SIGINT, on_stop, &srv);
	ev_signal(loop, SIGUSR1, on_usr1, &srv);
	printf("infergate-sim listening on %s:%d model %s region %s kv-blocks %u control-port %d\n",
	       cfg.host, srv.port, cfg.models[0], cfg.region ? cfg.region : "-", cfg.engine.kv_blocks,
	       srv.control_listener >= 0 ? httpd_port(srv.http, srv.control_listener) : -1);
	fflush(stdout);
	log_info("listening on %s:%d (model %s, %u KV blocks, max %u seqs)", cfg.host, srv.port,
		 cfg.models[0], cfg.engine.kv_blocks, cfg.engine.max_num_seqs);
	rc = ev_run(loop) < 0 ? 1 : 0;
out:
	sim_server_deinit(&srv);
	ev_free(loop);
	for (size_t i = 0; i < n_copies; i++) free(model_copies[i]);
	free(lora_copy);
	return rc;
}
