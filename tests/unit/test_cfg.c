/*
 * test_cfg.c — YAML loading (core-schema typing, positions, refusals) and the
 * validation helpers (messages naming file:line: path).
 */
#include "core/cfg.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_doc *load(const char *text, char *err, size_t errlen)
{
	return cfg_load_yaml_text(text, strlen(text), "test.yaml", err, errlen);
}

static void test_typing(void)
{
	char err[256];
	json_doc *d = load(
		"a: null\nb: ~\nc:\nd: true\ne: False\nf: 42\ng: -7\nh: 0x1F\ni: 0o17\nj: 1.5\nk: 1e3\n"
		"l: .inf\nm: -.Inf\nn: .nan\no: \"42\"\np: 'true'\nq: yes\nr: hello world\ns: 1.2.3\n"
		"t: 99999999999999999999\nu: !!str 12\nv: [1, \"x\", {w: 2}]\nx: |\n  line1\n  line2\n"
		"y: +12\nz: 012\n",
		err, sizeof(err));
	T_CHECK(d != NULL);
	if (!d) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	const json_val *r = json_root(d);
	T_CHECK(json_is(json_get(r, "a"), JSON_NULL));
	T_CHECK(json_is(json_get(r, "b"), JSON_NULL));
	T_CHECK(json_is(json_get(r, "c"), JSON_NULL));
	T_CHECK(json_is(json_get(r, "d"), JSON_TRUE));
	T_CHECK(json_is(json_get(r, "e"), JSON_FALSE));
	T_CHECK(json_get(r, "f")->is_int && json_get(r, "f")->i == 42);
	T_CHECK(json_get(r, "g")->is_int && json_get(r, "g")->i == -7);
	T_CHECK(json_get(r, "h")->is_int && json_get(r, "h")->i == 31);
	T_CHECK(json_get(r, "i")->is_int && json_get(r, "i")->i == 15);
	T_CHECK(!json_get(r, "j")->is_int && json_num(json_get(r, "j"), 0) == 1.5);
	T_NEAR(json_num(json_get(r, "k"), 0), 1000, 0);
	T_CHECK(isinf(json_num(json_get(r, "l"), 0)) && json_num(json_get(r, "l"), 0) > 0);
	T_CHECK(isinf(json_num(json_get(r, "m"), 0)) && json_num(json_get(r, "m"), 0) < 0);
	T_CHECK(isnan(json_num(json_get(r, "n"), 0)));
	T_EQ_STR(json_str(json_get(r, "o"), NULL), "42");
	T_EQ_STR(json_str(json_get(r, "p"), NULL), "true");
	T_EQ_STR(json_str(json_get(r, "q"), NULL), "yes"); /* YAML 1.2: not a boolean */
	T_EQ_STR(json_str(json_get(r, "r"), NULL), "hello world");
	T_EQ_STR(json_str(json_get(r, "s"), NULL), "1.2.3");
	T_CHECK(json_is(json_get(r, "t"), JSON_NUMBER) && !json_get(r, "t")->is_int);
	T_EQ_STR(json_str(json_get(r, "u"), NULL), "12");
	const json_val *v = json_get(r, "v");
	T_EQ_INT(json_count(v), 3);
	T_EQ_INT(json_at(v, 0)->i, 1);
	T_EQ_STR(json_str(json_at(v, 1), NULL), "x");
	T_EQ_INT(json_get(json_at(v, 2), "w")->i, 2);
	T_EQ_STR(json_str(json_get(r, "x"), NULL), "line1\nline2\n");
	T_EQ_INT(json_get(r, "y")->i, 12);
	T_EQ_INT(json_get(r, "z")->i, 12);
	/* positions */
	T_EQ_INT(json_get(r, "f")->line, 6);
	T_EQ_INT(json_get(r, "f")->col, 4);
	T_EQ_INT(json_at(v, 1)->line, 22);
	json_doc_free(d);

	d = load("", err, sizeof(err));
	T_CHECK(d && json_is(json_root(d), JSON_OBJECT) && json_count(json_root(d)) == 0);
	json_doc_free(d);
	d = load("# only a comment\n", err, sizeof(err));
	T_CHECK(d && json_is(json_root(d), JSON_OBJECT));
	json_doc_free(d);
	d = load("---\n- 1\n...\n", err, sizeof(err));
	T_CHECK(d && json_is(json_root(d), JSON_ARRAY));
	json_doc_free(d);
}

