/*
 * main.c — infergate, the regional front door of the inference stack: flags,
 * boot, and the life cycle.
 *
 *   infergate -c FILE                 run from a configuration file (docs/CONFIG.md)
 *   infergate --check -c FILE         validate it and exit (0 good, 1 bad)
 *   infergate --listen 127.0.0.1:8080 --region us-east5 \
 *             --endpoint 127.0.0.1:8001@us-east5 --endpoint 127.0.0.1:8002@europe-west4
 *                                     the quick start: one pool "default", any model
 *
 * Signals: SIGTERM/SIGINT stop accepting, let requests in flight finish within
 * the shutdown grace, then exit (a second one exits at once). SIGHUP reloads the
 * file: pools and endpoints change without dropping a connection, the access
 * log is reopened; a bad file is refused with one log line and the old
 * configuration keeps serving. SIGHUP also loads the listeners' certificates
 * again (from flags too): new connections get the new ones, open connections
 * keep theirs; a bad or mismatched one refuses the reload. One thread, one
 * event loop.
 */
#include "gateway/gateway.h"
#include "gateway/access_log.h"
#include "gateway/discovery_pools.h"
#include "gateway/front.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/proxy.h"
#include "gateway/dashboard.h"
#include "gateway/picker.h"
#include "gateway/tenant.h"
#include "gateway/token_metrics.h"
#include "core/log.h"
#include "core/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_POLL_MS 50

static void usage(FILE *f)
{
	fprintf(f,
		"usage: infergate -c FILE [--check] [--access-log FILE|-] [--log-level LEVEL] [--log-json]\n"
		"       infergate --listen HOST:PORT --region NAME --endpoint HOST:PORT@REGION[#WEIGHT]...\n"
		"  -c, --config FILE      YAML configuration (docs/CONFIG.md)\n"
		"  --check                validate the configuration and exit\n"
		"  --listen HOST:PORT     listen address (repeatable; quick start; default 127.0.0.1:8080)\n"
		"  --region NAME          this gateway's region (quick start)\n"
		"  --tls-cert FILE        serve HTTPS on every --listen with this PEM chain (quick start)\n"
		"  --tls-key FILE         and this PEM private key (SIGHUP loads both again)\n"
		"  --upstream-ca FILE     PEM CAs that https:// endpoints must chain to (quick start;\n"
		"                         default the system store)\n"
		"  --endpoint A@R[#W]     a model server at address A in region R, weight W (repeatable;\n"
		"                         quick start: one pool \"default\" serving every model)\n"
		"  --access-log FILE|-    one JSON line per request to FILE, or stdout for -\n"
		"  --log-level LEVEL      debug, info, warn, error (default info)\n"
		"  --log-json             log lines as JSON objects\n");
}

/* ------------------------------------------------------------ life cycle */

static char access_log_flag[GW_PATH_LEN];
static int access_log_from_flag;

static int64_t drain_poll(ev_loop *loop, uint64_t id, void *arg)
{
	gw *g = arg;
	size_t n = httpd_busy(g->httpd);
	if (n == 0) {
		log_info("drained: every request finished; exiting");
		ev_stop(loop);
		return -1;
	}
	if (ev_now_ms(loop) >= g->drain_deadline_ms) {
		log_warn("shutdown grace over: %zu requests still in flight are cut; exiting", n);
		ev_stop(loop);
		return -1;
	}
	return DRAIN_POLL_MS;
}

static void on_term(ev_loop *loop, int signo, void *arg)
{
	gw *g = arg;
	if (g->draining) {
		log_warn("signal %d again: exiting now", signo);
		ev_stop(loop);
		return;
	}
	g->draining = 1;
	g->drain_deadline_ms = ev_now_ms(loop) + g->cfg->shutdown_grace_ms;
	log_info("signal %d: draining: no new connections, %zu requests in flight get up to %llu ms", signo,
		 httpd_in_flight(g->httpd), (unsigned long long)g->cfg->shutdown_grace_ms);
	httpd_stop_accepting(g->httpd);
	ev_timer_add(loop, 0, drain_poll, g);
}

/* TLS contexts for the listen entries of c (NULL where plaintext), all or
 * none. Returns 0, or -1 with "listen ADDR: reason" in err. */
