/*
 * main.c — infergate-bench: command-line parsing and the order of a run
 * (configure, run on the event loop, report). Every flag is documented in
 * docs/bench.md and in --help; keep the three in step.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_run.h"
#include "core/log.h"
#include "core/util.h"

static const char usage_text[] =
	"usage: infergate-bench --url http://HOST:PORT [options]\n"
	"\n"
	"target\n"
	"  --url URL              the one address to talk to (plain http:// only)\n"
	"  --endpoint chat|completions   API to call (default chat)\n"
	"  --model NAME           model field of requests (default: first of GET /v1/models)\n"
	"  --header 'Name: value' extra request header (repeatable, at most 32)\n"
	"arrivals\n"
	"  --rate R               open loop: Poisson arrivals at R requests/s\n"
	"  --concurrency C        closed loop with C requests in flight (default 1);\n"
	"                         with --rate: a cap on requests in flight\n"
	"  --requests N           measured requests to send\n"
	"  --duration D           or: send arrivals for D (30s, 2m; bare number = seconds)\n"
	"  --warmup N | Ds        N requests, or arrivals during D, sent first, not measured\n"
	"  --seed N               seed of arrivals and prompts (default 1)\n"
	"requests\n"
	"  --stream | --no-stream streaming responses (default on)\n"
	"  --max-tokens N         max_tokens of every request (overrides --output-len)\n"
	"  --temperature T        temperature of every request (default: not sent)\n"
	"  --ignore-eos | --no-ignore-eos  (default: on for random and shared-prefix)\n"
	"workload\n"
	"  --workload random|shared-prefix|file   (default random)\n"
	"  --input-len N          words of a random prompt or of a user turn (default 128)\n"
	"  --output-len N         max_tokens of generated requests (default 128)\n"
	"  --len-jitter F         lengths uniform in [len*(1-F), len*(1+F)] (default 0)\n"
	"  --groups G             shared-prefix: groups, one system prompt each (default 4)\n"
	"  --system-len L         shared-prefix: system prompt characters (default 2000)\n"
	"  --users U              shared-prefix: users per group (default 8)\n"
	"  --turns T              shared-prefix: turns per user (default 3)\n"
	"  --file PATH            file: JSONL, one request body a line\n"
	"bounds\n"
	"  --timeout D            per-request timeout (default 300s)\n"
	"  --deadline D           whole run (default: duration + warm-up + timeout + 10s, or 1h)\n"
	"  --max-inflight N       requests in flight at most (default 10000)\n"
	"output\n"
	"  --json FILE|-          JSON report (- = stdout; the text report then goes to stderr)\n"
	"  --per-request FILE     one JSON line per finished request\n"
	"  --progress | --no-progress   progress line on stderr (default: when a terminal)\n"
	"  --quiet                no text report\n"
	"  --log-level LEVEL      debug, info, warn (default), error\n";

static void usage_exit(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

/* A usage error: the message on stderr, exit status 2. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "infergate-bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static int64_t arg_int(const char *flag, const char *v, int64_t min, int64_t max)
{
	int64_t out;
	if (parse_int64(v, min, max, &out) < 0) {
		char range[96];
		snprintf(range, sizeof(range), "an integer in [%lld, %lld]", (long long)min,
			 (long long)max);
		die("%s wants %s", flag, range);
	}
	return out;
}

static double arg_double(const char *flag, const char *v, double min, double max)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(d) || d < min || d > max)
		die("%s wants a number, not '%s'", flag, v);
	return d;
}

static uint64_t arg_duration(const char *flag, const char *v)
{
	uint64_t ms;
	if (parse_duration_ms(v, 1000, &ms) < 0)
		die("%s wants a duration (30s, 500ms, 2m, or seconds), not '%s'", flag, v);
	return ms;
}

/* "http://host[:port][/base]" into cfg. Anything but http:// is refused. */
static void parse_url(bench_config *cfg, const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		die("--url %s: expected http://HOST:PORT", url);
	if ((size_t)(p - url) != 4 || strncasecmp(url, "http", 4) != 0)
		die("--url %s: only plain http:// is supported (scheme '%.*s' refused); "
		    "put a TLS-terminating proxy on loopback in front of an https endpoint",
		    url, (int)(p - url), url);
	p += 3;
	const char *host_end, *host = p;
	if (*p == '[') {
		host_end = strchr(p, ']');
		if (!host_end)
			die("--url %s: unterminated IPv6 address", url);
		host++;
		p = host_end + 1;
	} else {
		while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#' && *p != '@')
			p++;
		host_end = p;
	}
	if (*p == '@')
		die("--url %s: credentials in the URL are not supported; use --header", url);
	if (host_end == host || (size_t)(host_end - host) >= sizeof(cfg->host))
		die("--url %s: no host", url);
	memcpy(cfg->host, host, (size_t)(host_end - host));
	cfg->host[host_end - host] = 0;
	cfg->port = 80;
	if (*p == ':') {
		p++;
		char port[8];
		size_t n = strcspn(p, "/?#");
		if (n == 0 || n >= sizeof(port))
			die("--url %s: bad port", url);
		memcpy(port, p, n);
		port[n] = 0;
		cfg->port = (int)arg_int("--url port", port, 1, 65535);
		p += n;
	}
	if (*p == '?' || *p == '#')
		die("--url %s: no query or fragment, please", url);
	size_t bl = strlen(p);
	while (bl > 0 && p[bl - 1] == '/')
		bl--;
	if (bl >= sizeof(cfg->base_path))
		die("--url %s: path too long", url);
	for (size_t i = 0; i < bl; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f || p[i] == '?' || p[i] == '#')
			die("--url %s: bad character in the path", url);
	memcpy(cfg->base_path, p, bl);
	cfg->base_path[bl] = 0;
}