static void test_refusals(void)
{
	static const struct {
		const char *text;
		const char *where;
		const char *what;
	} cases[] = {
		{"a: &x 1\nb: *x\n", "test.yaml:1:4:", "anchors"},
		{"a: 1\nb: *x\n", "test.yaml:2:4:", ""},
		{"a: 1\n---\nb: 2\n", "test.yaml:2:1:", "one YAML document"},
		{"a: 1\nb: 2\na: 3\n", "test.yaml:3:4:", "duplicate key \"a\""},
		{"? [1]\n: 2\n", "test.yaml:1:3:", "mapping keys"},
		{"a: !foo 1\n", "test.yaml:1:4:", "tag"},
		{"a: !!int x\n", "test.yaml:1:4:", "not a valid"},
		{"a: [1, 2\n", "test.yaml:", ""},
		{"a: b: c\n", "test.yaml:1:5:", ""},
		{"a:\n  - 1\n - 2\n", "test.yaml:", ""},
		{"base: &b {x: 1}\nc:\n  <<: *b\n", "test.yaml:1:7:", "anchors"},
		{"\"a\\x\": 1\n", "test.yaml:", ""},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char err[256] = "";
		json_doc *d = load(cases[k].text, err, sizeof(err));
		T_CHECK(d == NULL);
		if (strncmp(err, cases[k].where, strlen(cases[k].where)) || !strstr(err, cases[k].what))
			fprintf(stderr, "  case %zu: got \"%s\"\n", k, err);
		T_CHECK(strncmp(err, cases[k].where, strlen(cases[k].where)) == 0);
		T_CHECK(strstr(err, cases[k].what) != NULL);
		json_doc_free(d);
	}
	/* Deep nesting is refused, not recursed into. */
	char deep[400];
	memset(deep, '[', 200);
	memset(deep + 200, ']', 200);
	char err[256];
	T_CHECK(cfg_load_yaml_text(deep, sizeof(deep), "deep", err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "nesting") != NULL);
}

static void test_file(void)
{
	char path[] = "/tmp/test_cfg_XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	const char *text = "listen: 127.0.0.1:8080\n";
	T_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	char err[256];
	json_doc *d = cfg_load_yaml(path, 0, err, sizeof(err));
	T_CHECK(d != NULL);
	T_EQ_STR(json_str(json_get(json_root(d), "listen"), NULL), "127.0.0.1:8080");
	json_doc_free(d);
	T_CHECK(cfg_load_yaml(path, 10, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "larger than 10 bytes") != NULL);
	unlink(path);
	T_CHECK(cfg_load_yaml(path, 0, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "cannot open") != NULL);
}

static const char *const top_keys[] = {"region", "listen", "pools", "log_level", NULL};

