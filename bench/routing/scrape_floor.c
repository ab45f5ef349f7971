/*
 * scrape_floor.c — the floor under the gateway's scrape cost: the same
 * requests as the scraper (GET /metrics on one kept-alive connection per
 * endpoint, all endpoints every interval) from a program that does nothing
 * else: send, epoll_wait, read until the Content-Length is in. What it costs
 * is what the kernel costs for that traffic; the gateway cannot go below it.
 *
 * Not a scraper: no parsing, timeouts or reconnects (a failure ends the run).
 *
 *   scrape_floor N FIRST_PORT INTERVAL_MS SECONDS
 * prints "<us> us per scrape, <share>% of one core (<n> scrapes)".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define PAGE_MAX_BYTES (1 << 20)
#define HEAD_MAX_BYTES 4096

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This thread's time on a CPU in ns (/proc/thread-self/schedstat), or -1. */
static double cpu_ns(void)
{
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	double ns = -1;
	if (f) {
		if (fscanf(f, "%lf", &ns) != 1) ns = -1;
		fclose(f);
	}
	return ns;
}

/* The whole response's length once its head is in b (n bytes), else 0. */
static size_t response_len(const char *b, size_t n)
{
	const char *end = memmem(b, n, "\r\n\r\n", 4);
	if (!end) return 0;
	const char *cl = memmem(b, (size_t)(end - b), "\r\nContent-Length:", 17);
	if (!cl) cl = memmem(b, (size_t)(end - b), "\r\ncontent-length:", 17);
	if (!cl) return 0;
	return (size_t)(end + 4 - b) + (size_t)strtoul(cl + 17, NULL, 10);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: scrape_floor N FIRST_PORT INTERVAL_MS SECONDS\n");
		return 2;
	}
	int n = atoi(argv[1]), port = atoi(argv[2]), interval_ms = atoi(argv[3]);
	double secs = atof(argv[4]);
	if (n < 1 || n > MAX_CONNS || interval_ms < 1 || secs <= 0) return 2;
	static int fd[MAX_CONNS];
	static size_t got[MAX_CONNS], want[MAX_CONNS];
	static char head[MAX_CONNS][HEAD_MAX_BYTES]; /* each response's first bytes, until its length is known */
	static char rest[PAGE_MAX_BYTES];             /* what each read brings, overwritten */
	char req[256];
	int ep = epoll_create1(0);
	for (int i = 0; i < n; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(port + i)) };
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		int one = 1;
		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("connect");
			return 1;
		}
		setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &e) < 0) return 1;
	}
	long scrapes = 0;
	double t0 = mono_s(), c0 = cpu_ns(), next = t0;
	while (mono_s() - t0 < secs) {
		for (int i = 0; i < n; i++) {
			int len = snprintf(req, sizeof(req),
					   "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/plain\r\n"
					   "User-Agent: infergate-scrape\r\n\r\n", port + i);
			got[i] = want[i] = 0;
			if (send(fd[i], req, (size_t)len, MSG_NOSIGNAL) != len) {
				perror("send");
				return 1;
			}
		}
		for (int left = n; left > 0;) {
			struct epoll_event ev[256];
			int k = epoll_wait(ep, ev, 256, 2000);
			if (k <= 0) {
				fprintf(stderr, "no answer\n");
				return 1;
			}
			for (int j = 0; j < k; j++) {
				int i = (int)ev[j].data.u32;
				ssize_t r = read(fd[i], rest, sizeof(rest)); /* a whole page in one read, as the scraper */
				if (r <= 0) {
					if (r < 0 && errno == EAGAIN) continue;
					fprintf(stderr, "read: %s\n", r ? strerror(errno) : "closed");
					return 1;
				}
				if (!want[i] && got[i] < sizeof(head[i])) {
					size_t k = sizeof(head[i]) - got[i] < (size_t)r ? sizeof(head[i]) - got[i] : (size_t)r;
					memcpy(head[i] + got[i], rest, k);
					want[i] = response_len(head[i], got[i] + k);
				}
				got[i] += (size_t)r;
				if (!want[i] && got[i] >= sizeof(head[i])) {
					fprintf(stderr, "no Content-Length in the head\n");
					return 1;
				}
				if (want[i] && got[i] >= want[i]) {
					scrapes++;
					left--;
				}
			}
		}
		next += interval_ms / 1000.0;
		double d = next - mono_s();
		if (d > 0) {
			struct epoll_event ev;
			epoll_wait(ep, &ev, 1, (int)(d * 1000)); /* nothing is due: a sleep */
		}
	}
	double cpu_s = (cpu_ns() - c0) / 1e9, wall = mono_s() - t0;
	printf("%.1f us per scrape, %.2f%% of one core (%ld scrapes)\n", 1e6 * cpu_s / (double)scrapes,
	       100 * cpu_s / wall, scrapes);
	return 0;
}
