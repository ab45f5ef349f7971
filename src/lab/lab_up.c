/*
 * lab_up.c — `up`, `down` and `status` of the two-region lab.
 *
 * up: the state folder and the lab id first (so a crash at any later point
 * can be undone), then the network (lab_net.c) or loopback ports, the bucket
 * (nginx from Debian serving STATE/bucket/www with a JSON autoindex and
 * Range), the model written into it (infergate-mkmodel, or a copy of --model),
 * the relay between the regions when netem is missing, the model servers
 * (loading from the bucket through a cache per region), and one gateway per
 * region whose YAML configuration points cross-region endpoints at the relay.
 * Each process is recorded in state.json as soon as it is started.
 *
 * down: every process carrying the lab id (by environment scan and by
 * namespace), then the namespaces, mounts under the state folder, the folder.
 * Works on a half-built lab and a second time.
 *
 * Not here: the drill (drill.c), namespaces (lab_net.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/http_client.h"
#include "core/json.h"
#include "core/net.h"
#include "core/util.h"
#include "lab/lab.h"

#define NGINX "/usr/sbin/nginx"

static void say(const lab_up_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const lab_up_opts *o, const char *fmt, ...)
{
	if (o && o->quiet) return;
	va_list ap;
	va_start(ap, fmt);
	printf("lab: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) return -1;
	int ok = fputs(text, f) >= 0;
	if (fclose(f) != 0) ok = 0;
	return ok ? 0 : -1;
}

/* Prints the last lines of a log, indented, to help when something fails. */
static void tail_log(const char *path, int lines)
{
	FILE *f = fopen(path, "r");
	if (!f) return;
	static char ring[16][512];
	int n = 0;
	char line[512];
	while (fgets(line, sizeof line, f)) str_copy(ring[n++ % 16], line, sizeof ring[0]);
	fclose(f);
	if (lines > 16) lines = 16;
	int start = n > lines ? n - lines : 0;
	for (int i = start; i < n; i++) fprintf(stderr, "    | %s", ring[i % 16]);
}

