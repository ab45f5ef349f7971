/* test_gateway_config.c — the gateway configuration loader (src/gateway/config.c,
 * compiled in here): defaults, every section read back, the quick-start flags,
 * and a table of bad files with the message each must give. */
#include "gateway/config.c"
#include "gateway/config_picker.c"
#include "gateway/config_tenants.c"
#include "t.h"

static gw_config *parse(const char *text, char *err, size_t n)
{
	return gw_config_parse(text, strlen(text), "t.yaml", err, n);
}

static void test_defaults(void)
{
	char err[600] = "";
	gw_config *c = parse("region: us-east5\npools:\n  - name: p\n    endpoints: [ { address: \"127.0.0.1:1\" } ]\n", err, sizeof(err));
	T_CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	T_EQ_STR(c->region, "us-east5");
	T_EQ_INT(c->n_listen, 1);
	T_EQ_STR(c->listen[0], "127.0.0.1:8080");
	T_EQ_INT(c->shutdown_grace_ms, 30000);
	T_EQ_INT(c->io_uring, 1);
	T_EQ_INT(c->limits.max_header_bytes, 16384);
	T_EQ_INT(c->n_pools, 1);
	const gw_pool_cfg *p = &c->pools[0];
	T_EQ_STR(p->endpoints[0].region, "us-east5"); /* the gateway's region */
	T_EQ_INT(p->endpoints[0].weight, 1);
	T_EQ_STR(p->health.path, "/health");
	T_EQ_INT(p->health.rise, 2);
	T_EQ_INT(p->health.fall, 3);
	T_EQ_INT(p->backend.request_timeout_ms, 300000);
	T_EQ_INT(p->backend.tries, 3);
	T_EQ_INT(c->n_routes, 1); /* default route */
	T_EQ_STR(c->routes[0].prefix, "/");
	T_EQ_INT(c->routes[0].pool_index, 0);
	T_EQ_INT(gw_config_region_latency_ms(c, "us-east5"), 0);
	T_EQ_INT(gw_config_region_latency_ms(c, "mars"), -1);
	gw_config_free(c);
}

static void test_full(void)
{
	const char *text =
		"region: europe-west4\n"
		"listen: [\"127.0.0.1:1\", \"[::1]:2\"]\n"
		"regions: { us-east5: 95ms, asia-east1: 0.2 }\n"
		"limits: { max_header_bytes: 8KiB, max_body_bytes: 1MiB, header_timeout: 2s, body_timeout: 3s, keepalive_timeout: 4s, max_connections: 5 }\n"
		"shutdown_grace: 1m\n"
		"access_log: stdout\n"
		"io_uring: off\n"
		"pools:\n"
		"  - name: chat\n"
		"    models: [a, b]\n"
		"    endpoints:\n"
		"      - { address: \"10.0.0.1:8000\", region: us-east5, weight: 7 }\n"
		"      - { address: \"10.0.0.2:8000\" }\n"
		"    health: { path: /h, interval: 5s, fast_interval: 1s, timeout: 2s, healthy_threshold: 4, unhealthy_threshold: 5 }\n"
		"    passive: { failures: 0, backoff: 2s, backoff_max: 1m }\n"
		"    metrics: { path: /m, interval: 50ms, enabled: false }\n"
		"    backend: { timeout: 100s, idle_timeout: 30s, connect_timeout: 1s, tries: 2, retry_budget: 0.5, retry_budget_min: 1, max_idle_connections: 9 }\n"
		"  - name: any\n"
		"    endpoints: [ { address: \"10.0.0.3:8000\" } ]\n"
		"routes:\n"
		"  - { path: /v1/chat/completions, model: a, pool: chat }\n"
		"  - { pool: any }\n";
	char err[600] = "";
	gw_config *c = parse(text, err, sizeof(err));
	T_CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	T_EQ_INT(c->n_listen, 2);
	T_EQ_STR(c->listen[1], "[::1]:2");
	T_EQ_INT(gw_config_region_latency_ms(c, "us-east5"), 95);
	T_EQ_INT(gw_config_region_latency_ms(c, "asia-east1"), 200);
	T_EQ_INT(c->limits.max_header_bytes, 8192);
	T_EQ_INT(c->limits.max_connections, 5);
	T_EQ_INT(c->shutdown_grace_ms, 60000);
	T_EQ_STR(c->access_log, "-");
	T_EQ_INT(c->io_uring, 0);
	const gw_pool_cfg *p = &c->pools[0];
	T_EQ_INT(p->n_models, 2);
	T_EQ_STR(p->models[1], "b");
	T_EQ_INT(p->endpoints[0].weight, 7);
	T_EQ_STR(p->endpoints[1].region, "europe-west4");
	T_EQ_INT(p->health.rise, 4);
	T_EQ_INT(p->health.fall, 5);
	T_EQ_INT(p->health.fast_interval_ms, 1000);
	T_EQ_INT(p->passive.failures, 0);
	T_EQ_INT(p->passive.backoff_max_ms, 60000);
	T_EQ_INT(p->metrics.enabled, 0);
	T_EQ_INT(p->metrics.interval_ms, 50);
	T_EQ_INT(p->backend.request_timeout_ms, 100000);
	T_EQ_INT(p->backend.tries, 2);
	T_NEAR(p->backend.retry_budget_ratio, 0.5, 1e-9);
	T_EQ_INT(p->backend.max_idle_conns, 9);
	T_EQ_INT(c->pools[1].n_models, 0);
	T_EQ_INT(c->n_routes, 2);
	T_EQ_STR(c->routes[0].model, "a");
	T_EQ_INT(c->routes[1].pool_index, 1);
	T_EQ_STR(c->routes[1].prefix, "/");
	gw_config_free(c);
}

