/*
 * lab_state.c — the lab's state folder: state.json (the topology, addresses,
 * pids and the argv of every process) written atomically after each step of
 * `up`, read back by down, status and drill. Also small file helpers
 * (mkdir -p, rm -rf) the lab needs for its folder.
 *
 * Not here: deciding what the topology is (lab_up.c, lab_net.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "lab/lab.h"

const char *const lab_region_names[LAB_REGIONS] = {"us-east5", "europe-west4"};
const char *const lab_region_short[LAB_REGIONS] = {"us", "eu"};

/* Accepts the --state flag (or NULL); writes an absolute folder into out. */
void lab_state_dir_default(char *out, size_t len, const char *flag)
{
	const char *d = flag && *flag ? flag : getenv("INFERGATE_LAB_STATE");
	if (!d || !*d) d = "lab-state";
	if (d[0] == '/') {
		str_copy(out, d, len);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd)) str_copy(cwd, ".", sizeof cwd);
		snprintf(out, len, "%s/%s", cwd, d);
	}
	size_t n = strlen(out);
	while (n > 1 && out[n - 1] == '/') out[--n] = 0;
}

void lab_state_init(lab_state *s, const char *dir)
{
	memset(s, 0, sizeof *s);
	str_copy(s->dir, dir, sizeof s->dir);
	s->delay_ms = 22.5;
	s->servers_per_region = 1;
	for (size_t i = 0; i < LAB_MAX_NODES; i++) s->nodes[i].region = -1;
}

static void node_free_argv(lab_node *n)
{
	for (size_t i = 0; i < LAB_MAX_ARGS && n->argv[i]; i++) free(n->argv[i]);
	memset(n->argv, 0, sizeof n->argv);
}

void lab_state_free(lab_state *s)
{
	for (size_t i = 0; i < s->n_nodes; i++) node_free_argv(&s->nodes[i]);
	s->n_nodes = 0;
}

void lab_node_set_argv(lab_node *n, const char *const *argv)
{
	node_free_argv(n);
	for (size_t i = 0; i < LAB_MAX_ARGS && argv[i]; i++) n->argv[i] = str_dup(argv[i]);
}

lab_node *lab_node_add(lab_state *s, const char *name, const char *role, int region)
{
	if (s->n_nodes >= LAB_MAX_NODES) return NULL;
	lab_node *n = &s->nodes[s->n_nodes++];
	memset(n, 0, sizeof *n);
	str_copy(n->name, name, sizeof n->name);
	str_copy(n->role, role, sizeof n->role);
	n->region = region;
	return n;
}

lab_node *lab_node_find(lab_state *s, const char *name)
{
	for (size_t i = 0; i < s->n_nodes; i++)
		if (!strcmp(s->nodes[i].name, name)) return &s->nodes[i];
	return NULL;
}

void lab_path(const lab_state *s, char *out, size_t len, const char *sub, const char *name)
{
	if (sub && *sub && name && *name) snprintf(out, len, "%s/%s/%s", s->dir, sub, name);
	else if (name && *name) snprintf(out, len, "%s/%s", s->dir, name);
	else if (sub && *sub) snprintf(out, len, "%s/%s", s->dir, sub);
	else snprintf(out, len, "%s", s->dir);
}

int lab_mkdirs(const char *path)
{
	char p[LAB_PATH_LEN];
	if (str_copy(p, path, sizeof p) >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *c = p + 1; *c; c++) {
		if (*c != '/') continue;
		*c = 0;
		if (mkdir(p, 0755) == -1 && errno != EEXIST) return -1;
		*c = '/';
	}
	if (mkdir(p, 0755) == -1 && errno != EEXIST) return -1;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP) return rmdir(path) == -1 && errno != ENOENT ? -1 : 0;
	return unlink(path) == -1 && errno != ENOENT ? -1 : 0;
}

