/*
 * lab_net.c — the lab's network: namespaces joined by veth links, with
 * addresses from 198.18.0.0/15 (reserved for network testing) and routes for
 * that block only (no default route: nothing leaves the lab).
 *
 *   <id>-bb             the backbone: bucket 198.18.0.10, relay 198.18.0.20,
 *                       links to each region (198.18.0.0/30, 198.18.0.4/30)
 *   <id>-us, <id>-eu    a region: bridge "lan0" at 198.18.R.1/24 (the gateway's
 *                       address; the drill's client runs here too), link "bb"
 *   <id>-us1, ...       a model server: eth0 at 198.18.R.(10+i), its peer
 *                       "s<i>" a port of the region's bridge (the partition
 *                       cuts that port)
 * R is 1 for us-east5 and 2 for europe-west4. With netem the backbone's links
 * delay each direction by the one-way delay; without it the relay does.
 *
 * Everything goes through ip(8) and tc(8), whose errors land in the lab's
 * net.log. Not here: processes (lab_sys.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "lab/lab.h"

static const char *ip_bin(void)
{
	return access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
}

static const char *tc_bin(void)
{
	return access("/usr/sbin/tc", X_OK) == 0 ? "/usr/sbin/tc" : "/sbin/tc";
}

/* Runs a command given as one line of space-separated words (no quoting:
 * the lab's names and addresses have no spaces). Returns its exit status or -1. */
static int run_words(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_words(const char *log, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	const char *argv[48];
	size_t n = 0;
	for (char *p = strtok(line, " "); p && n < 47; p = strtok(NULL, " ")) argv[n++] = p;
	argv[n] = NULL;
	if (!strcmp(argv[0], "ip")) argv[0] = ip_bin();
	else if (!strcmp(argv[0], "tc")) argv[0] = tc_bin();
	if (log) {
		FILE *f = fopen(log, "a");
		if (f) {
			for (size_t i = 0; i < n; i++) fprintf(f, "%s%s", i ? " " : "+ ", argv[i]);
			fputc('\n', f);
			fclose(f);
		}
	}
	return lab_run(argv, log, 10000);
}

/* Sets net.ipv4.ip_forward=1 inside namespace ns. 0 or -1. */
static int enable_forwarding(const char *ns)
{
	pid_t pid = fork();
	if (pid == -1) return -1;
	if (pid == 0) {
		if (lab_enter_netns(ns) == -1) _exit(1);
		int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY);
		if (fd == -1) _exit(1);
		_exit(write(fd, "1\n", 2) == 2 ? 0 : 1);
	}
	int st;
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR) {}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int add_ns(lab_state *s, const char *log, const char *name)
{
	if (s->n_netns >= LAB_MAX_NETNS) return -1;
	/* Recorded before it exists, so a crash right after still gets it removed. */
	str_copy(s->netns_list[s->n_netns++], name, LAB_NAME_LEN);
	lab_state_save(s);
	if (run_words(log, "ip netns add %s", name) != 0) return -1;
	return run_words(log, "ip -n %s link set dev lo up", name);
}

