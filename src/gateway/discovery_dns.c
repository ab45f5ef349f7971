/*
 * discovery_dns.c — the DNS backend of discovery: a small stub resolver over
 * UDP on the event loop.
 *
 * A round sends the questions (A and AAAA of the name, or SRV of the name then
 * A and AAAA of each SRV target the additional section did not answer) to one
 * nameserver over a connected UDP socket (so the kernel drops datagrams from
 * anyone else), with random 16-bit ids, an EDNS0 size of 1232 bytes so a
 * headless Service of ~70 pods fits, and a timeout per attempt; the next
 * attempt goes to the next nameserver with fresh ids from a fresh port. A
 * round that ends with every question answered (NOERROR or NXDOMAIN) is
 * published; anything else (timeout, SERVFAIL, REFUSED, malformed) fails the
 * round and the last known set stays. The next round starts interval_ms after
 * the previous one ended.
 *
 * A truncated answer (TC bit: a headless Service of hundreds of pods) is asked
 * again over TCP (RFC 7766), one question at a time on one non-blocking
 * connection to the same nameserver, within the same attempt's timeout; the
 * 64 KiB buffer and the record array it needs live only while that exchange
 * runs. A TCP failure moves the round to its next attempt like a UDP one.
 *
 * Not here: search domains (names are absolute), caching (each round asks
 * again; the TTL is the server's business and the interval ours), DNSSEC.
 */
#include "gateway/discovery_int.h"
#include "gateway/dns.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DNS_MAX_SERVERS 4
#define DNS_MAX_QUERIES 130 /* SRV + A and AAAA of 64 targets */
#define DNS_MAX_SRV_TARGETS 64
#define DNS_MAX_RRS 160
#define DNS_RECV_BYTES 4096
#define DNS_TCP_MAX_BYTES 65535 /* a TCP message's 16-bit length */
#define DNS_TCP_MAX_RRS 1200    /* an answer of ~1,000 addresses and its extras */
#define DNS_MAX_FOUND (DISCOVERY_MAX_ADDRS * 2)

/* One question of a round. */
typedef struct dns_q {
	uint16_t id;
	uint16_t qtype;
	uint16_t port; /* of the addresses it finds */
	int done;
	int want_tcp; /* its UDP answer was truncated */
	char name[DNS_NAME_MAX];
} dns_q;

/* The backend's state. Owner: its discovery (impl). */
typedef struct dns_state {
	discovery *d;
	char servers[DNS_MAX_SERVERS][NET_ADDR_STRLEN];
	size_t n_servers;
	int fd;           /* -1 between rounds */
	uint32_t attempt; /* of the current round, from 0 */
	uint64_t attempt_timer, next_timer;
	dns_q q[DNS_MAX_QUERIES];
	size_t nq, pending;
	discovery_addr found[DNS_MAX_FOUND];
	size_t n_found;
	dns_rr rrs[DNS_MAX_RRS];
	/* The TCP exchange, one question at a time; buffers allocated for it. */
	int tcp_fd; /* -1 when none runs */
	dns_q *tcp_q;
	uint8_t *tcp_buf;         /* query out, then answer in: 2 + DNS_TCP_MAX_BYTES */
	size_t tcp_len, tcp_done; /* bytes to send or expected, bytes moved */
	int tcp_reading;
	dns_rr *tcp_rrs; /* DNS_TCP_MAX_RRS */
} dns_state;

static void round_start(dns_state *s);

static void tcp_close(dns_state *s)
{
	if (s->tcp_fd >= 0) {
		ev_del(s->d->loop, s->tcp_fd);
		close(s->tcp_fd);
		s->tcp_fd = -1;
	}
	free(s->tcp_buf);
	free(s->tcp_rrs);
	s->tcp_buf = NULL;
	s->tcp_rrs = NULL;
	s->tcp_q = NULL;
}

static void sock_close(dns_state *s)
{
	tcp_close(s);
	if (s->fd < 0) return;
	ev_del(s->d->loop, s->fd);
	close(s->fd);
	s->fd = -1;
}

static int64_t next_round_cb(ev_loop *loop, uint64_t id, void *arg)
{
	dns_state *s = arg;
	s->next_timer = 0;
	round_start(s);
	return -1;
}