int lab_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == -1) return errno == ENOENT ? 0 : -1;
	/* FTW_MOUNT: never walk into something mounted below (down unmounts first). */
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ------------------------------------------------------------ save */

int lab_state_save(const lab_state *s)
{
	buf b;
	buf_init(&b, 1 << 20);
	json_w w;
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "id");
	jw_str(&w, s->id);
	jw_key(&w, "dir");
	jw_str(&w, s->dir);
	jw_key(&w, "bin");
	jw_str(&w, s->bin);
	jw_key(&w, "mode");
	jw_str(&w, s->netns ? "netns" : "loopback");
	jw_key(&w, "latency");
	jw_str(&w, s->netem ? "netem" : "relay");
	jw_key(&w, "delay_ms");
	jw_double(&w, s->delay_ms);
	jw_key(&w, "backend");
	jw_str(&w, s->sim ? "sim" : "server");
	jw_key(&w, "complete");
	jw_bool(&w, s->complete);
	jw_key(&w, "servers_per_region");
	jw_int(&w, s->servers_per_region);
	jw_key(&w, "port_base");
	jw_int(&w, s->port_base);
	jw_key(&w, "shape");
	jw_str(&w, s->shape);
	jw_key(&w, "model_dir");
	jw_str(&w, s->model_dir);
	jw_key(&w, "model_name");
	jw_str(&w, s->model_name);
	jw_key(&w, "bucket_url");
	jw_str(&w, s->bucket_url);
	jw_key(&w, "client_netns");
	jw_str(&w, s->client_ns);
	jw_key(&w, "probe_netns");
	jw_str(&w, s->probe_ns);
	jw_key(&w, "up_ms");
	jw_uint(&w, s->up_ms);
	jw_key(&w, "regions");
	jw_arr_begin(&w);
	for (int r = 0; r < LAB_REGIONS; r++) {
		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, lab_region_names[r]);
		jw_key(&w, "gateway");
		jw_str(&w, s->gateway[r]);
		jw_key(&w, "netns");
		jw_str(&w, s->region_ns[r]);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "netns");
	jw_arr_begin(&w);
	for (size_t i = 0; i < s->n_netns; i++) jw_str(&w, s->netns_list[i]);
	jw_arr_end(&w);
	jw_key(&w, "nodes");
	jw_arr_begin(&w);
	for (size_t i = 0; i < s->n_nodes; i++) {
		const lab_node *n = &s->nodes[i];
		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, n->name);
		jw_key(&w, "role");
		jw_str(&w, n->role);
		jw_key(&w, "region");
		jw_str(&w, n->region >= 0 ? lab_region_names[n->region] : NULL);
		jw_key(&w, "netns");
		jw_str(&w, n->netns);
		jw_key(&w, "addr");
		jw_str(&w, n->addr);
		jw_key(&w, "link");
		jw_str(&w, n->link);
		jw_key(&w, "pid");
		jw_int(&w, n->pid);
		jw_key(&w, "argv");
		jw_arr_begin(&w);
		for (size_t a = 0; a < LAB_MAX_ARGS && n->argv[a]; a++) jw_str(&w, n->argv[a]);
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	buf_puts(&b, "\n");
	int rc = -1;
	if (w.error) goto out;
	char path[LAB_PATH_LEN + 32], tmp[LAB_PATH_LEN + 48];
	snprintf(path, sizeof path, "%s/state.json", s->dir);
	snprintf(tmp, sizeof tmp, "%s/.state.json.%d", s->dir, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) goto out;
	size_t off = 0, len = buf_rlen(&b);
	while (off < len) {
		ssize_t k = write(fd, buf_rptr(&b) + off, len - off);
		if (k == -1 && errno == EINTR) continue;
		if (k <= 0) break;
		off += (size_t)k;
	}
	if (off != len) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

/* ------------------------------------------------------------ load */

static void get_s(const json_val *o, const char *key, char *dst, size_t len)
{
	const char *v = json_str(json_get(o, key), "");
	str_copy(dst, v, len);
}

