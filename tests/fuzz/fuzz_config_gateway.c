/*
 * fuzz_config_gateway.c — libFuzzer target for the gateway's configuration
 * loader and validator (src/gateway/config.c and its picker part, compiled in
 * here): YAML text in, a config or an error out.
 *
 * Checks: an error names the file; a config that loads is consistent (every
 * route's pool index valid, every pool with 1..GW_MAX_ENDPOINTS endpoints with
 * an address and a region, rise/fall >= 1, tries >= 1), and loading the same
 * text again gives the same answer.
 * fuzz-max-len: 4096
 */
#include "gateway/config.c"
#include "gateway/config_picker.c"
#include "gateway/config_tenants.c"

#include <stdint.h>
#include <stdlib.h>

static void check(int cond)
{
	if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[600];
	gw_config *c = gw_config_parse((const char *)data, size, "fuzz.yaml", err, sizeof(err));
	if (!c) {
		check(strncmp(err, "fuzz.yaml", 9) == 0);
		char err2[600];
		check(gw_config_parse((const char *)data, size, "fuzz.yaml", err2, sizeof(err2)) == NULL);
		check(strcmp(err, err2) == 0);
		return 0;
	}
	check(c->region[0] != 0);
	check(c->n_listen >= 1 && c->n_listen <= GW_MAX_LISTEN);
	check(c->n_pools >= 1 && c->n_pools <= GW_MAX_POOLS);
	for (size_t i = 0; i < c->n_pools; i++) {
		const gw_pool_cfg *p = &c->pools[i];
		check(p->name[0] != 0);
		check(p->n_endpoints >= 1 && p->n_endpoints <= GW_MAX_ENDPOINTS);
		for (size_t k = 0; k < p->n_endpoints; k++) check(p->endpoints[k].address[0] && p->endpoints[k].region[0]);
		check(p->health.rise >= 1 && p->health.fall >= 1);
		check(p->backend.tries >= 1);
		check(gw_config_pool_index(c, p->name) == (int)i);
	}
	check(c->n_routes >= 1);
	for (size_t i = 0; i < c->n_routes; i++)
		check(c->routes[i].pool_index >= 0 && (size_t)c->routes[i].pool_index < c->n_pools);
	gw_config *again = gw_config_parse((const char *)data, size, "fuzz.yaml", err, sizeof(err));
	check(again != NULL && again->n_pools == c->n_pools && again->n_routes == c->n_routes);
	gw_config_free(again);
	gw_config_free(c);
	return 0;
}