/* Ends the round: closes its socket and plans the next one. */
static void round_end(dns_state *s)
{
	sock_close(s);
	ev_timer_del(s->d->loop, s->attempt_timer);
	s->attempt_timer = 0;
	s->next_timer = ev_timer_add(s->d->loop, s->d->spec.interval_ms, next_round_cb, s);
}

static void round_fail(dns_state *s, const char *fmt, const char *what, const char *detail)
{
	discovery *d = s->d;
	round_end(s);
	discovery_fail(d, fmt, what, detail);
}

static void round_finish(dns_state *s)
{
	round_end(s);
	discovery_publish(s->d, s->found, s->n_found); /* s may be gone after this */
}

static void found_add(dns_state *s, int family, const void *ip, uint16_t port)
{
	if (s->n_found == DNS_MAX_FOUND) {
		s->d->st.dropped_total++;
		return;
	}
	if (discovery_addr_format(&s->found[s->n_found], family, ip, port) == 0) s->n_found++;
}

static int query_add(dns_state *s, const char *name, uint16_t qtype, uint16_t port)
{
	if (s->nq == DNS_MAX_QUERIES) {
		s->d->st.dropped_total++;
		return -1;
	}
	dns_q *q = &s->q[s->nq++];
	memset(q, 0, sizeof(*q));
	str_copy(q->name, name, sizeof(q->name));
	q->qtype = qtype;
	q->port = port;
	s->pending++;
	return 0;
}

/* Adds the address questions for name at port (A and/or AAAA). */
static void query_add_addrs(dns_state *s, const char *name, uint16_t port)
{
	if (!s->d->spec.no_ipv4) query_add(s, name, DNS_TYPE_A, port);
	if (!s->d->spec.no_ipv6) query_add(s, name, DNS_TYPE_AAAA, port);
}

#define DNS_QUERY_MAX_BYTES (DNS_NAME_MAX + 64)

/* Writes the question of q with a fresh id and an EDNS0 OPT record into msg
 * (DNS_QUERY_MAX_BYTES). Returns its length, or -1 for a name that is no DNS
 * name. */
static int query_build(dns_q *q, uint8_t *msg)
{
	q->id = (uint16_t)discovery_random();
	int n = dns_query_build(msg, DNS_QUERY_MAX_BYTES - 11, q->id, q->name, q->qtype);
	if (n < 0) return -1;
	/* EDNS0: ARCOUNT 1, OPT RR with the root name, our UDP size, no flags. */
	msg[11] = 1;
	static const uint8_t opt[11] = {0, 0, 41, DNS_UDP_MAX_BYTES >> 8, DNS_UDP_MAX_BYTES & 0xFF, 0, 0, 0, 0, 0, 0};
	memcpy(msg + n, opt, sizeof(opt));
	return n + (int)sizeof(opt);
}

/* Sends the question of q over UDP; returns 0, -2 for a bad name or -1 (the
 * errno of send). A full socket buffer (EAGAIN) counts as sent: the attempt's
 * timeout resends. */
static int query_send(dns_state *s, dns_q *q)
{
	uint8_t msg[DNS_QUERY_MAX_BYTES];
	int n = query_build(q, msg);
	if (n < 0) return -2;
	for (;;) {
		ssize_t w = send(s->fd, msg, (size_t)n, MSG_NOSIGNAL);
		if (w >= 0) return 0;
		if (errno == EINTR) continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
		return -1;
	}
}

static void on_readable(ev_loop *loop, int fd, int mask, void *arg);
static int64_t attempt_timeout_cb(ev_loop *loop, uint64_t id, void *arg);

/* Opens a socket to this attempt's nameserver and (re)sends every pending
 * question. Returns 0, or -1 when the round failed (already reported). */
static int attempt_start(dns_state *s)
{
	sock_close(s);
	const char *server = s->servers[s->attempt % s->n_servers];
	net_addr a;
	if (net_addr_parse_numeric(server, &a) < 0) {
		round_fail(s, "%s: %s", "bad nameserver address", server);
		return -1;
	}
	s->fd = socket(a.sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a.sa, a.len) < 0 ||
	    ev_set(s->d->loop, s->fd, EV_READ, on_readable, s) < 0) {
		round_fail(s, "%s: %s", "socket to the nameserver", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->nq; i++) {
		if (s->q[i].done) continue;
		s->q[i].want_tcp = 0;
		int rc = query_send(s, &s->q[i]);
		if (rc == -2) {
			round_fail(s, "%s: %s", "not a valid DNS name", s->q[i].name);
			return -1;
		}
		if (rc < 0) {
			round_fail(s, "%s: %s", "send to the nameserver", strerror(errno));
			return -1;
		}
	}
	ev_timer_del(s->d->loop, s->attempt_timer);
	s->attempt_timer = ev_timer_add(s->d->loop, s->d->spec.timeout_ms, attempt_timeout_cb, s);
	return 0;
}

