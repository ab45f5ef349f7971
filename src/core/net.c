/*
 * net.c — TCP socket helpers of net.h. Thin wrappers over the socket calls
 * with their error cases handled; nothing here blocks except net_addr_parse
 * on a host name.
 */
#include "core/net.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_err(char *err, size_t len, const char *fmt, const char *a, const char *b)
{
	if (err && len) snprintf(err, len, fmt, a, b);
}

/* Splits text into host (copied into host[]) and port. -1 if malformed. */
static int split_host_port(const char *text, char *host, size_t host_len, int *port, int *bracketed)
{
	const char *colon;
	*bracketed = 0;
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':') return -1;
		size_t n = (size_t)(end - text - 1);
		if (n >= host_len) return -1;
		memcpy(host, text + 1, n);
		host[n] = 0;
		colon = end + 1;
		*bracketed = 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon) return -1;
		size_t n = (size_t)(colon - text);
		if (n >= host_len) return -1;
		memcpy(host, text, n);
		host[n] = 0;
		if (strchr(host, ':')) return -1; /* IPv6 needs brackets */
	}
	int64_t p;
	if (parse_int64(colon + 1, 0, 65535, &p) < 0) return -1;
	*port = (int)p;
	return 0;
}

static int numeric(const char *host, int port, int bracketed, net_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!bracketed) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		if (!host[0] || !strcmp(host, "*")) {
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (!strcmp(host, "localhost")) {
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		out->len = sizeof(*s4);
		return 0;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) return -1;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	out->len = sizeof(*s6);
	return 0;
}

int net_addr_parse_numeric(const char *text, net_addr *out)
{
	char host[256];
	int port, br;
	if (!text || split_host_port(text, host, sizeof(host), &port, &br) < 0) return -1;
	return numeric(host, port, br, out);
}

int net_addr_parse(const char *text, net_addr *out, char *err, size_t err_len)
{
	char host[256];
	int port, br;
	if (!text || split_host_port(text, host, sizeof(host), &port, &br) < 0) {
		set_err(err, err_len, "bad address \"%s\": expected host:port or [v6]:port%s", text ? text : "", "");
		return -1;
	}
	if (numeric(host, port, br, out) == 0) return 0;
	if (br) {
		set_err(err, err_len, "bad IPv6 address \"%s\"%s", host, "");
		return -1;
	}
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0 || !res) {
		set_err(err, err_len, "cannot resolve \"%s\": %s", host, rc ? gai_strerror(rc) : "no address");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
	out->len = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

const char *net_addr_str(const net_addr *a, char *dst, size_t dst_len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(dst, dst_len, "%s:%d", ip, ntohs(s4->sin_port));
	} else if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(dst, dst_len, "[%s]:%d", ip, ntohs(s6->sin6_port));
	} else {
		snprintf(dst, dst_len, "unknown");
	}
	return dst;
}

int net_addr_port(const net_addr *a)
{
	if (a->sa.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	if (a->sa.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return -1;
}

int net_listen(const net_addr *a, const net_listen_opts *opts, char *err, size_t err_len)
{
	char as[NET_ADDR_STRLEN];
	int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err(err, err_len, "socket: %s%s", strerror(errno), "");
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (opts && opts->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		set_err(err, err_len, "SO_REUSEPORT: %s%s", strerror(errno), "");
		goto fail;
	}
	if (a->sa.ss_family == AF_INET6) {
		int v6 = opts ? opts->v6only : 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0) {
		set_err(err, err_len, "bind %s: %s", net_addr_str(a, as, sizeof(as)), strerror(errno));
		goto fail;
	}
	if (listen(fd, opts && opts->backlog > 0 ? opts->backlog : 511) < 0) {
		set_err(err, err_len, "listen %s: %s", net_addr_str(a, as, sizeof(as)), strerror(errno));
		goto fail;
	}
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

int net_accept(int lfd, net_addr *peer)
{
	net_addr tmp;
	net_addr *p = peer ? peer : &tmp;
	for (;;) {
		p->len = sizeof(p->sa);
		int fd = accept4(lfd, (struct sockaddr *)&p->sa, &p->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) return fd;
		if (errno == EINTR) continue;
		return -1;
	}
}

int net_connect(const net_addr *a)
{
	int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	int r;
	do r = connect(fd, (const struct sockaddr *)&a->sa, a->len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int net_connect_result(int fd)
{
	int e = 0;
	socklen_t len = sizeof(e);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0) return errno;
	return e;
}

int net_set_nodelay(int fd, int on)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

int net_set_keepalive(int fd, int on)
{
	return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
}

int net_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0) return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int net_local_addr(int fd, net_addr *out)
{
	out->len = sizeof(out->sa);
	return getsockname(fd, (struct sockaddr *)&out->sa, &out->len);
}

int net_peer_addr(int fd, net_addr *out)
{
	out->len = sizeof(out->sa);
	return getpeername(fd, (struct sockaddr *)&out->sa, &out->len);
}