static int listen_tls_build(const gw_config *c, tls_ctx *out[], char *err, size_t err_len)
{
	char e[512];
	for (size_t i = 0; i < c->n_listen; i++) {
		const gw_listen_tls_cfg *t = &c->listen_tls[i];
		out[i] = NULL;
		if (!t->cert_file[0]) continue;
		tls_server_opts o = {
			.cert_file = t->cert_file,
			.key_file = t->key_file,
			.client_ca_file = t->client_ca_file[0] ? t->client_ca_file : NULL,
			.ciphers = t->ciphers[0] ? t->ciphers : NULL,
			.alpn_h2 = 1,
		};
		out[i] = tls_server_new(&o, e, sizeof(e));
		if (!out[i]) {
			snprintf(err, err_len, "listen %s: TLS: %s", c->listen[i], e);
			for (size_t k = 0; k < i; k++) tls_ctx_free(out[k]);
			return -1;
		}
	}
	return 0;
}

/* Gives each TLS listener its new context (new connections only). */
static void listen_tls_install(gw *g, tls_ctx *ctx[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ctx[i]) httpd_set_tls(g->httpd, (int)i, ctx[i]);
}

static size_t count_endpoints(const gw_config *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n_pools; i++) n += c->pools[i].n_endpoints;
	return n;
}

static void reload(gw *g)
{
	char err[600];
	g->reloads_total++;
	gw_config *nc = gw_config_load(g->cfg_path, err, sizeof(err));
	if (!nc) {
		g->reload_failures_total++;
		gw_metrics_reload(g, 0);
		log_error("reload refused: %s; the running configuration stays", err);
		return;
	}
	/* Listen addresses apply at the next restart; their certificate files
	 * now. So the entries are the running ones with the new file's TLS files
	 * (where TLS stays on or off as it runs), and a certificate that does not
	 * load refuses the whole reload before anything changed. */
	int listen_same = nc->n_listen == g->cfg->n_listen;
	for (size_t i = 0; listen_same && i < nc->n_listen; i++) listen_same = !strcmp(nc->listen[i], g->cfg->listen[i]);
	if (!listen_same) log_warn("reload: listen addresses changed: they apply at the next restart");
	int tls_same = 1;
	for (size_t i = 0; i < g->cfg->n_listen; i++) {
		int was = g->cfg->listen_tls[i].cert_file[0] != 0;
		int now = i < nc->n_listen && nc->listen_tls[i].cert_file[0];
		if (was != now) {
			tls_same = 0;
			nc->listen_tls[i] = g->cfg->listen_tls[i];
		}
	}
	if (!tls_same) log_warn("reload: TLS turned on or off on a listener: that applies at the next restart");
	memcpy(nc->listen, g->cfg->listen, sizeof(nc->listen));
	nc->n_listen = g->cfg->n_listen;
	tls_ctx *tctx[GW_MAX_LISTEN] = {0};
	if (listen_tls_build(nc, tctx, err, sizeof(err)) < 0) {
		g->reload_failures_total++;
		gw_metrics_reload(g, 0);
		log_error("reload refused: %s; the running configuration and certificates stay", err);
		gw_config_free(nc);
		return;
	}
	if (tenant_apply(g, nc, ev_now_ms(g->loop)) < 0) {
		for (size_t i = 0; i < GW_MAX_LISTEN; i++) tls_ctx_free(tctx[i]);
		g->reload_failures_total++;
		gw_metrics_reload(g, 0);
		log_error("reload refused: out of memory for the tenants; the running configuration stays");
		gw_config_free(nc);
		return;
	}
	if (gw_discovery_apply(g, nc, err, sizeof(err)) < 0) {
		for (size_t i = 0; i < GW_MAX_LISTEN; i++) tls_ctx_free(tctx[i]);
		g->reload_failures_total++;
		/* the tenants are the new configuration's already: back to the running one's */
		if (tenant_apply(g, g->cfg, ev_now_ms(g->loop)) < 0) log_error("reload: tenants not restored (out of memory)");
		gw_metrics_reload(g, 0);
		log_error("reload refused: %s; the running configuration stays", err);
		gw_config_free(nc);
		return;
	}
	listen_tls_install(g, tctx, g->cfg->n_listen);
	if (memcmp(&nc->limits, &g->cfg->limits, sizeof(nc->limits)))
		log_warn("reload: limits changed: they apply at the next restart");
	if (nc->io_uring != g->cfg->io_uring) log_warn("reload: io_uring changed: it applies at the next restart");
	if (strcmp(nc->region, g->cfg->region))
		log_info("reload: region %s -> %s", g->cfg->region, nc->region);
	/* Keep what applies at restart only as it runs, so /status tells the truth. */
	nc->limits = g->cfg->limits;
	nc->io_uring = g->cfg->io_uring;
	gw_config_free(g->cfg);
	g->cfg = nc;
	const char *al = access_log_from_flag ? access_log_flag : nc->access_log;
	if (access_log_open(g, al, err, sizeof(err)) < 0) log_error("reload: %s (access log off)", err);
	gw_metrics_reload(g, 1);
	log_info("reload: %s: %zu pools, %zu endpoints", g->cfg_path, nc->n_pools, count_endpoints(nc));
}