/* The next attempt, or the round's failure after the last one. */
static void attempt_next(dns_state *s, const char *why)
{
	s->attempt++;
	if (s->attempt >= s->d->spec.attempts) {
		char last[NET_ADDR_STRLEN];
		str_copy(last, s->servers[(s->attempt - 1) % s->n_servers], sizeof(last));
		round_fail(s, "%s (nameserver %s)", why, last);
		return;
	}
	attempt_start(s);
}

static int64_t attempt_timeout_cb(ev_loop *loop, uint64_t id, void *arg)
{
	dns_state *s = arg;
	s->attempt_timer = 0;
	attempt_next(s, "timeout");
	return -1;
}

/* 1 when name is qname or reached from it through the CNAME records of the
 * answer (a chain of at most 8). */
static int name_in_chain(const dns_response *r, const char *qname, const char *name)
{
	char cur[DNS_NAME_MAX];
	str_copy(cur, qname, sizeof(cur));
	for (int hop = 0; hop < 8; hop++) {
		if (dns_name_eq(cur, name)) return 1;
		size_t i;
		for (i = 0; i < r->n_rrs; i++)
			if (r->rrs[i].type == DNS_TYPE_CNAME && dns_name_eq(r->rrs[i].name, cur)) break;
		if (i == r->n_rrs) return 0;
		str_copy(cur, r->rrs[i].target, sizeof(cur));
	}
	return 0;
}

/* Takes the records of the answer to q. Returns 0, or -1 when the answer
 * failed the round (reported). */
static int answer_take(dns_state *s, dns_q *q, const dns_response *r)
{
	if (r->rcode != DNS_RCODE_NOERROR && r->rcode != DNS_RCODE_NXDOMAIN) {
		static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
		char what[32];
		snprintf(what, sizeof(what), "%s", r->rcode < 6 ? names[r->rcode] : "error");
		round_fail(s, "%s for %s", what, q->name);
		return -1;
	}
	if (r->dropped_rrs) s->d->st.dropped_total += r->dropped_rrs;
	size_t targets = 0;
	for (size_t i = 0; i < r->n_rrs; i++) {
		const dns_rr *rr = &r->rrs[i];
		if (rr->section != DNS_SECTION_ANSWER || !name_in_chain(r, q->name, rr->name)) continue;
		if (q->qtype == DNS_TYPE_A && rr->type == DNS_TYPE_A)
			found_add(s, AF_INET, rr->u.a, q->port);
		else if (q->qtype == DNS_TYPE_AAAA && rr->type == DNS_TYPE_AAAA)
			found_add(s, AF_INET6, rr->u.aaaa, q->port);
		else if (q->qtype == DNS_TYPE_SRV && rr->type == DNS_TYPE_SRV && rr->target[0]) {
			if (targets++ == DNS_MAX_SRV_TARGETS) {
				s->d->st.dropped_total++;
				continue;
			}
			/* Addresses of the target in the additional section spare a question. */
			int have = 0;
			for (size_t k = 0; k < r->n_rrs; k++) {
				const dns_rr *ad = &r->rrs[k];
				if (ad->section != DNS_SECTION_ADDITIONAL || !dns_name_eq(ad->name, rr->target)) continue;
				if (ad->type == DNS_TYPE_A && !s->d->spec.no_ipv4) {
					found_add(s, AF_INET, ad->u.a, rr->u.srv.port);
					have = 1;
				} else if (ad->type == DNS_TYPE_AAAA && !s->d->spec.no_ipv6) {
					found_add(s, AF_INET6, ad->u.aaaa, rr->u.srv.port);
					have = 1;
				}
			}
			if (!have) query_add_addrs(s, rr->target, rr->u.srv.port);
		}
	}
	return 0;
}

static void tcp_kick(dns_state *s);

/* Takes the answer r to q (q now done): its records, then the questions they
 * raise (SRV targets, sent over UDP), then the round's end when nothing is
 * pending. Returns 0 while the round goes on, -1 when it ended (s may be
 * gone). */
