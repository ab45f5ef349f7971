/*
 * net.h — TCP sockets for the event loop, in the spirit of redis' anet:
 * address parsing, listening sockets, non-blocking accept and connect, socket
 * options, addresses as text. Every socket made here is non-blocking and
 * close-on-exec. Name resolution (getaddrinfo) blocks: use it at boot only.
 * No event handling here (see ev.h), no HTTP (see httpd.h, http_client.h).
 */
#ifndef CORE_NET_H
#define CORE_NET_H

#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>

typedef struct net_addr {
	struct sockaddr_storage sa;
	socklen_t len;
} net_addr;

/* Longest text net_addr_str writes: "[v6]:port" plus NUL. */
#define NET_ADDR_STRLEN 64

/* Parses "127.0.0.1:8080", "[::1]:80", ":8080" / "*:8080" (any IPv4 address),
 * "[::]:80", or "host:port" (resolved with getaddrinfo — blocks — first
 * result). Returns 0, or -1 with a reason in err (err may be NULL). */
int net_addr_parse(const char *text, net_addr *out, char *err, size_t err_len);
/* The same without name resolution: numeric hosts only (and "localhost"). */
int net_addr_parse_numeric(const char *text, net_addr *out);
/* "127.0.0.1:8080" or "[::1]:80" into dst (NET_ADDR_STRLEN bytes are enough). */
const char *net_addr_str(const net_addr *a, char *dst, size_t dst_len);
int net_addr_port(const net_addr *a);

typedef struct net_listen_opts {
	int backlog;   /* default 511 when 0 */
	int reuseport; /* SO_REUSEPORT */
	int v6only;    /* IPV6_V6ONLY on IPv6 listeners */
} net_listen_opts;

/* A non-blocking listening socket bound to a (SO_REUSEADDR set). opts may be
 * NULL. Returns the fd, or -1 with errno and a reason in err. The bound address
 * (with the real port when port 0 was asked) can be read with net_local_addr. */
int net_listen(const net_addr *a, const net_listen_opts *opts, char *err, size_t err_len);
/* Accepts one connection, non-blocking and close-on-exec. Returns the fd, or -1
 * (errno EAGAIN when none is waiting). peer may be NULL. */
int net_accept(int lfd, net_addr *peer);
/* Starts a non-blocking connect. Returns the fd (the connect may still be in
 * progress: wait for EV_WRITE then call net_connect_result), or -1 with errno. */
int net_connect(const net_addr *a);
/* After EV_WRITE on a connecting socket: 0 when connected, else the errno
 * (ECONNREFUSED, ETIMEDOUT, ...) from SO_ERROR. */
int net_connect_result(int fd);
int net_set_nodelay(int fd, int on);
int net_set_nonblock(int fd, int on);
int net_set_keepalive(int fd, int on);
int net_local_addr(int fd, net_addr *out);
int net_peer_addr(int fd, net_addr *out);

#endif