#define TRY(x) \
	do { \
		if ((x) != 0) { \
			snprintf(err, err_len, "%s failed (see %s)", #x, log); \
			return -1; \
		} \
	} while (0)

int lab_net_up(lab_state *s, char *err, size_t err_len)
{
	char log[LAB_PATH_LEN];
	lab_path(s, log, sizeof log, "logs", "net.log");
	char bb[LAB_NAME_LEN];
	snprintf(bb, sizeof bb, "%s-bb", s->id);
	str_copy(s->probe_ns, bb, sizeof s->probe_ns);
	TRY(add_ns(s, log, bb));
	TRY(run_words(log, "ip -n %s addr add 198.18.0.10/32 dev lo", bb));
	TRY(run_words(log, "ip -n %s addr add 198.18.0.20/32 dev lo", bb));
	TRY(enable_forwarding(bb));
	for (int r = 0; r < LAB_REGIONS; r++) {
		const char *rs = lab_region_short[r];
		char ns[LAB_NAME_LEN];
		snprintf(ns, sizeof ns, "%s-%s", s->id, rs);
		str_copy(s->region_ns[r], ns, sizeof s->region_ns[r]);
		TRY(add_ns(s, log, ns));
		int bb_ip = 4 * r + 1, rg_ip = 4 * r + 2, net = r + 1;
		TRY(run_words(log, "ip link add name %s netns %s type veth peer name bb netns %s", rs, bb, ns));
		TRY(run_words(log, "ip -n %s addr add 198.18.0.%d/30 dev %s", bb, bb_ip, rs));
		TRY(run_words(log, "ip -n %s link set dev %s up", bb, rs));
		TRY(run_words(log, "ip -n %s addr add 198.18.0.%d/30 dev bb", ns, rg_ip));
		TRY(run_words(log, "ip -n %s link set dev bb up", ns));
		TRY(run_words(log, "ip -n %s route add 198.18.%d.0/24 via 198.18.0.%d", bb, net, rg_ip));
		TRY(run_words(log, "ip -n %s route add 198.18.0.0/15 via 198.18.0.%d", ns, bb_ip));
		TRY(run_words(log, "ip -n %s link add name lan0 type bridge", ns));
		TRY(run_words(log, "ip -n %s addr add 198.18.%d.1/24 dev lan0", ns, net));
		TRY(run_words(log, "ip -n %s link set dev lan0 up", ns));
		TRY(enable_forwarding(ns));
		if (s->netem) {
			/* Each direction between the regions passes one backbone link
			 * on its way out of the backbone: delay there. */
			TRY(run_words(log, "tc -n %s qdisc add dev %s root netem delay %.1fms", bb, rs, s->delay_ms));
		}
		for (int i = 1; i <= s->servers_per_region; i++) {
			char sns[LAB_NAME_LEN];
			snprintf(sns, sizeof sns, "%s-%s%d", s->id, rs, i);
			TRY(add_ns(s, log, sns));
			TRY(run_words(log, "ip link add name s%d netns %s type veth peer name eth0 netns %s", i, ns, sns));
			TRY(run_words(log, "ip -n %s link set s%d master lan0", ns, i));
			TRY(run_words(log, "ip -n %s link set dev s%d up", ns, i));
			TRY(run_words(log, "ip -n %s addr add 198.18.%d.%d/24 dev eth0", sns, net, 10 + i));
			TRY(run_words(log, "ip -n %s link set dev eth0 up", sns));
			TRY(run_words(log, "ip -n %s route add 198.18.0.0/15 via 198.18.%d.1", sns, net));
		}
	}
	str_copy(s->client_ns, s->region_ns[0], sizeof s->client_ns);
	lab_state_save(s);
	return 0;
}

int lab_net_link(const lab_state *s, const lab_node *server, int up)
{
	if (!s->netns || !server->link[0] || server->region < 0) return -1;
	return run_words(NULL, "ip -n %s link set dev %s %s", s->region_ns[server->region], server->link,
			 up ? "up" : "down");
}

int lab_net_down(const char *id)
{
	if (!id || !*id) return 0;
	char prefix[LAB_ID_LEN + 2];
	snprintf(prefix, sizeof prefix, "%s-", id);
	DIR *d = opendir("/run/netns");
	if (!d) return 0;
	char names[64][LAB_NAME_LEN];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 64)
		if (!strncmp(e->d_name, prefix, strlen(prefix))) str_copy(names[n++], e->d_name, LAB_NAME_LEN);
	closedir(d);
	for (int i = 0; i < n; i++) run_words(NULL, "ip netns del %s", names[i]);
	return n;
}

int lab_net_has_netem(const char *id)
{
	char ns[LAB_NAME_LEN];
	snprintf(ns, sizeof ns, "%s-netem-probe", id);
	if (run_words(NULL, "ip netns add %s", ns) != 0) return 0;
	int ok = run_words(NULL, "tc -n %s qdisc add dev lo root netem delay 1ms", ns) == 0;
	run_words(NULL, "ip netns del %s", ns);
	return ok;
}