static void parse_header(bench_config *cfg, const char *h)
{
	const char *colon = strchr(h, ':');
	if (!colon || colon == h)
		die("--header '%s': expected 'Name: value'", h);
	for (const char *q = h; *q; q++)
		if (*q == '\r' || *q == '\n')
			die("--header '%s': no line breaks", h);
	for (const char *q = h; q < colon; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			die("--header '%s': bad character in the name", h);
	static const char *const reserved[] = {"host", "content-length", "transfer-encoding",
					       "connection"};
	for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
		if (str_ieq(h, (size_t)(colon - h), reserved[i]))
			die("--header '%s': %s is set by infergate-bench itself", h, reserved[i]);
	if (cfg->n_headers >= BENCH_MAX_HEADERS)
		die("--header: at most 32");
	cfg->headers[cfg->n_headers++] = h;
}

int main(int argc, char **argv)
{
	bench_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.stream = 1;
	cfg.max_tokens = -1;
	cfg.temperature = -1;
	cfg.ignore_eos = -1;
	cfg.workload = WL_RANDOM;
	cfg.input_len = 128;
	cfg.output_len = 128;
	cfg.groups = 4;
	cfg.system_len = 2000;
	cfg.users = 8;
	cfg.turns = 3;
	cfg.timeout_ms = 300000;
	cfg.max_inflight = 10000;
	cfg.seed = 1;
	cfg.progress = -1;
	int have_requests = 0, have_duration = 0;
	log_init("infergate-bench");
	log_set_level(LOG_WARN);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage_exit(0);
		/* Flags without a value. */
		if (!strcmp(a, "--stream")) {
			cfg.stream = 1;
			continue;
		}
		if (!strcmp(a, "--no-stream")) {
			cfg.stream = 0;
			continue;
		}
		if (!strcmp(a, "--ignore-eos")) {
			cfg.ignore_eos = 1;
			continue;
		}
		if (!strcmp(a, "--no-ignore-eos")) {
			cfg.ignore_eos = 0;
			continue;
		}
		if (!strcmp(a, "--progress")) {
			cfg.progress = 1;
			continue;
		}
		if (!strcmp(a, "--no-progress")) {
			cfg.progress = 0;
			continue;
		}
		if (!strcmp(a, "--quiet")) {
			cfg.quiet = 1;
			continue;
		}
		/* Flags with a value: "--flag value" or "--flag=value". */
		char name[64];
		const char *v;
		const char *eq = strchr(a, '=');
		if (strncmp(a, "--", 2) != 0)
			die("unexpected argument '%s' (see --help)", a);
		if (eq) {
			size_t n = (size_t)(eq - a);
			if (n >= sizeof(name))
				die("unknown flag %s", a);
			memcpy(name, a, n);
			name[n] = 0;
			v = eq + 1;
		} else {
			if (i + 1 >= argc)
				die("%s needs a value", a);
			str_copy(name, a, sizeof(name));
			v = argv[++i];
		}
		if (!strcmp(name, "--url")) {
			cfg.url = v;
			parse_url(&cfg, v);
		} else if (!strcmp(name, "--endpoint")) {
			if (!strcmp(v, "chat"))
				cfg.endpoint = BENCH_CHAT;
			else if (!strcmp(v, "completions"))
				cfg.endpoint = BENCH_COMPLETIONS;
			else
				die("--endpoint wants chat or completions, not '%s'", v);
		} else if (!strcmp(name, "--model")) {
			if (!*v || strlen(v) >= 256)
				die("--model: 1 to 255 characters");
			cfg.model = v;
		} else if (!strcmp(name, "--header")) {
			parse_header(&cfg, v);
		} else if (!strcmp(name, "--rate")) {
			cfg.rate = arg_double(name, v, 1e-6, 1e6);
		} else if (!strcmp(name, "--concurrency")) {
			cfg.concurrency = (int)arg_int(name, v, 1, 1000000);
		} else if (!strcmp(name, "--requests")) {
			cfg.requests = (uint64_t)arg_int(name, v, 1, (int64_t)BENCH_MAX_REQUESTS_CAP);
			have_requests = 1;
		} else if (!strcmp(name, "--duration")) {
			cfg.duration_ms = arg_duration(name, v);
			if (cfg.duration_ms == 0)
				die("--duration must be above 0");
			have_duration = 1;
		} else if (!strcmp(name, "--warmup")) {
			int64_t n;
			if (parse_int64(v, 0, (int64_t)BENCH_MAX_REQUESTS_CAP, &n) == 0)
				cfg.warmup_requests = (uint64_t)n;
			else
				cfg.warmup_ms = arg_duration(name, v);
		} else if (!strcmp(name, "--seed")) {
			cfg.seed = (uint64_t)arg_int(name, v, 0, INT64_MAX);
		} else if (!strcmp(name, "--max-tokens")) {
			cfg.max_tokens = (int)arg_int(name, v, 1, 10000000);
		} else if (!strcmp(name, "--temperature")) {
			cfg.temperature = arg_double(name, v, 0, 100);
		} else if (!strcmp(name, "--workload")) {
			if (!strcmp(v, "random"))
				cfg.workload = WL_RANDOM;
			else if (!strcmp(v, "shared-prefix"))
				cfg.workload = WL_SHARED_PREFIX;
			else if (!strcmp(v, "file"))
				cfg.workload = WL_FILE;
			else
				die("--workload wants random, shared-prefix or file, not '%s'", v);
		} else if (!strcmp(name, "--input-len")) {
			cfg.input_len = (int)arg_int(name, v, 1, 10000000);
		} else if (!strcmp(name, "--output-len")) {
			cfg.output_len = (int)arg_int(name, v, 1, 10000000);
		} else if (!strcmp(name, "--len-jitter")) {
			cfg.len_jitter = arg_double(name, v, 0, 1);
		} else if (!strcmp(name, "--groups")) {
			cfg.groups = (int)arg_int(name, v, 1, 1000000);
		} else if (!strcmp(name, "--system-len")) {
			cfg.system_len = (int)arg_int(name, v, 0, 10000000);
		} else if (!strcmp(name, "--users")) {
			cfg.users = (int)arg_int(name, v, 1, 1000000);
		} else if (!strcmp(name, "--turns")) {
			cfg.turns = (int)arg_int(name, v, 1, 1000);
		} else if (!strcmp(name, "--file")) {
			cfg.file = v;
		} else if (!strcmp(name, "--timeout")) {
			cfg.timeout_ms = arg_duration(name, v);
			if (cfg.timeout_ms == 0)
				die("--timeout must be above 0");
		} else if (!strcmp(name, "--deadline")) {
			cfg.deadline_ms = arg_duration(name, v);
			if (cfg.deadline_ms == 0)
				die("--deadline must be above 0");
		} else if (!strcmp(name, "--max-inflight")) {
			cfg.max_inflight = (int)arg_int(name, v, 1, 1000000);
		} else if (!strcmp(name, "--json")) {
			cfg.json_path = v;
		} else if (!strcmp(name, "--per-request")) {
			cfg.per_request_path = v;
		} else if (!strcmp(name, "--log-level")) {
			int l = log_level_parse(v);
			if (l < 0)
				die("--log-level wants debug, info, warn or error, not '%s'", v);
			log_set_level((enum log_level)l);
		} else {
			die("unknown flag %s (see --help)", name);
		}
	}

	if (!cfg.url)
		die("--url http://HOST:PORT is required (see --help)");
	if (cfg.workload == WL_FILE && !cfg.file)
		die("--workload file needs --file PATH");
	if (cfg.file && cfg.workload != WL_FILE)
		cfg.workload = WL_FILE;
	if (!have_requests && !have_duration && cfg.workload == WL_RANDOM)
		die("give --requests N or --duration D (or both)");
	if (cfg.rate > 0) {
		if (cfg.concurrency > 0 && cfg.concurrency < cfg.max_inflight)
			cfg.max_inflight = cfg.concurrency;
	} else if (cfg.concurrency == 0) {
		cfg.concurrency = 1;
	}
	if (cfg.rate == 0 && cfg.concurrency > cfg.max_inflight)
		cfg.max_inflight = cfg.concurrency;
	if (cfg.deadline_ms == 0) {
		if (have_duration)
			cfg.deadline_ms = cfg.duration_ms + cfg.warmup_ms + cfg.timeout_ms + 10000;
		else
			cfg.deadline_ms = 3600000;
	}
	if (cfg.progress < 0)
		cfg.progress = isatty(STDERR_FILENO);
	if (cfg.json_path && cfg.per_request_path && strcmp(cfg.json_path, "-") != 0 &&
	    strcmp(cfg.json_path, cfg.per_request_path) == 0)
		die("--json and --per-request name the same file");
	if (cfg.per_request_path && strcmp(cfg.per_request_path, "-") == 0 && cfg.json_path &&
	    strcmp(cfg.json_path, "-") == 0)
		die("--json - and --per-request - cannot both use stdout");

	bench_results res;
	bench_results_init(&res, cfg.seed);
	char err[512] = "";
	int rc = bench_run(&cfg, &res, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "infergate-bench: %s\n", err);
		bench_results_free(&res);
		return 2;
	}
	int to_stdout = !(cfg.json_path && strcmp(cfg.json_path, "-") == 0) &&
			!(cfg.per_request_path && strcmp(cfg.per_request_path, "-") == 0);
	if (!cfg.quiet)
		bench_report_text(to_stdout ? stdout : stderr, &cfg, &res);
	/* 1 when nothing measured succeeded, so scripts notice a dead target. */
	int status = res.ok == 0 ? 1 : 0;
	if (cfg.json_path && bench_report_json(cfg.json_path, &cfg, &res) < 0)
		status = 2;
	bench_results_free(&res);
	return status;
}