int lab_wait_healthy(const char *addr, uint64_t timeout_ms)
{
	uint64_t deadline = time_mono_ms() + timeout_ms;
	for (;;) {
		buf body;
		buf_init(&body, 64 * 1024);
		int status = 0;
		int rc = hc_fetch(addr, "GET", "/health", NULL, NULL, 0, 1000, &status, &body);
		buf_free(&body);
		if (rc == HC_OK && status == 200) return 0;
		if (time_mono_ms() >= deadline) return -1;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Waits for GET path on addr to answer 200 (or any status when any_status). */
static int wait_http(const char *addr, const char *path, int any_status, uint64_t timeout_ms)
{
	uint64_t deadline = time_mono_ms() + timeout_ms;
	for (;;) {
		buf body;
		buf_init(&body, 1 << 20);
		int status = 0;
		int rc = hc_fetch(addr, "GET", path, NULL, NULL, 0, 1000, &status, &body);
		buf_free(&body);
		if (rc == HC_OK && (status == 200 || (any_status && status > 0))) return 0;
		if (time_mono_ms() >= deadline) return -1;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int lab_wait_gateway_all_up(const char *addr, uint64_t timeout_ms)
{
	uint64_t deadline = time_mono_ms() + timeout_ms;
	for (;;) {
		buf body;
		buf_init(&body, 4 << 20);
		int status = 0, all = 0;
		if (hc_fetch(addr, "GET", "/status", NULL, NULL, 0, 2000, &status, &body) == HC_OK && status == 200) {
			json_doc *doc = json_parse(buf_rptr(&body), buf_rlen(&body), 0, NULL);
			const json_val *pools = json_get(json_root(doc), "pools");
			all = json_count(pools) > 0;
			for (size_t p = 0; p < json_count(pools); p++) {
				const json_val *eps = json_get(json_at(pools, p), "endpoints");
				if (!json_count(eps)) all = 0;
				for (size_t e = 0; e < json_count(eps); e++) {
					const json_val *ep = json_at(eps, e);
					const char *h = json_str(json_get(ep, "health"), json_str(json_get(ep, "state"), ""));
					if (strcmp(h, "up")) all = 0;
				}
			}
			json_doc_free(doc);
		}
		buf_free(&body);
		if (all) return 0;
		if (time_mono_ms() >= deadline) return -1;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int lab_start_node(lab_state *s, lab_node *n, char *err, size_t err_len)
{
	char log[LAB_PATH_LEN], pidf[LAB_PATH_LEN];
	char lname[LAB_NAME_LEN + 8];
	snprintf(lname, sizeof lname, "%s.log", n->name);
	lab_path(s, log, sizeof log, "logs", lname);
	pid_t pid = lab_spawn((const char *const *)n->argv, n->netns, log, s->id, err, err_len);
	if (pid < 0) return -1;
	n->pid = pid;
	snprintf(lname, sizeof lname, "%s.pid", n->name);
	lab_path(s, pidf, sizeof pidf, "pids", lname);
	char text[32];
	snprintf(text, sizeof text, "%d\n", (int)pid);
	write_file(pidf, text);
	lab_state_save(s);
	return 0;
}

/* Loopback mode: a base port with every port the lab needs free on 127.0.0.1. */
static int pick_port_base(int span)
{
	unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time_mono_ns();
	for (int attempt = 0; attempt < 40; attempt++) {
		int base = 20000 + (int)((seed + (unsigned)attempt * 7919u) % 400u) * 100;
		int ok = 1;
		for (int p = base; p < base + span && ok; p++) {
			net_addr a;
			char text[32];
			snprintf(text, sizeof text, "127.0.0.1:%d", p);
			if (net_addr_parse_numeric(text, &a) < 0) return -1;
			char e[128];
			int fd = net_listen(&a, NULL, e, sizeof e);
			if (fd < 0) ok = 0;
			else close(fd);
		}
		if (ok) return base;
	}
	return -1;
}

static void addr_of(const lab_state *s, char *out, size_t len, const char *role, int region, int index)
{
	if (s->netns) {
		if (!strcmp(role, "bucket")) snprintf(out, len, "198.18.0.10:%d", LAB_BUCKET_PORT);
		else if (!strcmp(role, "relay")) snprintf(out, len, "198.18.0.20:%d", LAB_RELAY_PORT0 + index);
		else if (!strcmp(role, "gateway")) snprintf(out, len, "198.18.%d.1:%d", region + 1, LAB_GATEWAY_PORT);
		else snprintf(out, len, "198.18.%d.%d:%d", region + 1, 10 + index, LAB_SERVER_PORT);
	} else {
		int p = s->port_base;
		if (!strcmp(role, "bucket")) p += 0;
		else if (!strcmp(role, "relay")) p += 50 + index;
		else if (!strcmp(role, "gateway")) p += 1 + region;
		else p += 10 + region * 20 + index;
		snprintf(out, len, "127.0.0.1:%d", p);
	}
}

static int start_bucket(lab_state *s, char *err, size_t err_len)
{
	char dir[LAB_PATH_LEN], www[LAB_PATH_LEN], conf[LAB_PATH_LEN], text[4096];
	lab_path(s, dir, sizeof dir, "bucket", NULL);
	lab_path(s, www, sizeof www, "bucket", "www");
	lab_path(s, conf, sizeof conf, "bucket", "nginx.conf");
	if (lab_mkdirs(www) < 0) {
		snprintf(err, err_len, "%s: %s", www, strerror(errno));
		return -1;
	}
	lab_node *n = lab_node_add(s, "bucket", "bucket", -1);
	if (!n) return -1;
	addr_of(s, n->addr, sizeof n->addr, "bucket", -1, 0);
	str_copy(n->netns, s->probe_ns, sizeof n->netns);
	snprintf(text, sizeof text,
		 "# The lab's bucket: a folder served with a JSON listing and Range.\n"
		 "daemon off;\nmaster_process off;\nworker_processes 1;\n"
		 "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
		 "events { worker_connections 1024; }\n"
		 "http {\n"
		 "\taccess_log %s/access.log;\n"
		 "\tclient_body_temp_path %s/body;\n\tproxy_temp_path %s/proxy;\n"
		 "\tfastcgi_temp_path %s/fastcgi;\n\tuwsgi_temp_path %s/uwsgi;\n\tscgi_temp_path %s/scgi;\n"
		 "\tdefault_type application/octet-stream;\n\tsendfile on;\n\tkeepalive_requests 100000;\n"
		 "\tserver {\n\t\tlisten %s;\n\t\troot %s;\n"
		 "\t\tlocation / { autoindex on; autoindex_format json; }\n\t}\n}\n",
		 dir, dir, dir, dir, dir, dir, dir, dir, n->addr, www);
	if (write_file(conf, text) < 0) {
		snprintf(err, err_len, "%s: %s", conf, strerror(errno));
		return -1;
	}
	const char *argv[] = {NGINX, "-p", dir, "-c", conf, "-e", "stderr", NULL};
	lab_node_set_argv(n, argv);
	if (lab_start_node(s, n, err, err_len) < 0) return -1;
	if (wait_http(n->addr, "/", 0, 10000) < 0) {
		snprintf(err, err_len, "the bucket (nginx) did not answer on %s", n->addr);
		return -1;
	}
	return 0;
}

/* Where generated checkpoints are kept between labs: $INFERGATE_LAB_MODEL_CACHE
 * (empty: none), else build/lab-models of the source tree the programs were
 * built in (bin/.. or build/san/bin/../../..). 0, or -1 for no cache. */
static int model_cache_dir(const lab_state *s, char *out, size_t len)
{
	const char *env = getenv("INFERGATE_LAB_MODEL_CACHE");
	if (env) {
		if (!*env) return -1;
		snprintf(out, len, "%s", env);
		return 0;
	}
	static const char *const ups[] = {"/..", "/../../.."};
	for (size_t i = 0; i < ARRAY_LEN(ups); i++) {
		char probe[LAB_PATH_LEN + 64], top[PATH_MAX];
		snprintf(probe, sizeof probe, "%s%s/src/lab/lab.h", s->bin, ups[i]);
		if (access(probe, R_OK) != 0) continue;
		snprintf(probe, sizeof probe, "%s%s", s->bin, ups[i]);
		if (!realpath(probe, top)) continue;
		snprintf(out, len, "%s/build/lab-models", top);
		return 0;
	}
	return -1;
}

/* Links (hard, else symbolic) every file of folder from into folder to. 0 or -1. */
static int link_files(const char *from, const char *to)
{
	DIR *d = opendir(from);
	if (!d) return -1;
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		char a[LAB_PATH_LEN * 2], b[LAB_PATH_LEN * 2];
		snprintf(a, sizeof a, "%s/%s", from, e->d_name);
		snprintf(b, sizeof b, "%s/%s", to, e->d_name);
		unlink(b);
		if (link(a, b) == -1 && symlink(a, b) == -1) rc = -1;
	}
	closedir(d);
	return rc;
}

/* The generated checkpoint from the cache, made there first when missing
 * (into a temporary folder renamed when complete, so concurrent labs and a
 * killed `up` never see half a model), then linked into dest. Entries are
 * keyed by shape, seed and infergate-mkmodel's format version; older
 * entries of the same shape are removed. Returns 1 when dest came from the
 * cache as it was, 0 when the model was made now, -1 when the cache is not
 * usable (the caller writes the model itself). */
static int model_from_cache(lab_state *s, const char *exe, const char *dest, const char *log)
{
	char cache[LAB_PATH_LEN], fmt_path[LAB_PATH_LEN], key[64];
	if (model_cache_dir(s, cache, sizeof cache) < 0) return -1;
	lab_path(s, fmt_path, sizeof fmt_path, "logs", "mkmodel-format.txt");
	const char *fargv[] = {exe, "--format-version", NULL};
	if (lab_run(fargv, fmt_path, 10000) != 0) return -1;
	FILE *f = fopen(fmt_path, "r");
	int fmt = 0;
	if (!f) return -1;
	if (fscanf(f, "%d", &fmt) != 1) fmt = 0;
	fclose(f);
	if (fmt <= 0) return -1;
	snprintf(key, sizeof key, "%s-seed1-f%d", s->shape, fmt);
	char entry[LAB_PATH_LEN + 80], probe[LAB_PATH_LEN + 128];
	snprintf(entry, sizeof entry, "%s/%s", cache, key);
	snprintf(probe, sizeof probe, "%s/model.safetensors", entry);
	int hit = access(probe, R_OK) == 0;
	if (!hit) {
		if (lab_mkdirs(cache) < 0) return -1;
		char tmp[LAB_PATH_LEN + 128];
		snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%d", cache, key, (int)getpid());
		lab_rmtree(tmp);
		const char *argv[] = {exe, "--shape", s->shape, "--seed", "1", tmp, NULL};
		if (lab_run(argv, log, 600000) != 0) {
			lab_rmtree(tmp);
			return -1;
		}
		if (rename(tmp, entry) == -1) lab_rmtree(tmp); /* another lab made it meanwhile */
		if (access(probe, R_OK) != 0) return -1;
		/* Entries of this shape from older formats, and temporary folders of labs gone. */
		DIR *d = opendir(cache);
		struct dirent *e;
		size_t sl = strlen(s->shape);
		while (d && (e = readdir(d))) {
			char old[LAB_PATH_LEN + 300];
			int stale = !strncmp(e->d_name, s->shape, sl) && e->d_name[sl] == '-' && strcmp(e->d_name, key);
			const char *pid_at = strrchr(e->d_name, '-');
			if (!strncmp(e->d_name, ".tmp-", 5) && pid_at && !lab_pid_alive((pid_t)atoi(pid_at + 1))) stale = 1;
			if (!stale) continue;
			snprintf(old, sizeof old, "%s/%s", cache, e->d_name);
			lab_rmtree(old);
		}
		if (d) closedir(d);
	}
	if (link_files(entry, dest) < 0) return -1;
	return hit;
}

/* Writes the model into the bucket: a copy of --model, or a generated
 * checkpoint (from the cache of generated checkpoints when there is one). */
static int write_model(lab_state *s, const lab_up_opts *o, char *err, size_t err_len)
{
	char dest[LAB_PATH_LEN + 160], log[LAB_PATH_LEN];
	snprintf(dest, sizeof dest, "%s/bucket/www/models/%s", s->dir, s->model_name);
	lab_path(s, log, sizeof log, "logs", "model.log");
	if (lab_mkdirs(dest) < 0) {
		snprintf(err, err_len, "%s: %s", dest, strerror(errno));
		return -1;
	}
	uint64_t t0 = time_mono_ms();
	int rc, cached = -1;
	if (s->model_dir[0]) {
		char src[LAB_PATH_LEN + 4];
		snprintf(src, sizeof src, "%s/.", s->model_dir);
		const char *argv[] = {"/bin/cp", "-a", src, dest, NULL};
		rc = lab_run(argv, log, 600000);
	} else {
		char exe[LAB_PATH_LEN + 32];
		snprintf(exe, sizeof exe, "%s/infergate-mkmodel", s->bin);
		cached = model_from_cache(s, exe, dest, log);
		if (cached >= 0) {
			rc = 0;
		} else {
			const char *argv[] = {exe, "--shape", s->shape, "--seed", "1", dest, NULL};
			rc = lab_run(argv, log, 600000);
		}
	}
	if (rc != 0) {
		snprintf(err, err_len, "writing the model into the bucket failed (see %s)", log);
		tail_log(log, 5);
		return -1;
	}
	say(o, "model %s %s in %.1f s", s->model_name,
	    cached == 1   ? "linked into the bucket from the cache of generated models"
	    : cached == 0 ? "generated (and kept for the next lab) and linked into the bucket"
			  : "written into the bucket",
	    (double)(time_mono_ms() - t0) / 1000.0);
	return 0;
}

/* Sends one two-token chat request straight to a server. 0 when answered 200. */
static int warm_server(const lab_state *s, const char *addr)
{
	buf req, body;
	buf_init(&req, 4096);
	buf_init(&body, 1 << 20);
	json_w w;
	jw_init(&w, &req);
	jw_obj_begin(&w);
	jw_key(&w, "model");
	jw_str(&w, s->model_name);
	jw_key(&w, "messages");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_key(&w, "role");
	jw_str(&w, "user");
	jw_key(&w, "content");
	jw_str(&w, "Hello");
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "max_tokens");
	jw_int(&w, 2);
	jw_obj_end(&w);
	int status = 0;
	int rc = hc_fetch(addr, "POST", "/v1/chat/completions", "Content-Type: application/json\r\n", buf_rptr(&req),
			  buf_rlen(&req), 120000, &status, &body);
	buf_free(&req);
	buf_free(&body);
	return rc == HC_OK && status == 200 ? 0 : -1;
}

static int start_servers(lab_state *s, const lab_up_opts *o, char *err, size_t err_len)
{
	char exe[LAB_PATH_LEN + 32];
	snprintf(exe, sizeof exe, "%s/%s", s->bin, s->sim ? "infergate-sim" : "infergate-server");
	char threads[16];
	snprintf(threads, sizeof threads, "%d", o->threads > 0 ? o->threads : 1);
	char seqs[16];
	snprintf(seqs, sizeof seqs, "%d", o->max_num_seqs > 0 ? o->max_num_seqs : 0);
	for (int r = 0; r < LAB_REGIONS; r++) {
		char cache[LAB_PATH_LEN + 32];
		snprintf(cache, sizeof cache, "%s/cache/%s", s->dir, lab_region_names[r]);
		lab_mkdirs(cache);
		for (int i = 1; i <= s->servers_per_region; i++) {
			char name[LAB_NAME_LEN];
			snprintf(name, sizeof name, "%s-server-%d", lab_region_names[r], i);
			lab_node *n = lab_node_add(s, name, "server", r);
			if (!n) return -1;
			addr_of(s, n->addr, sizeof n->addr, "server", r, i);
			if (s->netns) {
				snprintf(n->netns, sizeof n->netns, "%s-%s%d", s->id, lab_region_short[r], i);
				snprintf(n->link, sizeof n->link, "s%d", i);
			}
			char host[LAB_ADDR_LEN], port[16];
			str_copy(host, n->addr, sizeof host);
			char *colon = strrchr(host, ':');
			*colon = 0;
			str_copy(port, colon + 1, sizeof port);
			if (s->sim) {
				const char *argv[] = {exe, "--host", host, "--port", port, "--region", lab_region_names[r],
						      "--model", s->model_name, "--ttft-ms", "40", "--itl-ms", "15",
						      "--log-level", "warn", o->max_num_seqs ? "--max-num-seqs" : NULL, seqs, NULL};
				lab_node_set_argv(n, argv);
			} else {
				const char *argv[] = {exe, "--model", s->bucket_url, "--cache-dir", cache,
						      "--host", host, "--port", port, "--served-model-name", s->model_name,
						      "--threads", threads, "--max-model-len", "2048",
						      "--shutdown-grace", "20s", "--disable-log-requests",
						      o->max_num_seqs ? "--max-num-seqs" : NULL, seqs, NULL};
				lab_node_set_argv(n, argv);
			}
			if (lab_start_node(s, n, err, err_len) < 0) return -1;
		}
	}
	return 0;
}

/* The relay (no netem): one listener per (gateway region, server of the other
 * region). Fills remote[g][k] with the address gateway g uses for it. */
static int start_relay(lab_state *s, char remote[LAB_REGIONS][LAB_MAX_SERVERS][LAB_ADDR_LEN], char *err,
		       size_t err_len)
{
	lab_node *n = lab_node_add(s, "relay", "relay", -1);
	if (!n) return -1;
	str_copy(n->netns, s->probe_ns, sizeof n->netns);
	char exe[LAB_PATH_LEN + 32], delay[32];
	snprintf(exe, sizeof exe, "%s/infergate-lab", s->bin);
	snprintf(delay, sizeof delay, "%g", s->delay_ms);
	const char *argv[LAB_MAX_ARGS + 1] = {exe, "relay", "--state", s->dir, "--delay-ms", delay};
	size_t na = 6;
	static char maps[LAB_REGIONS * LAB_MAX_SERVERS][2 * LAB_ADDR_LEN + 2];
	int k = 0;
	for (int g = 0; g < LAB_REGIONS; g++) {
		int other = 1 - g;
		for (int i = 1; i <= s->servers_per_region; i++) {
			char name[LAB_NAME_LEN];
			snprintf(name, sizeof name, "%s-server-%d", lab_region_names[other], i);
			lab_node *srv = lab_node_find(s, name);
			if (!srv || na + 2 > LAB_MAX_ARGS) return -1;
			addr_of(s, remote[g][i - 1], LAB_ADDR_LEN, "relay", -1, k);
			snprintf(maps[k], sizeof maps[k], "%s=%s", remote[g][i - 1], srv->addr);
			argv[na++] = "--map";
			argv[na++] = maps[k];
			k++;
		}
	}
	argv[na] = NULL;
	addr_of(s, n->addr, sizeof n->addr, "relay", -1, 0);
	lab_node_set_argv(n, argv);
	return lab_start_node(s, n, err, err_len);
}

static int start_gateways(lab_state *s, char remote[LAB_REGIONS][LAB_MAX_SERVERS][LAB_ADDR_LEN], char *err,
			  size_t err_len)
{
	char exe[LAB_PATH_LEN + 32];
	snprintf(exe, sizeof exe, "%s/infergate", s->bin);
	for (int g = 0; g < LAB_REGIONS; g++) {
		char name[LAB_NAME_LEN], conf[LAB_PATH_LEN + 64], alog[LAB_PATH_LEN + 64];
		snprintf(name, sizeof name, "%s-gateway", lab_region_names[g]);
		lab_node *n = lab_node_add(s, name, "gateway", g);
		if (!n) return -1;
		addr_of(s, n->addr, sizeof n->addr, "gateway", g, 0);
		str_copy(s->gateway[g], n->addr, sizeof s->gateway[g]);
		str_copy(n->netns, s->region_ns[g], sizeof n->netns);
		snprintf(conf, sizeof conf, "%s/gateway-%s.yaml", s->dir, lab_region_names[g]);
		snprintf(alog, sizeof alog, "%s/logs/%s.access.jsonl", s->dir, name);
		buf y;
		buf_init(&y, 64 * 1024);
		buf_printf(&y,
			   "# The lab's gateway of %s (written by infergate-lab up).\n"
			   "region: %s\nlisten: \"%s\"\nregions:\n  %s: %gms\n"
			   "shutdown_grace: 5s\naccess_log: \"%s\"\n"
			   "pools:\n  - name: gemma-pool\n    endpoints:\n",
			   lab_region_names[g], lab_region_names[g], n->addr, lab_region_names[1 - g], 2 * s->delay_ms, alog);
		for (int r = 0; r < LAB_REGIONS; r++) {
			for (int i = 1; i <= s->servers_per_region; i++) {
				char sname[LAB_NAME_LEN];
				snprintf(sname, sizeof sname, "%s-server-%d", lab_region_names[r], i);
				lab_node *srv = lab_node_find(s, sname);
				const char *a = r == g || s->netem ? srv->addr : remote[g][i - 1];
				buf_printf(&y, "      - address: \"%s\"\n        region: %s\n", a, lab_region_names[r]);
			}
		}
		/* Outages are noticed by health checks (a 503 while draining, a
		 * refused connection, two checks without an answer within 300 ms)
		 * and by passive failures. A partition is seen only through
		 * timeouts: a check every 300 ms (150 ms while the state changes)
		 * with a 300 ms limit takes a cut region down 0.75-1.05 s after the
		 * cut, and the requests already sent to it move to the other
		 * region then (the gateway retries attempts on an endpoint gone
		 * hard down). /health is answered by the server's loop thread, not
		 * its engine: 300 ms is ample on a loaded 2-core machine (local
		 * links are fast; the remote region's checks cross the relay's
		 * 45 ms). The load metrics may lag on a busy CPU machine without
		 * the region counting as full (stale after 6 s), and a
		 * non-streaming answer may be silent while a loaded CPU server
		 * generates it (idle 150 s). A partitioned server drops SYNs
		 * instead of refusing them: a 300 ms connect timeout (a handshake
		 * inside one machine takes well under a millisecond, busy or not)
		 * lets the first request after a cut move on at once. */
		buf_printf(&y,
			   "    health: {path: /health, interval: 300ms, fast_interval: 150ms, timeout: 300ms, rise: 2, fall: 2}\n"
			   "    passive: {failures: 1, backoff: 1s, backoff_max: 5s}\n"
			   "    metrics: {interval: 250ms, timeout: 2s, stale: 6s}\n"
			   "    backend: {request_timeout: 240s, idle_timeout: 150s, connect_timeout: 300ms, tries: 3,"
			   " retry_budget: 1, retry_budget_min: 100}\n");
		int wrc = write_file(conf, buf_rptr(&y));
		buf_free(&y);
		if (wrc < 0) {
			snprintf(err, err_len, "%s: %s", conf, strerror(errno));
			return -1;
		}
		const char *argv[] = {exe, "-c", conf, NULL};
		lab_node_set_argv(n, argv);
		if (lab_start_node(s, n, err, err_len) < 0) return -1;
	}
	return 0;
}

int lab_up(lab_state *s, const lab_up_opts *o)
{
	char err[512] = "";
	uint64_t t0 = time_mono_ms();
	struct stat st;
	char sp[LAB_PATH_LEN + 32];
	snprintf(sp, sizeof sp, "%s/state.json", s->dir);
	if (stat(sp, &st) == 0) {
		fprintf(stderr, "lab: a lab is already set up in %s: run `infergate-lab down` first\n", s->dir);
		return 1;
	}
	lab_exe_dir(s->bin, sizeof s->bin);
	if (o->id && *o->id) str_copy(s->id, o->id, sizeof s->id);
	else snprintf(s->id, sizeof s->id, "igl-%d", (int)getpid());
	s->servers_per_region = o->servers_per_region > 0 ? o->servers_per_region : 1;
	if (s->servers_per_region > LAB_MAX_SERVERS) s->servers_per_region = LAB_MAX_SERVERS;
	s->sim = o->sim;
	s->delay_ms = o->delay_ms > 0 ? o->delay_ms : 22.5;
	if (o->model_dir) {
		char real[PATH_MAX];
		if (!realpath(o->model_dir, real)) {
			fprintf(stderr, "lab: --model %s: %s\n", o->model_dir, strerror(errno));
			return 1;
		}
		str_copy(s->model_dir, real, sizeof s->model_dir);
		const char *base = strrchr(real, '/');
		snprintf(s->model_name, sizeof s->model_name, "%s", base ? base + 1 : real);
	} else {
		str_copy(s->shape, o->shape ? o->shape : "270m", sizeof s->shape);
		snprintf(s->model_name, sizeof s->model_name, "gemma-3-%s-lab", s->shape);
	}
	/* Programs first: a missing one is a clear message, before anything is made. */
	const char *need[] = {"infergate", s->sim ? "infergate-sim" : "infergate-server",
			      (s->sim || s->model_dir[0]) ? NULL : "infergate-mkmodel"};
	for (size_t i = 0; i < ARRAY_LEN(need); i++) {
		if (!need[i]) continue;
		char p[LAB_PATH_LEN + 32];
		snprintf(p, sizeof p, "%s/%s", s->bin, need[i]);
		if (access(p, X_OK) != 0) {
			fprintf(stderr, "lab: %s is missing: run `make` first\n", p);
			return 1;
		}
	}
	if (access(NGINX, X_OK) != 0) {
		fprintf(stderr, "lab: %s is missing: install nginx (make deps)\n", NGINX);
		return 1;
	}

	char logs[LAB_PATH_LEN], pids[LAB_PATH_LEN];
	lab_path(s, logs, sizeof logs, "logs", NULL);
	lab_path(s, pids, sizeof pids, "pids", NULL);
	if (lab_mkdirs(logs) < 0 || lab_mkdirs(pids) < 0) {
		fprintf(stderr, "lab: cannot make %s: %s\n", s->dir, strerror(errno));
		return 1;
	}
	char idf[LAB_PATH_LEN + 8];
	snprintf(idf, sizeof idf, "%s/id", s->dir);
	char idtext[LAB_ID_LEN + 2];
	snprintf(idtext, sizeof idtext, "%s\n", s->id);
	write_file(idf, idtext);
	lab_state_save(s);

	if (!o->loopback && lab_can_netns()) {
		s->netns = 1;
		int want_netem = o->latency && !strcmp(o->latency, "netem");
		int auto_netem = !o->latency || !strcmp(o->latency, "auto");
		if (want_netem || auto_netem) s->netem = lab_net_has_netem(s->id);
		if (want_netem && !s->netem) {
			fprintf(stderr, "lab: --latency netem: this kernel has no tc netem\n");
			goto fail_msg;
		}
	} else {
		s->netns = 0;
		if (!o->loopback)
			say(o, "no permission for network namespaces (needs root): running everything on loopback");
		s->port_base = pick_port_base(100);
		if (s->port_base < 0) {
			snprintf(err, sizeof err, "no free block of 100 ports on 127.0.0.1");
			goto fail;
		}
	}
	lab_state_save(s);
	say(o, "lab %s in %s: %s, %s, %d server%s per region (%s), latency %.1f ms each way by %s", s->id, s->dir,
	    s->netns ? "network namespaces" : "loopback", s->model_name, s->servers_per_region,
	    s->servers_per_region == 1 ? "" : "s", s->sim ? "infergate-sim" : "infergate-server", s->delay_ms,
	    s->netem ? "tc netem" : "the relay");
	if (s->netns) {
		if (lab_net_up(s, err, sizeof err) < 0) goto fail;
		/* From here on this process lives in the backbone, which reaches every address. */
		if (lab_enter_netns(s->probe_ns) < 0) {
			snprintf(err, sizeof err, "setns: %s", strerror(errno));
			goto fail;
		}
		say(o, "namespaces: %zu, addresses in 198.18.0.0/15, no route out", s->n_netns);
	} else {
		str_copy(s->client_ns, "", sizeof s->client_ns);
	}

	if (start_bucket(s, err, sizeof err) < 0) goto fail;
	lab_node *bucket = lab_node_find(s, "bucket");
	snprintf(s->bucket_url, sizeof s->bucket_url, "http://%s/models/%s/", bucket->addr, s->model_name);
	say(o, "bucket: nginx on %s", bucket->addr);
	if (!s->sim && write_model(s, o, err, sizeof err) < 0) goto fail;
	lab_state_save(s);

	if (start_servers(s, o, err, sizeof err) < 0) goto fail;
	static char remote[LAB_REGIONS][LAB_MAX_SERVERS][LAB_ADDR_LEN];
	memset(remote, 0, sizeof remote);
	if (!s->netem && start_relay(s, remote, err, sizeof err) < 0) goto fail;
	if (start_gateways(s, remote, err, sizeof err) < 0) goto fail;

	uint64_t ready_ms = o->ready_timeout_ms ? o->ready_timeout_ms : 300000;
	for (size_t i = 0; i < s->n_nodes; i++) {
		lab_node *n = &s->nodes[i];
		if (strcmp(n->role, "server")) continue;
		uint64_t ts = time_mono_ms();
		if (lab_wait_healthy(n->addr, ready_ms) < 0) {
			snprintf(err, sizeof err, "%s on %s not healthy within %llu ms", n->name, n->addr,
				 (unsigned long long)ready_ms);
			goto fail_node;
		}
		say(o, "%s ready on %s (%.1f s)", n->name, n->addr, (double)(time_mono_ms() - ts) / 1000.0);
	}
	/* One short request per server before any measurement: the first one
	 * faults in the engine's buffers and fills the allocator. */
	for (size_t i = 0; i < s->n_nodes; i++) {
		lab_node *n = &s->nodes[i];
		if (strcmp(n->role, "server")) continue;
		uint64_t ts = time_mono_ms();
		if (warm_server(s, n->addr) < 0) {
			snprintf(err, sizeof err, "%s on %s did not answer its warm-up request", n->name, n->addr);
			goto fail_node;
		}
		say(o, "%s warmed up (one request, %.1f s)", n->name, (double)(time_mono_ms() - ts) / 1000.0);
	}
	for (int g = 0; g < LAB_REGIONS; g++) {
		if (wait_http(s->gateway[g], "/readyz", 0, 30000) < 0 || lab_wait_gateway_all_up(s->gateway[g], 30000) < 0) {
			snprintf(err, sizeof err, "the %s gateway on %s does not see every endpoint up", lab_region_names[g],
				 s->gateway[g]);
			goto fail;
		}
	}
	s->complete = 1;
	s->up_ms = time_mono_ms() - t0;
	lab_state_save(s);
	say(o, "up in %.1f s: gateways %s (%s), %s (%s)", (double)s->up_ms / 1000.0, s->gateway[0], lab_region_names[0],
	    s->gateway[1], lab_region_names[1]);
	say(o, "live dashboards: http://%s/dashboard (%s), http://%s/dashboard (%s)", s->gateway[0], lab_region_names[0],
	    s->gateway[1], lab_region_names[1]);
	return 0;

fail_node:
	for (size_t i = 0; i < s->n_nodes; i++) {
		lab_node *n = &s->nodes[i];
		if (!strcmp(n->role, "server")) {
			char lp[LAB_PATH_LEN + 80];
			snprintf(lp, sizeof lp, "%s/logs/%s.log", s->dir, n->name);
			fprintf(stderr, "  %s:\n", lp);
			tail_log(lp, 4);
			break;
		}
	}
fail:
	fprintf(stderr, "lab: up failed: %s\n", err);
fail_msg:
	fprintf(stderr, "lab: what was made stays for inspection; `infergate-lab down --state %s` removes it\n", s->dir);
	return 1;
}

/* ------------------------------------------------------------ down */

static void unmount_under(const char *dir)
{
	for (int round = 0; round < 8; round++) {
		FILE *f = fopen("/proc/self/mounts", "r");
		if (!f) return;
		char line[4096], found[4096] = "";
		size_t dl = strlen(dir);
		while (fgets(line, sizeof line, f)) {
			char *sp1 = strchr(line, ' ');
			if (!sp1) continue;
			char *mp = sp1 + 1, *sp2 = strchr(mp, ' ');
			if (!sp2) continue;
			*sp2 = 0;
			if (!strncmp(mp, dir, dl) && (mp[dl] == '/' || mp[dl] == 0)) str_copy(found, mp, sizeof found);
		}
		fclose(f);
		if (!found[0]) return;
		if (umount2(found, MNT_DETACH) == -1) {
			fprintf(stderr, "lab: umount %s: %s\n", found, strerror(errno));
			return;
		}
	}
}

/* Every pid of the lab: by environment, and by namespace. */
static size_t lab_pids(const char *id, pid_t *out, size_t max)
{
	size_t n = lab_pids_by_id(id, out, max);
	char prefix[LAB_ID_LEN + 2];
	snprintf(prefix, sizeof prefix, "%s-", id);
	/* Namespaces still listed in /run/netns. */
	char cmdns[64][LAB_NAME_LEN];
	int nn = 0;
	DIR *d = opendir("/run/netns");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) && nn < 64)
			if (!strncmp(e->d_name, prefix, strlen(prefix))) str_copy(cmdns[nn++], e->d_name, LAB_NAME_LEN);
		closedir(d);
	}
	for (int i = 0; i < nn && n < max; i++) {
		pid_t tmp[256];
		size_t k = lab_pids_in_netns(cmdns[i], tmp, 256);
		for (size_t j = 0; j < k && n < max; j++) {
			int dup = 0;
			for (size_t q = 0; q < n; q++) dup |= out[q] == tmp[j];
			if (!dup) out[n++] = tmp[j];
		}
	}
	return n;
}

int lab_down(const char *dir, int quiet)
{
	lab_state s;
	lab_state_init(&s, dir);
	char err[512];
	if (lab_state_load(&s, err, sizeof err) < 0) {
		char idf[LAB_PATH_LEN + 8];
		snprintf(idf, sizeof idf, "%s/id", dir);
		FILE *f = fopen(idf, "r");
		if (f) {
			if (fgets(s.id, sizeof s.id, f)) s.id[strcspn(s.id, "\n")] = 0;
			fclose(f);
		}
	}
	struct stat st;
	if (!s.id[0]) {
		lab_state_free(&s);
		if (stat(dir, &st) == -1) {
			if (!quiet) printf("lab: nothing to remove in %s\n", dir);
			return 0;
		}
		fprintf(stderr, "lab: %s holds no lab (no state.json, no id): left alone\n", dir);
		return 1;
	}
	int killed = 0;
	pid_t pids[512];
	for (int round = 0; round < 4; round++) {
		size_t n = lab_pids(s.id, pids, 512);
		if (!n) break;
		int sig = round == 0 ? SIGTERM : SIGKILL;
		for (size_t i = 0; i < n; i++) {
			/* Stopped processes (a partition on loopback) take no SIGTERM. */
			kill(pids[i], SIGCONT);
			if (kill(pids[i], sig) == 0) killed++;
		}
		uint64_t deadline = time_mono_ms() + (round == 0 ? 3000 : 2000);
		while (time_mono_ms() < deadline) {
			lab_reap();
			int any = 0;
			for (size_t i = 0; i < n; i++) any |= lab_pid_alive(pids[i]);
			if (!any) break;
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	lab_reap();
	int nns = lab_net_down(s.id);
	unmount_under(dir);
	int rc = 0;
	size_t left = lab_pids(s.id, pids, 512);
	if (left) {
		fprintf(stderr, "lab: %zu processes of lab %s would not die\n", left, s.id);
		rc = -1;
	}
	if (lab_rmtree(dir) < 0) {
		fprintf(stderr, "lab: cannot remove %s: %s\n", dir, strerror(errno));
		rc = -1;
	}
	if (!quiet) printf("lab: %s down: %d processes stopped, %d namespaces removed, %s removed\n", s.id,
			   killed ? (int)killed : 0, nns, dir);
	lab_state_free(&s);
	return rc;
}

/* ------------------------------------------------------------ status */

/* Prints a gateway's endpoints from its /status JSON. */
static void print_gateway_status(const char *addr)
{
	buf body;
	buf_init(&body, 4 << 20);
	int status = 0;
	int rc = hc_fetch(addr, "GET", "/status", NULL, NULL, 0, 2000, &status, &body);
	if (rc != HC_OK || status != 200) {
		printf("      /status: %s %d\n", rc == HC_OK ? "status" : hc_err_name(rc), status);
		buf_free(&body);
		return;
	}
	json_doc *doc = json_parse(buf_rptr(&body), buf_rlen(&body), 0, NULL);
	const json_val *pools = json_get(json_root(doc), "pools");
	for (size_t p = 0; p < json_count(pools); p++) {
		const json_val *pool = json_at(pools, p);
		const json_val *eps = json_get(pool, "endpoints");
		for (size_t e = 0; e < json_count(eps); e++) {
			const json_val *ep = json_at(eps, e);
			const char *health = json_str(json_get(ep, "health"), NULL);
			if (!health) health = json_str(json_get(ep, "state"), "?");
			printf("      %-10s %-22s %-13s %-8s in-flight %g\n", json_str(json_get(pool, "name"), "?"),
			       json_str(json_get(ep, "address"), "?"), json_str(json_get(ep, "region"), "?"), health,
			       json_num(json_get(ep, "in_flight"), 0));
		}
	}
	if (!doc) printf("      /status: not JSON\n");
	json_doc_free(doc);
	buf_free(&body);
}

int lab_status(const char *dir)
{
	lab_state s;
	lab_state_init(&s, dir);
	char err[512];
	if (lab_state_load(&s, err, sizeof err) < 0) {
		printf("lab: no lab in %s (%s)\n", dir, err);
		return 1;
	}
	if (s.netns && s.probe_ns[0] && lab_enter_netns(s.probe_ns) < 0) {
		printf("lab: cannot enter %s: %s\n", s.probe_ns, strerror(errno));
	}
	printf("lab %s (%s) in %s\n", s.id, s.complete ? "up" : "incomplete", s.dir);
	printf("  mode %s, latency %.1f ms each way by %s, servers: %s, model %s\n",
	       s.netns ? "network namespaces" : "loopback", s.delay_ms, s.netem ? "tc netem" : "the relay",
	       s.sim ? "infergate-sim" : "infergate-server", s.model_name);
	if (s.netns) {
		printf("\n"
		       "        client ─┐                                        \n"
		       "  us-east5 (%s)                    europe-west4 (%s)\n"
		       "   gateway 198.18.1.1 ── bb ── backbone ── bb ── gateway 198.18.2.1\n"
		       "   servers 198.18.1.1x   (bucket 198.18.0.10,     servers 198.18.2.1x\n"
		       "                          relay 198.18.0.20)\n\n",
		       s.region_ns[0], s.region_ns[1]);
	}
	printf("  %-24s %-8s %-13s %-22s %-8s %s\n", "NODE", "ROLE", "REGION", "ADDRESS", "PID", "STATE");
	for (size_t i = 0; i < s.n_nodes; i++) {
		lab_node *n = &s.nodes[i];
		const char *state = lab_pid_alive(n->pid) ? "running" : "stopped";
		char health[64] = "";
		if (!strcmp(n->role, "server") && lab_pid_alive(n->pid)) {
			buf b;
			buf_init(&b, 4096);
			int st = 0;
			int rc = hc_fetch(n->addr, "GET", "/health", NULL, NULL, 0, 1000, &st, &b);
			buf_free(&b);
			snprintf(health, sizeof health, ", /health %s", rc == HC_OK ? (st == 200 ? "200" : "not 200") : hc_err_name(rc));
		}
		printf("  %-24s %-8s %-13s %-22s %-8d %s%s\n", n->name, n->role,
		       n->region >= 0 ? lab_region_names[n->region] : "-", n->addr, (int)n->pid, state, health);
	}
	for (int g = 0; g < LAB_REGIONS; g++) {
		if (!s.gateway[g][0]) continue;
		printf("  gateway %s %s, as it sees its pool:\n", lab_region_names[g], s.gateway[g]);
		print_gateway_status(s.gateway[g]);
	}
	lab_state_free(&s);
	return 0;
}