static void test_validation(void)
{
	char err[256];
	json_doc *d = load(
		"region: us-east5\n"
		"listen: \"[::1]:8080\"\n"
		"log_level: info\n"
		"pools:\n"
		"  - name: gemma-pool\n"
		"    timeout: 100s\n"
		"    interval: 250ms\n"
		"    grace: 2\n"
		"    max_body: 64KiB\n"
		"    weight: 1.5\n"
		"    tries: 3\n"
		"    enabled: true\n"
		"    endpoint: 10.0.0.1:8001\n",
		err, sizeof(err));
	T_CHECK(d != NULL);
	const json_val *r = json_root(d);
	cfg_ctx c;
	cfg_ctx_init(&c, "gw.yaml");
	T_EQ_INT(cfg_check_keys(&c, r, "", top_keys), 0);
	const char *region;
	T_EQ_INT(cfg_str(&c, r, "", "region", 1, NULL, &region), 1);
	T_EQ_STR(region, "us-east5");
	char host[64];
	uint16_t port;
	T_EQ_INT(cfg_hostport(&c, r, "", "listen", 1, NULL, 0, host, sizeof(host), &port), 1);
	T_EQ_STR(host, "::1");
	T_EQ_INT(port, 8080);
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	int lvl;
	T_EQ_INT(cfg_enum(&c, r, "", "log_level", 0, 0, levels, &lvl), 1);
	T_EQ_INT(lvl, 1);
	const json_val *pools = cfg_arr(&c, r, "", "pools", 1);
	T_EQ_INT(json_count(pools), 1);
	const json_val *p = json_at(pools, 0);
	char pp[64];
	cfg_path_index(pp, sizeof(pp), "pools", 0);
	T_EQ_STR(pp, "pools[0]");
	uint64_t ms, bytes;
	T_EQ_INT(cfg_duration_ms(&c, p, pp, "timeout", 0, 300000, 1, UINT64_MAX, &ms), 1);
	T_EQ_INT(ms, 100000);
	T_EQ_INT(cfg_duration_ms(&c, p, pp, "interval", 0, 0, 0, UINT64_MAX, &ms), 1);
	T_EQ_INT(ms, 250);
	T_EQ_INT(cfg_duration_ms(&c, p, pp, "grace", 0, 0, 0, UINT64_MAX, &ms), 1);
	T_EQ_INT(ms, 2000);
	T_EQ_INT(cfg_duration_ms(&c, p, pp, "absent", 0, 1234, 0, UINT64_MAX, &ms), 0);
	T_EQ_INT(ms, 1234);
	T_EQ_INT(cfg_size_bytes(&c, p, pp, "max_body", 0, 0, 0, UINT64_MAX, &bytes), 1);
	T_EQ_INT(bytes, 65536);
	double w;
	T_EQ_INT(cfg_double(&c, p, pp, "weight", 0, 1, 0, 100, &w), 1);
	T_NEAR(w, 1.5, 0);
	int64_t tries;
	T_EQ_INT(cfg_int(&c, p, pp, "tries", 0, 1, 1, 10, &tries), 1);
	T_EQ_INT(tries, 3);
	int en;
	T_EQ_INT(cfg_bool(&c, p, pp, "enabled", 0, 0, &en), 1);
	T_EQ_INT(en, 1);
	T_EQ_INT(cfg_hostport(&c, p, pp, "endpoint", 1, NULL, 0, host, sizeof(host), &port), 1);
	T_EQ_STR(host, "10.0.0.1");
	T_EQ_INT(port, 8001);
	T_EQ_INT(c.failed, 0);
	json_doc_free(d);
}