static int answered(dns_state *s, dns_q *q, const dns_response *r)
{
	q->done = 1;
	q->want_tcp = 0;
	s->pending--;
	size_t nq_before = s->nq;
	if (answer_take(s, q, r) < 0) return -1;
	for (size_t i = nq_before; i < s->nq; i++) {
		int rc = query_send(s, &s->q[i]);
		if (rc == -2) { /* a target that is no DNS name: skipped */
			s->q[i].done = 1;
			s->pending--;
			s->d->st.dropped_total++;
		} else if (rc < 0) {
			round_fail(s, "%s: %s", "send to the nameserver", strerror(errno));
			return -1;
		}
	}
	if (s->pending == 0) {
		round_finish(s);
		return -1;
	}
	return 0;
}

/* The TCP exchange failed: the round's next attempt. */
static void tcp_fail(dns_state *s, const char *what)
{
	char why[DNS_NAME_MAX + 128];
	snprintf(why, sizeof(why), "truncated answer for %s over UDP, then over TCP: %s",
		 s->tcp_q ? s->tcp_q->name : "?", what);
	attempt_next(s, why);
}

static void on_tcp(ev_loop *loop, int fd, int mask, void *arg)
{
	dns_state *s = arg;
	if (!s->tcp_reading) {
		int err = net_connect_result(fd);
		if (err) {
			tcp_fail(s, strerror(err));
			return;
		}
		while (s->tcp_done < s->tcp_len) {
			ssize_t w = send(fd, s->tcp_buf + s->tcp_done, s->tcp_len - s->tcp_done, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR) continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) return;
				tcp_fail(s, strerror(errno));
				return;
			}
			s->tcp_done += (size_t)w;
		}
		s->tcp_reading = 1;
		s->tcp_done = 0;
		s->tcp_len = 2; /* the length prefix first */
		if (ev_mod(loop, fd, EV_READ) < 0) tcp_fail(s, strerror(errno));
		return;
	}
	for (int budget = 0; budget < 64; budget++) {
		ssize_t n = recv(fd, s->tcp_buf + s->tcp_done, s->tcp_len - s->tcp_done, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) return;
			tcp_fail(s, strerror(errno));
			return;
		}
		if (n == 0) {
			tcp_fail(s, "connection closed before the answer");
			return;
		}
		s->tcp_done += (size_t)n;
		if (s->tcp_done < s->tcp_len) continue;
		if (s->tcp_len == 2) {
			s->tcp_len = 2 + ((size_t)s->tcp_buf[0] << 8 | s->tcp_buf[1]);
			if (s->tcp_len == 2) {
				tcp_fail(s, "empty answer");
				return;
			}
			continue;
		}
		break;
	}
	if (s->tcp_done < s->tcp_len) return; /* the budget ran out: more on the next event */
	dns_q *q = s->tcp_q;
	dns_response r = {.rrs = s->tcp_rrs, .max_rrs = DNS_TCP_MAX_RRS};
	if (dns_response_parse(s->tcp_buf + 2, s->tcp_len - 2, &r) < 0 || r.id != q->id || r.qtype != q->qtype ||
	    !dns_name_eq(q->name, r.qname)) {
		tcp_fail(s, "answer malformed or not ours");
		return;
	}
	/* The exchange is over: its socket and buffers go before the answer is
	 * taken (the next truncated question opens its own). The records are read
	 * from tcp_rrs, freed after. */
	ev_del(loop, fd);
	close(fd);
	s->tcp_fd = -1;
	s->tcp_q = NULL;
	dns_rr *rrs = s->tcp_rrs;
	s->tcp_rrs = NULL;
	int rc = answered(s, q, &r);
	free(rrs);
	if (rc == 0) tcp_kick(s);
}

/* Starts the TCP exchange of the next truncated question, unless one runs or
 * none is left. A failure to start moves the round to its next attempt. */