static void test_bad(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"", "t.yaml:1: region: is required"},
		{"region: x\n", "t.yaml:1: pools: is required"},
		{"region: x\nbogus: 1\n", "t.yaml:2: bogus: unknown key"},
		{"region: x\nio_uring: on\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ] } ]\n", "t.yaml:2: io_uring: must be auto or off"},
		{"region: 'a b'\npools: []\n", "t.yaml:1: region: \"a b\" is not a region name"},
		{"region: x\npools: [ { name: p, endpoints: [ { address: nope } ] } ]\n", "t.yaml:2: pools[0].endpoints[0].address: \"nope\" is not host:port"},
		{"region: x\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ], backend: { tries: 0 } } ]\n", "t.yaml:2: pools[0].backend.tries: 0 is out of range"},
		{"region: x\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ], health: { rise: 2, healthy_threshold: 2 } } ]\n", "rise and healthy_threshold are the same setting"},
		{"region: x\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ], passive: { backoff: 10s, backoff_max: 1s } } ]\n", "backoff_max is shorter than backoff"},
		{"region: x\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ] } ]\nroutes: [ { pool: p, path: /x, extra: 1 } ]\n", "t.yaml:3: routes[0].extra: unknown key"},
		{"region: x\npools: [ { name: p, models: [\"a b\"], endpoints: [ { address: \"a:1\" } ] } ]\n", "pools[0].models[0]: must be a model name"},
		{"region: x\nlisten: 5\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ] } ]\n", "t.yaml:2: listen: must be"},
		{"region: x\nregions: [a]\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ] } ]\n", "t.yaml:2: regions: must be a mapping"},
		{"region: x\naccess_log: [1]\npools: [ { name: p, endpoints: [ { address: \"a:1\" } ] } ]\n", "t.yaml:2: access_log:"},
		{"a: &x 1\nb: *x\n", "t.yaml:1:"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char err[600] = "";
		gw_config *c = parse(cases[i].text, err, sizeof(err));
		T_CHECK(c == NULL);
		if (!strstr(err, cases[i].want)) {
			fprintf(stderr, "  case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].want);
			T_CHECK(0);
		}
		gw_config_free(c);
	}
}

static void test_flags(void)
{
	char err[600] = "";
	const char *listen[] = {"127.0.0.1:9"};
	const char *eps[] = {"127.0.0.1:1@us-east5", "127.0.0.1:2@europe-west4#3", "127.0.0.1:3"};
	gw_config *c = gw_config_from_flags(listen, 1, "us-east5", eps, 3, err, sizeof(err));
	T_CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	T_EQ_STR(c->pools[0].name, "default");
	T_EQ_INT(c->pools[0].n_models, 0);
	T_EQ_INT(c->pools[0].n_endpoints, 3);
	T_EQ_STR(c->pools[0].endpoints[1].region, "europe-west4");
	T_EQ_INT(c->pools[0].endpoints[1].weight, 3);
	T_EQ_STR(c->pools[0].endpoints[2].region, "us-east5");
	T_EQ_INT(c->n_routes, 1);
	gw_config_free(c);
	const char *bad1[] = {"127.0.0.1@us"};
	T_CHECK(gw_config_from_flags(listen, 1, "us", bad1, 1, err, sizeof(err)) == NULL);
	const char *bad2[] = {"127.0.0.1:1#0"};
	T_CHECK(gw_config_from_flags(listen, 1, "us", bad2, 1, err, sizeof(err)) == NULL);
	const char *dup[] = {"127.0.0.1:1", "127.0.0.1:1@eu"};
	T_CHECK(gw_config_from_flags(listen, 1, "us", dup, 2, err, sizeof(err)) == NULL);
	T_CHECK(gw_config_from_flags(listen, 1, "u s", eps, 1, err, sizeof(err)) == NULL);
	T_CHECK(gw_config_from_flags(listen, 1, "us", eps, 0, err, sizeof(err)) == NULL);
}

int main(void)
{
	T_RUN(test_defaults);
	T_RUN(test_full);
	T_RUN(test_bad);
	T_RUN(test_flags);
	return T_END();
}