/* Each bad config gives exactly this first error. */
static void test_validation_errors(void)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{"region: x\nlisten: 1.2.3.4:80\nbogus: 1\n",
		 "gw.yaml:3: bogus: unknown key (allowed: region, listen, pools, log_level)"},
		{"listen: 1.2.3.4:80\n", "gw.yaml:1: region: is required"},
		{"region: 5\n", "gw.yaml:1: region: must be a string, not an integer (quote it)"},
		{"region: x\nlisten: localhost\n", "gw.yaml:2: listen: \"localhost\" is not host:port (port 1-65535; IPv6 in brackets)"},
		{"region: x\nlisten: a:70000\n", "gw.yaml:2: listen: \"a:70000\" is not host:port (port 1-65535; IPv6 in brackets)"},
		{"region: x\nlisten: a:1\nlog_level: loud\n", "gw.yaml:3: log_level: \"loud\" is not one of: debug, info, warn, error"},
		{"region: x\nlisten: a:1\npools: {}\n", "gw.yaml:3: pools: must be a sequence, not a mapping"},
		{"region: x\nlisten: a:1\npools:\n  - tries: 11\n", "gw.yaml:4: pools[0].tries: 11 is out of range [1, 10]"},
		{"region: x\nlisten: a:1\npools:\n  - tries: 2.5\n", "gw.yaml:4: pools[0].tries: must be an integer, not a number"},
		{"region: x\nlisten: a:1\npools:\n  - timeout: soon\n",
		 "gw.yaml:4: pools[0].timeout: must be a duration such as \"100ms\", \"2s\", \"5m\" or a number of seconds"},
		{"region: x\nlisten: a:1\npools:\n  - timeout: 0ms\n", "gw.yaml:4: pools[0].timeout: 0ms is out of range [1ms, 3600000ms]"},
		{"region: x\nlisten: a:1\npools:\n  - max_body: 12XB\n",
		 "gw.yaml:4: pools[0].max_body: must be a size such as \"64KiB\", \"10MB\" or a number of bytes"},
		{"region: x\nlisten: a:1\npools:\n  - enabled: yes\n", "gw.yaml:4: pools[0].enabled: must be true or false, not a string"},
		{"region: x\nlisten: a:1\npools:\n  - weight: -1\n", "gw.yaml:4: pools[0].weight: -1 is out of range [0, 100]"},
		{"region: x\nlisten: a:1\npools:\n  - 5\n", "gw.yaml:4: pools[0]: must be a mapping, not number"},
		{"- 1\n", "gw.yaml:1: (top): must be a mapping, not array"},
	};
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	static const char *const pool_keys[] = {"tries", "timeout", "max_body", "enabled", "weight", NULL};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char err[256];
		json_doc *d = load(cases[k].text, err, sizeof(err));
		T_CHECK(d != NULL);
		const json_val *r = json_root(d);
		cfg_ctx c;
		cfg_ctx_init(&c, "gw.yaml");
		const char *s;
		char host[64];
		uint16_t port;
		int lvl;
		if (cfg_check_keys(&c, r, "", top_keys) == 0) {
			cfg_str(&c, r, "", "region", 1, NULL, &s);
			cfg_hostport(&c, r, "", "listen", 1, NULL, 0, host, sizeof(host), &port);
			cfg_enum(&c, r, "", "log_level", 0, 1, levels, &lvl);
			const json_val *pools = cfg_arr(&c, r, "", "pools", 0);
			for (size_t i = 0; i < json_count(pools); i++) {
				char pp[64];
				cfg_path_index(pp, sizeof(pp), "pools", i);
				const json_val *p = json_at(pools, i);
				if (cfg_check_keys(&c, p, pp, pool_keys) < 0)
					continue;
				int64_t x;
				uint64_t u;
				double dd;
				int b;
				cfg_int(&c, p, pp, "tries", 0, 1, 1, 10, &x);
				cfg_duration_ms(&c, p, pp, "timeout", 0, 1000, 1, 3600000, &u);
				cfg_size_bytes(&c, p, pp, "max_body", 0, 1, 0, UINT64_MAX, &u);
				cfg_bool(&c, p, pp, "enabled", 0, 1, &b);
				cfg_double(&c, p, pp, "weight", 0, 1, 0, 100, &dd);
			}
		}
		T_CHECK(c.failed >= 1);
		if (strcmp(c.err, cases[k].want))
			fprintf(stderr, "  case %zu: got  \"%s\"\n          want \"%s\"\n", k, c.err, cases[k].want);
		T_EQ_STR(c.err, cases[k].want);
		json_doc_free(d);
	}
}

static void test_hostport(void)
{
	static const struct {
		const char *s;
		int ok;
		const char *host;
		int port;
	} cases[] = {
		{"127.0.0.1:80", 1, "127.0.0.1", 80},
		{"example.com:443", 1, "example.com", 443},
		{"[::1]:8080", 1, "::1", 8080},
		{"::1:80", 0, NULL, 0},
		{"host:", 0, NULL, 0},
		{":80", 0, NULL, 0},
		{"h:0", 0, NULL, 0},
		{"h:65536", 0, NULL, 0},
		{"h:+80", 0, NULL, 0},
		{"h:80x", 0, NULL, 0},
		{"h h:80", 0, NULL, 0},
		{"[::1]80", 0, NULL, 0},
		{"", 0, NULL, 0},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char host[64];
		uint16_t port = 0;
		int rc = cfg_parse_hostport(cases[k].s, 0, host, sizeof(host), &port);
		T_EQ_INT(rc == 0, cases[k].ok);
		if (cases[k].ok && rc == 0) {
			T_EQ_STR(host, cases[k].host);
			T_EQ_INT(port, cases[k].port);
		}
	}
	char host[64];
	uint16_t port;
	T_EQ_INT(cfg_parse_hostport("127.0.0.1:0", 1, host, sizeof(host), &port), 0);
	T_EQ_INT(port, 0);
	T_EQ_INT(cfg_parse_hostport("averyveryverylonghostname:1", 0, host, 8, &port), -1);
}

int main(void)
{
	T_RUN(test_typing);
	T_RUN(test_refusals);
	T_RUN(test_file);
	T_RUN(test_validation);
	T_RUN(test_validation_errors);
	T_RUN(test_hostport);
	return T_END();
}