static void tcp_kick(dns_state *s)
{
	if (s->tcp_fd >= 0) return;
	dns_q *q = NULL;
	for (size_t i = 0; i < s->nq && !q; i++)
		if (s->q[i].want_tcp && !s->q[i].done) q = &s->q[i];
	if (!q) return;
	s->tcp_q = q;
	if (!s->tcp_buf) s->tcp_buf = malloc(2 + DNS_TCP_MAX_BYTES);
	if (!s->tcp_rrs) s->tcp_rrs = malloc(DNS_TCP_MAX_RRS * sizeof(dns_rr));
	if (!s->tcp_buf || !s->tcp_rrs) {
		tcp_fail(s, "out of memory");
		return;
	}
	int n = query_build(q, s->tcp_buf + 2);
	net_addr a;
	if (n < 0 || net_addr_parse_numeric(s->servers[s->attempt % s->n_servers], &a) < 0) {
		tcp_fail(s, "query");
		return;
	}
	s->tcp_buf[0] = (uint8_t)(n >> 8);
	s->tcp_buf[1] = (uint8_t)n;
	s->tcp_len = 2 + (size_t)n;
	s->tcp_done = 0;
	s->tcp_reading = 0;
	s->tcp_fd = net_connect(&a);
	if (s->tcp_fd < 0 || ev_set(s->d->loop, s->tcp_fd, EV_WRITE, on_tcp, s) < 0) {
		tcp_fail(s, strerror(errno));
		return;
	}
}

static void on_readable(ev_loop *loop, int fd, int mask, void *arg)
{
	dns_state *s = arg;
	uint8_t msg[DNS_RECV_BYTES];
	for (int budget = 0; budget < 64 && s->fd == fd; budget++) {
		ssize_t n = recv(fd, msg, sizeof(msg), 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) return;
			attempt_next(s, strerror(errno)); /* ECONNREFUSED: nobody listens there */
			return;
		}
		dns_response r = {.rrs = s->rrs, .max_rrs = DNS_MAX_RRS};
		if (dns_response_parse(msg, (size_t)n, &r) < 0) {
			log_ratelimited(LOG_DEBUG, "discovery of %s: a malformed DNS answer ignored", s->d->spec.name);
			continue;
		}
		dns_q *q = NULL;
		for (size_t i = 0; i < s->nq; i++)
			if (!s->q[i].done && !s->q[i].want_tcp && s->q[i].id == r.id && s->q[i].qtype == r.qtype &&
			    dns_name_eq(s->q[i].name, r.qname)) {
				q = &s->q[i];
				break;
			}
		if (!q) continue;  /* late, duplicate or forged */
		if (r.truncated) { /* asked again over TCP */
			q->want_tcp = 1;
			tcp_kick(s);
			if (s->fd != fd) return; /* the attempt moved on */
			continue;
		}
		if (answered(s, q, &r) < 0) return;
	}
}

static void round_start(dns_state *s)
{
	discovery *d = s->d;
	s->nq = s->pending = s->n_found = 0;
	s->attempt = 0;
	if (d->spec.resolver[0]) {
		str_copy(s->servers[0], d->spec.resolver, sizeof(s->servers[0]));
		s->n_servers = 1;
	} else {
		s->n_servers = discovery_read_resolv_conf(d->spec.resolv_conf, s->servers, DNS_MAX_SERVERS);
	}
	if (s->n_servers == 0) {
		round_fail(s, "%s in %s", "no nameserver", d->spec.resolv_conf);
		return;
	}
	if (d->spec.kind == DISCOVERY_SRV)
		query_add(s, d->spec.name, DNS_TYPE_SRV, 0);
	else
		query_add_addrs(s, d->spec.name, d->spec.port);
	attempt_start(s);
}

int discovery_dns_start(discovery *d, char *err, size_t err_len)
{
	uint8_t probe[DNS_NAME_MAX + 32];
	if (dns_query_build(probe, sizeof(probe), 0, d->spec.name, DNS_TYPE_A) < 0) {
		snprintf(err, err_len, "discovery: \"%s\" is not a valid DNS name", d->spec.name);
		return -1;
	}
	if (d->spec.resolver[0]) {
		net_addr a;
		if (net_addr_parse_numeric(d->spec.resolver, &a) < 0) {
			snprintf(err, err_len, "discovery of %s: resolver \"%s\" is not an address:port", d->spec.name,
				 d->spec.resolver);
			return -1;
		}
	}
	dns_state *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	s->d = d;
	s->fd = -1;
	s->tcp_fd = -1;
	d->impl = s;
	round_start(s);
	return 0;
}

void discovery_dns_stop(discovery *d)
{
	dns_state *s = d->impl;
	if (!s) return;
	sock_close(s);
	ev_timer_del(d->loop, s->attempt_timer);
	ev_timer_del(d->loop, s->next_timer);
	free(s);
	d->impl = NULL;
}
