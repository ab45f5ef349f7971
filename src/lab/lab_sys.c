/*
 * lab_sys.c — processes for the lab: start a daemon inside a network
 * namespace, run a command with a time limit, tell whether a pid lives, and
 * find the lab's processes by the INFERGATE_LAB_ID in their environment or by
 * the namespace they run in.
 *
 * Not here: which processes the lab runs (lab_up.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "lab/lab.h"

int lab_enter_netns(const char *name)
{
	char path[LAB_PATH_LEN];
	snprintf(path, sizeof path, "/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) return -1;
	int rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

/* In the child after fork: the namespace, the output, then exec. Never returns. */
static void child_exec(const char *const *argv, const char *netns, const char *log_path, const char *id,
		       int new_session)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (new_session) setsid();
	if (netns && *netns && lab_enter_netns(netns) == -1) {
		dprintf(2, "infergate-lab: cannot enter namespace %s: %s\n", netns, strerror(errno));
		_exit(126);
	}
	int in = open("/dev/null", O_RDONLY);
	if (in >= 0) {
		dup2(in, 0);
		if (in > 2) close(in);
	}
	int out = open(log_path && *log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (out >= 0) {
		dup2(out, 1);
		dup2(out, 2);
		if (out > 2) close(out);
	}
	if (id && *id) setenv("INFERGATE_LAB_ID", id, 1);
	unsetenv("VLLM_API_KEY"); /* the lab's servers are open to its gateways, whatever the shell has */
	execv(argv[0], (char *const *)argv);
	dprintf(2, "infergate-lab: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

pid_t lab_spawn(const char *const *argv, const char *netns, const char *log_path, const char *id,
		char *err, size_t err_len)
{
	if (access(argv[0], X_OK) == -1) {
		snprintf(err, err_len, "%s: %s", argv[0], strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid == -1) {
		snprintf(err, err_len, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) child_exec(argv, netns, log_path, id, 1);
	return pid;
}

int lab_run(const char *const *argv, const char *log_path, uint64_t timeout_ms)
{
	pid_t pid = fork();
	if (pid == -1) return -1;
	if (pid == 0) child_exec(argv, NULL, log_path, NULL, 0);
	uint64_t deadline = time_mono_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (r == -1 && errno != EINTR) return -1;
		if (time_mono_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int lab_run_sh(const char *cmd, const char *log_path, uint64_t timeout_ms)
{
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	return lab_run(argv, log_path, timeout_ms);
}

void lab_reap(void)
{
	int st;
	while (waitpid(-1, &st, WNOHANG) > 0) {}
}

int lab_pid_alive(pid_t pid)
{
	if (pid <= 0) return 0;
	int st;
	if (waitpid(pid, &st, WNOHANG) == pid) return 0;
	if (kill(pid, 0) == -1 && errno == ESRCH) return 0;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f) return 0;
	int alive = 1;
	if (fgets(line, sizeof line, f)) {
		const char *p = strrchr(line, ')');
		if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) alive = 0;
	}
	fclose(f);
	return alive;
}

size_t lab_pids_by_id(const char *id, pid_t *out, size_t max)
{
	size_t n = 0;
	if (!id || !*id) return 0;
	char want[LAB_ID_LEN + 32];
	int want_len = snprintf(want, sizeof want, "INFERGATE_LAB_ID=%s", id);
	DIR *d = opendir("/proc");
	if (!d) return 0;
	struct dirent *e;
	static char env[1 << 16];
	while ((e = readdir(d)) && n < max) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid()) continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/%ld/environ", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1) continue;
		ssize_t k = read(fd, env, sizeof env - 1);
		close(fd);
		if (k <= 0) continue;
		env[k] = 0;
		/* Entries are NUL-separated: compare each whole entry. */
		for (ssize_t i = 0; i < k;) {
			size_t len = strlen(env + i);
			if ((int)len == want_len && !memcmp(env + i, want, len)) {
				out[n++] = (pid_t)pid;
				break;
			}
			i += (ssize_t)len + 1;
		}
	}
	closedir(d);
	return n;
}

size_t lab_pids_in_netns(const char *ns, pid_t *out, size_t max)
{
	/* The same as `ip netns pids`: processes whose /proc/PID/ns/net is the
	 * namespace's inode. */
	char path[LAB_PATH_LEN];
	snprintf(path, sizeof path, "/run/netns/%s", ns);
	struct stat want;
	if (stat(path, &want) == -1) return 0;
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d) return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid()) continue;
		char p[64];
		struct stat st;
		snprintf(p, sizeof p, "/proc/%ld/ns/net", pid);
		if (stat(p, &st) == -1) continue;
		if (st.st_dev == want.st_dev && st.st_ino == want.st_ino) out[n++] = (pid_t)pid;
	}
	closedir(d);
	return n;
}

void lab_exe_dir(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k <= 0) {
		str_copy(out, "bin", len);
		return;
	}
	exe[k] = 0;
	char *slash = strrchr(exe, '/');
	if (slash) *slash = 0;
	str_copy(out, exe, len);
}

int lab_can_netns(void)
{
	if (geteuid() != 0) return 0;
	char name[64];
	snprintf(name, sizeof name, "igl-probe-%d", (int)getpid());
	const char *add[] = {"/usr/sbin/ip", "netns", "add", name, NULL};
	const char *add2[] = {"/sbin/ip", "netns", "add", name, NULL};
	const char *const *use = access(add[0], X_OK) == 0 ? add : add2;
	if (lab_run(use, NULL, 5000) != 0) return 0;
	const char *del[] = {use[0], "netns", "del", name, NULL};
	lab_run(del, NULL, 5000);
	return 1;
}