static void on_hup(ev_loop *loop, int signo, void *arg)
{
	gw *g = arg;
	if (!g->cfg_path[0]) {
		/* Started from flags: the certificates are all there is to reload. */
		tls_ctx *tctx[GW_MAX_LISTEN] = {0};
		char err[600];
		if (listen_tls_build(g->cfg, tctx, err, sizeof(err)) < 0) {
			g->reload_failures_total++;
			gw_metrics_reload(g, 0);
			log_error("SIGHUP: certificates refused: %s; the old ones stay", err);
			return;
		}
		listen_tls_install(g, tctx, g->cfg->n_listen);
		g->reloads_total++;
		gw_metrics_reload(g, 1);
		log_info("SIGHUP: started from flags: certificates loaded again");
		return;
	}
	if (g->draining) {
		log_warn("SIGHUP: draining, reload ignored");
		return;
	}
	reload(g);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	const char *cfg_file = NULL;
	const char *listen[GW_MAX_LISTEN];
	const char *endpoints[GW_MAX_ENDPOINTS];
	size_t n_listen = 0, n_endpoints = 0;
	const char *region = NULL, *tls_cert = NULL, *tls_key = NULL, *upstream_ca = NULL;
	int check = 0;
	char err[600];

	log_init("infergate");
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() \
	do { \
		if (!v) { \
			fprintf(stderr, "infergate: %s needs a value\n", a); \
			return 2; \
		} \
		i++; \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			NEED_VALUE();
			cfg_file = v;
		} else if (!strcmp(a, "--check")) {
			check = 1;
		} else if (!strcmp(a, "--listen")) {
			NEED_VALUE();
			if (n_listen == GW_MAX_LISTEN) {
				fprintf(stderr, "infergate: at most %d --listen\n", GW_MAX_LISTEN);
				return 2;
			}
			listen[n_listen++] = v;
		} else if (!strcmp(a, "--tls-cert")) {
			NEED_VALUE();
			tls_cert = v;
		} else if (!strcmp(a, "--upstream-ca")) {
			NEED_VALUE();
			upstream_ca = v;
		} else if (!strcmp(a, "--tls-key")) {
			NEED_VALUE();
			tls_key = v;
		} else if (!strcmp(a, "--region")) {
			NEED_VALUE();
			region = v;
		} else if (!strcmp(a, "--endpoint")) {
			NEED_VALUE();
			if (n_endpoints == GW_MAX_ENDPOINTS) {
				fprintf(stderr, "infergate: at most %d --endpoint\n", GW_MAX_ENDPOINTS);
				return 2;
			}
			endpoints[n_endpoints++] = v;
		} else if (!strcmp(a, "--access-log")) {
			NEED_VALUE();
			if (strlen(v) >= sizeof(access_log_flag)) {
				fprintf(stderr, "infergate: --access-log: path too long\n");
				return 2;
			}
			str_copy(access_log_flag, v, sizeof(access_log_flag));
			access_log_from_flag = 1;
		} else if (!strcmp(a, "--log-level")) {
			NEED_VALUE();
			int l = log_level_parse(v);
			if (l < 0) {
				fprintf(stderr, "infergate: --log-level: debug, info, warn or error\n");
				return 2;
			}
			log_set_level((enum log_level)l);
		} else if (!strcmp(a, "--log-json")) {
			log_set_json(1);
		} else {
			fprintf(stderr, "infergate: unknown argument %s\n", a);
			usage(stderr);
			return 2;
		}
#undef NEED_VALUE
	}

	gw_config *cfg;
	if (cfg_file) {
		if (n_listen || region || n_endpoints || tls_cert || tls_key || upstream_ca) {
			fprintf(stderr, "infergate: --listen, --region, --endpoint and --tls-* are for the quick start: put them in %s\n", cfg_file);
			return 2;
		}
		cfg = gw_config_load(cfg_file, err, sizeof(err));
	} else {
		if (!region) {
			fprintf(stderr, "infergate: give -c FILE, or --region and --endpoint flags\n");
			usage(stderr);
			return 2;
		}
		cfg = gw_config_from_flags(listen, n_listen, region, endpoints, n_endpoints, err, sizeof(err));
		if (cfg && gw_config_listen_tls(cfg, tls_cert, tls_key, err, sizeof(err)) < 0) {
			gw_config_free(cfg);
			cfg = NULL;
		}
		if (cfg && upstream_ca) {
			if (strlen(upstream_ca) >= sizeof(cfg->pools[0].backend.tls_ca_file)) {
				fprintf(stderr, "infergate: --upstream-ca: path too long\n");
				return 2;
			}
			str_copy(cfg->pools[0].backend.tls_ca_file, upstream_ca, sizeof(cfg->pools[0].backend.tls_ca_file));
		}
	}
	if (!cfg) {
		fprintf(stderr, "infergate: %s\n", err);
		return 1;
	}
	tls_ctx *tctx[GW_MAX_LISTEN] = {0};
	if (listen_tls_build(cfg, tctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "infergate: %s\n", err);
		gw_config_free(cfg);
		return 1;
	}
	if (check) {
		for (size_t i = 0; i < GW_MAX_LISTEN; i++) tls_ctx_free(tctx[i]);
		printf("%s: ok: region %s, %zu pools, %zu endpoints, %zu routes\n", cfg->file, cfg->region, cfg->n_pools,
		       count_endpoints(cfg), cfg->n_routes);
		gw_config_free(cfg);
		return 0;
	}

	static gw g;
	g.cfg = cfg;
	if (cfg_file) str_copy(g.cfg_path, cfg_file, sizeof(g.cfg_path));
	buf_init(&g.scratch, 0);
	request_init(&g.req);
	g.loop = ev_new();
	if (!g.loop || gw_metrics_init(&g) < 0 || picker_init(&g) < 0 || dashboard_init(&g) < 0 || tenant_metrics_init(&g) < 0 ||
	    token_metrics_init(&g) < 0 || tenant_apply(&g, cfg, ev_now_ms(g.loop)) < 0) {
		fprintf(stderr, "infergate: out of memory\n");
		return 1;
	}
	if (cfg->io_uring) {
		/* Scrapes, health checks and proxied requests to the endpoints: their
		 * sends and reads issued together, one system call per loop pass. */
		if (ev_batch_enable(g.loop, err, sizeof(err)) == 0) log_info("upstream socket I/O batched through io_uring");
		else log_info("io_uring unavailable (%s): plain system calls", err);
	}
	httpd_limits lim;
	httpd_limits_default(&lim);
	lim.max_header_bytes = cfg->limits.max_header_bytes;
	lim.max_body_bytes = cfg->limits.max_body_bytes;
	lim.header_timeout_ms = cfg->limits.header_timeout_ms;
	lim.body_timeout_ms = cfg->limits.body_timeout_ms;
	lim.keepalive_idle_ms = cfg->limits.keepalive_timeout_ms;
	lim.max_connections = cfg->limits.max_connections;
	lim.handshake_timeout_ms = cfg->limits.tls_handshake_timeout_ms;
	g.httpd = httpd_new(g.loop, &lim, front_handle, &g);
	if (!g.httpd) {
		fprintf(stderr, "infergate: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < cfg->n_listen; i++) {
		int li = httpd_listen(g.httpd, cfg->listen[i], NULL, err, sizeof(err));
		if (li < 0) {
			fprintf(stderr, "infergate: listen %s: %s\n", cfg->listen[i], err);
			return 1;
		}
		httpd_set_tls(g.httpd, li, tctx[i]);
		log_info("listening on %s (port %d, %s), region %s", cfg->listen[i], httpd_port(g.httpd, li),
			 tctx[i] ? "https" : "http", cfg->region);
	}
	if (gw_discovery_apply(&g, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "infergate: %s\n", err);
		return 1;
	}
	if (access_log_open(&g, access_log_from_flag ? access_log_flag : cfg->access_log, err, sizeof(err)) < 0) {
		fprintf(stderr, "infergate: %s\n", err);
		return 1;
	}
	if (ev_signal(g.loop, SIGTERM, on_term, &g) < 0 || ev_signal(g.loop, SIGINT, on_term, &g) < 0 ||
	    ev_signal(g.loop, SIGHUP, on_hup, &g) < 0) {
		fprintf(stderr, "infergate: cannot route signals\n");
		return 1;
	}
	log_info("%s: %zu pools, %zu endpoints", cfg->file, cfg->n_pools, count_endpoints(cfg));

	int rc = ev_run(g.loop) < 0 ? 1 : 0;

	httpd_free(g.httpd); /* requests still in flight end here (on_close) */
	g.httpd = NULL;
	dashboard_free(&g);
	gw_discovery_free(&g);
	gw_pools_free(&g);
	ev_run_once(g.loop, 0); /* deferred frees of connections */
	access_log_close(&g);
	proxy_free_admission(&g);
	proxy_free_calls(&g);
	picker_result_free_all();
	picker_deinit(&g);
	tenant_free_all(&g);
	token_metrics_free(&g);
	request_free(&g.req);
	gw_metrics_free(&g);
	gw_config_free(g.cfg);
	buf_free(&g.scratch);
	ev_free(g.loop);
	return rc;
}