static int region_index(const char *name)
{
	for (int r = 0; r < LAB_REGIONS; r++)
		if (name && !strcmp(name, lab_region_names[r])) return r;
	return -1;
}

int lab_state_load(lab_state *s, char *err, size_t err_len)
{
	char path[LAB_PATH_LEN + 32];
	snprintf(path, sizeof path, "%s/state.json", s->dir);
	size_t len;
	char *text = util_read_file(path, 4 << 20, &len, err, err_len);
	if (!text) return -1;
	json_error je;
	json_doc *doc = json_parse(text, len, 0, &je);
	free(text);
	if (!doc) {
		snprintf(err, err_len, "%s:%u: %s", path, je.line, je.msg);
		return -1;
	}
	const json_val *root = json_root(doc);
	get_s(root, "id", s->id, sizeof s->id);
	get_s(root, "bin", s->bin, sizeof s->bin);
	s->netns = !strcmp(json_str(json_get(root, "mode"), ""), "netns");
	s->netem = !strcmp(json_str(json_get(root, "latency"), ""), "netem");
	s->sim = !strcmp(json_str(json_get(root, "backend"), ""), "sim");
	s->complete = json_bool(json_get(root, "complete"), 0);
	s->delay_ms = json_num(json_get(root, "delay_ms"), 22.5);
	s->servers_per_region = (int)json_num(json_get(root, "servers_per_region"), 1);
	s->port_base = (int)json_num(json_get(root, "port_base"), 0);
	s->up_ms = (uint64_t)json_num(json_get(root, "up_ms"), 0);
	get_s(root, "shape", s->shape, sizeof s->shape);
	get_s(root, "model_dir", s->model_dir, sizeof s->model_dir);
	get_s(root, "model_name", s->model_name, sizeof s->model_name);
	get_s(root, "bucket_url", s->bucket_url, sizeof s->bucket_url);
	get_s(root, "client_netns", s->client_ns, sizeof s->client_ns);
	get_s(root, "probe_netns", s->probe_ns, sizeof s->probe_ns);
	const json_val *regions = json_get(root, "regions");
	for (size_t i = 0; i < json_count(regions); i++) {
		const json_val *r = json_at(regions, i);
		int ri = region_index(json_str(json_get(r, "name"), ""));
		if (ri < 0) continue;
		get_s(r, "gateway", s->gateway[ri], sizeof s->gateway[ri]);
		get_s(r, "netns", s->region_ns[ri], sizeof s->region_ns[ri]);
	}
	const json_val *ns = json_get(root, "netns");
	for (size_t i = 0; i < json_count(ns) && s->n_netns < LAB_MAX_NETNS; i++)
		str_copy(s->netns_list[s->n_netns++], json_str(json_at(ns, i), ""), LAB_NAME_LEN);
	const json_val *nodes = json_get(root, "nodes");
	for (size_t i = 0; i < json_count(nodes); i++) {
		const json_val *o = json_at(nodes, i);
		lab_node *n = lab_node_add(s, json_str(json_get(o, "name"), "?"), json_str(json_get(o, "role"), "?"),
					   region_index(json_str(json_get(o, "region"), "")));
		if (!n) break;
		get_s(o, "netns", n->netns, sizeof n->netns);
		get_s(o, "addr", n->addr, sizeof n->addr);
		get_s(o, "link", n->link, sizeof n->link);
		n->pid = (pid_t)json_num(json_get(o, "pid"), 0);
		const json_val *av = json_get(o, "argv");
		for (size_t a = 0; a < json_count(av) && a < LAB_MAX_ARGS; a++)
			n->argv[a] = str_dup(json_str(json_at(av, a), ""));
	}
	json_doc_free(doc);
	if (!s->id[0]) {
		snprintf(err, err_len, "%s: no lab id", path);
		return -1;
	}
	return 0;
}
